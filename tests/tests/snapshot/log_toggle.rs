//! The log turned on and off, the shard count changed, detached and
//! foreign logs, backups and point-in-time restore, CONFIG SET dir.

use super::*;

/// A log written by two shards is refused by a one-shard server, which
/// names the way out; following it (log off, SAVE, start with the new
/// count) loads everything and starts a new log.
#[test]
fn changing_threads_is_refused_with_a_log_and_the_way_out_works() {
    if skip() {
        return;
    }
    let seed = seed("changing_threads_is_refused_with_a_log_and_the_way_out_works");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("threads-change");
    let dir = scratch.path();
    let server = start_log(dir, &[]);
    let mut con = server.conn();
    let mut state = State::new();
    preload(&mut con, &mut state, "k:", 300, 50, &mut rng);
    drop(con);
    kill(server);
    let out = start_must_fail(
        dir,
        &["--appendonly", "yes", "--threads", "1"],
        "one shard on a two-shard log",
    );
    assert!(
        out.contains("written by 2 shards") && out.contains("CONFIG SET appendonly no"),
        "the refusal names the count and the way out:\n{out}"
    );
    let server = start_log(dir, &[]);
    assert_state(&server, &state, "two shards again");
    set_appendonly(&server, "no");
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    let server = start_log(dir, &["--threads", "1"]);
    assert_state(&server, &state, "one shard from the snapshot");
    let mut con = server.conn();
    let () = redis::cmd("SET")
        .arg("after")
        .arg("1")
        .query(&mut con)
        .unwrap();
    state.insert(
        (0, b"after".to_vec()),
        Entry {
            value: b"1".to_vec(),
            expire_at: None,
        },
    );
    drop(con);
    kill(server);
    let server = start_log(dir, &["--threads", "1"]);
    assert_state(&server, &state, "one shard, snapshot and new log");
    kill(server);
}

/// Never restore empty: a server that ran with snapshots only, started with
/// `appendonly yes` (no log yet), loads the snapshot and starts the log
/// from it; a crash after more writes loses nothing.
#[test]
fn appendonly_yes_next_to_a_snapshot_loads_it() {
    if skip() {
        return;
    }
    let seed = seed("appendonly_yes_next_to_a_snapshot_loads_it");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-from-snapshot");
    let dir = scratch.path();
    let server = start(dir, &["--save", "", "--threads", "2"]);
    let mut con = server.conn();
    let mut state = State::new();
    preload(&mut con, &mut state, "k:", 500, 200, &mut rng);
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    assert!(!dir.join("appendonlydir").exists());

    let server = start_log(dir, &[]);
    assert!(
        server.output().contains("starting the log from it"),
        "{}",
        server.output()
    );
    assert_state(&server, &state, "appendonly yes on a snapshot");
    let manifest = fs::read_to_string(dir.join("snapshotdir/dump.rdb.manifest")).unwrap();
    assert!(manifest.contains("\nlog id "), "{manifest}");
    let mut con = server.conn();
    let keys = Keys::new("k:", 600, 2);
    random_writes(&mut con, &mut rng, &keys, 2000, &mut state, "logged");
    kill(server);
    let server = start_log(dir, &[]);
    assert_state(&server, &state, "snapshot + log after SIGKILL");
    kill(server);
}

