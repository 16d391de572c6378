//! The append-only log of one worker's shard, at run time: the engine's
//! [`Journal`] encodes records and plans aligned writes; this module does
//! the I/O on the worker's own io_uring (or, as a fallback, on a helper
//! thread), runs group commit, and tells the worker which replies may
//! leave.
//!
//! - Commands append records through [`Sink`] (no I/O) and wake the flush
//!   loop ([`flush_loop`]).
//! - The flush loop takes everything pending as one plan: one aligned
//!   write per segment touched, then, with `appendfsync always`, one
//!   `fdatasync`. Records appended while a flush is in flight go into the
//!   next one (group commit). When the flush completes, the worker releases
//!   the replies that waited for it.
//!   Under `always` the commit is one write through an `O_DSYNC`
//!   descriptor: on the ring, or, with one shard and after a commit faster
//!   than [`INLINE_MAX`], inline as a blocking pwrite on the worker thread
//!   (as Redis blocks in fdatasync), which saves the wake-ups of a thread
//!   that would only sleep until the commit completes. With several
//!   shards, other shards' batches of writes wait while a commit is in
//!   flight instead of waking the thread (`worker::Held`).
//! - `everysec`: the flush does not sync; [`sync_loop`] issues one
//!   `fdatasync` a second in its own task, so nothing ever waits for it;
//!   if the previous one still runs after 2 s, `aof_delayed_fsync` counts it.
//!   `no`: we never sync (except the old segment at a roll-over, which keeps
//!   the log free of holes).
//! - A reply waits for its record's write (like Redis, which writes the AOF
//!   before replying), and with `always` for its fdatasync too. Under
//!   `always` the write is O_DIRECT (through an `O_DSYNC` descriptor: one
//!   operation). Under `everysec` and `no` it is a plain `pwrite` into the
//!   page cache, on the worker thread, through a second, non-O_DIRECT
//!   descriptor of the segment ([`Aof::write_cached`]): once it returns the
//!   records are the kernel's, which a SIGKILL can't take, so the reply
//!   never waits for the device. The page cache is synced once a second
//!   (`everysec`), before a later segment is written (roll-over) and before
//!   an O_DSYNC write (a switch to `always`); what is synced is dropped
//!   from the page cache, and under `no` the kernel is told once a second
//!   to write back and drop what is written ([`Aof::drop_cached`]).
//! - A failed write or sync is remembered: the server refuses writes
//!   (MISCONF) until a retry, once a second, succeeds. Nothing acknowledged
//!   is ever dropped: failed records stay pending and are written again.

use std::cell::{Cell, RefCell};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use engine::journal::io::{AlignedBuf, IoPath, LogIo, StdLogIo};
use engine::journal::{FlushPlan, Journal, JournalConfig, JournalError};
use engine::propagate::LogSink;
use tokio::sync::Notify;

use crate::config::{AofIo, AppendFsync};
use crate::log;
use crate::runtime::{self, RingFile};
use crate::shared::Shared;
use crate::worker::Worker;

pub use crate::persist_state::{AofStats, Fault, FaultOp};

impl AofStats {
    fn record_fsync(&self, d: Duration) {
        self.fsyncs.fetch_add(1, Ordering::Relaxed);
        let mut h = self.fsync_us.lock().unwrap_or_else(|e| e.into_inner());
        let h = h.get_or_insert_with(|| {
            hdrhistogram::Histogram::new_with_bounds(1, 60_000_000, 2).unwrap_or_else(|_| {
                hdrhistogram::Histogram::new(2).unwrap_or_else(|_| unreachable!())
            })
        });
        let _ = h.record((d.as_micros() as u64).max(1));
    }

    /// fdatasync latency at quantile `q`, in microseconds (0: none yet).
    pub fn fsync_quantile(&self, q: f64) -> u64 {
        self.fsync_us
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |h| h.value_at_quantile(q))
    }

    /// Takes one failure for `op` if a fault is armed.
    fn take_fault(&self, op: FaultOp) -> Option<io::Error> {
        if !self.fault_armed.load(Ordering::Relaxed) {
            return None;
        }
        let mut f = self.fault.lock().unwrap_or_else(|e| e.into_inner());
        let fault = f.as_mut()?;
        if fault.op != FaultOp::Any && fault.op != op {
            return None;
        }
        let errno = fault.errno;
        if fault.remaining > 0 {
            fault.remaining -= 1;
            if fault.remaining == 0 {
                *f = None;
                self.fault_armed.store(false, Ordering::Relaxed);
            }
        }
        Some(io::Error::from_raw_os_error(errno))
    }

    pub fn set_fault(&self, fault: Option<Fault>) {
        let armed = fault.is_some();
        *self.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        self.fault_armed.store(armed, Ordering::Relaxed);
    }
}

