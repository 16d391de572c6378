//! Deltas of big strings (format version 4): a delta after a change to a
//! few chunks of a huge value writes those chunks as a patch, and a chain
//! loads the patched value exactly, or refuses a patch whose base is not
//! there.

use std::collections::BTreeMap;

use super::chain::Coverage;
use super::format::{self, FileHeader, Item, Kind, PageFrame};
use crate::types::string::CHUNK;
use crate::value::Value;
use crate::Shard;

pub(super) type State = BTreeMap<(u16, Vec<u8>), (Value, u64)>;

/// 4 MiB: 64 chunks.
const BIG_LEN: usize = 64 * CHUNK;

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| ((i % 251) as u8).wrapping_add(seed))
        .collect()
}

/// Takes a snapshot of `shard` (full or delta, `id`) as a file; `during`
/// runs between the capture's steps (writes after the barrier).
pub(super) fn snapshot(
    shard: &mut Shard,
    full: bool,
    id: u64,
    during: impl FnMut(&mut Shard),
) -> Vec<u8> {
    let start = shard.begin_snapshot(full, false);
    let kind = if start.since.is_none() {
        Kind::Full
    } else {
        Kind::Delta
    };
    let (bytes, body) = super::tests::capture_body(shard, 64 * 1024, during);
    let header = FileHeader {
        kind,
        compression: false,
        shard: 0,
        shards: 1,
        databases: shard.databases() as u16,
        id,
        base_id: 1,
        parent_id: if kind == Kind::Full { 0 } else { id - 1 },
        epoch: start.epoch,
        lsn: 0,
        created_ms: 0,
    };
    let mut file = header.encode();
    file.extend_from_slice(&bytes);
    format::encode_end(&mut file, body.tally, body.crc);
    format::pad_to_block(&mut file);
    file
}

/// Loads a chain (oldest file first) as the server does.
pub(super) fn try_load(chain: &[Vec<u8>]) -> Result<State, String> {
    let mut coverage = Coverage::default();
    let mut state = State::new();
    for (n, file) in chain.iter().enumerate().rev() {
        let (_, frames, _) = format::read_all(file).map_err(|e| e.to_string())?;
        coverage.start_file(&format!("file{n}"));
        for f in frames {
            coverage
                .current_entries(&f, 0, |e| {
                    let old = state.insert((f.db, e.key.to_vec()), (e.value, e.expire_at));
                    assert!(old.is_none(), "a key in two current pages");
                })
                .map_err(|e| format!("file{n}: {e}"))?;
        }
        coverage.end_file();
    }
    coverage.finish()?;
    Ok(state)
}

/// The state of a shard's database 0.
pub(super) fn state_of(shard: &Shard) -> State {
    shard
        .db(0)
        .iter()
        .map(|e| ((0, e.key.to_vec()), (e.value.clone(), e.expire_at)))
        .collect()
}

/// A patch's key and the indices of its chunks.
pub(super) type KeyChunks = (Vec<u8>, Vec<u64>);

/// The patches and chunks frames of a file: (key, chunk indices) of each
/// patch, and the payload bytes of its chunks frames.
pub(super) fn patches_of(file: &[u8]) -> (Vec<KeyChunks>, usize) {
    let (_, frames, _) = format::read_all(file).unwrap();
    let mut patches = Vec::new();
    for f in &frames {
        for item in f.decode_items(0).unwrap() {
            if let Item::Patch(p) = item {
                patches.push((p.key, p.chunks.iter().map(|c| c.0).collect()));
            }
        }
    }
    let mut chunk_bytes = 0;
    let mut at = format::BLOCK;
    while file[at] != format::TAG_END {
        let stored = u64::from_le_bytes(file[at + 16..at + 24].try_into().unwrap()) as usize;
        if file[at] == format::TAG_CHUNKS {
            chunk_bytes += stored;
        }
        at += format::FRAME_HEADER + stored;
    }
    (patches, chunk_bytes)
}

fn setrange(shard: &mut Shard, key: &[u8], at: usize, bytes: &[u8]) {
    let mut ctx = shard.ctx(0);
    let Some(Value::Str(s)) = ctx.value_mut_at(key, at, at + bytes.len()) else {
        panic!("no string at {key:?}");
    };
    s.set_range(at, bytes);
}

fn append(shard: &mut Shard, key: &[u8], bytes: &[u8]) {
    let len = shard.ctx(0).lookup_write(key).unwrap().value.data_len();
    let mut ctx = shard.ctx(0);
    let Some(Value::Str(s)) = ctx.value_mut_at(key, len, len + bytes.len()) else {
        panic!("no string at {key:?}");
    };
    s.append(bytes);
}

