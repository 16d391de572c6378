//! DUMP/RESTORE against a real redis-server 7.0, both ways: payloads made
//! by redis-server restore here and ours restore there, for strings of
//! every shape (and our DUMP bytes are compared with Redis's); hashes and
//! sets made by redis-server in each of its encodings decode with our
//! codec (`engine::rdb`) to what HGETALL/SMEMBERS say, and our encodings
//! of them restore in redis-server to the same contents. Skipped (with a
//! note) where redis-server is not installed, except under CI.

use std::collections::{BTreeMap, BTreeSet};

use engine::rdb::{self, HashEncoding, RdbValue, SetEncoding};
use tests::{RedisProc, Rng, ServerProc};

fn dump(conn: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("DUMP").arg(key).query(conn).unwrap()
}

fn restore(conn: &mut redis::Connection, key: &[u8], payload: &[u8], extra: &[&str]) -> String {
    let r: redis::RedisResult<redis::Value> = redis::cmd("RESTORE")
        .arg(key)
        .arg(0)
        .arg(payload)
        .arg(extra)
        .query(conn);
    match r {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("error: {e}"),
    }
}

fn get(conn: &mut redis::Connection, key: &[u8]) -> Option<Vec<u8>> {
    redis::cmd("GET").arg(key).query(conn).unwrap()
}

/// The string shapes: empty, integers at each encoding's edges, integer-
/// like strings that are not canonical, short text, 21+ byte compressible
/// and incompressible, 100 KiB random, 1 MiB compressible.
fn string_shapes() -> Vec<(String, Vec<u8>)> {
    let mut rng = Rng::new(22);
    let mut random = |n: usize| -> Vec<u8> { (0..n).map(|_| rng.next_u64() as u8).collect() };
    let mut v: Vec<(String, Vec<u8>)> = [
        "",
        "0",
        "-1",
        "10",
        "127",
        "-128",
        "128",
        "32767",
        "-32768",
        "32768",
        "2147483647",
        "-2147483648",
        "2147483648",
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775808",
        "12345678901234567890",
        "007",
        "-0",
        "+1",
        " 1",
        "1 ",
        "hello",
        "aaaaaaaaaaaaaaaaaaaa",
        "aaaaaaaaaaaaaaaaaaaaa",
        "abcabcabcabcabcabcabcabc",
    ]
    .iter()
    .map(|s| (format!("{s:?}"), s.as_bytes().to_vec()))
    .collect();
    v.push(("21 random bytes".into(), random(21)));
    v.push(("100 random bytes".into(), random(100)));
    v.push(("100 KiB random".into(), random(100 * 1024)));
    let text: Vec<u8> = (0..10_000u32)
        .flat_map(|i| format!("user:{}:{} ", i % 97, i % 13).into_bytes())
        .collect();
    v.push(("4000 bytes of text".into(), text[..4000].to_vec()));
    v.push((format!("{} bytes of text", text.len()), text));
    let big: Vec<u8> = (0..1usize << 20)
        .map(|i| b"abcdefghij"[(i / 7 + i / 1000) % 10])
        .collect();
    v.push(("1 MiB compressible".into(), big));
    v
}

