//! `bench scenario durability`: what the append-only log costs, kv-server
//! beside redis-server, in five parts (issue M1.3's targets, then the log
//! rewrite):
//!
//! 1. **Write throughput by policy.** SET, 50 clients, pipeline 1, 64-byte
//!    values, uniform keys over 0..999999, on kv-server with
//!    `appendfsync always` and `no` and on Redis with `appendonly yes` and
//!    `always`, `everysec`, `no`. Targets: ours `always` >= 70% of ours
//!    `no`, and above Redis's `always`.
//! 2. **Reads under `always`.** A 90:10 GET:SET mix (same clients, keys
//!    filled first so GETs hit) on kv-server `always`, kv-server with the
//!    log off (`--appendonly no`), Redis `always` and Redis with the log
//!    off, closed loop and again paced at `--mix-rate` requests/s (a closed
//!    loop hands the slower configuration fewer requests in flight, so
//!    only the paced runs compare latencies at equal load). Target: our
//!    GET p99 under `always` within 1.5x of our GET p99 with the log off.
//!    (Redis answers every reply of an event-loop pass after that pass's
//!    fsync, GETs included.)
//! 3. **Group commit.** SET at pipeline 1 from 1, 10, 100, 1000 clients
//!    under `always` (Redis beside for throughput): throughput, fsyncs per
//!    second and records per group commit, from the deltas of kv-server's
//!    `aof_fsyncs`, `aof_group_commits`, `aof_records` over each run. They
//!    should grow with the load.
//! 4. **Page cache.** ~2 GiB of log (4 KiB SETs overwriting 100k keys, so
//!    the dataset stays ~400 MB) under `everysec` on each server, with the
//!    page cache dropped first (`sync; echo 1 > /proc/sys/vm/drop_caches`,
//!    when permitted): growth of `Cached` in /proc/meminfo, the log's size
//!    (`aof_current_size`, files) and how much of the log files is resident
//!    (`fincore`). Target: ours grows < 32 MiB (it writes with O_DIRECT);
//!    Redis grows by about the log size.
//! 5. **Log rewrite under load.** A fresh server per run with the log on
//!    (`appendfsync everysec`), filled with `--rewrite-mib` MiB of
//!    `--rewrite-value-size` (1 KiB) values, pipelined; then 50 clients
//!    overwriting uniform keys of that range at full speed and a probe
//!    client (a PING about every millisecond, its own connection and
//!    thread); after
//!    `--rewrite-baseline` seconds, BGREWRITEAOF (Redis forks a child that
//!    writes a new base file; kv-server takes a snapshot without a fork,
//!    which becomes the log's new base). Sampled every 100 ms until the
//!    rewrite ended (`aof_rewrite_in_progress` 0, the rewrite counted or
//!    failed, and no child left) and `--rewrite-after` seconds more: RSS of
//!    the server and its children, PSS (at most once a second and never
//!    within 200 ms of the BGREWRITEAOF: reading `smaps_rollup` holds the
//!    memory map lock a fork needs), `Cached`, commands/s, the log's size.
//!    Recorded: how long the rewrite took, peak extra memory (RSS and PSS,
//!    parent + children, over the last sample before it), page cache
//!    growth, the longest probe stall and probe p99 during it against an
//!    equally long stretch just before it (a PING answered after the
//!    BGREWRITEAOF was sent counts for the rewrite: it may have waited for
//!    Redis's fork), throughput before and during, and the log's size
//!    before and after. No target: the figures stand beside Redis's.
//!
//! Every part alternates its configurations run by run (redis, ours,
//! redis, ...) and reports medians over `--runs` (part 4 too: `Cached` is
//! machine-wide, so anything else writing files shows up in it; the
//! `fincore` figure is the log files' own pages). Every configuration is its
//! own server process, started in the scratch directory for its part
//! (parts 4 and 5: for each run) and stopped (by PID) when the part (run)
//! ends. Both servers run with `auto-aof-rewrite-percentage 0`: an
//! automatic rewrite (Redis's fork, kv-server's snapshot) in the middle of
//! parts 1-4 would measure something else; part 5 starts its one rewrite
//! itself.
//!
//! `--quick` shrinks every part to a few seconds (the CI test uses it).

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::snapshot::{probe_stats, probe_windows, ProbeWindow};
use super::{
    basic_spec, children_of, fill_values, info_field, info_u64, median, page_cache, page_size,
    probe, pss_of, ratio, redis_server_bin, rss_of, Client, Common, Reply, Result, Scratch, Server,
    ServerProcess,
};
use crate::chart::{Chart, Marker, Panel, Series};
use crate::{KeyPattern, LoadReport, LoadSpec, Range, StopAfter};

#[derive(Args, Debug, Clone)]
pub struct DurabilityArgs {
    #[command(flatten)]
    pub common: Common,
    /// Tiny sizes for tests and CI (seconds, not minutes); explicit flags
    /// still win. Figures of a quick run mean nothing.
    #[arg(long)]
    pub quick: bool,
    /// Which parts to run, e.g. `1,3` (1 write throughput, 2 GET:SET mix,
    /// 3 group commit, 4 page cache, 5 log rewrite) [default: all].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub parts: Vec<u8>,
    /// Runs per configuration in every part (parts 4 and 5 too),
    /// alternating; the summaries take medians [default: 3; --quick: 1].
    #[arg(long)]
    pub runs: Option<usize>,
    /// Part 1: SETs per run (50 clients, pipeline 1, 64-byte values, keys
    /// 0..999999) [default: 200000; --quick: 2000].
    #[arg(long, short = 'n')]
    pub requests: Option<u64>,
    /// Part 2: requests per run of the 90:10 GET:SET mix [default: 200000;
    /// --quick: 2000].
    #[arg(long)]
    pub mix_requests: Option<u64>,
    /// Part 2: keys of the mix, all SET before the runs so GETs hit
    /// [default: 1000000; --quick: 1000].
    #[arg(long)]
    pub mix_keys: Option<u64>,
    /// Part 2: requests/s of the paced runs of the mix, which compare
    /// latencies at equal load (a closed loop gives the slower server
    /// fewer requests in flight); 0: no paced runs [default: 40000;
    /// --quick: 5000].
    #[arg(long)]
    pub mix_rate: Option<f64>,
    /// Part 3: client counts, e.g. 1,10,100,1000 [default: 1,10,100,1000;
    /// --quick: 1,10,100].
    #[arg(long, value_delimiter = ',', value_name = "N,...")]
    pub scaling_clients: Vec<usize>,
    /// Part 3: seconds per run [default: 3; --quick: 0.5].
    #[arg(long)]
    pub scaling_secs: Option<f64>,
    /// Part 4: MiB of log to write on each server [default: 2048; --quick:
    /// 16].
    #[arg(long)]
    pub log_mib: Option<u64>,
    /// Part 4: value size in bytes.
    #[arg(long, default_value_t = 4096)]
    pub log_value_size: u64,
    /// Part 4: keys overwritten (the dataset is about keys x value size)
    /// [default: 100000; --quick: 1000].
    #[arg(long)]
    pub log_keys: Option<u64>,
    /// Part 4: appendfsync of both servers.
    #[arg(long, default_value = "everysec", value_parser = ["no", "everysec", "always"])]
    pub log_fsync: String,
    /// Part 4: do not `sync; echo 1 > /proc/sys/vm/drop_caches` before each
    /// server's run (implied by --quick: it slows everything else on the
    /// machine down).
    #[arg(long)]
    pub no_drop_caches: bool,
    /// Part 5: MiB of values filled before the log rewrite (Redis's
    /// used_memory is ~1.3x that; its fork may double it) [default: 1024;
    /// --quick: 8].
    #[arg(long)]
    pub rewrite_mib: Option<u64>,
    /// Part 5: value size in bytes of the fill and of the overwrite load.
    #[arg(long, default_value_t = 1024)]
    pub rewrite_value_size: u64,
    /// Part 5: seconds of load before BGREWRITEAOF. The rewrite is compared
    /// with an equally long stretch of it (at most all of it), so keep it
    /// at least as long as Redis's rewrite [default: 10; --quick: 0.5].
    #[arg(long)]
    pub rewrite_baseline: Option<f64>,
    /// Part 5: seconds to go on sampling after the rewrite ended [default:
    /// 2; --quick: 0.3].
    #[arg(long)]
    pub rewrite_after: Option<f64>,
    /// Part 5: give up on a rewrite still running after this many seconds.
    #[arg(long, default_value_t = 600.0)]
    pub rewrite_max_secs: f64,
}

/// The flags with `--quick` and the defaults applied.
#[derive(Debug, Clone, Serialize)]
pub struct Settings {
    pub quick: bool,
    pub parts: Vec<u8>,
    pub runs: usize,
    pub clients: usize,
    pub value_size: u64,
    pub key_range: u64,
    pub requests: u64,
    pub mix_requests: u64,
    pub mix_keys: u64,
    /// GET:SET weights of part 2.
    pub mix_get_set: (u32, u32),
    /// Requests/s of part 2's paced runs (`None`: closed loop only).
    pub mix_rate: Option<f64>,
    pub scaling_clients: Vec<usize>,
    pub scaling_secs: f64,
    pub log_bytes: u64,
    pub log_value_size: u64,
    pub log_keys: u64,
    pub log_fsync: String,
    pub drop_caches: bool,
    /// Part 5: bytes of values filled, their size, and so the keys.
    pub rewrite_bytes: u64,
    pub rewrite_value_size: u64,
    pub rewrite_keys: u64,
    pub rewrite_baseline_secs: f64,
    pub rewrite_after_secs: f64,
    pub rewrite_max_secs: f64,
    pub server_threads: Option<usize>,
    pub bench_threads: usize,
}

impl Settings {
    pub fn of(a: &DurabilityArgs) -> Result<Settings> {
        let q = a.quick;
        let pick =
            |v: Option<u64>, full: u64, quick: u64| v.unwrap_or(if q { quick } else { full });
        let mut parts = if a.parts.is_empty() {
            vec![1, 2, 3, 4, 5]
        } else {
            a.parts.clone()
        };
        parts.sort_unstable();
        parts.dedup();
        if let Some(p) = parts.iter().find(|p| !(1..=5).contains(*p)) {
            return Err(format!("--parts: there is no part {p} (1 to 5)"));
        }
        let scaling_clients = if !a.scaling_clients.is_empty() {
            a.scaling_clients.clone()
        } else if q {
            vec![1, 10, 100]
        } else {
            vec![1, 10, 100, 1000]
        };
        if scaling_clients.contains(&0) {
            return Err("--scaling-clients: 0 clients".into());
        }
        let mut s = Settings {
            quick: q,
            parts,
            runs: a.runs.unwrap_or(if q { 1 } else { 3 }),
            clients: 50,
            value_size: 64,
            key_range: 1_000_000,
            requests: pick(a.requests, 200_000, 2_000),
            mix_requests: pick(a.mix_requests, 200_000, 2_000),
            mix_keys: pick(a.mix_keys, 1_000_000, 1_000),
            mix_get_set: (9, 1),
            mix_rate: Some(a.mix_rate.unwrap_or(if q { 5_000.0 } else { 40_000.0 }))
                .filter(|&r| r != 0.0),
            scaling_clients,
            scaling_secs: a.scaling_secs.unwrap_or(if q { 0.5 } else { 3.0 }),
            log_bytes: pick(a.log_mib, 2048, 16) << 20,
            log_value_size: a.log_value_size,
            log_keys: pick(a.log_keys, 100_000, 1_000),
            log_fsync: a.log_fsync.clone(),
            drop_caches: !(q || a.no_drop_caches),
            rewrite_bytes: pick(a.rewrite_mib, 1024, 8) << 20,
            rewrite_value_size: a.rewrite_value_size,
            rewrite_keys: 0, // below
            rewrite_baseline_secs: a.rewrite_baseline.unwrap_or(if q { 0.5 } else { 10.0 }),
            rewrite_after_secs: a.rewrite_after.unwrap_or(if q { 0.3 } else { 2.0 }),
            rewrite_max_secs: a.rewrite_max_secs,
            server_threads: a.common.server_threads,
            bench_threads: a.common.bench_threads.max(1),
        };
        if s.runs == 0 || s.requests == 0 || s.mix_requests == 0 || s.mix_keys == 0 {
            return Err(
                "--runs, --requests, --mix-requests and --mix-keys must be at least 1".into(),
            );
        }
        if s.log_keys == 0 || s.log_value_size == 0 {
            return Err("--log-keys and --log-value-size must be at least 1".into());
        }
        if s.rewrite_bytes == 0 || s.rewrite_value_size == 0 {
            return Err("--rewrite-mib and --rewrite-value-size must be at least 1".into());
        }
        s.rewrite_keys = s.rewrite_bytes.div_ceil(s.rewrite_value_size);
        for (flag, v, min) in [
            ("--rewrite-baseline", s.rewrite_baseline_secs, 0.1),
            ("--rewrite-after", s.rewrite_after_secs, 0.0),
            ("--rewrite-max-secs", s.rewrite_max_secs, 0.1),
        ] {
            if !(v.is_finite() && v >= min) {
                return Err(format!("{flag} must be at least {min}, not {v}"));
            }
        }
        if let Some(r) = s.mix_rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("--mix-rate must be above 0 (or 0: none), not {r}"));
            }
        }
        if !(s.scaling_secs.is_finite() && s.scaling_secs > 0.0) {
            return Err(format!(
                "--scaling-secs must be above 0, not {}",
                s.scaling_secs
            ));
        }
        Ok(s)
    }

    fn has(&self, part: u8) -> bool {
        self.parts.contains(&part)
    }
}

