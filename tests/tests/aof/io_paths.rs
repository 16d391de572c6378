//! The fsync policies and I/O paths: INFO `aof_io_path` following
//! `appendfsync`, commits written inline under `always` with one shard,
//! held batches with two, and the config directives' Redis names.

use super::*;

/// INFO's `aof_io_path` tells how the log writes under the policy in force
/// now: O_DIRECT (O_DSYNC, on the ring) only under `always`, a pwrite into
/// the page cache under `everysec` and `no`, following CONFIG SET.
#[test]
fn aof_io_path_follows_appendfsync() {
    let dir = ScratchDir::new("aof-io-path");
    let server = ServerProc::start_in(dir.path(), &["--appendfsync", "everysec"]);
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let always = if tests::epoll_forced() {
        "pwrite+direct"
    } else {
        "io_uring+direct"
    };
    assert_eq!(info_field(&mut con, "aof_io_path"), "pwrite+buffered");
    for (mode, expected) in [
        ("always", always),
        ("no", "pwrite+buffered"),
        ("always", always),
        ("everysec", "pwrite+buffered"),
    ] {
        let _: () = redis::cmd("CONFIG")
            .arg("SET")
            .arg("appendfsync")
            .arg(mode)
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("SET")
            .arg("k")
            .arg(mode)
            .query(&mut con)
            .unwrap();
        assert_eq!(info_field(&mut con, "aof_io_path"), expected, "{mode}");
    }
}

/// Under `always` on io_uring, with one shard or several, a commit after a
/// fast one is written inline (a blocking O_DSYNC pwrite on the worker
/// thread): INFO `aof_inline_commits` counts them, and the first commit of
/// a log always is one. The test seam `KV_AOF_INLINE_MAX_US=0` (no commit
/// is fast enough) keeps every commit on the ring. Either way what was
/// acknowledged is there after a SIGKILL. On epoll (no O_DSYNC descriptor:
/// the helper thread's pwrite and fdatasync) nothing is inline.
#[test]
fn always_commits_inline_after_a_fast_commit() {
    for (wrapper, threads, inline) in [
        (&[][..], "1", !tests::epoll_forced()),
        (&["env", "KV_AOF_INLINE_MAX_US=0"][..], "1", false),
        (&[][..], "2", !tests::epoll_forced()),
        (&["env", "KV_AOF_INLINE_MAX_US=0"][..], "2", false),
    ] {
        let dir = ScratchDir::new("aof-inline");
        let args = ["--appendfsync", "always", "--threads", threads];
        let dir_str = dir.path().to_str().unwrap();
        let with_dir = [&args[..], &["--dir", dir_str]].concat();
        // The later --dir wins over the one start_custom passes.
        let server = ServerProc::start_custom(wrapper, None, &with_dir);
        let mut con = server.conn();
        for i in 0..100 {
            let _: () = redis::cmd("SET")
                .arg(format!("key:{i}"))
                .arg(format!("value:{i}"))
                .query(&mut con)
                .unwrap();
        }
        let commits: u64 = info_field(&mut con, "aof_group_commits").parse().unwrap();
        let inlined: u64 = info_field(&mut con, "aof_inline_commits").parse().unwrap();
        assert!(commits >= 2, "{wrapper:?}: {commits} commits");
        if inline {
            assert!(inlined >= 1, "{wrapper:?}: {inlined} of {commits} inline");
        } else {
            assert_eq!(inlined, 0, "{wrapper:?}: {inlined} of {commits} inline");
        }
        drop(con);
        server.signal("KILL");
        drop(server);
        let server = ServerProc::start_in(dir.path(), &args);
        let mut con = server.conn();
        for i in 0..100 {
            assert_eq!(
                get(&mut con, &format!("key:{i}")),
                Some(format!("value:{i}")),
                "{wrapper:?}"
            );
        }
    }
}

/// Under `always` with two shards, batches of writes for a shard whose
/// commit is in flight wait in its held queue instead of waking it
/// (`worker::Held`): clients on both threads writing to keys of both
/// shards, alone and in pipelines with reads, get every reply in order
/// (a GET sees the SET before it, an INCR counts exactly), INFO
/// `aof_held_batches` shows the queue was used, and everything
/// acknowledged is there after a SIGKILL.
#[test]
fn always_with_two_shards_holds_writes_and_keeps_every_reply_in_order() {
    let dir = ScratchDir::new("aof-held");
    let args = ["--appendfsync", "always", "--threads", "2"];
    let server = ServerProc::start_in(dir.path(), &args);
    const CLIENTS: usize = 8;
    const ROUNDS: usize = 300;
    let workers: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let mut con = server.conn();
            thread::spawn(move || {
                for i in 0..ROUNDS {
                    // Writes only, one at a time: may be held.
                    let n: i64 = redis::cmd("INCR")
                        .arg(format!("c:{t}:{}", i % 4))
                        .query(&mut con)
                        .unwrap();
                    assert_eq!(n, (i / 4 + 1) as i64, "client {t} round {i}");
                    // A pipeline of writes to keys of both shards.
                    let mut p = redis::pipe();
                    for j in 0..4 {
                        p.cmd("SET").arg(format!("k:{t}:{i}:{j}")).arg(i).ignore();
                    }
                    let () = p.query(&mut con).unwrap();
                    // Writes and reads mixed: never held, still in order.
                    let (v, w): (String, String) = redis::pipe()
                        .cmd("SET")
                        .arg(format!("m:{t}"))
                        .arg(format!("v{i}"))
                        .ignore()
                        .cmd("GET")
                        .arg(format!("m:{t}"))
                        .cmd("GET")
                        .arg(format!("k:{t}:{i}:3"))
                        .query(&mut con)
                        .unwrap();
                    assert_eq!(
                        (v, w),
                        (format!("v{i}"), i.to_string()),
                        "client {t} round {i}"
                    );
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut con = server.conn();
    let held: u64 = info_field(&mut con, "aof_held_batches").parse().unwrap();
    assert!(held > 0, "no batch was held");
    drop(con);
    server.signal("KILL");
    drop(server);
    let server = ServerProc::start_in(dir.path(), &args);
    let mut con = server.conn();
    for t in 0..CLIENTS {
        for c in 0..4 {
            assert_eq!(
                get(&mut con, &format!("c:{t}:{c}")),
                Some((ROUNDS / 4).to_string())
            );
        }
        assert_eq!(
            get(&mut con, &format!("m:{t}")),
            Some(format!("v{}", ROUNDS - 1))
        );
        for i in (0..ROUNDS).step_by(37) {
            assert_eq!(get(&mut con, &format!("k:{t}:{i}:0")), Some(i.to_string()));
        }
    }
}

#[test]
fn config_directives_are_redis_names() {
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("append*")
        .query(&mut con)
        .unwrap();
    let pairs: Vec<(String, String)> = got
        .chunks(2)
        .map(|c| (c[0].clone(), c[1].clone()))
        .collect();
    for want in [
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("appenddirname", "appendonlydir"),
        ("appendfilename", "appendonly.aof"),
    ] {
        assert!(
            pairs.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} in {pairs:?}"
        );
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendfsync")
        .arg("always")
        .query(&mut con)
        .unwrap();
    assert_eq!(info_field(&mut con, "aof_appendfsync"), "always");
    let err = redis::cmd("DEBUG")
        .arg("AOF-FAULT")
        .arg("OFF")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(
        err.to_string().contains("DEBUG command not allowed"),
        "{err}"
    );
}
