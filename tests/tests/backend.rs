//! The event-loop backend at start: io_uring features probed and their
//! 5.10 fallbacks (through the `KV_IO_URING_MASK` test seam, since this
//! machine cannot boot 5.10), and what the server does where io_uring is
//! denied.

use std::time::Duration;

use tests::{self_check_against_redis, server_bin, wait_until, ScratchDir, ServerProc};

/// The seccomp wrapper built with the tests (src/bin/deny-io-uring.rs).
const DENY_IO_URING: &str = env!("CARGO_BIN_EXE_deny-io-uring");

fn info_field(server: &ServerProc, section: &str, name: &str) -> String {
    let mut con = server.conn();
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query(&mut con)
        .expect("INFO");
    let prefix = format!("{name}:");
    info.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .unwrap_or_else(|| panic!("INFO {section} has no {name}:\n{info}"))
        .trim()
        .to_string()
}

/// `env VAR=value... kv-server --dir <dir> <args>` (the wrapper execs the
/// binary with the variables set).
fn start_with_env(env: &[&str], dir: &std::path::Path, args: &[&str]) -> ServerProc {
    let mut wrapper = vec!["env"];
    wrapper.extend_from_slice(env);
    let dir = dir.to_string_lossy().into_owned();
    let mut extra = vec!["--dir", dir.as_str()];
    extra.extend_from_slice(args);
    ServerProc::start_custom(&wrapper, None, &extra)
}

fn set_keys(server: &ServerProc, range: std::ops::Range<u32>) {
    let mut con = server.conn();
    for i in range {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(format!("v{i}"))
            .query(&mut con)
            .expect("SET");
    }
}

fn check_keys(server: &ServerProc, n: u32) {
    let mut con = server.conn();
    let size: u32 = redis::cmd("DBSIZE").query(&mut con).expect("DBSIZE");
    assert_eq!(size, n, "keys back after the restart");
    for i in [0, n / 2, n - 1] {
        let v: String = redis::cmd("GET")
            .arg(format!("k{i}"))
            .query(&mut con)
            .expect("GET");
        assert_eq!(v, format!("v{i}"));
    }
}

/// BGSAVE, then waits for it to end with status ok (a snapshot ends with
/// renames: the RENAMEAT fallback runs here when it is masked).
fn bgsave_ok(server: &ServerProc) {
    let mut con = server.conn();
    let r: String = redis::cmd("BGSAVE").query(&mut con).expect("BGSAVE");
    assert!(r.contains("started"), "BGSAVE: {r}");
    wait_until(Duration::from_secs(20), "the BGSAVE to end", || {
        info_field(server, "persistence", "rdb_bgsave_in_progress") == "0"
    });
    assert_eq!(
        info_field(server, "persistence", "rdb_last_bgsave_status"),
        "ok"
    );
}

/// Every feature newer than 5.10 masked as unsupported: the server starts,
/// says so in its log and INFO, takes a snapshot (renames off the ring),
/// logs with `appendfsync always`, and after a SIGKILL has every
/// acknowledged write back. Unmasked on this kernel (6.0+), all are used.
/// 500 keys, a BGSAVE, 500 more keys, then SIGKILL: what every backend
/// test then expects back in full (`check_keys(.., 1000)`).
fn writes_snapshot_and_sigkill(mut server: ServerProc) {
    set_keys(&server, 0..500);
    bgsave_ok(&server);
    set_keys(&server, 500..1000);
    server.signal("KILL");
    wait_until(Duration::from_secs(5), "the server to die", || {
        !server.is_running()
    });
}

#[test]
fn masked_io_uring_features_fall_back_to_their_5_10_forms() {
    if self_check_against_redis() {
        return;
    }
    let all = "KV_IO_URING_MASK=coop_taskrun,single_issuer,renameat";
    let dir = ScratchDir::new("masked");
    let args = [
        "--appendfsync",
        "always",
        "--threads",
        "2",
        "--io-backend",
        "io_uring",
    ];
    let server = start_with_env(&[all], dir.path(), &args);
    assert_eq!(info_field(&server, "server", "io_uring_features"), "none");
    assert_eq!(info_field(&server, "server", "io_backend"), "io_uring");
    assert!(
        server
            .output()
            .contains("Event loops on io_uring, features: none"),
        "start-up log:\n{}",
        server.output()
    );
    writes_snapshot_and_sigkill(server);
    let server = start_with_env(&[all], dir.path(), &args);
    check_keys(&server, 1000);
    bgsave_ok(&server);

    // Only some masked: the others stay in use.
    let dir = ScratchDir::new("some-masked");
    let uring = ["--io-backend", "io_uring"];
    let server = start_with_env(&["KV_IO_URING_MASK=single_issuer"], dir.path(), &uring);
    assert_eq!(
        info_field(&server, "server", "io_uring_features"),
        "coop_taskrun,renameat"
    );
    let dir = ScratchDir::new("unmasked");
    let server = start_with_env(&[], dir.path(), &uring);
    assert_eq!(
        info_field(&server, "server", "io_uring_features"),
        "coop_taskrun,single_issuer,renameat"
    );
}

