//! COMMAND DOCS: Redis 7.0's documentation of every command in the table,
//! and of the subcommands of CLIENT, COMMAND and CONFIG that the server
//! implements, replied in Redis 7.0's shape (redis-cli builds its help and
//! its argument hints from it).
//!
//! Each [`Doc`] holds what Redis 7.0's `src/commands/*.json` says about one
//! command: since-version, complexity, history, deprecation, and the
//! arguments as a compact syntax string, written the way redis-cli 7.0
//! prints it as a hint (`key value [NX|XX] [GET] [EX seconds|...]`).
//! [`arguments`] parses the syntax into Redis's argument tree (name, type,
//! token, flags, nested arguments); [`Doc::notes`] add what a syntax string
//! cannot show: names of groups, non-default types, `since` of arguments.
//! Each command's `Doc` lives in its table row (`families/*.rs`), with
//! its subcommands' docs; the summary and group are the row's
//! ([`CommandSpec::summary`], [`CommandSpec::group`]); subcommands carry
//! their own summary.
//!
//! The syntax:
//! - `word` (has a lower-case letter: `key`, `ip:port`, `yes/no`): an
//!   argument of that name; its type comes from the name ([`default_type`]:
//!   key, pattern, unix-time, integer, otherwise string).
//! - `TOKEN` (no lower-case letter): a literal keyword. Alone, a pure-token
//!   named after it in lower case. Followed by words or `<...>` groups, they
//!   take the token: one argument gets it (`EX seconds`), several become a
//!   block with it (`AUTH username password`). A token right after a token
//!   is refused as ambiguous: write `TYPE <NORMAL|MASTER>`.
//! - `a b`: a sequence: the argument list at the top, a block elsewhere.
//! - `a|b`: a oneof (at the top too: CLIENT KILL's one argument).
//! - `[...]`: optional.
//! - `x [x ...]`: `x` is multiple; `TOKEN x [TOKEN x ...]`: multiple with
//!   multiple_token; `a b [a b ...]`: a multiple block of `a` and `b`.
//! - `<...>`: a group: one block (a oneof if it has `|`), even around a
//!   single argument (`ID <client-id [client-id ...]>`). redis-cli prints
//!   no brackets for it, so neither do hints, and repeats are compared
//!   without `<` and `>`.
//!
//! Redis 7.0 has no `display_text` (7.2 added it), so there is none here.

use crate::command::{self, CommandSpec};
use crate::reply::Reply;

/// What COMMAND DOCS says about one command or subcommand. A command's
/// `Doc` is part of its table row ([`CommandSpec::doc`], built by the row's
/// `.doc(..)`); a subcommand's is in its container's row
/// ([`Doc::subcommands`]).
#[derive(Clone, Copy)]
pub struct Doc {
    /// Lower-case name; `container|sub` for a subcommand.
    pub name: &'static str,
    /// Subcommands only; a command's summary is its row's.
    pub summary: Option<&'static str>,
    pub since: &'static str,
    pub complexity: &'static str,
    /// The arguments (see the module docs); empty for none.
    pub syntax: &'static str,
    /// `(selector, attributes)`. The selector is an argument as a hint shows
    /// it without its optional brackets and repeat (`NX|XX`, `EX seconds`,
    /// `GET`), or the start of a oneof followed by `|...`
    /// (`EX seconds|...`); it must pick exactly one argument. Attributes:
    /// `name=`, `type=`, `since=`, `deprecated=` (deprecated_since).
    pub notes: &'static [(&'static str, &'static str)],
    /// `(version, change)`, oldest first.
    pub history: &'static [(&'static str, &'static str)],
    /// `(deprecated_since, replaced_by)`.
    pub deprecated: Option<(&'static str, &'static str)>,
    /// A container's subcommands that the server implements
    /// (`server/src/admin.rs`), in COMMAND DOCS order.
    pub subcommands: &'static [Doc],
}

impl Doc {
    /// A command's doc before its row fills it in: no since-version, which
    /// the tests refuse.
    pub const fn empty(name: &'static str) -> Doc {
        Doc {
            name,
            summary: None,
            since: "",
            complexity: "",
            syntax: "",
            notes: &[],
            history: &[],
            deprecated: None,
            subcommands: &[],
        }
    }

    /// A command's doc (the summary is the row's).
    pub const fn new(
        name: &'static str,
        since: &'static str,
        complexity: &'static str,
        syntax: &'static str,
    ) -> Doc {
        Doc {
            since,
            complexity,
            syntax,
            ..Doc::empty(name)
        }
    }

    /// A subcommand's doc: `name` is `container|sub`.
    pub const fn sub(
        name: &'static str,
        summary: &'static str,
        since: &'static str,
        complexity: &'static str,
        syntax: &'static str,
    ) -> Doc {
        Doc {
            summary: Some(summary),
            ..Doc::new(name, since, complexity, syntax)
        }
    }

