//! Each extension's pool logs in as its own role: PostgreSQL itself keeps it out of every other
//! schema, out of `public` and temporary tables, and away from other roles.

use crate::common::{Scripted, sql, step, superuser};
use annex_core::testkit::TestHost;
use annex_core::{
    config::{Config, Isolation},
    host::{ExtensionState, Host},
};

fn things(name: &str) -> Scripted {
    Scripted::new(
        name,
        vec![step(1, "things", "create table things (id int primary key)", "drop table things")],
    )
}

async fn two_extensions() -> TestHost {
    TestHost::builder()
        .extension(things("alpha"))
        .extension(things("beta"))
        .start()
        .await
        .expect("host starts")
}

fn assert_denied(result: Result<Option<String>, String>, what: &str) {
    match result {
        Err(e) => assert!(e.contains("permission denied"), "{what}: expected permission denied, got {e}"),
        Ok(v) => panic!("{what}: expected permission denied, but it succeeded ({v:?})"),
    }
}

#[tokio::test]
async fn an_extension_cannot_touch_another_extensions_schema_or_annex() {
    let t = two_extensions().await;
    assert_denied(sql(&t, "alpha", "select count(*)::text from ext_beta.things").await, "select ext_beta");
    assert_denied(sql(&t, "alpha", "insert into ext_beta.things values (1)").await, "insert ext_beta");
    assert_denied(sql(&t, "alpha", "select count(*)::text from annex.extensions").await, "select annex");
    assert_denied(sql(&t, "alpha", "select count(*)::text from annex.migrations").await, "select migrations");
    assert_denied(
        sql(&t, "alpha", "insert into annex.audit_log (actor, action, target) values ('x', 'y', 'z')").await,
        "insert annex",
    );
    // The migration-recording door only opens for the caller's own scope.
    let other = sql(&t, "alpha", "select annex_api.record_migration('beta', 99, 'x', 'y', 0)::text").await;
    assert!(other.expect_err("forged record").contains("may not touch the migrations of extension beta"));
    t.shutdown().await;
}

#[tokio::test]
async fn an_extension_cannot_switch_roles_or_create_outside_its_schema() {
    let t = two_extensions().await;
    let db = superuser(t.database_url()).await;
    let beta: String = sqlx::query_scalar("select role from annex.extension_roles where extension = 'beta'")
        .fetch_one(&db)
        .await
        .expect("beta has a role");
    let host_user: String =
        sqlx::query_scalar("select current_user::text").fetch_one(&db).await.expect("user");
    assert_denied(sql(&t, "alpha", &format!("set role \"{beta}\"")).await, "set role beta");
    assert_denied(sql(&t, "alpha", &format!("set role \"{host_user}\"")).await, "set role host");
    assert_denied(sql(&t, "alpha", "create table public.x (i int)").await, "create in public");
    assert_denied(sql(&t, "alpha", "create temp table scratch (i int)").await, "create temp");
    assert_denied(sql(&t, "alpha", "create schema sneaky").await, "create schema");
    db.close().await;
    t.shutdown().await;
}

/// Refused by PostgreSQL's privilege checks: "permission denied …", or "must be superuser / have
/// privileges of …" for the server-side file and program doors.
fn assert_refused(result: Result<Option<String>, String>, what: &str) {
    match result {
        Err(e) => assert!(
            e.contains("permission denied")
                || e.contains("must be superuser")
                || e.contains("privileges of the"),
            "{what}: expected a privilege error, got {e}"
        ),
        Ok(v) => panic!("{what}: expected a privilege error, but it succeeded ({v:?})"),
    }
}

#[tokio::test]
async fn an_extension_cannot_reach_server_files_programs_other_databases_or_others_objects() {
    let t = two_extensions().await;
    let db = superuser(t.database_url()).await;
    // A large object the host owns, which the extension must not read.
    let lo: i64 = sqlx::query_scalar("select lo_from_bytea(0, 'host secret')::bigint")
        .fetch_one(&db)
        .await
        .expect("lo");
    let cases = [
        ("copy (select 1) to program 'true'", "COPY … TO PROGRAM"),
        ("copy things from program 'echo 1'", "COPY … FROM PROGRAM"),
        ("copy things to '/tmp/annex-escape.csv'", "COPY to a server file"),
        ("select pg_read_file('/etc/hostname')", "pg_read_file"),
        ("select pg_ls_dir('/')::text", "pg_ls_dir"),
        ("select lo_import('/etc/hostname')::text", "server-side lo_import"),
        ("create extension if not exists dblink", "create extension dblink"),
        ("create function public.f() returns int language sql as 'select 1'", "function in public"),
        ("create function annex.f() returns int language sql as 'select 1'", "function in annex"),
        (
            "create function ext_beta.f() returns int language sql as 'select 1'",
            "function in another extension",
        ),
        ("create function annex_api.f() returns int language sql as 'select 1'", "function in annex_api"),
        ("create role sneaky login", "create role"),
        ("select count(*)::text from pg_authid", "pg_authid"),
    ];
    // (A role may change its own defaults, `alter role current_user set search_path = annex`:
    // that gains nothing, it still has no USAGE on annex, and the host puts the setting back.)
    for (statement, what) in cases {
        assert_refused(sql(&t, "alpha", statement).await, what);
    }
    assert_refused(
        sql(&t, "alpha", &format!("select encode(lo_get({lo}), 'escape')")).await,
        "another role's large object",
    );
    db.close().await;
    t.shutdown().await;
}

