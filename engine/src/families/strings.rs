//! String commands: GET, SET and their variants, the multi-key MGET, MSET and
//! MSETNX, counters (INCR, INCRBYFLOAT, ...), and APPEND, STRLEN, GETRANGE,
//! SETRANGE. Behaviour, reply formats and error texts follow Redis 7.0's
//! `t_string.c`.
//!
//! TTL rules, as in Redis: commands that set a whole new value (SET without
//! KEEPTTL, SETNX, SETEX, GETSET, MSET, MSETNX) drop any expiry; commands
//! that change a value in place (INCR and friends, INCRBYFLOAT, APPEND,
//! SETRANGE) keep it.

use crate::command::flags::*;
use crate::command::{
    cmd, group_by_shard, join_all, Args, Cluster, CommandSpec, Exec, LocalBoxFuture, Log,
};
use crate::error::{CmdResult, Error};
use crate::longdouble::LongDouble;
use crate::reply::Reply;
use crate::resp::{self, parse_i64};
use crate::shard::ExecCtx;
use crate::value::{Str, Value};

/// Arity, flags and key positions are Redis 7.0's (`src/commands/*.json`).
pub static COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, READONLY | FAST, Exec::Shard(get), Log::Never)
        .keys(1, 1, 1)
        .doc("string", "Get the value of a key", "1.0.0", "O(1)", "key"),
    cmd("set", -3, WRITE | DENYOOM, Exec::Shard(set), Log::Effect)
        .keys(1, 1, 1)
        .doc("string", "Set the string value of a key", "1.0.0", "O(1)", "key value [NX|XX] [GET] [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|KEEPTTL]")
        .notes(&[
            ("NX|XX", "name=condition since=2.6.12"),
            ("GET", "since=6.2.0"),
            ("EX seconds|...", "name=expiration"),
            ("EX seconds", "since=2.6.12"),
            ("PX milliseconds", "since=2.6.12"),
            ("EXAT unix-time-seconds", "since=6.2.0"),
            ("PXAT unix-time-milliseconds", "since=6.2.0"),
            ("KEEPTTL", "since=6.0.0"),
        ])
        .history(&[
            ("2.6.12", "Added the `EX`, `PX`, `NX` and `XX` options."),
            ("6.0.0", "Added the `KEEPTTL` option."),
            ("6.2.0", "Added the `GET`, `EXAT` and `PXAT` option."),
            ("7.0.0", "Allowed the `NX` and `GET` options to be used together."),
        ]),
    cmd("setnx", 3, WRITE | DENYOOM | FAST, Exec::Shard(setnx), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Set the value of a key, only if the key does not exist", "1.0.0", "O(1)", "key value"),
    cmd("setex", 4, WRITE | DENYOOM, Exec::Shard(setex), Log::Effect)
        .keys(1, 1, 1)
        .doc("string", "Set the value and expiration of a key", "2.0.0", "O(1)", "key seconds value"),
    cmd("psetex", 4, WRITE | DENYOOM, Exec::Shard(psetex), Log::Effect)
        .keys(1, 1, 1)
        .doc("string", "Set the value and expiration in milliseconds of a key", "2.6.0", "O(1)", "key milliseconds value"),
    cmd("getset", 3, WRITE | DENYOOM | FAST, Exec::Shard(getset), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Set the string value of a key and return its old value", "1.0.0", "O(1)", "key value")
        .deprecated("6.2.0", "`SET` with the `!GET` argument"),
    cmd("getdel", 2, WRITE | FAST, Exec::Shard(getdel), Log::Effect)
        .keys(1, 1, 1)
        .doc("string", "Get the value of a key and delete the key", "6.2.0", "O(1)", "key"),
    cmd("getex", -2, WRITE | FAST, Exec::Shard(getex), Log::Effect)
        .keys(1, 1, 1)
        .doc("string", "Get the value of a key and optionally set its expiration", "6.2.0", "O(1)", "key [EX seconds|PX milliseconds|EXAT unix-time-seconds|PXAT unix-time-milliseconds|PERSIST]")
        .notes(&[("EX seconds|...", "name=expiration")]),
    cmd("mget", -2, READONLY | FAST, Exec::Keys { shard: mget, cross: mget_cross }, Log::Never)
        .keys(1, -1, 1)
        .doc("string", "Get the values of all the given keys", "1.0.0", "O(N) where N is the number of keys to retrieve.", "key [key ...]"),
    cmd("mset", -3, WRITE | DENYOOM, Exec::Keys { shard: mset, cross: mset_cross }, Log::Auto)
        .keys(1, -1, 2)
        .doc("string", "Set multiple keys to multiple values", "1.0.1", "O(N) where N is the number of keys to set.", "key value [key value ...]"),
    cmd("msetnx", -3, WRITE | DENYOOM, Exec::Keys { shard: msetnx, cross: msetnx_cross }, Log::Auto)
        .keys(1, -1, 2)
        .doc("string", "Set multiple keys to multiple values, only if none of the keys exist", "1.0.1", "O(N) where N is the number of keys to set.", "key value [key value ...]"),
    cmd("incr", 2, WRITE | DENYOOM | FAST, Exec::Shard(incr), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Increment the integer value of a key by one", "1.0.0", "O(1)", "key"),
    cmd("decr", 2, WRITE | DENYOOM | FAST, Exec::Shard(decr), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Decrement the integer value of a key by one", "1.0.0", "O(1)", "key"),
    cmd("incrby", 3, WRITE | DENYOOM | FAST, Exec::Shard(incrby), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Increment the integer value of a key by the given amount", "1.0.0", "O(1)", "key increment"),
    cmd("decrby", 3, WRITE | DENYOOM | FAST, Exec::Shard(decrby), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Decrement the integer value of a key by the given number", "1.0.0", "O(1)", "key decrement"),
    cmd("incrbyfloat", 3, WRITE | DENYOOM | FAST, Exec::Shard(incrbyfloat), Log::Effect)
        .keys(1, 1, 1)
        .doc("string", "Increment the float value of a key by the given amount", "2.6.0", "O(1)", "key increment")
        .notes(&[("increment", "type=double")]),
    cmd("append", 3, WRITE | DENYOOM | FAST, Exec::Shard(append), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Append a value to a key", "2.0.0", "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation.", "key value"),
    cmd("strlen", 2, READONLY | FAST, Exec::Shard(strlen), Log::Never)
        .keys(1, 1, 1)
        .doc("string", "Get the length of the value stored in a key", "2.2.0", "O(1)", "key"),
    cmd("getrange", 4, READONLY, Exec::Shard(getrange), Log::Never)
        .keys(1, 1, 1)
        .doc("string", "Get a substring of the string stored at a key", "2.4.0", "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.", "key start end"),
    cmd("substr", 4, READONLY, Exec::Shard(getrange), Log::Never)
        .keys(1, 1, 1)
        .doc("string", "Get a substring of the string stored at a key", "1.0.0", "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings.", "key start end")
        .deprecated("2.0.0", "`GETRANGE`"),
    cmd("setrange", 4, WRITE | DENYOOM, Exec::Shard(setrange), Log::Auto)
        .keys(1, 1, 1)
        .doc("string", "Overwrite part of a string at key starting at the specified offset", "2.2.0", "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument.", "key offset value"),
];

// ---------------------------------------------------------------------------
// Lookups and argument parsing shared by the commands below.

/// The bytes of a string value, WRONGTYPE for any other type.
fn str_of(value: &Value) -> Result<&Str, Error> {
    match value {
        Value::Str(s) => Ok(s),
        #[allow(unreachable_patterns)]
        _ => Err(Error::WrongType),
    }
}

/// The string value of a key for reading: None if absent, WRONGTYPE if the
/// key holds another type.
pub fn read_str<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Result<Option<&'c Str>, Error> {
    ctx.lookup_read(key).map(|e| str_of(&e.value)).transpose()
}

/// The string value of a key about to be written (Redis's lookupKeyWrite:
/// no hit/miss counting): None if absent, WRONGTYPE for another type.
fn write_lookup_str<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Result<Option<&'c Str>, Error> {
    ctx.lookup_write(key).map(|e| str_of(&e.value)).transpose()
}

/// The bytes of a string key, to change in place; marks its page modified.
/// Call only for a key already known to hold a string, and only when the
/// value will change.
fn str_mut<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Option<&'c mut Str> {
    match ctx.value_mut(key) {
        Some(Value::Str(s)) => Some(s),
        #[allow(unreachable_patterns)]
        _ => None,
    }
}

/// Gives a string key new contents: in place, keeping its TTL, if it holds
/// a string; as a new key without TTL if it is absent. Callers have checked
/// the type.
fn replace_str(ctx: &mut ExecCtx<'_>, key: &[u8], contents: &[u8]) {
    match str_mut(ctx, key) {
        Some(s) => s.replace(contents),
        None => {
            ctx.set(key, Value::string(contents.to_vec()), 0);
        }
    }
}

/// Parses an integer argument (Redis's getLongLongFromObjectOrReply).
pub fn arg_i64(a: &[u8]) -> Result<i64, Error> {
    parse_i64(a).ok_or(Error::NotInteger)
}

fn get(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    write_value(ctx, args.get(1), out)
}

/// Replies with a key's string value or nil (Redis's getGenericCommand).
fn write_value(ctx: &mut ExecCtx<'_>, key: &[u8], out: &mut Vec<u8>) -> CmdResult {
    match read_str(ctx, key)? {
        Some(v) => v.write_bulk(out),
        None => resp::write_null(out),
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Expiry options (SET, GETEX, SETEX, PSETEX).

/// Expiry options shared by SET and GETEX.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ExpireOpt {
    None,
    /// Absolute Unix milliseconds.
    At(u64),
    KeepTtl,
    Persist,
}

/// Turns an EX/PX/EXAT/PXAT argument into absolute milliseconds, with
/// Redis's checks and error texts (getExpireMillisecondsOrReply).
pub fn expire_arg(
    arg: &[u8],
    unit_seconds: bool,
    relative: bool,
    now_ms: u64,
    cmd: &'static str,
) -> Result<u64, Error> {
    let v = arg_i64(arg)?;
    if v <= 0 || (unit_seconds && v > i64::MAX / 1000) {
        return Err(Error::InvalidExpire(cmd));
    }
    let mut ms = if unit_seconds { v * 1000 } else { v };
    if relative {
        let now = now_ms as i64;
        if ms > i64::MAX - now {
            return Err(Error::InvalidExpire(cmd));
        }
        ms += now;
    }
    Ok(ms as u64)
}

/// Which of EX, PX, EXAT, PXAT gave an expiry.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ExpireUnit {
    Ex,
    Px,
    ExAt,
    PxAt,
}

impl ExpireUnit {
    fn parse(opt: &[u8]) -> Option<Self> {
        [
            (&b"ex"[..], ExpireUnit::Ex),
            (b"px", ExpireUnit::Px),
            (b"exat", ExpireUnit::ExAt),
            (b"pxat", ExpireUnit::PxAt),
        ]
        .into_iter()
        .find(|(name, _)| opt.eq_ignore_ascii_case(name))
        .map(|(_, unit)| unit)
    }

    fn seconds(self) -> bool {
        matches!(self, ExpireUnit::Ex | ExpireUnit::ExAt)
    }

    fn relative(self) -> bool {
        matches!(self, ExpireUnit::Ex | ExpireUnit::Px)
    }
}

/// Which command's options [`parse_extended`] reads.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OptionsOf {
    Set,
    GetEx,
}

/// The options of SET (NX, XX, GET, KEEPTTL) or GETEX (PERSIST) and the
/// expiry options both take.
#[derive(Default, Debug)]
struct Extended {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// The expiry option and the index of its value argument.
    expire: Option<(ExpireUnit, usize)>,
}

/// Parses SET's or GETEX's options with the rules of Redis's
/// parseExtendedStringArgumentsOrReply: NX excludes XX; KEEPTTL, PERSIST and
/// the four expiry options exclude each other, except that one expiry option
/// may repeat (the last value wins); an expiry option without a value, or
/// any option the command does not take, is a syntax error. Only the syntax
/// is checked here: the expiry value is checked later, as Redis does.
fn parse_extended(args: Args<'_>, of: OptionsOf) -> Result<Extended, Error> {
    let set = of == OptionsOf::Set;
    let mut x = Extended::default();
    let mut i = if set { 3 } else { 2 };
    while i < args.len() {
        let opt = args.get(i);
        let is = |name: &[u8]| opt.eq_ignore_ascii_case(name);
        let has_value = i + 1 < args.len();
        if set && is(b"nx") && !x.xx {
            x.nx = true;
        } else if set && is(b"xx") && !x.nx {
            x.xx = true;
        } else if set && is(b"get") {
            x.get = true;
        } else if set && is(b"keepttl") && !x.persist && x.expire.is_none() {
            x.keepttl = true;
        } else if !set && is(b"persist") && !x.keepttl && x.expire.is_none() {
            x.persist = true;
        } else if let Some(unit) = ExpireUnit::parse(opt).filter(|&unit| {
            has_value && !x.keepttl && !x.persist && x.expire.is_none_or(|(prev, _)| prev == unit)
        }) {
            x.expire = Some((unit, i + 1));
            i += 1;
        } else {
            return Err(Error::Syntax);
        }
        i += 1;
    }
    Ok(x)
}

impl Extended {
    /// The absolute expiry the options ask for, checked and converted like
    /// Redis's getExpireMillisecondsOrReply; None without an expiry option.
    fn expire_at(
        &self,
        args: Args<'_>,
        now_ms: u64,
        cmd: &'static str,
    ) -> Result<Option<u64>, Error> {
        self.expire
            .map(|(unit, at)| {
                expire_arg(args.get(at), unit.seconds(), unit.relative(), now_ms, cmd)
            })
            .transpose()
    }
}

// ---------------------------------------------------------------------------
// SET and its variants.

fn set(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let x = parse_extended(args, OptionsOf::Set)?;
    // An invalid expiry fails the command before anything is read or written.
    let expire = match x.expire_at(args, ctx.now_ms(), "set")? {
        Some(at) => ExpireOpt::At(at),
        None if x.keepttl => ExpireOpt::KeepTtl,
        None => ExpireOpt::None,
    };
    let key = args.get(1);
    let mark = out.len();
    if x.get {
        write_value(ctx, key, out)?;
    }
    let found = ctx.exists(key);
    if (x.nx && found) || (x.xx && !found) {
        if !x.get {
            resp::write_null(out);
        }
        return Ok(());
    }
    let value = Value::string(args.get(2).to_vec());
    match expire {
        ExpireOpt::At(at) => {
            ctx.set(key, value, at);
            propagate_set(ctx, key, args.get(2), Some(at));
        }
        ExpireOpt::KeepTtl => {
            ctx.set_keep_ttl(key, value);
            ctx.propagate([&b"SET"[..], key, args.get(2), b"KEEPTTL"]);
        }
        ExpireOpt::None | ExpireOpt::Persist => {
            ctx.set(key, value, 0);
            propagate_set(ctx, key, args.get(2), None);
        }
    }
    ctx.dirty(1);
    if !x.get {
        debug_assert_eq!(out.len(), mark);
        resp::write_ok(out);
    }
    Ok(())
}

/// SETNX key value: `:1` if it set the key, `:0` if the key existed.
fn setnx(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    if ctx.exists(key) {
        resp::write_int(out, 0);
        return Ok(());
    }
    ctx.set(key, Value::string(args.get(2).to_vec()), 0);
    ctx.dirty(1);
    resp::write_int(out, 1);
    Ok(())
}

/// SETEX key seconds value.
fn setex(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    set_with_ttl(ctx, args, out, true, "setex")
}

/// PSETEX key milliseconds value.
fn psetex(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    set_with_ttl(ctx, args, out, false, "psetex")
}

fn set_with_ttl(
    ctx: &mut ExecCtx<'_>,
    args: Args<'_>,
    out: &mut Vec<u8>,
    seconds: bool,
    cmd: &'static str,
) -> CmdResult {
    let at = expire_arg(args.get(2), seconds, true, ctx.now_ms(), cmd)?;
    ctx.set(args.get(1), Value::string(args.get(3).to_vec()), at);
    propagate_set(ctx, args.get(1), args.get(3), Some(at));
    ctx.dirty(1);
    resp::write_ok(out);
    Ok(())
}

/// GETSET key value: the old value (or nil); the new one has no TTL.
fn getset(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    write_value(ctx, key, out)?;
    ctx.set(key, Value::string(args.get(2).to_vec()), 0);
    ctx.dirty(1);
    Ok(())
}

/// GETDEL key: the value (or nil), and the key is gone.
fn getdel(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    let found = read_str(ctx, key)?.map(|v| v.write_bulk(out)).is_some();
    if !found {
        resp::write_null(out);
        return Ok(());
    }
    if ctx.remove(key).is_some() {
        ctx.propagate([&b"DEL"[..], key]);
        ctx.dirty(1);
    }
    Ok(())
}

/// GETEX key [EX s | PX ms | EXAT ts | PXAT ms-ts | PERSIST]: the value,
/// and the TTL changed as asked. Without options it is a plain GET.
fn getex(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let x = parse_extended(args, OptionsOf::GetEx)?;
    let key = args.get(1);
    let now = ctx.now_ms();
    // As in Redis, the key is looked up (and its type checked) before the
    // expiry value: a missing key answers nil even with a bad expiry.
    let Some(entry) = ctx.lookup_read(key) else {
        resp::write_null(out);
        return Ok(());
    };
    let had_ttl = entry.is_volatile();
    let value = str_of(&entry.value)?;
    let expire = match x.expire_at(args, now, "getex")? {
        Some(at) => ExpireOpt::At(at),
        None if x.persist => ExpireOpt::Persist,
        None => ExpireOpt::None,
    };
    value.write_bulk(out);
    match expire {
        // Only EXAT/PXAT can name a time already past (EX/PX values are at
        // least 1): the key expires at once.
        ExpireOpt::At(at) if at <= now => {
            ctx.delete_expired(key);
            ctx.propagate([&b"DEL"[..], key]);
            ctx.dirty(1);
        }
        ExpireOpt::At(at) => {
            ctx.set_expire(key, at);
            let mut n = itoa::Buffer::new();
            ctx.propagate([&b"PEXPIREAT"[..], key, n.format(at).as_bytes()]);
            ctx.dirty(1);
        }
        ExpireOpt::Persist if had_ttl => {
            ctx.set_expire(key, 0);
            ctx.propagate([&b"PERSIST"[..], key]);
            ctx.dirty(1);
        }
        ExpireOpt::Persist | ExpireOpt::None | ExpireOpt::KeepTtl => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Multi-key commands.

fn mget(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    resp::write_array_len(out, args.len() - 1);
    for key in args.iter().skip(1) {
        // MGET answers nil for a key of another type instead of WRONGTYPE.
        match read_str(ctx, key) {
            Ok(Some(v)) => v.write_bulk(out),
            _ => resp::write_null(out),
        }
    }
    Ok(())
}

fn mget_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let n = args.len() - 1;
        let groups = group_by_shard(c.shard_count(), args.into_iter().skip(1));
        let mut positions = Vec::new();
        let mut futs = Vec::new();
        for (shard, pos, keys) in groups {
            positions.push(pos);
            futs.push(c.run(
                shard,
                Box::new(move |sh| {
                    let mut ctx = sh.ctx(db);
                    Reply::Array(
                        keys.iter()
                            .map(|k| match read_str(&mut ctx, k) {
                                Ok(Some(v)) => Reply::Bulk(v.to_vec()),
                                _ => Reply::Nil,
                            })
                            .collect(),
                    )
                }),
            ));
        }
        let mut out = vec![Reply::Nil; n];
        for (pos, part) in positions.into_iter().zip(join_all(futs).await) {
            if let Reply::Array(vals) = part {
                for (p, v) in pos.into_iter().zip(vals) {
                    out[p] = v;
                }
            }
        }
        Reply::Array(out)
    })
}

fn mset(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(Error::WrongArity("mset".into()));
    }
    for i in (1..args.len()).step_by(2) {
        ctx.set(args.get(i), Value::string(args.get(i + 1).to_vec()), 0);
    }
    ctx.dirty(((args.len() - 1) / 2) as u64);
    resp::write_ok(out);
    Ok(())
}

