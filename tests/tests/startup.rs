//! Start-up and configuration: the real binary on real files, flags and
//! limits. Debian's stock redis.conf, `--help`, config error texts, an
//! unwritable data directory, a low open-file limit.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tests::{self_check_against_redis, server_bin, RawConn, ScratchDir, ServerProc};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
}

fn config_get(server: &ServerProc, name: &str) -> String {
    let mut con = server.conn();
    let pair: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg(name)
        .query(&mut con)
        .expect("CONFIG GET");
    assert_eq!(pair.len(), 2, "CONFIG GET {name}: {pair:?}");
    pair[1].clone()
}

/// Runs the binary to its exit (it must not start serving): status code
/// and everything it printed.
fn run_to_exit(program: &str, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program} {args:?} did not exit within 10 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut out = String::new();
    for pipe in [
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn std::io::Read>),
    ]
    .into_iter()
    .flatten()
    {
        let mut pipe = pipe;
        let _ = pipe.read_to_string(&mut out);
    }
    (status.code(), out)
}

fn bin() -> String {
    server_bin().to_string_lossy().into_owned()
}

/// Debian's /etc/redis/redis.conf (7.0.15, as shipped), with the
/// machine-specific directives overridden by flags: it starts, serves, and
/// each directive that does not apply here is warned about once.
#[test]
fn debian_redis_conf_starts_and_warns_once_per_ignored_directive() {
    if self_check_against_redis() {
        eprintln!("note: kv-server's warnings are not Redis's; skipped in the self-check");
        return;
    }
    let conf = fixture("debian-redis-7.0.15.conf");
    let scratch = ScratchDir::new("debian-conf");
    let pidfile = scratch.path().join("kv.pid");
    let server = ServerProc::start_custom(
        &[],
        Some(&conf),
        &[
            "--daemonize",
            "no",
            "--logfile",
            "",
            "--pidfile",
            pidfile.to_str().unwrap(),
            "--threads",
            "2",
        ],
    );
    let mut con = server.conn();
    let _: () = redis::cmd("SET").arg("k").arg("v").query(&mut con).unwrap();
    let v: String = redis::cmd("GET").arg("k").query(&mut con).unwrap();
    assert_eq!(v, "v");
    // The file's values apply where they are ours.
    assert_eq!(config_get(&server, "appendonly"), "no");
    assert_eq!(config_get(&server, "databases"), "16");
    // pidfile honoured.
    let pid = std::fs::read_to_string(&pidfile).expect("pidfile written");
    assert_eq!(pid.trim(), server.pid().to_string());

    let output = server.output();
    let text = std::fs::read_to_string(&conf).unwrap();
    let mut ignored = Vec::new();
    for line in text.lines().map(str::trim) {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name.starts_with('#') {
            continue;
        }
        let name = name.to_ascii_lowercase();
        let applied = config_get_names(&server).contains(&name);
        if !applied && !ignored.contains(&name) {
            ignored.push(name);
        }
    }
    assert!(ignored.len() > 30, "{ignored:?}");
    for name in &ignored {
        let warning = format!("Config directive '{name}' ignored: ");
        assert_eq!(
            output.matches(&warning).count(),
            1,
            "{warning}\n--- output ---\n{output}"
        );
    }
    // client-output-buffer-limit (three lines in the file) applies.
    assert!(!ignored.contains(&"client-output-buffer-limit".to_string()));
    assert!(
        !output.contains("'client-output-buffer-limit' ignored"),
        "{output}"
    );
    assert_eq!(
        output.matches("ignored: ").count(),
        ignored.len(),
        "{output}"
    );
}

fn config_get_names(server: &ServerProc) -> Vec<String> {
    let mut con = server.conn();
    let all: Vec<String> = redis::cmd("CONFIG")
        .arg("GET")
        .arg("*")
        .query(&mut con)
        .expect("CONFIG GET *");
    all.into_iter().step_by(2).collect()
}

/// `--help` lists every directive CONFIG GET knows, with a default.
#[test]
fn help_lists_every_directive_with_its_default() {
    if self_check_against_redis() {
        return;
    }
    let (code, help) = run_to_exit(&bin(), &["--help"]);
    assert_eq!(code, Some(0), "{help}");
    let server = ServerProc::start(&[]);
    let names = config_get_names(&server);
    assert!(names.len() > 30, "{names:?}");
    for name in names {
        let entry = help
            .lines()
            .find(|l| l.starts_with(&format!("  --{name} ")))
            .unwrap_or_else(|| panic!("--help has no line for {name}:\n{help}"));
        assert!(entry.contains("(default: "), "{entry}");
    }
}

