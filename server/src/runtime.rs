//! The event-loop runtime, behind one small module.
//!
//! Every worker thread runs its own tokio-uring loop (one io_uring per
//! thread). tokio-uring is the runtime the product's owner named; it is
//! unmaintained upstream (0.5.0, pinned to io-uring 0.6) and drives its ring
//! through epoll, so nothing outside this module names it: connections,
//! commands and storage see only [`Listener`], [`Stream`], [`spawn`] and
//! [`sleep`], and the loop could move to another io_uring runtime by
//! rewriting this file.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use engine::journal::io::AlignedBuf;
use tokio_uring::buf::BoundedBuf;

/// The io_uring set-up flags and opcodes newer than Linux 5.10 that this
/// process found usable at start ([`init`]); every ring uses these.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// IORING_SETUP_COOP_TASKRUN (5.19): completions are reaped when the
    /// loop polls the ring anyway, so the kernel need not interrupt the
    /// thread to run task work.
    pub coop_taskrun: bool,
    /// IORING_SETUP_SINGLE_ISSUER (6.0): only the ring's thread submits.
    pub single_issuer: bool,
    /// IORING_OP_RENAMEAT (5.11): rename on the ring; without it, rename
    /// runs on a blocking helper thread.
    pub renameat: bool,
}

impl Features {
    /// The features in use, comma-separated (`none` when none are).
    pub fn names(&self) -> String {
        let names: Vec<&str> = [
            (self.coop_taskrun, "coop_taskrun"),
            (self.single_issuer, "single_issuer"),
            (self.renameat, "renameat"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| *n)
        .collect();
        if names.is_empty() {
            "none".to_string()
        } else {
            names.join(",")
        }
    }
}

/// What [`init`] chose for this process.
static FEATURES: std::sync::OnceLock<Features> = std::sync::OnceLock::new();

/// The features every ring of this process uses (none before [`init`]).
pub fn features() -> Features {
    FEATURES.get().copied().unwrap_or_default()
}

/// The event loop's name, as INFO's `multiplexing_api` says it.
pub fn backend_name() -> &'static str {
    "io_uring"
}

/// INFO's server fields for the runtime: the backend and the io_uring
/// features in use.
pub fn info_fields() -> String {
    format!(
        "io_backend:{}\r\nio_uring_features:{}\r\n",
        backend_name(),
        features().names()
    )
}

/// The test seam `KV_IO_URING_MASK`: a comma-separated list of features
/// to treat as unsupported whatever the kernel says (`coop_taskrun`,
/// `single_issuer`, `renameat`), so that the 5.10 fallbacks can be run on
/// a newer kernel; `io_uring` makes the ring set-up itself fail with EPERM
/// (as under a seccomp profile that denies io_uring).
struct Mask {
    coop_taskrun: bool,
    single_issuer: bool,
    renameat: bool,
    io_uring: bool,
}

impl Mask {
    fn from_env() -> Mask {
        let v = std::env::var("KV_IO_URING_MASK").unwrap_or_default();
        let has = |name: &str| v.split(',').any(|x| x.trim() == name);
        Mask {
            coop_taskrun: has("coop_taskrun"),
            single_issuer: has("single_issuer"),
            renameat: has("renameat"),
            io_uring: has("io_uring"),
        }
    }
}

/// Probes, once and on the main thread before any worker starts, which
/// io_uring set-up flags and opcodes this kernel (and the mask, see
/// [`Mask`]) allows: a small ring is set up with every flag, and on EINVAL
/// again without the newest one, down to none (Linux 5.10); opcodes come
/// from the ring's probe. Err: io_uring cannot be set up at all, with the
/// cause and the remedy in one line.
pub fn init() -> Result<Features, String> {
    let mask = Mask::from_env();
    let f = probe(&mask).map_err(|e| setup_error(&e))?;
    let _ = FEATURES.set(f);
    Ok(features())
}

