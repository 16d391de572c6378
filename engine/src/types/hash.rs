//! The hash type: its two encodings, the conversion between them, and how a
//! hash is written into a snapshot and recreated by commands.
//!
//! - **Listpack** ([`Hash::Pack`]): one `Vec<u8>`, a 4-byte count then each
//!   pair as `varint len, field, varint len, value`, in insertion order (as
//!   Redis's listpack). Used while the hash has at most
//!   `hash-max-listpack-entries` pairs and no field or value longer than
//!   `hash-max-listpack-value` bytes ([`Limits`]).
//! - **Hashtable** ([`Hash::Table`]): extendible hashing over segments
//!   shared by reference count, `Arc<Dir>` holding a directory of segment
//!   numbers and `Vec<Arc<Segment>>`. A segment is a small hash table of at
//!   most [`SEG_MAX_ITEMS`] pairs or [`SEG_MAX_BYTES`] bytes, picked by the
//!   low bits of the field's hash; a full segment splits in two (the
//!   directory doubles when needed: it holds 4 bytes per slot). A segment
//!   holds its pairs back to back in one byte vector, indexed by a hash
//!   table of offsets (no allocation per pair). A running snapshot holds
//!   the segments of a hash at its barrier, shared, and writes them one
//!   piece each (docs/FORMATS.md, type 5); a write writes the segment it
//!   is about to change first ([`Table::segment_of`],
//!   `PageTable::get_value_mut_for`), or copies that one segment
//!   (`Arc::make_mut`), never the hash.
//!   Each segment knows its range of field hashes (depth, low bits) and
//!   the epoch it last changed in, and the table the epoch it was placed
//!   whole in ([`crate::types::Epochs`]), so a delta writes only the
//!   segments changed since its base (docs/FORMATS.md, type 8).
//!
//! As Redis, a listpack becomes a hashtable when it grows past a limit and
//! never goes back, except when a whole hash is loaded (RESTORE).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::hash::BuildHasher;
use std::sync::{Arc, OnceLock};

use hashbrown::HashTable;

use crate::types::Epochs;
use crate::varint::{get as get_varint, len as varint_len, put as put_varint};

/// Most pairs in one segment of a hashtable before it splits.
pub const SEG_MAX_ITEMS: usize = 1024;
/// Most bytes of pairs in one segment before it splits.
pub const SEG_MAX_BYTES: usize = 64 * 1024;
/// Deepest directory (2^24 slots): past it segments just grow.
const MAX_DEPTH: u32 = 24;
/// The bound on one recreating command ([`Hash::recreate`]): HSET of at
/// most this many pairs...
pub const RECREATE_PAIRS: usize = 1024;
/// ...or of about this many bytes (at least one pair).
pub const RECREATE_BYTES: usize = 1024 * 1024;

/// The conversion thresholds (`hash-max-listpack-entries`,
/// `hash-max-listpack-value`), Redis 7's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub max_entries: usize,
    pub max_value: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_entries: 512,
            max_value: 64,
        }
    }
}

// ---------------------------------------------------------------------------
// The pair encoding of both representations and of the snapshot entry
// (lengths as varints: `crate::varint`).

fn take<'a>(b: &'a [u8], pos: &mut usize, n: u64) -> Option<&'a [u8]> {
    let n = usize::try_from(n).ok()?;
    let s = b.get(*pos..pos.checked_add(n)?)?;
    *pos += n;
    Some(s)
}

/// Bytes a pair takes in the pair encoding.
fn pair_bytes(f: &[u8], v: &[u8]) -> usize {
    varint_len(f.len() as u64) + f.len() + varint_len(v.len() as u64) + v.len()
}

fn put_pair(out: &mut Vec<u8>, f: &[u8], v: &[u8]) {
    put_varint(out, f.len() as u64);
    out.extend_from_slice(f);
    put_varint(out, v.len() as u64);
    out.extend_from_slice(v);
}

/// The process's seed for field hashes (random, so clients cannot choose
/// fields that all land in one segment).
fn seed() -> u64 {
    static SEED: OnceLock<u64> = OnceLock::new();
    *SEED.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(0x5eed_u64))
}

#[inline]
fn field_hash(f: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64_with_seed(f, seed())
}

/// The hash a segment's table uses: other bits than the directory's.
#[inline]
fn inner(h: u64) -> u64 {
    h.rotate_left(32)
}

// ---------------------------------------------------------------------------
// The listpack.

/// Bytes of the count at the start of a listpack.
const PACK_HEAD: usize = 4;

/// One pair found in a listpack: where it starts and ends, where its value
/// (length varint) starts.
struct PackPair<'a> {
    start: usize,
    value_at: usize,
    end: usize,
    field: &'a [u8],
    value: &'a [u8],
}

fn pack_pairs(b: &[u8]) -> impl Iterator<Item = PackPair<'_>> + '_ {
    let mut pos = PACK_HEAD;
    std::iter::from_fn(move || {
        let start = pos;
        let n = get_varint(b, &mut pos)?;
        let field = take(b, &mut pos, n)?;
        let value_at = pos;
        let n = get_varint(b, &mut pos)?;
        let value = take(b, &mut pos, n)?;
        Some(PackPair {
            start,
            value_at,
            end: pos,
            field,
            value,
        })
    })
}

fn pack_len(b: &[u8]) -> usize {
    let mut n = [0u8; 4];
    if let Some(h) = b.get(..PACK_HEAD) {
        n.copy_from_slice(h);
    }
    u32::from_le_bytes(n) as usize
}

