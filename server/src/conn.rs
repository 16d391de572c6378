//! One client connection: read, parse, route, execute, reply.
//!
//! Everything that arrived in one read is handled as one batch: commands
//! for this thread's shard run at once (when no multi-shard command holds
//! locks here), commands for other shards are collected into one message
//! per shard, and all replies leave in one write, in request order. A
//! command that spans shards, or one the server itself answers, first waits
//! for the batch before it, so a connection's commands on one key always
//! run in order.

use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use engine::command::{self, flags, Args, Route};
use engine::resp::{self, Limits, Parsed, Parser};
use engine::{CommandSpec, Error};
use tokio::sync::oneshot;

use crate::clients::ClientHandle;
use crate::runtime::Stream;
use crate::worker::{Batch, Msg, Worker};
use crate::{admin, log, tx};

/// Smallest free space offered to each read.
const READ_CHUNK: usize = 16 * 1024;

pub struct Conn {
    pub worker: Rc<Worker>,
    pub client: Arc<ClientHandle>,
    pub db: usize,
    pub authenticated: bool,
    /// Set when the connection must close after the pending replies.
    pub close: bool,
    pub wbuf: Vec<u8>,
    splice: Vec<u8>,
    batches: Vec<Option<Box<Batch>>>,
    /// Replies still to come from a shard: (position in `wbuf`, shard, index
    /// in that shard's batch).
    holes: Vec<(usize, usize, usize)>,
    commands: u64,
    /// The replies in `wbuf` may leave once the local shard's log is
    /// durable up to this lsn (0: at once).
    wait: u64,
}

pub async fn serve(worker: Rc<Worker>, stream: Stream, peer: SocketAddr, local: SocketAddr) {
    let shared = worker.shared.clone();
    let stats = &shared.stats[worker.id];
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let _ = stream.set_nodelay();
    let keepalive = shared.config().tcp_keepalive;
    if keepalive > 0 {
        let _ = crate::sys::set_keepalive(stream.raw_fd(), keepalive);
    }

    // maxclients: counted before registering, like Redis.
    if shared.connected.fetch_add(1, Ordering::AcqRel) >= shared.maxclients() {
        shared.connected.fetch_sub(1, Ordering::AcqRel);
        stats.rejected.fetch_add(1, Ordering::Relaxed);
        let mut msg = Vec::new();
        resp::write_error(&mut msg, "ERR max number of clients reached");
        let _ = stream.write_all(msg).await;
        return;
    }

    if protected_mode_refuses(&shared, peer) {
        shared.connected.fetch_sub(1, Ordering::AcqRel);
        stats.rejected.fetch_add(1, Ordering::Relaxed);
        let _ = stream.write_all(PROTECTED_MODE_DENIED.to_vec()).await;
        return;
    }

    let id = shared.clients.next_id();
    let client = Arc::new(ClientHandle::new(id, peer, local, stream.raw_fd()));
    shared.clients.register(client.clone());
    let mut conn = Conn::new(worker, client, !shared.requires_password());
    conn.run(&stream).await;
    shared.clients.unregister(id);
    shared.connected.fetch_sub(1, Ordering::AcqRel);
    // `stream` closes when dropped, after unregistering (see Clients::kill).
}

/// Redis 7.0's refusal of a client in protected mode, word for word.
const PROTECTED_MODE_DENIED: &[u8] = b"-DENIED Redis is running in protected mode because protected mode is enabled and no password is set for the default user. In this mode connections are only accepted from the loopback interface. If you want to connect from external computers to Redis you may adopt one of the following solutions: 1) Just disable protected mode sending the command 'CONFIG SET protected-mode no' from the loopback interface by connecting to Redis from the same host the server is running, however MAKE SURE Redis is not publicly accessible from internet if you do so. Use CONFIG REWRITE to make this change permanent. 2) Alternatively you can just disable the protected mode by editing the Redis configuration file, and setting the protected mode option to 'no', and then restarting the server. 3) If you started the server manually just for testing, restart it with the '--protected-mode no' option. 4) Setup a an authentication password for the default user. NOTE: You only need to do one of the above things in order for the server to start accepting connections from the outside.\r\n";

