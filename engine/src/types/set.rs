//! The set type: its three encodings, the conversions between them at
//! Redis's thresholds, and how a set is written into a snapshot and
//! recreated by commands.
//!
//! - **intset** (all members canonical integers, at most
//!   `set-max-intset-entries`): one byte string, a kind byte, a width byte
//!   (2, 4 or 8) and the integers sorted ascending, little-endian, as
//!   Redis's intset. SMEMBERS replies in ascending order, as Redis does.
//! - **listpack** (at most `set-max-listpack-entries` members of at most
//!   `set-max-listpack-value` bytes, Redis 7.2's small-set encoding): one
//!   byte string, a kind byte and the members in insertion order, each a
//!   varint length and its bytes.
//! - **hashtable**: segments of at most [`SEG_MAX`] members or
//!   [`SEG_BYTES`] bytes, `Arc<Table>` holding `Arc<Segment>`s chosen by
//!   the low bits of the member's hash (extendible hashing: a full segment
//!   splits in two, doubling the directory when it must). A running
//!   snapshot holds the segments of a set at its barrier, shared, and
//!   writes them one piece each (docs/FORMATS.md, type 6); a write writes
//!   the segment it is about to change first ([`Set::segment_of`],
//!   `PageTable::get_value_mut_for`), or copies that one segment
//!   (`Arc::make_mut`), never the whole set.
//!   Segments know their hash range and the epoch they last changed in,
//!   the table the epoch it was placed in, so a delta writes only the
//!   segments changed since its base (docs/FORMATS.md, type 9).
//!
//! As Redis: a set grows intset -> listpack -> hashtable (or straight to
//! hashtable) and never converts back while it lives; only a new set
//! (SADD to a missing key, the STORE commands, RESTORE, a snapshot load)
//! picks its encoding afresh.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

use hashbrown::HashTable;

use crate::types::Epochs;
use crate::varint::{get as get_varint, len as varint_len, put as put_varint};
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// The bound on one command of [`Set::recreate`]: SADD of at most this
/// many members...
pub const RECREATE_MEMBERS: usize = 1024;
/// ... and at most this many bytes of members.
pub const RECREATE_BYTES: usize = 1024 * 1024;
/// Members a hashtable segment holds before it splits.
pub const SEG_MAX: usize = 1024;
/// Bytes of members a hashtable segment holds before it splits.
pub const SEG_BYTES: usize = 64 * 1024;
/// The deepest directory (2^24 slots); segments of a set that deep grow
/// instead of splitting.
const MAX_DEPTH: u32 = 24;
/// Seed of the member hash (independent of the key hash).
const SEED: u64 = 0x5e7_5e7_5e7;
/// Bytes a hashtable member costs besides its own (its box, its control
/// byte and the table's spare room), counted in [`Set::heap_size`].
const MEMBER_OVERHEAD: usize = 16 + 8;
/// Bytes a segment costs besides its members.
const SEG_OVERHEAD: usize = 64 + 8;

const KIND_INTSET: u8 = 0;
const KIND_LISTPACK: u8 = 1;

/// The thresholds a shard converts sets at (Redis 7.2's directives and
/// defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `set-max-intset-entries`.
    pub intset_entries: usize,
    /// `set-max-listpack-entries`.
    pub listpack_entries: usize,
    /// `set-max-listpack-value`.
    pub listpack_value: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            intset_entries: 512,
            listpack_entries: 128,
            listpack_value: 64,
        }
    }
}

/// A set value.
#[derive(Debug, Clone)]
pub enum Set {
    /// A small intset inside the value itself (no allocation).
    Small(Small),
    /// intset or listpack: byte 0 says which (see the module docs).
    Compact(Vec<u8>),
    Table(Arc<Table>),
}

/// Bytes of a [`Small`] intset.
const INLINE: usize = 15;

/// An intset small enough to live inside the value (a set is as big as a
/// `Vec` anyway): byte 0 is the count, then the integers ascending, the
/// first as a zigzag varint and each next one as the varint of its gap.
/// Ten integers a few dozen apart take 12 bytes here, against a 24-byte
/// allocation and its pointer as a `Compact` intset. OBJECT ENCODING calls
/// it an intset, which is what it is.
#[derive(Debug, Clone, Copy)]
pub struct Small([u8; INLINE]);

impl Small {
    fn empty() -> Small {
        Small([0; INLINE])
    }

    fn len(&self) -> usize {
        usize::from(self.0.first().copied().unwrap_or(0))
    }

    /// The integers, ascending.
    fn ints(&self) -> Vec<i64> {
        let n = self.len();
        let mut out = Vec::with_capacity(n);
        let mut pos = 1usize;
        let mut prev = 0i64;
        for i in 0..n {
            let Some(x) = get_varint(&self.0, &mut pos) else {
                break;
            };
            prev = if i == 0 {
                ((x >> 1) as i64) ^ -((x & 1) as i64)
            } else {
                prev.wrapping_add(x as i64)
            };
            out.push(prev);
        }
        out
    }

    /// These integers (ascending, distinct) inline, if they fit.
    fn pack(ints: &[i64]) -> Option<Small> {
        let mut b = [0u8; INLINE];
        *b.first_mut()? = u8::try_from(ints.len()).ok()?;
        let mut pos = 1usize;
        let mut prev = 0i64;
        for (i, &v) in ints.iter().enumerate() {
            let mut x = if i == 0 {
                ((v << 1) ^ (v >> 63)) as u64
            } else {
                v.wrapping_sub(prev) as u64
            };
            prev = v;
            loop {
                let byte = if x >= 0x80 { (x as u8) | 0x80 } else { x as u8 };
                *b.get_mut(pos)? = byte;
                pos += 1;
                x >>= 7;
                if byte & 0x80 == 0 {
                    break;
                }
            }
        }
        Some(Small(b))
    }
}

