//! Deltas of big hashes and sets (format version 4, types 8 and 9): a
//! delta after a change to a few elements of a huge hash or set writes
//! the segments that changed (their ranges and all their elements), and a
//! chain loads the value exactly, or refuses a patch whose base is not
//! there.

use super::chain::Coverage;
use super::format::{self, Item, PageFrame};
use super::patch_tests::{flips_and_cuts, patches_of, snapshot, state_of, try_load};
use crate::keyhash::hash_key;
use crate::types::hash::{self, Hash};
use crate::types::set::{self, Set};
use crate::value::Value;
use crate::Shard;

/// Elements of the big values: some 300-600 segments.
const ELEMENTS: usize = 300_000;

fn field(i: usize) -> Vec<u8> {
    format!("field:{i}").into_bytes()
}

fn big_hash(n: usize, tag: &str) -> Hash {
    let mut h = Hash::new();
    for i in 0..n {
        h.set(
            &field(i),
            format!("{tag}:{i}").as_bytes(),
            Default::default(),
        );
    }
    h
}

fn big_set(n: usize) -> Set {
    let fields: Vec<Vec<u8>> = (0..n).map(field).collect();
    Set::table_of(fields.iter().map(Vec::as_slice))
}

fn hset(shard: &mut Shard, key: &[u8], f: &[u8], v: &[u8]) {
    let mut ctx = shard.ctx(0);
    let Some(Value::Hash(h)) = ctx.value_mut_for(key, std::iter::once(f)) else {
        panic!("no hash at {key:?}");
    };
    h.set(f, v, hash::Limits::default());
}

fn hdel(shard: &mut Shard, key: &[u8], f: &[u8]) {
    let mut ctx = shard.ctx(0);
    let Some(Value::Hash(h)) = ctx.value_mut_for(key, std::iter::once(f)) else {
        panic!("no hash at {key:?}");
    };
    assert!(h.remove(f));
}

fn sadd(shard: &mut Shard, key: &[u8], m: &[u8]) {
    let mut ctx = shard.ctx(0);
    let Some(Value::Set(s)) = ctx.value_mut_for(key, std::iter::once(m)) else {
        panic!("no set at {key:?}");
    };
    s.add(m, &set::Limits::default());
}

fn srem(shard: &mut Shard, key: &[u8], m: &[u8]) {
    let mut ctx = shard.ctx(0);
    let Some(Value::Set(s)) = ctx.value_mut_for(key, std::iter::once(m)) else {
        panic!("no set at {key:?}");
    };
    assert!(s.remove(m));
}

fn value(shard: &Shard, key: &[u8]) -> Value {
    shard.db(0).get(hash_key(key), key).unwrap().value.clone()
}

/// Segments of the hash or set at `key`.
fn segments(shard: &Shard, key: &[u8]) -> usize {
    match value(shard, key) {
        Value::Hash(h) => h.as_table().unwrap().segments().len(),
        Value::Set(s) => s.segments().unwrap().len(),
        Value::Str(_) => panic!("a string"),
    }
}

/// Adds new elements that land in the segment of `near` until that
/// segment splits: one split, its two halves changed.
fn split_near(shard: &mut Shard, key: &[u8], near: &[u8]) {
    let before = segments(shard, key);
    let mut i = 0;
    while segments(shard, key) == before {
        let cand = format!("split:{i}").into_bytes();
        i += 1;
        let v = value(shard, key);
        if v.segment_of(&cand) != v.segment_of(near) {
            continue;
        }
        match v {
            Value::Hash(_) => hset(shard, key, &cand, b"s"),
            _ => sadd(shard, key, &cand),
        }
    }
}

/// A shard with a big hash or set (and small keys around), and its full
/// snapshot.
fn with_big(v: Value) -> (Shard, Vec<u8>) {
    let mut shard = Shard::new(0, 1, 1);
    for i in 0..500 {
        shard.ctx(0).set(
            format!("small:{i}").as_bytes(),
            Value::string(vec![b's'; 50]),
            0,
        );
    }
    shard.ctx(0).set(b"big", v, 4_000_000_000_000);
    let full = snapshot(&mut shard, true, 1, |_| {});
    (shard, full)
}

