//! Macros re-exported by `annex-core`; use them as `annex_core::migrations!` and
//! `annex_core::entities!`.
#![warn(missing_docs)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use proc_macro::TokenStream;

/// Embeds the migrations in a directory of the calling crate (relative to its Cargo.toml) as an
/// `annex_core::Migrations` value.
///
/// Files are named `NNNN_description.up.sql` and, optionally, `NNNN_description.down.sql`. A
/// step without a `.down.sql` is irreversible: a rollback refuses to pass it. Other file
/// extensions are ignored; a malformed `.sql` name, a duplicate version or a `.down.sql` without
/// its `.up.sql` is a compile error. Cargo does not notice new files in the directory by itself:
/// add `println!("cargo:rerun-if-changed=migrations");` to the crate's build.rs.
#[proc_macro]
pub fn migrations(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(code) => code,
        Err(message) => error(&message),
    }
}

fn error(message: &str) -> TokenStream {
    TokenStream::from_str(&format!("::core::compile_error!({message:?})")).unwrap_or_default()
}

#[derive(Default)]
struct Step {
    description: String,
    up: Option<PathBuf>,
    down: Option<PathBuf>,
}

fn expand(input: TokenStream) -> Result<TokenStream, String> {
    let literal = input.to_string();
    let relative = literal
        .trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|s| !s.contains(['"', '\\']))
        .ok_or_else(|| format!("migrations! takes a directory as a plain string literal, got `{literal}`"))?;
    let root = std::env::var("CARGO_MANIFEST_DIR").map_err(|_| "CARGO_MANIFEST_DIR is not set".to_owned())?;
    let dir = Path::new(&root).join(relative);
    let entries = std::fs::read_dir(&dir)
        .map_err(|e| format!("migrations!: cannot read directory {}: {e}", dir.display()))?;

    let mut steps: BTreeMap<i64, Step> = BTreeMap::new();
    for entry in entries {
        let path = entry.map_err(|e| format!("migrations!: cannot list {}: {e}", dir.display()))?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else { continue };
        if !name.ends_with(".sql") {
            continue;
        }
        let (stem, up) = if let Some(stem) = name.strip_suffix(".up.sql") {
            (stem, true)
        } else if let Some(stem) = name.strip_suffix(".down.sql") {
            (stem, false)
        } else {
            return Err(format!("migrations!: {name} must end in .up.sql or .down.sql"));
        };
        let (version, description) = parse_stem(stem)
            .ok_or_else(|| format!("migrations!: {name} must be named NNNN_description.(up|down).sql"))?;
        let step = steps.entry(version).or_default();
        if !step.description.is_empty() && step.description != description {
            return Err(format!(
                "migrations!: version {version} is used twice ({} and {description})",
                step.description
            ));
        }
        step.description = description.to_owned();
        if up {
            step.up = Some(path);
        } else {
            step.down = Some(path);
        }
    }

    let mut code = String::from("::annex_core::Migrations::new(::std::vec![");
    for (version, step) in &steps {
        let Some(up) = &step.up else {
            return Err(format!(
                "migrations!: {version:04}_{}.down.sql has no {version:04}_{}.up.sql",
                step.description, step.description
            ));
        };
        let up = up.to_str().ok_or("migrations!: the path is not UTF-8")?;
        let down = match &step.down {
            Some(p) => format!(
                "::core::option::Option::Some(::core::include_str!({:?}))",
                p.to_str().ok_or("migrations!: the path is not UTF-8")?
            ),
            None => "::core::option::Option::None".to_owned(),
        };
        let _ = write!(
            code,
            "::annex_core::Migration::new({version}i64, {:?}, ::core::include_str!({up:?}), {down}),",
            step.description
        );
    }
    code.push_str("])");
    TokenStream::from_str(&code).map_err(|e| format!("migrations!: internal error: {e}"))
}

/// Embeds an extension's entity declaration (`entities.toml` or `entities.json`, relative to
/// the calling crate's Cargo.toml) as an `annex_core::extension::Entities` value, after checking
/// it: a file that does not parse, or a declaration with problems of its own (names, types,
/// rules, defaults, relations inside the file), is a compile error naming the file, the line or
/// JSON pointer, and the problem. References to other extensions are checked by the host at
/// startup, where every declaration is known.
#[proc_macro]
pub fn entities(input: TokenStream) -> TokenStream {
    match expand_entities(input) {
        Ok(code) => code,
        Err(message) => error(&message),
    }
}

fn expand_entities(input: TokenStream) -> Result<TokenStream, String> {
    let literal = input.to_string();
    let relative = literal
        .trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|s| !s.contains(['"', '\\']))
        .ok_or_else(|| format!("entities! takes a file as a plain string literal, got `{literal}`"))?;
    let root = std::env::var("CARGO_MANIFEST_DIR").map_err(|_| "CARGO_MANIFEST_DIR is not set".to_owned())?;
    let path = Path::new(&root).join(relative);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("entities!: cannot read {}: {e}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let parsed = if json { annex_entities::parse_json(&text) } else { annex_entities::parse_toml(&text) };
    let declaration = parsed.map_err(|e| format!("entities!: {}: {e}", path.display()))?;
    let problems = annex_entities::validate(&declaration, &annex_entities::Scope::compile_time());
    if !problems.is_empty() {
        let list: Vec<String> = problems.iter().map(|p| format!("  {}: {}", p.pointer, p.message)).collect();
        return Err(format!(
            "entities!: {} has {} problem(s):\n{}",
            path.display(),
            problems.len(),
            list.join("\n")
        ));
    }
    let file = path.to_str().ok_or("entities!: the path is not UTF-8")?;
    let code = format!(
        "::annex_core::extension::Entities::embedded({relative:?}, ::core::include_str!({file:?}), {json})"
    );
    TokenStream::from_str(&code).map_err(|e| format!("entities!: internal error: {e}"))
}

/// `0001_create_items` → (1, "create_items").
fn parse_stem(stem: &str) -> Option<(i64, &str)> {
    let (digits, description) = stem.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || description.is_empty() {
        return None;
    }
    if !description.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        return None;
    }
    Some((digits.parse().ok()?, description))
}

#[cfg(test)]
mod tests {
    use super::parse_stem;

    #[test]
    fn file_stems_give_version_and_description() {
        assert_eq!(parse_stem("0001_create_items"), Some((1, "create_items")));
        assert_eq!(parse_stem("12_x2"), Some((12, "x2")));
        assert_eq!(parse_stem("create_items"), None);
        assert_eq!(parse_stem("0001_"), None);
        assert_eq!(parse_stem("0001_Bad-Name"), None);
    }
}
