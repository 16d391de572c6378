//! A shard under random writes, snapshotted again and again while the
//! writes go on: every chain (full + deltas) must load to exactly the
//! state at its snapshot's barrier.

use std::collections::BTreeMap;

use super::chain::Coverage;
use super::format::{self, Body, FileHeader, Kind};
use crate::value::Value;
use crate::Shard;

type Model = BTreeMap<(u16, Vec<u8>), (Value, u64)>;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

const DBS: usize = 3;

/// A change to the set at `key` (made one if it holds anything else):
/// members added or removed in place, so a running snapshot keeps the
/// set's barrier state (a clone for a hashtable). The model takes the
/// result.
fn random_set_write(rng: &mut Rng, shard: &mut Shard, model: &mut Model, db: usize, key: &[u8]) {
    use crate::types::set::{Limits, Set};
    let limits = Limits::default();
    let mut ctx = shard.ctx(db);
    let big = rng.below(8) == 0;
    let n = if big {
        500 + rng.below(4000)
    } else {
        1 + rng.below(5)
    };
    let ints = rng.below(2) == 0;
    let base = rng.below(100_000);
    let member = |i: u64| {
        if ints {
            (base + i).to_string().into_bytes()
        } else {
            format!("m{}", base + i).into_bytes()
        }
    };
    if !matches!(ctx.lookup_write(key).map(|e| &e.value), Some(Value::Set(_))) {
        let first = member(0);
        let set = Set::from_members(std::iter::once(first.as_slice()), &limits).expect("a member");
        ctx.set(key, Value::Set(set), 0);
    }
    // Half the time saying the members (a running snapshot writes their
    // segments first), half not (the segments are copied).
    let all: Vec<Vec<u8>> = (0..n).flat_map(|i| [member(i), member(i / 2)]).collect();
    let value = if rng.below(2) == 0 {
        ctx.value_mut_for(key, all.iter().map(Vec::as_slice))
    } else {
        ctx.value_mut(key)
    };
    if let Some(Value::Set(s)) = value {
        for i in 0..n {
            if rng.below(5) == 0 {
                s.remove(&member(i / 2));
            } else {
                s.add(&member(i), &limits);
            }
        }
        if s.is_empty() {
            s.add(b"last", &limits);
        }
    }
    let e = ctx.lookup_write(key).expect("the set");
    let v = (e.value.clone(), e.expire_at);
    model.insert((db as u16, key.to_vec()), v);
}

const KEYS: u64 = 4000;

