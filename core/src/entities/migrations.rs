//! An extension's whole migration list: its hand-written steps and the steps generated from its
//! entity declaration, in one ledger (checksums, advisory lock, one transaction per step, as for
//! any migration). A declaration at version `v` is step [`ENTITY_BASE`]` + v`, so hand-written
//! steps (numbered from 1, below the base) and generated ones never collide.

use crate::db::extension_db::{self, OpenError};
use crate::db::isolation::{ForeignGrant, Isolator};
use crate::db::migrate::{MigrationStep, Progress};
use crate::extension::{Extension, Migration, Migrations};

use annex_entities::{Declaration, diff};

use super::{changes, ddl, store};

/// Ledger versions of generated steps start above this.
pub(crate) const ENTITY_BASE: i64 = 1_000_000_000;

/// Why the steps of a declaration cannot be generated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum EntityPlanError {
    /// The change from the applied declaration can lose data.
    #[error(
        "the entities of `{extension}` at version {version} would lose data: {}. Apply it deliberately with \
         `annex entities apply {extension} --allow-destructive` (see `annex entities plan {extension}`)",
        .changes.join("; ")
    )]
    Destructive {
        /// The extension.
        extension: String,
        /// Its declaration's new version.
        version: u32,
        /// Each destructive change and why.
        changes: Vec<String>,
    },
    /// The declaration changed but kept its version, or went back to an older one.
    #[error(
        "the entities of `{extension}` are declared at version {declared} but version {applied} is applied{}; \
         raise `version` with every change",
        if declared == applied { " with a different declaration" } else { "" }
    )]
    Version {
        /// The extension.
        extension: String,
        /// The version declared in code.
        declared: u32,
        /// The newest version applied.
        applied: u32,
    },
    /// A change annex cannot generate.
    #[error("the entities of `{extension}` cannot move to version {version}: {reason}")]
    Unsupported {
        /// The extension.
        extension: String,
        /// The new version.
        version: u32,
        /// What is not supported.
        reason: String,
    },
}

fn step(version: u32, sql: &ddl::EntitySql) -> Migration {
    Migration::new(
        ENTITY_BASE + i64::from(version),
        &format!("entities_v{version}"),
        &sql.up.join(";\n"),
        Some(&sql.down.join(";\n")),
    )
}

/// The generated steps of a declaration given the ones applied before it (oldest first): the
/// first applied version is created, each later one is the diff from its predecessor, and the
/// declaration in code is the diff from the newest applied. The steps of applied versions are
/// rebuilt from their stored declarations, so their checksums match what the ledger recorded.
pub(crate) fn generated_steps(
    name: &str,
    current: &Declaration,
    applied: &[Declaration],
    allow_destructive: bool,
) -> Result<Vec<Migration>, EntityPlanError> {
    let unsupported = |version: u32, e: changes::Unsupported| EntityPlanError::Unsupported {
        extension: name.to_owned(),
        version,
        reason: e.0,
    };
    let Some((first, later)) = applied.split_first() else {
        return Ok(vec![step(current.version, &ddl::create(name, current))]);
    };
    let mut steps = vec![step(first.version, &ddl::create(name, first))];
    let mut previous = first;
    for d in later {
        let plan = diff(previous, d);
        steps.push(step(
            d.version,
            &changes::sql(name, previous, d, &plan).map_err(|e| unsupported(d.version, e))?,
        ));
        previous = d;
    }
    if current.version < previous.version || (current.version == previous.version && current != previous) {
        return Err(EntityPlanError::Version {
            extension: name.to_owned(),
            declared: current.version,
            applied: previous.version,
        });
    }
    if current.version > previous.version {
        let plan = diff(previous, current);
        let destructive: Vec<String> = plan
            .iter()
            .filter(|c| c.destructive)
            .map(|c| c.why.clone().unwrap_or_else(|| format!("{:?}", c.change)))
            .collect();
        if !destructive.is_empty() && !allow_destructive {
            return Err(EntityPlanError::Destructive {
                extension: name.to_owned(),
                version: current.version,
                changes: destructive,
            });
        }
        let sql =
            changes::sql(name, previous, current, &plan).map_err(|e| unsupported(current.version, e))?;
        steps.push(step(current.version, &sql));
    }
    Ok(steps)
}

/// Every migration step: the hand-written `written`, then those generated from `declaration`
/// and the declarations `applied` before it (see [`generated_steps`]).
pub(crate) fn steps(
    name: &str,
    written: &Migrations,
    declaration: Option<&Declaration>,
    applied: &[Declaration],
    allow_destructive: bool,
) -> Result<Migrations, EntityPlanError> {
    let mut all: Vec<Migration> = written.iter().cloned().collect();
    if let Some(d) = declaration {
        all.extend(generated_steps(name, d, applied, allow_destructive)?);
    }
    Ok(Migrations::new(all))
}

/// An extension's declaration, if it has one that parses (startup validation reports the rest).
pub(crate) fn declaration_of(extension: &dyn Extension) -> Option<Declaration> {
    extension.entities().and_then(|e| e.declaration().ok().cloned())
}

/// The steps as they are before anything is applied (the catalog's view, with no database).
pub(crate) fn migrations_of(
    name: &str,
    written: &Migrations,
    declaration: Option<&Declaration>,
) -> Migrations {
    steps(name, written, declaration, &[], false).unwrap_or_else(|_| written.clone())
}

