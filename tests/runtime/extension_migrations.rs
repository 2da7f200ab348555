//! Extension migrations: applied once across replicas, atomic per step, checksummed, reversible
//! from the CLI's API, and purged with the schema and role.

use crate::common::{Scripted, sql, step, superuser};
use annex_core::testkit::{TEST_SECRET, TestHost, test_database_url};
use annex_core::{
    Extension, Migration,
    admin::{Admin, ExtensionDbError, StepAction},
    config::Config,
    host::{ExtensionState, MigrationError},
};
use std::sync::Arc;

fn counted() -> Scripted {
    // Not idempotent on purpose: running any step twice fails or leaves a duplicate row.
    Scripted::new(
        "counted",
        vec![
            step(
                1,
                "log",
                "create table log (n int primary key); insert into log values (1)",
                "drop table log",
            ),
            step(2, "two", "insert into log values (2)", "delete from log where n = 2"),
            step(3, "three", "insert into log values (3)", "delete from log where n = 3"),
        ],
    )
}

#[tokio::test]
async fn two_hosts_started_at_once_on_a_fresh_database_apply_each_migration_once() {
    let url = test_database_url().await.expect("fresh database");
    let (a, b) = tokio::join!(
        TestHost::builder().database_url(&url).extension(counted()).start(),
        TestHost::builder().database_url(&url).extension(counted()).start(),
    );
    let (a, b) = (a.expect("first host"), b.expect("second host"));
    assert_eq!(a.host().state("counted"), Some(ExtensionState::Running));
    assert_eq!(b.host().state("counted"), Some(ExtensionState::Running));
    assert_eq!(
        sql(&a, "counted", "select string_agg(n::text, ',' order by n) from log").await,
        Ok(Some("1,2,3".into()))
    );

    let db = superuser(&url).await;
    for scope in ["counted", "annex"] {
        // Every step in the history once, and as many history rows as steps recorded.
        let (applied, distinct, recorded): (i64, i64, i64) = sqlx::query_as(
            "select count(*), count(distinct version), \
                    (select count(*) from annex.migrations where scope = $1) \
             from annex.migration_history where scope = $1 and action = 'applied'",
        )
        .bind(scope)
        .fetch_one(&db)
        .await
        .expect("history");
        assert!(applied >= 3, "scope {scope}: {applied} steps applied");
        assert_eq!(
            (applied, distinct),
            (recorded, recorded),
            "scope {scope}: each step applied exactly once"
        );
    }
    db.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn a_failing_migration_leaves_no_trace_and_fails_only_its_extension() {
    let broken = Scripted::new(
        "broken",
        vec![
            step(1, "base", "create table base (i int)", "drop table base"),
            step(
                2,
                "bad",
                "create table half (i int); insert into base values (42); selec oops from nowhere;",
                "drop table half",
            ),
        ],
    );
    let t = TestHost::builder()
        .extension(broken)
        .extension(Scripted::new("sibling", vec![]))
        .start()
        .await
        .expect("host starts despite a broken extension");

    let Some(ExtensionState::Failed(reason)) = t.host().state("broken") else {
        panic!("broken should have failed: {:?}", t.host().state("broken"));
    };
    assert!(reason.contains("broken 2 (bad)") && reason.contains("syntax error"), "{reason}");
    assert_eq!(t.get("/ext/broken/ping").await.status(), 503);
    assert_eq!(t.get("/ext/sibling/ping").await.status(), 200);

    let db = superuser(t.database_url()).await;
    let half: Option<String> =
        sqlx::query_scalar("select to_regclass('ext_broken.half')::text").fetch_one(&db).await.expect("q");
    assert_eq!(half, None, "the first statement of the failed step was rolled back");
    let rows: i64 =
        sqlx::query_scalar("select count(*) from ext_broken.base").fetch_one(&db).await.expect("q");
    assert_eq!(rows, 0, "the second statement of the failed step was rolled back");
    let versions: Vec<i64> =
        sqlx::query_scalar("select version from annex.migrations where scope = 'broken' order by version")
            .fetch_all(&db)
            .await
            .expect("q");
    assert_eq!(versions, vec![1]);
    let (state, error): (String, Option<String>) =
        sqlx::query_as("select state, last_error from annex.extensions where name = 'broken'")
            .fetch_one(&db)
            .await
            .expect("q");
    assert_eq!(state, "failed");
    assert!(error.is_some_and(|e| e.contains("syntax error")));
    db.close().await;
    t.shutdown().await;
}

#[tokio::test]
async fn an_edited_applied_migration_is_refused_at_the_next_start() {
    let url = test_database_url().await.expect("fresh database");
    let original = step(1, "items", "create table items (id int)", "drop table items");
    let first = TestHost::builder()
        .database_url(&url)
        .extension(Scripted::new("edited", vec![original.clone()]))
        .start()
        .await
        .expect("first start");
    assert_eq!(first.host().state("edited"), Some(ExtensionState::Running));
    first.shutdown().await;

    let changed = step(1, "items", "create table items (id bigint)", "drop table items");
    let second = TestHost::builder()
        .database_url(&url)
        .extension(Scripted::new("edited", vec![changed.clone()]))
        .extension(Scripted::new("sibling", vec![]))
        .start()
        .await
        .expect("second start");
    let Some(ExtensionState::Failed(reason)) = second.host().state("edited") else {
        panic!("an edited migration must be refused: {:?}", second.host().state("edited"));
    };
    assert!(reason.contains("edited 1 (items) was changed"), "{reason}");
    assert!(reason.contains(&original.checksum()) && reason.contains(&changed.checksum()), "{reason}");
    assert_eq!(second.host().state("sibling"), Some(ExtensionState::Running));
    second.shutdown().await;
}

async fn admin(
    url: &str,
    dir: &std::path::Path,
    extensions: Vec<Arc<dyn Extension>>,
    enabled: bool,
) -> Admin {
    let mut config = Config { data_dir: dir.to_owned(), ..Config::default() };
    config.database.url = Some(url.to_owned());
    config.server.secret = Some(TEST_SECRET.to_owned());
    for e in &extensions {
        config.extensions.entry(e.metadata().name).or_default().enabled = Some(enabled);
    }
    Admin::connect(&config, &extensions).await.expect("admin connects")
}

fn layered(down2: Option<&str>) -> Arc<dyn Extension> {
    Arc::new(Scripted::new(
        "layered",
        vec![
            step(
                1,
                "journal",
                "create table journal (id serial primary key, what text)",
                "drop table journal",
            ),
            Migration::new(2, "b", "create table b (i int)", down2),
            step(
                3,
                "c",
                "create table c (i int)",
                "drop table c; insert into journal (what) values ('down 3')",
            ),
        ],
    ))
}

#[tokio::test]
async fn rollback_runs_the_downs_newest_first_and_the_history_shows_it() {
    let url = test_database_url().await.expect("fresh database");
    let dir = tempfile::tempdir().expect("tempdir");
    let ext = layered(Some("drop table b; insert into journal (what) values ('down 2')"));
    // A rollback changes the schema under the extension's code: it is refused while enabled.
    let enabled = admin(&url, dir.path(), vec![ext.clone()], true).await;
    enabled.migrate("layered", |_| {}).await.expect("migrate");
    let err = enabled.rollback("layered", 1, |_| {}).await.expect_err("enabled");
    assert!(matches!(&err, ExtensionDbError::Enabled { .. }), "{err}");
    assert!(err.to_string().contains("--disable"), "{err}");
    enabled.close().await;
    let admin = admin(&url, dir.path(), vec![ext], false).await;
    let mut seen = Vec::new();
    let applied = admin.migrate("layered", |s| seen.push((s.version, s.action))).await.expect("migrate");
    assert_eq!(applied.len(), 0, "applied above");
    seen.extend([(1, StepAction::Applied), (2, StepAction::Applied), (3, StepAction::Applied)]);
    let reverted =
        admin.rollback("layered", 1, |s| seen.push((s.version, s.action))).await.expect("rollback");
    assert_eq!(reverted.iter().map(|s| s.version).collect::<Vec<_>>(), vec![3, 2]);
    assert_eq!(
        seen,
        vec![
            (1, StepAction::Applied),
            (2, StepAction::Applied),
            (3, StepAction::Applied),
            (3, StepAction::RolledBack),
            (2, StepAction::RolledBack),
        ]
    );

    let db = superuser(&url).await;
    let journal: Vec<String> = sqlx::query_scalar("select what from ext_layered.journal order by id")
        .fetch_all(&db)
        .await
        .expect("q");
    assert_eq!(journal, vec!["down 3", "down 2"]);
    db.close().await;

    let report = admin.migration_report("layered").await.expect("report");
    let states: Vec<(i64, &str)> = report.steps.iter().map(|s| (s.version, s.state.as_str())).collect();
    assert_eq!(states, vec![(1, "applied"), (2, "pending"), (3, "pending")]);
    let history: Vec<(i64, &str)> = report.history.iter().map(|h| (h.version, h.action.as_str())).collect();
    assert_eq!(
        history,
        vec![(1, "applied"), (2, "applied"), (3, "applied"), (3, "rolled_back"), (2, "rolled_back")]
    );

    // Applying again brings them back.
    assert_eq!(admin.migrate("layered", |_| {}).await.expect("re-apply").len(), 2);
    admin.close().await;
}

#[tokio::test]
async fn rollback_refuses_to_pass_an_irreversible_step_and_changes_nothing() {
    let url = test_database_url().await.expect("fresh database");
    let dir = tempfile::tempdir().expect("tempdir");
    let admin = admin(&url, dir.path(), vec![layered(None)], false).await;
    admin.migrate("layered", |_| {}).await.expect("migrate");
    let err = admin.rollback("layered", 0, |_| {}).await.expect_err("irreversible");
    assert!(
        matches!(&err, ExtensionDbError::Migration(MigrationError::Irreversible { version: 2, .. })),
        "{err}"
    );
    assert!(err.to_string().contains("0002_b.down.sql"), "{err}");
    let report = admin.migration_report("layered").await.expect("report");
    assert!(report.steps.iter().all(|s| s.state == "applied"), "nothing was reverted");
    assert_eq!(report.steps[1].reversible, Some(false));
    // Rolling back to the irreversible step itself is fine.
    assert_eq!(admin.rollback("layered", 2, |_| {}).await.expect("to 2").len(), 1);
    admin.close().await;
}

#[tokio::test]
async fn purge_removes_schema_and_role_and_refuses_while_enabled() {
    let url = test_database_url().await.expect("fresh database");
    let dir = tempfile::tempdir().expect("tempdir");
    let enabled = admin(&url, dir.path(), vec![layered(Some("drop table b"))], true).await;
    enabled.migrate("layered", |_| {}).await.expect("migrate");
    let err = enabled.purge("layered").await.expect_err("enabled");
    assert!(matches!(err, ExtensionDbError::Enabled { .. }), "{err}");
    assert!(err.to_string().contains("enabled = false"), "{err}");
    enabled.close().await;

    let db = superuser(&url).await;
    let role: String =
        sqlx::query_scalar("select role from annex.extension_roles where extension = 'layered'")
            .fetch_one(&db)
            .await
            .expect("role recorded");
    let disabled = admin(&url, dir.path(), vec![layered(Some("drop table b"))], false).await;
    let lines = disabled.purge("layered").await.expect("purge");
    assert!(lines.iter().any(|l| l.contains(&role)), "{lines:?}");
    disabled.close().await;

    let schemas: i64 = sqlx::query_scalar("select count(*) from pg_namespace where nspname = 'ext_layered'")
        .fetch_one(&db)
        .await
        .expect("q");
    assert_eq!(schemas, 0, "schema dropped");
    let roles: i64 = sqlx::query_scalar("select count(*) from pg_roles where rolname = $1")
        .bind(&role)
        .fetch_one(&db)
        .await
        .expect("q");
    assert_eq!(roles, 0, "role dropped");
    let applied: i64 = sqlx::query_scalar("select count(*) from annex.migrations where scope = 'layered'")
        .fetch_one(&db)
        .await
        .expect("q");
    assert_eq!(applied, 0);
    db.close().await;
}

#[tokio::test]
async fn applied_migrations_are_audited_once_and_a_restart_with_nothing_pending_adds_nothing() {
    let url = test_database_url().await.expect("fresh database");
    let first =
        TestHost::builder().database_url(&url).extension(counted()).start().await.expect("first start");
    first.shutdown().await;
    let second = TestHost::builder().database_url(&url).extension(counted()).start().await.expect("restart");
    let db = superuser(&url).await;
    let details: Vec<serde_json::Value> = sqlx::query_scalar(
        "select details from annex.audit_log where action = 'extension.migrated' and target = 'counted'",
    )
    .fetch_all(&db)
    .await
    .expect("audit");
    assert_eq!(details, vec![serde_json::json!({ "extension": "counted", "versions": [1, 2, 3] })]);
    db.close().await;
    second.shutdown().await;
}
