//! Clients that do not read their replies: output buffer limits,
//! backpressure, `maxmemory-clients`, CLIENT LIST's buffer fields, and the
//! memory given back when such clients go.
//!
//! The hostile client is a raw TCP socket that pipelines `GET big` (a 1 MB
//! value) or `MGET big ...` and never reads. Tests that hold for Redis 7
//! too run against it with `KV_TEST_SERVER=redis`; the ones about memory
//! bounds check our deliberate differences and are skipped there.

use std::io::{ErrorKind, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use redis::Connection;
use tests::resp::{self, Frame};
use tests::{self_check_against_redis, wait_until, RawConn, Running, ServerProc};

const MB: usize = 1 << 20;

fn start() -> ServerProc {
    ServerProc::start(&["--threads", "2", "--appendonly", "no", "--save", ""])
}

/// `CONFIG SET name value`, which must succeed.
fn config_set(con: &mut redis::Connection, name: &str, value: &str) {
    let () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(con)
        .unwrap_or_else(|e| panic!("CONFIG SET {name} {value}: {e}"));
}

fn set_big(con: &mut Connection) {
    let () = redis::cmd("SET")
        .arg("big")
        .arg(vec![b'x'; MB])
        .query(con)
        .expect("SET big");
}

/// A client that sends and never reads.
struct NonReader {
    raw: RawConn,
    id: u64,
}

impl NonReader {
    fn connect(server: &Running) -> NonReader {
        let mut raw = server.raw();
        let id = match resp::parse_one(&raw.cmd(&["CLIENT", "ID"])) {
            Frame::Int(id) => id as u64,
            other => panic!("CLIENT ID: {other:?}"),
        };
        raw.stream().set_nonblocking(true).expect("non-blocking");
        NonReader { raw, id }
    }

    /// Sends `cmd` `n` times, as far as the socket takes it; returns how
    /// many whole commands went (the rest are dropped).
    fn pipeline(&mut self, cmd: &[&[u8]], n: usize) -> usize {
        let one = resp::encode(cmd);
        let all = one.repeat(n);
        let mut sent = 0;
        let deadline = Instant::now() + Duration::from_secs(2);
        let mut stream: &TcpStream = self.raw.stream();
        while sent < all.len() && Instant::now() < deadline {
            match stream.write(&all[sent..]) {
                Ok(k) => sent += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                Err(_) => break,
            }
        }
        sent / one.len()
    }
}

/// The server process's resident memory, from /proc/PID/status.
fn rss(server: &Running) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{}/status", server.pid()))
        .expect("read the server's /proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<usize>().ok())
        .map(|kb| kb * 1024)
        .expect("VmRSS in /proc status")
}

/// CLIENT LIST's fields for client `id`, if it is listed.
fn client_fields(con: &mut Connection, id: u64) -> Option<Vec<(String, String)>> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(con)
        .expect("CLIENT LIST");
    let prefix = format!("id={id} ");
    list.lines().find(|l| l.starts_with(&prefix)).map(|l| {
        l.split(' ')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    })
}

fn field(fields: &[(String, String)], name: &str) -> u64 {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or_else(|| panic!("no numeric {name} in {fields:?}"))
}

fn listed(con: &mut Connection, id: u64) -> bool {
    client_fields(con, id).is_some()
}

fn info_field(con: &mut Connection, section: &str, name: &str) -> u64 {
    let info: String = redis::cmd("INFO").arg(section).query(con).expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}:")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in INFO {section}:\n{info}"))
}

const GET_BIG: &[&[u8]] = &[b"GET", b"big"];

/// `MGET big` x16: a 16 MB reply, more than the kernel's socket buffers
/// take from a client that does not read.
fn mget_big(n: usize) -> Vec<&'static [u8]> {
    [&b"MGET"[..]]
        .into_iter()
        .chain(std::iter::repeat_n(&b"big"[..], n))
        .collect()
}

/// The scenario with the default configuration: three clients
/// pipeline GETs of a 1 MB value without reading. Before, one of them
/// drove the server to 1.2 GB; now backpressure holds each to a few MB.
#[test]
fn non_readers_pipelining_big_gets_stay_bounded() {
    if self_check_against_redis() {
        return; // Redis lets their buffers grow (normal 0 0 0).
    }
    let server = start();
    let mut con = server.conn();
    set_big(&mut con);
    let base = rss(&server);
    let mut hostile: Vec<NonReader> = (0..3).map(|_| NonReader::connect(&server)).collect();
    let mut peak = base;
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut sent = 0;
    while Instant::now() < deadline {
        for h in &mut hostile {
            sent += h.pipeline(GET_BIG, 2000);
        }
        peak = peak.max(rss(&server));
        if peak > base + 100 * MB {
            break; // failed: do not take the machine's memory
        }
    }
    assert!(sent > 3 * 1000, "the clients could send only {sent} GETs");
    peak = peak.max(rss(&server));
    assert!(
        peak < base + 100 * MB,
        "RSS went from {} MiB to {} MiB with {sent} GETs of 1 MB pending",
        base / MB,
        peak / MB
    );
    for h in &hostile {
        let f = client_fields(&mut con, h.id).expect("the non-reader is still connected");
        assert!(field(&f, "omem") > 0, "a stuck client shows no omem: {f:?}");
    }
    // Everyone else is still served.
    let v: Vec<u8> = redis::cmd("GET").arg("big").query(&mut con).unwrap();
    assert_eq!(v.len(), MB);
}