/// A shard with a 4 MiB value and some small keys, and its full snapshot.
fn with_big() -> (Shard, Vec<u8>) {
    let mut shard = Shard::new(0, 1, 1);
    for i in 0..500 {
        shard.ctx(0).set(
            format!("small:{i}").as_bytes(),
            Value::string(vec![b's'; 50]),
            0,
        );
    }
    shard.ctx(0).set(
        b"big",
        Value::string(pattern(BIG_LEN, 0)),
        4_000_000_000_000,
    );
    let full = snapshot(&mut shard, true, 1, |_| {});
    (shard, full)
}

/// The case: two SETRANGEs on two chunks and an APPEND that grows
/// the value; the delta holds those 3 chunks (not 4 MiB), and the chain
/// loads the exact value. Writes while the delta is taken (to a chunk of
/// the patch and to one the base holds) change nothing in it.
#[test]
fn a_delta_after_setrange_holds_the_changed_chunks_only() {
    let (mut shard, full) = with_big();
    setrange(&mut shard, b"big", 3 * CHUNK + 10, b"first");
    setrange(&mut shard, b"big", 40 * CHUNK + 7, b"second");
    append(&mut shard, b"big", b"grown by an append");
    let at_barrier = state_of(&shard);
    let mut first = true;
    let delta = snapshot(&mut shard, false, 2, |s| {
        if std::mem::take(&mut first) {
            setrange(s, b"big", 3 * CHUNK + 11, b"after the barrier");
            setrange(s, b"big", 20 * CHUNK, b"after the barrier");
        }
    });
    let (patches, chunk_bytes) = patches_of(&delta);
    assert_eq!(patches, vec![(b"big".to_vec(), vec![3, 40, 64])]);
    assert_eq!(chunk_bytes, 2 * CHUNK + "grown by an append".len());
    assert!(delta.len() < 300 * 1024, "delta is {} bytes", delta.len());
    assert!(full.len() > BIG_LEN, "the full one holds it whole");
    assert_eq!(
        try_load(&[full.clone(), delta.clone()]).unwrap(),
        at_barrier
    );
    // The writes after the barrier are in the next delta.
    let now = state_of(&shard);
    let next = snapshot(&mut shard, false, 3, |_| {});
    let (patches, _) = patches_of(&next);
    assert_eq!(patches, vec![(b"big".to_vec(), vec![3, 20])]);
    assert_eq!(try_load(&[full, delta, next]).unwrap(), now);
}

/// A value placed whole after the base (SET over it) is written whole,
/// and so is a value of a database exchanged since (SWAPDB); an
/// unchanged big value whose page changed is a patch of no chunk.
#[test]
fn a_value_placed_since_the_base_is_written_whole() {
    let (mut shard, full) = with_big();
    shard
        .ctx(0)
        .set(b"big", Value::string(pattern(BIG_LEN, 9)), 0);
    let want = state_of(&shard);
    let delta = snapshot(&mut shard, false, 2, |_| {});
    assert!(patches_of(&delta).0.is_empty());
    assert!(delta.len() > BIG_LEN);
    assert_eq!(try_load(&[full.clone(), delta.clone()]).unwrap(), want);
    // Its page changes (a key beside it), the value does not.
    let h = crate::keyhash::hash_key(b"big");
    let bits = u32::from(shard.db(0).page(h).depth() + crate::pagetable::SUB_BITS);
    let near = (0..10_000_000)
        .map(|i| format!("near:{i}"))
        .find(|k| crate::keyhash::hash_key(k.as_bytes()) >> (64 - bits) == h >> (64 - bits))
        .unwrap();
    shard
        .ctx(0)
        .set(near.as_bytes(), Value::string(b"x".to_vec()), 0);
    let want = state_of(&shard);
    let d2 = snapshot(&mut shard, false, 3, |_| {});
    assert_eq!(patches_of(&d2), (vec![(b"big".to_vec(), vec![])], 0));
    assert!(d2.len() < 64 * 1024);
    assert_eq!(try_load(&[full, delta, d2]).unwrap(), want);
    // SWAPDB: the values were another database's at the base.
    let mut shard = Shard::new(0, 1, 2);
    shard
        .ctx(1)
        .set(b"big", Value::string(pattern(BIG_LEN, 1)), 0);
    shard
        .ctx(0)
        .set(b"big", Value::string(pattern(BIG_LEN, 2)), 0);
    let full = snapshot(&mut shard, true, 1, |_| {});
    shard.swap_dbs(0, 1);
    setrange(&mut shard, b"big", 5, b"!");
    let delta = snapshot(&mut shard, false, 2, |_| {});
    assert!(patches_of(&delta).0.is_empty());
    let loaded = try_load(&[full, delta]).unwrap();
    let mut want = pattern(BIG_LEN, 1);
    want[5] = b'!';
    assert_eq!(loaded[&(0, b"big".to_vec())].0, Value::string(want));
    assert_eq!(
        loaded[&(1, b"big".to_vec())].0,
        Value::string(pattern(BIG_LEN, 2))
    );
}

