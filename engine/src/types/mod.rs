//! The value types, one module each: the seam every other part of the
//! engine asks about a value (its type name, encodings, memory size,
//! snapshot encoding, the commands that recreate it, the work of freeing
//! it) instead of matching on it. A new type is one module here plus its
//! command rows.
//!
//! - [`string`]: strings, plain or in shared chunks.

pub mod string;

pub use string::Str;

/// A stored value. Only strings exist so far; the other Redis types join as
/// their command families arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Str),
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
        }
    }

    /// The name OBJECT ENCODING gives the value's current encoding.
    pub fn encoding(&self) -> &'static str {
        match self {
            Value::Str(s) => s.encoding(),
        }
    }

    /// Approximate heap bytes used, for page size accounting and INFO
    /// memory; kept up to date by every change (never a walk).
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.heap_size(),
        }
    }

    /// Bytes of data the value holds (a string's length).
    #[inline]
    pub fn data_len(&self) -> usize {
        match self {
            Value::Str(s) => s.len(),
        }
    }

    /// How much work dropping the value is: the number of its allocations
    /// (1 for a small string, its chunk count for a chunked one). A value
    /// worth freeing off the event loop has a large one.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::Str(s) => s.free_effort(),
        }
    }

    /// Whether the value is held in shared chunks (a copy-before-write
    /// keeps a clone of it, not its bytes).
    #[inline]
    pub fn is_chunked(&self) -> bool {
        match self {
            Value::Str(s) => s.as_chunked().is_some(),
        }
    }

    /// Stamps the epoch that the parts the next change touches are marked
    /// with (the page table's, before it hands the value out to change).
    #[inline]
    pub fn stamp(&mut self, epoch: u64) {
        match self {
            Value::Str(s) => s.stamp(epoch),
        }
    }

    /// The commands that recreate the value at `key` with absolute expiry
    /// `expire_at` (0: none), each argument bounded (cross-shard RENAME,
    /// MOVE, `export-aof`). `f` gets each command's arguments.
    pub fn recreate(&self, key: &[u8], expire_at: u64, f: impl FnMut(&[&[u8]])) {
        match self {
            Value::Str(s) => s.recreate(key, expire_at, f),
        }
    }
}
