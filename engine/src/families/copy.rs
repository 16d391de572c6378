//! COPY and MOVE: a key's value into another key or another database.
//! Semantics, checks in Redis's order and error texts are Redis 7.0's
//! (`copyCommand` and `moveCommand` in `db.c`). Both keep the source's
//! expiry. Values are cloned through the type seam, which is O(1) for big
//! values (shared chunks and segments, copied on the next write).
//!
//! On one shard both are logged as they arrived (they replay the same).
//! COPY across shards reads the source on its shard and writes the copy on
//! the destination's, under locks on both keys; its record there is the
//! value's recreating commands (after a `DEL` of a replaced key).

use crate::command::flags::*;
use crate::command::{cmd, run_value, Args, Cluster, CommandSpec, Exec, LocalBoxFuture, Log};
use crate::error::{CmdResult, Error};
use crate::families::strings::arg_i64;
use crate::keyhash::shard_of;
use crate::reply::Reply;
use crate::resp;
use crate::shard::{ExecCtx, Shard};
use crate::value::Value;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("copy", -3, WRITE | DENYOOM, Exec::Keys { shard: copy, cross: copy_cross }, Log::Auto)
        .keys(1, 2, 1)
        .doc("generic", "Copy a key", "6.2.0", "O(N) worst case for collections, where N is the number of nested items. O(1) for string values.", "source destination [DB destination-db] [REPLACE]")
        .notes(&[("DB destination-db", "type=integer")]),
    cmd("move", 3, WRITE | FAST, Exec::Shard(move_cmd), Log::Auto)
        .keys(1, 1, 1)
        .doc("generic", "Move a key to another database", "1.0.0", "O(1)", "key db")
        .notes(&[("db", "type=integer")]),
];

/// A database index argument: Redis's `getIntFromObjectOrReply` then
/// `selectDb`.
fn db_index(arg: &[u8], dbs: usize) -> Result<usize, Error> {
    let n = arg_i64(arg)?;
    if i32::try_from(n).is_err() {
        return Err(Error::msg(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ));
    }
    usize::try_from(n)
        .ok()
        .filter(|&n| n < dbs)
        .ok_or(Error::DbIndexOutOfRange)
}

/// COPY's options: (destination database, REPLACE).
fn copy_options(args: &[&[u8]], db: usize, dbs: usize) -> Result<(usize, bool), Error> {
    let (mut to_db, mut replace) = (db, false);
    let mut j = 3;
    while j < args.len() {
        let opt = args[j];
        if opt.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"db") && j + 1 < args.len() {
            to_db = db_index(args[j + 1], dbs)?;
            j += 1;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    if to_db == db && args[1] == args[2] {
        return Err(same_objects());
    }
    Ok((to_db, replace))
}

fn same_objects() -> Error {
    Error::msg("ERR source and destination objects are the same")
}

/// Puts a copy of a value at `key` of this context's database: 0 when the
/// key exists and `replace` is off, else 1 (a replaced value is freed as
/// an implicit delete). `log`: write the records that recreate it (COPY
/// across shards).
fn put_copy(
    ctx: &mut ExecCtx<'_>,
    key: &[u8],
    value: Value,
    expire_at: u64,
    replace: bool,
    log: bool,
) -> i64 {
    if ctx.exists(key) {
        if !replace {
            return 0;
        }
        let lazy = ctx.shard.lazyfree.settings.server_del;
        ctx.delete(key, lazy);
        if log {
            ctx.propagate([&b"DEL"[..], key]);
        }
    }
    if log {
        crate::families::propagate_entry(ctx, key, &value, expire_at);
    }
    ctx.set(key, value, expire_at);
    ctx.dirty(1);
    1
}

/// COPY source destination [DB destination-db] [REPLACE], both keys on
/// this shard.
fn copy(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let all: Vec<&[u8]> = args.iter().collect();
    let (to_db, replace) = copy_options(&all, ctx.db, ctx.shard.databases())?;
    let Some((value, expire_at)) = ctx
        .lookup_read(all[1])
        .map(|e| (e.value.clone(), e.expire_at))
    else {
        resp::write_int(out, 0);
        return Ok(());
    };
    let mut dst = ExecCtx {
        shard: &mut *ctx.shard,
        db: to_db,
    };
    let n = put_copy(&mut dst, all[2], value, expire_at, replace, false);
    resp::write_int(out, n);
    Ok(())
}

/// COPY across shards: the options are checked and the source read on the
/// source's shard, then the copy is put on the destination's.
fn copy_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let n = c.shard_count();
        let (Some(src), Some(dst)) = (args.get(1), args.get(2)) else {
            return Reply::Error(Error::WrongArity("copy".into()));
        };
        let (from, to) = (shard_of(src, n), shard_of(dst, n));
        let dst = dst.clone();
        let read = move |sh: &mut Shard| {
            let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            let (to_db, replace) = copy_options(&refs, db, sh.databases())?;
            let found = sh
                .ctx(db)
                .lookup_read(refs[1])
                .map(|e| (e.value.clone(), e.expire_at));
            Ok::<_, Error>((to_db, replace, found))
        };
        let (to_db, replace, found) = match run_value(c, from, read).await {
            Some(Ok(r)) => r,
            Some(Err(e)) => return Reply::Error(e),
            None => return Reply::Error(Error::msg("ERR the source key's shard did not answer")),
        };
        let Some((value, expire_at)) = found else {
            return Reply::Int(0);
        };
        let put = move |sh: &mut Shard| {
            let mut ctx = sh.ctx(to_db);
            Reply::Int(put_copy(&mut ctx, &dst, value, expire_at, replace, true))
        };
        c.run(to, Box::new(put)).await
    })
}

