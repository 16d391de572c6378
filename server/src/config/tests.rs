#[test]
fn cpulist_as_redis_writes_it() {
    use super::parse_cpulist;
    assert_eq!(parse_cpulist(""), Ok(vec![]));
    assert_eq!(parse_cpulist("3"), Ok(vec![3]));
    assert_eq!(parse_cpulist("0-7:2"), Ok(vec![0, 2, 4, 6]));
    assert_eq!(parse_cpulist("1,10-11"), Ok(vec![1, 10, 11]));
    for bad in ["x", "3-1", "0-4:0", "1,,2", "-1", "0-"] {
        assert!(parse_cpulist(bad).is_err(), "{bad}");
    }
}

use super::*;
use std::ffi::OsString;

use engine::testkit::TempDir;

fn run(args: &[&str]) -> Result<Config, ConfigError> {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    match Config::from_args(&args)? {
        Startup::Run(cfg) => Ok(*cfg),
        other => panic!("expected Run, got {other:?}"),
    }
}

fn load(text: &str) -> Result<Config, ConfigError> {
    let mut cfg = Config::default();
    let source = Source {
        file: "test.conf".to_string(),
        cmdline_from: usize::MAX,
    };
    let mut loading = Loading::default();
    load_text(&mut cfg, text.as_bytes(), 0, &mut loading, &source)?;
    cfg.warnings = loading.warnings;
    Ok(cfg)
}

fn line_error(text: &str) -> (usize, String, String) {
    match load(text) {
        Err(ConfigError::Line {
            line_no,
            line,
            reason,
            ..
        }) => (line_no, line, reason),
        other => panic!("expected a line error for {text:?}, got {other:?}"),
    }
}

fn words(line: &str) -> Option<Vec<String>> {
    split_args(line.as_bytes()).map(|w| {
        w.into_iter()
            .map(|w| String::from_utf8_lossy(&w).into_owned())
            .collect()
    })
}

fn pair(name: &str, value: &str) -> (Vec<u8>, Vec<u8>) {
    (name.as_bytes().to_vec(), value.as_bytes().to_vec())
}

fn get1(cfg: &Config, name: &str) -> String {
    let got = cfg.get(name.as_bytes());
    assert_eq!(got.len(), 1, "{name}: {got:?}");
    got[0].1.clone()
}

