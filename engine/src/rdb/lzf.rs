//! LZF, as Redis compresses long strings in RDB payloads: liblzf 3.6
//! (`lzf_c.c`, `lzf_d.c` in Redis 7.0) with Redis's `lzfP.h` settings
//! (HLOG 16, VERY_FAST, not ULTRA_FAST). The compressor follows liblzf's
//! steps exactly, so our payloads are the bytes redis-server writes (the
//! DUMP test against redis-server compares them, up to 1 MiB). One
//! difference remains in principle: our hash table starts empty, where
//! liblzf leaves it uninitialised, so a stale slot could name a match
//! liblzf finds and we do not (both outputs valid LZF); the tests have not
//! seen it happen.
//!
//! Our own code rather than a crate: byte-identical output needs exactly
//! this version and these settings, and the decompressor must take
//! untrusted input with the output size bounded before anything is
//! allocated.
//!
//! Format: `000LLLLL` + L+1 literal bytes; `LLLooooo oooooooo` a back
//! reference of L+2 bytes at distance o+1; `111ooooo LLLLLLLL oooooooo` one
//! of L+9 bytes.

const HLOG: u32 = 16;
const HSIZE: usize = 1 << HLOG;
const MAX_LIT: usize = 1 << 5;
const MAX_OFF: usize = 1 << 13;
const MAX_REF: usize = (1 << 8) + (1 << 3);

/// The most bytes one input byte can expand to (a 3-byte back reference
/// of 264 bytes): a claimed uncompressed length above `88 * compressed`
/// is corrupt.
pub const MAX_RATIO: usize = 88;

#[inline]
fn at(b: &[u8], i: usize) -> u8 {
    b.get(i).copied().unwrap_or(0)
}

#[inline]
fn put(b: &mut [u8], i: usize, v: u8) {
    if let Some(x) = b.get_mut(i) {
        *x = v;
    }
}

#[inline]
fn frst(b: &[u8], p: usize) -> u32 {
    (u32::from(at(b, p)) << 8) | u32::from(at(b, p + 1))
}

#[inline]
fn next(v: u32, b: &[u8], p: usize) -> u32 {
    (v << 8) | u32::from(at(b, p + 2))
}

#[inline]
fn idx(h: u32) -> usize {
    ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) as usize) & (HSIZE - 1)
}

