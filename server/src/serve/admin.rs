//! Connection and administration commands, which the server answers itself:
//! PING, ECHO, QUIT, SELECT, AUTH, HELLO, RESET, CLIENT, COMMAND, CONFIG,
//! INFO, TIME, SHUTDOWN, ... Their table rows are in the engine's
//! `families::connection`; each names its handler as an
//! `engine::command::ConnCmd`, which [`execute`] maps to a function here in
//! one exhaustive `match` (a row without a handler does not compile).
//! MULTI/EXEC, WATCH, SUBSCRIBE and blocking commands will be added the
//! same way. Replies and errors follow Redis 7.

use std::sync::atomic::Ordering;

use engine::command::{self, flags, Args, ConnCmd};
use engine::docs;
use engine::resp::{self, parse_i64};
use engine::{CommandSpec, Error, Reply};

use crate::conn::Conn;
use crate::{info, log};

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

fn client(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let sub = args.get(1);
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    let n = args.len();
    let shared = conn.worker.shared.clone();
    if is("id") && n == 2 {
        resp::write_int(&mut conn.wbuf, conn.client.id as i64);
    } else if is("setname") && n == 3 {
        validate_client_name(args.get(2))?;
        conn.client.set_name(args.get(2));
        resp::write_ok(&mut conn.wbuf);
    } else if is("getname") && n == 2 {
        let name = conn.client.name();
        if name.is_empty() {
            resp::write_null(&mut conn.wbuf);
        } else {
            resp::write_bulk(&mut conn.wbuf, &name);
        }
    } else if is("info") && n == 2 {
        let mut line = conn.client.info_line();
        line.push('\n');
        resp::write_bulk(&mut conn.wbuf, line.as_bytes());
    } else if is("list") {
        let mut ids: Option<Vec<u64>> = None;
        let mut i = 2;
        while i < n {
            let opt = args.get(i);
            if opt.eq_ignore_ascii_case(b"type") && i + 1 < n {
                let t = args.get(i + 1);
                let known = [&b"normal"[..], b"master", b"replica", b"slave", b"pubsub"];
                if !known.iter().any(|k| t.eq_ignore_ascii_case(k)) {
                    return Err(Error::msg(format!(
                        "ERR Unknown client type '{}'",
                        String::from_utf8_lossy(t)
                    )));
                }
                if !t.eq_ignore_ascii_case(b"normal") {
                    ids = Some(Vec::new());
                }
                i += 2;
            } else if opt.eq_ignore_ascii_case(b"id") && i + 1 < n {
                let mut list = Vec::new();
                for a in args.iter().skip(i + 1) {
                    match parse_i64(a) {
                        Some(v) if v > 0 => list.push(v as u64),
                        _ => return Err(Error::msg("ERR Invalid client ID")),
                    }
                }
                ids = Some(list);
                i = n;
            } else {
                return Err(Error::Syntax);
            }
        }
        let mut text = String::new();
        for c in shared.clients.all() {
            if ids.as_ref().is_some_and(|ids| !ids.contains(&c.id)) {
                continue;
            }
            text.push_str(&c.info_line());
            text.push('\n');
        }
        resp::write_bulk(&mut conn.wbuf, text.as_bytes());
    } else if is("kill") && n >= 3 {
        client_kill(conn, args)?;
    } else if is("no-evict") && n == 3 {
        let v = args.get(2);
        let on = if v.eq_ignore_ascii_case(b"on") {
            true
        } else if v.eq_ignore_ascii_case(b"off") {
            false
        } else {
            return Err(Error::Syntax);
        };
        conn.client
            .no_evict
            .store(on, std::sync::atomic::Ordering::Relaxed);
        resp::write_ok(&mut conn.wbuf);
    } else if is("help") && n == 2 {
        write_help(
            &mut conn.wbuf,
            "client",
            &[
                "GETNAME",
                "    Return the name of the current connection.",
                "ID",
                "    Return the ID of the current connection.",
                "INFO",
                "    Return information about the current client connection.",
                "KILL <ip:port>",
                "    Kill connection made from <ip:port>.",
                "KILL <option> <value> [<option> <value> [...]]",
                "    Kill connections. Options are: ID <client-id>, ADDR <ip:port>, LADDR <ip:port>, SKIPME (YES|NO), USER <username>, TYPE (NORMAL|MASTER|REPLICA|PUBSUB).",
                "LIST [options ...]",
                "    Return information about client connections. Options: TYPE (NORMAL|MASTER|REPLICA|PUBSUB), ID <client-id> [<client-id> ...]",
                "NO-EVICT (ON|OFF)",
                "    Protect current client connection from eviction.",
                "SETNAME <name>",
                "    Assign the name <name> to the current connection.",
            ],
        );
    } else {
        let known = [
            "id", "setname", "getname", "info", "list", "kill", "no-evict", "help",
        ];
        if known.iter().any(|k| is(k)) {
            return Err(sub_arity("client", sub));
        }
        return Err(unknown_subcommand("client", sub));
    }
    Ok(())
}

