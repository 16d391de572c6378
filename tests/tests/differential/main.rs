//! Differential tests: the same command sequences go to our server (with
//! `--threads 4`, so keys spread over shards) and to a real `redis-server`;
//! the replies must be the same bytes.
//!
//! Replies that legitimately differ are normalised, and only those:
//! - `KEYS`: compared as sorted lists;
//! - `TTL`, `PTTL`, `EXPIRETIME`, `PEXPIRETIME`: equal, or both positive and
//!   within a small tolerance (the two servers run the command at slightly
//!   different times);
//! - `SCAN` (lines starting with `scanall`): a whole cursor iteration is run on
//!   each server and the sets of keys compared;
//! - replies whose order is a hashtable's (HKEYS, HVALS, HGETALL, SMEMBERS,
//!   SINTER, SUNION, SDIFF, SPOP): compared sorted; random picks
//!   (HRANDFIELD, SRANDMEMBER) by shape; HSCAN by its pairs when the
//!   iteration ends in one call; DUMP of a hashtable by type and length;
//! - `OBJECT`: a string's `int`, `embstr` and `raw`, and REFCOUNT 1 and
//!   2147483647, against each other (Redis names them by how the value was
//!   built, ours from its bytes); a small set's `listpack` (Redis 7.2's)
//!   against 7.0's `hashtable`.
//!
//! `glob_patterns_match_redis` compares KEYS and SCAN MATCH over thousands
//! of random and pathological glob patterns.
//!
//! Sequences never depend on time: expiries are far in the future (and
//! pairwise distinct, so GT/LT never compare equal times) or in the past
//! where Redis deletes the key at once (EXPIREAT, GETEX; not SET ... EXAT,
//! whose expired key Redis 7.0 leaves for the expiry cycle to count in DBSIZE).
//!
//! Random sequences use fixed seeds; after every command DBSIZE is compared
//! too, so a keyspace divergence is reported at the command that caused it.
//! The same generator also feeds whole sequences as single pipelines, which
//! our server splits into per-shard batches.
//! `KV_DIFF_SKIP=CMD1,CMD2` leaves commands out of the random sequences,
//! `KV_DIFF_SEEDS=N` runs N seeds instead of 20;
//! `KV_DIFF_ALL=1` reports every mismatch of the hand-written groups, not
//! only the first of each.
//!
//! Without `redis-server` on PATH the tests are skipped with a note, except
//! under CI (`CI=true`), where that is a failure.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::thread;
use std::time::{Duration, Instant};

use tests::resp::{self, Frame};
use tests::{Fill, RawConn, ReadOutcome, RedisProc, Rng, Running, ServerProc, REPLY_TIMEOUT};

mod cases;
mod generator;
mod harness;

use cases::*;
use generator::*;
use harness::*;

#[test]
fn strings_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let failures = run_groups(&mut pair, STRING_CASES);
    assert_no_mismatches("string-command groups", failures);
}

#[test]
fn keys_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let failures = run_groups(&mut pair, KEY_CASES);
    assert_no_mismatches("key-command groups", failures);
}

/// Pieces of random glob patterns: every element of Redis's syntax and its
/// odd corners (unterminated classes, `[a-]`, a trailing `\`, signed-char
/// ranges over bytes >= 0x80), over a tiny alphabet so matches are common.
const GLOB_PIECES: &[&[u8]] = &[
    b"*",
    b"**",
    b"?",
    b"a",
    b"b",
    b"a",
    b"b",
    b"A",
    b"\\*",
    b"\\a",
    b"\\",
    b"[ab]",
    b"[^a]",
    b"[a-b]",
    b"[b-a]",
    b"[^]",
    b"[]",
    b"[\\]]",
    b"[\\",
    b"[a-]",
    b"[A-Z]",
    b"[",
    b"[^",
    b"-",
    b"]",
    b"^",
    b"\xe9",
    b"[a-\xff]",
    b"[\x80-\xff]",
    b"[^\xe9-a]",
    b"*a",
    b"a*",
    b"*?",
];

