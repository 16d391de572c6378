//! Sets end to end: random set data (small intsets and listpacks, a set of
//! two million members, multi-MB members, TTLs, cross-shard commands; with
//! them a hash of a million fields and one of multi-MB values) through the
//! log, full and delta snapshots and SIGKILL, compared exactly with the
//! state before the kill; `export-aof` of it
//! loaded into redis-server; a Redis AOF of set commands imported; the
//! `set-max-*` thresholds from flags and CONFIG SET on every shard.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::Duration;

use tests::{server_bin, wait_until, RedisProc, Rng, ScratchDir, ServerProc};

type State = BTreeMap<Vec<u8>, (BTreeSet<Vec<u8>>, bool)>;

fn smembers(con: &mut redis::Connection, key: &[u8]) -> BTreeSet<Vec<u8>> {
    redis::cmd("SMEMBERS").arg(key).query(con).unwrap()
}

/// Every set key's members and whether it has a TTL.
fn state_of(con: &mut redis::Connection) -> State {
    let keys: Vec<Vec<u8>> = redis::cmd("KEYS").arg("*").query(con).unwrap();
    let mut out = State::new();
    for k in keys {
        let t: String = redis::cmd("TYPE").arg(&k).query(con).unwrap();
        if t != "set" {
            continue;
        }
        let ttl: i64 = redis::cmd("PTTL").arg(&k).query(con).unwrap();
        let m = smembers(con, &k);
        out.insert(k, (m, ttl > 0));
    }
    out
}

fn sadd(con: &mut redis::Connection, key: &str, members: &[Vec<u8>]) {
    for batch in members.chunks(10_000) {
        let _: i64 = redis::cmd("SADD").arg(key).arg(batch).query(con).unwrap();
    }
}

/// HSET of `pairs` in batches.
fn hset(con: &mut redis::Connection, key: &str, pairs: impl Iterator<Item = (Vec<u8>, Vec<u8>)>) {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = pairs.collect();
    for batch in pairs.chunks(10_000) {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(key);
        for (f, v) in batch {
            cmd.arg(f).arg(v);
        }
        let _: i64 = cmd.query(con).unwrap();
    }
}

fn hgetall(con: &mut redis::Connection, key: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    redis::cmd("HGETALL").arg(key).query(con).unwrap()
}

fn wait_bgsave(con: &mut redis::Connection) {
    wait_until(Duration::from_secs(120), "BGSAVE to finish", || {
        let info: String = redis::cmd("INFO").arg("persistence").query(con).unwrap();
        info.contains("rdb_bgsave_in_progress:0")
    });
}

/// Random set writes over 40 keys, with strings among them.
fn random_writes(con: &mut redis::Connection, rng: &mut Rng, n: usize) {
    for _ in 0..n {
        let k = format!("s{}", rng.below(40));
        let k2 = format!("s{}", rng.below(40));
        let member = |rng: &mut Rng| -> String {
            match rng.below(3) {
                0 => rng.range(-50, 600).to_string(),
                1 => format!("m{}", rng.below(200)),
                _ => "y".repeat(60 + rng.below(10)),
            }
        };
        let cmd = match rng.below(12) {
            0..=3 => {
                let mut c = redis::cmd("SADD");
                c.arg(&k);
                for _ in 0..1 + rng.below(8) {
                    c.arg(member(rng));
                }
                c
            }
            4 | 5 => {
                let mut c = redis::cmd("SREM");
                c.arg(&k).arg(member(rng)).arg(member(rng));
                c
            }
            6 => {
                let mut c = redis::cmd("SPOP");
                c.arg(&k).arg(rng.below(3));
                c
            }
            7 => {
                let mut c = redis::cmd("SMOVE");
                c.arg(&k).arg(&k2).arg(member(rng));
                c
            }
            8 => {
                let name: &str = rng.pick::<&str>(&["SUNIONSTORE", "SINTERSTORE", "SDIFFSTORE"]);
                let mut c = redis::cmd(name);
                c.arg(&k).arg(&k2).arg(format!("s{}", rng.below(40)));
                c
            }
            9 => {
                let mut c = redis::cmd("EXPIRE");
                c.arg(&k).arg(100_000 + rng.below(1000));
                c
            }
            10 => {
                let mut c = redis::cmd("RENAME");
                c.arg(&k).arg(&k2);
                c
            }
            _ => {
                let mut c = redis::cmd("SET");
                c.arg(&k).arg("string");
                c
            }
        };
        // Errors (WRONGTYPE, no such key) are part of the mix.
        let _: redis::RedisResult<redis::Value> = cmd.query(con);
    }
}

/// What differs between two states at `k`, for a failure message.
fn diff(k: &[u8], want: &State, got: &State) -> String {
    let show = |s: Option<&(BTreeSet<Vec<u8>>, bool)>| match s {
        None => "(none)".to_string(),
        Some((m, ttl)) => {
            let m: Vec<String> = m
                .iter()
                .map(|x| String::from_utf8_lossy(&x[..x.len().min(20)]).into_owned())
                .take(40)
                .collect();
            format!("{} members {m:?}, ttl {ttl}", m.len())
        }
    };
    format!(
        "{}: want {}, got {}",
        String::from_utf8_lossy(k),
        show(want.get(k)),
        show(got.get(k))
    )
}

