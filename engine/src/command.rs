//! The command table: the single list of commands, and for each one
//! everything the rest of the system asks about it.
//!
//! Each family module (`families::strings`, `families::keys`, ...) declares
//! its own slice of [`CommandSpec`] rows, every row built by [`cmd`];
//! [`lookup`] searches all of them. A row decides:
//! - arity (the arity error) and flags (COMMAND INFO, NOAUTH, refusing
//!   writes when the log fails);
//! - key positions, hence the shard(s) it runs on ([`route`]);
//! - how it executes ([`Exec`]): on one shard, across shards, keyspace-wide,
//!   or by the server for connection and administration commands
//!   ([`ConnCmd`]: the server maps each one to its handler in one
//!   exhaustive `match`, so a new row without a handler does not compile);
//! - how its changes reach the log ([`Log`]), which [`execute_shard`] and
//!   the cross-shard paths follow and check ([`unlogged_change`]);
//! - its COMMAND DOCS ([`CommandSpec::doc`], parsed by [`crate::docs`]).
//!
//! MULTI/EXEC, WATCH, SUBSCRIBE and blocking commands will be rows of the
//! same kind: a [`ConnCmd`] (or a new [`Exec`] kind) with its handler in
//! the server, and a [`Log`] that says what they leave in the log.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::pin::Pin;
use std::sync::OnceLock;

use crate::docs::Doc;
use crate::error::{CmdResult, Error};
use crate::reply::Reply;
use crate::shard::{ExecCtx, Shard};

/// The arguments of one command (including its name at index 0), as ranges
/// into a byte buffer: no copy, no allocation per command.
#[derive(Clone, Copy)]
pub struct Args<'a> {
    src: &'a [u8],
    ranges: &'a [Range<usize>],
}

impl<'a> Args<'a> {
    pub fn new(src: &'a [u8], ranges: &'a [Range<usize>]) -> Self {
        Args { src, ranges }
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    /// Argument `i`. Callers check arity first (the dispatcher does).
    pub fn get(&self, i: usize) -> &'a [u8] {
        &self.src[self.ranges[i].clone()]
    }

    pub fn iter(&self) -> impl ExactSizeIterator<Item = &'a [u8]> + '_ {
        self.ranges.iter().map(|r| &self.src[r.clone()])
    }

    pub fn to_vecs(&self) -> Vec<Vec<u8>> {
        self.iter().map(<[u8]>::to_vec).collect()
    }
}

/// Runs on the shard that owns every key of the command.
pub type ShardFn = fn(&mut ExecCtx<'_>, Args<'_>, &mut Vec<u8>) -> CmdResult;

/// A boxed future that need not be `Send` (it lives on one worker thread).
pub type LocalBoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + 'a>>;

/// Work sent to one shard by a command that spans shards.
pub type Job = Box<dyn FnOnce(&mut Shard) -> Reply + Send>;

/// The shards, as a cross-shard command sees them.
///
/// `run` submits the job at once; the returned future only waits for its
/// result. So creating several futures before awaiting any runs their jobs
/// concurrently on their shards. While a cross-shard command runs, the
/// server holds locks on the keys it named (or on whole shards for
/// keyspace-wide commands), so no other client sees it half done.
pub trait Cluster {
    fn shard_count(&self) -> usize;
    fn run(&self, shard: usize, job: Job) -> LocalBoxFuture<'_, Reply>;
}

/// A command whose keys are on several shards, or that spans the keyspace.
/// `args` includes the command name.
pub type CrossFn = for<'c> fn(&'c dyn Cluster, usize, Vec<Vec<u8>>) -> LocalBoxFuture<'c, Reply>;

/// How a command executes.
#[derive(Clone, Copy)]
pub enum Exec {
    /// All keys (at most one, or several that the server found on one
    /// shard) are on one shard.
    Shard(ShardFn),
    /// Several keys: on one shard they run as `shard`, across shards as
    /// `cross` under locks on every key.
    Keys { shard: ShardFn, cross: CrossFn },
    /// Keyspace-wide: runs as `cross` over all shards; with `lock`, under
    /// locks on every shard so it sees no multi-shard command half done.
    Global { cross: CrossFn, lock: bool },
    /// Connection or server administration, executed by the server itself
    /// with the handler it maps the [`ConnCmd`] to.
    Conn(ConnCmd),
}

