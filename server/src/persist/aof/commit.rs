//! Group commit: the flush loop that writes whatever is pending as one
//! plan and releases the replies it makes durable, the gathering of the
//! next commit under `always` ([`gather`], [`take_in_arrived`]), the rule
//! that writes a commit inline ([`INLINE_MAX`], [`INLINE_CALM`]), the end
//! of a log the shard detached, and the `everysec` sync loop.

use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine::journal::JournalError;

use super::Aof;
use crate::config::AppendFsync;
use crate::log;
use crate::runtime;
use crate::worker::Worker;

impl Aof {
    /// The end of a log the shard detached: everything written is synced
    /// (as Redis's stopAppendOnly does), the failure state is cleared, and
    /// the replies still waiting are released (`abandon`: the pending
    /// records could not be written and are dropped; with the log off,
    /// nothing waits for it any more).
    async fn close(&self, worker: &Worker, abandon: bool) {
        if !abandon && self.unsynced.get() {
            let current = self.journal.borrow().current_segment().map(|c| c.0);
            if let Some(seg) = current.and_then(|l| self.seg(l)) {
                if let Err(e) = self.sync(&seg).await {
                    log::warning(&format!(
                        "Error syncing the AOF file (shard {}) as the log was turned off: {e}",
                        self.id
                    ));
                }
            }
        }
        let last = self.journal.borrow().next_lsn().saturating_sub(1);
        self.sync_failed.set(false);
        let stats = self.stats();
        if self.failed.replace(false) {
            // The log is off: nothing to refuse writes for any more.
            stats.failed.store(false, Ordering::Relaxed);
            self.shared.set_aof_failed(false);
        }
        stats.enabled.store(false, Ordering::Relaxed);
        stats.pending_bytes.store(0, Ordering::Relaxed);
        self.segs.borrow_mut().clear();
        *self.spare.borrow_mut() = None;
        worker.log_durable(last);
    }
}

/// Group commit: flushes whatever is pending, one plan at a time, and
/// releases the replies each flush makes durable.
pub async fn flush_loop(worker: Rc<Worker>, aof: Rc<Aof>) {
    aof.first_segment().await;
    aof.start_spare();
    let timer = runtime::FineTimer::new();
    // Records of the last commit.
    let mut last_records = 0usize;
    // How long commits take lately: what `gather` is decided and sized by.
    let mut typical = CommitTime::default();
    // Whether the next commit may block the thread.
    let mut rule = InlineRule::new(worker.shard_count(), inline_max());
    loop {
        let always = worker.shared.appendfsync() == AppendFsync::Always;
        let inline = always && rule.inline();
        // A blocked thread gathers by itself: what arrives meanwhile waits
        // for it to return.
        if always && !inline && last_records > 1 && typical.get() >= GATHER_FROM {
            gather(&aof, &timer, last_records, typical.get()).await;
        }
        if always {
            take_in_arrived(&aof).await;
        }
        let plan = aof.journal.borrow_mut().prepare_flush();
        let Some(mut plan) = plan else {
            if aof.closing.get() {
                aof.close(&worker, false).await;
                return;
            }
            aof.kick.notified().await;
            continue;
        };
        let mode = worker.shared.appendfsync();
        let started = Instant::now();
        let held = mode == AppendFsync::Always;
        if held {
            worker.commit_in_flight(true);
        }
        if inline {
            // What other shards wait for (requests for them, their
            // replies) leaves before this thread blocks.
            worker.flush_outbox();
        }
        let result = aof.execute(&mut plan, mode, inline).await;
        last_records = plan.records();
        let took = started.elapsed();
        typical.add(took);
        rule.add(took);
        aof.start_spare();
        let records = last_records as u64;
        let bytes = plan.write_bytes() as u64;
        let outcome = aof.journal.borrow_mut().complete_flush(plan, result);
        let stats = aof.stats();
        {
            let journal = aof.journal.borrow();
            stats
                .pending_bytes
                .store(journal.pending_bytes() as u64, Ordering::Relaxed);
            if outcome.is_ok() {
                let current = journal.current_segment().map(|c| c.0);
                aof.segs.borrow_mut().retain(|s| Some(s.lsn) == current);
                stats
                    .current_size
                    .store(journal.stats().current_size, Ordering::Relaxed);
            }
        }
        match outcome {
            Ok(durable) => {
                stats.commits.fetch_add(1, Ordering::Relaxed);
                stats.records.fetch_add(records, Ordering::Relaxed);
                stats.bytes_written.fetch_add(bytes, Ordering::Relaxed);
                aof.set_failed(false, None);
                worker.log_durable(durable);
                if held {
                    worker.commit_in_flight(false);
                }
            }
            Err(e) if aof.closing.get() => {
                worker.commit_in_flight(false);
                log::warning(&format!(
                    "Error writing to the AOF file (shard {}): {e}. The log was turned off: \
                     its unwritten records are dropped.",
                    aof.id
                ));
                aof.close(&worker, true).await;
                return;
            }
            Err(e) => {
                worker.commit_in_flight(false);
                if !aof.failed.get() {
                    log::warning(&format!(
                        "Error writing to the AOF file (shard {}): {e}. Writes are refused \
                         until a retry succeeds; retrying every second.",
                        aof.id
                    ));
                }
                aof.set_failed(true, Some(&e));
                // Redis retries a failed AOF write from serverCron, once a
                // second. A segment that could not be made (ENOSPC) is
                // tried again at the size the free space allows now.
                runtime::sleep(Duration::from_secs(1)).await;
                aof.adapt_segment_size();
            }
        }
    }
}

