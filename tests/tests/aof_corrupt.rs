//! Damage to the append-only log at every byte offset.
//!
//! A one-shard server (`--threads 1`, so one log file) runs a short script of
//! writes and is stopped with SIGTERM. Then, for every byte offset `o` of the
//! written part of the segment file, a copy of the directory is damaged and a
//! server started on it:
//!
//! - **truncated** to `o` bytes: a torn tail. The server must start (with the
//!   default `aof-load-truncated yes`) and hold exactly the state after the
//!   records that lie wholly inside `0..o`; if `o` cuts a record, its output
//!   must name the segment file (the warning about the cut);
//! - **one byte flipped** (XOR 0xFF) at `o`: either the server refuses to
//!   start (exit status 1, output naming the segment file, the offset of the
//!   damaged record and `kv-server check-aof --fix`), or it starts with
//!   exactly the state after the records before the damaged one. A few
//!   offsets in the zero-filled rest of the segment are flipped too (then the
//!   state must be complete or the start refused).
//!
//! Never anything else: no lost record before the damage, no garbage, no
//! crash. `aof-load-truncated no` with a cut record must refuse to start.
//!
//! The expected states come from the script, not from the server: record `r`
//! of the log is matched to the script's next command (a record holding only
//! `SELECT`s, if the server logs database switches that way, changes
//! nothing), and the match is checked against the record's payload.
//!
//! Environment: `AOF_CORRUPT_JOBS=<n>` servers at a time (default 4),
//! `AOF_CORRUPT_KEEP=1` keeps the directories of failing cases.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::Value;
use tests::resp::{self, Frame};
use tests::{self_check_against_redis, server_bin, RawConn, ReadOutcome, ServerProc};

const SEGMENT_SIZE: &str = "64kb";
/// One shard, the log on, every write durable before its reply, and no
/// snapshot (not even at shutdown): these tests are about the log alone,
/// and a snapshot would hold the records they damage.
const ONE_SHARD_ALWAYS: [&str; 8] = [
    "--threads",
    "1",
    "--appendonly",
    "yes",
    "--appendfsync",
    "always",
    "--save",
    "",
];
const DATABASES: usize = 16;
const LOG_DIR: &str = "appendonlydir";
/// How long a damaged-log server gets to either answer PING or exit.
const DECIDE_TIMEOUT: Duration = Duration::from_secs(20);
const TTL_SECS: i64 = 3600;

/// The writes that build the log: (database, command).
const SCRIPT: &[(usize, &[&str])] = &[
    (0, &["SET", "alpha", "1"]),
    (0, &["SET", "beta", "hello"]),
    (0, &["SET", "gamma", "x y"]),
    (0, &["SET", "counter", "41"]),
    (0, &["INCR", "counter"]),
    (0, &["SET", "delta", "tmp"]),
    (0, &["DEL", "delta"]),
    (0, &["EXPIRE", "alpha", "3600"]),
    (3, &["SET", "db3key", "in-three"]),
    (0, &["SET", "epsilon", "e"]),
    (0, &["APPEND", "beta", "!"]),
    (0, &["SET", "eta", ""]),
];

/// (database, key) -> (value, has an expiry)
type State = BTreeMap<(usize, String), (Vec<u8>, bool)>;

fn apply(state: &mut State, db: usize, args: &[&str]) {
    let key = (db, args[1].to_string());
    match args[0] {
        "SET" => {
            state.insert(key, (args[2].as_bytes().to_vec(), false));
        }
        "INCR" => {
            let e = state.entry(key).or_insert((b"0".to_vec(), false));
            let n: i64 = String::from_utf8_lossy(&e.0).parse().expect("integer");
            e.0 = (n + 1).to_string().into_bytes();
        }
        "DEL" => {
            state.remove(&key);
        }
        "EXPIRE" => {
            if let Some(e) = state.get_mut(&key) {
                e.1 = true;
            }
        }
        "APPEND" => {
            let e = state.entry(key).or_insert((Vec::new(), false));
            e.0.extend_from_slice(args[2].as_bytes());
        }
        other => panic!("the script uses {other}, which apply() does not model"),
    }
}

