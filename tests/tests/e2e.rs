//! End-to-end tests: the real server binary on a loopback port, the `redis`
//! crate (and raw TCP where exact bytes matter) as the client.
//!
//! Every expected error text and byte string here is what Redis 7 sends;
//! `KV_TEST_SERVER=redis cargo test -p tests --test e2e` runs this file
//! against `redis-server` to check the tests themselves.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, FromRedisValue};
use tests::resp::{self, Frame};
use tests::{wait_until, Fill, RawConn, Rng, Running, ServerProc};

/// How long a "the server must not answer yet" check waits.
const SILENCE: Duration = Duration::from_millis(300);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

fn cmd<T: FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{}: unexpected error {e}", args.join(" ")))
}

/// Runs a command that must fail; returns "CODE detail" (e.g. "ERR syntax error").
fn cmd_err(con: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("{}: expected an error, got {v:?}", args.join(" ")),
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_string(),
            _ => format!("{e}"),
        },
    }
}

/// Another client still gets served and the process is alive.
fn assert_serves(server: &mut Running) {
    let mut c = server.raw();
    assert_eq!(
        c.cmd(&["PING"]),
        b"+PONG\r\n",
        "server stopped serving new clients"
    );
    server.assert_running();
}

/// Sends `bytes` on a fresh connection and expects exactly `reply`, then close.
fn assert_reply_then_close(server: &mut Running, bytes: &[u8], reply: &[u8]) {
    let mut c = server.raw();
    c.send(bytes).expect("send");
    match c.read_until_closed(CLOSE_TIMEOUT) {
        Ok(got) => assert_eq!(
            resp::show(&got),
            resp::show(reply),
            "reply to {}",
            resp::show(bytes)
        ),
        Err(got) => panic!(
            "connection not closed after {} (received {})",
            resp::show(bytes),
            resp::show(&got)
        ),
    }
    assert_serves(server);
}

fn sorted(v: Vec<String>) -> Vec<String> {
    let mut v = v;
    v.sort();
    v
}

/// Full SCAN iteration; returns the set of keys seen.
fn scan_all(con: &mut Connection, opts: &[&str]) -> BTreeSet<String> {
    let mut cursor = "0".to_string();
    let mut keys = BTreeSet::new();
    let mut rounds = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(opts);
        let (next, batch): (String, Vec<String>) = cmd(con, &args);
        keys.extend(batch);
        cursor = next;
        rounds += 1;
        assert!(rounds < 100_000, "SCAN never returned cursor 0");
        if cursor == "0" {
            return keys;
        }
    }
}

fn info_field(con: &mut Connection, section: &str, field: &str) -> Option<String> {
    let text: String = cmd(con, &["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

fn wait_connected_clients(con: &mut Connection, n: usize) {
    wait_until(
        Duration::from_secs(10),
        "connected_clients to settle",
        || info_field(con, "clients", "connected_clients") == Some(n.to_string()),
    );
}

// ---------------------------------------------------------------- commands

#[test]
fn string_commands() {
    let server = ServerProc::start(&[]);
    let mut con = server.conn();

    assert_eq!(cmd::<String>(&mut con, &["SET", "foo", "bar"]), "OK");
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["GET", "foo"]).as_deref(),
        Some("bar")
    );
    assert_eq!(cmd::<Option<String>>(&mut con, &["GET", "nope"]), None);
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["SET", "foo", "x", "NX"]),
        None
    );
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["SET", "new", "x", "XX"]),
        None
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "new"]), 0);
    assert_eq!(
        cmd::<Option<String>>(&mut con, &["SET", "foo", "baz", "XX", "GET"]).as_deref(),
        Some("bar")
    );
    assert_eq!(cmd::<i64>(&mut con, &["SETNX", "foo", "q"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["SETNX", "nx", "q"]), 1);

    assert_eq!(cmd::<i64>(&mut con, &["INCR", "counter"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["INCRBY", "counter", "10"]), 11);
    assert_eq!(cmd::<i64>(&mut con, &["DECR", "counter"]), 10);
    assert_eq!(cmd::<i64>(&mut con, &["DECRBY", "counter", "-5"]), 15);
    assert_eq!(
        cmd::<String>(&mut con, &["INCRBYFLOAT", "counter", "0.5"]),
        "15.5"
    );
    assert_eq!(
        cmd_err(&mut con, &["INCR", "foo"]),
        "ERR value is not an integer or out of range"
    );
    assert_eq!(
        cmd_err(&mut con, &["INCRBYFLOAT", "foo", "1"]),
        "ERR value is not a valid float"
    );
    cmd::<()>(&mut con, &["SET", "max", "9223372036854775807"]);
    assert_eq!(
        cmd_err(&mut con, &["INCR", "max"]),
        "ERR increment or decrement would overflow"
    );

    assert_eq!(cmd::<i64>(&mut con, &["APPEND", "foo", "!!"]), 5);
    assert_eq!(cmd::<i64>(&mut con, &["STRLEN", "foo"]), 5);
    assert_eq!(cmd::<i64>(&mut con, &["STRLEN", "nope"]), 0);
    assert_eq!(
        cmd::<String>(&mut con, &["GETRANGE", "foo", "0", "2"]),
        "baz"
    );
    assert_eq!(
        cmd::<String>(&mut con, &["GETRANGE", "foo", "-2", "-1"]),
        "!!"
    );
    assert_eq!(cmd::<i64>(&mut con, &["SETRANGE", "foo", "1", "AZ"]), 5);
    assert_eq!(cmd::<String>(&mut con, &["GET", "foo"]), "bAZ!!");
    assert_eq!(cmd::<i64>(&mut con, &["SETRANGE", "pad", "3", "x"]), 4);
    assert_eq!(cmd::<Vec<u8>>(&mut con, &["GET", "pad"]), b"\0\0\0x");

    cmd::<()>(&mut con, &["MSET", "a", "1", "b", "2"]);
    assert_eq!(
        cmd::<Vec<Option<String>>>(&mut con, &["MGET", "a", "nope", "b"]),
        vec![Some("1".to_string()), None, Some("2".to_string())]
    );
    assert_eq!(cmd::<i64>(&mut con, &["MSETNX", "a", "9", "c", "3"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "c"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["MSETNX", "c", "3", "d", "4"]), 1);
    assert_eq!(cmd::<String>(&mut con, &["GETSET", "a", "10"]), "1");
    assert_eq!(cmd::<String>(&mut con, &["GETDEL", "a"]), "10");
    assert_eq!(cmd::<Option<String>>(&mut con, &["GETDEL", "a"]), None);

    cmd::<()>(&mut con, &["SETEX", "e", "100", "v"]);
    let ttl: i64 = cmd(&mut con, &["TTL", "e"]);
    assert!((1..=100).contains(&ttl), "TTL after SETEX 100: {ttl}");
    cmd::<()>(&mut con, &["PSETEX", "p", "100000", "v"]);
    let pttl: i64 = cmd(&mut con, &["PTTL", "p"]);
    assert!((1..=100_000).contains(&pttl), "PTTL after PSETEX: {pttl}");
    assert_eq!(cmd::<String>(&mut con, &["GETEX", "p", "PERSIST"]), "v");
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "p"]), -1);
    assert_eq!(cmd::<String>(&mut con, &["GETEX", "p", "EX", "50"]), "v");
    let ttl: i64 = cmd(&mut con, &["TTL", "p"]);
    assert!((1..=50).contains(&ttl), "TTL after GETEX EX 50: {ttl}");
    assert_eq!(
        cmd_err(&mut con, &["SET", "k", "v", "EX", "0"]),
        "ERR invalid expire time in 'set' command"
    );
    assert_eq!(
        cmd_err(&mut con, &["SET", "k", "v", "NX", "XX"]),
        "ERR syntax error"
    );
    assert_eq!(
        cmd_err(&mut con, &["GET"]),
        "ERR wrong number of arguments for 'get' command"
    );
    let unknown = cmd_err(&mut con, &["NOSUCHCMD", "x"]);
    assert!(
        unknown.starts_with("ERR unknown command 'NOSUCHCMD'"),
        "{unknown}"
    );
}