/// One server configuration: which server, log on or off, which policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    pub server: Server,
    pub appendonly: bool,
    pub fsync: &'static str,
}

impl Config {
    const fn new(server: Server, appendonly: bool, fsync: &'static str) -> Config {
        Config {
            server,
            appendonly,
            fsync,
        }
    }

    /// `kv-server always`, `redis everysec`, `kv-server off` (log off).
    pub fn label(&self) -> String {
        let policy = if self.appendonly { self.fsync } else { "off" };
        format!("{} {policy}", self.server.name())
    }

    fn dir(&self, part: u8) -> String {
        self.label().replace(' ', "-") + &format!("-p{part}")
    }
}

const KV: Server = Server::KvServer;
const REDIS: Server = Server::Redis;

/// Part 1's configurations, in the order each round runs them.
const WRITE_CONFIGS: [Config; 5] = [
    Config::new(REDIS, true, "always"),
    Config::new(KV, true, "always"),
    Config::new(REDIS, true, "everysec"),
    Config::new(KV, true, "no"),
    Config::new(REDIS, true, "no"),
];

/// Part 2's.
const MIX_CONFIGS: [Config; 4] = [
    Config::new(REDIS, true, "always"),
    Config::new(KV, true, "always"),
    Config::new(REDIS, false, "always"),
    Config::new(KV, false, "always"),
];

/// Part 3's.
const SCALING_CONFIGS: [Config; 2] = [
    Config::new(REDIS, true, "always"),
    Config::new(KV, true, "always"),
];

/// kv-server's log counters (summed over shards) at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct AofCounters {
    pub fsyncs: u64,
    pub group_commits: u64,
    pub records: u64,
    pub bytes_written: u64,
    /// `aof_current_size`: record bytes in the log.
    pub current_size: u64,
}

impl AofCounters {
    /// From INFO persistence text; `None` without kv-server's fields
    /// (Redis, or the log off).
    pub fn parse(info: &str) -> Option<AofCounters> {
        if info_u64(info, "aof_enabled") != Some(1) {
            return None;
        }
        Some(AofCounters {
            fsyncs: info_u64(info, "aof_fsyncs")?,
            group_commits: info_u64(info, "aof_group_commits")?,
            records: info_u64(info, "aof_records")?,
            bytes_written: info_u64(info, "aof_bytes_written").unwrap_or(0),
            current_size: info_u64(info, "aof_current_size").unwrap_or(0),
        })
    }
}

/// What kv-server's log did during one run.
#[derive(Debug, Clone, Serialize)]
pub struct AofDelta {
    pub fsyncs: u64,
    pub group_commits: u64,
    pub records: u64,
    pub bytes_written: u64,
    /// Growth of `aof_current_size` (record bytes).
    pub log_bytes: u64,
    /// bytes_written / log_bytes: O_DIRECT rewrites a partly filled 4 KiB
    /// block at every commit. (The zeros a segment is prepared with are not
    /// in `aof_bytes_written`.)
    pub write_amplification: Option<f64>,
    pub fsyncs_per_sec: f64,
    /// records / group commits (`None` without commits).
    pub records_per_commit: Option<f64>,
    /// records / fsyncs (`None` without fsyncs: `appendfsync no`).
    pub records_per_fsync: Option<f64>,
    /// `aof_fsync_p99_usec` after the run: over every fdatasync since the
    /// server started (part 2: the fill included), not this run's alone.
    pub fsync_p99_usec: Option<u64>,
    pub io_path: Option<String>,
}

impl AofDelta {
    pub fn between(
        before: AofCounters,
        after: AofCounters,
        secs: f64,
        info_after: &str,
    ) -> AofDelta {
        let fsyncs = after.fsyncs.saturating_sub(before.fsyncs);
        let group_commits = after.group_commits.saturating_sub(before.group_commits);
        let records = after.records.saturating_sub(before.records);
        let per = |n: u64| (n > 0).then(|| records as f64 / n as f64);
        let bytes_written = after.bytes_written.saturating_sub(before.bytes_written);
        let log_bytes = after.current_size.saturating_sub(before.current_size);
        AofDelta {
            fsyncs,
            group_commits,
            records,
            bytes_written,
            log_bytes,
            write_amplification: (log_bytes > 0).then(|| bytes_written as f64 / log_bytes as f64),
            fsyncs_per_sec: fsyncs as f64 / secs.max(1e-9),
            records_per_commit: per(group_commits),
            records_per_fsync: per(fsyncs),
            fsync_p99_usec: info_u64(info_after, "aof_fsync_p99_usec"),
            io_path: info_field(info_after, "aof_io_path").map(str::to_string),
        }
    }
}

/// One run of parts 1-3.
#[derive(Debug, Clone, Serialize)]
pub struct RunFigure {
    pub part: u8,
    pub config: String,
    pub server: Server,
    pub appendonly: bool,
    pub appendfsync: &'static str,
    /// Connections.
    pub clients: usize,
    /// Requests/s of a paced run (latency counted from the schedule);
    /// `None`: closed loop, as fast as the server answers.
    pub rate: Option<f64>,
    pub run: usize,
    /// Seconds since the scenario started, at the run's start.
    pub started_at: f64,
    pub duration_secs: f64,
    pub requests: u64,
    pub errors: u64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub get_p50_ms: Option<f64>,
    pub get_p99_ms: Option<f64>,
    pub set_p50_ms: Option<f64>,
    pub set_p99_ms: Option<f64>,
    /// GETs that found no key (part 2 fills the keys first: should be 0).
    pub get_nulls: Option<u64>,
    /// kv-server with the log on only.
    pub aof: Option<AofDelta>,
    /// (seconds since the scenario started, requests/s, p99 ms), two
    /// points (start and end) per second of the run.
    pub timeline: Vec<(f64, f64, f64)>,
}

/// Medians of one configuration (and client count) over its runs.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub part: u8,
    pub config: String,
    pub server: Server,
    pub clients: usize,
    pub rate: Option<f64>,
    pub runs: usize,
    pub throughput: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub get_p99_ms: Option<f64>,
    pub set_p99_ms: Option<f64>,
    pub fsyncs_per_sec: Option<f64>,
    pub records_per_commit: Option<f64>,
    pub records_per_fsync: Option<f64>,
    pub fsync_p99_usec: Option<f64>,
    pub write_amplification: Option<f64>,
}

/// Medians of the runs of `config` with `clients` connections (paced at
/// `rate`, or closed loop) in `part`.
pub fn summarize(
    part: u8,
    config: &Config,
    clients: usize,
    rate: Option<f64>,
    figures: &[RunFigure],
) -> Summary {
    let label = config.label();
    let runs: Vec<&RunFigure> = figures
        .iter()
        .filter(|f| f.part == part && f.config == label && f.clients == clients && f.rate == rate)
        .collect();
    let med = |pick: &dyn Fn(&RunFigure) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = runs.iter().filter_map(|f| pick(f)).collect();
        median(&v)
    };
    Summary {
        part,
        config: label.clone(),
        server: config.server,
        clients,
        rate,
        runs: runs.len(),
        throughput: med(&|f| Some(f.throughput)),
        p50_ms: med(&|f| Some(f.p50_ms)),
        p99_ms: med(&|f| Some(f.p99_ms)),
        get_p99_ms: med(&|f| f.get_p99_ms),
        set_p99_ms: med(&|f| f.set_p99_ms),
        fsyncs_per_sec: med(&|f| f.aof.as_ref().map(|a| a.fsyncs_per_sec)),
        records_per_commit: med(&|f| f.aof.as_ref().and_then(|a| a.records_per_commit)),
        records_per_fsync: med(&|f| f.aof.as_ref().and_then(|a| a.records_per_fsync)),
        fsync_p99_usec: med(&|f| {
            f.aof
                .as_ref()
                .and_then(|a| a.fsync_p99_usec)
                .map(|u| u as f64)
        }),
        write_amplification: med(&|f| f.aof.as_ref().and_then(|a| a.write_amplification)),
    }
}

/// Part 4 on one server.
#[derive(Debug, Clone, Serialize)]
pub struct PageCacheResult {
    pub config: String,
    pub server: Server,
    pub run: usize,
    pub requests: u64,
    pub errors: u64,
    pub duration_secs: f64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Whether `drop_caches` was written before the run.
    pub caches_dropped: bool,
    /// Why not, when it was wanted.
    pub drop_caches_error: Option<String>,
    /// `Cached` of /proc/meminfo, bytes: before the load, at its highest
    /// while it ran, right after it.
    pub cached_before: u64,
    pub cached_peak: u64,
    pub cached_after: u64,
    pub growth_after: i64,
    pub growth_peak: i64,
    /// `aof_current_size` after the load.
    pub log_bytes: Option<u64>,
    /// Apparent size of the files in the log directory (kv-server
    /// preallocates its segments, so this is above `log_bytes`).
    pub files_bytes: u64,
    /// Bytes of the log files in the page cache (`fincore`), `None` if
    /// fincore is not installed.
    pub resident_bytes: Option<u64>,
    pub io_path: Option<String>,
    /// (seconds since the scenario started, Cached bytes), every ~100 ms.
    pub samples: Vec<(f64, u64)>,
    pub timeline: Vec<(f64, f64, f64)>,
}

/// Medians of part 4's runs on one server.
#[derive(Debug, Clone, Serialize)]
pub struct PageCacheSummary {
    pub config: String,
    pub server: Server,
    pub runs: usize,
    pub throughput: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub growth_after: Option<f64>,
    pub growth_peak: Option<f64>,
    pub log_bytes: Option<f64>,
    pub files_bytes: Option<f64>,
    pub resident_bytes: Option<f64>,
    pub io_path: Option<String>,
    pub caches_dropped: bool,
}

/// Medians of the part 4 runs of `config`; `None` if it has none.
pub fn summarize_page_cache(config: &str, runs: &[PageCacheResult]) -> Option<PageCacheSummary> {
    let runs: Vec<&PageCacheResult> = runs.iter().filter(|r| r.config == config).collect();
    let first = runs.first()?;
    let med = |pick: &dyn Fn(&PageCacheResult) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = runs.iter().filter_map(|r| pick(r)).collect();
        median(&v)
    };
    Some(PageCacheSummary {
        config: config.to_string(),
        server: first.server,
        runs: runs.len(),
        throughput: med(&|r| Some(r.throughput)),
        p99_ms: med(&|r| Some(r.p99_ms)),
        max_ms: med(&|r| Some(r.max_ms)),
        growth_after: med(&|r| Some(r.growth_after as f64)),
        growth_peak: med(&|r| Some(r.growth_peak as f64)),
        log_bytes: med(&|r| r.log_bytes.map(|b| b as f64)),
        files_bytes: med(&|r| Some(r.files_bytes as f64)),
        resident_bytes: med(&|r| r.resident_bytes.map(|b| b as f64)),
        io_path: first.io_path.clone(),
        caches_dropped: runs.iter().all(|r| r.caches_dropped),
    })
}

/// A target of the issue and whether this run met it.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub part: u8,
    pub name: String,
    pub goal: String,
    /// The figure compared with the goal.
    pub value: Option<f64>,
    /// `None`: not measured (part skipped, figure missing) or context only.
    pub met: Option<bool>,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    pub cpus: usize,
    pub kernel: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DurabilityResult {
    pub scenario: &'static str,
    pub settings: Settings,
    pub machine: Machine,
    pub targets: Vec<Target>,
    pub write_rows: Vec<Summary>,
    pub mix_rows: Vec<Summary>,
    pub scaling_rows: Vec<Summary>,
    pub page_cache_rows: Vec<PageCacheSummary>,
    pub page_cache: Vec<PageCacheResult>,
    /// Part 5: the table (medians, ours / Redis), each server's medians,
    /// and every run with its samples.
    pub rewrite_rows: Vec<RewriteRow>,
    pub rewrite_summaries: Vec<RewriteSummary>,
    pub rewrites: Vec<RewriteResult>,
    pub figures: Vec<RunFigure>,
}

/// The servers of one part, started in `scratch`, in `configs`' order.
struct PartServers<'a> {
    scratch: &'a Path,
    dirs: Vec<String>,
    servers: Vec<(Config, ServerProcess)>,
}

impl Drop for PartServers<'_> {
    fn drop(&mut self) {
        // Stop them (by PID, ServerProcess's drop) before removing their
        // data.
        self.servers.clear();
        for d in &self.dirs {
            let _ = fs::remove_dir_all(self.scratch.join(d));
        }
    }
}

struct Bins {
    redis: std::path::PathBuf,
    kv: std::path::PathBuf,
}

