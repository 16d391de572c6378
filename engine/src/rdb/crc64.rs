//! Redis's CRC-64: the Jones polynomial (0xad93d23594c935a9), reflected
//! input and output, initial value 0, no final xor (Redis's `crc64.c`).
//! Check value: "123456789" -> 0xe9c6d914c4b8d9ca.
//!
//! Our own table-driven code, eight bytes a step (slicing-by-8): a crate for
//! this one function was not worth a dependency, and the table is a
//! handful of lines.

/// The Jones polynomial, bit-reflected.
const POLY_REFLECTED: u64 = 0x95ac_9329_ac4b_c9b5;

// Evaluated at compile time: an index out of range would fail the build.
#[allow(clippy::indexing_slicing)]
const fn make_tables() -> [[u64; 256]; 8] {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

static TABLES: [[u64; 256]; 8] = make_tables();

/// A table entry: a byte cannot index past 256 entries.
#[inline(always)]
#[allow(clippy::indexing_slicing)]
fn lk(t: &[u64; 256], b: u8) -> u64 {
    t[usize::from(b)]
}

/// Continues `crc` over `data` (start with 0).
pub fn crc64(mut crc: u64, data: &[u8]) -> u64 {
    let [t0, t1, t2, t3, t4, t5, t6, t7] = &TABLES;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let x = crc ^ u64::from_le_bytes(w);
        // `as u8` keeps the low byte: each index is < 256.
        crc = lk(t7, x as u8)
            ^ lk(t6, (x >> 8) as u8)
            ^ lk(t5, (x >> 16) as u8)
            ^ lk(t4, (x >> 24) as u8)
            ^ lk(t3, (x >> 32) as u8)
            ^ lk(t2, (x >> 40) as u8)
            ^ lk(t1, (x >> 48) as u8)
            ^ lk(t0, (x >> 56) as u8);
    }
    for &b in chunks.remainder() {
        crc = lk(t0, (crc ^ u64::from(b)) as u8) ^ (crc >> 8);
    }
    crc
}
