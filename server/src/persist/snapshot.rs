//! Snapshots on the server (M1.4): SAVE, BGSAVE and the `save` rules; the
//! barrier across shards; each shard's background writer; the manifest that
//! makes a snapshot visible; loading the newest chain at start.
//!
//! A snapshot runs as follows (the coordinator is a task on the thread
//! that asked for it):
//! 1. Barrier (`tx::barrier`): shard by shard in ascending order, as
//!    locks are taken, each starts capturing its pages as they are now
//!    (`Shard::begin_snapshot`) and reports its epoch, last log sequence
//!    number and change counter. Then the locks are released: clients wait
//!    only for this step, which touches no data.
//! 2. Each shard's writer task (`writer_loop`) writes its file,
//!    `<name>.tmp`, with 4 KiB-aligned O_DIRECT writes on its own ring, a
//!    slice of pages at a time between client requests; a write to a page
//!    it has not written yet writes that page first. Then it fdatasyncs the
//!    file and renames it to its final name.
//! 3. When every shard is done, the coordinator syncs the directory,
//!    writes the manifest naming the new snapshot (and the older ones it
//!    keeps) to `<manifest>.tmp`, syncs it, renames it over the manifest and
//!    syncs the directory again. Only then is the snapshot visible, and only
//!    then are files no longer named by the manifest deleted.
//!
//! A crash at any point before the manifest's rename leaves the previous
//! manifest and every file it names untouched. `docs/FORMATS.md` has the
//! layouts.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use engine::journal::io::{AlignedBuf, StdLogIo};
use engine::snapshot::format::{self, FileHeader, Kind, Tally, BLOCK};
use engine::snapshot::kept;
pub use engine::snapshot::manifest::{
    self, file_name, manifest_path, LogLine, Manifest, SnapshotMeta,
};
use engine::snapshot::reader;
use engine::{Reply, Shard};
use tokio::sync::oneshot;

use crate::log;
use crate::runtime::RingFile;
use crate::shared::Shared;
use crate::worker::{now_ms, Msg, Worker};

mod memory;
mod writer;

use memory::*;
pub use writer::*;

/// The snapshot directory inside `dir`.
pub fn snapshot_dir(cfg: &crate::config::Config) -> PathBuf {
    cfg.dir.join(&cfg.snapshotdirname)
}

/// [`manifest::read_manifest`] on the server's I/O.
pub fn read_manifest(dir: &Path, stem: &str) -> Result<Option<Manifest>, String> {
    manifest::read_manifest(&mut read_io(), dir, stem)
}

pub use crate::persist_state::Status;

/// Whether a snapshot gives way to busy clients ([`Pacer`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// BGSAVE, the save rules, log rewrites: rests between slices while
    /// clients send commands (`snapshot-pace`).
    Background,
    /// SAVE and the snapshot at shutdown: someone waits for it to end, so
    /// it never rests.
    Now,
}

/// Why a snapshot could not start.
#[derive(Debug)]
pub enum StartError {
    /// One is running already.
    Busy,
}

/// Claims the right to take a snapshot (one at a time).
pub fn claim(shared: &Shared) -> Result<Instant, StartError> {
    let mut st = shared.snapshot_status();
    if st.running_since.is_some() {
        return Err(StartError::Busy);
    }
    let now = Instant::now();
    st.running_since = Some(now);
    Ok(now)
}

/// Takes a snapshot of every shard and makes it visible; returns when it
/// is durable (or failed). `force_full`: take a full one even if a delta
/// would do.
pub async fn save(
    worker: &Rc<Worker>,
    force_full: bool,
    speed: Speed,
) -> Result<Result<Tally, String>, StartError> {
    let started = claim(&worker.shared)?;
    Ok(save_claimed(worker, started, force_full, speed).await)
}

