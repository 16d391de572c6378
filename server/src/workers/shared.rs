//! State shared by all worker threads: configuration, the client registry,
//! counters. None of it is on the data path: commands never lock anything
//! here. Values a connection reads often are mirrored in atomics.

use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use crate::clients::Clients;
use crate::config::Config;
use crate::worker::Mailbox;

/// Per-worker counters, each on its own cache line.
#[repr(align(128))]
#[derive(Default)]
pub struct WorkerStats {
    pub commands: AtomicU64,
    pub net_input: AtomicU64,
    pub net_output: AtomicU64,
    pub connections: AtomicU64,
    pub rejected: AtomicU64,
    pub error_replies: AtomicU64,
}

pub struct Shared {
    pub config: RwLock<Config>,
    pub mailboxes: Vec<Mailbox>,
    /// Per shard: batches left for it while its commit is in flight.
    pub held: Vec<crate::worker::Held>,
    pub clients: Clients,
    pub stats: Vec<WorkerStats>,
    /// Per-worker state of the append-only log, for INFO and DEBUG.
    pub aof: Vec<crate::persist_state::AofStats>,
    /// Shards whose log is failing: while non-zero, writes are refused.
    aof_failed: AtomicUsize,
    /// `appendfsync` as an index of `AppendFsync::NAMES`.
    appendfsync: AtomicUsize,
    /// Commands replayed from the log at start, over all shards.
    pub aof_loaded: AtomicU64,
    /// Keys loaded from a snapshot at start, over all shards.
    pub snapshot_loaded: AtomicU64,
    /// Becomes true when loading is over and the workers accept clients.
    pub serving: tokio::sync::watch::Sender<bool>,
    pub started: Instant,
    pub start_unix_ms: u64,
    pub run_id: String,
    /// Connections currently open (for `maxclients`).
    pub connected: AtomicUsize,
    maxclients: AtomicUsize,
    proto_max_bulk_len: AtomicI64,
    query_buffer_limit: AtomicU64,
    hz: AtomicU64,
    timeout_secs: AtomicU64,
    /// `client-output-buffer-limit normal`'s hard limit (0 = none).
    obuf_hard_normal: AtomicU64,
    /// INFO `evicted_clients`: clients closed by `maxmemory-clients`.
    pub evicted_clients: AtomicU64,
    /// Bumped when a connection with big buffers closed: every worker then
    /// returns its freed memory to the system (`alloc::collect`).
    pub memory_collect: AtomicU64,
    pub has_password: std::sync::atomic::AtomicBool,
    /// Samples for INFO's instantaneous_* fields.
    pub rates: Mutex<Rates>,
    /// Set by SHUTDOWN; the main thread waits on it.
    pub shutdown: Mutex<Option<std::sync::mpsc::Sender<()>>>,
    /// Snapshots: what is on disk, what runs, how the last one went.
    snapshot: Mutex<crate::persist_state::Status>,
    /// The last snapshot failed (MISCONF with stop-writes-on-bgsave-error).
    pub bgsave_failed: std::sync::atomic::AtomicBool,
    /// Held while the log is switched on or off at a barrier (and by each
    /// snapshot's barrier), so that a snapshot sees the log either on or
    /// off on every shard, with one id (`logswitch`).
    pub log_switch: tokio::sync::Mutex<()>,
    /// SIGTERM/SIGINT asked for a shutdown that first takes the final
    /// snapshot (save rules are set); worker 0's snapshot cron does it.
    pub shutdown_after_save: std::sync::atomic::AtomicBool,
}

/// What writes get after a failed snapshot (Redis 7's text).
pub const BGSAVE_REFUSAL: &str = "MISCONF Redis is configured to save RDB snapshots, but it's \
currently unable to persist to disk. Commands that may modify the data set are disabled, because \
this instance is configured to report errors during writes if RDB snapshotting fails \
(stop-writes-on-bgsave-error option). Please check the Redis logs for details about the RDB error.";

/// Sums a counter over all workers.
pub fn sum(stats: &[WorkerStats], f: impl Fn(&WorkerStats) -> &AtomicU64) -> u64 {
    stats.iter().map(|s| f(s).load(Ordering::Relaxed)).sum()
}

