//! Connection and server administration commands. They are listed here so
//! the command table is the single list of commands (arity, flags, COMMAND
//! INFO); the server executes them, because they act on connections,
//! configuration and process state rather than on the keyspace.

use crate::command::flags::*;
use crate::command::{CommandSpec, Exec};

const fn conn(
    name: &'static str,
    arity: i32,
    flags: u32,
    group: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        group,
        summary,
        exec: Exec::Conn,
    }
}

pub static COMMANDS: &[CommandSpec] = &[
    conn("ping", -1, FAST, "connection", "Ping the server"),
    conn("echo", 2, FAST, "connection", "Echo the given string"),
    conn(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "Close the connection",
    ),
    conn(
        "select",
        2,
        LOADING | STALE | FAST,
        "connection",
        "Change the selected database for the current connection",
    ),
    conn(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "Authenticate to the server",
    ),
    conn(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "Handshake with Redis",
    ),
    conn(
        "client",
        -2,
        NOSCRIPT | LOADING | STALE,
        "connection",
        "A container for client connection commands",
    ),
    conn(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "connection",
        "Reset the connection",
    ),
    conn(
        "command",
        -1,
        LOADING | STALE,
        "server",
        "Get array of Redis command details",
    ),
    conn(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        "A container for server configuration commands",
    ),
    conn(
        "info",
        -1,
        LOADING | STALE,
        "server",
        "Get information and statistics about the server",
    ),
    conn(
        "time",
        1,
        LOADING | STALE | FAST,
        "server",
        "Return the current server time",
    ),
    conn(
        "latency",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        "A container for latency diagnostics commands",
    ),
    conn(
        "debug",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        "A container for debugging commands",
    ),
    conn(
        "save",
        1,
        ADMIN | NOSCRIPT,
        "server",
        "Synchronously save the dataset to disk",
    ),
    conn(
        "bgsave",
        -1,
        ADMIN | NOSCRIPT,
        "server",
        "Asynchronously save the dataset to disk",
    ),
    conn(
        "bgrewriteaof",
        1,
        ADMIN | NOSCRIPT,
        "server",
        "Asynchronously rewrites the append-only file to disk",
    ),
    conn(
        "lastsave",
        1,
        LOADING | STALE | FAST,
        "server",
        "Get the UNIX time stamp of the last successful save to disk",
    ),
    conn(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "server",
        "Synchronously save the dataset to disk and then shut down the server",
    ),
];
