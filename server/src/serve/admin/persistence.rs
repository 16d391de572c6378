//! SAVE, BGSAVE, BGREWRITEAOF and SHUTDOWN.

use super::*;

/// SAVE: a snapshot now; the reply waits until it is durable. Unlike
/// Redis's SAVE the server keeps serving meanwhile (nothing forks and
/// nothing blocks: it is the same work as BGSAVE).
pub(super) async fn save(conn: &mut Conn) -> Result<(), Error> {
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
pub(super) fn bgsave(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
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
pub(super) fn bgrewriteaof(conn: &mut Conn) -> Result<(), Error> {
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

pub(super) async fn shutdown(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
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
