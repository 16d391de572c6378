//! The on-disk record format of a shard's log, format version 1.
//!
//! A log is a byte stream of records, each a fixed 32-byte header followed by
//! its payload (the RESP text of one command, or of one shard's part of a
//! multi-shard command). Integers are little-endian. `docs/FORMATS.md` has the
//! byte diagram and the crash-safety argument; in short:
//!
//! ```text
//! 0       1      2        4             8        16       24             26        28      32
//! | magic | type | flags  | payload_len | lsn    | txid   | participants | reserved | crc32c | payload ...
//! | u8    | u8   | u16 LE | u32 LE      | u64 LE | u64 LE | u16 LE       | u16 = 0  | u32 LE |
//! ```
//!
//! The CRC32C (Castagnoli) covers header bytes `0..28` and the payload.
//!
//! [`scan`] walks a stream and yields records until it reaches all-zero bytes
//! (unwritten, preallocated space: a clean end) or a bad record. A bad record
//! with no valid record anywhere after it is a torn tail
//! ([`ScanError::TornTail`]: cut the log there); a bad record followed by a
//! valid one is corruption before the tail ([`ScanError::Corruption`]).
//!
//! Nothing here panics on any input, performs I/O or allocates (besides
//! growing the caller's output buffer).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fmt;

/// The version of this record format. Bumped on any incompatible change;
/// the fixture in the tests pins the bytes of version 1.
pub const FORMAT_VERSION: u8 = 1;

/// First byte of every record: `0xA0 | FORMAT_VERSION`. Never zero, so a zero
/// byte where a header should start marks unwritten space.
pub const MAGIC: u8 = 0xA0 | FORMAT_VERSION;

/// Size of the fixed record header in bytes.
pub const HEADER_LEN: usize = 32;

/// The header bytes covered by the checksum come first; the checksum sits in
/// the header's last four bytes.
const CRC_OFFSET: usize = 28;

/// The block size of the O_DIRECT writes the log is written with. The record
/// format itself does not depend on it (records run across block boundaries);
/// [`encode_padding`] can fill a stream up to a block boundary.
pub const BLOCK_SIZE: usize = 4096;

/// Largest payload a record may carry (1 GiB, Redis's
/// `client-query-buffer-limit` default: no single command is longer). A
/// header claiming more is treated as damaged.
pub const MAX_PAYLOAD_LEN: u32 = 1 << 30;

/// Flag bits defined by this format version (none yet). A header with any
/// other bit set is rejected.
pub const KNOWN_FLAGS: u16 = 0;

/// What a record holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum RecordType {
    /// RESP text of one command, or of one shard's part of a multi-shard
    /// command (possibly several commands, e.g. a transaction's).
    Command = 1,
    /// Filler with a zero payload; carries no data and no sequence number
    /// (`lsn`, `txid` and `participants` are 0). Readers skip it.
    Padding = 2,
}

impl RecordType {
    fn from_byte(b: u8) -> Option<Self> {
        match b {
            1 => Some(Self::Command),
            2 => Some(Self::Padding),
            _ => None,
        }
    }
}

/// The header fields a writer chooses (length and checksum are computed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RecordHeaderFields {
    pub kind: RecordType,
    /// Flag bits; must be a subset of [`KNOWN_FLAGS`].
    pub flags: u16,
    /// Log sequence number, from 1, increasing by one per command record of
    /// a shard. 0 only for padding.
    pub lsn: u64,
    /// Transaction id shared by every participant's part of a multi-shard
    /// command; 0 for a command that touches one shard only.
    pub txid: u64,
    /// Number of shards taking part in transaction `txid` (1 when `txid` is
    /// 0). Recovery applies a transaction only if all of its parts are
    /// durable.
    pub participants: u16,
}

impl RecordHeaderFields {
    /// A command that touches one shard only.
    pub fn single(lsn: u64) -> Self {
        Self {
            kind: RecordType::Command,
            flags: 0,
            lsn,
            txid: 0,
            participants: 1,
        }
    }

    /// This shard's part of transaction `txid` across `participants` shards.
    pub fn part_of(lsn: u64, txid: u64, participants: u16) -> Self {
        Self {
            kind: RecordType::Command,
            flags: 0,
            lsn,
            txid,
            participants,
        }
    }

    fn padding() -> Self {
        Self {
            kind: RecordType::Padding,
            flags: 0,
            lsn: 0,
            txid: 0,
            participants: 0,
        }
    }

