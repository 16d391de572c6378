//! End-to-end tests: the real server binary on a loopback port, the `redis`
//! crate (and raw TCP where exact bytes matter) as the client.
//!
//! Every expected error text and byte string here is what Redis 7 sends;
//! `KV_TEST_SERVER=redis cargo test -p tests --test e2e` runs this file
//! against `redis-server` to check the tests themselves.
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use redis::{Connection, FromRedisValue};
use tests::resp::{self, Frame};
use tests::{wait_until, Fill, RawConn, Rng, Running, ServerProc};

/// How long a "the server must not answer yet" check waits.
const SILENCE: Duration = Duration::from_millis(300);
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

fn cmd<T: FromRedisValue>(con: &mut Connection, args: &[&str]) -> T {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    c.query(con)
        .unwrap_or_else(|e| panic!("{}: unexpected error {e}", args.join(" ")))
}

/// Runs a command that must fail; returns "CODE detail" (e.g. "ERR syntax error").
fn cmd_err(con: &mut Connection, args: &[&str]) -> String {
    let mut c = redis::cmd(args[0]);
    for a in &args[1..] {
        c.arg(*a);
    }
    match c.query::<redis::Value>(con) {
        Ok(v) => panic!("{}: expected an error, got {v:?}", args.join(" ")),
        Err(e) => match (e.code(), e.detail()) {
            (Some(code), Some(detail)) => format!("{code} {detail}"),
            (Some(code), None) => code.to_string(),
            _ => format!("{e}"),
        },
    }
}

/// Another client still gets served and the process is alive.
fn assert_serves(server: &mut Running) {
    let mut c = server.raw();
    assert_eq!(
        c.cmd(&["PING"]),
        b"+PONG\r\n",
        "server stopped serving new clients"
    );
    server.assert_running();
}

/// Sends `bytes` on a fresh connection and expects exactly `reply`, then close.
fn assert_reply_then_close(server: &mut Running, bytes: &[u8], reply: &[u8]) {
    let mut c = server.raw();
    c.send(bytes).expect("send");
    match c.read_until_closed(CLOSE_TIMEOUT) {
        Ok(got) => assert_eq!(
            resp::show(&got),
            resp::show(reply),
            "reply to {}",
            resp::show(bytes)
        ),
        Err(got) => panic!(
            "connection not closed after {} (received {})",
            resp::show(bytes),
            resp::show(&got)
        ),
    }
    assert_serves(server);
}

fn sorted(v: Vec<String>) -> Vec<String> {
    let mut v = v;
    v.sort();
    v
}

/// Full SCAN iteration; returns the set of keys seen.
fn scan_all(con: &mut Connection, opts: &[&str]) -> BTreeSet<String> {
    let mut cursor = "0".to_string();
    let mut keys = BTreeSet::new();
    let mut rounds = 0;
    loop {
        let mut args = vec!["SCAN", cursor.as_str()];
        args.extend_from_slice(opts);
        let (next, batch): (String, Vec<String>) = cmd(con, &args);
        keys.extend(batch);
        cursor = next;
        rounds += 1;
        assert!(rounds < 100_000, "SCAN never returned cursor 0");
        if cursor == "0" {
            return keys;
        }
    }
}

fn info_field(con: &mut Connection, section: &str, field: &str) -> Option<String> {
    let text: String = cmd(con, &["INFO", section]);
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{field}:")).map(str::to_string))
}

fn wait_connected_clients(con: &mut Connection, n: usize) {
    wait_until(
        Duration::from_secs(10),
        "connected_clients to settle",
        || info_field(con, "clients", "connected_clients") == Some(n.to_string()),
    );
}

// ---------------------------------------------------------------- commands

mod admin;
mod commands;
mod connections;
mod lazyfree;
mod protocol;
