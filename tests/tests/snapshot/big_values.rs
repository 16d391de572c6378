//! Big values and FLUSHALL ASYNC during a snapshot, and deltas of big
//! values.

use super::*;

/// FLUSHALL ASYNC while a BGSAVE runs: the client sees an empty keyspace
/// at once; the pages the snapshot has not written yet stay with it, the
/// others go to the lazy-free thread; the snapshot holds the keyspace as
/// it was at its barrier: every key (the flush came after the barrier,
/// the usual case here) or none (before it; the barrier follows BGSAVE's
/// reply once the heap is read), never part of them.
#[test]
fn flushall_async_during_bgsave_keeps_the_snapshot_whole() {
    if skip() {
        return;
    }
    let mut rng = Rng::new(seed(
        "flushall_async_during_bgsave_keeps_the_snapshot_whole",
    ));
    let scratch = ScratchDir::new("snapshot-flush-async");
    let dir = scratch.path();
    let args = ["--save", "", "--threads", "2", "--snapshot-pace", "20"];
    let server = start(dir, &args);
    let mut con = server.conn();
    let mut state = State::new();
    // ~100 MB over two shards: with the busy client the walker rests
    // between its slices and takes a second or more.
    preload(&mut con, &mut state, "bulk:", 100_000, 1000, &mut rng);
    // INFO memory's lazyfree_pending_objects and lazyfreed_objects.
    let lazyfree = |con: &mut Connection| {
        let text: String = query(con, &["INFO", "memory"]);
        let num = |f: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(f)?.strip_prefix(':')?.parse::<i64>().ok())
                .unwrap_or_else(|| panic!("INFO memory has no {f}: {text}"))
        };
        (num("lazyfree_pending_objects"), num("lazyfreed_objects"))
    };
    let before = lazyfree(&mut con).1;
    // A busy client makes the walker rest, so the flush lands mid-way.
    let (running, _) = with_busy_client(&server, || {
        assert_eq!(show(&raw_cmd(&server, &["BGSAVE"])), show(STARTED));
        // The barrier follows the reply once the heap is read (~0.3 s).
        thread::sleep(Duration::from_millis(400));
        let running = Info::read(&mut con).num("rdb_bgsave_in_progress") == 1;
        assert_eq!(
            show(&raw_cmd(&server, &["FLUSHALL", "ASYNC"])),
            show(b"+OK\r\n")
        );
        // Only the busy client's keys (100 at most) come back at once.
        assert!(query::<i64>(&mut con, &["DBSIZE"]) <= 100);
        assert_eq!(query::<Option<Vec<u8>>>(&mut con, &["GET", "bulk:7"]), None);
        running
    });
    wait_idle(&mut con).expect("after the flush", &[("rdb_last_bgsave_status", "ok")]);
    let deadline = Instant::now() + TIMEOUT;
    let freed = loop {
        match lazyfree(&mut con) {
            (0, freed) => break freed - before,
            _ => assert!(Instant::now() < deadline, "the lazy-free thread is stuck"),
        }
        thread::sleep(Duration::from_millis(5));
    };
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);

    let server = start(dir, &args);
    let mut loaded = read_state(&server);
    loaded.retain(|(_, k), _| k.starts_with(b"bulk:"));
    println!(
        "snapshot running at the flush: {running}; keys freed on the lazy-free thread: \
         {freed}; bulk keys in the snapshot: {} of {}",
        loaded.len(),
        state.len()
    );
    if !loaded.is_empty() {
        if let Some(why) = diff(&state, &loaded) {
            panic!("the snapshot is not the state before the flush: {why}");
        }
    }
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// A value of several MiB (a chunked string) under single-byte SETRANGEs
/// while BGSAVE writes it: the snapshot holds the value as it was at the
/// barrier (found, as in `snapshot_is_the_state_at_the_barrier_under_writes`,
/// by a sequence key set after each write), and the snapshot plus the log
/// give the latest one.
#[test]
fn big_value_under_setrange_during_bgsave_restarts_intact() {
    if skip() {
        return;
    }
    let mut rng = Rng::new(seed(
        "big_value_under_setrange_during_bgsave_restarts_intact",
    ));
    let scratch = ScratchDir::new("snapshot-big-value");
    let dir = scratch.path().join("data");
    fs::create_dir_all(&dir).unwrap();
    // One shard: a pipeline's commands for different shards run
    // concurrently, so with two the snapshot's cut need not be a prefix of
    // the pipeline, and `seq` would not tell where it fell.
    let args = ["--save", "", "--appendonly", "yes", "--threads", "1"];
    let server = ServerProc::start_in(&dir, &args);
    let mut con = server.conn();
    const LEN: usize = 8 << 20;
    let mut value: Vec<u8> = (0..LEN).map(|i| (i % 251) as u8).collect();
    let _: () = redis::cmd("SET")
        .arg("big")
        .arg(&value)
        .query(&mut con)
        .unwrap();
    let original = value.clone();
    let reply = raw_cmd(&server, &["BGSAVE"]);
    assert_eq!(show(&reply), show(STARTED), "BGSAVE");
    let mut pipe = redis::pipe();
    let mut writes = Vec::new();
    for i in 0..2000 {
        let at = rng.below(LEN);
        let byte = [b'A' + rng.below(26) as u8];
        value[at] = byte[0];
        writes.push((at, byte[0]));
        pipe.cmd("SETRANGE")
            .arg("big")
            .arg(at)
            .arg(&byte[..])
            .ignore();
        pipe.cmd("SET").arg("seq").arg(i).ignore();
    }
    let _: () = pipe.query(&mut con).unwrap();
    wait_idle(&mut con);
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert!(got == value, "the live value after the writes");
    kill(server);
    // The snapshot alone: the value at the barrier.
    let snap_only = scratch.path().join("snap-only");
    copy_dir(&dir.join("snapshotdir"), &snap_only.join("snapshotdir"));
    let server = start(&snap_only, &["--save", ""]);
    let mut con = server.conn();
    let got: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    let seq: Option<usize> = redis::cmd("GET").arg("seq").query(&mut con).unwrap();
    // The cut may also fall between a write and its `SET seq` (they can
    // arrive in two reads, two batches): then the write is in too.
    let upto = seq.map_or(0, |i| i + 1);
    let at = |n: usize| {
        let mut v = original.clone();
        for &(at, byte) in &writes[..n.min(writes.len())] {
            v[at] = byte;
        }
        v
    };
    let at_barrier = at(upto);
    let differ = got.iter().zip(&at_barrier).filter(|(a, b)| a != b).count();
    assert!(
        got == at_barrier || got == at(upto + 1),
        "the snapshot holds the value at the barrier (after write {seq:?}): {} bytes (want {LEN}), {differ} differ",
        got.len(),
    );
    kill(server);
    // The snapshot and the log: the latest value.
    let server = ServerProc::start_in(&dir, &args);
    let got: Vec<u8> = redis::cmd("GET")
        .arg("big")
        .query(&mut server.conn())
        .unwrap();
    assert!(
        got == value,
        "the snapshot and the log give the latest value"
    );
    kill(server);
}

