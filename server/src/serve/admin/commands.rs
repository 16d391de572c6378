//! COMMAND and its subcommands (INFO, DOCS, COUNT, LIST, GETKEYS), from
//! the command table's rows.

use super::*;

pub(super) fn command_info(spec: &CommandSpec) -> Reply {
    let flags: Vec<Reply> = flags::NAMES
        .iter()
        .filter(|(f, _)| spec.flags & f != 0)
        .map(|(_, n)| Reply::Simple((*n).to_string()))
        .collect();
    Reply::Array(vec![
        Reply::Bulk(spec.name.as_bytes().to_vec()),
        Reply::Int(i64::from(spec.arity)),
        Reply::Array(flags),
        Reply::Int(i64::from(spec.first_key)),
        Reply::Int(i64::from(spec.last_key)),
        Reply::Int(i64::from(spec.step)),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
        Reply::Array(vec![]),
    ])
}

/// COMMAND DOCS entries in Redis 7.0's RESP2 shape (see `engine::docs`):
/// for every command, or for the names given (`get`, `client|kill`), the
/// unknown ones left out as Redis does.
pub(super) fn command_docs(names: Option<Args<'_>>) -> Vec<(&'static str, Reply)> {
    match names {
        None => command::all_commands()
            .map(|spec| (spec.name, docs::command_docs(spec)))
            .collect(),
        Some(args) => args.iter().skip(2).filter_map(docs::lookup).collect(),
    }
}

pub(super) fn command_cmd(conn: &mut Conn, args: Args<'_>) -> Result<(), Error> {
    let out = &mut conn.wbuf;
    if args.len() == 1 {
        let all: Vec<Reply> = command::all_commands().map(command_info).collect();
        Reply::Array(all).write_to(out);
        return Ok(());
    }
    let sub = args.get(1);
    let is = |s: &str| sub.eq_ignore_ascii_case(s.as_bytes());
    if is("count") && args.len() == 2 {
        resp::write_int(out, command::all_commands().count() as i64);
    } else if is("info") {
        let items: Vec<Reply> = if args.len() == 2 {
            command::all_commands().map(command_info).collect()
        } else {
            args.iter()
                .skip(2)
                .map(|n| command::lookup(n).map_or(Reply::Nil, command_info))
                .collect()
        };
        // COMMAND INFO answers nil arrays for unknown names.
        resp::write_array_len(out, items.len());
        for it in items {
            match it {
                Reply::Nil => resp::write_null_array(out),
                other => other.write_to(out),
            }
        }
    } else if is("docs") {
        let entries = command_docs((args.len() > 2).then_some(args));
        resp::write_array_len(out, entries.len() * 2);
        for (name, entry) in entries {
            resp::write_bulk(out, name.as_bytes());
            entry.write_to(out);
        }
    } else if is("list") && args.len() == 2 {
        let names: Vec<Reply> = command::all_commands()
            .map(|c| Reply::Bulk(c.name.as_bytes().to_vec()))
            .collect();
        Reply::Array(names).write_to(out);
    } else if is("help") && args.len() == 2 {
        write_help(
            out,
            "command",
            &[
                "(no subcommand)",
                "    Return details about all Redis commands.",
                "COUNT",
                "    Return the total number of commands in this Redis server.",
                "LIST",
                "    Return a list of all commands in this Redis server.",
                "INFO [<command-name> ...]",
                "    Return details about multiple Redis commands.",
                "DOCS [<command-name> ...]",
                "    Return documentation details about multiple Redis commands.",
            ],
        );
    } else {
        let known = ["count", "info", "docs", "list", "help"];
        if known.iter().any(|k| is(k)) {
            return Err(sub_arity("command", sub));
        }
        return Err(unknown_subcommand("command", sub));
    }
    Ok(())
}
