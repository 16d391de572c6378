//! Unit tests of the RDB value codec. The round trips with a real
//! redis-server (both directions) are in `tests/tests/dump.rs`.

#![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]

use super::*;
use proptest::prelude::*;

fn obj(payload: &[u8]) -> (u8, &[u8]) {
    let body = verify_payload(payload).unwrap();
    (body[0], &body[1..])
}

fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..n).map(|_| rng(&mut s) as u8).collect()
}

#[test]
fn crc64_check_value() {
    assert_eq!(crc64::crc64(0, b"123456789"), 0xe9c6_d914_c4b8_d9ca);
    // Chunked and whole agree (the 8-byte path and the tail).
    let data = random_bytes(1001, 7);
    let (a, b) = data.split_at(333);
    assert_eq!(crc64::crc64(crc64::crc64(0, a), b), crc64::crc64(0, &data));
}

#[test]
fn string_payload_matches_redis_documented_dump() {
    // Redis's DUMP docs: SET mykey 10; DUMP mykey.
    assert_eq!(
        dump_string(b"10"),
        b"\x00\xc0\n\n\x00n\x9fWE\x0e\xaec\xbb".to_vec()
    );
}

#[test]
fn string_encodings() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"", b"\x00"),
        (b"0", b"\xc0\x00"),
        (b"-1", b"\xc0\xff"),
        (b"127", b"\xc0\x7f"),
        (b"-128", b"\xc0\x80"),
        (b"128", b"\xc1\x80\x00"),
        (b"-32768", b"\xc1\x00\x80"),
        (b"32768", b"\xc2\x00\x80\x00\x00"),
        (b"-2147483648", b"\xc2\x00\x00\x00\x80"),
        (b"2147483648", b"\x0a2147483648"),
        (b"007", b"\x03007"),
        (b"-0", b"\x02-0"),
        (b"+1", b"\x02+1"),
        (b"9223372036854775807", b"\x139223372036854775807"),
    ];
    for (s, body) in cases {
        let p = dump_string(s);
        let (ty, b) = obj(&p);
        assert_eq!(ty, types::STRING);
        assert_eq!(&b, body, "{:?}", String::from_utf8_lossy(s));
        assert_eq!(decode_payload(&p), Ok(RdbValue::Str(s.to_vec())));
    }
}

#[test]
fn long_strings_compress_when_it_saves_space() {
    let s = b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".to_vec();
    let p = dump_string(&s);
    assert_eq!(obj(&p).1[0], 0xC3, "21+ compressible bytes are LZF");
    assert_eq!(decode_payload(&p), Ok(RdbValue::Str(s)));
    // 20 bytes: never compressed.
    let p = dump_string(&[b'a'; 20]);
    assert_eq!(obj(&p).1[0], 20);
    // Random bytes do not compress: raw, length-prefixed.
    let r = random_bytes(100 * 1024, 3);
    let p = dump_string(&r);
    assert_eq!(&obj(&p).1[..5], &[0x80, 0x00, 0x01, 0x90, 0x00]);
    assert_eq!(decode_payload(&p), Ok(RdbValue::Str(r)));
    // 1 MiB compressible.
    let big: Vec<u8> = (0..1 << 20).map(|i| b"abcdefgh"[(i / 3) % 8]).collect();
    let p = dump_string(&big);
    assert!(p.len() < big.len() / 10);
    assert_eq!(decode_payload(&p), Ok(RdbValue::Str(big)));
}

#[test]
fn lzf_round_trips() {
    let mut inputs: Vec<Vec<u8>> = vec![
        b"abcabcabcabcabcabcabcabcabc".to_vec(),
        vec![0u8; 100_000],
        random_bytes(5000, 9),
    ];
    for n in [21, 22, 33, 64, 300, 8200, 70_000] {
        inputs.push((0..n).map(|i| (i % 7) as u8 + (i / 500) as u8).collect());
        let mut v = random_bytes(n, n as u64);
        for i in (0..n).step_by(11) {
            v[i] = 0;
        }
        inputs.push(v);
    }
    for input in inputs {
        // Generous room: always compresses (possibly expanding).
        let c = lzf::compress(&input, input.len() + input.len() / 16 + 64).unwrap();
        assert_eq!(lzf::decompress(&c, input.len()).unwrap(), input);
        // Too small an output: None, never a panic.
        for room in [1, 2, 3, 4, c.len().saturating_sub(1)] {
            if room < c.len() {
                assert!(lzf::compress(&input, room).is_none());
            }
        }
    }
}

