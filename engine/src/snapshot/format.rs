//! The on-disk format of a snapshot file, format version 2.
//!
//! One file holds one shard's part of one snapshot: a 4 KiB header block,
//! then page frames back to back, then an end frame, then zeros up to a
//! multiple of 4 KiB (files are written with O_DIRECT). Integers are
//! little-endian. `docs/FORMATS.md` has the byte diagrams and the reasoning;
//! in short:
//!
//! ```text
//! header block (4096 bytes; crc32c of bytes 0..72 at 72..76, zeros after)
//! 0      8        12    13     14   16     18      20   22   24  32       40         48     56   64          72
//! | magic | version | kind | flags | 0 | shard | shards | dbs | 0 | id | base_id | parent_id | epoch | lsn | created_ms | crc |
//!
//! frame (40-byte header + payload; crc32c of header bytes 0..36 and the payload at 36..40)
//! 0     1       2    4       5   8        16           24        32        36
//! | tag | flags | db | depth | 0 | prefix | stored_len | raw_len | entries | crc | payload ...
//! ```
//!
//! A page frame (`tag` [`TAG_PAGE`]) carries every entry of one hash range
//! `(prefix, depth)` of one database: a whole page, or (in a delta, since
//! version 2) one of a page's 64 sub-ranges that changed. It replaces
//! whatever older snapshots hold for that range (so an empty frame
//! deletes); see [`super::chain`]. The payload is the entries encoded by [`encode_page`],
//! LZ4-compressed when that is smaller and compression is on. The end frame
//! (`tag` [`TAG_END`]) carries the counts and a crc32c over every frame byte
//! before it, so a file cut at a frame boundary is still detected.
//!
//! Nothing here panics on any input or performs I/O.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fmt;

use std::sync::Arc;

use crate::keyhash::hash_key;
use crate::types::string::{Chunk, CHUNK};
use crate::types::{hash, set, Str};
use crate::value::{Entry, Value};
use crate::varint::{get as get_varint, put as put_varint};

/// The version of this format; bumped on any incompatible change. Version 2
/// added frames of page sub-ranges, which a version-1 reader would resolve
/// wrongly (it hid whole older pages behind any newer frame inside them);
/// version-1 files read the same under version 2's rules. Version 3 added
/// chunked strings: a page frame's big strings are written after it in
/// chunks frames ([`TAG_CHUNKS`]), each bounded, so that neither writing
/// nor reading one holds a whole big value in one piece, and hashes and
/// sets, a big one written as a segmented entry whose segments follow in
/// chunks frames with [`FLAG_PIECES`]; version-1 and -2 files have none
/// and read the same.
pub const FORMAT_VERSION: u32 = 3;
/// The oldest version this code reads.
pub const OLDEST_VERSION: u32 = 1;
/// First bytes of every snapshot file.
pub const MAGIC: [u8; 8] = *b"kvsnap\n\0";
/// Files are written in, and padded to, whole blocks of this size.
pub const BLOCK: usize = 4096;
/// Bytes of a frame header.
pub const FRAME_HEADER: usize = 40;
/// Frame tags.
pub const TAG_PAGE: u8 = b'P';
/// A ranges frame: many small hash ranges (page sub-ranges of a delta),
/// each with its entries, behind one header.
pub const TAG_RANGES: u8 = b'R';
pub const TAG_END: u8 = b'E';
/// A chunks frame: up to [`FRAME_CHUNKS`] chunks of one chunked string of
/// the last page or ranges frame of its database before it (version 3).
/// Frames of other databases may come between (each database's frames
/// are in order; databases are written side by side).
pub const TAG_CHUNKS: u8 = b'C';
/// Chunks of a string one chunks frame carries at most (256 KiB).
pub const FRAME_CHUNKS: usize = 4;
/// Frame flag: the payload is one LZ4 block.
pub const FLAG_LZ4: u8 = 1;
/// Chunks frame flag: its pieces are segments of a segmented hash or set,
/// each a varint length and its bytes (not whole chunks of a string).
pub const FLAG_PIECES: u8 = 2;
/// Value type tags inside a page payload.
const TYPE_STRING: u8 = 1;
/// A chunked string (version 3): its length and the index of its first
/// chunk among the chunks that follow the frame; no bytes in the payload.
const TYPE_STRING_CHUNKED: u8 = 2;
/// A hash (version 3): the byte length of its encoding, then
/// [`crate::types::Hash::write_snapshot`]'s bytes (docs/FORMATS.md).
const TYPE_HASH: u8 = 4;
/// A set (version 3): its encoded length, then [`crate::types::Set::encode`]'s
/// bytes (encoding byte, member count, members), inline in the payload.
const TYPE_SET: u8 = 3;
/// A hashtable hash of more than one segment (version 3): its segment
/// count, the index of its first piece among those that follow the frame,
/// and its pair count; each segment's pairs follow as one piece
/// ([`crate::types::hash::Segment::write_piece`]) in chunks frames.
const TYPE_HASH_SEGMENTED: u8 = 5;
/// A hashtable set of more than one segment, as [`TYPE_HASH_SEGMENTED`]
/// ([`crate::types::set::Segment::write_piece`]).
const TYPE_SET_SEGMENTED: u8 = 6;
/// The most chunks that may follow one frame (bytes 5..8 of its header).
const MAX_FOLLOWING: u32 = (1 << 24) - 1;
/// Bytes of the end frame's payload.
const END_PAYLOAD: usize = 32;
/// Header byte range covered by the header checksum.
const HEADER_CRC_AT: usize = 72;
/// The deepest frame there can be: a sub-range of the deepest page.
const MAX_DEPTH: u8 = crate::pagetable::MAX_DEPTH + crate::pagetable::SUB_BITS;

/// What a snapshot file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Every non-empty page: loads on its own.
    Full,
    /// The pages changed since the snapshot `parent_id`: loads on top of
    /// its chain (the full snapshot `base_id` and the deltas after it).
    Delta,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Full => "full",
            Kind::Delta => "delta",
        }
    }
}

