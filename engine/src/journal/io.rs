//! # journal::io
//!
//! The I/O seam of the per-shard log writer. [`LogIo`] is everything the
//! writer ([`super::writer::Journal`]) needs from the operating system:
//! segment files opened for direct I/O, 4 KiB-aligned positioned writes,
//! `fdatasync`, zero-filled preallocation, and listing / removing segments.
//!
//! Implementations here:
//! - [`StdLogIo`]: `std::fs` with `O_DIRECT` when the filesystem accepts it,
//!   plain buffered `pwrite` when it refuses (`EINVAL`, e.g. tmpfs).
//!   [`StdLogIo::io_path`] tells which ([`IoPath`]). The fallback does not
//!   call `posix_fadvise(DONTNEED)`: that needs `unsafe` libc calls, which
//!   this crate does not allow; the server's I/O module may add it.
//! - [`MemIo`]: an in-memory model that tracks, per file, the bytes made
//!   durable by `sync_data` and those written since, so tests can build the
//!   image a crash would leave (like redb's test storage backend).
//! - [`FaultyIo`]: wraps any [`LogIo`] and fails the Nth write, sync or
//!   preallocation with `EIO` or `ENOSPC`, tears a write (only a prefix of
//!   its blocks reaches the file), or "crashes" (refuses all further I/O).
//!
//! [`ReadIo`] is the reading half of the same seam, for the readers of
//! snapshot files and the snapshot manifest (`crate::snapshot::manifest`,
//! `crate::snapshot::reader`): open, length, positioned reads, whole small
//! files, directory listings, and a hint that what was read may leave the
//! page cache. [`StdLogIo`], [`MemIo`] and [`FaultyIo`] implement it too
//! ([`Op::Read`] faults), so those readers get the same fault injection.
//!
//! Aligned buffers come from [`AlignedBuf`], without `unsafe`: a `Vec<u8>`
//! 4 KiB longer than needed, used from its first 4 KiB-aligned address.
//!
//! The server implements [`LogIo`] on io_uring later; the writer does not
//! care which implementation runs.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Alignment of every offset, length and buffer address passed to
/// [`LogIo::write_at`] (the O_DIRECT block size the writer assumes).
pub const ALIGN: usize = 4096;

/// Name of the segment file whose first record has `first_lsn`:
/// `seg-<first_lsn as 20 zero-padded digits>.log`.
pub fn segment_file_name(first_lsn: u64) -> String {
    format!("seg-{first_lsn:020}.log")
}

/// Parses a name made by [`segment_file_name`]; `None` for anything else.
pub fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("seg-")?.strip_suffix(".log")?;
    if digits.len() != 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The next segment, created and zero-filled ahead of time under this name
/// and renamed to [`segment_file_name`] when the log rolls over to it.
/// Recovery ignores it (it holds no records).
pub const SPARE_SEGMENT_NAME: &str = "seg-spare.tmp";

/// Path of the spare segment inside a shard's log directory.
pub fn spare_path(dir: &Path) -> PathBuf {
    dir.join(SPARE_SEGMENT_NAME)
}

/// Name of shard `index`'s directory inside the log directory: `shard-<i>`.
pub fn shard_dir_name(index: usize) -> String {
    format!("shard-{index}")
}

/// Path of a segment inside a shard's log directory.
pub fn segment_path(dir: &Path, first_lsn: u64) -> PathBuf {
    dir.join(segment_file_name(first_lsn))
}

/// Checks the alignment contract of [`LogIo::write_at`].
pub fn check_aligned(offset: u64, buf: &[u8]) -> io::Result<()> {
    let ok = offset.is_multiple_of(ALIGN as u64)
        && buf.len().is_multiple_of(ALIGN)
        && (buf.as_ptr() as usize).is_multiple_of(ALIGN);
    if ok {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "unaligned log write: offset {offset}, length {}, address {:#x} (all must be multiples of {ALIGN})",
                buf.len(),
                buf.as_ptr() as usize
            ),
        ))
    }
}

/// A zero-initialised byte buffer whose first byte sits at a 4 KiB-aligned
/// address. Fixed length: it never reallocates, so the alignment holds for
/// its whole life.
pub struct AlignedBuf {
    raw: Vec<u8>,
    start: usize,
    len: usize,
}

