//! Each shard's snapshot writer: the task on the worker's loop that
//! walks the shard's pages a slice at a time ([`writer_loop`]), gives way
//! to busy clients ([`Pacer`]) and writes the file with aligned O_DIRECT
//! writes on the worker's ring.

use super::*;
use engine::snapshot::format::{Encoder, Output};

/// Bytes of frames a shard captures per slice between client requests.
pub(super) const SLICE: usize = 256 * 1024;
/// ... and a slice stops after this long, once it has written a page (a
/// slice takes ~0.15 ms; slow memory made single slices of 3-40 ms).
pub(super) const SLICE_TIME: Duration = Duration::from_millis(1);
/// A shard writes its file in pieces of about this size at most (the
/// writer's buffers, [`Buffers`], are sized by the shard's data:
/// [`writer_chunk`]).
pub(super) const CHUNK: usize = 4 << 20;
/// ... and at least this size.
pub(super) const MIN_CHUNK: usize = 256 * 1024;
/// The writer's piece is the shard's data's bytes over this (1/64), so its
/// two buffers (the piece twice, plus two slices) stay near 3% of the shard.
pub(super) const CHUNK_SHARE: usize = 64;

/// The size of the pieces a shard of `data_bytes` (`Shard::data_bytes`)
/// writes its file in, which sizes the writer's [`Buffers`]:
/// `data_bytes / CHUNK_SHARE` between [`MIN_CHUNK`] and [`CHUNK`] (reached
/// at 256 MiB: a big shard keeps M1.4's sizes), rounded down to a power of
/// two (a whole number of blocks, and few distinct sizes).
pub(super) fn writer_chunk(data_bytes: usize) -> usize {
    let c = (data_bytes / CHUNK_SHARE).clamp(MIN_CHUNK, CHUNK);
    1 << c.ilog2()
}
/// Bytes encoded or copied into the write buffer in one go: between
/// client requests where that runs on the loop (no job thread), and the
/// most the job's staging buffers hold besides one chunks frame.
pub(super) const COPY_PIECE: usize = 256 * 1024;

/// What a shard's writer is asked to write.
pub struct WriteRequest {
    pub dir: PathBuf,
    pub name: String,
    pub header: FileHeader,
    /// `snapshot-pace` when the snapshot started.
    pub pace: u32,
    pub reply: oneshot::Sender<Result<Written, String>>,
}

/// A shard's file, written, synced and renamed.
#[derive(Debug, Clone, Copy)]
pub struct Written {
    pub size: u64,
    pub tally: Tally,
    pub costs: Costs,
}

/// What a snapshot cost besides its files: the largest captured-but-unwritten
/// bytes of a shard, and the longest time a shard's walker rested.
#[derive(Debug, Default, Clone, Copy)]
pub struct Costs {
    pub peak_pending: u64,
    pub rested: Duration,
}

impl Costs {
    /// The larger of each figure.
    pub(super) fn max(self, other: Costs) -> Costs {
        Costs {
            peak_pending: self.peak_pending.max(other.peak_pending),
            rested: self.rested.max(other.rested),
        }
    }
}

/// The snapshot writer's state on one worker's thread: the files it is
/// asked to write, its wake-up, and the thread's memory pool (a worker
/// runs alone on its thread, so this is the worker's).
#[derive(Default)]
pub(super) struct WriterHere {
    pub(super) requests: std::cell::RefCell<Vec<WriteRequest>>,
    pub(super) kick: Rc<tokio::sync::Notify>,
    memory: std::cell::RefCell<Option<Rc<KeptSupply>>>,
}

thread_local! {
    pub(super) static WRITER: WriterHere = WriterHere::default();
}

/// This thread's snapshot memory pool, once its writer started.
pub(super) fn supply_here() -> Option<Rc<KeptSupply>> {
    WRITER.with(|w| w.memory.borrow().clone())
}

