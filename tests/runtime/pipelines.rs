//! Pipelines end to end: a host with test stages (compiled in by the `lab` extension below), the
//! registry changed through the CLI's `Admin` (the admin API calls the same registry), runs over
//! real HTTP on a real PostgreSQL.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annex_core::admin::{Admin, PipelineInput, StageChange};
use annex_core::config::Config;
use annex_core::stage::{OnError, StageKind, StageRequest, StageResult, StageSpec};
use annex_core::testkit::TestHost;
use annex_core::{Context, Extension, Metadata, Registrar};
use serde_json::{Value, json};

/// What the lab's stages share with the test.
#[derive(Default)]
struct Shared {
    /// `"<stage> saw <payload>"`, in call order.
    seen: Mutex<Vec<String>>,
    /// The provider `flaky` fails while this is set.
    broken: AtomicBool,
    /// Calls of `flaky`, `retry_then_ok` and `fatal`.
    flaky_calls: AtomicU32,
    retry_calls: AtomicU32,
    fatal_calls: AtomicU32,
    /// The slow validator finished (it must not: the deny cancels it).
    slow_finished: AtomicBool,
    /// The slow validator's future was dropped unfinished.
    slow_dropped: AtomicBool,
}

impl Shared {
    fn saw(&self, stage: &str, payload: &Value) {
        self.seen.lock().unwrap().push(format!("{stage} saw {payload}"));
    }
    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Sets `slow_dropped` when dropped before `finished` was set.
struct Sentinel(Arc<Shared>);
impl Drop for Sentinel {
    fn drop(&mut self) {
        if !self.0.slow_finished.load(Ordering::SeqCst) {
            self.0.slow_dropped.store(true, Ordering::SeqCst);
        }
    }
}

#[derive(Clone, Default)]
struct Lab(Arc<Shared>);

fn spec(name: &str, kind: StageKind) -> StageSpec {
    StageSpec::new(name, kind).timeout_ms(400)
}

#[annex_core::async_trait]
impl Extension for Lab {
    fn metadata(&self) -> Metadata {
        Metadata::new("lab", "1.0.0")
    }

