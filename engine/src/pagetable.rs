//! The keyspace of one database in one shard, kept in pages.
//!
//! A page is a small hash table that owns one range of key hashes: every key
//! whose hash starts with the page's `depth`-bit `prefix`. A directory of
//! `2^global_depth` slots, indexed by the top bits of the hash, points at the
//! pages (extendible hashing). A page that grows past [`PAGE_CAPACITY`]
//! entries splits in two on its next hash bit; no other page moves.
//!
//! Every page carries for the snapshotter:
//! - `modified_epoch`: the snapshot epoch in which the page last changed;
//! - `serialized_epoch`: the snapshot epoch it was last written into;
//! - which of its [`SUB_RANGES`] equal sub-ranges of hashes changed since
//!   the last saved snapshot (two bit masks, see [`Page`]), so that a delta
//!   writes only the sub-ranges that changed, not whole pages.
//!
//! A snapshot frame stands for a hash range (a page's, or one sub-range of
//! it), so it replaces that range wholesale on load, which also covers
//! deletions. Every mutation goes through `PageTable::page_for_write` (or
//! `page_for_key_write` for one key), the single place where epochs and
//! masks are maintained, and where a running snapshot that has not written
//! the page yet keeps the key's state at its barrier aside (copy-before-
//! write of one entry) or writes the page first.

use std::collections::VecDeque;

use hashbrown::HashTable;

use crate::snapshot::format::{self as snapformat, Encoder, EntryRef, Piece, Tally};
use crate::snapshot::kept::{Arena, Records, Span, RECORD};
use crate::types::string::CHUNK;
use crate::value::{Entry, Value};

/// A page splits when it holds more entries than this. 112 is what a
/// 128-bucket hash table holds at its 7/8 load limit, so a page's table
/// never grows to 256 buckets only to be half emptied by the split.
pub const PAGE_CAPACITY: usize = 112;
/// A page also splits when its entries take more than this many bytes
/// ([`Entry::heap_bytes`]), so that a page of large values is not one
/// large unit of work for the snapshot (writing it, or copy-before-write
/// of it); a page that is one huge value cannot split, and the snapshot is
/// bounded within such a value instead.
pub const PAGE_BYTES: usize = 1 << 20;
/// Pages never get deeper than this, so a page boundary is always a multiple
/// of 2^16 in hash space (SCAN cursors rely on it).
pub const MAX_DEPTH: u8 = 48;
/// Bits of hash below a page's prefix that pick its sub-range: a page's
/// range splits into 2^SUB_BITS equal sub-ranges for change tracking.
pub const SUB_BITS: u8 = 6;
/// Sub-ranges per page (one bit each in a u64 mask).
pub const SUB_RANGES: u32 = 1 << SUB_BITS;
/// A delta writes a page whole rather than sub-range by sub-range when more
/// than this many of its sub-ranges changed (frame headers would cost more).
const SUB_FRAMES_MAX: u32 = SUB_RANGES / 4;
/// A ranges frame is written once its parts reach this many bytes.
const RANGES_FRAME: usize = 64 * 1024;
/// A write writes the chunks it is about to change into the snapshot's
/// output ([`Capture::spill`]) only while that output holds less than this
/// (frames not yet taken by the writer); past it, the write copies the
/// chunk as any shared one, and the walker writes the old one first.
/// Writes that change chunks faster than the disk takes them would
/// otherwise grow the output without bound, and with it one buffer copied
/// on the event loop as it grows (a 53 ms write, measured).
const SPILL_MAX: usize = 4 << 20;
/// Keys a running snapshot keeps aside for one page before it writes the
/// page whole instead.
const KEPT_MAX: usize = PAGE_CAPACITY / 4;
/// Copy-before-write keeps entries in one arena per this many equal runs
/// of page indices, so that the walker frees each run's arena once it has
/// passed it (the memory held stays near what the unwritten pages need).
const KEPT_REGIONS: usize = 4;

/// Mixes the routing hash for use inside a page's table. Keys in one page
/// share their top bits (the page prefix) and keys in one shard share their
/// residue modulo the shard count, so the raw hash would crowd the table's
/// buckets; the murmur3 finalizer spreads every bit over all others.
#[inline]
fn table_hash(h: u64) -> u64 {
    let mut x = h;
    x ^= x >> 33;
    x = x.wrapping_mul(0xff51_afd7_ed55_8ccd);
    x ^= x >> 33;
    x = x.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    x ^= x >> 33;
    x
}

/// The masks of the lower half of a page's sub-ranges (the low 32 bits of
/// `m`) as masks of the 64 sub-ranges of that half: bit i becomes bits 2i
/// and 2i+1.
fn widen(m: u64) -> u64 {
    let mut out = 0u64;
    let mut bits = m & 0xFFFF_FFFF;
    while bits != 0 {
        let i = bits.trailing_zeros();
        bits &= bits - 1;
        out |= 3u64 << (2 * i);
    }
    out
}

/// One page: a hash range, its entries and its snapshot epochs.
#[derive(Debug)]
pub struct Page {
    /// The owned hash range's top `depth` bits, left-aligned in a u64.
    prefix: u64,
    depth: u8,
    /// Snapshot epoch this page was last serialized into.
    pub serialized_epoch: u64,
    /// Snapshot epoch in which this page was last changed.
    pub modified_epoch: u64,
    /// Sub-ranges changed in `modified_epoch` (bit i: sub-range i).
    changed: u64,
    /// Sub-ranges changed in earlier epochs and not yet in a saved
    /// snapshot. A delta needs `changed | changed_before` (taken at its
    /// barrier, when `modified_epoch` is never newer than the snapshot's).
    changed_before: u64,
    entries: HashTable<Entry>,
    /// Entries with an expiry.
    volatile: u32,
    /// Bytes its entries take ([`Entry::heap_bytes`]), kept up to date by
    /// every change (a value changed in place is counted again at the
    /// table's next change, [`PageTable::settle`]).
    bytes: usize,
    /// While a snapshot runs and has not written this page: the barrier
    /// state of the keys changed since ([`Capture::keep`]), as a list of
    /// the capture's records (index + 1 of the newest; 0: none). A map of
    /// the capture, or a Vec per page, grew into fresh memory on the event
    /// loop (5-8 ms each time, measured); the records are in pooled chunks.
    kept: u32,
}

impl Page {
    fn new(prefix: u64, depth: u8, epoch: u64) -> Self {
        Page {
            prefix,
            depth,
            serialized_epoch: 0,
            modified_epoch: epoch,
            changed: u64::MAX,
            changed_before: 0,
            entries: HashTable::new(),
            volatile: 0,
            bytes: 0,
            kept: 0,
        }
    }

    /// Bytes its entries take ([`Entry::heap_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn prefix(&self) -> u64 {
        self.prefix
    }

    pub fn depth(&self) -> u8 {
        self.depth
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }

    /// First hash value past this page's range, or None at the end of the space.
    pub fn range_end(&self) -> Option<u64> {
        if self.depth == 0 {
            None
        } else {
            self.prefix.checked_add(1u64 << (64 - self.depth))
        }
    }

    fn find(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.entries
            .find(table_hash(hash), |e| e.hash == hash && *e.key == *key)
    }

    /// The sub-range of this page that `hash` falls in.
    #[inline]
    fn sub_range(&self, hash: u64) -> u32 {
        ((hash << self.depth) >> (64 - SUB_BITS)) as u32
    }

    /// Notes a change in sub-range `bits` (a mask) in `epoch`.
    #[inline]
    fn mark(&mut self, epoch: u64, bits: u64) {
        if self.modified_epoch != epoch {
            self.changed_before |= self.changed;
            self.changed = 0;
            self.modified_epoch = epoch;
        }
        self.changed |= bits;
    }

    /// Sub-ranges changed since the last saved snapshot.
    pub fn changed_mask(&self) -> u64 {
        self.changed | self.changed_before
    }
}

/// Hash-range pages of one database in one shard.
#[derive(Debug)]
pub struct PageTable {
    dir: Vec<u32>,
    global_depth: u8,
    pages: Vec<Page>,
    len: usize,
    volatile: usize,
    /// The shard's current snapshot epoch, stamped on pages as they change.
    epoch: u64,
    /// The running snapshot's capture of this table, if one runs.
    capture: Option<Box<Capture>>,
    /// The value last handed out to change in place: its page's index,
    /// its key's hash, and the bytes it took then ([`PageTable::settle`]).
    changing: Option<(usize, u64, usize)>,
}