/// Runs on each worker: writes the snapshot files it is asked to.
pub async fn writer_loop(worker: Rc<Worker>) {
    // The writer's buffers live as long as the worker, allocated when the
    // first snapshot starts and touched once: growing them during a
    // snapshot faults in fresh memory on the loop, which on this VM cost
    // ~5 ms per huge page (measured: 5-15 ms slices during the first
    // snapshot of 1 GiB, from realloc'ed buffers).
    let mut buffers: Option<Buffers> = None;
    let supply = Rc::new(KeptSupply::start(worker.id));
    // The thread that encodes the big values' pieces and fills the write
    // buffer ([`Stage::fill`]); None: that runs on the loop.
    let mut encoder = crate::runtime::JobThread::spawn(format!("snapshot-enc-{}", worker.id)).ok();
    WRITER.with(|w| *w.memory.borrow_mut() = Some(supply.clone()));
    loop {
        let req = WRITER.with(|w| w.requests.borrow_mut().pop());
        let Some(req) = req else {
            // A request queued since leaves a permit: no wake-up is lost.
            let kick = WRITER.with(|w| w.kick.clone());
            kick.notified().await;
            continue;
        };
        // Sized by the shard's data at this snapshot's start: made anew
        // (off the loop) when the shard grew past what they were made for,
        // or shrank to a quarter of it.
        let want = writer_chunk(worker.shard.borrow().data_bytes());
        let bufs = match &mut buffers {
            Some(b) if b.chunk >= want && b.chunk < 4 * want && b.stage.is_some() => b,
            _ => {
                buffers = None;
                buffers.insert(Buffers::off_loop(&supply, want).await)
            }
        };
        let r = write_file(&worker, &req, bufs, &supply, &mut encoder).await;
        supply.top_up();
        if r.is_err() {
            // Stop capturing now: copy-before-write would otherwise keep
            // filling memory until the coordinator ends the snapshot.
            worker.shard.borrow_mut().end_snapshot(false);
            let _ = std::fs::remove_file(req.dir.join(format!("{}.tmp", req.name)));
        }
        let _ = req.reply.send(r);
    }
}

/// A writer's reusable buffers ([`Stage`]); None once lost with a job
/// thread that stopped.
pub(super) struct Buffers {
    /// The piece the file is written in ([`writer_chunk`]).
    chunk: usize,
    stage: Option<Stage>,
}

/// What a shard's writer has taken and not written yet, and what it
/// encodes and writes with: moved to the writer's job thread to fill the
/// aligned buffer ([`Stage::fill`]), and back for the ring to write it.
///
/// Why: the big values' pieces come from the walker as references
/// ([`engine::snapshot::format::Output`]); encoding them (copy, crc32c,
/// LZ4) and copying all frames into the aligned buffer was ~30% of the
/// process's time during a snapshot, on the event loop (M1.4). Page frames
/// are still encoded on the loop (their entries change), but copied off
/// it.
pub(super) struct Stage {
    /// Frames taken from the shard, not yet in `io` or `carry`.
    batch: Output,
    /// Encoded bytes that come before `batch` and did not fit in `io` yet
    /// (starting at a block boundary of the file).
    carry: Vec<u8>,
    scratch: Vec<u8>,
    io: AlignedBuf,
    /// Bytes of `io` filled so far, and, after a [`Stage::fill`], the
    /// whole blocks of it to write.
    filled: usize,
    ready: usize,
    enc: Encoder,
    /// crc32c of the frames so far, and the count of the chunks frames
    /// encoded here (the others are counted as taken).
    crc: u32,
    tally: Tally,
}