fn probe(mask: &Mask) -> io::Result<Features> {
    if mask.io_uring {
        return Err(io::Error::from_raw_os_error(libc::EPERM));
    }
    // Newest first: SINGLE_ISSUER (6.0) needs COOP_TASKRUN's era (5.19).
    let tries: Vec<(bool, bool)> = [(true, true), (true, false), (false, false)]
        .into_iter()
        .filter(|&(coop, single)| !((coop && mask.coop_taskrun) || (single && mask.single_issuer)))
        .collect();
    let mut last = io::Error::from_raw_os_error(libc::EINVAL);
    for (coop, single) in tries {
        let mut b: io_uring::Builder = io_uring::IoUring::builder();
        if coop {
            b.setup_coop_taskrun();
        }
        if single {
            b.setup_single_issuer();
        }
        match b.build(8) {
            Ok(ring) => {
                let mut p = io_uring::Probe::new();
                let ops = ring.submitter().register_probe(&mut p).is_ok();
                let renameat =
                    !mask.renameat && ops && p.is_supported(io_uring::opcode::RenameAt::CODE);
                return Ok(Features {
                    coop_taskrun: coop,
                    single_issuer: single,
                    renameat,
                });
            }
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

/// One line for an io_uring set-up that failed: the cause and the remedy.
pub fn setup_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(libc::ENOMEM) => format!(
            "Can't set up an io_uring ({e}): this kernel charges ring memory to the \
             locked-memory limit (Linux 5.10 before 5.10.162 does): raise `ulimit -l` \
             (LimitMEMLOCK= under systemd, --ulimit memlock= under Docker)"
        ),
        Some(libc::EPERM | libc::ENOSYS | libc::EACCES) => format!(
            "io_uring is denied or unavailable ({e}): likely a seccomp profile (Docker's \
             default denies io_uring since Docker 25) or the kernel.io_uring_disabled sysctl; \
             allow io_uring (the seccomp profile in the repository adds it to Docker's \
             default; sysctl kernel.io_uring_disabled=0)"
        ),
        _ => format!("Can't set up an io_uring: {e}"),
    }
}

/// Runs `main` on a new thread with its own io_uring event loop, set up
/// with the [`features`] found at start. A ring that cannot be set up
/// there (the locked-memory limit reached by the later rings) ends the
/// process with one line saying why.
pub fn start_thread<F, Fut>(name: String, main: F) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let f = features();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            let mut ring = io_uring::IoUring::builder();
            if f.coop_taskrun {
                ring.setup_coop_taskrun();
            }
            if f.single_issuer {
                ring.setup_single_issuer();
            }
            let mut b = tokio_uring::builder();
            b.entries(1024).uring_builder(&ring);
            match tokio_uring::Runtime::new(&b) {
                Ok(rt) => rt.block_on(async move { main().await }),
                Err(e) => {
                    crate::log::warning(&format!("{name}: {}", setup_error(&e)));
                    std::process::exit(1);
                }
            }
        })
}

/// Spawns a task on the current thread's loop, timed for the latency
/// monitor under the name of its type (the async function it runs).
pub fn spawn<F: Future<Output = ()> + 'static>(f: F) {
    tokio_uring::spawn(crate::latency::Timed::new(std::any::type_name::<F>(), f));
}

/// rename(2) on the ring.
/// rename(2) on the ring; on a blocking helper thread where the kernel has
/// no IORING_OP_RENAMEAT (before 5.11).
pub async fn rename(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    if features().renameat {
        return tokio_uring::fs::rename(from, to).await;
    }
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    tokio::task::spawn_blocking(move || std::fs::rename(from, to))
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("rename thread: {e}"))))
}

/// Lets the other tasks of this thread run, and the ring submit what they
/// queued, before returning: the way for long background work (a snapshot)
/// to give way between slices. `tokio::task::yield_now` would not do: the
/// ring submits only when the loop parks, and a task that keeps yielding
/// keeps it from parking, so every connection of the thread would stall
/// until the work is done (measured: an 80 ms stall of a probe client
/// during a 0.1 s snapshot). A no-op on the ring completes only after the
/// loop has parked and submitted.
pub async fn yield_to_loop() {
    let _ = tokio_uring::no_op().await;
}

pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Sleeps with microsecond precision, for rests far shorter than the
/// millisecond [`sleep`] resolves (a timerfd read on this thread's ring).
/// Falls back to [`sleep`] where a timerfd cannot be made.
pub struct FineTimer {
    fd: Option<(tokio_uring::fs::File, RawFd)>,
    buf: std::cell::Cell<Vec<u8>>,
}

impl FineTimer {
    pub fn new() -> FineTimer {
        let fd = crate::sys::timerfd().ok().map(|f| {
            let raw = f.as_raw_fd();
            (tokio_uring::fs::File::from_std(f), raw)
        });
        FineTimer {
            fd,
            buf: std::cell::Cell::new(Vec::with_capacity(8)),
        }
    }

    pub async fn sleep(&self, d: Duration) {
        let Some((file, raw)) = &self.fd else {
            return sleep(d).await;
        };
        if crate::sys::timerfd_arm(*raw, d).is_err() {
            return sleep(d).await;
        }
        // The expiry count (8 bytes); -1 = no offset (not seekable).
        let mut buf = self.buf.take();
        buf.clear();
        buf.resize(8, 0);
        let (r, buf) = file.read_at(buf, u64::MAX).await;
        self.buf.set(buf);
        if r.is_err() {
            sleep(d).await;
        }
    }
}

/// Waits for `f` at most `d`; None on timeout (the operation is cancelled).
pub async fn timeout<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    tokio::time::timeout(d, f).await.ok()
}

/// A listening socket served by this thread's ring.
pub struct Listener(tokio_uring::net::TcpListener);

