//! The string type: its two representations, their encodings, and how a
//! string is written into a snapshot and recreated by commands.
//!
//! - **Plain**: one `Vec<u8>`, for strings shorter than [`BIG`]. GET and SET
//!   of ordinary values take this path and nothing else.
//! - **Chunked**: strings of [`BIG`] bytes or more are reference-counted
//!   chunks of [`CHUNK`] bytes (the last one shorter), `Arc<Vec<Arc<Chunk>>>`.
//!   Cloning one is O(1) (two reference counts), so a running snapshot keeps
//!   the value at its barrier by cloning it, and a later write copies only
//!   the top vector (8 bytes per chunk) and the one chunk it changes
//!   (`Arc::make_mut`). `Arc`, not `Rc`, so that the snapshot writer and a
//!   lazy-free thread may hold chunks on other threads.
//!
//! A string becomes chunked when it grows to [`BIG`] bytes (APPEND,
//! SETRANGE) or is set to a value that long; it becomes plain again only
//! when replaced by a shorter value (SET, INCR, ...).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::sync::Arc;

/// Bytes of one chunk of a chunked string.
pub const CHUNK: usize = 16 * 1024;
/// Strings of this many bytes or more are chunked.
pub const BIG: usize = 64 * 1024;
/// The bound on one argument of the commands that recreate a string
/// ([`Str::recreate`]): SET of the first piece, then APPEND of the others.
pub const PIECE: usize = 1024 * 1024;
/// Bytes a chunked string's bookkeeping takes per chunk (its `Arc` in the
/// top vector and the chunk's own header), counted in [`Str::heap_size`].
const CHUNK_OVERHEAD: usize = 8 + 16 + 32;

/// One chunk of a chunked string: [`CHUNK`] bytes (the last one of a
/// string 1 to [`CHUNK`]), and the snapshot epoch it last changed in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    pub bytes: Vec<u8>,
    pub epoch: u64,
}

/// A string value.
#[derive(Debug, Clone)]
pub enum Str {
    Plain(Vec<u8>),
    Chunked(Chunked),
}

/// A string of [`BIG`] bytes or more, in shared chunks.
#[derive(Debug, Clone)]
pub struct Chunked {
    chunks: Arc<Vec<Arc<Chunk>>>,
    len: usize,
    /// The epoch stamped on chunks this value's next change touches (set by
    /// the page table before it hands the value out for writing). Epochs
    /// are kept in 32 bits here so that a [`crate::Value`] stays 32 bytes
    /// and an entry 64 ([`small_epoch`]).
    stamp: u32,
    /// The epoch this value was placed whole in at its key (SET, RENAME,
    /// RESTORE, load...: [`Str::place`]), or [`UNPLACED`] for one made
    /// inside a change (APPEND converting a plain string, a replace) until
    /// the page table settles that change ([`Str::place_if_new`]). A delta
    /// writes only the chunks changed since its base of a value placed at
    /// or before the base.
    born: u32,
}

/// [`Chunked::born`] of a value not placed yet: never at or before a base.
pub(crate) const UNPLACED: u32 = u32::MAX;

/// The largest epoch [`Chunked`] keeps exactly; from it on (after some 4
/// billion snapshots) a value touched counts as placed anew, so a delta
/// writes it whole rather than trust a saturated stamp.
pub(crate) const EPOCH_SATURATED: u32 = u32::MAX - 1;

/// `epoch` in [`Chunked`]'s 32 bits, saturated at [`EPOCH_SATURATED`].
pub(crate) fn small_epoch(epoch: u64) -> u32 {
    u32::try_from(epoch).map_or(EPOCH_SATURATED, |e| e.min(EPOCH_SATURATED))
}

impl PartialEq for Str {
    fn eq(&self, other: &Str) -> bool {
        self.len() == other.len() && self.pieces().flatten().eq(other.pieces().flatten())
    }
}

impl Eq for Str {}

impl From<Vec<u8>> for Str {
    fn from(v: Vec<u8>) -> Str {
        if v.len() >= BIG {
            Str::Chunked(Chunked::from_slice(&v, 0))
        } else {
            Str::Plain(v)
        }
    }
}

impl From<&[u8]> for Str {
    fn from(v: &[u8]) -> Str {
        if v.len() >= BIG {
            Str::Chunked(Chunked::from_slice(v, 0))
        } else {
            Str::Plain(v.to_vec())
        }
    }
}

