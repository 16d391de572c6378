//! `bench`: command line over the load generator in the `bench` library.
//!
//! `bench load [flags]` (or just `bench [flags]`) runs one load and prints
//! per-command throughput and latency percentiles and a per-second
//! timeline; `--json FILE` writes all of it. See `bench load --help`.
//!
//! `bench scenario NAME [flags]` starts kv-server and redis-server and
//! compares them (throughput, durability, snapshot-under-load); see
//! `bench scenario --help` and the `bench::scenario` module.

#![deny(unsafe_code)]

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use bench::scenario;
use bench::spec::{name_commands, parse_weights};
use bench::{CommandTemplate, KeyPattern, LoadReport, LoadSpec, Progress, Range, StopAfter};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "RESP load generator (in the spirit of memtier_benchmark and redis-benchmark)",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    /// Without a subcommand, the flags of `bench load`.
    #[command(flatten)]
    load: LoadArgs,
}

// Parsed once per process: the size difference of the variants is harmless.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
enum Command {
    /// Run one load against a server and report throughput and latency.
    Load(LoadArgs),
    /// Start kv-server and redis-server and compare them side by side;
    /// writes <out>/<scenario>.json and .svg.
    Scenario {
        #[command(subcommand)]
        name: ScenarioName,
    },
}

#[derive(Subcommand, Debug)]
enum ScenarioName {
    /// SET and GET at pipeline 1 and 16, alternating runs (redis, ours, ...);
    /// medians and the ratio ours/redis per row.
    Throughput(scenario::throughput::ThroughputArgs),
    /// The append-only log: SET throughput by appendfsync policy, GET p99
    /// under always, group commit by client count, page cache growth, a log
    /// rewrite (BGREWRITEAOF) under load.
    Durability(Box<scenario::durability::DurabilityArgs>),
    /// Memory, page cache, throughput and probe latency while a BGSAVE runs
    /// under an overwrite load.
    SnapshotUnderLoad(scenario::snapshot::SnapshotArgs),
}

fn run_scenario(name: &ScenarioName) -> ! {
    let result = match name {
        ScenarioName::Throughput(a) => scenario::throughput::run(a),
        ScenarioName::Durability(a) => scenario::durability::run(a),
        ScenarioName::SnapshotUnderLoad(a) => scenario::snapshot::run(a),
    };
    match result {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("bench scenario: {e}");
            std::process::exit(1);
        }
    }
}

#[derive(ValueEnum, Debug, Clone, Copy)]
enum PatternArg {
    Uniform,
    Sequential,
    Gaussian,
    Zipf,
}

#[derive(Args, Debug, Clone)]
struct LoadArgs {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, short = 'p', default_value_t = 6379)]
    port: u16,
    /// OS threads; each runs an event loop over its `--clients` connections.
    #[arg(long, short = 't', default_value_t = 1)]
    threads: usize,
    /// Connections per thread (`--threads` x `--clients` in all).
    #[arg(long, short = 'c', default_value_t = 50)]
    clients: usize,
    /// Requests written together per batch on each connection; the next
    /// batch goes out when every reply of this one is in.
    #[arg(long, short = 'P', default_value_t = 1)]
    pipeline: usize,
    /// Total requests/s over all connections, paced per connection. Latency
    /// then counts from each batch's scheduled time, including any wait
    /// behind earlier slow replies (no coordinated omission) but not the
    /// generator's own timer lag, shown apart as "send lag". Without it:
    /// as fast as the server answers.
    #[arg(long)]
    rate: Option<f64>,
    /// Total requests over all connections [default: 100000 unless
    /// --duration is given].
    #[arg(long, short = 'n')]
    requests: Option<u64>,
    /// Run for this many seconds (after all connections are up). With
    /// --requests too, whichever ends first.
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// SET:GET weights of the built-in mix, e.g. 1:10 [default: 1:1].
    /// Not allowed with --command.
    #[arg(long)]
    ratio: Option<String>,
    /// Arbitrary command, repeatable, e.g. "HSET h:__key__ f __data__";
    /// `__key__` becomes the key, `__data__` a value of --data-size bytes.
    /// Arguments are split on whitespace. Replaces the SET/GET mix.
    #[arg(long = "command", value_name = "TEMPLATE")]
    commands: Vec<String>,
    /// Weights of the --command templates in order, e.g. 1:3 [default: all
    /// equal].
    #[arg(long, value_name = "A:B:...")]
    command_ratio: Option<String>,
    /// Smallest key number.
    #[arg(long, default_value_t = 0)]
    key_min: u64,
    /// Largest key number.
    #[arg(long, default_value_t = 999_999)]
    key_max: u64,
    /// Prefix before the key number.
    #[arg(long, default_value = "key:")]
    key_prefix: String,
    /// How keys are drawn: uniform; sequential (one counter for all
    /// connections, wrapping at --key-max: N requests over N keys touch
    /// each once); gaussian (mean at the middle, see --key-stddev); zipf
    /// (--key-min hottest, see --zipf-exponent).
    #[arg(long, value_enum, default_value = "uniform")]
    key_pattern: PatternArg,
    /// Gaussian standard deviation as a fraction of the key range's width.
    #[arg(long, default_value_t = 0.1667)]
    key_stddev: f64,
    /// Zipf exponent (probability of rank k proportional to k^-s).
    #[arg(long, default_value_t = 0.99)]
    zipf_exponent: f64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 64, conflicts_with = "data_size_range")]
    data_size: u64,
    /// Value size drawn uniformly per request from MIN-MAX bytes.
    #[arg(long, value_name = "MIN-MAX")]
    data_size_range: Option<String>,
    /// Built-in SETs get `EX` with seconds drawn uniformly from MIN-MAX.
    #[arg(long, value_name = "MIN-MAX")]
    expiry_range: Option<String>,
    /// Give up when a reply takes longer than this many seconds.
    #[arg(long, default_value_t = 60.0)]
    timeout: f64,
    /// Seed of the random streams (with the same seed, each connection draws
    /// the same sequence of commands, keys and sizes).
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Write the full report (spec, per-command results, timeline) here.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// No per-second timeline on stdout (it is still in --json).
    #[arg(long)]
    no_timeline: bool,
    /// No progress line on stderr.
    #[arg(long, short = 'q')]
    quiet: bool,
}

