//! Value syntax, as Redis's util.c / sds.c: booleans, `string2ll`,
//! `memtoull`, `sdssplitargs`, and quoting values back.

use super::*;

/// Redis's `yesnotoi`.
pub(super) fn parse_bool(s: &[u8]) -> Option<bool> {
    if s.eq_ignore_ascii_case(b"yes") {
        Some(true)
    } else if s.eq_ignore_ascii_case(b"no") {
        Some(false)
    } else {
        None
    }
}

/// Redis's `string2ll`: an optional `-`, then digits without leading zeros
/// (or exactly "0"), within i64.
pub(super) fn parse_ll(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.strip_prefix(b"-") {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude: u64 = std::str::from_utf8(digits).ok()?.parse().ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// Redis's `memtoull`: digits followed by nothing, `b`, `k`, `kb`, `m`,
/// `mb`, `g` or `gb` (case-insensitive; `k` = 1000, `kb` = 1024, ...).
/// Like Redis, digits that overflow saturate (and then fail the range
/// check), and a bare unit counts as 0.
pub(super) fn parse_memory(s: &[u8]) -> Option<u64> {
    if s.first() == Some(&b'-') {
        return None;
    }
    let digits_end = s
        .iter()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(s.len());
    let (digits, unit) = s.split_at(digits_end);
    let unit = unit.to_ascii_lowercase();
    let mul: u64 = match unit.as_slice() {
        b"" | b"b" => 1,
        b"k" => 1000,
        b"kb" => 1024,
        b"m" => 1000 * 1000,
        b"mb" => 1024 * 1024,
        b"g" => 1000 * 1000 * 1000,
        b"gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    if digits.len() >= 128 {
        return None;
    }
    let value = digits.iter().fold(0u64, |acc, d| {
        acc.saturating_mul(10).saturating_add(u64::from(d - b'0'))
    });
    value.checked_mul(mul)
}

/// Redis's `rewriteConfigFormatMemory`.
pub(super) fn format_memory(bytes: u64) -> String {
    const KB: u64 = 1024;
    const MB: u64 = 1024 * 1024;
    const GB: u64 = 1024 * 1024 * 1024;
    match bytes {
        0 => "0".to_string(),
        b if b % GB == 0 => format!("{}gb", b / GB),
        b if b % MB == 0 => format!("{}mb", b / MB),
        b if b % KB == 0 => format!("{}kb", b / KB),
        b => b.to_string(),
    }
}

/// C's `isspace` in the C locale.
pub(super) fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

pub(super) fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Redis's `sdssplitargs`: words separated by blanks; `"..."` with `\n \r
/// \t \b \a \xHH` and `\<any>` escapes; `'...'` with `\'`; a closing quote
/// must be followed by a blank or the end. `None` = unbalanced quotes.
pub(super) fn split_args(line: &[u8]) -> Option<Vec<Vec<u8>>> {
    // A C string ends at its first NUL.
    let line = line.split(|&b| b == 0).next().unwrap_or_default();
    // Byte at `k`, or 0 past the end (C's terminator).
    let at = |k: usize| line.get(k).copied().unwrap_or(0);
    let mut args = Vec::new();
    let mut i = 0;
    loop {
        while i < line.len() && is_c_space(at(i)) {
            i += 1;
        }
        if i >= line.len() {
            return Some(args);
        }
        let mut word = Vec::new();
        let (mut in_double, mut in_single) = (false, false);
        loop {
            let c = at(i);
            if in_double {
                match c {
                    b'\\' if at(i + 1) == b'x' => {
                        match (hex_value(at(i + 2)), hex_value(at(i + 3))) {
                            (Some(hi), Some(lo)) => {
                                word.push(hi * 16 + lo);
                                i += 3;
                            }
                            _ => {
                                // `\x` without two hex digits is a plain `x`.
                                word.push(b'x');
                                i += 1;
                            }
                        }
                    }
                    b'\\' if at(i + 1) != 0 => {
                        i += 1;
                        word.push(match at(i) {
                            b'n' => b'\n',
                            b'r' => b'\r',
                            b't' => b'\t',
                            b'b' => 0x08,
                            b'a' => 0x07,
                            other => other,
                        });
                    }
                    b'"' => {
                        if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    0 => return None,
                    _ => word.push(c),
                }
            } else if in_single {
                match c {
                    b'\\' if at(i + 1) == b'\'' => {
                        i += 1;
                        word.push(b'\'');
                    }
                    b'\'' => {
                        if at(i + 1) != 0 && !is_c_space(at(i + 1)) {
                            return None;
                        }
                        i += 1;
                        break;
                    }
                    0 => return None,
                    _ => word.push(c),
                }
            } else {
                match c {
                    b' ' | b'\n' | b'\r' | b'\t' => {
                        i += 1;
                        break;
                    }
                    0 => break,
                    b'"' => in_double = true,
                    b'\'' => in_single = true,
                    _ => word.push(c),
                }
            }
            i += 1;
        }
        args.push(word);
    }
}

/// Redis's `sdscatrepr`: a double-quoted string that [`split_args`] reads
/// back as exactly `s`.
pub(super) fn repr(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for &b in s {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'"' => out.push_str("\\\""),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x07 => out.push_str("\\a"),
            0x08 => out.push_str("\\b"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('"');
    out
}

/// `s` unquoted when that reads back as the same single word, else quoted.
pub(super) fn bare_or_repr(s: &str) -> String {
    let plain = !s.is_empty()
        && s.bytes()
            .all(|b| (0x21..=0x7e).contains(&b) && b != b'"' && b != b'\'' && b != b'\\');
    if plain {
        s.to_string()
    } else {
        repr(s.as_bytes())
    }
}

/// Redis's `sdstrim(line, " \t\r\n")`.
pub(super) fn trim_line(line: &[u8]) -> &[u8] {
    let blank = |b: &u8| matches!(b, b' ' | b'\t' | b'\r' | b'\n');
    let start = line.iter().position(|b| !blank(b)).unwrap_or(line.len());
    let end = line
        .iter()
        .rposition(|b| !blank(b))
        .map_or(start, |e| e + 1);
    line.get(start..end).unwrap_or_default()
}

/// An I/O error's text without Rust's " (os error N)" suffix, i.e. C's
/// `strerror`, which is what Redis prints.
pub(super) fn os_reason(e: &io::Error) -> String {
    let text = e.to_string();
    match text.rfind(" (os error ") {
        Some(i) => text.get(..i).unwrap_or(&text).to_string(),
        None => text,
    }
}

/// Turns an error text into one line, as Redis does for error replies.
pub(super) fn one_line(s: String) -> String {
    s.replace(['\r', '\n'], " ")
}