impl Chunked {
    fn from_slice(v: &[u8], epoch: u64) -> Chunked {
        let chunks = v
            .chunks(CHUNK)
            .map(|c| {
                Arc::new(Chunk {
                    bytes: c.to_vec(),
                    epoch,
                })
            })
            .collect();
        Chunked {
            chunks: Arc::new(chunks),
            len: v.len(),
            stamp: small_epoch(epoch),
            born: UNPLACED,
        }
    }

    /// The chunks (the last one may be shorter than [`CHUNK`]).
    pub fn chunks(&self) -> &[Arc<Chunk>] {
        &self.chunks
    }

    /// The epoch this value was placed whole in at its key, if it was
    /// ([`Str::place`]): every change since is stamped on the chunks it
    /// touched, so a chunk whose `epoch` is at or before a snapshot's
    /// (and this epoch too) holds the bytes that snapshot holds.
    pub fn placed(&self) -> Option<u64> {
        (self.born < EPOCH_SATURATED && self.stamp < EPOCH_SATURATED)
            .then_some(u64::from(self.born))
    }

    /// The chunk at `i`, to change: unshared first (the top vector and
    /// that chunk only), and stamped with the current epoch.
    fn chunk_mut(&mut self, i: usize) -> Option<&mut Vec<u8>> {
        let stamp = u64::from(self.stamp);
        let c = Arc::make_mut(Arc::make_mut(&mut self.chunks).get_mut(i)?);
        c.epoch = stamp;
        Some(&mut c.bytes)
    }

    /// Grows to `len` bytes with zeros (`len` >= the current length).
    fn grow_zeros(&mut self, len: usize) {
        while self.len < len {
            let need = len - self.len;
            let last_room = self
                .chunks
                .last()
                .map_or(0, |c| CHUNK.saturating_sub(c.bytes.len()));
            if last_room > 0 {
                let add = last_room.min(need);
                let i = self.chunks.len() - 1;
                if let Some(c) = self.chunk_mut(i) {
                    c.resize(c.len() + add, 0);
                }
                self.len += add;
            } else {
                let add = CHUNK.min(need);
                Arc::make_mut(&mut self.chunks).push(Arc::new(Chunk {
                    bytes: vec![0; add],
                    epoch: u64::from(self.stamp),
                }));
                self.len += add;
            }
        }
    }

    /// Overwrites bytes from `offset` (within the length) with `patch`.
    fn write_at(&mut self, offset: usize, patch: &[u8]) {
        let mut at = offset;
        let mut rest = patch;
        while !rest.is_empty() {
            let (i, within) = (at / CHUNK, at % CHUNK);
            let Some(c) = self.chunk_mut(i) else { return };
            let n = rest.len().min(c.len().saturating_sub(within));
            if n == 0 {
                return;
            }
            if let (Some(dst), Some(src)) = (c.get_mut(within..within + n), rest.get(..n)) {
                dst.copy_from_slice(src);
            }
            rest = rest.get(n..).unwrap_or_default();
            at += n;
        }
    }
}

impl Str {
    /// A string of `len` zero bytes.
    pub fn zeros(len: usize) -> Str {
        if len >= BIG {
            let mut c = Chunked {
                chunks: Arc::new(Vec::with_capacity(len.div_ceil(CHUNK))),
                len: 0,
                stamp: 0,
                born: UNPLACED,
            };
            c.grow_zeros(len);
            Str::Chunked(c)
        } else {
            Str::Plain(vec![0; len])
        }
    }

    /// A chunked string of these chunks (as read from a snapshot): None
    /// unless there is one at least and every one but the last is whole.
    pub fn from_chunks(chunks: Vec<Arc<Chunk>>) -> Option<Str> {
        Str::from_chunks_of(chunks, CHUNK)
    }

