//! Reading the per-shard logs back: recovery, transaction completeness across
//! shards, and the offline `check-aof` / `export-aof` logic.
//!
//! Pure logic over files and bytes: segments are read whole with `std::fs`
//! and scanned with [`super::record::scan`]; nothing here knows about the
//! server, its threads or its config.
//!
//! # Layout
//!
//! ```text
//! <log dir>/shard-<i>/seg-<first lsn, 20 zero-padded digits>.log
//! ```
//!
//! A segment is preallocated with zeros; its records are contiguous from
//! offset 0 and the first all-zero header ends them. A segment's first
//! command record has the LSN in its name; the next segment's name is the
//! previous segment's last LSN + 1. Padding records (lsn 0) are skipped.
//! Files in a shard directory whose names do not start with `seg-` are
//! ignored; a `seg-*.log` name without exactly 20 digits is an error.
//!
//! # Recovery rules ([`read_shard_log`])
//!
//! 1. Segments are ordered by the LSN in their names.
//! 2. The "last segment" is the last one holding any non-zero byte. Segments
//!    after it (all zeros: preallocated ahead) are ignored, but their names
//!    must not claim an LSN already used. An all-zero segment *before* the
//!    last one is corruption (records are missing).
//! 3. LSNs are continuous: within a segment every command record has the
//!    previous one's LSN + 1, a segment's first record has the LSN in its
//!    name, and a segment's name is the previous segment's next LSN. A gap
//!    or a duplicate is corruption at that record's (or segment's) offset.
//! 4. Corruption ([`ScanError::Corruption`]: damage with valid records after
//!    it) anywhere is an error naming the file, the offset and the repair
//!    command.
//! 5. A torn tail ([`ScanError::TornTail`]) is accepted only in the last
//!    segment, scanned with [`super::record::Scan::tail_window`] set to the
//!    largest single write ([`RecoveryOptions::max_write`], 1 MiB by
//!    default); it is cut at its offset and reported in
//!    [`ShardLog::torn_tail`] for the warning line. With
//!    `aof_load_truncated = false`, or in an earlier segment, it is an error.
//! 6. Every command payload must be canonical RESP multibulk text (exactly
//!    what [`crate::resp::write_command`] writes): one or more commands (a
//!    command and its `SELECT`, or the several commands of a multi-shard
//!    command's part on this shard, also when only this shard took part and
//!    the record is a plain one with `txid` 0). Every `SELECT` must name a
//!    database (a non-negative integer), and at least one command must not
//!    be a `SELECT`. Anything else is corruption at the record's offset.
//!
//! # Databases
//!
//! Every record starts in database 0: a record whose commands run in
//! database N != 0 begins with `SELECT N`; a `SELECT` inside a record
//! switches the database for the rest of that record only
//! ([`parse_select`], [`record_commands`]).
//!
//! # Transactions ([`resolve_transactions`])
//!
//! A record with `txid != 0` and `parts = P` is applied only if P parts with
//! that txid exist across all shards' (intact) logs. An incomplete
//! transaction was never acknowledged, and a shard acknowledges nothing
//! after a transaction part until the whole transaction is durable
//! everywhere, so each shard's log is cut at the part of an incomplete
//! transaction: the part and every later record of that shard are dropped.
//! Cutting can make another transaction incomplete (its part was after the
//! cut); this repeats until nothing changes. Two parts of one txid in one
//! shard, more than P parts, or parts disagreeing on P are corruption.
//!
//! # After recovery (what the server must do)
//!
//! Before appending, the server must physically cut each shard's log where
//! recovery cut it ([`ShardLog::truncate_at`]: at the torn tail's offset, or
//! at an incomplete transaction's part), so stale bytes are never mistaken
//! for records later, and continue at [`ShardLog::next_lsn`] (or the LSN of
//! the cut record).
//!
//! # Offline tools
//!
//! [`check`] scans every shard directory and, with `fix`, zeroes a torn tail
//! (keeping the preallocated file size) and fsyncs; it never touches
//! corruption before the tail. [`export_aof`] writes a plain Redis AOF; see
//! its doc for the ordering caveat.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::io::parse_segment_file_name;
use super::record::{
    scan, BadRecord, RecordType, ScanError, BLOCK_SIZE, HEADER_LEN, MAX_PAYLOAD_LEN,
};
use crate::resp::{Limits, Parsed, Parser};

/// The largest single write the log writer issues (its group-commit limit
/// plus the rewritten tail block): the torn-write window `check-aof --fix`
/// passes as [`RecoveryOptions::max_write`].
pub const DEFAULT_MAX_WRITE: usize = super::writer::DEFAULT_MAX_FLUSH_BYTES + BLOCK_SIZE;

/// The offline repair command named in every recovery error.
pub const REPAIR_COMMAND: &str = "kv-server check-aof --fix";

/// How [`read_shard_log_with`] treats a torn tail.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryOptions {
    /// `aof-load-truncated`: cut a torn tail of the last segment (true, the
    /// default) or refuse to start (false).
    pub aof_load_truncated: bool,
    /// The torn-write window passed to [`super::record::Scan::tail_window`]
    /// for the last segment: 0 (the default, and what start-up uses) is
    /// strict, a bad record followed by any valid one is corruption;
    /// `check-aof --fix` passes [`DEFAULT_MAX_WRITE`] so that an operator can
    /// cut a write a power loss left unfinished.
    pub max_write: usize,
    /// The log continues a snapshot that holds every record up to this lsn
    /// (M1.5): segments holding only records up to it are not read, records
    /// up to it are not returned, and the log must hold every lsn after it
    /// (a log starting later is an error: records are missing). `None`: no
    /// base is known (the offline tools), the log may start anywhere.
    pub after: Option<u64>,
}

impl Default for RecoveryOptions {
    fn default() -> Self {
        Self {
            aof_load_truncated: true,
            max_write: 0,
            after: None,
        }
    }
}

/// Why a torn tail was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TornTailRefusal {
    /// The torn tail is in a segment followed by another segment with data.
    NotLastSegment,
    /// `aof-load-truncated no`.
    LoadTruncatedOff,
}

/// Why a log could not be recovered, checked or exported. Every variant
/// about log contents names the file and the byte offset.
#[derive(Debug)]
pub enum RecoveryError {
    /// An I/O operation on a file or directory failed.
    Io {
        op: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    /// Damage before the end of the log (bad record followed by valid ones,
    /// LSN gap or duplicate, bad payload, inconsistent transaction parts).
    Corruption {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// A torn tail where none may be cut.
    TornTail {
        path: PathBuf,
        offset: u64,
        reason: BadRecord,
        refusal: TornTailRefusal,
    },
    /// The log does not reach back to the snapshot it continues
    /// ([`RecoveryOptions::after`]): its first segment starts later.
    Missing {
        path: PathBuf,
        first: u64,
        after: u64,
    },
    /// Writing the exported AOF failed.
    Output(io::Error),
}

impl RecoveryError {
    /// The file the error is about, if any.
    pub fn path(&self) -> Option<&Path> {
        match self {
            Self::Io { path, .. }
            | Self::Corruption { path, .. }
            | Self::TornTail { path, .. }
            | Self::Missing { path, .. } => Some(path),
            Self::Output(_) => None,
        }
    }

    /// The byte offset in [`RecoveryError::path`] the error is about.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Corruption { offset, .. } | Self::TornTail { offset, .. } => Some(*offset),
            Self::Missing { .. } => Some(0),
            Self::Io { .. } | Self::Output(_) => None,
        }
    }
}

/// The log directory (parent of `shard-<i>`) of a segment path, for the
/// repair command.
fn log_dir_of(segment: &Path) -> &Path {
    segment
        .parent()
        .and_then(Path::parent)
        .unwrap_or_else(|| Path::new("<appenddirname>"))
}

impl fmt::Display for RecoveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { op, path, source } => {
                write!(f, "cannot {op} {}: {source}", path.display())
            }
            Self::Corruption {
                path,
                offset,
                detail,
            } => write!(
                f,
                "append-only log {} is corrupt at offset {offset}: {detail}. \
                 Refusing to load it; run `{REPAIR_COMMAND} {}` (it cuts only a torn \
                 tail and reports damage before it, which needs a backup)",
                path.display(),
                log_dir_of(path).display()
            ),
            Self::TornTail {
                path,
                offset,
                reason,
                refusal,
            } => {
                let why = match refusal {
                    TornTailRefusal::NotLastSegment => {
                        "in a segment that is not the last one (records are missing)"
                    }
                    TornTailRefusal::LoadTruncatedOff => {
                        "and aof-load-truncated is no (set it to yes to cut it)"
                    }
                };
                write!(
                    f,
                    "append-only log {} is truncated at offset {offset} ({reason}) {why}; \
                     run `{REPAIR_COMMAND} {}`",
                    path.display(),
                    log_dir_of(path).display()
                )
            }
            Self::Missing { path, first, after } => write!(
                f,
                "append-only log {} starts at lsn {first}, but the snapshot it continues holds \
                 records only up to lsn {after}: records {} to {} are missing (a newer snapshot \
                 that the log was rebased on could not be loaded?). Nothing was loaded or \
                 changed; restore the snapshot files or the log from a backup \
                 (docs/OPERATIONS.md)",
                path.display(),
                after.saturating_add(1),
                first.saturating_sub(1)
            ),
            Self::Output(e) => write!(f, "cannot write the exported AOF: {e}"),
        }
    }
}

impl std::error::Error for RecoveryError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            Self::Output(e) => Some(e),
            _ => None,
        }
    }
}

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> RecoveryError + 'a {
    move |source| RecoveryError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn corruption(path: &Path, offset: u64, detail: impl Into<String>) -> RecoveryError {
    RecoveryError::Corruption {
        path: path.to_path_buf(),
        offset,
        detail: detail.into(),
    }
}

/// One segment file, read whole.
pub struct Segment {
    pub path: PathBuf,
    /// The LSN in the file name.
    pub first_lsn: u64,
    /// The whole file.
    pub bytes: Vec<u8>,
    /// Offset just past the last intact record (where a torn tail was cut,
    /// or where the zeros begin).
    pub valid_end: u64,
}

impl fmt::Debug for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Segment")
            .field("path", &self.path)
            .field("first_lsn", &self.first_lsn)
            .field("len", &self.bytes.len())
            .field("valid_end", &self.valid_end)
            .finish()
    }
}

/// One command record of a shard's log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogRecord {
    /// Index into [`ShardLog::segments`].
    pub segment: usize,
    /// Offset of the record's header in its segment.
    pub offset: u64,
    pub lsn: u64,
    /// 0 for a single-shard command.
    pub txid: u64,
    /// Shards taking part in `txid` (1 when `txid` is 0).
    pub parts: u16,
    /// The payload's byte range in the segment's bytes.
    pub payload: Range<usize>,
}

/// Whether the bad record at `offset` of a last segment is the torn tail of
/// one unfinished write, as `check-aof --fix` would see it.
fn is_torn_write(bytes: &[u8], offset: u64) -> bool {
    scan(bytes, 0)
        .tail_window(DEFAULT_MAX_WRITE)
        .find_map(Result::err)
        .is_some_and(|e| matches!(e, ScanError::TornTail { offset: o, .. } if o == offset))
}

