//! Reading a Redis append-only file, for importing a Redis dataset.
//!
//! Two layouts, found the way Redis 7 finds them at start
//! (`loadAppendOnlyFiles` in `aof.c`):
//!
//! - **Multi-part (Redis 7+)**: `<dir>/<appenddirname>/<appendfilename>.manifest`
//!   lists a base file and incremental files, one per line:
//!
//!   ```text
//!   file appendonly.aof.1.base.aof seq 1 type b
//!   file appendonly.aof.1.incr.aof seq 1 type i
//!   file appendonly.aof.2.incr.aof seq 2 type i
//!   ```
//!
//!   Keys are matched without case and may come in any order; unknown keys
//!   (`startoffset`, ...) are ignored; values may be quoted like Redis
//!   arguments; lines starting with `#` are comments. `type h` (history)
//!   files are not loaded. The files are loaded base first, then the
//!   incremental files in `seq` order.
//! - **Single file (Redis 6 and older)**: `<dir>/<appendfilename>`. Used when
//!   there is no manifest, or (Redis's upgrade rule) when the manifest lists
//!   no file, or only a base named `<appendfilename>` that is not in the
//!   AOF directory.
//!
//! Each file is RESP multibulk commands (`*<argc>\r\n$<len>\r\n<arg>\r\n...`),
//! with `#...\r\n` annotation lines (e.g. `#TS:` timestamps) between
//! commands. `MULTI` / `EXEC` wrappers are dropped and the commands between
//! them kept. Truncation follows `aof-load-truncated`: only the end of the
//! last file may be incomplete (an incomplete command, or a `MULTI` without
//! `EXEC`); with `load_truncated` it is dropped and reported in
//! [`RedisAof::truncated`], without it it is an error. Anything else that is
//! not the format is an error naming the file and the byte offset.
//!
//! Not supported yet: a file in RDB format (a base written with
//! `aof-use-rdb-preamble yes`, the Redis 7 default, or an old single file
//! with an RDB preamble). It is refused with an error that says how to get
//! a plain AOF from the Redis server.
//!
//! Files are read whole into memory. Nothing here panics on any input.

#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::ffi::OsStr;
use std::fmt;
use std::fs;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::resp::{Limits, Parsed, Parser};

/// Longest manifest line Redis accepts (`AOF_ANNOTATION_LINE_MAX_LEN`).
const MANIFEST_LINE_MAX: usize = 1024;

/// Longest `*<argc>` / `$<len>` header line accepted (digits and CRLF).
const HEADER_LINE_MAX: usize = 64;

/// Longest annotation line accepted (Redis reads lines of up to 1024 bytes).
const ANNOTATION_LINE_MAX: usize = 1024;

/// What a file of a multi-part AOF is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RedisAofFileType {
    /// The base (`type b`), or the whole AOF of the single-file layout.
    Base,
    /// An incremental file (`type i`).
    Incr,
}

/// One file to load.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAofFile {
    pub path: PathBuf,
    pub file_type: RedisAofFileType,
    /// The manifest's `seq` (0 for the single-file layout).
    pub seq: u64,
}

/// A manifest Redis itself would refuse to start with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub path: PathBuf,
    /// 1-based line number, 0 when the error is not about one line.
    pub line: usize,
    /// The offending line (lossily decoded), if any.
    pub text: Option<String>,
    pub detail: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "bad AOF manifest {}", self.path.display())?;
        if self.line > 0 {
            write!(f, " at line {}", self.line)?;
        }
        if let Some(t) = &self.text {
            write!(f, " ('{t}')")?;
        }
        write!(f, ": {}", self.detail)
    }
}

/// A Redis AOF found by [`locate`]: the files to load, in load order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RedisAofSource {
    /// The manifest of the multi-part layout; `None` for a single file.
    pub manifest: Option<PathBuf>,
    /// Base first, then incremental files by `seq`. History files are not
    /// listed.
    pub files: Vec<RedisAofFile>,
    /// Why the manifest cannot be used ([`read_commands`] returns it).
    manifest_error: Option<ManifestError>,
}

impl RedisAofSource {
    /// The single-file layout: `path` is the whole AOF.
    pub fn single_file(path: PathBuf) -> Self {
        Self {
            manifest: None,
            files: vec![RedisAofFile {
                path,
                file_type: RedisAofFileType::Base,
                seq: 0,
            }],
            manifest_error: None,
        }
    }

    /// The manifest exists but cannot be used (unreadable or invalid);
    /// [`read_commands`] fails with this error.
    pub fn manifest_error(&self) -> Option<&ManifestError> {
        self.manifest_error.as_ref()
    }
}

impl fmt::Display for RedisAofSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.manifest {
            Some(m) => {
                let incr = self
                    .files
                    .iter()
                    .filter(|x| x.file_type == RedisAofFileType::Incr)
                    .count();
                let base = self.files.len().saturating_sub(incr);
                write!(
                    f,
                    "multi-part AOF {} ({base} base, {incr} incremental files)",
                    m.display()
                )
            }
            None => match self.files.first() {
                Some(file) => write!(f, "AOF file {}", file.path.display()),
                None => f.write_str("empty AOF"),
            },
        }
    }
}

