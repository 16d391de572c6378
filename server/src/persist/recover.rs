//! Start-up: read every shard's log (in parallel), cut torn tails and
//! incomplete multi-shard transactions, and replay each shard's records on
//! its own worker thread (in parallel) before the server accepts clients.
//!
//! The log directory is `<dir>/<appenddirname>`; it records the number of
//! shards that wrote it (`kv-log.meta`), because a key's shard depends on
//! it: a log written with another `threads` count is refused with the way
//! to move the data, never replayed into the wrong shards.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use engine::command::{self, Args, Exec};
use engine::journal::recovery::{
    self, read_shard_log_with, resolve_transactions, RecoveryOptions, ShardLog, Step,
};
use engine::Shard;

use crate::config::Config;
use crate::log;
use crate::snapshot::{LogLine, Manifest};

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
    /// Where the writer continues: the last segment holding records, just
    /// past its last one (after any cut). `None`: start a new segment.
    pub resume: Option<Resume>,
}

/// The segment a restarted writer continues ([`engine::journal::writer::Journal::resume`]).
pub struct Resume {
    pub first_lsn: u64,
    /// The segment file's size.
    pub size: u64,
    /// Just past its last valid record.
    pub pos: u64,
    /// The bytes of the block holding `pos`, before it.
    pub tail: Vec<u8>,
}

/// Where the writer of `log` continues, given the cut recovery made
/// (`cut`: segment index and offset; none: just past the last record).
/// Segments after it that hold no record (preallocated ahead) are removed
/// first, by the same [`ShardLog::truncate_at`] that cuts torn tails and
/// transactions: the writer's next segment must not find an empty one
/// named before its first lsn.
fn resume_point(
    log: &ShardLog,
    cut: Option<(usize, u64)>,
) -> Result<Option<Resume>, recovery::RecoveryError> {
    let last = cut.or_else(|| {
        let i = log.segments.iter().rposition(|s| s.valid_end > 0)?;
        Some((i, log.segments.get(i)?.valid_end))
    });
    let Some((i, pos, seg)) = last
        .filter(|&(_, pos)| pos > 0)
        .and_then(|(i, pos)| Some((i, pos, log.segments.get(i)?)))
    else {
        return Ok(None);
    };
    if log.segments.iter().skip(i + 1).any(|s| s.path.exists()) {
        log.truncate_at(i, pos)?;
    }
    let block_size = engine::journal::record::BLOCK_SIZE as u64;
    let block = usize::try_from(pos - pos % block_size).unwrap_or(usize::MAX);
    let tail = seg
        .bytes
        .get(block..usize::try_from(pos).unwrap_or(usize::MAX))
        .map(<[u8]>::to_vec);
    Ok(tail.map(|tail| Resume {
        first_lsn: seg.first_lsn,
        size: seg.bytes.len() as u64,
        pos,
        tail,
    }))
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

/// What `kv-log.meta` says: the shards that write the log and the log's
/// identity (0: written before logs had one, M1.3/M1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Meta {
    pub shards: usize,
    pub id: u64,
}

pub fn write_meta(dir: &Path, meta: Meta) -> Result<(), String> {
    let path = dir.join(META_FILE);
    let text = format!(
        "# kv-server append-only log: written by this many shards (threads), and its id\n\
         # (the snapshot manifest names the log it continues by this id).\n\
         shards {}\nid {}\n",
        meta.shards, meta.id
    );
    crate::config::write_atomically(&path, text.as_bytes())
        .map_err(|e| format!("Can't write {}: {e}", path.display()))
}

