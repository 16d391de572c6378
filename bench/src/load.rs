//! The load generator: [`run`] drives a [`LoadSpec`] against a server and
//! returns a [`LoadReport`].
//!
//! # Shape
//!
//! `threads` OS threads, each with a tokio current-thread runtime running
//! `clients` connection tasks. The tasks of one thread share one
//! [`Recorder`] through an `Rc<RefCell<_>>` (they never run concurrently),
//! so recording a latency takes no lock and no atomic. The main thread only
//! waits, reports progress once a second, and merges the recorders at the
//! end.
//!
//! Every connection runs batches: it writes `pipeline` requests in one
//! `write`, then reads until all their replies are in, then starts the next
//! batch (redis-benchmark's `-P` does the same).
//!
//! # What a latency is
//!
//! Closed loop (no `--rate`): from the moment the request's batch was
//! written to the moment the read that completed the request's own reply
//! returned. Replies that arrive in the same read share that timestamp.
//!
//! With `--rate`: each connection has a schedule, batch k being due at
//! `start + offset + k * interval` (the offset spreads connections over one
//! interval). A server stall must not delay the very requests that would
//! have seen it and so hide it from the percentiles ("coordinated
//! omission"), so latency is counted from the batch's *due time*, not from
//! its (possibly late) write. But the generator's own lateness must not be
//! charged to the server either, and tokio's timer wakes up to ~1 ms late,
//! which is ten times a Redis reply. So each connection keeps a
//! [`PacedQueue`]: the batch's virtual start is `max(due, virtual end of the
//! previous batch)`, its virtual end is that plus the measured service time
//! (write to last reply), and a request's latency is `virtual start - due`
//! (time it would have queued behind earlier slow batches) plus its own
//! write-to-reply time. With a perfect timer and an idle generator this is
//! exactly "from the due time"; a server stall piles up in the queue term
//! just as it would for real clients arriving on schedule; timer lag
//! counts nowhere. The report's `send_lag` shows how late batches really
//! went out against the schedule; if it is large the generator is
//! overloaded and the achieved rate falls short of `--rate`.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::keys::{KeyGen, Rng};
use crate::resp::{self, ReplyKind};
use crate::spec::{CommandChooser, LoadSpec};
use crate::stats::{CommandStats, Percentiles, Recorder};

/// Why a run failed.
#[derive(Debug)]
pub enum LoadError {
    /// The spec does not make sense.
    Spec(String),
    /// Could not start a generator thread or its runtime.
    Setup(std::io::Error),
    Connect {
        addr: String,
        source: std::io::Error,
    },
    Io {
        addr: String,
        op: &'static str,
        source: std::io::Error,
    },
    Closed {
        addr: String,
    },
    Protocol {
        addr: String,
        error: resp::ProtocolError,
    },
    Timeout {
        addr: String,
        after: Duration,
    },
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LoadError::Spec(s) => write!(f, "{s}"),
            LoadError::Setup(e) => write!(f, "starting a generator thread: {e}"),
            LoadError::Connect { addr, source } => write!(f, "connecting to {addr}: {source}"),
            LoadError::Io { addr, op, source } => write!(f, "{op} on {addr}: {source}"),
            LoadError::Closed { addr } => write!(f, "{addr} closed the connection mid-batch"),
            LoadError::Protocol { addr, error } => write!(f, "from {addr}: {error}"),
            LoadError::Timeout { addr, after } => {
                write!(f, "no reply from {addr} within {} s", after.as_secs_f64())
            }
        }
    }
}

impl std::error::Error for LoadError {}

/// Sent to the progress callback about once a second.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// Since every connection was up.
    pub elapsed: Duration,
    /// Requests answered so far.
    pub requests: u64,
    pub errors: u64,
    /// Requests/s over the last reporting interval.
    pub recent_rate: f64,
    /// From the spec, for a percentage; `None` in duration-only runs.
    pub target_requests: Option<u64>,
    pub target_duration: Option<Duration>,
}

