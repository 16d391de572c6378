//! Start-up: read every shard's log (in parallel), cut torn tails and
//! incomplete multi-shard transactions, and replay each shard's records on
//! its own worker thread (in parallel) before the server accepts clients.
//!
//! The log directory is `<dir>/<appenddirname>`; it records the number of
//! shards that wrote it (`kv-log.meta`), because a key's shard depends on
//! it: a log written with another `threads` count is refused with the way
//! to move the data, never replayed into the wrong shards.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use engine::command::{self, Args, Exec};
use engine::journal::recovery::{
    self, read_shard_log_with, resolve_transactions, RecoveryOptions, ShardLog, Step,
};
use engine::Shard;

use crate::config::Config;
use crate::log;

/// The file naming how many shards wrote a log directory.
pub const META_FILE: &str = "kv-log.meta";

/// What one shard replays and where its log continues.
pub struct ShardRecovery {
    pub log: ShardLog,
    pub steps: Vec<Step>,
    /// Lsn of the next record this shard appends.
    pub next_lsn: u64,
    /// Record bytes already in the log.
    pub existing: u64,
}

pub struct Recovered {
    pub log_dir: PathBuf,
    pub shards: Vec<ShardRecovery>,
    /// Largest transaction counter found (new ids continue after it).
    pub tx_base: u64,
}

pub fn log_dir(cfg: &Config) -> PathBuf {
    cfg.dir.join(&cfg.appenddirname)
}

fn write_meta(dir: &Path, shards: usize) -> Result<(), String> {
    let path = dir.join(META_FILE);
    let tmp = dir.join(format!("{META_FILE}.tmp"));
    let text = format!(
        "# kv-server append-only log: written by this many shards (threads).\nshards {shards}\n"
    );
    let write = || -> std::io::Result<()> {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &path)?;
        fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| format!("Can't write {}: {e}", path.display()))
}

fn read_meta(dir: &Path) -> Result<Option<usize>, String> {
    let path = dir.join(META_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("Can't read {}: {e}", path.display())),
    };
    text.lines()
        .filter_map(|l| l.strip_prefix("shards "))
        .find_map(|n| n.trim().parse::<usize>().ok())
        .map(Some)
        .ok_or_else(|| format!("{} is damaged: no 'shards N' line", path.display()))
}

