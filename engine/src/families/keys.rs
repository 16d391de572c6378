//! Generic key commands: DEL, UNLINK, EXISTS, TOUCH, TYPE, the EXPIRE and
//! TTL families, PERSIST, RENAME/RENAMENX, KEYS, SCAN and RANDOMKEY.
//!
//! SCAN cursors: a shard's keys are visited in hash order, page by page, and
//! page boundaries are multiples of 2^16 in hash space (pages never get
//! deeper than `pagetable::MAX_DEPTH`). A cursor is therefore the next hash
//! position with its low 16 bits replaced by the shard index. Pages only
//! ever split (a flush replaces the table with one page covering
//! everything), so a position that was a page boundary stays one, and a key
//! present for the whole iteration is returned exactly once.

use crate::command::flags::*;
use crate::command::{
    cmd, group_by_shard, join_all, ready, run_value, Args, Cluster, CommandSpec, Exec,
    LocalBoxFuture, Log,
};
use crate::error::{CmdResult, Error};
use crate::families::server::on_every_shard;
use crate::keyhash::shard_of;
use crate::reply::Reply;
use crate::resp::{self, parse_i64};
use crate::shard::{ExecCtx, Shard};
use crate::value::Entry;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("del", -2, WRITE, Exec::Keys { shard: del, cross: del_cross }, Log::Auto)
        .keys(1, -1, 1)
        .doc("generic", "Delete a key", "1.0.0", "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1).", "key [key ...]"),
    cmd("unlink", -2, WRITE | FAST, Exec::Keys { shard: unlink, cross: unlink_cross }, Log::Auto)
        .keys(1, -1, 1)
        .doc("generic", "Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.", "4.0.0", "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of.", "key [key ...]"),
    cmd("exists", -2, READONLY | FAST, Exec::Keys { shard: exists, cross: exists_cross }, Log::Never)
        .keys(1, -1, 1)
        .doc("generic", "Determine if a key exists", "1.0.0", "O(N) where N is the number of keys to check.", "key [key ...]")
        .history(&[("3.0.3", "Accepts multiple `key` arguments.")]),
    cmd("touch", -2, READONLY | FAST, Exec::Keys { shard: touch, cross: touch_cross }, Log::Never)
        .keys(1, -1, 1)
        .doc("generic", "Alters the last access time of a key(s). Returns the number of existing keys specified.", "3.2.1", "O(N) where N is the number of keys that will be touched.", "key [key ...]"),
    cmd("type", 2, READONLY | FAST, Exec::Shard(type_cmd), Log::Never)
        .keys(1, 1, 1)
        .doc("generic", "Determine the type stored at key", "1.0.0", "O(1)", "key"),
    cmd("expire", -3, WRITE | FAST, Exec::Shard(expire), Log::Effect)
        .keys(1, 1, 1)
        .doc("generic", "Set a key's time to live in seconds", "1.0.0", "O(1)", "key seconds [NX|XX|GT|LT]")
        .notes(&[("NX|XX|GT|LT", "name=condition since=7.0.0")])
        .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
    cmd("pexpire", -3, WRITE | FAST, Exec::Shard(pexpire), Log::Effect)
        .keys(1, 1, 1)
        .doc("generic", "Set a key's time to live in milliseconds", "2.6.0", "O(1)", "key milliseconds [NX|XX|GT|LT]")
        .notes(&[("NX|XX|GT|LT", "name=condition since=7.0.0")])
        .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
    cmd("expireat", -3, WRITE | FAST, Exec::Shard(expireat), Log::Effect)
        .keys(1, 1, 1)
        .doc("generic", "Set the expiration for a key as a UNIX timestamp", "1.2.0", "O(1)", "key unix-time-seconds [NX|XX|GT|LT]")
        .notes(&[("NX|XX|GT|LT", "name=condition since=7.0.0")])
        .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
    cmd("pexpireat", -3, WRITE | FAST, Exec::Shard(pexpireat), Log::Effect)
        .keys(1, 1, 1)
        .doc("generic", "Set the expiration for a key as a UNIX timestamp specified in milliseconds", "2.6.0", "O(1)", "key unix-time-milliseconds [NX|XX|GT|LT]")
        .notes(&[("NX|XX|GT|LT", "name=condition since=7.0.0")])
        .history(&[("7.0.0", "Added options: `NX`, `XX`, `GT` and `LT`.")]),
    cmd("ttl", 2, READONLY | FAST, Exec::Shard(ttl), Log::Never)
        .keys(1, 1, 1)
        .doc("generic", "Get the time to live for a key in seconds", "1.0.0", "O(1)", "key")
        .history(&[("2.8.0", "Added the -2 reply.")]),
    cmd("pttl", 2, READONLY | FAST, Exec::Shard(pttl), Log::Never)
        .keys(1, 1, 1)
        .doc("generic", "Get the time to live for a key in milliseconds", "2.6.0", "O(1)", "key")
        .history(&[("2.8.0", "Added the -2 reply.")]),
    cmd("expiretime", 2, READONLY | FAST, Exec::Shard(expiretime), Log::Never)
        .keys(1, 1, 1)
        .doc("generic", "Get the expiration Unix timestamp for a key", "7.0.0", "O(1)", "key"),
    cmd("pexpiretime", 2, READONLY | FAST, Exec::Shard(pexpiretime), Log::Never)
        .keys(1, 1, 1)
        .doc("generic", "Get the expiration Unix timestamp for a key in milliseconds", "7.0.0", "O(1)", "key"),
    cmd("persist", 2, WRITE | FAST, Exec::Shard(persist), Log::Auto)
        .keys(1, 1, 1)
        .doc("generic", "Remove the expiration from a key", "2.2.0", "O(1)", "key"),
    cmd("rename", 3, WRITE, Exec::Keys { shard: rename, cross: rename_cross }, Log::Auto)
        .keys(1, 2, 1)
        .doc("generic", "Rename a key", "1.0.0", "O(1)", "key newkey"),
    cmd("renamenx", 3, WRITE | FAST, Exec::Keys { shard: renamenx, cross: renamenx_cross }, Log::Auto)
        .keys(1, 2, 1)
        .doc("generic", "Rename a key, only if the new key does not exist", "1.0.0", "O(1)", "key newkey")
        .history(&[
            ("3.2.0", "The command no longer returns an error when source and destination names are the same."),
        ]),
    cmd("keys", 2, READONLY, Exec::Global { cross: keys_cmd, lock: true }, Log::Never)
        .doc("generic", "Find all keys matching the given pattern", "1.0.0", "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length.", "pattern"),
    cmd("scan", -2, READONLY, Exec::Global { cross: scan, lock: false }, Log::Never)
        .doc("generic", "Incrementally iterate the keys space", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.", "cursor [MATCH pattern] [COUNT count] [TYPE type]")
        .notes(&[("TYPE type", "since=6.0.0")])
        .history(&[("6.0.0", "Added the `TYPE` subcommand.")]),
    cmd("randomkey", 1, READONLY, Exec::Global { cross: randomkey, lock: false }, Log::Never)
        .doc("generic", "Return a random key from the keyspace", "1.0.0", "O(1)", ""),
];

// ---------------------------------------------------------------------------
// DEL, UNLINK, EXISTS, TOUCH

