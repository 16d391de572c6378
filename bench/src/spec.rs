//! What a load run does: [`LoadSpec`], and the workload's commands.
//!
//! Every command, the built-in SET and GET included, is a [`CommandTemplate`]
//! whose arguments may contain `__key__` and `__data__`; a request picks a
//! command by weight, one key number (all `__key__` of the request share
//! it) and one value size, and writes the command as a RESP array.

use std::time::Duration;

use serde::Serialize;

use crate::keys::{KeyPattern, Rng};
use crate::resp;

/// When a run ends (whichever comes first if both are set).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StopAfter {
    /// Total requests over all connections.
    pub requests: Option<u64>,
    /// Wall time from the moment every connection is up.
    #[serde(serialize_with = "optional_seconds")]
    pub duration: Option<Duration>,
}

/// Durations go to JSON as seconds.
fn seconds<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

fn optional_seconds<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_f64(d.as_secs_f64()),
        None => s.serialize_none(),
    }
}

/// An inclusive `min..=max` range, written `MIN-MAX` on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Range {
    pub min: u64,
    pub max: u64,
}

impl Range {
    pub fn fixed(n: u64) -> Self {
        Range { min: n, max: n }
    }

    /// Parses `N` or `MIN-MAX`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u64>()
                .map_err(|_| format!("'{s}' is not N or MIN-MAX"))
        };
        let r = match s.split_once('-') {
            Some((a, b)) => Range {
                min: num(a)?,
                max: num(b)?,
            },
            None => Range::fixed(num(s)?),
        };
        if r.min > r.max {
            return Err(format!("'{s}': MIN is greater than MAX"));
        }
        Ok(r)
    }

    pub fn draw(&self, rng: &mut Rng) -> u64 {
        if self.min == self.max {
            self.min
        } else {
            rng.range(self.min, self.max)
        }
    }
}

/// Parses weights written `A:B[:C...]`, e.g. a SET:GET ratio of `1:10`.
pub fn parse_weights(s: &str) -> Result<Vec<u32>, String> {
    let w = s
        .split(':')
        .map(|t| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("bad weight '{t}' in '{s}' (want e.g. 1:10)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if w.iter().all(|&x| x == 0) {
        return Err(format!("weights '{s}' are all 0"));
    }
    if w.iter().map(|&x| u64::from(x)).sum::<u64>() > u64::from(u32::MAX) {
        return Err(format!("weights '{s}' add up to more than 2^32"));
    }
    Ok(w)
}

/// One piece of an argument.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Literal(Vec<u8>),
    Key,
    Data,
}

/// A command of the workload, e.g. `SET __key__ __data__`.
#[derive(Debug, Clone, Serialize)]
pub struct CommandTemplate {
    /// Name in the report: the command word, upper-cased (`SET`), with
    /// `#2`, `#3` ... appended when several templates share it.
    pub name: String,
    /// The template as written.
    pub text: String,
    /// Relative weight in the mix.
    pub weight: u32,
    /// Append `EX <seconds>` with seconds drawn from `--expiry-range`.
    pub with_expiry: bool,
    #[serde(skip)]
    args: Vec<Vec<Piece>>,
}

impl CommandTemplate {
    /// Splits `text` on whitespace; `__key__` and `__data__` may appear
    /// anywhere inside an argument (`user:__key__`). Quoting is not
    /// supported: an argument cannot contain spaces.
    pub fn parse(text: &str, weight: u32) -> Result<Self, String> {
        let args: Vec<Vec<Piece>> = text.split_whitespace().map(parse_arg).collect();
        let Some(first) = text.split_whitespace().next() else {
            return Err("empty --command".to_owned());
        };
        Ok(CommandTemplate {
            name: first.to_ascii_uppercase(),
            text: text.to_owned(),
            weight,
            with_expiry: false,
            args,
        })
    }

    pub fn uses_data(&self) -> bool {
        self.args.iter().flatten().any(|p| *p == Piece::Data)
    }

