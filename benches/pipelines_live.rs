//! Pipelines as callers meet them, over HTTP on loopback against a real PostgreSQL and a real
//! nats-server (the test kit's throwaway servers), with the official guardrails stages:
//! 1. one remote stage over NATS: `POST /pipelines/remote` (a validator answered by a responder
//!    in this process over the nats-server, then the mock provider) next to `POST
//!    /pipelines/local` (the mock provider alone); the difference of the p50s is what the remote
//!    stage adds (goal ≤ 250 µs);
//! 2. runs per second with the mock provider: 32 concurrent callers for 5 s, for the mock alone and
//!    for the whole guardrails chain (normalize_text → pii_guard → mock → mask_pii).
//!
//! Each latency figure is the median of its calls, alternating between the two pipelines so the
//! machine's noise hits both alike. Run: `cargo bench --bench pipelines_live`.

use std::time::{Duration, Instant};

use annex_core::stage::StageResult;
use annex_core::testkit::TestHost;
use futures::StreamExt;
use serde_json::{Value, json};

const TOKEN: &str = "bench-admin-token";

fn percentile(xs: &mut [Duration], p: f64) -> Duration {
    xs.sort();
    xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

async fn api(t: &TestHost, method: reqwest::Method, path: &str, body: Value) -> (u16, Value) {
    let res =
        t.client().request(method, t.url(path)).bearer_auth(TOKEN).json(&body).send().await.expect("sent");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn run(client: &reqwest::Client, url: &str) -> Duration {
    let started = Instant::now();
    let res = client.post(url).json(&json!({"text": "Hello, World"})).send().await.expect("sent");
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap_or_default());
    res.bytes().await.expect("body");
    started.elapsed()
}

/// Runs per second with `callers` concurrent callers for `secs` seconds.
async fn throughput(client: &reqwest::Client, url: &str, callers: usize, secs: u64) -> f64 {
    let end = Instant::now() + Duration::from_secs(secs);
    let started = Instant::now();
    let tasks: Vec<_> = (0..callers)
        .map(|_| {
            let (client, url) = (client.clone(), url.to_owned());
            tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < end {
                    run(&client, &url).await;
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await.expect("a caller");
    }
    total as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let nats = annex_core::testkit::nats::test_nats_url().await.expect("a test nats-server");
        let url = nats.clone();
        let t = TestHost::builder()
            .extension(annex_ext_guardrails::Guardrails::default())
            .config(move |c| {
                c.server.admin_token = Some(TOKEN.into());
                c.nats.url = Some(url);
                c.log.filter = "warn".into();
            })
            .start()
            .await
            .expect("host starts");

        // A remote validator that lets everything pass, answering over the nats-server.
        let subject = "bench.remote.pass.v1";
        let nc = async_nats::connect(&nats).await.expect("responder connects");
        let mut sub = nc.queue_subscribe(subject.to_owned(), "bench".into()).await.expect("subscribes");
        nc.flush().await.expect("flush");
        tokio::spawn(async move {
            let ok = serde_json::to_vec(&StageResult::continue_()).expect("json");
            while let Some(msg) = sub.next().await {
                if let Some(reply) = msg.reply {
                    let _ = nc.publish(reply, ok.clone().into()).await;
                }
            }
        });
        let stage = json!({"id": "bench.pass", "kind": "validator", "subject": subject, "timeout_ms": 1000});
        assert_eq!(api(&t, reqwest::Method::POST, "/api/v1/stages", stage).await.0, 201);
        for (name, pipeline) in [
            ("local", json!({"providers": [{"stage": "guardrails.mock"}]})),
            (
                "remote",
                json!({"validators": [{"stage": "bench.pass"}], "providers": [{"stage": "guardrails.mock"}]}),
            ),
            (
                "guarded",
                json!({"pre": ["guardrails.normalize_text"], "validators": [{"stage": "guardrails.pii_guard"}],
                       "providers": [{"stage": "guardrails.mock"}], "post": ["guardrails.mask_pii"]}),
            ),
        ] {
            let (s, b) = api(&t, reqwest::Method::PUT, &format!("/api/v1/pipelines/{name}"), pipeline).await;
            assert_eq!(s, 200, "{b}");
        }
        let client = reqwest::Client::new();
        let (local, remote, guarded) =
            (t.url("/pipelines/local"), t.url("/pipelines/remote"), t.url("/pipelines/guarded"));
        // Sentinel: every pipeline is served (the snapshot reloaded after the writes).
        for u in [&local, &remote, &guarded] {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                let res = client.post(u.as_str()).json(&json!("x")).send().await.expect("sent");
                if res.status() == 200 {
                    break;
                }
                assert!(Instant::now() < deadline, "{u} never served: {}", res.status());
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }

        for _ in 0..500 {
            run(&client, &local).await;
            run(&client, &remote).await;
        }
        let (mut l, mut r) = (Vec::new(), Vec::new());
        for _ in 0..3000 {
            l.push(run(&client, &local).await);
            r.push(run(&client, &remote).await);
        }
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        let (l50, r50) = (percentile(&mut l, 0.5), percentile(&mut r, 0.5));
        let (l99, r99) = (percentile(&mut l, 0.99), percentile(&mut r, 0.99));
        println!(
            "one NATS remote stage, 3000 calls each, one caller: mock alone p50 {:.0} µs (p99 {:.0}), \
             + remote validator p50 {:.0} µs (p99 {:.0}): added p50 {:.0} µs (goal ≤ 250 µs)",
            us(l50),
            us(l99),
            us(r50),
            us(r99),
            us(r50) - us(l50)
        );
        let mock = throughput(&client, &local, 32, 5).await;
        let chain = throughput(&client, &guarded, 32, 5).await;
        println!(
            "runs per second, 32 callers for 5 s: mock provider alone {mock:.0}/s; \
             normalize_text → pii_guard → mock → mask_pii {chain:.0}/s"
        );
        t.shutdown().await;
    });
}