/// Reads the whole keyspace (every database) over `con`.
fn read_state(con: &mut redis::Connection) -> Result<State, String> {
    let mut pipe = redis::pipe();
    for db in 0..DATABASES {
        pipe.cmd("SELECT").arg(db).ignore().cmd("DBSIZE");
    }
    let sizes: Vec<i64> = pipe.query(con).map_err(|e| format!("DBSIZE: {e}"))?;
    let mut state = State::new();
    for (db, &size) in sizes.iter().enumerate() {
        if size == 0 {
            continue;
        }
        let mut pipe = redis::pipe();
        pipe.cmd("SELECT").arg(db).ignore().cmd("KEYS").arg("*");
        let (keys,): (Vec<String>,) = pipe.query(con).map_err(|e| format!("KEYS: {e}"))?;
        if keys.len() as i64 != size {
            return Err(format!("db {db}: DBSIZE {size} but KEYS * lists {keys:?}"));
        }
        let mut pipe = redis::pipe();
        for k in &keys {
            pipe.cmd("GET").arg(k).cmd("PTTL").arg(k);
        }
        let replies: Vec<Value> = pipe.query(con).map_err(|e| format!("GET/PTTL: {e}"))?;
        for (k, pair) in keys.iter().zip(replies.chunks(2)) {
            let value = match &pair[0] {
                Value::BulkString(v) => v.clone(),
                other => return Err(format!("db {db}: GET {k} replied {other:?}")),
            };
            let has_ttl = match pair[1] {
                Value::Int(-1) => false,
                Value::Int(ms) if ms > 0 && ms <= TTL_SECS * 1000 => true,
                ref other => return Err(format!("db {db}: PTTL {k} replied {other:?}")),
            };
            state.insert((db, k.clone()), (value, has_ttl));
        }
    }
    Ok(state)
}

fn show_state(state: &State) -> String {
    let items: Vec<String> = state
        .iter()
        .map(|((db, k), (v, ttl))| {
            format!(
                "{db}:{k}={}{}",
                resp::show(v),
                if *ttl { " (ttl)" } else { "" }
            )
        })
        .collect();
    format!("{{{}}}", items.join(", "))
}

/// A record of the log: its byte range in the segment and its payload.
#[derive(Debug)]
struct Record {
    start: usize,
    end: usize,
    kind: u8,
    payload: Vec<u8>,
}

/// Walks the records of `bytes[..written]` (contiguous from offset 0).
fn parse_records(bytes: &[u8], written: usize) -> Vec<Record> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < written {
        assert!(
            pos + 32 <= written && bytes[pos] == 0xA1,
            "no record header at offset {pos} of the undamaged log (written length {written}): {}",
            resp::show(&bytes[pos..written.min(pos + 64)])
        );
        let len = u32::from_le_bytes(bytes[pos + 4..pos + 8].try_into().unwrap()) as usize;
        let end = pos + 32 + len;
        assert!(
            end <= written,
            "record at {pos} runs past the written length"
        );
        out.push(Record {
            start: pos,
            end,
            kind: bytes[pos + 1],
            payload: bytes[pos + 32..end].to_vec(),
        });
        pos = end;
    }
    out
}

/// The RESP commands of a record payload.
fn decode_commands(payload: &[u8]) -> Vec<Vec<Vec<u8>>> {
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        match resp::parse(rest) {
            Ok(Some((Frame::Array(Some(items)), n))) => {
                let args = items
                    .into_iter()
                    .map(|f| match f {
                        Frame::Bulk(Some(b)) => b,
                        other => panic!("non-bulk argument {other:?} in {}", resp::show(payload)),
                    })
                    .collect();
                out.push(args);
                rest = &rest[n..];
            }
            other => panic!(
                "record payload is not RESP commands ({other:?}): {}",
                resp::show(payload)
            ),
        }
    }
    out
}