/// One command type's (or all commands') results.
#[derive(Debug, Clone, Serialize)]
pub struct CommandReport {
    pub name: String,
    pub requests: u64,
    pub errors: u64,
    pub nulls: u64,
    /// Requests/s over the whole run.
    pub throughput: f64,
    /// Milliseconds.
    pub latency_ms: Percentiles,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl CommandReport {
    fn of(stats: &CommandStats, secs: f64) -> Self {
        CommandReport {
            name: stats.name.clone(),
            requests: stats.requests(),
            errors: stats.errors,
            nulls: stats.nulls,
            throughput: stats.requests() as f64 / secs,
            latency_ms: Percentiles::of(&stats.latency),
            first_error: stats.first_error.clone(),
        }
    }
}

/// One second of the run.
#[derive(Debug, Clone, Serialize)]
pub struct SecondReport {
    /// Seconds since the start; this entry covers `[second, second+1)`.
    pub second: u64,
    /// Length of the interval in seconds (below 1 for the last one).
    pub length: f64,
    pub requests: u64,
    pub errors: u64,
    /// Requests/s in this interval.
    pub throughput: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

/// The result of a run.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    pub spec: LoadSpec,
    /// From every connection being up to the last reply.
    pub duration_secs: f64,
    /// Every command type together.
    pub total: CommandReport,
    pub commands: Vec<CommandReport>,
    pub timeline: Vec<SecondReport>,
    /// With `--rate`: how late batches were written against their schedule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub send_lag_ms: Option<Percentiles>,
    /// All the histograms, merged, for callers that want more than the
    /// summary (scenarios).
    #[serde(skip)]
    pub recorder: Recorder,
}

impl LoadReport {
    fn new(spec: &LoadSpec, recorder: Recorder, elapsed: Duration) -> Self {
        let secs = elapsed.as_secs_f64().max(1e-9);
        let total = CommandReport::of(&recorder.total(), secs);
        let commands = recorder
            .commands
            .iter()
            .map(|c| CommandReport::of(c, secs))
            .collect();
        let timeline = recorder
            .timeline
            .seconds
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let length = (secs - i as f64).clamp(1e-9, 1.0);
                let p = Percentiles::of(&s.latency);
                SecondReport {
                    second: i as u64,
                    length,
                    requests: s.latency.len(),
                    errors: s.errors,
                    throughput: s.latency.len() as f64 / length,
                    p50_ms: p.p50,
                    p99_ms: p.p99,
                    max_ms: p.max,
                }
            })
            .collect();
        let send_lag_ms = spec.rate.map(|_| Percentiles::of(&recorder.send_lag));
        LoadReport {
            spec: spec.clone(),
            duration_secs: secs,
            total,
            commands,
            timeline,
            send_lag_ms,
            recorder,
        }
    }
}

/// A counter on its own cache line, written by one thread.
#[derive(Default)]
#[repr(align(64))]
struct Counter(AtomicU64);

/// What the generator threads share.
struct Shared {
    spec: LoadSpec,
    names: Vec<String>,
    chooser: CommandChooser,
    /// Requests not yet handed to a connection (requests-bounded runs).
    budget: AtomicU64,
    stop: AtomicBool,
    failure: Mutex<Option<LoadError>>,
    sequential: Arc<AtomicU64>,
    /// Bytes `__data__` is cut from: printable and random, so values do
    /// not compress to nothing; one copy for all connections.
    data: Vec<u8>,
    /// Two waits: every connection up, then the start time set.
    barrier: Barrier,
    start: OnceLock<Instant>,
    done: Vec<Counter>,
    errors: Vec<Counter>,
}

impl Shared {
    fn fail(&self, e: LoadError) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
    }

    /// Up to `want` requests from the budget; 0 when it is spent or the run
    /// is stopping.
    fn take(&self, want: u64) -> u64 {
        if self.stop.load(Ordering::Relaxed) {
            return 0;
        }
        if self.spec.stop.requests.is_none() {
            return want;
        }
        self.budget
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                (left > 0).then(|| left - want.min(left))
            })
            .map_or(0, |left| want.min(left))
    }

    fn total(&self, counters: &[Counter]) -> u64 {
        counters.iter().map(|c| c.0.load(Ordering::Relaxed)).sum()
    }
}