/// A connection or administration command: the server's handler for it
/// (the engine cannot name server functions, so the row names the handler
/// and `server/src/admin.rs` maps every variant in one exhaustive `match`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnCmd {
    Ping,
    Echo,
    Quit,
    Select,
    Auth,
    Hello,
    Client,
    Reset,
    Command,
    Config,
    Info,
    Time,
    Latency,
    Debug,
    Shutdown,
    Save,
    Bgsave,
    Lastsave,
    Bgrewriteaof,
}

/// How a command's changes reach the log (and, later, replicas).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Log {
    /// On one shard, the command as it arrived is logged when it changed
    /// the keyspace (counted a change with [`ExecCtx::dirty`]) and wrote no
    /// record itself. Replaying it gives the same state: it depends on
    /// neither the clock nor randomness.
    Auto,
    /// The command writes its own records through [`ExecCtx::propagate`]
    /// (see [`crate::propagate`]): a canonical form that replays the same
    /// at any time (`SET .. PXAT` for a relative expiry, `SET .. KEEPTTL`
    /// for INCRBYFLOAT, `DEL` for a key that expired at once), or one
    /// record per shard (FLUSHALL, SWAPDB).
    Effect,
    /// Never logged: it must not change the keyspace (reads, connection
    /// and administration commands).
    Never,
}

/// Whether a command that ran with logging on broke its row's [`Log`]:
/// `changed`: it counted a change (on this shard); `propagated`: it wrote
/// a record itself. A `Never` command must not change the keyspace; an
/// `Effect` command that changed it must have written its record; an
/// `Auto` command must not write its own (its row would say `Effect`).
/// Across shards every job writes its own part, whatever the row says
/// (the command as it arrived names keys of other shards), so a job that
/// changed its shard must have written a record unless the row is `Never`.
pub fn unlogged_change(log: Log, changed: bool, propagated: bool, cross: bool) -> bool {
    match log {
        Log::Never => changed || propagated,
        Log::Auto if !cross => propagated,
        Log::Auto | Log::Effect => changed && !propagated,
    }
}

/// Command flags as COMMAND INFO prints them.
pub mod flags {
    pub const WRITE: u32 = 1;
    pub const READONLY: u32 = 1 << 1;
    pub const DENYOOM: u32 = 1 << 2;
    pub const ADMIN: u32 = 1 << 3;
    pub const NOSCRIPT: u32 = 1 << 4;
    pub const RANDOM: u32 = 1 << 5;
    pub const LOADING: u32 = 1 << 6;
    pub const STALE: u32 = 1 << 7;
    pub const FAST: u32 = 1 << 8;
    pub const NO_AUTH: u32 = 1 << 9;
    pub const ALLOW_BUSY: u32 = 1 << 10;

    pub const NAMES: &[(u32, &str)] = &[
        (WRITE, "write"),
        (READONLY, "readonly"),
        (DENYOOM, "denyoom"),
        (ADMIN, "admin"),
        (NOSCRIPT, "noscript"),
        (RANDOM, "random"),
        (LOADING, "loading"),
        (STALE, "stale"),
        (FAST, "fast"),
        (NO_AUTH, "no_auth"),
        (ALLOW_BUSY, "allow_busy"),
    ];
}

pub struct CommandSpec {
    /// Lower-case name.
    pub name: &'static str,
    /// Argument count including the name; negative means "at least -arity".
    pub arity: i32,
    pub flags: u32,
    /// Position of the first key (0: no keys), of the last key (negative
    /// counts from the end: -1 is the last argument), and the step.
    pub first_key: i32,
    pub last_key: i32,
    pub step: i32,
    /// Redis's command group, for COMMAND DOCS.
    pub group: &'static str,
    pub summary: &'static str,
    pub exec: Exec,
    /// How its changes reach the log.
    pub log: Log,
    /// COMMAND DOCS (with the subcommands' docs of a container).
    pub doc: Doc,
}

