//! CLIENT and its subcommands (LIST, INFO, KILL, SETNAME, NO-EVICT, ...).

use super::*;

pub(super) fn client(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
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

pub(super) fn client_kill(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
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
