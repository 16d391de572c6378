//! # Layer 2: workers
//!
//! The worker threads, one per shard: each owns its shard, its mailbox and
//! its lock table, and runs every piece of work aimed at that shard
//! ([`worker`]); commands that span shards take locks or a barrier across
//! them ([`tx`]); the state every thread shares ([`shared`]) and the client
//! registry behind CLIENT LIST / KILL and the output-buffer limits
//! ([`clients`]).
//!
//! May import: `platform`, `crate::config` and this layer. Not `persist` or
//! `serve`, with the exceptions `docs/ARCHITECTURE.md` names (the worker
//! and the shared state still hold persistence's state); the `layering`
//! test in `main.rs` lists them.

pub mod clients;
pub mod shared;
pub mod tx;
pub mod worker;
