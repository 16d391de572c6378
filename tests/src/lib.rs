//! End-to-end test support: real server processes on loopback ports.
//!
//! Map of this crate:
//! - [`ServerProc`] starts the real `kv-server` binary on a free loopback port
//!   with a fresh data directory, waits until it answers `PING`, and kills it
//!   (by PID) when dropped.
//! - [`RedisProc`] does the same for a real `redis-server` (Debian's package),
//!   the reference the differential tests compare against.
//! - [`Running`] is what both hand out: the port, `redis` crate clients, raw
//!   TCP connections and the captured output.
//! - [`RawConn`] is a plain TCP connection for exact RESP bytes: send, read
//!   one whole reply, tell "closed" from "silent".
//! - [`resp`] encodes commands and parses replies (RESP2).
//! - [`Rng`] is a small seeded generator for reproducible command sequences.
//!
//! Environment variables:
//! - `KV_SERVER_BIN`: the server binary. Default: `$CARGO_TARGET_DIR/debug/kv-server`
//!   if `CARGO_TARGET_DIR` is set, else `<workspace>/target/debug/kv-server`.
//! - `REDIS_SERVER_BIN`: the reference server. Default: `redis-server` on `PATH`.
//! - `CI=true`: a missing `redis-server` fails the differential tests instead
//!   of skipping them.
//! - `KV_TEST_SERVER=redis`: harness self-check. Every [`ServerProc`] runs
//!   `redis-server` instead of our binary (`--threads` is dropped, the other
//!   flags are Redis's own), so the tests themselves can be checked against
//!   the reference: all of them must pass that way.

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long a started server gets to answer its first `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// Default read timeout for replies: a hung server fails the test instead of
/// hanging the suite.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// True when running under CI (`CI=true` or `CI=1`).
pub fn ci() -> bool {
    matches!(
        std::env::var("CI").as_deref(),
        Ok("true") | Ok("1") | Ok("TRUE") | Ok("True")
    )
}

/// True in the harness self-check mode (`KV_TEST_SERVER=redis`).
pub fn self_check_against_redis() -> bool {
    std::env::var("KV_TEST_SERVER").as_deref() == Ok("redis")
}

/// `KV_TEST_IO_BACKEND=epoll` (or `io_uring`): every kv-server the
/// harness starts gets `--io-backend <value>` before the test's own
/// arguments (which can still override it), so that the whole suite runs
/// on that backend (.ci/run runs it once with epoll). True when epoll.
pub fn epoll_forced() -> bool {
    std::env::var("KV_TEST_IO_BACKEND").as_deref() == Ok("epoll")
}

fn io_backend_args() -> Vec<OsString> {
    match std::env::var("KV_TEST_IO_BACKEND") {
        Ok(b) if !b.is_empty() => vec!["--io-backend".into(), b.into()],
        _ => Vec::new(),
    }
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

/// Where the server binary is expected (see the crate docs for the rules).
pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("KV_SERVER_BIN") {
        return PathBuf::from(p);
    }
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        None => workspace_root().join("target"),
    };
    target.join("debug").join("kv-server")
}

/// `redis-server` from `REDIS_SERVER_BIN`, `PATH`, or the usual Debian places.
pub fn redis_server_bin() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return Some(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/sbin")])
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
}

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(label: &str) -> TempDir {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let path = std::env::temp_dir().join(format!(
            "kv-tests-{label}-{}-{}-{nanos}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("cannot create temp dir {}: {e}", path.display()));
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A scratch directory removed on drop, for data that must outlive one
/// server process (restart tests: [`ServerProc::start_in`]).
pub struct ScratchDir(TempDir);

impl ScratchDir {
    pub fn new(label: &str) -> ScratchDir {
        ScratchDir(TempDir::new(label))
    }

    pub fn path(&self) -> &Path {
        &self.0 .0
    }
}

/// A loopback port nobody listens on right now, never handed out twice by
/// this process (tests in one binary run in parallel).
fn free_port() -> u16 {
    static HANDED_OUT: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("cannot bind a loopback port to find a free one: {e}"));
        let mut seen = HANDED_OUT.lock().unwrap_or_else(|p| p.into_inner());
        if !seen.contains(&port) {
            seen.push(port);
            return port;
        }
    }
}

/// A started server process: its port, its data dir and its output.
/// Killed with SIGKILL (by PID) and waited for on drop.
pub struct Running {
    child: Child,
    port: u16,
    label: &'static str,
    root: TempDir,
    data: PathBuf,
}

enum NotReady {
    Exited(String),
    TimedOut(String),
}

impl Running {
    /// Starts `program` with the arguments `args(port, data_dir)` and waits
    /// until it answers PING. Retries on a fresh port if the process exits
    /// because the port was taken in the meantime.
    fn start(
        label: &'static str,
        program: &Path,
        args: &dyn Fn(u16, &Path) -> Vec<OsString>,
    ) -> Running {
        Self::start_in(label, program, None, args)
    }

    /// [`Running::start`] with the data directory `data` (which outlives
    /// the process) instead of a fresh one.
    fn start_in(
        label: &'static str,
        program: &Path,
        data: Option<&Path>,
        args: &dyn Fn(u16, &Path) -> Vec<OsString>,
    ) -> Running {
        let mut failures = Vec::new();
        for _attempt in 0..3 {
            let root = TempDir::new(label);
            let data = data.map_or_else(|| root.0.join("data"), Path::to_path_buf);
            fs::create_dir_all(&data)
                .unwrap_or_else(|e| panic!("cannot create {}: {e}", data.display()));
            let port = free_port();
            let stdout = File::create(root.0.join("stdout.log"))
                .unwrap_or_else(|e| panic!("cannot create a log file: {e}"));
            let stderr = File::create(root.0.join("stderr.log"))
                .unwrap_or_else(|e| panic!("cannot create a log file: {e}"));
            let argv = args(port, &data);
            let child = Command::new(program)
                .args(&argv)
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(stderr)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
            let mut running = Running {
                child,
                port,
                label,
                root,
                data,
            };
            match running.wait_ready() {
                Ok(()) => return running,
                Err(NotReady::Exited(why)) => {
                    let output = running.output();
                    let port_taken = output.to_ascii_lowercase().contains("in use")
                        || output.contains("os error 98");
                    let msg = format!(
                        "{label} ({} {:?}) exited before answering PING: {why}\n--- output ---\n{output}",
                        program.display(),
                        argv
                    );
                    if !port_taken {
                        panic!("{msg}");
                    }
                    failures.push(msg);
                }
                Err(NotReady::TimedOut(last)) => {
                    panic!(
                        "{label} ({} {:?}) did not answer PING within {:?} (last probe: {last})\n--- output ---\n{}",
                        program.display(),
                        argv,
                        START_TIMEOUT,
                        running.output()
                    );
                }
            }
        }
        panic!("{label} could not start:\n{}", failures.join("\n"));
    }

    fn wait_ready(&mut self) -> Result<(), NotReady> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(NotReady::Exited(status.to_string()));
            }
            let last = match probe_ping(self.addr()) {
                Ok(reply) if reply.starts_with(b"+PONG") || reply.starts_with(b"-NOAUTH") => {
                    // Still ours? (Another process could hold the port.)
                    if let Ok(Some(status)) = self.child.try_wait() {
                        return Err(NotReady::Exited(status.to_string()));
                    }
                    return Ok(());
                }
                Ok(reply) => format!("reply {}", resp::show(&reply)),
                Err(e) => e.to_string(),
            };
            if Instant::now() >= deadline {
                return Err(NotReady::TimedOut(last));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:<port>/`
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The data directory passed with `--dir`.
    pub fn data_dir(&self) -> PathBuf {
        self.data.clone()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// A `redis` crate client for this server.
    pub fn client(&self) -> redis::Client {
        redis::Client::open(self.url()).expect("valid redis URL")
    }

    /// A connected `redis` crate connection with read/write timeouts set.
    pub fn conn(&self) -> redis::Connection {
        connect_with_timeouts(&self.client())
    }

    /// A `redis` crate connection that authenticates with `password` first.
    pub fn conn_with_password(&self, password: &str) -> redis::RedisResult<redis::Connection> {
        let client = redis::Client::open(format!("redis://:{password}@127.0.0.1:{}/", self.port))?;
        let con = client.get_connection_with_timeout(REPLY_TIMEOUT)?;
        con.set_read_timeout(Some(REPLY_TIMEOUT))?;
        con.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(con)
    }

    /// A raw TCP connection.
    pub fn raw(&self) -> RawConn {
        RawConn::connect(self.addr())
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The exit status, once the process has ended.
    pub fn exit_status(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Sends a signal by PID with kill(1), e.g. `signal("TERM")`.
    pub fn signal(&self, name: &str) {
        let status = std::process::Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{name} {} failed", self.pid());
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub fn output(&self) -> String {
        self.output_tail(usize::MAX)
    }

    /// The last `lines` lines of stdout and of stderr.
    pub fn output_tail(&self, lines: usize) -> String {
        let mut out = String::new();
        for name in ["stdout.log", "stderr.log"] {
            let bytes = fs::read(self.root.0.join(name)).unwrap_or_default();
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            if !all.is_empty() {
                let skip = all.len().saturating_sub(lines);
                out.push_str(&format!("[{name}]\n{}\n", all[skip..].join("\n")));
            }
        }
        out
    }

    /// Panics (with the server's output) if the process has exited.
    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited unexpectedly: {status}\n--- output ---\n{}",
                self.label,
                self.output()
            );
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let crashed = matches!(self.child.try_wait(), Ok(Some(_)));
        // SIGKILL this PID only, then reap it.
        let _ = self.child.kill();
        let _ = self.child.wait();
        if crashed || std::thread::panicking() {
            eprintln!(
                "--- {} on port {} (crashed: {crashed}), last lines of its output ---\n{}",
                self.label,
                self.port,
                self.output_tail(40)
            );
        }
    }
}

fn connect_with_timeouts(client: &redis::Client) -> redis::Connection {
    let con = client
        .get_connection_with_timeout(REPLY_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {:?}: {e}", client.get_connection_info()));
    con.set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("set read timeout");
    con.set_write_timeout(Some(REPLY_TIMEOUT))
        .expect("set write timeout");
    con
}

fn probe_ping(addr: SocketAddr) -> io::Result<Vec<u8>> {
    let mut conn = RawConn::try_connect(addr, Duration::from_millis(200))?;
    conn.send(b"*1\r\n$4\r\nPING\r\n")?;
    match conn.try_read_reply(Duration::from_secs(1)) {
        ReadOutcome::Reply(r) => Ok(r),
        ReadOutcome::Closed(b) => Err(io::Error::other(format!("closed after {}", resp::show(&b)))),
        ReadOutcome::TimedOut(b) => Err(io::Error::other(format!(
            "no whole reply within 1s, got {}",
            resp::show(&b)
        ))),
    }
}

/// The real `kv-server` binary, started by [`ServerProc::start`].
pub struct ServerProc(Running);

impl ServerProc {
    /// Starts the server on a free loopback port with a fresh data dir:
    /// `kv-server --port N --bind 127.0.0.1 --dir <tmp> <extra_args...>`.
    pub fn start(extra_args: &[&str]) -> ServerProc {
        Self::start_with_dir(None, extra_args)
    }

    /// [`ServerProc::start`] on the data directory `dir` (kept after the
    /// process ends: restart tests start again on it). kv-server only.
    pub fn start_in(dir: &Path, extra_args: &[&str]) -> ServerProc {
        Self::start_with_dir(Some(dir), extra_args)
    }

    /// Starts the server as `<wrapper...> kv-server [config_file] --port N
    /// --bind 127.0.0.1 --dir <tmp> <extra_args...>`: `wrapper` is a
    /// command that execs the rest (e.g. `prlimit --nofile=256:256`), or
    /// empty. kv-server only (not in the self-check mode).
    pub fn start_custom(
        wrapper: &[&str],
        config_file: Option<&Path>,
        extra_args: &[&str],
    ) -> ServerProc {
        let bin = server_bin();
        let (program, pre) = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut pre: Vec<OsString> = rest.iter().map(OsString::from).collect();
                pre.push(bin.into_os_string());
                (PathBuf::from(first), pre)
            }
            None => (bin, Vec::new()),
        };
        let file: Option<OsString> = config_file.map(|f| f.as_os_str().to_owned());
        let extra: Vec<OsString> = extra_args.iter().map(OsString::from).collect();
        ServerProc(Running::start("kv-server", &program, &|port, dir| {
            let mut args = pre.clone();
            args.extend(file.clone());
            args.extend(kv_server_args(port, dir));
            args.extend(extra.iter().cloned());
            args
        }))
    }

    fn start_with_dir(data: Option<&Path>, extra_args: &[&str]) -> ServerProc {
        if self_check_against_redis() {
            let bin =
                redis_server_bin().expect("KV_TEST_SERVER=redis but no redis-server found on PATH");
            let extra = redis_equivalent_args(extra_args);
            return ServerProc(Running::start("redis-as-kv-server", &bin, &|port, dir| {
                redis_args(port, dir, &extra)
            }));
        }
        let bin = server_bin();
        if !bin.is_file() {
            panic!(
                "server binary not found at {}.\nBuild it first with `cargo build -p server` \
                 (or set KV_SERVER_BIN to its path).",
                bin.display()
            );
        }
        let extra: Vec<OsString> = extra_args.iter().map(OsString::from).collect();
        ServerProc(Running::start_in("kv-server", &bin, data, &|port, dir| {
            let mut args = kv_server_args(port, dir);
            args.extend(extra.iter().cloned());
            args
        }))
    }
}

