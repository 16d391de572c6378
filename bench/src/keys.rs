//! Key numbers: which key each request touches.
//!
//! A [`KeyGen`] turns a [`KeyPattern`] over `min..=max` into a stream of key
//! numbers; the request builder prefixes them with `--key-prefix`. Every
//! connection has its own `KeyGen` (own random state), except that the
//! sequential counter is shared by all connections of a run, so that N
//! requests over a key range of N keys touch every key exactly once (the
//! fill step of the scenarios relies on that).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::Serialize;

/// How key numbers are drawn from `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum KeyPattern {
    /// Every key equally likely.
    Uniform,
    /// `min, min+1, ..., max, min, ...`, one counter shared by all
    /// connections.
    Sequential,
    /// Normal distribution with the mean in the middle of the range and the
    /// standard deviation `stddev` times the range's width; draws outside the
    /// range are drawn again.
    Gaussian { stddev: f64 },
    /// Zipf over ranks `1..=N` with exponent `exponent`; rank 1 (the hottest
    /// key) is `min`, rank 2 is `min + 1`, and so on.
    Zipf { exponent: f64 },
}

/// xorshift64*: fast, small, good enough for picking keys and commands.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator whose stream depends on `seed` (0 is allowed).
    pub fn new(seed: u64) -> Self {
        // splitmix64 of the seed, so nearby seeds give unrelated streams and
        // the state is never 0.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        Rng(z | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, 1)`.
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// Uniform in `lo..=hi` (needs `lo <= hi`). Uses the multiply-shift
    /// reduction, whose bias is below 2^-64 per value.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        let span = u128::from(hi - lo) + 1;
        lo + ((u128::from(self.next_u64()) * span) >> 64) as u64
    }

    /// Standard normal (Box-Muller; one of the pair is thrown away).
    pub fn next_gaussian(&mut self) -> f64 {
        let u1 = 1.0 - self.next_f64(); // (0, 1], so ln is finite
        let u2 = self.next_f64();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

/// Zipf sampler by rejection-inversion (Hörmann and Derflinger, "Rejection-
/// inversion to generate variates from monotone discrete distributions",
/// 1996): O(1) memory and expected O(1) time per draw for any number of
/// ranks, so a Zipf over 100 M keys costs nothing to set up.
#[derive(Debug, Clone)]
pub struct Zipf {
    n: f64,
    s: f64,
    h_integral_x1: f64,
    h_integral_n: f64,
    threshold: f64,
}

impl Zipf {
    /// Ranks `1..=n` (`n >= 1`), probability of rank k proportional to
    /// `k^-exponent` (`exponent > 0`).
    pub fn new(n: u64, exponent: f64) -> Self {
        let n = n.max(1) as f64;
        let s = exponent;
        let mut z = Zipf {
            n,
            s,
            h_integral_x1: 0.0,
            h_integral_n: 0.0,
            threshold: 0.0,
        };
        z.h_integral_x1 = z.h_integral(1.5) - 1.0;
        z.h_integral_n = z.h_integral(n + 0.5);
        z.threshold = 2.0 - z.h_integral_inverse(z.h_integral(2.5) - z.h(2.0));
        z
    }

    /// A rank in `1..=n`.
    pub fn sample(&self, rng: &mut Rng) -> u64 {
        loop {
            let u = self.h_integral_n + rng.next_f64() * (self.h_integral_x1 - self.h_integral_n);
            let x = self.h_integral_inverse(u);
            let k = (x + 0.5).floor().clamp(1.0, self.n);
            if k - x <= self.threshold || u >= self.h_integral(k + 0.5) - self.h(k) {
                return k as u64;
            }
        }
    }

    fn h(&self, x: f64) -> f64 {
        (-self.s * x.ln()).exp()
    }

    /// Integral of `h` from 1 to x, shifted: `(x^(1-s) - 1) / (1 - s)`, or
    /// `ln x` when `s == 1`.
    fn h_integral(&self, x: f64) -> f64 {
        let log_x = x.ln();
        expm1_over_x((1.0 - self.s) * log_x) * log_x
    }

    fn h_integral_inverse(&self, x: f64) -> f64 {
        let t = (x * (1.0 - self.s)).max(-1.0);
        (ln1p_over_x(t) * x).exp()
    }
}

/// `ln(1 + x) / x`, continuous at 0.
fn ln1p_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.ln_1p() / x
    } else {
        1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))
    }
}

