//! Measures the sites admin API against a real PostgreSQL (the test kit's throwaway server),
//! through HTTP as operators use it:
//! 1. `GET /api/v1/sites/{site}/status` with 1 000 sites × 20 extensions active (goal ≤ 10 ms);
//! 2. `POST …/extensions/{name}/activate` of an extension needing 3 sign-offs, all present
//!    (goal ≤ 20 ms; the sign-offs themselves are made before the clock starts);
//! 3. `GET …/extensions/{name}/audit-trail` with 1 000 000 rows in the audit log (goal ≤ 5 ms).
//!
//! Each figure is the median of its rounds, printed with the spread. The bulk rows are written
//! with SQL (the 1 M audit rows with the chain trigger off: the trail query does not read the
//! hashes, and chaining 1 M rows one by one would take minutes).
//!
//! Run: `cargo bench --bench sites`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use annex_core::testkit::TestHost;
use annex_core::{Extension, Metadata, Registrar};
use serde_json::{Value, json};

const TOKEN: &str = "bench-admin-token";
const PASSWORD: &str = "bench password, long enough";

/// An extension with one route and, for `signed`, an aspect that needs three roles.
struct Named {
    name: String,
    signed: bool,
}

#[annex_core::async_trait]
impl Extension for Named {
    fn metadata(&self) -> Metadata {
        let m = Metadata::new(self.name.clone(), "1.0.0");
        if self.signed { m.signoff("validation", ["qa-one", "qa-two", "qa-three"]) } else { m }
    }
    fn register(&self, r: &mut Registrar) {
        r.get("/ping", || async { "pong" });
    }
}

fn median(mut xs: Vec<Duration>) -> (Duration, Duration, Duration) {
    xs.sort();
    (xs[xs.len() / 2], xs[0], xs[xs.len() - 1])
}

fn report(what: &str, goal_ms: f64, runs: Vec<Duration>) {
    let n = runs.len();
    let (m, lo, hi) = median(runs);
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{what}: median {:.2} ms over {n} rounds (min {:.2}, max {:.2}; goal ≤ {goal_ms} ms)",
        ms(m),
        ms(lo),
        ms(hi)
    );
}

async fn call(
    t: &TestHost,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut req = t.client().request(method, t.url(path)).bearer_auth(token);
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.expect("request");
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut extensions: Vec<Arc<dyn Extension>> = (0..20)
        .map(|i| Arc::new(Named { name: format!("e{i:02}"), signed: false }) as Arc<dyn Extension>)
        .collect();
    extensions.push(Arc::new(Named { name: "signed".into(), signed: true }));
    let t = TestHost::builder()
        .extensions(extensions)
        .config(|c| c.server.admin_token = Some(TOKEN.into()))
        .start()
        .await
        .expect("host starts");
    let pool = sqlx::PgPool::connect(t.database_url()).await.expect("database");

    // 1. 1 000 sites × 20 active extensions, written in bulk.
    let hash = annex_core::sites::config_hash(&json!({}));
    sqlx::query("insert into annex.sites (slug, name) select 'site-' || lpad(i::text, 4, '0'), 'Site ' || i from generate_series(1, 1000) i")
        .execute(&pool)
        .await
        .expect("sites");
    sqlx::query(
        "insert into annex.site_extensions (site_id, extension, version, config, config_hash, state, activated_at)
         select s.id, 'e' || lpad(e::text, 2, '0'), '1.0.0', '{}'::jsonb, $1, 'active', now()
           from annex.sites s, generate_series(0, 19) e",
    )
    .bind(&hash)
    .execute(&pool)
    .await
    .expect("site extensions");
    let (status, body) = call(&t, reqwest::Method::GET, "/api/v1/sites/site-0500/status", TOKEN, None).await;
    assert_eq!(status, 200, "{body}");
    let mut runs = Vec::new();
    for i in 0..60 {
        let path = format!("/api/v1/sites/site-{:04}/status", 1 + (i * 16) % 1000);
        let started = Instant::now();
        let (status, _) = call(&t, reqwest::Method::GET, &path, TOKEN, None).await;
        runs.push(started.elapsed());
        assert_eq!(status, 200);
    }
    report("site status, 1 000 sites × 20 extensions", 10.0, runs);

    // 2. Activation with three sign-offs present.
    let admin = annex_core::admin::Admin::connect(&t.host().config().clone(), &[]).await.expect("admin");
    let mut tokens = Vec::new();
    for role in ["qa-one", "qa-two", "qa-three"] {
        let new = annex_core::access::NewOperator {
            username: role.into(),
            printed_name: format!("Signer {role}"),
            roles: vec![role.into()],
            sites: None,
            password: PASSWORD.into(),
        };
        tokens.push((role, admin.add_operator(&new).await.expect("operator").1));
    }
    let mut runs = Vec::new();
    for round in 0..15 {
        let config = json!({ "round": round });
        let site = format!("site-{:04}", 1 + round);
        let base = format!("/api/v1/sites/{site}/extensions/signed");
        let activate = json!({ "config": config, "reason": "bench" });
        let (status, body) =
            call(&t, reqwest::Method::POST, &format!("{base}/activate"), TOKEN, Some(activate.clone())).await;
        assert_eq!(status, 409, "without sign-offs: {body}");
        let hash = annex_core::sites::config_hash(&config);
        for (role, token) in &tokens {
            let signoff = json!({ "aspect": "validation", "role": role, "meaning": "approval",
                                  "config_hash": hash, "password": PASSWORD, "notes": "" });
            let (status, body) =
                call(&t, reqwest::Method::POST, &format!("{base}/signoffs"), token, Some(signoff)).await;
            assert!(status == 200 || status == 201, "sign-off: {status} {body}");
        }
        let started = Instant::now();
        let (status, body) =
            call(&t, reqwest::Method::POST, &format!("{base}/activate"), TOKEN, Some(activate)).await;
        runs.push(started.elapsed());
        assert_eq!(status, 200, "with sign-offs: {body}");
    }
    report("activation with 3 sign-offs", 20.0, runs);

    // 3. The audit trail of one extension at a site, 1 M rows in the log.
    sqlx::query("alter table annex.audit_log disable trigger user")
        .execute(&pool)
        .await
        .expect("trigger off");
    sqlx::query(
        "insert into annex.audit_log (id, at, actor, action, target, details, prev_hash, hash)
         select nextval(pg_get_serial_sequence('annex.audit_log', 'id')), now() - (i || ' s')::interval, 'bench',
                'site.extension_reconfigured', 'sites/site-' || lpad((1 + i % 1000)::text, 4, '0') || '/extensions/e' || lpad((i % 20)::text, 2, '0'),
                '{}'::jsonb, repeat('0', 64), repeat('0', 64)
           from generate_series(1, 1000000) i",
    )
    .execute(&pool)
    .await
    .expect("audit rows");
    sqlx::query("alter table annex.audit_log enable trigger user").execute(&pool).await.expect("trigger on");
    sqlx::query("analyze annex.audit_log").execute(&pool).await.expect("analyze");
    let mut runs = Vec::new();
    for i in 0..60 {
        let path =
            format!("/api/v1/sites/site-{:04}/extensions/e{:02}/audit-trail", 1 + (i * 7) % 1000, i % 20);
        let started = Instant::now();
        let (status, body) = call(&t, reqwest::Method::GET, &path, TOKEN, None).await;
        runs.push(started.elapsed());
        assert_eq!(status, 200, "{body}");
    }
    report("audit trail of one extension at a site, 1 M audit rows", 5.0, runs);
    admin.close().await;
    t.shutdown().await;
}
