//! The random sequence generator: time-independent commands over a small
//! key space, so types collide and encodings convert.

use super::*;

pub(crate) const RANDOM_SEEDS: u64 = 20;
pub(crate) const RANDOM_STEPS: usize = 500;

/// A generator of random, time-independent command sequences over ~20 keys.
pub(crate) struct Generator {
    pub(crate) rng: Rng,
    /// Relative expiries (seconds) handed out so far: never twice the same,
    /// so GT/LT never compare two equal times.
    pub(crate) used_rel: BTreeSet<i64>,
}

pub(crate) const KEY_NAMES: &[&str] = &[
    "k0",
    "k1",
    "k2",
    "k3",
    "k4",
    "k5",
    "k6",
    "k7",
    "k8",
    "k9",
    "k10",
    "k11",
    "k12",
    "k13",
    "k14",
    "k15",
    "{k}16",
    "key with space",
    "ключ",
    "",
];

pub(crate) const VALUES: &[&str] = &[
    "v",
    "",
    "hello",
    "0",
    "1",
    "10",
    "-5",
    "3.5",
    "-0.25",
    "2.5e2",
    "9223372036854775807",
    "-9223372036854775808",
    "12345678901234567890",
    "abc def",
    "1e3",
    " 7",
    "007",
    "\r\n",
];

pub(crate) const INTS: &[&str] = &[
    "0",
    "1",
    "-1",
    "2",
    "5",
    "-10",
    "100",
    "9223372036854775807",
    "-9223372036854775808",
    "9223372036854775808",
    "abc",
    "1.5",
    "",
    " 3",
    "01",
    "+1",
];

pub(crate) const FLOATS: &[&str] = &[
    "0", "1", "-1", "0.5", "-0.25", "1.5", "2.5e2", "1e3", "-1e3", "10.0", "0.125", "-7", "inf",
    "nan", "abc", "", "1e400", " 1",
];

pub(crate) const PATTERNS: &[&str] = &[
    "*", "k*", "k?", "k1*", "*1*", "k[0-5]", "k[^0-5]*", "{k}*", "*space", "???", "", "nomatch*",
];

impl Generator {
    pub(crate) fn key(&mut self) -> String {
        self.rng.pick(KEY_NAMES).to_string()
    }

    pub(crate) fn value(&mut self) -> String {
        if self.rng.chance(30) {
            self.rng.range(-1000, 1000).to_string()
        } else {
            self.rng.pick(VALUES).to_string()
        }
    }

    pub(crate) fn int(&mut self) -> String {
        if self.rng.chance(50) {
            self.rng.range(-100, 100).to_string()
        } else {
            self.rng.pick(INTS).to_string()
        }
    }

    /// A fresh relative expiry in seconds, 100000..1000000, unique, a multiple of 100.
    pub(crate) fn rel_secs(&mut self) -> i64 {
        loop {
            let s = 100_000 + 100 * self.rng.range(0, 9000);
            if self.used_rel.insert(s) {
                return s;
            }
        }
    }

    /// An absolute expiry in seconds: far future (unique) or, if `past`, maybe past.
    pub(crate) fn abs_secs(&mut self, past: bool) -> i64 {
        if past && self.rng.chance(15) {
            *self.rng.pick(&[0, 1, 100, 1_000_000])
        } else {
            4_102_444_800 + self.rel_secs()
        }
    }

    /// A seconds argument for EX/EXPIRE-style options, sometimes invalid.
    /// Past absolute times only with `past`: Redis 7.0 deletes the key at
    /// once for EXPIREAT and GETEX, but SET ... EXAT <past> leaves it for
    /// the expiry cycle, so DBSIZE would depend on timing.
    pub(crate) fn secs_arg(&mut self, absolute: bool, millis: bool, past: bool) -> String {
        let scale = if millis { 1000 } else { 1 };
        match self.rng.below(20) {
            0 => "0".into(),
            1 => "-1".into(),
            2 => "abc".into(),
            3 => "9223372036854775807".into(),
            4 => "1.5".into(),
            _ if absolute => (self.abs_secs(past) * scale).to_string(),
            _ => (self.rel_secs() * scale).to_string(),
        }
    }

    pub(crate) fn keys(&mut self, max: usize) -> Vec<String> {
        let n = 1 + self.rng.below(max);
        (0..n).map(|_| self.key()).collect()
    }

