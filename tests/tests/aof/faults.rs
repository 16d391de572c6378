//! Faults: a failing write or sync through the fault seam (DEBUG
//! AOF-FAULT) refuses writes with MISCONF, keeps reads and recovers;
//! `CONFIG SET appendonly no` is a way out; a real, full filesystem.

use super::*;

#[test]
fn a_failing_log_refuses_writes_keeps_reads_and_recovers() {
    for (op, errno, text) in [
        ("write", "EIO", "Input/output error"),
        ("sync", "ENOSPC", "No space left on device"),
    ] {
        let dir = ScratchDir::new("aof-fault");
        let server = ServerProc::start_in(dir.path(), ALWAYS);
        let mut con = server.conn();
        let _: () = redis::cmd("SET")
            .arg("before")
            .arg("1")
            .query(&mut con)
            .unwrap();
        assert_eq!(info_field(&mut con, "aof_last_write_status"), "ok");
        aof_fault(&mut con, &[op, errno]);
        // This write is executed but can't be made durable: no reply yet.
        let pending = set_in_background(&server, "during", "2");
        wait_until("aof_last_write_status:err", Duration::from_secs(10), || {
            info_field(&mut con, "aof_last_write_status") == "err"
        });
        assert!(
            pending.recv_timeout(Duration::from_millis(300)).is_err(),
            "a write was acknowledged while the log could not be written"
        );
        // New writes are refused, Redis's way.
        let err = redis::cmd("SET")
            .arg("refused")
            .arg("x")
            .query::<String>(&mut con)
            .unwrap_err();
        assert_eq!(err.code(), Some("MISCONF"), "{err}");
        assert!(
            err.to_string()
                .contains(&format!("Errors writing to the AOF file: {text}")),
            "{err}"
        );
        // Reads of durable data keep working and do not wait.
        let t = Instant::now();
        assert_eq!(get(&mut con, "before").as_deref(), Some("1"));
        assert!(t.elapsed() < Duration::from_millis(500));
        // The disk recovers: the retry succeeds, the pending write is acknowledged.
        aof_fault(&mut con, &["OFF"]);
        let r = pending
            .recv_timeout(Duration::from_secs(10))
            .expect("the pending write is acknowledged after the retry");
        assert_eq!(r.unwrap(), "OK");
        assert_eq!(info_field(&mut con, "aof_last_write_status"), "ok");
        let _: () = redis::cmd("SET")
            .arg("after")
            .arg("3")
            .query(&mut con)
            .unwrap();
        drop(con);
        let server = restart(server, ALWAYS);
        let mut con = server.conn();
        for (k, v) in [("before", "1"), ("during", "2"), ("after", "3")] {
            assert_eq!(get(&mut con, k).as_deref(), Some(v), "{op} {errno}: {k}");
        }
        assert_eq!(get(&mut con, "refused"), None);
    }
}

/// As in Redis, `CONFIG SET appendonly no` is a way out of a failing log:
/// the write that waited for it is answered, writes are accepted again,
/// and INFO shows the log off and no write error.
#[test]
fn turning_a_failing_log_off_accepts_writes_again() {
    let dir = ScratchDir::new("aof-fault-off");
    let server = ServerProc::start_in(dir.path(), ALWAYS);
    let mut con = server.conn();
    aof_fault(&mut con, &["write", "EIO"]);
    let pending = set_in_background(&server, "during", "2");
    wait_until("aof_last_write_status:err", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "err"
    });
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("appendonly")
        .arg("no")
        .query(&mut con)
        .unwrap();
    let r = pending
        .recv_timeout(Duration::from_secs(10))
        .expect("the waiting write is answered once the log is off");
    assert_eq!(r.unwrap(), "OK");
    assert_eq!(info_field(&mut con, "aof_enabled"), "0");
    assert_eq!(info_field(&mut con, "aof_last_write_status"), "ok");
    let _: () = redis::cmd("SET")
        .arg("after")
        .arg("3")
        .query(&mut con)
        .unwrap();
    assert_eq!(get(&mut con, "during").as_deref(), Some("2"));
    assert_eq!(get(&mut con, "after").as_deref(), Some("3"));
    aof_fault(&mut con, &["OFF"]);
}

/// A real, small filesystem that fills up: writes are refused with
/// MISCONF (ENOSPC), reads go on, and once space is freed the pending
/// writes land and nothing acknowledged is lost. Needs root (mount);
/// skipped otherwise.
#[test]
fn a_full_filesystem_refuses_writes_until_space_is_freed() {
    let scratch = ScratchDir::new("kv-fullfs");
    let Some(fs) = Tmpfs::mount(&scratch.path().join("fs"), "4m") else {
        return;
    };
    let mnt = fs.path().to_path_buf();
    let data = mnt.join("data");
    std::fs::create_dir_all(&data).unwrap();
    // Leave room for about two 512 KiB segments.
    let filler = mnt.join("filler");
    std::fs::write(&filler, vec![1u8; 2 * 1024 * 1024 + 512 * 1024]).unwrap();
    let args = ["--appendfsync", "always", "--aof-segment-size", "512kb"];
    let server = ServerProc::start_in(&data, &args);
    let mut con = server.conn();
    let value = "v".repeat(16 * 1024);
    let mut acked = 0usize;
    // Fill until a write does not come back quickly: the log can't grow.
    let (tx, rx) = mpsc::channel();
    let client = server.client();
    let v2 = value.clone();
    thread::spawn(move || {
        let mut c = client.get_connection().unwrap();
        c.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        for i in 0..1000 {
            let r = redis::cmd("SET")
                .arg(format!("big:{i}"))
                .arg(&v2)
                .query::<String>(&mut c);
            if tx.send((i, r)).is_err() {
                return;
            }
        }
    });
    let stalled_at = loop {
        match rx.recv_timeout(Duration::from_secs(3)) {
            Ok((i, Ok(_))) => acked = i + 1,
            Ok((i, Err(e))) => panic!("write {i} failed: {e}"),
            Err(_) => break acked,
        }
        assert!(acked < 1000, "the filesystem never filled up");
    };
    assert!(stalled_at > 0);
    wait_until("aof_last_write_status:err", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "err"
    });
    let err = redis::cmd("SET")
        .arg("x")
        .arg("y")
        .query::<String>(&mut con)
        .unwrap_err();
    assert_eq!(err.code(), Some("MISCONF"), "{err}");
    assert!(err.to_string().contains("No space left on device"), "{err}");
    assert_eq!(get(&mut con, "big:0").as_deref(), Some(value.as_str()));
    // Free space: the retry succeeds and the stalled write is acknowledged.
    std::fs::remove_file(&filler).unwrap();
    match rx.recv_timeout(Duration::from_secs(15)) {
        Ok((i, Ok(_))) => assert_eq!(i, stalled_at),
        other => panic!("the stalled write did not complete: {other:?}"),
    }
    wait_until("aof_last_write_status:ok", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "ok"
    });
    drop(con);
    let server = restart(server, &args);
    let mut con = server.conn();
    for i in 0..=stalled_at {
        assert_eq!(
            get(&mut con, &format!("big:{i}")).map(|v| v.len()),
            Some(value.len()),
            "big:{i}"
        );
    }
    drop(con);
    drop(server);
}
