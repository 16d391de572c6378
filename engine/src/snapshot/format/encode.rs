//! Writing frames: the page, ranges, chunks and end frames, from live
//! entries or ones kept aside by copy-before-write.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use super::*;
use crate::types::string::Chunk;
use crate::types::{hash, set};
use crate::value::{Entry, Value};
use crate::varint::put as put_varint;

/// Reusable buffers for encoding page frames.
#[derive(Default)]
pub struct Encoder {
    raw: Vec<u8>,
    packed: Vec<u8>,
    /// The payload of the ranges frame being gathered ([`Encoder::add_part`]).
    parts: Vec<u8>,
    parts_entries: u32,
    /// Chunked strings and segmented collections of the last page frame
    /// ([`Encoder::take_big`]) and of the ranges frame being gathered:
    /// their pieces follow the frame.
    big: Vec<(u64, Vec<Piece>)>,
    parts_big: Vec<(u64, Vec<Piece>)>,
    /// One segment's piece, before its length is known.
    piece: Vec<u8>,
    /// A delta's base epoch ([`Encoder::set_patch_base`]): chunked strings
    /// placed at or before it are written as patches.
    patch_base: Option<u64>,
}

/// One piece of a big value that follows its frame, shared with the live
/// value: a chunk of a chunked string, or a segment of a segmented hash
/// or set.
#[derive(Debug, Clone)]
pub enum Piece {
    Chunk(Arc<Chunk>),
    HashSegment(Arc<hash::Segment>),
    SetSegment(Arc<set::Segment>),
}

impl Piece {
    /// Whether the live value still shares it (a write would copy it).
    pub fn is_shared(&self) -> bool {
        match self {
            Piece::Chunk(c) => Arc::strong_count(c) > 1,
            Piece::HashSegment(s) => Arc::strong_count(s) > 1,
            Piece::SetSegment(s) => Arc::strong_count(s) > 1,
        }
    }
}

impl Piece {
    /// About the bytes it takes in a chunks frame before compression: what
    /// an [`Output`] holding it counts as waiting.
    pub fn raw_len(&self) -> usize {
        match self {
            Piece::Chunk(c) => c.bytes.len(),
            Piece::HashSegment(s) => s.piece_len(),
            Piece::SetSegment(s) => s.piece_len(),
        }
    }
}

/// One chunks frame not encoded yet: pieces of one big value, held by
/// reference (immutable while shared: a write to a shared piece copies it
/// or writes it first, [`crate::pagetable`]), so that a writer can encode
/// them on another thread ([`Output::encode_some`]).
#[derive(Debug, Clone)]
pub struct PieceRun {
    pub db: u16,
    /// The frame the pieces follow, and the first one's index.
    pub frame: u64,
    pub first: u32,
    pub pieces: Vec<Piece>,
    pub compress: bool,
}

impl PieceRun {
    /// About its bytes before compression ([`Piece::raw_len`]).
    pub fn raw_len(&self) -> usize {
        self.pieces.iter().map(Piece::raw_len).sum()
    }

    /// Appends its chunks frame to `out` ([`Encoder::encode_pieces`]).
    pub fn encode(&self, enc: &mut Encoder, out: &mut Vec<u8>) -> Tally {
        enc.encode_pieces(
            out,
            self.db,
            self.frame,
            self.first,
            &self.pieces,
            self.compress,
        )
    }
}

/// Frames in file order, some encoded (`bytes`) and some still to encode
/// (chunks frames of pieces held by reference, each at the offset of
/// `bytes` it goes before). A running snapshot's walker produces one; the
/// writer encodes its runs and copies it all into its write buffer, off
/// the event loop where it can ([`Output::encode_some`]).
#[derive(Debug, Default)]
pub struct Output {
    bytes: Vec<u8>,
    runs: std::collections::VecDeque<(usize, PieceRun)>,
    /// [`PieceRun::raw_len`] of `runs`.
    runs_len: usize,
    /// Bytes of `bytes` already moved out by [`Output::encode_some`].
    at: usize,
    /// The runs encoded, kept for [`Output::drop_spent`]: their pieces
    /// are let go of on the thread that made them (a piece only the
    /// snapshot still held is freed there, where the allocator reuses
    /// it, rather than on the thread that encoded it).
    spent: Vec<PieceRun>,
}

impl Output {
    /// An empty output that encodes its frames into `buf` (cleared).
    pub fn with_buffer(mut buf: Vec<u8>) -> Output {
        buf.clear();
        Output {
            bytes: buf,
            ..Output::default()
        }
    }

