//! C `long double` as Redis on x86_64 Linux uses it for INCRBYFLOAT: the x87
//! 80-bit extended format (64-bit significand with an explicit integer bit,
//! 15-bit exponent), in software.
//!
//! Three operations, each byte-identical to what Redis 7.0 does with glibc:
//! - [`LongDouble::parse`] is Redis's `string2ld`: glibc `strtold` (decimal,
//!   hexadecimal, `inf`/`infinity`; correctly rounded to nearest-even, plus
//!   one glibc quirk for hexadecimal texts just above half the least
//!   subnormal) must take the whole text, and NaN, overflow to infinity and
//!   underflow to zero are refused.
//! - `+` ([`std::ops::Add`]) is the x87 `fadd` in round-to-nearest-even, with
//!   gradual underflow.
//! - [`LongDouble::to_human`] is `ld2string(.., LD_STR_HUMAN)`: glibc's
//!   exact `%.17Lf` (every integer digit, 17 decimals rounded half-to-even on
//!   the exact binary value), trailing zeros and a trailing `.` cut, and `-0`
//!   written as `0`.
//!
//! Big values need exact arithmetic (a finite value has up to 4933 integer
//! digits, and a decimal text up to 5119 digits must round correctly), so
//! there is a small unsigned big integer here too.

use std::cmp::Ordering;

/// Redis refuses to parse a float from a text this long or longer
/// (`MAX_LONG_DOUBLE_CHARS`).
pub const MAX_LONG_DOUBLE_CHARS: usize = 5 * 1024;

/// Exponent of the least subnormal: 2^-16445 is the quantum of the subnormal
/// range (and the ulp of the least normal, 2^-16382).
const MIN_QUANTUM_EXP: i64 = -16445;
/// The largest finite value is just below 2^(MAX_EXP + 1).
const MAX_EXP: i64 = 16383;

/// One x87 extended-precision value.
///
/// A finite value is `(-1)^neg * mant * 2^exp`, kept canonical: a normal
/// value has bit 63 of `mant` set; a subnormal or zero has
/// `exp == -16445` and bit 63 clear.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LongDouble {
    Finite {
        neg: bool,
        mant: u64,
        exp: i32,
    },
    Inf {
        neg: bool,
    },
    /// Only `inf - inf` makes one; [`LongDouble::parse`] never returns it.
    Nan,
}

impl LongDouble {
    /// Positive zero.
    pub const ZERO: LongDouble = LongDouble::Finite {
        neg: false,
        mant: 0,
        exp: MIN_QUANTUM_EXP as i32,
    };

    fn zero(neg: bool) -> LongDouble {
        LongDouble::Finite {
            neg,
            mant: 0,
            exp: MIN_QUANTUM_EXP as i32,
        }
    }

    /// Neither infinite nor NaN.
    pub fn is_finite(&self) -> bool {
        matches!(self, LongDouble::Finite { .. })
    }

