//! Connection and server administration commands. They are rows here so
//! the command table is the single list of commands (arity, flags, COMMAND
//! INFO, COMMAND DOCS); each row names its handler as a [`ConnCmd`], which
//! the server maps to a function (`server/src/admin.rs`), because they act
//! on connections, configuration and process state rather than on the
//! keyspace. None of them is logged.

use crate::command::flags::*;
use crate::command::{cmd, CommandSpec, ConnCmd, Exec, Log};
use crate::docs::Doc;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("ping", -1, FAST, Exec::Conn(ConnCmd::Ping), Log::Never)
        .doc("connection", "Ping the server", "1.0.0", "O(1)", "[message]"),
    cmd("echo", 2, FAST, Exec::Conn(ConnCmd::Echo), Log::Never)
        .doc("connection", "Echo the given string", "1.0.0", "O(1)", "message"),
    cmd("quit", -1, ALLOW_BUSY | NOSCRIPT | LOADING | STALE | FAST | NO_AUTH, Exec::Conn(ConnCmd::Quit), Log::Never)
        .doc("connection", "Close the connection", "1.0.0", "O(1)", ""),
    cmd("select", 2, LOADING | STALE | FAST, Exec::Conn(ConnCmd::Select), Log::Never)
        .doc("connection", "Change the selected database for the current connection", "1.0.0", "O(1)", "index"),
    cmd("auth", -2, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH, Exec::Conn(ConnCmd::Auth), Log::Never)
        .doc("connection", "Authenticate to the server", "1.0.0", "O(N) where N is the number of passwords defined for the user", "[username] password")
        .notes(&[("username", "since=6.0.0")])
        .history(&[("6.0.0", "Added ACL style (username and password).")]),
    cmd("hello", -1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH, Exec::Conn(ConnCmd::Hello), Log::Never)
        .doc("connection", "Handshake with Redis", "6.0.0", "O(1)", "[protover [AUTH username password] [SETNAME clientname]]")
        .notes(&[("protover [AUTH username password] [SETNAME clientname]", "name=arguments")])
        .history(&[
            ("6.2.0", "`protover` made optional; when called without arguments the command reports the current connection's context."),
        ]),
    cmd("client", -2, NOSCRIPT | LOADING | STALE, Exec::Conn(ConnCmd::Client), Log::Never)
        .doc("connection", "A container for client connection commands", "2.4.0", "Depends on subcommand.", "")
        .subcommands(&[
            Doc::sub("client|id", "Returns the client ID for the current connection", "5.0.0", "O(1)", ""),
            Doc::sub("client|setname", "Set the current connection name", "2.6.9", "O(1)", "connection-name"),
            Doc::sub("client|getname", "Get the current connection name", "2.6.9", "O(1)", ""),
            Doc::sub("client|info", "Returns information about the current client connection.", "6.2.0", "O(1)", ""),
            Doc::sub("client|list", "Get the list of client connections", "2.4.0", "O(N) where N is the number of client connections", "[TYPE <NORMAL|MASTER|REPLICA|PUBSUB>] [ID <client-id [client-id ...]>]")
                .with_notes(&[
                    ("TYPE NORMAL|...", "since=5.0.0"),
                    ("ID client-id [client-id ...]", "name=id since=6.2.0"),
                ])
                .with_history(&[
                    ("2.8.12", "Added unique client `id` field."),
                    ("5.0.0", "Added optional `TYPE` filter."),
                    ("6.0.0", "Added `user` field."),
                    ("6.2.0", "Added `argv-mem`, `tot-mem`, `laddr` and `redir` fields and the optional `ID` filter."),
                    ("7.0.0", "Added `resp`, `multi-mem`, `rbs` and `rbp` fields."),
                    ("7.0.3", "Added `ssub` field."),
                ]),
            Doc::sub("client|kill", "Kill the connection of a client", "2.4.0", "O(N) where N is the number of client connections", "ip:port|<[ID client-id]|[TYPE <NORMAL|MASTER|SLAVE|REPLICA|PUBSUB>]|[USER username]|[ADDR ip:port]|[LADDR ip:port]|[SKIPME yes/no]> [[ID client-id]|[TYPE NORMAL|MASTER|SLAVE|REPLICA|PUBSUB]|[USER username]|[ADDR ip:port]|[LADDR ip:port]|[SKIPME yes/no] ...]")
                .with_notes(&[
                    ("ip:port|...", "name=filter"),
                    ("ip:port", "deprecated=2.8.12"),
                    ("[ID client-id]|...", "name=new-format"),
                    ("ID client-id", "since=2.8.12"),
                    ("TYPE NORMAL|...", "name=normal_master_slave_pubsub since=2.8.12"),
                    ("MASTER", "since=3.2.0"),
                    ("REPLICA", "since=5.0.0"),
                    ("LADDR ip:port", "since=6.2.0"),
                ])
                .with_history(&[
                    ("2.8.12", "Added new filter format."),
                    ("2.8.12", "`ID` option."),
                    ("3.2.0", "Added `master` type in for `TYPE` option."),
                    ("5.0.0", "Replaced `slave` `TYPE` with `replica`. `slave` still supported for backward compatibility."),
                    ("6.2.0", "`LADDR` option."),
                ]),
            Doc::sub("client|help", "Show helpful text about the different subcommands", "5.0.0", "O(1)", ""),
        ]),
    cmd("reset", 1, NOSCRIPT | LOADING | STALE | FAST | NO_AUTH, Exec::Conn(ConnCmd::Reset), Log::Never)
        .doc("connection", "Reset the connection", "6.2.0", "O(1)", ""),
    cmd("command", -1, LOADING | STALE, Exec::Conn(ConnCmd::Command), Log::Never)
        .doc("server", "Get array of Redis command details", "2.8.13", "O(N) where N is the total number of Redis commands", "")
        .subcommands(&[
            Doc::sub("command|count", "Get total number of Redis commands", "2.8.13", "O(1)", ""),
            Doc::sub("command|info", "Get array of specific Redis command details, or all when no argument is given.", "2.8.13", "O(N) where N is the number of commands to look up", "[command-name [command-name ...]]")
                .with_history(&[
                    ("7.0.0", "Allowed to be called with no argument to get info on all commands."),
                ]),
            Doc::sub("command|docs", "Get array of specific Redis command documentation", "7.0.0", "O(N) where N is the number of commands to look up", "[command-name [command-name ...]]"),
            Doc::sub("command|list", "Get an array of Redis command names", "7.0.0", "O(N) where N is the total number of Redis commands", "[FILTERBY <MODULE module-name|ACLCAT category|PATTERN pattern>]")
                .with_notes(&[("FILTERBY MODULE module-name|...", "name=filterby")]),
            Doc::sub("command|help", "Show helpful text about the different subcommands", "5.0.0", "O(1)", ""),
        ]),
    cmd("config", -2, ADMIN | NOSCRIPT | LOADING | STALE, Exec::Conn(ConnCmd::Config), Log::Never)
        .doc("server", "A container for server configuration commands", "2.0.0", "Depends on subcommand.", "")
        .subcommands(&[
            Doc::sub("config|get", "Get the values of configuration parameters", "2.0.0", "O(N) when N is the number of configuration parameters provided", "<parameter> [parameter ...]")
                .with_history(&[("7.0.0", "Added the ability to pass multiple pattern parameters in one call")]),
            Doc::sub("config|set", "Set configuration parameters to the given values", "2.0.0", "O(N) when N is the number of configuration parameters provided", "parameter value [parameter value ...]")
                .with_history(&[("7.0.0", "Added the ability to set multiple parameters in one call.")]),
            Doc::sub("config|resetstat", "Reset the stats returned by INFO", "2.0.0", "O(1)", ""),
            Doc::sub("config|rewrite", "Rewrite the configuration file with the in memory configuration", "2.8.0", "O(1)", ""),
            Doc::sub("config|help", "Show helpful text about the different subcommands", "5.0.0", "O(1)", ""),
        ]),
    cmd("info", -1, LOADING | STALE, Exec::Conn(ConnCmd::Info), Log::Never)
        .doc("server", "Get information and statistics about the server", "1.0.0", "O(1)", "[section [section ...]]")
        .history(&[("7.0.0", "Added support for taking multiple section arguments.")]),
    cmd("time", 1, LOADING | STALE | FAST, Exec::Conn(ConnCmd::Time), Log::Never)
        .doc("server", "Return the current server time", "2.6.0", "O(1)", ""),
    cmd("latency", -2, ADMIN | NOSCRIPT | LOADING | STALE, Exec::Conn(ConnCmd::Latency), Log::Never)
        .doc("server", "A container for latency diagnostics commands", "2.8.13", "Depends on subcommand.", "")
        .subcommands(&[
            Doc::sub("latency|doctor", "Return a human readable latency analysis report.", "2.8.13", "O(1)", ""),
            Doc::sub("latency|history", "Return timestamp-latency samples for the event.", "2.8.13", "O(1)", "event"),
            Doc::sub("latency|latest", "Return the latest latency samples for all events.", "2.8.13", "O(1)", ""),
            Doc::sub("latency|reset", "Reset latency data for one or more events.", "2.8.13", "O(1)", "[event [event ...]]"),
            Doc::sub("latency|help", "Show helpful text about the different subcommands.", "2.8.13", "O(1)", ""),
        ]),
    cmd("debug", -2, ADMIN | NOSCRIPT | LOADING | STALE, Exec::Conn(ConnCmd::Debug), Log::Never)
        .doc("server", "A container for debugging commands", "1.0.0", "Depends on subcommand.", ""),
    cmd("save", 1, ADMIN | NOSCRIPT, Exec::Conn(ConnCmd::Save), Log::Never)
        .doc("server", "Synchronously save the dataset to disk", "1.0.0", "O(N) where N is the total number of keys in all databases", ""),
    cmd("bgsave", -1, ADMIN | NOSCRIPT, Exec::Conn(ConnCmd::Bgsave), Log::Never)
        .doc("server", "Asynchronously save the dataset to disk", "1.0.0", "O(N) where N is the total number of keys in all databases", "[SCHEDULE]")
        .notes(&[("SCHEDULE", "since=3.2.2")])
        .history(&[("3.2.2", "Added the `SCHEDULE` option.")]),
    cmd("bgrewriteaof", 1, ADMIN | NOSCRIPT, Exec::Conn(ConnCmd::Bgrewriteaof), Log::Never)
        .doc("server", "Asynchronously rewrites the append-only file to disk", "1.0.0", "O(1)", ""),
    cmd("lastsave", 1, LOADING | STALE | FAST, Exec::Conn(ConnCmd::Lastsave), Log::Never)
        .doc("server", "Get the UNIX time stamp of the last successful save to disk", "1.0.0", "O(1)", ""),
    cmd("shutdown", -1, ADMIN | NOSCRIPT | LOADING | STALE, Exec::Conn(ConnCmd::Shutdown), Log::Never)
        .doc("server", "Synchronously save the dataset to disk and then shut down the server", "1.0.0", "O(N) when saving, where N is the total number of keys in all databases when saving data, otherwise O(1)", "[NOSAVE|SAVE] [NOW] [FORCE] [ABORT]")
        .notes(&[("NOW", "since=7.0.0"), ("FORCE", "since=7.0.0"), ("ABORT", "since=7.0.0")])
        .history(&[("7.0.0", "Added the `NOW`, `FORCE` and `ABORT` modifiers.")]),
];
