//! One worker thread: it owns one shard, runs its event loop, and executes
//! every piece of work aimed at that shard, whether it comes from one of its
//! own connections or hops over from another thread.
//!
//! Work arrives as [`Msg`]s. A pipelined batch from a connection is one
//! message per shard ([`Batch`]); a command that spans shards sends lock
//! requests, jobs and an unlock. The [`LockTable`] makes multi-shard
//! commands atomic without any lock shared between threads: a shard holds
//! back work that touches a key (or, for keyspace-wide commands, any key) a
//! running multi-shard command has locked, and releases it in arrival order
//! when the command unlocks. Coordinators take shard locks in ascending shard
//! order, so waits never form a cycle.

use std::cell::{Cell, RefCell};
use std::collections::{HashMap, VecDeque};
use std::ops::Range;
use std::os::fd::RawFd;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use engine::command::{self, Args, Exec, Job};
use engine::{CommandSpec, Reply, Shard};
use tokio::sync::{mpsc, oneshot};

use crate::shared::Shared;

pub type Mailbox = mpsc::UnboundedSender<Msg>;

pub use crate::sys::now_ms;

/// Work for a shard.
pub enum Msg {
    /// Single-shard commands of one connection, in order; `from` is the
    /// connection's worker, where the reply is completed. With `socket`
    /// (the batch holds every reply the connection owes), this shard
    /// sends the replies on that socket itself once they may leave, as far
    /// as the socket takes them without blocking, and records how much in
    /// [`Batch::sent`]: the client then has its answer one hop sooner.
    Batch {
        batch: Box<Batch>,
        from: usize,
        socket: Option<RawFd>,
        reply: oneshot::Sender<Box<Batch>>,
    },
    /// A job of a cross-shard command. With `tx`, the sender holds the
    /// locks it needs, so the job never waits behind them, and what the job
    /// writes is staged for the log until the unlock. The reply says
    /// whether the job staged anything. `keyspace_read`: the job reads the
    /// whole keyspace (KEYS, SCAN, ...), so its reply waits until every
    /// write on this shard so far is durable.
    Job {
        job: Job,
        tx: Option<u64>,
        from: usize,
        keyspace_read: bool,
        /// The command the job is part of, checked against its row's
        /// logging rule (`command::check_logged`); None for the server's
        /// own jobs.
        spec: Option<&'static CommandSpec>,
        reply: oneshot::Sender<(Reply, bool)>,
    },
    /// Lock keys (or the whole shard) for transaction `tx`; answer when granted.
    Lock {
        tx: u64,
        scope: LockScope,
        from: usize,
        granted: oneshot::Sender<()>,
    },
    /// Release everything `tx` holds on this shard. With `commit`, first
    /// log what the transaction's jobs staged here as one part of a
    /// transaction over `participants` shards, and answer `durable` when
    /// that part is durable.
    Unlock {
        tx: u64,
        from: usize,
        commit: Option<(u16, oneshot::Sender<()>)>,
    },
    /// Every part of multi-shard command `tx` is durable: its part here (and
    /// what follows it) may be acknowledged. `done` is answered when this
    /// shard may acknowledge the part.
    Resolved {
        tx: u64,
        from: usize,
        done: oneshot::Sender<()>,
    },
    /// Runs on the receiving thread: hands a reply to the task waiting for
    /// it there, so that the wake-up is a local one.
    Complete(Box<dyn FnOnce() + Send>),
    /// Several messages sent in one event-loop tick, in order.
    Many(Vec<Msg>),
    /// A job for this worker that wants no reply (a layer above hands its
    /// own work to the worker's thread: the snapshot writer's requests).
    Run(RunJob),
    /// One shard's step of a barrier across shards (`tx::barrier`): once
    /// nothing is locked here, run `job` and, unless `release`, keep the
    /// whole shard locked for `tx` until its Unlock.
    Barrier {
        tx: u64,
        job: Job,
        release: bool,
        from: usize,
        reply: oneshot::Sender<Reply>,
    },
    /// Runs `job` with the receiving worker itself (work on the worker's
    /// own state rather than its shard, e.g. making a log), without locks.
    Worker {
        job: WorkerJob,
        from: usize,
        reply: oneshot::Sender<Reply>,
    },
}

