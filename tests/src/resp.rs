//! RESP2 encoding, parsing and printing.

/// A parsed RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Option<Vec<Frame>>),
}

/// Encodes a command as a RESP multibulk.
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        let a = a.as_ref();
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Length of the first whole reply in `buf`, `None` if incomplete.
pub fn reply_len(buf: &[u8]) -> Result<Option<usize>, String> {
    Ok(parse(buf)?.map(|(_, n)| n))
}

/// Parses the first whole reply in `buf`: the frame and its length.
pub fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    let Some(line_end) = find_crlf(buf) else {
        return Ok(None);
    };
    let Some((&kind, line)) = buf[..line_end].split_first() else {
        return Err("empty line".to_string());
    };
    let text = std::str::from_utf8(line).map_err(|_| "non-UTF-8 header".to_string());
    let after = line_end + 2;
    match kind {
        b'+' => Ok(Some((Frame::Simple(lossy(line)), after))),
        b'-' => Ok(Some((Frame::Error(lossy(line)), after))),
        b':' => {
            let n = text?.parse().map_err(|e| format!("bad integer: {e}"))?;
            Ok(Some((Frame::Int(n), after)))
        }
        b'$' => {
            let n: i64 = text?.parse().map_err(|e| format!("bad bulk length: {e}"))?;
            if n < 0 {
                return Ok(Some((Frame::Bulk(None), after)));
            }
            let n = n as usize;
            if buf.len() < after + n + 2 {
                return Ok(None);
            }
            if &buf[after + n..after + n + 2] != b"\r\n" {
                return Err("bulk string not followed by CRLF".to_string());
            }
            Ok(Some((
                Frame::Bulk(Some(buf[after..after + n].to_vec())),
                after + n + 2,
            )))
        }
        b'*' => {
            let n: i64 = text?
                .parse()
                .map_err(|e| format!("bad array length: {e}"))?;
            if n < 0 {
                return Ok(Some((Frame::Array(None), after)));
            }
            let mut items = Vec::new();
            let mut pos = after;
            for _ in 0..n {
                match parse(&buf[pos..])? {
                    Some((f, len)) => {
                        items.push(f);
                        pos += len;
                    }
                    None => return Ok(None),
                }
            }
            Ok(Some((Frame::Array(Some(items)), pos)))
        }
        other => Err(format!("unexpected type byte {:?}", other as char)),
    }
}

/// Parses exactly one whole reply (panics otherwise).
pub fn parse_one(buf: &[u8]) -> Frame {
    match parse(buf) {
        Ok(Some((f, n))) if n == buf.len() => f,
        other => panic!("not exactly one reply ({other:?}): {}", show(buf)),
    }
}

fn lossy(line: &[u8]) -> String {
    String::from_utf8_lossy(line).into_owned()
}

fn find_crlf(buf: &[u8]) -> Option<usize> {
    buf.windows(2).position(|w| w == b"\r\n")
}

/// Bytes as a readable string: printable ASCII as is, the rest escaped.
pub fn show(bytes: &[u8]) -> String {
    const LIMIT: usize = 600;
    let mut out = String::from("\"");
    for &b in bytes.iter().take(LIMIT) {
        match b {
            b'\r' => out.push_str("\\r"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7e => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    if bytes.len() > LIMIT {
        out.push_str(&format!("... ({} bytes)", bytes.len()));
    }
    out
}

/// A command's arguments, printed like redis-cli would quote them.
pub fn show_cmd<A: AsRef<[u8]>>(args: &[A]) -> String {
    args.iter()
        .map(|a| {
            let a = a.as_ref();
            let plain = !a.is_empty()
                && a.iter()
                    .all(|&b| b.is_ascii_graphic() && b != b'"' && b != b'\'');
            if plain {
                String::from_utf8_lossy(a).into_owned()
            } else {
                show(a)
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