/// Runs the binary to its exit: status code and everything it printed.
fn run_to_exit(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let mut cmd = std::process::Command::new(server_bin());
    cmd.args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start kv-server");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kv-server {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// io_uring denied (EPERM, through the test seam) with the io_uring
/// backend required (`--io-backend io_uring`): exit status 1 and one line naming the causes and
/// the remedy, no panic.
#[test]
fn io_uring_denied_and_required_exits_with_one_clear_line() {
    if self_check_against_redis() {
        return;
    }
    let dir = ScratchDir::new("denied");
    let d = dir.path().to_string_lossy().into_owned();
    let (code, out) = run_to_exit(
        &[("KV_IO_URING_MASK", "io_uring")],
        &["--port", "0", "--dir", &d, "--io-backend", "io_uring"],
    );
    assert_eq!(code, Some(1), "output:\n{out}");
    assert!(!out.contains("BUG REPORT"), "a panic:\n{out}");
    let line = out
        .lines()
        .find(|l| l.contains("io_uring is denied or unavailable"))
        .unwrap_or_else(|| panic!("no line saying why:\n{out}"));
    for needle in [
        "seccomp",
        "kernel.io_uring_disabled",
        "Operation not permitted",
    ] {
        assert!(line.contains(needle), "{needle} not in: {line}");
    }
}

/// Under a seccomp filter that denies io_uring_setup/_enter/_register
/// with EPERM (Docker's default profile since Docker 25), with the
/// default `io-backend auto`: the server starts on epoll with a warning
/// naming the cause, says so in INFO, serves, takes a snapshot, and after
/// a SIGKILL with `appendfsync always` has every acknowledged write back.
#[test]
fn under_a_seccomp_filter_denying_io_uring_it_serves_on_epoll_and_survives_sigkill() {
    if self_check_against_redis() {
        return;
    }
    let dir = ScratchDir::new("seccomp");
    let d = dir.path().to_string_lossy().into_owned();
    let args = [
        "--dir",
        d.as_str(),
        "--appendfsync",
        "always",
        "--threads",
        "2",
        "--io-backend",
        "auto",
    ];
    let server = ServerProc::start_custom(&[DENY_IO_URING], None, &args);
    assert_eq!(info_field(&server, "server", "io_backend"), "epoll");
    assert_eq!(info_field(&server, "server", "multiplexing_api"), "epoll");
    assert_eq!(
        info_field(&server, "persistence", "aof_io_path")
            .split('+')
            .next(),
        Some("pwrite")
    );
    let log = server.output();
    let warning = log
        .lines()
        .find(|l| l.contains("io_uring is denied or unavailable"))
        .unwrap_or_else(|| panic!("no warning at start:\n{log}"));
    assert!(
        warning.contains("seccomp") && warning.contains("epoll"),
        "{warning}"
    );
    writes_snapshot_and_sigkill(server);
    let server = ServerProc::start_custom(&[DENY_IO_URING], None, &args);
    check_keys(&server, 1000);
    assert_eq!(info_field(&server, "server", "io_backend"), "epoll");
}

/// The same denial through the test seam, and `--io-backend epoll` asked
/// for on a kernel that has io_uring: both run on epoll and serve.
#[test]
fn io_backend_epoll_and_auto_without_io_uring_serve_on_epoll() {
    if self_check_against_redis() {
        return;
    }
    let dir = ScratchDir::new("seam-denied");
    let server = start_with_env(
        &["KV_IO_URING_MASK=io_uring"],
        dir.path(),
        &["--io-backend", "auto"],
    );
    assert_eq!(info_field(&server, "server", "io_backend"), "epoll");
    assert_eq!(info_field(&server, "server", "io_uring_features"), "none");
    set_keys(&server, 0..10);
    check_keys(&server, 10);
    let dir = ScratchDir::new("asked-epoll");
    let server = start_with_env(&[], dir.path(), &["--io-backend", "epoll"]);
    assert_eq!(info_field(&server, "server", "io_backend"), "epoll");
    let mut con = server.conn();
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("io-backend")
        .query(&mut con)
        .expect("CONFIG GET");
    assert_eq!(pair, ["io-backend", "epoll"]);
    let e = redis::cmd("CONFIG")
        .arg("SET")
        .arg("io-backend")
        .arg("io_uring")
        .query::<()>(&mut con)
        .expect_err("io-backend is immutable");
    assert!(e.to_string().contains("immutable"), "{e}");
    set_keys(&server, 0..10);
    check_keys(&server, 10);
}
