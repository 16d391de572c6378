//! The latency monitor (`latency-monitor-threshold`, LATENCY): as in Redis,
//! events that took at least the threshold in milliseconds are kept per
//! event name, 160 samples each (one per second, the largest of that
//! second), with the largest of all.
//!
//! What is timed differs from Redis, whose events are single commands and
//! named pieces of work on its one thread. Here every task of an event
//! loop is timed poll by poll ([`Timed`], wrapped around each task by
//! `runtime::spawn`): a poll that held its worker's loop for the threshold
//! or longer is an event named after the task's function
//! (`conn-serve` for a client's connection, a batch of its commands;
//! `snapshot-writer-loop` for a slice of snapshot work; ...). A poll's
//! time is wall time: it includes any time the scheduler took the thread
//! off its core during the poll. A poll that answers several requests (a
//! pipeline; on epoll, whatever the socket already holds) is cut at
//! [`checkpoint`] before its replies leave and before an administration
//! command runs, so a client that got the reply of a slow command finds
//! its event, as in Redis.
//!
//! At `loglevel verbose` each event is also logged with its thread, and
//! at `loglevel debug` so is every stretch of the threshold or longer in
//! which a worker polled no task at all (its loop was waiting for
//! completions, or the thread did not run).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::log;

/// Samples kept per event (Redis's `LATENCY_TS_LEN`).
pub const SAMPLES: usize = 160;

/// `latency-monitor-threshold` in milliseconds; 0 = off.
static THRESHOLD_MS: AtomicU64 = AtomicU64::new(0);

static EVENTS: Mutex<BTreeMap<String, Series>> = Mutex::new(BTreeMap::new());

pub fn set_threshold(ms: u64) {
    THRESHOLD_MS.store(ms, Ordering::Relaxed);
}

pub fn threshold() -> u64 {
    THRESHOLD_MS.load(Ordering::Relaxed)
}

/// One event's samples.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    /// (unix seconds, milliseconds), oldest first, at most [`SAMPLES`].
    pub samples: std::collections::VecDeque<(i64, u64)>,
    /// The largest latency ever recorded.
    pub max: u64,
}

impl Series {
    /// Adds a sample; one per second: a second sample in the same second
    /// keeps the larger of the two (as Redis's `latencyAddSample`).
    fn add(&mut self, unix: i64, ms: u64) {
        self.max = self.max.max(ms);
        if let Some(last) = self.samples.back_mut() {
            if last.0 == unix {
                last.1 = last.1.max(ms);
                return;
            }
        }
        if self.samples.len() == SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((unix, ms));
    }
}

fn events() -> std::sync::MutexGuard<'static, BTreeMap<String, Series>> {
    EVENTS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records `ms` for `event` (the caller compared it with the threshold).
fn add(event: &str, ms: u64) {
    let unix = (crate::sys::now_ms() / 1000) as i64;
    let mut ev = events();
    match ev.get_mut(event) {
        Some(s) => s.add(unix, ms),
        None => {
            let mut s = Series::default();
            s.add(unix, ms);
            ev.insert(event.to_string(), s);
        }
    }
}

/// Every event's series, by name.
pub fn snapshot() -> BTreeMap<String, Series> {
    events().clone()
}

/// One event's series.
pub fn history(event: &str) -> Option<Series> {
    events().get(event).cloned()
}

/// Forgets the named events (all with none named); returns how many
/// series were dropped.
pub fn reset(names: &[&str]) -> usize {
    let mut ev = events();
    if names.is_empty() {
        let n = ev.len();
        ev.clear();
        return n;
    }
    names.iter().filter(|n| ev.remove(**n).is_some()).count()
}

/// LATENCY DOCTOR's report: per event, its spikes with their average,
/// mean deviation and period, and the worst ever.
pub fn doctor() -> String {
    let t = threshold();
    if t == 0 {
        return "Latency monitoring is disabled in this server. Enable it with \
                \"CONFIG SET latency-monitor-threshold <milliseconds>\": every poll of a \
                task that holds a worker's event loop that long or longer is then \
                recorded.\n"
            .to_string();
    }
    let events = snapshot();
    if events.is_empty() {
        return format!(
            "No latency spike (a task holding a worker's event loop {t} ms or longer) \
             has been observed since the monitor was last reset.\n"
        );
    }
    let now = (crate::sys::now_ms() / 1000) as i64;
    let mut text = format!(
        "Latency spikes observed (threshold {t} ms; an event is a task that held a \
         worker's event loop that long):\n\n"
    );
    for (i, (name, s)) in events.iter().enumerate() {
        let n = s.samples.len().max(1) as u64;
        let sum: u64 = s.samples.iter().map(|x| x.1).sum();
        let avg = sum / n;
        let dev = s.samples.iter().map(|x| x.1.abs_diff(avg)).sum::<u64>() / n;
        let first = s.samples.front().map_or(now, |x| x.0);
        let period = (now - first).max(0) as f64 / n as f64;
        text.push_str(&format!(
            "{}. {name}: {} latency spikes (average {avg}ms, mean deviation {dev}ms, \
             period {period:.2} sec). Worst all time event {}ms.\n",
            i + 1,
            s.samples.len(),
            s.max
        ));
    }
    text.push_str(
        "\nTimes are wall time: a spike includes any time the thread was off its core \
         (another process, or the host not running this VM: see steal in /proc/stat).\n",
    );
    text
}

