use super::super::io::{segment_file_name, shard_dir_name};
use super::super::record::{
    encode, encode_command, encode_padding, RecordHeaderFields, SECTOR_SIZE,
};
use super::*;
use crate::testkit::TempDir;

/// The directory of shard `i` in a test log directory, created.
trait ShardDir {
    fn shard(&self, i: usize) -> PathBuf;
}

impl ShardDir for TempDir {
    fn shard(&self, i: usize) -> PathBuf {
        let d = self.0.join(shard_dir_name(i));
        fs::create_dir_all(&d).unwrap();
        d
    }
}

const PREALLOC: usize = 8192;

type Cmd = Vec<Vec<u8>>;

fn cmd(i: u64) -> Cmd {
    vec![
        b"SET".to_vec(),
        format!("key:{i}").into_bytes(),
        format!("value-{i}").into_bytes(),
    ]
}

fn push(out: &mut Vec<u8>, f: RecordHeaderFields, args: &Cmd) {
    encode_command(&f, args.iter().map(Vec::as_slice), out).unwrap();
}

/// Encodes single-shard records `lsns` (command `cmd(lsn)`).
fn segment(lsns: impl IntoIterator<Item = u64>) -> Vec<u8> {
    let mut out = Vec::new();
    for l in lsns {
        push(&mut out, RecordHeaderFields::single(l), &cmd(l));
    }
    out
}

/// Writes a segment file named `first_lsn`, zero-filled to `len` bytes.
fn write_seg(dir: &Path, first_lsn: u64, bytes: &[u8], len: usize) -> PathBuf {
    let mut b = bytes.to_vec();
    b.resize(len.max(b.len()), 0);
    let p = dir.join(segment_file_name(first_lsn));
    fs::write(&p, b).unwrap();
    p
}

fn loaded(log: &ShardLog) -> Vec<(u64, Cmd)> {
    log.records
        .iter()
        .map(|r| {
            let mut c = log.commands(r).unwrap();
            assert_eq!(c.len(), 1);
            (r.lsn, c.pop().unwrap())
        })
        .collect()
}

fn expected(lsns: impl IntoIterator<Item = u64>) -> Vec<(u64, Cmd)> {
    lsns.into_iter().map(|l| (l, cmd(l))).collect()
}

fn strict() -> RecoveryOptions {
    RecoveryOptions {
        aof_load_truncated: false,
        ..RecoveryOptions::default()
    }
}

#[test]
fn segment_names_round_trip_and_bad_names_are_refused() {
    assert_eq!(segment_file_name(42), "seg-00000000000000000042.log");
    assert_eq!(parse_segment_file_name(&segment_file_name(42)), Some(42));
    assert_eq!(
        parse_segment_file_name(&segment_file_name(u64::MAX)),
        Some(u64::MAX)
    );
    assert_eq!(parse_segment_file_name("seg-42.log"), None);
    let t = TempDir::new("names");
    let d = t.shard(0);
    fs::write(d.join("notes.txt"), b"ignored").unwrap();
    // The spare segment (zeros made ahead of time) is not a segment yet.
    fs::write(super::super::io::spare_path(&d), [0u8; 4096]).unwrap();
    assert!(read_shard_log(&d).unwrap().records.is_empty());
    fs::write(d.join("seg-1.log"), b"").unwrap();
    let e = read_shard_log(&d).unwrap_err();
    assert!(matches!(e, RecoveryError::Corruption { .. }), "{e}");
    assert!(e.to_string().contains("seg-1.log"), "{e}");
}

#[test]
fn a_log_after_a_snapshot_skips_what_the_snapshot_holds() {
    let t = TempDir::new("after");
    let d = t.shard(0);
    write_seg(&d, 5, &segment(5..=9), PREALLOC);
    write_seg(&d, 10, &segment(10..=14), PREALLOC);
    write_seg(&d, 15, &segment(15..=17), PREALLOC);
    let with = |after| RecoveryOptions {
        after: Some(after),
        ..RecoveryOptions::default()
    };
    // Segments wholly at or before `after` are not even read.
    let log = read_shard_log_with(&d, &with(11)).unwrap();
    assert_eq!(loaded(&log), expected(12..=17));
    assert_eq!(log.segments.len(), 2);
    assert_eq!(log.next_lsn(), 18);
    let log = read_shard_log_with(&d, &with(14)).unwrap();
    assert_eq!(loaded(&log), expected(15..=17));
    assert_eq!(log.segments.len(), 1);
    // The snapshot is ahead of the log (its tail was lost): nothing to
    // replay, and the log continues after what was read.
    let log = read_shard_log_with(&d, &with(40)).unwrap();
    assert!(log.records.is_empty());
    assert_eq!(log.last_read, Some(17));
    // A log that starts after the snapshot's lsn + 1 misses records.
    for after in [0, 3] {
        let e = read_shard_log_with(&d, &with(after)).unwrap_err();
        assert!(matches!(e, RecoveryError::Missing { first: 5, .. }), "{e}");
        assert!(e.to_string().contains("are missing"), "{e}");
    }
    assert_eq!(
        loaded(&read_shard_log_with(&d, &with(4)).unwrap()),
        expected(5..=17)
    );
    // The tools (no base) read a log starting anywhere.
    assert_eq!(loaded(&read_shard_log(&d).unwrap()), expected(5..=17));
    // A writer restarted past the end of the log (the snapshot was
    // ahead) leaves a gap that only an older base would see.
    write_seg(&d, 41, &segment(41..=42), PREALLOC);
    assert_eq!(
        loaded(&read_shard_log_with(&d, &with(40)).unwrap()),
        expected(41..=42)
    );
    let e = read_shard_log_with(&d, &with(16)).unwrap_err();
    assert!(e.to_string().contains("gap"), "{e}");
}

