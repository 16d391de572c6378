//! The append-only log end to end: I/O faults through the server's fault
//! seam (DEBUG AOF-FAULT) and on a real, full filesystem; reads that must
//! not reveal a write before it is durable; the fallback I/O paths; import
//! of a Redis AOF; restart after SIGKILL in every appendfsync mode.

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tests::{redis_server_bin, self_check_against_redis, RedisProc, ScratchDir, ServerProc, Tmpfs};

/// `DEBUG AOF-FAULT <args>`: the I/O fault seam of every shard's log.
fn aof_fault(con: &mut redis::Connection, args: &[&str]) {
    let _: () = redis::cmd("DEBUG")
        .arg("AOF-FAULT")
        .arg(args)
        .query(con)
        .unwrap();
}

fn info_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(con)
        .expect("INFO persistence");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{info}"))
        .trim()
        .to_string()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).expect("GET")
}

/// Sends `SET key value` on its own connection in a thread; the reply
/// arrives on the channel.
fn set_in_background(
    server: &ServerProc,
    key: &'static str,
    value: &'static str,
) -> mpsc::Receiver<redis::RedisResult<String>> {
    let client = server.client();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = client.get_connection().and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query::<String>(&mut c)
        });
        let _ = tx.send(r);
    });
    rx
}

/// SIGKILL, then a new server on the same data directory.
fn restart(server: ServerProc, args: &[&str]) -> ServerProc {
    let dir = server.data_dir();
    server.signal("KILL");
    drop(server);
    ServerProc::start_in(&dir, args)
}

const ALWAYS: &[&str] = &[
    "--appendfsync",
    "always",
    "--enable-debug-command",
    "yes",
    "--aof-segment-size",
    "256kb",
];

#[test]
fn a_failing_log_refuses_writes_keeps_reads_and_recovers() {
    for (op, errno, text) in [
        ("write", "EIO", "Input/output error"),
        ("sync", "ENOSPC", "No space left on device"),
    ] {
        let dir = ScratchDir::new("aof-fault");
        let server = ServerProc::start_in(dir.path(), ALWAYS);
        let mut con = server.conn();
        let _: () = redis::cmd("SET")
            .arg("before")
            .arg("1")
            .query(&mut con)
            .unwrap();
        assert_eq!(info_field(&mut con, "aof_last_write_status"), "ok");
        aof_fault(&mut con, &[op, errno]);
        // This write is executed but can't be made durable: no reply yet.
        let pending = set_in_background(&server, "during", "2");
        wait_until("aof_last_write_status:err", Duration::from_secs(10), || {
            info_field(&mut con, "aof_last_write_status") == "err"
        });
        assert!(
            pending.recv_timeout(Duration::from_millis(300)).is_err(),
            "a write was acknowledged while the log could not be written"
        );
        // New writes are refused, Redis's way.
        let err = redis::cmd("SET")
            .arg("refused")
            .arg("x")
            .query::<String>(&mut con)
            .unwrap_err();
        assert_eq!(err.code(), Some("MISCONF"), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("Errors writing to the AOF file: {text}")),
            "{err}"
        );
        // Reads of durable data keep working and do not wait.
        let t = Instant::now();
        assert_eq!(get(&mut con, "before").as_deref(), Some("1"));
        assert!(t.elapsed() < Duration::from_millis(500));
        // The disk recovers: the retry succeeds, the pending write is acknowledged.
        aof_fault(&mut con, &["OFF"]);
        let r = pending
            .recv_timeout(Duration::from_secs(10))
            .expect("the pending write is acknowledged after the retry");
        assert_eq!(r.unwrap(), "OK");
        assert_eq!(info_field(&mut con, "aof_last_write_status"), "ok");
        let _: () = redis::cmd("SET")
            .arg("after")
            .arg("3")
            .query(&mut con)
            .unwrap();
        drop(con);
        let server = restart(server, ALWAYS);
        let mut con = server.conn();
        for (k, v) in [("before", "1"), ("during", "2"), ("after", "3")] {
            assert_eq!(get(&mut con, k).as_deref(), Some(v), "{op} {errno}: {k}");
        }
        assert_eq!(get(&mut con, "refused"), None);
    }
}

