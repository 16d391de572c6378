//! Command families, one module each. Each module exports `COMMANDS`, its
//! part of the command table; a command's semantics live only in its
//! family's module.

pub mod connection;
pub mod dump;
pub mod keys;
pub mod server;
pub mod strings;

use crate::command::CommandSpec;

pub static TABLES: &[&[CommandSpec]] = &[
    connection::COMMANDS,
    strings::COMMANDS,
    keys::COMMANDS,
    server::COMMANDS,
    dump::COMMANDS,
];

/// Logs the records that recreate `key` holding `value` with absolute
/// expiry `expire_at` (0: none), each argument bounded (the value's type
/// says how: [`crate::types::Value::recreate`]): for commands that move a
/// whole value (RENAME across shards).
pub fn propagate_entry(
    ctx: &mut crate::shard::ExecCtx<'_>,
    key: &[u8],
    value: &crate::value::Value,
    expire_at: u64,
) {
    value.recreate(key, expire_at, |args| ctx.propagate(args.iter().copied()));
}