/// The case for a hash: 2 HSETs (one new field), 1 HDEL and a
/// split; the delta holds those few segments (not the 300k fields), and
/// the chain loads the exact hash. Writes while the delta is taken change
/// nothing in it and are in the next one.
#[test]
fn a_delta_after_hset_holds_the_changed_segments_only() {
    let (mut shard, full) = with_big(Value::Hash(big_hash(ELEMENTS, "v")));
    let segs = segments(&shard, b"big");
    assert!(segs > 200, "{segs} segments");
    hset(&mut shard, b"big", &field(10), b"changed");
    hset(&mut shard, b"big", b"a new field", b"new");
    hdel(&mut shard, b"big", &field(20));
    split_near(&mut shard, b"big", &field(30));
    let at_barrier = state_of(&shard);
    let mut first = true;
    let delta = snapshot(&mut shard, false, 2, |s| {
        if std::mem::take(&mut first) {
            hset(s, b"big", &field(10), b"after the barrier");
            hset(s, b"big", &field(40), b"after the barrier");
        }
    });
    let (patches, piece_bytes) = patches_of(&delta);
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert_eq!(patches[0].0, b"big");
    let n = patches[0].1.len();
    assert!((2..=5).contains(&n), "{n} segments in the patch");
    assert!(
        piece_bytes < 6 * hash::SEG_MAX_BYTES,
        "{piece_bytes} bytes of segments"
    );
    assert!(delta.len() < 200 * 1024, "delta is {} bytes", delta.len());
    assert!(full.len() > 5_000_000, "the full one holds it whole");
    assert_eq!(
        try_load(&[full.clone(), delta.clone()]).unwrap(),
        at_barrier
    );
    let now = state_of(&shard);
    let next = snapshot(&mut shard, false, 3, |_| {});
    let (patches, _) = patches_of(&next);
    assert_eq!(patches.len(), 1);
    assert!((1..=2).contains(&patches[0].1.len()), "{patches:?}");
    assert_eq!(try_load(&[full, delta, next]).unwrap(), now);
}

/// The same for a set: SADD, SREM and a split.
#[test]
fn a_delta_after_sadd_and_srem_holds_the_changed_segments_only() {
    let (mut shard, full) = with_big(Value::Set(big_set(ELEMENTS)));
    sadd(&mut shard, b"big", b"a new member");
    srem(&mut shard, b"big", &field(20));
    srem(&mut shard, b"big", &field(21));
    split_near(&mut shard, b"big", &field(30));
    let at_barrier = state_of(&shard);
    let mut first = true;
    let delta = snapshot(&mut shard, false, 2, |s| {
        if std::mem::take(&mut first) {
            srem(s, b"big", &field(40));
        }
    });
    let (patches, piece_bytes) = patches_of(&delta);
    assert_eq!(patches.len(), 1, "{patches:?}");
    assert!((2..=5).contains(&patches[0].1.len()), "{patches:?}");
    assert!(piece_bytes < 6 * set::SEG_BYTES, "{piece_bytes}");
    assert!(delta.len() < 200 * 1024, "delta is {} bytes", delta.len());
    assert!(full.len() > 3_000_000, "the full one is {}", full.len());
    assert_eq!(
        try_load(&[full.clone(), delta.clone()]).unwrap(),
        at_barrier
    );
    let now = state_of(&shard);
    let next = snapshot(&mut shard, false, 3, |_| {});
    assert_eq!(patches_of(&next).0[0].1.len(), 1);
    assert_eq!(try_load(&[full, delta, next]).unwrap(), now);
}

