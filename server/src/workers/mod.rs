//! # Layer 2: workers
//!
//! The worker threads, one per shard: each owns its shard, its mailbox and
//! its lock table, and runs every piece of work aimed at that shard
//! ([`worker`]); commands that span shards take locks or a barrier across
//! them ([`tx`]); the state every thread shares ([`shared`]) and the client
//! registry behind CLIENT LIST / KILL and the output-buffer limits
//! ([`clients`]); the persistence state the shared state holds, as types
//! ([`persist_state`]: `persist` changes it).
//!
//! May import: `platform`, `crate::config` and this layer. Not `persist` or
//! `serve` (the `layering` test checks it).

pub mod clients;
pub mod persist_state;
pub mod shared;
pub mod tx;
pub mod worker;
