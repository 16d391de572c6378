//! Every change a command makes reaches the log: for every row of the
//! command table, example invocations run on a logging [`TestCluster`] of
//! three shards; the records it logged are replayed, shard by shard as
//! recovery does (`server/src/recover.rs`), into a fresh cluster whose clock
//! is later; the two keyspaces (keys, values, absolute expiries, in every
//! database) must be equal. A write command without an example, or whose
//! examples change nothing, fails the test; so does a multi-key write whose
//! examples do not run both on one shard and across shards.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;

use crate::command::{self, Args, Exec, Log, Route};
use crate::testkit::TestCluster;
use crate::value::Value;

const SHARDS: usize = 3;
/// The clock of the run; the replay runs `REPLAY_LATER` ms later, so a
/// record that depends on the time it is replayed at shows.
const T0: u64 = 1_700_000_000_000;
const REPLAY_LATER: u64 = 5_000;

/// The keyspace every example starts from (logged like the examples).
const SEED: &[&str] = &[
    "SET s1 hello",
    "SET s2 world PX 100000000",
    "SET n 10",
    "SET f 1.5",
    "SET t v EX 100000",
    "SET tn 3 EX 100000",
    "SET a 1",
    "SET b 2",
    "SET c 3",
    "@1 SET s1 other",
    "@1 SET n 7 EX 100000",
];

