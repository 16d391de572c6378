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

/// Runs `main` on a new thread with its own io_uring event loop.
pub fn start_thread<F, Fut>(name: String, main: F) -> io::Result<std::thread::JoinHandle<()>>
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + 'static,
{
    std::thread::Builder::new().name(name).spawn(move || {
        // Completions are reaped when the loop polls the ring anyway, so the
        // kernel need not interrupt the thread to run task work
        // (COOP_TASKRUN); only this thread submits (SINGLE_ISSUER).
        let mut ring = io_uring::IoUring::builder();
        ring.setup_coop_taskrun().setup_single_issuer();
        tokio_uring::builder()
            .entries(1024)
            .uring_builder(&ring)
            .start(async move { main().await });
    })
}

/// Spawns a task on the current thread's loop, timed for the latency
/// monitor under the name of its type (the async function it runs).
pub fn spawn<F: Future<Output = ()> + 'static>(f: F) {
    tokio_uring::spawn(crate::latency::Timed::new(std::any::type_name::<F>(), f));
}

/// rename(2) on the ring.
pub async fn rename(from: &std::path::Path, to: &std::path::Path) -> io::Result<()> {
    tokio_uring::fs::rename(from, to).await
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
    io_uring::IoUring::new(4).is_ok()
}