/// Finds the Redis AOF of data directory `dir` (Redis's `dir`), with Redis's
/// `appenddirname` and `appendfilename`: the multi-part layout when its
/// manifest exists, else the single file; `None` when neither exists (or
/// the manifest lists no file and there is no single file). An unreadable
/// or invalid manifest gives a source whose [`RedisAofSource::manifest_error`]
/// is set (Redis refuses to start on it; so does [`read_commands`]).
pub fn locate(dir: &Path, appenddirname: &str, appendfilename: &str) -> Option<RedisAofSource> {
    let aof_dir = dir.join(appenddirname);
    let manifest_path = aof_dir.join(format!("{appendfilename}.manifest"));
    let old_file = dir.join(appendfilename);
    let old_exists = old_file.is_file();
    let bytes = match fs::read(&manifest_path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return old_exists.then(|| RedisAofSource::single_file(old_file));
        }
        Err(e) => {
            return Some(RedisAofSource {
                manifest: Some(manifest_path.clone()),
                files: Vec::new(),
                manifest_error: Some(ManifestError {
                    path: manifest_path,
                    line: 0,
                    text: None,
                    detail: format!("cannot read it: {e}"),
                }),
            })
        }
    };
    let manifest = match parse_manifest(&bytes) {
        Ok(m) => m,
        Err((line, text, detail)) => {
            return Some(RedisAofSource {
                manifest: Some(manifest_path.clone()),
                files: Vec::new(),
                manifest_error: Some(ManifestError {
                    path: manifest_path,
                    line,
                    text,
                    detail,
                }),
            })
        }
    };
    // Redis's upgrade rule: an old single file next to a manifest that
    // lists nothing, or only a base named like it that is not in the AOF
    // directory, is the AOF.
    if old_exists {
        let upgrade = match (&manifest.base, manifest.incr.is_empty()) {
            (None, true) => true,
            (Some((name, _)), true) => {
                name.as_os_str() == OsStr::new(appendfilename) && !aof_dir.join(name).exists()
            }
            _ => false,
        };
        if upgrade {
            return Some(RedisAofSource::single_file(old_file));
        }
    }
    if manifest.base.is_none() && manifest.incr.is_empty() {
        return None;
    }
    let mut files = Vec::new();
    if let Some((name, seq)) = manifest.base {
        files.push(RedisAofFile {
            path: aof_dir.join(name),
            file_type: RedisAofFileType::Base,
            seq,
        });
    }
    // The manifest's incremental files are in strictly increasing seq order
    // (checked by parse_manifest).
    for (name, seq) in manifest.incr {
        files.push(RedisAofFile {
            path: aof_dir.join(name),
            file_type: RedisAofFileType::Incr,
            seq,
        });
    }
    Some(RedisAofSource {
        manifest: Some(manifest_path),
        files,
        manifest_error: None,
    })
}

/// The files a manifest lists: base `(name, seq)` and incremental files.
#[derive(Debug, Default)]
struct Manifest {
    base: Option<(PathBuf, u64)>,
    incr: Vec<(PathBuf, u64)>,
}

/// `(line number, line text, detail)` of a manifest error.
type ManifestParseError = (usize, Option<String>, String);

/// Parses a manifest the way Redis 7's `aofLoadManifestFromFile` does.
fn parse_manifest(bytes: &[u8]) -> Result<Manifest, ManifestParseError> {
    if bytes.is_empty() {
        return Err((0, None, "found an empty AOF manifest".into()));
    }
    let mut m = Manifest::default();
    let mut max_incr_seq = 0u64;
    let mut parser = Parser::new();
    for (i, raw) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let n = i.saturating_add(1);
        if raw.first() == Some(&b'#') {
            continue;
        }
        let text = || Some(String::from_utf8_lossy(raw.trim_ascii()).into_owned());
        let err = |detail: &str| Err((n, text(), detail.to_string()));
        if raw.len() > MANIFEST_LINE_MAX {
            return err("the AOF manifest file contains too long line");
        }
        let line = raw.trim_ascii();
        if line.is_empty() || line.first() == Some(&b'*') {
            return err("invalid AOF manifest file format");
        }
        // Split like Redis's sdssplitargs (quotes, escapes): the inline
        // request parser does exactly that.
        let mut input = line.to_vec();
        input.push(b'\n');
        parser.reset();
        let args: Vec<Vec<u8>> = match parser.parse(&input, Limits::default()) {
            Ok(Parsed::Command { .. }) => {
                let src = parser.source(&input);
                parser
                    .args()
                    .iter()
                    .map(|r| src.get(r.clone()).unwrap_or(&[]).to_vec())
                    .collect()
            }
            _ => return err("invalid AOF manifest file format"),
        };
        if args.len() < 6 || !args.len().is_multiple_of(2) {
            return err("invalid AOF manifest file format");
        }
        let mut name: Option<&[u8]> = None;
        let mut seq: Option<u64> = None;
        let mut file_type: Option<u8> = None;
        for pair in args.chunks_exact(2) {
            let (Some(key), Some(value)) = (pair.first(), pair.get(1)) else {
                continue;
            };
            if key.eq_ignore_ascii_case(b"file") {
                if value.is_empty()
                    || value.contains(&b'/')
                    || value.contains(&b'\\')
                    || value.as_slice() == b"."
                    || value.as_slice() == b".."
                {
                    return err("file can't be a path, just a filename");
                }
                name = Some(value);
            } else if key.eq_ignore_ascii_case(b"seq") {
                seq = parse_u64(value).filter(|&s| s > 0);
                if seq.is_none() {
                    return err("invalid AOF manifest file format (bad seq)");
                }
            } else if key.eq_ignore_ascii_case(b"type") {
                file_type = value.first().copied();
            }
        }
        let (Some(name), Some(seq), Some(file_type)) = (name, seq, file_type) else {
            return err("invalid AOF manifest file format");
        };
        let name = PathBuf::from(OsStr::from_bytes(name));
        match file_type {
            b'b' => {
                if m.base.is_some() {
                    return err("found duplicate base file information");
                }
                m.base = Some((name, seq));
            }
            b'h' => {}
            b'i' => {
                if seq <= max_incr_seq {
                    return err("found a non-monotonic sequence number");
                }
                max_incr_seq = seq;
                m.incr.push((name, seq));
            }
            _ => return err("unknown AOF file type"),
        }
    }
    Ok(m)
}

fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(s).ok()?.parse().ok()
}

/// Counts of what [`read_commands`] read.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisAofStats {
    /// Files read.
    pub files: usize,
    /// Bytes read (whole files, a dropped tail included).
    pub bytes: u64,
    /// Commands returned (`MULTI` / `EXEC` not counted).
    pub commands: usize,
    /// `MULTI` ... `EXEC` blocks whose wrappers were dropped.
    pub transactions: usize,
}

/// The incomplete end of the last file, dropped (`aof-load-truncated yes`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TruncatedTail {
    pub path: PathBuf,
    /// Where the dropped bytes start: the start of the incomplete command,
    /// or of the `MULTI` whose `EXEC` is missing.
    pub offset: u64,
    /// Bytes dropped (from `offset` to the end of the file).
    pub dropped_bytes: u64,
    /// Complete commands dropped with it (those after an unterminated
    /// `MULTI`).
    pub dropped_commands: usize,
    /// What was incomplete.
    pub reason: String,
}

impl fmt::Display for TruncatedTail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "short read at the end of the AOF file {}: {}; the last {} bytes, from offset {}, \
             were not loaded",
            self.path.display(),
            self.reason,
            self.dropped_bytes,
            self.offset
        )?;
        if self.dropped_commands > 0 {
            write!(
                f,
                " (with {} commands of the unfinished transaction)",
                self.dropped_commands
            )?;
        }
        Ok(())
    }
}

/// A Redis AOF read by [`read_commands`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RedisAof {
    /// Every command in load order, each as its arguments (`SELECT`s
    /// included, `MULTI` / `EXEC` dropped).
    pub commands: Vec<Vec<Vec<u8>>>,
    pub stats: RedisAofStats,
    /// The incomplete tail that was dropped, if any (log a warning).
    pub truncated: Option<TruncatedTail>,
}

/// Why a Redis AOF cannot be read.
#[derive(Debug)]
pub enum RedisAofError {
    /// A file could not be read (a file the manifest lists is missing, ...).
    Io { path: PathBuf, source: io::Error },
    /// The manifest cannot be used.
    Manifest(ManifestError),
    /// The file is not in the AOF format at `offset`.
    Format {
        path: PathBuf,
        offset: u64,
        detail: String,
    },
    /// The file ends in the middle of a command (or of a `MULTI` block) at
    /// `offset`, and either it is not the last file or `load_truncated` is
    /// false.
    Truncated {
        path: PathBuf,
        offset: u64,
        detail: String,
        last_file: bool,
    },
    /// The file is in RDB format (RDB preamble or RDB base).
    RdbPreamble { path: PathBuf },
}

impl RedisAofError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::Format { path, .. }
            | Self::Truncated { path, .. }
            | Self::RdbPreamble { path } => path,
            Self::Manifest(m) => &m.path,
        }
    }

    /// The byte offset in [`RedisAofError::path`] the error is about.
    pub fn offset(&self) -> Option<u64> {
        match self {
            Self::Format { offset, .. } | Self::Truncated { offset, .. } => Some(*offset),
            Self::RdbPreamble { .. } => Some(0),
            Self::Io { .. } | Self::Manifest(_) => None,
        }
    }
}

impl fmt::Display for RedisAofError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io { path, source } => {
                write!(f, "cannot read the AOF file {}: {source}", path.display())
            }
            Self::Manifest(m) => m.fmt(f),
            Self::Format {
                path,
                offset,
                detail,
            } => write!(
                f,
                "bad file format reading the AOF file {} at offset {offset}: {detail}. \
                 Make a backup of the AOF, then repair it with Redis's \
                 `redis-check-aof --fix`",
                path.display()
            ),
            Self::Truncated {
                path,
                offset,
                detail,
                last_file: true,
            } => write!(
                f,
                "unexpected end of the AOF file {} at offset {offset} ({detail}). Set \
                 aof-load-truncated yes to load it without that incomplete end, or make a \
                 backup and repair it with Redis's `redis-check-aof --fix`",
                path.display()
            ),
            Self::Truncated {
                path,
                offset,
                detail,
                last_file: false,
            } => write!(
                f,
                "the AOF file {} ends in the middle of a command at offset {offset} ({detail}) \
                 but it is not the last file of the AOF, so commands are missing. Make a \
                 backup of the AOF, then repair it with Redis's `redis-check-aof --fix`",
                path.display()
            ),
            Self::RdbPreamble { path } => write!(
                f,
                "the AOF file {} is in RDB format (it starts with \"REDIS\": written with \
                 aof-use-rdb-preamble yes); RDB-format AOF bases are not supported yet. On the \
                 Redis server run `CONFIG SET aof-use-rdb-preamble no`, then `BGREWRITEAOF`, \
                 wait for the rewrite to finish, and import the new AOF",
                path.display()
            ),
        }
    }
}

impl std::error::Error for RedisAofError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