/// Example lines per command, run in order after [`SEED`]; `@N` runs the
/// line in database N. Arguments are split at spaces.
const EXAMPLES: &[(&str, &[&str])] = &[
    // Strings.
    ("get", &["GET s1", "GET missing", "GET t"]),
    (
        "set",
        &[
            "SET s1 new",
            "SET k2 v EX 100000",
            "SET k3 v PX 100000000 GET",
            "SET t w KEEPTTL",
            "SET s1 x NX",
            "SET zz x XX",
            "SET n x XX GET",
            "SET k4 v EXAT 1800000000",
            "SET k5 v PXAT 1800000000000",
            "SET k6 v EXAT 1000",
            "@1 SET s1 y EX 300000",
        ],
    ),
    ("setnx", &["SETNX s1 x", "SETNX new1 v", "@1 SETNX new1 w"]),
    (
        "setex",
        &["SETEX k 100000 v", "SETEX s1 100 v2", "SETEX t 0 v"],
    ),
    ("psetex", &["PSETEX k 100000 v", "@1 PSETEX s1 200000 v"]),
    ("getset", &["GETSET s1 v", "GETSET t v", "GETSET nokey v"]),
    ("getdel", &["GETDEL s1", "GETDEL missing", "@1 GETDEL n"]),
    (
        "getex",
        &[
            "GETEX s1 EX 1000",
            "GETEX t PERSIST",
            "GETEX s2 PXAT 1000",
            "GETEX s1",
            "GETEX n EXAT 1800000000",
            "GETEX tn PX 200000",
        ],
    ),
    ("mget", &["MGET s1 s2 n missing", "MGET s1"]),
    (
        "mset",
        &[
            "MSET s1 1",
            "MSET a 1 b 2 c 3 d 4 e 5",
            "@1 MSET x 1 y 2 z 3",
        ],
    ),
    (
        "msetnx",
        &[
            "MSETNX x1 1 x2 2 x3 3 x4 4",
            "MSETNX x5 1 s1 2",
            "MSETNX y 1",
            "MSETNX s1 1",
        ],
    ),
    ("incr", &["INCR n", "INCR newc", "INCR s1", "@1 INCR n"]),
    ("decr", &["DECR n", "DECR newc"]),
    ("incrby", &["INCRBY n 5", "INCRBY tn -7", "INCRBY newc 3"]),
    ("decrby", &["DECRBY n 5", "DECRBY tn 1"]),
    (
        "incrbyfloat",
        &[
            "INCRBYFLOAT f 0.1",
            "INCRBYFLOAT tn 1.5",
            "INCRBYFLOAT newf 3.0e3",
            "INCRBYFLOAT s1 1",
        ],
    ),
    (
        "append",
        &["APPEND s1 xyz", "APPEND newa abc", "APPEND tn 1"],
    ),
    ("strlen", &["STRLEN s1", "STRLEN missing"]),
    ("getrange", &["GETRANGE s1 0 2", "GETRANGE missing 0 -1"]),
    ("substr", &["SUBSTR s1 1 -1"]),
    (
        "setrange",
        &["SETRANGE s1 2 ZZ", "SETRANGE newr 5 ab", "SETRANGE tn 0 9"],
    ),
    // Keys.
    (
        "del",
        &["DEL s1", "DEL s2 n f a b c missing", "@1 DEL s1 n"],
    ),
    (
        "unlink",
        &["UNLINK s1", "UNLINK s2 n f a b c", "@1 UNLINK n"],
    ),
    ("exists", &["EXISTS s1 s2 missing", "EXISTS s1"]),
    ("touch", &["TOUCH s1 s2 missing", "TOUCH s1"]),
    ("type", &["TYPE s1", "TYPE missing"]),
    (
        "expire",
        &[
            "EXPIRE s1 1000",
            "EXPIRE t 2000 GT",
            "EXPIRE t 10 GT",
            "EXPIRE n 5000 NX",
            "EXPIRE f -1",
            "EXPIRE missing 10",
        ],
    ),
    (
        "pexpire",
        &["PEXPIRE s1 1000000", "PEXPIRE n 0", "PEXPIRE t 900000 LT"],
    ),
    ("expireat", &["EXPIREAT s1 1800000000", "EXPIREAT n 1000"]),
    (
        "pexpireat",
        &["PEXPIREAT s1 1800000000000", "PEXPIREAT t 1 XX"],
    ),
    ("ttl", &["TTL t", "TTL s1", "TTL missing"]),
    ("pttl", &["PTTL t"]),
    ("expiretime", &["EXPIRETIME t"]),
    ("pexpiretime", &["PEXPIRETIME t"]),
    ("persist", &["PERSIST t", "PERSIST s1", "@1 PERSIST n"]),
    (
        "rename",
        &[
            "RENAME s1 s1b",
            "RENAME t a",
            "RENAME n n",
            "RENAME c cx",
            "RENAME nope x",
        ],
    ),
    (
        "renamenx",
        &[
            "RENAMENX s1 s2",
            "RENAMENX s1 q",
            "RENAMENX t tt",
            "RENAMENX a a1",
        ],
    ),
    (
        "restore",
        // Payloads of "v" (raw) and "10" (an integer), from DUMP.
        &[
            "RESTORE r1 0 \\x00\\x01v\\x0a\\x00\\x91\\x08\\xce\\xb2\\x198\\x8a\\xce",
            "RESTORE r2 100000 \\x00\\xc0\\x0a\\x0a\\x00n\\x9fWE\\x0e\\xaec\\xbb",
            "RESTORE s1 0 \\x00\\x01v\\x0a\\x00\\x91\\x08\\xce\\xb2\\x198\\x8a\\xce REPLACE",
            "RESTORE t 1000 \\x00\\x01v\\x0a\\x00\\x91\\x08\\xce\\xb2\\x198\\x8a\\xce ABSTTL REPLACE",
            "@1 RESTORE n 2000000000000 \\x00\\xc0\\x0a\\x0a\\x00n\\x9fWE\\x0e\\xaec\\xbb ABSTTL REPLACE IDLETIME 5",
            "RESTORE s2 0 \\x00\\x01v\\x0a\\x00\\x91\\x08\\xce\\xb2\\x198\\x8a\\xce",
        ],
    ),
    ("dump", &["DUMP s1", "DUMP missing"]),
    ("keys", &["KEYS *", "KEYS s*"]),
    ("scan", &["SCAN 0", "SCAN 0 MATCH s* COUNT 100"]),
    ("randomkey", &["RANDOMKEY"]),
    // Server.
    ("dbsize", &["DBSIZE", "@1 DBSIZE"]),
    (
        "flushdb",
        &["FLUSHDB", "@1 SET again 1", "@1 FLUSHDB", "SET after 1"],
    ),
    ("flushall", &["FLUSHALL", "SET after 1", "@2 SET after2 1"]),
    (
        "swapdb",
        &["SWAPDB 0 1", "SET after 1", "SWAPDB 1 2", "SWAPDB 3 3"],
    ),
];

/// Each shard's keyspace at time `now`: (shard, db) -> key -> (value,
/// expiry), keys already expired at `now` left out.
type Keyspace = BTreeMap<(usize, usize), BTreeMap<Vec<u8>, (Vec<u8>, u64)>>;

fn keyspace(c: &TestCluster, now: u64) -> Keyspace {
    let mut all = Keyspace::new();
    for s in 0..SHARDS {
        c.with_shard(s, |sh| {
            for db in 0..sh.databases() {
                for p in sh.db(db).pages() {
                    for e in p.entries().filter(|e| !e.is_expired(now)) {
                        let Value::Str(v) = &e.value;
                        all.entry((s, db))
                            .or_default()
                            .insert(e.key.to_vec(), (v.to_vec(), e.expire_at));
                    }
                }
            }
        });
    }
    all
}