/// A hash of 200k fields (a hashtable of many segments) and small hashes
/// (listpacks) under HSET/HDEL while BGSAVE writes them: the snapshot
/// holds each as it was at the barrier (found by a sequence key set after
/// each write), the snapshot plus the log give the latest state after a
/// SIGKILL, and so does a delta snapshot taken after the restart.
#[test]
fn big_hash_under_hset_during_bgsave_restarts_intact() {
    use std::collections::HashMap;
    if skip() {
        return;
    }
    let mut rng = Rng::new(seed("big_hash_under_hset_during_bgsave_restarts_intact"));
    let scratch = ScratchDir::new("snapshot-big-hash");
    let dir = scratch.path().join("data");
    fs::create_dir_all(&dir).unwrap();
    // One shard, for `seq` to tell where the cut fell (see
    // `big_value_under_setrange_during_bgsave_restarts_intact`).
    let args = ["--save", "", "--appendonly", "yes", "--threads", "1"];
    let server = ServerProc::start_in(&dir, &args);
    let mut con = server.conn();
    type Model = HashMap<String, HashMap<Vec<u8>, Vec<u8>>>;
    let mut model: Model = HashMap::new();
    const FIELDS: usize = 200_000;
    for chunk in 0..FIELDS / 1000 {
        let mut cmd = redis::cmd("HSET");
        cmd.arg("big");
        for i in chunk * 1000..(chunk + 1) * 1000 {
            let (f, v) = (
                format!("field:{i}").into_bytes(),
                format!("value {i}").into_bytes(),
            );
            cmd.arg(&f).arg(&v);
            model.entry("big".into()).or_default().insert(f, v);
        }
        let _: i64 = cmd.query(&mut con).unwrap();
    }
    for k in 0..50 {
        let key = format!("small:{k}");
        for i in 0..1 + k % 7 {
            let (f, v) = (
                format!("f{i}").into_bytes(),
                vec![b'a' + (i % 26) as u8; i * 10],
            );
            let _: i64 = redis::cmd("HSET")
                .arg(&key)
                .arg(&f)
                .arg(&v)
                .query(&mut con)
                .unwrap();
            model.entry(key.clone()).or_default().insert(f, v);
        }
    }
    let hgetall = |con: &mut redis::Connection, key: &str| -> HashMap<Vec<u8>, Vec<u8>> {
        redis::cmd("HGETALL").arg(key).query(con).unwrap()
    };
    let differs = |con: &mut redis::Connection, model: &Model, what: &str| -> Option<String> {
        let n: usize = redis::cmd("DBSIZE").query(con).unwrap();
        let hashes = model.len();
        if n != hashes && n != hashes + 1 {
            return Some(format!("{what}: {n} keys, {hashes} hashes"));
        }
        for (k, want) in model {
            let got = hgetall(con, k);
            if &got != want {
                return Some(format!(
                    "{what}: {k}: {} fields, want {}",
                    got.len(),
                    want.len()
                ));
            }
        }
        None
    };
    let check = |con: &mut redis::Connection, model: &Model, what: &str| {
        if let Some(why) = differs(con, model, what) {
            panic!("{why}");
        }
    };
    let original = model.clone();
    // Writes: (key, field, Some(value) for HSET, None for HDEL).
    type Write = (String, Vec<u8>, Option<Vec<u8>>);
    let random_writes =
        |con: &mut Connection, rng: &mut Rng, model: &mut Model, n: usize| -> Vec<Write> {
            let mut pipe = redis::pipe();
            let mut writes = Vec::new();
            for i in 0..n {
                let key = if rng.below(2) == 0 {
                    "big".to_string()
                } else {
                    format!("small:{}", rng.below(50))
                };
                let f = format!("field:{}", rng.below(FIELDS + 1000)).into_bytes();
                let del = rng.below(3) == 0 && key == "big";
                let v = (!del).then(|| format!("new {}", rng.below(1_000_000)).into_bytes());
                match &v {
                    Some(v) => {
                        pipe.cmd("HSET").arg(&key).arg(&f).arg(v).ignore();
                        model
                            .entry(key.clone())
                            .or_default()
                            .insert(f.clone(), v.clone());
                    }
                    None => {
                        pipe.cmd("HDEL").arg(&key).arg(&f).ignore();
                        model.entry(key.clone()).or_default().remove(&f);
                    }
                }
                pipe.cmd("SET").arg("seq").arg(i).ignore();
                writes.push((key, f, v));
            }
            let _: () = pipe.query(con).unwrap();
            writes
        };
    let reply = raw_cmd(&server, &["BGSAVE"]);
    assert_eq!(show(&reply), show(STARTED), "BGSAVE");
    let writes = random_writes(&mut con, &mut rng, &mut model, 3000);
    wait_idle(&mut con);
    check(&mut con, &model, "live");
    kill(server);
    // The snapshot alone: each hash at the barrier.
    let snap_only = scratch.path().join("snap-only");
    copy_dir(&dir.join("snapshotdir"), &snap_only.join("snapshotdir"));
    let server = start(&snap_only, &["--save", ""]);
    let mut con = server.conn();
    let seq: Option<usize> = redis::cmd("GET").arg("seq").query(&mut con).unwrap();
    // The cut may also fall between a write and its `SET seq` (two reads,
    // two batches): then that write is in too.
    let upto = seq.map_or(0, |i| i + 1);
    let at = |n: usize| {
        let mut m = original.clone();
        for (k, f, v) in &writes[..n.min(writes.len())] {
            let h = m.entry(k.clone()).or_default();
            match v {
                Some(v) => h.insert(f.clone(), v.clone()),
                None => h.remove(f),
            };
        }
        m
    };
    if let Some(why) = differs(&mut con, &at(upto), "the snapshot at the barrier") {
        if differs(&mut con, &at(upto + 1), "the snapshot at the barrier").is_some() {
            panic!("{why}");
        }
    }
    kill(server);
    // The snapshot and the log, after SIGKILL: the latest state.
    let server = ServerProc::start_in(&dir, &args);
    let mut con = server.conn();
    check(&mut con, &model, "snapshot and log");
    // A delta snapshot after the restart's full one, more writes, SIGKILL.
    let reply = raw_cmd(&server, &["BGSAVE"]);
    assert_eq!(show(&reply), show(STARTED), "BGSAVE");
    wait_idle(&mut con);
    let _ = random_writes(&mut con, &mut rng, &mut model, 500);
    let reply = raw_cmd(&server, &["BGSAVE"]);
    assert_eq!(show(&reply), show(STARTED), "BGSAVE (delta)");
    let _ = random_writes(&mut con, &mut rng, &mut model, 500);
    wait_idle(&mut con);
    kill(server);
    let server = ServerProc::start_in(&dir, &args);
    let mut con = server.conn();
    check(&mut con, &model, "full, delta and log");
    kill(server);
}