/// A job for [`Msg::Run`].
pub type RunJob = Box<dyn FnOnce(&std::rc::Rc<Worker>) + Send>;

/// A job for [`Msg::Worker`].
pub type WorkerJob = Box<dyn FnOnce(&std::rc::Rc<Worker>) -> Reply + Send>;

pub enum LockScope {
    /// (db, key) pairs.
    Keys(Vec<(usize, Vec<u8>)>),
    Whole,
}

/// A batch keeps buffers up to this size for its next use.
const KEEP_REPLY_BUFFER: usize = 1024 * 1024;

/// Commands of one connection for one shard, with their argument bytes
/// copied into one buffer, and room for the replies. Batches go back and
/// forth between a connection and a shard and are reused.
#[derive(Default)]
pub struct Batch {
    cmds: Vec<BatchCmd>,
    data: Vec<u8>,
    ranges: Vec<Range<usize>>,
    out: Vec<u8>,
    ends: Vec<usize>,
    /// How many bytes of the replies the shard already sent to the client.
    pub sent: usize,
    /// The first command the next execution runs: a batch whose replies
    /// passed `budget` stops there and is sent again for the rest.
    start: usize,
    /// Reply bytes after which an execution stops (0: no limit), so that a
    /// client that pipelines big replies does not make the shard build
    /// them all at once (conn.rs, "Backpressure").
    pub budget: usize,
}

struct BatchCmd {
    spec: &'static CommandSpec,
    db: usize,
    /// Indices into `ranges`.
    args: Range<usize>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.cmds.is_empty()
    }

    /// Every command is a write: under `always` none of the replies can
    /// leave before the shard's next commit.
    fn only_writes(&self) -> bool {
        !self.cmds.is_empty() && self.cmds.iter().all(|c| c.spec.is_write())
    }

    pub fn len(&self) -> usize {
        self.cmds.len()
    }

    pub fn clear(&mut self) {
        self.cmds.clear();
        self.data.clear();
        self.ranges.clear();
        self.out.clear();
        self.ends.clear();
        self.sent = 0;
        self.start = 0;
        // Keep a reply buffer, not the memory of big replies.
        if self.out.capacity() > KEEP_REPLY_BUFFER {
            self.out = Vec::new();
        }
        if self.data.capacity() > KEEP_REPLY_BUFFER {
            self.data = Vec::new();
        }
    }

    /// Whether commands are left that no execution has run yet.
    pub fn has_more(&self) -> bool {
        self.start + self.ends.len() < self.cmds.len()
    }

    /// Whether command `i` has its reply in this round.
    pub fn has_reply(&self, i: usize) -> bool {
        i >= self.start && i < self.start + self.ends.len()
    }

    /// After a partial execution: drops this round's replies, so that the
    /// next execution runs the commands after them.
    pub fn advance(&mut self) {
        self.start += self.ends.len();
        self.out.clear();
        self.ends.clear();
        self.sent = 0;
        // The replies were copied out: do not hold a big reply twice while
        // the client is slow to take it.
        if self.out.capacity() > KEEP_REPLY_BUFFER {
            self.out = Vec::new();
        }
    }

    /// Bytes of memory the batch's buffers hold.
    pub fn memory(&self) -> usize {
        self.out.capacity() + self.data.capacity()
    }

    pub fn push(&mut self, spec: &'static CommandSpec, db: usize, args: Args<'_>) {
        let first = self.ranges.len();
        for a in args.iter() {
            let start = self.data.len();
            self.data.extend_from_slice(a);
            self.ranges.push(start..self.data.len());
        }
        self.cmds.push(BatchCmd {
            spec,
            db,
            args: first..self.ranges.len(),
        });
    }

    /// The reply of command `i`, after execution (see [`Batch::has_reply`]).
    pub fn reply(&self, i: usize) -> &[u8] {
        let Some(k) = i.checked_sub(self.start) else {
            return &[];
        };
        let start = match k.checked_sub(1) {
            Some(j) => self.ends.get(j).copied().unwrap_or(0),
            None => 0,
        };
        let end = self.ends.get(k).copied().unwrap_or(start);
        self.out.get(start..end).unwrap_or(&[])
    }

    fn execute(&mut self, shard: &mut Shard, refusal: Option<&str>) {
        self.out.clear();
        self.ends.clear();
        for c in self.cmds.iter().skip(self.start) {
            let args = Args::new(&self.data, &self.ranges[c.args.clone()]);
            execute(shard, c.spec, c.db, args, &mut self.out, refusal);
            self.ends.push(self.out.len());
            if self.budget > 0 && self.out.len() >= self.budget {
                break;
            }
        }
    }

    fn keys(&self) -> impl Iterator<Item = (usize, &[u8])> {
        self.cmds.iter().skip(self.start).flat_map(move |c| {
            let ranges = &self.ranges[c.args.clone()];
            c.spec
                .key_indices(ranges.len())
                .map(move |i| (c.db, &self.data[ranges[i].clone()]))
        })
    }
}

