//! The request path, tested without PostgreSQL: a runtime assembled over a lazy pool that never
//! connects, gates opened by hand, and requests sent with `oneshot`. The order of its steps, the
//! status Prometheus records, the JSON shape of every error, and requests no route matches.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{StatusCode, header};
use axum::response::Response;
use tower::ServiceExt;

use crate::config::{Config, QuotaConfig, RateLimitConfig};
use crate::extension::gate::ExtensionState;
use crate::extension::hooks::{Hook, HookRequest, HookResponse, Identity, Next};
use crate::extension::{Context, Extension, Metadata, Registrar};
use crate::runtime::lifecycle::Runtime;

type Journal = Arc<Mutex<Vec<String>>>;

fn note(journal: &Journal, what: impl Into<String>) {
    journal.lock().unwrap_or_else(|p| p.into_inner()).push(what.into());
}

/// Records every step of the request path it takes part in.
struct Probe {
    journal: Journal,
}

#[async_trait::async_trait]
impl Extension for Probe {
    fn metadata(&self) -> Metadata {
        Metadata::new("probe", "1.0.0")
    }

    fn register(&self, r: &mut Registrar) {
        let j = self.journal.clone();
        r.get("/ping", move |_cx: Context| {
            let j = j.clone();
            async move {
                note(&j, "handler");
                "pong"
            }
        });
        r.get("/teapot", || async { "not yet a teapot" });
        r.post(
            "/annex-json",
            |crate::extension::Json(v): crate::extension::Json<serde_json::Value>| async move {
                crate::extension::Json(v)
            },
        );
        r.post("/axum-json", |axum::Json(v): axum::Json<serde_json::Value>| async move { axum::Json(v) });
        let j = self.journal.clone();
        r.authentication(Hook::new("auth").own_routes(), move |_cx, req: HookRequest| {
            let j = j.clone();
            async move {
                note(&j, "authentication");
                req.set_identity(Identity::new("alice"));
                Ok(())
            }
        });
        let j = self.journal.clone();
        r.pre_request(Hook::new("pre").own_routes(), move |_cx, req: HookRequest| {
            let j = j.clone();
            async move {
                let who = req.identity().map(|i| i.id().to_owned()).unwrap_or_default();
                note(&j, format!("pre_request({who})"));
                Ok(())
            }
        });
        let j = self.journal.clone();
        r.middleware(Hook::new("mw").own_routes(), move |_cx: Context, req: Request, next: Next| {
            let j = j.clone();
            async move {
                note(&j, "middleware");
                next.run(req).await
            }
        });
        let j = self.journal.clone();
        r.post_request(Hook::new("post").own_routes(), move |_cx, _res: HookResponse| {
            let j = j.clone();
            async move {
                note(&j, "post_request");
                Ok(())
            }
        });
        let j = self.journal.clone();
        r.pre_response(Hook::new("last").own_routes(), move |_cx, res: HookResponse| {
            let j = j.clone();
            async move {
                note(&j, "pre_response");
                if res.request().route.ends_with("/teapot") {
                    res.set_status(StatusCode::IM_A_TEAPOT);
                }
                Ok(())
            }
        });
    }
}

/// The application over a runtime that never touched a database, every gate open.
fn app(journal: &Journal, config: Config) -> (Router, Arc<Runtime>) {
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(Probe { journal: journal.clone() })];
    super::offline_router(extensions, config)
}

async fn post(router: &Router, path: &str, content_type: &str, body: &'static str) -> Response {
    let req = Request::post(path)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::from(body))
        .expect("a valid request");
    router.clone().oneshot(req).await.expect("infallible")
}

async fn body_json(res: Response) -> serde_json::Value {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("a body");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&bytes)))
}

async fn send(router: &Router, path: &str, body_len: usize) -> Response {
    let req = Request::get(path)
        .header(header::CONTENT_LENGTH, body_len)
        .body(Body::from(vec![b'x'; body_len]))
        .expect("a valid request");
    router.clone().oneshot(req).await.expect("infallible")
}

async fn code(res: Response) -> String {
    let bytes = axum::body::to_bytes(res.into_body(), 1 << 20).await.expect("a body");
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    v["error"]["code"].as_str().unwrap_or_default().to_owned()
}

fn taken(journal: &Journal) -> Vec<String> {
    std::mem::take(&mut *journal.lock().unwrap_or_else(|p| p.into_inner()))
}

#[tokio::test]
async fn the_request_path_runs_gate_quotas_rate_limit_auth_pre_request_middleware_handler_post_request_pre_response()
 {
    let journal: Journal = Arc::default();
    let mut config = Config::default();
    let probe = config.extensions.entry("probe".into()).or_default();
    probe.rate_limit = Some(RateLimitConfig { per_second: 1, burst: 1, per_client: false });
    probe.quotas = QuotaConfig { max_body_bytes: Some(16), ..QuotaConfig::default() };
    let (router, runtime) = app(&journal, config);

    // The whole chain, in order; the authentication hook's identity reaches pre_request.
    let res = send(&router, "/ext/probe/ping", 0).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(
        taken(&journal),
        ["authentication", "pre_request(alice)", "middleware", "handler", "post_request", "pre_response"]
    );

    // Gate before quotas: a closed gate answers 503 even for a body over the quota.
    let m = runtime.find("probe").expect("probe is managed");
    m.slot().set(ExtensionState::Disabled);
    let res = send(&router, "/ext/probe/ping", 64).await;
    assert_eq!(res.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(code(res).await, "extension_disabled");
    assert!(taken(&journal).is_empty(), "a closed gate runs nothing of the extension");
    m.slot().set(ExtensionState::Running);

    // Quotas before the rate limit: the one token is spent, yet a body over the quota gets 413.
    // pre_response filters see every answer of the extension's routes, refusals included.
    let res = send(&router, "/ext/probe/ping", 64).await;
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(code(res).await, "payload_too_large");
    assert_eq!(taken(&journal), ["pre_response"]);

    // Rate limit before authentication: the refused request reaches no request hook.
    let res = send(&router, "/ext/probe/ping", 0).await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.headers().contains_key(header::RETRY_AFTER));
    assert_eq!(code(res).await, "rate_limited");
    assert_eq!(
        taken(&journal),
        ["pre_response"],
        "authentication, pre_request, middleware and handler did not run"
    );
}