/// DEL and UNLINK on one shard; `lazy`: values big enough are freed on
/// the lazy-free thread (UNLINK always, DEL with
/// `lazyfree-lazy-user-del`).
fn del_here(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>, lazy: bool) -> CmdResult {
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.delete(k, lazy) {
            n += 1;
        }
    }
    ctx.dirty(n as u64);
    resp::write_int(out, n);
    Ok(())
}

fn del(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let lazy = ctx.shard.lazyfree.settings.user_del;
    del_here(ctx, args, out, lazy)
}

fn unlink(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    del_here(ctx, args, out, true)
}

/// Runs `f` over each shard's share of the key arguments and sums the
/// integer replies (DEL, UNLINK, EXISTS, TOUCH across shards).
pub fn sum_over_shards(
    c: &dyn Cluster,
    db: usize,
    args: Vec<Vec<u8>>,
    f: fn(&mut ExecCtx<'_>, &[Vec<u8>]) -> i64,
) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let futs = group_by_shard(c.shard_count(), args.into_iter().skip(1))
            .into_iter()
            .map(|(shard, _, keys)| {
                c.run(
                    shard,
                    Box::new(move |sh| Reply::Int(f(&mut sh.ctx(db), &keys))),
                )
            })
            .collect();
        Reply::Int(join_all(futs).await.iter().filter_map(Reply::as_int).sum())
    })
}

/// This shard's share of a cross-shard DEL or UNLINK (`lazy` as in
/// [`del_here`]).
fn del_keys_here(ctx: &mut ExecCtx<'_>, keys: &[Vec<u8>], lazy: bool) -> i64 {
    let removed: Vec<&[u8]> = keys
        .iter()
        .filter(|k| ctx.delete(k, lazy))
        .map(Vec::as_slice)
        .collect();
    let n = removed.len() as u64;
    if n > 0 {
        ctx.propagate(
            std::iter::once(&b"DEL"[..])
                .chain(removed)
                .collect::<Vec<_>>(),
        );
    }
    ctx.dirty(n);
    n as i64
}

fn del_keys(ctx: &mut ExecCtx<'_>, keys: &[Vec<u8>]) -> i64 {
    let lazy = ctx.shard.lazyfree.settings.user_del;
    del_keys_here(ctx, keys, lazy)
}

fn unlink_keys(ctx: &mut ExecCtx<'_>, keys: &[Vec<u8>]) -> i64 {
    del_keys_here(ctx, keys, true)
}

fn del_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    sum_over_shards(c, db, args, del_keys)
}

fn unlink_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    sum_over_shards(c, db, args, unlink_keys)
}

/// EXISTS and TOUCH: how many of the named keys exist, a key named twice
/// counting twice. Both are reads (hits and misses are counted); TOUCH
/// also sets their access time (`touch`), EXISTS does not.
fn count_existing<'k>(
    ctx: &mut ExecCtx<'_>,
    keys: impl Iterator<Item = &'k [u8]>,
    touch: bool,
) -> i64 {
    keys.filter(|k| {
        if touch {
            ctx.lookup_read(k).is_some()
        } else {
            ctx.lookup_read_notouch(k).is_some()
        }
    })
    .count() as i64
}

fn exists(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    resp::write_int(out, count_existing(ctx, args.iter().skip(1), false));
    Ok(())
}

fn exists_keys(ctx: &mut ExecCtx<'_>, keys: &[Vec<u8>]) -> i64 {
    count_existing(ctx, keys.iter().map(Vec::as_slice), false)
}

fn exists_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    sum_over_shards(c, db, args, exists_keys)
}

fn touch(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    resp::write_int(out, count_existing(ctx, args.iter().skip(1), true));
    Ok(())
}

fn touch_keys(ctx: &mut ExecCtx<'_>, keys: &[Vec<u8>]) -> i64 {
    count_existing(ctx, keys.iter().map(Vec::as_slice), true)
}

fn touch_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    sum_over_shards(c, db, args, touch_keys)
}

fn type_cmd(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let name = ctx
        .lookup_read_notouch(args.get(1))
        .map_or("none", |e| e.value.type_name());
    resp::write_simple(out, name);
    Ok(())
}

// ---------------------------------------------------------------------------
// EXPIRE, PEXPIRE, EXPIREAT, PEXPIREAT

/// The NX/XX/GT/LT flags of the EXPIRE family.
#[derive(Default, Clone, Copy)]
struct ExpireFlags {
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
}

/// Parses the flags after the time argument, with Redis's error texts
/// (parseExtendedExpireArgumentsOrReply).
fn parse_expire_flags(args: Args<'_>) -> Result<ExpireFlags, Error> {
    let mut f = ExpireFlags::default();
    for opt in args.iter().skip(3) {
        if opt.eq_ignore_ascii_case(b"nx") {
            f.nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            f.xx = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            f.gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            f.lt = true;
        } else {
            return Err(Error::quoting(&[b"ERR Unsupported option ", opt]));
        }
    }
    if f.nx && (f.xx || f.gt || f.lt) {
        return Err(Error::msg(
            "ERR NX and XX, GT or LT options at the same time are not compatible",
        ));
    }
    if f.gt && f.lt {
        return Err(Error::msg(
            "ERR GT and LT options at the same time are not compatible",
        ));
    }
    Ok(f)
}

/// EXPIRE and friends (Redis's expireGenericCommand). The time may be
/// negative; only overflow is an error. A time at or before now deletes the
/// key (and still answers 1).
fn expire_generic(
    ctx: &mut ExecCtx<'_>,
    args: Args<'_>,
    out: &mut Vec<u8>,
    seconds: bool,
    relative: bool,
    name: &'static str,
) -> CmdResult {
    let flags = parse_expire_flags(args)?;
    let mut when = parse_i64(args.get(2)).ok_or(Error::NotInteger)?;
    if seconds {
        when = when.checked_mul(1000).ok_or(Error::InvalidExpire(name))?;
    }
    let now = i64::try_from(ctx.now_ms()).unwrap_or(i64::MAX);
    if relative {
        when = when.checked_add(now).ok_or(Error::InvalidExpire(name))?;
    }
    let key = args.get(1);
    let Some(current) = ctx.lookup_write(key).map(|e| e.expire_at) else {
        resp::write_int(out, 0);
        return Ok(());
    };
    // None: no expiry, which GT and LT treat as an infinite TTL.
    let current = (current != 0).then(|| i64::try_from(current).unwrap_or(i64::MAX));
    let refused = (flags.nx && current.is_some())
        || (flags.xx && current.is_none())
        || (flags.gt && current.is_none_or(|c| when <= c))
        || (flags.lt && current.is_some_and(|c| when >= c));
    if refused {
        resp::write_int(out, 0);
        return Ok(());
    }
    if when <= now {
        ctx.delete_expired(key);
        ctx.propagate([&b"DEL"[..], key]);
    } else {
        // `when > now >= 0`, so it is a valid (non-zero) expiry.
        ctx.set_expire(key, when as u64);
        let mut n = itoa::Buffer::new();
        ctx.propagate([&b"PEXPIREAT"[..], key, n.format(when).as_bytes()]);
    }
    ctx.dirty(1);
    resp::write_int(out, 1);
    Ok(())
}

