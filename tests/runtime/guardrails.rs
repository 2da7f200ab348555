//! The guardrails stages and remote stages over a real nats-server: the test kit's servers,
//! annex's own NATS client, the example remote stage (examples/remote_stage.rs) and the
//! envelope's JSON Schema (docs/stage-envelope.schema.json).
//!
//! The conformance table runs every case against the compiled-in stages in process and against
//! the example program over NATS; both columns must give the same result.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use annex_core::stage::{Finding, Outcome, StageKind, StageRequest, StageResult};
use annex_core::testkit::nats::{NatsServer, StageCallError, StageClient, test_nats_url};
use annex_ext_guardrails::subject;
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

// ---- The example remote stage as a child process ----

/// The example program, brought up to date once per test process: `cargo test --test runtime`
/// does not build examples, and a stale copy would test old code. It is built with this
/// binary's features, so when `cargo test` has just built it the build is a no-op.
fn example_binary() -> Result<PathBuf, String> {
    static BINARY: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BINARY
        .get_or_init(|| {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            // target/debug/deps/runtime-… → target/debug/examples/remote_stage
            let dir = exe.parent().and_then(|d| d.parent()).ok_or("no target directory")?;
            let path = dir.join("examples").join("remote_stage");
            let mut cargo = Command::new(env!("CARGO"));
            // What cargo sets for a running test is not the shell's: ring's build script reruns
            // when CARGO_MANIFEST_DIR changes, and half the tree with it.
            for (key, _) in std::env::vars_os() {
                let key = key.to_string_lossy().into_owned();
                let set_by_cargo = ["CARGO_PKG_", "CARGO_BIN_EXE_"].iter().any(|p| key.starts_with(p))
                    || [
                        "CARGO_MANIFEST_DIR",
                        "CARGO_MANIFEST_PATH",
                        "CARGO_CRATE_NAME",
                        "CARGO_BIN_NAME",
                        "CARGO_PRIMARY_PACKAGE",
                        "CARGO_TARGET_TMPDIR",
                        "CARGO_RUSTC_CURRENT_DIR",
                        "OUT_DIR",
                    ]
                    .contains(&key.as_str());
                if set_by_cargo {
                    cargo.env_remove(&key);
                }
            }
            let status = cargo
                .args([
                    "build",
                    "--quiet",
                    "--example",
                    "remote_stage",
                    "--no-default-features",
                    "--features",
                ])
                .arg(enabled_features().join(","))
                .arg("--manifest-path")
                .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
                .status()
                .map_err(|e| format!("cannot run cargo: {e}"))?;
            if !status.success() || !path.is_file() {
                return Err(format!("cargo build --example remote_stage failed ({status})"));
            }
            Ok(path)
        })
        .clone()
}

/// The root package's features this test binary was built with.
fn enabled_features() -> Vec<&'static str> {
    [
        ("ext-analytics", cfg!(feature = "ext-analytics")),
        ("ext-guardrails", cfg!(feature = "ext-guardrails")),
        ("ext-hello", cfg!(feature = "ext-hello")),
        ("ext-loadtest", cfg!(feature = "ext-loadtest")),
        ("ext-notes", cfg!(feature = "ext-notes")),
        ("ext-quality", cfg!(feature = "ext-quality")),
        ("ext-webhooks", cfg!(feature = "ext-webhooks")),
        ("ext-workorders", cfg!(feature = "ext-workorders")),
    ]
    .into_iter()
    .filter_map(|(name, on)| on.then_some(name))
    .collect()
}

/// One copy of examples/remote_stage.rs, killed when dropped (and gone with this process: it
/// exits when its stdin closes).
struct RemoteStage {
    child: Child,
    _stdin: Option<ChildStdin>,
}