    pub const fn with_notes(self, notes: &'static [(&'static str, &'static str)]) -> Doc {
        Doc { notes, ..self }
    }

    pub const fn with_history(self, history: &'static [(&'static str, &'static str)]) -> Doc {
        Doc { history, ..self }
    }

    pub const fn with_deprecation(self, since: &'static str, replaced_by: &'static str) -> Doc {
        Doc {
            deprecated: Some((since, replaced_by)),
            ..self
        }
    }

    pub const fn with_subcommands(self, subcommands: &'static [Doc]) -> Doc {
        Doc {
            subcommands,
            ..self
        }
    }
}

/// The docs of `name` (lower-case; `container|sub` for a subcommand).
pub fn get(name: &str) -> Option<&'static Doc> {
    match name.split_once('|') {
        None => command::lookup(name.as_bytes()).map(|spec| &spec.doc),
        Some((base, _)) => subcommands(base).find(|d| d.name == name),
    }
}

/// The subcommand docs of a container (`client`), in its row's order.
pub fn subcommands(container: &str) -> impl Iterator<Item = &'static Doc> {
    command::lookup(container.as_bytes())
        .map_or(&[][..], |spec| spec.doc.subcommands)
        .iter()
}

/// An argument type, as COMMAND DOCS names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgType {
    Key,
    String,
    Integer,
    Double,
    Pattern,
    UnixTime,
    PureToken,
    Oneof,
    Block,
}

impl ArgType {
    pub const ALL: [ArgType; 9] = [
        ArgType::Key,
        ArgType::String,
        ArgType::Integer,
        ArgType::Double,
        ArgType::Pattern,
        ArgType::UnixTime,
        ArgType::PureToken,
        ArgType::Oneof,
        ArgType::Block,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ArgType::Key => "key",
            ArgType::String => "string",
            ArgType::Integer => "integer",
            ArgType::Double => "double",
            ArgType::Pattern => "pattern",
            ArgType::UnixTime => "unix-time",
            ArgType::PureToken => "pure-token",
            ArgType::Oneof => "oneof",
            ArgType::Block => "block",
        }
    }

    fn is_container(self) -> bool {
        matches!(self, ArgType::Oneof | ArgType::Block)
    }
}

/// The type of an argument written as `word`, from its name.
pub fn default_type(name: &str) -> ArgType {
    match name {
        "key" | "newkey" | "source" | "destination" => ArgType::Key,
        "pattern" => ArgType::Pattern,
        "seconds" | "milliseconds" | "timeout" | "count" | "cursor" | "index" | "index1"
        | "index2" | "increment" | "decrement" | "start" | "end" | "offset" | "client-id"
        | "protover" | "numkeys" => ArgType::Integer,
        n if n.starts_with("unix-time") => ArgType::UnixTime,
        _ => ArgType::String,
    }
}

/// One argument of Redis's argument tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arg {
    pub name: String,
    pub kind: ArgType,
    /// Key arguments: the index of their key spec (in order of appearance).
    pub key_spec_index: Option<usize>,
    pub token: Option<String>,
    pub since: Option<String>,
    pub deprecated_since: Option<String>,
    pub optional: bool,
    pub multiple: bool,
    pub multiple_token: bool,
    /// Oneof and block only.
    pub args: Vec<Arg>,
}

impl Arg {
    fn new(name: String, kind: ArgType) -> Arg {
        Arg {
            name,
            kind,
            key_spec_index: None,
            token: None,
            since: None,
            deprecated_since: None,
            optional: false,
            multiple: false,
            multiple_token: false,
            args: Vec::new(),
        }
    }

    /// A oneof or block; named after its members, joined by `_`, as Redis
    /// names most of them (`nosave_save`, `key_value`).
    fn container(kind: ArgType, args: Vec<Arg>) -> Arg {
        let name = args
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>()
            .join("_");
        Arg {
            args,
            ..Arg::new(name, kind)
        }
    }

    /// One argument from a sequence: itself, or a block of several.
    fn from_seq(mut seq: Vec<Arg>) -> Arg {
        if seq.len() == 1 {
            if let Some(a) = seq.pop() {
                return a;
            }
        }
        Arg::container(ArgType::Block, seq)
    }

    /// redis-cli 7.0's `tokenPart`: the token, and a space unless the
    /// argument is the token alone.
    fn token_part(&self) -> String {
        match &self.token {
            None => String::new(),
            Some(t) => {
                let mut s = if t.is_empty() {
                    "\"\"".to_string()
                } else {
                    t.clone()
                };
                if self.kind != ArgType::PureToken {
                    s.push(' ');
                }
                s
            }
        }
    }

