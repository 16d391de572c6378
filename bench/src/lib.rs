//! `bench`: the load generator behind every speed claim of this project.
//!
//! Map of the crate:
//!
//! - [`spec`]: what a run does ([`LoadSpec`]): connections, pacing, when to
//!   stop, and the workload's commands ([`CommandTemplate`], with
//!   `__key__` / `__data__` placeholders), value sizes and expiries.
//! - [`keys`]: which key each request touches: uniform, sequential,
//!   Gaussian or Zipf over `--key-min..=--key-max` ([`KeyGen`]).
//! - [`resp`]: writing requests and skimming replies of every RESP2/RESP3
//!   type without allocating.
//! - [`stats`]: HdrHistograms per command and per second, and how they merge
//!   across threads.
//! - [`load`]: the generator itself: [`run`] drives a spec with one tokio
//!   current-thread runtime per OS thread and returns a [`LoadReport`]
//!   (serialisable to JSON). Its module doc says exactly what a latency is,
//!   with and without `--rate`.
//!
//! - [`chart`]: plain SVG line charts (panels over a shared time axis, with
//!   event markers) for scenario results.
//! - [`scenario`]: `bench scenario NAME`: kv-server and redis-server side by
//!   side (throughput, durability, snapshot-under-load), each started on
//!   loopback ports in a scratch directory and stopped at the end.
//!
//! The `bench` binary is a thin command line over [`run`]; the scenarios of
//! M1.2 call [`run`] as a library.

#![deny(unsafe_code)]

pub mod chart;
pub mod keys;
pub mod load;
pub mod resp;
pub mod scenario;
pub mod spec;
pub mod stats;

pub use keys::{KeyGen, KeyPattern};
pub use load::{run, CommandReport, LoadError, LoadReport, Progress, SecondReport};
pub use spec::{CommandTemplate, LoadSpec, Range, StopAfter};
