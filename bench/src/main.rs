//! `bench`: a small closed-loop load generator speaking RESP over TCP.
//!
//! Each client is one connection that keeps `--pipeline` requests in
//! flight, mixing SET and GET by `--ratio`, over keys drawn uniformly from
//! `--key-min..=--key-max`. Latency of every request (from the write of its
//! pipeline batch to the read of its reply) goes into an HdrHistogram per
//! command. The side-by-side scenarios against Redis come with M1.2; until
//! then BENCHMARKS.md uses redis-benchmark.

#![deny(unsafe_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;

#[derive(Parser, Debug, Clone)]
#[command(version, about = "RESP load generator (SET/GET mix)")]
struct Opts {
    /// Server host.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// Server port.
    #[arg(long, default_value_t = 6379)]
    port: u16,
    /// Client threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Connections per thread group (every connection runs on its own OS
    /// thread; `--threads` x `--clients` connections in all).
    #[arg(long, default_value_t = 50)]
    clients: usize,
    /// Requests in flight per connection.
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// Total requests (over all connections).
    #[arg(long, default_value_t = 100_000)]
    requests: u64,
    /// SET:GET ratio, e.g. 1:10.
    #[arg(long, default_value = "1:1")]
    ratio: String,
    /// Smallest key number.
    #[arg(long, default_value_t = 0)]
    key_min: u64,
    /// Largest key number.
    #[arg(long, default_value_t = 999_999)]
    key_max: u64,
    /// Key prefix.
    #[arg(long, default_value = "key:")]
    key_prefix: String,
    /// Value size in bytes.
    #[arg(long, default_value_t = 64)]
    data_size: usize,
}

/// Parses "S:G" into (sets, gets).
fn parse_ratio(s: &str) -> Result<(u32, u32), String> {
    let (a, b) = s
        .split_once(':')
        .ok_or("ratio must look like SET:GET, e.g. 1:10")?;
    let a: u32 = a.trim().parse().map_err(|_| format!("bad ratio '{s}'"))?;
    let b: u32 = b.trim().parse().map_err(|_| format!("bad ratio '{s}'"))?;
    if a + b == 0 {
        return Err("ratio must not be 0:0".into());
    }
    Ok((a, b))
}

/// xorshift64*, seeded per connection.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }
}

fn write_bulk(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(format!("${}\r\n", b.len()).as_bytes());
    out.extend_from_slice(b);
    out.extend_from_slice(b"\r\n");
}

/// Reads one RESP reply (any type) and discards it.
fn read_reply(r: &mut BufReader<TcpStream>, line: &mut Vec<u8>) -> std::io::Result<()> {
    line.clear();
    r.read_until(b'\n', line)?;
    if line.is_empty() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "server closed",
        ));
    }
    let n: i64 = std::str::from_utf8(&line[1..line.len().saturating_sub(2)])
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    match line[0] {
        b'$' if n >= 0 => {
            let mut skip = vec![0u8; n as usize + 2];
            r.read_exact(&mut skip)?;
        }
        b'*' if n > 0 => {
            for _ in 0..n {
                read_reply(r, line)?;
            }
        }
        b'-' => {
            return Err(std::io::Error::other(
                String::from_utf8_lossy(line).into_owned(),
            ));
        }
        _ => {}
    }
    Ok(())
}

struct Totals {
    set: Histogram<u64>,
    get: Histogram<u64>,
}

fn new_hist() -> Histogram<u64> {
    // 1 us .. 60 s, 3 significant digits.
    Histogram::new_with_bounds(1, 60_000_000, 3).unwrap_or_else(|_| Histogram::new(3).unwrap())
}

