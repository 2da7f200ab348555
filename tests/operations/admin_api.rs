//! Every admin endpoint: success, 401 (no token, wrong token), 404, and its 409/422 cases.

use std::sync::atomic::Ordering;

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::{Base, admin, body, host};

const ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/api/v1/extensions"),
    ("GET", "/api/v1/extensions/{name}"),
    ("POST", "/api/v1/extensions/{name}/enable"),
    ("POST", "/api/v1/extensions/{name}/disable"),
    ("GET", "/api/v1/extensions/{name}/health"),
    ("GET", "/api/v1/extensions/{name}/metrics"),
    ("GET", "/api/v1/extensions/{name}/config"),
    ("PUT", "/api/v1/extensions/{name}/config"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/openapi.json"),
];

fn method(m: &str) -> Method {
    Method::from_bytes(m.as_bytes()).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_refuses_a_missing_or_wrong_token_and_names_unknown_extensions() {
    let t = host(Base::default(), None).await;
    for (m, path) in ENDPOINTS {
        let url = t.url(&path.replace("{name}", "base"));
        let res = t.client().request(method(m), &url).json(&json!({})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{m} {path} without a token");
        assert_eq!(res.headers()["www-authenticate"], "Bearer");
        assert_eq!(body(res).await["error"]["code"], "unauthorized");
        let res =
            t.client().request(method(m), &url).bearer_auth("wrong").json(&json!({})).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "{m} {path} with a wrong token");
        if path.contains("{name}") {
            let res =
                admin(&t, method(m), &path.replace("{name}", "nope")).json(&json!({})).send().await.unwrap();
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{m} {path} for an unknown extension");
            let b = body(res).await;
            assert_eq!(b["error"]["code"], "extension_not_found");
            assert!(b["error"]["message"].as_str().unwrap().contains("`nope`"));
        }
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn list_info_health_metrics_and_openapi_answer() {
    let t = host(Base::default(), None).await;
    let list = body(admin(&t, Method::GET, "/api/v1/extensions").send().await.unwrap()).await;
    let names: Vec<&str> =
        list["extensions"].as_array().unwrap().iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["base", "dependent"]);
    assert_eq!(list["extensions"][0]["state"], "running");
    assert_eq!(list["extensions"][0]["enabled"], true);

    let info = body(admin(&t, Method::GET, "/api/v1/extensions/base").send().await.unwrap()).await;
    assert_eq!(info["version"], "1.0.0");
    assert_eq!(info["dependents"], json!(["dependent"]));
    assert!(
        info["routes"]
            .as_array()
            .unwrap()
            .contains(&json!({"method": "GET", "path": "/ext/base/items/{id}"}))
    );
    assert!(info["config_schema"].is_object());
    assert!(info["hooks"].is_array() && info["migrations"].is_array());

    let res = admin(&t, Method::GET, "/api/v1/extensions/base/health").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(body(res).await["history"].is_array());

    t.get("/ext/base/items/7").await;
    let m = body(admin(&t, Method::GET, "/api/v1/extensions/base/metrics").send().await.unwrap()).await;
    // This process's live figures come first.
    let requests = &m["replicas"][0]["figures"]["extension_requests_total"];
    assert_eq!(requests[0]["route"], "/ext/base/items/{id}");
    assert_eq!(requests[0]["value"], 1.0);

    let doc = body(admin(&t, Method::GET, "/api/v1/openapi.json").send().await.unwrap()).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for (m, path) in ENDPOINTS {
        assert!(doc["paths"][path][m.to_lowercase()].is_object(), "{m} {path} documented");
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disable_needs_cascade_when_others_depend_and_enable_needs_running_dependencies() {
    let base = Base::default();
    let probe = base.probe.clone();
    let t = host(base, None).await;

    let res = admin(&t, Method::POST, "/api/v1/extensions/base/disable").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    let b = body(res).await;
    assert_eq!(b["error"]["code"], "has_dependents");
    assert!(b["error"]["message"].as_str().unwrap().contains("cascade"));
    assert_eq!(t.get("/ext/base/items/1").await.status(), 200, "a refused disable changes nothing");

    let res = admin(&t, Method::POST, "/api/v1/extensions/base/disable?cascade=true").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body(res).await["disabled"], json!(["dependent", "base"]));
    assert_eq!(t.get("/ext/base/items/1").await.status(), 503);
    assert_eq!(t.get("/ext/dependent/ping").await.status(), 503);
    assert_eq!(probe.stops.load(Ordering::SeqCst), 1);

    let res = admin(&t, Method::POST, "/api/v1/extensions/dependent/enable").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::CONFLICT);
    assert_eq!(body(res).await["error"]["code"], "dependencies_disabled");

    for name in ["base", "dependent"] {
        let res = admin(&t, Method::POST, &format!("/api/v1/extensions/{name}/enable")).send().await.unwrap();
        assert_eq!(res.status(), 200, "enable {name}");
        assert_eq!(body(res).await["state"], "running");
    }
    assert_eq!(t.get("/ext/dependent/ping").await.status(), 200);
    // Disabling a leaf needs no cascade.
    let res = admin(&t, Method::POST, "/api/v1/extensions/dependent/disable").send().await.unwrap();
    assert_eq!(res.status(), 200);

    let audit =
        body(admin(&t, Method::GET, "/api/v1/audit?target=base&action=extension.*").send().await.unwrap())
            .await;
    let actions: Vec<&str> =
        audit["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["extension.enabled", "extension.disabled"]);
    assert_eq!(audit["entries"][0]["actor"], "admin");
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_is_validated_with_json_pointers_applied_live_and_kept_on_refusal() {
    let base = Base::default();
    let probe = base.probe.clone();
    let t = host(base, None).await;
    let put = |v: serde_json::Value| admin(&t, Method::PUT, "/api/v1/extensions/base/config").json(&v).send();

    let res = put(json!({ "greeting": 5, "limit": 0, "extra": true })).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let b = body(res).await;
    assert_eq!(b["error"]["code"], "invalid_config");
    let pointers: Vec<&str> =
        b["error"]["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    assert!(
        pointers.contains(&"/greeting") && pointers.contains(&"/limit") && pointers.contains(&""),
        "{pointers:?}"
    );
    assert!(
        b["error"]["errors"].as_array().unwrap().iter().all(|e| !e["message"].as_str().unwrap().is_empty())
    );

    let res = put(json!({ "greeting": "hi" })).await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(body(t.get("/ext/base/greeting").await).await["greeting"], "hi");
    assert_eq!(probe.applied.load(Ordering::SeqCst), 1);

    let res = put(json!({ "greeting": "reject" })).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body(res).await["error"]["code"], "config_rejected");
    assert_eq!(body(t.get("/ext/base/greeting").await).await["greeting"], "hi", "old config stays");

    let res = admin(&t, Method::PUT, "/api/v1/extensions/base/config").body("not json").send().await.unwrap();
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);

    let got = body(admin(&t, Method::GET, "/api/v1/extensions/base/config").send().await.unwrap()).await;
    assert_eq!(got["config"], json!({ "greeting": "hi" }));

    let mut db = <sqlx::PgConnection as sqlx::Connection>::connect(t.database_url()).await.unwrap();
    let history: Vec<(String, serde_json::Value)> = sqlx::query_as(
        "select actor, new_config from annex.extension_config_history where extension = 'base'",
    )
    .fetch_all(&mut db)
    .await
    .unwrap();
    assert_eq!(history, vec![("admin".to_owned(), json!({ "greeting": "hi" }))]);
    let audit =
        body(admin(&t, Method::GET, "/api/v1/audit?action=extension.config_changed").send().await.unwrap())
            .await;
    assert_eq!(audit["entries"].as_array().unwrap().len(), 1);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_is_filtered_paginated_and_rejects_bad_queries() {
    let t = host(Base::default(), None).await;
    for _ in 0..3 {
        admin(&t, Method::POST, "/api/v1/extensions/dependent/disable").send().await.unwrap();
        admin(&t, Method::POST, "/api/v1/extensions/dependent/enable").send().await.unwrap();
    }
    let page1 =
        body(admin(&t, Method::GET, "/api/v1/audit?target=dependent&limit=4").send().await.unwrap()).await;
    assert_eq!(page1["entries"].as_array().unwrap().len(), 4);
    let next = page1["next_before"].as_i64().expect("a next page");
    let page2 = body(
        admin(&t, Method::GET, &format!("/api/v1/audit?target=dependent&limit=4&before={next}"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(page2["entries"].as_array().unwrap().len(), 2);
    assert!(page2["next_before"].is_null());
    for bad in ["limit=0", "limit=many", "before=x", "colour=red"] {
        let res = admin(&t, Method::GET, &format!("/api/v1/audit?{bad}")).send().await.unwrap();
        assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        assert_eq!(body(res).await["error"]["code"], "invalid_query");
    }
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn without_a_configured_token_one_is_generated_into_the_data_dir_with_mode_0600() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let url = annex_core::testkit::test_database_url().await.unwrap();
    let mut config = annex_core::config::Config::default();
    config.database.url = Some(url);
    config.data_dir = dir.path().to_owned();
    let host = annex_core::host::Host::builder(config.clone()).start().await.expect("host starts");
    let path = dir.path().join("admin-token");
    let token = std::fs::read_to_string(&path).expect("token written");
    assert!(token.trim().len() >= 32);
    assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
    host.shutdown().await;
    // The next start reuses it.
    let again = annex_core::host::Host::builder(config).start().await.expect("host starts again");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), token);
    again.shutdown().await;
}
