//! CONFIG GET / SET / REWRITE / RESETSTAT, and applying changed settings
//! to the running server.

use super::*;

pub(super) async fn config(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
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
pub(super) fn refuse_moving_the_data(
    conn: &Conn,
    pairs: &[(Vec<u8>, Vec<u8>)],
) -> Result<(), Error> {
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
pub(super) fn enabled_for(setting: &str, conn: &Conn) -> bool {
    match setting {
        "yes" => true,
        "local" => conn.client.addr.ip().is_loopback(),
        _ => false,
    }
}

/// Applies changed settings that live outside the config struct.
pub(super) async fn apply_changes(conn: &Conn, changed: &[&str]) {
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
