//! Generic key commands: DEL, EXISTS, EXPIRE and friends, RENAME, KEYS, SCAN.

use crate::command::flags::*;
use crate::command::{group_by_shard, join_all, Args, Cluster, CommandSpec, Exec, LocalBoxFuture};
use crate::error::CmdResult;
use crate::reply::Reply;
use crate::resp;
use crate::shard::ExecCtx;

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
        group: "generic",
        summary,
        exec,
    }
}

pub static COMMANDS: &[CommandSpec] = &[cmd(
    "del",
    -2,
    WRITE,
    (1, -1, 1),
    "Deletes one or more keys.",
    Exec::Keys {
        shard: del,
        cross: del_cross,
    },
)];

fn del(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let mut n = 0;
    for k in args.iter().skip(1) {
        if ctx.remove(k).is_some() {
            n += 1;
        }
    }
    ctx.dirty(n as u64);
    resp::write_int(out, n);
    Ok(())
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

fn del_keys(ctx: &mut ExecCtx<'_>, keys: &[Vec<u8>]) -> i64 {
    let n = keys.iter().filter(|k| ctx.remove(k).is_some()).count() as u64;
    ctx.dirty(n);
    n as i64
}

fn del_cross(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    sum_over_shards(c, db, args, del_keys)
}

#[cfg(test)]
mod tests {
    use crate::testkit::TestCluster;

    #[test]
    fn del_across_shards() {
        let c = TestCluster::new(4);
        for i in 0..10 {
            c.cmd(0, &["SET", &format!("k{i}"), "v"]);
        }
        assert_eq!(c.cmd(0, &["DEL", "k0", "k1", "k2", "nope", "k2"]), ":3\r\n");
        assert_eq!(c.cmd(0, &["DEL", "k3"]), ":1\r\n");
        assert_eq!(c.cmd(0, &["DEL", "k3"]), ":0\r\n");
    }
}
