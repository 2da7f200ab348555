//! Hardening (issue 10): no private PostgreSQL outlives a failed start, the scaffold refuses
//! names that exist, an extension's role cannot re-point its own settings, and the rough edges a
//! newcomer meets on the command line.
#![cfg(feature = "ext-hello")]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use annex_core::testkit::TestHost;
use annex_core::{ApiError, Context, Extension, Metadata, Migration, Migrations, Registrar};
use axum::Json;
use serde_json::{Value, json};
use sqlx::Row;

const ANNEX: &str = env!("CARGO_BIN_EXE_annex");

// ---------------------------------------------------------------------------------------------
// The private PostgreSQL: whoever fails lets go of it.

/// A data directory the private server's `postgres` user can reach.
fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("annex-hard-").tempdir_in("/tmp").expect("tempdir");
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
    dir
}

/// `annex` on the private PostgreSQL under `<dir>/data`, run in `dir` (so `dir/annex.toml` is
/// its config).
fn private_annex(dir: &Path) -> Command {
    let mut cmd = Command::new(ANNEX);
    cmd.current_dir(dir)
        .env("ANNEX_DATA_DIR", dir.join("data"))
        .env_remove("DATABASE_URL")
        .env_remove("ANNEX_DATABASE_URL")
        .env("ANNEX_LOG", "info");
    cmd
}

fn postmaster_pid(dir: &Path) -> Option<i32> {
    let text = std::fs::read_to_string(dir.join("data/postgres/postmaster.pid")).ok()?;
    text.lines().next()?.trim().parse().ok()
}

fn alive(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default().contains(") Z ")
}

/// Asserts no PostgreSQL runs on `dir`'s cluster; stops a leftover so the test leaves none.
fn assert_postgres_stopped(dir: &Path, after: &str) {
    let Some(pid) = postmaster_pid(dir) else { return };
    if alive(pid) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGQUIT);
        panic!("PostgreSQL {pid} still runs after {after}");
    }
    panic!("postmaster.pid of a dead PostgreSQL {pid} is left behind after {after}");
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("port")
}

/// A running `annex serve`, stopped (SIGTERM) when dropped, so a failing test leaves none behind.
struct Serving(Option<Child>);

impl Serving {
    /// `annex serve` on `port`, stderr captured.
    fn spawn(dir: &Path, port: u16) -> Serving {
        let child = private_annex(dir)
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("annex serve runs");
        Serving(Some(child))
    }

    async fn wait_ready(&mut self, port: u16) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(res) = reqwest::get(format!("http://127.0.0.1:{port}/ready")).await
                && res.status() == 200
            {
                return;
            }
            if let Some(Ok(Some(status))) = self.0.as_mut().map(Child::try_wait) {
                panic!("annex exited before it was ready: {status}");
            }
            assert!(Instant::now() < deadline, "annex was not ready within 60 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM, then the exit status and stderr.
    fn terminate(mut self) -> Output {
        let child = self.0.take().expect("running");
        let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).expect("pid"));
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal");
        child.wait_with_output().expect("annex exits")
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        if let Some(child) = self.0.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let _ = child.wait_with_output();
        }
    }
}

async fn output(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("annex runs")).await.expect("joined")
}

/// A host secret too short to derive role passwords from is refused when the host prepares
/// extension isolation: after the database opened (limits and the admin token are checked before).
const FAILS_AFTER_THE_DATABASE_OPENED: &str = "[server]\nsecret = \"short\"\n";