#[test]
fn strings_dump_and_restore_both_ways_with_redis() {
    let Some(redis) = RedisProc::start() else {
        return;
    };
    let ours = ServerProc::start(&[]);
    let (mut r, mut o) = (redis.conn(), ours.conn());
    let mut differ = Vec::new();
    for (i, (name, s)) in string_shapes().into_iter().enumerate() {
        let key = format!("s{i}");
        let key = key.as_bytes();
        let _: () = redis::cmd("SET").arg(key).arg(&s).query(&mut r).unwrap();
        let _: () = redis::cmd("SET").arg(key).arg(&s).query(&mut o).unwrap();
        let theirs = dump(&mut r, key).unwrap();
        let mine = dump(&mut o, key).unwrap();
        if theirs != mine {
            differ.push(format!("{name} ({} vs {} bytes)", mine.len(), theirs.len()));
        }
        // Redis's payload restores here, ours there.
        assert_eq!(
            restore(&mut o, b"from-redis", &theirs, &["REPLACE"]),
            "ok",
            "{name}"
        );
        assert_eq!(
            get(&mut o, b"from-redis").as_deref(),
            Some(&s[..]),
            "{name}"
        );
        assert_eq!(
            restore(&mut r, b"from-ours", &mine, &["REPLACE"]),
            "ok",
            "{name}"
        );
        assert_eq!(get(&mut r, b"from-ours").as_deref(), Some(&s[..]), "{name}");
    }
    assert!(
        differ.is_empty(),
        "our DUMP bytes differ from redis-server's for: {differ:?}"
    );
    // The same answers to the same mistakes.
    let p = dump(&mut r, b"s3").unwrap();
    let mut flipped = p.clone();
    flipped[1] ^= 0x40;
    let mut newer = p[..p.len() - 10].to_vec();
    newer.extend_from_slice(&11u16.to_le_bytes());
    let crc = rdb::crc64::crc64(0, &newer);
    newer.extend_from_slice(&crc.to_le_bytes());
    let bad_body = rdb::finish_payload(vec![0, 0x05, b'a']);
    let cases: Vec<(&[u8], Vec<u8>, Vec<&str>)> = vec![
        (b"s3", p.clone(), vec![]),
        (b"new", flipped, vec![]),
        (b"new", newer, vec![]),
        (b"new", bad_body, vec![]),
        (b"new", p.clone(), vec!["IDLETIME", "-1"]),
        (b"new", p.clone(), vec!["FREQ", "300"]),
        (b"new", p.clone(), vec!["FREQ", "3", "IDLETIME", "3"]),
        (
            b"new",
            p.clone(),
            vec!["ABSTTL", "IDLETIME", "10", "REPLACE"],
        ),
    ];
    for (key, payload, extra) in cases {
        let theirs = restore(&mut r, key, &payload, &extra);
        let mine = restore(&mut o, key, &payload, &extra);
        assert_eq!(
            mine,
            theirs,
            "RESTORE {:?} .. {extra:?}",
            String::from_utf8_lossy(key)
        );
    }
    assert_eq!(dump(&mut o, b"missing"), None);
}

fn config_set(conn: &mut redis::Connection, name: &str, value: &str) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .query(conn)
        .unwrap();
}

fn encoding(conn: &mut redis::Connection, key: &str) -> String {
    redis::cmd("OBJECT")
        .arg("ENCODING")
        .arg(key)
        .query(conn)
        .unwrap()
}

/// The thresholds the shapes below are chosen around, set explicitly
/// (a build's defaults may differ: Debian's 7.0.15 has 512 entries).
fn set_thresholds(conn: &mut redis::Connection) {
    config_set(conn, "hash-max-listpack-entries", "128");
    config_set(conn, "hash-max-listpack-value", "64");
    config_set(conn, "set-max-intset-entries", "512");
}

