//! RESP2 request parsing and reply writing.
//!
//! Requests are parsed in place: a parsed command is a list of byte ranges
//! into the caller's read buffer, so no argument is copied or allocated.
//! The parser is resumable: when a frame is incomplete it remembers how far
//! it got, so a 500 MB bulk string or an MSET with a million arguments that
//! arrives over many reads is scanned once, not once per read.
//!
//! Errors and limits follow Redis 7 (`networking.c`): the same texts, the
//! same 64 KiB cap on inline requests and header lines, the same stricter
//! limits before a client has authenticated.

use std::ops::Range;

/// Longest inline request or `*`/`$` header line Redis accepts (PROTO_INLINE_MAX_SIZE).
pub const INLINE_MAX: usize = 64 * 1024;
/// Largest multibulk count an unauthenticated client may announce.
const UNAUTH_MAX_MULTIBULK: i64 = 1024 * 1024;
/// Largest bulk length an unauthenticated client may announce.
const UNAUTH_MAX_BULK: i64 = 16384;

/// Limits applied while parsing.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// `proto-max-bulk-len`.
    pub max_bulk_len: i64,
    /// Whether the client has authenticated (or no password is required).
    pub authenticated: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bulk_len: 512 * 1024 * 1024,
            authenticated: true,
        }
    }
}

/// A protocol violation. The connection replies `-ERR Protocol error: <text>`
/// and is closed, as Redis does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolError(pub String);

impl ProtocolError {
    fn new(s: &str) -> Self {
        ProtocolError(s.to_string())
    }

    /// The full error line Redis sends, without the leading `-` and CRLF.
    pub fn message(&self) -> String {
        format!("ERR Protocol error: {}", self.0)
    }
}

/// Outcome of one parse step.
#[derive(Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole command is available; its arguments are `Parser::args()`,
    /// and `consumed` bytes of the buffer belong to it.
    Command { consumed: usize },
    /// Bytes that form no command (an empty inline line, `*0`, `*-1`);
    /// drop them and parse again.
    Skip { consumed: usize },
    /// More bytes are needed. `hint` is how many bytes in total the buffer
    /// should hold to make progress, when that is known (a pending bulk).
    Incomplete { hint: usize },
}

/// Resumable RESP request parser. One per connection; reused for every
/// command, so parsing allocates only when a command has more arguments
/// than any before it on this connection.
#[derive(Default, Debug)]
pub struct Parser {
    args: Vec<Range<usize>>,
    /// Multibulk in progress: number of arguments announced, 0 when idle.
    expected: usize,
    /// Position in the buffer where parsing of the current frame resumes.
    pos: usize,
    /// Length of the bulk whose header was read but whose data is pending.
    pending_bulk: Option<usize>,
    /// Unescaped arguments of the last inline command.
    inline: Vec<u8>,
    /// Whether the last command was inline (its ranges index `inline`).
    is_inline: bool,
}

fn find_byte(buf: &[u8], b: u8) -> Option<usize> {
    buf.iter().position(|&c| c == b)
}

