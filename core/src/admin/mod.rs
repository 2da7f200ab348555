//! Operating annex: the admin REST API (`/api/v1`), the console (`/admin/`) and [`Admin`], the CLI's connection to the
//! database. Both run every extension operation through the one [`Controller`] and answer with
//! the same documents ([`ExtensionDetails`], [`SwitchReport`], …).

pub(crate) mod api;
mod client;
pub(crate) mod console;
mod migrations;

pub use crate::db::migrate::{MigrationStep, StepAction};
pub use crate::db::store::HealthCheck;
pub use crate::entities::migrations::EntityPlan;
pub use crate::entities::store::AppliedDeclaration;
pub use crate::extension::gate::ExtensionState;
pub use crate::observe::audit::{BreakReason, BrokenLink, ChainVerdict};
pub use crate::pipelines::error::RegistryError;
pub use crate::pipelines::health::{BreakerState, HealthFigures};
pub use crate::pipelines::model::{
    BreakerSettings, NewStage, PipelineDef, PipelineInput, PipelineStages, ProviderRef, RetryPolicy,
    StageChange, StageDef, Transport, ValidatorRef,
};
pub use crate::pipelines::registry::Registry;
pub use crate::pipelines::snapshot::{RegistryStatus, ReloadError};
pub use crate::pipelines::store::StoredHealth;
pub use crate::plan::catalog::DeclaredHook;
pub use crate::plan::preflight::{Problem, preflight};
pub use crate::runtime::control_error::ControlError;
pub use crate::runtime::controller::Controller;
pub use crate::runtime::entity_views::{DeclarationCheck, EntitiesView};
pub use crate::runtime::views::{
    ConfigView, ExtensionDetails, ExtensionFigures, ExtensionSummary, HealthReport, MigrationInfo,
    Permissions, ReplicaFigures, Route, SiteDeclarations, SwitchReport,
};
pub use annex_entities::{Change, PlannedChange, Problem as DeclarationProblem};
pub use client::Admin;
pub use migrations::{ExtensionDbError, MigrationHistoryEntry, MigrationReport, MigrationStatus};
