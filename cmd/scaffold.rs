//! `annex extensions new <name>`: scaffolds `extensions/custom/<name>` with a working route, a
//! migration pair and a test, and wires it into the root Cargo.toml in exactly the form build.rs
//! checks (workspace member, optional dependency, `ext-<name>` feature listed in `default`).

use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde_json::json;

/// The command that builds and serves the workspace with every default extension, the new one
/// included; the README shows the same.
const RUN: &str = "cargo run --release -- serve";

/// Scaffolds `name` under `root` (default: the enclosing workspace). `compiled_in` are the
/// extensions of this binary: their names are taken even where their crates are not in `root`.
pub(crate) fn new(name: &str, root: Option<&Path>, compiled_in: &[String], json: bool) -> anyhow::Result<()> {
    check_name(name)?;
    let root = match root {
        Some(r) => r.to_owned(),
        None => find_workspace_root()?,
    };
    let manifest_path = root.join("Cargo.toml");
    let manifest = std::fs::read_to_string(&manifest_path)
        .with_context(|| format!("cannot read {}", manifest_path.display()))?;
    let pkg = format!("annex-ext-{}", name.replace('_', "-"));
    // Every check before the first write: a refused name leaves the workspace as it was.
    check_free(name, &pkg, &root, &manifest, compiled_in)?;
    let rel = format!("extensions/custom/{name}");
    let dir = root.join(&rel);
    let wired = wire(&manifest, name, &pkg, &rel)?;
    let files = files(name, &pkg);
    for (file, content) in &files {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, content).with_context(|| format!("cannot write {}", path.display()))?;
    }
    std::fs::write(&manifest_path, wired)
        .with_context(|| format!("cannot update {}", manifest_path.display()))?;
    let created: Vec<String> = files.iter().map(|(f, _)| format!("{rel}/{f}")).collect();
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({
                "extension": name, "package": pkg, "path": rel, "files": created, "feature": format!("ext-{name}"),
            }))?
        );
    } else {
        println!("created {rel}:");
        for f in &created {
            println!("  {f}");
        }
        println!("wired into Cargo.toml as feature `ext-{name}` (on by default)");
        println!("next: {RUN}, then GET /ext/{name}/hello");
    }
    Ok(())
}

fn check_name(name: &str) -> anyhow::Result<()> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase());
    let rest_ok = chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !first_ok || !rest_ok || name.len() > 40 {
        bail!(
            "extension name `{name}` is invalid: use 1 to 40 characters, a lowercase letter then lowercase letters, digits or `_`"
        );
    }
    Ok(())
}

/// Refuses a name that is already an extension: a crate directory `extensions/<group>/<name>`,
/// a package or feature of that name in the root Cargo.toml, or an extension compiled into this
/// binary. A second crate of the same name would break the workspace (two `ext-<name>` keys).
fn check_free(
    name: &str,
    pkg: &str,
    root: &Path,
    manifest: &str,
    compiled_in: &[String],
) -> anyhow::Result<()> {
    let groups = std::fs::read_dir(root.join("extensions")).into_iter().flatten().flatten();
    let mut existing: Vec<PathBuf> =
        groups.map(|group| group.path().join(name)).filter(|dir| dir.exists()).collect();
    existing.sort();
    if let Some(dir) = existing.first() {
        let shown = dir.strip_prefix(root).unwrap_or(dir);
        bail!(
            "extension `{name}` already exists at {}; pick another name (or remove that crate and its \
             lines in Cargo.toml first)",
            shown.display()
        );
    }
    let feature = format!("ext-{name}");
    for (number, line) in manifest.lines().enumerate() {
        if let Some(token) = [pkg, feature.as_str()].into_iter().find(|t| mentions(line, t)) {
            bail!(
                "extension `{name}` is already wired into Cargo.toml (`{token}` on line {}); pick another \
                 name, or remove its lines from Cargo.toml if its crate is gone",
                number + 1
            );
        }
    }
    if compiled_in.iter().any(|n| n == name) {
        bail!(
            "extension `{name}` is compiled into this binary already; pick another name, since two \
             extensions of one name cannot be served side by side"
        );
    }
    Ok(())
}

/// Whether `line` names `token` as a whole word (`annex-ext-a` is not in `annex-ext-ab`, and
/// `ext-a` is not in `annex-ext-a`).
fn mentions(line: &str, token: &str) -> bool {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    line.match_indices(token).any(|(at, _)| {
        let before = line[..at].chars().next_back();
        let after = line[at + token.len()..].chars().next();
        !before.is_some_and(word) && !after.is_some_and(word)
    })
}

