//! Part 4: the page cache while ~2 GiB of log is written.

use super::*;

/// `sync; echo 1 > /proc/sys/vm/drop_caches`.
pub(super) fn drop_caches() -> std::result::Result<(), String> {
    let _ = Command::new("sync")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    fs::write("/proc/sys/vm/drop_caches", "1\n").map_err(|e| e.to_string())
}

/// Every regular file under `dir`.
pub(super) fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
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
pub(super) fn resident(files: &[std::path::PathBuf]) -> Option<u64> {
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

pub(super) fn part4(
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
pub(super) fn page_cache_run(
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
