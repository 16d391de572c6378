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
            Value::Hash(_) => {}
            Value::Set(_) => {}
        }
    }

    /// Notes that the value is placed whole at a key in `epoch`
    /// ([`Str::place`]; hashes and sets keep no such epoch).
    #[inline]
    pub fn place(&mut self, epoch: u64) {
        if let Value::Str(s) = self {
            s.place(epoch);
        }
    }

    /// [`Value::place`] for a value not placed yet ([`Str::place_if_new`]).
    #[inline]
    pub fn place_if_new(&mut self, epoch: u64) {
        if let Value::Str(s) = self {
            s.place_if_new(epoch);
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