/// Under `always`, after a ring commit of several records, when commits
/// take [`GATHER_FROM`] or more lately ([`CommitTime`]): waits until as
/// many more records are pending as that commit made durable (the clients
/// it released are back), while records keep arriving (a quiet gap of
/// [`GATHER_GAP`] ends it), for at most half the typical commit's time and
/// [`GATHER_MAX`], so that the clients the commit released join the next
/// commit instead of the one after it. Without it the clients split into
/// groups, one waiting for the commit in flight while the other's records
/// make the next: fewer records per fdatasync (the measurement is in
/// BENCHMARKS.md, "M2.3").
async fn gather(aof: &Aof, timer: &runtime::FineTimer, last_records: usize, typical: Duration) {
    let deadline = Instant::now() + (typical / 2).min(GATHER_MAX);
    let mut seen = aof.journal.borrow().pending_records();
    // The records pending now came while the last commit ran; the released
    // clients' come on top.
    let target = seen + last_records;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if seen >= target || left.is_zero() || aof.closing.get() {
            return;
        }
        // Never past the deadline: after a fast commit the gap alone would
        // be longer than the whole wait may be.
        timer.sleep(GATHER_GAP.min(left)).await;
        let now = aof.journal.borrow().pending_records();
        if now == seen {
            return;
        }
        seen = now;
    }
}

/// Under `always`, before a commit: lets the loop take in the requests and
/// the other shards' batches that already arrived (a turn of the loop, no
/// sleep), again while a turn brought new records, at most
/// [`TAKE_IN_TURNS`] times, so that they join this commit rather than wait
/// for the next. Without it the commit starts as soon as the first record
/// of a tick is logged, and what was already on the ring or in the mailbox
/// waits a whole commit more; with several shards and inline commits, a
/// batch the other shard sent just before would wait out this thread's
/// blocked commit too. 2 shards, SET P1: ring commits 0.86x -> 0.91x
/// Redis's `always`; inline commits without it no faster than the ring,
/// with it 1.03-1.07x (BENCHMARKS.md, M2.3).
async fn take_in_arrived(aof: &Aof) {
    for _ in 0..TAKE_IN_TURNS {
        let before = aof.journal.borrow().pending_records();
        if before == 0 {
            return;
        }
        runtime::yield_to_loop().await;
        if aof.journal.borrow().pending_records() == before {
            return;
        }
    }
}

/// The most loop turns [`take_in_arrived`] lets run before a commit.
const TAKE_IN_TURNS: usize = 2;

/// The quiet gap that ends [`gather`]: a few client round trips on
/// loopback.
const GATHER_GAP: Duration = Duration::from_micros(150);
/// The longest [`gather`] waits.
const GATHER_MAX: Duration = Duration::from_millis(2);
/// [`gather`] runs only while commits take at least this long
/// ([`CommitTime`]). With faster ones it could wait at most half a commit,
/// less than the released clients take to come back here (100-300 us on a
/// loaded machine), so it only added timer wake-ups: on a fast disk 2
/// shards did 0.89x Redis's `always` without it and 0.83x with it
/// (BENCHMARKS.md, M2.3 "always"). On a slow disk (commits of several ms)
/// it is what lets one commit take the clients the last one released.
const GATHER_FROM: Duration = Duration::from_millis(1);

