//! Startup validation of the compiled-in set and its start order.
//!
//! Everything here is pure: names, versions, dependencies, cycles and route conflicts are found
//! before any database or socket is touched, and every problem is reported at once.

pub(crate) mod catalog;
pub(crate) mod dependents;
mod entity_check;
pub(crate) mod entity_routes;
mod hook_check;
mod needs;
pub(crate) mod preflight;
mod site_check;

pub(crate) use needs::needs_of;
pub(crate) use site_check::valid_label;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::extension::Extension;
use crate::extension::metadata::Metadata;
use crate::extension::registrar::{Registrar, RouteSpec};

/// One problem with the compiled-in set of extensions.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A name that does not match `^[a-z][a-z0-9_]{0,39}$`.
    #[error(
        "extension name `{name}` is invalid: use 1 to 40 characters, a lowercase letter then \
         lowercase letters, digits or `_`"
    )]
    InvalidName {
        /// The offending name.
        name: String,
    },
    /// Two extensions with one name.
    #[error("extension name `{name}` is registered {count} times; names must be unique")]
    DuplicateName {
        /// The duplicated name.
        name: String,
        /// How many registered it.
        count: usize,
    },
    /// A version that is not semver.
    #[error("extension `{extension}` has version `{version}`, which is not semver ({reason})")]
    InvalidVersion {
        /// The extension.
        extension: String,
        /// Its version string.
        version: String,
        /// What the semver parser said.
        reason: String,
    },
    /// A dependency requirement that is not a semver requirement.
    #[error(
        "extension `{extension}` depends on `{dependency}` with requirement `{requirement}`, \
         which is not a semver requirement ({reason})"
    )]
    InvalidRequirement {
        /// The dependent extension.
        extension: String,
        /// The dependency.
        dependency: String,
        /// The requirement string.
        requirement: String,
        /// What the semver parser said.
        reason: String,
    },
    /// A dependency that is not compiled in.
    #[error(
        "extension `{extension}` depends on `{dependency}` ({requirement}), which is not compiled \
         in: enable its Cargo feature `ext-{dependency}` or remove the dependency"
    )]
    MissingDependency {
        /// The dependent extension.
        extension: String,
        /// The missing dependency.
        dependency: String,
        /// The requirement.
        requirement: String,
    },
    /// A dependency whose version does not satisfy the requirement.
    #[error(
        "extension `{extension}` needs `{dependency}` {requirement}, but version {found} is \
         compiled in"
    )]
    IncompatibleDependency {
        /// The dependent extension.
        extension: String,
        /// The dependency.
        dependency: String,
        /// The requirement.
        requirement: String,
        /// The version compiled in.
        found: String,
    },
    /// Extensions that depend on each other in a loop.
    #[error("dependency cycle: {}", .cycle.join(" -> "))]
    DependencyCycle {
        /// The loop, first name repeated at the end.
        cycle: Vec<String>,
    },
    /// The same method and path claimed twice.
    #[error("route conflict: {method} {route} is claimed by `{first}` and again by `{second}`")]
    RouteConflict {
        /// The HTTP method.
        method: String,
        /// The full route template, under `/ext/<name>`.
        route: String,
        /// The extension that claimed it first.
        first: String,
        /// The extension that claimed it again.
        second: String,
    },
    /// A hook or middleware with an empty or duplicate id, or a prefix that is not a path.
    #[error("extension `{extension}` registers {point} `{id}`, which is invalid: {reason}")]
    InvalidHook {
        /// The extension.
        extension: String,
        /// The hook point, or `middleware`.
        point: String,
        /// The hook's id.
        id: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A capability (provided or required) that is malformed.
    #[error("extension `{extension}` declares capability `{capability}`, which is invalid: {reason}")]
    InvalidCapability {
        /// The extension.
        extension: String,
        /// The capability's name as declared.
        capability: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A `conflicts_with` that names itself or is not an extension name.
    #[error("extension `{extension}` declares a conflict with `{other}`, which is invalid: {reason}")]
    InvalidConflict {
        /// The extension.
        extension: String,
        /// The name it conflicts with.
        other: String,
        /// Why it is invalid.
        reason: String,
    },
    /// A sign-off requirement that is malformed.
    #[error("extension `{extension}` requires a sign-off of aspect `{aspect}`, which is invalid: {reason}")]
    InvalidSignoff {
        /// The extension.
        extension: String,
        /// The aspect as declared.
        aspect: String,
        /// Why it is invalid.
        reason: String,
    },
    /// An entity declaration that does not parse or has problems.
    #[error("extension `{extension}` declares entities ({source_file}) with problems:\n  {}", .problems.join("\n  "))]
    InvalidEntities {
        /// The extension.
        extension: String,
        /// The declaration's file.
        source_file: String,
        /// Each problem: `<JSON pointer>: <message>`, or the parse error.
        problems: Vec<String>,
    },
    /// A pipeline stage with an invalid or repeated name, or an invalid config schema.
    #[error("extension `{extension}` registers stage `{stage}`, which is invalid: {reason}")]
    InvalidStage {
        /// The extension.
        extension: String,
        /// The stage's name.
        stage: String,
        /// Why.
        reason: String,
    },
    /// A route the router cannot serve.
    #[error("extension `{extension}` declares route {method} {path}, which is invalid: {reason}")]
    InvalidRoute {
        /// The extension.
        extension: String,
        /// The method.
        method: String,
        /// The path as declared.
        path: String,
        /// Why it is invalid.
        reason: String,
    },
}

/// Every problem found in the compiled-in set, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanErrors(pub Vec<PlanError>);

impl fmt::Display for PlanErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_slice() {
            [one] => write!(f, "{one}"),
            many => {
                write!(f, "{} problems with the compiled-in extensions:", many.len())?;
                for e in many {
                    write!(f, "\n  - {e}")?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for PlanErrors {}

/// An extension that passed validation, with what it registered.
pub(crate) struct Planned {
    pub(crate) extension: Arc<dyn Extension>,
    pub(crate) metadata: Metadata,
    pub(crate) routes: Vec<RouteSpec>,
    pub(crate) subscriptions: Vec<(String, crate::extension::registrar::EventHandler)>,
    pub(crate) durable: Vec<(String, crate::extension::registrar::DurableHandler)>,
    pub(crate) hooks: Vec<crate::extension::hooks::HookSpec>,
    pub(crate) middleware: Vec<crate::extension::hooks::middleware::MiddlewareSpec>,
    pub(crate) entities: Option<crate::extension::Entities>,
    pub(crate) stages: Vec<crate::extension::stage::StageRegistration>,
}

/// The validated set, in start order (dependencies first; ties by name).
pub(crate) struct Plan {
    pub(crate) extensions: Vec<Planned>,
}

/// Checks a set of extensions without starting anything. Returns every problem found.
///
/// ```
/// use annex_core::{Extension, Metadata, host::validate};
/// use std::sync::Arc;
///
/// struct Bad;
/// #[annex_core::async_trait]
/// impl Extension for Bad {
///     fn metadata(&self) -> Metadata { Metadata::new("Bad-Name", "1.0") }
/// }
/// let errors = validate(vec![Arc::new(Bad)]).unwrap_err();
/// assert_eq!(errors.0.len(), 2); // the name and the version
/// ```
pub fn validate(extensions: Vec<Arc<dyn Extension>>) -> Result<Vec<String>, PlanErrors> {
    Plan::new(extensions).map(|p| p.extensions.into_iter().map(|e| e.metadata.name).collect())
}

impl Plan {
    pub(crate) fn new(extensions: Vec<Arc<dyn Extension>>) -> Result<Plan, PlanErrors> {
        let mut errors = Vec::new();
        let mut planned: Vec<Planned> = extensions
            .into_iter()
            .map(|extension| {
                let metadata = extension.metadata();
                let mut registrar = Registrar::new(&metadata.name);
                extension.register(&mut registrar);
                let entities = extension.entities();
                Planned {
                    extension,
                    metadata,
                    routes: registrar.routes,
                    subscriptions: registrar.subscriptions,
                    durable: registrar.durable,
                    hooks: registrar.hooks,
                    middleware: registrar.middleware,
                    entities,
                    stages: registrar.stages,
                }
            })
            .collect();
        planned.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        entity_routes::add(
            planned.iter_mut().map(|p| (p.metadata.name.as_str(), p.entities.as_ref(), &mut p.routes)),
        );

        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for p in &planned {
            *counts.entry(p.metadata.name.as_str()).or_default() += 1;
        }
        let mut versions: BTreeMap<&str, semver::Version> = BTreeMap::new();
        for p in &planned {
            let m = &p.metadata;
            if !valid_name(&m.name) {
                errors.push(PlanError::InvalidName { name: m.name.clone() });
            }
            match semver::Version::parse(&m.version) {
                Ok(v) => {
                    versions.insert(&m.name, v);
                }
                Err(e) => errors.push(PlanError::InvalidVersion {
                    extension: m.name.clone(),
                    version: m.version.clone(),
                    reason: e.to_string(),
                }),
            }
        }
        for (name, count) in &counts {
            if *count > 1 {
                errors.push(PlanError::DuplicateName { name: (*name).to_owned(), count: *count });
            }
        }
        for p in &planned {
            check_dependencies(&p.metadata, &counts, &versions, &mut errors);
            site_check::check(&p.metadata, &mut errors);
        }
        site_check::check_exclusive_agreement(planned.iter().map(|p| &p.metadata), &mut errors);
        entity_check::check(planned.iter().map(|p| (&p.metadata, p.entities.as_ref())), &mut errors);
        for p in &planned {
            check_routes(&p.metadata.name, &p.routes, &mut errors);
            check_stages(p, &mut errors);
            let hooks = p.hooks.iter().map(|h| (h.point.as_str(), &h.hook));
            let middleware = p.middleware.iter().map(|m| ("middleware", &m.hook));
            hook_check::check(&p.metadata.name, hooks.chain(middleware), &mut errors);
        }
        if errors.is_empty() {
            match start_order(&planned) {
                Ok(order) => {
                    let mut by_name: BTreeMap<String, Planned> =
                        planned.into_iter().map(|p| (p.metadata.name.clone(), p)).collect();
                    let extensions = order.iter().filter_map(|n| by_name.remove(n)).collect();
                    return Ok(Plan { extensions });
                }
                Err(cycle) => errors.push(PlanError::DependencyCycle { cycle }),
            }
        }
        Err(PlanErrors(errors))
    }
}

/// Each stage's name is `^[a-z][a-z0-9_]{0,63}$` and unique in its extension (its registry id is
/// `<extension>.<name>`), and its config schema compiles.
fn check_stages(p: &Planned, errors: &mut Vec<PlanError>) {
    let mut seen = std::collections::BTreeSet::new();
    for s in &p.stages {
        let name = s.spec.name();
        let invalid = |reason: String| PlanError::InvalidStage {
            extension: p.metadata.name.clone(),
            stage: name.to_owned(),
            reason,
        };
        let well_formed = name.len() <= 64
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name.chars().all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'));
        if !well_formed {
            errors.push(invalid(
                "use 1 to 64 characters, a lowercase letter then lowercase letters, digits or `_`".into(),
            ));
        } else if !seen.insert(name) {
            errors.push(invalid(
                "the name is registered twice; stage names must be unique per extension".into(),
            ));
        }
        if let Some(problem) = s.spec.config_schema.as_ref().and_then(crate::config::schema::schema_problem) {
            errors.push(invalid(format!("its config schema is not a valid JSON Schema: {problem}")));
        }
    }
}

/// `^[a-z][a-z0-9_]{0,39}$`, without a regex engine.
pub(crate) fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 40
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

fn check_dependencies(
    m: &Metadata,
    counts: &BTreeMap<&str, usize>,
    versions: &BTreeMap<&str, semver::Version>,
    errors: &mut Vec<PlanError>,
) {
    for dep in &m.dependencies {
        let req = match semver::VersionReq::parse(&dep.requirement) {
            Ok(req) => req,
            Err(e) => {
                errors.push(PlanError::InvalidRequirement {
                    extension: m.name.clone(),
                    dependency: dep.name.clone(),
                    requirement: dep.requirement.clone(),
                    reason: e.to_string(),
                });
                continue;
            }
        };
        if !counts.contains_key(dep.name.as_str()) {
            errors.push(PlanError::MissingDependency {
                extension: m.name.clone(),
                dependency: dep.name.clone(),
                requirement: dep.requirement.clone(),
            });
        } else if let Some(found) = versions.get(dep.name.as_str())
            && !req.matches(found)
        {
            errors.push(PlanError::IncompatibleDependency {
                extension: m.name.clone(),
                dependency: dep.name.clone(),
                requirement: dep.requirement.clone(),
                found: found.to_string(),
            });
        }
    }
}

/// The path with parameter names erased, so `/a/{id}` and `/a/{key}` compare equal.
fn route_shape(path: &str) -> String {
    path.split('/')
        .map(|seg| match seg.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
            Some(inner) if inner.starts_with('*') => "{*}",
            Some(_) => "{}",
            None => seg,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn check_routes(extension: &str, routes: &[RouteSpec], errors: &mut Vec<PlanError>) {
    let mut seen: BTreeMap<(String, String), ()> = BTreeMap::new();
    let mut matcher = matchit::Router::new();
    let mut spellings: BTreeMap<String, &str> = BTreeMap::new();
    for route in routes {
        let invalid = |reason: String| PlanError::InvalidRoute {
            extension: extension.to_owned(),
            method: route.method.to_string(),
            path: route.path.clone(),
            reason,
        };
        if axum::routing::MethodFilter::try_from(route.method.clone()).is_err() {
            errors.push(invalid("the method cannot be routed".into()));
            continue;
        }
        if !route.path.starts_with('/') {
            errors.push(invalid("a route path must start with `/`".into()));
            continue;
        }
        let shape = route_shape(&route.path);
        if seen.insert((route.method.to_string(), shape.clone()), ()).is_some() {
            errors.push(PlanError::RouteConflict {
                method: route.method.to_string(),
                route: format!("/ext/{extension}{}", route.path),
                first: extension.to_owned(),
                second: extension.to_owned(),
            });
            continue;
        }
        match spellings.get(&shape) {
            Some(first) if *first != route.path => errors.push(invalid(format!(
                "the same path is already declared as `{first}`; parameters in one place must share a name"
            ))),
            Some(_) => {}
            None => {
                spellings.insert(shape, &route.path);
                if let Err(e) = matcher.insert(route.path.as_str(), ()) {
                    errors.push(invalid(e.to_string()));
                }
            }
        }
    }
}

/// Kahn's algorithm, always taking the alphabetically first ready name: the same set gives the
/// same order on every machine, whatever order inventory collected it in.
fn start_order(planned: &[Planned]) -> Result<Vec<String>, Vec<String>> {
    let deps: BTreeMap<&str, BTreeSet<&str>> = planned
        .iter()
        .map(|p| {
            let d = p.metadata.dependencies.iter().map(|d| d.name.as_str()).collect();
            (p.metadata.name.as_str(), d)
        })
        .collect();
    let mut remaining = deps.clone();
    let mut order = Vec::new();
    loop {
        let ready: Option<&str> = remaining.iter().find(|(_, d)| d.is_empty()).map(|(name, _)| *name);
        let Some(name) = ready else { break };
        remaining.remove(name);
        for d in remaining.values_mut() {
            d.remove(name);
        }
        order.push(name.to_owned());
    }
    if remaining.is_empty() { Ok(order) } else { Err(find_cycle(&remaining)) }
}

fn find_cycle(remaining: &BTreeMap<&str, BTreeSet<&str>>) -> Vec<String> {
    // Every remaining node has a remaining dependency, so walking first dependencies must loop.
    let Some(start) = remaining.keys().next() else {
        return Vec::new();
    };
    let mut path: Vec<&str> = vec![start];
    let mut current = *start;
    loop {
        let Some(next) = remaining.get(current).and_then(|d| d.iter().next()) else {
            return path.iter().map(|s| (*s).to_owned()).collect();
        };
        if let Some(pos) = path.iter().position(|p| p == next) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|s| (*s).to_owned()).collect();
            cycle.push((*next).to_owned());
            return cycle;
        }
        path.push(next);
        current = next;
    }
}

impl fmt::Debug for Planned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Planned").field("metadata", &self.metadata).finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_need_valid_unique_names_and_schemas() {
        use crate::extension::stage::{StageKind, StageRequest, StageResult, StageSpec};
        struct Staged;
        #[async_trait::async_trait]
        impl Extension for Staged {
            fn metadata(&self) -> Metadata {
                Metadata::new("staged", "1.0.0")
            }
            fn register(&self, r: &mut Registrar) {
                let noop = |_cx: crate::Context, _req: StageRequest| async { StageResult::continue_() };
                r.stage(StageSpec::new("ok", StageKind::Pre), noop);
                r.stage(StageSpec::new("ok", StageKind::Post), noop);
                r.stage(StageSpec::new("Bad", StageKind::Pre), noop);
                r.stage(
                    StageSpec::new("schema", StageKind::Pre).config_schema(serde_json::json!({"type": 5})),
                    noop,
                );
            }
        }
        let errors = Plan::new(vec![Arc::new(Staged)]).err().expect("refused").0;
        let stages: Vec<String> = errors
            .iter()
            .filter_map(|e| match e {
                PlanError::InvalidStage { stage, .. } => Some(stage.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(stages, ["ok", "Bad", "schema"], "{errors:?}");
    }

    #[test]
    fn names_follow_the_documented_pattern() {
        assert!(valid_name("a"));
        assert!(valid_name("web_hooks2"));
        assert!(valid_name(&"a".repeat(40)));
        assert!(!valid_name(&"a".repeat(41)));
        assert!(!valid_name(""));
        assert!(!valid_name("2fa"));
        assert!(!valid_name("Hello"));
        assert!(!valid_name("web-hooks"));
        assert!(!valid_name("_x"));
    }

    #[test]
    fn route_shapes_ignore_parameter_names() {
        assert_eq!(route_shape("/a/{id}/b"), route_shape("/a/{key}/b"));
        assert_eq!(route_shape("/f/{*rest}"), "/f/{*}");
        assert_ne!(route_shape("/a/{id}"), route_shape("/a/id"));
    }
}