/// Reads and resolves the logs. `Ok(None)` with `appendonly no`.
pub fn recover(cfg: &Config, shards: usize) -> Result<Option<Recovered>, String> {
    let dir = log_dir(cfg);
    if !cfg.appendonly {
        if dir.join(META_FILE).exists() {
            log::warning(&format!(
                "appendonly is no: the append-only log in {} is not loaded and not written",
                dir.display()
            ));
        }
        return Ok(None);
    }
    fs::create_dir_all(&dir).map_err(|e| format!("Can't create {}: {e}", dir.display()))?;
    let existing = recovery::list_shard_dirs(&dir).map_err(|e| e.to_string())?;
    match read_meta(&dir)? {
        Some(n) if n != shards => {
            return Err(format!(
                "The append-only log in {} was written by {n} shards, but this server runs \
                 {shards} (threads {shards}). A key's shard depends on that number, so the log \
                 can't be replayed as it is. Start with 'threads {n}', or move the data: \
                 'kv-server export-aof {} dump.aof', start on an empty directory and load \
                 dump.aof (e.g. redis-cli --pipe < dump.aof).",
                dir.display(),
                dir.display()
            ));
        }
        Some(_) => {}
        None => {
            if let Some((i, _)) = existing.iter().find(|(i, _)| *i >= shards) {
                return Err(format!(
                    "The append-only log in {} has a directory for shard {i} but this server \
                     runs {shards} shards; refusing to start.",
                    dir.display()
                ));
            }
            write_meta(&dir, shards)?;
        }
    }
    let opts = RecoveryOptions {
        aof_load_truncated: cfg.aof_load_truncated,
        max_write: engine::journal::writer::DEFAULT_MAX_FLUSH_BYTES + 4096,
    };
    let started = Instant::now();
    // Read every shard's log on its own thread.
    let dirs: Vec<PathBuf> = (0..shards)
        .map(|i| engine::journal::JournalConfig::shard_dir(&dir, i))
        .collect();
    for d in &dirs {
        fs::create_dir_all(d).map_err(|e| format!("Can't create {}: {e}", d.display()))?;
    }
    let results: Vec<Result<ShardLog, recovery::RecoveryError>> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .iter()
            .map(|d| s.spawn(move || read_shard_log_with(d, &opts)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join().unwrap_or_else(|_| {
                    Err(recovery::RecoveryError::Output(std::io::Error::other(
                        "log reader panicked",
                    )))
                })
            })
            .collect()
    });
    let mut logs = Vec::with_capacity(shards);
    for r in results {
        let log = r.map_err(|e| refusal_text(&e))?;
        if let Some(t) = &log.torn_tail {
            log::warning(&format!(
                "!!! Warning: short read while loading the AOF file {}!!! Cutting the torn \
                 tail: {t} (aof-load-truncated yes).",
                t.path.display()
            ));
            log.truncate_at(t.segment, t.offset)
                .map_err(|e| format!("Can't cut the torn tail: {e}"))?;
        }
        logs.push(log);
    }
    let resolved = resolve_transactions(&logs).map_err(|e| refusal_text(&e))?;
    for d in &resolved.dropped {
        log::warning(&format!(
            "Dropping multi-shard command (transaction {}) found in {} of {} shards' logs: it \
             was never acknowledged.",
            d.txid,
            d.found.len(),
            d.participants
        ));
    }
    let mut tx_base = 0u64;
    let mut out = Vec::with_capacity(shards);
    for (log, plan) in logs.into_iter().zip(resolved.shards) {
        for r in &log.records {
            tx_base = tx_base.max(r.txid & ((1 << 48) - 1));
        }
        let next_lsn = match &plan.cut {
            Some(cut) => {
                log.truncate_at(cut.segment, cut.offset)
                    .map_err(|e| format!("Can't cut the log: {e}"))?;
                cut.lsn
            }
            None => log.next_lsn(),
        };
        let existing = match &plan.cut {
            Some(cut) => log
                .segments
                .iter()
                .take(cut.segment)
                .map(|s| s.valid_end)
                .sum::<u64>()
                .saturating_add(cut.offset),
            None => log.bytes(),
        };
        out.push(ShardRecovery {
            log,
            steps: plan.steps,
            next_lsn,
            existing,
        });
    }
    let records: usize = out.iter().map(|s| s.steps.len()).sum();
    if records > 0 {
        log::notice(&format!(
            "Read the append-only log ({records} records in {} shards) in {:.3} seconds",
            shards,
            started.elapsed().as_secs_f64()
        ));
    }
    Ok(Some(Recovered {
        log_dir: dir,
        shards: out,
        tx_base,
    }))
}

/// The start-up error for a log that can't be loaded: what, where, and the
/// repair command.
fn refusal_text(e: &recovery::RecoveryError) -> String {
    format!(
        "Bad file format reading the append only file: {e}. Make a backup of your log \
         directory, then use '{}' to fix it (it cuts a torn tail only; corruption before the \
         end needs a manual decision).",
        recovery::REPAIR_COMMAND
    )
}

