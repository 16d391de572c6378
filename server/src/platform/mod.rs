//! # Layer 1: platform
//!
//! What the server runs on, knowing nothing of shards, persistence or
//! clients: the event-loop runtime (io_uring, or epoll where io_uring is
//! denied) and its job threads ([`runtime`]), the few `unsafe` libc calls
//! ([`sys`]), the allocator with its byte count ([`alloc`]), Redis-style
//! log lines ([`log`]), the latency monitor ([`latency`]), the lazy-free
//! thread ([`lazyfree`]) and systemd supervision ([`supervise`]).
//!
//! May import: `crate::config` and the other modules of this layer. No
//! module of `workers`, `persist` or `serve` (checked by `layering` in
//! `main.rs`'s tests).

pub mod alloc;
pub mod latency;
pub mod lazyfree;
pub mod log;
pub mod runtime;
pub mod supervise;
pub mod sys;