impl RemoteStage {
    /// Starts it against `url` and waits (bounded) for its `ready` line.
    async fn start(url: &str) -> RemoteStage {
        let url = url.to_owned();
        tokio::task::spawn_blocking(move || {
            let binary = example_binary().expect("the example remote stage builds");
            let mut child = Command::new(binary)
                .args(["--nats-url", &url, "--exit-with-stdin"])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::inherit())
                .spawn()
                .expect("the example remote stage starts");
            let stdin = child.stdin.take();
            let stdout = child.stdout.take().expect("stdout");
            let (tx, rx) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    let _ = tx.send(line);
                }
            });
            let line = rx.recv_timeout(Duration::from_secs(30));
            let mut me = RemoteStage { child, _stdin: stdin };
            match line {
                Ok(line) if line == "ready" => me,
                other => {
                    me.kill();
                    panic!("the example remote stage did not print `ready`: {other:?}");
                }
            }
        })
        .await
        .expect("spawn")
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for RemoteStage {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---- The conformance table ----

/// What a case must give.
struct Expect {
    outcome: Outcome,
    payload: Option<Value>,
    /// The deny code or the error code.
    code: Option<&'static str>,
    retryable: Option<bool>,
    findings: &'static [&'static str],
}

fn expect(outcome: Outcome) -> Expect {
    Expect { outcome, payload: None, code: None, retryable: None, findings: &[] }
}

impl Expect {
    fn payload(mut self, payload: Value) -> Self {
        self.payload = Some(payload);
        self
    }
    fn code(mut self, code: &'static str) -> Self {
        self.code = Some(code);
        self
    }
    fn retryable(mut self, retryable: bool) -> Self {
        self.retryable = Some(retryable);
        self
    }
    fn findings(mut self, codes: &'static [&'static str]) -> Self {
        self.findings = codes;
        self
    }

    fn check(&self, case: &str, res: &StageResult) {
        assert_eq!(res.outcome, self.outcome, "{case}: {res:?}");
        assert_eq!(res.payload, self.payload, "{case}: {res:?}");
        let code = res.deny.as_ref().map(|d| d.code.as_str()).or(res.error.as_ref().map(|e| e.code.as_str()));
        assert_eq!(code, self.code, "{case}: {res:?}");
        if let Some(retryable) = self.retryable {
            assert_eq!(res.error.as_ref().map(|e| e.retryable), Some(retryable), "{case}: {res:?}");
        }
        let findings: Vec<&str> = res.findings.iter().map(|f| f.code.as_str()).collect();
        assert_eq!(findings, self.findings, "{case}: {res:?}");
    }
}

fn cases() -> Vec<(&'static str, StageKind, Value, Value, Expect)> {
    use Outcome::*;
    use StageKind::*;
    vec![
        (
            "normalize_text",
            Pre,
            Value::Null,
            json!("  Hello \t WORLD\n"),
            expect(Modified).payload(json!("hello world")),
        ),
        (
            "normalize_text",
            Pre,
            json!({"lowercase": false}),
            json!({"text": " Ａ  B ", "n": 1}),
            expect(Modified).payload(json!({"text": "A B", "n": 1})),
        ),
        (
            "normalize_text",
            Pre,
            Value::Null,
            json!({"messages": [{"role": "user", "content": "ＨＩ  there"}]}),
            expect(Modified).payload(json!({"messages": [{"role": "user", "content": "hi there"}]})),
        ),
        ("normalize_text", Pre, Value::Null, json!("already normal"), expect(Continue)),
        (
            "normalize_text",
            Pre,
            json!({"lowercase": "yes"}),
            json!("x"),
            expect(Error).code("bad_config").retryable(false),
        ),
        (
            "pii_guard",
            Validator,
            Value::Null,
            json!("card 4111 1111 1111 1111"),
            expect(Deny).code("pii_detected").findings(&["credit_card"]),
        ),
        (
            "pii_guard",
            Validator,
            Value::Null,
            json!({"text": "ssn 123-45-6789"}),
            expect(Deny).code("pii_detected").findings(&["ssn"]),
        ),
        ("pii_guard", Validator, Value::Null, json!("ssn 666-45-6789 is no SSN"), expect(Continue)),
        (
            "pii_guard",
            Validator,
            Value::Null,
            json!("mail a@example.com or call 212-555-0123"),
            expect(Continue).findings(&["email", "phone"]),
        ),
        ("pii_guard", Validator, Value::Null, json!("order 4111111111111112 shipped"), expect(Continue)),
        (
            "pii_guard",
            Validator,
            json!({"credit_card": "flag"}),
            json!("4111111111111111"),
            expect(Continue).findings(&["credit_card"]),
        ),
        (
            "pii_guard",
            Validator,
            json!({"email": "block"}),
            json!("+4915112345678, x@example.org"),
            expect(Deny).code("pii_detected").findings(&["phone", "email"]),
        ),
        (
            "mask_pii",
            Post,
            Value::Null,
            json!("jane@example.com paid 4111-1111-1111-1111"),
            expect(Modified).payload(json!("j***@example.com paid ****-****-****-1111")),
        ),
        (
            "mask_pii",
            Post,
            json!({"email": "redact"}),
            json!({"text": "a@example.org, ssn 123-45-6789"}),
            expect(Modified).payload(json!({"text": "[email], ssn ***-**-6789"})),
        ),
        ("mask_pii", Post, Value::Null, json!("nothing to hide"), expect(Continue)),
        ("mock", Provider, Value::Null, json!({"q": 1}), expect(Modified).payload(json!({"echo": {"q": 1}}))),
        (
            "mock",
            Provider,
            json!({"latency_ms": 20}),
            json!("x"),
            expect(Modified).payload(json!({"echo": "x"})),
        ),
        (
            "mock",
            Provider,
            json!({"failure_rate": 1}),
            json!("x"),
            expect(Error).code("mock_failure").retryable(true),
        ),
    ]
}

