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

type Args = Vec<Vec<u8>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Check {
    Exact,
    /// Arrays compared after sorting (KEYS).
    Sorted,
    /// Integers equal, or both positive and at most `tol` apart; `unit_ms`
    /// is the unit of the reply in milliseconds (TTL: 1000, PTTL: 1).
    Approx {
        tol: i64,
        unit_ms: i64,
    },
    /// A whole SCAN iteration with these options; key sets compared.
    /// (`SSCAN key opts..` as the args: a whole SSCAN iteration.)
    ScanAll,
    /// A flat array of field, value pairs compared as a set of pairs
    /// (HGETALL: a hashtable's order is its own).
    SortedPairs,
    /// A random reply (HRANDFIELD, SRANDMEMBER): errors exact; arrays of
    /// the same length; bulk strings both nil or both not.
    Shape,
    /// One HSCAN call: errors exact; when both cursors are 0, the same
    /// pairs in any order; otherwise both a cursor and a batch.
    HScan,
    /// OBJECT: exact, or any of a string's `int`, `embstr` and `raw` and
    /// REFCOUNT 1 against 2147483647 (Redis decides a string's encoding,
    /// and whether it is a shared integer, by how the command that made it
    /// built it; ours names them from the bytes), or a small set's
    /// `listpack` (Redis 7.2's) against 7.0's `hashtable`.
    Encoding,
    /// DUMP: exact, or for a hash or set in the hashtable encoding (whose
    /// order is its own) a payload of the same type and length.
    Dump,
}

#[derive(Debug, Clone)]
struct Step {
    args: Args,
    check: Check,
}

impl Step {
    fn new(args: Args) -> Step {
        let check = check_for(&args);
        Step { args, check }
    }
}

/// The comparison a command needs, from its name.
fn check_for(args: &Args) -> Check {
    let name = args
        .first()
        .map(|a| a.to_ascii_uppercase())
        .unwrap_or_default();
    match name.as_slice() {
        b"KEYS" | b"HKEYS" | b"HVALS" => Check::Sorted,
        // Set replies in an order Redis leaves unspecified (a hashtable's).
        b"SMEMBERS" | b"SINTER" | b"SUNION" | b"SDIFF" | b"SPOP" => Check::Sorted,
        b"HGETALL" => Check::SortedPairs,
        b"HRANDFIELD" | b"SRANDMEMBER" => Check::Shape,
        b"HSCAN" => Check::HScan,
        b"DUMP" => Check::Dump,
        b"OBJECT" => Check::Encoding,
        b"TTL" | b"EXPIRETIME" => Check::Approx {
            tol: 2,
            unit_ms: 1000,
        },
        b"PTTL" | b"PEXPIRETIME" => Check::Approx {
            tol: 2000,
            unit_ms: 1,
        },
        _ => Check::Exact,
    }
}

impl Check {
    /// This check when each server ran the command at most `late` after
    /// the other one could have: a time-dependent reply (a TTL) may then
    /// differ by that much more.
    fn allowing(self, late: Duration) -> Check {
        match self {
            Check::Approx { tol, unit_ms } => {
                let late = u64::try_from(late.as_millis()).unwrap_or(u64::MAX);
                let late = late.div_ceil(unit_ms.unsigned_abs().max(1));
                Check::Approx {
                    tol: tol.saturating_add(i64::try_from(late).unwrap_or(i64::MAX)),
                    unit_ms,
                }
            }
            other => other,
        }
    }
}

/// A pair of servers: ours and the reference.
struct Pair {
    ours: ServerProc,
    redis: RedisProc,
}

impl Pair {
    fn start() -> Option<Pair> {
        let redis = RedisProc::start()?;
        let ours = ServerProc::start(&["--threads", "4"]);
        Some(Pair { ours, redis })
    }

    fn session(&self) -> Session {
        Session {
            ours: self.ours.raw(),
            redis: self.redis.raw(),
            history: Vec::new(),
        }
    }

    fn assert_alive(&mut self) {
        self.ours.assert_running();
        self.redis.assert_running();
    }
}

/// One connection to each server, fed the same steps.
struct Session {
    ours: RawConn,
    redis: RawConn,
    history: Vec<String>,
}

#[derive(Debug)]
struct Mismatch {
    command: String,
    redis: String,
    ours: String,
    context: Vec<String>,
}

impl Mismatch {
    fn render(&self, label: &str) -> String {
        let mut s = format!(
            "{label}: {}\n    redis: {}\n    ours:  {}\n",
            self.command, self.redis, self.ours
        );
        if !self.context.is_empty() {
            s.push_str("    after:\n");
            for c in &self.context {
                let _ = writeln!(s, "      {c}");
            }
        }
        s
    }
}

fn read_one(conn: &mut RawConn) -> Vec<u8> {
    match conn.try_read_reply(REPLY_TIMEOUT) {
        ReadOutcome::Reply(r) => r,
        ReadOutcome::Closed(b) => [b"<connection closed> ".as_slice(), &b].concat(),
        ReadOutcome::TimedOut(b) => [b"<no reply within 10s> ".as_slice(), &b].concat(),
    }
}

fn int_of(reply: &[u8]) -> Option<i64> {
    match resp::parse(reply) {
        Ok(Some((Frame::Int(n), len))) if len == reply.len() => Some(n),
        _ => None,
    }
}

fn sorted_bulks(reply: &[u8]) -> Option<Vec<Vec<u8>>> {
    match resp::parse(reply) {
        Ok(Some((Frame::Array(Some(items)), len))) if len == reply.len() => {
            let mut out = Vec::new();
            for item in items {
                match item {
                    Frame::Bulk(Some(b)) => out.push(b),
                    _ => return None,
                }
            }
            out.sort();
            Some(out)
        }
        _ => None,
    }
}

fn first_line(reply: &[u8]) -> &[u8] {
    let end = reply
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(reply.len());
    &reply[..end]
}