    /// Appends the request as a RESP array.
    pub fn encode(&self, out: &mut Vec<u8>, key: &[u8], data: &[u8], expiry: Option<u64>) {
        let mut secs = itoa::Buffer::new();
        let extra = if expiry.is_some() { 2 } else { 0 };
        resp::put_array_header(out, self.args.len() + extra);
        for arg in &self.args {
            let len: usize = arg
                .iter()
                .map(|p| match p {
                    Piece::Literal(l) => l.len(),
                    Piece::Key => key.len(),
                    Piece::Data => data.len(),
                })
                .sum();
            resp::put_bulk_header(out, len);
            for p in arg {
                out.extend_from_slice(match p {
                    Piece::Literal(l) => l,
                    Piece::Key => key,
                    Piece::Data => data,
                });
            }
            out.extend_from_slice(b"\r\n");
        }
        if let Some(s) = expiry {
            resp::put_bulk(out, b"EX");
            resp::put_bulk(out, secs.format(s).as_bytes());
        }
    }
}

fn parse_arg(arg: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut rest = arg;
    loop {
        let next = [("__key__", Piece::Key), ("__data__", Piece::Data)]
            .into_iter()
            .filter_map(|(pat, piece)| rest.find(pat).map(|at| (at, pat.len(), piece)))
            .min_by_key(|(at, _, _)| *at);
        match next {
            None => {
                if !rest.is_empty() {
                    pieces.push(Piece::Literal(rest.as_bytes().to_vec()));
                }
                return pieces;
            }
            Some((at, len, piece)) => {
                if at > 0 {
                    pieces.push(Piece::Literal(rest.as_bytes()[..at].to_vec()));
                }
                pieces.push(piece);
                rest = &rest[at + len..];
            }
        }
    }
}

/// Gives each template its report name, numbering repeats (`SET`, `SET#2`).
pub fn name_commands(commands: &mut [CommandTemplate]) {
    for i in 0..commands.len() {
        let base = commands[i].name.clone();
        let seen = commands[..i]
            .iter()
            .filter(|c| c.name == base || c.name.starts_with(&format!("{base}#")))
            .count();
        if seen > 0 {
            commands[i].name = format!("{base}#{}", seen + 1);
        }
    }
}

/// Picks a command index by weight.
#[derive(Debug, Clone)]
pub struct CommandChooser {
    /// Running sums of the weights.
    cumulative: Vec<u64>,
}

impl CommandChooser {
    pub fn new(weights: impl IntoIterator<Item = u32>) -> Self {
        let mut sum = 0u64;
        let cumulative = weights
            .into_iter()
            .map(|w| {
                sum += u64::from(w);
                sum
            })
            .collect();
        CommandChooser { cumulative }
    }

    pub fn choose(&self, rng: &mut Rng) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if self.cumulative.len() <= 1 || total == 0 {
            return 0;
        }
        let x = rng.range(0, total - 1);
        self.cumulative.partition_point(|&c| c <= x)
    }
}

/// Everything a load run needs to know.
#[derive(Debug, Clone, Serialize)]
pub struct LoadSpec {
    pub host: String,
    pub port: u16,
    /// OS threads, each running an event loop over its connections.
    pub threads: usize,
    /// Connections per thread.
    pub clients: usize,
    /// Requests written together per batch on a connection.
    pub pipeline: usize,
    /// Total requests/s over all connections; `None` runs as fast as the
    /// server answers (closed loop).
    pub rate: Option<f64>,
    pub stop: StopAfter,
    pub commands: Vec<CommandTemplate>,
    pub key_min: u64,
    pub key_max: u64,
    pub key_prefix: String,
    pub key_pattern: KeyPattern,
    /// Value size in bytes (`__data__`).
    pub data_size: Range,
    /// Seconds for `SET ... EX`, on templates with `with_expiry`.
    pub expiry: Option<Range>,
    /// Give up on a connection whose reply takes longer than this.
    #[serde(serialize_with = "seconds")]
    pub reply_timeout: Duration,
    /// Seed of every connection's random stream (mixed with its number).
    pub seed: u64,
}

