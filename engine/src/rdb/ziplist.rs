//! Ziplists (Redis's `ziplist.c`, before 7.0): small hashes in payloads
//! from older Redis versions (`RDB_TYPE_HASH_ZIPLIST`).
//!
//! ```text
//! zlbytes u32 LE | zltail u32 LE (offset of the last entry) | zllen u16 LE (65535: unknown) | entries | 0xFF
//! entry: prevlen (1 byte < 254, or 0xFE + u32 LE) | encoding [+ data]
//! ```
//! Encodings: `00LLLLLL` string < 64; `01LLLLLL LLLLLLLL` string (14-bit
//! length, big-endian); `10000000` + u32 BE length: string; `C0` int16,
//! `D0` int32, `E0` int64, `F0` int24, `FE` int8 (little-endian);
//! `F1`..`FD` the integers 0..12. Reading validates as Redis's
//! `ziplistValidateIntegrity` with the deep check.

use super::RdbError;

const HDR: usize = 10;
const END: u8 = 0xFF;

fn le(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// The elements of a ziplist, integers as decimal text, checked.
pub fn read(zl: &[u8]) -> Result<Vec<Vec<u8>>, RdbError> {
    let bad = |what: String| RdbError(format!("ziplist: {what}"));
    if zl.len() < HDR + 1 {
        return Err(bad(format!("{} bytes, shorter than a header", zl.len())));
    }
    let zlbytes = le(zl.get(0..4).unwrap_or_default()) as usize;
    let zltail = le(zl.get(4..8).unwrap_or_default()) as usize;
    let zllen = le(zl.get(8..10).unwrap_or_default()) as u16;
    if zlbytes != zl.len() {
        return Err(bad(format!(
            "header says {zlbytes} bytes, the blob has {}",
            zl.len()
        )));
    }
    if zl.last() != Some(&END) {
        return Err(bad("no end byte".into()));
    }
    let end = zl.len() - 1;
    let mut items = Vec::new();
    let mut p = HDR;
    let mut prev_size = 0usize;
    let mut last_entry = HDR;
    while p < end {
        let e = zl.get(p..end).unwrap_or_default();
        let past = || bad(format!("entry at byte {p} runs past the end"));
        let (prevlen, plen) = match e.first().copied() {
            Some(b) if b < 254 => (usize::from(b), 1),
            Some(254) => (le(e.get(1..5).ok_or_else(past)?) as usize, 5),
            _ => return Err(bad(format!("invalid previous length at byte {p}"))),
        };
        if prevlen != prev_size {
            return Err(bad(format!(
                "entry at byte {p} says the one before has {prevlen} bytes, it has {prev_size}"
            )));
        }
        let e = e.get(plen..).unwrap_or_default();
        let b0 = e.first().copied().ok_or_else(past)?;
        let int = |n: usize| -> Result<i64, RdbError> {
            let v = le(e.get(1..1 + n).ok_or_else(past)?);
            let shift = 64 - 8 * n as u32;
            Ok(((v << shift) as i64) >> shift)
        };
        let (size, value) = match b0 >> 6 {
            0..=2 => {
                let (hdr, slen): (usize, usize) = match b0 >> 6 {
                    0 => (1, usize::from(b0 & 0x3f)),
                    1 => (
                        2,
                        (usize::from(b0 & 0x3f) << 8) | usize::from(*e.get(1).ok_or_else(past)?),
                    ),
                    _ if b0 == 0x80 => {
                        let b = e.get(1..5).ok_or_else(past)?;
                        (5, b.iter().fold(0usize, |a, &x| (a << 8) | usize::from(x)))
                    }
                    _ => return Err(bad(format!("invalid encoding {b0:#04x} at byte {p}"))),
                };
                let s = hdr
                    .checked_add(slen)
                    .and_then(|stop| e.get(hdr..stop))
                    .ok_or_else(past)?;
                (hdr + slen, s.to_vec())
            }
            _ => {
                let (n, v) = match b0 {
                    0xC0 => (2, int(2)?),
                    0xD0 => (4, int(4)?),
                    0xE0 => (8, int(8)?),
                    0xF0 => (3, int(3)?),
                    0xFE => (1, int(1)?),
                    0xF1..=0xFD => (0, i64::from(b0 & 0x0f) - 1),
                    x => return Err(bad(format!("invalid encoding {x:#04x} at byte {p}"))),
                };
                (1 + n, itoa::Buffer::new().format(v).as_bytes().to_vec())
            }
        };
        last_entry = p;
        prev_size = plen + size;
        p += prev_size;
        items.push(value);
    }
    if p != end {
        return Err(bad("entries run past the end byte".into()));
    }
    if zltail != last_entry {
        return Err(bad(format!(
            "tail offset {zltail}, the last entry is at {last_entry}"
        )));
    }
    if zllen != u16::MAX && usize::from(zllen) != items.len() {
        return Err(bad(format!(
            "header counts {zllen} entries, {} found",
            items.len()
        )));
    }
    Ok(items)
}
