//! The `annex` binary: `extensions …` commands against the database, and two `annex serve`
//! processes following each other's and the CLI's changes.
#![cfg(feature = "ext-hello")]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Server, eventually};

const TOKEN: &str = "cli-test-token";

struct Env {
    url: String,
    data: tempfile::TempDir,
}

impl Env {
    async fn new() -> Env {
        let data = tempfile::tempdir().unwrap();
        // Extensions compiled in by default are valid only with their permissions granted.
        if cfg!(feature = "ext-webhooks") {
            let grant = "[extensions.webhooks]\npermissions = [\"database\", \"events:subscribe\", \"http:outbound\"]\n";
            std::fs::write(data.path().join("annex.toml"), grant).unwrap();
        }
        Env { url: annex_core::testkit::test_database_url().await.unwrap(), data }
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
        c.args(args)
            .env("DATABASE_URL", &self.url)
            .env("ANNEX_DATA_DIR", self.data.path())
            .env("ANNEX_ADMIN_TOKEN", TOKEN)
            .env("ANNEX_LOG", "warn")
            .current_dir(self.data.path());
        c
    }

    async fn run(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut c = self.command(args);
        c.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let input = stdin.map(str::to_owned);
        tokio::task::spawn_blocking(move || {
            let mut child = c.spawn().expect("annex runs");
            if let (Some(text), Some(mut pipe)) = (input, child.stdin.take()) {
                pipe.write_all(text.as_bytes()).unwrap();
            }
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap()
    }

    async fn json(&self, args: &[&str]) -> Value {
        let out = self.run(args, None).await;
        assert!(out.status.success(), "annex {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("JSON on stdout")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn extension_commands_work_against_the_database_with_json_and_exit_codes() {
    let env = Env::new().await;
    // Other default extensions may be compiled in too: look hello up by name.
    let hello = |rows: &Value| -> Value {
        rows.as_array().and_then(|r| r.iter().find(|e| e["name"] == "hello")).cloned().expect("hello listed")
    };
    let list = env.json(&["extensions", "list", "--json"]).await;
    assert_eq!(hello(&list)["name"], "hello");

    let disabled = env.json(&["extensions", "disable", "hello", "--json"]).await;
    assert_eq!(disabled["disabled"], json!(["hello"]));
    let status = env.json(&["extensions", "status", "--json"]).await;
    assert_eq!(hello(&status)["enabled"], false);
    assert_eq!(hello(&status)["health"], "unknown");
    env.json(&["extensions", "enable", "hello", "--json"]).await;

    let set = env
        .run(&["extensions", "config", "set", "hello", "-", "--json"], Some(r#"{"greeting": "hi"}"#))
        .await;
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    let got = env.json(&["extensions", "config", "get", "hello", "--json"]).await;
    assert_eq!(got["config"], json!({ "greeting": "hi" }));

    let info = env.json(&["extensions", "info", "hello", "--json"]).await;
    let routes = info["routes"].as_array().expect("routes");
    assert!(routes.contains(&json!({ "method": "GET", "path": "/ext/hello/ping" })), "{routes:?}");
    let health = env.json(&["extensions", "health", "hello", "--json"]).await;
    assert_eq!(health["status"], "unknown");
    let metrics = env.json(&["extensions", "metrics", "hello", "--json"]).await;
    assert_eq!(metrics["replicas"], json!([]));
    // A complete config grants every compiled-in extension what it declares.
    let granted = env.data.path().join("granted.toml");
    let mut toml = String::new();
    for e in list.as_array().expect("list") {
        let name = e["name"].as_str().expect("name");
        let info = env.json(&["extensions", "info", name, "--json"]).await;
        let needs: Vec<String> = info["permissions"]["required"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|p| format!("{p}"))
            .collect();
        toml.push_str(&format!("[extensions.{name}]\npermissions = [{}]\n", needs.join(", ")));
    }
    std::fs::write(&granted, toml).unwrap();
    let granted = granted.to_str().unwrap();
    let valid = env.json(&["--config", granted, "extensions", "validate", "--json"]).await;
    assert_eq!(valid["ok"], true, "{valid}");

    // Failures exit non-zero and say what to do.
    let out = env.run(&["extensions", "info", "nope"], None).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no extension named `nope`"));
    let out = env.run(&["extensions", "config", "set", "hello", "/nonexistent.json"], None).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent.json"));
    let out = env.run(&["extensions", "config", "set", "hello", "-"], Some("not json")).await;
    assert!(!out.status.success());
    for not_an_object in ["1", "null", "\"s\"", "[1, 2]"] {
        let out = env.run(&["extensions", "config", "set", "hello", "-"], Some(not_an_object)).await;
        assert!(!out.status.success(), "{not_an_object} was accepted");
        assert!(String::from_utf8_lossy(&out.stderr).contains("must be a JSON object"), "{not_an_object}");
    }
    let out = env.run(&["extensions", "new", "Bad-Name"], None).await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("invalid"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_cli_and_the_admin_api_give_the_same_document_for_an_extension() {
    let env = Env::new().await;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(env.command(&["serve", "--bind", "127.0.0.1:0"]), dir.path());
    let client = reqwest::Client::new();
    let api = |path: String| {
        let client = client.clone();
        async move {
            let res = client.get(path).bearer_auth(TOKEN).send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        }
    };
    // The server records a health check per interval; compare once both read the same rows.
    for (cli, path) in [
        (vec!["extensions", "info", "hello", "--json"], "/api/v1/extensions/hello"),
        (vec!["extensions", "config", "get", "hello", "--json"], "/api/v1/extensions/hello/config"),
    ] {
        let from_api = api(format!("{}{path}", server.url)).await;
        let from_cli = env.json(&cli).await;
        assert_eq!(from_cli, from_api, "`annex {}` and GET {path} differ", cli.join(" "));
        assert_eq!(from_api["name"].as_str().or(from_api["extension"].as_str()), Some("hello"));
    }
    let info = api(format!("{}/api/v1/extensions/hello", server.url)).await;
    assert_eq!(info["state"], "running");
    assert!(info["routes"].as_array().is_some_and(|r| !r.is_empty()), "{info}");
    server.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn two_serve_processes_follow_the_admin_api_of_either_and_the_cli() {
    let env = Env::new().await;
    let (da, db) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::start(env.command(&["serve", "--bind", "127.0.0.1:0"]), da.path());
    let b = Server::start(env.command(&["serve", "--bind", "127.0.0.1:0"]), db.path());
    let client = reqwest::Client::new();
    let status = |url: String| {
        let client = client.clone();
        async move { client.get(url).send().await.map(|r| r.status().as_u16()).unwrap_or(0) }
    };
    assert_eq!(status(format!("{}/ext/hello/ping", b.url)).await, 200);

    let res = client
        .post(format!("{}/api/v1/extensions/hello/disable", a.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let took = eventually(Duration::from_secs(1), || {
        let answer = status(format!("{}/ext/hello/ping", b.url));
        async move { answer.await == 503 }
    })
    .await;
    assert!(took.is_some(), "the other process still serves after 1 s");

    let set = env.run(&["extensions", "config", "set", "hello", "-"], Some(r#"{"greeting": "both"}"#)).await;
    assert!(set.status.success(), "{}", String::from_utf8_lossy(&set.stderr));
    for server in [&a, &b] {
        let url = format!("{}/api/v1/extensions/hello/config", server.url);
        let took = eventually(Duration::from_secs(1), || {
            let client = client.clone();
            let url = url.clone();
            async move {
                let res = client.get(url).bearer_auth(TOKEN).send().await.unwrap();
                res.json::<Value>().await.unwrap()["config"] == json!({ "greeting": "both" })
            }
        })
        .await;
        assert!(took.is_some(), "config reached {}", server.url);
    }
    a.stop();
    b.stop();
}

#[tokio::test(flavor = "multi_thread")]
async fn sites_commands_round_trip_with_json() {
    let env = Env::new().await;
    let created = env.json(&["sites", "create", "plant-1", "--name", "Plant One", "--json"]).await;
    assert_eq!(created["slug"], "plant-1");
    assert_eq!(created["status"], "active");
    let list = env.json(&["sites", "list", "--json"]).await;
    assert_eq!(list["sites"][0]["name"], "Plant One");

    let done = env.json(&["sites", "activate", "plant-1", "hello", "{}", "--reason", "cli", "--json"]).await;
    assert_eq!(done["action"], "activated");
    assert_eq!(done["config_hash"], "44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a");
    let status = env.json(&["sites", "status", "plant-1", "--json"]).await;
    let hello = status["extensions"].as_array().unwrap().iter().find(|e| e["extension"] == "hello").unwrap();
    assert_eq!(hello["state"], "active");
    assert_eq!(hello["valid"], true);
    let trail = env.json(&["sites", "trail", "plant-1", "hello", "--json"]).await;
    assert_eq!(trail["entries"][0]["action"], "site.extension_activated");
    assert_eq!(trail["entries"][0]["actor"], "cli");

    // Refusals exit non-zero and print the error document with --json.
    let out = env.run(&["sites", "create", "plant-1", "--name", "Again", "--json"], None).await;
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).expect("JSON error on stdout");
    assert_eq!(refused["error"]["code"], "site_exists");
    let args =
        ["sites", "signoff", "plant-1", "hello", "--operator", "nobody", "--aspect", "a", "--role", "r"];
    let hash = "0".repeat(64);
    let mut args: Vec<&str> = args.to_vec();
    args.extend(["--hash", &hash, "--password-stdin", "--json"]);
    let out = env.run(&args, Some("a password that is long\n")).await;
    assert!(!out.status.success());
    let refused: Value = serde_json::from_slice(&out.stdout).expect("JSON error on stdout");
    assert_eq!(refused["error"]["code"], "unknown_operator");

    let csv = env.run(&["sites", "report", "plant-1", "--format", "csv"], None).await;
    assert!(String::from_utf8_lossy(&csv.stdout).contains("plant-1,hello,"), "the CSV lists hello");
    let done = env.json(&["sites", "deactivate", "plant-1", "hello", "--json"]).await;
    assert_eq!(done["deactivated"], json!(["hello"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_are_added_listed_disabled_and_their_tokens_authenticate_with_their_roles() {
    let env = Env::new().await;
    let t = crate::support::host(crate::support::Base::default(), Some(&env.url)).await;
    let add = |user: &'static str, roles: &'static [&'static str], password: &'static str| {
        let mut args = vec!["operators", "add", user, "--name", "Ann Example", "--password-stdin", "--json"];
        for r in roles {
            args.extend(["--role", r]);
        }
        let env = &env;
        async move { env.run(&args, Some(&format!("{password}\n"))).await }
    };
    let out = add("ann", &["viewer"], "a long enough password").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let viewer: Value = serde_json::from_slice(&out.stdout).unwrap();
    let viewer_token = viewer["token"].as_str().unwrap().to_owned();
    assert!(viewer_token.starts_with("annex_op_"), "{viewer}");
    assert_eq!(viewer["operator"]["roles"], json!(["viewer"]));
    assert!(viewer["operator"].get("password_hash").is_none(), "no hash is ever shown");

    let out = add("ann", &["viewer"], "a long enough password").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("operator `ann` already exists"));
    let out = add("bob", &[], "short").await;
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("12 to 1024 characters"));
    let out = add("Bad Name", &[], "a long enough password").await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("username `Bad Name` is invalid"));
    let out = add("root", &["admin"], "another long password").await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let root: Value = serde_json::from_slice(&out.stdout).unwrap();
    let root_token = root["token"].as_str().unwrap().to_owned();

    let get = |token: String| {
        let (client, url) = (t.client().clone(), t.url("/api/v1/extensions"));
        async move { client.get(url).bearer_auth(token).send().await.unwrap() }
    };
    // An unscoped viewer reads the host-wide admin API (what the console shows) but cannot change it.
    assert_eq!(get(viewer_token.clone()).await.status(), 200, "a viewer may read the host-wide admin API");
    let res = t
        .client()
        .post(t.url("/api/v1/extensions/base/disable"))
        .bearer_auth(viewer_token.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403, "a viewer may not change it");
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["error"]["code"], "forbidden");
    assert!(b["error"]["message"].as_str().unwrap().contains("role `admin`"), "{b}");
    assert_eq!(get(root_token.clone()).await.status(), 200, "an admin operator may");
    assert_eq!(get(format!("{viewer_token}0")).await.status(), 401, "an unknown operator token");

    let list = env.json(&["operators", "list", "--json"]).await;
    let names: Vec<&str> = list.as_array().unwrap().iter().map(|o| o["username"].as_str().unwrap()).collect();
    assert_eq!(names, ["ann", "root"]);

    env.json(&["operators", "disable", "ann", "--json"]).await;
    assert_eq!(get(viewer_token).await.status(), 401, "a disabled operator's token stops working");
    let rotated = env.json(&["operators", "token", "root", "--json"]).await;
    assert_eq!(get(root_token).await.status(), 401, "the old token stops working");
    assert_eq!(get(rotated["token"].as_str().unwrap().to_owned()).await.status(), 200);
    let out = env.run(&["operators", "disable", "nobody"], None).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("no operator `nobody`"));

    let pool = sqlx::PgPool::connect(&env.url).await.unwrap();
    let before: String =
        sqlx::query_scalar("select password_hash from annex.operators where username = 'root'")
            .fetch_one(&pool)
            .await
            .unwrap();
    let out =
        env.run(&["operators", "passwd", "root", "--password-stdin"], Some("a brand new password\n")).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let after: String =
        sqlx::query_scalar("select password_hash from annex.operators where username = 'root'")
            .fetch_one(&pool)
            .await
            .unwrap();
    assert_ne!(before, after);
    assert!(after.starts_with("$argon2id$"));
    let actions: Vec<String> = sqlx::query_scalar(
        "select action from annex.audit_log where target like 'operators/%' and actor = 'cli' order by id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        actions,
        [
            "operator.added",
            "operator.added",
            "operator.disabled",
            "operator.token_rotated",
            "operator.password_changed"
        ]
    );
    t.shutdown().await;
}