impl Listener {
    /// Takes over a bound, listening std socket (created with SO_REUSEPORT
    /// on the main thread so that bind errors are reported before start).
    pub fn from_std(l: std::net::TcpListener) -> Self {
        Listener(tokio_uring::net::TcpListener::from_std(l))
    }

    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        let (s, addr) = self.0.accept().await?;
        Ok((Stream(s), addr))
    }
}

/// A connected TCP stream. Reads and writes move an owned buffer into the
/// kernel operation and hand it back with the result.
pub struct Stream(tokio_uring::net::TcpStream);

impl Stream {
    /// Reads into the spare capacity of `buf` (after its current length).
    /// Returns the byte count (0 at end of stream) and the buffer.
    pub async fn read(&self, buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        let cap = buf.capacity();
        debug_assert!(cap > len, "read needs spare capacity");
        let (res, slice) = self.0.read(buf.slice(len..cap)).await;
        (res, slice.into_inner())
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        let (res, buf) = self.0.write_all(buf).await;
        (res, buf)
    }

    /// Writes some of `buf[start..end]` (one operation; it completes once
    /// the socket took at least a byte). Returns how many bytes went.
    pub async fn write_some(
        &self,
        buf: Vec<u8>,
        start: usize,
        end: usize,
    ) -> (io::Result<usize>, Vec<u8>) {
        let end = end.min(buf.len());
        let start = start.min(end);
        let (res, slice) = self.0.write(buf.slice(start..end)).submit().await;
        (res, slice.into_inner())
    }

    pub fn set_nodelay(&self) -> io::Result<()> {
        self.0.set_nodelay(true)
    }

    pub fn raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// A log file on this thread's ring: writes and fdatasync are io_uring
/// operations, so the event loop never blocks on the disk.
pub struct RingFile(tokio_uring::fs::File);

/// An [`AlignedBuf`] lent to the kernel for the length of one operation.
struct RingBuf(AlignedBuf);

// SAFETY: the pointer is into the AlignedBuf's heap allocation, which does
// not move or change size while tokio-uring owns the value; all of its
// `len` bytes are initialized.
#[allow(unsafe_code)]
unsafe impl tokio_uring::buf::IoBuf for RingBuf {
    fn stable_ptr(&self) -> *const u8 {
        self.0.as_slice().as_ptr()
    }

    fn bytes_init(&self) -> usize {
        self.0.len()
    }

    fn bytes_total(&self) -> usize {
        self.0.len()
    }
}

impl RingFile {
    /// Takes over an open file (pass a `try_clone` to keep the original).
    pub fn from_std(f: std::fs::File) -> Self {
        RingFile(tokio_uring::fs::File::from_std(f))
    }

    /// Writes all of `buf` at `pos`; hands the buffer back.
    pub async fn write_all_at(&self, buf: AlignedBuf, pos: u64) -> (io::Result<()>, AlignedBuf) {
        let (res, buf) = self.0.write_all_at(RingBuf(buf), pos).await;
        (res, buf.0)
    }

    /// Writes the first `len` bytes of `buf` at `pos`; hands the buffer back.
    pub async fn write_prefix_at(
        &self,
        buf: AlignedBuf,
        len: usize,
        pos: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        let len = len.min(buf.len());
        let (res, slice) = self.0.write_all_at(RingBuf(buf).slice(..len), pos).await;
        (res, slice.into_inner().0)
    }

    pub async fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data().await
    }

    pub async fn sync_all(&self) -> io::Result<()> {
        self.0.sync_all().await
    }
}

/// A thread that runs jobs for an event loop, one after another: blocking
/// I/O where the ring is not used, or memory to be touched away from the
/// loop. Jobs sent after the thread is gone (or when it could not start)
/// never run.
pub struct JobThread(std::sync::mpsc::Sender<Box<dyn FnOnce() + Send>>);

impl JobThread {
    pub fn spawn(name: String) -> io::Result<JobThread> {
        let (tx, rx) = std::sync::mpsc::channel::<Box<dyn FnOnce() + Send>>();
        std::thread::Builder::new().name(name).spawn(move || {
            while let Ok(job) = rx.recv() {
                job();
            }
        })?;
        Ok(JobThread(tx))
    }

    /// A job thread that runs nothing (its thread could not start).
    pub fn stopped() -> JobThread {
        JobThread(std::sync::mpsc::channel().0)
    }

    /// Queues `job`; false if the thread is gone.
    pub fn send(&self, job: impl FnOnce() + Send + 'static) -> bool {
        self.0.send(Box::new(job)).is_ok()
    }

    /// Runs `f` on the thread and waits for its result; None if the thread
    /// is gone.
    pub async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !self.send(move || {
            let _ = tx.send(f());
        }) {
            return None;
        }
        rx.await.ok()
    }
}

/// Whether this process may use io_uring at all (set up a small ring).
pub fn io_uring_available() -> bool {
    FEATURES.get().is_some()
}