/// Runs one line (`@N` prefix: database N); returns the route it took and
/// the reply.
fn run_line(c: &TestCluster, line: &str) -> (Route, String) {
    let (db, line) = match line.strip_prefix('@') {
        Some(rest) => {
            let (n, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            (
                n.parse().unwrap_or_else(|_| panic!("bad db in {line:?}")),
                rest,
            )
        }
        None => (0, line),
    };
    let words: Vec<Vec<u8>> = line.split(' ').map(unescape).collect();
    let spec = command::lookup(&words[0]).unwrap_or_else(|| panic!("{line:?}"));
    let (src, ranges) = flatten(words.iter().map(Vec::as_slice));
    let route = command::route(spec, Args::new(&src, &ranges), SHARDS, 0);
    let args: Vec<&[u8]> = words.iter().map(Vec::as_slice).collect();
    (
        route,
        String::from_utf8_lossy(&c.exec(db, &args)).into_owned(),
    )
}

/// An example word with `\xHH` escapes (binary arguments: DUMP payloads).
fn unescape(w: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = w.as_bytes();
    while let Some((&b, tail)) = rest.split_first() {
        match tail {
            [b'x', h, l, more @ ..] if b == b'\\' => {
                let hex = std::str::from_utf8(&[*h, *l]).unwrap().to_string();
                out.push(u8::from_str_radix(&hex, 16).unwrap());
                rest = more;
            }
            _ => {
                out.push(b);
                rest = tail;
            }
        }
    }
    out
}

fn flatten<'a>(args: impl Iterator<Item = &'a [u8]>) -> (Vec<u8>, Vec<Range<usize>>) {
    let mut src = Vec::new();
    let mut ranges = Vec::new();
    for a in args {
        let start = src.len();
        src.extend_from_slice(a);
        ranges.push(start..src.len());
    }
    (src, ranges)
}

/// Replays what `shard` logged onto the same shard of `into`, as recovery
/// does (`server/src/recover.rs`: `replay` and `replay_global`): every
/// record starts in database 0, SELECT switches, a command runs with its
/// shard function on this shard alone, keyspace-wide commands do this
/// shard's part.
fn replay(into: &TestCluster, shard: usize, payload: &[u8]) {
    let cmds = crate::journal::recovery::decode_commands(payload)
        .unwrap_or_else(|e| panic!("shard {shard} logged a bad record: {e:?}"));
    let mut db = 0;
    for args in cmds {
        let name = String::from_utf8_lossy(&args[0]).to_ascii_lowercase();
        if name == "select" {
            db = std::str::from_utf8(&args[1])
                .ok()
                .and_then(|d| d.parse().ok())
                .unwrap();
            continue;
        }
        let spec = command::lookup(name.as_bytes()).unwrap_or_else(|| panic!("logged {name}"));
        assert!(
            spec.arity_ok(args.len()),
            "logged {args:?} with a bad arity"
        );
        let (src, ranges) = flatten(args.iter().map(Vec::as_slice));
        let a = Args::new(&src, &ranges);
        let mut out = Vec::new();
        into.with_shard(shard, |sh| match (spec.exec, name.as_str()) {
            (Exec::Shard(f) | Exec::Keys { shard: f, .. }, _) => {
                command::execute_shard(spec, f, &mut sh.ctx(db), a, &mut out);
            }
            (_, "flushall") => (0..sh.databases()).for_each(|d| sh.db_mut(d).clear()),
            (_, "flushdb") => sh.db_mut(db).clear(),
            (_, "swapdb") => {
                let n = |i: usize| std::str::from_utf8(&args[i]).unwrap().parse().unwrap();
                if n(1) != n(2) {
                    sh.swap_dbs(n(1), n(2));
                }
            }
            _ => panic!("shard {shard} logged {name}, which recovery cannot replay"),
        });
        assert!(
            !out.starts_with(b"-"),
            "replaying {args:?} on shard {shard} failed: {}",
            String::from_utf8_lossy(&out)
        );
    }
}

