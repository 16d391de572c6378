//! The segments of a shard's log: the first segment, continuing the one
//! recovery left, the size of the next one, creating a segment
//! (zero-filled, synced, its directory entry synced) or taking the spare
//! made ahead of time in the background, and the descriptors an open
//! segment carries for each I/O path.

use std::cell::Cell;
use std::io;
use std::path::Path;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use engine::journal::io::{AlignedBuf, IoPath, LogIo};
use engine::journal::JournalError;

use super::{Aof, Exec, Seg, Spare};
use crate::log;
use crate::runtime::{self, RingFile};

impl Aof {
    /// Sets the size of the next segment: it grows with the log (the
    /// smallest power of two at least the log's size, from 1 MiB up to
    /// `aof-segment-size`), so that a small dataset does not hold 64 MiB
    /// per shard (plus as much again for the spare), and it is at most a
    /// quarter of the free space left (at least 64 KiB), so that a small or
    /// nearly full disk still takes a segment, with room for the spare and
    /// for snapshots. Called at start, before each spare is made, and
    /// before a failed flush is retried.
    pub(super) fn adapt_segment_size(&self) {
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
    pub(super) fn probe(&self) {
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
    pub(super) async fn first_segment(&self) {
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
    pub(super) fn resume(&self, r: crate::recover::Resume) -> io::Result<()> {
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
    pub(super) async fn create_segment(
        &self,
        lsn: u64,
        size: u64,
    ) -> Result<Rc<Seg>, JournalError> {
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

    pub(super) fn seg(&self, lsn: u64) -> Option<Rc<Seg>> {
        self.segs.borrow().iter().find(|s| s.lsn == lsn).cloned()
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