    /// redis-cli 7.0's `repeatPart`: the name, or the members.
    fn repeat_part(&self) -> String {
        let join = |sep: &str| {
            self.args
                .iter()
                .map(Arg::hint)
                .collect::<Vec<_>>()
                .join(sep)
        };
        match self.kind {
            ArgType::Oneof => join("|"),
            ArgType::Block => join(" "),
            ArgType::PureToken => String::new(),
            _ if self.name.is_empty() => "\"\"".to_string(),
            _ => self.name.clone(),
        }
    }

    /// The argument as a hint shows it without optional brackets and repeat:
    /// what [`Doc::notes`] select by.
    fn label(&self) -> String {
        self.token_part() + &self.repeat_part()
    }

    /// The argument as redis-cli 7.0 shows it in a hint (`cliAddArgument`).
    pub fn hint(&self) -> String {
        let tp = self.token_part();
        let rp = self.repeat_part();
        let mut s = String::new();
        if self.optional {
            s.push('[');
        }
        s.push_str(&tp);
        s.push_str(&rp);
        if self.multiple {
            s.push_str(" [");
            if self.multiple_token {
                s.push_str(&tp);
            }
            s.push_str(&rp);
            s.push_str(" ...]");
        }
        if self.optional {
            s.push(']');
        }
        s
    }

    /// The argument in COMMAND DOCS: a flat map, fields in Redis 7.0's order.
    pub fn reply(&self) -> Reply {
        let mut m = vec![
            bulk("name"),
            bulk(&self.name),
            bulk("type"),
            bulk(self.kind.as_str()),
        ];
        if let Some(i) = self.key_spec_index {
            m.push(bulk("key_spec_index"));
            m.push(Reply::Int(i as i64));
        }
        for (field, value) in [
            ("token", &self.token),
            ("since", &self.since),
            ("deprecated_since", &self.deprecated_since),
        ] {
            if let Some(v) = value {
                m.push(bulk(field));
                m.push(bulk(v));
            }
        }
        let flags: Vec<Reply> = [
            (self.optional, "optional"),
            (self.multiple, "multiple"),
            (self.multiple_token, "multiple_token"),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, f)| Reply::Simple((*f).to_string()))
        .collect();
        if !flags.is_empty() {
            // Status replies: redis-cli asserts that.
            m.push(bulk("flags"));
            m.push(Reply::Array(flags));
        }
        if self.kind.is_container() {
            m.push(bulk("arguments"));
            m.push(Reply::Array(self.args.iter().map(Arg::reply).collect()));
        }
        Reply::Array(m)
    }
}

/// The whole argument list as a redis-cli 7.0 hint.
pub fn hint(args: &[Arg]) -> String {
    args.iter().map(Arg::hint).collect::<Vec<_>>().join(" ")
}

fn is_token(word: &str) -> bool {
    !word.bytes().any(|b| b.is_ascii_lowercase())
}

/// Parses a syntax string (see the module docs) into arguments with default
/// names and types, no key spec indices and no notes applied.
pub fn parse(syntax: &str) -> Result<Vec<Arg>, String> {
    let mut p = Parser { s: syntax, pos: 0 };
    let mut alts = p.alts()?;
    if p.pos != syntax.len() {
        return Err(p.err("unexpected character"));
    }
    if alts.len() == 1 {
        return Ok(alts.pop().unwrap_or_default());
    }
    Ok(vec![p.oneof(alts)?])
}

