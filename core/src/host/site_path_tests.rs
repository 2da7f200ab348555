//! Requests under `/sites/<slug>/ext/<name>/…`, tested without PostgreSQL: the site gates are
//! filled by hand. Each site's config reaches the handler, every refusal has its code, the
//! extension's own gate still applies, hooks scoped to the extension's routes run for its site
//! routes and see the full path, and the metric label is the template, never the slug.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, Request};
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tower::ServiceExt;
use uuid::Uuid;

use crate::config::Config;
use crate::extension::gate::ExtensionState;
use crate::extension::hooks::{Hook, HookRequest};
use crate::extension::{Context, Extension, Json, Metadata, Registrar};
use crate::runtime::lifecycle::Runtime;
use crate::sites::gates::SiteRow;

type Seen = Arc<Mutex<Vec<String>>>;

/// Answers with its site and config; its own pre_request hook records the path it saw.
struct Greeter {
    name: &'static str,
    site_scoped: bool,
    seen: Seen,
}

#[async_trait::async_trait]
impl Extension for Greeter {
    fn metadata(&self) -> Metadata {
        let m = Metadata::new(self.name, "1.0.0");
        if self.site_scoped { m.site_scoped() } else { m }
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/hello", |cx: Context| async move {
            Json(json!({
                "site": cx.site().map(|s| s.slug().to_owned()),
                "hash": cx.site().map(|s| s.config_hash().to_owned()),
                "greeting": cx.config().get("greeting").cloned(),
            }))
        });
        r.get("/items/{id}", |Path(id): Path<u32>| async move { id.to_string() });
        let seen = self.seen.clone();
        r.pre_request(Hook::new("see").own_routes(), move |_cx, req: HookRequest| {
            let seen = seen.clone();
            async move {
                seen.lock().unwrap_or_else(|p| p.into_inner()).push(req.uri().path().to_owned());
                Ok(())
            }
        });
    }
}

const A: Uuid = Uuid::from_u128(0xa);
const B: Uuid = Uuid::from_u128(0xb);
const C: Uuid = Uuid::from_u128(0xc);

fn rows() -> Vec<SiteRow> {
    let active = |ext: &str, greeting: &str| {
        Some((ext.to_owned(), json!({ "greeting": greeting }), format!("hash-{greeting}")))
    };
    vec![
        SiteRow { id: A, slug: "plant-a".into(), status: "active".into(), active: active("greeter", "moin") },
        SiteRow { id: A, slug: "plant-a".into(), status: "active".into(), active: active("local", "a-only") },
        SiteRow {
            id: B,
            slug: "plant-b".into(),
            status: "active".into(),
            active: active("greeter", "servus"),
        },
        SiteRow {
            id: C,
            slug: "closed".into(),
            status: "suspended".into(),
            active: active("greeter", "zzz"),
        },
        SiteRow { id: Uuid::from_u128(0xd), slug: "empty".into(), status: "active".into(), active: None },
    ]
}

fn app(seen: &Seen) -> (Router, Arc<Runtime>) {
    let extensions: Vec<Arc<dyn Extension>> = vec![
        Arc::new(Greeter { name: "greeter", site_scoped: false, seen: seen.clone() }),
        Arc::new(Greeter { name: "local", site_scoped: true, seen: seen.clone() }),
    ];
    let (router, runtime) = super::offline_router(extensions, Config::default());
    runtime.site_gates().replace(rows());
    (router, runtime)
}

async fn get(router: &Router, path: &str) -> Response {
    let req = Request::get(path).body(Body::empty()).expect("a valid request");
    router.clone().oneshot(req).await.expect("infallible")
}

async fn answer(router: &Router, path: &str) -> (StatusCode, Value) {
    let res = get(router, path).await;
    let status = res.status();
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("a body");
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)));
    (status, body)
}

