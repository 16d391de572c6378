//! # journal::writer
//!
//! The writer side of a shard's log: [`Journal`] encodes records into an
//! in-memory pending buffer ([`Journal::append`], no I/O), turns everything
//! pending into one 4 KiB-aligned write per segment touched
//! ([`Journal::prepare_flush`] → [`FlushPlan`]), and learns the outcome of
//! the write + `fdatasync` ([`Journal::complete_flush`]). The I/O itself goes
//! through the [`LogIo`] seam; [`Journal::flush`] does all steps
//! synchronously (tests, and the fallback path without io_uring).
//!
//! Layout (see `docs/FORMATS.md`, "Writer"): `<log dir>/shard-<i>/`, segment
//! files `seg-<first lsn, 20 digits>.log`, preallocated with zeros and synced
//! once; records fill a segment contiguously from offset 0; a record that
//! does not fit starts a new segment (a record larger than a segment gets a
//! segment of its own, rounded up to 4 KiB).
//!
//! The partially filled tail block stays in memory and the next flush
//! rewrites it with identical leading bytes followed by the new records. At
//! most one flush is in flight; everything appended meanwhile goes into the
//! next single flush (group commit).
//!
//! Errors: a failed write or sync keeps the records pending and is
//! remembered ([`Journal::last_error`], [`Journal::is_failed`]); the caller
//! refuses writes while it is set, the next flush retries the same bytes,
//! and a success clears it. `durable_lsn` only ever covers synced records.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::io::{segment_path, AlignedBuf, LogIo, ALIGN};
use super::record::{encode_command, EncodeError, RecordHeaderFields};

/// Default segment size: 64 MiB.
pub const DEFAULT_SEGMENT_SIZE: u64 = 64 << 20;

/// Default upper bound of the record bytes one flush takes (a flush always
/// takes at least one record). Recovery passes this plus one block to
/// `Scan::tail_window`.
pub const DEFAULT_MAX_FLUSH_BYTES: usize = 8 << 20;

fn round_up(n: u64) -> u64 {
    n.div_ceil(ALIGN as u64).saturating_mul(ALIGN as u64)
}

/// Where and how a shard's log is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalConfig {
    /// The shard's log directory, `<log dir>/shard-<i>`.
    pub dir: PathBuf,
    /// Size of a segment file, a multiple of 4 KiB.
    pub segment_size: u64,
    /// Record bytes one flush takes at most (at least one record).
    pub max_flush_bytes: usize,
}

impl JournalConfig {
    /// Defaults for shard `shard` under `log_dir`.
    pub fn for_shard(log_dir: &Path, shard: usize) -> Self {
        Self {
            dir: Self::shard_dir(log_dir, shard),
            segment_size: DEFAULT_SEGMENT_SIZE,
            max_flush_bytes: DEFAULT_MAX_FLUSH_BYTES,
        }
    }

    /// `<log dir>/shard-<i>`.
    pub fn shard_dir(log_dir: &Path, shard: usize) -> PathBuf {
        log_dir.join(crate::journal::io::shard_dir_name(shard))
    }

    /// Sets the segment size (rounded up to 4 KiB, at least 4 KiB).
    pub fn with_segment_size(mut self, bytes: u64) -> Self {
        self.segment_size = round_up(bytes.max(1));
        self
    }

    pub fn with_max_flush_bytes(mut self, bytes: usize) -> Self {
        self.max_flush_bytes = bytes.max(1);
        self
    }
}

/// A remembered I/O failure: what failed, where, and the OS error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalError {
    /// `create`, `preallocate`, `sync`, `write`, `sync directory`, ...
    pub op: &'static str,
    pub path: PathBuf,
    pub offset: Option<u64>,
    pub kind: io::ErrorKind,
    /// `EIO`, `ENOSPC`, ... when the OS gave one.
    pub errno: Option<i32>,
    pub message: String,
}

impl JournalError {
    pub fn new(op: &'static str, path: &Path, offset: Option<u64>, e: &io::Error) -> Self {
        Self {
            op,
            path: path.to_path_buf(),
            offset,
            kind: e.kind(),
            errno: e.raw_os_error(),
            message: e.to_string(),
        }
    }
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "log {} {}", self.op, self.path.display())?;
        if let Some(o) = self.offset {
            write!(f, " at offset {o}")?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for JournalError {}

/// Counters for INFO persistence.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JournalStats {
    /// Successful flushes (write + fdatasync).
    pub flushes: u64,
    /// Flushes that failed.
    pub failed_flushes: u64,
    /// Records made durable.
    pub records_flushed: u64,
    /// Bytes handed to `write_at` by successful flushes (rewritten tail
    /// blocks and zero padding included).
    pub bytes_written: u64,
    /// Segments created.
    pub segments_created: u64,
    /// fdatasync latency of the last successful flush, as measured by the
    /// caller.
    pub last_fsync_latency: Option<Duration>,
    /// `aof_current_size`: record bytes in the log (the size given at
    /// construction plus every record flushed since).
    pub current_size: u64,
}

/// One record waiting in the pending buffer.
#[derive(Clone, Copy, Debug)]
struct Pending {
    lsn: u64,
    len: usize,
}

/// The write position in the current segment.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Cursor {
    first_lsn: u64,
    size: u64,
    /// Offset just past the last durable record.
    pos: u64,
    /// Bytes of the tail block before `pos` (`pos % 4096` of them).
    tail: Vec<u8>,
}

struct OpenSegment<F> {
    first_lsn: u64,
    file: F,
}

