//! An extension's whole migration list: its hand-written steps and the steps generated from its
//! entity declaration, in one ledger (checksums, advisory lock, one transaction per step, as for
//! any migration). A declaration at version `v` is step [`ENTITY_BASE`]` + v`, so hand-written
//! steps (numbered from 1, below the base) and generated ones never collide.

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
