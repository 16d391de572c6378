//! The few calls into libc that need `unsafe`, each with its safety argument.
//! Everything else in the server is `#![deny(unsafe_code)]`.
#![allow(unsafe_code)]

use std::io;
use std::os::fd::RawFd;

/// Pins the calling thread to one CPU.
pub fn pin_to_cpu(cpu: usize) -> io::Result<()> {
    // SAFETY: cpu_set_t is plain data; zeroed is its empty value, CPU_SET
    // writes inside it (cpu is checked against its capacity first), and
    // sched_setaffinity only reads it for the calling thread (pid 0).
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if cpu >= 8 * std::mem::size_of::<libc::cpu_set_t>() {
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        libc::CPU_SET(cpu, &mut set);
        if libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Turns transparent huge pages off for the whole process, mappings made
/// before included (`prctl(PR_SET_THP_DISABLE)`; a page already huge
/// stays huge).
pub fn disable_thp() -> io::Result<()> {
    // SAFETY: prctl with integer arguments only; no memory is passed or
    // kept.
    if unsafe { libc::prctl(libc::PR_SET_THP_DISABLE, 1, 0, 0, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The open-file limit (`RLIMIT_NOFILE`): (soft, hard).
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((lim.rlim_cur, lim.rlim_max))
}

/// Sets the open-file limit (`RLIMIT_NOFILE`) to `soft` and `hard`.
pub fn set_nofile_limit(soft: u64, hard: u64) -> io::Result<()> {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit only reads the struct we pass.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The user the process runs as, for error messages: `name (uid N)`, the
/// name from /etc/passwd when it is there.
pub fn effective_user() -> String {
    // SAFETY: geteuid takes nothing and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let name = std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|text| {
            text.lines().find_map(|line| {
                let mut fields = line.split(':');
                let name = fields.next()?;
                let id = fields.nth(1)?;
                (id.parse::<u32>().ok() == Some(uid)).then(|| name.to_string())
            })
        });
    match name {
        Some(name) => format!("{name} (uid {uid})"),
        None => format!("uid {uid}"),
    }
}

/// Forks into the background as Redis's `daemonize()`: the parent exits 0,
/// the child starts a new session and has stdin, stdout and stderr on
/// /dev/null; the working directory stays. Must run before any other
/// thread is started (only the calling thread survives a fork).
pub fn daemonize() -> io::Result<()> {
    // SAFETY: called from main() while the process has one thread, so the
    // child is a full copy; daemon(3) only forks, calls setsid and dup2s
    // /dev/null over fds 0-2.
    if unsafe { libc::daemon(1, 0) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Shuts down both directions of a socket so that a pending read on it
/// returns 0 (CLIENT KILL from another thread), or a listening socket so
/// that it stops listening (at exit). The caller guarantees `fd` is still
/// open and still that socket: the client registry calls this under the
/// lock the connection takes to unregister before closing, and listeners
/// stay open for the life of the process.
pub fn shutdown_socket(fd: RawFd) {
    // SAFETY: shutdown(2) only acts on the descriptor; an invalid fd yields
    // EBADF, which we ignore. No memory is passed.
    unsafe {
        libc::shutdown(fd, libc::SHUT_RDWR);
    }
}

/// Sends as much of `buf` on socket `fd` as it takes without blocking;
/// returns how many bytes left. Used by a shard to send a connection's
/// replies itself: the caller guarantees that `fd` is that connection's
/// open socket for the whole call (the connection waits for the shard's
/// answer, holding the socket, and has no operation of its own on it).
pub fn send_nonblocking(fd: RawFd, buf: &[u8]) -> usize {
    let mut sent = 0;
    while sent < buf.len() {
        let rest = &buf[sent..];
        // SAFETY: the pointer and length describe the live slice `rest`,
        // which send(2) only reads; MSG_NOSIGNAL turns a closed peer into
        // EPIPE rather than SIGPIPE, and MSG_DONTWAIT never blocks.
        let n = unsafe {
            libc::send(
                fd,
                rest.as_ptr().cast(),
                rest.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            sent += n as usize;
        } else if n < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted {
            continue;
        } else {
            // Full socket buffer, or an error the connection will meet
            // itself when it writes the rest.
            break;
        }
    }
    sent
}

/// (user, system) CPU seconds used by this process.
pub fn cpu_times() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct we own; RUSAGE_SELF is valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut ru) != 0 {
            return (0.0, 0.0);
        }
        ru
    };
    let secs = |tv: libc::timeval| tv.tv_sec as f64 + tv.tv_usec as f64 / 1e6;
    (secs(ru.ru_utime), secs(ru.ru_stime))
}

/// Resident set size in bytes, from /proc/self/statm.
pub fn rss_bytes() -> u64 {
    let page = 4096u64;
    std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |p| p * page)
}

/// Enables TCP keepalive on a socket the way Redis's anetKeepAlive does:
/// first probe after `secs` idle, then every `secs / 3`, 3 probes.
pub fn set_keepalive(fd: RawFd, secs: u32) -> io::Result<()> {
    let set = |level: libc::c_int, opt: libc::c_int, val: libc::c_int| -> io::Result<()> {
        // SAFETY: setsockopt reads `size_of::<c_int>()` bytes from a live
        // local; an invalid fd only yields an error.
        let r = unsafe {
            libc::setsockopt(
                fd,
                level,
                opt,
                (&val as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    };
    let secs = secs.min(i32::MAX as u32) as libc::c_int;
    set(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPIDLE, secs)?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPINTVL, (secs / 3).max(1))?;
    set(libc::IPPROTO_TCP, libc::TCP_KEEPCNT, 3)
}

/// `posix_fadvise(POSIX_FADV_DONTNEED)` over a range of a file: drops its
/// clean cached pages (the buffered log path calls it after each fdatasync
/// so that writing the log does not fill the page cache).
pub fn fadvise_dontneed(fd: RawFd, offset: u64, len: u64) {
    let (Ok(off), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: posix_fadvise only takes integers; a bad fd yields EBADF, which
    // we ignore (the advice is an optimisation).
    unsafe {
        libc::posix_fadvise(fd, off, len, libc::POSIX_FADV_DONTNEED);
    }
}

/// Wall-clock Unix milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The engine's reading I/O ([`engine::journal::ReadIo`]) for snapshot
/// files and the manifest, which also drops what was read from the page
/// cache: a snapshot is read once at start, and keeping it cached would
/// double the dataset in memory.
#[derive(Debug, Default)]
pub struct ReadOnceIo(engine::journal::StdLogIo);

impl engine::journal::ReadIo for ReadOnceIo {
    type Reader = std::fs::File;

    fn open_read(&mut self, path: &std::path::Path) -> io::Result<std::fs::File> {
        self.0.open_read(path)
    }

    fn file_len(&mut self, file: &std::fs::File) -> io::Result<u64> {
        self.0.file_len(file)
    }

    fn read_at(&mut self, file: &std::fs::File, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read_at(file, offset, buf)
    }

    fn read_whole(&mut self, path: &std::path::Path) -> io::Result<Vec<u8>> {
        self.0.read_whole(path)
    }

    fn list_names(&mut self, dir: &std::path::Path) -> io::Result<Vec<String>> {
        self.0.list_names(dir)
    }

    fn drop_cache(&mut self, file: &std::fs::File, upto: u64) {
        fadvise_dontneed(std::os::fd::AsRawFd::as_raw_fd(file), 0, upto);
    }
}

/// Bytes an unprivileged process may still write on the filesystem that
/// holds `path` (`statvfs`: available blocks times the fragment size).
pub fn free_space(path: &std::path::Path) -> io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::zeroed();
    // SAFETY: `c` is a valid NUL-terminated string and `st` points to a
    // statvfs-sized buffer that the call fills; it is read only on success.
    let r = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: statvfs returned 0, so it initialised the whole struct.
    let st = unsafe { st.assume_init() };
    Ok(st.f_bavail.saturating_mul(st.f_frsize))
}

/// An I/O error as C's strerror gives it (without " (os error N)").
pub fn strerror(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text.get(..i).unwrap_or(&text).to_string(),
        None => text,
    }
}

/// Stops the process with SIGSTOP (upstart's `expect stop` readiness
/// signal; the supervisor sends SIGCONT).
pub fn stop_self() {
    // SAFETY: raise only delivers a signal to this process.
    unsafe {
        libc::raise(libc::SIGSTOP);
    }
}

/// Sets O_NONBLOCK on `fd` (a timerfd awaited through epoll).
pub fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: no pointers; fcntl on a bad descriptor returns an error.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A CLOCK_MONOTONIC timerfd (blocking reads: the ring polls it).
pub fn timerfd() -> io::Result<std::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: no pointers; the descriptor is checked before use.
    let fd = unsafe { libc::timerfd_create(libc::CLOCK_MONOTONIC, libc::TFD_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` is a fresh descriptor that nothing else owns.
    Ok(unsafe { std::fs::File::from_raw_fd(fd) })
}

/// Arms timerfd `fd` to expire once, `d` from now (at least 1 ns: a zero
/// value would disarm it).
pub fn timerfd_arm(fd: RawFd, d: std::time::Duration) -> io::Result<()> {
    let d = d.max(std::time::Duration::from_nanos(1));
    let spec = libc::itimerspec {
        it_interval: libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        },
        it_value: libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            tv_nsec: libc::c_long::from(d.subsec_nanos() as i32),
        },
    };
    // SAFETY: `spec` lives across the call; a null old-value pointer is
    // allowed.
    let r = unsafe { libc::timerfd_settime(fd, 0, &spec, std::ptr::null_mut()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// The process's anonymous private writable mappings (the heap: malloc's
/// arenas and segments, thread stacks), as `start..end` address ranges,
/// from /proc/self/maps.
pub fn heap_ranges() -> Vec<std::ops::Range<usize>> {
    let Ok(maps) = std::fs::read_to_string("/proc/self/maps") else {
        return Vec::new();
    };
    maps.lines()
        .filter_map(|line| {
            // start-end perms offset dev inode [path]
            let mut f = line.split_whitespace();
            let (range, perms) = (f.next()?, f.next()?);
            let inode = f.nth(2)?;
            let path = f.next().unwrap_or("");
            let anon = inode == "0" && (path.is_empty() || path == "[heap]");
            if !anon || !perms.starts_with("rw") || !perms.ends_with('p') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let start = usize::from_str_radix(a, 16).ok()?;
            let end = usize::from_str_radix(b, 16).ok()?;
            (start < end).then_some(start..end)
        })
        .collect()
}

/// Reads one byte of every resident 4 KiB page of `range` (page-aligned)
/// in this process's memory through the kernel (process_vm_readv on
/// itself), `batch` pages per call, calling `between` after each call.
/// Pages never touched (mincore: not resident) are left alone: reading
/// them would only map the zero page. Returns the pages read, or an error
/// if the kernel refuses the call itself (ENOSYS, EPERM).
///
/// Why through the kernel: the pages belong to other threads, which may
/// change or unmap them meanwhile; the kernel reads what is there and
/// reports a page unmapped since as a short read, where a plain read
/// would be a data race or a fault.
pub fn touch_pages(
    range: std::ops::Range<usize>,
    batch: usize,
    mut between: impl FnMut(),
) -> io::Result<u64> {
    const PAGE: usize = 4096;
    let batch = batch.clamp(1, 1024);
    let mut sink = vec![0u8; batch];
    let mut remote: Vec<libc::iovec> = Vec::with_capacity(batch);
    let mut read = 0u64;
    let first = range.start & !(PAGE - 1);
    let pages = range.end.saturating_sub(first).div_ceil(PAGE);
    let mut resident = vec![0u8; pages];
    // SAFETY: `resident` has one byte per page of the range, as mincore
    // writes; `first` is page-aligned. A range unmapped meanwhile fails
    // with ENOMEM and is then taken as all resident (the reads below
    // skip what is gone).
    if unsafe { libc::mincore(first as *mut _, pages * PAGE, resident.as_mut_ptr()) } != 0 {
        resident.fill(1);
    }
    // The page index of each iovec of a call.
    let mut idx = Vec::with_capacity(batch);
    let mut i = 0;
    while i < pages {
        remote.clear();
        idx.clear();
        while i < pages && remote.len() < batch {
            if resident[i] & 1 == 1 {
                remote.push(libc::iovec {
                    iov_base: (first + i * PAGE) as *mut libc::c_void,
                    iov_len: 1,
                });
                idx.push(i);
            }
            i += 1;
        }
        if remote.is_empty() {
            break;
        }
        let local = libc::iovec {
            iov_base: sink.as_mut_ptr().cast(),
            iov_len: remote.len(),
        };
        // SAFETY: `local` describes `sink`, which is live, writable and
        // at least `remote.len()` bytes long; the remote iovecs are only
        // addresses for the kernel to read (it checks them and stops at
        // the first it cannot read), never dereferenced here.
        let n = unsafe {
            libc::process_vm_readv(
                libc::getpid(),
                &local,
                1,
                remote.as_ptr(),
                remote.len() as libc::c_ulong,
                0,
            )
        };
        let done = if n < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EFAULT) {
                return Err(e);
            }
            0
        } else {
            n as usize
        };
        read += done as u64;
        // A short read stops at a page that is gone: go on after it.
        if done < remote.len() {
            i = idx[done] + 1;
        }
        between();
    }
    Ok(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heap_ranges_hold_the_heap() {
        let v = vec![7u8; 8 << 20];
        let at = v.as_ptr() as usize;
        let ranges = heap_ranges();
        assert!(
            ranges.iter().any(|r| r.contains(&at)),
            "{at:#x} in none of {ranges:x?}"
        );
        drop(v);
    }

    #[test]
    fn touch_pages_reads_every_page_and_steps_over_holes() {
        const PAGE: usize = 4096;
        // SAFETY: a fresh private anonymous mapping of 64 pages, unmapped
        // in its middle (pages 20..30) and at the end; nothing else uses it.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                64 * PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(base, libc::MAP_FAILED);
        let start = base as usize;
        let mut calls = 0;
        // Never touched: nothing to read.
        assert_eq!(
            touch_pages(start..start + 64 * PAGE, 16, || calls += 1).unwrap(),
            0
        );
        // SAFETY: the mapping made above, 64 pages long.
        unsafe { std::ptr::write_bytes(base.cast::<u8>(), 1, 64 * PAGE) };
        let all = touch_pages(start..start + 64 * PAGE, 16, || calls += 1).unwrap();
        assert_eq!((all, calls), (64, 4));
        // SAFETY: both ranges lie inside the mapping made above.
        unsafe {
            assert_eq!(libc::munmap((start + 20 * PAGE) as *mut _, 10 * PAGE), 0);
        }
        let holed = touch_pages(start..start + 64 * PAGE, 16, || {}).unwrap();
        assert_eq!(holed, 54);
        // SAFETY: the rest of the mapping.
        unsafe {
            assert_eq!(libc::munmap(base, 20 * PAGE), 0);
            assert_eq!(libc::munmap((start + 30 * PAGE) as *mut _, 34 * PAGE), 0);
        }
    }
}