    pub(crate) fn set_options(&mut self) -> Vec<String> {
        let mut opts = Vec::new();
        for _ in 0..self.rng.below(4) {
            match self.rng.below(9) {
                0 => opts.extend(["EX".into(), self.secs_arg(false, false, false)]),
                1 => opts.extend(["PX".into(), self.secs_arg(false, true, false)]),
                2 => opts.extend(["EXAT".into(), self.secs_arg(true, false, false)]),
                3 => opts.extend(["PXAT".into(), self.secs_arg(true, true, false)]),
                4 => opts.push("KEEPTTL".into()),
                5 => opts.push("NX".into()),
                6 => opts.push("XX".into()),
                7 => opts.push("GET".into()),
                _ => opts.push("BOGUS".into()),
            }
        }
        opts
    }

    pub(crate) fn expire_flags(&mut self) -> Vec<String> {
        let mut flags = Vec::new();
        while self.rng.chance(35) {
            flags.push(
                self.rng
                    .pick(&["NX", "XX", "GT", "LT", "nx", "gt", "ZZ"])
                    .to_string(),
            );
        }
        flags
    }

    pub(crate) fn field(&mut self) -> String {
        if self.rng.chance(30) {
            format!("f{}", self.rng.range(0, 700))
        } else {
            self.rng
                .pick(&["a", "b", "c", "n", "x", "", "field with space", "поле"])
                .to_string()
        }
    }

    /// A hash value: a short one, or (sometimes) one past
    /// hash-max-listpack-value, so encodings convert.
    pub(crate) fn hvalue(&mut self) -> String {
        if self.rng.chance(5) {
            let n = self.rng.range(60, 200) as usize;
            "y".repeat(n)
        } else {
            self.value()
        }
    }

    /// A hash command on `k` (which may hold a string: WRONGTYPE both ways).
    pub(crate) fn hash_command(&mut self, k: String) -> Vec<String> {
        match self.rng.below(16) {
            0 | 1 => {
                let mut v = vec![self.rng.pick(&["HSET", "HMSET"]).to_string(), k];
                // Sometimes many fields at once: past
                // hash-max-listpack-entries.
                let n = if self.rng.chance(4) {
                    self.rng.range(100, 700) as usize
                } else {
                    1 + self.rng.below(4)
                };
                for _ in 0..n {
                    v.push(self.field());
                    v.push(self.hvalue());
                }
                v
            }
            2 => vec!["HSETNX".into(), k, self.field(), self.hvalue()],
            3 => vec!["HGET".into(), k, self.field()],
            4 => {
                let mut v = vec!["HMGET".into(), k];
                for _ in 0..1 + self.rng.below(4) {
                    v.push(self.field());
                }
                v
            }
            5 => {
                let mut v = vec!["HDEL".into(), k];
                for _ in 0..1 + self.rng.below(4) {
                    v.push(self.field());
                }
                v
            }
            6 => vec![
                self.rng.pick(&["HEXISTS", "HSTRLEN"]).to_string(),
                k,
                self.field(),
            ],
            7 => vec!["HLEN".into(), k],
            8 => vec![self.rng.pick(&["HKEYS", "HVALS", "HGETALL"]).to_string(), k],
            9 => vec!["HINCRBY".into(), k, self.field(), self.int()],
            10 => vec![
                "HINCRBYFLOAT".into(),
                k,
                self.field(),
                self.rng.pick(FLOATS).to_string(),
            ],
            11 => {
                let mut v = vec!["HRANDFIELD".into(), k];
                if self.rng.chance(80) {
                    v.push(
                        self.rng
                            .pick(&["0", "1", "3", "-3", "10", "-20", "1000", "-1000", "x"])
                            .to_string(),
                    );
                    if self.rng.chance(50) {
                        v.push(
                            self.rng
                                .pick(&["WITHVALUES", "withvalues", "bad"])
                                .to_string(),
                        );
                    }
                }
                v
            }
            12 => {
                let mut v = vec![
                    "HSCAN".into(),
                    k,
                    self.rng.pick(&["0", "0", "x"]).to_string(),
                ];
                if self.rng.chance(50) {
                    v.extend([
                        "MATCH".into(),
                        self.rng.pick(&["*", "f1*", "?", "a"]).to_string(),
                    ]);
                }
                if self.rng.chance(50) {
                    v.extend([
                        "COUNT".into(),
                        self.rng.pick(&["1", "5", "1000", "0"]).to_string(),
                    ]);
                }
                v
            }
            13 => vec![
                "CONFIG".into(),
                "SET".into(),
                self.rng
                    .pick(&["hash-max-listpack-entries", "hash-max-ziplist-entries"])
                    .to_string(),
                self.rng.pick(&["2", "8", "128", "512"]).to_string(),
            ],
            14 => vec!["HSET".into(), k, self.field(), "z".repeat(70)],
            _ => vec!["TYPE".into(), k],
        }
    }