fn kill_and_restart(server: ServerProc) -> ServerProc {
    let dir = server.data_dir();
    server.signal("KILL");
    drop(server);
    ServerProc::start_in(&dir, &[])
}

/// The commands of a RESP text (arrays of bulk strings, as an AOF holds).
fn split_resp_commands(mut b: &[u8]) -> Vec<Vec<Vec<u8>>> {
    fn line<'a>(b: &mut &'a [u8]) -> &'a [u8] {
        let end = b.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let l = &b[..end];
        *b = &b[end + 2..];
        l
    }
    let mut out = Vec::new();
    while !b.is_empty() {
        let head = line(&mut b);
        assert_eq!(head[0], b'*');
        let n: usize = std::str::from_utf8(&head[1..]).unwrap().parse().unwrap();
        let mut args = Vec::with_capacity(n);
        for _ in 0..n {
            let len_line = line(&mut b);
            let len: usize = std::str::from_utf8(&len_line[1..])
                .unwrap()
                .parse()
                .unwrap();
            args.push(b[..len].to_vec());
            b = &b[len + 2..];
        }
        out.push(args);
    }
    out
}

#[test]
fn sets_survive_the_log_snapshots_and_sigkill() {
    let scratch = ScratchDir::new("sets-sigkill");
    let server = ServerProc::start_in(scratch.path(), &["--appendfsync", "always", "--save", ""]);
    let mut con = server.conn();
    let mut rng = Rng::new(2202);
    // Big sets: 2M members, and one of integers past the intset limit.
    const BIG: usize = 2_000_000;
    let big: Vec<Vec<u8>> = (0..BIG)
        .map(|i| format!("member:{i}").into_bytes())
        .collect();
    sadd(&mut con, "big", &big);
    let ints: Vec<Vec<u8>> = (0..5000)
        .map(|i| (i * 7 - 9000).to_string().into_bytes())
        .collect();
    sadd(&mut con, "ints", &ints);
    // Multi-MB members.
    let huge: Vec<Vec<u8>> = (0..3)
        .map(|i| vec![b'a' + i as u8; 3 * 1024 * 1024])
        .collect();
    sadd(&mut con, "huge", &huge);
    let _: i64 = redis::cmd("EXPIRE")
        .arg("huge")
        .arg(100_000)
        .query(&mut con)
        .unwrap();
    // A hash of a million fields, and one of multi-MB values.
    let field = |i: usize| (format!("f:{i}").into_bytes(), format!("v:{i}").into_bytes());
    hset(&mut con, "bighash", (0..1_000_000).map(field));
    hset(
        &mut con,
        "hugehash",
        (0..2u8).map(|i| (vec![b'k', i], vec![b'0' + i; 3 << 20])),
    );
    random_writes(&mut con, &mut rng, 3000);
    // A full snapshot, then changes (the big set's too) while the next
    // one (a delta) runs and after it, in the log only.
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    wait_bgsave(&mut con);
    random_writes(&mut con, &mut rng, 2000);
    let _: String = redis::cmd("BGSAVE").query(&mut con).unwrap();
    let more: Vec<Vec<u8>> = (0..20_000)
        .map(|i| format!("during:{i}").into_bytes())
        .collect();
    sadd(&mut con, "big", &more);
    hset(
        &mut con,
        "bighash",
        (0..5000).map(|i| (field(i * 97).0, b"during".to_vec())),
    );
    let _: i64 = redis::cmd("SREM")
        .arg("big")
        .arg("member:5")
        .arg("member:77")
        .query(&mut con)
        .unwrap();
    wait_bgsave(&mut con);
    random_writes(&mut con, &mut rng, 2000);
    let _: i64 = redis::cmd("SUNIONSTORE")
        .arg("union")
        .arg("big")
        .arg("ints")
        .query(&mut con)
        .unwrap();
    let _: i64 = redis::cmd("HDEL")
        .arg("bighash")
        .arg("f:3")
        .arg("f:999999")
        .query(&mut con)
        .unwrap();
    let hashes_before = [hgetall(&mut con, "bighash"), hgetall(&mut con, "hugehash")];
    assert_eq!(hashes_before[0].len(), 1_000_000 - 2);
    let before = state_of(&mut con);
    assert!(before.len() > 10, "{} sets", before.len());
    assert_eq!(before[&b"union"[..]].0.len(), BIG + 20_000 - 2 + 5000);

    let server = kill_and_restart(server);
    let mut con = server.conn();
    let after = state_of(&mut con);
    assert_eq!(
        after.len(),
        before.len(),
        "after the restart:\n{}",
        server.output_tail(30)
    );
    for (k, v) in &before {
        assert!(after.get(k) == Some(v), "{}", diff(k, &before, &after));
    }
    let hashes_after = [hgetall(&mut con, "bighash"), hgetall(&mut con, "hugehash")];
    assert!(
        hashes_after == hashes_before,
        "the hashes after the restart"
    );

    // export-aof of it, loaded into redis-server, gives the same sets.
    let dir = server.data_dir();
    server.signal("KILL");
    drop(server);
    let out = Command::new(server_bin())
        .arg("export-aof")
        .arg(dir.join("appendonlydir"))
        .output()
        .expect("run kv-server export-aof");
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "export-aof: {text}");
    let Some(redis) = RedisProc::start() else {
        return;
    };
    let mut rc = redis.conn();
    let cmds = split_resp_commands(&out.stdout);
    for args in &cmds {
        // Each command bounded: at most 1024 members (or pairs) or 1 MiB
        // plus one.
        let most = if args[0] == b"HSET" {
            2 * 1024 + 2
        } else {
            1024 + 2
        };
        assert!(args.len() <= most, "{} arguments", args.len());
        let mut cmd = redis::cmd(std::str::from_utf8(&args[0]).unwrap());
        for a in &args[1..] {
            cmd.arg(a.as_slice());
        }
        let _: redis::Value = cmd.query(&mut rc).expect("exported command");
    }
    let theirs = state_of(&mut rc);
    assert_eq!(theirs.len(), before.len());
    let their_hashes = [hgetall(&mut rc, "bighash"), hgetall(&mut rc, "hugehash")];
    assert!(their_hashes == hashes_before, "the hashes in redis-server");
    for (k, v) in &before {
        assert!(theirs.get(k) == Some(v), "{}", diff(k, &before, &theirs));
    }
}

