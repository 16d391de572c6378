//! Which pages of a chain (a full snapshot and the deltas after it) make up
//! its state.
//!
//! A page frame stands for its whole hash range: in a delta it replaces
//! whatever older files hold in that range. The files are read newest
//! first; [`Coverage`] remembers the ranges the newer files have written,
//! and a page of an older file is current only if no newer page overlaps
//! it. Overlap is the right test because pages are dyadic hash ranges that
//! only ever split: a newer page that lies inside an older one means the
//! older one split, and every half of a page that split after a snapshot
//! was changed (a split marks both halves), so the newer files hold all of
//! them; a newer page around an older one replaces it outright.

use std::collections::{BTreeMap, HashMap};

use super::format::page_range;

/// The hash ranges, per database, that newer files of a chain cover.
#[derive(Debug, Default)]
pub struct Coverage {
    /// db -> disjoint ranges: first hash -> last hash (inclusive).
    newer: HashMap<u16, BTreeMap<u64, u64>>,
    /// Pages of the file being read, added to `newer` at [`Coverage::end_file`].
    current: Vec<(u16, u64, u64)>,
}

impl Coverage {
    /// Whether a page of the file being read is current: no newer file
    /// wrote any part of its range.
    pub fn is_current(&self, db: u16, prefix: u64, depth: u8) -> bool {
        let (first, last) = page_range(prefix, depth);
        let Some(ranges) = self.newer.get(&db) else {
            return true;
        };
        match ranges.range(..=last).next_back() {
            Some((_, &end)) => end < first,
            None => true,
        }
    }

    /// Notes a page of the file being read (current or not).
    pub fn saw(&mut self, db: u16, prefix: u64, depth: u8) {
        let (first, last) = page_range(prefix, depth);
        self.current.push((db, first, last));
    }

    /// The file being read is done: its pages hide older ones from now on.
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
    fn newer_pages_hide_overlapping_older_ones() {
        let mut c = Coverage::default();
        // Newest file: the upper quarter of db 0, split into its halves.
        c.saw(0, 0xC000_0000_0000_0000, 3);
        c.saw(0, 0xE000_0000_0000_0000, 3);
        // Not visible until the file ends.
        assert!(c.is_current(0, 0xC000_0000_0000_0000, 2));
        c.end_file();
        // The older page those halves came from is replaced.
        assert!(!c.is_current(0, 0xC000_0000_0000_0000, 2));
        // So is an older page around them, and one inside them.
        assert!(!c.is_current(0, 0x8000_0000_0000_0000, 1));
        assert!(!c.is_current(0, 0, 0));
        assert!(!c.is_current(0, 0xF000_0000_0000_0000, 4));
        // Disjoint ranges and other databases stay current.
        assert!(c.is_current(0, 0x8000_0000_0000_0000, 2));
        assert!(c.is_current(0, 0, 1));
        assert!(c.is_current(1, 0xC000_0000_0000_0000, 2));
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
