//! One shard: the part of every logical database whose keys hash to it,
//! owned by exactly one worker thread. Nothing in here is shared or locked.

use crate::keyhash::hash_key;
use crate::lazyfree::LazyFree;
use crate::pagetable::PageTable;
use crate::propagate::LogState;
use crate::value::{Entry, Value};

/// Counters reported by INFO stats, per shard (summed by the server).
#[derive(Debug, Default, Clone, Copy)]
pub struct ShardStats {
    pub keyspace_hits: u64,
    pub keyspace_misses: u64,
    pub expired_keys: u64,
    /// Changes since the last successful save (Redis's `server.dirty`).
    pub dirty: u64,
    /// Commands that broke their row's logging rule
    /// ([`crate::command::unlogged_change`]): always 0 unless a row is wrong.
    pub unlogged_changes: u64,
}

/// How much active expiry may examine per cycle and database
/// (Redis's ACTIVE_EXPIRE_CYCLE_KEYS_PER_LOOP is 20, repeated while more
/// than a quarter of the sample was expired).
pub const ACTIVE_EXPIRE_KEYS_PER_LOOP: usize = 20;
/// Upper bound of loops per cycle and database, so a cycle stays short.
pub const ACTIVE_EXPIRE_MAX_LOOPS: usize = 16;

pub struct Shard {
    id: usize,
    shards: usize,
    dbs: Vec<PageTable>,
    /// The clock for this batch of commands, in Unix milliseconds. The
    /// runtime sets it before executing; tests move it by hand.
    now_ms: u64,
    epoch: u64,
    pub stats: ShardStats,
    /// Largest string a command may build (`proto-max-bulk-len`); SETRANGE
    /// and APPEND refuse to grow past it.
    pub max_string_len: usize,
    rng: u64,
    expire_cursor: Vec<usize>,
    expire_scratch: Vec<Entry>,
    /// What writes leave for the log, and which replies wait for it.
    pub log: LogState,
    /// Where big values and emptied databases are freed (the lazy-free
    /// thread, or at once), and the `lazyfree-lazy-*` settings.
    pub lazyfree: LazyFree,
    /// `hash-max-listpack-entries` and `hash-max-listpack-value`.
    pub hash_limits: crate::types::hash::Limits,
    /// The thresholds sets convert at (`set-max-*` directives).
    pub set_limits: crate::types::set::Limits,
    /// The epoch the last successful snapshot closed (None: none yet, so
    /// the next one must be full).
    snapshot_since: Option<u64>,
    /// The epoch the running snapshot closes.
    snapshot_running: Option<u64>,
}

/// What a shard's part of a snapshot is, decided at its barrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotStart {
    /// The epoch the snapshot closes.
    pub epoch: u64,
    /// For a delta: the epoch of the snapshot it builds on.
    pub since: Option<u64>,
}

impl Shard {
    pub fn new(id: usize, shards: usize, databases: usize) -> Self {
        let epoch = 1;
        Shard {
            id,
            shards,
            dbs: (0..databases).map(|_| PageTable::new(epoch)).collect(),
            now_ms: 0,
            epoch,
            stats: ShardStats::default(),
            max_string_len: 512 * 1024 * 1024,
            rng: 0x9E37_79B9_7F4A_7C15 ^ ((id as u64 + 1) << 32),
            expire_cursor: vec![0; databases],
            expire_scratch: Vec::new(),
            log: LogState::default(),
            lazyfree: LazyFree::default(),
            hash_limits: Default::default(),
            set_limits: Default::default(),
            snapshot_since: None,
            snapshot_running: None,
        }
    }

    pub fn id(&self) -> usize {
        self.id
    }

    pub fn shard_count(&self) -> usize {
        self.shards
    }

    pub fn databases(&self) -> usize {
        self.dbs.len()
    }

    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    pub fn set_now_ms(&mut self, now: u64) {
        self.now_ms = now;
        crate::value::set_clock(now);
    }

    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Starts a new snapshot epoch on every database's pages.
    pub fn bump_epoch(&mut self) -> u64 {
        self.epoch += 1;
        for db in &mut self.dbs {
            db.set_epoch(self.epoch);
        }
        self.epoch
    }