impl Shared {
    pub fn new(
        config: Config,
        mailboxes: Vec<Mailbox>,
        shutdown: std::sync::mpsc::Sender<()>,
    ) -> Arc<Self> {
        let workers = mailboxes.len();
        let shared = Shared {
            config: RwLock::new(config),
            held: (0..workers).map(|_| Default::default()).collect(),
            mailboxes,
            clients: Clients::default(),
            stats: (0..workers).map(|_| WorkerStats::default()).collect(),
            aof: (0..workers)
                .map(|_| crate::persist_state::AofStats::default())
                .collect(),
            aof_failed: AtomicUsize::new(0),
            appendfsync: AtomicUsize::new(0),
            aof_loaded: AtomicU64::new(0),
            snapshot_loaded: AtomicU64::new(0),
            serving: tokio::sync::watch::Sender::new(false),
            started: Instant::now(),
            start_unix_ms: crate::worker::now_ms(),
            run_id: random_hex(40),
            connected: AtomicUsize::new(0),
            maxclients: AtomicUsize::new(0),
            proto_max_bulk_len: AtomicI64::new(0),
            query_buffer_limit: AtomicU64::new(0),
            hz: AtomicU64::new(10),
            timeout_secs: AtomicU64::new(0),
            obuf_hard_normal: AtomicU64::new(0),
            evicted_clients: AtomicU64::new(0),
            memory_collect: AtomicU64::new(0),
            has_password: std::sync::atomic::AtomicBool::new(false),
            shutdown: Mutex::new(Some(shutdown)),
            rates: Mutex::new(Rates::default()),
            snapshot: Mutex::new(crate::persist_state::Status::new(
                engine::snapshot::manifest::Manifest::default(),
                crate::worker::now_ms() / 1000,
            )),
            bgsave_failed: std::sync::atomic::AtomicBool::new(false),
            log_switch: tokio::sync::Mutex::new(()),
            shutdown_after_save: std::sync::atomic::AtomicBool::new(false),
        };
        shared.refresh_hot();
        Arc::new(shared)
    }

    /// Copies the values connections read often from the config into atomics
    /// (after start and after CONFIG SET).
    pub fn refresh_hot(&self) {
        let c = self.config.read().unwrap_or_else(|e| e.into_inner());
        self.maxclients
            .store(c.maxclients as usize, Ordering::Relaxed);
        self.proto_max_bulk_len
            .store(c.proto_max_bulk_len as i64, Ordering::Relaxed);
        self.query_buffer_limit
            .store(c.client_query_buffer_limit, Ordering::Relaxed);
        self.hz.store(c.hz as u64, Ordering::Relaxed);
        self.timeout_secs.store(c.timeout as u64, Ordering::Relaxed);
        self.obuf_hard_normal
            .store(c.client_output_buffer_limit[0].hard, Ordering::Relaxed);
        self.has_password
            .store(!c.requirepass.is_empty(), Ordering::Relaxed);
        self.appendfsync
            .store(c.appendfsync as usize, Ordering::Relaxed);
    }

    pub fn appendfsync(&self) -> crate::config::AppendFsync {
        crate::config::AppendFsync::from_index(self.appendfsync.load(Ordering::Relaxed))
    }

