//! Reading frames back: parsing and checking one frame, decoding a page
//! frame's entries, and assembling a big value from the chunks frames
//! that follow its page frame.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use super::*;
use crate::keyhash::hash_key;
use crate::types::string::{Chunk, CHUNK};
use crate::types::Str;
use crate::value::{Entry, Value};
use crate::varint::get as get_varint;

/// One frame as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Page(PageFrame),
    /// A chunks frame: its database, the number of the frame whose chunks
    /// it holds (that database's page and ranges frames in the file,
    /// counted from 0), the index of its first chunk among them, and the
    /// chunks (each the file's chunk size, [`FileHeader::chunk_bytes`],
    /// but maybe the last).
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
    /// Its offset in the file (for error messages).
    pub offset: u64,
    /// The file's chunk size ([`FileHeader::chunk_bytes`]): its chunked
    /// strings' chunk counts are in this unit.
    pub chunk: usize,
}

/// One entry of a page frame as read back: a whole one, or (version 4)
/// a patch of a big string whose other chunks are in an older file of
/// the chain ([`super::super::chain`] puts them together).
#[derive(Debug, Clone)]
pub enum Item {
    Whole(Entry),
    Patch(Patch),
}

impl Item {
    pub fn key(&self) -> &[u8] {
        match self {
            Item::Whole(e) => &e.key,
            Item::Patch(p) => &p.key,
        }
    }

    pub fn hash(&self) -> u64 {
        match self {
            Item::Whole(e) => e.hash,
            Item::Patch(p) => p.hash,
        }
    }

    pub fn expire_at(&self) -> u64 {
        match self {
            Item::Whole(e) => e.expire_at,
            Item::Patch(p) => p.expire_at,
        }
    }
}

/// A patch entry (type 7): the string at `key` is now `len` bytes long,
/// and its chunks `chunks` (index, bytes) changed since the value an older
/// file of the chain holds for the key; the others are that value's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    pub hash: u64,
    pub key: Vec<u8>,
    pub expire_at: u64,
    pub len: u64,
    pub chunks: Vec<(u64, Arc<Chunk>)>,
    /// The chunk size of its file ([`FileHeader::chunk_bytes`]): `chunks`'
    /// indices count in it.
    pub chunk: usize,
    /// Offset of its frame in its file (for error messages).
    pub offset: u64,
    /// A patch of a segmented hash or set (types 8 and 9): `len` is then
    /// its element count and `chunks` its changed segments' pieces, one
    /// per range, in order. None: a string's.
    pub segments: Option<SegmentsPatch>,
}

/// What a patch of a hash or set says besides its pieces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentsPatch {
    /// A set's (else a hash's).
    pub set: bool,
    /// The seed its element hashes were laid out with.
    pub seed: u64,
    /// The changed segments' ranges: (depth, low bits of the hash).
    pub ranges: Vec<(u8, u64)>,
}

impl Patch {
    /// The bytes (in chunks) of the value this patch makes of `base`, the
    /// value an older file holds for the key: `base`'s chunks, grown to
    /// the patch's length, with the patch's chunks put in. An error if
    /// `base` is not a string, is longer, or leaves a chunk the patch
    /// does not give partial or missing (the file is not the chain it
    /// says).
    pub fn apply(&self, base: &Value) -> Result<Value, String> {
        if let Some(sp) = &self.segments {
            let pieces: Vec<&[u8]> = self
                .chunks
                .iter()
                .map(|(_, c)| c.bytes.as_slice())
                .collect();
            return match (sp.set, base) {
                (false, Value::Hash(h)) => {
                    crate::types::Hash::patched(h, sp.seed, &sp.ranges, &pieces, self.len)
                        .map(Value::Hash)
                }
                (true, Value::Set(s)) => {
                    crate::types::Set::patched(s, sp.seed, &sp.ranges, &pieces, self.len)
                        .map(Value::Set)
                }
                _ => Err(format!(
                    "its base (the key's value in an older file) is a {}, not a {}",
                    base.type_name(),
                    if sp.set { "set" } else { "hash" }
                )),
            };
        }
        let Value::Str(s) = base else {
            return Err(format!(
                "its base (the key's value in an older file) is a {}, not a string",
                base.type_name()
            ));
        };
        if s.len() as u64 > self.len {
            return Err(format!(
                "its base is {} bytes, longer than the {} it patches to",
                s.len(),
                self.len
            ));
        }
        if self.chunk != CHUNK {
            return self.apply_bytes(s);
        }
        let n = usize::try_from(self.len.div_ceil(CHUNK as u64))
            .map_err(|_| "its length is out of range".to_owned())?;
        let mut out: Vec<Option<Arc<Chunk>>> = Vec::with_capacity(n);
        match s.as_chunked() {
            Some(c) => out.extend(c.chunks().iter().cloned().map(Some)),
            None => out.extend(s.pieces().flat_map(|p| p.chunks(CHUNK)).map(|b| {
                Some(Arc::new(Chunk {
                    bytes: b.to_vec(),
                    epoch: 0,
                }))
            })),
        }
        out.resize(n, None);
        for (i, c) in &self.chunks {
            let slot = usize::try_from(*i)
                .ok()
                .and_then(|i| out.get_mut(i))
                .ok_or_else(|| "a chunk index past its length".to_owned())?;
            *slot = Some(Arc::clone(c));
        }
        let chunks: Option<Vec<Arc<Chunk>>> = out.into_iter().collect();
        chunks
            .and_then(Str::from_chunks)
            .filter(|v| v.len() as u64 == self.len)
            .map(Value::Str)
            .ok_or_else(|| {
                format!(
                    "its chunks and its base's ({} bytes) do not make the {} bytes it says",
                    s.len(),
                    self.len
                )
            })
    }

