//! Faults operators meet (docs/reliability.md): the database stopped under load and started
//! again; `annex serve` killed with SIGKILL during its migrations. Real PostgreSQL servers, the
//! real binary, loopback only, every wait bounded.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use annex_core::testkit::{PostgresServer, TEST_SECRET, TestHost};
use annex_core::{ApiError, Context, Extension, Metadata, Migration, Migrations, Registrar};
use annex_core::{admin::Admin, config::Config};
use axum::Json;
use serde_json::{Value, json};

use crate::support::{Base, TOKEN, admin, eventually};

/// `stocked`: a table of its own and `GET /count`, which needs its pool.
struct Stocked;

#[annex_core::async_trait]
impl Extension for Stocked {
    fn metadata(&self) -> Metadata {
        Metadata::new("stocked", "1.0.0").description("counts rows on its own pool")
    }
    fn migrations(&self) -> Migrations {
        Migrations::new(vec![Migration::new(
            1,
            "items",
            "create table items (id int); insert into items values (1), (2)",
            Some("drop table items"),
        )])
    }
    fn register(&self, r: &mut Registrar) {
        r.get("/count", |cx: Context| async move {
            let n: i64 =
                sqlx::query_scalar("select count(*) from items").fetch_one(cx.db()?).await.map_err(|e| {
                    ApiError::new(axum::http::StatusCode::SERVICE_UNAVAILABLE, "database", e.to_string())
                })?;
            Ok::<_, ApiError>(Json(json!({ "count": n })))
        });
    }
}

/// What the load saw in one phase: answers by status, and transport errors.
#[derive(Debug, Default, Clone)]
struct Tally {
    by_status: BTreeMap<u16, usize>,
    failed: usize,
}

impl Tally {
    fn answered(&self) -> usize {
        self.by_status.values().sum()
    }
}