/// Compresses `input` into at most `out_len` bytes; None if it does not
/// fit (liblzf's `lzf_compress` returning 0).
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    let in_len = input.len();
    if in_len == 0 || out_len == 0 {
        return None;
    }
    // Positions of earlier 3-byte sequences; 0 never matches (liblzf
    // requires `ref > in_data`).
    let mut htab = vec![0usize; HSIZE];
    // Two bytes of slack, as Redis allocates `outlen + 1`: a run header
    // may be written one past the end just before the size check fails.
    let mut out = vec![0u8; out_len + 2];
    let mut ip = 0usize;
    let mut op = 1usize; // start run
    let mut lit = 0usize;
    let mut hval = frst(input, ip);
    while ip + 2 < in_len {
        hval = next(hval, input, ip);
        let slot = idx(hval);
        let r = htab.get(slot).copied().unwrap_or(0);
        if let Some(s) = htab.get_mut(slot) {
            *s = ip;
        }
        let off = ip.wrapping_sub(r).wrapping_sub(1);
        if r > 0
            && r < ip
            && off < MAX_OFF
            && at(input, r) == at(input, ip)
            && at(input, r + 1) == at(input, ip + 1)
            && at(input, r + 2) == at(input, ip + 2)
        {
            let mut len = 2usize;
            let maxlen = (in_len - ip - len).min(MAX_REF);
            if op - usize::from(lit == 0) + 3 + 1 >= out_len {
                return None;
            }
            put(&mut out, op - lit - 1, (lit as u8).wrapping_sub(1)); // stop run
            if lit == 0 {
                op -= 1; // undo run if length is zero
            }
            'm: {
                if maxlen > 16 {
                    for _ in 0..16 {
                        len += 1;
                        if at(input, r + len) != at(input, ip + len) {
                            break 'm;
                        }
                    }
                }
                loop {
                    len += 1;
                    if !(len < maxlen && at(input, r + len) == at(input, ip + len)) {
                        break;
                    }
                }
            }
            len -= 2; // now #octets - 1
            ip += 1;
            if len < 7 {
                put(&mut out, op, ((off >> 8) + (len << 5)) as u8);
                op += 1;
            } else {
                put(&mut out, op, ((off >> 8) + (7 << 5)) as u8);
                put(&mut out, op + 1, (len - 7) as u8);
                op += 2;
            }
            put(&mut out, op, off as u8);
            op += 1;
            lit = 0;
            op += 1; // start run
            ip += len + 1;
            if ip + 2 >= in_len {
                break;
            }
            // VERY_FAST: hash the last two positions of the match.
            ip -= 2;
            hval = frst(input, ip);
            hval = next(hval, input, ip);
            if let Some(s) = htab.get_mut(idx(hval)) {
                *s = ip;
            }
            ip += 1;
            hval = next(hval, input, ip);
            if let Some(s) = htab.get_mut(idx(hval)) {
                *s = ip;
            }
            ip += 1;
        } else {
            if op >= out_len {
                return None;
            }
            lit += 1;
            put(&mut out, op, at(input, ip));
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                put(&mut out, op - lit - 1, (lit - 1) as u8);
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_len {
        return None;
    }
    while ip < in_len {
        lit += 1;
        put(&mut out, op, at(input, ip));
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            put(&mut out, op - lit - 1, (lit - 1) as u8);
            lit = 0;
            op += 1;
        }
    }
    put(&mut out, op - lit - 1, (lit as u8).wrapping_sub(1)); // end run
    if lit == 0 {
        op -= 1;
    }
    out.truncate(op);
    Some(out)
}

/// Decompresses `input`, which must expand to exactly `out_len` bytes
/// (liblzf's `lzf_decompress` with its input checks, and Redis's check of
/// the length). The caller bounds `out_len` (see [`MAX_RATIO`]).
pub fn decompress(input: &[u8], out_len: usize) -> Result<Vec<u8>, String> {
    if out_len > input.len().saturating_mul(MAX_RATIO) {
        return Err(format!(
            "LZF: {} compressed bytes cannot expand to {out_len}",
            input.len()
        ));
    }
    let mut out: Vec<u8> = Vec::with_capacity(out_len);
    let mut ip = 0usize;
    while let Some(&ctrl) = input.get(ip) {
        ip += 1;
        let ctrl = usize::from(ctrl);
        if ctrl < 32 {
            let n = ctrl + 1;
            if out.len() + n > out_len {
                return Err(format!("LZF: output longer than {out_len} bytes"));
            }
            let Some(lit) = input.get(ip..ip + n) else {
                return Err(format!("LZF: literal run past the end at byte {ip}"));
            };
            out.extend_from_slice(lit);
            ip += n;
        } else {
            let mut len = ctrl >> 5;
            let mut back = ((ctrl & 0x1f) << 8) + 1;
            if len == 7 {
                let Some(&l) = input.get(ip) else {
                    return Err("LZF: back reference cut at the end".into());
                };
                len += usize::from(l);
                ip += 1;
            }
            let Some(&o) = input.get(ip) else {
                return Err("LZF: back reference cut at the end".into());
            };
            ip += 1;
            back += usize::from(o);
            let n = len + 2;
            if out.len() + n > out_len {
                return Err(format!("LZF: output longer than {out_len} bytes"));
            }
            if back > out.len() {
                return Err(format!(
                    "LZF: back reference {back} bytes before the start at output byte {}",
                    out.len()
                ));
            }
            let start = out.len() - back;
            // Byte by byte: the reference may overlap what it produces.
            for i in start..start + n {
                let b = out.get(i).copied().unwrap_or(0);
                out.push(b);
            }
        }
    }
    if out.len() != out_len {
        return Err(format!(
            "LZF: {} bytes decompressed, {out_len} announced",
            out.len()
        ));
    }
    Ok(out)
}