/// Sum of the sizes of the snapshot files of `dir` whose name ends with
/// `suffix`.
pub(crate) fn files_bytes(dir: &Path, suffix: &str) -> u64 {
    snapshot_files(dir)
        .iter()
        .filter(|n| n.ends_with(suffix))
        .map(|n| fs::metadata(dir.join(n)).map_or(0, |m| m.len()))
        .sum()
}

/// M2.1: a delta after a few SETRANGEs and an APPEND on a 4 MiB value
/// writes the chunks they changed (64 KiB each), not the value: the delta's
/// files hold under 300 KiB, and a restart with the log off (the chain is
/// all there is) brings back the exact value. A second delta on top of
/// the first patches again; `check-snapshot` reads the chain. Random
/// bytes, so compression hides nothing.
#[test]
fn a_delta_after_setrange_on_a_big_value_writes_its_changed_chunks() {
    if skip() {
        return;
    }
    let mut rng = Rng::new(seed("a_delta_after_setrange_on_a_big_value"));
    let scratch = ScratchDir::new("snapshot-big-delta");
    let dir = scratch.path();
    let snapdir = dir.join("snapshotdir");
    let args = ["--save", "", "--threads", "2"];
    let server = start(dir, &args);
    let mut con = server.conn();
    let mut big = random_bytes(&mut rng, 4 << 20);
    let mut model = State::new();
    preload(&mut con, &mut model, "small:", 200, 100, &mut rng);
    run_ops(
        &mut con,
        &[Op::Set(b"big".to_vec(), big.clone())],
        &mut model,
        &mut 0,
        "the big value",
    );
    let info = bgsave(&server, &mut con);
    info.expect("first BGSAVE", &[("rdb_last_snapshot_kind", "full")]);
    let full = info.num("rdb_last_snapshot_bytes");
    assert!(full > 4 << 20, "the full snapshot holds the value: {full}");
    // Two SETRANGEs on two chunks, and an APPEND past the end.
    let mut edit = |con: &mut Connection, args: &[&[u8]], model: &mut State| {
        let mut c = redis::cmd(std::str::from_utf8(args[0]).unwrap());
        for a in &args[1..] {
            c.arg(*a);
        }
        let len: i64 = c.query(con).expect("SETRANGE / APPEND");
        match args[0] {
            b"SETRANGE" => {
                let at: usize = std::str::from_utf8(args[2]).unwrap().parse().unwrap();
                big[at..at + args[3].len()].copy_from_slice(args[3]);
            }
            _ => big.extend_from_slice(args[2]),
        }
        assert_eq!(len as usize, big.len());
        model.insert(
            (0, b"big".to_vec()),
            Entry {
                value: big.clone(),
                expire_at: None,
            },
        );
    };
    let at1 = (3 * 65536 + 10).to_string();
    let at2 = (40 * 65536 + 7).to_string();
    edit(
        &mut con,
        &[b"SETRANGE", b"big", at1.as_bytes(), b"first"],
        &mut model,
    );
    edit(
        &mut con,
        &[b"SETRANGE", b"big", at2.as_bytes(), b"second"],
        &mut model,
    );
    edit(&mut con, &[b"APPEND", b"big", b"appended"], &mut model);
    let info = bgsave(&server, &mut con);
    info.expect("second BGSAVE", &[("rdb_last_snapshot_kind", "delta")]);
    let delta = info.num("rdb_last_snapshot_bytes");
    let on_disk = files_bytes(&snapdir, ".delta.s0.kvs") + files_bytes(&snapdir, ".delta.s1.kvs");
    eprintln!(
        "full snapshot {full} bytes; delta after 2 SETRANGEs and an APPEND on a 4 MiB value: \
         {delta} bytes ({on_disk} bytes of files)"
    );
    assert!(delta < 300 * 1024, "delta of {delta} bytes");
    assert!(on_disk < 300 * 1024, "delta files of {on_disk} bytes");
    // A second delta, again on the first chunk changed.
    let at3 = (3 * 65536 + 12).to_string();
    edit(
        &mut con,
        &[b"SETRANGE", b"big", at3.as_bytes(), b"again"],
        &mut model,
    );
    let info = bgsave(&server, &mut con);
    info.expect("third BGSAVE", &[("rdb_last_snapshot_kind", "delta")]);
    assert!(
        info.num("rdb_last_snapshot_bytes") < 200 * 1024,
        "{:?}",
        info.0
    );
    drop(con);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    // check-snapshot reads the patches (as keys of their files).
    check_snapshot_is_clean(&snapdir);
    let server = start(dir, &args);
    assert_state(&server, &model, "after a restart on full + 2 deltas");
    let mut con = server.conn();
    let got: Vec<u8> = query(&mut con, &["GET", "big"]);
    assert!(got == big, "the big value after the restart differs");
    drop(con);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// M2.1: a delta after a few HSETs and an HDEL on a 300k-field hash, and
/// a few SADDs and SREMs on a 300k-member set, writes the segments those
/// writes changed (a few KiB each), not the values: the delta is under
/// 300 KiB where the full snapshot is megabytes, and a restart with the
/// log off (the chain is all there is) brings back both exactly. A
/// second delta on top of the first patches again; `check-snapshot`
/// reads the chain.
#[test]
fn a_delta_after_hset_and_srem_on_big_collections_writes_their_changed_segments() {
    use std::collections::{HashMap, HashSet};
    if skip() {
        return;
    }
    let scratch = ScratchDir::new("snapshot-big-coll-delta");
    let dir = scratch.path();
    let snapdir = dir.join("snapshotdir");
    let args = ["--save", "", "--threads", "2"];
    let server = start(dir, &args);
    let mut con = server.conn();
    const N: usize = 300_000;
    let mut hash: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
    let mut set: HashSet<Vec<u8>> = HashSet::new();
    for chunk in 0..N / 1000 {
        let mut h = redis::cmd("HSET");
        h.arg("bighash");
        let mut s = redis::cmd("SADD");
        s.arg("bigset");
        for i in chunk * 1000..(chunk + 1) * 1000 {
            let (f, v) = (
                format!("field:{i}").into_bytes(),
                format!("value {i}").into_bytes(),
            );
            h.arg(&f).arg(&v);
            s.arg(&f);
            hash.insert(f.clone(), v);
            set.insert(f);
        }
        let _: i64 = h.query(&mut con).unwrap();
        let _: i64 = s.query(&mut con).unwrap();
    }
    for i in 0..100 {
        let _: () = query(&mut con, &["SET", &format!("small:{i}"), "v"]);
    }
    let info = bgsave(&server, &mut con);
    info.expect("first BGSAVE", &[("rdb_last_snapshot_kind", "full")]);
    let full = info.num("rdb_last_snapshot_bytes");
    assert!(full > 5_000_000, "the full snapshot holds them: {full}");
    let hset = |con: &mut Connection, hash: &mut HashMap<Vec<u8>, Vec<u8>>, f: &str, v: &str| {
        let _: i64 = query(con, &["HSET", "bighash", f, v]);
        hash.insert(f.as_bytes().to_vec(), v.as_bytes().to_vec());
    };
    hset(&mut con, &mut hash, "field:10", "changed");
    hset(&mut con, &mut hash, "a new field", "new");
    let n: i64 = query(&mut con, &["HDEL", "bighash", "field:20"]);
    assert_eq!(n, 1);
    hash.remove(&b"field:20"[..]);
    let n: i64 = query(&mut con, &["SREM", "bigset", "field:30", "field:31"]);
    assert_eq!(n, 2);
    set.remove(&b"field:30"[..]);
    set.remove(&b"field:31"[..]);
    let n: i64 = query(&mut con, &["SADD", "bigset", "a new member"]);
    assert_eq!(n, 1);
    set.insert(b"a new member".to_vec());
    let info = bgsave(&server, &mut con);
    info.expect("second BGSAVE", &[("rdb_last_snapshot_kind", "delta")]);
    let delta = info.num("rdb_last_snapshot_bytes");
    eprintln!(
        "full snapshot {full} bytes; delta after 2 HSETs, 1 HDEL, 2 SREMs and 1 SADD \
         on a {N}-field hash and a {N}-member set: {delta} bytes"
    );
    assert!(delta < 300 * 1024, "delta of {delta} bytes");
    hset(&mut con, &mut hash, "field:10", "again");
    let info = bgsave(&server, &mut con);
    info.expect("third BGSAVE", &[("rdb_last_snapshot_kind", "delta")]);
    assert!(
        info.num("rdb_last_snapshot_bytes") < 200 * 1024,
        "{:?}",
        info.0
    );
    drop(con);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
    check_snapshot_is_clean(&snapdir);
    let server = start(dir, &args);
    let mut con = server.conn();
    let got: HashMap<Vec<u8>, Vec<u8>> = query(&mut con, &["HGETALL", "bighash"]);
    assert!(
        got == hash,
        "the hash after a restart: {} fields",
        got.len()
    );
    let got: HashSet<Vec<u8>> = query(&mut con, &["SMEMBERS", "bigset"]);
    assert!(got == set, "the set after a restart: {} members", got.len());
    let n: i64 = query(&mut con, &["DBSIZE"]);
    assert_eq!(n, 102);
    drop(con);
    shutdown(server, &["SHUTDOWN", "NOSAVE"]);
}

/// `kv-server check-snapshot DIR` reads every file of the chain (patches
/// included) and reports no error.
fn check_snapshot_is_clean(snapdir: &Path) {
    let out = Command::new(server_bin())
        .arg("check-snapshot")
        .arg(snapdir)
        .output()
        .expect("kv-server check-snapshot");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "check-snapshot: {text}");
    assert!(!text.contains("ERROR"), "check-snapshot: {text}");
}