pub fn read_meta(dir: &Path) -> Result<Option<Meta>, String> {
    let path = dir.join(META_FILE);
    let bytes = match fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("Can't read {}: {e}", path.display())),
    };
    let damaged = |why: &str| {
        format!(
            "{} is damaged: {why}. It names how many shards wrote the log beside it and \
             the log's id; restore it from a backup, or rewrite it by hand as two lines, \
             'shards N' and 'id N' (N shards: the number of shard-<i> directories; the id: \
             the one on the 'log id' line of the snapshot manifest, if it has one)",
            path.display()
        )
    };
    let text = String::from_utf8(bytes).map_err(|_| damaged("it is not text"))?;
    // Every line is a comment, `shards N` or `id N` (no id: written before
    // logs had one); anything else is damage, not something to skip.
    let (mut shards, mut id) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (slot, n) = match line.split_once(' ') {
            Some(("shards", n)) => (&mut shards, n),
            Some(("id", n)) => (&mut id, n),
            _ => return Err(damaged(&format!("unexpected line '{line}'"))),
        };
        let n = n
            .trim()
            .parse::<u64>()
            .map_err(|_| damaged(&format!("bad number in '{line}'")))?;
        if slot.replace(n).is_some() {
            return Err(damaged(&format!("'{line}' appears twice")));
        }
    }
    let shards = shards.ok_or_else(|| damaged("no 'shards N' line"))?;
    if shards == 0 {
        return Err(damaged("'shards 0'"));
    }
    Ok(Some(Meta {
        shards: usize::try_from(shards).map_err(|_| damaged("too many shards"))?,
        id: id.unwrap_or(0),
    }))
}

/// Whether a log directory holds any segment file.
pub fn has_segments(dir: &Path) -> bool {
    recovery::list_shard_dirs(dir).is_ok_and(|shards| {
        shards
            .iter()
            .any(|(_, d)| recovery::list_segments(d).is_ok_and(|s| !s.is_empty()))
    })
}

/// What start-up loads and where the log continues.
pub struct Start {
    /// The snapshot manifest, with the log line the server runs with (when
    /// `rewrite` is set it must be written before the server serves).
    pub manifest: Manifest,
    pub rewrite: bool,
    /// The snapshot chain to load first.
    pub snapshot: Option<u64>,
    /// The log records to replay after it, per shard, and where each
    /// shard's log continues (appendonly yes: `attach`).
    pub log: Option<Recovered>,
    pub attach: bool,
}

fn refuse_shards(dir: &Path, n: usize, shards: usize) -> String {
    format!(
        "The append-only log in {} was written by {n} shards, but this server runs \
         {shards} (threads {shards}). A key's shard depends on that number, so the log \
         can't be replayed as it is (a snapshot loads with any threads count, a log does \
         not). Start with 'threads {n}', then turn the log into a snapshot: \
         'CONFIG SET appendonly no' and 'SAVE'; the next start, with any threads count and \
         appendonly yes, loads that snapshot and starts a new log from it. Nothing was \
         loaded or changed.",
        dir.display()
    )
}