/// Keys for the glob comparison: every string over {a, b} up to 4 bytes,
/// glob syntax as plain bytes, upper case, high bytes, and the long keys of
/// the pathological patterns.
fn glob_keys() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = Vec::new();
    let mut layer: Vec<Vec<u8>> = vec![Vec::new()];
    for _ in 0..4 {
        layer = layer
            .iter()
            .flat_map(|k| [b'a', b'b'].map(|c| [k.as_slice(), &[c]].concat()))
            .collect();
        keys.extend(layer.iter().cloned());
    }
    for k in [
        &b"A"[..],
        b"aB",
        b"Ab",
        b"*",
        b"a*b",
        b"[",
        b"]",
        b"[a]",
        b"\\",
        b"a\\",
        b"^",
        b"-",
        b"a-b",
        b"\xe9",
        b"\x80a",
        b"a\xe9",
        b"?",
        b"ab]",
    ] {
        keys.push(k.to_vec());
    }
    keys.push(vec![b'a'; 40]);
    keys.push([&[b'a'; 40][..], b"b"].concat());
    keys.push(vec![b'a'; 1100]);
    keys
}

/// KEYS and SCAN MATCH with random patterns (the pieces above) and with
/// pathological ones (CVE-2022-36021's shape, Redis's 1000-level nesting
/// cap) give the same keys as redis-server.
#[test]
fn glob_patterns_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let mut s = pair.session();
    let mut failures = Vec::new();
    for reset in [args(&["FLUSHALL"]), args(&["SELECT", "0"])] {
        if let Err(m) = s.step(&Step::new(reset)) {
            failures.push(m.render("reset"));
        }
    }
    let mut mset = vec![b"MSET".to_vec()];
    for key in glob_keys() {
        mset.push(key);
        mset.push(b"v".to_vec());
    }
    if let Err(m) = s.step(&Step::new(mset)) {
        failures.push(m.render("MSET"));
    }
    let mut patterns: Vec<Vec<u8>> = vec![
        [b"a*".repeat(20), b"b".to_vec()].concat(),
        [b"a*".repeat(20), b"c".to_vec()].concat(),
        [b"*a".repeat(30), b"*b".to_vec()].concat(),
        [b"*?".repeat(30), b"#".to_vec()].concat(),
        b"*a".repeat(1000),
        b"*a".repeat(1001),
        [b"*a".repeat(1000), b"***".to_vec()].concat(),
        [b"*a".repeat(1001), b"***".to_vec()].concat(),
        b"\\*a".repeat(1001),
    ];
    let mut rng = Rng::new(36021);
    for _ in 0..3000 {
        let mut p = Vec::new();
        for _ in 0..rng.below(7) {
            let piece: &&[u8] = rng.pick(GLOB_PIECES);
            p.extend_from_slice(piece);
        }
        patterns.push(p);
    }
    let mut compared = 0;
    for (i, p) in patterns.iter().enumerate() {
        let mut steps = vec![Step::new(vec![b"KEYS".to_vec(), p.clone()])];
        if i % 10 == 0 {
            steps.push(Step {
                args: vec![
                    b"MATCH".to_vec(),
                    p.clone(),
                    b"COUNT".to_vec(),
                    b"7".to_vec(),
                ],
                check: Check::ScanAll,
            });
        }
        for step in steps {
            compared += 1;
            if let Err(m) = s.step(&step) {
                failures.push(m.render(&format!("pattern {i}")));
            }
            s.history.clear();
        }
        if failures.len() >= 10 {
            break;
        }
    }
    pair.assert_alive();
    eprintln!(
        "{} patterns, {compared} commands, {} mismatches",
        patterns.len(),
        failures.len()
    );
    assert_no_mismatches("glob pattern results", failures);
}

#[test]
fn connection_and_databases_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let failures = run_groups(&mut pair, CONNECTION_CASES);
    assert_no_mismatches("connection/database groups", failures);
}