/// Runs one single-shard command on `shard` and writes its reply.
/// `refusal`: the error write commands get instead (the log is failing).
pub fn execute(
    shard: &mut Shard,
    spec: &CommandSpec,
    db: usize,
    args: Args<'_>,
    out: &mut Vec<u8>,
    refusal: Option<&str>,
) {
    if let Some(why) = refusal.filter(|_| spec.is_write()) {
        engine::resp::write_error(out, why);
        return;
    }
    match spec.exec {
        Exec::Shard(f) | Exec::Keys { shard: f, .. } => {
            command::execute_shard(spec, f, &mut shard.ctx(db), args, out)
        }
        // The connection routes other kinds elsewhere; answer rather than panic.
        _ => engine::Error::msg("ERR command cannot run in a batch").write_to(out),
    }
}

fn lock_key(db: usize, key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(key.len() + 2);
    k.extend_from_slice(&(db as u16).to_le_bytes());
    k.extend_from_slice(key);
    k
}

/// Locks held on this shard by multi-shard commands, and the work waiting
/// for them.
#[derive(Default)]
pub struct LockTable {
    keys: HashMap<Vec<u8>, u64>,
    whole: Option<u64>,
    queue: VecDeque<Msg>,
}

impl LockTable {
    /// Nothing is locked or waiting: work may run at once.
    pub fn idle(&self) -> bool {
        self.whole.is_none() && self.keys.is_empty() && self.queue.is_empty()
    }

    fn key_locked(&self, db: usize, key: &[u8]) -> bool {
        !self.keys.is_empty() && self.keys.contains_key(&lock_key(db, key))
    }

    fn conflicts(&self, msg: &Msg) -> bool {
        match msg {
            Msg::Batch { batch: b, .. } => {
                self.whole.is_some()
                    || (!self.keys.is_empty() && b.keys().any(|(db, k)| self.key_locked(db, k)))
            }
            Msg::Job { tx: Some(_), .. }
            | Msg::Unlock { .. }
            | Msg::Resolved { .. }
            | Msg::Complete(_)
            | Msg::Many(_)
            | Msg::Run(_)
            | Msg::Worker { .. } => false,
            Msg::Job { tx: None, .. } => self.whole.is_some(),
            Msg::Lock {
                scope: LockScope::Whole,
                ..
            }
            | Msg::Barrier { .. } => self.whole.is_some() || !self.keys.is_empty(),
            Msg::Lock {
                scope: LockScope::Keys(ks),
                ..
            } => self.whole.is_some() || ks.iter().any(|(db, k)| self.key_locked(*db, k)),
        }
    }

    /// Jobs of a lock holder and unlocks never wait: the lock holder would
    /// otherwise wait for itself.
    fn bypasses_queue(msg: &Msg) -> bool {
        matches!(
            msg,
            Msg::Job { tx: Some(_), .. }
                | Msg::Unlock { .. }
                | Msg::Resolved { .. }
                | Msg::Complete(_)
                | Msg::Many(_)
                | Msg::Run(_)
                | Msg::Worker { .. }
        )
    }
}