#[tokio::test]
async fn the_stages_give_the_same_results_in_process_and_over_nats() {
    let url = test_nats_url().await.expect("test nats-server");
    let _remote = RemoteStage::start(&url).await;
    let client = StageClient::connect(&url).await.expect("client");
    for (i, (stage, kind, config, payload, expected)) in cases().into_iter().enumerate() {
        let case = format!("case {i} ({stage} {payload})");
        let req = request(&format!("guardrails.{stage}"), payload, config);
        let local = annex_ext_guardrails::call(stage, &req).await.expect("a pure stage");
        expected.check(&format!("{case}, in process"), &local);
        local.check(kind).unwrap_or_else(|e| panic!("{case}: {e}"));
        // `ready` means subscribed: no waiting for the first answer.
        let remote = client.call(&subject(kind, stage), &req, Duration::from_secs(5)).await;
        let remote = remote.unwrap_or_else(|e| panic!("{case}, over NATS: {e}"));
        assert_eq!(remote, local, "{case}: the same result both ways");
    }
}

#[tokio::test]
async fn the_remote_stage_answers_a_malformed_request_with_bad_request() {
    let url = test_nats_url().await.expect("test nats-server");
    let _remote = RemoteStage::start(&url).await;
    let nc = async_nats::connect(&url).await.expect("connects");
    let subject = subject(StageKind::Validator, "pii_guard");
    for body in [&b"not json"[..], br#"{"payload": "no envelope"}"#, br#"{"v": 2, "request_id": "r", "pipeline": "p", "stage": "s", "attempt": 1, "deadline": "2999-01-01T00:00:00Z", "payload": 1}"#] {
        let reply = nc.request(subject.clone(), body.to_vec().into()).await.expect("an answer, not a crash");
        let res: StageResult = serde_json::from_slice(&reply.payload).expect("a StageResult");
        let error = res.error.expect("an error");
        assert_eq!((error.code.as_str(), error.retryable), ("bad_request", false), "{}", String::from_utf8_lossy(body));
    }
    // It is still serving.
    let req = request("guardrails.pii_guard", json!("fine"), Value::Null);
    let res =
        StageClient::connect(&url).await.expect("client").call(&subject, &req, Duration::from_secs(5)).await;
    assert_eq!(res, Ok(StageResult::continue_()));
    // A request past its deadline is not worked on.
    let mut late = request("guardrails.mock", json!("x"), Value::Null);
    late.deadline = chrono::Utc::now() - chrono::Duration::seconds(1);
    let body = serde_json::to_vec(&late).expect("json");
    let reply = nc.request(subject_of("mock"), body.into()).await.expect("answer");
    let res: StageResult = serde_json::from_slice(&reply.payload).expect("a StageResult");
    assert_eq!(res.error.expect("error").code, "deadline_exceeded");
}