/// A flat array of bulks as pairs, or None if not one of an even length.
fn pairs_of(items: &[Frame]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    if !items.len().is_multiple_of(2) {
        return None;
    }
    items
        .chunks(2)
        .map(|p| match p {
            [Frame::Bulk(Some(f)), Frame::Bulk(Some(v))] => Some((f.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

fn sort_pairs(mut p: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    p.sort();
    p
}

fn sorted_pairs(reply: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    match resp::parse(reply) {
        Ok(Some((Frame::Array(Some(items)), len))) if len == reply.len() => {
            pairs_of(&items).map(sort_pairs)
        }
        _ => None,
    }
}

/// An HSCAN reply: its cursor and its batch as pairs (None: not pairs).
#[allow(clippy::type_complexity)]
fn hscan_reply(reply: &[u8]) -> Option<(Vec<u8>, Option<Vec<(Vec<u8>, Vec<u8>)>>)> {
    let Ok(Some((Frame::Array(Some(items)), len))) = resp::parse(reply) else {
        return None;
    };
    if len != reply.len() {
        return None;
    }
    match &items[..] {
        [Frame::Bulk(Some(cursor)), Frame::Array(Some(batch))] => {
            Some((cursor.clone(), pairs_of(batch)))
        }
        _ => None,
    }
}

/// Runs a whole SCAN iteration; `Ok(keys)` or `Err(first non-SCAN reply)`.
fn scan_all(conn: &mut RawConn, opts: &[Vec<u8>]) -> Result<BTreeSet<Vec<u8>>, Vec<u8>> {
    let mut cursor = b"0".to_vec();
    let mut keys = BTreeSet::new();
    // `SSCAN key opts..`: a whole SSCAN iteration of the key.
    let sscan = opts
        .first()
        .is_some_and(|a| a.eq_ignore_ascii_case(b"SSCAN"));
    for _ in 0..100_000 {
        let mut args = match (sscan, opts.get(1)) {
            (true, Some(key)) => vec![b"SSCAN".to_vec(), key.clone(), cursor.clone()],
            _ => vec![b"SCAN".to_vec(), cursor.clone()],
        };
        args.extend(opts.iter().skip(if sscan { 2 } else { 0 }).cloned());
        conn.send_cmd(&args);
        let reply = read_one(conn);
        let Ok(Some((Frame::Array(Some(items)), _))) = resp::parse(&reply) else {
            return Err(reply);
        };
        let [Frame::Bulk(Some(next)), Frame::Array(Some(batch))] = &items[..] else {
            return Err(reply);
        };
        for k in batch {
            let Frame::Bulk(Some(k)) = k else {
                return Err(reply);
            };
            keys.insert(k.clone());
        }
        if next == b"0" {
            return Ok(keys);
        }
        cursor = next.clone();
    }
    Err(b"<SCAN never returned cursor 0>".to_vec())
}

fn show_keys(r: &Result<BTreeSet<Vec<u8>>, Vec<u8>>) -> String {
    match r {
        Ok(keys) => format!(
            "keys {{{}}}",
            keys.iter()
                .map(|k| resp::show(k))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        Err(reply) => resp::show(reply),
    }
}

/// Whether two replies agree under `check` (SCAN iterations are compared
/// elsewhere).
fn same_reply(check: Check, theirs: &[u8], ours: &[u8]) -> bool {
    theirs == ours
        || match check {
            Check::Exact | Check::ScanAll => false,
            Check::Sorted => {
                sorted_bulks(theirs).is_some() && sorted_bulks(theirs) == sorted_bulks(ours)
            }
            Check::SortedPairs => {
                sorted_pairs(theirs).is_some_and(|t| sorted_pairs(ours) == Some(t))
            }
            Check::Shape => match (theirs.first(), ours.first()) {
                (Some(b'*'), Some(b'*')) => first_line(theirs) == first_line(ours),
                (Some(b'$'), Some(b'$')) => theirs.starts_with(b"$-1") == ours.starts_with(b"$-1"),
                _ => false,
            },
            Check::Encoding => {
                let strings = [&b"$3\r\nint\r\n"[..], b"$6\r\nembstr\r\n", b"$3\r\nraw\r\n"];
                let refcounts = [&b":1\r\n"[..], b":2147483647\r\n"];
                (strings.contains(&theirs) && strings.contains(&ours))
                    || (refcounts.contains(&theirs) && refcounts.contains(&ours))
                    || (theirs == b"$9\r\nhashtable\r\n" && ours == b"$8\r\nlistpack\r\n")
            }
            Check::HScan => match (hscan_reply(theirs), hscan_reply(ours)) {
                (Some((c1, p1)), Some((c2, p2))) if c1 == b"0" && c2 == b"0" => {
                    p1.map(sort_pairs) == p2.map(sort_pairs)
                }
                (Some(_), Some(_)) => true,
                _ => false,
            },
            Check::Dump => {
                // `$<len>\r\n` then the payload: its type byte 4 is
                // RDB_TYPE_HASH, 2 RDB_TYPE_SET (a hashtable's order is its
                // own).
                let payload = |r: &[u8]| {
                    let at = r.iter().position(|&b| b == b'\n')? + 1;
                    r.get(at).copied()
                };
                theirs.len() == ours.len()
                    && payload(theirs) == payload(ours)
                    && matches!(payload(ours), Some(2 | 4))
            }
            Check::Approx { tol, .. } => match (int_of(theirs), int_of(ours)) {
                (Some(a), Some(b)) => a > 0 && b > 0 && (a - b).abs() <= tol,
                _ => false,
            },
        }
}

impl Session {
    /// Sends all `steps` in one write to each server (a pipeline), then
    /// compares the replies in order. SCAN iterations are not allowed here.
    fn pipeline(&mut self, steps: &[Step]) -> Result<(), (usize, Mismatch)> {
        let mut batch = Vec::new();
        for step in steps {
            assert_ne!(
                step.check,
                Check::ScanAll,
                "no SCAN iterations in a pipeline"
            );
            batch.extend(resp::encode(&step.args));
        }
        // Write from helper threads: a server may answer before it has read
        // everything, and neither side must block on a full socket buffer.
        // Both servers' replies are read at once, each with the time it
        // arrived: a server runs command i somewhere between the start and
        // its reply i, so a TTL there may differ by up to the later of the
        // two arrival times (a server stalled under load runs the same
        // commands seconds after the other; a TTL from an absolute expiry
        // then differs by as much, legitimately).
        let start = Instant::now();
        thread::scope(|scope| {
            for conn in [&mut self.redis, &mut self.ours] {
                let stream = conn.stream().try_clone().expect("clone socket");
                let batch = &batch;
                scope.spawn(move || {
                    let mut stream = stream;
                    let _ = std::io::Write::write_all(&mut stream, batch);
                });
            }
            let [theirs_all, ours_all] = [&mut self.redis, &mut self.ours].map(|conn| {
                scope.spawn(move || {
                    steps
                        .iter()
                        .map(|_| (read_one(conn), start.elapsed()))
                        .collect::<Vec<_>>()
                })
            });
            let theirs_all = theirs_all.join().expect("reader thread");
            let ours_all = ours_all.join().expect("reader thread");
            for (i, step) in steps.iter().enumerate() {
                let ((theirs, t_theirs), (ours, t_ours)) = (&theirs_all[i], &ours_all[i]);
                let check = step.check.allowing(*t_theirs.max(t_ours));
                if !same_reply(check, theirs, ours) {
                    let context = steps[i.saturating_sub(8)..i]
                        .iter()
                        .map(|s| resp::show_cmd(&s.args))
                        .collect();
                    return Err((
                        i,
                        Mismatch {
                            command: resp::show_cmd(&step.args),
                            redis: format!("{} (reply after {t_theirs:?})", resp::show(theirs)),
                            ours: format!("{} (reply after {t_ours:?})", resp::show(ours)),
                            context,
                        },
                    ));
                }
            }
            Ok(())
        })
    }

    /// Sends `step` to both servers; the reference reply, or the mismatch.
    fn step(&mut self, step: &Step) -> Result<Vec<u8>, Mismatch> {
        let command = match step.check {
            Check::ScanAll => format!("SCAN <full iteration> {}", resp::show_cmd(&step.args)),
            _ => resp::show_cmd(&step.args),
        };
        let mismatch = |redis: String, ours: String, history: &Vec<String>| Mismatch {
            command: command.clone(),
            redis,
            ours,
            context: history.iter().rev().take(8).rev().cloned().collect(),
        };
        if step.check == Check::ScanAll {
            let theirs = scan_all(&mut self.redis, &step.args);
            let ours = scan_all(&mut self.ours, &step.args);
            if theirs != ours {
                return Err(mismatch(
                    show_keys(&theirs),
                    show_keys(&ours),
                    &self.history,
                ));
            }
            self.history.push(command);
            return Ok(Vec::new());
        }
        self.redis.send_cmd(&step.args);
        self.ours.send_cmd(&step.args);
        let theirs = read_one(&mut self.redis);
        let ours = read_one(&mut self.ours);
        if !same_reply(step.check, &theirs, &ours) {
            return Err(mismatch(
                resp::show(&theirs),
                resp::show(&ours),
                &self.history,
            ));
        }
        self.history.push(command);
        Ok(theirs)
    }

    /// One random sequence on an empty keyspace: `RANDOM_STEPS` steps from
    /// `next` (each reply also handed to `on_reply`), each followed by
    /// DBSIZE so that a keyspace divergence shows at the step that made
    /// it, then the whole keyspace compared. Returns the steps run and the
    /// first mismatch with the step it came at (`RANDOM_STEPS + 1`: the
    /// final comparison).
    fn random_sequence(
        &mut self,
        mut next: impl FnMut() -> Step,
        mut on_reply: impl FnMut(&[u8]),
    ) -> (usize, Result<(), (usize, Mismatch)>) {
        let mut result = self
            .step(&Step::new(args(&["FLUSHALL"])))
            .and_then(|_| self.step(&Step::new(args(&["SELECT", "0"]))))
            .map(|_| ());
        self.history.clear();
        let mut at = 0;
        while result.is_ok() && at < RANDOM_STEPS {
            let step = next();
            result = self.step(&step).map(|reply| on_reply(&reply));
            if result.is_ok() {
                result = self.step(&Step::new(args(&["DBSIZE"]))).map(|_| ());
            }
            at += 1;
        }
        let ran = at;
        if result.is_ok() {
            result = self.compare_state();
            at = RANDOM_STEPS + 1;
        }
        (ran, result.map_err(|m| (at, m)))
    }

    /// Compares the whole keyspace of databases 0 and 1: names, values, TTLs.
    fn compare_state(&mut self) -> Result<(), Mismatch> {
        for db in ["1", "0"] {
            self.step(&Step::new(args(&["SELECT", db])))?;
            let keys = self.step(&Step::new(args(&["KEYS", "*"])))?;
            for key in sorted_bulks(&keys).unwrap_or_default() {
                self.step(&Step::new(vec![b"GET".to_vec(), key.clone()]))?;
                self.step(&Step::new(vec![b"TYPE".to_vec(), key.clone()]))?;
                self.step(&Step::new(vec![b"HGETALL".to_vec(), key.clone()]))?;
                self.step(&Step::new(vec![b"SMEMBERS".to_vec(), key.clone()]))?;
                self.step(&Step::new(vec![b"PTTL".to_vec(), key]))?;
            }
        }
        Ok(())
    }
}

fn args(a: &[&str]) -> Args {
    a.iter().map(|s| s.as_bytes().to_vec()).collect()
}

// ------------------------------------------------------ hand-written cases

/// Parses one line of a hand-written sequence: whitespace-separated words,
/// `"..."` with `\"`, `\\`, `\r`, `\n`, `\t`, `\xHH` escapes, `''` for raw
/// text. A leading `scanall` word marks a full SCAN iteration.
fn parse_line(line: &str) -> Step {
    let mut words: Args = Vec::new();
    let bytes = line.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let mut word = Vec::new();
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    if bytes[i] == b'\\' && i + 1 < bytes.len() {
                        i += 1;
                        match bytes[i] {
                            b'r' => word.push(b'\r'),
                            b'n' => word.push(b'\n'),
                            b't' => word.push(b'\t'),
                            b'x' => {
                                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                                word.push(u8::from_str_radix(hex, 16).unwrap());
                                i += 2;
                            }
                            c => word.push(c),
                        }
                    } else {
                        word.push(bytes[i]);
                    }
                    i += 1;
                }
                assert!(i < bytes.len(), "unterminated quote in {line:?}");
                i += 1;
            }
            b'\'' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'\'' {
                    word.push(bytes[i]);
                    i += 1;
                }
                assert!(i < bytes.len(), "unterminated quote in {line:?}");
                i += 1;
            }
            _ => {
                while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                    word.push(bytes[i]);
                    i += 1;
                }
            }
        }
        words.push(word);
    }
    if words.first().map(|w| w.as_slice()) == Some(b"scanall") {
        words.remove(0);
        return Step {
            args: words,
            check: Check::ScanAll,
        };
    }
    Step::new(words)
}