    /// Redis's `string2ld`: the value of `s` as glibc `strtold` reads it,
    /// or `None` where Redis answers "value is not a valid float": an empty
    /// text or one of [`MAX_LONG_DOUBLE_CHARS`] or more, anything `strtold`
    /// does not consume entirely (leading or trailing spaces included), NaN,
    /// and a finite literal that overflows to infinity or a nonzero one that
    /// underflows to zero (`strtold` sets `ERANGE`). `inf` and `infinity`
    /// (any case, with a sign) are accepted.
    pub fn parse(s: &[u8]) -> Option<LongDouble> {
        if s.is_empty() || s.len() >= MAX_LONG_DOUBLE_CHARS {
            return None;
        }
        let (neg, body) = match s[0] {
            b'-' => (true, &s[1..]),
            b'+' => (false, &s[1..]),
            _ => (false, s),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble::Inf { neg });
        }
        if body.len() >= 2 && body[0] == b'0' && (body[1] == b'x' || body[1] == b'X') {
            parse_hex(neg, &body[2..])
        } else {
            parse_dec(neg, body)
        }
    }

    /// Redis's `ld2string(.., LD_STR_HUMAN)`: `%.17Lf`, then trailing zeros
    /// after the point and a bare trailing point cut; `-0` becomes `0`;
    /// infinities are `inf` and `-inf`.
    pub fn to_human(&self) -> String {
        let (neg, mant, exp) = match *self {
            LongDouble::Inf { neg } => return if neg { "-inf" } else { "inf" }.to_string(),
            // Not reachable from INCRBYFLOAT; glibc prints the x87 default
            // NaN (sign bit set) as "-nan".
            LongDouble::Nan => return "-nan".to_string(),
            LongDouble::Finite { neg, mant, exp } => (neg, mant, i64::from(exp)),
        };
        let mut s = String::new();
        if neg {
            s.push('-');
        }
        let frac: u64;
        if exp >= 0 {
            let int = Big::from_u64(mant).shl(exp as u64);
            s.push_str(&int.to_decimal());
            frac = 0;
        } else {
            let sh = (-exp) as u32;
            let (int, f) = if sh < 64 {
                (mant >> sh, mant & ((1u64 << sh) - 1))
            } else {
                (0, mant)
            };
            // f / 2^sh scaled by 10^17, rounded half-to-even. The product is
            // below 2^121, so for sh >= 128 it is below half a unit.
            let p = u128::from(f) * 100_000_000_000_000_000u128;
            let mut q = 0u128;
            if sh < 128 {
                q = p >> sh;
                let r = p & ((1u128 << sh) - 1);
                let half = 1u128 << (sh - 1);
                if r > half || (r == half && q & 1 == 1) {
                    q += 1;
                }
            }
            let mut int = int;
            if q == 100_000_000_000_000_000 {
                // `int` < 2^63 here, as sh >= 1.
                int += 1;
                q = 0;
            }
            s.push_str(itoa::Buffer::new().format(int));
            frac = q as u64;
        }
        if frac != 0 {
            let digits = format!(".{frac:017}");
            s.push_str(digits.trim_end_matches('0'));
        }
        if s == "-0" {
            s = "0".to_string();
        }
        s
    }
}

/// The x87 sum (`fadd`), rounded to nearest-even.
impl std::ops::Add for LongDouble {
    type Output = LongDouble;

    fn add(self, rhs: LongDouble) -> LongDouble {
        use LongDouble::{Finite, Inf, Nan};
        match (self, rhs) {
            (Nan, _) | (_, Nan) => Nan,
            (Inf { neg: a }, Inf { neg: b }) => {
                if a == b {
                    Inf { neg: a }
                } else {
                    Nan
                }
            }
            (Inf { neg }, _) | (_, Inf { neg }) => Inf { neg },
            (
                Finite {
                    neg: na,
                    mant: ma,
                    exp: ea,
                },
                Finite {
                    neg: nb,
                    mant: mb,
                    exp: eb,
                },
            ) => add_finite((na, ma, ea.into()), (nb, mb, eb.into())),
        }
    }
}

/// Sum of two finite values, each `(neg, mant, exp)`.
fn add_finite(a: (bool, u64, i64), b: (bool, u64, i64)) -> LongDouble {
    if b.1 == 0 {
        if a.1 == 0 {
            // +0 + -0 is +0 when rounding to nearest.
            return LongDouble::zero(a.0 && b.0);
        }
        return canonical(a);
    }
    if a.1 == 0 {
        return canonical(b);
    }
    // Normalise both so bit 63 is set (a subnormal's exponent goes below
    // the format's range; rounding puts it back).
    let norm = |(n, m, e): (bool, u64, i64)| {
        let lz = m.leading_zeros();
        (n, m << lz, e - i64::from(lz))
    };
    let (mut a, mut b) = (norm(a), norm(b));
    if (b.2, b.1) > (a.2, a.1) {
        std::mem::swap(&mut a, &mut b);
    }
    if a.0 != b.0 && a.1 == b.1 && a.2 == b.2 {
        return LongDouble::ZERO;
    }
    // Both as 128-bit fixed point with 63 guard bits below the larger one's
    // significand; what the smaller loses to the shift is kept as a sticky
    // lowest bit. That keeps every rounding decision exact: the rounding
    // points of the result are multiples of 2^61 here, and the jammed value
    // lies strictly between the same two of them as the exact one.
    let d = (a.2 - b.2) as u64;
    let big_a = u128::from(a.1) << 63;
    let wide_b = u128::from(b.1) << 63;
    let big_b = if d == 0 {
        wide_b
    } else if d >= 128 {
        1
    } else {
        (wide_b >> d) | u128::from(wide_b & ((1u128 << d) - 1) != 0)
    };
    let sum = if a.0 == b.0 {
        big_a + big_b
    } else {
        big_a - big_b
    };
    match round_pack(sum, a.2 - 63, false) {
        Packed::Finite { mant, exp } => LongDouble::Finite {
            neg: a.0,
            mant,
            exp,
        },
        // A nonzero sum of multiples of 2^-16445 is at least 2^-16445.
        Packed::Zero => LongDouble::zero(a.0),
        Packed::Overflow => LongDouble::Inf { neg: a.0 },
    }
}