impl AlignedBuf {
    /// A buffer of `len` zero bytes starting at a multiple of [`ALIGN`].
    pub fn zeroed(len: usize) -> Self {
        let raw = vec![0u8; len.saturating_add(ALIGN)];
        let addr = raw.as_ptr() as usize;
        let start = (ALIGN - addr % ALIGN) % ALIGN;
        Self { raw, start, len }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn as_slice(&self) -> &[u8] {
        self.raw
            .get(self.start..self.start.saturating_add(self.len))
            .unwrap_or(&[])
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        let end = self.start.saturating_add(self.len);
        self.raw.get_mut(self.start..end).unwrap_or(&mut [])
    }
}

impl fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len)
            .field(
                "addr",
                &format_args!("{:#x}", self.as_slice().as_ptr() as usize),
            )
            .finish()
    }
}

/// What the writer needs from the operating system. All paths are a shard's
/// log directory (`<log dir>/shard-<i>`) plus a segment's first lsn.
pub trait LogIo {
    /// An open segment file.
    type File;

    /// Creates (or truncates) the segment `first_lsn` in `dir` for direct
    /// I/O, creating `dir` if needed.
    fn create_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<Self::File>;

    /// Opens an existing segment for direct I/O writes.
    fn open_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<Self::File>;

    /// Writes all of `buf` at `offset`. Offset, length and the buffer's
    /// address are multiples of [`ALIGN`] ([`check_aligned`]).
    fn write_at(&mut self, file: &Self::File, offset: u64, buf: &[u8]) -> io::Result<()>;

    /// `fdatasync`: every byte written before it is durable when it returns.
    fn sync_data(&mut self, file: &Self::File) -> io::Result<()>;

    /// Makes the file `len` bytes long by writing zeros (not only
    /// `fallocate`), so later writes change neither size nor extents. Does
    /// not sync; the caller syncs once afterwards.
    fn preallocate(&mut self, file: &Self::File, len: u64) -> io::Result<()>;

    /// Makes the directory entries of `dir` durable (after creating or
    /// removing a segment).
    fn sync_dir(&mut self, dir: &Path) -> io::Result<()>;

    /// First lsns of the segments in `dir`, ascending. A missing directory
    /// has no segments.
    fn list_segments(&mut self, dir: &Path) -> io::Result<Vec<u64>>;

    /// Removes the segment `first_lsn` from `dir`.
    fn remove_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<()>;
}

/// Which write path [`StdLogIo`] uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoPath {
    /// `O_DIRECT`: writes bypass the page cache.
    Direct,
    /// The filesystem refused `O_DIRECT` (`EINVAL`, e.g. tmpfs): plain
    /// buffered `pwrite` + `fdatasync`. (`posix_fadvise(DONTNEED)` is not
    /// called: it needs unsafe libc, which the engine crate forbids.)
    Buffered,
}

impl IoPath {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Buffered => "buffered",
        }
    }
}

/// [`LogIo`] on `std::fs`: `O_DIRECT` where the filesystem accepts it, else
/// buffered writes.
#[derive(Debug, Default)]
pub struct StdLogIo {
    never_direct: bool,
    path_in_use: Option<IoPath>,
}

impl StdLogIo {
    /// Tries `O_DIRECT` first, falls back to buffered writes on `EINVAL`.
    pub fn new() -> Self {
        Self::default()
    }

    /// Never uses `O_DIRECT` (a configuration switch, and for tests).
    pub fn buffered() -> Self {
        Self {
            never_direct: true,
            path_in_use: None,
        }
    }

    /// The path used for the last segment opened; `None` before the first.
    pub fn io_path(&self) -> Option<IoPath> {
        self.path_in_use
    }