#[test]
fn lzf_refuses_lies() {
    let input = vec![7u8; 1000];
    let c = lzf::compress(&input, 996).unwrap();
    assert!(lzf::decompress(&c, 999).is_err());
    assert!(lzf::decompress(&c, 1001).is_err());
    // A claimed length beyond what the bytes can expand to: refused
    // before allocating.
    assert!(lzf::decompress(&c, usize::MAX / 2).is_err());
    // A back reference before the start.
    assert!(lzf::decompress(&[0x20, 0x00], 3).is_err());
}

#[test]
fn hash_encodings_round_trip() {
    let pairs: Vec<(Vec<u8>, Vec<u8>)> = vec![
        (b"a".to_vec(), b"1".to_vec()),
        (b"-5000".to_vec(), b"hello".to_vec()),
        (b"big".to_vec(), b"-9223372036854775808".to_vec()),
        (b"i16".to_vec(), b"-30000".to_vec()),
        (b"i24".to_vec(), b"8000000".to_vec()),
        (b"i32".to_vec(), b"-2000000000".to_vec()),
        (b"i64".to_vec(), b"9000000000".to_vec()),
        (b"".to_vec(), vec![b'x'; 70]),
        (b"long".to_vec(), vec![b'y'; 5000]),
        (b"0".to_vec(), b"007".to_vec()),
    ];
    for enc in [HashEncoding::Listpack, HashEncoding::Hashtable] {
        let p = dump_hash(pairs.iter().map(|(f, v)| (&f[..], &v[..])), enc);
        let want_ty = match enc {
            HashEncoding::Listpack => types::HASH_LISTPACK,
            HashEncoding::Hashtable => types::HASH,
        };
        assert_eq!(obj(&p).0, want_ty);
        assert_eq!(decode_payload(&p), Ok(RdbValue::Hash(pairs.clone())));
    }
}

