//! LEB128 varints, as the snapshot format and the compact encodings of
//! hashes and sets write lengths and counts (docs/FORMATS.md): seven bits
//! a byte, low bits first, the high bit set on every byte but the last; at
//! most 10 bytes for a u64.

/// Appends `v`.
pub fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads one at `*pos` and moves past it; None when `b` ends inside it or
/// it runs past 10 bytes.
pub fn get(b: &[u8], pos: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*pos)?;
        *pos += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Bytes [`put`] writes for `v`.
pub fn len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_lengths() {
        for v in [0, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut b = Vec::new();
            super::put(&mut b, v);
            assert_eq!(b.len(), super::len(v), "{v}");
            let mut pos = 0;
            assert_eq!(super::get(&b, &mut pos), Some(v));
            assert_eq!(pos, b.len());
            assert_eq!(super::get(&b[..b.len() - 1], &mut 0), None, "cut");
        }
        assert_eq!(super::get(&[0x80; 11], &mut 0), None, "too long");
    }
}
