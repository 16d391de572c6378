//! Keyspace-wide server commands: DBSIZE, FLUSHDB, FLUSHALL, SWAPDB.

use crate::command::flags::*;
use crate::command::{cmd, join_all, ready, Cluster, CommandSpec, Exec, Job, LocalBoxFuture, Log};
use crate::error::Error;
use crate::reply::Reply;
use crate::resp::parse_i64;

pub static COMMANDS: &[CommandSpec] = &[
    cmd(
        "dbsize",
        1,
        READONLY | FAST,
        Exec::Global {
            cross: dbsize,
            lock: true,
        },
        Log::Never,
    )
    .doc(
        "server",
        "Return the number of keys in the selected database",
        "1.0.0",
        "O(1)",
        "",
    ),
    cmd(
        "flushdb",
        -1,
        WRITE,
        Exec::Global {
            cross: flushdb,
            lock: true,
        },
        Log::Effect,
    )
    .doc(
        "server",
        "Remove all keys from the current database",
        "1.0.0",
        "O(N) where N is the number of keys in the selected database",
        "[ASYNC|SYNC]",
    )
    .notes(&[
        ("ASYNC|SYNC", "name=async"),
        ("ASYNC", "since=4.0.0"),
        ("SYNC", "since=6.2.0"),
    ])
    .history(&[
        ("4.0.0", "Added the `ASYNC` flushing mode modifier."),
        ("6.2.0", "Added the `SYNC` flushing mode modifier."),
    ]),
    cmd(
        "flushall",
        -1,
        WRITE,
        Exec::Global {
            cross: flushall,
            lock: true,
        },
        Log::Effect,
    )
    .doc(
        "server",
        "Remove all keys from all databases",
        "1.0.0",
        "O(N) where N is the total number of keys in all databases",
        "[ASYNC|SYNC]",
    )
    .notes(&[
        ("ASYNC|SYNC", "name=async"),
        ("ASYNC", "since=4.0.0"),
        ("SYNC", "since=6.2.0"),
    ])
    .history(&[
        ("4.0.0", "Added the `ASYNC` flushing mode modifier."),
        ("6.2.0", "Added the `SYNC` flushing mode modifier."),
    ]),
    cmd(
        "swapdb",
        3,
        WRITE | FAST,
        Exec::Global {
            cross: swapdb,
            lock: true,
        },
        Log::Effect,
    )
    .doc(
        "server",
        "Swaps two Redis databases",
        "4.0.0",
        "O(N) where N is the count of clients watching or blocking on keys from both databases.",
        "index1 index2",
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

/// How FLUSHDB/FLUSHALL free what they remove (Redis's
/// `getFlushCommandFlags`).
#[derive(Clone, Copy)]
enum FlushMode {
    /// `ASYNC`: on the lazy-free thread.
    Async,
    /// `SYNC`: at once.
    Sync,
    /// No argument: as `lazyfree-lazy-user-flush` says.
    Default,
}

/// FLUSHDB/FLUSHALL take an optional ASYNC or SYNC. Either way the
/// keyspace is empty when the reply leaves; ASYNC frees the old pages on
/// the lazy-free thread.
fn flush_mode(args: &[Vec<u8>]) -> Result<FlushMode, Error> {
    match args.len() {
        1 => Ok(FlushMode::Default),
        2 if args[1].eq_ignore_ascii_case(b"async") => Ok(FlushMode::Async),
        2 if args[1].eq_ignore_ascii_case(b"sync") => Ok(FlushMode::Sync),
        _ => Err(Error::Syntax),
    }
}

fn flush(c: &dyn Cluster, dbs: Option<usize>, mode: FlushMode) -> LocalBoxFuture<'_, Reply> {
    Box::pin(async move {
        on_every_shard(c, || {
            Box::new(move |sh| {
                let range = match dbs {
                    Some(db) => db..db + 1,
                    None => 0..sh.databases(),
                };
                let lazy = match mode {
                    FlushMode::Async => true,
                    FlushMode::Sync => false,
                    FlushMode::Default => sh.lazyfree.settings.user_flush,
                };
                let mut removed = 0;
                for db in range.clone() {
                    removed += sh.flush_db(db, lazy);
                }
                sh.stats.dirty += removed;
                // Logged on every shard, emptied or not (as Redis does).
                let mut ctx = sh.ctx(range.start);
                match dbs {
                    Some(_) => ctx.propagate([&b"FLUSHDB"[..]]),
                    None => ctx.propagate([&b"FLUSHALL"[..]]),
                }
                ctx.log_barrier();
                Reply::Ok
            })
        })
        .await;
        Reply::Ok
    })
}

fn flushdb(c: &dyn Cluster, db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    match flush_mode(&args) {
        Ok(mode) => flush(c, Some(db), mode),
        Err(e) => ready(Reply::Error(e)),
    }
}

fn flushall(c: &dyn Cluster, _db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    match flush_mode(&args) {
        Ok(mode) => flush(c, None, mode),
        Err(e) => ready(Reply::Error(e)),
    }
}

/// A database index argument: an integer that fits in 32 bits, else
/// `ERR <what>` (Redis's getIntFromObjectOrReply with a message).
fn db_index(arg: &[u8], what: &str) -> Result<i64, Error> {
    parse_i64(arg)
        .filter(|v| i32::try_from(*v).is_ok())
        .ok_or_else(|| Error::msg(format!("ERR {what}")))
}

/// SWAPDB: every shard exchanges its part of the two databases, under locks
/// on every shard, so no client sees one shard swapped and another not.
fn swapdb(c: &dyn Cluster, _db: usize, args: Vec<Vec<u8>>) -> LocalBoxFuture<'_, Reply> {
    let parsed = match (args.get(1), args.get(2)) {
        (Some(a), Some(b)) => db_index(a, "invalid first DB index")
            .and_then(|a| Ok((a, db_index(b, "invalid second DB index")?))),
        _ => Err(Error::WrongArity("swapdb".into())),
    };
    let (a, b) = match parsed {
        Ok(ab) => ab,
        Err(e) => return ready(Reply::Error(e)),
    };
    Box::pin(async move {
        let parts = on_every_shard(c, || {
            Box::new(move |sh| {
                let n = sh.databases();
                let (Ok(a), Ok(b)) = (usize::try_from(a), usize::try_from(b)) else {
                    return Reply::Error(Error::DbIndexOutOfRange);
                };
                if a >= n || b >= n {
                    return Reply::Error(Error::DbIndexOutOfRange);
                }
                if a != b {
                    sh.swap_dbs(a, b);
                }
                let (mut na, mut nb) = (itoa::Buffer::new(), itoa::Buffer::new());
                let mut ctx = sh.ctx(0);
                ctx.propagate([
                    &b"SWAPDB"[..],
                    na.format(a).as_bytes(),
                    nb.format(b).as_bytes(),
                ]);
                ctx.log_barrier();
                // One change for the whole command (Redis counts SWAPDB once).
                if sh.id() == 0 {
                    sh.stats.dirty += 1;
                }
                Reply::Ok
            })
        })
        .await;
        // Every shard has the same databases, so all agree.
        parts
            .into_iter()
            .find(|r| matches!(r, Reply::Error(_)))
            .unwrap_or(Reply::Ok)
    })
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

    #[test]
    fn swapdb_exchanges_databases_on_every_shard() {
        let c = TestCluster::new(4);
        c.set_now(1_000_000);
        for i in 0..100 {
            c.cmd(0, &["SET", &format!("a{i}"), "zero"]);
        }
        for i in 0..30 {
            c.cmd(1, &["SET", &format!("b{i}"), "one"]);
        }
        c.cmd(0, &["SET", "t", "v", "PX", "5000"]);
        let dirty =
            |c: &TestCluster| -> u64 { (0..4).map(|s| c.with_shard(s, |sh| sh.stats.dirty)).sum() };
        let before = dirty(&c);
        assert_eq!(c.cmd(0, &["SWAPDB", "0", "1"]), "+OK\r\n");
        assert_eq!(dirty(&c), before + 1);
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":30\r\n");
        assert_eq!(c.cmd(1, &["DBSIZE"]), ":101\r\n");
        assert_eq!(c.cmd(0, &["GET", "b7"]), "$3\r\none\r\n");
        assert_eq!(c.cmd(1, &["GET", "a42"]), "$4\r\nzero\r\n");
        assert_eq!(c.cmd(0, &["EXISTS", "a42"]), ":0\r\n");
        assert_eq!(c.cmd(1, &["PTTL", "t"]), ":5000\r\n");
        // Every page of both databases counts as changed.
        c.with_shard(0, |sh| {
            let epoch = sh.epoch();
            assert!(sh.db(0).pages().iter().all(|p| p.modified_epoch == epoch));
        });
        // The same index twice is fine and changes nothing.
        assert_eq!(c.cmd(0, &["SWAPDB", "1", "1"]), "+OK\r\n");
        assert_eq!(c.cmd(1, &["DBSIZE"]), ":101\r\n");
        assert_eq!(c.cmd(0, &["SWAPDB", "15", "0"]), "+OK\r\n");
        assert_eq!(c.cmd(15, &["DBSIZE"]), ":30\r\n");
        assert_eq!(c.cmd(0, &["DBSIZE"]), ":0\r\n");
    }

    #[test]
    fn swapdb_errors() {
        let c = TestCluster::new(2);
        c.cmd(0, &["SET", "k", "v"]);
        let cases = [
            (["x", "1"], "-ERR invalid first DB index\r\n"),
            (["1.5", "1"], "-ERR invalid first DB index\r\n"),
            (["2147483648", "1"], "-ERR invalid first DB index\r\n"),
            (["0", "y"], "-ERR invalid second DB index\r\n"),
            (["x", "y"], "-ERR invalid first DB index\r\n"),
            (["0", "-2147483649"], "-ERR invalid second DB index\r\n"),
            (["0", "16"], "-ERR DB index is out of range\r\n"),
            (["-1", "0"], "-ERR DB index is out of range\r\n"),
            (["2147483647", "0"], "-ERR DB index is out of range\r\n"),
        ];
        for ([a, b], want) in cases {
            assert_eq!(c.cmd(0, &["SWAPDB", a, b]), want, "SWAPDB {a} {b}");
        }
        assert_eq!(
            c.cmd(0, &["SWAPDB", "0"]),
            "-ERR wrong number of arguments for 'swapdb' command\r\n"
        );
        // Nothing moved.
        assert_eq!(c.cmd(0, &["GET", "k"]), "$1\r\nv\r\n");
    }
}