/// One random write, applied to the shard and the model alike.
fn random_write(rng: &mut Rng, shard: &mut Shard, model: &mut Model) {
    let db = rng.below(DBS as u64) as usize;
    let what = rng.below(1000);
    // Big strings, and writes inside them, go to a few keys half the
    // time, so that deltas patch them (version 4).
    let key = if what <= 40 && rng.below(2) == 0 {
        format!("big{}", rng.below(8)).into_bytes()
    } else {
        format!("k{}", rng.below(KEYS)).into_bytes()
    };
    let mk = (db as u16, key.clone());
    match what {
        // A chunked string (version 3's chunks frames), or a write inside
        // one (copy-before-write of one chunk).
        0..=4 => {
            let len = crate::types::string::BIG + rng.below(3 * 65536) as usize;
            let seed = rng.next() as u8;
            let v: Vec<u8> = (0..len).map(|i| (i as u8).wrapping_add(seed)).collect();
            shard.ctx(db).set(&key, Value::string(v.clone()), 0);
            model.insert(mk, (Value::string(v), 0));
        }
        5..=40 => {
            let at = rng.below(300_000) as usize;
            let patch = [b'#'; 3];
            if let Some(Value::Str(s)) = shard.ctx(db).value_mut(&key) {
                s.set_range(at, &patch);
                if let Some((Value::Str(v), _)) = model.get_mut(&mk) {
                    v.set_range(at, &patch);
                }
            }
        }
        // A hash: a new one (listpack or hashtable, sometimes of many
        // segments), or a field set or removed in place.
        41..=120 => {
            let limits = crate::types::hash::Limits::default();
            let field = format!("f{}", rng.below(6000)).into_bytes();
            let value = format!("{}", rng.next()).into_bytes();
            let is_hash = matches!(model.get(&mk), Some((Value::Hash(_), _)));
            if is_hash && rng.below(4) != 0 {
                let remove = rng.below(3) == 0;
                let mut ctx = shard.ctx(db);
                let found = if rng.below(2) == 0 {
                    ctx.value_mut_for(&key, std::iter::once(field.as_slice()))
                } else {
                    ctx.value_mut(&key)
                };
                if let Some(Value::Hash(h)) = found {
                    if remove && h.len() > 1 {
                        h.remove(&field);
                    } else {
                        h.set(&field, &value, limits);
                    }
                }
                if let Some((Value::Hash(h), _)) = model.get_mut(&mk) {
                    if remove && h.len() > 1 {
                        h.remove(&field);
                    } else {
                        h.set(&field, &value, limits);
                    }
                }
            } else {
                let n = [1u64, 10, 600, 3000][rng.below(4) as usize];
                let mut h = crate::types::Hash::new();
                for i in 0..n {
                    h.set(format!("f{i}").as_bytes(), &value, limits);
                }
                let exp = if rng.below(4) == 0 {
                    4_000_000_000_000 + rng.below(1000)
                } else {
                    0
                };
                shard.ctx(db).set(&key, Value::Hash(h.clone()), exp);
                model.insert(mk, (Value::Hash(h), exp));
            }
        }
        121..=599 => {
            let len = [3usize, 20, 200, 2000][rng.below(4) as usize];
            let v: Vec<u8> = (0..len)
                .map(|i| b'a' + ((i as u64 + rng.next()) % 26) as u8)
                .collect();
            let exp = if rng.below(4) == 0 {
                4_000_000_000_000 + rng.below(1000)
            } else {
                0
            };
            shard.ctx(db).set(&key, Value::string(v.clone()), exp);
            model.insert(mk, (Value::string(v), exp));
        }
        600..=639 => random_set_write(rng, shard, model, db, &key),
        640..=849 => {
            shard.ctx(db).remove(&key);
            model.remove(&mk);
        }
        850..=996 => {
            let exp = 4_100_000_000_000 + rng.below(1000);
            if shard.ctx(db).set_expire(&key, exp) {
                model.get_mut(&mk).expect("model has the key").1 = exp;
            }
        }
        997 => {
            // FLUSHDB, ASYNC or not: the pages the running snapshot still
            // needs stay with it either way.
            shard.flush_db(db, rng.below(2) == 0);
            model.retain(|(d, _), _| *d != db as u16);
        }
        // (SWAPDB once in 20: it makes every value of both databases
        // new to the next delta, which then patches none of them.)
        _ if rng.below(20) != 0 => {}
        _ => {
            let other = (db + 1) % DBS;
            shard.swap_dbs(db, other);
            let moved: Model = std::mem::take(model)
                .into_iter()
                .map(|((d, k), v)| {
                    let d = if d == db as u16 {
                        other as u16
                    } else if d == other as u16 {
                        db as u16
                    } else {
                        d
                    };
                    ((d, k), v)
                })
                .collect();
            *model = moved;
        }
    }
}

/// Loads a chain (oldest file first) the way the server does: newest
/// file first, entries hidden by newer frames skipped.
fn load(chain: &[Vec<u8>]) -> Model {
    let mut coverage = Coverage::default();
    let mut state = Model::new();
    for file in chain.iter().rev() {
        let (_, frames, _) = format::read_all(file).expect("valid file");
        for f in frames {
            coverage
                .current_entries(&f, 0, |e| {
                    let old = state.insert((f.db, e.key.to_vec()), (e.value, e.expire_at));
                    assert!(old.is_none(), "a key in two current pages");
                })
                .expect("valid entries");
        }
        coverage.end_file();
    }
    coverage.finish().expect("every patch has its base");
    state
}