fn client_kill(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let shared = conn.worker.shared.clone();
    let me = conn.client.id;
    if args.len() == 3 {
        // Old form: CLIENT KILL addr:port -> OK or error.
        let addr = String::from_utf8_lossy(args.get(2)).into_owned();
        let n = shared.clients.kill(|c| c.addr.to_string() == addr);
        if n == 0 {
            return Err(Error::msg("ERR No such client"));
        }
        if conn.client.addr.to_string() == addr {
            conn.close = true;
        }
        resp::write_ok(&mut conn.wbuf);
        return Ok(());
    }
    let mut id: Option<u64> = None;
    let mut addr: Option<String> = None;
    let mut laddr: Option<String> = None;
    let mut skipme = true;
    let mut ty_normal = true;
    let mut i = 2;
    while i + 1 < args.len() {
        let (opt, val) = (args.get(i), args.get(i + 1));
        let val_s = String::from_utf8_lossy(val).into_owned();
        if opt.eq_ignore_ascii_case(b"id") {
            match parse_i64(val) {
                Some(v) if v > 0 => id = Some(v as u64),
                _ => return Err(Error::msg("ERR client-id should be greater than 0")),
            }
        } else if opt.eq_ignore_ascii_case(b"addr") {
            addr = Some(val_s);
        } else if opt.eq_ignore_ascii_case(b"laddr") {
            laddr = Some(val_s);
        } else if opt.eq_ignore_ascii_case(b"skipme") {
            skipme = if val.eq_ignore_ascii_case(b"yes") {
                true
            } else if val.eq_ignore_ascii_case(b"no") {
                false
            } else {
                return Err(Error::Syntax);
            };
        } else if opt.eq_ignore_ascii_case(b"type") {
            let known = [&b"normal"[..], b"master", b"replica", b"slave", b"pubsub"];
            if !known.iter().any(|k| val.eq_ignore_ascii_case(k)) {
                return Err(Error::msg(format!("ERR Unknown client type '{val_s}'")));
            }
            ty_normal = val.eq_ignore_ascii_case(b"normal");
        } else if opt.eq_ignore_ascii_case(b"user") {
            if val != b"default" {
                return Err(Error::msg(format!("ERR No such user '{val_s}'")));
            }
        } else {
            return Err(Error::Syntax);
        }
        i += 2;
    }
    if i != args.len() {
        return Err(Error::Syntax);
    }
    let n = shared.clients.kill(|c| {
        ty_normal
            && id.is_none_or(|id| c.id == id)
            && addr.as_ref().is_none_or(|a| c.addr.to_string() == *a)
            && laddr.as_ref().is_none_or(|a| c.laddr.to_string() == *a)
            && !(skipme && c.id == me)
    });
    if !skipme && conn.client.killed.load(Ordering::Relaxed) {
        conn.close = true;
    }
    resp::write_int(&mut conn.wbuf, n as i64);
    Ok(())
}

