//! The snapshot manifest (format in `docs/FORMATS.md`): the text file that
//! names the snapshots kept, newest first, with their files, and the
//! append-only log that continues them. A snapshot is visible only once the
//! manifest names it. [`Manifest::encode`] / [`Manifest::decode`] are the
//! format; [`read_manifest`] reads one through the [`ReadIo`] seam (so the
//! journal's fault injection applies); the server writes it (the crash-safe
//! order of syncs and renames lives there, with the rest of a snapshot's
//! writing).
//!
//! Nothing here panics on any input.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::fmt::Write as _;
use std::io;
use std::path::{Path, PathBuf};

use super::format::Kind;
use crate::journal::io::ReadIo;

/// First line of a manifest without a log line (read and written).
const MANIFEST_MAGIC: &str = "kv-snapshot-manifest 1";
/// First line of a manifest that names the append-only log (M1.5).
const MANIFEST_MAGIC_2: &str = "kv-snapshot-manifest 2";

/// Path of the manifest of the snapshots named after `stem` in `dir`.
pub fn manifest_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!("{stem}.manifest"))
}

/// Name of shard `shard`'s file of snapshot `id`:
/// `<stem>.<id>.<full|delta>.s<shard>.kvs`.
pub fn file_name(stem: &str, id: u64, kind: Kind, shard: usize) -> String {
    format!("{stem}.{id}.{}.s{shard}.kvs", kind.name())
}

/// One snapshot as the manifest lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotMeta {
    pub id: u64,
    pub kind: Kind,
    pub base_id: u64,
    pub parent_id: u64,
    pub shards: usize,
    pub databases: usize,
    pub created_ms: u64,
    pub keys: u64,
    /// Bytes of this snapshot's files.
    pub bytes: u64,
    /// Per shard: file name, size, last log sequence number.
    pub files: Vec<(String, u64, u64)>,
}

/// The append-only log that continues the manifest's snapshots (M1.5):
/// restart loads a snapshot, then the log's records after that snapshot's
/// lsns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The log's identity (its `kv-log.meta`): a log directory with another
    /// id is not this log.
    pub id: u64,
    pub shards: usize,
    /// Snapshots with a larger id were taken with this log on: each holds
    /// the state at its own lsns.
    pub after: u64,
    /// The snapshot the log was started on (0: an empty keyspace), which
    /// holds the state at `from`.
    pub base: u64,
    /// Per shard: the lsn the log continues `base` from.
    pub from: Vec<u64>,
}

impl LogLine {
    /// The lsns after which the log continues snapshot `snap`, if `snap`
    /// was taken while this log was on (or is its base).
    pub fn lsns_of(&self, snap: &SnapshotMeta) -> Option<Vec<u64>> {
        if snap.id == self.base {
            Some(self.from.clone())
        } else if snap.id > self.after && snap.shards == self.shards {
            Some(snap.files.iter().map(|f| f.2).collect())
        } else {
            None
        }
    }
}

/// The manifest: snapshots kept, newest first, and the log that continues
/// them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Manifest {
    pub snapshots: Vec<SnapshotMeta>,
    pub log: Option<LogLine>,
}

impl Manifest {
    pub fn encode(&self) -> String {
        let mut s = String::new();
        let magic = if self.log.is_some() {
            MANIFEST_MAGIC_2
        } else {
            MANIFEST_MAGIC
        };
        let _ = writeln!(s, "{magic}");
        for m in &self.snapshots {
            let _ = writeln!(
                s,
                "snapshot {} {} base {} parent {} shards {} databases {} created {} keys {} bytes {}",
                m.id,
                m.kind.name(),
                m.base_id,
                m.parent_id,
                m.shards,
                m.databases,
                m.created_ms,
                m.keys,
                m.bytes
            );
            for (shard, (name, size, lsn)) in m.files.iter().enumerate() {
                let _ = writeln!(s, "file {shard} {name} {size} {lsn}");
            }
        }
        if let Some(l) = &self.log {
            let _ = write!(
                s,
                "log id {} shards {} after {} base {} from",
                l.id, l.shards, l.after, l.base
            );
            for f in &l.from {
                let _ = write!(s, " {f}");
            }
            s.push('\n');
        }
        let crc = crc32c::crc32c(s.as_bytes());
        let _ = writeln!(s, "crc32c {crc:08x}");
        s
    }