/// A running snapshot's work on one table: the pages it still has to
/// write are those with `serialized_epoch < epoch` (marked at the barrier).
/// Page frames are encoded into `out` by the walker
/// ([`PageTable::capture_step`]); the snapshot writer takes them from
/// there. Before a command changes a key in a page not yet written, the
/// key's state at the barrier is kept aside (copy-before-write of one
/// entry, [`Capture::keep`]), and the page is written later as it was at
/// the barrier: its entries with those kept aside put back.
pub struct Capture {
    /// The epoch the snapshot closed at its barrier.
    epoch: u64,
    /// Every page whole (a full snapshot), or only what changed (a delta).
    full: bool,
    /// The database number written into the frames: the table's number at
    /// the barrier (a SWAPDB moves the capture with the table).
    db: u16,
    compress: bool,
    /// Encoded frames not yet taken, and their count.
    out: Vec<u8>,
    pending: Tally,
    /// The chunks of the chunked strings, and the segments of the
    /// segmented hashes and sets, of the frames written so far, still to
    /// write. The walker writes them a bounded piece at a time
    /// ([`Capture::drain`]), so a big value is never one unit of work. The
    /// pieces are shared with the live value, and each is let go of as
    /// soon as it is written; a write about to change one not written yet
    /// writes it first, out of order ([`Capture::spill`]), so that no
    /// piece is ever copied for the snapshot's sake.
    queue: VecDeque<Big>,
    /// Page and ranges frames written so far (chunks frames name theirs
    /// by this number).
    frames: u64,
    /// Chunks a write copied while the output was full ([`SPILL_MAX`]):
    /// (frame, first, index) of each. The queue alone holds the old ones,
    /// so [`Capture::drain`] writes them before any other, to let go of
    /// the memory soonest.
    copied: Vec<(u64, u32, usize)>,
    /// Next page index for the walker.
    cursor: usize,
    /// Pages of a table emptied during the snapshot that it still needs,
    /// with what was kept aside for them.
    retired: Vec<Page>,
    /// The bytes of the pages' `kept`: page index `i` keeps its keys and entries in
    /// `arenas[i / region_pages]` (the last one takes the rest).
    arenas: Vec<Arena>,
    region_pages: usize,
    /// The pages' kept lists ([`Kept::to_record`]).
    records: Records,
    /// One page's kept list, decoded for [`Capture::save`] (reused).
    list: Vec<Kept>,
    enc: Encoder,
}

/// A chunked string or a segmented hash or set of a frame written, whose
/// pieces (chunks, segments) are still to write.
struct Big {
    /// The hash of its key (to find it before a write).
    hash: u64,
    /// The frame's number, and the index of the value's first piece among
    /// those following the frame.
    frame: u64,
    first: u32,
    /// Its pieces at the barrier; None once written.
    chunks: Vec<Option<Piece>>,
    /// The walker's next piece.
    next: usize,
}

/// Writes a frame with `f` into `out`, then queues its chunked strings'
/// chunks. `frames` counts the frames written.
fn emit(
    enc: &mut Encoder,
    out: &mut Vec<u8>,
    queue: &mut VecDeque<Big>,
    frames: &mut u64,
    f: impl FnOnce(&mut Encoder, &mut Vec<u8>) -> Tally,
) -> Tally {
    let t = f(enc, out);
    let mut first = 0u32;
    for (hash, pieces) in enc.take_big() {
        let chunks: Vec<Option<Piece>> = pieces.into_iter().map(Some).collect();
        let n = chunks.len() as u32;
        queue.push_back(Big {
            hash,
            frame: *frames,
            first,
            chunks,
            next: 0,
        });
        first += n;
    }
    *frames += t.pages;
    t
}

/// A key's state at the barrier, kept aside because it changed before its
/// page was written.
#[derive(Debug)]
pub struct Kept {
    hash: u64,
    /// Which of the capture's arenas holds `key` and `old`.
    region: usize,
    key: Span,
    /// The entry at the barrier; None if the key did not exist then.
    old: Option<Old>,
}

/// Where a kept entry is.
#[derive(Debug, Clone, Copy)]
enum Old {
    /// Encoded ([`snapformat::encode_entry`]) in the region's arena.
    Encoded(Span),
}

impl Kept {
    /// The record of this key in its page's list; `next` is the index + 1
    /// of the record after it (0: none).
    fn to_record(&self, next: u32) -> [u8; RECORD] {
        let mut r = [0u8; RECORD];
        r[0..8].copy_from_slice(&self.hash.to_le_bytes());
        r[8..12].copy_from_slice(&next.to_le_bytes());
        // Layout: hash, next, region, whether `old` is there, key, old.
        r[12] = self.region as u8;
        let span = |r: &mut [u8], s: Span| {
            r[0..8].copy_from_slice(&(s.chunk as u64).to_le_bytes());
            r[8..16].copy_from_slice(&(s.start as u64).to_le_bytes());
            r[16..24].copy_from_slice(&(s.len as u64).to_le_bytes());
        };
        span(&mut r[16..40], self.key);
        match self.old {
            Some(Old::Encoded(old)) => {
                r[13] = 1;
                span(&mut r[40..64], old);
            }
            None => {}
        }
        r
    }

    /// The key of record `r`, and the index + 1 of the next one.
    fn from_record(r: &[u8; RECORD]) -> (Kept, u32) {
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&r[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&r[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let span = |at: usize| Span {
            chunk: u64_at(at) as usize,
            start: u64_at(at + 8) as usize,
            len: u64_at(at + 16) as usize,
        };
        let kept = Kept {
            hash: u64_at(0),
            region: usize::from(r[12]),
            key: span(16),
            old: match r[13] {
                1 => Some(Old::Encoded(span(40))),
                _ => None,
            },
        };
        (kept, u32_at(8))
    }
}

impl std::fmt::Debug for Capture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Capture")
            .field("epoch", &self.epoch)
            .field("db", &self.db)
            .field("pending", &self.pending)
            .field("cursor", &self.cursor)
            .field("kept_regions", &self.arenas.len())
            .finish_non_exhaustive()
    }
}

impl Drop for Capture {
    /// The capture's buffers go back to the thread's pool for the next one.
    fn drop(&mut self) {
        crate::snapshot::kept::recycle(std::mem::take(&mut self.out));
        std::mem::take(&mut self.enc).recycle();
    }
}

impl Capture {
    /// Keeps aside the barrier state of key `key` of page `idx`, which is
    /// about to change, unless the page is already written or the key's
    /// state is already kept. A page with many keys kept is written
    /// whole now instead (a bound on the list, and on the work of putting
    /// them back), and so is a page whose key holds a chunked value: its
    /// chunks are then queued, shared, and [`Capture::spill`] writes the
    /// one a write is about to change.
    fn keep(&mut self, idx: u32, page: &mut Page, hash: u64, key: &[u8]) {
        if page.serialized_epoch >= self.epoch {
            return;
        }
        let region = (idx as usize / self.region_pages).min(self.arenas.len() - 1);
        let mut count = 0;
        for k in self.list_of(page.kept) {
            if k.hash == hash && self.arenas[k.region].get(k.key) == key {
                return;
            }
            count += 1;
        }
        // (An index past u32 cannot be linked: write the page instead.)
        if count >= KEPT_MAX || self.records.len() >= u32::MAX as usize - 1 {
            self.save_page(page);
            return;
        }
        if page.find(hash, key).is_some_and(|e| e.value.is_chunked()) {
            self.save_page(page);
            return;
        }
        let arena = &mut self.arenas[region];
        let old = page.find(hash, key).map(|e| {
            // Encoded in place; the three varints and the type byte take
            // at most 31 bytes besides the key and value.
            Old::Encoded(
                arena.push_with(e.data_bytes() + 31, |buf| snapformat::encode_entry(buf, e)),
            )
        });
        let k = Kept {
            hash,
            region,
            key: arena.push(key),
            old,
        };
        let i = self.records.push(&k.to_record(page.kept));
        page.kept = (i + 1) as u32;
    }