impl Stage {
    /// Fills `io` from `carry` and then `batch` (encoding its chunks
    /// frames), about `budget` bytes per call; returns true once `io` is
    /// full or nothing is left, with `ready` bytes of it (whole blocks) to
    /// write and the rest back at the front of `carry`.
    pub(super) fn fill(&mut self, budget: usize) -> bool {
        let cap = self.io.len();
        let mut work = 0usize;
        while self.filled < cap {
            let room = (cap - self.filled).min(budget.saturating_sub(work).max(1));
            if !self.carry.is_empty() {
                let k = room.min(self.carry.len());
                let (src, dst) = (&self.carry[..k], &mut self.io.as_mut_slice()[self.filled..]);
                dst[..k].copy_from_slice(src);
                self.carry.drain(..k);
                self.filled += k;
                work += k;
            } else if !self.batch.is_empty() {
                self.scratch.clear();
                let (t, _) = self.batch.encode_some(
                    &mut self.enc,
                    &mut self.scratch,
                    &mut self.crc,
                    room.min(COPY_PIECE),
                );
                self.tally += t;
                std::mem::swap(&mut self.carry, &mut self.scratch);
            } else {
                break;
            }
            if work >= budget {
                return false;
            }
        }
        // What is left of the batch moves to its front: the loop appends
        // to it, and it would otherwise grow by all it ever held.
        self.batch.compact();
        let whole = self.filled / BLOCK * BLOCK;
        let tail = &self.io.as_slice()[whole..self.filled];
        self.carry.splice(0..0, tail.iter().copied());
        self.ready = whole;
        self.filled = 0;
        true
    }

    /// Bytes waiting, encoded or not.
    fn waiting(&self) -> usize {
        self.batch.len() + self.carry.len()
    }
}

impl Buffers {
    /// [`Buffers::new`] on the worker's snapshot memory thread: faulting
    /// in ~8.5 MiB (huge pages on this VM) held the loop 20-160 ms at the
    /// start of a process's first snapshot (BENCHMARKS.md, durability
    /// oddity 6).
    async fn off_loop(supply: &KeptSupply, chunk: usize) -> Buffers {
        match &supply.thread {
            Some(t) => t
                .run(move || Buffers::new(chunk, true))
                .await
                .unwrap_or_else(|| Buffers::new(chunk, false)),
            None => Buffers::new(chunk, false),
        }
    }

    /// Buffers for pieces of `chunk` bytes; `paced`: on a helper thread
    /// ([`touch`]).
    fn new(chunk: usize, paced: bool) -> Buffers {
        // Both zeroed by the allocator (fresh pages, not written yet), and
        // touched now, not in the middle of a snapshot. (`carry` and
        // `scratch`, a few hundred KiB at most, grow where the stage is
        // filled: on the job thread.)
        let mut pending = vec![0u8; chunk + 2 * SLICE];
        touch(&mut pending, paced);
        let mut io = AlignedBuf::zeroed(chunk);
        touch(io.as_mut_slice(), paced);
        Buffers {
            chunk,
            stage: Some(Stage {
                batch: Output::with_buffer(pending),
                carry: Vec::new(),
                scratch: Vec::new(),
                io,
                filled: 0,
                ready: 0,
                enc: Encoder::default(),
                crc: 0,
                tally: Tally::default(),
            }),
        }
    }
}

pub(super) async fn write_file(
    worker: &Worker,
    req: &WriteRequest,
    bufs: &mut Buffers,
    supply: &KeptSupply,
    encoder: &mut Option<crate::runtime::JobThread>,
) -> Result<Written, String> {
    let tmp = req.dir.join(format!("{}.tmp", req.name));
    let what = |op: &str, e: &dyn std::fmt::Display| format!("{op} {}: {e}", tmp.display());
    let mut stage = bufs.stage.take();
    let r = write_stage(worker, req, &mut stage, supply, encoder, &tmp).await;
    if let Some(mut stage) = stage {
        stage.filled = 0;
        stage.ready = 0;
        // A failed snapshot leaves frames behind: they hold pieces of
        // big values (and must not hold them past the snapshot).
        stage.batch.clear();
        stage.batch.drop_spent();
        stage.carry.clear();
        bufs.stage = Some(stage);
    }
    r.map_err(|(op, e)| what(op, &e))
}

