//! `supervised` (Redis 7's `redisIsSupervised` / `redisCommunicateSystemd`):
//! telling the service manager that started the server that it is ready.
//!
//! - systemd (`Type=notify`, as Debian's redis-server unit): `READY=1` and a
//!   `STATUS=` line as one datagram to the unix socket `$NOTIFY_SOCKET`
//!   (a leading `@` names an abstract socket), once clients are accepted.
//! - upstart (`expect stop`): the server stops itself with SIGSTOP once
//!   ready, and upstart resumes it.
//! - auto: upstart when `$UPSTART_JOB` is set, else systemd when
//!   `$NOTIFY_SOCKET` is set, else nothing.

use std::io;

use crate::config::SUPERVISED;
use crate::log;

/// Which supervisor to tell, from the `supervised` index and the
/// environment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Supervisor {
    Upstart,
    Systemd,
}

fn supervisor(mode: usize) -> Option<Supervisor> {
    match SUPERVISED.get(mode).copied() {
        Some("upstart") => Some(Supervisor::Upstart),
        Some("systemd") => Some(Supervisor::Systemd),
        Some("auto") if std::env::var_os("UPSTART_JOB").is_some() => Some(Supervisor::Upstart),
        Some("auto") if std::env::var_os("NOTIFY_SOCKET").is_some() => Some(Supervisor::Systemd),
        _ => None,
    }
}

/// Called once the server accepts clients.
pub fn ready(mode: usize) {
    match supervisor(mode) {
        None => {}
        Some(Supervisor::Systemd) => {
            let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
                log::warning(
                    "systemd supervision requested or auto-detected, but NOTIFY_SOCKET not found!",
                );
                return;
            };
            log::notice(
                "supervised by systemd. Please make sure you set appropriate values for \
                 TimeoutStartSec and TimeoutStopSec in your service unit.",
            );
            let msg = b"STATUS=Ready to accept connections\nREADY=1\n";
            if let Err(e) = notify(&socket, msg) {
                log::warning(&format!(
                    "Can't notify systemd through NOTIFY_SOCKET {}: {e}",
                    std::path::Path::new(&socket).display()
                ));
            }
        }
        Some(Supervisor::Upstart) => {
            if std::env::var_os("UPSTART_JOB").is_none() {
                log::warning("upstart supervision requested, but UPSTART_JOB not found!");
                return;
            }
            log::notice("supervised by upstart, will stop to signal readiness.");
            crate::sys::stop_self();
        }
    }
}

/// One datagram to the notify socket `socket` (a path, or `@name` for an
/// abstract socket).
fn notify(socket: &std::ffi::OsStr, msg: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = socket.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(std::path::Path::new(socket))?,
    };
    let sock = UnixDatagram::unbound()?;
    sock.send_to_addr(msg, &addr)?;
    Ok(())
}