#[tokio::test]
async fn each_site_answers_with_its_own_config_and_the_global_route_with_the_global_one() {
    let seen = Seen::default();
    let (router, _runtime) = app(&seen);
    let (status, a) = answer(&router, "/sites/plant-a/ext/greeter/hello").await;
    assert_eq!(status, StatusCode::OK, "{a}");
    assert_eq!(a, json!({ "site": "plant-a", "hash": "hash-moin", "greeting": "moin" }));
    let (_, b) = answer(&router, "/sites/plant-b/ext/greeter/hello?x=1").await;
    assert_eq!(b, json!({ "site": "plant-b", "hash": "hash-servus", "greeting": "servus" }));
    let (_, global) = answer(&router, "/ext/greeter/hello").await;
    assert_eq!(global, json!({ "site": null, "hash": null, "greeting": null }));
    // Path parameters are the route's own, not the site's.
    assert_eq!(answer(&router, "/sites/plant-b/ext/greeter/items/7").await, (StatusCode::OK, json!(7)));
}

#[tokio::test]
async fn unknown_suspended_and_not_active_sites_are_refused_with_their_codes() {
    let seen = Seen::default();
    let (router, runtime) = app(&seen);
    let (status, body) = answer(&router, "/sites/nowhere/ext/greeter/hello").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_site")));
    let (status, body) = answer(&router, "/sites/closed/ext/greeter/hello").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("site_suspended"))
    );
    let (status, body) = answer(&router, "/sites/empty/ext/greeter/hello").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("extension_not_active"))
    );
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("`greeter`") && message.contains("`empty`") && message.contains("activate"),
        "{message}"
    );
    // The extension's own gate still applies under a site.
    runtime.find("greeter").expect("managed").slot().set(ExtensionState::Disabled);
    let (status, body) = answer(&router, "/sites/plant-a/ext/greeter/hello").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, Some("extension_disabled"))
    );
    assert!(seen.lock().unwrap_or_else(|p| p.into_inner()).is_empty(), "no refused request reached a hook");
}

#[tokio::test]
async fn a_site_scoped_extension_answers_only_under_a_site_where_it_is_active() {
    let seen = Seen::default();
    let (router, _runtime) = app(&seen);
    let (status, body) = answer(&router, "/ext/local/hello").await;
    assert_eq!((status, body["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("site_scoped")));
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("/sites/<slug>/ext/local/"), "{message}");
    let (status, body) = answer(&router, "/sites/plant-a/ext/local/hello").await;
    assert_eq!((status, &body["greeting"]), (StatusCode::OK, &json!("a-only")));
    let (status, body) = answer(&router, "/sites/plant-b/ext/local/hello").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("extension_not_active"))
    );
}

#[tokio::test]
async fn own_route_hooks_run_for_site_routes_and_see_the_full_path() {
    let seen = Seen::default();
    let (router, _runtime) = app(&seen);
    assert_eq!(get(&router, "/sites/plant-a/ext/greeter/hello").await.status(), StatusCode::OK);
    assert_eq!(get(&router, "/ext/greeter/hello").await.status(), StatusCode::OK);
    let paths = std::mem::take(&mut *seen.lock().unwrap_or_else(|p| p.into_inner()));
    assert_eq!(paths, ["/sites/plant-a/ext/greeter/hello", "/ext/greeter/hello"]);
}

#[tokio::test]
async fn site_requests_are_counted_under_the_route_template_never_the_slug() {
    let seen = Seen::default();
    let (router, runtime) = app(&seen);
    for path in [
        "/sites/plant-a/ext/greeter/hello",
        "/sites/plant-b/ext/greeter/hello",
        "/sites/nowhere/ext/greeter/hello",
    ] {
        let _ = get(&router, path).await;
    }
    let text = runtime.metrics().render();
    let series: Vec<&str> = text.lines().filter(|l| l.starts_with("extension_requests_total{")).collect();
    assert!(series.iter().all(|l| !l.contains("plant-") && !l.contains("nowhere")), "{series:?}");
    let ok = series
        .iter()
        .find(|l| l.contains("route=\"/sites/{site}/ext/greeter/hello\"") && l.contains("status=\"200\""));
    assert!(ok.is_some_and(|l| l.ends_with(" 2")), "{series:?}");
    let unknown = series
        .iter()
        .find(|l| l.contains("route=\"/sites/{site}/ext/greeter/hello\"") && l.contains("status=\"404\""));
    assert!(unknown.is_some_and(|l| l.ends_with(" 1")), "{series:?}");
}
