//! The layering rule, checked on the source: a module uses only modules of its own layer or
//! below, and no two modules use each other, directly or through others (`docs/architecture.md`,
//! "Layers"). Reads `crate::` and `super::` paths in product code (test modules and comments
//! aside); a failure names the file and what it uses.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The deployer's layers, bottom first: (layer, its top-level modules).
const LAYERS: &[(&str, &[&str])] = &[
    ("bottom", &["ids", "error", "clock", "events", "dashboard"]),
    ("inputs and infrastructure", &["config", "package", "pacer", "aws", "ui", "grant", "cfn", "watch", "local"]),
    ("context", &["ctx", "wait"]),
    ("resources", &["resources", "lock"]),
    ("engine", &["graph", "stack", "iam_policy"]),
    ("session", &["session", "smoke_check"]),
    ("commands", &["cli", "commands", "serve"]),
    ("entry", &["main", "layers"]),
];

fn layer_of(module: &str) -> Option<usize> {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS.iter().position(|(_, modules)| modules.contains(&top))
}

/// Every `.rs` file under `root`, as (module path, product source).
fn modules(root: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("source dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(root, &mut files);
    files
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(root).expect("under root").with_extension("");
            let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|p| p == "mod") {
                parts.pop();
            }
            let text = std::fs::read_to_string(&path).expect("readable source");
            (parts.join("::"), product_code(&text))
        })
        .collect()
}

/// The text without its test modules and comments.
fn product_code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.trim() == "#[cfg(test)]" && lines.peek().is_some_and(|next| next.trim_start().starts_with("mod ")) {
            break;
        }
        let code = match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        };
        out.push_str(code);
        out.push('\n');
    }
    out
}

/// The paths a source uses, each as its segments, `super` resolved against `module`.
fn used_paths(module: &str, code: &str) -> Vec<Vec<String>> {
    let parent: Vec<String> = {
        let mut p: Vec<String> = module.split("::").map(str::to_string).collect();
        p.pop();
        p
    };
    let mut found = Vec::new();
    for (prefix, base) in [("crate::", Vec::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(i) = rest.find(prefix) {
            let before = rest[..i].chars().last();
            rest = &rest[i + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            paths(rest, base.clone(), &mut found);
        }
    }
    found
}

/// Reads `a::b::{c, d::e}` at the start of `text` into paths under `base`.
fn paths(text: &str, base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let mut path = base;
    let mut rest = text;
    loop {
        let ident: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if ident.is_empty() {
            if let Some(group) = rest.strip_prefix('{') {
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            paths(group[start..i].trim(), path.clone(), out);
                            return;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            paths(group[start..i].trim(), path.clone(), out);
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
            }
            break;
        }
        rest = &rest[ident.len()..];
        path.push(ident);
        match rest.strip_prefix("::") {
            Some(r) => rest = r,
            None => break,
        }
    }
    if !path.is_empty() {
        out.push(path);
    }
}

/// Who uses whom: module → the other modules it uses (the longest known prefix of each path).
fn uses(root: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules(root);
    let known: BTreeSet<&String> = modules.keys().collect();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, code) in &modules {
        let targets = edges.entry(module.clone()).or_default();
        for path in used_paths(module, code) {
            let target = (1..=path.len()).rev().map(|n| path[..n].join("::")).find(|p| known.contains(p));
            if let Some(target) = target.filter(|t| t != module && t != "main" && t != "lib") {
                targets.insert(target);
            }
        }
    }
    edges
}

/// A cycle among the modules, if any: its modules in order.
fn cycle(edges: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        done: &mut BTreeSet<String>,
        stack: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = stack.iter().position(|n| n == node) {
            let mut found = stack[at..].to_vec();
            found.push(node.to_string());
            return Some(found);
        }
        if done.contains(node) {
            return None;
        }
        stack.push(node.to_string());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(found) = visit(next, edges, done, stack) {
                return Some(found);
            }
        }
        stack.pop();
        done.insert(node.to_string());
        None
    }
    let mut done = BTreeSet::new();
    edges.keys().find_map(|n| visit(n, edges, &mut done, &mut Vec::new()))
}

fn crate_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name).join("src")
}

#[test]
fn every_module_uses_only_its_layer_and_below() {
    let edges = uses(&crate_dir("deployer"));
    let mut wrong = Vec::new();
    for (module, targets) in &edges {
        let Some(from) = layer_of(module) else {
            wrong.push(format!("{module} is in no layer: add it to LAYERS (and docs/architecture.md)"));
            continue;
        };
        for target in targets {
            match layer_of(target) {
                Some(to) if to > from => wrong
                    .push(format!("{module} ({}) uses {target} ({}), a layer above it", LAYERS[from].0, LAYERS[to].0)),
                _ => {}
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn no_two_modules_use_each_other() {
    for name in ["deployer", "handler"] {
        let edges = uses(&crate_dir(name));
        assert!(edges.len() > 5, "{name}: the scan found its modules");
        if let Some(found) = cycle(&edges) {
            panic!("{name}: an import cycle: {}", found.join(" -> "));
        }
    }
}

#[test]
fn the_scan_reads_paths_groups_and_super() {
    let code = "use crate::{ids::Name, events::{Event, Phase}};\nlet x = crate::aws::partition(r);\nuse super::ec2::pick;\n// crate::ui is a comment\n";
    let found: Vec<String> =
        used_paths("resources::subnet", &product_code(code)).iter().map(|p| p.join("::")).collect();
    assert_eq!(
        found,
        ["ids::Name", "events::Event", "events::Phase", "aws::partition", "resources::ec2::pick"],
        "{found:?}"
    );
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    edges.entry("a".into()).or_default().insert("b".into());
    edges.entry("b".into()).or_default().insert("c".into());
    assert_eq!(cycle(&edges), None);
    edges.entry("c".into()).or_default().insert("a".into());
    assert_eq!(cycle(&edges).unwrap(), ["a", "b", "c", "a"]);
}
