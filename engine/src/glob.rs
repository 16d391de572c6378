//! Redis's glob matching (`stringmatchlen` in util.c): `*`, `?`, `[...]`
//! with ranges and `^` negation, and `\` escapes. Used by KEYS, SCAN MATCH
//! and CONFIG GET.
//!
//! # Bounded time
//!
//! The pattern is a client's: a matcher that backtracks recursively on `*`
//! takes time exponential in the number of stars (CVE-2022-36021: `KEYS`
//! with `a*` twenty times then `b` against a key of forty `a`s never ends).
//! Redis 7.0.9 closed it by keeping the recursion and giving up on every
//! enclosing `*` once one `*` has tried every rest of the string
//! ("skipLongerMatches"). This module uses the other classic answer, a
//! loop with a single backtrack point:
//!
//! - Every pattern element other than `*` (a byte, `?`, an escape, a whole
//!   `[...]` class, even an unterminated one) consumes exactly one byte of
//!   the string, and where an element ends in the pattern never depends on
//!   the string. So when the matcher reaches a new `*`, it can forget the
//!   previous one: whatever a longer match of the earlier `*` would let the
//!   rest match, the later `*` can absorb instead. Only the latest `*` and
//!   the string position it was tried at are kept.
//! - On a mismatch the latest `*` takes one byte more and the pattern
//!   restarts just after it. Each restart moves that position forward, so
//!   each `*` restarts at most `n` times and a pass costs at most `m`
//!   pattern bytes: `O(n * m)` time for a string of `n` bytes and a pattern
//!   of `m`, `O(1)` memory, and no recursion (no stack depth a client can
//!   choose on a worker thread). skipLongerMatches is also polynomial, but
//!   keeps a recursion as deep as the pattern has stars, which is why Redis
//!   also caps it at 1000 levels.
//!
//! # Redis's edge cases, kept
//!
//! - An empty string matches only the empty pattern (`*` does not match
//!   it; KEYS and SCAN treat a lone `*` as "everything" themselves).
//! - An unterminated `[` class runs to the end of the pattern; a `[` or
//!   `[^` at the very end is a class with no members.
//! - In a class, `\x` is `x` compared exactly (even with `nocase`), a `]`
//!   right after `[` or `[^` ends the class (empty), `x-y` is a range in
//!   either order even when `y` is `]` (`[a-]` does not end at that `]`),
//!   and ranges compare bytes as C's signed `char` does, so a range from
//!   `a` to byte 0xff is the range -1..=97.
//! - A `\` at the very end of the pattern is a literal backslash.
//! - `nocase` folds ASCII only (C's `tolower` in the C locale).
//! - Redis stops its recursion at 1000 nested `*`: a pattern whose 1001st
//!   group of stars is followed by more pattern matches nothing (non-empty).
//!   [`matches`] keeps that answer, without recursing.

/// Nested `*` levels Redis's recursive matcher follows before giving up.
const REDIS_MAX_NESTING: usize = 1000;

/// Whether `s` matches `pattern`. `nocase` folds ASCII case.
pub fn matches(pattern: &[u8], s: &[u8], nocase: bool) -> bool {
    // Redis's loop runs while both are non-empty; an empty string only
    // meets an empty pattern.
    if s.is_empty() {
        return pattern.is_empty();
    }
    if beyond_redis_nesting(pattern) {
        return false;
    }
    let mut p = pattern;
    let mut i = 0;
    // The latest `*`: the pattern after it, and the string position it
    // was last tried at (the `*` has eaten s[star_from..that position]).
    let mut star: Option<(&[u8], usize)> = None;
    loop {
        let Some(&c) = s.get(i) else {
            // String consumed: only stars may be left.
            return p.iter().all(|&b| b == b'*');
        };
        if let [b'*', ..] = p {
            let rest = skip_stars(p);
            if rest.is_empty() {
                return true;
            }
            star = Some((rest, i));
            p = rest;
            continue;
        }
        if !p.is_empty() {
            let (matched, rest) = element(p, c, nocase);
            if matched {
                p = rest;
                i += 1;
                continue;
            }
        }
        // Mismatch, or pattern consumed with string left: the latest `*`
        // takes one more byte, or there is no match.
        let Some((after_star, tried_at)) = star else {
            return false;
        };
        star = Some((after_star, tried_at + 1));
        p = after_star;
        i = tried_at + 1;
    }
}

