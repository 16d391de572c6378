//! # kv-server
//!
//! A Redis-compatible server, thread per core, in layers that import
//! downwards only (docs/ARCHITECTURE.md, "The server in layers"):
//! - [`config`]: redis.conf syntax, `--name value` flags, CONFIG GET/SET/REWRITE.
//! - [`platform`]: the event loop ([`runtime`]), libc ([`sys`]), the
//!   allocator, log lines, the latency monitor, systemd.
//! - [`workers`]: a worker thread = one shard + its mailbox and lock table
//!   ([`worker`]); commands across shards ([`tx`]); shared state.
//! - [`persist`]: the append-only log, recovery, snapshots.
//! - [`serve`]: a client connection ([`conn`]), the commands the server
//!   answers itself ([`admin`]), INFO ([`info`]).
//! - [`tools`]: offline subcommands (check-snapshot, backup, export-aof...).

#![deny(unsafe_code)]

// The server in layers, each importing only those below it (see
// docs/ARCHITECTURE.md, and the `layering` test below):
// config (the ground) < platform < workers < persist < serve < main, tools.
mod config;
#[cfg(test)]
mod layering;
mod persist;
mod platform;
mod serve;
mod tools;
mod workers;

// Every module is also named at the crate root (`crate::log`,
// `crate::snapshot`, ...): paths stay short, and the folder says the layer.
use persist::{aof, logswitch, recover, snapshot};
use platform::{alloc, latency, lazyfree, log, runtime, supervise, sys};
use serve::{admin, conn, info};
use workers::{clients, persist_state, shared, tx, worker};

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::Arc;

use engine::Shard;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::shared::Shared;
use crate::worker::Worker;

#[global_allocator]
static GLOBAL: alloc::CountingAlloc = alloc::CountingAlloc;

fn main() {
    // A bug must not leave a half-working server behind (a dead worker
    // would strand its shard): log it the way Redis logs a crash, then abort.
    std::panic::set_hook(Box::new(|info| {
        log::warning("=== KV-SERVER BUG REPORT START ===");
        log::warning(&format!("panic: {info}"));
        log::warning(&format!("{}", std::backtrace::Backtrace::force_capture()));
        log::warning("=== KV-SERVER BUG REPORT END ===");
        std::process::abort();
    }));
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    // Offline tools: `kv-server check-aof ...`, `kv-server export-aof ...`.
    if let Some(code) = tools::run_tool(&args) {
        std::process::exit(code);
    }
    let cfg = match Config::from_args(&args) {
        Ok(config::Startup::Run(cfg)) => *cfg,
        Ok(config::Startup::Help(usage)) => {
            println!("{usage}");
            return;
        }
        Ok(config::Startup::Version) => {
            println!(
                "kv-server v={} (Redis-compatible {})",
                env!("CARGO_PKG_VERSION"),
                engine::REDIS_VERSION
            );
            return;
        }
        Err(e) => {
            eprintln!("\n{e}");
            std::process::exit(1);
        }
    };
    // As Redis, before anything else starts (a fork keeps one thread).
    if cfg.daemonize {
        if let Err(e) = sys::daemonize() {
            eprintln!("Can't daemonize (daemonize yes): {e}");
            std::process::exit(1);
        }
    }
    std::process::exit(run(cfg));
}

/// Binds one listening socket with SO_REUSEPORT, so every worker can have
/// its own and the kernel spreads connections over them.
fn bind(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    sock.set_reuse_address(true)?;
    sock.set_reuse_port(true)?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)?;
    }
    sock.bind(&addr.into())?;
    sock.listen(backlog)?;
    Ok(sock.into())
}