/// The database is stopped for 10 s while four clients hit a route that needs no database: every
/// one of their requests is answered 200; `/ready` goes 503 and back to 200 with no restart of
/// annex; the extension's pool and the host's reconnect; and a config change made by another
/// process (the CLI's path) the moment the database is back reaches the host through its
/// LISTEN connection, re-established (and resynced) by itself.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_stopped_for_10_s_under_load_and_started_again() {
    const OUTAGE: Duration = Duration::from_secs(10);
    let pg = PostgresServer::start().await.expect("a PostgreSQL of this test's own");
    let url = pg.create_database().await.expect("database");
    let t = TestHost::builder()
        .extension(Base::default())
        .extension(Stocked)
        .database_url(&url)
        .config(|c| {
            c.server.admin_token = Some(TOKEN.into());
            c.extensions.entry("stocked".into()).or_default().permissions = vec!["database".into()];
        })
        .start()
        .await
        .expect("host starts");
    assert_eq!(t.get("/ready").await.status(), 200);
    assert_eq!(t.get("/ext/stocked/count").await.status(), 200);

    // Four clients, each request tallied in the phase it was sent in (0 before, 1 during the
    // outage, 2 after).
    let phase = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tallies = Arc::new(std::sync::Mutex::new(vec![Tally::default(); 3]));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");
    let mut load = Vec::new();
    for _ in 0..4 {
        let (phase, stop, tallies, client) = (phase.clone(), stop.clone(), tallies.clone(), client.clone());
        let target = t.url("/ext/base/items/7");
        load.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let p = phase.load(Ordering::Relaxed);
                let res = client.get(&target).send().await;
                let mut tallies = tallies.lock().expect("lock");
                match res {
                    Ok(r) => *tallies[p].by_status.entry(r.status().as_u16()).or_default() += 1,
                    Err(_) => tallies[p].failed += 1,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    phase.store(1, Ordering::Relaxed);
    let stopped_at = Instant::now();
    pg.stop().await.expect("PostgreSQL stops");
    let not_ready =
        eventually(Duration::from_secs(8), || async { t.get("/ready").await.status() == 503 }).await;
    assert!(not_ready.is_some(), "/ready answers 503 while the database is down");
    let body: Value = t.get("/ready").await.json().await.expect("json");
    assert_eq!(body["error"]["code"], "not_ready", "{body}");
    let res = t.get("/ext/stocked/count").await;
    assert!(
        res.status().is_server_error(),
        "a route that needs the database fails cleanly: {}",
        res.status()
    );
    let remaining = OUTAGE.saturating_sub(stopped_at.elapsed());
    tokio::time::sleep(remaining).await;

    pg.start_again().await.expect("PostgreSQL starts again");
    phase.store(2, Ordering::Relaxed);
    let back = Instant::now();
    // Another process changes the config the moment the database is back (the host's listener
    // may still be reconnecting): the change must reach the host without a restart.
    let mut cli_config = Config::default();
    cli_config.database.url = Some(url.clone());
    cli_config.server.secret = Some(TEST_SECRET.into());
    let dir = tempfile::tempdir().expect("tempdir");
    cli_config.data_dir = dir.path().to_owned();
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(Base::default()), Arc::new(Stocked)];
    let cli =
        Admin::connect(&cli_config, &extensions).await.expect("the CLI connects once the database is back");
    cli.controller()
        .set_config("base", json!({ "greeting": "after the outage" }), "cli")
        .await
        .expect("stored");
    drop(cli);

    let ready = eventually(Duration::from_secs(30), || async { t.get("/ready").await.status() == 200 }).await;
    assert!(ready.is_some(), "/ready is 200 again without restarting annex");
    let followed = eventually(Duration::from_secs(20), || async {
        let res = t.get("/ext/base/greeting").await;
        res.status() == 200 && res.json::<Value>().await.is_ok_and(|b| b["greeting"] == "after the outage")
    })
    .await;
    assert!(followed.is_some(), "the change made elsewhere after the outage reached the host");
    let pool_back =
        eventually(Duration::from_secs(20), || async { t.get("/ext/stocked/count").await.status() == 200 })
            .await;
    assert!(pool_back.is_some(), "the extension's own pool reconnected");
    let res = admin(&t, reqwest::Method::GET, "/api/v1/extensions").send().await.expect("admin api");
    assert_eq!(res.status(), 200, "the host's pool reconnected");
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    for l in load {
        l.await.expect("load task");
    }
    let tallies = tallies.lock().expect("lock").clone();
    println!(
        "postgres outage: {} s down; requests before {:?}, during {:?}, after {:?}; ready again {:?} and the change followed {:?} after the restart",
        OUTAGE.as_secs(),
        tallies[0],
        tallies[1],
        tallies[2],
        ready.unwrap_or_default(),
        back.elapsed()
    );
    for (name, tally) in ["before", "during", "after"].iter().zip(&tallies) {
        assert_eq!(tally.failed, 0, "{name} the outage: every request answered: {tally:?}");
        assert!(tally.by_status.keys().all(|s| *s == 200), "{name} the outage: all 200: {tally:?}");
    }
    assert!(tallies[1].answered() > 100, "the load ran through the outage: {:?}", tallies[1]);
    t.shutdown().await;
}

/// `annex serve` started on `url` with `data` as its data directory.
fn serve(url: &str, data: &std::path::Path) -> std::process::Command {
    let mut c = std::process::Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["serve", "--bind", "127.0.0.1:0"])
        .env("DATABASE_URL", url)
        .env("ANNEX_ADMIN_TOKEN", TOKEN)
        .env("ANNEX_DATA_DIR", data)
        .env("ANNEX_LOG", "info")
        .env("ANNEX_LOG_FORMAT", "json")
        .current_dir(data)
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    c
}

/// Runs `annex serve` and kills it with SIGKILL right after its `n`-th "migration applied" log
/// line (or when it announces its address, whichever comes first); returns how many migrations
/// it had reported.
fn kill_after_migrations(url: &str, data: &std::path::Path, n: usize) -> usize {
    let mut child = serve(url, data).spawn().expect("annex serve runs");
    let stderr = child.stderr.take().expect("stderr");
    let mut applied = 0;
    for line in BufReader::new(stderr).lines().map_while(Result::ok) {
        if line.contains("migration applied") {
            applied += 1;
            if applied >= n {
                break;
            }
        }
        if line.contains("http://") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    applied
}

/// Runs the `annex` CLI on `url`; its stdout (it must succeed).
fn annex(url: &str, data: &std::path::Path, args: &[&str]) -> String {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_annex"))
        .args(args)
        .env("DATABASE_URL", url)
        .env("ANNEX_DATA_DIR", data)
        .current_dir(data)
        .output()
        .expect("annex runs");
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "annex {args:?}: {said}{}", String::from_utf8_lossy(&out.stderr));
    said
}