/// A worker thread's state. Lives in an `Rc` on its own thread.
pub struct Worker {
    pub id: usize,
    pub shard: RefCell<Shard>,
    pub locks: RefCell<LockTable>,
    pub shared: Arc<Shared>,
    next_tx: Cell<u64>,
    /// Messages for other workers collected during this event-loop tick.
    outbox: RefCell<Vec<Vec<Msg>>>,
    outbox_pending: Cell<bool>,
    outbox_ready: tokio::sync::Notify,
    /// This worker's own `Rc` (for [`Msg::Worker`] jobs).
    me: std::rc::Weak<Worker>,
    /// Every record up to this lsn is durable (mirror of the shard's).
    durable: Cell<u64>,
    /// Replies waiting for the log: (lsn, what to do when it may be
    /// acknowledged).
    waiters: RefCell<Vec<(u64, Waiter)>>,
    /// Durability reports of multi-shard parts: (lsn, report).
    written_waiters: RefCell<Vec<(u64, Waiter)>>,
    /// Multi-shard parts in this log whose transaction is not yet durable
    /// on every participant: txid -> lsn.
    unresolved: RefCell<HashMap<u64, u64>>,
}

type Waiter = Box<dyn FnOnce(&Worker)>;

/// A waiter that sends `value` on `tx` to the task on worker `from`.
fn reply_to<T: Send + 'static>(from: usize, tx: oneshot::Sender<T>, value: T) -> Waiter {
    Box::new(move |w| {
        w.complete(
            from,
            Box::new(move || {
                let _ = tx.send(value);
            }),
        )
    })
}

/// Removes and returns the waiters whose lsn is at most `lsn`, in order.
fn take_ready(list: &RefCell<Vec<(u64, Waiter)>>, lsn: u64) -> Vec<Waiter> {
    let mut w = list.borrow_mut();
    if w.is_empty() {
        return Vec::new();
    }
    let mut ready = Vec::new();
    let mut keep = Vec::with_capacity(w.len());
    for (l, f) in w.drain(..) {
        if l <= lsn {
            ready.push(f);
        } else {
            keep.push((l, f));
        }
    }
    *w = keep;
    ready
}

impl Worker {
    pub fn new(id: usize, shard: Shard, shared: Arc<Shared>) -> std::rc::Rc<Self> {
        std::rc::Rc::new_cyclic(|me| Worker {
            me: me.clone(),
            id,
            shard: RefCell::new(shard),
            locks: RefCell::new(LockTable::default()),
            outbox: RefCell::new((0..shared.mailboxes.len()).map(|_| Vec::new()).collect()),
            shared,
            next_tx: Cell::new(0),
            outbox_pending: Cell::new(false),
            outbox_ready: tokio::sync::Notify::new(),
            durable: Cell::new(0),
            waiters: RefCell::new(Vec::new()),
            written_waiters: RefCell::new(Vec::new()),
            unresolved: RefCell::new(HashMap::new()),
        })
    }

    /// Transaction ids continue after the largest one in the log, so that a
    /// restart never reuses one that recovery could still see.
    pub fn set_tx_base(&self, n: u64) {
        self.next_tx.set(n);
    }

    /// Every record up to this lsn may be acknowledged: it is durable, and
    /// no multi-shard part before it still waits for its other parts (were
    /// one of those lost in a crash, recovery would cut this shard's log at
    /// that part, dropping everything after it).
    fn ack_point(&self) -> u64 {
        let durable = self.durable.get();
        match self.unresolved.borrow().values().min() {
            Some(&first) => durable.min(first.saturating_sub(1)),
            None => durable,
        }
    }

    /// Runs `f` once every record up to `lsn` may be acknowledged (at once
    /// if it may).
    pub fn when_durable(&self, lsn: u64, f: Waiter) {
        if lsn <= self.ack_point() {
            f(self);
        } else {
            self.waiters.borrow_mut().push((lsn, f));
        }
    }

