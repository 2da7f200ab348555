//! What the admin API (and the CLI) answer about declared entities: an extension's
//! declaration with its applied versions, and the validation of a declaration that registers
//! nothing.

use std::collections::BTreeMap;

use annex_entities::{Declaration, Problem, Scope};
use serde::Serialize;
use serde_json::Value;

use crate::entities::store::{self, AppliedDeclaration};
use crate::runtime::control_error::ControlError;
use crate::runtime::controller::Controller;

/// `GET /api/v1/extensions/{name}/entities`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EntitiesView {
    /// The extension.
    pub extension: String,
    /// Its declaration in this build, if it declares entities.
    pub declared: Option<Declaration>,
    /// The versions applied to the database, oldest first.
    pub applied: Vec<AppliedDeclaration>,
}

/// `POST /api/v1/entities/validate`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeclarationCheck {
    /// No problems.
    pub valid: bool,
    /// Every problem, each with its JSON pointer into the declaration.
    pub problems: Vec<Problem>,
}

impl Controller {
    /// The declaration of `name` and the versions applied.
    pub async fn entities(&self, name: &str) -> Result<EntitiesView, ControlError> {
        let declared = self.declared(name)?;
        let applied = store::versions(self.pool(), name).await?;
        Ok(EntitiesView { extension: name.to_owned(), declared: declared.entities.clone(), applied })
    }

    /// Checks `declaration` as extension `extension` would declare it (its dependencies and the
    /// other compiled-in declarations), or alone; registers nothing.
    pub fn validate_entities(
        &self,
        extension: Option<&str>,
        declaration: &Value,
    ) -> Result<DeclarationCheck, ControlError> {
        let declared = extension.map(|name| self.declared(name)).transpose()?;
        let parsed = if declaration.is_object() {
            serde_json::from_value(declaration.clone()).map_err(|e| e.to_string())
        } else {
            Err("a declaration is a JSON object".to_owned())
        };
        let d: Declaration = match parsed {
            Ok(d) => d,
            Err(e) => {
                let problem =
                    Problem { pointer: String::new(), code: "invalid_format", message: e.to_string() };
                return Ok(DeclarationCheck { valid: false, problems: vec![problem] });
            }
        };
        let catalog = self.catalog();
        let others: BTreeMap<&str, &Declaration> = catalog
            .iter()
            .filter(|x| Some(x.metadata.name.as_str()) != extension)
            .filter_map(|x| x.entities.as_ref().map(|d| (x.metadata.name.as_str(), d)))
            .collect();
        let scope = match (extension, declared) {
            (Some(name), Some(declared)) => Scope {
                extension: name,
                dependencies: declared.metadata.dependencies.iter().map(|d| d.name.as_str()).collect(),
                others,
                local_only: false,
            },
            _ => Scope { extension: "", others, local_only: true, ..Scope::default() },
        };
        let problems = annex_entities::validate(&d, &scope);
        Ok(DeclarationCheck { valid: problems.is_empty(), problems })
    }
}