/// Parses a signed decimal the way Redis's `string2ll` does: no leading
/// `+`, no leading zeros (except "0"), no spaces, must fit in i64.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let (neg, digits) = if s[0] == b'-' {
        (true, &s[1..])
    } else {
        (false, s)
    };
    if digits.is_empty() {
        return None;
    }
    if digits.len() > 1 && digits[0] == b'0' {
        return None;
    }
    if digits == b"0" && neg {
        return None;
    }
    let mut v: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if neg {
        if v > (i64::MAX as u64) + 1 {
            None
        } else {
            Some((v as i64).wrapping_neg())
        }
    } else if v > i64::MAX as u64 {
        None
    } else {
        Some(v as i64)
    }
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Argument ranges of the command returned by the last `Parsed::Command`.
    /// They index [`Parser::source`].
    pub fn args(&self) -> &[Range<usize>] {
        &self.args
    }

    /// The bytes the argument ranges index: the read buffer that was parsed,
    /// or, for an inline command, the parser's own unescaped copy.
    pub fn source<'a>(&'a self, buf: &'a [u8]) -> &'a [u8] {
        if self.is_inline {
            &self.inline
        } else {
            buf
        }
    }

    /// Forget any partial frame (the buffer was discarded).
    pub fn reset(&mut self) {
        self.args.clear();
        self.expected = 0;
        self.pos = 0;
        self.pending_bulk = None;
    }

    /// Parses the frame at the start of `buf`. After `Command`/`Skip` the
    /// caller removes or skips `consumed` bytes and calls again with the rest.
    /// `buf` must start where the previous call's frame started if that call
    /// returned `Incomplete` (the parser keeps offsets into it).
    pub fn parse(&mut self, buf: &[u8], limits: Limits) -> Result<Parsed, ProtocolError> {
        if self.expected == 0 && self.pos == 0 {
            self.args.clear();
            self.is_inline = false;
            match buf.first() {
                None => return Ok(Parsed::Incomplete { hint: 0 }),
                Some(b'*') => {}
                Some(_) => return self.parse_inline(buf),
            }
            // Multibulk header.
            let Some(cr) = find_byte(buf, b'\r') else {
                if buf.len() > INLINE_MAX {
                    return Err(ProtocolError::new("too big mbulk count string"));
                }
                return Ok(Parsed::Incomplete { hint: 0 });
            };
            if cr + 2 > buf.len() {
                return Ok(Parsed::Incomplete { hint: 0 });
            }
            if cr > INLINE_MAX {
                return Err(ProtocolError::new("too big mbulk count string"));
            }
            let n = match parse_i64(&buf[1..cr]) {
                Some(n) if n <= i64::from(i32::MAX) => n,
                _ => return Err(ProtocolError::new("invalid multibulk length")),
            };
            if !limits.authenticated && n > UNAUTH_MAX_MULTIBULK {
                return Err(ProtocolError::new("invalid multibulk length"));
            }
            if n <= 0 {
                return Ok(Parsed::Skip { consumed: cr + 2 });
            }
            self.expected = n as usize;
            self.pos = cr + 2;
            // Do not trust the announced count for preallocation.
            self.args.reserve(self.expected.min(1024));
        }
        while self.args.len() < self.expected {
            let len = match self.pending_bulk {
                Some(len) => len,
                None => {
                    let rest = &buf[self.pos..];
                    let Some(cr) = find_byte(rest, b'\r') else {
                        if rest.len() > INLINE_MAX {
                            return Err(ProtocolError::new("too big bulk count string"));
                        }
                        return Ok(Parsed::Incomplete { hint: 0 });
                    };
                    if cr + 2 > rest.len() {
                        return Ok(Parsed::Incomplete { hint: 0 });
                    }
                    if cr > INLINE_MAX {
                        return Err(ProtocolError::new("too big bulk count string"));
                    }
                    if rest[0] != b'$' {
                        return Err(ProtocolError(format!(
                            "expected '$', got '{}'",
                            rest[0] as char
                        )));
                    }
                    let len = match parse_i64(&rest[1..cr]) {
                        Some(l)
                            if l >= 0
                                && l <= limits.max_bulk_len
                                && (limits.authenticated || l <= UNAUTH_MAX_BULK) =>
                        {
                            l as usize
                        }
                        _ => return Err(ProtocolError::new("invalid bulk length")),
                    };
                    self.pos += cr + 2;
                    self.pending_bulk = Some(len);
                    len
                }
            };
            // Redis skips the two bytes after the data without checking them.
            let need = self.pos + len + 2;
            if buf.len() < need {
                return Ok(Parsed::Incomplete { hint: need });
            }
            self.args.push(self.pos..self.pos + len);
            self.pos = need;
            self.pending_bulk = None;
        }
        let consumed = self.pos;
        self.expected = 0;
        self.pos = 0;
        Ok(Parsed::Command { consumed })
    }

    fn parse_inline(&mut self, buf: &[u8]) -> Result<Parsed, ProtocolError> {
        let Some(nl) = find_byte(buf, b'\n') else {
            if buf.len() > INLINE_MAX {
                return Err(ProtocolError::new("too big inline request"));
            }
            return Ok(Parsed::Incomplete { hint: 0 });
        };
        let mut end = nl;
        if end > 0 && buf[end - 1] == b'\r' {
            end -= 1;
        }
        if !split_inline(&buf[..end], &mut self.inline, &mut self.args) {
            self.args.clear();
            return Err(ProtocolError::new("unbalanced quotes in request"));
        }
        if self.args.is_empty() {
            return Ok(Parsed::Skip { consumed: nl + 1 });
        }
        self.is_inline = true;
        Ok(Parsed::Command { consumed: nl + 1 })
    }
}

