//! INFO: Redis's sections and field names, filled from the shared counters
//! and from every shard.

use std::fmt::Write;

use engine::command::Args;
use engine::Reply;

use crate::conn::Conn;
use crate::shared::sum;

const DEFAULT: &[&str] = &[
    "server",
    "clients",
    "memory",
    "persistence",
    "stats",
    "replication",
    "cpu",
    "cluster",
    "keyspace",
];

/// Per-shard figures INFO needs, gathered by one job per shard.
#[derive(Default)]
struct ShardFigures {
    hits: u64,
    misses: u64,
    expired: u64,
    dirty: u64,
    /// (keys, volatile) per database.
    keyspace: Vec<(usize, usize)>,
}

async fn gather(conn: &Conn) -> ShardFigures {
    let replies = conn
        .worker
        .ask_all(|| {
            Box::new(|sh| {
                let s = sh.stats;
                let mut items = vec![
                    Reply::Int(s.keyspace_hits as i64),
                    Reply::Int(s.keyspace_misses as i64),
                    Reply::Int(s.expired_keys as i64),
                    Reply::Int(s.dirty as i64),
                ];
                for (keys, vol) in sh.keyspace() {
                    items.push(Reply::Int(keys as i64));
                    items.push(Reply::Int(vol as i64));
                }
                Reply::Array(items)
            })
        })
        .await;
    let mut f = ShardFigures::default();
    for r in replies {
        let Reply::Array(items) = r else { continue };
        let v: Vec<u64> = items
            .iter()
            .map(|i| i.as_int().unwrap_or(0) as u64)
            .collect();
        if v.len() < 4 {
            continue;
        }
        f.hits += v[0];
        f.misses += v[1];
        f.expired += v[2];
        f.dirty += v[3];
        let dbs = (v.len() - 4) / 2;
        if f.keyspace.len() < dbs {
            f.keyspace.resize(dbs, (0, 0));
        }
        for db in 0..dbs {
            f.keyspace[db].0 += v[4 + 2 * db] as usize;
            f.keyspace[db].1 += v[5 + 2 * db] as usize;
        }
    }
    f
}

fn human(bytes: u64) -> String {
    let b = bytes as f64;
    if b < 1024.0 {
        format!("{bytes}B")
    } else if b < 1024.0 * 1024.0 {
        format!("{:.2}K", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2}M", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2}G", b / (1024.0 * 1024.0 * 1024.0))
    }
}