fn canonical((neg, mant, exp): (bool, u64, i64)) -> LongDouble {
    LongDouble::Finite {
        neg,
        mant,
        exp: exp as i32,
    }
}

/// A magnitude rounded to the format.
#[derive(Debug, PartialEq, Eq)]
enum Packed {
    Zero,
    Finite { mant: u64, exp: i32 },
    Overflow,
}

/// Rounds `(m + t) * 2^e` to nearest-even, where `t` is 0 if `!sticky` and
/// some value strictly between 0 and 1 otherwise. With `sticky`, `m` must
/// have at least 66 significant bits, so the rounding point is at least two
/// bits above its lowest bit.
fn round_pack(m: u128, e: i64, sticky: bool) -> Packed {
    if m == 0 {
        return Packed::Zero;
    }
    let p = i64::from(127 - m.leading_zeros());
    // The value lies in [2^x, 2^(x+1)).
    let x = p + e;
    if x > MAX_EXP {
        return Packed::Overflow;
    }
    if x < MIN_QUANTUM_EXP - 1 {
        // Below half the least subnormal.
        return Packed::Zero;
    }
    let mut q = (x - 63).max(MIN_QUANTUM_EXP);
    let shift = q - e;
    let mant = if shift <= 0 {
        debug_assert!(!sticky);
        (m << (-shift) as u32) as u64
    } else {
        // shift <= 128: at most 64 for a normal result, and for a subnormal
        // one at most p + 1 as x >= -16446.
        let shift = shift as u32;
        let (kept, rem) = if shift >= 128 {
            (0, m)
        } else {
            (m >> shift, m & ((1u128 << shift) - 1))
        };
        let half = 1u128 << (shift - 1);
        let up = rem > half || (rem == half && (sticky || kept & 1 == 1));
        let mut kept = kept + u128::from(up);
        if kept == 1u128 << 64 {
            kept >>= 1;
            q += 1;
        }
        kept as u64
    };
    if mant == 0 {
        return Packed::Zero;
    }
    if q > MAX_EXP - 63 {
        return Packed::Overflow;
    }
    Packed::Finite {
        mant,
        exp: q as i32,
    }
}

/// Rounds the big integer `n * 2^e` (plus a sticky fraction below its
/// lowest bit) via its top 128 bits.
fn round_big(n: &Big, e: i64, sticky: bool) -> Packed {
    let len = n.bit_len();
    if len <= 128 {
        return round_pack(n.low_u128(0), e, sticky);
    }
    let drop = len - 128;
    round_pack(
        n.low_u128(drop),
        e + drop as i64,
        sticky || n.any_bit_below(drop),
    )
}

/// What `strtold` gave, turned into `string2ld`'s answer: overflow to
/// infinity and a nonzero value rounded to zero are refused.
fn finish(neg: bool, packed: Packed) -> Option<LongDouble> {
    match packed {
        Packed::Finite { mant, exp } => Some(LongDouble::Finite { neg, mant, exp }),
        Packed::Zero | Packed::Overflow => None,
    }
}

/// Exponent digits after `e`/`p`: an optional sign and at least one digit,
/// the whole rest of the text. Saturates far beyond any meaningful range.
fn parse_exponent(s: &[u8]) -> Option<i64> {
    let (neg, digits) = match s.first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: i64 = 0;
    for &d in digits {
        v = (v * 10 + i64::from(d - b'0')).min(1 << 40);
    }
    Some(if neg { -v } else { v })
}

/// Splits `digits [. digits]` (or `. digits`) followed by an optional
/// exponent introduced by `exp_char`; at least one digit is required.
/// Returns (integer digits, fraction digits, exponent).
fn split_number(s: &[u8], is_digit: fn(&u8) -> bool, exp_char: u8) -> Option<(&[u8], &[u8], i64)> {
    let int_len = s.iter().take_while(|c| is_digit(c)).count();
    let (int, mut rest) = s.split_at(int_len);
    let mut frac: &[u8] = &[];
    if let Some((b'.', after)) = rest.split_first() {
        let frac_len = after.iter().take_while(|c| is_digit(c)).count();
        (frac, rest) = after.split_at(frac_len);
    }
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    let exp = match rest.split_first() {
        None => 0,
        Some((c, tail)) if c.to_ascii_lowercase() == exp_char => parse_exponent(tail)?,
        Some(_) => return None,
    };
    Some((int, frac, exp))
}

