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
mod rawconn;
mod servers;
mod tmpfs;

pub use rawconn::*;
pub use servers::*;
pub use tmpfs::*;

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

pub mod resp;

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