#[test]
fn key_commands() {
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    cmd::<()>(
        &mut con,
        &["MSET", "k1", "a", "k2", "b", "k3", "c", "other", "d"],
    );

    assert_eq!(
        cmd::<i64>(&mut con, &["EXISTS", "k1", "k2", "nope", "k1"]),
        3
    );
    assert_eq!(cmd::<String>(&mut con, &["TYPE", "k1"]), "string");
    assert_eq!(cmd::<String>(&mut con, &["TYPE", "nope"]), "none");
    assert_eq!(
        sorted(cmd(&mut con, &["KEYS", "k*"])),
        vec!["k1", "k2", "k3"]
    );
    assert_eq!(
        sorted(cmd(&mut con, &["KEYS", "*"])),
        vec!["k1", "k2", "k3", "other"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["KEYS", "zz*"]),
        Vec::<String>::new()
    );
    let random: String = cmd(&mut con, &["RANDOMKEY"]);
    assert!(
        ["k1", "k2", "k3", "other"].contains(&random.as_str()),
        "RANDOMKEY gave {random}"
    );
    assert_eq!(
        scan_all(&mut con, &["COUNT", "1"]),
        ["k1", "k2", "k3", "other"]
            .map(String::from)
            .into_iter()
            .collect()
    );
    assert_eq!(
        scan_all(&mut con, &["MATCH", "k*", "TYPE", "string"]),
        ["k1", "k2", "k3"].map(String::from).into_iter().collect()
    );

    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "k1", "100"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "nope", "100"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "k1", "200", "NX"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "k1", "50", "GT"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRE", "k1", "50", "LT"]), 1);
    let ttl: i64 = cmd(&mut con, &["TTL", "k1"]);
    assert!((1..=50).contains(&ttl), "TTL {ttl}");
    assert_eq!(cmd::<i64>(&mut con, &["PERSIST", "k1"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "k1"]), -1);
    assert_eq!(cmd::<i64>(&mut con, &["TTL", "nope"]), -2);
    assert_eq!(cmd::<i64>(&mut con, &["PTTL", "nope"]), -2);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIREAT", "k2", "4102444800"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRETIME", "k2"]), 4_102_444_800);
    assert_eq!(
        cmd::<i64>(&mut con, &["PEXPIRETIME", "k2"]),
        4_102_444_800_000
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["PEXPIREAT", "k2", "4102444800123"]),
        1
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["PEXPIRETIME", "k2"]),
        4_102_444_800_123
    );
    assert_eq!(cmd::<i64>(&mut con, &["EXPIRETIME", "k3"]), -1);
    assert_eq!(cmd::<i64>(&mut con, &["PEXPIRE", "k3", "100000"]), 1);
    let pttl: i64 = cmd(&mut con, &["PTTL", "k3"]);
    assert!((1..=100_000).contains(&pttl), "PTTL {pttl}");
    // A past time deletes the key.
    assert_eq!(cmd::<i64>(&mut con, &["EXPIREAT", "k3", "1"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "k3"]), 0);
    assert_eq!(
        cmd_err(&mut con, &["EXPIRE", "k1", "10", "NX", "XX"]),
        "ERR NX and XX, GT or LT options at the same time are not compatible"
    );

    // RENAME keeps the TTL; RENAMENX refuses an existing target.
    cmd::<()>(&mut con, &["RENAME", "k2", "renamed"]);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "k2"]), 0);
    assert_eq!(
        cmd::<i64>(&mut con, &["PEXPIRETIME", "renamed"]),
        4_102_444_800_123
    );
    assert_eq!(cmd::<i64>(&mut con, &["RENAMENX", "renamed", "k1"]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["RENAMENX", "renamed", "k9"]), 1);
    assert_eq!(
        cmd_err(&mut con, &["RENAME", "nope", "x"]),
        "ERR no such key"
    );

    assert_eq!(cmd::<i64>(&mut con, &["DEL", "k1", "nope", "k9"]), 2);
    assert_eq!(cmd::<i64>(&mut con, &["UNLINK", "other", "other"]), 1);
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 0);
    assert_eq!(cmd::<Option<String>>(&mut con, &["RANDOMKEY"]), None);
}

#[test]
fn keys_expire_lazily_and_actively() {
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    cmd::<()>(&mut con, &["SET", "keep", "v", "EX", "1000"]);

    // Lazy: the key is gone for readers once its time has passed.
    cmd::<()>(&mut con, &["SET", "short", "v", "PX", "100"]);
    wait_until(Duration::from_secs(10), "GET short to return nil", || {
        cmd::<Option<String>>(&mut con, &["GET", "short"]).is_none()
    });
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "short"]), 0);

    // Active: keys nobody touches again disappear from DBSIZE.
    let mut pipe = redis::pipe();
    for i in 0..200 {
        pipe.cmd("SET")
            .arg(format!("vol:{i}"))
            .arg("x")
            .arg("PX")
            .arg(100)
            .ignore();
    }
    pipe.query::<()>(&mut con).expect("pipelined SET PX");
    wait_until(
        Duration::from_secs(10),
        "active expiry to drop all volatile keys (DBSIZE back to 1)",
        || cmd::<i64>(&mut con, &["DBSIZE"]) == 1,
    );
    assert_eq!(cmd::<String>(&mut con, &["GET", "keep"]), "v");
}

#[test]
fn pipeline_of_10k_commands_replies_in_order() {
    let server = ServerProc::start(&["--threads", "4"]);
    let mut con = server.conn();
    const N: usize = 10_000;

    let mut pipe = redis::pipe();
    for i in 0..N {
        pipe.cmd("SET").arg(format!("key:{i}")).arg(i);
    }
    let replies: Vec<String> = pipe.query(&mut con).expect("SET pipeline");
    assert_eq!(replies.len(), N);
    assert!(replies.iter().all(|r| r == "OK"));

    let mut pipe = redis::pipe();
    for i in 0..N {
        pipe.cmd("GET").arg(format!("key:{i}"));
        pipe.cmd("INCR").arg("seq");
    }
    let replies: Vec<i64> = pipe.query(&mut con).expect("GET/INCR pipeline");
    assert_eq!(replies.len(), 2 * N);
    for i in 0..N {
        assert_eq!(replies[2 * i], i as i64, "GET key:{i} out of order");
        assert_eq!(replies[2 * i + 1], i as i64 + 1, "INCR #{i} out of order");
    }

    // Raw: 10k commands in one write, replies back to back in order.
    let mut raw = server.raw();
    let mut batch = Vec::new();
    for i in 0..N {
        batch.extend(resp::encode(&["ECHO", &i.to_string()]));
    }
    raw.send(&batch).expect("send batch");
    for i in 0..N {
        let s = i.to_string();
        let expected = format!("${}\r\n{s}\r\n", s.len());
        assert_eq!(
            resp::show(&raw.read_reply()),
            resp::show(expected.as_bytes()),
            "reply #{i}"
        );
    }
}

#[test]
fn pipelined_writes_are_seen_by_later_commands_in_the_pipeline() {
    // Single-key and cross-shard commands interleaved in one pipeline: each
    // must see the effects of every command before it.
    let server = ServerProc::start(&["--threads", "4"]);
    let mut con = server.conn();
    const N: i64 = 2000;
    let mut pipe = redis::pipe();
    pipe.cmd("SET").arg("k0").arg("v0").ignore();
    for i in 1..=N {
        let (key, prev) = (format!("k{i}"), format!("k{}", i - 1));
        pipe.cmd("SET").arg(&key).arg(format!("v{i}")).ignore();
        pipe.cmd("MGET").arg(&key).arg(&prev);
        pipe.cmd("DEL").arg(&prev);
        pipe.cmd("EXISTS").arg(&prev).arg(&key);
        pipe.cmd("INCR").arg("n");
    }
    pipe.cmd("DBSIZE");
    let replies: Vec<redis::Value> = pipe.query(&mut con).expect("pipeline");
    assert_eq!(replies.len() as i64, 4 * N + 1);
    for i in 1..=N {
        let r = &replies[(4 * (i - 1)) as usize..(4 * i) as usize];
        let mget: Vec<String> = redis::from_redis_value(r[0].clone()).expect("MGET reply");
        assert_eq!(
            mget,
            vec![format!("v{i}"), format!("v{}", i - 1)],
            "MGET #{i}"
        );
        assert_eq!(r[1], redis::Value::Int(1), "DEL #{i}");
        assert_eq!(r[2], redis::Value::Int(1), "EXISTS #{i}");
        assert_eq!(r[3], redis::Value::Int(i), "INCR #{i}");
    }
    assert_eq!(replies[(4 * N) as usize], redis::Value::Int(2), "DBSIZE");
}

