//! Snapshots with the log: the log rewrite, a damaged or unreadable
//! newest snapshot with the log after it.

use super::*;

pub(crate) const REWRITE_STARTED: &[u8] = b"+Background append only file rewriting started\r\n";
pub(crate) const REWRITE_SCHEDULED: &[u8] = b"+Background append only file rewriting scheduled\r\n";

/// `kv-server --appendonly yes --appendfsync always` with 64 KiB log
/// segments on `dir`, two shards, no `save` rule (unless `args` set one).
pub(crate) fn start_log(dir: &Path, args: &[&str]) -> ServerProc {
    let mut all = vec![
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--aof-segment-size",
        "64kb",
        "--threads",
        "2",
        "--save",
        "",
    ];
    all.extend_from_slice(args);
    start(dir, &all)
}

/// Per shard, the first lsns of the log's segment files (their names).
pub(crate) fn log_segments(data: &Path) -> Vec<Vec<u64>> {
    (0..2)
        .map(|s| {
            let d = data.join("appendonlydir").join(format!("shard-{s}"));
            let mut lsns: Vec<u64> = fs::read_dir(&d)
                .map(|r| {
                    r.flatten()
                        .filter_map(|e| {
                            let n = e.file_name().to_string_lossy().into_owned();
                            n.strip_prefix("seg-")?.strip_suffix(".log")?.parse().ok()
                        })
                        .collect()
                })
                .unwrap_or_default();
            lsns.sort();
            lsns
        })
        .collect()
}

/// Waits until `aof_rewrites` passed `before` and no rewrite runs.
pub(crate) fn wait_rewrite(con: &mut Connection, before: i64) -> Info {
    let info = wait_info(con, "the log rewrite", |i| {
        i.num("aof_rewrites") > before
            && i.num("aof_rewrite_in_progress") == 0
            && i.num("aof_rewrite_scheduled") == 0
    });
    info.expect("rewrite", &[("aof_last_bgrewrite_status", "ok")]);
    info
}

/// BGREWRITEAOF (must start), then waits for it; INFO after it.
pub(crate) fn bgrewriteaof(server: &ServerProc, con: &mut Connection) -> Info {
    let before = Info::read(con).num("aof_rewrites");
    assert_eq!(
        show(&raw_cmd(server, &["BGREWRITEAOF"])),
        show(REWRITE_STARTED)
    );
    wait_rewrite(con, before)
}

/// `n` random operations on `keys`, run from database 0 and applied to
/// the model `state`.
pub(crate) fn random_writes(
    con: &mut Connection,
    rng: &mut Rng,
    keys: &Keys,
    n: usize,
    state: &mut State,
    context: &str,
) {
    run_ops(con, &random_ops(rng, keys, n), state, &mut 0, context);
}

pub(crate) fn random_ops(rng: &mut Rng, keys: &Keys, n: usize) -> Vec<Op> {
    let deadline = now_ms() + HOUR_MS;
    (0..n).map(|_| random_op(rng, keys, deadline)).collect()
}

