//! Pre-activation validation: a set of candidates (extension, config) checked against what else
//! the site runs. Pure: the rows and sign-offs are loaded by the caller, so the same check serves
//! `validate`, `validate-combination`, activation, restore and the site's status.
//!
//! Checks, each entry naming the thing and the fix: the config against the extension's JSON
//! Schema (errors, by JSON pointer); extension dependencies and required capabilities active at
//! the site or in the combination (`dependency` conflicts), in a version the requirement accepts
//! (`version` conflicts); `conflicts_with` in either direction (`explicit`); two providers of an
//! exclusive capability (`exclusive_slot`); and every required (aspect, role) sign-off given for
//! the config's hash.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::report::{Conflict, ConflictKind, Finding, MissingSignoff, Report, Validated};
use crate::config::canonical::config_hash;
use crate::config::schema::check_extension_config;
use crate::extension::json::unstorable;
use crate::extension::metadata::Metadata;
use crate::plan::catalog::Catalog;

/// An extension proposed for activation, with its config.
#[derive(Debug, Clone)]
pub(crate) struct Candidate {
    pub(crate) name: String,
    pub(crate) config: Value,
    pub(crate) hash: String,
}

impl Candidate {
    pub(crate) fn new(name: impl Into<String>, config: Value) -> Self {
        let hash = config_hash(&config);
        Self { name: name.into(), config, hash }
    }
}

/// An extension active at the site (and not among the candidates).
#[derive(Debug, Clone)]
pub(crate) struct Running {
    pub(crate) name: String,
    /// The version it was activated in.
    pub(crate) version: String,
}

/// `(extension, config_hash, aspect, role)` of every sign-off given.
pub(crate) type Signed = BTreeSet<(String, String, String, String)>;

/// What to check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Checks {
    /// Check configs against their schemas (the status of active extensions skips it: they
    /// were checked when activated).
    pub(crate) config: bool,
}

/// One member of the set the site would run: its version and what it provides.
struct Member<'a> {
    version: String,
    metadata: Option<&'a Metadata>,
    candidate: bool,
}

