//! What a shard's writes leave for its log, and which replies must wait for
//! the log.
//!
//! A shard with logging on holds a [`LogSink`] (the server's journal). Every
//! command that changed something leaves exactly the records that replay
//! it:
//!
//! - the command as it arrived, for rows with [`crate::command::Log::Auto`]
//!   ([`crate::command::execute_shard`] calls
//!   [`crate::shard::ExecCtx::propagate`] when the command counted a
//!   change);
//! - rows with [`crate::command::Log::Effect`], whose effect depends on the
//!   clock or on randomness, write their own canonical form instead (`SET .. PXAT`, `PEXPIREAT`, `DEL`,
//!   `SET .. KEEPTTL` for INCRBYFLOAT), so replay at another time gives the
//!   same state;
//! - a key found expired is deleted and logged as `DEL`;
//! - a job of a multi-shard command *stages* its records ([`LogState::stage`]):
//!   the server appends them as one part of a transaction once it knows how
//!   many shards took part ([`LogState::commit_staged`]).
//!
//! A record's payload is RESP text; a command in database `n != 0` is
//! preceded by `SELECT n` in the same payload, so every record replays on
//! its own, starting in database 0.
//!
//! Durability of reads: a key written by a record that is not yet
//! acknowledged by the log ("durable") is *pending*. A reply that shows a
//! pending key must wait until its record is durable; [`LogState::take_wait`]
//! gives the lsn the replies of a batch wait for. Keys never written since
//! the last flush wait for nobody. Keyspace-wide changes (FLUSHALL, SWAPDB)
//! set a barrier that every read waits for.

use hashbrown::HashMap;

/// Where a shard's records go: the server's journal for this shard.
pub trait LogSink {
    /// Appends one record holding `payload` (RESP text of one or more
    /// commands); `tx` = `(txid, participants)` for one shard's part of a
    /// multi-shard command. Returns the record's lsn.
    fn append(&mut self, payload: &[u8], tx: Option<(u64, u16)>) -> u64;
}

/// Records staged by a job of a multi-shard command.
struct Staged {
    txid: u64,
    payload: Vec<u8>,
    touched: Vec<(usize, u64)>,
    barrier: bool,
}

/// A shard's logging state (see the module docs).
#[derive(Default)]
pub struct LogState {
    sink: Option<Box<dyn LogSink>>,
    /// A sink made ready to be attached at a barrier
    /// ([`LogState::attach_standby`]).
    standby: Option<Box<dyn LogSink>>,
    scratch: Vec<u8>,
    /// The running command wrote its own records.
    propagated: bool,
    /// (db, key hash) of keys changed by the running command.
    touched: Vec<(usize, u64)>,
    /// Keys whose last change is not durable yet: (db, hash) -> lsn.
    pending: HashMap<(usize, u64), u64>,
    /// Every read waits for this lsn (a keyspace-wide change).
    barrier: u64,
    /// Every record up to this lsn is acknowledged by the log.
    durable: u64,
    /// Lsn of the last record appended.
    last: u64,
    /// The lsn the replies produced since the last `take_wait` wait for.
    wait: u64,
    /// A multi-shard job is running: its records are staged for this txid.
    staging: Option<u64>,
    staged: Vec<Staged>,
}

impl LogState {
    /// Turns logging on with `sink`; `durable` is the last lsn already in
    /// the log.
    pub fn attach(&mut self, sink: Box<dyn LogSink>, durable: u64) {
        self.sink = Some(sink);
        self.durable = durable;
        self.last = durable;
    }

    pub fn enabled(&self) -> bool {
        self.sink.is_some()
    }

    /// Keeps `sink` ready for [`LogState::attach_standby`] (turning the log
    /// on at run time: the sink is made on the worker, the switch happens
    /// at a barrier across shards).
    pub fn set_standby(&mut self, sink: Box<dyn LogSink>) {
        self.standby = Some(sink);
    }

    /// Attaches the standby sink, if any, continuing after the last lsn
    /// (records appended while no sink was attached were never numbered,
    /// so lsns have no hole). Returns whether logging is on.
    pub fn attach_standby(&mut self) -> bool {
        if let Some(sink) = self.standby.take() {
            let last = self.last;
            self.attach(sink, last);
        }
        self.enabled()
    }

    /// Turns logging off and returns the sink (drop it to close the log).
    /// Records already appended stay the sink's to write; keys waiting for
    /// them keep waiting until they are durable.
    pub fn detach(&mut self) -> Option<Box<dyn LogSink>> {
        self.standby = None;
        self.sink.take()
    }

    /// The lsn of the last record appended (0: none, or no log).
    pub fn last_lsn(&self) -> u64 {
        self.last
    }

    /// Keys waiting for their records to become durable.
    pub fn pending_keys(&self) -> usize {
        self.pending.len()
    }

    /// The log made every record up to `lsn` durable: forget the keys that
    /// waited for it.
    pub fn set_durable(&mut self, lsn: u64) {
        if lsn <= self.durable {
            return;
        }
        self.durable = lsn;
        if !self.pending.is_empty() {
            self.pending.retain(|_, l| *l > lsn);
        }
    }

