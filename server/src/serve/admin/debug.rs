//! LATENCY and DEBUG.

use super::*;

/// LATENCY: the latency monitor's samples (`crate::latency`), with
/// Redis's replies. GRAPH and HISTOGRAM are not implemented.
pub(super) fn latency(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
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
pub(super) async fn debug(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
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