/// As in Redis, `CONFIG SET appendonly no` is a way out of a failing log:
/// the write that waited for it is answered, writes are accepted again,
/// and INFO shows the log off and no write error.
#[test]
fn turning_a_failing_log_off_accepts_writes_again() {
    let dir = ScratchDir::new("aof-fault-off");
    let server = ServerProc::start_in(dir.path(), ALWAYS);
    let mut con = server.conn();
    aof_fault(&mut con, &["write", "EIO"]);
    let pending = set_in_background(&server, "during", "2");
    wait_until("aof_last_write_status:err", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "err"
    });
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .query(&mut con)
        .unwrap();
    let r = pending
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiting write is answered once the log is off");
    assert_eq!(r.unwrap(), "OK");
    assert_eq!(info_field(&mut con, "aof_enabled"), "0");
    assert_eq!(info_field(&mut con, "aof_last_write_status"), "ok");
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("3")
        .query(&mut con)
        .unwrap();
    assert_eq!(get(&mut con, "during").as_deref(), Some("2"));
    assert_eq!(get(&mut con, "after").as_deref(), Some("3"));
    aof_fault(&mut con, &["OFF"]);
}

/// The log is written with O_DIRECT so it never fills the page cache; the
/// start-up's reading of it must not either (a restart would otherwise hold
/// a large log twice in memory). Checked with `fincore` (util-linux) on the
/// segment files after a restart; skipped where it is missing.
#[test]
fn start_up_leaves_the_log_out_of_the_page_cache() {
    let fincore = |files: &[std::path::PathBuf]| -> Option<u64> {
        let out = Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .args(files)
            .output()
            .ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|w| w.parse::<u64>().ok())
                .sum()
        })
    };
    let dir = ScratchDir::new("aof-page-cache");
    let server = ServerProc::start_in(dir.path(), &["--save", "", "--aof-segment-size", "1mb"]);
    let mut con = server.conn();
    let value = "v".repeat(1000);
    for i in 0..3000 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(&value)
            .query(&mut con)
            .unwrap();
    }
    drop(con);
    let server = restart(server, &["--save", "", "--aof-segment-size", "1mb"]);
    let mut con = server.conn();
    assert_eq!(get(&mut con, "k2999").as_deref(), Some(value.as_str()));
    let segments: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("appendonlydir"))
        .unwrap()
        .flatten()
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert!(segments.len() >= 2, "{segments:?}");
    let Some(resident) = fincore(&segments) else {
        eprintln!("NOTE: fincore is not available; the page cache is not checked");
        return;
    };
    // The server's own writes since the restart are O_DIRECT too; allow a
    // few pages for anything else.
    assert!(
        resident <= 64 * 1024,
        "{resident} bytes of the log's segments are in the page cache after start-up"
    );
}

#[test]
fn a_read_never_reveals_a_write_that_is_not_durable() {
    let server = ServerProc::start(ALWAYS);
    let mut con = server.conn();
    let _: () = redis::cmd("MSET")
        .arg("k")
        .arg("old")
        .arg("other")
        .arg("durable")
        .query(&mut con)
        .unwrap();
    aof_fault(&mut con, &["sync", "EIO"]);
    let pending = set_in_background(&server, "k", "new");
    wait_until("the log to fail", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "err"
    });
    // A GET of k waits for its in-flight write ...
    let client = server.client();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = client.get_connection().and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            redis::cmd("GET").arg("k").query::<Option<String>>(&mut c)
        });
        let _ = tx.send(r);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "GET revealed a write that was not durable"
    );
    // ... while a key whose data is durable answers at once.
    let t = Instant::now();
    assert_eq!(get(&mut con, "other").as_deref(), Some("durable"));
    assert!(t.elapsed() < Duration::from_millis(500));
    aof_fault(&mut con, &["OFF"]);
    assert_eq!(
        pending
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap(),
        "OK"
    );
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(got.as_deref(), Some("new"));
}

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

