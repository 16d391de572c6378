//! Turning the append-only log on and off while the server runs
//! (`CONFIG SET appendonly yes|no`).
//!
//! **On.** As in Redis, the log starts from a rewrite: a snapshot of the
//! current state becomes its base, so the log holds everything from then
//! on and a restart loads base + log. Steps (each in its own snapshot):
//!
//! 1. If the manifest still names a log the shards no longer write (loaded
//!    at start with `appendonly no`, or turned off at run time), a snapshot
//!    taken without the log detaches it: the manifest drops its line, then
//!    its files are removed (the snapshot holds all of it).
//! 2. The base: before its barrier, [`prepare`] moves aside any log files
//!    no manifest names (never deleting data that was not loaded), writes a
//!    new `kv-log.meta` with a new id, and makes every worker's log ready;
//!    at the barrier each shard attaches it, so the log's first record on
//!    each shard follows that shard's lsn in the snapshot. The manifest
//!    written after the snapshot names the new log (`log id ... base ...`).
//!
//! Until that manifest is durable the new log is not named: a crash in
//! between restarts from the previous snapshot and moves the new log aside
//! (`<appenddirname>.stale-<id>`), so writes acknowledged during the base
//! are not yet durable, like Redis's writes while it waits for the rewrite
//! that turns its AOF on. A failed base is retried by the snapshot cron.
//!
//! **Off.** At a barrier every shard detaches its log: the flush loop
//! writes what was appended, syncs and ends. The files stay, still named by
//! the manifest (snapshot + log is the state when the log was turned off);
//! the next snapshot, taken without the log, detaches and removes them.

use std::rc::Rc;

use engine::Reply;

use crate::log;
use crate::recover::{self, Meta};
use crate::worker::Worker;

/// Whether a snapshot starting now should turn the log on at its barrier:
/// `appendonly yes`, the log is off, and the manifest names no log (else
/// that log is detached first, step 1).
pub fn wanted(worker: &Worker) -> bool {
    if !worker.shared.config().appendonly {
        return false;
    }
    let st = worker.shared.snapshot_status();
    st.log_id.is_none() && st.manifest.log.is_none()
}

/// `appendonly yes` but the log is not on yet (a rewrite has to make its
/// base).
pub fn pending(shared: &crate::shared::Shared) -> bool {
    shared.config().appendonly && shared.snapshot_status().log_id.is_none()
}

/// Step 2's preparation (the caller holds `log_switch`): a clean log
/// directory with a new `kv-log.meta`, and on every worker a log ready to
/// attach ([`engine::propagate::LogState::set_standby`]). Returns the new
/// log's id.
pub async fn prepare(worker: &Rc<Worker>) -> Result<u64, String> {
    let cfg = worker.shared.config().clone();
    let dir = recover::log_dir(&cfg);
    let old = recover::read_meta(&dir).ok().flatten();
    let id = recover::next_log_id(old);
    if recover::has_segments(&dir) {
        // A log nobody names (a crash during an earlier base, or files put
        // there by hand): keep it, out of the way.
        let aside = recover::move_log_aside(&cfg, old.map_or(id, |m| m.id).max(1))?;
        log::warning(&format!(
            "The append-only log in {} is not the one the snapshot manifest names: moved \
             to {} before starting a new log. Remove it when you no longer need it.",
            dir.display(),
            aside.display()
        ));
    }
    std::fs::create_dir_all(&dir).map_err(|e| format!("Can't create {}: {e}", dir.display()))?;
    let shards = worker.shard_count();
    recover::write_meta(&dir, Meta { shards, id })?;
    worker
        .ask_workers(|| {
            let dir = dir.clone();
            Box::new(move |w: &Rc<Worker>| {
                let next = w.shard.borrow().log.last_lsn() + 1;
                let aof = crate::aof::Aof::new(w.id, w.shared.clone(), &dir, next, 0, None);
                w.shard
                    .borrow_mut()
                    .log
                    .set_standby(Box::new(crate::aof::Sink(aof.clone())));
                crate::runtime::spawn(crate::aof::flush_loop(w.clone(), aof.clone()));
                crate::runtime::spawn(crate::aof::sync_loop(w.clone(), aof));
                Reply::Ok
            })
        })
        .await;
    Ok(id)
}

/// `CONFIG SET appendonly yes`: starts the rewrite that turns the log on,
/// or schedules it behind the running snapshot (Redis's replies and log
/// lines).
pub fn turn_on(worker: &Rc<Worker>) {
    if worker.shared.snapshot_status().log_id.is_some() {
        return;
    }
    match crate::snapshot::claim(&worker.shared) {
        Ok(started) => {
            let w = worker.clone();
            crate::runtime::spawn(async move {
                let _ = crate::snapshot::rewrite_claimed(&w, started).await;
            });
            log::notice("Background append only file rewriting started");
        }
        Err(crate::snapshot::StartError::Busy) => {
            worker.shared.snapshot_status().rewrite_scheduled = true;
            log::notice(
                "AOF was enabled but there is already another background operation. An AOF \
                 background was scheduled to start when possible.",
            );
        }
    }
}

/// `CONFIG SET appendonly no`: every shard detaches its log at a barrier.
pub async fn turn_off(worker: &Rc<Worker>) {
    let _switch = worker.shared.log_switch.lock().await;
    if worker.shared.config().appendonly {
        // Turned on again while this waited.
        return;
    }
    crate::tx::barrier(worker, |_| {
        Box::new(|sh| {
            drop(sh.log.detach());
            Reply::Ok
        })
    })
    .await;
    let was = worker.shared.snapshot_status().log_id.take();
    if let Some(id) = was {
        log::notice(&format!(
            "Append only file turned off (log id {id}); its files stay until the next \
             snapshot, which holds all of it"
        ));
    }
}