/// strerror-style text of an I/O error (no " (os error N)" suffix).
pub fn error_text(kind_errno: Option<i32>, message: &str) -> String {
    match kind_errno {
        Some(e) => crate::sys::strerror(&io::Error::from_raw_os_error(e)),
        None => message.to_string(),
    }
}

/// Where the I/O runs.
enum Exec {
    /// On this worker's io_uring.
    Ring,
    /// Plain pwrite/fdatasync on a helper thread (io_uring unavailable or
    /// `aof-io pwrite`/`buffered`), so the event loop still never blocks.
    Thread(runtime::JobThread),
}

/// An open segment.
struct Seg {
    lsn: u64,
    file: Arc<std::fs::File>,
    ring: Option<RingFile>,
    /// The same file opened `O_DIRECT | O_DSYNC` on the ring: a write
    /// through it is durable when it completes, so a commit under `always`
    /// is one operation instead of a write and then an fdatasync.
    dsync: Option<RingFile>,
    /// That descriptor as a plain file, for the inline commit
    /// ([`INLINE_MAX`]).
    dsync_file: Option<std::fs::File>,
    buffered: bool,
    /// The same file opened without `O_DIRECT` (None when `file` is
    /// buffered already): under `everysec` and `no` a flush writes through
    /// it into the page cache, synchronously, before the replies leave.
    plain: Option<std::fs::File>,
    /// Page-cache writes not yet synced: a durable write (`always`, or a
    /// roll-over) must fdatasync the whole file, not only its own range.
    dirty: Cell<bool>,
}

impl Seg {
    /// The descriptor for page-cache writes.
    fn plain(&self) -> &std::fs::File {
        self.plain.as_ref().unwrap_or(&self.file)
    }
}

/// A zero-filled, synced file waiting to become the next segment (made in
/// the background, so that rolling over to a new segment costs a rename and
/// a directory sync rather than writing and syncing 64 MiB of zeros while
/// replies wait).
struct Spare {
    file: std::fs::File,
    size: u64,
    buffered: bool,
}

/// A worker's log.
pub struct Aof {
    id: usize,
    shared: Arc<Shared>,
    journal: RefCell<Journal<StdLogIo>>,
    io: RefCell<StdLogIo>,
    exec: Exec,
    /// Segments written by the plan in flight or the last one.
    segs: RefCell<Vec<Rc<Seg>>>,
    zeros: RefCell<Option<AlignedBuf>>,
    /// The next segment, zero-filled and synced ahead of time.
    spare: RefCell<Option<Spare>>,
    /// A task is making the spare.
    spare_busy: Cell<bool>,
    /// Set by appends; the flush loop waits on it.
    kick: Notify,
    /// Written since the last fdatasync (everysec).
    unsynced: Cell<bool>,
    /// Rounds of [`Aof::drop_cached`] still to run (2 after a page-cache
    /// write).
    cache_rounds: Cell<u8>,
    sync_started: Cell<Option<Instant>>,
    sync_failed: Cell<bool>,
    failed: Cell<bool>,
    /// The shard detached the log (CONFIG SET appendonly no): the flush
    /// loop writes what is pending, syncs and ends.
    closing: Cell<bool>,
    /// `aof-segment-size`: the largest segment ([`Aof::adapt_segment_size`]).
    max_segment: u64,
}

/// What the shard's commands append through. Dropping it (the shard
/// detached the log) closes the log.
pub struct Sink(pub Rc<Aof>);

impl Drop for Sink {
    fn drop(&mut self) {
        self.0.closing.set(true);
        self.0.kick.notify_one();
    }
}

impl LogSink for Sink {
    fn append(&mut self, payload: &[u8], tx: Option<(u64, u16)>) -> u64 {
        let lsn = match self.0.journal.borrow_mut().append_payload(payload, tx) {
            Ok(lsn) => lsn,
            Err(e) => {
                // Only a payload over 1 GiB gets here (proto-max-bulk-len
                // raised past it); the write has happened in memory.
                log::warning(&format!(
                    "Can't log a command of {} bytes: {e}",
                    payload.len()
                ));
                0
            }
        };
        self.0.kick.notify_one();
        lsn
    }
}

