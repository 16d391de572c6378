//! Redis's value serialization (the RDB object encoding, RDB version 10 as
//! Redis 7.0 writes it), for DUMP and RESTORE: the payload, a decoder of
//! the object body into a type-neutral [`RdbValue`], and encoders.
//!
//! A DUMP payload is
//!
//! ```text
//! <type byte> <object body> <RDB version u16 LE> <CRC-64 u64 LE of everything before it>
//! ```
//!
//! (Redis 7.0: `createDumpPayload` and `verifyDumpPayload` in `cluster.c`,
//! the bodies in `rdb.c`; `docs/FORMATS.md` has the layout.) Everything
//! here reads untrusted bytes (RESTORE payloads come from clients): no
//! panic on any input, and every length is checked against the bytes left
//! before anything is allocated. Collections are validated as Redis's
//! `sanitize-dump-payload yes` does (entry counts agree, encodings valid,
//! no duplicate fields or members).

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

pub mod crc64;
pub mod intset;
pub mod listpack;
pub mod lzf;
#[cfg(test)]
mod tests;
pub mod ziplist;
pub mod zipmap;

use std::fmt;

/// The RDB version Redis 7.0 writes, and the highest its RESTORE accepts.
pub const RDB_VERSION: u16 = 10;

/// Object type bytes (`rdb.h`).
pub mod types {
    pub const STRING: u8 = 0;
    pub const LIST: u8 = 1;
    pub const SET: u8 = 2;
    pub const ZSET: u8 = 3;
    pub const HASH: u8 = 4;
    pub const ZSET_2: u8 = 5;
    pub const MODULE: u8 = 6;
    pub const MODULE_2: u8 = 7;
    pub const HASH_ZIPMAP: u8 = 9;
    pub const LIST_ZIPLIST: u8 = 10;
    pub const SET_INTSET: u8 = 11;
    pub const ZSET_ZIPLIST: u8 = 12;
    pub const HASH_ZIPLIST: u8 = 13;
    pub const LIST_QUICKLIST: u8 = 14;
    pub const STREAM_LISTPACKS: u8 = 15;
    pub const HASH_LISTPACK: u8 = 16;
    pub const ZSET_LISTPACK: u8 = 17;
    pub const LIST_QUICKLIST_2: u8 = 18;
    pub const STREAM_LISTPACKS_2: u8 = 19;
}

/// Length-encoding markers (`rdb.h`): the top two bits of a length's first
/// byte.
const LEN_6BIT: u8 = 0;
const LEN_14BIT: u8 = 1;
const LEN_32BIT: u8 = 0x80;
const LEN_64BIT: u8 = 0x81;
const ENC_INT8: u8 = 0;
const ENC_INT16: u8 = 1;
const ENC_INT32: u8 = 2;
const ENC_LZF: u8 = 3;

/// Why a payload or an object body could not be read: what failed and
/// where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RdbError(pub String);

impl fmt::Display for RdbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RdbError {}

/// A payload refused: Redis answers the first with "ERR DUMP payload
/// version or checksum are wrong" and the second with "ERR Bad data
/// format".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadError {
    VersionOrChecksum,
    BadFormat(RdbError),
    /// A value of a type this server does not hold yet (lists, sorted
    /// sets) or at all (streams, modules): its name.
    Unsupported(&'static str),
}

/// The name of the type an object type byte holds, for the types
/// [`decode_object`] does not read.
pub fn unsupported_type(ty: u8) -> Option<&'static str> {
    match ty {
        types::LIST | types::LIST_ZIPLIST | types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            Some("list")
        }
        types::ZSET | types::ZSET_2 | types::ZSET_ZIPLIST | types::ZSET_LISTPACK => {
            Some("sorted set")
        }
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => Some("stream"),
        types::MODULE | types::MODULE_2 => Some("module value"),
        _ => None,
    }
}

