//! Hash commands: HSET, HSETNX, HMSET, HGET, HMGET, HDEL, HEXISTS, HLEN,
//! HSTRLEN, HKEYS, HVALS, HGETALL, HINCRBY, HINCRBYFLOAT, HRANDFIELD and
//! HSCAN. Behaviour, reply formats and error texts follow Redis 7.0's
//! `t_hash.c` (HSCAN's NOVALUES is 7.4's). The value type is
//! [`crate::types::hash`]; a hash whose last field goes is deleted.
//!
//! Logging: every write is `Log::Auto` (deterministic) except HINCRBYFLOAT,
//! logged as `HSET key field <result>` as Redis does, so replay does not
//! depend on float arithmetic.

use crate::command::flags::*;
use crate::command::{cmd, Args, CommandSpec, Exec, Log};
use crate::error::{CmdResult, Error};
use crate::longdouble::LongDouble;
use crate::resp::{self, parse_i64};
use crate::shard::ExecCtx;
use crate::types::hash::{Hash, Limits};
use crate::value::Value;

/// Arity, flags and key positions are Redis 7.0's (`src/commands/*.json`).
pub static COMMANDS: &[CommandSpec] = &[
    cmd("hset", -4, WRITE | DENYOOM | FAST, Exec::Shard(hset), Log::Auto)
        .keys(1, 1, 1)
        .doc("hash", "Set the string value of a hash field", "2.0.0", "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs.", "key field value [field value ...]")
        .history(&[("4.0.0", "Accepts multiple `field` and `value` arguments.")]),
    cmd("hsetnx", 4, WRITE | DENYOOM | FAST, Exec::Shard(hsetnx), Log::Auto)
        .keys(1, 1, 1)
        .doc("hash", "Set the value of a hash field, only if the field does not exist", "2.0.0", "O(1)", "key field value"),
    cmd("hmset", -4, WRITE | DENYOOM | FAST, Exec::Shard(hmset), Log::Auto)
        .keys(1, 1, 1)
        .doc("hash", "Set multiple hash fields to multiple values", "2.0.0", "O(N) where N is the number of fields being set.", "key field value [field value ...]")
        .deprecated("4.0.0", "`HSET` with multiple field-value pairs"),
    cmd("hget", 3, READONLY | FAST, Exec::Shard(hget), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get the value of a hash field", "2.0.0", "O(1)", "key field"),
    cmd("hmget", -3, READONLY | FAST, Exec::Shard(hmget), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get the values of all the given hash fields", "2.0.0", "O(N) where N is the number of fields being requested.", "key field [field ...]"),
    cmd("hdel", -3, WRITE | FAST, Exec::Shard(hdel), Log::Auto)
        .keys(1, 1, 1)
        .doc("hash", "Delete one or more hash fields", "2.0.0", "O(N) where N is the number of fields to be removed.", "key field [field ...]")
        .history(&[("2.4.0", "Accepts multiple `field` arguments.")]),
    cmd("hexists", 3, READONLY | FAST, Exec::Shard(hexists), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Determine if a hash field exists", "2.0.0", "O(1)", "key field"),
    cmd("hlen", 2, READONLY | FAST, Exec::Shard(hlen), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get the number of fields in a hash", "2.0.0", "O(1)", "key"),
    cmd("hstrlen", 3, READONLY | FAST, Exec::Shard(hstrlen), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get the length of the value of a hash field", "3.2.0", "O(1)", "key field"),
    cmd("hkeys", 2, READONLY, Exec::Shard(hkeys), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get all the fields in a hash", "2.0.0", "O(N) where N is the size of the hash.", "key"),
    cmd("hvals", 2, READONLY, Exec::Shard(hvals), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get all the values in a hash", "2.0.0", "O(N) where N is the size of the hash.", "key"),
    cmd("hgetall", 2, READONLY, Exec::Shard(hgetall), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get all the fields and values in a hash", "2.0.0", "O(N) where N is the size of the hash.", "key"),
    cmd("hincrby", 4, WRITE | DENYOOM | FAST, Exec::Shard(hincrby), Log::Auto)
        .keys(1, 1, 1)
        .doc("hash", "Increment the integer value of a hash field by the given number", "2.0.0", "O(1)", "key field increment"),
    cmd("hincrbyfloat", 4, WRITE | DENYOOM | FAST, Exec::Shard(hincrbyfloat), Log::Effect)
        .keys(1, 1, 1)
        .doc("hash", "Increment the float value of a hash field by the given amount", "2.6.0", "O(1)", "key field increment")
        .notes(&[("increment", "type=double")]),
    cmd("hrandfield", -2, READONLY | RANDOM, Exec::Shard(hrandfield), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Get one or multiple random fields from a hash", "6.2.0", "O(N) where N is the number of fields returned", "key [count [WITHVALUES]]")
        .notes(&[("count [WITHVALUES]", "name=options"), ("count", "type=integer")]),
    cmd("hscan", -3, READONLY | RANDOM, Exec::Shard(hscan), Log::Never)
        .keys(1, 1, 1)
        .doc("hash", "Incrementally iterate hash fields and associated values", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..", "key cursor [MATCH pattern] [COUNT count] [NOVALUES]")
        .notes(&[
            ("cursor", "type=integer"),
            ("COUNT count", "type=integer"),
            ("NOVALUES", "since=7.4.0"),
        ]),
];

/// The most fields HRANDFIELD with a negative count returns (the reply is
/// built whole; a client may not ask for an unbounded one).
pub const RANDFIELD_MAX: u64 = 1 << 24;

// ---------------------------------------------------------------------------
// Lookups.

fn hash_of(value: &Value) -> Result<&Hash, Error> {
    match value {
        Value::Hash(h) => Ok(h),
        _ => Err(Error::WrongType),
    }
}

/// The hash at `key` for reading: None if absent, WRONGTYPE for another
/// type.
fn read_hash<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Result<Option<&'c Hash>, Error> {
    ctx.lookup_read(key).map(|e| hash_of(&e.value)).transpose()
}

/// The hash at `key` about to be written (no hit/miss counting).
fn write_lookup<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Result<Option<&'c Hash>, Error> {
    ctx.lookup_write(key).map(|e| hash_of(&e.value)).transpose()
}

fn limits(ctx: &ExecCtx<'_>) -> Limits {
    ctx.shard.hash_limits
}

/// Changes `fields` of the hash at `key` (checked a hash or absent by the
/// caller), creating it when absent; a hash left empty is deleted. A
/// running snapshot writes the segments of `fields` first
/// ([`ExecCtx::value_mut_for`]).
fn change<'a, R>(
    ctx: &mut ExecCtx<'_>,
    key: &[u8],
    fields: impl Iterator<Item = &'a [u8]>,
    f: impl FnOnce(&mut Hash, Limits) -> R,
) -> R {
    let limits = limits(ctx);
    let (r, empty) = match ctx.value_mut_for(key, fields) {
        Some(Value::Hash(h)) => {
            let r = f(h, limits);
            (r, h.is_empty())
        }
        _ => {
            let mut h = Hash::new();
            let r = f(&mut h, limits);
            if !h.is_empty() {
                ctx.set(key, Value::Hash(h), 0);
            }
            return r;
        }
    };
    if empty {
        ctx.remove(key);
    }
    r
}

// ---------------------------------------------------------------------------
// Writes.

fn set_pairs(ctx: &mut ExecCtx<'_>, args: Args<'_>, name: &str) -> Result<i64, Error> {
    if !args.len().is_multiple_of(2) {
        return Err(Error::WrongArity(name.into()));
    }
    let key = args.get(1);
    write_lookup(ctx, key)?;
    let fields = (2..args.len()).step_by(2).map(|i| args.get(i));
    let added = change(ctx, key, fields, |h, limits| {
        let mut added = 0;
        for i in (2..args.len()).step_by(2) {
            added += i64::from(h.set(args.get(i), args.get(i + 1), limits));
        }
        added
    });
    ctx.dirty(((args.len() - 2) / 2) as u64);
    Ok(added)
}

/// HSET key field value [field value ...]: the number of fields added.
fn hset(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let added = set_pairs(ctx, args, "hset")?;
    resp::write_int(out, added);
    Ok(())
}

/// HMSET key field value [field value ...]: OK.
fn hmset(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    set_pairs(ctx, args, "hmset")?;
    resp::write_ok(out);
    Ok(())
}

/// HSETNX key field value: 1 if set, 0 if the field existed.
fn hsetnx(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let (key, field) = (args.get(1), args.get(2));
    if write_lookup(ctx, key)?.is_some_and(|h| h.get(field).is_some()) {
        resp::write_int(out, 0);
        return Ok(());
    }
    change(ctx, key, std::iter::once(field), |h, limits| {
        h.set(field, args.get(3), limits)
    });
    ctx.dirty(1);
    resp::write_int(out, 1);
    Ok(())
}

/// HDEL key field [field ...]: the number of fields removed; the key goes
/// with its last field.
fn hdel(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    let Some(h) = write_lookup(ctx, key)? else {
        resp::write_int(out, 0);
        return Ok(());
    };
    if !(2..args.len()).any(|i| h.get(args.get(i)).is_some()) {
        resp::write_int(out, 0);
        return Ok(());
    }
    let fields = (2..args.len()).map(|i| args.get(i));
    let removed = change(ctx, key, fields, |h, _| {
        let mut n = 0i64;
        for i in 2..args.len() {
            n += i64::from(h.remove(args.get(i)));
            if h.is_empty() {
                break;
            }
        }
        n
    });
    ctx.dirty(removed as u64);
    resp::write_int(out, removed);
    Ok(())
}

/// HINCRBY key field increment: the new value.
fn hincrby(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let (key, field) = (args.get(1), args.get(2));
    let by = parse_i64(args.get(3)).ok_or(Error::NotInteger)?;
    let old = match write_lookup(ctx, key)?.and_then(|h| h.get(field)) {
        Some(v) => parse_i64(v).ok_or_else(|| Error::msg("ERR hash value is not an integer"))?,
        None => 0,
    };
    let new = old.checked_add(by).ok_or(Error::Overflow)?;
    let text = itoa::Buffer::new().format(new).to_owned();
    change(ctx, key, std::iter::once(field), |h, limits| {
        h.set(field, text.as_bytes(), limits)
    });
    ctx.dirty(1);
    resp::write_int(out, new);
    Ok(())
}

/// HINCRBYFLOAT key field increment: the new value, in Redis's long double
/// text; logged as `HSET key field <result>`.
fn hincrbyfloat(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let (key, field) = (args.get(1), args.get(2));
    let by = LongDouble::parse(args.get(3)).ok_or(Error::NotFloat)?;
    if !by.is_finite() {
        return Err(Error::msg("ERR value is NaN or Infinity"));
    }
    let old = match write_lookup(ctx, key)?.and_then(|h| h.get(field)) {
        Some(v) => {
            LongDouble::parse(v).ok_or_else(|| Error::msg("ERR hash value is not a float"))?
        }
        None => LongDouble::ZERO,
    };
    let new = old + by;
    if !new.is_finite() {
        return Err(Error::NanOrInfinity);
    }
    let text = new.to_human();
    change(ctx, key, std::iter::once(field), |h, limits| {
        h.set(field, text.as_bytes(), limits)
    });
    ctx.propagate([&b"HSET"[..], key, field, text.as_bytes()]);
    ctx.dirty(1);
    resp::write_bulk(out, text.as_bytes());
    Ok(())
}

// ---------------------------------------------------------------------------
// Reads.

fn hget(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    match read_hash(ctx, args.get(1))?.and_then(|h| h.get(args.get(2))) {
        Some(v) => resp::write_bulk(out, v),
        None => resp::write_null(out),
    }
    Ok(())
}

fn hmget(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let h = read_hash(ctx, args.get(1))?;
    resp::write_array_len(out, args.len() - 2);
    for i in 2..args.len() {
        match h.and_then(|h| h.get(args.get(i))) {
            Some(v) => resp::write_bulk(out, v),
            None => resp::write_null(out),
        }
    }
    Ok(())
}

fn hexists(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let found = read_hash(ctx, args.get(1))?.is_some_and(|h| h.get(args.get(2)).is_some());
    resp::write_int(out, i64::from(found));
    Ok(())
}

fn hlen(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let n = read_hash(ctx, args.get(1))?.map_or(0, Hash::len);
    resp::write_int(out, n as i64);
    Ok(())
}

fn hstrlen(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let n = read_hash(ctx, args.get(1))?
        .and_then(|h| h.get(args.get(2)))
        .map_or(0, <[u8]>::len);
    resp::write_int(out, n as i64);
    Ok(())
}

/// What HKEYS, HVALS and HGETALL reply with.
#[derive(Clone, Copy)]
struct Parts {
    fields: bool,
    values: bool,
}

fn write_all(ctx: &mut ExecCtx<'_>, key: &[u8], parts: Parts, out: &mut Vec<u8>) -> CmdResult {
    let Some(h) = read_hash(ctx, key)? else {
        resp::write_array_len(out, 0);
        return Ok(());
    };
    let per = usize::from(parts.fields) + usize::from(parts.values);
    resp::write_array_len(out, h.len() * per);
    for (f, v) in h.iter() {
        if parts.fields {
            resp::write_bulk(out, f);
        }
        if parts.values {
            resp::write_bulk(out, v);
        }
    }
    Ok(())
}

fn hkeys(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let parts = Parts {
        fields: true,
        values: false,
    };
    write_all(ctx, args.get(1), parts, out)
}

fn hvals(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let parts = Parts {
        fields: false,
        values: true,
    };
    write_all(ctx, args.get(1), parts, out)
}

fn hgetall(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let parts = Parts {
        fields: true,
        values: true,
    };
    write_all(ctx, args.get(1), parts, out)
}

fn write_pair(out: &mut Vec<u8>, f: &[u8], v: &[u8], with_values: bool) {
    resp::write_bulk(out, f);
    if with_values {
        resp::write_bulk(out, v);
    }
}

/// HRANDFIELD key [count [WITHVALUES]] (Redis's hrandfieldCommand): without
/// a count one field or nil; a positive count gives distinct fields (all of
/// them when the count reaches the size), a negative one may repeat.
fn hrandfield(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    if args.len() == 2 {
        let (r1, r2) = (ctx.shard.random(), ctx.shard.random());
        match read_hash(ctx, key)?.and_then(|h| h.random(r1, r2)) {
            Some((f, _)) => resp::write_bulk(out, f),
            None => resp::write_null(out),
        }
        return Ok(());
    }
    let count = parse_i64(args.get(2)).ok_or(Error::NotInteger)?;
    if count == i64::MIN {
        return Err(Error::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    if args.len() > 4 || (args.len() == 4 && !args.get(3).eq_ignore_ascii_case(b"withvalues")) {
        return Err(Error::Syntax);
    }
    let with_values = args.len() == 4;
    if with_values && count < -(i64::MAX / 2) {
        return Err(Error::msg("ERR value is out of range"));
    }
    if count.unsigned_abs() > RANDFIELD_MAX && count < 0 {
        return Err(Error::msg(format!(
            "ERR HRANDFIELD count is limited to {RANDFIELD_MAX} with repetitions"
        )));
    }
    // Random numbers first: the hash is borrowed while replying.
    let mut rng = ctx.shard.random();
    let mut next = move || {
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        rng.wrapping_mul(0x2545_F491_4F6C_DD1D)
    };
    let Some(h) = read_hash(ctx, key)? else {
        resp::write_array_len(out, 0);
        return Ok(());
    };
    let per = if with_values { 2 } else { 1 };
    let len = h.len() as u64;
    let n = count.unsigned_abs();
    // A random pick from a hashtable walks part of one segment (up to
    // 1024 pairs), from a listpack part of it: when the count is more
    // than a 64th of the hash (or the hash is a listpack), all pairs are
    // gathered once instead, so the work is O(size + count) either way.
    let gather = h.as_table().is_none() || n.saturating_mul(64) >= len;
    if count < 0 {
        resp::write_array_len(out, (n as usize) * per);
        if gather {
            let all: Vec<(&[u8], &[u8])> = h.iter().collect();
            for _ in 0..n {
                if let Some(&(f, v)) = all.get((next() % len.max(1)) as usize) {
                    write_pair(out, f, v, with_values);
                }
            }
        } else {
            for _ in 0..n {
                if let Some((f, v)) = h.random(next(), next()) {
                    write_pair(out, f, v, with_values);
                }
            }
        }
        return Ok(());
    }
    if n >= len {
        resp::write_array_len(out, h.len() * per);
        for (f, v) in h.iter() {
            write_pair(out, f, v, with_values);
        }
        return Ok(());
    }
    resp::write_array_len(out, (n as usize) * per);
    if gather {
        // All pairs, then random ones dropped (Redis's CASE 3).
        let mut all: Vec<(&[u8], &[u8])> = h.iter().collect();
        while all.len() as u64 > n {
            let i = (next() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        for (f, v) in all {
            write_pair(out, f, v, with_values);
        }
    } else {
        // Few of a big hash: distinct random picks (Redis's CASE 4).
        let mut seen = hashbrown::HashSet::new();
        while (seen.len() as u64) < n {
            if let Some((f, v)) = h.random(next(), next()) {
                if seen.insert(f) {
                    write_pair(out, f, v, with_values);
                }
            }
        }
    }
    Ok(())
}

/// HSCAN key cursor [MATCH pattern] [COUNT count] [NOVALUES]: a listpack
/// gives everything at once with cursor 0, as Redis does; a hashtable is
/// walked with a cursor (see [`crate::types::hash::Table::scan`]).
fn hscan(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let cursor = crate::families::keys::parse_cursor(args.get(2))
        .ok_or_else(|| Error::msg("ERR invalid cursor"))?;
    let Some(h) = read_hash(ctx, args.get(1))? else {
        resp::write_array_len(out, 2);
        resp::write_bulk(out, b"0");
        resp::write_array_len(out, 0);
        return Ok(());
    };
    let mut pattern: Option<&[u8]> = None;
    let mut count = 10usize;
    let mut no_values = false;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let has_value = i + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"count") && has_value {
            let n = parse_i64(args.get(i + 1)).ok_or(Error::NotInteger)?;
            if n < 1 {
                return Err(Error::Syntax);
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"match") && has_value {
            let p = args.get(i + 1);
            pattern = (p != b"*").then_some(p);
            i += 2;
        } else if opt.eq_ignore_ascii_case(b"novalues") {
            no_values = true;
            i += 1;
        } else {
            return Err(Error::Syntax);
        }
    }
    let mut items: Vec<(&[u8], &[u8])> = Vec::new();
    let next = match h.as_table() {
        None => {
            items.extend(h.iter());
            0
        }
        Some(t) => t.scan(cursor, count, |f, v| items.push((f, v))),
    };
    items.retain(|(f, _)| pattern.is_none_or(|p| crate::glob::matches(p, f, false)));
    resp::write_array_len(out, 2);
    resp::write_bulk(out, itoa::Buffer::new().format(next).as_bytes());
    resp::write_array_len(out, items.len() * if no_values { 1 } else { 2 });
    for (f, v) in items {
        write_pair(out, f, v, !no_values);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use crate::testkit::TestCluster;

    const WRONGTYPE: &str =
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

    #[test]
    fn set_get_and_delete() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["HSET", "h", "a", "1", "b", "2"]), ":2\r\n");
        assert_eq!(c.cmd(0, &["HSET", "h", "a", "3", "c", "4"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["HGET", "h", "a"]), "$1\r\n3\r\n");
        assert_eq!(c.cmd(0, &["HGET", "h", "x"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["HGET", "nokey", "x"]), "$-1\r\n");
        assert_eq!(
            c.cmd(0, &["HMGET", "h", "a", "x", "c"]),
            "*3\r\n$1\r\n3\r\n$-1\r\n$1\r\n4\r\n"
        );
        assert_eq!(c.cmd(0, &["HLEN", "h"]), ":3\r\n");
        assert_eq!(c.cmd(0, &["HSTRLEN", "h", "c"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["HEXISTS", "h", "b"]), ":1\r\n");
        assert_eq!(
            c.cmd(0, &["HKEYS", "h"]),
            "*3\r\n$1\r\na\r\n$1\r\nb\r\n$1\r\nc\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HVALS", "h"]),
            "*3\r\n$1\r\n3\r\n$1\r\n2\r\n$1\r\n4\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HGETALL", "h"]),
            "*6\r\n$1\r\na\r\n$1\r\n3\r\n$1\r\nb\r\n$1\r\n2\r\n$1\r\nc\r\n$1\r\n4\r\n"
        );
        assert_eq!(c.cmd(0, &["HSETNX", "h", "a", "9"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["HSETNX", "h", "d", "9"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["HMSET", "h", "e", "5"]), "+OK\r\n");
        assert_eq!(
            c.cmd(0, &["HSET", "h", "a"]),
            "-ERR wrong number of arguments for 'hset' command\r\n"
        );
        assert_eq!(c.cmd(0, &["HDEL", "h", "a", "a", "zz", "b"]), ":2\r\n");
        assert_eq!(c.cmd(0, &["HDEL", "h", "c", "d", "e"]), ":3\r\n");
        assert_eq!(c.cmd(0, &["EXISTS", "h"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["HDEL", "h", "c"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["HKEYS", "h"]), "*0\r\n");
        assert_eq!(c.cmd(0, &["TYPE", "h"]), "+none\r\n");
        assert_eq!(c.cmd(0, &["HSET", "h", "a", "1"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["TYPE", "h"]), "+hash\r\n");
    }

    #[test]
    fn wrongtype_both_ways() {
        let c = TestCluster::new(1);
        c.cmd(0, &["SET", "s", "x"]);
        c.cmd(0, &["HSET", "h", "f", "1"]);
        for line in [
            &["HSET", "s", "f", "v"][..],
            &["HSETNX", "s", "f", "v"],
            &["HGET", "s", "f"],
            &["HMGET", "s", "f"],
            &["HDEL", "s", "f"],
            &["HLEN", "s"],
            &["HEXISTS", "s", "f"],
            &["HSTRLEN", "s", "f"],
            &["HGETALL", "s"],
            &["HINCRBY", "s", "f", "1"],
            &["HINCRBYFLOAT", "s", "f", "1"],
            &["HRANDFIELD", "s"],
            &["HSCAN", "s", "0"],
            &["GET", "h"],
            &["APPEND", "h", "x"],
            &["INCR", "h"],
            &["SETRANGE", "h", "0", "x"],
            &["STRLEN", "h"],
            &["GETRANGE", "h", "0", "1"],
            &["GETDEL", "h"],
            &["GETEX", "h"],
            &["GETSET", "h", "x"],
            &["INCRBYFLOAT", "h", "1"],
        ] {
            assert_eq!(c.cmd(0, line), WRONGTYPE, "{line:?}");
        }
        assert_eq!(c.cmd(0, &["MGET", "h", "s"]), "*2\r\n$-1\r\n$1\r\nx\r\n");
        assert_eq!(c.cmd(0, &["HGET", "h", "f"]), "$1\r\n1\r\n");
        // SET replaces any type.
        assert_eq!(c.cmd(0, &["SET", "h", "y"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["TYPE", "h"]), "+string\r\n");
    }

    #[test]
    fn counters() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["HINCRBY", "h", "n", "5"]), ":5\r\n");
        assert_eq!(c.cmd(0, &["HINCRBY", "h", "n", "-7"]), ":-2\r\n");
        assert_eq!(
            c.cmd(0, &["HINCRBY", "h", "n", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        c.cmd(0, &["HSET", "h", "s", "abc", "m", "9223372036854775807"]);
        assert_eq!(
            c.cmd(0, &["HINCRBY", "h", "s", "1"]),
            "-ERR hash value is not an integer\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HINCRBY", "h", "m", "1"]),
            "-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HINCRBYFLOAT", "h", "f", "10.5"]),
            "$4\r\n10.5\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HINCRBYFLOAT", "h", "f", "0.1"]),
            "$4\r\n10.6\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HINCRBYFLOAT", "h", "n", "1.5e3"]),
            "$4\r\n1498\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HINCRBYFLOAT", "h", "s", "1"]),
            "-ERR hash value is not a float\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HINCRBYFLOAT", "h", "f", "inf"]),
            "-ERR value is NaN or Infinity\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HINCRBYFLOAT", "h", "f", "x"]),
            "-ERR value is not a valid float\r\n"
        );
        c.cmd(0, &["HSET", "h", "big", "1.18973149535723176502e+4932"]);
        assert_eq!(
            c.cmd(0, &["HINCRBYFLOAT", "h", "big", "1e4913"]),
            "-ERR increment would produce NaN or Infinity\r\n"
        );
    }

    #[test]
    fn encodings_convert_at_the_thresholds() {
        let c = TestCluster::new(1);
        let enc = |k: &str| {
            c.with_shard(0, |s| {
                let e = s
                    .db(0)
                    .get(crate::keyhash::hash_key(k.as_bytes()), k.as_bytes())
                    .unwrap();
                e.value.encoding()
            })
        };
        for i in 0..512 {
            c.cmd(0, &["HSET", "h", &format!("f{i}"), "v"]);
        }
        assert_eq!(enc("h"), "listpack");
        c.cmd(0, &["HSET", "h", "one-more", "v"]);
        assert_eq!(enc("h"), "hashtable");
        c.cmd(0, &["HSET", "l", "f", &"x".repeat(64)]);
        assert_eq!(enc("l"), "listpack");
        c.cmd(0, &["HSET", "l", &"x".repeat(65), "v"]);
        assert_eq!(enc("l"), "hashtable");
        c.with_shard(0, |s| {
            s.hash_limits.max_entries = 2;
        });
        c.cmd(0, &["HSET", "m", "a", "1", "b", "2"]);
        assert_eq!(enc("m"), "listpack");
        c.cmd(0, &["HINCRBY", "m", "c", "1"]);
        assert_eq!(enc("m"), "hashtable");
        assert_eq!(c.cmd(0, &["HGET", "m", "c"]), "$1\r\n1\r\n");
    }

    #[test]
    fn randfield_shapes() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["HRANDFIELD", "none"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["HRANDFIELD", "none", "3"]), "*0\r\n");
        assert_eq!(
            c.cmd(0, &["HRANDFIELD", "none", "3", "x"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(
                0,
                &["HRANDFIELD", "none", "-9223372036854775807", "withvalues"]
            ),
            "-ERR value is out of range\r\n"
        );
        for n in [5usize, 2000] {
            c.cmd(0, &["DEL", "h"]);
            for i in 0..n {
                c.cmd(0, &["HSET", "h", &format!("f{i}"), &format!("v{i}")]);
            }
            for count in [0i64, 1, 3, 4, 100, 1000, 5000, -1, -7, -3000] {
                let want = if count >= 0 {
                    (count as usize).min(n)
                } else {
                    count.unsigned_abs() as usize
                };
                let r = c.cmd(0, &["HRANDFIELD", "h", &count.to_string(), "WITHVALUES"]);
                let lines: Vec<&str> = r.split("\r\n").collect();
                assert_eq!(lines[0], format!("*{}", want * 2), "{n} {count}");
                let items: Vec<&str> = lines[1..].iter().skip(1).step_by(2).copied().collect();
                let mut fields = std::collections::HashSet::new();
                for pair in items.chunks(2).filter(|p| p.len() == 2) {
                    let i: usize = pair[0].strip_prefix('f').unwrap().parse().unwrap();
                    assert!(i < n);
                    assert_eq!(pair[1], format!("v{i}"));
                    fields.insert(i);
                }
                if count >= 0 {
                    assert_eq!(fields.len(), want, "distinct {n} {count}");
                }
            }
            let one = c.cmd(0, &["HRANDFIELD", "h"]);
            assert!(one.starts_with("$"), "{one}");
        }
    }

    #[test]
    fn hscan_small_and_large() {
        let c = TestCluster::new(1);
        assert_eq!(
            c.cmd(0, &["HSCAN", "none", "0", "BAD"]),
            "*2\r\n$1\r\n0\r\n*0\r\n"
        );
        assert_eq!(c.cmd(0, &["HSCAN", "none", "x"]), "-ERR invalid cursor\r\n");
        c.cmd(0, &["HSET", "h", "a", "1", "b", "2", "ab", "3"]);
        assert_eq!(
            c.cmd(0, &["HSCAN", "h", "0", "MATCH", "a*", "COUNT", "1"]),
            "*2\r\n$1\r\n0\r\n*4\r\n$1\r\na\r\n$1\r\n1\r\n$2\r\nab\r\n$1\r\n3\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HSCAN", "h", "0", "NOVALUES"]),
            "*2\r\n$1\r\n0\r\n*3\r\n$1\r\na\r\n$1\r\nb\r\n$2\r\nab\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HSCAN", "h", "0", "COUNT", "0"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(0, &["HSCAN", "h", "0", "COUNT"]),
            "-ERR syntax error\r\n"
        );
        for i in 0..5000 {
            c.cmd(0, &["HSET", "big", &format!("f{i}"), "v"]);
        }
        let mut seen = std::collections::HashSet::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let r = c.cmd(0, &["HSCAN", "big", &cursor, "COUNT", "100", "NOVALUES"]);
            let lines: Vec<&str> = r.split("\r\n").collect();
            cursor = lines[2].to_string();
            for f in lines[4..].iter().skip(1).step_by(2) {
                seen.insert(f.to_string());
            }
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert!(calls > 1, "{calls}");
        assert_eq!(seen.len(), 5000);
    }
}