/// The header block's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileHeader {
    pub kind: Kind,
    /// Page frames may be LZ4-compressed (`rdbcompression yes`).
    pub compression: bool,
    /// The shard this file belongs to, of `shards` at the time.
    pub shard: u16,
    pub shards: u16,
    pub databases: u16,
    /// The snapshot's id: snapshots of one server count up from 1.
    pub id: u64,
    /// The full snapshot this one's chain starts at (its own id if full).
    pub base_id: u64,
    /// The snapshot this delta applies on (0 for a full one).
    pub parent_id: u64,
    /// The shard's page epoch the snapshot closed.
    pub epoch: u64,
    /// The last log sequence number of this shard the snapshot contains.
    pub lsn: u64,
    /// Unix milliseconds of the barrier.
    pub created_ms: u64,
}

/// What is wrong with a snapshot file's bytes, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatError {
    /// Byte offset in the file of the damaged header or frame.
    pub offset: u64,
    pub what: String,
}

impl fmt::Display for FormatError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.what, self.offset)
    }
}

impl std::error::Error for FormatError {}

fn err(offset: u64, what: impl Into<String>) -> FormatError {
    FormatError {
        offset,
        what: what.into(),
    }
}

fn u16_at(b: &[u8], at: usize) -> u16 {
    let mut a = [0u8; 2];
    if let Some(s) = b.get(at..at + 2) {
        a.copy_from_slice(s);
    }
    u16::from_le_bytes(a)
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut a = [0u8; 4];
    if let Some(s) = b.get(at..at + 4) {
        a.copy_from_slice(s);
    }
    u32::from_le_bytes(a)
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    if let Some(s) = b.get(at..at + 8) {
        a.copy_from_slice(s);
    }
    u64::from_le_bytes(a)
}

impl FileHeader {
    /// The 4 KiB header block.
    pub fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(BLOCK);
        b.extend_from_slice(&MAGIC);
        b.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        b.push(match self.kind {
            Kind::Full => 1,
            Kind::Delta => 2,
        });
        b.push(u8::from(self.compression));
        b.extend_from_slice(&0u16.to_le_bytes());
        b.extend_from_slice(&self.shard.to_le_bytes());
        b.extend_from_slice(&self.shards.to_le_bytes());
        b.extend_from_slice(&self.databases.to_le_bytes());
        b.extend_from_slice(&0u16.to_le_bytes());
        for v in [
            self.id,
            self.base_id,
            self.parent_id,
            self.epoch,
            self.lsn,
            self.created_ms,
        ] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b.resize(BLOCK, 0);
        b
    }

    /// Parses and checks a header block (at least [`BLOCK`] bytes).
    pub fn decode(b: &[u8]) -> Result<FileHeader, FormatError> {
        let block = b
            .get(..BLOCK)
            .ok_or_else(|| err(0, "file shorter than its header block"))?;
        if block.get(..8) != Some(&MAGIC[..]) {
            return Err(err(0, "not a kv-server snapshot file (bad magic)"));
        }
        let version = u32_at(block, 8);
        if !(OLDEST_VERSION..=FORMAT_VERSION).contains(&version) {
            return Err(err(
                0,
                format!(
                    "snapshot format version {version}, this server reads \
                     {OLDEST_VERSION} to {FORMAT_VERSION}"
                ),
            ));
        }
        let body = block.get(..HEADER_CRC_AT).unwrap_or_default();
        if crc32c::crc32c(body) != u32_at(block, HEADER_CRC_AT) {
            return Err(err(0, "header checksum mismatch"));
        }
        if block.iter().skip(HEADER_CRC_AT + 4).any(|&x| x != 0) {
            return Err(err(0, "header block has bytes after its checksum"));
        }
        let kind = match block.get(12) {
            Some(1) => Kind::Full,
            Some(2) => Kind::Delta,
            _ => return Err(err(0, "unknown snapshot kind")),
        };
        let flags = block.get(13).copied().unwrap_or(0);
        if flags & !1 != 0 || u16_at(block, 14) != 0 || u16_at(block, 22) != 0 {
            return Err(err(0, "unknown header flags"));
        }
        let h = FileHeader {
            kind,
            compression: flags & 1 != 0,
            shard: u16_at(block, 16),
            shards: u16_at(block, 18),
            databases: u16_at(block, 20),
            id: u64_at(block, 24),
            base_id: u64_at(block, 32),
            parent_id: u64_at(block, 40),
            epoch: u64_at(block, 48),
            lsn: u64_at(block, 56),
            created_ms: u64_at(block, 64),
        };
        let chain_ok = match kind {
            Kind::Full => h.base_id == h.id && h.parent_id == 0,
            Kind::Delta => h.base_id < h.id && h.parent_id < h.id && h.parent_id >= h.base_id,
        };
        if h.shards == 0 || h.shard >= h.shards || h.databases == 0 || h.id == 0 || !chain_ok {
            return Err(err(0, "header fields are inconsistent"));
        }
        Ok(h)
    }
}

/// The hash range of a page: its first hash and its last (inclusive).
pub fn page_range(prefix: u64, depth: u8) -> (u64, u64) {
    if depth == 0 {
        (0, u64::MAX)
    } else {
        (prefix, prefix | (u64::MAX >> depth))
    }
}

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
    put_entries(buf, std::iter::once(e), &mut Vec::new());
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
/// added with their key's hash to `big`, to follow the frame.
fn put_entries<'a, E: Into<EntryRef<'a>>>(
    buf: &mut Vec<u8>,
    entries: impl Iterator<Item = E>,
    big: &mut Vec<(u64, Vec<Piece>)>,
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

/// Appends one frame with payload `raw` (LZ4-compressed into `packed` when
/// `compress` and that is smaller) to `out`.
#[allow(clippy::too_many_arguments)]
fn put_frame(
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
        use super::kept::buffer;
        Encoder {
            raw: buffer(),
            packed: buffer(),
            parts: buffer(),
            parts_entries: 0,
            big: Vec::new(),
            parts_big: Vec::new(),
            piece: Vec::new(),
        }
    }

    /// Returns the buffers to the pool (see [`Encoder::pooled`]).
    pub fn recycle(self) {
        use super::kept::recycle;
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
        let count = put_entries(&mut self.raw, entries, &mut self.big);
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
        let count = put_entries(&mut self.raw, entries, &mut self.parts_big);
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

/// One frame as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Page(PageFrame),
    /// A chunks frame: its database, the number of the frame whose chunks
    /// it holds (that database's page and ranges frames in the file,
    /// counted from 0), the index of its first chunk among them, and the
    /// chunks (each [`CHUNK`] bytes but maybe the last).
    Chunks {
        db: u16,
        frame: u64,
        first: u32,
        chunks: Vec<Vec<u8>>,
    },
    End {
        tally: Tally,
        body_crc: u32,
    },
}

/// A page frame or a ranges frame with its payload decompressed (entries
/// still encoded): [`PageFrame::parts`] are its hash ranges.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageFrame {
    pub db: u16,
    /// A ranges frame (`prefix` and `depth` are then 0).
    pub ranges: bool,
    pub prefix: u64,
    pub depth: u8,
    pub entries: u32,
    /// The payload ([`PageFrame::parts`], [`PageFrame::decode_part`]).
    pub raw: Vec<u8>,
    /// Bytes the frame took in the file.
    pub stored: u64,
    /// Chunks of its chunked strings that follow the frame (version 3),
    /// and those gathered so far ([`Assembler`]).
    pub following: u32,
    pub chunks: Vec<Arc<Chunk>>,
}