/// CLIENT LIST shows what a stuck client holds (Redis's field names):
/// pending output in omem (and oll), and tot-mem at least that.
#[test]
fn client_list_shows_the_pending_output_of_a_stuck_client() {
    let server = start();
    let mut con = server.conn();
    set_big(&mut con);
    let mut h = NonReader::connect(&server);
    assert_eq!(h.pipeline(&mget_big(16), 4), 4);
    let mut last = Vec::new();
    wait_until(Duration::from_secs(10), "omem of the stuck client", || {
        last = client_fields(&mut con, h.id).expect("still connected");
        field(&last, "omem") >= MB as u64
    });
    assert!(field(&last, "oll") > 0, "{last:?}");
    assert!(
        field(&last, "tot-mem") >= field(&last, "omem"),
        "tot-mem below omem: {last:?}"
    );
    // An idle client shows its query buffer's free space and no output.
    let me: u64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
    let mine = client_fields(&mut con, me).expect("listed");
    assert!(field(&mine, "qbuf-free") > 0, "{mine:?}");
    assert_eq!(field(&mine, "omem"), 0, "{mine:?}");
    assert!(field(&mine, "tot-mem") > 0, "{mine:?}");
}

/// A reply bigger than the hard limit closes a client that does not read
/// it, at once.
#[test]
fn hard_limit_closes_a_non_reader() {
    let server = start();
    let mut con = server.conn();
    set_big(&mut con);
    config_set(&mut con, "client-output-buffer-limit", "normal 4mb 0 0");
    let mut h = NonReader::connect(&server);
    assert_eq!(h.pipeline(&mget_big(8), 4), 4);
    wait_until(Duration::from_secs(5), "the client closed", || {
        !listed(&mut con, h.id)
    });
    // A client that reads gets the same reply whole.
    let cmd = {
        let mut c = redis::cmd("MGET");
        for _ in 0..3 {
            c.arg("big");
        }
        c
    };
    config_set(&mut con, "client-output-buffer-limit", "normal 16mb 0 0");
    let v: Vec<Vec<u8>> = cmd.query(&mut con).unwrap();
    assert_eq!(v.len(), 3);
}

/// Over the soft limit for longer than its seconds: closed; not before.
/// The client goes on sending, as Redis checks only when it adds a reply.
#[test]
fn soft_limit_closes_after_its_seconds() {
    let server = start();
    let mut con = server.conn();
    set_big(&mut con);
    config_set(&mut con, "client-output-buffer-limit", "normal 0 4mb 2");
    let mut h = NonReader::connect(&server);
    let started = Instant::now();
    assert_eq!(h.pipeline(&mget_big(16), 4), 4);
    let mut closed_after = None;
    while started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(100));
        let _ = h.pipeline(GET_BIG, 1);
        if !listed(&mut con, h.id) {
            closed_after = Some(started.elapsed());
            break;
        }
    }
    let after = closed_after.expect("the client was not closed within 10 s");
    assert!(
        after >= Duration::from_millis(1900),
        "closed after {after:?}, before the soft limit's 2 seconds"
    );
}

/// maxmemory-clients closes the biggest client, not one with CLIENT
/// NO-EVICT on, and counts it in INFO stats `evicted_clients`.
#[test]
fn maxmemory_clients_evicts_the_biggest_client() {
    let server = start();
    let mut con = server.conn();
    set_big(&mut con);
    let () = redis::cmd("CLIENT")
        .arg("NO-EVICT")
        .arg("on")
        .query(&mut con)
        .unwrap();
    let me: u64 = redis::cmd("CLIENT").arg("ID").query(&mut con).unwrap();
    let flags = client_fields(&mut con, me).expect("listed");
    assert!(
        flags.iter().any(|(k, v)| k == "flags" && v.contains('e')),
        "{flags:?}"
    );
    let mut small = NonReader::connect(&server);
    let mut h = NonReader::connect(&server);
    config_set(&mut con, "maxmemory-clients", "1mb");
    assert_eq!(h.pipeline(&mget_big(16), 4), 4);
    wait_until(Duration::from_secs(5), "the big client evicted", || {
        !listed(&mut con, h.id)
    });
    assert!(
        listed(&mut con, small.id),
        "the small client was evicted too"
    );
    assert!(listed(&mut con, me), "the no-evict client was evicted");
    assert!(info_field(&mut con, "stats", "evicted_clients") >= 1);
    let _ = small.pipeline(&[b"PING"], 1);
}