/// One aligned write of a [`FlushPlan`].
#[derive(Debug)]
pub struct PlannedWrite {
    /// First lsn of the segment written (its name).
    pub segment: u64,
    /// The segment's preallocated size.
    pub segment_size: u64,
    /// The segment starts in this flush: create and preallocate it first
    /// ([`Journal::ensure_segment`]).
    pub new_segment: bool,
    /// File offset, a multiple of 4 KiB.
    pub offset: u64,
    /// Tail block's old bytes + new records + zero padding; aligned.
    pub buf: AlignedBuf,
}

/// Everything pending, as one write per segment touched (two when the
/// flush rolls over to a new segment). Issue the writes **in order**, and
/// fdatasync a segment before issuing the write to the next one (create
/// and preallocate a `new_segment` first), then hand the plan back to
/// [`Journal::complete_flush`]. The order matters: were the new segment's
/// write to reach the disk while the old segment's did not, a crash would
/// leave later lsns without earlier ones. (Roll-over happens once per
/// segment, so the extra fdatasync costs nothing measurable.)
#[derive(Debug)]
pub struct FlushPlan {
    id: u64,
    writes: Vec<PlannedWrite>,
    records: usize,
    record_bytes: usize,
    first_lsn: u64,
    last_lsn: u64,
    end: Cursor,
}

impl FlushPlan {
    pub fn writes(&self) -> &[PlannedWrite] {
        &self.writes
    }

    /// The writes, for callers that hand each buffer to the kernel and
    /// put it back afterwards (io_uring takes ownership while it writes).
    pub fn writes_mut(&mut self) -> &mut [PlannedWrite] {
        &mut self.writes
    }

    /// Number of records this flush makes durable.
    pub fn records(&self) -> usize {
        self.records
    }

    /// Encoded size of those records.
    pub fn record_bytes(&self) -> usize {
        self.record_bytes
    }

    /// Lsn range covered: `first_lsn..=last_lsn`.
    pub fn first_lsn(&self) -> u64 {
        self.first_lsn
    }

    pub fn last_lsn(&self) -> u64 {
        self.last_lsn
    }

    /// Total bytes written by this plan.
    pub fn write_bytes(&self) -> usize {
        self.writes.iter().map(|w| w.buf.len()).sum()
    }

    /// Segments written, in order, without repeats (each is fdatasync'd
    /// after its write, before the next one's write).
    pub fn segments_to_sync(&self) -> Vec<u64> {
        let mut v: Vec<u64> = self.writes.iter().map(|w| w.segment).collect();
        v.dedup();
        v
    }
}

/// The writer of one shard's log. See the module docs.
pub struct Journal<I: LogIo> {
    cfg: JournalConfig,
    next_lsn: u64,
    durable_lsn: u64,
    cursor: Option<Cursor>,
    files: Vec<OpenSegment<I::File>>,
    pending: Vec<u8>,
    pending_records: VecDeque<Pending>,
    in_flight: Option<u64>,
    plan_seq: u64,
    last_error: Option<JournalError>,
    stats: JournalStats,
}

impl<I: LogIo> Journal<I> {
    /// A writer whose next record gets `next_lsn` (>= 1). The first flush
    /// starts a new segment named after that lsn (after recovery: the lsn
    /// after the last valid record; the torn tail of the previous segment
    /// must have been cut by recovery). `existing_size` is the record bytes
    /// already in the log, for `aof_current_size`.
    pub fn new(cfg: JournalConfig, next_lsn: u64, existing_size: u64) -> Self {
        let next_lsn = next_lsn.max(1);
        Self {
            cfg,
            next_lsn,
            durable_lsn: next_lsn.saturating_sub(1),
            cursor: None,
            files: Vec::new(),
            pending: Vec::new(),
            pending_records: VecDeque::new(),
            in_flight: None,
            plan_seq: 0,
            last_error: None,
            stats: JournalStats {
                current_size: existing_size,
                ..JournalStats::default()
            },
        }
    }

    pub fn config(&self) -> &JournalConfig {
        &self.cfg
    }

    /// The size of segments started from now on (rounded up to 4 KiB, at
    /// least 4 KiB); the current segment keeps its own.
    pub fn set_segment_size(&mut self, bytes: u64) {
        self.cfg.segment_size = round_up(bytes.max(1));
    }