/// A `Compact` intset of these integers (ascending, distinct).
fn intset_of(ints: &[i64]) -> Vec<u8> {
    let w = ints
        .iter()
        .map(|&v| usize::from(width_of(v)))
        .max()
        .unwrap_or(2);
    let mut c = Vec::with_capacity(2 + ints.len() * w);
    c.extend_from_slice(&[KIND_INTSET, w as u8]);
    for v in ints {
        c.extend_from_slice(v.to_le_bytes().get(..w).unwrap_or_default());
    }
    c
}

/// A hashtable set: a directory of `2^depth` slots, each naming the
/// segment that holds the members whose hash's low bits are the slot.
#[derive(Debug, Clone)]
pub struct Table {
    dir: Vec<u32>,
    depth: u32,
    segs: Vec<Arc<Segment>>,
    len: usize,
    /// Bytes of members.
    bytes: usize,
    /// For delta snapshots ([`crate::types::Epochs`]).
    epochs: Epochs,
}

/// One segment: the members whose hash's low `depth` bits are its own.
#[derive(Debug, Clone, Default)]
pub struct Segment {
    depth: u32,
    /// The low `depth` bits of its members' hashes (its range, which a
    /// delta's patch names).
    low: u32,
    /// The epoch it last changed in (a split stamps both halves).
    epoch: u32,
    bytes: usize,
    members: HashTable<Box<[u8]>>,
}

impl Segment {
    /// About the bytes of its piece ([`Segment::write_piece`]).
    pub fn piece_len(&self) -> usize {
        self.bytes + self.members.len() + 10
    }

    /// Its range of member hashes: (depth, low bits).
    pub fn range(&self) -> (u32, u32) {
        (self.depth, self.low)
    }

    /// The epoch it last changed in.
    pub fn epoch(&self) -> u32 {
        self.epoch
    }

    /// Appends its snapshot piece (a segmented set writes one per
    /// segment, docs/FORMATS.md): the member count, then each member as
    /// a varint length and its bytes.
    pub fn write_piece(&self, out: &mut Vec<u8>) {
        put_varint(out, self.members.len() as u64);
        out.reserve(self.bytes + self.members.len());
        for m in &self.members {
            put_varint(out, m.len() as u64);
            out.extend_from_slice(m);
        }
    }
}

#[inline]
fn mhash(m: &[u8]) -> u64 {
    xxh3_64_with_seed(m, SEED)
}

/// The hash a segment's own table is keyed by: the bits the directory
/// does not use come first.
#[inline]
fn inner(h: u64) -> u64 {
    h.rotate_right(32)
}

/// A member's position in SSCAN's cursor space (the low 32 bits of its
/// hash reversed, so a segment is one contiguous range).
#[inline]
fn scan_pos(h: u64) -> u64 {
    u64::from((h as u32).reverse_bits())
}

// ---------------------------------------------------------------------------
// The compact encodings (lengths as varints: `crate::varint`).

/// The width an intset needs for `v`.
fn width_of(v: i64) -> u8 {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// An intset's view: width and the integers' bytes.
struct Ints<'a> {
    w: usize,
    b: &'a [u8],
}

impl Ints<'_> {
    fn len(&self) -> usize {
        self.b.len() / self.w.max(1)
    }

    fn get(&self, i: usize) -> i64 {
        let s = self.b.get(i * self.w..(i + 1) * self.w).unwrap_or_default();
        let mut x = [0u8; 8];
        if let Some(d) = x.get_mut(..s.len()) {
            d.copy_from_slice(s);
        }
        // Sign-extend from the width.
        let bits = (self.w * 8) as u32;
        let v = i64::from_le_bytes(x);
        if bits >= 64 {
            v
        } else {
            (v << (64 - bits)) >> (64 - bits)
        }
    }

    fn search(&self, v: i64) -> Result<usize, usize> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => lo = mid + 1,
                std::cmp::Ordering::Greater => hi = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(lo)
    }

    fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

fn ints(c: &[u8]) -> Ints<'_> {
    Ints {
        w: usize::from(c.get(1).copied().unwrap_or(2)),
        b: c.get(2..).unwrap_or_default(),
    }
}

/// The members of a listpack, as slices.
fn lp_iter(c: &[u8]) -> impl Iterator<Item = &[u8]> + '_ {
    let mut pos = 1usize;
    std::iter::from_fn(move || {
        let len = get_varint(c, &mut pos)? as usize;
        let m = c.get(pos..pos + len)?;
        pos += len;
        Some(m)
    })
}

/// Where a member's record is in a listpack (start of its varint, end).
fn lp_find(c: &[u8], member: &[u8]) -> Option<(usize, usize)> {
    let mut pos = 1usize;
    while pos < c.len() {
        let start = pos;
        let len = get_varint(c, &mut pos)? as usize;
        let m = c.get(pos..pos + len)?;
        pos += len;
        if m == member {
            return Some((start, pos));
        }
    }
    None
}

/// A member as an intset member: Redis's `string2ll` (canonical text).
#[inline]
pub fn as_int(m: &[u8]) -> Option<i64> {
    crate::resp::parse_i64(m)
}

// ---------------------------------------------------------------------------
// The hashtable.

impl Table {
    fn new() -> Table {
        Table {
            dir: vec![0],
            depth: 0,
            segs: vec![Arc::new(Segment::default())],
            len: 0,
            bytes: 0,
            epochs: Epochs::default(),
        }
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        (h as usize) & (self.dir.len() - 1)
    }

    #[inline]
    fn seg_of(&self, h: u64) -> Option<&Arc<Segment>> {
        let i = *self.dir.get(self.slot(h))?;
        self.segs.get(i as usize)
    }

    fn contains(&self, m: &[u8]) -> bool {
        let h = mhash(m);
        self.seg_of(h)
            .is_some_and(|s| s.members.find(inner(h), |x| **x == *m).is_some())
    }