/// [`write_file`] with its stage (None once lost with a job thread that
/// stopped); errors say which step failed.
async fn write_stage(
    worker: &Worker,
    req: &WriteRequest,
    stage: &mut Option<Stage>,
    supply: &KeptSupply,
    encoder: &mut Option<crate::runtime::JobThread>,
    tmp: &Path,
) -> Result<Written, (&'static str, String)> {
    let file = StdLogIo::new()
        .create_file(tmp)
        .map_err(|e| ("create", e.to_string()))?;
    crate::latency::mark("created");
    let ring = RingFile::from_std(file.try_clone().map_err(|e| ("open", e.to_string()))?);
    // Frames accumulate in the stage's batch; whole blocks are written.
    let chunk = stage.as_ref().map_or(CHUNK, |s| s.io.len());
    if let Some(s) = stage.as_mut() {
        s.batch.clear();
        s.carry.clear();
        s.carry.extend_from_slice(&req.header.encode());
        s.filled = 0;
        s.crc = 0;
        s.tally = Tally::default();
    }
    let mut tally = Tally::default();
    let mut offset = 0u64;
    let mut peak = 0u64;
    let mut pacer = Pacer::new(worker, req.pace);
    let mut rested_last = false;
    loop {
        supply.top_up();
        let started = Instant::now();
        let Some(s) = stage.as_mut() else {
            return Err(("write", "the writer's buffers were lost".into()));
        };
        let (done, t, held) = {
            crate::latency::mark("slice");
            let mut shard = worker.shard.borrow_mut();
            let done = shard.snapshot_step_until(SLICE, Some(started + SLICE_TIME));
            crate::latency::mark("stepped");
            peak = peak.max(shard.snapshot_pending_bytes() as u64);
            let t = shard.take_snapshot_output(&mut s.batch);
            crate::latency::mark("taken");
            // What stays held after this slice's frames are taken: what
            // a longer snapshot would keep growing (the pacer's bound).
            let held = shard.snapshot_pending_bytes() as u64;
            (done, t, held)
        };
        tally += t;
        if done {
            break;
        }
        let wrote = s.waiting() >= chunk;
        if wrote {
            while stage.as_ref().is_some_and(|s| s.waiting() >= chunk) {
                offset = write_some(&ring, stage, encoder, offset).await?;
            }
        }
        // Let client requests run between slices: after every slice but
        // one that wrote right after a rest. A small shard's writer, with
        // pieces of one slice, writes after nearly every slice and would
        // otherwise never rest; a big one's writes every 8-16 slices and
        // rests as it did with fixed 4 MiB pieces (resting after those
        // writes too doubled a 192 MiB snapshot's time under SETRANGE,
        // and its extra memory with it: 0.33 -> 0.77 s, +21 -> +48 MiB).
        if wrote && rested_last {
            rested_last = false;
        } else {
            pacer.rest(started.elapsed(), held).await;
            rested_last = true;
        }
    }
    // Everything taken is written but the last partial block; then the
    // end frame (its totals and crc need every frame encoded).
    while stage
        .as_ref()
        .is_some_and(|s| !s.batch.is_empty() || s.carry.len() >= BLOCK)
    {
        offset = write_some(&ring, stage, encoder, offset).await?;
    }
    let Some(s) = stage.as_mut() else {
        return Err(("write", "the writer's buffers were lost".into()));
    };
    tally += s.tally;
    format::encode_end(&mut s.carry, tally, s.crc);
    format::pad_to_block(&mut s.carry);
    while stage.as_ref().is_some_and(|s| !s.carry.is_empty()) {
        offset = write_some(&ring, stage, encoder, offset).await?;
    }
    let size = offset;
    ring.sync_data()
        .await
        .map_err(|e| ("sync", e.to_string()))?;
    crate::sys::fadvise_dontneed(file.as_raw_fd(), 0, 0);
    let path = req.dir.join(&req.name);
    crate::runtime::rename(tmp, &path)
        .await
        .map_err(|e| ("rename", e.to_string()))?;
    Ok(Written {
        size,
        tally,
        costs: Costs {
            peak_pending: peak,
            rested: pacer.rested,
        },
    })
}