    /// Finds out whether the filesystem of `dir` accepts `O_DIRECT` writes
    /// by opening a scratch file with it and writing one aligned block.
    pub fn probe(dir: &Path) -> io::Result<IoPath> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(".odirect-probe");
        let result = (|| {
            let mut opts = OpenOptions::new();
            opts.read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .custom_flags(libc::O_DIRECT);
            let file = match opts.open(&path) {
                Ok(f) => f,
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return Ok(IoPath::Buffered),
                Err(e) => return Err(e),
            };
            let buf = AlignedBuf::zeroed(ALIGN);
            match file.write_all_at(buf.as_slice(), 0) {
                Ok(()) => Ok(IoPath::Direct),
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => Ok(IoPath::Buffered),
                Err(e) => Err(e),
            }
        })();
        let _ = std::fs::remove_file(&path);
        result
    }

    /// Creates (or truncates) the spare segment of `dir`
    /// ([`SPARE_SEGMENT_NAME`]), with the same I/O path as segments.
    pub fn create_spare(&mut self, dir: &Path) -> io::Result<File> {
        std::fs::create_dir_all(dir).map_err(|e| with_path(e, "create directory", dir))?;
        self.open(&spare_path(dir), true)
    }

    /// Creates (or truncates) any file, with the same I/O path choice as
    /// segments (snapshot files).
    pub fn create_file(&mut self, path: &Path) -> io::Result<File> {
        self.open(path, true)
    }

    fn open(&mut self, path: &Path, create: bool) -> io::Result<File> {
        let mut opts = OpenOptions::new();
        opts.read(true).write(true);
        if create {
            opts.create(true).truncate(true);
        }
        if !self.never_direct {
            let mut direct = opts.clone();
            direct.custom_flags(libc::O_DIRECT);
            match direct.open(path) {
                Ok(f) => {
                    self.path_in_use = Some(IoPath::Direct);
                    return Ok(f);
                }
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {}
                Err(e) => return Err(with_path(e, "open", path)),
            }
        }
        let f = opts.open(path).map_err(|e| with_path(e, "open", path))?;
        self.path_in_use = Some(IoPath::Buffered);
        Ok(f)
    }
}

fn with_path(e: io::Error, op: &str, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{op} {}: {e}", path.display()))
}

impl LogIo for StdLogIo {
    type File = File;

    fn create_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<File> {
        std::fs::create_dir_all(dir).map_err(|e| with_path(e, "create directory", dir))?;
        self.open(&segment_path(dir, first_lsn), true)
    }

    fn open_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<File> {
        self.open(&segment_path(dir, first_lsn), false)
    }

    fn write_at(&mut self, file: &File, offset: u64, buf: &[u8]) -> io::Result<()> {
        check_aligned(offset, buf)?;
        file.write_all_at(buf, offset)
    }

    fn sync_data(&mut self, file: &File) -> io::Result<()> {
        file.sync_data()
    }

