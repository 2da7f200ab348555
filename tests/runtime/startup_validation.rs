//! Problems with the compiled-in set are startup errors with useful messages, never panics,
//! and are found before any database is touched.

use std::sync::Arc;

use crate::common::{Journal, Probe};
use annex_core::{
    Context, Extension, Metadata, Registrar,
    config::Config,
    host::{Host, HostError, PlanError, validate},
};

fn probe(name: &'static str) -> Probe {
    Probe::new(name, &Journal::default())
}

fn errors(exts: Vec<Arc<dyn Extension>>) -> Vec<PlanError> {
    validate(exts).expect_err("the set is invalid").0
}

#[test]
fn a_valid_set_starts_dependencies_first_and_ties_by_name() {
    let order = validate(vec![
        Arc::new(probe("zeta").depends_on("beta", "^1")),
        Arc::new(probe("beta")),
        Arc::new(probe("alpha").depends_on("zeta", ">=1.0.0")),
        Arc::new(probe("gamma")),
    ])
    .expect("valid");
    assert_eq!(order, ["beta", "gamma", "zeta", "alpha"]);
}

#[test]
fn bad_names_are_reported_with_the_rule() {
    let errs = errors(vec![Arc::new(probe("Bad-Name")), Arc::new(probe("9lives"))]);
    assert_eq!(errs.len(), 2);
    let msg = errs.iter().map(ToString::to_string).find(|m| m.contains("Bad-Name")).expect("named");
    assert!(msg.contains("`Bad-Name`") && msg.contains("lowercase"), "{msg}");
}

#[test]
fn duplicate_names_are_reported_once_with_the_count() {
    let errs = errors(vec![Arc::new(probe("twin")), Arc::new(probe("twin"))]);
    assert_eq!(errs, vec![PlanError::DuplicateName { name: "twin".into(), count: 2 }]);
}

#[test]
fn a_non_semver_version_names_the_extension() {
    let mut p = probe("old");
    p.version = "v1";
    let errs = errors(vec![Arc::new(p)]);
    assert!(
        matches!(&errs[0], PlanError::InvalidVersion { extension, version, .. } if extension == "old" && version == "v1")
    );
    assert!(errs[0].to_string().contains("not semver"));
}

#[test]
fn a_missing_dependency_says_which_feature_to_enable() {
    let errs = errors(vec![Arc::new(probe("reports").depends_on("analytics", "^1.2"))]);
    let msg = errs[0].to_string();
    assert!(
        msg.contains("`reports`") && msg.contains("`analytics`") && msg.contains("ext-analytics"),
        "{msg}"
    );
}

#[test]
fn an_incompatible_dependency_names_requirement_and_found_version() {
    let errs =
        errors(vec![Arc::new(probe("reports").depends_on("analytics", "^2")), Arc::new(probe("analytics"))]);
    assert_eq!(
        errs,
        vec![PlanError::IncompatibleDependency {
            extension: "reports".into(),
            dependency: "analytics".into(),
            requirement: "^2".into(),
            found: "1.0.0".into(),
        }]
    );
}

#[test]
fn an_unparsable_requirement_is_an_error() {
    let errs = errors(vec![Arc::new(probe("a").depends_on("b", "about one")), Arc::new(probe("b"))]);
    assert!(
        matches!(&errs[0], PlanError::InvalidRequirement { requirement, .. } if requirement == "about one")
    );
}

#[test]
fn a_dependency_cycle_is_shown_as_a_path() {
    let errs = errors(vec![
        Arc::new(probe("a").depends_on("b", "*")),
        Arc::new(probe("b").depends_on("c", "*")),
        Arc::new(probe("c").depends_on("a", "*")),
        Arc::new(probe("free")),
    ]);
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].to_string(), "dependency cycle: a -> b -> c -> a");
}

#[test]
fn a_self_dependency_is_a_cycle() {
    let errs = errors(vec![Arc::new(probe("narcissus").depends_on("narcissus", "*"))]);
    assert_eq!(errs[0].to_string(), "dependency cycle: narcissus -> narcissus");
}

/// Declares whatever routes it is given.
struct Routes(&'static str, Vec<(&'static str, &'static str)>);

#[annex_core::async_trait]
impl Extension for Routes {
    fn metadata(&self) -> Metadata {
        Metadata::new(self.0, "1.0.0")
    }
    fn register(&self, r: &mut Registrar) {
        for (method, path) in &self.1 {
            let method = method.parse().expect("method");
            r.route(method, path, |_cx: Context| async { "ok" });
        }
    }
}

#[test]
fn the_same_method_and_path_twice_is_a_conflict_naming_the_route() {
    let errs = errors(vec![Arc::new(Routes(
        "shop",
        vec![("GET", "/items"), ("POST", "/items"), ("GET", "/items")],
    ))]);
    assert_eq!(
        errs,
        vec![PlanError::RouteConflict {
            method: "GET".into(),
            route: "/ext/shop/items".into(),
            first: "shop".into(),
            second: "shop".into(),
        }]
    );
    assert!(errs[0].to_string().contains("GET /ext/shop/items"));
}

#[test]
fn parameters_with_different_names_in_one_place_conflict() {
    let errs = errors(vec![Arc::new(Routes("shop", vec![("GET", "/items/{id}"), ("GET", "/items/{key}")]))]);
    assert!(
        matches!(&errs[0], PlanError::RouteConflict { route, .. } if route == "/ext/shop/items/{id}" || route == "/ext/shop/items/{key}")
    );
}

#[test]
fn a_route_the_router_would_panic_on_is_an_error_instead() {
    let errs = errors(vec![Arc::new(Routes(
        "shop",
        vec![("GET", "items"), ("PUT", "/a/{id}"), ("GET", "/a/{key}")],
    ))]);
    assert_eq!(errs.len(), 2, "{errs:?}");
    assert!(errs[0].to_string().contains("must start with `/`"), "{}", errs[0]);
    assert!(matches!(&errs[1], PlanError::InvalidRoute { path, .. } if path == "/a/{key}"), "{errs:?}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let errs = errors(vec![
        Arc::new(probe("Bad")),
        Arc::new(probe("a").depends_on("ghost", "^1")),
        Arc::new(Routes("b", vec![("GET", "/x"), ("GET", "/x")])),
    ]);
    assert_eq!(errs.len(), 3, "{errs:?}");
}

#[tokio::test]
async fn the_host_refuses_an_invalid_set_before_touching_the_database() {
    let mut config = Config::default();
    // Unreachable on purpose: validation must fail first.
    config.database.url = Some("postgres://nobody@127.0.0.1:1/none".into());
    let err = Host::builder(config)
        .extension(probe("a").depends_on("b", "*"))
        .extension(probe("b").depends_on("a", "*"))
        .start()
        .await
        .expect_err("cycle");
    assert!(matches!(err, HostError::Plan(_)), "{err}");
    assert_eq!(err.to_string(), "dependency cycle: a -> b -> a");
}

#[test]
fn the_binary_knows_which_crates_it_expects() {
    let expected = annex::EXPECTED_EXTENSION_CRATES;
    assert!(expected.contains(&"annex-ext-hello"), "tests run with --all-features: {expected:?}");
    let names: Vec<String> =
        annex::compiled_in().expect("all anchors present").iter().map(|e| e.metadata().name).collect();
    assert!(names.contains(&"hello".to_owned()), "{names:?}");
}
