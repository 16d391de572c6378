//! Disk use: segments grow with the log (a new data directory stays
//! small) and fit the free space (a disk smaller than a default segment
//! per shard still takes writes).

use super::*;

/// A new data directory with a few keys holds a few MiB, not a 64 MiB
/// segment and a 64 MiB spare per shard: segments grow with the log.
#[test]
fn an_almost_empty_data_dir_stays_small() {
    if self_check_against_redis() {
        return;
    }
    let dir = ScratchDir::new("small-dir");
    let server = ServerProc::start_in(dir.path(), &["--threads", "2"]);
    let mut con = server.conn();
    for i in 0..100 {
        let () = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg("v")
            .query(&mut con)
            .unwrap();
    }
    // The spares are made in the background after the first flush.
    thread::sleep(Duration::from_millis(500));
    let used = disk_use(dir.path());
    println!("data directory with 100 keys: {} KiB", used / 1024);
    assert!(used <= 8 << 20, "{used} bytes on disk for 100 keys");
    drop(con);
    drop(server);
}

/// A disk smaller than one default (64 MiB) segment per shard: segments
/// adapt to the free space, so writes are acknowledged, and they are back
/// after a restart. Needs root (mount); skipped otherwise.
#[test]
fn a_small_disk_takes_segments_it_can_hold() {
    if self_check_against_redis() {
        return;
    }
    let scratch = ScratchDir::new("kv-smallfs");
    let Some(fs) = Tmpfs::mount(&scratch.path().join("fs"), "24m") else {
        return;
    };
    let mnt = fs.path().to_path_buf();
    let data = mnt.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let args = ["--threads", "2", "--appendfsync", "always"];
    let server = ServerProc::start_in(&data, &args);
    let mut con = server.conn();
    con.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let value = "v".repeat(10_000);
    for i in 0..600 {
        let r: redis::RedisResult<String> = redis::cmd("SET")
            .arg(format!("k{i}"))
            .arg(&value)
            .query(&mut con);
        if let Err(e) = r {
            panic!("SET {i} of 600 (6 MB on a 24 MB disk) failed: {e}");
        }
    }
    drop(con);
    let server = restart(server, &args);
    let mut con = server.conn();
    let n: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(n, 600);
    drop(con);
    drop(server);
}