    /// Whether the fields obey the format's rules (checked when encoding and
    /// again when scanning).
    fn check(&self) -> Result<(), &'static str> {
        if self.flags & !KNOWN_FLAGS != 0 {
            return Err("unknown flag bits");
        }
        match self.kind {
            RecordType::Command => {
                if self.lsn == 0 {
                    return Err("command record with lsn 0");
                }
                if self.participants == 0 {
                    return Err("command record with 0 participants");
                }
                if self.txid == 0 && self.participants != 1 {
                    return Err("single-shard command (txid 0) with participants != 1");
                }
            }
            RecordType::Padding => {
                if self.lsn != 0 || self.txid != 0 || self.participants != 0 {
                    return Err("padding record with lsn, txid or participants set");
                }
            }
        }
        Ok(())
    }
}

/// Why a record could not be encoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EncodeError {
    /// The payload is longer than [`MAX_PAYLOAD_LEN`].
    PayloadTooLarge { len: usize },
    /// The header fields break a rule of the format.
    InvalidFields(&'static str),
    /// A padding record must be at least [`HEADER_LEN`] bytes long.
    PaddingTooShort { len: usize },
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PayloadTooLarge { len } => write!(
                f,
                "log record payload of {len} bytes exceeds the limit of {MAX_PAYLOAD_LEN}"
            ),
            Self::InvalidFields(why) => write!(f, "invalid log record header: {why}"),
            Self::PaddingTooShort { len } => write!(
                f,
                "padding record of {len} bytes is shorter than a header ({HEADER_LEN})"
            ),
        }
    }
}

impl std::error::Error for EncodeError {}

/// Appends one record (header + `payload`) to `out`; returns its length.
/// On error `out` is unchanged.
pub fn encode(
    fields: &RecordHeaderFields,
    payload: &[u8],
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    fields.check().map_err(EncodeError::InvalidFields)?;
    let len = payload_len(payload.len())?;
    let start = out.len();
    out.reserve(HEADER_LEN.saturating_add(payload.len()));
    push_header(fields, len, out);
    out.extend_from_slice(payload);
    seal(out, start);
    Ok(out.len().saturating_sub(start))
}

/// Appends one command record whose payload is the RESP array of `args`
/// (written in place by [`crate::resp::write_command`], no copy); returns
/// the record's length. On error `out` is unchanged.
///
/// Expiry must already be in absolute form (`PEXPIREAT`); that is the
/// caller's job.
pub fn encode_command<'a>(
    fields: &RecordHeaderFields,
    args: impl ExactSizeIterator<Item = &'a [u8]>,
    out: &mut Vec<u8>,
) -> Result<usize, EncodeError> {
    fields.check().map_err(EncodeError::InvalidFields)?;
    let start = out.len();
    push_header(fields, 0, out);
    crate::resp::write_command(out, args);
    let payload = out.len().saturating_sub(start).saturating_sub(HEADER_LEN);
    let len = match payload_len(payload) {
        Ok(len) => len,
        Err(e) => {
            out.truncate(start);
            return Err(e);
        }
    };
    put(out, start.saturating_add(4), &len.to_le_bytes());
    seal(out, start);
    Ok(out.len().saturating_sub(start))
}

/// Appends a padding record of exactly `total_len` bytes (header included,
/// at least [`HEADER_LEN`]). To fill up to the next block boundary from a
/// stream of length `n`, use `BLOCK_SIZE - n % BLOCK_SIZE` if that is at
/// least `HEADER_LEN`.
pub fn encode_padding(total_len: usize, out: &mut Vec<u8>) -> Result<usize, EncodeError> {
    let Some(payload) = total_len.checked_sub(HEADER_LEN) else {
        return Err(EncodeError::PaddingTooShort { len: total_len });
    };
    let len = payload_len(payload)?;
    let start = out.len();
    out.reserve(total_len);
    push_header(&RecordHeaderFields::padding(), len, out);
    out.resize(start.saturating_add(total_len), 0);
    seal(out, start);
    Ok(total_len)
}

fn payload_len(len: usize) -> Result<u32, EncodeError> {
    match u32::try_from(len) {
        Ok(l) if l <= MAX_PAYLOAD_LEN => Ok(l),
        _ => Err(EncodeError::PayloadTooLarge { len }),
    }
}