    fn register(&self, r: &mut Registrar) {
        let s = self.0.clone();
        let tag_schema = json!({"type": "object", "properties": {"label": {"type": "string"}}});
        r.stage(
            spec("tag", StageKind::Pre).config_schema(tag_schema).default_config(json!({"label": "pre"})),
            move |_cx: Context, req: StageRequest| {
                let s = s.clone();
                async move {
                    s.saw("tag", &req.payload);
                    let label = req.config["label"].as_str().unwrap_or("?").to_owned();
                    let mut p = req.payload.clone();
                    match p.as_object_mut() {
                        Some(map) => {
                            map.insert("trail".into(), json!([label]));
                            StageResult::modified(p)
                        }
                        None => StageResult::continue_(),
                    }
                }
            },
        );
        let s = self.0.clone();
        r.stage(spec("check", StageKind::Validator), move |_cx: Context, req: StageRequest| {
            let s = s.clone();
            async move {
                s.saw("check", &req.payload);
                if req.payload["deny"] == json!(true) {
                    StageResult::deny("not_allowed", "the payload asks to be denied")
                } else {
                    StageResult::continue_()
                }
            }
        });
        let s = self.0.clone();
        r.stage(
            spec("slow", StageKind::Validator).timeout_ms(5000),
            move |_cx: Context, _req: StageRequest| {
                let s = s.clone();
                async move {
                    let _sentinel = Sentinel(s.clone());
                    tokio::time::sleep(Duration::from_secs(2)).await;
                    s.slow_finished.store(true, Ordering::SeqCst);
                    StageResult::continue_()
                }
            },
        );
        let s = self.0.clone();
        r.stage(spec("answer", StageKind::Provider), move |_cx: Context, req: StageRequest| {
            let s = s.clone();
            async move {
                s.saw("answer", &req.payload);
                StageResult::modified(json!({ "answer": req.payload, "from": "answer" }))
            }
        });
        let s = self.0.clone();
        r.stage(spec("flaky", StageKind::Provider), move |_cx: Context, _req: StageRequest| {
            let s = s.clone();
            async move {
                s.flaky_calls.fetch_add(1, Ordering::SeqCst);
                if s.broken.load(Ordering::SeqCst) {
                    StageResult::error("upstream_down", false, "the test broke it")
                } else {
                    StageResult::modified(json!({ "from": "flaky" }))
                }
            }
        });
        let s = self.0.clone();
        r.stage(spec("post", StageKind::Post), move |_cx: Context, req: StageRequest| {
            let s = s.clone();
            async move {
                s.saw("post", &req.payload);
                let mut p = req.payload.clone();
                p["post"] = json!(true);
                p["input_seen"] = req.context["input"].clone();
                StageResult::modified(p)
            }
        });
        let s = self.0.clone();
        r.stage(spec("retry_then_ok", StageKind::Pre), move |_cx: Context, _req: StageRequest| {
            let s = s.clone();
            async move {
                if s.retry_calls.fetch_add(1, Ordering::SeqCst) < 2 {
                    StageResult::error("busy", true, "try again")
                } else {
                    StageResult::continue_()
                }
            }
        });
        let s = self.0.clone();
        r.stage(spec("fatal", StageKind::Pre), move |_cx: Context, _req: StageRequest| {
            let s = s.clone();
            async move {
                s.fatal_calls.fetch_add(1, Ordering::SeqCst);
                StageResult::error("broken", false, "never works")
            }
        });
        r.stage(
            spec("panics", StageKind::Pre).on_error(OnError::Open),
            |_cx: Context, _req: StageRequest| async { panic!("the pre stage panicked") },
        );
        r.stage(spec("malformed", StageKind::Validator), |_cx: Context, _req: StageRequest| async {
            StageResult::modified(json!("validators may not modify"))
        });
        for kind in StageKind::ALL {
            r.stage(spec(&format!("hang_{kind}"), kind), |_cx: Context, _req: StageRequest| async {
                std::future::pending::<StageResult>().await
            });
        }
    }
}

struct Lab1 {
    host: TestHost,
    admin: Admin,
    shared: Arc<Shared>,
    _dir: tempfile::TempDir,
}

async fn lab() -> Lab1 {
    let lab = Lab::default();
    let shared = lab.0.clone();
    let host = TestHost::builder()
        .extension(lab.clone())
        .config(|c| c.server.admin_token = Some(TOKEN.into()))
        .start()
        .await
        .expect("host starts");
    let dir = tempfile::tempdir().unwrap();
    let admin = cli(&host, dir.path(), lab).await;
    Lab1 { host, admin, shared, _dir: dir }
}

async fn cli(host: &TestHost, dir: &std::path::Path, lab: Lab) -> Admin {
    let mut c = Config::default();
    c.database.url = Some(host.database_url().to_owned());
    c.data_dir = dir.to_owned();
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(lab)];
    Admin::connect(&c, &extensions).await.expect("the CLI connects")
}

impl Lab1 {
    /// Writes pipeline `name` and waits until the host serves it as written.
    async fn pipeline(&self, name: &str, stages: Value) {
        let input: PipelineInput = serde_json::from_value(stages).expect("a pipeline input");
        self.admin.registry().put_pipeline("cli", name, input).await.expect("the pipeline is accepted");
        let want = self.admin.registry().pipeline(name).await.unwrap().updated_at;
        let reloaded = until(Duration::from_secs(5), || async {
            let status: Value = self.api_status().await;
            status["newest_change"].as_str().is_some_and(|at| Some(at.parse().unwrap()) >= want)
        })
        .await;
        assert!(reloaded, "the host reloaded after the pipeline was written");
    }

    async fn api_status(&self) -> Value {
        let res = self
            .host
            .client()
            .get(self.host.url("/api/v1/pipelines"))
            .bearer_auth(admin_token(&self.host))
            .send()
            .await
            .unwrap();
        res.json::<Value>().await.unwrap()["registry"].clone()
    }