/// Splits an inline request the way Redis's `sdssplitargs` does, writing
/// the unescaped arguments into `store` and their ranges into `args`.
/// Returns false on unbalanced quotes.
fn split_inline(line: &[u8], store: &mut Vec<u8>, args: &mut Vec<Range<usize>>) -> bool {
    args.clear();
    store.clear();
    let mut i = 0;
    let n = line.len();
    loop {
        while i < n && line[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= n {
            return true;
        }
        let start = store.len();
        // One argument: runs of plain bytes and quoted parts, until a space
        // outside quotes.
        let mut in_dq = false;
        let mut in_sq = false;
        loop {
            if in_dq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\'
                    && i + 3 < n
                    && line[i + 1] == b'x'
                    && line[i + 2].is_ascii_hexdigit()
                    && line[i + 3].is_ascii_hexdigit()
                {
                    store.push(hex(line[i + 2]) * 16 + hex(line[i + 3]));
                    i += 4;
                } else if c == b'\\' && i + 1 < n {
                    store.push(match line[i + 1] {
                        b'n' => b'\n',
                        b'r' => b'\r',
                        b't' => b'\t',
                        b'b' => 8,
                        b'a' => 7,
                        other => other,
                    });
                    i += 2;
                } else if c == b'"' {
                    // The closing quote must be followed by a space or the end.
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    store.push(c);
                    i += 1;
                }
            } else if in_sq {
                if i >= n {
                    return false;
                }
                let c = line[i];
                if c == b'\\' && i + 1 < n && line[i + 1] == b'\'' {
                    store.push(b'\'');
                    i += 2;
                } else if c == b'\'' {
                    if i + 1 < n && !line[i + 1].is_ascii_whitespace() {
                        return false;
                    }
                    i += 1;
                    break;
                } else {
                    store.push(c);
                    i += 1;
                }
            } else {
                if i >= n || line[i].is_ascii_whitespace() {
                    break;
                }
                match line[i] {
                    b'"' => in_dq = true,
                    b'\'' => in_sq = true,
                    c => store.push(c),
                }
                i += 1;
            }
        }
        args.push(start..store.len());
    }
}

fn hex(c: u8) -> u8 {
    match c {
        b'0'..=b'9' => c - b'0',
        b'a'..=b'f' => c - b'a' + 10,
        _ => c.to_ascii_lowercase().wrapping_sub(b'a').wrapping_add(10),
    }
}

// ---------------------------------------------------------------------------
// Reply writers. Every reply goes through these so that the wire format is
// produced in one place.