    /// Runs `f` once this shard's log is durable up to `lsn`, whatever
    /// multi-shard parts are unresolved (a part's durability report).
    fn when_written(&self, lsn: u64, f: Waiter) {
        if lsn <= self.durable.get() {
            f(self);
        } else {
            self.written_waiters.borrow_mut().push((lsn, f));
        }
    }

    /// Waits until every record up to `lsn` may be acknowledged.
    pub async fn durable(&self, lsn: u64) {
        if lsn <= self.ack_point() {
            return;
        }
        let (tx, rx) = oneshot::channel();
        self.when_durable(
            lsn,
            Box::new(move |_| {
                let _ = tx.send(());
            }),
        );
        let _ = rx.await;
    }

    /// The log made every record up to `lsn` durable: release what waited.
    pub fn log_durable(&self, lsn: u64) {
        self.durable.set(lsn.max(self.durable.get()));
        for f in take_ready(&self.written_waiters, lsn) {
            f(self);
        }
        self.release_acknowledged();
    }

    /// Releases the replies (and forgets the pending keys) that the ack
    /// point now covers.
    fn release_acknowledged(&self) {
        let lsn = self.ack_point();
        self.shard.borrow_mut().log.set_durable(lsn);
        for f in take_ready(&self.waiters, lsn) {
            f(self);
        }
    }

    pub fn shard_count(&self) -> usize {
        self.shared.mailboxes.len()
    }

    /// A transaction id unique across workers.
    pub fn next_tx_id(&self) -> u64 {
        let n = self.next_tx.get() + 1;
        self.next_tx.set(n);
        ((self.id as u64) << 48) | n
    }

    /// Whether work for this shard may run right now on this thread.
    pub fn can_run_now(&self) -> bool {
        self.locks.borrow().idle()
    }

    /// Runs a single-shard command here and now (the caller checked
    /// `can_run_now`). Returns the lsn its reply must wait for (0: none).
    pub fn execute_local(
        &self,
        spec: &CommandSpec,
        db: usize,
        args: Args<'_>,
        out: &mut Vec<u8>,
    ) -> u64 {
        let refusal = self.shared.write_refusal();
        let mut shard = self.shard.borrow_mut();
        shard.set_now_ms(now_ms());
        execute(&mut shard, spec, db, args, out, refusal.as_deref());
        shard.log.take_wait()
    }

    /// Sends a message to worker `to`: delivered in place if it is this one,
    /// otherwise collected and sent with everything else for `to` from this
    /// tick as one message (one cross-thread wake-up per tick and peer,
    /// rather than one per connection).
    pub fn send(&self, to: usize, msg: Msg) {
        if to == self.id {
            self.deliver(msg);
            return;
        }
        self.outbox.borrow_mut()[to].push(msg);
        if !self.outbox_pending.replace(true) {
            self.outbox_ready.notify_one();
        }
    }

    /// This shard's commit under `always` (on the ring or inline) starts
    /// (`busy`) or ended: while it is in flight, batches of writes for this
    /// shard from other shards wait in its [`Held`] queue, taken when it
    /// ends.
    pub fn commit_in_flight(&self, busy: bool) {
        let held = &self.shared.held[self.id];
        held.busy.store(busy, Ordering::SeqCst);
        if !busy {
            fence(Ordering::SeqCst);
            self.take_held();
        }
    }

    /// Runs what other workers left in this shard's [`Held`] queue.
    fn take_held(&self) {
        while let Ok(msg) = self.shared.held[self.id].rx.try_recv() {
            self.shared.aof[self.id]
                .held
                .fetch_add(1, Ordering::Relaxed);
            self.deliver(msg);
        }
    }

