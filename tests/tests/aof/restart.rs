//! SIGKILL and restart: every fsync policy and I/O path brings the data
//! back, fifty crashes keep disk use and start-up flat, start-up leaves the
//! log out of the page cache, and a second server can't share the data
//! directory or the port.

use super::*;

/// Writes, SIGKILL, restart: the data is back, for every fsync policy and
/// I/O path (io_uring + O_DIRECT, pwrite on a helper thread, buffered).
#[test]
fn every_mode_and_io_path_survives_sigkill() {
    for (fsync, io) in [
        ("always", "auto"),
        ("everysec", "auto"),
        ("no", "auto"),
        ("always", "pwrite"),
        ("everysec", "buffered"),
    ] {
        let args = ["--appendfsync", fsync, "--aof-io", io, "--threads", "2"];
        let dir = ScratchDir::new("aof-modes");
        let server = ServerProc::start_in(dir.path(), &args);
        let mut con = server.conn();
        let path = info_field(&mut con, "aof_enabled");
        assert_eq!(path, "1");
        for i in 0..200 {
            let _: () = redis::cmd("SET")
                .arg(format!("key:{i}"))
                .arg(format!("value:{i}"))
                .query(&mut con)
                .unwrap();
        }
        let _: () = redis::cmd("MSET")
            .arg("{a}x")
            .arg("1")
            .arg("{b}y")
            .arg("2")
            .arg("{c}z")
            .arg("3")
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("EXPIRE")
            .arg("key:7")
            .arg("1000")
            .query(&mut con)
            .unwrap();
        let _: () = redis::cmd("SELECT").arg("5").query(&mut con).unwrap();
        let _: () = redis::cmd("SET")
            .arg("in5")
            .arg("five")
            .query(&mut con)
            .unwrap();
        let io_path = info_field(&mut con, "aof_io_path");
        let expected = match io {
            // everysec and no: a pwrite into the page cache.
            _ if fsync != "always" => "pwrite+buffered",
            // On epoll, the log takes the helper thread's pwrite path.
            "auto" if tests::epoll_forced() => "pwrite+direct",
            "auto" => "io_uring+direct",
            "pwrite" => "pwrite+direct",
            _ => "pwrite+buffered",
        };
        assert_eq!(io_path, expected, "{fsync} {io}");
        drop(con);
        let server = restart(server, &args);
        let mut con = server.conn();
        for i in 0..200 {
            assert_eq!(
                get(&mut con, &format!("key:{i}")),
                Some(format!("value:{i}")),
                "{fsync} {io}"
            );
        }
        let vals: Vec<Option<String>> = redis::cmd("MGET")
            .arg("{a}x")
            .arg("{b}y")
            .arg("{c}z")
            .query(&mut con)
            .unwrap();
        assert_eq!(
            vals,
            vec![Some("1".into()), Some("2".into()), Some("3".into())]
        );
        let ttl: i64 = redis::cmd("TTL").arg("key:7").query(&mut con).unwrap();
        assert!((990..=1000).contains(&ttl), "ttl {ttl}");
        let _: () = redis::cmd("SELECT").arg("5").query(&mut con).unwrap();
        assert_eq!(get(&mut con, "in5").as_deref(), Some("five"));
    }
}