pub async fn render(conn: &Conn, args: Args<'_>) -> String {
    let mut wanted: Vec<String> = args
        .iter()
        .skip(1)
        .map(|a| String::from_utf8_lossy(a).to_ascii_lowercase())
        .collect();
    if wanted.is_empty()
        || wanted
            .iter()
            .any(|w| w == "default" || w == "all" || w == "everything")
    {
        wanted.extend(DEFAULT.iter().map(|s| s.to_string()));
    }
    let want = |s: &str| wanted.iter().any(|w| w == s);
    let needs_shards = want("stats") || want("keyspace") || want("persistence");
    let figures = if needs_shards {
        gather(conn).await
    } else {
        ShardFigures::default()
    };
    let shared = &conn.worker.shared;
    let cfg = shared.config();
    let now_ms = crate::worker::now_ms();
    let uptime = shared.started.elapsed().as_secs();
    let mut out = String::new();
    let section = |out: &mut String, name: &str| {
        if !out.is_empty() {
            out.push_str("\r\n");
        }
        let _ = write!(out, "# {name}\r\n");
    };

    if want("server") {
        section(&mut out, "Server");
        let exe = std::env::current_exe()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let config_file = cfg
            .config_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let _ = write!(
            out,
            "redis_version:{ver}\r\nredis_git_sha1:00000000\r\nredis_git_dirty:0\r\nredis_build_id:0\r\nredis_mode:standalone\r\nos:{os} {arch}\r\narch_bits:64\r\nmonotonic_clock:POSIX clock_gettime\r\nmultiplexing_api:{mux}\r\natomicvar_api:c11-builtin\r\ngcc_version:0.0.0\r\nprocess_id:{pid}\r\nprocess_supervised:no\r\nrun_id:{run_id}\r\ntcp_port:{port}\r\nserver_time_usec:{usec}\r\nuptime_in_seconds:{uptime}\r\nuptime_in_days:{days}\r\nhz:{hz}\r\nconfigured_hz:{hz}\r\nlru_clock:{lru}\r\nexecutable:{exe}\r\nconfig_file:{config_file}\r\nio_threads_active:0\r\nserver_name:kv-server\r\nserver_version:{ours}\r\nthreads:{threads}\r\n",
            ver = engine::REDIS_VERSION,
            os = std::env::consts::OS,
            arch = std::env::consts::ARCH,
            pid = std::process::id(),
            run_id = shared.run_id,
            port = cfg.port,
            usec = now_ms * 1000,
            days = uptime / 86_400,
            hz = shared.hz(),
            lru = (now_ms / 1000) & ((1 << 24) - 1),
            ours = env!("CARGO_PKG_VERSION"),
            threads = conn.worker.shard_count(),
            mux = crate::runtime::backend_name(),
        );
        let _ = write!(out, "{}", crate::runtime::info_fields());
    }
    if want("clients") {
        section(&mut out, "Clients");
        let _ = write!(
            out,
            "connected_clients:{}\r\ncluster_connections:0\r\nmaxclients:{}\r\nclient_recent_max_input_buffer:{}\r\nclient_recent_max_output_buffer:{}\r\nblocked_clients:0\r\ntracking_clients:0\r\nclients_in_timeout_table:0\r\n",
            shared.clients.len(),
            shared.maxclients(),
            shared
                .clients
                .all()
                .iter()
                .map(|c| c.query_buffer.load(std::sync::atomic::Ordering::Relaxed))
                .max()
                .unwrap_or(0),
            shared
                .clients
                .all()
                .iter()
                .map(|c| c.output_pending.load(std::sync::atomic::Ordering::Relaxed))
                .max()
                .unwrap_or(0),
        );
    }
    if want("memory") {
        section(&mut out, "Memory");
        let used = crate::alloc::used_memory();
        let rss = crate::sys::rss_bytes();
        let total = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("MemTotal:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
            })
            .map_or(0, |kb| kb * 1024);
        let frag = if used > 0 {
            rss as f64 / used as f64
        } else {
            0.0
        };
        let _ = write!(
            out,
            "used_memory:{used}\r\nused_memory_human:{uh}\r\nused_memory_rss:{rss}\r\nused_memory_rss_human:{rh}\r\ntotal_system_memory:{total}\r\ntotal_system_memory_human:{th}\r\nmaxmemory:0\r\nmaxmemory_human:0B\r\nmaxmemory_policy:noeviction\r\nmem_clients_slaves:0\r\nmem_clients_normal:{clients}\r\nmem_fragmentation_ratio:{frag:.2}\r\nmem_allocator:mimalloc\r\nlazyfree_pending_objects:{lazy_pending}\r\nlazyfreed_objects:{lazy_freed}\r\n",
            clients = shared
                .clients
                .all()
                .iter()
                .map(|c| c.total_memory())
                .sum::<usize>(),
            lazy_pending = crate::lazyfree::counters().0,
            lazy_freed = crate::lazyfree::counters().1,
            uh = human(used),
            rh = human(rss),
            th = human(total),
        );
    }
    if want("persistence") {
        section(&mut out, "Persistence");
        let snap = shared.snapshot_status();
        let _ = write!(
            out,
            "loading:0\r\nasync_loading:0\r\ncurrent_cow_peak:0\r\ncurrent_cow_size:0\r\ncurrent_cow_size_age:0\r\ncurrent_fork_perc:0.00\r\ncurrent_save_keys_processed:0\r\ncurrent_save_keys_total:0\r\nrdb_changes_since_last_save:{dirty}\r\nrdb_bgsave_in_progress:{running}\r\nrdb_last_save_time:{last}\r\nrdb_last_bgsave_status:{status}\r\nrdb_last_bgsave_time_sec:{took}\r\nrdb_current_bgsave_time_sec:{current}\r\nrdb_saves:{saves}\r\nrdb_last_cow_size:0\r\nrdb_last_snapshot_kind:{kind}\r\nrdb_last_snapshot_bytes:{bytes}\r\nrdb_last_snapshot_pages:{pages}\r\nrdb_last_snapshot_keys:{keys}\r\nrdb_last_snapshot_peak_pending_bytes:{peak}\r\nrdb_last_snapshot_rest_usec:{rest}\r\nrdb_snapshots_kept:{kept}\r\n",
            dirty = figures.dirty,
            running = u8::from(snap.running_since.is_some()),
            last = snap.last_save_unix,
            status = if snap.last_ok { "ok" } else { "err" },
            took = snap.last_time_sec,
            current = snap
                .running_since
                .map_or(-1, |t| t.elapsed().as_secs() as i64),
            saves = snap.saves,
            kind = snap.last_kind,
            bytes = snap.last_bytes,
            pages = snap.last_pages,
            keys = snap.last_keys,
            peak = snap.last_peak_pending,
            rest = snap.last_rest_usec,
            kept = snap.manifest.snapshots.len(),
        );
        drop(snap);
        aof_fields(&mut out, shared);
    }
    if want("stats") {
        section(&mut out, "Stats");
        let st = &shared.stats;
        let (ops, inkbps, outkbps) = shared
            .rates
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .mean();
        let _ = write!(
            out,
            "total_connections_received:{conns}\r\ntotal_commands_processed:{cmds}\r\ninstantaneous_ops_per_sec:{ops:.0}\r\ntotal_net_input_bytes:{inb}\r\ntotal_net_output_bytes:{outb}\r\ninstantaneous_input_kbps:{inkbps:.2}\r\ninstantaneous_output_kbps:{outkbps:.2}\r\nrejected_connections:{rej}\r\nexpired_keys:{exp}\r\nevicted_keys:0\r\nevicted_clients:{evc}\r\nkeyspace_hits:{hits}\r\nkeyspace_misses:{misses}\r\npubsub_channels:0\r\npubsub_patterns:0\r\nlatest_fork_usec:0\r\ntotal_forks:0\r\ntotal_error_replies:{errs}\r\n",
            conns = sum(st, |s| &s.connections),
            cmds = sum(st, |s| &s.commands),
            inb = sum(st, |s| &s.net_input),
            outb = sum(st, |s| &s.net_output),
            rej = sum(st, |s| &s.rejected),
            exp = figures.expired,
            evc = shared
                .evicted_clients
                .load(std::sync::atomic::Ordering::Relaxed),
            hits = figures.hits,
            misses = figures.misses,
            errs = sum(st, |s| &s.error_replies),
        );
    }
    if want("replication") {
        section(&mut out, "Replication");
        let _ = write!(
            out,
            "role:master\r\nconnected_slaves:0\r\nmaster_failover_state:no-failover\r\nmaster_replid:{id}\r\nmaster_replid2:0000000000000000000000000000000000000000\r\nmaster_repl_offset:0\r\nsecond_repl_offset:-1\r\nrepl_backlog_active:0\r\nrepl_backlog_size:1048576\r\nrepl_backlog_first_byte_offset:0\r\nrepl_backlog_histlen:0\r\n",
            id = shared.run_id,
        );
    }
    if want("cpu") {
        section(&mut out, "CPU");
        let (user, sys) = crate::sys::cpu_times();
        let _ = write!(
            out,
            "used_cpu_sys:{sys:.6}\r\nused_cpu_user:{user:.6}\r\nused_cpu_sys_children:0.000000\r\nused_cpu_user_children:0.000000\r\n",
        );
    }
    if want("cluster") {
        section(&mut out, "Cluster");
        out.push_str("cluster_enabled:0\r\n");
    }
    if want("keyspace") {
        section(&mut out, "Keyspace");
        for (db, (keys, vol)) in figures.keyspace.iter().enumerate() {
            if *keys > 0 {
                let _ = write!(out, "db{db}:keys={keys},expires={vol},avg_ttl=0\r\n");
            }
        }
    }
    out
}

