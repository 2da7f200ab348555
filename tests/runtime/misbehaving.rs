//! Misbehaving extensions under load, beside a well-behaved one (docs/reliability.md): one leaks
//! memory on every request, one blocks its runtime thread, one panics on every other request.
//! Their sibling's requests all answer 200; the memory quota refuses and then disables the leak,
//! the panic threshold disables the panicker, the concurrency quota keeps the blocker to one
//! thread; the process stays up and serves after.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use annex_core::config::QuotaConfig;
use annex_core::host::ExtensionState;
use annex_core::testkit::TestHost;

use crate::scripted::Scripted;

const MB: usize = 1 << 20;

/// Statuses (and error codes) one client loop saw, and its latencies.
#[derive(Debug, Default)]
struct Seen {
    by_status: BTreeMap<String, usize>,
    failed: usize,
    latencies: Vec<Duration>,
}

/// Loops `path` until `stop`, recording every answer.
fn client(
    t: &TestHost,
    path: &str,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
) -> tokio::task::JoinHandle<()> {
    let url = t.url(path);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let res = http.get(&url).send().await;
            let took = started.elapsed();
            let key = match res {
                Ok(r) => {
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap_or_default();
                    match body["error"]["code"].as_str() {
                        Some(code) => format!("{status} {code}"),
                        None => status.to_string(),
                    }
                }
                Err(_) => {
                    seen.lock().expect("lock").failed += 1;
                    continue;
                }
            };
            let mut s = seen.lock().expect("lock");
            *s.by_status.entry(key).or_default() += 1;
            s.latencies.push(took);
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leaking_blocking_and_panicking_extensions_under_load_leave_their_sibling_and_the_process_alone() {
    let leaked: Arc<Mutex<Vec<Vec<u8>>>> = Arc::default();
    let hold = leaked.clone();
    let leaky = Scripted::new("leaky", move |r| {
        let hold = hold.clone();
        r.get("/grow", move || {
            let hold = hold.clone();
            async move {
                hold.lock().expect("lock").push(vec![7u8; MB]);
                "grew"
            }
        });
    });
    let blocking = Scripted::new("blocking", |r| {
        r.get("/block", || async {
            // Blocks the runtime thread it runs on: no await point, no way to preempt it.
            std::thread::sleep(Duration::from_millis(50));
            "woke"
        });
    });
    let calls = Arc::new(AtomicU64::new(0));
    let count = calls.clone();
    let flaky = Scripted::new("flaky", move |r| {
        let count = count.clone();
        r.get("/maybe", move || {
            let n = count.fetch_add(1, Ordering::Relaxed);
            async move {
                if n.is_multiple_of(2) {
                    panic!("flaky panics on every other request");
                }
                "fine"
            }
        });
    });
    let steady = Scripted::new("steady", |r| {
        r.get("/ping", || async { "pong" });
    });
    let t = TestHost::builder()
        .extension(leaky)
        .extension(blocking)
        .extension(flaky)
        .extension(steady)
        .config(|c| {
            c.health.interval_ms = 100;
            c.health.failure_threshold = 5;
            c.health.panic_threshold = 20;
            c.health.panic_window_ms = 60_000;
            c.extensions.entry("leaky".into()).or_default().quotas =
                QuotaConfig { max_memory_bytes: Some(20 * MB as u64), ..Default::default() };
            c.extensions.entry("blocking".into()).or_default().quotas =
                QuotaConfig { max_concurrent: Some(1), ..Default::default() };
        })
        .start()
        .await
        .expect("host starts");

    let stop = Arc::new(AtomicBool::new(false));
    let seen: BTreeMap<&str, Arc<Mutex<Seen>>> =
        ["leaky", "blocking", "flaky", "steady"].into_iter().map(|n| (n, Arc::default())).collect();
    let mut clients = Vec::new();
    for (name, path, n) in [
        ("leaky", "/ext/leaky/grow", 2),
        ("blocking", "/ext/blocking/block", 3),
        ("flaky", "/ext/flaky/maybe", 2),
        ("steady", "/ext/steady/ping", 2),
    ] {
        for _ in 0..n {
            clients.push(client(&t, path, stop.clone(), seen[name].clone()));
        }
    }
    // Until both the leak and the panicker are disabled (bounded), then 2 s more of load.
    let started = Instant::now();
    let disabled = loop {
        let both = t.host().state("leaky") == Some(ExtensionState::Disabled)
            && t.host().state("flaky") == Some(ExtensionState::Disabled);
        if both || started.elapsed() > Duration::from_secs(30) {
            break both;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.expect("client");
    }
    let report: BTreeMap<&str, String> = seen
        .iter()
        .map(|(n, s)| {
            let s = s.lock().expect("lock");
            let mut l = s.latencies.clone();
            l.sort();
            let p99 = l.get(l.len().saturating_sub(1) * 99 / 100).copied().unwrap_or_default();
            (*n, format!("{:?}, {} transport errors, p99 {p99:?}", s.by_status, s.failed))
        })
        .collect();
    println!("misbehaving extensions after {:?}: {report:#?}", started.elapsed());
    assert!(
        disabled,
        "the leak and the panicker were disabled: leaky {:?}, flaky {:?}; {report:#?}",
        t.host().state("leaky"),
        t.host().state("flaky")
    );

    let statuses = |name: &str| -> (BTreeMap<String, usize>, usize) {
        let s = seen[name].lock().expect("lock");
        (s.by_status.clone(), s.failed)
    };
    let (steady, failed) = statuses("steady");
    assert_eq!(failed, 0, "{report:#?}");
    assert!(steady.keys().all(|k| k == "200"), "every sibling request answered 200: {report:#?}");
    assert!(steady.get("200").copied().unwrap_or(0) > 100, "the sibling was under load: {report:#?}");
    let (leaky, _) = statuses("leaky");
    assert!(leaky.contains_key("200"), "{report:#?}");
    assert!(leaky.contains_key("503 memory_quota_exceeded"), "the memory quota refused: {report:#?}");
    let (flaky, _) = statuses("flaky");
    assert!(flaky.keys().any(|k| k.starts_with("500 ")), "the panics answered 500: {report:#?}");
    let (blocking, _) = statuses("blocking");
    assert!(blocking.contains_key("200"), "{report:#?}");
    assert!(
        blocking.contains_key("503 quota_exceeded"),
        "max_concurrent refused the extra callers: {report:#?}"
    );
    assert_eq!(t.host().state("blocking"), Some(ExtensionState::Running));
    assert_eq!(t.host().state("steady"), Some(ExtensionState::Running));

    // The process is up and serves.
    assert_eq!(t.get("/health").await.status(), 200);
    assert_eq!(t.get("/ext/steady/ping").await.status(), 200);
    assert_eq!(t.get("/ext/leaky/grow").await.status(), 503, "a disabled extension answers 503");
    // Both auto-disables are audited with their reason.
    let pool = sqlx::PgPool::connect(t.database_url()).await.expect("connect");
    let reasons: Vec<(String, String)> = sqlx::query_as(
        "select target, details->>'reason' from annex.audit_log where action = 'extension.unhealthy' order by target",
    )
    .fetch_all(&pool)
    .await
    .expect("audit");
    let targets: Vec<&str> = reasons.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(targets, ["flaky", "leaky"], "{reasons:?}");
    drop(leaked);
    t.shutdown().await;
}