    /// The encoded bytes' buffer, for appending whole frames to.
    pub fn bytes_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }

    /// Takes the bytes' buffer (for reuse), leaving the output empty.
    pub fn take_buffer(&mut self) -> Vec<u8> {
        self.clear();
        std::mem::take(&mut self.bytes)
    }

    /// Adds a chunks frame to encode after the bytes so far.
    pub fn push_run(&mut self, run: PieceRun) {
        self.runs_len += run.raw_len();
        self.runs.push_back((self.bytes.len(), run));
    }

    /// The chunks frames still to encode.
    pub fn runs(&self) -> impl Iterator<Item = &PieceRun> {
        self.runs.iter().map(|(_, r)| r)
    }

    /// Bytes waiting: encoded ones not moved out yet, and the runs' before
    /// compression.
    pub fn len(&self) -> usize {
        self.bytes.len() - self.at + self.runs_len
    }

    pub fn is_empty(&self) -> bool {
        self.at >= self.bytes.len() && self.runs.is_empty()
    }

    /// The bytes' buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.bytes.capacity()
    }

    /// Lets go of the runs encoded so far (see `spent`).
    pub fn drop_spent(&mut self) {
        self.spent.clear();
    }

    /// Drops the bytes already moved out, so that an output that is
    /// appended to while it is being moved out stays as small as what
    /// waits in it (a memmove of what is left).
    pub fn compact(&mut self) {
        if self.at == 0 {
            return;
        }
        let at = self.at.min(self.bytes.len());
        self.bytes.drain(..at);
        for (off, _) in &mut self.runs {
            *off = off.saturating_sub(at);
        }
        self.at = 0;
    }

    /// Moves all of `other` to the end of this one.
    pub fn append(&mut self, other: &mut Output) {
        let base = self.bytes.len();
        self.bytes
            .extend_from_slice(other.bytes.get(other.at..).unwrap_or_default());
        self.runs.extend(
            other
                .runs
                .drain(..)
                .map(|(at, r)| (base + at.saturating_sub(other.at), r)),
        );
        self.runs_len += other.runs_len;
        other.clear();
    }

    /// Empties it, keeping its buffer.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.runs.clear();
        self.runs_len = 0;
        self.at = 0;
    }

    /// Appends its frames to `out` in order, encoding the runs with `enc`,
    /// about `budget` bytes of them (at least one frame or piece of bytes),
    /// and chains their crc32c onto `crc`; returns the runs' tally (the
    /// encoded bytes were counted when encoded) and whether it is all out
    /// (it is then empty).
    pub fn encode_some(
        &mut self,
        enc: &mut Encoder,
        out: &mut Vec<u8>,
        crc: &mut u32,
        budget: usize,
    ) -> (Tally, bool) {
        let mut tally = Tally::default();
        let mut work = 0usize;
        loop {
            let boundary = self.runs.front().map_or(self.bytes.len(), |(at, _)| *at);
            if self.at < boundary {
                let end = boundary.min(self.at.saturating_add(budget.saturating_sub(work).max(1)));
                let piece = self.bytes.get(self.at..end).unwrap_or_default();
                *crc = crc32c::crc32c_append(*crc, piece);
                out.extend_from_slice(piece);
                work += end - self.at;
                self.at = end;
            } else if let Some((_, run)) = self.runs.pop_front() {
                self.runs_len -= run.raw_len();
                let start = out.len();
                let t = run.encode(enc, out);
                self.spent.push(run);
                *crc = crc32c::crc32c_append(*crc, out.get(start..).unwrap_or_default());
                tally += t;
                work += t.bytes as usize;
            } else {
                self.clear();
                return (tally, true);
            }
            if work >= budget {
                let done = self.is_empty();
                if done {
                    self.clear();
                }
                return (tally, done);
            }
        }
    }
}

/// The pieces of a value that follow its frame instead of being in it
/// (empty for one written inline): a chunked string's chunks, or a
/// hashtable hash or set's segments when it has more than one.
fn pieces_of(v: &Value) -> Vec<Piece> {
    match v {
        Value::Str(s) => s
            .as_chunked()
            .map(|c| c.chunks().iter().cloned().map(Piece::Chunk).collect())
            .unwrap_or_default(),
        Value::Hash(h) => match h.as_table() {
            Some(t) if t.segments().len() > 1 => t
                .segments()
                .iter()
                .cloned()
                .map(Piece::HashSegment)
                .collect(),
            _ => Vec::new(),
        },
        Value::Set(s) => match s.segments() {
            Some(segs) if segs.len() > 1 => segs.iter().cloned().map(Piece::SetSegment).collect(),
            _ => Vec::new(),
        },
    }
}

