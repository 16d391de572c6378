//! Offline subcommands of the server binary, run instead of the server when
//! the first argument names one:
//!
//! - `kv-server check-aof [--fix] <log dir>`: verifies every shard's log
//!   (checksums, lsn continuity, payloads, transactions across shards) and
//!   prints a report; `--fix` cuts a torn tail (the unacknowledged end of
//!   the last write). Damage before the end of a log is never "fixed".
//!   Exit 0 when the log is valid (or was fixed), 1 otherwise.
//! - `kv-server export-aof <log dir> [<output file> | -]`: writes the log as
//!   a plain Redis AOF (RESP commands, `SELECT` where the database changes)
//!   to the file or to stdout, and a summary to stderr. Exit 0 or 1.
//!
//! - `kv-server check-snapshot <file.kvs | snapshot dir>`: verifies one
//!   snapshot file, or every snapshot a directory's manifest keeps (each
//!   chain whole), and prints what they hold. Exit 0 if all is valid, 1
//!   otherwise.
//!
//! - `kv-server backup <snapshot dir> <backup dir> [--snapshot ID]`: copies
//!   a consistent snapshot (the newest, or ID, with its chain) of a running
//!   or stopped server into a backup directory and verifies the copy; see
//!   docs/OPERATIONS.md.
//!
//! The logic lives in `engine::journal::recovery`; this module parses
//! arguments and prints. Every function takes its output streams so tests
//! can capture them.

// Remove once main.rs calls `run_tool`.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use engine::journal::recovery::{
    check, export_aof, CheckReport, ExportSummary, RecoveryError, ShardCheck, TornTailRefusal,
};

const CHECK_USAGE: &str = "\
Usage: kv-server check-aof [--fix] <log dir>

Verifies the append-only log in <log dir> (the directory holding shard-<i>/):
every record's checksum, lsn continuity across segments, payloads, and
transactions across shards. Prints one line per shard and a verdict.

  --fix       cut a torn tail (an incomplete last write, never acknowledged
              to a client) so the log loads with aof-load-truncated no.
              Damage before the end of a log is reported, never cut.
  -h, --help  print this help

Exit status: 0 if the log is valid (or was fixed), 1 otherwise.";

const EXPORT_USAGE: &str = "\
Usage: kv-server export-aof [--snapshot-dir <dir>] <log dir> [<output file> | -]

Writes the dataset in <log dir> as a plain Redis AOF (RESP commands, with
SELECT where the database changes) to <output file>, or to stdout when it is
omitted or '-'. A summary goes to stderr. Nothing in <log dir> or the
snapshot directory is changed.

A log that still starts at its first record is written record by record:
those a restart would load (a torn tail is left out, and so are multi-shard
transactions that never became durable on every shard). A log that a
snapshot has rebased (BGREWRITEAOF, or any snapshot taken with the log on)
holds only the changes after that snapshot: then the state a restart would
load (the snapshot, then the log after it) is written as Redis's AOF
rewrite writes a keyspace: SET per key, PEXPIREAT for keys with an expiry.

  --snapshot-dir <dir>  the snapshot directory whose manifest names the log
                        [default: snapshotdir beside <log dir>]
  -h, --help            print this help

Exit status: 0 on success, 1 on error.";

/// Runs the offline tool named by `args[0]` (the arguments after the
/// program name) and returns its exit code, or `None` when `args[0]` is not
/// a tool name (start the server).
pub fn run_tool(args: &[OsString]) -> Option<i32> {
    let name = args.first()?;
    let rest = args.get(1..).unwrap_or_default();
    let stdout = io::stdout();
    let stderr = io::stderr();
    let code = if name == "check-aof" {
        check_aof(rest, &mut stdout.lock(), &mut stderr.lock())
    } else if name == "export-aof" {
        export_aof_tool(rest, &mut stdout.lock(), &mut stderr.lock())
    } else if name == "check-snapshot" {
        check_snapshot(rest, &mut stdout.lock(), &mut stderr.lock())
    } else if name == "backup" {
        backup(rest, &mut stdout.lock(), &mut stderr.lock())
    } else {
        return None;
    };
    Some(code)
}

/// Arguments of a tool: options (`--x`) and positional arguments.
enum Parsed {
    Help,
    Run {
        flags: Vec<String>,
        positional: Vec<OsString>,
    },
}

/// Splits `args` into known flags and positional arguments; an unknown
/// option is an error. `-` alone and everything after `--` are positional.
fn parse_args(args: &[OsString], known: &[&str]) -> Result<Parsed, String> {
    let mut flags = Vec::new();
    let mut positional = Vec::new();
    let mut options_done = false;
    for a in args {
        let s = a.to_str();
        if options_done || a.len() < 2 || !a.as_encoded_bytes().starts_with(b"-") {
            positional.push(a.clone());
            continue;
        }
        match s {
            Some("-h" | "--help") => return Ok(Parsed::Help),
            Some("--") => options_done = true,
            Some(f) if known.contains(&f) => flags.push(f.to_string()),
            _ => return Err(format!("unknown option '{}'", a.to_string_lossy())),
        }
    }
    Ok(Parsed::Run { flags, positional })
}

fn usage_error(err: &mut impl Write, tool: &str, msg: &str, usage: &str) -> i32 {
    let _ = writeln!(err, "kv-server {tool}: {msg}\n\n{usage}");
    1
}

// ---------------------------------------------------------------------------
// check-aof

