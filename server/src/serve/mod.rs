//! # Layer 4: serve
//!
//! Clients: a connection reads, parses, routes to shards, batches and
//! replies ([`conn`]); the connection and server commands the server
//! answers itself, from AUTH and CLIENT to CONFIG, SAVE and SHUTDOWN
//! ([`admin`]); and INFO's sections ([`info`]).
//!
//! May import every layer below (`persist`, `workers`, `platform`) and
//! `crate::config`. `conn` and `admin` import each other: a connection
//! dispatches the commands the server answers itself to `admin`, and those
//! commands change the connection (SELECT, AUTH, CLIENT, HELLO).

pub mod admin;
pub mod conn;
pub mod info;
