//! Startup validation of hooks and middleware declarations.

use super::PlanError;
use crate::extension::hooks::{Hook, Scope};

/// Startup validation of one extension's hooks and middleware: ids present and unique per
/// point, prefixes absolute.
pub(crate) fn check<'a>(
    extension: &str,
    hooks: impl Iterator<Item = (&'a str, &'a Hook)>,
    errors: &mut Vec<PlanError>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for (point, hook) in hooks {
        let reason = if hook.id.is_empty() {
            Some("the id is empty".to_owned())
        } else if !seen.insert((point, hook.id.as_str())) {
            Some(format!("the id is used twice for {point}; give each its own id"))
        } else if let Scope::Prefix(p) = &hook.scope {
            (!p.starts_with('/'))
                .then(|| format!("prefix `{p}` must be an absolute path such as `/ext/name`"))
        } else {
            None
        };
        if let Some(reason) = reason {
            errors.push(PlanError::InvalidHook {
                extension: extension.to_owned(),
                point: point.to_owned(),
                id: hook.id.clone(),
                reason,
            });
        }
    }
}