fn client(opts: &Opts, id: u64, budget: &AtomicU64, stop: &AtomicBool) -> std::io::Result<Totals> {
    let (sets, gets) = parse_ratio(&opts.ratio).map_err(std::io::Error::other)?;
    let stream = TcpStream::connect((opts.host.as_str(), opts.port))?;
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::with_capacity(64 * 1024, stream);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (id + 1).wrapping_mul(0xA24B_AED4_963E_E407));
    let value = vec![b'x'; opts.data_size];
    let mut totals = Totals {
        set: new_hist(),
        get: new_hist(),
    };
    let mut out = Vec::new();
    let mut kinds = Vec::with_capacity(opts.pipeline);
    let mut line = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let want = opts.pipeline as u64;
        let got = budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |b| {
                b.checked_sub(want.min(b).max(1))
            })
            .map_or(0, |before| want.min(before));
        if got == 0 {
            break;
        }
        out.clear();
        kinds.clear();
        for _ in 0..got {
            let key = format!(
                "{}{}",
                opts.key_prefix,
                rng.range(opts.key_min, opts.key_max)
            );
            let is_set = rng.next() % u64::from(sets + gets) < u64::from(sets);
            if is_set {
                out.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
                write_bulk(&mut out, key.as_bytes());
                write_bulk(&mut out, &value);
            } else {
                out.extend_from_slice(b"*2\r\n$3\r\nGET\r\n");
                write_bulk(&mut out, key.as_bytes());
            }
            kinds.push(is_set);
        }
        let start = Instant::now();
        writer.write_all(&out)?;
        for &is_set in &kinds {
            read_reply(&mut reader, &mut line)?;
            let us = start.elapsed().as_micros().max(1) as u64;
            let h = if is_set {
                &mut totals.set
            } else {
                &mut totals.get
            };
            let _ = h.record(us.min(60_000_000));
        }
    }
    Ok(totals)
}

fn report(name: &str, h: &Histogram<u64>, secs: f64) {
    if h.is_empty() {
        return;
    }
    let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
    println!(
        "{name:4} {:>10.0} req/s  p50 {:.3} ms  p90 {:.3} ms  p99 {:.3} ms  p99.9 {:.3} ms  max {:.3} ms",
        h.len() as f64 / secs,
        ms(0.5),
        ms(0.9),
        ms(0.99),
        ms(0.999),
        h.max() as f64 / 1000.0
    );
}

fn main() {
    let opts = Opts::parse();
    if let Err(e) = parse_ratio(&opts.ratio) {
        eprintln!("bench: {e}");
        std::process::exit(2);
    }
    if opts.key_min > opts.key_max || opts.pipeline == 0 || opts.clients == 0 || opts.threads == 0 {
        eprintln!("bench: need key-min <= key-max and pipeline, clients, threads >= 1");
        std::process::exit(2);
    }
    let budget = Arc::new(AtomicU64::new(opts.requests));
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut handles = Vec::new();
    for t in 0..opts.threads {
        for c in 0..opts.clients {
            let opts = opts.clone();
            let budget = budget.clone();
            let stop = stop.clone();
            let id = (t * opts.clients + c) as u64;
            handles.push(std::thread::spawn(move || {
                client(&opts, id, &budget, &stop)
            }));
        }
    }
    let mut set = new_hist();
    let mut get = new_hist();
    let mut failed = false;
    for h in handles {
        match h.join() {
            Ok(Ok(t)) => {
                let _ = set.add(&t.set);
                let _ = get.add(&t.get);
            }
            Ok(Err(e)) => {
                eprintln!("bench: client failed: {e}");
                stop.store(true, Ordering::Relaxed);
                failed = true;
            }
            Err(_) => failed = true,
        }
    }
    let secs = start
        .elapsed()
        .as_secs_f64()
        .max(Duration::from_micros(1).as_secs_f64());
    report("SET", &set, secs);
    report("GET", &get, secs);
    println!(
        "total {:.0} req/s over {:.2} s",
        (set.len() + get.len()) as f64 / secs,
        secs
    );
    if failed {
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_parsing() {
        assert_eq!(parse_ratio("1:10"), Ok((1, 10)));
        assert!(parse_ratio("0:0").is_err());
        assert!(parse_ratio("x").is_err());
    }

    #[test]
    fn rng_stays_in_range() {
        let mut r = Rng(42);
        for _ in 0..10_000 {
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
        }
    }
}
