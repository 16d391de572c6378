//! Set commands: SADD, SREM, SISMEMBER, SMISMEMBER, SCARD, SMEMBERS,
//! SRANDMEMBER, SPOP, SMOVE, SINTER, SINTERCARD, SUNION, SDIFF and their
//! STORE forms, SSCAN. Behaviour, reply formats and error texts follow
//! Redis 7.0's `t_set.c`; encodings (intset, listpack, hashtable) follow
//! Redis 7.2 (`crate::types::set`).
//!
//! Multi-key commands across shards read the other shards' sets (clones:
//! O(1) for a hashtable) under the key locks the server holds, compute on
//! the coordinator and write the result on the destination's shard; each
//! shard's job logs its own part (a STORE as `DEL` and bounded SADDs, SMOVE
//! as SREM and SADD). SPOP is logged as SREM of the members it took (or
//! DEL when it took them all), as Redis.

use crate::command::flags::*;
use crate::command::{
    cmd, group_by_shard, run_value, Args, Cluster, CommandSpec, Exec, LocalBoxFuture, Log,
};
use crate::error::{CmdResult, Error};
use crate::reply::Reply;
use crate::resp::{self, parse_i64};
use crate::shard::{ExecCtx, Shard};
use crate::types::set::{Limits, Set};
use crate::value::Value;

/// Arity, flags and key positions are Redis 7.0's (`src/commands/*.json`).
pub static COMMANDS: &[CommandSpec] = &[
    cmd("sadd", -3, WRITE | DENYOOM | FAST, Exec::Shard(sadd), Log::Auto)
        .keys(1, 1, 1)
        .doc("set", "Add one or more members to a set", "1.0.0", "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.", "key member [member ...]")
        .history(&[("2.4.0", "Accepts multiple `member` arguments.")]),
    cmd("srem", -3, WRITE | FAST, Exec::Shard(srem), Log::Auto)
        .keys(1, 1, 1)
        .doc("set", "Remove one or more members from a set", "1.0.0", "O(N) where N is the number of members to be removed.", "key member [member ...]")
        .history(&[("2.4.0", "Accepts multiple `member` arguments.")]),
    cmd("sismember", 3, READONLY | FAST, Exec::Shard(sismember), Log::Never)
        .keys(1, 1, 1)
        .doc("set", "Determine if a given value is a member of a set", "1.0.0", "O(1)", "key member"),
    cmd("smismember", -3, READONLY | FAST, Exec::Shard(smismember), Log::Never)
        .keys(1, 1, 1)
        .doc("set", "Returns the membership associated with the given elements for a set", "6.2.0", "O(N) where N is the number of elements being checked for membership", "key member [member ...]"),
    cmd("scard", 2, READONLY | FAST, Exec::Shard(scard), Log::Never)
        .keys(1, 1, 1)
        .doc("set", "Get the number of members in a set", "1.0.0", "O(1)", "key"),
    cmd("smembers", 2, READONLY, Exec::Shard(smembers), Log::Never)
        .keys(1, 1, 1)
        .doc("set", "Get all the members in a set", "1.0.0", "O(N) where N is the set cardinality.", "key"),
    cmd("srandmember", -2, READONLY, Exec::Shard(srandmember), Log::Never)
        .keys(1, 1, 1)
        .doc("set", "Get one or multiple random members from a set", "1.0.0", "Without the count argument O(1), otherwise O(N) where N is the absolute value of the passed count.", "key [count]")
        .history(&[("2.6.0", "Added the optional `count` argument.")]),
    cmd("spop", -2, WRITE | FAST, Exec::Shard(spop), Log::Effect)
        .keys(1, 1, 1)
        .doc("set", "Remove and return one or multiple random members from a set", "1.0.0", "Without the count argument O(1), otherwise O(N) where N is the value of the passed count.", "key [count]")
        .history(&[("3.2.0", "Added the `count` argument.")]),
    cmd("smove", 4, WRITE | FAST, Exec::Keys { shard: smove, cross: smove_cross }, Log::Auto)
        .keys(1, 2, 1)
        .doc("set", "Move a member from one set to another", "1.0.0", "O(1)", "source destination member"),
    cmd("sinter", -2, READONLY, Exec::Keys { shard: sinter, cross: sinter_cross }, Log::Never)
        .keys(1, -1, 1)
        .doc("set", "Intersect multiple sets", "1.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "key [key ...]"),
    cmd("sintercard", -3, READONLY, Exec::Keys { shard: sintercard, cross: sintercard_cross }, Log::Never)
        .keys(2, -1, 1)
        .doc("set", "Intersect multiple sets and return the cardinality of the result", "7.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "numkeys key [key ...] [LIMIT limit]"),
    cmd("sunion", -2, READONLY, Exec::Keys { shard: sunion, cross: sunion_cross }, Log::Never)
        .keys(1, -1, 1)
        .doc("set", "Add multiple sets", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "key [key ...]"),
    cmd("sdiff", -2, READONLY, Exec::Keys { shard: sdiff, cross: sdiff_cross }, Log::Never)
        .keys(1, -1, 1)
        .doc("set", "Subtract multiple sets", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "key [key ...]"),
    cmd("sinterstore", -3, WRITE | DENYOOM, Exec::Keys { shard: sinterstore, cross: sinterstore_cross }, Log::Auto)
        .keys(1, -1, 1)
        .doc("set", "Intersect multiple sets and store the resulting set in a key", "1.0.0", "O(N*M) worst case where N is the cardinality of the smallest set and M is the number of sets.", "destination key [key ...]"),
    cmd("sunionstore", -3, WRITE | DENYOOM, Exec::Keys { shard: sunionstore, cross: sunionstore_cross }, Log::Auto)
        .keys(1, -1, 1)
        .doc("set", "Add multiple sets and store the resulting set in a key", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "destination key [key ...]"),
    cmd("sdiffstore", -3, WRITE | DENYOOM, Exec::Keys { shard: sdiffstore, cross: sdiffstore_cross }, Log::Auto)
        .keys(1, -1, 1)
        .doc("set", "Subtract multiple sets and store the resulting set in a key", "1.0.0", "O(N) where N is the total number of elements in all given sets.", "destination key [key ...]"),
    cmd("sscan", -3, READONLY, Exec::Shard(sscan), Log::Never)
        .keys(1, 1, 1)
        .doc("set", "Incrementally iterate Set elements", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection..", "key cursor [MATCH pattern] [COUNT count]"),
];

/// The largest |count| SRANDMEMBER answers with repeated members (a
/// client controls it; Redis has no bound but its output buffer limits).
const MAX_RANDOM_COUNT: u64 = 1 << 27;

// ---------------------------------------------------------------------------
// Lookups.

fn set_of(value: &Value) -> Result<&Set, Error> {
    match value {
        Value::Set(s) => Ok(s),
        _ => Err(Error::WrongType),
    }
}

/// A key's set for reading: None if absent, WRONGTYPE for another type.
fn read_set<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Result<Option<&'c Set>, Error> {
    ctx.lookup_read(key).map(|e| set_of(&e.value)).transpose()
}

/// A key's set about to be written (no hit/miss counting).
fn write_set<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Result<Option<&'c Set>, Error> {
    ctx.lookup_write(key).map(|e| set_of(&e.value)).transpose()
}

/// The set of a key known to hold one, to change; marks its page.
fn set_mut<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Option<&'c mut Set> {
    match ctx.value_mut(key) {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    }
}

