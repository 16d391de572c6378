//! # Layer 3: persist
//!
//! Everything that makes the keyspace durable, running on the workers: the
//! per-shard append-only log at run time ([`aof`]), turning it on and off
//! at run time ([`logswitch`]), start-up recovery from the newest snapshot
//! and the log ([`recover`]), and snapshots: SAVE, BGSAVE, the `save`
//! rules, each shard's background writer, the manifest ([`snapshot`]).
//! The file formats and their readers live in the engine
//! (`engine::journal`, `engine::snapshot`); this layer does the I/O on the
//! event loops and the crash-safe ordering of writes, syncs and renames.
//!
//! May import: `workers`, `platform`, `crate::config` and this layer. Not
//! `serve`.

pub mod aof;
pub mod logswitch;
pub mod recover;
pub mod snapshot;