/// How long commits take lately: a moving average over about the last 8
/// (each new one weighs 1/8). [`gather`] goes by this, not by the last
/// commit alone: on a disk with an IOPS limit (a throttled cloud volume)
/// commits alternate between fast ones (the limit had room) and slow ones
/// (they queued), and going by the last one skipped `gather` after every
/// fast one, halving the records per commit where each commit costs the
/// most (BENCHMARKS.md, M2.3 "always on a disk with an IOPS limit").
#[derive(Debug, Default, Clone, Copy)]
struct CommitTime(Duration);

impl CommitTime {
    fn add(&mut self, took: Duration) {
        self.0 = (self.0 * 7 + took) / 8;
    }

    fn get(&self) -> Duration {
        self.0
    }
}

/// Under `always`, a commit after one that took less than this is written
/// inline: a blocking pwrite through the segment's `O_DSYNC` descriptor on
/// the worker thread, as Redis blocks its thread in fdatasync, instead of
/// the same write on the ring. While the thread is blocked, requests queue
/// up without waking it (on the ring each of them is a wake-up of a thread
/// that sleeps until the commit completes, and the loop turned about 10
/// times per commit), and on a disk with a write-back cache and no FUA
/// the flush is issued by the blocked thread rather than by a kernel
/// worker on the interrupt CPU, woken twice per ring commit; when it
/// returns the requests run in one go and join the next commit, so no
/// [`gather`] is needed. After a slower commit the next one goes through
/// the ring, so that a slow or stalled device holds the event loop for one
/// commit at most, not for every one. With several shards a blocked thread
/// also holds up the other shards' requests and replies passing through
/// it: before it blocks it sends what its outbox holds, the other shards
/// leave their writes for it in its held queue meanwhile, and it commits
/// inline only after a run of fast commits ([`INLINE_CALM`]). The
/// measurements are in BENCHMARKS.md, "M2.3", "always".
pub const INLINE_MAX: Duration = Duration::from_millis(2);

/// With several shards a commit is inline only after this many commits in
/// a row took less than [`GATHER_FROM`]: one slower commit sends the next
/// [`INLINE_CALM`] to the ring. A blocked thread holds up the other
/// shards' requests passing through it, so it should block only where
/// commits are reliably fast. On a disk with an IOPS limit fast and queued
/// commits alternate, and inline commits there did worse than the ring with
/// [`gather`] (2 shards at 2,000 IOPS: after runs of 64, 19.6k req/s
/// against 22.7k on the ring; after runs of 128, 22.5-23.5k, as the
/// ring). On the fast disk about 90% of commits stay inline (the rest
/// follow a scheduling hiccup).
const INLINE_CALM: u32 = 128;

/// Whether the next commit under `always` is written inline: after a commit
/// faster than [`INLINE_MAX`], and with several shards only at the end of
/// a run of [`INLINE_CALM`] commits faster than [`GATHER_FROM`].
#[derive(Debug, Clone, Copy)]
struct InlineRule {
    shards: usize,
    max: Duration,
    last: Duration,
    /// Commits in a row faster than [`GATHER_FROM`] (and `max`).
    calm: u32,
}

impl InlineRule {
    /// The rule at start: the first commit is inline (when `max` allows).
    fn new(shards: usize, max: Duration) -> InlineRule {
        InlineRule {
            shards,
            max,
            last: Duration::ZERO,
            calm: INLINE_CALM,
        }
    }

    fn add(&mut self, took: Duration) {
        self.last = took;
        self.calm = if took < GATHER_FROM.min(self.max) {
            self.calm.saturating_add(1)
        } else {
            0
        };
    }

    fn inline(&self) -> bool {
        self.last < self.max && (self.shards == 1 || self.calm >= INLINE_CALM)
    }
}

