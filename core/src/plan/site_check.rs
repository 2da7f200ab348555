//! Startup checks of what an extension declares for sites: capabilities (`provides`,
//! `requires_capability`), `conflicts_with` and `signoff`. Only well-formedness is checked
//! here; whether a site's combination fits is pre-activation validation (`sites/`).

use std::collections::{BTreeMap, BTreeSet};

use super::PlanError;
use crate::extension::metadata::Metadata;

/// Capability, aspect and role names: `^[a-z][a-z0-9-]{0,62}$`.
pub(crate) fn valid_label(label: &str) -> bool {
    let mut chars = label.chars();
    matches!(chars.next(), Some('a'..='z'))
        && label.len() <= 63
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '-'))
}

const LABEL_RULE: &str = "use 1 to 63 characters, a lowercase letter then lowercase letters, digits or `-`";

pub(super) fn check(m: &Metadata, errors: &mut Vec<PlanError>) {
    let capability = |capability: &str, reason: String| PlanError::InvalidCapability {
        extension: m.name.clone(),
        capability: capability.to_owned(),
        reason,
    };
    let mut provided = BTreeSet::new();
    for c in &m.provides {
        if !valid_label(&c.name) {
            errors.push(capability(&c.name, LABEL_RULE.into()));
        }
        if let Err(e) = semver::Version::parse(&c.version) {
            errors.push(capability(&c.name, format!("version `{}` is not semver ({e})", c.version)));
        }
        if !provided.insert(c.name.as_str()) {
            errors.push(capability(&c.name, "it is provided twice; declare each capability once".into()));
        }
    }
    let mut required = BTreeSet::new();
    for r in &m.requires_capabilities {
        if !valid_label(&r.name) {
            errors.push(capability(&r.name, LABEL_RULE.into()));
        }
        if let Err(e) = semver::VersionReq::parse(&r.requirement) {
            errors.push(capability(
                &r.name,
                format!("requirement `{}` is not a semver requirement ({e})", r.requirement),
            ));
        }
        if provided.contains(r.name.as_str()) {
            errors.push(capability(&r.name, "the extension both provides and requires it".into()));
        }
        if !required.insert(r.name.as_str()) {
            errors.push(capability(&r.name, "it is required twice; declare each requirement once".into()));
        }
    }
    for other in &m.conflicts_with {
        let invalid = |reason: &str| PlanError::InvalidConflict {
            extension: m.name.clone(),
            other: other.clone(),
            reason: reason.to_owned(),
        };
        if other == &m.name {
            errors.push(invalid("an extension cannot conflict with itself"));
        } else if !super::valid_name(other) {
            errors.push(invalid("it is not a valid extension name"));
        } else if m.dependencies.iter().any(|d| &d.name == other) {
            errors.push(invalid("the extension also depends on it"));
        }
    }
    let mut aspects = BTreeSet::new();
    for s in &m.signoffs {
        let invalid = |reason: String| PlanError::InvalidSignoff {
            extension: m.name.clone(),
            aspect: s.aspect.clone(),
            reason,
        };
        if !valid_label(&s.aspect) {
            errors.push(invalid(format!("aspect names: {LABEL_RULE}")));
        }
        if !aspects.insert(s.aspect.as_str()) {
            errors.push(invalid("the aspect is declared twice; list every role in one signoff()".into()));
        }
        if s.roles.is_empty() {
            errors.push(invalid("it names no role; name the role whose holder must sign".into()));
        }
        let mut roles = BTreeSet::new();
        for role in &s.roles {
            if !valid_label(role) {
                errors.push(invalid(format!("role `{role}` is invalid: {LABEL_RULE}")));
            }
            if !roles.insert(role.as_str()) {
                errors.push(invalid(format!("role `{role}` is listed twice")));
            }
        }
    }
}

/// A capability is an exclusive slot for every extension providing it, or for none.
pub(super) fn check_exclusive_agreement<'a>(
    all: impl Iterator<Item = &'a Metadata>,
    errors: &mut Vec<PlanError>,
) {
    let mut by_capability: BTreeMap<&str, Vec<(&str, bool)>> = BTreeMap::new();
    for m in all {
        for c in &m.provides {
            by_capability.entry(&c.name).or_default().push((&m.name, c.exclusive));
        }
    }
    for (capability, providers) in by_capability {
        let exclusive: Vec<&str> = providers.iter().filter(|(_, e)| *e).map(|(n, _)| *n).collect();
        if exclusive.is_empty() || exclusive.len() == providers.len() {
            continue;
        }
        for (name, _) in providers.iter().filter(|(_, e)| !*e) {
            errors.push(PlanError::InvalidCapability {
                extension: (*name).to_owned(),
                capability: capability.to_owned(),
                reason: format!(
                    "`{}` provides it as an exclusive slot; declare it with provides_exclusive here too",
                    exclusive.join("`, `")
                ),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors_of(m: Metadata) -> Vec<String> {
        let mut errors = Vec::new();
        check(&m, &mut errors);
        errors.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn well_formed_declarations_pass() {
        let m = Metadata::new("orders", "1.0.0")
            .provides_exclusive("work-orders", "1.2.0")
            .requires_capability("scheduling", "^1")
            .conflicts_with("legacy")
            .signoff("electronic-signature-validation", ["quality-focal", "quality-manager"]);
        assert_eq!(errors_of(m), Vec::<String>::new());
    }

    #[test]
    fn each_malformed_declaration_is_named() {
        let m = Metadata::new("orders", "1.0.0")
            .provides("Work Orders", "1")
            .provides("dup", "1.0.0")
            .provides("dup", "1.0.0")
            .requires_capability("sched", "not a req")
            .conflicts_with("orders")
            .conflicts_with("Bad")
            .signoff("esv", Vec::<String>::new())
            .signoff("esv2", ["qa", "qa"]);
        let errors = errors_of(m).join("\n");
        for needle in [
            "capability `Work Orders`, which is invalid: use 1 to 63",
            "version `1` is not semver",
            "capability `dup`, which is invalid: it is provided twice",
            "requirement `not a req` is not a semver requirement",
            "conflict with `orders`, which is invalid: an extension cannot conflict with itself",
            "conflict with `Bad`, which is invalid: it is not a valid extension name",
            "aspect `esv`, which is invalid: it names no role",
            "role `qa` is listed twice",
        ] {
            assert!(errors.contains(needle), "missing `{needle}` in:\n{errors}");
        }
    }

    #[test]
    fn an_exclusive_slot_must_be_exclusive_for_every_provider() {
        let a = Metadata::new("a", "1.0.0").provides_exclusive("printer", "1.0.0");
        let b = Metadata::new("b", "1.0.0").provides("printer", "1.0.0");
        let mut errors = Vec::new();
        check_exclusive_agreement([&a, &b].into_iter(), &mut errors);
        assert_eq!(errors.len(), 1);
        assert!(errors[0].to_string().contains("`b` declares capability `printer`"), "{}", errors[0]);
    }
}