/// Under `always` on io_uring with one shard, a commit after a fast one is
/// written inline (a blocking O_DSYNC pwrite on the worker thread): INFO
/// `aof_inline_commits` counts them, and the first commit of a log always
/// is one. The test seam `KV_AOF_INLINE_MAX_US=0` (no commit is fast
/// enough) keeps every commit on the ring, and so do several shards (a
/// blocked thread would hold up the other shards' requests). Either way
/// what was acknowledged is there after a SIGKILL. On epoll (no O_DSYNC
/// descriptor: the helper thread's pwrite and fdatasync) nothing is inline.
#[test]
fn always_commits_inline_after_a_fast_commit() {
    for (wrapper, threads, inline) in [
        (&[][..], "1", !tests::epoll_forced()),
        (&["env", "KV_AOF_INLINE_MAX_US=0"][..], "1", false),
        (&[][..], "2", false),
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

/// Writes, SIGKILL, restart: the data is back, for every fsync policy and
/// I/O path (io_uring + O_DIRECT, pwrite on a helper thread, buffered).
#[test]
fn every_mode_and_io_path_survives_sigkill() {
    for (fsync, io) in [
        ("always", "auto"),
        ("everysec", "auto"),
        ("no", "auto"),
        ("always", "pwrite"),
        ("everysec", "buffered"),
    ] {
        let args = ["--appendfsync", fsync, "--aof-io", io, "--threads", "2"];
        let dir = ScratchDir::new("aof-modes");
        let server = ServerProc::start_in(dir.path(), &args);
        let mut con = server.conn();
        let path = info_field(&mut con, "aof_enabled");
        assert_eq!(path, "1");
        for i in 0..200 {
            let _: () = redis::cmd("SET")
                .arg(format!("key:{i}"))
                .arg(format!("value:{i}"))
                .query(&mut con)
                .unwrap();
        }
        let _: () = redis::cmd("MSET")
            .arg("{a}x")
            .arg("1")
            .arg("{b}y")
            .arg("2")
            .arg("{c}z")
            .arg("3")
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("EXPIRE")
            .arg("key:7")
            .arg("1000")
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("SELECT").arg("5").query(&mut con).unwrap();
        let _: () = redis::cmd("SET")
            .arg("in5")
            .arg("five")
            .query(&mut con)
            .unwrap();
        let io_path = info_field(&mut con, "aof_io_path");
        let expected = match io {
            // everysec and no: a pwrite into the page cache.
            _ if fsync != "always" => "pwrite+buffered",
            // On epoll, the log takes the helper thread's pwrite path.
            "auto" if tests::epoll_forced() => "pwrite+direct",
            "auto" => "io_uring+direct",
            "pwrite" => "pwrite+direct",
            _ => "pwrite+buffered",
        };
        assert_eq!(io_path, expected, "{fsync} {io}");
        drop(con);
        let server = restart(server, &args);
        let mut con = server.conn();
        for i in 0..200 {
            assert_eq!(
                get(&mut con, &format!("key:{i}")),
                Some(format!("value:{i}")),
                "{fsync} {io}"
            );
        }
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg("{a}x")
            .arg("{b}y")
            .arg("{c}z")
            .query(&mut con)
            .unwrap();
        assert_eq!(
            vals,
            vec![Some("1".into()), Some("2".into()), Some("3".into())]
        );
        let ttl: i64 = redis::cmd("TTL").arg("key:7").query(&mut con).unwrap();
        assert!((990..=1000).contains(&ttl), "ttl {ttl}");
        let _: () = redis::cmd("SELECT").arg("5").query(&mut con).unwrap();
        assert_eq!(get(&mut con, "in5").as_deref(), Some("five"));
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

#[test]
fn imports_a_redis_aof_when_the_log_is_empty() {
    if redis_server_bin().is_none() {
        eprintln!("skipped: no redis-server on PATH");
        return;
    }
    let Some(redis) = RedisProc::start_with_plain_aof() else {
        return;
    };
    let mut rc = redis.conn();
    let _: () = redis::cmd("MSET")
        .arg("a")
        .arg("1")
        .arg("b")
        .arg("2")
        .query(&mut rc)
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg("e")
        .arg("5")
        .arg("EX")
        .arg("1000")
        .query(&mut rc)
        .unwrap();
    let _: i64 = redis::cmd("INCR").arg("a").query(&mut rc).unwrap();
    let _: () = redis::cmd("SELECT").arg("2").query(&mut rc).unwrap();
    let _: () = redis::cmd("SET").arg("z").arg("26").query(&mut rc).unwrap();
    let _: Result<(), _> = redis::cmd("SHUTDOWN").query(&mut rc);
    let dir = redis.data_dir();
    wait_until("redis-server to exit", Duration::from_secs(10), || {
        std::net::TcpStream::connect(redis.addr()).is_err()
    });
    let server = ServerProc::start_in(&dir, &[]);
    let mut con = server.conn();
    assert_eq!(get(&mut con, "a").as_deref(), Some("2"));
    assert_eq!(get(&mut con, "b").as_deref(), Some("2"));
    let ttl: i64 = redis::cmd("TTL").arg("e").query(&mut con).unwrap();
    assert!(ttl > 900, "ttl {ttl}");
    let _: () = redis::cmd("SELECT").arg("2").query(&mut con).unwrap();
    assert_eq!(get(&mut con, "z").as_deref(), Some("26"));
    // The import went into our log: it survives a restart without the
    // Redis files being read again (they are left as they were).
    assert!(dir.join("appendonlydir/appendonly.aof.manifest").exists());
    let server = restart(server, &[]);
    let mut con = server.conn();
    assert_eq!(get(&mut con, "a").as_deref(), Some("2"));
    assert!(!server.output().contains("Imported"), "imported twice");
}

/// A real, small filesystem that fills up: writes are refused with
/// MISCONF (ENOSPC), reads go on, and once space is freed the pending
/// writes land and nothing acknowledged is lost. Needs root (mount);
/// skipped otherwise.
#[test]
fn a_full_filesystem_refuses_writes_until_space_is_freed() {
    let scratch = ScratchDir::new("kv-fullfs");
    let Some(fs) = Tmpfs::mount(&scratch.path().join("fs"), "4m") else {
        return;
    };
    let mnt = fs.path().to_path_buf();
    let data = mnt.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Leave room for about two 512 KiB segments.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![1u8; 2 * 1024 * 1024 + 512 * 1024]).unwrap();
    let args = ["--appendfsync", "always", "--aof-segment-size", "512kb"];
    let server = ServerProc::start_in(&data, &args);
    let mut con = server.conn();
    let value = "v".repeat(16 * 1024);
    let mut acked = 0usize;
    // Fill until a write does not come back quickly: the log can't grow.
    let (tx, rx) = mpsc::channel();
    let client = server.client();
    let v2 = value.clone();
    thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        for i in 0..1000 {
            let r = redis::cmd("SET")
                .arg(format!("big:{i}"))
                .arg(&v2)
                .query::<String>(&mut c);
            if tx.send((i, r)).is_err() {
                return;
            }
        }
    });
    let stalled_at = loop {
        match rx.recv_timeout(Duration::from_secs(3)) {
            Ok((i, Ok(_))) => acked = i + 1,
            Ok((i, Err(e))) => panic!("write {i} failed: {e}"),
            Err(_) => break acked,
        }
        assert!(acked < 1000, "the filesystem never filled up");
    };
    assert!(stalled_at > 0);
    wait_until("aof_last_write_status:err", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "err"
    });
    let err = redis::cmd("SET")
        .arg("x")
        .arg("y")
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("MISCONF"), "{err}");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(get(&mut con, "big:0").as_deref(), Some(value.as_str()));
    // Free space: the retry succeeds and the stalled write is acknowledged.
    std::fs::remove_file(&filler).unwrap();
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok((i, Ok(_))) => assert_eq!(i, stalled_at),
        other => panic!("the stalled write did not complete: {other:?}"),
    }
    wait_until("aof_last_write_status:ok", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "ok"
    });
    drop(con);
    let server = restart(server, &args);
    let mut con = server.conn();
    for i in 0..=stalled_at {
        assert_eq!(
            get(&mut con, &format!("big:{i}")).map(|v| v.len()),
            Some(value.len()),
            "big:{i}"
        );
    }
    drop(con);
    drop(server);
}