impl Deref for ServerProc {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl DerefMut for ServerProc {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}

/// What every kv-server a test starts gets first: its port, loopback, its
/// data directory, and the forced backend (`KV_TEST_IO_BACKEND`).
fn kv_server_args(port: u16, dir: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--port".into(),
        port.to_string().into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--dir".into(),
        dir.as_os_str().to_owned(),
    ];
    args.extend(io_backend_args());
    args
}

/// Our flags that `redis-server` does not know are dropped (self-check mode).
fn redis_equivalent_args(extra: &[&str]) -> Vec<OsString> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < extra.len() {
        if extra[i] == "--threads" {
            i += 2;
            continue;
        }
        out.push(OsString::from(extra[i]));
        i += 1;
    }
    out
}

fn redis_args(port: u16, dir: &Path, extra: &[OsString]) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        "--port".into(),
        port.to_string().into(),
        "--bind".into(),
        "127.0.0.1".into(),
        "--save".into(),
        "".into(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        dir.as_os_str().to_owned(),
        "--daemonize".into(),
        "no".into(),
    ];
    args.extend(extra.iter().cloned());
    args
}

/// A real `redis-server`, started by [`RedisProc::start`].
pub struct RedisProc(Running);

impl RedisProc {
    /// `redis-server --port N --save "" --appendonly no --dir <tmp>`, or `None`
    /// (with a note) when `redis-server` is not installed. Under CI a missing
    /// `redis-server` is a failure.
    pub fn start() -> Option<RedisProc> {
        RedisProc::start_with(&[])
    }