    pub(crate) fn command(&mut self) -> Step {
        let k = self.key();
        let mut a: Vec<String> = match self.rng.below(67) {
            0..=3 => {
                let mut v = vec!["SET".into(), k, self.value()];
                v.extend(self.set_options());
                v
            }
            4..=6 => vec!["GET".into(), k],
            7 => vec!["SETNX".into(), k, self.value()],
            8 => vec![
                "SETEX".into(),
                k,
                self.secs_arg(false, false, false),
                self.value(),
            ],
            9 => vec![
                "PSETEX".into(),
                k,
                self.secs_arg(false, true, false),
                self.value(),
            ],
            10 => vec!["GETSET".into(), k, self.value()],
            11 => vec!["GETDEL".into(), k],
            12 => {
                let mut v = vec!["GETEX".into(), k];
                match self.rng.below(7) {
                    0 => v.extend(["EX".into(), self.secs_arg(false, false, true)]),
                    1 => v.extend(["PX".into(), self.secs_arg(false, true, true)]),
                    2 => v.extend(["EXAT".into(), self.secs_arg(true, false, true)]),
                    3 => v.extend(["PXAT".into(), self.secs_arg(true, true, true)]),
                    4 => v.push("PERSIST".into()),
                    5 => v.push("KEEPTTL".into()),
                    _ => {}
                }
                v
            }
            13 => {
                let mut v = vec!["MGET".to_string()];
                v.extend(self.keys(6));
                v
            }
            14 | 15 => {
                let mut v = vec![self.rng.pick(&["MSET", "MSETNX"]).to_string()];
                for key in self.keys(5) {
                    v.push(key);
                    v.push(self.value());
                }
                v
            }
            16 | 17 => vec![self.rng.pick(&["INCR", "DECR"]).to_string(), k],
            18 | 19 => vec![
                self.rng.pick(&["INCRBY", "DECRBY"]).to_string(),
                k,
                self.int(),
            ],
            20 => vec!["INCRBYFLOAT".into(), k, self.rng.pick(FLOATS).to_string()],
            21 => vec!["APPEND".into(), k, self.value()],
            22 => vec!["STRLEN".into(), k],
            23 => vec!["GETRANGE".into(), k, self.int(), self.int()],
            24 => {
                let off = if self.rng.chance(80) {
                    self.rng.range(0, 30).to_string()
                } else {
                    self.int()
                };
                vec!["SETRANGE".into(), k, off, self.value()]
            }
            25 | 26 => {
                let mut v = vec![self.rng.pick(&["DEL", "UNLINK", "EXISTS"]).to_string()];
                v.extend(self.keys(5));
                v
            }
            27 => vec!["TYPE".into(), k],
            28 | 29 => {
                let (name, abs, ms) = *self.rng.pick(&[
                    ("EXPIRE", false, false),
                    ("PEXPIRE", false, true),
                    ("EXPIREAT", true, false),
                    ("PEXPIREAT", true, true),
                ]);
                let mut v = vec![name.to_string(), k, self.secs_arg(abs, ms, true)];
                v.extend(self.expire_flags());
                v
            }
            30 | 31 => vec![
                self.rng
                    .pick(&["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"])
                    .to_string(),
                k,
            ],
            32 => vec!["PERSIST".into(), k],
            33 | 34 => vec![
                self.rng.pick(&["RENAME", "RENAMENX"]).to_string(),
                k,
                self.key(),
            ],
            35 => vec!["KEYS".into(), self.rng.pick(PATTERNS).to_string()],
            36 => {
                let mut v = Vec::new();
                if self.rng.chance(50) {
                    v.extend(["MATCH".into(), self.rng.pick(PATTERNS).to_string()]);
                }
                if self.rng.chance(50) {
                    v.extend(["COUNT".into(), self.rng.range(1, 30).to_string()]);
                }
                if self.rng.chance(20) {
                    v.extend([
                        "TYPE".into(),
                        self.rng.pick(&["string", "hash"]).to_string(),
                    ]);
                }
                return Step {
                    args: v.into_iter().map(String::into_bytes).collect(),
                    check: Check::ScanAll,
                };
            }
            37 => vec!["DBSIZE".into()],
            38 => vec![
                "SELECT".into(),
                self.rng.pick(&["0", "1", "0", "16", "x"]).to_string(),
            ],
            39 => vec!["SWAPDB".into(), "0".into(), "1".into()],
            40 => {
                if self.rng.chance(20) {
                    // Lazy or not, the keyspace is empty for the next command.
                    let mut v = vec!["FLUSHDB".to_string()];
                    v.extend(
                        self.rng
                            .pick(&[None, Some("ASYNC"), Some("SYNC")])
                            .map(String::from),
                    );
                    v
                } else {
                    vec!["EXISTS".into(), k]
                }
            }
            41 => vec!["ECHO".into(), self.value()],
            42 => vec!["PING".into()],
            43 => vec!["NOSUCHCMD".into(), k],
            44 => vec!["GETRANGE".into(), k, "0".into(), "-1".into()],
            // Our DUMP bytes are redis-server's (tests/tests/dump.rs).
            45 => vec!["DUMP".into(), k],
            47..=62 => self.hash_command(k),
            63 => {
                let mut v = vec!["COPY".into(), k, self.key()];
                if self.rng.chance(30) {
                    v.extend([
                        "DB".into(),
                        self.rng.pick(&["0", "1", "16", "x"]).to_string(),
                    ]);
                }
                if self.rng.chance(40) {
                    v.push("REPLACE".into());
                }
                v
            }
            64 => vec![
                "MOVE".into(),
                k,
                self.rng.pick(&["0", "1", "16", "x"]).to_string(),
            ],
            65 => vec![
                "OBJECT".into(),
                self.rng
                    .pick(&["ENCODING", "REFCOUNT", "FREQ", "HELP"])
                    .to_string(),
                k,
            ],
            _ => vec!["MGET".into(), k, self.key()],
        };
        // Sometimes break the arity or the spelling.
        match self.rng.below(25) {
            0 if a.len() > 1 => {
                a.pop();
            }
            1 => a.push(self.value()),
            2 => a[0] = a[0].to_lowercase(),
            _ => {}
        }
        Step::new(a.into_iter().map(String::into_bytes).collect())
    }
}