pub fn write_simple(out: &mut Vec<u8>, s: &str) {
    out.push(b'+');
    out.extend_from_slice(s.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `msg` is the full error text, e.g. `ERR syntax error`.
pub fn write_error(out: &mut Vec<u8>, msg: &str) {
    write_error_bytes(out, msg.as_bytes());
}

/// Writes an error line as Redis does: CR and LF at the end of the message
/// are dropped, any left inside become spaces (an error line must not
/// contain them).
pub fn write_error_bytes(out: &mut Vec<u8>, msg: &[u8]) {
    let end = msg
        .iter()
        .rposition(|&b| b != b'\r' && b != b'\n')
        .map_or(0, |i| i + 1);
    out.push(b'-');
    for &b in &msg[..end] {
        out.push(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.extend_from_slice(b"\r\n");
}

pub fn write_int(out: &mut Vec<u8>, v: i64) {
    out.push(b':');
    out.extend_from_slice(itoa::Buffer::new().format(v).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn write_bulk(out: &mut Vec<u8>, data: &[u8]) {
    out.push(b'$');
    out.extend_from_slice(itoa::Buffer::new().format(data.len()).as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
}

pub fn write_null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

pub fn write_null_array(out: &mut Vec<u8>) {
    out.extend_from_slice(b"*-1\r\n");
}

pub fn write_array_len(out: &mut Vec<u8>, n: usize) {
    out.push(b'*');
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
    out.extend_from_slice(b"\r\n");
}

pub fn write_ok(out: &mut Vec<u8>) {
    out.extend_from_slice(b"+OK\r\n");
}

/// Encodes a command as a RESP multibulk (used by the log and by tests).
pub fn write_command<'a>(out: &mut Vec<u8>, args: impl ExactSizeIterator<Item = &'a [u8]>) {
    write_array_len(out, args.len());
    for a in args {
        write_bulk(out, a);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_all(input: &[u8]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
        let mut p = Parser::new();
        let mut cmds = Vec::new();
        let mut buf = input;
        loop {
            match p.parse(buf, Limits::default())? {
                Parsed::Command { consumed } => {
                    let src = p.source(buf);
                    cmds.push(p.args().iter().map(|r| src[r.clone()].to_vec()).collect());
                    buf = &buf[consumed..];
                }
                Parsed::Skip { consumed } => buf = &buf[consumed..],
                Parsed::Incomplete { .. } => return Ok(cmds),
            }
        }
    }

    #[test]
    fn multibulk_and_pipeline() {
        let cmds = parse_all(b"*2\r\n$3\r\nGET\r\n$1\r\na\r\n*1\r\n$4\r\nPING\r\n").unwrap();
        assert_eq!(
            cmds,
            vec![vec![b"GET".to_vec(), b"a".to_vec()], vec![b"PING".to_vec()]]
        );
    }

    #[test]
    fn inline_commands() {
        let cmds = parse_all(b"set a b\r\n\r\nget  a\n").unwrap();
        assert_eq!(cmds.len(), 2);
        assert_eq!(cmds[0], vec![b"set".to_vec(), b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(cmds[1], vec![b"get".to_vec(), b"a".to_vec()]);
    }

    #[test]
    fn inline_quotes() {
        let cmds = parse_all(b"set k \"a\\x41 b\\n\" 'it\\'s' x\"y z\"\r\n").unwrap();
        assert_eq!(cmds[0][2], b"aA b\n");
        assert_eq!(cmds[0][3], b"it's");
        assert_eq!(cmds[0][4], b"xy z");
        assert_eq!(
            parse_all(b"set k \"abc\r\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
        assert_eq!(
            parse_all(b"set k \"abc\"x\r\n").unwrap_err().0,
            "unbalanced quotes in request"
        );
    }

    #[test]
    fn incremental_byte_by_byte() {
        let input = b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n";
        let mut p = Parser::new();
        for end in 0..input.len() {
            match p.parse(&input[..end], Limits::default()).unwrap() {
                Parsed::Incomplete { .. } => {}
                other => panic!("premature {other:?} at {end}"),
            }
        }
        assert_eq!(
            p.parse(input, Limits::default()).unwrap(),
            Parsed::Command {
                consumed: input.len()
            }
        );
        assert_eq!(&input[p.args()[2].clone()], b"value");
    }

    #[test]
    fn bulk_hint_is_total_needed() {
        let mut p = Parser::new();
        let r = p.parse(b"*1\r\n$100\r\nab", Limits::default()).unwrap();
        assert_eq!(
            r,
            Parsed::Incomplete {
                hint: 4 + 6 + 100 + 2
            }
        );
    }

    #[test]
    fn errors_match_redis_texts() {
        let e = |s: &[u8]| parse_all(s).unwrap_err().0;
        assert_eq!(e(b"*abc\r\n"), "invalid multibulk length");
        assert_eq!(e(b"*1\r\n$-5\r\n"), "invalid bulk length");
        assert_eq!(e(b"*1\r\nfoo\r\n"), "expected '$', got 'f'");
        assert_eq!(e(b"*1\r\n$999999999999\r\n"), "invalid bulk length");
        assert_eq!(e(b"*3000000000\r\n"), "invalid multibulk length");
        let big = vec![b'a'; INLINE_MAX + 10];
        assert_eq!(e(&big), "too big inline request");
        let mut mb = b"*".to_vec();
        mb.extend(std::iter::repeat_n(b'1', INLINE_MAX + 10));
        assert_eq!(e(&mb), "too big mbulk count string");
    }

    #[test]
    fn unauthenticated_limits() {
        let mut p = Parser::new();
        let lim = Limits {
            authenticated: false,
            ..Limits::default()
        };
        assert_eq!(
            p.parse(b"*1\r\n$20000\r\n", lim).unwrap_err().0,
            "invalid bulk length"
        );
        let mut p = Parser::new();
        assert_eq!(
            p.parse(b"*2000000\r\n", lim).unwrap_err().0,
            "invalid multibulk length"
        );
    }

    #[test]
    fn error_lines_never_break_the_protocol() {
        let mut out = Vec::new();
        write_error_bytes(&mut out, b"ERR Unsupported option \r\n");
        assert_eq!(out, b"-ERR Unsupported option \r\n");
        out.clear();
        write_error_bytes(&mut out, b"ERR x \nab\r");
        assert_eq!(out, b"-ERR x  ab\r\n");
    }

    #[test]
    fn empty_multibulk_is_skipped() {
        assert!(parse_all(b"*0\r\n*-1\r\n").unwrap().is_empty());
    }

    #[test]
    fn parse_i64_is_strict() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        assert_eq!(parse_i64(b"9223372036854775808"), None);
        assert_eq!(parse_i64(b"+1"), None);
        assert_eq!(parse_i64(b"01"), None);
        assert_eq!(parse_i64(b"-0"), None);
        assert_eq!(parse_i64(b" 1"), None);
        assert_eq!(parse_i64(b""), None);
    }

    proptest::proptest! {
        #[test]
        fn never_panics(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_all(&data);
        }

        #[test]
        fn roundtrip(args in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20), 1..6)) {
            let mut buf = Vec::new();
            write_command(&mut buf, args.iter().map(|a| a.as_slice()));
            let cmds = parse_all(&buf).unwrap();
            proptest::prop_assert_eq!(cmds, vec![args]);
        }
    }
}
