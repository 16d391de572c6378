//! What a key holds.

pub use crate::types::{Str, Value};

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
        self.key.len() + self.value.data_len()
    }
}