fn command_info(spec: &CommandSpec) -> Reply {
    let flags: Vec<Reply> = flags::NAMES
        .iter()
        .filter(|(f, _)| spec.flags & f != 0)
        .map(|(_, n)| Reply::Simple((*n).to_string()))
        .collect();
    Reply::Array(vec![
        Reply::Bulk(spec.name.as_bytes().to_vec()),
        Reply::Int(i64::from(spec.arity)),
        Reply::Array(flags),
        Reply::Int(i64::from(spec.first_key)),
        Reply::Int(i64::from(spec.last_key)),
        Reply::Int(i64::from(spec.step)),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// COMMAND DOCS entries in Redis 7.0's RESP2 shape (see `engine::docs`):
/// for every command, or for the names given (`get`, `client|kill`), the
/// unknown ones left out as Redis does.
fn command_docs(names: Option<Args<'_>>) -> Vec<(&'static str, Reply)> {
    match names {
        None => command::all_commands()
            .map(|spec| (spec.name, docs::command_docs(spec)))
            .collect(),
        Some(args) => args.iter().skip(2).filter_map(docs::lookup).collect(),
    }
}

fn command_cmd(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let out = &mut conn.wbuf;
    if args.len() == 1 {
        let all: Vec<Reply> = command::all_commands().map(command_info).collect();
        Reply::Array(all).write_to(out);
        return Ok(());
    }
    let sub = args.get(1);
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    if is("count") && args.len() == 2 {
        resp::write_int(out, command::all_commands().count() as i64);
    } else if is("info") {
        let items: Vec<Reply> = if args.len() == 2 {
            command::all_commands().map(command_info).collect()
        } else {
            args.iter()
                .skip(2)
                .map(|n| command::lookup(n).map_or(Reply::Nil, command_info))
                .collect()
        };
        // COMMAND INFO answers nil arrays for unknown names.
        resp::write_array_len(out, items.len());
        for it in items {
            match it {
                Reply::Nil => resp::write_null_array(out),
                other => other.write_to(out),
            }
        }
    } else if is("docs") {
        let entries = command_docs((args.len() > 2).then_some(args));
        resp::write_array_len(out, entries.len() * 2);
        for (name, entry) in entries {
            resp::write_bulk(out, name.as_bytes());
            entry.write_to(out);
        }
    } else if is("list") && args.len() == 2 {
        let names: Vec<Reply> = command::all_commands()
            .map(|c| Reply::Bulk(c.name.as_bytes().to_vec()))
            .collect();
        Reply::Array(names).write_to(out);
    } else if is("help") && args.len() == 2 {
        write_help(
            out,
            "command",
            &[
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
            ],
        );
    } else {
        let known = ["count", "info", "docs", "list", "help"];
        if known.iter().any(|k| is(k)) {
            return Err(sub_arity("command", sub));
        }
        return Err(unknown_subcommand("command", sub));
    }
    Ok(())
}

async fn config(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let sub = args.get(1);
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    let shared = conn.worker.shared.clone();
    if is("get") && args.len() >= 3 {
        let cfg = shared.config();
        let mut pairs: Vec<(String, String)> = Vec::new();
        for pat in args.iter().skip(2) {
            for (k, v) in cfg.get(pat) {
                if !pairs.iter().any(|(seen, _)| *seen == k) {
                    pairs.push((k, v));
                }
            }
        }
        resp::write_array_len(&mut conn.wbuf, pairs.len() * 2);
        for (k, v) in pairs {
            resp::write_bulk(&mut conn.wbuf, k.as_bytes());
            resp::write_bulk(&mut conn.wbuf, v.as_bytes());
        }
    } else if is("set") && args.len() >= 4 && args.len().is_multiple_of(2) {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = (2..args.len())
            .step_by(2)
            .map(|i| (args.get(i).to_vec(), args.get(i + 1).to_vec()))
            .collect();
        refuse_moving_the_data(conn, &pairs)?;
        let changed = {
            let mut cfg = shared.config.write().unwrap_or_else(|e| e.into_inner());
            cfg.set(&pairs).map_err(Error::msg)?
        };
        shared.refresh_hot();
        apply_changes(conn, &changed).await;
        resp::write_ok(&mut conn.wbuf);
    } else if is("set") && args.len() >= 4 {
        // A parameter without a value: Redis's syntax error.
        return Err(Error::Syntax);
    } else if is("resetstat") && args.len() == 2 {
        for s in &shared.stats {
            for c in [
                &s.commands,
                &s.net_input,
                &s.net_output,
                &s.connections,
                &s.rejected,
                &s.error_replies,
            ] {
                c.store(0, Ordering::Relaxed);
            }
        }
        conn.worker
            .ask_all(|| {
                Box::new(|sh| {
                    let dirty = sh.stats.dirty;
                    sh.stats = Default::default();
                    sh.stats.dirty = dirty;
                    Reply::Ok
                })
            })
            .await;
        resp::write_ok(&mut conn.wbuf);
    } else if is("rewrite") && args.len() == 2 {
        shared.config().rewrite().map_err(Error::msg)?;
        log::notice("CONFIG REWRITE executed with success.");
        resp::write_ok(&mut conn.wbuf);
    } else if is("help") && args.len() == 2 {
        write_help(
            &mut conn.wbuf,
            "config",
            &[
                "GET <pattern>",
                "    Return parameters matching the glob-like <pattern> and their values.",
                "SET <directive> <value>",
                "    Set the configuration <directive> to <value>.",
                "RESETSTAT",
                "    Reset statistics reported by the INFO command.",
                "REWRITE",
                "    Rewrite the configuration file.",
            ],
        );
    } else {
        let known = ["get", "set", "resetstat", "rewrite", "help"];
        if known.iter().any(|k| is(k)) {
            return Err(sub_arity("config", sub));
        }
        return Err(unknown_subcommand("config", sub));
    }
    Ok(())
}

/// CONFIG SET of `dir` and `dbfilename` (where the snapshot manifest
/// lives): refused as a protected config unless `enable-protected-configs`
/// allows it, as in Redis 7. Allowed, it is still refused while the log is
/// on (the manifest names the log the shards write in
/// `<dir>/<appenddirname>`; moving one without the other would make the
/// next start find a manifest naming a log that is not beside it, and lose
/// the log's records) or while a snapshot is being written.
fn refuse_moving_the_data(conn: &Conn, pairs: &[(Vec<u8>, Vec<u8>)]) -> Result<(), Error> {
    let shared = &conn.worker.shared;
    let failed = |name: &[u8], why: &str| {
        Error::msg(format!(
            "ERR CONFIG SET failed (possibly related to argument '{}') - {why}",
            String::from_utf8_lossy(name)
        ))
    };
    let protected = |name: &[u8]| {
        crate::config::PROTECTED
            .iter()
            .any(|p| name.eq_ignore_ascii_case(p.as_bytes()))
    };
    let (mode, appendonly, dir, dbfilename) = {
        let c = shared.config();
        (
            c.enable_protected_configs.clone(),
            c.appendonly,
            c.dir.to_string_lossy().into_owned(),
            c.dbfilename.clone(),
        )
    };
    let allowed = enabled_for(&mode, conn);
    if let Some((name, _)) = pairs.iter().find(|(n, _)| protected(n)) {
        if !allowed {
            return Err(failed(name, "can't set protected config"));
        }
    }
    let (log_on, busy) = {
        let st = shared.snapshot_status();
        (
            appendonly || st.log_id.is_some(),
            st.running_since.is_some(),
        )
    };
    for (name, value) in pairs {
        let current = if name.eq_ignore_ascii_case(b"dir") {
            &dir
        } else if name.eq_ignore_ascii_case(b"dbfilename") {
            &dbfilename
        } else {
            continue;
        };
        if value.as_slice() == current.as_bytes() {
            continue;
        }
        if log_on {
            return Err(failed(
                name,
                "can't change it while the append-only log is on: the snapshot manifest and \
                 the log it names must stay together (CONFIG SET appendonly no first)",
            ));
        }
        if busy {
            return Err(failed(
                name,
                "can't change it while a snapshot is being written",
            ));
        }
    }
    Ok(())
}

/// Whether an `enable-*` setting (`no`, `yes`, or `local` for loopback
/// clients, as Redis 7's enable-debug-command and enable-protected-configs)
/// allows `conn`.
fn enabled_for(setting: &str, conn: &Conn) -> bool {
    match setting {
        "yes" => true,
        "local" => conn.client.addr.ip().is_loopback(),
        _ => false,
    }
}

/// Applies changed settings that live outside the config struct.
async fn apply_changes(conn: &Conn, changed: &[&str]) {
    let shared = &conn.worker.shared;
    if changed.contains(&"proto-max-bulk-len") {
        let max = shared.proto_max_bulk_len().max(0) as usize;
        conn.worker
            .ask_all(move || {
                Box::new(move |sh| {
                    sh.max_string_len = max;
                    Reply::Ok
                })
            })
            .await;
    }
    if changed.iter().any(|n| n.starts_with("hash-max-listpack-")) {
        let limits = crate::config::hash_limits(&shared.config());
        conn.worker
            .ask_all(move || {
                Box::new(move |sh| {
                    sh.hash_limits = limits;
                    Reply::Ok
                })
            })
            .await;
    }
    if changed.iter().any(|n| n.starts_with("lazyfree-lazy-")) {
        let lazy = crate::lazyfree::settings(&shared.config());
        conn.worker
            .ask_all(move || {
                Box::new(move |sh| {
                    sh.lazyfree.settings = lazy;
                    Reply::Ok
                })
            })
            .await;
    }
    if changed.iter().any(|n| n.starts_with("set-max-")) {
        let limits = crate::config::set_limits(&shared.config());
        conn.worker
            .ask_all(move || {
                Box::new(move |sh| {
                    sh.set_limits = limits;
                    Reply::Ok
                })
            })
            .await;
    }
    if changed.contains(&"dir") || changed.contains(&"dbfilename") {
        // Snapshots now go elsewhere: the next is a full one with a new
        // manifest there. Nothing is read from or deleted in the new place
        // (an existing manifest there is replaced; the files it names are
        // left as they are), nor in the old one.
        let mut st = shared.snapshot_status();
        st.manifest = crate::snapshot::Manifest::default();
        st.delta_ok = false;
        st.log_chain_bytes = 0;
    }
    if changed.contains(&"appendonly") {
        if shared.config().appendonly {
            crate::logswitch::turn_on(&conn.worker);
        } else {
            crate::logswitch::turn_off(&conn.worker).await;
        }
    }
    if changed.contains(&"latency-monitor-threshold") {
        crate::latency::set_threshold(shared.config().latency_monitor_threshold);
    }
    if changed.contains(&"loglevel") {
        if let Some(l) = log::parse_level(shared.config().loglevel.name()) {
            log::set_level(l);
        }
    }
}

/// SAVE: a snapshot now; the reply waits until it is durable. Unlike
/// Redis's SAVE the server keeps serving meanwhile (nothing forks and
/// nothing blocks: it is the same work as BGSAVE).
async fn save(conn: &mut Conn) -> Result<(), Error> {
    match crate::snapshot::save(&conn.worker, false, crate::snapshot::Speed::Now).await {
        Err(crate::snapshot::StartError::Busy) => {
            Err(Error::msg("ERR Background save already in progress"))
        }
        Ok(Ok(_)) => {
            resp::write_ok(&mut conn.wbuf);
            Ok(())
        }
        Ok(Err(_)) => Err(Error::msg("ERR")),
    }
}

/// BGSAVE [SCHEDULE].
fn bgsave(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let schedule = match args.len() {
        1 => false,
        2 if args.get(1).eq_ignore_ascii_case(b"schedule") => true,
        _ => return Err(Error::Syntax),
    };
    let started = match crate::snapshot::claim(&conn.worker.shared) {
        Ok(t) => t,
        Err(crate::snapshot::StartError::Busy) if schedule => {
            conn.worker.shared.snapshot_status().scheduled = true;
            resp::write_simple(&mut conn.wbuf, "Background saving scheduled");
            return Ok(());
        }
        Err(crate::snapshot::StartError::Busy) => {
            return Err(Error::msg("ERR Background save already in progress"));
        }
    };
    let worker = conn.worker.clone();
    crate::runtime::spawn(async move {
        let _ = crate::snapshot::save_claimed(
            &worker,
            started,
            false,
            crate::snapshot::Speed::Background,
        )
        .await;
    });
    log::notice("Background saving started");
    resp::write_simple(&mut conn.wbuf, "Background saving started");
    Ok(())
}

/// BGREWRITEAOF: the log restarts from a new snapshot (no fork, no
/// rewrite buffer: see `snapshot::rewrite_claimed`). Replies as Redis 7.
fn bgrewriteaof(conn: &mut Conn) -> Result<(), Error> {
    let started = match crate::snapshot::claim(&conn.worker.shared) {
        Ok(t) => t,
        Err(crate::snapshot::StartError::Busy) => {
            let mut st = conn.worker.shared.snapshot_status();
            if st.rewrite_running {
                return Err(Error::msg(
                    "ERR Background append only file rewriting already in progress",
                ));
            }
            st.rewrite_scheduled = true;
            resp::write_simple(
                &mut conn.wbuf,
                "Background append only file rewriting scheduled",
            );
            return Ok(());
        }
    };
    let worker = conn.worker.clone();
    crate::runtime::spawn(async move {
        let _ = crate::snapshot::rewrite_claimed(&worker, started).await;
    });
    log::notice("Background append only file rewriting started");
    resp::write_simple(
        &mut conn.wbuf,
        "Background append only file rewriting started",
    );
    Ok(())
}

async fn shutdown(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let mut save = None;
    let mut force = false;
    for a in args.iter().skip(1) {
        if a.eq_ignore_ascii_case(b"nosave") {
            save = Some(false);
        } else if a.eq_ignore_ascii_case(b"save") {
            save = Some(true);
        } else if a.eq_ignore_ascii_case(b"force") {
            force = true;
        } else if a.eq_ignore_ascii_case(b"now") {
        } else if a.eq_ignore_ascii_case(b"abort") {
            return Err(Error::msg("ERR No shutdown in progress."));
        } else {
            return Err(Error::Syntax);
        }
    }
    // As Redis: save when asked, or when save rules are set unless NOSAVE.
    let save = save.unwrap_or_else(|| !conn.worker.shared.config().save.is_empty());
    if save && !crate::snapshot::final_save(&conn.worker).await && !force {
        log::warning("Error trying to save the DB, can't exit.");
        return Err(Error::msg("ERR Errors trying to SHUTDOWN. Check logs."));
    }
    log::warning("User requested shutdown...");
    conn.worker.shared.request_shutdown();
    conn.close = true;
    Ok(())
}

/// LATENCY: the latency monitor's samples (`crate::latency`), with
/// Redis's replies. GRAPH and HISTOGRAM are not implemented.
fn latency(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let sub = args.get(1);
    let is = |name: &str| sub.eq_ignore_ascii_case(name.as_bytes());
    let out = &mut conn.wbuf;
    if is("latest") && args.len() == 2 {
        let events = crate::latency::snapshot();
        resp::write_array_len(out, events.len());
        for (name, s) in &events {
            let (time, ms) = s.samples.back().copied().unwrap_or((0, 0));
            resp::write_array_len(out, 4);
            resp::write_bulk(out, name.as_bytes());
            resp::write_int(out, time);
            resp::write_int(out, ms as i64);
            resp::write_int(out, s.max as i64);
        }
    } else if is("history") && args.len() == 3 {
        let event = String::from_utf8_lossy(args.get(2));
        let samples = crate::latency::history(&event).map(|s| s.samples);
        let samples = samples.unwrap_or_default();
        resp::write_array_len(out, samples.len());
        for (time, ms) in samples {
            resp::write_array_len(out, 2);
            resp::write_int(out, time);
            resp::write_int(out, ms as i64);
        }
    } else if is("reset") {
        let names: Vec<String> = (2..args.len())
            .map(|i| String::from_utf8_lossy(args.get(i)).into_owned())
            .collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        resp::write_int(out, crate::latency::reset(&names) as i64);
    } else if is("doctor") && args.len() == 2 {
        let text = crate::latency::doctor();
        resp::write_bulk(out, text.as_bytes());
    } else if is("help") && args.len() == 2 {
        write_help(
            out,
            "latency",
            &[
                "DOCTOR",
                "    Return a human readable latency analysis report.",
                "HISTORY <event>",
                "    Return time-latency samples for the <event> class.",
                "LATEST",
                "    Return the latest latency samples for all events.",
                "RESET [<event> ...]",
                "    Reset latency data of one or more <event> classes.",
                "    (default: reset all data for all event classes)",
            ],
        );
    } else {
        let known = ["latest", "history", "reset", "doctor", "help"];
        if known.iter().any(|k| is(k)) {
            return Err(sub_arity("latency", sub));
        }
        return Err(unknown_subcommand("latency", sub));
    }
    Ok(())
}

/// DEBUG, gated by `enable-debug-command` as in Redis 7. Subcommands:
/// `AOF-FAULT <write|sync|any> <EIO|ENOSPC|errno> [count]` makes the next
/// `count` (default: all, until `AOF-FAULT OFF`) log writes or syncs of
/// every shard fail with that error: the test seam for I/O faults.
/// `SLEEP <seconds>` holds this worker's event loop that long, as Redis
/// holds its one thread. `LAZYFREE-THRESHOLD <effort>` (ours) sets the
/// free effort above which UNLINK and the other lazy cases hand a value
/// to the lazy-free thread (Redis's 64 by default): the test seam for
/// lazy freeing while every value is a one-allocation string.
async fn debug(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let allowed = enabled_for(&conn.worker.shared.config().enable_debug_command, conn);
    if !allowed {
        return Err(Error::msg(
            "ERR DEBUG command not allowed. If the enable-debug-command option is set to \"local\", \
             you can run it from a local connection, otherwise you need to set this option in \
             the configuration file, and then restart the server.",
        ));
    }
    let sub = args.get(1).to_ascii_lowercase();
    match sub.as_slice() {
        b"aof-fault" => {
            use crate::aof::{Fault, FaultOp};
            let word = |i: usize| (i < args.len()).then(|| args.get(i).to_ascii_lowercase());
            let fault = match (word(2).as_deref(), word(3)) {
                (Some(b"off"), None) => None,
                (Some(op), Some(errno)) => {
                    let op = match op {
                        b"write" => FaultOp::Write,
                        b"sync" => FaultOp::Sync,
                        b"any" => FaultOp::Any,
                        _ => return Err(Error::Syntax),
                    };
                    let errno = match errno.as_slice() {
                        b"eio" => libc::EIO,
                        b"enospc" => libc::ENOSPC,
                        n => std::str::from_utf8(n)
                            .ok()
                            .and_then(|n| n.parse().ok())
                            .ok_or(Error::Syntax)?,
                    };
                    let remaining = match word(4) {
                        None => 0,
                        Some(n) => std::str::from_utf8(&n)
                            .ok()
                            .and_then(|n| n.parse().ok())
                            .ok_or(Error::NotInteger)?,
                    };
                    Some(Fault {
                        op,
                        errno,
                        remaining,
                    })
                }
                _ => return Err(Error::Syntax),
            };
            for a in &conn.worker.shared.aof {
                a.set_fault(fault);
            }
            resp::write_ok(&mut conn.wbuf);
            Ok(())
        }
        b"lazyfree-threshold" if args.len() == 3 => {
            let effort = std::str::from_utf8(args.get(2))
                .ok()
                .and_then(|s| s.parse::<usize>().ok())
                .ok_or(Error::NotInteger)?;
            conn.worker
                .ask_all(move || {
                    Box::new(move |sh| {
                        sh.lazyfree.threshold = effort;
                        Reply::Ok
                    })
                })
                .await;
            resp::write_ok(&mut conn.wbuf);
            Ok(())
        }
        b"sleep" if args.len() == 3 => {
            // As Redis: holds this worker's event loop (not the others').
            let secs = std::str::from_utf8(args.get(2))
                .ok()
                .and_then(|s| s.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s >= 0.0)
                .ok_or(Error::NotFloat)?;
            std::thread::sleep(std::time::Duration::from_secs_f64(secs.min(3600.0)));
            resp::write_ok(&mut conn.wbuf);
            Ok(())
        }
        _ => Err(Error::msg(format!(
            "ERR unknown subcommand '{}'. Try DEBUG HELP.",
            String::from_utf8_lossy(args.get(1))
        ))),
    }
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
