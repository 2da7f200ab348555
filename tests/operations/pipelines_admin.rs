//! The stage registry through the admin API and the CLI: reads and changes, their error paths,
//! roles, the audit trail, and two replicas on one database following each other's changes.

use std::process::Command;
use std::time::Duration;

use annex_core::access::{NewOperator, operators};
use annex_core::stage::{StageKind, StageRequest, StageResult, StageSpec};
use annex_core::testkit::TestHost;
use annex_core::{Context, Extension, Metadata, Registrar};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::{TOKEN, eventually};

/// `kit`: an upper-casing pre stage (with a config schema), a validator, two providers.
#[derive(Clone, Default)]
struct Kit;

#[annex_core::async_trait]
impl Extension for Kit {
    fn metadata(&self) -> Metadata {
        Metadata::new("kit", "1.0.0")
    }

    fn register(&self, r: &mut Registrar) {
        let schema = json!({"type": "object", "properties": {"max": {"type": "integer", "minimum": 1}},
                            "additionalProperties": false});
        r.stage(
            StageSpec::new("upper", StageKind::Pre).config_schema(schema),
            |_cx: Context, req: StageRequest| async move {
                match req.payload.as_str() {
                    Some(text) => StageResult::modified(text.to_uppercase().into()),
                    None => StageResult::continue_(),
                }
            },
        );
        r.stage(StageSpec::new("gate", StageKind::Validator), |_cx: Context, _req: StageRequest| async {
            StageResult::continue_()
        });
        r.stage(StageSpec::new("echo", StageKind::Provider), |_cx: Context, req: StageRequest| async move {
            StageResult::modified(json!({ "echo": req.payload }))
        });
        r.stage(StageSpec::new("backup", StageKind::Provider), |_cx: Context, _req: StageRequest| async {
            StageResult::modified(json!({ "echo": "backup" }))
        });
    }
}

async fn kit_host(database_url: Option<&str>) -> TestHost {
    let mut b = TestHost::builder().extension(Kit).config(|c| c.server.admin_token = Some(TOKEN.into()));
    if let Some(url) = database_url {
        b = b.database_url(url);
    }
    b.start().await.expect("host starts")
}