    async fn change(&self, id: &str, change: Value) {
        let change: StageChange = serde_json::from_value(change).unwrap();
        self.admin.registry().change_stage("cli", id, change).await.expect("the change is accepted");
    }

    async fn run(&self, name: &str, payload: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let res = self
            .host
            .client()
            .post(self.host.url(&format!("/pipelines/{name}")))
            .json(&payload)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        (status, headers, res.json().await.unwrap_or(Value::Null))
    }
}

const TOKEN: &str = "pipelines-test-token";

fn admin_token(_host: &TestHost) -> &'static str {
    TOKEN
}

async fn until<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_host_holds_every_compiled_in_stage_and_keeps_an_operators_edits() {
    let l = lab().await;
    let stages = l.admin.registry().stages().await.unwrap();
    let ids: Vec<&str> = stages.iter().map(|s| s.id.as_str()).collect();
    for id in ["lab.tag", "lab.check", "lab.answer", "lab.post", "lab.hang_provider"] {
        assert!(ids.contains(&id), "{id} in {ids:?}");
    }
    let tag = stages.iter().find(|s| s.id == "lab.tag").unwrap();
    assert_eq!((tag.kind, tag.timeout_ms, &tag.config), (StageKind::Pre, 400, &json!({"label": "pre"})));
    l.change("lab.tag", json!({"timeout_ms": 250})).await;
    // A second host on the same database seeds again: the edit stays.
    let again = TestHost::builder()
        .extension(Lab::default())
        .database_url(l.host.database_url())
        .start()
        .await
        .unwrap();
    assert_eq!(l.admin.registry().stage("lab.tag").await.unwrap().timeout_ms, 250);
    again.shutdown().await;
    l.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stages_run_pre_validators_provider_post_each_seeing_what_the_one_before_left() {
    let l = lab().await;
    l.pipeline(
        "chat",
        json!({"pre": ["lab.tag"], "validators": [{"stage": "lab.check"}], "providers": [{"stage": "lab.answer"}],
               "post": ["lab.post"], "deadline_ms": 2000}),
    )
    .await;
    let (status, headers, body) = l.run("chat", json!({"text": "hi"})).await;
    assert_eq!(status, 200, "{body}");
    let tagged = json!({"text": "hi", "trail": ["pre"]});
    assert_eq!(
        l.shared.seen(),
        vec![
            format!("tag saw {}", json!({"text": "hi"})),
            format!("check saw {tagged}"),
            format!("answer saw {tagged}"),
            format!("post saw {}", json!({"answer": tagged, "from": "answer"})),
        ]
    );
    assert_eq!(body, json!({"answer": tagged, "from": "answer", "post": true, "input_seen": {"text": "hi"}}));
    let timing = headers["server-timing"].to_str().unwrap();
    for stage in ["lab.tag;dur=", "lab.check;dur=", "lab.answer;dur=", "lab.post;dur="] {
        assert!(timing.contains(stage), "{timing}");
    }
    assert!(headers.get("annex-degraded").is_none());

    // A deny is 422 naming the stage; unknown pipelines 404; a body that is not JSON 400.
    let (status, _, body) = l.run("chat", json!({"deny": true})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str(), body["error"]["stage"].as_str()),
        (422, Some("denied"), Some("lab.check"))
    );
    assert_eq!(body["error"]["reason"], "the payload asks to be denied");
    assert!(body["error"]["request_id"].is_string());
    assert_eq!(l.run("nope", json!(1)).await.0, 404);
    let res = l.host.client().post(l.host.url("/pipelines/chat")).body("{not json").send().await.unwrap();
    assert_eq!(res.status(), 400);
    // Any JSON value is a payload.
    assert_eq!(l.run("chat", json!([1, 2])).await.0, 200);

    let metrics = l.host.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"pipeline_requests_total{outcome="ok",pipeline="chat"} 2"#), "{metrics}");
    assert!(metrics.contains(r#"pipeline_requests_total{outcome="denied",pipeline="chat"} 1"#));
    assert!(
        metrics
            .contains(r#"pipeline_stage_calls_total{kind="validator",outcome="deny",stage="lab.check"} 1"#)
    );
    assert!(metrics.contains("pipeline_stage_duration_seconds_bucket{kind=\"pre\",stage=\"lab.tag\""));
    assert!(metrics.contains(r#"pipeline_stage_health_score{stage="lab.answer"} 1"#));
    l.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_first_deny_of_a_concurrent_group_cancels_the_others() {
    let l = lab().await;
    l.pipeline(
        "guarded",
        json!({"validators": [{"stage": "lab.slow", "order": 1}, {"stage": "lab.check", "order": 1}],
               "providers": [{"stage": "lab.answer"}], "deadline_ms": 5000}),
    )
    .await;
    let started = Instant::now();
    let (status, _, body) = l.run("guarded", json!({"deny": true})).await;
    assert_eq!(status, 422, "{body}");
    assert!(started.elapsed() < Duration::from_millis(1500), "the deny did not wait for the slow validator");
    let dropped =
        until(Duration::from_secs(2), || async { l.shared.slow_dropped.load(Ordering::SeqCst) }).await;
    assert!(dropped, "the slow validator was dropped");
    assert!(!l.shared.slow_finished.load(Ordering::SeqCst), "and never finished");
    l.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_retryable_error_is_retried_and_a_fatal_one_is_not() {
    let l = lab().await;
    l.change(
        "lab.retry_then_ok",
        json!({"retry": {"max_attempts": 3, "backoff_ms": 5, "max_backoff_ms": 20}}),
    )
    .await;
    l.change("lab.fatal", json!({"retry": {"max_attempts": 3, "backoff_ms": 5, "max_backoff_ms": 20}})).await;
    l.pipeline("retrying", json!({"pre": ["lab.retry_then_ok"], "providers": [{"stage": "lab.answer"}]}))
        .await;
    l.pipeline("fatal", json!({"pre": ["lab.fatal"], "providers": [{"stage": "lab.answer"}]})).await;
    let (status, _, body) = l.run("retrying", json!("x")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(l.shared.retry_calls.load(Ordering::SeqCst), 3, "two retryable failures, then success");
    let (status, _, body) = l.run("fatal", json!("x")).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("stage_unavailable")));
    assert_eq!(body["error"]["stage"], "lab.fatal");
    assert_eq!(l.shared.fatal_calls.load(Ordering::SeqCst), 1, "a non-retryable error is not retried");
    l.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn timeouts_never_add_up_past_the_deadline() {
    let l = lab().await;
    for kind in ["pre", "validator", "post"] {
        l.change(&format!("lab.hang_{kind}"), json!({"on_error": "open", "retry": {"max_attempts": 1}}))
            .await;
    }
    let stages = json!({"pre": ["lab.hang_pre"], "validators": [{"stage": "lab.hang_validator"}],
                        "providers": [{"stage": "lab.hang_provider"}], "post": ["lab.hang_post"], "deadline_ms": 500});
    l.pipeline("hangs", stages).await;
    let started = Instant::now();
    let (status, headers, body) = l.run("hangs", json!({})).await;
    let took = started.elapsed();
    assert_eq!((status, body["error"]["code"].as_str()), (504, Some("deadline_exceeded")), "{body}");
    assert!(took < Duration::from_millis(600), "answered after {took:?}");
    // The pre stage timed out at its own 400 ms and was skipped; the validator had 100 ms left.
    assert_eq!(headers["annex-degraded"], "lab.hang_pre", "the skipped stage is named");

    // Fail-closed, the first hang fails the run at its own timeout.
    l.change("lab.hang_pre", json!({"on_error": "closed"})).await;
    l.pipeline(
        "hangs",
        json!({"pre": ["lab.hang_pre"], "providers": [{"stage": "lab.answer"}], "deadline_ms": 500}),
    )
    .await;
    let started = Instant::now();
    let (status, _, body) = l.run("hangs", json!({})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("stage_unavailable")), "{body}");
    assert!(started.elapsed() < Duration::from_millis(500));
    l.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fail_open_stage_that_panics_or_answers_malformed_is_skipped_and_named() {
    let l = lab().await;
    l.change("lab.malformed", json!({"on_error": "open"})).await;
    l.pipeline(
        "soft",
        json!({"pre": ["lab.panics"], "validators": [{"stage": "lab.malformed"}], "providers": [{"stage": "lab.answer"}]}),
    )
    .await;
    let (status, headers, body) = l.run("soft", json!("x")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["annex-degraded"], "lab.panics, lab.malformed");
    assert_eq!(body["from"], "answer");
    let metrics = l.host.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"pipeline_requests_total{outcome="degraded",pipeline="soft"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"pipeline_stage_calls_total{kind="pre",outcome="error",stage="lab.panics"} 1"#)
    );
    l.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_provider_opens_its_breaker_and_recovers_without_an_operator() {
    let l = lab().await;
    let breaker =
        json!({"consecutive_failures": 3, "failure_rate": 1.0, "min_calls": 100, "cooldown_ms": 200});
    l.change("lab.flaky", json!({"breaker": breaker})).await;
    l.pipeline(
        "fallback",
        json!({"providers": [{"stage": "lab.flaky", "priority": 0}, {"stage": "lab.answer", "priority": 1}]}),
    )
    .await;
    l.shared.broken.store(true, Ordering::SeqCst);
    for _ in 0..6 {
        let (status, _, body) = l.run("fallback", json!("x")).await;
        assert_eq!((status, body["from"].as_str()), (200, Some("answer")), "the next candidate answers");
    }
    assert_eq!(
        l.shared.flaky_calls.load(Ordering::SeqCst),
        3,
        "after three failures the breaker is open: not called"
    );
    let health = |h: &TestHost| {
        let url = h.url("/api/v1/stages/lab.flaky/health");
        let req = h.client().get(url).bearer_auth(admin_token(h));
        async move { req.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let open = health(&l.host).await;
    assert_eq!(open["live"]["breaker"], "open", "{open}");
    let metrics = l.host.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"pipeline_stage_circuit_open{stage="lab.flaky"} 1"#), "{metrics}");
    let low = open["live"]["score"].as_f64().unwrap();

    // It recovers: after the cool-down a probe goes through, succeeds and closes the breaker.
    l.shared.broken.store(false, Ordering::SeqCst);
    let recovered =
        until(Duration::from_secs(3), || async { l.run("fallback", json!("x")).await.2["from"] == "flaky" })
            .await;
    assert!(recovered, "traffic returns to the first candidate");
    for _ in 0..20 {
        assert_eq!(l.run("fallback", json!("x")).await.2["from"], "flaky");
    }
    let now = health(&l.host).await;
    assert_eq!(now["live"]["breaker"], "closed");
    assert!(now["live"]["score"].as_f64().unwrap() > low + 0.3, "the score climbs back: {low} → {now}");
    let metrics = l.host.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"pipeline_stage_circuit_open{stage="lab.flaky"} 0"#));
    l.host.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_breaks_a_schema_is_refused_and_the_last_good_snapshot_serves() {
    let l = lab().await;
    l.pipeline("chat", json!({"pre": ["lab.tag"], "providers": [{"stage": "lab.answer"}]})).await;
    assert_eq!(l.run("chat", json!({})).await.2["answer"]["trail"], json!(["pre"]));
    let db = crate::common::superuser(l.host.database_url()).await;
    // Read before the change: the reload it causes may finish before the next status read.
    let reloads = l.api_status().await["reloads"].as_u64().unwrap();
    // Another binary's compiled-in stage, named by no pipeline: not callable here, not an error.
    sqlx::query(
        "insert into annex.pipeline_stages (id, kind, transport, extension, timeout_ms, retry, on_error, breaker)
         values ('ghost.x', 'pre', 'compiled', 'ghost', 100, '{}', 'closed', '{}')",
    )
    .execute(&db)
    .await
    .unwrap();
    sqlx::query("select pg_notify('annex_pipelines', '')").execute(&db).await.unwrap();
    assert!(
        until(Duration::from_secs(5), || async { l.api_status().await["reloads"].as_u64() > Some(reloads) })
            .await
    );
    assert!(
        l.api_status().await["last_error"].is_null(),
        "a stage of an extension not in this binary is ignored"
    );

    sqlx::query("update annex.pipeline_stages set config = '{\"label\": 5}' where id = 'lab.tag'")
        .execute(&db)
        .await
        .unwrap();
    sqlx::query("select pg_notify('annex_pipelines', '')").execute(&db).await.unwrap();
    let refused =
        until(Duration::from_secs(5), || async { !l.api_status().await["last_error"].is_null() }).await;
    assert!(refused, "the refusal is visible in the admin API");
    let status = l.api_status().await;
    assert!(status["last_error"]["problems"][0].as_str().unwrap().contains("/label"), "{status}");
    let (code, _, body) = l.run("chat", json!({})).await;
    assert_eq!(
        (code, &body["answer"]["trail"]),
        (200, &json!(["pre"])),
        "the last good snapshot still serves"
    );
    let metrics = l.host.get("/metrics").await.text().await.unwrap();
    assert!(metrics.contains(r#"pipeline_registry_reloads_total{result="refused"} 1"#), "{metrics}");

    // Repaired through the registry: accepted, served, the error cleared.
    l.change("lab.tag", json!({"config": {"label": "fixed"}})).await;
    let served = until(Duration::from_secs(5), || async {
        l.run("chat", json!({})).await.2["answer"]["trail"] == json!(["fixed"])
    })
    .await;
    assert!(served);
    assert!(l.api_status().await["last_error"].is_null());
    l.host.shutdown().await;
}

/// A validator answering `continue` on `subject` until the task is aborted.
async fn remote_validator(url: &str, subject: &str) -> tokio::task::JoinHandle<()> {
    use futures::StreamExt;
    let nc = async_nats::connect(url).await.expect("responder connects");
    let mut sub = nc.queue_subscribe(subject.to_owned(), "guard".into()).await.expect("subscribes");
    nc.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(msg) = sub.next().await {
            let res = StageResult::continue_();
            if let Some(reply) = msg.reply {
                let _ = nc.publish(reply, serde_json::to_vec(&res).expect("json").into()).await;
            }
        }
    })
}

/// A host with the lab's stages, the admin token, and NATS at `nats`.
async fn lab_on_nats(nats: String) -> TestHost {
    TestHost::builder()
        .extension(Lab::default())
        .config(move |c| {
            c.server.admin_token = Some(TOKEN.into());
            c.nats.url = Some(nats);
        })
        .start()
        .await
        .expect("host starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_validator_whose_responder_is_gone_fails_by_its_mode_and_no_responders_fails_over_at_once() {
    let url = annex_core::testkit::nats::test_nats_url().await.expect("a test nats-server");
    let host = lab_on_nats(url.clone()).await;
    let api = |method: reqwest::Method, path: String, body: Value| {
        let req = host.client().request(method, host.url(&path)).bearer_auth(TOKEN).json(&body);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let unique = uuid::Uuid::new_v4().simple().to_string();
    let guard_subject = format!("test.{unique}.guard");
    let responder = remote_validator(&url, &guard_subject).await;
    let guard = json!({"id": "remote.guard", "kind": "validator", "subject": guard_subject, "timeout_ms": 300,
                       "retry": {"max_attempts": 1}});
    let (s, b) = api(reqwest::Method::POST, "/api/v1/stages".into(), guard).await;
    assert_eq!(s, 201, "{b}");
    assert_eq!(b["transport"], "remote");
    // Nobody ever answers on the first provider's subject.
    let nobody =
        json!({"id": "remote.nobody", "kind": "provider", "subject": format!("test.{unique}.nobody")});
    assert_eq!(api(reqwest::Method::POST, "/api/v1/stages".into(), nobody).await.0, 201);
    let pipeline = json!({"validators": [{"stage": "remote.guard"}],
                          "providers": [{"stage": "remote.nobody"}, {"stage": "lab.answer", "priority": 1}]});
    let (s, b) = api(reqwest::Method::PUT, "/api/v1/pipelines/remote".into(), pipeline).await;
    assert_eq!(s, 200, "{b}");

    let run = || async {
        let res = host.client().post(host.url("/pipelines/remote")).json(&json!("hi")).send().await.unwrap();
        let (status, headers) = (res.status().as_u16(), res.headers().clone());
        (status, headers, res.json::<Value>().await.unwrap_or(Value::Null))
    };
    let (status, headers, body) = run().await;
    assert_eq!((status, body["from"].as_str()), (200, Some("answer")), "{body}");
    let timing = headers["server-timing"].to_str().unwrap().to_owned();
    let nobody_ms: f64 = timing
        .split(", ")
        .find_map(|e| e.strip_prefix("remote.nobody;dur="))
        .and_then(|ms| ms.parse().ok())
        .unwrap_or_else(|| panic!("remote.nobody in {timing}"));
    assert!(nobody_ms < 50.0, "no responders failed over after {nobody_ms} ms: {timing}");
    assert!(timing.contains("remote.guard;dur="), "the remote validator was called: {timing}");

    // The responder goes away: fail-closed → 503 naming the stage.
    responder.abort();
    let closed = until(Duration::from_secs(5), || async {
        let (status, _, body) = run().await;
        status == 503
            && body["error"]["code"] == "stage_unavailable"
            && body["error"]["stage"] == "remote.guard"
    })
    .await;
    assert!(closed, "a fail-closed remote validator without responders fails the run");
    // Fail-open → 200, and the answer says which stage was skipped.
    let (s, b) =
        api(reqwest::Method::PUT, "/api/v1/stages/remote.guard".into(), json!({"on_error": "open"})).await;
    assert_eq!(s, 200, "{b}");
    let (status, headers, body) = run().await;
    assert_eq!((status, body["from"].as_str()), (200, Some("answer")), "{body}");
    assert_eq!(headers["annex-degraded"], "remote.guard");
    host.shutdown().await;
}

/// The official guardrails stages composed as the issue asks: normalize_text → pii_guard → mock
/// → mask_pii, over HTTP, from a fresh registry (the stages are there without being added).
#[tokio::test(flavor = "multi_thread")]
async fn the_guardrails_pipeline_denies_a_valid_card_passes_a_bad_checksum_and_masks_emails() {
    let host = TestHost::builder()
        .extension(annex_ext_guardrails::Guardrails::default())
        .config(|c| c.server.admin_token = Some(TOKEN.into()))
        .start()
        .await
        .expect("host starts");
    let dir = tempfile::tempdir().unwrap();
    let mut c = Config::default();
    c.database.url = Some(host.database_url().to_owned());
    c.data_dir = dir.path().to_owned();
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(annex_ext_guardrails::Guardrails::default())];
    let admin = Admin::connect(&c, &extensions).await.expect("the CLI connects");
    let registry = admin.registry();
    // The mock answers `{"echo": payload}`: mask the echoed text.
    let change: StageChange = serde_json::from_value(json!({"config": {"fields": ["/echo"]}})).unwrap();
    registry.change_stage("cli", "guardrails.mask_pii", change).await.expect("a valid config");
    let input: PipelineInput = serde_json::from_value(json!({
        "pre": ["guardrails.normalize_text"],
        "validators": [{"stage": "guardrails.pii_guard"}],
        "providers": [{"stage": "guardrails.mock"}],
        "post": ["guardrails.mask_pii"],
        "deadline_ms": 2000
    }))
    .unwrap();
    registry.put_pipeline("cli", "guarded", input).await.expect("the pipeline is accepted");
    let run = |payload: Value| {
        let req = host.client().post(host.url("/pipelines/guarded")).json(&payload);
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Sentinel: the host serves the pipeline once its snapshot has it.
    let served = until(Duration::from_secs(5), || async { run(json!("hello")).await.0 == 200 }).await;
    assert!(served, "the host never served the new pipeline");

    // Normalised (trimmed, collapsed, lower-cased) and answered; the e-mail is flagged, then masked.
    let (status, body) = run(json!("  Write to   John.Doe@Example.COM  please ")).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body, json!({"echo": "write to j***@example.com please"}));

    // A card number with a valid Luhn checksum is denied, naming the stage, never the number.
    let (status, body) = run(json!("my card is 4111 1111 1111 1111")).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "denied");
    assert_eq!(body["error"]["stage"], "guardrails.pii_guard");
    assert!(!body.to_string().contains("4111"), "the number is not echoed: {body}");

    // The same digits with a wrong checksum are just digits.
    let (status, body) = run(json!("order 4111 1111 1111 1112 shipped")).await;
    assert_eq!((status, &body), (200, &json!({"echo": "order 4111 1111 1111 1112 shipped"})));
    host.shutdown().await;
}

/// The NATS server restarted under a running host: while it is down the fail-closed remote
/// validator fails the runs (503 naming it, nothing hangs past the stage timeout); once it is
/// back, the host's client and the responder reconnect by themselves and runs answer 200 again,
/// with no restart of annex and no operator action.
#[tokio::test(flavor = "multi_thread")]
async fn a_nats_restart_mid_run_is_survived_by_the_hosts_remote_stages() {
    let mut server = annex_core::testkit::nats::NatsServer::start().await.expect("own nats-server");
    let host = lab_on_nats(server.url()).await;
    let subject = format!("test.{}.guard", uuid::Uuid::new_v4().simple());
    let _responder = remote_validator(&server.url(), &subject).await;
    let api = |method: reqwest::Method, path: &str, body: Value| {
        let req = host.client().request(method, host.url(path)).bearer_auth(TOKEN).json(&body);
        async move { req.send().await.unwrap().status().as_u16() }
    };
    let guard = json!({"id": "remote.guard", "kind": "validator", "subject": subject, "timeout_ms": 300,
                       "retry": {"max_attempts": 1}, "breaker": {"cooldown_ms": 1000}});
    assert_eq!(api(reqwest::Method::POST, "/api/v1/stages", guard).await, 201);
    let pipeline = json!({"validators": [{"stage": "remote.guard"}], "providers": [{"stage": "lab.answer"}]});
    assert_eq!(api(reqwest::Method::PUT, "/api/v1/pipelines/guarded", pipeline).await, 200);
    let run = || async {
        let started = Instant::now();
        let res = host.client().post(host.url("/pipelines/guarded")).json(&json!("hi")).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json::<Value>().await.unwrap_or(Value::Null), started.elapsed())
    };
    let ok = until(Duration::from_secs(10), || async { run().await.0 == 200 }).await;
    assert!(ok, "the remote validator answers before the restart");

    server.stop();
    let refused = until(Duration::from_secs(10), || async {
        let (status, body, took) = run().await;
        assert!(took < Duration::from_secs(3), "a run with NATS down ends by the stage's timeout: {took:?}");
        status == 503 && body["error"]["stage"] == "remote.guard"
    })
    .await;
    assert!(refused, "with NATS down the fail-closed remote validator fails the run");

    server.restart().await.expect("restarts on the same port");
    let restarted = Instant::now();
    let back = until(Duration::from_secs(30), || async { run().await.0 == 200 }).await;
    eprintln!("runs answered 200 again {:?} after the NATS restart", restarted.elapsed());
    assert!(back, "remote stages recover without restarting annex");
    host.shutdown().await;
}
