//! Keyspace-wide server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.

use crate::command::flags::*;
use crate::command::{join_all, Cluster, CommandSpec, Exec, Job, LocalBoxFuture};
use crate::error::Error;
use crate::reply::Reply;

const fn global(
    name: &'static str,
    arity: i32,
    flags: u32,
    group: &'static str,
    summary: &'static str,
    cross: crate::command::CrossFn,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        group,
        summary,
        exec: Exec::Global { cross, lock: true },
    }
}

pub static COMMANDS: &[CommandSpec] = &[
    global(
        "dbsize",
        1,
        READONLY | FAST,
        "server",
        "Returns the number of keys in the database.",
        dbsize,
    ),
    global(
        "flushdb",
        -1,
        WRITE,
        "server",
        "Removes all keys from the current database.",
        flushdb,
    ),
    global(
        "flushall",
        -1,
        WRITE,
        "server",
        "Removes all keys from all databases.",
        flushall,
    ),
];

/// Runs a copy of `job` on every shard; returns the replies in shard order.
pub async fn on_every_shard(c: &dyn Cluster, job: impl Fn() -> Job) -> Vec<Reply> {
    let futs = (0..c.shard_count()).map(|s| c.run(s, job())).collect();
    join_all(futs).await
}

fn dbsize(c: &dyn Cluster, db: usize, _args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        let parts =
            on_every_shard(c, || Box::new(move |sh| Reply::Int(sh.db(db).len() as i64))).await;
        Reply::Int(parts.iter().filter_map(Reply::as_int).sum())
    })
}

/// FLUSHDB/FLUSHALL take an optional ASYNC or SYNC; both are immediate here.
fn flush_mode_ok(args: &[Vec<u8>]) -> Result<(), Error> {
    match args.len() {
        1 => Ok(()),
        2 if args[1].eq_ignore_ascii_case(b"async") || args[1].eq_ignore_ascii_case(b"sync") => {
            Ok(())
        }
        _ => Err(Error::Syntax),
    }
}

fn flush(c: &dyn Cluster, dbs: Option<usize>) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        on_every_shard(c, || {
            Box::new(move |sh| {
                let range = match dbs {
                    Some(db) => db..db + 1,
                    None => 0..sh.databases(),
                };
                let mut removed = 0;
                for db in range {
                    removed += sh.db(db).len() as u64;
                    sh.db_mut(db).clear();
                }
                sh.stats.dirty += removed;
                Reply::Ok
            })
        })
        .await;
        Reply::Ok
    })
}

fn flushdb(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    if let Err(e) = flush_mode_ok(&args) {
        return Box::pin(std::future::ready(Reply::Error(e)));
    }
    flush(c, Some(db))
}

fn flushall(c: &dyn Cluster, _db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    if let Err(e) = flush_mode_ok(&args) {
        return Box::pin(std::future::ready(Reply::Error(e)));
    }
    flush(c, None)
}

#[cfg(test)]
mod tests {
    use crate::testkit::TestCluster;

    #[test]
    fn dbsize_and_flush() {
        let c = TestCluster::new(3);
        for i in 0..50 {
            c.cmd(0, &["SET", &format!("k{i}"), "v"]);
            c.cmd(1, &["SET", &format!("k{i}"), "v"]);
        }
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":50\r\n");
        assert_eq!(c.cmd(0, &["FLUSHDB"]), "+OK\r\n");
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":0\r\n");
        assert_eq!(c.cmd(1, &["DBSIZE"]), ":50\r\n");
        assert_eq!(c.cmd(0, &["FLUSHALL", "bogus"]), "-ERR syntax error\r\n");
        assert_eq!(c.cmd(0, &["FLUSHALL", "ASYNC"]), "+OK\r\n");
        assert_eq!(c.cmd(1, &["DBSIZE"]), ":0\r\n");
    }
}