/// Key/value pairs, in argument order.
pub type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// Splits key/value pairs by shard: (shard, [(key, value)]).
pub fn pairs_by_shard(shards: usize, args: Vec<Vec<u8>>) -> Vec<(usize, Pairs)> {
    let mut groups: Vec<(usize, Pairs)> = Vec::new();
    let mut it = args.into_iter().skip(1);
    while let (Some(k), Some(v)) = (it.next(), it.next()) {
        let s = crate::keyhash::shard_of(&k, shards);
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => g.1.push((k, v)),
            None => groups.push((s, vec![(k, v)])),
        }
    }
    groups
}

fn mset_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        if args.len().is_multiple_of(2) {
            return Reply::Error(Error::WrongArity("mset".into()));
        }
        let futs = pairs_by_shard(c.shard_count(), args)
            .into_iter()
            .map(|(shard, pairs)| {
                c.run(shard, Box::new(move |sh| set_pairs(&mut sh.ctx(db), pairs)))
            })
            .collect();
        join_all(futs).await;
        Reply::Ok
    })
}

/// Sets key/value pairs without TTL (one shard's part of MSET / MSETNX).
fn set_pairs(ctx: &mut ExecCtx<'_>, pairs: Pairs) -> Reply {
    let n = pairs.len() as u64;
    // The record (this shard's part of the MSET) is encoded after the sets,
    // so that it marks their keys pending; the pairs move into the keyspace,
    // hence the copy when logging.
    let record: Option<Vec<Vec<u8>>> = ctx.shard.log.enabled().then(|| {
        std::iter::once(b"MSET".to_vec())
            .chain(pairs.iter().flat_map(|(k, v)| [k.clone(), v.clone()]))
            .collect()
    });
    for (k, v) in pairs {
        ctx.set(&k, Value::string(v), 0);
    }
    if let Some(args) = record {
        ctx.propagate(args.iter().map(Vec::as_slice));
    }
    ctx.dirty(n);
    Reply::Ok
}