impl Aof {
    /// The log of shard `id` under `log_dir`, continuing at `next_lsn`
    /// after recovery (`existing` record bytes already in it), in the
    /// segment `resume` names if it can be opened (else in a new one).
    pub fn new(
        id: usize,
        shared: Arc<Shared>,
        log_dir: &Path,
        next_lsn: u64,
        existing: u64,
        resume: Option<crate::recover::Resume>,
    ) -> Rc<Aof> {
        let (segment_size, mode) = {
            let c = shared.config();
            (c.aof_segment_size, c.aof_io)
        };
        let cfg = JournalConfig::for_shard(log_dir, id)
            .with_segment_size(segment_size)
            .with_max_flush_bytes(engine::journal::writer::DEFAULT_MAX_FLUSH_BYTES);
        let io = if mode == AofIo::Buffered {
            StdLogIo::buffered()
        } else {
            StdLogIo::new()
        };
        let exec = if mode == AofIo::Auto && runtime::io_uring_available() {
            Exec::Ring
        } else {
            if mode == AofIo::Auto && id == 0 {
                log::warning(
                    "The event loops run on epoll: the append-only log uses \
                     pwrite/fdatasync on a helper thread",
                );
            }
            Exec::Thread(
                runtime::JobThread::spawn(format!("aof-io-{id}")).unwrap_or_else(|e| {
                    log::warning(&format!("Can't start the log I/O thread: {e}"));
                    runtime::JobThread::stopped()
                }),
            )
        };
        let stats = &shared.aof[id];
        stats.enabled.store(true, Ordering::Relaxed);
        stats.current_size.store(existing, Ordering::Relaxed);
        stats.base_size.store(0, Ordering::Relaxed);
        let aof = Rc::new(Aof {
            id,
            journal: RefCell::new(Journal::new(cfg, next_lsn, existing)),
            io: RefCell::new(io),
            exec,
            segs: RefCell::new(Vec::new()),
            zeros: RefCell::new(None),
            spare: RefCell::new(None),
            spare_busy: Cell::new(false),
            kick: Notify::new(),
            unsynced: Cell::new(false),
            cache_rounds: Cell::new(0),
            sync_started: Cell::new(None),
            sync_failed: Cell::new(false),
            failed: Cell::new(false),
            closing: Cell::new(false),
            max_segment: segment_size,
            shared,
        });
        aof.adapt_segment_size();
        let resumed = match resume.map(|r| aof.resume(r)) {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                log::warning(&format!(
                    "Can't continue the last log segment of shard {id} ({e}); the log goes on \
                     in a new segment"
                ));
                false
            }
            None => false,
        };
        if !resumed {
            aof.probe();
        }
        aof
    }

    /// Sets the size of the next segment: it grows with the log (the
    /// smallest power of two at least the log's size, from 1 MiB up to
    /// `aof-segment-size`), so that a small dataset does not hold 64 MiB
    /// per shard (plus as much again for the spare), and it is at most a
    /// quarter of the free space left (at least 64 KiB), so that a small or
    /// nearly full disk still takes a segment, with room for the spare and
    /// for snapshots. Called at start, before each spare is made, and
    /// before a failed flush is retried.
    fn adapt_segment_size(&self) {
        const SMALLEST: u64 = 1 << 20;
        const FLOOR: u64 = 64 << 10;
        let mut j = self.journal.borrow_mut();
        let grown = j
            .stats()
            .current_size
            .max(1)
            .checked_next_power_of_two()
            .unwrap_or(u64::MAX)
            .clamp(SMALLEST.min(self.max_segment), self.max_segment);
        let dir = &j.config().dir;
        let room = dir
            .ancestors()
            .find_map(|d| crate::sys::free_space(d).ok())
            .map_or(u64::MAX, |free| (free / 4) / FLOOR * FLOOR);
        j.set_segment_size(grown.min(room.max(FLOOR)));
    }

    /// Checks, before the server serves, that the shard's log directory can
    /// take a new segment. If not, writes are refused from the first one
    /// (MISCONF, as for a failure later on) instead of waiting for a flush
    /// that can't happen; the flush loop creates the segment, retrying
    /// every second, and writes are accepted once it exists.
    fn probe(&self) {
        let dir = self.journal.borrow().config().dir.clone();
        let probe = dir.join("probe.tmp");
        let made = std::fs::create_dir_all(&dir)
            .map_err(|e| JournalError::new("create directory", &dir, None, &e))
            .and_then(|()| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&probe)
                    .map_err(|e| JournalError::new("create", &probe, None, &e))
            });
        match made {
            Ok(_) => {
                let _ = std::fs::remove_file(&probe);
            }
            Err(e) => {
                log::warning(&format!(
                    "Can't write the append-only log of shard {}: {e}. Writes are refused \
                     (MISCONF) until it can be written; retrying every second.",
                    self.id
                ));
                self.set_failed(true, Some(&e));
            }
        }
    }

    /// A log that starts a new segment (no segment to continue) creates it
    /// before the first write needs it: a failure shows at once, as
    /// MISCONF, and is retried every second until it succeeds.
    async fn first_segment(&self) {
        loop {
            let (lsn, size, needed) = {
                let j = self.journal.borrow();
                (
                    j.next_lsn(),
                    j.config().segment_size,
                    j.current_segment().is_none() && self.segs.borrow().is_empty(),
                )
            };
            if !needed || self.closing.get() {
                return;
            }
            match self.create_segment(lsn, size).await {
                Ok(seg) => {
                    self.segs.borrow_mut().push(seg);
                    self.set_failed(false, None);
                    return;
                }
                Err(e) => {
                    if !self.failed.get() {
                        log::warning(&format!(
                            "Can't create the log segment of shard {}: {e}. Writes are refused \
                             (MISCONF) until it can be written; retrying every second.",
                            self.id
                        ));
                    }
                    self.set_failed(true, Some(&e));
                    runtime::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }

    /// Opens the segment recovery left last and lets the journal continue
    /// it (a restart adds no segment).
    fn resume(&self, r: crate::recover::Resume) -> io::Result<()> {
        let dir = self.journal.borrow().config().dir.clone();
        let path = engine::journal::io::segment_path(&dir, r.first_lsn);
        let (file, buffered) = {
            let mut io = self.io.borrow_mut();
            let f = io.open_segment(&dir, r.first_lsn)?;
            (f, io.io_path() == Some(IoPath::Buffered))
        };
        self.set_io_path(buffered);
        let seg = self.open_seg(r.first_lsn, &path, &file, buffered)?;
        self.segs.borrow_mut().push(Rc::new(seg));
        self.journal
            .borrow_mut()
            .resume(r.first_lsn, r.size, r.pos, r.tail, file);
        Ok(())
    }

    fn stats(&self) -> &AofStats {
        &self.shared.aof[self.id]
    }

    fn set_io_path(&self, buffered: bool) {
        let engine = match self.exec {
            Exec::Ring => "io_uring",
            Exec::Thread(_) => "pwrite",
        };
        let path = format!("{engine}+{}", if buffered { "buffered" } else { "direct" });
        let mut p = self
            .stats()
            .io_path
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if *p != path {
            if buffered && self.id == 0 {
                log::warning(
                    "The filesystem of the log directory refuses O_DIRECT: the \
                     append-only log uses buffered writes and drops the written \
                     pages from the page cache after each sync",
                );
            }
            *p = path;
        }
    }

    /// Runs `f` on the helper thread (or here, for the ring path's rare
    /// blocking calls) and waits for its result without blocking the loop.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        match &self.exec {
            Exec::Ring => Some(f()),
            Exec::Thread(t) => t.run(f).await,
        }
    }

    /// [`Aof::blocking`] for an I/O call; a lost helper thread is an error.
    async fn blocking_io<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        self.blocking(f)
            .await
            .unwrap_or_else(|| Err(io_thread_gone()))
    }

    async fn write_at(&self, seg: &Seg, buf: AlignedBuf, off: u64) -> (io::Result<()>, AlignedBuf) {
        if let Some(e) = self.stats().take_fault(FaultOp::Write) {
            return (Err(e), buf);
        }
        self.write_raw(seg, buf, off).await
    }

    /// [`Aof::write_at`] without the fault seam.
    async fn write_raw(
        &self,
        seg: &Seg,
        buf: AlignedBuf,
        off: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        match &seg.ring {
            Some(ring) => ring.write_all_at(buf, off).await,
            None => {
                let file = seg.file.clone();
                let gone = AlignedBuf::zeroed(0);
                self.blocking(move || {
                    let r = file.write_all_at(buf.as_slice(), off);
                    (r, buf)
                })
                .await
                .unwrap_or_else(|| (Err(io_thread_gone()), gone))
            }
        }
    }

    /// A plain pwrite into the page cache, on this thread: the records are
    /// the kernel's when it returns (they survive the death of the
    /// process); the sync comes later (`everysec`) or from the kernel
    /// (`no`).
    fn write_cached(&self, seg: &Seg, buf: &AlignedBuf, off: u64) -> io::Result<()> {
        if let Some(e) = self.stats().take_fault(FaultOp::Write) {
            return Err(e);
        }
        seg.dirty.set(true);
        self.cache_rounds.set(2);
        seg.plain().write_all_at(buf.as_slice(), off)
    }

    /// A write through the segment's `O_DSYNC` descriptor: durable when
    /// done. Both fault seams apply (it is a write and a sync).
    async fn durable_write_at(
        &self,
        dsync: &RingFile,
        buf: AlignedBuf,
        off: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        let stats = self.stats();
        if let Some(e) = stats
            .take_fault(FaultOp::Write)
            .or_else(|| stats.take_fault(FaultOp::Sync))
        {
            return (Err(e), buf);
        }
        dsync.write_all_at(buf, off).await
    }

    /// [`Aof::durable_write_at`] as a blocking pwrite on this thread,
    /// through the same `O_DSYNC` descriptor: durable when it returns.
    fn durable_write_inline(&self, seg: &Seg, buf: &AlignedBuf, off: u64) -> io::Result<()> {
        let stats = self.stats();
        if let Some(e) = stats
            .take_fault(FaultOp::Write)
            .or_else(|| stats.take_fault(FaultOp::Sync))
        {
            return Err(e);
        }
        let file = seg
            .dsync_file
            .as_ref()
            .ok_or_else(|| io::Error::other("the segment has no O_DSYNC descriptor"))?;
        file.write_all_at(buf.as_slice(), off)?;
        stats.inline_commits.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    async fn sync(&self, seg: &Seg) -> io::Result<()> {
        if let Some(e) = self.stats().take_fault(FaultOp::Sync) {
            return Err(e);
        }
        let started = Instant::now();
        // Writes landing while the sync runs make the segment dirty again.
        let was_dirty = seg.dirty.replace(false);
        let r = self.sync_raw(seg).await;
        if r.is_err() && was_dirty {
            seg.dirty.set(true);
        }
        if r.is_ok() {
            self.stats().record_fsync(started.elapsed());
            if seg.buffered {
                // Written and synced: the cached copy is not needed.
                crate::sys::fadvise_dontneed(seg.file.as_raw_fd(), 0, 0);
            }
        }
        r
    }

    /// fdatasync without the fault seam and the statistics.
    async fn sync_raw(&self, seg: &Seg) -> io::Result<()> {
        match &seg.ring {
            Some(ring) => ring.sync_data().await,
            None => {
                let file = seg.file.clone();
                self.blocking_io(move || file.sync_data()).await
            }
        }
    }

    async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        let dirs: Vec<PathBuf> = std::iter::once(dir.to_path_buf())
            .chain(
                dir.parent()
                    .filter(|p| !p.as_os_str().is_empty())
                    .map(Path::to_path_buf),
            )
            .collect();
        for d in dirs {
            let f = std::fs::File::open(&d)?;
            match self.exec {
                Exec::Ring => RingFile::from_std(f).sync_all().await?,
                Exec::Thread(_) => self.blocking_io(move || f.sync_all()).await?,
            }
        }
        Ok(())
    }

    /// An open segment on `file`, with the descriptors the I/O path needs.
    fn open_seg(
        &self,
        lsn: u64,
        path: &Path,
        file: &std::fs::File,
        buffered: bool,
    ) -> io::Result<Seg> {
        let ring = match self.exec {
            Exec::Ring => Some(RingFile::from_std(file.try_clone()?)),
            Exec::Thread(_) => None,
        };
        let dsync_file = match (&ring, buffered) {
            (Some(_), false) => open_dsync(path).ok(),
            _ => None,
        };
        let dsync = dsync_file
            .as_ref()
            .and_then(|f| f.try_clone().ok())
            .map(RingFile::from_std);
        let plain = if buffered {
            None
        } else {
            Some(std::fs::OpenOptions::new().write(true).open(path)?)
        };
        Ok(Seg {
            lsn,
            file: Arc::new(file.try_clone()?),
            ring,
            dsync,
            dsync_file,
            buffered,
            plain,
            dirty: Cell::new(false),
        })
    }

    /// Writes `size` bytes of zeros over `seg` and syncs it; `seam`: through
    /// the fault seam and the fsync statistics (the flush path) or not (the
    /// spare, made in the background).
    async fn zero_fill(
        &self,
        seg: &Seg,
        path: &Path,
        size: u64,
        seam: bool,
    ) -> Result<(), JournalError> {
        const CHUNK: u64 = 1 << 20;
        let mut off = 0u64;
        while off < size {
            let n = (size - off).min(CHUNK) as usize;
            let zeros = match self.zeros.borrow_mut().take() {
                Some(z) if z.len() == n => z,
                _ => AlignedBuf::zeroed(n),
            };
            let (r, zeros) = if seam {
                self.write_at(seg, zeros, off).await
            } else {
                self.write_raw(seg, zeros, off).await
            };
            if zeros.len() == CHUNK as usize {
                *self.zeros.borrow_mut() = Some(zeros);
            }
            r.map_err(|e| JournalError::new("preallocate", path, Some(off), &e))?;
            off += n as u64;
        }
        let r = if seam {
            self.sync(seg).await
        } else {
            self.sync_raw(seg).await
        };
        r.map_err(|e| JournalError::new("sync", path, None, &e))
    }

    /// Creates segment `lsn` of `size` bytes: zero-filled (so that later
    /// writes change neither its size nor its extents), synced, and its
    /// directory entry synced. Takes the spare when one of that size is
    /// ready (a rename); otherwise fills the new file here.
    async fn create_segment(&self, lsn: u64, size: u64) -> Result<Rc<Seg>, JournalError> {
        let dir = self.journal.borrow().config().dir.clone();
        let path = engine::journal::io::segment_path(&dir, lsn);
        let err = |op, e: &io::Error| JournalError::new(op, &path, None, e);
        let spare = self.spare.borrow_mut().take().filter(|s| s.size == size);
        let (file, seg) = match spare {
            Some(spare) => {
                let from = engine::journal::io::spare_path(&dir);
                match self.exec {
                    Exec::Ring => runtime::rename(&from, &path).await,
                    Exec::Thread(_) => {
                        let to = path.clone();
                        self.blocking_io(move || std::fs::rename(from, to)).await
                    }
                }
                .map_err(|e| err("rename the spare segment to", &e))?;
                self.set_io_path(spare.buffered);
                let seg = self
                    .open_seg(lsn, &path, &spare.file, spare.buffered)
                    .map_err(|e| err("open", &e))?;
                (spare.file, seg)
            }
            None => {
                let (file, buffered) = {
                    let mut io = self.io.borrow_mut();
                    let f = io
                        .create_segment(&dir, lsn)
                        .map_err(|e| err("create", &e))?;
                    (f, io.io_path() == Some(IoPath::Buffered))
                };
                self.set_io_path(buffered);
                let seg = self
                    .open_seg(lsn, &path, &file, buffered)
                    .map_err(|e| err("open", &e))?;
                self.zero_fill(&seg, &path, size, true).await?;
                (file, seg)
            }
        };
        self.sync_dir(&dir)
            .await
            .map_err(|e| JournalError::new("sync directory", &dir, None, &e))?;
        self.journal.borrow_mut().adopt_segment(lsn, file);
        Ok(Rc::new(seg))
    }

    /// Starts making the spare segment in the background unless there is
    /// one or one is being made. A failure only means the next roll-over
    /// fills its segment itself (and reports any error then).
    pub fn start_spare(self: &Rc<Self>) {
        if self.spare_busy.get() || self.spare.borrow().is_some() {
            return;
        }
        self.spare_busy.set(true);
        let aof = self.clone();
        runtime::spawn(async move {
            let made = aof.make_spare().await;
            aof.spare_busy.set(false);
            match made {
                Ok(spare) => *aof.spare.borrow_mut() = Some(spare),
                Err(e) => log::verbose(&format!(
                    "Could not prepare the next log segment ahead of time (shard {}): {e}",
                    aof.id
                )),
            }
        });
    }

    async fn make_spare(&self) -> Result<Spare, JournalError> {
        self.adapt_segment_size();
        let (dir, size) = {
            let j = self.journal.borrow();
            (j.config().dir.clone(), j.config().segment_size)
        };
        let path = engine::journal::io::spare_path(&dir);
        let (file, buffered) = {
            let mut io = self.io.borrow_mut();
            let f = io
                .create_spare(&dir)
                .map_err(|e| JournalError::new("create", &path, None, &e))?;
            (f, io.io_path() == Some(IoPath::Buffered))
        };
        let seg = self
            .open_seg(0, &path, &file, buffered)
            .map_err(|e| JournalError::new("open", &path, None, &e))?;
        if let Err(e) = self.zero_fill(&seg, &path, size, false).await {
            // A half-made spare must not hold space the log needs (ENOSPC
            // is the likely cause).
            let _ = self.blocking_io(move || std::fs::remove_file(path)).await;
            return Err(e);
        }
        Ok(Spare {
            file,
            size,
            buffered,
        })
    }

    fn seg(&self, lsn: u64) -> Option<Rc<Seg>> {
        self.segs.borrow().iter().find(|s| s.lsn == lsn).cloned()
    }

    /// Runs a plan: writes in order, a new segment created first, the old
    /// segment synced before the next one is written; with `always` the
    /// last segment is synced too.
    async fn execute(
        &self,
        plan: &mut FlushPlan,
        mode: AppendFsync,
        inline: bool,
    ) -> Result<Duration, JournalError> {
        // The segment's path, for an error only (a path per flush was 0.5%
        // of a SET's CPU under everysec: BENCHMARKS.md, M2.3).
        let path_of =
            |lsn: u64| engine::journal::io::segment_path(&self.journal.borrow().config().dir, lsn);
        let mut fsync = Duration::ZERO;
        let n = plan.writes().len();
        for i in 0..n {
            let (lsn, size, new, off) = {
                let w = &plan.writes()[i];
                (w.segment, w.segment_size, w.new_segment, w.offset)
            };
            // A segment created by an earlier, failed attempt of this
            // flush is reused: it was preallocated and synced.
            let seg = match self.seg(lsn) {
                Some(s) => s,
                None => {
                    debug_assert!(new, "segment {lsn} is not open");
                    let s = self.create_segment(lsn, size).await?;
                    self.segs.borrow_mut().push(s.clone());
                    s
                }
            };
            // A plan may start in a new segment (the previous plan filled
            // the old one): the old one's page-cache writes are synced
            // before anything goes to the new one, as at a roll-over within
            // a plan (docs/FORMATS.md: later lsns never without earlier).
            self.sync_older(lsn).await?;
            let rolls_over = plan.writes().get(i + 1).is_some_and(|w| w.segment != lsn);
            let last = i + 1 == n;
            let durable = rolls_over || (last && mode == AppendFsync::Always);
            let buf = std::mem::replace(&mut plan.writes_mut()[i].buf, AlignedBuf::zeroed(0));
            let started = Instant::now();
            // Under everysec and no the records go to the page cache with a
            // plain pwrite, here on the worker thread (as Redis's write()):
            // it returns once the kernel holds them, which is what a SIGKILL
            // can't take, so the replies need not wait for the device.
            let to_cache = mode != AppendFsync::Always;
            let (r, buf, synced) = match (&seg.dsync, durable) {
                _ if to_cache => {
                    let r = self.write_cached(&seg, &buf, off);
                    (r, buf, false)
                }
                // Page-cache writes not synced yet: the O_DSYNC write would
                // make only its own range durable; write and fdatasync all.
                (Some(_), true) if seg.dirty.get() => {
                    let (r, buf) = self.write_at(&seg, buf, off).await;
                    (r, buf, false)
                }
                // The device was fast at the last commit: block this
                // thread in the write, as Redis does in its fdatasync.
                (Some(_), true) if inline => {
                    let r = self.durable_write_inline(&seg, &buf, off);
                    (r, buf, true)
                }
                (Some(dsync), true) => {
                    let (r, buf) = self.durable_write_at(dsync, buf, off).await;
                    (r, buf, true)
                }
                _ => {
                    let (r, buf) = self.write_at(&seg, buf, off).await;
                    (r, buf, false)
                }
            };
            plan.writes_mut()[i].buf = buf;
            r.map_err(|e| JournalError::new("write", &path_of(lsn), Some(off), &e))?;
            if synced {
                let took = started.elapsed();
                self.stats().record_fsync(took);
                fsync += took;
            } else if durable {
                let started = Instant::now();
                self.sync(&seg)
                    .await
                    .map_err(|e| JournalError::new("sync", &path_of(lsn), None, &e))?;
                fsync += started.elapsed();
                if rolls_over {
                    // The old segment is complete and synced: its pages
                    // need not stay cached.
                    crate::sys::fadvise_dontneed(seg.plain().as_raw_fd(), 0, 0);
                }
            } else if last {
                self.unsynced.set(true);
            }
        }
        Ok(fsync)
    }

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

    /// Syncs (and drops from the page cache) every open segment before
    /// `lsn` that holds page-cache writes not yet synced.
    async fn sync_older(&self, lsn: u64) -> Result<(), JournalError> {
        let older: Vec<Rc<Seg>> = self
            .segs
            .borrow()
            .iter()
            .filter(|s| s.lsn < lsn && s.dirty.get())
            .cloned()
            .collect();
        for seg in older {
            self.sync(&seg).await.map_err(|e| {
                let dir = self.journal.borrow().config().dir.clone();
                JournalError::new(
                    "sync",
                    &engine::journal::io::segment_path(&dir, seg.lsn),
                    None,
                    &e,
                )
            })?;
            crate::sys::fadvise_dontneed(seg.plain().as_raw_fd(), 0, 0);
        }
        Ok(())
    }

    /// Where the block the next flush rewrites starts in the current
    /// segment.
    fn tail_block_start(&self) -> u64 {
        let pos = self.journal.borrow().current_segment().map_or(0, |c| c.2);
        pos - pos % engine::journal::io::ALIGN as u64
    }

    /// `appendfsync no`, once a second: starts the kernel's writeback of
    /// what was written since the last call and drops what is clean from
    /// the page cache (POSIX_FADV_DONTNEED does both), so the log holds
    /// about two seconds of records in the page cache rather than all of
    /// it. Nothing waits for that writeback.
    fn drop_cached(&self) {
        // Two rounds after the last write: the second drops the pages the
        // first one sent to the device.
        let rounds = self.cache_rounds.get();
        if rounds == 0 {
            return;
        }
        self.cache_rounds.set(rounds - 1);
        let current = self.journal.borrow().current_segment().map(|c| c.0);
        if let Some(seg) = current.and_then(|l| self.seg(l)) {
            if let Some(plain) = &seg.plain {
                crate::sys::fadvise_dontneed(plain.as_raw_fd(), 0, self.tail_block_start());
            }
        }
    }

    fn set_failed(&self, failed: bool, why: Option<&JournalError>) {
        let stats = self.stats();
        if let Some(e) = why {
            *stats.last_error.lock().unwrap_or_else(|e| e.into_inner()) =
                error_text(e.errno, &e.message);
        }
        let now_failed = failed || self.sync_failed.get();
        if now_failed != self.failed.get() {
            self.failed.set(now_failed);
            stats.failed.store(now_failed, Ordering::Relaxed);
            self.shared.set_aof_failed(now_failed);
            if !now_failed {
                log::warning(&format!(
                    "AOF write error looks solved (shard {}), the server can write again.",
                    self.id
                ));
            }
        }
    }
}