#[test]
fn clean_multi_segment_log_loads_in_order() {
    let t = TempDir::new("clean");
    let d = t.shard(0);
    let mut s1 = segment(1..=4);
    encode_padding(HEADER_LEN + 10, &mut s1).unwrap();
    s1.extend(segment(5..=6));
    // Written out of name order on purpose; a full segment (no zeros).
    write_seg(&d, 11, &segment(11..=13), PREALLOC);
    write_seg(&d, 7, &segment(7..=10), 0);
    write_seg(&d, 1, &s1, PREALLOC);
    // A preallocated, still empty next segment.
    write_seg(&d, 14, &[], PREALLOC);
    let log = read_shard_log(&d).unwrap();
    assert_eq!(loaded(&log), expected(1..=13));
    assert_eq!(log.torn_tail, None);
    assert_eq!(log.segments.len(), 4);
    assert_eq!(log.last_lsn(), Some(13));
    assert_eq!(log.next_lsn(), 14);
    assert_eq!(log.segments[0].valid_end, s1.len() as u64);
    assert_eq!(log.records[6].segment, 1);
    assert_eq!(log.records[6].offset, 0);
    // Strict mode accepts a clean log too.
    assert_eq!(
        loaded(&read_shard_log_with(&d, &strict()).unwrap()),
        expected(1..=13)
    );
}

#[test]
fn empty_and_missing_logs() {
    let t = TempDir::new("empty");
    let d = t.shard(0);
    let log = read_shard_log(&d).unwrap();
    assert!(log.records.is_empty());
    assert_eq!(log.next_lsn(), 1);
    // A log restarted from a snapshot at lsn 100: preallocated, empty.
    write_seg(&d, 100, &[], PREALLOC);
    assert_eq!(read_shard_log(&d).unwrap().next_lsn(), 100);
    let e = read_shard_log(&t.0.join("nope")).unwrap_err();
    assert!(matches!(e, RecoveryError::Io { .. }), "{e}");
}

