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
//!   descriptor: on the ring, or, after a commit faster than
//!   [`INLINE_MAX`] (with several shards: after a run of them), inline as
//!   a blocking pwrite on the worker thread (as Redis blocks in
//!   fdatasync), which saves the wake-ups of a thread that would only
//!   sleep until the commit completes. With several shards, other shards'
//!   batches of writes wait while a commit is in flight instead of waking
//!   the thread (`worker::Held`).
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
//!
//! The code is cut by job: this file holds the types (`Aof`, its
//! segments, the spare), the [`Sink`], the log's start and failure state
//! and the INFO helpers; `segment.rs` opens, creates, zero-fills and
//! prepares segments; `io.rs` holds the write and sync paths and the fault
//! seam; `commit.rs` the group-commit loop, the inline rule and the
//! `everysec` sync loop.
//!
//! [`INLINE_MAX`]: commit::INLINE_MAX

use std::cell::{Cell, RefCell};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use engine::journal::io::{AlignedBuf, StdLogIo};
use engine::journal::{Journal, JournalConfig, JournalError};
use engine::propagate::LogSink;
use tokio::sync::Notify;

use crate::config::{AofIo, AppendFsync};
use crate::log;
use crate::runtime::{self, RingFile};
use crate::shared::Shared;

mod commit;
mod io;
mod segment;

pub use crate::persist_state::{AofStats, Fault, FaultOp};
pub use commit::{flush_loop, sync_loop};

/// strerror-style text of an I/O error (no " (os error N)" suffix).
pub fn error_text(kind_errno: Option<i32>, message: &str) -> String {
    match kind_errno {
        Some(e) => crate::sys::strerror(&std::io::Error::from_raw_os_error(e)),
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
    ///
    /// [`INLINE_MAX`]: commit::INLINE_MAX
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

    fn stats(&self) -> &AofStats {
        &self.shared.aof[self.id]
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
