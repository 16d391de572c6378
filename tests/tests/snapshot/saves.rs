//! SAVE, BGSAVE and their INFO fields, the state at the barrier under
//! writes, the walker's rests, delta chains, the save rules and the final
//! snapshot at SIGTERM.

use super::*;

#[test]
fn save_bgsave_lastsave_info_and_restart() {
    if skip() {
        return;
    }
    let mut rng = Rng::new(seed("save_bgsave_lastsave_info_and_restart"));
    let scratch = ScratchDir::new("snapshot-save");
    let dir = scratch.path();
    let snapdir = dir.join("snapshotdir");
    let server = start(dir, &["--save", "", "--threads", "1"]);
    let mut con = server.conn();

    Info::read(&mut con).expect(
        "fresh server",
        &[
            ("rdb_saves", "0"),
            ("rdb_bgsave_in_progress", "0"),
            ("rdb_last_bgsave_status", "ok"),
            ("rdb_last_bgsave_time_sec", "-1"),
            ("rdb_last_snapshot_kind", "none"),
            ("rdb_snapshots_kept", "0"),
        ],
    );
    let started: i64 = query(&mut con, &["LASTSAVE"]);
    assert!(
        (now_ms() / 1000 - started).abs() <= 60,
        "LASTSAVE {started} of a new server"
    );

    // Keys in four databases; some expire, some are 100 KB, odd names.
    let deadline = now_ms() + HOUR_MS;
    let mut ops = Vec::new();
    for db in [0u16, 1, 5, 15] {
        ops.push(Op::Select(db));
        for i in 0..200 {
            let key = format!("db{db}:key{i}").into_bytes();
            ops.push(Op::Set(key.clone(), value(&mut rng)));
            if i % 5 == 0 {
                ops.push(Op::PexpireAt(key, deadline + i));
            }
        }
        for j in 0..2 {
            let big = random_bytes(&mut rng, 100 * 1024);
            ops.push(Op::Set(format!("db{db}:big{j}").into_bytes(), big));
        }
        ops.push(Op::PexpireAt(
            format!("db{db}:big0").into_bytes(),
            deadline + 7,
        ));
    }
    ops.push(Op::Select(0));
    ops.push(Op::Set(Vec::new(), b"the empty key".to_vec()));
    ops.push(Op::Set(
        b"bin\0\r\nkey\xff".to_vec(),
        b"\0\r\n\xff".to_vec(),
    ));
    ops.push(Op::MSet(vec![
        (b"empty value".to_vec(), Vec::new()),
        (b"number".to_vec(), b"-12345".to_vec()),
    ]));
    let (mut model, mut db) = (State::new(), 0u16);
    run_ops(&mut con, &ops, &mut model, &mut db, "writes");
    let info = Info::read(&mut con);
    assert!(
        info.num("rdb_changes_since_last_save") >= model.len() as i64,
        "rdb_changes_since_last_save {} after writing {} keys",
        info.num("rdb_changes_since_last_save"),
        model.len()
    );

    // SAVE: a full snapshot, durable when +OK arrives.
    let t0 = now_ms() / 1000;
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    let t1 = now_ms() / 1000;
    let lastsave: i64 = query(&mut con, &["LASTSAVE"]);
    assert!(
        t0 <= lastsave && lastsave <= t1,
        "LASTSAVE {lastsave} after a SAVE in [{t0}, {t1}]"
    );
    let info = Info::read(&mut con);
    info.expect(
        "after SAVE",
        &[
            ("rdb_saves", "1"),
            ("rdb_bgsave_in_progress", "0"),
            ("rdb_last_bgsave_status", "ok"),
            ("rdb_last_snapshot_kind", "full"),
            ("rdb_changes_since_last_save", "0"),
            ("rdb_snapshots_kept", "1"),
            ("rdb_last_save_time", &lastsave.to_string()),
            ("rdb_last_snapshot_keys", &model.len().to_string()),
        ],
    );
    assert!(info.num("rdb_last_bgsave_time_sec") >= 0);
    assert!(
        info.num("rdb_last_snapshot_bytes") > 8 * 100 * 1024,
        "{:?}",
        info.0
    );
    assert!(info.num("rdb_last_snapshot_pages") > 0, "{:?}", info.0);
    let files = snapshot_files(&snapdir);
    assert!(
        files.contains(&"dump.rdb.manifest".to_string()),
        "{files:?}"
    );
    assert!(
        files.iter().any(|f| f.ends_with(".full.s0.kvs")),
        "{files:?}"
    );

    // Three writes are three changes.
    let ops = [
        Op::Set(b"after first save".to_vec(), b"1".to_vec()),
        Op::Set(b"db0:key1".to_vec(), b"overwritten".to_vec()),
        Op::Del(b"db0:key2".to_vec()),
    ];
    run_ops(&mut con, &ops, &mut model, &mut db, "writes after SAVE");
    Info::read(&mut con).expect("three writes", &[("rdb_changes_since_last_save", "3")]);

    // BGSAVE: a delta.
    let info = bgsave(&server, &mut con);
    info.expect(
        "after BGSAVE",
        &[
            ("rdb_saves", "2"),
            ("rdb_last_bgsave_status", "ok"),
            ("rdb_last_snapshot_kind", "delta"),
            ("rdb_changes_since_last_save", "0"),
            ("rdb_snapshots_kept", "2"),
        ],
    );
    let lastsave2: i64 = query(&mut con, &["LASTSAVE"]);
    assert!(
        lastsave2 >= lastsave,
        "LASTSAVE went back: {lastsave} then {lastsave2}"
    );

    // BGSAVEs in a row may find one running: only Redis's replies.
    let mut raw = server.raw();
    let mut pipeline = resp::encode(&["BGSAVE"]);
    pipeline.extend(resp::encode(&["BGSAVE"]));
    pipeline.extend(resp::encode(&["BGSAVE", "SCHEDULE"]));
    raw.send(&pipeline).expect("send");
    let replies: Vec<Vec<u8>> = (0..3).map(|_| raw.read_reply()).collect();
    assert_eq!(show(&replies[0]), show(STARTED));
    assert!(
        [STARTED, BUSY].contains(&&replies[1][..]),
        "{}",
        show(&replies[1])
    );
    assert!(
        [STARTED, SCHEDULED].contains(&&replies[2][..]),
        "{}",
        show(&replies[2])
    );
    let saves = 2 + replies
        .iter()
        .filter(|r| [STARTED, SCHEDULED].contains(&&r[..]))
        .count();
    println!(
        "BGSAVE x3: {:?}",
        replies.iter().map(|r| show(r)).collect::<Vec<_>>()
    );
    let info = wait_info(&mut con, "the BGSAVEs (and the scheduled one)", |i| {
        i.num("rdb_bgsave_in_progress") == 0 && i.num("rdb_saves") >= saves as i64
    });
    info.expect(
        "after the BGSAVEs",
        &[
            ("rdb_saves", &saves.to_string()),
            ("rdb_last_bgsave_status", "ok"),
        ],
    );

    // A write after the last snapshot is lost by SHUTDOWN NOSAVE.
    let () = query(&mut con, &["SET", "after the last save", "x"]);
    let lastsave: i64 = query(&mut con, &["LASTSAVE"]);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);

    // Two shards load the one-shard snapshot.
    let server = start(dir, &["--save", "", "--threads", "2"]);
    assert_state(&server, &model, "restart with --threads 2");
    assert_pttls(&server, &model, "restart with --threads 2");
    let mut con = server.conn();
    let reloaded: i64 = query(&mut con, &["LASTSAVE"]);
    assert_eq!(
        reloaded, lastsave,
        "LASTSAVE after a restart is the snapshot's time"
    );
    Info::read(&mut con).expect(
        "restarted",
        &[("rdb_saves", "0"), ("rdb_last_snapshot_kind", "none")],
    );
    // The first snapshot of a process is full; now with two shards.
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    Info::read(&mut con).expect(
        "SAVE after the restart",
        &[
            ("rdb_last_snapshot_kind", "full"),
            ("rdb_last_snapshot_keys", &model.len().to_string()),
        ],
    );
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);

    // Three shards load the two-shard snapshot; SHUTDOWN SAVE saves first
    // although no save rules are set.
    let server = start(dir, &["--save", "", "--threads", "3"]);
    assert_state(&server, &model, "restart with --threads 3");
    let mut con = server.conn();
    let ops = [Op::Set(b"before SHUTDOWN SAVE".to_vec(), b"kept".to_vec())];
    run_ops(
        &mut con,
        &ops,
        &mut model,
        &mut 0,
        "write before SHUTDOWN SAVE",
    );
    shutdown(server, &["SHUTDOWN", "SAVE"]);
    let server = start(dir, &["--save", "", "--threads", "1"]);
    assert_state(&server, &model, "restart after SHUTDOWN SAVE");
    assert_pttls(&server, &model, "restart after SHUTDOWN SAVE");
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// The writer of `snapshot_is_the_state_at_the_barrier_under_writes`: op,
/// then `SET <seq_key> <i>`, one command at a time, until `stop`. Returns
/// every op it ran (each acknowledged, and its `SET` too).
pub(crate) fn barrier_writer(
    mut con: Connection,
    seed: u64,
    mut model: State,
    seq_key: String,
    progress: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> Result<Vec<Op>, String> {
    let mut rng = Rng::new(seed);
    let keys = Keys::new("w:", 2000, 2);
    let deadline = now_ms() + 2 * HOUR_MS;
    let mut ops = Vec::new();
    let give_up = Instant::now() + Duration::from_secs(60);
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() > give_up {
            return Err("the writer was not stopped within 60 s".into());
        }
        let op = random_op(&mut rng, &keys, deadline);
        let reply: Value = op
            .command()
            .query(&mut con)
            .map_err(|e| format!("op {}: {}: {e}", ops.len(), op.describe()))?;
        let expected = op.apply(&mut model, &mut 0);
        if reply != expected {
            return Err(format!(
                "op {}: {} replied {reply:?}, expected {expected:?}",
                ops.len(),
                op.describe()
            ));
        }
        let i = ops.len();
        ops.push(op);
        let () = redis::cmd("SET")
            .arg(&seq_key)
            .arg(i)
            .query(&mut con)
            .map_err(|e| format!("SET {seq_key} {i}: {e}"))?;
        progress.store(i as u64 + 1, Ordering::SeqCst);
    }
    Ok(ops)
}

