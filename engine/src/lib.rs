//! # engine
//!
//! The keyspace and the meaning of every command, with no sockets and no
//! threads. The server crate owns the network and the thread-per-core
//! runtime; it calls into this crate on the thread that owns a shard.
//!
//! Map of the crate:
//! - [`resp`]: RESP2 request parser (resumable, zero-copy) and reply writers.
//! - [`keyhash`]: the one key hash; picks the shard and the page.
//! - [`pagetable`]: a database's keys in hash-range pages with snapshot epochs.
//! - [`value`]: what a key holds.
//! - [`lazyfree`]: which freed values and emptied databases go to the
//!   lazy-free thread (Redis's `lazyfree-lazy-*` rule).
//! - [`propagate`]: what writes leave for the log (canonical records,
//!   staged multi-shard parts) and which replies wait for the log.
//! - [`shard`]: one shard (all databases' pages for its hash residue), its
//!   clock, counters, lazy and active expiry; [`shard::ExecCtx`] is the
//!   context commands run in.
//! - [`command`]: the command table (arity, keys, flags, execution kind),
//!   lookup, and the [`command::Cluster`] interface cross-shard commands use.
//! - [`docs`]: COMMAND DOCS: Redis 7.0's docs of every command (argument
//!   trees parsed from compact syntax strings), which redis-cli's hints use.
//! - [`families`]: one module per command family, each with its table.
//! - [`error`] / [`reply`]: error texts in one place; owned replies for
//!   results merged across shards.
//! - [`glob`]: Redis's glob matching (KEYS, SCAN MATCH, CONFIG GET).
//! - [`longdouble`]: x87 80-bit `long double` in software (INCRBYFLOAT's
//!   parsing, addition and formatting, byte-identical to Redis on x86_64).
//! - [`journal`]: the per-shard append-only log; today its on-disk record
//!   format (framing, checksum, scanning with torn-tail detection).
//! - [`rdb`]: Redis's value serialization (RDB version 10) for DUMP/RESTORE.
//! - [`snapshot`]: fork-less incremental snapshots: the file format and how
//!   a chain of full and delta snapshots resolves.
//! - [`testkit`]: an in-process cluster of shards for unit tests.
//! - [`types`]: the value types, one module each (strings: plain or in
//!   shared chunks); what every other part asks about a value.

#![deny(unsafe_code)]

pub mod command;
pub mod docs;
pub mod error;
pub mod families;
pub mod glob;
pub mod journal;
pub mod keyhash;
pub mod lazyfree;
#[cfg(test)]
mod logged_tests;
pub mod longdouble;
pub mod pagetable;
pub mod propagate;
pub mod rdb;
pub mod reply;
pub mod resp;
pub mod shard;
pub mod snapshot;
pub mod testkit;
pub mod types;
pub mod value;
pub mod varint;

pub use command::{Args, Cluster, CommandSpec, Exec};
pub use error::Error;
pub use reply::Reply;
pub use shard::{ExecCtx, Shard};

/// The Redis version we report and whose behaviour we follow.
pub const REDIS_VERSION: &str = "7.0.15";
