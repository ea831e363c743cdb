//! The reconciler's modules import one another in one direction only: the
//! child machinery at the bottom, the controller on top. A cycle would make
//! a module impossible to read or test apart from the rest.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// Module path (`children::set`) of each file under `dir`, with its source.
fn modules(dir: &Path, prefix: &str, out: &mut BTreeMap<String, String>) {
    for entry in fs::read_dir(dir).expect("a readable directory") {
        let path = entry.expect("an entry").path();
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default()
            .to_string();
        let name = if prefix.is_empty() {
            stem.clone()
        } else {
            format!("{prefix}::{stem}")
        };
        if path.is_dir() {
            modules(&path, &name, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let module = if stem == "mod" {
                prefix.to_string()
            } else {
                name
            };
            out.insert(module, fs::read_to_string(&path).expect("a readable file"));
        }
    }
}

/// Which of `known` a `use` line names, resolved from `module`.
fn target(module: &str, is_mod_rs: bool, line: &str, known: &BTreeSet<String>) -> Option<String> {
    let rest = line
        .trim_start()
        .strip_prefix("pub ")
        .unwrap_or(line.trim_start());
    let rest = rest.strip_prefix("use ")?;
    let (base, path) = if let Some(path) = rest.strip_prefix("crate::reconcile::") {
        (String::new(), path)
    } else {
        let mut path = rest.strip_prefix("super::")?;
        let parent = if is_mod_rs {
            module
        } else {
            module.rsplit_once("::").map_or("", |p| p.0)
        };
        let mut base = if is_mod_rs {
            parent.rsplit_once("::").map_or("", |p| p.0)
        } else {
            parent
        };
        // `super::super::...`: one module up for each further `super`.
        while let Some(rest) = path.strip_prefix("super::") {
            path = rest;
            base = base.rsplit_once("::").map_or("", |p| p.0);
        }
        (base.to_string(), path)
    };
    // Identifiers up to the first that is not one (`{`, `*`, ` as`, `;`).
    let mut segments = Vec::new();
    for segment in path.split("::") {
        let end = segment
            .find(|c: char| !c.is_alphanumeric() && c != '_')
            .unwrap_or(segment.len());
        if end == 0 {
            break;
        }
        segments.push(&segment[..end]);
        if end < segment.len() {
            break;
        }
    }
    // The deepest module the path names.
    let mut found = None;
    let mut current = base;
    for segment in segments {
        current = if current.is_empty() {
            segment.to_string()
        } else {
            format!("{current}::{segment}")
        };
        if known.contains(&current) {
            found = Some(current.clone());
        }
    }
    found.filter(|t| t != module && !module.starts_with(&format!("{t}::")))
}

#[test]
fn the_reconciler_has_no_import_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/reconcile");
    let mut sources = BTreeMap::new();
    modules(&root, "", &mut sources);
    let known: BTreeSet<String> = sources.keys().cloned().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, source) in &sources {
        let is_mod_rs =
            module.is_empty() || root.join(module.replace("::", "/")).join("mod.rs").exists();
        // Tests may reach anywhere.
        let code = source.split("#[cfg(test)]").next().unwrap_or_default();
        for line in code.lines() {
            if let Some(t) = target(module, is_mod_rs, line, &known) {
                edges.entry(module.clone()).or_default().insert(t);
            }
        }
    }
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if let Some(i) = path.iter().position(|p| p == n) {
            panic!("import cycle: {}", path[i..].join(" -> ") + " -> " + n);
        }
        if done.contains(n) {
            return;
        }
        path.push(n.to_string());
        for next in edges.get(n).into_iter().flatten() {
            visit(next, edges, path, done);
        }
        path.pop();
        done.insert(n.to_string());
    }
    let mut done = BTreeSet::new();
    for module in edges.keys() {
        visit(module, &edges, &mut Vec::new(), &mut done);
    }
    for (from, to) in [
        ("children::write", "children::stamp"),
        ("children::kinds", "restored"),
        ("phases::apply", "children"),
        ("phases::observe", "context"),
    ] {
        assert!(
            edges.get(from).is_some_and(|e| e.contains(to)),
            "no edge {from} -> {to} among {edges:?}"
        );
    }
}
