//! Latency and throughput bookkeeping.
//!
//! Each generator thread owns one [`Recorder`] shared by its connections
//! (they run on that thread only, so no locking); at the end the recorders
//! are merged with [`Recorder::merge`], which adds histograms bucket by
//! bucket and so gives exactly the percentiles one histogram over all
//! requests would have.
//!
//! Latencies are recorded in nanoseconds. The per-command histograms keep 3
//! significant digits (a percentile is within 0.1% of the true value); the
//! per-second ones keep 2 (within 1%) to stay small, since there is one per
//! second per thread.

use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Highest latency recorded exactly; anything slower is recorded as this.
pub const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

fn histogram(sigfig: u8) -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts; a failure here is
    // a bug in this file, caught by every test.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, sigfig)
        .unwrap_or_else(|e| panic!("histogram bounds are valid constants: {e}"))
}

fn record(h: &mut Histogram<u64>, ns: u64) {
    h.saturating_record(ns.clamp(1, MAX_LATENCY_NS));
}

fn add(into: &mut Histogram<u64>, from: &Histogram<u64>) {
    // Same bounds on both sides, so adding cannot fail.
    if let Err(e) = into.add(from) {
        panic!("histograms with equal bounds always add: {e}");
    }
}

/// Counts and latencies of one command type.
#[derive(Debug, Clone)]
pub struct CommandStats {
    pub name: String,
    pub latency: Histogram<u64>,
    /// Replies that were errors (`-ERR ...`); they count as requests and
    /// their latency is recorded too.
    pub errors: u64,
    /// Null replies (a GET of a missing key).
    pub nulls: u64,
    /// The first error reply seen, for the report.
    pub first_error: Option<String>,
}

impl CommandStats {
    pub fn new(name: &str) -> Self {
        CommandStats {
            name: name.to_owned(),
            latency: histogram(3),
            errors: 0,
            nulls: 0,
            first_error: None,
        }
    }

    pub fn requests(&self) -> u64 {
        self.latency.len()
    }

    pub fn merge(&mut self, other: &CommandStats) {
        add(&mut self.latency, &other.latency);
        self.errors += other.errors;
        self.nulls += other.nulls;
        if self.first_error.is_none() {
            self.first_error.clone_from(&other.first_error);
        }
    }
}

/// Replies completed in one second of the run (all command types).
#[derive(Debug, Clone)]
pub struct Second {
    pub latency: Histogram<u64>,
    pub errors: u64,
}

impl Second {
    fn new() -> Self {
        Second {
            latency: histogram(2),
            errors: 0,
        }
    }
}

/// Per-second buckets: bucket `i` holds the replies read during
/// `[i, i+1)` seconds after the run's start.
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    pub seconds: Vec<Second>,
}

impl Timeline {
    pub fn bucket(&mut self, since_start: Duration) -> &mut Second {
        let i = usize::try_from(since_start.as_secs()).unwrap_or(usize::MAX - 1);
        if self.seconds.len() <= i {
            self.seconds.resize_with(i + 1, Second::new);
        }
        // The resize above makes `i` a valid index.
        &mut self.seconds[i]
    }

    pub fn merge(&mut self, other: &Timeline) {
        if self.seconds.len() < other.seconds.len() {
            self.seconds.resize_with(other.seconds.len(), Second::new);
        }
        for (mine, theirs) in self.seconds.iter_mut().zip(&other.seconds) {
            add(&mut mine.latency, &theirs.latency);
            mine.errors += theirs.errors;
        }
    }
}

/// Everything one thread (or, merged, the whole run) measured.
#[derive(Debug, Clone)]
pub struct Recorder {
    /// One entry per command type, in the workload's order.
    pub commands: Vec<CommandStats>,
    pub timeline: Timeline,
    /// With `--rate`: how late each batch was written compared with its
    /// schedule (the generator's own lag, already included in latencies).
    pub send_lag: Histogram<u64>,
}

impl Recorder {
    pub fn new(command_names: &[String]) -> Self {
        Recorder {
            commands: command_names.iter().map(|n| CommandStats::new(n)).collect(),
            timeline: Timeline::default(),
            send_lag: histogram(2),
        }
    }

