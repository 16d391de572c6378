//! Reading snapshot files back: streaming one file's frames with every
//! check ([`stream_file`]), checking a whole chain against the manifest
//! without loading it ([`verify_chain`]), choosing the snapshot to load at
//! start ([`choose_in`]) and loading a chain into a shard ([`load_chain`]).
//! All file access goes through the [`ReadIo`] seam (the journal's), so
//! tests inject read faults with [`crate::journal::io::FaultyIo`] and the
//! server drops what was read from the page cache.
//!
//! Nothing here panics on any input.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::path::Path;

use super::chain::Coverage;
use super::format::{self, Body, FileHeader, Frame, Parsed, BLOCK, FRAME_HEADER};
use super::manifest::{Manifest, SnapshotMeta};
use crate::journal::io::ReadIo;
use crate::Shard;

/// A file is read in pieces of about this size.
const READ_CHUNK: usize = 4 << 20;

/// Checks every file of snapshot `id`'s chain (checksums, end frames,
/// headers against the manifest) without loading anything.
pub fn verify_chain(io: &mut impl ReadIo, dir: &Path, m: &Manifest, id: u64) -> Result<(), String> {
    for snap in m.chain(id)? {
        for (s, (name, size, _)) in snap.files.iter().enumerate() {
            let path = dir.join(name);
            let mut seen = 0u64;
            let header = stream_file(io, &path, |_| {
                seen += 1;
                Ok(())
            })
            .map_err(|e| format!("{}: {e}", path.display()))?;
            let actual = io
                .open_read(&path)
                .and_then(|f| io.file_len(&f))
                .unwrap_or(0);
            if header.id != snap.id
                || header.shard as usize != s
                || header.shards as usize != snap.shards
                || header.kind != snap.kind
                || actual != *size
            {
                return Err(format!(
                    "{}: the file does not match the manifest (snapshot {}, shard {s}, {size} bytes)",
                    path.display(),
                    snap.id
                ));
            }
        }
    }
    Ok(())
}

/// Reads a snapshot file from start to end, checking everything, and
/// hands every page frame to `f`. What was read is dropped from the page
/// cache as it goes ([`ReadIo::drop_cache`]: the file is read once; keeping
/// it cached would double the dataset in memory).
pub fn stream_file<I: ReadIo>(
    io: &mut I,
    path: &Path,
    mut f: impl FnMut(format::PageFrame) -> Result<(), String>,
) -> Result<FileHeader, String> {
    let file = io.open_read(path).map_err(|e| format!("can't open: {e}"))?;
    let len = io.file_len(&file).map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; READ_CHUNK];
    let mut have = 0usize;
    let mut pos = 0u64; // file offset of buf[0]
    let mut eof = false;
    // Reads until `buf` is full or the file ends.
    let fill = |io: &mut I,
                buf: &mut Vec<u8>,
                have: &mut usize,
                eof: &mut bool,
                pos: u64|
     -> Result<(), String> {
        while !*eof && *have < buf.len() {
            let at = pos.saturating_add(*have as u64);
            let n = io
                .read_at(&file, at, buf.get_mut(*have..).unwrap_or(&mut []))
                .map_err(|e| format!("read: {e}"))?;
            if n == 0 {
                *eof = true;
            }
            *have += n;
        }
        Ok(())
    };
    fill(io, &mut buf, &mut have, &mut eof, pos)?;
    let header = FileHeader::decode(buf.get(..have).unwrap_or(&[])).map_err(|e| e.to_string())?;
    let chunk = FileHeader::chunk_bytes(&buf).map_err(|e| e.to_string())?;
    let mut at = BLOCK;
    let mut body = Body::default();
    let mut assembler = format::Assembler::default();
    loop {
        let offset = pos.saturating_add(at as u64);
        let left = len.saturating_sub(offset);
        let unread = buf.get(at..have).unwrap_or(&[]);
        match format::parse_frame_in(unread, offset, left, chunk).map_err(|e| e.to_string())? {
            Parsed::NeedMore(need) => {
                // Move the unread part to the front and read more.
                buf.copy_within(at.min(have)..have, 0);
                have = have.saturating_sub(at);
                pos = offset;
                at = 0;
                if need > buf.len() {
                    buf.resize(need.max(FRAME_HEADER), 0);
                }
                io.drop_cache(&file, pos);
                fill(io, &mut buf, &mut have, &mut eof, pos)?;
                if eof && have < need {
                    // The length said the frame fits in the file; a file
                    // that shrank while read ends here rather than loop.
                    return Err(format!("the file ends inside the frame at offset {pos}"));
                }
            }
            Parsed::Frame(Frame::End { tally, body_crc }, n) => {
                assembler.finish(offset).map_err(|e| e.to_string())?;
                body.check_end(tally, body_crc, offset)
                    .map_err(|e| e.to_string())?;
                let end = offset.saturating_add(n as u64);
                if len % BLOCK as u64 != 0 || len < end || len - end >= BLOCK as u64 {
                    return Err(format!("bytes after the end frame at offset {end}"));
                }
                io.drop_cache(&file, 0);
                return Ok(header);
            }
            // A page frame, or the chunks of its chunked strings after it.
            Parsed::Frame(frame, n) => {
                let entries = match &frame {
                    Frame::Page(p) => p.entries,
                    _ => 0,
                };
                body.add(buf.get(at..at.saturating_add(n)).unwrap_or(&[]), entries);
                at = at.saturating_add(n);
                if let Some(p) = assembler.add(frame, offset).map_err(|e| e.to_string())? {
                    f(p)?;
                }
            }
        }
    }
}