/// Pushes the 32 header bytes with a zero checksum.
fn push_header(fields: &RecordHeaderFields, len: u32, out: &mut Vec<u8>) {
    out.push(MAGIC);
    out.push(fields.kind as u8);
    out.extend_from_slice(&fields.flags.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&fields.lsn.to_le_bytes());
    out.extend_from_slice(&fields.txid.to_le_bytes());
    out.extend_from_slice(&fields.participants.to_le_bytes());
    out.extend_from_slice(&[0, 0]); // reserved
    out.extend_from_slice(&[0, 0, 0, 0]); // crc, filled in by `seal`
}

/// Computes and stores the checksum of the record that starts at `start`
/// and runs to the end of `out`.
fn seal(out: &mut [u8], start: usize) {
    let Some(record) = out.get(start..) else {
        return;
    };
    let crc = checksum(record);
    put(out, start.saturating_add(CRC_OFFSET), &crc.to_le_bytes());
}

/// CRC32C of header bytes `0..28` and the payload of `record` (header +
/// payload, exactly one record).
fn checksum(record: &[u8]) -> u32 {
    let head = record.get(..CRC_OFFSET).unwrap_or(&[]);
    let payload = record.get(HEADER_LEN..).unwrap_or(&[]);
    crc32c::crc32c_append(crc32c::crc32c(head), payload)
}

fn put(out: &mut [u8], at: usize, bytes: &[u8]) {
    if let Some(dst) = out.get_mut(at..at.saturating_add(bytes.len())) {
        dst.copy_from_slice(bytes);
    }
}

fn le<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut a = [0u8; N];
    for (d, s) in a.iter_mut().zip(b.iter().skip(at)) {
        *d = *s;
    }
    a
}

/// One record found by [`scan`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// Stream offset of the record's first header byte.
    pub offset: u64,
    pub fields: RecordHeaderFields,
    /// The payload (RESP text for a command record, zeros for padding).
    pub payload: &'a [u8],
}

impl Record<'_> {
    /// Length of the record on disk (header + payload).
    pub fn encoded_len(&self) -> usize {
        HEADER_LEN.saturating_add(self.payload.len())
    }

    /// Stream offset just past the record.
    pub fn end_offset(&self) -> u64 {
        self.offset.saturating_add(self.encoded_len() as u64)
    }
}

/// What is wrong with the bytes where a record should start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BadRecord {
    /// The stream ends inside the header or the payload.
    Truncated,
    /// Header bytes that no valid record has (wrong magic or version,
    /// unknown type or flags, a length over the limit, broken field rules).
    BadHeader,
    /// A zero header, but non-zero bytes follow somewhere after it.
    ZeroedHeader,
    /// Header and payload are present but the CRC32C does not match.
    ChecksumMismatch,
}

impl fmt::Display for BadRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Truncated => "incomplete record",
            Self::BadHeader => "invalid record header",
            Self::ZeroedHeader => "zeroed record header followed by data",
            Self::ChecksumMismatch => "checksum mismatch",
        })
    }
}

/// How a scan stopped short of a clean end. Offsets are stream offsets
/// (`base_offset` given to [`scan`] plus the position in the buffer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ScanError {
    /// A bad record with no valid record after it: the end of the written
    /// data was torn (a crash during the last write). Everything before
    /// `offset` is intact; the log may be cut at `offset`.
    TornTail { offset: u64, reason: BadRecord },
    /// A bad record followed by a valid record at `resume_offset`: damage
    /// before the end of the log, which must not be cut silently.
    Corruption {
        offset: u64,
        reason: BadRecord,
        resume_offset: u64,
    },
}

impl ScanError {
    /// Stream offset of the bad record.
    pub fn offset(&self) -> u64 {
        match *self {
            Self::TornTail { offset, .. } | Self::Corruption { offset, .. } => offset,
        }
    }

    pub fn reason(&self) -> BadRecord {
        match *self {
            Self::TornTail { reason, .. } | Self::Corruption { reason, .. } => reason,
        }
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TornTail { offset, reason } => {
                write!(f, "torn log tail at offset {offset}: {reason}")
            }
            Self::Corruption {
                offset,
                reason,
                resume_offset,
            } => write!(
                f,
                "corrupt log record at offset {offset}: {reason} \
                 (valid records follow at offset {resume_offset})"
            ),
        }
    }
}

impl std::error::Error for ScanError {}

