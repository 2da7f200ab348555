//! The admin console (`/admin/`) in a real headless Chromium (chromedriver, through
//! `fantoccini`), against a real host and PostgreSQL. Each test drives the pages as a person
//! would and then checks what the page shows and what the database holds: login, disable and
//! re-enable with the dependents warning, a config refused at its field and then saved, the
//! audit log filtered and verified, sign-offs and activation at a site; refusals: a wrong
//! password, a change without the CSRF token, a viewer's change; the pipelines page and the
//! entity browser. `console_screenshots`
//! (ignored; run it by name) writes docs/console/*.png.

use std::time::{Duration, Instant};

use annex_core::access::{NewOperator, operators};
use annex_core::stage::{StageKind, StageRequest, StageResult, StageSpec};
use annex_core::testkit::TestHost;
use annex_core::testkit::browser::{chrome_capabilities, chromedriver_url};
use annex_core::{Context, Extension, Metadata, Registrar};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Declared, TOKEN};

const PASSWORD: &str = "correct horse battery staple";
const ASPECT: &str = "electronic-signature-validation";
/// Every wait for the page is bounded by this.
const WAIT: Duration = Duration::from_secs(10);

fn extensions() -> Vec<Declared> {
    let orders = json!({
        "type": "object",
        "properties": {
            "lines": { "type": "integer", "minimum": 1, "description": "order lines per page" },
            "label": { "type": "string", "maxLength": 20 },
            "express": { "type": "boolean" }
        },
        "additionalProperties": false
    });
    let threshold = json!({ "type": "object", "properties": { "threshold": { "type": "integer" } },
                            "additionalProperties": false });
    vec![
        Declared(Metadata::new("orders", "1.2.0").description("Orders and their lines"), Some(orders)),
        Declared(Metadata::new("shipping", "1.0.0").depends_on("orders", "^1"), None),
        Declared(
            Metadata::new("esig", "1.0.0")
                .description("Electronic signatures, validated")
                .signoff(ASPECT, ["quality-focal", "quality-manager"]),
            Some(threshold),
        ),
    ]
}

/// Pipeline stages: a pre stage with a config schema, and a provider.
struct Kit;

#[annex_core::async_trait]
impl Extension for Kit {
    fn metadata(&self) -> Metadata {
        Metadata::new("kit", "1.0.0").description("Pipeline stages for the console tests")
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
        r.stage(StageSpec::new("echo", StageKind::Provider), |_cx: Context, req: StageRequest| async move {
            StageResult::modified(json!({ "echo": req.payload }))
        });
    }
}

/// Declares the work-order entities of the runtime tests' fixture (entity API under /ext/shop/).
struct Shop;

#[annex_core::async_trait]
impl Extension for Shop {
    fn metadata(&self) -> Metadata {
        Metadata::new("shop", "1.0.0").description("Work orders as declared entities")
    }

    fn entities(&self) -> Option<annex_core::extension::Entities> {
        Some(annex_core::entities!("tests/runtime/fixtures/workorders.entities.toml"))
    }
}

struct Console {
    t: TestHost,
    pool: PgPool,
    browser: Client,
}

impl Console {
    async fn start() -> Console {
        Self::start_sized(1280, 800).await
    }

    async fn start_sized(width: u32, height: u32) -> Console {
        let mut b = TestHost::builder().config(|c| c.server.admin_token = Some(TOKEN.into()));
        for e in extensions() {
            b = b.extension(e);
        }
        let t = b.extension(Kit).extension(Shop).start().await.expect("host starts");
        let pool = PgPool::connect(t.database_url()).await.expect("database");
        let driver = chromedriver_url().await.expect("chromedriver starts");
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let browser = ClientBuilder::new(connector)
            .capabilities(chrome_capabilities(width, height).expect("capabilities"))
            .connect(&driver)
            .await
            .expect("a headless Chromium session");
        Console { t, pool, browser }
    }

    async fn operator(&self, username: &str, roles: &[&str]) {
        let new = NewOperator {
            username: username.into(),
            printed_name: format!("{username} Printed"),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            sites: None,
            password: PASSWORD.into(),
        };
        operators::add(&self.pool, "test", &new).await.expect("operator added");
    }

    async fn goto(&self, path: &str) {
        self.browser.goto(&self.t.url(path)).await.expect("navigate");
    }

