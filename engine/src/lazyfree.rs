//! Lazy freeing, as Redis 7.0's `lazyfree.c`: a value that takes many
//! allocations to free, or a whole emptied database, is handed to one
//! lazy-free thread per process instead of being freed inside the command.
//!
//! The engine decides *what* goes (the rule below) and sends it down a
//! channel; the server owns the thread that receives and drops it
//! ([`drop_garbage`] is its whole work). A shard without a channel (unit
//! tests, offline tools, a thread that is gone) frees everything at once.
//!
//! The rule is Redis's: a value goes to the thread when its
//! [`Value::free_effort`] exceeds [`LAZYFREE_THRESHOLD`] and the case asks
//! for it (UNLINK always; DEL, implicit deletes and expiry only with their
//! `lazyfree-lazy-*` directive); otherwise it is freed at once. An emptied
//! database (FLUSHALL/FLUSHDB ASYNC, or without an argument under
//! `lazyfree-lazy-user-flush yes`) always goes, whatever its size.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Sender;
use std::sync::Arc;

use crate::pagetable::Page;
use crate::value::Value;

/// Redis's `LAZYFREE_THRESHOLD`: values whose free effort is at most this
/// are freed at once (handing them over would cost more than freeing).
pub const LAZYFREE_THRESHOLD: usize = 64;

/// What the lazy-free thread drops.
pub enum Garbage {
    /// One value (a deleted or overwritten key's).
    Value(Value),
    /// The pages of an emptied database, holding `keys` keys.
    Pages { pages: Vec<Page>, keys: u64 },
}

// The thread takes these from the workers: they must be Send.
const _: fn() = || {
    fn is_send<T: Send>() {}
    is_send::<Garbage>();
};

impl Garbage {
    /// Objects this counts for in INFO: one per value, one per key of a
    /// database (as Redis counts `dictSize`).
    pub fn objects(&self) -> u64 {
        match self {
            Garbage::Value(_) => 1,
            Garbage::Pages { keys, .. } => *keys,
        }
    }
}

/// The process's lazy-free counters (INFO `lazyfree_pending_objects` and
/// `lazyfreed_objects`).
#[derive(Debug, Default)]
pub struct Counters {
    pending: AtomicU64,
    freed: AtomicU64,
}

impl Counters {
    /// Objects handed to the thread and not freed yet.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Relaxed)
    }

    /// Objects the thread has freed since start.
    pub fn freed(&self) -> u64 {
        self.freed.load(Ordering::Relaxed)
    }
}

/// Drops `g` and counts it as freed: the lazy-free thread's work, one job.
pub fn drop_garbage(g: Garbage, counters: &Counters) {
    let n = g.objects();
    drop(g);
    counters.pending.fetch_sub(n, Ordering::Relaxed);
    counters.freed.fetch_add(n, Ordering::Relaxed);
}

/// The `lazyfree-lazy-*` directives a shard applies (all `no` by default,
/// as in Redis 7.0).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Settings {
    /// `lazyfree-lazy-user-del`: DEL frees as UNLINK does.
    pub user_del: bool,
    /// `lazyfree-lazy-server-del`: implicit deletes (a SET over a value,
    /// RENAME over an existing key).
    pub server_del: bool,
    /// `lazyfree-lazy-expire`: expired keys' values.
    pub expire: bool,
    /// `lazyfree-lazy-user-flush`: FLUSHALL/FLUSHDB without an argument
    /// are ASYNC.
    pub user_flush: bool,
}

/// A shard's way to the lazy-free thread, and its settings.
#[derive(Debug)]
pub struct LazyFree {
    pub settings: Settings,
    /// Values whose free effort exceeds this go to the thread
    /// ([`LAZYFREE_THRESHOLD`]; lowered only by tests, through DEBUG).
    pub threshold: usize,
    sink: Option<(Sender<Garbage>, Arc<Counters>)>,
}

impl Default for LazyFree {
    /// No thread: everything is freed at once.
    fn default() -> Self {
        LazyFree {
            settings: Settings::default(),
            threshold: LAZYFREE_THRESHOLD,
            sink: None,
        }
    }
}

impl LazyFree {
    /// Frees through `tx`, counting in `counters`.
    pub fn new(tx: Sender<Garbage>, counters: Arc<Counters>) -> Self {
        LazyFree {
            sink: Some((tx, counters)),
            ..LazyFree::default()
        }
    }

    /// Hands `g` to the thread; returns false (having dropped it here)
    /// when there is no thread.
    fn send(&self, g: Garbage) -> bool {
        let Some((tx, counters)) = &self.sink else {
            return false;
        };
        let n = g.objects();
        counters.pending.fetch_add(n, Ordering::Relaxed);
        match tx.send(g) {
            Ok(()) => true,
            Err(back) => {
                counters.pending.fetch_sub(n, Ordering::Relaxed);
                drop(back.0);
                false
            }
        }
    }