/// Disk blocks held by the files under `dir` (what `du` counts).
fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            disk_use(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    total
}

/// Fifty SIGKILLs, each after a few writes and a restart: the log's disk
/// use and the segments a start reads depend on the data, not on how many
/// times the process died (each restart used to add a segment per shard,
/// all read at the next start), and every acknowledged key is back.
#[test]
fn fifty_crashes_keep_disk_use_and_start_up_flat() {
    if self_check_against_redis() {
        eprintln!("NOTE: tests kv-server's log files; skipped with KV_TEST_SERVER=redis");
        return;
    }
    let args = [
        "--threads",
        "2",
        "--appendfsync",
        "always",
        "--aof-segment-size",
        "1mb",
    ];
    let dir = ScratchDir::new("fifty-crashes");
    let mut server = ServerProc::start_in(dir.path(), &args);
    let log = dir.path().join("appendonlydir");
    let mut use_after = Vec::new();
    let mut starts = Vec::new();
    for cycle in 0..50 {
        let mut con = server.conn();
        for k in 0..20 {
            let () = redis::cmd("SET")
                .arg(format!("c{cycle}:{k}"))
                .arg("v".repeat(100))
                .query(&mut con)
                .unwrap();
        }
        drop(con);
        use_after.push(disk_use(&log));
        let started = Instant::now();
        server = restart(server, &args);
        starts.push(started.elapsed());
    }
    let mut con = server.conn();
    let mut missing = Vec::new();
    for cycle in 0..50 {
        for k in 0..20 {
            let key = format!("c{cycle}:{k}");
            if get(&mut con, &key).is_none() {
                missing.push(key);
            }
        }
    }
    assert!(missing.is_empty(), "lost after the crashes: {missing:?}");
    let segments = std::fs::read_dir(&log)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-0"))
        .count();
    println!(
        "disk use after crash 1, 10, 50: {} / {} / {} KiB; {segments} segments; starts: \
         first {:?}, last {:?}",
        use_after[0] / 1024,
        use_after[9] / 1024,
        use_after[49] / 1024,
        starts[0],
        starts[49]
    );
    // 100 KB of records fit the first 1 MiB segment of each shard: the same
    // files at the end as after the first crash (segment + spare a shard).
    assert!(segments <= 2, "{segments} segments after 50 crashes");
    assert!(
        use_after[49] <= use_after[0] + (1 << 20),
        "disk use grew from {} to {} bytes over 50 crashes",
        use_after[0],
        use_after[49]
    );
}

