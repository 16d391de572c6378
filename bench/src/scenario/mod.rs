//! `bench scenario NAME`: side-by-side runs of this project's `kv-server`
//! and a real `redis-server`, each started here on a free loopback port in a
//! scratch directory and stopped (by PID) at the end.
//!
//! Map of the module:
//!
//! - this file: what every scenario shares: [`Common`] flags, finding the
//!   binaries, [`Scratch`] (a directory removed on drop), [`ServerProcess`]
//!   (a started server, killed and waited for on drop, so also on error or
//!   panic), a small blocking RESP [`Client`] for control commands
//!   (`INFO`, `BGSAVE`, ...), `/proc` readers, the median/ratio math, the
//!   pipelined fill ([`fill_values`]) and the PING [`probe`] client.
//! - [`throughput`]: SET/GET at pipeline 1 and 16, alternating runs.
//! - [`durability`]: the append-only log's cost: SET throughput by
//!   `appendfsync` policy, GET p99 under `always`, group commit by client
//!   count, page cache growth while writing ~2 GiB of log, and a log
//!   rewrite (BGREWRITEAOF) under load.
//! - [`snapshot`]: memory, page cache and latency while a BGSAVE runs under
//!   an overwrite load.
//!
//! Every scenario writes `<out>/<scenario>.json` and `<out>/<scenario>.svg`.

pub mod durability;
pub mod snapshot;
pub mod throughput;

use std::ffi::OsString;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;

/// Errors of a scenario: what failed, with enough context to act on it.
pub type Result<T> = std::result::Result<T, String>;

/// Flags every scenario takes.
#[derive(Args, Debug, Clone)]
pub struct Common {
    /// Directory for `<scenario>.json` and `<scenario>.svg` (and, while it
    /// runs, the servers' scratch directory) [default: <workspace>/bench/results].
    #[arg(long, value_name = "DIR")]
    pub out: Option<PathBuf>,
    /// The kv-server binary [default: $KV_SERVER_BIN, else
    /// <workspace>/target/release/kv-server].
    #[arg(long, value_name = "PATH")]
    pub server_bin: Option<PathBuf>,
    /// kv-server's `--threads` (worker threads; 0 = one per core)
    /// [default: the server's own].
    #[arg(long, value_name = "N")]
    pub server_threads: Option<usize>,
    /// OS threads of the load generator (each drives its share of the
    /// connections).
    #[arg(long, default_value_t = 1)]
    pub bench_threads: usize,
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(Path::to_path_buf).unwrap_or(manifest)
}

impl Common {
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| workspace_root().join("bench").join("results"))
    }

    /// The kv-server binary: `--server-bin`, `$KV_SERVER_BIN`, or the
    /// workspace's release build; an error says how to build it.
    pub fn kv_server_bin(&self) -> Result<PathBuf> {
        let path = self
            .server_bin
            .clone()
            .or_else(|| std::env::var_os("KV_SERVER_BIN").map(PathBuf::from))
            .unwrap_or_else(|| workspace_root().join("target/release/kv-server"));
        if path.is_file() {
            Ok(path)
        } else {
            Err(format!(
                "kv-server binary not found at {}: build it with `cargo build --release -p server` \
                 (or pass --server-bin / set KV_SERVER_BIN)",
                path.display()
            ))
        }
    }

    /// Connections per generator thread for `total` connections in all.
    pub fn clients_per_thread(&self, total: usize) -> usize {
        (total / self.bench_threads.max(1)).max(1)
    }
}

/// `redis-server` on `PATH` (or `$REDIS_SERVER_BIN`); a clear error if it
/// is not installed.
pub fn redis_server_bin() -> Result<PathBuf> {
    if let Some(p) = std::env::var_os("REDIS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| "redis-server is not installed: apt-get install redis-server".to_string())
}

/// The two servers every scenario compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Server {
    Redis,
    KvServer,
}

impl Server {
    pub fn name(self) -> &'static str {
        match self {
            Server::Redis => "redis",
            Server::KvServer => "kv-server",
        }
    }
}

