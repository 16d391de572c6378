//! `bench scenario durability`: the same SET load (50 clients, pipeline 1)
//! under `appendfsync no`, `everysec` and `always`, for redis-server and
//! for kv-server. kv-server has no append-only log before M1.3: when it
//! refuses `appendonly` the scenario says so for our side instead of
//! printing figures.

use clap::Args;
use serde::Serialize;

use super::{
    basic_spec, redis_server_bin, Common, Reply, Result, Scratch, Server, ServerProcess, StartError,
};
use crate::chart::{Chart, Panel, Series};

#[derive(Args, Debug, Clone)]
pub struct DurabilityArgs {
    #[command(flatten)]
    pub common: Common,
    /// SET requests per policy and server (50 connections, pipeline 1,
    /// 64-byte values, keys 0..999999).
    #[arg(long, short = 'n', default_value_t = 200_000)]
    pub requests: u64,
}

const POLICIES: [&str; 3] = ["no", "everysec", "always"];

/// What the scenario learnt about one server under one policy.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "outcome", rename_all = "kebab-case")]
pub enum Outcome {
    Measured {
        throughput: f64,
        p50_ms: f64,
        p99_ms: f64,
        max_ms: f64,
        errors: u64,
        /// (seconds into the run, requests/s, p99 ms), two points (start
        /// and end) per second of the run.
        timeline: Vec<(f64, f64, f64)>,
    },
    NotImplemented {
        reason: String,
    },
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyResult {
    pub appendfsync: &'static str,
    pub redis: Outcome,
    pub kv_server: Outcome,
}

#[derive(Debug, Clone, Serialize)]
pub struct DurabilityResult {
    pub scenario: &'static str,
    pub requests: u64,
    pub policies: Vec<PolicyResult>,
}

const OURS_MISSING: &str = "kv-server: append-only log not implemented yet (M1.3)";

fn measure(common: &Common, server: &ServerProcess, requests: u64) -> Result<Outcome> {
    let spec = basic_spec(common, server.port, "SET", 1, requests);
    let r = crate::run(&spec, |_| {})
        .map_err(|e| format!("SET load on {}: {e}", server.server.name()))?;
    Ok(Outcome::Measured {
        throughput: r.total.throughput,
        p50_ms: r.total.latency_ms.p50,
        p99_ms: r.total.latency_ms.p99,
        max_ms: r.total.latency_ms.max,
        errors: r.total.errors,
        // Each second as a flat step (start and end), so even a one-second
        // run draws a line.
        timeline: r
            .timeline
            .iter()
            .flat_map(|s| {
                let from = s.second as f64;
                [
                    (from, s.throughput, s.p99_ms),
                    (from + s.length, s.throughput, s.p99_ms),
                ]
            })
            .collect(),
    })
}

/// Whether a started server really logs: `CONFIG GET appendonly` says yes.
fn appendonly_on(server: &ServerProcess) -> Result<bool> {
    let mut c = server.client()?;
    Ok(match c.call(&["CONFIG", "GET", "appendonly"])? {
        Reply::Array(items) => items.get(1).and_then(Reply::text).as_deref() == Some("yes"),
        _ => false,
    })
}

fn print(server: Server, policy: &str, o: &Outcome) {
    match o {
        Outcome::Measured {
            throughput,
            p50_ms,
            p99_ms,
            errors,
            ..
        } => println!(
            "appendfsync {policy:<8} {:<9} {throughput:>10.0} req/s  p50 {p50_ms:.3} ms  p99 {p99_ms:.3} ms{}",
            server.name(),
            if *errors > 0 { format!("  {errors} errors") } else { String::new() }
        ),
        Outcome::NotImplemented { reason } => {
            println!("appendfsync {policy:<8} {:<9} {reason}", server.name())
        }
    }
}

pub fn run(args: &DurabilityArgs) -> Result<()> {
    let common = &args.common;
    let redis_bin = redis_server_bin()?;
    let kv_bin = common.kv_server_bin()?;
    let out = common.out_dir();
    let scratch = Scratch::new(&out, "durability")?;
    let threads = common.server_threads.map(|t| t.to_string());
    println!(
        "durability: {} SETs per run, 50 clients, pipeline 1, 64-byte values",
        args.requests
    );
    let mut policies = Vec::new();
    for policy in POLICIES {
        let redis = ServerProcess::start(
            Server::Redis,
            &redis_bin,
            scratch.path(),
            &format!("redis-{policy}"),
            &["--save", "", "--appendonly", "yes", "--appendfsync", policy],
        )
        .map_err(|e| e.to_string())?;
        let redis_outcome = measure(common, &redis, args.requests)?;
        drop(redis);
        print(Server::Redis, policy, &redis_outcome);

        let mut kv_args = vec!["--appendonly", "yes", "--appendfsync", policy];
        if let Some(t) = &threads {
            kv_args.extend(["--threads", t.as_str()]);
        }
        let ours = ServerProcess::start(
            Server::KvServer,
            &kv_bin,
            scratch.path(),
            &format!("kv-{policy}"),
            &kv_args,
        );
        let ours_outcome = match ours {
            Err(StartError::Exited(why)) => {
                // Redis-style config errors: ">>> 'directive'" and the reason.
                let lines: Vec<&str> = why.lines().map(str::trim).collect();
                let directive = lines.iter().find(|l| l.starts_with(">>>"));
                let last = lines.iter().rfind(|l| !l.is_empty());
                let said: Vec<&str> = directive.into_iter().chain(last).copied().collect();
                Outcome::NotImplemented {
                    reason: format!("{OURS_MISSING} (it refuses to start: {})", said.join(" ")),
                }
            }
            Err(e) => return Err(e.to_string()),
            Ok(p) => {
                if appendonly_on(&p)? {
                    measure(common, &p, args.requests)?
                } else {
                    Outcome::NotImplemented {
                        reason: format!("{OURS_MISSING} (CONFIG GET appendonly is not yes)"),
                    }
                }
            }
        };
        print(Server::KvServer, policy, &ours_outcome);
        policies.push(PolicyResult {
            appendfsync: policy,
            redis: redis_outcome,
            kv_server: ours_outcome,
        });
    }
    drop(scratch);

    let series = |pick: fn(&(f64, f64, f64)) -> f64| -> Vec<Series> {
        let mut v = Vec::new();
        for p in &policies {
            for (server, o) in [(Server::Redis, &p.redis), (Server::KvServer, &p.kv_server)] {
                if let Outcome::Measured { timeline, .. } = o {
                    v.push(Series {
                        name: format!("{} {}", server.name(), p.appendfsync),
                        points: timeline.iter().map(|t| (t.0, pick(t))).collect(),
                    });
                }
            }
        }
        v
    };
    let chart = Chart {
        title: format!(
            "durability: {} SETs per appendfsync policy (kv-server: not implemented until M1.3)",
            args.requests
        ),
        panels: vec![
            Panel {
                title: "throughput per second".into(),
                unit: "req/s".into(),
                series: series(|t| t.1),
            },
            Panel {
                title: "p99 latency per second".into(),
                unit: "ms".into(),
                series: series(|t| t.2),
            },
        ],
        markers: Vec::new(),
    };
    let result = DurabilityResult {
        scenario: "durability",
        requests: args.requests,
        policies,
    };
    super::write_results(&out, "durability", &result, &chart.to_svg())
}