    fn preallocate(&mut self, file: &File, len: u64) -> io::Result<()> {
        const CHUNK: usize = 1 << 20;
        let zeros = AlignedBuf::zeroed(CHUNK);
        let mut off = 0u64;
        while off < len {
            let n = usize::try_from(len - off).map_or(CHUNK, |rest| rest.min(CHUNK));
            let chunk = zeros.as_slice().get(..n).unwrap_or(&[]);
            if n.is_multiple_of(ALIGN) {
                self.write_at(file, off, chunk)?;
            } else {
                // Only an unaligned final length (not produced by the
                // writer) gets here; buffered files accept it.
                file.write_all_at(chunk, off)?;
            }
            off = off.saturating_add(n as u64);
        }
        Ok(())
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| with_path(e, "sync directory", dir))?;
        if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(|e| with_path(e, "sync directory", parent))?;
        }
        Ok(())
    }

    fn list_segments(&mut self, dir: &Path) -> io::Result<Vec<u64>> {
        let entries = match std::fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(with_path(e, "list", dir)),
        };
        let mut out = Vec::new();
        for entry in entries {
            let entry = entry?;
            if let Some(lsn) = entry.file_name().to_str().and_then(parse_segment_file_name) {
                out.push(lsn);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn remove_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<()> {
        let path = segment_path(dir, first_lsn);
        std::fs::remove_file(&path).map_err(|e| with_path(e, "remove", &path))
    }
}

/// One file of [`MemIo`].
#[derive(Clone, Debug, Default)]
struct MemFile {
    /// What survives a crash: the contents at the last `sync_data`.
    durable: Vec<u8>,
    /// What a read sees now.
    current: Vec<u8>,
    /// Blocks written since the last `sync_data`.
    dirty: BTreeSet<u64>,
}

/// Handle of a [`MemIo`] file: its path.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct MemHandle(pub PathBuf);

/// In-memory [`LogIo`] that tracks synced and unsynced bytes per file, so
/// tests can build the image a crash leaves ([`MemIo::crash`],
/// [`MemIo::crash_keeping`]). Enforces the alignment contract.
#[derive(Clone, Debug, Default)]
pub struct MemIo {
    files: HashMap<PathBuf, MemFile>,
}

impl MemIo {
    pub fn new() -> Self {
        Self::default()
    }

    /// Current contents of a file (what reads see before a crash).
    pub fn contents(&self, path: &Path) -> Option<&[u8]> {
        self.files.get(path).map(|f| f.current.as_slice())
    }

    /// Contents at the last `sync_data` (what a crash now would leave if no
    /// unsynced block reached the medium).
    pub fn durable_contents(&self, path: &Path) -> Option<&[u8]> {
        self.files.get(path).map(|f| f.durable.as_slice())
    }

    /// Paths of all files, sorted.
    pub fn paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.files.keys().cloned().collect();
        v.sort();
        v
    }

    /// Simulates a crash in which no unsynced block reached the medium.
    pub fn crash(&mut self) {
        self.crash_keeping(|_, _| false);
    }

    /// Simulates a crash in which each block written since the last sync
    /// reached the medium iff `keep(path, block_index)`; any subset models
    /// a device persisting the blocks of unfinished writes in any order.
    /// Afterwards current = durable = that image.
    pub fn crash_keeping(&mut self, mut keep: impl FnMut(&Path, u64) -> bool) {
        for (path, f) in &mut self.files {
            let mut image = f.durable.clone();
            for &block in &f.dirty {
                let start = usize::try_from(block)
                    .unwrap_or(usize::MAX)
                    .saturating_mul(ALIGN);
                let end = start.saturating_add(ALIGN).min(f.current.len());
                if start >= end || !keep(path, block) {
                    continue;
                }
                if image.len() < end {
                    image.resize(end, 0);
                }
                if let (Some(dst), Some(src)) =
                    (image.get_mut(start..end), f.current.get(start..end))
                {
                    dst.copy_from_slice(src);
                }
            }
            f.current = image.clone();
            f.durable = image;
            f.dirty.clear();
        }
    }

    fn file_mut(&mut self, h: &MemHandle) -> io::Result<&mut MemFile> {
        self.files.get_mut(&h.0).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such file {}", h.0.display()),
            )
        })
    }

    fn put(&mut self, h: &MemHandle, offset: u64, buf: &[u8]) -> io::Result<()> {
        let f = self.file_mut(h)?;
        let start = usize::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "offset too large"))?;
        let end = start.saturating_add(buf.len());
        if f.current.len() < end {
            f.current.resize(end, 0);
        }
        if let Some(dst) = f.current.get_mut(start..end) {
            dst.copy_from_slice(buf);
        }
        let first = offset / ALIGN as u64;
        let last = (end as u64).div_ceil(ALIGN as u64);
        f.dirty.extend(first..last);
        Ok(())
    }
}

impl LogIo for MemIo {
    type File = MemHandle;

    fn create_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<MemHandle> {
        let path = segment_path(dir, first_lsn);
        // A truncate is modelled as immediately durable (like the
        // directory entry after sync_dir).
        self.files.insert(path.clone(), MemFile::default());
        Ok(MemHandle(path))
    }

    fn open_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<MemHandle> {
        let path = segment_path(dir, first_lsn);
        if self.files.contains_key(&path) {
            Ok(MemHandle(path))
        } else {
            Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such file {}", path.display()),
            ))
        }
    }

    fn write_at(&mut self, file: &MemHandle, offset: u64, buf: &[u8]) -> io::Result<()> {
        check_aligned(offset, buf)?;
        self.put(file, offset, buf)
    }

    fn sync_data(&mut self, file: &MemHandle) -> io::Result<()> {
        let f = self.file_mut(file)?;
        f.durable = f.current.clone();
        f.dirty.clear();
        Ok(())
    }

    fn preallocate(&mut self, file: &MemHandle, len: u64) -> io::Result<()> {
        let have = self.file_mut(file)?.current.len() as u64;
        if have < len {
            let zeros = vec![0u8; usize::try_from(len - have).unwrap_or(0)];
            self.put(file, have, &zeros)?;
        }
        Ok(())
    }

    fn sync_dir(&mut self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }

    fn list_segments(&mut self, dir: &Path) -> io::Result<Vec<u64>> {
        let mut out: Vec<u64> = self
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().and_then(parse_segment_file_name))
            .collect();
        out.sort_unstable();
        Ok(out)
    }

    fn remove_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<()> {
        let path = segment_path(dir, first_lsn);
        self.files.remove(&path).map(|_| ()).ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!("no such file {}", path.display()),
            )
        })
    }
}