#[test]
fn hundreds_of_connections() {
    let mut server = ServerProc::start(&[]);
    let mut conns: Vec<_> = (0..300).map(|_| server.raw()).collect();
    for (i, c) in conns.iter_mut().enumerate() {
        c.send_cmd(&["INCR", &format!("conn:{}", i % 7)]);
    }
    for c in &mut conns {
        let reply = resp::parse_one(&c.read_reply());
        assert!(
            matches!(reply, Frame::Int(n) if n >= 1),
            "INCR gave {reply:?}"
        );
    }
    let mut con = server.conn();
    wait_connected_clients(&mut con, 301);
    let total: i64 = (0..7)
        .map(|k| cmd::<i64>(&mut con, &["GET", &format!("conn:{k}")]))
        .sum();
    assert_eq!(total, 300);
    drop(conns);
    wait_connected_clients(&mut con, 1);

    // A client that sends a big pipeline and leaves without reading.
    let mut rude = server.raw();
    let batch: Vec<u8> = (0..10_000)
        .flat_map(|_| resp::encode(&["INCR", "rude"]))
        .collect();
    rude.send(&batch).expect("send");
    drop(rude);
    wait_connected_clients(&mut con, 1);
    assert_serves(&mut server);
}

#[test]
fn many_concurrent_clients_across_shards() {
    let server = ServerProc::start(&["--threads", "4"]);
    const CLIENTS: usize = 50;
    const OPS: usize = 200;
    const SHARED: usize = 16;
    let start = Arc::new(Barrier::new(CLIENTS));
    let handles: Vec<_> = (0..CLIENTS)
        .map(|t| {
            let mut con = server.conn();
            let start = Arc::clone(&start);
            thread::spawn(move || {
                start.wait();
                for i in 0..OPS {
                    let key = format!("c{t}:k{i}");
                    let val = format!("{t}-{i}");
                    cmd::<()>(&mut con, &["SET", &key, &val]);
                    cmd::<i64>(&mut con, &["INCR", &format!("shared:{}", i % SHARED)]);
                    if i % 10 == 0 {
                        assert_eq!(cmd::<String>(&mut con, &["GET", &key]), val);
                    }
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client thread panicked");
    }

    let mut con = server.conn();
    for t in 0..CLIENTS {
        let keys: Vec<String> = (0..OPS).map(|i| format!("c{t}:k{i}")).collect();
        let mut c = redis::cmd("MGET");
        c.arg(&keys);
        let vals: Vec<Option<String>> = c.query(&mut con).expect("MGET");
        for (i, v) in vals.iter().enumerate() {
            assert_eq!(v.as_deref(), Some(format!("{t}-{i}").as_str()), "c{t}:k{i}");
        }
    }
    let mut total = 0;
    for s in 0..SHARED {
        total += cmd::<i64>(&mut con, &["GET", &format!("shared:{s}")]);
    }
    assert_eq!(total, (CLIENTS * OPS) as i64, "lost INCRs on shared keys");
    assert_eq!(
        cmd::<i64>(&mut con, &["DBSIZE"]),
        (CLIENTS * OPS + SHARED) as i64
    );
}

#[test]
fn large_replies_from_another_shard_arrive_whole_and_in_order() {
    // A shard answering another thread's connection sends the replies on
    // the socket itself, as far as the socket takes them at once; the
    // connection's own thread must send the rest before anything else,
    // even when the client reads slowly.
    let server = ServerProc::start(&["--threads", "2", "--appendfsync", "always"]);
    let mut con = server.conn();
    const KEYS: usize = 8;
    const SIZE: usize = 4 << 20;
    let value = |k: usize| vec![b'a' + k as u8; SIZE];
    for k in 0..KEYS {
        let _: () = redis::cmd("SET")
            .arg(format!("big{k}"))
            .arg(value(k))
            .query(&mut con)
            .expect("SET big value");
    }
    // With 8 keys on 2 shards, some are on the other thread's shard
    // whichever thread took the connection.
    for k in 0..KEYS {
        let got: Vec<u8> = redis::cmd("GET")
            .arg(format!("big{k}"))
            .query(&mut con)
            .expect("GET big value");
        assert!(got == value(k), "GET big{k}: wrong or partial value");
        // A pipeline of one key's GETs is one batch for its shard.
        let mut pipe = redis::pipe();
        for _ in 0..3 {
            pipe.cmd("GET").arg(format!("big{k}"));
        }
        pipe.cmd("STRLEN").arg(format!("big{k}"));
        let (a, b, c, len): (Vec<u8>, Vec<u8>, Vec<u8>, usize) =
            pipe.query(&mut con).expect("pipelined GETs");
        assert!(a == value(k) && b == value(k) && c == value(k), "big{k}");
        assert_eq!(len, SIZE);
    }
    // A client that does not read for a while still gets every byte.
    let mut raw = server.raw();
    for k in 0..KEYS {
        raw.send_cmd(&["GET", &format!("big{k}")]);
        thread::sleep(Duration::from_millis(50));
        let reply = raw.read_reply();
        let header = format!("${SIZE}\r\n");
        assert_eq!(reply.len(), header.len() + SIZE + 2, "big{k} reply size");
        assert!(reply.starts_with(header.as_bytes()));
        assert!(reply[header.len()..header.len() + SIZE] == value(k)[..]);
        assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");
    }
}
#[test]
fn multi_key_commands_span_shards() {
    let server = ServerProc::start(&["--threads", "4"]);
    let mut con = server.conn();
    const N: usize = 300;
    let keys: Vec<String> = (0..N).map(|i| format!("mk:{i}")).collect();

    let mut mset = redis::cmd("MSET");
    for (i, k) in keys.iter().enumerate() {
        mset.arg(k).arg(format!("v{i}"));
    }
    mset.query::<()>(&mut con).expect("MSET");

    // MGET in argument order, with missing keys in between.
    let mut mget = redis::cmd("MGET");
    for k in &keys {
        mget.arg(k).arg(format!("{k}:missing"));
    }
    let vals: Vec<Option<String>> = mget.query(&mut con).expect("MGET");
    assert_eq!(vals.len(), 2 * N);
    for i in 0..N {
        assert_eq!(vals[2 * i].as_deref(), Some(format!("v{i}").as_str()));
        assert_eq!(vals[2 * i + 1], None);
    }

    let mut exists = redis::cmd("EXISTS");
    exists
        .arg(&keys)
        .arg("nope")
        .arg(&keys[0])
        .arg(&keys[N - 1]);
    assert_eq!(exists.query::<i64>(&mut con).expect("EXISTS"), N as i64 + 2);

    let mut del = redis::cmd("DEL");
    del.arg(&keys[..100]).arg("nope").arg(&keys[0]);
    assert_eq!(del.query::<i64>(&mut con).expect("DEL"), 100);
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), (N - 100) as i64);

    // RENAME across shards, keeping values and TTLs; onto existing keys.
    cmd::<()>(&mut con, &["EXPIRE", &keys[100], "1000"]);
    for (i, key) in keys.iter().enumerate().take(200).skip(100) {
        cmd::<()>(&mut con, &["RENAME", key, &format!("rn:{i}")]);
    }
    for (i, key) in keys.iter().enumerate().take(200).skip(100) {
        assert_eq!(cmd::<i64>(&mut con, &["EXISTS", key]), 0);
        assert_eq!(
            cmd::<String>(&mut con, &["GET", &format!("rn:{i}")]),
            format!("v{i}")
        );
    }
    let ttl: i64 = cmd(&mut con, &["TTL", "rn:100"]);
    assert!((1..=1000).contains(&ttl), "TTL lost in RENAME: {ttl}");
    cmd::<()>(&mut con, &["RENAME", "rn:101", &keys[200]]);
    assert_eq!(cmd::<String>(&mut con, &["GET", &keys[200]]), "v101");
    assert_eq!(cmd::<i64>(&mut con, &["RENAMENX", "rn:102", &keys[201]]), 0);
    assert_eq!(cmd::<i64>(&mut con, &["EXISTS", "rn:102"]), 1);

    // MSETNX is all or nothing across shards.
    let fresh: Vec<String> = (0..50).map(|i| format!("fresh:{i}")).collect();
    let mut msetnx = redis::cmd("MSETNX");
    for k in &fresh {
        msetnx.arg(k).arg("1");
    }
    msetnx.arg(&keys[250]).arg("clobber");
    assert_eq!(msetnx.query::<i64>(&mut con).expect("MSETNX"), 0);
    let mut exists = redis::cmd("EXISTS");
    exists.arg(&fresh);
    assert_eq!(exists.query::<i64>(&mut con).expect("EXISTS"), 0);
    assert_eq!(cmd::<String>(&mut con, &["GET", &keys[250]]), "v250");
    let mut msetnx = redis::cmd("MSETNX");
    for k in &fresh {
        msetnx.arg(k).arg("1");
    }
    assert_eq!(msetnx.query::<i64>(&mut con).expect("MSETNX"), 1);

    // KEYS and SCAN see every shard.
    let all: BTreeSet<String> = cmd::<Vec<String>>(&mut con, &["KEYS", "*"])
        .into_iter()
        .collect();
    let dbsize: i64 = cmd(&mut con, &["DBSIZE"]);
    assert_eq!(all.len() as i64, dbsize);
    assert_eq!(scan_all(&mut con, &["COUNT", "7"]), all);
    let expected_rn: BTreeSet<String> = (100..200)
        .filter(|&i| i != 101)
        .map(|i| format!("rn:{i}"))
        .collect();
    assert_eq!(scan_all(&mut con, &["MATCH", "rn:*"]), expected_rn);
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["KEYS", "rn:*"])
            .into_iter()
            .collect::<BTreeSet<_>>(),
        expected_rn
    );

    let mut unlink = redis::cmd("UNLINK");
    unlink.arg(all.iter().collect::<Vec<_>>());
    assert_eq!(unlink.query::<i64>(&mut con).expect("UNLINK"), dbsize);
    assert_eq!(cmd::<i64>(&mut con, &["DBSIZE"]), 0);
}