/// Where a torn tail was cut.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TornTail {
    /// Index into [`ShardLog::segments`].
    pub segment: usize,
    pub path: PathBuf,
    pub offset: u64,
    pub reason: BadRecord,
    /// Offset of a valid record after the cut, if any: blocks of the last
    /// (unacknowledged) write that reached the disk out of order, within
    /// [`RecoveryOptions::max_write`] of the cut. Worth a louder warning.
    pub later_valid_record: Option<u64>,
}

impl fmt::Display for TornTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} has a torn tail at offset {} ({})",
            self.path.display(),
            self.offset,
            self.reason
        )?;
        if let Some(at) = self.later_valid_record {
            write!(
                f,
                "; a valid record at offset {at} within the last write was dropped with it"
            )?;
        }
        Ok(())
    }
}

/// A shard's log as recovery read it: its segments and intact command
/// records in LSN order.
#[derive(Debug)]
pub struct ShardLog {
    pub dir: PathBuf,
    pub segments: Vec<Segment>,
    pub records: Vec<LogRecord>,
    /// Where a torn tail of the last segment was cut (log a warning).
    pub torn_tail: Option<TornTail>,
    /// The lsn of the last intact record read, also when it was not
    /// returned ([`RecoveryOptions::after`]).
    pub last_read: Option<u64>,
}

impl ShardLog {
    /// The payload bytes of `record` (a record of this log).
    pub fn payload(&self, record: &LogRecord) -> &[u8] {
        self.segments
            .get(record.segment)
            .and_then(|s| s.bytes.get(record.payload.clone()))
            .unwrap_or(&[])
    }

    /// The path of the segment holding `record`.
    pub fn segment_path(&self, record: &LogRecord) -> &Path {
        self.segments
            .get(record.segment)
            .map_or(self.dir.as_path(), |s| s.path.as_path())
    }

    /// The commands of `record` (one for a single-shard record, one or more
    /// for a transaction part), each as its arguments.
    pub fn commands(&self, record: &LogRecord) -> Result<Vec<Vec<Vec<u8>>>, RecoveryError> {
        decode_commands(self.payload(record)).map_err(|e| {
            corruption(
                self.segment_path(record),
                record.offset,
                format!("record lsn {}: {e}", record.lsn),
            )
        })
    }

    /// The LSN of the last intact record.
    pub fn last_lsn(&self) -> Option<u64> {
        self.records.last().map(|r| r.lsn)
    }

    /// The LSN the next appended record gets: last LSN read + 1, or the
    /// first segment's name when the log holds no record (1 for an empty
    /// log).
    pub fn next_lsn(&self) -> u64 {
        match self.last_read.max(self.last_lsn()) {
            Some(l) => l.saturating_add(1),
            None => self.segments.first().map_or(1, |s| s.first_lsn),
        }
    }

    /// Total size of the intact records (bytes up to each segment's
    /// `valid_end`).
    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.valid_end).sum()
    }

    /// Physically cuts the log at `offset` of segment `segment`: zeroes the
    /// bytes from `offset` to the end of the segment's written area (the
    /// last non-zero byte), keeping the preallocated file size, fsyncs it,
    /// and removes every later segment file (then fsyncs the directory).
    /// Use it for a torn tail ([`TornTail`]) and for a transaction cut
    /// ([`ShardCut`]); only unacknowledged bytes lie beyond those points.
    pub fn truncate_at(&self, segment: usize, offset: u64) -> Result<(), RecoveryError> {
        let Some(seg) = self.segments.get(segment) else {
            return Ok(());
        };
        let written_end = seg
            .bytes
            .iter()
            .rposition(|&b| b != 0)
            .map_or(0, |p| p.saturating_add(1)) as u64;
        if offset < written_end {
            let file = fs::OpenOptions::new()
                .write(true)
                .open(&seg.path)
                .map_err(io_err("open for writing", &seg.path))?;
            let zeros = vec![0u8; 64 * 1024];
            let mut at = offset;
            while at < written_end {
                let n = (written_end - at).min(zeros.len() as u64) as usize;
                file.write_all_at(zeros.get(..n).unwrap_or(&[]), at)
                    .map_err(io_err("write zeros to", &seg.path))?;
                at = at.saturating_add(n as u64);
            }
            file.sync_data().map_err(io_err("fsync", &seg.path))?;
        }
        let later: Vec<&Segment> = self.segments.iter().skip(segment + 1).collect();
        for s in &later {
            fs::remove_file(&s.path).map_err(io_err("remove", &s.path))?;
        }
        if !later.is_empty() {
            let dir = fs::File::open(&self.dir).map_err(io_err("open", &self.dir))?;
            dir.sync_all().map_err(io_err("fsync", &self.dir))?;
        }
        Ok(())
    }
}

/// The segment files of a shard directory, ordered by first LSN.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>, RecoveryError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let path = entry.path();
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        // The spare segment holds no records (zeros, made ahead of time).
        if !name.starts_with("seg-") || name == super::io::SPARE_SEGMENT_NAME {
            continue;
        }
        match parse_segment_file_name(name) {
            Some(lsn) => out.push((lsn, path)),
            None => {
                return Err(corruption(
                    &path,
                    0,
                    "segment file name is not seg-<20 digits>.log",
                ))
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The shard directories (`shard-<i>`) of a log directory, ordered by `i`.
pub fn list_shard_dirs(dir: &Path) -> Result<Vec<(usize, PathBuf)>, RecoveryError> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("list", dir))? {
        let entry = entry.map_err(io_err("list", dir))?;
        let name = entry.file_name();
        let Some(index) = name
            .to_str()
            .and_then(|n| n.strip_prefix("shard-"))
            .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|d| d.parse::<usize>().ok())
        else {
            continue;
        };
        out.push((index, entry.path()));
    }
    out.sort();
    Ok(out)
}

/// [`read_shard_log_with`] with the default options (cut a torn tail,
/// 1 MiB largest write).
pub fn read_shard_log(dir: &Path) -> Result<ShardLog, RecoveryError> {
    read_shard_log_with(dir, &RecoveryOptions::default())
}

/// Reads and verifies one shard's log (rules in the module doc).
pub fn read_shard_log_with(dir: &Path, opts: &RecoveryOptions) -> Result<ShardLog, RecoveryError> {
    let mut segments = Vec::new();
    let mut listed = list_segments(dir)?;
    if let Some(after) = opts.after {
        // A segment whose successor starts at or before `after + 1` holds
        // only records the base already has.
        let dead = listed
            .windows(2)
            .take_while(|w| w.get(1).is_some_and(|n| n.0 <= after.saturating_add(1)))
            .count();
        listed.drain(..dead);
    }
    for (first_lsn, path) in listed {
        let bytes = fs::read(&path).map_err(io_err("read", &path))?;
        segments.push(Segment {
            path,
            first_lsn,
            bytes,
            valid_end: 0,
        });
    }
    let last_data = segments
        .iter()
        .rposition(|s| s.bytes.iter().any(|&b| b != 0));
    let mut records = Vec::new();
    let mut torn_tail = None;
    let mut last_read = None;
    // The LSN the next command record must have, once a segment with data
    // has been read.
    let mut next: Option<u64> = None;
    for (i, seg) in segments.iter_mut().enumerate() {
        let path = seg.path.as_path();
        let Some(last) = last_data.filter(|&l| i <= l) else {
            // Preallocated ahead, all zeros.
            if let Some(n) = next.filter(|&n| seg.first_lsn < n) {
                return Err(corruption(
                    path,
                    0,
                    format!(
                        "empty segment named lsn {} but the log already reached lsn {}",
                        seg.first_lsn,
                        n.saturating_sub(1)
                    ),
                ));
            }
            continue;
        };
        let is_last = i == last;
        if !is_last && seg.bytes.iter().all(|&b| b == 0) {
            return Err(corruption(
                path,
                0,
                "empty segment before the last segment (records are missing)",
            ));
        }
        if let Some(after) = opts
            .after
            .filter(|&a| next.is_none() && seg.first_lsn > a + 1)
        {
            return Err(RecoveryError::Missing {
                path: path.to_path_buf(),
                first: seg.first_lsn,
                after,
            });
        }
        if let Some(n) = next.filter(|&n| n != seg.first_lsn) {
            return Err(corruption(
                path,
                0,
                format!(
                    "segment starts at lsn {} but the previous segment ends at lsn {} \
                     (gap or duplicate)",
                    seg.first_lsn,
                    n.saturating_sub(1)
                ),
            ));
        }
        let mut expected = seg.first_lsn;
        let window = if is_last { opts.max_write } else { 0 };
        let mut sc = scan(&seg.bytes, 0).tail_window(window);
        for item in sc.by_ref() {
            let rec = match item {
                Ok(rec) => rec,
                Err(ScanError::TornTail { offset, reason }) => {
                    let refusal = if !is_last {
                        TornTailRefusal::NotLastSegment
                    } else if !opts.aof_load_truncated {
                        TornTailRefusal::LoadTruncatedOff
                    } else {
                        // Strictly (no window), is there a valid record after it?
                        let later_valid_record = scan(&seg.bytes, 0)
                            .find_map(Result::err)
                            .and_then(|e| match e {
                                ScanError::Corruption { resume_offset, .. } => Some(resume_offset),
                                ScanError::TornTail { .. } => None,
                            });
                        torn_tail = Some(TornTail {
                            segment: i,
                            path: path.to_path_buf(),
                            offset,
                            reason,
                            later_valid_record,
                        });
                        break;
                    };
                    return Err(RecoveryError::TornTail {
                        path: path.to_path_buf(),
                        offset,
                        reason,
                        refusal,
                    });
                }
                Err(ScanError::Corruption {
                    offset,
                    reason,
                    resume_offset,
                }) => {
                    let mut detail =
                        format!("{reason} (valid records follow at offset {resume_offset})");
                    if is_last && window < DEFAULT_MAX_WRITE && is_torn_write(&seg.bytes, offset) {
                        detail.push_str(&format!(
                            ". It has the marks of the last write left unfinished by a power \
                             loss (a sector of it never reached the disk, and every valid \
                             record after it lies within that write), so no record from offset \
                             {offset} on was acknowledged under appendfsync always. The start \
                             does not drop valid records by itself: keep a copy of the log \
                             directory, then `{REPAIR_COMMAND}` cuts that write"
                        ));
                    }
                    return Err(corruption(path, offset, detail));
                }
            };
            if rec.fields.kind == RecordType::Padding {
                continue;
            }
            let f = rec.fields;
            if f.lsn != expected {
                return Err(corruption(
                    path,
                    rec.offset,
                    format!(
                        "record has lsn {} where lsn {expected} was expected (gap or duplicate)",
                        f.lsn
                    ),
                ));
            }
            let check = check_payload(rec.payload);
            if let Err(e) = check {
                return Err(corruption(
                    path,
                    rec.offset,
                    format!("record lsn {}: {e}", f.lsn),
                ));
            }
            expected = expected.saturating_add(1);
            last_read = Some(f.lsn);
            if opts.after.is_some_and(|a| f.lsn <= a) {
                continue;
            }
            let start = usize::try_from(rec.offset)
                .unwrap_or(usize::MAX)
                .saturating_add(HEADER_LEN);
            records.push(LogRecord {
                segment: i,
                offset: rec.offset,
                lsn: f.lsn,
                txid: f.txid,
                parts: f.participants,
                payload: start..start.saturating_add(rec.payload.len()),
            });
        }
        let valid_end = sc.valid_end();
        seg.valid_end = valid_end;
        next = Some(expected);
    }
    Ok(ShardLog {
        dir: dir.to_path_buf(),
        segments,
        records,
        torn_tail,
        last_read,
    })
}