fn skip_stars(mut p: &[u8]) -> &[u8] {
    while let [b'*', rest @ ..] = p {
        p = rest;
    }
    p
}

fn eq(a: u8, b: u8, nocase: bool) -> bool {
    if nocase {
        a.eq_ignore_ascii_case(&b)
    } else {
        a == b
    }
}

/// Matches the byte `c` against the first element of `p` (non-empty, not
/// `*`): whether it matched, and the pattern after that element.
fn element(p: &[u8], c: u8, nocase: bool) -> (bool, &[u8]) {
    match p {
        [b'?', rest @ ..] => (true, rest),
        [b'[', rest @ ..] => class(rest, c, nocase),
        [b'\\', x, rest @ ..] => (eq(*x, c, nocase), rest),
        [x, rest @ ..] => (eq(*x, c, nocase), rest),
        [] => (false, p),
    }
}

/// A `[...]` class; `p` starts just after the `[`. Returns whether `c` is
/// in it and the pattern after its `]` (empty if it has none).
fn class(mut p: &[u8], c: u8, nocase: bool) -> (bool, &[u8]) {
    let not = p.first() == Some(&b'^');
    if not {
        p = p.get(1..).unwrap_or_default();
    }
    let mut matched = false;
    loop {
        match p {
            // Unterminated: the class takes the rest of the pattern.
            [] => return (matched != not, p),
            [b'\\', x, rest @ ..] => {
                // Escaped members compare exactly, even with nocase (Redis).
                matched |= *x == c;
                p = rest;
            }
            [b']', rest @ ..] => return (matched != not, rest),
            [lo, b'-', hi, rest @ ..] => {
                matched |= in_range(*lo, *hi, c, nocase);
                p = rest;
            }
            [x, rest @ ..] => {
                matched |= eq(*x, c, nocase);
                p = rest;
            }
        }
    }
}

/// Redis's range test: bytes as C's signed `char` (x86, where Redis's
/// reference build runs), bounds in either order, ASCII folded on request.
fn in_range(lo: u8, hi: u8, c: u8, nocase: bool) -> bool {
    let fold = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
    let signed = |b: u8| i8::from_ne_bytes([b]);
    let (mut lo, mut hi) = (signed(lo), signed(hi));
    if lo > hi {
        std::mem::swap(&mut lo, &mut hi);
    }
    let (lo, hi) = (signed(fold(lo as u8)), signed(fold(hi as u8)));
    let c = signed(fold(c));
    lo <= c && c <= hi
}

