//! What a key holds.

use std::sync::atomic::{AtomicU32, Ordering};

pub use crate::types::{Str, Value};

/// One key and its value, as stored in a page.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `keyhash::hash_key(key)`, kept so pages can split without rehashing.
    pub hash: u64,
    /// The key's bytes (and the second it was last accessed).
    pub key: Key,
    pub value: Value,
    /// Absolute expiry in Unix milliseconds; 0 means no expiry.
    pub expire_at: u64,
}

impl Entry {
    pub fn new(hash: u64, key: Key, value: Value, expire_at: u64) -> Entry {
        Entry {
            hash,
            key,
            value,
            expire_at,
        }
    }

    /// Seconds since the key was last looked up or written (OBJECT
    /// IDLETIME).
    pub fn idle_secs(&self) -> u64 {
        u64::from(clock().saturating_sub(self.key.access()))
    }

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

    /// Heap bytes of key and value ([`Value::heap_size`]): what a page
    /// counts against its byte bound.
    #[inline]
    pub fn heap_bytes(&self) -> usize {
        self.key.len() + self.value.heap_size()
    }
}

/// The process's access clock, in Unix seconds: set by each shard as its
/// clock moves ([`set_clock`]), read when an entry is made or looked up
/// (Redis's `server.lruclock`, kept by its cron).
static CLOCK: AtomicU32 = AtomicU32::new(0);

/// Moves the access clock to `now_ms` (Unix milliseconds).
#[inline]
pub fn set_clock(now_ms: u64) {
    let secs = u32::try_from(now_ms / 1000).unwrap_or(u32::MAX);
    if CLOCK.load(Ordering::Relaxed) != secs {
        CLOCK.store(secs, Ordering::Relaxed);
    }
}

/// The access clock, read from the system clock before any shard set it
/// (entries loaded at start).
fn clock() -> u32 {
    match CLOCK.load(Ordering::Relaxed) {
        0 => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64);
            set_clock(now);
            CLOCK.load(Ordering::Relaxed)
        }
        secs => secs,
    }
}

/// A key's bytes, followed in the same allocation by the second it was
/// last looked up or written (4 bytes, the access clock's: Redis keeps its
/// LRU clock in the object header; here it rides in the key's allocation,
/// where the allocator's rounding mostly has room for it, so an entry stays
/// 64 bytes). Derefs to the key's bytes; compares by them alone. Never
/// saved: a restart starts every idle time afresh, as Redis's load does
/// when its file holds no idle times.
#[derive(Clone)]
pub struct Key(Box<[u8]>);

const ACCESS: usize = 4;

impl Key {
    /// A key accessed now.
    pub fn new(bytes: &[u8]) -> Key {
        let mut v = Vec::with_capacity(bytes.len() + ACCESS);
        v.extend_from_slice(bytes);
        v.extend_from_slice(&clock().to_le_bytes());
        Key(v.into_boxed_slice())
    }

    fn split(&self) -> (&[u8], &[u8]) {
        self.0.split_at(self.0.len().saturating_sub(ACCESS))
    }

    /// The second it was last accessed.
    pub fn access(&self) -> u32 {
        let (_, tail) = self.split();
        tail.try_into().map_or(0, u32::from_le_bytes)
    }

    /// Marks it accessed now.
    #[inline]
    pub fn touch(&mut self) {
        self.set_idle(0);
    }

    /// Marks it last accessed `secs` seconds ago.
    #[inline]
    pub fn set_idle(&mut self, secs: u64) {
        let secs = u32::try_from(secs).unwrap_or(u32::MAX);
        let now = clock().saturating_sub(secs).to_le_bytes();
        let at = self.0.len().saturating_sub(ACCESS);
        if let Some(tail) = self.0.get_mut(at..) {
            tail.copy_from_slice(&now);
        }
    }
}

impl std::ops::Deref for Key {
    type Target = [u8];
    #[inline]
    fn deref(&self) -> &[u8] {
        self.split().0
    }
}

impl From<&[u8]> for Key {
    fn from(bytes: &[u8]) -> Key {
        Key::new(bytes)
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}
#[cfg(test)]
mod tests {
    use super::*;

    /// The access time rides in the key's allocation: an entry stays 64
    /// bytes (8 of hash, 16 of key, 32 of value, 8 of expiry).
    #[test]
    fn an_entry_is_64_bytes_and_a_key_compares_by_its_bytes() {
        assert_eq!(std::mem::size_of::<Entry>(), 64);
        let mut a = Key::new(b"k1");
        let b = Key::new(b"k1");
        assert_eq!(&*a, b"k1");
        assert_eq!(a.len(), 2);
        // (The clock is the process's, moved by other tests' shards too:
        // the idle times themselves are checked end to end.)
        a.0[2..].copy_from_slice(&7u32.to_le_bytes());
        assert_eq!(a.access(), 7);
        assert_eq!(a, b, "the access time is not part of the key");
        assert_eq!(format!("{a:?}"), "\"k1\"");
        let empty = Key::new(b"");
        assert!(empty.is_empty());
    }
}