/// Counts of what was encoded (frames, entries and bytes).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub pages: u64,
    pub keys: u64,
    pub bytes: u64,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, t: Tally) {
        self.pages += t.pages;
        self.keys += t.keys;
        self.bytes += t.bytes;
    }
}

/// An entry to encode: a live one, or one encoded already by
/// [`encode_entry`] (copy-before-write keeps entries that way).
#[derive(Clone, Copy)]
pub enum EntryRef<'a> {
    Live(&'a Entry),
    Encoded(&'a [u8]),
}

impl<'a> From<&'a Entry> for EntryRef<'a> {
    fn from(e: &'a Entry) -> Self {
        EntryRef::Live(e)
    }
}

/// Appends one entry to `buf` in the page payload encoding (an entry
/// whose value is not chunked: a chunked one's bytes follow its frame).
pub fn encode_entry(buf: &mut Vec<u8>, e: &Entry) {
    put_entries(buf, std::iter::once(e), &mut Vec::new(), None);
}

/// Pieces in `big` so far.
fn chunk_count(big: &[(u64, Vec<Piece>)]) -> usize {
    big.iter().map(|(_, p)| p.len()).sum()
}

/// Appends the entries to `buf` in the page payload encoding; returns
/// their count.
/// Chunked strings are written as their length and first chunk's index,
/// segmented hashes and sets as their segment count, first piece's index
/// and element count, and their pieces (shared: no bytes copied) are
/// added with their key's hash to `big`, to follow the frame. With
/// `patch_base`, a chunked string placed at or before it is a patch: its
/// length, first piece, and the indices of its chunks changed since.
fn put_entries<'a, E: Into<EntryRef<'a>>>(
    buf: &mut Vec<u8>,
    entries: impl Iterator<Item = E>,
    big: &mut Vec<(u64, Vec<Piece>)>,
    patch_base: Option<u64>,
) -> u32 {
    let mut count = 0u32;
    for e in entries {
        count += 1;
        let e = match e.into() {
            EntryRef::Live(e) => e,
            EntryRef::Encoded(bytes) => {
                buf.extend_from_slice(bytes);
                continue;
            }
        };
        put_varint(buf, e.key.len() as u64);
        buf.extend_from_slice(&e.key);
        if let Some(base) = patch_base {
            if put_patch(buf, e, base, big) {
                put_varint(buf, e.expire_at);
                continue;
            }
        }
        let pieces = pieces_of(&e.value);
        match &e.value {
            Value::Str(s) if !pieces.is_empty() => {
                buf.push(TYPE_STRING_CHUNKED);
                put_varint(buf, s.len() as u64);
                put_varint(buf, chunk_count(big) as u64);
                big.push((e.hash, pieces));
            }
            Value::Hash(h) if !pieces.is_empty() => {
                buf.push(TYPE_HASH_SEGMENTED);
                put_varint(buf, pieces.len() as u64);
                put_varint(buf, chunk_count(big) as u64);
                put_varint(buf, h.len() as u64);
                big.push((e.hash, pieces));
            }
            Value::Set(s) if !pieces.is_empty() => {
                buf.push(TYPE_SET_SEGMENTED);
                put_varint(buf, pieces.len() as u64);
                put_varint(buf, chunk_count(big) as u64);
                put_varint(buf, s.len() as u64);
                big.push((e.hash, pieces));
            }
            Value::Str(s) => {
                buf.push(TYPE_STRING);
                put_varint(buf, s.len() as u64);
                s.pieces().for_each(|p| buf.extend_from_slice(p));
            }
            Value::Hash(h) => {
                buf.push(TYPE_HASH);
                put_varint(buf, h.snapshot_len() as u64);
                h.write_snapshot(buf);
            }
            Value::Set(s) => {
                buf.push(TYPE_SET);
                put_varint(buf, s.encoded_len() as u64);
                s.encode(buf);
            }
        }
        put_varint(buf, e.expire_at);
    }
    count
}

