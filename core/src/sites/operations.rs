//! [`Sites`]: every site operation, the one implementation the admin API and the CLI both call.
//! Each takes the [`Actor`] it runs as; the site-scoped ones take a [`Site`] found with
//! [`Sites::resolve`], which answers `unknown_site` for a site the actor may not see.

use serde_json::Value;
use sqlx::PgPool;

use super::activation::{self, Activation, Deactivation};
use super::compliance::{self, ComplianceReport};
use super::error::SiteError;
use super::report::Report;
use super::signoffs::{self, Signoff, SignoffList, SignoffRequest};
use super::snapshots::{self, Restore, Snapshot, SnapshotSummary};
use super::status::{self, Features, Providers, SiteStatus};
use super::store::{self, Site};
use super::trail::{self, Trail};
use super::validate::Candidate;
use crate::access::{Action, Actor, operators};
use crate::plan::catalog::Catalog;

/// The site operations over one database and one compiled-in set.
#[derive(Debug, Clone, Copy)]
pub struct Sites<'a> {
    pool: &'a PgPool,
    catalog: &'a Catalog,
    /// Who makes the changes (a replica, or the CLI): the origin of their outbox events.
    origin: &'a str,
}

impl<'a> Sites<'a> {
    pub(crate) fn new(pool: &'a PgPool, catalog: &'a Catalog, origin: &'a str) -> Self {
        Self { pool, catalog, origin }
    }

    /// The site `site` (slug or id) if `actor` may see it and do `action` there: 404
    /// `unknown_site` when it does not exist or they may not see it, 403 when they see it but
    /// may not do this.
    pub async fn resolve(&self, actor: &Actor, site: &str, action: Action) -> Result<Site, SiteError> {
        store::resolve(self.pool, actor, site, action).await
    }

    /// Creates a site (needs `Administer`).
    pub async fn create(&self, actor: &Actor, slug: &str, name: &str) -> Result<Site, SiteError> {
        actor.authorize(Action::Administer, None)?;
        store::create(self.pool, actor, slug, name).await
    }

    /// The sites `actor` may see.
    pub async fn list(&self, actor: &Actor) -> Result<Vec<Site>, SiteError> {
        store::list(self.pool, actor).await
    }

    /// Suspends or resumes a site (the caller resolved it with `Administer`).
    pub async fn set_suspended(
        &self,
        actor: &Actor,
        site: &Site,
        suspended: bool,
    ) -> Result<Site, SiteError> {
        store::set_suspended(self.pool, actor, site, suspended).await
    }

    /// Validates one extension's config at `site`; records detected conflicts, nothing else.
    pub async fn validate(&self, site: &Site, extension: &str, config: Value) -> Result<Report, SiteError> {
        self.validate_combination(site, vec![(extension.to_owned(), config)]).await
    }

    /// Validates a set of `(extension, config)` together against what else `site` runs.
    pub async fn validate_combination(
        &self,
        site: &Site,
        set: Vec<(String, Value)>,
    ) -> Result<Report, SiteError> {
        let candidates = activation::candidates(self.catalog, set)?;
        activation::validate(self.pool, self.catalog, site, &candidates).await
    }

    /// Activates `extension` with `config` at `site` (or re-activates it with a new config).
    pub async fn activate(
        &self,
        actor: &Actor,
        site: &Site,
        extension: &str,
        config: Value,
        reason: &str,
    ) -> Result<Activation, SiteError> {
        if self.catalog.get(extension).is_none() {
            return Err(SiteError::UnknownExtension(extension.to_owned()));
        }
        activation::activate(
            self.pool,
            self.catalog,
            self.origin,
            actor,
            site,
            Candidate::new(extension, config),
            reason,
        )
        .await
    }

    /// Deactivates `extension` at `site` (and, with `cascade`, what needs it).
    pub async fn deactivate(
        &self,
        actor: &Actor,
        site: &Site,
        extension: &str,
        cascade: bool,
        reason: &str,
    ) -> Result<Deactivation, SiteError> {
        activation::deactivate(self.pool, self.catalog, self.origin, actor, site, extension, cascade, reason)
            .await
    }

    /// Records a sign-off by the calling operator (`Actor::Operator` only).
    pub async fn sign(
        &self,
        actor: &Actor,
        site: &Site,
        extension: &str,
        request: &SignoffRequest,
    ) -> Result<Signoff, SiteError> {
        let operator = actor.operator().ok_or(SiteError::OperatorRequired)?;
        signoffs::sign(self.pool, self.catalog, self.origin, operator, site, extension, request).await
    }

    /// Records a sign-off by operator `username` (the CLI, which has the database's
    /// credentials: the password proves who signs).
    pub async fn sign_as(
        &self,
        username: &str,
        site: &Site,
        extension: &str,
        request: &SignoffRequest,
    ) -> Result<Signoff, SiteError> {
        let operator = operators::find(self.pool, username).await?;
        if !operator.may_act_on(site.id) {
            return Err(SiteError::UnknownSite(site.slug.clone()));
        }
        signoffs::sign(self.pool, self.catalog, self.origin, &operator, site, extension, request).await
    }

    /// The sign-offs of `extension` at `site`.
    pub async fn signoffs(&self, site: &Site, extension: &str) -> Result<SignoffList, SiteError> {
        signoffs::list(self.pool, self.catalog, site, extension).await
    }

    /// The active extensions of `site`.
    pub async fn features(&self, site: &Site) -> Result<Features, SiteError> {
        status::features(self.pool, self.catalog, site).await
    }

    /// Who provides `capability` at `site`.
    pub async fn capability(&self, site: &Site, capability: &str) -> Result<Providers, SiteError> {
        status::providers(self.pool, self.catalog, site, capability).await
    }

    /// Every compiled-in extension's state at `site`.
    pub async fn status(&self, site: &Site) -> Result<SiteStatus, SiteError> {
        status::status(self.pool, self.catalog, site).await
    }

    /// One page of the audit trail of `extension` at `site`.
    pub async fn trail(
        &self,
        site: &Site,
        extension: &str,
        before: Option<i64>,
        limit: i64,
    ) -> Result<Trail, SiteError> {
        if self.catalog.get(extension).is_none() {
            return Err(SiteError::UnknownExtension(extension.to_owned()));
        }
        trail::trail(self.pool, site, extension, before, limit).await
    }

    /// The compliance report of `site`.
    pub async fn compliance(&self, site: &Site) -> Result<ComplianceReport, SiteError> {
        compliance::report(self.pool, self.catalog, site).await
    }

    /// Takes a snapshot of `site`.
    pub async fn snapshot(&self, actor: &Actor, site: &Site, label: &str) -> Result<Snapshot, SiteError> {
        snapshots::take(self.pool, actor, site, label).await
    }

    /// The snapshots of `site`, newest first.
    pub async fn snapshots(&self, site: &Site) -> Result<Vec<SnapshotSummary>, SiteError> {
        snapshots::list(self.pool, site).await
    }

    /// One snapshot of `site`.
    pub async fn snapshot_of(&self, site: &Site, id: &str) -> Result<Snapshot, SiteError> {
        snapshots::get(self.pool, site, id).await
    }

    /// Restores snapshot `id` at `site`, all or nothing.
    pub async fn restore(
        &self,
        actor: &Actor,
        site: &Site,
        id: &str,
        reason: &str,
    ) -> Result<Restore, SiteError> {
        snapshots::restore(self.pool, self.catalog, self.origin, actor, site, id, reason).await
    }
}