/// Patches over three deltas (again on a segment of the first) apply
/// oldest to newest; a hash a change turned into a hashtable after the
/// base (HSET growing a listpack) is written whole by the delta after it,
/// then patched.
#[test]
fn segment_patches_of_three_deltas_apply_in_order() {
    let (mut shard, full) = with_big(Value::Hash(big_hash(ELEMENTS, "v")));
    let mut small = Hash::new();
    small.set(b"f", b"v", Default::default());
    shard.ctx(0).set(b"grows", Value::Hash(small), 0);
    hset(&mut shard, b"big", &field(1), b"one");
    for i in 0..3000 {
        hset(&mut shard, b"grows", &field(i), b"g");
    }
    assert_eq!(value(&shard, b"grows").encoding(), "hashtable");
    let at_d1 = state_of(&shard);
    let d1 = snapshot(&mut shard, false, 2, |_| {});
    let p1 = patches_of(&d1).0;
    assert_eq!(p1.len(), 1, "{p1:?}");
    assert_eq!(p1[0].0, b"big", "grows is written whole");
    hset(&mut shard, b"big", &field(1), b"two");
    hdel(&mut shard, b"big", &field(2));
    hset(&mut shard, b"grows", &field(5), b"changed");
    let at_d2 = state_of(&shard);
    let d2 = snapshot(&mut shard, false, 3, |_| {});
    let mut p2 = patches_of(&d2).0;
    p2.sort();
    assert_eq!(p2.len(), 2, "{p2:?}");
    assert_eq!(p2[1].0, b"grows");
    assert_eq!(p2[1].1.len(), 1);
    hdel(&mut shard, b"grows", &field(5));
    let at_d3 = state_of(&shard);
    let d3 = snapshot(&mut shard, false, 4, |_| {});
    assert_eq!(patches_of(&d3).0.len(), 1);
    assert!(d3.len() < 64 * 1024);
    assert_eq!(try_load(&[full.clone(), d1.clone()]).unwrap(), at_d1);
    assert_eq!(
        try_load(&[full.clone(), d1.clone(), d2.clone()]).unwrap(),
        at_d2
    );
    assert_eq!(try_load(&[full, d1, d2, d3]).unwrap(), at_d3);
}

/// A hash or set placed whole after the base (a SET-like replace: HSET
/// over a new value) is written whole, and so are the values of
/// databases exchanged since (SWAPDB).
#[test]
fn a_collection_placed_since_the_base_is_written_whole() {
    let (mut shard, full) = with_big(Value::Hash(big_hash(ELEMENTS / 10, "v")));
    shard
        .ctx(0)
        .set(b"big", Value::Hash(big_hash(ELEMENTS / 10, "w")), 0);
    hset(&mut shard, b"big", &field(1), b"x");
    let want = state_of(&shard);
    let delta = snapshot(&mut shard, false, 2, |_| {});
    assert!(patches_of(&delta).0.is_empty());
    assert!(delta.len() > 300_000, "{}", delta.len());
    assert_eq!(try_load(&[full, delta]).unwrap(), want);
    // SWAPDB.
    let mut shard = Shard::new(0, 1, 2);
    shard
        .ctx(1)
        .set(b"big", Value::Set(big_set(ELEMENTS / 10)), 0);
    shard
        .ctx(0)
        .set(b"big", Value::Hash(big_hash(ELEMENTS / 10, "v")), 0);
    let full = snapshot(&mut shard, true, 1, |_| {});
    shard.swap_dbs(0, 1);
    srem(&mut shard, b"big", &field(3));
    let delta = snapshot(&mut shard, false, 2, |_| {});
    assert!(patches_of(&delta).0.is_empty());
    let loaded = try_load(&[full, delta]).unwrap();
    let mut want = big_set(ELEMENTS / 10);
    want.remove(&field(3));
    assert_eq!(loaded[&(0, b"big".to_vec())].0, Value::Set(want));
    assert_eq!(
        loaded[&(1, b"big".to_vec())].0,
        Value::Hash(big_hash(ELEMENTS / 10, "v"))
    );
}

