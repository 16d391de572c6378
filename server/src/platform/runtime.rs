//! The event-loop runtime, behind one small module.
//!
//! Every worker thread runs its own event loop, on one of two backends
//! chosen once at start ([`init`], `io-backend`):
//! - io_uring (the default): a tokio-uring loop, one ring per thread.
//!   tokio-uring is the runtime the product's owner named; it is
//!   unmaintained upstream (0.5.0, pinned to io-uring 0.6) and drives its
//!   ring through epoll.
//! - epoll, where io_uring is denied (a seccomp profile, the
//!   `kernel.io_uring_disabled` sysctl) or asked for: a tokio current-thread
//!   runtime with a LocalSet; sockets through tokio's epoll reactor, file
//!   writes and syncs on tokio's blocking threads.
//!
//! Nothing outside this module names tokio-uring: connections, commands
//! and storage see only [`Listener`], [`Stream`], [`RingFile`], [`spawn`]
//! and [`sleep`], each an enum over the two backends.
//!
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

/// What [`init`] chose for this process: the io_uring features, or None
/// on the epoll backend.
static FEATURES: std::sync::OnceLock<Option<Features>> = std::sync::OnceLock::new();

/// The event-loop backend asked for (`io-backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// io_uring where it can be set up, else epoll with a warning.
    Auto,
    IoUring,
    Epoll,
}

/// Whether this process runs its loops on io_uring (else on epoll).
fn uring() -> bool {
    matches!(FEATURES.get(), Some(Some(_)))
}

/// The features every ring of this process uses (none before [`init`]).
pub fn features() -> Features {
    FEATURES.get().copied().flatten().unwrap_or_default()
}

/// The event loop's name, as INFO's `multiplexing_api` says it.
pub fn backend_name() -> &'static str {
    if uring() {
        "io_uring"
    } else {
        "epoll"
    }
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

/// Chooses the backend, once and on the main thread before any worker
/// starts. For io_uring, probes which set-up flags and opcodes this kernel
/// (and the mask, see [`Mask`]) allows: a small ring is set up with every
/// flag, and on EINVAL again without the newest one, down to none (Linux
/// 5.10); opcodes come from the ring's probe. Ok: the line to log (a
/// warning when `auto` fell back to epoll). Err: io_uring was required
/// and cannot be set up, with the cause and the remedy in one line.
pub fn init(choice: Choice) -> Result<(bool, String), String> {
    let chosen = match choice {
        Choice::Epoll => None,
        _ => match probe(&Mask::from_env()) {
            Ok(f) => Some(f),
            Err(e) if choice == Choice::Auto => {
                let _ = FEATURES.set(None);
                return Ok((
                    true,
                    format!(
                        "{} -- running on the portable epoll backend instead \
                         (io-backend auto; INFO says io_backend:epoll)",
                        setup_error(&e)
                    ),
                ));
            }
            Err(e) => return Err(setup_error(&e)),
        },
    };
    let _ = FEATURES.set(chosen);
    Ok(match chosen {
        Some(f) => (
            false,
            format!("Event loops on io_uring, features: {}", f.names()),
        ),
        None => (
            false,
            "Event loops on epoll (io-backend epoll); file I/O on helper threads".to_string(),
        ),
    })
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
             (LimitMEMLOCK= under systemd, --ulimit memlock= under Docker), or run with \
             --io-backend epoll"
        ),
        Some(libc::EPERM | libc::ENOSYS | libc::EACCES) => format!(
            "io_uring is denied or unavailable ({e}): likely a seccomp profile (Docker's \
             default denies io_uring since Docker 25) or the kernel.io_uring_disabled sysctl; \
             allow io_uring_setup, io_uring_enter and io_uring_register in the seccomp profile \
             (deploy/seccomp/with-io-uring.py adds them to Docker's; docker run \
             --security-opt seccomp=<profile>) or set \
             kernel.io_uring_disabled=0, or run with --io-backend epoll"
        ),
        _ => format!("Can't set up an io_uring: {e}"),
    }
}