/// Checks `candidates` (compiled-in names, each once) against `running` at site `site`.
pub(crate) fn check(
    catalog: &Catalog,
    site: &str,
    running: &[Running],
    candidates: &[Candidate],
    signed: &Signed,
    checks: Checks,
) -> Report {
    let mut world: BTreeMap<&str, Member<'_>> = BTreeMap::new();
    for r in running {
        let metadata = catalog.get(&r.name).map(|d| &d.metadata);
        world.insert(&r.name, Member { version: r.version.clone(), metadata, candidate: false });
    }
    for c in candidates {
        let metadata = catalog.get(&c.name).map(|d| &d.metadata);
        let version = metadata.map(|m| m.version.clone()).unwrap_or_default();
        world.insert(&c.name, Member { version, metadata, candidate: true });
    }
    let mut report = Report {
        config_hash: candidates.first().map(|c| c.hash.clone()).unwrap_or_default(),
        ..Report::default()
    };
    let place = |m: &Member<'_>| {
        if m.candidate {
            format!("in the same combination for site `{site}`")
        } else {
            format!("active at site `{site}`")
        }
    };
    for c in candidates {
        report.extensions.push(Validated { name: c.name.clone(), config_hash: c.hash.clone() });
        let Some(declared) = catalog.get(&c.name) else { continue };
        let m = &declared.metadata;
        if checks.config {
            let mut problems = unstorable(&c.config);
            if let Err(errors) = check_extension_config(declared.config_schema.as_ref(), &c.config) {
                problems.extend(errors);
            }
            for p in problems {
                let at =
                    if p.pointer.is_empty() { "the config".to_owned() } else { format!("`{}`", p.pointer) };
                report.errors.push(Finding {
                    code: "invalid_config".into(),
                    message: format!(
                        "config of extension `{}` at {at}: {}; fix the value (`GET /api/v1/extensions/{}` shows the schema)",
                        c.name, p.message, c.name
                    ),
                    extension: c.name.clone(),
                    pointer: Some(p.pointer),
                });
            }
        }
        let conflict = |code: &str, kind: ConflictKind, other: &str, message: String| Conflict {
            code: code.to_owned(),
            kind,
            extension: c.name.clone(),
            other: other.to_owned(),
            message,
        };
        for d in &m.dependencies {
            match world.get(d.name.as_str()) {
                None => report.conflicts.push(conflict(
                    "missing_dependency",
                    ConflictKind::Dependency,
                    &d.name,
                    format!(
                        "extension `{}` depends on `{}` ({}), which is not active at site `{site}`; activate `{}` \
                         first, or validate and activate both together (validate-combination)",
                        c.name, d.name, d.requirement, d.name
                    ),
                )),
                Some(member) if !matches(&d.requirement, &member.version) => report.conflicts.push(conflict(
                    "dependency_version",
                    ConflictKind::Version,
                    &d.name,
                    format!(
                        "extension `{}` needs `{}` {}, but version {} is {}; activate a version of `{}` \
                         that matches {}",
                        c.name,
                        d.name,
                        d.requirement,
                        member.version,
                        place(member),
                        d.name,
                        d.requirement
                    ),
                )),
                Some(_) => {}
            }
        }
        for r in &m.requires_capabilities {
            let providers: Vec<(&str, &str)> = world
                .iter()
                .filter(|(name, _)| **name != c.name)
                .filter_map(|(name, member)| {
                    let cap = member.metadata?.provides.iter().find(|p| p.name == r.name)?;
                    Some((*name, cap.version.as_str()))
                })
                .collect();
            if providers.is_empty() {
                let compiled: Vec<String> = catalog
                    .iter()
                    .filter(|d| d.metadata.provides.iter().any(|p| p.name == r.name))
                    .map(|d| format!("`{}`", d.metadata.name))
                    .collect();
                let hint = if compiled.is_empty() {
                    "no compiled-in extension provides it".to_owned()
                } else {
                    format!("{} provides it", compiled.join(", "))
                };
                report.conflicts.push(conflict(
                    "missing_capability",
                    ConflictKind::Dependency,
                    &r.name,
                    format!(
                        "extension `{}` needs capability `{}` ({}), which no extension active at site `{site}` \
                         provides ({hint}); activate a provider first, or validate and activate them together",
                        c.name, r.name, r.requirement
                    ),
                ));
            } else if !providers.iter().any(|(_, v)| matches(&r.requirement, v)) {
                for (provider, version) in providers {
                    report.conflicts.push(conflict(
                        "capability_version",
                        ConflictKind::Version,
                        provider,
                        format!(
                            "extension `{}` needs capability `{}` {}, but `{provider}` provides version {version}; \
                             activate a provider whose `{}` matches {}",
                            c.name, r.name, r.requirement, r.name, r.requirement
                        ),
                    ));
                }
            }
        }
        for (other, member) in &world {
            if *other == c.name {
                continue;
            }
            let ours = m.conflicts_with.iter().any(|x| x == other);
            let theirs = member.metadata.is_some_and(|om| om.conflicts_with.contains(&c.name));
            if ours || theirs {
                let declared_by = if ours { &c.name } else { *other };
                report.conflicts.push(conflict(
                    "conflicts_with",
                    ConflictKind::Explicit,
                    other,
                    format!(
                        "extension `{}` conflicts with `{other}` (declared by `{declared_by}`), which is {}; \
                         deactivate `{other}` first, or do not activate `{}` at this site",
                        c.name,
                        place(member),
                        c.name
                    ),
                ));
            }
            for cap in m.provides.iter().filter(|p| p.exclusive) {
                let also = member.metadata.is_some_and(|om| om.provides.iter().any(|p| p.name == cap.name));
                if also {
                    report.conflicts.push(conflict(
                        "exclusive_slot",
                        ConflictKind::ExclusiveSlot,
                        other,
                        format!(
                            "extensions `{}` and `{other}` both provide capability `{}`, an exclusive slot only one \
                             extension per site may fill, and `{other}` is {}; deactivate `{other}` first, \
                             or keep it and do not activate `{}`",
                            c.name,
                            cap.name,
                            place(member),
                            c.name
                        ),
                    ));
                }
            }
        }
        for s in &m.signoffs {
            for role in &s.roles {
                let key = (c.name.clone(), c.hash.clone(), s.aspect.clone(), role.clone());
                if !signed.contains(&key) {
                    report.missing_signoffs.push(MissingSignoff {
                        code: "missing_signoff".into(),
                        extension: c.name.clone(),
                        aspect: s.aspect.clone(),
                        role: role.clone(),
                        config_hash: c.hash.clone(),
                        message: format!(
                            "extension `{}` needs a sign-off of aspect `{}` by role `{role}` for config hash `{}`; an \
                             operator holding `{role}` signs it (POST /api/v1/sites/{site}/extensions/{}/signoffs, or \
                             `annex sites signoff`)",
                            c.name, s.aspect, c.hash, c.name
                        ),
                    });
                }
            }
        }
    }
    for r in running {
        if catalog.get(&r.name).is_none() {
            report.warnings.push(Finding {
                code: "not_compiled_in".into(),
                message: format!(
                    "extension `{}` is active at site `{site}` but not compiled into this binary; its capabilities \
                     and conflicts are unknown: deactivate it or build with it",
                    r.name
                ),
                extension: r.name.clone(),
                pointer: None,
            });
        }
    }
    report.finish()
}