    /// One reply of command `command` (index into the workload) that took
    /// `latency` and was read `since_start` into the run.
    pub fn record(
        &mut self,
        command: usize,
        latency: Duration,
        since_start: Duration,
        error: Option<&[u8]>,
        null: bool,
    ) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let second = self.timeline.bucket(since_start);
        record(&mut second.latency, ns);
        if error.is_some() {
            second.errors += 1;
        }
        let Some(stats) = self.commands.get_mut(command) else {
            return;
        };
        record(&mut stats.latency, ns);
        if null {
            stats.nulls += 1;
        }
        if let Some(text) = error {
            stats.errors += 1;
            if stats.first_error.is_none() {
                let text = String::from_utf8_lossy(text);
                stats.first_error = Some(text.trim_end().chars().take(200).collect());
            }
        }
    }

    pub fn record_send_lag(&mut self, lag: Duration) {
        let ns = u64::try_from(lag.as_nanos()).unwrap_or(u64::MAX);
        record(&mut self.send_lag, ns);
    }

    /// Adds `other` into `self`; both must come from the same workload.
    pub fn merge(&mut self, other: &Recorder) {
        for (mine, theirs) in self.commands.iter_mut().zip(&other.commands) {
            mine.merge(theirs);
        }
        self.timeline.merge(&other.timeline);
        add(&mut self.send_lag, &other.send_lag);
    }

    /// All command types together.
    pub fn total(&self) -> CommandStats {
        let mut all = CommandStats::new("ALL");
        for c in &self.commands {
            all.merge(c);
        }
        all
    }
}

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Percentiles {
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p99_9: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |ns: u64| ns as f64 / 1e6;
        if h.is_empty() {
            return Percentiles {
                mean: 0.0,
                p50: 0.0,
                p90: 0.0,
                p99: 0.0,
                p99_9: 0.0,
                max: 0.0,
            };
        }
        Percentiles {
            mean: h.mean() / 1e6,
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p99_9: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn us(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Within hdrhistogram's 3-significant-digit error.
    fn close(got_ms: f64, want_ms: f64) -> bool {
        (got_ms - want_ms).abs() <= want_ms * 0.001 + 1e-6
    }

    #[test]
    fn percentiles_of_a_known_spread() {
        // 1..=10_000 us, once each.
        let mut r = Recorder::new(&["GET".to_owned()]);
        for i in 1..=10_000 {
            r.record(0, us(i), Duration::ZERO, None, false);
        }
        let p = Percentiles::of(&r.commands[0].latency);
        assert!(close(p.p50, 5.0), "{p:?}");
        assert!(close(p.p90, 9.0), "{p:?}");
        assert!(close(p.p99, 9.9), "{p:?}");
        assert!(close(p.p99_9, 9.99), "{p:?}");
        assert!(close(p.max, 10.0), "{p:?}");
        assert!(close(p.mean, 5.0005), "{p:?}");
    }

    #[test]
    fn merging_connections_equals_one_histogram_over_all() {
        let names = ["SET".to_owned(), "GET".to_owned()];
        let mut parts: Vec<Recorder> = (0..4).map(|_| Recorder::new(&names)).collect();
        let mut single = Recorder::new(&names);
        for i in 0..40_000u64 {
            // Skewed per part: part 3 gets all the slow ones.
            let part = if i % 100 == 0 { 3 } else { (i % 3) as usize };
            let lat = if part == 3 {
                us(5_000 + i)
            } else {
                us(50 + i % 200)
            };
            let cmd = (i % 2) as usize;
            let at = Duration::from_millis(i / 10);
            parts[part].record(cmd, lat, at, None, false);
            single.record(cmd, lat, at, None, false);
        }
        let mut merged = Recorder::new(&names);
        for p in &parts {
            merged.merge(p);
        }
        for c in 0..2 {
            assert_eq!(merged.commands[c].requests(), single.commands[c].requests());
            assert_eq!(
                Percentiles::of(&merged.commands[c].latency),
                Percentiles::of(&single.commands[c].latency)
            );
        }
        // The slow 1% shows at p99.9 but not at p90.
        let all = Percentiles::of(&merged.total().latency);
        assert!(all.p90 < 0.3 && all.p99_9 > 5.0, "{all:?}");
        assert_eq!(merged.total().requests(), 40_000);
        assert_eq!(merged.timeline.seconds.len(), single.timeline.seconds.len());
    }

    #[test]
    fn timeline_buckets_by_whole_seconds_since_start() {
        let mut r = Recorder::new(&["SET".to_owned()]);
        r.record(0, us(100), Duration::from_millis(0), None, false);
        r.record(0, us(100), Duration::from_millis(999), None, false);
        r.record(
            0,
            us(900),
            Duration::from_millis(1000),
            Some(b"-ERR x\r\n"),
            false,
        );
        r.record(0, us(100), Duration::from_millis(3500), None, false);
        let s = &r.timeline.seconds;
        assert_eq!(s.len(), 4);
        let counts: Vec<u64> = s.iter().map(|b| b.latency.len()).collect();
        assert_eq!(counts, [2, 1, 0, 1], "an idle second stays, empty");
        assert_eq!(s[1].errors, 1);
        // 2 significant digits in the per-second histograms.
        let p99 = Percentiles::of(&s[1].latency).p99;
        assert!((p99 - 0.9).abs() < 0.01, "{p99}");
    }

    #[test]
    fn timeline_merge_aligns_seconds_and_grows() {
        let mut a = Timeline::default();
        let mut b = Timeline::default();
        record(&mut a.bucket(Duration::from_secs(0)).latency, 10);
        record(&mut b.bucket(Duration::from_secs(0)).latency, 10);
        record(&mut b.bucket(Duration::from_millis(2_100)).latency, 10);
        a.merge(&b);
        let counts: Vec<u64> = a.seconds.iter().map(|s| s.latency.len()).collect();
        assert_eq!(counts, [2, 0, 1]);
    }

    #[test]
    fn errors_and_nulls_are_counted_per_command() {
        let mut r = Recorder::new(&["SET".to_owned(), "GET".to_owned()]);
        r.record(0, us(1), Duration::ZERO, Some(b"-OOM full\r\n"), false);
        r.record(0, us(1), Duration::ZERO, Some(b"-ERR later\r\n"), false);
        r.record(1, us(1), Duration::ZERO, None, true);
        r.record(1, us(1), Duration::ZERO, None, false);
        assert_eq!(r.commands[0].errors, 2);
        assert_eq!(r.commands[0].first_error.as_deref(), Some("-OOM full"));
        assert_eq!((r.commands[1].errors, r.commands[1].nulls), (0, 1));
        let total = r.total();
        assert_eq!((total.requests(), total.errors, total.nulls), (4, 2, 1));
    }

    #[test]
    fn absurd_latencies_saturate_instead_of_failing() {
        let mut r = Recorder::new(&["GET".to_owned()]);
        r.record(0, Duration::from_secs(100_000), Duration::ZERO, None, false);
        r.record(0, Duration::ZERO, Duration::ZERO, None, false);
        assert_eq!(r.commands[0].requests(), 2);
    }
}