    /// Sends the collected messages; runs in its own task, which the loop
    /// polls after the tasks that were already ready in this tick, and
    /// before this thread blocks in an inline commit (`aof::INLINE_MAX`).
    pub fn flush_outbox(&self) {
        self.outbox_pending.set(false);
        let mut outbox = self.outbox.borrow_mut();
        for (to, msgs) in outbox.iter_mut().enumerate() {
            if msgs.is_empty() {
                continue;
            }
            let held = &self.shared.held[to];
            if held.busy() && msgs.iter().all(Msg::holdable) {
                if !held.hold(Msg::Many(std::mem::take(msgs))) {
                    // Its commit ended meanwhile: wake it to take them.
                    let _ = self.shared.mailboxes[to].send(Msg::Many(Vec::new()));
                }
                continue;
            }
            let msg = if msgs.len() == 1 {
                msgs.pop().map_or(Msg::Many(Vec::new()), |m| m)
            } else {
                Msg::Many(std::mem::take(msgs))
            };
            // A send fails only when the target worker is gone (shutdown):
            // dropping the message closes its reply channel, and the waiting
            // side reports an error.
            let _ = self.shared.mailboxes[to].send(msg);
        }
    }

    /// Completes a reply for a task on worker `to` (here, or via its mailbox).
    fn complete(&self, to: usize, f: Box<dyn FnOnce() + Send>) {
        if to == self.id {
            f();
        } else {
            self.send(to, Msg::Complete(f));
        }
    }

    /// Accepts a message for this shard: runs it, or queues it behind locks.
    pub fn deliver(&self, msg: Msg) {
        {
            let mut locks = self.locks.borrow_mut();
            if !LockTable::bypasses_queue(&msg)
                && (!locks.queue.is_empty() || locks.conflicts(&msg))
            {
                locks.queue.push_back(msg);
                return;
            }
        }
        self.handle(msg);
    }

    fn handle(&self, msg: Msg) {
        match msg {
            Msg::Batch {
                mut batch,
                from,
                socket,
                reply,
            } => {
                let refusal = self.shared.write_refusal();
                let wait = {
                    let mut shard = self.shard.borrow_mut();
                    shard.set_now_ms(now_ms());
                    batch.execute(&mut shard, refusal.as_deref());
                    shard.log.take_wait()
                };
                let Some(fd) = socket else {
                    self.when_durable(wait, reply_to(from, reply, batch));
                    return;
                };
                self.when_durable(
                    wait,
                    Box::new(move |w| {
                        batch.sent = crate::sys::send_nonblocking(fd, &batch.out);
                        reply_to(from, reply, batch)(w);
                    }),
                );
            }
            Msg::Job {
                job,
                tx,
                from,
                keyspace_read,
                spec,
                reply,
            } => {
                let (r, staged, wait) = {
                    let mut shard = self.shard.borrow_mut();
                    shard.set_now_ms(now_ms());
                    if let Some(t) = tx {
                        shard.log.stage(t);
                    }
                    let dirty = shard.stats.dirty;
                    let r = job(&mut shard);
                    let wrote = shard.log.propagated();
                    let staged = tx.is_some() && shard.log.end_stage();
                    if let Some(spec) = spec.filter(|_| tx.is_some() && shard.log.enabled()) {
                        let changed = shard.stats.dirty != dirty;
                        command::check_logged(&mut shard, spec, changed, wrote, true);
                    }
                    if keyspace_read {
                        shard.log.wait_for_all();
                    }
                    (r, staged, shard.log.take_wait())
                };
                self.when_durable(wait, reply_to(from, reply, (r, staged)));
            }
            Msg::Complete(f) => f(),
            Msg::Barrier {
                tx,
                job,
                release,
                from,
                reply,
            } => {
                let r = {
                    let mut shard = self.shard.borrow_mut();
                    shard.set_now_ms(now_ms());
                    job(&mut shard)
                };
                if !release {
                    self.locks.borrow_mut().whole = Some(tx);
                }
                self.complete(
                    from,
                    Box::new(move || {
                        let _ = reply.send(r);
                    }),
                );
            }
            Msg::Run(job) => {
                if let Some(me) = self.me.upgrade() {
                    job(&me);
                }
            }
            Msg::Worker { job, from, reply } => {
                let r = match self.me.upgrade() {
                    Some(me) => job(&me),
                    None => Reply::Nil,
                };
                self.complete(
                    from,
                    Box::new(move || {
                        let _ = reply.send(r);
                    }),
                );
            }
            Msg::Many(msgs) => {
                for m in msgs {
                    self.deliver(m);
                }
            }
            Msg::Lock {
                tx,
                scope,
                from,
                granted,
            } => {
                let mut locks = self.locks.borrow_mut();
                match scope {
                    LockScope::Whole => locks.whole = Some(tx),
                    LockScope::Keys(keys) => {
                        for (db, k) in keys {
                            locks.keys.insert(lock_key(db, &k), tx);
                        }
                    }
                }
                drop(locks);
                if from == self.id {
                    if granted.send(()).is_err() {
                        // The coordinator is gone; do not hold its locks forever.
                        self.release(tx);
                    }
                } else {
                    let mailbox = self.shared.mailboxes[self.id].clone();
                    self.complete(
                        from,
                        Box::new(move || {
                            if granted.send(()).is_err() {
                                let _ = mailbox.send(Msg::Unlock {
                                    tx,
                                    from: usize::MAX,
                                    commit: None,
                                });
                            }
                        }),
                    );
                }
            }
            Msg::Resolved { tx, from, done } => {
                let lsn = self.unresolved.borrow_mut().remove(&tx).unwrap_or(0);
                self.release_acknowledged();
                self.when_durable(lsn, reply_to(from, done, ()));
            }
            Msg::Unlock { tx, from, commit } => {
                let Some((participants, done)) = commit else {
                    self.release(tx);
                    return;
                };
                let lsn = self
                    .shard
                    .borrow_mut()
                    .log
                    .commit_staged(tx, participants)
                    .unwrap_or(0);
                self.release(tx);
                if lsn > 0 && participants > 1 {
                    // Acknowledged only once every part is durable
                    // ([`Msg::Resolved`]); report this part's durability.
                    self.unresolved.borrow_mut().insert(tx, lsn);
                    self.when_written(lsn, reply_to(from, done, ()));
                    return;
                }
                self.when_durable(lsn, reply_to(from, done, ()));
            }
        }
    }