/// Every command with 0..=4 dummy arguments, in several spellings: arity
/// errors, "not an integer", "syntax error" and the like must match.
#[test]
fn arity_and_argument_errors_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    const COMMANDS: &[&str] = &[
        "GET",
        "SET",
        "SETNX",
        "SETEX",
        "PSETEX",
        "GETSET",
        "GETDEL",
        "GETEX",
        "MGET",
        "MSET",
        "MSETNX",
        "INCR",
        "DECR",
        "INCRBY",
        "DECRBY",
        "INCRBYFLOAT",
        "APPEND",
        "STRLEN",
        "GETRANGE",
        "SETRANGE",
        "DEL",
        "UNLINK",
        "EXISTS",
        "TYPE",
        "EXPIRE",
        "PEXPIRE",
        "EXPIREAT",
        "PEXPIREAT",
        "TTL",
        "PTTL",
        "EXPIRETIME",
        "PEXPIRETIME",
        "PERSIST",
        "RENAME",
        "RENAMENX",
        "KEYS",
        "SCAN",
        "RANDOMKEY",
        "DBSIZE",
        "SELECT",
        "SWAPDB",
        "FLUSHDB",
        "FLUSHALL",
        "PING",
        "ECHO",
        "AUTH",
    ];
    let mut text = String::from("## arity\n");
    for name in COMMANDS {
        for spelling in [name.to_string(), name.to_lowercase()] {
            for n in 0..=4 {
                let mut line = spelling.clone();
                for i in 0..n {
                    // The first argument is a key-ish word, the rest numbers or words.
                    line.push_str([" a", " 100000", " x", " 7"][i % 4]);
                }
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    let failures = run_groups(&mut pair, &text);
    assert_no_mismatches("arity groups", failures);
}

/// Raw byte sequences (bad frames, inline commands) on fresh connections:
/// the bytes received and whether the connection was closed must match.
#[test]
fn protocol_edge_cases_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let cases: &[&[u8]] = &[
        b"*1\r\n$4\r\nPING\r\n",
        b"*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nECHO\r\n$0\r\n\r\n",
        b"*1\r\n$-5\r\n",
        b"*1\r\n$-1\r\n",
        b"*1\r\n$abc\r\n",
        b"*1\r\n$04\r\nPING\r\n",
        b"*1\r\n$+4\r\nPING\r\n",
        b"*1\r\n$536870913\r\n",
        b"*abc\r\n",
        b"*01\r\n$4\r\nPING\r\n",
        b"*  1\r\n",
        b"*1 \r\n",
        b"*99999999999\r\n",
        b"*-1\r\n",
        b"*0\r\n",
        b"*1\r\nPING\r\n",
        b"*1\r\n*1\r\n",
        b"*1\r\n:1\r\n",
        b"*1\r\n$0\r\n\r\n",
        b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\nb\r\n*1\r\n$-1\r\n",
        b"PING\r\n",
        b"ping\n",
        b"\r\n",
        b"\n",
        b"   \r\n",
        b"\r\n\r\nPING\r\n",
        b"  PING   \r\n",
        b"PING\tx\r\n",
        b"ECHO a b\r\n",
        b"SET a \"b c\"\r\nGET a\r\n",
        b"ECHO \"unbalanced\r\n",
        b"ECHO 'unbalanced\r\n",
        b"ECHO 'a'b\r\n",
        b"ECHO \"a\"b\r\n",
        b"ECHO \"\\x41\\x4\"\r\n",
        b"ECHO \"\\t\\n\\r\\a\\b\\\\\\\"\"\r\n",
        b"ECHO 'it\\'s'\r\n",
        b"$5\r\nhellx\r\n",
        b"+PING\r\n",
        b":1\r\n",
        b"-ERR\r\n",
        // (No NUL bytes in inline commands: Redis 7.0 stops answering that
        // connection, a quirk not worth copying.)
        b"\x01\x02\x7f\r\n",
        b"\xff\xfe\r\n",
        b"GET\r\n",
        b"NOSUCH a\r\n",
    ];
    let mut failures = Vec::new();
    for case in cases {
        let theirs = raw_outcome(&pair.redis, case, true);
        let ours = raw_outcome(&pair.ours, case, true);
        if theirs != ours {
            failures.push(format!(
                "bytes {}\n    redis: {theirs}\n    ours:  {ours}\n",
                resp::show(case)
            ));
        }
        pair.assert_alive();
    }
    // A long inline line without a newline (no sentinel: its newline would
    // end the line, depending on how the server's reads split the bytes).
    let long = vec![b'a'; 70 * 1024];
    let theirs = raw_outcome(&pair.redis, &long, false);
    let ours = raw_outcome(&pair.ours, &long, false);
    if theirs != ours {
        failures.push(format!(
            "70 KiB inline line without newline\n    redis: {theirs}\n    ours:  {ours}\n"
        ));
    }
    assert_no_mismatches("raw byte sequences", failures);
}

/// Sends `bytes`, then (if `sentinel`) a sentinel ECHO; collects everything
/// until the sentinel's reply, a close, or a timeout.
fn raw_outcome(server: &Running, bytes: &[u8], sentinel: bool) -> String {
    const SENTINEL: &[u8] = b"*2\r\n$4\r\nECHO\r\n$8\r\nsentinel\r\n";
    const SENTINEL_REPLY: &[u8] = b"$8\r\nsentinel\r\n";
    let mut c = server.raw();
    let _ = c.send(bytes);
    if sentinel {
        let _ = c.send(SENTINEL);
    }
    let (got, end) = c.read_while(Duration::from_secs(3), |b| b.ends_with(SENTINEL_REPLY));
    let end = match end {
        Fill::Data => "then open",
        Fill::Closed => "then closed",
        Fill::TimedOut => "then nothing for 3s",
    };
    format!("{} {end}", resp::show(&got))
}

// ------------------------------------------------------------ random runs

/// A server stalled under load runs a pipeline's commands later than the
/// other one, so a TTL from an absolute expiry (or the deadline of a
/// relative one) legitimately differs by the stall: the cause of
/// random_pipelines_match_redis failing under CPU load (seed 1, PTTL k9
/// 5.1 s lower on ours, after an EXPIRETIME of the same key that agreed).
/// Here our server is stopped (SIGSTOP, by PID) for 3 s while the pipeline
/// is sent, as a descheduled process is; the comparison must allow for
/// the time each server took to answer, and no more.
#[test]
fn pipeline_ttls_allow_for_a_stalled_server() {
    let Some(pair) = Pair::start() else {
        return;
    };
    let far = (4_102_444_800i64 + 1000).to_string();
    let steps: Vec<Step> = [
        &["FLUSHALL"][..],
        &["SELECT", "0"],
        &["SET", "abs", "v", "EXAT", &far],
        &["SET", "rel", "v", "PX", "100000000"],
        &["PTTL", "abs"],
        &["TTL", "abs"],
        &["PTTL", "rel"],
        &["PEXPIRETIME", "rel"],
        &["EXPIRETIME", "abs"],
    ]
    .iter()
    .map(|a| Step::new(args(a)))
    .collect();
    let mut s = pair.session();
    let stall = Duration::from_secs(3);
    pair.ours.signal("STOP");
    let result = thread::scope(|scope| {
        scope.spawn(|| {
            thread::sleep(stall);
            pair.ours.signal("CONT");
        });
        s.pipeline(&steps)
    });
    if let Err((i, m)) = result {
        panic!("{}", m.render(&format!("pipelined command {i}")));
    }
}

#[test]
fn ttl_allowance_is_the_answer_time_and_no_more() {
    let pttl = Check::Approx {
        tol: 2000,
        unit_ms: 1,
    };
    let ttl = Check::Approx {
        tol: 2,
        unit_ms: 1000,
    };
    let late = Duration::from_millis(3100);
    assert!(!same_reply(pttl, b":100000\r\n", b":96000\r\n"));
    assert!(same_reply(
        pttl.allowing(late),
        b":100000\r\n",
        b":96000\r\n"
    ));
    assert!(!same_reply(
        pttl.allowing(late),
        b":100000\r\n",
        b":94000\r\n"
    ));
    assert!(same_reply(ttl.allowing(late), b":100\r\n", b":95\r\n"));
    assert!(!same_reply(ttl.allowing(late), b":100\r\n", b":93\r\n"));
    assert!(!same_reply(pttl.allowing(late), b":-1\r\n", b":-2\r\n"));
    assert!(!same_reply(
        Check::Exact.allowing(late),
        b":100\r\n",
        b":99\r\n"
    ));
}

#[test]
fn random_sequences_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let mut failures = Vec::new();
    let mut total = 0;
    let mut errors = 0;
    let skip = skipped_commands();
    let seeds = random_seeds();
    for seed in 1..=seeds {
        let mut gen = Generator {
            rng: Rng::new(seed),
            used_rel: BTreeSet::new(),
        };
        let next = || loop {
            let step = gen.command();
            let name = step.args.first().map(|n| n.to_ascii_uppercase());
            if !name.is_some_and(|n| skip.contains(&n)) {
                break step;
            }
        };
        let count_errors = |reply: &[u8]| {
            if reply.starts_with(b"-") {
                errors += 1;
            }
        };
        let (ran, result) = pair.session().random_sequence(next, count_errors);
        total += ran;
        if let Err((at, m)) = result {
            failures.push(m.render(&format!("seed {seed}, step {at}")));
        }
        pair.assert_alive();
    }
    eprintln!(
        "{seeds} seeds, {total} commands ({errors} answered with an error by redis), \
         {} seeds with a mismatch",
        failures.len()
    );
    assert_no_mismatches("random sequences", failures);
}

