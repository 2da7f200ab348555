//! Sites end to end on a real PostgreSQL: validation of capabilities, conflicts and versions,
//! activation gated by compliance sign-offs bound to the config hash, deactivation with
//! dependents, site scoping without existence leaks, bad input that writes nothing, reports,
//! snapshots and restore.

use annex_core::Metadata;
use annex_core::access::{NewOperator, operators};
use annex_core::testkit::TestHost;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::PgPool;

use crate::support::{Declared, TOKEN};

const PASSWORD: &str = "correct horse battery staple";
const ASPECT: &str = "electronic-signature-validation";

fn extensions() -> Vec<Declared> {
    let lines = json!({ "type": "object", "properties": { "lines": { "type": "integer", "minimum": 1 } },
                        "additionalProperties": false });
    let threshold = json!({ "type": "object", "properties": { "threshold": { "type": "integer" } },
                            "additionalProperties": false });
    vec![
        Declared(Metadata::new("printer", "1.0.0").provides_exclusive("printing", "1.4.0"), None),
        Declared(Metadata::new("printer_b", "1.0.0").provides_exclusive("printing", "1.0.0"), None),
        Declared(Metadata::new("orders", "1.2.0").requires_capability("printing", "^1"), Some(lines)),
        Declared(Metadata::new("orders_next", "2.0.0").requires_capability("printing", "^2"), None),
        Declared(Metadata::new("legacy", "0.9.0").conflicts_with("orders"), None),
        Declared(Metadata::new("shipping", "1.0.0").depends_on("orders", "^1"), None),
        Declared(
            Metadata::new("esig", "1.0.0").signoff(ASPECT, ["quality-focal", "quality-manager"]),
            Some(threshold),
        ),
    ]
}

struct Kit {
    t: TestHost,
    pool: PgPool,
}

impl Kit {
    async fn start() -> Kit {
        let mut b = TestHost::builder().config(|c| c.server.admin_token = Some(TOKEN.into()));
        for e in extensions() {
            b = b.extension(e);
        }
        let t = b.start().await.expect("host starts");
        let pool = PgPool::connect(t.database_url()).await.expect("database");
        Kit { t, pool }
    }

    /// A request with `token` (the admin token when `None`), JSON body when given.
    async fn call(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut req = self.t.client().request(method, self.t.url(path)).bearer_auth(token.unwrap_or(TOKEN));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res = req.send().await.expect("request");
        let status = res.status();
        let text = res.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    async fn admin(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        self.call(None, method, path, body).await
    }

    async fn site(&self, slug: &str) -> Value {
        let (s, b) =
            self.admin(Method::POST, "/api/v1/sites", Some(json!({"slug": slug, "name": slug}))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
        b
    }

    async fn activate(&self, site: &str, name: &str, config: Value) -> (StatusCode, Value) {
        let path = format!("/api/v1/sites/{site}/extensions/{name}/activate");
        self.admin(Method::POST, &path, Some(json!({"config": config, "reason": "test"}))).await
    }

    async fn validate(&self, site: &str, name: &str, config: Value) -> Value {
        let path = format!("/api/v1/sites/{site}/extensions/{name}/validate");
        let (s, b) = self.admin(Method::POST, &path, Some(json!({"config": config}))).await;
        assert_eq!(s, StatusCode::OK, "{b}");
        b
    }

    /// Adds an operator; returns their token.
    async fn operator(&self, username: &str, roles: &[&str], sites: Option<Vec<String>>) -> String {
        let new = NewOperator {
            username: username.into(),
            printed_name: format!("{username} Printed"),
            roles: roles.iter().map(|r| (*r).to_owned()).collect(),
            sites,
            password: PASSWORD.into(),
        };
        operators::add(&self.pool, "test", &new).await.expect("operator added").1
    }

    async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.pool).await.expect("count")
    }

    async fn shutdown(self) {
        self.pool.close().await;
        self.t.shutdown().await;
    }
}