fn pack_set_len(b: &mut [u8], n: usize) {
    if let Some(h) = b.get_mut(..PACK_HEAD) {
        h.copy_from_slice(&(n as u32).to_le_bytes());
    }
}

fn pack_find<'a>(b: &'a [u8], f: &[u8]) -> Option<PackPair<'a>> {
    pack_pairs(b).find(|p| p.field == f)
}

// ---------------------------------------------------------------------------
// The hashtable.

/// The pair at offset `o` of a segment's bytes: (field, value, end).
fn pair_at(data: &[u8], o: usize) -> (&[u8], &[u8], usize) {
    let mut pos = o;
    let mut part = || {
        let n = get_varint(data, &mut pos)?;
        take(data, &mut pos, n)
    };
    let f = part().unwrap_or_default();
    let v = part().unwrap_or_default();
    (f, v, pos)
}

#[inline]
fn field_at(data: &[u8], o: usize) -> &[u8] {
    pair_at(data, o).0
}

/// One segment of a hashtable: its pairs back to back in one byte vector
/// (as a listpack's), and a small hash table of their offsets. A pair
/// replaced or removed leaves its bytes behind (`garbage`) until the
/// segment is compacted (when they pass half of it): a bounded copy, as a
/// segment is at most [`SEG_MAX_BYTES`] of live pairs (or one pair).
#[derive(Debug, Clone)]
pub struct Segment {
    /// How many low bits of the hash all its fields share...
    depth: u32,
    /// ...and what they are: the segment holds the fields whose hash's
    /// low `depth` bits are `low` (its range, which a delta's patch
    /// names).
    low: u32,
    /// The epoch it last changed in ([`crate::types::Epochs::stamp`] of
    /// its hash at the time; a split stamps both halves).
    epoch: u32,
    data: Vec<u8>,
    /// Bytes of `data` that no live pair uses.
    garbage: usize,
    index: HashTable<usize>,
}

impl Segment {
    fn new(depth: u32, low: u32, epoch: u32) -> Segment {
        Segment {
            depth,
            low,
            epoch,
            data: Vec::new(),
            garbage: 0,
            index: HashTable::new(),
        }
    }

    /// Heap bytes: the pairs' bytes, the table, the segment and its `Arc`.
    fn heap(&self) -> usize {
        self.data.capacity()
            + self.index.capacity() * (std::mem::size_of::<usize>() + 1)
            + std::mem::size_of::<Segment>()
            + 16
    }

    /// Bytes of live pairs.
    fn live(&self) -> usize {
        self.data.len() - self.garbage
    }

    fn find(&self, h: u64, f: &[u8]) -> Option<usize> {
        let data = &self.data;
        self.index
            .find(inner(h), |&o| field_at(data, o) == f)
            .copied()
    }

    /// Appends a pair's bytes; returns its offset. Grows by a quarter (not
    /// double) so a segment's slack stays small.
    fn append(&mut self, f: &[u8], v: &[u8]) -> usize {
        let need = pair_bytes(f, v);
        if self.data.capacity() - self.data.len() < need {
            self.data
                .reserve_exact(need.max(self.data.len() / 4).max(64));
        }
        let o = self.data.len();
        put_pair(&mut self.data, f, v);
        o
    }

    fn insert_new(&mut self, h: u64, f: &[u8], v: &[u8]) {
        let o = self.append(f, v);
        let data = &self.data;
        self.index
            .insert_unique(inner(h), o, |&o| inner(field_hash(field_at(data, o))));
    }

    /// Sets `f` (hash `h`) to `v`; returns the bytes of the pair it
    /// replaced (None: `f` is new).
    fn set(&mut self, h: u64, f: &[u8], v: &[u8]) -> Option<usize> {
        match self.find(h, f) {
            Some(old) => {
                let (of, ov, _) = pair_at(&self.data, old);
                let old_len = pair_bytes(of, ov);
                let o = self.append(f, v);
                if let Some(slot) = self.index.find_mut(inner(h), |&x| x == old) {
                    *slot = o;
                }
                self.garbage += old_len;
                self.compact_if_sparse();
                Some(old_len)
            }
            None => {
                self.insert_new(h, f, v);
                None
            }
        }
    }

    /// Removes `f`; returns its pair's bytes.
    fn remove(&mut self, h: u64, f: &[u8]) -> Option<usize> {
        let data = &self.data;
        let found = self
            .index
            .find_entry(inner(h), |&o| field_at(data, o) == f)
            .ok()?;
        let (o, _) = found.remove();
        let (of, ov, _) = pair_at(&self.data, o);
        let len = pair_bytes(of, ov);
        self.garbage += len;
        if self.index.capacity() > 64 && self.index.len() * 4 < self.index.capacity() {
            let want = self.index.len() * 2;
            let data = &self.data;
            self.index
                .shrink_to(want, |&o| inner(field_hash(field_at(data, o))));
        }
        self.compact_if_sparse();
        Some(len)
    }

    /// Rewrites the pairs without the garbage when it is more than half.
    fn compact_if_sparse(&mut self) {
        if self.garbage * 2 <= self.data.len() {
            return;
        }
        let live = self.live();
        let mut data = Vec::with_capacity(live + live / 8);
        for o in self.index.iter_mut() {
            let (_, _, end) = pair_at(&self.data, *o);
            let at = data.len();
            data.extend_from_slice(self.data.get(*o..end).unwrap_or_default());
            *o = at;
        }
        self.data = data;
        self.garbage = 0;
    }