/// The same kind of random sequences, each sent as one pipeline: commands
/// for different shards are batched per shard by our server, and the
/// replies must still come back in order and equal Redis's.
#[test]
fn random_pipelines_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let skip = skipped_commands();
    let seeds = random_seeds();
    let mut failures = Vec::new();
    for seed in 1..=seeds {
        let mut gen = Generator {
            rng: Rng::new(1_000_000 + seed),
            used_rel: BTreeSet::new(),
        };
        let mut steps = vec![
            Step::new(args(&["FLUSHALL"])),
            Step::new(args(&["SELECT", "0"])),
        ];
        while steps.len() < RANDOM_STEPS {
            let step = gen.command();
            let name = step.args.first().map(|n| n.to_ascii_uppercase());
            if step.check == Check::ScanAll || name.is_some_and(|n| skip.contains(&n)) {
                continue;
            }
            steps.push(step);
        }
        let mut s = pair.session();
        let result = s
            .pipeline(&steps)
            .map_err(|(i, m)| m.render(&format!("seed {seed}, pipelined command {i}")))
            .and_then(|()| {
                s.compare_state()
                    .map_err(|m| m.render(&format!("seed {seed}, state after the pipeline")))
            });
        if let Err(m) = result {
            failures.push(m);
        }
        pair.assert_alive();
    }
    eprintln!(
        "{seeds} pipelines of {RANDOM_STEPS} commands, {} with a mismatch",
        failures.len()
    );
    assert_no_mismatches("random pipelines", failures);
}

#[test]
fn hashes_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let failures = run_groups(&mut pair, HASH_CASES);
    assert_no_mismatches("hash groups", failures);
}

// ------------------------------------------------------------ sets

#[test]
fn sets_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let failures = run_groups(&mut pair, SET_CASES);
    assert_no_mismatches("set-command groups", failures);
}

/// Random set sequences (and some string commands on the same keys), each
/// command followed by DBSIZE, the whole keyspace compared at the end.
#[test]
fn random_set_sequences_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let seeds = random_seeds();
    let mut failures = Vec::new();
    let mut total = 0;
    for seed in 1..=seeds {
        let mut gen = Generator {
            rng: Rng::new(2_000_000 + seed),
            used_rel: BTreeSet::new(),
        };
        let (ran, result) = pair.session().random_sequence(|| gen.set_command(), |_| {});
        total += ran;
        if let Err((at, m)) = result {
            failures.push(m.render(&format!("seed {seed}, step {at}")));
        }
        pair.assert_alive();
    }
    eprintln!("{seeds} seeds, {total} set commands");
    assert_no_mismatches("random set sequences", failures);
}