    fn release(&self, tx: u64) {
        {
            let mut locks = self.locks.borrow_mut();
            if locks.whole == Some(tx) {
                locks.whole = None;
            }
            if !locks.keys.is_empty() {
                locks.keys.retain(|_, owner| *owner != tx);
            }
        }
        // Run what waited, in arrival order, until something must wait again.
        loop {
            let next = {
                let mut locks = self.locks.borrow_mut();
                match locks.queue.front() {
                    Some(m) if !locks.conflicts(m) => locks.queue.pop_front(),
                    _ => None,
                }
            };
            match next {
                Some(m) => self.handle(m),
                None => break,
            }
        }
    }

    /// Runs `job` on every worker (with the worker itself, see
    /// [`Msg::Worker`]) and collects the replies in shard order.
    pub async fn ask_workers(&self, job: impl Fn() -> WorkerJob) -> Vec<Reply> {
        self.ask_each(|reply| Msg::Worker {
            job: job(),
            from: self.id,
            reply,
        })
        .await
        .into_iter()
        .map(|r| r.unwrap_or(Reply::Nil))
        .collect()
    }

    /// Runs `job` on every shard without locks and collects the replies in
    /// shard order (INFO, CONFIG SET propagation).
    pub async fn ask_all(&self, job: impl Fn() -> Job) -> Vec<Reply> {
        self.ask_each(|reply| Msg::Job {
            job: job(),
            tx: None,
            from: self.id,
            keyspace_read: false,
            spec: None,
            reply,
        })
        .await
        .into_iter()
        .map(|r| r.map_or(Reply::Nil, |r| r.0))
        .collect()
    }

    /// Sends every worker the message `msg` makes around a reply channel,
    /// all at once, then collects the answers in shard order (None: the
    /// worker dropped the channel).
    async fn ask_each<T>(&self, msg: impl Fn(oneshot::Sender<T>) -> Msg) -> Vec<Option<T>> {
        let mut rxs = Vec::with_capacity(self.shard_count());
        for s in 0..self.shard_count() {
            let (tx, rx) = oneshot::channel();
            self.send(s, msg(tx));
            rxs.push(rx);
        }
        let mut out = Vec::with_capacity(rxs.len());
        for rx in rxs {
            out.push(rx.await.ok());
        }
        out
    }
}

