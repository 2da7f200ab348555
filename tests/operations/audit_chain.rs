//! The audit log's hash chain on a real PostgreSQL: many writers (two replicas' admin APIs, the
//! CLI's `Admin`, plain SQL) make one linear chain; edits and removals by hand are found by
//! `GET /api/v1/audit/verify` and `annex audit verify`; the migration chains older rows.

use std::process::{Command, Output, Stdio};
use std::sync::Arc;

use annex_core::{Extension, admin::Admin, config::Config};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};

use crate::support::{Base, Dependent, admin, body, host};

async fn connect(url: &str) -> PgConnection {
    PgConnection::connect(url).await.expect("connect as the database owner")
}

async fn verify_api(t: &annex_core::testkit::TestHost) -> Value {
    let res = admin(t, Method::GET, "/api/v1/audit/verify").send().await.expect("verify answers");
    assert_eq!(res.status(), 200);
    body(res).await
}

/// `annex audit verify --json` against `url`.
async fn verify_cli(url: &str) -> Output {
    let data = tempfile::tempdir().expect("tempdir");
    // Extensions compiled in by default are valid only with their permissions granted.
    let grant =
        "[extensions.webhooks]\npermissions = [\"database\", \"events:subscribe\", \"http:outbound\"]\n";
    std::fs::write(data.path().join("annex.toml"), grant).expect("annex.toml");
    let mut c = Command::new(env!("CARGO_BIN_EXE_annex"));
    c.args(["audit", "verify", "--json"])
        .env("DATABASE_URL", url)
        .env("ANNEX_DATA_DIR", data.path())
        .env("ANNEX_LOG", "warn")
        .current_dir(data.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || c.output().expect("annex runs")).await.expect("join")
}

async fn rows(db: &mut PgConnection) -> i64 {
    sqlx::query_scalar("select count(*) from annex.audit_log").fetch_one(db).await.expect("count")
}

/// Every row's prev_hash is the hash of the row before it in id order; the first one's is zeros.
async fn assert_linked(db: &mut PgConnection) {
    let unlinked: i64 = sqlx::query_scalar(
        r#"
        select count(*) from (
            select prev_hash, coalesce(lag(hash) over (order by id), repeat('0', 64)) as expected
              from annex.audit_log
        ) linked
         where prev_hash <> expected
        "#,
    )
    .fetch_one(db)
    .await
    .expect("links");
    assert_eq!(unlinked, 0, "rows whose prev_hash is not their predecessor's hash");
}

/// Every audit row's id, in chain order.
async fn ids(db: &mut PgConnection) -> Vec<i64> {
    sqlx::query_scalar("select id from annex.audit_log order by id").fetch_all(db).await.expect("ids")
}

/// What a superuser tampering by hand does first: removes the trigger that refuses UPDATE and
/// DELETE, so the chain is the only thing left to catch the edit.
async fn drop_append_only_trigger(db: &mut PgConnection) {
    sqlx::query("drop trigger audit_log_no_update_delete on annex.audit_log")
        .execute(db)
        .await
        .expect("drop the trigger");
}