/// Reads every command of `src` in load order (module doc). With
/// `load_truncated` (Redis's `aof-load-truncated`), an incomplete command
/// or a `MULTI` without `EXEC` at the very end of the last file is dropped
/// and reported in [`RedisAof::truncated`]; without it, or anywhere else,
/// it is an error.
pub fn read_commands(
    src: &RedisAofSource,
    load_truncated: bool,
) -> Result<RedisAof, RedisAofError> {
    if let Some(e) = &src.manifest_error {
        return Err(RedisAofError::Manifest(e.clone()));
    }
    let mut aof = RedisAof::default();
    let count = src.files.len();
    for (i, file) in src.files.iter().enumerate() {
        let bytes = fs::read(&file.path).map_err(|source| RedisAofError::Io {
            path: file.path.clone(),
            source,
        })?;
        aof.stats.files = aof.stats.files.saturating_add(1);
        aof.stats.bytes = aof.stats.bytes.saturating_add(bytes.len() as u64);
        let last = i.saturating_add(1) == count;
        parse_file(&bytes, &file.path, last, load_truncated, &mut aof)?;
    }
    aof.stats.commands = aof.commands.len();
    Ok(aof)
}

/// One step of parsing a file.
enum Item {
    /// A command: its arguments and the offset just past it.
    Command(Vec<Vec<u8>>, usize),
    /// An annotation line; the offset just past it.
    Annotation(usize),
    /// The file ends inside the item (what was missing).
    Incomplete(&'static str),
}

/// A format error at a byte offset.
struct Bad(usize, String);

/// Parses one file, appending its commands to `aof`.
fn parse_file(
    bytes: &[u8],
    path: &Path,
    last: bool,
    load_truncated: bool,
    aof: &mut RedisAof,
) -> Result<(), RedisAofError> {
    if bytes.starts_with(b"REDIS") {
        return Err(RedisAofError::RdbPreamble {
            path: path.to_path_buf(),
        });
    }
    // An open MULTI: (commands before it, its offset).
    let mut multi: Option<(usize, usize)> = None;
    let mut pos = 0usize;
    let mut incomplete: Option<&'static str> = None;
    while pos < bytes.len() {
        match parse_item(bytes, pos) {
            Ok(Item::Annotation(next)) => pos = next,
            Ok(Item::Command(args, next)) => {
                match command_kind(&args) {
                    Kind::Multi => {
                        // A nested MULTI is an error inside Redis's EXEC
                        // and changes nothing: dropped like the first.
                        if multi.is_none() {
                            multi = Some((aof.commands.len(), pos));
                        }
                    }
                    Kind::Exec => {
                        // A stray EXEC is an error in Redis and changes
                        // nothing: dropped.
                        if multi.take().is_some() {
                            aof.stats.transactions = aof.stats.transactions.saturating_add(1);
                        }
                    }
                    Kind::Other => aof.commands.push(args),
                }
                pos = next;
            }
            Ok(Item::Incomplete(what)) => {
                incomplete = Some(what);
                break;
            }
            Err(Bad(offset, detail)) => {
                return Err(RedisAofError::Format {
                    path: path.to_path_buf(),
                    offset: offset as u64,
                    detail,
                })
            }
        }
    }
    let (cut, reason, dropped_commands) = match (multi, incomplete) {
        (None, None) => return Ok(()),
        (None, Some(what)) => (pos, what.to_string(), 0),
        (Some((before, at)), what) => {
            let dropped = aof.commands.len().saturating_sub(before);
            aof.commands.truncate(before);
            let reason = match what {
                Some(w) => format!("{w}, inside a MULTI block (from offset {at}) without EXEC"),
                None => "MULTI without EXEC".to_string(),
            };
            (at, reason, dropped)
        }
    };
    if !last || !load_truncated {
        return Err(RedisAofError::Truncated {
            path: path.to_path_buf(),
            offset: cut as u64,
            detail: reason,
            last_file: last,
        });
    }
    aof.truncated = Some(TruncatedTail {
        path: path.to_path_buf(),
        offset: cut as u64,
        dropped_bytes: bytes.len().saturating_sub(cut) as u64,
        dropped_commands,
        reason,
    });
    Ok(())
}

enum Kind {
    Multi,
    Exec,
    Other,
}

fn command_kind(args: &[Vec<u8>]) -> Kind {
    match args {
        [name] if name.eq_ignore_ascii_case(b"MULTI") => Kind::Multi,
        [name] if name.eq_ignore_ascii_case(b"EXEC") => Kind::Exec,
        _ => Kind::Other,
    }
}

/// A header line `<tag><digits>\r\n` at `at`: `Ok(Some((value, next)))`,
/// `Ok(None)` when the file ends inside it (with only valid bytes so far).
fn header(bytes: &[u8], at: usize, tag: u8, what: &str) -> Result<Option<(u64, usize)>, Bad> {
    let rest = bytes.get(at..).unwrap_or(&[]);
    match rest.first() {
        None => return Ok(None),
        Some(&b) if b == tag => {}
        Some(&b) => {
            return Err(Bad(
                at,
                format!(
                    "expected '{}' ({what}), found {}",
                    tag as char,
                    describe_byte(b)
                ),
            ))
        }
    }
    let digits_end = rest
        .iter()
        .skip(1)
        .position(|b| !b.is_ascii_digit())
        .map(|p| p.saturating_add(1));
    let Some(end) = digits_end else {
        // Digits up to the end of the file.
        if rest.len() > HEADER_LINE_MAX {
            return Err(Bad(at, format!("{what} line too long")));
        }
        return Ok(None);
    };
    let digits = rest.get(1..end).unwrap_or(&[]);
    let bad = |detail: String| Err(Bad(at, detail));
    if end > HEADER_LINE_MAX {
        return bad(format!("{what} line too long"));
    }
    match (rest.get(end), rest.get(end.saturating_add(1))) {
        (Some(b'\r'), Some(b'\n')) => {}
        (Some(b'\r'), None) => return Ok(None),
        (Some(&b), _) if b != b'\r' => {
            return bad(format!(
                "{what}: expected a number and CRLF, found {}",
                describe_byte(b)
            ))
        }
        _ => return bad(format!("{what}: expected CRLF")),
    }
    let Some(value) = parse_u64(digits) else {
        return bad(format!("{what}: invalid number"));
    };
    Ok(Some((value, at.saturating_add(end).saturating_add(2))))
}

fn describe_byte(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}'", b as char)
    } else {
        format!("byte 0x{b:02x}")
    }
}