fn matches(requirement: &str, version: &str) -> bool {
    match (semver::VersionReq::parse(requirement), semver::Version::parse(version)) {
        (Ok(req), Ok(v)) => req.matches(&v),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::sites::test_catalog::catalog;

    fn running(name: &str, version: &str) -> Running {
        Running { name: name.into(), version: version.into() }
    }

    const ALL: Checks = Checks { config: true };

    #[test]
    fn a_missing_capability_names_the_providers_compiled_in() {
        let c = catalog(vec![
            Metadata::new("orders", "1.0.0").requires_capability("printing", "^1"),
            Metadata::new("printer", "1.0.0").provides("printing", "1.4.0"),
        ]);
        let r = check(&c, "plant", &[], &[Candidate::new("orders", json!({}))], &Signed::new(), ALL);
        assert!(!r.valid);
        assert_eq!(r.conflicts[0].code, "missing_capability");
        assert!(r.conflicts[0].message.contains("`printer` provides it"), "{}", r.conflicts[0].message);
        let ok = check(
            &c,
            "plant",
            &[running("printer", "1.0.0")],
            &[Candidate::new("orders", json!({}))],
            &Signed::new(),
            ALL,
        );
        assert!(ok.valid, "{ok:?}");
    }

    #[test]
    fn conflicts_are_seen_from_either_side_and_in_exclusive_slots() {
        let c = catalog(vec![
            Metadata::new("a", "1.0.0").conflicts_with("b").provides_exclusive("slot", "1.0.0"),
            Metadata::new("b", "1.0.0"),
            Metadata::new("c", "1.0.0").provides_exclusive("slot", "1.0.0"),
        ]);
        let r =
            check(&c, "s", &[running("a", "1.0.0")], &[Candidate::new("b", json!({}))], &Signed::new(), ALL);
        assert_eq!(r.conflicts.len(), 1);
        assert_eq!(r.conflicts[0].kind, ConflictKind::Explicit);
        assert!(r.conflicts[0].message.contains("declared by `a`"));
        let r =
            check(&c, "s", &[running("a", "1.0.0")], &[Candidate::new("c", json!({}))], &Signed::new(), ALL);
        assert_eq!(r.conflicts[0].kind, ConflictKind::ExclusiveSlot);
    }

    #[test]
    fn a_version_outside_the_range_is_a_version_conflict() {
        let c = catalog(vec![
            Metadata::new("orders", "1.0.0").requires_capability("printing", "^2"),
            Metadata::new("printer", "1.0.0").provides("printing", "1.4.0"),
        ]);
        let r = check(
            &c,
            "s",
            &[running("printer", "1.0.0")],
            &[Candidate::new("orders", json!({}))],
            &Signed::new(),
            ALL,
        );
        assert_eq!(r.conflicts[0].code, "capability_version");
        assert!(r.conflicts[0].message.contains("provides version 1.4.0"));
    }

    #[test]
    fn sign_offs_count_only_for_their_hash() {
        let c = catalog(vec![Metadata::new("esig", "1.0.0").signoff("esv", ["quality-focal"])]);
        let cand = Candidate::new("esig", json!({"a": 1}));
        let mut signed = Signed::new();
        signed.insert(("esig".into(), config_hash(&json!({"a": 2})), "esv".into(), "quality-focal".into()));
        let r = check(&c, "s", &[], std::slice::from_ref(&cand), &signed, ALL);
        assert_eq!(r.missing_signoffs.len(), 1);
        signed.insert(("esig".into(), cand.hash.clone(), "esv".into(), "quality-focal".into()));
        assert!(check(&c, "s", &[], &[cand], &signed, ALL).valid);
    }
}