/// Decides what to load at start (M1.5): the newest consistent state, never
/// an empty one next to data, and never by replacing or deleting files
/// that hold data not loaded.
///
/// - The manifest names a log (`log id ...`) and the log directory holds
///   that log: the newest snapshot the log continues loads, then the log's
///   records after that snapshot's lsns.
/// - The manifest names a log that is not there: the snapshot loads with a
///   loud warning (its later changes are gone); another log in its place
///   stops the start.
/// - A log from before M1.5 (no id) and no log in the manifest: the log
///   holds everything from lsn 1, as then.
/// - A log with an id the manifest does not name was detached (appendonly
///   was turned off and a snapshot taken since): with appendonly yes it is
///   moved aside to `<appenddirname>.stale-<id>`, never loaded or deleted.
/// - Otherwise the newest snapshot loads (or a Redis AOF is imported), and
///   with appendonly yes a new log starts from it.
pub fn start(cfg: &Config, shards: usize) -> Result<Start, String> {
    let snap_dir = crate::snapshot::snapshot_dir(cfg);
    let mut manifest =
        crate::snapshot::read_manifest(&snap_dir, &cfg.dbfilename)?.unwrap_or_default();
    let dir = log_dir(cfg);
    let mut meta = read_meta(&dir)?;
    let segments = has_segments(&dir);
    let line = manifest.log.clone();
    let mut rewrite = false;
    if let Some(line) = &line {
        match meta {
            Some(m) if m.id == line.id => {
                if line.shards != shards || m.shards != shards {
                    return Err(refuse_shards(&dir, line.shards, shards));
                }
                return live(cfg, manifest, line, &dir);
            }
            Some(m) => {
                return Err(format!(
                    "The snapshot manifest {} names the append-only log with id {}, but {} \
                     holds the log with id {} (written by {} shards). Refusing to start: \
                     loading either would ignore the data of the other. Move the one you do \
                     not want out of '{}'.",
                    snap_dir
                        .join(format!("{}.manifest", cfg.dbfilename))
                        .display(),
                    line.id,
                    dir.display(),
                    m.id,
                    m.shards,
                    cfg.dir.display()
                ));
            }
            None if segments => {
                return Err(format!(
                    "The snapshot manifest names the append-only log with id {}, but {} holds \
                     log segments and no {META_FILE}. Refusing to start; restore {META_FILE} \
                     or move the log directory away.",
                    line.id,
                    dir.display()
                ));
            }
            None => {
                log::warning(&format!(
                    "!!! WARNING: the snapshot manifest names an append-only log (id {}) that \
                     is missing from {}. Loading the newest snapshot only: changes made after \
                     it are lost.",
                    line.id,
                    dir.display()
                ));
                manifest.log = None;
                rewrite = true;
            }
        }
    } else if segments && !cfg.appendonly {
        log::warning(&format!(
            "appendonly is no: the append-only log in {} is not loaded and not written",
            dir.display()
        ));
    } else if let Some(m) = meta.filter(|m| m.id != 0 && segments) {
        // A log the manifest does not name: detached.
        let aside = move_log_aside(cfg, m.id)?;
        log::warning(&format!(
            "The append-only log in {} (id {}) is not the one the snapshot manifest \
             names (it was detached by a snapshot taken with appendonly no, or its base \
             was never completed): moved to {}, not loaded. Remove it when you no longer \
             need it.",
            dir.display(),
            m.id,
            aside.display()
        ));
        meta = None;
    } else if segments {
        // A log written before logs had ids (M1.3/M1.4): everything from lsn 1.
        if let Some(m) = meta.filter(|m| m.shards != shards) {
            return Err(refuse_shards(&dir, m.shards, shards));
        }
        if let Some((i, _)) = recovery::list_shard_dirs(&dir)
            .map_err(|e| e.to_string())?
            .iter()
            .find(|(i, _)| *i >= shards)
        {
            return Err(format!(
                "The append-only log in {} has a directory for shard {i} but this server \
                     runs {shards} shards; refusing to start.",
                dir.display()
            ));
        }
        let rec = read_logs(cfg, &dir, &vec![0; shards])?;
        if rec.shards.iter().any(|s| !s.log.records.is_empty()) {
            if !manifest.snapshots.is_empty() {
                log::notice(
                    "Snapshots exist, but the append-only log predates the manifest's log \
                         line: the log (which holds everything) is loaded, not a snapshot",
                );
            }
            manifest.log = Some(new_log(cfg, &dir, &manifest, meta, 0, vec![0; shards])?);
            return Ok(Start {
                manifest,
                rewrite: true,
                snapshot: None,
                log: Some(rec),
                attach: true,
            });
        }
    }
    // No log to load: the newest snapshot, and a new log from it.
    let snapshot = crate::snapshot::choose_in(&snap_dir, &manifest, |_| true)?;
    if !cfg.appendonly {
        return Ok(Start {
            manifest,
            rewrite,
            snapshot,
            log: None,
            attach: false,
        });
    }
    let base = snapshot.and_then(|id| manifest.snapshots.iter().find(|s| s.id == id));
    let from: Vec<u64> = match base {
        Some(b) if b.shards == shards => b.files.iter().map(|f| f.2).collect(),
        _ => vec![0; shards],
    };
    if let Some(b) = base {
        log::notice(&format!(
            "No append-only log to load: loading snapshot {} and starting the log from it",
            b.id
        ));
    }
    fs::create_dir_all(&dir).map_err(|e| format!("Can't create {}: {e}", dir.display()))?;
    manifest.log = Some(new_log(
        cfg,
        &dir,
        &manifest,
        meta,
        snapshot.unwrap_or(0),
        from.clone(),
    )?);
    let rec = read_logs(cfg, &dir, &from)?;
    Ok(Start {
        manifest,
        rewrite: true,
        snapshot,
        log: Some(rec),
        attach: true,
    })
}