/// Writes the value of `e` as a patch entry (type 7, after its key) if it
/// is a chunked string placed at or before `base`: its length, the index
/// of its first piece among those following the frame, the count and the
/// ascending indices of its chunks changed since `base`, which are added
/// to `big`. Returns false (nothing written) for any other value.
fn put_patch(buf: &mut Vec<u8>, e: &Entry, base: u64, big: &mut Vec<(u64, Vec<Piece>)>) -> bool {
    let s = match &e.value {
        Value::Str(s) => s,
        Value::Hash(h) => {
            let Some(t) = h.as_table() else {
                return false;
            };
            let segs = t.segments();
            let changed = segs
                .iter()
                .filter(|s| u64::from(s.epoch()) > base)
                .map(|s| (s.range(), Piece::HashSegment(Arc::clone(s))));
            let placed = t.epochs().placed();
            return put_segments_patch(
                buf,
                e.hash,
                TYPE_HASH_PATCH,
                (h.len(), t.seed()),
                (segs.len(), placed),
                base,
                changed,
                big,
            );
        }
        Value::Set(s) => {
            let (Some(segs), Some(epochs)) = (s.segments(), s.epochs()) else {
                return false;
            };
            let changed = segs
                .iter()
                .filter(|s| u64::from(s.epoch()) > base)
                .map(|s| (s.range(), Piece::SetSegment(Arc::clone(s))));
            return put_segments_patch(
                buf,
                e.hash,
                TYPE_SET_PATCH,
                (s.len(), set::Set::seed()),
                (segs.len(), epochs.placed()),
                base,
                changed,
                big,
            );
        }
    };
    let Some(c) = s.as_chunked() else {
        return false;
    };
    if c.placed().is_none_or(|born| born > base) {
        return false;
    }
    let changed: Vec<(usize, &Arc<Chunk>)> = c
        .chunks()
        .iter()
        .enumerate()
        .filter(|(_, ch)| ch.epoch > base)
        .collect();
    buf.push(TYPE_STRING_PATCH);
    put_varint(buf, s.len() as u64);
    put_varint(buf, chunk_count(big) as u64);
    put_varint(buf, changed.len() as u64);
    for (i, _) in &changed {
        put_varint(buf, *i as u64);
    }
    if !changed.is_empty() {
        let pieces = changed
            .into_iter()
            .map(|(_, ch)| Piece::Chunk(Arc::clone(ch)))
            .collect();
        big.push((e.hash, pieces));
    }
    true
}

/// Writes a segmented hash or set (more than one segment, placed at or
/// before `base`) as a patch entry (type 8 or 9, after its key): its
/// element count, the seed its element hashes were laid out with, the
/// index of its first piece among those following the frame, the count
/// and the ranges (depth, low bits) of its segments changed since `base`,
/// which are added to `big` (one piece each, as a segmented entry's).
/// Returns false (nothing written) if it is not such a value.
#[allow(clippy::too_many_arguments)]
fn put_segments_patch(
    buf: &mut Vec<u8>,
    hash: u64,
    ty: u8,
    (count, seed): (usize, u64),
    (segments, placed): (usize, Option<u64>),
    base: u64,
    changed: impl Iterator<Item = ((u32, u32), Piece)>,
    big: &mut Vec<(u64, Vec<Piece>)>,
) -> bool {
    if segments < 2 || placed.is_none_or(|born| born > base) {
        return false;
    }
    let (ranges, pieces): (Vec<(u32, u32)>, Vec<Piece>) = changed.unzip();
    buf.push(ty);
    put_varint(buf, count as u64);
    buf.extend_from_slice(&seed.to_le_bytes());
    put_varint(buf, chunk_count(big) as u64);
    put_varint(buf, ranges.len() as u64);
    for (depth, low) in ranges {
        buf.push(depth as u8);
        put_varint(buf, u64::from(low));
    }
    if !pieces.is_empty() {
        big.push((hash, pieces));
    }
    true
}

