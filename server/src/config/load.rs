//! Loading: the command line, config files and their includes, into a
//! [`Startup`].

use super::*;

impl Config {
    /// Reads the command-line arguments (without the program name, e.g.
    /// `std::env::args_os().skip(1)`) the way redis-server 7.0 does:
    /// `[configfile] [-] [--name value...]`, or `-h`/`--help`,
    /// `-v`/`--version` as the first argument. A `-` as the first or last
    /// argument also reads directives from stdin (after the file). Options
    /// are applied after the file, so they win.
    pub fn from_args<S: AsRef<OsStr>>(args: &[S]) -> Result<Startup, ConfigError> {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_ref().as_bytes()).collect();
        let Some(&first) = args.first() else {
            return Ok(Startup::Run(Box::default()));
        };
        match first {
            b"-v" | b"--version" => return Ok(Startup::Version),
            b"-h" | b"--help" => return Ok(Startup::Help(usage("kv-server"))),
            _ => {}
        }

        let mut cfg = Config::default();
        let mut text = Vec::new();
        let mut rest = args.as_slice();
        if first.first() != Some(&b'-') {
            let path =
                std::path::absolute(OsStr::from_bytes(first)).map_err(|e| ConfigError::Open {
                    path: String::from_utf8_lossy(first).into_owned(),
                    reason: os_reason(&e),
                })?;
            text = fs::read(&path).map_err(|e| ConfigError::Open {
                path: path.to_string_lossy().into_owned(),
                reason: os_reason(&e),
            })?;
            cfg.config_file = Some(path);
            rest = args.get(1..).unwrap_or_default();
        }
        let (options, from_stdin) = options_text(rest, args.len());
        if from_stdin {
            io::stdin()
                .read_to_end(&mut text)
                .map_err(|e| ConfigError::Open {
                    path: "-".to_string(),
                    reason: os_reason(&e),
                })?;
        }
        text.push(b'\n');
        let source = Source {
            file: cfg
                .config_file
                .as_ref()
                .map_or("stdin".to_string(), |p| p.to_string_lossy().into_owned()),
            cmdline_from: text.iter().filter(|&&b| b == b'\n').count(),
        };
        text.extend_from_slice(&options);
        let mut loading = Loading::default();
        load_text(&mut cfg, &text, 0, &mut loading, &source)?;
        cfg.warnings = loading.warnings;
        Ok(Startup::Run(Box::new(cfg)))
    }
}

/// The `--help` text: how to start, then every directive of [`DIRECTIVES`]
/// with its default and [`FOREIGN`]'s names.
pub(super) fn usage(program: &str) -> String {
    let mut out = format!(
        "Usage: {p} [/path/to/redis.conf] [options] [-]\n       \
         {p} - (read config from stdin)\n       \
         {p} -v or --version\n       \
         {p} -h or --help\n\n\
         Examples:\n       \
         {p} (run the server with default conf)\n       \
         {p} /etc/kv/6379.conf\n       \
         {p} --port 7777\n       \
         {p} --port 7777 --threads 4 --dir /var/lib/kv\n       \
         {p} /etc/kv.conf --loglevel verbose -\n",
        p = program
    );
    out.push_str(
        "\nOptions (as `--name value` or as `name value` lines of the config file;\n\
         options come after the file, so they win):\n",
    );
    let defaults = Config::default();
    let aliases = ALIASES.iter().filter_map(|(alias, target)| {
        let d = lookup(target.as_bytes())?;
        Some((*alias, d, Some(*target)))
    });
    for (name, d, alias_of) in DIRECTIVES.iter().map(|d| (d.name, d, None)).chain(aliases) {
        let arg = match &d.kind {
            Kind::Int { .. } => "<n>".to_string(),
            Kind::Memory { .. } => "<bytes>".to_string(),
            Kind::Bool { .. } => "yes|no".to_string(),
            Kind::Str { .. } => "<text>".to_string(),
            Kind::LogLevel => LogLevel::ALL.map(LogLevel::name).join("|"),
            Kind::Enum { names, .. } => names.join("|"),
            Kind::Bind => "<addr>...".to_string(),
            Kind::Save => "<seconds> <changes>...".to_string(),
            Kind::ObufLimit => "<class> <hard> <soft> <seconds>...".to_string(),
            Kind::MaxmemoryClients => "<bytes>|<percent>%".to_string(),
        };
        let default = match &d.kind {
            Kind::Memory { get, .. } => format_memory(get(&defaults)),
            _ => d.value(&defaults),
        };
        let default = if default.is_empty() {
            "\"\"".to_string()
        } else {
            default
        };
        let help = match alias_of {
            Some(target) => format!("another name for --{target}"),
            None => d.help.to_string(),
        };
        out.push_str(&format!(
            "  --{name} {arg}   (default: {default})\n        {help}{}\n",
            if d.mutable { "" } else { " [fixed at start]" }
        ));
    }
    out.push_str(
        "\nRedis 7 directives that do not apply here are accepted and ignored, with a\n\
         warning each at start (a few values that could not be ignored safely are\n\
         refused):\n",
    );
    for (names, why) in FOREIGN.iter().filter(|(_, why)| !why.is_empty()) {
        let mut line = String::from(" ");
        for name in names.iter() {
            if line.len() + name.len() > 76 {
                out.push_str(&line);
                out.push('\n');
                line = String::from(" ");
            }
            line.push(' ');
            line.push_str(name);
        }
        out.push_str(&format!("{line}\n        ({why})\n"));
    }
    out
}