fn parse_dec(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let (int, frac, exp) = split_number(s, u8::is_ascii_digit, b'e')?;
    // The value is `digits * 10^k` over the significant digits.
    let all: Vec<u8> = int.iter().chain(frac).copied().collect();
    let mut k = exp - frac.len() as i64;
    let first = all.iter().position(|&c| c != b'0');
    let Some(first) = first else {
        return Some(LongDouble::zero(neg));
    };
    let last = all.iter().rposition(|&c| c != b'0').unwrap_or(first);
    k += (all.len() - 1 - last) as i64;
    let digits = &all[first..=last];
    let n = digits.len() as i64;
    // 10^(n-1+k) <= value < 10^(n+k). The largest finite value is about
    // 1.19e4932 and half the least subnormal about 1.82e-4951.
    if n - 1 + k >= 4933 || n + k <= -4951 {
        return None;
    }
    let d = Big::from_decimal(digits);
    // 10^k = 5^k * 2^k: the power of two goes to the exponent.
    let packed = if k >= 0 {
        let mut v = d;
        v.mul_pow5(k as u64);
        round_big(&v, k, false)
    } else {
        let mut den = Big::from_u64(1);
        den.mul_pow5((-k) as u64);
        // Enough quotient bits: at least 66.
        let shift = (den.bit_len() + 66).saturating_sub(d.bit_len());
        let (q, rem) = d.shl(shift).div_rem(&den);
        round_big(&q, k - shift as i64, rem)
    };
    finish(neg, packed)
}

fn parse_hex(neg: bool, s: &[u8]) -> Option<LongDouble> {
    let (int, frac, exp) = split_number(s, u8::is_ascii_hexdigit, b'p')?;
    let all: Vec<u8> = int.iter().chain(frac).copied().collect();
    let Some(first) = all.iter().position(|&c| c != b'0') else {
        return Some(LongDouble::zero(neg));
    };
    let h = Big::from_hex(&all[first..]);
    let e = exp - 4 * frac.len() as i64;
    let len = h.bit_len();
    // The value lies in [2^x, 2^(x+1)).
    let x = len as i64 - 1 + e;
    if !(MIN_QUANTUM_EXP - 1..=MAX_EXP).contains(&x) {
        return None;
    }
    if x == MIN_QUANTUM_EXP - 1 {
        // glibc's round_and_return, when denormalising shifts out the whole
        // 64-bit significand, forgets the round bit it was given (the 65th
        // significant bit) and rounds on the rest alone: the result is the
        // least subnormal if any bit other than the 1st and 65th is set,
        // and otherwise zero (refused, as ERANGE). Only hexadecimal input
        // can reach this, as no short decimal is such a binary fraction.
        let mut rest = h.clone();
        rest.clear_bit(len - 1);
        if len >= 65 {
            rest.clear_bit(len - 65);
        }
        return if rest.is_zero() {
            None
        } else {
            Some(LongDouble::Finite {
                neg,
                mant: 1,
                exp: MIN_QUANTUM_EXP as i32,
            })
        };
    }
    finish(neg, round_big(&h, e, false))
}

/// Unsigned big integer, little-endian 32-bit limbs, no high zero limbs.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Big(Vec<u32>);

impl Big {
    fn from_u64(v: u64) -> Big {
        let mut b = Big(vec![v as u32, (v >> 32) as u32]);
        b.trim();
        b
    }

    fn from_decimal(digits: &[u8]) -> Big {
        let mut b = Big(Vec::with_capacity(digits.len() / 9 + 1));
        for chunk in digits.chunks(9) {
            let v = chunk
                .iter()
                .fold(0u32, |acc, &c| acc * 10 + u32::from(c - b'0'));
            b.mul_add_small(10u32.pow(chunk.len() as u32), v);
        }
        b
    }

    fn from_hex(digits: &[u8]) -> Big {
        let mut limbs = Vec::with_capacity(digits.len() / 8 + 1);
        for chunk in digits.rchunks(8) {
            let v = chunk.iter().fold(0u32, |acc, &c| {
                let d = (c as char).to_digit(16).unwrap_or(0);
                (acc << 4) | d
            });
            limbs.push(v);
        }
        let mut b = Big(limbs);
        b.trim();
        b
    }

    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn is_zero(&self) -> bool {
        self.0.is_empty()
    }