/// [`set_mut`] for a change of `members`: a running snapshot writes the
/// segments they are in first ([`ExecCtx::value_mut_for`]).
fn set_mut_for<'c, 'm>(
    ctx: &'c mut ExecCtx<'_>,
    key: &[u8],
    members: impl Iterator<Item = &'m [u8]>,
) -> Option<&'c mut Set> {
    match ctx.value_mut_for(key, members) {
        Some(Value::Set(s)) => Some(s),
        _ => None,
    }
}

/// Deletes `key` if its set became empty (an empty set never exists).
fn drop_if_empty(ctx: &mut ExecCtx<'_>, key: &[u8]) {
    if ctx
        .lookup_write(key)
        .is_some_and(|e| matches!(&e.value, Value::Set(s) if s.is_empty()))
    {
        ctx.delete(key, false);
    }
}

fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    seed |= 1;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

fn write_members(out: &mut Vec<u8>, s: &Set) {
    resp::write_array_len(out, s.len());
    for m in s.members() {
        m.with(|b| resp::write_bulk(out, b));
    }
}

/// Adds `members` to the set at `key` (creating it as Redis's
/// `setTypeCreate` would); the number added. The type was checked.
fn add_members<'m>(
    ctx: &mut ExecCtx<'_>,
    key: &[u8],
    members: impl ExactSizeIterator<Item = &'m [u8]> + Clone,
) -> usize {
    let limits = ctx.shard.set_limits;
    let all = members.clone();
    let mut members = members.peekable();
    let Some(first) = members.peek().copied() else {
        return 0;
    };
    match set_mut_for(ctx, key, all) {
        Some(s) => members.filter(|m| s.add(m, &limits)).count(),
        None => {
            let mut s = Set::create(first, members.len(), &limits);
            let n = members.filter(|m| s.add(m, &limits)).count();
            ctx.set(key, Value::Set(s), 0);
            n
        }
    }
}

// ---------------------------------------------------------------------------
// One-key commands.

fn sadd(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    write_set(ctx, key)?;
    let n = add_members(ctx, key, (2..args.len()).map(|i| args.get(i)));
    ctx.dirty(n as u64);
    resp::write_int(out, n as i64);
    Ok(())
}

fn srem(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    if write_set(ctx, key)?.is_none() {
        resp::write_int(out, 0);
        return Ok(());
    }
    let mut n = 0;
    if let Some(s) = set_mut_for(ctx, key, args.iter().skip(2)) {
        for m in args.iter().skip(2) {
            if s.remove(m) {
                n += 1;
            }
            if s.is_empty() {
                break;
            }
        }
    }
    drop_if_empty(ctx, key);
    ctx.dirty(n);
    resp::write_int(out, n as i64);
    Ok(())
}

fn sismember(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let found = read_set(ctx, args.get(1))?.is_some_and(|s| s.contains(args.get(2)));
    resp::write_int(out, i64::from(found));
    Ok(())
}

fn smismember(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let s = read_set(ctx, args.get(1))?;
    resp::write_array_len(out, args.len() - 2);
    for m in args.iter().skip(2) {
        resp::write_int(out, i64::from(s.is_some_and(|s| s.contains(m))));
    }
    Ok(())
}

fn scard(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let n = read_set(ctx, args.get(1))?.map_or(0, Set::len);
    resp::write_int(out, n as i64);
    Ok(())
}

fn smembers(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    match read_set(ctx, args.get(1))? {
        Some(s) => write_members(out, s),
        None => resp::write_array_len(out, 0),
    }
    Ok(())
}

