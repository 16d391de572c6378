//! The offline tools' logic: `check-aof` ([`check`]) and `export-aof`
//! ([`export_aof`]).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;

/// What [`check`] found in one shard directory.
#[derive(Debug)]
pub struct ShardCheck {
    pub dir: PathBuf,
    pub segments: usize,
    pub records: usize,
    /// Bytes of intact records (padding included).
    pub bytes: u64,
    pub last_lsn: Option<u64>,
    pub torn_tail: Option<TornTail>,
    /// The torn tail was zeroed (`fix`).
    pub fixed: bool,
    /// Corruption, a refused torn tail, or an I/O error.
    pub error: Option<RecoveryError>,
}

/// What [`check`] found; `Display` prints a summary for the offline tool.
#[derive(Debug)]
pub struct CheckReport {
    pub dir: PathBuf,
    pub shards: Vec<ShardCheck>,
    /// Transactions that recovery would drop (not an error: their replies
    /// were never sent), and the records dropped with them.
    pub incomplete_transactions: usize,
    pub dropped_records: usize,
    /// An error about the log directory itself (cannot list it, or a
    /// transaction inconsistency across shards).
    pub error: Option<RecoveryError>,
}

impl CheckReport {
    /// True when every shard is intact (a torn tail counts only if not fixed).
    pub fn is_ok(&self) -> bool {
        self.error.is_none()
            && self
                .shards
                .iter()
                .all(|s| s.error.is_none() && (s.torn_tail.is_none() || s.fixed))
    }

    pub fn segments(&self) -> usize {
        self.shards.iter().map(|s| s.segments).sum()
    }

    pub fn records(&self) -> usize {
        self.shards.iter().map(|s| s.records).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.shards.iter().map(|s| s.bytes).sum()
    }

    pub fn torn_tails(&self) -> usize {
        self.shards.iter().filter(|s| s.torn_tail.is_some()).count()
    }
}

impl fmt::Display for CheckReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "append-only log {}", self.dir.display())?;
        for s in &self.shards {
            write!(
                f,
                "  {}: {} segments, {} records, {} bytes",
                s.dir.display(),
                s.segments,
                s.records,
                s.bytes
            )?;
            if let Some(l) = s.last_lsn {
                write!(f, ", last lsn {l}")?;
            }
            writeln!(f)?;
            if let Some(t) = &s.torn_tail {
                let what = if s.fixed { "cut" } else { "not cut" };
                writeln!(f, "    torn tail ({what}): {t}")?;
            }
            if let Some(e) = &s.error {
                writeln!(f, "    error: {e}")?;
            }
        }
        if self.incomplete_transactions > 0 {
            writeln!(
                f,
                "  {} incomplete transactions (never acknowledged): recovery drops {} records",
                self.incomplete_transactions, self.dropped_records
            )?;
        }
        if let Some(e) = &self.error {
            writeln!(f, "  error: {e}")?;
        }
        write!(
            f,
            "{} shards, {} segments, {} records, {} bytes, {} torn tails: {}",
            self.shards.len(),
            self.segments(),
            self.records(),
            self.bytes(),
            self.torn_tails(),
            if self.is_ok() { "OK" } else { "NOT OK" }
        )
    }
}

/// Verifies every shard directory of the log directory `dir` (every
/// checksum, LSN continuity, payload form, transaction consistency). With
/// `fix`, a torn tail of a shard's last segment is zeroed from its offset to
/// the end of the written area (file size kept) and fsynced, then the shard
/// is read again strictly; corruption before the tail is never touched.
pub fn check(dir: &Path, fix: bool) -> CheckReport {
    let mut report = CheckReport {
        dir: dir.to_path_buf(),
        shards: Vec::new(),
        incomplete_transactions: 0,
        dropped_records: 0,
        error: None,
    };
    let shard_dirs = match list_shard_dirs(dir) {
        Ok(d) => d,
        Err(e) => {
            report.error = Some(e);
            return report;
        }
    };
    let mut logs = Vec::new();
    for (_, shard_dir) in shard_dirs {
        let mut sc = ShardCheck {
            dir: shard_dir.clone(),
            segments: 0,
            records: 0,
            bytes: 0,
            last_lsn: None,
            torn_tail: None,
            fixed: false,
            error: None,
        };
        // Strict, as start-up reads; `--fix` also cuts a write a power loss
        // left unfinished (`Scan::tail_window`).
        let opts = RecoveryOptions {
            max_write: if fix { DEFAULT_MAX_WRITE } else { 0 },
            ..RecoveryOptions::default()
        };
        match read_shard_log_with(&shard_dir, &opts) {
            Ok(mut log) => {
                sc.torn_tail = log.torn_tail.clone();
                if let (true, Some(t)) = (fix, &log.torn_tail) {
                    let strict = RecoveryOptions {
                        aof_load_truncated: false,
                        ..RecoveryOptions::default()
                    };
                    match log
                        .truncate_at(t.segment, t.offset)
                        .and_then(|()| read_shard_log_with(&shard_dir, &strict))
                    {
                        Ok(l) => {
                            log = l;
                            sc.fixed = true;
                        }
                        Err(e) => sc.error = Some(e),
                    }
                }
                sc.segments = log.segments.len();
                sc.records = log.records.len();
                sc.bytes = log.bytes();
                sc.last_lsn = log.last_lsn();
                logs.push(log);
            }
            Err(e) => sc.error = Some(e),
        }
        report.shards.push(sc);
    }
    if report.shards.iter().all(|s| s.error.is_none()) {
        match resolve_transactions(&logs) {
            Ok(r) => {
                report.incomplete_transactions = r.dropped.len();
                report.dropped_records = r.dropped_records();
            }
            Err(e) => report.error = Some(e),
        }
    }
    report
}