/// Appends one frame with payload `raw` (LZ4-compressed into `packed` when
/// `compress` and that is smaller) to `out`.
#[allow(clippy::too_many_arguments)]
pub(super) fn put_frame(
    out: &mut Vec<u8>,
    tag: u8,
    db: u16,
    prefix: u64,
    depth: u8,
    raw: &[u8],
    count: u32,
    following: u32,
    packed: &mut Vec<u8>,
    compress: bool,
    mut flags: u8,
) -> Tally {
    let mut payload: &[u8] = raw;
    if compress && raw.len() > 64 {
        packed.resize(lz4_flex::block::get_maximum_output_size(raw.len()), 0);
        if let Ok(n) = lz4_flex::block::compress_into(raw, packed) {
            if n < raw.len() {
                packed.truncate(n);
                payload = packed;
                flags |= FLAG_LZ4;
            }
        }
    }
    let start = out.len();
    out.push(tag);
    out.push(flags);
    out.extend_from_slice(&db.to_le_bytes());
    out.push(depth);
    out.extend_from_slice(&following.to_le_bytes()[..3]);
    out.extend_from_slice(&prefix.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&(raw.len() as u64).to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(out.get(start..).unwrap_or_default()),
        payload,
    );
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(payload);
    Tally {
        pages: 1,
        keys: u64::from(count),
        bytes: (out.len() - start) as u64,
    }
}

impl Encoder {
    /// An encoder whose buffers come from this thread's snapshot memory
    /// pool ([`super::kept::buffer`]); [`Encoder::recycle`] gives them back.
    pub fn pooled() -> Encoder {
        use crate::snapshot::kept::buffer;
        Encoder {
            raw: buffer(),
            packed: buffer(),
            parts: buffer(),
            parts_entries: 0,
            big: Vec::new(),
            parts_big: Vec::new(),
            piece: Vec::new(),
            patch_base: None,
        }
    }

    /// In a delta built on the snapshot that closed epoch `base`: a
    /// chunked string placed whole at or before `base`
    /// ([`crate::types::string::Chunked::placed`]) is written as a patch
    /// entry (type 7) with only its chunks changed since `base` (their
    /// `epoch` is later) following the frame; its other chunks are those
    /// the chain's older files hold. None (a full snapshot): every value
    /// whole.
    pub fn set_patch_base(&mut self, base: Option<u64>) {
        self.patch_base = base;
    }

    /// Returns the buffers to the pool (see [`Encoder::pooled`]).
    pub fn recycle(self) {
        use crate::snapshot::kept::recycle;
        let Encoder {
            raw, packed, parts, ..
        } = self;
        for b in [raw, packed, parts] {
            recycle(b);
        }
    }

    /// Bytes of entries the last [`Encoder::encode_page`] encoded (before
    /// compression).
    pub fn raw_len(&self) -> usize {
        self.raw.len()
    }

    /// Appends one page frame holding `entries` of hash range
    /// `(prefix, depth)` of database `db` to `out`; with `compress`, the
    /// payload is stored LZ4-compressed when that is smaller.
    pub fn encode_page<'a, E: Into<EntryRef<'a>>>(
        &mut self,
        out: &mut Vec<u8>,
        db: u16,
        prefix: u64,
        depth: u8,
        entries: impl Iterator<Item = E>,
        compress: bool,
    ) -> Tally {
        self.raw.clear();
        self.big.clear();
        let count = put_entries(&mut self.raw, entries, &mut self.big, self.patch_base);
        let following = chunk_count(&self.big) as u32;
        put_frame(
            out,
            TAG_PAGE,
            db,
            prefix,
            depth,
            &self.raw,
            count,
            following,
            &mut self.packed,
            compress,
            0,
        )
    }

    /// The pieces of the chunked strings and segmented collections of
    /// the frame last written (page or ranges frame), value by value with
    /// their keys' hashes, in the order of their indices
    /// ([`Encoder::encode_pieces`]).
    pub fn take_big(&mut self) -> Vec<(u64, Vec<Piece>)> {
        std::mem::take(&mut self.big)
    }

    /// [`Encoder::encode_chunks`] for pieces of one value: a chunks frame
    /// of a string's chunks, or of a collection's segments (flag
    /// [`FLAG_PIECES`]: each segment's piece as a varint length and its
    /// bytes).
    pub fn encode_pieces(
        &mut self,
        out: &mut Vec<u8>,
        db: u16,
        frame: u64,
        first: u32,
        pieces: &[Piece],
        compress: bool,
    ) -> Tally {
        if pieces.iter().all(|p| matches!(p, Piece::Chunk(_))) {
            let chunks = pieces.iter().filter_map(|p| match p {
                Piece::Chunk(c) => Some(&**c),
                _ => None,
            });
            return self.encode_chunks(out, db, frame, first, chunks, compress);
        }
        self.raw.clear();
        for p in pieces {
            self.piece.clear();
            match p {
                Piece::Chunk(c) => self.piece.extend_from_slice(&c.bytes),
                Piece::HashSegment(s) => s.write_piece(&mut self.piece),
                Piece::SetSegment(s) => s.write_piece(&mut self.piece),
            }
            put_varint(&mut self.raw, self.piece.len() as u64);
            self.raw.extend_from_slice(&self.piece);
        }
        let mut t = put_frame(
            out,
            TAG_CHUNKS,
            db,
            frame,
            0,
            &self.raw,
            first,
            pieces.len() as u32,
            &mut self.packed,
            compress,
            FLAG_PIECES,
        );
        t.keys = 0;
        t
    }