/// `check-aof [--fix] <log dir>`: the report goes to `out`, usage errors
/// to `err`. Returns the exit code.
pub fn check_aof(args: &[OsString], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let (flags, positional) = match parse_args(args, &["--fix"]) {
        Ok(Parsed::Help) => {
            let _ = writeln!(out, "{CHECK_USAGE}");
            return 0;
        }
        Ok(Parsed::Run { flags, positional }) => (flags, positional),
        Err(e) => return usage_error(err, "check-aof", &e, CHECK_USAGE),
    };
    let dir = match positional.as_slice() {
        [dir] => PathBuf::from(dir),
        [] => return usage_error(err, "check-aof", "missing <log dir>", CHECK_USAGE),
        _ => return usage_error(err, "check-aof", "too many arguments", CHECK_USAGE),
    };
    let fix = flags.iter().any(|f| f == "--fix");
    let report = check(&dir, fix);
    match print_check(&report, fix, out) {
        Ok(valid) => i32::from(!valid),
        Err(e) => {
            let _ = writeln!(err, "kv-server check-aof: cannot write the report: {e}");
            1
        }
    }
}

fn shard_name(s: &ShardCheck) -> String {
    s.dir.file_name().map_or_else(
        || s.dir.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}

/// One line about an error, naming the file, the offset and what is wrong.
fn describe_error(e: &RecoveryError) -> String {
    match e {
        RecoveryError::Corruption {
            path,
            offset,
            detail,
        } => format!(
            "corruption in {} at offset {offset}: {detail}",
            path.display()
        ),
        RecoveryError::TornTail {
            path,
            offset,
            reason,
            refusal,
        } => {
            let why = match refusal {
                TornTailRefusal::NotLastSegment => {
                    "in a segment that is not the last one (later segments hold records, \
                     so records are missing)"
                }
                TornTailRefusal::LoadTruncatedOff => "still there after the fix",
            };
            format!(
                "torn tail in {} at offset {offset} ({reason}) {why}",
                path.display()
            )
        }
        RecoveryError::Io { .. } | RecoveryError::Output(_) | RecoveryError::Missing { .. } => {
            e.to_string()
        }
    }
}

/// Prints the report of [`check`]; returns whether the log is valid.
fn print_check(report: &CheckReport, fix: bool, out: &mut impl Write) -> io::Result<bool> {
    let dir = report.dir.display();
    writeln!(out, "Checking append-only log {dir}")?;
    for s in &report.shards {
        let status = match (&s.error, &s.torn_tail, s.fixed) {
            (Some(_), _, _) => "NOT OK",
            (None, Some(_), true) => "torn tail cut",
            (None, Some(_), false) => "torn tail",
            (None, None, _) => "OK",
        };
        write!(
            out,
            "{}: {} segments, {} records, {} bytes",
            shard_name(s),
            s.segments,
            s.records,
            s.bytes
        )?;
        if let Some(l) = s.last_lsn {
            write!(out, ", last lsn {l}")?;
        }
        writeln!(out, ": {status}")?;
        if let Some(t) = &s.torn_tail {
            writeln!(
                out,
                "  torn tail in {} at offset {} ({})",
                t.path.display(),
                t.offset,
                t.reason
            )?;
            if let Some(at) = t.later_valid_record {
                writeln!(
                    out,
                    "  (a valid record at offset {at}, within the last write, goes with it)"
                )?;
            }
            if s.fixed {
                writeln!(
                    out,
                    "  cut: the bytes from offset {} on were zeroed (file size kept)",
                    t.offset
                )?;
            } else if s.error.is_none() {
                writeln!(
                    out,
                    "  not cut: run with --fix to cut it (it was never acknowledged)"
                )?;
            }
        }
        if let Some(e) = &s.error {
            writeln!(out, "  {}", describe_error(e))?;
            if matches!(
                e,
                RecoveryError::Corruption { .. }
                    | RecoveryError::TornTail {
                        refusal: TornTailRefusal::NotLastSegment,
                        ..
                    }
            ) {
                writeln!(
                    out,
                    "  damage before the end of the log: --fix does not cut it; restore \
                     this shard from a backup"
                )?;
            }
        }
    }
    if report.incomplete_transactions > 0 {
        writeln!(
            out,
            "{} incomplete multi-shard transactions (never acknowledged): loading drops {} \
             records",
            report.incomplete_transactions, report.dropped_records
        )?;
    }
    if let Some(e) = &report.error {
        writeln!(out, "error: {}", describe_error(e))?;
    }
    let no_shards = report.error.is_none() && report.shards.is_empty();
    if no_shards {
        writeln!(
            out,
            "no shard directories (shard-<i>) in {dir}: is this the append-only log directory?"
        )?;
    }
    writeln!(
        out,
        "AOF analyzed: dir={dir}, shards={}, segments={}, records={}, size={}, torn_tails={}",
        report.shards.len(),
        report.segments(),
        report.records(),
        report.bytes(),
        report.torn_tails()
    )?;
    let valid = report.is_ok() && !no_shards;
    let any_error = report.error.is_some() || report.shards.iter().any(|s| s.error.is_some());
    if valid && fix && report.shards.iter().any(|s| s.fixed) {
        writeln!(out, "Successfully truncated AOF {dir}")?;
    } else if valid {
        writeln!(out, "AOF {dir} is valid")?;
    } else if !any_error && !no_shards {
        writeln!(
            out,
            "AOF {dir} is not valid. Use the --fix option to try fixing it."
        )?;
    } else {
        writeln!(out, "AOF {dir} is not valid")?;
    }
    Ok(valid)
}

// ---------------------------------------------------------------------------
// export-aof

/// Counts the bytes written through it.
struct Counting<W> {
    inner: W,
    bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes = self.bytes.saturating_add(n as u64);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `export-aof <log dir> [<output file> | -]`: the AOF goes to the file or
/// to `out` (stdout), the summary and errors to `err`. Returns the exit
/// code.
pub fn export_aof_tool(args: &[OsString], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let mut snap_dir: Option<PathBuf> = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--snapshot-dir" {
            match it.next() {
                Some(d) => snap_dir = Some(PathBuf::from(d)),
                None => {
                    return usage_error(
                        err,
                        "export-aof",
                        "--snapshot-dir needs a directory",
                        EXPORT_USAGE,
                    )
                }
            }
        } else {
            rest.push(a.clone());
        }
    }
    let positional = match parse_args(&rest, &[]) {
        Ok(Parsed::Help) => {
            let _ = writeln!(out, "{EXPORT_USAGE}");
            return 0;
        }
        Ok(Parsed::Run { positional, .. }) => positional,
        Err(e) => return usage_error(err, "export-aof", &e, EXPORT_USAGE),
    };
    let (dir, output) = match positional.as_slice() {
        [dir] => (PathBuf::from(dir), None),
        [dir, o] if o == "-" => (PathBuf::from(dir), None),
        [dir, o] => (PathBuf::from(dir), Some(PathBuf::from(o))),
        [] => return usage_error(err, "export-aof", "missing <log dir>", EXPORT_USAGE),
        _ => return usage_error(err, "export-aof", "too many arguments", EXPORT_USAGE),
    };
    let snap_dir = snap_dir.unwrap_or_else(|| {
        dir.parent()
            .unwrap_or(Path::new("."))
            .join(crate::config::Config::default().snapshotdirname)
    });
    let result = match &output {
        None => {
            let mut w = Counting {
                inner: BufWriter::new(out),
                bytes: 0,
            };
            export(&dir, &snap_dir, &mut w).and_then(|s| {
                w.flush().map_err(|e| format!("cannot write: {e}"))?;
                Ok((s, w.bytes))
            })
        }
        Some(path) => export_to_file(&dir, &snap_dir, path),
    };
    let target = output
        .as_ref()
        .map_or_else(|| "stdout".to_string(), |p| p.display().to_string());
    match result {
        Ok((summary, bytes)) => {
            let _ = print_export_summary(&dir, &target, &summary, bytes, err);
            0
        }
        Err(e) => {
            let _ = writeln!(err, "kv-server export-aof: {e}");
            1
        }
    }
}

