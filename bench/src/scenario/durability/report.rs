//! The durability scenario's results: per-run figures, medians, the
//! targets checked, the printed tables and the chart.

use super::*;

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

pub(super) fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

pub(super) fn mib(b: f64) -> String {
    format!("{:.0} MiB", b / (1u64 << 20) as f64)
}

pub(super) fn opt_mib(b: Option<f64>) -> String {
    b.map_or_else(|| "-".to_string(), mib)
}

pub(super) fn signed_mib(b: i64) -> String {
    format!("{:+.0} MiB", b as f64 / (1u64 << 20) as f64)
}

pub(super) fn find<'a>(
    rows: &'a [Summary],
    cfg: &Config,
    rate: Option<f64>,
) -> Option<&'a Summary> {
    let label = cfg.label();
    rows.iter().find(|r| r.config == label && r.rate == rate)
}

pub(super) fn mib_f(b: Option<f64>) -> String {
    b.map_or_else(
        || "-".to_string(),
        |b| format!("{:+.0} MiB", b / (1u64 << 20) as f64),
    )
}

/// How much records per commit must grow per step of part 3.
pub(super) const GROWTH: f64 = 1.1;

/// The targets from the summaries.
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

pub(super) fn print_rows(title: &str, rows: &[Summary], mix: bool) {
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

pub(super) fn chart(
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
