//! Record payloads: the RESP commands a record holds, the databases they
//! run in ([`parse_select`], [`record_commands`]), and the canonical form
//! recovery requires.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use super::*;

/// A payload that is not canonical RESP multibulk text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayloadError(pub String);

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "payload is not a RESP command: {}", self.0)
    }
}

impl std::error::Error for PayloadError {}

/// Parses `payload` as one or more RESP multibulk commands laid end to end,
/// each in exactly the form [`crate::resp::write_command`] writes.
pub fn decode_commands(payload: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, PayloadError> {
    let mut parser = Parser::new();
    let limits = Limits {
        max_bulk_len: i64::from(MAX_PAYLOAD_LEN),
        authenticated: true,
    };
    let mut commands = Vec::new();
    let mut scratch = Vec::new();
    let mut pos = 0usize;
    while let Some(rest) = payload.get(pos..).filter(|r| !r.is_empty()) {
        if rest.first() != Some(&b'*') {
            return Err(PayloadError(format!(
                "byte {pos} does not start a multibulk ('*')"
            )));
        }
        parser.reset();
        let consumed = match parser.parse(rest, limits) {
            Ok(Parsed::Command { consumed }) => consumed,
            Ok(Parsed::Skip { .. }) => {
                return Err(PayloadError(format!("empty multibulk at byte {pos}")))
            }
            Ok(Parsed::Incomplete { .. }) => {
                return Err(PayloadError(format!("incomplete command at byte {pos}")))
            }
            Err(e) => return Err(PayloadError(format!("at byte {pos}: {}", e.0))),
        };
        let src = parser.source(rest);
        let args: Vec<Vec<u8>> = parser
            .args()
            .iter()
            .map(|r| src.get(r.clone()).unwrap_or(&[]).to_vec())
            .collect();
        scratch.clear();
        crate::resp::write_command(&mut scratch, args.iter().map(Vec::as_slice));
        if rest.get(..consumed) != Some(scratch.as_slice()) {
            return Err(PayloadError(format!(
                "command at byte {pos} is not in canonical RESP form"
            )));
        }
        commands.push(args);
        pos = pos.saturating_add(consumed);
    }
    if commands.is_empty() {
        return Err(PayloadError("empty payload".into()));
    }
    Ok(commands)
}

/// Parses `payload` as exactly one RESP multibulk command (a single-shard
/// record's payload).
pub fn decode_command(payload: &[u8]) -> Result<Vec<Vec<u8>>, PayloadError> {
    let mut commands = decode_commands(payload)?;
    match (commands.pop(), commands.is_empty()) {
        (Some(args), true) => Ok(args),
        _ => Err(PayloadError(format!(
            "{} commands where exactly one was expected",
            commands.len().saturating_add(1)
        ))),
    }
}

/// A command (its arguments) and the database it runs in.
pub type DbCommand = (u64, Vec<Vec<u8>>);

/// If `args` is a `SELECT` command (any case): `Some(Ok(db))`, or
/// `Some(Err(_))` when it does not name exactly one database (a
/// non-negative integer). `None` for any other command.
pub fn parse_select(args: &[Vec<u8>]) -> Option<Result<u64, PayloadError>> {
    let name = args.first()?;
    if !name.eq_ignore_ascii_case(b"SELECT") {
        return None;
    }
    let db = match args {
        [_, db] => crate::resp::parse_i64(db).and_then(|n| u64::try_from(n).ok()),
        _ => None,
    };
    Some(db.ok_or_else(|| {
        PayloadError(format!(
            "SELECT with {} arguments where one database number was expected",
            args.len().saturating_sub(1)
        ))
    }))
}

/// The commands of one record payload, each with the database it runs in:
/// the record starts in database 0 and every `SELECT <db>` switches it for
/// the rest of the record. The `SELECT`s themselves are not returned.
pub fn record_commands(payload: &[u8]) -> Result<Vec<DbCommand>, PayloadError> {
    let mut db = 0u64;
    let mut out = Vec::new();
    for args in decode_commands(payload)? {
        match parse_select(&args) {
            Some(sel) => db = sel?,
            None => out.push((db, args)),
        }
    }
    Ok(out)
}

/// Checks a command record's payload (module doc, rule 6): canonical RESP,
/// well-formed `SELECT`s, and at least one command besides them.
pub(super) fn check_payload(payload: &[u8]) -> Result<(), PayloadError> {
    let mut commands = 0usize;
    for args in decode_commands(payload)? {
        match parse_select(&args) {
            Some(sel) => {
                sel?;
            }
            None => commands = commands.saturating_add(1),
        }
    }
    if commands == 0 {
        return Err(PayloadError("only SELECT, no command".into()));
    }
    Ok(())
}
