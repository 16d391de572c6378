//! Memory for a running snapshot: copy-before-write and the capture's
//! buffers.
//!
//! While a snapshot runs, a command about to change a key whose page is not
//! written yet first keeps the key's state at the barrier aside
//! (`pagetable`'s `Capture::keep`). Those copies are most of the snapshot's
//! memory growth, and they come fastest at its start, when almost every
//! page is still unwritten; the capture's first slices also need frame and
//! encoder buffers. Fresh memory is expensive to touch for the first time
//! (measured on the 2-vCPU VM these servers run on: 10-13 us per 4 KiB
//! page, ~5 ms per 2 MiB huge page, when the host has to back it), so
//! allocating all that on the event loop stalled its clients for 7-22 ms
//! at a snapshot's start. Instead the copies are encoded into an [`Arena`]
//! of chunks, and the chunks and the capture's buffers ([`buffer`]) come
//! from a per-thread pool that the server fills from another thread
//! ([`give`]) with memory already touched there. When the pool is empty a
//! chunk is allocated here as before.
//!
//! The pool is per thread because a shard lives on one thread; chunks of a
//! finished snapshot go back to it, up to its target ([`set_pool_target`]):
//! [`POOL_BYTES`] for a shard of [`POOL_SHARE`] times that or more, less
//! for a smaller one ([`pool_target_for`]), so that a small or empty shard
//! does not keep 8 MiB ready for copies it will never make.

use std::cell::{Cell, RefCell};

/// Bytes of one chunk the pool hands out.
pub const CHUNK: usize = 512 * 1024;
/// The pool's largest target (a shard of `POOL_SHARE * POOL_BYTES` bytes
/// or more): what the server keeps ready, and what a finished snapshot
/// leaves in it for the next. A capture's own buffers take four
/// chunks ([`buffer`]), its arenas one each to start with, and the rest is
/// runway while the server refills the pool.
pub const POOL_BYTES: usize = 16 * CHUNK;
/// A shard's pool target is its data's bytes over this (1/32: ~3% of the
/// shard), between one chunk and [`POOL_BYTES`] (reached at 256 MiB).
pub const POOL_SHARE: usize = 32;

thread_local! {
    static POOL: RefCell<Vec<Vec<u8>>> = const { RefCell::new(Vec::new()) };
    static TARGET: Cell<usize> = const { Cell::new(POOL_BYTES) };
}

/// The pool a shard keeps ready, by `data_bytes`, the bytes of its
/// entries that copy-before-write may keep (`Shard::keepable_bytes`: not
/// big values' shared pieces, which it never keeps):
/// `data_bytes / POOL_SHARE`, rounded up to whole chunks, between one
/// chunk and [`POOL_BYTES`].
pub fn pool_target_for(data_bytes: usize) -> usize {
    (data_bytes / POOL_SHARE)
        .div_ceil(CHUNK)
        .clamp(1, POOL_BYTES / CHUNK)
        * CHUNK
}

/// Sets this thread's pool target (what the server fills it to and what
/// finished snapshots give back, [`recycle`]) to `bytes` rounded up to
/// whole chunks, at most [`POOL_BYTES`]; frees the chunks over it.
pub fn set_pool_target(bytes: usize) {
    let target = bytes.div_ceil(CHUNK).min(POOL_BYTES / CHUNK) * CHUNK;
    TARGET.with(|t| t.set(target));
    POOL.with(|p| {
        let mut p = p.borrow_mut();
        while p.iter().map(Vec::capacity).sum::<usize>() > target {
            p.pop();
        }
    });
}

/// This thread's pool target ([`set_pool_target`]; [`POOL_BYTES`] until
/// set).
pub fn pool_target() -> usize {
    TARGET.with(Cell::get)
}

/// Adds a chunk (its memory already touched) to this thread's pool,
/// emptied.
pub fn give(mut chunk: Vec<u8>) {
    chunk.clear();
    POOL.with(|p| p.borrow_mut().push(chunk));
}

/// Bytes of chunks in this thread's pool.
pub fn pool_bytes() -> usize {
    POOL.with(|p| p.borrow().iter().map(Vec::capacity).sum())
}

/// An empty buffer for a capture's frames or encoder: a chunk from the
/// pool, or (the pool being empty) a new empty Vec. Give it back with
/// [`recycle`].
pub fn buffer() -> Vec<u8> {
    POOL.with(|p| p.borrow_mut().pop()).unwrap_or_default()
}

/// Returns a buffer to the pool (emptied) if it is a chunk and the pool
/// is short of its target; frees it otherwise.
pub fn recycle(buf: Vec<u8>) {
    if buf.capacity() == CHUNK && pool_bytes() + CHUNK <= pool_target() {
        give(buf);
    }
}

/// [`recycle`]s every chunk of `chunks`.
fn recycle_all(chunks: &mut Vec<Vec<u8>>) {
    chunks.drain(..).for_each(recycle);
}