    fn pairs(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.index.iter().map(|&o| {
            let (f, v, _) = pair_at(&self.data, o);
            (f, v)
        })
    }

    pub fn len(&self) -> usize {
        self.index.len()
    }

    /// Its range of field hashes: (depth, low bits).
    pub fn range(&self) -> (u32, u32) {
        (self.depth, self.low)
    }

    /// The epoch it last changed in.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// About the bytes of its piece ([`Segment::write_piece`]): its live
    /// pairs and the count.
    pub fn piece_len(&self) -> usize {
        self.live() + 10
    }

    /// Appends its snapshot piece (a segmented hash writes one per
    /// segment, docs/FORMATS.md): the pair count, then each pair as
    /// `varint len, field, varint len, value`.
    pub fn write_piece(&self, out: &mut Vec<u8>) {
        put_varint(out, self.len() as u64);
        out.reserve(self.live());
        for (f, v) in self.pairs() {
            put_pair(out, f, v);
        }
    }
}

#[derive(Debug, Clone)]
struct Dir {
    /// Global depth: the directory has 2^depth slots.
    depth: u32,
    /// Segment number of each slot (slot = the hash's low `depth` bits).
    slots: Vec<u32>,
    segs: Vec<Arc<Segment>>,
    len: usize,
    /// Sum of the segments' [`Segment::heap`].
    seg_heap: usize,
    /// Sum of the pairs' bytes in the pair encoding.
    data: usize,
    /// For delta snapshots ([`crate::types::Epochs`]).
    epochs: Epochs,
}

/// A hash in the hashtable encoding (see the module docs).
#[derive(Debug, Clone)]
pub struct Table {
    dir: Arc<Dir>,
}

impl Default for Table {
    fn default() -> Self {
        Self::new()
    }
}

impl Table {
    pub fn new() -> Table {
        let seg = Segment::new(0, 0, 0);
        Table {
            dir: Arc::new(Dir {
                depth: 0,
                slots: vec![0],
                seg_heap: seg.heap(),
                segs: vec![Arc::new(seg)],
                len: 0,
                data: 0,
                epochs: Epochs::default(),
            }),
        }
    }

    pub fn len(&self) -> usize {
        self.dir.len
    }

    pub fn is_empty(&self) -> bool {
        self.dir.len == 0
    }

    /// The segments (for tests and the snapshot).
    pub fn segments(&self) -> &[Arc<Segment>] {
        &self.dir.segs
    }

    /// Its epochs for delta snapshots.
    pub fn epochs(&self) -> Epochs {
        self.dir.epochs
    }

    /// Changes its epochs (copying the directory only if they change and
    /// a snapshot shares it).
    fn set_epochs(&mut self, f: impl FnOnce(&mut Epochs)) {
        let mut e = self.dir.epochs;
        f(&mut e);
        if e != self.dir.epochs {
            Arc::make_mut(&mut self.dir).epochs = e;
        }
    }

    /// The seed its fields are placed in segments by (this process's).
    pub fn seed(&self) -> u64 {
        seed()
    }

    /// The number of the segment that holds (or would hold) field `f`:
    /// a write of `f` changes that segment alone (and, if it splits it,
    /// a new one past the others).
    pub fn segment_of(&self, f: &[u8]) -> usize {
        Self::seg_of(&self.dir, field_hash(f))
    }

    fn seg_of(dir: &Dir, h: u64) -> usize {
        let slot = (h & ((1u64 << dir.depth) - 1)) as usize;
        dir.slots.get(slot).copied().unwrap_or(0) as usize
    }

    pub fn get(&self, f: &[u8]) -> Option<&[u8]> {
        let h = field_hash(f);
        let seg = self.dir.segs.get(Self::seg_of(&self.dir, h))?;
        seg.find(h, f).map(|o| pair_at(&seg.data, o).1)
    }

    /// Sets `f` to `v`; returns whether `f` is new.
    pub fn set(&mut self, f: &[u8], v: &[u8]) -> bool {
        let h = field_hash(f);
        let dir = Arc::make_mut(&mut self.dir);
        let si = Self::seg_of(dir, h);
        let stamp = dir.epochs.stamp;
        let Some(arc) = dir.segs.get_mut(si) else {
            return false;
        };
        let seg = Arc::make_mut(arc);
        seg.epoch = stamp;
        let before = seg.heap();
        let added = match seg.set(h, f, v) {
            Some(old_len) => {
                dir.data = dir.data - old_len + pair_bytes(f, v);
                false
            }
            None => {
                dir.data += pair_bytes(f, v);
                dir.len += 1;
                true
            }
        };
        let full = seg.len() > SEG_MAX_ITEMS || seg.live() > SEG_MAX_BYTES;
        dir.seg_heap = dir.seg_heap + seg.heap() - before;
        if added && full {
            dir.split(si);
        }
        added
    }

    /// Removes `f`; returns whether it was there.
    pub fn remove(&mut self, f: &[u8]) -> bool {
        if self.get(f).is_none() {
            return false;
        }
        let h = field_hash(f);
        let dir = Arc::make_mut(&mut self.dir);
        let si = Self::seg_of(dir, h);
        let stamp = dir.epochs.stamp;
        let Some(arc) = dir.segs.get_mut(si) else {
            return false;
        };
        let seg = Arc::make_mut(arc);
        seg.epoch = stamp;
        let before = seg.heap();
        let Some(len) = seg.remove(h, f) else {
            return false;
        };
        dir.data -= len;
        dir.len -= 1;
        dir.seg_heap = dir.seg_heap + seg.heap() - before;
        true
    }