fn seconds(flag: &str, s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|_| format!("{flag} {s} is not a number of seconds"))
}

impl LoadArgs {
    fn to_spec(&self) -> Result<LoadSpec, String> {
        let commands = if self.commands.is_empty() {
            let w = parse_weights(self.ratio.as_deref().unwrap_or("1:1"))?;
            let [sets, gets] = w[..] else {
                return Err(format!("--ratio wants SET:GET, got {} weights", w.len()));
            };
            LoadSpec::set_get(sets, gets).commands
        } else {
            if self.ratio.is_some() {
                return Err("--ratio is for the SET/GET mix; use --command-ratio".into());
            }
            let weights = match &self.command_ratio {
                Some(r) => parse_weights(r)?,
                None => vec![1; self.commands.len()],
            };
            if weights.len() != self.commands.len() {
                return Err(format!(
                    "--command-ratio has {} weights for {} --command",
                    weights.len(),
                    self.commands.len()
                ));
            }
            let mut cmds = self
                .commands
                .iter()
                .zip(weights)
                .map(|(t, w)| CommandTemplate::parse(t, w))
                .collect::<Result<Vec<_>, _>>()?;
            name_commands(&mut cmds);
            cmds
        };
        let key_pattern = match self.key_pattern {
            PatternArg::Uniform => KeyPattern::Uniform,
            PatternArg::Sequential => KeyPattern::Sequential,
            PatternArg::Gaussian => KeyPattern::Gaussian {
                stddev: self.key_stddev,
            },
            PatternArg::Zipf => KeyPattern::Zipf {
                exponent: self.zipf_exponent,
            },
        };
        let requests = match (self.requests, self.duration) {
            (None, None) => Some(100_000),
            (r, _) => r,
        };
        let spec = LoadSpec {
            host: self.host.clone(),
            port: self.port,
            threads: self.threads,
            clients: self.clients,
            pipeline: self.pipeline,
            rate: self.rate,
            stop: StopAfter {
                requests,
                duration: self
                    .duration
                    .map(|d| seconds("--duration", d))
                    .transpose()?,
            },
            commands,
            key_min: self.key_min,
            key_max: self.key_max,
            key_prefix: self.key_prefix.clone(),
            key_pattern,
            data_size: match &self.data_size_range {
                Some(r) => Range::parse(r).map_err(|e| format!("--data-size-range {e}"))?,
                None => Range::fixed(self.data_size),
            },
            expiry: self
                .expiry_range
                .as_deref()
                .map(|r| Range::parse(r).map_err(|e| format!("--expiry-range {e}")))
                .transpose()?,
            reply_timeout: seconds("--timeout", self.timeout)?,
            seed: self.seed,
        };
        spec.validate()?;
        Ok(spec)
    }
}

fn show_progress(p: &Progress) {
    let mut line = format!(
        "[{:>5.0}s] {:>11} requests  {:>10.0} req/s  {} errors",
        p.elapsed.as_secs_f64(),
        p.requests,
        p.recent_rate,
        p.errors
    );
    let mut done = 0.0f64;
    if let Some(n) = p.target_requests {
        done = done.max(p.requests as f64 / n as f64);
    }
    if let Some(d) = p.target_duration {
        done = done.max(p.elapsed.as_secs_f64() / d.as_secs_f64().max(1e-9));
    }
    line.push_str(&format!("  {:>3.0}%", (done * 100.0).min(100.0)));
    let mut err = std::io::stderr().lock();
    let _ = write!(err, "\r{line}");
    let _ = err.flush();
}