// ---------------------------------------------------------------------------
// export-aof

/// What [`export_aof`] wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExportSummary {
    pub shards: usize,
    /// Log records written (a transaction part counts once).
    pub records: usize,
    /// RESP commands written.
    pub commands: usize,
    /// Transactions whose parts could not be written adjacently (their
    /// shards' logs order them in a cycle); 0 for logs our writer produces.
    pub split_transactions: usize,
    /// Records left out as recovery would (incomplete transactions).
    pub dropped_records: usize,
    /// `SELECT` commands written (counted in `commands` too).
    pub selects: usize,
    /// Torn tails left out, as recovery cuts them (one per shard at most).
    pub torn_tails: Vec<TornTail>,
}

/// Writes the log directory `dir` as a plain Redis AOF: the RESP payloads of
/// the records recovery would replay (torn tails cut, incomplete
/// transactions dropped).
///
/// Ordering: each shard's records appear in LSN order; shards are merged,
/// and the parts of one transaction are written next to each other (not
/// wrapped in MULTI/EXEC). Commands of different shards touch different
/// keys and are independent, so any such merge replays to the same data;
/// it is *a* valid serial order, not the order clients saw the replies in.
///
/// Databases: every record starts in database 0 and selects another one
/// with a leading `SELECT` (module doc), while an AOF keeps the database of
/// the previous command. So the commands are written one by one, each
/// preceded by `SELECT <db>` only when its database differs from the
/// previous written command's (the AOF starts in database 0): `SELECT 0` is
/// written when a database-0 record follows one in another database, and
/// no redundant `SELECT` is written.
pub fn export_aof(dir: &Path, out: &mut impl Write) -> Result<ExportSummary, RecoveryError> {
    let mut logs = Vec::new();
    for (_, shard_dir) in list_shard_dirs(dir)? {
        // Only a log that starts at lsn 1 holds the whole dataset: one
        // rebased on a snapshot (M1.5) would export only the changes after
        // it, which would look like a complete AOF and is not.
        let log = read_shard_log_with(
            &shard_dir,
            &RecoveryOptions {
                after: Some(0),
                ..RecoveryOptions::default()
            },
        )?;
        logs.push(log);
    }
    let resolved = resolve_transactions(&logs)?;
    let mut summary = ExportSummary {
        shards: logs.len(),
        dropped_records: resolved.dropped_records(),
        torn_tails: logs.iter().filter_map(|l| l.torn_tail.clone()).collect(),
        ..ExportSummary::default()
    };
    // The database the AOF's next command runs in.
    let mut aof_db = 0u64;
    let mut buf = Vec::new();
    let mut heads = vec![0usize; logs.len()];
    let step_at = |heads: &[usize], s: usize| -> Option<Step> {
        let h = *heads.get(s)?;
        resolved.shards.get(s)?.steps.get(h).copied()
    };
    let mut emit = |s: usize, record: usize, summary: &mut ExportSummary| {
        let Some(log) = logs.get(s) else {
            return Ok(());
        };
        let Some(r) = log.records.get(record) else {
            return Ok(());
        };
        let commands = record_commands(log.payload(r)).map_err(|e| {
            corruption(
                log.segment_path(r),
                r.offset,
                format!("record lsn {}: {e}", r.lsn),
            )
        })?;
        buf.clear();
        for (db, args) in &commands {
            if *db != aof_db {
                let db_text = db.to_string();
                crate::resp::write_command(
                    &mut buf,
                    [&b"SELECT"[..], db_text.as_bytes()].into_iter(),
                );
                aof_db = *db;
                summary.selects += 1;
                summary.commands += 1;
            }
            crate::resp::write_command(&mut buf, args.iter().map(Vec::as_slice));
            summary.commands += 1;
        }
        out.write_all(&buf).map_err(RecoveryError::Output)?;
        summary.records += 1;
        Ok::<(), RecoveryError>(())
    };
    loop {
        let mut progress = false;
        let mut unfinished = None;
        for s in 0..logs.len() {
            while let Some(step) = step_at(&heads, s) {
                match step {
                    Step::Command { record } => {
                        emit(s, record, &mut summary)?;
                    }
                    Step::Part { transaction, .. } => {
                        let Some(tx) = resolved.transactions.get(transaction) else {
                            break;
                        };
                        let ready = tx.parts.iter().all(|p| {
                            step_at(&heads, p.shard)
                                == Some(Step::Part {
                                    record: p.record,
                                    transaction,
                                })
                        });
                        if !ready {
                            unfinished.get_or_insert(s);
                            break;
                        }
                        for p in &tx.parts {
                            emit(p.shard, p.record, &mut summary)?;
                            if let Some(h) = heads.get_mut(p.shard) {
                                *h += 1;
                            }
                        }
                        progress = true;
                        continue;
                    }
                }
                if let Some(h) = heads.get_mut(s) {
                    *h += 1;
                }
                progress = true;
            }
        }
        match (progress, unfinished) {
            (_, None) => break,
            (true, Some(_)) => {}
            (false, Some(s)) => {
                // The logs order transactions in a cycle: write this part
                // alone so the export still finishes.
                if let Some(step) = step_at(&heads, s) {
                    emit(s, step.record(), &mut summary)?;
                    summary.split_transactions += 1;
                }
                if let Some(h) = heads.get_mut(s) {
                    *h += 1;
                }
            }
        }
    }
    out.flush().map_err(RecoveryError::Output)?;
    Ok(summary)
}