// ---------------------------------------------------------------------------
// Payloads

/// A payload that is not canonical RESP multibulk text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload is not a RESP command: {}", self.0)
    }
}

impl std::error::Error for PayloadError {}

/// Parses `payload` as one or more RESP multibulk commands laid end to end,
/// each in exactly the form [`crate::resp::write_command`] writes.
pub fn decode_commands(payload: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, PayloadError> {
    let mut parser = Parser::new();
    let limits = Limits {
        max_bulk_len: i64::from(MAX_PAYLOAD_LEN),
        authenticated: true,
    };
    let mut commands = Vec::new();
    let mut scratch = Vec::new();
    let mut pos = 0usize;
    while let Some(rest) = payload.get(pos..).filter(|r| !r.is_empty()) {
        if rest.first() != Some(&b'*') {
            return Err(PayloadError(format!(
                "byte {pos} does not start a multibulk ('*')"
            )));
        }
        parser.reset();
        let consumed = match parser.parse(rest, limits) {
            Ok(Parsed::Command { consumed }) => consumed,
            Ok(Parsed::Skip { .. }) => {
                return Err(PayloadError(format!("empty multibulk at byte {pos}")))
            }
            Ok(Parsed::Incomplete { .. }) => {
                return Err(PayloadError(format!("incomplete command at byte {pos}")))
            }
            Err(e) => return Err(PayloadError(format!("at byte {pos}: {}", e.0))),
        };
        let src = parser.source(rest);
        let args: Vec<Vec<u8>> = parser
            .args()
            .iter()
            .map(|r| src.get(r.clone()).unwrap_or(&[]).to_vec())
            .collect();
        scratch.clear();
        crate::resp::write_command(&mut scratch, args.iter().map(Vec::as_slice));
        if rest.get(..consumed) != Some(scratch.as_slice()) {
            return Err(PayloadError(format!(
                "command at byte {pos} is not in canonical RESP form"
            )));
        }
        commands.push(args);
        pos = pos.saturating_add(consumed);
    }
    if commands.is_empty() {
        return Err(PayloadError("empty payload".into()));
    }
    Ok(commands)
}

/// Parses `payload` as exactly one RESP multibulk command (a single-shard
/// record's payload).
pub fn decode_command(payload: &[u8]) -> Result<Vec<Vec<u8>>, PayloadError> {
    let mut commands = decode_commands(payload)?;
    match (commands.pop(), commands.is_empty()) {
        (Some(args), true) => Ok(args),
        _ => Err(PayloadError(format!(
            "{} commands where exactly one was expected",
            commands.len().saturating_add(1)
        ))),
    }
}

/// A command (its arguments) and the database it runs in.
pub type DbCommand = (u64, Vec<Vec<u8>>);

/// If `args` is a `SELECT` command (any case): `Some(Ok(db))`, or
/// `Some(Err(_))` when it does not name exactly one database (a
/// non-negative integer). `None` for any other command.
pub fn parse_select(args: &[Vec<u8>]) -> Option<Result<u64, PayloadError>> {
    let name = args.first()?;
    if !name.eq_ignore_ascii_case(b"SELECT") {
        return None;
    }
    let db = match args {
        [_, db] => crate::resp::parse_i64(db).and_then(|n| u64::try_from(n).ok()),
        _ => None,
    };
    Some(db.ok_or_else(|| {
        PayloadError(format!(
            "SELECT with {} arguments where one database number was expected",
            args.len().saturating_sub(1)
        ))
    }))
}

/// The commands of one record payload, each with the database it runs in:
/// the record starts in database 0 and every `SELECT <db>` switches it for
/// the rest of the record. The `SELECT`s themselves are not returned.
pub fn record_commands(payload: &[u8]) -> Result<Vec<DbCommand>, PayloadError> {
    let mut db = 0u64;
    let mut out = Vec::new();
    for args in decode_commands(payload)? {
        match parse_select(&args) {
            Some(sel) => db = sel?,
            None => out.push((db, args)),
        }
    }
    Ok(out)
}

/// Checks a command record's payload (module doc, rule 6): canonical RESP,
/// well-formed `SELECT`s, and at least one command besides them.
fn check_payload(payload: &[u8]) -> Result<(), PayloadError> {
    let mut commands = 0usize;
    for args in decode_commands(payload)? {
        match parse_select(&args) {
            Some(sel) => {
                sel?;
            }
            None => commands = commands.saturating_add(1),
        }
    }
    if commands == 0 {
        return Err(PayloadError("only SELECT, no command".into()));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Transactions across shards

/// One record of one shard: `logs[shard].records[record]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PartRef {
    pub shard: usize,
    pub record: usize,
}

/// A complete transaction: one part per participating shard, in shard order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transaction {
    pub txid: u64,
    pub parts: Vec<PartRef>,
}

/// What a shard replays, in LSN order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    /// A single-shard command record (`records[record]`).
    Command { record: usize },
    /// This shard's part of [`Resolved::transactions`]`[transaction]`.
    Part { record: usize, transaction: usize },
}

impl Step {
    pub fn record(&self) -> usize {
        match *self {
            Self::Command { record } | Self::Part { record, .. } => record,
        }
    }
}

/// Where a shard's log was cut because of an incomplete transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardCut {
    /// The first dropped record (the incomplete transaction's part).
    pub record: usize,
    pub lsn: u64,
    pub txid: u64,
    /// Segment index and offset to pass to [`ShardLog::truncate_at`].
    pub segment: usize,
    pub offset: u64,
    pub path: PathBuf,
    /// Number of records dropped (the part and everything after it).
    pub dropped_records: usize,
}

/// One shard's replay plan.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ShardReplay {
    pub steps: Vec<Step>,
    pub cut: Option<ShardCut>,
}

/// A transaction that is not applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DroppedTransaction {
    pub txid: u64,
    pub participants: u16,
    /// Every part found on disk (including parts beyond a cut).
    pub found: Vec<PartRef>,
}

impl DroppedTransaction {
    /// True when all parts were on disk but one lay after another
    /// incomplete transaction's part in its shard.
    pub fn dropped_by_cascade(&self) -> bool {
        self.found.len() >= usize::from(self.participants)
    }
}

/// The result of [`resolve_transactions`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    /// One plan per log, in the order of the `logs` argument.
    pub shards: Vec<ShardReplay>,
    /// Complete transactions, in order of their first part's appearance.
    pub transactions: Vec<Transaction>,
    /// Incomplete (or cascade-dropped) transactions, by txid.
    pub dropped: Vec<DroppedTransaction>,
}

impl Resolved {
    /// Number of records dropped over all shards.
    pub fn dropped_records(&self) -> usize {
        self.shards
            .iter()
            .filter_map(|s| s.cut.as_ref())
            .map(|c| c.dropped_records)
            .sum()
    }
}

/// Decides which records are replayed (rules in the module doc). `logs`
/// are all shards' logs; indices in the result refer to them.
// Indices used below come from enumerating `logs` and their records.
#[allow(clippy::indexing_slicing)]
pub fn resolve_transactions(logs: &[ShardLog]) -> Result<Resolved, RecoveryError> {
    // txid -> (participants, parts found), in order of first appearance.
    let mut order: Vec<u64> = Vec::new();
    let mut parts: HashMap<u64, (u16, Vec<PartRef>)> = HashMap::new();
    for (s, log) in logs.iter().enumerate() {
        for (i, r) in log.records.iter().enumerate() {
            if r.txid == 0 {
                continue;
            }
            let bad = |detail: String| corruption(log.segment_path(r), r.offset, detail);
            let entry = parts.entry(r.txid).or_insert_with(|| {
                order.push(r.txid);
                (r.parts, Vec::new())
            });
            if entry.0 != r.parts {
                return Err(bad(format!(
                    "part of transaction {} claims {} participants, another part claims {}",
                    r.txid, r.parts, entry.0
                )));
            }
            if entry.1.iter().any(|p| p.shard == s) {
                return Err(bad(format!(
                    "second part of transaction {} in one shard",
                    r.txid
                )));
            }
            entry.1.push(PartRef {
                shard: s,
                record: i,
            });
            if entry.1.len() > usize::from(r.parts) {
                return Err(bad(format!(
                    "transaction {} has more parts than its {} participants",
                    r.txid, r.parts
                )));
            }
        }
    }
    // Cut each shard at the first part of an incomplete transaction, until
    // nothing changes (cuts only move backwards, so this ends).
    let mut cut: Vec<usize> = logs.iter().map(|l| l.records.len()).collect();
    loop {
        let mut changed = false;
        for txid in &order {
            let (p, found) = &parts[txid];
            let live = found.iter().filter(|x| x.record < cut[x.shard]).count();
            if live < usize::from(*p) {
                for x in found {
                    if x.record < cut[x.shard] {
                        cut[x.shard] = x.record;
                        changed = true;
                    }
                }
            }
        }
        if !changed {
            break;
        }
    }
    let mut resolved = Resolved::default();
    let mut tx_index: BTreeMap<u64, usize> = BTreeMap::new();
    for txid in &order {
        let (p, found) = &parts[txid];
        let live = found.iter().filter(|x| x.record < cut[x.shard]).count();
        if live == usize::from(*p) {
            tx_index.insert(*txid, resolved.transactions.len());
            let mut ps = found.clone();
            ps.sort();
            resolved.transactions.push(Transaction {
                txid: *txid,
                parts: ps,
            });
        } else {
            resolved.dropped.push(DroppedTransaction {
                txid: *txid,
                participants: *p,
                found: found.clone(),
            });
        }
    }
    for (s, log) in logs.iter().enumerate() {
        let end = cut[s];
        let mut plan = ShardReplay::default();
        for (i, r) in log.records.iter().enumerate().take(end) {
            plan.steps.push(if r.txid == 0 {
                Step::Command { record: i }
            } else {
                match tx_index.get(&r.txid) {
                    Some(&t) => Step::Part {
                        record: i,
                        transaction: t,
                    },
                    None => {
                        return Err(corruption(
                            log.segment_path(r),
                            r.offset,
                            "internal: incomplete transaction before the cut",
                        ))
                    }
                }
            });
        }
        if let Some(r) = log.records.get(end) {
            plan.cut = Some(ShardCut {
                record: end,
                lsn: r.lsn,
                txid: r.txid,
                segment: r.segment,
                offset: r.offset,
                path: log.segment_path(r).to_path_buf(),
                dropped_records: log.records.len() - end,
            });
        }
        resolved.shards.push(plan);
    }
    Ok(resolved)
}