/// A new data directory with a few keys holds a few MiB, not a 64 MiB
/// segment and a 64 MiB spare per shard: segments grow with the log.
#[test]
fn an_almost_empty_data_dir_stays_small() {
    if self_check_against_redis() {
        return;
    }
    let dir = ScratchDir::new("small-dir");
    let server = ServerProc::start_in(dir.path(), &["--threads", "2"]);
    let mut con = server.conn();
    for i in 0..100 {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query(&mut con)
            .unwrap();
    }
    // The spares are made in the background after the first flush.
    thread::sleep(Duration::from_millis(500));
    let used = disk_use(dir.path());
    println!("data directory with 100 keys: {} KiB", used / 1024);
    assert!(used <= 8 << 20, "{used} bytes on disk for 100 keys");
    drop(con);
    drop(server);
}

/// A disk smaller than one default (64 MiB) segment per shard: segments
/// adapt to the free space, so writes are acknowledged, and they are back
/// after a restart. Needs root (mount); skipped otherwise.
#[test]
fn a_small_disk_takes_segments_it_can_hold() {
    if self_check_against_redis() {
        return;
    }
    let scratch = ScratchDir::new("kv-smallfs");
    let Some(fs) = Tmpfs::mount(&scratch.path().join("fs"), "24m") else {
        return;
    };
    let mnt = fs.path().to_path_buf();
    let data = mnt.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let args = ["--threads", "2", "--appendfsync", "always"];
    let server = ServerProc::start_in(&data, &args);
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let value = "v".repeat(10_000);
    for i in 0..600 {
        let r: redis::RedisResult<String> = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(&value)
            .query(&mut con);
        if let Err(e) = r {
            panic!("SET {i} of 600 (6 MB on a 24 MB disk) failed: {e}");
        }
    }
    drop(con);
    let server = restart(server, &args);
    let mut con = server.conn();
    let n: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 600);
    drop(con);
    drop(server);
}

/// Two servers never share a data directory (they would write the same
/// log) or a port (SO_REUSEPORT would otherwise let the second join).
#[test]
fn a_second_server_on_the_same_dir_or_port_refuses_to_start() {
    let dir = ScratchDir::new("aof-lock");
    let server = ServerProc::start_in(dir.path(), &[]);
    let other = ScratchDir::new("aof-lock-other");
    for (port, data) in [
        ("0", dir.path()),
        (&*server.port().to_string(), other.path()),
    ] {
        let out = Command::new(tests::server_bin())
            .args(["--bind", "127.0.0.1", "--port", port, "--dir"])
            .arg(data)
            .output()
            .expect("run kv-server");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "port {port}: {text}");
        assert!(
            text.contains("another kv-server is using the data directory")
                || text.contains("Address already in use"),
            "{text}"
        );
    }
    let mut con = server.conn();
    assert_eq!(get(&mut con, "nothing"), None);
}