#[tokio::test]
async fn prometheus_records_the_status_a_pre_response_filter_set() {
    let journal: Journal = Arc::default();
    let (router, runtime) = app(&journal, Config::default());
    let res = send(&router, "/ext/probe/teapot", 0).await;
    assert_eq!(res.status(), StatusCode::IM_A_TEAPOT);

    let text = runtime.metrics().render();
    let series: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("extension_requests_total{") && l.contains("/teapot"))
        .collect();
    assert_eq!(series.len(), 1, "one series for the route: {series:?}");
    assert!(series[0].contains("status=\"418\""), "the status the client got: {}", series[0]);
    assert!(series[0].ends_with(" 1"), "{}", series[0]);
}

#[tokio::test]
async fn a_closed_gate_is_metered() {
    let journal: Journal = Arc::default();
    let (router, runtime) = app(&journal, Config::default());
    runtime.find("probe").expect("managed").slot().set(ExtensionState::Disabled);
    assert_eq!(send(&router, "/ext/probe/ping", 0).await.status(), StatusCode::SERVICE_UNAVAILABLE);
    let text = runtime.metrics().render();
    assert!(
        text.lines().any(|l| l.starts_with("extension_requests_total{") && l.contains("status=\"503\"")),
        "{text}"
    );
}

#[tokio::test]
async fn extractor_refusals_answer_in_the_json_error_shape() {
    let journal: Journal = Arc::default();
    let (router, _runtime) = app(&journal, Config::default());
    // axum's own extractor: its plain-text rejections are rewritten.
    let res = post(&router, "/ext/probe/axum-json", "application/json", "{not json").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "application/json");
    let b = body_json(res).await;
    assert_eq!(b["error"]["code"], "bad_request");
    assert!(b["error"]["request_id"].is_string(), "{b}");
    let res = post(&router, "/ext/probe/axum-json", "text/plain", "{}").await;
    assert_eq!(res.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(body_json(res).await["error"]["code"], "unsupported_media_type");
    // annex's extractor: the same shape, and text PostgreSQL cannot store is a 422 by pointer.
    let res = post(&router, "/ext/probe/annex-json", "application/json", r#"{"name": "a\u0000b"}"#).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let b = body_json(res).await;
    assert_eq!(b["error"]["code"], "invalid_body");
    assert_eq!(b["error"]["errors"][0]["pointer"], "/name");
    let res = post(&router, "/ext/probe/annex-json", "application/json", r#"{"name": "ok"}"#).await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(body_json(res).await["name"], "ok");
    let res = post(&router, "/ext/probe/annex-json", "application/json", "[1,").await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(body_json(res).await["error"]["code"], "invalid_json");
}

#[tokio::test]
async fn the_admin_api_s_extractor_refusals_are_in_the_json_error_shape_too() {
    let journal: Journal = Arc::default();
    let (router, _runtime) = app(&journal, Config::default());
    // Over axum's default body limit (2 MiB): refused by the extractor before the handler runs.
    let req = Request::put("/api/v1/extensions/probe/config")
        .header(header::AUTHORIZATION, "bearer test-token")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(vec![b' '; 3 << 20]))
        .expect("a valid request");
    let res = router.clone().oneshot(req).await.expect("infallible");
    assert_eq!(res.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body_json(res).await["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn requests_no_route_matches_are_counted_under_a_bounded_label() {
    let journal: Journal = Arc::default();
    let (router, runtime) = app(&journal, Config::default());
    for path in ["/nope", "/ext/ghost/x", "/ext/probe/missing"] {
        let res = send(&router, path, 0).await;
        assert_eq!(res.status(), StatusCode::NOT_FOUND, "{path}");
        assert_eq!(body_json(res).await["error"]["code"], "not_found");
    }
    let res = router
        .clone()
        .oneshot(Request::delete("/ext/probe/ping").body(Body::empty()).expect("request"))
        .await
        .expect("infallible");
    assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body_json(res).await["error"]["code"], "method_not_allowed");

    let text = runtime.metrics().render();
    let unmatched: Vec<&str> = text.lines().filter(|l| l.contains("route=\"unmatched\"")).collect();
    let count = |extension: &str, status: &str| {
        unmatched
            .iter()
            .filter(|l| {
                l.contains(&format!("extension=\"{extension}\""))
                    && l.contains(&format!("status=\"{status}\""))
            })
            .map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0))
            .sum::<u64>()
    };
    assert_eq!(count("", "404"), 2, "/nope and the unknown extension: {unmatched:?}");
    assert_eq!(count("probe", "404"), 1, "{unmatched:?}");
    assert_eq!(count("probe", "405"), 1, "{unmatched:?}");
}