/// [`save`] after a successful [`claim`].
pub async fn save_claimed(
    worker: &Rc<Worker>,
    started: Instant,
    force_full: bool,
    speed: Speed,
) -> Result<Tally, String> {
    let shared = worker.shared.clone();
    let (full, id, parent, base) = {
        let mut st = shared.snapshot_status();
        // A log rewrite (`rewrite_claimed`) counts as a rewrite only: its
        // outcome is `aof_last_bgrewrite_status`, never the save status
        // and MISCONF (Redis's rdb and aof statuses are apart too).
        if st.rewrite_running {
            st.rewrite_last_attempt = Some(started);
        } else {
            st.last_attempt = Some(started);
        }
        let cfg = shared.config();
        let newest = st.manifest.snapshots.first();
        // Ids continue after every snapshot file in the directory, named
        // by the manifest or not, so that no file is ever overwritten.
        let id = newest
            .map_or(0, |m| m.id)
            .max(highest_file_id(&snapshot_dir(&cfg), &cfg.dbfilename))
            + 1;
        let chain_bytes: Option<(u64, u64, u64)> = newest.and_then(|m| {
            let chain = st.manifest.chain(m.id).ok()?;
            let base = chain.first()?;
            let deltas: u64 = chain.iter().skip(1).map(|c| c.bytes).sum();
            Some((base.id, base.bytes, deltas))
        });
        let too_big = |(_, base, deltas): (u64, u64, u64)| {
            deltas.saturating_mul(100) > base.saturating_mul(cfg.snapshot_full_ratio as u64)
        };
        let full = force_full
            || !st.delta_ok
            || newest.is_none_or(|m| m.shards != worker.shard_count())
            || chain_bytes.is_none_or(too_big);
        let parent = if full { 0 } else { newest.map_or(0, |m| m.id) };
        let base = if full {
            id
        } else {
            chain_bytes.map_or(id, |c| c.0)
        };
        (full, id, parent, base)
    };
    let r = run(worker, &shared, full, id, parent, base, speed).await;
    let elapsed = started.elapsed();
    let mut st = shared.snapshot_status();
    st.running_since = None;
    st.last_time_sec = elapsed.as_secs() as i64;
    let rewrite = st.rewrite_running;
    match &r {
        Ok((meta, tally, costs)) => {
            if !rewrite {
                st.last_ok = true;
                shared.bgsave_failed.store(false, Ordering::Relaxed);
            }
            st.last_save_unix = meta.created_ms / 1000;
            st.saves += 1;
            st.last_kind = meta.kind.name();
            st.last_bytes = meta.bytes;
            st.last_pages = tally.pages;
            st.last_keys = tally.keys;
            st.last_peak_pending = costs.peak_pending;
            st.last_rest_usec = costs.rested.as_micros() as u64;
            st.delta_ok = true;
            log::notice(&format!(
                "DB saved on disk: {} snapshot {}, {} keys, {} pages, {} bytes in {:.3} seconds",
                meta.kind.name(),
                meta.id,
                tally.keys,
                tally.pages,
                meta.bytes,
                elapsed.as_secs_f64()
            ));
        }
        // A failed rewrite is logged once, by `rewrite_claimed`.
        Err(_) if rewrite => {}
        Err(e) => {
            // Logged before the status changes (under its lock): whoever
            // sees the failure in INFO finds it in the log.
            log::warning(&format!("Background saving error: {e}"));
            st.last_ok = false;
            shared.bgsave_failed.store(true, Ordering::Relaxed);
        }
    }
    r.map(|(_, t, _)| t)
}

/// A log rewrite (BGREWRITEAOF, `auto-aof-rewrite-*`) after a successful
/// [`claim`]: a snapshot, after which the log restarts from it (segments it
/// covers are deleted once the manifest naming it is durable; see
/// `write_all`). Nothing is buffered meanwhile: writes go on into the log as
/// usual, and the log after the snapshot's lsns is what stays.
pub async fn rewrite_claimed(worker: &Rc<Worker>, started: Instant) -> Result<Tally, String> {
    worker.shared.snapshot_status().rewrite_running = true;
    let mut r = save_claimed(worker, started, false, Speed::Background).await;
    // Turning the log on: if that snapshot only detached an old log
    // (`logswitch`, step 1), the next one is the new log's base.
    if r.is_ok() && crate::logswitch::pending(&worker.shared) {
        if let Ok(again) = claim(&worker.shared) {
            r = save_claimed(worker, again, false, Speed::Background).await;
        }
    }
    let mut st = worker.shared.snapshot_status();
    st.rewrite_running = false;
    st.rewrite_last_time_sec = started.elapsed().as_secs() as i64;
    match &r {
        Ok(_) => {
            st.rewrites += 1;
            log::notice("Background AOF rewrite finished successfully");
        }
        // One line per failure (a full disk fails every retry).
        Err(e) => log::warning(&format!("Background AOF rewrite failed: {e}")),
    }
    st.rewrite_last_ok = r.is_ok();
    r
}