/// Redis 7.0's protected mode (networking.c, clientAcceptHandler): with
/// `protected-mode yes` and no password for the default user, only clients
/// from exactly 127.0.0.1 or ::1 are served, whatever `bind` says (7.0
/// dropped 6.x's "no bind address" condition; redis-server 7.0.15 refuses
/// a client of 127.0.0.2 too). Read at every accept, so CONFIG SET of
/// protected-mode or requirepass applies to the next connection.
fn protected_mode_refuses(shared: &crate::shared::Shared, peer: SocketAddr) -> bool {
    let ip = peer.ip().to_canonical();
    let loopback = ip == std::net::Ipv4Addr::LOCALHOST || ip == std::net::Ipv6Addr::LOCALHOST;
    !loopback && !shared.requires_password() && shared.config().protected_mode
}

impl Conn {
    fn new(worker: Rc<Worker>, client: Arc<ClientHandle>, authenticated: bool) -> Conn {
        let shards = worker.shard_count();
        Conn {
            authenticated,
            worker,
            client,
            db: 0,
            close: false,
            wbuf: Vec::with_capacity(READ_CHUNK),
            splice: Vec::new(),
            batches: (0..shards).map(|_| None).collect(),
            holes: Vec::new(),
            commands: 0,
            wait: 0,
        }
    }