/// Counts in [`crate::shard::ShardStats::unlogged_changes`], and fails a
/// debug build on, a command (or one shard's job of it, `cross`) that
/// broke its row's [`Log`] (see [`unlogged_change`]). For shards that log.
pub fn check_logged(
    shard: &mut Shard,
    spec: &CommandSpec,
    changed: bool,
    wrote: bool,
    cross: bool,
) {
    if unlogged_change(spec.log, changed, wrote, cross) {
        shard.stats.unlogged_changes += 1;
        debug_assert!(
            false,
            "{} broke its row's Log::{:?} on shard {} (changed the keyspace: {changed}, \
             wrote a record: {wrote}, across shards: {cross})",
            spec.name,
            spec.log,
            shard.id()
        );
    }
}

/// Starts a row: the one helper every family's table builds its rows with.
/// A row has no keys until [`CommandSpec::keys`] and no docs until
/// [`CommandSpec::doc`] (the tests refuse a row without docs).
pub const fn cmd(name: &'static str, arity: i32, flags: u32, exec: Exec, log: Log) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: 0,
        last_key: 0,
        step: 0,
        group: "",
        summary: "",
        exec,
        log,
        doc: Doc::empty(name),
    }
}

/// The rest of a row, after [`cmd`].
impl CommandSpec {
    /// Key positions: the first key, the last (negative counts from the
    /// end), the step.
    pub const fn keys(self, first: i32, last: i32, step: i32) -> CommandSpec {
        CommandSpec {
            first_key: first,
            last_key: last,
            step,
            ..self
        }
    }

    /// Its COMMAND DOCS: Redis's group and summary, since-version,
    /// complexity and argument syntax (see [`crate::docs`]).
    pub const fn doc(
        self,
        group: &'static str,
        summary: &'static str,
        since: &'static str,
        complexity: &'static str,
        syntax: &'static str,
    ) -> CommandSpec {
        CommandSpec {
            group,
            summary,
            doc: Doc::new(self.name, since, complexity, syntax),
            ..self
        }
    }

    /// Notes on arguments ([`Doc::notes`]).
    pub const fn notes(self, notes: &'static [(&'static str, &'static str)]) -> CommandSpec {
        CommandSpec {
            doc: self.doc.with_notes(notes),
            ..self
        }
    }

    /// `(version, change)`, oldest first.
    pub const fn history(self, history: &'static [(&'static str, &'static str)]) -> CommandSpec {
        CommandSpec {
            doc: self.doc.with_history(history),
            ..self
        }
    }

    /// Deprecated since a version, replaced by something.
    pub const fn deprecated(self, since: &'static str, replaced_by: &'static str) -> CommandSpec {
        CommandSpec {
            doc: self.doc.with_deprecation(since, replaced_by),
            ..self
        }
    }

    /// The docs of a container's subcommands (see [`Doc::sub`]).
    pub const fn subcommands(self, subcommands: &'static [Doc]) -> CommandSpec {
        CommandSpec {
            doc: self.doc.with_subcommands(subcommands),
            ..self
        }
    }

    pub fn arity_ok(&self, argc: usize) -> bool {
        let argc = argc as i64;
        let arity = i64::from(self.arity);
        if arity >= 0 {
            argc == arity
        } else {
            argc >= -arity
        }
    }

    /// Indices of the key arguments for a call with `argc` arguments.
    pub fn key_indices(&self, argc: usize) -> impl Iterator<Item = usize> {
        let (first, last, step) = if self.first_key <= 0 || argc == 0 {
            (1, 0, 1)
        } else {
            let last = if self.last_key < 0 {
                argc as i64 + i64::from(self.last_key)
            } else {
                i64::from(self.last_key).min(argc as i64 - 1)
            };
            (
                self.first_key as usize,
                last.max(0) as usize,
                self.step.max(1) as usize,
            )
        };
        (first..=last).step_by(step).take_while(move |&i| i < argc)
    }

    pub fn is_write(&self) -> bool {
        self.flags & flags::WRITE != 0
    }

    pub fn has_flag(&self, f: u32) -> bool {
        self.flags & f != 0
    }
}