/// [`manifest::highest_file_id`] on the server's I/O.
pub fn highest_file_id(dir: &Path, stem: &str) -> u64 {
    manifest::highest_file_id(&mut read_io(), dir, stem)
}

async fn run(
    worker: &Rc<Worker>,
    shared: &Shared,
    full: bool,
    id: u64,
    parent: u64,
    base: u64,
    speed: Speed,
) -> Result<(SnapshotMeta, Tally, Costs), String> {
    let (dir, stem, compress, databases) = {
        let c = shared.config();
        (
            snapshot_dir(&c),
            c.dbfilename.clone(),
            c.rdbcompression,
            c.databases as usize,
        )
    };
    std::fs::create_dir_all(&dir)
        .map_err(|e| format!("Can't create the snapshot directory {}: {e}", dir.display()))?;
    let shards = worker.shard_count();
    let kind = if full { Kind::Full } else { Kind::Delta };
    fill_pools(worker, speed == Speed::Background).await;
    // 1. The barrier (where the log may also be turned on: see
    // `logswitch`). The log is switched on or off only under `log_switch`,
    // so every shard is seen with the log on or every shard with it off,
    // and `log_id` is the id of the log they write.
    let switch = worker.shared.log_switch.lock().await;
    let attach = if crate::logswitch::wanted(worker) {
        Some(crate::logswitch::prepare(worker).await?)
    } else {
        None
    };
    let stats = worker.shared.clone();
    let starts = crate::tx::barrier(worker, move |_| {
        let stats = stats.clone();
        Box::new(move |sh: &mut Shard| {
            if attach.is_some() {
                sh.log.attach_standby();
            }
            let start = sh.begin_snapshot(full, compress);
            let log_pos = stats
                .aof
                .get(sh.id())
                .map_or(0, |a| a.current_size.load(Ordering::Relaxed));
            Reply::Array(vec![
                Reply::Int(start.epoch as i64),
                Reply::Int(sh.log.last_lsn() as i64),
                Reply::Int(sh.stats.dirty as i64),
                Reply::Int(i64::from(start.since.is_none())),
                Reply::Int(i64::from(sh.log.enabled())),
                Reply::Int(log_pos as i64),
            ])
        })
    })
    .await;
    let log_id = {
        let mut st = worker.shared.snapshot_status();
        if let Some(log) = attach {
            st.log_id = Some(log);
            log::notice(&format!(
                "Append only file turned on (log id {log}): snapshot {id} is its base"
            ));
        }
        st.log_id
    };
    drop(switch);
    let created_ms = now_ms();
    let mut barrier = Vec::with_capacity(shards);
    for r in &starts {
        if let Reply::Array(v) = r {
            let n: Vec<u64> = v
                .iter()
                .map(|x| if let Reply::Int(i) = x { *i as u64 } else { 0 })
                .collect();
            // A shard that could not build a delta (it never took a
            // snapshot) makes the coordinator's choice wrong: refuse.
            if let [epoch, lsn, dirty, is_full, logging, log_pos] = n[..] {
                if (is_full == 1) == full {
                    barrier.push(Point {
                        epoch,
                        lsn,
                        dirty,
                        logging: logging == 1,
                        log_pos,
                    });
                }
            }
        }
    }
    let result = if barrier.len() != shards {
        Err("the snapshot barrier failed on a shard".to_string())
    } else {
        write_all(
            worker, &dir, &stem, kind, id, base, parent, databases, created_ms, &barrier, log_id,
            speed,
        )
        .await
    };
    let ok = result.is_ok();
    let dirty: Vec<u64> = barrier.iter().map(|b| b.dirty).collect();
    worker
        .ask_all(move || {
            let dirty = dirty.clone();
            Box::new(move |sh: &mut Shard| {
                sh.end_snapshot(ok);
                if ok {
                    let before = dirty.get(sh.id()).copied().unwrap_or(0);
                    sh.stats.dirty = sh.stats.dirty.saturating_sub(before);
                }
                Reply::Ok
            })
        })
        .await;
    if !ok {
        for s in 0..shards {
            let name = file_name(&stem, id, kind, s);
            let _ = std::fs::remove_file(dir.join(&name));
            let _ = std::fs::remove_file(dir.join(format!("{name}.tmp")));
        }
    }
    result
}

