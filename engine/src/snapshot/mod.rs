//! # snapshot
//!
//! Fork-less, incremental snapshots (M1.4). A snapshot starts at a barrier
//! across all shards ([`crate::Shard::begin_snapshot`]); each shard then
//! writes its pages as they were at the barrier, in the background, while
//! commands keep running: the pages themselves track what the snapshot
//! still needs (`pagetable`'s copy-before-write). A full snapshot holds
//! every page; a delta holds the page sub-ranges changed since the last
//! snapshot, and loads on top of its chain.
//!
//! - [`format`]: the file format (header block, checksummed page frames,
//!   end frame; optional LZ4), reading and writing it in memory.
//! - [`chain`]: which entries of a chain's files make up its state.
//! - [`kept`]: the memory copy-before-write keeps entries in.
//! - [`manifest`]: the manifest that names the snapshots kept and the log
//!   that continues them; reading it.
//! - [`reader`]: reading files back (streaming, verifying a chain,
//!   choosing and loading one), through the journal's `ReadIo` seam.
//!
//! The layout and the crash-safety argument are in `docs/FORMATS.md`.

pub mod chain;
pub mod format;
pub mod kept;
pub mod manifest;
pub mod reader;

#[cfg(test)]
mod patch_tests;
#[cfg(test)]
mod segments_patch_tests;
#[cfg(test)]
mod tests;