fn find_workspace_root() -> anyhow::Result<PathBuf> {
    let start = std::env::current_dir().context("cannot read the current directory")?;
    for dir in start.ancestors() {
        let manifest = dir.join("Cargo.toml");
        if std::fs::read_to_string(&manifest).is_ok_and(|t| t.lines().any(|l| l.trim() == "[workspace]")) {
            return Ok(dir.to_owned());
        }
    }
    bail!(
        "no workspace Cargo.toml in {} or above; run this in the annex checkout or pass --path",
        start.display()
    )
}

/// The root manifest with the new crate wired in. Text edits, so comments and layout stay.
fn wire(manifest: &str, name: &str, pkg: &str, rel: &str) -> anyhow::Result<String> {
    let mut lines: Vec<String> = manifest.lines().map(str::to_owned).collect();
    let member = format!("\"{rel}\"");
    let members = lines
        .iter()
        .position(|l| l.trim_start().starts_with("members") && l.contains('['))
        .context("the root Cargo.toml has no `members = [...]` in [workspace]; add one")?;
    append_to_array(&mut lines, members, &member)?;

    let features =
        section(&lines, "[features]").context("the root Cargo.toml has no [features] section; add one")?;
    let default = (features + 1..section_end(&lines, features))
        .find(|&i| lines[i].trim_start().starts_with("default"))
        .context("[features] has no `default = [...]`; add `default = []`")?;
    let default_end = append_to_array(&mut lines, default, &format!("\"ext-{name}\""))?;
    lines.insert(default_end + 1, format!("ext-{name} = [\"dep:{pkg}\"]"));

    let deps =
        section(&lines, "[dependencies]").context("the root Cargo.toml has no [dependencies] section")?;
    let mut at = section_end(&lines, deps);
    while at > deps + 1 && lines[at - 1].trim().is_empty() {
        at -= 1;
    }
    lines.insert(at, format!("{pkg} = {{ path = \"{rel}\", optional = true }}"));
    Ok(lines.join("\n") + "\n")
}

fn section(lines: &[String], header: &str) -> Option<usize> {
    lines.iter().position(|l| l.trim() == header)
}

/// The index of the next section header after `start` (or the end).
fn section_end(lines: &[String], start: usize) -> usize {
    (start + 1..lines.len()).find(|&i| lines[i].trim_start().starts_with('[')).unwrap_or(lines.len())
}

/// Appends `item` to the TOML array that opens on line `start`; returns the line it closes on.
fn append_to_array(lines: &mut Vec<String>, start: usize, item: &str) -> anyhow::Result<usize> {
    let end = (start..lines.len())
        .find(|&i| lines[i].trim_end().ends_with(']'))
        .with_context(|| format!("cannot find the end of the array on line {} of Cargo.toml", start + 1))?;
    if end > start && lines[end].trim() == "]" {
        // A multi-line array closed on its own line: add one item line, indented like the last.
        let indent: String = lines[end - 1].chars().take_while(|c| c.is_whitespace()).collect();
        if let Some(last) = lines.get_mut(end - 1)
            && !last.trim_end().ends_with(',')
            && !last.trim_end().ends_with('[')
        {
            last.push(',');
        }
        lines.insert(end, format!("{indent}{item},"));
        return Ok(end + 1);
    }
    let line = &mut lines[end];
    let close = line.rfind(']').unwrap_or(line.len());
    let before = line[..close].trim_end().to_owned();
    let sep = if before.ends_with('[') {
        ""
    } else if before.ends_with(',') {
        " "
    } else {
        ", "
    };
    *line = format!("{before}{sep}{item}{}", &line[close..]);
    Ok(end)
}