/// Opens a log segment for durable direct writes.
fn open_dsync(path: &Path) -> io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_DIRECT | libc::O_DSYNC)
        .open(path)
}

fn io_thread_gone() -> io::Error {
    io::Error::other("log I/O thread is gone")
}

/// INFO's `aof_io_path`: how a flush under the current `appendfsync`
/// writes. Under `always` the durable path the segments were opened with
/// (`io_uring+direct`: an O_DSYNC O_DIRECT write on the ring;
/// `pwrite+direct`/`pwrite+buffered`: a helper thread's pwrite and
/// fdatasync). Under `everysec` and `no` every flush is a plain pwrite into
/// the page cache on the worker thread, whatever the segment supports:
/// `pwrite+buffered`. `none` before a segment is open.
pub fn io_path(shared: &Shared) -> String {
    let durable = shared
        .aof
        .first()
        .map(|a| a.io_path.lock().unwrap_or_else(|e| e.into_inner()).clone())
        .filter(|p| !p.is_empty());
    match durable {
        None => "none".to_string(),
        Some(_) if shared.appendfsync() != AppendFsync::Always => "pwrite+buffered".to_string(),
        Some(p) => p,
    }
}

/// `aof_current_size`: the snapshot chain the log continues plus the log's
/// record bytes since it (Redis: base file plus incremental files).
pub fn aof_current_size(shared: &crate::shared::Shared) -> u64 {
    use std::sync::atomic::Ordering::Relaxed;
    let chain = shared.snapshot_status().log_chain_bytes;
    chain
        + shared
            .aof
            .iter()
            .map(|a| {
                a.current_size
                    .load(Relaxed)
                    .saturating_sub(a.base_size.load(Relaxed))
            })
            .sum::<u64>()
}

