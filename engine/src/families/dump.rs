//! DUMP and RESTORE: a key's value in Redis's own serialization (RDB
//! version 10, see [`crate::rdb`]), so payloads move between this server
//! and redis-server in both directions (MIGRATE, `redis-cli --cluster`,
//! migration tools). Semantics, options and error texts are Redis 7.0's
//! (`dumpCommand` and `restoreCommand` in `cluster.c`).
//!
//! RESTORE is logged as its effect: `RESTORE key <absolute ms or 0>
//! <payload> ABSTTL REPLACE` (a relative TTL made absolute, so replay at
//! any later time gives the same key), or `DEL key` when REPLACE removed a
//! key and the TTL was already past.

use crate::command::flags::*;
use crate::command::{cmd, Args, CommandSpec, Exec, Log};
use crate::error::{CmdResult, Error};
use crate::families::strings::arg_i64;
use crate::rdb::{self, PayloadError, RdbValue};
use crate::resp;
use crate::shard::ExecCtx;
use crate::value::Value;

pub static COMMANDS: &[CommandSpec] = &[
    cmd("dump", 2, READONLY, Exec::Shard(dump), Log::Never)
        .keys(1, 1, 1)
        .doc("generic", "Return a serialized version of the value stored at the specified key.", "2.6.0", "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1).", "key"),
    cmd("restore", -4, WRITE | DENYOOM, Exec::Shard(restore), Log::Effect)
        .keys(1, 1, 1)
        .doc("generic", "Create a key using the provided serialized value, previously obtained using DUMP.", "2.6.0", "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N)).", "key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds] [FREQ frequency]")
        .notes(&[
            ("ttl", "type=integer"),
            ("REPLACE", "since=3.0.0"),
            ("ABSTTL", "since=5.0.0"),
            ("IDLETIME seconds", "since=5.0.0"),
            ("FREQ frequency", "since=5.0.0 type=integer"),
        ])
        .history(&[
            ("3.0.0", "Added the `REPLACE` modifier."),
            ("5.0.0", "Added the `ABSTTL` modifier."),
            ("5.0.0", "Added the `IDLETIME` and `FREQ` options."),
        ]),
];

// The two places that know the value type (adapted as types arrive).

/// A stored value as a DUMP payload.
fn payload_of(value: &Value) -> Vec<u8> {
    match value {
        Value::Str(s) => match s.as_plain() {
            Some(bytes) => rdb::dump_string(bytes),
            None => rdb::dump_string(&s.to_vec()),
        },
        Value::Hash(h) => {
            // The RDB encoding of the value's own encoding, as Redis.
            let enc = match h.as_table() {
                None => rdb::HashEncoding::Listpack,
                Some(_) => rdb::HashEncoding::Hashtable,
            };
            let pairs: Vec<(&[u8], &[u8])> = h.iter().collect();
            rdb::dump_hash(pairs.into_iter(), enc)
        }
        Value::Set(s) => {
            // RDB 10 has no set listpack: a listpack set is written as a
            // plain set (type 2), as a hashtable is.
            let enc = if s.is_intset() {
                rdb::SetEncoding::Intset
            } else {
                rdb::SetEncoding::Hashtable
            };
            let members = s.to_vecs();
            rdb::dump_set(members.iter().map(Vec::as_slice), enc).unwrap_or_else(|_| {
                rdb::dump_set(
                    members.iter().map(Vec::as_slice),
                    rdb::SetEncoding::Hashtable,
                )
                .unwrap_or_default()
            })
        }
    }
}

/// A decoded payload (whose type byte is `ty`) as a value to store, or why
/// it cannot be stored yet, in the encoding Redis 7.0 picks for it on load:
/// a hash by the shard's `hash-max-listpack-*` (a listpack payload by its
/// count only), a set by its members and the `set-max-*` thresholds.
fn value_of(v: RdbValue, ty: Option<u8>, shard: &crate::shard::Shard) -> Result<Value, Error> {
    match v {
        RdbValue::Str(s) => Ok(Value::string(s)),
        RdbValue::Hash(pairs) => Ok(Value::Hash(crate::types::Hash::from_pairs(
            pairs.iter().map(|(f, v)| (f.as_slice(), v.as_slice())),
            shard.hash_limits,
            ty == Some(rdb::types::HASH_LISTPACK),
        ))),
        RdbValue::Set(members) => {
            crate::types::Set::from_members(members.iter().map(Vec::as_slice), &shard.set_limits)
                .map(Value::Set)
                .ok_or_else(|| Error::msg("ERR Bad data format"))
        }
    }
}