/// `states[r]`: the expected keyspace after the first `r` records.
fn expected_states(records: &[Record]) -> Vec<State> {
    let mut states = vec![State::new()];
    let mut next = 0;
    let mut state = State::new();
    for (r, rec) in records.iter().enumerate() {
        let cmds = if rec.kind == 1 {
            decode_commands(&rec.payload)
        } else {
            Vec::new()
        };
        let only_select = cmds
            .iter()
            .all(|c| c.first().is_some_and(|n| n.eq_ignore_ascii_case(b"SELECT")));
        if !only_select {
            let Some(&(db, args)) = SCRIPT.get(next) else {
                panic!(
                    "record {r} ({}) has no matching command: the script has {} writes",
                    resp::show(&rec.payload),
                    SCRIPT.len()
                );
            };
            let key = args[1].as_bytes();
            assert!(
                cmds.iter().any(|c| c.get(1).is_some_and(|k| k == key)),
                "record {r} ({}) does not look like script command {next} ({})",
                resp::show(&rec.payload),
                resp::show_cmd(args)
            );
            apply(&mut state, db, args);
            next += 1;
        }
        states.push(state.clone());
    }
    assert_eq!(
        next,
        SCRIPT.len(),
        "the log holds records for {next} of the {} writes: {:?}",
        SCRIPT.len(),
        records
            .iter()
            .map(|r| resp::show(&r.payload))
            .collect::<Vec<_>>()
    );
    states
}

fn copy_dir(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap_or_else(|e| panic!("mkdir {}: {e}", to.display()));
    for entry in fs::read_dir(from).unwrap_or_else(|e| panic!("read {}: {e}", from.display())) {
        let entry = entry.expect("dir entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("file type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            fs::copy(entry.path(), &target)
                .unwrap_or_else(|e| panic!("copy {}: {e}", entry.path().display()));
        }
    }
}

/// A scratch directory, removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(label: &str) -> Scratch {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path =
            std::env::temp_dir().join(format!("kv-aof-{label}-{}-{nanos}", std::process::id()));
        fs::create_dir_all(&path).expect("create a scratch dir");
        Scratch(path)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A server process started by [`launch`]; SIGKILLed by PID and reaped on drop.
struct Proc {
    child: Child,
    port: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Launch {
    Started(Proc),
    Exited(ExitStatus),
    /// Neither answered PING nor exited in time.
    Hung,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

fn ping_is_from(port: u16, pid: u32) -> bool {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut conn) = RawConn::try_connect(addr, Duration::from_millis(200)) else {
        return false;
    };
    if conn.send(&resp::encode(&["INFO", "server"])).is_err() {
        return false;
    }
    match conn.try_read_reply(Duration::from_secs(2)) {
        ReadOutcome::Reply(r) => {
            let text = String::from_utf8_lossy(&r);
            text.lines()
                .any(|l| l.trim() == format!("process_id:{pid}"))
        }
        _ => false,
    }
}

/// Starts the server on `data` (output to `out`): started (answers and is
/// this process), exited, or hung.
fn launch(data: &Path, out: &Path, extra: &[&str]) -> Launch {
    for _attempt in 0..5 {
        let port = free_port();
        let child = Command::new(server_bin())
            .arg("--port")
            .arg(port.to_string())
            .arg("--bind")
            .arg("127.0.0.1")
            .arg("--dir")
            .arg(data)
            .args(ONE_SHARD_ALWAYS)
            .args(["--aof-segment-size", SEGMENT_SIZE])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(File::create(out).expect("create the output file"))
            .stderr(
                File::options()
                    .append(true)
                    .open(out)
                    .expect("open the output file"),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", server_bin().display()));
        let mut proc = Proc { child, port };
        let deadline = Instant::now() + DECIDE_TIMEOUT;
        let mut pause = Duration::from_millis(1);
        let status = loop {
            if let Ok(Some(status)) = proc.child.try_wait() {
                break status;
            }
            if ping_is_from(proc.port, proc.child.id()) {
                return Launch::Started(proc);
            }
            if Instant::now() > deadline {
                return Launch::Hung;
            }
            thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(20));
        };
        let output = fs::read_to_string(out).unwrap_or_default();
        if output.contains("in use") || output.contains("os error 98") {
            continue; // the port was taken meanwhile
        }
        return Launch::Exited(status);
    }
    panic!("could not find a free port in 5 attempts");
}

fn connect(port: u16) -> redis::Connection {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("url");
    let con = client
        .get_connection_with_timeout(Duration::from_secs(10))
        .expect("connect");
    con.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    con
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Damage {
    None,
    Truncate(usize),
    Flip(usize),
}

impl Damage {
    fn describe(&self) -> String {
        match self {
            Damage::None => "undamaged copy".to_string(),
            Damage::Truncate(o) => format!("segment truncated to {o} bytes"),
            Damage::Flip(o) => format!("byte {o} of the segment XORed with 0xFF"),
        }
    }

    fn offset(&self) -> Option<usize> {
        match *self {
            Damage::None => None,
            Damage::Truncate(o) | Damage::Flip(o) => Some(o),
        }
    }
}

struct Case {
    damage: Damage,
    extra: &'static [&'static str],
}

/// What the base log looks like.
struct Base {
    data: PathBuf,
    /// The segment file, relative to the data dir.
    segment: PathBuf,
    records: Vec<Record>,
    states: Vec<State>,
    written: usize,
}

impl Base {
    /// Records wholly before `o`.
    fn complete_before(&self, o: usize) -> usize {
        self.records.iter().filter(|r| r.end <= o).count()
    }

