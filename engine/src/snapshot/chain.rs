//! Which entries of a chain (a full snapshot and the deltas after it) make
//! up its state.
//!
//! A frame stands for its whole hash range (a page's, or in a delta one
//! sub-range of a page): it holds exactly the entries of that range at its
//! snapshot's barrier, so it replaces whatever older files hold in that
//! range, and an empty frame deletes. The files are read newest first;
//! [`Coverage`] remembers the ranges the newer files have written, and an
//! entry of an older file is current only if no newer frame's range holds
//! its hash. Frames of one file never overlap, so a file's own frames do
//! not hide each other ([`Coverage::end_file`] adds them once it is read).
//!
//! Pages split between snapshots, and a delta may write a sub-range where
//! the older file wrote a whole page: the test is per hash, so neither
//! needs any argument beyond the one above.
//!
//! One exception (version 4): a patch entry (a big string's chunks changed
//! since the delta's parent) decides its key like any entry, but its
//! value's other chunks are the key's value in the chain's older files.
//! So a current patch is kept, with the key's hash, until an older file's
//! frame holding that hash is read: the key's entry there (read even if
//! newer frames cover it) is the base, or another patch, kept too; a
//! frame holding the hash without the key, or the end of the chain, is an
//! error. The patches are applied oldest to newest once the base comes.
//! What waits is the patches' own chunks: at most the size of the newer
//! files' patches, read already.

use std::collections::{BTreeMap, HashMap};

use super::format::{page_range, FormatError, Item, PageFrame, Patch};
use crate::value::Entry;

/// The hash ranges, per database, that newer files of a chain cover.
#[derive(Debug, Default)]
pub struct Coverage {
    /// db -> disjoint ranges: first hash -> last hash (inclusive).
    newer: HashMap<u16, BTreeMap<u64, u64>>,
    /// Frames of the file being read, added to `newer` at [`Coverage::end_file`].
    current: Vec<(u16, u64, u64)>,
    /// Patches of keys whose base has not come yet, by database and hash.
    pending: BTreeMap<(u16, u64), Vec<Pending>>,
    /// Bytes of chunks the pending patches hold.
    pending_bytes: usize,
    /// Files read so far (the one being read has this number).
    files: u64,
    /// The name of the file being read ([`Coverage::start_file`]).
    file: String,
}

/// The patches of one key waiting for their base.
#[derive(Debug)]
struct Pending {
    key: Vec<u8>,
    /// Newest first.
    patches: Vec<Patch>,
    /// Where the newest one is (file and offset), for errors.
    from: String,
    /// The number of the file its oldest patch was read from: its base is
    /// in a later one (an older snapshot).
    read_in: u64,
}

/// A key for an error message: at most 64 bytes of it, escaped.
fn show_key(key: &[u8]) -> String {
    let shown = String::from_utf8_lossy(key.get(..64).unwrap_or(key)).into_owned();
    if key.len() > 64 {
        format!("{shown:?}...")
    } else {
        format!("{shown:?}")
    }
}

fn format_err(offset: u64, what: String) -> FormatError {
    FormatError { offset, what }
}

fn chunk_bytes(p: &Patch) -> usize {
    p.chunks.iter().map(|(_, c)| c.bytes.len()).sum()
}

/// How much of a frame's range newer files cover.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cover {
    /// Nothing: every entry of the frame is current.
    None,
    /// All of it: no entry is.
    All,
    /// Some: an entry is current if [`Coverage::hides`] says not.
    Part,
}

impl Coverage {
    /// How much of the range `(prefix, depth)` of `db` newer files wrote.
    pub fn cover(&self, db: u16, prefix: u64, depth: u8) -> Cover {
        let (first, last) = page_range(prefix, depth);
        let Some(ranges) = self.newer.get(&db) else {
            return Cover::None;
        };
        // The ranges are disjoint and merged, so the last one starting at or
        // before `last` is the only one that can reach `first`, and the
        // range is covered whole only by a single one.
        match ranges.range(..=last).next_back() {
            Some((&s, &e)) if s <= first && e >= last => Cover::All,
            Some((_, &e)) if e >= first => Cover::Part,
            _ => Cover::None,
        }
    }

    /// Whether a newer file wrote the range holding `hash` in `db`.
    pub fn hides(&self, db: u16, hash: u64) -> bool {
        self.newer
            .get(&db)
            .and_then(|r| r.range(..=hash).next_back())
            .is_some_and(|(_, &e)| e >= hash)
    }