// ------------------------------------------------------------- atomicity

/// Runs `writer` once while `readers` threads loop `read` until it is done.
fn with_readers(
    server: &Running,
    readers: usize,
    writer: impl FnOnce(&mut Connection) + Send,
    read: impl Fn(&mut Connection) + Sync,
) -> u64 {
    let done = AtomicBool::new(false);
    let reads = AtomicU64::new(0);
    thread::scope(|s| {
        for _ in 0..readers {
            let con = server.conn();
            s.spawn(|| {
                let mut con = con;
                while !done.load(Ordering::Acquire) {
                    read(&mut con);
                    reads.fetch_add(1, Ordering::Relaxed);
                }
            });
        }
        let mut con = server.conn();
        // Signal the readers even if the writer panics.
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Release);
            }
        }
        let _done = Done(&done);
        writer(&mut con);
    });
    reads.load(Ordering::Relaxed)
}

const ATOMIC_KEYS: [&str; 10] = [
    "ak1", "ak2", "ak3", "ak4", "ak5", "ak6", "ak7", "ak8", "ak9", "ak10",
];

#[test]
fn mset_is_never_seen_half_applied() {
    let server = ServerProc::start(&["--threads", "4"]);
    const ROUNDS: usize = 3000;
    let seen = std::sync::Mutex::new(BTreeSet::new());
    let reads = with_readers(
        &server,
        3,
        |con| {
            for i in 0..ROUNDS {
                let mut c = redis::cmd("MSET");
                for k in ATOMIC_KEYS {
                    c.arg(k).arg(format!("v{i}"));
                }
                c.query::<()>(con).expect("MSET");
            }
        },
        |con| {
            let mut c = redis::cmd("MGET");
            c.arg(&ATOMIC_KEYS[..]);
            let vals: Vec<Option<String>> = c.query(con).expect("MGET");
            assert!(
                vals.iter().all(|v| *v == vals[0]),
                "MGET saw a half-applied MSET: {vals:?}"
            );
            seen.lock().unwrap().insert(vals[0].clone());
        },
    );
    assert!(reads > 0, "readers never ran");
    let distinct = seen.lock().unwrap().len();
    assert!(
        distinct >= 2,
        "readers saw only {distinct} distinct states: the test did not overlap with the writer"
    );
    let mut con = server.conn();
    let mut c = redis::cmd("MGET");
    c.arg(&ATOMIC_KEYS[..]);
    let last: Vec<Option<String>> = c.query(&mut con).expect("MGET");
    assert!(
        last.iter().all(|v| v.as_deref() == Some("v2999")),
        "{last:?}"
    );
}

#[test]
fn del_and_rename_are_never_seen_half_applied() {
    let server = ServerProc::start(&["--threads", "4"]);
    let reads = with_readers(
        &server,
        3,
        |con| {
            for i in 0..1000 {
                let mut c = redis::cmd("MSET");
                for k in ATOMIC_KEYS {
                    c.arg(k).arg(i);
                }
                c.query::<()>(con).expect("MSET");
                let mut c = redis::cmd("DEL");
                c.arg(&ATOMIC_KEYS[..]);
                assert_eq!(c.query::<i64>(con).expect("DEL"), 10);
            }
        },
        |con| {
            let mut c = redis::cmd("EXISTS");
            c.arg(&ATOMIC_KEYS[..]);
            let n: i64 = c.query(con).expect("EXISTS");
            assert!(n == 0 || n == 10, "EXISTS saw a half-applied MSET/DEL: {n}");
        },
    );
    assert!(reads > 0);

    // Four pairs: with 4 shards some pair surely spans two of them.
    let pairs = [
        ("ra1", "rb1"),
        ("ra2", "rb2"),
        ("ra3", "rb3"),
        ("ra4", "rb4"),
    ];
    let mut con = server.conn();
    for (a, _) in pairs {
        cmd::<()>(&mut con, &["SET", a, "x"]);
    }
    let reads = with_readers(
        &server,
        2,
        |con| {
            for _ in 0..500 {
                for (a, b) in pairs {
                    cmd::<()>(con, &["RENAME", a, b]);
                    cmd::<()>(con, &["RENAME", b, a]);
                }
            }
        },
        |con| {
            for (a, b) in pairs {
                let n: i64 = cmd(con, &["EXISTS", a, b]);
                assert_eq!(n, 1, "EXISTS {a} {b} during RENAME saw {n} keys");
            }
        },
    );
    assert!(reads > 0);
}

// ------------------------------------------------------------- databases

#[test]
fn select_flushdb_swapdb_dbsize() {
    let server = ServerProc::start(&[]);
    let mut db0 = server.conn();
    let mut db1 = server.conn();
    cmd::<()>(&mut db1, &["SELECT", "1"]);
    cmd::<()>(&mut db1, &["MSET", "a", "1", "b", "2"]);
    cmd::<()>(&mut db0, &["SET", "z", "0"]);
    assert_eq!(cmd::<i64>(&mut db0, &["DBSIZE"]), 1);
    assert_eq!(cmd::<i64>(&mut db1, &["DBSIZE"]), 2);
    assert_eq!(cmd::<Option<String>>(&mut db0, &["GET", "a"]), None);

    // SWAPDB is seen by every connection.
    cmd::<()>(&mut db0, &["SWAPDB", "0", "1"]);
    assert_eq!(cmd::<String>(&mut db0, &["GET", "a"]), "1");
    assert_eq!(cmd::<String>(&mut db1, &["GET", "z"]), "0");
    assert_eq!(cmd::<i64>(&mut db0, &["DBSIZE"]), 2);

    // A client that selects its database when it connects.
    let mut db5 = redis::Client::open(format!("redis://127.0.0.1:{}/5", server.port()))
        .expect("client")
        .get_connection()
        .expect("connect to db 5");
    cmd::<()>(&mut db5, &["SET", "five", "5"]);

    cmd::<()>(&mut db0, &["FLUSHDB"]);
    assert_eq!(cmd::<i64>(&mut db0, &["DBSIZE"]), 0);
    assert_eq!(cmd::<i64>(&mut db1, &["DBSIZE"]), 1);
    assert_eq!(cmd::<i64>(&mut db5, &["DBSIZE"]), 1);
    cmd::<()>(&mut db0, &["FLUSHALL"]);
    assert_eq!(cmd::<i64>(&mut db1, &["DBSIZE"]), 0);
    assert_eq!(cmd::<i64>(&mut db5, &["DBSIZE"]), 0);

    assert_eq!(
        cmd_err(&mut db0, &["SELECT", "16"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        cmd_err(&mut db0, &["SWAPDB", "0", "16"]),
        "ERR DB index is out of range"
    );
    cmd::<()>(&mut db0, &["SELECT", "15"]);

    let small = ServerProc::start(&["--databases", "4"]);
    let mut con = small.conn();
    cmd::<()>(&mut con, &["SELECT", "3"]);
    assert_eq!(
        cmd_err(&mut con, &["SELECT", "4"]),
        "ERR DB index is out of range"
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "databases"]),
        vec!["databases", "4"]
    );
}