#[test]
fn split_args_follows_sdssplitargs() {
    assert_eq!(
        words("  port   6379  "),
        Some(vec!["port".into(), "6379".into()])
    );
    assert_eq!(
        words(r#"requirepass "a b\n\t\"\\\x41\x4a\q""#),
        Some(vec!["requirepass".into(), "a b\n\t\"\\AJq".into()])
    );
    assert_eq!(
        words(r"x 'it\'s \n'"),
        Some(vec!["x".into(), "it's \\n".into()])
    );
    // Quotes may start inside a word.
    assert_eq!(words(r#"ab"c d"e"#), None);
    assert_eq!(words(r#"ab"c d""#), Some(vec!["abc d".into()]));
    assert_eq!(words(r#"x """#), Some(vec!["x".into(), "".into()]));
    assert_eq!(words(r#"x "\xZZ""#), Some(vec!["x".into(), "xZZ".into()]));
    assert_eq!(
        split_args(b"x \"\\x00\\xff\""),
        Some(vec![b"x".to_vec(), vec![0, 0xff]])
    );
    // Unbalanced or glued quotes.
    assert_eq!(words(r#"port "6379"#), None);
    assert_eq!(words("port '6379"), None);
    assert_eq!(words(r#"port "1"2"#), None);
    assert_eq!(words("port '1'x"), None);
    assert_eq!(words(""), Some(vec![]));
}

#[test]
fn repr_reads_back_as_the_same_bytes() {
    let samples: [&[u8]; 4] = [
        b"plain",
        b"sp ace \"q\" \\ '",
        b"\n\r\t\x07\x08",
        &[0, 1, 0x7f, 0xc3, 0xa9],
    ];
    for s in samples {
        let line = format!("x {}", repr(s));
        assert_eq!(
            split_args(line.as_bytes()),
            Some(vec![b"x".to_vec(), s.to_vec()]),
            "{line}"
        );
    }
    assert_eq!(repr(b"a\"b\\"), r#""a\"b\\""#);
}

#[test]
fn memory_units_follow_memtoull() {
    assert_eq!(parse_memory(b"123"), Some(123));
    assert_eq!(parse_memory(b"7b"), Some(7));
    assert_eq!(parse_memory(b"1k"), Some(1000));
    assert_eq!(parse_memory(b"1KB"), Some(1024));
    assert_eq!(parse_memory(b"2m"), Some(2_000_000));
    assert_eq!(parse_memory(b"2Mb"), Some(2 * 1024 * 1024));
    assert_eq!(parse_memory(b"3g"), Some(3_000_000_000));
    assert_eq!(parse_memory(b"3gB"), Some(3 * 1024 * 1024 * 1024));
    assert_eq!(parse_memory(b"-1"), None);
    assert_eq!(parse_memory(b"12zz"), None);
    assert_eq!(parse_memory(b"1.5mb"), None);
    assert_eq!(parse_memory(b"1 mb"), None);
    assert_eq!(parse_memory(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_memory(b"18446744073709551615kb"), None);
    assert_eq!(format_memory(512 * 1024 * 1024), "512mb");
    assert_eq!(format_memory(1024 * 1024 * 1024), "1gb");
    assert_eq!(format_memory(3 * 1024), "3kb");
    assert_eq!(format_memory(1000), "1000");
    assert_eq!(format_memory(0), "0");
}

#[test]
fn integers_follow_string2ll() {
    assert_eq!(parse_ll(b"0"), Some(0));
    assert_eq!(parse_ll(b"6379"), Some(6379));
    assert_eq!(parse_ll(b"-5"), Some(-5));
    assert_eq!(parse_ll(b"-9223372036854775808"), Some(i64::MIN));
    assert_eq!(parse_ll(b"9223372036854775808"), None);
    for bad in ["", "-", "-0", "007", "+5", " 1", "1 ", "0x10", "1e3", "abc"] {
        assert_eq!(parse_ll(bad.as_bytes()), None, "{bad:?}");
    }
}

/// Syntax, replies and errors checked against redis-server 7.0.15.
#[test]
fn client_output_buffer_limit_and_maxmemory_clients() {
    let get = |cfg: &Config, name: &str| cfg.get(name.as_bytes())[0].1.clone();
    let set = |cfg: &mut Config, name: &str, v: &str| {
        cfg.set(&[(name.as_bytes().to_vec(), v.as_bytes().to_vec())])
    };
    let mut cfg = load(
        "client-output-buffer-limit normal 1mb 2mb 3
         client-output-buffer-limit pubsub 10 20 30 replica 1gb 0 0
",
    )
    .unwrap();
    assert_eq!(
        get(&cfg, "client-output-buffer-limit"),
        "normal 1048576 2097152 3 slave 1073741824 0 0 pubsub 10 20 30"
    );
    set(&mut cfg, "client-output-buffer-limit", "NORMAL 64mb 0 0").unwrap();
    assert_eq!(cfg.client_output_buffer_limit[0].hard, 64 << 20);
    let err = |reason: &str| {
        format!(
            "ERR CONFIG SET failed (possibly related to argument 'client-output-buffer-limit') - {reason}"
        )
    };
    for (bad, reason) in [
        (
            "normal 1mb 2mb",
            "Wrong number of arguments in buffer limit configuration.",
        ),
        (
            "foo 1 2 3",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "master 1 2 3",
            "Invalid client class specified in buffer limit configuration.",
        ),
        (
            "normal 1x 2 3",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        (
            "normal 1 2 -3",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
        // All or nothing: a good group before a bad one changes nothing.
        (
            "pubsub 1 1 1 normal 1 2 3x",
            "Error in hard, soft or soft_seconds setting in buffer limit configuration.",
        ),
    ] {
        assert_eq!(
            set(&mut cfg, "client-output-buffer-limit", bad),
            Err(err(reason)),
            "{bad}"
        );
    }
    assert_eq!(cfg.client_output_buffer_limit[2].hard, 10);
    // Round trip through CONFIG REWRITE's line.
    let line = lookup(b"client-output-buffer-limit")
        .unwrap()
        .rewrite_line(&cfg);
    assert_eq!(
        line,
        "client-output-buffer-limit normal 64mb 0 0 slave 1gb 0 0 pubsub 10 20 30"
    );
    assert_eq!(
        load(&line).unwrap().client_output_buffer_limit,
        cfg.client_output_buffer_limit
    );

    assert_eq!(get(&cfg, "maxmemory-clients"), "0");
    set(&mut cfg, "maxmemory-clients", "10%").unwrap();
    assert_eq!(get(&cfg, "maxmemory-clients"), "10%");
    set(&mut cfg, "maxmemory-clients", "1mb").unwrap();
    assert_eq!(get(&cfg, "maxmemory-clients"), "1048576");
    let err = |reason: &str| {
        format!(
            "ERR CONFIG SET failed (possibly related to argument 'maxmemory-clients') - {reason}"
        )
    };
    assert_eq!(
        set(&mut cfg, "maxmemory-clients", "101%"),
        Err(err("percentage argument must be less or equal to 100"))
    );
    for bad in ["abc", "-1"] {
        assert_eq!(
            set(&mut cfg, "maxmemory-clients", bad),
            Err(err("argument must be a memory or percent value"))
        );
    }
}

#[test]
fn defaults_are_the_documented_ones() {
    let cfg = Config::default();
    let all: HashMap<String, String> = cfg.get(b"*").into_iter().collect();
    let expected = [
        ("bind", "127.0.0.1"),
        ("port", "6379"),
        ("threads", "0"),
        ("databases", "16"),
        ("requirepass", ""),
        ("maxclients", "10000"),
        ("proto-max-bulk-len", "536870912"),
        ("client-query-buffer-limit", "1073741824"),
        (
            "client-output-buffer-limit",
            "normal 536870912 134217728 60 slave 268435456 67108864 60 pubsub 33554432 8388608 60",
        ),
        ("maxmemory-clients", "0"),
        ("dir", "./data"),
        ("dbfilename", "dump.rdb"),
        ("save", "3600 1 300 100 60 10000"),
        ("stop-writes-on-bgsave-error", "yes"),
        ("rdbcompression", "yes"),
        ("rdbchecksum", "yes"),
        ("rdb-del-sync-files", "no"),
        ("snapshotdirname", "snapshotdir"),
        ("snapshot-full-ratio", "50"),
        ("snapshot-pace", "3"),
        ("latency-monitor-threshold", "0"),
        ("disable-thp", "yes"),
        ("lazyfree-lazy-user-del", "no"),
        ("lazyfree-lazy-server-del", "no"),
        ("lazyfree-lazy-expire", "no"),
        ("lazyfree-lazy-user-flush", "no"),
        ("lazyfree-lazy-eviction", "no"),
        ("replica-lazy-flush", "no"),
        ("slave-lazy-flush", "no"),
        ("auto-aof-rewrite-percentage", "100"),
        ("auto-aof-rewrite-min-size", "67108864"),
        ("hz", "10"),
        ("timeout", "0"),
        ("tcp-keepalive", "300"),
        ("tcp-backlog", "511"),
        ("loglevel", "notice"),
        ("logfile", ""),
        ("daemonize", "no"),
        ("supervised", "no"),
        ("pidfile", ""),
        ("protected-mode", "yes"),
        ("appendonly", "yes"),
        ("appendfsync", "everysec"),
        ("appenddirname", "appendonlydir"),
        ("appendfilename", "appendonly.aof"),
        ("aof-load-truncated", "yes"),
        ("aof-segment-size", "67108864"),
        ("aof-io", "auto"),
        ("io-backend", "auto"),
        ("enable-debug-command", "no"),
        ("enable-protected-configs", "no"),
        ("server_cpulist", ""),
        ("hash-max-listpack-entries", "512"),
        ("hash-max-listpack-value", "64"),
        ("hash-max-ziplist-entries", "512"),
        ("hash-max-ziplist-value", "64"),
        ("set-max-intset-entries", "512"),
        ("set-max-listpack-entries", "128"),
        ("set-max-listpack-value", "64"),
    ];
    assert_eq!(all.len(), expected.len());
    for (name, value) in expected {
        assert_eq!(all.get(name).map(String::as_str), Some(value), "{name}");
    }
}

#[test]
fn parses_a_file_with_quotes_units_comments_and_case() {
    let cfg = load(
        "# a comment\n\
         \n\
         \t  # indented comment\r\n\
         PORT 7000\r\n\
         bind 10.0.0.1 -::1\n\
         Requirepass \"s3cr\\x45t \\\"x\\\"\"\n\
         proto-max-bulk-len 2MB\n\
         client-query-buffer-limit 2g\n\
         dir '/var/lib/my data'\n\
         loglevel WARNING\n\
         protected-mode No\n\
         daemonize no\n\
         hz 1000\n\
         threads 4\n\
         logfile \"\"\n\
         pidfile /run/kv.pid\n",
    )
    .unwrap();
    assert_eq!(cfg.port, 7000);
    assert_eq!(cfg.bind, vec!["10.0.0.1", "-::1"]);
    assert_eq!(cfg.requirepass, "s3crEt \"x\"");
    assert_eq!(cfg.proto_max_bulk_len, 2 * 1024 * 1024);
    assert_eq!(cfg.client_query_buffer_limit, 2_000_000_000);
    assert_eq!(cfg.dir, PathBuf::from("/var/lib/my data"));
    assert_eq!(cfg.loglevel, LogLevel::Warning);
    assert!(!cfg.protected_mode);
    assert_eq!(cfg.hz, 500, "hz is clamped like Redis");
    assert_eq!(cfg.threads, 4);
    assert_eq!(cfg.logfile, "");
    assert_eq!(cfg.pidfile, "/run/kv.pid");
    // Later lines win.
    assert_eq!(load("port 1\nport 2\n").unwrap().port, 2);
    // bind with no address, or one empty address, listens nowhere.
    assert!(load("bind\n").unwrap().bind.is_empty());
    assert!(load("bind \"\"\n").unwrap().bind.is_empty());
    assert_eq!(load("hz 0").unwrap().hz, 1);
}

#[test]
fn unknown_directive_error_has_redis_text() {
    let err = load("port 7000\nfoo bar\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "*** FATAL CONFIG FILE ERROR (kv-server {}) ***\n\
             Reading the configuration file test.conf, at line 2\n\
             >>> 'foo bar'\n\
             Bad directive or wrong number of arguments",
            env!("CARGO_PKG_VERSION")
        )
    );
    // A command-line option: no line number, the option as given.
    let err = run(&["--hz", "10", "--port", "99999"]).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "*** FATAL CONFIG ERROR (kv-server {}) ***\n\
             Reading the command-line options\n\
             >>> '--port \"99999\"'\n\
             argument must be between 0 and 65535 inclusive",
            env!("CARGO_PKG_VERSION")
        )
    );
    // A file then options: the file's line is a file line.
    let tmp = TempDir::new("origin");
    let file = tmp.write("kv.conf", "port 7000\n\nhz x\n");
    let err = run(&[file.to_str().unwrap(), "--port", "1"]).unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "Reading the configuration file {}, at line 3\n>>> 'hz x'",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn redis_directives_that_do_not_apply_are_accepted_with_one_warning() {
    let cfg = load(
        "repl-backlog-size 1mb\n\
         client-output-buffer-limit normal 0 0 0\n\
         client-output-buffer-limit replica 256mb 64mb 60\n\
         Maxmemory 1gb\n\
         replicaof no one\n\
         list-max-ziplist-entries 512\n\
         port 7000\n",
    )
    .unwrap();
    assert_eq!(cfg.port, 7000);
    // client-output-buffer-limit applies (no warning); the others warn.
    assert_eq!(cfg.warnings.len(), 3, "{:?}", cfg.warnings);
    assert_eq!(
        cfg.warnings[1],
        "Config directive 'maxmemory' ignored: no memory limit or eviction in kv-server \
         yet (line 4 of test.conf)"
    );
    assert!(cfg.warnings[2].starts_with("Config directive 'replicaof' ignored"));
    // Not shown by CONFIG GET: they have no value here.
    assert!(cfg.get(b"maxmemory").is_empty());
    // Values that would be unsafe to ignore stay fatal.
    for line in [
        "replicaof 10.0.0.1 6379",
        "slaveof 10.0.0.1 6379",
        "cluster-enabled yes",
        "tls-port 6380",
        "aclfile /etc/redis/users.acl",
        "user alice on >pw ~* +@all",
        "rename-command CONFIG \"\"",
        "loadmodule /x.so",
    ] {
        let (_, _, reason) = line_error(line);
        assert!(reason.starts_with("kv-server "), "{line}: {reason}");
    }
    // Unknown to Redis: still an error.
    let (_, _, reason) = line_error("maxmemry 1gb");
    assert_eq!(reason, "Bad directive or wrong number of arguments");
}

#[test]
fn every_redis_7_0_directive_loads() {
    // redis-server 7.0.15's `CONFIG GET *` names (aliases included).
    const REDIS_7_0: &str = "acl-pubsub-default aclfile acllog-max-len active-defrag-cycle-max active-defrag-cycle-min active-defrag-ignore-bytes active-defrag-max-scan-fields active-defrag-threshold-lower active-defrag-threshold-upper active-expire-effort activedefrag activerehashing always-show-logo aof-disable-auto-gc aof-load-truncated aof-rewrite-incremental-fsync aof-timestamp-enabled aof-use-rdb-preamble aof_rewrite_cpulist appenddirname appendfilename appendfsync appendonly auto-aof-rewrite-min-size auto-aof-rewrite-percentage bgsave_cpulist bind bind-source-addr bio_cpulist busy-reply-threshold client-output-buffer-limit client-query-buffer-limit cluster-allow-pubsubshard-when-down cluster-allow-reads-when-down cluster-allow-replica-migration cluster-announce-bus-port cluster-announce-hostname cluster-announce-ip cluster-announce-port cluster-announce-tls-port cluster-config-file cluster-enabled cluster-link-sendbuf-limit cluster-migration-barrier cluster-node-timeout cluster-port cluster-preferred-endpoint-type cluster-replica-no-failover cluster-replica-validity-factor cluster-require-full-coverage cluster-slave-no-failover cluster-slave-validity-factor crash-log-enabled crash-memcheck-enabled daemonize databases dbfilename dir disable-thp dynamic-hz enable-debug-command enable-module-command enable-protected-configs hash-max-listpack-entries hash-max-listpack-value hash-max-ziplist-entries hash-max-ziplist-value hll-sparse-max-bytes hz ignore-warnings io-threads io-threads-do-reads jemalloc-bg-thread latency-monitor-threshold latency-tracking latency-tracking-info-percentiles lazyfree-lazy-eviction lazyfree-lazy-expire lazyfree-lazy-server-del lazyfree-lazy-user-del lazyfree-lazy-user-flush lfu-decay-time lfu-log-factor list-compress-depth list-max-listpack-size list-max-ziplist-size logfile loglevel lua-time-limit masterauth masteruser maxclients maxmemory maxmemory-clients maxmemory-eviction-tenacity maxmemory-policy maxmemory-samples min-replicas-max-lag min-replicas-to-write min-slaves-max-lag min-slaves-to-write no-appendfsync-on-rewrite notify-keyspace-events oom-score-adj oom-score-adj-values pidfile port proc-title-template propagation-error-behavior protected-mode proto-max-bulk-len rdb-del-sync-files rdb-save-incremental-fsync rdbchecksum rdbcompression repl-backlog-size repl-backlog-ttl repl-disable-tcp-nodelay repl-diskless-load repl-diskless-sync repl-diskless-sync-delay repl-diskless-sync-max-replicas repl-ping-replica-period repl-ping-slave-period repl-timeout replica-announce-ip replica-announce-port replica-announced replica-ignore-disk-write-errors replica-ignore-maxmemory replica-lazy-flush replica-priority replica-read-only replica-serve-stale-data replicaof requirepass sanitize-dump-payload save server_cpulist set-max-intset-entries set-proc-title shutdown-on-sigint shutdown-on-sigterm shutdown-timeout slave-announce-ip slave-announce-port slave-ignore-maxmemory slave-lazy-flush slave-priority slave-read-only slave-serve-stale-data slaveof slowlog-log-slower-than slowlog-max-len socket-mark-id stop-writes-on-bgsave-error stream-node-max-bytes stream-node-max-entries supervised syslog-enabled syslog-facility syslog-ident tcp-backlog tcp-keepalive timeout tls-auth-clients tls-ca-cert-dir tls-ca-cert-file tls-cert-file tls-ciphers tls-ciphersuites tls-client-cert-file tls-client-key-file tls-client-key-file-pass tls-cluster tls-dh-params-file tls-key-file tls-key-file-pass tls-port tls-prefer-server-ciphers tls-protocols tls-replication tls-session-cache-size tls-session-cache-timeout tls-session-caching tracking-table-max-keys unixsocket unixsocketperm zset-max-listpack-entries zset-max-listpack-value zset-max-ziplist-entries zset-max-ziplist-value";
    let names: Vec<&str> = REDIS_7_0.split(' ').collect();
    assert_eq!(names.len(), 192);
    for name in names {
        assert!(
            lookup(name.as_bytes()).is_some() || foreign(name.as_bytes()).is_some(),
            "{name} is neither applied nor accepted"
        );
    }
}

#[test]
fn bad_values_have_redis_reasons_and_line_numbers() {
    let cases = [
        ("port abc", "argument couldn't be parsed into an integer"),
        (
            "appendfsync sometimes",
            "argument(s) must be one of the following: always, everysec, no",
        ),
        ("appendonly maybe", "argument must be 'yes' or 'no'"),
        (
            "appenddirname a/b",
            "appenddirname can't be a path, just a dirname",
        ),
        (
            "port 99999",
            "argument must be between 0 and 65535 inclusive",
        ),
        ("port", "wrong number of arguments"),
        ("port 1 2", "wrong number of arguments"),
        ("port 1 # comment", "wrong number of arguments"),
        ("protected-mode maybe", "argument must be 'yes' or 'no'"),
        (
            "loglevel loud",
            "argument(s) must be one of the following: debug, verbose, notice, warning, nothing",
        ),
        ("proto-max-bulk-len 12zz", "argument must be a memory value"),
        ("proto-max-bulk-len -1", "argument must be a memory value"),
        (
            "proto-max-bulk-len 10",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        (
            "client-query-buffer-limit 18446744073709551615",
            "argument must be between 1048576 and 9223372036854775807 inclusive",
        ),
        (
            "databases 0",
            "argument must be between 1 and 2147483647 inclusive",
        ),
        (
            "maxclients 0",
            "argument must be between 1 and 4294967295 inclusive",
        ),
        (
            "timeout -1",
            "argument must be between 0 and 2147483647 inclusive",
        ),
        (
            "tcp-backlog -5",
            "argument must be between 0 and 2147483647 inclusive",
        ),
        (
            "threads 5000",
            "argument must be between 0 and 1024 inclusive",
        ),
        (
            "dbfilename a/b",
            "dbfilename can't be a path, just a filename",
        ),
        (
            "snapshotdirname x/snap",
            "snapshotdirname can't be a path, just a dirname",
        ),
        (
            "snapshot-full-ratio 0",
            "argument must be between 1 and 10000 inclusive",
        ),
        (
            "snapshot-pace 21",
            "argument must be between 0 and 20 inclusive",
        ),
        ("rdbchecksum maybe", "argument must be 'yes' or 'no'"),
        ("save 60", "Invalid save parameters"),
        ("port \"abc", "Unbalanced quotes in configuration line"),
        ("include", "Bad directive or wrong number of arguments"),
        (
            "bind a b c d e f g h i j k l m n o p q",
            "Too many bind addresses specified.",
        ),
    ];
    for (line, reason) in cases {
        let text = format!("# header\n\nport 7000\n{line}\nport 7001\n");
        let (line_no, shown, got) = line_error(&text);
        assert_eq!((line_no, shown.as_str(), got.as_str()), (4, line, reason));
    }
    let (line_no, _, reason) = line_error("replicaof 10.0.0.1 6379");
    assert_eq!(line_no, 1);
    assert!(reason.contains("cannot start as a replica"), "{reason}");
    // The line is shown trimmed, as Redis does.
    let (_, shown, _) = line_error("   port x  \r");
    assert_eq!(shown, "port x");
}

#[test]
fn include_loads_files_and_patterns_and_reports_their_lines() {
    let tmp = TempDir::new("include");
    let d = tmp.0.display();
    tmp.write("sub.conf", "port 7100\nhz 20\n");
    fs::create_dir_all(tmp.0.join("conf.d")).unwrap();
    tmp.write("conf.d/b.conf", "timeout 9\n");
    tmp.write("conf.d/a.conf", "timeout 8\nmaxclients 50\n");
    tmp.write("conf.d/.hidden.conf", "timeout 99\n");
    let main = tmp.write(
        "main.conf",
        &format!(
            "include {d}/sub.conf\nhz 30\nINCLUDE \"{d}/conf.d/*.conf\"\ninclude {d}/none/*.conf\n"
        ),
    );
    let cfg = run(&[main.to_str().unwrap()]).unwrap();
    assert_eq!(cfg.port, 7100);
    assert_eq!(cfg.hz, 30, "a line after the include wins");
    assert_eq!(
        cfg.timeout, 9,
        "pattern matches load in sorted order, dot files skipped"
    );
    assert_eq!(cfg.maxclients, 50);

    tmp.write("bad.conf", "\n\nhz x\n");
    let main = tmp.write("main2.conf", &format!("port 1\ninclude {d}/bad.conf\n"));
    match run(&[main.to_str().unwrap()]) {
        Err(ConfigError::Line { line_no, line, .. }) => {
            assert_eq!((line_no, line.as_str()), (3, "hz x"))
        }
        other => panic!("{other:?}"),
    }
    let main = tmp.write("main3.conf", &format!("include {d}/missing.conf\n"));
    assert_eq!(
        run(&[main.to_str().unwrap()]).unwrap_err().to_string(),
        format!(
            "Fatal error, can't open config file '{d}/missing.conf': No such file or directory"
        )
    );
    // A file including itself stops instead of recursing forever.
    let main = tmp.0.join("self.conf");
    fs::write(&main, format!("include {}\n", main.display())).unwrap();
    match run(&[main.to_str().unwrap()]) {
        Err(ConfigError::Line { reason, .. }) => assert!(reason.contains("nested"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn command_line_options_come_after_the_file_and_later_wins() {
    let tmp = TempDir::new("cli");
    let file = tmp.write("kv.conf", "port 7000\nhz 20\nloglevel debug\n");
    let path = file.to_str().unwrap();
    let cfg = run(&[
        path, "--port", "7001", "--bind", "1.2.3.4", "5.6.7.8", "--port", "7002", "--hz 30",
    ])
    .unwrap();
    assert_eq!(cfg.port, 7002);
    assert_eq!(cfg.bind, vec!["1.2.3.4", "5.6.7.8"]);
    assert_eq!(cfg.hz, 30, "`--name value` in one argument works");
    assert_eq!(
        cfg.loglevel,
        LogLevel::Debug,
        "file values not overridden stay"
    );
    assert_eq!(cfg.config_file.as_deref(), Some(file.as_path()));

    // Relative file names are kept as absolute paths.
    let cwd = std::env::current_dir().unwrap();
    let rel = pathdiff(&file, &cwd);
    let cfg = run(&[rel.to_str().unwrap()]).unwrap();
    assert!(cfg.config_file.as_ref().unwrap().is_absolute());

    // Without a file.
    let cfg = run(&["--port", "7003", "--requirepass", "--not-an-option"]).unwrap();
    assert_eq!(cfg.port, 7003);
    assert_eq!(cfg.requirepass, "--not-an-option");
    assert_eq!(cfg.config_file, None);
    assert_eq!(run(&[]).unwrap(), Config::default());

    // Errors point at the option's line: file lines, one separator, then options.
    let err = run(&[path, "--hz", "20", "--port", "abc"]).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Line {
            origin: Origin::CommandLine,
            line_no: 6,
            line: "port \"abc\"".into(),
            reason: "argument couldn't be parsed into an integer".into()
        }
    );
    let err = run(&["--foo", "bar"]).unwrap_err();
    assert_eq!(
        err,
        ConfigError::Line {
            origin: Origin::CommandLine,
            line_no: 2,
            line: "foo \"bar\"".into(),
            reason: "Bad directive or wrong number of arguments".into()
        }
    );
    let err = run(&["--port", "1", "2"]).unwrap_err();
    assert!(
        matches!(err, ConfigError::Line { ref reason, .. } if reason == "wrong number of arguments"),
        "{err:?}"
    );
    let missing = tmp.0.join("missing.conf");
    assert_eq!(
        run(&[missing.to_str().unwrap()]).unwrap_err(),
        ConfigError::Open {
            path: missing.display().to_string(),
            reason: "No such file or directory".into()
        }
    );
}

/// `path` relative to `base` (both absolute), with `..` as needed.
fn pathdiff(path: &Path, base: &Path) -> PathBuf {
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = PathBuf::new();
    for _ in common..b.len() {
        out.push("..");
    }
    for c in &p[common..] {
        out.push(c);
    }
    out
}

#[test]
fn help_and_version() {
    for flag in ["-h", "--help"] {
        match Config::from_args(&[flag]).unwrap() {
            Startup::Help(text) => {
                assert!(
                    text.starts_with("Usage: kv-server [/path/to/redis.conf]"),
                    "{text}"
                );
                // Every directive, with its default and its line.
                for d in DIRECTIVES {
                    assert!(text.contains(&format!("\n  --{} ", d.name)), "{}", d.name);
                    assert!(text.contains(d.help), "{}", d.name);
                }
                assert!(text.contains("--port <n>   (default: 6379)"), "{text}");
                assert!(text.contains("--proto-max-bulk-len <bytes>   (default: 512mb)"));
                assert!(text.contains(" maxmemory "), "{text}");
            }
            other => panic!("{other:?}"),
        }
    }
    for flag in ["-v", "--version"] {
        let args = vec![flag.to_string()];
        assert!(matches!(
            Config::from_args(&args).unwrap(),
            Startup::Version
        ));
    }
    // Only as the first argument, as in redis-server.
    assert!(run(&["--port", "1", "--version"]).is_err());
}

#[test]
fn config_get_globs_and_formats() {
    let mut cfg = load("bind 127.0.0.1 -::1\nproto-max-bulk-len 2mb\nprotected-mode no\n").unwrap();
    cfg.requirepass = "pw".into();
    let names =
        |p: &str| -> Vec<String> { cfg.get(p.as_bytes()).into_iter().map(|(n, _)| n).collect() };
    assert_eq!(names("*").len(), DIRECTIVES.len() + ALIASES.len());
    assert_eq!(
        names("*max*"),
        vec![
            "maxclients",
            "proto-max-bulk-len",
            "maxmemory-clients",
            "hash-max-listpack-entries",
            "hash-max-listpack-value",
            "set-max-intset-entries",
            "set-max-listpack-entries",
            "set-max-listpack-value",
            "hash-max-ziplist-entries",
            "hash-max-ziplist-value"
        ]
    );
    assert_eq!(names("po?t"), vec!["port"]);
    assert_eq!(names("P*T"), vec!["port"], "globs ignore case");
    assert_eq!(names("tcp-*"), vec!["tcp-keepalive", "tcp-backlog"]);
    assert_eq!(
        names("[dh]*"),
        vec![
            "databases",
            "dir",
            "dbfilename",
            "disable-thp",
            "hz",
            "daemonize",
            "hash-max-listpack-entries",
            "hash-max-listpack-value",
            "hash-max-ziplist-entries",
            "hash-max-ziplist-value"
        ]
    );
    assert!(names("nosuch*").is_empty());
    assert!(cfg.get(b"nosuch").is_empty());
    // An exact name is echoed as given.
    assert_eq!(
        cfg.get(b"PORT"),
        vec![("PORT".to_string(), "6379".to_string())]
    );
    assert_eq!(get1(&cfg, "bind"), "127.0.0.1 -::1");
    assert_eq!(get1(&cfg, "proto-max-bulk-len"), "2097152");
    assert_eq!(get1(&cfg, "protected-mode"), "no");
    assert_eq!(get1(&cfg, "requirepass"), "pw");
    assert_eq!(get1(&cfg, "loglevel"), "notice");
}

#[test]
fn config_set_is_all_or_nothing() {
    let mut cfg = Config::default();
    let changed = cfg
        .set(&[
            pair("hz", "50"),
            pair("MAXCLIENTS", "100"),
            pair("loglevel", "WARNING"),
            pair("timeout", "0"),
        ])
        .unwrap();
    assert_eq!(
        changed,
        vec!["hz", "maxclients", "loglevel"],
        "timeout did not change"
    );
    assert_eq!(
        (cfg.hz, cfg.maxclients, cfg.loglevel),
        (50, 100, LogLevel::Warning)
    );

    let before = cfg.clone();
    type Pairs = [(Vec<u8>, Vec<u8>)];
    let cases: [(&Pairs, &str); 6] = [
        (
            &[pair("hz", "60"), pair("maxclients", "abc")],
            "ERR CONFIG SET failed (possibly related to argument 'maxclients') - argument couldn't be parsed into an integer",
        ),
        (
            &[pair("hz", "60"), pair("foo", "1"), pair("port", "1")],
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
        ),
        (
            &[pair("maxclients", "abc"), pair("foo", "1")],
            "ERR Unknown option or number of arguments for CONFIG SET - 'foo'",
        ),
        (
            &[pair("hz", "60"), pair("Port", "7000")],
            "ERR CONFIG SET failed (possibly related to argument 'Port') - can't set immutable config",
        ),
        (
            &[pair("hz", "60"), pair("HZ", "61")],
            "ERR CONFIG SET failed (possibly related to argument 'HZ') - duplicate parameter",
        ),
        (
            &[pair("timeout", "5"), pair("protected-mode", "maybe")],
            "ERR CONFIG SET failed (possibly related to argument 'protected-mode') - argument must be 'yes' or 'no'",
        ),
    ];
    for (pairs, error) in cases {
        assert_eq!(cfg.set(pairs), Err(error.to_string()));
        assert_eq!(cfg, before, "nothing changed after {error}");
    }
    for name in [
        "bind",
        "port",
        "threads",
        "databases",
        "daemonize",
        "logfile",
        "pidfile",
        "tcp-backlog",
        "server_cpulist",
        "rdbchecksum",
        "snapshotdirname",
    ] {
        let err = cfg.set(&[pair(name, "1")]).unwrap_err();
        assert!(err.ends_with("can't set immutable config"), "{name}: {err}");
    }
    // Error replies stay on one line whatever the client sent.
    let err = cfg.set(&[pair("a\r\nb", "1")]).unwrap_err();
    assert!(!err.contains(['\r', '\n']), "{err:?}");

    assert_eq!(cfg.set(&[pair("hz", "100000")]).unwrap(), vec!["hz"]);
    assert_eq!(cfg.hz, 500, "clamped like Redis");
    assert_eq!(
        cfg.set(&[pair("proto-max-bulk-len", "1gb")]).unwrap(),
        vec!["proto-max-bulk-len"]
    );
    assert_eq!(get1(&cfg, "proto-max-bulk-len"), "1073741824");
    cfg.set(&[pair("requirepass", "x y"), pair("dir", "/tmp/kv")])
        .unwrap();
    assert_eq!(cfg.requirepass, "x y");
    cfg.set(&[pair("requirepass", "")]).unwrap();
    assert_eq!(cfg.requirepass, "");
    assert!(cfg.set(&[]).unwrap().is_empty());
}

#[test]
fn rewrite_keeps_the_file_and_round_trips() {
    let tmp = TempDir::new("rewrite");
    let d = tmp.0.display();
    tmp.write("inc.conf", "timeout 30\n");
    let file = tmp.write(
        "kv.conf",
        &format!(
            "# My server\n\
             \n\
             port 7000\n\
             maxclients 100\n\
             hz 15\n\
             hz 20\n\
             proto-max-bulk-len 512mb\n\
             requirepass \"old\"\n\
             include {d}/inc.conf\n\
             # trailing comment\n"
        ),
    );
    let mut cfg = run(&[file.to_str().unwrap(), "--loglevel", "warning"]).unwrap();
    cfg.set(&[
        pair("maxclients", "200"),
        pair("hz", "25"),
        pair("requirepass", "new \"pw\""),
        pair("timeout", "40"),
        pair("tcp-keepalive", "60"),
        pair("client-query-buffer-limit", "2gb"),
    ])
    .unwrap();
    cfg.rewrite().unwrap();

    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!(
            "# My server\n\
             \n\
             port 7000\n\
             maxclients 200\n\
             hz 25\n\
             proto-max-bulk-len 512mb\n\
             requirepass \"new \\\"pw\\\"\"\n\
             include {d}/inc.conf\n\
             # trailing comment\n\
             # Generated by CONFIG REWRITE\n\
             client-query-buffer-limit 2gb\n\
             timeout 40\n\
             tcp-keepalive 60\n\
             loglevel warning\n"
        )
    );
    let reloaded = run(&[file.to_str().unwrap()]).unwrap();
    assert_eq!(reloaded, cfg);

    // Nothing changed: the file stays byte for byte.
    reloaded.rewrite().unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), text);

    // A value set back to the file's: no new line; a second rewrite
    // reuses the existing signature.
    let mut cfg = reloaded;
    cfg.set(&[pair("tcp-keepalive", "300"), pair("databases", "16")])
        .unwrap_err();
    cfg.set(&[pair("tcp-keepalive", "300"), pair("dir", "/tmp/a dir")])
        .unwrap();
    cfg.rewrite().unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert!(text.contains("tcp-keepalive 300\n"), "{text}");
    assert!(
        text.ends_with("loglevel warning\ndir \"/tmp/a dir\"\n"),
        "{text}"
    );
    assert_eq!(text.matches(REWRITE_SIGNATURE).count(), 1);
    assert_eq!(run(&[file.to_str().unwrap()]).unwrap(), cfg);
    // No temporary files left behind.
    let leftovers: Vec<_> = fs::read_dir(&tmp.0)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().contains(".rewrite-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn rewrite_appends_when_an_include_could_override() {
    let tmp = TempDir::new("rewrite-include");
    let d = tmp.0.display();
    tmp.write("inc.conf", "hz 30\n");
    let file = tmp.write("kv.conf", &format!("hz 20\ninclude {d}/inc.conf\n"));
    let mut cfg = run(&[file.to_str().unwrap()]).unwrap();
    assert_eq!(cfg.hz, 30);
    cfg.set(&[pair("hz", "40")]).unwrap();
    cfg.rewrite().unwrap();
    let text = fs::read_to_string(&file).unwrap();
    assert_eq!(
        text,
        format!("hz 20\ninclude {d}/inc.conf\n{REWRITE_SIGNATURE}\nhz 40\n")
    );
    assert_eq!(run(&[file.to_str().unwrap()]).unwrap().hz, 40);
}

#[test]
fn rewrite_without_a_file_or_with_a_missing_one() {
    assert_eq!(
        Config::default().rewrite(),
        Err("ERR The server is running without a config file".to_string())
    );
    let tmp = TempDir::new("rewrite-missing");
    let file = tmp.write("kv.conf", "port 7000\n");
    let mut cfg = run(&[file.to_str().unwrap()]).unwrap();
    fs::remove_file(&file).unwrap();
    cfg.set(&[pair("hz", "11")]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("{REWRITE_SIGNATURE}\nport 7000\nhz 11\n")
    );
}

#[test]
fn snapshot_directives_have_their_defaults_and_load() {
    let cfg = Config::default();
    assert_eq!(cfg.save, vec![(3600, 1), (300, 100), (60, 10_000)]);
    assert!(cfg.stop_writes_on_bgsave_error);
    assert!(cfg.rdbcompression);
    assert!(cfg.rdbchecksum);
    assert!(!cfg.rdb_del_sync_files);
    assert_eq!(cfg.snapshotdirname, "snapshotdir");
    assert_eq!(cfg.snapshot_full_ratio, 50);

    let cfg = load(
        "stop-writes-on-bgsave-error no\n\
         rdbcompression NO\n\
         rdbchecksum no\n\
         rdb-del-sync-files yes\n\
         snapshotdirname \"my snaps\"\n\
         snapshot-full-ratio 10000\n",
    )
    .unwrap();
    assert!(!cfg.stop_writes_on_bgsave_error);
    assert!(!cfg.rdbcompression);
    assert!(!cfg.rdbchecksum);
    assert!(cfg.rdb_del_sync_files);
    assert_eq!(cfg.snapshotdirname, "my snaps");
    assert_eq!(cfg.snapshot_full_ratio, 10_000);
    assert_eq!(cfg.save, Config::default().save, "no save line: defaults");
}

#[test]
fn save_lines_replace_the_defaults_then_add_up() {
    let save = |text: &str| load(text).unwrap().save;
    assert_eq!(save("port 7000\n"), Config::default().save);
    // The first line replaces the defaults, later ones add rules.
    assert_eq!(save("save 900 1\n"), vec![(900, 1)]);
    assert_eq!(
        save("save 900 1\nport 1\nsave 300 10 60 0\n"),
        vec![(900, 1), (300, 10), (60, 0)]
    );
    // `save ""` clears, wherever it is; rules after it add up again.
    assert!(save("save \"\"\n").is_empty());
    assert!(save("save 900 1\nsave ''\n").is_empty());
    assert_eq!(save("save 900 1\nsave \"\"\nsave 5 6\n"), vec![(5, 6)]);
    // No argument: replaces the defaults with nothing, as in Redis.
    assert!(save("save\n").is_empty());

    for line in [
        "save 60",
        "save 60 1 300",
        "save 0 1",
        "save -1 1",
        "save 60 -1",
        "save 60 x",
        "save 1.5 1",
        "save 060 1",
        "save 9223372036854775808 1",
        "save \"\" 60 1",
        "save 60 1 \"\"",
    ] {
        let text = format!("port 7000\n{line}\n");
        let (line_no, shown, reason) = line_error(&text);
        assert_eq!(
            (line_no, shown.as_str(), reason.as_str()),
            (2, line, "Invalid save parameters")
        );
    }
}

#[test]
fn save_lines_add_up_across_includes_and_options() {
    let tmp = TempDir::new("save-load");
    let d = tmp.0.display();
    tmp.write("inc.conf", "save 3 4\n");
    let main = tmp.write(
        "main.conf",
        &format!("save 1 2\ninclude {d}/inc.conf\nsave 5 6\n"),
    );
    let main = main.to_str().unwrap();
    assert_eq!(run(&[main]).unwrap().save, vec![(1, 2), (3, 4), (5, 6)]);
    // The first save line of the load may come from an include.
    let first = tmp.write("first.conf", &format!("include {d}/inc.conf\nsave 5 6\n"));
    assert_eq!(
        run(&[first.to_str().unwrap()]).unwrap().save,
        vec![(3, 4), (5, 6)]
    );
    // Options are lines after the file's.
    assert_eq!(
        run(&[main, "--save", "7", "8"]).unwrap().save,
        vec![(1, 2), (3, 4), (5, 6), (7, 8)]
    );
    assert_eq!(
        run(&["--save", "7", "8", "9", "10", "--save", "11", "12"])
            .unwrap()
            .save,
        vec![(7, 8), (9, 10), (11, 12)]
    );
    // As in Redis 7 (checked against redis-server 7.0.15), the single
    // argument of a multi-argument directive is split at spaces.
    assert_eq!(run(&["--save", "11 12"]).unwrap().save, vec![(11, 12)]);
    assert!(run(&["--save", "11 x"]).is_err());
    // `--save` without a value, or with "", means `save ""`.
    assert!(run(&[main, "--save", "--port", "7000"])
        .unwrap()
        .save
        .is_empty());
    assert!(run(&[main, "--save"]).unwrap().save.is_empty());
    assert!(run(&["--save", ""]).unwrap().save.is_empty());
    assert_eq!(
        run(&["--save", "60"]).unwrap_err(),
        ConfigError::Line {
            origin: Origin::CommandLine,
            line_no: 2,
            line: "save \"60\"".into(),
            reason: "Invalid save parameters".into()
        }
    );
}

#[test]
fn config_get_and_set_snapshot_directives() {
    let mut cfg = Config::default();
    let names = |cfg: &Config, p: &str| -> Vec<String> {
        cfg.get(p.as_bytes()).into_iter().map(|(n, _)| n).collect()
    };
    assert_eq!(
        names(&cfg, "*save*"),
        vec!["save", "stop-writes-on-bgsave-error"]
    );
    assert_eq!(
        names(&cfg, "rdb*"),
        vec!["rdbcompression", "rdbchecksum", "rdb-del-sync-files"]
    );
    assert_eq!(
        names(&cfg, "SNAPSHOT*"),
        vec!["snapshotdirname", "snapshot-full-ratio", "snapshot-pace"]
    );
    assert_eq!(get1(&cfg, "save"), "3600 1 300 100 60 10000");

    // CONFIG SET save replaces every rule.
    assert_eq!(
        cfg.set(&[pair("save", "3600 1 300 100")]).unwrap(),
        vec!["save"]
    );
    assert_eq!(cfg.save, vec![(3600, 1), (300, 100)]);
    assert_eq!(get1(&cfg, "save"), "3600 1 300 100");
    assert!(cfg
        .set(&[pair("SAVE", "3600 1 300 100")])
        .unwrap()
        .is_empty());
    cfg.set(&[pair("save", "10 0")]).unwrap();
    assert_eq!(cfg.save, vec![(10, 0)]);
    // "" clears them.
    assert_eq!(cfg.set(&[pair("save", "")]).unwrap(), vec!["save"]);
    assert!(cfg.save.is_empty());
    assert_eq!(get1(&cfg, "save"), "");

    cfg.set(&[pair("save", "60 1")]).unwrap();
    let before = cfg.clone();
    for bad in [
        "1", "1 2 3", "0 1", "-1 1", "1 -1", "1 x", "1  2", "1 2 ", "\"\" 1",
    ] {
        assert_eq!(
            cfg.set(&[pair("hz", "20"), pair("save", bad)]),
            Err(
                "ERR CONFIG SET failed (possibly related to argument 'save') - \
                 Invalid save parameters"
                    .to_string()
            ),
            "{bad:?}"
        );
        assert_eq!(cfg, before, "nothing changed after {bad:?}");
    }

    let changed = cfg
        .set(&[
            pair("rdbcompression", "no"),
            pair("stop-writes-on-bgsave-error", "no"),
            pair("rdb-del-sync-files", "yes"),
            pair("snapshot-full-ratio", "300"),
        ])
        .unwrap();
    assert_eq!(
        changed,
        vec![
            "rdbcompression",
            "stop-writes-on-bgsave-error",
            "rdb-del-sync-files",
            "snapshot-full-ratio"
        ]
    );
    assert!(!cfg.rdbcompression && !cfg.stop_writes_on_bgsave_error);
    assert!(cfg.rdb_del_sync_files);
    assert_eq!(cfg.snapshot_full_ratio, 300);
    assert_eq!(
        cfg.set(&[pair("snapshot-full-ratio", "10001")]),
        Err(
            "ERR CONFIG SET failed (possibly related to argument 'snapshot-full-ratio') - \
             argument must be between 1 and 10000 inclusive"
                .to_string()
        )
    );
    for (name, value) in [("rdbchecksum", "no"), ("snapshotdirname", "other")] {
        assert_eq!(
            cfg.set(&[pair(name, value)]),
            Err(format!(
                "ERR CONFIG SET failed (possibly related to argument '{name}') - \
                 can't set immutable config"
            ))
        );
    }
    assert!(cfg.rdbchecksum);
    assert_eq!(cfg.snapshotdirname, "snapshotdir");
}

#[test]
fn hash_directives_load_as_flags_and_set_with_the_ziplist_aliases() {
    let tmp = TempDir::new("hash-directives");
    let file = tmp.write(
        "kv.conf",
        "hash-max-ziplist-entries 100
hash-max-listpack-value 1kb
",
    );
    let path = file.to_str().unwrap();
    let mut cfg = run(&[path, "--hash-max-listpack-entries", "7"]).unwrap();
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(
        (cfg.hash_max_listpack_entries, cfg.hash_max_listpack_value),
        (7, 1024)
    );
    assert_eq!(
        cfg.get(b"hash-max-ziplist-*"),
        vec![
            ("hash-max-ziplist-entries".to_string(), "7".to_string()),
            ("hash-max-ziplist-value".to_string(), "1024".to_string())
        ]
    );
    let changed = cfg
        .set(&[
            pair("hash-max-ziplist-value", "10"),
            pair("hash-max-listpack-entries", "3"),
        ])
        .unwrap();
    assert_eq!(
        changed,
        vec!["hash-max-listpack-value", "hash-max-listpack-entries"]
    );
    let limits = hash_limits(&cfg);
    assert_eq!((limits.max_entries, limits.max_value), (3, 10));
    assert!(cfg.set(&[pair("hash-max-listpack-entries", "-1")]).is_err());
}

#[test]
fn lazyfree_directives_load_set_and_rewrite_with_the_alias() {
    let tmp = TempDir::new("rewrite-lazyfree");
    let original = "slave-lazy-flush yes\nlazyfree-lazy-user-del yes\n";
    let file = tmp.write("kv.conf", original);
    let path = file.to_str().unwrap();
    let mut cfg = run(&[path]).unwrap();
    assert!(cfg.replica_lazy_flush && cfg.lazyfree_lazy_user_del);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
    assert_eq!(
        cfg.get(b"SLAVE-lazy-flush"),
        vec![("SLAVE-lazy-flush".to_string(), "yes".to_string())]
    );
    // Both names in one CONFIG SET: two parameters, the last one wins
    // (as redis-server 7.0.15); one name twice is a duplicate.
    assert_eq!(
        cfg.set(&[
            pair("replica-lazy-flush", "no"),
            pair("slave-lazy-flush", "yes")
        ]),
        Ok(vec![])
    );
    assert!(cfg.replica_lazy_flush);
    assert!(cfg
        .set(&[
            pair("slave-lazy-flush", "no"),
            pair("SLAVE-LAZY-FLUSH", "no")
        ])
        .unwrap_err()
        .contains("duplicate parameter"));
    let changed = cfg
        .set(&[
            pair("slave-lazy-flush", "no"),
            pair("lazyfree-lazy-expire", "yes"),
        ])
        .unwrap();
    assert_eq!(changed, vec!["replica-lazy-flush", "lazyfree-lazy-expire"]);
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!(
            "replica-lazy-flush no\nlazyfree-lazy-user-del yes\n\
             {REWRITE_SIGNATURE}\nlazyfree-lazy-expire yes\n"
        )
    );
    assert_eq!(run(&[path]).unwrap(), cfg);
}

#[test]
fn rewrite_round_trips_save() {
    let tmp = TempDir::new("rewrite-save");
    let original = "port 7000\nsave 900 1\nsave 300 10\nrdbcompression no\n";
    let file = tmp.write("kv.conf", original);
    let path = file.to_str().unwrap();
    let mut cfg = run(&[path]).unwrap();
    assert_eq!(cfg.save, vec![(900, 1), (300, 10)]);
    cfg.rewrite().unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), original, "unchanged");

    // The last save line gets every rule; earlier ones go.
    cfg.set(&[
        pair("save", "60 5 30 50"),
        pair("snapshot-full-ratio", "75"),
    ])
    .unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!(
            "port 7000\nsave 60 5 30 50\nrdbcompression no\n\
             {REWRITE_SIGNATURE}\nsnapshot-full-ratio 75\n"
        )
    );
    assert_eq!(run(&[path]).unwrap(), cfg);

    // No rules: `save ""`, so that the defaults don't come back.
    cfg.set(&[pair("save", "")]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!(
            "port 7000\nsave \"\"\nrdbcompression no\n\
             {REWRITE_SIGNATURE}\nsnapshot-full-ratio 75\n"
        )
    );
    let reloaded = run(&[path]).unwrap();
    assert!(reloaded.save.is_empty());
    assert_eq!(reloaded, cfg);

    // A file without save lines gets one appended.
    let file = tmp.write("plain.conf", "port 7001\n");
    let path = file.to_str().unwrap();
    let mut cfg = run(&[path]).unwrap();
    cfg.set(&[pair("save", "")]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("port 7001\n{REWRITE_SIGNATURE}\nsave \"\"\n")
    );
    assert_eq!(run(&[path]).unwrap(), cfg);
    cfg.set(&[pair("save", "3600 1 300 100 60 10000")]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("port 7001\n{REWRITE_SIGNATURE}\nsave 3600 1 300 100 60 10000\n")
    );
    assert_eq!(run(&[path]).unwrap(), cfg);

    // Rules from the command line are written to the file's save line.
    let file = tmp.write("cli.conf", "save 900 1\n");
    let path = file.to_str().unwrap();
    let cfg = run(&[path, "--save", "7", "8"]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(fs::read_to_string(&file).unwrap(), "save 900 1 7 8\n");
    assert_eq!(run(&[path]).unwrap(), cfg);
}

#[test]
fn rewrite_save_clears_the_rules_an_include_adds() {
    let tmp = TempDir::new("rewrite-save-include");
    let d = tmp.0.display();
    tmp.write("inc.conf", "save 100 1\n");

    let file = tmp.write("after.conf", &format!("save 900 1\ninclude {d}/inc.conf\n"));
    let path = file.to_str().unwrap();
    let mut cfg = run(&[path]).unwrap();
    assert_eq!(cfg.save, vec![(900, 1), (100, 1)]);
    cfg.set(&[pair("save", "60 5")]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("save 900 1\ninclude {d}/inc.conf\n{REWRITE_SIGNATURE}\nsave \"\"\nsave 60 5\n")
    );
    assert_eq!(run(&[path]).unwrap(), cfg);
    // Once rewritten, nothing more changes.
    cfg.rewrite().unwrap();
    assert_eq!(run(&[path]).unwrap(), cfg);

    let file = tmp.write(
        "before.conf",
        &format!("include {d}/inc.conf\nsave 900 1\n"),
    );
    let path = file.to_str().unwrap();
    let mut cfg = run(&[path]).unwrap();
    assert_eq!(cfg.save, vec![(100, 1), (900, 1)]);
    cfg.set(&[pair("save", "60 5")]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("include {d}/inc.conf\nsave \"\"\nsave 60 5\n")
    );
    assert_eq!(run(&[path]).unwrap(), cfg);
    cfg.set(&[pair("save", "")]).unwrap();
    cfg.rewrite().unwrap();
    assert_eq!(
        fs::read_to_string(&file).unwrap(),
        format!("include {d}/inc.conf\nsave \"\"\n")
    );
    assert_eq!(run(&[path]).unwrap(), cfg);
}
