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