    pub fn decode(text: &str) -> Result<Manifest, String> {
        let body_end = text.trim_end_matches('\n').rfind('\n').map_or(0, |i| i + 1);
        let (body, last) = text.split_at(body_end);
        let crc = last
            .trim()
            .strip_prefix("crc32c ")
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .ok_or("no checksum line at the end")?;
        if crc32c::crc32c(body.as_bytes()) != crc {
            return Err("checksum mismatch".into());
        }
        let mut lines = body.lines();
        let version2 = match lines.next() {
            Some(MANIFEST_MAGIC) => false,
            Some(MANIFEST_MAGIC_2) => true,
            _ => return Err("not a kv-server snapshot manifest (first line)".into()),
        };
        let mut out = Manifest::default();
        for line in lines {
            let w: Vec<&str> = line.split(' ').collect();
            let num = |i: usize| -> Result<u64, String> {
                w.get(i)
                    .and_then(|v| v.parse().ok())
                    .ok_or_else(|| format!("bad line '{line}'"))
            };
            match w.first() {
                Some(&"snapshot")
                    if w.len() == 17
                        && [
                            (3, "base"),
                            (5, "parent"),
                            (7, "shards"),
                            (9, "databases"),
                            (11, "created"),
                            (13, "keys"),
                            (15, "bytes"),
                        ]
                        .iter()
                        .all(|&(i, k)| w.get(i) == Some(&k)) =>
                {
                    let kind = match w.get(2) {
                        Some(&"full") => Kind::Full,
                        Some(&"delta") => Kind::Delta,
                        _ => return Err(format!("bad line '{line}'")),
                    };
                    out.snapshots.push(SnapshotMeta {
                        id: num(1)?,
                        kind,
                        base_id: num(4)?,
                        parent_id: num(6)?,
                        shards: num(8)? as usize,
                        databases: num(10)? as usize,
                        created_ms: num(12)?,
                        keys: num(14)?,
                        bytes: num(16)?,
                        files: Vec::new(),
                    });
                }
                // `file <shard> <name> <size> <lsn>`; the name (from
                // `dbfilename`) may hold spaces, so it is what lies between.
                Some(&"file") if w.len() >= 5 => {
                    let snap = out
                        .snapshots
                        .last_mut()
                        .ok_or_else(|| format!("file before any snapshot: '{line}'"))?;
                    let n = w.len();
                    let name = w.get(2..n - 2).unwrap_or_default().join(" ");
                    if num(1)? as usize != snap.files.len() || name.is_empty() || name.contains('/')
                    {
                        return Err(format!("bad line '{line}'"));
                    }
                    snap.files.push((name, num(n - 2)?, num(n - 1)?));
                }
                // `log id <n> shards <s> after <a> base <b> from <lsn>...`
                Some(&"log")
                    if version2
                        && out.log.is_none()
                        && w.len() >= 11
                        && [
                            (1, "id"),
                            (3, "shards"),
                            (5, "after"),
                            (7, "base"),
                            (9, "from"),
                        ]
                        .iter()
                        .all(|&(i, k)| w.get(i) == Some(&k)) =>
                {
                    let shards = num(4)? as usize;
                    let from = (10..w.len()).map(num).collect::<Result<Vec<u64>, _>>()?;
                    if from.len() != shards {
                        return Err(format!("bad line '{line}'"));
                    }
                    out.log = Some(LogLine {
                        id: num(2)?,
                        shards,
                        after: num(6)?,
                        base: num(8)?,
                        from,
                    });
                }
                _ => return Err(format!("bad line '{line}'")),
            }
        }
        for m in &out.snapshots {
            if m.files.len() != m.shards || m.shards == 0 {
                return Err(format!(
                    "snapshot {} lists {} files for {} shards",
                    m.id,
                    m.files.len(),
                    m.shards
                ));
            }
        }
        Ok(out)
    }

    /// Bytes of the files of snapshot `id`'s whole chain.
    pub fn chain_bytes(&self, id: u64) -> Option<u64> {
        self.chain(id).ok().map(|c| c.iter().map(|s| s.bytes).sum())
    }

    /// The chain of snapshot `id`, oldest (its full base) first.
    pub fn chain(&self, id: u64) -> Result<Vec<&SnapshotMeta>, String> {
        let mut out = Vec::new();
        let mut next = id;
        loop {
            let m = self
                .snapshots
                .iter()
                .find(|m| m.id == next)
                .ok_or_else(|| {
                    format!("snapshot {next} of the chain of {id} is not in the manifest")
                })?;
            out.push(m);
            match m.kind {
                Kind::Full => break,
                Kind::Delta => next = m.parent_id,
            }
            if out.len() > self.snapshots.len() {
                return Err(format!("the chain of snapshot {id} loops"));
            }
        }
        out.reverse();
        Ok(out)
    }
}

/// Reads the manifest of `dir`; None if there is none.
pub fn read_manifest(
    io: &mut impl ReadIo,
    dir: &Path,
    stem: &str,
) -> Result<Option<Manifest>, String> {
    let path = manifest_path(dir, stem);
    let text = io.read_whole(&path).and_then(|b| {
        String::from_utf8(b).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "stream did not contain valid UTF-8",
            )
        })
    });
    match text {
        Ok(text) => Manifest::decode(&text)
            .map(Some)
            .map_err(|e| format!("Bad snapshot manifest {}: {e}", path.display())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!(
            "Can't read the snapshot manifest {}: {e}",
            path.display()
        )),
    }
}