    /// [`Str::from_chunks`] of chunks of `size` bytes (a snapshot file's
    /// chunk size): None unless every one but the last is `size` bytes and
    /// the last 1 to `size`. Chunks of another size than [`CHUNK`] are
    /// copied into chunks of [`CHUNK`] (a file written by code of another
    /// chunk size; the value is then held twice until the copy is done).
    pub fn from_chunks_of(chunks: Vec<Arc<Chunk>>, size: usize) -> Option<Str> {
        let (last, whole) = chunks.split_last()?;
        if whole.iter().any(|c| c.bytes.len() != size)
            || last.bytes.is_empty()
            || last.bytes.len() > size
        {
            return None;
        }
        let len = whole.len() * size + last.bytes.len();
        if size == CHUNK {
            return Some(Str::Chunked(Chunked {
                chunks: Arc::new(chunks),
                len,
                stamp: 0,
                born: UNPLACED,
            }));
        }
        let mut out: Vec<Arc<Chunk>> = Vec::with_capacity(len.div_ceil(CHUNK));
        let mut cur: Vec<u8> = Vec::with_capacity(CHUNK.min(len));
        for c in chunks {
            let mut rest = c.bytes.as_slice();
            while !rest.is_empty() {
                let n = (CHUNK - cur.len()).min(rest.len());
                let (now, later) = rest.split_at(n);
                cur.extend_from_slice(now);
                rest = later;
                if cur.len() == CHUNK {
                    let bytes = std::mem::replace(&mut cur, Vec::with_capacity(CHUNK));
                    out.push(Arc::new(Chunk { bytes, epoch: 0 }));
                }
            }
        }
        if !cur.is_empty() {
            out.push(Arc::new(Chunk {
                bytes: cur,
                epoch: 0,
            }));
        }
        Some(Str::Chunked(Chunked {
            chunks: Arc::new(out),
            len,
            stamp: 0,
            born: UNPLACED,
        }))
    }

    pub fn len(&self) -> usize {
        match self {
            Str::Plain(v) => v.len(),
            Str::Chunked(c) => c.len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes, when they are in one piece (a plain string).
    #[inline]
    pub fn as_plain(&self) -> Option<&[u8]> {
        match self {
            Str::Plain(v) => Some(v),
            Str::Chunked(_) => None,
        }
    }

    /// The chunks of a chunked string.
    pub fn as_chunked(&self) -> Option<&Chunked> {
        match self {
            Str::Plain(_) => None,
            Str::Chunked(c) => Some(c),
        }
    }

    /// The bytes in order, as slices (one for a plain string).
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> + '_ {
        let (plain, chunks) = match self {
            Str::Plain(v) => (Some(v.as_slice()), &[][..]),
            Str::Chunked(c) => (None, c.chunks.as_slice()),
        };
        plain
            .into_iter()
            .chain(chunks.iter().map(|c| c.bytes.as_slice()))
    }

    /// The bytes `from..to` (within the length), as slices in order.
    pub fn range_pieces(&self, from: usize, to: usize) -> impl Iterator<Item = &[u8]> + '_ {
        let mut at = 0usize;
        self.pieces().filter_map(move |p| {
            let start = at;
            at += p.len();
            let (a, b) = (from.max(start), to.min(at));
            (a < b).then(|| p.get(a - start..b - start)).flatten()
        })
    }

    /// The bytes, copied into one vector.
    pub fn to_vec(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(self.len());
        self.pieces().for_each(|p| v.extend_from_slice(p));
        v
    }

    /// Appends RESP's bulk string of the bytes `from..to` to `out`.
    pub fn write_bulk_range(&self, out: &mut Vec<u8>, from: usize, to: usize) {
        if let Some(p) = self.as_plain() {
            crate::resp::write_bulk(out, p.get(from..to).unwrap_or_default());
            return;
        }
        // Room for the whole reply at once: appending chunk by chunk would
        // otherwise grow (and copy) the buffer several times.
        out.reserve(to.saturating_sub(from) + 32);
        out.push(b'$');
        out.extend_from_slice(itoa::Buffer::new().format(to - from).as_bytes());
        out.extend_from_slice(b"\r\n");
        self.range_pieces(from, to)
            .for_each(|p| out.extend_from_slice(p));
        out.extend_from_slice(b"\r\n");
    }

    /// Appends RESP's bulk string of the whole value to `out`.
    #[inline]
    pub fn write_bulk(&self, out: &mut Vec<u8>) {
        match self {
            Str::Plain(v) => crate::resp::write_bulk(out, v),
            Str::Chunked(c) => self.write_bulk_range(out, 0, c.len),
        }
    }

    /// Appends `tail`; a plain string that reaches [`BIG`] bytes becomes
    /// chunked.
    pub fn append(&mut self, tail: &[u8]) {
        let len = self.len();
        match self {
            Str::Plain(v) if len + tail.len() < BIG => v.extend_from_slice(tail),
            Str::Plain(v) => {
                let mut c = Chunked::from_slice(v, 0);
                c.grow_zeros(len + tail.len());
                c.write_at(len, tail);
                *self = Str::Chunked(c);
            }
            Str::Chunked(c) => {
                c.grow_zeros(len + tail.len());
                c.write_at(len, tail);
            }
        }
    }