    /// The pairs, segment by segment.
    pub fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> + '_ {
        self.dir.segs.iter().flat_map(|s| s.pairs())
    }

    /// A pair picked at random from `r1`, `r2` (not exactly uniform: a
    /// random non-empty segment, then a random pair of it).
    fn random(&self, r1: u64, r2: u64) -> Option<(&[u8], &[u8])> {
        let segs = &self.dir.segs;
        let n = segs.len();
        let start = (r1 % n.max(1) as u64) as usize;
        (0..n)
            .map(|i| (start + i) % n)
            .filter_map(|i| segs.get(i))
            .find(|s| !s.is_empty())
            .and_then(|s| {
                let k = (r2 % s.len() as u64) as usize;
                s.pairs().nth(k)
            })
    }

    /// One HSCAN step from `cursor` (Redis's reverse-binary cursor over the
    /// directory, so a cursor stays valid while the directory doubles):
    /// visits slots until `count` pairs were given to `emit` or the scan
    /// is done; returns the next cursor (0: done).
    pub fn scan<'a>(
        &'a self,
        cursor: u64,
        count: usize,
        mut emit: impl FnMut(&'a [u8], &'a [u8]),
    ) -> u64 {
        let dir = &self.dir;
        let mask = (1u64 << dir.depth) - 1;
        let mut v = cursor;
        let mut n = 0;
        loop {
            let slot = v & mask;
            let seg = dir
                .slots
                .get(slot as usize)
                .and_then(|&s| dir.segs.get(s as usize));
            if let Some(seg) = seg {
                for (f, val) in seg.pairs() {
                    if field_hash(f) & mask == slot {
                        emit(f, val);
                        n += 1;
                    }
                }
            }
            v |= !mask;
            v = v.reverse_bits().wrapping_add(1).reverse_bits();
            if v == 0 || n >= count {
                return v;
            }
        }
    }
}

impl Dir {
    /// Splits segment `si` in two by the next bit of its fields' hashes,
    /// doubling the directory first when the segment is as deep as it.
    fn split(&mut self, si: usize) {
        let Some(old) = self.segs.get(si) else { return };
        let depth = old.depth;
        if depth >= MAX_DEPTH || old.len() < 2 {
            return;
        }
        let bit = 1u64 << depth;
        let low = old.low;
        let stamp = self.epochs.stamp;
        let mut a = Segment::new(depth + 1, low, stamp);
        let mut b = Segment::new(depth + 1, low | (1 << depth), stamp);
        for (f, v) in old.pairs() {
            let h = field_hash(f);
            if h & bit != 0 {
                b.insert_new(h, f, v);
            } else {
                a.insert_new(h, f, v);
            }
        }
        self.seg_heap = self.seg_heap + a.heap() + b.heap() - old.heap();
        if depth == self.depth {
            let n = self.slots.len();
            self.slots.extend_from_within(0..n);
            self.depth += 1;
        }
        let bi = self.segs.len() as u32;
        if let Some(s) = self.segs.get_mut(si) {
            *s = Arc::new(a);
        }
        self.segs.push(Arc::new(b));
        // The slots of the old segment with the new bit set go to `b`.
        let low = low as usize;
        let step = 1usize << depth;
        let mut j = low | step;
        while j < self.slots.len() {
            if let Some(s) = self.slots.get_mut(j) {
                *s = bi;
            }
            j += step << 1;
        }
    }
}

// ---------------------------------------------------------------------------
// The hash value.

/// A hash value.
#[derive(Debug, Clone)]
pub enum Hash {
    Pack(Vec<u8>),
    Table(Table),
}

