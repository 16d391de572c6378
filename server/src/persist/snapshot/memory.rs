//! The snapshot's memory, made off the event loop: each worker's pool of
//! pre-faulted chunks for copy-before-write and the writer's buffers
//! ([`KeptSupply`], on a thread of its own), filled before a barrier
//! ([`fill_pools`]), and the heap read ahead of a snapshot ([`warm_heap`]).

use super::*;

/// How long a snapshot memory thread sleeps between two 512 KiB pieces of
/// fresh memory it touches (each takes it ~1.5 ms of CPU here).
pub(super) const HELPER_PAUSE: Duration = Duration::from_millis(1);

/// Writes every byte of `buf`, 512 KiB at a time, with [`helper_pause`]
/// between pieces when `paced` (on a snapshot memory thread).
pub(super) fn touch(buf: &mut [u8], paced: bool) {
    for (i, piece) in buf.chunks_mut(kept::CHUNK).enumerate() {
        if paced && i > 0 {
            helper_pause();
        }
        piece.fill(1);
    }
}

/// Sleeps [`HELPER_PAUSE`] (on a snapshot memory thread, never on a loop).
/// A thread that touches megabytes in one go holds a core for as long: in
/// `perf sched` traces of a 3 GiB snapshot under load, a helper ran 4-5 ms
/// at a time while a worker waited for the core, and shared a core half
/// and half with the worker serving a probe client for 11 ms (the probe's
/// PING waited 18 ms). Sleeping between pieces gives the core back every
/// ~1.5 ms; at ~200 MB/s the helper still outpaces the ~40 MB/s per worker
/// that the start of a snapshot under a full-speed overwrite load keeps.
/// (Running the helpers at nice 10 instead left the pools short at the
/// start: 23 and 36 ms stalls there in two of four runs.)
pub(super) fn helper_pause() {
    std::thread::sleep(HELPER_PAUSE);
}

/// Keeps this worker thread's snapshot memory pool
/// ([`engine::snapshot::kept`]) filled, with chunks allocated and touched
/// on a thread of its own (which also makes the writer's [`Buffers`]):
/// before a snapshot's barrier ([`fill_pools`]), so
/// that its buffers are ready, and while it runs, for the keys it keeps
/// aside. Touching fresh memory on the event loop instead held it 7-22 ms
/// in the first slices of a snapshot (measured: 3 GiB under load, first
/// snapshot of the process), and ~5 ms per huge page of keys kept aside
/// after that.
pub struct KeptSupply {
    /// None if the thread could not start: memory is then allocated where
    /// it is needed.
    pub(super) thread: Option<crate::runtime::JobThread>,
    /// Where the thread hands the chunks it made.
    give: tokio::sync::mpsc::UnboundedSender<Vec<u8>>,
    /// Chunks asked for and not received yet.
    asked: Rc<std::cell::Cell<usize>>,
    received: Rc<tokio::sync::Notify>,
}

impl KeptSupply {
    /// Starts the supply of this thread's pool (from the worker's loop).
    pub(super) fn start(worker: usize) -> KeptSupply {
        let (give, mut got) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
        let thread = crate::runtime::JobThread::spawn(format!("snapshot-memory-{worker}")).ok();
        let asked = Rc::new(std::cell::Cell::new(0usize));
        let received = Rc::new(tokio::sync::Notify::new());
        let (a, r) = (asked.clone(), received.clone());
        crate::runtime::spawn(async move {
            while let Some(c) = got.recv().await {
                a.set(a.get().saturating_sub(1));
                kept::give(c);
                r.notify_one();
            }
        });
        KeptSupply {
            thread,
            give,
            asked,
            received,
        }
    }

    /// Fills the pool; returns once it is full.
    async fn fill(&self) {
        self.top_up();
        while self.asked.get() > 0 {
            self.received.notified().await;
        }
    }

    /// [`warm_heap`] on this supply's thread.
    async fn warm(&self, part: usize, parts: usize) {
        let Some(thread) = &self.thread else {
            return;
        };
        match thread.run(move || warm_heap(part, parts)).await {
            Some(Ok(pages)) => log::verbose(&format!(
                "Snapshot: pool thread {part} read {} MiB of the heap",
                pages / 256
            )),
            Some(Err(e)) => log::verbose(&format!(
                "Snapshot: pool thread {part} could not read the heap: {e}"
            )),
            None => {}
        }
    }