#[tokio::test(flavor = "multi_thread")]
async fn a_serve_that_fails_after_the_database_opened_stops_the_private_postgres() {
    let dir = private_dir();
    std::fs::write(dir.path().join("annex.toml"), FAILS_AFTER_THE_DATABASE_OPENED).expect("config");
    let mut serve = private_annex(dir.path());
    serve.args(["serve", "--bind", &format!("127.0.0.1:{}", free_port())]);
    let out = output(serve).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("private PostgreSQL started"), "the database had opened: {stderr}");
    assert!(stderr.contains("at least 16 characters"), "{stderr}");
    assert_postgres_stopped(dir.path(), "annex serve exited 1");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cli_command_that_fails_opening_the_database_stops_the_private_postgres() {
    let dir = private_dir();
    let port = free_port();
    let mut serve = Serving::spawn(dir.path(), port);
    serve.wait_ready(port).await;
    // Make the host's own migrations refuse to run: a recorded checksum that no file has.
    let password = std::fs::read_to_string(dir.path().join("data/postgres.password")).expect("password");
    let options = sqlx::postgres::PgConnectOptions::new()
        .socket(dir.path().join("data/postgres"))
        .username("annex")
        .password(password.trim())
        .database("postgres");
    let db = sqlx::PgPool::connect_with(options).await.expect("superuser connects");
    sqlx::query("update annex.migrations set checksum = 'tampered' where scope = 'annex' and version = 1")
        .execute(&db)
        .await
        .expect("tampered");
    db.close().await;
    let out = serve.terminate();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_postgres_stopped(dir.path(), "annex serve stopped");

    let mut list = private_annex(dir.path());
    list.args(["extensions", "list"]);
    let out = output(list).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("private PostgreSQL started") && stderr.contains("tampered"), "{stderr}");
    assert_postgres_stopped(dir.path(), "a failed `annex extensions list`");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_process_leaves_the_private_postgres_to_the_process_still_using_it() {
    let dir = private_dir();
    let port = free_port();
    let mut serve = Serving::spawn(dir.path(), port);
    serve.wait_ready(port).await;
    let pg = postmaster_pid(dir.path()).expect("the private PostgreSQL runs");

    let failing = dir.path().join("failing");
    std::fs::create_dir(&failing).expect("mkdir");
    std::fs::write(failing.join("annex.toml"), FAILS_AFTER_THE_DATABASE_OPENED).expect("config");
    let mut second = private_annex(dir.path());
    second.current_dir(&failing).args(["serve", "--bind", &format!("127.0.0.1:{}", free_port())]);
    let out = output(second).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(alive(pg), "the failing process stopped the server another annex uses: {stderr}");
    // One other process (the server), however many sessions it holds.
    assert!(stderr.contains("another annex process uses it") && stderr.contains("others=1"), "{stderr}");
    let ready = reqwest::get(format!("http://127.0.0.1:{port}/ready")).await.expect("ready");
    assert_eq!(ready.status(), 200);

    let out = serve.terminate();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!alive(pg), "the last process out stops the server");
}

// ---------------------------------------------------------------------------------------------
// The scaffold refuses names that exist, before writing anything.

/// A minimal workspace: the root manifest and one example crate named `taken`.
fn workspace() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("tempdir");
    let manifest = "[workspace]\nmembers = [\n    \"extensions/examples/taken\",\n    \"extensions/custom/wired\",\n]\n\n\
                    [features]\ndefault = [\"ext-taken\"]\next-taken = [\"dep:annex-ext-taken\"]\n\n\
                    [dependencies]\nannex-ext-taken = { path = \"extensions/examples/taken\", optional = true }\n\
                    annex-ext-wired = { path = \"extensions/custom/wired\", optional = true }\n";
    std::fs::write(root.path().join("Cargo.toml"), manifest).expect("manifest");
    std::fs::create_dir_all(root.path().join("extensions/examples/taken/src")).expect("crate dir");
    root
}

/// Every file under `root`, with its contents.
fn snapshot(root: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("read_dir").flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.push((path.clone(), Vec::new()));
                stack.push(path);
            } else {
                files.push((path.clone(), std::fs::read(&path).expect("read")));
            }
        }
    }
    files.sort();
    files
}

fn new_extension(root: &Path, name: &str) -> Output {
    Command::new(ANNEX)
        .args(["extensions", "new", name, "--path"])
        .arg(root)
        .env("ANNEX_LOG", "warn")
        .output()
        .expect("annex runs")
}

#[test]
fn new_refuses_a_name_that_exists_and_writes_nothing() {
    let root = workspace();
    let before = snapshot(root.path());
    for (name, says) in [
        ("taken", "extensions/examples/taken"),
        ("wired", "annex-ext-wired"),
        // Compiled into this binary (the tests build with ext-hello).
        ("hello", "compiled into this binary"),
    ] {
        let out = new_extension(root.path(), name);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "`new {name}` succeeded: {}", String::from_utf8_lossy(&out.stdout));
        assert!(stderr.contains(&format!("`{name}`")) && stderr.contains(says), "`new {name}`: {stderr}");
        assert!(stderr.contains("pick another name"), "`new {name}` says what to do: {stderr}");
        assert_eq!(snapshot(root.path()), before, "`new {name}` changed the workspace");
    }
}

#[test]
fn new_prints_the_readmes_build_command() {
    let root = workspace();
    let out = new_extension(root.path(), "fresh");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).expect("README");
    let command = "cargo run --release -- serve";
    assert!(stdout.contains(command), "{stdout}");
    assert!(readme.contains(command), "the README shows `{command}` too");
    assert!(stdout.contains("/ext/fresh/hello"), "{stdout}");
}

// ---------------------------------------------------------------------------------------------
// An extension's role cannot change the settings the host relies on.

/// `pinned`: one table, and `POST /sql` running the body on its own pool.
struct Pinned;