struct Parser<'a> {
    s: &'a str,
    pos: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.pos).copied()
    }

    fn err(&self, what: &str) -> String {
        format!("{what} at byte {} of {:?}", self.pos, self.s)
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.err(&format!("expected '{}'", c as char)))
        }
    }

    /// `seq ('|' seq)*`.
    fn alts(&mut self) -> Result<Vec<Vec<Arg>>, String> {
        let mut alts = vec![self.seq()?];
        while self.peek() == Some(b'|') {
            self.pos += 1;
            alts.push(self.seq()?);
        }
        Ok(alts)
    }

    fn oneof(&self, alts: Vec<Vec<Arg>>) -> Result<Arg, String> {
        if alts.iter().any(Vec::is_empty) {
            return Err(self.err("empty alternative"));
        }
        let members = alts.into_iter().map(Arg::from_seq).collect();
        Ok(Arg::container(ArgType::Oneof, members))
    }

    /// The inside of `[...]` (one argument, or a block) or of `<...>`
    /// (`container`: always a block or a oneof).
    fn group(&mut self, container: bool) -> Result<Arg, String> {
        let mut alts = self.alts()?;
        if alts.len() > 1 {
            return self.oneof(alts);
        }
        let seq = alts.pop().unwrap_or_default();
        if seq.is_empty() {
            return Err(self.err("empty group"));
        }
        if container {
            Ok(Arg::container(ArgType::Block, seq))
        } else {
            Ok(Arg::from_seq(seq))
        }
    }

    fn word(&mut self) -> &str {
        let start = self.pos;
        while let Some(c) = self.peek() {
            if b" |[]<>".contains(&c) {
                break;
            }
            self.pos += 1;
        }
        &self.s[start..self.pos]
    }

    /// Index of the bracket that closes the one at `self.pos`.
    fn closing(&self, open: u8, close: u8) -> Result<usize, String> {
        let mut depth = 0usize;
        for (i, &c) in self.s.as_bytes().iter().enumerate().skip(self.pos) {
            if c == open {
                depth += 1;
            } else if c == close {
                depth -= 1;
                if depth == 0 {
                    return Ok(i);
                }
            }
        }
        Err(self.err("unbalanced bracket"))
    }

    /// A sequence of arguments, up to `|`, a closing bracket or the end.
    fn seq(&mut self) -> Result<Vec<Arg>, String> {
        let mut items: Vec<Arg> = Vec::new();
        loop {
            match self.peek() {
                None | Some(b'|' | b']' | b'>') => return Ok(items),
                Some(b' ') => self.pos += 1,
                Some(b'[') => {
                    let end = self.closing(b'[', b']')?;
                    let inner = &self.s[self.pos + 1..end];
                    if let Some(rep) = inner.strip_suffix(" ...") {
                        repeat(&mut items, rep).map_err(|e| self.err(&e))?;
                        self.pos = end + 1;
                    } else {
                        self.pos += 1;
                        let mut arg = self.group(false)?;
                        self.expect(b']')?;
                        if arg.optional {
                            return Err(self.err("optional twice"));
                        }
                        arg.optional = true;
                        items.push(arg);
                    }
                }
                Some(b'<') => {
                    self.pos += 1;
                    let arg = self.group(true)?;
                    self.expect(b'>')?;
                    items.push(arg);
                }
                Some(_) => {
                    let word = self.word().to_string();
                    if word.is_empty() {
                        return Err(self.err("unexpected character"));
                    }
                    if is_token(&word) {
                        let arg = self.tokened(word)?;
                        items.push(arg);
                    } else {
                        let kind = default_type(&word);
                        items.push(Arg::new(word, kind));
                    }
                }
            }
        }
    }

    /// After `TOKEN`: the words and `<...>` groups that take it.
    fn tokened(&mut self, token: String) -> Result<Arg, String> {
        let mut taken = Vec::new();
        loop {
            let start = self.pos;
            while self.peek() == Some(b' ') {
                self.pos += 1;
            }
            match self.peek() {
                Some(b'<') => {
                    self.pos += 1;
                    taken.push(self.group(true)?);
                    self.expect(b'>')?;
                }
                Some(c) if !b"|[]>".contains(&c) => {
                    let word = self.word().to_string();
                    if is_token(&word) {
                        if taken.is_empty() {
                            return Err(self.err(&format!(
                                "{token} {word}: a token after a token is ambiguous (write {token} <...>)"
                            )));
                        }
                        self.pos = start;
                        break;
                    }
                    let kind = default_type(&word);
                    taken.push(Arg::new(word, kind));
                }
                _ => {
                    self.pos = start;
                    break;
                }
            }
        }
        let mut arg = if taken.is_empty() {
            Arg::new(token.to_ascii_lowercase(), ArgType::PureToken)
        } else if taken.len() == 1 {
            taken.remove(0)
        } else {
            Arg::container(ArgType::Block, taken)
        };
        arg.token = Some(token);
        Ok(arg)
    }
}

/// `[rep ...]` after `items`: marks the argument (or the block of the last
/// few) it repeats as multiple.
fn repeat(items: &mut Vec<Arg>, rep: &str) -> Result<(), String> {
    let rep: String = rep.chars().filter(|c| !matches!(c, '<' | '>')).collect();
    let Some(last) = items.last_mut() else {
        return Err(format!("[{rep} ...] repeats nothing"));
    };
    if last.multiple {
        return Err(format!("[{rep} ...] repeats a multiple argument"));
    }
    if rep == last.repeat_part() {
        last.multiple = true;
        return Ok(());
    }
    if last.token.is_some() && rep == last.label() {
        last.multiple = true;
        last.multiple_token = true;
        return Ok(());
    }
    for k in 2..=items.len() {
        let tail = items.len() - k;
        if hint(&items[tail..]) == rep {
            let mut block = Arg::container(ArgType::Block, items.split_off(tail));
            block.multiple = true;
            items.push(block);
            return Ok(());
        }
    }
    Err(format!(
        "[{rep} ...] repeats none of the arguments before it"
    ))
}

/// Paths (indices from the top) of the arguments a note selects.
fn select(args: &[Arg], selector: &str, path: &mut Vec<usize>, out: &mut Vec<Vec<usize>>) {
    for (i, a) in args.iter().enumerate() {
        path.push(i);
        let label = a.label();
        let hit = match selector.strip_suffix("...") {
            Some(prefix) if prefix.ends_with('|') => label.starts_with(prefix),
            _ => label == selector,
        };
        if hit {
            out.push(path.clone());
        }
        select(&a.args, selector, path, out);
        path.pop();
    }
}