    /// Appends one command record (the RESP array of `args`) to the pending
    /// buffer; no I/O. `tx` = `(txid, parts)` for this shard's part of a
    /// multi-shard command. Returns the record's lsn. The caller refuses
    /// writes while [`Journal::is_failed`].
    pub fn append<'a>(
        &mut self,
        args: impl ExactSizeIterator<Item = &'a [u8]>,
        tx: Option<(u64, u16)>,
    ) -> Result<u64, EncodeError> {
        let (lsn, fields) = self.next_fields(tx);
        let len = encode_command(&fields, args, &mut self.pending)?;
        Ok(self.appended(lsn, len))
    }

    /// The header fields of the next record.
    fn next_fields(&self, tx: Option<(u64, u16)>) -> (u64, RecordHeaderFields) {
        let lsn = self.next_lsn;
        let fields = match tx {
            None => RecordHeaderFields::single(lsn),
            Some((txid, parts)) => RecordHeaderFields::part_of(lsn, txid, parts),
        };
        (lsn, fields)
    }

    /// Records that a record of `len` bytes with `lsn` was encoded.
    fn appended(&mut self, lsn: u64, len: usize) -> u64 {
        self.pending_records.push_back(Pending { lsn, len });
        self.next_lsn = lsn.saturating_add(1);
        lsn
    }

    /// Appends one command record whose payload is already RESP text (one
    /// or more commands, e.g. `SELECT n` and the command); no I/O. Returns
    /// the record's lsn.
    pub fn append_payload(
        &mut self,
        payload: &[u8],
        tx: Option<(u64, u16)>,
    ) -> Result<u64, EncodeError> {
        let (lsn, fields) = self.next_fields(tx);
        let len = super::record::encode(&fields, payload, &mut self.pending)?;
        Ok(self.appended(lsn, len))
    }

    /// Takes over segment `first_lsn`, created, preallocated and synced by
    /// the caller (the server does that with asynchronous I/O).
    pub fn adopt_segment(&mut self, first_lsn: u64, file: I::File) {
        if self.segment_file(first_lsn).is_none() {
            self.files.push(OpenSegment { first_lsn, file });
            self.stats.segments_created = self.stats.segments_created.saturating_add(1);
        }
    }

    /// Continues segment `first_lsn` (`size` bytes, opened by the caller as
    /// `file`) at `pos`, just past its last valid record, instead of
    /// starting a new segment at the first flush: a restart must not add a
    /// segment (after fifty crashes, fifty mostly empty 64 MiB files that
    /// every start reads). `tail` is the bytes of the block holding `pos`
    /// before it (`pos % 4096` of them), as on disk; the first flush
    /// rewrites them identically, as every flush does. Ignored unless
    /// `pos <= size`, `tail` has that length and nothing was flushed yet.
    pub fn resume(&mut self, first_lsn: u64, size: u64, pos: u64, tail: Vec<u8>, file: I::File) {
        let fits = pos <= size
            && tail.len() as u64 == pos % ALIGN as u64
            && size.is_multiple_of(ALIGN as u64);
        if !fits || self.cursor.is_some() || self.in_flight.is_some() {
            return;
        }
        self.cursor = Some(Cursor {
            first_lsn,
            size,
            pos,
            tail,
        });
        self.files.push(OpenSegment { first_lsn, file });
    }

    /// Lsn the next appended record gets.
    pub fn next_lsn(&self) -> u64 {
        self.next_lsn
    }

    /// Every record with an lsn up to this one is durable (0: none yet).
    pub fn durable_lsn(&self) -> u64 {
        self.durable_lsn
    }

    /// Records appended but not yet durable.
    pub fn pending_records(&self) -> usize {
        self.pending_records.len()
    }

    pub fn pending_bytes(&self) -> usize {
        self.pending.len()
    }

    /// A plan is out and not completed yet.
    pub fn is_flushing(&self) -> bool {
        self.in_flight.is_some()
    }

    /// The last flush failed and no flush has succeeded since: the caller
    /// refuses writes (`MISCONF`-style) until a retry succeeds.
    pub fn is_failed(&self) -> bool {
        self.last_error.is_some()
    }

    pub fn last_error(&self) -> Option<&JournalError> {
        self.last_error.as_ref()
    }

    pub fn stats(&self) -> &JournalStats {
        &self.stats
    }

    /// `(first lsn, size, write position)` of the current segment.
    pub fn current_segment(&self) -> Option<(u64, u64, u64)> {
        self.cursor.as_ref().map(|c| (c.first_lsn, c.size, c.pos))
    }

    /// The open file of segment `first_lsn` (after [`Journal::ensure_segment`]).
    pub fn segment_file(&self, first_lsn: u64) -> Option<&I::File> {
        self.files
            .iter()
            .find(|s| s.first_lsn == first_lsn)
            .map(|s| &s.file)
    }

    /// Turns everything pending (up to `max_flush_bytes`, at least one
    /// record) into aligned writes; no I/O. `None` when nothing is pending
    /// or a plan is still out (its records' successors wait for the next
    /// flush: group commit).
    pub fn prepare_flush(&mut self) -> Option<FlushPlan> {
        if self.in_flight.is_some() || self.pending_records.is_empty() {
            return None;
        }
        let mut cur = self.cursor.clone();
        let mut writes = Vec::new();
        // The write being built: (segment, size, new, offset, tail block's
        // durable bytes, range of `pending` with its records).
        type Building = (u64, u64, bool, u64, Vec<u8>, (usize, usize));
        let mut open: Option<Building> = None;
        let mut off = 0usize;
        let mut taken = 0usize;
        let mut first_lsn = 0u64;
        let mut last_lsn = 0u64;
        for rec in &self.pending_records {
            if taken > 0 && off.saturating_add(rec.len) > self.cfg.max_flush_bytes {
                break;
            }
            let Some(bytes) = self.pending.get(off..off.saturating_add(rec.len)) else {
                break;
            };
            let len = rec.len as u64;
            let fits = cur
                .as_ref()
                .is_some_and(|c| c.pos.saturating_add(len) <= c.size);
            if !fits {
                if let Some(w) = open.take() {
                    writes.push(w);
                }
                let size = self.cfg.segment_size.max(round_up(len));
                cur = Some(Cursor {
                    first_lsn: rec.lsn,
                    size,
                    pos: 0,
                    tail: Vec::new(),
                });
                open = Some((rec.lsn, size, true, 0, Vec::new(), (off, off)));
            }
            let Some(c) = cur.as_mut() else { break };
            let w = open.get_or_insert_with(|| {
                let start = c.pos.saturating_sub(c.tail.len() as u64);
                (
                    c.first_lsn,
                    c.size,
                    false,
                    start,
                    c.tail.clone(),
                    (off, off),
                )
            });
            w.5 .1 = off.saturating_add(bytes.len());
            c.pos = c.pos.saturating_add(len);
            off = off.saturating_add(rec.len);
            if taken == 0 {
                first_lsn = rec.lsn;
            }
            last_lsn = rec.lsn;
            taken = taken.saturating_add(1);
        }
        if let Some(w) = open.take() {
            writes.push(w);
        }
        let mut end = cur?;
        if taken == 0 {
            return None;
        }
        let writes: Vec<PlannedWrite> = writes
            .into_iter()
            .map(
                |(segment, segment_size, new_segment, offset, tail, (from, to))| {
                    // One copy of the records, straight into the aligned buffer.
                    let recs = self.pending.get(from..to).unwrap_or(&[]);
                    let len = tail.len().saturating_add(recs.len());
                    let mut buf = AlignedBuf::zeroed(round_up(len as u64) as usize);
                    let dst = buf.as_mut_slice();
                    if let Some(d) = dst.get_mut(..tail.len()) {
                        d.copy_from_slice(&tail);
                    }
                    if let Some(d) = dst.get_mut(tail.len()..len) {
                        d.copy_from_slice(recs);
                    }
                    PlannedWrite {
                        segment,
                        segment_size,
                        new_segment,
                        offset,
                        buf,
                    }
                },
            )
            .collect();
        // The new tail block: the last write's bytes from the block holding
        // the end position.
        let tail_start = end.pos - end.pos % ALIGN as u64;
        end.tail = writes
            .last()
            .and_then(|w| {
                let from = usize::try_from(tail_start.checked_sub(w.offset)?).ok()?;
                let to = usize::try_from(end.pos.checked_sub(w.offset)?).ok()?;
                w.buf.as_slice().get(from..to)
            })
            .map(<[u8]>::to_vec)
            .unwrap_or_default();
        self.plan_seq = self.plan_seq.wrapping_add(1);
        self.in_flight = Some(self.plan_seq);
        Some(FlushPlan {
            id: self.plan_seq,
            writes,
            records: taken,
            record_bytes: off,
            first_lsn,
            last_lsn,
            end,
        })
    }

    /// Creates segment `first_lsn` of `size` bytes (zero-filled,
    /// fdatasync'd once, directory synced) unless it is already open.
    pub fn ensure_segment(
        &mut self,
        io: &mut I,
        first_lsn: u64,
        size: u64,
    ) -> Result<(), JournalError> {
        if self.segment_file(first_lsn).is_some() {
            return Ok(());
        }
        let dir = self.cfg.dir.clone();
        let path = segment_path(&dir, first_lsn);
        let file = io
            .create_segment(&dir, first_lsn)
            .map_err(|e| JournalError::new("create", &path, None, &e))?;
        io.preallocate(&file, size)
            .map_err(|e| JournalError::new("preallocate", &path, None, &e))?;
        io.sync_data(&file)
            .map_err(|e| JournalError::new("sync", &path, None, &e))?;
        io.sync_dir(&dir)
            .map_err(|e| JournalError::new("sync directory", &dir, None, &e))?;
        self.adopt_segment(first_lsn, file);
        Ok(())
    }

    /// Runs a plan synchronously, in order: creates a new segment, writes,
    /// and fdatasyncs each segment before the next segment's write is
    /// issued (see [`FlushPlan`]). Returns the total fdatasync latency.
    pub fn execute(&mut self, io: &mut I, plan: &FlushPlan) -> Result<Duration, JournalError> {
        let mut fsync = Duration::ZERO;
        for (i, w) in plan.writes.iter().enumerate() {
            if w.new_segment {
                self.ensure_segment(io, w.segment, w.segment_size)?;
            }
            let path = segment_path(&self.cfg.dir, w.segment);
            let file = self.segment_file(w.segment).ok_or_else(|| {
                JournalError::new(
                    "write",
                    &path,
                    Some(w.offset),
                    &io::Error::new(io::ErrorKind::NotFound, "segment is not open"),
                )
            })?;
            io.write_at(file, w.offset, w.buf.as_slice())
                .map_err(|e| JournalError::new("write", &path, Some(w.offset), &e))?;
            let last_of_segment = plan
                .writes
                .get(i.saturating_add(1))
                .is_none_or(|next| next.segment != w.segment);
            if last_of_segment {
                let started = Instant::now();
                io.sync_data(file)
                    .map_err(|e| JournalError::new("sync", &path, None, &e))?;
                fsync = fsync.saturating_add(started.elapsed());
            }
        }
        Ok(fsync)
    }

    /// Hands back a plan after its writes and fdatasyncs. `Ok(fsync
    /// latency)`: the plan's records are durable; returns the new
    /// `durable_lsn`. `Err`: the records stay pending, the error is
    /// remembered and returned; the next plan retries them.
    pub fn complete_flush(
        &mut self,
        plan: FlushPlan,
        result: Result<Duration, JournalError>,
    ) -> Result<u64, JournalError> {
        if self.in_flight != Some(plan.id) {
            return Err(JournalError::new(
                "complete flush",
                &self.cfg.dir,
                None,
                &io::Error::new(io::ErrorKind::InvalidInput, "not the plan in flight"),
            ));
        }
        self.in_flight = None;
        match result {
            Ok(latency) => {
                self.pending
                    .drain(..plan.record_bytes.min(self.pending.len()));
                let n = plan.records.min(self.pending_records.len());
                self.pending_records.drain(..n);
                let write_bytes = plan.write_bytes() as u64;
                let seg = plan.end.first_lsn;
                self.cursor = Some(plan.end);
                self.files.retain(|s| s.first_lsn == seg);
                self.durable_lsn = plan.last_lsn;
                self.last_error = None;
                let s = &mut self.stats;
                s.flushes = s.flushes.saturating_add(1);
                s.records_flushed = s.records_flushed.saturating_add(plan.records as u64);
                s.bytes_written = s.bytes_written.saturating_add(write_bytes);
                s.current_size = s.current_size.saturating_add(plan.record_bytes as u64);
                s.last_fsync_latency = Some(latency);
                Ok(self.durable_lsn)
            }
            Err(e) => {
                self.stats.failed_flushes = self.stats.failed_flushes.saturating_add(1);
                self.last_error = Some(e.clone());
                Err(e)
            }
        }
    }

    /// prepare + write + fdatasync + complete, synchronously. `Ok(None)`
    /// when there was nothing to flush, else the new `durable_lsn`.
    pub fn flush(&mut self, io: &mut I) -> Result<Option<u64>, JournalError> {
        let Some(plan) = self.prepare_flush() else {
            return Ok(None);
        };
        let result = self.execute(io, &plan);
        self.complete_flush(plan, result).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::super::io::{Fault, FaultyIo, IoPath, MemIo, Op, StdLogIo};
    use super::super::record::{scan, ScanError};
    use super::*;

    fn cfg(seg: u64) -> JournalConfig {
        JournalConfig::for_shard(Path::new("/log"), 3).with_segment_size(seg)
    }

    fn resp(args: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        crate::resp::write_command(&mut out, args.iter().copied());
        out
    }

    fn val(i: u64, size: usize) -> Vec<u8> {
        let mut v = format!("value-{i}-").into_bytes();
        v.resize(size.max(v.len()), b'a' + (i % 26) as u8);
        v
    }

    /// Appends `SET key-<lsn> <value>`; returns the expected payload.
    fn set<I: LogIo>(j: &mut Journal<I>, size: usize) -> (u64, Vec<u8>) {
        let lsn = j.next_lsn();
        let key = format!("key-{lsn}").into_bytes();
        let v = val(lsn, size);
        let args: [&[u8]; 3] = [b"SET", &key, &v];
        assert_eq!(j.append(args.iter().copied(), None).unwrap(), lsn);
        (lsn, resp(&args))
    }

    /// Scans every segment of a MemIo shard dir in order; returns the
    /// records and the error that ended the last scan, if any.
    fn scan_dir(io: &mut MemIo, dir: &Path) -> (Vec<(u64, Vec<u8>)>, Option<ScanError>) {
        let mut out = Vec::new();
        let segs = io.list_segments(dir).unwrap();
        for (i, seg) in segs.iter().enumerate() {
            let bytes = io.contents(&segment_path(dir, *seg)).unwrap().to_vec();
            for r in scan(&bytes, 0).tail_window(DEFAULT_MAX_FLUSH_BYTES + ALIGN) {
                match r {
                    Ok(r) => out.push((r.fields.lsn, r.payload.to_vec())),
                    Err(e) => {
                        assert_eq!(i + 1, segs.len(), "error before the last segment: {e}");
                        return (out, Some(e));
                    }
                }
            }
        }
        (out, None)
    }

    #[test]
    fn records_round_trip_through_flush_and_scan() {
        let mut io = MemIo::new();
        let mut j = Journal::new(cfg(DEFAULT_SEGMENT_SIZE), 1, 0);
        let mut expect = Vec::new();
        for round in 0..10 {
            for k in 0..(round * 3 + 1) {
                expect.push(set(&mut j, 10 + 97 * k));
            }
            let durable = j.flush(&mut io).unwrap().unwrap();
            assert_eq!(durable, expect.len() as u64);
            assert_eq!(j.durable_lsn(), durable);
            assert_eq!(j.pending_records(), 0);
        }
        assert_eq!(j.flush(&mut io).unwrap(), None);
        let dir = j.config().dir.clone();
        assert_eq!(dir, Path::new("/log/shard-3"));
        assert_eq!(io.list_segments(&dir).unwrap(), vec![1]);
        let path = dir.join("seg-00000000000000000001.log");
        assert_eq!(
            io.contents(&path).unwrap().len() as u64,
            DEFAULT_SEGMENT_SIZE
        );
        // A crash now loses nothing.
        io.crash();
        let (got, err) = scan_dir(&mut io, &dir);
        assert!(err.is_none());
        assert_eq!(got, expect);
        let s = j.stats();
        assert_eq!(s.flushes, 10);
        assert_eq!(s.records_flushed, expect.len() as u64);
        assert_eq!(s.segments_created, 1);
        let record_bytes: u64 = expect.iter().map(|(_, p)| (p.len() + 32) as u64).sum();
        assert_eq!(s.current_size, record_bytes);
        assert!(s.bytes_written >= record_bytes);
        assert_eq!(s.bytes_written % ALIGN as u64, 0);
    }

    #[test]
    fn a_resumed_writer_continues_the_last_segment_after_a_crash() {
        let mut io = MemIo::new();
        let mut expect = Vec::new();
        let dir = cfg(16 << 10).dir.clone();
        // Fifty "processes", each writing a little and then crashing.
        for life in 0..50u64 {
            let segs = io.list_segments(&dir).unwrap_or_default();
            let mut j = Journal::new(cfg(16 << 10), expect.len() as u64 + 1, 0);
            if let Some(&first) = segs.last() {
                let bytes = io.contents(&segment_path(&dir, first)).unwrap().to_vec();
                let mut sc = scan(&bytes, 0);
                assert!(sc.by_ref().all(|r| r.is_ok()));
                let pos = sc.valid_end();
                let tail = bytes[(pos - pos % ALIGN as u64) as usize..pos as usize].to_vec();
                let file = io.open_segment(&dir, first).unwrap();
                j.resume(first, bytes.len() as u64, pos, tail, file);
            }
            for k in 0..(life % 7 + 1) {
                expect.push(set(&mut j, 10 + 131 * k as usize));
                j.flush(&mut io).unwrap();
            }
            io.crash();
        }
        // Segments are as many as the records need (16 KiB each, not one
        // per life), and every record is there in order.
        let segs = io.list_segments(&dir).unwrap();
        let bytes: u64 = expect.iter().map(|(_, p)| (p.len() + 32) as u64).sum();
        assert!(
            (segs.len() as u64) <= bytes / (12 << 10) + 1,
            "{} segments for {bytes} bytes",
            segs.len()
        );
        let (got, err) = scan_dir(&mut io, &dir);
        assert!(err.is_none(), "{err:?}");
        assert_eq!(got, expect);
    }

    #[test]
    fn transaction_parts_carry_txid_and_parts() {
        let mut io = MemIo::new();
        let mut j = Journal::new(cfg(DEFAULT_SEGMENT_SIZE), 5, 0);
        let args: [&[u8]; 2] = [b"DEL", b"k"];
        assert_eq!(j.append(args.iter().copied(), Some((77, 3))).unwrap(), 5);
        assert!(j.append(args.iter().copied(), Some((0, 3))).is_err());
        assert_eq!(j.next_lsn(), 6);
        j.flush(&mut io).unwrap();
        let bytes = io
            .contents(&segment_path(&j.config().dir, 5))
            .unwrap()
            .to_vec();
        let recs: Vec<_> = scan(&bytes, 0).collect::<Result<_, _>>().unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].fields, RecordHeaderFields::part_of(5, 77, 3));
    }

    #[test]
    fn tail_block_rewrite_keeps_earlier_bytes_identical() {
        let mut io = MemIo::new();
        let mut j = Journal::new(cfg(DEFAULT_SEGMENT_SIZE), 1, 0);
        let path = segment_path(&j.config().dir, 1);
        let mut prev: Vec<u8> = Vec::new();
        let mut prev_pos = 0u64;
        for i in 0..40 {
            set(&mut j, 50 + 211 * (i % 7));
            let plan = j.prepare_flush().unwrap();
            assert_eq!(plan.writes().len(), 1);
            let w = &plan.writes()[0];
            // The write starts at the block holding the old end and repeats
            // the durable bytes of that block exactly.
            assert_eq!(w.offset, prev_pos - prev_pos % ALIGN as u64);
            let keep = (prev_pos - w.offset) as usize;
            assert_eq!(
                &w.buf.as_slice()[..keep],
                &prev[w.offset as usize..prev_pos as usize]
            );
            assert_eq!(w.buf.len() % ALIGN, 0);
            let r = j.execute(&mut io, &plan);
            j.complete_flush(plan, r).unwrap();
            let now = io.durable_contents(&path).unwrap().to_vec();
            assert_eq!(&now[..prev_pos as usize], &prev[..prev_pos as usize]);
            prev_pos = j.current_segment().unwrap().2;
            assert!(now[prev_pos as usize..].iter().all(|&b| b == 0));
            prev = now;
        }
    }

    #[test]
    fn segments_roll_over() {
        let mut io = MemIo::new();
        let seg = 2 * ALIGN as u64;
        let mut j = Journal::new(cfg(seg), 1, 0);
        let dir = j.config().dir.clone();
        let mut expect = Vec::new();
        // Fill most of the first segment.
        for _ in 0..6 {
            expect.push(set(&mut j, 1000));
        }
        j.flush(&mut io).unwrap();
        assert_eq!(j.current_segment().unwrap().0, 1);
        // The next flush runs over the end: two writes, old and new segment.
        for _ in 0..3 {
            expect.push(set(&mut j, 1000));
        }
        let plan = j.prepare_flush().unwrap();
        assert_eq!(plan.writes().len(), 2);
        assert!(!plan.writes()[0].new_segment);
        assert_eq!(plan.writes()[0].segment, 1);
        assert!(plan.writes()[1].new_segment);
        assert_eq!(plan.writes()[1].offset, 0);
        let second = plan.writes()[1].segment;
        assert!(second > 1 && second <= 10);
        assert_eq!(plan.segments_to_sync(), vec![1, second]);
        let r = j.execute(&mut io, &plan);
        j.complete_flush(plan, r).unwrap();
        assert_eq!(j.current_segment().unwrap().0, second);
        // A record larger than a segment gets a segment of its own size.
        let big = set(&mut j, 3 * ALIGN);
        expect.push(big.clone());
        expect.push(set(&mut j, 10));
        j.flush(&mut io).unwrap();
        let segs = io.list_segments(&dir).unwrap();
        // 1, the one started by lsn 8, and the big record's own segment
        // (the small record after it fits into the rest of that segment).
        assert_eq!(segs.len(), 3);
        assert_eq!(segs[2], big.0);
        let big_len = io.contents(&segment_path(&dir, big.0)).unwrap().len() as u64;
        assert_eq!(big_len, round_up((big.1.len() + 32) as u64));
        assert!(big_len > seg);
        for s in &segs {
            let bytes = io.contents(&segment_path(&dir, *s)).unwrap();
            let first = scan(bytes, 0).next().unwrap().unwrap();
            assert_eq!(first.fields.lsn, *s, "segment named after its first lsn");
            assert!(scan(bytes, 0).all(|r| r.is_ok()));
        }
        io.crash();
        let (got, err) = scan_dir(&mut io, &dir);
        assert!(err.is_none());
        assert_eq!(got, expect);
    }

    #[test]
    fn group_commit_batches_everything_appended_during_a_flush() {
        let mut io = FaultyIo::new(MemIo::new());
        let mut j = Journal::new(cfg(DEFAULT_SEGMENT_SIZE), 1, 0);
        set(&mut j, 10);
        set(&mut j, 10);
        let plan = j.prepare_flush().unwrap();
        assert_eq!(plan.records(), 2);
        // While the plan is out, more records arrive; no second plan.
        for _ in 0..5 {
            set(&mut j, 100);
        }
        assert!(j.prepare_flush().is_none());
        assert!(j.is_flushing());
        let r = j.execute(&mut io, &plan);
        assert_eq!(j.complete_flush(plan, r).unwrap(), 2);
        assert_eq!(j.pending_records(), 5);
        let writes_before = io.count(Op::Write);
        let syncs_before = io.count(Op::Sync);
        let plan = j.prepare_flush().unwrap();
        assert_eq!(plan.records(), 5);
        assert_eq!((plan.first_lsn(), plan.last_lsn()), (3, 7));
        assert_eq!(plan.writes().len(), 1);
        let r = j.execute(&mut io, &plan);
        assert_eq!(j.complete_flush(plan, r).unwrap(), 7);
        assert_eq!(io.count(Op::Write) - writes_before, 1);
        assert_eq!(io.count(Op::Sync) - syncs_before, 1);
        assert_eq!(j.stats().records_flushed, 7);
        assert_eq!(j.stats().flushes, 2);
    }

    #[test]
    fn max_flush_bytes_splits_a_large_backlog() {
        let mut io = MemIo::new();
        let mut j = Journal::new(cfg(DEFAULT_SEGMENT_SIZE).with_max_flush_bytes(3000), 1, 0);
        for _ in 0..10 {
            set(&mut j, 900);
        }
        let mut flushes = 0;
        while j.flush(&mut io).unwrap().is_some() {
            flushes += 1;
        }
        assert!(flushes >= 4, "{flushes}");
        assert_eq!(j.durable_lsn(), 10);
    }

    #[test]
    fn write_and_sync_errors_keep_data_pending_until_a_retry_succeeds() {
        for op in [Op::Write, Op::Sync, Op::Preallocate] {
            for fault in [Fault::Eio, Fault::Enospc] {
                let mut io = FaultyIo::new(MemIo::new());
                // Small segments so that the failing flush also creates one.
                let mut j = Journal::new(cfg(2 * ALIGN as u64), 1, 0);
                let dir = j.config().dir.clone();
                let mut expect = Vec::new();
                for _ in 0..3 {
                    expect.push(set(&mut j, 1500));
                }
                j.flush(&mut io).unwrap();
                for _ in 0..3 {
                    expect.push(set(&mut j, 1500));
                }
                io.fail_nth(op, 1, fault);
                let e = j.flush(&mut io).unwrap_err();
                let errno = match fault {
                    Fault::Eio => libc::EIO,
                    _ => libc::ENOSPC,
                };
                assert_eq!(e.errno, Some(errno), "{op:?} {fault:?}: {e}");
                assert!(j.is_failed());
                assert_eq!(j.last_error(), Some(&e));
                assert_eq!(j.durable_lsn(), 3, "{op:?} {fault:?}");
                assert_eq!(j.pending_records(), 3);
                assert_eq!(j.stats().failed_flushes, 1);
                // A crash now keeps the acknowledged records, plus at most
                // records of the failed flush that happened to be synced
                // (the old segment's part when only the new segment failed).
                let mut image = io.inner().clone();
                image.crash();
                let (got, err) = scan_dir(&mut image, &dir);
                assert!(err.is_none(), "{err:?}");
                let lsns: Vec<u64> = got.iter().map(|r| r.0).collect();
                assert!(got.len() >= 3 && got[..] == expect[..got.len()], "{lsns:?}");
                if op == Op::Write {
                    assert_eq!(lsns, [1, 2, 3]);
                }
                // More records arrive (the caller would refuse writes; the
                // journal itself does not care), then the retry succeeds.
                expect.push(set(&mut j, 10));
                assert_eq!(j.flush(&mut io).unwrap(), Some(7));
                assert!(!j.is_failed());
                io.inner_mut().crash();
                let (got, err) = scan_dir(io.inner_mut(), &dir);
                assert!(err.is_none(), "{err:?}");
                assert!(got == expect, "{op:?} {fault:?}");
            }
        }
    }

    /// After a write that was not synced, every crash image (any subset of
    /// the unsynced blocks on disk) scans to the synced records plus a
    /// prefix of the unsynced ones, ending cleanly or with a torn tail.
    fn check_crash_images(
        io: &MemIo,
        dir: &Path,
        synced: &[(u64, Vec<u8>)],
        all: &[(u64, Vec<u8>)],
    ) {
        let dirty_blocks: Vec<(PathBuf, u64)> = {
            // Blocks whose current and durable contents differ.
            let mut v = Vec::new();
            for p in io.paths() {
                let cur = io.contents(&p).unwrap();
                let dur = io.durable_contents(&p).unwrap();
                for b in 0..cur.len().div_ceil(ALIGN) {
                    let a = cur.get(b * ALIGN..(b + 1) * ALIGN);
                    let d = dur.get(b * ALIGN..((b + 1) * ALIGN).min(dur.len()));
                    if a != d {
                        v.push((p.clone(), b as u64));
                    }
                }
            }
            v
        };
        assert!(!dirty_blocks.is_empty() && dirty_blocks.len() <= 10);
        for mask in 0u32..(1 << dirty_blocks.len()) {
            let mut image = io.clone();
            image.crash_keeping(|p, b| {
                dirty_blocks
                    .iter()
                    .position(|(dp, db)| dp == p && *db == b)
                    .is_some_and(|i| mask & (1 << i) != 0)
            });
            let (got, err) = scan_dir(&mut image, dir);
            if let Some(e) = &err {
                assert!(matches!(e, ScanError::TornTail { .. }), "mask {mask}: {e}");
            }
            let lsns: Vec<u64> = got.iter().map(|r| r.0).collect();
            assert!(
                got.len() >= synced.len(),
                "mask {mask}: lost synced records: {lsns:?}"
            );
            assert!(got.len() <= all.len(), "mask {mask}: {lsns:?}");
            let want: Vec<u64> = all[..got.len()].iter().map(|r| r.0).collect();
            assert_eq!(lsns, want, "mask {mask}: {err:?}");
            assert!(got[..] == all[..got.len()], "mask {mask}: garbage");
        }
    }

    #[test]
    fn crash_after_write_before_sync_leaves_synced_records_and_maybe_a_torn_tail() {
        let mut io = FaultyIo::new(MemIo::new());
        let mut j = Journal::new(cfg(DEFAULT_SEGMENT_SIZE), 1, 0);
        let dir = j.config().dir.clone();
        let mut all = Vec::new();
        for _ in 0..5 {
            all.push(set(&mut j, 300));
        }
        j.flush(&mut io).unwrap();
        let synced = all.clone();
        for _ in 0..8 {
            all.push(set(&mut j, 1200));
        }
        // The write lands, the fdatasync never happens (crash).
        io.fail_nth(Op::Sync, 1, Fault::Eio);
        assert!(j.flush(&mut io).is_err());
        assert_eq!(j.durable_lsn(), 5);
        check_crash_images(io.inner(), &dir, &synced, &all);
    }

    #[test]
    fn torn_write_during_roll_over_never_yields_garbage() {
        let mut io = FaultyIo::new(MemIo::new());
        let mut j = Journal::new(cfg(3 * ALIGN as u64), 1, 0);
        let dir = j.config().dir.clone();
        let mut all = Vec::new();
        for _ in 0..4 {
            all.push(set(&mut j, 2000));
        }
        j.flush(&mut io).unwrap();
        let synced = all.clone();
        for _ in 0..4 {
            all.push(set(&mut j, 2000));
        }
        // Second write of the plan (the new segment) is torn after one block.
        io.fail_nth(Op::Write, 2, Fault::Torn { keep_blocks: 1 });
        assert!(j.flush(&mut io).is_err());
        assert!(io.is_crashed());
        check_crash_images(io.inner(), &dir, &synced, &all);
        // Keeping everything written: the old segment's records and the
        // first block of the new one.
        let mut image = io.inner().clone();
        image.crash_keeping(|_, _| true);
        let (got, err) = scan_dir(&mut image, &dir);
        assert!(matches!(err, Some(ScanError::TornTail { .. })), "{err:?}");
        assert!(got.len() > synced.len());
        assert_eq!(&got[..], &all[..got.len()]);
    }

    /// Runs a journal on `StdLogIo` under `root`; returns the probed path.
    fn std_log_io_round_trip(root: &Path) -> IoPath {
        let base = root.join(format!("kv-journal-writer-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let probed = StdLogIo::probe(&base).unwrap();
        eprintln!(
            "temp dir {}: O_DIRECT probe says {}",
            base.display(),
            probed.as_str()
        );
        for (mut io, want) in [
            (StdLogIo::new(), probed),
            (StdLogIo::buffered(), IoPath::Buffered),
        ] {
            let _ = std::fs::remove_dir_all(&base);
            let cfg = JournalConfig::for_shard(&base, 0).with_segment_size(64 * 1024);
            let mut j = Journal::new(cfg, 1, 0);
            let dir = j.config().dir.clone();
            let mut expect = Vec::new();
            for i in 0..60 {
                expect.push(set(&mut j, 100 + 37 * i));
                if i % 7 == 0 {
                    j.flush(&mut io).unwrap();
                }
            }
            j.flush(&mut io).unwrap();
            assert_eq!(j.durable_lsn(), 60);
            assert_eq!(io.io_path(), Some(want));
            let segs = io.list_segments(&dir).unwrap();
            assert!(segs.len() >= 2);
            let mut got = Vec::new();
            for s in &segs {
                let bytes = std::fs::read(segment_path(&dir, *s)).unwrap();
                assert_eq!(bytes.len() % ALIGN, 0);
                for r in scan(&bytes, 0) {
                    let r = r.unwrap();
                    got.push((r.fields.lsn, r.payload.to_vec()));
                }
            }
            assert_eq!(got, expect);
            io.remove_segment(&dir, segs[0]).unwrap();
            assert_eq!(io.list_segments(&dir).unwrap(), segs[1..].to_vec());
        }
        let _ = std::fs::remove_dir_all(&base);
        probed
    }

    #[test]
    fn std_log_io_in_the_temp_dir() {
        std_log_io_round_trip(&std::env::temp_dir());
    }

    /// tmpfs refuses O_DIRECT on kernels before 6.6 (EINVAL at open); the
    /// writer must then fall back to buffered writes. Newer kernels accept
    /// it. Either way the path used must be the probed one.
    #[test]
    fn std_log_io_on_tmpfs_if_present() {
        let shm = Path::new("/dev/shm");
        if std::fs::metadata(shm).is_ok_and(|m| m.is_dir())
            && std::fs::write(shm.join(format!("kv-probe-{}", std::process::id())), b"x").is_ok()
        {
            let _ = std::fs::remove_file(shm.join(format!("kv-probe-{}", std::process::id())));
            std_log_io_round_trip(shm);
        }
    }
}