#[tokio::test]
async fn an_extension_uses_its_own_tables_by_unqualified_name() {
    let t = two_extensions().await;
    sql(&t, "alpha", "insert into things values (1), (2)").await.expect("insert");
    assert_eq!(sql(&t, "alpha", "select count(*)::text from things").await, Ok(Some("2".into())));
    assert_eq!(sql(&t, "beta", "select count(*)::text from things").await, Ok(Some("0".into())));
    assert_eq!(sql(&t, "alpha", "select current_schema()::text").await, Ok(Some("ext_alpha".into())));
    sql(&t, "alpha", "create table notes (body text)").await.expect("create in own schema");
    let db = superuser(t.database_url()).await;
    let owner: String = sqlx::query_scalar(
        "select tableowner::text from pg_tables where schemaname = 'ext_alpha' and tablename = 'notes'",
    )
    .fetch_one(&db)
    .await
    .expect("notes exists in ext_alpha");
    assert_eq!(Some(owner), sql(&t, "alpha", "select current_user::text").await.expect("current_user"));
    db.close().await;
    t.shutdown().await;
}

#[tokio::test]
async fn roles_differ_between_databases_and_only_annex_roles_may_connect() {
    let a = TestHost::builder().extension(things("alpha")).start().await.expect("first host");
    let b = TestHost::builder().extension(things("alpha")).start().await.expect("second host");
    let role_a = sql(&a, "alpha", "select current_user::text").await.expect("a").expect("role");
    let role_b = sql(&b, "alpha", "select current_user::text").await.expect("b").expect("role");
    assert_ne!(role_a, role_b, "two databases on one cluster must not share a role");
    assert!(role_a.starts_with("annex_") && role_a.ends_with("_alpha"), "{role_a}");

    // A role annex did not grant CONNECT to cannot log in to the database at all.
    let db = superuser(a.database_url()).await;
    let stranger = format!("stranger_{}", uuid_like());
    sqlx::raw_sql(&format!("create role {stranger} login password 'pw'")).execute(&db).await.expect("role");
    let public_connect: bool =
        sqlx::query_scalar("select has_database_privilege('public', current_database(), 'CONNECT')")
            .fetch_one(&db)
            .await
            .expect("acl");
    assert!(!public_connect, "CONNECT must be revoked from PUBLIC");
    let may: bool = sqlx::query_scalar("select has_database_privilege($1, current_database(), 'CONNECT')")
        .bind(&stranger)
        .fetch_one(&db)
        .await
        .expect("acl");
    assert!(!may, "a role annex did not create may not connect");
    let may: bool = sqlx::query_scalar("select has_database_privilege($1, current_database(), 'CONNECT')")
        .bind(&role_a)
        .fetch_one(&db)
        .await
        .expect("acl");
    assert!(may, "the extension's role may connect");
    db.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos()
    )
}

/// Logs written while the closure's future runs, on this (current-thread) test runtime.
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|p| p.into_inner())).into_owned()
    }
}

#[tokio::test]
async fn schema_mode_works_without_roles_and_warns_loudly() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let t = TestHost::builder()
        .extension(things("alpha"))
        .extension(things("beta"))
        .config(|c| c.database.isolation = Isolation::Schema)
        .start()
        .await
        .expect("host starts in schema mode");
    assert_eq!(t.host().state("alpha"), Some(ExtensionState::Running));
    sql(&t, "alpha", "insert into things values (7)").await.expect("insert");
    assert_eq!(sql(&t, "alpha", "select count(*)::text from things").await, Ok(Some("1".into())));
    assert_eq!(sql(&t, "beta", "select count(*)::text from things").await, Ok(Some("0".into())));
    let db = superuser(t.database_url()).await;
    let roles: i64 =
        sqlx::query_scalar("select count(*) from annex.extension_roles").fetch_one(&db).await.expect("n");
    assert_eq!(roles, 0, "schema mode creates no roles");
    let schemas: i64 =
        sqlx::query_scalar("select count(*) from pg_namespace where nspname in ('ext_alpha', 'ext_beta')")
            .fetch_one(&db)
            .await
            .expect("n");
    assert_eq!(schemas, 2);
    db.close().await;
    t.shutdown().await;
    let text = logs.text();
    assert!(text.contains("WARN") && text.contains("ISOLATION IS WEAKER"), "{text}");
}

#[tokio::test]
async fn role_mode_without_createrole_names_the_setting_to_use() {
    // A database owned by a user that may not create roles, as on some managed services.
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let db = superuser(&url).await;
    let user = format!("limited_{}", uuid_like());
    let database: String =
        sqlx::query_scalar("select current_database()::text").fetch_one(&db).await.expect("db");
    sqlx::raw_sql(&format!(
        "create role {user} login password 'limited-pw' nocreaterole; alter database {database} owner to {user}"
    ))
    .execute(&db)
    .await
    .expect("limited user");
    db.close().await;
    let (scheme, rest) = url.split_once("://").expect("url scheme");
    let (_, after_at) = rest.split_once('@').expect("url credentials");
    let limited_url = format!("{scheme}://{user}:limited-pw@{after_at}");

    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config { data_dir: dir.path().to_owned(), ..Config::default() };
    config.database.url = Some(limited_url.clone());
    let err = Host::builder(config.clone()).extension(things("alpha")).start().await.expect_err("role mode");
    let msg = err.to_string();
    assert!(msg.contains("cannot create roles") && msg.contains("isolation = \"schema\""), "{msg}");

    config.database.isolation = Isolation::Schema;
    let host = Host::builder(config).extension(things("alpha")).start().await.expect("schema mode starts");
    assert_eq!(host.state("alpha"), Some(ExtensionState::Running));
    host.shutdown().await;
}