/// CONFIG GET threads: the number of shards in use, as INFO says, also
/// when `threads` is left at 0 (one per core).
#[test]
fn config_get_threads_is_the_number_in_use() {
    if self_check_against_redis() {
        return;
    }
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    let info: String = redis::cmd("INFO").arg("server").query(&mut con).unwrap();
    let threads = info
        .lines()
        .find_map(|l| l.strip_prefix("threads:"))
        .expect("INFO threads")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(threads, cores.to_string());
    assert_eq!(config_get(&server, "threads"), threads);
    let server = ServerProc::start(&["--threads", "3"]);
    assert_eq!(config_get(&server, "threads"), "3");
}

/// A bad line in a file: Redis's block with our name, the file and line.
/// A bad flag: said to be from the command line, with no line number.
#[test]
fn config_errors_name_the_file_and_line_or_the_command_line() {
    if self_check_against_redis() {
        return;
    }
    let scratch = ScratchDir::new("conf-errors");
    let conf = scratch.path().join("bad.conf");
    std::fs::write(&conf, "# comment\nport 7000\nmaxclients many\n").unwrap();
    let (code, out) = run_to_exit(&bin(), &[conf.to_str().unwrap(), "--port", "0"]);
    assert_eq!(code, Some(1), "{out}");
    let expected = format!(
        "*** FATAL CONFIG FILE ERROR (kv-server {}) ***\n\
         Reading the configuration file {}, at line 3\n\
         >>> 'maxclients many'\n\
         argument couldn't be parsed into an integer\n",
        env!("CARGO_PKG_VERSION"),
        conf.display()
    );
    assert!(out.contains(&expected), "{out}");
    assert!(!out.contains("Redis 7"), "{out}");

    let (code, out) = run_to_exit(&bin(), &[conf.to_str().unwrap(), "--hz", "-5"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("at line 3"),
        "the file's error comes first: {out}"
    );

    std::fs::write(&conf, "port 7000\n").unwrap();
    let (code, out) = run_to_exit(
        &bin(),
        &[conf.to_str().unwrap(), "--port", "0", "--hz", "-5"],
    );
    assert_eq!(code, Some(1), "{out}");
    let expected = format!(
        "*** FATAL CONFIG ERROR (kv-server {}) ***\n\
         Reading the command-line options\n\
         >>> '--hz \"-5\"'\n\
         argument must be between 0 and 2147483647 inclusive\n",
        env!("CARGO_PKG_VERSION")
    );
    assert!(out.contains(&expected), "{out}");
    assert!(!out.contains("at line"), "{out}");
    // Unknown to Redis too: still refused, from the command line.
    let (code, out) = run_to_exit(&bin(), &["--maxmemry", "1gb"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("Reading the command-line options\n>>> '--maxmemry \"1gb\"'\nBad directive"),
        "{out}"
    );
}

/// A data directory the server may not write: the real cause (permission
/// denied, the path, the user), exit status 1, no panic. Tests run as
/// root, which permissions do not stop, so the server runs as `nobody`
/// (setpriv).
#[test]
fn unwritable_data_dir_reports_permission_denied() {
    if self_check_against_redis() {
        return;
    }
    let setpriv = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    let runs_as_root = std::fs::read_to_string("/proc/self/status")
        .map(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(2) == Some("0"))
        })
        .unwrap_or(false);
    let scratch = ScratchDir::new("ro-dir");
    let dir = scratch.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    set_mode(&dir, 0o555);
    set_mode(scratch.path(), 0o755);
    let dir_s = dir.to_str().unwrap().to_string();
    let (code, out) = match (runs_as_root, setpriv) {
        (false, _) => run_to_exit(&bin(), &["--port", "0", "--dir", &dir_s]),
        (true, Some(setpriv)) => run_to_exit(
            setpriv,
            &[
                "--reuid=nobody",
                "--regid=nogroup",
                "--clear-groups",
                &bin(),
                "--port",
                "0",
                "--dir",
                &dir_s,
            ],
        ),
        (true, None) => {
            assert!(!tests::ci(), "running as root without setpriv: cannot test");
            eprintln!("note: running as root without setpriv; test skipped");
            return;
        }
    };
    set_mode(&dir, 0o755);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("Permission denied"), "{out}");
    assert!(out.contains(&format!("{dir_s}/kv-server.lock")), "{out}");
    assert!(out.contains("running as "), "{out}");
    if runs_as_root {
        assert!(out.contains("running as nobody"), "{out}");
    }
    assert!(!out.contains("another kv-server"), "{out}");
    assert!(!out.contains("BUG REPORT"), "{out}");
}

