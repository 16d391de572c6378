//! Administration: CONFIG, KEYS with pathological patterns, THP, INFO,
//! maxclients, QUIT, SHUTDOWN, SIGTERM, the latency monitor.

use super::*;

#[test]
fn config_get_and_set() {
    let server = ServerProc::start(&["--maxclients", "123"]);
    let mut con = server.conn();
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "maxclients"]),
        vec!["maxclients", "123"]
    );
    assert_eq!(
        cmd::<String>(&mut con, &["CONFIG", "SET", "maxclients", "200"]),
        "OK"
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "maxclients"]),
        vec!["maxclients", "200"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "port"]),
        vec!["port".to_string(), server.port().to_string()]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "proto-max-bulk-len"]),
        vec!["proto-max-bulk-len", "536870912"]
    );
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "client-query-buffer-limit"]),
        vec!["client-query-buffer-limit", "1073741824"]
    );
    let dir: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "dir"]);
    let expected_dir = server.data_dir().canonicalize().expect("data dir");
    assert_eq!(
        dir,
        vec!["dir".to_string(), expected_dir.display().to_string()]
    );

    // Globs: pairs of name and value, names matching the pattern.
    let maxes: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "maxc*"]);
    assert_eq!(maxes, vec!["maxclients", "200"]);
    let all: Vec<String> = cmd(&mut con, &["CONFIG", "GET", "*"]);
    assert_eq!(all.len() % 2, 0);
    assert!(all
        .chunks(2)
        .any(|kv| kv[0] == "databases" && kv[1] == "16"));
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "no-such-option"]),
        Vec::<String>::new()
    );
    let err = cmd_err(&mut con, &["CONFIG", "SET", "no-such-option", "1"]);
    assert!(err.starts_with("ERR Unknown option"), "{err}");
    let err = cmd_err(&mut con, &["CONFIG", "SET", "maxclients", "abc"]);
    assert!(err.starts_with("ERR CONFIG SET failed"), "{err}");
    assert_eq!(cmd::<String>(&mut con, &["CONFIG", "RESETSTAT"]), "OK");
}

/// CVE-2022-36021: a glob that takes a backtracking matcher exponential
/// time (20 x `a*` then `b` against a key of 40 `a`s; `*?` 20 times then
/// `#` against the directive names) answers at once in KEYS, SCAN MATCH and
/// CONFIG GET, and another client of the same shard (one thread, one
/// shard) is served meanwhile.
#[test]
fn pathological_glob_patterns_answer_quickly() {
    const BOUND: Duration = Duration::from_secs(2);
    let server = ServerProc::start(&["--threads", "1"]);
    let long = "a".repeat(40);
    let hit = format!("{long}b");
    let mut con = server.raw();
    for key in [long.as_str(), hit.as_str(), "other"] {
        assert_eq!(con.cmd(&["SET", key, "v"]), b"+OK\r\n");
    }
    let keys_pattern = format!("{}b", "a*".repeat(20));
    let config_pattern = format!("{}#", "*?".repeat(20));
    let one_key = format!("*1\r\n$41\r\n{hit}\r\n");

    let stop = Arc::new(AtomicBool::new(false));
    let other = {
        let stop = Arc::clone(&stop);
        let mut other = server.raw();
        thread::spawn(move || {
            let (mut worst, mut served) = (Duration::ZERO, 0u32);
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                assert_eq!(other.cmd(&["GET", "other"]), b"$1\r\nv\r\n");
                worst = worst.max(start.elapsed());
                served += 1;
            }
            (worst, served)
        })
    };
    let mut timed = |args: &[&str], expected: &[u8]| {
        let start = Instant::now();
        con.send_cmd(args);
        let reply = match con.try_read_reply(BOUND) {
            tests::ReadOutcome::Reply(r) => r,
            other => panic!("{args:?}: no reply within {BOUND:?}: {other:?}"),
        };
        let took = start.elapsed();
        assert_eq!(resp::show(&reply), resp::show(expected), "{args:?}");
        took
    };
    let mut worst_glob = Duration::ZERO;
    for _ in 0..20 {
        worst_glob = worst_glob
            .max(timed(&["KEYS", &keys_pattern], one_key.as_bytes()))
            .max(timed(
                &["SCAN", "0", "MATCH", &keys_pattern, "COUNT", "1000"],
                format!("*2\r\n$1\r\n0\r\n{one_key}").as_bytes(),
            ))
            .max(timed(&["CONFIG", "GET", &config_pattern], b"*0\r\n"));
    }
    stop.store(true, Ordering::Relaxed);
    let (worst_other, served) = other.join().expect("the other client's thread panicked");
    eprintln!(
        "slowest glob command {worst_glob:?}; other client: {served} GETs, slowest {worst_other:?}"
    );
    assert!(served > 0, "the other client was never served");
    assert!(
        worst_other < BOUND,
        "the other client waited {worst_other:?} for a GET"
    );
}

