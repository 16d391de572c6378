//! The server's layers import downwards only: this test reads the crate's
//! own sources and fails on any `crate::<module>` path (in a `use` or
//! inline, outside comments and test modules) from a file of a lower layer
//! to a module of a higher one. The layers, lowest first:
//!
//! 0. `config.rs` and `config/` (the ground: imports no module of the crate)
//! 1. `platform/`  2. `workers/`  3. `persist/`  4. `serve/`
//! 5. `main.rs`, `tools.rs` (the binary's entry points)
//!
//! [`KNOWN`] lists the upward imports that remain, each with its reason
//! (docs/ARCHITECTURE.md, "The server in layers"); one that is no longer
//! taken must leave the list, so the list stays true too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LAYERS: [&str; 4] = ["platform", "workers", "persist", "serve"];

/// Upward imports not yet removed: (file, module it imports, why). None
/// is left; an entry added here must say why it cannot be inverted.
const KNOWN: &[(&str, &str, &str)] = &[];

/// Layer of a file, by its path under `src/`.
fn layer_of_file(rel: &str) -> Option<usize> {
    match rel {
        "config.rs" => return Some(0),
        "main.rs" | "tools.rs" => return Some(5),
        "layering.rs" => return None,
        _ if rel.starts_with("config/") => return Some(0),
        _ => {}
    }
    let folder = rel.split('/').next()?;
    LAYERS.iter().position(|l| *l == folder).map(|i| i + 1)
}

/// Every `.rs` file under `dir`, as paths relative to `root`.
fn sources(root: &Path, dir: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("can't list {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(root, &p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            let rel = p.strip_prefix(root).unwrap_or(&p);
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

/// The crate modules named by `crate::` paths in `code`: `crate::log`,
/// `crate::persist::snapshot`, `crate::{admin, log}`.
fn modules_named(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    // The module a path names: its first segment, or its second when the
    // first is a layer folder.
    let module = |path: &str| -> String {
        let first = ident(path);
        match path[first.len()..].strip_prefix("::") {
            Some(rest) if LAYERS.contains(&first.as_str()) => ident(rest),
            _ => first,
        }
    };
    let mut out = BTreeSet::new();
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = group.split('}').next().unwrap_or("");
            for item in group.split(',') {
                out.insert(module(item.trim()));
            }
        } else {
            out.insert(module(rest));
        }
    }
    out.remove("");
    out
}

/// The code of a file without comments and without its test modules.
fn code_of(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let t = line.trim_start();
        if t == "#[cfg(test)]"
            && lines
                .peek()
                .is_some_and(|l| l.trim_start().starts_with("mod "))
        {
            break;
        }
        if t.starts_with("//") {
            continue;
        }
        out.push_str(line.split(" // ").next().unwrap_or(line));
        out.push('\n');
    }
    out
}

#[test]
fn layers_import_downwards_only() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    // Module name -> layer, from where its file is.
    let mut layer_of_module = BTreeMap::new();
    for f in &files {
        let (Some(layer), Some(stem)) = (layer_of_file(f), f.strip_suffix(".rs")) else {
            continue;
        };
        let name = stem.rsplit('/').next().unwrap_or(stem);
        if name != "mod" {
            layer_of_module.insert(name.to_owned(), layer);
        }
    }
    assert!(layer_of_module.len() >= 20, "{layer_of_module:?}");
    let mut upward = Vec::new();
    let mut known_taken = BTreeSet::new();
    for f in &files {
        let Some(layer) = layer_of_file(f) else {
            continue;
        };
        let text = std::fs::read_to_string(root.join(f)).unwrap_or_default();
        for m in modules_named(&code_of(&text)) {
            let Some(&to) = layer_of_module.get(&m) else {
                continue;
            };
            if to <= layer {
                continue;
            }
            if KNOWN.iter().any(|k| k.0 == f && k.1 == m) {
                known_taken.insert((f.clone(), m));
            } else {
                upward.push(format!(
                    "{f} (layer {layer}) imports crate::{m} (layer {to})"
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports from a lower layer to a higher one (invert them, or see layering.rs):\n{}",
        upward.join("\n")
    );
    for (f, m, why) in KNOWN {
        assert!(
            known_taken.contains(&(f.to_string(), m.to_string())),
            "{f} no longer imports crate::{m} ({why}): remove it from KNOWN"
        );
    }
}

#[test]
fn modules_named_reads_every_form_of_path() {
    let code = "use crate::config::Config;\nuse crate::{admin, log, tx};\n\
                let x = crate::persist::snapshot::claim(); crate::sys::now();";
    let got: Vec<String> = modules_named(code).into_iter().collect();
    assert_eq!(got, ["admin", "config", "log", "snapshot", "sys", "tx"]);
    let text =
        "use crate::log;\n// crate::serve\n#[cfg(test)]\nmod tests {\n use crate::admin;\n}\n";
    assert_eq!(code_of(text), "use crate::log;\n");
}
