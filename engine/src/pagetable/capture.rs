//! A running snapshot's capture of one [`PageTable`]: the walker that
//! encodes the pages the snapshot still needs into frames, the queue of
//! big values' pieces still to write, and copy-before-write (a key's state
//! at the barrier kept aside, or a piece written first, out of order).

use std::collections::VecDeque;

use super::{Page, PageTable, PAGE_CAPACITY, SUB_BITS, SUB_RANGES};
use crate::snapshot::format::{
    self as snapformat, Encoder, EntryRef, Output, Piece, PieceRun, Tally,
};
use crate::snapshot::kept::{Arena, Records, Span, RECORD};
use crate::types::string::CHUNK;

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
    pub(super) epoch: u64,
    /// Every page whole (a full snapshot), or only what changed (a delta).
    full: bool,
    /// The database number written into the frames: the table's number at
    /// the barrier (a SWAPDB moves the capture with the table).
    db: u16,
    compress: bool,
    /// Frames not yet taken: page and ranges frames encoded, chunks
    /// frames as references to their pieces (encoded by whoever takes
    /// them: [`PageTable::take_output`] hands them over as they are, so
    /// that the writer encodes them off the event loop); and the count of
    /// the encoded ones.
    out: Output,
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
    pub(super) retired: Vec<Page>,
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
    out: &mut Output,
    queue: &mut VecDeque<Big>,
    frames: &mut u64,
    f: impl FnOnce(&mut Encoder, &mut Vec<u8>) -> Tally,
) -> Tally {
    let t = f(enc, out.bytes_mut());
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
        crate::snapshot::kept::recycle(self.out.take_buffer());
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
    pub(super) fn keep(&mut self, idx: u32, page: &mut Page, hash: u64, key: &[u8]) {
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
    pub(super) fn save_page(&mut self, page: &mut Page) -> usize {
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

    /// Adds a chunks frame of `pieces` to the output, by reference (not
    /// encoded here: see [`Capture::out`]); returns its bytes.
    fn push_run(&mut self, frame: u64, first: u32, pieces: Vec<Piece>) -> usize {
        let run = PieceRun {
            db: self.db,
            frame,
            first,
            pieces,
            compress: self.compress,
        };
        let n = run.raw_len();
        self.out.push_run(run);
        n
    }

    /// Moves queued chunks into the output, about `budget` bytes (one
    /// chunks frame at least), by reference; returns their bytes.
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
                    work += self.push_run(frame, first + i as u32, vec![chunk]);
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
                big.next = to;
                let (frame, first) = (big.frame, big.first + from as u32);
                if big.next >= big.chunks.len() {
                    self.queue.pop_front();
                }
                work += self.push_run(frame, first, run);
            } else if big.next >= big.chunks.len() {
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
    pub(super) fn spill(&mut self, hash: u64, from: usize, to: usize) {
        if to <= from {
            return;
        }
        self.spill_pieces(hash, from / CHUNK..=(to - 1) / CHUNK);
    }

    /// [`Capture::spill`] by the pieces' indices: chunks of a string,
    /// segments of a hash or set (a write of an element changes its
    /// segment, [`Value::segment_of`]).
    pub(super) fn spill_pieces(&mut self, hash: u64, pieces: impl Iterator<Item = usize> + Clone) {
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
                    self.out.bytes_mut(),
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

    /// See [`PageTable::set_patch_base`]: the encoder writes a chunked
    /// string placed at or before `base` as a patch of the chunks changed
    /// since ([`Encoder::set_patch_base`]).
    pub(super) fn set_patch_base(&mut self, base: Option<u64>) {
        self.enc.set_patch_base(if self.full { None } else { base });
    }

    /// Whether pieces of the value of `hash` are still queued.
    pub(super) fn holds(&self, hash: u64) -> bool {
        self.queue.iter().any(|b| b.hash == hash)
    }

    fn count(&mut self, t: Tally) {
        self.pending += t;
    }
}

impl PageTable {
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
            out: Output::with_buffer(if pooled {
                crate::snapshot::kept::buffer()
            } else {
                Vec::new()
            }),
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

    /// Moves the frames captured so far to the end of `out`, encoding
    /// the big values' pieces here (on the caller's thread); returns their
    /// count.
    pub fn take_frames(&mut self, out: &mut Vec<u8>) -> Tally {
        match &mut self.capture {
            Some(c) => {
                c.finish_parts();
                let mut t = std::mem::take(&mut c.pending);
                let (runs, _) = c.out.encode_some(&mut c.enc, out, &mut 0, usize::MAX);
                c.out.drop_spent();
                t.pages += runs.pages;
                t.bytes += runs.bytes;
                t
            }
            None => Tally::default(),
        }
    }

    /// Moves the frames captured so far to the end of `out` as they are:
    /// the big values' pieces as references, to encode where the caller
    /// chooses ([`Output::encode_some`]); returns the count of the frames
    /// encoded already (the runs' is [`Output::encode_some`]'s).
    pub fn take_output(&mut self, out: &mut Output) -> Tally {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keyhash::hash_key;
    use crate::pagetable::tests::{key, put};
    use crate::value::{Entry, Value};
    use std::sync::Arc;

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

    /// The walker encodes no piece of a big value: its output holds the
    /// chunks frames as references to the live value's chunks and
    /// segments (the writer encodes them off the event loop), and
    /// encoding that output in small steps gives the same bytes as
    /// [`PageTable::take_frames`], with their crc32c.
    #[test]
    fn the_walker_hands_big_values_pieces_by_reference() {
        use crate::snapshot::format::Output;
        use crate::types::hash::{Hash, Limits};
        let big: Vec<u8> = (0..40 * CHUNK + 9).map(|i| (i % 251) as u8).collect();
        let make = || {
            let mut t = PageTable::new(1);
            for i in 0..300 {
                put(&mut t, &key(i));
            }
            t.insert(hash_key(b"big"), b"big", Value::string(big.clone()), 0);
            let mut hash = Hash::new();
            for i in 0..20_000 {
                hash.set(format!("field:{i}").as_bytes(), b"value", Limits::default());
            }
            t.insert(hash_key(b"hash"), b"hash", Value::Hash(hash), 0);
            t.set_epoch(2);
            t.begin_capture(1, true, 0, true);
            t
        };
        let (mut t, mut reference) = (make(), make());
        let mut output = Output::default();
        let mut tally = Tally::default();
        loop {
            let done = t.capture_step(1 << 20, None);
            let n = t.take_output(&mut output);
            tally.pages += n.pages;
            tally.bytes += n.bytes;
            if done {
                break;
            }
        }
        let Value::Str(s) = &t.get(hash_key(b"big"), b"big").unwrap().value else {
            panic!("not a string");
        };
        let live = s.as_chunked().unwrap().chunks().to_vec();
        let Value::Hash(Hash::Table(tb)) = &t.get(hash_key(b"hash"), b"hash").unwrap().value else {
            panic!("not a hashtable");
        };
        let segs = tb.segments().to_vec();
        let (mut chunks, mut segments) = (0, 0);
        for run in output.runs() {
            for (i, p) in run.pieces.iter().enumerate() {
                let at = run.first as usize + i;
                match p {
                    Piece::Chunk(c) => {
                        assert!(Arc::ptr_eq(c, &live[at]), "chunk {at} is the live one");
                        chunks += 1;
                    }
                    Piece::HashSegment(g) => {
                        assert!(segs.iter().any(|x| Arc::ptr_eq(g, x)));
                        segments += 1;
                    }
                    Piece::SetSegment(_) => panic!("no set here"),
                }
            }
        }
        assert_eq!((chunks, segments), (live.len(), segs.len()));
        assert!(segs.len() > 10, "{} segments", segs.len());
        // Only the pages' frames are bytes.
        let raw: usize = output.runs().map(|r| r.raw_len()).sum();
        assert!(output.len() - raw < 1 << 20, "{} bytes", output.len() - raw);
        // Encoded a bit at a time, as the writer's job does.
        let (mut bytes, mut crc) = (Vec::new(), 0u32);
        let mut enc = Encoder::default();
        loop {
            let (t, done) = output.encode_some(&mut enc, &mut bytes, &mut crc, 10_000);
            tally.pages += t.pages;
            tally.bytes += t.bytes;
            if done {
                break;
            }
        }
        assert!(output.is_empty());
        let mut want = Vec::new();
        let mut want_tally = Tally::default();
        loop {
            let done = reference.capture_step(1 << 20, None);
            let n = reference.take_frames(&mut want);
            want_tally.pages += n.pages;
            want_tally.bytes += n.bytes;
            if done {
                break;
            }
        }
        assert_eq!(bytes.len(), want.len());
        assert!(bytes == want, "the same bytes");
        assert_eq!(crc, crc32c::crc32c(&want));
        assert_eq!(tally, want_tally);
        assert_eq!(tally.bytes, want.len() as u64);
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