/// Logs `SET key value [PXAT at]`: the canonical record of a string set
/// with an absolute expiry (replay at any later time gives the same key).
pub fn propagate_set(ctx: &mut ExecCtx<'_>, key: &[u8], value: &[u8], expire_at: Option<u64>) {
    match expire_at {
        Some(at) if at != 0 => {
            let mut n = itoa::Buffer::new();
            ctx.propagate([&b"SET"[..], key, value, b"PXAT", n.format(at).as_bytes()]);
        }
        _ => ctx.propagate([&b"SET"[..], key, value]),
    }
}

/// MSETNX on one shard: `:0` and nothing set if any key exists, else all
/// set and `:1`.
fn msetnx(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    if args.len().is_multiple_of(2) {
        return Err(Error::WrongArity("msetnx".into()));
    }
    if (1..args.len()).step_by(2).any(|i| ctx.exists(args.get(i))) {
        resp::write_int(out, 0);
        return Ok(());
    }
    for i in (1..args.len()).step_by(2) {
        ctx.set(args.get(i), Value::string(args.get(i + 1).to_vec()), 0);
    }
    ctx.dirty(((args.len() - 1) / 2) as u64);
    resp::write_int(out, 1);
    Ok(())
}

/// MSETNX across shards, in two rounds under the key locks: first every
/// shard counts which of its keys exist; only if none does anywhere, every
/// shard sets its pairs. So it sets all keys or none.
fn msetnx_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        if args.len().is_multiple_of(2) {
            return Reply::Error(Error::WrongArity("msetnx".into()));
        }
        let groups = pairs_by_shard(c.shard_count(), args);
        let checks = groups
            .iter()
            .map(|(shard, pairs)| {
                let keys: Vec<Vec<u8>> = pairs.iter().map(|(k, _)| k.clone()).collect();
                c.run(
                    *shard,
                    Box::new(move |sh| {
                        let mut ctx = sh.ctx(db);
                        Reply::Int(keys.iter().filter(|k| ctx.exists(k)).count() as i64)
                    }),
                )
            })
            .collect();
        for r in join_all(checks).await {
            match r {
                Reply::Int(0) => {}
                Reply::Int(_) => return Reply::Int(0),
                // A shard that could not answer: set nothing.
                other => return other,
            }
        }
        let sets = groups
            .into_iter()
            .map(|(shard, pairs)| {
                c.run(shard, Box::new(move |sh| set_pairs(&mut sh.ctx(db), pairs)))
            })
            .collect();
        for r in join_all(sets).await {
            if let Reply::Error(_) = r {
                return r;
            }
        }
        Reply::Int(1)
    })
}

// ---------------------------------------------------------------------------
// Counters. They change the value in place, so a TTL stays.

fn incr(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    incr_by(ctx, args.get(1), 1, out)
}

fn decr(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    incr_by(ctx, args.get(1), -1, out)
}

fn incrby(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let by = arg_i64(args.get(2))?;
    incr_by(ctx, args.get(1), by, out)
}

fn decrby(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let by = arg_i64(args.get(2))?;
    // -i64::MIN does not exist.
    let by = by
        .checked_neg()
        .ok_or_else(|| Error::msg("ERR decrement would overflow"))?;
    incr_by(ctx, args.get(1), by, out)
}

/// Adds `by` to the integer in a string key (0 if absent) and replies with
/// the sum (Redis's incrDecrCommand).
fn incr_by(ctx: &mut ExecCtx<'_>, key: &[u8], by: i64, out: &mut Vec<u8>) -> CmdResult {
    let old = match write_lookup_str(ctx, key)? {
        // A chunked string is too long to be an integer.
        Some(s) => s.as_plain().and_then(parse_i64).ok_or(Error::NotInteger)?,
        None => 0,
    };
    let new = old.checked_add(by).ok_or(Error::Overflow)?;
    replace_str(ctx, key, itoa::Buffer::new().format(new).as_bytes());
    ctx.dirty(1);
    resp::write_int(out, new);
    Ok(())
}

