//! `bench scenario snapshot-under-load`: what a BGSAVE costs while the
//! server is busy.
//!
//! Per server, after `--settle` seconds idle (the VM stalls for tens of
//! milliseconds every ~2 s for a while after a big process exits): fill
//! `--gib` GiB with sequential SETs (pipelined), start an
//! overwrite load at full speed (uniform keys over the filled range, in a
//! background thread), start a probe client (one connection, a PING about
//! every millisecond, its own thread), wait `--baseline` seconds, send
//! BGSAVE, and sample every 100 ms until `--duration-after` seconds after
//! the snapshot ended:
//!
//! - RSS of the server and of any child (Redis forks; children are found
//!   through `/proc/PID/task/*/children`),
//! - `Cached` of `/proc/meminfo` (the page cache the RDB file fills),
//! - throughput (`total_commands_processed` from INFO stats, per interval),
//! - `rdb_bgsave_in_progress` (the end of the snapshot).
//!
//! Times are relative to the moment BGSAVE is sent. The probe's figures
//! for the snapshot are the PINGs answered after that moment and sent
//! before the snapshot ended (a PING waiting for Redis's fork counts for
//! the snapshot); those of the equally long stretch before it, the PINGs
//! sent and answered within that stretch.
//!
//! PSS (parent + children, from `/proc/PID/smaps_rollup`) is read at most
//! once a second and never within 200 ms after BGSAVE was sent: a read of a
//! 3 GiB process takes ~55 ms and holds its memory map lock, which would
//! itself stall the server, right at the fork.
//!
//! kv-server answers BGSAVE with an error until M1.4; it is then reported
//! as "snapshots not implemented yet (M1.4)" and not sampled.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use clap::Args;
use serde::Serialize;

use super::{
    canaries, children_of, fill_values, info_field, info_u64, kernel_hogs, page_cache, page_size,
    probe, pss_of, redis_server_bin, rss_of, Client, Common, Reply, Result, Scratch, Server,
    ServerProcess,
};
use crate::chart::{Chart, Marker, Panel, Series};
use crate::{LoadSpec, Range, StopAfter};

#[derive(Args, Debug, Clone)]
pub struct SnapshotArgs {
    #[command(flatten)]
    pub common: Common,
    /// Dataset size to fill before the snapshot, in GiB of values (the
    /// issue's target run is 3).
    #[arg(long, default_value_t = 1.0)]
    pub gib: f64,
    /// Value size in bytes of the fill and of the overwrite load.
    #[arg(long, default_value_t = 1024)]
    pub value_size: u64,
    /// Seconds to keep sampling after the snapshot ended.
    #[arg(long, default_value_t = 5.0)]
    pub duration_after: f64,
    /// Seconds of load before BGSAVE (the stretch the snapshot is compared
    /// with).
    #[arg(long, default_value_t = 5.0)]
    pub baseline: f64,
    /// Connections of the overwrite load.
    #[arg(long, default_value_t = 50)]
    pub load_clients: usize,
    /// Give up waiting for the snapshot to end after this many seconds.
    #[arg(long, default_value_t = 1800.0)]
    pub max_snapshot_secs: f64,
    /// Measure kv-server only, for comparing two kv-server builds run
    /// after run (the M1.4 targets need Redis in the same run).
    #[arg(long)]
    pub skip_redis: bool,
    /// Idle seconds before each server starts. On this VM, after a process
    /// frees gigabytes (the previous server, or a previous run), the guest
    /// reports the free memory to the host (virtio-balloon free page
    /// reporting, every ~2 s), and while that goes on, a server filling
    /// and serving stalls the whole machine for 15-30 ms every 2.2-2.5 s
    /// (a real-time canary saw it; none after 30 s idle; BENCHMARKS.md).
    #[arg(long, default_value_t = 30.0)]
    pub settle: f64,
}

/// One 100 ms sample. Times are seconds relative to the BGSAVE.
#[derive(Debug, Clone, Serialize)]
pub struct Sample {
    pub t: f64,
    pub rss_parent: u64,
    pub rss_children: u64,
    pub children: Vec<u32>,
    /// PSS of parent + children, when read in this sample (once a second).
    pub pss_total: Option<u64>,
    pub page_cache: u64,
    /// Commands/s since the previous sample (load + probe + sampler).
    pub throughput: f64,
    pub bgsave_in_progress: bool,
}