    /// Appends one chunks frame of database `db` holding `chunks` (one to
    /// [`FRAME_CHUNKS`]) as the chunks from index `first` on of those
    /// that follow frame number `frame` of the database in the file (its
    /// page and ranges frames counted from 0); returns its tally.
    pub fn encode_chunks<'a>(
        &mut self,
        out: &mut Vec<u8>,
        db: u16,
        frame: u64,
        first: u32,
        chunks: impl Iterator<Item = &'a Chunk>,
        compress: bool,
    ) -> Tally {
        self.raw.clear();
        let mut n = 0u32;
        for c in chunks {
            self.raw.extend_from_slice(&c.bytes);
            n += 1;
        }
        let mut t = put_frame(
            out,
            TAG_CHUNKS,
            db,
            frame,
            0,
            &self.raw,
            first,
            n,
            &mut self.packed,
            compress,
            0,
        );
        // The entries field holds `first`: a chunks frame has no entries.
        t.keys = 0;
        t
    }

    /// Adds the `entries` of hash range `(prefix, depth)` as one part of
    /// the ranges frame being gathered (many small ranges share one frame
    /// header and compress together); returns the bytes of entries added.
    /// Parts must not overlap; [`Encoder::finish_parts`] writes the frame.
    pub fn add_part<'a, E: Into<EntryRef<'a>>>(
        &mut self,
        prefix: u64,
        depth: u8,
        entries: impl Iterator<Item = E>,
    ) -> usize {
        self.raw.clear();
        let count = put_entries(&mut self.raw, entries, &mut self.parts_big, self.patch_base);
        self.parts.push(depth);
        self.parts.extend_from_slice(&prefix.to_le_bytes());
        put_varint(&mut self.parts, u64::from(count));
        put_varint(&mut self.parts, self.raw.len() as u64);
        self.parts.extend_from_slice(&self.raw);
        self.parts_entries += count;
        self.raw.len()
    }

    /// Bytes of parts gathered and not yet written.
    pub fn parts_len(&self) -> usize {
        self.parts.len()
    }

    /// Appends the gathered parts to `out` as one ranges frame of database
    /// `db` (nothing if there are none).
    pub fn finish_parts(&mut self, out: &mut Vec<u8>, db: u16, compress: bool) -> Tally {
        if self.parts.is_empty() {
            return Tally::default();
        }
        let following = chunk_count(&self.parts_big) as u32;
        let t = put_frame(
            out,
            TAG_RANGES,
            db,
            0,
            0,
            &self.parts,
            self.parts_entries,
            following,
            &mut self.packed,
            compress,
            0,
        );
        self.parts.clear();
        self.parts_entries = 0;
        self.big = std::mem::take(&mut self.parts_big);
        t
    }
}

/// The end frame: the totals of the frames before it and the crc32c of
/// all their bytes (`body_crc`, chained with `crc32c_append` from 0).
pub fn encode_end(out: &mut Vec<u8>, tally: Tally, body_crc: u32) {
    let start = out.len();
    out.push(TAG_END);
    out.push(0);
    out.extend_from_slice(&[0; 6]);
    out.extend_from_slice(&0u64.to_le_bytes());
    out.extend_from_slice(&(END_PAYLOAD as u64).to_le_bytes());
    out.extend_from_slice(&(END_PAYLOAD as u64).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut payload = Vec::with_capacity(END_PAYLOAD);
    payload.extend_from_slice(&tally.pages.to_le_bytes());
    payload.extend_from_slice(&tally.keys.to_le_bytes());
    payload.extend_from_slice(&tally.bytes.to_le_bytes());
    payload.extend_from_slice(&body_crc.to_le_bytes());
    payload.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c_append(
        crc32c::crc32c(out.get(start..).unwrap_or_default()),
        &payload,
    );
    out.extend_from_slice(&crc.to_le_bytes());
    out.extend_from_slice(&payload);
}