    /// A shard's log started or stopped failing.
    pub fn set_aof_failed(&self, failed: bool) {
        if failed {
            self.aof_failed.fetch_add(1, Ordering::AcqRel);
        } else {
            self.aof_failed.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// The error a write command gets while a shard's log is failing
    /// (Redis's MISCONF for AOF write errors); None when writes are allowed.
    pub fn write_refusal(&self) -> Option<String> {
        if self.aof_failed.load(Ordering::Relaxed) == 0 {
            if !self.bgsave_failed.load(Ordering::Relaxed) {
                return None;
            }
            let c = self.config();
            return (c.stop_writes_on_bgsave_error && !c.save.is_empty())
                .then(|| BGSAVE_REFUSAL.to_string());
        }
        let why = self
            .aof
            .iter()
            .find(|a| a.failed.load(Ordering::Relaxed))
            .map(|a| {
                a.last_error
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .clone()
            })
            .unwrap_or_else(|| "I/O error".to_string());
        Some(format!("MISCONF Errors writing to the AOF file: {why}"))
    }

    /// The snapshot status (briefly locked; never across an await).
    pub fn snapshot_status(&self) -> std::sync::MutexGuard<'_, crate::persist_state::Status> {
        self.snapshot.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn config(&self) -> std::sync::RwLockReadGuard<'_, Config> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn maxclients(&self) -> usize {
        self.maxclients.load(Ordering::Relaxed)
    }

    pub fn proto_max_bulk_len(&self) -> i64 {
        self.proto_max_bulk_len.load(Ordering::Relaxed)
    }

    pub fn query_buffer_limit(&self) -> u64 {
        self.query_buffer_limit.load(Ordering::Relaxed)
    }

    pub fn hz(&self) -> u64 {
        self.hz.load(Ordering::Relaxed)
    }

    pub fn timeout_secs(&self) -> u64 {
        self.timeout_secs.load(Ordering::Relaxed)
    }

    pub fn obuf_hard_normal(&self) -> u64 {
        self.obuf_hard_normal.load(Ordering::Relaxed)
    }

    /// Asks every worker to return freed memory to the system.
    pub fn request_memory_collect(&self) {
        self.memory_collect.fetch_add(1, Ordering::Relaxed);
    }

    pub fn requires_password(&self) -> bool {
        self.has_password.load(Ordering::Relaxed)
    }

    /// Asks the main thread to exit the process.
    pub fn request_shutdown(&self) {
        if let Some(tx) = self
            .shutdown
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            let _ = tx.send(());
        }
    }
}

/// Redis's instantaneous metrics: every 100 ms a sample of each counter's
/// rate goes into a ring of 16; INFO reports the mean of the ring.
#[derive(Default)]
pub struct Rates {
    last: Option<(Instant, [u64; 3])>,
    samples: Vec<[f64; 3]>,
    next: usize,
}

pub const RATE_SAMPLES: usize = 16;

impl Rates {
    /// Records the counters (commands, input bytes, output bytes) now.
    pub fn sample(&mut self, now: Instant, counters: [u64; 3]) {
        if let Some((then, prev)) = self.last {
            let secs = now.duration_since(then).as_secs_f64();
            if secs > 0.0 {
                let mut r = [0.0; 3];
                for i in 0..3 {
                    r[i] = counters[i].saturating_sub(prev[i]) as f64 / secs;
                }
                if self.samples.len() < RATE_SAMPLES {
                    self.samples.push(r);
                } else {
                    self.samples[self.next] = r;
                }
                self.next = (self.next + 1) % RATE_SAMPLES;
            }
        }
        self.last = Some((now, counters));
    }

    /// Mean rates: (ops/s, input KB/s, output KB/s).
    pub fn mean(&self) -> (f64, f64, f64) {
        if self.samples.is_empty() {
            return (0.0, 0.0, 0.0);
        }
        let n = self.samples.len() as f64;
        let sum = |i: usize| self.samples.iter().map(|s| s[i]).sum::<f64>() / n;
        (sum(0), sum(1) / 1024.0, sum(2) / 1024.0)
    }
}

impl Shared {
    /// Takes one rate sample (worker 0 calls this every 100 ms).
    pub fn sample_rates(&self) {
        let counters = [
            sum(&self.stats, |s| &s.commands),
            sum(&self.stats, |s| &s.net_input),
            sum(&self.stats, |s| &s.net_output),
        ];
        self.rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .sample(Instant::now(), counters);
    }
}

/// Hex digits from the OS's randomness (run_id, replication ids).
pub fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n.div_ceil(2)];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.truncate(n);
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn rates_average_the_last_samples() {
        let mut r = Rates::default();
        let t0 = Instant::now();
        assert_eq!(r.mean(), (0.0, 0.0, 0.0));
        r.sample(t0, [0, 0, 0]);
        // 100 ops, 1024 bytes in, 2048 out per 100 ms.
        for i in 1..=20u64 {
            r.sample(
                t0 + Duration::from_millis(100 * i),
                [100 * i, 1024 * i, 2048 * i],
            );
        }
        let (ops, inkb, outkb) = r.mean();
        assert!((ops - 1000.0).abs() < 1e-6, "{ops}");
        assert!((inkb - 10.0).abs() < 1e-6, "{inkb}");
        assert!((outkb - 20.0).abs() < 1e-6, "{outkb}");
        assert_eq!(r.samples.len(), RATE_SAMPLES);
    }
}