/// Creates a new log in `dir` (its `kv-log.meta` with a new id: the time,
/// past the old id) continuing snapshot `base` (0: empty) from the lsns
/// `from`; returns the manifest's line for it. Snapshots taken so far (any
/// id in the manifest or in a file name) were not taken with this log.
fn new_log(
    cfg: &Config,
    dir: &Path,
    m: &Manifest,
    old: Option<Meta>,
    base: u64,
    from: Vec<u64>,
) -> Result<LogLine, String> {
    let shards = from.len();
    let id = next_log_id(old);
    write_meta(dir, Meta { shards, id })?;
    let snap_dir = crate::snapshot::snapshot_dir(cfg);
    let after = m
        .snapshots
        .iter()
        .map(|s| s.id)
        .max()
        .unwrap_or(0)
        .max(crate::snapshot::highest_file_id(&snap_dir, &cfg.dbfilename));
    Ok(LogLine {
        id,
        shards,
        after,
        base,
        from,
    })
}

/// The id of a new log: the time, past the old log's id.
pub fn next_log_id(old: Option<Meta>) -> u64 {
    crate::worker::now_ms().max(old.map_or(0, |m| m.id.saturating_add(1)))
}

/// Moves the log directory, holding a log the snapshot manifest does not
/// name, to `<dir>/<appenddirname>.stale-<id>` (never loaded, never
/// deleted: it is the operator's to remove); returns where it went.
pub fn move_log_aside(cfg: &Config, id: u64) -> Result<PathBuf, String> {
    let dir = log_dir(cfg);
    let aside = cfg.dir.join(format!("{}.stale-{id}", cfg.appenddirname));
    fs::rename(&dir, &aside).map_err(|e| {
        format!(
            "Can't move the append-only log {} (not named by the snapshot manifest) aside \
             to {}: {e}",
            dir.display(),
            aside.display()
        )
    })?;
    Ok(aside)
}

/// The manifest names this log: load the newest snapshot it continues,
/// then its records after that snapshot.
fn live(cfg: &Config, manifest: Manifest, line: &LogLine, dir: &Path) -> Result<Start, String> {
    let snap_dir = crate::snapshot::snapshot_dir(cfg);
    let (chosen, after) = continued(&snap_dir, &manifest, line, dir)?;
    if !cfg.appendonly {
        log::notice(&format!(
            "appendonly is no, but the snapshot manifest names the append-only log in {}: \
             loading it after the snapshot (its records are newer); the next snapshot \
             replaces it",
            dir.display()
        ));
    }
    let rec = read_logs(cfg, dir, &after)?;
    Ok(Start {
        manifest,
        rewrite: false,
        snapshot: chosen,
        log: Some(rec),
        attach: cfg.appendonly,
    })
}

