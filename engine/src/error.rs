//! Command errors and their RESP texts, in one place. The texts are Redis 7's.

use std::fmt;

/// Why a command failed. `Display` gives the exact error line Redis sends
/// (without the leading `-`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    WrongType,
    NotInteger,
    NotFloat,
    Syntax,
    Overflow,
    NanOrInfinity,
    NoSuchKey,
    DbIndexOutOfRange,
    OffsetOutOfRange,
    StringTooLong,
    InvalidExpire(&'static str),
    WrongArity(String),
    /// Any other message, already complete (e.g. `ERR unknown command ...`).
    Msg(String),
    /// A complete message that quotes client bytes, which need not be UTF-8
    /// and are sent back as they came (as Redis does).
    Raw(Vec<u8>),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::WrongType => {
                f.write_str("WRONGTYPE Operation against a key holding the wrong kind of value")
            }
            Error::NotInteger => f.write_str("ERR value is not an integer or out of range"),
            Error::NotFloat => f.write_str("ERR value is not a valid float"),
            Error::Syntax => f.write_str("ERR syntax error"),
            Error::Overflow => f.write_str("ERR increment or decrement would overflow"),
            Error::NanOrInfinity => f.write_str("ERR increment would produce NaN or Infinity"),
            Error::NoSuchKey => f.write_str("ERR no such key"),
            Error::DbIndexOutOfRange => f.write_str("ERR DB index is out of range"),
            Error::OffsetOutOfRange => f.write_str("ERR offset is out of range"),
            Error::StringTooLong => {
                f.write_str("ERR string exceeds maximum allowed size (proto-max-bulk-len)")
            }
            Error::InvalidExpire(cmd) => write!(f, "ERR invalid expire time in '{cmd}' command"),
            Error::WrongArity(cmd) => {
                write!(f, "ERR wrong number of arguments for '{cmd}' command")
            }
            Error::Msg(m) => f.write_str(m),
            Error::Raw(m) => f.write_str(&String::from_utf8_lossy(m)),
        }
    }
}

impl Error {
    pub fn msg(s: impl Into<String>) -> Self {
        Error::Msg(s.into())
    }

    /// A message built from text and client bytes, e.g.
    /// `Error::quoting(&[b"ERR Unsupported option ", opt])`.
    pub fn quoting(parts: &[&[u8]]) -> Self {
        Error::Raw(parts.concat())
    }

    /// Writes this error as a RESP error reply.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Error::Raw(m) => crate::resp::write_error_bytes(out, m),
            other => crate::resp::write_error(out, &other.to_string()),
        }
    }
}

pub type CmdResult = Result<(), Error>;