/// Every family's table.
pub fn all_commands() -> impl Iterator<Item = &'static CommandSpec> {
    crate::families::TABLES.iter().flat_map(|t| t.iter())
}

fn index() -> &'static HashMap<&'static [u8], &'static CommandSpec> {
    static INDEX: OnceLock<HashMap<&'static [u8], &'static CommandSpec>> = OnceLock::new();
    INDEX.get_or_init(|| all_commands().map(|c| (c.name.as_bytes(), c)).collect())
}

/// Finds a command by name, case-insensitively.
pub fn lookup(name: &[u8]) -> Option<&'static CommandSpec> {
    let mut buf = [0u8; 32];
    if name.len() > buf.len() {
        return None;
    }
    let lower = &mut buf[..name.len()];
    lower.copy_from_slice(name);
    lower.make_ascii_lowercase();
    index().get(&*lower).copied()
}

/// `ERR unknown command '...', with args beginning with: '...' ` as Redis
/// words it (each part cut at 128 bytes).
pub fn unknown_command_error(args: Args<'_>) -> Error {
    let name = args.get(0);
    let mut msg = b"ERR unknown command '".to_vec();
    msg.extend_from_slice(&name[..name.len().min(128)]);
    msg.extend_from_slice(b"', with args beginning with: ");
    let mut rest: Vec<u8> = Vec::new();
    for a in args.iter().skip(1) {
        if rest.len() >= 128 {
            break;
        }
        let room = 128 - rest.len();
        rest.push(b'\'');
        rest.extend_from_slice(&a[..a.len().min(room)]);
        rest.extend_from_slice(b"' ");
    }
    msg.extend_from_slice(&rest);
    Error::Raw(msg)
}

/// Where a (known, arity-checked) command must run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// On this shard, with the family's shard function.
    Shard(usize),
    /// Across shards, with the family's cross function, under key locks.
    CrossKeys,
    /// Over the whole keyspace; `lock`: under locks on every shard.
    Global { lock: bool },
    /// By the server, with this handler (connection and administration
    /// commands).
    Conn(ConnCmd),
}

/// Decides where a command runs. Keyless shard commands run on `home`
/// (the connection's own shard).
pub fn route(spec: &CommandSpec, args: Args<'_>, shards: usize, home: usize) -> Route {
    match spec.exec {
        Exec::Conn(handler) => Route::Conn(handler),
        Exec::Global { lock, .. } => Route::Global { lock },
        Exec::Shard(_) | Exec::Keys { .. } => {
            let mut keys = spec.key_indices(args.len());
            let Some(first) = keys.next() else {
                return Route::Shard(home);
            };
            let s = crate::keyhash::shard_of(args.get(first), shards);
            for i in keys {
                if crate::keyhash::shard_of(args.get(i), shards) != s {
                    return Route::CrossKeys;
                }
            }
            Route::Shard(s)
        }
    }
}

/// Runs a single-shard command and writes its reply (or its error). When
/// the shard logs, the row's [`Log`] decides: `Auto` logs the command as it
/// arrived if it counted a change; `Effect` commands wrote their own
/// records. A command that broke its row (see [`unlogged_change`]) is
/// counted in [`crate::shard::ShardStats::unlogged_changes`] (and fails a
/// debug build).
pub fn execute_shard(
    spec: &CommandSpec,
    f: ShardFn,
    ctx: &mut ExecCtx<'_>,
    args: Args<'_>,
    out: &mut Vec<u8>,
) {
    let mark = out.len();
    let logging = ctx.shard.log.enabled();
    let dirty = ctx.shard.stats.dirty;
    if logging {
        ctx.shard.log.begin_command();
    }
    if let Err(e) = f(ctx, args, out) {
        out.truncate(mark);
        e.write_to(out);
    }
    if !logging {
        return;
    }
    let changed = ctx.shard.stats.dirty != dirty;
    let propagated = ctx.shard.log.propagated();
    check_logged(ctx.shard, spec, changed, propagated, false);
    if spec.log == Log::Auto && changed && !propagated {
        ctx.propagate(args.iter());
    }
}