/// Which operation a [`Fault`] applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Write,
    Sync,
    Preallocate,
    /// A [`ReadIo`] read ([`ReadIo::read_at`], [`ReadIo::read_whole`]).
    Read,
}

/// What an injected fault does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// The operation fails with `EIO`; nothing is written.
    Eio,
    /// The operation fails with `ENOSPC`; nothing is written.
    Enospc,
    /// (Writes only.) Only the first `keep_blocks` blocks of the write reach
    /// the file, then the process "crashes": this write and all later I/O
    /// fail with `EIO`.
    Torn { keep_blocks: usize },
}

/// A [`LogIo`] wrapper that injects faults: fail the Nth write / sync /
/// preallocation (counted from when the fault is armed, 1 = the next one),
/// tear a write, or crash. Faults are one-shot; after a crash every
/// operation fails with `EIO` until [`FaultyIo::recover`].
#[derive(Debug)]
pub struct FaultyIo<I: LogIo> {
    inner: I,
    armed: Vec<(Op, u64, Fault)>,
    counts: HashMap<Op, u64>,
    crashed: bool,
}

impl<I: LogIo> FaultyIo<I> {
    pub fn new(inner: I) -> Self {
        Self {
            inner,
            armed: Vec::new(),
            counts: HashMap::new(),
            crashed: false,
        }
    }

    /// Arms `fault` for the `nth` (1-based) `op` from now.
    pub fn fail_nth(&mut self, op: Op, nth: u64, fault: Fault) {
        let done = self.counts.get(&op).copied().unwrap_or(0);
        self.armed
            .push((op, done.saturating_add(nth.max(1)), fault));
    }

    /// From now on every operation fails with `EIO` (the process is dead;
    /// build the post-crash image from the inner [`MemIo`]).
    pub fn crash(&mut self) {
        self.crashed = true;
    }

    pub fn is_crashed(&self) -> bool {
        self.crashed
    }

    /// Clears a crash and any armed faults (a "restart").
    pub fn recover(&mut self) {
        self.crashed = false;
        self.armed.clear();
    }

    /// How many operations of kind `op` were attempted.
    pub fn count(&self, op: Op) -> u64 {
        self.counts.get(&op).copied().unwrap_or(0)
    }

    pub fn inner(&self) -> &I {
        &self.inner
    }

    pub fn inner_mut(&mut self) -> &mut I {
        &mut self.inner
    }

    pub fn into_inner(self) -> I {
        self.inner
    }

    fn check(&mut self, op: Op) -> io::Result<Option<Fault>> {
        if self.crashed {
            return Err(crashed_error());
        }
        let n = self.counts.entry(op).or_insert(0);
        *n = n.saturating_add(1);
        let n = *n;
        let Some(i) = self.armed.iter().position(|&(o, at, _)| o == op && at == n) else {
            return Ok(None);
        };
        let (_, _, fault) = self.armed.swap_remove(i);
        match fault {
            Fault::Eio => Err(io::Error::from_raw_os_error(libc::EIO)),
            Fault::Enospc => Err(io::Error::from_raw_os_error(libc::ENOSPC)),
            Fault::Torn { .. } => Ok(Some(fault)),
        }
    }
}

fn crashed_error() -> io::Error {
    // An injected crash: the process is dead, no further I/O.
    io::Error::from_raw_os_error(libc::EIO)
}

impl<I: LogIo> LogIo for FaultyIo<I> {
    type File = I::File;