/// MOVE key db.
fn move_cmd(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let to_db = db_index(args.get(2), ctx.shard.databases())?;
    if to_db == ctx.db {
        return Err(same_objects());
    }
    let key = args.get(1);
    if !ctx.exists(key) {
        resp::write_int(out, 0);
        return Ok(());
    }
    let mut dst = ExecCtx {
        shard: &mut *ctx.shard,
        db: to_db,
    };
    if dst.exists(key) {
        resp::write_int(out, 0);
        return Ok(());
    }
    let Some(entry) = ctx.remove(key) else {
        resp::write_int(out, 0);
        return Ok(());
    };
    let mut dst = ExecCtx {
        shard: &mut *ctx.shard,
        db: to_db,
    };
    dst.set(key, entry.value, entry.expire_at);
    ctx.dirty(1);
    resp::write_int(out, 1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::keyhash::shard_of;
    use crate::testkit::TestCluster;

    /// Two keys on different shards of a 4-shard cluster, and one on the
    /// same shard as the first.
    fn keys() -> (String, String, String) {
        let name = |i: usize| format!("k{i}");
        let a = name(0);
        let other = (1..)
            .map(name)
            .find(|k| shard_of(k.as_bytes(), 4) != shard_of(a.as_bytes(), 4));
        let same = (1..)
            .map(name)
            .find(|k| shard_of(k.as_bytes(), 4) == shard_of(a.as_bytes(), 4));
        (a, other.unwrap(), same.unwrap())
    }

    #[test]
    fn copy_keeps_the_expiry_on_one_shard_and_across() {
        let c = TestCluster::new(4);
        c.set_now(1_000_000);
        let (a, other, same) = keys();
        c.cmd(0, &["SET", &a, "v", "PXAT", "5000000"]);
        for dst in [&other, &same] {
            assert_eq!(c.cmd(0, &["COPY", &a, dst]), ":1\r\n", "{dst}");
            assert_eq!(c.cmd(0, &["GET", dst]), "$1\r\nv\r\n");
            assert_eq!(c.cmd(0, &["PEXPIRETIME", dst]), ":5000000\r\n");
            assert_eq!(c.cmd(0, &["COPY", &a, dst]), ":0\r\n", "exists");
        }
        c.cmd(0, &["SET", &a, "w"]);
        assert_eq!(c.cmd(0, &["COPY", &a, &other, "REPLACE"]), ":1\r\n");
        assert_eq!(
            c.cmd(0, &["PEXPIRETIME", &other]),
            ":-1\r\n",
            "the source's (none)"
        );
        assert_eq!(c.cmd(0, &["COPY", &a, &other, "DB", "5"]), ":1\r\n");
        assert_eq!(c.cmd(5, &["GET", &other]), "$1\r\nw\r\n");
        assert_eq!(c.cmd(0, &["COPY", "missing", &other]), ":0\r\n");
        assert_eq!(
            c.cmd(0, &["COPY", &a, &other, "DB", "16"]),
            "-ERR DB index is out of range\r\n"
        );
        assert_eq!(
            c.cmd(0, &["COPY", &a, &a]),
            "-ERR source and destination objects are the same\r\n"
        );
    }

    #[test]
    fn a_copied_big_value_changes_apart_from_its_source() {
        let c = TestCluster::new(1);
        let big = vec![b'x'; 1 << 20];
        c.exec(0, &[b"SET", b"big", &big]);
        assert_eq!(c.cmd(0, &["COPY", "big", "copy"]), ":1\r\n");
        c.cmd(0, &["SETRANGE", "copy", "0", "y"]);
        assert_eq!(c.cmd(0, &["GETRANGE", "big", "0", "0"]), "$1\r\nx\r\n");
        assert_eq!(c.cmd(0, &["GETRANGE", "copy", "0", "1"]), "$2\r\nyx\r\n");
    }

    #[test]
    fn move_takes_the_key_and_its_expiry_to_the_other_database() {
        let c = TestCluster::new(2);
        c.set_now(1_000_000);
        c.cmd(0, &["SET", "k", "v", "PXAT", "5000000"]);
        assert_eq!(c.cmd(0, &["MOVE", "k", "3"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["EXISTS", "k"]), ":0\r\n");
        assert_eq!(c.cmd(3, &["PEXPIRETIME", "k"]), ":5000000\r\n");
        c.cmd(0, &["SET", "k", "again"]);
        assert_eq!(c.cmd(0, &["MOVE", "k", "3"]), ":0\r\n", "taken there");
        assert_eq!(c.cmd(0, &["GET", "k"]), "$5\r\nagain\r\n");
        assert_eq!(
            c.cmd(0, &["MOVE", "k", "0"]),
            "-ERR source and destination objects are the same\r\n"
        );
        assert_eq!(c.cmd(0, &["MOVE", "nope", "1"]), ":0\r\n");
    }
}