/// A shard at the barrier.
#[derive(Debug, Clone, Copy)]
struct Point {
    epoch: u64,
    /// The last lsn of its log (the snapshot holds every record up to it).
    lsn: u64,
    /// Its change counter.
    dirty: u64,
    /// Its log was on.
    logging: bool,
    /// Record bytes in its log.
    log_pos: u64,
}

#[allow(clippy::too_many_arguments)]
async fn write_all(
    worker: &Rc<Worker>,
    dir: &Path,
    stem: &str,
    kind: Kind,
    id: u64,
    base_id: u64,
    parent_id: u64,
    databases: usize,
    created_ms: u64,
    barrier: &[Point],
    log_id: Option<u64>,
    speed: Speed,
) -> Result<(SnapshotMeta, Tally, Costs), String> {
    let shards = barrier.len();
    let (compression, pace) = {
        let c = worker.shared.config();
        let pace = match speed {
            Speed::Background => c.snapshot_pace,
            Speed::Now => 0,
        };
        (c.rdbcompression, pace)
    };
    // 2. Every shard writes its file.
    let mut waits = Vec::with_capacity(shards);
    for (s, &Point { epoch, lsn, .. }) in barrier.iter().enumerate() {
        let (reply, rx) = oneshot::channel();
        let header = FileHeader {
            kind,
            compression,
            shard: s as u16,
            shards: shards as u16,
            databases: databases as u16,
            id,
            base_id,
            parent_id,
            epoch,
            lsn,
            created_ms,
        };
        let (dir, name) = (dir.to_path_buf(), file_name(stem, id, kind, s));
        worker.send(
            s,
            Msg::Run(Box::new(move |_| {
                WRITER.with(|w| {
                    w.requests.borrow_mut().push(WriteRequest {
                        dir,
                        name,
                        header,
                        pace,
                        reply,
                    });
                    w.kick.notify_one();
                });
            })),
        );
        waits.push(rx);
    }
    let mut files = Vec::with_capacity(shards);
    let mut total = Tally::default();
    let mut costs = Costs::default();
    let mut failure = None;
    for (s, rx) in waits.into_iter().enumerate() {
        match rx.await {
            Ok(Ok(w)) => {
                total.pages += w.tally.pages;
                total.keys += w.tally.keys;
                total.bytes += w.size;
                costs = costs.max(w.costs);
                files.push((file_name(stem, id, kind, s), w.size, barrier[s].lsn));
            }
            Ok(Err(e)) => failure = failure.or(Some(e)),
            Err(_) => failure = failure.or(Some(format!("shard {s} is gone"))),
        }
    }
    if let Some(e) = failure {
        return Err(e);
    }
    let meta = SnapshotMeta {
        id,
        kind,
        base_id,
        parent_id,
        shards,
        databases,
        created_ms,
        keys: total.keys,
        bytes: total.bytes,
        files,
    };
    // 3. The manifest makes it visible.
    // The log continues this snapshot if it was on at the barrier
    // everywhere; a snapshot taken with it off detaches it.
    let logging = barrier.iter().all(|b| b.logging) && log_id.is_some();
    let (keep, mut drop, last_visible, detached) = {
        let st = worker.shared.snapshot_status();
        let mut m = st.manifest.clone();
        let last_visible = m.snapshots.first().map(|s| s.id);
        let detached = match log_id.filter(|_| logging) {
            // The first snapshot of a log turned on at run time is its
            // base: the log holds every record after its lsns.
            Some(log) if m.log.as_ref().is_none_or(|l| l.id != log) => m.log.replace(LogLine {
                id: log,
                shards,
                after: id - 1,
                base: id,
                from: barrier.iter().map(|b| b.lsn).collect(),
            }),
            Some(_) => None,
            None => m.log.take(),
        };
        m.snapshots.insert(0, meta.clone());
        let (keep, drop) = retain(m);
        (keep, drop, last_visible, detached)
    };
    write_manifest(dir, stem, &keep).await?;
    drop.extend(leftovers(dir, stem, last_visible.is_some(), &keep));
    for name in drop {
        if let Err(e) = std::fs::remove_file(dir.join(&name)) {
            if e.kind() != io::ErrorKind::NotFound {
                log::warning(&format!("Can't remove the old snapshot file {name}: {e}"));
            }
        }
    }
    // Only now that the manifest is durable: log segments that no kept
    // snapshot needs go, and a detached log (loaded at start, all of it in
    // this snapshot) is removed.
    let log_dir = crate::recover::log_dir(&worker.shared.config());
    if let Some(line) = keep.log.as_ref().filter(|_| logging) {
        // Unlinking many 64 MiB segments takes milliseconds each: not on
        // the event loop.
        let (dir, line, m) = (log_dir.clone(), line.clone(), keep.clone());
        let _ = std::thread::Builder::new()
            .name("log-trim".into())
            .spawn(move || crate::recover::trim_log(&dir, &line, &m));
        for (s, b) in barrier.iter().enumerate() {
            if let Some(a) = worker.shared.aof.get(s) {
                a.base_size.store(b.log_pos, Ordering::Relaxed);
            }
        }
        worker.shared.snapshot_status().log_chain_bytes =
            keep.chain_bytes(meta.id).unwrap_or(meta.bytes);
        let base = crate::aof::aof_current_size(&worker.shared);
        worker.shared.snapshot_status().aof_base_size = base;
    } else if let Some(old) = detached {
        crate::recover::remove_detached_log(&log_dir, old.id);
    }
    worker.shared.snapshot_status().manifest = keep;
    Ok((meta, total, costs))
}