    fn bit_len(&self) -> u64 {
        match self.0.last() {
            None => 0,
            Some(&top) => 32 * self.0.len() as u64 - u64::from(top.leading_zeros()),
        }
    }

    /// self = self * m + a.
    fn mul_add_small(&mut self, m: u32, a: u32) {
        let mut carry = u64::from(a);
        for limb in &mut self.0 {
            let v = u64::from(*limb) * u64::from(m) + carry;
            *limb = v as u32;
            carry = v >> 32;
        }
        if carry != 0 {
            self.0.push(carry as u32);
        }
    }

    /// self *= 5^k.
    fn mul_pow5(&mut self, mut k: u64) {
        // 5^13 is the largest power of five below 2^32.
        while k >= 13 {
            self.mul_add_small(1_220_703_125, 0);
            k -= 13;
        }
        if k > 0 {
            self.mul_add_small(5u32.pow(k as u32), 0);
        }
    }

    fn shl(&self, bits: u64) -> Big {
        if self.is_zero() {
            return Big(Vec::new());
        }
        let (limbs, bits) = ((bits / 32) as usize, (bits % 32) as u32);
        let mut out = vec![0u32; limbs];
        out.reserve(self.0.len() + 1);
        if bits == 0 {
            out.extend_from_slice(&self.0);
        } else {
            let mut carry = 0u32;
            for &l in &self.0 {
                out.push((l << bits) | carry);
                carry = l >> (32 - bits);
            }
            out.push(carry);
        }
        let mut b = Big(out);
        b.trim();
        b
    }

    /// Bits [lo, lo + 128) as a u128.
    fn low_u128(&self, lo: u64) -> u128 {
        let mut v = 0u128;
        for i in (0..128u64).step_by(32) {
            v |= u128::from(self.bits32(lo + i)) << i;
        }
        v
    }

    /// The 32 bits starting at bit `lo`.
    fn bits32(&self, lo: u64) -> u32 {
        let (i, b) = ((lo / 32) as usize, (lo % 32) as u32);
        let limb = |i: usize| u64::from(self.0.get(i).copied().unwrap_or(0));
        let both = limb(i) | (limb(i + 1) << 32);
        (both >> b) as u32
    }

    /// Whether any bit below bit `n` is set.
    fn any_bit_below(&self, n: u64) -> bool {
        let (full, bits) = ((n / 32) as usize, (n % 32) as u32);
        let limbs = &self.0[..full.min(self.0.len())];
        limbs.iter().any(|&l| l != 0)
            || (bits > 0
                && self
                    .0
                    .get(full)
                    .is_some_and(|&l| l & ((1 << bits) - 1) != 0))
    }

    fn clear_bit(&mut self, n: u64) {
        if let Some(l) = self.0.get_mut((n / 32) as usize) {
            *l &= !(1 << (n % 32));
        }
        self.trim();
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }

    /// In place self /= d, returning the remainder.
    fn div_small(&mut self, d: u32) -> u32 {
        let mut rem = 0u64;
        for limb in self.0.iter_mut().rev() {
            let cur = (rem << 32) | u64::from(*limb);
            *limb = (cur / u64::from(d)) as u32;
            rem = cur % u64::from(d);
        }
        self.trim();
        rem as u32
    }

