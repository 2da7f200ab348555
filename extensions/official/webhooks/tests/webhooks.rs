//! The webhooks extension end to end: a real host on a real PostgreSQL, and a real HTTP
//! receiver on 127.0.0.1 that records what arrives.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annex_core::config::Config;
use annex_core::testkit::TestHost;
use annex_ext_webhooks::Webhooks;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

const TOKEN: &str = "webhooks-test-admin-token";
const SECRET: &str = "a-long-enough-subscription-secret";

/// What one request to the receiver carried.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
}

/// A local HTTP endpoint that answers 500 to its first `fail_first` requests, then 200.
#[derive(Debug, Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    fail_first: Arc<AtomicUsize>,
    url: String,
}

impl Receiver {
    async fn start(fail_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let r = Receiver { fail_first: Arc::new(AtomicUsize::new(fail_first)), url, ..Default::default() };
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn received(&self) -> Vec<Received> {
        self.got.lock().expect("lock").clone()
    }

    async fn wait_for(&self, n: usize) -> Vec<Received> {
        eventually(&format!("{n} requests at the receiver"), || {
            let got = self.received();
            async move { (got.len() >= n).then_some(got) }
        })
        .await
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    r.got.lock().expect("lock").push(Received { headers, body });
    let failing = r.fail_first.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1)).is_ok();
    if failing { StatusCode::INTERNAL_SERVER_ERROR } else { StatusCode::OK }
}

/// Polls `check` until it yields a value, for at most 30 s.
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Grants what webhooks needs, sets the admin token and the extension's config.
fn setup(c: &mut Config, settings: Value) {
    c.server.admin_token = Some(TOKEN.into());
    let e = c.extensions.entry("webhooks".into()).or_default();
    e.permissions = ["database", "events:subscribe", "http:outbound"].map(String::from).to_vec();
    e.config = Some(settings);
}

/// Fast retries, private targets allowed (the receiver is on loopback).
fn fast() -> Value {
    json!({ "allow_private_targets": true, "backoff_base_ms": 20, "backoff_max_ms": 100,
            "poll_interval_ms": 50, "timeout_ms": 2000 })
}

async fn host(settings: Value) -> TestHost {
    TestHost::builder()
        .extension(Webhooks::default())
        .config(|c| setup(c, settings))
        .start()
        .await
        .expect("host starts")
}

async fn replica(database_url: &str, settings: Value) -> TestHost {
    TestHost::builder()
        .extension(Webhooks::default())
        .database_url(database_url)
        .config(|c| setup(c, settings))
        .start()
        .await
        .expect("replica starts")
}