/// How long after the last command it saw counted [`Pacer`] still takes
/// the clients as busy.
pub(super) const BUSY_WINDOW: Duration = Duration::from_millis(20);

/// [`Pacer`] stops resting once the shards' snapshots hold this fraction
/// (1/40 = 2.5%) of `used_memory` in entries kept aside. M1.4 allows a
/// snapshot 5% of the dataset in all; besides the kept entries it has its
/// pools and buffers (sized by each shard's data: ~35 MiB for two shards
/// of 256 MiB or more), and once the rests stop the walker finishes flat
/// out and keeps 20-30 MiB more at 3 GiB under a
/// full-speed overwrite load (BENCHMARKS.md). At 1/25, one run of 23 on
/// 2026-11-21 reached +160 MiB over its RSS before the snapshot, where 5%
/// is 153.
pub(super) const REST_HELD_SHARE: u64 = 40;

/// The longest single rest of [`Pacer`].
pub(super) const MAX_REST: Duration = Duration::from_millis(10);

/// Gives way to client requests between the walker's slices: a plain
/// yield to the loop when no client's command was counted in the last
/// [`BUSY_WINDOW`] (the snapshot runs at full speed on an otherwise idle
/// server), else a rest of `pace` times the slice's own time
/// (`snapshot-pace` for a [`Speed::Background`] snapshot, 0 for
/// [`Speed::Now`]).
///
/// Why rest at all: a walker that only yields keeps its worker thread
/// runnable from the barrier to the end. Where the machine's cores are all
/// busy (measured: 2 vCPUs shared by two workers and the load generator),
/// the scheduler then takes the thread off its core for 4-15 ms at a time,
/// and the connections it serves wait that long; short rests keep the
/// thread a short-burst one that gets its core back as soon as it wakes.
/// The rests are timerfd sleeps on the ring (a slice takes ~0.15 ms, far
/// below the millisecond timer).
pub(super) struct Pacer<'a> {
    worker: &'a Worker,
    pace: u32,
    timer: Option<crate::runtime::FineTimer>,
    commands: u64,
    /// When the count of commands was last seen to change.
    busy_at: Option<Instant>,
    /// Time spent resting so far.
    rested: Duration,
}

impl<'a> Pacer<'a> {
    fn new(worker: &'a Worker, pace: u32) -> Self {
        Pacer {
            worker,
            pace,
            timer: (pace > 0).then(crate::runtime::FineTimer::new),
            commands: Self::commands(worker),
            busy_at: None,
            rested: Duration::ZERO,
        }
    }

    /// Commands the server's clients have sent so far (all workers': a
    /// shard also runs commands for other workers' connections).
    fn commands(worker: &Worker) -> u64 {
        crate::shared::sum(&worker.shared.stats, |s| &s.commands)
    }

    /// Gives way after a slice that took `worked`, the shard's snapshot
    /// still holding `held` bytes once the slice's frames were taken (the
    /// entries kept aside, mostly).
    async fn rest(&mut self, worked: Duration, held: u64) {
        let now = Self::commands(self.worker);
        if now != self.commands {
            self.commands = now;
            self.busy_at = Some(Instant::now());
        }
        // Busy: commands were counted within the last BUSY_WINDOW. Not
        // "since the last slice": a command is counted once its batch is
        // done, a slice takes ~0.15 ms, and where the cores are short the
        // worker serving a client can be off its core for several slices
        // of this one (measured: 26 slices in a row with no count moving
        // while a client sent SETs in a loop).
        let busy = self.busy_at.is_some_and(|t| t.elapsed() < BUSY_WINDOW);
        // A longer snapshot keeps more overwritten entries: no rests once
        // the shards hold 1/REST_HELD_SHARE of the data (see there).
        let shards = self.worker.shard_count() as u64;
        let roomy = held.saturating_mul(shards).saturating_mul(REST_HELD_SHARE)
            < crate::alloc::used_memory();
        match &self.timer {
            Some(timer) if busy && roomy => {
                let from = Instant::now();
                // A slice the scheduler interrupted took far longer than
                // its work: rest no more than MAX_REST after it.
                timer.sleep((worked * self.pace).min(MAX_REST)).await;
                self.rested += from.elapsed();
            }
            _ => crate::runtime::yield_to_loop().await,
        }
    }
}

