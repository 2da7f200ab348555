//! Measures the migration engine against a real PostgreSQL (the test kit's throwaway server, or
//! `DATABASE_URL`):
//! 1. applying 100 small migrations for one extension (role isolation, as its own role);
//! 2. host start time with 5 extensions whose migrations are already applied.
//!
//! Run: `cargo bench --bench migrations` (or add `--profile dev` to skip the release build;
//! the numbers are dominated by PostgreSQL round trips either way).

use std::sync::Arc;
use std::time::{Duration, Instant};

use annex_core::testkit::{TEST_SECRET, test_database_url};
use annex_core::{Extension, Metadata, Migration, Migrations, admin::Admin, config::Config, host::Host};

struct Many {
    name: String,
    steps: usize,
}

#[annex_core::async_trait]
impl Extension for Many {
    fn metadata(&self) -> Metadata {
        Metadata::new(self.name.clone(), "1.0.0")
    }
    fn migrations(&self) -> Migrations {
        Migrations::new(
            (1..=self.steps)
                .map(|i| {
                    let i = i64::try_from(i).unwrap_or(i64::MAX);
                    Migration::new(
                        i,
                        &format!("t{i}"),
                        &format!("create table t{i} (id bigint primary key, body text)"),
                        Some(&format!("drop table t{i}")),
                    )
                })
                .collect(),
        )
    }
}

fn config(url: &str, dir: &std::path::Path) -> Config {
    let mut c = Config { data_dir: dir.to_owned(), ..Config::default() };
    c.database.url = Some(url.to_owned());
    c.server.secret = Some(TEST_SECRET.to_owned());
    c
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::from_default_env()).init();
    }
    let dir = tempfile::tempdir().expect("tempdir");

    // 1. 100 small migrations, one extension, each run on a fresh database.
    let mut runs = Vec::new();
    for _ in 0..3 {
        let url = test_database_url().await.expect("database");
        let ext: Vec<Arc<dyn Extension>> = vec![Arc::new(Many { name: "many".into(), steps: 100 })];
        let admin = Admin::connect(&config(&url, dir.path()), &ext).await.expect("admin");
        let started = Instant::now();
        let applied = admin.migrate("many", |_| {}).await.expect("migrate");
        runs.push(started.elapsed());
        assert_eq!(applied.len(), 100);
        admin.close().await;
    }
    let m = median(runs.clone());
    println!(
        "apply 100 migrations (1 extension, own role, fresh db): median {:.1} ms ({:.2} ms/step), runs {:?}",
        m.as_secs_f64() * 1e3,
        m.as_secs_f64() * 1e3 / 100.0,
        runs
    );

    // 2. Host start, 5 extensions x 20 migrations, all already applied.
    let url = test_database_url().await.expect("database");
    let extensions = || -> Vec<Arc<dyn Extension>> {
        (1..=5).map(|i| Arc::new(Many { name: format!("ext{i}"), steps: 20 }) as Arc<dyn Extension>).collect()
    };
    let first = Instant::now();
    let host = Host::builder(config(&url, dir.path())).extensions(extensions()).start().await.expect("host");
    let cold = first.elapsed();
    host.shutdown().await;
    let mut runs = Vec::new();
    for _ in 0..7 {
        let started = Instant::now();
        let host =
            Host::builder(config(&url, dir.path())).extensions(extensions()).start().await.expect("host");
        runs.push(started.elapsed());
        assert!(
            host.extensions().iter().all(|(_, state)| *state == annex_core::host::ExtensionState::Running)
        );
        host.shutdown().await;
    }
    let m = median(runs.clone());
    println!(
        "host start, 5 extensions x 20 migrations already applied: median {:.1} ms (first start applying all 100: {:.1} ms), runs {:?}",
        m.as_secs_f64() * 1e3,
        cold.as_secs_f64() * 1e3,
        runs
    );
}
