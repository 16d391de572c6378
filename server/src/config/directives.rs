//! The directive table ([`DIRECTIVES`]): every directive's name, help
//! line, whether CONFIG SET may change it, and how its value is parsed,
//! shown and written back; the aliases; the lookup by name.

use super::*;

/// The values of the `enable-*` directives, as in Redis 7.
pub(super) const ENABLE: &[&str] = &["no", "yes", "local"];

/// Index of an `enable-*` value in [`ENABLE`] (anything else reads as no).
pub(super) fn enable_index(v: &str) -> usize {
    ENABLE.iter().position(|n| *n == v).unwrap_or(0)
}

/// Every directive the server understands, in the order CONFIG GET and
/// CONFIG REWRITE list them.
pub(super) static DIRECTIVES: &[Directive] = &[
    Directive {
        name: "bind",
        help: "addresses to listen on; a leading - marks one that may be missing",
        // Mutable in Redis 7 (it re-listens); immutable here until the
        // runtime can re-bind its per-thread listeners.
        mutable: false,
        kind: Kind::Bind,
    },
    Directive {
        name: "port",
        help: "TCP port (0: no TCP listener)",
        // Mutable in Redis 7; immutable here for the same reason as bind.
        mutable: false,
        kind: Kind::Int {
            min: 0,
            max: 65535,
            get: |c| i64::from(c.port),
            put: |c, v| c.port = v as u16,
        },
    },
    Directive {
        name: "threads",
        help: "worker threads, one shard each (0: one per core)",
        mutable: false,
        kind: Kind::Int {
            min: 0,
            max: MAX_THREADS,
            // The number in use once the server runs (0 resolved).
            get: |c| {
                if c.threads_in_use > 0 {
                    c.threads_in_use as i64
                } else {
                    c.threads as i64
                }
            },
            put: |c, v| c.threads = v as usize,
        },
    },
    Directive {
        name: "databases",
        help: "number of logical databases",
        mutable: false,
        kind: Kind::Int {
            min: 1,
            max: i32::MAX as i64,
            get: |c| i64::from(c.databases),
            put: |c, v| c.databases = v as u32,
        },
    },
    Directive {
        name: "requirepass",
        help: "password of the default user (empty: no AUTH)",
        mutable: true,
        kind: Kind::Str {
            get: |c| c.requirepass.clone(),
            put: |c, v| {
                c.requirepass = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "maxclients",
        help: "connected clients at most (lowered at start to fit the open-file limit)",
        mutable: true,
        kind: Kind::Int {
            min: 1,
            max: u32::MAX as i64,
            get: |c| i64::from(c.maxclients),
            put: |c, v| c.maxclients = v as u32,
        },
    },
    Directive {
        name: "proto-max-bulk-len",
        help: "largest bulk string a client may send",
        mutable: true,
        kind: Kind::Memory {
            min: 1024 * 1024,
            max: i64::MAX as u64,
            get: |c| c.proto_max_bulk_len,
            put: |c, v| c.proto_max_bulk_len = v,
        },
    },
    Directive {
        name: "client-query-buffer-limit",
        help: "largest unparsed input a client may queue",
        mutable: true,
        kind: Kind::Memory {
            min: 1024 * 1024,
            max: i64::MAX as u64,
            get: |c| c.client_query_buffer_limit,
            put: |c, v| c.client_query_buffer_limit = v,
        },
    },
    Directive {
        name: "client-output-buffer-limit",
        help: "per client class: hard limit, soft limit, soft seconds of pending replies",
        mutable: true,
        kind: Kind::ObufLimit,
    },
    Directive {
        name: "maxmemory-clients",
        help: "all clients' memory over this closes the biggest (0 = off)",
        mutable: true,
        kind: Kind::MaxmemoryClients,
    },
    Directive {
        name: "dir",
        help: "data directory (log, snapshots, lock file)",
        // Protected (`PROTECTED`), as in Redis 7.
        mutable: true,
        kind: Kind::Str {
            get: |c| c.dir.to_string_lossy().into_owned(),
            put: |c, v| {
                if v.is_empty() {
                    // What Redis reports, from chdir("").
                    return Err("No such file or directory");
                }
                c.dir = PathBuf::from(v);
                Ok(())
            },
        },
    },
    Directive {
        name: "dbfilename",
        help: "snapshot file name prefix inside snapshotdirname",
        // Protected (`PROTECTED`), as in Redis 7.
        mutable: true,
        kind: Kind::Str {
            get: |c| c.dbfilename.clone(),
            put: |c, v| {
                c.dbfilename = file_name(v, "dbfilename can't be a path, just a filename")?;
                Ok(())
            },
        },
    },
    Directive {
        name: "save",
        help: "snapshot after <seconds> if at least <changes> writes (\"\": never)",
        mutable: true,
        kind: Kind::Save,
    },
    Directive {
        name: "stop-writes-on-bgsave-error",
        help: "refuse writes while the last background snapshot failed",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.stop_writes_on_bgsave_error,
            put: |c, v| {
                c.stop_writes_on_bgsave_error = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "rdbcompression",
        help: "LZ4-compress snapshot pages",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.rdbcompression,
            put: |c, v| {
                c.rdbcompression = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "rdbchecksum",
        help: "shown only: snapshots always carry and verify checksums",
        // Immutable in Redis 7 too.
        mutable: false,
        kind: Kind::Bool {
            get: |c| c.rdbchecksum,
            put: |c, v| {
                c.rdbchecksum = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "rdb-del-sync-files",
        help: "shown only: there is no replication",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.rdb_del_sync_files,
            put: |c, v| {
                c.rdb_del_sync_files = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "snapshotdirname",
        help: "directory inside dir for snapshots and their manifest",
        mutable: false,
        kind: Kind::Str {
            get: |c| c.snapshotdirname.clone(),
            put: |c, v| {
                c.snapshotdirname =
                    file_name(v, "snapshotdirname can't be a path, just a dirname")?;
                Ok(())
            },
        },
    },
    Directive {
        name: "snapshot-full-ratio",
        help: "take a full snapshot once deltas pass this % of the base",
        mutable: true,
        kind: Kind::Int {
            min: 1,
            max: 10_000,
            get: |c| i64::from(c.snapshot_full_ratio),
            put: |c, v| c.snapshot_full_ratio = v as u32,
        },
    },
    Directive {
        name: "snapshot-pace",
        help: "a background snapshot rests this many times its work while clients are busy",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: 20,
            get: |c| i64::from(c.snapshot_pace),
            put: |c, v| c.snapshot_pace = v as u32,
        },
    },
    Directive {
        name: "latency-monitor-threshold",
        help: "record event-loop stalls of at least this many ms (0: off)",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            get: |c| c.latency_monitor_threshold as i64,
            put: |c, v| c.latency_monitor_threshold = v as u64,
        },
    },
    Directive {
        name: "disable-thp",
        help: "turn transparent huge pages off for the process",
        mutable: false,
        kind: Kind::Bool {
            get: |c| c.disable_thp,
            put: |c, v| {
                c.disable_thp = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "lazyfree-lazy-user-del",
        help: "DEL frees big values on the lazy-free thread, as UNLINK",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.lazyfree_lazy_user_del,
            put: |c, v| {
                c.lazyfree_lazy_user_del = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "lazyfree-lazy-server-del",
        help: "implicit deletes (SET over a value, RENAME over a key) free lazily",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.lazyfree_lazy_server_del,
            put: |c, v| {
                c.lazyfree_lazy_server_del = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "lazyfree-lazy-expire",
        help: "expired keys' big values are freed on the lazy-free thread",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.lazyfree_lazy_expire,
            put: |c, v| {
                c.lazyfree_lazy_expire = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "lazyfree-lazy-user-flush",
        help: "FLUSHALL and FLUSHDB without an argument are ASYNC",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.lazyfree_lazy_user_flush,
            put: |c, v| {
                c.lazyfree_lazy_user_flush = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "lazyfree-lazy-eviction",
        help: "shown only: there is no eviction yet",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.lazyfree_lazy_eviction,
            put: |c, v| {
                c.lazyfree_lazy_eviction = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "replica-lazy-flush",
        help: "shown only: there is no replication",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.replica_lazy_flush,
            put: |c, v| {
                c.replica_lazy_flush = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "auto-aof-rewrite-percentage",
        help: "rewrite the log when it grew by this % (0: never)",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
            get: |c| c.auto_aof_rewrite_percentage as i64,
            put: |c, v| c.auto_aof_rewrite_percentage = v as u64,
        },
    },
    Directive {
        name: "auto-aof-rewrite-min-size",
        help: "... and is at least this big",
        mutable: true,
        kind: Kind::Memory {
            min: 0,
            max: i64::MAX as u64,
            get: |c| c.auto_aof_rewrite_min_size,
            put: |c, v| c.auto_aof_rewrite_min_size = v,
        },
    },
    Directive {
        name: "hz",
        help: "background task frequency per second (1-500)",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
            get: |c| i64::from(c.hz),
            // Redis accepts any non-negative int and clamps it.
            put: |c, v| c.hz = (v as u32).clamp(HZ_MIN, HZ_MAX),
        },
    },
    Directive {
        name: "timeout",
        help: "close a client idle for this many seconds (0: never)",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
            get: |c| i64::from(c.timeout),
            put: |c, v| c.timeout = v as u32,
        },
    },
    Directive {
        name: "tcp-keepalive",
        help: "TCP keepalive interval in seconds (0: off)",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
            get: |c| i64::from(c.tcp_keepalive),
            put: |c, v| c.tcp_keepalive = v as u32,
        },
    },
    Directive {
        name: "tcp-backlog",
        help: "listen(2) backlog",
        mutable: false,
        kind: Kind::Int {
            min: 0,
            max: i32::MAX as i64,
            get: |c| i64::from(c.tcp_backlog),
            put: |c, v| c.tcp_backlog = v as u32,
        },
    },
    Directive {
        name: "loglevel",
        help: "log verbosity",
        mutable: true,
        kind: Kind::LogLevel,
    },
    Directive {
        name: "logfile",
        help: "log file (empty: stderr)",
        mutable: false,
        kind: Kind::Str {
            get: |c| c.logfile.clone(),
            put: |c, v| {
                c.logfile = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "supervised",
        help: "tell upstart (SIGSTOP) or systemd (READY=1 on NOTIFY_SOCKET) when ready",
        mutable: false,
        kind: Kind::Enum {
            names: SUPERVISED,
            get: |c| c.supervised,
            put: |c, i| c.supervised = i,
        },
    },
    Directive {
        name: "daemonize",
        help: "fork into the background at start (logs go to logfile, or nowhere)",
        mutable: false,
        kind: Kind::Bool {
            get: |c| c.daemonize,
            put: |c, v| {
                c.daemonize = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "server_cpulist",
        help: "CPUs to pin the worker threads to, e.g. 0-7:2 (empty: no pinning)",
        mutable: false,
        kind: Kind::Str {
            get: |c| c.server_cpulist.clone(),
            put: |c, v| {
                parse_cpulist(&v)?;
                c.server_cpulist = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "pidfile",
        help: "write the process id here (empty: no pid file)",
        mutable: false,
        kind: Kind::Str {
            get: |c| c.pidfile.clone(),
            put: |c, v| {
                c.pidfile = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "protected-mode",
        help: "shown only",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.protected_mode,
            put: |c, v| {
                c.protected_mode = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "appendonly",
        help: "keep the append-only log",
        // CONFIG SET turns the log on or off (`logswitch`).
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.appendonly,
            put: |c, v| {
                c.appendonly = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "appendfsync",
        help: "when the log is fsynced",
        mutable: true,
        kind: Kind::Enum {
            names: AppendFsync::NAMES,
            get: |c| c.appendfsync as usize,
            put: |c, i| c.appendfsync = AppendFsync::from_index(i),
        },
    },
    Directive {
        name: "appenddirname",
        help: "log directory inside dir",
        mutable: false,
        kind: Kind::Str {
            get: |c| c.appenddirname.clone(),
            put: |c, v| {
                c.appenddirname = file_name(v, "appenddirname can't be a path, just a dirname")?;
                Ok(())
            },
        },
    },
    Directive {
        name: "appendfilename",
        help: "base name of a Redis AOF to import when the log is empty",
        mutable: false,
        kind: Kind::Str {
            get: |c| c.appendfilename.clone(),
            put: |c, v| {
                c.appendfilename = file_name(v, "appendfilename can't be a path, just a filename")?;
                Ok(())
            },
        },
    },
    Directive {
        name: "aof-load-truncated",
        help: "cut a torn log tail at start instead of refusing to start",
        mutable: true,
        kind: Kind::Bool {
            get: |c| c.aof_load_truncated,
            put: |c, v| {
                c.aof_load_truncated = v;
                Ok(())
            },
        },
    },
    Directive {
        name: "aof-segment-size",
        help: "size of a preallocated log segment",
        mutable: false,
        kind: Kind::Memory {
            min: 64 * 1024,
            max: 1 << 40,
            get: |c| c.aof_segment_size,
            put: |c, v| c.aof_segment_size = v.div_ceil(4096) * 4096,
        },
    },
    Directive {
        name: "aof-io",
        help: "log I/O: io_uring with O_DIRECT, plain pwrite, or buffered",
        mutable: false,
        kind: Kind::Enum {
            names: AofIo::NAMES,
            get: |c| c.aof_io as usize,
            put: |c, i| c.aof_io = AofIo::from_index(i),
        },
    },
    Directive {
        name: "io-backend",
        help: "event loops on io_uring, or epoll (auto: epoll where io_uring is denied)",
        mutable: false,
        kind: Kind::Enum {
            names: IoBackend::NAMES,
            get: |c| c.io_backend as usize,
            put: |c, i| c.io_backend = IoBackend::from_index(i),
        },
    },
    Directive {
        name: "enable-debug-command",
        help: "allow DEBUG (local: from loopback clients only)",
        mutable: false,
        kind: Kind::Enum {
            names: ENABLE,
            get: |c| enable_index(&c.enable_debug_command),
            put: |c, i| c.enable_debug_command = ENABLE[i.min(ENABLE.len() - 1)].to_string(),
        },
    },
    Directive {
        name: "enable-protected-configs",
        help: "allow CONFIG SET of dir and dbfilename (local: loopback only)",
        mutable: false,
        kind: Kind::Enum {
            names: ENABLE,
            get: |c| enable_index(&c.enable_protected_configs),
            put: |c, i| c.enable_protected_configs = ENABLE[i.min(ENABLE.len() - 1)].to_string(),
        },
    },
    Directive {
        name: "hash-max-listpack-entries",
        help: "a hash with more fields than this becomes a hashtable",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            get: |c| c.hash_max_listpack_entries as i64,
            put: |c, v| c.hash_max_listpack_entries = v as u64,
        },
    },
    Directive {
        name: "hash-max-listpack-value",
        help: "a hash with a field or value longer than this becomes a hashtable",
        mutable: true,
        kind: Kind::Memory {
            min: 0,
            max: i64::MAX as u64,
            get: |c| c.hash_max_listpack_value,
            put: |c, v| c.hash_max_listpack_value = v,
        },
    },
    Directive {
        name: "set-max-intset-entries",
        help: "sets of at most this many integers are intsets",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            get: |c| c.set_max_intset_entries as i64,
            put: |c, v| c.set_max_intset_entries = v as u64,
        },
    },
    Directive {
        name: "set-max-listpack-entries",
        help: "other sets of at most this many members are listpacks",
        mutable: true,
        kind: Kind::Int {
            min: 0,
            max: i64::MAX,
            get: |c| c.set_max_listpack_entries as i64,
            put: |c, v| c.set_max_listpack_entries = v as u64,
        },
    },
    Directive {
        name: "set-max-listpack-value",
        help: "... whose members are at most this many bytes",
        mutable: true,
        kind: Kind::Memory {
            min: 0,
            max: i64::MAX as u64,
            get: |c| c.set_max_listpack_value,
            put: |c, v| c.set_max_listpack_value = v,
        },
    },
];

/// `supervised`'s values, as Redis 7 names them.
pub const SUPERVISED: &[&str] = &["no", "upstart", "systemd", "auto"];

/// Directives CONFIG SET refuses unless `enable-protected-configs` allows
/// it (Redis 7's PROTECTED_CONFIG ones that we have).
pub const PROTECTED: &[&str] = &["dir", "dbfilename"];

/// `v` if it names a file (or directory) without a path, else `err`.
/// Parses a CPU list in Redis's `server_cpulist` syntax: comma-separated
/// items, each `N`, `A-B` or `A-B:STEP`, in the order written.
pub fn parse_cpulist(v: &str) -> Result<Vec<usize>, &'static str> {
    const BAD: &str = "Invalid cpulist, expected e.g. 0-7:2 or 1,3,5-6";
    let mut cpus = Vec::new();
    if v.trim().is_empty() {
        return Ok(cpus);
    }
    let num = |s: &str| s.trim().parse::<usize>().map_err(|_| BAD);
    for item in v.split(',') {
        let (range, step) = match item.split_once(':') {
            Some((r, s)) => (r, num(s)?),
            None => (item, 1),
        };
        let (a, b) = match range.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(range)?, num(range)?),
        };
        if a > b || step == 0 || b >= 1 << 16 {
            return Err(BAD);
        }
        cpus.extend((a..=b).step_by(step));
    }
    Ok(cpus)
}

pub(super) fn file_name(v: String, err: &'static str) -> Result<String, &'static str> {
    if v.contains(['/', '\\']) {
        return Err(err);
    }
    Ok(v)
}

/// Other names of directives, as Redis 7's aliases: `(alias, directive)`.
/// Loading, CONFIG GET and CONFIG SET take either; CONFIG GET with a
/// pattern lists both, as Redis does; CONFIG REWRITE writes the directive.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("slave-lazy-flush", "replica-lazy-flush"),
    ("hash-max-ziplist-entries", "hash-max-listpack-entries"),
    ("hash-max-ziplist-value", "hash-max-listpack-value"),
];

/// The hash encoding thresholds of `cfg`, as the shards apply them.
pub fn hash_limits(cfg: &Config) -> engine::types::hash::Limits {
    engine::types::hash::Limits {
        max_entries: usize::try_from(cfg.hash_max_listpack_entries).unwrap_or(usize::MAX),
        max_value: usize::try_from(cfg.hash_max_listpack_value).unwrap_or(usize::MAX),
    }
}

/// How Redis names directive (or alias) `name` in errors: in lower case.
pub(super) fn canonical_name(name: &[u8]) -> &'static str {
    ALIASES
        .iter()
        .map(|(alias, _)| *alias)
        .chain(DIRECTIVES.iter().map(|d| d.name))
        .find(|n| n.as_bytes().eq_ignore_ascii_case(name))
        .unwrap_or("")
}

/// The directive called `name` (case-insensitive, or an alias), if any.
pub(super) fn lookup(name: &[u8]) -> Option<&'static Directive> {
    let name = ALIASES
        .iter()
        .find(|(alias, _)| alias.as_bytes().eq_ignore_ascii_case(name))
        .map_or(name, |(_, target)| target.as_bytes());
    DIRECTIVES
        .iter()
        .find(|d| d.name.as_bytes().eq_ignore_ascii_case(name))
}