/// Runs `spec` to the end, calling `progress` about once a second from the
/// calling thread.
pub fn run(spec: &LoadSpec, mut progress: impl FnMut(&Progress)) -> Result<LoadReport, LoadError> {
    spec.validate().map_err(LoadError::Spec)?;
    let shared = Arc::new(Shared {
        spec: spec.clone(),
        names: spec.command_names(),
        chooser: CommandChooser::new(spec.commands.iter().map(|c| c.weight)),
        budget: AtomicU64::new(spec.stop.requests.unwrap_or(0)),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        sequential: KeyGen::shared_counter(),
        data: {
            let mut rng = Rng::new(spec.seed ^ 0x5EED_DA7A);
            (0..spec.data_size.max)
                .map(|_| b'a' + (rng.next_u64() % 26) as u8)
                .collect()
        },
        barrier: Barrier::new(spec.threads + 1),
        start: OnceLock::new(),
        done: (0..spec.threads).map(|_| Counter::default()).collect(),
        errors: (0..spec.threads).map(|_| Counter::default()).collect(),
    });

    let mut handles = Vec::with_capacity(spec.threads);
    for t in 0..spec.threads {
        let for_thread = shared.clone();
        let handle = std::thread::Builder::new()
            .name(format!("bench-{t}"))
            .spawn(move || generator_thread(&for_thread, t));
        match handle {
            Ok(h) => handles.push(h),
            Err(e) => {
                // The threads already started wait at the barrier forever;
                // there is no clean way back, so fail loudly.
                shared.fail(LoadError::Setup(e));
                return Err(take_failure(&shared).unwrap_or(LoadError::Spec("thread".into())));
            }
        }
    }

    shared.barrier.wait(); // every connection is up (or failed)
    let start = Instant::now();
    let _ = shared.start.set(start);
    shared.barrier.wait();

    let deadline = spec.stop.duration.map(|d| start + d);
    let mut last_report = start;
    let mut last_done = 0;
    while !handles.iter().all(|h| h.is_finished()) {
        std::thread::sleep(Duration::from_millis(20));
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            shared.stop.store(true, Ordering::Relaxed);
        }
        if now.duration_since(last_report) >= Duration::from_secs(1) {
            let done = shared.total(&shared.done);
            let secs = now.duration_since(last_report).as_secs_f64();
            progress(&Progress {
                elapsed: now.duration_since(start),
                requests: done,
                errors: shared.total(&shared.errors),
                recent_rate: (done - last_done) as f64 / secs,
                target_requests: spec.stop.requests,
                target_duration: spec.stop.duration,
            });
            last_report = now;
            last_done = done;
        }
    }

    let mut merged = Recorder::new(&shared.names);
    let mut end = start;
    for h in handles {
        match h.join() {
            Ok(Some((rec, finished))) => {
                merged.merge(&rec);
                end = end.max(finished);
            }
            Ok(None) => {}
            Err(_) => shared.fail(LoadError::Spec("a generator thread panicked".into())),
        }
    }
    if let Some(e) = take_failure(&shared) {
        return Err(e);
    }
    Ok(LoadReport::new(spec, merged, end.duration_since(start)))
}

fn take_failure(shared: &Shared) -> Option<LoadError> {
    shared.failure.lock().ok().and_then(|mut f| f.take())
}

/// One generator thread: connect its clients, wait for the start, run them.
/// Returns its recorder and when its last connection finished.
fn generator_thread(shared: &Arc<Shared>, thread: usize) -> Option<(Recorder, Instant)> {
    let spec = &shared.spec;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => {
            shared.fail(LoadError::Setup(e));
            shared.barrier.wait();
            shared.barrier.wait();
            return None;
        }
    };
    let addr = format!("{}:{}", spec.host, spec.port);
    let streams = runtime.block_on(async {
        let mut streams = Vec::with_capacity(spec.clients);
        for _ in 0..spec.clients {
            let s = TcpStream::connect(&addr)
                .await
                .and_then(|s| s.set_nodelay(true).map(|()| s));
            match s {
                Ok(s) => streams.push(s),
                Err(source) => {
                    shared.fail(LoadError::Connect {
                        addr: addr.clone(),
                        source,
                    });
                    break;
                }
            }
        }
        streams
    });
    shared.barrier.wait();
    shared.barrier.wait();
    let start = *shared.start.get()?;
    if shared.stop.load(Ordering::Relaxed) {
        return None;
    }

    let recorder = Rc::new(RefCell::new(Recorder::new(&shared.names)));
    let local = tokio::task::LocalSet::new();
    let finished = local.block_on(&runtime, async {
        let mut tasks = Vec::with_capacity(streams.len());
        for (i, stream) in streams.into_iter().enumerate() {
            let index = thread * spec.clients + i;
            let conn = Connection::new(shared.clone(), recorder.clone(), index, thread, start);
            let addr = addr.clone();
            tasks.push(tokio::task::spawn_local(async move {
                if let Err(e) = conn.run(stream, &addr).await {
                    conn.shared.fail(e);
                }
                Instant::now()
            }));
        }
        let mut last = start;
        for t in tasks {
            if let Ok(at) = t.await {
                last = last.max(at);
            }
        }
        last
    });
    let rec = recorder.borrow().clone();
    Some((rec, finished))
}