/// The message of a failed export.
fn export_error(dir: &Path, e: &RecoveryError) -> String {
    match e {
        RecoveryError::Corruption { .. } | RecoveryError::TornTail { .. } => format!(
            "cannot export: {}; see `kv-server check-aof {}`",
            describe_error(e),
            dir.display()
        ),
        RecoveryError::Missing { .. } | RecoveryError::Io { .. } | RecoveryError::Output(_) => {
            e.to_string()
        }
    }
}

/// What an export wrote.
enum Exported {
    /// The log, record by record.
    Log(ExportSummary),
    /// The state of a snapshot and the log after it.
    State(StateSummary),
}

struct StateSummary {
    shards: usize,
    snapshot: Option<u64>,
    log_records: u64,
    keys: u64,
    commands: u64,
    selects: u64,
}

/// Exports the log in `dir` record by record when it starts at its first
/// record; otherwise (a snapshot rebased it) the state of the snapshot the
/// manifest in `snap_dir` names with it, then the log after it.
fn export(dir: &Path, snap_dir: &Path, w: &mut impl Write) -> Result<Exported, String> {
    match export_aof(dir, w) {
        Ok(s) => Ok(Exported::Log(s)),
        Err(RecoveryError::Missing { first, .. }) => export_state(dir, snap_dir, w)
            .map(Exported::State)
            .map_err(|e| {
                format!(
                    "cannot export {}: the log starts at lsn {first}: a snapshot rebased it, so \
                     it is exported with that snapshot, and that failed: {e}",
                    dir.display()
                )
            }),
        Err(e) => Err(export_error(dir, &e)),
    }
}

/// The state a restart would load from the log in `log_dir` and the
/// snapshot its manifest (in `snap_dir`) names, written as Redis's AOF
/// rewrite writes a keyspace: `SELECT` where the database changes, `SET`
/// per key, `PEXPIREAT` for a key with an expiry (keys already expired are
/// left out). Shard by shard, so only one shard's keys are in memory at a
/// time. Changes no file.
fn export_state(
    log_dir: &Path,
    snap_dir: &Path,
    w: &mut impl Write,
) -> Result<StateSummary, String> {
    let stem = manifest_stem(snap_dir)?;
    let manifest = crate::snapshot::read_manifest(snap_dir, &stem)?
        .ok_or_else(|| format!("no snapshot manifest in {}", snap_dir.display()))?;
    let line = manifest.log.as_ref().ok_or_else(|| {
        format!(
            "the snapshot manifest in {} names no append-only log (pass the right one with \
             --snapshot-dir)",
            snap_dir.display()
        )
    })?;
    let meta = crate::recover::read_meta(log_dir)?
        .ok_or_else(|| format!("{} has no {}", log_dir.display(), crate::recover::META_FILE))?;
    if meta.id != line.id {
        return Err(format!(
            "{} holds the log with id {}, but the snapshot manifest in {} names the log with \
             id {}",
            log_dir.display(),
            meta.id,
            snap_dir.display(),
            line.id
        ));
    }
    let (chosen, after) = crate::recover::continued(snap_dir, &manifest, line, log_dir)?;
    let rec = crate::recover::read_logs_with(log_dir, &after, true, false)?;
    let databases = chosen
        .and_then(|id| manifest.snapshots.iter().find(|s| s.id == id))
        .map_or(crate::config::Config::default().databases as usize, |s| {
            s.databases
        });
    let shards = rec.shards.len();
    let now = crate::worker::now_ms();
    let mut summary = StateSummary {
        shards,
        snapshot: chosen,
        log_records: 0,
        keys: 0,
        commands: 0,
        selects: 0,
    };
    let mut aof_db = 0usize;
    let mut buf = Vec::new();
    for (id, shard_rec) in rec.shards.iter().enumerate() {
        let mut shard = engine::Shard::new(id, shards, databases);
        shard.set_now_ms(now);
        if let Some(snap) = chosen {
            crate::snapshot::load_chain(snap_dir, &manifest, snap, &mut shard)?;
        }
        summary.log_records += crate::recover::replay(&mut shard, shard_rec)?;
        for db in 0..databases {
            for e in shard.db(db).pages().iter().flat_map(|p| p.entries()) {
                if e.is_expired(now) {
                    continue;
                }
                buf.clear();
                if db != aof_db {
                    let n = db.to_string();
                    engine::resp::write_command(
                        &mut buf,
                        [&b"SELECT"[..], n.as_bytes()].into_iter(),
                    );
                    aof_db = db;
                    summary.selects += 1;
                    summary.commands += 1;
                }
                // The value's own bounded commands (SET, then APPENDs for a
                // big one), then its expiry.
                e.value.recreate(&e.key, 0, |args| {
                    engine::resp::write_command(&mut buf, args.iter().copied());
                    summary.commands += 1;
                });
                if e.expire_at != 0 {
                    let at = e.expire_at.to_string();
                    engine::resp::write_command(
                        &mut buf,
                        [&b"PEXPIREAT"[..], &e.key, at.as_bytes()].into_iter(),
                    );
                    summary.commands += 1;
                }
                summary.keys += 1;
                w.write_all(&buf)
                    .map_err(|e| format!("cannot write: {e}"))?;
            }
        }
    }
    Ok(summary)
}