type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Hashes of several shapes: (name, pairs, the encoding redis-server 7.0
/// gives them with the thresholds of [`set_thresholds`]).
fn hash_shapes() -> Vec<(&'static str, Pairs, &'static str)> {
    let small: Pairs = [
        ("a", "1"),
        ("b", "hello"),
        ("n", "-70000"),
        ("big", "9000000000"),
        ("", ""),
    ]
    .iter()
    .map(|(f, v)| (f.as_bytes().to_vec(), v.as_bytes().to_vec()))
    .collect();
    let many: Pairs = (0..300)
        .map(|i| {
            (
                format!("field:{i}").into_bytes(),
                format!("{}", i * 37 - 500).into_bytes(),
            )
        })
        .collect();
    let long = vec![
        (b"k".to_vec(), vec![b'x'; 100]),
        (b"j".to_vec(), b"1".to_vec()),
    ];
    vec![
        ("small", small, "listpack"),
        ("300 fields", many, "hashtable"),
        ("a 100-byte value", long, "hashtable"),
    ]
}

fn set_shapes() -> Vec<(&'static str, Vec<Vec<u8>>, &'static str)> {
    let ints = |r: std::ops::Range<i64>, mul: i64| -> Vec<Vec<u8>> {
        r.map(|i| (i * mul).to_string().into_bytes()).collect()
    };
    vec![
        ("small ints", ints(-5..20, 1), "intset"),
        ("wide ints", ints(-3..3, 1 << 40), "intset"),
        ("600 ints", ints(0..600, 3), "hashtable"),
        (
            "strings",
            ["a", "b", "hello", "1"]
                .iter()
                .map(|s| s.as_bytes().to_vec())
                .collect(),
            "hashtable",
        ),
    ]
}

fn hgetall(conn: &mut redis::Connection, key: &str) -> BTreeMap<Vec<u8>, Vec<u8>> {
    redis::cmd("HGETALL").arg(key).query(conn).unwrap()
}

fn smembers(conn: &mut redis::Connection, key: &str) -> BTreeSet<Vec<u8>> {
    redis::cmd("SMEMBERS").arg(key).query(conn).unwrap()
}

#[test]
fn redis_hashes_and_sets_decode_with_our_codec() {
    let Some(redis) = RedisProc::start() else {
        return;
    };
    let mut r = redis.conn();
    set_thresholds(&mut r);
    for (name, pairs, enc) in hash_shapes() {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(name);
        for (f, v) in &pairs {
            cmd.arg(f).arg(v);
        }
        let _: i64 = cmd.query(&mut r).unwrap();
        assert_eq!(encoding(&mut r, name), enc, "{name}");
        let p = dump(&mut r, name.as_bytes()).unwrap();
        let Ok(RdbValue::Hash(got)) = rdb::decode_payload(&p) else {
            panic!("{name}: {:?}", rdb::decode_payload(&p));
        };
        let got: BTreeMap<_, _> = got.into_iter().collect();
        assert_eq!(got, hgetall(&mut r, name), "{name} ({enc})");
    }
    for (name, members, enc) in set_shapes() {
        let _: i64 = redis::cmd("SADD")
            .arg(name)
            .arg(&members)
            .query(&mut r)
            .unwrap();
        assert_eq!(encoding(&mut r, name), enc, "{name}");
        let p = dump(&mut r, name.as_bytes()).unwrap();
        let Ok(RdbValue::Set(got)) = rdb::decode_payload(&p) else {
            panic!("{name}: {:?}", rdb::decode_payload(&p));
        };
        let n = got.len();
        let got: BTreeSet<_> = got.into_iter().collect();
        assert_eq!(n, got.len(), "{name}: duplicates");
        assert_eq!(got, smembers(&mut r, name), "{name} ({enc})");
    }
    // A one-field hash forced to a hashtable (threshold 0) decodes too.
    config_set(&mut r, "hash-max-listpack-entries", "0");
    let _: i64 = redis::cmd("HSET")
        .arg("forced")
        .arg("f")
        .arg("v")
        .query(&mut r)
        .unwrap();
    assert_eq!(encoding(&mut r, "forced"), "hashtable");
    let p = dump(&mut r, b"forced").unwrap();
    assert_eq!(p[0], rdb::types::HASH);
    assert_eq!(
        rdb::decode_payload(&p),
        Ok(RdbValue::Hash(vec![(b"f".to_vec(), b"v".to_vec())]))
    );
}

#[test]
fn our_hash_and_set_payloads_restore_in_redis() {
    let Some(redis) = RedisProc::start() else {
        return;
    };
    let mut r = redis.conn();
    set_thresholds(&mut r);
    for (name, pairs, enc) in hash_shapes() {
        for ours in [HashEncoding::Listpack, HashEncoding::Hashtable] {
            let p = rdb::dump_hash(pairs.iter().map(|(f, v)| (&f[..], &v[..])), ours);
            let key = format!("{name} {ours:?}");
            assert_eq!(restore(&mut r, key.as_bytes(), &p, &[]), "ok", "{key}");
            let want: BTreeMap<_, _> = pairs.iter().cloned().collect();
            assert_eq!(hgetall(&mut r, &key), want, "{key}");
            // Redis converts on load by its own thresholds: a listpack
            // payload only by its entry count.
            let want_enc = match ours {
                HashEncoding::Listpack if pairs.len() <= 128 => "listpack",
                _ => enc,
            };
            assert_eq!(encoding(&mut r, &key), want_enc, "{key}");
        }
    }
    for (name, members, enc) in set_shapes() {
        let all_ints = members.iter().all(|m| rdb::canonical_i64(m).is_some());
        for ours in [SetEncoding::Intset, SetEncoding::Hashtable] {
            let key = format!("{name} {ours:?}");
            let Ok(p) = rdb::dump_set(members.iter().map(Vec::as_slice), ours) else {
                assert!(!all_ints && ours == SetEncoding::Intset, "{key}");
                continue;
            };
            assert_eq!(restore(&mut r, key.as_bytes(), &p, &[]), "ok", "{key}");
            let want: BTreeSet<_> = members.iter().cloned().collect();
            assert_eq!(smembers(&mut r, &key), want, "{key}");
            // Redis converts on load by its own thresholds.
            assert_eq!(encoding(&mut r, &key), enc, "{key}");
        }
    }
}