fn at<'a>(args: &'a mut [Arg], path: &[usize]) -> Option<&'a mut Arg> {
    let (&first, rest) = path.split_first()?;
    let arg = args.get_mut(first)?;
    if rest.is_empty() {
        Some(arg)
    } else {
        at(&mut arg.args, rest)
    }
}

fn apply_note(args: &mut [Arg], selector: &str, attrs: &str) -> Result<(), String> {
    let mut paths = Vec::new();
    select(args, selector, &mut Vec::new(), &mut paths);
    let [path] = paths.as_slice() else {
        return Err(format!(
            "note {selector:?} selects {} arguments, not one",
            paths.len()
        ));
    };
    let Some(arg) = at(args, path) else {
        return Err(format!("note {selector:?}: bad path"));
    };
    for attr in attrs.split_whitespace() {
        let Some((key, value)) = attr.split_once('=') else {
            return Err(format!("note {selector:?}: {attr:?} is not key=value"));
        };
        match key {
            "name" => arg.name = value.to_string(),
            "since" => arg.since = Some(value.to_string()),
            "deprecated" => arg.deprecated_since = Some(value.to_string()),
            "type" => {
                let kind = ArgType::ALL.into_iter().find(|t| t.as_str() == value);
                match kind {
                    Some(k)
                        if !k.is_container()
                            && k != ArgType::PureToken
                            && !arg.kind.is_container()
                            && arg.kind != ArgType::PureToken =>
                    {
                        arg.kind = k;
                    }
                    _ => return Err(format!("note {selector:?}: cannot make it {value:?}")),
                }
            }
            _ => return Err(format!("note {selector:?}: unknown attribute {key:?}")),
        }
    }
    Ok(())
}

fn number_keys(args: &mut [Arg], next: &mut usize) {
    for a in args {
        if a.kind == ArgType::Key {
            a.key_spec_index = Some(*next);
            *next += 1;
        }
        number_keys(&mut a.args, next);
    }
}

/// The argument tree of a command: its syntax parsed, its notes applied,
/// key spec indices numbered in order of appearance.
pub fn arguments(doc: &Doc) -> Result<Vec<Arg>, String> {
    let mut args = parse(doc.syntax).map_err(|e| format!("{}: {e}", doc.name))?;
    for (selector, attrs) in doc.notes {
        apply_note(&mut args, selector, attrs).map_err(|e| format!("{}: {e}", doc.name))?;
    }
    number_keys(&mut args, &mut 0);
    Ok(args)
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(s.as_bytes().to_vec())
}

/// A COMMAND DOCS entry as Redis 7.0 writes it in RESP2: a flat map of
/// summary, since, group, complexity, then doc_flags, deprecated_since,
/// replaced_by, history, arguments and subcommands where there are any.
fn doc_reply(doc: &Doc, summary: &str, group: &str) -> Reply {
    let mut m = vec![
        bulk("summary"),
        bulk(doc.summary.unwrap_or(summary)),
        bulk("since"),
        bulk(doc.since),
        bulk("group"),
        bulk(group),
        bulk("complexity"),
        bulk(doc.complexity),
    ];
    if let Some((since, replaced_by)) = doc.deprecated {
        m.push(bulk("doc_flags"));
        m.push(Reply::Array(vec![Reply::Simple("deprecated".to_string())]));
        m.push(bulk("deprecated_since"));
        m.push(bulk(since));
        m.push(bulk("replaced_by"));
        m.push(bulk(replaced_by));
    }
    if !doc.history.is_empty() {
        m.push(bulk("history"));
        m.push(Reply::Array(
            doc.history
                .iter()
                .map(|(v, what)| Reply::Array(vec![bulk(v), bulk(what)]))
                .collect(),
        ));
    }
    // The table is checked by the tests; a broken entry loses its arguments
    // rather than the server its shard.
    let args = arguments(doc).unwrap_or_default();
    if !args.is_empty() {
        m.push(bulk("arguments"));
        m.push(Reply::Array(args.iter().map(Arg::reply).collect()));
    }
    let mut subs = Vec::new();
    for sub in doc.subcommands {
        subs.push(bulk(sub.name));
        subs.push(doc_reply(sub, summary, group));
    }
    if !subs.is_empty() {
        m.push(bulk("subcommands"));
        m.push(Reply::Array(subs));
    }
    Reply::Array(m)
}

/// The COMMAND DOCS entry of a command of the table.
pub fn command_docs(spec: &CommandSpec) -> Reply {
    doc_reply(&spec.doc, spec.summary, spec.group)
}