/// Per scope (`annex` or an extension), the migration versions recorded as applied.
async fn recorded(pool: &sqlx::PgPool) -> BTreeMap<String, Vec<i64>> {
    let rows: Vec<(String, i64)> =
        sqlx::query_as("select scope, version from annex.migrations order by scope, version")
            .fetch_all(pool)
            .await
            .expect("migration records");
    rows.into_iter().fold(BTreeMap::new(), |mut m, (scope, v)| {
        m.entry(scope).or_insert_with(Vec::new).push(v);
        m
    })
}

/// SIGKILL at the k-th migration of a first start, for several k: each restart finishes the
/// job; no migration is half applied (each runs in one transaction with its record: after the
/// kills every step is `applied` with an intact checksum, none pending or changed), nothing is
/// applied twice, and the audit chain verifies.
#[tokio::test(flavor = "multi_thread")]
async fn serve_killed_during_migrations_leaves_none_half_applied() {
    let mut kills = Vec::new();
    for n in [1, 3, 6, 9] {
        let url = annex_core::testkit::test_database_url().await.expect("database");
        let data = tempfile::tempdir().expect("tempdir");
        // Killed at its n-th migration, then again at the first of the next start.
        for at in [n, 1] {
            let reached = tokio::task::spawn_blocking({
                let (url, data) = (url.clone(), data.path().to_owned());
                move || kill_after_migrations(&url, &data, at)
            })
            .await
            .expect("joined");
            kills.push(reached);
        }
        // The last start runs to the end.
        let server = crate::support::Server::start(serve(&url, data.path()), data.path());
        check_migrations_complete(&url, data.path(), &server.url).await;
        server.stop();
    }
    println!(
        "kill -9 during migrations: killed after {kills:?} migrations applied; each database then complete"
    );
    assert!(kills.iter().filter(|k| **k > 0).count() >= 6, "the kills fell during migrations: {kills:?}");
}

/// Every migration of `url` applied once with its checksum intact, and the audit chain intact.
async fn check_migrations_complete(url: &str, data: &std::path::Path, server: &str) {
    let pool = sqlx::PgPool::connect(url).await.expect("connect");
    let versions = recorded(&pool).await;
    assert!(versions.len() > 3, "the host and several extensions have migrations: {versions:?}");
    // The host's: exactly the files in migrations/, each once.
    let mut files: Vec<i64> = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/migrations"))
        .expect("migrations/")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".up.sql")?.split('_').next()?.parse().ok()
        })
        .collect();
    files.sort();
    assert_eq!(versions["annex"], files, "every host migration applied once");
    // Each extension's: every step `applied` with its checksum intact (none pending, none
    // changed), and what the database lists is what the report lists.
    for (scope, list) in versions.iter().filter(|(s, _)| *s != "annex") {
        let out = annex(url, data, &["extensions", "migrations", scope, "--json"]);
        let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{scope}: {e}: {out}"));
        let steps = report["steps"].as_array().cloned().unwrap_or_default();
        assert!(steps.iter().all(|s| s["state"] == "applied"), "{scope}: every step applied: {report}");
        let reported: Vec<i64> = steps.iter().filter_map(|s| s["version"].as_i64()).collect();
        assert_eq!(&reported, list, "{scope}: recorded once each");
        let said = annex(url, data, &["extensions", "migrate", scope]);
        assert!(said.contains(&format!("{scope}: up to date")), "{scope}: nothing left to apply: {said}");
    }
    // One durable `extension.migrated` event per applied step: written in the step's own
    // transaction, so none is lost to a kill and none exists for a step that did not commit.
    let events: Vec<(String, i64)> = sqlx::query_as(
        "select data->>'extension', (data->'versions'->>0)::bigint from annex.event_outbox
          where name = 'extension.migrated' order by 1, 2",
    )
    .fetch_all(&pool)
    .await
    .expect("outbox");
    let steps: Vec<(String, i64)> = versions
        .iter()
        .filter(|(s, _)| *s != "annex")
        .flat_map(|(s, list)| list.iter().map(move |v| (s.clone(), *v)))
        .collect();
    assert_eq!(events, steps, "one extension.migrated event per applied step");
    // The audit chain verifies.
    let res = reqwest::Client::new()
        .get(format!("{server}/api/v1/audit/verify"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .expect("verify");
    assert_eq!(res.status(), 200);
    let verdict: Value = res.json().await.expect("json");
    assert_eq!(verdict["ok"], true, "the audit chain verifies: {verdict}");
}