/// [`INLINE_MAX`], or the test seam `KV_AOF_INLINE_MAX_US` (0: never
/// inline).
fn inline_max() -> Duration {
    static MAX: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *MAX.get_or_init(|| {
        std::env::var("KV_AOF_INLINE_MAX_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map_or(INLINE_MAX, Duration::from_micros)
    })
}

/// `appendfsync everysec`: one fdatasync a second, in its own task, never
/// waited for by a reply.
pub async fn sync_loop(worker: Rc<Worker>, aof: Rc<Aof>) {
    loop {
        runtime::sleep(Duration::from_secs(1)).await;
        if aof.closing.get() {
            return;
        }
        match worker.shared.appendfsync() {
            AppendFsync::Everysec => {}
            AppendFsync::No => {
                aof.drop_cached();
                continue;
            }
            AppendFsync::Always => continue,
        }
        if let Some(started) = aof.sync_started.get() {
            if started.elapsed() >= Duration::from_secs(2) {
                aof.stats().delayed_fsync.fetch_add(1, Ordering::Relaxed);
                log::notice(
                    "Asynchronous AOF fsync is taking too long (disk is busy?). Writing the AOF \
                     buffer without waiting for fsync to complete, this may slow down the server.",
                );
            }
            continue;
        }
        if !aof.unsynced.get() {
            continue;
        }
        let current = aof.journal.borrow().current_segment().map(|c| c.0);
        let Some(seg) = current.and_then(|l| aof.seg(l)) else {
            continue;
        };
        aof.unsynced.set(false);
        let synced_upto = aof.tail_block_start();
        aof.sync_started.set(Some(Instant::now()));
        aof.stats().fsync_in_progress.store(true, Ordering::Relaxed);
        let a = aof.clone();
        runtime::spawn(async move {
            let r = a.sync(&seg).await;
            a.sync_started.set(None);
            a.stats().fsync_in_progress.store(false, Ordering::Relaxed);
            match r {
                Ok(()) => {
                    // Synced: the pages before the tail block need not stay
                    // in the page cache (the tail block is written again by
                    // the next flush, so it stays).
                    if let Some(plain) = &seg.plain {
                        crate::sys::fadvise_dontneed(plain.as_raw_fd(), 0, synced_upto);
                    }
                    a.sync_failed.set(false);
                    a.set_failed(a.journal.borrow().is_failed(), None);
                }
                Err(e) => {
                    let path = engine::journal::io::segment_path(
                        &a.journal.borrow().config().dir,
                        seg.lsn,
                    );
                    let je = JournalError::new("sync", &path, None, &e);
                    log::warning(&format!(
                        "Error syncing the AOF file (shard {}): {je}",
                        a.id
                    ));
                    a.unsynced.set(true);
                    a.sync_failed.set(true);
                    a.set_failed(true, Some(&je));
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn after(commits: impl IntoIterator<Item = u64>) -> Duration {
        let mut t = CommitTime::default();
        for us in commits {
            t.add(Duration::from_micros(us));
        }
        t.get()
    }

    #[test]
    fn several_shards_commit_inline_only_after_a_run_of_fast_commits() {
        let us = Duration::from_micros;
        for shards in [1, 2] {
            let mut r = InlineRule::new(shards, INLINE_MAX);
            assert!(r.inline(), "{shards}: the first commit");
            r.add(us(150));
            assert!(r.inline(), "{shards}: after a fast one");
            // A commit of 3 ms: the next goes to the ring either way.
            r.add(us(3_000));
            assert!(!r.inline(), "{shards}: after a slow one");
            // 1.5 ms: one shard blocks again, several wait for a calm run.
            r.add(us(1_500));
            assert_eq!(r.inline(), shards == 1, "{shards}: after 1.5 ms");
            for i in 1..INLINE_CALM {
                r.add(us(150));
                assert_eq!(r.inline(), shards == 1, "{shards}: {i} fast ones");
            }
            r.add(us(150));
            assert!(r.inline(), "{shards}: after a calm run");
        }
        // The test seam: no commit is fast enough.
        let mut r = InlineRule::new(1, Duration::ZERO);
        r.add(Duration::ZERO);
        assert!(!r.inline());
    }

    #[test]
    fn gather_goes_by_the_typical_commit_not_the_last() {
        // A fast disk: commits of 150-550 us, one 3 ms hiccup. Gather stays
        // off, and is off again a few commits after the hiccup.
        let fast = [150, 300, 550, 200, 400, 250, 180, 500];
        assert!(after(fast.iter().cycle().take(64).copied()) < GATHER_FROM);
        let hiccup = fast
            .iter()
            .copied()
            .chain([3_000])
            .chain(fast.iter().copied().take(5));
        assert!(after(hiccup) < GATHER_FROM);
        // An IOPS-limited disk: fast commits between queued ones. The last
        // commit is fast half of the time; the typical one is not.
        let throttled = [200, 5_000, 150, 4_000, 300, 6_000];
        let t = after(throttled.iter().cycle().take(60).copied());
        assert!(t >= GATHER_FROM, "{t:?}");
        // A slow disk: every commit takes milliseconds.
        assert!(after([4_000; 20]) >= GATHER_FROM);
        // From a cold start the first slow commits are enough.
        assert!(after([8_000, 8_000]) >= GATHER_FROM);
    }
}