/// `KV_DIFF_SKIP=INCRBYFLOAT,SETRANGE` leaves those commands out of the
/// random sequences: a way to look past a known mismatch while it is fixed.
/// `KV_DIFF_SEEDS=N`: run N seeds of each random test instead of the
/// default.
pub(crate) fn random_seeds() -> u64 {
    std::env::var("KV_DIFF_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(RANDOM_SEEDS)
}

pub(crate) fn skipped_commands() -> Vec<Vec<u8>> {
    std::env::var("KV_DIFF_SKIP")
        .unwrap_or_default()
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase().into_bytes())
        .filter(|s| !s.is_empty())
        .collect()
}

/// Keys for the set sequences: few, so types and sets collide, spread
/// over shards, one pair forced onto one shard by its hash tag.
pub(crate) const SET_KEYS: &[&str] = &["s0", "s1", "s2", "s3", "{s}4", "{s}5", "k0"];

impl Generator {
    pub(crate) fn member(&mut self) -> String {
        match self.rng.below(10) {
            0..=4 => self.rng.range(-5, 20).to_string(),
            5 => self
                .rng
                .pick(&[
                    "9223372036854775807",
                    "-9223372036854775808",
                    "70000",
                    "007",
                    "1.5",
                ])
                .to_string(),
            6 => "x".repeat(65),
            _ => self
                .rng
                .pick(&["a", "b", "c", "", "hello world"])
                .to_string(),
        }
    }

    pub(crate) fn set_key(&mut self) -> String {
        self.rng.pick(SET_KEYS).to_string()
    }

    pub(crate) fn set_keys(&mut self, max: usize) -> Vec<String> {
        let n = 1 + self.rng.below(max);
        (0..n).map(|_| self.set_key()).collect()
    }