/// A directory removed (with everything in it: RDB files!) on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// A fresh `.scratch-<label>-<pid>` directory under `parent`.
    pub fn new(parent: &Path, label: &str) -> Result<Scratch> {
        let path = parent.join(format!(".scratch-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .map_err(|e| format!("creating scratch dir {}: {e}", path.display()))?;
        Ok(Scratch { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// A loopback port nobody listens on right now.
fn free_port() -> Result<u16> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("finding a free loopback port: {e}"))
}

/// How long a started server gets to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A started server. Dropping it kills the process and any child (SIGKILL,
/// by PID) and waits for it, so a failing or panicking scenario leaves
/// nothing behind.
pub struct ServerProcess {
    child: Child,
    pub server: Server,
    pub port: u16,
    log: PathBuf,
}

/// Why a server did not come up.
#[derive(Debug)]
pub enum StartError {
    /// The process exited before answering PING (e.g. an unknown
    /// directive); carries the end of its output.
    Exited(String),
    /// Anything else (spawn failed, no PING reply in time).
    Other(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Exited(s) | StartError::Other(s) => f.write_str(s),
        }
    }
}

impl ServerProcess {
    /// Starts `server` (binary `bin`) on a free port with its data in
    /// `<scratch>/<label>` and `extra` arguments, and waits for PING.
    pub fn start(
        server: Server,
        bin: &Path,
        scratch: &Path,
        label: &str,
        extra: &[&str],
    ) -> std::result::Result<ServerProcess, StartError> {
        let dir = scratch.join(label);
        fs::create_dir_all(&dir)
            .map_err(|e| StartError::Other(format!("creating {}: {e}", dir.display())))?;
        let mut last = String::new();
        for _attempt in 0..3 {
            let port = free_port().map_err(StartError::Other)?;
            let log = dir.join("server.log");
            let out = File::create(&log)
                .map_err(|e| StartError::Other(format!("creating {}: {e}", log.display())))?;
            let err = out
                .try_clone()
                .map_err(|e| StartError::Other(format!("{}: {e}", log.display())))?;
            let mut args: Vec<OsString> = vec![
                "--port".into(),
                port.to_string().into(),
                "--bind".into(),
                "127.0.0.1".into(),
                "--dir".into(),
                dir.clone().into(),
            ];
            args.extend(extra.iter().map(OsString::from));
            let child = Command::new(bin)
                .args(&args)
                .stdin(Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
                .map_err(|e| StartError::Other(format!("starting {}: {e}", bin.display())))?;
            let mut p = ServerProcess {
                child,
                server,
                port,
                log,
            };
            let deadline = Instant::now() + START_TIMEOUT;
            loop {
                if let Ok(Some(status)) = p.child.try_wait() {
                    let output = p.log_tail();
                    let msg = format!(
                        "{} ({}) exited ({status}) before answering PING; its output:\n{output}",
                        server.name(),
                        bin.display()
                    );
                    if output.to_ascii_lowercase().contains("in use") {
                        last = msg;
                        break; // port taken in the meantime: try another
                    }
                    return Err(StartError::Exited(msg));
                }
                if let Ok(mut c) = Client::connect(port) {
                    if matches!(c.call(&["PING"]), Ok(Reply::Status(ref s)) if s == "PONG") {
                        return Ok(p);
                    }
                }
                if Instant::now() > deadline {
                    return Err(StartError::Other(format!(
                        "{} on port {port} did not answer PING within {} s; its output:\n{}",
                        server.name(),
                        START_TIMEOUT.as_secs(),
                        p.log_tail()
                    )));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Err(StartError::Exited(last))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of the server's stdout/stderr.
    pub fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    pub fn client(&self) -> Result<Client> {
        Client::connect(self.port)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A BGSAVE child outlives a killed parent and would go on writing
        // into the scratch dir: kill it first (by PID).
        let children = children_of(self.pid());
        if !children.is_empty() {
            let _ = Command::new("kill")
                .arg("-KILL")
                .args(children.iter().map(u32::to_string))
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RESP reply, as far as control commands need it.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Status(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    /// The text of a bulk or status reply.
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Status(s) => Some(s.clone()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A blocking connection for control commands (one at a time).
pub struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
    port: u16,
}

impl Client {
    pub fn connect(port: u16) -> Result<Client> {
        let s = TcpStream::connect(("127.0.0.1", port))
            .map_err(|e| format!("connecting to 127.0.0.1:{port}: {e}"))?;
        let _ = s.set_nodelay(true);
        s.set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        let writer = s
            .try_clone()
            .map_err(|e| format!("127.0.0.1:{port}: {e}"))?;
        Ok(Client {
            reader: BufReader::new(s),
            writer,
            port,
        })
    }

    /// Sends one command and reads its reply.
    pub fn call(&mut self, args: &[&str]) -> Result<Reply> {
        let mut out = Vec::new();
        crate::resp::put_array_header(&mut out, args.len());
        for a in args {
            crate::resp::put_bulk(&mut out, a.as_bytes());
        }
        self.writer
            .write_all(&out)
            .map_err(|e| format!("sending {} to 127.0.0.1:{}: {e}", args[0], self.port))?;
        read_reply(&mut self.reader).map_err(|e| {
            format!(
                "reading the reply to {} from 127.0.0.1:{}: {e}",
                args[0], self.port
            )
        })
    }

    /// `INFO section` as text; an error reply is an error.
    pub fn info(&mut self, section: &str) -> Result<String> {
        match self.call(&["INFO", section])? {
            Reply::Error(e) => Err(format!("INFO {section}: {e}")),
            r => r
                .text()
                .ok_or_else(|| format!("INFO {section}: unexpected reply {r:?}")),
        }
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed",
        ));
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn bad(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Reads one RESP2 reply (plus RESP3 null `_`).
pub fn read_reply(r: &mut impl BufRead) -> io::Result<Reply> {
    let line = read_line(r)?;
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or_else(|| bad("empty line".into()))?;
    let num = || {
        rest.parse::<i64>()
            .map_err(|_| bad(format!("bad number in {line:?}")))
    };
    Ok(match kind {
        "+" => Reply::Status(rest.to_string()),
        "-" => Reply::Error(rest.to_string()),
        ":" => Reply::Int(num()?),
        "_" => Reply::Bulk(None),
        "$" => {
            let n = num()?;
            if n < 0 {
                return Ok(Reply::Bulk(None));
            }
            let mut buf = vec![0; n as usize + 2];
            r.read_exact(&mut buf)?;
            buf.truncate(n as usize);
            Reply::Bulk(Some(buf))
        }
        "*" => {
            let n = num()?;
            let mut items = Vec::new();
            for _ in 0..n.max(0) {
                items.push(read_reply(r)?);
            }
            Reply::Array(items)
        }
        _ => return Err(bad(format!("unexpected reply line {line:?}"))),
    })
}

/// `name:value` from INFO text.
pub fn info_field<'a>(info: &'a str, name: &str) -> Option<&'a str> {
    info.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(':'))
            .map(str::trim)
    })
}

/// A numeric INFO field.
pub fn info_u64(info: &str, name: &str) -> Option<u64> {
    info_field(info, name).and_then(|v| v.parse().ok())
}

/// The median (mean of the middle two for an even count); `None` if empty.
pub fn median(values: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// ours / redis, `None` when Redis's figure is zero or missing.
pub fn ratio(ours: Option<f64>, redis: Option<f64>) -> Option<f64> {
    match (ours, redis) {
        (Some(o), Some(r)) if r > 0.0 => Some(o / r),
        _ => None,
    }
}

/// The value in kB of the line `name:   123 kB` in /proc text
/// (`meminfo`, `status`, `smaps_rollup`), in bytes.
pub fn proc_kb_field(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(name)?.strip_prefix(':')?;
        let kb: u64 = rest.split_whitespace().next()?.parse().ok()?;
        Some(kb * 1024)
    })
}

/// Resident set size in bytes from `/proc/PID/statm` text (second field,
/// in pages of `page_size` bytes).
pub fn parse_statm_rss(statm: &str, page_size: u64) -> Option<u64> {
    statm
        .split_whitespace()
        .nth(1)?
        .parse::<u64>()
        .ok()
        .map(|pages| pages * page_size)
}

/// PIDs listed in one `/proc/PID/task/TID/children` file.
pub fn parse_children(text: &str) -> Vec<u32> {
    text.split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// The page size, from `/proc/self/smaps` (`KernelPageSize`), else 4096.
pub fn page_size() -> u64 {
    fs::read_to_string("/proc/self/smaps")
        .ok()
        .and_then(|t| proc_kb_field(&t, "KernelPageSize"))
        .unwrap_or(4096)
}

/// Direct children of `pid` (Redis's BGSAVE fork shows up here).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    if let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(text) = fs::read_to_string(t.path().join("children")) {
                out.extend(parse_children(&text));
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// RSS of `pid` in bytes (0 if it is gone).
pub fn rss_of(pid: u32, page_size: u64) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/statm"))
        .ok()
        .and_then(|t| parse_statm_rss(&t, page_size))
        .unwrap_or(0)
}

/// PSS of `pid` in bytes from smaps_rollup (0 if it is gone).
pub fn pss_of(pid: u32) -> u64 {
    fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| proc_kb_field(&t, "Pss"))
        .unwrap_or(0)
}

/// `Cached` of /proc/meminfo in bytes.
pub fn page_cache() -> u64 {
    fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| proc_kb_field(&t, "Cached"))
        .unwrap_or(0)
}

/// Writes `<out>/<name>.json` and `<out>/<name>.svg`.
pub fn write_results(
    out: &Path,
    name: &str,
    json: &impl serde::Serialize,
    svg: &str,
) -> Result<()> {
    fs::create_dir_all(out).map_err(|e| format!("creating {}: {e}", out.display()))?;
    let jpath = out.join(format!("{name}.json"));
    let text = serde_json::to_vec_pretty(json).map_err(|e| format!("{}: {e}", jpath.display()))?;
    fs::write(&jpath, text).map_err(|e| format!("writing {}: {e}", jpath.display()))?;
    let spath = out.join(format!("{name}.svg"));
    fs::write(&spath, svg).map_err(|e| format!("writing {}: {e}", spath.display()))?;
    println!("wrote {} and {}", jpath.display(), spath.display());
    Ok(())
}

/// The load every scenario uses: 50 connections of SETs or GETs over
/// `key:0..=key:999999` with 64-byte values, as fast as the server answers.
pub fn basic_spec(
    common: &Common,
    port: u16,
    command: &str,
    pipeline: usize,
    requests: u64,
) -> crate::LoadSpec {
    let (sets, gets) = if command == "SET" { (1, 0) } else { (0, 1) };
    let mut spec = crate::LoadSpec::set_get(sets, gets);
    spec.commands.retain(|c| c.weight > 0);
    spec.port = port;
    spec.threads = common.bench_threads.max(1);
    spec.clients = common.clients_per_thread(50);
    spec.pipeline = pipeline;
    spec.stop = crate::StopAfter {
        requests: Some(requests),
        duration: None,
    };
    spec.reply_timeout = Duration::from_secs(30);
    spec
}

/// SETs `key:0..key:{keys-1}` once each with `value_size`-byte values,
/// sequentially, pipelined (8 connections per generator thread, pipeline
/// 64), with progress on stderr.
pub fn fill_values(common: &Common, port: u16, keys: u64, value_size: u64) -> Result<()> {
    let mut spec = crate::LoadSpec::set_get(1, 0);
    spec.commands.retain(|c| c.weight > 0);
    spec.port = port;
    spec.threads = common.bench_threads.max(1);
    spec.clients = 8;
    spec.pipeline = 64;
    spec.key_min = 0;
    spec.key_max = keys - 1;
    spec.key_pattern = crate::KeyPattern::Sequential;
    spec.data_size = crate::Range::fixed(value_size);
    spec.stop = crate::StopAfter {
        requests: Some(keys),
        duration: None,
    };
    spec.reply_timeout = Duration::from_secs(60);
    let r = crate::run(&spec, |p| {
        eprint!("\r  fill: {} / {keys} keys", p.requests);
    })
    .map_err(|e| format!("filling: {e}"))?;
    eprintln!();
    if r.total.errors > 0 {
        return Err(format!(
            "filling: {} error replies, first: {:?}",
            r.total.errors, r.commands[0].first_error
        ));
    }
    Ok(())
}

/// The probe client of the snapshot and log-rewrite measurements: one
/// connection, a PING about every millisecond until `stop`, each (send
/// time, latency in ms) pushed to `out`. Run it on a thread of its own.
pub fn probe(
    port: u16,
    t0: Instant,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: std::sync::Arc<std::sync::Mutex<Vec<(Instant, f64)>>>,
) {
    let Ok(mut c) = Client::connect(port) else {
        return;
    };
    let mut next = t0;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let sent = Instant::now();
        if c.call(&["PING"]).is_err() {
            return;
        }
        let lat = sent.elapsed().as_secs_f64() * 1e3;
        if let Ok(mut v) = out.lock() {
            v.push((sent, lat));
        }
        next += Duration::from_millis(1);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now;
        }
    }
}

/// A machine-stall detector beside the probe: a thread that asks to be
/// woken every millisecond and records (start, ms late) of every wake-up
/// over 2 ms late. It makes itself SCHED_FIFO (`chrt`, when allowed), so
/// on a guest whose cores are all busy it still runs as soon as it is due:
/// lateness it sees is the machine or its vCPU stopping (the host not
/// running the vCPU, kernel work that holds off scheduling), not the load
/// on the guest's CPUs.
///
/// It first pins itself to `cpu` (`taskset`): a timer fires on the CPU
/// that armed it, so an unpinned canary sees only the stalls of whichever
/// vCPU it happens to sit on, and a host that does not run the other vCPU
/// for 15 ms (measured: a worker runnable that long while `perf sched` saw
/// no event at all on the other vCPU) goes unseen. Run one per CPU
/// ([`canaries`]). Sends whether it got real-time priority on its CPU.
pub fn canary(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: std::sync::Arc<std::sync::Mutex<Vec<(Instant, f64)>>>,
    rt: std::sync::mpsc::Sender<bool>,
    cpu: usize,
) {
    let tid = std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| p.file_name().map(|t| t.to_string_lossy().into_owned()));
    let run = |cmd: &str, args: &[&str]| {
        std::process::Command::new(cmd)
            .args(args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    let made_rt = tid.is_some_and(|tid| {
        run("taskset", &["-p", "-c", &cpu.to_string(), &tid])
            && run("chrt", &["-f", "-p", "50", &tid])
    });
    let _ = rt.send(made_rt);
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        let start = Instant::now();
        std::thread::sleep(Duration::from_millis(1));
        let late = start.elapsed().as_secs_f64() * 1e3 - 1.0;
        if late > 2.0 {
            if let Ok(mut v) = out.lock() {
                v.push((start, late));
            }
        }
    }
}

/// Starts one [`canary`] per CPU this process may run on, all recording
/// into `out`; returns their threads and whether every one got real-time
/// priority on its CPU.
pub fn canaries(
    stop: &std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: &std::sync::Arc<std::sync::Mutex<Vec<(Instant, f64)>>>,
) -> (Vec<std::thread::JoinHandle<()>>, bool) {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (tx, rx) = std::sync::mpsc::channel();
    let threads: Vec<_> = (0..cpus)
        .map(|cpu| {
            let (stop, out, tx) = (stop.clone(), out.clone(), tx.clone());
            std::thread::spawn(move || canary(stop, out, tx, cpu))
        })
        .collect();
    drop(tx);
    let all_rt = (0..cpus).all(|_| rx.recv().unwrap_or(false));
    (threads, all_rt)
}

/// Kernel threads known to take a vCPU for tens of milliseconds on their
/// own schedule: on this VM `kdamond.0` (DAMON, set up by the platform)
/// runs 15-60 ms of CPU every ~5.15 s at normal priority, and a worker
/// that shares its vCPU waits that long when the other vCPU is busy. The
/// real-time canaries preempt it, so they do not see it.
const KERNEL_HOGS: &[&str] = &["kdamond"];

/// Watches the [`KERNEL_HOGS`] threads' CPU time (`/proc/PID/schedstat`)
/// about every millisecond and records each burst of theirs with at least
/// 5 ms of CPU as (start, span ms, CPU ms); a burst ends after 3 ms without
/// CPU. Nothing is recorded where there are no such threads.
pub fn kernel_hogs(
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    out: std::sync::Arc<std::sync::Mutex<Vec<(Instant, f64, f64)>>>,
) {
    let pids: Vec<String> = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_string_lossy().into_owned();
            let comm = std::fs::read_to_string(e.path().join("comm")).ok()?;
            KERNEL_HOGS
                .iter()
                .any(|h| comm.starts_with(h))
                .then_some(pid)
        })
        .collect();
    if pids.is_empty() {
        return;
    }
    let cpu_ns = || -> u64 {
        pids.iter()
            .filter_map(|p| {
                let s = std::fs::read_to_string(format!("/proc/{p}/schedstat")).ok()?;
                s.split_whitespace().next()?.parse::<u64>().ok()
            })
            .sum()
    };
    let (mut last, mut last_at) = (cpu_ns(), Instant::now());
    // (start, last time it had CPU, CPU ns so far)
    let mut burst: Option<(Instant, Instant, u64)> = None;
    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(1));
        let (now_ns, now) = (cpu_ns(), Instant::now());
        let used = now_ns.saturating_sub(last);
        if used > 0 {
            let b = burst.get_or_insert((last_at, now, 0));
            b.1 = now;
            b.2 += used;
        } else if let Some((start, end, ns)) = burst {
            if now - end > Duration::from_millis(3) {
                burst = None;
                if ns >= 5_000_000 {
                    let span = (end - start).as_secs_f64() * 1e3;
                    if let Ok(mut v) = out.lock() {
                        v.push((start, span, ns as f64 / 1e6));
                    }
                }
            }
        }
        (last, last_at) = (now_ns, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), Some(2.5));
        assert_eq!(median(&[]), None);
        assert_eq!(median(&[f64::NAN, 5.0]), Some(5.0));
    }

    #[test]
    fn ratio_is_ours_over_redis() {
        assert_eq!(ratio(Some(150.0), Some(100.0)), Some(1.5));
        assert_eq!(ratio(Some(1.0), Some(0.0)), None);
        assert_eq!(ratio(None, Some(1.0)), None);
    }

    #[test]
    fn proc_text_is_parsed() {
        let statm = "1169360 262144 1540 335 0 1064240 0\n";
        assert_eq!(parse_statm_rss(statm, 4096), Some(262_144 * 4096));
        assert_eq!(parse_statm_rss("12", 4096), None);

        let rollup = "55a0c3c2e000-7ffd1c3f4000 ---p 00000000 00:00 0    [rollup]\n\
                      Rss:             3156400 kB\n\
                      Pss:             1578210 kB\n\
                      Pss_Anon:        1577000 kB\n";
        assert_eq!(proc_kb_field(rollup, "Pss"), Some(1_578_210 * 1024));
        assert_eq!(proc_kb_field(rollup, "Rss"), Some(3_156_400 * 1024));

        let meminfo = "MemTotal:       24683436 kB\nSwapCached:            0 kB\n\
                       Cached:          3501232 kB\n";
        assert_eq!(proc_kb_field(meminfo, "Cached"), Some(3_501_232 * 1024));
        assert_eq!(proc_kb_field(meminfo, "Buffers"), None);
    }

    #[test]
    fn children_files_list_pids() {
        assert_eq!(parse_children("4242 4250 \n"), [4242, 4250]);
        assert!(parse_children("").is_empty());
    }

    #[test]
    fn info_fields_are_found_by_exact_name() {
        let info = "# Persistence\r\nrdb_bgsave_in_progress:1\r\nrdb_last_bgsave_status:ok\r\n";
        assert_eq!(info_u64(info, "rdb_bgsave_in_progress"), Some(1));
        assert_eq!(info_field(info, "rdb_last_bgsave_status"), Some("ok"));
        assert_eq!(info_field(info, "rdb_bgsave"), None);
    }

    #[test]
    fn replies_are_read() {
        let mut r = io::Cursor::new(b"*2\r\n$3\r\nfoo\r\n$-1\r\n-ERR unknown\r\n:7\r\n".to_vec());
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Array(vec![Reply::Bulk(Some(b"foo".to_vec())), Reply::Bulk(None)])
        );
        assert_eq!(
            read_reply(&mut r).unwrap(),
            Reply::Error("ERR unknown".into())
        );
        assert_eq!(read_reply(&mut r).unwrap(), Reply::Int(7));
        assert!(read_reply(&mut r).is_err(), "end of input is an error");
    }
}