/// Fills the stage's aligned buffer ([`Stage::fill`]) on the job thread
/// `encoder`, or on the loop a [`COPY_PIECE`] at a time with client
/// requests in between where there is none, and writes its whole blocks at
/// `offset` on the ring; returns the offset after them. The stage is lost
/// (None) if the job thread stopped with it; `encoder` is then None too,
/// and the next snapshot fills on the loop.
async fn write_some(
    ring: &RingFile,
    stage: &mut Option<Stage>,
    encoder: &mut Option<crate::runtime::JobThread>,
    offset: u64,
) -> Result<u64, (&'static str, String)> {
    let Some(mut s) = stage.take() else {
        return Err(("write", "the writer's buffers were lost".into()));
    };
    s = match encoder {
        Some(thread) => loop {
            // A COPY_PIECE per job: the thread holds a core a fraction of
            // a millisecond at a time, not the whole buffer's encoding
            // (a few ms of a big hash's segments), which on a machine with
            // its cores busy the worker waits for.
            let filled = thread
                .run(move || {
                    let done = s.fill(COPY_PIECE);
                    (s, done)
                })
                .await;
            match filled {
                Some((back, true)) => break back,
                Some((back, false)) => s = back,
                None => {
                    *encoder = None;
                    return Err(("encode", "the snapshot's encoding thread stopped".into()));
                }
            }
        },
        None => {
            // 4 MiB in one go holds the loop for ~0.5 ms, which a client
            // sending a request every millisecond sees in its p99.
            while !s.fill(COPY_PIECE) {
                crate::runtime::yield_to_loop().await;
            }
            s
        }
    };
    // The pieces encoded are let go of here, on the loop that made them.
    s.batch.drop_spent();
    let (n, io) = (s.ready, std::mem::replace(&mut s.io, AlignedBuf::zeroed(0)));
    let (r, io) = ring.write_prefix_at(io, n, offset).await;
    s.io = io;
    s.ready = 0;
    *stage = Some(s);
    r.map_err(|e| ("write", e.to_string()))?;
    Ok(offset + n as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The file body the stage writes is the walker's frames, encoded in
    /// order, in whole blocks, with their crc32c and count, whether it is
    /// filled in one go (the job thread) or a little at a time (on the
    /// loop, without one), and with a write buffer smaller than a chunks
    /// frame or not.
    #[test]
    fn the_stage_writes_the_walkers_frames_in_one_go_or_a_piece_at_a_time() {
        use engine::types::hash::{Hash, Limits};
        use engine::value::Value;
        let set = |shard: &mut engine::Shard, key: &[u8], v: Value| {
            let h = engine::keyhash::hash_key(key);
            shard.db_mut(0).insert(h, key, v, 0);
        };
        let make = || {
            let mut shard = engine::Shard::new(0, 1, 1);
            // Some values compress, most do not (2.5 MB of frames).
            let mut x = 7u64;
            for i in 0..8000 {
                let v: Vec<u8> = (0..50 + i % 500)
                    .map(|_| {
                        x = x
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        if i % 4 == 0 {
                            b'a'
                        } else {
                            (x >> 56) as u8
                        }
                    })
                    .collect();
                set(&mut shard, format!("key:{i}").as_bytes(), Value::string(v));
            }
            let big: Vec<u8> = (0..(3 << 20) + 7).map(|i| (i * 7 % 251) as u8).collect();
            set(&mut shard, b"big", Value::string(big));
            let mut hash = Hash::new();
            for i in 0..20_000 {
                hash.set(format!("field:{i}").as_bytes(), b"value", Limits::default());
            }
            set(&mut shard, b"hash", Value::Hash(hash));
            shard.begin_snapshot(true, true);
            shard
        };
        let mut shard = make();
        let (mut want, mut want_tally) = (Vec::new(), Tally::default());
        loop {
            let done = shard.snapshot_step(SLICE);
            let t = shard.take_snapshot_frames(&mut want);
            want_tally.pages += t.pages;
            want_tally.bytes += t.bytes;
            if done {
                break;
            }
        }
        for budget in [usize::MAX, COPY_PIECE, 1000] {
            for io_len in [MIN_CHUNK, 8 * BLOCK] {
                let context = format!("budget {budget}, buffer {io_len}");
                let mut stage = Buffers::new(io_len, false).stage.expect("stage");
                let mut shard = make();
                let (mut file, mut tally) = (Vec::new(), Tally::default());
                let drive = |stage: &mut Stage, file: &mut Vec<u8>| {
                    while !stage.fill(budget) {}
                    file.extend_from_slice(&stage.io.as_slice()[..stage.ready]);
                    assert_eq!(file.len() % BLOCK, 0, "{context}");
                    stage.ready = 0;
                };
                loop {
                    let done = shard.snapshot_step(SLICE);
                    let t = shard.take_snapshot_output(&mut stage.batch);
                    tally.pages += t.pages;
                    tally.bytes += t.bytes;
                    if done {
                        break;
                    }
                    while stage.waiting() >= io_len {
                        drive(&mut stage, &mut file);
                    }
                }
                while !stage.batch.is_empty() || stage.carry.len() >= BLOCK {
                    drive(&mut stage, &mut file);
                }
                assert!(stage.carry.len() < BLOCK, "{context}");
                // What the loop appends to stays bounded: its buffer never
                // grew (it grew by every frame before the batch compacted).
                assert_eq!(stage.batch.capacity(), io_len + 2 * SLICE, "{context}");
                file.extend_from_slice(&stage.carry);
                tally.pages += stage.tally.pages;
                tally.bytes += stage.tally.bytes;
                assert_eq!(file.len(), want.len(), "{context}");
                assert!(file == want, "{context}: the same bytes");
                assert_eq!(stage.crc, crc32c::crc32c(&want), "{context}");
                assert_eq!(tally, want_tally, "{context}");
            }
        }
    }

    #[test]
    fn writer_buffers_follow_the_shards_data() {
        // An empty shard's writer holds about 1 MiB, not 8.5.
        assert_eq!(writer_chunk(0), MIN_CHUNK);
        let small = Buffers::new(writer_chunk(0), false);
        let held = |b: &Buffers| {
            let s = b.stage.as_ref().expect("stage");
            (s.batch.capacity(), s.io.len())
        };
        let (pending, io) = held(&small);
        assert!(pending + io <= 1 << 20, "{pending} + {io}");
        assert!(small.stage.as_ref().is_some_and(|s| s.batch.is_empty()));
        // In between: 1/CHUNK_SHARE of the data, a power of two.
        assert_eq!(writer_chunk(64 << 20), 1 << 20);
        assert_eq!(writer_chunk(192 << 20), 2 << 20);
        assert_eq!(writer_chunk(200 << 20) % BLOCK, 0);
        // A big shard's as in M1.4.
        assert_eq!(writer_chunk(256 << 20), CHUNK);
        assert_eq!(writer_chunk(3 << 30), CHUNK);
        assert_eq!(writer_chunk(usize::MAX), CHUNK);
        let big = Buffers::new(writer_chunk(3 << 30), false);
        assert_eq!(held(&big), (CHUNK + 2 * SLICE, CHUNK));
    }
}