fn config_value(server: &ServerProcess, name: &str) -> Result<Option<String>> {
    let mut c = server.client()?;
    Ok(match c.call(&["CONFIG", "GET", name])? {
        Reply::Array(items) => items.get(1).and_then(Reply::text),
        _ => None,
    })
}

fn start<'a>(
    bins: &Bins,
    settings: &Settings,
    scratch: &'a Path,
    part: u8,
    configs: &[Config],
) -> Result<PartServers<'a>> {
    let mut part_servers = PartServers {
        scratch,
        dirs: Vec::new(),
        servers: Vec::new(),
    };
    let threads = settings.server_threads.map(|t| t.to_string());
    for cfg in configs {
        let yes_no = if cfg.appendonly { "yes" } else { "no" };
        // No snapshots and no automatic log rewrite on either side: the log
        // is what is measured (part 5 starts its rewrite itself).
        let mut extra = vec![
            "--appendonly",
            yes_no,
            "--appendfsync",
            cfg.fsync,
            "--save",
            "",
            "--auto-aof-rewrite-percentage",
            "0",
        ];
        let bin = match cfg.server {
            Server::Redis => &bins.redis,
            Server::KvServer => {
                if let Some(t) = &threads {
                    extra.extend(["--threads", t.as_str()]);
                }
                &bins.kv
            }
        };
        let dir = cfg.dir(part);
        part_servers.dirs.push(dir.clone());
        let p = ServerProcess::start(cfg.server, bin, scratch, &dir, &extra)
            .map_err(|e| format!("{}: {e}", cfg.label()))?;
        // The server must really run the configuration we measure.
        let appendonly = config_value(&p, "appendonly")?;
        let fsync = config_value(&p, "appendfsync")?;
        let auto = config_value(&p, "auto-aof-rewrite-percentage")?;
        if appendonly.as_deref() != Some(yes_no)
            || (cfg.appendonly && fsync.as_deref() != Some(cfg.fsync))
            || auto.as_deref() != Some("0")
        {
            return Err(format!(
                "{} (pid {}): CONFIG GET says appendonly {appendonly:?} appendfsync {fsync:?} auto-aof-rewrite-percentage {auto:?}",
                cfg.label(),
                p.pid()
            ));
        }
        part_servers.servers.push((*cfg, p));
    }
    Ok(part_servers)
}

fn counters(server: &ServerProcess) -> Result<(Option<AofCounters>, String)> {
    let info = server.client()?.info("persistence")?;
    Ok((AofCounters::parse(&info), info))
}

/// Each second of a run as a flat step (start and end), so even a
/// one-second run draws a line.
fn timeline(report: &LoadReport, started_at: f64) -> Vec<(f64, f64, f64)> {
    report
        .timeline
        .iter()
        .flat_map(|s| {
            let from = started_at + s.second as f64;
            [
                (from, s.throughput, s.p99_ms),
                (from + s.length, s.throughput, s.p99_ms),
            ]
        })
        .collect()
}

/// Runs `spec` against `server` and records it as run `run` of `part`.
fn measure(
    part: u8,
    run: usize,
    cfg: &Config,
    server: &ServerProcess,
    spec: &LoadSpec,
    t0: Instant,
) -> Result<RunFigure> {
    let (before, _) = counters(server)?;
    let started_at = t0.elapsed().as_secs_f64();
    let r = crate::run(spec, |_| {}).map_err(|e| {
        format!(
            "part {part} run {run}, {} (pid {}): {e}",
            cfg.label(),
            server.pid()
        )
    })?;
    let (after, info_after) = counters(server)?;
    let aof = match (before, after) {
        (Some(b), Some(a)) if cfg.server == Server::KvServer => {
            Some(AofDelta::between(b, a, r.duration_secs, &info_after))
        }
        _ => None,
    };
    let command = |name: &str| r.commands.iter().find(|c| c.name == name && c.requests > 0);
    let get = command("GET");
    let set = command("SET");
    let l = &r.total.latency_ms;
    let f = RunFigure {
        part,
        config: cfg.label(),
        server: cfg.server,
        appendonly: cfg.appendonly,
        appendfsync: cfg.fsync,
        clients: spec.connections(),
        rate: spec.rate,
        run,
        started_at,
        duration_secs: r.duration_secs,
        requests: r.total.requests,
        errors: r.total.errors,
        throughput: r.total.throughput,
        p50_ms: l.p50,
        p99_ms: l.p99,
        max_ms: l.max,
        get_p50_ms: get.map(|c| c.latency_ms.p50),
        get_p99_ms: get.map(|c| c.latency_ms.p99),
        set_p50_ms: set.map(|c| c.latency_ms.p50),
        set_p99_ms: set.map(|c| c.latency_ms.p99),
        get_nulls: get.map(|c| c.nulls),
        aof,
        timeline: timeline(&r, started_at),
    };
    let mut line = format!(
        "part {part} run {run} {:<18} {:>5} clients {:>9.0} req/s{}  p50 {:.3}  p99 {:.3} ms",
        f.config,
        f.clients,
        f.throughput,
        f.rate
            .map_or_else(String::new, |r| format!(" (paced at {r:.0})")),
        f.p50_ms,
        f.p99_ms
    );
    if let (Some(g), Some(s)) = (f.get_p99_ms, f.set_p99_ms) {
        line.push_str(&format!("  GET p99 {g:.3}  SET p99 {s:.3} ms"));
    }
    if let Some(a) = &f.aof {
        line.push_str(&format!(
            "  {:.0} fsyncs/s  {} records/commit",
            a.fsyncs_per_sec,
            opt(a.records_per_commit, 1)
        ));
    }
    if f.errors > 0 {
        let first = r.commands.iter().find_map(|c| c.first_error.clone());
        line.push_str(&format!("  {} ERRORS (first: {first:?})", f.errors));
    }
    println!("{line}");
    Ok(f)
}

/// A spec of `clients` connections over the generator's threads.
fn with_clients(common: &Common, mut spec: LoadSpec, clients: usize) -> LoadSpec {
    let threads = common.bench_threads.max(1).min(clients.max(1));
    spec.threads = threads;
    spec.clients = (clients / threads).max(1);
    spec
}

/// SETs `key:0..key:{keys-1}` once each (pipelined), so GETs hit.
fn fill(common: &Common, server: &ServerProcess, keys: u64) -> Result<()> {
    let mut spec = basic_spec(common, server.port, "SET", 32, keys);
    spec.key_max = keys - 1;
    spec.key_pattern = KeyPattern::Sequential;
    let r = crate::run(&spec, |_| {}).map_err(|e| format!("filling {keys} keys: {e}"))?;
    if r.total.errors > 0 {
        return Err(format!(
            "filling {keys} keys on {} (pid {}): {} error replies, first: {:?}",
            server.server.name(),
            server.pid(),
            r.total.errors,
            r.commands.iter().find_map(|c| c.first_error.clone())
        ));
    }
    Ok(())
}

fn part1(
    s: &Settings,
    common: &Common,
    bins: &Bins,
    scratch: &Path,
    t0: Instant,
) -> Result<Vec<RunFigure>> {
    println!(
        "\npart 1: SET, {} clients, pipeline 1, {}-byte values, keys 0..{}, {} requests per run",
        s.clients,
        s.value_size,
        s.key_range - 1,
        s.requests
    );
    let servers = start(bins, s, scratch, 1, &WRITE_CONFIGS)?;
    let mut figures = Vec::new();
    for run in 1..=s.runs {
        for (cfg, p) in &servers.servers {
            let spec = basic_spec(common, p.port, "SET", 1, s.requests);
            let spec = with_clients(common, spec, s.clients);
            figures.push(measure(1, run, cfg, p, &spec, t0)?);
        }
    }
    Ok(figures)
}

fn part2(
    s: &Settings,
    common: &Common,
    bins: &Bins,
    scratch: &Path,
    t0: Instant,
) -> Result<Vec<RunFigure>> {
    println!(
        "\npart 2: {}:{} GET:SET, {} clients, pipeline 1, {}-byte values, keys 0..{} (filled first), {} requests per run",
        s.mix_get_set.0,
        s.mix_get_set.1,
        s.clients,
        s.value_size,
        s.mix_keys - 1,
        s.mix_requests
    );
    if let Some(rate) = s.mix_rate {
        println!("part 2: each round also runs the mix paced at {rate:.0} requests/s (equal load; latency from the schedule)");
    }
    let servers = start(bins, s, scratch, 2, &MIX_CONFIGS)?;
    for (cfg, p) in &servers.servers {
        let at = Instant::now();
        fill(common, p, s.mix_keys)?;
        println!(
            "part 2: filled {} keys on {} in {:.1} s",
            s.mix_keys,
            cfg.label(),
            at.elapsed().as_secs_f64()
        );
    }
    let mut figures = Vec::new();
    let rates: Vec<Option<f64>> = [None].into_iter().chain(s.mix_rate.map(Some)).collect();
    for run in 1..=s.runs {
        for &rate in &rates {
            for (cfg, p) in &servers.servers {
                let mut spec = LoadSpec::set_get(s.mix_get_set.1, s.mix_get_set.0);
                spec.port = p.port;
                spec.key_max = s.mix_keys - 1;
                spec.data_size = Range::fixed(s.value_size);
                spec.rate = rate;
                spec.stop = StopAfter {
                    requests: Some(s.mix_requests),
                    duration: None,
                };
                spec.reply_timeout = Duration::from_secs(30);
                let spec = with_clients(common, spec, s.clients);
                figures.push(measure(2, run, cfg, p, &spec, t0)?);
            }
        }
    }
    Ok(figures)
}

fn part3(
    s: &Settings,
    common: &Common,
    bins: &Bins,
    scratch: &Path,
    t0: Instant,
) -> Result<Vec<RunFigure>> {
    println!(
        "\npart 3: SET under appendfsync always, pipeline 1, {} s per run, clients {:?}",
        s.scaling_secs, s.scaling_clients
    );
    let servers = start(bins, s, scratch, 3, &SCALING_CONFIGS)?;
    let mut figures = Vec::new();
    for &clients in &s.scaling_clients {
        for run in 1..=s.runs {
            for (cfg, p) in &servers.servers {
                let mut spec = basic_spec(common, p.port, "SET", 1, 1);
                spec.stop = StopAfter {
                    requests: None,
                    duration: Some(Duration::from_secs_f64(s.scaling_secs)),
                };
                let spec = with_clients(common, spec, clients);
                figures.push(measure(3, run, cfg, p, &spec, t0)?);
            }
        }
    }
    Ok(figures)
}

/// `sync; echo 1 > /proc/sys/vm/drop_caches`.
fn drop_caches() -> std::result::Result<(), String> {
    let _ = Command::new("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    fs::write("/proc/sys/vm/drop_caches", "1\n").map_err(|e| e.to_string())
}

/// Every regular file under `dir`.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let path = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => out.extend(files_under(&path)),
            Ok(t) if t.is_file() => out.push(path),
            _ => {}
        }
    }
    out
}

/// Sums the `RES` column of `fincore --bytes --raw --noheadings` output.
pub fn parse_fincore(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Bytes of `files` in the page cache, by `fincore` (util-linux).
fn resident(files: &[std::path::PathBuf]) -> Option<u64> {
    if files.is_empty() {
        return Some(0);
    }
    let out = Command::new("fincore")
        .args(["--bytes", "--raw", "--noheadings", "--output", "RES"])
        .args(files)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_fincore(&String::from_utf8_lossy(&out.stdout))
}

fn part4(
    s: &Settings,
    common: &Common,
    bins: &Bins,
    scratch: &Path,
    t0: Instant,
) -> Result<Vec<PageCacheResult>> {
    // ~64 bytes of command, key and framing per record on both servers.
    let per_record = s.log_value_size + 64;
    let requests = s.log_bytes.div_ceil(per_record).max(1);
    let fsync: &'static str = match s.log_fsync.as_str() {
        "always" => "always",
        "no" => "no",
        _ => "everysec",
    };
    println!(
        "\npart 4: page cache while writing ~{} MiB of log: {requests} SETs of {} bytes over {} keys, appendfsync {fsync}, 50 clients, pipeline 1",
        s.log_bytes >> 20,
        s.log_value_size,
        s.log_keys
    );
    let mut results = Vec::new();
    for run in 1..=s.runs {
        for cfg in [
            Config::new(REDIS, true, fsync),
            Config::new(KV, true, fsync),
        ] {
            results.push(page_cache_run(
                s, common, bins, scratch, t0, cfg, run, requests,
            )?);
        }
    }
    Ok(results)
}