/// Groups of lines separated by `## name` headers; each group starts from an
/// empty server (FLUSHALL, SELECT 0) on fresh connections.
fn run_groups(pair: &mut Pair, text: &str) -> Vec<String> {
    let mut failures = Vec::new();
    let mut groups: Vec<(String, Vec<Step>)> = Vec::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("## ") {
            groups.push((name.to_string(), Vec::new()));
        } else if !line.is_empty() && !line.starts_with('#') {
            let group = groups.last_mut().expect("a `## name` line first");
            group.1.push(parse_line(line));
        }
    }
    for (name, steps) in &groups {
        let mut s = pair.session();
        let reset = [args(&["FLUSHALL"]), args(&["SELECT", "0"])];
        for r in reset {
            if let Err(m) = s.step(&Step::new(r)) {
                failures.push(m.render(&format!("[{name}] reset")));
            }
        }
        s.history.clear();
        let mut result = Ok(());
        for step in steps {
            result = s.step(step).map(|_| ());
            if let Err(m) = &result {
                if report_all() {
                    failures.push(m.render(&format!("[{name}]")));
                    result = Ok(());
                } else {
                    break;
                }
            }
        }
        if result.is_ok() {
            result = s.compare_state();
        }
        if let Err(m) = result {
            failures.push(m.render(&format!("[{name}]")));
        }
        pair.assert_alive();
    }
    eprintln!(
        "{} groups, {} mismatches reported",
        groups.len(),
        failures.len()
    );
    failures
}

/// `KV_DIFF_ALL=1`: in hand-written groups, report every mismatch instead of
/// only the first of each group (later ones may follow from earlier ones).
fn report_all() -> bool {
    std::env::var_os("KV_DIFF_ALL").is_some_and(|v| v == "1")
}

fn assert_no_mismatches(what: &str, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} {what} differ from redis-server:\n\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}

const STRING_CASES: &str = r#"
## get and set
SET k v
GET k
GET missing
SET k ""
GET k
STRLEN k
SET k "with space\r\nand crlf"
GET k
SET k v2 XX
SET new v XX
EXISTS new
SET k v3 NX
SET k2 v NX
GET k2
SET k v4 GET
SET missing2 v GET
GET missing2
SET k v5 NX GET
SET k3 v XX GET
set k lower
SeT k MiXeD
GET k
set k v ex 100000 get
set k v px 100001000 nx
set k v xx keepttl
TTL k

## set expiry options
SET k v EX 100100
TTL k
PTTL k
SET k v2 KEEPTTL
TTL k
SET k v3
TTL k
SET k v EXAT 4102444800
EXPIRETIME k
PEXPIRETIME k
SET k v PXAT 4102444800123
PEXPIRETIME k
SET k v PX 100200000
PTTL k
SET k v EX 100300 EX 100400
TTL k
SET gone v EXAT 1
GET gone
EXISTS gone
SET gone v PXAT 1000
EXISTS gone
DEL gone
SET k v EX 100 PX 100
SET k v EX 100 KEEPTTL
SET k v KEEPTTL PXAT 4102444800000
SET k v EXAT 4102444800 PX 5
SET k v NX XX
SET k v XX NX
SET k v EX 0
SET k v EX -1
SET k v EX abc
SET k v EX 1.5
SET k v EX
SET k v PX 0
SET k v PX -100
SET k v EXAT 0
SET k v EXAT -1
SET k v PXAT 0
SET k v EX 9223372036854775807
SET k v PX 9223372036854775807
SET k v EX 9223372036854775
SET k v EXAT 9223372036854775807
SET k v PXAT 9223372036854775807
PEXPIRETIME k
SET k v FOO
SET k v GET GET
SET k v NX NX
SET k
SET
GET
GET a b

## setnx setex psetex
SETNX k v
SETNX k v2
GET k
SETNX k
SETNX k v extra
SETEX k 100500 v
TTL k
GET k
SETEX k 0 v
SETEX k -1 v
SETEX k abc v
SETEX k 9223372036854775807 v
SETEX k 100
PSETEX k 100600000 v
PTTL k
PSETEX k 0 v
PSETEX k -5 v
PSETEX k 1.5 v
PSETEX k 9223372036854775807 v
GET k

## getset getdel getex
SET k old EX 100700
GETSET k new
GET k
TTL k
GETSET missing v
GETSET k
GETDEL k
GETDEL k
EXISTS k
GETDEL
SET k v
GETEX k
GETEX missing
GETEX missing EX 100
GETEX k EX 100800
TTL k
GETEX k PERSIST
TTL k
GETEX k PX 100900000
PTTL k
GETEX k EXAT 4102448800
EXPIRETIME k
GETEX k PXAT 4102448900000
PEXPIRETIME k
GETEX k EX 0
GETEX k EX -1
GETEX k PX 0
GETEX k EX abc
GETEX k EX
GETEX k EX 10 PX 10
GETEX k PERSIST EX 10
GETEX k EX 10 PERSIST
GETEX k FOO
GETEX k EX 9223372036854775807
GETEX k persist
GETEX k EXAT 1
EXISTS k
GETEX

## mget mset msetnx
MSET a 1 b 2 c 3
MGET a b c missing a
MGET missing
MSET a
MSET a 1 b
MSET
MGET
MSETNX a 1 d 4
EXISTS d
MSETNX d 4 e 5
MGET d e
MSETNX d
MSETNX d 4 e
MSET a 1 a 2
GET a
MSETNX x 1 x 2
GET x
SET t v EX 101000
MSET t v2
TTL t

## incr decr incrby decrby
SET n 10
INCR n
DECR n
INCRBY n 5
DECRBY n 3
INCRBY n -7
DECRBY n -7
INCRBY n 0
INCR newkey
DECR newkey2
INCRBY newkey3 -5
DECRBY newkey4 5
SET s abc
INCR s
DECR s
INCRBY s 1
SET n 9223372036854775807
INCR n
INCRBY n 0
SET n -9223372036854775808
DECR n
DECRBY n 1
INCRBY n -1
SET n 0
DECRBY n -9223372036854775808
INCRBY n -9223372036854775808
DECRBY n 9223372036854775807
INCRBY n abc
INCRBY n 1.5
INCRBY n ""
INCRBY n 9223372036854775808
INCRBY n -9223372036854775809
SET n " 1"
INCR n
SET n "1 "
INCR n
SET n +1
INCR n
SET n 01
INCR n
SET n -0
INCR n
SET n 00
INCR n
SET n ""
INCR n
SET n 123456789012345678901
INCR n
SET n 1e3
INCR n
SET n 0x10
INCR n
SET n -1
INCR n
GET n
SET n 5 EX 101100
INCR n
TTL n
INCRBY n 10
TTL n
INCR
INCR a b
INCRBY n
DECRBY n
DECR

## incrbyfloat
SET f 10.5
INCRBYFLOAT f 0.5
INCRBYFLOAT f -5
INCRBYFLOAT f 5.0e3
INCRBYFLOAT f 1.25
INCRBYFLOAT f -5007
INCRBYFLOAT new 3
INCRBYFLOAT new 0.25
INCRBYFLOAT int 0
SET int 17
INCRBYFLOAT int 0
INCRBYFLOAT int 1
GET int
INCRBYFLOAT f abc
INCRBYFLOAT f ""
INCRBYFLOAT f inf
INCRBYFLOAT f -inf
INCRBYFLOAT f infinity
INCRBYFLOAT f nan
INCRBYFLOAT f " 1"
INCRBYFLOAT f "1 "
INCRBYFLOAT f 1_000
INCRBYFLOAT f 5.
INCRBYFLOAT f .5
INCRBYFLOAT f -0
INCRBYFLOAT e 1e20
INCRBYFLOAT e -1e20
INCRBYFLOAT g 3.0e-2
INCRBYFLOAT h 1.5e-5
INCRBYFLOAT i 1e-320
SET s abc
INCRBYFLOAT s 1
SET s "1.5 "
INCRBYFLOAT s 1
SET s 1e
INCRBYFLOAT s 1
SET s 1e3
INCRBYFLOAT s 1
SET t 2.5 EX 101200
INCRBYFLOAT t 0.25
TTL t
GET t
INCRBYFLOAT
INCRBYFLOAT f
INCRBYFLOAT f 1 2

