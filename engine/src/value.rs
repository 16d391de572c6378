//! What a key holds.

/// A stored value. Only strings exist so far; the other Redis types join as
/// their command families arrive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(Vec<u8>),
}

impl Value {
    /// The name `TYPE` replies with.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
        }
    }

    /// Approximate heap bytes used, for page size accounting and INFO memory.
    pub fn heap_size(&self) -> usize {
        match self {
            Value::Str(s) => s.capacity(),
        }
    }

    /// How many allocations freeing this value takes, as Redis's
    /// `lazyfreeGetFreeEffort`: a value above
    /// [`crate::lazyfree::LAZYFREE_THRESHOLD`] is freed on the lazy-free
    /// thread where Redis would free it lazily. A string is one
    /// allocation today, however long (as in Redis, which never frees a
    /// string lazily); a value made of chunks counts its chunks.
    pub fn free_effort(&self) -> usize {
        match self {
            Value::Str(_) => 1,
        }
    }
}

/// One key and its value, as stored in a page.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `keyhash::hash_key(key)`, kept so pages can split without rehashing.
    pub hash: u64,
    pub key: Box<[u8]>,
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 means no expiry.
    pub expire_at: u64,
}

impl Entry {
    #[inline]
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expire_at != 0 && self.expire_at <= now_ms
    }

    #[inline]
    pub fn is_volatile(&self) -> bool {
        self.expire_at != 0
    }

    /// Bytes of key and value (not counting the allocator's overhead).
    pub fn data_bytes(&self) -> usize {
        let Value::Str(v) = &self.value;
        self.key.len() + v.len()
    }
}