    /// Quotient and whether the remainder is nonzero (Knuth's algorithm D).
    fn div_rem(&self, v: &Big) -> (Big, bool) {
        assert!(!v.is_zero(), "division by zero");
        if self.cmp(v) == Ordering::Less {
            return (Big(Vec::new()), !self.is_zero());
        }
        if v.0.len() == 1 {
            let mut q = self.clone();
            let r = q.div_small(v.0[0]);
            return (q, r != 0);
        }
        const B: u64 = 1 << 32;
        let s = v.0[v.0.len() - 1].leading_zeros();
        let vn = v.shl(u64::from(s)).0;
        let mut un = self.shl(u64::from(s)).0;
        un.resize(self.0.len() + 1, 0);
        let n = vn.len();
        let m = self.0.len() - n;
        let mut q = vec![0u32; m + 1];
        let (v1, v2) = (u64::from(vn[n - 1]), u64::from(vn[n - 2]));
        for j in (0..=m).rev() {
            let num = (u64::from(un[j + n]) << 32) | u64::from(un[j + n - 1]);
            let mut qhat = num / v1;
            let mut rhat = num % v1;
            while qhat >= B || qhat * v2 > ((rhat << 32) | u64::from(un[j + n - 2])) {
                qhat -= 1;
                rhat += v1;
                if rhat >= B {
                    break;
                }
            }
            // un[j..=j+n] -= qhat * vn.
            let mut borrow: i64 = 0;
            for i in 0..n {
                let p = qhat * u64::from(vn[i]);
                let t = i64::from(un[i + j]) - borrow - (p & 0xFFFF_FFFF) as i64;
                un[i + j] = t as u32;
                borrow = (p >> 32) as i64 - (t >> 32);
            }
            let t = i64::from(un[j + n]) - borrow;
            un[j + n] = t as u32;
            q[j] = qhat as u32;
            if t < 0 {
                // qhat was one too many: add vn back.
                q[j] = q[j].wrapping_sub(1);
                let mut carry = 0u64;
                for i in 0..n {
                    let s = u64::from(un[i + j]) + u64::from(vn[i]) + carry;
                    un[i + j] = s as u32;
                    carry = s >> 32;
                }
                un[j + n] = un[j + n].wrapping_add(carry as u32);
            }
        }
        let rem_nonzero = un[..n].iter().any(|&l| l != 0);
        let mut q = Big(q);
        q.trim();
        (q, rem_nonzero)
    }