/// The result of looking at the bytes where a frame should start.
#[derive(Debug)]
pub enum Parsed {
    /// A whole, valid frame and the bytes it took.
    Frame(Frame, usize),
    /// The frame is longer than the bytes given: at least this many are needed.
    NeedMore(usize),
}

/// Parses the frame at the start of `b`, which sits at file offset
/// `offset` (for error messages). `left_in_file`: bytes of the file from
/// this frame on, so that a damaged length is caught before anything
/// that large is read or allocated.
pub fn parse_frame(b: &[u8], offset: u64, left_in_file: u64) -> Result<Parsed, FormatError> {
    let Some(h) = b.get(..FRAME_HEADER) else {
        if (b.len() as u64) >= left_in_file {
            return Err(err(offset, "file ends inside a frame header (truncated)"));
        }
        return Ok(Parsed::NeedMore(FRAME_HEADER));
    };
    let tag = h.first().copied().unwrap_or(0);
    let flags = h.get(1).copied().unwrap_or(0);
    let depth = h.get(4).copied().unwrap_or(0);
    let stored_len = u64_at(h, 16);
    let raw_len = u64_at(h, 24);
    let entries = u32_at(h, 32);
    let crc = u32_at(h, 36);
    match tag {
        TAG_PAGE | TAG_RANGES | TAG_END | TAG_CHUNKS => {}
        0 => {
            return Err(err(
                offset,
                "zeros where a frame should be (file cut short?)",
            ))
        }
        _ => return Err(err(offset, "bad frame tag")),
    }
    let total = (FRAME_HEADER as u64).saturating_add(stored_len);
    if total > left_in_file {
        return Err(err(
            offset,
            "frame runs past the end of the file (truncated?)",
        ));
    }
    let total = total as usize;
    let Some(payload) = b.get(FRAME_HEADER..total) else {
        return Ok(Parsed::NeedMore(total));
    };
    let head = h.get(..36).unwrap_or_default();
    if crc32c::crc32c_append(crc32c::crc32c(head), payload) != crc {
        return Err(err(offset, "frame checksum mismatch"));
    }
    let following = u32_at(h, 4) >> 8;
    let pieces = flags & FLAG_PIECES != 0;
    if flags & !(FLAG_LZ4 | FLAG_PIECES) != 0
        || (pieces && tag != TAG_CHUNKS)
        || (following != 0 && tag == TAG_END)
    {
        return Err(err(offset, "unknown frame flags"));
    }
    if tag == TAG_END {
        if flags != 0 || stored_len != END_PAYLOAD as u64 || raw_len != stored_len {
            return Err(err(offset, "malformed end frame"));
        }
        let tally = Tally {
            pages: u64_at(payload, 0),
            keys: u64_at(payload, 8),
            bytes: u64_at(payload, 16),
        };
        return Ok(Parsed::Frame(
            Frame::End {
                tally,
                body_crc: u32_at(payload, 24),
            },
            total,
        ));
    }
    let prefix = u64_at(h, 8);
    if tag == TAG_CHUNKS {
        // One to FRAME_CHUNKS chunks, all whole but maybe the last; the
        // prefix field names the frame they belong to.
        let n = following as u64;
        let whole = CHUNK as u64;
        // Segments' pieces (FLAG_PIECES) have their own lengths.
        if depth != 0
            || u64::from(entries) + n > u64::from(MAX_FOLLOWING)
            || n == 0
            || n > FRAME_CHUNKS as u64
            || (!pieces && (raw_len <= (n - 1) * whole || raw_len > n * whole))
        {
            return Err(err(offset, "malformed chunks frame"));
        }
    } else {
        check_range(prefix, depth, offset)?;
    }
    if tag == TAG_RANGES && (prefix, depth) != (0, 0) {
        return Err(err(offset, "ranges frame with a range in its header"));
    }
    let raw = if flags & FLAG_LZ4 != 0 {
        // A page's payload is at most what its entries hold; LZ4 expands
        // at most 255x, which bounds a damaged length before allocating.
        if raw_len > stored_len.saturating_mul(255) {
            return Err(err(offset, "page payload length out of range"));
        }
        let mut raw = vec![0u8; raw_len as usize];
        match lz4_flex::block::decompress_into(payload, &mut raw) {
            Ok(n) if n as u64 == raw_len => raw,
            _ => return Err(err(offset, "page payload does not decompress")),
        }
    } else {
        if raw_len != stored_len {
            return Err(err(offset, "page payload lengths disagree"));
        }
        payload.to_vec()
    };
    if tag == TAG_CHUNKS {
        let chunks = if pieces {
            split_pieces(&raw, following).ok_or_else(|| err(offset, "malformed pieces frame"))?
        } else {
            raw.chunks(CHUNK).map(<[u8]>::to_vec).collect()
        };
        return Ok(Parsed::Frame(
            Frame::Chunks {
                db: u16_at(h, 2),
                frame: prefix,
                first: entries,
                chunks,
            },
            total,
        ));
    }
    Ok(Parsed::Frame(
        Frame::Page(PageFrame {
            db: u16_at(h, 2),
            ranges: tag == TAG_RANGES,
            prefix,
            depth,
            entries,
            raw,
            stored: total as u64,
            following,
            chunks: Vec::new(),
        }),
        total,
    ))
}

