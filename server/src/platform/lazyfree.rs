//! The lazy-free thread: one per process (Redis's `BIO_LAZY_FREE`), which
//! drops what the shards hand it (big values, the pages of emptied
//! databases; `engine::lazyfree` decides what goes), so that UNLINK and
//! FLUSHALL ASYNC do not spend the freeing on an event loop.

use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, OnceLock};

use engine::lazyfree::{drop_garbage, Counters, Garbage, LazyFree, Settings};

use crate::config::Config;

/// The thread's channel and counters, once started.
static THREAD: OnceLock<(Sender<Garbage>, Arc<Counters>)> = OnceLock::new();

/// Starts the thread (once; later calls do nothing). If it cannot be
/// started the shards free everything at once, as before, and INFO's
/// counters stay 0.
pub fn start() {
    if THREAD.get().is_some() {
        return;
    }
    let (tx, rx) = channel::<Garbage>();
    let counters = Arc::new(Counters::default());
    let mine = Arc::clone(&counters);
    let spawned = std::thread::Builder::new()
        .name("lazyfree".into())
        .spawn(move || {
            for g in rx {
                drop_garbage(g, &mine);
            }
        });
    match spawned {
        Ok(_) => {
            let _ = THREAD.set((tx, counters));
        }
        Err(e) => crate::log::warning(&format!(
            "Can't start the lazy-free thread ({e}): values and flushed databases will be \
             freed by the workers"
        )),
    }
}

/// The `lazyfree-lazy-*` settings of `cfg`, as the shards apply them.
pub fn settings(cfg: &Config) -> Settings {
    Settings {
        user_del: cfg.lazyfree_lazy_user_del,
        server_del: cfg.lazyfree_lazy_server_del,
        expire: cfg.lazyfree_lazy_expire,
        user_flush: cfg.lazyfree_lazy_user_flush,
    }
}

/// A shard's way to the thread (or, with no thread, freeing at once).
pub fn for_shard(settings: Settings) -> LazyFree {
    let mut lf = match THREAD.get() {
        Some((tx, counters)) => LazyFree::new(tx.clone(), Arc::clone(counters)),
        None => LazyFree::default(),
    };
    lf.settings = settings;
    lf
}

/// INFO's `lazyfree_pending_objects` and `lazyfreed_objects`.
pub fn counters() -> (u64, u64) {
    THREAD
        .get()
        .map_or((0, 0), |(_, c)| (c.pending(), c.freed()))
}
