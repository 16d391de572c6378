//! Server processes: [`ServerProc`] (ours), [`RedisProc`] (the
//! reference), and [`Running`], what both hand out.

use super::*;

/// A started server process: its port, its data dir and its output.
/// Killed with SIGKILL (by PID) and waited for on drop.
pub struct Running {
    child: Child,
    port: u16,
    label: &'static str,
    root: TempDir,
    data: PathBuf,
}

pub(crate) enum NotReady {
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

pub(crate) fn connect_with_timeouts(client: &redis::Client) -> redis::Connection {
    let con = client
        .get_connection_with_timeout(REPLY_TIMEOUT)
        .unwrap_or_else(|e| panic!("cannot connect to {:?}: {e}", client.get_connection_info()));
    con.set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("set read timeout");
    con.set_write_timeout(Some(REPLY_TIMEOUT))
        .expect("set write timeout");
    con
}

pub(crate) fn probe_ping(addr: SocketAddr) -> io::Result<Vec<u8>> {
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
pub(crate) fn kv_server_args(port: u16, dir: &Path) -> Vec<OsString> {
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
pub(crate) fn redis_equivalent_args(extra: &[&str]) -> Vec<OsString> {
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

pub(crate) fn redis_args(port: u16, dir: &Path, extra: &[OsString]) -> Vec<OsString> {
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