impl LoadSpec {
    /// A SET/GET mix with `sets:gets` weights and defaults elsewhere:
    /// 127.0.0.1:6379, 1 thread x 50 clients, pipeline 1, 100 000
    /// requests, keys `key:0`..`key:999999` uniform, 64-byte values.
    pub fn set_get(sets: u32, gets: u32) -> Self {
        let mut commands = Vec::new();
        // Parsing these constants cannot fail.
        if let Ok(mut set) = CommandTemplate::parse("SET __key__ __data__", sets) {
            set.with_expiry = true;
            commands.push(set);
        }
        if let Ok(get) = CommandTemplate::parse("GET __key__", gets) {
            commands.push(get);
        }
        LoadSpec {
            host: "127.0.0.1".to_owned(),
            port: 6379,
            threads: 1,
            clients: 50,
            pipeline: 1,
            rate: None,
            stop: StopAfter {
                requests: Some(100_000),
                duration: None,
            },
            commands,
            key_min: 0,
            key_max: 999_999,
            key_prefix: "key:".to_owned(),
            key_pattern: KeyPattern::Uniform,
            data_size: Range::fixed(64),
            expiry: None,
            reply_timeout: Duration::from_secs(60),
            seed: 0,
        }
    }

    pub fn connections(&self) -> usize {
        self.threads * self.clients
    }

    pub fn command_names(&self) -> Vec<String> {
        self.commands.iter().map(|c| c.name.clone()).collect()
    }