/// Walks `buf`, whose first byte is at stream offset `base_offset`, record by
/// record. The iterator yields `Ok` for each valid record and ends with
/// `None` at a clean end (end of `buf`, or only zero bytes left), or with
/// one `Err` (then `None`) at a bad record. [`Scan::valid_end`] tells where
/// the intact prefix ends either way.
pub fn scan(buf: &[u8], base_offset: u64) -> Scan<'_> {
    Scan {
        buf,
        base: base_offset,
        pos: 0,
        done: false,
        tail_window: 0,
    }
}

/// Iterator returned by [`scan`].
#[derive(Clone, Debug)]
pub struct Scan<'a> {
    buf: &'a [u8],
    base: u64,
    pos: usize,
    done: bool,
    tail_window: usize,
}

impl Scan<'_> {
    /// Lets a bad record followed by valid ones still be a torn tail when it
    /// has the marks of one unfinished multi-sector write (default 0: any
    /// valid record after a bad one means corruption).
    ///
    /// A device may persist the sectors of one unfinished write in any
    /// order, so a power loss can leave a later sector of the last write on
    /// disk and an earlier one not. Such a gap is a sector that never
    /// reached the disk, so it still reads as zeros (segments are
    /// preallocated with zeros and only the tail block is ever rewritten, with
    /// identical bytes up to the old end). So the bad record is taken for a
    /// torn tail only if (1) every valid record after it starts less than
    /// `bytes` after the start of the block holding it (inside one write of
    /// at most `bytes`) and (2) between it and the next valid record lies an
    /// unwritten sector: a 512-byte aligned sector of zeros, or zeros from
    /// the bad record to the end of its sector. A flipped byte has neither
    /// mark and stays corruption.
    ///
    /// Recovery at start-up scans strictly (0): it never drops a valid
    /// record on its own. `check-aof --fix` passes the largest single write
    /// the writer issues, so an operator can cut such a write.
    pub fn tail_window(mut self, bytes: usize) -> Self {
        self.tail_window = bytes;
        self
    }

    /// Stream offset just past the last valid record yielded so far: where
    /// the next record starts, or where a torn log should be cut.
    pub fn valid_end(&self) -> u64 {
        self.base.saturating_add(self.pos as u64)
    }
}

impl<'a> Iterator for Scan<'a> {
    type Item = Result<Record<'a>, ScanError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let rest = self.buf.get(self.pos..).unwrap_or(&[]);
        let offset = self.valid_end();
        let Some(&first) = rest.first() else {
            self.done = true;
            return None;
        };
        let bad = if first == 0 {
            if rest.iter().all(|&b| b == 0) {
                self.done = true;
                return None;
            }
            if rest.iter().take(HEADER_LEN).all(|&b| b == 0) {
                BadRecord::ZeroedHeader
            } else {
                BadRecord::BadHeader
            }
        } else {
            match decode(rest) {
                Ok((fields, payload)) => {
                    let record = Record {
                        offset,
                        fields,
                        payload,
                    };
                    self.pos = self.pos.saturating_add(record.encoded_len());
                    return Some(Ok(record));
                }
                Err(bad) => bad,
            }
        };
        self.done = true;
        let found = match find_valid(self.buf, self.pos.saturating_add(1)) {
            None => None,
            Some(next) => {
                let block_start = self.pos.saturating_sub(self.pos % BLOCK_SIZE);
                let window_end = block_start.saturating_add(self.tail_window);
                let torn_write = self.tail_window > 0
                    && next < window_end
                    && find_valid(self.buf, next.saturating_add(1).max(window_end)).is_none()
                    && shows_unwritten_sector(self.buf, self.pos, next);
                (!torn_write).then_some(next)
            }
        };
        Some(Err(match found {
            Some(next) => ScanError::Corruption {
                offset,
                reason: bad,
                resume_offset: self.base.saturating_add(next as u64),
            },
            None => ScanError::TornTail {
                offset,
                reason: bad,
            },
        }))
    }
}

/// The smallest unit a device writes atomically (what FORMATS.md assumes).
pub const SECTOR_SIZE: usize = 512;

/// Whether `buf[from..to]` shows a sector that never reached the disk:
/// zeros from `from` to the end of its sector, or a whole aligned sector of
/// zeros (see [`Scan::tail_window`]).
fn shows_unwritten_sector(buf: &[u8], from: usize, to: usize) -> bool {
    let zero = |r: std::ops::Range<usize>| buf.get(r).is_some_and(|b| b.iter().all(|&x| x == 0));
    let sector_end = (from / SECTOR_SIZE + 1) * SECTOR_SIZE;
    if sector_end <= to && zero(from..sector_end) {
        return true;
    }
    (sector_end..to)
        .step_by(SECTOR_SIZE)
        .any(|s| s.saturating_add(SECTOR_SIZE) <= to && zero(s..s + SECTOR_SIZE))
}