/// Files the new manifest `keep` does not name: every `.tmp` file, and,
/// when a manifest was there before (`had_manifest`), every snapshot file
/// of this `stem` it does not name: snapshots that never became visible (a
/// crash or an error stopped them before their manifest), and files of
/// dropped snapshots that a crash left behind between a manifest and their
/// deletion (the manifest that dropped them was durable, so no manifest
/// names them any more). Without a manifest nothing but `.tmp` files is
/// touched: files it cannot account for may be someone's copy.
fn leftovers(dir: &Path, stem: &str, had_manifest: bool, keep: &Manifest) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let named: std::collections::BTreeSet<&str> = keep
        .snapshots
        .iter()
        .flat_map(|s| s.files.iter().map(|f| f.0.as_str()))
        .collect();
    let prefix = format!("{stem}.");
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| {
            let Some(rest) = name.strip_prefix(&prefix) else {
                return false;
            };
            if rest
                .split('.')
                .next()
                .is_none_or(|i| i.parse::<u64>().is_err())
            {
                return false;
            }
            if name.ends_with(".kvs.tmp") {
                return true;
            }
            name.ends_with(".kvs") && had_manifest && !named.contains(name.as_str())
        })
        .collect()
}

/// Which snapshots a manifest keeps: the newest one's chain and the
/// second newest one's (the fallback if the newest cannot be read).
/// Returns the manifest to write and the files to delete after it.
fn retain(mut m: Manifest) -> (Manifest, Vec<String>) {
    let log = m.log.take();
    let mut keep_ids = std::collections::BTreeSet::new();
    for top in m.snapshots.iter().take(2) {
        if let Ok(chain) = m.chain(top.id) {
            keep_ids.extend(chain.iter().map(|c| c.id));
        }
    }
    let (keep, gone): (Vec<_>, Vec<_>) = m
        .snapshots
        .into_iter()
        .partition(|s| keep_ids.contains(&s.id));
    let drop = gone
        .into_iter()
        .flat_map(|s| s.files.into_iter().map(|f| f.0))
        .collect();
    (
        Manifest {
            snapshots: keep,
            log,
        },
        drop,
    )
}