/// Patches over two deltas (the second one again on a chunk of the
/// first) apply oldest to newest onto the full snapshot's value; a
/// value that APPEND made chunked is written whole by the delta after it,
/// then patched.
#[test]
fn patches_of_two_deltas_apply_in_order() {
    let (mut shard, full) = with_big();
    shard
        .ctx(0)
        .set(b"grows", Value::string(vec![b'g'; 1000]), 0);
    setrange(&mut shard, b"big", 3 * CHUNK, b"one");
    // Past the threshold, so that APPEND makes it chunked; its last chunk
    // is where the appends below land.
    let grown = 1000 + crate::types::string::BIG + CHUNK;
    let last = (grown - 1) as u64 / CHUNK as u64;
    append(&mut shard, b"grows", &vec![b'h'; grown - 1000]);
    let at_d1 = state_of(&shard);
    let d1 = snapshot(&mut shard, false, 2, |_| {});
    assert_eq!(patches_of(&d1).0, vec![(b"big".to_vec(), vec![3])]);
    setrange(&mut shard, b"big", 3 * CHUNK + 1, b"two");
    setrange(&mut shard, b"big", 10 * CHUNK, b"ten");
    append(&mut shard, b"grows", b"more");
    let at_d2 = state_of(&shard);
    let d2 = snapshot(&mut shard, false, 3, |_| {});
    let mut got = patches_of(&d2).0;
    got.sort();
    assert_eq!(
        got,
        vec![
            (b"big".to_vec(), vec![3, 10]),
            (b"grows".to_vec(), vec![last])
        ]
    );
    append(&mut shard, b"grows", b"and more");
    let at_d3 = state_of(&shard);
    let d3 = snapshot(&mut shard, false, 4, |_| {});
    assert_eq!(patches_of(&d3).0, vec![(b"grows".to_vec(), vec![last])]);
    // (The first delta wrote "grows" whole: APPEND made it after the
    // base.)
    assert!(!patches_of(&d1).0.iter().any(|(k, _)| k == b"grows"));
    assert_eq!(try_load(&[full.clone(), d1.clone()]).unwrap(), at_d1);
    assert_eq!(
        try_load(&[full.clone(), d1.clone(), d2.clone()]).unwrap(),
        at_d2
    );
    assert_eq!(try_load(&[full, d1, d2, d3]).unwrap(), at_d3);
}

/// A patch whose base is missing (no older file holds the key, or the
/// older frame of its hash lacks it), is not a string, or is too short
/// for the patch, is an error naming the patch's file and offset.
#[test]
fn a_patch_without_its_base_is_an_error() {
    let (mut shard, _) = with_big();
    setrange(&mut shard, b"big", 3 * CHUNK, b"x");
    append(&mut shard, b"big", b"y");
    let delta = snapshot(&mut shard, false, 2, |_| {});
    let other_full = |f: &dyn Fn(&mut Shard)| {
        let mut s = Shard::new(0, 1, 1);
        f(&mut s);
        snapshot(&mut s, true, 1, |_| {})
    };
    let empty = other_full(&|_| {});
    let e = try_load(&[empty, delta.clone()]).unwrap_err();
    assert!(
        e.contains("the patch of key \"big\" (file1 at offset"),
        "{e}"
    );
    assert!(
        e.contains("no older file of its chain holds the key"),
        "{e}"
    );
    let without = other_full(&|s| {
        s.ctx(0).set(b"other", Value::string(b"v".to_vec()), 0);
    });
    let e = try_load(&[without, delta.clone()]).unwrap_err();
    assert!(e.starts_with("file0: "), "{e}");
    assert!(e.contains("holds its hash range without the key"), "{e}");
    let hash = other_full(&|s| {
        let mut h = crate::types::Hash::new();
        h.set(b"f", b"v", Default::default());
        s.ctx(0).set(b"big", Value::Hash(h), 0);
    });
    let e = try_load(&[hash, delta.clone()]).unwrap_err();
    assert!(e.contains("is a hash, not a string"), "{e}");
    let short = other_full(&|s| {
        s.ctx(0)
            .set(b"big", Value::string(pattern(2 * CHUNK, 0)), 0);
    });
    let e = try_load(&[short, delta.clone()]).unwrap_err();
    assert!(e.contains("do not make the"), "{e}");
    // A patch read alone, outside its chain, is refused too.
    let (_, frames, _) = format::read_all(&delta).unwrap();
    assert!(frames.iter().any(|f| f.decode_entries(0).is_err()));
}