/// `appendonly no` with a log the manifest names: the log is loaded (it is
/// newer than the snapshot), and the next snapshot detaches and removes it.
/// A detached log put back is moved aside, never loaded; a log that is not
/// the one the manifest names stops the start.
#[test]
fn detached_and_foreign_logs_are_never_loaded() {
    if skip() {
        return;
    }
    let seed = seed("detached_and_foreign_logs_are_never_loaded");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-detached");
    let dir = scratch.path();
    let log_dir = dir.join("appendonlydir");
    let keys = Keys::new("k:", 600, 2);
    let server = start_log(dir, &[]);
    let mut con = server.conn();
    let mut state = State::new();
    preload(&mut con, &mut state, "k:", 500, 200, &mut rng);
    kill(server);

    // appendonly no: the log (the only copy of the data) still loads.
    let server = start(dir, &["--save", "", "--threads", "2"]);
    assert_state(&server, &state, "appendonly no, log named by the manifest");
    let mut con = server.conn();
    random_writes(&mut con, &mut rng, &keys, 2000, &mut state, "unlogged");
    let old_log = dir.join("old-log");
    copy_tree(&log_dir, &old_log);
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    assert!(
        !log_dir.join("kv-log.meta").exists(),
        "the snapshot holds the whole log: it is removed"
    );
    kill(server);

    // The detached log put back: moved aside, the snapshot loads.
    let _ = fs::remove_dir_all(&log_dir);
    copy_tree(&old_log, &log_dir);
    let server = start_log(dir, &[]);
    assert!(
        server.output().contains("not loaded"),
        "{}",
        server.output()
    );
    assert_state(&server, &state, "detached log put back");
    let aside: Vec<String> = snapshot_files(dir)
        .into_iter()
        .filter(|n| n.starts_with("appendonlydir.stale-"))
        .collect();
    assert_eq!(aside.len(), 1, "{:?}", snapshot_files(dir));
    kill(server);

    // A log with another id where the manifest's log should be.
    let meta = fs::read_to_string(log_dir.join("kv-log.meta")).unwrap();
    let other: String = meta
        .lines()
        .map(|l| match l.strip_prefix("id ") {
            Some(id) => format!("id {}\n", id.parse::<u64>().unwrap() + 1),
            None => format!("{l}\n"),
        })
        .collect();
    fs::write(log_dir.join("kv-log.meta"), other).unwrap();
    let out = start_must_fail(
        dir,
        &["--appendonly", "yes", "--threads", "2", "--save", ""],
        "foreign log",
    );
    assert!(
        out.contains("dump.rdb.manifest") && out.contains("appendonlydir"),
        "the error names both: {out}"
    );
}

/// Copies a directory tree.
pub(crate) fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for e in fs::read_dir(from).unwrap().flatten() {
        let target = to.join(e.file_name());
        if e.path().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            fs::copy(e.path(), &target).unwrap();
        }
    }
}

