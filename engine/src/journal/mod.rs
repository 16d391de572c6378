//! # journal
//!
//! The per-shard append-only log (M1.3). Each shard appends the RESP text of
//! the writes it executes, framed as checksummed records, to its own log.
//!
//! What is here (library code; the server does not use it yet):
//! - [`record`]: the on-disk record format: [`record::encode`] /
//!   [`record::encode_command`] write one framed record into a buffer, and
//!   [`record::scan`] walks a byte stream back into records, telling a clean
//!   end (zero-filled, preallocated space), a torn tail (cut it) and
//!   corruption before the tail (refuse to start) apart.
//! - [`io`]: the [`LogIo`] seam every log byte goes through, segment and
//!   shard directory names, aligned buffers, a crash model and fault
//!   injection for tests.
//! - [`writer`]: [`Journal`]: aligned writes with tail-block rewrite, group
//!   commit, error retention and retry, segment roll-over.
//! - [`recovery`]: reading a shard's segments, torn-tail and transaction
//!   rules, and the logic of `check-aof [--fix]` and `export-aof`.
//! - [`redis_aof`]: finding and reading a Redis AOF (multi-part with a
//!   manifest, or a single file) for import.
//!
//! Later in M1.3: the server's io_uring `LogIo`, the group-commit loop and
//! `appendfsync` modes, replay at start, and the offline subcommands.
//!
//! The layout and the crash-safety argument are in `docs/FORMATS.md`.

pub mod io;
pub mod record;
pub mod recovery;
pub mod redis_aof;
pub mod writer;

pub use record::{
    encode, encode_command, encode_padding, scan, BadRecord, EncodeError, Record,
    RecordHeaderFields, RecordType, Scan, ScanError,
};

pub use io::{AlignedBuf, FaultyIo, IoPath, LogIo, MemIo, ReadIo, StdLogIo};
pub use recovery::{
    check, decode_command, decode_commands, export_aof, read_shard_log, read_shard_log_with,
    resolve_transactions, CheckReport, RecoveryError, RecoveryOptions, Resolved, ShardLog,
};
pub use writer::{FlushPlan, Journal, JournalConfig, JournalError, JournalStats, PlannedWrite};