    /// Names the file about to be read (for errors about its patches).
    pub fn start_file(&mut self, name: &str) {
        name.clone_into(&mut self.file);
    }

    /// Bytes of chunks of patches waiting for their base.
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// Calls `f` with every entry of `frame` (of the file being read) that
    /// is current, i.e. whose hash no newer file wrote, then notes the
    /// frame's ranges. A range newer files cover whole is not decoded,
    /// unless a patch waits for a key of it. A current patch waits for its
    /// base (see the module's doc); `f` gets the patched value when the
    /// base comes. `offset`: the frame's in the file, for errors (0: the
    /// one the frame was read at).
    pub fn current_entries(
        &mut self,
        frame: &PageFrame,
        offset: u64,
        mut f: impl FnMut(Entry),
    ) -> Result<(), FormatError> {
        let offset = if offset == 0 { frame.offset } else { offset };
        let db = frame.db;
        for part in frame.parts(offset)? {
            let cover = self.cover(db, part.prefix, part.depth);
            let (first, last) = page_range(part.prefix, part.depth);
            let files = self.files;
            let waiting = self
                .pending
                .range((db, first)..=(db, last))
                .any(|(_, v)| v.iter().any(|p| p.read_in < files));
            if cover != Cover::All || waiting {
                for item in frame.decode_part_items(&part, offset)? {
                    self.take(db, item, cover, offset, &mut f)?;
                }
            }
            if waiting {
                // A key whose patch waits, not in the older frame that
                // holds its hash: it did not exist at that snapshot.
                let missing = self
                    .pending
                    .range((db, first)..=(db, last))
                    .flat_map(|(_, v)| v)
                    .find(|p| p.read_in < files);
                if let Some(p) = missing {
                    return Err(format_err(
                        offset,
                        format!(
                            "the patch of key {} ({}) has no base: this older frame holds \
                             its hash range without the key",
                            show_key(&p.key),
                            p.from
                        ),
                    ));
                }
            }
            self.saw(db, part.prefix, part.depth);
        }
        Ok(())
    }

    /// One entry of a frame of the file being read whose part is covered
    /// as `cover` says: the base (or an older patch) of a waiting patch,
    /// a current entry handed to `f`, a current patch that starts to
    /// wait, or nothing (hidden).
    fn take(
        &mut self,
        db: u16,
        item: Item,
        cover: Cover,
        offset: u64,
        f: &mut impl FnMut(Entry),
    ) -> Result<(), FormatError> {
        let hash = item.hash();
        let files = self.files;
        let waits = self.pending.get(&(db, hash)).and_then(|v| {
            v.iter()
                .position(|p| p.read_in < files && p.key == item.key())
        });
        if let Some(at) = waits {
            let Some(list) = self.pending.get_mut(&(db, hash)) else {
                return Ok(());
            };
            match item {
                Item::Patch(older) => {
                    if let Some(p) = list.get_mut(at) {
                        self.pending_bytes += chunk_bytes(&older);
                        p.patches.push(older);
                        p.read_in = files;
                    }
                }
                Item::Whole(base) => {
                    let p = list.swap_remove(at);
                    if list.is_empty() {
                        self.pending.remove(&(db, hash));
                    }
                    let mut value = base.value;
                    for patch in p.patches.iter().rev() {
                        self.pending_bytes = self.pending_bytes.saturating_sub(chunk_bytes(patch));
                        value = patch.apply(&value).map_err(|w| {
                            format_err(
                                offset,
                                format!(
                                    "the patch of key {} ({}) does not fit its base here: {w}",
                                    show_key(&p.key),
                                    p.from
                                ),
                            )
                        })?;
                    }
                    let expire_at = p.patches.first().map_or(base.expire_at, |n| n.expire_at);
                    f(Entry::new(hash, p.key.as_slice().into(), value, expire_at));
                }
            }
            return Ok(());
        }
        let hidden = match cover {
            Cover::None => false,
            Cover::All => true,
            Cover::Part => self.hides(db, hash),
        };
        if hidden {
            return Ok(());
        }
        match item {
            Item::Whole(e) => f(e),
            Item::Patch(p) => {
                let from = if self.file.is_empty() {
                    format!(
                        "file {} of the chain, newest first, at offset {}",
                        files, p.offset
                    )
                } else {
                    format!("{} at offset {}", self.file, p.offset)
                };
                self.pending_bytes += chunk_bytes(&p);
                self.pending.entry((db, hash)).or_default().push(Pending {
                    key: p.key.clone(),
                    patches: vec![p],
                    from,
                    read_in: files,
                });
            }
        }
        Ok(())
    }

