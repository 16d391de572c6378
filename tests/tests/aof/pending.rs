//! Reads and writes not yet durable: a read never reveals a write whose
//! record is not durable yet, while reads of durable keys answer at once.

use super::*;

#[test]
fn a_read_never_reveals_a_write_that_is_not_durable() {
    let server = ServerProc::start(ALWAYS);
    let mut con = server.conn();
    let _: () = redis::cmd("MSET")
        .arg("k")
        .arg("old")
        .arg("other")
        .arg("durable")
        .query(&mut con)
        .unwrap();
    aof_fault(&mut con, &["sync", "EIO"]);
    let pending = set_in_background(&server, "k", "new");
    wait_until("the log to fail", Duration::from_secs(10), || {
        info_field(&mut con, "aof_last_write_status") == "err"
    });
    // A GET of k waits for its in-flight write ...
    let client = server.client();
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let r = client.get_connection().and_then(|mut c| {
            c.set_read_timeout(Some(Duration::from_secs(30)))?;
            redis::cmd("GET").arg("k").query::<Option<String>>(&mut c)
        });
        let _ = tx.send(r);
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(500)).is_err(),
        "GET revealed a write that was not durable"
    );
    // ... while a key whose data is durable answers at once.
    let t = Instant::now();
    assert_eq!(get(&mut con, "other").as_deref(), Some("durable"));
    assert!(t.elapsed() < Duration::from_millis(500));
    aof_fault(&mut con, &["OFF"]);
    assert_eq!(
        pending
            .recv_timeout(Duration::from_secs(10))
            .unwrap()
            .unwrap(),
        "OK"
    );
    let got = rx.recv_timeout(Duration::from_secs(10)).unwrap().unwrap();
    assert_eq!(got.as_deref(), Some("new"));
}