/// The loop that takes messages for this shard from other threads.
pub async fn mailbox_loop(worker: std::rc::Rc<Worker>, mut rx: mpsc::UnboundedReceiver<Msg>) {
    while let Some(msg) = rx.recv().await {
        // What was held was sent before anything the mailbox has now.
        worker.take_held();
        worker.deliver(msg);
        // Drain what else arrived meanwhile before yielding to the loop.
        while let Ok(msg) = rx.try_recv() {
            worker.deliver(msg);
        }
    }
}

/// Messages for a shard whose commit is in flight under `appendfsync
/// always` that could not be answered before it ends anyway: batches of
/// writes, whose records go into the next commit. Other workers leave them
/// here without waking the shard; it takes them when the commit completes
/// (which wakes it), or before the next message its mailbox brings. A
/// wake-up between two threads is an eventfd write, a context switch and
/// often an idle vCPU's wake (BENCHMARKS.md, "M2.3", "always").
#[repr(align(128))]
pub struct Held {
    busy: AtomicBool,
    tx: crossbeam_channel::Sender<Msg>,
    rx: crossbeam_channel::Receiver<Msg>,
}

impl Default for Held {
    fn default() -> Held {
        let (tx, rx) = crossbeam_channel::unbounded();
        Held {
            busy: AtomicBool::new(false),
            tx,
            rx,
        }
    }
}

impl Held {
    fn busy(&self) -> bool {
        self.busy.load(Ordering::Relaxed)
    }

    /// Leaves `msg` for the shard. False if its commit ended meanwhile, so
    /// that it may not look again: the sender must wake it. (The shard
    /// clears `busy` before it takes what is held; a sender that still sees
    /// it set after its send knows the shard will find the message.)
    fn hold(&self, msg: Msg) -> bool {
        // Only a receiver dropped at shutdown refuses it.
        let _ = self.tx.send(msg);
        fence(Ordering::SeqCst);
        self.busy.load(Ordering::SeqCst)
    }
}

impl Msg {
    /// May wait in a [`Held`] queue.
    fn holdable(&self) -> bool {
        match self {
            Msg::Batch { batch, .. } => batch.only_writes(),
            Msg::Many(m) => m.iter().all(Msg::holdable),
            _ => false,
        }
    }
}

/// Sends what `Worker::send` collected, once per event-loop tick.
pub async fn outbox_loop(worker: std::rc::Rc<Worker>) {
    loop {
        worker.outbox_ready.notified().await;
        worker.flush_outbox();
    }
}

/// Rate samples for INFO, every 100 ms (run by worker 0 only).
pub async fn rates_loop(shared: Arc<Shared>) {
    loop {
        crate::runtime::sleep(Duration::from_millis(100)).await;
        shared.sample_rates();
    }
}

/// Active expiry: `hz` times a second, a bounded sample per database.
pub async fn expire_loop(worker: std::rc::Rc<Worker>) {
    let mut collected = 0;
    let mut last_collect = std::time::Instant::now();
    loop {
        let hz = worker.shared.hz().clamp(1, 500);
        crate::runtime::sleep(Duration::from_millis(1000 / hz)).await;
        // A client's big buffers were freed: give the memory back, at most
        // once a second (it walks this thread's heap).
        let collect = worker
            .shared
            .memory_collect
            .load(std::sync::atomic::Ordering::Relaxed);
        if collect != collected && last_collect.elapsed() >= Duration::from_secs(1) {
            collected = collect;
            last_collect = std::time::Instant::now();
            crate::alloc::collect();
        }
        if !worker.can_run_now() {
            continue;
        }
        let mut shard = worker.shard.borrow_mut();
        shard.set_now_ms(now_ms());
        shard.active_expire_cycle();
        // Deleting expired keys waits for nobody.
        shard.log.take_wait();
    }
}