#[test]
fn chains_load_to_the_state_at_each_barrier_under_writes() {
    for seed in [1u64, 7, 42] {
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ seed);
        let mut shard = Shard::new(0, 1, DBS);
        // Flushed pages handed to the lazy-free thread wait here (dropped
        // each round).
        let (tx, lazy_freed) = std::sync::mpsc::channel();
        shard.lazyfree = crate::lazyfree::LazyFree::new(tx, Default::default());
        let mut model = Model::new();
        let mut chain: Vec<Vec<u8>> = Vec::new();
        let mut delta_bytes = 0u64;
        let mut full_bytes = 0u64;
        // Chunks frames of segments of big hashes and sets written.
        let mut pieces_frames = 0;
        // Patches of big strings written by deltas (version 4).
        let mut patches = 0;
        for round in 0..30u64 {
            lazy_freed.try_iter().for_each(drop);
            for _ in 0..rng.below(3000) {
                random_write(&mut rng, &mut shard, &mut model);
            }
            let at_barrier = model.clone();
            let want_full = chain.is_empty() || rng.below(5) == 0;
            let compress = rng.below(2) == 0;
            let start = shard.begin_snapshot(want_full, compress);
            let kind = if start.since.is_none() {
                Kind::Full
            } else {
                Kind::Delta
            };
            // The capture, interleaved with more writes.
            let mut body_bytes = Vec::new();
            let mut body = Body::default();
            // Now and then a snapshot is abandoned half way (a write error):
            // what it kept aside must not leak into the next one.
            let abandon_after = (round % 5 == 4).then(|| 1 + rng.below(6));
            let mut steps = 0;
            loop {
                for _ in 0..rng.below(40) {
                    random_write(&mut rng, &mut shard, &mut model);
                }
                steps += 1;
                if abandon_after == Some(steps) {
                    break;
                }
                // Now and then with a deadline already past: one page.
                let until = (rng.below(3) == 0).then(std::time::Instant::now);
                let done = shard.snapshot_step_until(1 + rng.below(20_000) as usize, until);
                let mut chunk = Vec::new();
                let t = shard.take_snapshot_frames(&mut chunk);
                body.tally += t;
                body.crc = crc32c::crc32c_append(body.crc, &chunk);
                let mut at = 0;
                while at + format::FRAME_HEADER <= chunk.len() {
                    if chunk[at] == format::TAG_CHUNKS && chunk[at + 1] & format::FLAG_PIECES != 0 {
                        pieces_frames += 1;
                    }
                    let stored = u64::from_le_bytes(chunk[at + 16..at + 24].try_into().unwrap());
                    at += format::FRAME_HEADER + stored as usize;
                }
                body_bytes.extend_from_slice(&chunk);
                if done && shard.snapshot_pending_bytes() == 0 {
                    break;
                }
            }
            // Now and then a snapshot fails (say, a full disk): it is
            // dropped, and the next builds on the last good one.
            if round % 7 == 6 || abandon_after.is_some_and(|n| n == steps) {
                shard.end_snapshot(false);
                continue;
            }
            shard.end_snapshot(true);
            let id = round + 1;
            let header = FileHeader {
                kind,
                compression: compress,
                shard: 0,
                shards: 1,
                databases: DBS as u16,
                id,
                base_id: if kind == Kind::Full { id } else { 1 },
                parent_id: if kind == Kind::Full { 0 } else { id - 1 },
                epoch: start.epoch,
                lsn: 0,
                created_ms: 0,
            };
            let mut file = header.encode();
            file.extend_from_slice(&body_bytes);
            format::encode_end(&mut file, body.tally, body.crc);
            format::pad_to_block(&mut file);
            let (_, frames, _) = format::read_all(&file).expect("valid file");
            for f in &frames {
                let items = f.decode_items(0).expect("valid entries");
                patches += items
                    .iter()
                    .filter(|i| matches!(i, format::Item::Patch(p) if !p.chunks.is_empty()))
                    .count();
            }
            if kind == Kind::Full {
                chain.clear();
                full_bytes = body.tally.bytes;
            } else {
                delta_bytes = body.tally.bytes;
            }
            chain.push(file);
            assert_eq!(
                load(&chain),
                at_barrier,
                "seed {seed} round {round} ({kind:?})"
            );
        }
        assert!(full_bytes > 0 && delta_bytes > 0);
        assert!(pieces_frames > 0, "big hashes and sets are segmented");
        assert!(patches > 0, "big strings changed in place are patched");
    }
}