/// Hashes through both AOF paths: a Redis AOF holding hash commands
/// (HSET, HINCRBYFLOAT as Redis logs it, HDEL, EXPIRE) imports here to
/// redis-server's state; then `export-aof` of our rebased log (the
/// snapshot's hashes recreated as DEL, bounded HSETs and PEXPIREAT) imports
/// into a fresh server to the same state.
#[test]
fn hashes_import_from_a_redis_aof_and_export_back() {
    use std::collections::BTreeMap;
    if redis_server_bin().is_none() {
        eprintln!("skipped: no redis-server on PATH");
        return;
    }
    let Some(redis) = RedisProc::start_with_plain_aof() else {
        return;
    };
    let mut rc = redis.conn();
    let run = |con: &mut redis::Connection, args: &[String]| {
        let mut cmd = redis::cmd(&args[0]);
        for a in &args[1..] {
            cmd.arg(a);
        }
        let _: redis::Value = cmd.query(con).unwrap();
    };
    let mut cmds: Vec<Vec<String>> = Vec::new();
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    cmds.push(s(&["HSET", "small", "a", "1", "b", "2"]));
    cmds.push(s(&["HINCRBYFLOAT", "small", "c", "0.1"]));
    cmds.push(s(&["HINCRBY", "small", "a", "41"]));
    for chunk in 0..5 {
        let mut c = s(&["HSET", "big"]);
        for i in chunk * 700..(chunk + 1) * 700 {
            c.push(format!("field:{i}"));
            c.push(format!("{}", i * 7));
        }
        cmds.push(c);
    }
    cmds.push(s(&["HDEL", "big", "field:3", "field:4"]));
    cmds.push(s(&["HSET", "ttl", "f", "v"]));
    cmds.push(s(&["EXPIRE", "ttl", "100000"]));
    cmds.push(s(&["HSET", "gone", "f", "v"]));
    cmds.push(s(&["HDEL", "gone", "f"]));
    // Past the first log segments, so that the rewrite trims them and the
    // export recreates the hashes from the snapshot.
    for i in 0..40 {
        cmds.push(vec![
            "HSET".into(),
            "pad".into(),
            i.to_string(),
            "x".repeat(100_000),
        ]);
    }
    for c in &cmds {
        run(&mut rc, c);
    }
    type State = BTreeMap<String, BTreeMap<String, String>>;
    let state = |con: &mut redis::Connection| -> State {
        ["small", "big", "ttl", "gone", "pad"]
            .iter()
            .map(|k| {
                (
                    k.to_string(),
                    redis::cmd("HGETALL").arg(*k).query(con).unwrap(),
                )
            })
            .collect()
    };
    let want = state(&mut rc);
    assert_eq!(want["big"].len(), 3498);
    let _: Result<(), _> = redis::cmd("SHUTDOWN").query(&mut rc);
    let dir = redis.data_dir();
    wait_until("redis-server to exit", Duration::from_secs(10), || {
        std::net::TcpStream::connect(redis.addr()).is_err()
    });
    let server = ServerProc::start_in(&dir, &[]);
    let mut con = server.conn();
    assert_eq!(state(&mut con), want, "imported from the Redis AOF");
    let ttl: i64 = redis::cmd("TTL").arg("ttl").query(&mut con).unwrap();
    assert!(ttl > 90_000, "ttl {ttl}");
    // Rebase our log on a snapshot, then export it.
    let _: String = redis::cmd("BGREWRITEAOF").query(&mut con).unwrap();
    wait_until("the rewrite", Duration::from_secs(30), || {
        info_field(&mut con, "aof_rewrites") != "0"
            && info_field(&mut con, "aof_rewrite_in_progress") == "0"
            && info_field(&mut con, "aof_rewrite_scheduled") == "0"
            && info_field(&mut con, "aof_last_bgrewrite_status") == "ok"
    });
    run(&mut con, &s(&["HSET", "small", "after", "rewrite"]));
    let mut want = want;
    want.get_mut("small")
        .unwrap()
        .insert("after".into(), "rewrite".into());
    server.signal("KILL");
    drop(server);
    let scratch = ScratchDir::new("hash-export");
    let fresh = scratch.path().join("fresh");
    std::fs::create_dir_all(&fresh).unwrap();
    let out = Command::new(tests::server_bin())
        .arg("export-aof")
        .arg(dir.join("appendonlydir"))
        .arg(fresh.join("appendonly.aof"))
        .output()
        .expect("run kv-server export-aof");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "export-aof: {text}");
    assert!(text.contains("Exported the state of snapshot"), "{text}");
    let exported = std::fs::read(fresh.join("appendonly.aof")).unwrap();
    assert!(
        exported
            .windows(6)
            .any(|w| w.eq_ignore_ascii_case(b"\r\nHSET")),
        "no HSET in the export"
    );
    let server = ServerProc::start_in(&fresh, &[]);
    let mut con = server.conn();
    assert_eq!(state(&mut con), want, "exported, then imported");
    let ttl: i64 = redis::cmd("TTL").arg("ttl").query(&mut con).unwrap();
    assert!(ttl > 90_000, "ttl {ttl}");
}