fn unsupported(type_name: &str) -> Error {
    Error::msg(format!(
        "ERR DUMP payload of a {type_name} is not supported yet"
    ))
}

/// DUMP key: the payload, or nil for a missing key.
fn dump(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    match ctx.lookup_read(args.get(1)) {
        Some(e) => resp::write_bulk(out, &payload_of(&e.value)),
        None => resp::write_null(out),
    }
    Ok(())
}

/// RESTORE key ttl serialized-value [REPLACE] [ABSTTL] [IDLETIME seconds]
/// [FREQ frequency]. IDLETIME and FREQ are checked as Redis does; IDLETIME
/// sets the key's access time (OBJECT IDLETIME), FREQ is not used (there
/// are no LFU counters, as under Redis's policies that are not LFU).
fn restore(ctx: &mut ExecCtx<'_>, args: Args<'_>, out: &mut Vec<u8>) -> CmdResult {
    let (mut replace, mut absttl) = (false, false);
    let (mut idle, mut freq) = (None, false);
    let mut j = 4;
    while j < args.len() {
        let opt = args.get(j);
        let more = j + 1 < args.len();
        if opt.eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if opt.eq_ignore_ascii_case(b"absttl") {
            absttl = true;
        } else if opt.eq_ignore_ascii_case(b"idletime") && more && !freq {
            let secs = arg_i64(args.get(j + 1))?;
            if secs < 0 {
                return Err(Error::msg("ERR Invalid IDLETIME value, must be >= 0"));
            }
            idle = Some(secs.unsigned_abs());
            j += 1;
        } else if opt.eq_ignore_ascii_case(b"freq") && more && idle.is_none() {
            if !(0..=255).contains(&arg_i64(args.get(j + 1))?) {
                return Err(Error::msg(
                    "ERR Invalid FREQ value, must be >= 0 and <= 255",
                ));
            }
            freq = true;
            j += 1;
        } else {
            return Err(Error::Syntax);
        }
        j += 1;
    }
    let key = args.get(1);
    if !replace && ctx.exists(key) {
        return Err(Error::msg("BUSYKEY Target key name already exists."));
    }
    let ttl = arg_i64(args.get(2))?;
    if ttl < 0 {
        return Err(Error::msg("ERR Invalid TTL value, must be >= 0"));
    }
    let payload = args.get(3);
    let value = match rdb::decode_payload(payload) {
        Ok(v) => value_of(v, payload.first().copied(), ctx.shard)?,
        Err(PayloadError::VersionOrChecksum) => {
            return Err(Error::msg("ERR DUMP payload version or checksum are wrong"))
        }
        Err(PayloadError::BadFormat(_)) => return Err(Error::msg("ERR Bad data format")),
        Err(PayloadError::Unsupported(name)) => return Err(unsupported(name)),
    };
    let now = ctx.now_ms() as i64;
    // As Redis: a relative TTL is added to the clock (wrapping where
    // Redis's signed addition would), and a time already past restores
    // nothing.
    let at = if ttl != 0 && !absttl {
        ttl.wrapping_add(now)
    } else {
        ttl
    };
    if at != 0 && at <= now {
        if replace {
            let lazy = ctx.shard.lazyfree.settings.server_del;
            if ctx.delete(key, lazy) {
                ctx.propagate([&b"DEL"[..], key]);
                ctx.dirty(1);
            }
        }
        resp::write_ok(out);
        return Ok(());
    }
    ctx.set(key, value, at as u64);
    if let Some(secs) = idle {
        ctx.set_idle(key, secs);
    }
    let mut n = itoa::Buffer::new();
    ctx.propagate([
        &b"RESTORE"[..],
        key,
        n.format(at).as_bytes(),
        payload,
        b"ABSTTL",
        b"REPLACE",
    ]);
    ctx.dirty(1);
    resp::write_ok(out);
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::rdb;
    use crate::testkit::TestCluster;

    /// Runs a command whose arguments may be binary.
    fn run(c: &TestCluster, args: &[&[u8]]) -> Vec<u8> {
        c.exec(0, args)
    }

    fn bulk(reply: &[u8]) -> Vec<u8> {
        let text = String::from_utf8_lossy(reply);
        let (len, _) = text[1..].split_once("\r\n").unwrap();
        let start = 1 + len.len() + 2;
        reply[start..start + len.parse::<usize>().unwrap()].to_vec()
    }

    #[test]
    fn dump_and_restore_a_string() {
        let c = TestCluster::new(2);
        assert_eq!(c.cmd(0, &["DUMP", "nokey"]), "$-1\r\n");
        c.cmd(0, &["SET", "k", "10"]);
        let p = bulk(&run(&c, &[b"DUMP", b"k"]));
        // Redis 7.0's bytes for the same value.
        assert_eq!(p, b"\x00\xc0\n\n\x00n\x9fWE\x0e\xaec\xbb");
        assert_eq!(
            run(&c, &[b"RESTORE", b"k", b"0", &p]),
            b"-BUSYKEY Target key name already exists.\r\n"
        );
        assert_eq!(run(&c, &[b"RESTORE", b"k2", b"0", &p]), b"+OK\r\n");
        assert_eq!(c.cmd(0, &["GET", "k2"]), "$2\r\n10\r\n");
        assert_eq!(
            run(&c, &[b"RESTORE", b"k", b"0", &p, b"REPLACE"]),
            b"+OK\r\n"
        );
        let big = vec![b'z'; 1000];
        c.exec(0, &[b"SET", b"big", &big]);
        let p = bulk(&run(&c, &[b"DUMP", b"big"]));
        assert!(p.len() < 100, "compressed");
        assert_eq!(run(&c, &[b"RESTORE", b"big2", b"0", &p]), b"+OK\r\n");
        assert_eq!(bulk(&run(&c, &[b"GET", b"big2"])), big);
    }

    #[test]
    fn restore_errors_are_redis_texts() {
        let c = TestCluster::new(1);
        c.cmd(0, &["SET", "k", "v"]);
        let cases: &[(&[&str], &str)] = &[
            (
                &["RESTORE", "k", "0", "x"],
                "-BUSYKEY Target key name already exists.",
            ),
            (
                &["RESTORE", "n", "-1", "x"],
                "-ERR Invalid TTL value, must be >= 0",
            ),
            (
                &["RESTORE", "n", "a", "x"],
                "-ERR value is not an integer or out of range",
            ),
            (
                &["RESTORE", "n", "0", "x"],
                "-ERR DUMP payload version or checksum are wrong",
            ),
            (&["RESTORE", "n", "0", "x", "foo"], "-ERR syntax error"),
            (&["RESTORE", "n", "0", "x", "IDLETIME"], "-ERR syntax error"),
            (
                &["RESTORE", "n", "0", "x", "IDLETIME", "1", "FREQ", "1"],
                "-ERR syntax error",
            ),
            (
                &["RESTORE", "n", "0", "x", "IDLETIME", "-1"],
                "-ERR Invalid IDLETIME value, must be >= 0",
            ),
            (
                &["RESTORE", "n", "0", "x", "FREQ", "256"],
                "-ERR Invalid FREQ value, must be >= 0 and <= 255",
            ),
            (
                &["RESTORE", "n", "0", "x", "FREQ", "z"],
                "-ERR value is not an integer or out of range",
            ),
        ];
        for (args, want) in cases {
            assert_eq!(c.cmd(0, args), format!("{want}\r\n"), "{args:?}");
        }
        // A valid footer around a body that is not a value (a 63-byte
        // string with 1 byte, 11 counting the footer, which Redis's reader
        // may run into).
        let bad = rdb::finish_payload(vec![0, 0x3f, b'a']);
        assert_eq!(
            run(&c, &[b"RESTORE", b"n", b"0", &bad]),
            b"-ERR Bad data format\r\n"
        );
        let set = rdb::dump_set([&b"a"[..]].into_iter(), rdb::SetEncoding::Hashtable).unwrap();
        assert_eq!(run(&c, &[b"RESTORE", b"sset", b"0", &set]), b"+OK\r\n");
        assert_eq!(c.cmd(0, &["SMEMBERS", "sset"]), "*1\r\n$1\r\na\r\n");
        let list = rdb::finish_payload(vec![rdb::types::LIST_QUICKLIST_2, 0]);
        assert_eq!(
            run(&c, &[b"RESTORE", b"n", b"0", &list]),
            b"-ERR DUMP payload of a list is not supported yet\r\n"
        );
        assert_eq!(c.cmd(0, &["EXISTS", "n"]), ":0\r\n");
    }

    /// A set's DUMP is RDB type 11 (intset) for an intset and 2 (set) for
    /// a listpack or hashtable; RESTORE loads the encoding Redis picks.
    #[test]
    fn sets_dump_and_restore_in_every_encoding() {
        let c = TestCluster::new(1);
        let big: Vec<String> = (0..600).map(|i| i.to_string()).collect();
        let mut line = vec!["SADD", "ints"];
        line.extend(big.iter().map(String::as_str));
        c.cmd(0, &line);
        c.cmd(0, &["SADD", "small", "3", "1", "2"]);
        c.cmd(0, &["SADD", "lp", "a", "b", "1"]);
        for (key, rdb_type, enc) in [
            ("small", rdb::types::SET_INTSET, "intset"),
            ("lp", rdb::types::SET, "listpack"),
            ("ints", rdb::types::SET, "hashtable"),
        ] {
            let p = run(&c, &[b"DUMP", key.as_bytes()]);
            let body = p.splitn(2, |&b| b == b'\n').nth(1).unwrap();
            let payload = &body[..body.len() - 2];
            assert_eq!(payload[0], rdb_type, "{key}");
            let copy = format!("{key}-copy");
            assert_eq!(
                run(&c, &[b"RESTORE", copy.as_bytes(), b"0", payload]),
                b"+OK\r\n"
            );
            let sorted = |r: String| {
                let mut v: Vec<String> = r.split("\r\n").map(str::to_string).collect();
                v.sort();
                v
            };
            assert!(
                sorted(c.cmd(0, &["SMEMBERS", &copy])) == sorted(c.cmd(0, &["SMEMBERS", key])),
                "{key}"
            );
            let got = c.with_shard(0, |sh| {
                sh.ctx(0)
                    .lookup_write(copy.as_bytes())
                    .unwrap()
                    .value
                    .encoding()
            });
            assert_eq!(got, enc, "{key}");
        }
    }

    #[test]
    fn restore_ttl_relative_absolute_and_past() {
        let c = TestCluster::new(1);
        c.set_now(1_000_000);
        let p = rdb::dump_string(b"v");
        assert_eq!(run(&c, &[b"RESTORE", b"a", b"5000", &p]), b"+OK\r\n");
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "a"]), ":1005000\r\n");
        assert_eq!(
            run(&c, &[b"RESTORE", b"b", b"2000000", &p, b"ABSTTL"]),
            b"+OK\r\n"
        );
        assert_eq!(c.cmd(0, &["PEXPIRETIME", "b"]), ":2000000\r\n");
        // A time already past: not created; with REPLACE the old key goes.
        assert_eq!(
            run(&c, &[b"RESTORE", b"c", b"999999", &p, b"ABSTTL"]),
            b"+OK\r\n"
        );
        assert_eq!(c.cmd(0, &["EXISTS", "c"]), ":0\r\n");
        assert_eq!(
            run(&c, &[b"RESTORE", b"a", b"1", &p, b"ABSTTL", b"REPLACE"]),
            b"+OK\r\n"
        );
        assert_eq!(c.cmd(0, &["EXISTS", "a"]), ":0\r\n");
    }
}
