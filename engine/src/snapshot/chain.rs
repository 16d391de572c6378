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

use std::collections::{BTreeMap, HashMap};

use super::format::{page_range, FormatError, PageFrame};
use crate::value::Entry;

/// The hash ranges, per database, that newer files of a chain cover.
#[derive(Debug, Default)]
pub struct Coverage {
    /// db -> disjoint ranges: first hash -> last hash (inclusive).
    newer: HashMap<u16, BTreeMap<u64, u64>>,
    /// Frames of the file being read, added to `newer` at [`Coverage::end_file`].
    current: Vec<(u16, u64, u64)>,
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

    /// Calls `f` with every entry of `frame` (of the file being read) that
    /// is current, i.e. whose hash no newer file wrote, then notes the
    /// frame's ranges. A range newer files cover whole is not decoded.
    pub fn current_entries(
        &mut self,
        frame: &PageFrame,
        offset: u64,
        mut f: impl FnMut(Entry),
    ) -> Result<(), FormatError> {
        for part in frame.parts(offset)? {
            let cover = self.cover(frame.db, part.prefix, part.depth);
            if cover != Cover::All {
                for e in frame.decode_part(&part, offset)? {
                    if cover == Cover::None || !self.hides(frame.db, e.hash) {
                        f(e);
                    }
                }
            }
            self.saw(frame.db, part.prefix, part.depth);
        }
        Ok(())
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
