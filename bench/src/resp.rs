//! RESP: encoding requests and skimming replies.
//!
//! The generator never needs a reply's value, only where it ends and whether
//! it is an error or a null, so [`skim_reply`] walks a reply in place without
//! allocating. It accepts every RESP2 and RESP3 type, nested to any depth up
//! to [`MAX_DEPTH`], and answers `Ok(None)` until a whole reply has arrived.

/// Deepest aggregate nesting accepted; deeper is treated as a protocol
/// error rather than risking the stack on a hostile server.
pub const MAX_DEPTH: usize = 128;

/// What the generator learns from one reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// Anything that is not an error or a null.
    Value,
    /// `$-1`, `*-1` or RESP3 `_`: a GET miss, for example.
    Null,
    /// A top-level `-ERR ...` or RESP3 blob error `!`. Errors nested inside
    /// an array (EXEC results) leave the reply a `Value`.
    Error,
}

/// One whole reply at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    pub kind: ReplyKind,
    /// Bytes the reply takes, including its final CRLF.
    pub len: usize,
}

/// The server sent something that is not RESP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError {
    /// Offset in the buffer where parsing failed.
    pub offset: usize,
    pub reason: &'static str,
}

impl std::fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "bad RESP reply at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for ProtocolError {}

/// The first reply in `buf`, `Ok(None)` if it is not complete yet.
pub fn skim_reply(buf: &[u8]) -> Result<Option<Reply>, ProtocolError> {
    let mut kind = ReplyKind::Value;
    match skim(buf, 0, 0, &mut kind)? {
        Some(end) => Ok(Some(Reply { kind, len: end })),
        None => Ok(None),
    }
}

/// The first line's text after the type byte (without CRLF) and the offset
/// just past its CRLF.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, ProtocolError> {
    let Some(rest) = buf.get(at + 1..) else {
        return Ok(None);
    };
    match rest.iter().position(|&b| b == b'\n') {
        None => Ok(None),
        Some(nl) => {
            if nl == 0 || rest.get(nl - 1) != Some(&b'\r') {
                return Err(ProtocolError {
                    offset: at,
                    reason: "line not ended by CRLF",
                });
            }
            let text = rest.get(..nl - 1).unwrap_or_default();
            Ok(Some((text, at + 1 + nl + 1)))
        }
    }
}

fn number(text: &[u8], at: usize) -> Result<i64, ProtocolError> {
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(ProtocolError {
            offset: at,
            reason: "bad length or count",
        })
}

/// Skims the value starting at `at`; returns the offset after it.
fn skim(
    buf: &[u8],
    at: usize,
    depth: usize,
    kind: &mut ReplyKind,
) -> Result<Option<usize>, ProtocolError> {
    if depth > MAX_DEPTH {
        return Err(ProtocolError {
            offset: at,
            reason: "nested too deep",
        });
    }
    let Some(&tag) = buf.get(at) else {
        return Ok(None);
    };
    let Some((text, after)) = line(buf, at)? else {
        return Ok(None);
    };
    let top = depth == 0;
    match tag {
        // Simple string, integer, double, boolean, big number.
        b'+' | b':' | b',' | b'#' | b'(' => Ok(Some(after)),
        b'-' => {
            if top {
                *kind = ReplyKind::Error;
            }
            Ok(Some(after))
        }
        b'_' => {
            if top {
                *kind = ReplyKind::Null;
            }
            Ok(Some(after))
        }
        // Bulk string, blob error, verbatim string.
        b'$' | b'!' | b'=' => {
            let n = number(text, at)?;
            if n < 0 {
                if tag == b'$' && n == -1 {
                    if top {
                        *kind = ReplyKind::Null;
                    }
                    return Ok(Some(after));
                }
                return Err(ProtocolError {
                    offset: at,
                    reason: "negative length",
                });
            }
            if top && tag == b'!' {
                *kind = ReplyKind::Error;
            }
            let end = after
                .checked_add(n as usize)
                .and_then(|e| e.checked_add(2))
                .ok_or(ProtocolError {
                    offset: at,
                    reason: "length overflows",
                })?;
            if buf.len() < end {
                return Ok(None);
            }
            if buf.get(end - 2..end) != Some(b"\r\n") {
                return Err(ProtocolError {
                    offset: end - 2,
                    reason: "bulk not ended by CRLF",
                });
            }
            Ok(Some(end))
        }
        // Array, set, push, map, attribute.
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = number(text, at)?;
            if n < 0 {
                if tag == b'*' && n == -1 {
                    if top {
                        *kind = ReplyKind::Null;
                    }
                    return Ok(Some(after));
                }
                return Err(ProtocolError {
                    offset: at,
                    reason: "negative count",
                });
            }
            let items = if tag == b'%' || tag == b'|' {
                (n as u64).saturating_mul(2)
            } else {
                n as u64
            };
            let mut pos = after;
            for _ in 0..items {
                let mut inner = ReplyKind::Value;
                match skim(buf, pos, depth + 1, &mut inner)? {
                    Some(next) => pos = next,
                    None => return Ok(None),
                }
            }
            if tag == b'|' {
                // An attribute precedes the reply it describes; the pair
                // counts as that one reply.
                return skim(buf, pos, depth, kind);
            }
            Ok(Some(pos))
        }
        _ => Err(ProtocolError {
            offset: at,
            reason: "unknown reply type",
        }),
    }
}

