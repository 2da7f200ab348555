//! Permissions: what an extension declares it needs ([`Metadata::permission`]), what the operator
//! grants (`[extensions.<name>] permissions`), and the checks at enable time and at use time.
//!
//! An extension needs every permission it declares, plus those its registrations imply:
//! event subscriptions need `events:subscribe`, `authentication`/`authorization` hooks need
//! `hooks:auth`, and hooks or middleware that reach beyond its own routes need `hooks:global`.
//! One ungranted need keeps it from enabling. Services check again when used, because an
//! extension may use a service it never declared.
//!
//! [`Metadata::permission`]: crate::Metadata::permission

use std::collections::BTreeSet;
use std::sync::Mutex;

use crate::observe::audit::{self, AuditEntry};

/// Permission to use the extension's own database pool.
pub const DATABASE: &str = "database";
/// Permission to use the storage directory through [`Context::storage`](crate::Context::storage).
pub const STORAGE: &str = "storage";
/// Permission to make outbound HTTP requests.
pub const HTTP_OUTBOUND: &str = "http:outbound";
/// Permission to publish events.
pub const EVENTS_PUBLISH: &str = "events:publish";
/// Permission to subscribe to events.
pub const EVENTS_SUBSCRIBE: &str = "events:subscribe";
/// Permission to register `authentication` and `authorization` hooks.
pub const HOOKS_AUTH: &str = "hooks:auth";
/// Permission to register hooks or middleware that see other extensions' requests.
pub const HOOKS_GLOBAL: &str = "hooks:global";

/// A service was used without the permission it needs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "extension `{extension}` needs permission `{permission}`; declare it in its Metadata and add it \
     to [extensions.{extension}] permissions in annex.toml"
)]
pub struct PermissionError {
    /// The extension.
    pub extension: String,
    /// The permission it lacks.
    pub permission: String,
}

/// One permission an extension needs, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Need {
    pub(crate) permission: String,
    pub(crate) why: String,
}

/// What the operator granted one extension.
#[derive(Debug)]
pub(crate) struct Grants {
    granted: BTreeSet<String>,
    everything: bool,
    /// Use-time denials already written to the audit log (one entry per permission per run).
    audited: Mutex<BTreeSet<String>>,
}

impl Grants {
    pub(crate) fn new(granted: &[String]) -> Self {
        Self { granted: granted.iter().cloned().collect(), everything: false, audited: Mutex::default() }
    }

    /// Everything granted: for [`Context::new_test`](crate::Context::new_test).
    pub(crate) fn all() -> Self {
        Self { granted: BTreeSet::new(), everything: true, audited: Mutex::default() }
    }

    pub(crate) fn has(&self, permission: &str) -> bool {
        self.everything || self.granted.contains(permission)
    }

    /// Whether this is the first denial of `permission` this run (and marks it).
    fn first_denial(&self, permission: &str) -> bool {
        self.audited.lock().unwrap_or_else(|p| p.into_inner()).insert(permission.to_owned())
    }
}

/// The enable-time check: every need granted, else a message naming the first missing
/// permission, why it is needed and the config line that grants it.
pub(crate) fn check_needs(extension: &str, needs: &[Need], grants: &Grants) -> Result<(), (String, String)> {
    let Some(first) = needs.iter().find(|n| !grants.has(&n.permission)) else { return Ok(()) };
    let all: BTreeSet<&str> = needs
        .iter()
        .map(|n| n.permission.as_str())
        .chain(grants.granted.iter().map(String::as_str))
        .collect();
    let line = all.iter().map(|p| format!("\"{p}\"")).collect::<Vec<_>>().join(", ");
    let message = format!(
        "extension `{extension}` needs permission `{}` ({}), which is not granted; add it to \
         [extensions.{extension}] in annex.toml: permissions = [{line}]",
        first.permission, first.why
    );
    Err((first.permission.clone(), message))
}

/// The use-time check. A denial is logged every time and written to the audit log the first
/// time per permission, so a misbehaving loop cannot flood the log.
pub(crate) fn require(
    extension: &str,
    permission: &str,
    grants: &Grants,
    pool: Option<&sqlx::PgPool>,
) -> Result<(), PermissionError> {
    if grants.has(permission) {
        return Ok(());
    }
    let err = PermissionError { extension: extension.to_owned(), permission: permission.to_owned() };
    tracing::warn!(extension, permission, "permission denied: {err}");
    if let (Some(pool), true) = (pool, grants.first_denial(permission))
        && let Ok(rt) = tokio::runtime::Handle::try_current()
    {
        let entry = AuditEntry::new("host", "permission.denied", extension)
            .details(serde_json::json!({ "permission": permission, "at": "use" }));
        let pool = pool.clone();
        rt.spawn(async move { audit::record_or_log(&pool, entry).await });
    }
    Err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_enable_check_names_the_permission_and_the_config_line() {
        let grants = Grants::new(&["database".to_owned()]);
        let needs = vec![
            Need { permission: DATABASE.into(), why: "declared in its metadata".into() },
            Need { permission: EVENTS_SUBSCRIBE.into(), why: "it subscribes to `extension.*`".into() },
        ];
        let (permission, message) = check_needs("shop", &needs, &grants).expect_err("missing");
        assert_eq!(permission, "events:subscribe");
        assert!(message.contains("[extensions.shop]"), "{message}");
        assert!(message.contains(r#"permissions = ["database", "events:subscribe"]"#), "{message}");
        assert!(check_needs("shop", &needs[..1], &grants).is_ok());
    }
}
