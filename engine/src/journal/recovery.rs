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

mod payload;
mod tools;
mod transactions;

pub use payload::*;
pub use tools::*;
pub use transactions::*;

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests;