/// The snapshot the log `line` names is loaded on (the newest one in
/// `snap_dir` that the log continues and that verifies; None: the log
/// started on an empty keyspace) and each shard's lsn the log is read
/// after.
pub fn continued(
    snap_dir: &Path,
    manifest: &Manifest,
    line: &LogLine,
    dir: &Path,
) -> Result<(Option<u64>, Vec<u64>), String> {
    let chosen = match crate::snapshot::choose_in(snap_dir, manifest, |s| line.lsns_of(s).is_some())
    {
        Ok(chosen) => chosen,
        // The log was started on an empty keyspace and still holds every
        // record since: it alone is the whole dataset.
        Err(e) if line.base == 0 && log_reaches_back(dir, &line.from) => {
            log::warning(&format!(
                "!!! WARNING: {e} The append-only log in {} still holds every write since the \
                 keyspace was empty, so it is loaded alone instead: nothing is lost. The \
                 snapshot files are left as they are; the next snapshot is a full one.",
                dir.display()
            ));
            return Ok((None, line.from.clone()));
        }
        Err(e) if line.base == 0 => {
            return Err(format!(
                "{e} The append-only log continues those snapshots and no longer holds the \
                 writes before them (its first segments were dropped after a snapshot), so \
                 it can't rebuild the data alone."
            ))
        }
        Err(e) => {
            return Err(format!(
                "{e} The append-only log continues those snapshots (it was started on snapshot \
                 {}), so it can't rebuild the data alone.",
                line.base
            ))
        }
    };
    let after = match chosen.and_then(|id| manifest.snapshots.iter().find(|s| s.id == id)) {
        Some(s) => line.lsns_of(s).unwrap_or_default(),
        None if line.base == 0 => line.from.clone(),
        None => {
            return Err(format!(
                "The append-only log in {} continues snapshot {}, and the snapshot manifest \
                 holds none it can be replayed on.",
                dir.display(),
                line.base
            ))
        }
    };
    Ok((chosen, after))
}

/// Whether every shard's log under `dir` still starts at its first record
/// after `from` (its segment named `from + 1` or earlier is there, or it
/// has none).
fn log_reaches_back(dir: &Path, from: &[u64]) -> bool {
    from.iter().enumerate().all(|(i, &f)| {
        let d = engine::journal::JournalConfig::shard_dir(dir, i);
        recovery::list_segments(&d)
            .ok()
            // No segment: the shard never logged a write.
            .is_some_and(|segs| segs.first().is_none_or(|s| s.0 <= f.saturating_add(1)))
    })
}

/// Reads every shard's log (in parallel) after the lsns `after`, cuts torn
/// tails and incomplete multi-shard commands.
fn read_logs(cfg: &Config, dir: &Path, after: &[u64]) -> Result<Recovered, String> {
    read_logs_with(dir, after, cfg.aof_load_truncated, true)
}

