//! String commands: GET, SET and friends.

use crate::command::flags::*;
use crate::command::{group_by_shard, join_all, Args, Cluster, CommandSpec, Exec, LocalBoxFuture};
use crate::error::{CmdResult, Error};
use crate::reply::Reply;
use crate::resp::{self, parse_i64};
use crate::shard::ExecCtx;
use crate::value::Value;

const fn cmd(
    name: &'static str,
    arity: i32,
    flags: u32,
    keys: (i32, i32, i32),
    summary: &'static str,
    exec: Exec,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group: "string",
        summary,
        exec,
    }
}

pub static COMMANDS: &[CommandSpec] = &[
    cmd("get", 2, READONLY | FAST, (1, 1, 1), "Returns the string value of a key.", Exec::Shard(get)),
    cmd("set", -3, WRITE | DENYOOM, (1, 1, 1), "Sets the string value of a key, ignoring its type. The key is created if it doesn't exist.", Exec::Shard(set)),
    cmd("mget", -2, READONLY | FAST, (1, -1, 1), "Atomically returns the string values of one or more keys.", Exec::Keys { shard: mget, cross: mget_cross }),
    cmd("mset", -3, WRITE | DENYOOM, (1, -1, 2), "Atomically creates or modifies the string values of one or more keys.", Exec::Keys { shard: mset, cross: mset_cross }),
];

/// The string value of a key for reading: None if absent, WRONGTYPE if the
/// key holds another type.
pub fn read_str<'c>(ctx: &'c mut ExecCtx<'_>, key: &[u8]) -> Result<Option<&'c [u8]>, Error> {
    match ctx.lookup_read(key) {
        None => Ok(None),
        Some(e) => match &e.value {
            Value::Str(s) => Ok(Some(s)),
            #[allow(unreachable_patterns)]
            _ => Err(Error::WrongType),
        },
    }
}

/// Parses an integer argument (Redis's getLongLongFromObjectOrReply).
pub fn arg_i64(a: &[u8]) -> Result<i64, Error> {
    parse_i64(a).ok_or(Error::NotInteger)
}

fn get(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    match read_str(ctx, args.get(1))? {
        Some(v) => resp::write_bulk(out, v),
        None => resp::write_null(out),
    }
    Ok(())
}

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

fn set(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let (mut nx, mut xx, mut want_get) = (false, false, false);
    let mut expire = ExpireOpt::None;
    // (argument index, seconds?, relative?) of the expiry value.
    let mut expire_arg_at: Option<(usize, bool, bool)> = None;
    let mut keepttl = false;
    let mut i = 3;
    while i < args.len() {
        let opt = args.get(i);
        let has_next = i + 1 < args.len();
        let unit = |o: &[u8]| -> Option<(bool, bool)> {
            if o.eq_ignore_ascii_case(b"ex") {
                Some((true, true))
            } else if o.eq_ignore_ascii_case(b"px") {
                Some((false, true))
            } else if o.eq_ignore_ascii_case(b"exat") {
                Some((true, false))
            } else if o.eq_ignore_ascii_case(b"pxat") {
                Some((false, false))
            } else {
                None
            }
        };
        if opt.eq_ignore_ascii_case(b"nx") && !xx {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") && !nx {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"get") {
            want_get = true;
        } else if opt.eq_ignore_ascii_case(b"keepttl") && expire_arg_at.is_none() {
            keepttl = true;
        } else if let (Some((secs, rel)), true) = (unit(opt), has_next) {
            // A second expiry option of a different unit is a syntax error;
            // the same one repeated is accepted (the last wins), as in Redis.
            if keepttl || expire_arg_at.is_some_and(|(_, s, r)| (s, r) != (secs, rel)) {
                return Err(Error::Syntax);
            }
            expire_arg_at = Some((i + 1, secs, rel));
            i += 1;
        } else {
            return Err(Error::Syntax);
        }
        i += 1;
    }
    if let Some((at, secs, rel)) = expire_arg_at {
        expire = ExpireOpt::At(expire_arg(args.get(at), secs, rel, ctx.now_ms(), "set")?);
    } else if keepttl {
        expire = ExpireOpt::KeepTtl;
    }
    let key = args.get(1);
    let mark = out.len();
    if want_get {
        match read_str(ctx, key)? {
            Some(v) => resp::write_bulk(out, v),
            None => resp::write_null(out),
        }
    }
    let found = ctx.exists(key);
    if (nx && found) || (xx && !found) {
        if !want_get {
            resp::write_null(out);
        }
        return Ok(());
    }
    let value = Value::Str(args.get(2).to_vec());
    match expire {
        ExpireOpt::At(at) => {
            ctx.set(key, value, at);
        }
        ExpireOpt::KeepTtl => {
            ctx.set_keep_ttl(key, value);
        }
        ExpireOpt::None | ExpireOpt::Persist => {
            ctx.set(key, value, 0);
        }
    }
    ctx.dirty(1);
    if !want_get {
        debug_assert_eq!(out.len(), mark);
        resp::write_ok(out);
    }
    Ok(())
}

fn mget(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    resp::write_array_len(out, args.len() - 1);
    for key in args.iter().skip(1) {
        // MGET answers nil for a key of another type instead of WRONGTYPE.
        match read_str(ctx, key) {
            Ok(Some(v)) => resp::write_bulk(out, v),
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
    if args.len() % 2 == 0 {
        return Err(Error::WrongArity("mset".into()));
    }
    for i in (1..args.len()).step_by(2) {
        ctx.set(args.get(i), Value::Str(args.get(i + 1).to_vec()), 0);
    }
    ctx.dirty(((args.len() - 1) / 2) as u64);
    resp::write_ok(out);
    Ok(())
}

/// Splits key/value pairs by shard: (shard, [(key, value)]).
pub fn pairs_by_shard(shards: usize, args: Vec<Vec<u8>>) -> Vec<(usize, Vec<(Vec<u8>, Vec<u8>)>)> {
    let mut groups: Vec<(usize, Vec<(Vec<u8>, Vec<u8>)>)> = Vec::new();
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
        if args.len() % 2 == 0 {
            return Reply::Error(Error::WrongArity("mset".into()));
        }
        let futs = pairs_by_shard(c.shard_count(), args)
            .into_iter()
            .map(|(shard, pairs)| {
                c.run(
                    shard,
                    Box::new(move |sh| {
                        let mut ctx = sh.ctx(db);
                        let n = pairs.len() as u64;
                        for (k, v) in pairs {
                            ctx.set(&k, Value::Str(v), 0);
                        }
                        ctx.dirty(n);
                        Reply::Ok
                    }),
                )
            })
            .collect();
        join_all(futs).await;
        Reply::Ok
    })
}

#[cfg(test)]
mod tests {
    use crate::testkit::TestCluster;

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
}