/// The `n` pieces of a pieces frame's payload (each a varint length and
/// its bytes, nothing after the last); None if they are not exactly that.
fn split_pieces(raw: &[u8], n: u32) -> Option<Vec<Vec<u8>>> {
    let mut pos = 0usize;
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let len = get_varint(raw, &mut pos)?;
        out.push(take(raw, &mut pos, len)?.to_vec());
    }
    (pos == raw.len()).then_some(out)
}

/// Checks that `(prefix, depth)` is a hash range a frame can hold.
fn check_range(prefix: u64, depth: u8, offset: u64) -> Result<(), FormatError> {
    if depth > MAX_DEPTH {
        return Err(err(offset, "page depth out of range"));
    }
    if page_range(prefix, depth).0 != prefix {
        return Err(err(offset, "page prefix has bits below its depth"));
    }
    Ok(())
}

/// One hash range of a frame and where its entries are in the payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Part {
    pub prefix: u64,
    pub depth: u8,
    pub entries: u32,
    start: usize,
    end: usize,
}

impl PageFrame {
    /// The frame's hash ranges, checked: each well formed, and the counts
    /// add up to the header's. A page frame has one, its own. (The writer
    /// never puts overlapping ranges in one file.)
    pub fn parts(&self, offset: u64) -> Result<Vec<Part>, FormatError> {
        if !self.ranges {
            return Ok(vec![Part {
                prefix: self.prefix,
                depth: self.depth,
                entries: self.entries,
                start: 0,
                end: self.raw.len(),
            }]);
        }
        let b = &self.raw;
        let bad = |what: &str| err(offset, format!("ranges frame: {what}"));
        let mut out = Vec::new();
        let mut pos = 0usize;
        let mut entries = 0u64;
        while pos < b.len() {
            let head = b.get(pos..pos + 9).ok_or_else(|| bad("truncated part"))?;
            let depth = head.first().copied().unwrap_or(0);
            let prefix = u64_at(head, 1);
            pos = pos.saturating_add(9);
            check_range(prefix, depth, offset)?;
            let count = get_varint(b, &mut pos).ok_or_else(|| bad("bad entry count"))?;
            let len = get_varint(b, &mut pos).ok_or_else(|| bad("bad part length"))?;
            let start = pos;
            take(b, &mut pos, len).ok_or_else(|| bad("part runs past the frame"))?;
            let count = u32::try_from(count).map_err(|_| bad("bad entry count"))?;
            entries += u64::from(count);
            out.push(Part {
                prefix,
                depth,
                entries: count,
                start,
                end: pos,
            });
        }
        if entries != u64::from(self.entries) {
            return Err(bad("entry counts differ from the header"));
        }
        Ok(out)
    }

    /// The entries of one of [`PageFrame::parts`], checked: every one is
    /// well formed, belongs to the part's hash range, and their count is
    /// the part's.
    pub fn decode_part(&self, part: &Part, offset: u64) -> Result<Vec<Entry>, FormatError> {
        let b = self.raw.get(part.start..part.end).unwrap_or_default();
        let mut pos = 0usize;
        let (first, last) = page_range(part.prefix, part.depth);
        let mut out = Vec::with_capacity((part.entries as usize).min(4096));
        let bad = |what: &str| err(offset, format!("page entries: {what}"));
        while pos < b.len() {
            let key_len = get_varint(b, &mut pos).ok_or_else(|| bad("bad key length"))?;
            let key = take(b, &mut pos, key_len).ok_or_else(|| bad("key runs past the page"))?;
            let ty = *b.get(pos).ok_or_else(|| bad("missing value type"))?;
            pos += 1;
            let len = get_varint(b, &mut pos).ok_or_else(|| bad("bad value length"))?;
            let value = match ty {
                TYPE_STRING => Value::string(
                    take(b, &mut pos, len).ok_or_else(|| bad("value runs past the page"))?,
                ),
                TYPE_STRING_CHUNKED => {
                    let first = get_varint(b, &mut pos).ok_or_else(|| bad("bad chunk index"))?;
                    let n = len.div_ceil(CHUNK as u64);
                    let chunks = usize::try_from(first)
                        .ok()
                        .zip(usize::try_from(first.saturating_add(n)).ok())
                        .and_then(|(a, z)| self.chunks.get(a..z))
                        .ok_or_else(|| bad("chunked value past the chunks that follow"))?;
                    Value::Str(
                        Str::from_chunks(chunks.to_vec())
                            .filter(|s| s.len() as u64 == len)
                            .ok_or_else(|| bad("chunked value's chunks do not add up"))?,
                    )
                }
                TYPE_HASH_SEGMENTED | TYPE_SET_SEGMENTED => {
                    let first = get_varint(b, &mut pos).ok_or_else(|| bad("bad piece index"))?;
                    let count = get_varint(b, &mut pos).ok_or_else(|| bad("bad element count"))?;
                    let pieces = usize::try_from(first)
                        .ok()
                        .zip(usize::try_from(first.saturating_add(len)).ok())
                        .and_then(|(a, z)| self.chunks.get(a..z))
                        .ok_or_else(|| bad("segmented value past the pieces that follow"))?;
                    let pieces = pieces.iter().map(|c| c.bytes.as_slice());
                    if ty == TYPE_HASH_SEGMENTED {
                        Value::Hash(
                            crate::types::Hash::from_pieces(pieces, count)
                                .ok_or_else(|| bad("bad segmented hash"))?,
                        )
                    } else {
                        Value::Set(
                            crate::types::Set::from_pieces(pieces, count)
                                .ok_or_else(|| bad("bad segmented set"))?,
                        )
                    }
                }
                TYPE_HASH => Value::Hash(
                    take(b, &mut pos, len)
                        .and_then(crate::types::Hash::read_snapshot)
                        .ok_or_else(|| bad("bad hash"))?,
                ),
                TYPE_SET => Value::Set(
                    crate::types::Set::decode(
                        take(b, &mut pos, len).ok_or_else(|| bad("value runs past the page"))?,
                    )
                    .ok_or_else(|| bad("malformed set"))?,
                ),
                _ => return Err(bad("unknown value type")),
            };
            let expire_at = get_varint(b, &mut pos).ok_or_else(|| bad("bad expiry"))?;
            let hash = hash_key(key);
            if hash < first || hash > last {
                return Err(bad("key outside the page's hash range"));
            }
            out.push(Entry::new(hash, key.into(), value, expire_at));
        }
        if out.len() != part.entries as usize {
            return Err(bad("entry count differs from the header"));
        }
        Ok(out)
    }

