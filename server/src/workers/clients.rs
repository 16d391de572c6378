//! The registry of connected clients, for CLIENT LIST / KILL / INFO and
//! `connected_clients`. Connections register on accept and unregister
//! before their socket closes; the registry lock is never taken per command.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// What other threads may know about a connection.
pub struct ClientHandle {
    pub id: u64,
    pub addr: SocketAddr,
    pub laddr: SocketAddr,
    pub fd: RawFd,
    pub created: Instant,
    pub name: Mutex<Vec<u8>>,
    pub db: AtomicUsize,
    /// Milliseconds since `created` of the last command.
    pub last_active: AtomicU64,
    pub last_cmd: Mutex<&'static str>,
    pub query_buffer: AtomicUsize,
    /// Capacity of the query buffer (`qbuf` + `qbuf-free`).
    pub query_buffer_cap: AtomicUsize,
    /// Reply bytes not yet accepted by the socket (`omem`): what
    /// `client-output-buffer-limit` is checked against.
    pub output_pending: AtomicUsize,
    /// Bytes the connection's reply buffers hold (capacity, pending or not).
    pub output_memory: AtomicUsize,
    /// Milliseconds since `created` when `output_pending` was first seen
    /// over the soft limit, 0 when it is not (the clients cron's only).
    pub soft_since_ms: AtomicU64,
    /// CLIENT NO-EVICT: `maxmemory-clients` never closes this client.
    pub no_evict: AtomicBool,
    pub killed: AtomicBool,
}

/// Memory a connection holds besides its buffers (its task, handle,
/// parser, batch slots), an estimate counted in `tot-mem`.
pub const CLIENT_FIXED_BYTES: usize = 2048;

impl ClientHandle {
    pub fn new(id: u64, addr: SocketAddr, laddr: SocketAddr, fd: RawFd) -> Self {
        ClientHandle {
            id,
            addr,
            laddr,
            fd,
            created: Instant::now(),
            name: Mutex::new(Vec::new()),
            db: AtomicUsize::new(0),
            last_active: AtomicU64::new(0),
            last_cmd: Mutex::new("NULL"),
            query_buffer: AtomicUsize::new(0),
            query_buffer_cap: AtomicUsize::new(0),
            output_pending: AtomicUsize::new(0),
            output_memory: AtomicUsize::new(0),
            soft_since_ms: AtomicU64::new(0),
            no_evict: AtomicBool::new(false),
            killed: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> Vec<u8> {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_name(&self, name: &[u8]) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_vec();
    }

    /// What the client holds in memory (`tot-mem`): query and reply
    /// buffers plus a fixed overhead; what `maxmemory-clients` counts.
    pub fn total_memory(&self) -> usize {
        self.query_buffer_cap.load(Ordering::Relaxed)
            + self.output_memory.load(Ordering::Relaxed)
            + CLIENT_FIXED_BYTES
    }

    /// One line of CLIENT LIST, in Redis's field order. Replies wait in one
    /// buffer, not in Redis's 16 KiB buffer plus a list of blocks: `obl` is
    /// 0, `oll` 1 while replies are pending, `omem` the pending bytes.
    pub fn info_line(&self) -> String {
        let age = self.created.elapsed().as_secs();
        let idle = self
            .created
            .elapsed()
            .as_millis()
            .saturating_sub(u128::from(self.last_active.load(Ordering::Relaxed)))
            / 1000;
        let qbuf = self.query_buffer.load(Ordering::Relaxed);
        let qcap = self.query_buffer_cap.load(Ordering::Relaxed).max(qbuf);
        let omem = self.output_pending.load(Ordering::Relaxed);
        let flags = if self.no_evict.load(Ordering::Relaxed) {
            "e"
        } else {
            "N"
        };
        let cmd = *self.last_cmd.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags={flags} db={} sub=0 psub=0 ssub=0 multi=-1 qbuf={} qbuf-free={} argv-mem=0 multi-mem=0 rbs={qcap} rbp={qbuf} obl=0 oll={} omem={omem} tot-mem={} events={} cmd={} user=default redir=-1 resp=2",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&self.name()),
            age,
            idle,
            self.db.load(Ordering::Relaxed),
            qbuf,
            qcap - qbuf,
            usize::from(omem > 0),
            self.total_memory(),
            if omem > 0 { "rw" } else { "r" },
            cmd,
        )
    }
}

#[derive(Default)]
pub struct Clients {
    map: Mutex<BTreeMap<u64, Arc<ClientHandle>>>,
    next_id: AtomicU64,
}

impl Clients {
    pub fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed) + 1
    }

    pub fn register(&self, c: Arc<ClientHandle>) {
        self.lock().insert(c.id, c);
    }

    /// Must be called before the client's socket is closed (see `kill`).
    pub fn unregister(&self, id: u64) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<ClientHandle>>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn all(&self) -> Vec<Arc<ClientHandle>> {
        self.lock().values().cloned().collect()
    }

    /// Kills every client `pred` selects; returns how many. Like Redis, a
    /// killed client is gone from the registry (CLIENT LIST, a second KILL)
    /// before the reply; its connection ends on its own thread. The socket
    /// is shut down while the registry lock is held, so it cannot have been
    /// closed (and its descriptor reused) by its connection meanwhile: the
    /// connection unregisters under this lock before it closes the socket.
    pub fn kill(&self, pred: impl Fn(&ClientHandle) -> bool) -> usize {
        let mut map = self.lock();
        let mut n = 0;
        map.retain(|_, c| {
            if pred(c) {
                c.killed.store(true, Ordering::Relaxed);
                crate::sys::shutdown_socket(c.fd);
                n += 1;
                false
            } else {
                true
            }
        });
        n
    }
}