/// Replays one shard's records onto `shard` (logging is off). Returns the
/// number of commands applied.
pub fn replay(shard: &mut Shard, rec: &ShardRecovery) -> Result<u64, String> {
    let mut out = Vec::new();
    let mut flat = Vec::new();
    let mut ranges = Vec::new();
    let mut applied = 0u64;
    for step in &rec.steps {
        let Some(r) = rec.log.records.get(step.record()) else {
            continue;
        };
        let at = || {
            format!(
                "{} at offset {} (record lsn {})",
                rec.log.segment_path(r).display(),
                r.offset,
                r.lsn
            )
        };
        let cmds = rec.log.commands(r).map_err(|e| refusal_text(&e))?;
        let mut db = 0usize;
        for args in cmds {
            let Some(name) = args.first() else { continue };
            if name.eq_ignore_ascii_case(b"select") {
                db = args
                    .get(1)
                    .and_then(|a| std::str::from_utf8(a).ok())
                    .and_then(|a| a.parse::<usize>().ok())
                    .filter(|&d| d < shard.databases())
                    .ok_or_else(|| format!("Bad SELECT in the append only file: {}", at()))?;
                continue;
            }
            flat.clear();
            ranges.clear();
            for a in &args {
                let start = flat.len();
                flat.extend_from_slice(a);
                ranges.push(start..flat.len());
            }
            let args = Args::new(&flat, &ranges);
            let spec = command::lookup(name)
                .filter(|s| s.arity_ok(args.len()))
                .ok_or_else(|| {
                    format!(
                        "Unknown command '{}' (or wrong number of arguments) reading the append \
                         only file: {}",
                        String::from_utf8_lossy(name),
                        at()
                    )
                })?;
            match spec.exec {
                Exec::Shard(f) | Exec::Keys { shard: f, .. } => {
                    command::execute_shard(f, &mut shard.ctx(db), args, &mut out);
                }
                _ => replay_global(shard, spec.name, db, &args.to_vecs()).ok_or_else(|| {
                    format!("Command '{}' can't be replayed: {}", spec.name, at())
                })?,
            }
            out.clear();
            applied += 1;
        }
    }
    // Loading is not a change to save, and its lookups are not client hits.
    shard.stats = Default::default();
    Ok(applied)
}

/// This shard's part of a keyspace-wide command.
fn replay_global(shard: &mut Shard, name: &str, db: usize, args: &[Vec<u8>]) -> Option<()> {
    match name {
        "flushall" => {
            for d in 0..shard.databases() {
                shard.db_mut(d).clear();
            }
        }
        "flushdb" => shard.db_mut(db).clear(),
        "swapdb" => {
            let parse = |a: &Vec<u8>| std::str::from_utf8(a).ok()?.parse::<usize>().ok();
            let (a, b) = (parse(args.get(1)?)?, parse(args.get(2)?)?);
            if a >= shard.databases() || b >= shard.databases() {
                return None;
            }
            if a != b {
                shard.swap_dbs(a, b);
            }
        }
        _ => return None,
    }
    Some(())
}

/// Makes everything written to the log durable (SHUTDOWN and signals, for
/// `everysec` and `no`): fdatasync of each shard's newest segment.
pub fn sync_logs(dir: &Path) {
    let Ok(shards) = recovery::list_shard_dirs(dir) else {
        return;
    };
    for (_, d) in shards {
        if let Ok(segs) = recovery::list_segments(&d) {
            if let Some((_, path)) = segs.last() {
                if let Ok(f) = fs::File::open(path) {
                    let _ = f.sync_data();
                }
            }
        }
    }
}

/// A Redis AOF to import: where it was found, and its commands.
pub type RedisImport = (String, Vec<Vec<Vec<u8>>>);

/// Finds and reads a Redis AOF in `dir` (Redis 7's multi-part layout or a
/// single file, see `engine::journal::redis_aof`). `Ok(None)`: there is
/// none. Returns a description of the source and its commands.
pub fn read_redis_aof(cfg: &Config) -> Result<Option<RedisImport>, String> {
    use engine::journal::redis_aof;
    let Some(src) = redis_aof::locate(&cfg.dir, &cfg.appenddirname, &cfg.appendfilename) else {
        return Ok(None);
    };
    log::notice(&format!(
        "The append-only log is empty and a Redis AOF is present: importing {src}"
    ));
    let aof = redis_aof::read_commands(&src, cfg.aof_load_truncated).map_err(|e| {
        format!("Can't import the Redis AOF: {e}. The server did not start; nothing was changed.")
    })?;
    if let Some(t) = &aof.truncated {
        log::warning(&format!(
            "!!! Warning: the Redis AOF is truncated: {t}. Importing what precedes it \
             (aof-load-truncated yes)."
        ));
    }
    Ok(Some((src.to_string(), aof.commands)))
}
