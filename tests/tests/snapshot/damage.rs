//! Failures: SIGKILL during a snapshot, damaged files, failed snapshots
//! and MISCONF, a full disk.

use super::*;

#[test]
fn sigkill_during_a_snapshot_keeps_the_previous_one() {
    if skip() {
        return;
    }
    let seed = seed("sigkill_during_a_snapshot_keeps_the_previous_one");
    let cycles: usize = std::env::var("SNAPSHOT_CRASH_CYCLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("snapshot-kill");
    let dir = scratch.path();
    let args = ["--save", "", "--threads", "2"];
    let server = start(dir, &args);
    let mut con = server.conn();
    let mut a = State::new();
    // 40 MB of incompressible values: a full snapshot takes a while.
    preload(&mut con, &mut a, "k:", 100_000, 400, &mut rng);
    let t = Instant::now();
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    // The window kills are spread over; shrunk below whenever a snapshot
    // turns out to be over sooner (the first SAVE, cold, is the slowest).
    let mut window_ms = t.elapsed().as_millis().max(5) as i64;
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    println!("a full snapshot takes {window_ms} ms; {cycles} cycles");

    let keys = Keys::new("k:", 120_000, 2);
    let deadline = now_ms() + HOUR_MS;
    let (mut mid, mut loaded_b) = (0, 0);
    for cycle in 0..cycles {
        let context = format!("cycle {cycle} (seed {seed})");
        let server = start(dir, &args);
        let mut con = server.conn();
        // Every snapshot here is the first of its process: full.
        let mut b = a.clone();
        let ops: Vec<Op> = (0..2000)
            .map(|_| random_op(&mut rng, &keys, deadline))
            .collect();
        run_ops(&mut con, &ops, &mut b, &mut 0, &context);
        assert!(a != b, "{context}: the changes changed nothing");
        // The first kill comes right after BGSAVE replies (a sure hit in
        // the middle); later ones anywhere in the snapshot or just after it.
        let delay = match cycle {
            0 => 0,
            _ => rng.range(0, window_ms * 6 / 5),
        };
        assert_eq!(
            show(&raw_cmd(&server, &["BGSAVE"])),
            show(STARTED),
            "{context}"
        );
        thread::sleep(Duration::from_millis(delay as u64));
        let running = Info::read(&mut con).num("rdb_bgsave_in_progress") == 1;
        kill(server);
        if !running {
            window_ms = window_ms.min(delay.max(5));
        }

        let server = start(dir, &args);
        let got = read_state(&server);
        let is_a = diff(&a, &got);
        let is_b = diff(&b, &got);
        match (is_a, is_b) {
            (_, None) => loaded_b += 1,
            (None, Some(_)) if running => {}
            (None, Some(_)) => panic!(
                "{context}: the snapshot was complete before the kill (killed {delay} ms after \
                 BGSAVE, not in progress), but the restart loaded the previous one"
            ),
            (Some(da), Some(db)) => panic!(
                "{context}: killed {delay} ms after BGSAVE (in progress: {running}); the restart \
                 loaded neither the previous snapshot ({da}) nor the new one ({db})"
            ),
        }
        let hit = running || got == a;
        mid += usize::from(hit);
        println!(
            "{context}: killed {delay} ms after BGSAVE, in progress: {running}, loaded the {} snapshot",
            if got == b { "new" } else { "previous" }
        );
        a = got;
        shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    }
    println!(
        "{cycles} kills, {mid} in the middle of a snapshot, {loaded_b} loaded the new one; files \
         left: {:?}",
        snapshot_files(&dir.join("snapshotdir"))
    );
    assert!(
        mid >= 1 || cycles == 0,
        "no kill hit a snapshot in progress (seed {seed})"
    );
    // The next snapshot that succeeds removes what the killed ones left:
    // every file is then one the manifest names (or the manifest).
    let server = start(dir, &args);
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    let snapdir = dir.join("snapshotdir");
    let manifest = fs::read_to_string(snapdir.join("dump.rdb.manifest")).expect("manifest");
    let named: Vec<&str> = manifest
        .lines()
        .filter_map(|l| l.strip_prefix("file "))
        .filter_map(|l| l.split(' ').nth(1))
        .collect();
    for f in snapshot_files(&snapdir) {
        assert!(
            f == "dump.rdb.manifest" || named.contains(&f.as_str()),
            "{f} left behind after a successful snapshot (seed {seed}); manifest:\n{manifest}"
        );
    }
}

/// The newest snapshot is damaged (file `damaged`), an older one is not:
/// the start loads `expected` with a WARNING that names the file.
pub(crate) fn falls_back(
    dir: &Path,
    args: &[&str],
    damaged: &str,
    expected: &State,
    context: &str,
) {
    let server = start(dir, args);
    let log = server.output();
    let warning = log
        .lines()
        .find(|l| l.contains("WARNING"))
        .unwrap_or_else(|| {
            panic!("{context}: no WARNING in the log:\n{log}");
        });
    assert!(
        warning.contains(damaged),
        "{context}: the WARNING does not name {damaged}: {warning}"
    );
    println!("{context}: {warning}");
    assert_state(&server, expected, context);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// No snapshot can be loaded: the server must refuse to start, naming
/// `damaged`.
pub(crate) fn refused(dir: &Path, args: &[&str], damaged: &str, context: &str) {
    let out = start_must_fail(dir, args, context);
    assert!(
        out.contains(damaged),
        "{context}: the error does not name {damaged}:\n{out}"
    );
    let line = out
        .lines()
        .find(|l| l.contains(damaged))
        .unwrap_or_default();
    println!("{context}: refused: {line}");
}

#[test]
fn damaged_snapshot_files_are_detected() {
    if skip() {
        return;
    }
    let seed = seed("damaged_snapshot_files_are_detected");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("snapshot-damage");
    let dir = scratch.path();
    let snapdir = dir.join("snapshotdir");
    let args = ["--save", "", "--threads", "2"];
    let server = start(dir, &args);
    let mut con = server.conn();
    let mut model = State::new();
    preload(&mut con, &mut model, "k:", 30_000, 300, &mut rng);
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    let first = model.clone();
    let keys = Keys::new("k:", 30_000, 2);
    let ops: Vec<Op> = (0..40)
        .map(|_| Op::Set(rng.pick(&keys.all).clone(), random_bytes(&mut rng, 300)))
        .collect();
    run_ops(&mut con, &ops, &mut model, &mut 0, "changes");
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    Info::read(&mut con).expect("second SAVE", &[("rdb_last_snapshot_kind", "delta")]);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    let backup = dir.join("backup");
    copy_dir(&snapdir, &backup);
    let restore = || {
        copy_dir(&backup, &snapdir);
    };
    let full0 = file_ending(&snapdir, ".full.s0.kvs");
    let full1 = file_ending(&snapdir, ".full.s1.kvs");
    let delta0 = file_ending(&snapdir, ".delta.s0.kvs");
    let delta1 = file_ending(&snapdir, ".delta.s1.kvs");
    let name = |p: &Path| {
        p.file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned()
    };

    // Undamaged, the delta loads.
    let server = start(dir, &args);
    assert_state(&server, &model, "undamaged");
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);

    // (a) A flipped byte in a delta: the full snapshot loads, loudly.
    flip_middle_byte(&delta0);
    falls_back(
        dir,
        &args,
        &name(&delta0),
        &first,
        "a byte of the delta flipped",
    );
    // (b) And one in the full snapshot: nothing can be loaded.
    flip_middle_byte(&full1);
    refused(
        dir,
        &args,
        &name(&full1),
        "bytes of the delta and the full one flipped",
    );

    // (c) A delta shortened by a block: the full one loads, loudly.
    restore();
    let len = fs::metadata(&delta1).expect("delta").len();
    truncate(&delta1, len - BLOCK as u64);
    falls_back(dir, &args, &name(&delta1), &first, "the delta truncated");
    // And the full one cut in the middle of a frame: refused.
    let len = fs::metadata(&full0).expect("full").len();
    truncate(&full0, len / 2 + 100);
    refused(
        dir,
        &args,
        &name(&full0),
        "the delta and the full one truncated",
    );

    // (d) A damaged manifest: refused, naming it.
    restore();
    let manifest = snapdir.join("dump.rdb.manifest");
    let mut text = fs::read(&manifest).expect("manifest");
    let at = text.len() / 2;
    text[at] = if text[at] == b'7' { b'8' } else { b'7' };
    fs::write(&manifest, text).expect("write the manifest");
    refused(
        dir,
        &args,
        "dump.rdb.manifest",
        "a byte of the manifest changed",
    );

    // Restored, the newest loads again.
    restore();
    let server = start(dir, &args);
    assert_state(&server, &model, "restored");
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

#[test]
fn failed_snapshot_refuses_writes_until_one_succeeds() {
    if skip() {
        return;
    }
    let scratch = ScratchDir::new("snapshot-misconf");
    let dir = scratch.path();
    let blocker = dir.join("snaps");
    // `save` rules must be set for MISCONF (Redis: `--save "3600 1"`, see
    // `save_rules_in_one_argument_as_in_redis`).
    let args = [
        "--save",
        "3600",
        "1",
        "--snapshotdirname",
        "snaps",
        "--threads",
        "2",
    ];
    let server = start(dir, &args);
    let mut con = server.conn();
    let () = query(&mut con, &["SET", "k", "v"]);
    // A file where the snapshot directory should be: snapshots fail.
    fs::write(&blocker, b"not a directory").expect("create the blocking file");
    let info = bgsave(&server, &mut con);
    info.expect(
        "failed BGSAVE",
        &[
            ("rdb_last_bgsave_status", "err"),
            ("rdb_saves", "0"),
            ("rdb_bgsave_in_progress", "0"),
        ],
    );
    let refused = raw_cmd(&server, &["SET", "k", "w"]);
    assert!(
        refused.starts_with(MISCONF.as_bytes()),
        "SET after a failed snapshot: {}",
        show(&refused)
    );
    let refused = raw_cmd(&server, &["DEL", "k"]);
    assert!(
        refused.starts_with(MISCONF.as_bytes()),
        "DEL: {}",
        show(&refused)
    );
    assert_eq!(
        show(&raw_cmd(&server, &["GET", "k"])),
        show(b"$1\r\nv\r\n"),
        "reads still work"
    );
    let save = raw_cmd(&server, &["SAVE"]);
    assert!(
        save.starts_with(b"-ERR"),
        "SAVE while snapshots fail: {}",
        show(&save)
    );
    // SHUTDOWN must save (rules are set) and cannot: it refuses.
    assert_eq!(
        show(&raw_cmd(&server, &["SHUTDOWN"])),
        show(b"-ERR Errors trying to SHUTDOWN. Check logs.\r\n")
    );
    let mut server = server;
    server.assert_running();

    fs::remove_file(&blocker).expect("remove the blocking file");
    let info = bgsave(&server, &mut con);
    info.expect(
        "BGSAVE after the fix",
        &[("rdb_last_bgsave_status", "ok"), ("rdb_saves", "1")],
    );
    assert_eq!(
        show(&raw_cmd(&server, &["SET", "k", "w"])),
        show(b"+OK\r\n")
    );
    // With save rules set, SHUTDOWN saves first.
    let () = query(&mut con, &["SET", "k2", "saved by SHUTDOWN"]);
    shutdown(server, &["SHUTDOWN"]);
    let server = start(dir, &args);
    let mut con = server.conn();
    let got: Vec<String> = query(&mut con, &["MGET", "k", "k2"]);
    assert_eq!(got, ["w", "saved by SHUTDOWN"]);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);

    // stop-writes-on-bgsave-error no: writes go on after a failure.
    let scratch = ScratchDir::new("snapshot-misconf-no");
    let dir = scratch.path();
    let server = start(
        dir,
        &[
            "--save",
            "3600",
            "1",
            "--snapshotdirname",
            "snaps",
            "--stop-writes-on-bgsave-error",
            "no",
        ],
    );
    let mut con = server.conn();
    fs::write(dir.join("snaps"), b"not a directory").expect("create the blocking file");
    bgsave(&server, &mut con).expect("failed BGSAVE", &[("rdb_last_bgsave_status", "err")]);
    assert_eq!(
        show(&raw_cmd(&server, &["SET", "k", "v"])),
        show(b"+OK\r\n")
    );
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// Sends SET every 50 ms until one is accepted; returns how long that took.
/// Panics after `limit` with the last refusal.
pub(crate) fn wait_writable(server: &ServerProc, limit: Duration) -> Duration {
    let since = Instant::now();
    loop {
        let reply = raw_cmd(server, &["SET", "probe", "1"]);
        if reply == b"+OK\r\n" {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "writes still refused {limit:?} after space was freed: {}\n{}",
            show(&reply),
            server.output_tail(20)
        );
        thread::sleep(Duration::from_millis(50));
    }
}

/// Lines of the server's log output after the first `skip`.
pub(crate) fn log_lines_after(server: &ServerProc, skip: usize) -> Vec<String> {
    server
        .output()
        .lines()
        .filter(|l| !l.starts_with('['))
        .skip(skip)
        .map(str::to_string)
        .collect()
}

/// A full disk under the snapshots: a failed snapshot refuses writes with
/// MISCONF (`stop-writes-on-bgsave-error yes`), and once space is back the
/// failed save is retried by itself (every 5 s, Redis's
/// CONFIG_BGSAVE_RETRY_DELAY) and writes resume with no manual BGSAVE:
/// first after a save rule's snapshot failed, then after a BGSAVE that
/// failed with nothing changed since the last save (no save rule can fire
/// again: the change count stays 0 while writes are refused; kv-server
/// used to stay in MISCONF until someone ran BGSAVE).
#[test]
fn snapshots_on_a_full_disk_resume_writes_by_themselves() {
    if skip() {
        return;
    }
    let scratch = ScratchDir::new("snapshot-fullfs");
    let Some(disk) = Tmpfs::mount(&scratch.path().join("fs"), "4m") else {
        return;
    };
    let data = disk.path().join("data");
    let server = start(&data, &["--save", "1 1", "--threads", "2"]);
    let mut con = server.conn();

    // 1. A save rule's snapshot fails.
    let filler = disk.fill();
    let () = query(&mut con, &["SET", "k", "v"]);
    wait_info(&mut con, "a failed save", |i| {
        i.get("rdb_last_bgsave_status") == "err"
    });
    let failed_at = log_lines_after(&server, 0).len();
    let refused = raw_cmd(&server, &["SET", "k", "w"]);
    assert!(
        refused.starts_with(MISCONF.as_bytes()),
        "SET after the failed save: {}",
        show(&refused)
    );
    fs::remove_file(&filler).expect("free the space");
    let waited = wait_writable(&server, Duration::from_secs(12));
    let info = wait_idle(&mut con);
    info.expect("after the retry", &[("rdb_last_bgsave_status", "ok")]);
    let lines = log_lines_after(&server, failed_at);
    println!(
        "save rule: writes resumed {:.1} s after space was freed; {} log lines meanwhile",
        waited.as_secs_f64(),
        lines.len()
    );

    // 2. A BGSAVE fails with nothing changed since the last save.
    wait_info(&mut con, "every change saved", |i| {
        i.num("rdb_changes_since_last_save") == 0 && i.num("rdb_bgsave_in_progress") == 0
    });
    let filler = disk.fill();
    bgsave(&server, &mut con).expect(
        "BGSAVE on a full disk",
        &[
            ("rdb_last_bgsave_status", "err"),
            ("rdb_changes_since_last_save", "0"),
        ],
    );
    let refused = raw_cmd(&server, &["SET", "k", "x"]);
    assert!(
        refused.starts_with(MISCONF.as_bytes()),
        "SET after the failed BGSAVE: {}",
        show(&refused)
    );
    fs::remove_file(&filler).expect("free the space");
    let waited = wait_writable(&server, Duration::from_secs(12));
    wait_idle(&mut con).expect("after the retry", &[("rdb_last_bgsave_status", "ok")]);
    println!(
        "BGSAVE: writes resumed {:.1} s after space was freed",
        waited.as_secs_f64()
    );
    let got: Vec<String> = query(&mut con, &["MGET", "k", "probe"]);
    assert_eq!(got, ["v", "1"]);
    kill(server);
}

/// A log rewrite (`auto-aof-rewrite-*`) that fails because the snapshot
/// directory is full, while the log itself has room: as in Redis, only
/// `aof_last_bgrewrite_status` says so; writes go on (no MISCONF, although
/// save rules are set) and the RDB status stays ok. The rewrite is retried
/// every 5 s with one log line per failure, and succeeds by itself once
/// space is back.
#[test]
fn failed_log_rewrite_keeps_writes_and_retries_once_space_is_back() {
    if skip() {
        return;
    }
    let scratch = ScratchDir::new("rewrite-fullfs");
    let data = scratch.path().join("data");
    let Some(snaps) = Tmpfs::mount(&data.join("snapshotdir"), "1m") else {
        return;
    };
    let server = ServerProc::start_in(
        &data,
        &[
            "--appendonly",
            "yes",
            "--save",
            "3600 1000000",
            "--auto-aof-rewrite-min-size",
            "64kb",
            "--auto-aof-rewrite-percentage",
            "50",
            "--threads",
            "2",
        ],
    );
    let mut con = server.conn();
    let filler = snaps.fill();
    // 200 KiB that does not compress: the log passes 64 KiB and grows by
    // more than 50%.
    let mut rng = Rng::new(seed("failed_log_rewrite_keeps_writes"));
    for i in 0..100 {
        let value: Vec<u8> = (0..2048).map(|_| rng.next_u64() as u8).collect();
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(value)
            .query(&mut con)
            .unwrap_or_else(|e| panic!("SET k{i}: {e}"));
    }
    wait_info(&mut con, "a failed log rewrite", |i| {
        i.get("aof_last_bgrewrite_status") == "err"
    });
    let failed_at = log_lines_after(&server, 0).len();
    // The disk stays full for 11 s: writes go on meanwhile.
    let full_until = Instant::now() + Duration::from_secs(11);
    let mut writes = 0;
    while Instant::now() < full_until {
        assert_eq!(
            show(&raw_cmd(&server, &["SET", "during", &writes.to_string()])),
            show(b"+OK\r\n"),
            "a write while the log rewrite fails:\n{}",
            server.output_tail(20)
        );
        writes += 1;
        thread::sleep(Duration::from_millis(200));
    }
    let info = Info::read(&mut con);
    info.expect(
        "while rewrites fail",
        &[
            ("aof_last_bgrewrite_status", "err"),
            ("rdb_last_bgsave_status", "ok"),
            ("aof_last_write_status", "ok"),
        ],
    );
    // Retried every 5 s, one line per failure, nothing else.
    let lines = log_lines_after(&server, failed_at);
    assert!(
        (1..=3).contains(&lines.len())
            && lines
                .iter()
                .all(|l| l.contains("# Background AOF rewrite failed: ")),
        "11 s of failed rewrites after the first, logged: {lines:#?}"
    );
    println!(
        "{} retries in 11 s of a full snapshot disk, one log line each: {:?}",
        lines.len(),
        lines.first()
    );
    fs::remove_file(&filler).expect("free the space");
    let freed = Instant::now();
    let info = wait_info(&mut con, "the rewrite to succeed by itself", |i| {
        i.get("aof_last_bgrewrite_status") == "ok" && i.num("aof_rewrites") >= 1
    });
    println!(
        "the rewrite succeeded {:.1} s after space was freed",
        freed.elapsed().as_secs_f64()
    );
    info.expect("after the retry", &[("rdb_last_bgsave_status", "ok")]);
    assert_eq!(
        show(&raw_cmd(&server, &["SET", "after", "1"])),
        show(b"+OK\r\n")
    );
    kill(server);
}