    /// Bytes the shard's entries take, over its databases
    /// ([`PageTable::bytes`]): what sizes its snapshot writer's buffers
    /// (its memory pool: [`Shard::keepable_bytes`]). O(pages), no entry
    /// is read.
    pub fn data_bytes(&self) -> usize {
        self.dbs.iter().map(PageTable::bytes).sum()
    }

    /// Of [`Shard::data_bytes`], those copy-before-write may keep aside
    /// in a snapshot's arenas: all but the values held in shared pieces
    /// (chunked strings, segmented hashes and sets:
    /// [`crate::pagetable::shared_bytes`]).
    pub fn keepable_bytes(&self) -> usize {
        self.dbs
            .iter()
            .map(|t| t.bytes().saturating_sub(t.shared_bytes()))
            .sum()
    }

    pub fn db(&self, db: usize) -> &PageTable {
        &self.dbs[db]
    }

    pub fn db_mut(&mut self, db: usize) -> &mut PageTable {
        &mut self.dbs[db]
    }

    /// Exchanges the contents of two databases (this shard's part of SWAPDB).
    /// Every page of both is marked modified: their identities now hold
    /// other data.
    pub fn swap_dbs(&mut self, a: usize, b: usize) {
        self.dbs.swap(a, b);
        for i in [a, b] {
            let epoch = self.epoch;
            let t = &mut self.dbs[i];
            t.set_epoch(epoch);
            t.mark_all_modified();
        }
    }

    /// xorshift64*: cheap randomness for RANDOMKEY and sampling.
    pub fn random(&mut self) -> u64 {
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A command context on database `db`.
    pub fn ctx(&mut self, db: usize) -> ExecCtx<'_> {
        ExecCtx { shard: self, db }
    }

    /// One active-expiry cycle over every database, bounded like Redis's:
    /// sample volatile keys, repeat while more than a quarter were expired.
    /// Returns the number of keys removed.
    pub fn active_expire_cycle(&mut self) -> usize {
        let mut total = 0;
        let now = self.now_ms;
        for db in 0..self.dbs.len() {
            if self.dbs[db].volatile_len() == 0 {
                continue;
            }
            for _ in 0..ACTIVE_EXPIRE_MAX_LOOPS {
                self.expire_scratch.clear();
                let (cursor, examined) = self.dbs[db].expire_sample(
                    self.expire_cursor[db],
                    ACTIVE_EXPIRE_KEYS_PER_LOOP,
                    now,
                    &mut self.expire_scratch,
                );
                self.expire_cursor[db] = cursor;
                let removed = self.expire_scratch.len();
                let lazy = self.lazyfree.settings.expire;
                for e in self.expire_scratch.drain(..) {
                    self.log.expired(db, &e.key);
                    self.lazyfree.free_value(e.value, lazy);
                }
                total += removed;
                self.stats.expired_keys += removed as u64;
                if examined == 0 || removed * 4 <= examined {
                    break;
                }
            }
        }
        total
    }

    /// The snapshot barrier on this shard: closes the current epoch and
    /// starts capturing its state. A delta (pages changed since the last
    /// successful snapshot) unless `full` is asked for or there is nothing
    /// to build on. The caller then drives [`Shard::snapshot_step`] and
    /// [`Shard::take_snapshot_frames`] and finally [`Shard::end_snapshot`];
    /// meanwhile commands run as usual and every page is captured as it
    /// was at the barrier (a write to a page not yet captured captures it
    /// first). A snapshot already running is abandoned.
    pub fn begin_snapshot(&mut self, full: bool, compress: bool) -> SnapshotStart {
        let epoch = self.epoch;
        let since = if full { None } else { self.snapshot_since };
        self.bump_epoch();
        for (db, t) in self.dbs.iter_mut().enumerate() {
            t.end_capture();
            t.begin_capture(epoch, since.is_none(), db as u16, compress);
            t.set_patch_base(since);
        }
        self.snapshot_running = Some(epoch);
        SnapshotStart { epoch, since }
    }