/// Group commit: flushes whatever is pending, one plan at a time, and
/// releases the replies each flush makes durable.
pub async fn flush_loop(worker: Rc<Worker>, aof: Rc<Aof>) {
    aof.first_segment().await;
    aof.start_spare();
    let timer = runtime::FineTimer::new();
    // Records of the last commit, and how long it took.
    let mut last = (0usize, Duration::ZERO);
    // One shard: the commit after a fast one blocks the thread
    // ([`INLINE_MAX`]). With more, other shards' requests pass through this
    // thread too, and blocking it would hold them up: commits stay on the
    // ring.
    let may_inline = worker.shard_count() == 1;
    loop {
        let always = worker.shared.appendfsync() == AppendFsync::Always;
        let inline = always && may_inline && last.1 < inline_max();
        // A blocked thread gathers by itself: what arrives meanwhile waits
        // for it to return.
        if always && !inline && last.0 > 1 {
            gather(&aof, &timer, last.0, last.1).await;
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
        let held = mode == AppendFsync::Always && !inline;
        if held {
            worker.commit_in_flight(true);
        }
        let result = aof.execute(&mut plan, mode, inline).await;
        last = (plan.records(), started.elapsed());
        aof.start_spare();
        let records = plan.records() as u64;
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

/// Under `always`, after a commit of several records: waits until as many
/// more records are pending as that commit made durable (the clients it
/// released are back), while records keep arriving (a quiet gap of
/// [`GATHER_GAP`] ends it), for at most half the last commit's time and
/// [`GATHER_MAX`], so that the clients the commit released join the next
/// commit instead of the one after it. Without it the clients split into
/// groups, one waiting for the commit in flight while the other's records
/// make the next: fewer records per fdatasync (the measurement is in
/// BENCHMARKS.md, "M2.3").
async fn gather(aof: &Aof, timer: &runtime::FineTimer, last_records: usize, last_commit: Duration) {
    let deadline = Instant::now() + (last_commit / 2).min(GATHER_MAX);
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

/// The quiet gap that ends [`gather`]: a few client round trips on
/// loopback.
const GATHER_GAP: Duration = Duration::from_micros(150);
/// The longest [`gather`] waits.
const GATHER_MAX: Duration = Duration::from_millis(2);

/// Under `always` with one shard, a commit after one that took less than
/// this is written inline: a blocking pwrite through the segment's
/// `O_DSYNC` descriptor on the worker thread, as Redis blocks its thread in
/// fdatasync, instead of the same write on the ring. While the thread is
/// blocked, requests queue up without waking it (on the ring each of them
/// is a wake-up of a thread that sleeps until the commit completes, and
/// the loop turned about 10 times per commit); when it returns they run in
/// one go and join the next commit, so no [`gather`] is needed. After a
/// slower commit the next one goes through the ring, so that a slow or
/// stalled device holds the event loop for one commit at most, not for
/// every one. With several shards the thread also carries the other
/// shards' requests and replies, and blocking it held them up (measured
/// 0.74-0.84x of the ring): their commits stay on the ring. The
/// measurements are in BENCHMARKS.md, "M2.3", "always".
pub const INLINE_MAX: Duration = Duration::from_millis(2);

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
