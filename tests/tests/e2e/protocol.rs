//! The protocol: inline commands, partial frames, bad lengths, garbage,
//! the query buffer limit.

use super::*;

#[test]
fn inline_commands() {
    let server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send(b"PING\r\n").unwrap();
    assert_eq!(raw.read_reply(), b"+PONG\r\n");
    raw.send(b"SET greeting \"hello world\"\r\n").unwrap();
    assert_eq!(raw.read_reply(), b"+OK\r\n");
    raw.send(b"\r\n\r\n  GET   greeting  \n").unwrap();
    assert_eq!(raw.read_reply(), b"$11\r\nhello world\r\n");
    raw.send(b"ECHO 'single quoted'\r\nECHO \"\\x41\\n\"\r\n")
        .unwrap();
    assert_eq!(raw.read_reply(), b"$13\r\nsingle quoted\r\n");
    assert_eq!(raw.read_reply(), b"$2\r\nA\n\r\n");
}

#[test]
fn truncated_frames_wait_for_the_rest() {
    let mut server = ServerProc::start(&[]);
    let mut raw = server.raw();
    raw.send(b"*2\r\n$3\r\nGET\r\n$3\r\nfo").unwrap();
    raw.assert_silent(SILENCE);
    assert_serves(&mut server);
    raw.send(b"o\r\n").unwrap();
    assert_eq!(raw.read_reply(), b"$-1\r\n");

    // Byte by byte: the reply comes only after the last byte.
    let frame = resp::encode(&["ECHO", "hello"]);
    let (last, head) = frame.split_last().unwrap();
    for b in head {
        raw.send(std::slice::from_ref(b)).unwrap();
    }
    raw.assert_silent(SILENCE);
    raw.send(&[*last]).unwrap();
    assert_eq!(raw.read_reply(), b"$5\r\nhello\r\n");

    // A client that goes away mid-frame does not hurt anyone.
    let mut gone = server.raw();
    gone.send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$100\r\nabc")
        .unwrap();
    drop(gone);
    assert_serves(&mut server);
    assert_eq!(raw.cmd(&["GET", "k"]), b"$-1\r\n");
}

#[test]
fn bad_bulk_lengths_are_protocol_errors() {
    let mut server = ServerProc::start(&[]);
    let invalid_bulk = b"-ERR Protocol error: invalid bulk length\r\n";
    assert_reply_then_close(&mut server, b"*1\r\n$-5\r\n", invalid_bulk);
    assert_reply_then_close(&mut server, b"*1\r\n$abc\r\n", invalid_bulk);
    // Over the default proto-max-bulk-len (512mb).
    assert_reply_then_close(
        &mut server,
        b"*2\r\n$3\r\nGET\r\n$536870913\r\n",
        invalid_bulk,
    );
    assert_reply_then_close(
        &mut server,
        b"*abc\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    assert_reply_then_close(
        &mut server,
        b"*99999999999\r\n",
        b"-ERR Protocol error: invalid multibulk length\r\n",
    );
    assert_reply_then_close(
        &mut server,
        b"*1\r\nPING\r\n",
        b"-ERR Protocol error: expected '$', got 'P'\r\n",
    );
    // Commands before the bad frame in the same batch are answered.
    assert_reply_then_close(
        &mut server,
        b"*1\r\n$4\r\nPING\r\n*1\r\n$-5\r\n*1\r\n$4\r\nPING\r\n",
        b"+PONG\r\n-ERR Protocol error: invalid bulk length\r\n",
    );
    assert_reply_then_close(
        &mut server,
        b"ECHO \"unbalanced\r\n",
        b"-ERR Protocol error: unbalanced quotes in request\r\n",
    );
}

#[test]
fn proto_max_bulk_len_is_configurable() {
    let mut server = ServerProc::start(&["--proto-max-bulk-len", "1048576"]);
    assert_reply_then_close(
        &mut server,
        b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$1048577\r\n",
        b"-ERR Protocol error: invalid bulk length\r\n",
    );
    // Exactly the limit is fine.
    let value = vec![b'v'; 1_048_576];
    let mut con = server.conn();
    let mut set = redis::cmd("SET");
    set.arg("big").arg(&value);
    set.query::<()>(&mut con)
        .expect("SET of exactly proto-max-bulk-len");
    assert_eq!(cmd::<i64>(&mut con, &["STRLEN", "big"]), 1_048_576);
    assert_eq!(
        cmd_err(&mut con, &["APPEND", "big", "x"]),
        "ERR string exceeds maximum allowed size (proto-max-bulk-len)"
    );
}

#[test]
fn garbage_bytes_never_hurt_the_server() {
    let mut server = ServerProc::start(&[]);
    // Inline garbage is an unknown command, and the connection stays usable.
    let mut raw = server.raw();
    raw.send(b"\x01\x02garbage here\r\n").unwrap();
    assert_eq!(
        resp::show(&raw.read_reply()),
        resp::show(
            b"-ERR unknown command '\x01\x02garbage', with args beginning with: 'here' \r\n"
        )
    );
    assert_eq!(raw.cmd(&["PING"]), b"+PONG\r\n");

    // A line longer than 64 KiB without a newline.
    assert_reply_then_close(
        &mut server,
        &vec![b'a'; 70 * 1024],
        b"-ERR Protocol error: too big inline request\r\n",
    );

    // Random bytes: whatever comes back is well-formed RESP, nobody else is hurt.
    let mut rng = Rng::new(0x5eed);
    for round in 0..50 {
        let len = rng.range(1, 4096) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if round % 2 == 0 {
            bytes[0] = *rng.pick(b"*$+-:");
        }
        let mut c = server.raw();
        if c.send(&bytes).is_err() {
            continue;
        }
        let (got, _) = c.read_while(Duration::from_millis(50), |_| false);
        let mut rest = &got[..];
        while !rest.is_empty() {
            match resp::parse(rest) {
                Ok(Some((_, n))) => rest = &rest[n..],
                other => panic!(
                    "malformed reply ({other:?}) to {}: {}",
                    resp::show(&bytes),
                    resp::show(&got)
                ),
            }
        }
    }
    assert_serves(&mut server);
}

#[test]
fn query_buffer_limit_closes_the_connection() {
    let mut server = ServerProc::start(&["--client-query-buffer-limit", "1mb"]);
    let mut other = server.conn();
    cmd::<()>(&mut other, &["SET", "before", "1"]);

    // A bulk argument that never completes, growing past 1mb.
    let mut c = server.raw();
    let mut sent = 0usize;
    let mut refused = c
        .send(b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$4000000\r\n")
        .is_err();
    let chunk = vec![b'x'; 64 * 1024];
    while !refused && sent < 3_000_000 {
        refused = c.send(&chunk).is_err();
        sent += chunk.len();
    }
    match c.read_until_closed(CLOSE_TIMEOUT) {
        Ok(got) => assert!(
            got.is_empty() || got.starts_with(b"-ERR"),
            "unexpected reply {}",
            resp::show(&got)
        ),
        Err(_) => panic!("connection still open after {sent} bytes over a 1mb query buffer limit"),
    }

    assert_eq!(cmd::<String>(&mut other, &["GET", "before"]), "1");
    assert_serves(&mut server);
}