/// Builds the directive lines for the command-line options after the config
/// file, following redis-server 7.0's `main()`: `--name` starts a line;
/// following arguments are its values (quoted), even ones that start with
/// `--`, until one value has been seen. `--name value` in one argument is a
/// complete line. `argc` is the number of arguments after the program name;
/// returns the text and whether a `-` asked for stdin.
pub(super) fn options_text(args: &[&[u8]], argc: usize) -> (Vec<u8>, bool) {
    // Position of args[0] among all arguments: 1 when a file came first.
    let first_index = argc.saturating_sub(args.len());
    let mut out = Vec::new();
    let mut from_stdin = false;
    let mut value_seen = true;
    for (k, &arg) in args.iter().enumerate() {
        let index = first_index + k;
        let is_last = index + 1 == argc;
        if arg == b"-" && (index == 0 || is_last) {
            from_stdin = true;
        } else if value_seen && arg.starts_with(b"--") {
            if !out.is_empty() {
                out.push(b'\n');
            }
            out.extend_from_slice(arg.get(2..).unwrap_or_default());
            out.push(b' ');
            let words = split_args(arg).map_or(0, |w| w.len());
            if words == 1 {
                value_seen = false;
                // `--save` with no value means `save ""`, as in Redis.
                if arg.eq_ignore_ascii_case(b"--save") {
                    let next_is_option = args.get(k + 1).is_some_and(|n| n.starts_with(b"--"));
                    if next_is_option {
                        out.extend_from_slice(b"\"\"");
                        value_seen = true;
                    } else if is_last {
                        out.extend_from_slice(b"\"\"");
                    }
                }
            } else {
                value_seen = true;
            }
        } else {
            out.extend_from_slice(repr(arg).as_bytes());
            out.push(b' ');
            value_seen = true;
        }
    }
    (out, from_stdin)
}

/// What one load (a file, the files it includes and the command-line
/// options) has applied so far.
#[derive(Debug, Default)]
pub(super) struct Loading {
    /// The names of the directives applied, in order (CONFIG REWRITE uses
    /// it to see what included files set).
    pub(super) set: Vec<&'static str>,
    /// Whether a `save` line was applied: the first one replaces the default
    /// rules, later ones add to them (Redis 7).
    pub(super) save_seen: bool,
    /// One warning per ignored Redis directive ([`FOREIGN`]), and the
    /// names warned about.
    pub(super) warnings: Vec<String>,
    pub(super) warned: Vec<String>,
}