pub use crate::aof::aof_current_size;

/// The aof_* fields of INFO persistence (Redis 7.0's names and order), then
/// ours: the I/O path, fsyncs done, records per group commit, fsync p99.
fn aof_fields(out: &mut String, shared: &crate::shared::Shared) {
    use std::sync::atomic::Ordering::Relaxed;
    let aof = &shared.aof;
    let enabled = aof.iter().any(|a| a.enabled.load(Relaxed));
    let failed = aof.iter().any(|a| a.failed.load(Relaxed));
    let (running, scheduled, last_time, current_time, last_ok, rewrites, base_size) = {
        let st = shared.snapshot_status();
        let current = match (st.rewrite_running, st.running_since) {
            (true, Some(t)) => t.elapsed().as_secs() as i64,
            _ => -1,
        };
        (
            st.rewrite_running,
            st.rewrite_scheduled,
            st.rewrite_last_time_sec,
            current,
            st.rewrite_last_ok,
            st.rewrites,
            st.aof_base_size,
        )
    };
    let _ = write!(
        out,
        "aof_enabled:{}\r\naof_rewrite_in_progress:{}\r\naof_rewrite_scheduled:{}\r\naof_last_rewrite_time_sec:{last_time}\r\naof_current_rewrite_time_sec:{current_time}\r\naof_last_bgrewrite_status:{}\r\naof_rewrites:{rewrites}\r\naof_last_write_status:{}\r\naof_last_cow_size:0\r\nmodule_fork_in_progress:0\r\nmodule_fork_last_cow_size:0\r\n",
        // As Redis's (aof_state != AOF_OFF): on while the rewrite that
        // turns the log on runs.
        u8::from(enabled || shared.config().appendonly),
        u8::from(running),
        u8::from(scheduled),
        if last_ok { "ok" } else { "err" },
        if failed { "err" } else { "ok" },
    );
    if !enabled {
        return;
    }
    let total = |f: fn(&crate::aof::AofStats) -> &std::sync::atomic::AtomicU64| -> u64 {
        aof.iter().map(|a| f(a).load(Relaxed)).sum()
    };
    let commits = total(|a| &a.commits);
    let records = total(|a| &a.records);
    let pending_fsync = aof
        .iter()
        .filter(|a| a.fsync_in_progress.load(Relaxed))
        .count();
    let p99 = aof
        .iter()
        .map(|a| a.fsync_quantile(0.99))
        .max()
        .unwrap_or(0);
    let path = crate::aof::io_path(shared);
    let _ = write!(
        out,
        "aof_current_size:{}\r\naof_base_size:{}\r\naof_pending_rewrite:0\r\naof_buffer_length:{}\r\naof_pending_bio_fsync:{pending_fsync}\r\naof_delayed_fsync:{}\r\naof_appendfsync:{}\r\naof_io_path:{path}\r\naof_fsyncs:{}\r\naof_group_commits:{commits}\r\naof_inline_commits:{}\r\naof_held_batches:{}\r\naof_records:{records}\r\naof_records_per_commit:{:.2}\r\naof_fsync_p99_usec:{p99}\r\naof_bytes_written:{}\r\n",
        aof_current_size(shared),
        base_size,
        total(|a| &a.pending_bytes),
        total(|a| &a.delayed_fsync),
        shared.appendfsync().name(),
        total(|a| &a.fsyncs),
        total(|a| &a.inline_commits),
        total(|a| &a.held),
        if commits == 0 { 0.0 } else { records as f64 / commits as f64 },
        total(|a| &a.bytes_written),
    );
}