/// `disable-thp` (default yes) turns transparent huge pages off for the
/// process, as the kernel reports in /proc/PID/status; `no` leaves them as
/// the process started. Redis only acts when the system setting is
/// `always` (its allocator never asks for huge pages), so in the harness
/// self-check only the config value is compared.
#[test]
fn disable_thp_turns_huge_pages_off_for_the_process() {
    let thp_enabled = |pid: u32| -> Option<String> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("THP_enabled:"))
            .map(|v| v.trim().to_string())
    };
    let ours_before = thp_enabled(std::process::id());
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "disable-thp"]),
        vec!["disable-thp", "yes"]
    );
    let err = cmd_err(&mut con, &["CONFIG", "SET", "disable-thp", "no"]);
    assert!(err.contains("immutable config"), "{err}");
    if tests::self_check_against_redis() {
        return;
    }
    // Kernels before 6.0 have no such line; nothing to check there.
    let Some(off) = thp_enabled(server.pid()) else {
        return;
    };
    assert_eq!(off, "0", "disable-thp yes leaves huge pages on");
    let mut kept = ServerProc::start(&["--disable-thp", "no"]);
    assert_eq!(thp_enabled(kept.pid()), ours_before);
    assert_serves(&mut kept);
}

#[test]
fn info_has_redis_sections_and_fields() {
    let server = ServerProc::start(&[]);
    let mut con = server.conn();
    let _others = [server.conn(), server.conn()];
    cmd::<()>(&mut con, &["SET", "a", "1"]);
    cmd::<()>(&mut con, &["SET", "b", "2", "EX", "1000"]);
    cmd::<()>(&mut con, &["SELECT", "3"]);
    cmd::<()>(&mut con, &["SET", "c", "3"]);

    let info: String = cmd(&mut con, &["INFO"]);
    for section in [
        "# Server",
        "# Clients",
        "# Memory",
        "# Persistence",
        "# Stats",
        "# Replication",
        "# CPU",
        "# Keyspace",
    ] {
        assert!(
            info.lines().any(|l| l == section),
            "INFO lacks {section}:\n{info}"
        );
    }
    for field in [
        "redis_version:",
        &format!("tcp_port:{}", server.port()),
        "process_id:",
        "connected_clients:",
        "used_memory:",
        "used_memory_human:",
        "total_commands_processed:",
        "total_connections_received:",
        "keyspace_hits:",
        "role:master",
        "used_cpu_sys:",
        "rdb_changes_since_last_save:",
        "aof_enabled:",
    ] {
        assert!(
            info.lines().any(|l| l.starts_with(field)),
            "INFO lacks {field}:\n{info}"
        );
    }
    let db0 = info
        .lines()
        .find(|l| l.starts_with("db0:"))
        .unwrap_or_else(|| panic!("INFO lacks db0:\n{info}"));
    assert!(db0.starts_with("db0:keys=2,expires=1,avg_ttl="), "{db0}");
    let db3 = info.lines().find(|l| l.starts_with("db3:"));
    assert_eq!(db3, Some("db3:keys=1,expires=0,avg_ttl=0"));
    assert!(
        !info.lines().any(|l| l.starts_with("db1:")),
        "empty db listed"
    );
    assert!(
        info.split("\r\n").count() > 10,
        "INFO lines must end in CRLF"
    );
    assert_eq!(
        info_field(&mut con, "server", "process_id"),
        Some(server.pid().to_string())
    );
    wait_connected_clients(&mut con, 3);

    let keyspace: String = cmd(&mut con, &["INFO", "keyspace"]);
    assert!(keyspace.starts_with("# Keyspace"), "{keyspace}");
    assert!(!keyspace.contains("redis_version"), "{keyspace}");
    let server_only: String = cmd(&mut con, &["INFO", "server"]);
    assert!(server_only.contains("redis_version:"));
    assert!(!server_only.contains("# Keyspace"));
}

#[test]
fn maxclients_refuses_the_extra_connection() {
    let mut server = ServerProc::start(&["--maxclients", "2"]);
    let mut first = server.conn();
    // The start-up probe's connection may still be counted for a moment.
    wait_connected_clients(&mut first, 1);
    let mut second = server.raw();
    assert_eq!(second.cmd(&["PING"]), b"+PONG\r\n");

    let mut third = server.raw();
    match third.read_until_closed(CLOSE_TIMEOUT) {
        Ok(got) => assert_eq!(
            resp::show(&got),
            resp::show(b"-ERR max number of clients reached\r\n")
        ),
        Err(got) => panic!(
            "third client not closed (got {}); maxclients 2 not enforced",
            resp::show(&got)
        ),
    }
    // The first two are unaffected; a slot frees up when one leaves.
    assert_eq!(cmd::<String>(&mut first, &["PING"]), "PONG");
    assert_eq!(second.cmd(&["PING"]), b"+PONG\r\n");
    drop(second);
    wait_connected_clients(&mut first, 1);
    assert_serves(&mut server);
}

#[test]
fn quit_replies_ok_and_closes() {
    let server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send_cmd(&["QUIT"]);
    assert_eq!(
        raw.read_until_closed(CLOSE_TIMEOUT).map(|b| resp::show(&b)),
        Ok(resp::show(b"+OK\r\n"))
    );
}