#[test]
fn torn_tail_in_last_segment_is_cut_or_refused() {
    let t = TempDir::new("torn");
    let d = t.shard(0);
    write_seg(&d, 1, &segment(1..=3), PREALLOC);
    let mut s2 = segment(4..=5);
    let cut = s2.len();
    let next = segment(6..=6);
    s2.extend_from_slice(&next[..next.len() - 3]);
    let p2 = write_seg(&d, 4, &s2, PREALLOC);
    let log = read_shard_log(&d).unwrap();
    assert_eq!(loaded(&log), expected(1..=5));
    let torn = log.torn_tail.clone().unwrap();
    assert_eq!(
        (torn.segment, &torn.path, torn.offset),
        (1, &p2, cut as u64)
    );
    assert_eq!(log.next_lsn(), 6);
    let e = read_shard_log_with(&d, &strict()).unwrap_err();
    let RecoveryError::TornTail {
        path,
        offset,
        refusal,
        ..
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!((path, *offset), (&p2, cut as u64));
    assert_eq!(*refusal, TornTailRefusal::LoadTruncatedOff);
    let msg = e.to_string();
    assert!(msg.contains(&p2.display().to_string()), "{msg}");
    assert!(msg.contains(&format!("offset {cut}")), "{msg}");
    assert!(
        msg.contains(&format!("{REPAIR_COMMAND} {}", t.0.display())),
        "{msg}"
    );
}

#[test]
fn torn_tail_in_an_earlier_segment_is_an_error() {
    let t = TempDir::new("torn-early");
    let d = t.shard(0);
    let mut s1 = segment(1..=3);
    let cut = s1.len();
    s1.extend_from_slice(&segment(4..=4)[..20]);
    let p1 = write_seg(&d, 1, &s1, PREALLOC);
    write_seg(&d, 4, &segment(4..=5), PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    let RecoveryError::TornTail {
        path,
        offset,
        refusal,
        ..
    } = &e
    else {
        panic!("{e}");
    };
    assert_eq!((path, *offset), (&p1, cut as u64));
    assert_eq!(*refusal, TornTailRefusal::NotLastSegment);
    // A torn tail followed only by an empty preallocated segment is the
    // end of the log: cut.
    fs::remove_file(d.join(segment_file_name(4))).unwrap();
    write_seg(&d, 4, &[], PREALLOC);
    let log = read_shard_log(&d).unwrap();
    assert_eq!(loaded(&log), expected(1..=3));
    assert_eq!(log.torn_tail.unwrap().offset, cut as u64);
}

#[test]
fn corruption_mid_log_names_file_and_offset() {
    let t = TempDir::new("corrupt");
    let d = t.shard(0);
    let s1 = segment(1..=5);
    let at = segment(1..=2).len();
    let mut bad = s1.clone();
    bad[at + HEADER_LEN + 3] ^= 0x20;
    let p1 = write_seg(&d, 1, &bad, PREALLOC);
    write_seg(&d, 6, &segment(6..=7), PREALLOC);
    for opts in [RecoveryOptions::default(), strict()] {
        let e = read_shard_log_with(&d, &opts).unwrap_err();
        assert_eq!(e.path(), Some(p1.as_path()), "{e}");
        assert_eq!(e.offset(), Some(at as u64), "{e}");
        assert!(matches!(e, RecoveryError::Corruption { .. }), "{e}");
        let msg = e.to_string();
        assert!(msg.contains(REPAIR_COMMAND), "{msg}");
        assert!(msg.contains(&format!("offset {at}")), "{msg}");
    }
    // Damage in the last segment with valid records after it is
    // corruption too, at start-up (strict) and for `check-aof --fix`
    // (the torn-write window): a flipped byte is not an unwritten
    // sector.
    write_seg(&d, 1, &s1, PREALLOC);
    let mut s2 = segment(6..=9);
    let at2 = segment(6..=6).len();
    s2[at2 + 1] = 0x7f;
    let p2 = write_seg(&d, 6, &s2, PREALLOC);
    let windowed = RecoveryOptions {
        max_write: DEFAULT_MAX_WRITE,
        ..RecoveryOptions::default()
    };
    for opts in [RecoveryOptions::default(), windowed] {
        let e = read_shard_log_with(&d, &opts).unwrap_err();
        assert_eq!(
            (e.path(), e.offset()),
            (Some(p2.as_path()), Some(at2 as u64))
        );
        assert!(!e.to_string().contains("power loss"), "{e}");
    }
    // A sector of the last write that never reached the disk (zeros)
    // with later sectors of the same write on disk: start-up still
    // refuses, naming the torn write and the fix; the window cuts it.
    let mut s2 = Vec::new();
    let mut lsn = 6;
    while s2.len() < 3 * SECTOR_SIZE {
        push(&mut s2, RecordHeaderFields::single(lsn), &cmd(lsn));
        lsn += 1;
    }
    s2[SECTOR_SIZE..2 * SECTOR_SIZE].fill(0);
    write_seg(&d, 6, &s2, PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    assert!(matches!(e, RecoveryError::Corruption { .. }), "{e}");
    assert!(e.to_string().contains("power loss"), "{e}");
    assert!(e.to_string().contains(REPAIR_COMMAND), "{e}");
    let log = read_shard_log_with(&d, &windowed).unwrap();
    let torn = log.torn_tail.clone().unwrap();
    assert!(torn.offset <= SECTOR_SIZE as u64, "{torn}");
    assert!(torn.later_valid_record.is_some(), "{torn}");
    assert!(torn.to_string().contains("was dropped with it"), "{torn}");
    assert_eq!(loaded(&log), expected(1..=log.last_lsn().unwrap()));
}

#[test]
fn lsn_gaps_and_duplicates_are_errors() {
    let t = TempDir::new("gap");
    let d = t.shard(0);
    // Within a segment.
    let mut s = segment([1, 2, 4]);
    let at = segment([1, 2]).len() as u64;
    let p = write_seg(&d, 1, &s, PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    assert_eq!((e.path(), e.offset()), (Some(p.as_path()), Some(at)), "{e}");
    assert!(e.to_string().contains("lsn 4 where lsn 3"), "{e}");
    s = segment([1, 2, 2]);
    write_seg(&d, 1, &s, PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    assert_eq!(e.offset(), Some(at), "{e}");
    // The first record disagrees with the segment's name.
    write_seg(&d, 1, &segment(2..=3), PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    assert_eq!(e.offset(), Some(0), "{e}");
    // Across segments: 1..=3 then a segment named 5.
    write_seg(&d, 1, &segment(1..=3), PREALLOC);
    let p5 = write_seg(&d, 5, &segment(5..=6), PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    assert_eq!((e.path(), e.offset()), (Some(p5.as_path()), Some(0)), "{e}");
    // ... or named 3 (duplicate).
    fs::remove_file(&p5).unwrap();
    let p3 = write_seg(&d, 3, &segment(3..=4), PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    assert_eq!(e.path(), Some(p3.as_path()), "{e}");
    // An empty segment before one with data: records are missing.
    fs::remove_file(&p3).unwrap();
    let p4 = write_seg(&d, 4, &[], PREALLOC);
    write_seg(&d, 5, &segment(5..=6), PREALLOC);
    let e = read_shard_log(&d).unwrap_err();
    assert_eq!(e.path(), Some(p4.as_path()), "{e}");
}

#[test]
fn bad_payloads_are_corruption() {
    let cases: [&[u8]; 6] = [
        b"SET a b\r\n",                       // inline
        b"*0\r\n",                            // empty multibulk
        b"*2\r\n$3\r\nGET\r\n",               // incomplete
        b"*1\r\n$3\r\nGETxx",                 // bad terminator
        b"*2\r\n$6\r\nSELECT\r\n$1\r\n1\r\n", // only SELECT
        b"*1\r\n$4\r\nPING\r\nX",             // trailing garbage
    ];
    let t = TempDir::new("payload");
    let d = t.shard(0);
    for payload in cases {
        let mut s = segment(1..=1);
        let at = s.len() as u64;
        encode(&RecordHeaderFields::single(2), payload, &mut s).unwrap();
        s.extend(segment(3..=3));
        let p = write_seg(&d, 1, &s, PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!((e.path(), e.offset()), (Some(p.as_path()), Some(at)), "{e}");
        assert!(check_payload(payload).is_err());
    }
    assert_eq!(decode_command(b"").unwrap_err().0, "empty payload");
    // A record may hold several commands (a transaction part, or a
    // multi-shard command's part when only this shard took part).
    let two = b"*1\r\n$4\r\nPING\r\n*2\r\n$3\r\nDEL\r\n$1\r\nk\r\n";
    assert_eq!(
        decode_commands(two).unwrap(),
        vec![vec![b"PING".to_vec()], vec![b"DEL".to_vec(), b"k".to_vec()]]
    );
    assert!(decode_command(two).is_err());
    let mut s = Vec::new();
    encode(&RecordHeaderFields::part_of(1, 9, 1), two, &mut s).unwrap();
    encode(&RecordHeaderFields::single(2), two, &mut s).unwrap();
    write_seg(&d, 1, &s, PREALLOC);
    let log = read_shard_log(&d).unwrap();
    assert_eq!(log.commands(&log.records[0]).unwrap().len(), 2);
    assert_eq!(log.commands(&log.records[1]).unwrap().len(), 2);
}

/// The log of the every-offset tests: segment 1 holds lsn 1..=3, the
/// last segment lsn 4..=7 with a padding record and a transaction part.
fn small_log() -> (Vec<u8>, Vec<u8>, Vec<usize>) {
    let s1 = segment(1..=3);
    let mut s2 = Vec::new();
    let mut ends = vec![0];
    push(&mut s2, RecordHeaderFields::single(4), &cmd(4));
    ends.push(s2.len());
    encode_padding(HEADER_LEN + 4, &mut s2).unwrap();
    ends.push(s2.len());
    push(&mut s2, RecordHeaderFields::part_of(5, 77, 1), &cmd(5));
    ends.push(s2.len());
    push(&mut s2, RecordHeaderFields::single(6), &cmd(6));
    ends.push(s2.len());
    push(&mut s2, RecordHeaderFields::single(7), &cmd(7));
    ends.push(s2.len());
    (s1, s2, ends)
}

#[test]
fn truncating_the_last_segment_at_every_offset_never_loads_garbage() {
    let (s1, s2, ends) = small_log();
    // lsn of the command record ending at each boundary in `ends`.
    let lsn_at = [3u64, 4, 4, 5, 6, 7];
    let t = TempDir::new("every-offset");
    let d = t.shard(0);
    write_seg(&d, 1, &s1, PREALLOC);
    for cut in 0..=s2.len() {
        // Complete records: those ending at or before the cut (a padding
        // record's zero payload is completed by the zero fill, so in
        // the zero-filled variant its header suffices).
        for zero_filled in [false, true] {
            let len = if zero_filled { PREALLOC } else { cut };
            write_seg(&d, 4, &s2[..cut], len);
            let mut complete = ends.iter().rposition(|&e| e <= cut).unwrap();
            let mut at_boundary = ends[complete] == cut;
            if zero_filled && complete == 1 && cut >= ends[1] + HEADER_LEN {
                complete = 2;
                at_boundary = true;
            }
            let want = expected(1..=lsn_at[complete]);
            let log = read_shard_log(&d).unwrap();
            assert_eq!(loaded(&log), want, "cut {cut} zero-filled {zero_filled}");
            assert_eq!(log.torn_tail.is_none(), at_boundary, "cut {cut}");
            if let Some(t) = &log.torn_tail {
                assert_eq!(t.offset, ends[complete] as u64, "cut {cut}");
                assert_eq!(t.later_valid_record, None, "cut {cut}");
            }
            match read_shard_log_with(&d, &strict()) {
                Ok(log) => {
                    assert!(at_boundary, "cut {cut}");
                    assert_eq!(loaded(&log), want);
                }
                Err(e) => {
                    assert!(!at_boundary, "cut {cut}: {e}");
                    assert!(
                        matches!(
                            e,
                            RecoveryError::TornTail {
                                refusal: TornTailRefusal::LoadTruncatedOff,
                                ..
                            }
                        ),
                        "{e}"
                    );
                }
            }
        }
    }
}

/// Flips byte `i` of segment `seg` of a log written as `segs`, and reads
/// it as start-up does. Loading is allowed only when nothing valid
/// follows the damage: a flip inside the last record of the last
/// segment (`last_start..`), cut as a torn tail, with the prefix
/// before it loaded. Anything else is refused naming a file and an
/// offset at or before the flipped byte, and no file is changed.
/// `loaded_ok` checks the records of a log that loaded.
fn flip_and_read(
    d: &Path,
    segs: &[(u64, Vec<u8>)],
    (seg, i): (usize, usize),
    last_start: usize,
    loaded_ok: impl Fn(&ShardLog),
) {
    let paths: Vec<PathBuf> = segs
        .iter()
        .enumerate()
        .map(|(n, (first, bytes))| {
            let mut b = bytes.clone();
            if n == seg {
                b[i] ^= 0x41;
            }
            write_seg(d, *first, &b, b.len() + 4096)
        })
        .collect();
    let before: Vec<Vec<u8>> = paths.iter().map(|p| fs::read(p).unwrap()).collect();
    match read_shard_log(d) {
        Ok(log) => {
            let last = segs.len() - 1;
            assert!(seg == last && i >= last_start, "seg {seg} byte {i} loaded");
            let t = log.torn_tail.clone().unwrap();
            assert_eq!(t.offset, last_start as u64, "seg {seg} byte {i}");
            assert_eq!(t.later_valid_record, None);
            loaded_ok(&log);
        }
        Err(e) => {
            let at = paths.iter().position(|p| Some(p.as_path()) == e.path());
            let at = at.unwrap_or_else(|| panic!("seg {seg} byte {i}: {e}"));
            let offset = e.offset().unwrap() as usize;
            assert!(
                at < seg || (at == seg && offset <= i) || (at == seg + 1 && offset == 0),
                "seg {seg} byte {i}: {e}"
            );
            assert!(e.to_string().contains(REPAIR_COMMAND), "{e}");
        }
    }
    for (p, b) in paths.iter().zip(&before) {
        assert_eq!(&fs::read(p).unwrap(), b, "reading changed {}", p.display());
    }
}

#[test]
fn flipping_any_byte_loads_a_prefix_or_refuses() {
    let (s1, s2, ends) = small_log();
    let last_start = ends[ends.len() - 2];
    let t = TempDir::new("flip");
    let d = t.shard(0);
    let segs = [(1, s1), (4, s2)];
    for seg in 0..segs.len() {
        for i in 0..segs[seg].1.len() {
            flip_and_read(&d, &segs, (seg, i), last_start, |log| {
                assert_eq!(loaded(log), expected(1..=log.last_lsn().unwrap()));
            });
        }
    }
}

/// The same over three segments of records from 40 bytes to 40 KiB
/// (about 400 KB): every byte of each record's header and of the
/// first and last 8 bytes of its payload, and every 97th byte else.
#[test]
fn flipping_bytes_of_a_large_multi_segment_log_loads_a_prefix_or_refuses() {
    let t = TempDir::new("flip-large");
    let d = t.shard(0);
    let mut segs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut starts: Vec<Vec<usize>> = Vec::new();
    let mut lsn = 1;
    for _ in 0..3 {
        let (first, mut b, mut st) = (lsn, Vec::new(), Vec::new());
        for n in 0..12u64 {
            st.push(b.len());
            let size = [4, 300, 4000, 40_000][(n % 4) as usize] + n as usize;
            let args = vec![
                b"SET".to_vec(),
                format!("key:{lsn}").into_bytes(),
                vec![b'a' + (lsn % 26) as u8; size],
            ];
            push(&mut b, RecordHeaderFields::single(lsn), &args);
            lsn += 1;
        }
        segs.push((first, b));
        starts.push(st);
    }
    let last_start = *starts[2].last().unwrap();
    let mut flips = 0;
    for (seg, (_, bytes)) in segs.iter().enumerate() {
        let near = |i: usize| {
            starts[seg]
                .iter()
                .any(|&s| i >= s && i < s + HEADER_LEN + 40)
                || starts[seg]
                    .iter()
                    .skip(1)
                    .chain(std::iter::once(&bytes.len()))
                    .any(|&e| i + 8 >= e && i < e)
        };
        for i in (0..bytes.len()).filter(|&i| near(i) || i % 97 == 0) {
            flip_and_read(&d, &segs, (seg, i), last_start, |log| {
                assert_eq!(log.records.len(), 35, "seg {seg} byte {i}");
                for (r, want) in log.records.iter().zip(1..) {
                    assert_eq!(r.lsn, want);
                    let c = log.commands(r).unwrap();
                    assert_eq!(c[0][1], format!("key:{want}").into_bytes());
                }
            });
            flips += 1;
        }
    }
    assert!(flips > 3000, "{flips}");
}

/// Writes one segment per shard from `(lsn, txid, parts)` records;
/// records carry `cmd(1000 * shard + lsn)`.
fn write_shards(t: &TempDir, shards: &[&[(u64, u64, u16)]]) -> Vec<ShardLog> {
    shards
        .iter()
        .enumerate()
        .map(|(s, recs)| {
            let d = t.shard(s);
            let mut b = Vec::new();
            for &(lsn, txid, parts) in recs.iter() {
                let f = if txid == 0 {
                    RecordHeaderFields::single(lsn)
                } else {
                    RecordHeaderFields::part_of(lsn, txid, parts)
                };
                push(&mut b, f, &cmd(1000 * s as u64 + lsn));
            }
            write_seg(&d, recs.first().map_or(1, |r| r.0), &b, PREALLOC);
            read_shard_log(&d).unwrap()
        })
        .collect()
}

fn lsns(log: &ShardLog, plan: &ShardReplay) -> Vec<u64> {
    plan.steps
        .iter()
        .map(|s| log.records[s.record()].lsn)
        .collect()
}

#[test]
fn complete_three_shard_transaction_is_applied_together() {
    let t = TempDir::new("tx-ok");
    let logs = write_shards(
        &t,
        &[
            &[(1, 0, 1), (2, 77, 3), (3, 0, 1)],
            &[(1, 77, 3), (2, 0, 1)],
            &[(1, 0, 1), (2, 0, 1), (3, 77, 3)],
        ],
    );
    let r = resolve_transactions(&logs).unwrap();
    assert!(r.dropped.is_empty());
    assert_eq!(r.dropped_records(), 0);
    assert_eq!(
        r.transactions,
        vec![Transaction {
            txid: 77,
            parts: vec![
                PartRef {
                    shard: 0,
                    record: 1
                },
                PartRef {
                    shard: 1,
                    record: 0
                },
                PartRef {
                    shard: 2,
                    record: 2
                },
            ],
        }]
    );
    assert_eq!(lsns(&logs[0], &r.shards[0]), [1, 2, 3]);
    assert_eq!(lsns(&logs[1], &r.shards[1]), [1, 2]);
    assert_eq!(lsns(&logs[2], &r.shards[2]), [1, 2, 3]);
    assert_eq!(
        r.shards[0].steps[1],
        Step::Part {
            record: 1,
            transaction: 0
        }
    );
    assert_eq!(r.shards[0].steps[0], Step::Command { record: 0 });
    assert!(r.shards.iter().all(|s| s.cut.is_none()));
}

#[test]
fn incomplete_transaction_is_dropped_with_later_records_of_its_shards() {
    let t = TempDir::new("tx-drop");
    // tx 88 (3 parts) misses its part in shard 2. Shard 0's tx 99 part
    // comes after 88's part, so 99 is dropped too (cascade), which cuts
    // shard 2 at its part of 99. tx 55 (before everything) survives.
    let logs = write_shards(
        &t,
        &[
            &[(1, 55, 2), (2, 0, 1), (3, 88, 3), (4, 0, 1), (5, 99, 2)],
            &[(1, 0, 1), (2, 88, 3), (3, 0, 1)],
            &[(1, 55, 2), (2, 0, 1), (3, 99, 2), (4, 0, 1)],
        ],
    );
    let r = resolve_transactions(&logs).unwrap();
    assert_eq!(r.transactions.len(), 1);
    assert_eq!(r.transactions[0].txid, 55);
    assert_eq!(lsns(&logs[0], &r.shards[0]), [1, 2]);
    assert_eq!(lsns(&logs[1], &r.shards[1]), [1]);
    assert_eq!(lsns(&logs[2], &r.shards[2]), [1, 2]);
    let cut0 = r.shards[0].cut.clone().unwrap();
    assert_eq!((cut0.lsn, cut0.txid, cut0.dropped_records), (3, 88, 3));
    assert_eq!(cut0.offset, logs[0].records[2].offset);
    assert_eq!(cut0.path, logs[0].segments[0].path);
    let cut1 = r.shards[1].cut.clone().unwrap();
    assert_eq!((cut1.lsn, cut1.txid, cut1.dropped_records), (2, 88, 2));
    let cut2 = r.shards[2].cut.clone().unwrap();
    assert_eq!((cut2.lsn, cut2.txid, cut2.dropped_records), (3, 99, 2));
    assert_eq!(r.dropped_records(), 7);
    let dropped: Vec<_> = r
        .dropped
        .iter()
        .map(|d| (d.txid, d.found.len(), d.dropped_by_cascade()))
        .collect();
    assert_eq!(dropped, [(88, 2, false), (99, 2, true)]);

    // The server then cuts the logs physically; they reload consistent.
    for (log, plan) in logs.iter().zip(&r.shards) {
        let c = plan.cut.as_ref().unwrap();
        log.truncate_at(c.segment, c.offset).unwrap();
    }
    let logs: Vec<_> = (0..3)
        .map(|s| read_shard_log(&t.shard(s)).unwrap())
        .collect();
    let r = resolve_transactions(&logs).unwrap();
    assert!(r.dropped.is_empty() && r.shards.iter().all(|s| s.cut.is_none()));
    assert_eq!(
        logs.iter().map(|l| l.next_lsn()).collect::<Vec<_>>(),
        [3, 2, 3]
    );
}

#[test]
fn inconsistent_transaction_parts_are_corruption() {
    let t = TempDir::new("tx-bad");
    let logs = write_shards(&t, &[&[(1, 5, 2), (2, 5, 2)], &[(1, 5, 2)]]);
    let e = resolve_transactions(&logs).unwrap_err();
    assert_eq!(e.offset(), Some(logs[0].records[1].offset), "{e}");
    let logs = write_shards(&t, &[&[(1, 5, 2)], &[(1, 5, 3)]]);
    assert!(resolve_transactions(&logs).is_err());
    let logs = write_shards(&t, &[&[(1, 5, 2)], &[(1, 5, 2)], &[(1, 5, 2)]]);
    assert!(resolve_transactions(&logs).is_err());
}

#[test]
fn check_reports_and_fix_cuts_a_torn_tail_only() {
    let t = TempDir::new("check");
    let d0 = t.shard(0);
    let d1 = t.shard(1);
    write_seg(&d0, 1, &segment(1..=3), PREALLOC);
    let mut s = segment(1..=4);
    let cut = segment(1..=3).len();
    s.truncate(s.len() - 5);
    // Stray bytes of the torn write further on (within the window).
    s.resize(cut + 1000, 0);
    s.extend_from_slice(b"\x01\x02\x03");
    let p = write_seg(&d1, 1, &s, PREALLOC);

    let r = check(&t.0, false);
    assert!(!r.is_ok(), "{r}");
    assert_eq!((r.shards.len(), r.segments(), r.records()), (2, 2, 6));
    assert_eq!(r.torn_tails(), 1);
    assert!(!r.shards[1].fixed);
    assert_eq!(r.shards[1].torn_tail.as_ref().unwrap().offset, cut as u64);
    let text = r.to_string();
    assert!(text.contains("torn tail (not cut)"), "{text}");
    assert!(text.contains("2 shards, 2 segments, 6 records"), "{text}");
    assert_eq!(fs::read(&p).unwrap(), {
        let mut b = s.clone();
        b.resize(PREALLOC, 0);
        b
    });

    let r = check(&t.0, true);
    assert!(r.is_ok(), "{r}");
    assert!(r.shards[1].fixed);
    let bytes = fs::read(&p).unwrap();
    assert_eq!(bytes.len(), PREALLOC, "file size kept");
    assert_eq!(&bytes[..cut], &s[..cut]);
    assert!(bytes[cut..].iter().all(|&b| b == 0));
    let log = read_shard_log_with(&d1, &strict()).unwrap();
    assert_eq!(loaded(&log), expected(1..=3));
    let r = check(&t.0, false);
    assert!(r.is_ok() && r.torn_tails() == 0, "{r}");

    // Corruption before the tail is reported, never "fixed".
    let mut bad = segment(1..=3);
    bad[HEADER_LEN + 2] ^= 1;
    let p0 = write_seg(&d0, 1, &bad, PREALLOC);
    write_seg(&d0, 4, &segment(4..=5), PREALLOC);
    let before = fs::read(&p0).unwrap();
    let r = check(&t.0, true);
    assert!(!r.is_ok());
    let e = r.shards[0].error.as_ref().unwrap();
    assert_eq!((e.path(), e.offset()), (Some(p0.as_path()), Some(0)));
    assert_eq!(fs::read(&p0).unwrap(), before);
    assert!(r.to_string().contains("NOT OK"));
}

#[test]
fn export_aof_parses_back_into_the_same_commands() {
    let t = TempDir::new("export");
    let logs = write_shards(
        &t,
        &[
            &[(1, 0, 1), (2, 7, 2), (3, 0, 1), (4, 8, 2)],
            &[(1, 0, 1), (2, 0, 1), (3, 7, 2)],
        ],
    );
    // A torn tail in shard 1 is cut on export as on recovery.
    let d1 = t.shard(1);
    let mut b = fs::read(d1.join(segment_file_name(1))).unwrap();
    let end = logs[1].segments[0].valid_end as usize;
    b[end..end + 10].copy_from_slice(&segment([4])[..10]);
    fs::write(d1.join(segment_file_name(1)), b).unwrap();

    let mut out = Vec::new();
    let summary = export_aof(&t.0, &mut out).unwrap();
    // tx 8 is incomplete (no part in shard 1): dropped.
    assert_eq!(summary.torn_tails.len(), 1);
    assert_eq!(summary.torn_tails[0].offset, end as u64);
    assert_eq!(summary.shards, 2);
    assert_eq!(summary.records, 6);
    assert_eq!(summary.commands, 6);
    assert_eq!(summary.dropped_records, 1);
    assert_eq!(summary.split_transactions, 0);
    let cmds = decode_commands(&out).unwrap();
    let id = |s: u64, l: u64| cmd(1000 * s + l);
    assert_eq!(cmds.len(), 6);
    let pos = |c: &Cmd| cmds.iter().position(|x| x == c).unwrap();
    // Every expected command once, per-shard order kept, tx 7 adjacent.
    let mut want = vec![id(0, 1), id(0, 2), id(0, 3), id(1, 1), id(1, 2), id(1, 3)];
    want.sort();
    let mut got = cmds.clone();
    got.sort();
    assert_eq!(got, want);
    assert!(pos(&id(0, 1)) < pos(&id(0, 2)) && pos(&id(0, 2)) < pos(&id(0, 3)));
    assert!(pos(&id(1, 1)) < pos(&id(1, 2)) && pos(&id(1, 2)) < pos(&id(1, 3)));
    assert_eq!(pos(&id(0, 2)).abs_diff(pos(&id(1, 3))), 1);
}

#[test]
fn truncate_at_a_transaction_cut_removes_later_segments() {
    let t = TempDir::new("tx-cut-segments");
    let d0 = t.shard(0);
    let d1 = t.shard(1);
    let mut s1 = segment(1..=2);
    let cut_at = s1.len() as u64;
    push(&mut s1, RecordHeaderFields::part_of(3, 42, 2), &cmd(3));
    let p1 = write_seg(&d0, 1, &s1, PREALLOC);
    let p4 = write_seg(&d0, 4, &segment(4..=6), PREALLOC);
    write_seg(&d1, 1, &segment(1..=2), PREALLOC);
    let logs = vec![read_shard_log(&d0).unwrap(), read_shard_log(&d1).unwrap()];
    let r = resolve_transactions(&logs).unwrap();
    let c = r.shards[0].cut.clone().unwrap();
    assert_eq!(
        (c.segment, c.offset, c.path.as_path()),
        (0, cut_at, p1.as_path())
    );
    assert_eq!(c.dropped_records, 4);
    logs[0].truncate_at(c.segment, c.offset).unwrap();
    assert!(!p4.exists());
    assert_eq!(fs::metadata(&p1).unwrap().len(), PREALLOC as u64);
    let log = read_shard_log_with(&d0, &strict()).unwrap();
    assert_eq!(loaded(&log), expected(1..=2));
    assert_eq!(log.next_lsn(), 3);
}

/// RESP text of `cmds` laid end to end.
fn resp_of(cmds: &[&[&[u8]]]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        crate::resp::write_command(&mut out, c.iter().copied());
    }
    out
}

/// Appends one record of `cmds` at `lsn`: a plain one (`txid` 0) or a
/// one-part transaction `txid`.
fn encode_cmds(out: &mut Vec<u8>, lsn: u64, txid: u64, cmds: &[&[&[u8]]]) {
    let f = if txid == 0 {
        RecordHeaderFields::single(lsn)
    } else {
        RecordHeaderFields::part_of(lsn, txid, 1)
    };
    encode(&f, &resp_of(cmds), out).unwrap();
}

/// Records with lsns 1, 2, ... of `(txid, cmds)` each.
fn encode_all(recs: &[(u64, &[&[&[u8]]])]) -> Vec<u8> {
    let mut s = Vec::new();
    for (i, (txid, cmds)) in recs.iter().enumerate() {
        encode_cmds(&mut s, i as u64 + 1, *txid, cmds);
    }
    s
}

#[test]
fn select_prefix_is_accepted_and_checked() {
    let t = TempDir::new("select-check");
    let d = t.shard(0);
    let good: [(u64, &[&[&[u8]]]); 5] = [
        (0, &[&[b"SET", b"a", b"1"]]),
        (0, &[&[b"SELECT", b"1"], &[b"SET", b"b", b"2"]]),
        (0, &[&[b"select", b"0"], &[b"SET", b"c", b"3"]]),
        (
            0,
            &[
                &[b"SELECT", b"4"],
                &[b"SET", b"x", b"1"],
                &[b"SELECT", b"4"],
                &[b"SET", b"y", b"2"],
            ],
        ),
        (
            9,
            &[
                &[b"SELECT", b"2"],
                &[b"SET", b"d", b"4"],
                &[b"SELECT", b"0"],
                &[b"DEL", b"e"],
            ],
        ),
    ];
    write_seg(&d, 1, &encode_all(&good), PREALLOC);
    let log = read_shard_log(&d).unwrap();
    assert_eq!(log.records.len(), 5);
    let rc = |i: usize| record_commands(log.payload(&log.records[i])).unwrap();
    assert_eq!(
        rc(1),
        vec![(1, vec![b"SET".to_vec(), b"b".to_vec(), b"2".to_vec()])]
    );
    assert_eq!(rc(3).iter().map(|c| c.0).collect::<Vec<_>>(), [4, 4]);
    assert_eq!(
        rc(4),
        vec![
            (2, vec![b"SET".to_vec(), b"d".to_vec(), b"4".to_vec()]),
            (0, vec![b"DEL".to_vec(), b"e".to_vec()]),
        ]
    );

    let bad: [(u64, &[&[&[u8]]]); 6] = [
        (0, &[&[b"SELECT", b"1"]]),
        (3, &[&[b"SELECT", b"1"], &[b"SELECT", b"2"]]),
        (0, &[&[b"SELECT", b"1", b"2"], &[b"SET", b"a", b"1"]]),
        (0, &[&[b"SELECT", b"x"], &[b"SET", b"a", b"1"]]),
        (0, &[&[b"SELECT", b"-1"], &[b"SET", b"a", b"1"]]),
        (5, &[&[b"SET", b"a", b"1"], &[b"SELECT"]]),
    ];
    for (txid, cmds) in bad {
        let mut s = segment(1..=1);
        let at = s.len() as u64;
        encode_cmds(&mut s, 2, txid, cmds);
        s.extend(segment(3..=3));
        let p = write_seg(&d, 1, &s, PREALLOC);
        let e = read_shard_log(&d).unwrap_err();
        assert_eq!((e.path(), e.offset()), (Some(p.as_path()), Some(at)), "{e}");
    }
}

#[test]
fn export_writes_select_only_when_the_database_changes() {
    let t = TempDir::new("export-select");
    let d = t.shard(0);
    let recs: [(u64, &[&[&[u8]]]); 7] = [
        (0, &[&[b"SET", b"a", b"1"]]),
        (0, &[&[b"SELECT", b"1"], &[b"SET", b"b", b"2"]]),
        (0, &[&[b"SELECT", b"1"], &[b"SET", b"c", b"3"]]),
        (0, &[&[b"SET", b"d", b"4"]]),
        (0, &[&[b"SELECT", b"0"], &[b"SET", b"e", b"5"]]),
        (0, &[&[b"SELECT", b"2"], &[b"SET", b"f", b"6"]]),
        (
            4,
            &[
                &[b"SELECT", b"3"],
                &[b"SET", b"g", b"7"],
                &[b"SELECT", b"0"],
                &[b"SET", b"h", b"8"],
            ],
        ),
    ];
    write_seg(&d, 1, &encode_all(&recs), PREALLOC);
    let mut out = Vec::new();
    let summary = export_aof(&t.0, &mut out).unwrap();
    let want = resp_of(&[
        &[b"SET", b"a", b"1"],
        &[b"SELECT", b"1"],
        &[b"SET", b"b", b"2"],
        &[b"SET", b"c", b"3"],
        &[b"SELECT", b"0"],
        &[b"SET", b"d", b"4"],
        &[b"SET", b"e", b"5"],
        &[b"SELECT", b"2"],
        &[b"SET", b"f", b"6"],
        &[b"SELECT", b"3"],
        &[b"SET", b"g", b"7"],
        &[b"SELECT", b"0"],
        &[b"SET", b"h", b"8"],
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out),
        String::from_utf8_lossy(&want)
    );
    assert_eq!(summary.records, 7);
    assert_eq!(summary.selects, 5);
    assert_eq!(summary.commands, 13);
}

#[test]
fn export_keeps_databases_right_when_shards_are_merged() {
    // Each shard alternates databases; whatever the merge order, the
    // AOF replayed from database 0 must run every command in its
    // record's database, with no redundant SELECT.
    let t = TempDir::new("export-select-merge");
    let mut want = Vec::new();
    for shard in 0..3u64 {
        let d = t.shard(shard as usize);
        let mut s = Vec::new();
        for lsn in 1..=6u64 {
            let db = (lsn + shard) % 3;
            let key = format!("k{shard}-{lsn}").into_bytes();
            let set: Vec<Vec<u8>> = vec![b"SET".to_vec(), key, b"v".to_vec()];
            let mut payload = Vec::new();
            if db != 0 {
                let n = db.to_string();
                crate::resp::write_command(
                    &mut payload,
                    [&b"SELECT"[..], n.as_bytes()].into_iter(),
                );
            }
            crate::resp::write_command(&mut payload, set.iter().map(Vec::as_slice));
            let f = if lsn == 3 {
                RecordHeaderFields::part_of(lsn, 50, 3)
            } else {
                RecordHeaderFields::single(lsn)
            };
            encode(&f, &payload, &mut s).unwrap();
            want.push((db, set));
        }
        write_seg(&d, 1, &s, PREALLOC);
    }
    let mut out = Vec::new();
    let summary = export_aof(&t.0, &mut out).unwrap();
    let mut db = 0u64;
    let mut got = Vec::new();
    let mut selects = 0;
    for args in decode_commands(&out).unwrap() {
        match parse_select(&args) {
            Some(sel) => {
                let n = sel.unwrap();
                assert_ne!(n, db, "redundant SELECT {n}");
                db = n;
                selects += 1;
            }
            None => got.push((db, args)),
        }
    }
    assert_eq!(summary.selects, selects);
    assert_eq!(summary.commands, got.len() + selects);
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn export_finishes_when_transactions_are_ordered_in_a_cycle() {
    let t = TempDir::new("export-cycle");
    write_shards(&t, &[&[(1, 1, 2), (2, 2, 2)], &[(1, 2, 2), (2, 1, 2)]]);
    let mut out = Vec::new();
    let summary = export_aof(&t.0, &mut out).unwrap();
    assert_eq!(summary.records, 4);
    assert!(summary.split_transactions > 0);
    assert_eq!(decode_commands(&out).unwrap().len(), 4);
}