    /// The record containing byte `o`, if any.
    fn record_at(&self, o: usize) -> Option<&Record> {
        self.records.iter().find(|r| r.start <= o && o < r.end)
    }
}

fn mentions_number_on_line_with(output: &str, needle: &str, number: usize) -> bool {
    let n = number.to_string();
    output.lines().filter(|l| l.contains(needle)).any(|l| {
        l.match_indices(&n).any(|(i, _)| {
            let before = l[..i].chars().next_back();
            let after = l[i + n.len()..].chars().next();
            !before.is_some_and(|c| c.is_ascii_digit())
                && !after.is_some_and(|c| c.is_ascii_digit())
        })
    })
}

fn damage_file(seg: &Path, damage: Damage) {
    match damage {
        Damage::None => {}
        Damage::Truncate(o) => {
            let f = File::options().write(true).open(seg).expect("open segment");
            f.set_len(o as u64).expect("truncate");
        }
        Damage::Flip(o) => {
            let mut bytes = fs::read(seg).expect("read segment");
            bytes[o] ^= 0xFF;
            fs::write(seg, &bytes).expect("write segment");
        }
    }
}

/// A refusal must be exit status 1 with output naming the segment file, the
/// offset of the damaged record (when known) and the repair command.
fn check_refusal(
    status: ExitStatus,
    text: &str,
    seg: &Path,
    record_start: Option<usize>,
) -> Result<(), String> {
    let seg_path = seg.display().to_string();
    let seg_name = seg
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    if status.code() != Some(1) {
        return Err(format!("exited with {status}, expected status 1\n{text}"));
    }
    if !text.contains(&seg_path) || !text.contains("check-aof --fix") {
        return Err(format!(
            "refused to start, but the output does not name both the segment file \
             {seg_path} and `check-aof --fix`:\n{text}"
        ));
    }
    if let Some(start) = record_start {
        if !mentions_number_on_line_with(text, &seg_name, start) {
            return Err(format!(
                "refused to start, but no line naming {seg_name} gives the offset {start} of \
                 the damaged record:\n{text}"
            ));
        }
    }
    Ok(())
}

/// Runs one case; `Err` describes a failure. `Ok` tells what happened.
fn run_case(base: &Base, case: &Case, dir: &Path) -> Result<String, String> {
    let data = dir.join("data");
    copy_dir(&base.data, &data);
    let seg = data.join(&base.segment);
    damage_file(&seg, case.damage);
    let out = dir.join("output.log");
    let launched = launch(&data, &out, case.extra);
    let output = || fs::read_to_string(&out).unwrap_or_default();
    let seg_name = base
        .segment
        .file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned();
    let load_truncated = !case.extra.contains(&"no");
    let k = case
        .damage
        .offset()
        .map_or(base.records.len(), |o| base.complete_before(o));
    let cut_mid_record = matches!(case.damage, Damage::Truncate(o) if base.record_at(o).is_some_and(|r| r.start != o));
    let must_refuse = !load_truncated && cut_mid_record;
    let may_refuse = must_refuse || matches!(case.damage, Damage::Flip(_));
    match launched {
        Launch::Hung => Err(format!(
            "neither answered PING nor exited within {DECIDE_TIMEOUT:?}\n{}",
            output()
        )),
        Launch::Exited(status) => {
            let text = output();
            if !may_refuse {
                return Err(format!(
                    "refused to start ({status}), expected a start with the first {k} records\n{text}"
                ));
            }
            let bad = case.damage.offset().and_then(|o| base.record_at(o));
            check_refusal(status, &text, &seg, bad.map(|r| r.start))?;
            Ok("refused".to_string())
        }
        Launch::Started(proc) => {
            if must_refuse {
                return Err(format!(
                    "started although aof-load-truncated is no and a record is cut\n{}",
                    output()
                ));
            }
            let mut con = connect(proc.port);
            let got = read_state(&mut con).map_err(|e| format!("{e}\n{}", output()))?;
            drop(con);
            drop(proc);
            if got != base.states[k] {
                let close = base.states.iter().position(|s| *s == got);
                return Err(format!(
                    "started, but the data is not the state after the {k} records before the \
                     damage.\nexpected: {}\ngot:      {}\n(got equals the state after {close:?} \
                     records)\n{}",
                    show_state(&base.states[k]),
                    show_state(&got),
                    output()
                ));
            }
            if cut_mid_record && !output().contains(&seg_name) {
                return Err(format!(
                    "started correctly, but no warning names the segment {seg_name} whose torn \
                     tail was cut:\n{}",
                    output()
                ));
            }
            Ok(format!("started with {k} records"))
        }
    }
}

/// Runs the script on a fresh one-shard server in `data`, stops it with
/// SIGTERM, and reads the log back.
fn build_base(data: &Path) -> Base {
    let data_str = data.to_str().expect("UTF-8 temp path");
    let mut server = ServerProc::start(
        &[
            &["--dir", data_str, "--aof-segment-size", SEGMENT_SIZE][..],
            &ONE_SHARD_ALWAYS,
        ]
        .concat(),
    );
    let mut con = server.conn();
    let mut expected = State::new();
    let mut db = 0;
    for &(want_db, args) in SCRIPT {
        if want_db != db {
            let _: () = redis::cmd("SELECT")
                .arg(want_db)
                .query(&mut con)
                .expect("SELECT");
            db = want_db;
        }
        let mut c = redis::cmd(args[0]);
        for a in &args[1..] {
            c.arg(*a);
        }
        let reply: Value = c
            .query(&mut con)
            .unwrap_or_else(|e| panic!("{}: {e}", args.join(" ")));
        let ok = match args[0] {
            "SET" => reply == Value::Okay,
            "DEL" | "EXPIRE" => reply == Value::Int(1),
            _ => matches!(reply, Value::Int(_)),
        };
        assert!(ok, "{} replied {reply:?}", resp::show_cmd(args));
        apply(&mut expected, db, args);
        if db != 0 {
            let _: () = redis::cmd("SELECT").arg(0).query(&mut con).expect("SELECT");
            db = 0;
        }
    }
    let live = read_state(&mut con).expect("read the live state");
    assert_eq!(
        show_state(&live),
        show_state(&expected),
        "the live server disagrees with the script's model"
    );
    drop(con);
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.exit_status().is_none() {
        assert!(
            Instant::now() < deadline,
            "the server did not exit on SIGTERM"
        );
        thread::sleep(Duration::from_millis(5));
    }
    drop(server);

    let shard = data.join(LOG_DIR).join("shard-0");
    let mut with_data = Vec::new();
    for entry in fs::read_dir(&shard).unwrap_or_else(|e| panic!("{}: {e}", shard.display())) {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        if name.starts_with("seg-") {
            let bytes = fs::read(&path).expect("read segment");
            if bytes.iter().any(|&b| b != 0) {
                with_data.push((path, bytes));
            }
        }
    }
    assert_eq!(
        with_data.len(),
        1,
        "expected exactly one segment with data in {}: {:?}",
        shard.display(),
        with_data.iter().map(|(p, _)| p).collect::<Vec<_>>()
    );
    let (path, bytes) = with_data.pop().expect("one segment");
    let written = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let records = parse_records(&bytes, written);
    let states = expected_states(&records);
    assert_eq!(
        show_state(states.last().expect("states")),
        show_state(&expected),
        "replaying the script's commands record by record does not give the live state"
    );
    println!(
        "log: {} ({} bytes preallocated), {written} bytes written, {} records at {:?}",
        path.display(),
        bytes.len(),
        records.len(),
        records.iter().map(|r| r.start).collect::<Vec<_>>()
    );
    Base {
        data: data.to_path_buf(),
        segment: path.strip_prefix(data).expect("inside data").to_path_buf(),
        records,
        states,
        written,
    }
}

#[test]
fn damaged_log_loads_an_exact_prefix_or_is_refused() {
    if self_check_against_redis() {
        eprintln!("NOTE: aof_corrupt tests our log format; skipped with KV_TEST_SERVER=redis");
        return;
    }
    let started = Instant::now();
    let scratch = Scratch::new("corrupt");
    let base = build_base(&scratch.0.join("base"));
    let seg_len = fs::metadata(base.data.join(&base.segment))
        .expect("segment")
        .len() as usize;

    let mut cases = vec![Case {
        damage: Damage::None,
        extra: &[],
    }];
    for o in 0..base.written {
        cases.push(Case {
            damage: Damage::Truncate(o),
            extra: &[],
        });
        cases.push(Case {
            damage: Damage::Flip(o),
            extra: &[],
        });
    }
    // The zero-filled rest of the segment.
    let w = base.written;
    let mut zeros = vec![w, w + 1, w + 31, w + 32, w + 100, 4095, 4096, seg_len - 1];
    zeros.retain(|&o| o >= w && o < seg_len);
    zeros.sort_unstable();
    zeros.dedup();
    for o in zeros {
        cases.push(Case {
            damage: Damage::Flip(o),
            extra: &[],
        });
    }
    // aof-load-truncated no: a cut record is refused, a cut at a record
    // boundary is a clean end.
    let no: &'static [&'static str] = &["--aof-load-truncated", "no"];
    let last = base.records.last().expect("records");
    let middle = &base.records[base.records.len() / 2];
    for o in [
        last.start + 40.min(last.end - last.start - 1),
        middle.start + 5,
        middle.end - 1,
        middle.start,
        w,
    ] {
        cases.push(Case {
            damage: Damage::Truncate(o),
            extra: no,
        });
    }

