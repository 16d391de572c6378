//! Zipmaps (Redis's `zipmap.c`, before 2.6): small hashes in payloads from
//! very old Redis versions (`RDB_TYPE_HASH_ZIPMAP`).
//!
//! ```text
//! zmlen (1 byte; 254: count unknown) | len key len free value [free bytes] ... | 0xFF
//! len: 1 byte < 254, or 254 + u32 (host order, little-endian on x86)
//! ```
//! Reading validates as Redis's `zipmapValidateIntegrity` with the deep
//! check (every length inside the blob, the count agrees).

use super::RdbError;

const BIGLEN: u8 = 254;
const END: u8 = 0xFF;

/// The field/value pairs of a zipmap, checked (duplicates are the
/// caller's to refuse).
pub fn read(zm: &[u8]) -> Result<super::Pairs, RdbError> {
    let bad = |what: String| RdbError(format!("zipmap: {what}"));
    let zmlen = *zm.first().ok_or_else(|| bad("empty blob".into()))?;
    if zm.last() != Some(&END) || zm.len() < 2 {
        return Err(bad("no end byte".into()));
    }
    let end = zm.len() - 1;
    let mut p = 1usize;
    let past = |p: usize| bad(format!("entry at byte {p} runs past the end"));
    let len_at = |p: usize| -> Result<(usize, usize), RdbError> {
        match zm.get(p).copied() {
            Some(b) if b < BIGLEN => Ok((usize::from(b), 1)),
            Some(BIGLEN) => {
                let b = zm.get(p + 1..p + 5).ok_or_else(|| past(p))?;
                let mut w = [0u8; 4];
                w.copy_from_slice(b);
                Ok((u32::from_le_bytes(w) as usize, 5))
            }
            _ => Err(past(p)),
        }
    };
    let mut pairs = Vec::new();
    while p < end {
        let (klen, n) = len_at(p)?;
        let key = zm
            .get(p + n..(p + n).saturating_add(klen))
            .filter(|_| (p + n).saturating_add(klen) <= end)
            .ok_or_else(|| past(p))?;
        p = p + n + klen;
        let (vlen, n) = len_at(p)?;
        let free = usize::from(*zm.get(p + n).ok_or_else(|| past(p))?);
        let vstart = p + n + 1;
        let vend = vstart.saturating_add(vlen);
        let value = zm
            .get(vstart..vend)
            .filter(|_| vend.saturating_add(free) <= end)
            .ok_or_else(|| past(p))?;
        p = vend + free;
        pairs.push((key.to_vec(), value.to_vec()));
    }
    if zmlen < BIGLEN && usize::from(zmlen) != pairs.len() {
        return Err(bad(format!(
            "header counts {zmlen} pairs, {} found",
            pairs.len()
        )));
    }
    Ok(pairs)
}