#[annex_core::async_trait]
impl Extension for Pinned {
    fn metadata(&self) -> Metadata {
        Metadata::new("pinned", "1.0.0").description("runs SQL as its own role")
    }
    fn migrations(&self) -> Migrations {
        Migrations::new(vec![Migration::new(
            1,
            "notes",
            "create table notes (body text)",
            Some("drop table notes"),
        )])
    }
    fn register(&self, r: &mut Registrar) {
        r.post("/sql", run_sql);
    }
}

async fn run_sql(cx: Context, sql: String) -> Result<Json<Value>, ApiError> {
    match sqlx::raw_sql(&sql).fetch_all(cx.db()?).await {
        Ok(rows) => {
            let value = rows.first().and_then(|r| r.try_get::<Option<String>, _>(0).ok()).flatten();
            Ok(Json(json!({ "value": value })))
        }
        Err(e) => Ok(Json(json!({ "error": e.to_string() }))),
    }
}

async fn sql(t: &TestHost, sql: &str) -> Result<Option<String>, String> {
    let res = t.client().post(t.url("/ext/pinned/sql")).body(sql.to_owned()).send().await.expect("sent");
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.expect("json");
    match body["error"].as_str() {
        Some(e) => Err(e.to_owned()),
        None => Ok(body["value"].as_str().map(str::to_owned)),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_role_cannot_repoint_its_own_search_path() {
    let t = TestHost::builder().extension(Pinned).start().await.expect("host starts");
    let url = t.database_url().to_owned();
    sql(&t, "insert into notes values ('kept')").await.expect("insert");
    sql(&t, "alter role current_user set search_path = annex, public").await.expect("a role may do this");
    sql(&t, "alter role current_user set statement_timeout = 1").await.expect("and this");
    // New sessions of the running host are pinned already: end the pool's sessions, ask again.
    let db = sqlx::PgPool::connect(&url).await.expect("superuser");
    sqlx::query(
        "select pg_terminate_backend(a.pid) from pg_stat_activity a
           join annex.extension_roles r on r.extension = 'pinned' and r.role = a.usename",
    )
    .execute(&db)
    .await
    .expect("sessions ended");
    db.close().await;
    assert_eq!(sql(&t, "select current_schema()::text").await, Ok(Some("ext_pinned".into())));
    assert_eq!(sql(&t, "select current_setting('statement_timeout')").await, Ok(Some("0".into())));
    t.shutdown().await;

    let t = TestHost::builder().extension(Pinned).database_url(&url).start().await.expect("host restarts");
    assert_eq!(sql(&t, "select body from notes").await, Ok(Some("kept".into())));
    assert_eq!(sql(&t, "select current_schema()::text").await, Ok(Some("ext_pinned".into())));
    assert_eq!(sql(&t, "select current_setting('statement_timeout')").await, Ok(Some("0".into())));
    let db = sqlx::PgPool::connect(&url).await.expect("superuser");
    let settings: Vec<String> = sqlx::query_scalar(
        "select unnest(s.setconfig) from pg_db_role_setting s
           join annex.extension_roles r on r.extension = 'pinned'
           join pg_roles pr on pr.rolname = r.role and pr.oid = s.setrole
          order by 1",
    )
    .fetch_all(&db)
    .await
    .expect("role settings");
    assert_eq!(settings, vec!["search_path=ext_pinned".to_owned()], "the role's own settings are reset");
    db.close().await;
    t.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// The command line a newcomer meets.

/// `annex` on a fresh test database, in an empty directory.
async fn on_test_database(args: &[&str]) -> Output {
    let url = annex_core::testkit::test_database_url().await.expect("database");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(ANNEX);
    cmd.args(args)
        .current_dir(dir.path())
        .env("DATABASE_URL", url)
        .env("ANNEX_DATA_DIR", dir.path())
        .env("ANNEX_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    output(cmd).await
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_written_to_a_pipe_carry_no_colour_codes() {
    let out = on_test_database(&["extensions", "list"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("migration applied"), "a fresh database logs its migrations: {stderr}");
    assert!(!out.stderr.contains(&0x1b), "ESC in logs on a pipe: {stderr:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn purge_refuses_an_enabled_extension_before_saying_it_purges() {
    let out = on_test_database(&["extensions", "purge", "hello", "--yes"]).await;
    assert!(!out.status.success());
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("purging"), "{stdout}");
    assert!(stderr.contains("enabled") && stderr.contains("disable"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_one_extension_says_it_in_the_singular() {
    let out = on_test_database(&["extensions", "disable", "hello"]).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.trim(), "disabled hello; running servers stop it within a second");
}

#[test]
fn migrates_usage_line_shows_all() {
    let out = Command::new(ANNEX).args(["extensions", "migrate"]).output().expect("annex runs");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("Usage: annex extensions migrate <NAME|--all>"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// /metrics is clean for promtool, but for the one name the product fixed.

/// `lint`: a route, a panicking route and a hook, so every family has samples.
struct Lint;

#[annex_core::async_trait]
impl Extension for Lint {
    fn metadata(&self) -> Metadata {
        Metadata::new("lint", "1.0.0").description("fills every metric family")
    }
    fn register(&self, r: &mut Registrar) {
        r.get("/ok", || async { "ok" });
        r.get("/boom", || async {
            if true {
                panic!("boom for the metrics");
            }
            "unreachable"
        });
        r.pre_request(annex_core::Hook::new("count").own_routes(), |_cx, _req| async { Ok(()) });
    }
}

/// The one lint finding `/metrics` has, and why: DESIGN.md fixes the name of this gauge.
const ACCEPTED_LINT: &str = "extensions_active_total non-counter metrics should not have \"_total\" suffix";

#[tokio::test(flavor = "multi_thread")]
async fn promtool_finds_nothing_in_metrics_but_the_fixed_gauge_name() {
    let t = TestHost::builder()
        .extension(Lint)
        .config(|c| c.health.interval_ms = 50)
        .start()
        .await
        .expect("host starts");
    assert_eq!(t.get("/ext/lint/ok").await.status(), 200);
    assert_eq!(t.get("/ext/lint/boom").await.status(), 500);
    assert_eq!(t.get("/ext/lint/nope").await.status(), 404);
    let scraped = crate::support::eventually(Duration::from_secs(5), || async {
        let text = t.get("/metrics").await.text().await.unwrap_or_default();
        text.contains("extension_health_status{") && text.contains("extension_hooks_executed_total{")
    })
    .await;
    assert!(scraped.is_some(), "health and hook families appear in /metrics");
    let text = t.get("/metrics").await.text().await.expect("metrics");
    t.shutdown().await;
    for family in [
        "extension_requests_total",
        "extension_request_duration_seconds",
        "extension_errors_total",
        "extensions_active_total",
        "extension_health_status",
        "extension_resource_usage",
        "extension_hooks_executed_total",
        "extension_hook_duration_seconds",
        "annex_build_info",
        "process_cpu_seconds_total",
    ] {
        assert!(text.contains(&format!("# TYPE {family} ")), "{family} is linted too: {text}");
    }

    let run = tokio::task::spawn_blocking(move || {
        let mut child = match Command::new("promtool")
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(e) => panic!(
                "cannot run promtool ({e}); install it: Debian/Ubuntu `apt-get install prometheus`, \
                 macOS `brew install prometheus` (.ci/run installs it)"
            ),
        };
        if let Some(mut stdin) = child.stdin.take() {
            std::io::Write::write_all(&mut stdin, text.as_bytes()).expect("metrics to promtool");
        }
        child.wait_with_output().expect("promtool ran")
    });
    let out = run.await.expect("joined");
    let findings: Vec<String> = String::from_utf8_lossy(&out.stderr)
        .lines()
        .chain(String::from_utf8_lossy(&out.stdout).lines())
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    assert_eq!(findings, vec![ACCEPTED_LINT.to_owned()], "promtool check metrics");
    // 3 is promtool's exit code for lint findings; 1 would mean the text did not parse.
    assert_eq!(out.status.code(), Some(3), "{findings:?}");
}

/// docs/prometheus/annex-rules.yml is valid for Prometheus and its alerts fire when their unit
/// tests (annex-rules.test.yml) say: extension down, auto-disabled, error rate, breaker open,
/// webhook backlog. The names they read are checked against what annex exports by
/// `observe::metrics::dashboard_tests` (with the Grafana dashboard's).
#[test]
fn alert_rules_pass_promtool_check_and_unit_tests() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/prometheus");
    for args in [["check", "rules", "annex-rules.yml"], ["test", "rules", "annex-rules.test.yml"]] {
        let out = match Command::new("promtool").args(args).current_dir(dir).output() {
            Ok(out) => out,
            Err(e) => {
                panic!("cannot run promtool ({e}); install it: Debian/Ubuntu `apt-get install prometheus`")
            }
        };
        let said =
            format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "promtool {}: {said}", args.join(" "));
        assert!(said.contains("SUCCESS"), "promtool {}: {said}", args.join(" "));
    }
    // The test file really tests something: a broken expectation fails.
    let broken = std::fs::read_to_string(format!("{dir}/annex-rules.test.yml"))
        .expect("rules tests")
        .replace("extension: billing", "extension: hello");
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::copy(format!("{dir}/annex-rules.yml"), tmp.path().join("annex-rules.yml")).expect("copy rules");
    std::fs::write(tmp.path().join("broken.test.yml"), broken).expect("write");
    let out = Command::new("promtool")
        .args(["test", "rules", "broken.test.yml"])
        .current_dir(tmp.path())
        .output()
        .expect("promtool runs");
    assert!(!out.status.success(), "a wrong expected alert must fail the rule tests");
}