/// Every byte of `frame`'s entries changed three ways (past its crc, as a
/// bug or an attack would), and every cut of them: some flips and every
/// cut must fail to decode; `load` (the chain loaded with the damaged
/// frame) runs on each, and must not panic.
pub(super) fn flips_and_cuts(frame: &PageFrame, load: impl Fn(&PageFrame)) {
    let mut errors = 0;
    for i in 0..frame.raw.len() {
        for x in [0x01u8, 0x80, 0xFF] {
            let mut f = frame.clone();
            f.raw[i] ^= x;
            errors += usize::from(f.decode_items(0).is_err());
            load(&f);
        }
    }
    assert!(errors > 0);
    for cut in 0..frame.raw.len() {
        let mut f = frame.clone();
        f.raw.truncate(cut);
        assert!(f.decode_items(0).is_err());
        load(&f);
    }
}

/// Every byte of a frame holding a patch entry, changed (past its crc,
/// as a bug or an attack would), and every cut of it: decoding and
/// loading the chain give an error or a value, and never panic.
#[test]
fn damaged_patch_entries_never_panic() {
    let (mut shard, full) = with_big();
    setrange(&mut shard, b"big", 3 * CHUNK, b"x");
    append(&mut shard, b"big", b"y");
    let delta = snapshot(&mut shard, false, 2, |_| {});
    let (_, older, _) = format::read_all(&full).unwrap();
    let (_, frames, _) = format::read_all(&delta).unwrap();
    let with_patch: PageFrame = frames.into_iter().find(|f| !f.chunks.is_empty()).unwrap();
    let try_frame = |f: &PageFrame| {
        let mut c = Coverage::default();
        let _ = c.current_entries(f, 0, |_| {});
        c.end_file();
        for o in &older {
            let _ = c.current_entries(o, 0, |_| {});
        }
        c.end_file();
        let _ = c.finish();
    };
    flips_and_cuts(&with_patch, try_frame);
    // The patch's chunks of other sizes, or missing.
    for keep in [0, 1] {
        let mut f = with_patch.clone();
        f.chunks.truncate(keep);
        assert!(f.decode_items(0).is_err());
        try_frame(&f);
    }
    let mut f = with_patch.clone();
    f.chunks.swap(0, 1);
    assert!(
        f.decode_items(0).is_err(),
        "the last chunk in a whole one's place"
    );
}

/// A patch from a file of another chunk size (a build whose chunks were
/// 64 KiB) counts its chunk indices in that size: applied byte-wise, it
/// makes the same value, and a chunk past the base it lacks is an error.
#[test]
fn a_patch_of_another_chunk_size_applies_in_its_own_unit() {
    use crate::types::string::Chunk;
    use std::sync::Arc;
    let size = 4 * CHUNK;
    let base_len = 3 * size + 100;
    let base = Value::string(pattern(base_len, 3));
    let len = base_len + 5000;
    let mut want = pattern(base_len, 3);
    want.resize(len, 0);
    // Chunk 1 changed; chunk 3 (the base's partial last one) grew.
    let one: Vec<u8> = vec![b'1'; size];
    want[size..2 * size].copy_from_slice(&one);
    let three: Vec<u8> = (0..len - 3 * size).map(|i| (i % 7) as u8).collect();
    want[3 * size..].copy_from_slice(&three);
    let chunk = |b: Vec<u8>| Arc::new(Chunk { bytes: b, epoch: 0 });
    let patch = format::Patch {
        hash: 0,
        key: b"k".to_vec(),
        expire_at: 0,
        len: len as u64,
        chunks: vec![(1, chunk(one)), (3, chunk(three))],
        chunk: size,
        offset: 0,
        segments: None,
    };
    assert_eq!(patch.apply(&base).unwrap(), Value::string(want));
    // Without the grown chunk the bytes past the base are missing.
    let lacking = format::Patch {
        chunks: patch.chunks[..1].to_vec(),
        ..patch.clone()
    };
    assert!(lacking.apply(&base).is_err());
    // A chunk of the wrong size for its unit.
    let wrong = format::Patch {
        chunks: vec![(1, chunk(vec![0; CHUNK]))],
        ..patch
    };
    assert!(wrong.apply(&base).is_err());
}