// ------------------------------------------------------- connection state

#[test]
fn auth_with_requirepass() {
    let mut server = ServerProc::start(&["--requirepass", "s3cret"]);
    let mut raw = server.raw();
    assert_eq!(
        resp::show(&raw.cmd(&["GET", "k"])),
        resp::show(b"-NOAUTH Authentication required.\r\n")
    );
    assert_eq!(
        resp::show(&raw.cmd(&["AUTH", "wrong"])),
        resp::show(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    );
    assert_eq!(
        resp::show(&raw.cmd(&["AUTH", "default", "wrong"])),
        resp::show(b"-WRONGPASS invalid username-password pair or user is disabled.\r\n")
    );
    assert_eq!(
        resp::show(&raw.cmd(&["SET", "k", "v"])),
        resp::show(b"-NOAUTH Authentication required.\r\n")
    );
    assert_eq!(raw.cmd(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["GET", "k"]), b"$-1\r\n");
    assert_eq!(raw.cmd(&["SET", "k", "v"]), b"+OK\r\n");
    let mut raw2 = server.raw();
    assert_eq!(raw2.cmd(&["AUTH", "default", "s3cret"]), b"+OK\r\n");
    assert_eq!(raw2.cmd(&["GET", "k"]), b"$1\r\nv\r\n");

    // The client library: with the password it works, without it fails.
    let mut con = server.conn_with_password("s3cret").expect("AUTH via URL");
    assert_eq!(cmd::<String>(&mut con, &["GET", "k"]), "v");
    assert!(server.conn_with_password("nope").is_err());
    let mut anon = server.conn();
    let err = cmd_err(&mut anon, &["GET", "k"]);
    assert_eq!(err, "NOAUTH Authentication required.");
    assert_serves_with_auth(&mut server);
}

fn assert_serves_with_auth(server: &mut Running) {
    let mut c = server.raw();
    assert_eq!(c.cmd(&["AUTH", "s3cret"]), b"+OK\r\n");
    assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n");
    server.assert_running();
}

#[test]
fn auth_without_requirepass() {
    let server = ServerProc::start(&[]);
    let mut raw = server.raw();
    assert_eq!(
        resp::show(&raw.cmd(&["AUTH", "x"])),
        resp::show(b"-ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?\r\n")
    );
}

/// Redis 7.0's refusal in protected mode, word for word (redis-server
/// 7.0.15 sends it at accept, then closes).
const PROTECTED_MODE_DENIED: &str = "-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// A client connection to `to` from the local address `from`.
fn connect_from(from: std::net::IpAddr, to: std::net::SocketAddr) -> RawConn {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, None).expect("socket");
    socket
        .bind(&std::net::SocketAddr::new(from, 0).into())
        .unwrap_or_else(|e| panic!("cannot bind a client socket to {from}: {e}"));
    socket
        .connect_timeout(&to.into(), Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("cannot connect from {from} to {to}: {e}"));
    RawConn::from_stream(socket.into())
}

/// Reads without sending: what the server says at accept within 300 ms,
/// and whether it then closed.
fn greeting(conn: &mut RawConn) -> (String, Fill) {
    let (bytes, end) = conn.read_while(Duration::from_millis(300), |_| false);
    (resp::show(&bytes), end)
}

/// Whether a client from `from` is served (silence at accept, then PING
/// answered, maybe with NOAUTH) or refused (the DENIED text, then close); anything else fails.
fn served_from(from: std::net::IpAddr, to: std::net::SocketAddr) -> bool {
    let mut conn = connect_from(from, to);
    let (said, end) = greeting(&mut conn);
    if (said.as_str(), end)
        == (
            resp::show(PROTECTED_MODE_DENIED.as_bytes()).as_str(),
            Fill::Closed,
        )
    {
        return false;
    }
    assert_eq!(
        (said, end),
        (resp::show(b""), Fill::TimedOut),
        "from {from}"
    );
    let pong = resp::show(&conn.cmd(&["PING"]));
    assert!(
        pong == resp::show(b"+PONG\r\n")
            || pong == resp::show(b"-NOAUTH Authentication required.\r\n"),
        "from {from}: PING answered {pong}"
    );
    true
}

/// protected-mode (default yes) without a password refuses every client
/// that is not exactly 127.0.0.1 or ::1 with Redis's DENIED text, then
/// closes; a client of 127.0.0.2 (loopback, but not 127.0.0.1: Redis 7.0
/// refuses it too) shows it on any Linux host. CONFIG SET protected-mode
/// and requirepass apply to the next connection.
#[test]
fn protected_mode_refuses_clients_not_from_127_0_0_1() {
    let server = ServerProc::start(&[]);
    let (local, other) = ("127.0.0.1".parse().unwrap(), "127.0.0.2".parse().unwrap());
    let mut con = server.conn();
    let rejected = |con: &mut Connection| -> u64 {
        info_field(con, "stats", "rejected_connections")
            .and_then(|v| v.parse().ok())
            .expect("rejected_connections in INFO stats")
    };
    assert_eq!(rejected(&mut con), 0);
    let mut refused = connect_from(other, server.addr());
    assert_eq!(
        greeting(&mut refused),
        (resp::show(PROTECTED_MODE_DENIED.as_bytes()), Fill::Closed)
    );
    assert_eq!(rejected(&mut con), 1);
    assert!(served_from(local, server.addr()));

    cmd::<()>(&mut con, &["CONFIG", "SET", "protected-mode", "no"]);
    assert!(served_from(other, server.addr()), "protected-mode no");
    cmd::<()>(&mut con, &["CONFIG", "SET", "protected-mode", "yes"]);
    assert!(
        !served_from(other, server.addr()),
        "protected-mode yes again"
    );

    // With a password, protected mode has nothing to protect.
    cmd::<()>(&mut con, &["CONFIG", "SET", "requirepass", "pw"]);
    assert!(served_from(other, server.addr()), "with requirepass");
    let mut raw = connect_from(other, server.addr());
    assert_eq!(raw.cmd(&["AUTH", "pw"]), b"+OK\r\n");
    assert_eq!(raw.cmd(&["CONFIG", "SET", "requirepass", ""]), b"+OK\r\n");
    assert!(!served_from(other, server.addr()), "password removed");
    assert_eq!(rejected(&mut con), 3);
}

/// The same on a real non-loopback address of this host (the one a
/// default route would use), the server bound to it and to 127.0.0.1.
/// Skipped, with a note, on a host without one.
#[test]
fn protected_mode_refuses_a_non_loopback_address() {
    let Some(ip) = std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("203.0.113.1:9").and_then(|()| s.local_addr()))
        .ok()
        .map(|a| a.ip())
        .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
    else {
        eprintln!("skipped: this host has no non-loopback address with a route");
        return;
    };
    let server = ServerProc::start(&["--bind", &ip.to_string(), "127.0.0.1"]);
    let there = std::net::SocketAddr::new(ip, server.port());
    assert!(!served_from(ip, there), "protected-mode yes, no password");
    let mut con = server.conn();
    cmd::<()>(&mut con, &["CONFIG", "SET", "protected-mode", "no"]);
    assert!(served_from(ip, there));
}

#[test]
fn hello_speaks_resp2_only() {
    let server = ServerProc::start(&[]);
    let mut raw = server.raw();
    let noproto = resp::show(b"-NOPROTO unsupported protocol version\r\n");
    assert_eq!(resp::show(&raw.cmd(&["HELLO", "4"])), noproto);
    // RESP3 is not spoken yet (Redis itself would switch to it here).
    if !tests::self_check_against_redis() {
        assert_eq!(resp::show(&raw.cmd(&["HELLO", "3"])), noproto);
    }
    for args in [&["HELLO", "2"][..], &["HELLO"][..]] {
        let reply = resp::parse_one(&raw.cmd(args));
        let Frame::Array(Some(items)) = reply else {
            panic!("{args:?}: expected an array, got {reply:?}");
        };
        assert_eq!(items.len() % 2, 0, "{args:?}: odd field list {items:?}");
        let field = |name: &str| {
            items
                .chunks(2)
                .find(|kv| kv[0] == Frame::Bulk(Some(name.as_bytes().to_vec())))
                .map(|kv| kv[1].clone())
        };
        assert_eq!(field("server"), Some(Frame::Bulk(Some(b"redis".to_vec()))));
        assert_eq!(field("proto"), Some(Frame::Int(2)));
        assert!(field("version").is_some() && field("id").is_some());
    }
    assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");
}