/// A chunk of at least `len` bytes: from the pool, or newly allocated.
fn take(len: usize) -> Vec<u8> {
    let pooled = POOL.with(|p| {
        let mut p = p.borrow_mut();
        let i = p.iter().position(|c| c.capacity() >= len)?;
        Some(p.swap_remove(i))
    });
    pooled.unwrap_or_else(|| Vec::with_capacity(len.max(CHUNK)))
}

/// Where some bytes are in an [`Arena`].
#[derive(Debug, Clone, Copy)]
pub struct Span {
    pub chunk: usize,
    pub start: usize,
    pub len: usize,
}

/// Bytes of one record in [`Records`].
pub const RECORD: usize = 64;
const RECORDS_PER_CHUNK: usize = CHUNK / RECORD;

/// Fixed-size records in chunks from the pool, addressed by their index.
#[derive(Default)]
pub struct Records {
    chunks: Vec<Vec<u8>>,
    len: usize,
}

impl Records {
    /// Appends a record; returns its index.
    pub fn push(&mut self, rec: &[u8; RECORD]) -> usize {
        if self.len == self.chunks.len() * RECORDS_PER_CHUNK {
            self.chunks.push(take(CHUNK));
        }
        let c = self.chunks.last_mut().expect("a chunk was just made");
        c.extend_from_slice(rec);
        self.len += 1;
        self.len - 1
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, i: usize) -> [u8; RECORD] {
        let at = (i % RECORDS_PER_CHUNK) * RECORD;
        let mut rec = [0u8; RECORD];
        rec.copy_from_slice(&self.chunks[i / RECORDS_PER_CHUNK][at..at + RECORD]);
        rec
    }
}

impl Drop for Records {
    fn drop(&mut self) {
        recycle_all(&mut self.chunks);
    }
}

/// Byte strings appended into chunks; nothing is freed before the arena.
#[derive(Default)]
pub struct Arena {
    chunks: Vec<Vec<u8>>,
    bytes: usize,
}

impl Arena {
    /// Appends `bytes`; returns where they are.
    pub fn push(&mut self, bytes: &[u8]) -> Span {
        self.push_with(bytes.len(), |c| c.extend_from_slice(bytes))
    }

    /// Appends what `write` appends to the buffer it is given, which must
    /// be at most `max_len` bytes (more still works, but may move the
    /// chunk); returns where they are. Writes in place: no copy.
    pub fn push_with(&mut self, max_len: usize, write: impl FnOnce(&mut Vec<u8>)) -> Span {
        let fits = self
            .chunks
            .last()
            .is_some_and(|c| c.capacity() - c.len() >= max_len);
        // Byte strings bigger than a chunk get one of their own, sized to them.
        if !fits {
            self.chunks.push(take(max_len));
        }
        let chunk = self.chunks.len() - 1;
        let c = &mut self.chunks[chunk];
        let start = c.len();
        write(c);
        let len = c.len() - start;
        self.bytes += len;
        Span { chunk, start, len }
    }

    pub fn get(&self, s: Span) -> &[u8] {
        &self.chunks[s.chunk][s.start..s.start + s.len]
    }