/// Coordinated-omission correction of one paced connection: a queue in
/// which batches arrive at their due times and take their measured service
/// times (see the module doc).
#[derive(Debug, Clone, Copy, Default)]
pub struct PacedQueue {
    /// Virtual end of the previous batch.
    busy_until: Option<Instant>,
}

impl PacedQueue {
    /// How long a batch due at `due` waits for the connection.
    pub fn queued(&self, due: Instant) -> Duration {
        self.busy_until
            .map_or(Duration::ZERO, |b| b.saturating_duration_since(due))
    }

    /// The batch due at `due` waited `queued` and took `service` from its
    /// write to its last reply.
    pub fn finish(&mut self, due: Instant, queued: Duration, service: Duration) {
        self.busy_until = Some(due + queued + service);
    }
}

/// One connection's state.
struct Connection {
    shared: Arc<Shared>,
    recorder: Rc<RefCell<Recorder>>,
    thread: usize,
    rng: Rng,
    keys: KeyGen,
    start: Instant,
    /// With `--rate`: when the first batch is due, and the gap between
    /// batches.
    schedule: Option<(Instant, Duration)>,
}

impl Connection {
    fn new(
        shared: Arc<Shared>,
        recorder: Rc<RefCell<Recorder>>,
        index: usize,
        thread: usize,
        start: Instant,
    ) -> Self {
        let spec = &shared.spec;
        let rng = Rng::new(spec.seed ^ (index as u64).wrapping_mul(0xA24B_AED4_963E_E407));
        let keys = KeyGen::new(
            spec.key_pattern,
            spec.key_min,
            spec.key_max,
            shared.sequential.clone(),
        );
        let schedule = spec.rate.map(|rate| {
            let per_conn = rate / spec.connections() as f64;
            let interval = Duration::from_secs_f64(spec.pipeline as f64 / per_conn);
            let offset = interval.mul_f64(index as f64 / spec.connections() as f64);
            (start + offset, interval)
        });
        Connection {
            shared,
            recorder,
            thread,
            rng,
            keys,
            start,
            schedule,
        }
    }

    async fn run(&self, mut stream: TcpStream, addr: &str) -> Result<(), LoadError> {
        // `self` is shared with the spawn wrapper; keep mutable state local.
        let mut rng = self.rng.clone();
        let spec = &self.shared.spec;
        let deadline = spec.stop.duration.map(|d| self.start + d);
        let mut out = Vec::with_capacity(spec.pipeline * 64);
        let mut kinds: Vec<usize> = Vec::with_capacity(spec.pipeline);
        let mut key = Vec::with_capacity(spec.key_prefix.len() + 20);
        let mut inbuf: Vec<u8> = Vec::with_capacity(64 * 1024);
        let mut due = self.schedule.map(|(first, _)| first);
        let mut paced = PacedQueue::default();
        let io = |op: &'static str| {
            move |source| LoadError::Io {
                addr: addr.to_owned(),
                op,
                source,
            }
        };

        loop {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(());
            }
            // Pacing: wait for the due time, unless already late.
            let this_due = due;
            if let (Some(at), Some((_, interval))) = (due, self.schedule) {
                if at > Instant::now() {
                    if deadline.is_some_and(|d| at >= d) {
                        return Ok(());
                    }
                    tokio::time::sleep_until(at.into()).await;
                }
                due = Some(at + interval);
            }
            let n = self.shared.take(spec.pipeline as u64);
            if n == 0 {
                return Ok(());
            }