/// A log directory the server's user may not write (left by a run as
/// root): the server starts and serves reads, and writes get MISCONF at
/// once instead of waiting for a flush that can't happen. Once the
/// directory is writable, writes are accepted again by themselves, and
/// they survive a restart.
#[test]
fn unwritable_log_refuses_writes_at_once_and_recovers() {
    if self_check_against_redis() {
        return;
    }
    let Some(setpriv) = ["/usr/bin/setpriv", "/bin/setpriv"]
        .into_iter()
        .find(|p| Path::new(p).is_file())
    else {
        assert!(
            !tests::ci(),
            "setpriv missing: cannot run the server as another user"
        );
        eprintln!("note: no setpriv; test skipped");
        return;
    };
    let scratch = ScratchDir::new("ro-log");
    let dir = scratch.path().join("data");
    std::fs::create_dir(&dir).unwrap();
    let dir_s = dir.to_str().unwrap().to_string();
    // A first run as ourselves (root in CI) leaves the log owned by us.
    {
        let server = ServerProc::start_in(&dir, &["--threads", "2"]);
        let mut con = server.conn();
        let () = redis::cmd("SET")
            .arg("before")
            .arg("1")
            .query(&mut con)
            .unwrap();
    }
    set_mode(scratch.path(), 0o755);
    set_mode(&dir, 0o777);
    set_mode(&dir.join("kv-server.lock"), 0o666);
    set_mode(&dir.join("appendonlydir").join("kv-log.meta"), 0o644);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let port_s = port.to_string();
    let child = Command::new(setpriv)
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            &bin(),
        ])
        .args([
            "--port",
            &port_s,
            "--bind",
            "127.0.0.1",
            "--threads",
            "2",
            "--dir",
            &dir_s,
        ])
        .args(["--save", ""])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let pid = child.id();
    let guard = Kill(child);
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut con = loop {
        if let Ok(c) = client.get_connection() {
            break c;
        }
        assert!(
            Instant::now() < deadline,
            "the server (pid {pid}) never answered"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    con.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let v: Option<String> = redis::cmd("GET").arg("before").query(&mut con).unwrap();
    assert_eq!(v.as_deref(), Some("1"));
    for i in 0..10 {
        let started = Instant::now();
        let err = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query::<String>(&mut con)
            .unwrap_err();
        assert_eq!(err.code(), Some("MISCONF"), "{err}");
        assert!(err.to_string().contains("Permission denied"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(1));
    }
    // Make the log writable: writes come back without a restart.
    let status = Command::new("chmod")
        .args(["-R", "a+rwX"])
        .arg(dir.join("appendonlydir"))
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match redis::cmd("SET")
            .arg("after")
            .arg("2")
            .query::<String>(&mut con)
        {
            Ok(_) => break,
            Err(e) => assert!(
                Instant::now() < deadline,
                "writes still refused 10 s after the log became writable: {e}"
            ),
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(con);
    drop(guard);
    let server = ServerProc::start_in(&dir, &["--threads", "2"]);
    let mut con = server.conn();
    let v: Vec<Option<String>> = redis::cmd("MGET")
        .arg("before")
        .arg("after")
        .query(&mut con)
        .unwrap();
    assert_eq!(v, vec![Some("1".to_string()), Some("2".to_string())]);
}

/// `supervised systemd` (and `auto` with `$NOTIFY_SOCKET` set), as
/// Debian's `Type=notify` unit starts redis-server: `READY=1` arrives on
/// the notify socket once the server answers; with `no`, nothing does.
#[test]
fn supervised_systemd_sends_ready_on_the_notify_socket() {
    if self_check_against_redis() {
        return;
    }
    use std::os::unix::net::UnixDatagram;
    let scratch = ScratchDir::new("notify");
    for (mode, expect) in [("systemd", true), ("auto", true), ("no", false)] {
        let path = scratch.path().join(format!("notify-{mode}.sock"));
        let sock = UnixDatagram::bind(&path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let data = scratch.path().join(format!("data-{mode}"));
        std::fs::create_dir(&data).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(bin())
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--dir")
            .arg(&data)
            .args(["--supervised", mode])
            .env("NOTIFY_SOCKET", &path)
            .env_remove("UPSTART_JOB")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut buf = [0u8; 256];
        let got = if expect {
            let n = sock.recv(&mut buf).unwrap_or_else(|e| {
                let _ = child.kill();
                panic!("supervised {mode}: no notification within 10 s: {e}")
            });
            String::from_utf8_lossy(&buf[..n]).into_owned()
        } else {
            // Ready once it answers; then nothing may have been sent.
            let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            let deadline = Instant::now() + Duration::from_secs(10);
            while RawConn::try_connect(addr, Duration::from_millis(100)).is_err() {
                assert!(Instant::now() < deadline, "the server never answered");
                std::thread::sleep(Duration::from_millis(20));
            }
            sock.set_nonblocking(true).unwrap();
            std::thread::sleep(Duration::from_millis(200));
            match sock.recv(&mut buf) {
                Ok(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
                Err(_) => String::new(),
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        if expect {
            assert!(
                got.lines().any(|l| l == "READY=1"),
                "supervised {mode}: {got:?}"
            );
            assert!(
                got.contains("STATUS=Ready to accept connections"),
                "{got:?}"
            );
        } else {
            assert_eq!(got, "", "supervised no sent a notification");
        }
    }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {mode:o} {}: {e}", path.display()));
}

/// The soft open-file limit of process `pid`.
fn nofile_soft(pid: u32) -> u64 {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no open-file limit in\n{limits}"))
}

/// CPU seconds (user + system) process `pid` used so far.
fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

/// With `ulimit -n 256`, maxclients is lowered to fit (as Redis's
/// adjustOpenFilesLimit), a connection over it gets Redis's error instead
/// of hanging, and when the server does run out of descriptors (maxclients
/// raised back with CONFIG SET), accept errors are logged about once a
/// second, not in a loop.
#[test]
fn low_open_file_limit_lowers_maxclients_and_rate_limits_accept_errors() {
    if self_check_against_redis() {
        return;
    }
    let prlimit = ["/usr/bin/prlimit", "/bin/prlimit"]
        .into_iter()
        .find(|p| Path::new(p).is_file());
    let Some(prlimit) = prlimit else {
        assert!(!tests::ci(), "prlimit(1) missing: cannot test");
        eprintln!("note: prlimit(1) missing; test skipped");
        return;
    };
    let mut server = ServerProc::start_custom(
        &[prlimit, "--nofile=256:256"],
        None,
        &["--threads", "2", "--appendonly", "no", "--save", ""],
    );
    let soft = nofile_soft(server.pid());
    let maxclients: usize = config_get(&server, "maxclients").parse().unwrap();
    if soft <= 256 {
        // Could not raise it (no CAP_SYS_RESOURCE): lowered to fit.
        assert!(
            maxclients < 256 - 32,
            "maxclients {maxclients} with a limit of {soft}"
        );
        let out = server.output();
        assert!(
            out.contains("maxclients has been reduced to"),
            "Redis's warning: {out}"
        );
    } else {
        assert_eq!(maxclients, 10_000);
        assert!(soft > 10_000, "{soft}");
        eprintln!("note: the server could raise its open-file limit to {soft}");
        return;
    }

    // maxclients connections are served; the next one gets the error.
    let mut conns = Vec::new();
    for i in 0..maxclients {
        let mut c = RawConn::connect(server.addr());
        assert_eq!(c.cmd(&["PING"]), b"+PONG\r\n", "connection {i}");
        conns.push(c);
    }
    let mut extra = RawConn::connect(server.addr());
    let reply = extra
        .read_until_closed(Duration::from_secs(5))
        .unwrap_or_else(|got| panic!("no error and no close within 5 s: {got:?}"));
    assert_eq!(reply, b"-ERR max number of clients reached\r\n");
    drop(extra);
    let lines_before = server.output().lines().count();

    // Raise maxclients past what the descriptors allow: accept fails with
    // EMFILE. The connections wait in the backlog; the log does not run.
    conns.truncate(conns.len() - 2);
    std::thread::sleep(Duration::from_millis(300));
    let mut con = server.conn();
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxclients")
        .arg("10000")
        .query(&mut con)
        .unwrap();
    for _ in 0..80 {
        conns.push(RawConn::connect(server.addr()));
    }
    let cpu_before = cpu_secs(server.pid());
    std::thread::sleep(Duration::from_secs(3));
    let cpu = cpu_secs(server.pid()) - cpu_before;
    server.assert_running();
    let out = server.output();
    let new_lines = out.lines().count() - lines_before;
    let emfile = out.matches("Accepting client connection: ").count();
    assert!(emfile >= 1, "EMFILE was expected:\n{out}");
    assert!(
        new_lines <= 8,
        "{new_lines} log lines in 3 s out of descriptors:\n{}",
        server.output_tail(20)
    );
    assert!(
        out.contains("more accept errors since the last one logged"),
        "{out}"
    );
    assert!(
        cpu < 1.0,
        "{cpu} CPU seconds in 3 s while out of descriptors"
    );
}