/// The largest snapshot id among the files of `dir` named after `stem`.
pub fn highest_file_id(io: &mut impl ReadIo, dir: &Path, stem: &str) -> u64 {
    let Ok(names) = io.list_names(dir) else {
        return 0;
    };
    let prefix = format!("{stem}.");
    names
        .iter()
        .filter_map(|name| {
            let rest = name.strip_prefix(&prefix)?;
            rest.split('.').next()?.parse::<u64>().ok()
        })
        .max()
        .unwrap_or(0)
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

    fn meta(id: u64, kind: Kind, parent: u64, base: u64) -> SnapshotMeta {
        SnapshotMeta {
            id,
            kind,
            base_id: base,
            parent_id: parent,
            shards: 2,
            databases: 16,
            created_ms: 1_795_238_411_584 + id,
            keys: 10 * id,
            bytes: 8192 * id,
            files: (0..2)
                .map(|s| {
                    (
                        file_name("dump.rdb", id, kind, s),
                        4096 * id,
                        100 + s as u64,
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn manifest_names_may_hold_spaces() {
        let mut m = Manifest {
            snapshots: vec![meta(1, Kind::Full, 0, 1)],
            log: None,
        };
        m.snapshots[0].files[0].0 = file_name("my  dump.rdb", 1, Kind::Full, 0);
        assert_eq!(Manifest::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn manifest_round_trip_chain_and_damage() {
        let mut m = Manifest {
            snapshots: vec![
                meta(3, Kind::Delta, 2, 1),
                meta(2, Kind::Delta, 1, 1),
                meta(1, Kind::Full, 0, 1),
            ],
            log: None,
        };
        let v1 = m.encode();
        assert!(v1.starts_with("kv-snapshot-manifest 1\n"), "{v1}");
        assert_eq!(Manifest::decode(&v1).unwrap(), m);
        m.log = Some(LogLine {
            id: 1_795_238_411_584,
            shards: 2,
            after: 1,
            base: 1,
            from: vec![7, 0],
        });
        let text = m.encode();
        assert!(text.starts_with("kv-snapshot-manifest 2\n"), "{text}");
        assert!(text.contains("\nlog id 1795238411584 shards 2 after 1 base 1 from 7 0\n"));
        assert_eq!(Manifest::decode(&text).unwrap(), m);
        // Which snapshots the log continues, and from where.
        let log = m.log.as_ref().unwrap();
        assert_eq!(log.lsns_of(&m.snapshots[2]), Some(vec![7, 0]));
        assert_eq!(log.lsns_of(&m.snapshots[0]), Some(vec![100, 101]));
        m.log.as_mut().unwrap().base = 0;
        assert_eq!(m.log.as_ref().unwrap().lsns_of(&m.snapshots[2]), None);
        // A log line needs version 2, and names one lsn per shard.
        let bad = text.replace("manifest 2", "manifest 1");
        assert!(Manifest::decode(&bad).is_err());
        let ids: Vec<u64> = m.chain(3).unwrap().iter().map(|s| s.id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        // Any changed byte is caught (by the checksum or the parser).
        for i in 0..text.len() {
            let mut b = text.clone().into_bytes();
            b[i] = if b[i] == b'7' { b'8' } else { b'7' };
            if let Ok(t) = String::from_utf8(b) {
                assert!(Manifest::decode(&t).is_err(), "byte {i} changed unnoticed");
            }
        }
        assert!(Manifest::decode(&text[..text.len() - 3]).is_err());
    }

    #[test]
    fn read_manifest_through_the_seam_with_faults() {
        use crate::journal::io::{Fault, FaultyIo, MemIo, Op};
        let dir = Path::new("/snap");
        let mut io = FaultyIo::new(MemIo::new());
        assert_eq!(read_manifest(&mut io, dir, "dump.rdb"), Ok(None));
        let m = Manifest {
            snapshots: vec![meta(2, Kind::Delta, 1, 1), meta(1, Kind::Full, 0, 1)],
            log: None,
        };
        let path = manifest_path(dir, "dump.rdb");
        io.inner_mut().insert_file(&path, m.encode().into_bytes());
        assert_eq!(read_manifest(&mut io, dir, "dump.rdb"), Ok(Some(m.clone())));
        // A failed read is an error naming the file, never "no manifest".
        io.fail_nth(Op::Read, 1, Fault::Eio);
        let e = read_manifest(&mut io, dir, "dump.rdb").unwrap_err();
        assert!(
            e.starts_with("Can't read the snapshot manifest /snap/dump.rdb.manifest: "),
            "{e}"
        );
        // A damaged one is refused.
        let mut text = m.encode().into_bytes();
        text[30] ^= 1;
        io.inner_mut().insert_file(&path, text);
        let e = read_manifest(&mut io, dir, "dump.rdb").unwrap_err();
        assert!(
            e.starts_with("Bad snapshot manifest /snap/dump.rdb.manifest: "),
            "{e}"
        );
        // The highest id among the files, whatever the manifest says.
        io.inner_mut()
            .insert_file(&dir.join(file_name("dump.rdb", 7, Kind::Full, 1)), vec![]);
        io.inner_mut()
            .insert_file(&dir.join(file_name("other", 9, Kind::Full, 0)), vec![]);
        assert_eq!(highest_file_id(&mut io, dir, "dump.rdb"), 7);
        assert_eq!(highest_file_id(&mut io, Path::new("/none"), "dump.rdb"), 0);
    }
}
