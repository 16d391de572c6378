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

use hashbrown::HashTable;

use crate::value::{Entry, Value};

mod capture;

use capture::Capture;

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
    /// Of `bytes`, those of entries whose values are shared pieces
    /// ([`shared_bytes`]), kept up to date the same way.
    shared: usize,
    /// While a snapshot runs and has not written this page: the barrier
    /// state of the keys changed since ([`Capture::keep`]), as a list of
    /// the capture's records (index + 1 of the newest; 0: none). A map of
    /// the capture, or a Vec per page, grew into fresh memory on the event
    /// loop (5-8 ms each time, measured); the records are in pooled chunks.
    kept: u32,
}

/// The bytes of `e` ([`Entry::heap_bytes`]) if its value is held in
/// pieces shared with a running snapshot (a chunked string, a segmented
/// hash or set: [`Value::is_chunked`]), else 0. Copy-before-write never
/// keeps such a value aside: a write to it writes the pieces it changes
/// first (or copies one), so these bytes need no room in the snapshot's
/// kept arenas.
pub fn shared_bytes(e: &Entry) -> usize {
    if e.value.is_chunked() {
        e.heap_bytes()
    } else {
        0
    }
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
            shared: 0,
            kept: 0,
        }
    }

    /// Bytes its entries take ([`Entry::heap_bytes`]).
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Of [`Page::bytes`], those of entries held in shared pieces
    /// ([`shared_bytes`]).
    pub fn shared_bytes(&self) -> usize {
        self.shared
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
    /// its key's hash, and the bytes it took then, all and shared
    /// ([`PageTable::settle`]).
    changing: Option<(usize, u64, usize, usize)>,
    /// The epoch the table's contents were last exchanged wholesale in
    /// (SWAPDB, [`PageTable::mark_all_modified`]): every value counts as
    /// placed then, whatever its own epoch says (it was another
    /// database's at older snapshots).
    placed_floor: u64,
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
            placed_floor: 0,
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

    /// Lets the running delta write a big value placed at or before
    /// `base` (the epoch of the snapshot it builds on) as a patch of the
    /// chunks changed since (docs/FORMATS.md, type 7), unless the table's
    /// contents were exchanged since `base` (SWAPDB).
    pub fn set_patch_base(&mut self, base: Option<u64>) {
        let floor = self.placed_floor;
        if let Some(c) = &mut self.capture {
            c.set_patch_base(base.filter(|&b| floor <= b));
        }
    }

    /// Moves the table to a new snapshot epoch (called by the shard at a
    /// snapshot barrier).
    pub fn set_epoch(&mut self, epoch: u64) {
        // (A big value the last change made is placed in the epoch it
        // was made in: see `settle`.)
        self.settle();
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

    /// Of [`PageTable::bytes`], those of entries held in shared pieces
    /// ([`shared_bytes`]), one add per page.
    pub fn shared_bytes(&self) -> usize {
        self.pages.iter().map(Page::shared_bytes).sum()
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
        let e = self.pages[idx].find(hash, key)?;
        let (before, shared) = (e.heap_bytes(), shared_bytes(e));
        self.changing = Some((idx, hash, before, shared));
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
        let Some((idx, hash, before, shared)) = self.changing.take() else {
            return;
        };
        let Some(page) = self.pages.get_mut(idx) else {
            return;
        };
        // (Two keys of one hash in a page would only blur the count.)
        if let Some(e) = page.entries.find_mut(table_hash(hash), |e| e.hash == hash) {
            page.bytes = (page.bytes + e.heap_bytes()).saturating_sub(before);
            page.shared = (page.shared + shared_bytes(e)).saturating_sub(shared);
            // A big string the change made (APPEND growing a plain one)
            // is placed now: it is at its key, and later changes are
            // stamped on its chunks (a delta then patches it).
            e.value.place_if_new(self.epoch);
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
            if c.holds(hash) {
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
    pub fn insert(
        &mut self,
        hash: u64,
        key: &[u8],
        mut value: Value,
        expire_at: u64,
    ) -> Option<Entry> {
        self.settle();
        // A new value at this key: a delta writes it whole.
        value.place(self.epoch);
        let idx = self.page_index(hash);
        let added = key.len() + value.heap_size();
        let added_shared = if value.is_chunked() { added } else { 0 };
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
        page.shared =
            (page.shared + added_shared).saturating_sub(old.as_ref().map_or(0, shared_bytes));
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
        page.shared = page.shared.saturating_sub(shared_bytes(&entry));
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
        self.placed_floor = epoch;
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
            let sb = shared_bytes(&e);
            old.shared = old.shared.saturating_sub(sb);
            hi.shared += sb;
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

    pub(super) fn key(i: usize) -> Vec<u8> {
        format!("key:{i}").into_bytes()
    }

    pub(super) fn put(t: &mut PageTable, k: &[u8]) {
        t.insert(hash_key(k), k, Value::string(k.to_vec()), 0);
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
}