/// Runs `kv-server backup <args>`; returns (success, stdout + stderr).
pub(crate) fn backup_tool(args: &[&Path], extra: &[&str]) -> (bool, String) {
    let out = Command::new(server_bin())
        .arg("backup")
        .args(args)
        .args(extra)
        .output()
        .expect("run kv-server backup");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The id in "Backed up snapshot <id> ...".
pub(crate) fn backed_up_id(text: &str) -> u64 {
    text.split_whitespace()
        .skip_while(|w| *w != "snapshot")
        .nth(1)
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no snapshot id in: {text}"))
}

/// The backup drill: back up a running server twice (BGSAVE, then
/// `kv-server backup`), keep writing, then restore each backup into a new
/// data directory (the older one by id: point-in-time); each restore loads
/// exactly the state of its snapshot and then logs as usual.
#[test]
fn backup_and_point_in_time_restore() {
    if skip() {
        return;
    }
    let seed = seed("backup_and_point_in_time_restore");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("backup");
    let dir = scratch.path().join("data");
    let backups = scratch.path().join("backups");
    let keys = Keys::new("k:", 600, 2);
    let server = start_log(&dir, &[]);
    let mut con = server.conn();
    let mut state = State::new();
    let mut db = 0;
    preload(&mut con, &mut state, "k:", 500, 300, &mut rng);
    let snaps = dir.join("snapshotdir");
    let mut points = Vec::new();
    for round in 0..2 {
        run_ops(
            &mut con,
            &random_ops(&mut rng, &keys, 2000),
            &mut state,
            &mut db,
            "load",
        );
        bgsave(&server, &mut con);
        // Writes go on while the backup is taken.
        let (ok, text) = backup_tool(&[&snaps, &backups], &[]);
        assert!(ok, "backup {round}: {text}");
        println!("{}", text.trim());
        points.push((backed_up_id(&text), state.clone()));
        run_ops(
            &mut con,
            &random_ops(&mut rng, &keys, 2000),
            &mut state,
            &mut db,
            "more",
        );
    }
    kill(server);
    let (ok, text) = backup_tool(&[&snaps, &backups], &["--snapshot", "999999"]);
    assert!(!ok && text.contains("999999"), "{text}");

    for (i, (id, expected)) in points.iter().enumerate() {
        let restored = scratch.path().join(format!("restore-{i}"));
        let (ok, text) = backup_tool(
            &[&backups, &restored.join("snapshotdir")],
            &["--snapshot", &id.to_string()],
        );
        assert!(ok, "restore {i}: {text}");
        let server = start_log(&restored, &[]);
        assert_state(&server, expected, &format!("restore of snapshot {id}"));
        let mut con = server.conn();
        let mut after = expected.clone();
        run_ops(
            &mut con,
            &random_ops(&mut rng, &keys, 500),
            &mut after,
            &mut 0,
            "restored",
        );
        kill(server);
        let server = start_log(&restored, &[]);
        assert_state(&server, &after, "restore, writes, SIGKILL");
        kill(server);
    }
}

/// CONFIG SET appendonly <v>, which must answer OK.
pub(crate) fn set_appendonly(server: &ServerProc, value: &str) {
    assert_eq!(
        show(&raw_cmd(server, &["CONFIG", "SET", "appendonly", value])),
        show(b"+OK\r\n"),
        "CONFIG SET appendonly {value}"
    );
}

/// CONFIG SET appendonly yes, then waits until the rewrite that turns the
/// log on is done and the manifest names the new log; returns its id.
pub(crate) fn turn_log_on(server: &ServerProc, con: &mut Connection, dir: &Path) -> u64 {
    let before = Info::read(con).num("aof_rewrites");
    set_appendonly(server, "yes");
    let info = wait_rewrite(con, before);
    info.expect("log turned on", &[("aof_enabled", "1")]);
    let manifest = fs::read_to_string(dir.join("snapshotdir/dump.rdb.manifest")).unwrap();
    let named = manifest
        .lines()
        .find_map(|l| l.strip_prefix("log id "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|id| id.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("the manifest names no log:\n{manifest}"));
    let meta = fs::read_to_string(dir.join("appendonlydir/kv-log.meta")).unwrap();
    assert!(
        meta.lines().any(|l| l == format!("id {named}")),
        "the manifest names log {named}; kv-log.meta:\n{meta}"
    );
    named
}

/// The appendonly-toggle drill. A server restored from a snapshot runs
/// with `appendonly no`; `CONFIG SET appendonly yes`, while a client keeps
/// writing (multi-shard MSETs included), makes a base of the in-memory
/// state and starts the log from it: SIGKILL after that loses nothing
/// acknowledged. `CONFIG SET appendonly no` stops the log (snapshot + log
/// restore the state at that moment); turning it on again with that log
/// still named detaches it first and starts a new log; a snapshot taken
/// with the log off removes the old log. Log files that no manifest names
/// are moved aside when the log is turned on, never deleted.
#[test]
fn appendonly_toggled_at_run_time() {
    if skip() {
        return;
    }
    let seed = seed("appendonly_toggled_at_run_time");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-toggle");
    let dir = scratch.path();
    let log_dir = dir.join("appendonlydir");
    let keys = Keys::new("k:", 600, 2);
    let no = ["--appendonly", "no"];

    // The snapshot a restore leaves, and a log no manifest names.
    let server = start_log(dir, &no);
    let mut con = server.conn();
    let mut state = State::new();
    preload(&mut con, &mut state, "k:", 500, 200, &mut rng);
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    kill(server);
    let stray = log_dir.join("shard-0/seg-00000000000000000001.log");
    fs::create_dir_all(stray.parent().unwrap()).unwrap();
    fs::write(&stray, b"someone's records").unwrap();
    fs::write(log_dir.join("kv-log.meta"), "shards 2\nid 5\n").unwrap();

    // Restored, appendonly no, unlogged writes; then the log is turned on
    // while a client writes.
    let server = start_log(dir, &no);
    assert_state(&server, &state, "restored with appendonly no");
    let mut con = server.conn();
    Info::read(&mut con).expect("appendonly no", &[("aof_enabled", "0")]);
    random_writes(&mut con, &mut rng, &keys, 1000, &mut state, "unlogged");
    let stop = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(AtomicU64::new(0));
    let writer = {
        let con = server.conn();
        let (stop, progress) = (stop.clone(), progress.clone());
        let seed = rng.next_u64();
        thread::spawn(move || barrier_writer(con, seed, State::new(), "seq".into(), progress, stop))
    };
    let wait_progress = |at_least: u64| {
        let deadline = Instant::now() + TIMEOUT;
        while progress.load(Ordering::SeqCst) < at_least {
            assert!(Instant::now() < deadline, "the writer is stuck");
            thread::sleep(Duration::from_millis(2));
        }
    };
    wait_progress(100);
    let first = turn_log_on(&server, &mut con, dir);
    let acked = progress.load(Ordering::SeqCst);
    wait_progress(acked + 200);
    stop.store(true, Ordering::SeqCst);
    let ops = writer
        .join()
        .unwrap()
        .unwrap_or_else(|e| panic!("writer: {e}"));
    for op in &ops {
        op.apply(&mut state, &mut 0);
    }
    state.insert(
        (0, b"seq".to_vec()),
        Entry {
            value: (ops.len() - 1).to_string().into_bytes(),
            expire_at: None,
        },
    );
    assert_eq!(
        fs::read(dir.join("appendonlydir.stale-5/shard-0/seg-00000000000000000001.log"))
            .expect("the unnamed log is moved aside"),
        b"someone's records"
    );
    kill(server);
    let server = start_log(dir, &[]);
    assert_state(&server, &state, "log turned on under writes, SIGKILL");

    // Off: the log stays named; SIGKILL restores the state at that moment.
    let mut con = server.conn();
    set_appendonly(&server, "no");
    Info::read(&mut con).expect("log turned off", &[("aof_enabled", "0")]);
    let at_off = state.clone();
    random_writes(&mut con, &mut rng, &keys, 500, &mut state, "after off");
    kill(server);
    let server = start_log(dir, &no);
    assert_state(&server, &at_off, "log turned off, SIGKILL");
    state = at_off;

    // On again with the old log still named: it is detached, and a new
    // log starts.
    let mut con = server.conn();
    let second = turn_log_on(&server, &mut con, dir);
    assert_ne!(first, second, "a new log");
    random_writes(&mut con, &mut rng, &keys, 500, &mut state, "second log");
    kill(server);
    let server = start_log(dir, &[]);
    assert_state(&server, &state, "log turned on again, SIGKILL");

    // Off, a snapshot removes the log, on again.
    let mut con = server.conn();
    set_appendonly(&server, "no");
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    assert!(
        log_segments(dir).iter().all(Vec::is_empty) && !log_dir.join("kv-log.meta").exists(),
        "the snapshot holds the whole log: it is removed"
    );
    random_writes(&mut con, &mut rng, &keys, 500, &mut state, "unlogged again");
    let third = turn_log_on(&server, &mut con, dir);
    assert_ne!(second, third, "a new log");
    random_writes(&mut con, &mut rng, &keys, 500, &mut state, "third log");
    kill(server);
    let server = start_log(dir, &[]);
    assert_state(&server, &state, "third log, SIGKILL");
    kill(server);
}

/// The writer of `sigkill_while_the_log_is_turned_on`: `SET <p><i> <i>`,
/// and every fourth command an MSET of `<p>a<i>` and `<p>b<i>` (on
/// different shards), one at a time until the connection fails. `acked`
/// counts the commands answered OK.
pub(crate) fn toggle_writer(mut con: Connection, prefix: String, acked: Arc<AtomicU64>) {
    for i in 0u64.. {
        let r: redis::RedisResult<()> = if i % 4 == 3 {
            let (a, b) = mset_keys(&prefix, i);
            redis::cmd("MSET")
                .arg(a)
                .arg(i)
                .arg(b)
                .arg(i)
                .query(&mut con)
        } else {
            redis::cmd("SET")
                .arg(format!("{prefix}{i}"))
                .arg(i)
                .query(&mut con)
        };
        if r.is_err() {
            return;
        }
        acked.store(i + 1, Ordering::SeqCst);
    }
}

/// The two keys of `toggle_writer`'s MSET number `i`, on different shards
/// of 2.
pub(crate) fn mset_keys(prefix: &str, i: u64) -> (String, String) {
    let a = format!("{prefix}a{i}");
    let b = (0..)
        .map(|n| format!("{prefix}b{i}.{n}"))
        .find(|b| shard_of(b.as_bytes(), 2) != shard_of(a.as_bytes(), 2))
        .unwrap();
    (a, b)
}

/// How many of `toggle_writer`'s writes (prefix `prefix`) the loaded keys
/// `mine` hold: they must be exactly writes 0..k, each with its value (the
/// writes are sequential, so any snapshot or log holds a prefix; a hole or
/// half an MSET fails).
pub(crate) fn writer_prefix(mine: &State, prefix: &str, context: &str) -> u64 {
    let keys_of = |i: u64| {
        if i % 4 == 3 {
            let (a, b) = mset_keys(prefix, i);
            vec![a, b]
        } else {
            vec![format!("{prefix}{i}")]
        }
    };
    let value_of = |k: &str| {
        mine.get(&(0, k.as_bytes().to_vec()))
            .map(|e| e.value.clone())
    };
    let k = (0u64..)
        .take_while(|&i| {
            keys_of(i)
                .iter()
                .all(|key| value_of(key) == Some(i.to_string().into_bytes()))
        })
        .count() as u64;
    let in_prefix: usize = (0..k).map(|i| keys_of(i).len()).sum();
    assert_eq!(
        in_prefix,
        mine.len(),
        "{context}: the writer's writes 0..{k} loaded, and other keys of it too (a torn MSET \
         or a hole)"
    );
    k
}

/// The id of the log the manifest names, if the log directory holds it.
pub(crate) fn named_log(dir: &Path) -> Option<String> {
    let manifest =
        fs::read_to_string(dir.join("snapshotdir/dump.rdb.manifest")).unwrap_or_default();
    let meta = fs::read_to_string(dir.join("appendonlydir/kv-log.meta")).unwrap_or_default();
    manifest
        .lines()
        .find_map(|l| l.strip_prefix("log id "))
        .and_then(|l| l.split_whitespace().next())
        .filter(|id| meta.lines().any(|l| l == format!("id {id}")))
        .map(str::to_string)
}

/// SIGKILL at random moments after `CONFIG SET appendonly yes` while a
/// client writes under `always`. The restart loads a consistent prefix of
/// the client's writes (they are sequential, so any snapshot holds writes
/// 0..k exactly; no multi-shard MSET half applied): until the manifest
/// names the new log, whatever the last snapshot held (the previous one,
/// or the one that detached an older log; the new log is moved aside,
/// never loaded half); once it does, every acknowledged write.
#[test]
fn sigkill_while_the_log_is_turned_on() {
    if skip() {
        return;
    }
    let seed = seed("sigkill_while_the_log_is_turned_on");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-toggle-kill");
    let dir = scratch.path();
    let no = ["--appendonly", "no"];
    let server = start_log(dir, &no);
    let mut con = server.conn();
    let mut a = State::new();
    // 8 MB of incompressible values: the base takes a moment.
    preload(&mut con, &mut a, "k:", 20_000, 400, &mut rng);
    let t = Instant::now();
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    let window_ms = (t.elapsed().as_millis() as i64).max(5) * 2;
    kill(server);
    let (mut before, mut after) = (0, 0);
    for cycle in 0..4 {
        let context = format!("cycle {cycle} (seed {seed})");
        let server = start_log(dir, &no);
        assert_state(&server, &a, &format!("{context}: start"));
        let old_log = named_log(dir);
        let prefix = format!("t{cycle}:");
        let acked = Arc::new(AtomicU64::new(0));
        let writer = {
            let (con, prefix, acked) = (server.conn(), prefix.clone(), acked.clone());
            thread::spawn(move || toggle_writer(con, prefix, acked))
        };
        while acked.load(Ordering::SeqCst) < 50 {
            thread::sleep(Duration::from_millis(1));
        }
        let delay = if cycle == 0 {
            0
        } else {
            rng.range(0, window_ms)
        };
        set_appendonly(&server, "yes");
        thread::sleep(Duration::from_millis(delay as u64));
        kill(server);
        writer.join().unwrap();
        let acked = acked.load(Ordering::SeqCst);
        let new_log = named_log(dir).filter(|id| old_log.as_ref() != Some(id));

        let server = start_log(dir, &[]);
        let got = read_state(&server);
        let (mine, rest): (State, State) = got
            .clone()
            .into_iter()
            .partition(|((_, k), _)| k.starts_with(prefix.as_bytes()));
        if let Some(d) = diff(&a, &rest) {
            panic!("{context}: besides the writer's keys: {d}");
        }
        let k = writer_prefix(&mine, &prefix, &context);
        assert!(k <= acked + 1, "{context}: {k} writes loaded, {acked} sent");
        if new_log.is_some() {
            after += 1;
            assert!(
                k >= acked,
                "{context}: killed {delay} ms after CONFIG SET, the new log was named, but \
                 only writes 0..{k} of {acked} acknowledged loaded"
            );
        } else {
            before += 1;
        }
        println!(
            "{context}: killed {delay} ms after CONFIG SET, {acked} acknowledged, new log \
             named: {}, writes 0..{k} loaded",
            new_log.is_some()
        );
        a = got;
        kill(server);
    }
    println!("{before} kills before the new log was named, {after} after");
}

/// CONFIG SET dir / dbfilename: refused as protected configs by default
/// (Redis 7's reply); with `enable-protected-configs yes` still refused
/// while the log is on (the manifest and the log it names must stay
/// together); with the log off the next snapshot is a full one in the new
/// place, which a restart there loads.
#[test]
fn config_set_dir_never_splits_the_manifest_from_the_log() {
    if skip() {
        return;
    }
    let mut rng = Rng::new(seed(
        "config_set_dir_never_splits_the_manifest_from_the_log",
    ));
    let scratch = ScratchDir::new("config-dir");
    let dir = scratch.path().join("a");
    let moved = scratch.path().join("b");
    fs::create_dir_all(&moved).unwrap();
    let moved_s = moved.display().to_string();
    let set = |server: &ServerProc, name: &str, value: &str| {
        show(&raw_cmd(server, &["CONFIG", "SET", name, value]))
    };

    let server = start_log(&dir, &[]);
    for name in ["dir", "dbfilename"] {
        assert_eq!(
            set(
                &server,
                name,
                if name == "dir" { &moved_s } else { "x.rdb" }
            ),
            show(
                format!(
                    "-ERR CONFIG SET failed (possibly related to argument '{name}') - can't set \
                     protected config\r\n"
                )
                .as_bytes()
            )
        );
    }
    kill(server);

    let server = start_log(&dir, &["--enable-protected-configs", "yes"]);
    let reply = set(&server, "dir", &moved_s);
    assert!(reply.contains("while the append-only log is on"), "{reply}");
    let mut con = server.conn();
    let mut state = State::new();
    preload(&mut con, &mut state, "k:", 300, 100, &mut rng);
    set_appendonly(&server, "no");
    assert_eq!(set(&server, "dir", &moved_s), show(b"+OK\r\n"));
    let keys = Keys::new("k:", 400, 2);
    random_writes(&mut con, &mut rng, &keys, 500, &mut state, "after moving");
    assert_eq!(show(&raw_cmd(&server, &["SAVE"])), show(b"+OK\r\n"));
    assert!(moved.join("snapshotdir/dump.rdb.manifest").is_file());
    // The log turned on again starts in the new place.
    turn_log_on(&server, &mut con, &moved);
    random_writes(
        &mut con,
        &mut rng,
        &keys,
        500,
        &mut state,
        "logged in the new place",
    );
    kill(server);
    let server = start_log(&moved, &[]);
    assert_state(&server, &state, "snapshot and log in the new dir");
    kill(server);
}

/// The log switched on and off at random while a client writes under
/// `always` and BGSAVEs and BGREWRITEAOFs run (the switches and the
/// snapshots' barriers interleave): every reply is one Redis gives, and
/// once the log is left on and named, a SIGKILL loses no acknowledged
/// write and tears no MSET.
#[test]
fn log_toggled_at_random_under_writes_and_snapshots() {
    if skip() {
        return;
    }
    let seed = seed("log_toggled_at_random_under_writes_and_snapshots");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-toggle-random");
    let dir = scratch.path();
    let server = start_log(dir, &["--appendonly", "no"]);
    let acked = Arc::new(AtomicU64::new(0));
    let writer = {
        let (con, acked) = (server.conn(), acked.clone());
        thread::spawn(move || toggle_writer(con, "w:".into(), acked))
    };
    let allowed: [&[u8]; 7] = [
        b"+OK\r\n",
        STARTED,
        SCHEDULED,
        BUSY,
        REWRITE_STARTED,
        REWRITE_SCHEDULED,
        b"-ERR Background append only file rewriting already in progress\r\n",
    ];
    for _ in 0..60 {
        let cmd: &[&str] = match rng.below(6) {
            0 | 1 => &["CONFIG", "SET", "appendonly", "yes"],
            2 | 3 => &["CONFIG", "SET", "appendonly", "no"],
            4 => &["BGSAVE"],
            _ => &["BGREWRITEAOF"],
        };
        let reply = raw_cmd(&server, cmd);
        assert!(
            allowed.contains(&reply.as_slice()),
            "{cmd:?} replied {} (seed {seed})",
            show(&reply)
        );
        thread::sleep(Duration::from_millis(rng.below(30) as u64));
    }
    set_appendonly(&server, "yes");
    let mut con = server.conn();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let info = Info::read(&mut con);
        let settled = info.get("aof_enabled") == "1"
            && info.num("aof_rewrite_in_progress") == 0
            && info.num("aof_rewrite_scheduled") == 0
            && info.num("rdb_bgsave_in_progress") == 0;
        if settled && named_log(dir).is_some() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the log was never named (seed {seed}); INFO {:?}",
            info.0
        );
        thread::sleep(Duration::from_millis(10));
    }
    let at = acked.load(Ordering::SeqCst);
    while acked.load(Ordering::SeqCst) < at + 100 {
        thread::sleep(Duration::from_millis(1));
    }
    kill(server);
    writer.join().unwrap();
    let acked = acked.load(Ordering::SeqCst);
    let server = start_log(dir, &[]);
    let got = read_state(&server);
    let context = format!("seed {seed}");
    let k = writer_prefix(&got, "w:", &context);
    assert!(
        k >= acked && k <= acked + 1,
        "{context}: writes 0..{k} loaded, {acked} acknowledged"
    );
    println!("{acked} acknowledged writes, all loaded");
    kill(server);
}

// ------------------------------------------------------- full filesystems