# Redis computes in long double (x87, 64-bit mantissa) and prints with
# %.17Lf, trailing zeros trimmed; the next groups show where that differs
# from f64 arithmetic.
## incrbyfloat long double precision
SET f 0.25
INCRBYFLOAT f 1e20
INCRBYFLOAT zero 0.1
INCRBYFLOAT zero 0.2
SET f 10.5
INCRBYFLOAT f 0.1
INCRBYFLOAT f 5.0e3
SET f 10
INCRBYFLOAT f 1e-17
INCRBYFLOAT p 123456789.123456789
INCRBYFLOAT q 1.23456789012345678

## incrbyfloat beyond f64 range
INCRBYFLOAT big 1e308
INCRBYFLOAT big 1e308
GET big
INCRBYFLOAT huge 1e400
INCRBYFLOAT max 1.7976931348623157e308

## incrbyfloat integers beyond 2^53
INCRBYFLOAT x 9007199254740993
SET y 12345678901234567890
INCRBYFLOAT y -1e3

## incrbyfloat hex input
INCRBYFLOAT a 0x10
SET r 0x10
INCRBYFLOAT r 1

## append strlen
APPEND a hello
APPEND a " world"
GET a
STRLEN a
STRLEN missing
APPEND new x
GET new
SET n 10
APPEND n 5
GET n
INCR n
STRLEN n
SET n 12345
STRLEN n
APPEND a ""
STRLEN a
APPEND empty ""
EXISTS empty
SET t v EX 101300
APPEND t w
TTL t
APPEND
APPEND a
APPEND a b c
STRLEN
STRLEN a b

## getrange
SET s "Hello World"
GETRANGE s 0 4
GETRANGE s -5 -1
GETRANGE s 0 -1
GETRANGE s 5 2
GETRANGE s -100 100
GETRANGE s 100 200
GETRANGE s 0 0
GETRANGE s -1 -1
GETRANGE s -1 -100
GETRANGE s 3 -100
GETRANGE s -100 -50
GETRANGE s 10 10
GETRANGE s 11 11
GETRANGE s 0 9223372036854775807
GETRANGE s -9223372036854775808 0
GETRANGE s -9223372036854775808 9223372036854775807
GETRANGE missing 0 10
GETRANGE missing -1 -1
GETRANGE s a 1
GETRANGE s 0 b
GETRANGE s 1.5 2
SET n 12345
GETRANGE n 1 2
GETRANGE n -2 -1
SET e ""
GETRANGE e 0 -1
GETRANGE e 0 0
GETRANGE s 0
GETRANGE s
GETRANGE s 0 1 2

## setrange
SET s "Hello World"
SETRANGE s 6 Redis
GET s
SETRANGE s 11 "!"
GET s
SETRANGE s 0 ""
SETRANGE s 20 x
GET s
SETRANGE new 5 x
GET new
SETRANGE new2 0 ""
EXISTS new2
SETRANGE new3 10 ""
EXISTS new3
SETRANGE s -1 x
SETRANGE s abc x
SETRANGE s 1.5 x
SETRANGE s 536870912 x
SETRANGE s 536870911 ""
SETRANGE s 536870911 xx
SETRANGE missing 536870912 x
SETRANGE missing 536870912 ""
SET n 12345
SETRANGE n 1 x
GET n
SETRANGE n 5 6
INCR n
SET t v EX 101400
SETRANGE t 1 w
TTL t
SETRANGE s 2
SETRANGE s
SETRANGE s 1 2 3
"#;

const KEY_CASES: &str = r#"
## del unlink exists type
MSET a 1 b 2 c 3
EXISTS a b c d a
EXISTS d
DEL a d
DEL a
UNLINK b c b
EXISTS a b c
TYPE a
SET x 1
TYPE x
TYPE missing
DEL
UNLINK
EXISTS
TYPE
TYPE x y

## expire options
SET k v
EXPIRE k 101500
TTL k
PTTL k
EXPIRE missing 100
EXPIRE k 101600 NX
EXPIRE k 101700 XX
TTL k
EXPIRE k 100 GT
EXPIRE k 101800 GT
TTL k
EXPIRE k 101900 LT
EXPIRE k 101000 LT
TTL k
PERSIST k
PERSIST k
PERSIST missing
TTL k
EXPIRE k 102000 XX
EXPIRE k 102100 GT
EXPIRE k 102200 LT
TTL k
PERSIST k
EXPIRE k 102300 NX
TTL k
EXPIRE k 102400 nx
expire k 102500 xx gt
TTL k
EXPIRE k 100 NX XX
EXPIRE k 100 NX GT
EXPIRE k 100 NX LT
EXPIRE k 100 GT LT
EXPIRE k 100 XX GT LT
EXPIRE k 100 FOO
EXPIRE k 100 NX NX
EXPIRE k 102600 XX XX
EXPIRE k abc
EXPIRE k 1.5
EXPIRE k ""
EXPIRE k 9223372036854775807
EXPIRE k 9223372036854775
EXPIRE k -9223372036854775808
EXPIRE k
EXPIRE
TTL k
EXPIRE k -1
EXISTS k
SET k v
EXPIRE k 0
EXISTS k
SET k v
EXPIRE k -5 GT
EXISTS k
EXPIRE k -5 LT
EXISTS k

## pexpire expireat pexpireat
SET k v
PEXPIRE k 102700000
PTTL k
PEXPIRE k 102800000 GT
PEXPIRE k 100 LT NX
PEXPIRE k 9223372036854775807
PEXPIRE k -9223372036854775808
PEXPIRE k abc
PEXPIRE k 0
EXISTS k
SET k v
EXPIREAT k 4102444800
EXPIRETIME k
PEXPIRETIME k
TTL k
EXPIREAT k 4102444700 GT
EXPIREAT k 4102444900 GT
EXPIRETIME k
EXPIREAT k 4102444850 LT
EXPIRETIME k
EXPIREAT k 4102444000 NX
EXPIREAT k 9223372036854775807
EXPIREAT k 9223372036854775
EXPIREAT k abc
PEXPIREAT k 4102444800123
PEXPIRETIME k
EXPIRETIME k
PEXPIREAT k 9223372036854775807
PEXPIRETIME k
PEXPIREAT k 4102444800123 LT
PEXPIRETIME k
PEXPIREAT k -1 GT
PEXPIRETIME k
EXPIREAT k 1
EXISTS k
SET k v
PEXPIREAT k 1000
EXISTS k
SET k v
EXPIREAT k 0
EXISTS k
EXPIREAT missing 4102444800
PEXPIREAT missing 4102444800000
EXPIRETIME missing
PEXPIRETIME missing
TTL missing
PTTL missing
SET p v
EXPIRETIME p
PEXPIRETIME p
TTL p
PTTL p
EXPIREAT
PEXPIREAT k
EXPIRETIME
EXPIRETIME a b
PEXPIRETIME
TTL
TTL a b
PTTL
PERSIST
PERSIST a b

## rename renamenx
SET a 1
RENAME a b
GET b
EXISTS a
RENAME missing x
RENAMENX missing x
RENAME missing missing
SET c 3
RENAMENX b c
GET c
RENAMENX b d
GET d
RENAME d d
GET d
RENAMENX d d
SET t v EX 103000
RENAME t t2
TTL t2
EXISTS t
SET x 1 EX 103100
SET y 2
RENAME y x
TTL x
GET x
SET z 9 EXAT 4102444800
RENAMENX z fresh
EXPIRETIME fresh
RENAME fresh c
EXPIRETIME c
GET c
RENAME a
RENAME
RENAME a b c
RENAMENX a
SET n 10
RENAME n m
INCR m