    fn create_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<I::File> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.create_segment(dir, first_lsn)
    }

    fn open_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<I::File> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.open_segment(dir, first_lsn)
    }

    fn write_at(&mut self, file: &I::File, offset: u64, buf: &[u8]) -> io::Result<()> {
        match self.check(Op::Write)? {
            Some(Fault::Torn { keep_blocks }) => {
                let keep = keep_blocks.saturating_mul(ALIGN).min(buf.len());
                if keep > 0 {
                    self.inner
                        .write_at(file, offset, buf.get(..keep).unwrap_or(&[]))?;
                }
                self.crashed = true;
                Err(io::Error::from_raw_os_error(libc::EIO))
            }
            _ => self.inner.write_at(file, offset, buf),
        }
    }

    fn sync_data(&mut self, file: &I::File) -> io::Result<()> {
        self.check(Op::Sync)?;
        self.inner.sync_data(file)
    }

    fn preallocate(&mut self, file: &I::File, len: u64) -> io::Result<()> {
        self.check(Op::Preallocate)?;
        self.inner.preallocate(file, len)
    }

    fn sync_dir(&mut self, dir: &Path) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.sync_dir(dir)
    }

    fn list_segments(&mut self, dir: &Path) -> io::Result<Vec<u64>> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.list_segments(dir)
    }

    fn remove_segment(&mut self, dir: &Path, first_lsn: u64) -> io::Result<()> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.remove_segment(dir, first_lsn)
    }
}

/// What the readers of snapshot files and of the manifest need from the
/// operating system: the reading half of the seam [`LogIo`] is the writing
/// half of. Paths are whole.
pub trait ReadIo {
    /// A file open for reading.
    type Reader;

    /// Opens `path` for reading. The error is the operating system's, with
    /// no path in it (callers say which file).
    fn open_read(&mut self, path: &Path) -> io::Result<Self::Reader>;

    /// The file's length in bytes.
    fn file_len(&mut self, file: &Self::Reader) -> io::Result<u64>;

    /// Reads up to `buf.len()` bytes at `offset`; 0 at the end of the file.
    fn read_at(&mut self, file: &Self::Reader, offset: u64, buf: &mut [u8]) -> io::Result<usize>;

    /// The whole of a small file (the manifest).
    fn read_whole(&mut self, path: &Path) -> io::Result<Vec<u8>>;

    /// Names of the entries of `dir` (any order; names that are not UTF-8
    /// left out).
    fn list_names(&mut self, dir: &Path) -> io::Result<Vec<String>>;

    /// A hint: bytes `0..upto` of `file` (the whole file when `upto` is 0)
    /// will not be read again and may leave the page cache. An optimisation
    /// only; the default does nothing (dropping pages needs `unsafe` libc,
    /// which this crate does not allow: the server's implementation does it).
    fn drop_cache(&mut self, _file: &Self::Reader, _upto: u64) {}
}

impl ReadIo for StdLogIo {
    type Reader = File;

    fn open_read(&mut self, path: &Path) -> io::Result<File> {
        File::open(path)
    }

    fn file_len(&mut self, file: &File) -> io::Result<u64> {
        Ok(file.metadata()?.len())
    }

    fn read_at(&mut self, file: &File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match FileExt::read_at(file, buf, offset) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                r => return r,
            }
        }
    }

    fn read_whole(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        std::fs::read(path)
    }

    fn list_names(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(std::fs::read_dir(dir)?
            .flatten()
            .filter_map(|e| e.file_name().into_string().ok())
            .collect())
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("no such file {}", path.display()),
    )
}

impl MemIo {
    /// Puts a whole file in place, durable (a test's fixture).
    pub fn insert_file(&mut self, path: &Path, bytes: Vec<u8>) {
        self.files.insert(
            path.to_path_buf(),
            MemFile {
                durable: bytes.clone(),
                current: bytes,
                dirty: BTreeSet::new(),
            },
        );
    }
}

impl ReadIo for MemIo {
    type Reader = MemHandle;

    fn open_read(&mut self, path: &Path) -> io::Result<MemHandle> {
        if self.files.contains_key(path) {
            Ok(MemHandle(path.to_path_buf()))
        } else {
            Err(not_found(path))
        }
    }

    fn file_len(&mut self, file: &MemHandle) -> io::Result<u64> {
        Ok(self.file_mut(file)?.current.len() as u64)
    }

