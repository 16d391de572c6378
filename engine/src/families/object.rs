//! OBJECT: a key's internals, as Redis 7.0 answers them (`objectCommand`
//! in `object.c`). None of its lookups changes the key's access time.
//!
//! - ENCODING: the value's encoding, from the type seam. A string's is
//!   named from its bytes (`int` for a canonical integer of up to 20
//!   characters, `embstr` up to 44 bytes, else `raw`); Redis names it by
//!   how the command built it (APPEND and SETRANGE make `raw`, INCRBYFLOAT
//!   `embstr` even for "3"), so the two can differ for strings.
//! - REFCOUNT: 1, or 2147483647 for a string holding one of the small
//!   integers (0..9999) Redis shares among keys when no `maxmemory` is set
//!   (it has none here); the same caveat applies.
//! - IDLETIME: seconds since the key was last read or written
//!   ([`crate::value::Key`] carries it).
//! - FREQ: Redis's error, as under every policy that is not LFU (this
//!   server has no eviction yet, so no LFU counters).

use crate::command::{cmd, Args, CommandSpec, Exec, Log};
use crate::docs::Doc;
use crate::error::{CmdResult, Error};
use crate::resp;
use crate::shard::ExecCtx;
use crate::value::Entry;

pub static COMMANDS: &[CommandSpec] = &[cmd("object", -2, 0, Exec::Shard(object), Log::Never)
    .keys(2, 2, 1)
    .doc(
        "generic",
        "A container for object introspection commands",
        "2.2.3",
        "Depends on subcommand.",
        "",
    )
    .subcommands(&[
        Doc::sub(
            "object|freq",
            "Get the logarithmic access frequency counter of a Redis object",
            "4.0.0",
            "O(1)",
            "key",
        ),
        Doc::sub(
            "object|help",
            "Show helpful text about the different subcommands",
            "6.2.0",
            "O(1)",
            "",
        ),
        Doc::sub(
            "object|refcount",
            "Get the number of references to the value of the key",
            "2.2.3",
            "O(1)",
            "key",
        ),
        Doc::sub(
            "object|idletime",
            "Get the time since a Redis object was last accessed",
            "2.2.3",
            "O(1)",
            "key",
        ),
        Doc::sub(
            "object|encoding",
            "Inspect the internal encoding of a Redis object",
            "2.2.3",
            "O(1)",
            "key",
        ),
    ])];

const HELP: &[&str] = &[
    "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "ENCODING <key>",
    "    Return the kind of internal representation used in order to store the value",
    "    associated with a <key>.",
    "FREQ <key>",
    "    Return the access frequency index of the <key>. The returned integer is",
    "    proportional to the logarithm of the recent access frequency of the key.",
    "IDLETIME <key>",
    "    Return the idle time of the <key>, that is the approximated number of",
    "    seconds elapsed since the last access to the key.",
    "REFCOUNT <key>",
    "    Return the number of references of the value associated with the specified",
    "    <key>.",
    "HELP",
    "    Prints this help.",
];

fn object(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let sub = args.get(1);
    let name = ["encoding", "freq", "idletime", "refcount", "help"]
        .into_iter()
        .find(|n| sub.eq_ignore_ascii_case(n.as_bytes()));
    let Some(name) = name else {
        let mut msg = b"ERR unknown subcommand '".to_vec();
        msg.extend_from_slice(&sub[..sub.len().min(128)]);
        msg.extend_from_slice(b"'. Try OBJECT HELP.");
        return Err(Error::Raw(msg));
    };
    let arity = if name == "help" { 2 } else { 3 };
    if args.len() != arity {
        return Err(Error::WrongArity(format!("object|{name}")));
    }
    if name == "help" {
        resp::write_array_len(out, HELP.len());
        for line in HELP {
            resp::write_simple(out, line);
        }
        return Ok(());
    }
    let Some(entry) = ctx.lookup_read_notouch(args.get(2)) else {
        resp::write_null(out);
        return Ok(());
    };
    answer(name, entry, out)
}

fn answer(name: &str, entry: &Entry, out: &mut Vec<u8>) -> CmdResult {
    match name {
        "encoding" => resp::write_bulk(out, entry.value.encoding().as_bytes()),
        "refcount" => resp::write_int(out, entry.value.refcount()),
        "idletime" => resp::write_int(out, i64::try_from(entry.idle_secs()).unwrap_or(i64::MAX)),
        _ => {
            return Err(Error::msg(
                "ERR An LFU maxmemory policy is not selected, access frequency not tracked. \
                 Please note that when switching between policies at runtime LRU and LFU data \
                 will take some time to adjust.",
            ))
        }
    }
    Ok(())
}
