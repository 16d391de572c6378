//! The append-only log end to end: I/O faults through the server's fault
//! seam (DEBUG AOF-FAULT) and on a real, full filesystem; reads that must
//! not reveal a write before it is durable; the fallback I/O paths; import
//! of a Redis AOF; restart after SIGKILL in every appendfsync mode.
//!
//! Files: the shared helpers are here; the tests are in `faults.rs` (the
//! fault seam, turning a failing log off, a full filesystem),
//! `pending.rs` (reads and writes not yet durable), `io_paths.rs` (INFO
//! `aof_io_path`, inline and held commits under `always`, the directive
//! names), `import.rs` (Redis AOFs in, `export-aof` out), `restart.rs`
//! (SIGKILL and restart, start-up, the data directory lock) and `disk.rs`
//! (segments sized to the log and the disk).

use std::path::Path;
use std::process::Command;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tests::{self_check_against_redis, RedisProc, ScratchDir, ServerProc, Tmpfs};

/// `DEBUG AOF-FAULT <args>`: the I/O fault seam of every shard's log.
fn aof_fault(con: &mut redis::Connection, args: &[&str]) {
    let _: () = redis::cmd("DEBUG")
        .arg("AOF-FAULT")
        .arg(args)
        .query(con)
        .unwrap();
}

fn info_field(con: &mut redis::Connection, field: &str) -> String {
    let info: String = redis::cmd("INFO")
        .arg("persistence")
        .query(con)
        .expect("INFO persistence");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")))
        .unwrap_or_else(|| panic!("no {field} in INFO:\n{info}"))
        .trim()
        .to_string()
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(20));
    }
}

fn get(con: &mut redis::Connection, key: &str) -> Option<String> {
    redis::cmd("GET").arg(key).query(con).expect("GET")
}

/// Sends `SET key value` on its own connection in a thread; the reply
/// arrives on the channel.
fn set_in_background(
    server: &ServerProc,
    key: &'static str,
    value: &'static str,
) -> mpsc::Receiver<redis::RedisResult<String>> {
    let client = server.client();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = client.get_connection().and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            redis::cmd("SET")
                .arg(key)
                .arg(value)
                .query::<String>(&mut c)
        });
        let _ = tx.send(r);
    });
    rx
}

/// SIGKILL, then a new server on the same data directory.
fn restart(server: ServerProc, args: &[&str]) -> ServerProc {
    let dir = server.data_dir();
    server.signal("KILL");
    drop(server);
    ServerProc::start_in(&dir, args)
}

const ALWAYS: &[&str] = &[
    "--appendfsync",
    "always",
    "--enable-debug-command",
    "yes",
    "--aof-segment-size",
    "256kb",
];

/// Disk blocks held by the files under `dir` (what `du` counts).
fn disk_use(dir: &Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    let mut total = 0;
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let m = e.metadata().unwrap();
        total += if m.is_dir() {
            disk_use(&e.path())
        } else {
            m.blocks() * 512
        };
    }
    total
}

mod disk;
mod faults;
mod import;
mod io_paths;
mod pending;
mod restart;