/// Runs `main` on a new thread with its own event loop: an io_uring set
/// up with the [`features`] found at start, or a tokio current-thread
/// runtime on epoll. A loop that cannot be set up there (the
/// locked-memory limit reached by the later rings) ends the process with
/// one line saying why.
pub fn start_thread<F, Fut>(name: String, main: F) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    let on_uring = uring();
    let f = features();
    std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if !on_uring {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build();
                match rt {
                    Ok(rt) => tokio::task::LocalSet::new().block_on(&rt, main()),
                    Err(e) => {
                        crate::log::warning(&format!("{name}: can't start an event loop: {e}"));
                        std::process::exit(1);
                    }
                }
                return;
            }
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
    tokio::task::spawn_local(crate::latency::Timed::new(std::any::type_name::<F>(), f));
}

/// rename(2) on the ring; on a blocking helper thread on epoll or where
/// the kernel has no IORING_OP_RENAMEAT (before 5.11).
pub async fn rename(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    if uring() && features().renameat {
        return tokio_uring::fs::rename(from, to).await;
    }
    let (from, to) = (from.to_path_buf(), to.to_path_buf());
    off_loop("rename", move || std::fs::rename(from, to)).await
}

/// Lets the other tasks of this thread run, and the ring submit what they
/// queued, before returning: the way for long background work (a snapshot)
/// to give way between slices. `tokio::task::yield_now` would not do: the
/// ring submits only when the loop parks, and a task that keeps yielding
/// keeps it from parking, so every connection of the thread would stall
/// until the work is done (measured: an 80 ms stall of a probe client
/// during a 0.1 s snapshot). A no-op on the ring completes only after the
/// loop has parked and submitted. On epoll there is no ring to submit:
/// tokio polls its reactor between task rounds, so yield_now does.
pub async fn yield_to_loop() {
    if uring() {
        let _ = tokio_uring::no_op().await;
    } else {
        tokio::task::yield_now().await;
    }
}

pub async fn sleep(d: Duration) {
    tokio::time::sleep(d).await;
}

/// Sleeps with microsecond precision, for rests far shorter than the
/// millisecond [`sleep`] resolves (a timerfd read on this thread's ring, or
/// awaited through the epoll reactor). Falls back to [`sleep`] where a
/// timerfd cannot be made.
pub struct FineTimer {
    fd: Option<(TimerFd, RawFd)>,
    buf: std::cell::Cell<Vec<u8>>,
}

enum TimerFd {
    Uring(tokio_uring::fs::File),
    Epoll(tokio::io::unix::AsyncFd<std::fs::File>),
}

impl FineTimer {
    pub fn new() -> FineTimer {
        let fd = crate::sys::timerfd().ok().and_then(|f| {
            let raw = f.as_raw_fd();
            let t = if uring() {
                TimerFd::Uring(tokio_uring::fs::File::from_std(f))
            } else {
                crate::sys::set_nonblocking(raw).ok()?;
                // Deprecated for descriptors that could be closed while
                // registered; this one is owned by the AsyncFd and closed
                // only when it is dropped.
                #[allow(deprecated)]
                let fd = tokio::io::unix::AsyncFd::new(f).ok()?;
                TimerFd::Epoll(fd)
            };
            Some((t, raw))
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
        let ok = match file {
            TimerFd::Uring(file) => {
                // The expiry count (8 bytes); -1 = no offset (not seekable).
                let mut buf = self.buf.take();
                buf.clear();
                buf.resize(8, 0);
                let (r, buf) = file.read_at(buf, u64::MAX).await;
                self.buf.set(buf);
                r.is_ok()
            }
            TimerFd::Epoll(fd) => loop {
                let Ok(mut guard) = fd.readable().await else {
                    break false;
                };
                let mut count = [0u8; 8];
                match guard.try_io(|f| std::io::Read::read(&mut f.get_ref(), &mut count)) {
                    Ok(r) => break r.is_ok(),
                    Err(_would_block) => continue,
                }
            },
        };
        if !ok {
            sleep(d).await;
        }
    }
}

/// Waits for `f` at most `d`; None on timeout (the operation is cancelled).
pub async fn timeout<F: Future>(d: Duration, f: F) -> Option<F::Output> {
    tokio::time::timeout(d, f).await.ok()
}

/// A listening socket served by this thread's loop.
pub enum Listener {
    Uring(tokio_uring::net::TcpListener),
    Epoll(tokio::net::TcpListener),
}

impl Listener {
    /// Takes over a bound, listening std socket (created with SO_REUSEPORT
    /// on the main thread so that bind errors are reported before start).
    pub fn from_std(l: std::net::TcpListener) -> io::Result<Self> {
        if uring() {
            return Ok(Listener::Uring(tokio_uring::net::TcpListener::from_std(l)));
        }
        l.set_nonblocking(true)?;
        Ok(Listener::Epoll(tokio::net::TcpListener::from_std(l)?))
    }

    pub async fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            Listener::Uring(l) => {
                let (s, addr) = l.accept().await?;
                Ok((Stream::Uring(s), addr))
            }
            Listener::Epoll(l) => {
                let (s, addr) = l.accept().await?;
                Ok((Stream::Epoll(s), addr))
            }
        }
    }
}