    /// A random command over sets and strings on a few keys: sets grow past
    /// every threshold (513 integers, 129 members, a 65-byte member).
    pub(crate) fn set_command(&mut self) -> Step {
        let k = self.set_key();
        let mut a: Vec<String> = match self.rng.below(30) {
            0..=4 => {
                let mut v = vec!["SADD".to_string(), k];
                match self.rng.below(20) {
                    0 => v.extend((0..520).map(|i| (i * 3 - 700).to_string())),
                    1 => v.extend((0..130).map(|i| format!("m{i}"))),
                    _ => {
                        for _ in 0..1 + self.rng.below(5) {
                            v.push(self.member());
                        }
                    }
                }
                v
            }
            5 | 6 => {
                let mut v = vec!["SREM".to_string(), k];
                for _ in 0..1 + self.rng.below(4) {
                    v.push(self.member());
                }
                v
            }
            7 => vec!["SISMEMBER".into(), k, self.member()],
            8 => vec!["SMISMEMBER".into(), k, self.member(), self.member()],
            9 => vec!["SCARD".into(), k],
            10 => vec!["SMEMBERS".into(), k],
            11 => {
                let mut v = vec!["SRANDMEMBER".into(), k];
                if self.rng.chance(70) {
                    v.push(self.rng.range(-8, 8).to_string());
                }
                v
            }
            // Only the deterministic SPOPs: the whole set, or nothing.
            12 => vec![
                "SPOP".into(),
                k,
                self.rng.pick(&["1000", "0", "-1", "x"]).to_string(),
            ],
            13 => vec!["SMOVE".into(), k, self.set_key(), self.member()],
            14..=16 => {
                let mut v = vec![self.rng.pick(&["SINTER", "SUNION", "SDIFF"]).to_string()];
                v.extend(self.set_keys(4));
                v
            }
            17 | 18 => {
                let mut v = vec![
                    self.rng
                        .pick(&["SINTERSTORE", "SUNIONSTORE", "SDIFFSTORE"])
                        .to_string(),
                    k,
                ];
                v.extend(self.set_keys(3));
                v
            }
            19 => {
                let keys = self.set_keys(3);
                let n = if self.rng.chance(90) {
                    keys.len().to_string()
                } else {
                    self.rng.pick(&["0", "5", "x"]).to_string()
                };
                let mut v = vec!["SINTERCARD".to_string(), n];
                v.extend(keys);
                if self.rng.chance(40) {
                    v.extend(["LIMIT".into(), self.rng.range(-1, 3).to_string()]);
                }
                v
            }
            20 => {
                let mut v = vec!["SSCAN".to_string(), k];
                if self.rng.chance(50) {
                    v.extend([
                        "MATCH".into(),
                        self.rng.pick(&["*", "1*", "m1*", "a"]).to_string(),
                    ]);
                }
                if self.rng.chance(50) {
                    v.extend(["COUNT".into(), self.rng.range(1, 20).to_string()]);
                }
                return Step {
                    args: v.into_iter().map(String::into_bytes).collect(),
                    check: Check::ScanAll,
                };
            }
            21 => vec!["SET".into(), k, self.value()],
            22 => vec![
                self.rng
                    .pick(&["GET", "APPEND", "INCR", "STRLEN", "TYPE", "GETDEL"])
                    .to_string(),
                k,
            ],
            23 => vec!["APPEND".into(), k, "x".into()],
            24 => vec![
                self.rng.pick(&["RENAME", "RENAMENX"]).to_string(),
                k,
                self.set_key(),
            ],
            25 => vec!["DEL".into(), k],
            26 => vec!["EXPIRE".into(), k, self.rel_secs().to_string()],
            27 => vec!["MGET".into(), k, self.set_key()],
            28 => {
                let mut v = vec!["SCAN".to_string(), "0".into(), "TYPE".into(), "set".into()];
                v.extend(["COUNT".into(), "1000".into()]);
                return Step {
                    args: v.into_iter().skip(2).map(String::into_bytes).collect(),
                    check: Check::ScanAll,
                };
            }
            _ => vec!["EXISTS".into(), k],
        };
        // Sometimes break the arity (not SPOP's: without its count it
        // pops at random).
        if self.rng.below(30) == 0 && a.len() > 1 && a[0] != "SPOP" {
            a.pop();
        }
        Step::new(a.into_iter().map(String::into_bytes).collect())
    }
}