/// COMMAND DOCS for a name as a client wrote it, any case: a command
/// (`get`) or a subcommand (`client|kill`). The name Redis prints (the
/// lower-case full name) and the entry; `None` if there is no such command.
pub fn lookup(name: &[u8]) -> Option<(&'static str, Reply)> {
    match name.iter().position(|&b| b == b'|') {
        None => command::lookup(name).map(|spec| (spec.name, command_docs(spec))),
        Some(bar) => {
            let spec = command::lookup(&name[..bar])?;
            let full = std::str::from_utf8(name).ok()?.to_ascii_lowercase();
            let doc = get(&full)?;
            Some((doc.name, doc_reply(doc, spec.summary, spec.group)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    /// One line per argument, members indented: `name:type key=0 token=EX
    /// since=.. deprecated=.. optional multiple multiple_token`.
    fn dump(args: &[Arg]) -> String {
        fn walk(args: &[Arg], depth: usize, out: &mut String) {
            for a in args {
                out.push_str(&"  ".repeat(depth));
                out.push_str(&format!("{}:{}", a.name, a.kind.as_str()));
                if let Some(i) = a.key_spec_index {
                    out.push_str(&format!(" key={i}"));
                }
                for (k, v) in [
                    ("token", &a.token),
                    ("since", &a.since),
                    ("deprecated", &a.deprecated_since),
                ] {
                    if let Some(v) = v {
                        out.push_str(&format!(" {k}={v}"));
                    }
                }
                for (on, f) in [
                    (a.optional, "optional"),
                    (a.multiple, "multiple"),
                    (a.multiple_token, "multiple_token"),
                ] {
                    if on {
                        out.push(' ');
                        out.push_str(f);
                    }
                }
                out.push('\n');
                walk(&a.args, depth + 1, out);
            }
        }
        let mut out = String::new();
        walk(args, 0, &mut out);
        out
    }

    fn tree(name: &str) -> String {
        let doc = get(name).unwrap_or_else(|| panic!("no docs for {name}"));
        dump(&arguments(doc).unwrap_or_else(|e| panic!("{e}")))
    }

    fn resp(r: &Reply) -> String {
        let mut out = Vec::new();
        r.write_to(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    #[test]
    fn every_command_has_docs_and_every_doc_a_command() {
        let mut seen = HashSet::new();
        let mut all = Vec::new();
        for spec in command::all_commands() {
            let doc = &spec.doc;
            assert_eq!(doc.name, spec.name, "the row's doc is named after it");
            assert!(!doc.since.is_empty(), "no docs for {}", spec.name);
            assert!(
                doc.summary.is_none(),
                "{}: the row has the summary",
                doc.name
            );
            assert!(doc.subcommands.is_empty() || doc.syntax.is_empty());
            all.push(doc);
            for sub in doc.subcommands {
                let (base, name) = sub.name.split_once('|').unwrap_or_default();
                assert_eq!(base, spec.name, "{} in the row of {}", sub.name, spec.name);
                assert!(!name.is_empty() && !name.contains('|'), "{}", sub.name);
                assert!(sub.summary.is_some(), "{}: no summary", sub.name);
                assert!(sub.subcommands.is_empty(), "{}", sub.name);
                assert!(get(sub.name).is_some_and(|d| std::ptr::eq(d, sub)));
                all.push(sub);
            }
        }
        for doc in all {
            assert!(seen.insert(doc.name), "docs for {} twice", doc.name);
            assert_eq!(doc.name, doc.name.to_ascii_lowercase());
            let args = arguments(doc).unwrap_or_else(|e| panic!("{e}"));
            // The syntax is the hint redis-cli prints, but for the groups.
            let shown: String = doc
                .syntax
                .chars()
                .filter(|c| !matches!(c, '<' | '>'))
                .collect();
            assert_eq!(hint(&args), shown, "{}", doc.name);
        }
    }

    #[test]
    fn plain_arguments_and_default_types() {
        let args = parse("key newkey seconds unix-time-seconds pattern value [message]").unwrap();
        let kinds: Vec<&str> = args.iter().map(|a| a.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "key",
                "key",
                "integer",
                "unix-time",
                "pattern",
                "string",
                "string"
            ]
        );
        assert!(args[6].optional && !args[5].optional);
        assert_eq!(parse("").unwrap(), vec![]);
        assert_eq!(tree("rename"), "key:key key=0\nnewkey:key key=1\n");
        assert_eq!(tree("incrbyfloat"), "key:key key=0\nincrement:double\n");
    }

    #[test]
    fn tokens_oneofs_and_blocks() {
        assert_eq!(
            tree("set"),
            "key:key key=0\n\
             value:string\n\
             condition:oneof since=2.6.12 optional\n\
             \x20 nx:pure-token token=NX\n\
             \x20 xx:pure-token token=XX\n\
             get:pure-token token=GET since=6.2.0 optional\n\
             expiration:oneof optional\n\
             \x20 seconds:integer token=EX since=2.6.12\n\
             \x20 milliseconds:integer token=PX since=2.6.12\n\
             \x20 unix-time-seconds:unix-time token=EXAT since=6.2.0\n\
             \x20 unix-time-milliseconds:unix-time token=PXAT since=6.2.0\n\
             \x20 keepttl:pure-token token=KEEPTTL since=6.0.0\n"
        );
        // Several words after a token: a block with the token.
        assert_eq!(
            tree("hello"),
            "arguments:block optional\n\
             \x20 protover:integer\n\
             \x20 username_password:block token=AUTH optional\n\
             \x20   username:string\n\
             \x20   password:string\n\
             \x20 clientname:string token=SETNAME optional\n"
        );
        assert_eq!(
            dump(&parse("[FILTERBY <MODULE module-name|PATTERN pattern>]").unwrap()),
            "module-name_pattern:oneof token=FILTERBY optional\n\
             \x20 module-name:string token=MODULE\n\
             \x20 pattern:pattern token=PATTERN\n"
        );
    }

    #[test]
    fn repeats() {
        assert_eq!(tree("del"), "key:key key=0 multiple\n");
        assert_eq!(
            tree("mset"),
            "key_value:block multiple\n  key:key key=0\n  value:string\n"
        );
        assert_eq!(
            dump(&parse("[PREFIX prefix [PREFIX prefix ...]]").unwrap()),
            "prefix:string token=PREFIX optional multiple multiple_token\n"
        );
        assert_eq!(
            dump(&parse("[ID client-id [client-id ...]]").unwrap()),
            "client-id:integer token=ID optional multiple\n"
        );
        // A group makes a block even of one argument.
        assert_eq!(
            tree("client|list"),
            "normal_master_replica_pubsub:oneof token=TYPE since=5.0.0 optional\n\
             \x20 normal:pure-token token=NORMAL\n\
             \x20 master:pure-token token=MASTER\n\
             \x20 replica:pure-token token=REPLICA\n\
             \x20 pubsub:pure-token token=PUBSUB\n\
             id:block token=ID since=6.2.0 optional\n\
             \x20 client-id:integer multiple\n"
        );
        assert_eq!(
            tree("config|get"),
            "parameter:block multiple\n  parameter:string\n"
        );
        assert_eq!(
            tree("client|kill"),
            "filter:oneof\n\
             \x20 ip:port:string deprecated=2.8.12\n\
             \x20 new-format:oneof multiple\n\
             \x20   client-id:integer token=ID since=2.8.12 optional\n\
             \x20   normal_master_slave_pubsub:oneof token=TYPE since=2.8.12 optional\n\
             \x20     normal:pure-token token=NORMAL\n\
             \x20     master:pure-token token=MASTER since=3.2.0\n\
             \x20     slave:pure-token token=SLAVE\n\
             \x20     replica:pure-token token=REPLICA since=5.0.0\n\
             \x20     pubsub:pure-token token=PUBSUB\n\
             \x20   username:string token=USER optional\n\
             \x20   ip:port:string token=ADDR optional\n\
             \x20   ip:port:string token=LADDR since=6.2.0 optional\n\
             \x20   yes/no:string token=SKIPME optional\n"
        );
    }

    #[test]
    fn bad_syntax_is_refused() {
        for bad in [
            "[key",
            "key]",
            "<key",
            "TYPE NORMAL|MASTER",
            "key [value ...]",
            "[key ...]",
            "key [key ...] [key ...]",
            "a||b",
            "[]",
            "[[key]]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} parsed");
        }
        let with_notes = |syntax, notes| Doc {
            notes,
            ..Doc::new("x", "1.0.0", "O(1)", syntax)
        };
        for (syntax, notes) in [
            ("key", &[("value", "since=1.0.0")][..]),
            ("key [key ...] key", &[("key", "since=1.0.0")][..]),
            ("key", &[("key", "colour=blue")][..]),
            ("key", &[("key", "type=oneof")][..]),
            ("[NX|XX]", &[("NX|XX", "type=integer")][..]),
            ("key", &[("key", "since")][..]),
        ] {
            assert!(
                arguments(&with_notes(syntax, notes)).is_err(),
                "{syntax:?} {notes:?}"
            );
        }
    }

    #[test]
    fn reply_is_redis_shape() {
        // The arguments of SET, byte for byte as redis-server 7.0.15 sends them.
        let set_args = concat!(
            "*5\r\n*6\r\n$4\r\nname\r\n$3\r\nkey\r\n$4\r\ntype\r\n$3\r\nkey\r\n$14\r\n",
            "key_spec_index\r\n:0\r\n*4\r\n$4\r\nname\r\n$5\r\nvalue\r\n$4\r\ntype\r\n$6\r\n",
            "string\r\n*10\r\n$4\r\nname\r\n$9\r\ncondition\r\n$4\r\ntype\r\n$5\r\noneof\r\n",
            "$5\r\nsince\r\n$6\r\n2.6.12\r\n$5\r\nflags\r\n*1\r\n+optional\r\n$9\r\n",
            "arguments\r\n*2\r\n*6\r\n$4\r\nname\r\n$2\r\nnx\r\n$4\r\ntype\r\n$10\r\n",
            "pure-token\r\n$5\r\ntoken\r\n$2\r\nNX\r\n*6\r\n$4\r\nname\r\n$2\r\nxx\r\n$4\r\n",
            "type\r\n$10\r\npure-token\r\n$5\r\ntoken\r\n$2\r\nXX\r\n*10\r\n$4\r\nname\r\n",
            "$3\r\nget\r\n$4\r\ntype\r\n$10\r\npure-token\r\n$5\r\ntoken\r\n$3\r\nGET\r\n",
            "$5\r\nsince\r\n$5\r\n6.2.0\r\n$5\r\nflags\r\n*1\r\n+optional\r\n*8\r\n$4\r\n",
            "name\r\n$10\r\nexpiration\r\n$4\r\ntype\r\n$5\r\noneof\r\n$5\r\nflags\r\n*1\r\n",
            "+optional\r\n$9\r\narguments\r\n*5\r\n*8\r\n$4\r\nname\r\n$7\r\nseconds\r\n",
            "$4\r\ntype\r\n$7\r\ninteger\r\n$5\r\ntoken\r\n$2\r\nEX\r\n$5\r\nsince\r\n$6\r\n",
            "2.6.12\r\n*8\r\n$4\r\nname\r\n$12\r\nmilliseconds\r\n$4\r\ntype\r\n$7\r\n",
            "integer\r\n$5\r\ntoken\r\n$2\r\nPX\r\n$5\r\nsince\r\n$6\r\n2.6.12\r\n*8\r\n",
            "$4\r\nname\r\n$17\r\nunix-time-seconds\r\n$4\r\ntype\r\n$9\r\nunix-time\r\n",
            "$5\r\ntoken\r\n$4\r\nEXAT\r\n$5\r\nsince\r\n$5\r\n6.2.0\r\n*8\r\n$4\r\nname\r\n",
            "$22\r\nunix-time-milliseconds\r\n$4\r\ntype\r\n$9\r\nunix-time\r\n$5\r\n",
            "token\r\n$4\r\nPXAT\r\n$5\r\nsince\r\n$5\r\n6.2.0\r\n*8\r\n$4\r\nname\r\n$7\r\n",
            "keepttl\r\n$4\r\ntype\r\n$10\r\npure-token\r\n$5\r\ntoken\r\n$7\r\nKEEPTTL\r\n",
            "$5\r\nsince\r\n$5\r\n6.0.0\r\n",
        );
        let (name, set) = lookup(b"SeT").unwrap();
        assert_eq!(name, "set");
        let set = resp(&set);
        assert!(set.starts_with("*12\r\n$7\r\nsummary\r\n"), "{set}");
        assert!(
            set.contains("$5\r\nsince\r\n$5\r\n1.0.0\r\n$5\r\ngroup\r\n$6\r\nstring\r\n$10\r\ncomplexity\r\n$4\r\nO(1)\r\n$7\r\nhistory\r\n*4\r\n*2\r\n$6\r\n2.6.12\r\n"),
            "{set}"
        );
        assert!(
            set.ends_with(&format!("$9\r\narguments\r\n{set_args}")),
            "{set}"
        );

        let (_, getset) = lookup(b"getset").unwrap();
        assert!(resp(&getset).contains(
            "$9\r\ndoc_flags\r\n*1\r\n+deprecated\r\n$16\r\ndeprecated_since\r\n$5\r\n6.2.0\r\n\
             $11\r\nreplaced_by\r\n$30\r\n`SET` with the `!GET` argument\r\n$9\r\narguments\r\n"
        ));
        // No arguments: no "arguments" field.
        let (_, quit) = lookup(b"quit").unwrap();
        assert!(resp(&quit).starts_with("*8\r\n"));

        // Containers list their subcommands; a subcommand can be asked for.
        let (_, client) = lookup(b"client").unwrap();
        let client = resp(&client);
        assert!(client.starts_with("*10\r\n"), "{client}");
        assert!(client.contains("$11\r\nsubcommands\r\n*14\r\n$9\r\nclient|id\r\n*8\r\n"));
        let (name, kill) = lookup(b"CLIENT|Kill").unwrap();
        assert_eq!(name, "client|kill");
        assert!(resp(&kill)
            .starts_with("*12\r\n$7\r\nsummary\r\n$31\r\nKill the connection of a client\r\n"));
        assert!(lookup(b"client|nope").is_none());
        assert!(lookup(b"get|x").is_none());
        assert!(lookup(b"nope").is_none());
    }
}