    /// Bytes appended so far.
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

impl Drop for Arena {
    /// Chunks go back to the pool while it is short; the rest is freed.
    fn drop(&mut self) {
        recycle_all(&mut self.chunks);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_read_back_across_chunks_and_chunks_return_to_the_pool() {
        // Run on a thread of its own: the pool is per thread.
        std::thread::spawn(|| {
            let mut a = Arena::default();
            let big = vec![7u8; CHUNK + 5];
            let s1 = a.push(b"hello");
            let s2 = a.push(&big);
            let s3 = a.push(b"world");
            assert_eq!(a.get(s1), b"hello");
            assert_eq!(a.get(s2), &big[..]);
            assert_eq!(a.get(s3), b"world");
            let s4 = a.push_with(8, |b| b.extend_from_slice(b"in place"));
            assert_eq!(a.get(s4), b"in place");
            assert_eq!(a.get(s3), b"world", "earlier spans stay put");
            assert_eq!(a.bytes(), 18 + big.len());
            // Filled chunks: one of CHUNK for "hello", one sized to `big`
            // (not pooled: only CHUNK-sized ones are), one for "world".
            drop(a);
            assert_eq!(pool_bytes(), 2 * CHUNK);
            // Pooled chunks are used before new ones, and come back empty.
            let mut b = Arena::default();
            let s = b.push(b"again");
            assert_eq!(b.get(s), b"again");
            assert_eq!(pool_bytes(), CHUNK);
            drop(b);
            for _ in 0..15 {
                give(Vec::with_capacity(CHUNK));
            }
            assert_eq!(pool_bytes(), 17 * CHUNK, "give is not capped, recycle is");
            let mut d = Arena::default();
            d.push(b"x");
            drop(d);
            // Records cross chunks and read back.
            let mut r = Records::default();
            for i in 0..RECORDS_PER_CHUNK + 3 {
                assert_eq!(r.push(&[i as u8; RECORD]), i);
            }
            assert_eq!(r.get(1), [1u8; RECORD]);
            assert_eq!(
                r.get(RECORDS_PER_CHUNK + 2),
                [(RECORDS_PER_CHUNK + 2) as u8; RECORD]
            );
            drop(r);
            // The pool is full again (16): the arena takes one and, on
            // drop, finds no room for it.
            assert_eq!(pool_bytes(), 16 * CHUNK, "a full pool takes no more");
            // Buffers come from the pool, and go back to it.
            let b = buffer();
            assert_eq!(b.capacity(), CHUNK);
            assert_eq!(pool_bytes(), 15 * CHUNK);
            recycle(b);
            recycle(Vec::with_capacity(CHUNK + 1));
            assert_eq!(pool_bytes(), 16 * CHUNK, "only chunks are pooled");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_shards_data_bytes_count_its_entries() {
        let c = crate::testkit::TestCluster::new(1);
        assert_eq!(c.with_shard(0, |s| s.data_bytes()), 0);
        let big = "x".repeat(3 << 20);
        c.cmd(0, &["SET", "big", &big]);
        c.cmd(2, &["SADD", "s", "a", "b"]);
        let bytes = c.with_shard(0, |s| s.data_bytes());
        // (Its chunks' bookkeeping: 56 bytes per 16 KiB chunk.)
        assert!((3 << 20..(3 << 20) + 16384).contains(&bytes), "{bytes}");
        c.cmd(0, &["DEL", "big"]);
        let bytes = c.with_shard(0, |s| s.data_bytes());
        assert!(
            (1..4096).contains(&bytes),
            "databases other than 0: {bytes}"
        );
    }

    /// The bytes copy-before-write may keep (which size the pool) leave
    /// out values held in shared pieces, however they got there or left:
    /// SET, APPEND past the chunking threshold, a hash grown past one
    /// segment, DEL, and pages split under them.
    #[test]
    fn keepable_bytes_leave_out_shared_pieces() {
        let c = crate::testkit::TestCluster::new(1);
        let both = |c: &crate::testkit::TestCluster| {
            c.with_shard(0, |s| (s.data_bytes(), s.keepable_bytes()))
        };
        c.cmd(0, &["SET", "small", &"s".repeat(60_000)]);
        let (data, keep) = both(&c);
        assert_eq!(data, keep);
        assert!(data >= 60_000);
        // APPEND makes it chunked in place (a value changed in place).
        c.cmd(0, &["APPEND", "small", &"t".repeat(10_000)]);
        // (Counted again at the table's next change.)
        c.cmd(0, &["SET", "next", "1"]);
        let (data, keep) = both(&c);
        assert!(data >= 70_000 && keep < 4096, "{data} {keep}");
        c.cmd(0, &["SET", "big", &"x".repeat(3 << 20)]);
        let fields: Vec<String> = (0..3000).map(|i| format!("f{i}")).collect();
        let mut hset = vec!["HSET", "h"];
        for f in &fields {
            hset.extend([f.as_str(), "v"]);
        }
        c.cmd(0, &hset);
        // Many small keys: pages split with the big values among them.
        for i in 0..3000 {
            c.cmd(0, &["SET", &format!("k{i}"), "0123456789"]);
        }
        let (data, keep) = both(&c);
        assert!(data > (3 << 20) + 70_000, "{data}");
        // The small keys alone (the hash is over 100 KB).
        assert!((3000 * 10..60_000).contains(&keep), "{keep}");
        assert_eq!(pool_target_for(keep), CHUNK);
        c.cmd(0, &["DEL", "big", "small", "h"]);
        let (data, keep) = both(&c);
        assert_eq!(data, keep);
    }

    #[test]
    fn the_pool_target_follows_the_shards_data() {
        // An empty or small shard: one chunk; a big one: POOL_BYTES, as
        // before; in between, 1/POOL_SHARE of its bytes in whole chunks.
        assert_eq!(pool_target_for(0), CHUNK);
        assert_eq!(pool_target_for(4 << 20), CHUNK);
        assert_eq!(pool_target_for(96 << 20), 6 * CHUNK);
        assert_eq!(pool_target_for((96 << 20) + POOL_SHARE), 7 * CHUNK);
        assert_eq!(pool_target_for(POOL_SHARE * POOL_BYTES), POOL_BYTES);
        assert_eq!(pool_target_for(3 << 30), POOL_BYTES);
        assert_eq!(pool_target_for(usize::MAX), POOL_BYTES);
        std::thread::spawn(|| {
            assert_eq!(pool_target(), POOL_BYTES, "POOL_BYTES until set");
            for _ in 0..10 {
                give(Vec::with_capacity(CHUNK));
            }
            // Lowering the target frees what is over it...
            set_pool_target(pool_target_for(0));
            assert_eq!(pool_bytes(), CHUNK);
            // ... and a finished snapshot's chunks go back up to it only.
            let (a, b) = (take(CHUNK), take(CHUNK));
            assert_eq!(pool_bytes(), 0);
            recycle(a);
            recycle(b);
            assert_eq!(pool_bytes(), CHUNK);
            set_pool_target(3 * CHUNK - 1);
            assert_eq!(pool_target(), 3 * CHUNK, "whole chunks");
            set_pool_target(usize::MAX);
            assert_eq!(pool_target(), POOL_BYTES, "never over POOL_BYTES");
        })
        .join()
        .unwrap();
    }
}