/// `(e^x - 1) / x`, continuous at 0.
fn expm1_over_x(x: f64) -> f64 {
    if x.abs() > 1e-8 {
        x.exp_m1() / x
    } else {
        1.0 + x * 0.5 * (1.0 + x / 3.0 * (1.0 + 0.25 * x))
    }
}

/// Draws key numbers in `min..=max` by a [`KeyPattern`].
#[derive(Debug, Clone)]
pub struct KeyGen {
    min: u64,
    max: u64,
    draw: Draw,
}

#[derive(Debug, Clone)]
enum Draw {
    Uniform,
    Sequential(Arc<AtomicU64>),
    Gaussian { mean: f64, stddev: f64 },
    Zipf(Zipf),
}

impl KeyGen {
    /// `sequential` is the counter shared by every connection of a run (see
    /// [`KeyGen::shared_counter`]); other patterns ignore it. Needs
    /// `min <= max`.
    pub fn new(pattern: KeyPattern, min: u64, max: u64, sequential: Arc<AtomicU64>) -> Self {
        let width = (max - min) as f64 + 1.0;
        let draw = match pattern {
            KeyPattern::Uniform => Draw::Uniform,
            KeyPattern::Sequential => Draw::Sequential(sequential),
            KeyPattern::Gaussian { stddev } => Draw::Gaussian {
                // Middle of the range, in key-number space.
                mean: min as f64 + (max - min) as f64 / 2.0,
                stddev: (stddev * width).max(f64::MIN_POSITIVE),
            },
            KeyPattern::Zipf { exponent } => Draw::Zipf(Zipf::new(max - min + 1, exponent)),
        };
        KeyGen { min, max, draw }
    }

    /// A fresh sequential counter, starting at the range's first key.
    pub fn shared_counter() -> Arc<AtomicU64> {
        Arc::new(AtomicU64::new(0))
    }

