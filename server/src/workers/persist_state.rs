//! The persistence state the threads share (`Shared` holds it for INFO,
//! LASTSAVE, MISCONF and DEBUG): each shard's log counters and the
//! snapshot status. Types only, here below the workers' shared state; what
//! changes them is `persist/aof/` and `persist/snapshot.rs`, which
//! re-export them.

use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::Mutex;
use std::time::Instant;

use engine::snapshot::manifest::Manifest;

/// An error a test asks the log's I/O to return (DEBUG AOF-FAULT).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultOp {
    Write,
    Sync,
    Any,
}

#[derive(Clone, Copy, Debug)]
pub struct Fault {
    pub op: FaultOp,
    pub errno: i32,
    /// Operations still to fail; 0: until cleared.
    pub remaining: u64,
}

/// One worker's log state as INFO and DEBUG see it.
#[repr(align(128))]
#[derive(Default)]
pub struct AofStats {
    pub enabled: AtomicBool,
    /// The last write or sync failed and no retry has succeeded yet.
    pub failed: AtomicBool,
    /// strerror text of the last failure.
    pub last_error: Mutex<String>,
    /// Record bytes in the log.
    pub current_size: AtomicU64,
    /// Record bytes in the log at the barrier of the snapshot the log
    /// continues (0 at start: all of the log read is counted).
    pub base_size: AtomicU64,
    /// Flushes (group commits) that succeeded.
    pub commits: AtomicU64,
    /// `always` commits written inline: a blocking O_DSYNC pwrite on the
    /// worker thread (`aof::commit::INLINE_MAX`).
    pub inline_commits: AtomicU64,
    /// Messages other shards left for this one while its `always` commit
    /// was in flight, rather than waking it (`worker::Held`).
    pub held: AtomicU64,
    /// Records they made durable.
    pub records: AtomicU64,
    pub fsyncs: AtomicU64,
    pub bytes_written: AtomicU64,
    pub delayed_fsync: AtomicU64,
    /// An everysec fdatasync is running.
    pub fsync_in_progress: AtomicBool,
    /// Record bytes appended but not yet written (aof_buffer_length).
    pub pending_bytes: AtomicU64,
    /// fdatasync latencies in microseconds.
    pub fsync_us: Mutex<Option<hdrhistogram::Histogram<u64>>>,
    /// The durable (`always`) write path of the open segments:
    /// `io_uring+direct`, `pwrite+buffered`, ... (INFO: `aof::io_path`).
    pub io_path: Mutex<String>,
    pub fault: Mutex<Option<Fault>>,
    pub fault_armed: AtomicBool,
}

/// State of snapshots for INFO, LASTSAVE, the `save` rules and MISCONF.
#[derive(Debug)]
pub struct Status {
    /// When the running snapshot started.
    pub running_since: Option<Instant>,
    /// A BGSAVE SCHEDULE waits for the running one (Redis has none to wait
    /// for other than a rewrite; ours is another snapshot).
    pub scheduled: bool,
    pub last_save_unix: u64,
    /// How the last save (SAVE, BGSAVE, a save rule, the final one) went:
    /// `rdb_last_bgsave_status` and, with `stop-writes-on-bgsave-error`,
    /// MISCONF. Log rewrites do not change it, as in Redis.
    pub last_ok: bool,
    /// When the last save started (Redis's `lastbgsave_try`).
    pub last_attempt: Option<Instant>,
    pub last_time_sec: i64,
    pub saves: u64,
    pub last_kind: &'static str,
    pub last_bytes: u64,
    pub last_pages: u64,
    pub last_keys: u64,
    /// Largest captured-but-unwritten bytes of a shard during the last
    /// snapshot (the extra memory snapshots cost).
    pub last_peak_pending: u64,
    /// Longest time a shard's walker rested during the last snapshot
    /// (`snapshot-pace`), in microseconds.
    pub last_rest_usec: u64,
    /// The snapshots on disk, newest first.
    pub manifest: Manifest,
    /// The shards hold the state of the manifest's newest snapshot
    /// (taken by this process), so the next may be a delta.
    pub delta_ok: bool,
    /// Bytes of the snapshot chain the log continues (part of
    /// `aof_current_size`, as Redis counts its base file).
    pub log_chain_bytes: u64,
    /// `aof_base_size`: `aof_current_size` after the last rewrite (or at
    /// start), the reference of `auto-aof-rewrite-percentage`.
    pub aof_base_size: u64,
    /// The running snapshot is a log rewrite (BGREWRITEAOF or automatic).
    pub rewrite_running: bool,
    /// A BGREWRITEAOF waits for the running snapshot.
    pub rewrite_scheduled: bool,
    pub rewrite_last_ok: bool,
    /// When the last log rewrite started: a failed one is retried
    /// [`RETRY_DELAY`] after it.
    pub rewrite_last_attempt: Option<Instant>,
    pub rewrite_last_time_sec: i64,
    pub rewrites: u64,
    /// Id of the log the shards write (None: the log is off). Once a
    /// snapshot has been taken with it, the manifest's log line names it.
    pub log_id: Option<u64>,
}

impl Status {
    pub fn new(manifest: Manifest, start_unix: u64) -> Status {
        let last_save_unix = manifest
            .snapshots
            .first()
            .map_or(start_unix, |m| m.created_ms / 1000);
        Status {
            running_since: None,
            scheduled: false,
            last_save_unix,
            last_ok: true,
            last_attempt: None,
            last_time_sec: -1,
            saves: 0,
            last_kind: "none",
            last_bytes: 0,
            last_pages: 0,
            last_keys: 0,
            last_peak_pending: 0,
            last_rest_usec: 0,
            manifest,
            delta_ok: false,
            log_chain_bytes: 0,
            aof_base_size: 0,
            rewrite_running: false,
            rewrite_scheduled: false,
            rewrite_last_ok: true,
            rewrite_last_attempt: None,
            rewrite_last_time_sec: -1,
            rewrites: 0,
            log_id: None,
        }
    }
}