/// A connected TCP stream. Reads and writes move an owned buffer into the
/// kernel operation and hand it back with the result.
pub enum Stream {
    Uring(tokio_uring::net::TcpStream),
    Epoll(tokio::net::TcpStream),
}

impl Stream {
    /// Reads into the spare capacity of `buf` (after its current length).
    /// Returns the byte count (0 at end of stream) and the buffer.
    pub async fn read(&self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        let cap = buf.capacity();
        debug_assert!(cap > len, "read needs spare capacity");
        match self {
            Stream::Uring(s) => {
                let (res, slice) = s.read(buf.slice(len..cap)).await;
                (res, slice.into_inner())
            }
            Stream::Epoll(s) => loop {
                if let Err(e) = s.readable().await {
                    return (Err(e), buf);
                }
                match s.try_read_buf(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return (r, buf),
                }
            },
        }
    }

    /// Writes all of `buf`.
    pub async fn write_all(&self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Uring(s) => s.write_all(buf).await,
            Stream::Epoll(_) => {
                let mut done = 0;
                let mut buf = buf;
                while done < buf.len() {
                    let end = buf.len();
                    let (r, b) = self.write_some(buf, done, end).await;
                    buf = b;
                    match r {
                        Ok(0) => return (Err(io::ErrorKind::WriteZero.into()), buf),
                        Ok(n) => done += n,
                        Err(e) => return (Err(e), buf),
                    }
                }
                (Ok(()), buf)
            }
        }
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
        match self {
            Stream::Uring(s) => {
                let (res, slice) = s.write(buf.slice(start..end)).submit().await;
                (res, slice.into_inner())
            }
            Stream::Epoll(s) => loop {
                if let Err(e) = s.writable().await {
                    return (Err(e), buf);
                }
                let part = buf.get(start..end).unwrap_or_default();
                match s.try_write(part) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                    r => return (r, buf),
                }
            },
        }
    }

    pub fn set_nodelay(&self) -> io::Result<()> {
        match self {
            Stream::Uring(s) => s.set_nodelay(true),
            Stream::Epoll(s) => s.set_nodelay(true),
        }
    }

    pub fn raw_fd(&self) -> RawFd {
        match self {
            Stream::Uring(s) => s.as_raw_fd(),
            Stream::Epoll(s) => s.as_raw_fd(),
        }
    }
}

/// A log file on this thread's ring: writes and fdatasync are io_uring
/// operations, so the event loop never blocks on the disk. On epoll they
/// are pwrite and fdatasync on tokio's blocking threads (O_DIRECT, where
/// the file has it, kept).
pub enum RingFile {
    Uring(tokio_uring::fs::File),
    Thread(std::sync::Arc<std::fs::File>),
}