/// One run of part 4: a fresh server, the page cache dropped, the load,
/// and the figures; the server and its log are gone when it returns.
#[allow(clippy::too_many_arguments)]
fn page_cache_run(
    s: &Settings,
    common: &Common,
    bins: &Bins,
    scratch: &Path,
    t0: Instant,
    cfg: Config,
    run: usize,
    requests: u64,
) -> Result<PageCacheResult> {
    {
        let servers = start(bins, s, scratch, 4, &[cfg])?;
        let (_, p) = &servers.servers[0];
        let (caches_dropped, drop_caches_error) = if s.drop_caches {
            match drop_caches() {
                Ok(()) => (true, None),
                Err(e) => {
                    println!("part 4: could not drop the page cache ({e}); measuring without");
                    (false, Some(e))
                }
            }
        } else {
            (false, None)
        };
        let mut spec = basic_spec(common, p.port, "SET", 1, requests);
        spec.key_max = s.log_keys - 1;
        spec.data_size = Range::fixed(s.log_value_size);
        spec.reply_timeout = Duration::from_secs(60);
        let spec = with_clients(common, spec, s.clients);

        let stop = Arc::new(AtomicBool::new(false));
        let sampler = {
            let stop = stop.clone();
            thread::spawn(move || {
                let mut v = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    v.push((t0.elapsed().as_secs_f64(), page_cache()));
                    thread::sleep(Duration::from_millis(100));
                }
                v.push((t0.elapsed().as_secs_f64(), page_cache()));
                v
            })
        };
        let cached_before = page_cache();
        let started_at = t0.elapsed().as_secs_f64();
        let r = crate::run(&spec, |_| {});
        let cached_after = page_cache();
        stop.store(true, Ordering::Relaxed);
        let samples = sampler.join().unwrap_or_default();
        let r = r.map_err(|e| format!("part 4, {} (pid {}): {e}", cfg.label(), p.pid()))?;
        let info = p.client()?.info("persistence")?;
        let files = files_under(&scratch.join(cfg.dir(4)).join("appendonlydir"));
        let files_bytes = files
            .iter()
            .filter_map(|f| fs::metadata(f).ok())
            .map(|m| m.len())
            .sum();
        let cached_peak = samples
            .iter()
            .map(|x| x.1)
            .chain([cached_before, cached_after])
            .max()
            .unwrap_or(0);
        let res = PageCacheResult {
            config: cfg.label(),
            server: cfg.server,
            run,
            requests: r.total.requests,
            errors: r.total.errors,
            duration_secs: r.duration_secs,
            throughput: r.total.throughput,
            p50_ms: r.total.latency_ms.p50,
            p99_ms: r.total.latency_ms.p99,
            max_ms: r.total.latency_ms.max,
            caches_dropped,
            drop_caches_error,
            cached_before,
            cached_peak,
            cached_after,
            growth_after: cached_after as i64 - cached_before as i64,
            growth_peak: cached_peak as i64 - cached_before as i64,
            log_bytes: info_u64(&info, "aof_current_size"),
            files_bytes,
            resident_bytes: resident(&files),
            io_path: info_field(&info, "aof_io_path").map(str::to_string),
            samples,
            timeline: timeline(&r, started_at),
        };
        println!(
            "part 4 run {run} {:<18} {:>9.0} req/s  p99 {:.3} max {:.1} ms  log {}  files {}  Cached {} after ({} peak)  log resident {}{}",
            res.config,
            res.throughput,
            res.p99_ms,
            res.max_ms,
            opt_mib(res.log_bytes.map(|b| b as f64)),
            mib(res.files_bytes as f64),
            signed_mib(res.growth_after),
            signed_mib(res.growth_peak),
            opt_mib(res.resident_bytes.map(|b| b as f64)),
            if res.errors > 0 {
                format!("  {} ERRORS", res.errors)
            } else {
                String::new()
            }
        );
        drop(servers); // stops it and removes its log (and so its cache)
        Ok(res)
    }
}

/// Part 5's servers, in the order each round runs them.
const REWRITE_CONFIGS: [Config; 2] = [
    Config::new(REDIS, true, "everysec"),
    Config::new(KV, true, "everysec"),
];

/// One ~100 ms sample of part 5. `t`: seconds since the BGREWRITEAOF was
/// sent (negative before it).
#[derive(Debug, Clone, Serialize)]
pub struct RewriteSample {
    pub t: f64,
    pub rss_parent: u64,
    pub rss_children: u64,
    pub children: usize,
    /// PSS of parent + children, when read in this sample (at most once a
    /// second, never within 200 ms of the BGREWRITEAOF).
    pub pss_total: Option<u64>,
    /// `Cached` of /proc/meminfo.
    pub page_cache: u64,
    /// `total_commands_processed` (the load, the probe and these INFOs).
    pub commands: u64,
    /// `aof_rewrite_in_progress`.
    pub in_progress: bool,
    /// `aof_current_size`.
    pub log_bytes: Option<u64>,
    /// `aof_rewrite_buffer_length` (Redis before 7.0; absent since).
    pub rewrite_buffer: Option<u64>,
}

/// What part 5's samples and probes say about one rewrite.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct RewriteFigures {
    /// RSS of parent + children in the last sample before the rewrite.
    pub rss_before: u64,
    /// Highest RSS of parent + children from the rewrite's start to the
    /// end of the sampling (the rewrite and `--rewrite-after` seconds).
    pub peak_rss: u64,
    pub peak_extra_rss: i64,
    /// The last PSS read before the rewrite, the highest after it.
    pub pss_before: Option<u64>,
    pub peak_pss: Option<u64>,
    pub peak_extra_pss: Option<i64>,
    /// Highest `Cached` after the rewrite started over the last before.
    pub page_cache_growth: i64,
    /// Length of the stretch just before the rewrite it is compared with:
    /// the rewrite's length, at most the baseline, at least 0.1 s.
    pub compared_secs: f64,
    /// Longest and p99 probe latency in that stretch and during the rewrite
    /// (a probe answered after the BGREWRITEAOF counts for the rewrite).
    pub stall_before_ms: f64,
    pub stall_during_ms: f64,
    pub probe_p99_before_ms: f64,
    pub probe_p99_during_ms: f64,
    /// Commands/s over the compared stretch, and from the last sample
    /// before the rewrite to the one that found it ended.
    pub throughput_before: Option<f64>,
    pub throughput_during: Option<f64>,
    /// `aof_current_size` in the last sample before the rewrite.
    pub log_bytes_before: Option<u64>,
    /// Highest `aof_rewrite_buffer_length` (`None`: INFO has no such field).
    pub peak_rewrite_buffer: Option<u64>,
}

/// The figures of one rewrite from its samples and probes ((send time,
/// latency ms), times relative to the BGREWRITEAOF), the rewrite having
/// taken `rewrite_secs` after `baseline` seconds of load. The rewrite's
/// probes are those answered after the BGREWRITEAOF was sent and sent
/// before the rewrite ended; the stretch before's, those sent and answered
/// within it.
pub fn rewrite_figures(
    samples: &[RewriteSample],
    probes: &[(f64, f64)],
    rewrite_secs: f64,
    baseline: f64,
) -> RewriteFigures {
    let before: Vec<&RewriteSample> = samples.iter().filter(|s| s.t < 0.0).collect();
    let since: Vec<&RewriteSample> = samples.iter().filter(|s| s.t >= 0.0).collect();
    let last = before.last().copied();
    let rss = |s: &RewriteSample| s.rss_parent + s.rss_children;
    let rss_before = last.map_or(0, rss);
    let peak_rss = since.iter().map(|s| rss(s)).max().unwrap_or(rss_before);
    let pss_before = before.iter().rev().find_map(|s| s.pss_total);
    let peak_pss = since.iter().filter_map(|s| s.pss_total).max();
    let cache_before = last.map_or(0, |s| s.page_cache);
    let peak_cache = since
        .iter()
        .map(|s| s.page_cache)
        .max()
        .unwrap_or(cache_before);
    let compared = rewrite_secs.min(baseline).max(0.1);
    // A PING sent just before the BGREWRITEAOF can wait for it (Redis's
    // fork): it counts for the rewrite, not for the stretch before.
    let (stall_before, p99_before) =
        probe_stats(probes, |sent, done| sent >= -compared && done < 0.0);
    let end = rewrite_secs.max(0.1);
    let (stall_during, p99_during) = probe_stats(probes, |sent, done| sent < end && done >= 0.0);
    let rate = |a: Option<&RewriteSample>, b: Option<&RewriteSample>| match (a, b) {
        (Some(a), Some(b)) if b.t > a.t => {
            Some(b.commands.saturating_sub(a.commands) as f64 / (b.t - a.t))
        }
        _ => None,
    };
    // A sample's time may be a little off the rewrite's end (its own).
    let end = since.iter().copied().find(|s| s.t >= rewrite_secs - 1e-6);
    // The last sample at least `compared` s before (else the first).
    let from = before
        .iter()
        .copied()
        .rev()
        .find(|s| s.t <= -compared + 1e-6)
        .or(before.first().copied());
    RewriteFigures {
        rss_before,
        peak_rss,
        peak_extra_rss: peak_rss as i64 - rss_before as i64,
        pss_before,
        peak_pss,
        peak_extra_pss: pss_before.zip(peak_pss).map(|(b, p)| p as i64 - b as i64),
        page_cache_growth: peak_cache as i64 - cache_before as i64,
        compared_secs: compared,
        stall_before_ms: stall_before,
        stall_during_ms: stall_during,
        probe_p99_before_ms: p99_before,
        probe_p99_during_ms: p99_during,
        throughput_before: rate(from, last),
        throughput_during: rate(last, end),
        log_bytes_before: last.and_then(|s| s.log_bytes),
        peak_rewrite_buffer: samples.iter().filter_map(|s| s.rewrite_buffer).max(),
    }
}

/// One run of part 5 on one server.
#[derive(Debug, Clone, Serialize)]
pub struct RewriteResult {
    pub config: String,
    pub server: Server,
    pub run: usize,
    pub keys: u64,
    pub value_size: u64,
    /// `used_memory` after the fill.
    pub dataset_bytes: u64,
    pub fill_secs: f64,
    /// Seconds since the scenario started, at the BGREWRITEAOF.
    pub started_at: f64,
    /// The reply to BGREWRITEAOF, and how long it took (Redis forks
    /// before it replies).
    pub reply: String,
    pub reply_ms: f64,
    /// From sending BGREWRITEAOF to the first sample that found the
    /// rewrite ended (so up to ~0.1 s long).
    pub rewrite_secs: f64,
    /// INFO persistence after it: `aof_last_rewrite_time_sec` (whole
    /// seconds), `aof_last_bgrewrite_status`, `aof_last_cow_size`.
    pub last_rewrite_time_sec: Option<i64>,
    pub last_bgrewrite_status: Option<String>,
    pub last_cow_size: Option<u64>,
    /// `latest_fork_usec` when the server forked (`total_forks` > 0).
    pub fork_usec: Option<u64>,
    #[serde(flatten)]
    pub figures: RewriteFigures,
    /// `aof_current_size` and `aof_base_size` at the end.
    pub log_bytes_after: Option<u64>,
    pub base_bytes_after: Option<u64>,
    /// Apparent size of the server's files (log, base, snapshots; not its
    /// output) just before the BGREWRITEAOF and at the end (kv-server
    /// preallocates its log segments).
    pub files_bytes_before: u64,
    pub files_bytes_after: u64,
    /// Growth of `total_error_replies` from the end of the fill to the end.
    pub error_replies: Option<u64>,
    pub samples: Vec<RewriteSample>,
    /// Probe latencies per 100 ms (times relative to the BGREWRITEAOF).
    pub probe: Vec<ProbeWindow>,
}

fn part5(
    s: &Settings,
    common: &Common,
    bins: &Bins,
    scratch: &Path,
    t0: Instant,
) -> Result<Vec<RewriteResult>> {
    println!(
        "\npart 5: log rewrite under load: {} keys of {} bytes (~{} MiB) filled, appendfsync everysec, {} clients overwriting them at full speed, a probe PING every ~1 ms, BGREWRITEAOF after {} s",
        s.rewrite_keys,
        s.rewrite_value_size,
        s.rewrite_bytes >> 20,
        s.clients,
        s.rewrite_baseline_secs
    );
    let mut results = Vec::new();
    for run in 1..=s.runs {
        for cfg in REWRITE_CONFIGS {
            results.push(rewrite_run(s, common, bins, scratch, t0, cfg, run)?);
        }
    }
    Ok(results)
}

/// Apparent size of the files under `dir` but the server's output.
fn data_bytes(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "server.log"))
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Where the sampling loop of one rewrite got to.
struct RewriteTrace {
    samples: Vec<(Instant, RewriteSample)>,
    sent_at: Instant,
    reply: String,
    reply_ms: f64,
    end_at: Instant,
    files_before: u64,
    files_after: u64,
}

