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
    conn(
        "ping",
        -1,
        FAST,
        "Ping the server",
        "Returns the server's liveliness response.",
    ),
    conn(
        "echo",
        2,
        FAST,
        "Echo the given string",
        "Returns the given string.",
    ),
    conn(
        "quit",
        -1,
        ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "Close the connection",
        "Closes the connection.",
    ),
    conn(
        "select",
        2,
        LOADING | STALE | FAST,
        "Change the selected database for the current connection",
        "Changes the selected database.",
    ),
    conn(
        "auth",
        -2,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "Authenticate to the server",
        "Authenticates the connection.",
    ),
    conn(
        "hello",
        -1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "Handshake with Redis",
        "Handshakes with the Redis server.",
    ),
    conn(
        "client",
        -2,
        NOSCRIPT | LOADING | STALE,
        "A container for client connection commands",
        "A container for client connection commands.",
    ),
    conn(
        "reset",
        1,
        NOSCRIPT | LOADING | STALE | FAST | NO_AUTH,
        "Reset the connection",
        "Resets the connection.",
    ),
    conn(
        "command",
        -1,
        LOADING | STALE,
        "Get array of Redis command details",
        "Returns detailed information about all commands.",
    ),
    conn(
        "config",
        -2,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "A container for server configuration commands",
        "A container for server configuration commands.",
    ),
    conn(
        "info",
        -1,
        LOADING | STALE,
        "Get information and statistics about the server",
        "Returns information and statistics about the server.",
    ),
    conn(
        "time",
        1,
        LOADING | STALE | FAST,
        "Return the current server time",
        "Returns the server time.",
    ),
    conn(
        "shutdown",
        -1,
        ADMIN | NOSCRIPT | LOADING | STALE,
        "Synchronously save the dataset to disk and then shut down the server",
        "Synchronously saves the database(s) to disk and shuts down the Redis server.",
    ),
];