    /// The lsn the replies produced since the last call must wait for
    /// (0 or `<= durable`: none); resets it.
    pub fn take_wait(&mut self) -> u64 {
        std::mem::take(&mut self.wait)
    }

    /// Makes the next replies wait for everything appended so far (reads
    /// that span the keyspace: KEYS, SCAN, DBSIZE, RANDOMKEY).
    pub fn wait_for_all(&mut self) {
        if self.sink.is_some() && self.last > self.durable {
            self.wait = self.wait.max(self.last);
        }
    }

    /// A command is about to run.
    pub(crate) fn begin_command(&mut self) {
        self.propagated = false;
        self.touched.clear();
    }

    /// Whether the running command wrote its own records.
    pub fn propagated(&self) -> bool {
        self.propagated
    }

    /// A key was read or written: a reply showing it waits for its record.
    #[inline]
    pub(crate) fn note_key(&mut self, db: usize, hash: u64) {
        if self.barrier > self.durable {
            self.wait = self.wait.max(self.barrier);
        }
        if !self.pending.is_empty() {
            if let Some(&l) = self.pending.get(&(db, hash)) {
                self.wait = self.wait.max(l);
            }
        }
    }

    /// A key was changed by the running command.
    #[inline]
    pub(crate) fn touch(&mut self, db: usize, hash: u64) {
        if self.sink.is_some() {
            self.touched.push((db, hash));
        }
    }

    /// The running command changes the whole keyspace of this shard.
    pub(crate) fn barrier(&mut self) {
        if let Some(s) = self.staging.and_then(|t| self.staged_mut(t)) {
            s.barrier = true;
        } else if self.sink.is_some() {
            self.barrier = self.last.max(self.barrier);
        }
    }

    fn staged_mut(&mut self, txid: u64) -> Option<&mut Staged> {
        self.staged.iter_mut().find(|s| s.txid == txid)
    }

    /// Writes one record: `SELECT db` (unless 0) and the command `args`.
    /// Keys the running command touched wait for it. Staged instead when a
    /// multi-shard job is running.
    pub(crate) fn propagate<'a>(
        &mut self,
        db: usize,
        args: impl ExactSizeIterator<Item = &'a [u8]>,
    ) {
        if self.sink.is_none() {
            return;
        }
        self.propagated = true;
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        if let Some(txid) = self.staging {
            let touched = std::mem::take(&mut self.touched);
            if let Some(s) = self.staged_mut(txid) {
                // A SELECT lasts to the end of the record: after the first
                // command, every one names its database, 0 included.
                if s.payload.is_empty() {
                    encode(&mut buf, db, args);
                } else {
                    encode_select(&mut buf, db);
                    crate::resp::write_command(&mut buf, args);
                }
                s.payload.extend_from_slice(&buf);
                s.touched.extend(touched);
            }
        } else {
            encode(&mut buf, db, args);
            self.append(&buf, None);
        }
        self.scratch = buf;
    }

    /// Logs the deletion of an expired key (its own record, never staged:
    /// replaying it is right whatever happens to the command that found it).
    pub(crate) fn expired(&mut self, db: usize, key: &[u8]) {
        if self.sink.is_none() {
            return;
        }
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        encode(&mut buf, db, [&b"DEL"[..], key].into_iter());
        // The key was logically gone already: nothing waits for this record.
        let touched = std::mem::take(&mut self.touched);
        self.append(&buf, None);
        self.touched = touched;
        self.scratch = buf;
    }

    fn append(&mut self, payload: &[u8], tx: Option<(u64, u16)>) -> u64 {
        let Some(sink) = self.sink.as_mut() else {
            return 0;
        };
        let lsn = sink.append(payload, tx);
        self.last = lsn;
        self.wait = self.wait.max(lsn);
        for k in self.touched.drain(..) {
            self.pending.insert(k, lsn);
        }
        lsn
    }

    /// A job of multi-shard command `txid` starts: its records are staged.
    pub fn stage(&mut self, txid: u64) {
        if self.sink.is_none() {
            return;
        }
        self.staging = Some(txid);
        if self.staged_mut(txid).is_none() {
            self.staged.push(Staged {
                txid,
                payload: Vec::new(),
                touched: Vec::new(),
                barrier: false,
            });
        }
        self.begin_command();
    }

    /// The job ended; whether `txid` has staged records on this shard.
    pub fn end_stage(&mut self) -> bool {
        let Some(txid) = self.staging.take() else {
            return false;
        };
        self.touched.clear();
        self.staged
            .iter()
            .any(|s| s.txid == txid && !s.payload.is_empty())
    }

    /// Appends what `txid` staged here as one record, part of a transaction
    /// over `participants` shards (a plain record when 1). Returns its lsn,
    /// or None when nothing was staged.
    pub fn commit_staged(&mut self, txid: u64, participants: u16) -> Option<u64> {
        let i = self.staged.iter().position(|s| s.txid == txid)?;
        let s = self.staged.swap_remove(i);
        if s.payload.is_empty() {
            return None;
        }
        let tx = (participants > 1).then_some((txid, participants));
        self.touched = s.touched;
        let lsn = self.append(&s.payload, tx);
        if s.barrier {
            self.barrier = self.barrier.max(lsn);
        }
        Some(lsn)
    }
}