async fn call(
    t: &TestHost,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = t.client().request(method, t.url(path)).bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn run(t: &TestHost, pipeline: &str, payload: Value) -> Value {
    t.client()
        .post(t.url(&format!("/pipelines/{pipeline}")))
        .json(&payload)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_admin_api_refuses_bad_input_with_json_errors_and_audits_every_change() {
    let t = kit_host(None).await;
    let admin = |m: Method, p: &'static str, b: Option<Value>| call(&t, TOKEN, m, p, b);

    let (s, b) = admin(Method::GET, "/api/v1/stages", None).await;
    assert_eq!(s, 200);
    let ids: Vec<&str> = b["stages"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["kit.backup", "kit.echo", "kit.gate", "kit.upper"]);

    // Unknown ids: 404.
    let (s, b) = admin(Method::GET, "/api/v1/stages/kit.nope", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("unknown_stage")));
    let (s, b) = admin(Method::GET, "/api/v1/pipelines/nope", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("pipeline_not_found")));
    assert_eq!(admin(Method::POST, "/api/v1/stages/kit.nope/disable", None).await.0, 404);
    assert_eq!(admin(Method::GET, "/api/v1/stages/kit.nope/health", None).await.0, 404);

    // A config breaking the stage's schema: 422 with JSON pointers; nothing changed.
    let (s, b) =
        admin(Method::PUT, "/api/v1/stages/kit.upper", Some(json!({"config": {"max": 0, "extra": 1}}))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_config")),
        "{b}"
    );
    let pointers: Vec<&str> =
        b["error"]["errors"].as_array().unwrap().iter().map(|e| e["pointer"].as_str().unwrap()).collect();
    assert!(pointers.contains(&"/max") && pointers.contains(&""), "{pointers:?}");
    assert_eq!(admin(Method::GET, "/api/v1/stages/kit.upper", None).await.1["config"], json!({}));
    let (s, b) = admin(Method::PUT, "/api/v1/stages/kit.upper", Some(json!({"timeout_ms": 0}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_stage")));
    let (s, b) = admin(Method::PUT, "/api/v1/stages/kit.upper", Some(json!({"subject": "a.b"}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_stage")));

    // A remote stage without NATS: 422 saying so.
    let (s, b) =
        admin(Method::POST, "/api/v1/stages", Some(json!({"id": "acme.tox", "kind": "validator"}))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNPROCESSABLE_ENTITY, Some("nats_required")));
    assert!(b["error"]["message"].as_str().unwrap().contains("[nats] url"), "{b}");
    // A compiled-in stage cannot be removed.
    let (s, b) = admin(Method::DELETE, "/api/v1/stages/kit.gate", None).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("compiled_in")));
    // A struct's fields as an array are not a body.
    let (s, b) = admin(Method::PUT, "/api/v1/stages/kit.upper", Some(json!([null, null]))).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_body")),
        "{b}"
    );

    // Pipelines naming unknown stages, stages in the wrong slot, disabled stages: 422, every problem.
    let bad =
        json!({"pre": ["kit.echo", "kit.ghost"], "validators": [{"stage": "kit.gate"}], "providers": []});
    let (s, b) = admin(Method::PUT, "/api/v1/pipelines/chat", Some(bad)).await;
    assert_eq!(
        (s, b["error"]["code"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("invalid_pipeline")),
        "{b}"
    );
    let problems = b["error"]["problems"].to_string();
    for expected in
        ["at least one provider", "`kit.ghost` is not in the registry", "`kit.echo` is a provider stage"]
    {
        assert!(problems.contains(expected), "{expected} in {problems}");
    }
    assert_eq!(admin(Method::POST, "/api/v1/stages/kit.gate/disable", None).await.0, 200);
    let with_disabled = json!({"validators": [{"stage": "kit.gate"}], "providers": [{"stage": "kit.echo"}]});
    let (s, b) = admin(Method::PUT, "/api/v1/pipelines/chat", Some(with_disabled.clone())).await;
    assert_eq!(s, 422);
    assert!(b["error"]["problems"][0].as_str().unwrap().contains("disabled"), "{b}");
    assert_eq!(admin(Method::POST, "/api/v1/stages/kit.gate/enable", None).await.0, 200);
    let (s, b) = admin(Method::PUT, "/api/v1/pipelines/chat", Some(json!({"unknown": 1}))).await;
    assert_eq!(s, 422, "{b}");
    assert_eq!(
        admin(Method::GET, "/api/v1/pipelines", None).await.1["pipelines"],
        json!([]),
        "nothing was stored"
    );

    // Good changes: stored, served at once on this replica, audited with before and after.
    let (s, b) = admin(
        Method::PUT,
        "/api/v1/stages/kit.upper",
        Some(json!({"config": {"max": 3}, "timeout_ms": 300})),
    )
    .await;
    assert_eq!((s, b["timeout_ms"].as_u64()), (StatusCode::OK, Some(300)), "{b}");
    let (s, b) = admin(
        Method::PUT,
        "/api/v1/pipelines/chat",
        Some(json!({"pre": ["kit.upper"], "validators": [{"stage": "kit.gate"}],
        "providers": [{"stage": "kit.echo"}], "deadline_ms": 1000})),
    )
    .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["deadline_ms"], 1000);
    assert_eq!(run(&t, "chat", json!("hi")).await, json!({"echo": "HI"}));
    let (_, list) = admin(Method::GET, "/api/v1/pipelines", None).await;
    assert_eq!(list["pipelines"][0]["name"], "chat");
    assert!(list["registry"]["last_error"].is_null() && list["registry"]["pipelines"] == 1, "{list}");
    let (s, h) = admin(Method::GET, "/api/v1/stages/kit.upper/health", None).await;
    assert_eq!(
        (s, h["live"]["calls"].as_u64(), h["live"]["breaker"].as_str()),
        (StatusCode::OK, Some(1), Some("closed"))
    );

    let pool = sqlx::PgPool::connect(t.database_url()).await.unwrap();
    let entries: Vec<(String, String, Value)> = sqlx::query_as(
        "select action, target, details from annex.audit_log where action like 'stage.%' or action like 'pipeline.%' order by id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let actions: Vec<(&str, &str)> = entries.iter().map(|(a, t, _)| (a.as_str(), t.as_str())).collect();
    assert_eq!(
        &actions[actions.len() - 4..],
        [
            ("stage.disabled", "kit.gate"),
            ("stage.enabled", "kit.gate"),
            ("stage.changed", "kit.upper"),
            ("pipeline.created", "chat")
        ]
    );
    let change = &entries[entries.len() - 2].2;
    assert_eq!(
        (change["before"]["timeout_ms"].as_u64(), change["after"]["timeout_ms"].as_u64()),
        (Some(1000), Some(300))
    );
    assert_eq!(change["after"]["config"], json!({"max": 3}));
    let seeded = entries.iter().filter(|(a, ..)| a == "stage.registered").count();
    assert_eq!(seeded, 4, "each compiled-in stage was registered once, by the host");

    assert_eq!(admin(Method::DELETE, "/api/v1/pipelines/chat", None).await.0, 204);
    let (s, b) = admin(Method::POST, "/pipelines/chat", Some(json!(1))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::NOT_FOUND, Some("pipeline_not_found")), "{b}");
    assert_eq!(admin(Method::DELETE, "/api/v1/pipelines/chat", None).await.0, 404);
    pool.close().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_viewer_reads_the_registry_and_may_not_change_it() {
    let t = kit_host(None).await;
    let pool = sqlx::PgPool::connect(t.database_url()).await.unwrap();
    let new = NewOperator {
        username: "vic".into(),
        printed_name: "Vic Viewer".into(),
        roles: vec!["viewer".into()],
        sites: None,
        password: "a long enough password".into(),
    };
    let (_, token) = operators::add(&pool, "test", &new).await.unwrap();
    for path in
        ["/api/v1/stages", "/api/v1/stages/kit.echo", "/api/v1/stages/kit.echo/health", "/api/v1/pipelines"]
    {
        assert_eq!(call(&t, &token, Method::GET, path, None).await.0, 200, "{path}");
    }
    let changes = [
        (Method::PUT, "/api/v1/stages/kit.echo", Some(json!({"timeout_ms": 5}))),
        (Method::POST, "/api/v1/stages/kit.echo/disable", None),
        (Method::POST, "/api/v1/stages", Some(json!({"id": "a.b", "kind": "pre"}))),
        (Method::PUT, "/api/v1/pipelines/p", Some(json!({"providers": [{"stage": "kit.echo"}]}))),
        (Method::DELETE, "/api/v1/pipelines/p", None),
    ];
    for (method, path, body) in changes {
        let (s, b) = call(&t, &token, method.clone(), path, body).await;
        assert_eq!(
            (s, b["error"]["code"].as_str()),
            (StatusCode::FORBIDDEN, Some("forbidden")),
            "{method} {path}"
        );
    }
    assert_eq!(call(&t, "wrong", Method::GET, "/api/v1/stages", None).await.0, 401);
    let stored: i32 =
        sqlx::query_scalar("select timeout_ms from annex.pipeline_stages where id = 'kit.echo'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_eq!(stored, 1000, "nothing changed");
    pool.close().await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_a_stage_on_one_replica_takes_effect_on_the_other_within_a_second() {
    let a = kit_host(None).await;
    let b = kit_host(Some(a.database_url())).await;
    let chat = json!({"pre": ["kit.upper"], "providers": [{"stage": "kit.echo"}, {"stage": "kit.backup", "priority": 1}]});
    assert_eq!(call(&a, TOKEN, Method::PUT, "/api/v1/pipelines/chat", Some(chat)).await.0, 200);
    let served = eventually(Duration::from_secs(1), || async {
        run(&b, "chat", json!("hi")).await == json!({"echo": "HI"})
    })
    .await;
    assert!(served.is_some(), "replica B serves the pipeline written through A");

    assert_eq!(call(&a, TOKEN, Method::POST, "/api/v1/stages/kit.upper/disable", None).await.0, 200);
    let took = eventually(Duration::from_secs(1), || async {
        run(&b, "chat", json!("hi")).await == json!({"echo": "hi"})
    })
    .await;
    assert!(took.is_some(), "replica B still runs a stage disabled on A after 1 s");
    assert_eq!(call(&a, TOKEN, Method::POST, "/api/v1/stages/kit.echo/disable", None).await.0, 200);
    let took = eventually(Duration::from_secs(1), || async {
        run(&b, "chat", json!("hi")).await == json!({"echo": "backup"})
    })
    .await;
    assert!(took.is_some(), "a disabled provider hands over to the next candidate");
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_prints_the_registry_as_json_and_refuses_what_the_api_refuses() {
    let t = kit_host(None).await;
    let data = tempfile::tempdir().unwrap();
    let annex = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_annex"))
            .args(args)
            .env("DATABASE_URL", t.database_url())
            .env("ANNEX_DATA_DIR", data.path())
            .env("ANNEX_LOG", "warn")
            .current_dir(data.path())
            .output()
            .expect("annex runs");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // The binary's own compiled-in set has no `kit`: its stages are not in this binary.
    let (ok, stdout, _) = annex(&["stages", "list", "--json"]);
    assert!(ok);
    let listed: Value = serde_json::from_str(&stdout).unwrap();
    let (_, api) = call(&t, TOKEN, Method::GET, "/api/v1/stages", None).await;
    assert_eq!(listed, api, "the CLI and the admin API print the same document");
    let (ok, _, stderr) = annex(&["stages", "set", "kit.echo", r#"{"timeout_ms": 10}"#, "--json"]);
    assert!(!ok);
    assert!(stderr.contains("extension `kit` is not in this binary"), "{stderr}");
    let (ok, _, stderr) = annex(&["pipelines", "show", "nope"]);
    assert!(!ok && stderr.contains("no pipeline `nope`"), "{stderr}");
    let (ok, _, stderr) = annex(&["stages", "add", r#"{"id": "acme.tox", "kind": "validator"}"#]);
    assert!(!ok && stderr.contains("remote stages need NATS"), "{stderr}");

    // A pipeline written through the API reads the same through the CLI.
    let chat = json!({"providers": [{"stage": "kit.echo"}]});
    let (_, api) = call(&t, TOKEN, Method::PUT, "/api/v1/pipelines/chat", Some(chat)).await;
    let (ok, stdout, stderr) = annex(&["pipelines", "show", "chat", "--json"]);
    assert!(ok, "{stderr}");
    assert_eq!(serde_json::from_str::<Value>(&stdout).unwrap(), api);
    let (ok, stdout, stderr) =
        annex(&["pipelines", "run", "chat", r#""hi""#, "--url", t.base_url(), "--json"]);
    assert!(ok, "{stderr}");
    let ran: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!((ran["status"].as_u64(), &ran["body"]), (Some(200), &json!({"echo": "hi"})));
    t.shutdown().await;
}
