//! Connection and administration commands, which the server answers itself:
//! PING, ECHO, QUIT, SELECT, AUTH, HELLO, RESET, CLIENT, COMMAND, CONFIG,
//! INFO, TIME, SHUTDOWN, ... Their table rows are in the engine's
//! `families::connection`; each names its handler as an
//! `engine::command::ConnCmd`, which [`execute`] maps to a function here in
//! one exhaustive `match` (a row without a handler does not compile).
//! MULTI/EXEC, WATCH, SUBSCRIBE and blocking commands will be added the
//! same way. Replies and errors follow Redis 7.
//!
//! Files: `admin/client.rs` (CLIENT), `admin/commands.rs` (COMMAND),
//! `admin/config_cmd.rs` (CONFIG), `admin/persistence.rs` (SAVE, BGSAVE,
//! BGREWRITEAOF, SHUTDOWN), `admin/debug.rs` (LATENCY, DEBUG); the rest
//! (PING, SELECT, AUTH, HELLO, ...) is here.

use std::sync::atomic::Ordering;

use engine::command::{self, flags, Args, ConnCmd};
use engine::docs;
use engine::resp::{self, parse_i64};
use engine::{CommandSpec, Error, Reply};

use crate::conn::Conn;
use crate::{info, log};

mod client;
mod commands;
mod config_cmd;
mod debug;
mod persistence;

use client::*;
use commands::*;
use config_cmd::*;
use debug::*;
use persistence::*;

/// Runs a connection or administration command with the handler its row
/// names.
pub async fn execute(conn: &mut Conn, handler: ConnCmd, args: Args<'_>) {
    let r = match handler {
        ConnCmd::Ping => ping(conn, args),
        ConnCmd::Echo => {
            resp::write_bulk(&mut conn.wbuf, args.get(1));
            Ok(())
        }
        ConnCmd::Quit => {
            resp::write_ok(&mut conn.wbuf);
            conn.close = true;
            Ok(())
        }
        ConnCmd::Select => select(conn, args),
        ConnCmd::Auth => auth(conn, args),
        ConnCmd::Hello => hello(conn, args),
        ConnCmd::Reset => {
            conn.db = 0;
            conn.client.db.store(0, Ordering::Relaxed);
            conn.client.set_name(b"");
            conn.authenticated = !conn.worker.shared.requires_password();
            resp::write_simple(&mut conn.wbuf, "RESET");
            Ok(())
        }
        ConnCmd::Client => client(conn, args),
        ConnCmd::Command => command_cmd(conn, args),
        ConnCmd::Config => config(conn, args).await,
        ConnCmd::Info => {
            let text = info::render(conn, args).await;
            resp::write_bulk(&mut conn.wbuf, text.as_bytes());
            Ok(())
        }
        ConnCmd::Time => {
            let us = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_micros());
            resp::write_array_len(&mut conn.wbuf, 2);
            resp::write_bulk(&mut conn.wbuf, (us / 1_000_000).to_string().as_bytes());
            resp::write_bulk(&mut conn.wbuf, (us % 1_000_000).to_string().as_bytes());
            Ok(())
        }
        ConnCmd::Shutdown => shutdown(conn, args).await,
        ConnCmd::Save => save(conn).await,
        ConnCmd::Bgsave => bgsave(conn, args),
        ConnCmd::Bgrewriteaof => bgrewriteaof(conn),
        ConnCmd::Lastsave => {
            let t = conn.worker.shared.snapshot_status().last_save_unix;
            resp::write_int(&mut conn.wbuf, t as i64);
            Ok(())
        }
        ConnCmd::Debug => debug(conn, args).await,
        ConnCmd::Latency => latency(conn, args),
    };
    if let Err(e) = r {
        conn.error(e);
    }
}

fn ping(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    match args.len() {
        1 => resp::write_simple(&mut conn.wbuf, "PONG"),
        2 => resp::write_bulk(&mut conn.wbuf, args.get(1)),
        _ => return Err(Error::WrongArity("ping".into())),
    }
    Ok(())
}

fn select(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let db = parse_i64(args.get(1)).ok_or(Error::NotInteger)?;
    let dbs = conn.worker.shard.borrow().databases();
    if db < 0 || db as usize >= dbs {
        return Err(Error::DbIndexOutOfRange);
    }
    conn.db = db as usize;
    conn.client.db.store(conn.db, Ordering::Relaxed);
    resp::write_ok(&mut conn.wbuf);
    Ok(())
}

/// Checks a password for the default user.
fn check_password(conn: &Conn, user: Option<&[u8]>, pass: &[u8]) -> Result<(), Error> {
    let cfg = conn.worker.shared.config();
    let wrongpass = || Error::msg("WRONGPASS invalid username-password pair or user is disabled.");
    if user.is_some_and(|u| u != b"default") {
        return Err(wrongpass());
    }
    if cfg.requirepass.is_empty() {
        // Without a password every password is accepted only via HELLO AUTH;
        // plain AUTH reports the misconfiguration, as Redis does.
        return Ok(());
    }
    if password_matches(cfg.requirepass.as_bytes(), pass) {
        Ok(())
    } else {
        Err(wrongpass())
    }
}

