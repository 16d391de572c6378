//! Command families, one module each. Each module exports `COMMANDS`, its
//! part of the command table; a command's semantics live only in its
//! family's module.

pub mod connection;
pub mod keys;
pub mod server;
pub mod strings;

use crate::command::CommandSpec;

pub static TABLES: &[&[CommandSpec]] = &[
    connection::COMMANDS,
    strings::COMMANDS,
    keys::COMMANDS,
    server::COMMANDS,
];
