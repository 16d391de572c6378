//! Lazy freeing: the lazyfree directives, UNLINK and FLUSHALL ASYNC on
//! the lazyfree thread.

use super::*;

/// The `lazyfree-lazy-*` directives (and `replica-lazy-flush`, with its
/// alias) as Redis 7.0 has them: `no` by default, CONFIG SET/GET, start
/// flags, Redis's error for a bad value.
#[test]
fn lazyfree_directives_get_and_set() {
    const NAMES: [&str; 7] = [
        "lazyfree-lazy-eviction",
        "lazyfree-lazy-expire",
        "lazyfree-lazy-server-del",
        "lazyfree-lazy-user-del",
        "lazyfree-lazy-user-flush",
        "replica-lazy-flush",
        "slave-lazy-flush",
    ];
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    let all: Vec<(String, String)> = cmd(&mut con, &["CONFIG", "GET", "*lazy*"]);
    let mut names: Vec<&str> = all.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(names, NAMES);
    assert!(all.iter().all(|(_, v)| v == "no"), "{all:?}");
    for name in NAMES {
        assert_eq!(
            cmd::<String>(&mut con, &["CONFIG", "SET", name, "yes"]),
            "OK"
        );
        assert_eq!(
            cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", name]),
            vec![name, "yes"]
        );
        assert_eq!(
            cmd_err(&mut con, &["CONFIG", "SET", name, "maybe"]),
            format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - argument must \
                 be 'yes' or 'no'"
            )
        );
        assert_eq!(
            cmd::<String>(&mut con, &["CONFIG", "SET", name, "no"]),
            "OK"
        );
    }
    // The alias is the same setting; both in one CONFIG SET: the last wins.
    cmd::<String>(&mut con, &["CONFIG", "SET", "slave-lazy-flush", "yes"]);
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "replica-lazy-flush"]),
        vec!["replica-lazy-flush", "yes"]
    );
    let both = [
        "CONFIG",
        "SET",
        "slave-lazy-flush",
        "yes",
        "replica-lazy-flush",
        "no",
    ];
    assert_eq!(cmd::<String>(&mut con, &both), "OK");
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "slave-lazy-flush"]),
        vec!["slave-lazy-flush", "no"]
    );
    drop(con);
    drop(server);

    let flags: Vec<String> = NAMES
        .iter()
        .flat_map(|n| [format!("--{n}"), "yes".to_string()])
        .collect();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let server = ServerProc::start(&flags);
    let mut con = server.conn();
    let all: Vec<(String, String)> = cmd(&mut con, &["CONFIG", "GET", "*lazy*"]);
    assert_eq!(all.len(), NAMES.len());
    assert!(all.iter().all(|(_, v)| v == "yes"), "{all:?}");
}

/// INFO memory's `lazyfree_pending_objects` and `lazyfreed_objects`.
fn lazyfree_counts(con: &mut Connection) -> (u64, u64) {
    let num = |con: &mut Connection, f: &str| {
        info_field(con, "memory", f)
            .unwrap_or_else(|| panic!("INFO memory has no {f}"))
            .parse::<u64>()
            .unwrap_or_else(|e| panic!("{f}: {e}"))
    };
    (
        num(con, "lazyfree_pending_objects"),
        num(con, "lazyfreed_objects"),
    )
}

/// Waits until the lazy-free thread has nothing pending; returns how many
/// objects it freed in all.
fn lazyfree_settled(con: &mut Connection) -> u64 {
    let mut freed = 0;
    wait_until(Duration::from_secs(30), "the lazy-free thread", || {
        let (pending, f) = lazyfree_counts(con);
        freed = f;
        pending == 0
    });
    freed
}

/// UNLINK hands values whose free effort is above the threshold to the
/// lazy-free thread; DEL only with `lazyfree-lazy-user-del yes`; implicit
/// deletes and expiry with their directives. Every value is a string of
/// one allocation today (never lazy at Redis's threshold of 64, as in
/// Redis), so the test lowers the threshold with DEBUG LAZYFREE-THRESHOLD
/// (ours).
#[test]
fn unlink_hands_big_values_to_the_lazyfree_thread() {
    if tests::self_check_against_redis() {
        return;
    }
    let server = ServerProc::start(&["--enable-debug-command", "yes", "--threads", "2"]);
    let mut con = server.conn();
    assert_eq!(lazyfree_counts(&mut con), (0, 0));
    let set = |con: &mut Connection, keys: &[&str]| {
        for k in keys {
            cmd::<String>(con, &["SET", k, "value"]);
        }
    };
    set(&mut con, &["a", "b"]);
    assert_eq!(cmd::<i64>(&mut con, &["UNLINK", "a", "b"]), 2);
    assert_eq!(lazyfree_settled(&mut con), 0, "a string is one allocation");

    cmd::<String>(&mut con, &["DEBUG", "LAZYFREE-THRESHOLD", "0"]);
    let keys: Vec<String> = (0..10).map(|i| format!("k{i}")).collect();
    let k: Vec<&str> = keys.iter().map(String::as_str).collect();
    set(&mut con, &k);
    // One key, then keys of both shards in one command.
    assert_eq!(cmd::<i64>(&mut con, &["UNLINK", k[0]]), 1);
    assert_eq!(
        cmd::<i64>(&mut con, &["UNLINK", k[1], k[2], k[3], "nope"]),
        3
    );
    assert_eq!(lazyfree_settled(&mut con), 4);
    // DEL frees at once: had it gone to the thread, it would be counted
    // before the UNLINK sent after it.
    assert_eq!(cmd::<i64>(&mut con, &["DEL", k[4], k[5]]), 2);
    assert_eq!(cmd::<i64>(&mut con, &["UNLINK", k[6]]), 1);
    assert_eq!(lazyfree_settled(&mut con), 5);
    cmd::<String>(
        &mut con,
        &["CONFIG", "SET", "lazyfree-lazy-user-del", "yes"],
    );
    assert_eq!(cmd::<i64>(&mut con, &["DEL", k[7], k[8]]), 2);
    assert_eq!(lazyfree_settled(&mut con), 7);

    // Overwrites and RENAME over a key: implicit deletes.
    set(&mut con, &["s1", "s2"]);
    set(&mut con, &["s1"]);
    assert_eq!(lazyfree_settled(&mut con), 7);
    cmd::<String>(
        &mut con,
        &["CONFIG", "SET", "lazyfree-lazy-server-del", "yes"],
    );
    set(&mut con, &["s1"]);
    assert_eq!(lazyfree_settled(&mut con), 8);
    assert_eq!(cmd::<String>(&mut con, &["RENAME", "s1", "s2"]), "OK");
    assert_eq!(lazyfree_settled(&mut con), 9);

    // An expired key found by a read.
    cmd::<String>(&mut con, &["CONFIG", "SET", "lazyfree-lazy-expire", "yes"]);
    cmd::<String>(&mut con, &["SET", "e", "v", "PX", "1"]);
    thread::sleep(Duration::from_millis(20));
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "e"]), None);
    assert_eq!(lazyfree_settled(&mut con), 10);
}