/// Whether Redis's recursion would give up on `pattern`: more than
/// [`REDIS_MAX_NESTING`] groups of `*` followed by more pattern.
fn beyond_redis_nesting(pattern: &[u8]) -> bool {
    if pattern.iter().filter(|&&b| b == b'*').count() <= REDIS_MAX_NESTING {
        return false;
    }
    let mut groups = 0;
    let mut p = pattern;
    while !p.is_empty() {
        if let [b'*', ..] = p {
            p = skip_stars(p);
            if !p.is_empty() {
                groups += 1;
                if groups > REDIS_MAX_NESTING {
                    return true;
                }
            }
        } else {
            // Where an element ends does not depend on the byte matched.
            p = element(p, 0, false).1;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::matches;
    use proptest::prelude::*;
    use std::time::{Duration, Instant};

    /// The straightforward matcher, kept as the reference: a transcription
    /// of Redis's recursive `stringmatchlen` without skipLongerMatches
    /// (exponential on purpose, so only small inputs), with its nesting cap.
    fn reference(p: &[u8], s: &[u8], nocase: bool) -> bool {
        reference_at(p, s, nocase, 0)
    }

    fn reference_at(mut p: &[u8], mut s: &[u8], nocase: bool, nesting: usize) -> bool {
        if nesting > 1000 {
            return false;
        }
        let lower = |b: u8| if nocase { b.to_ascii_lowercase() } else { b };
        while !p.is_empty() && !s.is_empty() {
            match p[0] {
                b'*' => {
                    while p.len() > 1 && p[1] == b'*' {
                        p = &p[1..];
                    }
                    if p.len() == 1 {
                        return true;
                    }
                    while !s.is_empty() {
                        if reference_at(&p[1..], s, nocase, nesting + 1) {
                            return true;
                        }
                        s = &s[1..];
                    }
                    return false;
                }
                b'?' => s = &s[1..],
                b'[' => {
                    p = &p[1..];
                    let not = p.first() == Some(&b'^');
                    if not {
                        p = &p[1..];
                    }
                    let mut hit = false;
                    // `end` marks Redis's "pattern-- ; break" at the end.
                    let mut end = false;
                    loop {
                        if p.len() >= 2 && p[0] == b'\\' {
                            p = &p[1..];
                            hit |= p[0] == s[0];
                        } else if p.first() == Some(&b']') {
                            break;
                        } else if p.is_empty() {
                            end = true;
                            break;
                        } else if p.len() >= 3 && p[1] == b'-' {
                            let (mut a, mut b) = (p[0] as i8, p[2] as i8);
                            if a > b {
                                std::mem::swap(&mut a, &mut b);
                            }
                            let a = lower(a as u8) as i8;
                            let b = lower(b as u8) as i8;
                            let c = lower(s[0]) as i8;
                            p = &p[2..];
                            hit |= a <= c && c <= b;
                        } else {
                            hit |= lower(p[0]) == lower(s[0]);
                        }
                        p = &p[1..];
                    }
                    if hit == not {
                        return false;
                    }
                    s = &s[1..];
                    if end {
                        // Redis steps back onto the last byte, then past it.
                        if s.is_empty() {
                            break;
                        }
                        continue;
                    }
                }
                b'\\' if p.len() >= 2 => {
                    p = &p[1..];
                    if lower(p[0]) != lower(s[0]) {
                        return false;
                    }
                    s = &s[1..];
                }
                c => {
                    if lower(c) != lower(s[0]) {
                        return false;
                    }
                    s = &s[1..];
                }
            }
            p = &p[1..];
            if s.is_empty() {
                while p.first() == Some(&b'*') {
                    p = &p[1..];
                }
                break;
            }
        }
        p.is_empty() && s.is_empty()
    }

    #[test]
    fn redis_glob_cases() {
        let m = |p: &str, s: &str| matches(p.as_bytes(), s.as_bytes(), false);
        // As in Redis's stringmatchlen, a pattern never matches an empty
        // string; KEYS and SCAN treat a lone "*" as "everything" themselves.
        assert!(!m("*", ""));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("*", "anything"));
        assert!(m("**", "anything"));
        assert!(m("h?llo", "hello"));
        assert!(!m("h?llo", "hllo"));
        assert!(m("h*llo", "heeeello"));
        assert!(m("h*llo", "hllo"));
        assert!(m("h[ae]llo", "hallo"));
        assert!(!m("h[ae]llo", "hillo"));
        assert!(m("h[^e]llo", "hallo"));
        assert!(!m("h[^e]llo", "hello"));
        assert!(m("h[a-b]llo", "hbllo"));
        assert!(m("h[b-a]llo", "hallo"));
        assert!(m("h\\*llo", "h*llo"));
        assert!(!m("h\\*llo", "hello"));
        assert!(m("key:*", "key:1"));
        assert!(!m("key:*", "kex:1"));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
        assert!(m("abc*", "abc"));
        assert!(m("abc**", "abc"));
        assert!(m("*abc", "xxabcabc"));
        assert!(!m("*abc", "xxabcab"));
        assert!(matches(b"ABC", b"abc", true));
        assert!(!matches(b"ABC", b"abc", false));
    }

    #[test]
    fn redis_odd_edge_cases() {
        let m = |p: &[u8], s: &[u8]| matches(p, s, false);
        // An unterminated class runs to the end of the pattern.
        assert!(m(b"a[bc", b"ab"));
        assert!(!m(b"a[bc", b"abx"));
        assert!(!m(b"a[", b"ab"));
        assert!(m(b"a[^", b"ab"));
        assert!(!m(b"a[^", b"a"));
        // `[]` is an empty class, `[^]` any byte.
        assert!(!m(b"[]a", b"a"));
        assert!(m(b"[^]", b"x"));
        // `[a-]` is the range a..], and the class goes on after that `]`.
        assert!(m(b"[a-]x]", b"x"));
        assert!(m(b"[a-]x]", b"]"));
        assert!(!m(b"[a-]x]", b"x]"));
        // A trailing backslash is a literal, also inside a class.
        assert!(m(b"a\\", b"a\\"));
        assert!(m(b"[\\", b"\\"));
        assert!(m(b"[\\]]", b"]"));
        // Escapes in a class ignore nocase; plain members do not.
        assert!(!matches(b"[\\A]", b"a", true));
        assert!(matches(b"[A]", b"a", true));
        assert!(matches(b"[A-C]", b"b", true));
        // Ranges compare signed chars: a..0xff is -1..=97.
        assert!(!m(b"[a-\xff]", b"\x80"));
        assert!(m(b"[a-\xff]", b"0"));
        assert!(m(b"[\x80-\x90]", b"\x85"));
        // nocase folds ASCII only.
        assert!(!matches(b"\xc4", b"\xe4", true));
    }

    #[test]
    fn nesting_cap_as_redis() {
        let key = vec![b'a'; 1100];
        let stars = |n: usize| b"*a".repeat(n);
        assert!(matches(&stars(1000), &key, false));
        assert!(!matches(&stars(1001), &key, false));
        // A trailing group of stars is not a level.
        let mut trailing = stars(1000);
        trailing.extend_from_slice(b"***");
        assert!(matches(&trailing, &key, false));
        // Escaped stars and stars in classes are not stars.
        let escaped = b"\\*a".repeat(1200);
        assert!(!matches(&escaped, &key, false));
        assert!(matches(&escaped, &b"*a".repeat(1200), false));
        let mut classes = b"[*]".repeat(1200);
        classes.push(b'*');
        assert!(matches(&classes, &vec![b'*'; 1300], false));
    }

    /// CVE-2022-36021's shape: exponential for a recursive matcher,
    /// microseconds here. The bound is loose for slow debug builds.
    #[test]
    fn pathological_patterns_are_fast() {
        let cases: Vec<(Vec<u8>, Vec<u8>)> = vec![
            ([b"a*".repeat(20), b"b".to_vec()].concat(), vec![b'a'; 40]),
            (
                [b"a*".repeat(500), b"b".to_vec()].concat(),
                vec![b'a'; 4000],
            ),
            (
                [b"*a".repeat(999), b"b".to_vec()].concat(),
                vec![b'a'; 4000],
            ),
            (b"*[a-z]?".repeat(300), vec![b'a'; 5000]),
            (
                [b"*".to_vec(), b"a".repeat(1000), b"b".to_vec()].concat(),
                vec![b'a'; 10_000],
            ),
        ];
        for (p, s) in cases {
            let start = Instant::now();
            let _ = matches(&p, &s, false);
            let _ = matches(&p, &s, true);
            let took = start.elapsed();
            assert!(
                took < Duration::from_secs(2),
                "pattern of {} bytes against {} bytes took {took:?}",
                p.len(),
                s.len()
            );
        }
    }

    /// Bytes the random patterns and strings are made of: glob syntax and
    /// a tiny alphabet (cases and a signed-char byte included), so matches
    /// are frequent and every edge case comes up.
    fn pattern_byte() -> impl Strategy<Value = u8> {
        prop::sample::select(b"ab*?[]^-\\aAB\xe9*".to_vec())
    }

    fn string_byte() -> impl Strategy<Value = u8> {
        prop::sample::select(b"abAB*]-\\^\xe9".to_vec())
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 20_000, ..ProptestConfig::default() })]

        #[test]
        fn same_as_reference(
            p in prop::collection::vec(pattern_byte(), 0..12),
            s in prop::collection::vec(string_byte(), 0..10),
            nocase in any::<bool>(),
        ) {
            prop_assert_eq!(
                matches(&p, &s, nocase),
                reference(&p, &s, nocase),
                "pattern {:?} string {:?} nocase {}",
                String::from_utf8_lossy(&p), String::from_utf8_lossy(&s), nocase
            );
        }

        /// Random patterns built from whole elements (classes with ranges,
        /// negation and escapes), so longer and well-formed ones too.
        #[test]
        fn same_as_reference_structured(
            parts in prop::collection::vec(prop::sample::select(vec![
                "*", "**", "?", "a", "b", "A", "\\*", "\\", "[ab]", "[^a]", "[a-b]",
                "[b-a]", "[^]", "[]", "[\\]]", "[a-]", "[A-Z]", "[", "[^", "-", "]",
            ]), 0..8),
            s in prop::collection::vec(string_byte(), 0..12),
            nocase in any::<bool>(),
        ) {
            let p = parts.concat().into_bytes();
            prop_assert_eq!(
                matches(&p, &s, nocase),
                reference(&p, &s, nocase),
                "pattern {:?} string {:?} nocase {}",
                String::from_utf8_lossy(&p), String::from_utf8_lossy(&s), nocase
            );
        }
    }
}
