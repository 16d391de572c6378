//! Redis AOFs: imported at start when our log is empty, and hashes
//! through both paths (a Redis AOF in, `export-aof` out and into a fresh
//! server).

use super::*;

#[test]
fn imports_a_redis_aof_when_the_log_is_empty() {
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

/// Hashes through both AOF paths: a Redis AOF holding hash commands
/// (HSET, HINCRBYFLOAT as Redis logs it, HDEL, EXPIRE) imports here to
/// redis-server's state; then `export-aof` of our rebased log (the
/// snapshot's hashes recreated as DEL, bounded HSETs and PEXPIREAT) imports
/// into a fresh server to the same state.
#[test]
fn hashes_import_from_a_redis_aof_and_export_back() {
    use std::collections::BTreeMap;
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