async fn write_manifest(dir: &Path, stem: &str, m: &Manifest) -> Result<(), String> {
    let path = manifest_path(dir, stem);
    let tmp = dir.join(format!("{stem}.manifest.tmp"));
    let fail = |op: &str, p: &Path, e: io::Error| format!("{op} {}: {e}", p.display());
    sync_dir(dir).await.map_err(|e| fail("sync", dir, e))?;
    let text = m.encode();
    let f = File::create(&tmp).map_err(|e| fail("create", &tmp, e))?;
    f.write_all_at(text.as_bytes(), 0)
        .map_err(|e| fail("write", &tmp, e))?;
    RingFile::from_std(f)
        .sync_all()
        .await
        .map_err(|e| fail("sync", &tmp, e))?;
    crate::runtime::rename(&tmp, &path)
        .await
        .map_err(|e| fail("rename", &tmp, e))?;
    sync_dir(dir).await.map_err(|e| fail("sync", dir, e))
}

/// [`write_manifest`] with blocking calls, for start-up and the backup tool
/// (same order: the directory, then a temporary file, its sync, the
/// rename, the directory).
pub fn write_manifest_now(dir: &Path, stem: &str, m: &Manifest) -> Result<(), String> {
    let path = manifest_path(dir, stem);
    let fail = |op: &str, p: &Path, e: io::Error| format!("{op} {}: {e}", p.display());
    std::fs::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(|e| fail("sync", dir, e))?;
    crate::config::write_atomically(&path, m.encode().as_bytes())
        .map_err(|e| fail("write", &path, e))
}

async fn sync_dir(dir: &Path) -> io::Result<()> {
    RingFile::from_std(File::open(dir)?).sync_all().await
}

/// How long a failed save or log rewrite waits before it is tried again
/// (Redis's CONFIG_BGSAVE_RETRY_DELAY).
pub const RETRY_DELAY: Duration = Duration::from_secs(5);

/// The `save` rules, checked ten times a second on worker 0: a snapshot
/// starts when, for one rule, its time has passed since the last save and
/// at least its number of changes were made. A failed save (whatever
/// started it) is tried again every [`RETRY_DELAY`] while save rules are
/// set, until one succeeds and so lifts the MISCONF of
/// `stop-writes-on-bgsave-error`: Redis retries only while a rule still
/// holds, which a failed BGSAVE with few changes, or changes counted off by
/// a log rewrite, never does again while writes are refused. Retries log
/// their failure only (one line each). A BGSAVE SCHEDULE that found a
/// snapshot running starts here once it is over.
pub async fn cron(worker: Rc<Worker>) {
    loop {
        crate::runtime::sleep(std::time::Duration::from_millis(100)).await;
        if worker
            .shared
            .shutdown_after_save
            .swap(false, Ordering::Relaxed)
        {
            if final_save(&worker).await {
                worker.shared.request_shutdown();
            } else {
                log::warning("Error trying to save the DB, can't exit.");
            }
            continue;
        }
        let rules = worker.shared.config().save.clone();
        let (running, scheduled, since_save, failed, retry_due, rewrite_retry) = {
            let mut st = worker.shared.snapshot_status();
            let running = st.running_since.is_some();
            let scheduled = !running && std::mem::take(&mut st.scheduled);
            let retry_due = st.last_attempt.is_none_or(|t| t.elapsed() >= RETRY_DELAY);
            let since = (now_ms() / 1000).saturating_sub(st.last_save_unix);
            let rewrite_retry = !st.rewrite_last_ok;
            (
                running,
                scheduled,
                since,
                !st.last_ok,
                retry_due,
                rewrite_retry,
            )
        };
        if running {
            continue;
        }
        if scheduled {
            let _ = save(&worker, false, Speed::Background).await;
            continue;
        }
        if let Some(why) = rewrite_due(&worker.shared) {
            if let Ok(started) = claim(&worker.shared) {
                if rewrite_retry {
                    log::verbose(&why);
                } else {
                    log::notice(&why);
                }
                let _ = rewrite_claimed(&worker, started).await;
            }
            continue;
        }
        if failed {
            if retry_due && !rules.is_empty() {
                log::verbose("Retrying the background save that failed");
                let _ = save(&worker, false, Speed::Background).await;
            }
            continue;
        }
        if !rules.iter().any(|&(secs, _)| since_save >= secs) {
            continue;
        }
        let dirty = dirty(&worker).await;
        let Some(&(secs, changes)) = rules
            .iter()
            .find(|&&(secs, changes)| since_save >= secs && dirty >= changes)
        else {
            continue;
        };
        log::notice(&format!("{changes} changes in {secs} seconds. Saving..."));
        let _ = save(&worker, false, Speed::Background).await;
    }
}