    /// Every entry of every part, checked.
    pub fn decode_entries(&self, offset: u64) -> Result<Vec<Entry>, FormatError> {
        let mut out = Vec::new();
        for part in self.parts(offset)? {
            out.extend(self.decode_part(&part, offset)?);
        }
        Ok(out)
    }
}

fn take<'a>(b: &'a [u8], pos: &mut usize, len: u64) -> Option<&'a [u8]> {
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let s = b.get(*pos..end)?;
    *pos = end;
    Some(s)
}

/// Pads `out` with zeros to a multiple of [`BLOCK`].
pub fn pad_to_block(out: &mut Vec<u8>) {
    let rem = out.len() % BLOCK;
    if rem != 0 {
        out.resize(out.len() + BLOCK - rem, 0);
    }
}

/// Everything in a snapshot file, read from memory and fully checked
/// (tests and `check-snapshot` on small files; the loader streams).
pub fn read_all(file: &[u8]) -> Result<(FileHeader, Vec<PageFrame>, Tally), FormatError> {
    let header = FileHeader::decode(file)?;
    let mut pos = BLOCK;
    let mut frames = Vec::new();
    let mut body = Body::default();
    let mut assembler = Assembler::default();
    loop {
        let rest = file.get(pos..).unwrap_or_default();
        match parse_frame(rest, pos as u64, rest.len() as u64)? {
            Parsed::NeedMore(_) => return Err(err(pos as u64, "file ends inside a frame")),
            Parsed::Frame(Frame::End { tally, body_crc }, n) => {
                assembler.finish(pos as u64)?;
                body.check_end(tally, body_crc, pos as u64)?;
                pos += n;
                let tail = file.get(pos..).unwrap_or_default();
                if tail.iter().any(|&x| x != 0) || !file.len().is_multiple_of(BLOCK) {
                    return Err(err(pos as u64, "bytes after the end frame"));
                }
                return Ok((header, frames, tally));
            }
            Parsed::Frame(frame, n) => {
                let entries = match &frame {
                    Frame::Page(p) => p.entries,
                    _ => 0,
                };
                body.add(rest.get(..n).unwrap_or_default(), entries);
                if let Some(p) = assembler.add(frame, pos as u64)? {
                    frames.push(p);
                }
                pos += n;
            }
        }
    }
}

/// Puts page frames together with the chunks that follow them: a page or
/// ranges frame is complete once every chunk it says follows it has come,
/// in chunks frames of its database that name it (by its number among the
/// database's page and ranges frames in the file) and the chunks' indices,
/// in any order and interleaved with other frames (a running snapshot
/// writes a chunk out of order when a write is about to change it).
#[derive(Debug, Default)]
pub struct Assembler {
    /// Page and ranges frames seen so far, per database.
    seen: std::collections::HashMap<u16, u64>,
    /// Frames waiting for chunks, by database and number, with the chunks
    /// come so far and their indices.
    waiting: std::collections::HashMap<(u16, u64), (PageFrame, Vec<IndexedChunk>)>,
}

/// A chunk read, and its index among those following its frame.
type IndexedChunk = (u32, Arc<Chunk>);

impl Assembler {
    /// Takes the next frame of a file (at `offset`); returns a page frame
    /// once it is complete.
    pub fn add(&mut self, frame: Frame, offset: u64) -> Result<Option<PageFrame>, FormatError> {
        match frame {
            Frame::Page(p) => {
                let n = self.seen.entry(p.db).or_insert(0);
                let number = *n;
                *n += 1;
                if p.following == 0 {
                    return Ok(Some(p));
                }
                if p.following > MAX_FOLLOWING {
                    return Err(err(offset, "too many chunks follow"));
                }
                self.waiting.insert((p.db, number), (p, Vec::new()));
                Ok(None)
            }
            Frame::Chunks {
                db,
                frame,
                first,
                chunks,
            } => {
                let Some((p, got)) = self.waiting.get_mut(&(db, frame)) else {
                    return Err(err(
                        offset,
                        "a chunks frame for no frame waiting for chunks before it",
                    ));
                };
                let end = u64::from(first) + chunks.len() as u64;
                if end > u64::from(p.following) {
                    return Err(err(offset, "a chunk index past those the frame says"));
                }
                got.extend(
                    chunks
                        .into_iter()
                        .zip(first..)
                        .map(|(bytes, i)| (i, Arc::new(Chunk { bytes, epoch: 0 }))),
                );
                if got.len() > p.following as usize {
                    return Err(err(offset, "more chunks than the page frame says"));
                }
                if got.len() < p.following as usize {
                    return Ok(None);
                }
                let Some((mut p, mut got)) = self.waiting.remove(&(db, frame)) else {
                    return Ok(None);
                };
                got.sort_unstable_by_key(|(i, _)| *i);
                if got.iter().zip(0u32..).any(|((i, _), want)| *i != want) {
                    return Err(err(offset, "a chunk written twice for one frame"));
                }
                p.chunks = got.into_iter().map(|(_, c)| c).collect();
                Ok(Some(p))
            }
            Frame::End { .. } => Ok(None),
        }
    }

    /// The file ended (its end frame is at `offset`): nothing may wait.
    pub fn finish(&mut self, offset: u64) -> Result<(), FormatError> {
        if self.waiting.is_empty() {
            Ok(())
        } else {
            Err(err(
                offset,
                "the end frame before the chunks of a frame before it",
            ))
        }
    }
}

/// Running totals of a file's frames, to check against its end frame.
#[derive(Debug, Default, Clone, Copy)]
pub struct Body {
    pub tally: Tally,
    pub crc: u32,
}

