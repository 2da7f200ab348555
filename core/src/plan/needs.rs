//! The permissions an extension needs: what it declares plus what its registrations imply.

use super::Planned;
use crate::extension::hooks::HookPoint;
use crate::extension::hooks::placement::resolve;
use crate::extension::permissions::{EVENTS_SUBSCRIBE, HOOKS_AUTH, HOOKS_GLOBAL, Need};

/// Everything `planned` needs: what it declares plus what its registrations imply.
pub(crate) fn needs_of(planned: &Planned) -> Vec<Need> {
    let name = planned.metadata.name.as_str();
    let mut needs: Vec<Need> = Vec::new();
    let mut add = |permission: &str, why: String| {
        if !needs.iter().any(|n| n.permission == permission) {
            needs.push(Need { permission: permission.to_owned(), why });
        }
    };
    for declared in &planned.metadata.permissions {
        add(declared, "declared in its metadata".into());
    }
    let patterns = planned.subscriptions.iter().map(|(p, _)| p).chain(planned.durable.iter().map(|(p, _)| p));
    if let Some(pattern) = patterns.into_iter().next() {
        add(EVENTS_SUBSCRIBE, format!("it subscribes to `{pattern}`"));
    }
    for spec in &planned.hooks {
        if matches!(spec.point, HookPoint::Authentication | HookPoint::Authorization) {
            add(HOOKS_AUTH, format!("it registers the {} hook `{}`", spec.point, spec.hook.id));
        }
        if resolve(&spec.hook, name).1 {
            add(
                HOOKS_GLOBAL,
                format!("its {} hook `{}` sees other extensions' requests", spec.point, spec.hook.id),
            );
        }
    }
    for spec in &planned.middleware {
        if resolve(&spec.hook, name).1 {
            add(HOOKS_GLOBAL, format!("its middleware `{}` sees other extensions' requests", spec.hook.id));
        }
    }
    needs
}
