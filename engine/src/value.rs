//! What a key holds.

use std::sync::atomic::{AtomicU32, Ordering};

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
    /// When the key was last looked up or written (OBJECT IDLETIME).
    pub access: Access,
}

impl Entry {
    /// An entry made now (its access time is the clock's).
    pub fn new(hash: u64, key: Box<[u8]>, value: Value, expire_at: u64) -> Entry {
        Entry {
            hash,
            key,
            value,
            expire_at,
            access: Access::now(),
        }
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

/// When an entry was last accessed, in the access clock's seconds. Set
/// through a shared reference (a lookup for reading sees `&Entry`), and
/// never saved: a restart starts every key's idle time afresh, as Redis's
/// load does when its file holds no idle times.
#[derive(Debug, Default)]
pub struct Access(AtomicU32);

impl Access {
    pub fn now() -> Access {
        Access(AtomicU32::new(clock()))
    }

    /// Marks the entry accessed now.
    #[inline]
    pub fn touch(&self) {
        let now = clock();
        if self.0.load(Ordering::Relaxed) != now {
            self.0.store(now, Ordering::Relaxed);
        }
    }

    /// Seconds since the last access (OBJECT IDLETIME).
    pub fn idle_secs(&self) -> u64 {
        u64::from(clock().saturating_sub(self.0.load(Ordering::Relaxed)))
    }
}

impl Clone for Access {
    fn clone(&self) -> Access {
        Access(AtomicU32::new(self.0.load(Ordering::Relaxed)))
    }
}
