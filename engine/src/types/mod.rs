//! The value types, one module each: the seam every other part of the
//! engine asks about a value (its type name, encodings, memory size,
//! snapshot encoding, the commands that recreate it, the work of freeing
//! it) instead of matching on it. A new type is one module here plus its
//! command rows.
//!
//! - [`string`]: strings, plain or in shared chunks.
//! - [`hash`]: hashes, a listpack or a hashtable in shared segments.
//! - [`set`]: sets: intset, listpack, or a hashtable in shared segments.

pub mod hash;
pub mod set;
pub mod string;

pub use hash::Hash;
pub use set::Set;
pub use string::Str;

/// The epochs a hashtable hash or set keeps for delta snapshots (as a
/// chunked string's, [`string::Chunked`], in 32 bits each, saturating):
/// `stamp` is the epoch the segments the next change touches are marked
/// with (set by the page table before it hands the value out), `born` the
/// epoch the value was placed whole at its key in
/// ([`string::UNPLACED`] until it is). A delta whose base is at or after
/// `born` writes only the segments whose epoch is later than the base
/// (docs/FORMATS.md, "Patches").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Epochs {
    pub stamp: u32,
    pub born: u32,
}

impl Default for Epochs {
    fn default() -> Epochs {
        Epochs {
            stamp: 0,
            born: string::UNPLACED,
        }
    }
}

impl Epochs {
    /// The epoch the value was placed whole in, if it was and neither
    /// epoch saturated ([`string::Chunked::placed`]).
    pub fn placed(&self) -> Option<u64> {
        (self.born < string::EPOCH_SATURATED && self.stamp < string::EPOCH_SATURATED)
            .then_some(u64::from(self.born))
    }

    /// Whether [`Epochs::stamp`] would change them (so a shared value is
    /// copied only when it must).
    pub fn stamp_differs(&self, epoch: u64) -> bool {
        self.stamp != string::small_epoch(epoch)
    }

    pub fn stamp(&mut self, epoch: u64) {
        self.stamp = string::small_epoch(epoch);
    }

    pub fn place(&mut self, epoch: u64) {
        self.born = string::small_epoch(epoch);
    }

    pub fn place_if_new(&mut self, epoch: u64) {
        if self.born == string::UNPLACED {
            self.born = string::small_epoch(epoch);
        }
    }
}

/// The low `depth` bits of `h` (all of it from 64 on).
#[inline]
pub fn low_bits(h: u64, depth: u8) -> u64 {
    if depth >= 64 {
        h
    } else {
        h & ((1u64 << depth) - 1)
    }
}

/// The segment ranges a delta's patch of a hash or set names (each a
/// depth and the low bits of the element hashes it holds), grouped by
/// depth so that [`Ranges::holds`] is a lookup per distinct depth.
#[derive(Debug, Default)]
pub struct Ranges(Vec<(u8, hashbrown::HashSet<u64>)>);

impl Ranges {
    pub fn new(ranges: &[(u8, u64)]) -> Ranges {
        let mut r = Ranges::default();
        for &(d, low) in ranges {
            match r.0.iter_mut().find(|(x, _)| *x == d) {
                Some((_, set)) => {
                    set.insert(low);
                }
                None => r.0.push((d, std::iter::once(low).collect())),
            }
        }
        r
    }

    /// Whether an element of hash `h` is in one of the ranges.
    pub fn holds(&self, h: u64) -> bool {
        self.0.iter().any(|(d, set)| set.contains(&low_bits(h, *d)))
    }
}

/// A stored value: strings, hashes and sets so far; the other Redis types
/// join as their command families arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Str),
    Hash(Hash),
    Set(Set),
}

impl Value {
    /// A string value of these bytes.
    #[inline]
    pub fn string(bytes: impl Into<Str>) -> Value {
        Value::Str(bytes.into())
    }

    /// The name `TYPE` replies with (and SCAN's TYPE option matches).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
        }
    }

    /// The name OBJECT ENCODING gives the value's current encoding.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
            Value::Hash(h) => h.encoding(),
            Value::Set(s) => s.encoding(),
        }
    }

    /// Approximate heap bytes used, for page size accounting and INFO
    /// memory; kept up to date by every change (never a walk).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
            Value::Hash(h) => h.heap_size(),
            Value::Set(s) => s.heap_size(),
        }
    }

    /// Bytes of data the value holds (a string's length; a hash's
    /// snapshot encoding).
    #[inline]
    pub fn data_len(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
            Value::Hash(h) => h.snapshot_len(),
            Value::Set(s) => s.data_len(),
        }
    }

    /// How much work dropping the value is: the number of its allocations
    /// (1 for a small string, its chunk count for a chunked one). A value
    /// worth freeing off the event loop has a large one.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::Str(s) => s.free_effort(),
            Value::Hash(h) => h.free_effort(),
            Value::Set(s) => s.free_effort(),
        }
    }

    /// Whether the value is held in shared chunks (a copy-before-write
    /// keeps a clone of it, not its bytes).
    #[inline]
    pub fn is_chunked(&self) -> bool {
        match self {
            Value::Str(s) => s.as_chunked().is_some(),
            Value::Hash(h) => h.as_table().is_some(),
            Value::Set(s) => s.is_chunked(),
        }
    }

    /// The segment of a hashtable hash or set that a write of `element`
    /// (a field, a member) changes; None for other values.
    pub fn segment_of(&self, element: &[u8]) -> Option<usize> {
        match self {
            Value::Str(_) => None,
            Value::Hash(h) => h.as_table().map(|t| t.segment_of(element)),
            Value::Set(s) => s.segment_of(element),
        }
    }

    /// Stamps the epoch that the parts the next change touches are marked
    /// with (the page table's, before it hands the value out to change).
    #[inline]
    pub fn stamp(&mut self, epoch: u64) {
        match self {
            Value::Str(s) => s.stamp(epoch),
            Value::Hash(h) => h.stamp(epoch),
            Value::Set(s) => s.stamp(epoch),
        }
    }

    /// Notes that the value is placed whole at a key in `epoch`
    /// ([`Str::place`]; a hashtable hash or set keeps it too).
    #[inline]
    pub fn place(&mut self, epoch: u64) {
        match self {
            Value::Str(s) => s.place(epoch),
            Value::Hash(h) => h.place(epoch),
            Value::Set(s) => s.place(epoch),
        }
    }

    /// [`Value::place`] for a value not placed yet ([`Str::place_if_new`]).
    #[inline]
    pub fn place_if_new(&mut self, epoch: u64) {
        match self {
            Value::Str(s) => s.place_if_new(epoch),
            Value::Hash(h) => h.place_if_new(epoch),
            Value::Set(s) => s.place_if_new(epoch),
        }
    }

    /// What OBJECT REFCOUNT says of it: Redis shares the integers 0..9999
    /// among keys (when no `maxmemory` is set) and names their count
    /// 2147483647; every other value has one reference.
    pub fn refcount(&self) -> i64 {
        match self {
            Value::Str(s) => s.refcount(),
            Value::Hash(_) | Value::Set(_) => 1,
        }
    }

    /// The commands that recreate the value at `key` with absolute expiry
    /// `expire_at` (0: none), each argument bounded (cross-shard RENAME,
    /// MOVE, `export-aof`). `f` gets each command's arguments.
    pub fn recreate(&self, key: &[u8], expire_at: u64, f: impl FnMut(&[&[u8]])) {
        match self {
            Value::Str(s) => s.recreate(key, expire_at, f),
            Value::Hash(h) => h.recreate(key, expire_at, f),
            Value::Set(s) => s.recreate(key, expire_at, f),
        }
    }
}