    /// Captures about `budget` bytes of entries (a slice of background work
    /// between client requests; less if that many bytes of frames already
    /// wait). Returns true when every page of the snapshot has been
    /// captured.
    pub fn snapshot_step(&mut self, budget: usize) -> bool {
        self.snapshot_step_until(budget, None)
    }

    /// [`Shard::snapshot_step`] that also stops at `until`, once it has
    /// written a page: a slice that meets slow memory (a page can take
    /// milliseconds where it takes ~50 us) holds its thread no longer
    /// than one page past the deadline.
    pub fn snapshot_step_until(
        &mut self,
        budget: usize,
        until: Option<std::time::Instant>,
    ) -> bool {
        // One table per step: the first one not done yet.
        for t in &mut self.dbs {
            if !t.capture_step(budget, until) {
                return false;
            }
        }
        true
    }

    /// Moves the captured frames (walker and copy-before-write alike) to
    /// the end of `out`; returns their count.
    pub fn take_snapshot_frames(&mut self, out: &mut Vec<u8>) -> crate::snapshot::format::Tally {
        let mut total = crate::snapshot::format::Tally::default();
        for t in &mut self.dbs {
            let n = t.take_frames(out);
            total += n;
        }
        total
    }

    /// [`Shard::take_snapshot_frames`] with the big values' pieces left
    /// as references in `out`, to encode off the event loop
    /// ([`crate::snapshot::format::Output::encode_some`]); returns the
    /// count of the frames already encoded.
    pub fn take_snapshot_output(
        &mut self,
        out: &mut crate::snapshot::format::Output,
    ) -> crate::snapshot::format::Tally {
        let mut total = crate::snapshot::format::Tally::default();
        for t in &mut self.dbs {
            let n = t.take_output(out);
            total += n;
        }
        total
    }

    /// Bytes the running snapshot holds: frames not yet taken and entries
    /// kept aside by copy-before-write.
    pub fn snapshot_pending_bytes(&self) -> usize {
        self.dbs.iter().map(PageTable::pending_bytes).sum()
    }

    /// Whether a snapshot is capturing.
    pub fn snapshot_running(&self) -> bool {
        self.snapshot_running.is_some()
    }

    /// Ends the running snapshot. With `saved`, it is durable and visible,
    /// and the next delta builds on it; otherwise the next builds on the
    /// last one that was.
    pub fn end_snapshot(&mut self, saved: bool) {
        for t in &mut self.dbs {
            t.end_capture();
        }
        if let Some(epoch) = self.snapshot_running.take() {
            if saved {
                self.snapshot_since = Some(epoch);
                for t in &mut self.dbs {
                    t.snapshot_saved(epoch);
                }
            }
        }
    }

    /// Empties database `db` (this shard's part of FLUSHDB, and of
    /// FLUSHALL for each database): its pages are freed on the lazy-free
    /// thread when `lazy` (ASYNC), else at once; those a running snapshot
    /// still needs stay with it (freed as it writes them). Returns the
    /// keys removed.
    pub fn flush_db(&mut self, db: usize, lazy: bool) -> u64 {
        let t = &mut self.dbs[db];
        let removed = t.len() as u64;
        let pages = t.take_pages();
        let keys = pages.iter().map(|p| p.len() as u64).sum();
        self.lazyfree.free_pages(pages, keys, lazy);
        removed
    }

    /// Keys and keys-with-expiry per database (INFO keyspace, DBSIZE).
    pub fn keyspace(&self) -> Vec<(usize, usize)> {
        self.dbs
            .iter()
            .map(|t| (t.len(), t.volatile_len()))
            .collect()
    }
}

/// The context a command runs in: one shard, one selected database.
/// Key lookups here apply lazy expiry and keep the hit/miss counters.
pub struct ExecCtx<'a> {
    pub shard: &'a mut Shard,
    pub db: usize,
}