/// Whether a log rewrite should start now: one was scheduled while a
/// snapshot ran, or the log grew past `auto-aof-rewrite-min-size` and by
/// `auto-aof-rewrite-percentage` % over its size after the last rewrite
/// (Redis's rule, with the snapshot chain counted as the base file). A
/// failed rewrite is tried again [`RETRY_DELAY`] after it while the rule
/// still holds (Redis 7.0 retries at once three times, then after 1, 2,
/// 4... up to 60 minutes; a full disk here costs one try and one log line
/// every 5 s, and space freed is used within 5 s).
fn rewrite_due(shared: &Shared) -> Option<String> {
    let (pct, min) = {
        let c = shared.config();
        (c.auto_aof_rewrite_percentage, c.auto_aof_rewrite_min_size)
    };
    let enabled = shared.aof.iter().any(|a| a.enabled.load(Ordering::Relaxed));
    let (scheduled, base, failed_recently, any_failed_recently) = {
        let mut st = shared.snapshot_status();
        let recently = |t: Option<Instant>| t.is_some_and(|t| t.elapsed() < RETRY_DELAY);
        let rewrite_failed = !st.rewrite_last_ok && recently(st.rewrite_last_attempt);
        let save_failed = !st.last_ok && recently(st.last_attempt);
        (
            std::mem::take(&mut st.rewrite_scheduled),
            st.aof_base_size,
            rewrite_failed,
            rewrite_failed || save_failed,
        )
    };
    if scheduled {
        return Some("Starting the scheduled AOF rewrite".into());
    }
    if crate::logswitch::pending(shared) && !any_failed_recently {
        // `appendonly yes` and the log is not on yet: its base failed, or
        // was scheduled behind a snapshot that has since run. Redis
        // retries the rewrite that turns the AOF on the same way.
        return Some("Starting the AOF rewrite that turns the append only file on".into());
    }
    if !enabled || pct == 0 || failed_recently {
        return None;
    }
    let current = crate::aof::aof_current_size(shared);
    if current < min {
        return None;
    }
    let growth = (current.saturating_mul(100) / base.max(1)).saturating_sub(100);
    (growth >= pct).then(|| format!("Starting automatic rewriting of AOF on {growth}% growth"))
}

/// The snapshot before a shutdown: waits for a running one to end, then
/// takes one. Returns whether it succeeded.
pub async fn final_save(worker: &Rc<Worker>) -> bool {
    log::notice("Saving the final snapshot before exiting.");
    loop {
        match save(worker, false, Speed::Now).await {
            Err(StartError::Busy) => {
                crate::runtime::sleep(std::time::Duration::from_millis(10)).await;
            }
            Ok(r) => return r.is_ok(),
        }
    }
}

/// Changes since the last save, over all shards.
pub async fn dirty(worker: &Worker) -> u64 {
    worker
        .ask_all(|| Box::new(|sh: &mut Shard| Reply::Int(sh.stats.dirty as i64)))
        .await
        .iter()
        .map(|r| if let Reply::Int(n) = r { *n as u64 } else { 0 })
        .sum()
}

/// The I/O the server reads snapshot files and the manifest with: the
/// engine's, dropping what was read from the page cache.
fn read_io() -> crate::sys::ReadOnceIo {
    crate::sys::ReadOnceIo::default()
}

/// [`reader::verify_chain`] on the server's I/O.
pub fn verify_chain(dir: &Path, m: &Manifest, id: u64) -> Result<(), String> {
    reader::verify_chain(&mut read_io(), dir, m, id)
}