    /// Splits segment `s` in two by the next hash bit (copying it first
    /// if a snapshot shares it: at most one segment's members).
    fn split(&mut self, s: usize) {
        let Some((d, low)) = self.segs.get(s).map(|x| (x.depth, x.low)) else {
            return;
        };
        let epoch = self.epochs.stamp;
        if d == self.depth {
            self.dir.extend_from_within(..);
            self.depth += 1;
        }
        let Some(seg) = self.segs.get_mut(s) else {
            return;
        };
        let old = Arc::make_mut(seg);
        let all = std::mem::take(&mut old.members);
        let (mut a, mut b) = (
            Segment {
                depth: d + 1,
                low,
                epoch,
                ..Segment::default()
            },
            Segment {
                depth: d + 1,
                low: low | (1 << d),
                epoch,
                ..Segment::default()
            },
        );
        for m in all {
            let h = mhash(&m);
            let to = if (h >> d) & 1 == 1 { &mut b } else { &mut a };
            to.bytes += m.len();
            to.members.insert_unique(inner(h), m, |x| inner(mhash(x)));
        }
        *old = a;
        let new = self.segs.len() as u32;
        self.segs.push(Arc::new(b));
        for (i, slot) in self.dir.iter_mut().enumerate() {
            if *slot as usize == s && (i >> d) & 1 == 1 {
                *slot = new;
            }
        }
    }

    /// Adds `m`; false if it was there.
    fn insert(&mut self, m: &[u8]) -> bool {
        let h = mhash(m);
        loop {
            let i = self.slot(h);
            let Some(&s) = self.dir.get(i) else {
                return false;
            };
            let s = s as usize;
            let Some(seg) = self.segs.get(s) else {
                return false;
            };
            if seg.members.find(inner(h), |x| **x == *m).is_some() {
                return false;
            }
            let full = seg.members.len() >= SEG_MAX || seg.bytes >= SEG_BYTES;
            if full && seg.depth < MAX_DEPTH && seg.members.len() >= 2 {
                self.split(s);
                continue;
            }
            let Some(seg) = self.segs.get_mut(s) else {
                return false;
            };
            let seg = Arc::make_mut(seg);
            seg.epoch = self.epochs.stamp;
            seg.bytes += m.len();
            seg.members
                .insert_unique(inner(h), m.into(), |x| inner(mhash(x)));
            self.len += 1;
            self.bytes += m.len();
            return true;
        }
    }

    /// Removes `m`; false if it was not there.
    fn remove(&mut self, m: &[u8]) -> bool {
        let h = mhash(m);
        let Some(&s) = self.dir.get(self.slot(h)) else {
            return false;
        };
        let Some(seg) = self.segs.get_mut(s as usize) else {
            return false;
        };
        if seg.members.find(inner(h), |x| **x == *m).is_none() {
            return false;
        }
        let seg = Arc::make_mut(seg);
        seg.epoch = self.epochs.stamp;
        if let Ok(e) = seg.members.find_entry(inner(h), |x| **x == *m) {
            e.remove();
        }
        seg.bytes -= m.len();
        self.len -= 1;
        self.bytes -= m.len();
        true
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.segs
            .iter()
            .flat_map(|s| s.members.iter().map(|m| &**m))
    }

    fn heap_size(&self) -> usize {
        self.bytes
            + self.len * MEMBER_OVERHEAD
            + self.segs.len() * SEG_OVERHEAD
            + self.dir.len() * 4
    }

    /// A member chosen at random (uniformly: a segment by its share of
    /// the members, then one of its members).
    fn random(&self, rng: &mut dyn FnMut() -> u64) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        for _ in 0..64 {
            let s = self.segs.get((rng() % self.segs.len() as u64) as usize)?;
            let cap = SEG_MAX.max(s.members.len()) as u64;
            let r = (rng() % cap) as usize;
            if r < s.members.len() {
                return s.members.iter().nth(r).map(|m| &**m);
            }
        }
        let mut r = (rng() % self.len as u64) as usize;
        for s in &self.segs {
            if r < s.members.len() {
                return s.members.iter().nth(r).map(|m| &**m);
            }
            r -= s.members.len();
        }
        None
    }
}

// ---------------------------------------------------------------------------
// The set.

impl PartialEq for Set {
    /// Same members (whatever the encoding and order).
    fn eq(&self, other: &Set) -> bool {
        self.len() == other.len() && self.members().all(|m| m.with(|b| other.contains(b)))
    }
}

impl Eq for Set {}

/// A member as it comes out of a set: borrowed bytes or an intset's
/// integer as text.
pub enum Member<'a> {
    Bytes(&'a [u8]),
    Int(i64),
}

impl Member<'_> {
    /// The member's bytes.
    pub fn with<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Bytes(b) => f(b),
            Member::Int(v) => f(itoa::Buffer::new().format(*v).as_bytes()),
        }
    }

    pub fn to_vec(&self) -> Vec<u8> {
        self.with(<[u8]>::to_vec)
    }
}

impl Set {
    /// An empty set in the encoding Redis's `setTypeCreate` picks for a
    /// set that will take `first` and about `hint` members.
    pub fn create(first: &[u8], hint: usize, limits: &Limits) -> Set {
        if as_int(first).is_some() && hint <= limits.intset_entries {
            Set::Small(Small::empty())
        } else if hint <= limits.listpack_entries {
            Set::Compact(vec![KIND_LISTPACK])
        } else {
            Set::Table(Arc::new(Table::new()))
        }
    }