#[test]
fn a_delta_after_few_changes_is_small() {
    let mut shard = Shard::new(0, 1, 1);
    for i in 0..100_000 {
        shard.ctx(0).set(
            format!("key:{i}").as_bytes(),
            Value::string(vec![b'v'; 100]),
            0,
        );
    }
    let size = |shard: &mut Shard, full: bool| {
        shard.begin_snapshot(full, false);
        let mut total = format::Tally::default();
        loop {
            let done = shard.snapshot_step(1 << 20);
            let t = shard.take_snapshot_frames(&mut Vec::new());
            total += t;
            if done {
                break;
            }
        }
        shard.end_snapshot(true);
        total
    };
    let full = size(&mut shard, true);
    assert_eq!(full.keys, 100_000);
    // Change 1% of the keys, spread over the keyspace.
    for i in (0..100_000).step_by(100) {
        shard.ctx(0).set(
            format!("key:{i}").as_bytes(),
            Value::string(vec![b'w'; 100]),
            0,
        );
    }
    let delta = size(&mut shard, false);
    // Each changed key drags its page (up to 112 keys) along; with 1% of
    // keys changed on ~1000 pages, most pages are hit. What bounds a delta
    // is pages touched, not keys.
    assert!(delta.bytes <= full.bytes);
    let unchanged = size(&mut shard, false);
    assert_eq!(unchanged.pages, 0, "nothing changed, nothing written");
}

#[test]
#[ignore]
fn capture_speed() {
    let mut shard = Shard::new(0, 1, 1);
    for i in 0..300_000u32 {
        shard.ctx(0).set(
            format!("key:{i}").as_bytes(),
            Value::string(vec![b'x'; 1024]),
            0,
        );
    }
    for compress in [false, true] {
        let t = std::time::Instant::now();
        shard.begin_snapshot(true, compress);
        let mut slices = 0;
        let mut total = 0;
        let mut pending = Vec::new();
        loop {
            slices += 1;
            let done = shard.snapshot_step(256 * 1024);
            total += shard.take_snapshot_frames(&mut pending).bytes;
            pending.clear();
            if done {
                break;
            }
        }
        shard.end_snapshot(true);
        eprintln!(
            "compress {compress}: {slices} slices, {total} bytes, {:?}",
            t.elapsed()
        );
    }
}

/// The size of a delta after changing 1% of keys at random, against the
/// full snapshot, compressed or not: at most 5% (the target). The
/// figures: `cargo test --release -p engine delta_ratio -- --nocapture`.
#[test]
fn delta_ratio() {
    for compress in [false, true] {
        let mut rng = Rng(0x1234_5678);
        let mut shard = Shard::new(0, 1, 1);
        let n = 200_000u64;
        for i in 0..n {
            shard.ctx(0).set(
                format!("key:{i}").as_bytes(),
                Value::string(vec![b'v'; 100]),
                0,
            );
        }
        let size = |shard: &mut Shard, full: bool| {
            shard.begin_snapshot(full, compress);
            let mut bytes = 0;
            loop {
                let done = shard.snapshot_step(1 << 20);
                bytes += shard.take_snapshot_frames(&mut Vec::new()).bytes;
                if done {
                    break;
                }
            }
            shard.end_snapshot(true);
            bytes
        };
        let full = size(&mut shard, true);
        for _ in 0..n / 100 {
            let i = rng.below(n);
            shard.ctx(0).set(
                format!("key:{i}").as_bytes(),
                Value::string(vec![b'w'; 100]),
                0,
            );
        }
        let delta = size(&mut shard, false);
        let ratio = delta as f64 / full as f64;
        eprintln!(
            "compress {compress}: full {full} bytes, delta after 1% of keys {delta} bytes = {:.1}%",
            100.0 * ratio
        );
        assert!(ratio <= 0.05, "delta is {:.1}% of full", 100.0 * ratio);
    }
}

/// The writes behind the checked-in fixture files: `base` before the full
/// snapshot, the rest before the delta. Applied to a model (the expected
/// state) and, when generating, to a shard.
fn fixture_writes(shard: &mut Option<&mut Shard>, model: &mut Model, base: bool) {
    let mut set = |db: usize, k: String, v: Vec<u8>, exp: u64| {
        if let Some(s) = shard.as_deref_mut() {
            s.ctx(db).set(k.as_bytes(), Value::string(v.clone()), exp);
        }
        model.insert((db as u16, k.into_bytes()), (Value::string(v), exp));
    };
    if base {
        for i in 0..300u64 {
            let len = [1usize, 30, 300, 3000][(i % 4) as usize];
            let v: Vec<u8> = (0..len)
                .map(|j| b'a' + ((i + j as u64) % 26) as u8)
                .collect();
            let exp = if i % 7 == 0 { 4_000_000_000_000 + i } else { 0 };
            set(0, format!("fx:{i}"), v, exp);
        }
        for i in 0..20u64 {
            set(1, format!("db1:{i}"), format!("value {i}").into_bytes(), 0);
        }
    } else {
        for i in (0..300u64).step_by(50) {
            set(0, format!("fx:{i}"), format!("changed {i}").into_bytes(), 0);
        }
        set(1, "db1:new".into(), b"new".to_vec(), 4_200_000_000_000);
        for i in [3u64, 4, 5] {
            let k = format!("fx:{i}");
            if let Some(s) = shard.as_deref_mut() {
                s.ctx(0).remove(k.as_bytes());
            }
            model.remove(&(0u16, k.into_bytes()));
        }
    }
}

