//! Listpacks (Redis's `listpack.c`): the compact encoding of small hashes
//! (and, later, sets, sorted sets and lists) inside an RDB payload.
//!
//! ```text
//! total bytes u32 LE | element count u16 LE (65535: unknown) | entries | 0xFF
//! entry: encoding [+ data] + backlen (the entry's size, 1-5 bytes, 7 bits each)
//! ```
//! Encodings: `0xxxxxxx` 7-bit uint; `10LLLLLL` string < 64 bytes;
//! `110xxxxx yyyyyyyy` 13-bit int; `1110LLLL LLLLLLLL` string < 4096;
//! `11110000` + u32 LE length: string; `F1`/`F2`/`F3`/`F4`: 16/24/32/64-bit
//! int, little-endian. Reading validates as Redis's deep sanitization
//! (`lpValidateIntegrity` with `lpValidateNext` on every entry).

use super::{canonical_i64, RdbError};

const HDR: usize = 6;
const EOF: u8 = 0xFF;
const UNKNOWN_COUNT: u16 = u16::MAX;

fn le(b: &[u8]) -> u64 {
    b.iter()
        .rev()
        .fold(0u64, |acc, &x| (acc << 8) | u64::from(x))
}

/// Sign-extends the low `bits` bits of `v`.
fn sext(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// Size of the backlen that encodes an entry of `l` bytes.
fn backlen_size(l: usize) -> usize {
    match l {
        0..=127 => 1,
        128..=16382 => 2,
        16383..=2097150 => 3,
        2097151..=268435454 => 4,
        _ => 5,
    }
}

fn encode_backlen(out: &mut Vec<u8>, l: usize) {
    let l = l as u64;
    let n = backlen_size(l as usize);
    for i in (0..n).rev() {
        let group = ((l >> (7 * i)) & 127) as u8;
        // The first byte written (the highest group) has no flag.
        out.push(if i == n - 1 { group } else { group | 128 });
    }
}

/// The elements of a listpack, integers as their decimal text, after
/// checking every byte of it.
pub fn read(lp: &[u8]) -> Result<Vec<Vec<u8>>, RdbError> {
    let bad = |what: String| RdbError(format!("listpack: {what}"));
    if lp.len() < HDR + 1 {
        return Err(bad(format!("{} bytes, shorter than a header", lp.len())));
    }
    let total = le(lp.get(0..4).unwrap_or_default()) as usize;
    if total != lp.len() {
        return Err(bad(format!(
            "header says {total} bytes, the blob has {}",
            lp.len()
        )));
    }
    let count = le(lp.get(4..6).unwrap_or_default()) as u16;
    if lp.last() != Some(&EOF) {
        return Err(bad("no end byte".into()));
    }
    let end = lp.len() - 1;
    let mut items = Vec::new();
    let mut p = HDR;
    while p < end {
        let e = lp.get(p..end).unwrap_or_default();
        let b0 = e.first().copied().unwrap_or(EOF);
        let field = |n: usize| -> Result<&[u8], RdbError> {
            e.get(1..1 + n)
                .ok_or_else(|| bad(format!("entry at byte {p} runs past the end")))
        };
        // (header bytes, data: Ok(string) / Err(int))
        let (hdr, item): (usize, Result<&[u8], i64>) = if b0 & 0x80 == 0 {
            (1, Err(i64::from(b0 & 0x7f)))
        } else if b0 & 0xC0 == 0x80 {
            (1, Ok(&[][..]))
        } else if b0 & 0xE0 == 0xC0 {
            let lo = field(1)?;
            let v = (u64::from(b0 & 0x1f) << 8) | le(lo);
            (2, Err(sext(v, 13)))
        } else if b0 & 0xF0 == 0xE0 {
            field(1)?;
            (2, Ok(&[][..]))
        } else {
            match b0 {
                0xF0 => {
                    field(4)?;
                    (5, Ok(&[][..]))
                }
                0xF1 => (3, Err(sext(le(field(2)?), 16))),
                0xF2 => (4, Err(sext(le(field(3)?), 24))),
                0xF3 => (5, Err(sext(le(field(4)?), 32))),
                0xF4 => (9, Err(le(field(8)?) as i64)),
                EOF => return Err(bad(format!("end byte at {p}, before the end"))),
                x => return Err(bad(format!("invalid encoding {x:#04x} at byte {p}"))),
            }
        };
        let (size, value) = match item {
            Err(v) => (hdr, itoa::Buffer::new().format(v).as_bytes().to_vec()),
            Ok(_) => {
                let slen = match b0 {
                    0xF0 => le(e.get(1..5).unwrap_or_default()) as usize,
                    _ if b0 & 0xC0 == 0x80 => usize::from(b0 & 0x3f),
                    _ => {
                        (usize::from(b0 & 0x0f) << 8) | usize::from(e.get(1).copied().unwrap_or(0))
                    }
                };
                let s = hdr
                    .checked_add(slen)
                    .and_then(|stop| e.get(hdr..stop))
                    .ok_or_else(|| bad(format!("string at byte {p} runs past the end")))?;
                (hdr + slen, s.to_vec())
            }
        };
        let mut want = Vec::with_capacity(5);
        encode_backlen(&mut want, size);
        if e.get(size..size + want.len()) != Some(&want[..]) {
            return Err(bad(format!("entry at byte {p}: wrong back length")));
        }
        p += size + want.len();
        items.push(value);
    }
    if p != end {
        return Err(bad("entries run past the end byte".into()));
    }
    if count != UNKNOWN_COUNT && usize::from(count) != items.len() {
        return Err(bad(format!(
            "header counts {count} entries, {} found",
            items.len()
        )));
    }
    Ok(items)
}

/// Appends one element as Redis's `lpAppend` encodes it (a canonical
/// integer as the smallest integer encoding).
fn push_entry(lp: &mut Vec<u8>, s: &[u8]) {
    let start = lp.len();
    if let Some(v) = canonical_i64(s) {
        match v {
            0..=127 => lp.push(v as u8),
            -4096..=4095 => {
                let u = (v as u64) & 0x1fff;
                lp.extend_from_slice(&[0xC0 | (u >> 8) as u8, u as u8]);
            }
            -32768..=32767 => {
                lp.push(0xF1);
                lp.extend_from_slice(&(v as i16).to_le_bytes());
            }
            -8388608..=8388607 => {
                lp.push(0xF2);
                lp.extend_from_slice((v as i32).to_le_bytes().get(..3).unwrap_or_default());
            }
            -2147483648..=2147483647 => {
                lp.push(0xF3);
                lp.extend_from_slice(&(v as i32).to_le_bytes());
            }
            _ => {
                lp.push(0xF4);
                lp.extend_from_slice(&v.to_le_bytes());
            }
        }
    } else if s.len() < 64 {
        lp.push(0x80 | s.len() as u8);
        lp.extend_from_slice(s);
    } else if s.len() < 4096 {
        lp.extend_from_slice(&[0xE0 | (s.len() >> 8) as u8, s.len() as u8]);
        lp.extend_from_slice(s);
    } else {
        lp.push(0xF0);
        lp.extend_from_slice(&(s.len() as u32).to_le_bytes());
        lp.extend_from_slice(s);
    }
    let size = lp.len() - start;
    encode_backlen(lp, size);
}

/// A listpack of `items`, in order.
pub fn build<'a>(items: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut lp = vec![0u8; HDR];
    let mut n = 0usize;
    for s in items {
        push_entry(&mut lp, s);
        n += 1;
    }
    lp.push(EOF);
    let total = lp.len() as u32;
    let count = if n < usize::from(UNKNOWN_COUNT) {
        n as u16
    } else {
        UNKNOWN_COUNT
    };
    lp.splice(
        0..HDR,
        total.to_le_bytes().into_iter().chain(count.to_le_bytes()),
    );
    lp
}
