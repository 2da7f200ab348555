//! An extension's whole migration list: its hand-written steps and the steps generated from its
//! entity declaration, in one ledger (checksums, advisory lock, one transaction per step, as for
//! any migration). A declaration at version `v` is step [`ENTITY_BASE`]` + v`, so hand-written
//! steps (numbered from 1, below the base) and generated ones never collide.

use crate::db::isolation::ForeignGrant;
use crate::extension::{Extension, Migration, Migrations};

use super::ddl;

/// Ledger versions of generated steps start above this.
pub(crate) const ENTITY_BASE: i64 = 1_000_000_000;

/// Every migration step of `extension`: hand-written, then generated from its declaration.
/// A declaration that does not parse adds nothing here (startup validation reports it).
pub(crate) fn migrations_of(name: &str, extension: &dyn Extension) -> Migrations {
    let written = extension.migrations();
    let Some(entities) = extension.entities() else { return written };
    let Ok(declaration) = entities.declaration() else { return written };
    let sql = ddl::create(name, declaration);
    let mut steps: Vec<Migration> = written.iter().cloned().collect();
    let up = sql.up.join(";\n");
    let down = sql.down.join(";\n");
    steps.push(Migration::new(
        ENTITY_BASE + i64::from(declaration.version),
        &format!("entities_v{}", declaration.version),
        &up,
        Some(&down),
    ));
    Migrations::new(steps)
}

/// What the role of `extension` needs on other extensions' tables for its declaration: the
/// targets of its cross-extension relations and enums, and the enums it adds values to.
pub(crate) fn foreign_grants(extension: &dyn Extension) -> Vec<ForeignGrant> {
    let Some(entities) = extension.entities() else { return Vec::new() };
    let Ok(d) = entities.declaration() else { return Vec::new() };
    let mut grants: Vec<ForeignGrant> = Vec::new();
    let mut add = |owner: &str, object: String, privileges: &'static str| {
        let g = ForeignGrant { owner: owner.to_owned(), object, privileges };
        if !grants.contains(&g) {
            grants.push(g);
        }
    };
    for e in d.entities.values() {
        for f in e.fields.values() {
            if let Some((owner, name)) = f.to.as_deref().and_then(|t| t.split_once('.')) {
                add(owner, name.to_owned(), "references, select");
            }
            if let Some((owner, name)) = f.enum_name.as_deref().and_then(|t| t.split_once('.')) {
                add(owner, format!("_enum_{name}"), "references, select");
            }
        }
    }
    for key in d.enum_extensions.keys() {
        if let Some((owner, name)) = key.split_once('.') {
            add(owner, format!("_enum_{name}"), "select, insert, delete");
        }
    }
    grants
}