/// INCRBYFLOAT key increment: the sum as a bulk string, which is also what
/// is stored. As in Redis on x86_64, both numbers are parsed, added and
/// printed as C `long double` (x87 extended precision; see
/// [`crate::longdouble`]), the text being `%.17Lf` without trailing zeros.
fn incrbyfloat(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    // Redis checks the stored value before the increment.
    let old = match write_lookup_str(ctx, key)? {
        // A chunked string is longer than any number Redis parses.
        Some(s) => s
            .as_plain()
            .and_then(LongDouble::parse)
            .ok_or(Error::NotFloat)?,
        None => LongDouble::ZERO,
    };
    let by = LongDouble::parse(args.get(2)).ok_or(Error::NotFloat)?;
    let new = old + by;
    if !new.is_finite() {
        return Err(Error::NanOrInfinity);
    }
    let text = new.to_human();
    replace_str(ctx, key, text.as_bytes());
    // Logged as the resulting value, as Redis does, so replay does not
    // depend on float arithmetic.
    ctx.propagate([&b"SET"[..], key, text.as_bytes(), b"KEEPTTL"]);
    ctx.dirty(1);
    resp::write_bulk(out, text.as_bytes());
    Ok(())
}

// ---------------------------------------------------------------------------
// Partial reads and writes.

/// APPEND key value: the new length. An existing string grows in place (its
/// TTL stays) up to `max_string_len`.
fn append(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let (key, tail) = (args.get(1), args.get(2));
    let len = match write_lookup_str(ctx, key)?.map(Str::len) {
        None => {
            // A new key is the argument itself, which the protocol limit
            // already bounds; Redis checks no length here.
            ctx.set(key, Value::string(tail.to_vec()), 0);
            tail.len()
        }
        Some(old_len) => {
            let total = old_len.saturating_add(tail.len());
            if total > ctx.shard.max_string_len {
                return Err(Error::StringTooLong);
            }
            if !tail.is_empty() {
                if let Some(s) = str_mut(ctx, key) {
                    s.append(tail);
                }
            }
            total
        }
    };
    ctx.dirty(1);
    resp::write_int(out, len as i64);
    Ok(())
}

/// STRLEN key: the length, 0 for a missing key.
fn strlen(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let len = read_str(ctx, args.get(1))?.map_or(0, Str::len);
    resp::write_int(out, len as i64);
    Ok(())
}

/// The byte range GETRANGE returns for `start..=end` (negative counts from
/// the end) of a string of `len` bytes, with Redis 7.0's clamping; None when
/// it is empty.
fn getrange_bounds(start: i64, end: i64, len: usize) -> Option<(usize, usize)> {
    let len = i64::try_from(len).ok()?;
    if start < 0 && end < 0 && start > end {
        return None;
    }
    let start = if start < 0 { start + len } else { start }.max(0);
    let end = if end < 0 { end + len } else { end }.max(0).min(len - 1);
    if len == 0 || start > end {
        return None;
    }
    Some((start as usize, end as usize))
}

/// GETRANGE (and SUBSTR) key start end: an empty string for a missing key or
/// an empty range.
fn getrange(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let start = arg_i64(args.get(2))?;
    let end = arg_i64(args.get(3))?;
    match read_str(ctx, args.get(1))? {
        Some(s) => match getrange_bounds(start, end, s.len()) {
            Some((from, to)) => s.write_bulk_range(out, from, to + 1),
            None => resp::write_bulk(out, b""),
        },
        None => resp::write_bulk(out, b""),
    }
    Ok(())
}