/// The fixtures' state: after the full snapshot, and after the delta.
fn fixture_models() -> (Model, Model) {
    let mut m = Model::new();
    fixture_writes(&mut None, &mut m, true);
    let full = m.clone();
    fixture_writes(&mut None, &mut m, false);
    (full, m)
}

/// Runs a capture begun on `shard` to its end, `step` bytes of entries a
/// step, `during` after each step (writes after the barrier): the body's
/// bytes, and its count and crc. Ends the snapshot as saved.
pub(super) fn capture_body(
    shard: &mut Shard,
    step: usize,
    mut during: impl FnMut(&mut Shard),
) -> (Vec<u8>, Body) {
    let mut bytes = Vec::new();
    let mut body = Body::default();
    loop {
        let done = shard.snapshot_step(step);
        during(shard);
        let mut chunk = Vec::new();
        body.tally += shard.take_snapshot_frames(&mut chunk);
        body.crc = crc32c::crc32c_append(body.crc, &chunk);
        bytes.extend_from_slice(&chunk);
        if done && shard.snapshot_pending_bytes() == 0 {
            break;
        }
    }
    shard.end_snapshot(true);
    (bytes, body)
}

fn fixture_file(shard: &mut Shard, kind: Kind, compress: bool, version: u32) -> Vec<u8> {
    let start = shard.begin_snapshot(kind == Kind::Full, compress);
    let (body_bytes, body) = capture_body(shard, 1 << 20, |_| {});
    let id = if kind == Kind::Full { 1 } else { 2 };
    let header = FileHeader {
        kind,
        compression: compress,
        shard: 0,
        shards: 1,
        databases: 2,
        id,
        base_id: 1,
        parent_id: id - 1,
        epoch: start.epoch,
        lsn: 1000 * id,
        created_ms: 1_700_000_000_000,
    };
    let mut file = header.encode();
    // An older version's header: the same fields, its version number.
    file[8..12].copy_from_slice(&version.to_le_bytes());
    let crc = crc32c::crc32c(&file[..72]);
    file[72..76].copy_from_slice(&crc.to_le_bytes());
    file.extend_from_slice(&body_bytes);
    format::encode_end(&mut file, body.tally, body.crc);
    format::pad_to_block(&mut file);
    // This code writes version 3 bodies: one passes for an older version
    // only if it has nothing version 3 added (chunked strings, chunks
    // frames), else the fixture would lie about its version.
    if version < 3 {
        let (_, frames, _) = format::read_all(&file).unwrap();
        assert!(
            frames.iter().all(|f| f.following == 0),
            "a version-{version} fixture cannot hold chunked strings"
        );
    }
    file
}

/// Writes the fixture files (run once, by the code of the version they
/// pin: `cargo test -p engine write_snapshot_fixtures -- --ignored`).
#[test]
#[ignore]
fn write_snapshot_fixtures() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/snapshot/fixtures");
    std::fs::create_dir_all(&dir).unwrap();
    let mut shard = Shard::new(0, 1, 2);
    let mut model = Model::new();
    fixture_writes(&mut Some(&mut shard), &mut model, true);
    let full = fixture_file(&mut shard, Kind::Full, true, 2);
    fixture_writes(&mut Some(&mut shard), &mut model, false);
    let delta = fixture_file(&mut shard, Kind::Delta, false, 2);
    std::fs::write(dir.join("v2-full.snap"), &full).unwrap();
    std::fs::write(dir.join("v2-delta.snap"), &delta).unwrap();
    // Version 1: whole-page frames only, which a full snapshot is.
    let mut shard = Shard::new(0, 1, 2);
    let mut m = Model::new();
    fixture_writes(&mut Some(&mut shard), &mut m, true);
    let v1 = fixture_file(&mut shard, Kind::Full, true, 1);
    std::fs::write(dir.join("v1-full.snap"), &v1).unwrap();
}