/// Groups key arguments by shard: for each shard that owns any of them,
/// the positions (indices into `keys`) of its keys, in order.
pub fn group_by_shard(
    shards: usize,
    keys: impl Iterator<Item = Vec<u8>>,
) -> Vec<(usize, Vec<usize>, Vec<Vec<u8>>)> {
    let mut groups: Vec<(usize, Vec<usize>, Vec<Vec<u8>>)> = Vec::new();
    for (pos, k) in keys.enumerate() {
        let s = crate::keyhash::shard_of(&k, shards);
        match groups.iter_mut().find(|g| g.0 == s) {
            Some(g) => {
                g.1.push(pos);
                g.2.push(k);
            }
            None => groups.push((s, vec![pos], vec![k])),
        }
    }
    groups.sort_by_key(|g| g.0);
    groups
}

/// Runs `f` on `shard` and hands back its value: for cross-shard commands
/// that move data between shards (RENAME's entry, SCAN's position) rather
/// than build a reply. None if the shard could not run it.
pub async fn run_value<T: Send + 'static>(
    c: &dyn Cluster,
    shard: usize,
    f: impl FnOnce(&mut Shard) -> T + Send + 'static,
) -> Option<T> {
    // The job runs on the shard's thread; the value comes back over a
    // channel that is read only after the job has finished.
    let (tx, rx) = std::sync::mpsc::channel();
    c.run(
        shard,
        Box::new(move |sh| {
            let _ = tx.send(f(sh));
            Reply::Ok
        }),
    )
    .await;
    rx.try_recv().ok()
}

/// A cross-shard function's answer that needs no shard (an argument error).
pub fn ready(r: Reply) -> LocalBoxFuture<'static, Reply> {
    Box::pin(std::future::ready(r))
}

/// Awaits a set of futures created up front (their jobs already run
/// concurrently), in order.
pub async fn join_all<'a>(futs: Vec<LocalBoxFuture<'a, Reply>>) -> Vec<Reply> {
    let mut out = Vec::with_capacity(futs.len());
    for f in futs {
        out.push(f.await);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_lowercase_and_multikey_commands_can_cross() {
        let mut seen = std::collections::HashSet::new();
        for c in all_commands() {
            assert!(seen.insert(c.name), "duplicate {}", c.name);
            assert_eq!(c.name, c.name.to_ascii_lowercase());
            let multi_key = c.first_key > 0 && (c.last_key < 0 || c.last_key > c.first_key);
            if multi_key {
                assert!(
                    matches!(c.exec, Exec::Keys { .. }),
                    "{} takes several keys but cannot run across shards",
                    c.name
                );
            }
        }
    }

    #[test]
    fn groups_are_redis_groups() {
        let known = ["connection", "server", "string", "generic", "hash", "set"];
        for c in all_commands() {
            assert!(known.contains(&c.group), "{}: group {:?}", c.name, c.group);
            assert!(!c.summary.is_empty(), "{} has no summary", c.name);
        }
    }

    #[test]
    fn lookup_is_case_insensitive() {
        assert_eq!(lookup(b"GeT").map(|c| c.name), Some("get"));
        assert!(lookup(b"nosuchcommand").is_none());
        assert!(lookup(&[b'a'; 100]).is_none());
    }

    #[test]
    fn key_positions() {
        let mset = lookup(b"mset").unwrap();
        assert_eq!(mset.key_indices(5).collect::<Vec<_>>(), vec![1, 3]);
        let del = lookup(b"del").unwrap();
        assert_eq!(del.key_indices(4).collect::<Vec<_>>(), vec![1, 2, 3]);
        let get = lookup(b"get").unwrap();
        assert_eq!(get.key_indices(2).collect::<Vec<_>>(), vec![1]);
        let rename = lookup(b"rename").unwrap();
        assert_eq!(rename.key_indices(3).collect::<Vec<_>>(), vec![1, 2]);
    }

    #[test]
    fn unknown_command_text() {
        let src = b"foo a b";
        let ranges = [0..3, 4..5, 6..7];
        assert_eq!(
            unknown_command_error(Args::new(src, &ranges)).to_string(),
            "ERR unknown command 'foo', with args beginning with: 'a' 'b' "
        );
    }
}