/// After clients that held big replies go, the memory goes back to the
/// system: RSS returns near where it was. (Before, mimalloc kept it.)
#[test]
fn memory_of_closed_clients_goes_back() {
    if self_check_against_redis() {
        return; // RSS after free is the allocator's business there.
    }
    let server = start();
    let mut con = server.conn();
    set_big(&mut con);
    // 100 MB replies: under the default limits (512mb 128mb 60).
    let base = rss(&server);
    let mget = mget_big(100);
    let mut hostile: Vec<NonReader> = (0..3).map(|_| NonReader::connect(&server)).collect();
    for h in &mut hostile {
        assert_eq!(h.pipeline(&mget, 2), 2);
    }
    wait_until(Duration::from_secs(20), "the replies built", || {
        rss(&server) > base + 250 * MB
    });
    drop(hostile);
    let mut now = 0;
    wait_until(Duration::from_secs(10), "RSS back near its start", || {
        now = rss(&server);
        now < base + 30 * MB
    });
    let mut probe = server.raw();
    assert_eq!(probe.cmd(&["PING"]), b"+PONG\r\n");
}

/// A client that reads gets every reply whole and in order, also when a
/// pipeline's replies pass the budget and a shard runs its batch in parts.
#[test]
fn pipelined_big_replies_arrive_whole_and_in_order() {
    let server = start();
    let mut raw = server.raw();
    let values: Vec<(Vec<u8>, Vec<u8>)> = (0..30)
        .map(|i| {
            let key = format!("k{i}").into_bytes();
            (key, vec![b'a' + (i % 26) as u8; 300_000 + i as usize])
        })
        .collect();
    let mut sets = Vec::new();
    for (k, v) in &values {
        sets.extend(resp::encode(&[&b"SET"[..], k, v]));
    }
    raw.send(&sets).unwrap();
    for _ in &values {
        assert_eq!(raw.read_reply(), b"+OK\r\n");
    }
    let mut gets = Vec::new();
    for _ in 0..3 {
        for (k, _) in &values {
            gets.extend(resp::encode(&[&b"GET"[..], k]));
            gets.extend(resp::encode(&[b"PING"]));
        }
    }
    raw.send(&gets).unwrap();
    for round in 0..3 {
        for (k, v) in &values {
            let reply = raw.read_reply();
            assert_eq!(
                resp::parse_one(&reply),
                Frame::Bulk(Some(v.clone())),
                "GET {} in round {round}",
                String::from_utf8_lossy(k)
            );
            assert_eq!(raw.read_reply(), b"+PONG\r\n");
        }
    }
}

/// CONFIG SET / GET of both directives with Redis 7's syntax, replies and
/// errors.
#[test]
fn config_set_and_get_like_redis() {
    let server = start();
    let mut con = server.conn();
    let get = |con: &mut Connection, name: &str| -> String {
        let v: Vec<String> = redis::cmd("CONFIG")
            .arg("GET")
            .arg(name)
            .query(con)
            .unwrap();
        v.get(1).cloned().unwrap_or_default()
    };
    let set = |con: &mut Connection, name: &str, v: &str| -> redis::RedisResult<()> {
        redis::cmd("CONFIG").arg("SET").arg(name).arg(v).query(con)
    };
    set(
        &mut con,
        "client-output-buffer-limit",
        "normal 1mb 2mb 3 pubsub 10 20 30",
    )
    .unwrap();
    set(
        &mut con,
        "client-output-buffer-limit",
        "replica 256mb 64mb 60",
    )
    .unwrap();
    assert_eq!(
        get(&mut con, "client-output-buffer-limit"),
        "normal 1048576 2097152 3 slave 268435456 67108864 60 pubsub 10 20 30"
    );
    let e = set(&mut con, "client-output-buffer-limit", "normal 1mb 2mb").unwrap_err();
    assert_eq!(
        e.detail(),
        Some(
            "CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - \
             Wrong number of arguments in buffer limit configuration."
        )
    );
    let e = set(&mut con, "client-output-buffer-limit", "master 1 2 3").unwrap_err();
    assert!(
        e.detail().is_some_and(
            |d| d.ends_with("Invalid client class specified in buffer limit configuration.")
        ),
        "{e}"
    );
    set(&mut con, "maxmemory-clients", "10%").unwrap();
    assert_eq!(get(&mut con, "maxmemory-clients"), "10%");
    set(&mut con, "maxmemory-clients", "0").unwrap();
    assert_eq!(get(&mut con, "maxmemory-clients"), "0");
}