impl ExecCtx<'_> {
    pub fn now_ms(&self) -> u64 {
        self.shard.now_ms
    }

    pub fn table(&mut self) -> &mut PageTable {
        &mut self.shard.dbs[self.db]
    }

    /// Counts one change for `rdb_changes_since_last_save`.
    pub fn dirty(&mut self, n: u64) {
        self.shard.stats.dirty += n;
    }

    /// Writes a record that replays the running command (instead of the
    /// command as it arrived): see [`crate::propagate`]. No-op when the
    /// shard does not log.
    pub fn propagate<'a>(
        &mut self,
        args: impl IntoIterator<Item = &'a [u8], IntoIter: ExactSizeIterator>,
    ) {
        let db = self.db;
        self.shard.log.propagate(db, args.into_iter());
    }

    /// The running command changes the whole shard (FLUSHALL, SWAPDB): every
    /// later read waits for its record.
    pub fn log_barrier(&mut self) {
        self.shard.log.barrier();
    }

    /// Deletes `key` if it is logically expired; returns whether it did.
    /// Every lookup passes here, so this is also where a read learns that
    /// the key's last change is not durable yet.
    fn expire_if_needed(&mut self, hash: u64, key: &[u8]) -> bool {
        let now = self.shard.now_ms;
        self.shard.log.note_key(self.db, hash);
        let t = &mut self.shard.dbs[self.db];
        match t.get(hash, key) {
            Some(e) if e.is_expired(now) => {
                if let Some(e) = t.remove(hash, key) {
                    let lazy = self.shard.lazyfree.settings.expire;
                    self.shard.lazyfree.free_value(e.value, lazy);
                }
                self.shard.stats.expired_keys += 1;
                self.shard.log.expired(self.db, key);
                true
            }
            _ => false,
        }
    }

    /// Looks up a key for reading: expired keys are removed, hits and misses
    /// are counted, the key's access time is set (Redis's lookupKeyRead).
    pub fn lookup_read(&mut self, key: &[u8]) -> Option<&Entry> {
        self.lookup_counted(key, true)
    }

    /// [`ExecCtx::lookup_read`] that leaves the access time as it is
    /// (Redis's LOOKUP_NOTOUCH: EXISTS, TYPE, TTL, OBJECT).
    pub fn lookup_read_notouch(&mut self, key: &[u8]) -> Option<&Entry> {
        self.lookup_counted(key, false)
    }

    fn lookup_counted(&mut self, key: &[u8], touch: bool) -> Option<&Entry> {
        let hash = hash_key(key);
        self.expire_if_needed(hash, key);
        let Shard { dbs, stats, .. } = &mut *self.shard;
        let table = &mut dbs[self.db];
        let found = if touch {
            table.get_touched(hash, key)
        } else {
            table.get(hash, key)
        };
        if found.is_some() {
            stats.keyspace_hits += 1;
        } else {
            stats.keyspace_misses += 1;
        }
        found
    }

    /// Looks up a key for writing: expired keys are removed, no hit/miss
    /// counting (Redis's lookupKeyWrite).
    pub fn lookup_write(&mut self, key: &[u8]) -> Option<&Entry> {
        let hash = hash_key(key);
        self.expire_if_needed(hash, key);
        self.shard.dbs[self.db].get_touched(hash, key)
    }

    /// Whether a key exists (after lazy expiry), without hit/miss counting.
    pub fn exists(&mut self, key: &[u8]) -> bool {
        self.lookup_write(key).is_some()
    }

    /// Mutable value of an existing, unexpired key. Marks its page modified.
    pub fn value_mut(&mut self, key: &[u8]) -> Option<&mut Value> {
        let hash = hash_key(key);
        self.expire_if_needed(hash, key);
        self.shard.log.touch(self.db, hash);
        self.shard.dbs[self.db].get_value_mut(hash, key)
    }

    /// [`ExecCtx::value_mut`] for a change of bytes `from..to` of the
    /// value: a running snapshot writes the chunks it touches first rather
    /// than have them copied ([`crate::pagetable::PageTable::get_value_mut_at`]).
    pub fn value_mut_at(&mut self, key: &[u8], from: usize, to: usize) -> Option<&mut Value> {
        let hash = hash_key(key);
        self.expire_if_needed(hash, key);
        self.shard.log.touch(self.db, hash);
        self.shard.dbs[self.db].get_value_mut_at(hash, key, from, to)
    }

    /// [`ExecCtx::value_mut`] for a change of `elements` (fields, members)
    /// of a hash or set: a running snapshot writes the segments they are
    /// in first rather than have them copied
    /// ([`crate::pagetable::PageTable::get_value_mut_for`]).
    pub fn value_mut_for<'a>(
        &mut self,
        key: &[u8],
        elements: impl Iterator<Item = &'a [u8]>,
    ) -> Option<&mut Value> {
        let hash = hash_key(key);
        self.expire_if_needed(hash, key);
        self.shard.log.touch(self.db, hash);
        self.shard.dbs[self.db].get_value_mut_for(hash, key, elements)
    }

    /// Sets a key to a value with an absolute expiry (0 = none). Returns
    /// whether it replaced a value, which is freed as an implicit delete
    /// (lazily with `lazyfree-lazy-server-del`, as Redis's dbOverwrite).
    pub fn set(&mut self, key: &[u8], value: Value, expire_at: u64) -> bool {
        let hash = hash_key(key);
        self.shard.log.touch(self.db, hash);
        let old = self.shard.dbs[self.db].insert(hash, key, value, expire_at);
        self.free_replaced(old)
    }

    /// Sets a key, keeping its current expiry if it has one. Returns
    /// whether it replaced a value (freed as by [`ExecCtx::set`]).
    pub fn set_keep_ttl(&mut self, key: &[u8], value: Value) -> bool {
        let hash = hash_key(key);
        self.expire_if_needed(hash, key);
        self.shard.log.touch(self.db, hash);
        let old = self.shard.dbs[self.db].insert_keep_ttl(hash, key, value);
        self.free_replaced(old)
    }

    fn free_replaced(&mut self, old: Option<Entry>) -> bool {
        let Some(old) = old else {
            return false;
        };
        let lazy = self.shard.lazyfree.settings.server_del;
        self.shard.lazyfree.free_value(old.value, lazy);
        true
    }

    /// Deletes a key if present and not expired, freeing its value on the
    /// lazy-free thread when `lazy` and it is big enough (UNLINK; DEL with
    /// `lazyfree-lazy-user-del`), else at once. Returns whether it existed.
    pub fn delete(&mut self, key: &[u8], lazy: bool) -> bool {
        match self.remove(key) {
            Some(e) => {
                self.shard.lazyfree.free_value(e.value, lazy);
                true
            }
            None => false,
        }
    }

    /// Deletes a key whose expiry is past (EXPIRE or GETEX with a time
    /// already gone): its value is freed as an expired key's
    /// (`lazyfree-lazy-expire`). Returns whether it existed.
    pub fn delete_expired(&mut self, key: &[u8]) -> bool {
        let lazy = self.shard.lazyfree.settings.expire;
        self.delete(key, lazy)
    }

    /// Removes a key if present and not expired, giving its entry to the
    /// caller (which takes over freeing it).
    pub fn remove(&mut self, key: &[u8]) -> Option<Entry> {
        let hash = hash_key(key);
        if self.expire_if_needed(hash, key) {
            return None;
        }
        self.shard.log.touch(self.db, hash);
        self.shard.dbs[self.db].remove(hash, key)
    }

    /// Makes an existing key look idle for `secs` seconds (RESTORE's
    /// IDLETIME).
    pub fn set_idle(&mut self, key: &[u8], secs: u64) {
        let hash = hash_key(key);
        self.shard.dbs[self.db].set_idle(hash, key, secs);
    }

    /// Sets the expiry of an existing key (0 clears it).
    pub fn set_expire(&mut self, key: &[u8], expire_at: u64) -> bool {
        let hash = hash_key(key);
        if self.expire_if_needed(hash, key) {
            return false;
        }
        self.shard.log.touch(self.db, hash);
        self.shard.dbs[self.db].set_expire(hash, key, expire_at)
    }
}