/// A plain bind of `addr`, as Redis's, to find a server already listening
/// there. After a crash (SIGKILL, OOM kill) the kernel tears down the dead
/// process's io_uring asynchronously, and its pending accepts keep its
/// listeners for a few milliseconds after the process is gone (measured:
/// 5 ms after 50 connections); a restart at once waits that out rather
/// than failing, but reports a live server after half a second.
fn probe_bind(addr: SocketAddr) -> std::io::Result<()> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_millis(500);
    loop {
        match std::net::TcpListener::bind(addr) {
            Ok(_) => return Ok(()),
            Err(e)
                if e.kind() == std::io::ErrorKind::AddrInUse
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Resolves `bind` addresses and binds `workers` listeners on each.
fn bind_all(cfg: &Config, workers: usize) -> Result<Vec<Vec<TcpListener>>, String> {
    let mut per_worker: Vec<Vec<TcpListener>> = (0..workers).map(|_| Vec::new()).collect();
    for host in &cfg.bind {
        let host = host.trim_start_matches('-');
        let mut addr = (host, cfg.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut a| a.next())
            .ok_or_else(|| format!("Invalid bind address '{host}'"))?;
        // SO_REUSEPORT would let a second server join the port of one that
        // is already running: probe with a plain bind first, so "Address
        // already in use" is reported as by Redis.
        if addr.port() != 0 {
            probe_bind(addr).map_err(|e| {
                format!(
                    "Warning: Could not create server TCP listening socket {host}:{}: bind: {e}",
                    cfg.port
                )
            })?;
        }
        for listeners in per_worker.iter_mut() {
            let l = bind(addr, cfg.tcp_backlog as i32).map_err(|e| {
                format!(
                    "Warning: Could not create server TCP listening socket {host}:{}: bind: {e}",
                    cfg.port
                )
            })?;
            // With port 0 the first bind picks the port; the others share it.
            if addr.port() == 0 {
                addr = l.local_addr().map_err(|e| e.to_string())?;
            }
            listeners.push(l);
        }
    }
    Ok(per_worker)
}

/// SIGTERM and SIGINT shut the server down in order, as in Redis (a
/// second signal while shutting down exits at once).
fn watch_signals(shared: Arc<Shared>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let mut seen = false;
            for sig in signals.forever() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                if seen {
                    log::warning(&format!("You insist... exiting now ({name})."));
                    std::process::exit(1);
                }
                seen = true;
                log::warning(&format!("Received {name} scheduling shutdown..."));
                // As Redis: with save rules, the final snapshot first (not
                // while still loading: there is nothing new to save).
                let saving = !shared.config().save.is_empty() && *shared.serving.borrow();
                if saving {
                    shared
                        .shutdown_after_save
                        .store(true, std::sync::atomic::Ordering::Relaxed);
                } else {
                    shared.request_shutdown();
                }
            }
        })?;
    Ok(())
}

/// Logs a failed accept (EMFILE when the server is out of descriptors), at
/// most one line a second across all workers, saying how many were not
/// logged since the last line.
fn log_accept_error(e: &std::io::Error) {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_SECOND: AtomicU64 = AtomicU64::new(0);
    static NOT_LOGGED: AtomicU64 = AtomicU64::new(0);
    let now = worker::now_ms() / 1000;
    let last = LAST_SECOND.load(Ordering::Relaxed);
    if now > last
        && LAST_SECOND
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let more = match NOT_LOGGED.swap(0, Ordering::Relaxed) {
            0 => String::new(),
            n => format!(" ({n} more accept errors since the last one logged)"),
        };
        log::warning(&format!("Accepting client connection: {e}{more}"));
    } else {
        NOT_LOGGED.fetch_add(1, Ordering::Relaxed);
    }
}

/// Loading is over: every worker starts accepting clients.
fn start_serving(shared: &Shared, port: u16) {
    shared.serving.send_replace(true);
    log::notice(&format!("Ready to accept connections tcp on port {port}"));
    supervise::ready(shared.config().supervised);
}

/// Redis's `CONFIG_MIN_RESERVED_FDS`: descriptors kept for the server's
/// own use beyond those counted per worker.
const MIN_RESERVED_FDS: u64 = 32;
/// Descriptors a worker keeps open besides its listeners, measured with
/// /proc/<pid>/fd during a BGSAVE: its io_uring, eventfd and two epoll
/// fds, up to five for the log (segment, spare, directory), a snapshot
/// file or two; rounded up.
const FDS_PER_WORKER: u64 = 16;