/// Exports into `path`: through a temporary file in the same directory,
/// synced and renamed over `path` (so a failed export leaves no partial
/// file), or directly when `path` exists and is not a regular file (a
/// device or a pipe).
fn export_to_file(dir: &Path, snap_dir: &Path, path: &Path) -> Result<(Exported, u64), String> {
    let direct = fs::metadata(path).is_ok_and(|m| !m.is_file());
    if direct {
        let file = fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        let mut w = Counting {
            inner: BufWriter::new(file),
            bytes: 0,
        };
        let summary = export(dir, snap_dir, &mut w)?;
        w.flush()
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        return Ok((summary, w.bytes));
    }
    let mut tmp_name = path
        .file_name()
        .map_or_else(|| OsString::from("export.aof"), OsStr::to_os_string);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| format!("cannot create {}: {e}", tmp.display()))?;
    let result = (|| {
        let mut w = Counting {
            inner: BufWriter::new(file),
            bytes: 0,
        };
        let summary = export(dir, snap_dir, &mut w)?;
        let bytes = w.bytes;
        let file = w
            .inner
            .into_inner()
            .map_err(|e| format!("cannot write {}: {}", tmp.display(), e.error()))?;
        file.sync_all()
            .map_err(|e| format!("cannot fsync {}: {e}", tmp.display()))?;
        fs::rename(&tmp, path)
            .map_err(|e| format!("cannot rename {} to {}: {e}", tmp.display(), path.display()))?;
        Ok((summary, bytes))
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    } else if let Some(parent) = path.parent() {
        // Make the rename durable (best effort).
        let parent = if parent.as_os_str().is_empty() {
            Path::new(".")
        } else {
            parent
        };
        if let Ok(d) = fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    result
}

fn print_export_summary(
    dir: &Path,
    target: &str,
    s: &Exported,
    bytes: u64,
    err: &mut impl Write,
) -> io::Result<()> {
    let s = match s {
        Exported::Log(s) => s,
        Exported::State(s) => {
            let base = s
                .snapshot
                .map_or_else(|| "no snapshot".to_string(), |id| format!("snapshot {id}"));
            return writeln!(
                err,
                "Exported the state of {base} and the append-only log {} after it ({} shards, \
                 {} log commands replayed) to {target}: {} keys, {} commands ({} of them SELECT), \
                 {bytes} bytes",
                dir.display(),
                s.shards,
                s.log_records,
                s.keys,
                s.commands,
                s.selects
            );
        }
    };
    writeln!(
        err,
        "Exported append-only log {} ({} shards) to {target}: {} records, {} commands \
         ({} of them SELECT), {bytes} bytes",
        dir.display(),
        s.shards,
        s.records,
        s.commands,
        s.selects
    )?;
    for t in &s.torn_tails {
        writeln!(err, "warning: not exported: {t}")?;
    }
    if s.dropped_records > 0 {
        writeln!(
            err,
            "note: {} records of multi-shard transactions that never became durable on every \
             shard were left out (they were never acknowledged)",
            s.dropped_records
        )?;
    }
    if s.split_transactions > 0 {
        writeln!(
            err,
            "warning: {} multi-shard transactions could not be written as one block (their \
             shards' logs order them in a cycle); their parts are written separately",
            s.split_transactions
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use engine::journal::recovery::{decode_commands, parse_select};
    use engine::journal::{Journal, JournalConfig, StdLogIo};

    use engine::testkit::TempDir;

    const SEGMENT: u64 = 64 * 1024;

    fn os(args: &[&str]) -> Vec<OsString> {
        args.iter().map(OsString::from).collect()
    }

    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        engine::resp::write_command(&mut out, args.iter().copied());
        out
    }

    /// Writes `shards` shard logs with the real writer: shard `s` gets
    /// `n` records `SET k<s>-<i> v<i>`, every third one in database 2.
    fn write_log(dir: &Path, shards: usize, n: usize) {
        write_log_with(dir, shards, n, SEGMENT);
    }

    fn write_log_with(dir: &Path, shards: usize, n: usize, segment: u64) {
        let mut io = StdLogIo::buffered();
        for s in 0..shards {
            let cfg = JournalConfig::for_shard(dir, s).with_segment_size(segment);
            let mut j = Journal::new(cfg, 1, 0);
            for i in 0..n {
                let key = format!("k{s}-{i}");
                let val = format!("v{i}");
                let set: [&[u8]; 3] = [b"SET", key.as_bytes(), val.as_bytes()];
                if i % 3 == 2 {
                    let mut payload = resp(&[b"SELECT", b"2"]);
                    payload.extend(resp(&set));
                    j.append_payload(&payload, None).unwrap();
                } else {
                    j.append(set.into_iter(), None).unwrap();
                }
            }
            j.flush(&mut io).unwrap();
        }
    }

    fn segment_of(dir: &Path, shard: usize) -> PathBuf {
        dir.join(format!("shard-{shard}"))
            .join("seg-00000000000000000001.log")
    }

    /// Offset just past the last non-zero byte.
    fn written_end(bytes: &[u8]) -> usize {
        bytes.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1)
    }

    fn run_check(args: &[&str]) -> (i32, String, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = check_aof(&os(args), &mut out, &mut err);
        (
            code,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    fn run_export(args: &[&str]) -> (i32, Vec<u8>, String) {
        let mut out = Vec::new();
        let mut err = Vec::new();
        let code = export_aof_tool(&os(args), &mut out, &mut err);
        (code, out, String::from_utf8(err).unwrap())
    }

    #[test]
    fn run_tool_ignores_non_tool_arguments() {
        assert_eq!(run_tool(&[]), None);
        assert_eq!(run_tool(&os(&["--port", "7000"])), None);
        assert_eq!(run_tool(&os(&["/etc/redis.conf"])), None);
        assert_eq!(run_tool(&os(&["check-aof-x"])), None);
    }

    #[test]
    fn help_and_usage_errors() {
        let (code, out, _) = run_check(&["--help"]);
        assert_eq!(code, 0);
        assert!(out.starts_with("Usage: kv-server check-aof"), "{out}");
        let (code, out, _) = run_export(&["-h"]);
        assert_eq!(code, 0);
        assert!(String::from_utf8(out)
            .unwrap()
            .starts_with("Usage: kv-server export-aof"));
        for args in [&[][..], &["--bogus", "x"], &["a", "b"]] {
            let (code, out, err) = run_check(args);
            assert_eq!(code, 1, "{args:?}");
            assert!(out.is_empty());
            assert!(err.contains("Usage:"), "{err}");
        }
        for args in [&[][..], &["a", "b", "c"], &["--fix", "a"]] {
            let (code, _, err) = run_export(args);
            assert_eq!(code, 1, "{args:?}");
            assert!(err.contains("Usage:"), "{err}");
        }
    }

    #[test]
    fn check_aof_on_a_clean_log() {
        let t = TempDir::new("check-clean");
        write_log(&t.0, 2, 5);
        let dir = t.0.display().to_string();
        let (code, out, err) = run_check(&[&dir]);
        assert_eq!(code, 0, "{out}{err}");
        assert!(out.contains("shard-0: 1 segments, 5 records"), "{out}");
        assert!(out.contains("last lsn 5: OK"), "{out}");
        assert!(out.contains("shard-1: 1 segments, 5 records"), "{out}");
        assert!(
            out.contains(&format!(
                "AOF analyzed: dir={dir}, shards=2, segments=2, records=10"
            )),
            "{out}"
        );
        assert!(out.ends_with(&format!("AOF {dir} is valid\n")), "{out}");
        // --fix on a valid log changes nothing and says it is valid.
        let before = fs::read(segment_of(&t.0, 0)).unwrap();
        let (code, out, _) = run_check(&["--fix", &dir]);
        assert_eq!(code, 0);
        assert!(out.ends_with(&format!("AOF {dir} is valid\n")), "{out}");
        assert_eq!(fs::read(segment_of(&t.0, 0)).unwrap(), before);
    }

    #[test]
    fn check_aof_reports_and_fixes_a_torn_tail() {
        let t = TempDir::new("check-torn");
        write_log(&t.0, 2, 4);
        let seg = segment_of(&t.0, 1);
        let mut bytes = fs::read(&seg).unwrap();
        let end = written_end(&bytes);
        // The start of a record: a write torn by a crash.
        bytes[end..end + 12].copy_from_slice(&[0xa1, 1, 0, 0, 20, 0, 0, 0, 5, 0, 0, 0]);
        fs::write(&seg, &bytes).unwrap();
        let dir = t.0.display().to_string();

        let (code, out, _) = run_check(&[&dir]);
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("shard-1: 1 segments, 4 records"), "{out}");
        assert!(
            out.contains(&format!("torn tail in {} at offset {end} (", seg.display())),
            "{out}"
        );
        assert!(out.contains("run with --fix"), "{out}");
        assert!(out.contains("torn_tails=1"), "{out}");
        assert!(
            out.ends_with("is not valid. Use the --fix option to try fixing it.\n"),
            "{out}"
        );
        assert_eq!(
            fs::read(&seg).unwrap(),
            bytes,
            "check without --fix writes nothing"
        );

        let (code, out, _) = run_check(&[&dir, "--fix"]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("torn tail cut"), "{out}");
        assert!(
            out.contains(&format!("cut: the bytes from offset {end} on were zeroed")),
            "{out}"
        );
        assert!(
            out.ends_with(&format!("Successfully truncated AOF {dir}\n")),
            "{out}"
        );
        let fixed = fs::read(&seg).unwrap();
        assert_eq!(fixed.len(), bytes.len(), "file size kept");
        assert_eq!(written_end(&fixed), end);

        let (code, out, _) = run_check(&[&dir]);
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("torn_tails=0"), "{out}");
    }

    #[test]
    fn check_aof_reports_corruption_and_does_not_touch_it() {
        // Damage in the first of several segments, with valid records
        // after it: not a torn tail.
        let t = TempDir::new("check-corrupt");
        write_log_with(&t.0, 1, 200, 4096);
        let seg = segment_of(&t.0, 0);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[40] ^= 0x20; // payload of the first record
        fs::write(&seg, &bytes).unwrap();
        let dir = t.0.display().to_string();
        for args in [&[dir.as_str()][..], &["--fix", dir.as_str()]] {
            let (code, out, _) = run_check(args);
            assert_eq!(code, 1, "{out}");
            assert!(out.contains("shard-0: 0 segments, 0 records"), "{out}");
            assert!(out.contains(": NOT OK"), "{out}");
            assert!(
                out.contains(&format!(
                    "corruption in {} at offset 0: checksum mismatch",
                    seg.display()
                )),
                "{out}"
            );
            assert!(out.contains("restore this shard from a backup"), "{out}");
            assert!(out.ends_with(&format!("AOF {dir} is not valid\n")), "{out}");
            assert_eq!(fs::read(&seg).unwrap(), bytes);
        }
    }

    #[test]
    fn check_aof_on_a_missing_or_empty_directory() {
        let t = TempDir::new("check-missing");
        let missing = t.0.join("nope").display().to_string();
        let (code, out, _) = run_check(&[&missing]);
        assert_eq!(code, 1);
        assert!(out.contains("error: cannot list"), "{out}");
        let (code, out, _) = run_check(&[&t.0.display().to_string()]);
        assert_eq!(code, 1);
        assert!(out.contains("no shard directories"), "{out}");
    }

    /// Replays an exported AOF: the (database, command) pairs it runs.
    fn replay(aof: &[u8]) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut db = 0;
        let mut got = Vec::new();
        for args in decode_commands(aof).unwrap() {
            match parse_select(&args) {
                Some(sel) => {
                    let n = sel.unwrap();
                    assert_ne!(n, db, "redundant SELECT");
                    db = n;
                }
                None => got.push((db, args)),
            }
        }
        got.sort();
        got
    }

    fn expected(shards: usize, n: usize) -> Vec<(u64, Vec<Vec<u8>>)> {
        let mut want = Vec::new();
        for s in 0..shards {
            for i in 0..n {
                let db = if i % 3 == 2 { 2 } else { 0 };
                want.push((
                    db,
                    vec![
                        b"SET".to_vec(),
                        format!("k{s}-{i}").into_bytes(),
                        format!("v{i}").into_bytes(),
                    ],
                ));
            }
        }
        want.sort();
        want
    }

    #[test]
    fn export_aof_to_stdout_and_to_a_file() {
        let t = TempDir::new("export");
        let log = t.0.join("log");
        write_log(&log, 2, 7);
        let dir = log.display().to_string();

        for args in [&[dir.as_str()][..], &[dir.as_str(), "-"]] {
            let (code, out, err) = run_export(args);
            assert_eq!(code, 0, "{err}");
            assert_eq!(replay(&out), expected(2, 7));
            assert!(
                err.contains(&format!(
                    "Exported append-only log {dir} (2 shards) to stdout: 14 records"
                )),
                "{err}"
            );
            assert!(err.contains(&format!("{} bytes", out.len())), "{err}");
        }

        let file = t.0.join("out.aof");
        fs::write(&file, b"old contents").unwrap();
        let target = file.display().to_string();
        let (code, out, err) = run_export(&[&dir, &target]);
        assert_eq!(code, 0, "{err}");
        assert!(out.is_empty());
        let aof = fs::read(&file).unwrap();
        assert_eq!(replay(&aof), expected(2, 7));
        assert!(err.contains(&format!("to {target}:")), "{err}");
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(&t.0)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");

        // A torn tail is left out, with a warning.
        let seg = segment_of(&log, 0);
        let mut bytes = fs::read(&seg).unwrap();
        let end = written_end(&bytes);
        bytes[end..end + 3].copy_from_slice(&[0xa1, 1, 0]);
        fs::write(&seg, &bytes).unwrap();
        let (code, out, err) = run_export(&[&dir]);
        assert_eq!(code, 0, "{err}");
        assert_eq!(replay(&out), expected(2, 7));
        assert!(err.contains("warning: not exported:"), "{err}");
        assert!(err.contains(&format!("torn tail at offset {end}")), "{err}");
    }

    #[test]
    fn export_aof_errors_leave_no_output_file() {
        let t = TempDir::new("export-err");
        let file = t.0.join("out.aof");
        let target = file.display().to_string();
        let missing = t.0.join("nope").display().to_string();
        let (code, out, err) = run_export(&[&missing, &target]);
        assert_eq!(code, 1);
        assert!(out.is_empty());
        assert!(
            err.starts_with("kv-server export-aof: cannot list"),
            "{err}"
        );
        assert!(!file.exists());
        assert_eq!(fs::read_dir(&t.0).unwrap().count(), 0);

        // Corruption: an error naming the file and offset.
        let log = t.0.join("log");
        write_log_with(&log, 1, 200, 4096);
        let seg = segment_of(&log, 0);
        let mut bytes = fs::read(&seg).unwrap();
        bytes[40] ^= 0x20;
        fs::write(&seg, &bytes).unwrap();
        let (code, _, err) = run_export(&[&log.display().to_string(), &target]);
        assert_eq!(code, 1);
        assert!(err.contains(&seg.display().to_string()), "{err}");
        assert!(
            err.contains(&format!(
                "cannot export: corruption in {} at offset 0: checksum mismatch",
                seg.display()
            )),
            "{err}"
        );
        assert!(!file.exists());
    }
}