/// Runs `lines` after the seed on a logging cluster, replays the log into
/// a fresh one, and compares. Returns the routes taken and whether the
/// lines changed the keyspace.
fn check(name: &str, lines: &[&str]) -> (Vec<Route>, bool) {
    let c = TestCluster::new(SHARDS);
    c.set_now(T0);
    let log = c.capture_log();
    for line in SEED {
        run_line(&c, line);
    }
    let seeded = keyspace(&c, T0);
    let dirty = |c: &TestCluster| -> u64 {
        (0..SHARDS)
            .map(|s| c.with_shard(s, |sh| sh.stats.dirty))
            .sum()
    };
    let before = dirty(&c);
    let mut routes = Vec::new();
    let mut replies = Vec::new();
    for line in lines {
        let (route, reply) = run_line(&c, line);
        routes.push(route);
        replies.push(format!("{line} -> {}", reply.trim_end()));
    }
    let changed = dirty(&c) != before;
    let unlogged: u64 = (0..SHARDS)
        .map(|s| c.with_shard(s, |sh| sh.stats.unlogged_changes))
        .sum();
    assert_eq!(unlogged, 0, "{name}: commands broke their row's Log rule");

    let replayed = TestCluster::new(SHARDS);
    replayed.set_now(T0 + REPLAY_LATER);
    for (shard, payload) in log.0.borrow().iter() {
        replay(&replayed, *shard, payload);
    }
    let want = keyspace(&c, T0);
    let got = keyspace(&replayed, T0);
    if want != got {
        let mut diff = String::new();
        let empty = BTreeMap::new();
        let places: BTreeSet<_> = want.keys().chain(got.keys()).collect();
        for &(shard, db) in places {
            let w = want.get(&(shard, db)).unwrap_or(&empty);
            let g = got.get(&(shard, db)).unwrap_or(&empty);
            let show = |e: Option<&(Vec<u8>, u64)>| match e {
                None => "(none)".to_string(),
                Some((v, at)) => format!("{:?} expire_at {at}", String::from_utf8_lossy(v)),
            };
            for k in w.keys().chain(g.keys()).collect::<BTreeSet<_>>() {
                if w.get(k) != g.get(k) {
                    diff += &format!(
                        "  shard {shard} db {db} key {:?}: ran {}, replayed {}\n",
                        String::from_utf8_lossy(k),
                        show(w.get(k)),
                        show(g.get(k))
                    );
                }
            }
        }
        panic!(
            "{name}: replaying the log of the seed and the lines does not give \
             the keyspace they left\n\
             lines:\n  {}\n{diff}",
            replies.join("\n  ")
        );
    }
    // A change the command did not count would not be logged by `Auto`,
    // which the comparison above catches; here, a write that changed the
    // keyspace counts as having changed it.
    let changed = changed || want != seeded;
    (routes, changed)
}

#[test]
fn every_change_reaches_the_log_and_replays_to_the_same_keyspace() {
    let mut missing = Vec::new();
    for spec in command::all_commands() {
        if let Exec::Conn(_) = spec.exec {
            // Run by the server on connection state, never on the keyspace.
            assert_eq!(spec.log, Log::Never, "{}", spec.name);
            assert!(
                !spec.is_write(),
                "{} is a write run by the server",
                spec.name
            );
            continue;
        }
        let Some((_, lines)) = EXAMPLES.iter().find(|(n, _)| *n == spec.name) else {
            missing.push(spec.name);
            continue;
        };
        let (routes, changed) = check(spec.name, lines);
        if spec.is_write() {
            assert!(changed, "{}: no example changes the keyspace", spec.name);
            assert_ne!(
                spec.log,
                Log::Never,
                "{} writes but is never logged",
                spec.name
            );
        } else {
            assert!(
                !changed,
                "{} is not flagged write but changed the keyspace",
                spec.name
            );
            assert_eq!(spec.log, Log::Never, "{}", spec.name);
        }
        let multi_key = spec.first_key > 0 && (spec.last_key < 0 || spec.last_key > spec.first_key);
        if spec.is_write() && multi_key {
            for want in ["one shard", "across shards"] {
                let took = routes.iter().any(|r| match want {
                    "one shard" => matches!(r, Route::Shard(_)),
                    _ => matches!(r, Route::CrossKeys),
                });
                assert!(took, "{}: no example runs {want}", spec.name);
            }
        }
    }
    assert!(
        missing.is_empty(),
        "commands without examples in engine/src/logged_tests.rs: {missing:?}"
    );
    for (name, _) in EXAMPLES {
        assert!(
            command::lookup(name.as_bytes()).is_some(),
            "examples for {name}, which is not a command"
        );
    }
}