/// A value as a payload holds it, whatever its encoding there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RdbValue {
    Str(Vec<u8>),
    /// Field/value pairs in the payload's order (no duplicate fields).
    Hash(Pairs),
    /// Members in the payload's order (no duplicates); an intset's as
    /// decimal text.
    Set(Vec<Vec<u8>>),
}

/// A hash's field/value pairs.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// How to encode a hash (the type module decides by its thresholds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashEncoding {
    /// `RDB_TYPE_HASH_LISTPACK`: one listpack of field, value, ...
    Listpack,
    /// `RDB_TYPE_HASH`: a count, then each field and value as strings.
    Hashtable,
}

/// How to encode a set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetEncoding {
    /// `RDB_TYPE_SET_INTSET`: every member must be a canonical integer.
    Intset,
    /// `RDB_TYPE_SET`: a count, then each member as a string.
    Hashtable,
}

/// `s` as an i64 if it is exactly how Redis prints that integer (Redis's
/// `string2ll` plus the round trip of `rdbTryIntegerEncoding`): no sign on
/// zero, no leading zeros or '+', no spaces.
pub fn canonical_i64(s: &[u8]) -> Option<i64> {
    if s.is_empty() || s.len() > 20 {
        return None;
    }
    let v: i64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (itoa::Buffer::new().format(v).as_bytes() == s).then_some(v)
}

// ---------------------------------------------------------------------------
// Payload framing.

/// Checks the footer of a DUMP payload as Redis's `verifyDumpPayload`: at
/// least 10 bytes, RDB version <= 10, and the CRC-64 of everything before
/// the checksum. Returns the type byte and object body.
pub fn verify_payload(p: &[u8]) -> Result<&[u8], PayloadError> {
    let Some(split) = p.len().checked_sub(10) else {
        return Err(PayloadError::VersionOrChecksum);
    };
    let (obj, footer) = p.split_at(split);
    let (ver, crc) = footer.split_at(2);
    let ver = u16::from_le_bytes([
        ver.first().copied().unwrap_or(0),
        ver.get(1).copied().unwrap_or(0),
    ]);
    if ver > RDB_VERSION {
        return Err(PayloadError::VersionOrChecksum);
    }
    let mut want = [0u8; 8];
    want.copy_from_slice(crc);
    if crc64::crc64(0, p.get(..split + 2).unwrap_or_default()) != u64::from_le_bytes(want) {
        return Err(PayloadError::VersionOrChecksum);
    }
    Ok(obj)
}

/// Verifies a DUMP payload and decodes its value. As Redis's RESTORE
/// (which reads the object from the whole payload buffer), the object may
/// run into the footer's bytes, and bytes after it are ignored.
pub fn decode_payload(p: &[u8]) -> Result<RdbValue, PayloadError> {
    let obj = verify_payload(p)?;
    if obj.is_empty() {
        return Err(PayloadError::BadFormat(RdbError("no type byte".into())));
    }
    let (&ty, body) = p
        .split_first()
        .ok_or_else(|| PayloadError::BadFormat(RdbError("no type byte".into())))?;
    if let Some(name) = unsupported_type(ty) {
        return Err(PayloadError::Unsupported(name));
    }
    decode_object(ty, body).map_err(PayloadError::BadFormat)
}

/// Frames an object (`type byte` + body) as a DUMP payload: version and
/// checksum appended.
pub fn finish_payload(mut obj: Vec<u8>) -> Vec<u8> {
    obj.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &obj);
    obj.extend_from_slice(&crc.to_le_bytes());
    obj
}

/// The DUMP payload of a string, byte for byte as Redis 7.0 writes it
/// (integer encoding, LZF above 20 bytes when it saves at least 4 bytes).
pub fn dump_string(s: &[u8]) -> Vec<u8> {
    let mut obj = Vec::with_capacity(s.len() + 16);
    obj.push(types::STRING);
    write_string(&mut obj, s);
    finish_payload(obj)
}