fn subject_of(stage: &str) -> String {
    let kind = annex_ext_guardrails::PURE_STAGES
        .iter()
        .find(|(n, _)| *n == stage)
        .map(|(_, k)| *k)
        .expect("a pure stage");
    subject(kind, stage)
}

#[tokio::test]
async fn no_responders_answers_at_once() {
    let url = test_nats_url().await.expect("test nats-server");
    let client = StageClient::connect(&url).await.expect("client");
    let req = request("guardrails.nobody", json!("x"), Value::Null);
    let subject = "annex.stage.pre.nobody_listens_here.v1";
    // The first call also waits for the connection.
    let first = call_until(&client, subject, &req, Duration::from_secs(5), |r| {
        matches!(r, Err(StageCallError::NoResponders(_)))
    })
    .await;
    assert!(matches!(first, Err(StageCallError::NoResponders(_))), "{first:?}");
    let mut took = Vec::new();
    for _ in 0..5 {
        let started = Instant::now();
        let res = client.call(subject, &req, Duration::from_secs(5)).await;
        took.push(started.elapsed());
        assert_eq!(res, Err(StageCallError::NoResponders(subject.to_owned())));
    }
    took.sort();
    eprintln!("no responders answered in {took:?} (timeout 5 s)");
    assert!(took[2] < Duration::from_millis(50), "median {:?}, not the 5 s timeout", took[2]);
}

#[tokio::test]
async fn a_killed_remote_stage_gives_no_responders() {
    // A server of its own: the other tests' copies of the example serve the same subjects.
    let server = NatsServer::start().await.expect("own nats-server");
    let mut remote = RemoteStage::start(&server.url()).await;
    let client = StageClient::connect(&server.url()).await.expect("client");
    let subject = subject_of("mock");
    let req = request("guardrails.mock", json!("x"), Value::Null);
    let res = call_until(&client, &subject, &req, Duration::from_secs(5), Result::is_ok).await;
    assert_eq!(res, Ok(StageResult::modified(json!({"echo": "x"}))));

    remote.kill();
    // The server drops its subscriptions when it sees the connection close.
    let res = call_until(&client, &subject, &req, Duration::from_secs(5), |r| {
        matches!(r, Err(StageCallError::NoResponders(_)))
    })
    .await;
    assert_eq!(res, Err(StageCallError::NoResponders(subject.clone())));
}

#[tokio::test]
async fn a_nats_restart_mid_run_is_survived_without_restarting_anything() {
    let mut server = NatsServer::start().await.expect("own nats-server");
    let _remote = RemoteStage::start(&server.url()).await;
    let client = StageClient::connect(&server.url()).await.expect("client");
    let subject = subject_of("normalize_text");
    let req = request("guardrails.normalize_text", json!(" Hi "), Value::Null);
    let res = call_until(&client, &subject, &req, Duration::from_secs(5), Result::is_ok).await;
    assert_eq!(res, Ok(StageResult::modified(json!("hi"))));

    server.stop();
    let down = client.call(&subject, &req, Duration::from_millis(300)).await;
    assert!(down.is_err(), "NATS is down: {down:?}");

    server.restart().await.expect("restarts on the same port");
    let started = Instant::now();
    // Both the host's client and the remote stage reconnect (and resubscribe) by themselves.
    let res = call_until(&client, &subject, &req, Duration::from_secs(20), Result::is_ok).await;
    eprintln!("calls succeeded again {:?} after the restart", started.elapsed());
    assert_eq!(res, Ok(StageResult::modified(json!("hi"))));
}

// ---- The envelope's JSON Schema ----

fn envelope_schema() -> Value {
    let text =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/stage-envelope.schema.json"))
            .expect("docs/stage-envelope.schema.json");
    serde_json::from_str(&text).expect("the schema is JSON")
}