    async fn run(&mut self, stream: &Stream) {
        let mut rbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut parser = Parser::new();
        let mut need = 0usize;
        // One reference for the connection's life: cloning the Arc per read
        // would bounce its count between the workers' caches.
        let shared = self.worker.shared.clone();
        let stats = &shared.stats[self.worker.id];
        loop {
            // Room for the next read: at least a chunk, or what a pending
            // bulk argument is known to need.
            let want = need.saturating_sub(rbuf.len()).max(READ_CHUNK);
            if rbuf.capacity() - rbuf.len() < want {
                rbuf.reserve(want);
            }
            let timeout = shared.timeout_secs();
            let (res, buf) = if timeout > 0 {
                match crate::runtime::timeout(Duration::from_secs(timeout), stream.read(rbuf)).await
                {
                    Some(r) => r,
                    None => return, // idle timeout: close silently, like Redis
                }
            } else {
                stream.read(rbuf).await
            };
            rbuf = buf;
            let n = match res {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if self.client.killed.load(Ordering::Relaxed) {
                return;
            }
            stats.net_input.fetch_add(n as u64, Ordering::Relaxed);

            let limit = shared.query_buffer_limit();
            if limit > 0 && rbuf.len() as u64 > limit {
                log::warning(&format!(
                    "Closing client that reached max query buffer length: id={} addr={} qbuf={}",
                    self.client.id,
                    self.client.addr,
                    rbuf.len()
                ));
                return;
            }

            let consumed = self.process(&mut parser, &rbuf, &mut need).await;
            rbuf.drain(..consumed);
            self.client
                .query_buffer
                .store(rbuf.len(), Ordering::Relaxed);
            self.client.last_active.store(
                self.client.created.elapsed().as_millis() as u64,
                Ordering::Relaxed,
            );
            stats
                .commands
                .fetch_add(std::mem::take(&mut self.commands), Ordering::Relaxed);

            if self.wait > 0 {
                // A write of this batch, or a read of a key whose last
                // write is still in flight: wait for the log.
                self.worker.durable(std::mem::take(&mut self.wait)).await;
            }
            if !self.wbuf.is_empty() {
                stats
                    .net_output
                    .fetch_add(self.wbuf.len() as u64, Ordering::Relaxed);
                let out = std::mem::take(&mut self.wbuf);
                let (res, mut out) = stream.write_all(out).await;
                out.clear();
                // Keep a reply buffer, not the memory of one huge reply.
                if out.capacity() > 64 * READ_CHUNK {
                    out = Vec::with_capacity(READ_CHUNK);
                }
                self.wbuf = out;
                if res.is_err() {
                    return;
                }
            }
            if self.close {
                return;
            }
            // Do not keep a huge buffer around after a big request.
            if rbuf.is_empty() && rbuf.capacity() > 4 * READ_CHUNK {
                rbuf = Vec::with_capacity(READ_CHUNK);
            }
        }
    }

    /// Parses and executes every complete command in `buf`; returns how many
    /// bytes were consumed. `need` receives the buffer size a pending bulk
    /// argument needs.
    async fn process(&mut self, parser: &mut Parser, buf: &[u8], need: &mut usize) -> usize {
        let mut pos = 0;
        *need = 0;
        while !self.close {
            let limits = Limits {
                max_bulk_len: self.worker.shared.proto_max_bulk_len(),
                authenticated: self.authenticated,
            };
            match parser.parse(&buf[pos..], limits) {
                Err(e) => {
                    self.flush().await;
                    resp::write_error(&mut self.wbuf, &e.message());
                    log::verbose(&format!(
                        "Protocol error ({}) from client: id={} addr={}",
                        e.0, self.client.id, self.client.addr
                    ));
                    self.close = true;
                    parser.reset();
                    return buf.len();
                }
                Ok(Parsed::Incomplete { hint }) => {
                    *need = hint;
                    break;
                }
                Ok(Parsed::Skip { consumed }) => pos += consumed,
                Ok(Parsed::Command { consumed }) => {
                    let frame = &buf[pos..];
                    let args = Args::new(parser.source(frame), parser.args());
                    self.dispatch(args).await;
                    pos += consumed;
                }
            }
        }
        self.finish().await;
        pos
    }

    /// Routes and runs one command, or queues it in its shard's batch.
    async fn dispatch(&mut self, args: Args<'_>) {
        self.commands += 1;
        let Some(spec) = command::lookup(args.get(0)) else {
            self.error(command::unknown_command_error(args));
            return;
        };
        if !spec.arity_ok(args.len()) {
            self.error(Error::WrongArity(spec.name.to_string()));
            return;
        }
        if !self.authenticated && !spec.has_flag(flags::NO_AUTH) {
            self.error(Error::msg("NOAUTH Authentication required."));
            return;
        }
        let home = self.worker.id;
        match command::route(spec, args, self.worker.shard_count(), home) {
            Route::Shard(s) => self.run_on_shard(s, spec, args),
            route @ (Route::CrossKeys | Route::Global { .. }) => {
                self.flush().await;
                let reply = tx::run(&self.worker, spec, route, self.db, args).await;
                if matches!(reply, engine::Reply::Error(_)) {
                    self.count_error();
                }
                reply.write_to(&mut self.wbuf);
            }
            Route::Conn => {
                self.flush().await;
                *self
                    .client
                    .last_cmd
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = spec.name;
                admin::execute(self, spec, args).await;
            }
        }
    }

    fn run_on_shard(&mut self, s: usize, spec: &'static CommandSpec, args: Args<'_>) {
        let queued_here = self.batches[s].as_ref().is_some_and(|b| !b.is_empty());
        if s == self.worker.id && !queued_here && self.worker.can_run_now() {
            let wait = self
                .worker
                .execute_local(spec, self.db, args, &mut self.wbuf);
            self.wait = self.wait.max(wait);
            return;
        }
        let batch = self.batches[s].get_or_insert_with(Box::default);
        batch.push(spec, self.db, args);
        self.holes.push((self.wbuf.len(), s, batch.len() - 1));
    }

    /// Writes an error reply.
    pub fn error(&mut self, e: Error) {
        self.count_error();
        e.write_to(&mut self.wbuf);
    }

    fn count_error(&self) {
        self.worker.shared.stats[self.worker.id]
            .error_replies
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Sends the collected batches, waits for their replies and puts them in
    /// place, so `wbuf` holds every reply so far in request order.
    pub async fn flush(&mut self) {
        self.send_batches(false).await;
    }

    /// [`Conn::flush`] at the end of a read's commands. When every reply
    /// the connection owes comes from one other shard, that shard sends
    /// them to the client itself as soon as they may leave: the client's
    /// next request then overlaps the hop back here, which only returns
    /// the batch (and whatever the socket did not take at once).
    async fn finish(&mut self) {
        self.send_batches(true).await;
    }

    async fn send_batches(&mut self, direct: bool) {
        if self.holes.is_empty() {
            return;
        }
        // Every reply owed comes from one other shard: the holes say which.
        let one_other_shard = self
            .holes
            .first()
            .map(|h| h.1)
            .is_some_and(|s| s != self.worker.id && self.holes.iter().all(|h| h.1 == s));
        let socket = (direct
            && one_other_shard
            && self.wbuf.is_empty()
            && self.wait == 0
            && self.client.fd >= 0)
            .then_some(self.client.fd);
        let mut waiting = Vec::new();
        for s in 0..self.batches.len() {
            let Some(batch) = self.batches[s].take_if(|b| !b.is_empty()) else {
                continue;
            };
            let (tx, rx) = oneshot::channel();
            self.worker.send(
                s,
                Msg::Batch {
                    batch,
                    from: self.worker.id,
                    socket,
                    reply: tx,
                },
            );
            waiting.push((s, rx));
        }
        for (s, rx) in waiting {
            self.batches[s] = rx.await.ok();
        }
        let mut out = std::mem::take(&mut self.splice);
        out.clear();
        let mut last = 0;
        for &(pos, s, i) in &self.holes {
            out.extend_from_slice(&self.wbuf[last..pos]);
            match &self.batches[s] {
                Some(b) => out.extend_from_slice(b.reply(i)),
                None => resp::write_error(&mut out, "ERR shard unavailable"),
            }
            last = pos;
        }
        out.extend_from_slice(&self.wbuf[last..]);
        std::mem::swap(&mut self.wbuf, &mut out);
        self.splice = out;
        self.holes.clear();
        // What the shard already sent: with a socket, the batch's replies
        // were all of `wbuf`, so they are its first bytes.
        let sent: usize = self.batches.iter().flatten().map(|b| b.sent).sum();
        if sent > 0 {
            self.wbuf.drain(..sent.min(self.wbuf.len()));
            self.worker.shared.stats[self.worker.id]
                .net_output
                .fetch_add(sent as u64, Ordering::Relaxed);
        }
        for b in self.batches.iter_mut().flatten() {
            b.clear();
        }
    }
}

/// Runs `commands` as an internal client on `worker`'s thread, through the
/// normal routing (so multi-shard commands stay atomic and everything is
/// logged), and waits until all of it is durable. Returns the number of
/// commands that answered an error. Used to import a Redis AOF at start.
pub async fn run_internal(worker: Rc<Worker>, commands: &[Vec<Vec<u8>>]) -> u64 {
    let shared = worker.shared.clone();
    let addr = SocketAddr::from(([127, 0, 0, 1], 0));
    let client = Arc::new(ClientHandle::new(0, addr, addr, -1));
    let mut conn = Conn::new(worker, client, true);
    let errors =
        |s: &Arc<crate::shared::Shared>| crate::shared::sum(&s.stats, |st| &st.error_replies);
    let before = errors(&shared);
    let mut parser = Parser::new();
    let mut buf = Vec::new();
    for chunk in commands.chunks(512) {
        buf.clear();
        for args in chunk {
            resp::write_command(&mut buf, args.iter().map(Vec::as_slice));
        }
        let mut need = 0;
        conn.close = false;
        conn.process(&mut parser, &buf, &mut need).await;
        if conn.wait > 0 {
            conn.worker.durable(std::mem::take(&mut conn.wait)).await;
        }
        conn.wbuf.clear();
    }
    errors(&shared).saturating_sub(before)
}