/// The DUMP payload of a hash given its pairs (fields distinct), in the
/// encoding asked for.
pub fn dump_hash<'a>(
    pairs: impl ExactSizeIterator<Item = (&'a [u8], &'a [u8])>,
    enc: HashEncoding,
) -> Vec<u8> {
    let mut obj = Vec::new();
    match enc {
        HashEncoding::Listpack => {
            obj.push(types::HASH_LISTPACK);
            let lp = listpack::build(pairs.flat_map(|(f, v)| [f, v]));
            write_string(&mut obj, &lp);
        }
        HashEncoding::Hashtable => {
            obj.push(types::HASH);
            write_len(&mut obj, pairs.len() as u64);
            for (f, v) in pairs {
                write_string(&mut obj, f);
                write_string(&mut obj, v);
            }
        }
    }
    finish_payload(obj)
}

/// The DUMP payload of a set given its members (distinct), in the encoding
/// asked for; `Intset` needs every member to be a canonical integer.
pub fn dump_set<'a>(
    members: impl ExactSizeIterator<Item = &'a [u8]>,
    enc: SetEncoding,
) -> Result<Vec<u8>, RdbError> {
    let mut obj = Vec::new();
    match enc {
        SetEncoding::Intset => {
            obj.push(types::SET_INTSET);
            let ints = members
                .map(|m| {
                    canonical_i64(m).ok_or_else(|| {
                        RdbError(format!(
                            "intset: member {:?} is not an integer",
                            String::from_utf8_lossy(m)
                        ))
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            write_string(&mut obj, &intset::build(&ints));
        }
        SetEncoding::Hashtable => {
            obj.push(types::SET);
            write_len(&mut obj, members.len() as u64);
            for m in members {
                write_string(&mut obj, m);
            }
        }
    }
    Ok(finish_payload(obj))
}

// ---------------------------------------------------------------------------
// Writing (`rdbSaveLen`, `rdbSaveRawString`).

/// `rdbSaveLen`.
pub fn write_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.extend_from_slice(&[(LEN_14BIT << 6) | (len >> 8) as u8, len as u8]);
    } else if len <= u64::from(u32::MAX) {
        out.push(LEN_32BIT);
        out.extend_from_slice(&(len as u32).to_be_bytes());
    } else {
        out.push(LEN_64BIT);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// `rdbSaveRawString`: a canonical integer that fits 32 bits as an
/// integer; longer than 20 bytes LZF-compressed when that saves at least 4
/// bytes; otherwise length-prefixed.
pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(v) = canonical_i64(s) {
            if let Ok(b) = i8::try_from(v) {
                out.extend_from_slice(&[0xC0 | ENC_INT8, b as u8]);
                return;
            }
            if let Ok(h) = i16::try_from(v) {
                out.push(0xC0 | ENC_INT16);
                out.extend_from_slice(&h.to_le_bytes());
                return;
            }
            if let Ok(w) = i32::try_from(v) {
                out.push(0xC0 | ENC_INT32);
                out.extend_from_slice(&w.to_le_bytes());
                return;
            }
        }
    }
    if s.len() > 20 {
        if let Some(c) = lzf::compress(s, s.len() - 4) {
            out.push(0xC0 | ENC_LZF);
            write_len(out, c.len() as u64);
            write_len(out, s.len() as u64);
            out.extend_from_slice(&c);
            return;
        }
    }
    write_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

// ---------------------------------------------------------------------------
// Reading.

/// A cursor over an object body.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

/// A length, or the special encoding a string's length byte names.
enum Len {
    Plain(u64),
    Encoded(u8),
}

impl<'a> Reader<'a> {
    fn err(&self, what: impl fmt::Display) -> RdbError {
        RdbError(format!("{what} at byte {} of the object", self.pos + 1))
    }

    fn left(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], RdbError> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|end| self.buf.get(self.pos..end))
            .ok_or_else(|| self.err(format_args!("{n} bytes wanted, {} left", self.left())))?;
        self.pos += n;
        Ok(s)
    }

    fn byte(&mut self) -> Result<u8, RdbError> {
        Ok(self.take(1)?.first().copied().unwrap_or(0))
    }

    /// `rdbLoadLenByRef`.
    fn len_or_enc(&mut self) -> Result<Len, RdbError> {
        let b = self.byte()?;
        Ok(match b >> 6 {
            LEN_6BIT => Len::Plain(u64::from(b & 0x3f)),
            LEN_14BIT => Len::Plain((u64::from(b & 0x3f) << 8) | u64::from(self.byte()?)),
            3 => Len::Encoded(b & 0x3f),
            _ => match b {
                LEN_32BIT => {
                    let mut w = [0u8; 4];
                    w.copy_from_slice(self.take(4)?);
                    Len::Plain(u64::from(u32::from_be_bytes(w)))
                }
                LEN_64BIT => {
                    let mut w = [0u8; 8];
                    w.copy_from_slice(self.take(8)?);
                    Len::Plain(u64::from_be_bytes(w))
                }
                x => return Err(self.err(format_args!("unknown length encoding {x:#04x}"))),
            },
        })
    }

    /// A count of things each at least `min_bytes` long: refused when the
    /// bytes left cannot hold them, so nothing is allocated for a lie.
    fn count(&mut self, min_bytes: usize) -> Result<usize, RdbError> {
        match self.len_or_enc()? {
            Len::Plain(n) => {
                let fits = usize::try_from(n)
                    .ok()
                    .filter(|&n| n.saturating_mul(min_bytes) <= self.left());
                fits.ok_or_else(|| self.err(format_args!("count {n} larger than the bytes left")))
            }
            Len::Encoded(_) => Err(self.err("an encoded string where a count belongs")),
        }
    }

    /// `rdbGenericLoadStringObject`: a string in any of its encodings.
    fn string(&mut self) -> Result<Vec<u8>, RdbError> {
        match self.len_or_enc()? {
            Len::Plain(n) => {
                let n = usize::try_from(n).map_err(|_| self.err("string length overflows"))?;
                Ok(self.take(n)?.to_vec())
            }
            Len::Encoded(ENC_INT8) => {
                let v = self.byte()? as i8;
                Ok(itoa::Buffer::new().format(v).as_bytes().to_vec())
            }
            Len::Encoded(ENC_INT16) => {
                let mut w = [0u8; 2];
                w.copy_from_slice(self.take(2)?);
                Ok(itoa::Buffer::new()
                    .format(i16::from_le_bytes(w))
                    .as_bytes()
                    .to_vec())
            }
            Len::Encoded(ENC_INT32) => {
                let mut w = [0u8; 4];
                w.copy_from_slice(self.take(4)?);
                Ok(itoa::Buffer::new()
                    .format(i32::from_le_bytes(w))
                    .as_bytes()
                    .to_vec())
            }
            Len::Encoded(ENC_LZF) => {
                let clen = self.count(1)?;
                let len = match self.len_or_enc()? {
                    Len::Plain(n) => usize::try_from(n).ok(),
                    Len::Encoded(_) => None,
                }
                .ok_or_else(|| self.err("bad LZF length"))?;
                if len == 0 {
                    return Err(self.err("LZF string of length 0"));
                }
                let at = self.pos;
                let c = self.take(clen)?;
                lzf::decompress(c, len)
                    .map_err(|e| RdbError(format!("{e} (string at byte {})", at + 1)))
            }
            Len::Encoded(x) => Err(self.err(format_args!("unknown string encoding {x}"))),
        }
    }
}

/// Decodes an object body of type `ty` (the payload's first byte).
pub fn decode_object(ty: u8, body: &[u8]) -> Result<RdbValue, RdbError> {
    let mut r = Reader { buf: body, pos: 0 };
    match ty {
        types::STRING => Ok(RdbValue::Str(r.string()?)),
        types::SET => {
            let n = r.count(1)?;
            if n == 0 {
                return Err(RdbError("empty set".into()));
            }
            let mut members = Vec::with_capacity(n);
            for _ in 0..n {
                members.push(r.string()?);
            }
            no_duplicates(members.iter(), "set member")?;
            Ok(RdbValue::Set(members))
        }
        types::SET_INTSET => {
            let blob = r.string()?;
            let ints = intset::read(&blob)?;
            Ok(RdbValue::Set(
                ints.iter()
                    .map(|v| itoa::Buffer::new().format(*v).as_bytes().to_vec())
                    .collect(),
            ))
        }
        types::HASH => {
            let n = r.count(2)?;
            if n == 0 {
                return Err(RdbError("empty hash".into()));
            }
            let mut pairs = Vec::with_capacity(n);
            for _ in 0..n {
                let f = r.string()?;
                let v = r.string()?;
                pairs.push((f, v));
            }
            no_duplicates(pairs.iter().map(|p| &p.0), "hash field")?;
            Ok(RdbValue::Hash(pairs))
        }
        types::HASH_ZIPMAP => {
            let blob = r.string()?;
            hash_from_pairs(zipmap::read(&blob)?)
        }
        types::HASH_ZIPLIST => {
            let blob = r.string()?;
            hash_from_flat(ziplist::read(&blob)?, "ziplist")
        }
        types::HASH_LISTPACK => {
            let blob = r.string()?;
            hash_from_flat(listpack::read(&blob)?, "listpack")
        }
        types::LIST | types::LIST_ZIPLIST | types::LIST_QUICKLIST | types::LIST_QUICKLIST_2 => {
            Err(RdbError(format!("type {ty} (a list) is not supported yet")))
        }
        types::ZSET | types::ZSET_2 | types::ZSET_ZIPLIST | types::ZSET_LISTPACK => Err(RdbError(
            format!("type {ty} (a sorted set) is not supported yet"),
        )),
        types::STREAM_LISTPACKS | types::STREAM_LISTPACKS_2 => {
            Err(RdbError(format!("type {ty} (a stream) is not supported")))
        }
        types::MODULE | types::MODULE_2 => Err(RdbError(format!(
            "type {ty} (a module value) is not supported"
        ))),
        _ => Err(RdbError(format!("unknown object type {ty}"))),
    }
}

fn no_duplicates<'a>(items: impl Iterator<Item = &'a Vec<u8>>, what: &str) -> Result<(), RdbError> {
    let mut seen = hashbrown::HashSet::new();
    for i in items {
        if !seen.insert(i.as_slice()) {
            return Err(RdbError(format!(
                "duplicate {what} {:?}",
                String::from_utf8_lossy(i)
            )));
        }
    }
    Ok(())
}

fn hash_from_pairs(pairs: Pairs) -> Result<RdbValue, RdbError> {
    if pairs.is_empty() {
        return Err(RdbError("empty hash".into()));
    }
    no_duplicates(pairs.iter().map(|p| &p.0), "hash field")?;
    Ok(RdbValue::Hash(pairs))
}

/// A hash from a listpack or ziplist of field, value, field, value, ...
fn hash_from_flat(items: Vec<Vec<u8>>, what: &str) -> Result<RdbValue, RdbError> {
    if !items.len().is_multiple_of(2) {
        return Err(RdbError(format!(
            "hash {what} with an odd number of entries ({})",
            items.len()
        )));
    }
    let mut it = items.into_iter();
    let mut pairs = Vec::with_capacity(it.len() / 2);
    while let (Some(f), Some(v)) = (it.next(), it.next()) {
        pairs.push((f, v));
    }
    hash_from_pairs(pairs)
}
