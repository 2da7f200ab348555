//! Sites (tenants): each site activates its own extensions with its own config, after
//! pre-activation validation and the compliance sign-offs its extensions require. The model and
//! a walk-through are in docs/sites.md; the tables in migrations/0007_sites.up.sql.
//!
//! | file | concept |
//! |---|---|
//! | `store.rs` | the sites themselves: create, list, find, suspend, lock |
//! | `site_extensions.rs` | an extension at a site: config, hash, state, proposal |
//! | `validate.rs` | pre-activation validation (pure) |
//! | `report.rs` | the one report shape |
//! | `conflicts.rs` | detected conflicts, with resolution tracking |
//! | `activation.rs` | activation and deactivation, one transaction each |
//! | `signoffs.rs` | compliance sign-offs |
//! | `status.rs` | features, capabilities, status |
//! | `compliance.rs`, `trail.rs`, `snapshots.rs` | reports and snapshots |
//! | `operations.rs` | [`Sites`], what the admin API and the CLI call |
//! | `gates.rs` | the request path's per-(site, extension) gates |

mod activation;
mod compliance;
mod conflicts;
mod error;
pub(crate) mod gates;
mod operations;
mod report;
mod signoffs;
mod site_extensions;
mod snapshots;
mod status;
mod store;
#[cfg(test)]
mod test_catalog;
mod trail;
mod validate;

pub use crate::config::canonical::config_hash;
pub use activation::{Activation, Deactivation};
pub use compliance::{ComplianceReport, ExtensionCompliance};
pub use conflicts::RecordedConflict;
pub use error::SiteError;
pub use operations::Sites;
pub use report::{Conflict, ConflictKind, Finding, MissingSignoff, Report, Validated};
pub use signoffs::{MEANINGS, RequiredSignoff, Signoff, SignoffList, SignoffRequest};
pub use site_extensions::SiteExtension;
pub use snapshots::{Restore, Snapshot, SnapshotSummary};
pub use status::{ExtensionStatus, Feature, Features, Provider, Providers, SiteStatus};
pub use store::{Site, valid_slug};
pub use trail::{MAX_LIMIT as TRAIL_MAX_LIMIT, Trail, TrailEntry};