fn srandmember(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    if args.len() > 3 {
        return Err(Error::Syntax);
    }
    let seed = ctx.shard.random();
    let mut rng = xorshift(seed);
    if args.len() == 2 {
        match read_set(ctx, args.get(1))?.and_then(|s| s.random(&mut rng)) {
            Some(m) => resp::write_bulk(out, &m),
            None => resp::write_null(out),
        }
        return Ok(());
    }
    let l = parse_i64(args.get(2)).ok_or(Error::NotInteger)?;
    if l == i64::MIN {
        return Err(Error::msg(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
        ));
    }
    let (count, uniq) = (l.unsigned_abs(), l >= 0);
    let Some(s) = read_set(ctx, args.get(1))? else {
        resp::write_array_len(out, 0);
        return Ok(());
    };
    let size = s.len() as u64;
    if count == 0 {
        resp::write_array_len(out, 0);
        return Ok(());
    }
    if !uniq || count == 1 {
        if count > MAX_RANDOM_COUNT {
            return Err(Error::msg("ERR value is out of range"));
        }
        resp::write_array_len(out, count as usize);
        for _ in 0..count {
            if let Some(m) = s.random(&mut rng) {
                resp::write_bulk(out, &m);
            }
        }
        return Ok(());
    }
    if count >= size {
        write_members(out, s);
        return Ok(());
    }
    // Distinct members: draw until `count` were found (few), or copy the
    // members and remove random ones (many), as Redis's cases 3 and 4.
    let count = count as usize;
    let picked: Vec<Vec<u8>> = if count * 3 > s.len() {
        let mut all = s.to_vecs();
        while all.len() > count {
            let i = (rng() % all.len() as u64) as usize;
            all.swap_remove(i);
        }
        all
    } else {
        let mut seen = std::collections::HashSet::with_capacity(count);
        let mut picked = Vec::with_capacity(count);
        while picked.len() < count {
            if let Some(m) = s.random(&mut rng) {
                if seen.insert(m.clone()) {
                    picked.push(m);
                }
            }
        }
        picked
    };
    resp::write_array_len(out, picked.len());
    for m in &picked {
        resp::write_bulk(out, m);
    }
    Ok(())
}

/// SPOP key [count]: logged as SREM of the members it took (in batches
/// of at most 1024), or DEL when it took the whole set.
fn spop(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    if args.len() > 3 {
        return Err(Error::Syntax);
    }
    let key = args.get(1);
    let count = if args.len() == 3 {
        // Redis's getPositiveLongFromObjectOrReply: one text for both.
        match parse_i64(args.get(2)) {
            Some(l) if l >= 0 => Some(l as u64),
            _ => return Err(Error::msg("ERR value is out of range, must be positive")),
        }
    } else {
        None
    };
    let Some(s) = write_set(ctx, key)? else {
        match count {
            Some(_) => resp::write_array_len(out, 0),
            None => resp::write_null(out),
        }
        return Ok(());
    };
    let size = s.len() as u64;
    if count == Some(0) {
        resp::write_array_len(out, 0);
        return Ok(());
    }
    if count.is_some_and(|c| c >= size) {
        write_members(out, s);
        ctx.delete(key, ctx.shard.lazyfree.settings.server_del);
        ctx.propagate([&b"DEL"[..], key]);
        ctx.dirty(1);
        return Ok(());
    }
    let seed = ctx.shard.random();
    let mut rng = xorshift(seed);
    let n = count.unwrap_or(1) as usize;
    let mut taken = Vec::with_capacity(n);
    if let Some(s) = set_mut(ctx, key) {
        while taken.len() < n {
            let Some(m) = s.random(&mut rng) else {
                break;
            };
            s.remove(&m);
            taken.push(m);
        }
    }
    drop_if_empty(ctx, key);
    for batch in taken.chunks(crate::types::set::RECREATE_MEMBERS) {
        let mut rec: Vec<&[u8]> = vec![b"SREM", key];
        rec.extend(batch.iter().map(Vec::as_slice));
        ctx.propagate(rec);
    }
    ctx.dirty(taken.len() as u64);
    match count {
        None => match taken.first() {
            Some(m) => resp::write_bulk(out, m),
            None => resp::write_null(out),
        },
        Some(_) => {
            resp::write_array_len(out, taken.len());
            for m in &taken {
                resp::write_bulk(out, m);
            }
        }
    }
    Ok(())
}

