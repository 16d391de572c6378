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

/// Backpressure: reply bytes a connection lets pile up before it writes
/// them out and waits for the socket to take them, before it runs more of
/// the client's commands. A shard's execution of a batch stops there too
/// ([`Batch`]'s budget) and runs the rest once the replies before it left.
/// A client that pipelines requests and never reads thus holds about this
/// much per shard plus one reply, however much it sends: its further
/// requests wait in the kernel's socket buffers, and then in its own.
const REPLY_BUDGET: usize = 1024 * 1024;

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
    /// The client's socket (None for an internal client).
    stream: Option<Rc<Stream>>,
    /// Reply bytes after which output is written before more commands run
    /// (0: no limit, internal clients).
    budget: usize,
    /// `process` stopped at the budget with commands left in its buffer.
    paused: bool,
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
    let stream = Rc::new(stream);
    let mut conn = Conn::new(worker, client, !shared.requires_password());
    conn.stream = Some(stream.clone());
    conn.budget = REPLY_BUDGET;
    conn.run(&stream).await;
    // A read may still be in flight (the idle timeout ended the connection
    // while it waited): on io_uring it holds the socket open past the close
    // below, so the client would never see the connection end. Shutting it
    // down completes that read and sends the FIN.
    crate::sys::shutdown_socket(stream.raw_fd());
    conn.release();
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
            stream: None,
            budget: 0,
            paused: false,
        }
    }

    /// Frees the connection's buffers when it ends, and asks every worker
    /// to give freed memory back to the system when they were big.
    fn release(&mut self) {
        let held = self.buffer_memory();
        self.wbuf = Vec::new();
        self.splice = Vec::new();
        self.batches.clear();
        self.client.output_pending.store(0, Ordering::Relaxed);
        self.client.output_memory.store(0, Ordering::Relaxed);
        if held > 4 * REPLY_BUDGET {
            self.worker.shared.request_memory_collect();
        }
    }

    /// Bytes the reply buffers hold.
    fn buffer_memory(&self) -> usize {
        self.wbuf.capacity()
            + self.splice.capacity()
            + self
                .batches
                .iter()
                .flatten()
                .map(|b| b.memory())
                .sum::<usize>()
    }

    /// Publishes what CLIENT LIST sees of the query buffer (`qbuf`,
    /// `qbuf-free`).
    fn publish_query(&self, rbuf: &Vec<u8>) {
        self.client
            .query_buffer
            .store(rbuf.len(), Ordering::Relaxed);
        self.client
            .query_buffer_cap
            .store(rbuf.capacity(), Ordering::Relaxed);
    }

    /// Publishes what CLIENT LIST and the limits see of the reply buffers.
    fn publish_output(&self, pending: usize) {
        self.client.output_pending.store(pending, Ordering::Relaxed);
        self.client
            .output_memory
            .store(self.buffer_memory(), Ordering::Relaxed);
    }

    /// How many reply bytes may pile up before they are written: the
    /// budget, or half the hard limit when that is lower.
    fn reply_budget(&self) -> usize {
        if self.budget == 0 {
            return 0;
        }
        let hard = self.worker.shared.obuf_hard_normal();
        if hard == 0 {
            return self.budget;
        }
        usize::try_from(hard / 2)
            .unwrap_or(usize::MAX)
            .clamp(READ_CHUNK, self.budget)
    }

    /// Writes `wbuf[..upto]` to the socket and removes it from `wbuf`.
    /// Returns false when the connection must close: the socket failed, or
    /// the pending output passed `client-output-buffer-limit`'s hard limit
    /// (the soft limit is the clients cron's, `clients::cron`).
    async fn write_out(&mut self, upto: usize) -> bool {
        crate::latency::checkpoint();
        let upto = upto.min(self.wbuf.len());
        let Some(stream) = self.stream.clone() else {
            self.wbuf.drain(..upto);
            return true;
        };
        // No clone of the shared Arc per write: its count would bounce
        // between the workers' caches.
        let hard = self.worker.shared.obuf_hard_normal();
        if hard > 0 && self.wbuf.len() as u64 >= hard {
            self.publish_output(self.wbuf.len());
            log::warning(&format!(
                "Client {} scheduled to be closed ASAP for overcoming of output buffer limits.",
                self.client.info_line()
            ));
            return false;
        }
        let mut buf = std::mem::take(&mut self.wbuf);
        self.client
            .output_memory
            .store(self.buffer_memory() + buf.capacity(), Ordering::Relaxed);
        let mut done = 0;
        let mut ok = true;
        while done < upto {
            self.client
                .output_pending
                .store(buf.len() - done, Ordering::Relaxed);
            let (res, b) = stream.write_some(buf, done, upto).await;
            buf = b;
            match res {
                Ok(n) if n > 0 => {
                    done += n;
                    self.worker.shared.stats[self.worker.id]
                        .net_output
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                _ => {
                    ok = false;
                    break;
                }
            }
        }
        buf.drain(..done.min(buf.len()));
        // Keep a reply buffer, not the memory of one huge reply.
        if buf.is_empty() && buf.capacity() > 64 * READ_CHUNK {
            if buf.capacity() > 4 * REPLY_BUDGET {
                self.worker.shared.request_memory_collect();
            }
            buf = Vec::with_capacity(READ_CHUNK);
        }
        self.wbuf = buf;
        self.publish_output(self.wbuf.len());
        ok
    }

    async fn run(&mut self, stream: &Stream) {
        let mut rbuf: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut parser = Parser::new();
        let mut need = 0usize;
        // Commands left in `rbuf` when the replies reached the budget: they
        // run after the replies are written, before the next read.
        let mut more = false;
        self.client
            .query_buffer_cap
            .store(rbuf.capacity(), Ordering::Relaxed);
        self.publish_output(0);
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
            let (res, buf) = if more {
                (Ok(usize::MAX), rbuf)
            } else if timeout > 0 {
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
                Ok(usize::MAX) => 0,
                Ok(n) => n,
            };
            if self.client.killed.load(Ordering::Relaxed) {
                return;
            }
            stats.net_input.fetch_add(n as u64, Ordering::Relaxed);
            self.publish_query(&rbuf);

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
            more = std::mem::take(&mut self.paused) && consumed < rbuf.len() && !self.close;
            rbuf.drain(..consumed);
            self.publish_query(&rbuf);
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
            if !self.wbuf.is_empty() && !self.write_out(self.wbuf.len()).await {
                return;
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
        let budget = self.reply_budget();
        while !self.close {
            if budget > 0 && self.wbuf.len() >= budget {
                // Backpressure: write these replies before running more.
                self.paused = true;
                break;
            }
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
            Route::Conn(handler) => {
                self.flush().await;
                // LATENCY in the same read as a slow command sees it.
                crate::latency::checkpoint();
                *self
                    .client
                    .last_cmd
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = spec.name;
                admin::execute(self, handler, args).await;
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
        let budget = self.reply_budget();
        loop {
            self.send_round(direct, budget).await;
            if self.holes.is_empty() {
                return;
            }
            // A shard stopped at the budget: write the replies before the
            // first one still owed, then let it run the rest.
            let upto = self.holes.first().map_or(0, |h| h.0);
            if self.wait > 0 {
                self.worker.durable(std::mem::take(&mut self.wait)).await;
            }
            if !self.write_out(upto).await {
                self.close = true;
                self.holes.clear();
                self.wbuf.clear();
                for b in self.batches.iter_mut().flatten() {
                    b.clear();
                }
                return;
            }
            for h in &mut self.holes {
                h.0 -= upto.min(h.0);
            }
        }
    }

    /// Sends every batch with commands left, waits for the replies and
    /// splices them in; holes whose command did not run this round stay.
    async fn send_round(&mut self, direct: bool, budget: usize) {
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
            let Some(mut batch) = self.batches[s].take_if(|b| b.has_more()) else {
                continue;
            };
            batch.budget = budget;
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
        let mut left = Vec::new();
        for &(pos, s, i) in &self.holes {
            out.extend_from_slice(&self.wbuf[last..pos]);
            match &self.batches[s] {
                Some(b) if b.has_reply(i) => out.extend_from_slice(b.reply(i)),
                Some(_) => left.push((out.len(), s, i)),
                None => resp::write_error(&mut out, "ERR shard unavailable"),
            }
            last = pos;
        }
        out.extend_from_slice(&self.wbuf[last..]);
        std::mem::swap(&mut self.wbuf, &mut out);
        self.splice = out;
        // Keep the holes' capacity: `left` is empty (no allocation) unless
        // a shard stopped at the budget.
        self.holes.clear();
        self.holes.extend(left);
        // What the shard already sent: with a socket, the batch's replies
        // were all of `wbuf`, so they are its first bytes, before any hole
        // still owed.
        let sent: usize = self.batches.iter().flatten().map(|b| b.sent).sum();
        if sent > 0 {
            let sent = sent.min(self.wbuf.len());
            self.wbuf.drain(..sent);
            for h in &mut self.holes {
                h.0 -= sent.min(h.0);
            }
            self.worker.shared.stats[self.worker.id]
                .net_output
                .fetch_add(sent as u64, Ordering::Relaxed);
        }
        for b in self.batches.iter_mut().flatten() {
            if b.has_more() {
                b.advance();
            } else {
                b.clear();
            }
        }
        self.publish_output(self.wbuf.len());
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