#[test]
fn client_id_setname_getname_list_kill() {
    let mut server = ServerProc::start(&[]);
    let mut a = server.raw();
    let mut b = server.conn();
    let Frame::Int(id_a) = resp::parse_one(&a.cmd(&["CLIENT", "ID"])) else {
        panic!("CLIENT ID is not an integer");
    };
    let id_b: i64 = cmd(&mut b, &["CLIENT", "ID"]);
    assert_ne!(id_a, id_b);
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]), b"$-1\r\n");
    assert_eq!(a.cmd(&["CLIENT", "SETNAME", "worker-1"]), b"+OK\r\n");
    assert_eq!(a.cmd(&["CLIENT", "GETNAME"]), b"$8\r\nworker-1\r\n");
    assert_eq!(
        resp::show(&a.cmd(&["CLIENT", "SETNAME", "bad name"])),
        resp::show(b"-ERR Client names cannot contain spaces, newlines or special characters.\r\n")
    );

    let list: String = cmd(&mut b, &["CLIENT", "LIST"]);
    let lines: Vec<&str> = list.lines().collect();
    assert!(lines.len() >= 2, "CLIENT LIST: {list}");
    let line_a = lines
        .iter()
        .find(|l| l.starts_with(&format!("id={id_a} ")))
        .unwrap_or_else(|| panic!("client {id_a} missing from CLIENT LIST: {list}"));
    assert!(line_a.contains(" name=worker-1 "), "{line_a}");
    assert!(line_a.contains(" addr=127.0.0.1:"), "{line_a}");
    assert!(line_a.contains(" db=0 "), "{line_a}");
    let info_b: String = cmd(&mut b, &["CLIENT", "INFO"]);
    assert!(
        info_b.starts_with(&format!("id={id_b} ")),
        "CLIENT INFO: {info_b}"
    );

    assert_eq!(
        cmd::<i64>(&mut b, &["CLIENT", "KILL", "ID", &id_a.to_string()]),
        1
    );
    assert!(
        a.read_until_closed(CLOSE_TIMEOUT).is_ok(),
        "killed client still connected"
    );
    // (Redis removes it before replying; ours may take a moment.)
    wait_until(
        Duration::from_secs(10),
        "the killed client to leave CLIENT LIST",
        || {
            let list: String = cmd(&mut b, &["CLIENT", "LIST"]);
            !list.lines().any(|l| l.starts_with(&format!("id={id_a} ")))
        },
    );
    assert_eq!(
        cmd::<i64>(&mut b, &["CLIENT", "KILL", "ID", &id_a.to_string()]),
        0
    );
    assert_serves(&mut server);
}

#[test]
fn config_get_and_set() {
    let server = ServerProc::start(&["--maxclients", "123"]);
    let mut con = server.conn();
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "maxclients"]),
        vec!["maxclients", "123"]
    );
    assert_eq!(
        cmd::<String>(&mut con, &["CONFIG", "SET", "maxclients", "200"]),
        "OK"
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "maxclients"]),
        vec!["maxclients", "200"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "port"]),
        vec!["port".to_string(), server.port().to_string()]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "proto-max-bulk-len"]),
        vec!["proto-max-bulk-len", "536870912"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "client-query-buffer-limit"]),
        vec!["client-query-buffer-limit", "1073741824"]
    );
    let dir: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "dir"]);
    let expected_dir = server.data_dir().canonicalize().expect("data dir");
    assert_eq!(
        dir,
        vec!["dir".to_string(), expected_dir.display().to_string()]
    );

    // Globs: pairs of name and value, names matching the pattern.
    let maxes: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "maxc*"]);
    assert_eq!(maxes, vec!["maxclients", "200"]);
    let all: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "*"]);
    assert_eq!(all.len() % 2, 0);
    assert!(all
        .chunks(2)
        .any(|kv| kv[0] == "databases" && kv[1] == "16"));
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "no-such-option"]),
        Vec::<String>::new()
    );
    let err = cmd_err(&mut con, &["CONFIG", "SET", "no-such-option", "1"]);
    assert!(err.starts_with("ERR Unknown option"), "{err}");
    let err = cmd_err(&mut con, &["CONFIG", "SET", "maxclients", "abc"]);
    assert!(err.starts_with("ERR CONFIG SET failed"), "{err}");
    assert_eq!(cmd::<String>(&mut con, &["CONFIG", "RESETSTAT"]), "OK");
}

/// CVE-2022-36021: a glob that takes a backtracking matcher exponential
/// time (20 x `a*` then `b` against a key of 40 `a`s; `*?` 20 times then
/// `#` against the directive names) answers at once in KEYS, SCAN MATCH and
/// CONFIG GET, and another client of the same shard (one thread, one
/// shard) is served meanwhile.
#[test]
fn pathological_glob_patterns_answer_quickly() {
    const BOUND: Duration = Duration::from_secs(2);
    let server = ServerProc::start(&["--threads", "1"]);
    let long = "a".repeat(40);
    let hit = format!("{long}b");
    let mut con = server.raw();
    for key in [long.as_str(), hit.as_str(), "other"] {
        assert_eq!(con.cmd(&["SET", key, "v"]), b"+OK\r\n");
    }
    let keys_pattern = format!("{}b", "a*".repeat(20));
    let config_pattern = format!("{}#", "*?".repeat(20));
    let one_key = format!("*1\r\n$41\r\n{hit}\r\n");

    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let stop = Arc::clone(&stop);
        let mut other = server.raw();
        thread::spawn(move || {
            let (mut worst, mut served) = (Duration::ZERO, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                assert_eq!(other.cmd(&["GET", "other"]), b"$1\r\nv\r\n");
                worst = worst.max(start.elapsed());
                served += 1;
            }
            (worst, served)
        })
    };
    let mut timed = |args: &[&str], expected: &[u8]| {
        let start = Instant::now();
        con.send_cmd(args);
        let reply = match con.try_read_reply(BOUND) {
            tests::ReadOutcome::Reply(r) => r,
            other => panic!("{args:?}: no reply within {BOUND:?}: {other:?}"),
        };
        let took = start.elapsed();
        assert_eq!(resp::show(&reply), resp::show(expected), "{args:?}");
        took
    };
    let mut worst_glob = Duration::ZERO;
    for _ in 0..20 {
        worst_glob = worst_glob
            .max(timed(&["KEYS", &keys_pattern], one_key.as_bytes()))
            .max(timed(
                &["SCAN", "0", "MATCH", &keys_pattern, "COUNT", "1000"],
                format!("*2\r\n$1\r\n0\r\n{one_key}").as_bytes(),
            ))
            .max(timed(&["CONFIG", "GET", &config_pattern], b"*0\r\n"));
    }
    stop.store(true, Ordering::Relaxed);
    let (worst_other, served) = other.join().expect("the other client's thread panicked");
    eprintln!(
        "slowest glob command {worst_glob:?}; other client: {served} GETs, slowest {worst_other:?}"
    );
    assert!(served > 0, "the other client was never served");
    assert!(
        worst_other < BOUND,
        "the other client waited {worst_other:?} for a GET"
    );
}

/// `disable-thp` (default yes) turns transparent huge pages off for the
/// process, as the kernel reports in /proc/PID/status; `no` leaves them as
/// the process started. Redis only acts when the system setting is
/// `always` (its allocator never asks for huge pages), so in the harness
/// self-check only the config value is compared.
#[test]
fn disable_thp_turns_huge_pages_off_for_the_process() {
    let thp_enabled = |pid: u32| -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_string())
    };
    let ours_before = thp_enabled(std::process::id());
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "disable-thp"]),
        vec!["disable-thp", "yes"]
    );
    let err = cmd_err(&mut con, &["CONFIG", "SET", "disable-thp", "no"]);
    assert!(err.contains("immutable config"), "{err}");
    if tests::self_check_against_redis() {
        return;
    }
    // Kernels before 6.0 have no such line; nothing to check there.
    let Some(off) = thp_enabled(server.pid()) else {
        return;
    };
    assert_eq!(off, "0", "disable-thp yes leaves huge pages on");
    let mut kept = ServerProc::start(&["--disable-thp", "no"]);
    assert_eq!(thp_enabled(kept.pid()), ours_before);
    assert_serves(&mut kept);
}