/// [`reader::stream_file`] on the server's I/O.
pub fn stream_file(
    path: &Path,
    f: impl FnMut(format::PageFrame) -> Result<(), String>,
) -> Result<FileHeader, String> {
    reader::stream_file(&mut read_io(), path, f)
}

/// [`reader::load_chain`] on the server's I/O.
pub fn load_chain(dir: &Path, m: &Manifest, id: u64, shard: &mut Shard) -> Result<u64, String> {
    reader::load_chain(&mut read_io(), dir, m, id, shard)
}

/// [`reader::choose_in`] on the server's I/O; the fallback's warning is
/// logged.
pub fn choose_in(
    dir: &Path,
    m: &Manifest,
    usable: impl Fn(&SnapshotMeta) -> bool,
) -> Result<Option<u64>, String> {
    reader::choose_in(&mut read_io(), dir, m, usable, log::warning)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(id: u64, kind: Kind, parent: u64, base: u64) -> SnapshotMeta {
        SnapshotMeta {
            id,
            kind,
            base_id: base,
            parent_id: parent,
            shards: 2,
            databases: 16,
            created_ms: 1_795_238_411_584 + id,
            keys: 10 * id,
            bytes: 8192 * id,
            files: (0..2)
                .map(|s| {
                    (
                        file_name("dump.rdb", id, kind, s),
                        4096 * id,
                        100 + s as u64,
                    )
                })
                .collect(),
        }
    }

    /// The ids `retain` keeps of `snapshots`, and how many files it drops.
    fn kept(snapshots: Vec<SnapshotMeta>) -> (Vec<u64>, usize) {
        let (keep, drop) = retain(Manifest {
            snapshots,
            log: None,
        });
        (keep.snapshots.iter().map(|s| s.id).collect(), drop.len())
    }

    #[test]
    fn retention_keeps_the_two_newest_chains() {
        // 5 (delta on 4, full), then 3, 2 (deltas on full 1).
        let five = vec![
            meta(5, Kind::Delta, 4, 4),
            meta(4, Kind::Full, 0, 4),
            meta(3, Kind::Delta, 2, 1),
            meta(2, Kind::Delta, 1, 1),
            meta(1, Kind::Full, 0, 1),
        ];
        assert_eq!(kept(five.clone()), (vec![5, 4], 6));
        // Right after a new full one, the previous chain stays as fallback.
        assert_eq!(kept(five[1..].to_vec()), (vec![4, 3, 2, 1], 0));
    }

    #[test]
    fn leftovers_are_every_unnamed_file_once_a_manifest_exists() {
        let t = engine::testkit::TempDir::new("leftovers");
        let keep = Manifest {
            snapshots: vec![meta(5, Kind::Full, 0, 5)],
            log: None,
        };
        let mut names: Vec<String> = [1u64, 2, 5, 6]
            .iter()
            .flat_map(|&id| (0..2).map(move |s| file_name("dump.rdb", id, Kind::Full, s)))
            .collect();
        names.push(format!("{}.tmp", file_name("dump.rdb", 7, Kind::Delta, 0)));
        names.push("dump.rdb.manifest".into());
        names.push("other.rdb.1.full.s0.kvs".into());
        names.push("dump.rdb.notes.kvs".into());
        for n in &names {
            std::fs::write(t.0.join(n), b"x").unwrap();
        }
        let mut gone = leftovers(&t.0, "dump.rdb", true, &keep);
        gone.sort();
        let mut expected: Vec<String> = [1u64, 2, 6]
            .iter()
            .flat_map(|&id| (0..2).map(move |s| file_name("dump.rdb", id, Kind::Full, s)))
            .collect();
        expected.push(format!("{}.tmp", file_name("dump.rdb", 7, Kind::Delta, 0)));
        expected.sort();
        assert_eq!(gone, expected);
        // Without a manifest before, only the temporary file.
        assert_eq!(
            leftovers(&t.0, "dump.rdb", false, &keep),
            vec![format!("{}.tmp", file_name("dump.rdb", 7, Kind::Delta, 0))]
        );
    }
}