async fn call(t: &TestHost, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = t.client().request(method, t.url(path)).bearer_auth(TOKEN);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("sent");
    let status = res.status().as_u16();
    let text = res.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn subscribe(t: &TestHost, url: &str, events: &[&str]) -> i64 {
    let body = json!({ "url": url, "events": events, "secret": SECRET });
    let (status, sub) = call(t, reqwest::Method::POST, "/ext/webhooks/subscriptions", Some(body)).await;
    assert_eq!(status, 201, "{sub}");
    sub["id"].as_i64().expect("an id")
}

/// The delivery with `id`, once its status is `status`.
async fn delivery_when(t: &TestHost, id: &str, status: &str) -> Value {
    eventually(&format!("delivery {id} {status}"), || async move {
        let (_, d) = call(t, reqwest::Method::GET, &format!("/ext/webhooks/deliveries/{id}"), None).await;
        (d["status"] == status).then_some(d)
    })
    .await
}

fn hmac_hex(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(body);
    mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn a_delivery_arrives_with_a_signature_that_verifies_with_standard_hmac_sha256() {
    let receiver = Receiver::start(0).await;
    let t = host(fast()).await;
    let sub = subscribe(&t, &receiver.url, &["shop.*"]).await;

    t.host().publish("unrelated.thing", json!({}));
    t.host().publish("shop.created", json!({ "order": 42 }));
    let got = receiver.wait_for(1).await;
    let req = &got[0];

    let expected = format!("sha256={}", hmac_hex(SECRET, &req.body));
    assert_eq!(req.header("x-annex-signature"), expected);
    assert_eq!(req.header("x-annex-event"), "shop.created");
    assert_eq!(req.header("content-type"), "application/json");
    let body = req.json();
    assert_eq!(body["event"], "shop.created");
    assert_eq!(body["data"], json!({ "order": 42 }));
    assert!(body["id"].as_str().is_some_and(|id| !id.is_empty()), "{body}");
    assert!(body["occurred_at"].as_str().is_some_and(|at| at.contains('T')), "{body}");

    let delivery_id = req.header("x-annex-delivery");
    let d = delivery_when(&t, &delivery_id, "succeeded").await;
    assert_eq!(d["subscription_id"], sub);
    assert_eq!(d["attempts"][0]["status_code"], 200);
    assert_eq!(d["payload"], body);
    let (_, list) =
        call(&t, reqwest::Method::GET, &format!("/ext/webhooks/deliveries?subscription={sub}"), None).await;
    assert_eq!(list["deliveries"].as_array().map(Vec::len), Some(1), "only `shop.*` matched: {list}");
    t.shutdown().await;
}

#[tokio::test]
async fn a_receiver_failing_twice_gets_the_delivery_on_the_third_try() {
    let receiver = Receiver::start(2).await;
    let t = host(fast()).await;
    subscribe(&t, &receiver.url, &["test.*"]).await;

    t.host().publish("test.retried", json!({ "n": 1 }));
    let got = receiver.wait_for(3).await;
    let ids: HashSet<String> = got.iter().map(|r| r.header("x-annex-delivery")).collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same delivery id");
    assert!(got.iter().all(|r| r.body == got[0].body), "every attempt sends the same body");

    let id = got[0].header("x-annex-delivery");
    let d = delivery_when(&t, &id, "succeeded").await;
    let codes: Vec<&Value> =
        d["attempts"].as_array().expect("attempts").iter().map(|a| &a["status_code"]).collect();
    assert_eq!(codes, [&json!(500), &json!(500), &json!(200)], "{d}");
    assert!(d["attempts"][0]["error"].as_str().is_some_and(|e| e.contains("500")), "{d}");
    assert!(d["attempts"][2]["error"].is_null());
    // The sentinel, through the same subscription and worker: had the succeeded delivery been
    // sent again, that would arrive before it.
    t.host().publish("test.sentinel", json!({}));
    let got = receiver.wait_for(4).await;
    let events: Vec<String> = got.iter().map(|r| r.header("x-annex-event")).collect();
    assert_eq!(
        events,
        ["test.retried", "test.retried", "test.retried", "test.sentinel"],
        "nothing is sent after success"
    );
    let d = delivery_when(&t, &id, "succeeded").await;
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(3), "{d}");
    t.shutdown().await;
}

#[tokio::test]
async fn a_delivery_out_of_attempts_is_failed_and_can_be_redelivered() {
    let receiver = Receiver::start(2).await;
    let mut settings = fast();
    settings["max_attempts"] = json!(2);
    let t = host(settings).await;
    subscribe(&t, &receiver.url, &["test.*"]).await;

    t.host().publish("test.doomed", json!({}));
    let got = receiver.wait_for(2).await;
    let id = got[0].header("x-annex-delivery");
    let d = delivery_when(&t, &id, "failed").await;
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(2), "{d}");
    let (_, failed) = call(&t, reqwest::Method::GET, "/ext/webhooks/deliveries?status=failed", None).await;
    assert_eq!(failed["deliveries"][0]["id"], id.as_str());

    let (status, again) =
        call(&t, reqwest::Method::POST, &format!("/ext/webhooks/deliveries/{id}/redeliver"), None).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["redelivery_of"], id.as_str());
    let new_id = again["id"].as_str().expect("new id").to_owned();
    let got = receiver.wait_for(3).await;
    assert_eq!(got[2].header("x-annex-delivery"), new_id);
    assert_eq!(got[2].body, got[0].body, "a redelivery sends the same body");
    delivery_when(&t, &new_id, "succeeded").await;

    let (status, err) = call(&t, reqwest::Method::GET, "/ext/webhooks/deliveries?status=lost", None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("invalid_filter")));
    let (status, _) = call(&t, reqwest::Method::POST, "/ext/webhooks/deliveries/nope/redeliver", None).await;
    assert_eq!(status, 404);
    t.shutdown().await;
}

#[tokio::test]
async fn a_host_restart_mid_retry_loses_nothing() {
    let receiver = Receiver::start(1).await;
    // The retry comes 2 to 4 s after the first failure: the host is restarted in between.
    let mut settings = fast();
    settings["backoff_base_ms"] = json!(4000);
    settings["backoff_max_ms"] = json!(4000);
    let first = host(settings.clone()).await;
    let database_url = first.database_url().to_owned();
    subscribe(&first, &receiver.url, &["test.*"]).await;
    first.host().publish("test.survives", json!({ "keep": true }));
    let got = receiver.wait_for(1).await;
    let id = got[0].header("x-annex-delivery");
    delivery_when(&first, &id, "pending").await;
    first.shutdown().await;

    let second = replica(&database_url, settings).await;
    let got = receiver.wait_for(2).await;
    assert_eq!(got[1].header("x-annex-delivery"), id);
    assert_eq!(got[1].body, got[0].body);
    let d = delivery_when(&second, &id, "succeeded").await;
    assert_eq!(d["attempts"].as_array().map(Vec::len), Some(2), "{d}");
    second.shutdown().await;
}