    /// [`Patch::apply`] for a file whose chunk size is not ours (written
    /// by a build of another chunk size): the bytes put together, then cut
    /// into our chunks. Every chunk of the file's size that reaches past
    /// the base must be in the patch.
    fn apply_bytes(&self, base: &Str) -> Result<Value, String> {
        let len = usize::try_from(self.len).map_err(|_| "its length is out of range".to_owned())?;
        let size = self.chunk.max(1);
        let mut bytes = Vec::with_capacity(len);
        for p in base.pieces() {
            bytes.extend_from_slice(p);
        }
        bytes.resize(len, 0);
        let mut given = vec![false; len.div_ceil(size)];
        for (i, c) in &self.chunks {
            let i = usize::try_from(*i).map_err(|_| "a chunk index past its length".to_owned())?;
            let start = i.checked_mul(size).filter(|&a| a < len);
            let (Some(start), Some(slot)) = (start, given.get_mut(i)) else {
                return Err("a chunk index past its length".to_owned());
            };
            let end = start + c.bytes.len();
            if end != (start + size).min(len) {
                return Err("a patch chunk of the wrong size".to_owned());
            }
            bytes
                .get_mut(start..end)
                .ok_or_else(|| "a chunk index past its length".to_owned())?
                .copy_from_slice(&c.bytes);
            *slot = true;
        }
        let base_len = base.len();
        for (i, given) in given.iter().enumerate() {
            if !given && (i + 1) * size > base_len && i * size < len {
                return Err(format!(
                    "its chunks and its base's ({base_len} bytes) do not make the {len} bytes it says"
                ));
            }
        }
        Ok(Value::string(bytes))
    }
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
/// that large is read or allocated. Chunked strings are read in this
/// code's chunk size: for frames it wrote ([`parse_frame_in`] reads a file
/// in the chunk size its header says).
pub fn parse_frame(b: &[u8], offset: u64, left_in_file: u64) -> Result<Parsed, FormatError> {
    parse_frame_in(b, offset, left_in_file, CHUNK)
}

/// [`parse_frame`] of a file whose chunked strings are in chunks of
/// `chunk` bytes ([`FileHeader::chunk_bytes`]).
pub fn parse_frame_in(
    b: &[u8],
    offset: u64,
    left_in_file: u64,
    chunk: usize,
) -> Result<Parsed, FormatError> {
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
        let whole = chunk as u64;
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
            raw.chunks(chunk.max(1)).map(<[u8]>::to_vec).collect()
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
            offset,
            chunk,
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
    /// the part's. A patch entry (version 4) is an error here: it is not a
    /// value without its chain ([`PageFrame::decode_part_items`]).
    pub fn decode_part(&self, part: &Part, offset: u64) -> Result<Vec<Entry>, FormatError> {
        self.decode_part_items(part, offset)?
            .into_iter()
            .map(|item| match item {
                Item::Whole(e) => Ok(e),
                Item::Patch(_) => Err(err(
                    offset,
                    "page entries: a patch entry, which needs the older files of its chain",
                )),
            })
            .collect()
    }

    /// [`PageFrame::decode_part`], patches included.
    pub fn decode_part_items(&self, part: &Part, offset: u64) -> Result<Vec<Item>, FormatError> {
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
            let mut patch = None;
            let value = match ty {
                TYPE_STRING_PATCH => {
                    let (len, chunks) = self.read_patch(b, &mut pos, len).map_err(bad)?;
                    patch = Some((len, chunks, None));
                    Value::string(Vec::new())
                }
                TYPE_HASH_PATCH | TYPE_SET_PATCH => {
                    let (pieces, sp) = self
                        .read_segments_patch(b, &mut pos, ty == TYPE_SET_PATCH)
                        .map_err(bad)?;
                    if len == 0 {
                        return Err(bad("a patch of no element"));
                    }
                    patch = Some((len, pieces, Some(sp)));
                    Value::string(Vec::new())
                }
                TYPE_STRING => Value::string(
                    take(b, &mut pos, len).ok_or_else(|| bad("value runs past the page"))?,
                ),
                TYPE_STRING_CHUNKED => {
                    let first = get_varint(b, &mut pos).ok_or_else(|| bad("bad chunk index"))?;
                    let n = len.div_ceil(self.chunk.max(1) as u64);
                    let chunks = usize::try_from(first)
                        .ok()
                        .zip(usize::try_from(first.saturating_add(n)).ok())
                        .and_then(|(a, z)| self.chunks.get(a..z))
                        .ok_or_else(|| bad("chunked value past the chunks that follow"))?;
                    Value::Str(
                        Str::from_chunks_of(chunks.to_vec(), self.chunk)
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
            out.push(match patch {
                Some((len, chunks, segments)) => Item::Patch(Patch {
                    hash,
                    key: key.to_vec(),
                    expire_at,
                    len,
                    chunks,
                    chunk: self.chunk,
                    offset: self.offset,
                    segments,
                }),
                None => Item::Whole(Entry::new(hash, key.into(), value, expire_at)),
            });
        }
        if out.len() != part.entries as usize {
            return Err(bad("entry count differs from the header"));
        }
        Ok(out)
    }

    /// A patch entry's body after its type and length `len`: its first
    /// piece, its count of chunks and their indices, checked: ascending,
    /// inside the length, each chunk whole but the value's last one, and
    /// among the pieces that follow the frame.
    fn read_patch(&self, b: &[u8], pos: &mut usize, len: u64) -> Result<PatchBody, &'static str> {
        let first = get_varint(b, pos).ok_or("bad piece index")?;
        let count = get_varint(b, pos).ok_or("bad chunk count")?;
        if len < crate::types::string::BIG as u64 {
            return Err("a patch of a string too short to be chunked");
        }
        let size = self.chunk.max(1) as u64;
        let n = len.div_ceil(size);
        let last_len = len - (n - 1) * size;
        let pieces = usize::try_from(first)
            .ok()
            .zip(usize::try_from(first.saturating_add(count)).ok())
            .and_then(|(a, z)| self.chunks.get(a..z))
            .ok_or("a patch past the chunks that follow")?;
        let mut out = Vec::with_capacity(pieces.len());
        let mut next = 0u64;
        for c in pieces {
            let i = get_varint(b, pos).ok_or("bad chunk index")?;
            if i < next || i >= n {
                return Err("patch chunk indices not ascending inside its length");
            }
            let want = if i == n - 1 { last_len } else { size };
            if c.bytes.len() as u64 != want {
                return Err("a patch chunk of the wrong size");
            }
            out.push((i, Arc::clone(c)));
            next = i + 1;
        }
        Ok((len, out))
    }

    /// A hash or set patch's body after its type and element count: the
    /// seed, its first piece, its count of segments and their ranges,
    /// checked: each range a depth of at most 32 bits and low bits inside
    /// it, its pieces among those that follow the frame. (The pieces
    /// themselves are checked when the patch is applied.)
    fn read_segments_patch(
        &self,
        b: &[u8],
        pos: &mut usize,
        set: bool,
    ) -> Result<(Pieces, SegmentsPatch), &'static str> {
        let seed = pos
            .checked_add(8)
            .and_then(|end| b.get(*pos..end))
            .and_then(|s| <[u8; 8]>::try_from(s).ok())
            .map(u64::from_le_bytes)
            .ok_or("bad seed")?;
        *pos += 8;
        let first = get_varint(b, pos).ok_or("bad piece index")?;
        let count = get_varint(b, pos).ok_or("bad segment count")?;
        let pieces = usize::try_from(first)
            .ok()
            .zip(usize::try_from(first.saturating_add(count)).ok())
            .and_then(|(a, z)| self.chunks.get(a..z))
            .ok_or("a patch past the pieces that follow")?;
        let mut ranges = Vec::with_capacity(pieces.len());
        let mut out = Vec::with_capacity(pieces.len());
        for (i, c) in pieces.iter().enumerate() {
            let depth = *b.get(*pos).ok_or("bad segment depth")?;
            *pos += 1;
            let low = get_varint(b, pos).ok_or("bad segment range")?;
            if depth > 32 || low >> depth != 0 {
                return Err("a segment range out of bounds");
            }
            ranges.push((depth, low));
            out.push((i as u64, Arc::clone(c)));
        }
        Ok((out, SegmentsPatch { set, seed, ranges }))
    }

    /// Every entry of every part, checked, patches included.
    pub fn decode_items(&self, offset: u64) -> Result<Vec<Item>, FormatError> {
        let mut out = Vec::new();
        for part in self.parts(offset)? {
            out.extend(self.decode_part_items(&part, offset)?);
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

/// A patch's pieces (chunks or segments) with their indices.
type Pieces = Vec<(u64, Arc<Chunk>)>;

/// A patch's length and its chunks with their indices.
type PatchBody = (u64, Pieces);

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
    let chunk = FileHeader::chunk_bytes(file)?;
    let mut pos = BLOCK;
    let mut frames = Vec::new();
    let mut body = Body::default();
    let mut assembler = Assembler::default();
    loop {
        let rest = file.get(pos..).unwrap_or_default();
        match parse_frame_in(rest, pos as u64, rest.len() as u64, chunk)? {
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