    pub fn next(&self, rng: &mut Rng) -> u64 {
        match &self.draw {
            Draw::Uniform => rng.range(self.min, self.max),
            Draw::Sequential(counter) => {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                let span = u128::from(self.max - self.min) + 1;
                self.min + (u128::from(n) % span) as u64
            }
            Draw::Gaussian { mean, stddev } => {
                // Redraw outside the range; after many misses (a stddev far
                // wider than the range) fall back to clamping.
                for _ in 0..64 {
                    let x = (mean + stddev * rng.next_gaussian()).round();
                    if x >= self.min as f64 && x <= self.max as f64 {
                        return x as u64;
                    }
                }
                let x = (mean + stddev * rng.next_gaussian()).round();
                x.clamp(self.min as f64, self.max as f64) as u64
            }
            Draw::Zipf(z) => self.min + (z.sample(rng) - 1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gen(pattern: KeyPattern, min: u64, max: u64) -> KeyGen {
        KeyGen::new(pattern, min, max, KeyGen::shared_counter())
    }

    #[test]
    fn every_pattern_stays_in_range() {
        let patterns = [
            KeyPattern::Uniform,
            KeyPattern::Sequential,
            KeyPattern::Gaussian { stddev: 0.2 },
            KeyPattern::Gaussian { stddev: 100.0 },
            KeyPattern::Zipf { exponent: 0.99 },
            KeyPattern::Zipf { exponent: 1.0 },
            KeyPattern::Zipf { exponent: 2.5 },
        ];
        let mut rng = Rng::new(1);
        for p in patterns {
            for (min, max) in [(5, 9), (0, 0), (1_000, 1_000_000)] {
                let g = gen(p, min, max);
                for _ in 0..20_000 {
                    let k = g.next(&mut rng);
                    assert!(
                        (min..=max).contains(&k),
                        "{p:?} gave {k} outside {min}..={max}"
                    );
                }
            }
        }
    }

    #[test]
    fn uniform_covers_the_range_evenly() {
        let g = gen(KeyPattern::Uniform, 10, 19);
        let mut rng = Rng::new(7);
        let mut counts = [0u32; 10];
        for _ in 0..100_000 {
            counts[(g.next(&mut rng) - 10) as usize] += 1;
        }
        for c in counts {
            assert!((9_000..11_000).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn sequential_walks_the_range_and_wraps() {
        let g = gen(KeyPattern::Sequential, 3, 6);
        let mut rng = Rng::new(0);
        let got: Vec<u64> = (0..10).map(|_| g.next(&mut rng)).collect();
        assert_eq!(got, [3, 4, 5, 6, 3, 4, 5, 6, 3, 4]);
    }

    #[test]
    fn sequential_counter_is_shared_between_connections() {
        let counter = KeyGen::shared_counter();
        let a = KeyGen::new(KeyPattern::Sequential, 0, 99, counter.clone());
        let b = KeyGen::new(KeyPattern::Sequential, 0, 99, counter);
        let mut rng = Rng::new(0);
        let mut seen = Vec::new();
        for _ in 0..50 {
            seen.push(a.next(&mut rng));
            seen.push(b.next(&mut rng));
        }
        seen.sort_unstable();
        assert_eq!(seen, (0..100).collect::<Vec<_>>(), "every key exactly once");
    }

    #[test]
    fn sequential_handles_the_full_u64_range() {
        let counter = Arc::new(AtomicU64::new(u64::MAX));
        let g = KeyGen::new(KeyPattern::Sequential, 0, u64::MAX, counter);
        let mut rng = Rng::new(0);
        assert_eq!(g.next(&mut rng), u64::MAX);
        assert_eq!(g.next(&mut rng), 0);
    }

    #[test]
    fn gaussian_is_centred_with_the_asked_spread() {
        // Range 0..=9999, stddev 0.1 of the width = 1000 keys.
        let g = gen(KeyPattern::Gaussian { stddev: 0.1 }, 0, 9_999);
        let mut rng = Rng::new(3);
        let n = 200_000;
        let xs: Vec<f64> = (0..n).map(|_| g.next(&mut rng) as f64).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!((mean - 4_999.5).abs() < 20.0, "mean {mean}");
        assert!((var.sqrt() - 1_000.0).abs() < 20.0, "stddev {}", var.sqrt());
        // About 68% within one stddev.
        let within = xs
            .iter()
            .filter(|x| (*x - 4_999.5).abs() <= 1_000.0)
            .count();
        let frac = within as f64 / n as f64;
        assert!((0.66..0.70).contains(&frac), "{frac}");
    }

    #[test]
    fn zipf_matches_its_probabilities() {
        // P(rank k) = k^-s / H(n, s).
        for s in [0.99, 1.0, 1.5] {
            let n = 1_000u64;
            let g = gen(KeyPattern::Zipf { exponent: s }, 100, 100 + n - 1);
            let mut rng = Rng::new(11);
            let draws = 400_000;
            let mut counts = vec![0u32; n as usize];
            for _ in 0..draws {
                counts[(g.next(&mut rng) - 100) as usize] += 1;
            }
            let h: f64 = (1..=n).map(|k| (k as f64).powf(-s)).sum();
            for k in [1u64, 2, 3, 10, 100] {
                let expect = (k as f64).powf(-s) / h * draws as f64;
                let got = f64::from(counts[(k - 1) as usize]);
                // 5 standard deviations of a binomial count, at least 1%.
                let tol = (5.0 * expect.sqrt()).max(expect * 0.01);
                assert!(
                    (got - expect).abs() < tol,
                    "s={s} rank {k}: got {got}, expected {expect:.0}"
                );
            }
            // Monotone on average: the first 10 ranks outdraw the next 10.
            let head: u32 = counts[..10].iter().sum();
            let next: u32 = counts[10..20].iter().sum();
            assert!(head > 2 * next, "s={s}: {head} vs {next}");
        }
    }

    #[test]
    fn zipf_over_a_huge_range_is_cheap_and_skewed() {
        let g = gen(KeyPattern::Zipf { exponent: 0.99 }, 0, 1_000_000_000);
        let mut rng = Rng::new(5);
        let hot = (0..100_000).filter(|_| g.next(&mut rng) < 1_000).count();
        // Over a billion keys, the first thousand get roughly a third of the
        // draws (H(1e3)/H(1e9) ~ 0.35 for s = 0.99).
        assert!((25_000..45_000).contains(&hot), "{hot}");
    }

    #[test]
    fn rng_range_is_inclusive_and_unbiased_at_the_ends() {
        let mut rng = Rng::new(9);
        let mut lo = 0;
        let mut hi = 0;
        for _ in 0..30_000 {
            match rng.range(0, 2) {
                0 => lo += 1,
                2 => hi += 1,
                1 => {}
                v => panic!("out of range: {v}"),
            }
        }
        assert!((9_000..11_000).contains(&lo) && (9_000..11_000).contains(&hi));
        assert_eq!(rng.range(u64::MAX, u64::MAX), u64::MAX);
        let _ = rng.range(0, u64::MAX);
    }
}
