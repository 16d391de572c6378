//! Redis 7.0 directives that do not apply here ([`FOREIGN`]): accepted
//! from a file with one warning each, never applied, except the values
//! that would be unsafe to ignore ([`refused`]).

/// Redis 7.0 directives that do not apply here, with why: a config file may
/// use them (Debian's stock redis.conf does), and loading accepts them with
/// any arguments and one warning per directive, never applying them. An
/// empty reason means no warning (Redis's own deprecated no-ops). The
/// values [`refused`] names stay fatal. Every name of redis-server 7.0.15's
/// `CONFIG GET *` that is not in [`DIRECTIVES`] is here, plus config.c's
/// non-table directives (`rename-command`, `user`, `loadmodule`,
/// `sentinel`) and its `deprecated_configs`.
pub(super) static FOREIGN: &[(&[&str], &str)] = &[
    (
        &[
            "replicaof",
            "slaveof",
            "masterauth",
            "masteruser",
            "replica-serve-stale-data",
            "slave-serve-stale-data",
            "replica-read-only",
            "slave-read-only",
            "repl-diskless-sync",
            "repl-diskless-sync-delay",
            "repl-diskless-sync-max-replicas",
            "repl-diskless-load",
            "repl-ping-replica-period",
            "repl-ping-slave-period",
            "repl-timeout",
            "repl-disable-tcp-nodelay",
            "repl-backlog-size",
            "repl-backlog-ttl",
            "replica-priority",
            "slave-priority",
            "replica-announced",
            "min-replicas-to-write",
            "min-slaves-to-write",
            "min-replicas-max-lag",
            "min-slaves-max-lag",
            "replica-announce-ip",
            "slave-announce-ip",
            "replica-announce-port",
            "slave-announce-port",
            "replica-ignore-maxmemory",
            "slave-ignore-maxmemory",
            "replica-ignore-disk-write-errors",
            "propagation-error-behavior",
        ],
        "no replication in kv-server",
    ),
    (
        &[
            "cluster-enabled",
            "cluster-config-file",
            "cluster-node-timeout",
            "cluster-port",
            "cluster-replica-validity-factor",
            "cluster-slave-validity-factor",
            "cluster-migration-barrier",
            "cluster-allow-replica-migration",
            "cluster-require-full-coverage",
            "cluster-replica-no-failover",
            "cluster-slave-no-failover",
            "cluster-allow-reads-when-down",
            "cluster-allow-pubsubshard-when-down",
            "cluster-link-sendbuf-limit",
            "cluster-announce-hostname",
            "cluster-preferred-endpoint-type",
            "cluster-announce-ip",
            "cluster-announce-port",
            "cluster-announce-tls-port",
            "cluster-announce-bus-port",
        ],
        "no cluster mode in kv-server",
    ),
    (
        &[
            "tls-port",
            "tls-cert-file",
            "tls-key-file",
            "tls-key-file-pass",
            "tls-client-cert-file",
            "tls-client-key-file",
            "tls-client-key-file-pass",
            "tls-dh-params-file",
            "tls-ca-cert-file",
            "tls-ca-cert-dir",
            "tls-auth-clients",
            "tls-replication",
            "tls-cluster",
            "tls-protocols",
            "tls-ciphers",
            "tls-ciphersuites",
            "tls-prefer-server-ciphers",
            "tls-session-caching",
            "tls-session-cache-size",
            "tls-session-cache-timeout",
        ],
        "no TLS in kv-server (plain TCP only)",
    ),
    (
        &["unixsocket", "unixsocketperm"],
        "no Unix socket listener in kv-server (TCP only)",
    ),
    (
        &["always-show-logo", "set-proc-title", "proc-title-template"],
        "kv-server has no ASCII logo and keeps its process title",
    ),
    (
        &["syslog-enabled", "syslog-ident", "syslog-facility"],
        "kv-server logs to logfile or stderr only",
    ),
    (
        &["crash-log-enabled", "crash-memcheck-enabled"],
        "a panic always logs a bug report and aborts",
    ),
    (
        &["io-threads", "io-threads-do-reads"],
        "every worker thread does its own I/O (see threads)",
    ),
    (
        &["aof_rewrite_cpulist", "bgsave_cpulist", "bio_cpulist"],
        "snapshots and log rewrites run on the worker threads (see server_cpulist)",
    ),
    (
        &[
            "maxmemory",
            "maxmemory-policy",
            "maxmemory-samples",
            "maxmemory-eviction-tenacity",
            "lfu-log-factor",
            "lfu-decay-time",
        ],
        "no memory limit or eviction in kv-server yet",
    ),
    (
        &["oom-score-adj", "oom-score-adj-values"],
        "kv-server does not change its OOM score",
    ),
    (
        &[
            "activedefrag",
            "active-defrag-ignore-bytes",
            "active-defrag-threshold-lower",
            "active-defrag-threshold-upper",
            "active-defrag-cycle-min",
            "active-defrag-cycle-max",
            "active-defrag-max-scan-fields",
            "jemalloc-bg-thread",
        ],
        "kv-server uses mimalloc, with no active defragmentation",
    ),
    (
        &[
            "list-max-listpack-size",
            "list-max-ziplist-size",
            "list-compress-depth",
            "zset-max-listpack-entries",
            "zset-max-listpack-value",
            "zset-max-ziplist-entries",
            "zset-max-ziplist-value",
            "hll-sparse-max-bytes",
            "stream-node-max-bytes",
            "stream-node-max-entries",
            "activerehashing",
        ],
        "kv-server's keyspace has its own encodings",
    ),
    (
        &["active-expire-effort", "dynamic-hz"],
        "kv-server's expire cycle is its own (see hz)",
    ),
    (
        &[
            "aof-use-rdb-preamble",
            "aof-timestamp-enabled",
            "aof-disable-auto-gc",
            "aof-rewrite-incremental-fsync",
            "rdb-save-incremental-fsync",
            "no-appendfsync-on-rewrite",
        ],
        "kv-server's log and snapshots have their own format and write path (no fork)",
    ),
    (
        &["lua-time-limit", "busy-reply-threshold"],
        "no scripting in kv-server",
    ),
    (&["enable-module-command"], "no modules in kv-server"),
    (
        &["notify-keyspace-events"],
        "no keyspace notifications in kv-server yet",
    ),
    (
        &["slowlog-log-slower-than", "slowlog-max-len"],
        "no SLOWLOG in kv-server yet (see latency-monitor-threshold)",
    ),
    (
        &["latency-tracking", "latency-tracking-info-percentiles"],
        "no per-command latency tracking in kv-server yet",
    ),
    (
        &["tracking-table-max-keys"],
        "no client-side caching (CLIENT TRACKING) in kv-server",
    ),
    (
        &["acllog-max-len", "acl-pubsub-default", "aclfile"],
        "no ACL users in kv-server (requirepass only)",
    ),
    (&["sanitize-dump-payload"], "no DUMP/RESTORE in kv-server"),
    (
        &[
            "shutdown-timeout",
            "shutdown-on-sigint",
            "shutdown-on-sigterm",
        ],
        "SIGTERM/SIGINT always shut down in order (final snapshot when save rules are set)",
    ),
    (
        &["ignore-warnings", "socket-mark-id", "bind-source-addr"],
        "not applicable to kv-server",
    ),
    (
        &["rename-command", "user", "loadmodule", "sentinel"],
        "always refused: no command renaming, ACL users, modules or sentinel",
    ),
    // Redis 7.0 ignores these silently (config.c `deprecated_configs`).
    (
        &[
            "list-max-ziplist-entries",
            "list-max-ziplist-value",
            "lua-replicate-commands",
        ],
        "",
    ),
];