// ---------------------------------------------------------------------------
// check-aof

/// What [`check`] found in one shard directory.
#[derive(Debug)]
pub struct ShardCheck {
    pub dir: PathBuf,
    pub segments: usize,
    pub records: usize,
    /// Bytes of intact records (padding included).
    pub bytes: u64,
    pub last_lsn: Option<u64>,
    pub torn_tail: Option<TornTail>,
    /// The torn tail was zeroed (`fix`).
    pub fixed: bool,
    /// Corruption, a refused torn tail, or an I/O error.
    pub error: Option<RecoveryError>,
}

/// What [`check`] found; `Display` prints a summary for the offline tool.
#[derive(Debug)]
pub struct CheckReport {
    pub dir: PathBuf,
    pub shards: Vec<ShardCheck>,
    /// Transactions that recovery would drop (not an error: their replies
    /// were never sent), and the records dropped with them.
    pub incomplete_transactions: usize,
    pub dropped_records: usize,
    /// An error about the log directory itself (cannot list it, or a
    /// transaction inconsistency across shards).
    pub error: Option<RecoveryError>,
}

impl CheckReport {
    /// True when every shard is intact (a torn tail counts only if not fixed).
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
            && self
                .shards
                .iter()
                .all(|s| s.error.is_none() && (s.torn_tail.is_none() || s.fixed))
    }

    pub fn segments(&self) -> usize {
        self.shards.iter().map(|s| s.segments).sum()
    }

    pub fn records(&self) -> usize {
        self.shards.iter().map(|s| s.records).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    pub fn torn_tails(&self) -> usize {
        self.shards.iter().filter(|s| s.torn_tail.is_some()).count()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "append-only log {}", self.dir.display())?;
        for s in &self.shards {
            write!(
                f,
                "  {}: {} segments, {} records, {} bytes",
                s.dir.display(),
                s.segments,
                s.records,
                s.bytes
            )?;
            if let Some(l) = s.last_lsn {
                write!(f, ", last lsn {l}")?;
            }
            writeln!(f)?;
            if let Some(t) = &s.torn_tail {
                let what = if s.fixed { "cut" } else { "not cut" };
                writeln!(f, "    torn tail ({what}): {t}")?;
            }
            if let Some(e) = &s.error {
                writeln!(f, "    error: {e}")?;
            }
        }
        if self.incomplete_transactions > 0 {
            writeln!(
                f,
                "  {} incomplete transactions (never acknowledged): recovery drops {} records",
                self.incomplete_transactions, self.dropped_records
            )?;
        }
        if let Some(e) = &self.error {
            writeln!(f, "  error: {e}")?;
        }
        write!(
            f,
            "{} shards, {} segments, {} records, {} bytes, {} torn tails: {}",
            self.shards.len(),
            self.segments(),
            self.records(),
            self.bytes(),
            self.torn_tails(),
            if self.is_ok() { "OK" } else { "NOT OK" }
        )
    }
}

/// Verifies every shard directory of the log directory `dir` (every
/// checksum, LSN continuity, payload form, transaction consistency). With
/// `fix`, a torn tail of a shard's last segment is zeroed from its offset to
/// the end of the written area (file size kept) and fsynced, then the shard
/// is read again strictly; corruption before the tail is never touched.
pub fn check(dir: &Path, fix: bool) -> CheckReport {
    let mut report = CheckReport {
        dir: dir.to_path_buf(),
        shards: Vec::new(),
        incomplete_transactions: 0,
        dropped_records: 0,
        error: None,
    };
    let shard_dirs = match list_shard_dirs(dir) {
        Ok(d) => d,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let mut logs = Vec::new();
    for (_, shard_dir) in shard_dirs {
        let mut sc = ShardCheck {
            dir: shard_dir.clone(),
            segments: 0,
            records: 0,
            bytes: 0,
            last_lsn: None,
            torn_tail: None,
            fixed: false,
            error: None,
        };
        // Strict, as start-up reads; `--fix` also cuts a write a power loss
        // left unfinished (`Scan::tail_window`).
        let opts = RecoveryOptions {
            max_write: if fix { DEFAULT_MAX_WRITE } else { 0 },
            ..RecoveryOptions::default()
        };
        match read_shard_log_with(&shard_dir, &opts) {
            Ok(mut log) => {
                sc.torn_tail = log.torn_tail.clone();
                if let (true, Some(t)) = (fix, &log.torn_tail) {
                    let strict = RecoveryOptions {
                        aof_load_truncated: false,
                        ..RecoveryOptions::default()
                    };
                    match log
                        .truncate_at(t.segment, t.offset)
                        .and_then(|()| read_shard_log_with(&shard_dir, &strict))
                    {
                        Ok(l) => {
                            log = l;
                            sc.fixed = true;
                        }
                        Err(e) => sc.error = Some(e),
                    }
                }
                sc.segments = log.segments.len();
                sc.records = log.records.len();
                sc.bytes = log.bytes();
                sc.last_lsn = log.last_lsn();
                logs.push(log);
            }
            Err(e) => sc.error = Some(e),
        }
        report.shards.push(sc);
    }
    if report.shards.iter().all(|s| s.error.is_none()) {
        match resolve_transactions(&logs) {
            Ok(r) => {
                report.incomplete_transactions = r.dropped.len();
                report.dropped_records = r.dropped_records();
            }
            Err(e) => report.error = Some(e),
        }
    }
    report
}

// ---------------------------------------------------------------------------
// export-aof

/// What [`export_aof`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub shards: usize,
    /// Log records written (a transaction part counts once).
    pub records: usize,
    /// RESP commands written.
    pub commands: usize,
    /// Transactions whose parts could not be written adjacently (their
    /// shards' logs order them in a cycle); 0 for logs our writer produces.
    pub split_transactions: usize,
    /// Records left out as recovery would (incomplete transactions).
    pub dropped_records: usize,
    /// `SELECT` commands written (counted in `commands` too).
    pub selects: usize,
    /// Torn tails left out, as recovery cuts them (one per shard at most).
    pub torn_tails: Vec<TornTail>,
}