#[test]
fn info_has_redis_sections_and_fields() {
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    let _others = [server.conn(), server.conn()];
    cmd::<()>(&mut con, &["SET", "a", "1"]);
    cmd::<()>(&mut con, &["SET", "b", "2", "EX", "1000"]);
    cmd::<()>(&mut con, &["SELECT", "3"]);
    cmd::<()>(&mut con, &["SET", "c", "3"]);

    let info: String = cmd(&mut con, &["INFO"]);
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Keyspace",
    ] {
        assert!(
            info.lines().any(|l| l == section),
            "INFO lacks {section}:\n{info}"
        );
    }
    for field in [
        "redis_version:",
        &format!("tcp_port:{}", server.port()),
        "process_id:",
        "connected_clients:",
        "used_memory:",
        "used_memory_human:",
        "total_commands_processed:",
        "total_connections_received:",
        "keyspace_hits:",
        "role:master",
        "used_cpu_sys:",
        "rdb_changes_since_last_save:",
        "aof_enabled:",
    ] {
        assert!(
            info.lines().any(|l| l.starts_with(field)),
            "INFO lacks {field}:\n{info}"
        );
    }
    let db0 = info
        .lines()
        .find(|l| l.starts_with("db0:"))
        .unwrap_or_else(|| panic!("INFO lacks db0:\n{info}"));
    assert!(db0.starts_with("db0:keys=2,expires=1,avg_ttl="), "{db0}");
    let db3 = info.lines().find(|l| l.starts_with("db3:"));
    assert_eq!(db3, Some("db3:keys=1,expires=0,avg_ttl=0"));
    assert!(
        !info.lines().any(|l| l.starts_with("db1:")),
        "empty db listed"
    );
    assert!(
        info.split("\r\n").count() > 10,
        "INFO lines must end in CRLF"
    );
    assert_eq!(
        info_field(&mut con, "server", "process_id"),
        Some(server.pid().to_string())
    );
    wait_connected_clients(&mut con, 3);

    let keyspace: String = cmd(&mut con, &["INFO", "keyspace"]);
    assert!(keyspace.starts_with("# Keyspace"), "{keyspace}");
    assert!(!keyspace.contains("redis_version"), "{keyspace}");
    let server_only: String = cmd(&mut con, &["INFO", "server"]);
    assert!(server_only.contains("redis_version:"));
    assert!(!server_only.contains("# Keyspace"));
}

#[test]
fn maxclients_refuses_the_extra_connection() {
    let mut server = ServerProc::start(&["--maxclients", "2"]);
    let mut first = server.conn();
    // The start-up probe's connection may still be counted for a moment.
    wait_connected_clients(&mut first, 1);
    let mut second = server.raw();
    assert_eq!(second.cmd(&["PING"]), b"+PONG\r\n");

    let mut third = server.raw();
    match third.read_until_closed(CLOSE_TIMEOUT) {
        Ok(got) => assert_eq!(
            resp::show(&got),
            resp::show(b"-ERR max number of clients reached\r\n")
        ),
        Err(got) => panic!(
            "third client not closed (got {}); maxclients 2 not enforced",
            resp::show(&got)
        ),
    }
    // The first two are unaffected; a slot frees up when one leaves.
    assert_eq!(cmd::<String>(&mut first, &["PING"]), "PONG");
    assert_eq!(second.cmd(&["PING"]), b"+PONG\r\n");
    drop(second);
    wait_connected_clients(&mut first, 1);
    assert_serves(&mut server);
}

#[test]
fn quit_replies_ok_and_closes() {
    let server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send_cmd(&["QUIT"]);
    assert_eq!(
        raw.read_until_closed(CLOSE_TIMEOUT).map(|b| resp::show(&b)),
        Ok(resp::show(b"+OK\r\n"))
    );
}

#[test]
fn shutdown_nosave_stops_the_process() {
    let mut server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(
        raw.read_until_closed(CLOSE_TIMEOUT).is_ok(),
        "connection still open after SHUTDOWN NOSAVE"
    );
    wait_until(Duration::from_secs(10), "the process to exit", || {
        !server.is_running()
    });
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = ServerProc::start(&[]);
    let mut conn = server.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    server.signal("TERM");
    wait_until(Duration::from_secs(10), "the process to exit", || {
        !server.is_running()
    });
    let status = server.exit_status().expect("exited");
    assert!(status.success(), "exit status {status:?}");
    let log = server.output();
    assert!(
        log.contains("Received SIGTERM scheduling shutdown..."),
        "{log}"
    );
    assert!(log.contains("ready to exit, bye bye"), "{log}");
}

// ---------------------------------------------------------------- protocol

#[test]
fn inline_commands() {
    let server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send(b"PING\r\n").unwrap();
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
    raw.send(b"SET greeting \"hello world\"\r\n").unwrap();
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    raw.send(b"\r\n\r\n  GET   greeting  \n").unwrap();
    assert_eq!(raw.read_reply(), b"$11\r\nhello world\r\n");
    raw.send(b"ECHO 'single quoted'\r\nECHO \"\\x41\\n\"\r\n")
        .unwrap();
    assert_eq!(raw.read_reply(), b"$13\r\nsingle quoted\r\n");
    assert_eq!(raw.read_reply(), b"$2\r\nA\n\r\n");
}

#[test]
fn truncated_frames_wait_for_the_rest() {
    let mut server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send(b"*2\r\n$3\r\nGET\r\n$3\r\nfo").unwrap();
    raw.assert_silent(SILENCE);
    assert_serves(&mut server);
    raw.send(b"o\r\n").unwrap();
    assert_eq!(raw.read_reply(), b"$-1\r\n");

    // Byte by byte: the reply comes only after the last byte.
    let frame = resp::encode(&["ECHO", "hello"]);
    let (last, head) = frame.split_last().unwrap();
    for b in head {
        raw.send(std::slice::from_ref(b)).unwrap();
    }
    raw.assert_silent(SILENCE);
    raw.send(&[*last]).unwrap();
    assert_eq!(raw.read_reply(), b"$5\r\nhello\r\n");

    // A client that goes away mid-frame does not hurt anyone.
    let mut gone = server.raw();
    gone.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc")
        .unwrap();
    drop(gone);
    assert_serves(&mut server);
    assert_eq!(raw.cmd(&["GET", "k"]), b"$-1\r\n");
}

