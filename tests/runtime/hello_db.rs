//! The `hello` example end to end: its migrations, its greetings route, and the CLI commands on
//! its database, run as real `annex` processes.
#![cfg(feature = "ext-hello")]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use crate::common::superuser;
use annex_core::testkit::{TEST_SECRET, TestHost, test_database_url};
use serde_json::{Value, json};

#[tokio::test]
async fn hello_stores_and_lists_greetings_in_its_own_schema() {
    let t = TestHost::builder().extension(annex_ext_hello::Hello).start().await.expect("host starts");
    let res = t
        .client()
        .post(t.url("/ext/hello/greetings"))
        .json(&json!({"name": "ada"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 200);
    let created: Value = res.json().await.expect("json");
    assert_eq!(created["name"], "ada");
    assert!(created["greeted_at"].is_string(), "{created}");
    let res = t.client().post(t.url("/ext/hello/greetings")).json(&json!({})).send().await.expect("sent");
    assert_eq!(res.status(), 400);
    // PostgreSQL cannot store NUL: a 422 naming the field, not a 500 from deep in the query.
    let res = t
        .client()
        .post(t.url("/ext/hello/greetings"))
        .json(&json!({"name": "a\u{0}b"}))
        .send()
        .await
        .expect("sent");
    assert_eq!(res.status(), 422);
    let refused: Value = res.json().await.expect("json");
    assert_eq!(refused["error"]["errors"][0]["pointer"], "/name", "{refused}");

    let list: Value = t.get("/ext/hello/greetings").await.json().await.expect("json");
    assert_eq!(list["greetings"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["greetings"][0]["name"], "ada");

    let db = superuser(t.database_url()).await;
    let columns: Vec<String> = sqlx::query_scalar(
        "select column_name::text from information_schema.columns
         where table_schema = 'ext_hello' and table_name = 'greetings' order by ordinal_position",
    )
    .fetch_all(&db)
    .await
    .expect("columns");
    assert_eq!(columns, vec!["id", "name", "greeted_at"]);
    db.close().await;
    t.shutdown().await;
}

fn annex(url: &str, dir: &std::path::Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(args)
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("ANNEX_DATA_DIR", dir)
        .env("ANNEX_SECRET", TEST_SECRET)
        .env("NO_COLOR", "1")
        .output()
        .expect("annex runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[tokio::test]
async fn the_cli_migrates_reports_rolls_back_and_purges_hello() {
    let url = test_database_url().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    let out = annex(&url, d, &["extensions", "migrate", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("hello 0001 create_greetings applied in"), "{text}");
    assert!(text.contains("hello 0002 greeting_time applied in"), "{text}");
    let again = annex(&url, d, &["extensions", "migrate", "--all"]);
    assert!(stdout(&again).contains("hello: up to date"), "{}", stdout(&again));

    // Refused while hello is enabled (it would serve on a schema it does not expect)...
    let out = annex(&url, d, &["extensions", "rollback", "hello", "1"]);
    assert!(!out.status.success() && stderr(&out).contains("--disable"), "{}", stderr(&out));
    // ...and done after disabling it first.
    let out = annex(&url, d, &["extensions", "rollback", "hello", "1", "--disable"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("hello 0002 greeting_time rolled back"), "{}", stdout(&out));

    let out = annex(&url, d, &["extensions", "migrations", "hello", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("json report");
    assert_eq!(report["steps"][0]["state"], "applied");
    assert_eq!(report["steps"][1]["state"], "pending");
    let actions: Vec<&str> =
        report["history"].as_array().expect("history").iter().filter_map(|h| h["action"].as_str()).collect();
    assert_eq!(actions, vec!["applied", "applied", "rolled_back"]);
    let table = stdout(&annex(&url, d, &["extensions", "migrations", "hello"]));
    assert!(table.contains("greeting_time") && table.contains("pending"), "{table}");

    let out = annex(&url, d, &["extensions", "enable", "hello"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = annex(&url, d, &["extensions", "purge", "hello"]);
    assert!(!out.status.success() && stderr(&out).contains("--yes"), "{}", stderr(&out));
    let out = annex(&url, d, &["extensions", "purge", "hello", "--yes"]);
    assert!(!out.status.success() && stderr(&out).contains("is enabled"), "{}", stderr(&out));
    std::fs::write(d.join("annex.toml"), "[extensions.hello]\nenabled = false\n").expect("config");
    let out = annex(&url, d, &["extensions", "purge", "hello", "--yes"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("dropped schema ext_hello"), "{}", stdout(&out));
    let db = superuser(&url).await;
    let left: i64 = sqlx::query_scalar("select count(*) from pg_namespace where nspname = 'ext_hello'")
        .fetch_one(&db)
        .await
        .expect("q");
    assert_eq!(left, 0);
    db.close().await;
}

/// Starts `annex serve` and waits until it says it is serving.
fn serve(url: &str, dir: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(["serve", "--bind", "127.0.0.1:0"])
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("ANNEX_DATA_DIR", dir)
        .env("ANNEX_SECRET", TEST_SECRET)
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("annex serve starts")
}

fn wait_serving(child: &mut Child) -> std::thread::JoinHandle<String> {
    let stderr = child.stderr.take().expect("stderr piped");
    std::thread::spawn(move || {
        let mut seen = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains("annex is serving") {
                break;
            }
        }
        seen
    })
}

#[tokio::test]
async fn two_annex_processes_started_at_once_apply_each_hello_migration_once() {
    let url = test_database_url().await.expect("database");
    let (d1, d2) = (tempfile::tempdir().expect("tempdir"), tempfile::tempdir().expect("tempdir"));
    let mut a = serve(&url, d1.path());
    let mut b = serve(&url, d2.path());
    let (wa, wb) = (wait_serving(&mut a), wait_serving(&mut b));
    let (la, lb) = (wa.join().expect("reader"), wb.join().expect("reader"));
    for child in [&a, &b] {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
    }
    let _ = (a.wait(), b.wait());
    assert!(la.contains("annex is serving") && lb.contains("annex is serving"), "{la}\n---\n{lb}");
    // Default extensions whose permissions this bare config does not grant stay off (by design,
    // logged as a failed start); anything else failing is a bug.
    let failures = |log: &str| {
        log.lines().filter(|l| l.contains("failed") && !l.contains("which is not granted")).count()
    };
    assert_eq!((failures(&la), failures(&lb)), (0, 0), "{la}\n---\n{lb}");

    let db = superuser(&url).await;
    // Each step once: as many `applied` history rows as distinct steps, and as steps recorded.
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "select h.scope, count(*), count(distinct h.version), \
                (select count(*) from annex.migrations m where m.scope = h.scope) \
         from annex.migration_history h where h.action = 'applied' group by h.scope order by h.scope",
    )
    .fetch_all(&db)
    .await
    .expect("history");
    let scopes: Vec<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    // Every compiled-in extension with migrations has a scope (`notes` with feature ext-notes).
    let expected: &[&str] =
        if cfg!(feature = "ext-notes") { &["annex", "hello", "notes"] } else { &["annex", "hello"] };
    assert_eq!(scopes, expected);
    for (scope, applied, distinct, recorded) in &rows {
        assert_eq!(
            (applied, distinct),
            (recorded, recorded),
            "scope {scope}: each step applied exactly once"
        );
    }
    assert_eq!(rows.iter().find(|r| r.0 == "hello").map(|r| r.1), Some(2), "hello has two migrations");
    db.close().await;
}