    /// Like [`RedisProc::start`], writing a plain-RESP AOF (no RDB
    /// preamble, no save rules): the tests that import Redis's AOF.
    pub fn start_with_plain_aof() -> Option<RedisProc> {
        RedisProc::start_with(&[
            "--appendonly",
            "yes",
            "--aof-use-rdb-preamble",
            "no",
            "--save",
            "",
        ])
    }

    /// Like [`RedisProc::start`], with extra `redis-server` flags.
    pub fn start_with(extra_args: &[&str]) -> Option<RedisProc> {
        let Some(bin) = redis_server_bin() else {
            if ci() {
                panic!(
                    "redis-server is not installed and CI=true: the differential tests must run. \
                     Install it with `apt-get install -y redis-server` (.ci/run does)."
                );
            }
            eprintln!(
                "NOTE: redis-server not found on PATH; skipping this differential test \
                 (install Debian's redis-server package to run it)."
            );
            return None;
        };
        let extra: Vec<OsString> = extra_args.iter().map(OsString::from).collect();
        Some(RedisProc(Running::start(
            "redis-server",
            &bin,
            &|port, dir| redis_args(port, dir, &extra),
        )))
    }
}

impl Deref for RedisProc {
    type Target = Running;
    fn deref(&self) -> &Running {
        &self.0
    }
}

