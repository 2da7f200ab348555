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

/// The macro's one argument, a plain string literal, and that path inside the calling crate.
fn in_crate(input: &TokenStream, what: &str) -> Result<(String, PathBuf), String> {
    let literal = input.to_string();
    let relative = literal
        .trim()
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .filter(|s| !s.contains(['"', '\\']))
        .ok_or_else(|| format!("{what} as a plain string literal, got `{literal}`"))?;
    let root = std::env::var("CARGO_MANIFEST_DIR").map_err(|_| "CARGO_MANIFEST_DIR is not set".to_owned())?;
    Ok((relative.to_owned(), Path::new(&root).join(relative)))
}

fn expand(input: TokenStream) -> Result<TokenStream, String> {
    let (_, dir) = in_crate(&input, "migrations! takes a directory")?;
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
    let (relative, path) = in_crate(&input, "entities! takes a file")?;
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

/// Writes a Rust type per entity and enum of a declaration file; see `annex_core::entity_types!`.
#[proc_macro]
pub fn entity_types(input: TokenStream) -> TokenStream {
    match expand_types(input) {
        Ok(code) => code,
        Err(message) => error(&message),
    }
}

fn pascal(name: &str) -> String {
    name.split('_')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect()
}

/// Rust keywords a field name may collide with: written as raw identifiers.
fn ident(name: &str) -> String {
    const KEYWORDS: &[&str] = &[
        "as", "async", "await", "box", "break", "const", "continue", "crate", "dyn", "else", "enum",
        "extern", "false", "fn", "for", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
        "pub", "ref", "return", "static", "struct", "super", "trait", "true", "type", "unsafe", "use",
        "where", "while", "yield", "try", "gen", "abstract", "become", "do", "final", "macro", "override",
        "priv", "typeof", "unsized", "virtual",
    ];
    if KEYWORDS.contains(&name) { format!("r#{name}") } else { name.to_owned() }
}

// The generated source is written line by line, each format string carrying its own `\n`.
#[allow(clippy::write_with_newline)]
fn expand_types(input: TokenStream) -> Result<TokenStream, String> {
    use annex_entities::{FieldType, RelationKind};
    let (_, path) = in_crate(&input, "entity_types! takes a file")?;
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("entity_types!: cannot read {}: {e}", path.display()))?;
    let json = path.extension().is_some_and(|e| e == "json");
    let parsed = if json { annex_entities::parse_json(&text) } else { annex_entities::parse_toml(&text) };
    let d = parsed.map_err(|e| format!("entity_types!: {}: {e}", path.display()))?;
    let problems = annex_entities::validate(&d, &annex_entities::Scope::compile_time());
    if let Some(p) = problems.first() {
        return Err(format!(
            "entity_types!: {}: {}: {} ({} problem(s))",
            path.display(),
            p.pointer,
            p.message,
            problems.len()
        ));
    }
    let p = "::annex_core::__private";
    let file = path.to_str().ok_or("entity_types!: the path is not UTF-8")?;
    // Cargo rebuilds when the file changes.
    let mut code = format!("const _: &str = ::core::include_str!({file:?});\n");
    for (name, e) in &d.enums {
        let ty = pascal(name);
        let variants: Vec<(String, &String)> = e.values.iter().map(|v| (pascal(v), v)).collect();
        let _ = write!(
            code,
            "/// Enum `{name}` of the declaration.\n#[derive(Debug, Clone, PartialEq, Eq, Hash)]\npub enum {ty} {{\n"
        );
        for (variant, value) in &variants {
            let _ = write!(code, "    /// `{value}`\n    {variant},\n");
        }
        let _ =
            write!(code, "    /// A value another extension added.\n    Other(::std::string::String),\n}}\n");
        let _ = write!(
            code,
            "impl {ty} {{\n    /// The stored value.\n    pub fn as_str(&self) -> &str {{\n        match self {{\n"
        );
        for (variant, value) in &variants {
            let _ = write!(code, "            Self::{variant} => {value:?},\n");
        }
        let _ = write!(code, "            Self::Other(v) => v,\n        }}\n    }}\n}}\n");
        let _ = write!(
            code,
            "impl ::core::convert::From<&str> for {ty} {{\n    fn from(v: &str) -> Self {{\n        match v {{\n"
        );
        for (variant, value) in &variants {
            let _ = write!(code, "            {value:?} => Self::{variant},\n");
        }
        let _ = write!(code, "            other => Self::Other(other.to_owned()),\n        }}\n    }}\n}}\n");
        let _ = write!(
            code,
            "impl {p}::serde::Serialize for {ty} {{\n    fn serialize<S: {p}::serde::Serializer>(&self, s: S) -> ::core::result::Result<S::Ok, S::Error> {{ s.serialize_str(self.as_str()) }}\n}}\n"
        );
        let _ = write!(
            code,
            "impl<'de> {p}::serde::Deserialize<'de> for {ty} {{\n    fn deserialize<D: {p}::serde::Deserializer<'de>>(d: D) -> ::core::result::Result<Self, D::Error> {{\n        let v = <::std::string::String as {p}::serde::Deserialize>::deserialize(d)?;\n        ::core::result::Result::Ok(Self::from(v.as_str()))\n    }}\n}}\n"
        );
    }
    for (entity, e) in &d.entities {
        let ty = pascal(entity);
        let mut fields: Vec<(String, String, bool)> = vec![
            ("id".into(), format!("{p}::uuid::Uuid"), false),
            ("created_at".into(), format!("{p}::chrono::DateTime<{p}::chrono::Utc>"), false),
            ("updated_at".into(), format!("{p}::chrono::DateTime<{p}::chrono::Utc>"), false),
        ];
        if e.site_scoped {
            fields.push(("site_id".into(), format!("{p}::uuid::Uuid"), false));
        }
        for (name, f) in &e.fields {
            let Some(column) = f.column(name) else { continue };
            let (rust, via_text) = match f.field_type {
                FieldType::String | FieldType::Text => ("::std::string::String".to_owned(), false),
                FieldType::Int => ("i32".into(), false),
                FieldType::Bigint => ("i64".into(), false),
                FieldType::Float => ("f64".into(), false),
                FieldType::Decimal => (format!("{p}::rust_decimal::Decimal"), false),
                FieldType::Boolean => ("bool".into(), false),
                FieldType::Date => (format!("{p}::chrono::NaiveDate"), false),
                FieldType::Datetime => (format!("{p}::chrono::DateTime<{p}::chrono::Utc>"), false),
                FieldType::Json => (format!("{p}::serde_json::Value"), false),
                FieldType::Uuid => (format!("{p}::uuid::Uuid"), false),
                FieldType::Relation => {
                    if matches!(f.relation_kind(), Some(RelationKind::OneToOne | RelationKind::ManyToOne)) {
                        (format!("{p}::uuid::Uuid"), false)
                    } else {
                        continue;
                    }
                }
                FieldType::Enum => match f.enum_name.as_deref().filter(|n| !n.contains('.')) {
                    Some(local) => (pascal(local), true),
                    None => ("::std::string::String".to_owned(), false),
                },
            };
            let optional = !f.required && f.field_type != FieldType::Json;
            let rust = if optional { format!("::core::option::Option<{rust}>") } else { rust };
            fields.push((column, rust, via_text));
        }
        let _ = write!(
            code,
            "/// A row of entity `{entity}`.\n#[derive(Debug, Clone, PartialEq, {p}::serde::Serialize, {p}::serde::Deserialize)]\n#[serde(crate = \"{p}::serde\")]\npub struct {ty} {{\n"
        );
        for (column, rust, _) in &fields {
            let _ = write!(code, "    /// Column `{column}`.\n    pub {}: {rust},\n", ident(column));
        }
        let _ = write!(code, "}}\n");
        let _ = write!(
            code,
            "impl<'r> {p}::sqlx::FromRow<'r, {p}::sqlx::postgres::PgRow> for {ty} {{\n    fn from_row(row: &'r {p}::sqlx::postgres::PgRow) -> ::core::result::Result<Self, {p}::sqlx::Error> {{\n        use {p}::sqlx::Row as _;\n        ::core::result::Result::Ok(Self {{\n"
        );
        for (column, rust, via_text) in &fields {
            let field = ident(column);
            if *via_text {
                if rust.starts_with("::core::option::Option<") {
                    let _ = write!(
                        code,
                        "            {field}: row.try_get::<::core::option::Option<::std::string::String>, _>({column:?})?.map(|v| ::core::convert::From::from(v.as_str())),\n"
                    );
                } else {
                    let _ = write!(
                        code,
                        "            {field}: ::core::convert::From::from(row.try_get::<::std::string::String, _>({column:?})?.as_str()),\n"
                    );
                }
            } else {
                let _ = write!(code, "            {field}: row.try_get({column:?})?,\n");
            }
        }
        let _ = write!(code, "        }})\n    }}\n}}\n");
    }
    TokenStream::from_str(&code).map_err(|e| format!("entity_types!: internal error: {e}"))
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