/// Loads the chain of snapshot `id` into `shard` (this worker's shard of
/// `shards`): files newest first, entries hidden by newer frames skipped, keys
/// of other shards skipped (the shard count changed), expired keys
/// dropped, patches of big strings applied to their base from an older
/// file ([`Coverage`]; a patch without one is an error naming its file and
/// offset). Returns the keys loaded.
pub fn load_chain(
    io: &mut impl ReadIo,
    dir: &Path,
    m: &Manifest,
    id: u64,
    shard: &mut Shard,
) -> Result<u64, String> {
    let chain = m.chain(id)?;
    let Some(top) = chain.last() else {
        return Ok(0);
    };
    let shards = shard.shard_count();
    let me = shard.id();
    let now = shard.now_ms();
    let same = top.shards == shards;
    let mut coverage: Vec<Coverage> = (0..top.shards).map(|_| Coverage::default()).collect();
    let mut loaded = 0u64;
    for snap in chain.iter().rev() {
        for (s, (name, _, _)) in snap.files.iter().enumerate() {
            if same && s != me {
                continue;
            }
            let path = dir.join(name);
            let cov = coverage.get_mut(s).ok_or_else(|| {
                format!(
                    "{}: snapshot {} has more shards than the newest of its chain ({})",
                    path.display(),
                    snap.id,
                    top.shards
                )
            })?;
            cov.start_file(&path.display().to_string());
            stream_file(io, &path, |p| {
                // Databases this server does not have are not loaded.
                if (p.db as usize) < shard.databases() {
                    cov.current_entries(&p, 0, |e| {
                        if e.is_expired(now) || crate::keyhash::shard_of_hash(e.hash, shards) != me
                        {
                            return;
                        }
                        shard
                            .db_mut(p.db as usize)
                            .insert(e.hash, &e.key, e.value, e.expire_at);
                        loaded += 1;
                    })
                    .map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .map_err(|e| format!("{}: {e}", path.display()))?;
            cov.end_file();
        }
    }
    for cov in &coverage {
        cov.finish()?;
    }
    Ok(loaded)
}

/// The newest snapshot of `m` accepted by `usable` whose whole chain
/// verifies; an older one loads with a warning, handed to `warn` (the
/// server logs it). `Ok(None)`: `m` has no such snapshot; `Err`: it has
/// some, and none can be read.
pub fn choose_in(
    io: &mut impl ReadIo,
    dir: &Path,
    m: &Manifest,
    usable: impl Fn(&SnapshotMeta) -> bool,
    mut warn: impl FnMut(&str),
) -> Result<Option<u64>, String> {
    let mut errors = Vec::new();
    for snap in m.snapshots.iter().filter(|s| usable(s)) {
        match verify_chain(io, dir, m, snap.id) {
            Ok(()) => {
                if !errors.is_empty() {
                    warn(&format!(
                        "WARNING: the newest snapshot could not be read ({}); loading the older \
                         snapshot {} taken at unix time {} instead. Changes after it are not in it.",
                        errors.join("; "),
                        snap.id,
                        snap.created_ms / 1000
                    ));
                }
                return Ok(Some(snap.id));
            }
            Err(e) => errors.push(format!("snapshot {}: {e}", snap.id)),
        }
    }
    if errors.is_empty() {
        return Ok(None);
    }
    Err(format!(
        "No snapshot in {} can be loaded: {}. Nothing was loaded or changed. Check them \
         with `kv-server check-snapshot`, and restore them from a backup \
         (docs/OPERATIONS.md).",
        dir.display(),
        errors.join("; ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::indexing_slicing,
        clippy::panic
    )]
    use super::*;
    use crate::journal::io::{Fault, FaultyIo, MemIo, Op};
    use crate::snapshot::format::{Kind, Tally};
    use crate::snapshot::manifest::file_name;
    use crate::value::Value;

    const KEYS: usize = 3000;

    /// A full snapshot of a one-shard keyspace of `KEYS` keys, as its file.
    fn full_file(id: u64) -> Vec<u8> {
        let mut shard = Shard::new(0, 1, 1);
        for i in 0..KEYS {
            let v = Value::string(vec![b'v'; 1 + i % 300]);
            shard.ctx(0).set(format!("k{i}").as_bytes(), v, 0);
        }
        let start = shard.begin_snapshot(true, false);
        let mut body = Vec::new();
        let mut tally = Tally::default();
        loop {
            let done = shard.snapshot_step_until(usize::MAX, None);
            let t = shard.take_snapshot_frames(&mut body);
            tally += t;
            if done && shard.snapshot_pending_bytes() == 0 {
                break;
            }
        }
        shard.end_snapshot(true);
        let header = FileHeader {
            kind: Kind::Full,
            compression: false,
            shard: 0,
            shards: 1,
            databases: 1,
            id,
            base_id: id,
            parent_id: 0,
            epoch: start.epoch,
            lsn: 0,
            created_ms: 0,
        };
        let mut file = header.encode();
        file.extend_from_slice(&body);
        format::encode_end(&mut file, tally, crc32c::crc32c(&body));
        format::pad_to_block(&mut file);
        file
    }

    /// A manifest naming full snapshots `ids` (newest first), and an I/O
    /// holding their files.
    fn setup(ids: &[u64]) -> (FaultyIo<MemIo>, Manifest) {
        let mut io = FaultyIo::new(MemIo::new());
        let mut m = Manifest::default();
        for &id in ids {
            let name = file_name("dump.rdb", id, Kind::Full, 0);
            let file = full_file(id);
            m.snapshots.push(SnapshotMeta {
                id,
                kind: Kind::Full,
                base_id: id,
                parent_id: 0,
                shards: 1,
                databases: 1,
                created_ms: id * 1000,
                keys: KEYS as u64,
                bytes: file.len() as u64,
                files: vec![(name.clone(), file.len() as u64, 0)],
            });
            io.inner_mut()
                .insert_file(&Path::new("/snap").join(name), file);
        }
        (io, m)
    }

    #[test]
    fn a_chain_loads_through_the_seam() {
        let (mut io, m) = setup(&[1]);
        let dir = Path::new("/snap");
        verify_chain(&mut io, dir, &m, 1).unwrap();
        let mut shard = Shard::new(0, 1, 1);
        assert_eq!(
            load_chain(&mut io, dir, &m, 1, &mut shard).unwrap(),
            KEYS as u64
        );
        assert_eq!(shard.db(0).len(), KEYS);
        // Every read went through the seam.
        assert!(io.count(Op::Read) >= 2, "{}", io.count(Op::Read));
    }

    #[test]
    fn read_faults_and_damage_are_errors_naming_the_file() {
        let dir = Path::new("/snap");
        let path = dir.join(file_name("dump.rdb", 1, Kind::Full, 0));
        // A file under 4 MiB takes two reads: its bytes, then the end.
        for nth in 1..=2 {
            let (mut io, m) = setup(&[1]);
            io.fail_nth(Op::Read, nth, Fault::Eio);
            let mut shard = Shard::new(0, 1, 1);
            let e = load_chain(&mut io, dir, &m, 1, &mut shard).unwrap_err();
            assert!(e.starts_with(&format!("{}: read: ", path.display())), "{e}");
        }
        // Cut at any block, or one byte flipped anywhere: an error, no panic.
        let (io, _) = setup(&[1]);
        let whole = io.inner().contents(&path).unwrap().to_vec();
        for cut in (0..whole.len()).step_by(4096).chain([whole.len() - 1]) {
            let mut mem = MemIo::new();
            mem.insert_file(&path, whole[..cut].to_vec());
            assert!(
                stream_file(&mut mem, &path, |_| Ok(())).is_err(),
                "cut at {cut}"
            );
        }
        // (The zero padding after the end frame is not read.)
        let end = whole.iter().rposition(|&b| b != 0).unwrap();
        for at in (0..end).step_by(997) {
            let mut b = whole.clone();
            b[at] ^= 0x20;
            let mut mem = MemIo::new();
            mem.insert_file(&path, b);
            let r = stream_file(&mut mem, &path, |_| Ok(()));
            assert!(r.is_err(), "byte {at} changed unnoticed");
        }
    }

    #[test]
    fn choose_in_falls_back_to_an_older_snapshot_with_a_warning() {
        let dir = Path::new("/snap");
        let (mut io, m) = setup(&[2, 1]);
        let mut warned = Vec::new();
        let pick = |io: &mut FaultyIo<MemIo>, w: &mut Vec<String>| {
            choose_in(io, dir, &m, |_| true, |s| w.push(s.to_owned()))
        };
        assert_eq!(pick(&mut io, &mut warned), Ok(Some(2)));
        assert!(warned.is_empty());
        let newest = dir.join(file_name("dump.rdb", 2, Kind::Full, 0));
        let mut b = io.inner().contents(&newest).unwrap().to_vec();
        b[5000] ^= 1;
        io.inner_mut().insert_file(&newest, b);
        assert_eq!(pick(&mut io, &mut warned), Ok(Some(1)));
        assert_eq!(warned.len(), 1);
        assert!(
            warned[0].contains("loading the older snapshot 1"),
            "{}",
            warned[0]
        );
        // Neither readable: an error, and nothing chosen.
        io.fail_nth(Op::Read, 1, Fault::Eio);
        io.fail_nth(Op::Read, 2, Fault::Eio);
        let e = pick(&mut io, &mut warned).unwrap_err();
        assert!(e.starts_with("No snapshot in /snap can be loaded"), "{e}");
    }
}