impl DerefMut for RedisProc {
    fn deref_mut(&mut self) -> &mut Running {
        &mut self.0
    }
}

/// What a read with a deadline produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadOutcome {
    /// One whole reply.
    Reply(Vec<u8>),
    /// The peer closed (FIN or RST); the bytes received before that.
    Closed(Vec<u8>),
    /// The deadline passed; the bytes of an incomplete reply, if any.
    TimedOut(Vec<u8>),
}

/// A plain TCP connection speaking raw RESP bytes.
pub struct RawConn {
    stream: TcpStream,
    /// Bytes received but not yet handed out as a reply.
    pending: Vec<u8>,
}

impl RawConn {
    pub fn connect(addr: SocketAddr) -> RawConn {
        RawConn::try_connect(addr, REPLY_TIMEOUT)
            .unwrap_or_else(|e| panic!("cannot connect to {addr}: {e}"))
    }

    pub fn try_connect(addr: SocketAddr, timeout: Duration) -> io::Result<RawConn> {
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        stream.set_nodelay(true)?;
        stream.set_write_timeout(Some(REPLY_TIMEOUT))?;
        Ok(RawConn {
            stream,
            pending: Vec::new(),
        })
    }

    /// Wraps a connected stream (one bound to a chosen local address, say).
    pub fn from_stream(stream: TcpStream) -> RawConn {
        let _ = stream.set_nodelay(true);
        let _ = stream.set_write_timeout(Some(REPLY_TIMEOUT));
        RawConn {
            stream,
            pending: Vec::new(),
        }
    }

