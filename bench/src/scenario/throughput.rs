//! `bench scenario throughput`: SET and GET at pipeline 1 and 16 against
//! kv-server and redis-server (persistence off on both), alternating runs
//! (redis, ours, redis, ours, ...) so drifts of a shared machine hit both
//! alike. Prints every run and, per row, the medians and ours/redis.

use std::time::Instant;

use clap::Args;
use serde::Serialize;

use super::{
    basic_spec, median, ratio, redis_server_bin, Common, Result, Scratch, Server, ServerProcess,
};
use crate::chart::{Chart, Panel, Series};

#[derive(Args, Debug, Clone)]
pub struct ThroughputArgs {
    #[command(flatten)]
    pub common: Common,
    /// Requests per run (50 connections, 64-byte values, keys 0..999999).
    #[arg(long, short = 'n', default_value_t = 1_000_000)]
    pub requests: u64,
    /// Runs per server and row; the summary takes the median.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,
}

/// The rows: (command, pipeline).
const ROWS: [(&str, usize); 4] = [("SET", 1), ("SET", 16), ("GET", 1), ("GET", 16)];

#[derive(Debug, Clone, Serialize)]
pub struct RunFigure {
    pub command: String,
    pub pipeline: usize,
    pub run: usize,
    pub server: Server,
    /// Seconds since the scenario started, at the run's start.
    pub started_at: f64,
    pub requests: u64,
    pub errors: u64,
    /// GETs that found no key.
    pub nulls: u64,
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// (seconds since the scenario started, requests/s): the run's
    /// per-second throughput, two points (start and end) per second.
    pub timeline: Vec<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct RowSummary {
    pub command: String,
    pub pipeline: usize,
    pub redis_median: Option<f64>,
    pub ours_median: Option<f64>,
    /// ours / redis of the medians.
    pub ratio: Option<f64>,
    pub redis_p50_ms: Option<f64>,
    pub ours_p50_ms: Option<f64>,
    pub redis_p99_ms: Option<f64>,
    pub ours_p99_ms: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ThroughputResult {
    pub scenario: &'static str,
    pub requests_per_run: u64,
    pub runs: usize,
    pub clients: usize,
    pub bench_threads: usize,
    pub value_size: u64,
    pub rows: Vec<RowSummary>,
    pub figures: Vec<RunFigure>,
}

/// Medians of one row over its runs.
pub fn summarize(command: &str, pipeline: usize, figures: &[RunFigure]) -> RowSummary {
    let pick = |server: Server, f: fn(&RunFigure) -> f64| {
        let v: Vec<f64> = figures
            .iter()
            .filter(|r| r.server == server && r.command == command && r.pipeline == pipeline)
            .map(f)
            .collect();
        median(&v)
    };
    let redis = pick(Server::Redis, |r| r.throughput);
    let ours = pick(Server::KvServer, |r| r.throughput);
    RowSummary {
        command: command.to_string(),
        pipeline,
        redis_median: redis,
        ours_median: ours,
        ratio: ratio(ours, redis),
        redis_p50_ms: pick(Server::Redis, |r| r.p50_ms),
        ours_p50_ms: pick(Server::KvServer, |r| r.p50_ms),
        redis_p99_ms: pick(Server::Redis, |r| r.p99_ms),
        ours_p99_ms: pick(Server::KvServer, |r| r.p99_ms),
    }
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_string(), |x| format!("{x:.prec$}"))
}

pub fn run(args: &ThroughputArgs) -> Result<()> {
    let common = &args.common;
    let redis_bin = redis_server_bin()?;
    let kv_bin = common.kv_server_bin()?;
    let out = common.out_dir();
    let scratch = Scratch::new(&out, "throughput")?;
    let redis = ServerProcess::start(
        Server::Redis,
        &redis_bin,
        scratch.path(),
        "redis",
        &["--save", "", "--appendonly", "no"],
    )
    .map_err(|e| e.to_string())?;
    let threads = common.server_threads.map(|t| t.to_string());
    // Persistence off on both sides, as Redis is started above.
    let mut kv_extra = vec!["--save", "", "--appendonly", "no"];
    if let Some(t) = &threads {
        kv_extra.extend(["--threads", t.as_str()]);
    }
    let ours = ServerProcess::start(Server::KvServer, &kv_bin, scratch.path(), "kv", &kv_extra)
        .map_err(|e| e.to_string())?;
    println!(
        "throughput: {} runs x {} requests, 50 clients, 64-byte values; redis pid {} port {}, kv-server pid {} port {}",
        args.runs,
        args.requests,
        redis.pid(),
        redis.port,
        ours.pid(),
        ours.port
    );
    let t0 = Instant::now();
    let mut figures = Vec::new();
    for (command, pipeline) in ROWS {
        for run in 1..=args.runs {
            for server in [&redis, &ours] {
                let spec = basic_spec(common, server.port, command, pipeline, args.requests);
                let started_at = t0.elapsed().as_secs_f64();
                let report = crate::run(&spec, |_| {}).map_err(|e| {
                    format!(
                        "{command} P{pipeline} run {run} against {}: {e}",
                        server.server.name()
                    )
                })?;
                let t = &report.total;
                let f = RunFigure {
                    command: command.to_string(),
                    pipeline,
                    run,
                    server: server.server,
                    started_at,
                    requests: t.requests,
                    errors: t.errors,
                    nulls: t.nulls,
                    throughput: t.throughput,
                    p50_ms: t.latency_ms.p50,
                    p99_ms: t.latency_ms.p99,
                    max_ms: t.latency_ms.max,
                    // Each second as a flat step, so even a one-second run
                    // draws a line.
                    timeline: report
                        .timeline
                        .iter()
                        .flat_map(|s| {
                            let from = started_at + s.second as f64;
                            [(from, s.throughput), (from + s.length, s.throughput)]
                        })
                        .collect(),
                };
                println!(
                    "{command:<3} P{pipeline:<2} run {run} {:<9} {:>10.0} req/s  p50 {:.3} ms  p99 {:.3} ms{}",
                    server.server.name(),
                    f.throughput,
                    f.p50_ms,
                    f.p99_ms,
                    if f.errors > 0 {
                        format!("  {} errors", f.errors)
                    } else {
                        String::new()
                    }
                );
                figures.push(f);
            }
        }
    }
    drop(ours);
    drop(redis);
    drop(scratch);

    let rows: Vec<RowSummary> = ROWS
        .iter()
        .map(|&(c, p)| summarize(c, p, &figures))
        .collect();
    println!();
    println!(
        "{:<7} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "row",
        "redis req/s",
        "ours req/s",
        "ours/redis",
        "redis p50",
        "ours p50",
        "redis p99",
        "ours p99"
    );
    for r in &rows {
        println!(
            "{:<7} {:>12} {:>12} {:>10} {:>10} {:>10} {:>10} {:>10}",
            format!("{} P{}", r.command, r.pipeline),
            opt(r.redis_median, 0),
            opt(r.ours_median, 0),
            opt(r.ratio, 2),
            opt(r.redis_p50_ms, 3),
            opt(r.ours_p50_ms, 3),
            opt(r.redis_p99_ms, 3),
            opt(r.ours_p99_ms, 3)
        );
    }
    println!("(medians over {} runs; latencies in ms)", args.runs);

    let chart = Chart {
        title: format!(
            "throughput: kv-server vs redis-server, {} runs of {} requests each, alternating",
            args.runs, args.requests
        ),
        panels: ROWS
            .iter()
            .map(|&(c, p)| Panel {
                title: format!("{c} pipeline {p}, per second of each run"),
                unit: "req/s".into(),
                series: [Server::Redis, Server::KvServer]
                    .iter()
                    .map(|&s| Series {
                        name: s.name().into(),
                        points: figures
                            .iter()
                            .filter(|f| f.server == s && f.command == c && f.pipeline == p)
                            // A NaN point after each run breaks the line, so
                            // runs are not joined across the other server's.
                            .flat_map(|f| {
                                let end = f.timeline.last().map_or(0.0, |p| p.0);
                                f.timeline.iter().copied().chain([(end, f64::NAN)])
                            })
                            .collect(),
                    })
                    .collect(),
            })
            .collect(),
        markers: Vec::new(),
    };
    let result = ThroughputResult {
        scenario: "throughput",
        requests_per_run: args.requests,
        runs: args.runs,
        clients: common.clients_per_thread(50) * common.bench_threads.max(1),
        bench_threads: common.bench_threads,
        value_size: 64,
        rows,
        figures,
    };
    super::write_results(&out, "throughput", &result, &chart.to_svg())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fig(server: Server, throughput: f64) -> RunFigure {
        RunFigure {
            command: "SET".into(),
            pipeline: 1,
            run: 1,
            server,
            started_at: 0.0,
            requests: 1,
            errors: 0,
            nulls: 0,
            throughput,
            p50_ms: throughput / 1000.0,
            p99_ms: 1.0,
            max_ms: 1.0,
            timeline: vec![],
        }
    }

    #[test]
    fn rows_take_medians_per_server() {
        let figures = [
            fig(Server::Redis, 100.0),
            fig(Server::KvServer, 300.0),
            fig(Server::Redis, 120.0),
            fig(Server::KvServer, 100.0),
            fig(Server::Redis, 110.0),
            fig(Server::KvServer, 200.0),
        ];
        let r = summarize("SET", 1, &figures);
        assert_eq!(r.redis_median, Some(110.0));
        assert_eq!(r.ours_median, Some(200.0));
        let ratio = r.ratio.unwrap();
        assert!((ratio - 200.0 / 110.0).abs() < 1e-12, "{ratio}");
        assert_eq!(r.ours_p50_ms, Some(0.2));
        let other = summarize("GET", 1, &figures);
        assert_eq!((other.redis_median, other.ratio), (None, None));
    }
}