/// Decodes the record at the start of `rest`.
fn decode(rest: &[u8]) -> Result<(RecordHeaderFields, &[u8]), BadRecord> {
    let Some(header) = rest.get(..HEADER_LEN) else {
        return Err(BadRecord::Truncated);
    };
    let kind = header.get(1).copied().and_then(RecordType::from_byte);
    let (Some(&MAGIC), Some(kind)) = (header.first(), kind) else {
        return Err(BadRecord::BadHeader);
    };
    let fields = RecordHeaderFields {
        kind,
        flags: u16::from_le_bytes(le(header, 2)),
        lsn: u64::from_le_bytes(le(header, 8)),
        txid: u64::from_le_bytes(le(header, 16)),
        participants: u16::from_le_bytes(le(header, 24)),
    };
    let len = u32::from_le_bytes(le(header, 4));
    let reserved = u16::from_le_bytes(le(header, 26));
    if fields.check().is_err() || reserved != 0 || len > MAX_PAYLOAD_LEN {
        return Err(BadRecord::BadHeader);
    }
    let total = HEADER_LEN.saturating_add(len as usize);
    let Some(record) = rest.get(..total) else {
        return Err(BadRecord::Truncated);
    };
    let stored = u32::from_le_bytes(le(header, CRC_OFFSET));
    if checksum(record) != stored {
        return Err(BadRecord::ChecksumMismatch);
    }
    Ok((fields, record.get(HEADER_LEN..).unwrap_or(&[])))
}