impl Body {
    /// Adds one page frame's bytes.
    pub fn add(&mut self, frame_bytes: &[u8], entries: u32) {
        self.tally.pages += 1;
        self.tally.keys += u64::from(entries);
        self.tally.bytes += frame_bytes.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, frame_bytes);
    }

    /// Compares with the end frame found at `offset`.
    pub fn check_end(&self, tally: Tally, body_crc: u32, offset: u64) -> Result<(), FormatError> {
        if tally != self.tally || body_crc != self.crc {
            return Err(err(
                offset,
                format!(
                    "end frame says {} pages, {} keys, {} bytes, but the file has {} pages, {} keys, {} bytes (or their checksum differs)",
                    tally.pages, tally.keys, tally.bytes, self.tally.pages, self.tally.keys, self.tally.bytes
                ),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;

    fn entry(k: &str, v: &[u8], exp: u64) -> Entry {
        Entry::new(
            hash_key(k.as_bytes()),
            k.as_bytes().into(),
            Value::string(v.to_vec()),
            exp,
        )
    }

    fn header(kind: Kind) -> FileHeader {
        FileHeader {
            kind,
            compression: true,
            shard: 1,
            shards: 2,
            databases: 16,
            id: 3,
            base_id: if kind == Kind::Full { 3 } else { 1 },
            parent_id: if kind == Kind::Full { 0 } else { 2 },
            epoch: 7,
            lsn: 12345,
            created_ms: 1_700_000_000_000,
        }
    }

    /// A small file: two pages of db 0 and 3 (whole hash space split at the
    /// top bit), one compressible and one not, an empty page, and a ranges
    /// frame of db 7 with two sub-ranges of the upper half (one empty).
    fn sample_file() -> (Vec<u8>, Vec<Entry>) {
        let mut out = header(Kind::Delta).encode();
        let mut enc = Encoder::default();
        let mut body = Body::default();
        let all: Vec<Entry> = (0..200)
            .map(|i| {
                let v = if i % 2 == 0 {
                    vec![b'x'; 300]
                } else {
                    format!("v{i}").into_bytes()
                };
                entry(
                    &format!("key:{i}"),
                    &v,
                    if i % 5 == 0 { 1_800_000_000_000 + i } else { 0 },
                )
            })
            .collect();
        let lo: Vec<&Entry> = all.iter().filter(|e| e.hash >> 63 == 0).collect();
        let hi: Vec<&Entry> = all.iter().filter(|e| e.hash >> 63 == 1).collect();
        for (db, prefix, es, compress) in [(0u16, 0u64, &lo, true), (3, 1 << 63, &hi, false)] {
            let start = out.len();
            let t = enc.encode_page(&mut out, db, prefix, 1, es.iter().copied(), compress);
            body.add(&out[start..], t.keys as u32);
        }
        let start = out.len();
        enc.encode_page(&mut out, 5, 0, 0, std::iter::empty::<&Entry>(), true);
        body.add(&out[start..], 0);
        let top: Vec<&Entry> = hi
            .iter()
            .copied()
            .filter(|e| e.hash >> 57 == 0x7F)
            .collect();
        assert!(!top.is_empty());
        enc.add_part(0x7Fu64 << 57, 7, top.iter().copied());
        enc.add_part(0x7Eu64 << 57, 7, std::iter::empty::<&Entry>());
        let start = out.len();
        let t = enc.finish_parts(&mut out, 7, true);
        body.add(&out[start..], t.keys as u32);
        assert_eq!(enc.finish_parts(&mut out, 7, true), Tally::default());
        encode_end(&mut out, body.tally, body.crc);
        pad_to_block(&mut out);
        (out, all)
    }

    #[test]
    fn header_round_trip_and_checks() {
        for kind in [Kind::Full, Kind::Delta] {
            let h = header(kind);
            let b = h.encode();
            assert_eq!(b.len(), BLOCK);
            assert_eq!(FileHeader::decode(&b).unwrap(), h);
        }
        let mut b = header(Kind::Full).encode();
        b[30] ^= 1;
        assert!(FileHeader::decode(&b)
            .unwrap_err()
            .what
            .contains("checksum"));
        let mut b = header(Kind::Full).encode();
        b[0] = b'X';
        assert!(FileHeader::decode(&b).unwrap_err().what.contains("magic"));
        assert!(FileHeader::decode(&b[..100]).is_err());
    }

    #[test]
    fn versions_read_and_refused() {
        let with_version = |v: u32| {
            let mut b = header(Kind::Full).encode();
            b[8..12].copy_from_slice(&v.to_le_bytes());
            let crc = crc32c::crc32c(&b[..HEADER_CRC_AT]);
            b[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
            b
        };
        // Version 1 (whole-page frames only) reads under version 2's rules.
        assert_eq!(
            FileHeader::decode(&with_version(1)).unwrap(),
            header(Kind::Full)
        );
        for v in [0, FORMAT_VERSION + 1] {
            let e = FileHeader::decode(&with_version(v)).unwrap_err();
            assert!(e.what.contains(&format!("version {v}")), "{e}");
        }
    }

    #[test]
    fn pages_round_trip_compressed_or_not() {
        let (file, all) = sample_file();
        assert_eq!(file.len() % BLOCK, 0);
        let (h, frames, tally) = read_all(&file).unwrap();
        assert_eq!(h, header(Kind::Delta));
        assert_eq!(frames.len(), 4);
        assert_eq!(tally.pages, 4);
        let mut got: Vec<Entry> = Vec::new();
        for f in &frames[..3] {
            got.extend(f.decode_entries(0).unwrap());
        }
        assert_eq!(frames[2].entries, 0);
        assert_eq!(frames[2].db, 5);
        // The ranges frame: its two parts, the second empty.
        let r = &frames[3];
        assert!(r.ranges && !frames[0].ranges);
        assert_eq!(r.db, 7);
        let parts = r.parts(0).unwrap();
        assert_eq!(
            parts
                .iter()
                .map(|p| (p.prefix, p.depth))
                .collect::<Vec<_>>(),
            vec![(0x7Fu64 << 57, 7), (0x7Eu64 << 57, 7)]
        );
        let top = r.decode_part(&parts[0], 0).unwrap();
        assert!(top.iter().all(|e| e.hash >> 57 == 0x7F));
        assert_eq!(top.len() as u64, tally.keys - 200);
        assert!(r.decode_part(&parts[1], 0).unwrap().is_empty());
        assert_eq!(r.decode_entries(0).unwrap().len(), top.len());
        got.sort_by(|a, b| a.key.cmp(&b.key));
        let mut want = all.clone();
        want.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(got.len(), want.len());
        for (g, w) in got.iter().zip(&want) {
            assert_eq!(
                (&g.key, &g.value, g.expire_at, g.hash),
                (&w.key, &w.value, w.expire_at, w.hash)
            );
        }
        // The compressible page was stored smaller than its entries.
        assert!(frames[0].stored < frames[0].raw.len() as u64);
    }

    #[test]
    fn every_flipped_byte_and_every_cut_is_detected() {
        let (file, _) = sample_file();
        // The meaningful bytes: up to the end frame (padding after it is
        // checked to be zero too).
        for i in 0..file.len() {
            let mut bad = file.clone();
            bad[i] ^= 0x5a;
            assert!(read_all(&bad).is_err(), "flipped byte {i} not detected");
        }
        for cut in (0..file.len()).step_by(7) {
            assert!(read_all(&file[..cut]).is_err(), "cut at {cut} not detected");
        }
    }

    /// Chunks frames name their frame and index, so they may come in any
    /// order and interleaved with other frames; a chunk for no waiting
    /// frame, past the frame's count, or given twice, and a frame still
    /// waiting at the end, are errors.
    #[test]
    fn chunks_assemble_in_any_order_and_bad_ones_are_refused() {
        let big: Vec<u8> = (0..5 * CHUNK + 7).map(|i| (i % 241) as u8).collect();
        let e = entry("big", &big, 0);
        let small = entry("small", b"v", 0);
        let mut enc = Encoder::default();
        // Frame 0 of db 0: the big value (6 chunks follow it); frame 1:
        // a small one.
        let mut frame0 = Vec::new();
        enc.encode_page(&mut frame0, 0, 0, 0, std::iter::once(&e), false);
        let chunks: Vec<Arc<Chunk>> = enc
            .take_big()
            .remove(0)
            .1
            .into_iter()
            .map(|p| match p {
                Piece::Chunk(c) => c,
                _ => panic!("not a chunk"),
            })
            .collect();
        assert_eq!(chunks.len(), 6);
        let mut frame1 = Vec::new();
        enc.encode_page(&mut frame1, 0, 0, 0, std::iter::once(&small), false);
        let chunks_frame = |enc: &mut Encoder, first: usize, n: usize| {
            let mut out = Vec::new();
            let run = chunks[first..first + n].iter().map(|c| &**c);
            enc.encode_chunks(&mut out, 0, 0, first as u32, run, true);
            out
        };
        let parse = |b: &[u8]| match parse_frame(b, 0, b.len() as u64).unwrap() {
            Parsed::Frame(f, _) => f,
            Parsed::NeedMore(_) => panic!("not whole"),
        };
        // In order of writing: chunk 4 (a write changed it), the small
        // page, then 0..4 and 5.
        let mut a = Assembler::default();
        assert!(a.add(parse(&frame0), 0).unwrap().is_none());
        assert!(a
            .add(parse(&chunks_frame(&mut enc, 4, 1)), 0)
            .unwrap()
            .is_none());
        assert!(a.add(parse(&frame1), 0).unwrap().is_some());
        assert!(a
            .add(parse(&chunks_frame(&mut enc, 0, 4)), 0)
            .unwrap()
            .is_none());
        assert!(a.finish(0).is_err(), "a frame still waits");
        let done = a
            .add(parse(&chunks_frame(&mut enc, 5, 1)), 0)
            .unwrap()
            .unwrap();
        a.finish(0).unwrap();
        let got = done.decode_entries(0).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!((&got[0].key, &got[0].value), (&e.key, &e.value));
        // A chunk given twice (the count adds up, the indices do not).
        let mut a = Assembler::default();
        a.add(parse(&frame0), 0).unwrap();
        a.add(parse(&chunks_frame(&mut enc, 0, 4)), 0).unwrap();
        a.add(parse(&chunks_frame(&mut enc, 3, 1)), 0).unwrap();
        let err = a.add(parse(&chunks_frame(&mut enc, 4, 1)), 0).unwrap_err();
        assert!(err.to_string().contains("twice"), "{err}");
        // An index past the frame's chunks.
        let mut a = Assembler::default();
        a.add(parse(&frame0), 0).unwrap();
        let mut past = Vec::new();
        enc.encode_chunks(&mut past, 0, 0, 6, chunks[..1].iter().map(|c| &**c), false);
        assert!(a.add(parse(&past), 0).is_err());
        // Chunks for a frame that waits for none (frame 1) or that is not
        // there (frame 0 of another db).
        let mut a = Assembler::default();
        a.add(parse(&frame0), 0).unwrap();
        a.add(parse(&frame1), 0).unwrap();
        let mut other = Vec::new();
        enc.encode_chunks(&mut other, 0, 1, 0, chunks[..1].iter().map(|c| &**c), false);
        assert!(a.add(parse(&other), 0).is_err());
        let mut other_db = Vec::new();
        enc.encode_chunks(
            &mut other_db,
            2,
            0,
            0,
            chunks[..1].iter().map(|c| &**c),
            false,
        );
        assert!(a.add(parse(&other_db), 0).is_err());
    }

    /// A hashtable hash and set of many segments are written as
    /// segmented entries whose segments follow in pieces frames; the
    /// pieces assemble in any order, interleaved with other frames, into
    /// the same hash and set. A piece twice, a pieces frame whose lengths
    /// do not add up, pieces of another value (counts that do not add up,
    /// or a repeated element) are refused.
    #[test]
    fn segmented_collections_assemble_in_any_order_and_bad_ones_are_refused() {
        use crate::types::hash::{Hash, Limits};
        use crate::types::Set;
        let mut h = Hash::new();
        for i in 0..5000 {
            h.set(
                format!("f{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                Limits::default(),
            );
        }
        let members: Vec<Vec<u8>> = (0..7000).map(|i| format!("m{i}").into_bytes()).collect();
        let set = Set::table_of(members.iter().map(Vec::as_slice));
        let with =
            |k: &str, v: Value| Entry::new(hash_key(k.as_bytes()), k.as_bytes().into(), v, 7);
        let (eh, es) = (
            with("h", Value::Hash(h.clone())),
            with("s", Value::Set(set.clone())),
        );
        let small = entry("small", b"v", 0);
        let mut enc = Encoder::default();
        let mut frame0 = Vec::new();
        enc.encode_page(&mut frame0, 0, 0, 0, [&eh, &small, &es].into_iter(), true);
        let big = enc.take_big();
        assert_eq!(big.len(), 2);
        let (hn, sn) = (big[0].1.len(), big[1].1.len());
        assert!(hn > 4 && sn > 6, "{hn} and {sn} segments");
        assert!(
            big[0].1.iter().all(|p| matches!(p, Piece::HashSegment(_)))
                && big[1].1.iter().all(|p| matches!(p, Piece::SetSegment(_)))
        );
        // The page frame holds no element: each segment is a piece.
        assert!(frame0.len() < 200, "{} bytes", frame0.len());
        let pieces: Vec<Piece> = big.into_iter().flat_map(|(_, p)| p).collect();
        let mut frame1 = Vec::new();
        enc.encode_page(&mut frame1, 0, 0, 0, std::iter::once(&small), false);
        let parse = |b: &[u8]| match parse_frame(b, 0, b.len() as u64).unwrap() {
            Parsed::Frame(f, _) => f,
            Parsed::NeedMore(_) => panic!("not whole"),
        };
        let pieces_frame = |enc: &mut Encoder, first: usize, n: usize| {
            let mut out = Vec::new();
            enc.encode_pieces(
                &mut out,
                0,
                0,
                first as u32,
                &pieces[first..first + n],
                true,
            );
            out
        };
        // Backwards, two at a time, with the other page in between.
        let mut a = Assembler::default();
        assert!(a.add(parse(&frame0), 0).unwrap().is_none());
        let total = pieces.len();
        let mut at = total;
        let mut done = None;
        while at > 0 {
            let n = at.min(2);
            at -= n;
            let f = pieces_frame(&mut enc, at, n);
            assert_eq!(f[1] & FLAG_PIECES, FLAG_PIECES);
            if at == total - 2 {
                assert!(a.add(parse(&frame1), 0).unwrap().is_some());
            }
            if let Some(p) = a.add(parse(&f), 0).unwrap() {
                done = Some(p);
            }
        }
        a.finish(0).unwrap();
        let got = done.unwrap().decode_entries(0).unwrap();
        assert_eq!(got.len(), 3);
        let find = |k: &[u8]| got.iter().find(|e| &*e.key == k).unwrap();
        assert_eq!((&find(b"h").value, find(b"h").expire_at), (&eh.value, 7));
        assert_eq!((&find(b"s").value, find(b"s").expire_at), (&es.value, 7));
        assert_eq!(find(b"h").value.encoding(), "hashtable");
        assert_eq!(find(b"s").value.encoding(), "hashtable");
        // Every piece but a repeated one: the indices do not add up.
        let mut a = Assembler::default();
        a.add(parse(&frame0), 0).unwrap();
        for i in 0..total - 1 {
            a.add(parse(&pieces_frame(&mut enc, i, 1)), 0).unwrap();
        }
        let e = a.add(parse(&pieces_frame(&mut enc, 0, 1)), 0).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
        // The hash's pieces where the set's should be (and the reverse):
        // the counts differ, or a member repeats.
        let swapped: Vec<Piece> = pieces[hn..].iter().chain(&pieces[..hn]).cloned().collect();
        let mut a = Assembler::default();
        a.add(parse(&frame0), 0).unwrap();
        let mut last = None;
        for i in 0..total {
            let mut out = Vec::new();
            enc.encode_pieces(&mut out, 0, 0, i as u32, &swapped[i..=i], false);
            last = a.add(parse(&out), 0).unwrap();
        }
        assert!(last.unwrap().decode_entries(0).is_err());
        // A segment of the hash given twice in place of another.
        let mut twice = pieces.clone();
        twice[1] = twice[0].clone();
        let mut a = Assembler::default();
        a.add(parse(&frame0), 0).unwrap();
        let mut out = Vec::new();
        enc.encode_pieces(&mut out, 0, 0, 0, &twice[..4], false);
        a.add(parse(&out), 0).unwrap();
        let mut last = None;
        for i in 4..total {
            let mut out = Vec::new();
            enc.encode_pieces(&mut out, 0, 0, i as u32, &twice[i..=i], false);
            last = a.add(parse(&out), 0).unwrap();
        }
        let e = last.unwrap().decode_entries(0).unwrap_err();
        assert!(e.to_string().contains("bad segmented hash"), "{e}");
        // A pieces frame whose lengths run past its payload, or leave
        // bytes after the last piece.
        for raw in [&[5u8, 1, 2][..], &[1u8, 9, 0]] {
            let mut out = Vec::new();
            put_frame(
                &mut out,
                TAG_CHUNKS,
                0,
                0,
                0,
                raw,
                0,
                1,
                &mut Vec::new(),
                false,
                FLAG_PIECES,
            );
            let e = parse_frame(&out, 0, out.len() as u64).unwrap_err();
            assert!(e.to_string().contains("malformed pieces frame"), "{e}");
        }
        // The flag is for chunks frames only.
        let mut out = Vec::new();
        put_frame(
            &mut out,
            TAG_PAGE,
            0,
            0,
            0,
            &[],
            0,
            0,
            &mut Vec::new(),
            false,
            FLAG_PIECES,
        );
        assert!(parse_frame(&out, 0, out.len() as u64).is_err());
    }

    #[test]
    fn frame_needs_more_until_whole() {
        let (file, _) = sample_file();
        let body = &file[BLOCK..];
        let whole = match parse_frame(body, BLOCK as u64, body.len() as u64).unwrap() {
            Parsed::Frame(_, n) => n,
            other => panic!("{other:?}"),
        };
        for len in [0, 10, FRAME_HEADER, whole - 1] {
            match parse_frame(&body[..len], BLOCK as u64, body.len() as u64).unwrap() {
                Parsed::NeedMore(n) => assert!(n > len && n <= whole),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn entries_outside_the_range_are_refused() {
        let e = entry("some-key", b"v", 0);
        // A page whose range is the other half of the hash space.
        let prefix = if e.hash >> 63 == 0 { 1 << 63 } else { 0 };
        let mut out = Vec::new();
        Encoder::default().encode_page(&mut out, 0, prefix, 1, std::iter::once(&e), false);
        let Parsed::Frame(Frame::Page(p), _) = parse_frame(&out, 0, out.len() as u64).unwrap()
        else {
            panic!("not a page");
        };
        assert!(p.decode_entries(0).unwrap_err().what.contains("hash range"));
    }

    #[test]
    fn varints() {
        for v in [0, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
        }
        assert_eq!(get_varint(&[0x80; 11], &mut 0), None);
    }
}