fn print_report(r: &LoadReport, timeline: bool) {
    if timeline && !r.timeline.is_empty() {
        println!(
            "{:>6} {:>8} {:>12} {:>10} {:>10} {:>8}",
            "second", "length", "req/s", "p50 ms", "p99 ms", "errors"
        );
        for s in &r.timeline {
            println!(
                "{:>6} {:>8.3} {:>12.0} {:>10.3} {:>10.3} {:>8}",
                s.second, s.length, s.throughput, s.p50_ms, s.p99_ms, s.errors
            );
        }
        println!();
    }
    println!(
        "{:<8} {:>11} {:>8} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "command",
        "requests",
        "errors",
        "req/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms"
    );
    let rows = r.commands.iter().filter(|c| c.requests > 0);
    for c in rows.chain(std::iter::once(&r.total)) {
        let l = &c.latency_ms;
        println!(
            "{:<8} {:>11} {:>8} {:>12.0} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
            c.name, c.requests, c.errors, c.throughput, l.p50, l.p90, l.p99, l.p99_9, l.max
        );
    }
    for c in &r.commands {
        if let Some(e) = &c.first_error {
            println!("{}: {} error replies, first: {e}", c.name, c.errors);
        }
    }
    if let Some(lag) = &r.send_lag_ms {
        println!(
            "send lag behind schedule: p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms",
            lag.p50, lag.p99, lag.max
        );
    }
    println!(
        "{} requests in {:.2} s over {} connections ({} threads x {}), pipeline {}",
        r.total.requests,
        r.duration_secs,
        r.spec.connections(),
        r.spec.threads,
        r.spec.clients,
        r.spec.pipeline
    );
}

fn main() {
    let cli = Cli::parse();
    let args = match cli.command {
        Some(Command::Load(a)) => a,
        Some(Command::Scenario { name }) => run_scenario(&name),
        None => cli.load,
    };
    let spec = match args.to_spec() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    let quiet = args.quiet;
    let result = bench::run(&spec, |p| {
        if !quiet {
            show_progress(p);
        }
    });
    if !quiet {
        eprintln!();
    }
    let report = match result {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    };
    print_report(&report, !args.no_timeline);
    if let Some(path) = &args.json {
        let written = serde_json::to_vec_pretty(&report)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j).map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("bench: writing {}: {e}", path.display());
            std::process::exit(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(args: &[&str]) -> Result<LoadSpec, String> {
        let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
        match cli.command {
            Some(Command::Load(a)) => a.to_spec(),
            Some(Command::Scenario { .. }) => Err("a scenario".into()),
            None => cli.load.to_spec(),
        }
    }

    #[test]
    fn flags_work_with_and_without_the_subcommand() {
        for args in [
            &["bench", "load", "-p", "7000", "--ratio", "1:10", "-P", "16"][..],
            &["bench", "-p", "7000", "--ratio", "1:10", "-P", "16"],
        ] {
            let s = spec(args).expect("valid flags");
            assert_eq!((s.port, s.pipeline), (7000, 16));
            let w: Vec<u32> = s.commands.iter().map(|c| c.weight).collect();
            assert_eq!(w, [1, 10]);
            assert_eq!(s.stop.requests, Some(100_000), "default request count");
        }
    }

    #[test]
    fn workload_flags_become_the_spec() {
        let s = spec(&[
            "bench",
            "load",
            "--command",
            "HSET h:__key__ f __data__",
            "--command",
            "hget h:__key__ f",
            "--command-ratio",
            "1:3",
            "--key-pattern",
            "zipf",
            "--zipf-exponent",
            "1.2",
            "--data-size-range",
            "10-20",
            "--duration",
            "2.5",
        ])
        .expect("valid flags");
        let names: Vec<&str> = s.commands.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["HSET", "HGET"]);
        assert_eq!(s.commands[1].weight, 3);
        assert_eq!(s.key_pattern, KeyPattern::Zipf { exponent: 1.2 });
        assert_eq!(s.data_size, Range { min: 10, max: 20 });
        assert_eq!(s.stop.requests, None, "duration alone bounds the run");
        assert_eq!(s.stop.duration, Some(Duration::from_millis(2_500)));
    }

    #[test]
    fn inconsistent_flags_are_refused() {
        for args in [
            &["bench", "--ratio", "1:2:3"][..],
            &["bench", "--command", "GET __key__", "--ratio", "1:1"],
            &[
                "bench",
                "--command",
                "GET __key__",
                "--command-ratio",
                "1:1",
            ],
            &["bench", "--data-size", "5", "--data-size-range", "1-9"],
            &["bench", "--expiry-range", "9-1"],
            &["bench", "--key-min", "10", "--key-max", "1"],
            &["bench", "--duration", "-1"],
        ] {
            assert!(spec(args).is_err(), "{args:?} accepted");
        }
    }
}
