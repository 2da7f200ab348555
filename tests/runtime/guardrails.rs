//! The guardrails stages and remote stages over a real nats-server: the test kit's servers,
//! annex's own NATS client, and the example remote stage (examples/remote_stage.rs).

use std::time::{Duration, Instant};

use annex_core::stage::{StageRequest, StageResult};
use annex_core::testkit::nats::{NatsServer, StageCallError, StageClient, test_nats_url};
use futures::StreamExt;
use serde_json::{Value, json};

fn request(stage: &str, payload: Value, config: Value) -> StageRequest {
    StageRequest {
        v: 1,
        request_id: uuid::Uuid::new_v4().to_string(),
        pipeline: "conformance".into(),
        stage: stage.into(),
        attempt: 1,
        deadline: chrono::Utc::now() + chrono::Duration::seconds(5),
        payload,
        config,
        context: Value::Null,
    }
}

/// Calls until `ok` holds for the answer, or fails after `within`.
async fn call_until(
    client: &StageClient,
    subject: &str,
    req: &StageRequest,
    within: Duration,
    ok: impl Fn(&Result<StageResult, StageCallError>) -> bool,
) -> Result<StageResult, StageCallError> {
    let deadline = Instant::now() + within;
    loop {
        let res = client.call(subject, req, Duration::from_millis(500)).await;
        if ok(&res) || Instant::now() >= deadline {
            return res;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// A responder that echoes (its subscription reaches the server a moment after this returns:
/// callers wait for the first answer with [`call_until`]).
/// It echoes the request's payload and its `Annex-*` headers.
async fn echo_responder(url: &str, subject: &str) -> tokio::task::JoinHandle<()> {
    let nc = async_nats::connect(url).await.expect("responder connects");
    let mut sub = nc.queue_subscribe(subject.to_owned(), "echo".into()).await.expect("subscribes");
    nc.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let req: StageRequest = serde_json::from_slice(&msg.payload).expect("a StageRequest");
            let headers = msg.headers.clone().unwrap_or_default();
            let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
            let res = StageResult::modified(json!({
                "payload": req.payload,
                "request_id": header("Annex-Request-Id"),
                "attempt": header("Annex-Attempt"),
                "deadline": header("Annex-Deadline").is_some(),
            }));
            if let Some(reply) = msg.reply {
                let _ = nc.publish(reply, serde_json::to_vec(&res).expect("json").into()).await;
            }
        }
    })
}

#[tokio::test]
async fn the_test_kit_nats_server_is_shared_and_carries_the_envelope_headers() {
    let url = test_nats_url().await.expect("test nats-server");
    assert_eq!(url, test_nats_url().await.expect("same server"), "one server per test process");
    let responder = echo_responder(&url, "annex.stage.pre.testkit_echo.v1").await;
    let client = StageClient::connect(&url).await.expect("client");
    let req = request("testkit.echo", json!("hi"), Value::Null);
    let res =
        call_until(&client, "annex.stage.pre.testkit_echo.v1", &req, Duration::from_secs(5), Result::is_ok)
            .await
            .expect("answer");
    let payload = res.payload.expect("modified");
    assert_eq!(payload["payload"], "hi");
    assert_eq!(payload["request_id"], req.request_id.as_str());
    assert_eq!(payload["attempt"], "1");
    assert_eq!(payload["deadline"], true);
    responder.abort();
}

#[tokio::test]
async fn a_restarted_server_keeps_its_url_and_clients_reconnect() {
    let mut server = NatsServer::start().await.expect("own nats-server");
    let url = server.url();
    let subject = "annex.stage.pre.testkit_restart.v1";
    let client = StageClient::connect(&url).await.expect("client");
    let responder = echo_responder(&url, subject).await;
    let req = request("testkit.restart", json!("before"), Value::Null);
    call_until(&client, subject, &req, Duration::from_secs(5), Result::is_ok)
        .await
        .expect("answer before the restart");

    server.stop();
    responder.abort();
    let down = client.call(subject, &req, Duration::from_millis(300)).await;
    assert!(down.is_err(), "no server, no answer: {down:?}");

    server.restart().await.expect("restarts");
    assert_eq!(server.url(), url);
    let responder = echo_responder(&url, subject).await;
    let res = call_until(&client, subject, &req, Duration::from_secs(10), Result::is_ok).await;
    assert!(res.is_ok(), "the client reconnects by itself: {res:?}");
    responder.abort();
}