/// [`read_logs`]; `mutate: false` (an offline export) changes no file:
/// torn tails and incomplete multi-shard commands are left out of the
/// replay but not cut from the files, and missing shard directories are
/// not created.
pub fn read_logs_with(
    dir: &Path,
    after: &[u64],
    aof_load_truncated: bool,
    mutate: bool,
) -> Result<Recovered, String> {
    let shards = after.len();
    let started = Instant::now();
    // Read every shard's log on its own thread.
    let dirs: Vec<PathBuf> = (0..shards)
        .map(|i| engine::journal::JournalConfig::shard_dir(dir, i))
        .collect();
    for d in dirs.iter().filter(|_| mutate) {
        fs::create_dir_all(d).map_err(|e| format!("Can't create {}: {e}", d.display()))?;
    }
    let results: Vec<Result<ShardLog, recovery::RecoveryError>> = std::thread::scope(|s| {
        let handles: Vec<_> = dirs
            .iter()
            .zip(after)
            .map(|(d, &after)| {
                let opts = RecoveryOptions {
                    aof_load_truncated,
                    // Strict: damage with valid records after it stops the
                    // start (docs/OPERATIONS.md); only `check-aof --fix`, an
                    // operator's decision, cuts an unfinished write.
                    max_write: 0,
                    after: Some(after),
                };
                s.spawn(move || read_shard_log_with(d, &opts))
            })
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
        if let Some(t) = log.torn_tail.as_ref().filter(|_| mutate) {
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
    // The segments were read through the page cache (the engine reads with
    // plain reads); drop them from it: a restart must not double a large
    // log in memory. A segment may hold records that a process killed
    // under `everysec` or `no` left in the page cache, not yet on the
    // device (the last one; earlier ones were synced at their roll-over):
    // they were acknowledged and are loaded now, so they are made durable
    // first, and a power cut after this start can't take them.
    for log in &logs {
        for seg in &log.segments {
            if let Ok(f) = fs::File::open(&seg.path) {
                if mutate {
                    if let Err(e) = f.sync_data() {
                        return Err(format!("Can't sync {}: {e}", seg.path.display()));
                    }
                }
                crate::sys::fadvise_dontneed(std::os::fd::AsRawFd::as_raw_fd(&f), 0, 0);
            }
        }
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
        let follows_log = match plan.cut.as_ref().filter(|_| mutate) {
            Some(cut) => {
                log.truncate_at(cut.segment, cut.offset)
                    .map_err(|e| format!("Can't cut the log: {e}"))?;
                cut.lsn
            }
            None => log.next_lsn(),
        };
        let next_lsn = follows_log.max(after.get(out.len()).map_or(1, |a| a + 1));
        // The writer continues the last segment only where its next record
        // follows that segment's last one. A snapshot can hold a record the
        // log never made durable (its barrier came after the append, the
        // kill before the write): then the log goes on after the snapshot's
        // lsn, in a new segment, as a segment may not have a gap.
        let resume = if mutate && next_lsn == follows_log {
            resume_point(&log, plan.cut.as_ref().map(|c| (c.segment, c.offset)))
                .map_err(|e| format!("Can't prepare the log to continue: {e}"))?
        } else {
            None
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
            resume,
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
    Ok(Recovered {
        log_dir: dir.to_path_buf(),
        shards: out,
        tx_base,
    })
}

/// The start-up error for a log that can't be loaded: what, where, and the
/// repair command.
fn refusal_text(e: &recovery::RecoveryError) -> String {
    if matches!(e, recovery::RecoveryError::Missing { .. }) {
        return format!("Can't load the append only file: {e}.");
    }
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
                    command::execute_shard(spec, f, &mut shard.ctx(db), args, &mut out);
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

/// Deletes the segments of each shard's log that hold only records the
/// kept snapshots of `m` have: a segment goes when the next one starts at
/// or before the oldest such snapshot's lsn + 1. Called only after the
/// manifest that makes them unnecessary is durable; the last segment of a
/// shard always stays (the writer's).
pub fn trim_log(dir: &Path, line: &LogLine, m: &Manifest) {
    let lsns: Vec<Vec<u64>> = m.snapshots.iter().filter_map(|s| line.lsns_of(s)).collect();
    for shard in 0..line.shards {
        let Some(keep) = lsns.iter().filter_map(|l| l.get(shard).copied()).min() else {
            continue;
        };
        let d = engine::journal::JournalConfig::shard_dir(dir, shard);
        let Ok(segs) = recovery::list_segments(&d) else {
            continue;
        };
        for w in segs.windows(2) {
            let (Some((_, path)), Some((next, _))) = (w.first(), w.get(1)) else {
                continue;
            };
            if *next > keep.saturating_add(1) {
                break;
            }
            if let Err(e) = fs::remove_file(path).or_else(|e| {
                // A trim that ran concurrently got there first.
                if e.kind() == std::io::ErrorKind::NotFound {
                    Ok(())
                } else {
                    Err(e)
                }
            }) {
                log::warning(&format!(
                    "Can't remove the log segment {}: {e}",
                    path.display()
                ));
            }
        }
    }
}

/// Removes a log that a snapshot taken with appendonly no has detached
/// (every record of it was loaded at start and is in that snapshot), if
/// the directory still holds that log (`id`).
pub fn remove_detached_log(dir: &Path, id: u64) {
    if !read_meta(dir).is_ok_and(|m| m.is_some_and(|m| m.id == id)) {
        return;
    }
    if let Ok(shards) = recovery::list_shard_dirs(dir) {
        for (_, d) in shards {
            for (_, path) in recovery::list_segments(&d).unwrap_or_default() {
                let _ = fs::remove_file(path);
            }
            let _ = fs::remove_file(engine::journal::io::spare_path(&d));
            let _ = fs::remove_dir(&d);
        }
    }
    let _ = fs::remove_file(dir.join(META_FILE));
    log::notice(&format!(
        "Removed the append-only log in {} (id {id}): the snapshot just saved holds all of it",
        dir.display()
    ));
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