/// Redis's `adjustOpenFilesLimit`: raises RLIMIT_NOFILE to what
/// `maxclients` clients need plus the server's own descriptors, or, when
/// the system does not allow that, lowers `maxclients` to fit (with
/// Redis's warnings). Err: the limit does not even leave room for the
/// server itself.
fn adjust_open_files_limit(cfg: &mut Config, workers: usize) -> Result<(), String> {
    let own = MIN_RESERVED_FDS + workers as u64 * (cfg.bind.len() as u64 + FDS_PER_WORKER);
    let maxfiles = u64::from(cfg.maxclients) + own;
    let (soft, hard) = match sys::nofile_limit() {
        Ok(l) => l,
        Err(e) => {
            cfg.maxclients = (1024u64.saturating_sub(own)).max(1) as u32;
            log::warning(&format!(
                "Unable to obtain the current NOFILE limit ({e}), assuming 1024 and setting \
                 the max clients configuration to {}.",
                cfg.maxclients
            ));
            return Ok(());
        }
    };
    if soft >= maxfiles {
        return Ok(());
    }
    // Up to `maxfiles`, raising the hard limit too when allowed (root);
    // else as far as the hard limit goes.
    let mut error = None;
    let mut best = soft;
    for (s, h) in [(maxfiles, hard.max(maxfiles)), (maxfiles.min(hard), hard)] {
        if s <= soft {
            continue;
        }
        match sys::set_nofile_limit(s, h) {
            Ok(()) => {
                best = s;
                break;
            }
            Err(e) => error = Some(e),
        }
    }
    if best >= maxfiles {
        log::notice(&format!(
            "Increased maximum number of open files to {maxfiles} (it was originally set to {soft})."
        ));
        return Ok(());
    }
    if best <= own {
        return Err(format!(
            "Your current 'ulimit -n' of {best} is not enough for the server to start. \
             Please increase your open file limit to at least {}. Exiting.",
            own + 1
        ));
    }
    let requested = cfg.maxclients;
    cfg.maxclients = u32::try_from(best - own).unwrap_or(u32::MAX);
    log::warning(&format!(
        "You requested maxclients of {requested} requiring at least {maxfiles} max file descriptors."
    ));
    let why = error.map_or_else(
        || "the hard limit is lower".to_string(),
        |e| sys::strerror(&e),
    );
    log::warning(&format!(
        "Server can't set maximum open files to {maxfiles} because of OS error: {why}."
    ));
    log::warning(&format!(
        "Current maximum open files is {best}. maxclients has been reduced to {} to compensate \
         for low ulimit. If you need higher maxclients increase 'ulimit -n'.",
        cfg.maxclients
    ));
    Ok(())
}

