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
    pub killed: AtomicBool,
}

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
            killed: AtomicBool::new(false),
        }
    }

    pub fn name(&self) -> Vec<u8> {
        self.name.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub fn set_name(&self, name: &[u8]) {
        *self.name.lock().unwrap_or_else(|e| e.into_inner()) = name.to_vec();
    }

    /// One line of CLIENT LIST, in Redis's field order.
    pub fn info_line(&self) -> String {
        let age = self.created.elapsed().as_secs();
        let idle = self
            .created
            .elapsed()
            .as_millis()
            .saturating_sub(u128::from(self.last_active.load(Ordering::Relaxed)))
            / 1000;
        let qbuf = self.query_buffer.load(Ordering::Relaxed);
        let cmd = *self.last_cmd.lock().unwrap_or_else(|e| e.into_inner());
        format!(
            "id={} addr={} laddr={} fd={} name={} age={} idle={} flags=N db={} sub=0 psub=0 ssub=0 multi=-1 qbuf={} qbuf-free=0 argv-mem=0 multi-mem=0 rbs=16384 rbp=0 obl=0 oll=0 omem=0 tot-mem=0 events=r cmd={} user=default redir=-1 resp=2",
            self.id,
            self.addr,
            self.laddr,
            self.fd,
            String::from_utf8_lossy(&self.name()),
            age,
            idle,
            self.db.load(Ordering::Relaxed),
            qbuf,
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