    /// Writes all of `bytes`.
    pub fn send(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends one command as a RESP multibulk.
    pub fn send_cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) {
        let frame = resp::encode(args);
        self.send(&frame)
            .unwrap_or_else(|e| panic!("cannot send {}: {e}", resp::show(&frame)));
    }

    /// Sends one command and returns its whole reply (panics on timeout or close).
    pub fn cmd<A: AsRef<[u8]>>(&mut self, args: &[A]) -> Vec<u8> {
        self.send_cmd(args);
        self.read_reply()
    }

    /// The next whole reply; panics if none arrives within [`REPLY_TIMEOUT`].
    pub fn read_reply(&mut self) -> Vec<u8> {
        match self.try_read_reply(REPLY_TIMEOUT) {
            ReadOutcome::Reply(r) => r,
            other => panic!("expected a reply, got {other:?}"),
        }
    }

    /// The next whole reply, or what happened instead.
    pub fn try_read_reply(&mut self, timeout: Duration) -> ReadOutcome {
        let deadline = Instant::now() + timeout;
        loop {
            match resp::reply_len(&self.pending) {
                Ok(Some(n)) => {
                    let reply = self.pending.drain(..n).collect();
                    return ReadOutcome::Reply(reply);
                }
                Ok(None) => {}
                Err(e) => panic!(
                    "malformed reply from server ({e}): {}",
                    resp::show(&self.pending)
                ),
            }
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return ReadOutcome::Closed(std::mem::take(&mut self.pending)),
                Fill::TimedOut => return ReadOutcome::TimedOut(std::mem::take(&mut self.pending)),
            }
        }
    }

    /// Reads until the peer closes; `Ok(bytes received)` on close, `Err(bytes)`
    /// if it is still open at the deadline.
    pub fn read_until_closed(&mut self, timeout: Duration) -> Result<Vec<u8>, Vec<u8>> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.fill(deadline) {
                Fill::Data => {}
                Fill::Closed => return Ok(std::mem::take(&mut self.pending)),
                Fill::TimedOut => return Err(std::mem::take(&mut self.pending)),
            }
        }
    }

    /// Reads until `pred(bytes so far)` holds, the peer closes, or the deadline.
    /// Returns the bytes and whether the connection was closed.
    pub fn read_while(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&[u8]) -> bool,
    ) -> (Vec<u8>, Fill) {
        let deadline = Instant::now() + timeout;
        loop {
            if done(&self.pending) {
                return (std::mem::take(&mut self.pending), Fill::Data);
            }
            match self.fill(deadline) {
                Fill::Data => {}
                end => return (std::mem::take(&mut self.pending), end),
            }
        }
    }

    /// Asserts that nothing arrives (and the connection stays open) for `dur`.
    pub fn assert_silent(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        match self.fill(deadline) {
            Fill::TimedOut => {}
            Fill::Data => panic!("expected no reply yet, got {}", resp::show(&self.pending)),
            Fill::Closed => panic!(
                "expected the connection to stay open and silent, but it was closed (after {})",
                resp::show(&self.pending)
            ),
        }
    }

    fn fill(&mut self, deadline: Instant) -> Fill {
        let now = Instant::now();
        if now >= deadline {
            return Fill::TimedOut;
        }
        let _ = self.stream.set_read_timeout(Some(deadline - now));
        let mut buf = [0u8; 64 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => Fill::Closed,
            Ok(n) => {
                self.pending.extend_from_slice(&buf[..n]);
                Fill::Data
            }
            Err(e) => match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => Fill::TimedOut,
                io::ErrorKind::Interrupted => Fill::Data,
                io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe => Fill::Closed,
                _ => panic!("read failed: {e}"),
            },
        }
    }

    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }
}