/// Fifty SIGKILLs, each after a few writes and a restart: the log's disk
/// use and the segments a start reads depend on the data, not on how many
/// times the process died (each restart used to add a segment per shard,
/// all read at the next start), and every acknowledged key is back.
#[test]
fn fifty_crashes_keep_disk_use_and_start_up_flat() {
    if self_check_against_redis() {
        eprintln!("NOTE: tests kv-server's log files; skipped with KV_TEST_SERVER=redis");
        return;
    }
    let args = [
        "--threads",
        "2",
        "--appendfsync",
        "always",
        "--aof-segment-size",
        "1mb",
    ];
    let dir = ScratchDir::new("fifty-crashes");
    let mut server = ServerProc::start_in(dir.path(), &args);
    let log = dir.path().join("appendonlydir");
    let mut use_after = Vec::new();
    let mut starts = Vec::new();
    for cycle in 0..50 {
        let mut con = server.conn();
        for k in 0..20 {
            let () = redis::cmd("SET")
                .arg(format!("c{cycle}:{k}"))
                .arg("v".repeat(100))
                .query(&mut con)
                .unwrap();
        }
        drop(con);
        use_after.push(disk_use(&log));
        let started = Instant::now();
        server = restart(server, &args);
        starts.push(started.elapsed());
    }
    let mut con = server.conn();
    let mut missing = Vec::new();
    for cycle in 0..50 {
        for k in 0..20 {
            let key = format!("c{cycle}:{k}");
            if get(&mut con, &key).is_none() {
                missing.push(key);
            }
        }
    }
    assert!(missing.is_empty(), "lost after the crashes: {missing:?}");
    let segments = std::fs::read_dir(&log)
        .unwrap()
        .flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).into_iter().flatten().flatten())
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-0"))
        .count();
    println!(
        "disk use after crash 1, 10, 50: {} / {} / {} KiB; {segments} segments; starts: \
         first {:?}, last {:?}",
        use_after[0] / 1024,
        use_after[9] / 1024,
        use_after[49] / 1024,
        starts[0],
        starts[49]
    );
    // 100 KB of records fit the first 1 MiB segment of each shard: the same
    // files at the end as after the first crash (segment + spare a shard).
    assert!(segments <= 2, "{segments} segments after 50 crashes");
    assert!(
        use_after[49] <= use_after[0] + (1 << 20),
        "disk use grew from {} to {} bytes over 50 crashes",
        use_after[0],
        use_after[49]
    );
}

/// The log is written with O_DIRECT so it never fills the page cache; the
/// start-up's reading of it must not either (a restart would otherwise hold
/// a large log twice in memory). Checked with `fincore` (util-linux) on the
/// segment files after a restart; skipped where it is missing.
#[test]
fn start_up_leaves_the_log_out_of_the_page_cache() {
    let fincore = |files: &[std::path::PathBuf]| -> Option<u64> {
        let out = Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .args(files)
            .output()
            .ok()?;
        out.status.success().then(|| {
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|w| w.parse::<u64>().ok())
                .sum()
        })
    };
    let dir = ScratchDir::new("aof-page-cache");
    let server = ServerProc::start_in(dir.path(), &["--save", "", "--aof-segment-size", "1mb"]);
    let mut con = server.conn();
    let value = "v".repeat(1000);
    for i in 0..3000 {
        let _: () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(&value)
            .query(&mut con)
            .unwrap();
    }
    drop(con);
    let server = restart(server, &["--save", "", "--aof-segment-size", "1mb"]);
    let mut con = server.conn();
    assert_eq!(get(&mut con, "k2999").as_deref(), Some(value.as_str()));
    let segments: Vec<std::path::PathBuf> = std::fs::read_dir(dir.path().join("appendonlydir"))
        .unwrap()
        .flatten()
        .flat_map(|shard| {
            std::fs::read_dir(shard.path())
                .into_iter()
                .flatten()
                .flatten()
        })
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    assert!(segments.len() >= 2, "{segments:?}");
    let Some(resident) = fincore(&segments) else {
        eprintln!("NOTE: fincore is not available; the page cache is not checked");
        return;
    };
    // The server's own writes since the restart are O_DIRECT too; allow a
    // few pages for anything else.
    assert!(
        resident <= 64 * 1024,
        "{resident} bytes of the log's segments are in the page cache after start-up"
    );
}

/// Two servers never share a data directory (they would write the same
/// log) or a port (SO_REUSEPORT would otherwise let the second join).
#[test]
fn a_second_server_on_the_same_dir_or_port_refuses_to_start() {
    let dir = ScratchDir::new("aof-lock");
    let server = ServerProc::start_in(dir.path(), &[]);
    let other = ScratchDir::new("aof-lock-other");
    for (port, data) in [
        ("0", dir.path()),
        (&*server.port().to_string(), other.path()),
    ] {
        let out = Command::new(tests::server_bin())
            .args(["--bind", "127.0.0.1", "--port", port, "--dir"])
            .arg(data)
            .output()
            .expect("run kv-server");
        let text = String::from_utf8_lossy(&out.stdout).to_string()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "port {port}: {text}");
        assert!(
            text.contains("another kv-server is using the data directory")
                || text.contains("Address already in use"),
            "{text}"
        );
    }
    let mut con = server.conn();
    assert_eq!(get(&mut con, "nothing"), None);
}