/// Rounds of `snapshot_is_the_state_at_the_barrier_under_writes`.
pub(crate) const BARRIER_ROUNDS: usize = 3;
/// BGSAVEs per round (the last is checked).
pub(crate) const BARRIER_BGSAVES: i64 = 5;

#[test]
fn snapshot_is_the_state_at_the_barrier_under_writes() {
    if skip() {
        return;
    }
    let seed = seed("snapshot_is_the_state_at_the_barrier_under_writes");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("snapshot-barrier");
    let dir = scratch.path();
    let args = ["--save", "", "--threads", "2"];
    let mut server = start(dir, &args);
    let mut state = State::new();
    preload(
        &mut server.conn(),
        &mut state,
        "bulk:",
        50_000,
        200,
        &mut rng,
    );

    for round in 0..BARRIER_ROUNDS {
        let context = format!("round {round} (seed {seed})");
        let seq_key = format!("seq:{round}");
        let mut con = server.conn();
        let progress = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let writer = {
            let (con, wseed, model) = (server.conn(), rng.next_u64(), state.clone());
            let (seq_key, progress, stop) = (seq_key.clone(), progress.clone(), stop.clone());
            thread::spawn(move || barrier_writer(con, wseed, model, seq_key, progress, stop))
        };
        let wait_progress = |n: u64| {
            let deadline = Instant::now() + TIMEOUT;
            while progress.load(Ordering::SeqCst) < n {
                assert!(!writer.is_finished(), "{context}: the writer stopped early");
                assert!(
                    Instant::now() < deadline,
                    "{context}: the writer makes no progress"
                );
                thread::sleep(Duration::from_millis(2));
            }
        };
        wait_progress(50);
        let mut kinds = Vec::new();
        let saves = Info::read(&mut con).num("rdb_saves");
        let (mut before_last, mut after_last) = (0, 0);
        for n in 1..=BARRIER_BGSAVES {
            thread::sleep(Duration::from_millis(rng.range(5, 60) as u64));
            before_last = progress.load(Ordering::SeqCst);
            let info = bgsave(&server, &mut con);
            after_last = progress.load(Ordering::SeqCst);
            info.expect(&context, &[("rdb_last_bgsave_status", "ok")]);
            assert_eq!(info.num("rdb_saves"), saves + n, "{context}");
            kinds.push(info.get("rdb_last_snapshot_kind").to_string());
        }
        // Writes after the last snapshot, which must not be in it.
        wait_progress(after_last + 20);
        stop.store(true, Ordering::SeqCst);
        let ops = writer
            .join()
            .expect("writer thread panicked")
            .unwrap_or_else(|e| panic!("{context}: writer: {e}"));
        println!(
            "{context}: {} ops; snapshots {kinds:?}; the last one's barrier between {seq_key} {} \
             and {after_last}",
            ops.len(),
            before_last as i64 - 1,
        );
        shutdown(server, &["SHUTDOWN", "NOSAVE"]);

        server = start(dir, &args);
        let loaded = read_state(&server);
        let mut got = loaded.clone();
        let seq: i64 = match got.remove(&(0, seq_key.clone().into_bytes())) {
            Some(e) => String::from_utf8_lossy(&e.value)
                .parse()
                .expect("seq is a number"),
            None => -1,
        };
        // The barrier came after BGSAVE was sent and before it was seen done.
        assert!(
            seq >= before_last as i64 - 1 && seq <= after_last as i64,
            "{context}: the loaded snapshot has {seq_key} {seq}, but the last BGSAVE's barrier \
             was between {} and {after_last}: not the last snapshot?",
            before_last as i64 - 1
        );
        // Candidates: right after `SET seq <seq>` (ops 0..=seq applied), or
        // with the next op applied too (its `SET seq` not yet).
        let mut model = state;
        for op in &ops[..(seq + 1) as usize] {
            op.apply(&mut model, &mut 0);
        }
        if let Some(at_seq) = diff(&model, &got) {
            let next = &ops[(seq + 1) as usize];
            next.apply(&mut model, &mut 0);
            if let Some(at_next) = diff(&model, &got) {
                panic!(
                    "{context}: the loaded snapshot ({seq_key} {seq}) is no state of the op \
                     sequence.\nRight after SET {seq_key} {seq}: {at_seq}\n\
                     With the next op ({}) applied: {at_next}",
                    next.describe()
                );
            }
            println!(
                "{context}: loaded the state after op {} ({})",
                seq + 1,
                next.describe()
            );
        } else {
            println!("{context}: loaded the state right after SET {seq_key} {seq}");
        }
        state = loaded;
    }
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// Runs `f` while another connection keeps sending SETs; returns what
/// `f` returned and how many SETs went out.
pub(crate) fn with_busy_client<T>(server: &ServerProc, f: impl FnOnce() -> T) -> (T, u64) {
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (mut con, stop) = (server.conn(), stop.clone());
        thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let () = redis::cmd("SET")
                    .arg(format!("busy:{}", n % 100))
                    .arg(n)
                    .query(&mut con)
                    .expect("the busy client's SET");
                n += 1;
            }
            n
        })
    };
    // It is sending before `f` starts.
    thread::sleep(Duration::from_millis(50));
    let out = f();
    stop.store(true, Ordering::SeqCst);
    let sets = writer.join().expect("busy client panicked");
    (out, sets)
}

