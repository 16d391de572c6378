//! Applying one directive's words to a [`Config`], and the directives
//! whose values have a syntax of their own (`bind`, `save`,
//! `client-output-buffer-limit`, `maxmemory-clients`).

use super::*;

impl Directive {
    /// A multi-argument directive given all its words in one argument
    /// (`save "3600 1"` in a file, `--save "3600 1"`, CONFIG SET) is split
    /// at spaces, as Redis 7 does; None when there is nothing to split.
    pub(super) fn split_single(&self, args: &[Vec<u8>]) -> Option<Vec<Vec<u8>>> {
        match args {
            [only] if self.multi_arg() && only.contains(&b' ') => Some(
                only.split(|&b| b == b' ')
                    .filter(|w| !w.is_empty())
                    .map(<[u8]>::to_vec)
                    .collect(),
            ),
            _ => None,
        }
    }

    /// Whether the directive takes any number of arguments (else exactly one).
    pub(super) fn multi_arg(&self) -> bool {
        matches!(self.kind, Kind::Bind | Kind::Save | Kind::ObufLimit)
    }

    /// Applies one config-file line's `args` to `cfg`, the way loading
    /// does: like [`Directive::apply`], except that only the first `save`
    /// line of a load replaces the rules, later ones add to them.
    pub(super) fn load(
        &self,
        cfg: &mut Config,
        args: &[Vec<u8>],
        state: &mut Loading,
    ) -> Result<(), String> {
        let split = self.split_single(args);
        let args = split.as_deref().unwrap_or(args);
        if let Kind::Save = self.kind {
            apply_save(cfg, args, !state.save_seen)?;
            state.save_seen = true;
            return Ok(());
        }
        self.apply(cfg, args)
    }

    /// Parses `args` (the words after the name) into `cfg`, replacing the
    /// value (CONFIG SET). The error is Redis's reason text.
    pub(super) fn apply(&self, cfg: &mut Config, args: &[Vec<u8>]) -> Result<(), String> {
        let split = self.split_single(args);
        let args = split.as_deref().unwrap_or(args);
        match self.kind {
            Kind::Bind => return apply_bind(cfg, args),
            Kind::Save => return apply_save(cfg, args, true),
            Kind::ObufLimit => return apply_obuf_limit(cfg, args),
            _ => {}
        }
        let [arg] = args else {
            return Err("wrong number of arguments".to_string());
        };
        match &self.kind {
            Kind::Int { min, max, put, .. } => {
                let v = parse_ll(arg)
                    .ok_or_else(|| "argument couldn't be parsed into an integer".to_string())?;
                if v < *min || v > *max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                put(cfg, v);
            }
            Kind::Memory { min, max, put, .. } => {
                let v = parse_memory(arg)
                    .ok_or_else(|| "argument must be a memory value".to_string())?;
                if v < *min || v > *max {
                    return Err(format!(
                        "argument must be between {min} and {max} inclusive"
                    ));
                }
                put(cfg, v);
            }
            Kind::Bool { put, .. } => {
                let v =
                    parse_bool(arg).ok_or_else(|| "argument must be 'yes' or 'no'".to_string())?;
                put(cfg, v).map_err(str::to_string)?;
            }
            Kind::Str { put, .. } => {
                let v = utf8(arg)?;
                put(cfg, v).map_err(str::to_string)?;
            }
            Kind::LogLevel => {
                let level = LogLevel::ALL
                    .into_iter()
                    .find(|l| l.name().as_bytes().eq_ignore_ascii_case(arg))
                    .ok_or_else(|| {
                        let names: Vec<&str> = LogLevel::ALL.iter().map(|l| l.name()).collect();
                        format!(
                            "argument(s) must be one of the following: {}",
                            names.join(", ")
                        )
                    })?;
                cfg.loglevel = level;
            }
            Kind::Enum { names, put, .. } => {
                let i = names
                    .iter()
                    .position(|n| n.as_bytes().eq_ignore_ascii_case(arg))
                    .ok_or_else(|| {
                        format!(
                            "argument(s) must be one of the following: {}",
                            names.join(", ")
                        )
                    })?;
                put(cfg, i);
            }
            Kind::MaxmemoryClients => {
                cfg.maxmemory_clients = parse_maxmemory_clients(arg)?;
            }
            Kind::Bind | Kind::Save | Kind::ObufLimit => {}
        }
        Ok(())
    }