fn run(mut cfg: Config) -> i32 {
    if let Some(level) = log::parse_level(cfg.loglevel.name()) {
        log::set_level(level);
    }
    latency::set_threshold(cfg.latency_monitor_threshold);
    if !cfg.logfile.is_empty() {
        if let Err(e) = log::set_file(&cfg.logfile) {
            eprintln!("Can't open the log file {}: {e}", cfg.logfile);
            return 1;
        }
    }
    // Before the workers allocate.
    if cfg.disable_thp {
        match sys::disable_thp() {
            Ok(()) => {
                log::verbose("Transparent huge pages are off for this process (disable-thp yes)")
            }
            Err(e) => log::warning(&format!(
                "Can't turn transparent huge pages off (disable-thp): {e}"
            )),
        }
    }
    let workers = if cfg.threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        cfg.threads
    };
    cfg.threads_in_use = workers;
    // Validated when the config was loaded.
    let cpulist = Arc::new(config::parse_cpulist(&cfg.server_cpulist).unwrap_or_default());
    log::notice("oO0OoO0OoO0Oo kv-server is starting oO0OoO0OoO0Oo");
    log::notice(&format!(
        "kv-server version={}, Redis-compatible {}, bits=64, pid={}, just started",
        env!("CARGO_PKG_VERSION"),
        engine::REDIS_VERSION,
        std::process::id()
    ));
    for w in std::mem::take(&mut cfg.warnings) {
        log::warning(&w);
    }
    let choice = match cfg.io_backend {
        config::IoBackend::Auto => runtime::Choice::Auto,
        config::IoBackend::IoUring => runtime::Choice::IoUring,
        config::IoBackend::Epoll => runtime::Choice::Epoll,
    };
    match runtime::init(choice) {
        Ok((true, line)) => log::warning(&line),
        Ok((false, line)) => log::notice(&line),
        Err(e) => {
            log::warning(&e);
            return 1;
        }
    }
    if let Err(e) = adjust_open_files_limit(&mut cfg, workers) {
        log::warning(&e);
        return 1;
    }
    if let Err(e) = std::fs::create_dir_all(&cfg.dir) {
        log::warning(&format!(
            "Can't create data directory '{}': {e} (running as {})",
            cfg.dir.display(),
            sys::effective_user()
        ));
        return 1;
    }
    // One server per data directory: two would write the same log.
    let lock_path = cfg.dir.join("kv-server.lock");
    let _dir_lock = match std::fs::File::create(&lock_path) {
        Err(e) => {
            log::warning(&format!(
                "Can't create the lock file {} in the data directory '{}': {} (running as {})",
                lock_path.display(),
                cfg.dir.display(),
                sys::strerror(&e),
                sys::effective_user()
            ));
            return 1;
        }
        Ok(f) => match f.try_lock() {
            Ok(()) => f,
            Err(std::fs::TryLockError::WouldBlock) => {
                log::warning(&format!(
                    "Can't lock {}: another kv-server is using the data directory '{}'",
                    lock_path.display(),
                    cfg.dir.display()
                ));
                return 1;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                log::warning(&format!("Can't lock {}: {e}", lock_path.display()));
                return 1;
            }
        },
    };
    let listeners = match bind_all(&cfg, workers) {
        Ok(l) => l,
        Err(e) => {
            log::warning(&e);
            log::warning(&format!(
                "Failed listening on port {} (tcp), aborting.",
                cfg.port
            ));
            return 1;
        }
    };
    // Shut at exit, so that a server restarted at once can bind: the
    // rings' pending accepts would keep these listening for a moment after
    // the process is gone.
    let listening: Vec<std::os::fd::RawFd> = listeners
        .iter()
        .flatten()
        .map(std::os::fd::AsRawFd::as_raw_fd)
        .collect();
    let port = listeners
        .first()
        .and_then(|l| l.first())
        .and_then(|l| l.local_addr().ok())
        .map_or(cfg.port, |a| a.port());

    if !cfg.pidfile.is_empty() {
        if let Err(e) = std::fs::write(&cfg.pidfile, format!("{}\n", std::process::id())) {
            log::warning(&format!("Failed to write PID file '{}': {e}", cfg.pidfile));
        }
    }
    // What to load: the newest snapshot the log continues, then the log
    // (recover::start has the rules).
    let start = match recover::start(&cfg, workers) {
        Ok(s) => s,
        Err(e) => {
            log::warning(&e);
            return 1;
        }
    };
    let snap_dir = snapshot::snapshot_dir(&cfg);
    if start.rewrite {
        if let Err(e) = snapshot::write_manifest_now(&snap_dir, &cfg.dbfilename, &start.manifest) {
            log::warning(&format!("Can't write the snapshot manifest: {e}"));
            return 1;
        }
    }
    let manifest = start.manifest;
    let snap_load = start.snapshot.map(|id| Arc::new((manifest.clone(), id)));
    let attach = start.attach;
    let recovered = start.log;
    // A Redis AOF next to an empty log and no snapshot is imported (moving
    // from Redis).
    let import = match &recovered {
        Some(r)
            if attach
                && snap_load.is_none()
                && r.shards.iter().all(|s| s.log.records.is_empty()) =>
        {
            match recover::read_redis_aof(&cfg) {
                Ok(i) => i,
                Err(e) => {
                    log::warning(&e);
                    return 1;
                }
            }
        }
        _ => None,
    };
    let mut import = Some(import);
    let log_dir = recovered
        .as_ref()
        .filter(|_| attach)
        .map(|r| r.log_dir.clone());
    let tx_base = recovered.as_ref().map_or(0, |r| r.tx_base);
    let mut per_shard: Vec<Option<recover::ShardRecovery>> = match recovered {
        Some(r) => r.shards.into_iter().map(Some).collect(),
        None => (0..workers).map(|_| None).collect(),
    };
    let loaded = Arc::new(std::sync::Barrier::new(workers));
    let load_started = std::time::Instant::now();
    let pidfile = cfg.pidfile.clone();
    let databases = cfg.databases as usize;
    let max_string = cfg.proto_max_bulk_len as usize;
    let hash_limits = config::hash_limits(&cfg);
    lazyfree::start();
    let lazy = lazyfree::settings(&cfg);
    let set_limits = config::set_limits(&cfg);
    let (senders, receivers): (Vec<_>, Vec<_>) =
        (0..workers).map(|_| mpsc::unbounded_channel()).unzip();
    let (shutdown_tx, shutdown_rx) = std::sync::mpsc::channel();
    let shared = Shared::new(cfg, senders, shutdown_tx);
    {
        let mut st = snapshot::Status::new(manifest, shared.start_unix_ms / 1000);
        if attach {
            st.log_id = st.manifest.log.as_ref().map(|l| l.id);
            if let Some(load) = &snap_load {
                let (m, id) = &**load;
                st.log_chain_bytes = m.chain_bytes(*id).unwrap_or(0);
            }
        }
        *shared.snapshot_status() = st;
    }
    if let Err(e) = watch_signals(Arc::clone(&shared)) {
        log::warning(&format!("Can't install signal handlers: {e}"));
        return 1;
    }

    for (id, (rx, mine)) in receivers.into_iter().zip(listeners).enumerate() {
        let shared = Arc::clone(&shared);
        let rec = per_shard.get_mut(id).and_then(Option::take);
        let loaded = Arc::clone(&loaded);
        let cpulist = Arc::clone(&cpulist);
        let log_dir = log_dir.clone();
        let import = if id == 0 {
            import.take().flatten()
        } else {
            None
        };
        let snap_load = snap_load.clone();
        let snap_dir = snap_dir.clone();
        let started = runtime::start_thread(format!("worker-{id}"), move || async move {
            if let Some(&cpu) = cpulist.get(id % cpulist.len().max(1)) {
                if let Err(e) = sys::pin_to_cpu(cpu) {
                    log::warning(&format!("worker {id}: could not pin to CPU {cpu}: {e}"));
                }
            }
            let mut shard = Shard::new(id, workers, databases);
            shard.max_string_len = max_string;
            shard.hash_limits = hash_limits;
            shard.lazyfree = lazyfree::for_shard(lazy);
            shard.set_limits = set_limits;
            if let Some(load) = &snap_load {
                let (m, snap) = &**load;
                shard.set_now_ms(worker::now_ms());
                match snapshot::load_chain(&snap_dir, m, *snap, &mut shard) {
                    Ok(n) => {
                        shared
                            .snapshot_loaded
                            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
                    }
                    Err(e) => {
                        log::warning(&format!("Loading snapshot {snap}: {e}"));
                        std::process::exit(1);
                    }
                }
            }
            // Then the log after it, in parallel with the other shards.
            let mut applied = 0;
            if let Some(rec) = &rec {
                shard.set_now_ms(worker::now_ms());
                match recover::replay(&mut shard, rec) {
                    Ok(n) => applied = n,
                    Err(e) => {
                        log::warning(&e);
                        std::process::exit(1);
                    }
                }
            }
            let worker = Worker::new(id, shard, shared);
            worker.set_tx_base(tx_base);
            if let (Some(mut rec), Some(dir)) = (rec, log_dir) {
                let durable = rec.next_lsn.saturating_sub(1);
                let aof = aof::Aof::new(
                    id,
                    worker.shared.clone(),
                    &dir,
                    rec.next_lsn,
                    rec.existing,
                    rec.resume.take(),
                );
                drop(rec);
                worker
                    .shard
                    .borrow_mut()
                    .log
                    .attach(Box::new(aof::Sink(aof.clone())), durable);
                worker.log_durable(durable);
                runtime::spawn(aof::flush_loop(worker.clone(), aof.clone()));
                runtime::spawn(aof::sync_loop(worker.clone(), aof));
            }
            worker
                .shared
                .aof_loaded
                .fetch_add(applied, std::sync::atomic::Ordering::Relaxed);
            // No shard serves before every shard has loaded.
            if loaded.wait().is_leader() {
                // Redis's aof_base_size after loading: the size loaded.
                let base = info::aof_current_size(&worker.shared);
                worker.shared.snapshot_status().aof_base_size = base;
                if snap_load.is_some() {
                    log::notice(&format!(
                        "DB loaded from disk: {:.3} seconds ({} keys)",
                        load_started.elapsed().as_secs_f64(),
                        worker
                            .shared
                            .snapshot_loaded
                            .load(std::sync::atomic::Ordering::Relaxed)
                    ));
                }
                let n = worker
                    .shared
                    .aof_loaded
                    .load(std::sync::atomic::Ordering::Relaxed);
                if n > 0 {
                    log::notice(&format!(
                        "DB loaded from append only file: {:.3} seconds ({n} commands)",
                        load_started.elapsed().as_secs_f64()
                    ));
                }
            }
            runtime::spawn(worker::mailbox_loop(worker.clone(), rx));
            if let Some((source, commands)) = import {
                let w = worker.clone();
                runtime::spawn(async move {
                    let started = std::time::Instant::now();
                    let errors = conn::run_internal(w.clone(), &commands).await;
                    log::notice(&format!(
                        "Imported {} commands from the Redis AOF {source} in {:.3} seconds \
                         ({errors} answered an error); the Redis files are left as they were",
                        commands.len(),
                        started.elapsed().as_secs_f64()
                    ));
                    start_serving(&w.shared, port);
                });
            } else if id == 0 {
                start_serving(&worker.shared, port);
            }
            let mut serving = worker.shared.serving.subscribe();
            runtime::spawn(worker::outbox_loop(worker.clone()));
            runtime::spawn(snapshot::writer_loop(worker.clone()));
            if id == 0 {
                runtime::spawn(snapshot::cron(worker.clone()));
            }
            runtime::spawn(worker::expire_loop(worker.clone()));
            if id == 0 {
                runtime::spawn(worker::rates_loop(worker.shared.clone()));
                runtime::spawn(crate::clients::cron(worker.shared.clone()));
            }
            let mut accepts = Vec::new();
            for l in mine {
                let local = l.local_addr().ok();
                let listener = match runtime::Listener::from_std(l) {
                    Ok(l) => l,
                    Err(e) => {
                        log::warning(&format!("worker {id}: can't listen: {e}"));
                        std::process::exit(1);
                    }
                };
                let worker = worker.clone();
                accepts.push(async move {
                    loop {
                        match listener.accept().await {
                            Ok((stream, peer)) => {
                                let local = local.unwrap_or(peer);
                                runtime::spawn(conn::serve(worker.clone(), stream, peer, local));
                            }
                            // The listener was shut at exit.
                            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => return,
                            Err(e) => {
                                log_accept_error(&e);
                                // Out of descriptors, the connection stays
                                // in the backlog: retry later, not in a loop.
                                let out_of_fds =
                                    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE));
                                let pause = if out_of_fds { 100 } else { 10 };
                                runtime::sleep(std::time::Duration::from_millis(pause)).await;
                            }
                        }
                    }
                });
            }
            runtime::spawn(async move {
                // Clients wait in the listen backlog until loading is over.
                let _ = serving.wait_for(|s| *s).await;
                for a in accepts {
                    runtime::spawn(a);
                }
            });
            // The worker lives until the process exits.
            std::future::pending::<()>().await;
        });
        if let Err(e) = started {
            log::warning(&format!("Can't start worker thread {id}: {e}"));
            return 1;
        }
    }
    log::notice(&format!(
        "Server initialized: {workers} worker threads (one shard each), {} event loops",
        runtime::backend_name()
    ));
    let _ = shutdown_rx.recv();
    for &fd in &listening {
        sys::shutdown_socket(fd);
    }
    if let Some(dir) = &log_dir {
        log::notice("Calling fsync() on the AOF file.");
        recover::sync_logs(dir);
    }
    if !pidfile.is_empty() {
        let _ = std::fs::remove_file(&pidfile);
    }
    log::warning("kv-server is now ready to exit, bye bye...");
    0
}