/// One run of part 5: a fresh server, filled; the overwrite load and the
/// probe; BGREWRITEAOF after the baseline; samples until the rewrite ended
/// and a little after. The server and its files are gone when it returns.
fn rewrite_run(
    s: &Settings,
    common: &Common,
    bins: &Bins,
    scratch: &Path,
    t0: Instant,
    cfg: Config,
    run: usize,
) -> Result<RewriteResult> {
    let servers = start(bins, s, scratch, 5, &[cfg])?;
    let (_, p) = &servers.servers[0];
    let name = format!("part 5 run {run}, {} (pid {})", cfg.label(), p.pid());
    let keys = s.rewrite_keys;
    let fill_at = Instant::now();
    fill_values(common, p.port, keys, s.rewrite_value_size).map_err(|e| format!("{name}: {e}"))?;
    let fill_secs = fill_at.elapsed().as_secs_f64();
    let mut ctl = p.client()?;
    let dataset = info_u64(&ctl.info("memory")?, "used_memory").unwrap_or(0);
    let errors_before = info_u64(&ctl.info("stats")?, "total_error_replies");
    let rewrites_before = info_u64(&ctl.info("persistence")?, "aof_rewrites").unwrap_or(0);
    println!(
        "part 5 run {run} {:<18} filled {keys} keys in {fill_secs:.1} s, used_memory {}",
        cfg.label(),
        mib(dataset as f64)
    );

    // The overwrite load at full speed; it ends when the server is stopped.
    let mut spec = LoadSpec::set_get(1, 0);
    spec.commands.retain(|c| c.weight > 0);
    spec.port = p.port;
    spec.key_min = 0;
    spec.key_max = keys - 1;
    spec.data_size = Range::fixed(s.rewrite_value_size);
    spec.stop = StopAfter {
        requests: None,
        duration: Some(Duration::from_secs(24 * 3600)),
    };
    spec.reply_timeout = Duration::from_secs(600);
    let spec = with_clients(common, spec, s.clients);
    let load = thread::spawn(move || crate::run(&spec, |_| {}));
    let load_t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(Mutex::new(Vec::new()));
    let prober = {
        let (stop, probes, port) = (stop.clone(), probes.clone(), p.port);
        thread::spawn(move || probe(port, load_t0, stop, probes))
    };

    let dir = scratch.join(cfg.dir(5));
    let trace = rewrite_trace(s, &mut ctl, p, &dir, load_t0, rewrites_before);
    stop.store(true, Ordering::Relaxed);
    let _ = prober.join();
    let stats = ctl.info("stats").unwrap_or_default();
    let persistence = ctl.info("persistence").unwrap_or_default();
    drop(ctl);
    drop(servers); // stops it (ending the load) and removes its files
    let _ = load.join();
    let trace = trace.map_err(|e| format!("{name}: {e}"))?;

    let sent_at = trace.sent_at;
    let rel = |t: Instant| -> f64 {
        if t >= sent_at {
            (t - sent_at).as_secs_f64()
        } else {
            -(sent_at - t).as_secs_f64()
        }
    };
    let samples: Vec<RewriteSample> = trace
        .samples
        .into_iter()
        .map(|(at, mut x)| {
            x.t = rel(at);
            x
        })
        .collect();
    let probes: Vec<(f64, f64)> = probes
        .lock()
        .map(|v| v.iter().map(|&(at, lat)| (rel(at), lat)).collect())
        .unwrap_or_default();
    let rewrite_secs = rel(trace.end_at);
    let figures = rewrite_figures(&samples, &probes, rewrite_secs, s.rewrite_baseline_secs);
    let forked = info_u64(&stats, "total_forks").is_some_and(|n| n > 0);
    let res = RewriteResult {
        config: cfg.label(),
        server: cfg.server,
        run,
        keys,
        value_size: s.rewrite_value_size,
        dataset_bytes: dataset,
        fill_secs,
        started_at: sent_at.duration_since(t0).as_secs_f64(),
        reply: trace.reply,
        reply_ms: trace.reply_ms,
        rewrite_secs,
        last_rewrite_time_sec: info_field(&persistence, "aof_last_rewrite_time_sec")
            .and_then(|v| v.parse().ok()),
        last_bgrewrite_status: info_field(&persistence, "aof_last_bgrewrite_status")
            .map(str::to_string),
        last_cow_size: info_u64(&persistence, "aof_last_cow_size"),
        fork_usec: info_u64(&stats, "latest_fork_usec").filter(|_| forked),
        figures,
        log_bytes_after: info_u64(&persistence, "aof_current_size"),
        base_bytes_after: info_u64(&persistence, "aof_base_size"),
        files_bytes_before: trace.files_before,
        files_bytes_after: trace.files_after,
        error_replies: errors_before
            .zip(info_u64(&stats, "total_error_replies"))
            .map(|(b, a)| a.saturating_sub(b)),
        samples,
        probe: probe_windows(&probes, 0.1),
    };
    let f = &res.figures;
    println!(
        "part 5 run {run} {:<18} rewrite {:.2} s ({}, replied in {:.1} ms), peak extra RSS {} PSS {}, Cached {}, stall {:.1} ms during / {:.1} ms before, probe p99 {:.3} / {:.3} ms, {} / {} cmds/s, log {} -> {}{}",
        res.config,
        res.rewrite_secs,
        res.last_bgrewrite_status.as_deref().unwrap_or("?"),
        res.reply_ms,
        signed_mib(f.peak_extra_rss),
        f.peak_extra_pss.map_or_else(|| "-".to_string(), signed_mib),
        signed_mib(f.page_cache_growth),
        f.stall_during_ms,
        f.stall_before_ms,
        f.probe_p99_during_ms,
        f.probe_p99_before_ms,
        opt(f.throughput_during, 0),
        opt(f.throughput_before, 0),
        opt_mib(f.log_bytes_before.map(|b| b as f64)),
        opt_mib(res.log_bytes_after.map(|b| b as f64)),
        match res.error_replies {
            Some(n) if n > 0 => format!("  {n} ERROR REPLIES"),
            _ => String::new(),
        }
    );
    if res.last_bgrewrite_status.as_deref() != Some("ok") {
        return Err(format!(
            "{name}: the rewrite failed (aof_last_bgrewrite_status {:?})",
            res.last_bgrewrite_status
        ));
    }
    Ok(res)
}

/// The sampling loop of one rewrite (see [`rewrite_run`]).
fn rewrite_trace(
    s: &Settings,
    ctl: &mut Client,
    server: &ServerProcess,
    dir: &Path,
    load_t0: Instant,
    rewrites_before: u64,
) -> Result<RewriteTrace> {
    let pid = server.pid();
    let page = page_size();
    let send_at = load_t0 + Duration::from_secs_f64(s.rewrite_baseline_secs);
    let after = Duration::from_secs_f64(s.rewrite_after_secs);
    let max = Duration::from_secs_f64(s.rewrite_max_secs);
    let quiet = Duration::from_millis(200);
    let mut samples: Vec<(Instant, RewriteSample)> = Vec::new();
    let mut sent: Option<(Instant, String)> = None;
    let mut files_before = 0;
    let mut reply_ms = 0.0;
    let mut end_at: Option<Instant> = None;
    let mut last_pss: Option<Instant> = None;
    let mut tick = load_t0;
    loop {
        if sent.is_none() && Instant::now() >= send_at {
            files_before = data_bytes(dir);
            // Time 0 is when it is sent: Redis forks before it replies.
            let at = Instant::now();
            let reply = ctl.call(&["BGREWRITEAOF"])?;
            reply_ms = at.elapsed().as_secs_f64() * 1e3;
            match reply {
                Reply::Status(r) => sent = Some((at, r)),
                r => return Err(format!("BGREWRITEAOF replied {r:?}")),
            }
        }
        let stats = ctl.info("stats")?;
        let persistence = ctl.info("persistence")?;
        let now = Instant::now();
        let children = children_of(pid);
        // No smaps_rollup read (it holds the memory map lock a fork needs)
        // from 200 ms before the BGREWRITEAOF to 200 ms after it.
        let near = match &sent {
            Some((at, _)) => now < *at + quiet,
            None => now + quiet >= send_at,
        };
        let pss_due = last_pss.is_none_or(|l| now >= l + Duration::from_secs(1));
        let pss_total = (pss_due && !near).then(|| {
            last_pss = Some(now);
            pss_of(pid) + children.iter().map(|&c| pss_of(c)).sum::<u64>()
        });
        let in_progress = info_u64(&persistence, "aof_rewrite_in_progress") == Some(1);
        samples.push((
            now,
            RewriteSample {
                t: 0.0,
                rss_parent: rss_of(pid, page),
                rss_children: children.iter().map(|&c| rss_of(c, page)).sum(),
                children: children.len(),
                pss_total,
                page_cache: page_cache(),
                commands: info_u64(&stats, "total_commands_processed").unwrap_or(0),
                in_progress,
                log_bytes: info_u64(&persistence, "aof_current_size"),
                rewrite_buffer: info_u64(&persistence, "aof_rewrite_buffer_length"),
            },
        ));
        if let Some((at, _)) = &sent {
            // Redis counts a rewrite when it forks, kv-server when it ends:
            // ended = not running, not scheduled, counted or failed, and no
            // child left.
            let ended = !in_progress
                && info_u64(&persistence, "aof_rewrite_scheduled") != Some(1)
                && (info_u64(&persistence, "aof_rewrites").unwrap_or(0) > rewrites_before
                    || info_field(&persistence, "aof_last_bgrewrite_status") == Some("err"))
                && children.is_empty();
            if end_at.is_none() && ended {
                end_at = Some(now);
            }
            if end_at.is_none() && now > *at + max {
                return Err(format!("the rewrite is still running after {max:?}"));
            }
        }
        if let (Some((at, reply)), Some(end)) = (&sent, end_at) {
            if now >= end + after {
                return Ok(RewriteTrace {
                    samples,
                    sent_at: *at,
                    reply: reply.clone(),
                    reply_ms,
                    end_at: end,
                    files_before,
                    files_after: data_bytes(dir),
                });
            }
        }
        tick += Duration::from_millis(100);
        let now = Instant::now();
        if tick > now {
            thread::sleep(tick - now);
        } else {
            tick = now;
        }
    }
}

/// Medians of part 5's runs on one server.
#[derive(Debug, Clone, Serialize)]
pub struct RewriteSummary {
    pub config: String,
    pub server: Server,
    pub runs: usize,
    pub dataset_bytes: Option<f64>,
    pub rewrite_secs: Option<f64>,
    pub reply_ms: Option<f64>,
    pub fork_usec: Option<f64>,
    pub peak_extra_rss: Option<f64>,
    pub peak_extra_pss: Option<f64>,
    pub page_cache_growth: Option<f64>,
    pub stall_before_ms: Option<f64>,
    pub stall_during_ms: Option<f64>,
    pub probe_p99_before_ms: Option<f64>,
    pub probe_p99_during_ms: Option<f64>,
    pub throughput_before: Option<f64>,
    pub throughput_during: Option<f64>,
    /// Median over runs of during / before.
    pub throughput_kept: Option<f64>,
    pub log_bytes_before: Option<f64>,
    pub log_bytes_after: Option<f64>,
    pub files_bytes_before: Option<f64>,
    pub files_bytes_after: Option<f64>,
    pub peak_rewrite_buffer: Option<f64>,
    pub error_replies: Option<f64>,
}

/// Medians of the part 5 runs of `config`; `None` if it has none.
pub fn summarize_rewrites(config: &str, runs: &[RewriteResult]) -> Option<RewriteSummary> {
    let runs: Vec<&RewriteResult> = runs.iter().filter(|r| r.config == config).collect();
    let first = runs.first()?;
    let med = |pick: &dyn Fn(&RewriteResult) -> Option<f64>| -> Option<f64> {
        let v: Vec<f64> = runs.iter().filter_map(|r| pick(r)).collect();
        median(&v)
    };
    let u = |v: Option<u64>| v.map(|v| v as f64);
    Some(RewriteSummary {
        config: config.to_string(),
        server: first.server,
        runs: runs.len(),
        dataset_bytes: med(&|r| Some(r.dataset_bytes as f64)),
        rewrite_secs: med(&|r| Some(r.rewrite_secs)),
        reply_ms: med(&|r| Some(r.reply_ms)),
        fork_usec: med(&|r| u(r.fork_usec)),
        peak_extra_rss: med(&|r| Some(r.figures.peak_extra_rss as f64)),
        peak_extra_pss: med(&|r| r.figures.peak_extra_pss.map(|v| v as f64)),
        page_cache_growth: med(&|r| Some(r.figures.page_cache_growth as f64)),
        stall_before_ms: med(&|r| Some(r.figures.stall_before_ms)),
        stall_during_ms: med(&|r| Some(r.figures.stall_during_ms)),
        probe_p99_before_ms: med(&|r| Some(r.figures.probe_p99_before_ms)),
        probe_p99_during_ms: med(&|r| Some(r.figures.probe_p99_during_ms)),
        throughput_before: med(&|r| r.figures.throughput_before),
        throughput_during: med(&|r| r.figures.throughput_during),
        throughput_kept: med(&|r| ratio(r.figures.throughput_during, r.figures.throughput_before)),
        log_bytes_before: med(&|r| u(r.figures.log_bytes_before)),
        log_bytes_after: med(&|r| u(r.log_bytes_after)),
        files_bytes_before: med(&|r| Some(r.files_bytes_before as f64)),
        files_bytes_after: med(&|r| Some(r.files_bytes_after as f64)),
        peak_rewrite_buffer: med(&|r| u(r.figures.peak_rewrite_buffer)),
        error_replies: med(&|r| u(r.error_replies)),
    })
}

/// One line of part 5's table: a figure of Redis's, ours, ours / Redis.
#[derive(Debug, Clone, Serialize)]
pub struct RewriteRow {
    pub metric: String,
    pub unit: String,
    pub redis: Option<f64>,
    pub ours: Option<f64>,
    pub ratio: Option<f64>,
}