/// What the role of `extension` needs on other extensions' tables for its declaration: the
/// targets of its cross-extension relations and enums, and the enums it adds values to.
pub(crate) fn foreign_grants(d: &Declaration) -> Vec<ForeignGrant> {
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

/// Why an extension's database could not be opened with its entities.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EntityOpenError {
    /// The declaration's steps could not be generated or are refused.
    #[error(transparent)]
    Plan(#[from] EntityPlanError),
    /// Schema, role, pool or a migration step failed.
    #[error(transparent)]
    Open(#[from] OpenError),
    /// `annex.entity_schemas` could not be read or written.
    #[error("the applied entity declarations: {0}")]
    Store(#[from] sqlx::Error),
}

/// What opening an extension's database needs beyond the extension's name.
#[derive(Debug)]
pub(crate) struct OpenSpec<'a> {
    /// The host's pool (for `annex.entity_schemas`).
    pub(crate) host_pool: &'a sqlx::PgPool,
    /// Hand-written steps.
    pub(crate) written: &'a Migrations,
    /// Its entity declaration.
    pub(crate) declaration: Option<&'a Declaration>,
    /// What it needs on other extensions' tables.
    pub(crate) grants: &'a [ForeignGrant],
    /// Pool size.
    pub(crate) size: u32,
    /// Apply a declaration change that can lose data.
    pub(crate) allow_destructive: bool,
}

/// Opens `name`'s database as [`extension_db::open`] does, with the generated steps of its
/// declaration diffed against the declarations already applied, and records the declaration
/// as applied once its step is. (Recorded after the ledger: if the process dies between the
/// two, the next start rebuilds the same step, finds it applied, and records it then.)
pub(crate) async fn open(
    isolator: &Isolator,
    name: &str,
    spec: &OpenSpec<'_>,
    progress: Progress<'_>,
) -> Result<(sqlx::PgPool, Vec<MigrationStep>), EntityOpenError> {
    let applied = match spec.declaration {
        Some(_) => store::applied(spec.host_pool, name).await?,
        None => Vec::new(),
    };
    let migrations = steps(name, spec.written, spec.declaration, &applied, spec.allow_destructive)?;
    let opened = extension_db::open(isolator, name, &migrations, spec.grants, spec.size, progress).await?;
    if let Some(d) = spec.declaration {
        store::record(spec.host_pool, name, d).await?;
    }
    Ok(opened)
}

/// The steps of `name` as the ledger knows them now, rebuilt from the declarations applied so
/// far (for a rollback, whose downs must be those of what was applied).
pub(crate) async fn applied_steps(
    host_pool: &sqlx::PgPool,
    name: &str,
    written: &Migrations,
    declaration: Option<&Declaration>,
) -> Result<Migrations, EntityOpenError> {
    let applied = match declaration {
        Some(_) => store::applied(host_pool, name).await?,
        None => Vec::new(),
    };
    let (newest, before) = match applied.split_last() {
        Some((last, rest)) => (Some(last), rest),
        None => (declaration, &[][..]),
    };
    Ok(steps(name, written, newest, before, true)?)
}

/// Every step as the ledger will hold it once the declaration in code is applied: applied
/// versions rebuilt from their stored declarations, then the step to the one in code (even a
/// destructive one). For reports; a declaration that cannot be applied shows the applied steps.
pub(crate) async fn current_steps(
    host_pool: &sqlx::PgPool,
    name: &str,
    written: &Migrations,
    declaration: Option<&Declaration>,
) -> Result<Migrations, EntityOpenError> {
    let applied = match declaration {
        Some(_) => store::applied(host_pool, name).await?,
        None => return Ok(written.clone()),
    };
    match steps(name, written, declaration, &applied, true) {
        Ok(all) => Ok(all),
        Err(_) => applied_steps(host_pool, name, written, declaration).await,
    }
}

/// What `annex entities plan` shows: the change from the newest applied declaration to the
/// one in code, and its SQL both ways.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EntityPlan {
    /// The extension.
    pub extension: String,
    /// The newest applied version, if any.
    pub applied_version: Option<u32>,
    /// The version in code.
    pub declared_version: u32,
    /// Each change, marked destructive or not.
    pub changes: Vec<annex_entities::PlannedChange>,
    /// The SQL that applies it.
    pub up: Vec<String>,
    /// The SQL that reverts it.
    pub down: Vec<String>,
}

/// The plan of `name` from what is applied to `declaration`.
pub(crate) async fn plan(
    host_pool: &sqlx::PgPool,
    name: &str,
    declaration: &Declaration,
) -> Result<EntityPlan, EntityOpenError> {
    let applied = store::applied(host_pool, name).await?;
    let (changes, sql) = match applied.last() {
        None => (Vec::new(), ddl::create(name, declaration)),
        Some(previous) => {
            let plan = diff(previous, declaration);
            let sql = changes::sql(name, previous, declaration, &plan).map_err(|e| {
                EntityPlanError::Unsupported {
                    extension: name.to_owned(),
                    version: declaration.version,
                    reason: e.0,
                }
            })?;
            (plan, sql)
        }
    };
    Ok(EntityPlan {
        extension: name.to_owned(),
        applied_version: applied.last().map(|d| d.version),
        declared_version: declaration.version,
        changes,
        up: sql.up,
        down: sql.down,
    })
}

/// After a rollback to ledger version `to`: forgets the declarations whose steps were undone.
pub(crate) async fn forget_undone(host_pool: &sqlx::PgPool, name: &str, to: i64) -> Result<(), sqlx::Error> {
    let kept = u32::try_from((to - ENTITY_BASE).max(0)).unwrap_or(0);
    store::forget_after(host_pool, name, kept).await
}