/// A patch whose base is missing, of another type, or of another element
/// count, is an error naming the patch's file and offset.
#[test]
fn a_segments_patch_without_its_base_is_an_error() {
    let (mut shard, _) = with_big(Value::Hash(big_hash(20_000, "v")));
    hset(&mut shard, b"big", &field(1), b"x");
    let delta = snapshot(&mut shard, false, 2, |_| {});
    assert_eq!(patches_of(&delta).0.len(), 1);
    let other_full = |f: &dyn Fn(&mut Shard)| {
        let mut s = Shard::new(0, 1, 1);
        f(&mut s);
        snapshot(&mut s, true, 1, |_| {})
    };
    let e = try_load(&[other_full(&|_| {}), delta.clone()]).unwrap_err();
    assert!(
        e.contains("the patch of key \"big\" (file1 at offset"),
        "{e}"
    );
    assert!(
        e.contains("no older file of its chain holds the key"),
        "{e}"
    );
    let string = other_full(&|s| {
        s.ctx(0).set(b"big", Value::string(b"v".to_vec()), 0);
    });
    let e = try_load(&[string, delta.clone()]).unwrap_err();
    assert!(e.contains("is a string, not a hash"), "{e}");
    let set = other_full(&|s| {
        s.ctx(0).set(b"big", Value::Set(big_set(10)), 0);
    });
    let e = try_load(&[set, delta.clone()]).unwrap_err();
    assert!(e.contains("is a set, not a hash"), "{e}");
    let smaller = other_full(&|s| {
        s.ctx(0).set(b"big", Value::Hash(big_hash(10_000, "v")), 0);
    });
    let e = try_load(&[smaller, delta.clone()]).unwrap_err();
    assert!(e.contains("does not fit its base here"), "{e}");
    assert!(e.contains("not the 20000 it says"), "{e}");
    // A patch read alone, outside its chain, is refused too.
    let (_, frames, _) = format::read_all(&delta).unwrap();
    assert!(frames.iter().any(|f| f.decode_entries(0).is_err()));
}

/// Every byte of a frame holding a hash or set patch entry, changed
/// (past its crc), every cut of it, and every byte of its pieces: decoding
/// and loading the chain give an error or a value, and never panic.
#[test]
fn damaged_segments_patches_never_panic() {
    for v in [
        Value::Hash(big_hash(5_000, "v")),
        Value::Set(big_set(5_000)),
    ] {
        let is_hash = matches!(v, Value::Hash(_));
        let (mut shard, full) = with_big(v);
        for i in [1, 2000, 4000] {
            if is_hash {
                hset(&mut shard, b"big", &field(i), b"x");
            } else {
                srem(&mut shard, b"big", &field(i));
            }
        }
        let delta = snapshot(&mut shard, false, 2, |_| {});
        let (_, older, _) = format::read_all(&full).unwrap();
        let (_, frames, _) = format::read_all(&delta).unwrap();
        let with_patch: PageFrame = frames
            .into_iter()
            .find(|f| {
                f.decode_items(0)
                    .unwrap()
                    .iter()
                    .any(|i| matches!(i, Item::Patch(_)))
            })
            .unwrap();
        assert!(!with_patch.chunks.is_empty());
        let try_frame = |f: &PageFrame| {
            let mut c = Coverage::default();
            let r = c.current_entries(f, 0, |_| {});
            c.end_file();
            let mut ok = r.is_ok();
            for o in &older {
                ok &= c.current_entries(o, 0, |_| {}).is_ok();
            }
            c.end_file();
            ok && c.finish().is_ok()
        };
        assert!(try_frame(&with_patch), "the frame as written loads");
        flips_and_cuts(&with_patch, |f| {
            try_frame(f);
        });
        // Its pieces damaged: a byte changed (every 7th, and the first
        // ones), cut, or missing.
        let mut refused = 0;
        for p in 0..with_patch.chunks.len() {
            let len = with_patch.chunks[p].bytes.len();
            for i in (0..len).filter(|i| i % 7 == 0 || *i < 16) {
                let mut f = with_patch.clone();
                let mut c = (*f.chunks[p]).clone();
                c.bytes[i] ^= 0x5A;
                f.chunks[p] = std::sync::Arc::new(c);
                refused += usize::from(!try_frame(&f));
            }
            let mut f = with_patch.clone();
            let mut c = (*f.chunks[p]).clone();
            c.bytes.truncate(len / 2);
            f.chunks[p] = std::sync::Arc::new(c);
            assert!(!try_frame(&f), "a cut piece is refused");
        }
        assert!(refused > 0);
        let mut f = with_patch.clone();
        f.chunks.pop();
        assert!(f.decode_items(0).is_err());
        try_frame(&f);
    }
}