    /// The value as CONFIG GET shows it.
    pub(super) fn value(&self, cfg: &Config) -> String {
        match &self.kind {
            Kind::Int { get, .. } => get(cfg).to_string(),
            Kind::Memory { get, .. } => get(cfg).to_string(),
            Kind::Bool { get, .. } => yes_no(get(cfg)).to_string(),
            Kind::Str { get, .. } => get(cfg),
            Kind::LogLevel => cfg.loglevel.name().to_string(),
            Kind::Enum { names, get, .. } => names.get(get(cfg)).copied().unwrap_or("").to_string(),
            Kind::Bind => cfg.bind.join(" "),
            Kind::Save => {
                let words: Vec<String> = cfg
                    .save
                    .iter()
                    .map(|(seconds, changes)| format!("{seconds} {changes}"))
                    .collect();
                words.join(" ")
            }
            Kind::ObufLimit => {
                let words: Vec<String> = OBUF_CLASSES
                    .iter()
                    .zip(&cfg.client_output_buffer_limit)
                    .map(|(name, l)| format!("{name} {} {} {}", l.hard, l.soft, l.soft_seconds))
                    .collect();
                words.join(" ")
            }
            Kind::MaxmemoryClients => match cfg.maxmemory_clients {
                MaxmemoryClients::Bytes(b) => b.to_string(),
                MaxmemoryClients::Percent(p) => format!("{p}%"),
            },
        }
    }

    /// The line CONFIG REWRITE writes for the current value.
    pub(super) fn rewrite_line(&self, cfg: &Config) -> String {
        let value = match &self.kind {
            Kind::Memory { get, .. } => format_memory(get(cfg)),
            Kind::Str { get, .. } => repr(get(cfg).as_bytes()),
            Kind::Bind if cfg.bind.is_empty() => "\"\"".to_string(),
            Kind::Bind => {
                let words: Vec<String> = cfg.bind.iter().map(|a| bare_or_repr(a)).collect();
                words.join(" ")
            }
            Kind::Save if cfg.save.is_empty() => "\"\"".to_string(),
            Kind::ObufLimit => {
                let words: Vec<String> = OBUF_CLASSES
                    .iter()
                    .zip(&cfg.client_output_buffer_limit)
                    .map(|(name, l)| {
                        format!(
                            "{name} {} {} {}",
                            format_memory(l.hard),
                            format_memory(l.soft),
                            l.soft_seconds
                        )
                    })
                    .collect();
                words.join(" ")
            }
            Kind::MaxmemoryClients => match cfg.maxmemory_clients {
                MaxmemoryClients::Bytes(b) => format_memory(b),
                MaxmemoryClients::Percent(p) => format!("{p}%"),
            },
            _ => self.value(cfg),
        };
        format!("{} {}", self.name, value)
    }
}

pub(super) fn apply_bind(cfg: &mut Config, args: &[Vec<u8>]) -> Result<(), String> {
    if args.len() > MAX_BIND_ADDRS {
        return Err("Too many bind addresses specified.".to_string());
    }
    // A single empty argument means "no addresses", as in Redis.
    let args = match args {
        [only] if only.is_empty() => &[][..],
        _ => args,
    };
    cfg.bind = args.iter().map(|a| utf8(a)).collect::<Result<_, _>>()?;
    Ok(())
}

