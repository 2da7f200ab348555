//! Durable host events (docs/reliability.md): a state change and its event are stored in one
//! transaction (`annex.event_outbox`), and the webhooks extension consumes the outbox from a
//! cursor of its own. A change the CLI made with no server running is delivered by the next
//! server; two replicas deliver one change once; and `annex serve` killed with SIGKILL at varying
//! points while changes are made loses none of their events.
#![cfg(feature = "ext-webhooks")]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use annex_core::testkit::TestHost;
use annex_core::{Extension, admin::Admin, config::Config};
use annex_ext_webhooks::Webhooks;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{Value, json};

use crate::support::{Base, Server, TOKEN, eventually};

const SECRET: &str = "a-long-enough-subscription-secret";
const GRANTS: [&str; 3] = ["database", "events:subscribe", "http:outbound"];

/// One request to the receiver: its `X-Annex-Delivery`, its body, and the status it was answered.
#[derive(Debug, Clone)]
struct Got {
    delivery: String,
    body: Value,
    status: u16,
}

/// An HTTP endpoint on 127.0.0.1 that records every request and answers 200 (or 503 to the first
/// `fail_first` requests of each delivery).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
    url: String,
    fail_first: usize,
}

impl Receiver {
    async fn start() -> Self {
        Self::failing(0).await
    }