/// Appends `$len\r\n<bytes>\r\n`.
pub fn put_bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    put_bulk_header(out, bytes.len());
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

/// Appends `$len\r\n`.
pub fn put_bulk_header(out: &mut Vec<u8>, len: usize) {
    let mut n = itoa::Buffer::new();
    out.push(b'$');
    out.extend_from_slice(n.format(len).as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// Appends `*count\r\n`.
pub fn put_array_header(out: &mut Vec<u8>, count: usize) {
    let mut n = itoa::Buffer::new();
    out.push(b'*');
    out.extend_from_slice(n.format(count).as_bytes());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Reply {
        let r = skim_reply(bytes)
            .unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(bytes)))
            .unwrap_or_else(|| panic!("incomplete: {:?}", String::from_utf8_lossy(bytes)));
        assert_eq!(r.len, bytes.len(), "{:?}", String::from_utf8_lossy(bytes));
        r
    }

    #[test]
    fn every_reply_type_is_skimmed_whole() {
        let cases: &[(&[u8], ReplyKind)] = &[
            (b"+OK\r\n", ReplyKind::Value),
            (b"-ERR wrong type\r\n", ReplyKind::Error),
            (b":12345\r\n", ReplyKind::Value),
            (b"$5\r\nhello\r\n", ReplyKind::Value),
            (b"$0\r\n\r\n", ReplyKind::Value),
            (b"$-1\r\n", ReplyKind::Null),
            (b"*-1\r\n", ReplyKind::Null),
            (b"*0\r\n", ReplyKind::Value),
            (b"*2\r\n$1\r\na\r\n:2\r\n", ReplyKind::Value),
            (
                b"*3\r\n*2\r\n+a\r\n*1\r\n$-1\r\n-ERR in exec\r\n*0\r\n",
                ReplyKind::Value,
            ),
            (b"_\r\n", ReplyKind::Null),
            (b",3.14\r\n", ReplyKind::Value),
            (b"#t\r\n", ReplyKind::Value),
            (
                b"(3492890328409238509324850943850943825024385\r\n",
                ReplyKind::Value,
            ),
            (b"!21\r\nSYNTAX invalid syntax\r\n", ReplyKind::Error),
            (b"=15\r\ntxt:Some string\r\n", ReplyKind::Value),
            (b"%2\r\n+a\r\n:1\r\n+b\r\n*1\r\n:2\r\n", ReplyKind::Value),
            (b"~2\r\n+a\r\n+b\r\n", ReplyKind::Value),
            (b">2\r\n+message\r\n$2\r\nhi\r\n", ReplyKind::Value),
            (b"|1\r\n+ttl\r\n:3600\r\n$2\r\nok\r\n", ReplyKind::Value),
            (
                b"|1\r\n+ttl\r\n:3600\r\n-ERR after attribute\r\n",
                ReplyKind::Error,
            ),
        ];
        for (bytes, kind) in cases {
            assert_eq!(
                whole(bytes).kind,
                *kind,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn bulk_may_hold_crlf_and_binary() {
        assert_eq!(whole(b"$4\r\n\r\n\0\xff\r\n").kind, ReplyKind::Value);
    }

    #[test]
    fn every_prefix_is_incomplete_not_an_error() {
        let reply: &[u8] = b"*3\r\n$3\r\nfoo\r\n*2\r\n:1\r\n-ERR x\r\n%1\r\n+k\r\n$-1\r\n";
        for cut in 0..reply.len() {
            assert_eq!(skim_reply(&reply[..cut]), Ok(None), "prefix of {cut} bytes");
        }
        assert_eq!(whole(reply).kind, ReplyKind::Value);
    }

    #[test]
    fn skims_only_the_first_of_several_replies() {
        let buf = b"+OK\r\n$-1\r\n-ERR\r\n";
        let mut at = 0;
        let mut kinds = Vec::new();
        while let Some(r) = skim_reply(&buf[at..]).expect("valid") {
            kinds.push(r.kind);
            at += r.len;
        }
        assert_eq!(at, buf.len());
        assert_eq!(kinds, [ReplyKind::Value, ReplyKind::Null, ReplyKind::Error]);
    }

    #[test]
    fn garbage_is_a_protocol_error() {
        for bad in [
            &b"?what\r\n"[..],
            b"$abc\r\n",
            b"$-2\r\n",
            b"*-5\r\n",
            b"+OK\n",
            b"$3\r\nfooXY",
            b"!-1\r\n",
        ] {
            assert!(
                skim_reply(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn deep_nesting_is_refused_not_a_stack_overflow() {
        let mut deep = b"*1\r\n".repeat(MAX_DEPTH + 10);
        deep.extend_from_slice(b":1\r\n");
        assert!(skim_reply(&deep).is_err());
        let mut ok = b"*1\r\n".repeat(MAX_DEPTH);
        ok.extend_from_slice(b":1\r\n");
        assert_eq!(whole(&ok).kind, ReplyKind::Value);
    }

    #[test]
    fn encoders_write_resp() {
        let mut out = Vec::new();
        put_array_header(&mut out, 2);
        put_bulk(&mut out, b"GET");
        put_bulk(&mut out, b"");
        assert_eq!(out, b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
    }
}