/// Compares a password in time that does not depend on where it differs
/// from the real one, nor on the real one's length: both are hashed with
/// SHA-256 (as Redis 7 compares password hashes) and the digests compared
/// with `subtle`'s constant-time equality.
fn password_matches(real: &[u8], given: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;
    let (real, given) = (Sha256::digest(real), Sha256::digest(given));
    real.as_slice().ct_eq(given.as_slice()).into()
}

fn auth(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    if args.len() > 3 {
        return Err(Error::Syntax);
    }
    if args.len() == 2 && !conn.worker.shared.requires_password() {
        return Err(Error::msg(
            "ERR AUTH <password> called without any password configured for the default user. Are you sure your configuration is correct?",
        ));
    }
    let (user, pass) = if args.len() == 3 {
        (Some(args.get(1)), args.get(2))
    } else {
        (None, args.get(1))
    };
    match check_password(conn, user, pass) {
        Ok(()) => {
            conn.authenticated = true;
            resp::write_ok(&mut conn.wbuf);
            Ok(())
        }
        Err(e) => {
            log::verbose("Client authentication failed");
            Err(e)
        }
    }
}

fn hello(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let mut i = 1;
    if args.len() >= 2 {
        let ver = parse_i64(args.get(1))
            .ok_or_else(|| Error::msg("ERR Protocol version is not an integer or out of range"))?;
        if ver != 2 {
            // RESP3 is not implemented yet.
            return Err(Error::msg("NOPROTO unsupported protocol version"));
        }
        i = 2;
    }
    let mut setname: Option<&[u8]> = None;
    let mut authed_now = false;
    while i < args.len() {
        let opt = args.get(i);
        let more = args.len() - i - 1;
        if opt.eq_ignore_ascii_case(b"auth") && more >= 2 {
            check_password(conn, Some(args.get(i + 1)), args.get(i + 2))?;
            authed_now = true;
            i += 3;
        } else if opt.eq_ignore_ascii_case(b"setname") && more >= 1 {
            setname = Some(args.get(i + 1));
            i += 2;
        } else {
            return Err(Error::quoting(&[
                b"ERR Syntax error in HELLO option '",
                opt,
                b"'",
            ]));
        }
    }
    if !conn.authenticated && !authed_now {
        return Err(Error::msg(
            "NOAUTH HELLO must be called with the client already authenticated, otherwise the HELLO <proto> AUTH <user> <pass> option can be used to authenticate the client and select the RESP protocol version at the same time",
        ));
    }
    if let Some(name) = setname {
        validate_client_name(name)?;
        conn.client.set_name(name);
    }
    if authed_now {
        conn.authenticated = true;
    }
    let reply = Reply::Array(vec![
        Reply::Bulk(b"server".to_vec()),
        Reply::Bulk(b"redis".to_vec()),
        Reply::Bulk(b"version".to_vec()),
        Reply::Bulk(engine::REDIS_VERSION.as_bytes().to_vec()),
        Reply::Bulk(b"proto".to_vec()),
        Reply::Int(2),
        Reply::Bulk(b"id".to_vec()),
        Reply::Int(conn.client.id as i64),
        Reply::Bulk(b"mode".to_vec()),
        Reply::Bulk(b"standalone".to_vec()),
        Reply::Bulk(b"role".to_vec()),
        Reply::Bulk(b"master".to_vec()),
        Reply::Bulk(b"modules".to_vec()),
        Reply::Array(vec![]),
    ]);
    reply.write_to(&mut conn.wbuf);
    Ok(())
}

fn validate_client_name(name: &[u8]) -> Result<(), Error> {
    if name.iter().any(|&c| !(b'!'..=b'~').contains(&c)) {
        return Err(Error::msg(
            "ERR Client names cannot contain spaces, newlines or special characters.",
        ));
    }
    Ok(())
}

fn unknown_subcommand(cmd: &str, sub: &[u8]) -> Error {
    Error::quoting(&[
        b"ERR unknown subcommand '",
        &sub[..sub.len().min(128)],
        b"'. Try ",
        cmd.to_ascii_uppercase().as_bytes(),
        b" HELP.",
    ])
}

fn sub_arity(cmd: &str, sub: &[u8]) -> Error {
    Error::WrongArity(format!(
        "{}|{}",
        cmd,
        String::from_utf8_lossy(sub).to_ascii_lowercase()
    ))
}

fn write_help(out: &mut Vec<u8>, cmd: &str, lines: &[&str]) {
    resp::write_array_len(out, lines.len() + 3);
    resp::write_simple(
        out,
        &format!(
            "{} <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
            cmd.to_ascii_uppercase()
        ),
    );
    for l in lines {
        resp::write_simple(out, l);
    }
    resp::write_simple(out, "HELP");
    resp::write_simple(out, "    Print this help.");
}

#[cfg(test)]
mod tests {
    use super::password_matches;

    #[test]
    fn password_comparison() {
        assert!(password_matches(b"secret", b"secret"));
        assert!(!password_matches(b"secret", b"secreT"));
        assert!(!password_matches(b"secret", b"secret2"));
        assert!(!password_matches(b"secret", b"secre"));
        assert!(!password_matches(b"secret", b""));
        assert!(password_matches(b"\x00\xff", b"\x00\xff"));
    }
}