    let jobs: usize = std::env::var("AOF_CORRUPT_JOBS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4)
        .max(1);
    let keep = std::env::var_os("AOF_CORRUPT_KEEP").is_some();
    let next = AtomicUsize::new(0);
    let failures: Mutex<Vec<(usize, String)>> = Mutex::new(Vec::new());
    let outcomes: Mutex<BTreeMap<String, usize>> = Mutex::new(BTreeMap::new());
    thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let dir = scratch.0.join(format!("case-{i}"));
                let result = run_case(&base, case, &dir);
                match result {
                    Ok(what) => {
                        *outcomes.lock().unwrap().entry(what).or_default() += 1;
                        let _ = fs::remove_dir_all(&dir);
                    }
                    Err(why) => {
                        let kept = if keep {
                            let to = std::env::temp_dir()
                                .join(format!("kv-aof-corrupt-failed-{}-{i}", std::process::id()));
                            let _ = fs::rename(&dir, &to);
                            format!(" (kept in {})", to.display())
                        } else {
                            let _ = fs::remove_dir_all(&dir);
                            String::new()
                        };
                        let msg = format!(
                            "{} {}{kept}: {why}",
                            case.damage.describe(),
                            case.extra.join(" ")
                        );
                        failures.lock().unwrap().push((i, msg));
                    }
                }
            });
        }
    });
    let mut failures = failures.into_inner().unwrap();
    failures.sort();
    println!(
        "aof_corrupt: {} cases ({jobs} at a time) in {:.1?}; outcomes: {:?}",
        cases.len(),
        started.elapsed(),
        outcomes.into_inner().unwrap()
    );
    if !failures.is_empty() {
        let shown: Vec<&str> = failures.iter().take(8).map(|(_, m)| m.as_str()).collect();
        panic!(
            "{} of {} cases failed; the first ones:\n\n{}",
            failures.len(),
            cases.len(),
            shown.join("\n\n")
        );
    }
}