/// `snapshot-pace`: while clients send commands, a background snapshot's
/// walker rests between its slices (INFO `rdb_last_snapshot_rest_usec`);
/// SAVE (its caller waits) and `snapshot-pace 0` never rest.
#[test]
fn snapshot_rests_between_slices_while_clients_are_busy() {
    if skip() {
        return;
    }
    let mut rng = Rng::new(seed("snapshot_rests_between_slices_while_clients_are_busy"));
    let scratch = ScratchDir::new("snapshot-pace");
    let dir = scratch.path();
    let mut state = State::new();
    for (pace, command, rests) in [
        ("20", "BGSAVE", true),
        ("20", "SAVE", false),
        ("0", "BGSAVE", false),
    ] {
        let round = format!("snapshot-pace {pace}, {command}");
        // A snapshot of 8 MB lasts a few tens of milliseconds; on a loaded
        // machine (CI runs this file's tests side by side on 2 cores) the
        // busy client can be off its core for all of it, and then there
        // is nothing to rest for. So the round that must rest gets a few
        // tries; the ones that must not rest get one, which is the strict
        // side for them.
        let tries = if rests { 4 } else { 1 };
        let mut rested = 0;
        for attempt in 1..=tries {
            // A fresh process each time, so that each snapshot is a full one.
            let server = start(
                dir,
                &["--save", "", "--threads", "2", "--snapshot-pace", pace],
            );
            let mut con = server.conn();
            if state.is_empty() {
                // ~8 MB over two shards: a dozen or more 256 KiB slices each.
                preload(&mut con, &mut state, "bulk:", 8_000, 1000, &mut rng);
            }
            let (info, sets) = with_busy_client(&server, || {
                if command == "SAVE" {
                    assert_eq!(
                        show(&raw_cmd(&server, &["SAVE"])),
                        show(b"+OK\r\n"),
                        "{round}"
                    );
                    Info::read(&mut con)
                } else {
                    bgsave(&server, &mut con)
                }
            });
            info.expect(
                &round,
                &[
                    ("rdb_last_bgsave_status", "ok"),
                    ("rdb_last_snapshot_kind", "full"),
                ],
            );
            rested = info.num("rdb_last_snapshot_rest_usec");
            println!(
                "{round} (try {attempt}): rested {rested} us; {sets} SETs from the busy client"
            );
            assert!(sets > 0, "{round}: the busy client sent nothing");
            shutdown(server, &["SHUTDOWN", "NOSAVE"]);
            if rested > 0 {
                break;
            }
        }
        if rests {
            assert!(
                rested > 0,
                "{round}: never rested while a client was busy ({tries} tries)"
            );
        } else {
            assert_eq!(rested, 0, "{round}: rested");
        }
    }
}