/// Some entries through the host's own write path.
async fn some_entries(t: &annex_core::testkit::TestHost, n: usize) {
    for i in 0..n {
        let res = admin(t, Method::PUT, "/api/v1/extensions/base/config")
            .json(&json!({ "greeting": format!("hello {i}") }))
            .send()
            .await
            .expect("put config");
        assert_eq!(res.status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_writers_on_two_replicas_the_cli_and_sql_make_one_chain_that_verifies() {
    let a = host(Base::default(), None).await;
    let b = host(Base::default(), Some(a.database_url())).await;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.database.url = Some(a.database_url().to_owned());
    config.data_dir = dir.path().to_owned();
    let extensions: Vec<Arc<dyn Extension>> = vec![Arc::new(Base::default()), Arc::new(Dependent)];
    let cli = Arc::new(Admin::connect(&config, &extensions).await.expect("admin connects"));

    let mut writers = tokio::task::JoinSet::new();
    for t in [a.url("/api/v1/extensions/base/config"), b.url("/api/v1/extensions/base/config")] {
        for w in 0..8 {
            let (client, t) = (a.client().clone(), t.clone());
            writers.spawn(async move {
                for i in 0..10 {
                    let res = client
                        .put(&t)
                        .bearer_auth(crate::support::TOKEN)
                        .json(&json!({ "greeting": format!("{w}-{i}") }))
                        .send()
                        .await
                        .expect("put config");
                    assert_eq!(res.status(), 200);
                }
            });
        }
    }
    for w in 0..4 {
        let cli = cli.clone();
        writers.spawn(async move {
            for i in 0..10 {
                let greeting = json!({ "greeting": format!("cli {w}-{i}") });
                cli.controller().set_config("base", greeting, "cli").await.expect("cli config");
            }
        });
    }
    for w in 0..8 {
        let url = a.database_url().to_owned();
        writers.spawn(async move {
            let mut db = connect(&url).await;
            for i in 0..10 {
                sqlx::query("insert into annex.audit_log (actor, action, target, details) values ('tool', 'tool.wrote', 'x', $1)")
                    .bind(json!({ "writer": w, "i": i, "text": "ünïcode ✓" }))
                    .execute(&mut db)
                    .await
                    .expect("plain insert");
            }
            // Several rows in one statement are chained one after the other too.
            sqlx::query("insert into annex.audit_log (actor, action, target) select 'tool', 'tool.bulk', g::text from generate_series(1, 5) g")
                .execute(&mut db)
                .await
                .expect("bulk insert");
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }

    let mut db = connect(a.database_url()).await;
    let n = rows(&mut db).await;
    assert!(n >= 160 + 40 + 120, "only {n} rows");
    assert_linked(&mut db).await;
    for t in [&a, &b] {
        assert_eq!(verify_api(t).await, json!({ "ok": true, "rows": n }));
    }
    let verdict = cli.verify_audit().await.expect("verify");
    assert_eq!(serde_json::to_value(verdict).expect("JSON"), json!({ "ok": true, "rows": n }));

    if let Ok(cli) = Arc::try_unwrap(cli) {
        cli.close().await;
    }
    b.shutdown().await;
    a.shutdown().await;
}

#[tokio::test]
async fn update_delete_and_truncate_of_audit_rows_are_refused_for_the_database_owner() {
    let t = host(Base::default(), None).await;
    some_entries(&t, 2).await;
    let mut db = connect(t.database_url()).await;
    let before = rows(&mut db).await;
    for statement in [
        "update annex.audit_log set details = '{\"forged\": true}'",
        "update annex.audit_log set hash = repeat('0', 64)",
        "delete from annex.audit_log where id = (select max(id) from annex.audit_log)",
        "truncate annex.audit_log",
    ] {
        let err = sqlx::query(statement).execute(&mut db).await.expect_err(statement).to_string();
        assert!(err.contains("append-only"), "{statement}: {err}");
    }
    assert_eq!(rows(&mut db).await, before);
    assert_eq!(verify_api(&t).await["ok"], true);
    t.shutdown().await;
}

#[tokio::test]
async fn a_row_edited_by_hand_is_the_first_broken_link_for_the_api_and_the_cli() {
    let t = host(Base::default(), None).await;
    some_entries(&t, 5).await;
    let mut db = connect(t.database_url()).await;
    let ids = ids(&mut db).await;
    let edited = ids[ids.len() / 2];
    let cli = verify_cli(t.database_url()).await;
    assert!(cli.status.success(), "{}", String::from_utf8_lossy(&cli.stderr));

    drop_append_only_trigger(&mut db).await;
    sqlx::query("update annex.audit_log set details = '{\"greeting\": \"forged\"}' where id = $1")
        .bind(edited)
        .execute(&mut db)
        .await
        .expect("edit");

    let verdict = verify_api(&t).await;
    let position = ids.iter().position(|&id| id == edited).expect("edited id") + 1;
    assert_eq!(
        verdict,
        json!({ "ok": false, "rows_checked": position,
                "first_broken": { "id": edited, "reason": "hash does not match the row's content" } })
    );
    let cli = verify_cli(t.database_url()).await;
    assert!(!cli.status.success(), "a broken chain must exit non-zero");
    let printed: Value = serde_json::from_slice(&cli.stdout).expect("JSON on stdout");
    assert_eq!(printed, verdict);
    let stderr = String::from_utf8_lossy(&cli.stderr);
    assert!(stderr.contains(&format!("broken at entry {edited}")), "{stderr}");
    t.shutdown().await;
}

#[tokio::test]
async fn a_row_deleted_in_the_middle_is_found_at_the_row_after_it() {
    let t = host(Base::default(), None).await;
    some_entries(&t, 5).await;
    let mut db = connect(t.database_url()).await;
    let ids = ids(&mut db).await;
    let removed = ids.len() / 2;
    drop_append_only_trigger(&mut db).await;
    sqlx::query("delete from annex.audit_log where id = $1")
        .bind(ids[removed])
        .execute(&mut db)
        .await
        .expect("delete");

    assert_eq!(
        verify_api(&t).await,
        json!({ "ok": false, "rows_checked": removed + 1,
                "first_broken": { "id": ids[removed + 1], "reason": "prev_hash does not match the previous row" } })
    );
    t.shutdown().await;
}

#[tokio::test]
async fn verification_pages_through_a_long_log_and_finds_an_edit_on_a_later_page() {
    let t = host(Base::default(), None).await;
    let mut db = connect(t.database_url()).await;
    sqlx::query("insert into annex.audit_log (actor, action, target, details, request_id) select 'tool', 'tool.bulk', g::text, jsonb_build_object('n', g), case when g % 2 = 0 then 'r' || g end from generate_series(1, 2500) g")
        .execute(&mut db)
        .await
        .expect("bulk insert");
    let n = rows(&mut db).await;
    assert_eq!(verify_api(&t).await, json!({ "ok": true, "rows": n }));

    let edited: i64 =
        sqlx::query_scalar("select id from annex.audit_log where target = '2300' and action = 'tool.bulk'")
            .fetch_one(&mut db)
            .await
            .expect("row");
    drop_append_only_trigger(&mut db).await;
    sqlx::query("update annex.audit_log set request_id = null where id = $1")
        .bind(edited)
        .execute(&mut db)
        .await
        .expect("edit");
    let verdict = verify_api(&t).await;
    assert_eq!(
        verdict["first_broken"],
        json!({ "id": edited, "reason": "hash does not match the row's content" })
    );
    t.shutdown().await;
}

#[tokio::test]
async fn an_entry_in_a_repeatable_read_transaction_is_refused() {
    let t = host(Base::default(), None).await;
    let mut db = connect(t.database_url()).await;
    let mut tx = db.begin().await.expect("begin");
    sqlx::query("set transaction isolation level repeatable read")
        .execute(&mut *tx)
        .await
        .expect("isolation");
    let err =
        sqlx::query("insert into annex.audit_log (actor, action, target) values ('tool', 'tool.wrote', 'x')")
            .execute(&mut *tx)
            .await
            .expect_err("a repeatable read snapshot could fork the chain")
            .to_string();
    assert!(err.contains("read committed"), "{err}");
    tx.rollback().await.expect("rollback");
    t.shutdown().await;
}

#[tokio::test]
async fn the_migration_chains_rows_written_before_it_and_reverts_cleanly() {
    let t = host(Base::default(), None).await;
    some_entries(&t, 3).await;
    let mut db = connect(t.database_url()).await;
    // Back to the log as it was before migration 0006, with rows written then.
    sqlx::raw_sql(include_str!("../../migrations/0006_audit_chain.down.sql"))
        .execute(&mut db)
        .await
        .expect("down");
    sqlx::query("insert into annex.audit_log (actor, action, target, details, request_id) values ('tool', 'tool.old', 'x', '{\"b\": [1, 2], \"a\": \"é\"}', null), ('tool', 'tool.old', 'y', '{}', 'req-1')")
        .execute(&mut db)
        .await
        .expect("old rows");
    let mut tx = db.begin().await.expect("begin");
    sqlx::raw_sql(include_str!("../../migrations/0006_audit_chain.up.sql"))
        .execute(&mut *tx)
        .await
        .expect("up");
    tx.commit().await.expect("commit");

    assert_linked(&mut db).await;
    let n = rows(&mut db).await;
    assert_eq!(verify_api(&t).await, json!({ "ok": true, "rows": n }));
    some_entries(&t, 1).await;
    assert_eq!(verify_api(&t).await, json!({ "ok": true, "rows": n + 1 }));
    t.shutdown().await;
}