// ---------------------------------------------------------------------------
// check-snapshot

const SNAPSHOT_USAGE: &str = "\
Usage: kv-server check-snapshot <file.kvs | snapshot dir>

Verifies a snapshot file (every checksum, the end frame, every entry), or,
given the snapshot directory (<dir>/<snapshotdirname>), every snapshot its
manifest keeps, each with its whole chain (full + deltas). Prints the
header fields and what the files hold: pages, keys per type and database,
keys with an expiry, bytes stored and before compression.

  -h, --help  print this help

Exit status: 0 if everything is valid, 1 otherwise.";

/// What one snapshot file holds.
#[derive(Default)]
struct FileSummary {
    pages: u64,
    keys: u64,
    volatile: u64,
    strings: u64,
    stored: u64,
    raw: u64,
    per_db: std::collections::BTreeMap<u16, u64>,
}

fn summarize_file(
    path: &Path,
) -> Result<(engine::snapshot::format::FileHeader, FileSummary), String> {
    let mut sum = FileSummary::default();
    let header = crate::snapshot::stream_file(path, |p| {
        sum.pages += 1;
        sum.stored += p.stored;
        sum.raw += p.raw.len() as u64;
        // (A patch of a big string counts as its key: its other chunks
        // are in an older file of the chain.)
        for e in p.decode_items(p.offset).map_err(|e| e.to_string())? {
            sum.keys += 1;
            sum.strings += 1;
            sum.volatile += u64::from(e.expire_at() != 0);
            *sum.per_db.entry(p.db).or_default() += 1;
        }
        Ok(())
    })?;
    Ok((header, sum))
}