#[test]
fn deltas_chain_loads_to_the_last_snapshot() {
    if skip() {
        return;
    }
    let seed = seed("deltas_chain_loads_to_the_last_snapshot");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("snapshot-deltas");
    let dir = scratch.path();
    let server = start(dir, &["--save", "", "--threads", "2"]);
    let mut con = server.conn();
    let mut model = State::new();
    preload(&mut con, &mut model, "base:", 20_000, 100, &mut rng);

    let keys = Keys::new("r:", 400, 2);
    let deadline = now_ms() + HOUR_MS;
    let mut db = 0u16;
    let (mut kinds, mut saved) = (Vec::new(), State::new());
    let (mut full, mut deltas) = (0, 0);
    for round in 0..8 {
        let mut ops = Vec::new();
        let mut current = db;
        for _ in 0..150 {
            if rng.chance(8) {
                current = rng.below(4) as u16;
                ops.push(Op::Select(current));
            }
            // Now and then a FLUSHDB, not of db 0 (the bulk of the data).
            ops.push(if current != 0 && rng.chance(2) {
                Op::FlushDb
            } else {
                random_op(&mut rng, &keys, deadline)
            });
        }
        if round == 4 {
            // A database emptied between two deltas.
            ops.extend([
                Op::Select(1),
                Op::FlushDb,
                Op::Set(b"r:1".to_vec(), b"after flush".to_vec()),
            ]);
        }
        let context = format!("round {round} (seed {seed})");
        run_ops(&mut con, &ops, &mut model, &mut db, &context);
        assert_eq!(
            show(&raw_cmd(&server, &["SAVE"])),
            show(b"+OK\r\n"),
            "{context}: SAVE"
        );
        let info = Info::read(&mut con);
        info.expect(
            &context,
            &[
                ("rdb_saves", &(round + 1).to_string()),
                ("rdb_last_bgsave_status", "ok"),
            ],
        );
        let (kind, bytes) = (
            info.get("rdb_last_snapshot_kind"),
            info.num("rdb_last_snapshot_bytes"),
        );
        // Full first, then deltas until they add up to more than
        // `snapshot-full-ratio` (50) percent of the full one.
        let expected = if round == 0 || deltas * 100 > full * 50 {
            "full"
        } else {
            "delta"
        };
        assert_eq!(
            kind, expected,
            "{context}: the deltas so far have {deltas} bytes, the full one {full}"
        );
        if kind == "full" {
            (full, deltas) = (bytes, 0);
        } else {
            deltas += bytes;
        }
        kinds.push(format!("{kind} {bytes}"));
        saved = model.clone();
    }
    println!("snapshots (kind, bytes): {kinds:?}");
    assert!(
        kinds.iter().any(|k| k.starts_with("delta")),
        "no delta among {kinds:?}"
    );
    // The server holds what the model says (so a mismatch after the
    // restart is the snapshot's).
    assert_state(&server, &model, "before the restart");
    let kept = Info::read(&mut con).num("rdb_snapshots_kept");
    let ops = [
        Op::Select(0),
        Op::Set(b"base:0".to_vec(), b"not saved".to_vec()),
        Op::Del(b"base:1".to_vec()),
    ];
    run_ops(
        &mut con,
        &ops,
        &mut model,
        &mut db,
        "writes after the last SAVE",
    );
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);

    let snapdir = dir.join("snapshotdir");
    let files = snapshot_files(&snapdir);
    let manifest = fs::read_to_string(snapdir.join("dump.rdb.manifest")).expect("the manifest");
    let last = manifest.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("crc32c "),
        "the manifest's last line: {last:?}"
    );
    let listed = manifest
        .lines()
        .filter(|l| l.starts_with("snapshot "))
        .count();
    assert_eq!(
        listed as i64, kept,
        "rdb_snapshots_kept vs the manifest:\n{manifest}"
    );
    for line in manifest.lines().filter(|l| l.starts_with("file ")) {
        let name = line.split(' ').nth(2).unwrap_or_default();
        assert!(
            files.contains(&name.to_string()),
            "{name} is in the manifest but not in {files:?}"
        );
    }
    assert!(
        files.iter().filter(|f| f.ends_with(".kvs")).count() >= 4,
        "{files:?}"
    );
    assert!(
        files.iter().all(|f| !f.ends_with(".tmp")),
        "temporary files left: {files:?}"
    );

    let server = start(dir, &["--save", "", "--threads", "2"]);
    assert_state(
        &server,
        &saved,
        &format!("restart after the last SAVE (seed {seed})"),
    );
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    // The same chain into three shards.
    let server = start(dir, &["--save", "", "--threads", "3"]);
    assert_state(
        &server,
        &saved,
        &format!("restart with --threads 3 (seed {seed})"),
    );
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// Redis 7 splits the single argument of a multi-argument directive at
/// spaces (`loadServerConfigFromString`, MULTI_ARG_CONFIG), so
/// `redis-server --save "3600 1"` (and `save "3600 1"` in a file) sets one
/// rule. kv-server used to exit with "Invalid save parameters".
#[test]
fn save_rules_in_one_argument_as_in_redis() {
    let server = ServerProc::start(&["--appendonly", "no", "--save", "3600 1 300 100"]);
    let mut con = server.conn();
    let save: Vec<String> = query(&mut con, &["CONFIG", "GET", "save"]);
    assert_eq!(save, ["save", "3600 1 300 100"]);
}