## keys and scan
MSET k1 a k2 b k3 c k10 d foo e foobar f h?llo g "a*b" h "sp ace" i "" j
KEYS *
KEYS k*
KEYS k?
KEYS *o*
KEYS k[1-3]
KEYS k[^1]*
KEYS k[!1]*
KEYS "h\?llo"
KEYS h?llo
KEYS a\*b
KEYS "sp ace"
KEYS "sp*"
KEYS nomatch
KEYS ""
KEYS [
KEYS k[
KEYS *[a-
KEYS f*o*o*b*a*r
KEYS
KEYS a b
scanall
scanall COUNT 1
scanall COUNT 2
scanall MATCH k*
scanall MATCH k* COUNT 1000
scanall match *o* count 3
scanall TYPE string
scanall TYPE STRING
scanall TYPE hash
scanall TYPE list MATCH k*
scanall TYPE foo
scanall MATCH nomatch
SCAN 0 COUNT 0
SCAN 0 COUNT -1
SCAN 0 COUNT abc
SCAN 0 MATCH
SCAN 0 TYPE
SCAN 0 COUNT
SCAN 0 FOO bar
SCAN abc
SCAN 1.5
SCAN
DBSIZE
RANDOMKEY extra

## empty database
DBSIZE
scanall
KEYS *
RANDOMKEY
SET only v
RANDOMKEY
DEL only
SCAN 0
SCAN 0 MATCH * COUNT 100

## error texts echo arguments without CR/LF
EXPIRE k 100 "a\r\nb"
CLIENT "x\r\n"
NOSUCHCMD "a\r\nb\r\n"
EXPIRE k 100 "\r\n"
EXPIRE k 100 "\nab\r"

## copy and move across shards and databases
FLUSHALL
SET a 1
SET b hello PX 900000000
COPY a a
COPY a a DB 1
COPY a a DB 1
COPY a a DB 1 REPLACE
COPY a c
COPY a c
COPY b c REPLACE
PTTL c
GET c
COPY b k1
COPY b k2
COPY b k3 DB 2
COPY missing k4
COPY a b foo
COPY a b DB
COPY a b DB x
COPY a b DB 16
COPY a b DB -1
COPY a b DB 99999999999
COPY a b REPLACE DB 1 REPLACE
COPY a
SELECT 1
GET a
SELECT 0
MOVE a 0
MOVE a 1
MOVE a 2
MOVE a 2
MOVE missing 3
MOVE b x
MOVE b 16
MOVE b -1
MOVE b 99999999999
MOVE b
MOVE k1 3
SELECT 3
GET k1
PTTL k1
MOVE k1 0
SELECT 0
DBSIZE

## object
FLUSHALL
SET i 12
SET big 123456
SET neg -5
SET s hello
SET l aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
OBJECT ENCODING i
OBJECT ENCODING big
OBJECT ENCODING s
OBJECT ENCODING l
OBJECT ENCODING missing
OBJECT REFCOUNT i
OBJECT REFCOUNT big
OBJECT REFCOUNT neg
OBJECT REFCOUNT s
OBJECT REFCOUNT missing
OBJECT FREQ s
OBJECT FREQ missing
OBJECT IDLETIME missing
OBJECT HELP
object help
OBJECT HELP x
OBJECT ENCODING
OBJECT ENCODING a b
OBJECT FOO
OBJECT
"#;

const CONNECTION_CASES: &str = r#"
## ping echo unknown
PING
PING hello
PING ""
PING a b
ECHO x
ECHO ""
ECHO
ECHO a b
FOO
FOO a b
foo "with space" "" x
NOSUCH a b c d e f g h i j k l m n o p q r s t u v w x y z
"" a
HELLO 4
HELLO 0
HELLO abc
HELLO -1
HELLO 2 FOO
HELLO 2 AUTH default
HELLO 2 SETNAME
AUTH x
AUTH default x
AUTH
AUTH a b c

## client name
CLIENT GETNAME
CLIENT SETNAME conn-1
CLIENT GETNAME
CLIENT SETNAME "bad name"
CLIENT SETNAME "new\nline"
CLIENT GETNAME
CLIENT SETNAME ""
CLIENT GETNAME
CLIENT SETNAME
CLIENT SETNAME a b
CLIENT GETNAME x
CLIENT FOO
CLIENT
CLIENT KILL ID abc
CLIENT KILL ID 999999
CLIENT KILL 1.2.3.4:5
CLIENT KILL ADDR 1.2.3.4:5
CLIENT KILL FOO bar
CONFIG GET databases
CONFIG GET maxclients
CONFIG GET DATABASES
CONFIG GET no-such-option
CONFIG SET no-such-option 1
CONFIG SET maxclients abc
CONFIG SET
CONFIG GET
CONFIG FOO
CONFIG

## databases
SELECT 1
SET a 1
DBSIZE
SELECT 0
DBSIZE
GET a
SWAPDB 0 1
DBSIZE
GET a
SELECT 1
DBSIZE
SWAPDB 1 1
DBSIZE
SELECT 15
SET b 2
SWAPDB 15 0
DBSIZE
SELECT 0
GET b
SELECT 16
SELECT -1
SELECT abc
SELECT 1.5
SELECT ""
SELECT
SELECT 0 0
SWAPDB 0 16
SWAPDB -1 0
SWAPDB a 0
SWAPDB 0 b
SWAPDB 0
SWAPDB
DBSIZE x
FLUSHDB FOO
FLUSHDB ASYNC
DBSIZE
SET c 1
FLUSHDB SYNC
DBSIZE
SET c 1
FLUSHDB async
FLUSHDB SYNC ASYNC
FLUSHALL FOO
FLUSHALL ASYNC
SELECT 15
DBSIZE
SET d 1
FLUSHALL SYNC
DBSIZE
FLUSHALL
"#;

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

const RANDOM_SEEDS: u64 = 20;
const RANDOM_STEPS: usize = 500;

/// A generator of random, time-independent command sequences over ~20 keys.
struct Generator {
    rng: Rng,
    /// Relative expiries (seconds) handed out so far: never twice the same,
    /// so GT/LT never compare two equal times.
    used_rel: BTreeSet<i64>,
}

const KEY_NAMES: &[&str] = &[
    "k0",
    "k1",
    "k2",
    "k3",
    "k4",
    "k5",
    "k6",
    "k7",
    "k8",
    "k9",
    "k10",
    "k11",
    "k12",
    "k13",
    "k14",
    "k15",
    "{k}16",
    "key with space",
    "ключ",
    "",
];

const VALUES: &[&str] = &[
    "v",
    "",
    "hello",
    "0",
    "1",
    "10",
    "-5",
    "3.5",
    "-0.25",
    "2.5e2",
    "9223372036854775807",
    "-9223372036854775808",
    "12345678901234567890",
    "abc def",
    "1e3",
    " 7",
    "007",
    "\r\n",
];

const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "5",
    "-10",
    "100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "abc",
    "1.5",
    "",
    " 3",
    "01",
    "+1",
];

const FLOATS: &[&str] = &[
    "0", "1", "-1", "0.5", "-0.25", "1.5", "2.5e2", "1e3", "-1e3", "10.0", "0.125", "-7", "inf",
    "nan", "abc", "", "1e400", " 1",
];

const PATTERNS: &[&str] = &[
    "*", "k*", "k?", "k1*", "*1*", "k[0-5]", "k[^0-5]*", "{k}*", "*space", "???", "", "nomatch*",
];

impl Generator {
    fn key(&mut self) -> String {
        self.rng.pick(KEY_NAMES).to_string()
    }

    fn value(&mut self) -> String {
        if self.rng.chance(30) {
            self.rng.range(-1000, 1000).to_string()
        } else {
            self.rng.pick(VALUES).to_string()
        }
    }

    fn int(&mut self) -> String {
        if self.rng.chance(50) {
            self.rng.range(-100, 100).to_string()
        } else {
            self.rng.pick(INTS).to_string()
        }
    }

    /// A fresh relative expiry in seconds, 100000..1000000, unique, a multiple of 100.
    fn rel_secs(&mut self) -> i64 {
        loop {
            let s = 100_000 + 100 * self.rng.range(0, 9000);
            if self.used_rel.insert(s) {
                return s;
            }
        }
    }

    /// An absolute expiry in seconds: far future (unique) or, if `past`, maybe past.
    fn abs_secs(&mut self, past: bool) -> i64 {
        if past && self.rng.chance(15) {
            *self.rng.pick(&[0, 1, 100, 1_000_000])
        } else {
            4_102_444_800 + self.rel_secs()
        }
    }

    /// A seconds argument for EX/EXPIRE-style options, sometimes invalid.
    /// Past absolute times only with `past`: Redis 7.0 deletes the key at
    /// once for EXPIREAT and GETEX, but SET ... EXAT <past> leaves it for
    /// the expiry cycle, so DBSIZE would depend on timing.
    fn secs_arg(&mut self, absolute: bool, millis: bool, past: bool) -> String {
        let scale = if millis { 1000 } else { 1 };
        match self.rng.below(20) {
            0 => "0".into(),
            1 => "-1".into(),
            2 => "abc".into(),
            3 => "9223372036854775807".into(),
            4 => "1.5".into(),
            _ if absolute => (self.abs_secs(past) * scale).to_string(),
            _ => (self.rel_secs() * scale).to_string(),
        }
    }

    fn keys(&mut self, max: usize) -> Vec<String> {
        let n = 1 + self.rng.below(max);
        (0..n).map(|_| self.key()).collect()
    }

    fn set_options(&mut self) -> Vec<String> {
        let mut opts = Vec::new();
        for _ in 0..self.rng.below(4) {
            match self.rng.below(9) {
                0 => opts.extend(["EX".into(), self.secs_arg(false, false, false)]),
                1 => opts.extend(["PX".into(), self.secs_arg(false, true, false)]),
                2 => opts.extend(["EXAT".into(), self.secs_arg(true, false, false)]),
                3 => opts.extend(["PXAT".into(), self.secs_arg(true, true, false)]),
                4 => opts.push("KEEPTTL".into()),
                5 => opts.push("NX".into()),
                6 => opts.push("XX".into()),
                7 => opts.push("GET".into()),
                _ => opts.push("BOGUS".into()),
            }
        }
        opts
    }

    fn expire_flags(&mut self) -> Vec<String> {
        let mut flags = Vec::new();
        while self.rng.chance(35) {
            flags.push(
                self.rng
                    .pick(&["NX", "XX", "GT", "LT", "nx", "gt", "ZZ"])
                    .to_string(),
            );
        }
        flags
    }

    fn field(&mut self) -> String {
        if self.rng.chance(30) {
            format!("f{}", self.rng.range(0, 700))
        } else {
            self.rng
                .pick(&["a", "b", "c", "n", "x", "", "field with space", "поле"])
                .to_string()
        }
    }

    /// A hash value: a short one, or (sometimes) one past
    /// hash-max-listpack-value, so encodings convert.
    fn hvalue(&mut self) -> String {
        if self.rng.chance(5) {
            let n = self.rng.range(60, 200) as usize;
            "y".repeat(n)
        } else {
            self.value()
        }
    }

    /// A hash command on `k` (which may hold a string: WRONGTYPE both ways).
    fn hash_command(&mut self, k: String) -> Vec<String> {
        match self.rng.below(16) {
            0 | 1 => {
                let mut v = vec![self.rng.pick(&["HSET", "HMSET"]).to_string(), k];
                // Sometimes many fields at once: past
                // hash-max-listpack-entries.
                let n = if self.rng.chance(4) {
                    self.rng.range(100, 700) as usize
                } else {
                    1 + self.rng.below(4)
                };
                for _ in 0..n {
                    v.push(self.field());
                    v.push(self.hvalue());
                }
                v
            }
            2 => vec!["HSETNX".into(), k, self.field(), self.hvalue()],
            3 => vec!["HGET".into(), k, self.field()],
            4 => {
                let mut v = vec!["HMGET".into(), k];
                for _ in 0..1 + self.rng.below(4) {
                    v.push(self.field());
                }
                v
            }
            5 => {
                let mut v = vec!["HDEL".into(), k];
                for _ in 0..1 + self.rng.below(4) {
                    v.push(self.field());
                }
                v
            }
            6 => vec![
                self.rng.pick(&["HEXISTS", "HSTRLEN"]).to_string(),
                k,
                self.field(),
            ],
            7 => vec!["HLEN".into(), k],
            8 => vec![self.rng.pick(&["HKEYS", "HVALS", "HGETALL"]).to_string(), k],
            9 => vec!["HINCRBY".into(), k, self.field(), self.int()],
            10 => vec![
                "HINCRBYFLOAT".into(),
                k,
                self.field(),
                self.rng.pick(FLOATS).to_string(),
            ],
            11 => {
                let mut v = vec!["HRANDFIELD".into(), k];
                if self.rng.chance(80) {
                    v.push(
                        self.rng
                            .pick(&["0", "1", "3", "-3", "10", "-20", "1000", "-1000", "x"])
                            .to_string(),
                    );
                    if self.rng.chance(50) {
                        v.push(
                            self.rng
                                .pick(&["WITHVALUES", "withvalues", "bad"])
                                .to_string(),
                        );
                    }
                }
                v
            }
            12 => {
                let mut v = vec![
                    "HSCAN".into(),
                    k,
                    self.rng.pick(&["0", "0", "x"]).to_string(),
                ];
                if self.rng.chance(50) {
                    v.extend([
                        "MATCH".into(),
                        self.rng.pick(&["*", "f1*", "?", "a"]).to_string(),
                    ]);
                }
                if self.rng.chance(50) {
                    v.extend([
                        "COUNT".into(),
                        self.rng.pick(&["1", "5", "1000", "0"]).to_string(),
                    ]);
                }
                v
            }
            13 => vec![
                "CONFIG".into(),
                "SET".into(),
                self.rng
                    .pick(&["hash-max-listpack-entries", "hash-max-ziplist-entries"])
                    .to_string(),
                self.rng.pick(&["2", "8", "128", "512"]).to_string(),
            ],
            14 => vec!["HSET".into(), k, self.field(), "z".repeat(70)],
            _ => vec!["TYPE".into(), k],
        }
    }

    fn command(&mut self) -> Step {
        let k = self.key();
        let mut a: Vec<String> = match self.rng.below(67) {
            0..=3 => {
                let mut v = vec!["SET".into(), k, self.value()];
                v.extend(self.set_options());
                v
            }
            4..=6 => vec!["GET".into(), k],
            7 => vec!["SETNX".into(), k, self.value()],
            8 => vec![
                "SETEX".into(),
                k,
                self.secs_arg(false, false, false),
                self.value(),
            ],
            9 => vec![
                "PSETEX".into(),
                k,
                self.secs_arg(false, true, false),
                self.value(),
            ],
            10 => vec!["GETSET".into(), k, self.value()],
            11 => vec!["GETDEL".into(), k],
            12 => {
                let mut v = vec!["GETEX".into(), k];
                match self.rng.below(7) {
                    0 => v.extend(["EX".into(), self.secs_arg(false, false, true)]),
                    1 => v.extend(["PX".into(), self.secs_arg(false, true, true)]),
                    2 => v.extend(["EXAT".into(), self.secs_arg(true, false, true)]),
                    3 => v.extend(["PXAT".into(), self.secs_arg(true, true, true)]),
                    4 => v.push("PERSIST".into()),
                    5 => v.push("KEEPTTL".into()),
                    _ => {}
                }
                v
            }
            13 => {
                let mut v = vec!["MGET".to_string()];
                v.extend(self.keys(6));
                v
            }
            14 | 15 => {
                let mut v = vec![self.rng.pick(&["MSET", "MSETNX"]).to_string()];
                for key in self.keys(5) {
                    v.push(key);
                    v.push(self.value());
                }
                v
            }
            16 | 17 => vec![self.rng.pick(&["INCR", "DECR"]).to_string(), k],
            18 | 19 => vec![
                self.rng.pick(&["INCRBY", "DECRBY"]).to_string(),
                k,
                self.int(),
            ],
            20 => vec!["INCRBYFLOAT".into(), k, self.rng.pick(FLOATS).to_string()],
            21 => vec!["APPEND".into(), k, self.value()],
            22 => vec!["STRLEN".into(), k],
            23 => vec!["GETRANGE".into(), k, self.int(), self.int()],
            24 => {
                let off = if self.rng.chance(80) {
                    self.rng.range(0, 30).to_string()
                } else {
                    self.int()
                };
                vec!["SETRANGE".into(), k, off, self.value()]
            }
            25 | 26 => {
                let mut v = vec![self.rng.pick(&["DEL", "UNLINK", "EXISTS"]).to_string()];
                v.extend(self.keys(5));
                v
            }
            27 => vec!["TYPE".into(), k],
            28 | 29 => {
                let (name, abs, ms) = *self.rng.pick(&[
                    ("EXPIRE", false, false),
                    ("PEXPIRE", false, true),
                    ("EXPIREAT", true, false),
                    ("PEXPIREAT", true, true),
                ]);
                let mut v = vec![name.to_string(), k, self.secs_arg(abs, ms, true)];
                v.extend(self.expire_flags());
                v
            }
            30 | 31 => vec![
                self.rng
                    .pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"])
                    .to_string(),
                k,
            ],
            32 => vec!["PERSIST".into(), k],
            33 | 34 => vec![
                self.rng.pick(&["RENAME", "RENAMENX"]).to_string(),
                k,
                self.key(),
            ],
            35 => vec!["KEYS".into(), self.rng.pick(PATTERNS).to_string()],
            36 => {
                let mut v = Vec::new();
                if self.rng.chance(50) {
                    v.extend(["MATCH".into(), self.rng.pick(PATTERNS).to_string()]);
                }
                if self.rng.chance(50) {
                    v.extend(["COUNT".into(), self.rng.range(1, 30).to_string()]);
                }
                if self.rng.chance(20) {
                    v.extend([
                        "TYPE".into(),
                        self.rng.pick(&["string", "hash"]).to_string(),
                    ]);
                }
                return Step {
                    args: v.into_iter().map(String::into_bytes).collect(),
                    check: Check::ScanAll,
                };
            }
            37 => vec!["DBSIZE".into()],
            38 => vec![
                "SELECT".into(),
                self.rng.pick(&["0", "1", "0", "16", "x"]).to_string(),
            ],
            39 => vec!["SWAPDB".into(), "0".into(), "1".into()],
            40 => {
                if self.rng.chance(20) {
                    // Lazy or not, the keyspace is empty for the next command.
                    let mut v = vec!["FLUSHDB".to_string()];
                    v.extend(
                        self.rng
                            .pick(&[None, Some("ASYNC"), Some("SYNC")])
                            .map(String::from),
                    );
                    v
                } else {
                    vec!["EXISTS".into(), k]
                }
            }
            41 => vec!["ECHO".into(), self.value()],
            42 => vec!["PING".into()],
            43 => vec!["NOSUCHCMD".into(), k],
            44 => vec!["GETRANGE".into(), k, "0".into(), "-1".into()],
            // Our DUMP bytes are redis-server's (tests/tests/dump.rs).
            45 => vec!["DUMP".into(), k],
            47..=62 => self.hash_command(k),
            63 => {
                let mut v = vec!["COPY".into(), k, self.key()];
                if self.rng.chance(30) {
                    v.extend([
                        "DB".into(),
                        self.rng.pick(&["0", "1", "16", "x"]).to_string(),
                    ]);
                }
                if self.rng.chance(40) {
                    v.push("REPLACE".into());
                }
                v
            }
            64 => vec![
                "MOVE".into(),
                k,
                self.rng.pick(&["0", "1", "16", "x"]).to_string(),
            ],
            65 => vec![
                "OBJECT".into(),
                self.rng
                    .pick(&["ENCODING", "REFCOUNT", "FREQ", "HELP"])
                    .to_string(),
                k,
            ],
            _ => vec!["MGET".into(), k, self.key()],
        };
        // Sometimes break the arity or the spelling.
        match self.rng.below(25) {
            0 if a.len() > 1 => {
                a.pop();
            }
            1 => a.push(self.value()),
            2 => a[0] = a[0].to_lowercase(),
            _ => {}
        }
        Step::new(a.into_iter().map(String::into_bytes).collect())
    }
}

/// `KV_DIFF_SKIP=INCRBYFLOAT,SETRANGE` leaves those commands out of the
/// random sequences: a way to look past a known mismatch while it is fixed.
/// `KV_DIFF_SEEDS=N`: run N seeds of each random test instead of the
/// default.
fn random_seeds() -> u64 {
    std::env::var("KV_DIFF_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RANDOM_SEEDS)
}

fn skipped_commands() -> Vec<Vec<u8>> {
    std::env::var("KV_DIFF_SKIP")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase().into_bytes())
        .filter(|s| !s.is_empty())
        .collect()
}

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

const HASH_CASES: &str = r#"
## hset, hget and the listpack order
HSET h a 1 b 2 c 3
HSET h a 10 d 4
HGET h a
HGET h zz
HGET nokey a
HMGET h a zz c
HMGET nokey a b
HGETALL h
HKEYS h
HVALS h
HLEN h
HLEN nokey
HSTRLEN h a
HSTRLEN h zz
HEXISTS h d
HEXISTS h zz
HSET h
HSET h a
HSET h a 1 b
HMSET h e 5 f 6
HMSET h e
HSETNX h a x
HSETNX h new x
HSETNX h2 f v
HGETALL h
DUMP h
TYPE h

## hdel removes the key with its last field
HSET h a 1 b 2
HDEL h a a zz
HDEL h b
EXISTS h
HDEL h b
HDEL h
HLEN h
HGETALL h
HKEYS h
TYPE h

## wrongtype both ways
SET s x
HSET h f 1
HSET s f v
HSETNX s f v
HMSET s f v
HGET s f
HMGET s f
HDEL s f
HLEN s
HSTRLEN s f
HEXISTS s f
HKEYS s
HVALS s
HGETALL s
HINCRBY s f 1
HINCRBYFLOAT s f 1
HRANDFIELD s
HRANDFIELD s 2
HRANDFIELD s 2 x
HSCAN s 0
GET h
MGET h s
APPEND h x
INCR h
DECRBY h 2
INCRBYFLOAT h 1
SETRANGE h 0 x
STRLEN h
GETRANGE h 0 -1
GETDEL h
GETEX h
GETEX h PERSIST
GETSET h x
SETNX h x
SET h y
TYPE h
GET h

## hincrby and hincrbyfloat
HINCRBY h n 5
HINCRBY h n -7
HINCRBY h n x
HINCRBY h n 1.5
HINCRBY h n ""
HSET h s abc m 9223372036854775807 neg -9223372036854775808 sp " 1"
HINCRBY h s 1
HINCRBY h sp 1
HINCRBY h m 1
HINCRBY h m 0
HINCRBY h neg -1
HINCRBY h neg 1
HINCRBYFLOAT h f 10.5
HINCRBYFLOAT h f 0.1
HINCRBYFLOAT h n 1.5e3
HINCRBYFLOAT h s 1
HINCRBYFLOAT h f inf
HINCRBYFLOAT h f -inf
HINCRBYFLOAT h f nan
HINCRBYFLOAT h f x
HINCRBYFLOAT h f ""
HINCRBYFLOAT h g 1e400
HINCRBYFLOAT h g2 0x10
HSET h big 1.18973149535723176502e+4932
HINCRBYFLOAT h big 1e4913
HINCRBYFLOAT h m 1
HGETALL h
DUMP h

## encodings convert past the thresholds, and not back
CONFIG SET hash-max-listpack-entries 4
HSET h a 1 b 2 c 3 d 4
DUMP h
HSET h e 5
HDEL h e d c b
HGETALL h
DUMP h
HSET v f yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy
DUMP v
HSET w yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP w
HINCRBYFLOAT x yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP x
HINCRBY x yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP x
HSETNX x yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy 1
DUMP x
CONFIG SET hash-max-ziplist-entries 512
CONFIG GET hash-max-listpack-entries
CONFIG SET hash-max-listpack-value 2
HSET y a 12 b 3
DUMP y
HSET y c 123
DUMP y
CONFIG SET hash-max-listpack-value 64

## hrandfield shapes
HRANDFIELD nokey
HRANDFIELD nokey 5
HRANDFIELD nokey 5 WITHVALUES
HRANDFIELD nokey 5 x
HRANDFIELD nokey x
HRANDFIELD nokey -9223372036854775808
HRANDFIELD nokey -9223372036854775807 WITHVALUES
HRANDFIELD nokey 1 WITHVALUES extra
HSET h a 1 b 2 c 3
HRANDFIELD h 0
HRANDFIELD h 0 WITHVALUES
HRANDFIELD h 3
HRANDFIELD h 5 WITHVALUES
HRANDFIELD h -5
HRANDFIELD h -5 WITHVALUES
HRANDFIELD h 2
HRANDFIELD h 1 withvalues
HRANDFIELD h -9223372036854775807 WITHVALUES

## hscan of a listpack is one call
HSCAN nokey 0
HSCAN nokey 0 BAD
HSCAN nokey x
HSET h a 1 b 2 ab 3
HSCAN h 0
HSCAN h 0 MATCH a*
HSCAN h 0 MATCH a* COUNT 1
HSCAN h 0 COUNT 0
HSCAN h 0 COUNT x
HSCAN h 0 COUNT
HSCAN h 0 MATCH
HSCAN h 0 BAD 1
HSCAN h x
HSCAN h -1
HSCAN h 18446744073709551616
HSCAN h 7
CONFIG SET hash-max-listpack-entries 1 2

## rename and type of a hash across shards
HSET {a}h f 1 g 2
RENAME {a}h other
HGETALL other
TYPE other
SCAN 0 TYPE hash
RENAMENX other s2
SET s3 x
RENAME s2 s3
HGETALL s3
EXISTS s2
"#;

#[test]
fn hashes_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let failures = run_groups(&mut pair, HASH_CASES);
    assert_no_mismatches("hash groups", failures);
}

// ------------------------------------------------------------ sets

const SET_CASES: &str = r#"
## add, remove, read
SADD s 3 1 2 1
SMEMBERS s
SCARD s
SISMEMBER s 2
SISMEMBER s 02
SMISMEMBER s 1 x 3
SMISMEMBER nope 1
SADD s a
SMEMBERS s
SREM s 1 2 x
SREM s 3 a
EXISTS s
SREM s a
SCARD s
SMEMBERS s
SADD
SADD s
SREM s
SMISMEMBER s

## intset order and widths
SADD i 5 -3 40000 7 -9223372036854775808 9223372036854775807 0 -70000
SMEMBERS i
SREM i 40000
SMEMBERS i
SADD i 007 +1 " 1" 1.0
SMEMBERS i
SISMEMBER i 7
SISMEMBER i 007

## wrong types
SET str v
SADD set a
SADD str a
SREM str a
SCARD str
SMEMBERS str
SISMEMBER str a
SMISMEMBER str a
SPOP str
SPOP str 2
SRANDMEMBER str
SRANDMEMBER str 2
SSCAN str 0
SINTER set str
SINTER missing str
SUNION str set
SDIFF set str
SINTERCARD 2 set str
SINTERSTORE dst set str
SMOVE str set a
SMOVE set str a
SMOVE missing str a
GET set
APPEND set x
INCR set
INCRBY set 2
INCRBYFLOAT set 1
SETRANGE set 0 x
STRLEN set
GETRANGE set 0 1
GETDEL set
GETEX set
GETSET set x
MGET set str missing
TYPE set
SET set v
TYPE set
GET set

## spop and srandmember
SPOP none
SPOP none 3
SRANDMEMBER none
SRANDMEMBER none 3
SRANDMEMBER none -3
SADD one only
SRANDMEMBER one
SRANDMEMBER one 5
SRANDMEMBER one -3
SPOP one
EXISTS one
SADD s a b c d e
SPOP s -1
SPOP s x
SPOP s 0
SPOP s 1 2
SRANDMEMBER s 1 2
SRANDMEMBER s x
SRANDMEMBER s -9223372036854775808
SRANDMEMBER s 0
SRANDMEMBER s 3
SRANDMEMBER s -8
SRANDMEMBER s 100
SPOP s 5
EXISTS s
SADD n 1 2 3
SPOP n 10
EXISTS n

## algebra
SADD a 1 2 3 x
SADD b 2 3 4 y
SADD {a}c 3 z
SINTER a b
SUNION a b
SDIFF a b
SDIFF b a {a}c
SINTER a b missing
SUNION a missing
SDIFF missing a
SINTERCARD 2 a b
SINTERCARD 2 a b LIMIT 1
SINTERCARD 2 a b LIMIT 0
SINTERCARD 3 a b {a}c
SINTERCARD 0 a
SINTERCARD x a
SINTERCARD 3 a b
SINTERCARD 1 a LIMIT -1
SINTERCARD 1 a LIMIT x
SINTERCARD 1 a LIMIT
SINTERCARD 1 a b
SINTERSTORE d a b
SMEMBERS d
SUNIONSTORE d a b {a}c
SMEMBERS d
SDIFFSTORE d a b
SMEMBERS d
SINTERSTORE d a missing
EXISTS d
SET d string
EXPIRE d 10000
SUNIONSTORE d a
TTL d
TYPE d
SDIFFSTORE a a
SMEMBERS a
SINTERSTORE a a b
SMEMBERS a

## smove
SMOVE src dst m
SET dst v
SMOVE src dst m
SADD src m n
SMOVE src dst m
DEL dst
SMOVE src dst zz
SMOVE src dst m
SMEMBERS dst
SMOVE src dst n
EXISTS src
SMEMBERS dst
SMOVE dst dst n
SMOVE dst dst q
SADD i 1 2
SMOVE dst i n
SMEMBERS i

## sscan
SSCAN none 0
SSCAN none x
SADD small 1 2 10
SSCAN small 0
SSCAN small 0 MATCH 1*
SSCAN small 0 COUNT 0
SSCAN small 0 COUNT x
SSCAN small 0 TYPE set
SSCAN small 0 MATCH
SSCAN small abc
SSCAN small -1
SADD lp a b c
SSCAN lp 0 MATCH a*
scanall SSCAN lp
scanall SSCAN small MATCH 1*

## past the thresholds
SADD big 0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40 41 42 43 44 45 46 47 48 49 50 51 52 53 54 55 56 57 58 59 60 61 62 63 64 65 66 67 68 69 70 71 72 73 74 75 76 77 78 79 80 81 82 83 84 85 86 87 88 89 90 91 92 93 94 95 96 97 98 99 100 101 102 103 104 105 106 107 108 109 110 111 112 113 114 115 116 117 118 119 120 121 122 123 124 125 126 127 128 129 130
SCARD big
SADD big xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
SCARD big
SMEMBERS big
scanall SSCAN big COUNT 3
scanall SSCAN big MATCH 1*
SPOP big 1000
EXISTS big
"#;

#[test]
fn sets_match_redis() {
    let Some(mut pair) = Pair::start() else {
        return;
    };
    let failures = run_groups(&mut pair, SET_CASES);
    assert_no_mismatches("set-command groups", failures);
}

/// Keys for the set sequences: few, so types and sets collide, spread
/// over shards, one pair forced onto one shard by its hash tag.
const SET_KEYS: &[&str] = &["s0", "s1", "s2", "s3", "{s}4", "{s}5", "k0"];

impl Generator {
    fn member(&mut self) -> String {
        match self.rng.below(10) {
            0..=4 => self.rng.range(-5, 20).to_string(),
            5 => self
                .rng
                .pick(&[
                    "9223372036854775807",
                    "-9223372036854775808",
                    "70000",
                    "007",
                    "1.5",
                ])
                .to_string(),
            6 => "x".repeat(65),
            _ => self
                .rng
                .pick(&["a", "b", "c", "", "hello world"])
                .to_string(),
        }
    }

    fn set_key(&mut self) -> String {
        self.rng.pick(SET_KEYS).to_string()
    }

    fn set_keys(&mut self, max: usize) -> Vec<String> {
        let n = 1 + self.rng.below(max);
        (0..n).map(|_| self.set_key()).collect()
    }

    /// A random command over sets and strings on a few keys: sets grow past
    /// every threshold (513 integers, 129 members, a 65-byte member).
    fn set_command(&mut self) -> Step {
        let k = self.set_key();
        let mut a: Vec<String> = match self.rng.below(30) {
            0..=4 => {
                let mut v = vec!["SADD".to_string(), k];
                match self.rng.below(20) {
                    0 => v.extend((0..520).map(|i| (i * 3 - 700).to_string())),
                    1 => v.extend((0..130).map(|i| format!("m{i}"))),
                    _ => {
                        for _ in 0..1 + self.rng.below(5) {
                            v.push(self.member());
                        }
                    }
                }
                v
            }
            5 | 6 => {
                let mut v = vec!["SREM".to_string(), k];
                for _ in 0..1 + self.rng.below(4) {
                    v.push(self.member());
                }
                v
            }
            7 => vec!["SISMEMBER".into(), k, self.member()],
            8 => vec!["SMISMEMBER".into(), k, self.member(), self.member()],
            9 => vec!["SCARD".into(), k],
            10 => vec!["SMEMBERS".into(), k],
            11 => {
                let mut v = vec!["SRANDMEMBER".into(), k];
                if self.rng.chance(70) {
                    v.push(self.rng.range(-8, 8).to_string());
                }
                v
            }
            // Only the deterministic SPOPs: the whole set, or nothing.
            12 => vec![
                "SPOP".into(),
                k,
                self.rng.pick(&["1000", "0", "-1", "x"]).to_string(),
            ],
            13 => vec!["SMOVE".into(), k, self.set_key(), self.member()],
            14..=16 => {
                let mut v = vec![self.rng.pick(&["SINTER", "SUNION", "SDIFF"]).to_string()];
                v.extend(self.set_keys(4));
                v
            }
            17 | 18 => {
                let mut v = vec![
                    self.rng
                        .pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])
                        .to_string(),
                    k,
                ];
                v.extend(self.set_keys(3));
                v
            }
            19 => {
                let keys = self.set_keys(3);
                let n = if self.rng.chance(90) {
                    keys.len().to_string()
                } else {
                    self.rng.pick(&["0", "5", "x"]).to_string()
                };
                let mut v = vec!["SINTERCARD".to_string(), n];
                v.extend(keys);
                if self.rng.chance(40) {
                    v.extend(["LIMIT".into(), self.rng.range(-1, 3).to_string()]);
                }
                v
            }
            20 => {
                let mut v = vec!["SSCAN".to_string(), k];
                if self.rng.chance(50) {
                    v.extend([
                        "MATCH".into(),
                        self.rng.pick(&["*", "1*", "m1*", "a"]).to_string(),
                    ]);
                }
                if self.rng.chance(50) {
                    v.extend(["COUNT".into(), self.rng.range(1, 20).to_string()]);
                }
                return Step {
                    args: v.into_iter().map(String::into_bytes).collect(),
                    check: Check::ScanAll,
                };
            }
            21 => vec!["SET".into(), k, self.value()],
            22 => vec![
                self.rng
                    .pick(&["GET", "APPEND", "INCR", "STRLEN", "TYPE", "GETDEL"])
                    .to_string(),
                k,
            ],
            23 => vec!["APPEND".into(), k, "x".into()],
            24 => vec![
                self.rng.pick(&["RENAME", "RENAMENX"]).to_string(),
                k,
                self.set_key(),
            ],
            25 => vec!["DEL".into(), k],
            26 => vec!["EXPIRE".into(), k, self.rel_secs().to_string()],
            27 => vec!["MGET".into(), k, self.set_key()],
            28 => {
                let mut v = vec!["SCAN".to_string(), "0".into(), "TYPE".into(), "set".into()];
                v.extend(["COUNT".into(), "1000".into()]);
                return Step {
                    args: v.into_iter().skip(2).map(String::into_bytes).collect(),
                    check: Check::ScanAll,
                };
            }
            _ => vec!["EXISTS".into(), k],
        };
        // Sometimes break the arity (not SPOP's: without its count it
        // pops at random).
        if self.rng.below(30) == 0 && a.len() > 1 && a[0] != "SPOP" {
            a.pop();
        }
        Step::new(a.into_iter().map(String::into_bytes).collect())
    }
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