fn print_file(out: &mut impl Write, path: &Path) -> bool {
    match summarize_file(path) {
        Ok((h, s)) => {
            let dbs: Vec<String> = s.per_db.iter().map(|(d, n)| format!("db{d}={n}")).collect();
            let _ = writeln!(
                out,
                "{}: OK {} snapshot {} (base {}, parent {}), shard {} of {}, epoch {}, lsn {}, created {} ms\n  \
                 {} pages, {} keys (string: {}), {} with an expiry, {} bytes stored ({} before compression){}{}",
                path.display(),
                h.kind.name(),
                h.id,
                h.base_id,
                h.parent_id,
                h.shard,
                h.shards,
                h.epoch,
                h.lsn,
                h.created_ms,
                s.pages,
                s.keys,
                s.strings,
                s.volatile,
                s.stored,
                s.raw,
                if dbs.is_empty() { "" } else { ", " },
                dbs.join(" ")
            );
            true
        }
        Err(e) => {
            let _ = writeln!(out, "{}: ERROR {e}", path.display());
            false
        }
    }
}

fn check_snapshot(args: &[OsString], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let positional = match parse_args(args, &[]) {
        Ok(Parsed::Help) => {
            let _ = writeln!(out, "{SNAPSHOT_USAGE}");
            return 0;
        }
        Ok(Parsed::Run { positional, .. }) => positional,
        Err(e) => return usage_error(err, "check-snapshot", &e, SNAPSHOT_USAGE),
    };
    let path = match positional.as_slice() {
        [p] => PathBuf::from(p),
        [] => {
            return usage_error(
                err,
                "check-snapshot",
                "missing <file.kvs | snapshot dir>",
                SNAPSHOT_USAGE,
            )
        }
        _ => return usage_error(err, "check-snapshot", "too many arguments", SNAPSHOT_USAGE),
    };
    if !path.is_dir() {
        return if print_file(out, &path) { 0 } else { 1 };
    }
    let manifests = manifest_stems(&path);
    if manifests.is_empty() {
        let _ = writeln!(
            err,
            "kv-server check-snapshot: no *.manifest in {}",
            path.display()
        );
        return 1;
    }
    let mut ok = true;
    for stem in manifests {
        let m = match crate::snapshot::read_manifest(&path, &stem) {
            Ok(Some(m)) => m,
            Ok(None) => continue,
            Err(e) => {
                let _ = writeln!(out, "{e}");
                ok = false;
                continue;
            }
        };
        let _ = writeln!(
            out,
            "manifest {stem}.manifest: {} snapshots kept",
            m.snapshots.len()
        );
        for f in m.snapshots.iter().rev().flat_map(|s| s.files.iter()) {
            ok &= print_file(out, &path.join(&f.0));
        }
        for snap in &m.snapshots {
            let chain: Vec<String> = m
                .chain(snap.id)
                .map(|c| c.iter().map(|s| s.id.to_string()).collect())
                .unwrap_or_default();
            match crate::snapshot::verify_chain(&path, &m, snap.id) {
                Ok(()) => {
                    let _ = writeln!(
                        out,
                        "snapshot {} ({}, {} shards, {} keys written, {} bytes, created {} ms): OK, chain {}",
                        snap.id,
                        snap.kind.name(),
                        snap.shards,
                        snap.keys,
                        snap.bytes,
                        snap.created_ms,
                        chain.join(" <- ")
                    );
                }
                Err(e) => {
                    ok = false;
                    let _ = writeln!(out, "snapshot {}: ERROR {e}", snap.id);
                }
            }
        }
    }
    let _ = writeln!(
        out,
        "{}",
        if ok {
            "Snapshots are valid"
        } else {
            "Snapshots are NOT valid"
        }
    );
    if ok {
        0
    } else {
        1
    }
}