    /// Checks the spec before any connection is made.
    pub fn validate(&self) -> Result<(), String> {
        if self.threads == 0 || self.clients == 0 || self.pipeline == 0 {
            return Err("--threads, --clients and --pipeline must be at least 1".into());
        }
        if self.key_min > self.key_max {
            return Err(format!(
                "--key-min {} is greater than --key-max {}",
                self.key_min, self.key_max
            ));
        }
        if self.commands.is_empty() || self.commands.iter().all(|c| c.weight == 0) {
            return Err("no command has a weight above 0".into());
        }
        if let Some(r) = self.rate {
            if !(r.is_finite() && r > 0.0) {
                return Err(format!("--rate must be above 0, not {r}"));
            }
        }
        if self.stop.requests.is_none() && self.stop.duration.is_none() {
            return Err("set --requests or --duration".into());
        }
        if self.stop.requests == Some(0) {
            return Err("--requests must be at least 1".into());
        }
        if self.data_size.max > 512 << 20 {
            return Err("--data-size is above Redis's 512 MiB limit".into());
        }
        match self.key_pattern {
            KeyPattern::Gaussian { stddev } if !(stddev.is_finite() && stddev > 0.0) => {
                return Err(format!("--key-stddev must be above 0, not {stddev}"));
            }
            KeyPattern::Zipf { exponent } if !(exponent.is_finite() && exponent > 0.0) => {
                return Err(format!("--zipf-exponent must be above 0, not {exponent}"));
            }
            _ => {}
        }
        if self.reply_timeout.is_zero() {
            return Err("--timeout must be above 0".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(t: &CommandTemplate, key: &[u8], data: &[u8], expiry: Option<u64>) -> String {
        let mut out = Vec::new();
        t.encode(&mut out, key, data, expiry);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn templates_substitute_key_and_data_anywhere() {
        let t = CommandTemplate::parse("hset user:__key__ f __data__-__key__", 1).expect("valid");
        assert_eq!(t.name, "HSET");
        assert!(t.uses_data());
        assert_eq!(
            encoded(&t, b"k1", b"vv", None),
            "*4\r\n$4\r\nhset\r\n$7\r\nuser:k1\r\n$1\r\nf\r\n$5\r\nvv-k1\r\n"
        );
        let get = CommandTemplate::parse("GET __key__", 1).expect("valid");
        assert!(!get.uses_data());
        assert!(CommandTemplate::parse("   ", 1).is_err());
    }

    #[test]
    fn builtin_set_gets_ex_only_when_asked() {
        let spec = LoadSpec::set_get(1, 1);
        let set = &spec.commands[0];
        assert_eq!(
            encoded(set, b"key:7", b"xyz", Some(30)),
            "*5\r\n$3\r\nSET\r\n$5\r\nkey:7\r\n$3\r\nxyz\r\n$2\r\nEX\r\n$2\r\n30\r\n"
        );
        assert_eq!(
            encoded(set, b"key:7", b"", None),
            "*3\r\n$3\r\nSET\r\n$5\r\nkey:7\r\n$0\r\n\r\n"
        );
    }

    #[test]
    fn ratio_and_weights_parse() {
        assert_eq!(parse_weights("1:10"), Ok(vec![1, 10]));
        assert_eq!(parse_weights(" 3 : 0 : 1"), Ok(vec![3, 0, 1]));
        assert_eq!(parse_weights("5"), Ok(vec![5]));
        assert!(parse_weights("0:0").is_err());
        assert!(parse_weights("1:x").is_err());
        assert!(parse_weights("").is_err());
        assert!(parse_weights("4294967295:1").is_err());
    }

    #[test]
    fn ranges_parse() {
        assert_eq!(Range::parse("64"), Ok(Range::fixed(64)));
        assert_eq!(Range::parse("10-100"), Ok(Range { min: 10, max: 100 }));
        assert!(Range::parse("100-10").is_err());
        assert!(Range::parse("a-b").is_err());
        let mut rng = Rng::new(1);
        let r = Range { min: 10, max: 12 };
        let mut seen = [false; 3];
        for _ in 0..1000 {
            seen[(r.draw(&mut rng) - 10) as usize] = true;
        }
        assert_eq!(seen, [true; 3]);
    }

    #[test]
    fn chooser_follows_the_ratio() {
        let c = CommandChooser::new([1, 10]);
        let mut rng = Rng::new(2);
        let n = 110_000;
        let sets = (0..n).filter(|_| c.choose(&mut rng) == 0).count();
        // Expect 10 000, binomial sd ~ 95.
        assert!((9_500..10_500).contains(&sets), "{sets}");

        let c = CommandChooser::new([2, 0, 1]);
        let mut counts = [0u32; 3];
        for _ in 0..30_000 {
            counts[c.choose(&mut rng)] += 1;
        }
        assert_eq!(counts[1], 0, "weight 0 is never chosen");
        assert!((19_000..21_000).contains(&counts[0]), "{counts:?}");

        assert_eq!(CommandChooser::new([7]).choose(&mut rng), 0);
    }

    #[test]
    fn repeated_command_words_get_numbered_names() {
        let mut cmds: Vec<CommandTemplate> =
            ["SET __key__ a", "get __key__", "set __key__ b", "SET x y"]
                .iter()
                .filter_map(|t| CommandTemplate::parse(t, 1).ok())
                .collect();
        name_commands(&mut cmds);
        let names: Vec<&str> = cmds.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["SET", "GET", "SET#2", "SET#3"]);
    }

    #[test]
    fn validation_catches_bad_specs() {
        assert_eq!(LoadSpec::set_get(1, 1).validate(), Ok(()));
        let mut s = LoadSpec::set_get(1, 1);
        s.key_min = 10;
        s.key_max = 5;
        assert!(s.validate().is_err());
        let mut s = LoadSpec::set_get(0, 0);
        assert!(s.validate().is_err());
        s = LoadSpec::set_get(1, 0);
        s.rate = Some(0.0);
        assert!(s.validate().is_err());
        s = LoadSpec::set_get(1, 0);
        s.stop = StopAfter {
            requests: None,
            duration: None,
        };
        assert!(s.validate().is_err());
        s = LoadSpec::set_get(1, 0);
        s.key_pattern = KeyPattern::Zipf { exponent: 0.0 };
        assert!(s.validate().is_err());
    }
}
