//! The providers against a local fake server (axum on 127.0.0.1:0): the model name picks its
//! behaviour (`ok`, `rate` → 429, `bad` → 400, `down` → 503, `slow` → answers after 10 s,
//! `empty` → an answer without text).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::tests::request;
use crate::{anthropic, openai_compatible};
use annex_core::stage::{Outcome, StageResult};

/// What the fake server received: headers and body of each call.
type Seen = Arc<Mutex<Vec<(HeaderMap, Value)>>>;

async fn fake_openai(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let ok = json!({"choices": [{"message": {"role": "assistant", "content": "hello from gpt"}}]});
    behave(&seen, headers, body, ok).await
}

async fn fake_anthropic(
    State(seen): State<Seen>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> (StatusCode, Json<Value>) {
    let ok = json!({"content": [{"type": "text", "text": "hello from claude"}]});
    behave(&seen, headers, body, ok).await
}

async fn behave(seen: &Seen, headers: HeaderMap, body: Value, ok: Value) -> (StatusCode, Json<Value>) {
    seen.lock().unwrap_or_else(|p| p.into_inner()).push((headers, body.clone()));
    match body["model"].as_str().unwrap_or_default() {
        "rate" => (StatusCode::TOO_MANY_REQUESTS, Json(json!({"error": "slow down"}))),
        "bad" => (StatusCode::BAD_REQUEST, Json(json!({"error": "bad model"}))),
        "down" => (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"error": "down"}))),
        "slow" => {
            tokio::time::sleep(Duration::from_secs(10)).await;
            (StatusCode::OK, Json(ok))
        }
        "empty" => (StatusCode::OK, Json(json!({"choices": [], "content": []}))),
        _ => (StatusCode::OK, Json(ok)),
    }
}

async fn server() -> (String, Seen) {
    let seen = Seen::default();
    let app = Router::new()
        .route("/v1/chat/completions", post(fake_openai))
        .route("/v1/messages", post(fake_anthropic))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}"), seen)
}

fn env(var: &str) -> Option<String> {
    (var == "TEST_KEY").then(|| "sk-test".to_owned())
}

fn error_of(res: &StageResult) -> (&str, bool) {
    let e = res.error.as_ref().unwrap_or_else(|| panic!("an error: {res:?}"));
    (e.code.as_str(), e.retryable)
}

#[tokio::test]
async fn openai_compatible_sends_the_text_and_maps_the_answer() {
    let (base, seen) = server().await;
    let http = reqwest::Client::new();
    let config = json!({"base_url": format!("{base}/v1"), "model": "ok", "api_key_env": "TEST_KEY", "system": "be brief"});
    let res = openai_compatible(&http, &request(json!({"text": "hi"}), config), &env).await;
    assert_eq!(res, StageResult::modified(json!({"text": "hello from gpt"})));
    let seen = seen.lock().expect("seen");
    let (headers, body) = &seen[0];
    assert_eq!(headers["authorization"], "Bearer sk-test");
    assert_eq!(
        body["messages"],
        json!([{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    );
}

#[tokio::test]
async fn anthropic_sends_the_messages_api_request() {
    let (base, seen) = server().await;
    let http = reqwest::Client::new();
    let config = json!({"base_url": base, "model": "claude-ok", "api_key_env": "TEST_KEY", "max_tokens": 64});
    let payload =
        json!({"messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "hi"}]});
    let res = anthropic(&http, &request(payload, config), &env).await;
    assert_eq!(res, StageResult::modified(json!({"text": "hello from claude"})));
    let seen = seen.lock().expect("seen");
    let (headers, body) = &seen[0];
    assert_eq!(headers["x-api-key"], "sk-test");
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["system"], "sys");
    assert_eq!(body["messages"], json!([{"role": "user", "content": "hi"}]));
}

#[tokio::test]
async fn http_errors_map_to_retryable_or_not() {
    let (base, _) = server().await;
    let http = reqwest::Client::new();
    for (model, code, retryable) in [
        ("rate", "upstream_rate_limited", true),
        ("down", "upstream_unavailable", true),
        ("bad", "upstream_rejected", false),
        ("empty", "bad_upstream_answer", false),
    ] {
        let openai = json!({"base_url": format!("{base}/v1"), "model": model, "api_key_env": "TEST_KEY"});
        let res = openai_compatible(&http, &request(json!("hi"), openai), &env).await;
        assert_eq!(error_of(&res), (code, retryable), "openai {model}");
        let claude = json!({"base_url": base, "model": model, "api_key_env": "TEST_KEY"});
        let res = anthropic(&http, &request(json!("hi"), claude), &env).await;
        assert_eq!(error_of(&res), (code, retryable), "anthropic {model}");
    }
}

#[tokio::test]
async fn a_slow_server_is_cut_at_the_deadline() {
    let (base, _) = server().await;
    let http = reqwest::Client::new();
    for anthropic_api in [false, true] {
        let config = json!({"base_url": if anthropic_api { base.clone() } else { format!("{base}/v1") },
                            "model": "slow", "api_key_env": "TEST_KEY", "timeout_ms": 60000});
        let mut req = request(json!("hi"), config);
        req.deadline = chrono::Utc::now() + chrono::Duration::milliseconds(300);
        let started = Instant::now();
        let res = if anthropic_api {
            anthropic(&http, &req, &env).await
        } else {
            openai_compatible(&http, &req, &env).await
        };
        assert_eq!(error_of(&res), ("upstream_timeout", true));
        let took = started.elapsed();
        assert!(took < Duration::from_secs(3), "gave up at the deadline, not the server's 10 s: {took:?}");
        assert_eq!(res.outcome, Outcome::Error);
    }
}

#[tokio::test]
async fn a_connection_refused_is_retryable_and_a_missing_key_is_not() {
    let http = reqwest::Client::new();
    // A port nobody listens on: bind one, then let it go.
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let config = json!({"base_url": format!("http://127.0.0.1:{port}"), "api_key_env": "TEST_KEY"});
    let res = openai_compatible(&http, &request(json!("hi"), config.clone()), &env).await;
    assert_eq!(error_of(&res), ("upstream_unreachable", true));

    let config =
        json!({"base_url": format!("http://127.0.0.1:{port}"), "api_key_env": "ANNEX_TEST_NO_SUCH_KEY"});
    for res in [
        openai_compatible(&http, &request(json!("hi"), config.clone()), &env).await,
        anthropic(&http, &request(json!("hi"), config), &env).await,
    ] {
        assert_eq!(error_of(&res), ("missing_api_key", false));
        assert!(res.error.expect("error").message.contains("ANNEX_TEST_NO_SUCH_KEY"));
    }
    let res = openai_compatible(&http, &request(json!(42), json!({"api_key_env": "TEST_KEY"})), &env).await;
    assert_eq!(error_of(&res), ("bad_payload", false));
}

#[tokio::test]
async fn a_passed_deadline_is_not_retried() {
    let http = reqwest::Client::new();
    let mut req = request(json!("hi"), json!({"api_key_env": "TEST_KEY"}));
    req.deadline = chrono::Utc::now() - chrono::Duration::seconds(1);
    assert_eq!(error_of(&openai_compatible(&http, &req, &env).await), ("deadline_exceeded", false));
}