/// Stops `server` with SIGTERM and waits for it to exit.
fn stop(mut server: ServerProc) {
    server.signal("TERM");
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.exit_status().is_none() {
        assert!(
            Instant::now() < deadline,
            "the server did not exit on SIGTERM"
        );
        thread::sleep(Duration::from_millis(5));
    }
}

/// Writes `count` values of 1000 bytes on a one-shard server with segments of
/// `segment_size`, stops it, and returns the segment files holding data
/// (in LSN order) with their bytes.
fn build_bulk_log(data: &Path, segment_size: &str, count: usize) -> Vec<(PathBuf, Vec<u8>)> {
    let data_str = data.to_str().expect("UTF-8 temp path");
    let server = ServerProc::start(
        &[
            &["--dir", data_str, "--aof-segment-size", segment_size][..],
            &ONE_SHARD_ALWAYS,
        ]
        .concat(),
    );
    let mut con = server.conn();
    let mut i = 0;
    while i < count {
        let mut pipe = redis::pipe();
        for j in i..count.min(i + 200) {
            let value = vec![b'a' + (j % 26) as u8; 1000];
            pipe.cmd("SET").arg(format!("bulk:{j}")).arg(value).ignore();
        }
        let () = pipe.query(&mut con).expect("bulk SETs");
        i += 200;
    }
    drop(con);
    stop(server);
    let shard = data.join(LOG_DIR).join("shard-0");
    let mut segs: Vec<(PathBuf, Vec<u8>)> = fs::read_dir(&shard)
        .unwrap_or_else(|e| panic!("{}: {e}", shard.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("seg-"))
        })
        .map(|p| {
            let bytes = fs::read(&p).expect("read segment");
            (p, bytes)
        })
        .filter(|(_, b)| b.iter().any(|&x| x != 0))
        .collect();
    segs.sort();
    segs
}