/// Where the text [`load_text`] reads comes from: the file's name, and the
/// line index (from 0) from which lines are command-line options.
pub(super) struct Source {
    pub(super) file: String,
    pub(super) cmdline_from: usize,
}

/// Applies every line of `text` to `cfg`, like Redis's
/// `loadServerConfigFromString`. Line numbers count from 1 in `text`.
pub(super) fn load_text(
    cfg: &mut Config,
    text: &[u8],
    depth: usize,
    state: &mut Loading,
    source: &Source,
) -> Result<(), ConfigError> {
    for (index, raw) in text.split(|&b| b == b'\n').enumerate() {
        let line = trim_line(raw);
        if line.is_empty() || line.first() == Some(&b'#') {
            continue;
        }
        let origin = if index >= source.cmdline_from {
            Origin::CommandLine
        } else {
            Origin::File(source.file.clone())
        };
        let fail = |reason: String| ConfigError::Line {
            origin: origin.clone(),
            line_no: index + 1,
            line: String::from_utf8_lossy(line).into_owned(),
            reason,
        };
        let Some(args) = split_args(line) else {
            return Err(fail("Unbalanced quotes in configuration line".to_string()));
        };
        let Some((name, values)) = args.split_first() else {
            continue;
        };
        if let Some(directive) = lookup(name) {
            if !directive.multi_arg() && values.len() != 1 {
                return Err(fail("wrong number of arguments".to_string()));
            }
            directive.load(cfg, values, state).map_err(fail)?;
            state.set.push(directive.name);
        } else if let (true, [path]) = (name.eq_ignore_ascii_case(b"include"), values) {
            if depth >= MAX_INCLUDE_DEPTH {
                return Err(fail(format!(
                    "include nested more than {MAX_INCLUDE_DEPTH} levels deep"
                )));
            }
            load_include(cfg, path, depth + 1, state)?;
        } else if let Some(why) = foreign(name) {
            if let Some(refusal) = refused(name, values) {
                return Err(fail(refusal.to_string()));
            }
            let name = String::from_utf8_lossy(name).to_ascii_lowercase();
            if !why.is_empty() && !state.warned.contains(&name) {
                state.warnings.push(format!(
                    "Config directive '{name}' ignored: {why} (line {} of {})",
                    index + 1,
                    match &origin {
                        Origin::File(f) => f.as_str(),
                        Origin::CommandLine => "the command line",
                    }
                ));
                state.warned.push(name);
            }
        } else {
            return Err(fail(
                "Bad directive or wrong number of arguments".to_string(),
            ));
        }
    }
    Ok(())
}

/// `include path`: a file, or a `*`/`?`/`[` pattern in its last component
/// (files in sorted order; no match is not an error, as in Redis). Relative
/// paths are relative to the working directory, as in Redis.
pub(super) fn load_include(
    cfg: &mut Config,
    path: &[u8],
    depth: usize,
    state: &mut Loading,
) -> Result<(), ConfigError> {
    for file in include_files(path) {
        let text = fs::read(&file).map_err(|e| ConfigError::Open {
            path: file.to_string_lossy().into_owned(),
            reason: os_reason(&e),
        })?;
        let source = Source {
            file: file.to_string_lossy().into_owned(),
            cmdline_from: usize::MAX,
        };
        load_text(cfg, &text, depth, state, &source)?;
    }
    Ok(())
}

/// The files an `include` argument names.
pub(super) fn include_files(path: &[u8]) -> Vec<PathBuf> {
    let path = Path::new(OsStr::from_bytes(path));
    if !path
        .as_os_str()
        .as_bytes()
        .iter()
        .any(|b| b"*?[".contains(b))
    {
        return vec![path.to_path_buf()];
    }
    let Some(pattern) = path.file_name() else {
        return Vec::new();
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    let pattern = pattern.as_bytes();
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name();
            let name = name.as_bytes();
            // As glob(3): a leading dot must be matched explicitly.
            (name.first() != Some(&b'.') || pattern.first() == Some(&b'.'))
                && engine::glob::matches(pattern, name, false)
        })
        .map(|e| dir.join(e.file_name()))
        .collect();
    files.sort();
    files
}