fn codes(list: &Value) -> Vec<String> {
    list.as_array().into_iter().flatten().map(|c| c["code"].as_str().unwrap_or_default().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn validation_names_each_conflict_and_activation_refuses_it() {
    let k = Kit::start().await;
    k.site("plant").await;

    // Capability dependency missing: named, with the provider that would fit.
    let r = k.validate("plant", "orders", json!({"lines": 2})).await;
    assert_eq!(r["valid"], false);
    assert_eq!(codes(&r["conflicts"]), ["missing_capability"]);
    let message = r["conflicts"][0]["message"].as_str().unwrap();
    assert!(message.contains("capability `printing`") && message.contains("`printer`"), "{message}");
    let (s, b) = k.activate("plant", "orders", json!({"lines": 2})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    assert_eq!(b["error"]["code"], "activation_refused");
    assert_eq!(codes(&b["report"]["conflicts"]), ["missing_capability"]);
    let open = k
        .count("select count(*) from annex.site_conflicts where extension = 'orders' and resolved_at is null")
        .await;
    assert_eq!(open, 1, "the detected conflict is recorded");

    // Extension dependency missing.
    let r = k.validate("plant", "shipping", json!({})).await;
    assert_eq!(codes(&r["conflicts"]), ["missing_dependency"]);
    assert!(r["conflicts"][0]["message"].as_str().unwrap().contains("depends on `orders`"));

    // Validated together, the combination is fine.
    let (s, r) = k
        .admin(
            Method::POST,
            "/api/v1/sites/plant/extensions/validate-combination",
            Some(json!({"extensions": [{"name": "printer", "config": {}}, {"name": "orders", "config": {"lines": 1}}]})),
        )
        .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(r["valid"], true, "{r}");

    assert_eq!(k.t.get("/sites/plant/ext/printer/ping").await.status(), 404, "not active yet");
    let (s, b) = k.activate("plant", "printer", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["action"], "activated");
    let res = k.t.get("/sites/plant/ext/printer/ping").await;
    assert_eq!(res.status(), 200, "this replica's gate is reloaded as the activation commits");
    let (s, b) = k.activate("plant", "orders", json!({"lines": 2})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    let resolved = k
        .count("select count(*) from annex.site_conflicts where extension = 'orders' and resolved_at is not null")
        .await;
    assert_eq!(resolved, 1, "the conflict is marked resolved once no longer seen");

    // Version conflict: printing 1.4.0 active, ^2 required.
    let r = k.validate("plant", "orders_next", json!({})).await;
    assert_eq!(codes(&r["conflicts"]), ["capability_version"]);
    let message = r["conflicts"][0]["message"].as_str().unwrap();
    assert!(message.contains("^2") && message.contains("1.4.0"), "{message}");
    assert_eq!(k.activate("plant", "orders_next", json!({})).await.0, StatusCode::CONFLICT);

    // Exclusive slot.
    let r = k.validate("plant", "printer_b", json!({})).await;
    assert_eq!(codes(&r["conflicts"]), ["exclusive_slot"]);
    assert_eq!(r["conflicts"][0]["kind"], "exclusive_slot");
    assert!(r["conflicts"][0]["message"].as_str().unwrap().contains("exclusive slot"));
    assert_eq!(k.activate("plant", "printer_b", json!({})).await.0, StatusCode::CONFLICT);

    // Explicit conflict, declared by the other side.
    let r = k.validate("plant", "legacy", json!({})).await;
    assert_eq!(codes(&r["conflicts"]), ["conflicts_with"]);
    assert!(r["conflicts"][0]["message"].as_str().unwrap().contains("declared by `legacy`"));
    let (s, b) = k.activate("plant", "legacy", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(codes(&b["report"]["conflicts"]), ["conflicts_with"]);

    let (_, features) = k.admin(Method::GET, "/api/v1/sites/plant/features", None).await;
    let active: Vec<&str> =
        features["features"].as_array().unwrap().iter().map(|f| f["extension"].as_str().unwrap()).collect();
    assert_eq!(active, ["orders", "printer"], "every refusal left the site as it was");
    let (s, p) = k.admin(Method::GET, "/api/v1/sites/plant/capabilities/printing", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(p["providers"][0]["extension"], "printer");
    let (s, p) = k.admin(Method::GET, "/api/v1/sites/plant/capabilities/scanning", None).await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(p["error"]["code"], "capability_not_provided");

    // Deactivation with dependents: 409 naming them; with cascade, both go.
    let (s, b) = k.admin(Method::DELETE, "/api/v1/sites/plant/extensions/printer", None).await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(b["error"]["code"], "has_dependents");
    assert!(b["error"]["message"].as_str().unwrap().contains("`orders`"));
    let (s, b) = k
        .admin(Method::DELETE, "/api/v1/sites/plant/extensions/printer?cascade=true&reason=done", None)
        .await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["deactivated"], json!(["orders", "printer"]));
    let legacy_open = k
        .count("select count(*) from annex.site_conflicts where extension = 'legacy' and resolved_at is null")
        .await;
    assert_eq!(legacy_open, 0, "deactivating the other side resolves the conflict");
    let (_, status) = k.admin(Method::GET, "/api/v1/sites/plant/status", None).await;
    let printer =
        status["extensions"].as_array().unwrap().iter().find(|e| e["extension"] == "printer").unwrap();
    assert_eq!(printer["state"], "inactive");
    let deactivated: String = sqlx::query_scalar(
        "select details->>'old_hash' from annex.audit_log where action = 'site.extension_deactivated'
          and target = 'sites/plant/extensions/printer'",
    )
    .fetch_one(&k.pool)
    .await
    .unwrap();
    assert_eq!(deactivated.len(), 64, "audited with the old hash");
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sign_offs_gate_activation_and_bind_to_the_config_hash() {
    let k = Kit::start().await;
    k.site("lab").await;
    let focal = k.operator("focal", &["quality-focal"], None).await;
    let manager = k.operator("manager", &["quality-manager"], None).await;
    let both = k.operator("both", &["quality-focal", "quality-manager"], None).await;
    let viewer = k.operator("viewer", &["viewer"], None).await;
    let site_admin = k.operator("siteadmin", &["site-admin"], None).await;

    // Without sign-offs: 409 naming the aspect and each role; the config becomes the proposal.
    let (s, b) = k.activate("lab", "esig", json!({"threshold": 1})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let message = b["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(ASPECT)
            && message.contains("`quality-focal`")
            && message.contains("`quality-manager`")
    );
    let missing = b["report"]["missing_signoffs"].as_array().unwrap();
    assert_eq!(missing.len(), 2);
    assert_eq!(missing[0]["aspect"], ASPECT);
    let hash = b["report"]["config_hash"].as_str().unwrap().to_owned();

    let signoffs = "/api/v1/sites/lab/extensions/esig/signoffs";
    let sign = |role: &str, password: &str, hash: &str| {
        json!({"aspect": ASPECT, "role": role, "meaning": "approval", "config_hash": hash, "password": password,
               "notes": "checked"})
    };
    let (s, b) = k
        .call(Some(&focal), Method::POST, signoffs, Some(sign("quality-focal", "wrong password!", &hash)))
        .await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_password")));
    let (s, b) =
        k.call(Some(&focal), Method::POST, signoffs, Some(sign("quality-manager", PASSWORD, &hash))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("role_not_held")));
    let stale = "0".repeat(64);
    let (s, b) =
        k.call(Some(&focal), Method::POST, signoffs, Some(sign("quality-focal", PASSWORD, &stale))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("stale_config_hash")));
    assert!(b["error"]["message"].as_str().unwrap().contains(&hash), "names the current hashes");
    let (s, _) =
        k.call(Some(&viewer), Method::POST, signoffs, Some(sign("quality-focal", PASSWORD, &hash))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a viewer cannot sign");
    let (s, b) = k.admin(Method::POST, signoffs, Some(sign("quality-focal", PASSWORD, &hash))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::FORBIDDEN, Some("operator_required")));
    let activate = "/api/v1/sites/lab/extensions/esig/activate";
    let (s, _) =
        k.call(Some(&viewer), Method::POST, activate, Some(json!({"config": {"threshold": 1}}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a viewer cannot activate");
    assert_eq!(k.count("select count(*) from annex.compliance_signoffs").await, 0, "refusals wrote nothing");

    // Two-person rule: one person, one role per aspect and hash.
    let (s, b) =
        k.call(Some(&both), Method::POST, signoffs, Some(sign("quality-focal", PASSWORD, &hash))).await;
    assert_eq!(s, StatusCode::CREATED, "{b}");
    assert_eq!(b["printed_name"], "both Printed");
    let (s, b) =
        k.call(Some(&both), Method::POST, signoffs, Some(sign("quality-manager", PASSWORD, &hash))).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("two_person_rule")));
    let (s, _) =
        k.call(Some(&manager), Method::POST, signoffs, Some(sign("quality-manager", PASSWORD, &hash))).await;
    assert_eq!(s, StatusCode::CREATED);

    let (s, b) =
        k.call(Some(&site_admin), Method::POST, activate, Some(json!({"config": {"threshold": 1}}))).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["action"], "activated");
    assert_eq!(b["config_hash"], hash.as_str());

    // A config change needs new sign-offs; until then the old config keeps running.
    let (s, b) = k.activate("lab", "esig", json!({"threshold": 2})).await;
    assert_eq!(s, StatusCode::CONFLICT, "{b}");
    let new_hash = b["report"]["config_hash"].as_str().unwrap().to_owned();
    assert_ne!(new_hash, hash);
    let (_, f) = k.admin(Method::GET, "/api/v1/sites/lab/features", None).await;
    assert_eq!(f["features"][0]["config_hash"], hash.as_str(), "the old config still runs");
    let (_, list) = k.admin(Method::GET, signoffs, None).await;
    assert_eq!(list["proposed_hash"], new_hash.as_str());
    for (token, role) in [(&focal, "quality-focal"), (&manager, "quality-manager")] {
        let (s, b) = k.call(Some(token), Method::POST, signoffs, Some(sign(role, PASSWORD, &new_hash))).await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = k.activate("lab", "esig", json!({"threshold": 2})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["action"], "reconfigured");
    assert_eq!(b["old_hash"], hash.as_str());
    assert_eq!(b["config_version"], 2);
    let (_, list) = k.admin(Method::GET, signoffs, None).await;
    for s in list["signoffs"].as_array().unwrap() {
        assert_eq!(s["valid"], s["config_hash"] == new_hash.as_str(), "old sign-offs no longer count: {s}");
    }

    // The audit trail, newest first, with old and new hash.
    let (_, trail) =
        k.admin(Method::GET, "/api/v1/sites/lab/extensions/esig/audit-trail?limit=3", None).await;
    let actions: Vec<&str> =
        trail["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["site.extension_reconfigured", "site.signoff_recorded", "site.signoff_recorded"]);
    assert_eq!(trail["entries"][0]["details"]["old_hash"], hash.as_str());
    assert_eq!(trail["entries"][0]["details"]["new_hash"], new_hash.as_str());
    let next = trail["next_before"].as_i64().expect("another page");
    let (_, page) = k
        .admin(Method::GET, &format!("/api/v1/sites/lab/extensions/esig/audit-trail?before={next}"), None)
        .await;
    let actions: Vec<&str> =
        page["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert!(
        actions.contains(&"site.extension_activated") && actions.contains(&"site.extension_proposed"),
        "{actions:?}"
    );

    // The compliance report, JSON and CSV.
    let (_, report) = k.admin(Method::GET, "/api/v1/sites/lab/compliance-report", None).await;
    let esig = &report["extensions"][0];
    assert_eq!(esig["config_hash"], new_hash.as_str());
    assert_eq!(esig["signoffs"].as_array().unwrap().len(), 2);
    assert_eq!(esig["missing"], json!([]));
    let res =
        k.t.client()
            .get(k.t.url("/api/v1/sites/lab/compliance-report"))
            .bearer_auth(TOKEN)
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap();
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
    let csv = res.text().await.unwrap();
    assert!(csv.starts_with("site,extension,version,config_hash"), "{csv}");
    assert!(
        csv.contains("focal Printed") && csv.contains("manager Printed") && csv.contains(",signed,"),
        "{csv}"
    );

    // Append-only, even for the database owner.
    for sql in [
        "update annex.compliance_signoffs set notes = 'edited'",
        "delete from annex.compliance_signoffs",
        "truncate annex.compliance_signoffs",
    ] {
        let err = sqlx::query(sql).execute(&k.pool).await.expect_err("refused");
        assert!(err.to_string().contains("append-only"), "{sql}: {err}");
    }
    assert_eq!(k.count("select count(*) from annex.compliance_signoffs").await, 4);
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_of_site_a_gets_404_on_every_site_b_endpoint() {
    let k = Kit::start().await;
    k.site("site-a").await;
    k.site("site-b").await;
    let token = k.operator("scoped", &["site-admin", "quality-focal"], Some(vec!["site-a".into()])).await;
    let endpoints: &[(&str, &str)] = &[
        ("GET", "/api/v1/sites/{site}"),
        ("POST", "/api/v1/sites/{site}/suspend"),
        ("POST", "/api/v1/sites/{site}/resume"),
        ("GET", "/api/v1/sites/{site}/features"),
        ("GET", "/api/v1/sites/{site}/capabilities/printing"),
        ("GET", "/api/v1/sites/{site}/status"),
        ("POST", "/api/v1/sites/{site}/extensions/validate-combination"),
        ("POST", "/api/v1/sites/{site}/extensions/printer/validate"),
        ("POST", "/api/v1/sites/{site}/extensions/printer/activate"),
        ("DELETE", "/api/v1/sites/{site}/extensions/printer"),
        ("GET", "/api/v1/sites/{site}/extensions/esig/signoffs"),
        ("POST", "/api/v1/sites/{site}/extensions/esig/signoffs"),
        ("GET", "/api/v1/sites/{site}/extensions/esig/audit-trail"),
        ("GET", "/api/v1/sites/{site}/compliance-report"),
        ("GET", "/api/v1/sites/{site}/snapshots"),
        ("POST", "/api/v1/sites/{site}/snapshots"),
        ("GET", "/api/v1/sites/{site}/snapshots/00000000-0000-0000-0000-000000000000"),
        ("POST", "/api/v1/sites/{site}/snapshots/00000000-0000-0000-0000-000000000000/restore"),
    ];
    let bodies = |path: &str| -> Value {
        if path.ends_with("validate-combination") {
            json!({"extensions": [{"name": "printer", "config": {}}]})
        } else if path.ends_with("/validate") || path.ends_with("/activate") {
            json!({"config": {}})
        } else if path.ends_with("/signoffs") {
            json!({"aspect": ASPECT, "role": "quality-focal", "meaning": "review", "config_hash": "0".repeat(64),
                   "password": PASSWORD})
        } else {
            json!({})
        }
    };
    let (_, doc) = k.admin(Method::GET, "/api/v1/openapi.json", None).await;
    let documented: usize = doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(path, _)| path.contains("{site}"))
        .map(|(_, item)| item.as_object().unwrap().len())
        .sum();
    assert_eq!(documented, endpoints.len(), "every site-scoped route is covered");
    for (m, path) in endpoints {
        let method = Method::from_bytes(m.as_bytes()).unwrap();
        let b_path = path.replace("{site}", "site-b");
        let (s, b) = k.call(Some(&token), method.clone(), &b_path, Some(bodies(path))).await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{m} {b_path}: {b}");
        assert_eq!(b["error"]["code"], "unknown_site", "{m} {b_path}");
        assert!(!b["error"]["message"].as_str().unwrap().contains("may not"), "no hint that it exists");
        // The same answer as for a site that does not exist at all.
        let (s, _) =
            k.call(Some(&token), method, &path.replace("{site}", "nowhere"), Some(bodies(path))).await;
        assert_eq!(s, StatusCode::NOT_FOUND);
    }
    let (_, list) = k.call(Some(&token), Method::GET, "/api/v1/sites", None).await;
    let slugs: Vec<&str> =
        list["sites"].as_array().unwrap().iter().map(|s| s["slug"].as_str().unwrap()).collect();
    assert_eq!(slugs, ["site-a"]);
    let (s, _) = k.call(Some(&token), Method::GET, "/api/v1/sites/site-a/status", None).await;
    assert_eq!(s, StatusCode::OK, "their own site answers");
    let (s, _) = k.call(Some(&token), Method::POST, "/api/v1/sites/site-a/suspend", None).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "a site admin cannot suspend");
    let (s, _) =
        k.call(Some(&token), Method::POST, "/api/v1/sites", Some(json!({"slug": "c", "name": "c"}))).await;
    assert_eq!(s, StatusCode::FORBIDDEN, "nor create sites");
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_a_json_error_and_writes_nothing() {
    let k = Kit::start().await;
    k.site("shop").await;
    let written = || async {
        let sql = "select (select count(*) from annex.sites) + (select count(*) from annex.site_extensions)
                        + (select count(*) from annex.compliance_signoffs) + (select count(*) from annex.site_conflicts)
                        + (select count(*) from annex.site_snapshots) + (select count(*) from annex.audit_log)";
        k.count(sql).await
    };
    let before = written().await;
    let cases: Vec<(Method, &str, Value, StatusCode, &str)> = vec![
        (
            Method::POST,
            "/api/v1/sites",
            json!({"slug": "Bad Slug", "name": "x"}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_slug",
        ),
        (
            Method::POST,
            "/api/v1/sites",
            json!({"slug": "shop", "name": "again"}),
            StatusCode::CONFLICT,
            "site_exists",
        ),
        (
            Method::POST,
            "/api/v1/sites",
            json!({"slug": "ok", "name": "   "}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_site_name",
        ),
        (
            Method::POST,
            "/api/v1/sites/nowhere/extensions/printer/activate",
            json!({"config": {}}),
            StatusCode::NOT_FOUND,
            "unknown_site",
        ),
        (
            Method::POST,
            "/api/v1/sites/shop/extensions/nothing/activate",
            json!({"config": {}}),
            StatusCode::NOT_FOUND,
            "unknown_extension",
        ),
        (
            Method::POST,
            "/api/v1/sites/shop/extensions/esig/activate",
            json!({"config": {"threshold": "high"}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
        ),
        (
            Method::POST,
            "/api/v1/sites/shop/extensions/esig/activate",
            json!({"config": [1]}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_config",
        ),
        (
            Method::POST,
            "/api/v1/sites/shop/extensions/esig/activate",
            json!({"conf": {}}),
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_body",
        ),
        (
            Method::DELETE,
            "/api/v1/sites/shop/extensions/printer",
            Value::Null,
            StatusCode::CONFLICT,
            "not_active",
        ),
        (
            Method::GET,
            "/api/v1/sites/shop/snapshots/not-a-uuid",
            Value::Null,
            StatusCode::NOT_FOUND,
            "unknown_snapshot",
        ),
    ];
    for (method, path, body, status, code) in cases {
        let body = (!body.is_null()).then_some(body);
        let (s, b) = k.admin(method.clone(), path, body).await;
        assert_eq!(s, status, "{method} {path}: {b}");
        assert_eq!(b["error"]["code"], code, "{method} {path}: {b}");
        assert!(!b["error"]["message"].as_str().unwrap().is_empty());
    }
    let (_, b) = k.activate("shop", "esig", json!({"threshold": "high"})).await;
    assert_eq!(b["error"]["errors"][0]["pointer"], "/threshold", "{b}");
    assert!(b["error"]["message"].as_str().unwrap().contains("`esig`"));
    assert_eq!(written().await, before, "no refusal wrote anything");

    // A suspended site refuses changes and writes nothing.
    let (s, b) = k.admin(Method::POST, "/api/v1/sites/shop/suspend", None).await;
    assert_eq!((s, b["status"].as_str()), (StatusCode::OK, Some("suspended")));
    let before = written().await;
    let (s, b) = k.activate("shop", "printer", json!({})).await;
    assert_eq!((s, b["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("site_suspended")));
    assert!(b["error"]["message"].as_str().unwrap().contains("resume"));
    assert_eq!(written().await, before);
    let (s, _) = k.admin(Method::POST, "/api/v1/sites/shop/resume", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(k.activate("shop", "printer", json!({})).await.0, StatusCode::OK);
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn restoring_a_snapshot_revalidates_and_cannot_bypass_sign_offs() {
    let k = Kit::start().await;
    k.site("works").await;
    assert_eq!(k.activate("works", "printer", json!({})).await.0, StatusCode::OK);
    assert_eq!(k.activate("works", "orders", json!({"lines": 3})).await.0, StatusCode::OK);
    let (s, snap) =
        k.admin(Method::POST, "/api/v1/sites/works/snapshots", Some(json!({"label": "good"}))).await;
    assert_eq!(s, StatusCode::CREATED, "{snap}");
    assert_eq!(snap["content"]["extensions"].as_array().unwrap().len(), 2);
    let id = snap["id"].as_str().unwrap().to_owned();
    let (_, list) = k.admin(Method::GET, "/api/v1/sites/works/snapshots", None).await;
    assert_eq!(list["snapshots"][0]["id"], id.as_str());
    assert_eq!(list["snapshots"][0]["extensions"], 2);

    let (s, _) = k.admin(Method::DELETE, "/api/v1/sites/works/extensions/printer?cascade=true", None).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(k.activate("works", "printer_b", json!({})).await.0, StatusCode::OK);
    let (s, r) =
        k.admin(Method::POST, &format!("/api/v1/sites/works/snapshots/{id}/restore"), Some(json!({}))).await;
    assert_eq!(s, StatusCode::OK, "{r}");
    assert_eq!(r["deactivated"], json!(["printer_b"]));
    let mut names: Vec<&str> =
        r["activated"].as_array().unwrap().iter().map(|a| a["extension"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["orders", "printer"]);

    // A snapshot whose config has no sign-offs: the restore is refused, nothing changes.
    let forged = json!({"site": "works", "extensions": [{"name": "esig", "config": {"threshold": 9}}]});
    let forged_id: uuid::Uuid = sqlx::query_scalar(
        "insert into annex.site_snapshots (site_id, label, taken_by, content)
         select id, 'forged', 'test', $1 from annex.sites where slug = 'works' returning id",
    )
    .bind(&forged)
    .fetch_one(&k.pool)
    .await
    .unwrap();
    let (_, before) = k.admin(Method::GET, "/api/v1/sites/works/features", None).await;
    let (s, r) = k
        .admin(Method::POST, &format!("/api/v1/sites/works/snapshots/{forged_id}/restore"), Some(json!({})))
        .await;
    assert_eq!(s, StatusCode::CONFLICT, "{r}");
    assert_eq!(r["report"]["missing_signoffs"].as_array().unwrap().len(), 2);
    let (_, after) = k.admin(Method::GET, "/api/v1/sites/works/features", None).await;
    assert_eq!(before, after, "all or nothing");
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_activations_cannot_both_fill_an_exclusive_slot_and_each_change_is_announced() {
    let k = Kit::start().await;
    let site = k.site("race").await;
    let mut listener = sqlx::postgres::PgListener::connect(k.t.database_url()).await.unwrap();
    listener.listen("annex_sites").await.unwrap();
    for round in 0..5 {
        let (a, b) = tokio::join!(
            k.activate("race", "printer", json!({})),
            k.activate("race", "printer_b", json!({}))
        );
        let mut statuses = [a.0, b.0];
        statuses.sort();
        assert_eq!(statuses, [StatusCode::OK, StatusCode::CONFLICT], "round {round}: {a:?} {b:?}");
        let active = k
            .count("select count(*) from annex.site_extensions where state = 'active' and extension like 'printer%'")
            .await;
        assert_eq!(active, 1, "round {round}: one provider of the exclusive slot");
        let winner = if a.0 == StatusCode::OK { "printer" } else { "printer_b" };
        let (s, _) = k.admin(Method::DELETE, &format!("/api/v1/sites/race/extensions/{winner}"), None).await;
        assert_eq!(s, StatusCode::OK);
    }
    let note =
        tokio::time::timeout(std::time::Duration::from_secs(5), listener.recv()).await.unwrap().unwrap();
    assert_eq!(note.payload(), site["id"].as_str().unwrap(), "NOTIFY annex_sites carries the site's id");
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_site_policy_may_let_one_person_sign_several_roles() {
    let k = Kit::start().await;
    k.site("small").await;
    sqlx::query("update annex.sites set policy = '{\"allow_one_signer_for_several_roles\": true}' where slug = 'small'")
        .execute(&k.pool)
        .await
        .unwrap();
    let both = k.operator("both", &["quality-focal", "quality-manager"], None).await;
    let (s, b) = k.activate("small", "esig", json!({})).await;
    assert_eq!(s, StatusCode::CONFLICT);
    let hash = b["report"]["config_hash"].as_str().unwrap().to_owned();
    let (_, status) = k.admin(Method::GET, "/api/v1/sites/small/status", None).await;
    let esig = status["extensions"].as_array().unwrap().iter().find(|e| e["extension"] == "esig").unwrap();
    assert_eq!(esig["state"], "pending");
    assert_eq!(esig["missing_signoffs"].as_array().unwrap().len(), 2);
    for role in ["quality-focal", "quality-manager"] {
        let body = json!({"aspect": ASPECT, "role": role, "meaning": "responsibility", "config_hash": hash,
                          "password": PASSWORD});
        let (s, b) = k
            .call(Some(&both), Method::POST, "/api/v1/sites/small/extensions/esig/signoffs", Some(body))
            .await;
        assert_eq!(s, StatusCode::CREATED, "{b}");
    }
    let (s, b) = k.activate("small", "esig", json!({})).await;
    assert_eq!(s, StatusCode::OK, "{b}");
    assert_eq!(b["config_version"], 1, "the first activation is version 1");
    k.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn two_sites_run_one_extension_with_their_own_configs() {
    let k = Kit::start().await;
    for (slug, lines) in [("north", 2), ("south", 5)] {
        k.site(slug).await;
        assert_eq!(k.activate(slug, "printer", json!({})).await.0, StatusCode::OK);
        let (s, b) = k.activate(slug, "orders", json!({ "lines": lines })).await;
        assert_eq!(s, StatusCode::OK, "{b}");
    }
    for (slug, lines) in [("north", 2), ("south", 5)] {
        let res = k.t.get(&format!("/sites/{slug}/ext/orders/config")).await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            res.json::<Value>().await.unwrap(),
            json!({ "lines": lines }),
            "{slug} answers with its config"
        );
    }
    // A reconfiguration is served at once at that site only.
    assert_eq!(k.activate("north", "orders", json!({"lines": 3})).await.0, StatusCode::OK);
    let north: Value = k.t.get("/sites/north/ext/orders/config").await.json().await.unwrap();
    let south: Value = k.t.get("/sites/south/ext/orders/config").await.json().await.unwrap();
    assert_eq!((north, south), (json!({"lines": 3}), json!({"lines": 5})));
    // Not active at a site: 404 there; a suspended site: 503.
    assert_eq!(k.t.get("/sites/north/ext/legacy/ping").await.status(), 404);
    assert_eq!(k.admin(Method::POST, "/api/v1/sites/south/suspend", None).await.0, StatusCode::OK);
    assert_eq!(k.t.get("/sites/south/ext/orders/config").await.status(), 503);
    k.shutdown().await;
}