/// The result of one read attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    Data,
    Closed,
    TimedOut,
}

/// Polls `cond` every 10 ms until it holds; panics with `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// RESP2 encoding, parsing and printing.
pub mod resp {
    /// A parsed RESP2 reply.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub enum Frame {
        Simple(String),
        Error(String),
        Int(i64),
        Bulk(Option<Vec<u8>>),
        Array(Option<Vec<Frame>>),
    }

    /// Encodes a command as a RESP multibulk.
    pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            let a = a.as_ref();
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        out
    }

    /// Length of the first whole reply in `buf`, `None` if incomplete.
    pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
        Ok(parse(buf)?.map(|(_, n)| n))
    }

    /// Parses the first whole reply in `buf`: the frame and its length.
    pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
        let Some(line_end) = find_crlf(buf) else {
            return Ok(None);
        };
        let Some((&kind, line)) = buf[..line_end].split_first() else {
            return Err("empty line".to_string());
        };
        let text = std::str::from_utf8(line).map_err(|_| "non-UTF-8 header".to_string());
        let after = line_end + 2;
        match kind {
            b'+' => Ok(Some((Frame::Simple(lossy(line)), after))),
            b'-' => Ok(Some((Frame::Error(lossy(line)), after))),
            b':' => {
                let n = text?.parse().map_err(|e| format!("bad integer: {e}"))?;
                Ok(Some((Frame::Int(n), after)))
            }
            b'$' => {
                let n: i64 = text?.parse().map_err(|e| format!("bad bulk length: {e}"))?;
                if n < 0 {
                    return Ok(Some((Frame::Bulk(None), after)));
                }
                let n = n as usize;
                if buf.len() < after + n + 2 {
                    return Ok(None);
                }
                if &buf[after + n..after + n + 2] != b"\r\n" {
                    return Err("bulk string not followed by CRLF".to_string());
                }
                Ok(Some((
                    Frame::Bulk(Some(buf[after..after + n].to_vec())),
                    after + n + 2,
                )))
            }
            b'*' => {
                let n: i64 = text?
                    .parse()
                    .map_err(|e| format!("bad array length: {e}"))?;
                if n < 0 {
                    return Ok(Some((Frame::Array(None), after)));
                }
                let mut items = Vec::new();
                let mut pos = after;
                for _ in 0..n {
                    match parse(&buf[pos..])? {
                        Some((f, len)) => {
                            items.push(f);
                            pos += len;
                        }
                        None => return Ok(None),
                    }
                }
                Ok(Some((Frame::Array(Some(items)), pos)))
            }
            other => Err(format!("unexpected type byte {:?}", other as char)),
        }
    }

    /// Parses exactly one whole reply (panics otherwise).
    pub fn parse_one(buf: &[u8]) -> Frame {
        match parse(buf) {
            Ok(Some((f, n))) if n == buf.len() => f,
            other => panic!("not exactly one reply ({other:?}): {}", show(buf)),
        }
    }

    fn lossy(line: &[u8]) -> String {
        String::from_utf8_lossy(line).into_owned()
    }

    fn find_crlf(buf: &[u8]) -> Option<usize> {
        buf.windows(2).position(|w| w == b"\r\n")
    }

    /// Bytes as a readable string: printable ASCII as is, the rest escaped.
    pub fn show(bytes: &[u8]) -> String {
        const LIMIT: usize = 600;
        let mut out = String::from("\"");
        for &b in bytes.iter().take(LIMIT) {
            match b {
                b'\r' => out.push_str("\\r"),
                b'\n' => out.push_str("\\n"),
                b'\t' => out.push_str("\\t"),
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x20..=0x7e => out.push(b as char),
                _ => out.push_str(&format!("\\x{b:02x}")),
            }
        }
        out.push('"');
        if bytes.len() > LIMIT {
            out.push_str(&format!("... ({} bytes)", bytes.len()));
        }
        out
    }

    /// A command's arguments, printed like redis-cli would quote them.
    pub fn show_cmd<A: AsRef<[u8]>>(args: &[A]) -> String {
        args.iter()
            .map(|a| {
                let a = a.as_ref();
                let plain = !a.is_empty()
                    && a.iter()
                        .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'');
                if plain {
                    String::from_utf8_lossy(a).into_owned()
                } else {
                    show(a)
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// SplitMix64: a tiny, seeded, reproducible generator.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        let span = (hi - lo) as u64 + 1;
        lo + (self.next_u64() % span) as i64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u32) -> bool {
        self.below(100) < percent as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// A small tmpfs mounted on a directory for one test (needs root, as in
/// CI), unmounted when dropped.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (mount's syntax: "4m") on `dir`; None, with
    /// a note, where mounting is not allowed.
    pub fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(dir).expect("create the mount point");
        let mounted = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !mounted {
            eprintln!("skipped: cannot mount a small tmpfs here (needs root)");
            return None;
        }
        Some(Tmpfs(dir.to_path_buf()))
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Fills the filesystem to its last block with one file; returns it.
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("create the filler");
        for chunk in [64 * 1024, 4096] {
            let buf = vec![0x5a_u8; chunk];
            while f.write_all(&buf).is_ok() {}
        }
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[cfg(test)]
mod tests {
    use super::resp::{self, Frame};

    #[test]
    fn parses_nested_replies_and_detects_incomplete_ones() {
        let whole = b"*3\r\n$1\r\na\r\n:5\r\n*1\r\n$-1\r\n+tail";
        let (frame, n) = resp::parse(whole).unwrap().unwrap();
        assert_eq!(n, whole.len() - b"+tail".len());
        assert_eq!(
            frame,
            Frame::Array(Some(vec![
                Frame::Bulk(Some(b"a".to_vec())),
                Frame::Int(5),
                Frame::Array(Some(vec![Frame::Bulk(None)])),
            ]))
        );
        for cut in 0..n {
            assert_eq!(resp::reply_len(&whole[..cut]).unwrap(), None, "cut {cut}");
        }
        assert!(resp::parse(b"$3\r\nabcX\r\n").is_err());
    }

    #[test]
    fn encodes_and_shows_commands() {
        assert_eq!(
            resp::encode(&["SET", "k", ""]),
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n".to_vec()
        );
        assert_eq!(resp::show(b"-ERR x\r\n\x00"), "\"-ERR x\\r\\n\\x00\"");
        assert_eq!(resp::show_cmd(&["SET", "a b", ""]), "SET \"a b\" \"\"");
    }

    #[test]
    fn rng_is_reproducible() {
        let mut a = super::Rng::new(7);
        let mut b = super::Rng::new(7);
        let xs: Vec<u64> = (0..5).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..5).map(|_| b.next_u64()).collect();
        assert_eq!(xs, ys);
        assert!((0..1000).all(|_| a.range(-3, 3).abs() <= 3));
    }
}