/// SSCAN's cursor (Redis's `parseScanCursorOrReply`: strtoul).
fn parse_cursor(a: &[u8]) -> Option<u64> {
    let (neg, digits) = match a.first() {
        None => return Some(0),
        Some(b'-') => (true, a.get(1..)?),
        Some(b'+') => (false, a.get(1..)?),
        Some(_) => (false, a),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(if neg { v.wrapping_neg() } else { v })
}

fn sscan(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let cursor = parse_cursor(args.get(2)).ok_or_else(|| Error::msg("ERR invalid cursor"))?;
    let Some(s) = read_set(ctx, args.get(1))? else {
        resp::write_array_len(out, 2);
        resp::write_bulk(out, b"0");
        resp::write_array_len(out, 0);
        return Ok(());
    };
    let (mut count, mut pattern) = (10usize, None);
    let mut i = 3;
    while i < args.len() {
        let more = args.len() - i >= 2;
        let opt = args.get(i);
        if opt.eq_ignore_ascii_case(b"count") && more {
            let n = parse_i64(args.get(i + 1)).ok_or(Error::NotInteger)?;
            if n < 1 {
                return Err(Error::Syntax);
            }
            count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if opt.eq_ignore_ascii_case(b"match") && more {
            let p = args.get(i + 1);
            pattern = (p != b"*").then_some(p);
        } else {
            return Err(Error::Syntax);
        }
        i += 2;
    }
    let mut found: Vec<Vec<u8>> = Vec::new();
    let next = if cursor >= 1 << 32 && s.is_table() {
        0
    } else {
        s.scan(cursor, count, |m| {
            if pattern.is_none_or(|p| crate::glob::matches(p, m, false)) {
                found.push(m.to_vec());
            }
        })
    };
    resp::write_array_len(out, 2);
    resp::write_bulk(out, itoa::Buffer::new().format(next).as_bytes());
    resp::write_array_len(out, found.len());
    for m in &found {
        resp::write_bulk(out, m);
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// SMOVE.

fn smove(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let (src, dst, m) = (args.get(1), args.get(2), args.get(3));
    let src_set = ctx
        .lookup_write(src)
        .map(|e| set_of(&e.value).map(|s| s.contains(m)));
    let Some(src_has) = src_set else {
        resp::write_int(out, 0);
        return Ok(());
    };
    let src_has = src_has?;
    write_set(ctx, dst)?;
    if src == dst {
        resp::write_int(out, i64::from(src_has));
        return Ok(());
    }
    if !src_has {
        resp::write_int(out, 0);
        return Ok(());
    }
    if let Some(s) = set_mut(ctx, src) {
        s.remove(m);
    }
    drop_if_empty(ctx, src);
    let added = add_members(ctx, dst, std::iter::once(m));
    ctx.dirty(1 + added as u64);
    resp::write_int(out, 1);
    Ok(())
}

/// SMOVE across shards: read the source (missing: 0; WRONGTYPE), check
/// the destination's type, then remove on one shard and add on the other,
/// each logging its part.
fn smove_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let [_, src, dst, m] = <[Vec<u8>; 4]>::try_from(args).unwrap_or_default();
        let n = c.shard_count();
        let (from, to) = (
            crate::keyhash::shard_of(&src, n),
            crate::keyhash::shard_of(&dst, n),
        );
        let (s, mm) = (src.clone(), m.clone());
        let probe = move |sh: &mut Shard| {
            let mut ctx = sh.ctx(db);
            ctx.lookup_write(&s)
                .map(|e| set_of(&e.value).map(|set| set.contains(&mm)))
        };
        let src_has = match run_value(c, from, probe).await.flatten() {
            None => return Reply::Int(0),
            Some(Err(e)) => return Reply::Error(e),
            Some(Ok(has)) => has,
        };
        let d = dst.clone();
        let dst_ok = move |sh: &mut Shard| write_set(&mut sh.ctx(db), &d).map(|_| ());
        if let Some(Err(e)) = run_value(c, to, dst_ok).await {
            return Reply::Error(e);
        }
        if !src_has {
            return Reply::Int(0);
        }
        let mm = m.clone();
        let take = move |sh: &mut Shard| {
            let mut ctx = sh.ctx(db);
            if set_mut(&mut ctx, &src).is_some_and(|s| s.remove(&mm)) {
                drop_if_empty(&mut ctx, &src);
                ctx.propagate([&b"SREM"[..], &src, &mm]);
                ctx.dirty(1);
            }
        };
        run_value(c, from, take).await;
        let put = move |sh: &mut Shard| {
            let mut ctx = sh.ctx(db);
            if add_members(&mut ctx, &dst, std::iter::once(m.as_slice())) > 0 {
                ctx.propagate([&b"SADD"[..], &dst, &m]);
                ctx.dirty(1);
            }
        };
        run_value(c, to, put).await;
        Reply::Int(1)
    })
}

// ---------------------------------------------------------------------------
// SINTER, SUNION, SDIFF, their STORE forms, SINTERCARD.

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Inter,
    Union,
    Diff,
}

/// The sets at `keys` (None: missing), cloned (a hashtable in O(1));
/// WRONGTYPE if any holds another type. `write`: looked up as a STORE's
/// sources are (no hit/miss counting).
fn gather_here(
    ctx: &mut ExecCtx<'_>,
    keys: &[&[u8]],
    write: bool,
) -> Result<Vec<Option<Set>>, Error> {
    let mut out = Vec::with_capacity(keys.len());
    let mut wrong = false;
    for k in keys {
        let e = if write {
            ctx.lookup_write(k)
        } else {
            ctx.lookup_read(k)
        };
        match e.map(|e| set_of(&e.value)) {
            None => out.push(None),
            Some(Ok(s)) => out.push(Some(s.clone())),
            Some(Err(_)) => wrong = true,
        }
    }
    if wrong {
        return Err(Error::WrongType);
    }
    Ok(out)
}

/// [`gather_here`] across shards: each shard's keys read by one job.
async fn gather(
    c: &dyn Cluster,
    db: usize,
    keys: Vec<Vec<u8>>,
    write: bool,
) -> Result<Vec<Option<Set>>, Error> {
    let n = keys.len();
    let mut out: Vec<Option<Set>> = vec![None; n];
    let mut futs = Vec::new();
    for (shard, pos, keys) in group_by_shard(c.shard_count(), keys.into_iter()) {
        let job = move |sh: &mut Shard| {
            let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
            gather_here(&mut sh.ctx(db), &refs, write)
        };
        futs.push((pos, run_value(c, shard, job)));
    }
    let mut wrong = false;
    for (pos, f) in futs {
        match f.await {
            Some(Ok(sets)) => {
                for (p, s) in pos.into_iter().zip(sets) {
                    if let Some(slot) = out.get_mut(p) {
                        *slot = s;
                    }
                }
            }
            Some(Err(_)) => wrong = true,
            None => return Err(Error::msg("ERR a shard did not answer")),
        }
    }
    if wrong {
        return Err(Error::WrongType);
    }
    Ok(out)
}