    /// A receiver that answers 503 to the first `fail_first` attempts of every delivery.
    async fn failing(fail_first: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
        let r = Receiver { url, fail_first, ..Default::default() };
        let app = axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(r.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        r
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().expect("lock").clone()
    }

    /// The requests whose body `id` is `event_id`.
    fn of(&self, event_id: &str) -> Vec<Got> {
        self.got().into_iter().filter(|g| g.body["id"] == event_id).collect()
    }

    /// Waits until `done` holds for what arrived; when it times out, names what the database holds.
    async fn wait_in(&self, database_url: &str, what: &str, limit: Duration, done: impl Fn(&[Got]) -> bool) {
        if eventually(limit, || async { done(&self.got()) }).await.is_none() {
            let state = dump(database_url).await;
            panic!("timed out waiting for {what}; received: {:?}\n{state}", self.got());
        }
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let delivery =
        headers.get("x-annex-delivery").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut got = r.got.lock().expect("lock");
    let earlier = got.iter().filter(|g| g.delivery == delivery).count();
    let status = if earlier < r.fail_first { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::OK };
    got.push(Got { delivery, body, status: status.as_u16() });
    status
}

/// Fast retries and polls; private targets allowed (the receiver is on loopback).
fn fast() -> Value {
    json!({ "allow_private_targets": true, "backoff_base_ms": 20, "backoff_max_ms": 100,
            "poll_interval_ms": 50, "timeout_ms": 1000 })
}

/// A host with `webhooks` and `base` on `database_url`.
async fn host(database_url: &str) -> TestHost {
    TestHost::builder()
        .extension(Webhooks::default())
        .extension(Base::default())
        .database_url(database_url)
        .config(|c| {
            c.server.admin_token = Some(TOKEN.into());
            let e = c.extensions.entry("webhooks".into()).or_default();
            e.permissions = GRANTS.map(String::from).to_vec();
            e.config = Some(fast());
        })
        .start()
        .await
        .expect("host starts")
}

async fn call(base_url: &str, method: Method, path: &str, body: Value) -> (u16, Value) {
    let res = reqwest::Client::new()
        .request(method, format!("{base_url}{path}"))
        .bearer_auth(TOKEN)
        .json(&body)
        .send()
        .await
        .expect("sent");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn subscribe(base_url: &str, url: &str, events: &[&str]) {
    let body = json!({ "url": url, "events": events, "secret": SECRET });
    let (status, sub) = call(base_url, Method::POST, "/ext/webhooks/subscriptions", body).await;
    assert_eq!(status, 201, "{sub}");
}

/// The outbox, the cursors and the webhooks queue, for a failure message.
async fn dump(database_url: &str) -> String {
    let pool = sqlx::PgPool::connect(database_url).await.expect("connect");
    let rows: Vec<(i64, String, String)> =
        sqlx::query_as("select id, name, origin from annex.event_outbox order by id")
            .fetch_all(&pool)
            .await
            .unwrap_or_default();
    let cursors: Vec<(String, i64)> = sqlx::query_as("select consumer, last_id from annex.event_cursors")
        .fetch_all(&pool)
        .await
        .unwrap_or_default();
    let queue: Vec<(String, String, String, i32)> = sqlx::query_as(
        "select id, event_id, status, attempts from ext_webhooks.deliveries order by created_at",
    )
    .fetch_all(&pool)
    .await
    .unwrap_or_default();
    pool.close().await;
    format!("outbox: {rows:?}\ncursors: {cursors:?}\nqueue: {queue:?}")
}

/// The outbox rows named `name`, as the event ids the webhooks body carries.
async fn outbox_ids(database_url: &str, name: &str) -> BTreeSet<String> {
    let pool = sqlx::PgPool::connect(database_url).await.expect("connect");
    let ids: Vec<i64> = sqlx::query_scalar("select id from annex.event_outbox where name = $1 order by id")
        .bind(name)
        .fetch_all(&pool)
        .await
        .expect("outbox readable");
    pool.close().await;
    ids.into_iter().map(|id| format!("outbox-{id}")).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_config_change_made_by_the_cli_with_no_server_running_is_delivered_by_the_next_server() {
    let receiver = Receiver::start().await;
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let first = host(&url).await;
    subscribe(first.base_url(), &receiver.url, &["extension.config_changed"]).await;
    first.shutdown().await;

    // The CLI's path: the database alone, no server anywhere.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.database.url = Some(url.clone());
    config.data_dir = dir.path().to_owned();
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(Webhooks::default()), Arc::new(Base::default())];
    let cli = Admin::connect(&config, &extensions).await.expect("the CLI connects");
    cli.controller().set_config("base", json!({ "greeting": "offline" }), "cli").await.expect("stored");
    let stored = outbox_ids(&url, "extension.config_changed").await;
    let from_cli: Vec<String> = stored.iter().rev().take(1).cloned().collect();
    assert_eq!(from_cli.len(), 1, "the change wrote its event: {stored:?}");
    drop(cli);
    let id = from_cli[0].clone();
    assert!(receiver.of(&id).is_empty(), "nothing can deliver while no server runs: {:?}", receiver.got());

    let second = host(&url).await;
    receiver
        .wait_in(&url, "the CLI's change", Duration::from_secs(20), |got| {
            got.iter().any(|g| g.body["id"] == id)
        })
        .await;
    let got = receiver.of(&id);
    assert_eq!(got[0].body["event"], "extension.config_changed");
    assert_eq!(got[0].body["data"], json!({ "extension": "base", "replica": "cli" }));
    // The worker reports its backlog (the webhook-backlog alert reads it): drained, so 0.
    let reported = crate::support::eventually(Duration::from_secs(10), || async {
        let text = second.get("/metrics").await.text().await.unwrap_or_default();
        text.lines().any(|l| {
            l.starts_with("extension_gauge{")
                && l.contains("name=\"deliveries_pending\"")
                && l.ends_with(" 0")
        }) && text.contains("name=\"oldest_pending_seconds\"")
    })
    .await;
    assert!(reported.is_some(), "webhooks reports deliveries_pending and oldest_pending_seconds");
    second.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_replicas_on_one_database_deliver_one_state_change_once() {
    let receiver = Receiver::start().await;
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let a = host(&url).await;
    let b = host(&url).await;
    subscribe(a.base_url(), &receiver.url, &["extension.*"]).await;

    let (s, body) = call(a.base_url(), Method::POST, "/api/v1/extensions/base/disable", json!({})).await;
    assert_eq!(s, 200, "{body}");
    receiver
        .wait_in(&url, "the disable", Duration::from_secs(20), |got| {
            got.iter().any(|g| g.body["event"] == "extension.disabled")
        })
        .await;
    // The sentinel, made on the other replica: the outbox is consumed in order, so a second
    // delivery of the disable would have been enqueued before it.
    let (s, body) = call(b.base_url(), Method::POST, "/api/v1/extensions/base/enable", json!({})).await;
    assert_eq!(s, 200, "{body}");
    receiver
        .wait_in(&url, "the sentinel", Duration::from_secs(20), |got| {
            got.iter().any(|g| g.body["event"] == "extension.enabled")
        })
        .await;
    let got = receiver.got();
    let disabled: Vec<&Got> = got.iter().filter(|g| g.body["event"] == "extension.disabled").collect();
    assert_eq!(disabled.len(), 1, "one change, one delivery: {got:?}");
    assert_eq!(disabled[0].body["data"]["extension"], "base");
    let enabled = got.iter().filter(|g| g.body["event"] == "extension.enabled").count();
    assert_eq!(enabled, 1, "{got:?}");
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_activation_and_deactivation_are_delivered_as_outbox_events() {
    let receiver = Receiver::start().await;
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let t = host(&url).await;
    subscribe(t.base_url(), &receiver.url, &["site.*"]).await;
    let (s, b) =
        call(t.base_url(), Method::POST, "/api/v1/sites", json!({ "slug": "plant", "name": "Plant" })).await;
    assert_eq!(s, 201, "{b}");
    let activate = json!({ "config": { "greeting": "moin" }, "reason": "go-live" });
    let (s, b) =
        call(t.base_url(), Method::POST, "/api/v1/sites/plant/extensions/base/activate", activate).await;
    assert_eq!(s, 200, "{b}");
    let (s, b) = call(
        t.base_url(),
        Method::DELETE,
        "/api/v1/sites/plant/extensions/base",
        json!({ "reason": "done" }),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    receiver
        .wait_in(&url, "the activation and the deactivation", Duration::from_secs(20), |got| got.len() >= 2)
        .await;
    let got = receiver.got();
    let names: Vec<&str> = got.iter().filter_map(|g| g.body["event"].as_str()).collect();
    assert_eq!(names, ["site.extension_activated", "site.extension_deactivated"], "in order: {got:?}");
    for g in &got {
        assert_eq!(g.body["data"]["site"], "plant", "{g:?}");
        assert_eq!(g.body["data"]["extension"], "base", "{g:?}");
    }
    t.shutdown().await;
}

fn serve(url: &str, config_dir: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", url)
        .env("ANNEX_ADMIN_TOKEN", TOKEN)
        .current_dir(config_dir);
    c
}

/// `annex serve` (the real binary) is killed with SIGKILL in each round after the round's
/// `k`-th config change was answered, after a varying delay; every change that committed (every
/// `extension.config_changed` row, answered or not) must reach the receiver after the restarts.
/// Duplicates (the same `X-Annex-Delivery` twice: a send whose outcome died with the process)
/// are counted and printed; none may be lost.
#[tokio::test(flavor = "multi_thread")]
async fn serve_killed_with_sigkill_mid_changes_loses_no_event() {
    const ROUNDS: usize = 6;
    const CHANGES_PER_ROUND: usize = 4;
    let receiver = Receiver::start().await;
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let config = tempfile::tempdir().expect("tempdir");
    let toml = "[extensions.webhooks]\npermissions = [\"database\", \"events:subscribe\", \"http:outbound\"]\n\
         config = { allow_private_targets = true, backoff_base_ms = 20, backoff_max_ms = 100, poll_interval_ms = 50, timeout_ms = 1000 }\n";
    std::fs::write(config.path().join("annex.toml"), toml).expect("annex.toml");
    let data = tempfile::tempdir().expect("tempdir");

    let mut answered = 0usize;
    let mut change = 0u64;
    let mut before = BTreeSet::new();
    for round in 0..ROUNDS {
        let server = Server::start(serve(&url, config.path()), data.path());
        if round == 0 {
            subscribe(&server.url, &receiver.url, &["extension.config_changed"]).await;
            // Rows stored before the subscription existed may find nothing to deliver to.
            before = outbox_ids(&url, "extension.config_changed").await;
            println!("kill -9: stored before the subscription: {}", dump(&url).await);
        }
        // Kill after the `k`-th answer of this round (1..=4), `round * 7` ms later.
        let kill_after = round % CHANGES_PER_ROUND + 1;
        for _ in 0..kill_after {
            change += 1;
            let settings = json!({ "allow_private_targets": true, "backoff_base_ms": 20, "backoff_max_ms": 100,
                                   "poll_interval_ms": 50 + change, "timeout_ms": 1000 });
            let (s, body) =
                call(&server.url, Method::PUT, "/api/v1/extensions/webhooks/config", settings).await;
            assert_eq!(s, 200, "{body}");
            answered += 1;
        }
        tokio::time::sleep(Duration::from_millis(round as u64 * 7)).await;
        server.kill();
    }

    // The last start: every committed change's event arrives.
    let server = Server::start(serve(&url, config.path()), data.path());
    let committed: BTreeSet<String> =
        outbox_ids(&url, "extension.config_changed").await.difference(&before).cloned().collect();
    assert!(
        committed.len() >= answered,
        "every answered change was stored: {} < {answered}",
        committed.len()
    );
    let arrived = eventually(Duration::from_secs(120), || async {
        let got = receiver.got();
        let seen: BTreeSet<&str> = got.iter().filter_map(|g| g.body["id"].as_str()).collect();
        committed.iter().all(|id| seen.contains(id.as_str()))
    })
    .await;
    if arrived.is_none() {
        let (_, l) = call(&server.url, Method::GET, "/ext/webhooks/deliveries?limit=500", json!({})).await;
        let pool = sqlx::PgPool::connect(&url).await.expect("connect");
        let rows: Vec<(i64, String, String, String)> =
            sqlx::query_as("select id, name, origin, data::text from annex.event_outbox order by id")
                .fetch_all(&pool)
                .await
                .expect("outbox");
        let cursors: Vec<(String, i64)> = sqlx::query_as("select consumer, last_id from annex.event_cursors")
            .fetch_all(&pool)
            .await
            .expect("cursors");
        panic!(
            "not every committed change arrived: {committed:?}\noutbox: {rows:?}\ncursors: {cursors:?}\ndeliveries: {l}\nreceived: {:?}",
            receiver.got()
        );
    }
    // The sentinel: one more change, once everything before it arrived; then every delivery must
    // settle as succeeded (a send cut by a kill is retried when its lease runs out), so a
    // duplicate still on its way is counted too.
    let (s, body) = call(&server.url, Method::PUT, "/api/v1/extensions/webhooks/config", fast()).await;
    assert_eq!(s, 200, "{body}");
    let all: BTreeSet<String> =
        outbox_ids(&url, "extension.config_changed").await.difference(&before).cloned().collect();
    receiver
        .wait_in(&url, "the sentinel", Duration::from_secs(60), |got| {
            let seen: BTreeSet<&str> = got.iter().filter_map(|g| g.body["id"].as_str()).collect();
            all.iter().all(|id| seen.contains(id.as_str()))
        })
        .await;
    let settled = eventually(Duration::from_secs(90), || async {
        let (_, l) = call(&server.url, Method::GET, "/ext/webhooks/deliveries?limit=500", json!({})).await;
        let list = l["deliveries"].as_array().cloned().unwrap_or_default();
        list.len() >= all.len() && list.iter().all(|d| d["status"] == "succeeded")
    })
    .await;
    assert!(settled.is_some(), "every delivery settles as succeeded");

    // The requests for the changes made after the subscription existed.
    let got: Vec<Got> = receiver
        .got()
        .into_iter()
        .filter(|g| g.body["id"].as_str().is_some_and(|id| all.contains(id)))
        .collect();
    let mut by_delivery: BTreeMap<&str, usize> = BTreeMap::new();
    for g in &got {
        *by_delivery.entry(g.delivery.as_str()).or_default() += 1;
    }
    let duplicated: usize = by_delivery.values().map(|n| n - 1).sum();
    let seen: BTreeSet<&str> = got.iter().filter_map(|g| g.body["id"].as_str()).collect();
    let lost: Vec<&String> = all.iter().filter(|id| !seen.contains(id.as_str())).collect();
    let per_event: BTreeMap<&str, BTreeSet<&str>> = got.iter().fold(BTreeMap::new(), |mut m, g| {
        m.entry(g.body["id"].as_str().unwrap_or_default()).or_default().insert(g.delivery.as_str());
        m
    });
    println!(
        "kill -9: {ROUNDS} kills, {answered} changes answered, {} events stored, {} requests received, {} lost, {duplicated} duplicated",
        all.len(),
        got.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "lost events: {lost:?}");
    assert!(
        per_event.values().all(|d| d.len() == 1),
        "one delivery id per (event, subscription): {per_event:?}"
    );
    let (s, verdict) = call(&server.url, Method::GET, "/api/v1/audit/verify", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(verdict["ok"], true, "the audit chain verifies after the kills: {verdict}");
    server.stop();
}

/// `annex serve` killed with SIGKILL while deliveries are being retried (the receiver fails the
/// first three attempts of each): after the restarts, every committed change's delivery is
/// answered 200 exactly once per (event, subscription) id, retries resume where the dead process
/// left them (attempts are not reset), and the audit chain verifies.
#[tokio::test(flavor = "multi_thread")]
async fn serve_killed_during_webhook_retries_loses_no_delivery() {
    const ROUNDS: usize = 4;
    let receiver = Receiver::failing(3).await;
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let config = tempfile::tempdir().expect("tempdir");
    let settings = |poll: u64| {
        json!({ "allow_private_targets": true, "backoff_base_ms": 100, "backoff_max_ms": 400,
                "poll_interval_ms": poll, "timeout_ms": 1000, "max_attempts": 30 })
    };
    let toml = "[extensions.webhooks]\npermissions = [\"database\", \"events:subscribe\", \"http:outbound\"]\n\
         config = { allow_private_targets = true, backoff_base_ms = 100, backoff_max_ms = 400, poll_interval_ms = 50, timeout_ms = 1000, max_attempts = 30 }\n";
    std::fs::write(config.path().join("annex.toml"), toml).expect("annex.toml");
    let data = tempfile::tempdir().expect("tempdir");
    let mut before = BTreeSet::new();
    let mut kills_with_failures = 0;
    for round in 0..ROUNDS {
        let server = Server::start(serve(&url, config.path()), data.path());
        if round == 0 {
            subscribe(&server.url, &receiver.url, &["extension.config_changed"]).await;
            before = outbox_ids(&url, "extension.config_changed").await;
        }
        for i in 0..2u64 {
            let (s, body) = call(
                &server.url,
                Method::PUT,
                "/api/v1/extensions/webhooks/config",
                settings(50 + round as u64 * 2 + i),
            )
            .await;
            assert_eq!(s, 200, "{body}");
        }
        // Kill while retries are under way: once a refused attempt of this round's deliveries
        // arrived.
        let failures_before = receiver.got().iter().filter(|g| g.status != 200).count();
        let retrying = eventually(Duration::from_secs(20), || async {
            receiver.got().iter().filter(|g| g.status != 200).count() > failures_before
        })
        .await;
        assert!(retrying.is_some(), "round {round}: a delivery was refused and is being retried");
        kills_with_failures += 1;
        tokio::time::sleep(Duration::from_millis(round as u64 * 40)).await;
        server.kill();
    }
    let server = Server::start(serve(&url, config.path()), data.path());
    let all: BTreeSet<String> =
        outbox_ids(&url, "extension.config_changed").await.difference(&before).cloned().collect();
    receiver
        .wait_in(&url, "a 200 for every committed change", Duration::from_secs(120), |got| {
            all.iter().all(|id| got.iter().any(|g| g.status == 200 && g.body["id"] == id.as_str()))
        })
        .await;
    let got: Vec<Got> = receiver
        .got()
        .into_iter()
        .filter(|g| g.body["id"].as_str().is_some_and(|id| all.contains(id)))
        .collect();
    let mut accepted: BTreeMap<&str, usize> = BTreeMap::new();
    let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for g in &got {
        if g.status == 200 {
            *accepted.entry(g.delivery.as_str()).or_default() += 1;
        }
        ids.entry(g.body["id"].as_str().unwrap_or_default()).or_default().insert(g.delivery.as_str());
    }
    let duplicated: usize = accepted.values().map(|n| n - 1).sum();
    let lost = all.len() - ids.len();
    let refused = got.iter().filter(|g| g.status != 200).count();
    println!(
        "kill -9 during webhook retries: {kills_with_failures} kills mid-retry, {} events, {} requests ({refused} refused by the receiver), {lost} lost, {duplicated} accepted twice",
        all.len(),
        got.len()
    );
    assert_eq!(lost, 0, "every event was delivered");
    assert!(ids.values().all(|d| d.len() == 1), "one delivery id per (event, subscription): {ids:?}");
    assert!(duplicated <= kills_with_failures, "at most one resend per kill: {accepted:?}");
    // Attempts carried over the kills: no delivery was accepted before its fourth attempt.
    for (delivery, _) in accepted.iter() {
        let attempts = got.iter().filter(|g| g.delivery == *delivery).count();
        assert!(attempts >= 4, "{delivery}: three refusals, then the 200: {attempts}");
    }
    let (s, verdict) = call(&server.url, Method::GET, "/api/v1/audit/verify", json!({})).await;
    assert_eq!(s, 200);
    assert_eq!(verdict["ok"], true, "the audit chain verifies: {verdict}");
    server.stop();
}
