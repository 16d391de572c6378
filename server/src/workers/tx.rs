//! Running a command that spans shards: lock, run, unlock.
//!
//! The coordinator is the connection's own thread. It asks each involved
//! shard, in ascending shard order, to lock the command's keys there (or the
//! whole shard for keyspace-wide commands), runs the family's cross-shard
//! function, whose jobs bypass the locks they own, and then unlocks. Other
//! work that touches a locked key waits on its shard, so no client observes
//! the command half done; the ascending order rules out deadlock.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use engine::command::{Args, Cluster, Exec, Job, LocalBoxFuture, Route};
use engine::{CommandSpec, Error, Reply};
use tokio::sync::oneshot;

use crate::worker::{LockScope, Msg, Worker};

struct TxCluster<'w> {
    worker: &'w Worker,
    tx: Option<u64>,
    /// Jobs read the whole keyspace (keyspace-wide commands).
    keyspace_read: bool,
    spec: &'static CommandSpec,
    /// Shards where a job staged records for the log.
    staged: RefCell<BTreeSet<usize>>,
}

impl Cluster for TxCluster<'_> {
    fn shard_count(&self) -> usize {
        self.worker.shard_count()
    }

    fn run(&self, shard: usize, job: Job) -> LocalBoxFuture<'_, Reply> {
        let (reply, rx) = oneshot::channel();
        self.worker.send(
            shard,
            Msg::Job {
                job,
                tx: self.tx,
                from: self.worker.id,
                keyspace_read: self.keyspace_read,
                spec: Some(self.spec),
                reply,
            },
        );
        Box::pin(async move {
            match rx.await {
                Ok((reply, staged)) => {
                    if staged {
                        self.staged.borrow_mut().insert(shard);
                    }
                    reply
                }
                Err(_) => Reply::Error(Error::msg("ERR shard unavailable")),
            }
        })
    }
}

async fn lock(worker: &Worker, shard: usize, tx: u64, scope: LockScope) -> bool {
    let (granted, rx) = oneshot::channel();
    worker.send(
        shard,
        Msg::Lock {
            tx,
            scope,
            from: worker.id,
            granted,
        },
    );
    rx.await.is_ok()
}

/// Runs a cross-shard or keyspace-wide command and returns its reply.
pub async fn run(
    worker: &Rc<Worker>,
    spec: &'static CommandSpec,
    route: Route,
    db: usize,
    args: Args<'_>,
) -> Reply {
    let cross = match spec.exec {
        Exec::Keys { cross, .. } | Exec::Global { cross, .. } => cross,
        _ => return Reply::Error(Error::msg("ERR command cannot span shards")),
    };
    if spec.is_write() {
        if let Some(why) = worker.shared.write_refusal() {
            return Reply::Error(Error::msg(why));
        }
    }
    let shards = worker.shard_count();
    let tx = worker.next_tx_id();
    let mut locked: Vec<usize> = Vec::new();
    let mut ok = true;
    match route {
        Route::CrossKeys => {
            let mut by_shard: BTreeMap<usize, Vec<(usize, Vec<u8>)>> = BTreeMap::new();
            for i in spec.key_indices(args.len()) {
                let key = args.get(i);
                by_shard
                    .entry(engine::keyhash::shard_of(key, shards))
                    .or_default()
                    .push((db, key.to_vec()));
            }
            for (s, keys) in by_shard {
                if !lock(worker, s, tx, LockScope::Keys(keys)).await {
                    ok = false;
                    break;
                }
                locked.push(s);
            }
        }
        Route::Global { lock: true } => {
            for s in 0..shards {
                if !lock(worker, s, tx, LockScope::Whole).await {
                    ok = false;
                    break;
                }
                locked.push(s);
            }
        }
        _ => {}
    }
    let cluster = TxCluster {
        worker,
        tx: if locked.is_empty() { None } else { Some(tx) },
        keyspace_read: matches!(route, Route::Global { .. }),
        spec,
        staged: RefCell::new(BTreeSet::new()),
    };
    let reply = if ok {
        cross(&cluster, db, args.to_vecs()).await
    } else {
        Reply::Error(Error::msg("ERR shard unavailable"))
    };
    // Every shard that staged records logs them as one part of the
    // transaction and reports when it is durable; the reply leaves only
    // when every part is durable and acknowledged (see Msg::Resolved), so
    // recovery, which applies a transaction only if all its parts are
    // there and cuts a shard's log at an incomplete part, never undoes an
    // acknowledged command.
    let participants = u16::try_from(cluster.staged.borrow().len()).unwrap_or(u16::MAX);
    let mut acks = Vec::with_capacity(locked.len());
    for s in locked {
        let (done, rx) = oneshot::channel();
        worker.send(
            s,
            Msg::Unlock {
                tx,
                from: worker.id,
                commit: Some((participants, done)),
            },
        );
        acks.push(rx);
    }
    for rx in acks {
        let _ = rx.await;
    }
    if participants > 1 {
        // Every part is durable: the parts may now be acknowledged, each
        // once nothing before it in its shard's log still waits.
        let mut acks = Vec::new();
        for s in cluster.staged.borrow().iter().copied() {
            let (done, rx) = oneshot::channel();
            worker.send(
                s,
                Msg::Resolved {
                    tx,
                    from: worker.id,
                    done,
                },
            );
            acks.push(rx);
        }
        for rx in acks {
            let _ = rx.await;
        }
    }
    reply
}

/// Runs `job(shard)` on every shard at one consistent point: a barrier no
/// multi-shard command straddles (the snapshot barrier). Shard by shard in
/// ascending order, the job runs as soon as nothing is locked there, and
/// the shard then stays locked whole until the last shard's job has run;
/// the last shard is never locked at all. A multi-shard command therefore
/// either finished on every shard before its job or starts on none before
/// the last job: it locks shards in the same ascending order, so it waits
/// behind the barrier on the first shard it shares with it. Each shard is
/// held for the round trips to the shards after it, and no longer.
/// Returns the replies in shard order (fewer if a shard is gone).
pub async fn barrier(worker: &Rc<Worker>, job: impl Fn(usize) -> Job) -> Vec<Reply> {
    let shards = worker.shard_count();
    let tx = worker.next_tx_id();
    let mut replies = Vec::with_capacity(shards);
    for s in 0..shards {
        let (reply, rx) = oneshot::channel();
        worker.send(
            s,
            Msg::Barrier {
                tx,
                job: job(s),
                release: s + 1 == shards,
                from: worker.id,
                reply,
            },
        );
        match rx.await {
            Ok(r) => replies.push(r),
            Err(_) => break,
        }
    }
    for s in 0..replies.len().min(shards - 1) {
        worker.send(
            s,
            Msg::Unlock {
                tx,
                from: worker.id,
                commit: None,
            },
        );
    }
    replies
}