    /// Frees a value that left the keyspace: on the thread when `lazy`
    /// (the case frees lazily: UNLINK, or its directive is on) and its
    /// free effort is above the threshold, else at once. Returns whether
    /// it went to the thread.
    pub fn free_value(&self, value: Value, lazy: bool) -> bool {
        if lazy && value.free_effort() > self.threshold {
            self.send(Garbage::Value(value))
        } else {
            false
        }
    }

    /// Frees the pages of an emptied database holding `keys` keys: on the
    /// thread when `lazy` (FLUSHALL/FLUSHDB ASYNC), whatever their size,
    /// as Redis's `emptyDbAsync`; else at once. Returns whether they went
    /// to the thread.
    pub fn free_pages(&self, pages: Vec<Page>, keys: u64, lazy: bool) -> bool {
        if lazy && keys > 0 {
            self.send(Garbage::Pages { pages, keys })
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn only_lazy_cases_above_the_threshold_go_to_the_thread() {
        let (tx, rx) = channel();
        let counters = Arc::new(Counters::default());
        let mut lf = LazyFree::new(tx, Arc::clone(&counters));
        let v = || Value::string(vec![7; 1000]);
        // A string is one allocation: never lazy at Redis's threshold.
        assert!(!lf.free_value(v(), true));
        lf.threshold = 0;
        assert!(!lf.free_value(v(), false), "not a lazy case");
        assert!(lf.free_value(v(), true));
        assert_eq!(counters.pending(), 1);
        assert!(!lf.free_pages(Vec::new(), 0, true), "nothing to free");
        assert!(lf.free_pages(Vec::new(), 5, true));
        assert!(!lf.free_pages(Vec::new(), 5, false));
        assert_eq!(counters.pending(), 6);
        let got: Vec<Garbage> = rx.try_iter().collect();
        assert_eq!(got.len(), 2);
        for g in got {
            drop_garbage(g, &counters);
        }
        assert_eq!((counters.pending(), counters.freed()), (0, 6));
    }

    use crate::testkit::TestCluster;
    use std::sync::mpsc::Receiver;

    /// A cluster of two shards whose lazy frees land in the returned
    /// channel, with threshold `threshold` and settings `settings`.
    fn cluster(threshold: usize, settings: Settings) -> (TestCluster, Receiver<Garbage>) {
        let (tx, rx) = channel();
        let counters = Arc::new(Counters::default());
        let c = TestCluster::new(2);
        for i in 0..2 {
            c.with_shard(i, |sh| {
                sh.lazyfree = LazyFree::new(tx.clone(), Arc::clone(&counters));
                sh.lazyfree.threshold = threshold;
                sh.lazyfree.settings = settings;
            });
        }
        (c, rx)
    }

    /// How many values and how many keys of emptied databases arrived.
    fn arrived(rx: &Receiver<Garbage>) -> (usize, u64) {
        rx.try_iter().fold((0, 0), |(v, k), g| match g {
            Garbage::Value(_) => (v + 1, k),
            Garbage::Pages { keys, .. } => (v, k + keys),
        })
    }

    fn fill(c: &TestCluster, db: usize, n: usize) {
        for i in 0..n {
            let k = format!("k{i}");
            assert_eq!(c.cmd(db, &["SET", &k, "v"]), "+OK\r\n");
        }
    }

    #[test]
    fn unlink_is_lazy_and_del_only_with_user_del() {
        // Redis's threshold: a string (one allocation) is never handed over.
        let (c, rx) = cluster(LAZYFREE_THRESHOLD, Settings::default());
        fill(&c, 0, 4);
        assert_eq!(c.cmd(0, &["UNLINK", "k0", "k1", "k2", "k3"]), ":4\r\n");
        assert_eq!(arrived(&rx), (0, 0));

        let (c, rx) = cluster(0, Settings::default());
        fill(&c, 0, 10);
        assert_eq!(c.cmd(0, &["UNLINK", "k0"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["UNLINK", "k0"]), ":0\r\n");
        assert_eq!(arrived(&rx), (1, 0));
        // Across shards, as one command.
        assert_eq!(c.cmd(0, &["UNLINK", "k1", "k2", "k3", "nope"]), ":3\r\n");
        assert_eq!(arrived(&rx), (3, 0));
        assert_eq!(c.cmd(0, &["DEL", "k4", "k5", "k6"]), ":3\r\n");
        assert_eq!(c.cmd(0, &["DEL", "k7"]), ":1\r\n");
        assert_eq!(arrived(&rx), (0, 0), "DEL frees at once by default");

        let (c, rx) = cluster(
            0,
            Settings {
                user_del: true,
                ..Settings::default()
            },
        );
        fill(&c, 0, 4);
        assert_eq!(c.cmd(0, &["DEL", "k0"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["DEL", "k1", "k2", "k3"]), ":3\r\n");
        assert_eq!(arrived(&rx), (4, 0));
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":0\r\n");
    }

    #[test]
    fn implicit_deletes_and_expiry_follow_their_directives() {
        let (c, rx) = cluster(0, Settings::default());
        fill(&c, 0, 2);
        c.cmd(0, &["SET", "k0", "w"]);
        c.cmd(0, &["RENAME", "k0", "k1"]);
        c.set_now(1_000);
        c.cmd(0, &["SET", "e", "v", "PXAT", "1500"]);
        c.set_now(2_000);
        assert_eq!(c.cmd(0, &["GET", "e"]), "$-1\r\n");
        assert_eq!(arrived(&rx), (0, 0));

        let (c, rx) = cluster(
            0,
            Settings {
                server_del: true,
                ..Settings::default()
            },
        );
        fill(&c, 0, 2);
        c.cmd(0, &["SET", "k0", "w"]);
        assert_eq!(arrived(&rx), (1, 0), "SET over a value");
        // k0 and k1: same shard or not, the old k1 goes.
        assert_eq!(c.cmd(0, &["RENAME", "k0", "k1"]), "+OK\r\n");
        assert_eq!(arrived(&rx), (1, 0), "RENAME over a key");
        assert_eq!(c.cmd(0, &["GET", "k1"]), "$1\r\nw\r\n");

        let (c, rx) = cluster(
            0,
            Settings {
                expire: true,
                ..Settings::default()
            },
        );
        c.set_now(1_000);
        for k in ["a", "b", "c"] {
            c.cmd(0, &["SET", k, "v", "PXAT", "1500"]);
        }
        c.cmd(0, &["SET", "d", "v"]);
        c.set_now(2_000);
        assert_eq!(c.cmd(0, &["GET", "a"]), "$-1\r\n");
        assert_eq!(arrived(&rx), (1, 0), "an expired key found by a lookup");
        assert_eq!(c.cmd(0, &["PEXPIREAT", "d", "1"]), ":1\r\n");
        assert_eq!(arrived(&rx), (1, 0), "an expiry set in the past");
        for i in 0..2 {
            c.with_shard(i, |sh| sh.active_expire_cycle());
        }
        assert_eq!(arrived(&rx), (2, 0), "active expiry");
    }

    #[test]
    fn flush_async_hands_the_pages_over_and_sync_does_not() {
        let (c, rx) = cluster(LAZYFREE_THRESHOLD, Settings::default());
        fill(&c, 0, 300);
        fill(&c, 3, 200);
        assert_eq!(c.cmd(0, &["FLUSHALL", "SYNC"]), "+OK\r\n");
        assert_eq!(arrived(&rx), (0, 0));
        fill(&c, 0, 300);
        fill(&c, 3, 200);
        assert_eq!(c.cmd(3, &["FLUSHDB"]), "+OK\r\n");
        assert_eq!(
            arrived(&rx),
            (0, 0),
            "no argument: lazyfree-lazy-user-flush no"
        );
        assert_eq!(c.cmd(3, &["DBSIZE"]), ":0\r\n");
        fill(&c, 3, 200);
        assert_eq!(c.cmd(3, &["FLUSHDB", "ASYNC"]), "+OK\r\n");
        assert_eq!(arrived(&rx), (0, 200));
        assert_eq!(c.cmd(3, &["DBSIZE"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":300\r\n");
        assert_eq!(c.cmd(0, &["FLUSHALL", "async"]), "+OK\r\n");
        assert_eq!(arrived(&rx), (0, 300));
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["FLUSHALL", "lazy"]), "-ERR syntax error\r\n");

        let (c, rx) = cluster(
            LAZYFREE_THRESHOLD,
            Settings {
                user_flush: true,
                ..Settings::default()
            },
        );
        fill(&c, 0, 100);
        assert_eq!(c.cmd(0, &["FLUSHALL"]), "+OK\r\n");
        assert_eq!(arrived(&rx), (0, 100));
        fill(&c, 0, 100);
        assert_eq!(c.cmd(0, &["FLUSHALL", "SYNC"]), "+OK\r\n");
        assert_eq!(arrived(&rx), (0, 0), "SYNC wins over the directive");
    }

    #[test]
    fn a_thread_that_is_gone_frees_at_once() {
        let (tx, rx) = channel();
        drop(rx);
        let counters = Arc::new(Counters::default());
        let mut lf = LazyFree::new(tx, Arc::clone(&counters));
        lf.threshold = 0;
        assert!(!lf.free_value(Value::string(vec![1]), true));
        assert_eq!(counters.pending(), 0);
        assert!(!LazyFree::default().free_value(Value::string(vec![1]), true));
    }
}