/// The writes behind the version-3 fixtures: those of versions 1 and 2,
/// plus what version 3 added: a chunked string (changed by SETRANGE
/// before the delta, which version 3 writes whole) and a hashtable hash
/// and set of many segments.
fn fixture_writes_v3(shard: &mut Option<&mut Shard>, model: &mut Model, base: bool) {
    fixture_writes(shard, model, base);
    let big: Vec<u8> = (0..5 * 65536 + 77).map(|i| (i % 251) as u8).collect();
    if base {
        let mut h = crate::types::Hash::new();
        for i in 0..5000 {
            h.set(
                format!("f{i}").as_bytes(),
                format!("v{i}").as_bytes(),
                Default::default(),
            );
        }
        let members: Vec<Vec<u8>> = (0..7000).map(|i| format!("m{i}").into_bytes()).collect();
        let set = crate::types::Set::table_of(members.iter().map(Vec::as_slice));
        let values = [
            (0usize, "fx:big", Value::string(big), 0u64),
            (1, "fx:hash", Value::Hash(h), 4_000_000_000_007),
            (1, "fx:set", Value::Set(set), 0),
        ];
        for (db, k, v, exp) in values {
            if let Some(s) = shard.as_deref_mut() {
                s.ctx(db).set(k.as_bytes(), v.clone(), exp);
            }
            model.insert((db as u16, k.as_bytes().to_vec()), (v, exp));
        }
    } else {
        let at = 2 * 65536 + 5;
        if let Some(s) = shard.as_deref_mut() {
            if let Some(Value::Str(v)) = s.ctx(0).value_mut(b"fx:big") {
                v.set_range(at, b"changed");
            }
        }
        if let Some((Value::Str(v), _)) = model.get_mut(&(0u16, b"fx:big".to_vec())) {
            v.set_range(at, b"changed");
        }
    }
}

/// Writes the version-3 fixture files (run once, by version 3's code:
/// `cargo test -p engine write_snapshot_fixtures_v3 -- --ignored`).
#[test]
#[ignore]
fn write_snapshot_fixtures_v3() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/snapshot/fixtures");
    let mut shard = Shard::new(0, 1, 2);
    let mut model = Model::new();
    fixture_writes_v3(&mut Some(&mut shard), &mut model, true);
    let full = fixture_file(&mut shard, Kind::Full, true, 3);
    fixture_writes_v3(&mut Some(&mut shard), &mut model, false);
    let delta = fixture_file(&mut shard, Kind::Delta, false, 3);
    std::fs::write(dir.join("v3-full.snap"), &full).unwrap();
    std::fs::write(dir.join("v3-delta.snap"), &delta).unwrap();
}

/// Version-3 files (chunked strings, segmented hashes and sets, a big
/// value changed before the delta written whole) still load.
#[test]
fn fixtures_of_version_3_load() {
    let (mut at_full, mut at_delta) = (Model::new(), Model::new());
    fixture_writes_v3(&mut None, &mut at_full, true);
    fixture_writes_v3(&mut None, &mut at_delta, true);
    fixture_writes_v3(&mut None, &mut at_delta, false);
    let full = include_bytes!("fixtures/v3-full.snap").to_vec();
    let delta = include_bytes!("fixtures/v3-delta.snap").to_vec();
    for file in [&full, &delta] {
        assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), 3);
    }
    let (_, frames, _) = format::read_all(&delta).unwrap();
    assert!(
        frames.iter().any(|f| f.following > 0),
        "the big value whole"
    );
    assert_eq!(load(std::slice::from_ref(&full)), at_full);
    assert_eq!(load(&[full, delta]), at_delta);
}

/// The fixture writer refuses to label a body with chunked strings as an
/// older version (which had none).
#[test]
#[should_panic(expected = "cannot hold chunked strings")]
fn a_fixture_of_an_older_version_cannot_hold_chunked_strings() {
    let mut shard = Shard::new(0, 1, 2);
    shard
        .ctx(0)
        .set(b"big", crate::value::Value::string(vec![1u8; 100_000]), 0);
    fixture_file(&mut shard, Kind::Full, false, 2);
}