    fn to_decimal(&self) -> String {
        if self.is_zero() {
            return "0".to_string();
        }
        let mut chunks = Vec::with_capacity(self.0.len() * 32 / 29 + 1);
        let mut v = self.clone();
        while !v.is_zero() {
            chunks.push(v.div_small(1_000_000_000));
        }
        let mut s = chunks.pop().map(|c| c.to_string()).unwrap_or_default();
        for c in chunks.iter().rev() {
            s.push_str(&format!("{c:09}"));
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::{Big, LongDouble};

    fn parse(s: &str) -> Option<LongDouble> {
        LongDouble::parse(s.as_bytes())
    }

    /// Redis's INCRBYFLOAT on a key holding `a` (or none) by `b`: the reply
    /// text, `None` for "not a valid float" and `Some("NaN/Inf")` for the
    /// NaN-or-infinity error.
    fn incr(a: Option<&str>, b: &str) -> Option<String> {
        let old = match a {
            Some(a) => parse(a)?,
            None => LongDouble::ZERO,
        };
        let sum = old + parse(b)?;
        Some(if sum.is_finite() {
            sum.to_human()
        } else {
            "NaN/Inf".to_string()
        })
    }

    /// Cases checked against redis-server 7.0.15 on x86_64 (glibc 2.36):
    /// stored value (or none), increment, reply ("ERR" for "value is not a
    /// valid float", "NaN/Inf" for "increment would produce NaN or
    /// Infinity").
    const REDIS: &[(Option<&str>, &str, &str)] = &[
        (None, "0.1", "0.1"),
        (Some("0.1"), "0.2", "0.3"),
        (Some("10"), "1e-17", "10.00000000000000001"),
        (
            Some("0"),
            "123456789.123456789",
            "123456789.12345678899873747",
        ),
        (Some("0"), "9007199254740993", "9007199254740993"),
        (Some("12345678901234567890"), "-1e3", "12345678901234566890"),
        (Some("10.5"), "0.1", "10.6"),
        (Some("0"), "0x10", "16"),
        (Some("0"), "0x1.8p3", "12"),
        (Some("0"), "0x.8", "0.5"),
        (Some("0"), "1.5e-5", "0.000015"),
        (Some("0"), "-0.0", "0"),
        (Some("0"), "-1e-20", "0"),
        (Some("0"), "5.0e3", "5000"),
        (Some("0"), ".5", "0.5"),
        (Some("0"), "5.", "5"),
        (Some("0"), "+1", "1"),
        // Ties at the 17th decimal go to even.
        (Some("0"), "3.814697265625e-6", "0.00000381469726562"),
        (Some("0"), "1.1444091796875e-5", "0.00001144409179688"),
        (Some("0"), "0e99999999999999999999", "0"),
        (Some("0"), "1e-4950", "0"),
        (Some("0"), "2e-4951", "0"),
        (Some("0"), "0x1p-16445", "0"),
        (Some("0"), "0x1.8p-16446", "0"),
        (Some("0"), "0x1.0000000000000002p-16446", "0"),
        (Some("0"), "0x1.00000000000000000001p-16446", "0"),
        (Some("0"), "inf", "NaN/Inf"),
        (Some("0"), "-inf", "NaN/Inf"),
        (Some("0"), "INFINITY", "NaN/Inf"),
        (Some("0"), "nan", "ERR"),
        (Some("0"), " 1", "ERR"),
        (Some("0"), "1 ", "ERR"),
        (Some("0"), "1e", "ERR"),
        (Some("0"), "0x", "ERR"),
        (Some("0"), "0X", "ERR"),
        (Some("0"), "0x1p", "ERR"),
        (Some("0"), "infinit", "ERR"),
        (Some("0"), "1e5000", "ERR"),
        (Some("0"), "1e-5000", "ERR"),
        (Some("0"), "1.18973149535723176508e+4932", "ERR"),
        (Some("0"), "0x1p-16446", "ERR"),
        (Some("0"), "0x1.ffffp-16447", "ERR"),
        (Some("0"), "0x0.0000000000000001p-16382", "ERR"),
        // glibc drops the round bit when denormalising this one to nothing.
        (Some("0"), "0x1.0000000000000001p-16446", "ERR"),
    ];

    #[test]
    fn matches_redis() {
        for &(a, b, want) in REDIS {
            let got = incr(a, b).unwrap_or_else(|| "ERR".to_string());
            assert_eq!(got, want, "{a:?} + {b:?}");
        }
    }

    #[test]
    fn huge_values_print_every_digit() {
        let want_1e400 = "10000000000000000000281880683947586514586453433629052038625910693539685534008629862039363994848324160522094053927317616200295822777259255734023828976593340661017797447434546173917862448116674971723778943824391593338047470675026246684401359237513603830343735485505244955964979021825038280091068414947402456898653040951017512658092615827588920183472511643316591362664138176309734806343732497430221946880";
        assert_eq!(incr(Some("0"), "1e400").unwrap(), want_1e400);
        let want_2e308 = "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096";
        assert_eq!(incr(Some("1e308"), "1e308").unwrap(), want_2e308);
        // The largest finite value: 4933 digits, starting like this.
        let max = incr(Some("0"), "1.18973149535723176502e+4932").unwrap();
        assert_eq!(max.len(), 4933);
        assert!(max.starts_with("118973149535723176502126385303097020516906"));
        assert!(max.ends_with("86811989770240"));
        assert_eq!(
            incr(Some("1.18973149535723176502e+4932"), "1e4913").unwrap(),
            "NaN/Inf"
        );
    }

    #[test]
    fn parse_grammar() {
        for ok in [
            "0",
            "-0",
            "00",
            "0.",
            ".0",
            "1.e5",
            "1E+5",
            "1e-05",
            "+.5",
            "-5.",
            "0x0",
            "0x0.",
            "0X1P3",
            "0x.e5",
            "0xA.8p-1",
            "Inf",
            "-iNfInItY",
            "0e5",
        ] {
            assert!(parse(ok).is_some(), "{ok:?}");
        }
        for bad in [
            "",
            ".",
            "-",
            "+",
            "e5",
            ".e5",
            "1e+",
            "1e-",
            "1x",
            "--1",
            "+-1",
            "0x.",
            "0x.p1",
            "0xp1",
            "0x1p+",
            "1.2.3",
            "1e5.0",
            "nan(1)",
            "-nan",
            "in",
            "infinityy",
            "1\u{0}",
            "\t1",
            "1\n",
            "١",
        ] {
            assert_eq!(parse(bad), None, "{bad:?}");
        }
        let long = format!("0.{}", "1".repeat(5117));
        assert_eq!(
            parse(&long).map(|v| v.to_human()).as_deref(),
            Some("0.11111111111111111")
        );
        assert_eq!(parse(&format!("{long}1")), None, "5120 characters");
        assert_eq!(LongDouble::parse(b"\xff"), None);
    }

    #[test]
    fn parse_values() {
        let f = |neg, mant, exp| Some(LongDouble::Finite { neg, mant, exp });
        assert_eq!(parse("1"), f(false, 1 << 63, -63));
        assert_eq!(parse("-0x1.8p3"), f(true, 3 << 62, -62 + 2));
        // 0.1 rounds up in the 64th bit: 0xCCCCCCCCCCCCCCCD * 2^-67.
        assert_eq!(parse("0.1"), f(false, 0xCCCC_CCCC_CCCC_CCCD, -67));
        // The least subnormal, and a value just over half of it.
        assert_eq!(parse("0x1p-16445"), f(false, 1, -16445));
        assert_eq!(parse("1.9e-4951"), f(false, 1, -16445));
        // Halfway between 1 and the next value: to even, or up when more
        // digits follow.
        assert_eq!(parse("0x1.0000000000000001"), f(false, 1 << 63, -63));
        assert_eq!(
            parse("0x1.00000000000000010000001"),
            f(false, (1 << 63) + 1, -63)
        );
        let half_ulp_above_one =
            "1.000000000000000000054210108624275221700372640043497085571289062";
        assert_eq!(parse(half_ulp_above_one), f(false, 1 << 63, -63));
        assert_eq!(
            parse(&format!("{half_ulp_above_one}51")),
            f(false, (1 << 63) + 1, -63)
        );
        // The largest finite value, and the first text that overflows.
        let max = f(false, u64::MAX, 16320);
        assert_eq!(parse("0x1.fffffffffffffffep16383"), max);
        assert_eq!(parse("0x1.fffffffffffffffefp16383"), max);
        assert_eq!(parse("0x1.ffffffffffffffffp16383"), None);
    }

    #[test]
    fn addition_rounds_to_nearest_even() {
        let one = parse("1").unwrap();
        let ulp = parse("0x1p-63").unwrap();
        let half_ulp = parse("0x1p-64").unwrap();
        let f = |neg, mant, exp| LongDouble::Finite { neg, mant, exp };
        assert_eq!(one + half_ulp, one);
        assert_eq!(one + ulp + half_ulp, f(false, (1 << 63) + 2, -63));
        assert_eq!(
            one + parse("0x1.0000001p-64").unwrap(),
            f(false, (1 << 63) + 1, -63)
        );
        // Just below a power of two the spacing halves.
        assert_eq!(one + parse("-0x1p-65").unwrap(), one);
        assert_eq!(
            one + parse("-0x1.0000001p-65").unwrap(),
            f(false, u64::MAX, -64)
        );
        assert_eq!(one + parse("-1e-4000").unwrap(), one);
        assert_eq!(one + parse("-1").unwrap(), LongDouble::ZERO, "x - x is +0");
        assert_eq!(
            parse("-0").unwrap() + parse("-0").unwrap(),
            f(true, 0, -16445)
        );
        let inf = LongDouble::Inf { neg: false };
        assert_eq!(inf + one, inf);
        assert_eq!(inf + LongDouble::Inf { neg: true }, LongDouble::Nan);
        let max = parse("0x1.fffffffffffffffep16383").unwrap();
        assert_eq!(max + parse("0x1p16319").unwrap(), inf);
        assert_eq!(max + parse("0x0.fffp16319").unwrap(), max);
        // Subnormals add exactly.
        let tiny = parse("0x1p-16445").unwrap();
        assert_eq!(tiny + tiny, f(false, 2, -16445));
    }

    #[test]
    fn human_format() {
        let h = |s: &str| parse(s).unwrap().to_human();
        assert_eq!(h("0"), "0");
        assert_eq!(h("-0"), "0");
        assert_eq!(h("-1.5"), "-1.5");
        assert_eq!(h("0.3"), "0.3");
        assert_eq!(h("1e-17"), "0.00000000000000001");
        assert_eq!(h("4e-18"), "0");
        assert_eq!(h("6e-18"), "0.00000000000000001");
        assert_eq!(h("-6e-18"), "-0.00000000000000001");
        assert_eq!(h("0.999999999999999999"), "1");
        assert_eq!(h("-0.999999999999999999"), "-1");
        assert_eq!(h("18446744073709551615"), "18446744073709551615");
        assert_eq!(h("1e20"), "100000000000000000000");
        assert_eq!(h("-inf"), "-inf");
    }

    #[test]
    fn big_division() {
        let a = Big::from_decimal(b"123456789012345678901234567890123456789");
        let b = Big::from_decimal(b"9876543210987654321");
        let (q, rem) = a.div_rem(&b);
        assert_eq!(q.to_decimal(), "12499999886093750001");
        assert!(rem);
        let (q, rem) = Big::from_decimal(b"121932631137021795223746380111126352690")
            .div_rem(&Big::from_decimal(b"12345678901234567890"));
        assert_eq!(q.to_decimal(), "9876543210987654321");
        assert!(!rem);
    }
}
