//! Part 5: the log rewrite (BGREWRITEAOF) under load.

use super::*;

/// Part 5's servers, in the order each round runs them.
pub(super) const REWRITE_CONFIGS: [Config; 2] = [
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

pub(super) fn part5(
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
pub(super) fn data_bytes(dir: &Path) -> u64 {
    files_under(dir)
        .iter()
        .filter(|f| f.file_name().is_none_or(|n| n != "server.log"))
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Where the sampling loop of one rewrite got to.
pub(super) struct RewriteTrace {
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
pub(super) fn rewrite_run(
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
pub(super) fn rewrite_trace(
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

pub(super) fn print_rewrite_rows(rows: &[RewriteRow]) {
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