            out.clear();
            kinds.clear();
            for _ in 0..n {
                let c = self.shared.chooser.choose(&mut rng);
                let Some(cmd) = spec.commands.get(c) else {
                    continue;
                };
                key.clear();
                key.extend_from_slice(spec.key_prefix.as_bytes());
                key.extend_from_slice(
                    itoa::Buffer::new()
                        .format(self.keys.next(&mut rng))
                        .as_bytes(),
                );
                let size = if cmd.uses_data() {
                    spec.data_size.draw(&mut rng) as usize
                } else {
                    0
                };
                let expiry = match (cmd.with_expiry, spec.expiry) {
                    (true, Some(r)) => Some(r.draw(&mut rng)),
                    _ => None,
                };
                cmd.encode(
                    &mut out,
                    &key,
                    self.shared.data.get(..size).unwrap_or_default(),
                    expiry,
                );
                kinds.push(c);
            }

            // Taken before the write: a client's request is out when it
            // hands it to the kernel, and a long write (a big batch into a
            // full socket buffer) is part of what the server makes it wait.
            let written = Instant::now();
            stream.write_all(&out).await.map_err(io("write"))?;
            // Time this batch would have queued behind earlier ones with a
            // perfect timer (0 in closed loop); see the module doc.
            let queued = match this_due {
                Some(due) => {
                    self.recorder
                        .borrow_mut()
                        .record_send_lag(written.saturating_duration_since(due));
                    paced.queued(due)
                }
                None => Duration::ZERO,
            };
            let mut service = Duration::ZERO;