/// An event name from a task's type name: the async function's path
/// without the crate and closure parts, `::` and `_` as `-`
/// (`kv_server::conn::serve::{{closure}}` is `conn-serve`).
pub fn event_name(type_name: &str) -> String {
    let path = type_name.split('<').next().unwrap_or(type_name);
    // The crate's name first (`kv_server`), then the module path.
    let parts: Vec<&str> = path
        .split("::")
        .skip(1)
        .filter(|p| !p.is_empty() && !p.starts_with('{'))
        .collect();
    if parts.is_empty() {
        return "task".to_string();
    }
    parts.join("-").replace('_', "-")
}

thread_local! {
    /// Marks of the running poll (see [`mark`]).
    static MARKS: std::cell::RefCell<Vec<(&'static str, Instant)>> = const { std::cell::RefCell::new(Vec::new()) };
    /// When this thread's last timed poll ended.
    static LAST_POLL_END: std::cell::Cell<Option<Instant>> = const { std::cell::Cell::new(None) };
    /// The running poll: its task's name and when its unrecorded stretch
    /// began (moved on by [`checkpoint`]).
    static RUNNING: std::cell::Cell<Option<(&'static str, Instant)>> = const { std::cell::Cell::new(None) };
}

/// Records the running poll's time so far as an event if it reached the
/// threshold, and starts its count again. A connection calls it before its
/// replies leave: on epoll one poll can answer several requests in a row
/// (whatever the socket already holds), and a client that got the reply of
/// a slow command must find its event in LATENCY LATEST, as in Redis, which
/// records a command's latency before its reply is written.
pub fn checkpoint() {
    let t = threshold();
    if t == 0 {
        return;
    }
    if let Some((name, start)) = RUNNING.get() {
        let now = Instant::now();
        let ms = now.duration_since(start).as_millis() as u64;
        if ms >= t {
            record(name, ms, start);
            RUNNING.set(Some((name, now)));
        }
    }
}

/// Adds an event of `ms` for the task `name` whose stretch began at
/// `start`, and logs it at `loglevel verbose` with the poll's marks.
fn record(name: &'static str, ms: u64, start: Instant) {
    let event = event_name(name);
    add(&event, ms);
    let marks = MARKS.with_borrow(|m| {
        m.iter()
            .map(|(l, at)| format!(" {l}@{}us", at.saturating_duration_since(start).as_micros()))
            .collect::<String>()
    });
    log::verbose(&format!(
        "Latency event {event}: {ms} ms on thread {}{}",
        std::thread::current().name().unwrap_or("?"),
        if marks.is_empty() {
            String::new()
        } else {
            format!(" (marks:{marks})")
        }
    ));
}

/// Notes that the running poll reached `label` (while the monitor is on),
/// so that a slow poll's log line says where its time went.
pub fn mark(label: &'static str) {
    if threshold() > 0 {
        MARKS.with_borrow_mut(|m| {
            if m.len() < 64 {
                m.push((label, Instant::now()));
            }
        });
    }
}

/// A task, timed poll by poll while the monitor is on (see the module).
pub struct Timed<F> {
    task: Pin<Box<F>>,
    name: &'static str,
}

impl<F: Future<Output = ()>> Timed<F> {
    pub fn new(name: &'static str, task: F) -> Self {
        Timed {
            task: Box::pin(task),
            name,
        }
    }
}

impl<F: Future<Output = ()>> Future for Timed<F> {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The threshold is read after the poll: one poll can run several
        // commands (a pipeline; on epoll, whatever the socket already
        // holds), and one that turns the monitor on times those after it.
        let start = Instant::now();
        let idle = LAST_POLL_END
            .get()
            .map(|end| start.saturating_duration_since(end));
        MARKS.with_borrow_mut(Vec::clear);
        RUNNING.set(Some((self.name, start)));
        let r = self.task.as_mut().poll(cx);
        // What `checkpoint` left unrecorded of this poll.
        let since = RUNNING.take().map_or(start, |(_, s)| s);
        let t = threshold();
        if t == 0 {
            return r;
        }
        let end = Instant::now();
        LAST_POLL_END.set(Some(end));
        let ms = end.duration_since(since).as_millis() as u64;
        if ms >= t {
            record(self.name, ms, start);
        }
        if let Some(idle) = idle.filter(|d| d.as_millis() as u64 >= t) {
            log::log(
                log::Level::Debug,
                &format!(
                    "No task polled for {} ms on thread {} (before {})",
                    idle.as_millis(),
                    std::thread::current().name().unwrap_or("?"),
                    event_name(self.name)
                ),
            );
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_from_task_types() {
        assert_eq!(
            event_name("kv_server::conn::serve::{{closure}}"),
            "conn-serve"
        );
        assert_eq!(
            event_name("kv_server::snapshot::writer_loop::{{closure}}"),
            "snapshot-writer-loop"
        );
        assert_eq!(
            event_name("kv_server::admin::bgsave::{{closure}}::{{closure}}"),
            "admin-bgsave"
        );
        assert_eq!(
            event_name("core::future::from_generator::GenFuture<x::y>"),
            "future-from-generator-GenFuture"
        );
        assert_eq!(event_name("{{closure}}"), "task");
    }

    #[test]
    fn one_sample_per_second_the_largest() {
        let mut s = Series::default();
        s.add(10, 5);
        s.add(10, 9);
        s.add(10, 7);
        s.add(11, 3);
        assert_eq!(Vec::from(s.samples.clone()), vec![(10, 9), (11, 3)]);
        assert_eq!(s.max, 9);
        for i in 0..(SAMPLES as i64 + 5) {
            s.add(100 + i, 1);
        }
        assert_eq!(s.samples.len(), SAMPLES);
        assert_eq!(s.samples.front(), Some(&(105, 1)));
        assert_eq!(s.max, 9);
    }
}