/// Files written by earlier versions still load, to the state they held.
#[test]
fn fixtures_of_versions_1_and_2_load() {
    let (at_full, at_delta) = fixture_models();
    let v1 = include_bytes!("fixtures/v1-full.snap").to_vec();
    let v2_full = include_bytes!("fixtures/v2-full.snap").to_vec();
    let v2_delta = include_bytes!("fixtures/v2-delta.snap").to_vec();
    for (file, version) in [(&v1, 1u32), (&v2_full, 2), (&v2_delta, 2)] {
        assert_eq!(u32::from_le_bytes(file[8..12].try_into().unwrap()), version);
    }
    // The delta has frames of page sub-ranges (version 2's ranges frames).
    let (_, frames, _) = format::read_all(&v2_delta).unwrap();
    assert!(frames.iter().any(|f| f.ranges));
    assert_eq!(load(std::slice::from_ref(&v1)), at_full);
    assert_eq!(load(std::slice::from_ref(&v2_full)), at_full);
    assert_eq!(load(&[v2_full, v2_delta]), at_delta);
}

/// The writes behind the version-3 fixture of chunked strings written
/// with 64 KiB chunks (M2.1's chunk size): the small keys of
/// [`fixture_writes`] and three chunked strings, one whose last chunk is
/// whole, one whose last chunk is short, one in database 1.
fn fixture_v3_writes(shard: &mut Option<&mut Shard>, model: &mut Model) {
    fixture_writes(shard, model, true);
    let bytes = |len: usize, salt: usize| -> Vec<u8> {
        (0..len)
            .map(|i| ((i + salt + i / 65_536) % 251) as u8)
            .collect()
    };
    for (db, key, v) in [
        (0usize, "big:whole", bytes(2 * 65_536, 1)),
        (0, "big:short", bytes(3 * 65_536 + 1000, 2)),
        (1, "big:db1", bytes(65_536 + 1, 3)),
    ] {
        if let Some(s) = shard.as_deref_mut() {
            s.ctx(db).set(key.as_bytes(), Value::string(v.clone()), 0);
        }
        model.insert((db as u16, key.as_bytes().to_vec()), (Value::string(v), 0));
    }
}

/// Writes the version-3 fixture of 64 KiB chunks (run once, by the code
/// whose chunk size was 64 KiB: `cargo test -p engine
/// write_v3_chunks_fixture -- --ignored`).
#[test]
#[ignore]
fn write_v3_chunks_fixture() {
    assert_eq!(
        crate::types::string::CHUNK,
        64 * 1024,
        "not the code it pins"
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src/snapshot/fixtures");
    let mut shard = Shard::new(0, 1, 2);
    let mut model = Model::new();
    fixture_v3_writes(&mut Some(&mut shard), &mut model);
    let compressed = fixture_file(&mut shard, Kind::Full, true, 3);
    std::fs::write(dir.join("v3-full-64k-chunks.snap"), &compressed).unwrap();
}

/// A version-3 file whose chunked strings were written in 64 KiB chunks
/// loads to the state it held, whatever the chunk size of the code that
/// reads it: by [`format::read_all`] and by the server's streaming reader.
#[test]
fn a_version_3_fixture_of_64_kib_chunks_loads() {
    let file = include_bytes!("fixtures/v3-full-64k-chunks.snap").to_vec();
    let mut want = Model::new();
    fixture_v3_writes(&mut None, &mut want);
    // Its chunks frames hold 64 KiB chunks: 2, 4 and 2 of them.
    let (_, frames, _) = format::read_all(&file).unwrap();
    assert_eq!(frames.iter().map(|f| f.following).sum::<u32>(), 8);
    assert_eq!(load(std::slice::from_ref(&file)), want);

    use crate::journal::io::MemIo;
    let path = std::path::Path::new("/snap/fixture.snap");
    let mut io = MemIo::new();
    io.insert_file(path, file);
    let mut got = Model::new();
    let mut coverage = Coverage::default();
    super::reader::stream_file(&mut io, path, |f| {
        coverage
            .current_entries(&f, 0, |e| {
                got.insert((f.db, e.key.to_vec()), (e.value, e.expire_at));
            })
            .map_err(|e| e.to_string())
    })
    .unwrap();
    assert_eq!(got, want);
}