    /// Writes `patch` at `offset`, padding with zeros past the end (Redis's
    /// SETRANGE); a plain string that reaches [`BIG`] bytes becomes
    /// chunked.
    pub fn set_range(&mut self, offset: usize, patch: &[u8]) {
        let end = offset.saturating_add(patch.len());
        match self {
            Str::Plain(v) if end < BIG => {
                if v.len() < end {
                    v.resize(end, 0);
                }
                if let Some(dst) = v.get_mut(offset..end) {
                    dst.copy_from_slice(patch);
                }
            }
            Str::Plain(v) => {
                let mut c = Chunked::from_slice(v, 0);
                c.grow_zeros(end);
                c.write_at(offset, patch);
                *self = Str::Chunked(c);
            }
            Str::Chunked(c) => {
                if c.len < end {
                    c.grow_zeros(end);
                }
                c.write_at(offset, patch);
            }
        }
    }

    /// Replaces the contents (INCR and friends: short strings).
    pub fn replace(&mut self, contents: &[u8]) {
        match self {
            Str::Plain(v) if contents.len() < BIG => {
                v.clear();
                v.extend_from_slice(contents);
            }
            _ => *self = Str::from(contents),
        }
    }

    /// The name OBJECT ENCODING gives this string, as Redis 7: "int" for
    /// an integer's canonical text, "embstr" up to 44 bytes, "raw" beyond
    /// (chunked strings are always "raw").
    pub fn encoding(&self) -> &'static str {
        match self.as_plain() {
            Some(v)
                if v.len() <= 20
                    && crate::resp::parse_i64(v)
                        .is_some_and(|n| itoa::Buffer::new().format(n).as_bytes() == v) =>
            {
                "int"
            }
            Some(v) if v.len() <= 44 => "embstr",
            _ => "raw",
        }
    }

    /// See [`super::Value::refcount`].
    pub fn refcount(&self) -> i64 {
        const SHARED_INTEGERS: i64 = 10_000;
        let shared = self.encoding() == "int"
            && self
                .as_plain()
                .and_then(crate::resp::parse_i64)
                .is_some_and(|n| (0..SHARED_INTEGERS).contains(&n));
        if shared {
            i64::from(i32::MAX)
        } else {
            1
        }
    }

    /// Approximate heap bytes used (kept up to date by each change: a
    /// plain string's capacity, a chunked one's chunk count).
    #[inline]
    pub fn heap_size(&self) -> usize {
        match self {
            Str::Plain(v) => v.capacity(),
            Str::Chunked(c) => c.chunks.len() * (CHUNK + CHUNK_OVERHEAD),
        }
    }

    /// How much work dropping this value is: its allocations.
    pub fn free_effort(&self) -> usize {
        match self {
            Str::Plain(_) => 1,
            Str::Chunked(c) => c.chunks.len() + 1,
        }
    }

    /// Stamps the epoch that the chunks the next change touches are marked
    /// with (the page table's, when it hands the value out for writing).
    #[inline]
    pub fn stamp(&mut self, epoch: u64) {
        if let Str::Chunked(c) = self {
            c.stamp = small_epoch(epoch);
        }
    }

    /// Notes that this value is placed whole at a key in `epoch` (the page
    /// table's insert: SET, RENAME's destination, RESTORE, COPY, a load):
    /// a delta whose base is older writes it whole.
    #[inline]
    pub fn place(&mut self, epoch: u64) {
        if let Str::Chunked(c) = self {
            c.born = small_epoch(epoch);
        }
    }

    /// [`Str::place`] for a value made inside a change and not placed yet
    /// (the page table's, once the change is done, in its epoch or later).
    #[inline]
    pub fn place_if_new(&mut self, epoch: u64) {
        if let Str::Chunked(c) = self {
            if c.born == UNPLACED {
                c.born = small_epoch(epoch);
            }
        }
    }

    /// The commands that recreate this value at `key`, each argument at
    /// most [`PIECE`] bytes: SET of the first piece (with `PXAT expire_at`
    /// when that is not 0), then APPEND of the others. `f` gets each
    /// command's arguments.
    pub fn recreate(&self, key: &[u8], expire_at: u64, mut f: impl FnMut(&[&[u8]])) {
        let at = itoa::Buffer::new().format(expire_at).to_owned();
        let mut piece = Vec::new();
        let mut first = true;
        let mut flush = |piece: &[u8], first: bool| {
            if !first {
                f(&[b"APPEND", key, piece]);
            } else if expire_at != 0 {
                f(&[b"SET", key, piece, b"PXAT", at.as_bytes()]);
            } else {
                f(&[b"SET", key, piece]);
            }
        };
        if let Some(v) = self.as_plain() {
            if v.len() <= PIECE {
                flush(v, true);
                return;
            }
        }
        for p in self.pieces() {
            let mut rest = p;
            while !rest.is_empty() {
                let n = rest.len().min(PIECE - piece.len());
                piece.extend_from_slice(rest.get(..n).unwrap_or_default());
                rest = rest.get(n..).unwrap_or_default();
                if piece.len() == PIECE {
                    flush(&piece, first);
                    first = false;
                    piece.clear();
                }
            }
        }
        if first || !piece.is_empty() {
            flush(&piece, first);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i % 251) as u8).collect()
    }

    #[test]
    fn representations_follow_the_threshold() {
        assert!(Str::from(pattern(BIG - 1)).as_plain().is_some());
        let big = Str::from(pattern(BIG));
        assert!(big.as_plain().is_none());
        assert_eq!(big.to_vec(), pattern(BIG));
        // (BIG is a whole number of chunks, 4 of 16 KiB.)
        let n = BIG.div_ceil(CHUNK);
        let three = Str::from(pattern(n * CHUNK + 5));
        let c = three.as_chunked().unwrap();
        let mut want = vec![CHUNK; n];
        want.push(5);
        assert_eq!(
            c.chunks().iter().map(|c| c.bytes.len()).collect::<Vec<_>>(),
            want
        );
        assert_eq!(three.free_effort(), n + 2);
        assert_eq!(Str::from(b"x".to_vec()).free_effort(), 1);
        assert!(three.heap_size() >= (n + 1) * CHUNK);
        assert_eq!(Str::zeros(BIG + 3).to_vec(), vec![0; BIG + 3]);
        assert_eq!(Str::zeros(3).to_vec(), vec![0; 3]);
    }

    /// Chunks of another size (a file written with 64 KiB chunks) are cut
    /// again into [`CHUNK`]s with the same bytes; chunks that are not all
    /// whole but the last are refused, in either size.
    #[test]
    fn chunks_of_another_size_are_cut_again() {
        let size = 64 * 1024;
        let want = pattern(2 * size + 1000);
        let theirs: Vec<Arc<Chunk>> = want
            .chunks(size)
            .map(|c| {
                Arc::new(Chunk {
                    bytes: c.to_vec(),
                    epoch: 0,
                })
            })
            .collect();
        let s = Str::from_chunks_of(theirs.clone(), size).unwrap();
        assert_eq!(s.to_vec(), want);
        let lens: Vec<usize> = s
            .as_chunked()
            .unwrap()
            .chunks()
            .iter()
            .map(|c| c.bytes.len())
            .collect();
        assert!(
            lens[..lens.len() - 1].iter().all(|&n| n == CHUNK),
            "{lens:?}"
        );
        assert_eq!(lens.iter().sum::<usize>(), want.len());
        // Read in the wrong size, or with a short chunk inside: refused.
        assert!(Str::from_chunks_of(theirs.clone(), CHUNK / 2).is_none());
        let mut bad = theirs;
        bad.swap(1, 2);
        assert!(Str::from_chunks_of(bad, size).is_none());
    }

    #[test]
    fn append_and_set_range_match_a_plain_vector() {
        // The same edits on a Vec and on a Str, across the threshold and
        // chunk boundaries.
        let mut want = pattern(BIG - 10);
        let mut s = Str::from(want.clone());
        let edits: Vec<(Option<usize>, Vec<u8>)> = vec![
            (None, b"0123456789abcdef".to_vec()),
            (Some(CHUNK - 2), b"XYZW".to_vec()),
            (Some(3 * CHUNK + 7), b"far".to_vec()),
            (None, pattern(CHUNK + 3)),
            (Some(0), b"start".to_vec()),
            (Some(2 * CHUNK - 1), pattern(CHUNK + 2)),
        ];
        for (at, bytes) in edits {
            match at {
                None => {
                    want.extend_from_slice(&bytes);
                    s.append(&bytes);
                }
                Some(o) => {
                    if want.len() < o + bytes.len() {
                        want.resize(o + bytes.len(), 0);
                    }
                    want[o..o + bytes.len()].copy_from_slice(&bytes);
                    s.set_range(o, &bytes);
                }
            }
            assert_eq!(s.len(), want.len());
            assert_eq!(s.to_vec(), want);
            let c = s.as_chunked().unwrap();
            let lens: Vec<usize> = c.chunks().iter().map(|c| c.bytes.len()).collect();
            assert!(
                lens[..lens.len() - 1].iter().all(|&n| n == CHUNK),
                "{lens:?}"
            );
        }
        // Range reads.
        for (from, to) in [(0, 1), (CHUNK - 3, CHUNK + 3), (5, want.len()), (7, 7)] {
            let got: Vec<u8> = s.range_pieces(from, to).flatten().copied().collect();
            assert_eq!(got, want[from..to]);
            let mut out = Vec::new();
            s.write_bulk_range(&mut out, from, to);
            let mut exp = Vec::new();
            crate::resp::write_bulk(&mut exp, &want[from..to]);
            assert_eq!(out, exp);
        }
    }

    #[test]
    fn a_write_to_a_shared_value_copies_one_chunk() {
        let mut s = Str::from(pattern(10 * CHUNK));
        s.stamp(7);
        let kept = s.clone();
        s.set_range(4 * CHUNK + 1, b"!");
        let (a, b) = (s.as_chunked().unwrap(), kept.as_chunked().unwrap());
        let shared = a
            .chunks()
            .iter()
            .zip(b.chunks())
            .filter(|(x, y)| Arc::ptr_eq(x, y))
            .count();
        assert_eq!(shared, 9, "only the written chunk is copied");
        assert_eq!(a.chunks()[4].epoch, 7);
        assert_eq!(b.chunks()[4].epoch, 0);
        assert_eq!(kept.to_vec(), pattern(10 * CHUNK));
    }

    /// Epochs are kept in 32 bits: a value placed, or changed, at an
    /// epoch past them is never patched by a delta (written whole).
    #[test]
    fn epochs_past_32_bits_are_never_trusted_for_a_patch() {
        let mut s = Str::from(vec![1u8; BIG + CHUNK]);
        s.place(5);
        s.stamp(6);
        assert_eq!(s.as_chunked().and_then(Chunked::placed), Some(5));
        s.stamp(u64::from(u32::MAX) + 10);
        assert_eq!(s.as_chunked().and_then(Chunked::placed), None);
        let mut t = Str::from(vec![1u8; BIG + CHUNK]);
        t.place(u64::MAX);
        assert_eq!(t.as_chunked().and_then(Chunked::placed), None);
    }

    #[test]
    fn encodings_are_redis_names() {
        for (v, e) in [
            (&b"123"[..], "int"),
            (b"-5", "int"),
            (b"012", "embstr"),
            (b"+1", "embstr"),
            (b"-0", "embstr"),
            (b"abc", "embstr"),
            (&[b'x'; 44][..], "embstr"),
            (&[b'x'; 45][..], "raw"),
        ] {
            assert_eq!(
                Str::from(v).encoding(),
                e,
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        assert_eq!(Str::from(pattern(BIG)).encoding(), "raw");
    }

    #[test]
    fn recreate_is_bounded_pieces() {
        let v = pattern(2 * PIECE + 10);
        let mut got = Vec::new();
        let mut cmds = Vec::new();
        Str::from(v.clone()).recreate(b"k", 99, |args| {
            cmds.push(String::from_utf8_lossy(args[0]).into_owned());
            assert!(args[2].len() <= PIECE);
            got.extend_from_slice(args[2]);
            if args[0] == b"SET" {
                assert_eq!(&args[3..], &[&b"PXAT"[..], b"99"]);
            }
        });
        assert_eq!(cmds, ["SET", "APPEND", "APPEND"]);
        assert_eq!(got, v);
        let mut n = 0;
        Str::from(Vec::new()).recreate(b"k", 0, |args| {
            assert_eq!(args, &[&b"SET"[..], b"k", b""]);
            n += 1;
        });
        assert_eq!(n, 1);
    }
}