/// Position of the first valid record (valid header, complete, checksum
/// matches) that starts at or after `from`, if any.
fn find_valid(buf: &[u8], from: usize) -> Option<usize> {
    let tail = buf.get(from..)?;
    tail.iter()
        .enumerate()
        .filter(|&(_, &b)| b == MAGIC)
        .find(|&(i, _)| tail.get(i..).is_some_and(|r| decode(r).is_ok()))
        .map(|(i, _)| from.saturating_add(i))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A small stream with varied records: single-shard commands, a
    /// multi-shard part, padding, an empty payload.
    /// An expected record: offset, header fields, payload.
    type Expected = (u64, RecordHeaderFields, Vec<u8>);

    fn sample() -> (Vec<u8>, Vec<Expected>) {
        let mut out = Vec::new();
        let mut expect = Vec::new();
        let cmds: [&[&[u8]]; 4] = [
            &[b"SET", b"k", b"v"],
            &[b"PEXPIREAT", b"key:1", b"1790000000000"],
            &[b"DEL", b"a", b"b", b"c"],
            &[b"SET", b"long", &[b'x'; 70]],
        ];
        for (i, args) in cmds.iter().enumerate() {
            let lsn = i as u64 + 1;
            let fields = if i == 2 {
                RecordHeaderFields::part_of(lsn, 0x1122_3344_5566_7788, 3)
            } else {
                RecordHeaderFields::single(lsn)
            };
            let at = out.len() as u64;
            encode_command(&fields, args.iter().copied(), &mut out).unwrap();
            let mut payload = Vec::new();
            crate::resp::write_command(&mut payload, args.iter().copied());
            expect.push((at, fields, payload));
            if i == 1 {
                let at = out.len() as u64;
                encode_padding(HEADER_LEN + 5, &mut out).unwrap();
                expect.push((at, RecordHeaderFields::padding(), vec![0; 5]));
            }
        }
        (out, expect)
    }

    fn collect(buf: &[u8], base: u64) -> (Vec<Record<'_>>, Option<ScanError>, u64) {
        let mut s = scan(buf, base);
        let mut recs = Vec::new();
        let mut err = None;
        for item in s.by_ref() {
            match item {
                Ok(r) => recs.push(r),
                Err(e) => {
                    assert!(err.is_none(), "two errors from one scan");
                    err = Some(e);
                }
            }
        }
        assert!(s.next().is_none(), "scan resumed after its end");
        (recs, err, s.valid_end())
    }

    fn assert_prefix(recs: &[Record<'_>], expect: &[Expected]) {
        assert_eq!(recs.len(), expect.len());
        for (r, (at, f, p)) in recs.iter().zip(expect) {
            assert_eq!(r.offset, *at);
            assert_eq!(r.fields, *f);
            assert_eq!(r.payload, &p[..]);
        }
    }

    #[test]
    fn sample_round_trips_with_base_offset() {
        let (buf, expect) = sample();
        let (recs, err, end) = collect(&buf, 0);
        assert_eq!(err, None);
        assert_prefix(&recs, &expect);
        assert_eq!(end, buf.len() as u64);
        let (recs, _, end) = collect(&buf, 1_000_000);
        assert_eq!(recs[1].offset, 1_000_000 + expect[1].0);
        assert_eq!(end, 1_000_000 + buf.len() as u64);
    }

    #[test]
    fn empty_and_all_zero_buffers_end_cleanly() {
        for n in [0, 1, HEADER_LEN - 1, HEADER_LEN, BLOCK_SIZE] {
            let buf = vec![0u8; n];
            let (recs, err, end) = collect(&buf, 7);
            assert!(recs.is_empty());
            assert_eq!(err, None);
            assert_eq!(end, 7);
        }
    }

    #[test]
    fn zero_padding_after_records_ends_the_scan() {
        let (mut buf, expect) = sample();
        let len = buf.len();
        buf.resize(len.next_multiple_of(BLOCK_SIZE) + BLOCK_SIZE, 0);
        let (recs, err, end) = collect(&buf, 0);
        assert_eq!(err, None);
        assert_prefix(&recs, &expect);
        assert_eq!(end, len as u64);
    }

    #[test]
    fn truncation_at_every_offset_yields_complete_prefix_and_torn_tail() {
        let (buf, expect) = sample();
        for cut in 0..=buf.len() {
            // As written (file ends at the cut) and as in a preallocated,
            // zero-filled segment (zeros after the cut).
            let mut zero_filled = buf[..cut].to_vec();
            zero_filled.resize(buf.len() + BLOCK_SIZE, 0);
            for (stream, zeros_after) in [(&buf[..cut], false), (&zero_filled[..], true)] {
                // A padding record's payload is zeros, so once its header
                // is written the zero fill completes it: harmless (it
                // carries nothing) and expected.
                let complete: Vec<_> = expect
                    .iter()
                    .filter(|(at, f, p)| {
                        let needed = if zeros_after && f.kind == RecordType::Padding {
                            HEADER_LEN
                        } else {
                            HEADER_LEN + p.len()
                        };
                        *at as usize + needed <= cut
                    })
                    .cloned()
                    .collect();
                let boundary = complete
                    .last()
                    .map_or(0, |(at, _, p)| *at as usize + HEADER_LEN + p.len());
                let (recs, err, end) = collect(stream, 0);
                assert_prefix(&recs, &complete);
                assert_eq!(end, boundary as u64, "cut at {cut}");
                if cut <= boundary {
                    assert_eq!(err, None, "cut at record boundary {cut}");
                } else {
                    let Some(ScanError::TornTail { offset, .. }) = err else {
                        panic!("cut at {cut}: expected torn tail, got {err:?}");
                    };
                    assert_eq!(offset, boundary as u64, "cut at {cut}");
                }
            }
        }
    }

    #[test]
    fn flipping_a_byte_of_a_middle_record_is_corruption_at_its_offset() {
        let (buf, expect) = sample();
        // Every record but the last, every byte, a few flip patterns.
        for (k, (at, _, p)) in expect.iter().enumerate().take(expect.len() - 1) {
            let at = *at as usize;
            let next = at + HEADER_LEN + p.len();
            for i in at..next {
                for x in [0x01u8, 0x80, 0xFF] {
                    let mut bad = buf.clone();
                    bad[i] ^= x;
                    let (recs, err, end) = collect(&bad, 0);
                    assert_prefix(&recs, &expect[..k]);
                    assert_eq!(end, at as u64);
                    assert_eq!(
                        err,
                        Some(ScanError::Corruption {
                            offset: at as u64,
                            reason: err.unwrap().reason(),
                            resume_offset: next as u64,
                        }),
                        "byte {i} ^ {x:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn flipping_a_byte_of_the_last_record_is_a_torn_tail() {
        let (buf, expect) = sample();
        let (at, _, _) = expect.last().unwrap();
        let at = *at as usize;
        for i in at..buf.len() {
            for x in [0x01u8, 0x80, 0xFF] {
                let mut bad = buf.clone();
                bad[i] ^= x;
                bad.resize(buf.len() + 100, 0);
                let (recs, err, end) = collect(&bad, 0);
                assert_prefix(&recs, &expect[..expect.len() - 1]);
                assert_eq!(end, at as u64);
                let Some(ScanError::TornTail { offset, .. }) = err else {
                    panic!("byte {i} ^ {x:#x}: expected torn tail, got {err:?}");
                };
                assert_eq!(offset, at as u64);
            }
        }
    }

    #[test]
    fn zeroed_middle_record_is_corruption_not_end_of_log() {
        let (mut buf, expect) = sample();
        let (at, _, p) = &expect[1];
        let at = *at as usize;
        buf[at..at + HEADER_LEN + p.len()].fill(0);
        let (recs, err, _) = collect(&buf, 0);
        assert_prefix(&recs, &expect[..1]);
        assert_eq!(
            err,
            Some(ScanError::Corruption {
                offset: at as u64,
                reason: BadRecord::ZeroedHeader,
                resume_offset: expect[2].0,
            })
        );
    }

    #[test]
    fn tail_window_turns_damage_inside_the_last_write_into_a_torn_tail() {
        // Four blocks of small records; block 1 never reached the disk
        // (zeros) but blocks 2 and 3 of the same write did.
        let mut buf = Vec::new();
        let mut lsn = 0;
        while buf.len() < 4 * BLOCK_SIZE {
            lsn += 1;
            encode(&RecordHeaderFields::single(lsn), &[b'v'; 90], &mut buf).unwrap();
        }
        buf[BLOCK_SIZE..2 * BLOCK_SIZE].fill(0);
        let first_bad = (BLOCK_SIZE / 122 * 122) as u64; // record spanning into block 1
        let (recs, err, end) = collect(&buf, 0);
        assert_eq!(end, first_bad);
        assert_eq!(recs.len() as u64, first_bad / 122);
        assert!(
            matches!(err, Some(ScanError::Corruption { offset, .. }) if offset == first_bad),
            "{err:?}"
        );
        // With a window covering the whole write (blocks 0..4) it is torn.
        let mut s = scan(&buf, 0).tail_window(4 * BLOCK_SIZE);
        let n = s.by_ref().take_while(Result::is_ok).count();
        assert_eq!(n as u64, first_bad / 122);
        assert_eq!(s.valid_end(), first_bad);
        let mut s = scan(&buf, 0).tail_window(4 * BLOCK_SIZE);
        let err = s.find_map(Result::err);
        assert_eq!(
            err,
            Some(ScanError::TornTail {
                offset: first_bad,
                reason: BadRecord::ChecksumMismatch,
            })
        );
        // A window that ends before block 3 still sees block 3's records.
        let mut s = scan(&buf, 0).tail_window(3 * BLOCK_SIZE);
        assert!(matches!(
            s.find_map(Result::err),
            Some(ScanError::Corruption { .. })
        ));
    }

    #[test]
    fn encode_rejects_invalid_fields_and_leaves_out_unchanged() {
        let mut out = vec![9u8];
        let cases = [
            RecordHeaderFields::single(0),
            RecordHeaderFields::part_of(1, 0, 2),
            RecordHeaderFields::part_of(1, 5, 0),
            RecordHeaderFields {
                flags: 1,
                ..RecordHeaderFields::single(1)
            },
            RecordHeaderFields {
                lsn: 3,
                ..RecordHeaderFields::padding()
            },
        ];
        for f in cases {
            assert!(matches!(
                encode(&f, b"x", &mut out),
                Err(EncodeError::InvalidFields(_))
            ));
            assert!(matches!(
                encode_command(&f, [&b"PING"[..]].into_iter(), &mut out),
                Err(EncodeError::InvalidFields(_))
            ));
        }
        assert_eq!(
            encode_padding(HEADER_LEN - 1, &mut out),
            Err(EncodeError::PaddingTooShort {
                len: HEADER_LEN - 1
            })
        );
        assert_eq!(out, [9]);
    }

    #[test]
    fn padding_fills_to_a_block_boundary() {
        let mut out = Vec::new();
        encode(
            &RecordHeaderFields::single(1),
            b"*1\r\n$4\r\nPING\r\n",
            &mut out,
        )
        .unwrap();
        let fill = BLOCK_SIZE - out.len() % BLOCK_SIZE;
        assert_eq!(encode_padding(fill, &mut out), Ok(fill));
        assert_eq!(out.len(), BLOCK_SIZE);
        encode(&RecordHeaderFields::single(2), b"x", &mut out).unwrap();
        let (recs, err, _) = collect(&out, 0);
        assert_eq!(err, None);
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].fields.kind, RecordType::Padding);
        assert_eq!(recs[2].offset, BLOCK_SIZE as u64);
    }

    /// Format version 1, pinned: two records as written by this code. If
    /// this test fails the on-disk format changed: bump FORMAT_VERSION, keep
    /// this fixture (old logs must still be read or refused clearly) and
    /// update docs/FORMATS.md.
    const FIXTURE_V1: &[u8] = b"\
\xa1\x01\x00\x00\x1b\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\
\x00\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00\xc1\x5a\x9c\x85\
*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n\
\xa1\x01\x00\x00\x0e\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\
\x2a\x00\x00\x00\x00\x00\x00\x00\x02\x00\x00\x00\x08\xcd\x07\xa3\
*1\r\n$4\r\nPING\r\n";

    #[test]
    fn format_v1_fixture_is_stable() {
        let mut out = Vec::new();
        encode_command(
            &RecordHeaderFields::single(1),
            [&b"SET"[..], b"k", b"v"].into_iter(),
            &mut out,
        )
        .unwrap();
        encode_command(
            &RecordHeaderFields::part_of(2, 42, 2),
            [&b"PING"[..]].into_iter(),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, FIXTURE_V1, "encoded bytes: {}", hex(&out));
        let (recs, err, end) = collect(FIXTURE_V1, 0);
        assert_eq!(err, None);
        assert_eq!(end, FIXTURE_V1.len() as u64);
        assert_eq!(recs.len(), 2);
        assert_eq!(recs[0].fields, RecordHeaderFields::single(1));
        assert_eq!(
            recs[0].payload,
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1\r\nv\r\n"
        );
        assert_eq!(recs[1].offset, 59);
        assert_eq!(recs[1].fields, RecordHeaderFields::part_of(2, 42, 2));
        assert_eq!(recs[1].payload, b"*1\r\n$4\r\nPING\r\n");
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("\\x{x:02x}")).collect()
    }

    fn fields_strategy() -> impl Strategy<Value = RecordHeaderFields> {
        (1u64.., any::<u64>(), 1u16.., any::<bool>()).prop_map(|(lsn, txid, parts, multi)| {
            if multi && txid != 0 {
                RecordHeaderFields::part_of(lsn, txid, parts)
            } else {
                RecordHeaderFields::single(lsn)
            }
        })
    }

    proptest! {
        #[test]
        fn random_records_round_trip(
            recs in proptest::collection::vec(
                (fields_strategy(), proptest::collection::vec(any::<u8>(), 0..300), 0usize..3),
                0..40,
            ),
            base in any::<u32>(),
        ) {
            let mut out = Vec::new();
            let mut expect = Vec::new();
            for (f, payload, pad) in &recs {
                let at = base as u64 + out.len() as u64;
                let n = encode(f, payload, &mut out).unwrap();
                prop_assert_eq!(n, HEADER_LEN + payload.len());
                expect.push((at, *f, payload.clone()));
                if *pad > 0 {
                    let at = base as u64 + out.len() as u64;
                    encode_padding(HEADER_LEN + pad * 7, &mut out).unwrap();
                    expect.push((at, RecordHeaderFields::padding(), vec![0; pad * 7]));
                }
            }
            out.resize(out.len() + 64, 0);
            let (got, err, _) = collect(&out, base as u64);
            prop_assert_eq!(err, None);
            assert_prefix(&got, &expect);
        }

        #[test]
        fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..600)) {
            let (recs, _, end) = collect(&buf, 0);
            let mut at = 0u64;
            for r in &recs {
                prop_assert_eq!(r.offset, at);
                at = r.end_offset();
            }
            prop_assert_eq!(end, at);
        }

        #[test]
        fn damaged_stream_yields_only_original_records(
            i in any::<prop::sample::Index>(),
            x in 1u8..,
        ) {
            let (mut buf, expect) = sample();
            let i = i.index(buf.len());
            buf[i] ^= x;
            let (recs, err, _) = collect(&buf, 0);
            prop_assert!(err.is_some());
            prop_assert!(recs.len() < expect.len());
            assert_prefix(&recs, &expect[..recs.len()]);
        }
    }
}