/// SIGTERM with `save` rules set takes the final snapshot before exiting,
/// as Redis does (systemd stops a server with SIGTERM); without rules it
/// exits at once.
#[test]
fn sigterm_takes_the_final_snapshot_when_save_rules_are_set() {
    if self_check_against_redis() {
        return;
    }
    let scratch = ScratchDir::new("snapshot-sigterm");
    let dir = scratch.path();
    let mut server = start(dir, &["--save", "3600 1000000"]);
    let mut con = server.conn();
    for i in 0..100 {
        let _: () = redis::cmd("SET")
            .arg(format!("t:{i}"))
            .arg(i)
            .query(&mut con)
            .expect("SET");
    }
    server.signal("TERM");
    tests::wait_until(TIMEOUT, "the process to exit", || !server.is_running());
    let status = server.exit_status().expect("exited");
    assert!(status.success(), "exit status {status:?}");
    let log = server.output();
    assert!(
        log.contains("Saving the final snapshot before exiting."),
        "{log}"
    );
    drop(server);
    let server = start(dir, &["--save", ""]);
    let mut con = server.conn();
    let n: i64 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(n, 100, "the final snapshot did not hold every key");
    let v: i64 = redis::cmd("GET").arg("t:99").query(&mut con).expect("GET");
    assert_eq!(v, 99);
}

// ------------------------------------------------ snapshot + log (M1.5)
