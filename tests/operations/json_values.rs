//! Every JSON value the admin API accepts is stored in a form annex reads back; what PostgreSQL
//! cannot store is refused by pointer; and a stored value annex cannot read (written by another
//! tool) degrades that one extension or audit entry, never the host or the list.

use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

use crate::support::{Base, admin, body, host};

async fn put_config(t: &annex_core::testkit::TestHost, name: &str, config: &Value) -> (u16, Value) {
    let res = admin(t, Method::PUT, &format!("/api/v1/extensions/{name}/config"))
        .json(config)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), body(res).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn extreme_numbers_round_trip_and_what_postgres_cannot_store_is_refused_by_pointer() {
    let t = host(Base::default(), None).await;
    // Each of these once made every later read of the row fail ("number out of range").
    let config = json!({
        "max": 1.7976931348623157e308,
        "min": -1.7976931348623157e308,
        "tiny": 5e-324,
        "big": 123456789012345678901234567890u128 as f64,
        "small": 1e-7,
        "nested": [[1.5, { "z": 2.5e-300, "e": 1e300 }]],
    });
    let (status, _) = put_config(&t, "dependent", &config).await;
    assert_eq!(status, 200);
    let list = body(admin(&t, Method::GET, "/api/v1/extensions").send().await.unwrap()).await;
    assert_eq!(list["extensions"].as_array().map(Vec::len), Some(2), "{list}");
    let got = body(admin(&t, Method::GET, "/api/v1/extensions/dependent/config").send().await.unwrap()).await;
    assert_eq!(got["config"], config);
    let audit =
        body(admin(&t, Method::GET, "/api/v1/audit?action=extension.config_changed").send().await.unwrap())
            .await;
    assert_eq!(audit["entries"][0]["details"]["new"], config, "{audit}");

    // Not objects, and NUL characters: 422, naming where.
    for wrong in [json!(null), json!(1), json!("s"), json!(true), json!([1, 2])] {
        let (status, b) = put_config(&t, "dependent", &wrong).await;
        assert_eq!(status, 422, "{wrong}: {b}");
        assert_eq!(b["error"]["code"], "invalid_config");
        assert!(b["error"]["message"].as_str().unwrap_or_default().contains("must be a JSON object"), "{b}");
    }
    let (status, b) =
        put_config(&t, "dependent", &json!({ "x": "a\u{0}b", "ok": [1, { "k\u{0}": 2 }] })).await;
    assert_eq!(status, 422, "{b}");
    let pointers: Vec<&str> =
        b["error"]["errors"].as_array().into_iter().flatten().filter_map(|e| e["pointer"].as_str()).collect();
    assert_eq!(pointers, ["/ok/1/k\\u0000", "/x"], "{b}");

    // A restart reads it back.
    let url = t.database_url().to_owned();
    t.shutdown().await;
    let t = host(Base::default(), Some(&url)).await;
    let got = body(admin(&t, Method::GET, "/api/v1/extensions/dependent/config").send().await.unwrap()).await;
    assert_eq!(got["config"], config);
    assert_eq!(t.get("/ext/dependent/ping").await.status(), 200);
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn one_unreadable_stored_value_degrades_that_extension_and_that_entry_only() {
    let t = host(Base::default(), None).await;
    let url = t.database_url().to_owned();
    t.shutdown().await;
    // Another tool writes what PostgreSQL takes and serde_json cannot represent.
    let mut db = sqlx::PgConnection::connect(&url).await.unwrap();
    sqlx::query(r#"update annex.extensions set config = '{"x": 1e400}' where name = 'dependent'"#)
        .execute(&mut db)
        .await
        .unwrap();
    sqlx::query(r#"insert into annex.audit_log (actor, action, target, details) values ('tool', 'tool.wrote', 'dependent', '{"x": 1e400}')"#)
        .execute(&mut db)
        .await
        .unwrap();
    db.close().await.unwrap();

    // The host starts; the others serve; that one extension is failed, saying why and how to fix it.
    let t = host(Base::default(), Some(&url)).await;
    assert_eq!(t.get("/ext/base/items/1").await.status(), 200);
    assert_eq!(t.get("/ext/dependent/ping").await.status(), 503);
    let list = body(admin(&t, Method::GET, "/api/v1/extensions").send().await.unwrap()).await;
    let dependent =
        list["extensions"].as_array().and_then(|l| l.iter().find(|e| e["name"] == "dependent")).cloned();
    let dependent = dependent.expect("listed");
    assert_eq!(dependent["state"], "failed");
    let reason = dependent["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("cannot be read") && reason.contains("config set"), "{reason}");
    let info = admin(&t, Method::GET, "/api/v1/extensions/base").send().await.unwrap();
    assert_eq!(info.status(), 200);

    // The audit page holding the entry answers, and marks just that entry.
    let audit = body(admin(&t, Method::GET, "/api/v1/audit?actor=tool").send().await.unwrap()).await;
    assert!(audit["entries"][0]["details"]["unreadable"].is_string(), "{audit}");
    let all = admin(&t, Method::GET, "/api/v1/audit?limit=500").send().await.unwrap();
    assert_eq!(all.status(), 200);

    // A new config repairs it.
    let (status, b) = put_config(&t, "dependent", &json!({ "x": 1 })).await;
    assert_eq!(status, 200, "{b}");
    let res = admin(&t, Method::POST, "/api/v1/extensions/dependent/enable").send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(t.get("/ext/dependent/ping").await.status(), 200);
    t.shutdown().await;
}
