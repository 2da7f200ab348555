//! Routes are mounted under `/ext/<name>`, errors are JSON with a request id, and a panicking
//! handler costs one 500 while everything else keeps answering.

use crate::common::{Journal, Probe, json_body};
use annex_core::testkit::TestHost;

async fn two_probes() -> TestHost {
    let journal = Journal::default();
    TestHost::builder()
        .extension(Probe::new("alpha", &journal))
        .extension(Probe::new("beta", &journal))
        .start()
        .await
        .expect("host starts")
}

#[tokio::test]
async fn routes_are_mounted_under_the_extension_prefix() {
    let t = two_probes().await;
    let res = t.get("/ext/alpha/ping").await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_body(res).await, serde_json::json!({ "pong": "alpha" }));
    assert_eq!(json_body(t.get("/ext/beta/ping").await).await["pong"], "beta");

    for unrouted in ["/ping", "/ext/alpha", "/ext/alpha/nope", "/ext/gamma/ping"] {
        let res = t.get(unrouted).await;
        assert_eq!(res.status(), 404, "{unrouted}");
        let body = json_body(res).await;
        assert_eq!(body["error"]["code"], "not_found", "{unrouted}");
    }
    let res = t.client().post(t.url("/ext/alpha/ping")).send().await.expect("sent");
    assert_eq!(res.status(), 405);
    assert_eq!(json_body(res).await["error"]["code"], "method_not_allowed");
    t.shutdown().await;
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_a_sane_client_id_is_kept() {
    let t = two_probes().await;
    let generated = t.get("/ext/alpha/ping").await;
    let id = generated.headers()["x-request-id"].to_str().expect("ascii").to_owned();
    assert_eq!(id.len(), 32, "{id}");

    let res = t.client().get(t.url("/nope")).header("x-request-id", "trace-42").send().await.expect("sent");
    assert_eq!(res.headers()["x-request-id"], "trace-42");
    assert_eq!(json_body(res).await["error"]["request_id"], "trace-42");

    let res = t
        .client()
        .get(t.url("/health"))
        .header("x-request-id", "bad id with spaces")
        .send()
        .await
        .expect("sent");
    assert_ne!(res.headers()["x-request-id"], "bad id with spaces");
    t.shutdown().await;
}

#[tokio::test]
async fn a_panicking_handler_gets_500_while_siblings_keep_answering() {
    let t = two_probes().await;
    for round in 0..40 {
        let res = t
            .client()
            .get(t.url("/ext/alpha/boom"))
            .header("x-request-id", format!("boom-{round}"))
            .send()
            .await
            .expect("sent");
        assert_eq!(res.status(), 500);
        let body = json_body(res).await;
        assert_eq!(body["error"]["code"], "internal_error");
        assert_eq!(body["error"]["request_id"], format!("boom-{round}"));
        assert!(
            !body["error"]["message"].as_str().unwrap_or("").contains("exploded"),
            "panic text must not leak"
        );

        assert_eq!(t.get("/ext/alpha/ping").await.status(), 200, "same extension, round {round}");
        assert_eq!(t.get("/ext/beta/ping").await.status(), 200, "other extension, round {round}");
    }
    assert_eq!(t.host().stats("alpha").map(|s| s.handler_panics), Some(40));
    assert_eq!(t.host().stats("beta").map(|s| s.handler_panics), Some(0));
    assert_eq!(t.get("/ready").await.status(), 200);
    t.shutdown().await;
}

#[tokio::test]
async fn health_is_live_and_ready_lists_extension_states() {
    let t = two_probes().await;
    assert_eq!(json_body(t.get("/health").await).await["status"], "ok");
    let ready = t.get("/ready").await;
    assert_eq!(ready.status(), 200);
    let body = json_body(ready).await;
    assert_eq!(body["extensions"]["alpha"], "running");
    assert_eq!(body["extensions"]["beta"], "running");
    t.shutdown().await;
}

#[tokio::test]
async fn the_hello_example_answers_pong() {
    let t =
        TestHost::builder().extensions(annex::compiled_in().expect("anchors")).start().await.expect("starts");
    let res = t.get("/ext/hello/ping").await;
    assert_eq!(res.status(), 200);
    assert_eq!(json_body(res).await, serde_json::json!({ "pong": true }));
    t.shutdown().await;
}

/// `GET /secret` needs role `admin`.
struct Guarded;

#[annex_core::async_trait]
impl annex_core::Extension for Guarded {
    fn metadata(&self) -> annex_core::Metadata {
        annex_core::Metadata::new("guarded", "1.0.0")
    }
    fn register(&self, r: &mut annex_core::Registrar) {
        r.get("/secret", |who: annex_core::Identity| async move { who.id().to_owned() })
            .require_role("admin");
    }
}

#[tokio::test]
async fn the_admin_token_grants_role_admin_on_extension_routes() {
    let t = TestHost::builder()
        .extension(Guarded)
        .config(|c| c.server.admin_token = Some("s3cret-token".into()))
        .start()
        .await
        .expect("host starts");
    let anonymous = t.get("/ext/guarded/secret").await;
    assert_eq!(anonymous.status(), 401);
    let wrong = t.client().get(t.url("/ext/guarded/secret")).bearer_auth("nope").send().await.expect("sent");
    assert_eq!(wrong.status(), 401);
    let admin =
        t.client().get(t.url("/ext/guarded/secret")).bearer_auth("s3cret-token").send().await.expect("sent");
    assert_eq!(admin.status(), 200);
    assert_eq!(admin.text().await.expect("body"), "admin");
    t.shutdown().await;
}
