//! The hand-written command groups, one file per family.

mod connection;
mod hashes;
mod keys;
mod sets;
mod strings;

pub(crate) use connection::*;
pub(crate) use hashes::*;
pub(crate) use keys::*;
pub(crate) use sets::*;
pub(crate) use strings::*;