    /// A new set of these members (duplicates ignored), encoded as Redis
    /// would build it by adding them in order (RESTORE, the STORE
    /// commands).
    pub fn from_members<'a>(
        members: impl ExactSizeIterator<Item = &'a [u8]>,
        limits: &Limits,
    ) -> Option<Set> {
        let mut members = members.peekable();
        let first = *members.peek()?;
        let mut s = Set::create(first, members.len(), limits);
        for m in members {
            s.add(m, limits);
        }
        Some(s)
    }

    /// A set in the hashtable encoding (tests, snapshot loads).
    pub fn table_of<'a>(members: impl Iterator<Item = &'a [u8]>) -> Set {
        let mut t = Table::new();
        for m in members {
            t.insert(m);
        }
        Set::Table(Arc::new(t))
    }

    pub fn len(&self) -> usize {
        match self {
            Set::Small(s) => s.len(),
            Set::Compact(c) if c.first() == Some(&KIND_INTSET) => ints(c).len(),
            Set::Compact(c) => lp_iter(c).count(),
            Set::Table(t) => t.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        match self {
            Set::Small(s) => s.len() == 0,
            Set::Compact(c) => c.len() <= 2 && (c.len() == 1 || c.first() == Some(&KIND_INTSET)),
            Set::Table(t) => t.len == 0,
        }
    }

    /// The name OBJECT ENCODING gives it.
    pub fn encoding(&self) -> &'static str {
        match self {
            Set::Small(_) => "intset",
            Set::Compact(c) if c.first() == Some(&KIND_INTSET) => "intset",
            Set::Compact(_) => "listpack",
            Set::Table(_) => "hashtable",
        }
    }

    pub fn is_intset(&self) -> bool {
        match self {
            Set::Small(_) => true,
            Set::Compact(c) => c.first() == Some(&KIND_INTSET),
            Set::Table(_) => false,
        }
    }

    pub fn is_table(&self) -> bool {
        matches!(self, Set::Table(_))
    }

    pub fn contains(&self, m: &[u8]) -> bool {
        match self {
            Set::Small(s) => as_int(m).is_some_and(|v| s.ints().binary_search(&v).is_ok()),
            Set::Compact(c) if c.first() == Some(&KIND_INTSET) => {
                as_int(m).is_some_and(|v| ints(c).search(v).is_ok())
            }
            Set::Compact(c) => lp_find(c, m).is_some(),
            Set::Table(t) => t.contains(m),
        }
    }

    /// The members, in the encoding's order (ascending for an intset,
    /// insertion order for a listpack, the table's own for a hashtable).
    pub fn members(&self) -> Box<dyn Iterator<Item = Member<'_>> + '_> {
        match self {
            Set::Compact(c) if c.first() == Some(&KIND_INTSET) => {
                let is = ints(c);
                Box::new((0..is.len()).map(move |i| Member::Int(is.get(i))))
            }
            Set::Small(s) => Box::new(s.ints().into_iter().map(Member::Int)),
            Set::Compact(c) => Box::new(lp_iter(c).map(Member::Bytes)),
            Set::Table(t) => Box::new(t.iter().map(Member::Bytes)),
        }
    }

    /// The members, copied.
    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.members().map(|m| m.to_vec()).collect()
    }

    /// Converts to a hashtable (sized for `extra` more members).
    fn convert_to_table(&mut self) {
        let mut t = Table::new();
        for m in self.members() {
            m.with(|b| t.insert(b));
        }
        *self = Set::Table(Arc::new(t));
    }

    /// Adds a member, converting at the thresholds as Redis 7.2's
    /// `setTypeAdd`; false if it was there.
    pub fn add(&mut self, m: &[u8], limits: &Limits) -> bool {
        match self {
            Set::Small(s) => {
                let mut all = s.ints();
                let v = as_int(m);
                if let Some(v) = v {
                    let Err(at) = all.binary_search(&v) else {
                        return false;
                    };
                    all.insert(at, v);
                    if all.len() <= limits.intset_entries {
                        if let Some(p) = Small::pack(&all) {
                            *s = p;
                            return true;
                        }
                    }
                    all.remove(at);
                }
                // Past what fits inline (or not an integer): the same set
                // as a `Compact` intset takes the member, converting as
                // it must.
                *self = Set::Compact(intset_of(&all));
                self.add(m, limits)
            }
            Set::Compact(c) if c.first() == Some(&KIND_INTSET) => {
                if let Some(v) = as_int(m) {
                    let is = ints(c);
                    let Err(at) = is.search(v) else {
                        return false;
                    };
                    let w = usize::from(width_of(v)).max(is.w);
                    if w != is.w {
                        let mut n = Vec::with_capacity(2 + (is.len() + 1) * w);
                        n.extend_from_slice(&[KIND_INTSET, w as u8]);
                        for (i, x) in is.iter().enumerate() {
                            if i == at {
                                n.extend_from_slice(v.to_le_bytes().get(..w).unwrap_or_default());
                            }
                            n.extend_from_slice(x.to_le_bytes().get(..w).unwrap_or_default());
                        }
                        if at == is.len() {
                            n.extend_from_slice(v.to_le_bytes().get(..w).unwrap_or_default());
                        }
                        *c = n;
                    } else {
                        let off = 2 + at * w;
                        let bytes = v.to_le_bytes();
                        let new = bytes.get(..w).unwrap_or_default();
                        // Compact sets are many and small: no spare room.
                        c.reserve_exact(w);
                        c.splice(off..off, new.iter().copied());
                    }
                    if self.len() > limits.intset_entries {
                        self.convert_to_table();
                    }
                    return true;
                }
                // A non-integer: a listpack if it stays within the
                // listpack limits (as Redis: counting each integer at its
                // widest text), else a hashtable.
                let is = ints(c);
                let n = is.len();
                let widest = [is.iter().next(), is.iter().last()]
                    .into_iter()
                    .flatten()
                    .map(|v| itoa::Buffer::new().format(v).len())
                    .max()
                    .unwrap_or(0);
                if n < limits.listpack_entries
                    && m.len() <= limits.listpack_value
                    && widest <= limits.listpack_value
                {
                    let mut lp = vec![KIND_LISTPACK];
                    for v in is.iter() {
                        let mut b = itoa::Buffer::new();
                        let t = b.format(v).as_bytes();
                        put_varint(&mut lp, t.len() as u64);
                        lp.extend_from_slice(t);
                    }
                    put_varint(&mut lp, m.len() as u64);
                    lp.extend_from_slice(m);
                    *c = lp;
                } else {
                    self.convert_to_table();
                    if let Set::Table(t) = self {
                        Arc::make_mut(t).insert(m);
                    }
                }
                true
            }
            Set::Compact(c) => {
                if lp_find(c, m).is_some() {
                    return false;
                }
                if lp_iter(c).count() < limits.listpack_entries && m.len() <= limits.listpack_value
                {
                    c.reserve_exact(m.len() + varint_len(m.len() as u64));
                    put_varint(c, m.len() as u64);
                    c.extend_from_slice(m);
                } else {
                    self.convert_to_table();
                    if let Set::Table(t) = self {
                        Arc::make_mut(t).insert(m);
                    }
                }
                true
            }
            Set::Table(t) => {
                if t.contains(m) {
                    return false;
                }
                Arc::make_mut(t).insert(m)
            }
        }
    }

    /// Removes a member; false if it was not there.
    pub fn remove(&mut self, m: &[u8]) -> bool {
        match self {
            Set::Small(s) => {
                let mut all = s.ints();
                let Some(Ok(at)) = as_int(m).map(|v| all.binary_search(&v)) else {
                    return false;
                };
                all.remove(at);
                *self = match Small::pack(&all) {
                    Some(p) => Set::Small(p),
                    None => Set::Compact(intset_of(&all)),
                };
                true
            }
            Set::Compact(c) if c.first() == Some(&KIND_INTSET) => {
                let is = ints(c);
                let w = is.w;
                let Some(Ok(at)) = as_int(m).map(|v| is.search(v)) else {
                    return false;
                };
                let off = 2 + at * w;
                c.drain(off..off + w);
                // Small enough again to live inline.
                if ints(c).len() < INLINE {
                    if let Some(p) = Small::pack(&ints(c).iter().collect::<Vec<_>>()) {
                        *self = Set::Small(p);
                    }
                }
                true
            }
            Set::Compact(c) => match lp_find(c, m) {
                Some((a, z)) => {
                    c.drain(a..z);
                    true
                }
                None => false,
            },
            Set::Table(t) => t.contains(m) && Arc::make_mut(t).remove(m),
        }
    }

    /// A member chosen at random, copied.
    pub fn random(&self, rng: &mut dyn FnMut() -> u64) -> Option<Vec<u8>> {
        let n = self.len();
        if n == 0 {
            return None;
        }
        match self {
            Set::Table(t) => t.random(rng).map(<[u8]>::to_vec),
            _ => {
                let i = (rng() % n as u64) as usize;
                self.members().nth(i).map(|m| m.to_vec())
            }
        }
    }

    /// Approximate heap bytes used (kept up to date by every change: a
    /// compact set's capacity, a table's counted members and segments).
    pub fn heap_size(&self) -> usize {
        match self {
            Set::Small(_) => 0,
            Set::Compact(c) => c.capacity(),
            Set::Table(t) => t.heap_size(),
        }
    }

    /// Bytes of data the set holds (its members, and a byte each).
    pub fn data_len(&self) -> usize {
        match self {
            Set::Small(_) => INLINE,
            Set::Compact(c) => c.len(),
            Set::Table(t) => t.bytes + t.len,
        }
    }

    /// Allocations dropping it frees.
    pub fn free_effort(&self) -> usize {
        match self {
            Set::Small(_) | Set::Compact(_) => 1,
            Set::Table(t) => t.len + t.segs.len() + 1,
        }
    }

    /// SSCAN's step over a hashtable from `cursor`: the members of whole
    /// segments, in cursor order, until at least `count` were taken, and
    /// the cursor to go on from (0: done). Compact sets return every
    /// member and cursor 0, as Redis.
    pub fn scan(&self, cursor: u64, count: usize, mut f: impl FnMut(&[u8])) -> u64 {
        let Set::Table(t) = self else {
            self.members().for_each(|m| m.with(&mut f));
            return 0;
        };
        let mut c = cursor;
        let mut taken = 0;
        while c < (1u64 << 32) {
            let hlow = u64::from((c as u32).reverse_bits());
            let Some(seg) = t.seg_of(hlow) else {
                return 0;
            };
            let span = 1u64 << (32 - seg.depth.min(32));
            let start = c & !(span - 1);
            for m in seg.members.iter() {
                if scan_pos(mhash(m)) >= c {
                    f(m);
                    taken += 1;
                }
            }
            c = start + span;
            if taken >= count {
                break;
            }
        }
        if c >= (1u64 << 32) {
            0
        } else {
            c
        }
    }

    /// The number of the segment of a hashtable that holds (or would
    /// hold) member `m` (None for a compact set): adding or removing `m`
    /// changes that segment alone (and, if it splits it, a new one past
    /// the others).
    pub fn segment_of(&self, m: &[u8]) -> Option<usize> {
        match self {
            Set::Table(t) => t.dir.get(t.slot(mhash(m))).map(|&s| s as usize),
            Set::Small(_) | Set::Compact(_) => None,
        }
    }

    /// A hashtable set from its snapshot pieces ([`Segment::write_piece`],
    /// in any order), checked: None if a piece is malformed, a member
    /// repeats, or the members are not `count` (at least one).
    pub fn from_pieces<'a>(pieces: impl Iterator<Item = &'a [u8]>, count: u64) -> Option<Set> {
        if count == 0 {
            return None;
        }
        let mut t = Table::new();
        for b in pieces {
            let mut pos = 0usize;
            let n = get_varint(b, &mut pos)?;
            for _ in 0..n {
                let len = usize::try_from(get_varint(b, &mut pos)?).ok()?;
                let m = b.get(pos..pos.checked_add(len)?)?;
                pos += len;
                if !t.insert(m) || t.len as u64 > count {
                    return None;
                }
            }
            if pos != b.len() {
                return None;
            }
        }
        (t.len as u64 == count).then_some(Set::Table(Arc::new(t)))
    }

    /// Its epochs for delta snapshots (None for a compact set).
    pub fn epochs(&self) -> Option<Epochs> {
        match self {
            Set::Table(t) => Some(t.epochs),
            Set::Small(_) | Set::Compact(_) => None,
        }
    }

    /// The seed its members are placed in segments by.
    pub fn seed() -> u64 {
        SEED
    }

    fn set_epochs(&mut self, f: impl FnOnce(&mut Epochs)) {
        if let Set::Table(t) = self {
            let mut e = t.epochs;
            f(&mut e);
            if e != t.epochs {
                Arc::make_mut(t).epochs = e;
            }
        }
    }

    /// Stamps the epoch the segments the next change touches are marked
    /// with ([`crate::types::Epochs`]; a compact set keeps none).
    pub fn stamp(&mut self, epoch: u64) {
        self.set_epochs(|e| e.stamp(epoch));
    }

    /// Notes that it is placed whole at a key in `epoch`.
    pub fn place(&mut self, epoch: u64) {
        self.set_epochs(|e| e.place(epoch));
    }

    /// [`Set::place`] for one not placed yet (converted by a change).
    pub fn place_if_new(&mut self, epoch: u64) {
        self.set_epochs(|e| e.place_if_new(epoch));
    }

    /// The set a delta's patch (docs/FORMATS.md, type 9) makes of `base`
    /// (the key's value in an older file, in any encoding), as
    /// [`crate::types::Hash::patched`]: `base` without its members whose
    /// hash under `seed` falls in one of `ranges`, plus the members of
    /// `pieces` (one per range, each inside it), `count` in all.
    pub fn patched(
        base: &Set,
        seed: u64,
        ranges: &[(u8, u64)],
        pieces: &[&[u8]],
        count: u64,
    ) -> Result<Set, String> {
        let changed = crate::types::Ranges::new(ranges);
        let hit = |m: &[u8]| changed.holds(xxh3_64_with_seed(m, seed));
        let mut t = match base {
            Set::Table(t) => {
                let mut t = Arc::clone(t);
                let gone: Vec<Vec<u8>> = t.iter().filter(|m| hit(m)).map(<[u8]>::to_vec).collect();
                if !gone.is_empty() {
                    let tm = Arc::make_mut(&mut t);
                    for m in gone {
                        tm.remove(&m);
                    }
                }
                t
            }
            _ => {
                let mut t = Table::new();
                for m in base.members() {
                    m.with(|b| {
                        if !hit(b) {
                            t.insert(b);
                        }
                    });
                }
                Arc::new(t)
            }
        };
        if ranges.len() != pieces.len() {
            return Err("its ranges and its pieces differ in number".to_owned());
        }
        let tm = Arc::make_mut(&mut t);
        for (&(depth, low), b) in ranges.iter().zip(pieces) {
            let bad = || "a malformed segment".to_owned();
            let mut pos = 0usize;
            let n = get_varint(b, &mut pos).ok_or_else(bad)?;
            for _ in 0..n {
                let len = get_varint(b, &mut pos)
                    .and_then(|l| usize::try_from(l).ok())
                    .ok_or_else(bad)?;
                let m = pos
                    .checked_add(len)
                    .and_then(|end| b.get(pos..end))
                    .ok_or_else(bad)?;
                pos += len;
                if crate::types::low_bits(xxh3_64_with_seed(m, seed), depth) != low {
                    return Err("a member outside its segment's range".to_owned());
                }
                if !tm.insert(m) {
                    return Err("a member twice".to_owned());
                }
                if tm.len as u64 > count {
                    return Err(format!("more members than the {count} it says"));
                }
            }
            if pos != b.len() {
                return Err(bad());
            }
        }
        if tm.len as u64 != count {
            return Err(format!(
                "its base and its segments make {} members, not the {count} it says",
                tm.len
            ));
        }
        Ok(Set::Table(t))
    }

    /// A hashtable's segments (None for a compact set).
    pub fn segments(&self) -> Option<&[Arc<Segment>]> {
        match self {
            Set::Table(t) => Some(&t.segs),
            Set::Small(_) | Set::Compact(_) => None,
        }
    }

    /// Whether it is held in shared segments (a copy-before-write keeps a
    /// clone, not its bytes).
    pub fn is_chunked(&self) -> bool {
        self.is_table()
    }

    /// The commands that recreate it at `key` with absolute expiry
    /// `expire_at` (0: none): DEL of whatever `key` held (SADD would add
    /// to a set there, where a string's SET replaces), SADDs of at most
    /// [`RECREATE_MEMBERS`] members and [`RECREATE_BYTES`] bytes each,
    /// then PEXPIREAT.
    pub fn recreate(&self, key: &[u8], expire_at: u64, mut f: impl FnMut(&[&[u8]])) {
        f(&[b"DEL", key]);
        let mut batch: Vec<Vec<u8>> = Vec::new();
        let mut bytes = 0;
        let mut flush = |batch: &mut Vec<Vec<u8>>| {
            let mut args: Vec<&[u8]> = vec![b"SADD", key];
            args.extend(batch.iter().map(Vec::as_slice));
            f(&args);
            batch.clear();
        };
        for m in self.members() {
            let m = m.to_vec();
            if !batch.is_empty()
                && (batch.len() >= RECREATE_MEMBERS || bytes + m.len() > RECREATE_BYTES)
            {
                flush(&mut batch);
                bytes = 0;
            }
            bytes += m.len();
            batch.push(m);
        }
        if !batch.is_empty() {
            flush(&mut batch);
        }
        if expire_at != 0 {
            let at = itoa::Buffer::new().format(expire_at).to_owned();
            f(&[b"PEXPIREAT", key, at.as_bytes()]);
        }
    }

    /// The snapshot encoding of the set (after its type tag and length):
    /// its encoding byte (0 intset, 1 listpack, 2 hashtable), the member
    /// count, then each member as a varint length and its bytes.
    pub fn encode(&self, buf: &mut Vec<u8>) {
        buf.push(match self {
            Set::Small(_) => KIND_INTSET,
            Set::Compact(c) => c.first().copied().unwrap_or(KIND_LISTPACK),
            Set::Table(_) => 2,
        });
        put_varint(buf, self.len() as u64);
        for m in self.members() {
            m.with(|b| {
                put_varint(buf, b.len() as u64);
                buf.extend_from_slice(b);
            });
        }
    }

    /// Bytes [`Set::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let mut n = 1 + varint_len(self.len() as u64);
        for m in self.members() {
            n += m.with(|b| b.len() + varint_len(b.len() as u64));
        }
        n
    }

    /// Reads [`Set::encode`]'s bytes back, in the same encoding; None if
    /// they are malformed (a bad count, a duplicate, an intset member that
    /// is not an integer, bytes left over, an empty set).
    pub fn decode(b: &[u8]) -> Option<Set> {
        let mut pos = 0usize;
        let kind = *b.first()?;
        pos += 1;
        let n = get_varint(b, &mut pos)?;
        if n == 0 {
            return None;
        }
        let mut s = match kind {
            KIND_INTSET => Set::Small(Small::empty()),
            KIND_LISTPACK => Set::Compact(vec![KIND_LISTPACK]),
            2 => Set::Table(Arc::new(Table::new())),
            _ => return None,
        };
        let unlimited = Limits {
            intset_entries: usize::MAX,
            listpack_entries: usize::MAX,
            listpack_value: usize::MAX,
        };
        for _ in 0..n {
            let len = usize::try_from(get_varint(b, &mut pos)?).ok()?;
            let m = b.get(pos..pos.checked_add(len)?)?;
            pos += len;
            if kind == KIND_INTSET && as_int(m).is_none() {
                return None;
            }
            if !s.add(m, &unlimited) {
                return None;
            }
        }
        (pos == b.len()).then_some(s)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;
    use std::collections::BTreeSet;

    fn sorted(s: &Set) -> Vec<Vec<u8>> {
        let mut v = s.to_vecs();
        v.sort();
        v
    }

    /// A set fits in a `Vec`'s size (the table's `Arc` in its niche), so
    /// sets do not make every `Value` bigger.
    #[test]
    fn a_set_is_as_small_as_a_vec() {
        assert_eq!(std::mem::size_of::<Set>(), std::mem::size_of::<Vec<u8>>());
        assert!(std::mem::size_of::<crate::types::Value>() <= 32);
    }

    /// Intsets inline and in a `Vec` behave as one sorted set of integers
    /// through random adds and removes of near and far values, moving
    /// between the two forms as they fit.
    #[test]
    fn small_and_compact_intsets_match_a_btreeset() {
        let l = Limits::default();
        let mut x = 99u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let (mut inline, mut vec) = (0, 0);
        for round in 0..200 {
            let mut s = Set::create(b"1", 1, &l);
            let mut want = BTreeSet::new();
            for _ in 0..60 {
                let r = next();
                let v: i64 = match r % 4 {
                    0 => (r % 40) as i64,
                    1 => (r % 1000) as i64 - 500,
                    2 => [i64::MIN, i64::MAX, -1, 0][(r / 4 % 4) as usize],
                    _ => r as i64,
                };
                let m = v.to_string().into_bytes();
                if next() % 3 == 0 {
                    assert_eq!(s.remove(&m), want.remove(&v), "round {round}");
                } else {
                    assert_eq!(s.add(&m, &l), want.insert(v), "round {round}");
                }
                assert_eq!(s.len(), want.len());
                assert_eq!(s.encoding(), "intset");
                match &s {
                    Set::Small(_) => inline += 1,
                    _ => vec += 1,
                }
                let got: Vec<i64> = s
                    .to_vecs()
                    .iter()
                    .map(|m| std::str::from_utf8(m).unwrap().parse().unwrap())
                    .collect();
                assert_eq!(got, want.iter().copied().collect::<Vec<_>>());
                assert!(s.contains(v.to_string().as_bytes()) == want.contains(&v));
            }
        }
        assert!(inline > 100 && vec > 100, "both forms: {inline} {vec}");
        // Ten integers a few dozen apart live inline, with no allocation.
        let mut s = Set::create(b"1", 10, &l);
        for i in 0..10 {
            s.add((i * 37).to_string().as_bytes(), &l);
        }
        assert!(matches!(s, Set::Small(_)));
        assert_eq!(s.heap_size(), 0);
    }

    #[test]
    fn intset_grows_widths_and_stays_sorted() {
        let l = Limits::default();
        let mut s = Set::create(b"5", 1, &l);
        for v in [5i64, -3, 40000, 7, i64::MIN, i64::MAX, 0, -70000, 5] {
            s.add(v.to_string().as_bytes(), &l);
        }
        assert_eq!(s.encoding(), "intset");
        let got: Vec<i64> = s
            .to_vecs()
            .iter()
            .map(|m| std::str::from_utf8(m).unwrap().parse().unwrap())
            .collect();
        let mut want = vec![5, -3, 40000, 7, i64::MIN, i64::MAX, 0, -70000];
        want.sort();
        assert_eq!(got, want);
        assert!(s.contains(b"-70000"));
        assert!(!s.contains(b"-070000"));
        assert!(s.remove(b"40000"));
        assert!(!s.remove(b"40000"));
        assert_eq!(s.len(), 7);
    }

    #[test]
    fn conversions_follow_the_limits() {
        let l = Limits::default();
        // intset -> listpack on a short string, -> hashtable past 128.
        let mut s = Set::create(b"1", 1, &l);
        s.add(b"1", &l);
        s.add(b"abc", &l);
        assert_eq!(s.encoding(), "listpack");
        assert_eq!(s.to_vecs(), vec![b"1".to_vec(), b"abc".to_vec()]);
        for i in 0..126 {
            s.add(format!("m{i}").as_bytes(), &l);
        }
        assert_eq!((s.len(), s.encoding()), (128, "listpack"));
        s.add(b"one more", &l);
        assert_eq!((s.len(), s.encoding()), (129, "hashtable"));
        // intset -> hashtable past 512 integers.
        let mut s = Set::create(b"1", 1, &l);
        for i in 0..512 {
            s.add(i.to_string().as_bytes(), &l);
        }
        assert_eq!(s.encoding(), "intset");
        s.add(b"512", &l);
        assert_eq!((s.len(), s.encoding()), (513, "hashtable"));
        // A long member goes straight to a hashtable.
        let mut s = Set::create(b"1", 1, &l);
        s.add(b"1", &l);
        s.add(&[b'x'; 65], &l);
        assert_eq!(s.encoding(), "hashtable");
        // Never back.
        s.remove(&[b'x'; 65]);
        assert_eq!(s.encoding(), "hashtable");
    }

    #[test]
    fn table_matches_a_btreeset_through_splits() {
        let l = Limits::default();
        let mut s = Set::table_of(std::iter::empty());
        let mut want = BTreeSet::new();
        let mut x = 12345u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let m = format!("k{}", x % 6000).into_bytes();
            if x.is_multiple_of(3) {
                assert_eq!(s.remove(&m), want.remove(&m));
            } else {
                assert_eq!(s.add(&m, &l), want.insert(m.clone()));
            }
        }
        assert_eq!(s.len(), want.len());
        assert_eq!(sorted(&s), want.iter().cloned().collect::<Vec<_>>());
        let Set::Table(t) = &s else { panic!() };
        assert!(t.segs.len() > 2, "it split");
        assert!(t.segs.iter().all(|g| g.members.len() <= SEG_MAX));
        // SSCAN covers every member once, in small steps.
        let mut seen = Vec::new();
        let mut c = 0;
        loop {
            c = s.scan(c, 10, |m| seen.push(m.to_vec()));
            if c == 0 {
                break;
            }
        }
        seen.sort();
        assert_eq!(seen, want.iter().cloned().collect::<Vec<_>>());
    }

    #[test]
    fn a_write_to_a_shared_table_copies_one_segment() {
        let mut s = Set::table_of(std::iter::empty());
        let l = Limits::default();
        for i in 0..100_000 {
            s.add(format!("member:{i}").as_bytes(), &l);
        }
        let kept = s.clone();
        s.add(b"new one", &l);
        let (Set::Table(a), Set::Table(b)) = (&s, &kept) else {
            panic!()
        };
        let shared = a
            .segs
            .iter()
            .zip(&b.segs)
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(
            shared,
            b.segs.len() - 1,
            "only the written segment is copied"
        );
        assert_eq!(kept.len(), 100_000);
        assert!(!kept.contains(b"new one"));
        assert!(s.contains(b"new one"));
    }

    #[test]
    fn encode_round_trips_each_encoding() {
        let l = Limits::default();
        let small = Set::from_members([&b"3"[..], b"-1"].into_iter(), &l).unwrap();
        let lp = Set::from_members([&b"a"[..], b"b", b"7"].into_iter(), &l).unwrap();
        let big: Vec<Vec<u8>> = (0..3000).map(|i| format!("x{i}").into_bytes()).collect();
        let table = Set::from_members(big.iter().map(Vec::as_slice), &l).unwrap();
        for s in [small, lp, table] {
            let mut b = Vec::new();
            s.encode(&mut b);
            assert_eq!(b.len(), s.encoded_len());
            let back = Set::decode(&b).unwrap();
            assert_eq!(back, s);
            assert_eq!(back.encoding(), s.encoding());
            if s.is_table() {
                assert_eq!(sorted(&back), sorted(&s));
            } else {
                assert_eq!(back.to_vecs(), s.to_vecs(), "same order");
            }
            assert!(Set::decode(&b[..b.len() - 1]).is_none());
        }
        assert!(
            Set::decode(&[0, 2, 1, b'1', 1, b'1']).is_none(),
            "duplicate"
        );
        assert!(Set::decode(&[0, 1, 1, b'x']).is_none(), "not an integer");
        assert!(Set::decode(&[1, 0]).is_none(), "empty");
    }

    #[test]
    fn recreate_is_bounded() {
        let l = Limits::default();
        let big: Vec<Vec<u8>> = (0..2500).map(|i| format!("x{i}").into_bytes()).collect();
        let s = Set::from_members(big.iter().map(Vec::as_slice), &l).unwrap();
        let mut got = BTreeSet::new();
        let mut cmds = Vec::new();
        s.recreate(b"k", 77, |args| {
            cmds.push(String::from_utf8_lossy(args[0]).into_owned());
            if args[0] == b"SADD" {
                assert!(args.len() - 2 <= RECREATE_MEMBERS);
                got.extend(args[2..].iter().map(|m| m.to_vec()));
            } else if args[0] == b"DEL" {
                assert_eq!(args, &[&b"DEL"[..], b"k"]);
            } else {
                assert_eq!(args, &[&b"PEXPIREAT"[..], b"k", b"77"]);
            }
        });
        assert_eq!(cmds, ["DEL", "SADD", "SADD", "SADD", "PEXPIREAT"]);
        assert_eq!(got.len(), 2500);
    }
}