/// Damage before the end of the log: a bad record with valid records after
/// it, in a segment that is not the last one, or in the last one, far from
/// its end or within the last write (8 MiB). The server must refuse to
/// start, naming the file, the offset and the repair command, change no
/// file, and `check-aof` must refuse the same log.
#[test]
fn damage_before_the_tail_is_refused() {
    if self_check_against_redis() {
        eprintln!("NOTE: aof_corrupt tests our log format; skipped with KV_TEST_SERVER=redis");
        return;
    }
    let started = Instant::now();
    let scratch = Scratch::new("before-tail");
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut try_case = |name: &str, data: &Path, seg: &Path, damage: Damage, start: usize| {
        cases += 1;
        let dir = scratch.0.join(format!("case-{cases}"));
        let copy = dir.join("data");
        copy_dir(data, &copy);
        let seg_copy = copy.join(seg.strip_prefix(data).expect("inside data"));
        damage_file(&seg_copy, damage);
        let damaged = fs::read(&seg_copy).expect("read damaged segment");
        let out = dir.join("output.log");
        let result = match launch(&copy, &out, &[]) {
            Launch::Exited(status) => {
                let text = fs::read_to_string(&out).unwrap_or_default();
                check_refusal(status, &text, &seg_copy, Some(start))
                    .and_then(|()| {
                        // A refused start changes nothing.
                        if fs::read(&seg_copy).ok().as_ref() == Some(&damaged) {
                            Ok(())
                        } else {
                            Err("the refused start changed the segment".to_string())
                        }
                    })
                    .and_then(|()| {
                        // check-aof agrees with the start, before and after.
                        let log_dir = copy.join(LOG_DIR);
                        let check = Command::new(server_bin())
                            .arg("check-aof")
                            .arg(&log_dir)
                            .output()
                            .expect("run check-aof");
                        if check.status.code() == Some(1) {
                            Ok(())
                        } else {
                            Err(format!(
                                "check-aof exited with {} on a log the start refused:\n{}",
                                check.status,
                                String::from_utf8_lossy(&check.stdout)
                            ))
                        }
                    })
            }
            Launch::Started(proc) => {
                let mut con = connect(proc.port);
                let keys = read_state(&mut con).map(|s| s.len());
                Err(format!(
                    "started (with {keys:?} keys) instead of refusing\n{}",
                    fs::read_to_string(&out).unwrap_or_default()
                ))
            }
            Launch::Hung => Err("neither answered PING nor exited".to_string()),
        };
        if let Err(why) = result {
            failures.push(format!("{name} ({}): {why}", damage.describe()));
        }
        let _ = fs::remove_dir_all(&dir);
    };

    // Three 64 KiB segments: damage in the first one.
    let multi = scratch.0.join("multi");
    let segs = build_bulk_log(&multi, SEGMENT_SIZE, 150);
    assert!(
        segs.len() >= 2,
        "150 KB of writes with {SEGMENT_SIZE} segments made {} segment(s)",
        segs.len()
    );
    let (first, bytes) = &segs[0];
    let written = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let records = parse_records(bytes, written);
    let mid = &records[records.len() / 2];
    let last = records.last().expect("records");
    for (name, damage, start) in [
        (
            "middle record of an earlier segment",
            Damage::Flip(mid.start + 40),
            mid.start,
        ),
        (
            "last record of an earlier segment",
            Damage::Flip(last.start + 40),
            last.start,
        ),
        (
            "earlier segment cut short",
            Damage::Truncate(last.start + 40),
            last.start,
        ),
        ("first byte of an earlier segment", Damage::Flip(0), 0),
    ] {
        try_case(name, &multi, first, damage, start);
    }

    // 20 MB of records in segments growing from 1 MiB to 16 MiB: the last
    // one holds megabytes. Damage near its start, and within its last
    // megabytes (the largest single write is 8 MiB), with valid records
    // after it.
    let big = scratch.0.join("big");
    let segs = build_bulk_log(&big, "16mb", 20_000);
    let (seg, bytes) = segs.last().expect("segments with data");
    let written = bytes.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
    let records = parse_records(bytes, written);
    assert!(
        written > 1_400_000,
        "the last segment holds only {written} bytes"
    );
    let victim = &records[2];
    try_case(
        "early record of the last segment, far before its end",
        &big,
        seg,
        Damage::Flip(victim.start + 40),
        victim.start,
    );
    // Inside the last 8 MiB (the largest single write) but with valid
    // records after it: a flipped byte is not a torn write. An earlier
    // start-up cut this as a torn tail and lost every record after it.
    for before_end in [1_300_000, 100_000, 5_000] {
        let victim = records
            .iter()
            .find(|r| r.start + before_end >= written)
            .expect("a record that far before the end");
        try_case(
            &format!("record {before_end} bytes before the end of the last segment"),
            &big,
            seg,
            Damage::Flip(victim.start + 40),
            victim.start,
        );
    }

    println!(
        "damage_before_the_tail_is_refused: {cases} cases in {:.1?}",
        started.elapsed()
    );
    assert!(
        failures.is_empty(),
        "{} of {cases} cases failed:\n\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}