/// The members of the result (intersection: `limit` members at most, 0
/// for all), in the order Redis replies with them for small results.
fn compute(op: Op, sets: &[Option<Set>], limit: usize) -> Vec<Vec<u8>> {
    match op {
        Op::Inter => {
            if sets.iter().any(Option::is_none) {
                return Vec::new();
            }
            let mut present: Vec<&Set> = sets.iter().flatten().collect();
            present.sort_by_key(|s| s.len());
            let Some((small, rest)) = present.split_first() else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for m in small.members() {
                if m.with(|b| rest.iter().all(|s| s.contains(b))) {
                    out.push(m.to_vec());
                    if limit != 0 && out.len() >= limit {
                        break;
                    }
                }
            }
            out
        }
        Op::Union => {
            let mut seen = std::collections::HashSet::new();
            let mut out = Vec::new();
            for s in sets.iter().flatten() {
                for m in s.members() {
                    let m = m.to_vec();
                    if seen.insert(m.clone()) {
                        out.push(m);
                    }
                }
            }
            out
        }
        Op::Diff => {
            let Some(Some(first)) = sets.first() else {
                return Vec::new();
            };
            let others: Vec<&Set> = sets.iter().skip(1).flatten().collect();
            first
                .members()
                .filter(|m| m.with(|b| !others.iter().any(|s| s.contains(b))))
                .map(|m| m.to_vec())
                .collect()
        }
    }
}

/// The result as a set built as Redis builds it (an intset first, then
/// converted as members are added); None if empty.
fn result_set(members: &[Vec<u8>], limits: &Limits) -> Option<Set> {
    let first = members.first()?;
    let mut s = Set::create(first, 1, limits);
    for m in members {
        s.add(m, limits);
    }
    Some(s)
}

fn reply_members(members: Vec<Vec<u8>>, limits: &Limits) -> Reply {
    // Replied in the result set's order: ascending for an intset.
    match result_set(&members, limits) {
        Some(s) => Reply::Array(s.to_vecs().into_iter().map(Reply::Bulk).collect()),
        None => Reply::Array(Vec::new()),
    }
}

/// Stores a STORE command's result at `dst` (deleting it when empty);
/// `log`: writes the records itself (this shard's part across shards).
fn store(ctx: &mut ExecCtx<'_>, dst: &[u8], members: &[Vec<u8>], log: bool) -> i64 {
    let limits = ctx.shard.set_limits;
    match result_set(members, &limits) {
        None => {
            let lazy = ctx.shard.lazyfree.settings.server_del;
            if ctx.delete(dst, lazy) {
                if log {
                    ctx.propagate([&b"DEL"[..], dst]);
                }
                ctx.dirty(1);
            }
            0
        }
        Some(s) => {
            let n = s.len() as i64;
            if log {
                // DEL of what was there, then bounded SADDs.
                s.recreate(dst, 0, |a| ctx.propagate(a.iter().copied()));
            }
            ctx.set(dst, Value::Set(s), 0);
            ctx.dirty(1);
            n
        }
    }
}

fn op_here(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>, op: Op) -> CmdResult {
    let keys: Vec<&[u8]> = args.iter().skip(1).collect();
    let sets = gather_here(ctx, &keys, false)?;
    let limits = ctx.shard.set_limits;
    reply_members(compute(op, &sets, 0), &limits).write_to(out);
    Ok(())
}

fn op_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>, op: Op) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let first = args.get(1).cloned().unwrap_or_default();
        let keys: Vec<Vec<u8>> = args.into_iter().skip(1).collect();
        let sets = match gather(c, db, keys, false).await {
            Ok(s) => s,
            Err(e) => return Reply::Error(e),
        };
        let members = compute(op, &sets, 0);
        let home = crate::keyhash::shard_of(&first, c.shard_count());
        let limits = run_value(c, home, |sh: &mut Shard| sh.set_limits)
            .await
            .unwrap_or_default();
        reply_members(members, &limits)
    })
}

fn store_here(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>, op: Op) -> CmdResult {
    let keys: Vec<&[u8]> = args.iter().skip(2).collect();
    let sets = gather_here(ctx, &keys, true)?;
    let n = store(ctx, args.get(1), &compute(op, &sets, 0), false);
    resp::write_int(out, n);
    Ok(())
}

fn store_cross(
    c: &dyn Cluster,
    db: usize,
    args: Vec<Vec<u8>>,
    op: Op,
) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let dst = args.get(1).cloned().unwrap_or_default();
        let keys: Vec<Vec<u8>> = args.into_iter().skip(2).collect();
        let sets = match gather(c, db, keys, true).await {
            Ok(s) => s,
            Err(e) => return Reply::Error(e),
        };
        let members = compute(op, &sets, 0);
        let to = crate::keyhash::shard_of(&dst, c.shard_count());
        let job = move |sh: &mut Shard| store(&mut sh.ctx(db), &dst, &members, true);
        match run_value(c, to, job).await {
            Some(n) => Reply::Int(n),
            None => Reply::Error(Error::msg("ERR a shard did not answer")),
        }
    })
}

fn sinter(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    op_here(ctx, args, out, Op::Inter)
}
fn sunion(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    op_here(ctx, args, out, Op::Union)
}
fn sdiff(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    op_here(ctx, args, out, Op::Diff)
}
fn sinter_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    op_cross(c, db, args, Op::Inter)
}
fn sunion_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    op_cross(c, db, args, Op::Union)
}
fn sdiff_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    op_cross(c, db, args, Op::Diff)
}
fn sinterstore(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    store_here(ctx, args, out, Op::Inter)
}
fn sunionstore(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    store_here(ctx, args, out, Op::Union)
}
fn sdiffstore(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    store_here(ctx, args, out, Op::Diff)
}
fn sinterstore_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    store_cross(c, db, args, Op::Inter)
}
fn sunionstore_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    store_cross(c, db, args, Op::Union)
}
fn sdiffstore_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    store_cross(c, db, args, Op::Diff)
}