fn expire(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    expire_generic(ctx, args, out, true, true, "expire")
}

fn pexpire(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    expire_generic(ctx, args, out, false, true, "pexpire")
}

fn expireat(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    expire_generic(ctx, args, out, true, false, "expireat")
}

fn pexpireat(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    expire_generic(ctx, args, out, false, false, "pexpireat")
}

// ---------------------------------------------------------------------------
// TTL, PTTL, EXPIRETIME, PEXPIRETIME, PERSIST

/// Redis's ttlGenericCommand: -2 for a missing key, -1 for no expiry; seconds
/// are rounded to the nearest.
fn ttl_generic(
    ctx: &mut ExecCtx<'_>,
    args: Args<'_>,
    out: &mut Vec<u8>,
    millis: bool,
    absolute: bool,
) -> CmdResult {
    let now = i64::try_from(ctx.now_ms()).unwrap_or(i64::MAX);
    let reply = match ctx.lookup_read_notouch(args.get(1)) {
        None => -2,
        Some(e) if e.expire_at == 0 => -1,
        Some(e) => {
            let at = i64::try_from(e.expire_at).unwrap_or(i64::MAX);
            let t = if absolute { at } else { at - now }.max(0);
            if millis {
                t
            } else {
                t.saturating_add(500) / 1000
            }
        }
    };
    resp::write_int(out, reply);
    Ok(())
}

fn ttl(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    ttl_generic(ctx, args, out, false, false)
}

fn pttl(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    ttl_generic(ctx, args, out, true, false)
}

fn expiretime(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    ttl_generic(ctx, args, out, false, true)
}

fn pexpiretime(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    ttl_generic(ctx, args, out, true, true)
}

fn persist(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    let volatile = ctx.lookup_write(key).is_some_and(Entry::is_volatile);
    if volatile {
        ctx.set_expire(key, 0);
        ctx.dirty(1);
    }
    resp::write_int(out, i64::from(volatile));
    Ok(())
}

// ---------------------------------------------------------------------------
// RENAME, RENAMENX

/// The reply of a rename that happened (`nx`: RENAMENX).
fn renamed(nx: bool) -> Reply {
    if nx {
        Reply::Int(1)
    } else {
        Reply::Ok
    }
}

/// RENAME/RENAMENX when both keys are on this shard. The value and its
/// expiry move together; the source must exist even when it equals the
/// destination.
fn rename_here(ctx: &mut ExecCtx<'_>, src: &[u8], dst: &[u8], nx: bool) -> Result<Reply, Error> {
    if !ctx.exists(src) {
        return Err(Error::NoSuchKey);
    }
    if src == dst {
        return Ok(if nx { Reply::Int(0) } else { Reply::Ok });
    }
    if ctx.exists(dst) && nx {
        return Ok(Reply::Int(0));
    }
    let entry = ctx.remove(src).ok_or(Error::NoSuchKey)?;
    ctx.set(dst, entry.value, entry.expire_at);
    ctx.dirty(1);
    Ok(renamed(nx))
}

fn rename(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    rename_here(ctx, args.get(1), args.get(2), false)?.write_to(out);
    Ok(())
}

fn renamenx(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    rename_here(ctx, args.get(1), args.get(2), true)?.write_to(out);
    Ok(())
}

/// RENAME/RENAMENX across shards, under locks on both keys: (for RENAMENX,
/// check the source, then the destination,) take the entry out of the
/// source shard, put it into the destination shard.
async fn rename_across(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>, nx: bool) -> Reply {
    let name = if nx { "renamenx" } else { "rename" };
    let mut it = args.into_iter().skip(1);
    let (Some(src), Some(dst), None) = (it.next(), it.next(), it.next()) else {
        return Reply::Error(Error::WrongArity(name.into()));
    };
    let n = c.shard_count();
    let (from, to) = (shard_of(&src, n), shard_of(&dst, n));
    if from == to {
        let job = move |sh: &mut Shard| Reply::from(rename_here(&mut sh.ctx(db), &src, &dst, nx));
        return c.run(from, Box::new(job)).await;
    }
    if nx {
        let s = src.clone();
        let found = c
            .run(
                from,
                Box::new(move |sh| Reply::Int(i64::from(sh.ctx(db).exists(&s)))),
            )
            .await;
        if found != Reply::Int(1) {
            return Reply::Error(Error::NoSuchKey);
        }
        let d = dst.clone();
        let taken = c
            .run(
                to,
                Box::new(move |sh| Reply::Int(i64::from(sh.ctx(db).exists(&d)))),
            )
            .await;
        if taken != Reply::Int(0) {
            return Reply::Int(0);
        }
    }
    let take = move |sh: &mut Shard| {
        let mut ctx = sh.ctx(db);
        let entry = ctx.remove(&src);
        if entry.is_some() {
            ctx.propagate([&b"DEL"[..], &src]);
        }
        entry
    };
    let Some(Some(entry)) = run_value(c, from, take).await else {
        return Reply::Error(Error::NoSuchKey);
    };
    let put = move |sh: &mut Shard| {
        let mut ctx = sh.ctx(db);
        // Expire a stale destination first, as a lookup would. A value
        // replaced goes first in the log too: the recreating commands of
        // a collection add to what is there.
        if ctx.exists(&dst) {
            ctx.propagate([&b"DEL"[..], &dst]);
        }
        crate::families::propagate_entry(&mut ctx, &dst, &entry.value, entry.expire_at);
        ctx.set(&dst, entry.value, entry.expire_at);
        ctx.dirty(1);
        Reply::Ok
    };
    c.run(to, Box::new(put)).await;
    renamed(nx)
}

fn rename_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(rename_across(c, db, args, false))
}

fn renamenx_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(rename_across(c, db, args, true))
}

// ---------------------------------------------------------------------------
// KEYS, SCAN, RANDOMKEY

/// A glob filter; a lone `*` matches every key, the empty one included.
#[derive(Clone)]
struct KeyFilter {
    pattern: Option<Vec<u8>>,
}

impl KeyFilter {
    fn new(pattern: Vec<u8>) -> Self {
        let pattern = (pattern != b"*").then_some(pattern);
        KeyFilter { pattern }
    }

    fn matches(&self, key: &[u8]) -> bool {
        self.pattern
            .as_deref()
            .is_none_or(|p| crate::glob::matches(p, key, false))
    }
}

fn keys_cmd(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    let Some(pattern) = args.into_iter().nth(1) else {
        return ready(Reply::Error(Error::WrongArity("keys".into())));
    };
    let filter = KeyFilter::new(pattern);
    Box::pin(async move {
        let parts = on_every_shard(c, || {
            let filter = filter.clone();
            Box::new(move |sh| {
                let now = sh.now_ms();
                // Logically expired keys are skipped, not deleted (as Redis).
                let keys = sh
                    .db(db)
                    .iter()
                    .filter(|e| !e.is_expired(now) && filter.matches(&e.key))
                    .map(|e| Reply::Bulk(e.key.to_vec()))
                    .collect();
                Reply::Array(keys)
            })
        })
        .await;
        let mut all = Vec::new();
        for part in parts {
            match part {
                Reply::Array(keys) => all.extend(keys),
                Reply::Error(e) => return Reply::Error(e),
                _ => {}
            }
        }
        Reply::Array(all)
    })
}