    /// Asks for what the pool lacks.
    pub(super) fn top_up(&self) {
        let Some(thread) = &self.thread else {
            return;
        };
        let have = kept::pool_bytes() + self.asked.get() * kept::CHUNK;
        let lack = kept::pool_target().saturating_sub(have) / kept::CHUNK;
        let give = self.give.clone();
        let made = move || {
            for i in 0..lack {
                if i > 0 {
                    helper_pause();
                }
                let mut c = Vec::with_capacity(kept::CHUNK);
                c.resize(kept::CHUNK, 1);
                c.clear();
                if give.send(c).is_err() {
                    return;
                }
            }
        };
        if lack > 0 && thread.send(made) {
            self.asked.set(self.asked.get() + lack);
        }
    }
}

/// How long a snapshot waits at most for the pools before its barrier
/// (filling 8 MiB of fresh memory took 20-60 ms here).
pub(super) const FILL_WAIT: Duration = Duration::from_millis(300);

/// How long a background snapshot waits at most for [`warm_heap`] before
/// its barrier (3.3 GiB took ~1 s here under a full-speed overwrite load).
pub(super) const WARM_WAIT: Duration = Duration::from_secs(5);

/// Pieces of the heap the helpers share out in [`warm_heap`].
pub(super) const WARM_PIECE: usize = 4 << 20;

/// Fills every worker's snapshot memory pool (see [`KeptSupply`]); a pool
/// not full after [`FILL_WAIT`] is left to fill during the snapshot. With
/// `warm`, the pool threads then read the heap ([`warm_heap`]), for at most
/// [`WARM_WAIT`] more.
pub(super) async fn fill_pools(worker: &Rc<Worker>, warm: bool) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<bool>();
    let parts = worker.shard_count();
    let asked = worker
        .ask_workers(|| {
            let tx = tx.clone();
            Box::new(move |w: &Rc<Worker>| {
                let supply = supply_here();
                let part = w.id;
                // The pool is sized by the shard's data now (a shard grown
                // since the last snapshot gets more, an emptied one less):
                // the data copy-before-write may keep, not big values'
                // shared pieces, which it never keeps.
                kept::set_pool_target(kept::pool_target_for(w.shard.borrow().keepable_bytes()));
                crate::runtime::spawn(async move {
                    if let Some(s) = &supply {
                        s.fill().await;
                    }
                    let _ = tx.send(false);
                    if let (Some(s), true) = (&supply, warm) {
                        s.warm(part, parts).await;
                    }
                    let _ = tx.send(true);
                });
                Reply::Ok
            })
        })
        .await
        .len();
    drop(tx);
    let started = Instant::now();
    // Messages: false once a pool is full, true once its heap part is read.
    let mut got = [0usize; 2];
    let mut wait_for = async |warmed: bool, d: Duration| {
        crate::runtime::timeout(d, async {
            while got[usize::from(warmed)] < asked {
                match rx.recv().await {
                    Some(w) => got[usize::from(w)] += 1,
                    None => break,
                }
            }
        })
        .await
    };
    wait_for(false, FILL_WAIT).await;
    if warm {
        let waited = wait_for(true, WARM_WAIT).await.is_some();
        log::verbose(&format!(
            "Snapshot: heap read by the pool threads in {} ms{}",
            started.elapsed().as_millis(),
            if waited {
                ""
            } else {
                " (not finished: starting anyway)"
            }
        ));
    }
}

/// Reads one byte of every page of the heap on the snapshot memory
/// threads, piece `part` of every `parts` pieces of [`WARM_PIECE`].
///
/// Why: on these VMs the host takes back guest memory that stays unread
/// for a while, and the first read after that costs ~2 ms per MiB, with no
/// fault the guest can see (measured: 3 GiB written, left 20 s, read
/// again: 75-224 of 3,072 MiB read 1-2.6 ms each instead of 35 us, also
/// with the memory mlocked). A snapshot reads every key, most of them
/// unread since they were written, and did so on the event loop: 5-16
/// walker slices of 3 ms or more per snapshot of 3 GiB under load, with
/// the loop's clients waiting; 1-5 pages of 1.5 ms or more after this
/// read (BENCHMARKS.md). Redis's fork child pays the same cost, off the
/// serving thread.
pub(super) fn warm_heap(part: usize, parts: usize) -> io::Result<u64> {
    let mut pages = 0;
    let mut batches = 0u32;
    for range in crate::sys::heap_ranges() {
        let mut at = range.start;
        while at < range.end {
            let end = (at - at % WARM_PIECE + WARM_PIECE).min(range.end);
            if (at / WARM_PIECE) % parts == part {
                let r = crate::sys::touch_pages(at..end, 256, || {
                    // 1 MiB of pages per call; a rest every 4 MiB.
                    batches += 1;
                    if batches.is_multiple_of(4) {
                        helper_pause();
                    }
                });
                pages += r?;
            }
            at = end;
        }
    }
    Ok(pages)
}