fn files(name: &str, pkg: &str) -> Vec<(String, String)> {
    let cargo = format!(
        r#"[package]
name = "{pkg}"
description = "The `{name}` annex extension"
version = "0.1.0"
edition.workspace = true
rust-version.workspace = true
license.workspace = true
publish.workspace = true

[dependencies]
annex-core.workspace = true
axum.workspace = true
serde_json.workspace = true

[dev-dependencies]
annex-core = {{ workspace = true, features = ["testkit"] }}
tokio.workspace = true

[lints]
workspace = true
"#
    );
    let type_name: String = name
        .split('_')
        .map(|part| {
            let mut c = part.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    let lib = format!(
        r#"//! The `{name}` extension: `GET /ext/{name}/hello`.
#![warn(missing_docs)]

use annex_core::{{Context, Extension, Metadata, Migration, Migrations, Registrar}};
use axum::Json;
use serde_json::{{Value, json}};

/// The `{name}` extension.
#[derive(Debug, Default)]
pub struct {type_name};

#[annex_core::async_trait]
impl Extension for {type_name} {{
    fn metadata(&self) -> Metadata {{
        Metadata::new("{name}", env!("CARGO_PKG_VERSION")).description("The {name} extension")
    }}

    fn migrations(&self) -> Migrations {{
        Migrations::new(vec![Migration::new(
            1,
            "init",
            include_str!("../migrations/0001_init.up.sql"),
            Some(include_str!("../migrations/0001_init.down.sql")),
        )])
    }}

    fn register(&self, r: &mut Registrar) {{
        r.get("/hello", hello);
    }}
}}

async fn hello(cx: Context) -> Json<Value> {{
    Json(json!({{ "extension": cx.name(), "hello": "world" }}))
}}

annex_core::register_extension!({type_name});
"#
    );
    let test = format!(
        r#"//! `GET /ext/{name}/hello` answers on a real host and a real database.

use annex_core::testkit::TestHost;

#[tokio::test(flavor = "multi_thread")]
async fn hello_answers() {{
    let t = TestHost::builder().extension({crate_name}::{type_name}).start().await.expect("host starts");
    let res = t.get("/ext/{name}/hello").await;
    assert_eq!(res.status(), 200);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["hello"], "world");
    t.shutdown().await;
}}
"#,
        crate_name = pkg.replace('-', "_"),
    );
    let up = format!(
        "-- The `{name}` extension's first table.\ncreate table items (\n    id   bigserial primary key,\n    name text not null\n);\n"
    );
    vec![
        ("Cargo.toml".into(), cargo),
        ("src/lib.rs".into(), lib),
        ("migrations/0001_init.up.sql".into(), up),
        ("migrations/0001_init.down.sql".into(), "drop table items;\n".into()),
        (format!("tests/{name}.rs"), test),
    ]
}

#[cfg(test)]
mod tests {
    use super::wire;

    #[test]
    fn wiring_handles_one_line_and_multi_line_arrays_in_the_form_build_rs_checks() {
        let one_line = "[workspace]\nmembers = [\"core\"]\n\n[features]\ndefault = []\n\n[dependencies]\nanyhow = \"1\"\n\n[dev-dependencies]\n";
        let out = wire(one_line, "demo", "annex-ext-demo", "extensions/custom/demo").unwrap();
        assert!(out.contains("members = [\"core\", \"extensions/custom/demo\"]"), "{out}");
        assert!(out.contains("default = [\"ext-demo\"]\next-demo = [\"dep:annex-ext-demo\"]"), "{out}");
        assert!(out.contains("anyhow = \"1\"\nannex-ext-demo = { path = \"extensions/custom/demo\", optional = true }\n\n[dev-dependencies]"), "{out}");

        let multi = "[workspace]\nmembers = [\n    \"core\",\n    \"x\"\n]\n[features]\ndefault = [\"ext-a\"]\n[dependencies]\n";
        let out = wire(multi, "my_ext", "annex-ext-my-ext", "extensions/custom/my_ext").unwrap();
        assert!(out.contains("    \"x\",\n    \"extensions/custom/my_ext\",\n]"), "{out}");
        assert!(
            out.contains("default = [\"ext-a\", \"ext-my_ext\"]\next-my_ext = [\"dep:annex-ext-my-ext\"]"),
            "{out}"
        );
        assert!(
            out.contains("annex-ext-my-ext = { path = \"extensions/custom/my_ext\", optional = true }"),
            "{out}"
        );

        assert!(wire("[package]\n", "demo", "annex-ext-demo", "x").is_err());
    }

    #[test]
    fn a_name_is_mentioned_only_as_a_whole_word() {
        use super::mentions;
        assert!(mentions("annex-ext-a = { path = \"x\" }", "annex-ext-a"));
        assert!(mentions("ext-a = [\"dep:annex-ext-a\"]", "annex-ext-a"));
        assert!(mentions("default = [\"ext-a\"]", "ext-a"));
        assert!(!mentions("annex-ext-ab = { path = \"x\" }", "annex-ext-a"));
        assert!(!mentions("annex-ext-a = { path = \"x\" }", "ext-a"));
        assert!(!mentions("ext-a_b = []", "ext-a"));
    }
}
