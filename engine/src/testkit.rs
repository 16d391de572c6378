//! An in-process cluster of shards for unit tests: commands are routed,
//! arity-checked and executed exactly as the server does it, but every
//! shard lives in this thread and the clock is set by the test.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use crate::command::{self, Args, Cluster, CommandSpec, Exec, Job, LocalBoxFuture, Route};
use crate::propagate::LogSink;
use crate::reply::Reply;
use crate::shard::Shard;

/// A fresh directory under the system temp dir, removed on drop, for unit
/// tests of this crate and the server's: `kv-<label>-<pid>-<n>`.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let p = std::env::temp_dir().join(format!("kv-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `content` to the file `name` in the directory; returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, content)
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub struct TestCluster {
    shards: RefCell<Vec<Shard>>,
    /// The cross-shard command running, whose jobs `run` checks against
    /// its row's logging rule.
    running: Cell<Option<&'static CommandSpec>>,
}

/// One record a shard logged: `(shard, payload)`.
pub type Record = (usize, Vec<u8>);

/// Records a [`TestCluster`]'s shards logged, in the order they were
/// appended.
#[derive(Clone, Default)]
pub struct Captured(pub Rc<RefCell<Vec<Record>>>);

struct CaptureSink {
    shard: usize,
    into: Captured,
}

impl LogSink for CaptureSink {
    fn append(&mut self, payload: &[u8], _tx: Option<(u64, u16)>) -> u64 {
        let mut v = self.into.0.borrow_mut();
        v.push((self.shard, payload.to_vec()));
        v.len() as u64
    }
}

/// Polls a future whose every step is immediately ready.
pub fn block_on<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("test future was not immediately ready"),
    }
}

impl TestCluster {
    pub fn new(shards: usize) -> Self {
        TestCluster {
            shards: RefCell::new((0..shards).map(|i| Shard::new(i, shards, 16)).collect()),
            running: Cell::new(None),
        }
    }

    /// Turns logging on for every shard; what they log lands in the
    /// returned [`Captured`]. Records of cross-shard commands are appended
    /// by each job as it runs (no transaction: the test cluster commits
    /// every part).
    pub fn capture_log(&self) -> Captured {
        let captured = Captured::default();
        for (i, s) in self.shards.borrow_mut().iter_mut().enumerate() {
            let sink = CaptureSink {
                shard: i,
                into: captured.clone(),
            };
            s.log.attach(Box::new(sink), 0);
        }
        captured
    }

    /// Sets every shard's clock (Unix ms).
    pub fn set_now(&self, ms: u64) {
        for s in self.shards.borrow_mut().iter_mut() {
            s.set_now_ms(ms);
        }
    }

    pub fn with_shard<R>(&self, i: usize, f: impl FnOnce(&mut Shard) -> R) -> R {
        f(&mut self.shards.borrow_mut()[i])
    }

    /// Runs one command on database `db` and returns the RESP reply bytes.
    pub fn exec(&self, db: usize, args: &[&[u8]]) -> Vec<u8> {
        let mut src = Vec::new();
        let mut ranges: Vec<Range<usize>> = Vec::new();
        for a in args {
            let start = src.len();
            src.extend_from_slice(a);
            ranges.push(start..src.len());
        }
        let args = Args::new(&src, &ranges);
        let mut out = Vec::new();
        let Some(spec) = command::lookup(args.get(0)) else {
            command::unknown_command_error(args).write_to(&mut out);
            return out;
        };
        if !spec.arity_ok(args.len()) {
            crate::Error::WrongArity(spec.name.to_string()).write_to(&mut out);
            return out;
        }
        let n = self.shards.borrow().len();
        match (command::route(spec, args, n, 0), spec.exec) {
            (Route::Shard(s), Exec::Shard(f) | Exec::Keys { shard: f, .. }) => {
                let mut shards = self.shards.borrow_mut();
                let mut ctx = shards[s].ctx(db);
                command::execute_shard(spec, f, &mut ctx, args, &mut out);
            }
            (Route::CrossKeys, Exec::Keys { cross, .. })
            | (Route::Global { .. }, Exec::Global { cross, .. }) => {
                self.running.set(Some(spec));
                block_on(cross(self, db, args.to_vecs())).write_to(&mut out);
                self.running.set(None);
            }
            (route, _) => panic!("test cluster cannot run {} ({route:?})", spec.name),
        }
        out
    }

    /// `exec` with string arguments, reply as a string (for readable asserts).
    pub fn cmd(&self, db: usize, line: &[&str]) -> String {
        let args: Vec<&[u8]> = line.iter().map(|s| s.as_bytes()).collect();
        String::from_utf8_lossy(&self.exec(db, &args)).into_owned()
    }
}

impl Cluster for TestCluster {
    fn shard_count(&self) -> usize {
        self.shards.borrow().len()
    }

    fn run(&self, shard: usize, job: Job) -> LocalBoxFuture<'_, Reply> {
        let mut shards = self.shards.borrow_mut();
        let sh = &mut shards[shard];
        let dirty = sh.stats.dirty;
        sh.log.begin_command();
        let r = job(sh);
        if let Some(spec) = self.running.get().filter(|_| sh.log.enabled()) {
            let (changed, wrote) = (sh.stats.dirty != dirty, sh.log.propagated());
            command::check_logged(sh, spec, changed, wrote, true);
        }
        Box::pin(std::future::ready(r))
    }
}