/// SINTERCARD's arguments: the keys and the limit (0: none), with
/// Redis's checks and error texts.
fn parse_sintercard(args: &[&[u8]]) -> Result<(Vec<Vec<u8>>, usize), Error> {
    let numkeys = args
        .get(1)
        .and_then(|a| parse_i64(a))
        .filter(|&n| n >= 1)
        .ok_or_else(|| Error::msg("ERR numkeys should be greater than 0"))?;
    let rest = args.len().saturating_sub(2);
    if numkeys as u64 > rest as u64 {
        return Err(Error::msg(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    let nk = numkeys as usize;
    let keys: Vec<Vec<u8>> = args
        .get(2..2 + nk)
        .unwrap_or_default()
        .iter()
        .map(|k| k.to_vec())
        .collect();
    let mut limit = 0usize;
    let mut i = 2 + nk;
    while i < args.len() {
        let opt = args.get(i).copied().unwrap_or_default();
        let more = args.len() - 1 - i > 0;
        if opt.eq_ignore_ascii_case(b"limit") && more {
            let l = args
                .get(i + 1)
                .and_then(|a| parse_i64(a))
                .filter(|&l| l >= 0)
                .ok_or_else(|| Error::msg("ERR LIMIT can't be negative"))?;
            limit = usize::try_from(l).unwrap_or(usize::MAX);
            i += 2;
        } else {
            return Err(Error::Syntax);
        }
    }
    Ok((keys, limit))
}

fn sintercard(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let all: Vec<&[u8]> = args.iter().collect();
    let (keys, limit) = parse_sintercard(&all)?;
    let refs: Vec<&[u8]> = keys.iter().map(Vec::as_slice).collect();
    let sets = gather_here(ctx, &refs, false)?;
    resp::write_int(out, compute(Op::Inter, &sets, limit).len() as i64);
    Ok(())
}

fn sintercard_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let all: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let (keys, limit) = match parse_sintercard(&all) {
            Ok(x) => x,
            Err(e) => return Reply::Error(e),
        };
        match gather(c, db, keys, false).await {
            Ok(sets) => Reply::Int(compute(Op::Inter, &sets, limit).len() as i64),
            Err(e) => Reply::Error(e),
        }
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use crate::keyhash::shard_of;
    use crate::testkit::TestCluster;

    const WRONGTYPE: &str =
        "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n";

    /// A key on another shard of a 4-shard cluster than `a`, and one on
    /// the same.
    fn other_and_same(a: &str) -> (String, String) {
        let s = shard_of(a.as_bytes(), 4);
        let find = |same: bool| {
            (0..)
                .map(|i| format!("k{i}"))
                .find(|k| (shard_of(k.as_bytes(), 4) == s) == same && k != a)
                .unwrap()
        };
        (find(false), find(true))
    }

    /// The members of an array reply, sorted.
    fn sorted(reply: &str) -> Vec<String> {
        let mut v: Vec<String> = reply
            .split("\r\n")
            .filter(|l| !l.starts_with('*') && !l.starts_with('$') && !l.is_empty())
            .map(str::to_string)
            .collect();
        v.sort();
        v
    }

    fn enc(c: &TestCluster, key: &str) -> &'static str {
        let s = shard_of(key.as_bytes(), 4);
        c.with_shard(s, |sh| {
            sh.ctx(0)
                .lookup_write(key.as_bytes())
                .map_or("none", |e| e.value.encoding())
        })
    }

    #[test]
    fn add_remove_and_reads() {
        let c = TestCluster::new(4);
        assert_eq!(c.cmd(0, &["SADD", "s", "3", "1", "2", "1"]), ":3\r\n");
        assert_eq!(enc(&c, "s"), "intset");
        assert_eq!(
            c.cmd(0, &["SMEMBERS", "s"]),
            "*3\r\n$1\r\n1\r\n$1\r\n2\r\n$1\r\n3\r\n"
        );
        assert_eq!(c.cmd(0, &["SCARD", "s"]), ":3\r\n");
        assert_eq!(c.cmd(0, &["SISMEMBER", "s", "2"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["SISMEMBER", "s", "02"]), ":0\r\n");
        assert_eq!(
            c.cmd(0, &["SMISMEMBER", "s", "1", "x", "3"]),
            "*3\r\n:1\r\n:0\r\n:1\r\n"
        );
        assert_eq!(c.cmd(0, &["SMISMEMBER", "nope", "1"]), "*1\r\n:0\r\n");
        assert_eq!(c.cmd(0, &["SADD", "s", "a"]), ":1\r\n");
        assert_eq!(enc(&c, "s"), "listpack");
        assert_eq!(c.cmd(0, &["TYPE", "s"]), "+set\r\n");
        assert_eq!(c.cmd(0, &["SREM", "s", "1", "2", "x"]), ":2\r\n");
        assert_eq!(c.cmd(0, &["SREM", "s", "3", "a"]), ":2\r\n");
        assert_eq!(
            c.cmd(0, &["EXISTS", "s"]),
            ":0\r\n",
            "an empty set is deleted"
        );
        assert_eq!(c.cmd(0, &["SREM", "s", "a"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["SMEMBERS", "s"]), "*0\r\n");
        assert_eq!(c.cmd(0, &["SCARD", "s"]), ":0\r\n");
        // Long members and many members: hashtable.
        let long = "x".repeat(65);
        c.cmd(0, &["SADD", "h", "a", &long]);
        assert_eq!(enc(&c, "h"), "hashtable");
        let many: Vec<String> = (0..129).map(|i| format!("m{i}")).collect();
        let mut line = vec!["SADD", "big"];
        line.extend(many.iter().map(String::as_str));
        assert_eq!(c.cmd(0, &line), ":129\r\n");
        assert_eq!(enc(&c, "big"), "hashtable");
    }

    #[test]
    fn string_commands_refuse_sets_and_sets_refuse_strings() {
        let c = TestCluster::new(4);
        c.cmd(0, &["SADD", "s", "a"]);
        c.cmd(0, &["SET", "str", "v"]);
        for line in [
            &["GET", "s"][..],
            &["APPEND", "s", "x"],
            &["INCR", "s"],
            &["SETRANGE", "s", "0", "x"],
            &["STRLEN", "s"],
            &["GETRANGE", "s", "0", "1"],
            &["GETDEL", "s"],
            &["GETEX", "s"],
            &["GETSET", "s", "x"],
            &["INCRBYFLOAT", "s", "1"],
            &["SADD", "str", "a"],
            &["SREM", "str", "a"],
            &["SCARD", "str"],
            &["SMEMBERS", "str"],
            &["SISMEMBER", "str", "a"],
            &["SPOP", "str"],
            &["SRANDMEMBER", "str"],
            &["SSCAN", "str", "0"],
            &["SINTER", "s", "str"],
            &["SUNION", "str", "s"],
            &["SDIFF", "s", "str"],
            &["SMOVE", "str", "s", "a"],
            &["SMOVE", "s", "str", "a"],
        ] {
            assert_eq!(c.cmd(0, line), WRONGTYPE, "{line:?}");
        }
        assert_eq!(c.cmd(0, &["MGET", "s", "str"]), "*2\r\n$-1\r\n$1\r\nv\r\n");
        // SET replaces a set.
        assert_eq!(c.cmd(0, &["SET", "s", "v"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["TYPE", "s"]), "+string\r\n");
    }

    #[test]
    fn spop_and_srandmember() {
        let c = TestCluster::new(4);
        assert_eq!(c.cmd(0, &["SPOP", "none"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["SPOP", "none", "3"]), "*0\r\n");
        assert_eq!(c.cmd(0, &["SRANDMEMBER", "none"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["SRANDMEMBER", "none", "-3"]), "*0\r\n");
        c.cmd(0, &["SADD", "s", "a", "b", "c", "d", "e"]);
        assert_eq!(
            c.cmd(0, &["SPOP", "s", "-1"]),
            "-ERR value is out of range, must be positive\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SPOP", "s", "x"]),
            "-ERR value is out of range, must be positive\r\n"
        );
        assert_eq!(c.cmd(0, &["SPOP", "s", "1", "2"]), "-ERR syntax error\r\n");
        assert_eq!(
            c.cmd(0, &["SRANDMEMBER", "s", "1", "2"]),
            "-ERR syntax error\r\n"
        );
        let r = c.cmd(0, &["SRANDMEMBER", "s", "-20"]);
        assert!(r.starts_with("*20\r\n"), "{r}");
        let r = c.cmd(0, &["SRANDMEMBER", "s", "3"]);
        let got = sorted(&r);
        assert_eq!(got.len(), 3);
        assert!(got.windows(2).all(|w| w[0] != w[1]), "distinct: {r}");
        assert_eq!(
            sorted(&c.cmd(0, &["SRANDMEMBER", "s", "10"])),
            ["a", "b", "c", "d", "e"]
        );
        let popped = sorted(&c.cmd(0, &["SPOP", "s", "2"]));
        assert_eq!(popped.len(), 2);
        assert_eq!(c.cmd(0, &["SCARD", "s"]), ":3\r\n");
        let one = c.cmd(0, &["SPOP", "s"]);
        assert!(one.starts_with("$1\r\n"));
        let rest = sorted(&c.cmd(0, &["SPOP", "s", "10"]));
        assert_eq!(rest.len(), 2);
        assert_eq!(c.cmd(0, &["EXISTS", "s"]), ":0\r\n");
        let mut all: Vec<String> = popped.into_iter().chain(rest).collect();
        all.push(one.trim_start_matches("$1\r\n").trim_end().to_string());
        all.sort();
        assert_eq!(all, ["a", "b", "c", "d", "e"]);
        // Over a hashtable, random draws reach every member.
        let many: Vec<String> = (0..3000).map(|i| format!("m{i}")).collect();
        let mut line = vec!["SADD", "big"];
        line.extend(many.iter().map(String::as_str));
        c.cmd(0, &line);
        assert_eq!(
            sorted(&c.cmd(0, &["SRANDMEMBER", "big", "2999"])).len(),
            2999
        );
        assert_eq!(sorted(&c.cmd(0, &["SPOP", "big", "2990"])).len(), 2990);
        assert_eq!(c.cmd(0, &["SCARD", "big"]), ":10\r\n");
    }

    #[test]
    fn algebra_on_one_shard_and_across() {
        for same in [true, false] {
            let c = TestCluster::new(4);
            let a = "a";
            let (other, same_key) = other_and_same(a);
            let b = if same { same_key } else { other };
            let (d_other, d_same) = other_and_same(&b);
            let dst = if same { d_same } else { d_other };
            c.cmd(0, &["SADD", a, "1", "2", "3", "x"]);
            c.cmd(0, &["SADD", &b, "2", "3", "4", "y"]);
            assert_eq!(sorted(&c.cmd(0, &["SINTER", a, &b])), ["2", "3"]);
            assert_eq!(
                sorted(&c.cmd(0, &["SUNION", a, &b])),
                ["1", "2", "3", "4", "x", "y"]
            );
            assert_eq!(sorted(&c.cmd(0, &["SDIFF", a, &b])), ["1", "x"]);
            assert_eq!(c.cmd(0, &["SINTER", a, &b, "missing"]), "*0\r\n");
            assert_eq!(c.cmd(0, &["SINTERCARD", "2", a, &b]), ":2\r\n");
            assert_eq!(
                c.cmd(0, &["SINTERCARD", "2", a, &b, "LIMIT", "1"]),
                ":1\r\n"
            );
            assert_eq!(
                c.cmd(0, &["SINTERCARD", "2", a, &b, "LIMIT", "0"]),
                ":2\r\n"
            );
            assert_eq!(c.cmd(0, &["SINTERSTORE", &dst, a, &b]), ":2\r\n");
            assert_eq!(sorted(&c.cmd(0, &["SMEMBERS", &dst])), ["2", "3"]);
            assert_eq!(c.cmd(0, &["SUNIONSTORE", &dst, a, &b]), ":6\r\n");
            assert_eq!(c.cmd(0, &["SDIFFSTORE", &dst, &b, a]), ":2\r\n");
            assert_eq!(sorted(&c.cmd(0, &["SMEMBERS", &dst])), ["4", "y"]);
            // An empty result deletes the destination.
            assert_eq!(c.cmd(0, &["SINTERSTORE", &dst, a, "missing"]), ":0\r\n");
            assert_eq!(c.cmd(0, &["EXISTS", &dst]), ":0\r\n");
            // The destination may hold any type; a source may not.
            c.cmd(0, &["SET", &dst, "string"]);
            assert_eq!(c.cmd(0, &["SUNIONSTORE", &dst, a]), ":4\r\n");
            assert_eq!(c.cmd(0, &["TYPE", &dst]), "+set\r\n");
            c.cmd(0, &["SET", &b, "string"]);
            assert_eq!(c.cmd(0, &["SINTERSTORE", &dst, a, &b]), WRONGTYPE);
            assert_eq!(c.cmd(0, &["SINTER", "missing", &b]), WRONGTYPE);
            assert_eq!(c.cmd(0, &["SINTERCARD", "2", a, &b]), WRONGTYPE);
        }
    }

    #[test]
    fn sintercard_errors() {
        let c = TestCluster::new(4);
        for (line, err) in [
            (
                &["SINTERCARD", "0", "a"][..],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["SINTERCARD", "x", "a"],
                "-ERR numkeys should be greater than 0\r\n",
            ),
            (
                &["SINTERCARD", "3", "a", "b"],
                "-ERR Number of keys can't be greater than number of args\r\n",
            ),
            (
                &["SINTERCARD", "1", "a", "LIMIT", "-1"],
                "-ERR LIMIT can't be negative\r\n",
            ),
            (&["SINTERCARD", "1", "a", "LIMIT"], "-ERR syntax error\r\n"),
            (&["SINTERCARD", "1", "a", "b"], "-ERR syntax error\r\n"),
        ] {
            assert_eq!(c.cmd(0, line), err, "{line:?}");
        }
    }

    #[test]
    fn smove_on_one_shard_and_across() {
        for same in [true, false] {
            let c = TestCluster::new(4);
            let (other, same_key) = other_and_same("src");
            let dst = if same { same_key } else { other };
            assert_eq!(c.cmd(0, &["SMOVE", "src", &dst, "m"]), ":0\r\n");
            c.cmd(0, &["SET", &dst, "v"]);
            assert_eq!(
                c.cmd(0, &["SMOVE", "src", &dst, "m"]),
                ":0\r\n",
                "missing source first"
            );
            c.cmd(0, &["SADD", "src", "m", "n"]);
            assert_eq!(c.cmd(0, &["SMOVE", "src", &dst, "m"]), WRONGTYPE);
            c.cmd(0, &["DEL", &dst]);
            assert_eq!(c.cmd(0, &["SMOVE", "src", &dst, "zz"]), ":0\r\n");
            assert_eq!(c.cmd(0, &["SMOVE", "src", &dst, "m"]), ":1\r\n");
            assert_eq!(c.cmd(0, &["SMEMBERS", &dst]), "*1\r\n$1\r\nm\r\n");
            assert_eq!(c.cmd(0, &["SMOVE", "src", &dst, "n"]), ":1\r\n");
            assert_eq!(c.cmd(0, &["EXISTS", "src"]), ":0\r\n");
            assert_eq!(c.cmd(0, &["SCARD", &dst]), ":2\r\n");
            assert_eq!(c.cmd(0, &["SMOVE", &dst, &dst, "n"]), ":1\r\n");
            assert_eq!(c.cmd(0, &["SMOVE", &dst, &dst, "q"]), ":0\r\n");
        }
    }

    #[test]
    fn sscan_walks_every_member() {
        let c = TestCluster::new(4);
        assert_eq!(c.cmd(0, &["SSCAN", "none", "0"]), "*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(c.cmd(0, &["SSCAN", "none", "x"]), "-ERR invalid cursor\r\n");
        c.cmd(0, &["SADD", "small", "1", "2", "10"]);
        assert_eq!(
            c.cmd(0, &["SSCAN", "small", "0", "MATCH", "1*"]),
            "*2\r\n$1\r\n0\r\n*2\r\n$1\r\n1\r\n$2\r\n10\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SSCAN", "small", "0", "COUNT", "0"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SSCAN", "small", "0", "TYPE", "set"]),
            "-ERR syntax error\r\n"
        );
        let many: Vec<String> = (0..5000).map(|i| format!("m{i}")).collect();
        let mut line = vec!["SADD", "big"];
        line.extend(many.iter().map(String::as_str));
        c.cmd(0, &line);
        let mut seen = Vec::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let r = c.cmd(0, &["SSCAN", "big", &cursor, "COUNT", "100"]);
            let lines: Vec<&str> = r.split("\r\n").collect();
            cursor = lines[2].to_string();
            seen.extend(
                lines[4..]
                    .iter()
                    .filter(|l| !l.starts_with('$') && !l.is_empty())
                    .map(|s| s.to_string()),
            );
            calls += 1;
            if cursor == "0" {
                break;
            }
        }
        assert!(calls > 5, "in steps");
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 5000);
    }
}