/// SETRANGE key offset value: the new length. Zero bytes pad the gap past
/// the end; the result may not exceed `max_string_len`. An empty value
/// changes nothing (and does not create the key).
fn setrange(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let key = args.get(1);
    let offset = arg_i64(args.get(2))?;
    if offset < 0 {
        return Err(Error::OffsetOutOfRange);
    }
    let patch = args.get(3);
    let max = ctx.shard.max_string_len;
    let end = (offset as u64).saturating_add(patch.len() as u64);
    let too_long = end > max as u64;
    let old_len = write_lookup_str(ctx, key)?.map(Str::len);
    if patch.is_empty() {
        resp::write_int(out, old_len.unwrap_or(0) as i64);
        return Ok(());
    }
    if too_long {
        return Err(Error::StringTooLong);
    }
    // Both fit in usize: end <= max_string_len.
    let (offset, end) = (offset as usize, end as usize);
    let new_len = match old_len {
        None => {
            let mut s = Str::zeros(end);
            s.set_range(offset, patch);
            ctx.set(key, Value::Str(s), 0);
            end
        }
        Some(_) => match str_mut(ctx, key) {
            Some(s) => {
                s.set_range(offset, patch);
                s.len()
            }
            None => 0,
        },
    };
    ctx.dirty(1);
    resp::write_int(out, new_len as i64);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::testkit::TestCluster;

    /// Every string command on values past the chunking threshold (and
    /// growing across it) replies exactly as on the same bytes held plain:
    /// the replies are checked against a plain `Vec<u8>` model.
    #[test]
    fn string_commands_on_chunked_values_reply_as_on_plain_ones() {
        use crate::types::string::{BIG, CHUNK};
        let c = TestCluster::new(2);
        let bulk = |v: &[u8]| {
            let mut out = Vec::new();
            crate::resp::write_bulk(&mut out, v);
            out
        };
        let int = |n: usize| format!(":{n}\r\n").into_bytes();
        let text = |n: usize, seed: u8| -> Vec<u8> {
            (0..n)
                .map(|i| b'a' + ((i + seed as usize) % 26) as u8)
                .collect()
        };
        let mut model = text(BIG - 100, 0);
        assert_eq!(c.exec(0, &[b"SET", b"s", &model]), b"+OK\r\n");
        // APPEND across the threshold, then within chunks and across them.
        for (n, seed) in [(300, 1), (CHUNK - 7, 2), (5, 3), (2 * CHUNK + 1, 4)] {
            let tail = text(n, seed);
            model.extend_from_slice(&tail);
            assert_eq!(c.exec(0, &[b"APPEND", b"s", &tail]), int(model.len()));
        }
        // SETRANGE inside, across chunk boundaries, and past the end.
        for (at, n, seed) in [
            (0, 3, 5),
            (CHUNK - 2, 5, 6),
            (3 * CHUNK - 1, 2, 7),
            (model.len() + 10, 4, 8),
            (6 * CHUNK + 5, CHUNK + 3, 9),
        ] {
            let patch = text(n, seed);
            if model.len() < at + n {
                model.resize(at + n, 0);
            }
            model[at..at + n].copy_from_slice(&patch);
            let offset = at.to_string();
            assert_eq!(
                c.exec(0, &[b"SETRANGE", b"s", offset.as_bytes(), &patch]),
                int(model.len())
            );
        }
        let len = model.len() as i64;
        assert_eq!(c.exec(0, &[b"GET", b"s"]), bulk(&model));
        assert_eq!(c.exec(0, &[b"STRLEN", b"s"]), int(model.len()));
        for (from, to) in [
            (0i64, -1i64),
            (5, 10),
            (CHUNK as i64 - 3, CHUNK as i64 + 3),
            (-(CHUNK as i64) - 1, -2),
            (len - 1, len + 100),
            (10, 5),
            (len + 5, len + 9),
        ] {
            let (f, t) = (from.to_string(), to.to_string());
            let want = {
                let norm = |x: i64| if x < 0 { (x + len).max(0) } else { x };
                let (a, b) = (norm(from), norm(to).min(len - 1));
                if (from < 0 && to < 0 && from > to) || a > b {
                    Vec::new()
                } else {
                    model[a as usize..=b as usize].to_vec()
                }
            };
            assert_eq!(
                c.exec(0, &[b"GETRANGE", b"s", f.as_bytes(), t.as_bytes()]),
                bulk(&want),
                "GETRANGE {from} {to}"
            );
        }
        let mut mget = b"*2\r\n".to_vec();
        mget.extend_from_slice(&bulk(&model));
        mget.extend_from_slice(b"$-1\r\n");
        assert_eq!(c.exec(0, &[b"MGET", b"s", b"nokey"]), mget);
        assert_eq!(
            c.exec(0, &[b"INCR", b"s"]),
            b"-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            c.exec(0, &[b"INCRBYFLOAT", b"s", b"1"]),
            b"-ERR value is not a valid float\r\n"
        );
        assert_eq!(c.exec(0, &[b"GETEX", b"s", b"PX", b"100000"]), bulk(&model));
        assert_eq!(c.exec(0, &[b"GETSET", b"s", b"short"]), bulk(&model));
        assert_eq!(c.exec(0, &[b"GET", b"s"]), bulk(b"short"));
        // A new key by SETRANGE far out is chunked from the start.
        assert_eq!(
            c.exec(0, &[b"SETRANGE", b"z", b"200000", b"x"]),
            int(200_001)
        );
        let mut z = vec![0u8; 200_001];
        z[200_000] = b'x';
        assert_eq!(c.exec(0, &[b"GETDEL", b"z"]), bulk(&z));
        assert_eq!(c.exec(0, &[b"EXISTS", b"z"]), int(0));
    }

    #[test]
    fn get_set_basic() {
        let c = TestCluster::new(3);
        assert_eq!(c.cmd(0, &["GET", "a"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["SET", "a", "1"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["GET", "a"]), "$1\r\n1\r\n");
        assert_eq!(c.cmd(1, &["GET", "a"]), "$-1\r\n");
        assert_eq!(
            c.cmd(0, &["GET"]),
            "-ERR wrong number of arguments for 'get' command\r\n"
        );
    }

    #[test]
    fn set_options() {
        let c = TestCluster::new(1);
        c.set_now(1_000_000);
        assert_eq!(c.cmd(0, &["SET", "a", "1", "NX"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["SET", "a", "2", "NX"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["SET", "a", "3", "XX", "GET"]), "$1\r\n1\r\n");
        assert_eq!(c.cmd(0, &["SET", "b", "3", "XX"]), "$-1\r\n");
        assert_eq!(
            c.cmd(0, &["SET", "a", "1", "NX", "XX"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(c.cmd(0, &["SET", "a", "1", "EX"]), "-ERR syntax error\r\n");
        assert_eq!(
            c.cmd(0, &["SET", "a", "1", "EX", "1", "PX", "5"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SET", "a", "1", "EX", "1", "KEEPTTL"]),
            "-ERR syntax error\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SET", "a", "1", "EX", "0"]),
            "-ERR invalid expire time in 'set' command\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SET", "a", "1", "EX", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(c.cmd(0, &["SET", "t", "v", "PX", "100"]), "+OK\r\n");
        c.set_now(1_000_099);
        assert_eq!(c.cmd(0, &["GET", "t"]), "$1\r\nv\r\n");
        c.set_now(1_000_100);
        assert_eq!(c.cmd(0, &["GET", "t"]), "$-1\r\n");
        // KEEPTTL keeps it; a plain SET clears it.
        assert_eq!(c.cmd(0, &["SET", "t", "v", "EX", "10"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["SET", "t", "w", "KEEPTTL"]), "+OK\r\n");
        c.set_now(1_010_099);
        assert_eq!(c.cmd(0, &["GET", "t"]), "$1\r\nw\r\n");
        assert_eq!(c.cmd(0, &["SET", "t", "x"]), "+OK\r\n");
        c.set_now(1_020_000);
        assert_eq!(c.cmd(0, &["GET", "t"]), "$1\r\nx\r\n");
    }

    #[test]
    fn mget_mset_across_shards() {
        let c = TestCluster::new(4);
        let mut args = vec!["MSET"];
        let keys: Vec<String> = (0..20).map(|i| format!("k{i}")).collect();
        for k in &keys {
            args.push(k);
            args.push(k);
        }
        assert_eq!(c.cmd(0, &args), "+OK\r\n");
        let mut get = vec!["MGET"];
        get.extend(keys.iter().map(String::as_str));
        get.push("missing");
        let mut want = String::from("*21\r\n");
        for k in &keys {
            want.push_str(&format!("${}\r\n{k}\r\n", k.len()));
        }
        want.push_str("$-1\r\n");
        assert_eq!(c.cmd(0, &get), want);
        assert_eq!(
            c.cmd(0, &["MSET", "a", "1", "b"]),
            "-ERR wrong number of arguments for 'mset' command\r\n"
        );
    }

    /// The absolute expiry of `key` in db 0 (None: no such key, Some(0): no
    /// TTL), read straight from the shard that owns it.
    fn expire_at(c: &TestCluster, key: &str) -> Option<u64> {
        let n = crate::Cluster::shard_count(c);
        let hash = crate::keyhash::hash_key(key.as_bytes());
        let shard = crate::keyhash::shard_of_hash(hash, n);
        c.with_shard(shard, |s| {
            s.db(0).get(hash, key.as_bytes()).map(|e| e.expire_at)
        })
    }

    fn dirty(c: &TestCluster) -> u64 {
        (0..crate::Cluster::shard_count(c))
            .map(|i| c.with_shard(i, |s| s.stats.dirty))
            .sum()
    }

    #[test]
    fn table_matches_redis() {
        use crate::command::flags::*;
        /// Name, arity, flags, (first key, last key, step).
        type Row = (&'static str, i32, u32, (i32, i32, i32));
        let want: &[Row] = &[
            ("setnx", 3, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("setex", 4, WRITE | DENYOOM, (1, 1, 1)),
            ("psetex", 4, WRITE | DENYOOM, (1, 1, 1)),
            ("getset", 3, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("getdel", 2, WRITE | FAST, (1, 1, 1)),
            ("getex", -2, WRITE | FAST, (1, 1, 1)),
            ("msetnx", -3, WRITE | DENYOOM, (1, -1, 2)),
            ("incr", 2, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("decr", 2, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("incrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("decrby", 3, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("incrbyfloat", 3, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("append", 3, WRITE | DENYOOM | FAST, (1, 1, 1)),
            ("strlen", 2, READONLY | FAST, (1, 1, 1)),
            ("getrange", 4, READONLY, (1, 1, 1)),
            ("substr", 4, READONLY, (1, 1, 1)),
            ("setrange", 4, WRITE | DENYOOM, (1, 1, 1)),
        ];
        for &(name, arity, flags, keys) in want {
            let spec = crate::command::lookup(name.as_bytes()).expect(name);
            assert_eq!(spec.arity, arity, "{name}");
            assert_eq!(spec.flags, flags, "{name}");
            assert_eq!((spec.first_key, spec.last_key, spec.step), keys, "{name}");
            assert_eq!(spec.group, "string", "{name}");
        }
        let c = TestCluster::new(1);
        assert_eq!(
            c.cmd(0, &["INCRBY", "a"]),
            "-ERR wrong number of arguments for 'incrby' command\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SETEX", "a", "1"]),
            "-ERR wrong number of arguments for 'setex' command\r\n"
        );
        assert_eq!(
            c.cmd(0, &["GETEX"]),
            "-ERR wrong number of arguments for 'getex' command\r\n"
        );
    }

    #[test]
    fn setnx_sets_only_a_missing_key() {
        let c = TestCluster::new(1);
        c.set_now(1_000);
        assert_eq!(c.cmd(0, &["SETNX", "a", "1"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["SETNX", "a", "2"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["GET", "a"]), "$1\r\n1\r\n");
        // An expired key counts as missing.
        assert_eq!(c.cmd(0, &["SET", "t", "old", "PX", "10"]), "+OK\r\n");
        c.set_now(1_010);
        assert_eq!(c.cmd(0, &["SETNX", "t", "new"]), ":1\r\n");
        assert_eq!(expire_at(&c, "t"), Some(0));
        assert_eq!(c.cmd(0, &["GET", "t"]), "$3\r\nnew\r\n");
        assert_eq!(dirty(&c), 3);
    }

    #[test]
    fn setex_and_psetex() {
        let c = TestCluster::new(1);
        c.set_now(1_000_000);
        assert_eq!(c.cmd(0, &["SETEX", "a", "10", "v"]), "+OK\r\n");
        assert_eq!(expire_at(&c, "a"), Some(1_010_000));
        assert_eq!(c.cmd(0, &["PSETEX", "b", "1500", "w"]), "+OK\r\n");
        assert_eq!(expire_at(&c, "b"), Some(1_001_500));
        c.set_now(1_001_499);
        assert_eq!(c.cmd(0, &["GET", "b"]), "$1\r\nw\r\n");
        c.set_now(1_001_500);
        assert_eq!(c.cmd(0, &["GET", "b"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["GET", "a"]), "$1\r\nv\r\n");
        // A plain SET drops the TTL that SETEX gave.
        assert_eq!(c.cmd(0, &["SET", "a", "x"]), "+OK\r\n");
        assert_eq!(expire_at(&c, "a"), Some(0));
        for (line, want) in [
            (
                ["SETEX", "a", "0", "v"],
                "-ERR invalid expire time in 'setex' command\r\n",
            ),
            (
                ["SETEX", "a", "-5", "v"],
                "-ERR invalid expire time in 'setex' command\r\n",
            ),
            (
                ["SETEX", "a", "9223372036854775807", "v"],
                "-ERR invalid expire time in 'setex' command\r\n",
            ),
            (
                ["PSETEX", "a", "0", "v"],
                "-ERR invalid expire time in 'psetex' command\r\n",
            ),
            (
                ["PSETEX", "a", "9223372036854775807", "v"],
                "-ERR invalid expire time in 'psetex' command\r\n",
            ),
            (
                ["SETEX", "a", "1.5", "v"],
                "-ERR value is not an integer or out of range\r\n",
            ),
            (
                ["PSETEX", "a", "x", "v"],
                "-ERR value is not an integer or out of range\r\n",
            ),
        ] {
            assert_eq!(c.cmd(0, &line), want, "{line:?}");
        }
        // The failed commands changed nothing.
        assert_eq!(c.cmd(0, &["GET", "a"]), "$1\r\nx\r\n");
        assert_eq!(expire_at(&c, "a"), Some(0));
    }

    #[test]
    fn getset_and_getdel() {
        let c = TestCluster::new(1);
        c.set_now(5_000);
        assert_eq!(c.cmd(0, &["GETSET", "a", "1"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["GETSET", "a", "22"]), "$1\r\n1\r\n");
        assert_eq!(c.cmd(0, &["GET", "a"]), "$2\r\n22\r\n");
        // GETSET drops the TTL.
        assert_eq!(c.cmd(0, &["SETEX", "t", "100", "v"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["GETSET", "t", "w"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "t"), Some(0));

        let before = dirty(&c);
        assert_eq!(c.cmd(0, &["GETDEL", "a"]), "$2\r\n22\r\n");
        assert_eq!(c.cmd(0, &["GETDEL", "a"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["GET", "a"]), "$-1\r\n");
        assert_eq!(dirty(&c), before + 1);
        // An expired key is not returned by GETDEL.
        assert_eq!(c.cmd(0, &["PSETEX", "e", "1", "v"]), "+OK\r\n");
        c.set_now(5_001);
        assert_eq!(c.cmd(0, &["GETDEL", "e"]), "$-1\r\n");
    }

    #[test]
    fn getex_options() {
        let c = TestCluster::new(1);
        c.set_now(1_000_000);
        assert_eq!(c.cmd(0, &["GETEX", "missing"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["SET", "k", "v", "EX", "100"]), "+OK\r\n");
        let before = dirty(&c);
        // No options: a plain GET that keeps the TTL and changes nothing.
        assert_eq!(c.cmd(0, &["GETEX", "k"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "k"), Some(1_100_000));
        assert_eq!(dirty(&c), before);

        assert_eq!(c.cmd(0, &["GETEX", "k", "EX", "5"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "k"), Some(1_005_000));
        assert_eq!(c.cmd(0, &["GETEX", "k", "px", "250"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "k"), Some(1_000_250));
        assert_eq!(c.cmd(0, &["GETEX", "k", "EXAT", "2000"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "k"), Some(2_000_000));
        assert_eq!(c.cmd(0, &["GETEX", "k", "PXAT", "3000000"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "k"), Some(3_000_000));
        // The same option twice: the last value wins.
        assert_eq!(
            c.cmd(0, &["GETEX", "k", "EX", "1", "EX", "2"]),
            "$1\r\nv\r\n"
        );
        assert_eq!(expire_at(&c, "k"), Some(1_002_000));
        assert_eq!(dirty(&c), before + 5);

        // PERSIST removes the TTL; on a key without one it changes nothing.
        assert_eq!(c.cmd(0, &["GETEX", "k", "PERSIST"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "k"), Some(0));
        assert_eq!(c.cmd(0, &["GETEX", "k", "persist"]), "$1\r\nv\r\n");
        assert_eq!(dirty(&c), before + 6);
        c.set_now(9_000_000);
        assert_eq!(c.cmd(0, &["GET", "k"]), "$1\r\nv\r\n");

        // An absolute time already past: the value is returned, the key goes.
        assert_eq!(c.cmd(0, &["GETEX", "k", "PXAT", "9000000"]), "$1\r\nv\r\n");
        assert_eq!(expire_at(&c, "k"), None);
        assert_eq!(c.cmd(0, &["GET", "k"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["SET", "k", "v"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["GETEX", "k", "EXAT", "1"]), "$1\r\nv\r\n");
        assert_eq!(c.cmd(0, &["GET", "k"]), "$-1\r\n");

        assert_eq!(c.cmd(0, &["SET", "k", "v", "PX", "100"]), "+OK\r\n");
        for line in [
            &["GETEX", "k", "EX"][..],
            &["GETEX", "k", "NX"],
            &["GETEX", "k", "KEEPTTL"],
            &["GETEX", "k", "GET"],
            &["GETEX", "k", "EX", "1", "PX", "1"],
            &["GETEX", "k", "PXAT", "1", "EXAT", "1"],
            &["GETEX", "k", "EX", "1", "PERSIST"],
            &["GETEX", "k", "PERSIST", "EX", "1"],
            &["GETEX", "k", "foo"],
            // Options are checked before the key is looked up.
            &["GETEX", "missing", "bar"],
        ] {
            assert_eq!(c.cmd(0, line), "-ERR syntax error\r\n", "{line:?}");
        }
        for line in [
            &["GETEX", "k", "EX", "0"][..],
            &["GETEX", "k", "PX", "-1"],
            &["GETEX", "k", "EXAT", "0"],
            &["GETEX", "k", "EX", "9223372036854775807"],
            &["GETEX", "k", "PX", "9223372036854775807"],
        ] {
            assert_eq!(
                c.cmd(0, line),
                "-ERR invalid expire time in 'getex' command\r\n",
                "{line:?}"
            );
        }
        assert_eq!(
            c.cmd(0, &["GETEX", "k", "EX", "soon"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        // The failed commands left the TTL alone.
        assert_eq!(expire_at(&c, "k"), Some(9_000_100));
        // The expiry value is only checked for an existing key, as in Redis.
        assert_eq!(c.cmd(0, &["GETEX", "missing", "EX", "0"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["GETEX", "missing", "EX", "x"]), "$-1\r\n");
    }

    #[test]
    fn set_option_rules() {
        let c = TestCluster::new(1);
        c.set_now(1_000);
        for line in [
            &["SET", "a", "1", "PERSIST"][..],
            &["SET", "a", "1", "KEEPTTL", "EX", "1"],
            &["SET", "a", "1", "XX", "NX"],
            &["SET", "a", "1", "PX", "1", "EXAT", "5"],
        ] {
            assert_eq!(c.cmd(0, line), "-ERR syntax error\r\n", "{line:?}");
        }
        assert_eq!(c.cmd(0, &["SET", "a", "1", "NX", "NX", "GET"]), "$-1\r\n");
        assert_eq!(
            c.cmd(0, &["SET", "a", "2", "PX", "5", "PX", "7", "GET"]),
            "$1\r\n1\r\n"
        );
        assert_eq!(expire_at(&c, "a"), Some(1_007));
        assert_eq!(c.cmd(0, &["SET", "a", "3", "PXAT", "5000"]), "+OK\r\n");
        assert_eq!(expire_at(&c, "a"), Some(5_000));
        // The expiry is checked before GET replies.
        assert_eq!(
            c.cmd(0, &["SET", "a", "4", "GET", "EX", "0"]),
            "-ERR invalid expire time in 'set' command\r\n"
        );
        assert_eq!(c.cmd(0, &["GET", "a"]), "$1\r\n3\r\n");
    }

    #[test]
    fn msetnx_on_one_shard() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["MSETNX", "a", "1", "b", "2"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["MSETNX", "c", "3", "a", "9"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["GET", "c"]), "$-1\r\n");
        assert_eq!(c.cmd(0, &["GET", "a"]), "$1\r\n1\r\n");
        // A key named twice: the last value wins.
        assert_eq!(c.cmd(0, &["MSETNX", "d", "1", "d", "2"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["GET", "d"]), "$1\r\n2\r\n");
        assert_eq!(dirty(&c), 4);
        assert_eq!(
            c.cmd(0, &["MSETNX", "x", "1", "y"]),
            "-ERR wrong number of arguments for 'msetnx' command\r\n"
        );
        assert_eq!(c.cmd(0, &["GET", "x"]), "$-1\r\n");
    }

    #[test]
    fn msetnx_across_shards_is_all_or_nothing() {
        let c = TestCluster::new(4);
        c.set_now(1_000);
        let keys: Vec<String> = (0..16).map(|i| format!("key:{i}")).collect();
        let shards: std::collections::HashSet<usize> = keys
            .iter()
            .map(|k| crate::keyhash::shard_of(k.as_bytes(), 4))
            .collect();
        assert!(shards.len() > 1, "the keys must span shards");
        let mut line = vec!["MSETNX"];
        for k in &keys {
            line.push(k);
            line.push("v");
        }
        // One key, on whatever shard owns it, already exists: nothing is set.
        let last = keys.last().map(String::as_str).unwrap_or_default();
        assert_eq!(c.cmd(0, &["SET", last, "old"]), "+OK\r\n");
        let before = dirty(&c);
        assert_eq!(c.cmd(0, &line), ":0\r\n");
        assert_eq!(dirty(&c), before);
        for k in &keys[..keys.len() - 1] {
            assert_eq!(c.cmd(0, &["GET", k]), "$-1\r\n", "{k} was set");
        }
        assert_eq!(c.cmd(0, &["GET", last]), "$3\r\nold\r\n");

        // Once that key has expired, every key is set, without TTL.
        assert_eq!(c.cmd(0, &["PSETEX", last, "10", "old"]), "+OK\r\n");
        c.set_now(1_010);
        let before = dirty(&c);
        assert_eq!(c.cmd(0, &line), ":1\r\n");
        assert_eq!(dirty(&c), before + keys.len() as u64);
        for k in &keys {
            assert_eq!(c.cmd(0, &["GET", k]), "$1\r\nv\r\n");
            assert_eq!(expire_at(&c, k), Some(0));
        }
        assert_eq!(c.cmd(0, &line), ":0\r\n");
        assert_eq!(
            c.cmd(0, &["MSETNX", "key:0", "1", "key:1"]),
            "-ERR wrong number of arguments for 'msetnx' command\r\n"
        );
    }

    #[test]
    fn incr_family() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["INCR", "n"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["INCRBY", "n", "41"]), ":42\r\n");
        assert_eq!(c.cmd(0, &["DECR", "n"]), ":41\r\n");
        assert_eq!(c.cmd(0, &["DECRBY", "n", "50"]), ":-9\r\n");
        assert_eq!(c.cmd(0, &["GET", "n"]), "$2\r\n-9\r\n");
        assert_eq!(c.cmd(0, &["DECR", "m"]), ":-1\r\n");
        assert_eq!(c.cmd(0, &["DECRBY", "m2", "-5"]), ":5\r\n");
        assert_eq!(c.cmd(0, &["INCRBY", "n", "-1"]), ":-10\r\n");

        assert_eq!(c.cmd(0, &["SET", "max", "9223372036854775807"]), "+OK\r\n");
        assert_eq!(
            c.cmd(0, &["INCR", "max"]),
            "-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(c.cmd(0, &["SET", "min", "-9223372036854775808"]), "+OK\r\n");
        assert_eq!(
            c.cmd(0, &["DECR", "min"]),
            "-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(
            c.cmd(0, &["INCRBY", "min", "-1"]),
            "-ERR increment or decrement would overflow\r\n"
        );
        assert_eq!(
            c.cmd(0, &["INCRBY", "min", "9223372036854775807"]),
            ":-1\r\n"
        );
        assert_eq!(
            c.cmd(0, &["DECRBY", "n", "-9223372036854775808"]),
            "-ERR decrement would overflow\r\n"
        );
        assert_eq!(c.cmd(0, &["GET", "max"]), "$19\r\n9223372036854775807\r\n");

        for v in [
            "abc",
            " 1",
            "1 ",
            "01",
            "1.5",
            "",
            "+1",
            "-0",
            "9223372036854775808",
        ] {
            assert_eq!(c.cmd(0, &["SET", "bad", v]), "+OK\r\n");
            assert_eq!(
                c.cmd(0, &["INCR", "bad"]),
                "-ERR value is not an integer or out of range\r\n",
                "{v:?}"
            );
            assert_eq!(
                c.cmd(0, &["GET", "bad"]),
                format!("${}\r\n{v}\r\n", v.len())
            );
        }
        for by in ["x", "1.0", "9223372036854775808", ""] {
            assert_eq!(
                c.cmd(0, &["INCRBY", "n", by]),
                "-ERR value is not an integer or out of range\r\n",
                "{by:?}"
            );
            assert_eq!(
                c.cmd(0, &["DECRBY", "n", by]),
                "-ERR value is not an integer or out of range\r\n",
                "{by:?}"
            );
        }
        assert_eq!(c.cmd(0, &["GET", "n"]), "$3\r\n-10\r\n");
    }

    #[test]
    fn counters_keep_the_ttl() {
        let c = TestCluster::new(1);
        c.set_now(1_000);
        assert_eq!(c.cmd(0, &["SET", "n", "10", "PX", "100"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["INCR", "n"]), ":11\r\n");
        assert_eq!(c.cmd(0, &["DECRBY", "n", "2"]), ":9\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "n", "0.5"]), "$3\r\n9.5\r\n");
        assert_eq!(c.cmd(0, &["APPEND", "n", "1"]), ":4\r\n");
        assert_eq!(c.cmd(0, &["SETRANGE", "n", "0", "8"]), ":4\r\n");
        assert_eq!(expire_at(&c, "n"), Some(1_100));
        c.set_now(1_099);
        assert_eq!(c.cmd(0, &["GET", "n"]), "$4\r\n8.51\r\n");
        c.set_now(1_100);
        assert_eq!(c.cmd(0, &["GET", "n"]), "$-1\r\n");
        // An expired counter starts again from 0, without TTL.
        assert_eq!(c.cmd(0, &["INCR", "n"]), ":1\r\n");
        assert_eq!(expire_at(&c, "n"), Some(0));
    }

    #[test]
    fn incrbyfloat_values_and_format() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "f", "10.5"]), "$4\r\n10.5\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "f", "0.1"]), "$4\r\n10.6\r\n");
        assert_eq!(c.cmd(0, &["GET", "f"]), "$4\r\n10.6\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "f", "-10.6"]), "$1\r\n0\r\n");
        assert_eq!(c.cmd(0, &["SET", "g", "5.0e3"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "g", "-2.0e3"]), "$4\r\n3000\r\n");
        assert_eq!(c.cmd(0, &["SET", "i", "17179869184"]), "+OK\r\n");
        assert_eq!(
            c.cmd(0, &["INCRBYFLOAT", "i", "1.5"]),
            "$13\r\n17179869185.5\r\n"
        );
        assert_eq!(
            c.cmd(0, &["INCRBYFLOAT", "big", "1e20"]),
            "$21\r\n100000000000000000000\r\n"
        );
        assert_eq!(
            c.cmd(0, &["INCRBYFLOAT", "small", "1.5e-7"]),
            "$10\r\n0.00000015\r\n"
        );
        // Beyond 17 decimals Redis rounds; no negative zero.
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "tiny", "1e-20"]), "$1\r\n0\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "neg", "-1e-20"]), "$1\r\n0\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "z", "-0"]), "$1\r\n0\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "p", "+.5"]), "$3\r\n0.5\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "p", "-3"]), "$4\r\n-2.5\r\n");

        let nan_inf = "-ERR increment would produce NaN or Infinity\r\n";
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "f", "inf"]), nan_inf);
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "f", "-Infinity"]), nan_inf);
        // The largest x87 extended value, plus about half its ulp.
        assert_eq!(
            c.cmd(0, &["SET", "max", "1.18973149535723176502e+4932"]),
            "+OK\r\n"
        );
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "max", "1e4913"]), nan_inf);
        assert_eq!(c.cmd(0, &["SET", "inf", "inf"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "inf", "-inf"]), nan_inf);
        assert_eq!(c.cmd(0, &["GET", "inf"]), "$3\r\ninf\r\n");

        let not_float = "-ERR value is not a valid float\r\n";
        for by in ["abc", "nan", "", " 1", "1 ", "1e5000", "1,5", "0x", "1e"] {
            assert_eq!(c.cmd(0, &["INCRBYFLOAT", "f", by]), not_float, "{by:?}");
        }
        assert_eq!(c.cmd(0, &["GET", "f"]), "$1\r\n0\r\n");
        assert_eq!(c.exec(0, &[b"SET", b"bad", b"1\x002"]), b"+OK\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "bad", "1"]), not_float);
        // The stored value is checked before the increment.
        assert_eq!(c.cmd(0, &["SET", "word", "abc"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["INCRBYFLOAT", "word", "x"]), not_float);
    }

    /// INCRBYFLOAT computes in x87 `long double` like Redis on x86_64.
    /// Every reply here is redis-server 7.0.15's (glibc 2.36).
    #[test]
    fn incrbyfloat_long_double() {
        let c = TestCluster::new(1);
        let not_float = "-ERR value is not a valid float\r\n";
        let nan_inf = "-ERR increment would produce NaN or Infinity\r\n";
        let cases: &[(Option<&str>, &str, &str)] = &[
            (None, "0.1", "0.1"),
            (Some("0.1"), "0.2", "0.3"),
            (Some("10"), "1e-17", "10.00000000000000001"),
            (Some("0"), "123456789.123456789", "123456789.12345678899873747"),
            (Some("0"), "9007199254740993", "9007199254740993"),
            (Some("12345678901234567890"), "-1e3", "12345678901234566890"),
            (Some("17179869184"), "1.5", "17179869185.5"),
            (Some("0"), "0x10", "16"),
            (Some("0"), "0x1.8p3", "12"),
            (Some("0"), "1.5e-5", "0.000015"),
            (Some("0"), "-0.0", "0"),
            (Some("0"), "-1e-20", "0"),
            (Some("0"), "5.0e3", "5000"),
            (Some("0"), ".5", "0.5"),
            (Some("0"), "5.", "5"),
            (Some("0"), "+1", "1"),
            (Some("0"), "3.814697265625e-6", "0.00000381469726562"),
            (Some("0"), "1.1444091796875e-5", "0.00001144409179688"),
            (Some("0"), "2e-4951", "0"),
            (Some("0"), "1e-4950", "0"),
            (Some("0x1p-16445"), "0", "0"),
            (Some("1e308"), "1e308", "199999999999999999993371759311691291321120199694831134415594095989843469737676123744200253843777078640893494450108026446304269499187921167194841628860392837535918200039206381557326219209014213335878306791577877829121087126122536729803237260434173178506889763247582601711514636284849020905456510092687857156096"),
        ];
        for &(old, by, want) in cases {
            match old {
                Some(v) => assert_eq!(c.cmd(0, &["SET", "f", v]), "+OK\r\n"),
                None => drop(c.cmd(0, &["DEL", "f"])),
            }
            let reply = format!("${}\r\n{want}\r\n", want.len());
            assert_eq!(
                c.cmd(0, &["INCRBYFLOAT", "f", by]),
                reply,
                "{old:?} + {by:?}"
            );
            assert_eq!(c.cmd(0, &["GET", "f"]), reply);
        }
        // Beyond the f64 range.
        assert_eq!(c.cmd(0, &["SET", "f", "1.7976931348623157e308"]), "+OK\r\n");
        let sum = c.cmd(0, &["INCRBYFLOAT", "f", "1.7976931348623157e308"]);
        assert!(sum.starts_with("$309\r\n3595386269724631399918420935482088680967"));
        assert!(sum.ends_with("4933726679072768\r\n"), "{sum}");
        assert_eq!(c.cmd(0, &["DEL", "f"]), ":1\r\n");
        let big = c.cmd(0, &["INCRBYFLOAT", "f", "1e400"]);
        assert!(big.starts_with("$401\r\n1000000000000000000028188068394758651"));
        assert!(big.ends_with("343732497430221946880\r\n"), "{big}");
        for (old, by, want) in [
            ("0", "inf", nan_inf),
            ("0", "-INFINITY", nan_inf),
            ("1.18973149535723176502e+4932", "1e4913", nan_inf),
            ("0", "1e5000", not_float),
            ("0", "-1e-5000", not_float),
            ("0", "1.18973149535723176508e+4932", not_float),
            ("0", "0x1p-16446", not_float),
            ("0", "0x1.0000000000000001p-16446", not_float),
            ("0", "infinit", not_float),
            ("0", "0x1p", not_float),
            ("1e5000", "1", not_float),
        ] {
            assert_eq!(c.cmd(0, &["SET", "g", old]), "+OK\r\n");
            assert_eq!(
                c.cmd(0, &["INCRBYFLOAT", "g", by]),
                want,
                "{old:?} + {by:?}"
            );
            assert_eq!(
                c.cmd(0, &["GET", "g"]),
                format!("${}\r\n{old}\r\n", old.len())
            );
        }
    }

    #[test]
    fn append_and_strlen() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["STRLEN", "a"]), ":0\r\n");
        assert_eq!(c.cmd(0, &["APPEND", "a", "Hello"]), ":5\r\n");
        assert_eq!(c.cmd(0, &["APPEND", "a", " World"]), ":11\r\n");
        assert_eq!(c.cmd(0, &["APPEND", "a", ""]), ":11\r\n");
        assert_eq!(c.cmd(0, &["GET", "a"]), "$11\r\nHello World\r\n");
        assert_eq!(c.cmd(0, &["STRLEN", "a"]), ":11\r\n");
        assert_eq!(c.cmd(0, &["APPEND", "e", ""]), ":0\r\n");
        assert_eq!(c.cmd(0, &["GET", "e"]), "$0\r\n\r\n");
        assert_eq!(dirty(&c), 4);

        c.with_shard(0, |s| s.max_string_len = 13);
        assert_eq!(c.cmd(0, &["APPEND", "a", "!!"]), ":13\r\n");
        assert_eq!(
            c.cmd(0, &["APPEND", "a", "!"]),
            "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n"
        );
        assert_eq!(c.cmd(0, &["STRLEN", "a"]), ":13\r\n");
    }

    #[test]
    fn getrange_indices() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["GETRANGE", "missing", "0", "-1"]), "$0\r\n\r\n");
        assert_eq!(c.cmd(0, &["SET", "s", "This is a string"]), "+OK\r\n");
        for (start, end, want) in [
            ("0", "3", "This"),
            ("-3", "-1", "ing"),
            ("0", "-1", "This is a string"),
            ("10", "100", "string"),
            ("5", "3", ""),
            ("-1", "-5", ""),
            ("16", "20", ""),
            // Both far before the start clamp to the first byte (Redis 7.0).
            ("-100", "-50", "T"),
            ("-100", "2", "Thi"),
            ("0", "-100", "T"),
            (
                "-9223372036854775808",
                "9223372036854775807",
                "This is a string",
            ),
        ] {
            assert_eq!(
                c.cmd(0, &["GETRANGE", "s", start, end]),
                format!("${}\r\n{want}\r\n", want.len()),
                "{start} {end}"
            );
        }
        assert_eq!(c.cmd(0, &["SUBSTR", "s", "5", "6"]), "$2\r\nis\r\n");
        assert_eq!(
            c.cmd(0, &["GETRANGE", "s", "a", "1"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(
            c.cmd(0, &["GETRANGE", "missing", "0", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        assert_eq!(c.cmd(0, &["SET", "empty", ""]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["GETRANGE", "empty", "0", "-1"]), "$0\r\n\r\n");
    }

    #[test]
    fn setrange_writes_and_pads() {
        let c = TestCluster::new(1);
        assert_eq!(c.cmd(0, &["SET", "s", "Hello World"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["SETRANGE", "s", "6", "Redis"]), ":11\r\n");
        assert_eq!(c.cmd(0, &["GET", "s"]), "$11\r\nHello Redis\r\n");
        assert_eq!(c.cmd(0, &["SETRANGE", "s", "11", "!"]), ":12\r\n");
        assert_eq!(c.cmd(0, &["SETRANGE", "s", "0", ""]), ":12\r\n");
        assert_eq!(c.cmd(0, &["GET", "s"]), "$12\r\nHello Redis!\r\n");
        assert_eq!(c.cmd(0, &["SETRANGE", "p", "3", "ab"]), ":5\r\n");
        assert_eq!(c.exec(0, &[b"GET", b"p"]), b"$5\r\n\0\0\0ab\r\n");
        assert_eq!(c.cmd(0, &["SETRANGE", "s", "14", "x"]), ":15\r\n");
        assert_eq!(c.exec(0, &[b"GET", b"s"]), b"$15\r\nHello Redis!\0\0x\r\n");

        // An empty value on a missing key creates nothing, whatever the offset.
        let before = dirty(&c);
        assert_eq!(c.cmd(0, &["SETRANGE", "none", "0", ""]), ":0\r\n");
        assert_eq!(
            c.cmd(0, &["SETRANGE", "none", "9999999999999", ""]),
            ":0\r\n"
        );
        assert_eq!(c.cmd(0, &["GET", "none"]), "$-1\r\n");
        assert_eq!(dirty(&c), before);

        assert_eq!(
            c.cmd(0, &["SETRANGE", "s", "-1", "x"]),
            "-ERR offset is out of range\r\n"
        );
        assert_eq!(
            c.cmd(0, &["SETRANGE", "s", "x", "x"]),
            "-ERR value is not an integer or out of range\r\n"
        );
        let too_long = "-ERR string exceeds maximum allowed size (proto-max-bulk-len)\r\n";
        assert_eq!(c.cmd(0, &["SETRANGE", "s", "536870911", "ab"]), too_long);
        assert_eq!(
            c.cmd(0, &["SETRANGE", "n", "9223372036854775807", "ab"]),
            too_long
        );
        assert_eq!(c.cmd(0, &["GET", "n"]), "$-1\r\n");
        c.with_shard(0, |s| s.max_string_len = 16);
        assert_eq!(c.cmd(0, &["SETRANGE", "s", "15", "y"]), ":16\r\n");
        assert_eq!(c.cmd(0, &["SETRANGE", "s", "15", "yz"]), too_long);
        assert_eq!(c.cmd(0, &["SETRANGE", "q", "16", "z"]), too_long);
        assert_eq!(c.cmd(0, &["SETRANGE", "q", "15", "z"]), ":16\r\n");
        assert_eq!(c.cmd(0, &["STRLEN", "s"]), ":16\r\n");
    }
}