#[test]
fn bad_bulk_lengths_are_protocol_errors() {
    let mut server = ServerProc::start(&[]);
    let invalid_bulk = b"-ERR Protocol error: invalid bulk length\r\n";
    assert_reply_then_close(&mut server, b"*1\r\n$-5\r\n", invalid_bulk);
    assert_reply_then_close(&mut server, b"*1\r\n$abc\r\n", invalid_bulk);
    // Over the default proto-max-bulk-len (512mb).
    assert_reply_then_close(
        &mut server,
        b"*2\r\n$3\r\nGET\r\n$536870913\r\n",
        invalid_bulk,
    );
    assert_reply_then_close(
        &mut server,
        b"*abc\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    assert_reply_then_close(
        &mut server,
        b"*99999999999\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    assert_reply_then_close(
        &mut server,
        b"*1\r\nPING\r\n",
        b"-ERR Protocol error: expected '$', got 'P'\r\n",
    );
    // Commands before the bad frame in the same batch are answered.
    assert_reply_then_close(
        &mut server,
        b"*1\r\n$4\r\nPING\r\n*1\r\n$-5\r\n*1\r\n$4\r\nPING\r\n",
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
    );
    assert_reply_then_close(
        &mut server,
        b"ECHO \"unbalanced\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
}

#[test]
fn proto_max_bulk_len_is_configurable() {
    let mut server = ServerProc::start(&["--proto-max-bulk-len", "1048576"]);
    assert_reply_then_close(
        &mut server,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    // Exactly the limit is fine.
    let value = vec![b'v'; 1_048_576];
    let mut con = server.conn();
    let mut set = redis::cmd("SET");
    set.arg("big").arg(&value);
    set.query::<()>(&mut con)
        .expect("SET of exactly proto-max-bulk-len");
    assert_eq!(cmd::<i64>(&mut con, &["STRLEN", "big"]), 1_048_576);
    assert_eq!(
        cmd_err(&mut con, &["APPEND", "big", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
}

#[test]
fn garbage_bytes_never_hurt_the_server() {
    let mut server = ServerProc::start(&[]);
    // Inline garbage is an unknown command, and the connection stays usable.
    let mut raw = server.raw();
    raw.send(b"\x01\x02garbage here\r\n").unwrap();
    assert_eq!(
        resp::show(&raw.read_reply()),
        resp::show(
            b"-ERR unknown command '\x01\x02garbage', with args beginning with: 'here' \r\n"
        )
    );
    assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");

    // A line longer than 64 KiB without a newline.
    assert_reply_then_close(
        &mut server,
        &vec![b'a'; 70 * 1024],
        b"-ERR Protocol error: too big inline request\r\n",
    );

    // Random bytes: whatever comes back is well-formed RESP, nobody else is hurt.
    let mut rng = Rng::new(0x5eed);
    for round in 0..50 {
        let len = rng.range(1, 4096) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if round % 2 == 0 {
            bytes[0] = *rng.pick(b"*$+-:");
        }
        let mut c = server.raw();
        if c.send(&bytes).is_err() {
            continue;
        }
        let (got, _) = c.read_while(Duration::from_millis(50), |_| false);
        let mut rest = &got[..];
        while !rest.is_empty() {
            match resp::parse(rest) {
                Ok(Some((_, n))) => rest = &rest[n..],
                other => panic!(
                    "malformed reply ({other:?}) to {}: {}",
                    resp::show(&bytes),
                    resp::show(&got)
                ),
            }
        }
    }
    assert_serves(&mut server);
}

#[test]
fn query_buffer_limit_closes_the_connection() {
    let mut server = ServerProc::start(&["--client-query-buffer-limit", "1mb"]);
    let mut other = server.conn();
    cmd::<()>(&mut other, &["SET", "before", "1"]);

    // A bulk argument that never completes, growing past 1mb.
    let mut c = server.raw();
    let mut sent = 0usize;
    let mut refused = c
        .send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n")
        .is_err();
    let chunk = vec![b'x'; 64 * 1024];
    while !refused && sent < 3_000_000 {
        refused = c.send(&chunk).is_err();
        sent += chunk.len();
    }
    match c.read_until_closed(CLOSE_TIMEOUT) {
        Ok(got) => assert!(
            got.is_empty() || got.starts_with(b"-ERR"),
            "unexpected reply {}",
            resp::show(&got)
        ),
        Err(_) => panic!("connection still open after {sent} bytes over a 1mb query buffer limit"),
    }

    assert_eq!(cmd::<String>(&mut other, &["GET", "before"]), "1");
    assert_serves(&mut server);
}

/// The latency monitor: off by default; on, a command that holds the loop
/// (DEBUG SLEEP) is an event in LATEST, HISTORY and DOCTOR until RESET.
/// Event names are the server's own (Redis says `command`), so the test
/// finds the event by its latency.
#[test]
fn latency_monitor_records_a_blocked_loop() {
    let server = ServerProc::start(&["--enable-debug-command", "yes"]);
    let mut con = server.conn();
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "latency-monitor-threshold"]),
        vec!["latency-monitor-threshold", "0"]
    );
    assert_eq!(cmd::<String>(&mut con, &["DEBUG", "SLEEP", "0.05"]), "OK");
    let latest: Vec<(String, i64, i64, i64)> = cmd(&mut con, &["LATENCY", "LATEST"]);
    assert!(latest.is_empty(), "monitor off, yet {latest:?}");

    cmd::<String>(
        &mut con,
        &["CONFIG", "SET", "latency-monitor-threshold", "40"],
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(cmd::<String>(&mut con, &["DEBUG", "SLEEP", "0.08"]), "OK");
    // A poll under the threshold is not an event.
    assert_eq!(cmd::<String>(&mut con, &["DEBUG", "SLEEP", "0"]), "OK");
    let latest: Vec<(String, i64, i64, i64)> = cmd(&mut con, &["LATENCY", "LATEST"]);
    let slept: Vec<_> = latest.iter().filter(|e| e.3 >= 80).collect();
    assert_eq!(slept.len(), 1, "one event of the 80 ms sleep in {latest:?}");
    let (event, time, last, max) = slept[0].clone();
    assert!(time >= before && time <= before + 5, "{time} vs {before}");
    assert!((80..1000).contains(&last) && last <= max, "{last} {max}");
    let history: Vec<(i64, i64)> = cmd(&mut con, &["LATENCY", "HISTORY", &event]);
    assert_eq!(history, vec![(time, last)]);
    let none: Vec<(i64, i64)> = cmd(&mut con, &["LATENCY", "HISTORY", "no-such-event"]);
    assert!(none.is_empty());
    let doctor: String = cmd(&mut con, &["LATENCY", "DOCTOR"]);
    assert!(doctor.contains(&event), "{doctor}");
    assert_eq!(
        cmd_err(&mut con, &["LATENCY", "NOSUCH"]),
        "ERR unknown subcommand 'NOSUCH'. Try LATENCY HELP."
    );
    assert_eq!(
        cmd_err(&mut con, &["LATENCY", "HISTORY"]),
        "ERR wrong number of arguments for 'latency|history' command"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LATENCY", "RESET", "no-such-event"]),
        0
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LATENCY", "RESET"]),
        latest.len() as i64
    );
    let latest: Vec<(String, i64, i64, i64)> = cmd(&mut con, &["LATENCY", "LATEST"]);
    assert!(latest.is_empty(), "after RESET: {latest:?}");

    // A slow command and LATENCY in one read (one poll of the connection):
    // the event is there before the replies leave, as in Redis.
    let (ok, latest): (String, Vec<(String, i64, i64, i64)>) = redis::pipe()
        .cmd("DEBUG")
        .arg("SLEEP")
        .arg("0.08")
        .cmd("LATENCY")
        .arg("LATEST")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    assert!(
        latest.iter().any(|e| e.3 >= 80),
        "the sleep in the same pipeline: {latest:?}"
    );
}

// ---------------------------------------------------------------- lazy freeing

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

/// OBJECT IDLETIME counts the seconds since the key was last read or
/// written: GET, SET and TOUCH reset it; EXISTS, TYPE, TTL and OBJECT
/// itself do not (Redis's LOOKUP_NOTOUCH). Also runs against redis-server.
#[test]
fn object_idletime_counts_from_the_last_access() {
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    let idle = |con: &mut Connection, key: &str| -> i64 { cmd(con, &["OBJECT", "IDLETIME", key]) };
    let _: () = cmd(
        &mut con,
        &["MSET", "read", "1", "touched", "2", "peeked", "3"],
    );
    assert_eq!(idle(&mut con, "read"), 0);
    std::thread::sleep(Duration::from_millis(2100));
    for key in ["read", "touched", "peeked"] {
        assert!(idle(&mut con, key) >= 2, "{key}: {}", idle(&mut con, key));
    }
    let _: Option<String> = cmd(&mut con, &["GET", "read"]);
    let _: i64 = cmd(&mut con, &["TOUCH", "touched", "missing"]);
    let _: i64 = cmd(&mut con, &["EXISTS", "peeked"]);
    let _: String = cmd(&mut con, &["TYPE", "peeked"]);
    let _: i64 = cmd(&mut con, &["TTL", "peeked"]);
    let _: Option<String> = cmd(&mut con, &["OBJECT", "ENCODING", "peeked"]);
    assert!(idle(&mut con, "read") <= 1);
    assert!(idle(&mut con, "touched") <= 1);
    assert!(idle(&mut con, "peeked") >= 2);
    let missing: Option<i64> = cmd(&mut con, &["OBJECT", "IDLETIME", "missing"]);
    assert_eq!(missing, None);
    // RESTORE ... IDLETIME sets it.
    let payload: Vec<u8> = redis::cmd("DUMP").arg("read").query(&mut con).unwrap();
    let _: () = redis::cmd("RESTORE")
        .arg("restored")
        .arg(0)
        .arg(&payload)
        .arg("IDLETIME")
        .arg(1000)
        .query(&mut con)
        .unwrap();
    let restored = idle(&mut con, "restored");
    assert!((1000..=1001).contains(&restored), "{restored}");
}