#[tokio::test]
async fn two_replicas_on_one_database_deliver_each_event_once() {
    let receiver = Receiver::start(0).await;
    let a = host(fast()).await;
    let b = replica(a.database_url(), fast()).await;
    subscribe(&a, &receiver.url, &["load.*"]).await;

    const EVENTS: usize = 40;
    for i in 0..EVENTS {
        let on = if i % 2 == 0 { &a } else { &b };
        on.host().publish("load.tick", json!({ "i": i }));
    }
    receiver.wait_for(EVENTS).await;
    let succeeded = eventually("every delivery recorded as succeeded", || async {
        let (_, l) =
            call(&b, reqwest::Method::GET, "/ext/webhooks/deliveries?status=succeeded&limit=500", None).await;
        let list = l["deliveries"].as_array().cloned().unwrap_or_default();
        (list.len() >= EVENTS).then_some(list)
    })
    .await;
    assert_eq!(succeeded.len(), EVENTS, "one delivery per event");
    // A second claim of a delivery would have counted a second attempt.
    assert!(succeeded.iter().all(|d| d["attempts"] == 1), "each delivery was sent once: {succeeded:?}");

    // The sentinels, one per replica, published once every delivery is done: a duplicate still
    // on its way would arrive before them.
    a.host().publish("load.sentinel", json!({ "replica": "a" }));
    b.host().publish("load.sentinel", json!({ "replica": "b" }));
    let got = receiver.wait_for(EVENTS + 2).await;
    let (ticks, sentinels) = got.split_at(EVENTS);
    let events: HashSet<i64> = ticks.iter().filter_map(|r| r.json()["data"]["i"].as_i64()).collect();
    assert_eq!(events.len(), EVENTS, "each event is delivered exactly once");
    let replicas: HashSet<String> = sentinels
        .iter()
        .filter(|r| r.header("x-annex-event") == "load.sentinel")
        .filter_map(|r| r.json()["data"]["replica"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(replicas.len(), 2, "the sentinels come right after the events");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn subscription_routes_need_the_admin_role_and_never_return_the_secret() {
    let receiver = Receiver::start(0).await;
    let t = host(fast()).await;
    let path = "/ext/webhooks/subscriptions";

    let res = t.client().get(t.url(path)).send().await.expect("sent");
    assert_eq!(res.status(), 401);
    let body: Value = res.json().await.expect("JSON error");
    assert!(body["error"]["code"].is_string(), "{body}");
    let res = t.client().get(t.url(path)).bearer_auth("not-the-token").send().await.expect("sent");
    assert!(matches!(res.status().as_u16(), 401 | 403), "{}", res.status());
    let res = t.client().post(t.url(path)).json(&json!({})).send().await.expect("sent");
    assert_eq!(res.status(), 401);
    let res = t.client().get(t.url("/ext/webhooks/deliveries")).send().await.expect("sent");
    assert_eq!(res.status(), 401);

    let id = subscribe(&t, &receiver.url, &["shop.*"]).await;
    let sub_path = format!("{path}/{id}");
    let (status, sub) = call(&t, reqwest::Method::GET, &sub_path, None).await;
    assert_eq!(status, 200);
    assert!(sub.get("secret").is_none(), "{sub}");
    assert!(!sub.to_string().contains(SECRET), "{sub}");
    assert_eq!(sub["secret_hint"], "…cret");

    let (status, sub) =
        call(&t, reqwest::Method::PUT, &sub_path, Some(json!({ "active": false, "events": ["a.*", "b.c"] })))
            .await;
    assert_eq!(status, 200, "{sub}");
    assert_eq!((sub["active"].clone(), sub["events"].clone()), (json!(false), json!(["a.*", "b.c"])));
    assert_eq!(sub["url"], receiver.url.as_str(), "fields not given are kept");
    let (_, list) = call(&t, reqwest::Method::GET, path, None).await;
    assert_eq!(list["subscriptions"].as_array().map(Vec::len), Some(1));
    let (status, _) = call(&t, reqwest::Method::DELETE, &sub_path, None).await;
    assert_eq!(status, 204);
    let (status, err) = call(&t, reqwest::Method::GET, &sub_path, None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not_found")));
    t.shutdown().await;
}

#[tokio::test]
async fn invalid_subscriptions_are_refused_with_422_naming_the_problem() {
    let t = host(fast()).await;
    let path = "/ext/webhooks/subscriptions";
    let cases = [
        (
            json!({ "url": "ftp://example.com/", "events": ["*"], "secret": SECRET }),
            "invalid_url",
            "scheme `ftp`",
        ),
        (json!({ "url": "not a url", "events": ["*"], "secret": SECRET }), "invalid_url", "not a valid URL"),
        (
            json!({ "url": "http://example.com/", "events": [], "secret": SECRET }),
            "invalid_subscription",
            "`events` is empty",
        ),
        (
            json!({ "url": "http://example.com/", "events": ["a..b"], "secret": SECRET }),
            "invalid_subscription",
            "not a pattern",
        ),
        (
            json!({ "url": "http://example.com/", "events": ["*"], "secret": "short" }),
            "invalid_subscription",
            "`secret` has 5",
        ),
        (json!({ "events": ["*"] }), "invalid_subscription", "missing `url`, `secret`"),
        (
            json!({ "url": "http://example.com/", "events": "*", "secret": SECRET }),
            "invalid_subscription",
            "expected a JSON object",
        ),
    ];
    for (body, code, needle) in cases {
        let (status, err) = call(&t, reqwest::Method::POST, path, Some(body.clone())).await;
        assert_eq!(status, 422, "{body} → {err}");
        assert_eq!(err["error"]["code"], code, "{body} → {err}");
        let message = err["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains(needle), "{body} → {message}");
    }
    t.shutdown().await;
}

#[tokio::test]
async fn a_private_target_is_refused_unless_allow_private_targets_is_set() {
    let receiver = Receiver::start(0).await;
    let t = host(
        json!({ "poll_interval_ms": 50, "backoff_base_ms": 20, "backoff_max_ms": 50, "max_attempts": 1 }),
    )
    .await;
    let path = "/ext/webhooks/subscriptions";
    let body = json!({ "url": receiver.url, "events": ["*"], "secret": SECRET });
    let (status, err) = call(&t, reqwest::Method::POST, path, Some(body.clone())).await;
    assert_eq!((status, err["error"]["code"].as_str()), (422, Some("private_target")), "{err}");
    let message = err["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("loopback") && message.contains("allow_private_targets = true"), "{message}");
    for url in ["http://10.0.0.1/", "http://[::1]:8080/", "http://169.254.169.254/latest/meta-data"] {
        let (status, _) = call(
            &t,
            reqwest::Method::POST,
            path,
            Some(json!({ "url": url, "events": ["*"], "secret": SECRET })),
        )
        .await;
        assert_eq!(status, 422, "{url}");
    }

    // Allowed at creation, refused again at delivery time once the operator turns it off.
    let config = "/api/v1/extensions/webhooks/config";
    let allow = json!({ "allow_private_targets": true, "poll_interval_ms": 50, "max_attempts": 1 });
    let (status, res) = call(&t, reqwest::Method::PUT, config, Some(allow)).await;
    assert_eq!(status, 200, "{res}");
    subscribe(&t, &receiver.url, &["test.*"]).await;
    let deny = json!({ "allow_private_targets": false, "poll_interval_ms": 50, "max_attempts": 1 });
    let (status, res) = call(&t, reqwest::Method::PUT, config, Some(deny)).await;
    assert_eq!(status, 200, "{res}");
    t.host().publish("test.blocked", json!({}));
    let d = eventually("a failed delivery", || async {
        let (_, l) = call(&t, reqwest::Method::GET, "/ext/webhooks/deliveries?status=failed", None).await;
        l["deliveries"].get(0).cloned()
    })
    .await;
    let error = d["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("allow_private_targets = true"), "{d}");
    assert!(receiver.received().is_empty(), "nothing reached the private target");
    t.shutdown().await;
}

/// Not a check: prints how fast one host drains a burst of events to a local receiver.
/// `cargo test -p annex-ext-webhooks --test webhooks -- --ignored --nocapture measure`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "a measurement, run by hand"]
async fn measure_delivery_throughput() {
    const EVENTS: usize = 1000;
    let receiver = Receiver::start(0).await;
    for replicas in [1, 2] {
        let a = host(fast()).await;
        let b = if replicas == 2 { Some(replica(a.database_url(), fast()).await) } else { None };
        subscribe(&a, &receiver.url, &["bench.*"]).await;
        let before = receiver.received().len();
        let started = std::time::Instant::now();
        for i in 0..EVENTS {
            let on = match &b {
                Some(b) if i % 2 == 1 => b,
                _ => &a,
            };
            on.host().publish("bench.tick", json!({ "i": i }));
        }
        receiver.wait_for(before + EVENTS).await;
        let took = started.elapsed();
        println!(
            "{replicas} replica(s): {EVENTS} deliveries in {:.2} s = {:.0}/s",
            took.as_secs_f64(),
            EVENTS as f64 / took.as_secs_f64()
        );
        if let Some(b) = b {
            b.shutdown().await;
        }
        a.shutdown().await;
    }
}