/// A Redis AOF of set commands (SPOP written by Redis as SREM, STOREs as
/// themselves) is imported into our log and survives a restart.
#[test]
fn a_redis_aof_with_set_commands_imports() {
    let Some(redis) = RedisProc::start_with_plain_aof() else {
        return;
    };
    let mut rc = redis.conn();
    let script: &[&[&str]] = &[
        &["SADD", "a", "1", "2", "3", "x", "y"],
        &["SADD", "b", "2", "3", "4"],
        &["SREM", "a", "y"],
        &["SPOP", "a"],
        &["SPOP", "b", "1"],
        &["SMOVE", "a", "c", "x"],
        &["SINTERSTORE", "i", "a", "b"],
        &["SUNIONSTORE", "u", "a", "b", "c"],
        &["SDIFFSTORE", "d", "u", "b"],
        &["EXPIRE", "u", "100000"],
    ];
    for line in script {
        let mut cmd = redis::cmd(line[0]);
        for a in &line[1..] {
            cmd.arg(*a);
        }
        let _: redis::Value = cmd.query(&mut rc).unwrap();
    }
    let want = state_of(&mut rc);
    let _: Result<(), _> = redis::cmd("SHUTDOWN").query(&mut rc);
    let dir = redis.data_dir();
    wait_until(Duration::from_secs(10), "redis-server to exit", || {
        std::net::TcpStream::connect(redis.addr()).is_err()
    });
    let server = ServerProc::start_in(&dir, &[]);
    let mut con = server.conn();
    assert_eq!(state_of(&mut con), want);
    let server = kill_and_restart(server);
    let mut con = server.conn();
    assert_eq!(state_of(&mut con), want);
}

/// The first byte of a DUMP payload: 11 for an intset, 2 for a set.
fn dump_type(con: &mut redis::Connection, key: &str) -> u8 {
    let p: Vec<u8> = redis::cmd("DUMP").arg(key).query(con).unwrap();
    p[0]
}

/// `set-max-intset-entries` from a flag and by CONFIG SET reaches every
/// shard: five integers are an intset under the default and not under 4
/// (seen in DUMP's type byte, on keys of every shard).
#[test]
fn set_thresholds_from_flags_and_config_set_reach_every_shard() {
    let keys: Vec<String> = (0..16).map(|i| format!("key{i}")).collect();
    let fill = |con: &mut redis::Connection, prefix: &str| {
        for k in &keys {
            let _: i64 = redis::cmd("SADD")
                .arg(format!("{prefix}{k}"))
                .arg(&["1", "2", "3", "4", "5"])
                .query(con)
                .unwrap();
        }
    };
    let server = ServerProc::start(&["--set-max-intset-entries", "4", "--threads", "4"]);
    let mut con = server.conn();
    fill(&mut con, "a");
    for k in &keys {
        assert_eq!(dump_type(&mut con, &format!("a{k}")), 2, "{k}");
    }
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("set-max-intset-entries")
        .query(&mut con)
        .unwrap();
    assert_eq!(got, ["set-max-intset-entries", "4"]);
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("set-max-intset-entries")
        .arg("512")
        .query(&mut con)
        .unwrap();
    fill(&mut con, "b");
    for k in &keys {
        assert_eq!(dump_type(&mut con, &format!("b{k}")), 11, "{k}");
    }
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("set-max-listpack-value")
        .arg("1kb")
        .query(&mut con)
        .unwrap();
    let got: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("set-max-listpack-*")
        .query(&mut con)
        .unwrap();
    assert_eq!(
        got,
        [
            "set-max-listpack-entries",
            "128",
            "set-max-listpack-value",
            "1024"
        ]
    );
}