/// The rewrite without fork: BGREWRITEAOF takes a snapshot and the log
/// restarts from it (segments before it are deleted); a restart after
/// SIGKILL loads the snapshot, then the log after it, to the exact state.
/// BGREWRITEAOF during a BGSAVE is scheduled, as in Redis.
#[test]
fn log_rewrite_restarts_the_log_from_a_snapshot() {
    if skip() {
        return;
    }
    let seed = seed("log_rewrite_restarts_the_log_from_a_snapshot");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-rewrite");
    let dir = scratch.path();
    let server = start_log(dir, &[]);
    let mut con = server.conn();
    let mut state = State::new();
    preload(&mut con, &mut state, "k:", 600, 1000, &mut rng);
    let before = log_segments(dir);
    assert!(
        before.iter().all(|s| s.len() >= 3 && s[0] == 1),
        "600 KB of log in 64 KiB segments: {before:?}"
    );
    let info = Info::read(&mut con);
    info.expect(
        "before any rewrite",
        &[
            ("aof_enabled", "1"),
            ("aof_rewrites", "0"),
            ("aof_rewrite_in_progress", "0"),
        ],
    );
    let logged = info.num("aof_current_size");
    assert!(logged > 600_000, "aof_current_size {logged}");

    let info = bgrewriteaof(&server, &mut con);
    info.expect(
        "after BGREWRITEAOF",
        &[("aof_rewrites", "1"), ("rdb_saves", "1")],
    );
    let chain = info.num("rdb_last_snapshot_bytes");
    assert!(
        info.num("aof_base_size") >= chain && info.num("aof_current_size") >= chain,
        "the base of the log is the snapshot chain: {:?}",
        info.0
    );
    // Segments are deleted on a thread of their own after the manifest.
    let trimmed = |after: &Vec<Vec<u64>>| {
        before
            .iter()
            .zip(after)
            .all(|(b, a)| a.len() < b.len() && a[0] > 1)
    };
    let deadline = Instant::now() + TIMEOUT;
    let mut after = log_segments(dir);
    while !trimmed(&after) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
        after = log_segments(dir);
    }
    for (b, a) in before.iter().zip(&after) {
        assert!(
            a.len() < b.len() && a[0] > 1 && a.last() == b.last(),
            "segments before the snapshot's lsn are deleted, the last one stays: {before:?} -> {after:?}"
        );
    }

    // Writes after the rewrite, then BGREWRITEAOF while a BGSAVE runs: it
    // waits for it and runs next.
    let keys = Keys::new("k:", 800, 2);
    let mut db = 0;
    run_ops(
        &mut con,
        &random_ops(&mut rng, &keys, 3000),
        &mut state,
        &mut db,
        "after rewrite",
    );
    let mut raw = server.raw();
    raw.send_cmd(&["BGSAVE"]);
    raw.send_cmd(&["BGREWRITEAOF"]);
    assert_eq!(show(&raw.read_reply()), show(STARTED));
    assert_eq!(show(&raw.read_reply()), show(REWRITE_SCHEDULED));
    wait_rewrite(&mut con, 1);
    run_ops(
        &mut con,
        &random_ops(&mut rng, &keys, 3000),
        &mut state,
        &mut db,
        "after the second",
    );
    kill(server);

    let server = start_log(dir, &[]);
    let out = server.output();
    assert!(
        out.contains("DB loaded from disk") && out.contains("DB loaded from append only file"),
        "the restart loads the snapshot, then the log after it:\n{out}"
    );
    assert_state(&server, &state, "restart after rewrites");
    kill(server);

    // export-aof of the rebased log: the snapshot's state and the log
    // after it, which a fresh server loads to the same state.
    let out = Command::new(server_bin())
        .arg("export-aof")
        .arg(dir.join("appendonlydir"))
        .output()
        .expect("run kv-server export-aof");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "export-aof: {text}");
    assert!(text.contains("Exported the state of snapshot"), "{text}");
    let fresh = start(&scratch.path().join("fresh"), &["--save", ""]);
    let mut con = fresh.conn();
    for args in split_resp_commands(&out.stdout) {
        let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).unwrap());
        for a in &args[1..] {
            cmd.arg(a.as_slice());
        }
        let _: Value = cmd.query(&mut con).expect("exported command");
    }
    assert_state(&fresh, &state, "export-aof of a rebased log, loaded");
    kill(fresh);
}

/// The commands of a RESP text (arrays of bulk strings, as an AOF holds).
pub(crate) fn split_resp_commands(mut b: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line<'a>(b: &mut &'a [u8]) -> &'a [u8] {
        let end = b.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let l = &b[..end];
        *b = &b[end + 2..];
        l
    }
    let num = |l: &[u8]| -> usize { std::str::from_utf8(&l[1..]).unwrap().parse().unwrap() };
    let mut cmds = Vec::new();
    while !b.is_empty() {
        let n = num(line(&mut b));
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let len = num(line(&mut b));
            args.push(b[..len].to_vec());
            b = &b[len + 2..];
        }
        cmds.push(args);
    }
    cmds
}