            // Read until every reply of the batch is in.
            let mut answered = 0;
            let mut errors = 0;
            let mut parsed = 0; // bytes of `inbuf` already consumed
            while answered < kinds.len() {
                if parsed == inbuf.len() {
                    inbuf.clear();
                    parsed = 0;
                } else if parsed > 0 && inbuf.capacity() - inbuf.len() < 4096 {
                    inbuf.drain(..parsed);
                    parsed = 0;
                }
                if inbuf.capacity() - inbuf.len() < 4096 {
                    inbuf.reserve(64 * 1024);
                }
                let read =
                    tokio::time::timeout(spec.reply_timeout, stream.read_buf(&mut inbuf)).await;
                let got = match read {
                    Err(_) => {
                        return Err(LoadError::Timeout {
                            addr: addr.to_owned(),
                            after: spec.reply_timeout,
                        })
                    }
                    Ok(r) => r.map_err(io("read"))?,
                };
                if got == 0 {
                    return Err(LoadError::Closed {
                        addr: addr.to_owned(),
                    });
                }
                let now = Instant::now();
                service = now.saturating_duration_since(written);
                let mut rec = self.recorder.borrow_mut();
                while answered < kinds.len() {
                    let rest = inbuf.get(parsed..).unwrap_or_default();
                    let reply = resp::skim_reply(rest).map_err(|error| LoadError::Protocol {
                        addr: addr.to_owned(),
                        error,
                    })?;
                    let Some(reply) = reply else { break };
                    let text = rest.get(..reply.len).unwrap_or_default();
                    let is_error = reply.kind == ReplyKind::Error;
                    rec.record(
                        kinds.get(answered).copied().unwrap_or(0),
                        queued + now.saturating_duration_since(written),
                        now.saturating_duration_since(self.start),
                        is_error.then_some(text),
                        reply.kind == ReplyKind::Null,
                    );
                    errors += u64::from(is_error);
                    parsed += reply.len;
                    answered += 1;
                }
            }
            if parsed < inbuf.len() {
                return Err(LoadError::Protocol {
                    addr: addr.to_owned(),
                    error: resp::ProtocolError {
                        offset: parsed,
                        reason: "more replies than requests",
                    },
                });
            }
            inbuf.clear();
            if let Some(due) = this_due {
                paced.finish(due, queued, service);
            }
            let done = &self.shared.done[self.thread].0;
            done.store(done.load(Ordering::Relaxed) + n, Ordering::Relaxed);
            if errors > 0 {
                let e = &self.shared.errors[self.thread].0;
                e.store(e.load(Ordering::Relaxed) + errors, Ordering::Relaxed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPattern;
    use crate::spec::{name_commands, CommandTemplate, StopAfter};
    use std::io::{Read, Write};
    use std::net::TcpListener;

    /// A RESP server on a loopback port answering by command name, replies
    /// split over two writes so the client sees partial replies. Records the
    /// keys of SETs.
    struct FakeServer {
        port: u16,
        set_keys: Arc<Mutex<Vec<Vec<u8>>>>,
    }

    /// Command word and first argument of one request.
    fn words(req: &[u8]) -> (Vec<u8>, Vec<u8>) {
        let mut parts = req.split(|&b| b == b'\n').skip(1);
        let mut next_bulk = || {
            let _len = parts.next();
            parts
                .next()
                .map(|w| w.strip_suffix(b"\r").unwrap_or(w).to_vec())
                .unwrap_or_default()
        };
        let name = next_bulk().to_ascii_uppercase();
        (name, next_bulk())
    }

    fn answer(name: &[u8]) -> &'static [u8] {
        match name {
            b"SET" | b"HSET" => b"+OK\r\n",
            b"GET" => b"$-1\r\n",
            b"NEST" => b"*2\r\n*2\r\n:1\r\n-ERR inner\r\n%1\r\n+a\r\n$3\r\nb\r\n\r\n",
            b"SLOW" => {
                std::thread::sleep(Duration::from_millis(20));
                b"+OK\r\n"
            }
            b"STALL" => {
                std::thread::sleep(Duration::from_millis(100));
                b"+OK\r\n"
            }
            _ => b"-ERR unknown command\r\n",
        }
    }

    impl FakeServer {
        fn start() -> FakeServer {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
            let port = listener.local_addr().expect("local addr").port();
            let set_keys = Arc::new(Mutex::new(Vec::new()));
            let keys = set_keys.clone();
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(mut conn) = conn else { return };
                    let keys = keys.clone();
                    std::thread::spawn(move || {
                        let _ = conn.set_nodelay(true);
                        let mut buf = Vec::new();
                        let mut chunk = [0u8; 4096];
                        loop {
                            let n = match conn.read(&mut chunk) {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            buf.extend_from_slice(&chunk[..n]);
                            let mut out = Vec::new();
                            while let Ok(Some(req)) = resp::skim_reply(&buf) {
                                let (name, first) = words(&buf[..req.len]);
                                if name == b"SET" {
                                    if let Ok(mut k) = keys.lock() {
                                        k.push(first);
                                    }
                                }
                                out.extend_from_slice(answer(&name));
                                buf.drain(..req.len);
                            }
                            let half = out.len() / 2;
                            if conn.write_all(&out[..half]).is_err() {
                                return;
                            }
                            std::thread::sleep(Duration::from_micros(50));
                            if conn.write_all(&out[half..]).is_err() {
                                return;
                            }
                        }
                    });
                }
            });
            FakeServer { port, set_keys }
        }
    }

    fn spec_with(port: u16, templates: &[&str], weights: &[u32]) -> LoadSpec {
        let mut spec = LoadSpec::set_get(1, 1);
        spec.port = port;
        spec.commands = templates
            .iter()
            .zip(weights)
            .filter_map(|(t, &w)| CommandTemplate::parse(t, w).ok())
            .collect();
        name_commands(&mut spec.commands);
        spec
    }

    fn by_name<'a>(r: &'a LoadReport, name: &str) -> &'a CommandReport {
        r.commands
            .iter()
            .find(|c| c.name == name)
            .unwrap_or_else(|| panic!("no {name} in report"))
    }

    #[test]
    fn error_and_nested_replies_are_counted_not_fatal() {
        let server = FakeServer::start();
        let mut spec = spec_with(
            server.port,
            &[
                "SET __key__ __data__",
                "GET __key__",
                "NEST",
                "FAIL __key__",
            ],
            &[1, 1, 1, 1],
        );
        spec.threads = 2;
        spec.clients = 3;
        spec.pipeline = 4;
        spec.stop.requests = Some(1_001);
        let mut ticks = 0;
        let r = run(&spec, |_| ticks += 1).expect("run completes");
        assert_eq!(r.total.requests, 1_001, "exactly the requested count");
        let fail = by_name(&r, "FAIL");
        assert!(fail.requests > 100);
        assert_eq!(fail.errors, fail.requests);
        assert_eq!(fail.first_error.as_deref(), Some("-ERR unknown command"));
        let get = by_name(&r, "GET");
        assert_eq!((get.errors, get.nulls), (0, get.requests));
        assert_eq!(
            by_name(&r, "NEST").errors,
            0,
            "an error inside an array is a value"
        );
        assert_eq!(r.total.errors, fail.requests);
        let in_timeline: u64 = r.timeline.iter().map(|s| s.requests).sum();
        assert_eq!(in_timeline, 1_001);
        let json = serde_json::to_string(&r).expect("report serialises");
        assert!(json.contains("\"timeline\"") && json.contains("\"p99_9\""));
    }

    #[test]
    fn latency_spans_write_to_reply() {
        let server = FakeServer::start();
        let mut spec = spec_with(server.port, &["SLOW"], &[1]);
        spec.clients = 2;
        spec.stop.requests = Some(10);
        let r = run(&spec, |_| {}).expect("run completes");
        let l = r.total.latency_ms;
        assert!(l.p50 >= 20.0 && l.max < 1_000.0, "{l:?}");
    }

    #[test]
    fn rate_paces_requests() {
        let server = FakeServer::start();
        let mut spec = spec_with(server.port, &["GET __key__"], &[1]);
        spec.clients = 2;
        spec.rate = Some(200.0);
        spec.stop = StopAfter {
            requests: None,
            duration: Some(Duration::from_millis(1_500)),
        };
        let r = run(&spec, |_| {}).expect("run completes");
        assert!(
            (250..=350).contains(&r.total.requests),
            "{} requests in 1.5 s at 200/s",
            r.total.requests
        );
        assert!(r.send_lag_ms.is_some());
    }

    #[test]
    fn paced_queue_charges_server_time_not_timer_lag() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        // Quick replies: whenever the batches were really written (the
        // timer may be late), none waits for an earlier one.
        let mut q = PacedQueue::default();
        for k in 0..5 {
            let due = t0 + ms(10 * k);
            assert_eq!(q.queued(due), Duration::ZERO);
            q.finish(due, Duration::ZERO, ms(1));
        }
        // 100 ms replies, one due every 10 ms: batch k waits 90k ms.
        let mut q = PacedQueue::default();
        for k in 0..5u64 {
            let due = t0 + ms(10 * k);
            let queued = q.queued(due);
            assert_eq!(queued, ms(90 * k), "batch {k}");
            q.finish(due, queued, ms(100));
        }
        // The queue drains once the server is quick again.
        let due = t0 + ms(1_000);
        assert_eq!(q.queued(due), Duration::ZERO);
    }

    #[test]
    fn rate_counts_a_stall_from_the_due_time() {
        // The server takes 100 ms per request; the schedule wants one every
        // 10 ms. Request k is due at 10k ms but can only go out at ~100k ms,
        // so its latency from the due time is ~90k + 100 ms. Measured from
        // the late write it would stay at ~100 ms and hide the backlog.
        let server = FakeServer::start();
        let mut spec = spec_with(server.port, &["STALL"], &[1]);
        spec.clients = 1;
        spec.rate = Some(100.0);
        spec.stop.requests = Some(5);
        let r = run(&spec, |_| {}).expect("run completes");
        let l = r.total.latency_ms;
        assert!(l.p50 >= 100.0, "{l:?}");
        assert!(l.max >= 400.0, "the backlog shows: {l:?}");

        spec.rate = None;
        let closed = run(&spec, |_| {}).expect("run completes");
        assert!(
            closed.total.latency_ms.max < 300.0,
            "{:?}",
            closed.total.latency_ms
        );
    }

    #[test]
    fn sequential_fill_sets_every_key_once() {
        let server = FakeServer::start();
        let mut spec = spec_with(server.port, &["SET __key__ __data__"], &[1]);
        spec.threads = 2;
        spec.clients = 4;
        spec.pipeline = 8;
        spec.key_min = 1_000;
        spec.key_max = 1_999;
        spec.key_pattern = KeyPattern::Sequential;
        spec.stop.requests = Some(1_000);
        run(&spec, |_| {}).expect("run completes");
        let mut keys = server
            .set_keys
            .lock()
            .map(|k| k.clone())
            .unwrap_or_default();
        keys.sort();
        let mut want: Vec<Vec<u8>> = (1_000..2_000)
            .map(|n| format!("key:{n}").into_bytes())
            .collect();
        want.sort();
        assert_eq!(keys, want);
    }

    #[test]
    fn refused_connection_is_an_error() {
        // Bind then drop: nothing listens on that port any more.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("free port");
        let spec = spec_with(port, &["GET __key__"], &[1]);
        match run(&spec, |_| {}) {
            Err(LoadError::Connect { addr, .. }) => assert!(addr.ends_with(&port.to_string())),
            other => panic!("expected a connect error, got {other:?}"),
        }
    }
}