/// Parses the item (command or annotation) at `at`, which is before the
/// end of `bytes`.
fn parse_item(bytes: &[u8], at: usize) -> Result<Item, Bad> {
    let rest = bytes.get(at..).unwrap_or(&[]);
    if rest.first() == Some(&b'#') {
        return Ok(match rest.iter().position(|&b| b == b'\n') {
            Some(nl) if nl < ANNOTATION_LINE_MAX => Item::Annotation(at.saturating_add(nl + 1)),
            Some(_) => return Err(Bad(at, "annotation line too long".into())),
            // Redis reads a last line without newline as a whole line, and
            // an annotation carries no data: the end of the file.
            None if rest.len() < ANNOTATION_LINE_MAX => Item::Annotation(bytes.len()),
            None => return Err(Bad(at, "annotation line too long".into())),
        });
    }
    let Some((argc, mut pos)) = header(bytes, at, b'*', "command header '*<argc>'")? else {
        return Ok(Item::Incomplete("incomplete command header"));
    };
    if argc == 0 || argc > i32::MAX as u64 {
        return Err(Bad(at, format!("invalid argument count {argc}")));
    }
    let mut args = Vec::new();
    for i in 0..argc {
        let Some((len, data)) = header(bytes, pos, b'$', "argument header '$<len>'")? else {
            return Ok(Item::Incomplete("incomplete command"));
        };
        let remaining = bytes.len().saturating_sub(data) as u64;
        if len.saturating_add(2) > remaining {
            // The announced argument runs past the end of the file: the
            // file ends inside it, unless a complete CRLF-terminated item
            // cannot possibly be there (checked by a shorter file too).
            let got = bytes.get(data..).unwrap_or(&[]);
            if got.len() as u64 > len {
                // Data complete, terminator incomplete: must be '\r'.
                if got.get(len as usize) != Some(&b'\r') {
                    return Err(Bad(
                        data.saturating_add(len as usize),
                        format!("argument {} not terminated by CRLF", i.saturating_add(1)),
                    ));
                }
            }
            return Ok(Item::Incomplete("incomplete command"));
        }
        let len = len as usize;
        let end = data.saturating_add(len);
        if bytes.get(end..end.saturating_add(2)) != Some(b"\r\n".as_slice()) {
            return Err(Bad(
                end,
                format!("argument {} not terminated by CRLF", i.saturating_add(1)),
            ));
        }
        args.push(bytes.get(data..end).unwrap_or(&[]).to_vec());
        pos = end.saturating_add(2);
    }
    Ok(Item::Command(args, pos))
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    use crate::testkit::TempDir;

    fn resp(cmds: &[&[&str]]) -> Vec<u8> {
        let mut out = Vec::new();
        for c in cmds {
            crate::resp::write_command(&mut out, c.iter().map(|a| a.as_bytes()));
        }
        out
    }

    fn cmds(cmds: &[&[&str]]) -> Vec<Vec<Vec<u8>>> {
        cmds.iter()
            .map(|c| c.iter().map(|a| a.as_bytes().to_vec()).collect())
            .collect()
    }

    /// Parses `bytes` as the last (or not) file of an AOF.
    fn parse(bytes: &[u8], last: bool, load_truncated: bool) -> Result<RedisAof, RedisAofError> {
        let mut aof = RedisAof::default();
        parse_file(bytes, Path::new("test.aof"), last, load_truncated, &mut aof)?;
        aof.stats.commands = aof.commands.len();
        Ok(aof)
    }

    const SAMPLE: &[&[&str]] = &[
        &["SELECT", "0"],
        &["SET", "k", "v"],
        &["RPUSH", "list", "a", "", "b\r\nc"],
        &["SELECT", "3"],
        &["PEXPIREAT", "k", "1700000000000"],
    ];

    #[test]
    fn single_file_layout() {
        let t = TempDir::new("single");
        assert_eq!(locate(&t.0, "appendonlydir", "appendonly.aof"), None);
        let mut bytes = b"#TS:1700000000\r\n".to_vec();
        bytes.extend(resp(SAMPLE));
        fs::write(t.0.join("appendonly.aof"), &bytes).unwrap();
        let src = locate(&t.0, "appendonlydir", "appendonly.aof").unwrap();
        assert_eq!(src.manifest, None);
        assert_eq!(src.files.len(), 1);
        assert_eq!(src.files[0].path, t.0.join("appendonly.aof"));
        assert!(src.to_string().contains("appendonly.aof"), "{src}");
        let aof = read_commands(&src, false).unwrap();
        assert_eq!(aof.commands, cmds(SAMPLE));
        assert_eq!(
            aof.stats,
            RedisAofStats {
                files: 1,
                bytes: bytes.len() as u64,
                commands: SAMPLE.len(),
                transactions: 0,
            }
        );
        assert_eq!(aof.truncated, None);
        // An empty file is an empty dataset.
        fs::write(t.0.join("appendonly.aof"), b"").unwrap();
        assert!(read_commands(&src, false).unwrap().commands.is_empty());
    }

    #[test]
    fn multi_part_layout_with_manifest() {
        let t = TempDir::new("multi");
        let d = t.0.join("appendonlydir");
        fs::create_dir_all(&d).unwrap();
        // An old single file too: the manifest takes precedence.
        fs::write(t.0.join("my.aof"), resp(&[&["SET", "old", "1"]])).unwrap();
        fs::write(d.join("my.aof.2.base.aof"), resp(&[&["SET", "base", "1"]])).unwrap();
        fs::write(
            d.join("my.aof.1.base.aof"),
            resp(&[&["SET", "history", "1"]]),
        )
        .unwrap();
        fs::write(d.join("my.aof.3.incr.aof"), resp(&[&["SET", "i3", "1"]])).unwrap();
        fs::write(
            d.join("my aof.4.incr.aof"),
            resp(&[&["SET", "i4", "1"], &["DEL", "base"]]),
        )
        .unwrap();
        fs::write(d.join("my.aof.5.incr.aof"), b"").unwrap();
        fs::write(
            d.join("my.aof.manifest"),
            "# a comment\n\
             file my.aof.1.base.aof seq 1 type h\n\
             type i seq 3 file my.aof.3.incr.aof startoffset 0\n\
             file my.aof.2.base.aof seq 2 type b\n\
             FILE \"my aof.4.incr.aof\" SEQ 4 TYPE i\n\
             file my.aof.5.incr.aof seq 5 type i\n",
        )
        .unwrap();
        let src = locate(&t.0, "appendonlydir", "my.aof").unwrap();
        assert_eq!(src.manifest, Some(d.join("my.aof.manifest")));
        let files: Vec<_> = src
            .files
            .iter()
            .map(|f| (f.path.clone(), f.file_type, f.seq))
            .collect();
        assert_eq!(
            files,
            vec![
                (d.join("my.aof.2.base.aof"), RedisAofFileType::Base, 2),
                (d.join("my.aof.3.incr.aof"), RedisAofFileType::Incr, 3),
                (d.join("my aof.4.incr.aof"), RedisAofFileType::Incr, 4),
                (d.join("my.aof.5.incr.aof"), RedisAofFileType::Incr, 5),
            ]
        );
        assert!(src.to_string().contains("1 base, 3 incremental"), "{src}");
        let aof = read_commands(&src, false).unwrap();
        assert_eq!(
            aof.commands,
            cmds(&[
                &["SET", "base", "1"],
                &["SET", "i3", "1"],
                &["SET", "i4", "1"],
                &["DEL", "base"],
            ])
        );
        assert_eq!(aof.stats.files, 4);

        // A listed file that is missing is an error naming it.
        fs::remove_file(d.join("my.aof.3.incr.aof")).unwrap();
        let e = read_commands(&src, true).unwrap_err();
        assert!(matches!(e, RedisAofError::Io { .. }), "{e}");
        assert_eq!(e.path(), d.join("my.aof.3.incr.aof"));
    }

    #[test]
    fn manifest_errors_and_upgrade_rules() {
        let t = TempDir::new("manifest");
        let d = t.0.join("aofdir");
        fs::create_dir_all(&d).unwrap();
        let m = d.join("appendonly.aof.manifest");
        let bad: [(&str, &str, usize); 9] = [
            ("", "empty", 0),
            ("file a seq 1\n", "format", 1),
            ("file a seq 1 type b extra\n", "format", 1),
            ("file ../a seq 1 type b\n", "just a filename", 1),
            ("file a seq x type b\n", "format", 1),
            (
                "file a seq 1 type b\nfile b seq 2 type b\n",
                "duplicate base",
                2,
            ),
            (
                "file a seq 2 type i\nfile b seq 2 type i\n",
                "non-monotonic",
                2,
            ),
            ("file a seq 1 type z\n", "unknown AOF file type", 1),
            ("file \"a seq 1 type b\n", "format", 1),
        ];
        for (text, want, line) in bad {
            fs::write(&m, text).unwrap();
            let src = locate(&t.0, "aofdir", "appendonly.aof").unwrap();
            let me = src.manifest_error().cloned().unwrap();
            assert!(me.detail.contains(want), "{text:?}: {me}");
            assert_eq!(me.line, line, "{text:?}: {me}");
            let e = read_commands(&src, true).unwrap_err();
            assert!(matches!(e, RedisAofError::Manifest(_)), "{e}");
            assert!(e.to_string().contains("appendonly.aof.manifest"), "{e}");
        }
        let long = format!("file {} seq 1 type b\n", "a".repeat(2000));
        fs::write(&m, long).unwrap();
        let src = locate(&t.0, "aofdir", "appendonly.aof").unwrap();
        assert!(src.manifest_error().unwrap().detail.contains("too long"));

        // Only comments / history: no AOF, unless an old single file exists.
        fs::write(&m, "# nothing\nfile x seq 1 type h\n").unwrap();
        assert_eq!(locate(&t.0, "aofdir", "appendonly.aof"), None);
        fs::write(t.0.join("appendonly.aof"), resp(&[&["SET", "a", "1"]])).unwrap();
        let src = locate(&t.0, "aofdir", "appendonly.aof").unwrap();
        assert_eq!(src.manifest, None);
        assert_eq!(src.files[0].path, t.0.join("appendonly.aof"));
        // A half-done upgrade: the manifest names the old file as base but
        // it was not moved yet.
        fs::write(&m, "file appendonly.aof seq 1 type b\n").unwrap();
        let src = locate(&t.0, "aofdir", "appendonly.aof").unwrap();
        assert_eq!(src.files[0].path, t.0.join("appendonly.aof"));
        // ... and once moved, the manifest's file is used.
        fs::rename(t.0.join("appendonly.aof"), d.join("appendonly.aof")).unwrap();
        let src = locate(&t.0, "aofdir", "appendonly.aof").unwrap();
        assert_eq!(src.files[0].path, d.join("appendonly.aof"));
        assert_eq!(read_commands(&src, false).unwrap().commands.len(), 1);
    }

    #[test]
    fn multi_exec_wrappers_are_dropped() {
        let bytes = resp(&[
            &["SET", "a", "1"],
            &["MULTI"],
            &["INCR", "a"],
            &["SELECT", "2"],
            &["SET", "b", "2"],
            &["exec"],
            &["EXEC"],
            &["DEL", "a"],
        ]);
        let aof = parse(&bytes, true, false).unwrap();
        assert_eq!(
            aof.commands,
            cmds(&[
                &["SET", "a", "1"],
                &["INCR", "a"],
                &["SELECT", "2"],
                &["SET", "b", "2"],
                &["DEL", "a"],
            ])
        );
        assert_eq!(aof.stats.transactions, 1);
        assert_eq!(aof.truncated, None);
    }

    #[test]
    fn multi_without_exec_at_the_end_is_a_truncated_tail() {
        let head = resp(&[&["SET", "a", "1"]]);
        let mut bytes = head.clone();
        bytes.extend(resp(&[&["MULTI"], &["INCR", "a"], &["INCR", "a"]]));
        let aof = parse(&bytes, true, true).unwrap();
        assert_eq!(aof.commands, cmds(&[&["SET", "a", "1"]]));
        let t = aof.truncated.unwrap();
        assert_eq!(t.offset, head.len() as u64);
        assert_eq!(t.dropped_bytes, (bytes.len() - head.len()) as u64);
        assert_eq!(t.dropped_commands, 2);
        assert!(t.reason.contains("MULTI without EXEC"), "{t}");
        let e = parse(&bytes, true, false).unwrap_err();
        assert!(
            matches!(e, RedisAofError::Truncated { offset, last_file: true, .. } if offset == head.len() as u64),
            "{e}"
        );
        // Not the last file: always an error.
        let e = parse(&bytes, false, true).unwrap_err();
        assert!(
            matches!(
                e,
                RedisAofError::Truncated {
                    last_file: false,
                    ..
                }
            ),
            "{e}"
        );
        // Truncated inside the MULTI block: cut at the MULTI.
        let mut cut = bytes.clone();
        cut.truncate(bytes.len() - 3);
        let aof = parse(&cut, true, true).unwrap();
        assert_eq!(aof.commands, cmds(&[&["SET", "a", "1"]]));
        assert_eq!(aof.truncated.unwrap().offset, head.len() as u64);
    }

    #[test]
    fn truncated_tail_at_every_offset() {
        let all = cmds(SAMPLE);
        let bytes = resp(SAMPLE);
        let mut ends = vec![0];
        for c in SAMPLE {
            ends.push(ends.last().unwrap() + resp(&[c]).len());
        }
        for cut in 0..=bytes.len() {
            let part = &bytes[..cut];
            let complete = ends.iter().rposition(|&e| e <= cut).unwrap();
            let at_boundary = ends[complete] == cut;
            let aof = parse(part, true, true).unwrap();
            assert_eq!(aof.commands, all[..complete], "cut {cut}");
            match &aof.truncated {
                None => assert!(at_boundary, "cut {cut}"),
                Some(t) => {
                    assert!(!at_boundary, "cut {cut}");
                    assert_eq!(t.offset, ends[complete] as u64, "cut {cut}");
                    assert_eq!(t.dropped_bytes, (cut - ends[complete]) as u64);
                }
            }
            match parse(part, true, false) {
                Ok(aof) => {
                    assert!(at_boundary, "cut {cut}");
                    assert_eq!(aof.commands, all[..complete]);
                }
                Err(e) => {
                    assert!(!at_boundary, "cut {cut}: {e}");
                    assert_eq!(e.offset(), Some(ends[complete] as u64), "{e}");
                    assert!(e.to_string().contains("aof-load-truncated"), "{e}");
                }
            }
            if !at_boundary {
                assert!(parse(part, false, true).is_err(), "cut {cut}");
            }
        }
    }

    #[test]
    fn truncated_last_file_of_a_multi_part_aof() {
        let t = TempDir::new("multi-trunc");
        let d = t.0.join("appendonlydir");
        fs::create_dir_all(&d).unwrap();
        let base = resp(&[&["SET", "a", "1"]]);
        let incr = resp(&[&["SET", "b", "2"], &["SET", "c", "3"]]);
        fs::write(d.join("x.1.base.aof"), &base[..base.len() - 1]).unwrap();
        fs::write(d.join("x.1.incr.aof"), &incr[..incr.len() - 4]).unwrap();
        fs::write(
            d.join("x.manifest"),
            "file x.1.base.aof seq 1 type b\nfile x.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        let src = locate(&t.0, "appendonlydir", "x").unwrap();
        // The base (not the last file) is truncated: an error either way.
        let e = read_commands(&src, true).unwrap_err();
        assert_eq!(e.path(), d.join("x.1.base.aof"));
        assert!(e.to_string().contains("not the last file"), "{e}");
        fs::write(d.join("x.1.base.aof"), &base).unwrap();
        let aof = read_commands(&src, true).unwrap();
        assert_eq!(
            aof.commands,
            cmds(&[&["SET", "a", "1"], &["SET", "b", "2"]])
        );
        let tail = aof.truncated.unwrap();
        assert_eq!(tail.path, d.join("x.1.incr.aof"));
        assert_eq!(tail.offset, resp(&[&["SET", "b", "2"]]).len() as u64);
        assert!(tail.to_string().contains("x.1.incr.aof"), "{tail}");
        let e = read_commands(&src, false).unwrap_err();
        assert_eq!(e.path(), d.join("x.1.incr.aof"));
    }

    #[test]
    fn garbage_in_the_middle_is_a_format_error_at_its_offset() {
        let head = resp(&[&["SET", "a", "1"]]);
        let tail = resp(&[&["SET", "b", "2"]]);
        let cases: [(&[u8], usize); 9] = [
            (b"garbage\r\n", 0),
            (b"*x\r\n", 0),
            (b"*0\r\n", 0),
            (b"*-1\r\n", 0),
            (b"*1\r\n+OK\r\n", 4),
            (b"*1\r\n$3\r\nGETxx", 11),
            (b"*1\r\n$-1\r\n", 4),
            (b"*1\n$4\r\nPING\r\n", 0),
            (b"\0\0\0\0", 0),
        ];
        for (junk, rel) in cases {
            let mut bytes = head.clone();
            bytes.extend_from_slice(junk);
            bytes.extend_from_slice(&tail);
            for load_truncated in [true, false] {
                let e = parse(&bytes, true, load_truncated).unwrap_err();
                assert!(matches!(e, RedisAofError::Format { .. }), "{junk:?}: {e}");
                assert_eq!(e.offset(), Some((head.len() + rel) as u64), "{junk:?}: {e}");
                let msg = e.to_string();
                assert!(msg.contains("test.aof"), "{msg}");
                assert!(
                    msg.contains(&format!("offset {}", head.len() + rel)),
                    "{msg}"
                );
            }
        }
        // Garbage at the very end is not a truncation either.
        let mut bytes = head.clone();
        bytes.extend_from_slice(b"xyz");
        assert!(matches!(
            parse(&bytes, true, true),
            Err(RedisAofError::Format { .. })
        ));
        // A header cut short after its digits is a truncation.
        let mut bytes = head.clone();
        bytes.extend_from_slice(b"*12");
        assert!(parse(&bytes, true, true).unwrap().truncated.is_some());
    }

    #[test]
    fn rdb_preamble_is_refused_with_instructions() {
        let t = TempDir::new("rdb");
        let d = t.0.join("appendonlydir");
        fs::create_dir_all(&d).unwrap();
        fs::write(
            d.join("appendonly.aof.1.base.rdb"),
            b"REDIS0011\xfa\x09redis-ver",
        )
        .unwrap();
        fs::write(
            d.join("appendonly.aof.1.incr.aof"),
            resp(&[&["SET", "a", "1"]]),
        )
        .unwrap();
        fs::write(
            d.join("appendonly.aof.manifest"),
            "file appendonly.aof.1.base.rdb seq 1 type b\n\
             file appendonly.aof.1.incr.aof seq 1 type i\n",
        )
        .unwrap();
        let src = locate(&t.0, "appendonlydir", "appendonly.aof").unwrap();
        let e = read_commands(&src, true).unwrap_err();
        assert!(matches!(e, RedisAofError::RdbPreamble { .. }), "{e}");
        assert_eq!(e.path(), d.join("appendonly.aof.1.base.rdb"));
        let msg = e.to_string();
        assert!(msg.contains("not supported yet"), "{msg}");
        assert!(msg.contains("CONFIG SET aof-use-rdb-preamble no"), "{msg}");
        assert!(msg.contains("BGREWRITEAOF"), "{msg}");
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(
            bytes in proptest::collection::vec(any::<u8>(), 0..400),
            last in any::<bool>(),
            load_truncated in any::<bool>(),
        ) {
            let _ = parse(&bytes, last, load_truncated);
            let _ = parse_manifest(&bytes);
        }

        #[test]
        fn random_resp_like_bytes_never_panic(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(b"*".to_vec()),
                    Just(b"$".to_vec()),
                    Just(b"\r\n".to_vec()),
                    Just(b"#".to_vec()),
                    Just(b"MULTI".to_vec()),
                    Just(b"EXEC".to_vec()),
                    Just(b"REDIS".to_vec()),
                    (0u64..30).prop_map(|n| n.to_string().into_bytes()),
                    Just(b"99999999999999999999999".to_vec()),
                    proptest::collection::vec(any::<u8>(), 0..4),
                ],
                0..40,
            ),
            load_truncated in any::<bool>(),
        ) {
            let bytes = parts.concat();
            if let Ok(aof) = parse(&bytes, true, load_truncated) {
                prop_assert!(load_truncated || aof.truncated.is_none());
            }
        }

        #[test]
        fn damaged_valid_aof_never_panics_and_keeps_a_prefix(
            i in any::<prop::sample::Index>(),
            x in 1u8..,
        ) {
            let mut bytes = resp(SAMPLE);
            let i = i.index(bytes.len());
            bytes[i] ^= x;
            if let Ok(aof) = parse(&bytes, true, true) {
                // Whatever loads, the commands before the damaged one are
                // the original ones.
                let all = cmds(SAMPLE);
                let mut end = 0;
                let mut intact = 0;
                for c in SAMPLE {
                    end += resp(&[c]).len();
                    if end > i {
                        break;
                    }
                    intact += 1;
                }
                prop_assert!(aof.commands.len() >= intact);
                prop_assert_eq!(&aof.commands[..intact], &all[..intact]);
            }
        }
    }
}