/// The log reaches back to the older snapshot the manifest keeps: when the
/// newest is damaged, the older one loads, then the log from its lsns, and
/// nothing is lost.
#[test]
fn damaged_newest_snapshot_loads_the_older_one_and_more_log() {
    if skip() {
        return;
    }
    let seed = seed("damaged_newest_snapshot_loads_the_older_one_and_more_log");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-fallback");
    let dir = scratch.path();
    let server = start_log(dir, &[]);
    let mut con = server.conn();
    let mut state = State::new();
    let keys = Keys::new("k:", 800, 2);
    let mut db = 0;
    preload(&mut con, &mut state, "k:", 600, 1000, &mut rng);
    bgrewriteaof(&server, &mut con);
    run_ops(
        &mut con,
        &random_ops(&mut rng, &keys, 3000),
        &mut state,
        &mut db,
        "a",
    );
    preload(&mut con, &mut state, "k:", 300, 1000, &mut rng);
    bgrewriteaof(&server, &mut con);
    run_ops(
        &mut con,
        &random_ops(&mut rng, &keys, 3000),
        &mut state,
        &mut db,
        "b",
    );
    kill(server);
    let snaps = dir.join("snapshotdir");
    let newest = snapshot_files(&snaps)
        .into_iter()
        .filter(|n| n.ends_with(".s0.kvs"))
        .max_by_key(|n| n.split('.').nth(2).and_then(|i| i.parse::<u64>().ok()))
        .expect("a snapshot file");
    flip_middle_byte(&snaps.join(&newest));
    let server = start_log(dir, &[]);
    let out = server.output();
    assert!(
        out.lines()
            .any(|l| l.contains("WARNING") && l.contains(&newest)),
        "a WARNING names the damaged {newest}:\n{out}"
    );
    assert_state(&server, &state, "older snapshot + log");
    kill(server);
}

/// Every snapshot is unreadable, but the log was started on an empty
/// keyspace and still holds every write since: the log alone loads, with
/// a warning, and nothing is lost. A damaged `kv-log.meta` stops the start
/// and says it is damaged.
#[test]
fn unreadable_snapshots_load_the_log_when_it_holds_every_write() {
    if skip() {
        return;
    }
    let seed = seed("unreadable_snapshots_load_the_log_when_it_holds_every_write");
    let mut rng = Rng::new(seed);
    let scratch = ScratchDir::new("log-holds-all");
    let dir = scratch.path();
    let server = start_log(dir, &["--aof-segment-size", "4mb"]);
    let mut con = server.conn();
    let mut state = State::new();
    let keys = Keys::new("k:", 300, 2);
    let mut db = 0;
    preload(&mut con, &mut state, "k:", 200, 100, &mut rng);
    bgsave(&server, &mut con);
    run_ops(
        &mut con,
        &random_ops(&mut rng, &keys, 500),
        &mut state,
        &mut db,
        "a",
    );
    bgsave(&server, &mut con);
    run_ops(
        &mut con,
        &random_ops(&mut rng, &keys, 500),
        &mut state,
        &mut db,
        "b",
    );
    kill(server);
    let snaps = dir.join("snapshotdir");
    let files: Vec<String> = snapshot_files(&snaps)
        .into_iter()
        .filter(|n| n.ends_with(".kvs"))
        .collect();
    assert!(files.len() >= 2, "{files:?}");
    for f in &files {
        flip_middle_byte(&snaps.join(f));
    }
    let server = start_log(dir, &["--aof-segment-size", "4mb"]);
    let out = server.output();
    assert!(
        out.lines()
            .any(|l| l.contains("WARNING") && l.contains("still holds every write")),
        "a WARNING says the log is loaded alone:\n{out}"
    );
    assert_state(&server, &state, "log alone");
    kill(server);

    let meta = dir.join("appendonlydir").join("kv-log.meta");
    for garbage in [
        &b"shards 2\nid 7x\n"[..],
        b"\xff\xfe\x00garbage",
        b"shards 0\n",
        b"",
    ] {
        fs::write(&meta, garbage).unwrap();
        let out = start_must_fail(dir, &["--appendonly", "yes"], "damaged kv-log.meta");
        assert!(
            out.contains("kv-log.meta is damaged"),
            "{:?}: the error does not say kv-log.meta is damaged:\n{out}",
            String::from_utf8_lossy(garbage)
        );
    }
}