/// Runs `f` on a blocking helper thread and waits for it.
async fn off_loop<T: Send + 'static>(
    what: &str,
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(io::Error::other(format!("{what} on a helper thread: {e}"))))
}

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
        if uring() {
            RingFile::Uring(tokio_uring::fs::File::from_std(f))
        } else {
            RingFile::Thread(std::sync::Arc::new(f))
        }
    }

    /// Writes all of `buf` at `pos`; hands the buffer back.
    pub async fn write_all_at(&self, buf: AlignedBuf, pos: u64) -> (io::Result<()>, AlignedBuf) {
        let len = buf.len();
        self.write_prefix_at(buf, len, pos).await
    }

    /// Writes the first `len` bytes of `buf` at `pos`; hands the buffer back.
    pub async fn write_prefix_at(
        &self,
        buf: AlignedBuf,
        len: usize,
        pos: u64,
    ) -> (io::Result<()>, AlignedBuf) {
        let len = len.min(buf.len());
        match self {
            RingFile::Uring(f) => {
                let (res, slice) = f.write_all_at(RingBuf(buf).slice(..len), pos).await;
                (res, slice.into_inner().0)
            }
            RingFile::Thread(f) => {
                let f = std::sync::Arc::clone(f);
                let r = tokio::task::spawn_blocking(move || {
                    use std::os::unix::fs::FileExt;
                    let part = buf.as_slice().get(..len).unwrap_or_default();
                    (f.write_all_at(part, pos), buf)
                })
                .await;
                match r {
                    Ok(done) => done,
                    // The buffer went with the failed thread: a fresh one
                    // of the same size takes its place.
                    Err(e) => (
                        Err(io::Error::other(format!("write on a helper thread: {e}"))),
                        AlignedBuf::zeroed(len),
                    ),
                }
            }
        }
    }

    pub async fn sync_data(&self) -> io::Result<()> {
        match self {
            RingFile::Uring(f) => f.sync_data().await,
            RingFile::Thread(f) => {
                let f = std::sync::Arc::clone(f);
                off_loop("fdatasync", move || f.sync_data()).await
            }
        }
    }

    pub async fn sync_all(&self) -> io::Result<()> {
        match self {
            RingFile::Uring(f) => f.sync_all().await,
            RingFile::Thread(f) => {
                let f = std::sync::Arc::clone(f);
                off_loop("fsync", move || f.sync_all()).await
            }
        }
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

/// Whether this process runs on io_uring (else on epoll).
pub fn io_uring_available() -> bool {
    uring()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(names: &str) -> Mask {
        let has = |n: &str| names.split(',').any(|x| x == n);
        Mask {
            coop_taskrun: has("coop_taskrun"),
            single_issuer: has("single_issuer"),
            renameat: has("renameat"),
            io_uring: has("io_uring"),
        }
    }

    /// Masked features are never probed, whatever the kernel has; the
    /// set-up flags fall back newest first.
    #[test]
    fn probe_honours_the_mask() {
        let Ok(all) = probe(&mask("")) else {
            return; // no io_uring where these tests run
        };
        let none = probe(&mask("coop_taskrun,single_issuer,renameat")).expect("probe");
        assert_eq!(none, Features::default());
        assert_eq!(none.names(), "none");
        let f = probe(&mask("single_issuer")).expect("probe");
        assert!(!f.single_issuer);
        assert_eq!(f.coop_taskrun, all.coop_taskrun);
        assert_eq!(f.renameat, all.renameat);
        // Without COOP_TASKRUN, SINGLE_ISSUER is not tried either (it came
        // later: a kernel without the one has not the other).
        let f = probe(&mask("coop_taskrun")).expect("probe");
        assert!(!f.coop_taskrun && !f.single_issuer);
        let e = probe(&mask("io_uring")).expect_err("masked io_uring");
        assert_eq!(e.raw_os_error(), Some(libc::EPERM));
    }

    #[test]
    fn setup_errors_name_the_cause_and_the_remedy() {
        let memlock = setup_error(&io::Error::from_raw_os_error(libc::ENOMEM));
        assert!(memlock.contains("ulimit -l"), "{memlock}");
        assert!(memlock.contains("5.10.162"), "{memlock}");
        for errno in [libc::EPERM, libc::ENOSYS] {
            let denied = setup_error(&io::Error::from_raw_os_error(errno));
            for needle in ["seccomp", "kernel.io_uring_disabled", "--io-backend epoll"] {
                assert!(denied.contains(needle), "{needle}: {denied}");
            }
        }
    }
}
