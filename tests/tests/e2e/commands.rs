//! Commands end to end: strings, keys, expiry, pipelines, multi-key
//! commands across shards and their atomicity.

use super::*;

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