/// `save` (Redis 7's `setConfigSaveOption`): `args` are `<seconds>
/// <changes>` pairs, seconds >= 1 and changes >= 0; a single empty argument
/// clears the rules. With `replace` the pairs replace the rules, else they
/// are added to them. Nothing changes on error.
pub(super) fn apply_save(cfg: &mut Config, args: &[Vec<u8>], replace: bool) -> Result<(), String> {
    const INVALID: &str = "Invalid save parameters";
    let clear = matches!(args, [only] if only.is_empty());
    let args = if clear { &[][..] } else { args };
    let mut pairs = Vec::with_capacity(args.len() / 2);
    for chunk in args.chunks(2) {
        let [seconds, changes] = chunk else {
            return Err(INVALID.to_string());
        };
        let seconds = parse_ll(seconds).filter(|&s| s >= 1);
        let changes = parse_ll(changes).filter(|&c| c >= 0);
        let (Some(seconds), Some(changes)) = (seconds, changes) else {
            return Err(INVALID.to_string());
        };
        pairs.push((seconds.unsigned_abs(), changes.unsigned_abs()));
    }
    if replace || clear {
        cfg.save.clear();
    }
    cfg.save.extend(pairs);
    Ok(())
}

/// `client-output-buffer-limit` (Redis 7's `updateClientOutputBufferLimit`):
/// groups of `<class> <hard> <soft> <soft-seconds>`; each group replaces its
/// class, the others stay. All groups are checked before any is applied.
pub(super) fn apply_obuf_limit(cfg: &mut Config, args: &[Vec<u8>]) -> Result<(), String> {
    if !args.len().is_multiple_of(4) {
        return Err("Wrong number of arguments in buffer limit configuration.".to_string());
    }
    let mut next = cfg.client_output_buffer_limit;
    for group in args.chunks(4) {
        let [class, hard, soft, seconds] = group else {
            continue;
        };
        let index = match class.to_ascii_lowercase().as_slice() {
            b"normal" => 0,
            b"slave" | b"replica" => 1,
            b"pubsub" => 2,
            _ => {
                return Err(
                    "Invalid client class specified in buffer limit configuration.".to_string(),
                )
            }
        };
        let hard = parse_memory(hard);
        let soft = parse_memory(soft);
        let seconds = parse_ll(seconds).filter(|s| *s >= 0);
        let (Some(hard), Some(soft), Some(seconds)) = (hard, soft, seconds) else {
            return Err(
                "Error in hard, soft or soft_seconds setting in buffer limit configuration."
                    .to_string(),
            );
        };
        next[index] = ObufLimit {
            hard,
            soft,
            soft_seconds: seconds.unsigned_abs(),
        };
    }
    cfg.client_output_buffer_limit = next;
    Ok(())
}

/// `maxmemory-clients`: a memory value, or `<n>%` with n at most 100
/// (Redis 7's percent configs).
pub(super) fn parse_maxmemory_clients(arg: &[u8]) -> Result<MaxmemoryClients, String> {
    if let Some(digits) = arg.strip_suffix(b"%") {
        let p = parse_ll(digits)
            .filter(|p| *p >= 0)
            .ok_or_else(|| "argument must be a memory or percent value".to_string())?;
        if p > 100 {
            return Err("percentage argument must be less or equal to 100".to_string());
        }
        return Ok(MaxmemoryClients::Percent(p.unsigned_abs()));
    }
    let b = parse_memory(arg)
        .filter(|b| *b <= i64::MAX as u64)
        .ok_or_else(|| "argument must be a memory or percent value".to_string())?;
    Ok(MaxmemoryClients::Bytes(b))
}

pub(super) fn utf8(arg: &[u8]) -> Result<String, String> {
    String::from_utf8(arg.to_vec()).map_err(|_| "argument must be a valid UTF-8 string".to_string())
}

pub(super) fn yes_no(v: bool) -> &'static str {
    if v {
        "yes"
    } else {
        "no"
    }
}
