//! `annex extensions validate`: every check that needs no database, run on the compiled-in set
//! and the config — names, versions, dependencies, routes, permissions, schemas, migrations.

use std::collections::BTreeSet;
use std::sync::Arc;

use serde::Serialize;

use crate::config::Config;
use crate::config::schema::{check_extension_config, schema_problem};
use crate::extension::Extension;
use crate::plan;

/// One problem found by [`preflight`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The extension concerned, if one.
    pub extension: Option<String>,
    /// `plan`, `permissions`, `schema`, `config` or `migrations`.
    pub check: &'static str,
    /// What is wrong and what to do.
    pub message: String,
}

/// Checks the compiled-in set against `config`. Empty means ready to serve.
///
/// ```
/// use annex_core::{admin::preflight, config::Config};
/// assert!(preflight(&Config::default(), &[]).is_empty());
/// ```
pub fn preflight(config: &Config, extensions: &[Arc<dyn Extension>]) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(errors) = plan::validate(extensions.to_vec()) {
        problems.extend(errors.0.into_iter().map(|e| Problem {
            extension: None,
            check: "plan",
            message: e.to_string(),
        }));
    }
    for ext in extensions {
        let meta = ext.metadata();
        let name = meta.name.clone();
        let problem = |check, message| Problem { extension: Some(name.clone()), check, message };
        let section = config.extension(&name);
        let granted: BTreeSet<&str> = section.permissions.iter().map(String::as_str).collect();
        for needed in meta.permissions.iter().filter(|p| !granted.contains(p.as_str())) {
            problems.push(problem(
                "permissions",
                format!("extension `{name}` needs permission `{needed}`; add it to [extensions.{name}] permissions in annex.toml"),
            ));
        }
        let schema = ext.config_schema();
        if let Some(why) = schema.as_ref().and_then(schema_problem) {
            problems.push(problem(
                "schema",
                format!("extension `{name}` declares an invalid config schema: {why}"),
            ));
        } else if let Some(cfg) = &section.config
            && let Err(errors) = check_extension_config(schema.as_ref(), cfg)
        {
            for e in errors {
                let at = if e.pointer.is_empty() { "(root)".to_owned() } else { e.pointer };
                problems.push(problem(
                    "config",
                    format!("[extensions.{name}] config at {at}: {}; fix annex.toml", e.message),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        let declaration = crate::entities::migrations::declaration_of(&**ext);
        let all = crate::entities::migrations::migrations_of(&name, &ext.migrations(), declaration.as_ref());
        for m in all.iter() {
            if m.version <= 0 || !seen.insert(m.version) {
                problems.push(problem(
                    "migrations",
                    format!("extension `{name}` has migration version {} twice or not positive; number them 0001, 0002, …", m.version),
                ));
            }
            if m.up.trim().is_empty() {
                problems.push(problem(
                    "migrations",
                    format!("extension `{name}` migration {:04} has an empty up.sql", m.version),
                ));
            }
            if m.down.is_none() {
                problems.push(problem(
                    "migrations",
                    format!("extension `{name}` migration {:04} has no down.sql; add {:04}_{}.down.sql so it can be rolled back", m.version, m.version, m.description),
                ));
            }
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use serde_json::json;

    use super::preflight;
    use crate::config::Config;
    use crate::extension::Extension;
    use crate::extension::metadata::Metadata;
    use crate::extension::migrations::{Migration, Migrations};

    struct Needy;

    #[async_trait::async_trait]
    impl Extension for Needy {
        fn metadata(&self) -> Metadata {
            Metadata::new("needy", "1.0.0").permission("database")
        }
        fn config_schema(&self) -> Option<serde_json::Value> {
            Some(json!({ "type": "object", "properties": { "port": { "type": "integer" } } }))
        }
        fn migrations(&self) -> Migrations {
            Migrations::new(vec![Migration::new(1, "items", "create table items ()", None)])
        }
    }

    #[test]
    fn missing_permissions_bad_config_and_irreversible_migrations_are_each_reported() {
        let config = Config::from_toml_str("[extensions.needy]\nconfig = { port = \"x\" }").unwrap();
        let problems = preflight(&config, &[Arc::new(Needy) as Arc<dyn Extension>]);
        let checks: Vec<&str> = problems.iter().map(|p| p.check).collect();
        assert_eq!(checks, ["permissions", "config", "migrations"], "{problems:?}");
        assert!(problems[0].message.contains("add it to [extensions.needy] permissions"));
        assert!(problems[1].message.contains("/port"));
        assert!(problems[2].message.contains("0001_items.down.sql"));
        let granted =
            Config::from_toml_str("[extensions.needy]\npermissions = [\"database\"]\nconfig = { port = 1 }")
                .unwrap();
        assert_eq!(preflight(&granted, &[Arc::new(Needy) as Arc<dyn Extension>]).len(), 1);
    }

    #[test]
    fn a_config_in_annex_toml_that_is_not_a_table_is_reported() {
        for value in ["1", "\"s\"", "true", "[1, 2]"] {
            let config = Config::from_toml_str(&format!(
                "[extensions.needy]\npermissions = [\"database\"]\nconfig = {value}"
            ))
            .unwrap();
            let problems = preflight(&config, &[Arc::new(Needy) as Arc<dyn Extension>]);
            assert!(
                problems.iter().any(|p| p.check == "config" && p.message.contains("must be a JSON object")),
                "{value}: {problems:?}"
            );
        }
    }
}