// ---------------------------------------------------------------------------
// backup

const BACKUP_USAGE: &str = "\
Usage: kv-server backup <snapshot dir> <backup dir> [--snapshot ID]

Copies a snapshot (the newest one the manifest in <snapshot dir> keeps, or
snapshot ID) with its whole chain (full + deltas) into <backup dir>, as hard
links where both are on one filesystem (snapshot files never change once
written), verifies every copied file, and adds the snapshot to the manifest
of <backup dir>, which keeps every snapshot backed up there. Safe while the
server runs (take a snapshot first: BGSAVE, then wait for
rdb_bgsave_in_progress:0). To restore, start a server on a new data
directory whose <snapshotdirname> holds a copy of the backup directory (or
of one snapshot of it: back the backup up with --snapshot ID).

  --snapshot ID  back up snapshot ID instead of the newest
  -h, --help     print this help

Exit status: 0 on success, 1 on error.";

fn backup(args: &[OsString], out: &mut impl Write, err: &mut impl Write) -> i32 {
    let mut want: Option<u64> = None;
    let mut rest = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--snapshot" {
            match it
                .next()
                .and_then(|v| v.to_str())
                .and_then(|v| v.parse().ok())
            {
                Some(id) => want = Some(id),
                None => return usage_error(err, "backup", "--snapshot needs an id", BACKUP_USAGE),
            }
        } else {
            rest.push(a.clone());
        }
    }
    let positional = match parse_args(&rest, &[]) {
        Ok(Parsed::Help) => {
            let _ = writeln!(out, "{BACKUP_USAGE}");
            return 0;
        }
        Ok(Parsed::Run { positional, .. }) => positional,
        Err(e) => return usage_error(err, "backup", &e, BACKUP_USAGE),
    };
    let [src, dest] = positional.as_slice() else {
        return usage_error(
            err,
            "backup",
            "expected <snapshot dir> <backup dir>",
            BACKUP_USAGE,
        );
    };
    match backup_to(Path::new(src), Path::new(dest), want) {
        Ok(line) => {
            let _ = writeln!(out, "{line}");
            0
        }
        Err(e) => {
            let _ = writeln!(err, "kv-server backup: {e}");
            1
        }
    }
}