fn validator_for(schema: &Value, def: &str) -> jsonschema::Validator {
    let mut root = schema.clone();
    if let Some(obj) = root.as_object_mut() {
        obj.remove("oneOf");
        obj.insert("$ref".into(), json!(format!("#/$defs/{def}")));
    }
    jsonschema::validator_for(&root).expect("a valid JSON Schema")
}

#[test]
fn the_envelope_schema_matches_the_types() {
    let schema = envelope_schema();
    jsonschema::validator_for(&schema).expect("the whole document is a valid schema");
    let requests = validator_for(&schema, "StageRequest");
    let results = validator_for(&schema, "StageResult");

    let mut req = request("guardrails.pii_guard", json!({"text": "hi"}), json!({"ssn": "flag"}));
    req.context = json!({"input": "hi"});
    let req = serde_json::to_value(&req).expect("json");
    let errors: Vec<String> = requests.iter_errors(&req).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    let finding =
        Finding { code: "email".into(), message: "an e-mail address".into(), pointer: Some("/text".into()) };
    let all = [
        StageResult::continue_(),
        StageResult::modified(json!({"text": "x"})),
        StageResult::deny("pii_detected", "found a credit card number").with_finding(finding.clone()),
        StageResult::error("upstream_unavailable", true, "503"),
        StageResult::continue_().with_finding(finding),
    ];
    for res in &all {
        let value = serde_json::to_value(res).expect("json");
        let errors: Vec<String> = results.iter_errors(&value).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{value}: {errors:?}");
    }

    // Every property the types write is declared, and every declared property is written.
    let declared = |def: &str| -> Vec<String> {
        let mut keys: Vec<String> =
            schema["$defs"][def]["properties"].as_object().expect("properties").keys().cloned().collect();
        keys.sort();
        keys
    };
    let mut written: Vec<String> = req.as_object().expect("object").keys().cloned().collect();
    written.sort();
    assert_eq!(written, declared("StageRequest"));
    let full = StageResult {
        payload: Some(json!(1)),
        deny: Some(annex_core::stage::Denial { code: "c".into(), reason: "r".into() }),
        ..StageResult::error("e", true, "m").with_finding(Finding {
            code: "f".into(),
            message: "m".into(),
            pointer: Some("/".into()),
        })
    };
    let full = serde_json::to_value(&full).expect("json");
    let mut written: Vec<String> = full.as_object().expect("object").keys().cloned().collect();
    written.sort();
    assert_eq!(written, declared("StageResult"));
    let keys = |v: &Value| -> Vec<String> {
        let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
        k.sort();
        k
    };
    assert_eq!(keys(&full["deny"]), declared("Denial"));
    assert_eq!(keys(&full["error"]), declared("StageFailure"));
    assert_eq!(keys(&full["findings"][0]), declared("Finding"));

    // And the schema refuses what the types refuse.
    for bad in [
        json!({"outcome": "deny"}),
        json!({"outcome": "modified"}),
        json!({"outcome": "maybe"}),
        json!({"outcome": "error", "error": {"retryable": true}}),
    ] {
        assert!(!results.is_valid(&bad), "{bad}");
        assert!(
            serde_json::from_value::<StageResult>(bad.clone())
                .map(|r| r.check(StageKind::Pre))
                .map_or(true, |c| c.is_err()),
            "{bad}"
        );
    }
    let mut missing = req.clone();
    missing.as_object_mut().expect("object").remove("request_id");
    assert!(!requests.is_valid(&missing));
    assert!(serde_json::from_value::<StageRequest>(missing).is_err());
}

// ---- The example remote stage in a pipeline ----

