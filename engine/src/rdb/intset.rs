//! Intsets (Redis's `intset.c`): small sets of integers, sorted.
//!
//! ```text
//! encoding u32 LE (2, 4 or 8: bytes per element) | count u32 LE | elements LE, ascending
//! ```
//! Reading validates as Redis's `intsetValidateIntegrity` with the deep
//! check: sizes agree, not empty, strictly ascending (so no duplicates).

use super::RdbError;

/// The elements of an intset, checked.
pub fn read(blob: &[u8]) -> Result<Vec<i64>, RdbError> {
    let bad = |what: String| RdbError(format!("intset: {what}"));
    let word = |i: usize| -> u32 {
        let mut w = [0u8; 4];
        if let Some(b) = blob.get(i..i + 4) {
            w.copy_from_slice(b);
        }
        u32::from_le_bytes(w)
    };
    if blob.len() < 8 {
        return Err(bad(format!("{} bytes, shorter than a header", blob.len())));
    }
    let enc = word(0) as usize;
    if !matches!(enc, 2 | 4 | 8) {
        return Err(bad(format!("invalid encoding {enc}")));
    }
    let count = word(4) as usize;
    if count.checked_mul(enc).and_then(|n| n.checked_add(8)) != Some(blob.len()) {
        return Err(bad(format!(
            "{count} elements of {enc} bytes do not fill {} bytes",
            blob.len()
        )));
    }
    if count == 0 {
        return Err(bad("empty".into()));
    }
    let mut out = Vec::with_capacity(count);
    for c in blob.get(8..).unwrap_or_default().chunks_exact(enc) {
        let v = match *c {
            [a, b] => i64::from(i16::from_le_bytes([a, b])),
            [a, b, c, d] => i64::from(i32::from_le_bytes([a, b, c, d])),
            [a, b, c, d, e, f, g, h] => i64::from_le_bytes([a, b, c, d, e, f, g, h]),
            _ => return Err(bad("bad element size".into())),
        };
        if out.last().is_some_and(|&last| last >= v) {
            return Err(bad(format!("element {v} out of order or repeated")));
        }
        out.push(v);
    }
    Ok(out)
}

/// An intset of `values` (any order; duplicates kept once), in the
/// narrowest encoding that holds them all, as Redis grows it.
pub fn build(values: &[i64]) -> Vec<u8> {
    let mut v = values.to_vec();
    v.sort_unstable();
    v.dedup();
    let enc: usize = if v.iter().all(|&x| i16::try_from(x).is_ok()) {
        2
    } else if v.iter().all(|&x| i32::try_from(x).is_ok()) {
        4
    } else {
        8
    };
    let mut out = Vec::with_capacity(8 + enc * v.len());
    out.extend_from_slice(&(enc as u32).to_le_bytes());
    out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    for x in v {
        out.extend_from_slice(x.to_le_bytes().get(..enc).unwrap_or_default());
    }
    out
}