#[test]
fn set_encodings_round_trip() {
    let ints: Vec<Vec<u8>> = ["-3", "0", "7", "40000", "-9223372036854775808"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let p = dump_set(ints.iter().map(Vec::as_slice), SetEncoding::Intset).unwrap();
    assert_eq!(obj(&p).0, types::SET_INTSET);
    let RdbValue::Set(mut got) = decode_payload(&p).unwrap() else {
        panic!()
    };
    let mut want = ints.clone();
    got.sort();
    want.sort();
    assert_eq!(got, want);
    let p = dump_set(ints.iter().map(Vec::as_slice), SetEncoding::Hashtable).unwrap();
    assert_eq!(obj(&p).0, types::SET);
    assert_eq!(decode_payload(&p), Ok(RdbValue::Set(ints)));
    assert!(dump_set([&b"x"[..]].into_iter(), SetEncoding::Intset).is_err());
    assert!(dump_set([&b"01"[..]].into_iter(), SetEncoding::Intset).is_err());
    // Intset widths: 2, 4, 8 bytes.
    for (vals, width) in [(vec![1, -2], 2), (vec![1, 70000], 4), (vec![1, 1 << 40], 8)] {
        let blob = intset::build(&vals);
        assert_eq!(blob[0] as usize, width);
        let mut sorted = vals.clone();
        sorted.sort();
        assert_eq!(intset::read(&blob).unwrap(), sorted);
    }
}

/// A ziplist as Redis before 7.0 builds it (test side, from the spec).
fn ziplist(items: &[&[u8]]) -> Vec<u8> {
    let mut body = Vec::new();
    let mut prev = 0usize;
    let mut tail = 10;
    for s in items {
        let start = body.len();
        tail = 10 + start;
        if prev < 254 {
            body.push(prev as u8);
        } else {
            body.push(254);
            body.extend_from_slice(&(prev as u32).to_le_bytes());
        }
        match canonical_i64(s) {
            Some(v @ 0..=12) => body.push(0xF1 + v as u8),
            Some(v) if i8::try_from(v).is_ok() => body.extend_from_slice(&[0xFE, v as u8]),
            Some(v) if i16::try_from(v).is_ok() => {
                body.push(0xC0);
                body.extend_from_slice(&(v as i16).to_le_bytes());
            }
            Some(v) if (-(1 << 23)..1 << 23).contains(&v) => {
                body.push(0xF0);
                body.extend_from_slice(&(v as i32).to_le_bytes()[..3]);
            }
            Some(v) if i32::try_from(v).is_ok() => {
                body.push(0xD0);
                body.extend_from_slice(&(v as i32).to_le_bytes());
            }
            Some(v) => {
                body.push(0xE0);
                body.extend_from_slice(&v.to_le_bytes());
            }
            None if s.len() < 64 => {
                body.push(s.len() as u8);
                body.extend_from_slice(s);
            }
            None if s.len() < 16384 => {
                body.extend_from_slice(&[0x40 | (s.len() >> 8) as u8, s.len() as u8]);
                body.extend_from_slice(s);
            }
            None => {
                body.push(0x80);
                body.extend_from_slice(&(s.len() as u32).to_be_bytes());
                body.extend_from_slice(s);
            }
        }
        prev = body.len() - start;
    }
    let mut zl = Vec::new();
    zl.extend_from_slice(&((11 + body.len()) as u32).to_le_bytes());
    zl.extend_from_slice(&(tail as u32).to_le_bytes());
    zl.extend_from_slice(&(items.len() as u16).to_le_bytes());
    zl.extend_from_slice(&body);
    zl.push(0xFF);
    zl
}

fn payload_of(ty: u8, blob: &[u8]) -> Vec<u8> {
    let mut o = vec![ty];
    write_string(&mut o, blob);
    finish_payload(o)
}

#[test]
fn hash_ziplist_from_older_redis() {
    let long = vec![b'z'; 300];
    let items: Vec<&[u8]> = vec![
        b"a",
        b"1",
        b"b",
        b"hello",
        b"c",
        b"-100",
        b"d",
        b"1000",
        b"e",
        b"5000000",
        b"f",
        b"-2000000000",
        b"g",
        b"123456789012",
        b"h",
        &long,
        b"i",
        b"12",
    ];
    let zl = ziplist(&items);
    let got = decode_payload(&payload_of(types::HASH_ZIPLIST, &zl)).unwrap();
    let want: Vec<(Vec<u8>, Vec<u8>)> = items
        .chunks(2)
        .map(|c| (c[0].to_vec(), c[1].to_vec()))
        .collect();
    assert_eq!(got, RdbValue::Hash(want));
    // Duplicate fields, an odd count, a wrong tail: refused.
    let dup = ziplist(&[b"a", b"1", b"a", b"2"]);
    assert!(decode_payload(&payload_of(types::HASH_ZIPLIST, &dup)).is_err());
    let odd = ziplist(&[b"a", b"1", b"b"]);
    assert!(decode_payload(&payload_of(types::HASH_ZIPLIST, &odd)).is_err());
    let mut tail = ziplist(&[b"a", b"1"]);
    tail[4] += 1;
    assert!(decode_payload(&payload_of(types::HASH_ZIPLIST, &tail)).is_err());
    let empty = ziplist(&[]);
    assert!(decode_payload(&payload_of(types::HASH_ZIPLIST, &empty)).is_err());
}

#[test]
fn hash_zipmap_from_very_old_redis() {
    // {"foo": "bar", "hello": "world"} with 2 free bytes after "bar".
    let mut zm = vec![2u8];
    zm.extend_from_slice(b"\x03foo\x03\x02barXX\x05hello\x05\x00world\xff");
    let got = decode_payload(&payload_of(types::HASH_ZIPMAP, &zm)).unwrap();
    assert_eq!(
        got,
        RdbValue::Hash(vec![
            (b"foo".to_vec(), b"bar".to_vec()),
            (b"hello".to_vec(), b"world".to_vec())
        ])
    );
    // A 5-byte length.
    let long = vec![b'v'; 300];
    let mut zm = vec![1u8, 1, b'k', 254];
    zm.extend_from_slice(&300u32.to_le_bytes());
    zm.push(0);
    zm.extend_from_slice(&long);
    zm.push(0xff);
    assert_eq!(
        decode_payload(&payload_of(types::HASH_ZIPMAP, &zm)).unwrap(),
        RdbValue::Hash(vec![(b"k".to_vec(), long)])
    );
    // Wrong count, duplicate keys.
    let bad = b"\x03\x01a\x01\x00b\xff";
    assert!(decode_payload(&payload_of(types::HASH_ZIPMAP, bad)).is_err());
    let dup = b"\x02\x01a\x01\x00b\x01a\x01\x00c\xff";
    assert!(decode_payload(&payload_of(types::HASH_ZIPMAP, dup)).is_err());
}

#[test]
fn listpack_validation() {
    let lp = listpack::build([&b"a"[..], b"1", b"a", b"2"]);
    assert!(decode_payload(&payload_of(types::HASH_LISTPACK, &lp)).is_err());
    let mut lp = listpack::build([&b"a"[..], b"1"]);
    lp[4] = 3; // count
    assert!(decode_payload(&payload_of(types::HASH_LISTPACK, &lp)).is_err());
    lp[4] = 0xff;
    lp[5] = 0xff; // unknown count: fine
    assert!(decode_payload(&payload_of(types::HASH_LISTPACK, &lp)).is_ok());
    let empty = listpack::build([]);
    assert!(decode_payload(&payload_of(types::HASH_LISTPACK, &empty)).is_err());
    // Backlens of every size class.
    for n in [10, 200, 20_000, 3_000_000] {
        let s = vec![b'q'; n];
        let lp = listpack::build([&b"f"[..], &s]);
        assert_eq!(listpack::read(&lp).unwrap(), vec![b"f".to_vec(), s]);
    }
}

#[test]
fn intset_validation() {
    let good = intset::build(&[1, 2, 3]);
    assert!(intset::read(&good).is_ok());
    let mut dup = good.clone();
    dup[10] = 1; // second element = first
    assert!(intset::read(&dup).is_err());
    let mut order = good.clone();
    order[8] = 9;
    assert!(intset::read(&order).is_err());
    let mut enc = good.clone();
    enc[0] = 3;
    assert!(intset::read(&enc).is_err());
    assert!(intset::read(&intset::build(&[])).is_err());
}

#[test]
fn version_and_checksum() {
    let mut p = dump_string(b"hello");
    assert!(decode_payload(&p).is_ok());
    // Version 9 (older): accepted; 11: refused.
    for (ver, ok) in [(9u16, true), (10, true), (11, false)] {
        let n = p.len();
        p.truncate(n - 10);
        let p2 = {
            let mut o = p.clone();
            o.extend_from_slice(&ver.to_le_bytes());
            let crc = crc64::crc64(0, &o);
            o.extend_from_slice(&crc.to_le_bytes());
            o
        };
        p = dump_string(b"hello");
        assert_eq!(decode_payload(&p2).is_ok(), ok, "version {ver}");
        if !ok {
            assert_eq!(decode_payload(&p2), Err(PayloadError::VersionOrChecksum));
        }
    }
    let last = p.len() - 1;
    p[last] ^= 1;
    assert_eq!(decode_payload(&p), Err(PayloadError::VersionOrChecksum));
    assert_eq!(
        decode_payload(b"short"),
        Err(PayloadError::VersionOrChecksum)
    );
}

#[test]
fn the_object_may_run_into_the_footer_as_in_redis() {
    // A 5-byte string with 1 byte of body: Redis reads the object from the
    // whole payload buffer, so it takes 4 bytes of the footer (redis-server
    // 7.0.15 answers OK to this payload; tests/tests/dump.rs compares).
    let p = finish_payload(vec![types::STRING, 0x05, b'a']);
    let Ok(RdbValue::Str(s)) = decode_payload(&p) else {
        panic!("{:?}", decode_payload(&p))
    };
    assert_eq!(&s[..], &[&b"a"[..], &p[3..7]].concat()[..]);
    let p = finish_payload(vec![types::STRING, 0x3f, b'a']);
    assert!(matches!(
        decode_payload(&p),
        Err(PayloadError::BadFormat(_))
    ));
}

#[test]
fn other_types_answer_clearly() {
    for (ty, what) in [
        (types::LIST_QUICKLIST_2, "list"),
        (types::ZSET_LISTPACK, "sorted set"),
        (types::ZSET_2, "sorted set"),
        (types::STREAM_LISTPACKS_2, "stream"),
        (200, "unknown"),
    ] {
        match decode_object(ty, &[0]) {
            Err(e) => assert!(e.0.contains(what), "{e}"),
            other => panic!("{other:?}"),
        }
        let p = finish_payload(vec![ty, 0]);
        match decode_payload(&p) {
            Err(PayloadError::Unsupported(name)) => assert_eq!(name, what),
            Err(PayloadError::BadFormat(e)) => assert!(e.0.contains(what), "{e}"),
            other => panic!("{other:?}"),
        }
    }
}

/// A few payloads of every kind, for the damage tests.
fn samples() -> Vec<Vec<u8>> {
    let pairs = [
        (&b"f1"[..], &b"v1"[..]),
        (b"n", b"123456"),
        (b"long", &[b'L'; 80][..]),
    ];
    let members = [&b"1"[..], b"-70000", b"300"];
    vec![
        dump_string(b"hello"),
        dump_string(b"-12345"),
        dump_string(&[b'x'; 100]),
        dump_hash(pairs.into_iter(), HashEncoding::Listpack),
        dump_hash(pairs.into_iter(), HashEncoding::Hashtable),
        dump_set(members.into_iter(), SetEncoding::Intset).unwrap(),
        dump_set(members.into_iter(), SetEncoding::Hashtable).unwrap(),
        payload_of(types::HASH_ZIPLIST, &ziplist(&[b"a", b"1", b"bb", b"xyz"])),
        payload_of(types::HASH_ZIPMAP, b"\x01\x03foo\x03\x01barX\xff"),
    ]
}

#[test]
fn every_truncation_and_flipped_byte_is_an_error_not_a_panic() {
    for p in samples() {
        assert!(decode_payload(&p).is_ok());
        for cut in 0..p.len() {
            assert!(decode_payload(&p[..cut]).is_err(), "cut at {cut}");
        }
        for i in 0..p.len() {
            for bit in [0x01u8, 0x80, 0xff] {
                let mut q = p.clone();
                q[i] ^= bit;
                assert!(decode_payload(&q).is_err(), "flip {bit:#x} at {i}");
            }
        }
        // Past the checksum, the decoder itself: every cut and flip of the
        // object body, with a valid footer, never panics; cuts fail.
        let body = &p[..p.len() - 10];
        for cut in 1..body.len() {
            let _ = decode_object(body[0], &body[1..cut]);
            let q = finish_payload(body[..cut].to_vec());
            let _ = decode_payload(&q);
        }
        for i in 0..body.len() {
            for bit in 0..8 {
                let mut q = body.to_vec();
                q[i] ^= 1 << bit;
                let _ = decode_payload(&finish_payload(q));
            }
        }
    }
}

#[test]
fn lying_lengths_allocate_nothing() {
    // A set claiming 2^32 members, a string claiming 2^62 bytes, an LZF
    // string claiming 4 GiB from 3 bytes: errors, at once.
    let set = finish_payload(vec![types::SET, 0x80, 0xff, 0xff, 0xff, 0xff, 0x01, b'a']);
    assert!(decode_payload(&set).is_err());
    let mut s = vec![types::STRING, 0x81];
    s.extend_from_slice(&(1u64 << 62).to_be_bytes());
    assert!(decode_payload(&finish_payload(s)).is_err());
    let lzf = finish_payload(vec![
        types::STRING,
        0xC3,
        0x03,
        0x80,
        0xff,
        0xff,
        0xff,
        0xff,
        0x00,
        b'a',
        b'b',
    ]);
    assert!(decode_payload(&lzf).is_err());
}

proptest! {
    #[test]
    fn any_string_round_trips(s in proptest::collection::vec(any::<u8>(), 0..300), rep in 0usize..40) {
        let mut v = s.clone();
        for _ in 0..rep { v.extend_from_slice(&s[..s.len().min(7)]); }
        prop_assert_eq!(decode_payload(&dump_string(&v)), Ok(RdbValue::Str(v)));
    }

    #[test]
    fn any_hash_and_set_round_trip(
        m in proptest::collection::btree_map(
            proptest::collection::vec(any::<u8>(), 0..30),
            proptest::collection::vec(any::<u8>(), 0..30), 1..40),
        ints in proptest::collection::btree_set(any::<i64>(), 1..40),
    ) {
        let pairs: Vec<(Vec<u8>, Vec<u8>)> = m.into_iter().collect();
        for enc in [HashEncoding::Listpack, HashEncoding::Hashtable] {
            let p = dump_hash(pairs.iter().map(|(f, v)| (&f[..], &v[..])), enc);
            prop_assert_eq!(decode_payload(&p), Ok(RdbValue::Hash(pairs.clone())));
        }
        let text: Vec<Vec<u8>> = ints.iter().map(|i| i.to_string().into_bytes()).collect();
        let p = dump_set(text.iter().map(Vec::as_slice), SetEncoding::Intset).unwrap();
        // An intset reads back ascending, which is the btree order.
        prop_assert_eq!(decode_payload(&p), Ok(RdbValue::Set(text.clone())));
    }

    #[test]
    fn random_bodies_never_panic(ty in 0u8..20, body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_object(ty, &body);
        let _ = decode_payload(&finish_payload([&[ty][..], &body].concat()));
    }
}