/// A figure of a [`RewriteSummary`].
type Pick = fn(&RewriteSummary) -> Option<f64>;

/// Part 5's table from the two servers' summaries (`None`: not measured).
pub fn rewrite_rows(
    redis: Option<&RewriteSummary>,
    ours: Option<&RewriteSummary>,
) -> Vec<RewriteRow> {
    if redis.is_none() && ours.is_none() {
        return Vec::new();
    }
    let mib = |v: Option<f64>| v.map(|b| b / (1u64 << 20) as f64);
    let rows: [(&str, &str, Pick); 21] = [
        ("dataset (used_memory)", "MiB", |r| r.dataset_bytes),
        ("rewrite duration", "s", |r| r.rewrite_secs),
        ("BGREWRITEAOF reply", "ms", |r| r.reply_ms),
        ("fork", "ms", |r| r.fork_usec.map(|u| u / 1000.0)),
        ("peak extra RSS parent+children", "MiB", |r| {
            r.peak_extra_rss
        }),
        ("peak extra PSS parent+children", "MiB", |r| {
            r.peak_extra_pss
        }),
        ("peak page cache growth", "MiB", |r| r.page_cache_growth),
        ("longest probe stall before", "ms", |r| r.stall_before_ms),
        ("longest probe stall during", "ms", |r| r.stall_during_ms),
        ("probe p99 before", "ms", |r| r.probe_p99_before_ms),
        ("probe p99 during", "ms", |r| r.probe_p99_during_ms),
        ("throughput before", "cmds/s", |r| r.throughput_before),
        ("throughput during", "cmds/s", |r| r.throughput_during),
        ("throughput during / before", "", |r| r.throughput_kept),
        ("log (aof_current_size) before", "MiB", |r| {
            r.log_bytes_before
        }),
        ("log (aof_current_size) after", "MiB", |r| r.log_bytes_after),
        ("files on disk before", "MiB", |r| r.files_bytes_before),
        ("files on disk after", "MiB", |r| r.files_bytes_after),
        ("peak aof_rewrite_buffer_length", "MiB", |r| {
            r.peak_rewrite_buffer
        }),
        ("error replies", "", |r| r.error_replies),
        ("runs", "", |r| Some(r.runs as f64)),
    ];
    rows.iter()
        .filter_map(|&(metric, unit, pick)| {
            let conv = |v: Option<f64>| if unit == "MiB" { mib(v) } else { v };
            let redis = conv(redis.and_then(pick));
            let ours = conv(ours.and_then(pick));
            // A row neither server has (e.g. Redis 7's rewrite buffer).
            if redis.is_none() && ours.is_none() {
                return None;
            }
            Some(RewriteRow {
                metric: metric.to_string(),
                unit: unit.to_string(),
                redis,
                ours,
                ratio: match (metric, unit) {
                    ("runs" | "error replies", _) => None,
                    // Growths can be ~0: a ratio to less than 1 MiB says
                    // nothing.
                    (_, "MiB") => ratio(ours, redis).filter(|_| redis.is_some_and(|r| r >= 1.0)),
                    _ => ratio(ours, redis),
                },
            })
        })
        .collect()
}

fn print_rewrite_rows(rows: &[RewriteRow]) {
    if rows.is_empty() {
        return;
    }
    println!("\npart 5: log rewrite under load (medians)");
    println!(
        "{:<40} {:>12} {:>12} {:>10}",
        "", "redis", "kv-server", "ours/redis"
    );
    for r in rows {
        let prec = match r.unit.as_str() {
            "ms" | "" => 2,
            "s" => 2,
            _ => 0,
        };
        let prec = if r.metric == "runs" || r.metric == "error replies" {
            0
        } else {
            prec
        };
        let metric = if r.unit.is_empty() {
            r.metric.clone()
        } else {
            format!("{} ({})", r.metric, r.unit)
        };
        println!(
            "{:<40} {:>12} {:>12} {:>10}",
            metric,
            opt(r.redis, prec),
            opt(r.ours, prec),
            opt(r.ratio, 2)
        );
    }
}

/// Makes sure this process (and the servers it starts, which inherit the
/// limit) may open `need` files: raises the soft limit to the hard one
/// with `prlimit` if it is too low.
fn ensure_open_files(need: u64) -> Result<()> {
    let soft_hard = || -> Option<(u64, Option<u64>)> {
        let text = fs::read_to_string("/proc/self/limits").ok()?;
        let line = text.lines().find(|l| l.starts_with("Max open files"))?;
        let mut w = line["Max open files".len()..].split_whitespace();
        let soft = w.next()?;
        let hard = w.next()?;
        let soft = soft.parse().unwrap_or(u64::MAX);
        Some((soft, hard.parse().ok()))
    };
    let Some((soft, hard)) = soft_hard() else {
        return Ok(()); // not Linux-like; let connect fail if it must
    };
    if soft >= need {
        return Ok(());
    }
    let target = hard.unwrap_or(need.max(65_536));
    let _ = Command::new("prlimit")
        .arg("--pid")
        .arg(std::process::id().to_string())
        .arg(format!(
            "--nofile={target}:{}",
            hard.map_or("unlimited".to_string(), |h| h.to_string())
        ))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    match soft_hard() {
        Some((now, _)) if now >= need => {
            println!("raised the open-files limit from {soft} to {now}");
            Ok(())
        }
        _ => Err(format!(
            "{need} connections need {need} open files but `ulimit -n` is {soft} (hard {}): raise it, e.g. `ulimit -n 4096`, or pass smaller --scaling-clients",
            hard.map_or("unlimited".to_string(), |h| h.to_string())
        )),
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

fn mib(b: f64) -> String {
    format!("{:.0} MiB", b / (1u64 << 20) as f64)
}

fn opt_mib(b: Option<f64>) -> String {
    b.map_or_else(|| "-".to_string(), mib)
}

fn signed_mib(b: i64) -> String {
    format!("{:+.0} MiB", b as f64 / (1u64 << 20) as f64)
}

fn find<'a>(rows: &'a [Summary], cfg: &Config, rate: Option<f64>) -> Option<&'a Summary> {
    let label = cfg.label();
    rows.iter().find(|r| r.config == label && r.rate == rate)
}

fn mib_f(b: Option<f64>) -> String {
    b.map_or_else(
        || "-".to_string(),
        |b| format!("{:+.0} MiB", b / (1u64 << 20) as f64),
    )
}

/// How much records per commit must grow per step of part 3.
const GROWTH: f64 = 1.1;

/// The issue's targets from the summaries.
pub fn targets(
    write_rows: &[Summary],
    mix_rows: &[Summary],
    scaling_rows: &[Summary],
    page: &[PageCacheSummary],
) -> Vec<Target> {
    let mut out = Vec::new();
    let thr = |rows: &[Summary], cfg: Config| find(rows, &cfg, None).and_then(|r| r.throughput);
    let kv_always = thr(write_rows, Config::new(KV, true, "always"));
    let kv_no = thr(write_rows, Config::new(KV, true, "no"));
    let redis_always = thr(write_rows, Config::new(REDIS, true, "always"));
    let r = ratio(kv_always, kv_no);
    out.push(Target {
        part: 1,
        name: "always vs no".into(),
        goal: "kv-server SET throughput under always >= 70% of under no".into(),
        value: r,
        met: r.map(|r| r >= 0.70),
        detail: format!("{} / {} req/s", opt(kv_always, 0), opt(kv_no, 0)),
    });
    let r = ratio(kv_always, redis_always);
    out.push(Target {
        part: 1,
        name: "always vs Redis always".into(),
        goal: "kv-server SET throughput under always above Redis's under always".into(),
        value: r,
        met: r.map(|r| r > 1.0),
        detail: format!("{} / {} req/s", opt(kv_always, 0), opt(redis_always, 0)),
    });

    let mut rates: Vec<Option<f64>> = Vec::new();
    for r in mix_rows {
        if !rates.contains(&r.rate) {
            rates.push(r.rate);
        }
    }
    for rate in rates {
        let get = |cfg: Config| find(mix_rows, &cfg, rate).and_then(|r| r.get_p99_ms);
        let kv_get = get(Config::new(KV, true, "always"));
        let kv_off_get = get(Config::new(KV, false, "always"));
        let redis_get = get(Config::new(REDIS, true, "always"));
        let redis_off_get = get(Config::new(REDIS, false, "always"));
        let how = rate.map_or_else(
            || "closed loop".to_string(),
            |r| format!("paced at {r:.0}/s"),
        );
        let r = ratio(kv_get, kv_off_get);
        out.push(Target {
            part: 2,
            name: format!("GET p99 under always, {how}"),
            goal: format!(
                "kv-server GET p99 (90:10 GET:SET, {how}) under always within 1.5x of the log off"
            ),
            value: r,
            met: r.map(|r| r <= 1.5),
            detail: format!(
                "{} / {} ms; Redis always / off: {} / {} ms",
                opt(kv_get, 3),
                opt(kv_off_get, 3),
                opt(redis_get, 3),
                opt(redis_off_get, 3)
            ),
        });
    }

    let mut levels: Vec<(usize, f64)> = scaling_rows
        .iter()
        .filter(|r| r.server == Server::KvServer)
        .filter_map(|r| r.records_per_commit.map(|v| (r.clients, v)))
        .collect();
    levels.sort_by_key(|l| l.0);
    // Every step up in clients must batch visibly more (10%): a plateau
    // is not growth.
    let grows = levels.len() >= 2 && levels.windows(2).all(|w| w[1].1 >= w[0].1 * GROWTH);
    out.push(Target {
        part: 3,
        name: "group commit grows with load".into(),
        goal: "kv-server records per group commit grow (>= +10%) with every step in clients".into(),
        value: match (levels.first(), levels.last()) {
            (Some(a), Some(b)) if levels.len() >= 2 && a.1 > 0.0 => Some(b.1 / a.1),
            _ => None,
        },
        met: (levels.len() >= 2).then_some(grows),
        detail: levels
            .iter()
            .map(|(c, v)| format!("{c} clients: {v:.1}"))
            .collect::<Vec<_>>()
            .join(", "),
    });

    let kv_page = page.iter().find(|p| p.server == Server::KvServer);
    let redis_page = page.iter().find(|p| p.server == Server::Redis);
    let mib_of = |b: Option<f64>| b.map(|b| b / (1u64 << 20) as f64);
    out.push(Target {
        part: 4,
        name: "page cache".into(),
        goal: "kv-server's page cache (Cached) grows < 32 MiB while writing the log".into(),
        value: kv_page.and_then(|p| mib_of(p.growth_after)),
        met: kv_page.and_then(|p| p.growth_after.map(|g| g < (32u64 << 20) as f64)),
        detail: kv_page.map_or_else(String::new, |p| {
            format!(
                "median {} after ({} peak) for a log of {}; of the log files {} resident",
                mib_f(p.growth_after),
                mib_f(p.growth_peak),
                opt_mib(p.log_bytes),
                opt_mib(p.resident_bytes)
            )
        }),
    });
    out.push(Target {
        part: 4,
        name: "Redis page cache (context)".into(),
        goal: "Redis's page cache grows by about its log size".into(),
        value: redis_page.and_then(|p| match (p.growth_after, p.log_bytes) {
            (Some(g), Some(l)) if l > 0.0 => Some(g / l),
            _ => None,
        }),
        met: None,
        detail: redis_page.map_or_else(String::new, |p| {
            format!(
                "median {} after for a log of {}; of the log files {} resident",
                mib_f(p.growth_after),
                opt_mib(p.log_bytes),
                opt_mib(p.resident_bytes)
            )
        }),
    });
    out
}

fn print_rows(title: &str, rows: &[Summary], mix: bool) {
    if rows.is_empty() {
        return;
    }
    println!("\n{title}");
    println!(
        "{:<18} {:>7} {:>7} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7}",
        "config",
        "clients",
        "paced",
        "req/s",
        "p50 ms",
        "p99 ms",
        if mix { "GET p99" } else { "" },
        if mix { "SET p99" } else { "" },
        "fsyncs/s",
        "rec/commit",
        "fsync p99",
        "wr.amp"
    );
    for r in rows {
        println!(
            "{:<18} {:>7} {:>7} {:>10} {:>8} {:>8} {:>9} {:>9} {:>9} {:>10} {:>10} {:>7}",
            r.config,
            r.clients,
            r.rate
                .map_or_else(|| "-".to_string(), |r| format!("{r:.0}")),
            opt(r.throughput, 0),
            opt(r.p50_ms, 3),
            opt(r.p99_ms, 3),
            if mix {
                opt(r.get_p99_ms, 3)
            } else {
                String::new()
            },
            if mix {
                opt(r.set_p99_ms, 3)
            } else {
                String::new()
            },
            opt(r.fsyncs_per_sec, 0),
            opt(r.records_per_commit, 1),
            r.fsync_p99_usec
                .map_or_else(|| "-".to_string(), |u| format!("{u:.0} us")),
            opt(r.write_amplification, 1)
        );
    }
}

