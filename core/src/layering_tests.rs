//! The layering, checked on every test run: no module (file) imports one that imports it back,
//! and each folder depends only on the folders below it (docs/architecture.md has the picture).
//! Edges come from `crate::…` and `super::…` paths in the source, doc comments included, so a
//! doc link cannot point upwards either.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Each folder and the folders it may use. Bottom to top.
#[rustfmt::skip]
const LAYERS: &[(&str, &[&str])] = &[
    ("config", &[]),
    ("observe", &[]),
    ("limits", &["config"]),
    ("extension", &["config", "observe", "limits"]),
    ("db", &["config", "observe", "extension"]),
    ("entities", &["config", "observe", "extension", "db"]),
    ("plan", &["config", "observe", "limits", "extension", "db", "entities"]),
    ("access", &["config", "observe", "extension", "db", "plan"]),
    ("sites", &["config", "observe", "limits", "extension", "db", "plan", "access"]),
    ("pipelines", &["config", "observe", "limits", "extension", "db", "plan", "access"]),
    ("runtime", &["config", "observe", "limits", "extension", "entities", "db", "plan", "access", "sites", "pipelines"]),
    ("admin", &["config", "observe", "limits", "extension", "entities", "db", "plan", "access", "sites", "pipelines", "runtime"]),
    ("http", &["config", "observe", "limits", "extension", "access", "sites", "pipelines", "runtime", "admin"]),
    ("host", &["config", "observe", "limits", "extension", "entities", "db", "plan", "access", "sites", "pipelines", "runtime", "admin", "http"]),
    ("testkit", &["config", "db", "extension", "pipelines", "host"]),
];

/// Files that are the crate root or test-only, outside the layering.
fn exempt(rel: &str) -> bool {
    rel == "lib.rs" || rel == "bench.rs" || rel.ends_with("_tests.rs")
}

fn files(dir: &Path, root: &Path, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            out.push((rel, text));
        }
    }
}

/// `a/b.rs` → `["a", "b"]`; `a/mod.rs` → `["a"]`.
fn module_of(rel: &str) -> Vec<String> {
    let mut parts: Vec<String> = rel.trim_end_matches(".rs").split('/').map(str::to_owned).collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The source without its inline `#[cfg(test)] mod tests { … }` (tests may reach anywhere).
fn without_tests(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    }
}

fn ident_path(rest: &str) -> Vec<String> {
    let mut path = Vec::new();
    let mut s = rest;
    loop {
        let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
        if end == 0 {
            break;
        }
        path.push(s[..end].to_owned());
        match s[end..].strip_prefix("::") {
            Some(next) => s = next,
            None => break,
        }
    }
    path
}

/// Every path the file names through `crate::` (including `use crate::{a, b::c}` groups) and
/// `super::`, made absolute.
fn referenced(module: &[String], is_mod_rs: bool, text: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for (i, _) in text.match_indices("crate::") {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$') {
            continue;
        }
        let rest = &text[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            out.extend(body.split(',').map(|item| ident_path(item.trim())).filter(|p| !p.is_empty()));
        } else {
            out.push(ident_path(rest));
        }
    }
    // `super::` in `a/b.rs` is `a`; in `a/b/mod.rs` it is `a` too (mod.rs is the folder).
    let parent: Vec<String> = if is_mod_rs || module.len() > 1 {
        module[..module.len().saturating_sub(1)].to_vec()
    } else {
        Vec::new()
    };
    for (i, _) in text.match_indices("super::") {
        if text[..i].ends_with("::") {
            continue;
        }
        let mut path = parent.clone();
        path.extend(ident_path(&text[i + "super::".len()..]));
        out.push(path);
    }
    out
}

struct Graph {
    edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
}

fn graph() -> Graph {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&root, &root, &mut all);
    let modules: BTreeSet<Vec<String>> = all.iter().map(|(rel, _)| module_of(rel)).collect();
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for (rel, text) in &all {
        if exempt(rel) {
            continue;
        }
        let module = module_of(rel);
        let targets = edges.entry(module.clone()).or_default();
        for path in referenced(&module, rel.ends_with("mod.rs"), without_tests(text)) {
            // The longest prefix that names a module file.
            let target = (1..=path.len()).rev().map(|n| path[..n].to_vec()).find(|p| modules.contains(p));
            if let Some(target) = target
                && target != module
            {
                targets.insert(target);
            }
        }
    }
    Graph { edges }
}

#[test]
fn no_module_imports_a_module_that_imports_it_back() {
    let g = graph();
    // Depth-first search with colours; a grey target is a cycle.
    fn visit(
        g: &Graph,
        m: &Vec<String>,
        colour: &mut BTreeMap<Vec<String>, u8>,
        stack: &mut Vec<Vec<String>>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(m.clone(), 1);
        stack.push(m.clone());
        for t in g.edges.get(m).into_iter().flatten() {
            match colour.get(t).copied().unwrap_or(0) {
                0 => visit(g, t, colour, stack, cycles),
                1 => {
                    let from = stack.iter().position(|s| s == t).unwrap_or(0);
                    let names: Vec<String> = stack[from..].iter().map(|p| p.join("/")).collect();
                    cycles.push(format!("{} -> {}", names.join(" -> "), t.join("/")));
                }
                _ => {}
            }
        }
        stack.pop();
        colour.insert(m.clone(), 2);
    }
    let mut colour = BTreeMap::new();
    let mut cycles = Vec::new();
    for m in g.edges.keys() {
        if colour.get(m).copied().unwrap_or(0) == 0 {
            visit(&g, m, &mut colour, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "module cycles:\n{}", cycles.join("\n"));
}

#[test]
fn each_folder_depends_only_on_the_folders_below_it() {
    let g = graph();
    let allowed: BTreeMap<&str, &[&str]> = LAYERS.iter().copied().collect();
    let mut wrong = Vec::new();
    for (from, targets) in &g.edges {
        let Some(from_folder) = from.first() else { continue };
        let Some(may) = allowed.get(from_folder.as_str()) else {
            wrong.push(format!("{} is in no layer; add its folder to LAYERS", from.join("/")));
            continue;
        };
        for t in targets {
            let Some(to_folder) = t.first() else { continue };
            if to_folder != from_folder && !may.contains(&to_folder.as_str()) {
                wrong.push(format!("{} uses {}", from.join("/"), t.join("/")));
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layering:\n{}", wrong.join("\n"));
}

#[test]
fn the_checker_sees_a_cycle_and_an_upward_import() {
    // The parser itself: a `crate::` group, a `super::` path and a doc link all count.
    let module = vec!["runtime".to_owned(), "lifecycle".to_owned()];
    let text = "use crate::{db::state, plan::catalog::Catalog};\nuse super::controller::X;\n/// [`H`](crate::host::Host)\n";
    let found = referenced(&module, false, text);
    let joined: Vec<String> = found.iter().map(|p| p.join("::")).collect();
    assert!(joined.contains(&"db::state".to_owned()), "{joined:?}");
    assert!(joined.contains(&"plan::catalog::Catalog".to_owned()), "{joined:?}");
    assert!(joined.contains(&"runtime::controller::X".to_owned()), "{joined:?}");
    assert!(joined.contains(&"host::Host".to_owned()), "{joined:?}");
}