/// The clients cron (worker 0, every 100 ms): closes clients whose pending
/// output stayed over `client-output-buffer-limit`'s soft limit for longer
/// than its seconds (or is over the hard limit, e.g. after CONFIG SET
/// lowered it), and, while all clients together hold more than
/// `maxmemory-clients`, closes the biggest first (Redis 7's client
/// eviction; CLIENT NO-EVICT exempts a client). A connection checks the
/// hard limit itself whenever it writes.
pub async fn cron(shared: std::sync::Arc<crate::shared::Shared>) {
    loop {
        crate::runtime::sleep(std::time::Duration::from_millis(100)).await;
        let (limit, max_clients_mem) = {
            let cfg = shared.config();
            // No `maxmemory` yet: a percentage of it is no limit.
            (
                cfg.client_output_buffer_limit[0],
                cfg.maxmemory_clients.bytes(0),
            )
        };
        let all = shared.clients.all();
        for c in &all {
            if over_output_limit(c, limit) {
                crate::log::warning(&format!(
                    "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                    c.info_line()
                ));
                shared.clients.kill(|h| h.id == c.id);
            }
        }
        if max_clients_mem == 0 {
            continue;
        }
        let mut sizes: Vec<(usize, &Arc<ClientHandle>)> =
            all.iter().map(|c| (c.total_memory(), c)).collect();
        let mut total: usize = sizes.iter().map(|s| s.0).sum();
        if total as u64 <= max_clients_mem {
            continue;
        }
        sizes.sort_by_key(|s| std::cmp::Reverse(s.0));
        for (size, c) in sizes {
            if total as u64 <= max_clients_mem {
                break;
            }
            if c.no_evict.load(Ordering::Relaxed) || c.killed.load(Ordering::Relaxed) {
                continue;
            }
            crate::log::notice(&format!("Evicting client: {}", c.info_line()));
            if shared.clients.kill(|h| h.id == c.id) > 0 {
                shared.evicted_clients.fetch_add(1, Ordering::Relaxed);
                total = total.saturating_sub(size);
            }
        }
    }
}

/// Redis's `checkClientOutputBufferLimits`: over the hard limit, or over
/// the soft limit for more than its seconds (whole seconds, as Redis
/// counts). Keeps the client's soft-limit clock.
fn over_output_limit(c: &ClientHandle, limit: crate::config::ObufLimit) -> bool {
    let pending = c.output_pending.load(Ordering::Relaxed) as u64;
    if limit.hard > 0 && pending >= limit.hard {
        return true;
    }
    if limit.soft == 0 || pending < limit.soft {
        c.soft_since_ms.store(0, Ordering::Relaxed);
        return false;
    }
    let now = c.created.elapsed().as_millis() as u64 + 1;
    let since = c.soft_since_ms.load(Ordering::Relaxed);
    if since == 0 {
        c.soft_since_ms.store(now, Ordering::Relaxed);
        return false;
    }
    (now - since.min(now)) / 1000 > limit.soft_seconds
}
