//! The harness: a pair of servers (ours and redis-server), sessions that
//! send the same commands to both, how replies are compared ([`Check`]),
//! and the hand-written groups' parser and runner.

use super::*;

pub(crate) type Args = Vec<Vec<u8>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
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
pub(crate) struct Step {
    pub(crate) args: Args,
    pub(crate) check: Check,
}

impl Step {
    pub(crate) fn new(args: Args) -> Step {
        let check = check_for(&args);
        Step { args, check }
    }
}

/// The comparison a command needs, from its name.
pub(crate) fn check_for(args: &Args) -> Check {
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
    pub(crate) fn allowing(self, late: Duration) -> Check {
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
pub(crate) struct Pair {
    pub(crate) ours: ServerProc,
    pub(crate) redis: RedisProc,
}

impl Pair {
    pub(crate) fn start() -> Option<Pair> {
        let redis = RedisProc::start()?;
        let ours = ServerProc::start(&["--threads", "4"]);
        Some(Pair { ours, redis })
    }

    pub(crate) fn session(&self) -> Session {
        Session {
            ours: self.ours.raw(),
            redis: self.redis.raw(),
            history: Vec::new(),
        }
    }

    pub(crate) fn assert_alive(&mut self) {
        self.ours.assert_running();
        self.redis.assert_running();
    }
}

/// One connection to each server, fed the same steps.
pub(crate) struct Session {
    pub(crate) ours: RawConn,
    pub(crate) redis: RawConn,
    pub(crate) history: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Mismatch {
    pub(crate) command: String,
    pub(crate) redis: String,
    pub(crate) ours: String,
    pub(crate) context: Vec<String>,
}

impl Mismatch {
    pub(crate) fn render(&self, label: &str) -> String {
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

pub(crate) fn read_one(conn: &mut RawConn) -> Vec<u8> {
    match conn.try_read_reply(REPLY_TIMEOUT) {
        ReadOutcome::Reply(r) => r,
        ReadOutcome::Closed(b) => [b"<connection closed> ".as_slice(), &b].concat(),
        ReadOutcome::TimedOut(b) => [b"<no reply within 10s> ".as_slice(), &b].concat(),
    }
}

pub(crate) fn int_of(reply: &[u8]) -> Option<i64> {
    match resp::parse(reply) {
        Ok(Some((Frame::Int(n), len))) if len == reply.len() => Some(n),
        _ => None,
    }
}

pub(crate) fn sorted_bulks(reply: &[u8]) -> Option<Vec<Vec<u8>>> {
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

pub(crate) fn first_line(reply: &[u8]) -> &[u8] {
    let end = reply
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(reply.len());
    &reply[..end]
}

/// A flat array of bulks as pairs, or None if not one of an even length.
pub(crate) fn pairs_of(items: &[Frame]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
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

pub(crate) fn sort_pairs(mut p: Vec<(Vec<u8>, Vec<u8>)>) -> Vec<(Vec<u8>, Vec<u8>)> {
    p.sort();
    p
}

pub(crate) fn sorted_pairs(reply: &[u8]) -> Option<Vec<(Vec<u8>, Vec<u8>)>> {
    match resp::parse(reply) {
        Ok(Some((Frame::Array(Some(items)), len))) if len == reply.len() => {
            pairs_of(&items).map(sort_pairs)
        }
        _ => None,
    }
}

/// An HSCAN reply: its cursor and its batch as pairs (None: not pairs).
#[allow(clippy::type_complexity)]
pub(crate) fn hscan_reply(reply: &[u8]) -> Option<(Vec<u8>, Option<Vec<(Vec<u8>, Vec<u8>)>>)> {
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
pub(crate) fn scan_all(conn: &mut RawConn, opts: &[Vec<u8>]) -> Result<BTreeSet<Vec<u8>>, Vec<u8>> {
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

pub(crate) fn show_keys(r: &Result<BTreeSet<Vec<u8>>, Vec<u8>>) -> String {
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
pub(crate) fn same_reply(check: Check, theirs: &[u8], ours: &[u8]) -> bool {
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
    pub(crate) fn pipeline(&mut self, steps: &[Step]) -> Result<(), (usize, Mismatch)> {
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
    pub(crate) fn step(&mut self, step: &Step) -> Result<Vec<u8>, Mismatch> {
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
    pub(crate) fn random_sequence(
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
    pub(crate) fn compare_state(&mut self) -> Result<(), Mismatch> {
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

pub(crate) fn args(a: &[&str]) -> Args {
    a.iter().map(|s| s.as_bytes().to_vec()).collect()
}

// ------------------------------------------------------ hand-written cases

/// Parses one line of a hand-written sequence: whitespace-separated words,
/// `"..."` with `\"`, `\\`, `\r`, `\n`, `\t`, `\xHH` escapes, `''` for raw
/// text. A leading `scanall` word marks a full SCAN iteration.
pub(crate) fn parse_line(line: &str) -> Step {
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
pub(crate) fn run_groups(pair: &mut Pair, text: &str) -> Vec<String> {
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
pub(crate) fn report_all() -> bool {
    std::env::var_os("KV_DIFF_ALL").is_some_and(|v| v == "1")
}

pub(crate) fn assert_no_mismatches(what: &str, failures: Vec<String>) {
    if !failures.is_empty() {
        panic!(
            "{} {what} differ from redis-server:\n\n{}",
            failures.len(),
            failures.join("\n")
        );
    }
}