/// RESP text of `SELECT db` (unless db is 0) followed by the command: a
/// record's first command (records start in database 0).
pub fn encode<'a>(buf: &mut Vec<u8>, db: usize, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    if db != 0 {
        encode_select(buf, db);
    }
    crate::resp::write_command(buf, args);
}

fn encode_select(buf: &mut Vec<u8>, db: usize) {
    let mut n = itoa::Buffer::new();
    crate::resp::write_command(buf, [&b"SELECT"[..], n.format(db).as_bytes()].into_iter());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::rc::Rc;

    type Appended = Vec<(Vec<u8>, Option<(u64, u16)>)>;

    #[derive(Clone, Default)]
    pub struct Collect(Rc<RefCell<Appended>>);

    impl LogSink for Collect {
        fn append(&mut self, payload: &[u8], tx: Option<(u64, u16)>) -> u64 {
            let mut v = self.0.borrow_mut();
            v.push((payload.to_vec(), tx));
            v.len() as u64
        }
    }

    #[test]
    fn pending_keys_make_reads_wait_until_durable() {
        let sink = Collect::default();
        let mut s = LogState::default();
        s.attach(Box::new(sink.clone()), 0);
        s.begin_command();
        s.touch(0, 7);
        s.propagate(0, [&b"SET"[..], b"k", b"v"].into_iter());
        assert_eq!(s.take_wait(), 1);
        s.note_key(0, 8);
        assert_eq!(s.take_wait(), 0, "another key does not wait");
        s.note_key(0, 7);
        assert_eq!(s.take_wait(), 1);
        s.set_durable(1);
        s.note_key(0, 7);
        assert_eq!(s.take_wait(), 0);
        assert_eq!(s.pending_keys(), 0);
    }

    /// A sink numbering its records from `next`.
    struct From(Collect, u64);

    impl LogSink for From {
        fn append(&mut self, payload: &[u8], tx: Option<(u64, u16)>) -> u64 {
            self.0.append(payload, tx);
            self.1 += 1;
            self.1 - 1
        }
    }

    #[test]
    fn detach_and_attach_a_standby_sink() {
        let first = Collect::default();
        let mut s = LogState::default();
        s.attach(Box::new(first.clone()), 0);
        s.propagate(0, [&b"DEL"[..], b"a"].into_iter());
        assert_eq!(s.last_lsn(), 1);
        assert_eq!(s.take_wait(), 1);
        assert!(s.detach().is_some());
        assert!(!s.enabled());
        // Off: nothing is logged and nothing waits.
        s.begin_command();
        s.touch(0, 9);
        s.propagate(0, [&b"DEL"[..], b"b"].into_iter());
        assert_eq!(s.take_wait(), 0);
        assert_eq!(first.0.borrow().len(), 1);
        // A standby sink is only used once attached, after the last lsn.
        let second = Collect::default();
        s.set_standby(Box::new(From(second.clone(), 2)));
        s.propagate(0, [&b"DEL"[..], b"c"].into_iter());
        assert!(second.0.borrow().is_empty());
        assert!(s.attach_standby());
        assert_eq!(s.last_lsn(), 1);
        s.propagate(0, [&b"DEL"[..], b"d"].into_iter());
        assert_eq!(s.last_lsn(), 2);
        assert_eq!(second.0.borrow().len(), 1);
        assert!(s.attach_standby(), "no standby: stays on");
    }

    #[test]
    fn select_prefix_for_other_databases() {
        let mut buf = Vec::new();
        encode(&mut buf, 3, [&b"DEL"[..], b"k"].into_iter());
        assert_eq!(
            buf,
            b"*2\r\n$6\r\nSELECT\r\n$1\r\n3\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n".to_vec()
        );
    }

    #[test]
    fn staged_parts_commit_as_one_record() {
        let sink = Collect::default();
        let mut s = LogState::default();
        s.attach(Box::new(sink.clone()), 0);
        s.stage(42);
        s.touch(0, 1);
        s.propagate(0, [&b"DEL"[..], b"a"].into_iter());
        assert!(s.end_stage());
        assert!(sink.0.borrow().is_empty(), "nothing appended before commit");
        assert_eq!(s.commit_staged(42, 2), Some(1));
        assert_eq!(sink.0.borrow()[0].1, Some((42, 2)));
        s.note_key(0, 1);
        assert_eq!(s.take_wait(), 1);
        // A job that changed nothing stages nothing.
        s.stage(43);
        assert!(!s.end_stage());
        assert_eq!(s.commit_staged(43, 2), None);
        // One participant: a plain record.
        s.stage(44);
        s.propagate(0, [&b"DEL"[..], b"b"].into_iter());
        s.end_stage();
        s.commit_staged(44, 1);
        assert_eq!(sink.0.borrow()[1].1, None);
    }
}