/// The same validator in process and served by the example program, in two pipelines of one
/// host: the same answers; then the program is stopped: fail-closed → 503, fail-open → 200 and
/// `Annex-Degraded`.
#[tokio::test(flavor = "multi_thread")]
async fn a_pipeline_gives_the_same_answers_with_the_example_remote_stage_and_survives_its_loss() {
    const TOKEN: &str = "guardrails-test-token";
    let server = NatsServer::start().await.expect("own nats-server");
    let mut remote = RemoteStage::start(&server.url()).await;
    let nats = server.url();
    let host = annex_core::testkit::TestHost::builder()
        .extension(annex_ext_guardrails::Guardrails::default())
        .config(move |c| {
            c.server.admin_token = Some(TOKEN.into());
            c.nats.url = Some(nats);
        })
        .start()
        .await
        .expect("host starts");
    let api = |method: reqwest::Method, path: &str, body: Value| {
        let req = host.client().request(method, host.url(path)).bearer_auth(TOKEN).json(&body);
        async move {
            let res = req.send().await.expect("sent");
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let stage = json!({"id": "remote.pii_guard", "kind": "validator", "subject": subject_of("pii_guard"),
                       "timeout_ms": 1000, "retry": {"max_attempts": 1}});
    let (s, b) = api(reqwest::Method::POST, "/api/v1/stages", stage).await;
    assert_eq!(s, 201, "{b}");
    for (name, validator) in [("in_process", "guardrails.pii_guard"), ("over_nats", "remote.pii_guard")] {
        let pipeline =
            json!({"validators": [{"stage": validator}], "providers": [{"stage": "guardrails.mock"}]});
        let (s, b) = api(reqwest::Method::PUT, &format!("/api/v1/pipelines/{name}"), pipeline).await;
        assert_eq!(s, 200, "{b}");
    }
    let run = |name: &'static str, payload: Value| {
        let req = host.client().post(host.url(&format!("/pipelines/{name}"))).json(&payload);
        async move {
            let res = req.send().await.expect("sent");
            let (status, headers) = (res.status().as_u16(), res.headers().clone());
            (status, headers, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    // Sentinel: both pipelines are served and the remote stage answers.
    let deadline = Instant::now() + Duration::from_secs(10);
    while run("over_nats", json!("hello")).await.0 != 200 || run("in_process", json!("hello")).await.0 != 200
    {
        assert!(Instant::now() < deadline, "the pipelines were never served");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }

    for payload in [
        json!("write to jane@example.com"),
        json!("card 4111 1111 1111 1111"),
        json!("digits 4111 1111 1111 1112"),
        json!({"text": "ssn 123-45-6789"}),
        json!({"messages": [{"role": "user", "content": "call (212) 555-0123"}]}),
    ] {
        let (s1, _, b1) = run("in_process", payload.clone()).await;
        let (s2, h2, b2) = run("over_nats", payload.clone()).await;
        assert_eq!(s1, s2, "{payload}: {b1} vs {b2}");
        assert!(h2.get("annex-degraded").is_none(), "{payload}");
        if s1 == 200 {
            assert_eq!(b1, b2, "{payload}");
        } else {
            assert_eq!(s1, 422, "{payload}: {b1}");
            assert_eq!(b1["error"]["reason"], b2["error"]["reason"], "{payload}");
            assert_eq!(b2["error"]["stage"], "remote.pii_guard");
        }
    }

    // The program stops: the fail-closed validator fails the run, naming the stage.
    remote.kill();
    let closed = Instant::now() + Duration::from_secs(5);
    let (status, body) = loop {
        let (status, _, body) = run("over_nats", json!("hello")).await;
        if status == 503 || Instant::now() >= closed {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!((status, body["error"]["code"].as_str()), (503, Some("stage_unavailable")), "{body}");
    assert_eq!(body["error"]["stage"], "remote.pii_guard");
    // Opened by an operator: the run goes on and the answer says which stage it went without.
    let (s, b) =
        api(reqwest::Method::PUT, "/api/v1/stages/remote.pii_guard", json!({"on_error": "open"})).await;
    assert_eq!(s, 200, "{b}");
    let opened = Instant::now() + Duration::from_secs(5);
    let (status, headers, body) = loop {
        let got = run("over_nats", json!("hello")).await;
        if got.0 == 200 || Instant::now() >= opened {
            break got;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!((status, &body), (200, &json!({"echo": "hello"})));
    assert_eq!(headers.get("annex-degraded").map(|v| v.to_str().unwrap()), Some("remote.pii_guard"));
    host.shutdown().await;
}
