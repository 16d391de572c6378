//! The I/O paths of the log: a write on the ring or the helper thread, a
//! plain pwrite into the page cache, a durable write through the
//! `O_DSYNC` descriptor (on the ring or inline, blocking the thread),
//! fdatasync, the directory sync, and running a flush plan over them;
//! the fault seam (`DEBUG AOF-FAULT`) and the fsync statistics.

use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine::journal::io::AlignedBuf;
use engine::journal::{FlushPlan, JournalError};

use super::{Aof, AofStats, Exec, Fault, FaultOp, Seg};
use crate::config::AppendFsync;
use crate::runtime::RingFile;

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

impl Aof {
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
    pub(super) async fn blocking_io<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        self.blocking(f)
            .await
            .unwrap_or_else(|| Err(io_thread_gone()))
    }

    pub(super) async fn write_at(
        &self,
        seg: &Seg,
        buf: AlignedBuf,
        off: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        if let Some(e) = self.stats().take_fault(FaultOp::Write) {
            return (Err(e), buf);
        }
        self.write_raw(seg, buf, off).await
    }

    /// [`Aof::write_at`] without the fault seam.
    pub(super) async fn write_raw(
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

    pub(super) async fn sync(&self, seg: &Seg) -> io::Result<()> {
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
    pub(super) async fn sync_raw(&self, seg: &Seg) -> io::Result<()> {
        match &seg.ring {
            Some(ring) => ring.sync_data().await,
            None => {
                let file = seg.file.clone();
                self.blocking_io(move || file.sync_data()).await
            }
        }
    }

    pub(super) async fn sync_dir(&self, dir: &Path) -> io::Result<()> {
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

    /// Runs a plan: writes in order, a new segment created first, the old
    /// segment synced before the next one is written; with `always` the
    /// last segment is synced too.
    pub(super) async fn execute(
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
    pub(super) fn tail_block_start(&self) -> u64 {
        let pos = self.journal.borrow().current_segment().map_or(0, |c| c.2);
        pos - pos % engine::journal::io::ALIGN as u64
    }

    /// `appendfsync no`, once a second: starts the kernel's writeback of
    /// what was written since the last call and drops what is clean from
    /// the page cache (POSIX_FADV_DONTNEED does both), so the log holds
    /// about two seconds of records in the page cache rather than all of
    /// it. Nothing waits for that writeback.
    pub(super) fn drop_cached(&self) {
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
}

fn io_thread_gone() -> io::Error {
    io::Error::other("log I/O thread is gone")
}