    fn read_at(&mut self, file: &MemHandle, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let f = self.file_mut(file)?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let src = f.current.get(start..).unwrap_or(&[]);
        let n = src.len().min(buf.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), src.get(..n)) {
            dst.copy_from_slice(src);
        }
        Ok(n)
    }

    fn read_whole(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        self.files
            .get(path)
            .map(|f| f.current.clone())
            .ok_or_else(|| not_found(path))
    }

    fn list_names(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        Ok(self
            .files
            .keys()
            .filter(|p| p.parent() == Some(dir))
            .filter_map(|p| p.file_name()?.to_str().map(str::to_owned))
            .collect())
    }
}

impl<I: LogIo + ReadIo> ReadIo for FaultyIo<I> {
    type Reader = <I as ReadIo>::Reader;

    fn open_read(&mut self, path: &Path) -> io::Result<Self::Reader> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.open_read(path)
    }

    fn file_len(&mut self, file: &Self::Reader) -> io::Result<u64> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.file_len(file)
    }

    fn read_at(&mut self, file: &Self::Reader, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.check(Op::Read)?;
        self.inner.read_at(file, offset, buf)
    }

    fn read_whole(&mut self, path: &Path) -> io::Result<Vec<u8>> {
        self.check(Op::Read)?;
        self.inner.read_whole(path)
    }

    fn list_names(&mut self, dir: &Path) -> io::Result<Vec<String>> {
        if self.crashed {
            return Err(crashed_error());
        }
        self.inner.list_names(dir)
    }

    fn drop_cache(&mut self, file: &Self::Reader, upto: u64) {
        self.inner.drop_cache(file, upto);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aligned_buf_is_aligned_and_zeroed() {
        for len in [0, 1, 4096, 8192, 12345] {
            let b = AlignedBuf::zeroed(len);
            assert_eq!(b.len(), len);
            assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
            assert!(b.as_slice().iter().all(|&x| x == 0));
        }
    }

    #[test]
    fn segment_names_round_trip() {
        assert_eq!(segment_file_name(7), "seg-00000000000000000007.log");
        assert_eq!(
            parse_segment_file_name(&segment_file_name(u64::MAX)),
            Some(u64::MAX)
        );
        assert_eq!(parse_segment_file_name("seg-7.log"), None);
        assert_eq!(
            parse_segment_file_name("seg-0000000000000000000x.log"),
            None
        );
    }

    #[test]
    fn mem_io_refuses_unaligned_writes_and_models_crashes() {
        let mut io = MemIo::new();
        let dir = Path::new("/log/shard-0");
        let f = io.create_segment(dir, 1).unwrap();
        let mut buf = AlignedBuf::zeroed(2 * ALIGN);
        buf.as_mut_slice().fill(7);
        let unaligned = buf.as_slice().get(1..ALIGN + 1).unwrap();
        assert!(io.write_at(&f, 0, unaligned).is_err());
        assert!(io.write_at(&f, 512, buf.as_slice()).is_err());
        io.write_at(&f, 0, buf.as_slice().get(..ALIGN).unwrap())
            .unwrap();
        io.sync_data(&f).unwrap();
        io.write_at(&f, ALIGN as u64, buf.as_slice().get(..ALIGN).unwrap())
            .unwrap();
        let path = segment_path(dir, 1);
        assert_eq!(io.contents(&path).unwrap().len(), 2 * ALIGN);
        io.crash();
        assert_eq!(io.contents(&path).unwrap(), vec![7u8; ALIGN].as_slice());
        assert_eq!(io.list_segments(dir).unwrap(), vec![1]);
    }

    #[test]
    fn faulty_io_fails_the_nth_operation_once() {
        let mut io = FaultyIo::new(MemIo::new());
        let dir = Path::new("/d");
        let f = io.create_segment(dir, 1).unwrap();
        let buf = AlignedBuf::zeroed(ALIGN);
        io.fail_nth(Op::Write, 2, Fault::Enospc);
        io.write_at(&f, 0, buf.as_slice()).unwrap();
        let e = io.write_at(&f, 0, buf.as_slice()).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOSPC));
        io.write_at(&f, 0, buf.as_slice()).unwrap();
        io.fail_nth(Op::Sync, 1, Fault::Eio);
        assert_eq!(
            io.sync_data(&f).unwrap_err().raw_os_error(),
            Some(libc::EIO)
        );
        io.sync_data(&f).unwrap();
        io.crash();
        assert!(io.write_at(&f, 0, buf.as_slice()).is_err());
        assert!(io.sync_data(&f).is_err());
    }
}
