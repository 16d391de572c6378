//! The on-disk format of a snapshot file, format version 3 (see
//! [`FORMAT_VERSION`] for what each version added).
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

use crate::types::string::CHUNK;

/// The version of this format; bumped on any incompatible change. Version 2
/// added frames of page sub-ranges, which a version-1 reader would resolve
/// wrongly (it hid whole older pages behind any newer frame inside them);
/// version-1 files read the same under version 2's rules. Version 3 added
/// chunked strings: a page frame's big strings are written after it in
/// chunks frames ([`TAG_CHUNKS`]), each bounded, so that neither writing
/// nor reading one holds a whole big value in one piece, and hashes and
/// sets, a big one written as a segmented entry whose segments follow in
/// chunks frames with [`FLAG_PIECES`]; version-1 and -2 files have none
/// and read the same. Version 4 added patch entries ([`TYPE_STRING_PATCH`]):
/// a delta writes a big string placed before its base as the chunks
/// changed since, and the value's other chunks come from an older file of
/// the chain, so a patched key is not hidden by the patch's range. A
/// version-3 reader would refuse the entry type, but with a misleading
/// message; the version says what a reader must know. Patches of big
/// hashes and sets ([`TYPE_HASH_PATCH`], [`TYPE_SET_PATCH`]: the changed
/// segments' hash ranges and elements) joined version 4 before any
/// release of it. Version-1 to -3 files have no patches and read the same.
pub const FORMAT_VERSION: u32 = 4;
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
/// A patch of a chunked string (version 4): the value's new length, the
/// index of its first piece among those that follow the frame, and the
/// ascending indices of its chunks changed since the delta's base, whose
/// bytes follow as those pieces; its other chunks are the value's in the
/// chain's older files ([`super::chain`]).
const TYPE_STRING_PATCH: u8 = 7;
/// A patch of a segmented hash (version 4): its new pair count, the seed
/// its field hashes were laid out with (u64), the index of its first
/// piece among those that follow the frame, and the ranges (depth, low
/// bits of the field hash) of its segments changed since the delta's
/// base, whose pairs follow as those pieces; the rest of its pairs are
/// the value's in the chain's older files ([`super::chain`]).
const TYPE_HASH_PATCH: u8 = 8;
/// A patch of a segmented set, as [`TYPE_HASH_PATCH`] with members.
const TYPE_SET_PATCH: u8 = 9;
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
        // The chunk size of this code's chunked strings, in KiB.
        b.extend_from_slice(&((CHUNK / 1024) as u16).to_le_bytes());
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
        if flags & !1 != 0 || u16_at(block, 22) != 0 {
            return Err(err(0, "unknown header flags"));
        }
        FileHeader::chunk_bytes(block)?;
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

impl FileHeader {
    /// The size of the chunks of the chunked strings in the file whose
    /// header block is `b` (bytes 14..16, in KiB): 64 KiB when 0 (files
    /// written before the field, all in 64 KiB chunks), else a power of
    /// two from 4 KiB to 1 MiB. Chunks frames and chunked strings' chunk
    /// counts are read in this unit, whatever this code's [`CHUNK`].
    pub fn chunk_bytes(b: &[u8]) -> Result<usize, FormatError> {
        match u16_at(b, 14) {
            0 => Ok(64 * 1024),
            kib if kib.is_power_of_two() && (4..=1024).contains(&kib) => {
                Ok(usize::from(kib) * 1024)
            }
            kib => Err(err(0, format!("chunk size of {kib} KiB in the header"))),
        }
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

mod decode;
mod encode;

pub use decode::*;
pub use encode::*;

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;
    use crate::keyhash::hash_key;
    use crate::types::string::{Chunk, CHUNK};
    use crate::value::{Entry, Value};
    use crate::varint::{get as get_varint, put as put_varint};
    use std::sync::Arc;

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

    /// The header says the chunk size its chunked strings were written in:
    /// this code's, or 64 KiB in files from before the field (0); sizes no
    /// writer uses are refused.
    #[test]
    fn the_header_names_the_chunk_size() {
        let b = header(Kind::Full).encode();
        assert_eq!(FileHeader::chunk_bytes(&b).unwrap(), CHUNK);
        let with_kib = |kib: u16| {
            let mut b = header(Kind::Full).encode();
            b[14..16].copy_from_slice(&kib.to_le_bytes());
            let crc = crc32c::crc32c(&b[..HEADER_CRC_AT]);
            b[HEADER_CRC_AT..HEADER_CRC_AT + 4].copy_from_slice(&crc.to_le_bytes());
            b
        };
        assert_eq!(FileHeader::chunk_bytes(&with_kib(0)).unwrap(), 64 * 1024);
        assert_eq!(FileHeader::chunk_bytes(&with_kib(64)).unwrap(), 64 * 1024);
        for bad in [2, 3, 48, 2048] {
            let e = FileHeader::decode(&with_kib(bad)).unwrap_err();
            assert!(e.what.contains("chunk size"), "{bad}: {e}");
        }
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