    /// The kept list starting at record `head` (a page's `kept`), newest
    /// first.
    fn list_of(&self, head: u32) -> impl Iterator<Item = Kept> + '_ {
        let mut at = head;
        std::iter::from_fn(move || {
            let i = at.checked_sub(1)?;
            let (k, next) = Kept::from_record(&self.records.get(i as usize));
            at = next;
            Some(k)
        })
    }

    /// Writes `page` into the snapshot as it was at the barrier, unless it
    /// is already there: its current entries, less those of keys in
    /// `kept`, plus the kept ones that existed. Returns the bytes of
    /// entries encoded (the work done). A full snapshot writes the page as
    /// one frame; a delta writes the sub-ranges that changed since the last
    /// saved snapshot as parts of a ranges frame shared with other pages
    /// (or the whole page as one frame when many changed).
    fn save(&mut self, page: &mut Page, kept: &[Kept]) -> usize {
        if page.serialized_epoch >= self.epoch {
            return 0;
        }
        page.serialized_epoch = self.epoch;
        // The sub-ranges changed at the barrier: a change since then moved
        // them all to `changed_before` (see `Page::mark`).
        let mask = if self.full {
            u64::MAX
        } else if page.modified_epoch > self.epoch {
            page.changed_before
        } else {
            page.changed_mask()
        };
        let arenas = &self.arenas;
        let at_barrier = || {
            page.entries
                .iter()
                .filter(|e| {
                    !kept
                        .iter()
                        .any(|k| k.hash == e.hash && arenas[k.region].get(k.key) == &*e.key)
                })
                .map(|e| (e.hash, EntryRef::Live(e)))
                .chain(kept.iter().filter_map(|k| {
                    let Old::Encoded(old) = k.old?;
                    Some((k.hash, EntryRef::Encoded(arenas[k.region].get(old))))
                }))
        };
        if mask.count_ones() > SUB_FRAMES_MAX {
            let (db, compress) = (self.db, self.compress);
            let (prefix, depth) = (page.prefix, page.depth);
            let t = emit(
                &mut self.enc,
                &mut self.out,
                &mut self.queue,
                &mut self.frames,
                |enc, out| {
                    enc.encode_page(
                        out,
                        db,
                        prefix,
                        depth,
                        at_barrier().map(|(_, e)| e),
                        compress,
                    )
                },
            );
            self.count(t);
            self.enc.raw_len()
        } else {
            let mut work = 0;
            let mut bits = mask;
            while bits != 0 {
                let i = bits.trailing_zeros();
                bits &= bits - 1;
                let depth = page.depth + SUB_BITS;
                let prefix = page.prefix | (u64::from(i) << (64 - depth));
                let d = page.depth;
                work += self.enc.add_part(
                    prefix,
                    depth,
                    at_barrier()
                        .filter(move |(hash, _)| ((hash << d) >> (64 - SUB_BITS)) as u32 == i)
                        .map(|(_, e)| e),
                );
            }
            if self.enc.parts_len() >= RANGES_FRAME {
                self.finish_parts();
            }
            work
        }
    }

    /// Writes a page of the table with what it kept (see [`Capture::save`]).
    fn save_page(&mut self, page: &mut Page) -> usize {
        // The page's kept list, decoded into the reused `self.list`.
        let mut list = std::mem::take(&mut self.list);
        list.clear();
        list.extend(self.list_of(std::mem::take(&mut page.kept)));
        let work = self.save(page, &list);
        self.list = list;
        work
    }

    /// Writes the parts gathered so far as one ranges frame.
    fn finish_parts(&mut self) {
        let (db, compress) = (self.db, self.compress);
        let t = emit(
            &mut self.enc,
            &mut self.out,
            &mut self.queue,
            &mut self.frames,
            |enc, out| enc.finish_parts(out, db, compress),
        );
        self.count(t);
    }

    /// Writes queued chunks into `out`, about `budget` bytes (one chunks
    /// frame at least), letting go of each; returns the bytes written.
    fn drain(&mut self, budget: usize) -> usize {
        let mut work = 0;
        while work < budget.max(1) {
            if let Some((frame, first, i)) = self.copied.pop() {
                let chunk = self
                    .queue
                    .iter_mut()
                    .find(|b| b.frame == frame && b.first == first)
                    .and_then(|b| b.chunks.get_mut(i))
                    .and_then(Option::take);
                if let Some(chunk) = chunk {
                    let t = self.enc.encode_pieces(
                        &mut self.out,
                        self.db,
                        frame,
                        first + i as u32,
                        std::slice::from_ref(&chunk),
                        self.compress,
                    );
                    work += t.bytes as usize;
                    self.pending.pages += t.pages;
                    self.pending.bytes += t.bytes;
                }
                continue;
            }
            let Some(big) = self.queue.front_mut() else {
                break;
            };
            // The next run of chunks not written yet (out of order ones
            // are gone), at most a frame's worth.
            while big.chunks.get(big.next).is_some_and(Option::is_none) {
                big.next += 1;
            }
            let from = big.next;
            let mut to = from;
            while to < big.chunks.len()
                && to - from < snapformat::FRAME_CHUNKS
                && big.chunks.get(to).is_some_and(Option::is_some)
            {
                to += 1;
            }
            if to > from {
                let run: Vec<Piece> = big
                    .chunks
                    .get_mut(from..to)
                    .unwrap_or_default()
                    .iter_mut()
                    .filter_map(Option::take)
                    .collect();
                let t = self.enc.encode_pieces(
                    &mut self.out,
                    self.db,
                    big.frame,
                    big.first + from as u32,
                    &run,
                    self.compress,
                );
                big.next = to;
                work += t.bytes as usize;
                self.pending.pages += t.pages;
                self.pending.bytes += t.bytes;
            }
            if big.next >= big.chunks.len() {
                self.queue.pop_front();
            }
        }
        work
    }

    /// Before a write to bytes `from..to` of the value of the key with
    /// hash `hash`: writes the chunks of those bytes that the snapshot
    /// still has to write, out of order, and lets go of them, so that the
    /// write changes them in place instead of copying them. The work is
    /// the chunks the write touches (one for a small write). Past
    /// [`SPILL_MAX`] of output waiting, the write copies them instead, and
    /// they are noted for the walker to write first.
    fn spill(&mut self, hash: u64, from: usize, to: usize) {
        if to <= from {
            return;
        }
        self.spill_pieces(hash, from / CHUNK..=(to - 1) / CHUNK);
    }

    /// [`Capture::spill`] by the pieces' indices: chunks of a string,
    /// segments of a hash or set (a write of an element changes its
    /// segment, [`Value::segment_of`]).
    fn spill_pieces(&mut self, hash: u64, pieces: impl Iterator<Item = usize> + Clone) {
        for big in self.queue.iter_mut().filter(|b| b.hash == hash) {
            for i in pieces.clone() {
                if i >= big.chunks.len() {
                    continue;
                }
                if self.out.len() >= SPILL_MAX {
                    // Noted once: the first write copies it, and the
                    // queue holds the old one alone from then on.
                    let shared = big
                        .chunks
                        .get(i)
                        .and_then(Option::as_ref)
                        .is_some_and(Piece::is_shared);
                    if shared {
                        self.copied.push((big.frame, big.first, i));
                    }
                    continue;
                }
                let Some(chunk) = big.chunks.get_mut(i).and_then(Option::take) else {
                    continue;
                };
                let t = self.enc.encode_pieces(
                    &mut self.out,
                    self.db,
                    big.frame,
                    big.first + i as u32,
                    std::slice::from_ref(&chunk),
                    self.compress,
                );
                self.pending.pages += t.pages;
                self.pending.bytes += t.bytes;
            }
        }
    }

    fn count(&mut self, t: Tally) {
        self.pending.pages += t.pages;
        self.pending.keys += t.keys;
        self.pending.bytes += t.bytes;
    }
}