/// Bits of a SCAN cursor that hold the shard index (so at most 65536
/// shards; the hash position keeps the other 48 bits).
const CURSOR_SHARD_BITS: u32 = 16;
const CURSOR_SHARD_MASK: u64 = (1 << CURSOR_SHARD_BITS) - 1;

/// Parses a cursor as Redis does (strtoul, base 10): an optional sign, then
/// digits; a leading `-` wraps; the empty string is 0.
pub(crate) fn parse_cursor(a: &[u8]) -> Option<u64> {
    if a.is_empty() {
        return Some(0);
    }
    let (neg, digits) = match a[0] {
        b'-' => (true, &a[1..]),
        b'+' => (false, &a[1..]),
        _ => (false, a),
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

/// SCAN's parsed arguments.
#[derive(Clone)]
struct ScanOpts {
    cursor: u64,
    filter: KeyFilter,
    count: usize,
    type_name: Option<Vec<u8>>,
}

fn parse_scan(args: &[Vec<u8>]) -> Result<ScanOpts, Error> {
    let cursor = args
        .get(1)
        .and_then(|a| parse_cursor(a))
        .ok_or_else(|| Error::msg("ERR invalid cursor"))?;
    let mut opts = ScanOpts {
        cursor,
        filter: KeyFilter { pattern: None },
        count: 10,
        type_name: None,
    };
    let mut i = 2;
    while i < args.len() {
        let (opt, value) = match (args.get(i), args.get(i + 1)) {
            (Some(o), Some(v)) => (o, v),
            _ => return Err(Error::Syntax),
        };
        if opt.eq_ignore_ascii_case(b"count") {
            let n = parse_i64(value).ok_or(Error::NotInteger)?;
            if n < 1 {
                return Err(Error::Syntax);
            }
            opts.count = usize::try_from(n).unwrap_or(usize::MAX);
        } else if opt.eq_ignore_ascii_case(b"match") {
            opts.filter = KeyFilter::new(value.clone());
        } else if opt.eq_ignore_ascii_case(b"type") {
            opts.type_name = Some(value.clone());
        } else {
            return Err(Error::Syntax);
        }
        i += 2;
    }
    Ok(opts)
}

/// One SCAN step on one shard: from hash position `pos`, whole pages until
/// about `count` entries were examined. Returns the position to resume at
/// (None: this shard is done) and the keys that passed the filters.
/// Expired keys met on the way are deleted.
/// Scans one shard from hash position `pos`: (next position or None at the
/// end of the shard, entries examined, matching keys).
fn scan_shard(
    sh: &mut Shard,
    db: usize,
    pos: u64,
    opts: &ScanOpts,
) -> (Option<u64>, usize, Vec<Reply>) {
    let now = sh.now_ms();
    let mut keys = Vec::new();
    let mut expired: Vec<Vec<u8>> = Vec::new();
    let mut examined = 0;
    let next = sh.db(db).visit_from(pos, |page| {
        // The first page may begin before `pos` if the table was replaced
        // (FLUSHDB, SWAPDB) since the cursor was made; skip what lies before.
        for e in page.entries().filter(|e| e.hash >= pos) {
            examined += 1;
            if e.is_expired(now) {
                expired.push(e.key.to_vec());
            } else if opts.filter.matches(&e.key)
                && opts
                    .type_name
                    .as_deref()
                    .is_none_or(|t| t.eq_ignore_ascii_case(e.value.type_name().as_bytes()))
            {
                keys.push(Reply::Bulk(e.key.to_vec()));
            }
        }
        examined < opts.count
    });
    let mut ctx = sh.ctx(db);
    for k in expired {
        // A lookup deletes the expired key and counts it.
        ctx.exists(&k);
    }
    (next, examined, keys)
}

fn scan(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    let opts = match parse_scan(&args) {
        Ok(o) => o,
        Err(e) => return ready(Reply::Error(e)),
    };
    Box::pin(async move {
        let n = c.shard_count();
        let mut shard = (opts.cursor & CURSOR_SHARD_MASK) as usize;
        let mut pos = opts.cursor & !CURSOR_SHARD_MASK;
        let opts = std::sync::Arc::new(opts);
        let mut keys = Vec::new();
        let mut examined = 0;
        // Visit shards in turn until COUNT entries were examined or the
        // last shard is done (so an empty keyspace ends in one call, as in
        // Redis). A cursor naming no shard of this server ends at once.
        let next = loop {
            if shard >= n {
                break 0;
            }
            let o = opts.clone();
            let want = o.count.saturating_sub(examined).max(1);
            let job = move |sh: &mut Shard| {
                let o = ScanOpts {
                    count: want,
                    ..(*o).clone()
                };
                scan_shard(sh, db, pos, &o)
            };
            let Some((after, seen, found)) = run_value(c, shard, job).await else {
                break 0;
            };
            keys.extend(found);
            examined += seen;
            match after {
                Some(p) => break (p & !CURSOR_SHARD_MASK) | shard as u64,
                None => {
                    shard += 1;
                    pos = 0;
                    if shard >= n {
                        break 0;
                    }
                    if examined >= opts.count {
                        break shard as u64;
                    }
                }
            }
        };
        Reply::Array(vec![
            Reply::Bulk(next.to_string().into_bytes()),
            Reply::Array(keys),
        ])
    })
}

/// A small xorshift generator, seeded from the shard's, for choosing
/// entries while the table is borrowed.
fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    seed |= 1;
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// A random unexpired key of this shard, deleting expired ones it draws
/// (Redis's dbRandomKey). Nil if the shard has none.
fn random_key_here(sh: &mut Shard, db: usize) -> Reply {
    loop {
        let now = sh.now_ms();
        let rnd = xorshift(sh.random());
        let (key, expired) = match sh.db(db).random_entry(rnd) {
            None => return Reply::Nil,
            Some(e) => (e.key.to_vec(), e.is_expired(now)),
        };
        if !expired {
            return Reply::Bulk(key);
        }
        // Each round deletes a key, so this ends.
        sh.ctx(db).exists(&key);
    }
}

fn randomkey(c: &dyn Cluster, db: usize, _args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        // Without locks a chosen shard may empty before it is asked; a few
        // retries (each recounting) settle it.
        for _ in 0..16 {
            let counts = on_every_shard(c, || {
                Box::new(move |sh| {
                    let len = sh.db(db).len() as i64;
                    Reply::Array(vec![Reply::Int(len), Reply::Int(sh.random() as i64)])
                })
            })
            .await;
            let mut lens = Vec::with_capacity(counts.len());
            let mut seed = 0u64;
            for r in &counts {
                match r {
                    Reply::Array(v) => {
                        lens.push(v.first().and_then(Reply::as_int).unwrap_or(0) as u64);
                        seed ^= v.get(1).and_then(Reply::as_int).unwrap_or(0) as u64;
                    }
                    _ => lens.push(0),
                }
            }
            let total: u64 = lens.iter().sum();
            if total == 0 {
                return Reply::Nil;
            }
            // Pick a shard weighted by its key count.
            let mut pick = seed % total;
            let mut shard = 0;
            for (i, &len) in lens.iter().enumerate() {
                if pick < len {
                    shard = i;
                    break;
                }
                pick -= len;
            }
            let r = c
                .run(shard, Box::new(move |sh| random_key_here(sh, db)))
                .await;
            if r != Reply::Nil {
                return r;
            }
        }
        Reply::Nil
    })
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};

    use crate::command::lookup;
    use crate::keyhash::shard_of;
    use crate::testkit::TestCluster;

    const T0: u64 = 1_700_000_000_000;

    /// Two keys that live on different shards of a 4-shard cluster.
    fn keys_on_two_shards() -> (String, String) {
        let a = "src".to_string();
        let b = (0..)
            .map(|i| format!("dst{i}"))
            .find(|k| shard_of(k.as_bytes(), 4) != shard_of(a.as_bytes(), 4))
            .unwrap();
        (a, b)
    }

    fn same_shard_pair() -> (String, String) {
        let a = "src".to_string();
        let b = (0..)
            .map(|i| format!("dst{i}"))
            .find(|k| shard_of(k.as_bytes(), 4) == shard_of(a.as_bytes(), 4))
            .unwrap();
        (a, b)
    }

    #[test]
    fn table_entries() {
        for (name, arity, first, last, step) in [
            ("unlink", -2, 1, -1, 1),
            ("exists", -2, 1, -1, 1),
            ("touch", -2, 1, -1, 1),
            ("type", 2, 1, 1, 1),
            ("expire", -3, 1, 1, 1),
            ("pexpireat", -3, 1, 1, 1),
            ("ttl", 2, 1, 1, 1),
            ("pexpiretime", 2, 1, 1, 1),
            ("persist", 2, 1, 1, 1),
            ("rename", 3, 1, 2, 1),
            ("renamenx", 3, 1, 2, 1),
            ("keys", 2, 0, 0, 0),
            ("scan", -2, 0, 0, 0),
            ("randomkey", 1, 0, 0, 0),
        ] {
            let c = lookup(name.as_bytes()).unwrap();
            assert_eq!(
                (c.arity, c.first_key, c.last_key, c.step),
                (arity, first, last, step),
                "{name}"
            );
        }
        assert!(lookup(b"expire").unwrap().is_write());
        assert!(!lookup(b"ttl").unwrap().is_write());
    }

    #[test]
    fn unlink_exists_touch_type_across_shards() {
        let c = TestCluster::new(4);
        for i in 0..10 {
            c.cmd(0, &["SET", &format!("k{i}"), "v"]);
        }
        assert_eq!(
            c.cmd(0, &["EXISTS", "k0", "k1", "k1", "nope", "k9"]),
            ":4\r\n"
        );
        assert_eq!(c.cmd(0, &["EXISTS", "nope"]), ":0\r\n");
        assert_eq!(c.cmd(1, &["EXISTS", "k0"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["TOUCH", "k0", "k1", "k1", "nope"]), ":3\r\n");
        assert_eq!(c.cmd(0, &["TYPE", "k0"]), "+string\r\n");
        assert_eq!(c.cmd(0, &["TYPE", "nope"]), "+none\r\n");
        assert_eq!(
            c.cmd(0, &["UNLINK", "k0", "k1", "k2", "nope", "k2"]),
            ":3\r\n"
        );
        assert_eq!(c.cmd(0, &["UNLINK", "k3"]), ":1\r\n");
        assert_eq!(
            c.cmd(0, &["EXISTS", "k0", "k1", "k2", "k3", "k4"]),
            ":1\r\n"
        );
        assert_eq!(
            c.cmd(0, &["EXISTS"]),
            "-ERR wrong number of arguments for 'exists' command\r\n"
        );
        // An expired key does not exist.
        c.set_now(T0);
        c.cmd(0, &["SET", "t", "v", "PX", "10"]);
        assert_eq!(c.cmd(0, &["EXISTS", "t"]), ":1\r\n");
        c.set_now(T0 + 10);
        assert_eq!(c.cmd(0, &["EXISTS", "t"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["TYPE", "t"]), "+none\r\n");
    }

    #[test]
    fn expire_sets_and_ttl_reads() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "10"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":-2\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":-2\r\n");
        assert_eq!(c.cmd(0, &["EXPIRETIME", "k"]), ":-2\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "k"]), ":-2\r\n");
        c.cmd(0, &["SET", "k", "v"]);
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":-1\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":-1\r\n");
        assert_eq!(c.cmd(0, &["EXPIRETIME", "k"]), ":-1\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "k"]), ":-1\r\n");

        assert_eq!(c.cmd(0, &["EXPIRE", "k", "10"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":10\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":10000\r\n");
        assert_eq!(c.cmd(0, &["EXPIRETIME", "k"]), ":1700000010\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "k"]), ":1700000010000\r\n");
        // TTL rounds to the nearest second.
        c.set_now(T0 + 4_501);
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":5499\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":5\r\n");
        c.set_now(T0 + 4_500);
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":6\r\n");
        c.set_now(T0 + 9_999);
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":0\r\n");
        c.set_now(T0 + 10_000);
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":-2\r\n");
        assert_eq!(c.cmd(0, &["EXISTS", "k"]), ":0\r\n");

        c.cmd(0, &["SET", "k", "v"]);
        assert_eq!(c.cmd(0, &["PEXPIRE", "k", "1500"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":1500\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":2\r\n");
        assert_eq!(c.cmd(0, &["EXPIREAT", "k", "1800000000"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "k"]), ":1800000000000\r\n");
        assert_eq!(c.cmd(0, &["PEXPIREAT", "k", "1800000000123"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "k"]), ":1800000000123\r\n");
        assert_eq!(c.cmd(0, &["EXPIRETIME", "k"]), ":1800000000\r\n");
        c.cmd(0, &["PEXPIREAT", "k", "1800000000500"]);
        assert_eq!(c.cmd(0, &["EXPIRETIME", "k"]), ":1800000001\r\n");

        // PERSIST
        assert_eq!(c.cmd(0, &["PERSIST", "k"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PERSIST", "k"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":-1\r\n");
        assert_eq!(c.cmd(0, &["PERSIST", "nope"]), ":0\r\n");
        c.with_shard(shard_of(b"k", 4), |sh| {
            assert_eq!(sh.db(0).volatile_len(), 0)
        });
    }

    #[test]
    fn expire_in_the_past_deletes() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        let dirty =
            |c: &TestCluster| -> u64 { (0..4).map(|s| c.with_shard(s, |sh| sh.stats.dirty)).sum() };
        for (cmd, arg) in [
            ("EXPIRE", "0"),
            ("EXPIRE", "-5"),
            ("PEXPIRE", "0"),
            ("PEXPIRE", "-1"),
            ("EXPIREAT", "1700000000"),
            ("EXPIREAT", "0"),
            ("EXPIREAT", "-1"),
            ("PEXPIREAT", "1700000000000"),
            ("PEXPIREAT", "1"),
        ] {
            c.cmd(0, &["SET", "k", "v"]);
            let before = dirty(&c);
            assert_eq!(c.cmd(0, &[cmd, "k", arg]), ":1\r\n", "{cmd} {arg}");
            assert_eq!(dirty(&c), before + 1);
            assert_eq!(c.cmd(0, &["EXISTS", "k"]), ":0\r\n", "{cmd} {arg}");
        }
        // One millisecond ahead is in the future.
        c.cmd(0, &["SET", "k", "v"]);
        assert_eq!(c.cmd(0, &["PEXPIREAT", "k", "1700000000001"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRE", "k", "1"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":1\r\n");
        // A missing key is not deleted, and answers 0.
        assert_eq!(c.cmd(0, &["EXPIRE", "nope", "-1"]), ":0\r\n");
    }

    #[test]
    fn expire_options() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        c.cmd(0, &["SET", "k", "v"]);
        // No expiry yet: XX and GT refuse, LT accepts (no expiry = infinite).
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "100", "XX"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "100", "GT"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":-1\r\n");
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "100", "NX"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "200", "NX"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":100\r\n");
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "50", "xx"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":50\r\n");
        // GT/LT at the boundary: equal is refused by both.
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "50", "GT"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "50", "LT"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRE", "k", "50001", "GT"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":50001\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRE", "k", "50000", "GT"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRE", "k", "50001", "LT"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRE", "k", "50000", "LT", "XX"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":50000\r\n");
        assert_eq!(
            c.cmd(0, &["EXPIREAT", "k", "1700000060", "GT", "XX"]),
            ":1\r\n"
        );
        assert_eq!(c.cmd(0, &["PTTL", "k"]), ":60000\r\n");
        // LT with a past time deletes.
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "-1", "LT"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["EXISTS", "k"]), ":0\r\n");
        // LT on a key without expiry accepts.
        c.cmd(0, &["SET", "k", "v"]);
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "30", "LT"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["TTL", "k"]), ":30\r\n");
        // Options on a missing key answer 0.
        assert_eq!(c.cmd(0, &["EXPIRE", "nope", "30", "NX"]), ":0\r\n");
    }

    #[test]
    fn expire_errors() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        c.cmd(0, &["SET", "k", "v"]);
        let nx_err = "-ERR NX and XX, GT or LT options at the same time are not compatible\r\n";
        for opts in [["NX", "XX"], ["NX", "GT"], ["lt", "nx"]] {
            assert_eq!(c.cmd(0, &["EXPIRE", "k", "10", opts[0], opts[1]]), nx_err);
        }
        assert_eq!(
            c.cmd(0, &["PEXPIRE", "k", "10", "GT", "LT"]),
            "-ERR GT and LT options at the same time are not compatible\r\n"
        );
        assert_eq!(
            c.cmd(0, &["EXPIRE", "k", "10", "XX", "bogus"]),
            "-ERR Unsupported option bogus\r\n"
        );
        // Options are checked before the time.
        assert_eq!(c.cmd(0, &["EXPIRE", "k", "abc", "NX", "XX"]), nx_err);
        assert_eq!(
            c.cmd(0, &["EXPIRE", "k", "abc"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            c.cmd(0, &["EXPIRE", "k", "1.5"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            c.cmd(0, &["EXPIRE", "k"]),
            "-ERR wrong number of arguments for 'expire' command\r\n"
        );
        // Overflow by unit conversion or by adding now.
        assert_eq!(
            c.cmd(0, &["EXPIRE", "k", "9223372036854776"]),
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(
            c.cmd(0, &["EXPIRE", "k", "-9223372036854776"]),
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(
            c.cmd(0, &["EXPIRE", "k", "9223372036854775"]),
            "-ERR invalid expire time in 'expire' command\r\n"
        );
        assert_eq!(
            c.cmd(0, &["PEXPIRE", "k", "9223372036854775807"]),
            "-ERR invalid expire time in 'pexpire' command\r\n"
        );
        assert_eq!(
            c.cmd(0, &["EXPIREAT", "k", "9223372036854776"]),
            "-ERR invalid expire time in 'expireat' command\r\n"
        );
        // The largest absolute times are accepted.
        assert_eq!(c.cmd(0, &["EXPIREAT", "k", "9223372036854775"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["EXPIRETIME", "k"]), ":9223372036854775\r\n");
        assert_eq!(
            c.cmd(0, &["PEXPIREAT", "k", "9223372036854775807"]),
            ":1\r\n"
        );
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "k"]), ":9223372036854775807\r\n");
        assert_eq!(c.cmd(0, &["EXPIRETIME", "k"]), ":9223372036854775\r\n");
        // A negative relative time with a large magnitude deletes.
        assert_eq!(
            c.cmd(0, &["PEXPIRE", "k", "-9223372036854775808"]),
            ":1\r\n"
        );
        assert_eq!(c.cmd(0, &["EXISTS", "k"]), ":0\r\n");
    }

    #[test]
    fn rename_same_shard_and_across() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        for (src, dst) in [keys_on_two_shards(), same_shard_pair()] {
            let (src, dst) = (src.as_str(), dst.as_str());
            c.cmd(0, &["FLUSHALL"]);
            assert_eq!(c.cmd(0, &["RENAME", src, dst]), "-ERR no such key\r\n");
            assert_eq!(c.cmd(0, &["RENAMENX", src, dst]), "-ERR no such key\r\n");
            // A missing source leaves the destination alone.
            c.cmd(0, &["SET", dst, "keep", "PX", "5000"]);
            assert_eq!(c.cmd(0, &["RENAME", src, dst]), "-ERR no such key\r\n");
            assert_eq!(c.cmd(0, &["GET", dst]), "$4\r\nkeep\r\n");
            assert_eq!(c.cmd(0, &["PTTL", dst]), ":5000\r\n");

            // The value and the TTL move; the old destination is replaced.
            c.cmd(0, &["SET", src, "hello", "PX", "20000"]);
            assert_eq!(c.cmd(0, &["RENAMENX", src, dst]), ":0\r\n");
            assert_eq!(c.cmd(0, &["GET", src]), "$5\r\nhello\r\n");
            assert_eq!(c.cmd(0, &["RENAME", src, dst]), "+OK\r\n");
            assert_eq!(c.cmd(0, &["EXISTS", src]), ":0\r\n");
            assert_eq!(c.cmd(0, &["GET", dst]), "$5\r\nhello\r\n");
            assert_eq!(c.cmd(0, &["PTTL", dst]), ":20000\r\n");
            // Without a TTL the destination has none either.
            c.cmd(0, &["SET", src, "x"]);
            assert_eq!(c.cmd(0, &["RENAME", src, dst]), "+OK\r\n");
            assert_eq!(c.cmd(0, &["TTL", dst]), ":-1\r\n");
            // RENAMENX to a free name.
            assert_eq!(c.cmd(0, &["RENAMENX", dst, src]), ":1\r\n");
            assert_eq!(c.cmd(0, &["GET", src]), "$1\r\nx\r\n");
            assert_eq!(c.cmd(0, &["EXISTS", dst]), ":0\r\n");
            // An expired destination does not block RENAMENX.
            c.cmd(0, &["SET", dst, "old", "PX", "1"]);
            c.set_now(T0 + 1);
            assert_eq!(c.cmd(0, &["RENAMENX", src, dst]), ":1\r\n");
            assert_eq!(c.cmd(0, &["GET", dst]), "$1\r\nx\r\n");
            // An expired source is missing.
            c.cmd(0, &["SET", src, "gone", "PX", "1"]);
            c.set_now(T0 + 2);
            assert_eq!(c.cmd(0, &["RENAME", src, dst]), "-ERR no such key\r\n");
            assert_eq!(c.cmd(0, &["GET", dst]), "$1\r\nx\r\n");
            c.set_now(T0);
            // Other databases are not involved.
            assert_eq!(c.cmd(1, &["EXISTS", src, dst]), ":0\r\n");
        }
        // Same key: OK / 0 if it exists, an error if it does not.
        assert_eq!(
            c.cmd(0, &["RENAME", "same", "same"]),
            "-ERR no such key\r\n"
        );
        assert_eq!(
            c.cmd(0, &["RENAMENX", "same", "same"]),
            "-ERR no such key\r\n"
        );
        c.cmd(0, &["SET", "same", "v", "EX", "100"]);
        assert_eq!(c.cmd(0, &["RENAME", "same", "same"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["RENAMENX", "same", "same"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["GET", "same"]), "$1\r\nv\r\n");
        assert_eq!(c.cmd(0, &["TTL", "same"]), ":100\r\n");
    }

    #[test]
    fn rename_keeps_counts_straight() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        let (src, dst) = keys_on_two_shards();
        c.cmd(0, &["SET", &src, "v", "EX", "10"]);
        c.cmd(0, &["SET", &dst, "w"]);
        let dirty =
            |c: &TestCluster| -> u64 { (0..4).map(|s| c.with_shard(s, |sh| sh.stats.dirty)).sum() };
        let before = dirty(&c);
        assert_eq!(c.cmd(0, &["RENAME", &src, &dst]), "+OK\r\n");
        assert_eq!(dirty(&c), before + 1);
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":1\r\n");
        let volatile: usize = (0..4)
            .map(|s| c.with_shard(s, |sh| sh.db(0).volatile_len()))
            .sum();
        assert_eq!(volatile, 1);
    }

    #[test]
    fn keys_pattern() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        for k in ["one", "two", "three", "four", ""] {
            c.cmd(0, &["SET", k, "v"]);
        }
        c.cmd(0, &["SET", "tmp", "v", "PX", "5"]);
        let sorted = |reply: String| -> Vec<String> {
            let mut v = parse_array(&reply);
            v.sort();
            v
        };
        assert_eq!(
            sorted(c.cmd(0, &["KEYS", "*"])),
            ["", "four", "one", "three", "tmp", "two"]
        );
        c.set_now(T0 + 5);
        // Expired keys are skipped; a lone * includes the empty key.
        assert_eq!(
            sorted(c.cmd(0, &["KEYS", "*"])),
            ["", "four", "one", "three", "two"]
        );
        assert_eq!(sorted(c.cmd(0, &["KEYS", "t*"])), ["three", "two"]);
        assert_eq!(sorted(c.cmd(0, &["KEYS", "*o*"])), ["four", "one", "two"]);
        assert_eq!(sorted(c.cmd(0, &["KEYS", "?n?"])), ["one"]);
        assert_eq!(c.cmd(0, &["KEYS", "zz*"]), "*0\r\n");
        assert_eq!(c.cmd(1, &["KEYS", "*"]), "*0\r\n");
        assert_eq!(c.cmd(0, &["KEYS", "one"]), "*1\r\n$3\r\none\r\n");
    }

    /// Parses a flat RESP array of bulk strings.
    fn parse_array(reply: &str) -> Vec<String> {
        let (items, rest) = parse_value(reply);
        assert!(rest.is_empty(), "trailing bytes in {reply:?}");
        match items {
            Value::Array(v) => v
                .into_iter()
                .map(|x| match x {
                    Value::Bulk(s) => s,
                    Value::Array(_) => panic!("nested array in {reply:?}"),
                })
                .collect(),
            Value::Bulk(_) => panic!("not an array: {reply:?}"),
        }
    }

    enum Value {
        Bulk(String),
        Array(Vec<Value>),
    }

    fn parse_value(s: &str) -> (Value, &str) {
        let (line, rest) = s.split_once("\r\n").expect("a line");
        let n: usize = line[1..].parse().expect("a length");
        match &line[..1] {
            "$" => (Value::Bulk(rest[..n].to_string()), &rest[n + 2..]),
            "*" => {
                let mut items = Vec::with_capacity(n);
                let mut rest = rest;
                for _ in 0..n {
                    let (v, r) = parse_value(rest);
                    items.push(v);
                    rest = r;
                }
                (Value::Array(items), rest)
            }
            _ => panic!("unexpected reply {s:?}"),
        }
    }

    /// One SCAN call: (next cursor, keys).
    fn scan_once(
        c: &TestCluster,
        db: usize,
        cursor: &str,
        extra: &[&str],
    ) -> (String, Vec<String>) {
        let mut args = vec!["SCAN", cursor];
        args.extend_from_slice(extra);
        let reply = c.cmd(db, &args);
        match parse_value(&reply) {
            (Value::Array(mut v), "") if v.len() == 2 => {
                let keys = match v.pop() {
                    Some(Value::Array(keys)) => keys
                        .into_iter()
                        .map(|k| match k {
                            Value::Bulk(s) => s,
                            Value::Array(_) => panic!("{reply:?}"),
                        })
                        .collect(),
                    _ => panic!("{reply:?}"),
                };
                match v.pop() {
                    Some(Value::Bulk(cur)) => (cur, keys),
                    _ => panic!("{reply:?}"),
                }
            }
            _ => panic!("bad SCAN reply {reply:?}"),
        }
    }

    /// A full SCAN iteration; `between` runs after every call. Returns how
    /// often each key was returned, and the number of calls.
    fn scan_all(
        c: &TestCluster,
        extra: &[&str],
        mut between: impl FnMut(usize),
    ) -> (HashMap<String, usize>, usize) {
        let mut seen = HashMap::new();
        let mut cursor = "0".to_string();
        let mut calls = 0;
        loop {
            let (next, keys) = scan_once(c, 0, &cursor, extra);
            calls += 1;
            assert!(calls < 100_000, "SCAN does not end");
            for k in keys {
                *seen.entry(k).or_insert(0) += 1;
            }
            between(calls);
            if next == "0" {
                return (seen, calls);
            }
            cursor = next;
        }
    }

    #[test]
    fn scan_returns_every_key_once() {
        let c = TestCluster::new(4);
        let mut mset = vec!["MSET".to_string()];
        for i in 0..2000 {
            mset.push(format!("key:{i}"));
            mset.push("v".into());
        }
        let args: Vec<&str> = mset.iter().map(String::as_str).collect();
        assert_eq!(c.cmd(0, &args), "+OK\r\n");

        let (seen, calls) = scan_all(&c, &["COUNT", "10"], |_| {});
        assert_eq!(seen.len(), 2000);
        assert!(seen.values().all(|&n| n == 1), "a key was returned twice");
        assert!(calls > 2000 / 128, "COUNT 10 took only {calls} calls");

        let (seen, _) = scan_all(&c, &[], |_| {});
        assert_eq!(seen.len(), 2000);

        // MATCH
        let (seen, _) = scan_all(&c, &["MATCH", "key:1??", "COUNT", "10"], |_| {});
        let mut got: Vec<_> = seen.into_keys().collect();
        got.sort();
        let mut want: Vec<_> = (100..200).map(|i| format!("key:{i}")).collect();
        want.sort();
        assert_eq!(got, want);

        // TYPE (case-insensitive), alone and with MATCH.
        let (seen, _) = scan_all(&c, &["TYPE", "STRING", "COUNT", "50"], |_| {});
        assert_eq!(seen.len(), 2000);
        let (seen, _) = scan_all(&c, &["TYPE", "hash"], |_| {});
        assert!(seen.is_empty());
        let (seen, _) = scan_all(&c, &["MATCH", "key:19*", "TYPE", "string"], |_| {});
        assert_eq!(seen.len(), 111);

        // A COUNT larger than the keyspace visits every shard in one call.
        let (seen, calls) = scan_all(&c, &["COUNT", "100000"], |_| {});
        assert_eq!((seen.len(), calls), (2000, 1));

        // An empty database ends in one call with cursor 0, as in Redis.
        assert_eq!(scan_once(&c, 1, "0", &[]), ("0".to_string(), vec![]));
    }

    #[test]
    fn scan_survives_inserts_and_splits() {
        let c = TestCluster::new(4);
        for i in 0..1000 {
            c.cmd(0, &["SET", &format!("old:{i}"), "v"]);
        }
        let pages_before: usize = (0..4)
            .map(|s| c.with_shard(s, |sh| sh.db(0).pages().len()))
            .sum();
        let mut added = 0;
        let (seen, _) = scan_all(&c, &["COUNT", "10"], |_| {
            for _ in 0..100 {
                c.cmd(0, &["SET", &format!("new:{added}"), "v"]);
                added += 1;
            }
        });
        let pages_after: usize = (0..4)
            .map(|s| c.with_shard(s, |sh| sh.db(0).pages().len()))
            .sum();
        assert!(pages_after > pages_before + 4, "pages did not split");
        for i in 0..1000 {
            assert_eq!(seen.get(&format!("old:{i}")), Some(&1), "old:{i}");
        }
        assert!(seen.values().all(|&n| n == 1));
    }

    #[test]
    fn scan_skips_and_deletes_expired() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        for i in 0..100 {
            c.cmd(0, &["SET", &format!("k{i}"), "v"]);
            c.cmd(0, &["SET", &format!("t{i}"), "v", "PX", "10"]);
        }
        c.set_now(T0 + 10);
        let (seen, _) = scan_all(&c, &[], |_| {});
        assert_eq!(seen.len(), 100);
        assert!(seen.keys().all(|k| k.starts_with('k')));
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":100\r\n");
    }

    #[test]
    fn scan_errors_and_odd_cursors() {
        let c = TestCluster::new(4);
        c.cmd(0, &["SET", "a", "v"]);
        for bad in ["abc", "1x", " 1", "-", "18446744073709551616"] {
            assert_eq!(c.cmd(0, &["SCAN", bad]), "-ERR invalid cursor\r\n", "{bad}");
        }
        // The cursor is checked before the options.
        assert_eq!(
            c.cmd(0, &["SCAN", "x", "COUNT", "0"]),
            "-ERR invalid cursor\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SCAN", "0", "COUNT", "0"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SCAN", "0", "COUNT", "-1"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SCAN", "0", "COUNT", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(c.cmd(0, &["SCAN", "0", "COUNT"]), "-ERR syntax error\r\n");
        assert_eq!(
            c.cmd(0, &["SCAN", "0", "BOGUS", "1"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SCAN"]),
            "-ERR wrong number of arguments for 'scan' command\r\n"
        );
        // A cursor naming a shard that does not exist ends the iteration.
        assert_eq!(c.cmd(0, &["SCAN", "65535"]), "*2\r\n$1\r\n0\r\n*0\r\n");
        assert_eq!(c.cmd(0, &["SCAN", "-1"]), "*2\r\n$1\r\n0\r\n*0\r\n");
        // A position inside the hash space resumes from there, in shard 2 or,
        // once shard 2 is done, in shard 3 (or the iteration ends).
        let (next, _) = scan_once(&c, 0, &format!("{}", (1u64 << 63) | 2), &[]);
        let next: u64 = next.parse().unwrap();
        assert!(next == 0 || next & 0xFFFF >= 2, "{next}");
        // The last shard ends with cursor 0.
        assert_eq!(scan_once(&c, 0, "3", &["COUNT", "1000"]).0, "0");
    }

    #[test]
    fn scan_after_flush_does_not_repeat() {
        let c = TestCluster::new(1);
        for i in 0..1000 {
            c.cmd(0, &["SET", &format!("k{i}"), "v"]);
        }
        let (cursor, first) = scan_once(&c, 0, "0", &["COUNT", "200"]);
        assert_ne!(cursor, "0");
        // After a flush the table is one page again (100 keys do not split
        // it); resuming skips what lies before the cursor's position, which
        // the first call already returned.
        c.cmd(0, &["FLUSHDB"]);
        for i in 0..100 {
            c.cmd(0, &["SET", &format!("k{i}"), "v"]);
        }
        assert_eq!(c.with_shard(0, |sh| sh.db(0).pages().len()), 1);
        let mut seen: HashSet<String> = first.into_iter().collect();
        let mut cursor = cursor;
        while cursor != "0" {
            let (next, keys) = scan_once(&c, 0, &cursor, &["COUNT", "200"]);
            for k in keys {
                assert!(seen.insert(k.clone()), "{k} returned twice");
            }
            cursor = next;
        }
        for i in 0..100 {
            assert!(seen.contains(&format!("k{i}")), "k{i} missed");
        }
    }

    #[test]
    fn randomkey_weighted_and_skips_expired() {
        let c = TestCluster::new(4);
        c.set_now(T0);
        assert_eq!(c.cmd(0, &["RANDOMKEY"]), "$-1\r\n");
        c.cmd(0, &["SET", "only", "v"]);
        for _ in 0..20 {
            assert_eq!(c.cmd(0, &["RANDOMKEY"]), "$4\r\nonly\r\n");
        }
        for i in 0..200 {
            c.cmd(0, &["SET", &format!("k{i}"), "v"]);
        }
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            let r = c.cmd(0, &["RANDOMKEY"]);
            let (v, _) = parse_value(&r);
            match v {
                Value::Bulk(k) => {
                    seen.insert(k);
                }
                Value::Array(_) => panic!("{r:?}"),
            }
        }
        assert!(seen.len() > 150, "only {} distinct keys", seen.len());
        let shards: HashSet<usize> = seen.iter().map(|k| shard_of(k.as_bytes(), 4)).collect();
        assert_eq!(shards.len(), 4);

        // Expired keys are never returned (and are deleted when drawn).
        c.cmd(0, &["FLUSHALL"]);
        for i in 0..100 {
            c.cmd(0, &["SET", &format!("t{i}"), "v", "PX", "10"]);
        }
        c.cmd(0, &["SET", "live", "v"]);
        c.set_now(T0 + 10);
        for _ in 0..20 {
            assert_eq!(c.cmd(0, &["RANDOMKEY"]), "$4\r\nlive\r\n");
        }
        c.cmd(0, &["DEL", "live"]);
        assert_eq!(c.cmd(0, &["RANDOMKEY"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":0\r\n");
    }
}
