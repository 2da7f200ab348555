//! The catalog: what each compiled-in extension declares (metadata, routes, hooks, config
//! schema, migrations), summarised once. The controller answers every "what is this extension?"
//! question from it, with or without a running host, so the CLI and the admin API agree.

use std::sync::Arc;

use axum::http::Method;
use serde::Serialize;

use super::Plan;
use crate::entities::migrations as entity_migrations;
use crate::extension::Extension;
use crate::extension::hooks::HookSpec;
use crate::extension::hooks::middleware::MiddlewareSpec;
use crate::extension::hooks::placement::resolve;
use crate::extension::metadata::Metadata;
use crate::extension::migrations::Migrations;
use crate::extension::registrar::{Registrar, RouteSpec};

/// One hook or middleware as declared (figures live with the running host).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeclaredHook {
    /// The hook point (`pre_request`, …) or `middleware`.
    pub point: String,
    /// Its id, unique per extension and point.
    pub id: String,
    /// Lower runs first.
    pub priority: i32,
    /// The path prefix it applies under; `None` for every extension route.
    pub prefix: Option<String>,
}

/// One compiled-in extension as declared.
#[derive(Clone)]
pub(crate) struct Declared {
    pub(crate) metadata: Metadata,
    /// `(method, path)` relative to `/ext/<name>`, in registration order.
    pub(crate) routes: Vec<(Method, String)>,
    pub(crate) hooks: Vec<DeclaredHook>,
    pub(crate) config_schema: Option<serde_json::Value>,
    /// Every step as it is before anything is applied (hand-written and generated).
    pub(crate) migrations: Migrations,
    /// The hand-written steps alone.
    pub(crate) written_migrations: Migrations,
    /// Its entity declaration, if it has one that parses.
    pub(crate) entities: Option<annex_entities::Declaration>,
    /// The pipeline stages it registered (their specs; the handlers live with the runtime).
    pub(crate) stages: Vec<crate::extension::stage::StageSpec>,
    /// What its entities need granted on other extensions' tables.
    pub(crate) foreign_grants: Vec<crate::db::isolation::ForeignGrant>,
}

impl Declared {
    /// What opening this extension's database needs: its written steps, its declaration and
    /// the grants it needs on other extensions' tables.
    pub(crate) fn open_spec<'a>(
        &'a self,
        host_pool: &'a sqlx::PgPool,
        size: u32,
        allow_destructive: bool,
    ) -> entity_migrations::OpenSpec<'a> {
        entity_migrations::OpenSpec {
            host_pool,
            written: &self.written_migrations,
            declaration: self.entities.as_ref(),
            grants: &self.foreign_grants,
            size,
            allow_destructive,
        }
    }
}

impl std::fmt::Debug for Declared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Declared").field("name", &self.metadata.name).finish_non_exhaustive()
    }
}

/// Every compiled-in extension's declarations, by name.
#[derive(Debug, Clone, Default)]
pub(crate) struct Catalog {
    entries: Vec<Declared>,
}

impl Catalog {
    /// Asks each extension for its metadata and registrations (cheap: nothing is started).
    pub(crate) fn new(extensions: &[Arc<dyn Extension>]) -> Self {
        let mut registered: Vec<(Metadata, Registrar, Option<crate::extension::Entities>)> = extensions
            .iter()
            .map(|e| {
                let metadata = e.metadata();
                let mut registrar = Registrar::new(&metadata.name);
                e.register(&mut registrar);
                (metadata, registrar, e.entities())
            })
            .collect();
        super::entity_routes::add(
            registered.iter_mut().map(|(m, r, e)| (m.name.as_str(), e.as_ref(), &mut r.routes)),
        );
        let entries = extensions
            .iter()
            .zip(registered)
            .map(|(e, (metadata, registrar, _))| {
                let mut d =
                    declare(&**e, metadata, &registrar.routes, &registrar.hooks, &registrar.middleware);
                d.stages = registrar.stages.iter().map(|s| s.spec.clone()).collect();
                d
            })
            .collect();
        Self::sorted(entries)
    }

    /// The catalog of a validated set, from what it already registered (a host's start asks
    /// each extension to register once).
    pub(crate) fn of_plan(plan: &Plan) -> Self {
        let entries = plan
            .extensions
            .iter()
            .map(|p| {
                let mut d = declare(&*p.extension, p.metadata.clone(), &p.routes, &p.hooks, &p.middleware);
                d.stages = p.stages.iter().map(|s| s.spec.clone()).collect();
                d
            })
            .collect();
        Self::sorted(entries)
    }

    fn sorted(mut entries: Vec<Declared>) -> Self {
        entries.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        Self { entries }
    }

    pub(crate) fn get(&self, name: &str) -> Option<&Declared> {
        self.entries.iter().find(|d| d.metadata.name == name)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Declared> {
        self.entries.iter()
    }

    /// Every extension's metadata, by name.
    pub(crate) fn metadata(&self) -> Vec<&Metadata> {
        self.entries.iter().map(|d| &d.metadata).collect()
    }
}

fn declare(
    extension: &dyn Extension,
    metadata: Metadata,
    routes: &[RouteSpec],
    hook_specs: &[HookSpec],
    middleware: &[MiddlewareSpec],
) -> Declared {
    let name = metadata.name.as_str();
    let hook = |point: &str, h: &crate::extension::hooks::Hook| DeclaredHook {
        point: point.to_owned(),
        id: h.id.clone(),
        priority: h.priority,
        prefix: resolve(h, name).0.map(|p| p.to_string()),
    };
    let mut hooks: Vec<DeclaredHook> = hook_specs.iter().map(|s| hook(s.point.as_str(), &s.hook)).collect();
    hooks.extend(middleware.iter().map(|m| hook("middleware", &m.hook)));
    // Asked once: an embedded declaration is parsed each time it is handed out.
    let (written, entities) = (extension.migrations(), entity_migrations::declaration_of(extension));
    Declared {
        routes: routes.iter().map(|r| (r.method.clone(), r.path.clone())).collect(),
        hooks,
        config_schema: extension.config_schema(),
        migrations: entity_migrations::migrations_of(&metadata.name, &written, entities.as_ref()),
        foreign_grants: entities.as_ref().map(entity_migrations::foreign_grants).unwrap_or_default(),
        written_migrations: written,
        entities,
        metadata,
        stages: Vec::new(),
    }
}