impl PageTable {
    pub fn new(epoch: u64) -> Self {
        PageTable {
            dir: vec![0],
            global_depth: 0,
            pages: vec![Page::new(0, 0, epoch)],
            len: 0,
            volatile: 0,
            epoch,
            capture: None,
            changing: None,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Keys with an expiry.
    pub fn volatile_len(&self) -> usize {
        self.volatile
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Moves the table to a new snapshot epoch (called by the shard at a
    /// snapshot barrier).
    pub fn set_epoch(&mut self, epoch: u64) {
        self.epoch = epoch;
    }

    pub fn pages(&self) -> &[Page] {
        &self.pages
    }

    /// Bytes its entries take: the sum of its pages' counts
    /// ([`Page::bytes`]), one add per page.
    pub fn bytes(&self) -> usize {
        self.pages.iter().map(Page::bytes).sum()
    }

    #[inline]
    fn slot(&self, hash: u64) -> usize {
        if self.global_depth == 0 {
            0
        } else {
            (hash >> (64 - self.global_depth)) as usize
        }
    }

    #[inline]
    fn page_index(&self, hash: u64) -> usize {
        self.dir[self.slot(hash)] as usize
    }

    /// The page owning `hash`, for reading.
    pub fn page(&self, hash: u64) -> &Page {
        &self.pages[self.page_index(hash)]
    }

    /// The page at `idx`, for writing: the one place (with
    /// [`PageTable::page_for_key_write`]) where a page's epochs and masks
    /// are maintained before it changes, and where a running snapshot
    /// writes the page first if it has not yet (copy-before-write).
    /// `bits`: the sub-ranges about to change (a mask).
    #[inline]
    fn page_for_write(&mut self, idx: usize, bits: u64) -> &mut Page {
        let epoch = self.epoch;
        let page = &mut self.pages[idx];
        if let Some(c) = &mut self.capture {
            c.save_page(page);
        }
        page.mark(epoch, bits);
        page
    }

    /// [`PageTable::page_for_write`] for a change of one key: a running
    /// snapshot keeps that key's state aside rather than writing the page.
    #[inline]
    fn page_for_key_write(&mut self, idx: usize, hash: u64, key: &[u8]) -> &mut Page {
        let epoch = self.epoch;
        let page = &mut self.pages[idx];
        if let Some(c) = &mut self.capture {
            c.keep(idx as u32, page, hash, key);
        }
        let bit = 1u64 << page.sub_range(hash);
        page.mark(epoch, bit);
        page
    }

    /// Starts a snapshot of this table at its barrier. `epoch` is the epoch
    /// the snapshot closes (the table has already moved past it); a full
    /// snapshot takes every non-empty page, a delta what changed since the
    /// last saved snapshot ([`PageTable::snapshot_saved`]). Every other page
    /// is marked as written, so that a later change does not bring it in.
    pub fn begin_capture(&mut self, epoch: u64, full: bool, db: u16, compress: bool) {
        for p in &mut self.pages {
            let wanted = if full {
                !p.is_empty()
            } else {
                p.changed_mask() != 0
            };
            if !wanted {
                p.serialized_epoch = epoch;
            }
        }
        // An empty table writes nothing: its capture takes no buffers.
        let pooled = self.len > 0;
        self.capture = Some(Box::new(Capture {
            epoch,
            full,
            db,
            compress,
            out: if pooled {
                crate::snapshot::kept::buffer()
            } else {
                Vec::new()
            },
            pending: Tally::default(),
            queue: VecDeque::new(),
            frames: 0,
            copied: Vec::new(),
            cursor: 0,
            retired: Vec::new(),
            arenas: (0..KEPT_REGIONS).map(|_| Arena::default()).collect(),
            region_pages: self.pages.len().div_ceil(KEPT_REGIONS).max(1),
            records: Records::default(),
            list: Vec::new(),
            enc: if pooled {
                Encoder::pooled()
            } else {
                Encoder::default()
            },
        }));
    }

    /// Walks on: encodes pages the snapshot still needs, about `budget`
    /// bytes of entries (before compression: the work, so that a slice
    /// takes about the same time however well the data compresses), and
    /// fewer if `budget` bytes of frames are already waiting, and none
    /// after `until` once one page is written. Returns true when every
    /// page is written (the frames may still wait in
    /// [`PageTable::take_frames`]).
    pub fn capture_step(&mut self, budget: usize, until: Option<std::time::Instant>) -> bool {
        let Some(c) = &mut self.capture else {
            return true;
        };
        let mut work = 0;
        let late = || until.is_some_and(|t| std::time::Instant::now() >= t);
        while work < budget && c.out.len() < budget {
            if !c.queue.is_empty() {
                work += c.drain(budget - work);
            } else if let Some(mut p) = c.retired.pop() {
                work += c.save_page(&mut p);
            } else {
                let Some(p) = self.pages.get_mut(c.cursor) else {
                    break;
                };
                // Pages not needed still cost a look.
                work += 64 + c.save_page(p);
                c.cursor += 1;
                if c.cursor % c.region_pages == 0 {
                    // Every page of the run before is written, and no retired
                    // page is waiting (they go first): its arena is free.
                    let region = c.cursor / c.region_pages - 1;
                    if region + 1 < c.arenas.len() {
                        c.arenas[region] = Arena::default();
                    }
                }
            }
            if late() {
                break;
            }
        }
        let mut done = c.retired.is_empty() && c.cursor >= self.pages.len();
        if done {
            // The last ranges frame, and the chunks still queued.
            c.finish_parts();
            if work < budget && c.out.len() < budget && !late() {
                c.drain(budget - work);
            }
            done = c.queue.is_empty();
        }
        if done {
            // Every page is written: nothing kept is needed any more.
            c.arenas.iter_mut().for_each(|a| *a = Arena::default());
            c.records = Records::default();
        }
        done
    }

    /// Moves the frames encoded so far to the end of `out`; returns their count.
    pub fn take_frames(&mut self, out: &mut Vec<u8>) -> Tally {
        match &mut self.capture {
            Some(c) => {
                c.finish_parts();
                out.append(&mut c.out);
                std::mem::take(&mut c.pending)
            }
            None => Tally::default(),
        }
    }

    /// Bytes of frames waiting to be taken.
    pub fn pending_bytes(&self) -> usize {
        self.capture.as_ref().map_or(0, |c| {
            c.out.len()
                + c.enc.parts_len()
                + c.arenas.iter().map(Arena::bytes).sum::<usize>()
                + c.records.len() * RECORD
        })
    }

    /// Ends the snapshot's work on this table (done or abandoned).
    pub fn end_capture(&mut self) {
        if self.capture.take().is_some() {
            // An abandoned capture leaves keys kept in pages it did not
            // write; their bytes were in its arenas.
            for p in &mut self.pages {
                p.kept = 0;
            }
        }
    }

    /// The snapshot that closed `epoch` is saved: changes up to it no
    /// longer count for the next delta (changes after it still do).
    pub fn snapshot_saved(&mut self, epoch: u64) {
        for p in &mut self.pages {
            p.changed_before = 0;
            if p.modified_epoch <= epoch {
                p.changed = 0;
            }
        }
    }

    pub fn get(&self, hash: u64, key: &[u8]) -> Option<&Entry> {
        self.page(hash).find(hash, key)
    }

    /// The entry of `key`, marked accessed now. The access time is not
    /// data (no snapshot writes it), so the page is not marked changed.
    pub fn get_touched(&mut self, hash: u64, key: &[u8]) -> Option<&Entry> {
        let idx = self.page_index(hash);
        let e = self.pages[idx]
            .entries
            .find_mut(table_hash(hash), |e| e.hash == hash && *e.key == *key)?;
        e.key.touch();
        Some(e)
    }

    /// Makes `key` look idle for `secs` seconds (its access time only: the
    /// page is not marked changed).
    pub fn set_idle(&mut self, hash: u64, key: &[u8], secs: u64) {
        let idx = self.page_index(hash);
        if let Some(e) = self.pages[idx]
            .entries
            .find_mut(table_hash(hash), |e| e.hash == hash && *e.key == *key)
        {
            e.key.set_idle(secs);
        }
    }

    /// Mutable access to a value (not its expiry); marks the page modified.
    /// Use only when the value will change.
    pub fn get_value_mut(&mut self, hash: u64, key: &[u8]) -> Option<&mut Value> {
        self.settle();
        let idx = self.page_index(hash);
        self.pages[idx].find(hash, key)?;
        let epoch = self.epoch;
        let before = self.pages[idx].find(hash, key)?.heap_bytes();
        self.changing = Some((idx, hash, before));
        let page = self.page_for_key_write(idx, hash, key);
        let e = page
            .entries
            .find_mut(table_hash(hash), |e| e.hash == hash && *e.key == *key)?;
        e.value.stamp(epoch);
        Some(&mut e.value)
    }

    /// Counts again the bytes of the value last handed out to change in
    /// place ([`PageTable::get_value_mut`]), and splits its page if it is
    /// now over [`PAGE_BYTES`]. Every change of the table calls it first,
    /// so the pages' bytes are exact but for that one value.
    fn settle(&mut self) {
        let Some((idx, hash, before)) = self.changing.take() else {
            return;
        };
        let Some(page) = self.pages.get_mut(idx) else {
            return;
        };
        // (Two keys of one hash in a page would only blur the count.)
        if let Some(e) = page.entries.find(table_hash(hash), |e| e.hash == hash) {
            page.bytes = (page.bytes + e.heap_bytes()).saturating_sub(before);
        }
        if self.over_bytes(idx) {
            self.split(idx);
        }
    }

    /// Whether page `idx` should split for its bytes: over [`PAGE_BYTES`]
    /// with two entries at least, unless the split would double a
    /// directory already 4 times the page count (keys sharing many hash
    /// bits stay together rather than grow the directory without bound).
    fn over_bytes(&self, idx: usize) -> bool {
        self.pages.get(idx).is_some_and(|p| {
            p.bytes > PAGE_BYTES
                && p.len() > 1
                && (p.depth < self.global_depth || self.dir.len() < 4 * self.pages.len())
        })
    }

    /// [`PageTable::get_value_mut`] for a change of bytes `from..to` of
    /// the value (SETRANGE, APPEND): a running snapshot first writes the
    /// chunks of those bytes that it still has to write, so that the
    /// change does not copy them ([`Capture::spill`]).
    pub fn get_value_mut_at(
        &mut self,
        hash: u64,
        key: &[u8],
        from: usize,
        to: usize,
    ) -> Option<&mut Value> {
        self.settle();
        let idx = self.page_index(hash);
        self.pages[idx].find(hash, key)?;
        // The page first (copy-before-write: written whole if the value is
        // chunked), then the chunks the write touches.
        self.page_for_key_write(idx, hash, key);
        if let Some(c) = &mut self.capture {
            c.spill(hash, from, to);
        }
        self.get_value_mut(hash, key)
    }

    /// [`PageTable::get_value_mut`] for a change of `elements` (fields,
    /// members) of a hash or set: a running snapshot first writes the
    /// segments they are in that it still has to write, so that the
    /// change does not copy them ([`Capture::spill_pieces`]). A segment
    /// split by the change is written before it: its halves are new
    /// segments, the snapshot's pieces are not touched.
    pub fn get_value_mut_for<'a>(
        &mut self,
        hash: u64,
        key: &[u8],
        elements: impl Iterator<Item = &'a [u8]>,
    ) -> Option<&mut Value> {
        self.settle();
        let idx = self.page_index(hash);
        self.pages[idx].find(hash, key)?;
        // The page first (written whole if the value is segmented), then
        // the segments the write touches.
        self.page_for_key_write(idx, hash, key);
        if let Some(c) = &mut self.capture {
            if c.queue.iter().any(|b| b.hash == hash) {
                if let Some(e) = self.pages[idx].find(hash, key) {
                    let mut segs: Vec<usize> =
                        elements.filter_map(|m| e.value.segment_of(m)).collect();
                    segs.sort_unstable();
                    segs.dedup();
                    c.spill_pieces(hash, segs.into_iter());
                }
            }
        }
        self.get_value_mut(hash, key)
    }

    /// Inserts or replaces `key`; returns the previous entry.
    pub fn insert(&mut self, hash: u64, key: &[u8], value: Value, expire_at: u64) -> Option<Entry> {
        self.settle();
        let idx = self.page_index(hash);
        let added = key.len() + value.heap_size();
        let page = self.page_for_key_write(idx, hash, key);
        let th = table_hash(hash);
        let old = match page
            .entries
            .find_mut(th, |e| e.hash == hash && *e.key == *key)
        {
            Some(e) => {
                let old_value = std::mem::replace(&mut e.value, value);
                let old_expire = std::mem::replace(&mut e.expire_at, expire_at);
                e.key.touch();
                Some(Entry::new(hash, e.key.clone(), old_value, old_expire))
            }
            None => {
                page.entries.insert_unique(
                    th,
                    Entry::new(hash, key.into(), value, expire_at),
                    |e| table_hash(e.hash),
                );
                None
            }
        };
        let was_volatile = old.as_ref().is_some_and(Entry::is_volatile);
        let is_volatile = expire_at != 0;
        let page = &mut self.pages[idx];
        page.bytes = (page.bytes + added).saturating_sub(old.as_ref().map_or(0, Entry::heap_bytes));
        match (was_volatile, is_volatile) {
            (false, true) => {
                page.volatile += 1;
                self.volatile += 1;
            }
            (true, false) => {
                page.volatile -= 1;
                self.volatile -= 1;
            }
            _ => {}
        }
        if old.is_none() {
            self.len += 1;
        }
        if self.pages[idx].len() > PAGE_CAPACITY || self.over_bytes(idx) {
            self.split(idx);
        }
        old
    }

    /// Inserts a value that keeps the existing expiry, if any (SET KEEPTTL,
    /// APPEND on an existing key, ...).
    pub fn insert_keep_ttl(&mut self, hash: u64, key: &[u8], value: Value) -> Option<Entry> {
        let ttl = self.get(hash, key).map_or(0, |e| e.expire_at);
        self.insert(hash, key, value, ttl)
    }

    pub fn remove(&mut self, hash: u64, key: &[u8]) -> Option<Entry> {
        self.settle();
        let idx = self.page_index(hash);
        self.pages[idx].find(hash, key)?;
        let page = self.page_for_key_write(idx, hash, key);
        let entry = page
            .entries
            .find_entry(table_hash(hash), |e| e.hash == hash && *e.key == *key)
            .ok()?
            .remove()
            .0;
        page.bytes = page.bytes.saturating_sub(entry.heap_bytes());
        if entry.is_volatile() {
            page.volatile -= 1;
            self.volatile -= 1;
        }
        self.len -= 1;
        Some(entry)
    }

    /// Sets (or with 0 clears) the expiry of an existing key. Returns false
    /// if the key does not exist.
    pub fn set_expire(&mut self, hash: u64, key: &[u8], expire_at: u64) -> bool {
        let idx = self.page_index(hash);
        let Some(old) = self.pages[idx].find(hash, key).map(|e| e.expire_at) else {
            return false;
        };
        if old == expire_at {
            return true;
        }
        let page = self.page_for_key_write(idx, hash, key);
        if let Some(e) = page
            .entries
            .find_mut(table_hash(hash), |e| e.hash == hash && *e.key == *key)
        {
            e.expire_at = expire_at;
        }
        match (old != 0, expire_at != 0) {
            (false, true) => {
                page.volatile += 1;
                self.volatile += 1;
            }
            (true, false) => {
                page.volatile -= 1;
                self.volatile -= 1;
            }
            _ => {}
        }
        true
    }

    /// Marks every page modified in the current epoch (the table's contents
    /// were exchanged wholesale, e.g. by SWAPDB).
    pub fn mark_all_modified(&mut self) {
        let epoch = self.epoch;
        for p in &mut self.pages {
            p.mark(epoch, u64::MAX);
        }
    }

    /// Removes every key. The table becomes one empty page covering the
    /// whole hash space, stamped with the current epoch, so a snapshot delta
    /// that carries it replaces every older page. A running snapshot keeps
    /// the old pages it has not written yet (they are freed as it writes
    /// them); the new page is not part of it.
    pub fn clear(&mut self) {
        drop(self.take_pages());
    }

    /// [`PageTable::clear`], giving the old pages to the caller (to free
    /// them on the lazy-free thread) instead of freeing them here, less
    /// those a running snapshot still needs (it keeps them, as `clear`).
    pub fn take_pages(&mut self) -> Vec<Page> {
        let capture = self.capture.take();
        let old = std::mem::replace(self, PageTable::new(self.epoch));
        let mut pages = old.pages;
        if let Some(mut c) = capture {
            c.retired
                .extend(pages.extract_if(.., |p| p.serialized_epoch < c.epoch));
            for p in &mut self.pages {
                p.serialized_epoch = c.epoch;
            }
            self.capture = Some(c);
        }
        pages
    }

    /// Splits page `idx` on its next hash bit. A running snapshot writes
    /// the page first if it has not yet (its entries are about to move).
    fn split(&mut self, idx: usize) {
        let depth = self.pages[idx].depth;
        if depth >= MAX_DEPTH {
            return;
        }
        if let Some(c) = &mut self.capture {
            c.save_page(&mut self.pages[idx]);
        }
        if depth == self.global_depth {
            // Double the directory: slot i becomes slots 2i and 2i+1.
            let mut dir = Vec::with_capacity(self.dir.len() * 2);
            for &p in &self.dir {
                dir.push(p);
                dir.push(p);
            }
            self.dir = dir;
            self.global_depth += 1;
        }
        let bit = 1u64 << (63 - depth);
        let old = &mut self.pages[idx];
        // A split changes no entry: each half keeps the epochs of the
        // parent, and its masks are the parent's for its half of the range
        // (each parent sub-range is two of the half's).
        let mut hi = Page::new(old.prefix | bit, depth + 1, old.modified_epoch);
        hi.serialized_epoch = old.serialized_epoch;
        hi.changed = widen(old.changed >> 32);
        hi.changed_before = widen(old.changed_before >> 32);
        old.changed = widen(old.changed);
        old.changed_before = widen(old.changed_before);
        old.depth = depth + 1;
        let moved: Vec<Entry> = old.entries.extract_if(|e| e.hash & bit != 0).collect();
        // Each half holds about half the entries: give the moved ones a table
        // of their size and give back what the old half no longer needs.
        hi.entries.reserve(moved.len(), |x| table_hash(x.hash));
        let remaining = old.entries.len();
        old.entries.shrink_to(remaining, |x| table_hash(x.hash));
        for e in moved {
            if e.is_volatile() {
                old.volatile -= 1;
                hi.volatile += 1;
            }
            let b = e.heap_bytes();
            old.bytes = old.bytes.saturating_sub(b);
            hi.bytes += b;
            hi.entries
                .insert_unique(table_hash(e.hash), e, |x| table_hash(x.hash));
        }
        let hi_prefix = hi.prefix;
        let hi_idx = self.pages.len() as u32;
        self.pages.push(hi);
        // Re-point the directory slots of the upper half.
        let shift = 64 - self.global_depth;
        let span = 1usize << (self.global_depth - (depth + 1));
        let first = (hi_prefix >> shift) as usize;
        for slot in &mut self.dir[first..first + span] {
            *slot = hi_idx;
        }
        // A split page may still be over capacity (or over its bytes) if
        // its keys all went one way.
        let hi_idx = hi_idx as usize;
        if self.pages[idx].len() > PAGE_CAPACITY || self.over_bytes(idx) {
            self.split(idx);
        }
        if self.pages[hi_idx].len() > PAGE_CAPACITY || self.over_bytes(hi_idx) {
            self.split(hi_idx);
        }
    }

    /// Visits pages in hash order starting at the page that holds hash
    /// position `pos`. Calls `f` for each page until it returns false.
    /// Returns the hash position after the last visited page, or None if the
    /// end of the hash space was reached.
    pub fn visit_from(&self, mut pos: u64, mut f: impl FnMut(&Page) -> bool) -> Option<u64> {
        loop {
            let page = self.page(pos);
            let keep_going = f(page);
            match page.range_end() {
                None => return None,
                Some(end) => pos = end,
            }
            if !keep_going {
                return Some(pos);
            }
        }
    }

    /// Iterates every entry (in page order).
    pub fn iter(&self) -> impl Iterator<Item = &Entry> {
        self.pages.iter().flat_map(|p| p.entries.iter())
    }

    /// A random entry, or None if the table is empty. `rnd` is a random u64.
    pub fn random_entry(&self, mut rnd: impl FnMut() -> u64) -> Option<&Entry> {
        if self.len == 0 {
            return None;
        }
        // Pages are at most PAGE_CAPACITY entries, so a few tries at random
        // slots almost always land on a non-empty page.
        for _ in 0..32 {
            let slot = (rnd() % self.dir.len() as u64) as usize;
            let page = &self.pages[self.dir[slot] as usize];
            if !page.is_empty() {
                let n = (rnd() % page.len() as u64) as usize;
                return page.entries.iter().nth(n);
            }
        }
        let n = (rnd() % self.len as u64) as usize;
        self.iter().nth(n)
    }

    /// Active expiry: starting at page `cursor`, removes expired entries from
    /// pages that hold volatile keys, looking at no more than about `budget`
    /// volatile entries, and appends them to `removed` (for the caller to
    /// log and free). Returns (next cursor, entries examined).
    pub fn expire_sample(
        &mut self,
        cursor: usize,
        budget: usize,
        now_ms: u64,
        removed: &mut Vec<Entry>,
    ) -> (usize, usize) {
        let n = self.pages.len();
        let mut examined = 0;
        let mut idx = cursor % n;
        for _ in 0..n {
            if examined >= budget {
                break;
            }
            let page = &self.pages[idx];
            if page.volatile > 0 {
                examined += page.volatile as usize;
                if page.entries.iter().any(|e| e.is_expired(now_ms)) {
                    let page = &self.pages[idx];
                    let bits = page
                        .entries
                        .iter()
                        .filter(|e| e.is_expired(now_ms))
                        .fold(0u64, |m, e| m | 1u64 << page.sub_range(e.hash));
                    let page = self.page_for_write(idx, bits);
                    let before = removed.len();
                    removed.extend(page.entries.extract_if(|e| e.is_expired(now_ms)));
                    let k = removed.len() - before;
                    page.volatile -= k as u32;
                    self.volatile -= k;
                    self.len -= k;
                }
            }
            idx = (idx + 1) % n;
        }
        (idx, examined)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyhash::hash_key;
    use std::sync::Arc;

    fn key(i: usize) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    fn put(t: &mut PageTable, k: &[u8]) {
        t.insert(hash_key(k), k, Value::string(k.to_vec()), 0);
    }

    /// A write to a chunked value while a snapshot runs copies nothing:
    /// the value's page is written first (its chunks queued, shared), and
    /// the chunk the write changes is written out of order, then changed
    /// in place; the snapshot still loads the value as it was at the
    /// barrier, and nothing the snapshot holds grows with the writes.
    #[test]
    fn a_write_to_a_big_value_during_a_snapshot_copies_no_chunk() {
        let big: Vec<u8> = (0..40 * CHUNK + 9).map(|i| (i % 253) as u8).collect();
        let mut t = PageTable::new(1);
        for i in 0..300 {
            put(&mut t, &key(i));
        }
        let h = hash_key(b"big");
        t.insert(h, b"big", Value::string(big.clone()), 0);
        t.set_epoch(2);
        t.begin_capture(1, true, 0, false);
        let chunk_ptr = |t: &PageTable, i: usize| {
            let Value::Str(s) = &t.get(h, b"big").unwrap().value else {
                panic!("not a string");
            };
            Arc::as_ptr(&s.as_chunked().unwrap().chunks()[i])
        };
        let before = [chunk_ptr(&t, 3), chunk_ptr(&t, 20)];
        for at in [
            3 * CHUNK + 1,
            3 * CHUNK + 2,
            20 * CHUNK + 100,
            3 * CHUNK + 100,
        ] {
            let Some(Value::Str(s)) = t.get_value_mut_at(h, b"big", at, at + 1) else {
                panic!("no value");
            };
            s.set_range(at, b"!");
        }
        assert_eq!(
            [chunk_ptr(&t, 3), chunk_ptr(&t, 20)],
            before,
            "the chunks are changed in place, not copied"
        );
        // The live value's other chunks are shared with the queue only.
        let Value::Str(s) = &t.get(h, b"big").unwrap().value else {
            panic!("not a string");
        };
        let counts: Vec<usize> = s
            .as_chunked()
            .unwrap()
            .chunks()
            .iter()
            .map(Arc::strong_count)
            .collect();
        assert_eq!((counts[3], counts[20]), (1, 1), "{counts:?}");
        assert!(counts.iter().all(|&n| n <= 2), "{counts:?}");
        // The snapshot holds the value at the barrier.
        let (firsts, entries) = capture_to_end(&mut t);
        let found = entries
            .into_iter()
            .find(|e| &*e.key == b"big")
            .map(|e| e.value);
        // Chunks 3 and 20 first, on their own; then the others in frames
        // of at most 4, around them.
        assert_eq!(&firsts[..2], &[(3, 1), (20, 1)]);
        assert_eq!(firsts.iter().map(|f| f.1).sum::<usize>(), 41);
        assert!(
            firsts.contains(&(0, 3)) && firsts.contains(&(4, 4)),
            "{firsts:?}"
        );
        assert_eq!(found, Some(Value::string(big)));
    }

    /// Past [`SPILL_MAX`] of output waiting, a write copies the chunk it
    /// changes (the output stays bounded), and the walker writes the old
    /// ones first; the snapshot is still the value at the barrier.
    #[test]
    fn chunks_copied_past_the_spill_bound_are_written_first() {
        let n = 2 * (SPILL_MAX / CHUNK) + 40;
        let big: Vec<u8> = (0..n * CHUNK).map(|i| (i % 249) as u8).collect();
        let mut t = PageTable::new(1);
        let h = hash_key(b"big");
        t.insert(h, b"big", Value::string(big.clone()), 0);
        t.set_epoch(2);
        t.begin_capture(1, true, 0, false);
        // Chunks 0, 2, 4, ...: the first SPILL_MAX are spilled, the rest
        // copied (each written twice: noted once).
        for _ in 0..2 {
            for i in (0..n).step_by(2) {
                let at = i * CHUNK + 5;
                let Some(Value::Str(s)) = t.get_value_mut_at(h, b"big", at, at + 1) else {
                    panic!("no value");
                };
                s.set_range(at, b"!");
            }
        }
        let c = t.capture.as_ref().unwrap();
        assert!(c.out.len() >= SPILL_MAX && c.out.len() < SPILL_MAX + 2 * CHUNK);
        let copied: Vec<usize> = c.copied.iter().map(|x| x.2).collect();
        assert!(!copied.is_empty());
        assert!(copied.iter().all(|i| i % 2 == 0), "{copied:?}");
        let unique: std::collections::BTreeSet<usize> = copied.iter().copied().collect();
        assert_eq!(unique.len(), copied.len(), "each noted once");
        let (frames, entries) = capture_to_end(&mut t);
        let firsts: Vec<usize> = frames.iter().map(|&(first, _)| first as usize).collect();
        let found = entries
            .into_iter()
            .find(|e| &*e.key == b"big")
            .map(|e| e.value);
        // After the spilled chunks (one frame each, with its 40-byte
        // header) come the copied ones, the last noted first.
        let k = SPILL_MAX.div_ceil(CHUNK + 40);
        assert!(firsts[..k].iter().all(|i| i % 2 == 0));
        let after: Vec<usize> = firsts[k..k + copied.len()].to_vec();
        let mut want = copied.clone();
        want.reverse();
        assert_eq!(after, want);
        assert_eq!(found, Some(Value::string(big)));
    }

    /// Pages split by bytes as well as entries, and count their bytes
    /// exactly through inserts, replacements, removals and values changed
    /// in place.
    #[test]
    fn pages_split_by_bytes_and_count_them_exactly() {
        let mut t = PageTable::new(1);
        let v = |n: usize| Value::string(vec![7u8; n]);
        // 40 values of 100 KiB (4 MiB): under 112 entries, over 1 MiB.
        for i in 0..40 {
            let k = key(i);
            t.insert(hash_key(&k), &k, v(100 << 10), 0);
        }
        for i in 0..10 {
            let k = key(i);
            let Some(Value::Str(s)) = t.get_value_mut(hash_key(&k), &k) else {
                panic!("no value");
            };
            s.append(&vec![1u8; 300 << 10]);
        }
        for i in 10..20 {
            let k = key(i);
            t.insert(hash_key(&k), &k, v(10), 0);
        }
        for i in 20..25 {
            let k = key(i);
            t.remove(hash_key(&k), &k);
        }
        put(&mut t, b"last");
        assert!(t.pages().len() > 4, "{} pages", t.pages().len());
        for p in t.pages() {
            let sum: usize = p.entries().map(Entry::heap_bytes).sum();
            assert_eq!(p.bytes(), sum);
            assert!(
                p.bytes() <= PAGE_BYTES || p.len() == 1,
                "page {:x}/{}: {} bytes in {} entries",
                p.prefix(),
                p.depth(),
                p.bytes(),
                p.len()
            );
        }
        assert_eq!(t.len(), 36);
        for i in (0..20).chain(25..40) {
            let k = key(i);
            assert!(t.get(hash_key(&k), &k).is_some(), "key {i}");
        }
        // A page-by-page walk (SCAN's) that splits pages by bytes as it
        // goes still sees every key that was there throughout.
        let mut seen = std::collections::BTreeSet::new();
        let mut pos = Some(0u64);
        let mut steps = 0;
        while let Some(p) = pos {
            pos = t.visit_from(p, |page| {
                seen.extend(page.entries().map(|e| e.key.to_vec()));
                false
            });
            steps += 1;
            if steps == 2 {
                let before = t.pages().len();
                for i in 100..120 {
                    let k = key(i);
                    t.insert(hash_key(&k), &k, v(200 << 10), 0);
                }
                assert!(t.pages().len() > before);
            }
        }
        for i in (0..20).chain(25..40) {
            assert!(seen.contains(&key(i)), "key {i} not seen");
        }
    }

    #[test]
    fn insert_get_remove_and_split() {
        let mut t = PageTable::new(1);
        for i in 0..10_000 {
            put(&mut t, &key(i));
        }
        assert_eq!(t.len(), 10_000);
        assert!(t.pages().len() > 10_000 / PAGE_CAPACITY);
        for p in t.pages() {
            assert!(p.len() <= PAGE_CAPACITY);
            // Every entry is in the page that owns its hash.
            for e in p.entries() {
                let mask = if p.depth() == 0 {
                    0
                } else {
                    !0u64 << (64 - p.depth())
                };
                assert_eq!(e.hash & mask, p.prefix());
            }
        }
        for i in 0..10_000 {
            let k = key(i);
            assert_eq!(
                t.get(hash_key(&k), &k).map(|e| e.value.clone()),
                Some(Value::string(k.clone()))
            );
        }
        for i in 0..5_000 {
            let k = key(i);
            assert!(t.remove(hash_key(&k), &k).is_some());
            assert!(t.remove(hash_key(&k), &k).is_none());
        }
        assert_eq!(t.len(), 5_000);
        assert_eq!(t.iter().count(), 5_000);
    }

    #[test]
    fn every_mutation_stamps_the_epoch_and_reads_do_not() {
        let mut t = PageTable::new(1);
        for i in 0..1000 {
            put(&mut t, &key(i));
        }
        let k = key(7);
        let h = hash_key(&k);
        let page_epoch = |t: &PageTable| t.page(h).modified_epoch;

        t.set_epoch(2);
        assert_eq!(page_epoch(&t), 1);
        assert!(t.get(h, &k).is_some());
        assert_eq!(page_epoch(&t), 1, "a read must not mark the page");

        t.set_epoch(3);
        t.insert(h, &k, Value::string(b"x".to_vec()), 0);
        assert_eq!(page_epoch(&t), 3, "insert marks");

        t.set_epoch(4);
        t.get_value_mut(h, &k);
        assert_eq!(page_epoch(&t), 4, "value mutation marks");

        t.set_epoch(5);
        assert!(t.set_expire(h, &k, 123));
        assert_eq!(page_epoch(&t), 5, "expire marks");
        assert_eq!(t.volatile_len(), 1);

        t.set_epoch(6);
        assert!(t.set_expire(h, &k, 123));
        assert_eq!(page_epoch(&t), 5, "a no-op expire does not mark");

        t.set_epoch(7);
        t.remove(h, &k);
        assert_eq!(page_epoch(&t), 7, "remove marks");
        assert_eq!(t.volatile_len(), 0);

        // Pages not touched keep their epoch.
        let untouched = t.pages().iter().filter(|p| p.modified_epoch == 1).count();
        assert!(untouched > 0);

        t.set_epoch(8);
        t.clear();
        assert_eq!(t.pages().len(), 1);
        assert_eq!(
            t.pages()[0].modified_epoch,
            8,
            "flush marks the whole range"
        );
    }

    #[test]
    fn split_keeps_epochs_and_halves_the_masks() {
        let mut t = PageTable::new(1);
        for i in 0..PAGE_CAPACITY {
            put(&mut t, &key(i));
        }
        assert_eq!(t.pages().len(), 1);
        t.pages[0].serialized_epoch = 1;
        t.snapshot_saved(1);
        t.set_epoch(2);
        let k = key(PAGE_CAPACITY);
        let h = hash_key(&k);
        put(&mut t, &k);
        assert!(t.pages().len() >= 2);
        for p in t.pages() {
            assert_eq!(p.modified_epoch, 2);
            assert_eq!(p.serialized_epoch, 1);
            // Only the new key's sub-range changed: in its page, the two
            // halves of the parent's sub-range; nothing in the others.
            let want = if p.range_end().is_none_or(|e| h < e) && h >= p.prefix() {
                let half = 3u64 << (2 * (p.sub_range(h) / 2));
                assert_ne!(half & 1u64 << p.sub_range(h), 0);
                half
            } else {
                0
            };
            assert_eq!(
                p.changed_mask(),
                want,
                "page {:x}/{}",
                p.prefix(),
                p.depth()
            );
        }
    }

    #[test]
    fn changes_mark_their_sub_range_until_a_snapshot_is_saved() {
        let mut t = PageTable::new(1);
        for i in 0..50 {
            put(&mut t, &key(i));
        }
        t.snapshot_saved(1);
        assert_eq!(t.pages()[0].changed_mask(), 0);
        t.set_epoch(2);
        let (a, b) = (key(3), key(4));
        let bit = |t: &PageTable, k: &[u8]| 1u64 << t.pages()[0].sub_range(hash_key(k));
        t.remove(hash_key(&a), &a);
        assert_eq!(t.pages()[0].changed_mask(), bit(&t, &a));
        // A snapshot closes epoch 2 and fails: the change still counts.
        t.set_epoch(3);
        t.set_expire(hash_key(&b), &b, 99);
        assert_eq!(t.pages()[0].changed_mask(), bit(&t, &a) | bit(&t, &b));
        // The next one (closing 3) is saved while epoch 4 runs: only the
        // change made in epoch 4 is left.
        t.set_epoch(4);
        put(&mut t, &a);
        t.snapshot_saved(3);
        assert_eq!(t.pages()[0].changed_mask(), bit(&t, &a));
        t.snapshot_saved(4);
        assert_eq!(t.pages()[0].changed_mask(), 0);
        t.mark_all_modified();
        assert_eq!(t.pages()[0].changed_mask(), u64::MAX);
    }

    #[test]
    fn misses_do_not_mark() {
        let mut t = PageTable::new(1);
        put(&mut t, b"a");
        t.set_epoch(2);
        assert!(t.remove(hash_key(b"zz"), b"zz").is_none());
        assert!(t.get_value_mut(hash_key(b"zz"), b"zz").is_none());
        assert!(!t.set_expire(hash_key(b"zz"), b"zz", 5));
        assert_eq!(t.pages()[0].modified_epoch, 1);
    }

    #[test]
    fn visit_covers_each_page_once_in_order() {
        let mut t = PageTable::new(1);
        for i in 0..5000 {
            put(&mut t, &key(i));
        }
        let mut seen = 0;
        let mut last = None;
        let mut pos = Some(0);
        while let Some(p) = pos {
            pos = t.visit_from(p, |page| {
                if let Some(l) = last {
                    assert!(page.prefix() > l);
                }
                last = Some(page.prefix());
                seen += page.len();
                seen < 100 // stop early now and then to exercise resumption
            });
        }
        assert_eq!(seen, 5000);
    }

    #[test]
    fn active_expiry_removes_only_expired() {
        let mut t = PageTable::new(1);
        for i in 0..1000 {
            let k = key(i);
            let exp = if i % 2 == 0 { 100 } else { 0 };
            t.insert(hash_key(&k), &k, Value::string(vec![]), exp);
        }
        t.set_epoch(2);
        let mut removed = Vec::new();
        let mut cursor = 0;
        for _ in 0..100 {
            cursor = t.expire_sample(cursor, 50, 50, &mut removed).0;
        }
        assert!(removed.is_empty());
        assert!(t.pages().iter().all(|p| p.modified_epoch == 1));
        for _ in 0..100 {
            cursor = t.expire_sample(cursor, 50, 100, &mut removed).0;
        }
        assert_eq!(removed.len(), 500);
        assert_eq!(t.len(), 500);
        assert_eq!(t.volatile_len(), 0);
    }

    /// Runs a capture to its end: the chunks frames (their first index
    /// and piece count) in the order written, and every entry the
    /// snapshot holds.
    fn capture_to_end(t: &mut PageTable) -> (Vec<(u32, usize)>, Vec<Entry>) {
        let mut out = Vec::new();
        loop {
            let done = t.capture_step(1 << 20, None);
            t.take_frames(&mut out);
            if done {
                break;
            }
        }
        let mut pos = 0;
        let mut firsts = Vec::new();
        let mut entries = Vec::new();
        let mut assembler = snapformat::Assembler::default();
        while pos < out.len() {
            let rest = &out[pos..];
            let snapformat::Parsed::Frame(frame, n) =
                snapformat::parse_frame(rest, 0, rest.len() as u64).unwrap()
            else {
                panic!("not a whole frame");
            };
            if let snapformat::Frame::Chunks { first, chunks, .. } = &frame {
                firsts.push((*first, chunks.len()));
            }
            if let Some(f) = assembler.add(frame, 0).unwrap() {
                entries.extend(f.decode_entries(0).unwrap());
            }
            pos += n;
        }
        assembler.finish(0).unwrap();
        (firsts, entries)
    }

    /// A write to a big hash during a snapshot copies nothing: the hash's
    /// page is written first (the hash as a segmented entry, its segments
    /// queued, shared), the segment a write is about to change is written
    /// out of order and then changed in place; writes that split segments
    /// leave the queued ones alone; the snapshot loads the hash as it was
    /// at the barrier, and the live hash has every write.
    #[test]
    fn a_write_to_a_big_hash_during_a_snapshot_writes_its_segment_first() {
        use crate::types::hash::{Hash, Limits};
        let make = || {
            let mut big = Hash::new();
            for i in 0..50_000 {
                big.set(format!("field:{i}").as_bytes(), b"value", Limits::default());
            }
            big
        };
        // (Built again: a clone would share the segments, and the writes
        // would copy them.)
        let (big, at_barrier) = (make(), make());
        let mut t = PageTable::new(1);
        for i in 0..300 {
            put(&mut t, &key(i));
        }
        let h = hash_key(b"big");
        t.insert(h, b"big", Value::Hash(big), 0);
        t.set_epoch(2);
        t.begin_capture(1, true, 0, false);
        let table = |t: &PageTable| {
            let Value::Hash(Hash::Table(tb)) = &t.get(h, b"big").unwrap().value else {
                panic!("not a hashtable");
            };
            tb.clone()
        };
        let nsegs = table(&t).segments().len();
        assert!(nsegs > 40, "{nsegs} segments");
        let seg7 = table(&t).segment_of(b"field:7");
        let before = Arc::as_ptr(&table(&t).segments()[seg7]);
        for v in [&b"1"[..], b"2", b"3"] {
            let f = &b"field:7"[..];
            let Some(Value::Hash(hash)) = t.get_value_mut_for(h, b"big", std::iter::once(f)) else {
                panic!("no hash");
            };
            hash.set(f, v, Limits::default());
        }
        assert_eq!(
            Arc::as_ptr(&table(&t).segments()[seg7]),
            before,
            "the segment is changed in place, not copied"
        );
        // New fields, enough to split segments (each written before).
        for i in 50_000..110_000 {
            let f = format!("field:{i}").into_bytes();
            let Some(Value::Hash(hash)) =
                t.get_value_mut_for(h, b"big", std::iter::once(f.as_slice()))
            else {
                panic!("no hash");
            };
            hash.set(&f, b"new", Limits::default());
        }
        let live = table(&t);
        assert!(live.segments().len() > nsegs, "segments split");
        // Nothing the live hash holds is shared with the snapshot any more
        // but the segments not written yet (none was copied).
        let shared = live
            .segments()
            .iter()
            .filter(|s| Arc::strong_count(s) > 1)
            .count();
        assert!(shared < nsegs, "{shared} of {nsegs} shared");
        let c = t.capture.as_ref().unwrap();
        assert!(c.copied.is_empty());
        let (firsts, entries) = capture_to_end(&mut t);
        assert_eq!(firsts[0], (seg7 as u32, 1), "the changed segment first");
        assert_eq!(
            firsts.iter().map(|f| f.1).sum::<usize>(),
            nsegs,
            "each segment once"
        );
        let found: Vec<&Entry> = entries.iter().filter(|e| &*e.key == b"big").collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, Value::Hash(at_barrier));
        let Value::Hash(now) = &t.get(h, b"big").unwrap().value else {
            panic!("no hash");
        };
        assert_eq!(now.get(b"field:7"), Some(&b"3"[..]));
        assert_eq!(now.len(), 110_000);
    }

    /// As `a_write_to_a_big_hash_during_a_snapshot_writes_its_segment_first`,
    /// for a big set (members added and removed).
    #[test]
    fn a_write_to_a_big_set_during_a_snapshot_writes_its_segment_first() {
        use crate::types::set::{Limits, Set};
        let members: Vec<Vec<u8>> = (0..200_000)
            .map(|i| format!("member:{i}").into_bytes())
            .collect();
        let make = || Set::from_members(members.iter().map(Vec::as_slice), &Limits::default());
        let (set, at_barrier) = (make().unwrap(), make().unwrap());
        let mut t = PageTable::new(1);
        for i in 0..300 {
            put(&mut t, &key(i));
        }
        let h = hash_key(b"bigset");
        t.insert(h, b"bigset", Value::Set(set), 0);
        t.set_epoch(2);
        t.begin_capture(1, true, 0, false);
        let segs = |t: &PageTable| {
            let Value::Set(s) = &t.get(h, b"bigset").unwrap().value else {
                panic!("not a set");
            };
            s.segments().unwrap().to_vec()
        };
        let nsegs = segs(&t).len();
        assert!(nsegs > 100, "{nsegs} segments");
        let seg_of = |t: &PageTable, m: &[u8]| t.get(h, b"bigset").unwrap().value.segment_of(m);
        let first = seg_of(&t, b"new member").unwrap();
        let before = Arc::as_ptr(&segs(&t)[first]);
        let m = &b"new member"[..];
        let Some(Value::Set(s)) = t.get_value_mut_for(h, b"bigset", std::iter::once(m)) else {
            panic!("no set");
        };
        assert!(s.add(m, &Limits::default()));
        assert_eq!(Arc::as_ptr(&segs(&t)[first]), before, "changed in place");
        for i in 0..300_000 {
            let m = if i % 3 == 0 {
                format!("member:{}", i / 3).into_bytes()
            } else {
                format!("more:{i}").into_bytes()
            };
            let Some(Value::Set(s)) =
                t.get_value_mut_for(h, b"bigset", std::iter::once(m.as_slice()))
            else {
                panic!("no set");
            };
            if i % 3 == 0 {
                assert!(s.remove(&m));
            } else {
                assert!(s.add(&m, &Limits::default()));
            }
        }
        assert!(segs(&t).len() > nsegs, "segments split");
        assert!(t.capture.as_ref().unwrap().copied.is_empty());
        let (firsts, entries) = capture_to_end(&mut t);
        assert_eq!(firsts[0], (first as u32, 1), "the changed segment first");
        assert_eq!(firsts.iter().map(|f| f.1).sum::<usize>(), nsegs);
        let found: Vec<&Entry> = entries.iter().filter(|e| &*e.key == b"bigset").collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, Value::Set(at_barrier));
        let Value::Set(now) = &t.get(h, b"bigset").unwrap().value else {
            panic!("no set");
        };
        assert!(now.contains(b"new member") && !now.contains(b"member:0"));
        assert_eq!(now.len(), 200_000 + 1 + 200_000 - 100_000);
    }

    /// Past [`SPILL_MAX`] of output waiting, a write to a big set copies
    /// the segment it changes instead of writing it first (noted once),
    /// and the walker writes the old ones before any other; the snapshot
    /// still loads the set at the barrier.
    #[test]
    fn segments_copied_past_the_spill_bound_are_written_first() {
        use crate::types::set::{Limits, Set};
        let members: Vec<Vec<u8>> = (0..1_000_000)
            .map(|i| format!("member:{i}").into_bytes())
            .collect();
        let make = || Set::from_members(members.iter().map(Vec::as_slice), &Limits::default());
        let (set, at_barrier) = (make().unwrap(), make().unwrap());
        let mut t = PageTable::new(1);
        let h = hash_key(b"bigset");
        t.insert(h, b"bigset", Value::Set(set), 0);
        t.set_epoch(2);
        t.begin_capture(1, true, 0, false);
        for i in 0..50_000 {
            let m = format!("new:{i}").into_bytes();
            let Some(Value::Set(s)) =
                t.get_value_mut_for(h, b"bigset", std::iter::once(m.as_slice()))
            else {
                panic!("no set");
            };
            assert!(s.add(&m, &Limits::default()));
        }
        let c = t.capture.as_ref().unwrap();
        assert!(c.out.len() >= SPILL_MAX, "{} bytes out", c.out.len());
        let copied: Vec<usize> = c.copied.iter().map(|x| x.2).collect();
        assert!(!copied.is_empty());
        let unique: std::collections::BTreeSet<usize> = copied.iter().copied().collect();
        assert_eq!(unique.len(), copied.len(), "each noted once");
        let spilled = t
            .capture
            .as_ref()
            .unwrap()
            .queue
            .iter()
            .flat_map(|b| &b.chunks)
            .filter(|p| p.is_none())
            .count();
        let (firsts, entries) = capture_to_end(&mut t);
        // The spilled segments first, then the copied ones, last noted
        // first, one a frame.
        let after: Vec<usize> = firsts[spilled..spilled + copied.len()]
            .iter()
            .map(|f| f.0 as usize)
            .collect();
        let mut want = copied.clone();
        want.reverse();
        assert_eq!(after, want);
        let found: Vec<&Entry> = entries.iter().filter(|e| &*e.key == b"bigset").collect();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].value, Value::Set(at_barrier));
        let Value::Set(now) = &t.get(h, b"bigset").unwrap().value else {
            panic!("no set");
        };
        assert_eq!(now.len(), 1_050_000);
    }
}
