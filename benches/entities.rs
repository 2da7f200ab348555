//! Measures declarative entities against a real PostgreSQL (the test kit's throwaway server),
//! in process (a host and its HTTP API on loopback):
//! 1. `GET /ext/bench_entities/entities/item?filter=bucket=…&per_page=50` on an entity of
//!    1 000 000 rows, the filter on an indexed field (goal p50 ≤ 2 ms);
//! 2. `POST /ext/bench_entities/entities/item`, one row (goal ≤ 1 ms);
//! 3. validating a declaration of 1 000 fields and migrating it (create) (goal ≤ 1 s).
//!
//! Each figure is the median of its rounds, with the spread. The 1 M rows are written with one
//! `insert … select generate_series` as the extension's own role.
//!
//! Run: `cargo bench --bench entities`.

use std::time::{Duration, Instant};

use annex_core::extension::{Entities, entity_format};
use annex_core::testkit::TestHost;
use annex_core::{Extension, Metadata};

const TOKEN: &str = "bench-admin-token";

struct Declares {
    name: String,
    entities: Entities,
}

#[annex_core::async_trait]
impl Extension for Declares {
    fn metadata(&self) -> Metadata {
        Metadata::new(self.name.clone(), "1.0.0")
    }
    fn entities(&self) -> Option<Entities> {
        Some(self.entities.clone())
    }
}

fn declares(name: &str, toml: &str) -> Declares {
    let d = entity_format::parse_toml(toml).expect("the bench declaration parses");
    Declares { name: name.into(), entities: Entities::from_declaration(d) }
}

fn report(what: &str, goal: &str, mut runs: Vec<Duration>) {
    runs.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let (n, m) = (runs.len(), runs[runs.len() / 2]);
    println!(
        "{what}: median {:.3} ms over {n} rounds (p90 {:.3}, min {:.3}; goal {goal})",
        ms(m),
        ms(runs[n * 9 / 10]),
        ms(runs[0])
    );
}

const ITEMS: &str = r#"
version = 1
[entities.item]
indexes = [{ fields = ["bucket"] }]
[entities.item.fields]
title = { type = "string", required = true, max_length = 100 }
bucket = { type = "int", required = true, min = 0 }
price = { type = "decimal", min = 0 }
"#;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    // 3 first: validation and creation of 1 000 fields, each round on a fresh database.
    let mut wide = String::from("version = 1\n[entities.wide.fields]\n");
    for i in 0..1000 {
        let kind = ["string", "int", "text", "boolean", "decimal"][i % 5];
        wide.push_str(&format!("f{i:04} = {{ type = \"{kind}\" }}\n"));
    }
    let mut runs = Vec::new();
    for _ in 0..3 {
        let started = Instant::now();
        let t = TestHost::builder().extension(declares("wide", &wide)).start().await.expect("host starts");
        runs.push(started.elapsed());
        assert!(matches!(t.host().state("wide"), Some(annex_core::host::ExtensionState::Running)));
        t.shutdown().await;
    }
    report("validate and migrate a declaration of 1 000 fields (whole host start)", "≤ 1 s", runs);

    let t = TestHost::builder()
        .extension(declares("bench_entities", ITEMS))
        .config(|c| c.server.admin_token = Some(TOKEN.into()))
        .start()
        .await
        .expect("host starts");
    let db = sqlx::PgPool::connect(t.database_url()).await.expect("database");
    sqlx::query(
        "insert into ext_bench_entities.item (title, bucket, price)
         select 'item ' || i, i % 20000, (i % 1000)::numeric / 10 from generate_series(1, 1000000) i",
    )
    .execute(&db)
    .await
    .expect("1 M rows");
    sqlx::query("analyze ext_bench_entities.item").execute(&db).await.expect("analyze");

    // 1. A page of 50 by an indexed filter (each bucket holds 50 rows).
    let client = t.client().clone();
    let mut runs = Vec::new();
    for i in 0..200 {
        let url = t.url(&format!(
            "/ext/bench_entities/entities/item?filter=bucket%3D{}&per_page=50",
            (i * 97) % 20000
        ));
        let started = Instant::now();
        let res = client.get(url).bearer_auth(TOKEN).send().await.expect("request");
        let status = res.status();
        let body = res.bytes().await.expect("body");
        runs.push(started.elapsed());
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    }
    report("list 50 rows by an indexed filter, 1 M rows", "p50 ≤ 2 ms", runs);

    // 2. Create one row.
    let mut runs = Vec::new();
    for i in 0..200 {
        let body = serde_json::json!({ "title": format!("new {i}"), "bucket": i, "price": 1.5 });
        let started = Instant::now();
        let res = client
            .post(t.url("/ext/bench_entities/entities/item"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
            .await
            .expect("request");
        let status = res.status();
        let _ = res.bytes().await;
        runs.push(started.elapsed());
        assert_eq!(status, 201);
    }
    report("create one row", "≤ 1 ms", runs);
    db.close().await;
    t.shutdown().await;
}
