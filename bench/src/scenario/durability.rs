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

mod page_cache;
mod report;
mod rewrite;
#[cfg(test)]
mod tests;

pub use page_cache::*;
pub use report::*;
pub use rewrite::*;