#[test]
fn shutdown_nosave_stops_the_process() {
    let mut server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send_cmd(&["SHUTDOWN", "NOSAVE"]);
    assert!(
        raw.read_until_closed(CLOSE_TIMEOUT).is_ok(),
        "connection still open after SHUTDOWN NOSAVE"
    );
    wait_until(Duration::from_secs(10), "the process to exit", || {
        !server.is_running()
    });
}

#[test]
fn sigterm_shuts_down_cleanly() {
    let mut server = ServerProc::start(&[]);
    let mut conn = server.conn();
    let _: () = redis::cmd("SET")
        .arg("k")
        .arg("v")
        .query(&mut conn)
        .unwrap();
    server.signal("TERM");
    wait_until(Duration::from_secs(10), "the process to exit", || {
        !server.is_running()
    });
    let status = server.exit_status().expect("exited");
    assert!(status.success(), "exit status {status:?}");
    let log = server.output();
    assert!(
        log.contains("Received SIGTERM scheduling shutdown..."),
        "{log}"
    );
    assert!(log.contains("ready to exit, bye bye"), "{log}");
}

// ---------------------------------------------------------------- protocol

/// The latency monitor: off by default; on, a command that holds the loop
/// (DEBUG SLEEP) is an event in LATEST, HISTORY and DOCTOR until RESET.
/// Event names are the server's own (Redis says `command`), so the test
/// finds the event by its latency.
#[test]
fn latency_monitor_records_a_blocked_loop() {
    let server = ServerProc::start(&["--enable-debug-command", "yes"]);
    let mut con = server.conn();
    assert_eq!(
        cmd::<Vec<String>>(&mut con, &["CONFIG", "GET", "latency-monitor-threshold"]),
        vec!["latency-monitor-threshold", "0"]
    );
    assert_eq!(cmd::<String>(&mut con, &["DEBUG", "SLEEP", "0.05"]), "OK");
    let latest: Vec<(String, i64, i64, i64)> = cmd(&mut con, &["LATENCY", "LATEST"]);
    assert!(latest.is_empty(), "monitor off, yet {latest:?}");

    cmd::<String>(
        &mut con,
        &["CONFIG", "SET", "latency-monitor-threshold", "40"],
    );
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    assert_eq!(cmd::<String>(&mut con, &["DEBUG", "SLEEP", "0.08"]), "OK");
    // A poll under the threshold is not an event.
    assert_eq!(cmd::<String>(&mut con, &["DEBUG", "SLEEP", "0"]), "OK");
    let latest: Vec<(String, i64, i64, i64)> = cmd(&mut con, &["LATENCY", "LATEST"]);
    let slept: Vec<_> = latest.iter().filter(|e| e.3 >= 80).collect();
    assert_eq!(slept.len(), 1, "one event of the 80 ms sleep in {latest:?}");
    let (event, time, last, max) = slept[0].clone();
    assert!(time >= before && time <= before + 5, "{time} vs {before}");
    assert!((80..1000).contains(&last) && last <= max, "{last} {max}");
    let history: Vec<(i64, i64)> = cmd(&mut con, &["LATENCY", "HISTORY", &event]);
    assert_eq!(history, vec![(time, last)]);
    let none: Vec<(i64, i64)> = cmd(&mut con, &["LATENCY", "HISTORY", "no-such-event"]);
    assert!(none.is_empty());
    let doctor: String = cmd(&mut con, &["LATENCY", "DOCTOR"]);
    assert!(doctor.contains(&event), "{doctor}");
    assert_eq!(
        cmd_err(&mut con, &["LATENCY", "NOSUCH"]),
        "ERR unknown subcommand 'NOSUCH'. Try LATENCY HELP."
    );
    assert_eq!(
        cmd_err(&mut con, &["LATENCY", "HISTORY"]),
        "ERR wrong number of arguments for 'latency|history' command"
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LATENCY", "RESET", "no-such-event"]),
        0
    );
    assert_eq!(
        cmd::<i64>(&mut con, &["LATENCY", "RESET"]),
        latest.len() as i64
    );
    let latest: Vec<(String, i64, i64, i64)> = cmd(&mut con, &["LATENCY", "LATEST"]);
    assert!(latest.is_empty(), "after RESET: {latest:?}");

    // A slow command and LATENCY in one read (one poll of the connection):
    // the event is there before the replies leave, as in Redis.
    let (ok, latest): (String, Vec<(String, i64, i64, i64)>) = redis::pipe()
        .cmd("DEBUG")
        .arg("SLEEP")
        .arg("0.08")
        .cmd("LATENCY")
        .arg("LATEST")
        .query(&mut con)
        .unwrap();
    assert_eq!(ok, "OK");
    assert!(
        latest.iter().any(|e| e.3 >= 80),
        "the sleep in the same pipeline: {latest:?}"
    );
}

// ---------------------------------------------------------------- lazy freeing