/// Why `name` is not applied here, if it is a Redis directive of [`FOREIGN`].
pub(super) fn foreign(name: &[u8]) -> Option<&'static str> {
    FOREIGN
        .iter()
        .find(|(names, _)| {
            names
                .iter()
                .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
        })
        .map(|(_, why)| *why)
}

/// The ignored directives whose values would make ignoring them unsafe
/// (a replica that would serve as an empty master, a command meant to be
/// renamed away, users and modules, a TLS or cluster setup): those stay
/// fatal, with the reason.
pub(super) fn refused(name: &[u8], values: &[Vec<u8>]) -> Option<&'static str> {
    let name = String::from_utf8_lossy(name).to_ascii_lowercase();
    let is = |v: &[&str]| {
        values.len() == v.len()
            && values
                .iter()
                .zip(v)
                .all(|(a, b)| a.eq_ignore_ascii_case(b.as_bytes()))
    };
    let empty = values.iter().all(|v| v.is_empty());
    match name.as_str() {
        "replicaof" | "slaveof" if !is(&["no", "one"]) => {
            Some("kv-server has no replication: it cannot start as a replica")
        }
        "cluster-enabled" if !is(&["no"]) => Some("kv-server has no cluster mode"),
        "tls-port" if !is(&["0"]) => Some("kv-server has no TLS listener"),
        "aclfile" if !empty => Some("kv-server has no ACL users (use requirepass)"),
        "user" => Some("kv-server has no ACL users (use requirepass)"),
        "rename-command" => Some("kv-server cannot rename or remove commands"),
        "loadmodule" => Some("kv-server cannot load Redis modules"),
        "sentinel" => Some("kv-server has no sentinel mode"),
        _ => None,
    }
}