    /// The element matching `css`, waiting for it up to [`WAIT`].
    async fn find(&self, css: &str) -> Element {
        match self.browser.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
            Ok(e) => e,
            Err(e) => {
                let page = self.page_text().await;
                panic!("no `{css}` within {WAIT:?}: {e}; the page: {page}")
            }
        }
    }

    /// Waits (bounded) until the text of `css` contains `needle`; returns the text.
    async fn text_of(&self, css: &str, needle: &str) -> String {
        let deadline = Instant::now() + WAIT;
        let mut last = String::new();
        while Instant::now() < deadline {
            if let Ok(e) = self.browser.find(Locator::Css(css)).await
                && let Ok(text) = e.text().await
            {
                if text.contains(needle) {
                    return text;
                }
                last = text;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let page = self.page_text().await;
        panic!("`{css}` did not show `{needle}` within {WAIT:?}; it showed: {last:?}; the page: {page}");
    }

    /// The main area's text, for failure messages.
    async fn page_text(&self) -> String {
        let js = "return document.querySelector('main').innerText";
        self.browser.execute(js, vec![]).await.map(|v| v.to_string()).unwrap_or_default()
    }

    /// Waits (bounded) until attribute `attr` of `css` is `value`.
    async fn attr_is(&self, css: &str, attr: &str, value: &str) {
        let deadline = Instant::now() + WAIT;
        let mut last = None;
        while Instant::now() < deadline {
            if let Ok(e) = self.browser.find(Locator::Css(css)).await
                && let Ok(v) = e.attr(attr).await
            {
                if v.as_deref() == Some(value) {
                    return;
                }
                last = v;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("`{css}` [{attr}] did not become {value:?} within {WAIT:?}; it was {last:?}");
    }

    async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await;
        e.clear().await.expect("clear");
        e.send_keys(text).await.expect("type");
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap_or_else(|e| panic!("click `{css}`: {e}"));
    }

    /// Logs in through the login page and waits for the overview.
    async fn login(&self, username: &str, password: &str) {
        self.goto("/admin/login").await;
        self.type_into("#username", username).await;
        self.type_into("#password", password).await;
        self.click("#login-submit").await;
        self.find("#extensions").await;
    }

    /// A `fetch` from the page (its cookie, same origin): `[status, body text]`.
    async fn page_fetch(&self, method: &str, path: &str, csrf: bool) -> (u16, String) {
        let script = r#"
            const [method, path, csrf, done] = arguments;
            (async () => {
              const headers = {};
              if (csrf) {
                const s = await (await fetch("/admin/api/session")).json();
                headers["X-CSRF-Token"] = s.csrf_token;
              }
              const res = await fetch(path, { method, headers, credentials: "same-origin" });
              done([res.status, await res.text()]);
            })().catch((e) => done([0, String(e)]));
        "#;
        let out = self
            .browser
            .execute_async(script, vec![json!(method), json!(path), json!(csrf)])
            .await
            .expect("script runs");
        (out[0].as_u64().unwrap_or(0) as u16, out[1].as_str().unwrap_or_default().to_owned())
    }

    async fn scalar<T>(&self, sql: &str) -> T
    where
        T: for<'r> sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres> + Send + Unpin,
    {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn enabled(&self, name: &str) -> bool {
        sqlx::query_scalar("select enabled from annex.extensions where name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
            .expect("extension row")
    }

    async fn admin(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let mut req = self.t.client().request(method, self.t.url(path)).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    async fn shutdown(self) {
        let _ = self.browser.close().await;
        self.pool.close().await;
        self.t.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_logs_in_and_disables_and_re_enables_an_extension_after_the_dependents_warning() {
    let c = Console::start().await;
    c.operator("root", &["admin"]).await;
    c.login("root", PASSWORD).await;
    assert_eq!(
        c.scalar::<i64>(
            "select count(*) from annex.admin_sessions where actor_kind = 'operator' and revoked_at is null"
        )
        .await,
        1,
        "one live session row"
    );
    c.text_of("#who", "root").await;
    c.attr_is("#ext-orders", "data-state", "running").await;
    c.text_of("#ext-orders", "2 routes").await;

    // Disabling orders warns that shipping depends on it; cancelling changes nothing.
    c.click("#ext-orders button.switch").await;
    c.text_of("dialog", "shipping").await;
    c.click("#confirm-no").await;
    assert!(c.enabled("orders").await, "cancel changed nothing");
    c.click("#ext-orders button.switch").await;
    c.find("#dependents-warning").await;
    c.click("#confirm-yes").await;
    c.attr_is("#ext-orders", "data-state", "disabled").await;
    c.attr_is("#ext-shipping", "data-state", "disabled").await;
    assert!(!c.enabled("orders").await && !c.enabled("shipping").await, "both disabled in the database");
    let actor: String = c
        .scalar("select actor from annex.audit_log where action = 'extension.disabled' and target = 'orders'")
        .await;
    assert_eq!(actor, "operator:root", "audited as the operator who clicked");

    c.click("#ext-orders button.switch").await;
    c.attr_is("#ext-orders", "data-state", "running").await;
    assert!(c.enabled("orders").await);
    c.click("#ext-shipping button.switch").await;
    c.attr_is("#ext-shipping", "data-state", "running").await;
    assert!(c.enabled("shipping").await);

    // A change made elsewhere shows without a reload (the page polls).
    let (s, _) = c.admin(reqwest::Method::POST, "/api/v1/extensions/shipping/disable", None).await;
    assert_eq!(s, StatusCode::OK);
    c.attr_is("#ext-shipping", "data-state", "disabled").await;

    // Logout revokes the session row.
    c.click("#logout").await;
    c.find("#login-form").await;
    assert_eq!(
        c.scalar::<i64>("select count(*) from annex.admin_sessions where revoked_at is null").await,
        0,
        "logout revoked it"
    );
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_config_is_shown_at_its_field_and_a_valid_one_is_saved() {
    let c = Console::start().await;
    c.operator("root", &["admin"]).await;
    c.login("root", PASSWORD).await;
    c.click("#ext-orders a.ext-name").await;
    c.text_of("#ext-title", "orders").await;
    c.type_into("#cfg_lines", "0").await;
    c.click("#config-save").await;
    let error = c.text_of("#cfg_lines-error", "minimum").await;
    assert!(!error.is_empty());
    c.attr_is("#cfg_lines", "aria-invalid", "true").await;
    c.type_into("#cfg_label", "a label far longer than twenty characters").await;
    c.type_into("#cfg_lines", "2").await;
    c.click("#config-save").await;
    c.text_of("#cfg_label-error", "longer").await;
    let config: Value = c.scalar("select config from annex.extensions where name = 'orders'").await;
    assert_eq!(config, json!({}), "nothing invalid was stored");

    c.type_into("#cfg_label", "north").await;
    c.type_into("#cfg_lines", "3").await;
    c.click("#config-save").await;
    c.find("#config-saved").await;
    let config: Value = c.scalar("select config from annex.extensions where name = 'orders'").await;
    assert_eq!(config, json!({"lines": 3, "label": "north"}));
    c.text_of("#config-history", "operator:root").await;
    let live = c.t.get("/ext/orders/config").await.json::<Value>().await.expect("json");
    assert_eq!(live, json!({"lines": 3, "label": "north"}), "the running extension has it");
    c.find("#health-chart svg").await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_audit_log_filters_pages_by_time_and_verifies_its_chain() {
    let c = Console::start().await;
    c.operator("root", &["admin"]).await;
    for path in ["/api/v1/extensions/shipping/disable", "/api/v1/extensions/shipping/enable"] {
        let (s, b) = c.admin(reqwest::Method::POST, path, None).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    c.login("root", PASSWORD).await;
    c.goto("/admin/#/audit").await;
    c.find("#audit-entries").await;
    c.type_into("#filter-actor", "admin").await;
    c.type_into("#filter-action", "extension.disabled").await;
    c.click("#audit-apply").await;
    c.text_of("#audit-entries", "shipping").await;
    let rows = c.browser.find_all(Locator::Css("#audit-entries tr.audit-row")).await.expect("rows");
    let expected: i64 = c
        .scalar(
            "select count(*) from annex.audit_log where actor = 'admin' and action = 'extension.disabled'",
        )
        .await;
    assert_eq!(rows.len() as i64, expected, "the page lists exactly the matching entries");
    for row in &rows {
        let text = row.text().await.expect("text");
        assert!(text.contains("extension.disabled") && text.contains("admin"), "{text}");
    }
    // A prefix filter, and one that matches nothing.
    c.goto("/admin/#/audit?action=console.*").await;
    c.text_of("#audit-entries", "console.login").await;
    c.goto("/admin/#/audit?until=2000-01-01T00:00:00Z").await;
    c.find("#audit-empty").await;
    c.click("#verify-chain").await;
    let verdict = c.text_of("#verify-result", "intact").await;
    let rows: i64 = c.scalar("select count(*) from annex.audit_log").await;
    assert!(verdict.contains(&format!("{rows} entries")), "{verdict}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_extension_is_signed_off_and_activated_at_a_site() {
    let c = Console::start().await;
    // Two people: the two-person rule wants a different signer per role.
    c.operator("focal", &["admin", "quality-focal"]).await;
    c.operator("manager", &["site-admin", "quality-manager"]).await;
    let (s, b) = c
        .admin(reqwest::Method::POST, "/api/v1/sites", Some(json!({"slug": "lab", "name": "North lab"})))
        .await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    c.login("focal", PASSWORD).await;
    c.goto("/admin/#/sites").await;
    c.click("#sites a").await;
    c.text_of("#site-title", "lab").await;
    c.find("#activate-extension").await.select_by_value("esig").await.expect("select esig");
    c.type_into("#activate-config", r#"{"threshold": 2}"#).await;
    c.attr_is("#activate-btn", "disabled", "true").await;
    c.click("#validate-btn").await;
    c.text_of("#validation-report", "Sign-offs still needed").await;
    c.text_of("#missing-signoffs", "quality-manager").await;
    // Activating now keeps the config as the proposal and names what is missing.
    c.click("#activate-btn").await;
    c.text_of("#activation-result", ASPECT).await;
    let state: String = c
        .scalar("select coalesce((select state from annex.site_extensions where extension = 'esig'), 'none')")
        .await;
    assert_ne!(state, "active");

    // Sign both roles, the password entered again each time; a wrong one is refused at its field.
    c.find("#sign-hash option").await;
    c.find("#sign-requirement").await.select_by_index(0).await.expect("first requirement");
    c.type_into("#sign-password", "not my password").await;
    c.click("#sign-btn").await;
    c.text_of("#sign-password-error", "password").await;
    assert_eq!(c.scalar::<i64>("select count(*) from annex.compliance_signoffs").await, 0);
    c.find("#sign-meaning").await.select_by_value("approval").await.expect("meaning");
    c.type_into("#sign-password", PASSWORD).await;
    c.click("#sign-btn").await;
    c.find("#signed").await;
    c.text_of("#signoff-list", "focal Printed").await;
    c.click("#logout").await;
    c.find("#login-form").await;
    c.login("manager", PASSWORD).await;
    c.goto("/admin/#/sites/lab").await;
    c.find("#activate-extension").await.select_by_value("esig").await.expect("select esig");
    c.find("#sign-hash option").await;
    c.find("#sign-requirement").await.select_by_index(1).await.expect("second requirement");
    c.find("#sign-meaning").await.select_by_value("responsibility").await.expect("meaning");
    c.type_into("#sign-password", PASSWORD).await;
    c.click("#sign-btn").await;
    c.find("#signed").await;
    c.text_of("#signoff-list", "manager Printed").await;
    let signers: Vec<(String, String)> =
        sqlx::query_as("select username, role from annex.compliance_signoffs order by id")
            .fetch_all(&c.pool)
            .await
            .expect("sign-offs");
    let signers: Vec<(&str, &str)> = signers.iter().map(|(u, r)| (u.as_str(), r.as_str())).collect();
    assert_eq!(signers, [("focal", "quality-focal"), ("manager", "quality-manager")]);
    c.type_into("#activate-config", r#"{"threshold": 2}"#).await;

    c.click("#validate-btn").await;
    c.text_of("#validation-report", "Valid.").await;
    c.click("#activate-btn").await;
    c.find("#activated").await;
    c.attr_is("#site-ext-esig", "data-state", "active").await;
    let (state, config): (String, Value) =
        sqlx::query_as("select state, config from annex.site_extensions where extension = 'esig'")
            .fetch_one(&c.pool)
            .await
            .expect("row");
    assert_eq!((state.as_str(), config), ("active", json!({"threshold": 2})));

    // Snapshots and the compliance report.
    c.type_into("#snapshot-label", "after activation").await;
    c.click("#snapshots button[type=submit]").await;
    c.text_of("#snapshot-list", "after activation").await;
    assert_eq!(c.scalar::<i64>("select count(*) from annex.site_snapshots").await, 1);
    let href = c.find("#report-json").await.attr("href").await.expect("href").expect("a link");
    assert!(href.ends_with("/api/v1/sites/lab/compliance-report"), "{href}");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_a_missing_csrf_token_and_a_viewer_are_refused() {
    let c = Console::start().await;
    c.operator("root", &["admin"]).await;
    c.operator("val", &["viewer"]).await;

    // The shell's security headers, and the assets' types.
    let res = c.t.client().get(c.t.url("/admin/")).send().await.expect("shell");
    assert_eq!(res.status(), StatusCode::OK);
    let h = res.headers();
    assert!(h["content-security-policy"].to_str().unwrap().starts_with("default-src 'self'"));
    assert_eq!(h["x-frame-options"], "DENY");
    assert!(h["content-type"].to_str().unwrap().starts_with("text/html"));
    let res = c.t.client().get(c.t.url("/admin/assets/app.js")).send().await.expect("app.js");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));

    // A wrong password: the page says so, no session row, the failure is audited.
    c.goto("/admin/login").await;
    c.type_into("#username", "root").await;
    c.type_into("#password", "not the password at all").await;
    c.click("#login-submit").await;
    let shown = c.text_of("#login-error", "wrong username or password").await;
    c.type_into("#username", "nobody").await;
    c.type_into("#password", PASSWORD).await;
    c.click("#login-submit").await;
    c.text_of("#login-error", &shown).await;
    assert_eq!(c.scalar::<i64>("select count(*) from annex.admin_sessions").await, 0);
    let reasons: Vec<String> = sqlx::query_scalar(
        "select details->>'reason' from annex.audit_log where action = 'console.login_failed' order by id",
    )
    .fetch_all(&c.pool)
    .await
    .expect("audit");
    assert_eq!(reasons, ["wrong_password", "unknown_user"]);

    // A session cookie without the CSRF token changes nothing.
    let login =
        c.t.client()
            .post(c.t.url("/admin/api/session"))
            .json(&json!({"username": "root", "password": PASSWORD}))
            .send()
            .await
            .expect("login");
    assert_eq!(login.status(), StatusCode::OK);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: not Secure");
    let me: Value = login.json().await.expect("json");
    let pair = cookie.split(';').next().unwrap().to_owned();
    let raw = |method: reqwest::Method, path: &str, csrf: Option<&str>| {
        let mut req = c.t.client().request(method, c.t.url(path)).header("cookie", pair.clone());
        if let Some(t) = csrf {
            req = req.header("x-csrf-token", t);
        }
        req.send()
    };
    let disable = "/api/v1/extensions/orders/disable";
    let res = raw(reqwest::Method::POST, disable, None).await.expect("send");
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "csrf_required");
    let res = raw(reqwest::Method::POST, disable, Some("0".repeat(64).as_str())).await.expect("send");
    assert_eq!(res.json::<Value>().await.unwrap()["error"]["code"], "csrf_mismatch");
    assert!(c.enabled("orders").await, "refused changes changed nothing");
    let res = raw(reqwest::Method::GET, "/api/v1/extensions", None).await.expect("send");
    assert_eq!(res.status(), StatusCode::OK, "reading needs no CSRF token");
    let token = me["csrf_token"].as_str().unwrap();
    let res = raw(reqwest::Method::POST, "/api/v1/extensions/esig/disable", Some(token)).await.expect("send");
    assert_eq!(res.status(), StatusCode::OK, "with the token the same cookie may change");
    assert!(!c.enabled("esig").await);
    // Idle too long: the session is over.
    sqlx::query("update annex.admin_sessions set last_seen = now() - interval '31 minutes'")
        .execute(&c.pool)
        .await
        .expect("age the session");
    let res = raw(reqwest::Method::GET, "/api/v1/extensions", None).await.expect("send");
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED, "an idle session ended");

    // A viewer sees, read-only, and cannot change: not from the page's own fetch either.
    c.login("val", PASSWORD).await;
    c.find("#read-only").await;
    let button = c.find("#ext-orders button.switch").await;
    assert!(!button.is_enabled().await.expect("enabled?"), "the switch is disabled for a viewer");
    let (status, _) = c.page_fetch("POST", disable, false).await;
    assert_eq!(status, 403, "the page's fetch without the token");
    let (status, body) = c.page_fetch("POST", disable, true).await;
    assert_eq!(status, 403, "a viewer, with the token: {body}");
    assert!(body.contains("forbidden"), "{body}");
    assert!(c.enabled("orders").await, "nothing changed");
    c.click("#ext-orders a.ext-name").await;
    c.find("#config-form").await;
    let save = c.find("#config-save").await;
    assert!(!save.is_enabled().await.expect("enabled?"), "a viewer's editor is read-only");
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stage_is_disabled_and_edited_from_the_pipelines_page() {
    let c = Console::start().await;
    c.operator("root", &["admin"]).await;
    let chat = json!({"pre": ["kit.upper"], "providers": [{"stage": "kit.echo"}], "deadline_ms": 1000});
    let (s, b) = c.admin(reqwest::Method::PUT, "/api/v1/pipelines/chat", Some(chat)).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    c.login("root", PASSWORD).await;
    c.goto("/admin/#/pipelines").await;
    c.text_of("#pipelines", "chat").await;
    c.text_of("#stage-kit-upper", "enabled").await;
    c.click("#stage-kit-upper button.toggle").await;
    c.attr_is("#stage-kit-upper", "data-enabled", "false").await;
    let enabled: bool = c.scalar("select enabled from annex.pipeline_stages where id = 'kit.upper'").await;
    assert!(!enabled, "disabled in the registry");
    c.click("#stage-kit-upper button.edit").await;
    c.type_into("#timeout-kit\\.upper", "450").await;
    c.type_into("#config-kit\\.upper", r#"{"max": 0}"#).await;
    c.click("#stage-save").await;
    c.text_of("#stage-edit .error-box", "max").await;
    c.type_into("#config-kit\\.upper", r#"{"max": 4}"#).await;
    c.click("#stage-save").await;
    c.text_of("#stage-kit-upper", "450 ms").await;
    let (timeout, config): (i64, Value) =
        sqlx::query_as("select timeout_ms::bigint, config from annex.pipeline_stages where id = 'kit.upper'")
            .fetch_one(&c.pool)
            .await
            .expect("stage row");
    assert_eq!((timeout, config), (450, json!({"max": 4})));
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_entity_browser_creates_a_record_through_the_entity_api_and_shows_its_field_errors() {
    let c = Console::start().await;
    c.operator("root", &["admin"]).await;
    c.login("root", PASSWORD).await;
    c.goto("/admin/#/entities").await;
    c.text_of("#entity-list", "work_order").await;
    c.goto("/admin/#/entities?entity=shop.work_order").await;
    c.text_of("main", "No records.").await;
    c.click("#record-new").await;
    c.type_into("#rec-number", "7").await;
    c.type_into("#rec-title", "ab").await;
    c.click("#record-form button[type=submit]").await;
    c.text_of("#rec-title-error", "3").await;
    let count = "select count(*) from ext_shop.work_order";
    assert_eq!(c.scalar::<i64>(count).await, 0, "the refused record was not stored");
    c.type_into("#rec-title", "Replace the pump").await;
    c.click("#record-form button[type=submit]").await;
    c.text_of("#records", "Replace the pump").await;
    let (number, title): (i64, String) =
        sqlx::query_as("select number::bigint, title from ext_shop.work_order")
            .fetch_one(&c.pool)
            .await
            .expect("row");
    assert_eq!((number, title.as_str()), (7, "Replace the pump"));
    // Without the CSRF token the proxy refuses a change.
    let (status, body) = c.page_fetch("POST", "/admin/api/entities/shop/work_order", false).await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(c.scalar::<i64>(count).await, 1);
    c.shutdown().await;
}

/// Writes docs/console/*.png: the main pages at 1280×800 and the overview at 390 px.
/// `cargo test --all-features --test operations console_screenshots -- --ignored`
#[tokio::test(flavor = "multi_thread")]
#[ignore = "writes docs/console/*.png; run it by name"]
async fn console_screenshots() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/console");
    std::fs::create_dir_all(&dir).expect("docs/console");
    let c = Console::start().await;
    c.operator("ann", &["admin", "quality-focal", "quality-manager"]).await;
    let (s, _) = c
        .admin(reqwest::Method::POST, "/api/v1/sites", Some(json!({"slug": "lab", "name": "North lab"})))
        .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _) = c
        .admin(
            reqwest::Method::POST,
            "/api/v1/sites/lab/extensions/esig/activate",
            Some(json!({"config": {"threshold": 2}, "reason": "first run"})),
        )
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "waits for its sign-offs");
    let chat = json!({"pre": ["kit.upper"], "providers": [{"stage": "kit.echo"}], "deadline_ms": 1000});
    let (s, _) = c.admin(reqwest::Method::PUT, "/api/v1/pipelines/chat", Some(chat)).await;
    assert_eq!(s, StatusCode::OK);
    for _ in 0..5 {
        let res =
            c.t.client().post(c.t.url("/pipelines/chat")).bearer_auth(TOKEN).json(&json!("hi")).send().await;
        assert!(res.expect("pipeline call").status().is_success());
    }
    for path in ["/api/v1/extensions/shipping/disable", "/api/v1/extensions/shipping/enable"] {
        c.admin(reqwest::Method::POST, path, None).await;
    }
    // A viewport of exactly 1280×800 (the window has a frame around it).
    let inner =
        c.browser.execute("return [window.innerWidth, window.innerHeight]", vec![]).await.expect("size");
    let (iw, ih) = (inner[0].as_u64().unwrap_or(1280) as u32, inner[1].as_u64().unwrap_or(800) as u32);
    c.browser.set_window_size(1280 + (1280 - iw.min(1280)), 800 + (800 - ih.min(800))).await.expect("resize");
    let shot = |name: &'static str, top: bool| {
        let (browser, dir) = (c.browser.clone(), dir.clone());
        async move {
            if top {
                browser.execute("window.scrollTo(0, 0)", vec![]).await.expect("scroll");
            }
            tokio::time::sleep(Duration::from_millis(400)).await; // let the last redraw paint
            let png = browser.screenshot().await.expect("screenshot");
            std::fs::write(dir.join(name), png).expect("write png");
        }
    };
    c.goto("/admin/login").await;
    c.find("#login-form").await;
    shot("login.png", true).await;
    c.login("ann", PASSWORD).await;
    c.attr_is("#ext-orders", "data-state", "running").await;
    shot("overview.png", true).await;
    c.click("#ext-orders a.ext-name").await;
    c.type_into("#cfg_lines", "0").await;
    c.click("#config-save").await;
    c.find("#cfg_lines-error").await;
    shot("extension.png", false).await;
    c.goto("/admin/#/audit").await;
    c.find("#audit-entries").await;
    shot("audit.png", true).await;
    c.goto("/admin/#/sites/lab").await;
    c.find("#activate-extension").await.select_by_value("esig").await.expect("select");
    c.type_into("#activate-config", r#"{"threshold": 2}"#).await;
    c.click("#validate-btn").await;
    c.find("#validation-report").await;
    c.find("#signoff-form").await;
    shot("site.png", true).await;
    c.goto("/admin/#/pipelines").await;
    c.text_of("#stage-kit-upper", "%").await;
    shot("pipelines.png", true).await;
    let order =
        json!({"number": 12, "title": "Replace the pump seal", "status": "in_progress", "cost": 120.5});
    let res =
        c.t.client()
            .post(c.t.url("/ext/shop/entities/work_order"))
            .bearer_auth(TOKEN)
            .json(&order)
            .send()
            .await;
    let res = res.expect("create a work order");
    assert_eq!(res.status(), StatusCode::CREATED, "{}", res.text().await.unwrap_or_default());
    c.goto("/admin/#/entities?entity=shop.work_order").await;
    c.text_of("#records", "Replace the pump seal").await;
    shot("entities.png", true).await;
    c.browser.set_window_size(390 + (1280 - iw.min(1280)), 844).await.expect("phone width");
    c.goto("/admin/#/").await;
    c.attr_is("#ext-orders", "data-state", "running").await;
    shot("overview-390.png", true).await;
    c.shutdown().await;
}