fn chart(
    s: &Settings,
    figures: &[RunFigure],
    page: &[PageCacheResult],
    rewrites: &[RewriteResult],
    marks: Vec<Marker>,
) -> Chart {
    // A series per configuration (a paced run is its own); a NaN point
    // after each run breaks the line between runs.
    let name = |config: &str, rate: Option<f64>| match rate {
        Some(r) => format!("{config} @{:.0}k/s", r / 1000.0),
        None => config.to_string(),
    };
    let mut labels: Vec<String> = Vec::new();
    for l in figures
        .iter()
        .map(|f| name(&f.config, f.rate))
        .chain(page.iter().map(|p| p.config.clone()))
    {
        if !labels.contains(&l) {
            labels.push(l);
        }
    }
    let runs_of = |label: &str| -> Vec<&[(f64, f64, f64)]> {
        figures
            .iter()
            .filter(|f| name(&f.config, f.rate) == label)
            .map(|f| f.timeline.as_slice())
            .chain(
                page.iter()
                    .filter(|p| p.config == label)
                    .map(|p| p.timeline.as_slice()),
            )
            .collect()
    };
    let series = |pick: fn(&(f64, f64, f64)) -> f64| -> Vec<Series> {
        labels
            .iter()
            .map(|l| Series {
                name: l.clone(),
                points: runs_of(l)
                    .into_iter()
                    .flat_map(|tl| {
                        let end = tl.last().map_or(0.0, |p| p.0);
                        tl.iter()
                            .map(move |t| (t.0, pick(t)))
                            .chain([(end, f64::NAN)])
                    })
                    .collect(),
            })
            .collect()
    };
    let commits: Vec<Series> = labels
        .iter()
        .filter(|l| {
            figures
                .iter()
                .any(|f| &name(&f.config, f.rate) == *l && f.aof.is_some())
        })
        .map(|l| Series {
            name: l.clone(),
            points: figures
                .iter()
                .filter(|f| &name(&f.config, f.rate) == l)
                .filter_map(|f| {
                    let v = f.aof.as_ref()?.records_per_commit?;
                    let end = f.started_at + f.duration_secs;
                    Some([(f.started_at, v), (end, v), (end, f64::NAN)])
                })
                .flatten()
                .collect(),
        })
        .collect();
    let mut cache_labels: Vec<&str> = Vec::new();
    for p in page {
        if !cache_labels.contains(&p.config.as_str()) {
            cache_labels.push(&p.config);
        }
    }
    let cache: Vec<Series> = cache_labels
        .iter()
        .map(|l| Series {
            name: format!("{l} Cached"),
            points: page
                .iter()
                .filter(|p| p.config == *l)
                .flat_map(|p| {
                    let end = p.samples.last().map_or(0.0, |x| x.0);
                    p.samples
                        .iter()
                        .map(|&(t, b)| (t, b as f64 / (1u64 << 20) as f64))
                        .chain([(end, f64::NAN)])
                })
                .collect(),
        })
        .collect();
    let mut panels = Vec::new();
    if !labels.is_empty() {
        // Parts 1-4 (part 5 has panels of its own below).
        panels.push(Panel {
            title: "throughput per second of each run".into(),
            unit: "req/s".into(),
            series: series(|t| t.1),
        });
        panels.push(Panel {
            title: "p99 latency per second (all commands)".into(),
            unit: "ms".into(),
            series: series(|t| t.2),
        });
    }
    if !commits.is_empty() {
        panels.push(Panel {
            title: "kv-server: records per group commit, per run".into(),
            unit: "records".into(),
            series: commits,
        });
    }
    if !cache.is_empty() {
        panels.push(Panel {
            title: "page cache (Cached in /proc/meminfo) while writing the log".into(),
            unit: "MiB".into(),
            series: cache,
        });
    }
    if !rewrites.is_empty() {
        // A series per server over its runs, a NaN point between runs.
        let per_server = |pick: &dyn Fn(&RewriteResult) -> Vec<(f64, f64)>| -> Vec<Series> {
            REWRITE_CONFIGS
                .iter()
                .map(|c| Series {
                    name: c.server.name().to_string(),
                    points: rewrites
                        .iter()
                        .filter(|r| r.server == c.server)
                        .flat_map(|r| {
                            let mut v = pick(r);
                            let end = v.last().map_or(r.started_at, |p| p.0);
                            v.push((end, f64::NAN));
                            v
                        })
                        .collect(),
                })
                .filter(|s| !s.points.is_empty())
                .collect()
        };
        let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
        panels.push(Panel {
            title: "part 5: RSS of server + children around BGREWRITEAOF".into(),
            unit: "MiB".into(),
            series: per_server(&|r| {
                r.samples
                    .iter()
                    .map(|x| (r.started_at + x.t, mb(x.rss_parent + x.rss_children)))
                    .collect()
            }),
        });
        panels.push(Panel {
            title: "part 5: slowest probe PING per 100 ms".into(),
            unit: "ms".into(),
            series: per_server(&|r| {
                r.probe
                    .iter()
                    .map(|w| (r.started_at + w.t, w.max_ms))
                    .collect()
            }),
        });
        panels.push(Panel {
            title: "part 5: commands per second (overwrite load)".into(),
            unit: "cmds/s".into(),
            series: per_server(&|r| {
                r.samples
                    .windows(2)
                    .filter(|w| w[1].t > w[0].t)
                    .map(|w| {
                        let rate =
                            w[1].commands.saturating_sub(w[0].commands) as f64 / (w[1].t - w[0].t);
                        (r.started_at + w[1].t, rate)
                    })
                    .collect()
            }),
        });
    }
    Chart {
        title: format!(
            "durability: kv-server vs redis-server, {} runs per configuration{}",
            s.runs,
            if s.quick { " (--quick)" } else { "" }
        ),
        panels,
        markers: marks,
    }
}