    /// The chain is read: a patch still waiting has no base in it.
    pub fn finish(&self) -> Result<(), String> {
        match self.pending.values().flatten().next() {
            None => Ok(()),
            Some(p) => Err(format!(
                "the patch of key {} ({}) has no base: no older file of its chain holds the key",
                show_key(&p.key),
                p.from
            )),
        }
    }

    /// Notes a frame of the file being read (current or not).
    pub fn saw(&mut self, db: u16, prefix: u64, depth: u8) {
        let (first, last) = page_range(prefix, depth);
        self.current.push((db, first, last));
    }

    /// The file being read is done: its frames hide older entries from now on.
    pub fn end_file(&mut self) {
        for (db, first, last) in std::mem::take(&mut self.current) {
            insert(self.newer.entry(db).or_default(), first, last);
        }
        self.files += 1;
        self.file.clear();
    }
}

/// Adds `[first, last]` to a set of disjoint ranges, merging what overlaps
/// or touches it.
fn insert(ranges: &mut BTreeMap<u64, u64>, mut first: u64, mut last: u64) {
    // A range starting at or before `first` that reaches it.
    if let Some((&s, &e)) = ranges.range(..=first).next_back() {
        if e.saturating_add(1) >= first {
            first = s;
            last = last.max(e);
            ranges.remove(&s);
        }
    }
    // Ranges starting inside (or right after) the new one.
    loop {
        let next = ranges
            .range(first..)
            .next()
            .filter(|(&s, _)| s <= last.saturating_add(1))
            .map(|(&s, &e)| (s, e));
        let Some((s, e)) = next else { break };
        last = last.max(e);
        ranges.remove(&s);
    }
    ranges.insert(first, last);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_frames_hide_the_hashes_of_their_range() {
        let mut c = Coverage::default();
        // Newest file: the upper quarter of db 0, as its two halves, and one
        // sub-range far below.
        c.saw(0, 0xC000_0000_0000_0000, 3);
        c.saw(0, 0xE000_0000_0000_0000, 3);
        c.saw(0, 0x1000_0000_0000_0000, 8);
        // Not visible until the file ends.
        assert_eq!(c.cover(0, 0xC000_0000_0000_0000, 2), Cover::None);
        assert!(!c.hides(0, 0xC000_0000_0000_0001));
        c.end_file();
        // The older page those halves came from is covered whole, and so
        // is one inside them.
        assert_eq!(c.cover(0, 0xC000_0000_0000_0000, 2), Cover::All);
        assert_eq!(c.cover(0, 0xF000_0000_0000_0000, 4), Cover::All);
        // An older page around them only in part: their hashes are hidden,
        // the others are not.
        assert_eq!(c.cover(0, 0x8000_0000_0000_0000, 1), Cover::Part);
        assert_eq!(c.cover(0, 0, 0), Cover::Part);
        assert_eq!(c.cover(0, 0, 2), Cover::Part);
        assert!(c.hides(0, 0xC000_0000_0000_0000));
        assert!(c.hides(0, u64::MAX));
        assert!(!c.hides(0, 0xBFFF_FFFF_FFFF_FFFF));
        assert!(c.hides(0, 0x1000_0000_0000_0000));
        assert!(c.hides(0, 0x10FF_FFFF_FFFF_FFFF));
        assert!(!c.hides(0, 0x1100_0000_0000_0000));
        assert!(!c.hides(0, 0x0FFF_FFFF_FFFF_FFFF));
        // Disjoint ranges and other databases are not covered.
        assert_eq!(c.cover(0, 0x8000_0000_0000_0000, 2), Cover::None);
        assert_eq!(c.cover(0, 0x4000_0000_0000_0000, 2), Cover::None);
        assert_eq!(c.cover(1, 0xC000_0000_0000_0000, 2), Cover::None);
        assert!(!c.hides(1, u64::MAX));
    }

    #[test]
    fn ranges_merge() {
        let mut r = BTreeMap::new();
        insert(&mut r, 10, 19);
        insert(&mut r, 30, 39);
        insert(&mut r, 20, 29);
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec![(10, 39)]);
        let mut r = BTreeMap::new();
        insert(&mut r, 0, 5);
        insert(&mut r, u64::MAX - 5, u64::MAX);
        insert(&mut r, 0, u64::MAX);
        assert_eq!(r.into_iter().collect::<Vec<_>>(), vec![(0, u64::MAX)]);
    }
}