/// Sets `n` keys `<prefix><i>`, pipelined in batches.
fn fill_keys(server: &ServerProc, prefix: &str, n: usize) {
    const BATCH: usize = 10_000;
    let mut raw = server.raw();
    let mut i = 0;
    while i < n {
        let end = (i + BATCH).min(n);
        let mut buf = Vec::new();
        for j in i..end {
            let key = format!("{prefix}{j}");
            buf.extend_from_slice(
                format!("*3\r\n$3\r\nSET\r\n${}\r\n{key}\r\n$1\r\nv\r\n", key.len()).as_bytes(),
            );
        }
        raw.send(&buf).expect("send");
        let want = 5 * (end - i);
        let (got, _) = raw.read_while(Duration::from_secs(60), |b| b.len() >= want);
        assert_eq!(got.len(), want, "replies to SET {prefix}{i}..{end}");
        assert!(got.chunks(5).all(|r| r == b"+OK\r\n"), "a SET failed");
        i = end;
    }
}

/// FLUSHALL ASYNC on a keyspace of a million keys: empty for the client
/// as soon as the reply arrives, the pages dropped on the lazy-free thread
/// (counted per key, as Redis counts them). SYNC frees at once; without
/// an argument, `lazyfree-lazy-user-flush` decides; FLUSHDB ASYNC likewise.
/// The wall times are printed, not asserted.
#[test]
fn flushall_async_empties_at_once_and_frees_on_the_thread() {
    const KEYS: usize = 1_000_000;
    let server = ServerProc::start(&["--appendonly", "no", "--save", "", "--threads", "2"]);
    let mut con = server.conn();
    let freed = lazyfree_settled(&mut con);

    fill_keys(&server, "big:", KEYS);
    assert_eq!(cmd::<usize>(&mut con, &["DBSIZE"]), KEYS);
    let t = Instant::now();
    assert_eq!(cmd::<String>(&mut con, &["FLUSHALL", "ASYNC"]), "OK");
    let async_took = t.elapsed();
    assert_eq!(cmd::<usize>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "big:7"]), None);
    let freed = {
        let now = lazyfree_settled(&mut con);
        assert_eq!(now - freed, KEYS as u64, "FLUSHALL ASYNC");
        now
    };

    fill_keys(&server, "big:", KEYS);
    let t = Instant::now();
    assert_eq!(cmd::<String>(&mut con, &["FLUSHALL", "SYNC"]), "OK");
    let sync_took = t.elapsed();
    assert_eq!(cmd::<usize>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(lazyfree_settled(&mut con), freed, "FLUSHALL SYNC");
    println!(
        "FLUSHALL of {KEYS} keys (this build): ASYNC {:.1} ms, SYNC {:.1} ms",
        async_took.as_secs_f64() * 1e3,
        sync_took.as_secs_f64() * 1e3
    );

    fill_keys(&server, "small:", 1000);
    assert_eq!(cmd::<String>(&mut con, &["FLUSHDB"]), "OK");
    assert_eq!(lazyfree_settled(&mut con), freed, "FLUSHDB, user-flush no");
    cmd::<String>(
        &mut con,
        &["CONFIG", "SET", "lazyfree-lazy-user-flush", "yes"],
    );
    fill_keys(&server, "small:", 1000);
    assert_eq!(cmd::<String>(&mut con, &["FLUSHDB"]), "OK");
    assert_eq!(cmd::<usize>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(
        lazyfree_settled(&mut con),
        freed + 1000,
        "FLUSHDB, user-flush yes"
    );
    fill_keys(&server, "small:", 1000);
    assert_eq!(cmd::<String>(&mut con, &["FLUSHALL", "SYNC"]), "OK");
    assert_eq!(
        lazyfree_settled(&mut con),
        freed + 1000,
        "SYNC over user-flush"
    );
    cmd::<String>(
        &mut con,
        &["CONFIG", "SET", "lazyfree-lazy-user-flush", "no"],
    );
    fill_keys(&server, "small:", 1000);
    assert_eq!(cmd::<String>(&mut con, &["FLUSHDB", "ASYNC"]), "OK");
    assert_eq!(lazyfree_settled(&mut con), freed + 2000, "FLUSHDB ASYNC");
}