/// Probe latencies over one 100 ms window (by send time, relative to BGSAVE).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ProbeWindow {
    pub t: f64,
    pub count: usize,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub keys: u64,
    /// `used_memory` after the fill.
    pub dataset_bytes: u64,
    pub rss_before: u64,
    pub peak_rss_total: u64,
    pub peak_extra_rss_over_dataset: i64,
    pub peak_extra_rss_over_before: i64,
    pub pss_before: Option<u64>,
    pub peak_pss_total: Option<u64>,
    pub peak_extra_pss_over_dataset: Option<i64>,
    pub peak_page_cache_growth: i64,
    pub snapshot_secs: f64,
    pub rdb_last_bgsave_time_sec: Option<i64>,
    pub rdb_last_bgsave_status: Option<String>,
    pub latest_fork_usec: Option<u64>,
    /// Length of the stretch before BGSAVE the snapshot is compared with.
    pub compared_secs: f64,
    pub stall_before_ms: f64,
    pub stall_during_ms: f64,
    /// The same, leaving out probe stalls that overlap a stall of 5 ms or
    /// more of the machine or one of its vCPUs, as seen by the real-time
    /// canaries, one pinned to each CPU ([`super::canary`]).
    pub stall_before_not_machine_ms: f64,
    pub stall_during_not_machine_ms: f64,
    /// Longest machine or vCPU stall a canary saw in either stretch.
    pub machine_stall_before_ms: f64,
    pub machine_stall_during_ms: f64,
    /// Whether every canary ran SCHED_FIFO on its CPU (else no canary
    /// stall is left out: a canary sharing the CPUs' queue sees the
    /// guest's own load).
    pub canary_realtime: bool,
    /// CPU time (ms) of the longest burst of a kernel thread that takes a
    /// vCPU on its own schedule ([`super::kernel_hogs`], `kdamond`)
    /// starting in either stretch. Probe stalls overlapping such a burst
    /// are left out of the `*_not_machine_ms` figures too.
    pub kernel_burst_before_ms: f64,
    pub kernel_burst_during_ms: f64,
    pub probe_p99_before_ms: f64,
    pub probe_p99_during_ms: f64,
    pub throughput_before: f64,
    pub throughput_during: f64,
}

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum ServerOutcome {
    Measured {
        summary: Box<Summary>,
        samples: Vec<Sample>,
        probe: Vec<ProbeWindow>,
        /// The stalls the canaries saw, (start s, ms late), and the kernel
        /// threads' bursts, (start s, span ms, CPU ms), over the whole run.
        vcpu_stalls: Vec<(f64, f64)>,
        kernel_bursts: Vec<(f64, f64, f64)>,
    },
    Skipped {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct ServerResult {
    pub server: Server,
    #[serde(flatten)]
    pub outcome: ServerOutcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotResult {
    pub scenario: &'static str,
    pub gib: f64,
    pub value_size: u64,
    pub baseline_secs: f64,
    pub duration_after_secs: f64,
    pub settle_secs: f64,
    pub servers: Vec<ServerResult>,
}

/// The value at quantile `q` of `v` (sorted in place); 0 if empty.
pub fn quantile(v: &mut [f64], q: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let idx = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1;
    v[idx]
}

/// Groups (send time, latency ms) probes into windows of `width` seconds.
pub fn probe_windows(probes: &[(f64, f64)], width: f64) -> Vec<ProbeWindow> {
    let mut buckets: std::collections::BTreeMap<i64, Vec<f64>> = Default::default();
    for &(t, lat) in probes {
        buckets
            .entry((t / width).floor() as i64)
            .or_default()
            .push(lat);
    }
    buckets
        .into_iter()
        .map(|(k, mut v)| ProbeWindow {
            t: k as f64 * width,
            count: v.len(),
            max_ms: v.iter().copied().fold(0.0, f64::max),
            p99_ms: quantile(&mut v, 0.99),
        })
        .collect()
}

/// (longest, p99) latency in ms of the probes (send time in s, latency in
/// ms) that `keep(sent, answered)` selects (times relative to the command
/// that starts the snapshot or rewrite: a PING answered after it was sent,
/// e.g. one waiting for Redis's fork, counts for the snapshot).
pub fn probe_stats(probes: &[(f64, f64)], keep: impl Fn(f64, f64) -> bool) -> (f64, f64) {
    let mut v: Vec<f64> = probes
        .iter()
        .filter(|p| keep(p.0, p.0 + p.1 / 1e3))
        .map(|p| p.1)
        .collect();
    let max = v.iter().copied().fold(0.0, f64::max);
    (max, quantile(&mut v, 0.99))
}

/// A canary wake-up this late (ms) marks a stall of the machine or of the
/// canary's vCPU.
const MACHINE_STALL_MS: f64 = 5.0;

/// The longest latency (ms) of the probes that `keep(sent, answered)`
/// selects and whose wait overlaps no machine-wide stall (`machine`: the
/// canary's (start s, ms late)).
pub fn stall_not_machine(
    probes: &[(f64, f64)],
    machine: &[(f64, f64)],
    keep: impl Fn(f64, f64) -> bool,
) -> f64 {
    let stalls: Vec<(f64, f64)> = machine
        .iter()
        .filter(|m| m.1 >= MACHINE_STALL_MS)
        .map(|&(at, late)| (at, at + (1.0 + late) / 1e3))
        .collect();
    probes
        .iter()
        .filter(|p| keep(p.0, p.0 + p.1 / 1e3))
        .filter(|p| {
            let (a, b) = (p.0, p.0 + p.1 / 1e3);
            !stalls.iter().any(|&(s, e)| s < b && a < e)
        })
        .map(|p| p.1)
        .fold(0.0, f64::max)
}

/// The largest `value` of the `(start s, value)` events starting in the
/// stretch `[from, to)` (s); 0 if none.
pub fn worst_starting_in(
    events: impl IntoIterator<Item = (f64, f64)>,
    (from, to): (f64, f64),
) -> f64 {
    events
        .into_iter()
        .filter(|e| e.0 >= from && e.0 < to)
        .map(|e| e.1)
        .fold(0.0, f64::max)
}

fn gib_str(b: f64) -> String {
    format!("{:.2} GiB", b / (1u64 << 30) as f64)
}

fn mib(b: i64) -> String {
    format!("{:+.0} MiB", b as f64 / (1u64 << 20) as f64)
}

fn info(c: &mut Client, section: &str) -> Result<String> {
    c.info(section)
}

fn measure(args: &SnapshotArgs, server: ServerProcess) -> Result<ServerOutcome> {
    let name = server.server.name();
    let mut ctl = server.client()?;
    // Does it snapshot at all? Ask on the empty server first.
    match ctl.call(&["BGSAVE"])? {
        Reply::Error(e) => {
            return Ok(ServerOutcome::Skipped {
                reason: format!("snapshots not implemented yet (M1.4): BGSAVE replied -{e}"),
            })
        }
        _ => {
            let deadline = Instant::now() + Duration::from_secs(30);
            while info_u64(&info(&mut ctl, "persistence")?, "rdb_bgsave_in_progress") != Some(0) {
                if Instant::now() > deadline {
                    return Err(format!("{name}: BGSAVE of an empty dataset did not end"));
                }
                thread::sleep(Duration::from_millis(50));
            }
        }
    }

    let keys = ((args.gib * (1u64 << 30) as f64) / args.value_size as f64).ceil() as u64;
    let keys = keys.max(1);
    println!("{name}: filling {keys} keys of {} bytes", args.value_size);
    let fill_start = Instant::now();
    fill_values(&args.common, server.port, keys, args.value_size)?;
    let dataset = info_u64(&info(&mut ctl, "memory")?, "used_memory").unwrap_or(0);
    println!(
        "{name}: filled in {:.1} s, used_memory {}",
        fill_start.elapsed().as_secs_f64(),
        gib_str(dataset as f64)
    );

    // Overwrite load at full speed; it ends when the server is stopped.
    let mut spec = LoadSpec::set_get(1, 0);
    spec.commands.retain(|c| c.weight > 0);
    spec.port = server.port;
    spec.threads = args.common.bench_threads.max(1);
    spec.clients = args.common.clients_per_thread(args.load_clients);
    spec.key_min = 0;
    spec.key_max = keys - 1;
    spec.data_size = Range::fixed(args.value_size);
    spec.stop = StopAfter {
        requests: None,
        duration: Some(Duration::from_secs(24 * 3600)),
    };
    spec.reply_timeout = Duration::from_secs(600);
    let load = thread::spawn(move || crate::run(&spec, |_| {}));

    let t0 = Instant::now();
    let stop = Arc::new(AtomicBool::new(false));
    let probes = Arc::new(Mutex::new(Vec::new()));
    let prober = {
        let (stop, probes, port) = (stop.clone(), probes.clone(), server.port);
        thread::spawn(move || probe(port, t0, stop, probes))
    };
    let machine = Arc::new(Mutex::new(Vec::new()));
    let (canary_threads, canary_rt) = canaries(&stop, &machine);
    let hogs = Arc::new(Mutex::new(Vec::new()));
    let hog_watch = {
        let (stop, hogs) = (stop.clone(), hogs.clone());
        thread::spawn(move || kernel_hogs(stop, hogs))
    };

    let pid = server.pid();
    let page = page_size();
    let baseline = Duration::from_secs_f64(args.baseline.max(0.5));
    let after = Duration::from_secs_f64(args.duration_after.max(0.0));
    let max_snapshot = Duration::from_secs_f64(args.max_snapshot_secs);
    let mut samples: Vec<(Instant, Sample)> = Vec::new();
    let mut bgsave_at: Option<Instant> = None;
    let mut end_at: Option<Instant> = None;
    let mut last_pss: Option<Instant> = None;
    let mut last_cmds: Option<(Instant, u64)> = None;
    let mut tick = t0;
    let outcome: Result<()> = loop {
        let now = Instant::now();
        if bgsave_at.is_none() && now >= t0 + baseline {
            // Time 0 is when BGSAVE is sent: Redis's reply waits for its
            // fork, which belongs to the snapshot.
            let sent = Instant::now();
            match ctl.call(&["BGSAVE"]) {
                Ok(Reply::Status(_)) => bgsave_at = Some(sent),
                Ok(r) => break Err(format!("{name}: BGSAVE replied {r:?}")),
                Err(e) => break Err(e),
            }
            println!("{name}: BGSAVE sent after {:.1} s of load", args.baseline);
        }
        let stats = match info(&mut ctl, "stats") {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        let persistence = match info(&mut ctl, "persistence") {
            Ok(s) => s,
            Err(e) => break Err(e),
        };
        let now = Instant::now();
        let in_progress = info_u64(&persistence, "rdb_bgsave_in_progress") == Some(1);
        let children = children_of(pid);
        let near_fork = bgsave_at.is_some_and(|b| now >= b && now < b + Duration::from_millis(200));
        let pss_due = last_pss.is_none_or(|l| now >= l + Duration::from_secs(1));
        let pss_total = (pss_due && !near_fork).then(|| {
            last_pss = Some(now);
            pss_of(pid) + children.iter().map(|&c| pss_of(c)).sum::<u64>()
        });
        let cmds = info_u64(&stats, "total_commands_processed").unwrap_or(0);
        let throughput = match last_cmds {
            Some((t, c)) if now > t => cmds.saturating_sub(c) as f64 / (now - t).as_secs_f64(),
            _ => 0.0,
        };
        last_cmds = Some((now, cmds));
        samples.push((
            now,
            Sample {
                t: 0.0,
                rss_parent: rss_of(pid, page),
                rss_children: children.iter().map(|&c| rss_of(c, page)).sum(),
                children,
                pss_total,
                page_cache: page_cache(),
                throughput,
                bgsave_in_progress: in_progress,
            },
        ));
        if let Some(b) = bgsave_at {
            if end_at.is_none() && !in_progress {
                end_at = Some(now);
                println!(
                    "{name}: snapshot ended after {:.1} s ({})",
                    (now - b).as_secs_f64(),
                    info_field(&persistence, "rdb_last_bgsave_status").unwrap_or("?")
                );
            }
            if end_at.is_none() && now > b + max_snapshot {
                break Err(format!(
                    "{name}: snapshot still running after {max_snapshot:?}"
                ));
            }
        }
        if end_at.is_some_and(|e| now >= e + after) {
            break Ok(());
        }
        tick += Duration::from_millis(100);
        let now = Instant::now();
        if tick > now {
            thread::sleep(tick - now);
        } else {
            tick = now;
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = prober.join();
    for c in canary_threads {
        let _ = c.join();
    }
    let _ = hog_watch.join();
    let final_stats = info(&mut ctl, "stats").unwrap_or_default();
    let final_persistence = info(&mut ctl, "persistence").unwrap_or_default();
    drop(ctl);
    drop(server); // ends the overwrite load (its connections close)
    let _ = load.join();
    outcome?;

    let (Some(bgsave_at), Some(end_at)) = (bgsave_at, end_at) else {
        return Err(format!("{name}: no snapshot was observed"));
    };
    let rel = |t: Instant| -> f64 {
        if t >= bgsave_at {
            (t - bgsave_at).as_secs_f64()
        } else {
            -(bgsave_at - t).as_secs_f64()
        }
    };
    let samples: Vec<Sample> = samples
        .into_iter()
        .map(|(at, mut s)| {
            s.t = rel(at);
            s
        })
        .collect();
    let probes: Vec<(f64, f64)> = probes
        .lock()
        .map(|v| v.iter().map(|&(at, lat)| (rel(at), lat)).collect())
        .unwrap_or_default();
    let machine: Vec<(f64, f64)> = machine
        .lock()
        .map(|v| v.iter().map(|&(at, late)| (rel(at), late)).collect())
        .unwrap_or_default();
    let hogs: Vec<(f64, f64, f64)> = hogs
        .lock()
        .map(|v| {
            v.iter()
                .map(|&(at, span, cpu)| (rel(at), span, cpu))
                .collect()
        })
        .unwrap_or_default();
    let snapshot_secs = rel(end_at);
    let summary = summarize(
        keys,
        dataset,
        snapshot_secs,
        args.baseline,
        &samples,
        &probes,
        canary_rt.then_some(machine.as_slice()),
        &hogs,
        &final_stats,
        &final_persistence,
    );
    Ok(ServerOutcome::Measured {
        summary: Box::new(summary),
        samples,
        probe: probe_windows(&probes, 0.1),
        vcpu_stalls: machine,
        kernel_bursts: hogs,
    })
}

/// The report's figures from the samples and probes (times relative to the
/// BGSAVE, the snapshot ending at `snapshot_secs`).
#[allow(clippy::too_many_arguments)]
pub fn summarize(
    keys: u64,
    dataset: u64,
    snapshot_secs: f64,
    baseline: f64,
    samples: &[Sample],
    probes: &[(f64, f64)],
    machine: Option<&[(f64, f64)]>,
    hogs: &[(f64, f64, f64)],
    stats: &str,
    persistence: &str,
) -> Summary {
    let before: Vec<&Sample> = samples.iter().filter(|s| s.t < 0.0).collect();
    let during: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.t >= 0.0 && s.t <= snapshot_secs)
        .collect();
    let after_start: Vec<&Sample> = samples.iter().filter(|s| s.t >= 0.0).collect();
    let rss_before = before.last().map_or(0, |s| s.rss_parent + s.rss_children);
    let peak_rss_total = during
        .iter()
        .map(|s| s.rss_parent + s.rss_children)
        .max()
        .unwrap_or(0);
    let pss_before = before.iter().rev().find_map(|s| s.pss_total);
    let peak_pss_total = during.iter().filter_map(|s| s.pss_total).max();
    let cache_at_start = before.last().map_or(0, |s| s.page_cache);
    let peak_cache = after_start.iter().map(|s| s.page_cache).max().unwrap_or(0);
    let compared = snapshot_secs.min(baseline).max(0.1);
    let in_before = |sent: f64, answered: f64| sent >= -compared && answered < 0.0;
    let in_snapshot = |sent: f64, answered: f64| answered >= 0.0 && sent < snapshot_secs.max(0.1);
    let (stall_before, p99_before) = probe_stats(probes, in_before);
    let (stall_during, p99_during) = probe_stats(probes, in_snapshot);
    let canary = machine.unwrap_or_default();
    // Probe stalls are excused by a canary's stall or a kernel thread's
    // burst (as a stall as long as the burst) that they overlap.
    let excuses: Vec<(f64, f64)> = canary
        .iter()
        .copied()
        .chain(
            hogs.iter()
                .map(|&(at, span, _)| (at, span.max(MACHINE_STALL_MS))),
        )
        .collect();
    let (before_span, during_span) = ((-compared, 0.0), (0.0, snapshot_secs.max(0.1)));
    let worst_canary = |span| worst_starting_in(canary.iter().copied(), span);
    let hog_cpu = |span| worst_starting_in(hogs.iter().map(|h| (h.0, h.2)), span);
    let mean = |v: &[&Sample], from: f64| {
        let xs: Vec<f64> = v
            .iter()
            .filter(|s| s.t >= from)
            .map(|s| s.throughput)
            .collect();
        if xs.is_empty() {
            0.0
        } else {
            xs.iter().sum::<f64>() / xs.len() as f64
        }
    };
    Summary {
        keys,
        dataset_bytes: dataset,
        rss_before,
        peak_rss_total,
        peak_extra_rss_over_dataset: peak_rss_total as i64 - dataset as i64,
        peak_extra_rss_over_before: peak_rss_total as i64 - rss_before as i64,
        pss_before,
        peak_pss_total,
        peak_extra_pss_over_dataset: peak_pss_total.map(|p| p as i64 - dataset as i64),
        peak_page_cache_growth: peak_cache as i64 - cache_at_start as i64,
        snapshot_secs,
        rdb_last_bgsave_time_sec: info_field(persistence, "rdb_last_bgsave_time_sec")
            .and_then(|v| v.parse().ok()),
        rdb_last_bgsave_status: info_field(persistence, "rdb_last_bgsave_status").map(String::from),
        latest_fork_usec: info_u64(stats, "latest_fork_usec"),
        compared_secs: compared,
        stall_before_ms: stall_before,
        stall_during_ms: stall_during,
        stall_before_not_machine_ms: stall_not_machine(probes, &excuses, in_before),
        stall_during_not_machine_ms: stall_not_machine(probes, &excuses, in_snapshot),
        machine_stall_before_ms: worst_canary(before_span),
        machine_stall_during_ms: worst_canary(during_span),
        canary_realtime: machine.is_some(),
        kernel_burst_before_ms: hog_cpu(before_span),
        kernel_burst_during_ms: hog_cpu(during_span),
        probe_p99_before_ms: p99_before,
        probe_p99_during_ms: p99_during,
        throughput_before: mean(&before, -compared),
        throughput_during: mean(&during, 0.1),
    }
}

fn print_summary(name: &str, s: &Summary) {
    println!("{name}:");
    println!(
        "  dataset (used_memory)         {} ({} keys)",
        gib_str(s.dataset_bytes as f64),
        s.keys
    );
    println!(
        "  snapshot                      {:.1} s (rdb_last_bgsave_time_sec {}, status {}), fork {} us",
        s.snapshot_secs,
        s.rdb_last_bgsave_time_sec.map_or("?".into(), |v| v.to_string()),
        s.rdb_last_bgsave_status.as_deref().unwrap_or("?"),
        s.latest_fork_usec.map_or("?".into(), |v| v.to_string())
    );
    println!(
        "  peak RSS parent+child         {} = dataset {} / before {}",
        gib_str(s.peak_rss_total as f64),
        mib(s.peak_extra_rss_over_dataset),
        mib(s.peak_extra_rss_over_before)
    );
    match (s.peak_pss_total, s.peak_extra_pss_over_dataset) {
        (Some(p), Some(x)) => println!(
            "  peak PSS parent+child         {} = dataset {} (before: {})",
            gib_str(p as f64),
            mib(x),
            s.pss_before.map_or("?".into(), |b| gib_str(b as f64))
        ),
        _ => println!(
            "  peak PSS parent+child         not sampled (snapshot shorter than a PSS interval)"
        ),
    }
    println!(
        "  peak page-cache growth        {}",
        mib(s.peak_page_cache_growth)
    );
    println!(
        "  longest probe stall           {:.2} ms during vs {:.2} ms in the {:.1} s before",
        s.stall_during_ms, s.stall_before_ms, s.compared_secs
    );
    let canary_label = format!(
        "vCPU stalls (canaries{})",
        if s.canary_realtime {
            ""
        } else {
            ", not real-time"
        }
    );
    println!(
        "  {canary_label:<30}{:.2} ms during vs {:.2} ms before",
        s.machine_stall_during_ms, s.machine_stall_before_ms
    );
    println!(
        "  kernel-thread bursts (CPU)    {:.1} ms during vs {:.1} ms before",
        s.kernel_burst_during_ms, s.kernel_burst_before_ms
    );
    println!(
        "  longest probe stall not in one {:.2} ms during vs {:.2} ms before",
        s.stall_during_not_machine_ms, s.stall_before_not_machine_ms
    );
    println!(
        "  probe p99                     {:.3} ms during vs {:.3} ms before",
        s.probe_p99_during_ms, s.probe_p99_before_ms
    );
    println!(
        "  throughput                    {:.0} /s during vs {:.0} /s before",
        s.throughput_during, s.throughput_before
    );
}

fn chart(args: &SnapshotArgs, servers: &[ServerResult]) -> Chart {
    let mut lat = Vec::new();
    let mut mem = Vec::new();
    let mut cache = Vec::new();
    let mut thr = Vec::new();
    let mut markers = Vec::new();
    let mb = |b: u64| b as f64 / (1u64 << 20) as f64;
    for r in servers {
        let ServerOutcome::Measured {
            summary,
            samples,
            probe,
            ..
        } = &r.outcome
        else {
            continue;
        };
        let n = r.server.name();
        let series = |what: &str, points: Vec<(f64, f64)>| Series {
            name: format!("{n} {what}"),
            points,
        };
        lat.push(series(
            "p99",
            probe.iter().map(|w| (w.t, w.p99_ms)).collect(),
        ));
        lat.push(series(
            "max",
            probe.iter().map(|w| (w.t, w.max_ms)).collect(),
        ));
        mem.push(series(
            "RSS sum",
            samples
                .iter()
                .map(|s| (s.t, mb(s.rss_parent + s.rss_children)))
                .collect(),
        ));
        mem.push(series(
            "RSS child",
            samples.iter().map(|s| (s.t, mb(s.rss_children))).collect(),
        ));
        mem.push(series(
            "PSS sum",
            samples
                .iter()
                .filter_map(|s| s.pss_total.map(|p| (s.t, mb(p))))
                .collect(),
        ));
        let c0 = samples
            .iter()
            .rev()
            .find(|s| s.t < 0.0)
            .map_or(0.0, |s| mb(s.page_cache));
        cache.push(series(
            "Cached growth",
            samples
                .iter()
                .map(|s| (s.t, mb(s.page_cache) - c0))
                .collect(),
        ));
        thr.push(series(
            "commands",
            samples
                .iter()
                .skip(1)
                .map(|s| (s.t, s.throughput))
                .collect(),
        ));
        markers.push(Marker {
            at: 0.0,
            label: format!("{n} BGSAVE"),
        });
        markers.push(Marker {
            at: summary.snapshot_secs,
            label: format!("{n} end"),
        });
    }
    let panel = |title: &str, unit: &str, series| Panel {
        title: title.into(),
        unit: unit.into(),
        series,
    };
    Chart {
        title: format!(
            "snapshot under load: {} GiB of {}-byte values, overwrite load, BGSAVE at 0",
            args.gib, args.value_size
        ),
        panels: vec![
            panel("probe latency per 100 ms", "ms", lat),
            panel("server memory (parent + child)", "MiB", mem),
            panel("page cache (Cached) since BGSAVE", "MiB", cache),
            panel("throughput", "commands/s", thr),
        ],
        markers,
    }
}

pub fn run(args: &SnapshotArgs) -> Result<()> {
    if !(args.gib > 0.0 && args.value_size > 0) {
        return Err("--gib and --value-size must be positive".into());
    }
    let common = &args.common;
    let redis_bin = redis_server_bin()?;
    let kv_bin = common.kv_server_bin()?;
    let out = common.out_dir();
    let scratch = Scratch::new(&out, "snapshot-under-load")?;
    let threads = common.server_threads.map(|t| t.to_string());
    // Both servers snapshot only when told (BGSAVE) and keep no log, so
    // the snapshot is all the disk work either does.
    let mut kv_extra = vec!["--save", "", "--appendonly", "no"];
    if let Some(t) = &threads {
        kv_extra.extend(["--threads", t.as_str()]);
    }
    let mut servers = Vec::new();
    for server in [Server::Redis, Server::KvServer] {
        if args.skip_redis && matches!(server, Server::Redis) {
            continue;
        }
        if args.settle > 0.0 {
            println!(
                "{}: {:.0} s idle first (the machine settles after earlier runs)",
                server.name(),
                args.settle
            );
            thread::sleep(Duration::from_secs_f64(args.settle));
        }
        let p = match server {
            Server::Redis => ServerProcess::start(
                server,
                &redis_bin,
                scratch.path(),
                "redis",
                &["--save", "", "--appendonly", "no"],
            ),
            Server::KvServer => {
                ServerProcess::start(server, &kv_bin, scratch.path(), "kv", &kv_extra)
            }
        }
        .map_err(|e| e.to_string())?;
        println!("{}: pid {} port {}", server.name(), p.pid(), p.port);
        let outcome = measure(args, p)?;
        match &outcome {
            ServerOutcome::Measured { summary, .. } => print_summary(server.name(), summary),
            ServerOutcome::Skipped { reason } => println!("{}: {reason}", server.name()),
        }
        // The RDB file of this server goes before the next one fills.
        let _ = std::fs::remove_dir_all(scratch.path().join(match server {
            Server::Redis => "redis",
            Server::KvServer => "kv",
        }));
        servers.push(ServerResult { server, outcome });
    }
    drop(scratch);
    let svg = chart(args, &servers).to_svg();
    let result = SnapshotResult {
        scenario: "snapshot-under-load",
        gib: args.gib,
        value_size: args.value_size,
        baseline_secs: args.baseline,
        settle_secs: args.settle,
        duration_after_secs: args.duration_after,
        servers,
    };
    super::write_results(&out, "snapshot-under-load", &result, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(t: f64, rss: u64, child: u64, pss: Option<u64>, cache: u64) -> Sample {
        Sample {
            t,
            rss_parent: rss,
            rss_children: child,
            children: vec![],
            pss_total: pss,
            page_cache: cache,
            throughput: 1000.0,
            bgsave_in_progress: (0.0..=2.0).contains(&t),
        }
    }

    #[test]
    fn quantiles_and_windows() {
        let mut v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&mut v, 0.99), 99.0);
        assert_eq!(quantile(&mut v, 1.0), 100.0);
        assert_eq!(quantile(&mut [], 0.99), 0.0);
        let w = probe_windows(&[(-0.05, 1.0), (0.01, 2.0), (0.05, 8.0), (0.25, 3.0)], 0.1);
        let ts: Vec<(i64, usize)> = w
            .iter()
            .map(|w| ((w.t * 10.0).round() as i64, w.count))
            .collect();
        assert_eq!(ts, [(-1, 1), (0, 2), (2, 1)]);
        assert_eq!(w[1].max_ms, 8.0);
    }

    #[test]
    fn summary_compares_the_snapshot_with_an_equal_stretch_before() {
        let samples = [
            sample(-3.0, 100, 0, Some(90), 1000),
            sample(-0.1, 110, 0, Some(95), 1000),
            sample(0.5, 110, 50, None, 1200),
            sample(1.5, 110, 80, Some(150), 1500),
            sample(2.5, 110, 0, None, 1400),
        ];
        // A 7 ms stall 3 s before (outside the 2 s compared), 4 ms inside.
        let probes = [
            (-3.0, 7.0),
            (-1.0, 4.0),
            (-0.5, 0.1),
            (0.2, 20.0),
            (1.0, 0.2),
            (2.2, 50.0),
        ];
        let s = summarize(
            10,
            100,
            2.0,
            5.0,
            &samples,
            &probes,
            Some(&[(0.21, 30.0)]),
            // A kdamond burst over the 4 ms stall before; one after both
            // stretches counts for neither.
            &[(-1.002, 20.0, 18.0), (5.0, 40.0, 39.0)],
            "latest_fork_usec:1234\r\n",
            "rdb_last_bgsave_status:ok\r\nrdb_last_bgsave_time_sec:2\r\n",
        );
        assert_eq!(s.rss_before, 110);
        assert_eq!(s.peak_rss_total, 190);
        assert_eq!(s.peak_extra_rss_over_dataset, 90);
        assert_eq!(s.peak_extra_rss_over_before, 80);
        assert_eq!((s.pss_before, s.peak_pss_total), (Some(95), Some(150)));
        assert_eq!(s.peak_page_cache_growth, 500);
        assert_eq!(s.compared_secs, 2.0);
        assert_eq!((s.stall_before_ms, s.stall_during_ms), (4.0, 20.0));
        // The 20 ms stall at +0.2 s overlaps the canary's 30 ms one, the
        // 4 ms one at -1.0 s the kernel thread's burst.
        assert_eq!(
            (s.stall_before_not_machine_ms, s.stall_during_not_machine_ms),
            (0.1, 0.2)
        );
        assert_eq!(
            (s.kernel_burst_before_ms, s.kernel_burst_during_ms),
            (18.0, 0.0)
        );
        assert_eq!(
            (s.machine_stall_before_ms, s.machine_stall_during_ms),
            (0.0, 30.0)
        );
        assert!(s.canary_realtime);
        assert_eq!(s.latest_fork_usec, Some(1234));
        assert_eq!(s.rdb_last_bgsave_time_sec, Some(2));
        assert_eq!(s.rdb_last_bgsave_status.as_deref(), Some("ok"));
    }

    #[test]
    fn machine_stalls_excuse_only_the_probes_they_overlap() {
        // Probes: (sent s, latency ms). Canary: (start s, ms late).
        let probes = [(1.0, 12.0), (2.0, 15.0), (3.0, 19.0)];
        let machine = [(0.995, 20.0), (2.0, 3.0), (2.97, 40.0)];
        let all = |_: f64, _: f64| true;
        // The first probe overlaps the stall at 0.995-1.016 s, the third the
        // one at 2.97-3.011 s; a 3 ms lateness is no machine stall.
        assert_eq!(stall_not_machine(&probes, &machine, all), 15.0);
        assert_eq!(stall_not_machine(&probes, &[], all), 19.0);
        // The longest canary stall starting in a stretch.
        assert_eq!(worst_starting_in(machine, (0.0, 5.0)), 40.0);
        assert_eq!(worst_starting_in(machine, (0.0, 2.8)), 20.0);
        assert_eq!(worst_starting_in([], (0.0, 5.0)), 0.0);
    }
}