/// The `<stem>` of every `<stem>.manifest` in a snapshot directory.
fn manifest_stems(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .filter_map(|n| n.strip_suffix(".manifest").map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The one manifest stem of a snapshot directory.
fn manifest_stem(dir: &Path) -> Result<String, String> {
    fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let stems = manifest_stems(dir);
    match stems.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(format!("no *.manifest in {}", dir.display())),
        _ => Err(format!("several manifests in {}: {stems:?}", dir.display())),
    }
}

fn backup_to(src: &Path, dest: &Path, want: Option<u64>) -> Result<String, String> {
    use crate::snapshot::{read_manifest, verify_chain, write_manifest_now, Manifest};
    let stem = manifest_stem(src)?;
    let m = read_manifest(src, &stem)?.ok_or("the manifest disappeared")?;
    let id = match want {
        Some(id) => id,
        None => m
            .snapshots
            .first()
            .map(|s| s.id)
            .ok_or_else(|| format!("{} keeps no snapshot yet (run BGSAVE)", src.display()))?,
    };
    let chain: Vec<crate::snapshot::SnapshotMeta> = m.chain(id)?.into_iter().cloned().collect();
    fs::create_dir_all(dest).map_err(|e| format!("{}: {e}", dest.display()))?;
    let mut into = read_manifest(dest, &stem)?.unwrap_or_default();
    into.log = None;
    for snap in &chain {
        if let Some(have) = into.snapshots.iter().find(|s| s.id == snap.id) {
            if have != snap {
                return Err(format!(
                    "{} already holds a different snapshot {} (from another server?); use \
                     another backup directory",
                    dest.display(),
                    snap.id
                ));
            }
            continue;
        }
        for (name, _, _) in &snap.files {
            let (from, to) = (src.join(name), dest.join(name));
            let _ = fs::remove_file(&to);
            if let Err(e) = fs::hard_link(&from, &to).or_else(|_| fs::copy(&from, &to).map(|_| ()))
            {
                return Err(if e.kind() == io::ErrorKind::NotFound {
                    format!(
                        "{} was removed while copying (newer snapshots replaced snapshot \
                         {id}); run the backup again",
                        from.display()
                    )
                } else {
                    format!("copying {}: {e}", from.display())
                });
            }
        }
        into.snapshots.push(snap.clone());
    }
    // Verify what was copied before the manifest names it.
    let copied = Manifest {
        snapshots: chain.clone(),
        log: None,
    };
    verify_chain(dest, &copied, id).map_err(|e| format!("the copy does not verify: {e}"))?;
    for snap in &chain {
        for (name, _, _) in &snap.files {
            fs::File::open(dest.join(name))
                .and_then(|f| f.sync_all())
                .map_err(|e| format!("sync {name}: {e}"))?;
        }
    }
    into.snapshots.sort_by_key(|s| std::cmp::Reverse(s.id));
    // Syncs the directory (the links) before and after the manifest.
    write_manifest_now(dest, &stem, &into)?;
    let top = chain.last().ok_or("empty chain")?;
    Ok(format!(
        "Backed up snapshot {id} ({} keys, {} shards, created {} ms; chain {}) to {}; it keeps \
         {} snapshots",
        top.keys,
        top.shards,
        top.created_ms,
        chain
            .iter()
            .map(|s| s.id.to_string())
            .collect::<Vec<_>>()
            .join(" <- "),
        dest.display(),
        into.snapshots.len()
    ))
}