/// Writes the log directory `dir` as a plain Redis AOF: the RESP payloads of
/// the records recovery would replay (torn tails cut, incomplete
/// transactions dropped).
///
/// Ordering: each shard's records appear in LSN order; shards are merged,
/// and the parts of one transaction are written next to each other (not
/// wrapped in MULTI/EXEC). Commands of different shards touch different
/// keys and are independent, so any such merge replays to the same data;
/// it is *a* valid serial order, not the order clients saw the replies in.
///
/// Databases: every record starts in database 0 and selects another one
/// with a leading `SELECT` (module doc), while an AOF keeps the database of
/// the previous command. So the commands are written one by one, each
/// preceded by `SELECT <db>` only when its database differs from the
/// previous written command's (the AOF starts in database 0): `SELECT 0` is
/// written when a database-0 record follows one in another database, and
/// no redundant `SELECT` is written.
pub fn export_aof(dir: &Path, out: &mut impl Write) -> Result<ExportSummary, RecoveryError> {
    let mut logs = Vec::new();
    for (_, shard_dir) in list_shard_dirs(dir)? {
        // Only a log that starts at lsn 1 holds the whole dataset: one
        // rebased on a snapshot (M1.5) would export only the changes after
        // it, which would look like a complete AOF and is not.
        let log = read_shard_log_with(
            &shard_dir,
            &RecoveryOptions {
                after: Some(0),
                ..RecoveryOptions::default()
            },
        )?;
        logs.push(log);
    }
    let resolved = resolve_transactions(&logs)?;
    let mut summary = ExportSummary {
        shards: logs.len(),
        dropped_records: resolved.dropped_records(),
        torn_tails: logs.iter().filter_map(|l| l.torn_tail.clone()).collect(),
        ..ExportSummary::default()
    };
    // The database the AOF's next command runs in.
    let mut aof_db = 0u64;
    let mut buf = Vec::new();
    let mut heads = vec![0usize; logs.len()];
    let step_at = |heads: &[usize], s: usize| -> Option<Step> {
        let h = *heads.get(s)?;
        resolved.shards.get(s)?.steps.get(h).copied()
    };
    let mut emit = |s: usize, record: usize, summary: &mut ExportSummary| {
        let Some(log) = logs.get(s) else {
            return Ok(());
        };
        let Some(r) = log.records.get(record) else {
            return Ok(());
        };
        let commands = record_commands(log.payload(r)).map_err(|e| {
            corruption(
                log.segment_path(r),
                r.offset,
                format!("record lsn {}: {e}", r.lsn),
            )
        })?;
        buf.clear();
        for (db, args) in &commands {
            if *db != aof_db {
                let db_text = db.to_string();
                crate::resp::write_command(
                    &mut buf,
                    [&b"SELECT"[..], db_text.as_bytes()].into_iter(),
                );
                aof_db = *db;
                summary.selects += 1;
                summary.commands += 1;
            }
            crate::resp::write_command(&mut buf, args.iter().map(Vec::as_slice));
            summary.commands += 1;
        }
        out.write_all(&buf).map_err(RecoveryError::Output)?;
        summary.records += 1;
        Ok::<(), RecoveryError>(())
    };
    loop {
        let mut progress = false;
        let mut unfinished = None;
        for s in 0..logs.len() {
            while let Some(step) = step_at(&heads, s) {
                match step {
                    Step::Command { record } => {
                        emit(s, record, &mut summary)?;
                    }
                    Step::Part { transaction, .. } => {
                        let Some(tx) = resolved.transactions.get(transaction) else {
                            break;
                        };
                        let ready = tx.parts.iter().all(|p| {
                            step_at(&heads, p.shard)
                                == Some(Step::Part {
                                    record: p.record,
                                    transaction,
                                })
                        });
                        if !ready {
                            unfinished.get_or_insert(s);
                            break;
                        }
                        for p in &tx.parts {
                            emit(p.shard, p.record, &mut summary)?;
                            if let Some(h) = heads.get_mut(p.shard) {
                                *h += 1;
                            }
                        }
                        progress = true;
                        continue;
                    }
                }
                if let Some(h) = heads.get_mut(s) {
                    *h += 1;
                }
                progress = true;
            }
        }
        match (progress, unfinished) {
            (_, None) => break,
            (true, Some(_)) => {}
            (false, Some(s)) => {
                // The logs order transactions in a cycle: write this part
                // alone so the export still finishes.
                if let Some(step) = step_at(&heads, s) {
                    emit(s, step.record(), &mut summary)?;
                    summary.split_transactions += 1;
                }
                if let Some(h) = heads.get_mut(s) {
                    *h += 1;
                }
            }
        }
    }
    out.flush().map_err(RecoveryError::Output)?;
    Ok(summary)
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::super::io::{segment_file_name, shard_dir_name};
    use super::super::record::{
        encode, encode_command, encode_padding, RecordHeaderFields, SECTOR_SIZE,
    };
    use super::*;
    use crate::testkit::TempDir;

    /// The directory of shard `i` in a test log directory, created.
    trait ShardDir {
        fn shard(&self, i: usize) -> PathBuf;
    }

    impl ShardDir for TempDir {
        fn shard(&self, i: usize) -> PathBuf {
            let d = self.0.join(shard_dir_name(i));
            fs::create_dir_all(&d).unwrap();
            d
        }
    }

    const PREALLOC: usize = 8192;

    type Cmd = Vec<Vec<u8>>;

    fn cmd(i: u64) -> Cmd {
        vec![
            b"SET".to_vec(),
            format!("key:{i}").into_bytes(),
            format!("value-{i}").into_bytes(),
        ]
    }

    fn push(out: &mut Vec<u8>, f: RecordHeaderFields, args: &Cmd) {
        encode_command(&f, args.iter().map(Vec::as_slice), out).unwrap();
    }

    /// Encodes single-shard records `lsns` (command `cmd(lsn)`).
    fn segment(lsns: impl IntoIterator<Item = u64>) -> Vec<u8> {
        let mut out = Vec::new();
        for l in lsns {
            push(&mut out, RecordHeaderFields::single(l), &cmd(l));
        }
        out
    }

    /// Writes a segment file named `first_lsn`, zero-filled to `len` bytes.
    fn write_seg(dir: &Path, first_lsn: u64, bytes: &[u8], len: usize) -> PathBuf {
        let mut b = bytes.to_vec();
        b.resize(len.max(b.len()), 0);
        let p = dir.join(segment_file_name(first_lsn));
        fs::write(&p, b).unwrap();
        p
    }

    fn loaded(log: &ShardLog) -> Vec<(u64, Cmd)> {
        log.records
            .iter()
            .map(|r| {
                let mut c = log.commands(r).unwrap();
                assert_eq!(c.len(), 1);
                (r.lsn, c.pop().unwrap())
            })
            .collect()
    }

    fn expected(lsns: impl IntoIterator<Item = u64>) -> Vec<(u64, Cmd)> {
        lsns.into_iter().map(|l| (l, cmd(l))).collect()
    }

    fn strict() -> RecoveryOptions {
        RecoveryOptions {
            aof_load_truncated: false,
            ..RecoveryOptions::default()
        }
    }

    #[test]
    fn segment_names_round_trip_and_bad_names_are_refused() {
        assert_eq!(segment_file_name(42), "seg-00000000000000000042.log");
        assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("seg-42.log"), None);
        let t = TempDir::new("names");
        let d = t.shard(0);
        fs::write(d.join("notes.txt"), b"ignored").unwrap();
        // The spare segment (zeros made ahead of time) is not a segment yet.
        fs::write(super::super::io::spare_path(&d), [0u8; 4096]).unwrap();
        assert!(read_shard_log(&d).unwrap().records.is_empty());
        fs::write(d.join("seg-1.log"), b"").unwrap();
        let e = read_shard_log(&d).unwrap_err();
        assert!(matches!(e, RecoveryError::Corruption { .. }), "{e}");
        assert!(e.to_string().contains("seg-1.log"), "{e}");
    }

    #[test]
    fn a_log_after_a_snapshot_skips_what_the_snapshot_holds() {
        let t = TempDir::new("after");
        let d = t.shard(0);
        write_seg(&d, 5, &segment(5..=9), PREALLOC);
        write_seg(&d, 10, &segment(10..=14), PREALLOC);
        write_seg(&d, 15, &segment(15..=17), PREALLOC);
        let with = |after| RecoveryOptions {
            after: Some(after),
            ..RecoveryOptions::default()
        };
        // Segments wholly at or before `after` are not even read.
        let log = read_shard_log_with(&d, &with(11)).unwrap();
        assert_eq!(loaded(&log), expected(12..=17));
        assert_eq!(log.segments.len(), 2);
        assert_eq!(log.next_lsn(), 18);
        let log = read_shard_log_with(&d, &with(14)).unwrap();
        assert_eq!(loaded(&log), expected(15..=17));
        assert_eq!(log.segments.len(), 1);
        // The snapshot is ahead of the log (its tail was lost): nothing to
        // replay, and the log continues after what was read.
        let log = read_shard_log_with(&d, &with(40)).unwrap();
        assert!(log.records.is_empty());
        assert_eq!(log.last_read, Some(17));
        // A log that starts after the snapshot's lsn + 1 misses records.
        for after in [0, 3] {
            let e = read_shard_log_with(&d, &with(after)).unwrap_err();
            assert!(matches!(e, RecoveryError::Missing { first: 5, .. }), "{e}");
            assert!(e.to_string().contains("are missing"), "{e}");
        }
        assert_eq!(
            loaded(&read_shard_log_with(&d, &with(4)).unwrap()),
            expected(5..=17)
        );
        // The tools (no base) read a log starting anywhere.
        assert_eq!(loaded(&read_shard_log(&d).unwrap()), expected(5..=17));
        // A writer restarted past the end of the log (the snapshot was
        // ahead) leaves a gap that only an older base would see.
        write_seg(&d, 41, &segment(41..=42), PREALLOC);
        assert_eq!(
            loaded(&read_shard_log_with(&d, &with(40)).unwrap()),
            expected(41..=42)
        );
        let e = read_shard_log_with(&d, &with(16)).unwrap_err();
        assert!(e.to_string().contains("gap"), "{e}");
    }

    #[test]
    fn clean_multi_segment_log_loads_in_order() {
        let t = TempDir::new("clean");
        let d = t.shard(0);
        let mut s1 = segment(1..=4);
        encode_padding(HEADER_LEN + 10, &mut s1).unwrap();
        s1.extend(segment(5..=6));
        // Written out of name order on purpose; a full segment (no zeros).
        write_seg(&d, 11, &segment(11..=13), PREALLOC);
        write_seg(&d, 7, &segment(7..=10), 0);
        write_seg(&d, 1, &s1, PREALLOC);
        // A preallocated, still empty next segment.
        write_seg(&d, 14, &[], PREALLOC);
        let log = read_shard_log(&d).unwrap();
        assert_eq!(loaded(&log), expected(1..=13));
        assert_eq!(log.torn_tail, None);
        assert_eq!(log.segments.len(), 4);
        assert_eq!(log.last_lsn(), Some(13));
        assert_eq!(log.next_lsn(), 14);
        assert_eq!(log.segments[0].valid_end, s1.len() as u64);
        assert_eq!(log.records[6].segment, 1);
        assert_eq!(log.records[6].offset, 0);
        // Strict mode accepts a clean log too.
        assert_eq!(
            loaded(&read_shard_log_with(&d, &strict()).unwrap()),
            expected(1..=13)
        );
    }

    #[test]
    fn empty_and_missing_logs() {
        let t = TempDir::new("empty");
        let d = t.shard(0);
        let log = read_shard_log(&d).unwrap();
        assert!(log.records.is_empty());
        assert_eq!(log.next_lsn(), 1);
        // A log restarted from a snapshot at lsn 100: preallocated, empty.
        write_seg(&d, 100, &[], PREALLOC);
        assert_eq!(read_shard_log(&d).unwrap().next_lsn(), 100);
        let e = read_shard_log(&t.0.join("nope")).unwrap_err();
        assert!(matches!(e, RecoveryError::Io { .. }), "{e}");
    }

    #[test]
    fn torn_tail_in_last_segment_is_cut_or_refused() {
        let t = TempDir::new("torn");
        let d = t.shard(0);
        write_seg(&d, 1, &segment(1..=3), PREALLOC);
        let mut s2 = segment(4..=5);
        let cut = s2.len();
        let next = segment(6..=6);
        s2.extend_from_slice(&next[..next.len() - 3]);
        let p2 = write_seg(&d, 4, &s2, PREALLOC);
        let log = read_shard_log(&d).unwrap();
        assert_eq!(loaded(&log), expected(1..=5));
        let torn = log.torn_tail.clone().unwrap();
        assert_eq!(
            (torn.segment, &torn.path, torn.offset),
            (1, &p2, cut as u64)
        );
        assert_eq!(log.next_lsn(), 6);
        let e = read_shard_log_with(&d, &strict()).unwrap_err();
        let RecoveryError::TornTail {
            path,
            offset,
            refusal,
            ..
        } = &e
        else {
            panic!("{e}");
        };
        assert_eq!((path, *offset), (&p2, cut as u64));
        assert_eq!(*refusal, TornTailRefusal::LoadTruncatedOff);
        let msg = e.to_string();
        assert!(msg.contains(&p2.display().to_string()), "{msg}");
        assert!(msg.contains(&format!("offset {cut}")), "{msg}");
        assert!(
            msg.contains(&format!("{REPAIR_COMMAND} {}", t.0.display())),
            "{msg}"
        );
    }

    #[test]
    fn torn_tail_in_an_earlier_segment_is_an_error() {
        let t = TempDir::new("torn-early");
        let d = t.shard(0);
        let mut s1 = segment(1..=3);
        let cut = s1.len();
        s1.extend_from_slice(&segment(4..=4)[..20]);
        let p1 = write_seg(&d, 1, &s1, PREALLOC);
        write_seg(&d, 4, &segment(4..=5), PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        let RecoveryError::TornTail {
            path,
            offset,
            refusal,
            ..
        } = &e
        else {
            panic!("{e}");
        };
        assert_eq!((path, *offset), (&p1, cut as u64));
        assert_eq!(*refusal, TornTailRefusal::NotLastSegment);
        // A torn tail followed only by an empty preallocated segment is the
        // end of the log: cut.
        fs::remove_file(d.join(segment_file_name(4))).unwrap();
        write_seg(&d, 4, &[], PREALLOC);
        let log = read_shard_log(&d).unwrap();
        assert_eq!(loaded(&log), expected(1..=3));
        assert_eq!(log.torn_tail.unwrap().offset, cut as u64);
    }

    #[test]
    fn corruption_mid_log_names_file_and_offset() {
        let t = TempDir::new("corrupt");
        let d = t.shard(0);
        let s1 = segment(1..=5);
        let at = segment(1..=2).len();
        let mut bad = s1.clone();
        bad[at + HEADER_LEN + 3] ^= 0x20;
        let p1 = write_seg(&d, 1, &bad, PREALLOC);
        write_seg(&d, 6, &segment(6..=7), PREALLOC);
        for opts in [RecoveryOptions::default(), strict()] {
            let e = read_shard_log_with(&d, &opts).unwrap_err();
            assert_eq!(e.path(), Some(p1.as_path()), "{e}");
            assert_eq!(e.offset(), Some(at as u64), "{e}");
            assert!(matches!(e, RecoveryError::Corruption { .. }), "{e}");
            let msg = e.to_string();
            assert!(msg.contains(REPAIR_COMMAND), "{msg}");
            assert!(msg.contains(&format!("offset {at}")), "{msg}");
        }
        // Damage in the last segment with valid records after it is
        // corruption too, at start-up (strict) and for `check-aof --fix`
        // (the torn-write window): a flipped byte is not an unwritten
        // sector.
        write_seg(&d, 1, &s1, PREALLOC);
        let mut s2 = segment(6..=9);
        let at2 = segment(6..=6).len();
        s2[at2 + 1] = 0x7f;
        let p2 = write_seg(&d, 6, &s2, PREALLOC);
        let windowed = RecoveryOptions {
            max_write: DEFAULT_MAX_WRITE,
            ..RecoveryOptions::default()
        };
        for opts in [RecoveryOptions::default(), windowed] {
            let e = read_shard_log_with(&d, &opts).unwrap_err();
            assert_eq!(
                (e.path(), e.offset()),
                (Some(p2.as_path()), Some(at2 as u64))
            );
            assert!(!e.to_string().contains("power loss"), "{e}");
        }
        // A sector of the last write that never reached the disk (zeros)
        // with later sectors of the same write on disk: start-up still
        // refuses, naming the torn write and the fix; the window cuts it.
        let mut s2 = Vec::new();
        let mut lsn = 6;
        while s2.len() < 3 * SECTOR_SIZE {
            push(&mut s2, RecordHeaderFields::single(lsn), &cmd(lsn));
            lsn += 1;
        }
        s2[SECTOR_SIZE..2 * SECTOR_SIZE].fill(0);
        write_seg(&d, 6, &s2, PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert!(matches!(e, RecoveryError::Corruption { .. }), "{e}");
        assert!(e.to_string().contains("power loss"), "{e}");
        assert!(e.to_string().contains(REPAIR_COMMAND), "{e}");
        let log = read_shard_log_with(&d, &windowed).unwrap();
        let torn = log.torn_tail.clone().unwrap();
        assert!(torn.offset <= SECTOR_SIZE as u64, "{torn}");
        assert!(torn.later_valid_record.is_some(), "{torn}");
        assert!(torn.to_string().contains("was dropped with it"), "{torn}");
        assert_eq!(loaded(&log), expected(1..=log.last_lsn().unwrap()));
    }

    #[test]
    fn lsn_gaps_and_duplicates_are_errors() {
        let t = TempDir::new("gap");
        let d = t.shard(0);
        // Within a segment.
        let mut s = segment([1, 2, 4]);
        let at = segment([1, 2]).len() as u64;
        let p = write_seg(&d, 1, &s, PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!((e.path(), e.offset()), (Some(p.as_path()), Some(at)), "{e}");
        assert!(e.to_string().contains("lsn 4 where lsn 3"), "{e}");
        s = segment([1, 2, 2]);
        write_seg(&d, 1, &s, PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!(e.offset(), Some(at), "{e}");
        // The first record disagrees with the segment's name.
        write_seg(&d, 1, &segment(2..=3), PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!(e.offset(), Some(0), "{e}");
        // Across segments: 1..=3 then a segment named 5.
        write_seg(&d, 1, &segment(1..=3), PREALLOC);
        let p5 = write_seg(&d, 5, &segment(5..=6), PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!((e.path(), e.offset()), (Some(p5.as_path()), Some(0)), "{e}");
        // ... or named 3 (duplicate).
        fs::remove_file(&p5).unwrap();
        let p3 = write_seg(&d, 3, &segment(3..=4), PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!(e.path(), Some(p3.as_path()), "{e}");
        // An empty segment before one with data: records are missing.
        fs::remove_file(&p3).unwrap();
        let p4 = write_seg(&d, 4, &[], PREALLOC);
        write_seg(&d, 5, &segment(5..=6), PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!(e.path(), Some(p4.as_path()), "{e}");
    }

    #[test]
    fn bad_payloads_are_corruption() {
        let cases: [&[u8]; 6] = [
            b"SET a b\r\n",                       // inline
            b"*0\r\n",                            // empty multibulk
            b"*2\r\n$3\r\nGET\r\n",               // incomplete
            b"*1\r\n$3\r\nGETxx",                 // bad terminator
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n", // only SELECT
            b"*1\r\n$4\r\nPING\r\nX",             // trailing garbage
        ];
        let t = TempDir::new("payload");
        let d = t.shard(0);
        for payload in cases {
            let mut s = segment(1..=1);
            let at = s.len() as u64;
            encode(&RecordHeaderFields::single(2), payload, &mut s).unwrap();
            s.extend(segment(3..=3));
            let p = write_seg(&d, 1, &s, PREALLOC);
            let e = read_shard_log(&d).unwrap_err();
            assert_eq!((e.path(), e.offset()), (Some(p.as_path()), Some(at)), "{e}");
            assert!(check_payload(payload).is_err());
        }
        assert_eq!(decode_command(b"").unwrap_err().0, "empty payload");
        // A record may hold several commands (a transaction part, or a
        // multi-shard command's part when only this shard took part).
        let two = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n";
        assert_eq!(
            decode_commands(two).unwrap(),
            vec![vec![b"PING".to_vec()], vec![b"DEL".to_vec(), b"k".to_vec()]]
        );
        assert!(decode_command(two).is_err());
        let mut s = Vec::new();
        encode(&RecordHeaderFields::part_of(1, 9, 1), two, &mut s).unwrap();
        encode(&RecordHeaderFields::single(2), two, &mut s).unwrap();
        write_seg(&d, 1, &s, PREALLOC);
        let log = read_shard_log(&d).unwrap();
        assert_eq!(log.commands(&log.records[0]).unwrap().len(), 2);
        assert_eq!(log.commands(&log.records[1]).unwrap().len(), 2);
    }

    /// The log of the every-offset tests: segment 1 holds lsn 1..=3, the
    /// last segment lsn 4..=7 with a padding record and a transaction part.
    fn small_log() -> (Vec<u8>, Vec<u8>, Vec<usize>) {
        let s1 = segment(1..=3);
        let mut s2 = Vec::new();
        let mut ends = vec![0];
        push(&mut s2, RecordHeaderFields::single(4), &cmd(4));
        ends.push(s2.len());
        encode_padding(HEADER_LEN + 4, &mut s2).unwrap();
        ends.push(s2.len());
        push(&mut s2, RecordHeaderFields::part_of(5, 77, 1), &cmd(5));
        ends.push(s2.len());
        push(&mut s2, RecordHeaderFields::single(6), &cmd(6));
        ends.push(s2.len());
        push(&mut s2, RecordHeaderFields::single(7), &cmd(7));
        ends.push(s2.len());
        (s1, s2, ends)
    }

    #[test]
    fn truncating_the_last_segment_at_every_offset_never_loads_garbage() {
        let (s1, s2, ends) = small_log();
        // lsn of the command record ending at each boundary in `ends`.
        let lsn_at = [3u64, 4, 4, 5, 6, 7];
        let t = TempDir::new("every-offset");
        let d = t.shard(0);
        write_seg(&d, 1, &s1, PREALLOC);
        for cut in 0..=s2.len() {
            // Complete records: those ending at or before the cut (a padding
            // record's zero payload is completed by the zero fill, so in
            // the zero-filled variant its header suffices).
            for zero_filled in [false, true] {
                let len = if zero_filled { PREALLOC } else { cut };
                write_seg(&d, 4, &s2[..cut], len);
                let mut complete = ends.iter().rposition(|&e| e <= cut).unwrap();
                let mut at_boundary = ends[complete] == cut;
                if zero_filled && complete == 1 && cut >= ends[1] + HEADER_LEN {
                    complete = 2;
                    at_boundary = true;
                }
                let want = expected(1..=lsn_at[complete]);
                let log = read_shard_log(&d).unwrap();
                assert_eq!(loaded(&log), want, "cut {cut} zero-filled {zero_filled}");
                assert_eq!(log.torn_tail.is_none(), at_boundary, "cut {cut}");
                if let Some(t) = &log.torn_tail {
                    assert_eq!(t.offset, ends[complete] as u64, "cut {cut}");
                    assert_eq!(t.later_valid_record, None, "cut {cut}");
                }
                match read_shard_log_with(&d, &strict()) {
                    Ok(log) => {
                        assert!(at_boundary, "cut {cut}");
                        assert_eq!(loaded(&log), want);
                    }
                    Err(e) => {
                        assert!(!at_boundary, "cut {cut}: {e}");
                        assert!(
                            matches!(
                                e,
                                RecoveryError::TornTail {
                                    refusal: TornTailRefusal::LoadTruncatedOff,
                                    ..
                                }
                            ),
                            "{e}"
                        );
                    }
                }
            }
        }
    }

    /// Flips byte `i` of segment `seg` of a log written as `segs`, and reads
    /// it as start-up does. Loading is allowed only when nothing valid
    /// follows the damage: a flip inside the last record of the last
    /// segment (`last_start..`), cut as a torn tail, with the prefix
    /// before it loaded. Anything else is refused naming a file and an
    /// offset at or before the flipped byte, and no file is changed.
    /// `loaded_ok` checks the records of a log that loaded.
    fn flip_and_read(
        d: &Path,
        segs: &[(u64, Vec<u8>)],
        (seg, i): (usize, usize),
        last_start: usize,
        loaded_ok: impl Fn(&ShardLog),
    ) {
        let paths: Vec<PathBuf> = segs
            .iter()
            .enumerate()
            .map(|(n, (first, bytes))| {
                let mut b = bytes.clone();
                if n == seg {
                    b[i] ^= 0x41;
                }
                write_seg(d, *first, &b, b.len() + 4096)
            })
            .collect();
        let before: Vec<Vec<u8>> = paths.iter().map(|p| fs::read(p).unwrap()).collect();
        match read_shard_log(d) {
            Ok(log) => {
                let last = segs.len() - 1;
                assert!(seg == last && i >= last_start, "seg {seg} byte {i} loaded");
                let t = log.torn_tail.clone().unwrap();
                assert_eq!(t.offset, last_start as u64, "seg {seg} byte {i}");
                assert_eq!(t.later_valid_record, None);
                loaded_ok(&log);
            }
            Err(e) => {
                let at = paths.iter().position(|p| Some(p.as_path()) == e.path());
                let at = at.unwrap_or_else(|| panic!("seg {seg} byte {i}: {e}"));
                let offset = e.offset().unwrap() as usize;
                assert!(
                    at < seg || (at == seg && offset <= i) || (at == seg + 1 && offset == 0),
                    "seg {seg} byte {i}: {e}"
                );
                assert!(e.to_string().contains(REPAIR_COMMAND), "{e}");
            }
        }
        for (p, b) in paths.iter().zip(&before) {
            assert_eq!(&fs::read(p).unwrap(), b, "reading changed {}", p.display());
        }
    }

    #[test]
    fn flipping_any_byte_loads_a_prefix_or_refuses() {
        let (s1, s2, ends) = small_log();
        let last_start = ends[ends.len() - 2];
        let t = TempDir::new("flip");
        let d = t.shard(0);
        let segs = [(1, s1), (4, s2)];
        for seg in 0..segs.len() {
            for i in 0..segs[seg].1.len() {
                flip_and_read(&d, &segs, (seg, i), last_start, |log| {
                    assert_eq!(loaded(log), expected(1..=log.last_lsn().unwrap()));
                });
            }
        }
    }

    /// The same over three segments of records from 40 bytes to 40 KiB
    /// (about 400 KB): every byte of each record's header and of the
    /// first and last 8 bytes of its payload, and every 97th byte else.
    #[test]
    fn flipping_bytes_of_a_large_multi_segment_log_loads_a_prefix_or_refuses() {
        let t = TempDir::new("flip-large");
        let d = t.shard(0);
        let mut segs: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut starts: Vec<Vec<usize>> = Vec::new();
        let mut lsn = 1;
        for _ in 0..3 {
            let (first, mut b, mut st) = (lsn, Vec::new(), Vec::new());
            for n in 0..12u64 {
                st.push(b.len());
                let size = [4, 300, 4000, 40_000][(n % 4) as usize] + n as usize;
                let args = vec![
                    b"SET".to_vec(),
                    format!("key:{lsn}").into_bytes(),
                    vec![b'a' + (lsn % 26) as u8; size],
                ];
                push(&mut b, RecordHeaderFields::single(lsn), &args);
                lsn += 1;
            }
            segs.push((first, b));
            starts.push(st);
        }
        let last_start = *starts[2].last().unwrap();
        let mut flips = 0;
        for (seg, (_, bytes)) in segs.iter().enumerate() {
            let near = |i: usize| {
                starts[seg]
                    .iter()
                    .any(|&s| i >= s && i < s + HEADER_LEN + 40)
                    || starts[seg]
                        .iter()
                        .skip(1)
                        .chain(std::iter::once(&bytes.len()))
                        .any(|&e| i + 8 >= e && i < e)
            };
            for i in (0..bytes.len()).filter(|&i| near(i) || i % 97 == 0) {
                flip_and_read(&d, &segs, (seg, i), last_start, |log| {
                    assert_eq!(log.records.len(), 35, "seg {seg} byte {i}");
                    for (r, want) in log.records.iter().zip(1..) {
                        assert_eq!(r.lsn, want);
                        let c = log.commands(r).unwrap();
                        assert_eq!(c[0][1], format!("key:{want}").into_bytes());
                    }
                });
                flips += 1;
            }
        }
        assert!(flips > 3000, "{flips}");
    }

    /// Writes one segment per shard from `(lsn, txid, parts)` records;
    /// records carry `cmd(1000 * shard + lsn)`.
    fn write_shards(t: &TempDir, shards: &[&[(u64, u64, u16)]]) -> Vec<ShardLog> {
        shards
            .iter()
            .enumerate()
            .map(|(s, recs)| {
                let d = t.shard(s);
                let mut b = Vec::new();
                for &(lsn, txid, parts) in recs.iter() {
                    let f = if txid == 0 {
                        RecordHeaderFields::single(lsn)
                    } else {
                        RecordHeaderFields::part_of(lsn, txid, parts)
                    };
                    push(&mut b, f, &cmd(1000 * s as u64 + lsn));
                }
                write_seg(&d, recs.first().map_or(1, |r| r.0), &b, PREALLOC);
                read_shard_log(&d).unwrap()
            })
            .collect()
    }

    fn lsns(log: &ShardLog, plan: &ShardReplay) -> Vec<u64> {
        plan.steps
            .iter()
            .map(|s| log.records[s.record()].lsn)
            .collect()
    }

    #[test]
    fn complete_three_shard_transaction_is_applied_together() {
        let t = TempDir::new("tx-ok");
        let logs = write_shards(
            &t,
            &[
                &[(1, 0, 1), (2, 77, 3), (3, 0, 1)],
                &[(1, 77, 3), (2, 0, 1)],
                &[(1, 0, 1), (2, 0, 1), (3, 77, 3)],
            ],
        );
        let r = resolve_transactions(&logs).unwrap();
        assert!(r.dropped.is_empty());
        assert_eq!(r.dropped_records(), 0);
        assert_eq!(
            r.transactions,
            vec![Transaction {
                txid: 77,
                parts: vec![
                    PartRef {
                        shard: 0,
                        record: 1
                    },
                    PartRef {
                        shard: 1,
                        record: 0
                    },
                    PartRef {
                        shard: 2,
                        record: 2
                    },
                ],
            }]
        );
        assert_eq!(lsns(&logs[0], &r.shards[0]), [1, 2, 3]);
        assert_eq!(lsns(&logs[1], &r.shards[1]), [1, 2]);
        assert_eq!(lsns(&logs[2], &r.shards[2]), [1, 2, 3]);
        assert_eq!(
            r.shards[0].steps[1],
            Step::Part {
                record: 1,
                transaction: 0
            }
        );
        assert_eq!(r.shards[0].steps[0], Step::Command { record: 0 });
        assert!(r.shards.iter().all(|s| s.cut.is_none()));
    }

    #[test]
    fn incomplete_transaction_is_dropped_with_later_records_of_its_shards() {
        let t = TempDir::new("tx-drop");
        // tx 88 (3 parts) misses its part in shard 2. Shard 0's tx 99 part
        // comes after 88's part, so 99 is dropped too (cascade), which cuts
        // shard 2 at its part of 99. tx 55 (before everything) survives.
        let logs = write_shards(
            &t,
            &[
                &[(1, 55, 2), (2, 0, 1), (3, 88, 3), (4, 0, 1), (5, 99, 2)],
                &[(1, 0, 1), (2, 88, 3), (3, 0, 1)],
                &[(1, 55, 2), (2, 0, 1), (3, 99, 2), (4, 0, 1)],
            ],
        );
        let r = resolve_transactions(&logs).unwrap();
        assert_eq!(r.transactions.len(), 1);
        assert_eq!(r.transactions[0].txid, 55);
        assert_eq!(lsns(&logs[0], &r.shards[0]), [1, 2]);
        assert_eq!(lsns(&logs[1], &r.shards[1]), [1]);
        assert_eq!(lsns(&logs[2], &r.shards[2]), [1, 2]);
        let cut0 = r.shards[0].cut.clone().unwrap();
        assert_eq!((cut0.lsn, cut0.txid, cut0.dropped_records), (3, 88, 3));
        assert_eq!(cut0.offset, logs[0].records[2].offset);
        assert_eq!(cut0.path, logs[0].segments[0].path);
        let cut1 = r.shards[1].cut.clone().unwrap();
        assert_eq!((cut1.lsn, cut1.txid, cut1.dropped_records), (2, 88, 2));
        let cut2 = r.shards[2].cut.clone().unwrap();
        assert_eq!((cut2.lsn, cut2.txid, cut2.dropped_records), (3, 99, 2));
        assert_eq!(r.dropped_records(), 7);
        let dropped: Vec<_> = r
            .dropped
            .iter()
            .map(|d| (d.txid, d.found.len(), d.dropped_by_cascade()))
            .collect();
        assert_eq!(dropped, [(88, 2, false), (99, 2, true)]);

        // The server then cuts the logs physically; they reload consistent.
        for (log, plan) in logs.iter().zip(&r.shards) {
            let c = plan.cut.as_ref().unwrap();
            log.truncate_at(c.segment, c.offset).unwrap();
        }
        let logs: Vec<_> = (0..3)
            .map(|s| read_shard_log(&t.shard(s)).unwrap())
            .collect();
        let r = resolve_transactions(&logs).unwrap();
        assert!(r.dropped.is_empty() && r.shards.iter().all(|s| s.cut.is_none()));
        assert_eq!(
            logs.iter().map(|l| l.next_lsn()).collect::<Vec<_>>(),
            [3, 2, 3]
        );
    }

    #[test]
    fn inconsistent_transaction_parts_are_corruption() {
        let t = TempDir::new("tx-bad");
        let logs = write_shards(&t, &[&[(1, 5, 2), (2, 5, 2)], &[(1, 5, 2)]]);
        let e = resolve_transactions(&logs).unwrap_err();
        assert_eq!(e.offset(), Some(logs[0].records[1].offset), "{e}");
        let logs = write_shards(&t, &[&[(1, 5, 2)], &[(1, 5, 3)]]);
        assert!(resolve_transactions(&logs).is_err());
        let logs = write_shards(&t, &[&[(1, 5, 2)], &[(1, 5, 2)], &[(1, 5, 2)]]);
        assert!(resolve_transactions(&logs).is_err());
    }

    #[test]
    fn check_reports_and_fix_cuts_a_torn_tail_only() {
        let t = TempDir::new("check");
        let d0 = t.shard(0);
        let d1 = t.shard(1);
        write_seg(&d0, 1, &segment(1..=3), PREALLOC);
        let mut s = segment(1..=4);
        let cut = segment(1..=3).len();
        s.truncate(s.len() - 5);
        // Stray bytes of the torn write further on (within the window).
        s.resize(cut + 1000, 0);
        s.extend_from_slice(b"\x01\x02\x03");
        let p = write_seg(&d1, 1, &s, PREALLOC);

        let r = check(&t.0, false);
        assert!(!r.is_ok(), "{r}");
        assert_eq!((r.shards.len(), r.segments(), r.records()), (2, 2, 6));
        assert_eq!(r.torn_tails(), 1);
        assert!(!r.shards[1].fixed);
        assert_eq!(r.shards[1].torn_tail.as_ref().unwrap().offset, cut as u64);
        let text = r.to_string();
        assert!(text.contains("torn tail (not cut)"), "{text}");
        assert!(text.contains("2 shards, 2 segments, 6 records"), "{text}");
        assert_eq!(fs::read(&p).unwrap(), {
            let mut b = s.clone();
            b.resize(PREALLOC, 0);
            b
        });

        let r = check(&t.0, true);
        assert!(r.is_ok(), "{r}");
        assert!(r.shards[1].fixed);
        let bytes = fs::read(&p).unwrap();
        assert_eq!(bytes.len(), PREALLOC, "file size kept");
        assert_eq!(&bytes[..cut], &s[..cut]);
        assert!(bytes[cut..].iter().all(|&b| b == 0));
        let log = read_shard_log_with(&d1, &strict()).unwrap();
        assert_eq!(loaded(&log), expected(1..=3));
        let r = check(&t.0, false);
        assert!(r.is_ok() && r.torn_tails() == 0, "{r}");

        // Corruption before the tail is reported, never "fixed".
        let mut bad = segment(1..=3);
        bad[HEADER_LEN + 2] ^= 1;
        let p0 = write_seg(&d0, 1, &bad, PREALLOC);
        write_seg(&d0, 4, &segment(4..=5), PREALLOC);
        let before = fs::read(&p0).unwrap();
        let r = check(&t.0, true);
        assert!(!r.is_ok());
        let e = r.shards[0].error.as_ref().unwrap();
        assert_eq!((e.path(), e.offset()), (Some(p0.as_path()), Some(0)));
        assert_eq!(fs::read(&p0).unwrap(), before);
        assert!(r.to_string().contains("NOT OK"));
    }

    #[test]
    fn export_aof_parses_back_into_the_same_commands() {
        let t = TempDir::new("export");
        let logs = write_shards(
            &t,
            &[
                &[(1, 0, 1), (2, 7, 2), (3, 0, 1), (4, 8, 2)],
                &[(1, 0, 1), (2, 0, 1), (3, 7, 2)],
            ],
        );
        // A torn tail in shard 1 is cut on export as on recovery.
        let d1 = t.shard(1);
        let mut b = fs::read(d1.join(segment_file_name(1))).unwrap();
        let end = logs[1].segments[0].valid_end as usize;
        b[end..end + 10].copy_from_slice(&segment([4])[..10]);
        fs::write(d1.join(segment_file_name(1)), b).unwrap();

        let mut out = Vec::new();
        let summary = export_aof(&t.0, &mut out).unwrap();
        // tx 8 is incomplete (no part in shard 1): dropped.
        assert_eq!(summary.torn_tails.len(), 1);
        assert_eq!(summary.torn_tails[0].offset, end as u64);
        assert_eq!(summary.shards, 2);
        assert_eq!(summary.records, 6);
        assert_eq!(summary.commands, 6);
        assert_eq!(summary.dropped_records, 1);
        assert_eq!(summary.split_transactions, 0);
        let cmds = decode_commands(&out).unwrap();
        let id = |s: u64, l: u64| cmd(1000 * s + l);
        assert_eq!(cmds.len(), 6);
        let pos = |c: &Cmd| cmds.iter().position(|x| x == c).unwrap();
        // Every expected command once, per-shard order kept, tx 7 adjacent.
        let mut want = vec![id(0, 1), id(0, 2), id(0, 3), id(1, 1), id(1, 2), id(1, 3)];
        want.sort();
        let mut got = cmds.clone();
        got.sort();
        assert_eq!(got, want);
        assert!(pos(&id(0, 1)) < pos(&id(0, 2)) && pos(&id(0, 2)) < pos(&id(0, 3)));
        assert!(pos(&id(1, 1)) < pos(&id(1, 2)) && pos(&id(1, 2)) < pos(&id(1, 3)));
        assert_eq!(pos(&id(0, 2)).abs_diff(pos(&id(1, 3))), 1);
    }

    #[test]
    fn truncate_at_a_transaction_cut_removes_later_segments() {
        let t = TempDir::new("tx-cut-segments");
        let d0 = t.shard(0);
        let d1 = t.shard(1);
        let mut s1 = segment(1..=2);
        let cut_at = s1.len() as u64;
        push(&mut s1, RecordHeaderFields::part_of(3, 42, 2), &cmd(3));
        let p1 = write_seg(&d0, 1, &s1, PREALLOC);
        let p4 = write_seg(&d0, 4, &segment(4..=6), PREALLOC);
        write_seg(&d1, 1, &segment(1..=2), PREALLOC);
        let logs = vec![read_shard_log(&d0).unwrap(), read_shard_log(&d1).unwrap()];
        let r = resolve_transactions(&logs).unwrap();
        let c = r.shards[0].cut.clone().unwrap();
        assert_eq!(
            (c.segment, c.offset, c.path.as_path()),
            (0, cut_at, p1.as_path())
        );
        assert_eq!(c.dropped_records, 4);
        logs[0].truncate_at(c.segment, c.offset).unwrap();
        assert!(!p4.exists());
        assert_eq!(fs::metadata(&p1).unwrap().len(), PREALLOC as u64);
        let log = read_shard_log_with(&d0, &strict()).unwrap();
        assert_eq!(loaded(&log), expected(1..=2));
        assert_eq!(log.next_lsn(), 3);
    }

    /// RESP text of `cmds` laid end to end.
    fn resp_of(cmds: &[&[&[u8]]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            crate::resp::write_command(&mut out, c.iter().copied());
        }
        out
    }

    /// Appends one record of `cmds` at `lsn`: a plain one (`txid` 0) or a
    /// one-part transaction `txid`.
    fn encode_cmds(out: &mut Vec<u8>, lsn: u64, txid: u64, cmds: &[&[&[u8]]]) {
        let f = if txid == 0 {
            RecordHeaderFields::single(lsn)
        } else {
            RecordHeaderFields::part_of(lsn, txid, 1)
        };
        encode(&f, &resp_of(cmds), out).unwrap();
    }

    /// Records with lsns 1, 2, ... of `(txid, cmds)` each.
    fn encode_all(recs: &[(u64, &[&[&[u8]]])]) -> Vec<u8> {
        let mut s = Vec::new();
        for (i, (txid, cmds)) in recs.iter().enumerate() {
            encode_cmds(&mut s, i as u64 + 1, *txid, cmds);
        }
        s
    }

    #[test]
    fn select_prefix_is_accepted_and_checked() {
        let t = TempDir::new("select-check");
        let d = t.shard(0);
        let good: [(u64, &[&[&[u8]]]); 5] = [
            (0, &[&[b"SET", b"a", b"1"]]),
            (0, &[&[b"SELECT", b"1"], &[b"SET", b"b", b"2"]]),
            (0, &[&[b"select", b"0"], &[b"SET", b"c", b"3"]]),
            (
                0,
                &[
                    &[b"SELECT", b"4"],
                    &[b"SET", b"x", b"1"],
                    &[b"SELECT", b"4"],
                    &[b"SET", b"y", b"2"],
                ],
            ),
            (
                9,
                &[
                    &[b"SELECT", b"2"],
                    &[b"SET", b"d", b"4"],
                    &[b"SELECT", b"0"],
                    &[b"DEL", b"e"],
                ],
            ),
        ];
        write_seg(&d, 1, &encode_all(&good), PREALLOC);
        let log = read_shard_log(&d).unwrap();
        assert_eq!(log.records.len(), 5);
        let rc = |i: usize| record_commands(log.payload(&log.records[i])).unwrap();
        assert_eq!(
            rc(1),
            vec![(1, vec![b"SET".to_vec(), b"b".to_vec(), b"2".to_vec()])]
        );
        assert_eq!(rc(3).iter().map(|c| c.0).collect::<Vec<_>>(), [4, 4]);
        assert_eq!(
            rc(4),
            vec![
                (2, vec![b"SET".to_vec(), b"d".to_vec(), b"4".to_vec()]),
                (0, vec![b"DEL".to_vec(), b"e".to_vec()]),
            ]
        );

        let bad: [(u64, &[&[&[u8]]]); 6] = [
            (0, &[&[b"SELECT", b"1"]]),
            (3, &[&[b"SELECT", b"1"], &[b"SELECT", b"2"]]),
            (0, &[&[b"SELECT", b"1", b"2"], &[b"SET", b"a", b"1"]]),
            (0, &[&[b"SELECT", b"x"], &[b"SET", b"a", b"1"]]),
            (0, &[&[b"SELECT", b"-1"], &[b"SET", b"a", b"1"]]),
            (5, &[&[b"SET", b"a", b"1"], &[b"SELECT"]]),
        ];
        for (txid, cmds) in bad {
            let mut s = segment(1..=1);
            let at = s.len() as u64;
            encode_cmds(&mut s, 2, txid, cmds);
            s.extend(segment(3..=3));
            let p = write_seg(&d, 1, &s, PREALLOC);
            let e = read_shard_log(&d).unwrap_err();
            assert_eq!((e.path(), e.offset()), (Some(p.as_path()), Some(at)), "{e}");
        }
    }

    #[test]
    fn export_writes_select_only_when_the_database_changes() {
        let t = TempDir::new("export-select");
        let d = t.shard(0);
        let recs: [(u64, &[&[&[u8]]]); 7] = [
            (0, &[&[b"SET", b"a", b"1"]]),
            (0, &[&[b"SELECT", b"1"], &[b"SET", b"b", b"2"]]),
            (0, &[&[b"SELECT", b"1"], &[b"SET", b"c", b"3"]]),
            (0, &[&[b"SET", b"d", b"4"]]),
            (0, &[&[b"SELECT", b"0"], &[b"SET", b"e", b"5"]]),
            (0, &[&[b"SELECT", b"2"], &[b"SET", b"f", b"6"]]),
            (
                4,
                &[
                    &[b"SELECT", b"3"],
                    &[b"SET", b"g", b"7"],
                    &[b"SELECT", b"0"],
                    &[b"SET", b"h", b"8"],
                ],
            ),
        ];
        write_seg(&d, 1, &encode_all(&recs), PREALLOC);
        let mut out = Vec::new();
        let summary = export_aof(&t.0, &mut out).unwrap();
        let want = resp_of(&[
            &[b"SET", b"a", b"1"],
            &[b"SELECT", b"1"],
            &[b"SET", b"b", b"2"],
            &[b"SET", b"c", b"3"],
            &[b"SELECT", b"0"],
            &[b"SET", b"d", b"4"],
            &[b"SET", b"e", b"5"],
            &[b"SELECT", b"2"],
            &[b"SET", b"f", b"6"],
            &[b"SELECT", b"3"],
            &[b"SET", b"g", b"7"],
            &[b"SELECT", b"0"],
            &[b"SET", b"h", b"8"],
        ]);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&want)
        );
        assert_eq!(summary.records, 7);
        assert_eq!(summary.selects, 5);
        assert_eq!(summary.commands, 13);
    }

    #[test]
    fn export_keeps_databases_right_when_shards_are_merged() {
        // Each shard alternates databases; whatever the merge order, the
        // AOF replayed from database 0 must run every command in its
        // record's database, with no redundant SELECT.
        let t = TempDir::new("export-select-merge");
        let mut want = Vec::new();
        for shard in 0..3u64 {
            let d = t.shard(shard as usize);
            let mut s = Vec::new();
            for lsn in 1..=6u64 {
                let db = (lsn + shard) % 3;
                let key = format!("k{shard}-{lsn}").into_bytes();
                let set: Vec<Vec<u8>> = vec![b"SET".to_vec(), key, b"v".to_vec()];
                let mut payload = Vec::new();
                if db != 0 {
                    let n = db.to_string();
                    crate::resp::write_command(
                        &mut payload,
                        [&b"SELECT"[..], n.as_bytes()].into_iter(),
                    );
                }
                crate::resp::write_command(&mut payload, set.iter().map(Vec::as_slice));
                let f = if lsn == 3 {
                    RecordHeaderFields::part_of(lsn, 50, 3)
                } else {
                    RecordHeaderFields::single(lsn)
                };
                encode(&f, &payload, &mut s).unwrap();
                want.push((db, set));
            }
            write_seg(&d, 1, &s, PREALLOC);
        }
        let mut out = Vec::new();
        let summary = export_aof(&t.0, &mut out).unwrap();
        let mut db = 0u64;
        let mut got = Vec::new();
        let mut selects = 0;
        for args in decode_commands(&out).unwrap() {
            match parse_select(&args) {
                Some(sel) => {
                    let n = sel.unwrap();
                    assert_ne!(n, db, "redundant SELECT {n}");
                    db = n;
                    selects += 1;
                }
                None => got.push((db, args)),
            }
        }
        assert_eq!(summary.selects, selects);
        assert_eq!(summary.commands, got.len() + selects);
        got.sort();
        want.sort();
        assert_eq!(got, want);
    }

    #[test]
    fn export_finishes_when_transactions_are_ordered_in_a_cycle() {
        let t = TempDir::new("export-cycle");
        write_shards(&t, &[&[(1, 1, 2), (2, 2, 2)], &[(1, 2, 2), (2, 1, 2)]]);
        let mut out = Vec::new();
        let summary = export_aof(&t.0, &mut out).unwrap();
        assert_eq!(summary.records, 4);
        assert!(summary.split_transactions > 0);
        assert_eq!(decode_commands(&out).unwrap().len(), 4);
    }
}