impl PartialEq for Hash {
    /// The same pairs, whatever the encodings and order.
    fn eq(&self, other: &Hash) -> bool {
        self.len() == other.len() && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl Eq for Hash {}

impl Default for Hash {
    fn default() -> Self {
        Hash::new()
    }
}

impl Hash {
    /// An empty listpack (the caller adds a pair before storing it).
    pub fn new() -> Hash {
        Hash::Pack(vec![0; PACK_HEAD])
    }

    /// A hash of these pairs (fields distinct) in the encoding Redis 7.0
    /// picks when it loads a whole hash (RESTORE): a listpack if it is
    /// within the limits, else a hashtable. `from_listpack`: the payload
    /// was a listpack, which Redis 7.0 converts by its count only.
    pub fn from_pairs<'a>(
        pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])> + Clone,
        limits: Limits,
        from_listpack: bool,
    ) -> Hash {
        let fits = pairs.len() <= limits.max_entries
            && (from_listpack
                || pairs
                    .clone()
                    .all(|(f, v)| f.len() <= limits.max_value && v.len() <= limits.max_value));
        let mut h = if fits {
            Hash::new()
        } else {
            Hash::Table(Table::new())
        };
        for (f, v) in pairs {
            h.insert_raw(f, v);
        }
        h
    }

    pub fn len(&self) -> usize {
        match self {
            Hash::Pack(b) => pack_len(b),
            Hash::Table(t) => t.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn get(&self, f: &[u8]) -> Option<&[u8]> {
        match self {
            Hash::Pack(b) => pack_find(b, f).map(|p| p.value),
            Hash::Table(t) => t.get(f),
        }
    }

    /// Sets without converting (the caller chose the encoding).
    fn insert_raw(&mut self, f: &[u8], v: &[u8]) -> bool {
        match self {
            Hash::Pack(b) => match pack_find(b, f).map(|p| (p.value_at, p.end)) {
                Some((at, end)) => {
                    let mut enc = Vec::with_capacity(v.len() + 5);
                    put_varint(&mut enc, v.len() as u64);
                    enc.extend_from_slice(v);
                    b.splice(at..end, enc);
                    false
                }
                None => {
                    // Exactly sized, as Redis's listpack (realloc per
                    // insert): small hashes are most of the memory.
                    b.reserve_exact(pair_bytes(f, v));
                    put_pair(b, f, v);
                    let n = pack_len(b) + 1;
                    pack_set_len(b, n);
                    true
                }
            },
            Hash::Table(t) => t.set(f, v),
        }
    }

    /// Sets `f` to `v` (Redis's hashTypeSet after hashTypeTryConversion):
    /// a listpack becomes a hashtable when the field or value is longer
    /// than `max_value` or the count passes `max_entries`. Returns whether
    /// `f` is new.
    pub fn set(&mut self, f: &[u8], v: &[u8], limits: Limits) -> bool {
        if matches!(self, Hash::Pack(_))
            && (f.len() > limits.max_value || v.len() > limits.max_value)
        {
            self.convert();
        }
        let added = self.insert_raw(f, v);
        if added && matches!(self, Hash::Pack(_)) && self.len() > limits.max_entries {
            self.convert();
        }
        added
    }

    /// A listpack becomes a hashtable.
    pub fn convert(&mut self) {
        if let Hash::Pack(b) = self {
            let mut t = Table::new();
            for p in pack_pairs(b) {
                t.set(p.field, p.value);
            }
            *self = Hash::Table(t);
        }
    }

    /// Removes `f`; returns whether it was there.
    pub fn remove(&mut self, f: &[u8]) -> bool {
        match self {
            Hash::Pack(b) => match pack_find(b, f).map(|p| (p.start, p.end)) {
                Some((start, end)) => {
                    b.drain(start..end);
                    let n = pack_len(b).saturating_sub(1);
                    pack_set_len(b, n);
                    if b.capacity() > 64 && b.len() * 4 < b.capacity() {
                        b.shrink_to(b.len() * 2);
                    }
                    true
                }
                None => false,
            },
            Hash::Table(t) => t.remove(f),
        }
    }

    /// The pairs: a listpack's in insertion order, a hashtable's in no
    /// particular order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = (&[u8], &[u8])> + '_> {
        match self {
            Hash::Pack(b) => Box::new(pack_pairs(b).map(|p| (p.field, p.value))),
            Hash::Table(t) => Box::new(t.iter()),
        }
    }

    /// The pair at `i` of a listpack, or a random pair of a hashtable
    /// (from `r1`, `r2`): HRANDFIELD's pick.
    pub fn random(&self, r1: u64, r2: u64) -> Option<(&[u8], &[u8])> {
        match self {
            Hash::Pack(b) => {
                let n = pack_len(b).max(1) as u64;
                pack_pairs(b)
                    .nth((r1 % n) as usize)
                    .map(|p| (p.field, p.value))
            }
            Hash::Table(t) => t.random(r1, r2),
        }
    }

    /// The hashtable, for HSCAN's cursor over it.
    pub fn as_table(&self) -> Option<&Table> {
        match self {
            Hash::Pack(_) => None,
            Hash::Table(t) => Some(t),
        }
    }

    /// Stamps the epoch the segments the next change touches are marked
    /// with ([`crate::types::Epochs`]; a listpack keeps none).
    pub fn stamp(&mut self, epoch: u64) {
        if let Hash::Table(t) = self {
            if t.dir.epochs.stamp_differs(epoch) {
                t.set_epochs(|e| e.stamp(epoch));
            }
        }
    }

    /// Notes that it is placed whole at a key in `epoch`.
    pub fn place(&mut self, epoch: u64) {
        if let Hash::Table(t) = self {
            t.set_epochs(|e| e.place(epoch));
        }
    }

    /// [`Hash::place`] for one not placed yet (a listpack converted by a
    /// change).
    pub fn place_if_new(&mut self, epoch: u64) {
        if let Hash::Table(t) = self {
            t.set_epochs(|e| e.place_if_new(epoch));
        }
    }

    /// The hash a delta's patch (docs/FORMATS.md, type 8) makes of `base`
    /// (the key's value in an older file, in any encoding): `base`
    /// without its fields whose hash under `seed` falls in one of
    /// `ranges` (the segments that changed), plus the pairs of `pieces`
    /// (one per range, [`Segment::write_piece`]'s encoding, each pair
    /// inside its piece's range), checked: `count` pairs in all, no field
    /// twice. An error says what does not fit.
    pub fn patched(
        base: &Hash,
        seed: u64,
        ranges: &[(u8, u64)],
        pieces: &[&[u8]],
        count: u64,
    ) -> Result<Hash, String> {
        let changed = crate::types::Ranges::new(ranges);
        let hit = |f: &[u8]| changed.holds(xxhash_rust::xxh3::xxh3_64_with_seed(f, seed));
        let mut t = match base {
            Hash::Table(t) => {
                let mut t = t.clone();
                let gone: Vec<Vec<u8>> = t
                    .iter()
                    .filter(|(f, _)| hit(f))
                    .map(|(f, _)| f.to_vec())
                    .collect();
                for f in gone {
                    t.remove(&f);
                }
                t
            }
            Hash::Pack(_) => {
                let mut t = Table::new();
                for (f, v) in base.iter().filter(|(f, _)| !hit(f)) {
                    t.set(f, v);
                }
                t
            }
        };
        if ranges.len() != pieces.len() {
            return Err("its ranges and its pieces differ in number".to_owned());
        }
        for (&(depth, low), b) in ranges.iter().zip(pieces) {
            let bad = || "a malformed segment".to_owned();
            let mut pos = 0;
            let n = get_varint(b, &mut pos).ok_or_else(bad)?;
            for _ in 0..n {
                let flen = get_varint(b, &mut pos).ok_or_else(bad)?;
                let f = take(b, &mut pos, flen).ok_or_else(bad)?;
                let vlen = get_varint(b, &mut pos).ok_or_else(bad)?;
                let v = take(b, &mut pos, vlen).ok_or_else(bad)?;
                let h = xxhash_rust::xxh3::xxh3_64_with_seed(f, seed);
                if crate::types::low_bits(h, depth) != low {
                    return Err("a field outside its segment's range".to_owned());
                }
                if !t.set(f, v) {
                    return Err("a field twice".to_owned());
                }
                if t.len() as u64 > count {
                    return Err(format!("more fields than the {count} it says"));
                }
            }
            if pos != b.len() {
                return Err(bad());
            }
        }
        if t.len() as u64 != count {
            return Err(format!(
                "its base and its segments make {} fields, not the {count} it says",
                t.len()
            ));
        }
        Ok(Hash::Table(t))
    }

    /// OBJECT ENCODING's name.
    pub fn encoding(&self) -> &'static str {
        match self {
            Hash::Pack(_) => "listpack",
            Hash::Table(_) => "hashtable",
        }
    }

    /// Approximate heap bytes, kept up to date by each change.
    pub fn heap_size(&self) -> usize {
        match self {
            Hash::Pack(b) => b.capacity(),
            Hash::Table(t) => {
                let d = &t.dir;
                d.seg_heap
                    + d.slots.capacity() * 4
                    + d.segs.capacity() * 8
                    + std::mem::size_of::<Dir>()
                    + 16
            }
        }
    }

    /// How much work dropping it is: its allocations.
    pub fn free_effort(&self) -> usize {
        match self {
            Hash::Pack(_) => 1,
            // A segment is two allocations (its pairs and its table).
            Hash::Table(t) => 2 * t.dir.segs.len() + 1,
        }
    }

    /// Bytes of its snapshot encoding ([`Hash::write_snapshot`]).
    pub fn snapshot_len(&self) -> usize {
        let pairs = match self {
            Hash::Pack(b) => b.len().saturating_sub(PACK_HEAD),
            Hash::Table(t) => t.dir.data,
        };
        1 + varint_len(self.len() as u64) + pairs
    }

    /// Appends the snapshot encoding: the encoding (0 listpack, 1
    /// hashtable), the pair count, then each pair as `varint len, field,
    /// varint len, value` (docs/FORMATS.md).
    pub fn write_snapshot(&self, out: &mut Vec<u8>) {
        match self {
            Hash::Pack(b) => {
                out.push(0);
                put_varint(out, self.len() as u64);
                out.extend_from_slice(b.get(PACK_HEAD..).unwrap_or_default());
            }
            Hash::Table(t) => {
                out.push(1);
                put_varint(out, t.len() as u64);
                for (f, v) in t.iter() {
                    put_pair(out, f, v);
                }
            }
        }
    }

    /// Reads [`Hash::write_snapshot`]'s encoding (all of `b`), checked:
    /// None if malformed, empty, or a field repeats.
    pub fn read_snapshot(b: &[u8]) -> Option<Hash> {
        let (&enc, rest) = b.split_first()?;
        let mut pos = 0;
        let count = get_varint(rest, &mut pos)?;
        let body = rest.get(pos..)?;
        if count == 0 || count > body.len() as u64 {
            return None;
        }
        let mut h = match enc {
            0 => {
                let mut v = Vec::with_capacity(PACK_HEAD + body.len());
                v.extend_from_slice(&(u32::try_from(count).ok()?).to_le_bytes());
                v.extend_from_slice(body);
                Hash::Pack(v)
            }
            1 => Hash::Table(Table::new()),
            _ => return None,
        };
        let mut seen = hashbrown::HashSet::new();
        let mut pos = 0;
        let mut n = 0u64;
        while pos < body.len() {
            let flen = get_varint(body, &mut pos)?;
            let f = take(body, &mut pos, flen)?;
            let vlen = get_varint(body, &mut pos)?;
            let v = take(body, &mut pos, vlen)?;
            if !seen.insert(f) {
                return None;
            }
            if let Hash::Table(t) = &mut h {
                t.set(f, v);
            }
            n += 1;
        }
        (n == count).then_some(h)
    }

    /// A hashtable hash from its snapshot pieces ([`Segment::write_piece`],
    /// in any order), checked: None if a piece is malformed, a field
    /// repeats, or the pairs are not `count` (at least one).
    pub fn from_pieces<'a>(pieces: impl Iterator<Item = &'a [u8]>, count: u64) -> Option<Hash> {
        if count == 0 {
            return None;
        }
        let mut t = Table::new();
        for b in pieces {
            let mut pos = 0;
            let n = get_varint(b, &mut pos)?;
            for _ in 0..n {
                let flen = get_varint(b, &mut pos)?;
                let f = take(b, &mut pos, flen)?;
                let vlen = get_varint(b, &mut pos)?;
                let v = take(b, &mut pos, vlen)?;
                if !t.set(f, v) || t.len() as u64 > count {
                    return None;
                }
            }
            if pos != b.len() {
                return None;
            }
        }
        (t.len() as u64 == count).then_some(Hash::Table(t))
    }

    /// The commands that recreate the hash at `key` with absolute expiry
    /// `expire_at` (0: none): DEL, then HSET of at most
    /// [`RECREATE_PAIRS`] pairs or about [`RECREATE_BYTES`] bytes each (at
    /// least one pair), then PEXPIREAT.
    pub fn recreate(&self, key: &[u8], expire_at: u64, mut f: impl FnMut(&[&[u8]])) {
        f(&[b"DEL", key]);
        let mut args: Vec<&[u8]> = vec![b"HSET", key];
        let mut bytes = 0;
        for (field, value) in self.iter() {
            args.push(field);
            args.push(value);
            bytes += field.len() + value.len();
            if args.len() >= 2 + 2 * RECREATE_PAIRS || bytes >= RECREATE_BYTES {
                f(&args);
                args.truncate(2);
                bytes = 0;
            }
        }
        if args.len() > 2 {
            f(&args);
        }
        if expire_at != 0 {
            let at = itoa::Buffer::new().format(expire_at).to_owned();
            f(&[b"PEXPIREAT", key, at.as_bytes()]);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use std::collections::HashMap;

    fn kv(i: usize) -> (Vec<u8>, Vec<u8>) {
        (
            format!("field:{i}").into_bytes(),
            format!("v{i}").into_bytes(),
        )
    }

    #[test]
    fn varints_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v));
            let mut pos = 0;
            assert_eq!(get_varint(&b, &mut pos), Some(v));
        }
    }

    /// Random sets and removes on both encodings match a HashMap, with
    /// conversions, heap and data accounting that agree with a walk.
    #[test]
    fn matches_a_map_through_conversions_and_splits() {
        let limits = Limits {
            max_entries: 16,
            max_value: 8,
        };
        let mut h = Hash::new();
        let mut want: HashMap<Vec<u8>, Vec<u8>> = HashMap::new();
        let mut x = 12345u64;
        let mut rnd = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        for step in 0..30_000 {
            let k = format!("f{}", rnd() % 5000).into_bytes();
            if rnd() % 3 == 0 {
                assert_eq!(h.remove(&k), want.remove(&k).is_some());
            } else {
                let v = format!("{}", rnd() % 1000).into_bytes();
                assert_eq!(h.set(&k, &v, limits), want.insert(k, v).is_none());
            }
            if step < 40 {
                assert_eq!(h.encoding() == "listpack", want.len() <= 16, "{step}");
            }
        }
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), want.len());
        for (k, v) in &want {
            assert_eq!(h.get(k), Some(&v[..]));
        }
        assert_eq!(h.iter().count(), want.len());
        let t = h.as_table().unwrap();
        assert!(t.segments().len() > 1);
        assert!(t.segments().iter().all(|s| s.len() <= SEG_MAX_ITEMS));
        let data: usize = h.iter().map(|(f, v)| pair_bytes(f, v)).sum();
        assert_eq!(t.dir.data, data);
        let seg_heap: usize = t.segments().iter().map(|s| s.heap()).sum();
        assert_eq!(t.dir.seg_heap, seg_heap);
        for s in t.segments() {
            let live: usize = s.pairs().map(|(f, v)| pair_bytes(f, v)).sum();
            assert_eq!(s.live(), live);
            assert!(s.garbage * 2 <= s.data.len(), "compacted when sparse");
        }
        // The snapshot encoding round-trips.
        let mut b = Vec::new();
        h.write_snapshot(&mut b);
        assert_eq!(b.len(), h.snapshot_len());
        let back = Hash::read_snapshot(&b).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.encoding(), "hashtable");
    }

    #[test]
    fn listpack_keeps_order_and_converts_on_long_values() {
        let limits = Limits::default();
        let mut h = Hash::new();
        for i in 0..10 {
            let (f, v) = kv(i);
            assert!(h.set(&f, &v, limits));
        }
        assert!(!h.set(b"field:3", b"new", limits));
        assert!(h.remove(b"field:0"));
        let fields: Vec<Vec<u8>> = h.iter().map(|(f, _)| f.to_vec()).collect();
        assert_eq!(fields[0], b"field:1");
        assert_eq!(h.get(b"field:3"), Some(&b"new"[..]));
        assert_eq!(h.len(), 9);
        let mut b = Vec::new();
        h.write_snapshot(&mut b);
        assert_eq!(b.len(), h.snapshot_len());
        let back = Hash::read_snapshot(&b).unwrap();
        assert_eq!(back.encoding(), "listpack");
        assert_eq!(back, h);
        h.set(b"x", &[b'v'; 65], limits);
        assert_eq!(h.encoding(), "hashtable");
        // Never back.
        h.remove(b"x");
        assert_eq!(h.encoding(), "hashtable");
        assert_eq!(h.len(), 9);
        // A bad or duplicate snapshot body is refused.
        assert!(Hash::read_snapshot(&[0, 2, 1, b'a', 0, 1, b'a', 0]).is_none());
        assert!(Hash::read_snapshot(&[0, 0]).is_none());
        assert!(Hash::read_snapshot(&[1, 1, 5, b'a']).is_none());
        // From pairs: the encoding Redis picks.
        let pairs = [(&b"a"[..], &b"1"[..]), (b"b", b"2")];
        assert_eq!(
            Hash::from_pairs(pairs.iter().copied(), limits, false).encoding(),
            "listpack"
        );
        let long = [(&b"a"[..], &[b'x'; 65][..])];
        assert_eq!(
            Hash::from_pairs(long.iter().copied(), limits, false).encoding(),
            "hashtable"
        );
        assert_eq!(
            Hash::from_pairs(long.iter().copied(), limits, true).encoding(),
            "listpack"
        );
    }

    /// A write to a hashtable shared with a snapshot's clone copies the
    /// directory and one segment, not the hash.
    #[test]
    fn a_write_to_a_shared_table_copies_one_segment() {
        let mut h = Hash::Table(Table::new());
        for i in 0..20_000 {
            let (f, v) = kv(i);
            h.set(&f, &v, Limits::default());
        }
        let kept = h.clone();
        h.set(b"field:7", b"changed", Limits::default());
        let (a, b) = (h.as_table().unwrap(), kept.as_table().unwrap());
        let shared = a
            .segments()
            .iter()
            .zip(b.segments())
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(shared, a.segments().len() - 1, "one segment copied");
        assert_eq!(kept.get(b"field:7"), Some(&b"v7"[..]));
        assert_eq!(h.get(b"field:7"), Some(&b"changed"[..]));
    }

    /// HSCAN's cursor returns every pair present for the whole scan, even
    /// while the table grows between calls.
    #[test]
    fn scan_covers_everything_across_growth() {
        let mut h = Hash::Table(Table::new());
        for i in 0..3000 {
            let (f, v) = kv(i);
            h.set(&f, &v, Limits::default());
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = 0;
        let mut next = 3000;
        loop {
            cursor = h.as_table().unwrap().scan(cursor, 100, |f, _| {
                seen.insert(f.to_vec());
            });
            for _ in 0..300 {
                let (f, v) = kv(next);
                h.set(&f, &v, Limits::default());
                next += 1;
            }
            if cursor == 0 {
                break;
            }
        }
        for i in 0..3000 {
            assert!(seen.contains(&kv(i).0), "{i}");
        }
    }

    #[test]
    fn recreate_is_bounded() {
        let mut h = Hash::Table(Table::new());
        for i in 0..2500 {
            let (f, v) = kv(i);
            h.set(&f, &v, Limits::default());
        }
        let mut cmds = Vec::new();
        let mut pairs = 0;
        h.recreate(b"k", 99, |args| {
            cmds.push(String::from_utf8_lossy(args[0]).into_owned());
            if args[0] == b"HSET" {
                assert!(args.len() <= 2 + 2 * RECREATE_PAIRS);
                pairs += (args.len() - 2) / 2;
            }
            if args[0] == b"PEXPIREAT" {
                assert_eq!(args[2], b"99");
            }
        });
        assert_eq!(cmds, ["DEL", "HSET", "HSET", "HSET", "PEXPIREAT"]);
        assert_eq!(pairs, 2500);
    }

    /// Each segment holds exactly the fields of its range (depth, low
    /// bits), the ranges never overlap, and a write stamps the segment it
    /// changes (a split both halves) with the epoch set before it, and no
    /// other: what a delta's patch relies on.
    #[test]
    fn segments_know_their_range_and_the_epoch_they_changed_in() {
        let mut h = Hash::Table(Table::new());
        for i in 0..20_000 {
            let (f, v) = kv(i);
            h.set(&f, &v, Limits::default());
        }
        let segs = |h: &Hash| h.as_table().unwrap().segments().to_vec();
        let check = |h: &Hash| {
            for s in segs(h) {
                let (d, low) = s.range();
                for (f, _) in s.pairs() {
                    assert_eq!(field_hash(f) & ((1u64 << d) - 1), u64::from(low));
                }
            }
            let mut seen = std::collections::HashSet::new();
            for s in segs(h) {
                let (d, low) = s.range();
                assert!(seen.insert((d, low)), "one range twice");
            }
        };
        check(&h);
        assert!(segs(&h).iter().all(|s| s.epoch() == 0));
        h.place(3);
        h.stamp(5);
        let (f, _) = kv(7);
        h.set(&f, b"x", Limits::default());
        let before = segs(&h).len();
        let t = h.as_table().unwrap().clone();
        let target = t.segment_of(&f);
        let mut i = 0;
        while segs(&h).len() == before {
            let g = format!("more:{i}").into_bytes();
            i += 1;
            if h.as_table().unwrap().segment_of(&g) == target {
                h.set(&g, b"y", Limits::default());
            }
        }
        check(&h);
        let stamped: Vec<(u32, u32)> = segs(&h)
            .iter()
            .filter(|s| s.epoch() == 5)
            .map(|s| s.range())
            .collect();
        assert_eq!(stamped.len(), 2, "the two halves of the split: {stamped:?}");
        assert_eq!(h.as_table().unwrap().epochs().placed(), Some(3));
        // The clone taken before (a snapshot's) kept its segments and epochs.
        assert!(t.segments().iter().filter(|s| s.epoch() == 5).count() == 1);
        // A removal stamps too.
        h.stamp(6);
        assert!(h.remove(&kv(100).0));
        assert_eq!(segs(&h).iter().filter(|s| s.epoch() == 6).count(), 1);
    }
}

#[cfg(test)]
mod size_tests {
    /// Adding hashes to `Value` does not grow every entry.
    #[test]
    fn a_hash_is_no_bigger_than_a_string_in_a_value() {
        assert!(std::mem::size_of::<super::Hash>() <= std::mem::size_of::<super::super::Str>());
        eprintln!(
            "Value {} Str {} Hash {}",
            std::mem::size_of::<super::super::Value>(),
            std::mem::size_of::<super::super::Str>(),
            std::mem::size_of::<super::Hash>()
        );
    }
}