pub fn run(args: &DurabilityArgs) -> Result<()> {
    let s = Settings::of(args)?;
    let common = &args.common;
    let bins = Bins {
        redis: redis_server_bin()?,
        kv: common.kv_server_bin()?,
    };
    let out = common.out_dir();
    if s.has(3) {
        let most = s.scaling_clients.iter().copied().max().unwrap_or(1) as u64;
        // Our connections, the server's, plus room for files and control.
        ensure_open_files(most + 256)?;
    }
    let scratch = Scratch::new(&out, "durability")?;
    let machine = Machine {
        cpus: thread::available_parallelism().map_or(0, |n| n.get()),
        kernel: fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|k| k.trim().to_string())
            .unwrap_or_default(),
    };
    println!(
        "durability: parts {:?}, {} runs per configuration, kv-server {}, redis-server {}{}",
        s.parts,
        s.runs,
        bins.kv.display(),
        bins.redis.display(),
        if s.quick { " (--quick)" } else { "" }
    );
    let t0 = Instant::now();
    let mut figures = Vec::new();
    let mut page = Vec::new();
    let mut rewrites = Vec::new();
    let mut marks = Vec::new();
    let mark = |label: &str| Marker {
        at: t0.elapsed().as_secs_f64(),
        label: label.to_string(),
    };
    if s.has(1) {
        marks.push(mark("1: SET"));
        figures.extend(part1(&s, common, &bins, scratch.path(), t0)?);
    }
    if s.has(2) {
        marks.push(mark("2: GET:SET"));
        figures.extend(part2(&s, common, &bins, scratch.path(), t0)?);
    }
    if s.has(3) {
        marks.push(mark("3: clients"));
        figures.extend(part3(&s, common, &bins, scratch.path(), t0)?);
    }
    if s.has(4) {
        marks.push(mark("4: page cache"));
        page = part4(&s, common, &bins, scratch.path(), t0)?;
    }
    if s.has(5) {
        marks.push(mark("5: rewrite"));
        rewrites = part5(&s, common, &bins, scratch.path(), t0)?;
    }
    drop(scratch);

    let write_rows: Vec<Summary> = if s.has(1) {
        WRITE_CONFIGS
            .iter()
            .map(|c| summarize(1, c, s.clients, None, &figures))
            .collect()
    } else {
        Vec::new()
    };
    let mut mix_rows: Vec<Summary> = Vec::new();
    if s.has(2) {
        for rate in [None].into_iter().chain(s.mix_rate.map(Some)) {
            for c in &MIX_CONFIGS {
                mix_rows.push(summarize(2, c, s.clients, rate, &figures));
            }
        }
    }
    let mut scaling_rows = Vec::new();
    if s.has(3) {
        for &clients in &s.scaling_clients {
            for c in &SCALING_CONFIGS {
                // The connections a run really had (clients rounded to
                // the generator's threads).
                let real = with_clients(common, LoadSpec::set_get(1, 0), clients).connections();
                scaling_rows.push(summarize(3, c, real, None, &figures));
            }
        }
    }
    let mut page_rows = Vec::new();
    for p in &page {
        if !page_rows
            .iter()
            .any(|r: &PageCacheSummary| r.config == p.config)
        {
            page_rows.extend(summarize_page_cache(&p.config, &page));
        }
    }
    print_rows("part 1: SET, pipeline 1 (medians)", &write_rows, false);
    print_rows(
        "part 2: 90:10 GET:SET, pipeline 1 (medians)",
        &mix_rows,
        true,
    );
    print_rows(
        "part 3: SET under always by clients (medians)",
        &scaling_rows,
        false,
    );
    if !page_rows.is_empty() {
        println!("\npart 4: page cache (medians)");
        for p in &page_rows {
            println!(
                "{:<18} {:>9} req/s  p99 {} ms  max {} ms  log {} (files {}), Cached {} after / {} peak, log resident {}, io {}, caches dropped: {}",
                p.config,
                opt(p.throughput, 0),
                opt(p.p99_ms, 3),
                opt(p.max_ms, 1),
                opt_mib(p.log_bytes),
                opt_mib(p.files_bytes),
                mib_f(p.growth_after),
                mib_f(p.growth_peak),
                opt_mib(p.resident_bytes),
                p.io_path.as_deref().unwrap_or("-"),
                p.caches_dropped
            );
        }
    }
    let rewrite_summaries: Vec<RewriteSummary> = REWRITE_CONFIGS
        .iter()
        .filter_map(|c| summarize_rewrites(&c.label(), &rewrites))
        .collect();
    let rewrite_table = rewrite_rows(
        rewrite_summaries.iter().find(|r| r.server == Server::Redis),
        rewrite_summaries
            .iter()
            .find(|r| r.server == Server::KvServer),
    );
    print_rewrite_rows(&rewrite_table);
    let targets = targets(&write_rows, &mix_rows, &scaling_rows, &page_rows);
    println!(
        "\ntargets{}:",
        if s.quick {
            " (--quick: figures mean nothing)"
        } else {
            ""
        }
    );
    for t in &targets {
        let verdict = match t.met {
            Some(true) => "met",
            Some(false) => "NOT MET",
            None if s.has(t.part) => "context",
            None => "not run",
        };
        println!(
            "  part {} {:<36} {:<8} {} ({}; value {})",
            t.part,
            t.name,
            verdict,
            t.goal,
            t.detail,
            opt(t.value, 2)
        );
    }

    let svg = chart(&s, &figures, &page, &rewrites, marks).to_svg();
    let result = DurabilityResult {
        scenario: "durability",
        settings: s,
        machine,
        targets,
        write_rows,
        mix_rows,
        scaling_rows,
        page_cache_rows: page_rows,
        page_cache: page,
        rewrite_rows: rewrite_table,
        rewrite_summaries,
        rewrites,
        figures,
    };
    super::write_results(&out, "durability", &result, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kv_server_counters_are_read_and_redis_has_none() {
        let ours = "# Persistence\r\naof_enabled:1\r\naof_fsyncs:10\r\naof_group_commits:12\r\n\
                    aof_records:120\r\naof_bytes_written:4096\r\naof_fsync_p99_usec:900\r\n\
                    aof_current_size:1024\r\n\
                    aof_io_path:io_uring+direct\r\n";
        let c = AofCounters::parse(ours).expect("ours");
        assert_eq!(
            c,
            AofCounters {
                fsyncs: 10,
                group_commits: 12,
                records: 120,
                bytes_written: 4096,
                current_size: 1024,
            }
        );
        let redis = "# Persistence\r\naof_enabled:1\r\naof_current_size:100\r\n";
        assert_eq!(AofCounters::parse(redis), None);
        let off = "# Persistence\r\naof_enabled:0\r\n";
        assert_eq!(AofCounters::parse(off), None);

        let d = AofDelta::between(AofCounters::default(), c, 2.0, ours);
        assert_eq!(d.fsyncs_per_sec, 5.0);
        assert_eq!(d.records_per_commit, Some(10.0));
        assert_eq!(d.records_per_fsync, Some(12.0));
        assert_eq!(d.fsync_p99_usec, Some(900));
        assert_eq!(d.io_path.as_deref(), Some("io_uring+direct"));
        assert_eq!((d.log_bytes, d.write_amplification), (1024, Some(4.0)));
        let none = AofDelta::between(c, c, 1.0, "");
        assert_eq!(
            (none.records_per_commit, none.records_per_fsync),
            (None, None)
        );
    }

    #[test]
    fn fincore_output_is_summed() {
        assert_eq!(parse_fincore("4096\n0\n8192\n"), Some(12288));
        assert_eq!(parse_fincore(""), Some(0));
        assert_eq!(parse_fincore("4096\nRES\n"), None);
    }

    fn fig(config: Config, clients: usize, throughput: f64, rpc: Option<f64>) -> RunFigure {
        RunFigure {
            part: 3,
            config: config.label(),
            server: config.server,
            appendonly: config.appendonly,
            appendfsync: config.fsync,
            clients,
            rate: None,
            run: 1,
            started_at: 0.0,
            duration_secs: 1.0,
            requests: 1,
            errors: 0,
            throughput,
            p50_ms: 0.1,
            p99_ms: 1.0,
            max_ms: 1.0,
            get_p50_ms: None,
            get_p99_ms: None,
            set_p50_ms: None,
            set_p99_ms: None,
            get_nulls: None,
            aof: rpc.map(|r| AofDelta {
                fsyncs: 1,
                group_commits: 1,
                records: 1,
                bytes_written: 0,
                log_bytes: 0,
                write_amplification: None,
                fsyncs_per_sec: 100.0,
                records_per_commit: Some(r),
                records_per_fsync: Some(r),
                fsync_p99_usec: None,
                io_path: None,
            }),
            timeline: vec![],
        }
    }

    #[test]
    fn summaries_take_medians_and_targets_follow_them() {
        let kv = Config::new(KV, true, "always");
        let redis = Config::new(REDIS, true, "always");
        let figures = [
            fig(kv, 1, 900.0, Some(1.0)),
            fig(kv, 1, 1100.0, Some(1.0)),
            fig(kv, 1, 1000.0, Some(1.0)),
            fig(redis, 1, 500.0, None),
            fig(kv, 10, 5000.0, Some(6.0)),
            fig(kv, 100, 20000.0, Some(40.0)),
        ];
        let one = summarize(3, &kv, 1, None, &figures);
        assert_eq!((one.runs, one.throughput), (3, Some(1000.0)));
        assert_eq!(one.records_per_commit, Some(1.0));
        let r = summarize(3, &redis, 1, None, &figures);
        assert_eq!((r.throughput, r.records_per_commit), (Some(500.0), None));
        assert_eq!(kv.label(), "kv-server always");
        assert_eq!(Config::new(KV, false, "always").label(), "kv-server off");

        let rows: Vec<Summary> = [1, 10, 100]
            .iter()
            .map(|&c| summarize(3, &kv, c, None, &figures))
            .collect();
        let t = targets(&[], &[], &rows, &[]);
        let grow = t.iter().find(|t| t.part == 3).expect("part 3 target");
        assert_eq!(grow.met, Some(true));
        assert_eq!(grow.value, Some(40.0));
        // Nothing measured: no verdicts.
        assert!(t.iter().filter(|t| t.part != 3).all(|t| t.met.is_none()));

        for last in [3.0, 6.1] {
            // Falling, or flat within 10%.
            let mut rows = rows.clone();
            rows[2].records_per_commit = Some(last);
            let t = targets(&[], &[], &rows, &[]);
            assert_eq!(
                t.iter().find(|t| t.part == 3).and_then(|t| t.met),
                Some(false),
                "{last}"
            );
        }
    }

    fn page_run(server: Server, run: usize, growth_mib: i64) -> PageCacheResult {
        PageCacheResult {
            config: Config::new(server, true, "everysec").label(),
            server,
            run,
            requests: 10,
            errors: 0,
            duration_secs: 1.0,
            throughput: 10.0,
            p50_ms: 0.1,
            p99_ms: 1.0,
            max_ms: 2.0,
            caches_dropped: true,
            drop_caches_error: None,
            cached_before: 1 << 30,
            cached_peak: (1 << 30) + (growth_mib << 20) as u64,
            cached_after: (1 << 30) + (growth_mib << 20) as u64,
            growth_after: growth_mib << 20,
            growth_peak: growth_mib << 20,
            log_bytes: Some(2048 << 20),
            files_bytes: 2048 << 20,
            resident_bytes: Some(0),
            io_path: None,
            samples: vec![],
            timeline: vec![],
        }
    }

    #[test]
    fn page_cache_target_takes_the_median_run() {
        // One run disturbed by something else filling the page cache.
        let runs = [
            page_run(KV, 1, 1),
            page_run(REDIS, 1, 2048),
            page_run(KV, 2, 491),
            page_run(REDIS, 2, 2050),
            page_run(KV, 3, 0),
            page_run(REDIS, 3, 2040),
        ];
        let kv = summarize_page_cache("kv-server everysec", &runs).expect("ours");
        assert_eq!((kv.runs, kv.growth_after), (3, Some((1u64 << 20) as f64)));
        assert!(summarize_page_cache("kv-server no", &runs).is_none());
        let redis = summarize_page_cache("redis everysec", &runs).expect("redis");
        let t = targets(&[], &[], &[], &[kv, redis]);
        let ours = t.iter().find(|t| t.name == "page cache").expect("target");
        assert_eq!((ours.met, ours.value), (Some(true), Some(1.0)));
        let theirs = t
            .iter()
            .find(|t| t.name.starts_with("Redis"))
            .expect("context");
        assert_eq!(theirs.met, None);
        assert!((theirs.value.unwrap_or(0.0) - 1.0).abs() < 0.01);
    }

    #[test]
    fn quick_shrinks_everything_and_flags_win() {
        use clap::Parser;
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            d: DurabilityArgs,
        }
        let a = Cli::parse_from(["x", "--quick", "--runs", "2"]).d;
        let s = Settings::of(&a).expect("valid");
        assert_eq!((s.runs, s.requests, s.log_bytes), (2, 2_000, 16 << 20));
        assert_eq!(s.scaling_clients, [1, 10, 100]);
        assert!(!s.drop_caches);
        let a = Cli::parse_from(["x", "--parts", "3,1", "--scaling-clients", "2,20"]).d;
        let s = Settings::of(&a).expect("valid");
        assert_eq!(
            (s.parts.clone(), s.scaling_clients.clone()),
            (vec![1, 3], vec![2, 20])
        );
        assert_eq!((s.runs, s.log_bytes, s.drop_caches), (3, 2048 << 20, true));
        assert_eq!(
            (s.rewrite_bytes, s.rewrite_keys, s.rewrite_baseline_secs),
            (1024 << 20, 1024 * 1024, 10.0)
        );
        let a = Cli::parse_from(["x", "--quick"]).d;
        let s = Settings::of(&a).expect("valid");
        assert_eq!(s.parts, [1, 2, 3, 4, 5]);
        assert_eq!((s.rewrite_bytes, s.rewrite_keys), (8 << 20, 8192));
        let a = Cli::parse_from(["x", "--parts", "5", "--rewrite-mib", "1"]).d;
        let s = Settings::of(&a).expect("valid");
        assert_eq!((s.parts.clone(), s.rewrite_keys), (vec![5], 1024));
        let a = Cli::parse_from(["x", "--parts", "6"]).d;
        assert!(Settings::of(&a).is_err());
        let a = Cli::parse_from(["x", "--rewrite-baseline", "0"]).d;
        assert!(Settings::of(&a).is_err());
    }

    fn rw_sample(t: f64, rss: u64, child: u64, pss: Option<u64>, commands: u64) -> RewriteSample {
        RewriteSample {
            t,
            rss_parent: rss,
            rss_children: child,
            children: usize::from(child > 0),
            pss_total: pss,
            page_cache: 1000 + if t >= 0.0 { child } else { 0 },
            commands,
            in_progress: (0.0..2.0).contains(&t),
            log_bytes: Some(500 + (t * 10.0) as u64),
            rewrite_buffer: None,
        }
    }

    #[test]
    fn rewrite_figures_compare_with_an_equal_stretch_before() {
        let samples = [
            rw_sample(-3.0, 100, 0, Some(90), 0),
            rw_sample(-2.0, 100, 0, None, 1000),
            rw_sample(-0.1, 110, 0, Some(95), 2900),
            rw_sample(0.5, 110, 50, None, 3200),
            rw_sample(1.5, 112, 80, Some(150), 3700),
            rw_sample(2.0, 120, 0, None, 3950),
            rw_sample(3.0, 130, 0, Some(99), 4950),
        ];
        // A 7 ms stall 3 s before (outside the 2 s compared), 4 ms inside.
        let mut probes = vec![
            (-3.0, 7.0),
            (-1.0, 4.0),
            (-0.5, 0.1),
            (0.2, 20.0),
            (1.0, 0.2),
            (2.2, 50.0),
        ];
        let f = rewrite_figures(&samples, &probes, 2.0, 5.0);
        assert_eq!((f.stall_before_ms, f.stall_during_ms), (4.0, 20.0));
        // A PING sent 10 ms before the BGREWRITEAOF and answered 30 ms
        // later waited for the rewrite's start.
        probes.push((-0.01, 30.0));
        let f = rewrite_figures(&samples, &probes, 2.0, 5.0);
        assert_eq!((f.stall_before_ms, f.stall_during_ms), (4.0, 30.0));
        assert_eq!((f.rss_before, f.peak_rss, f.peak_extra_rss), (110, 192, 82));
        assert_eq!(
            (f.pss_before, f.peak_pss, f.peak_extra_pss),
            (Some(95), Some(150), Some(55))
        );
        assert_eq!(f.page_cache_growth, 80);
        assert_eq!(f.compared_secs, 2.0);
        // Before: -2.0 .. -0.1 (1900 commands in 1.9 s); during: -0.1 .. 2.0.
        let near = |a: Option<f64>, b: f64| a.is_some_and(|a| (a - b).abs() < 1e-6);
        assert!(near(f.throughput_before, 1000.0), "{f:?}");
        assert!(near(f.throughput_during, 500.0), "{f:?}");
        assert_eq!(
            (f.log_bytes_before, f.peak_rewrite_buffer),
            (Some(500), None)
        );
        // The baseline caps the stretch compared (throughput: from the
        // last sample at least that long before).
        let f = rewrite_figures(&samples, &probes, 2.0, 0.5);
        assert_eq!((f.compared_secs, f.stall_before_ms), (0.5, 0.1));
        assert!(near(f.throughput_before, 1000.0), "{f:?}");
        // A rewrite shorter than a sample still has figures.
        let f = rewrite_figures(&samples, &probes, 0.5, 5.0);
        assert_eq!(f.compared_secs, 0.5);
        assert!(near(f.throughput_during, 300.0 / 0.6), "{f:?}");
    }

    #[test]
    fn rewrite_table_takes_medians_and_skips_missing_rows() {
        let run = |server: Server, run: usize, secs: f64, extra_mib: i64| RewriteResult {
            config: Config::new(server, true, "everysec").label(),
            server,
            run,
            keys: 10,
            value_size: 1024,
            dataset_bytes: 100 << 20,
            fill_secs: 1.0,
            started_at: 0.0,
            reply: "Background append only file rewriting started".into(),
            reply_ms: 1.0,
            rewrite_secs: secs,
            last_rewrite_time_sec: Some(secs as i64),
            last_bgrewrite_status: Some("ok".into()),
            last_cow_size: Some(0),
            fork_usec: (server == REDIS).then_some(2000),
            figures: RewriteFigures {
                peak_extra_rss: extra_mib << 20,
                throughput_before: Some(100.0),
                throughput_during: Some(50.0),
                ..RewriteFigures::default()
            },
            log_bytes_after: Some(1 << 20),
            base_bytes_after: None,
            files_bytes_before: 0,
            files_bytes_after: 0,
            error_replies: Some(0),
            samples: vec![],
            probe: vec![],
        };
        let runs = [
            run(REDIS, 1, 8.0, 1000),
            run(KV, 1, 1.0, 10),
            run(REDIS, 2, 6.0, 1200),
            run(KV, 2, 3.0, 30),
            run(REDIS, 3, 7.0, 1100),
            run(KV, 3, 2.0, 20),
        ];
        let redis = summarize_rewrites("redis everysec", &runs).expect("redis");
        let ours = summarize_rewrites("kv-server everysec", &runs).expect("ours");
        assert!(summarize_rewrites("kv-server no", &runs).is_none());
        assert_eq!((redis.runs, redis.rewrite_secs), (3, Some(7.0)));
        assert_eq!((ours.fork_usec, ours.throughput_kept), (None, Some(0.5)));
        let rows = rewrite_rows(Some(&redis), Some(&ours));
        let row = |m: &str| rows.iter().find(|r| r.metric == m);
        let d = row("rewrite duration").expect("duration");
        assert_eq!(
            (d.redis, d.ours, d.ratio),
            (Some(7.0), Some(2.0), Some(2.0 / 7.0))
        );
        let m = row("peak extra RSS parent+children").expect("rss");
        assert_eq!((m.redis, m.ours), (Some(1100.0), Some(20.0)));
        let f = row("fork").expect("fork");
        assert_eq!((f.redis, f.ours, f.ratio), (Some(2.0), None, None));
        // Neither server has a rewrite buffer, nor PSS figures here.
        assert!(row("peak aof_rewrite_buffer_length").is_none());
        assert!(row("peak extra PSS parent+children").is_none());
        assert_eq!(row("runs").and_then(|r| r.ratio), None);
        assert!(rewrite_rows(None, None).is_empty());
    }
}
