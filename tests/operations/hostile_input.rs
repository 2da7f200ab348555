//! Hostile input on the wire: oversized headers, deep JSON nesting, path traversal in route paths.
//! Each is refused with a 4xx (or the connection is refused by the HTTP parser), and annex keeps
//! serving the next request.

use std::time::Duration;

use reqwest::Method;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{Base, TOKEN, admin, body, host};

/// Sends `request` as raw bytes and returns the status line's code, or `None` if the server
/// closed the connection without an answer.
async fn raw(base_url: &str, request: &[u8]) -> Option<u16> {
    let addr = base_url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    if stream.write_all(request).await.is_err() {
        return None;
    }
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server neither answered nor closed within 5 s");
    let head = String::from_utf8_lossy(&buf);
    head.strip_prefix("HTTP/1.1 ")?.get(..3)?.parse().ok()
}

async fn still_serving(t: &annex_core::testkit::TestHost) {
    let res = t.get("/ext/base/items/7").await;
    assert_eq!(res.status(), 200, "annex must keep serving after hostile input");
}

#[tokio::test(flavor = "multi_thread")]
async fn oversized_headers_are_refused_and_annex_keeps_serving() {
    let t = host(Base::default(), None).await;
    let huge = "x".repeat(1024 * 1024);
    let request =
        format!("GET /ext/base/items/1 HTTP/1.1\r\nhost: x\r\nx-junk: {huge}\r\nconnection: close\r\n\r\n");
    let status = raw(t.base_url(), request.as_bytes()).await;
    assert!(status.is_none_or(|s| s == 431 || s == 400), "a 1 MiB header: {status:?}");
    let many: String = (0..2000).map(|i| format!("x-h{i}: v\r\n")).collect();
    let request = format!("GET /ext/base/items/1 HTTP/1.1\r\nhost: x\r\n{many}connection: close\r\n\r\n");
    let status = raw(t.base_url(), request.as_bytes()).await;
    assert!(status.is_none_or(|s| s == 431 || s == 400), "2 000 headers: {status:?}");
    still_serving(&t).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deeply_nested_json_is_refused_with_a_json_error() {
    let t = host(Base::default(), None).await;
    let deep = format!("{{\"config\": {}1{}}}", "[".repeat(100_000), "]".repeat(100_000));
    let res = admin(&t, Method::PUT, "/api/v1/extensions/base/config")
        .header("content-type", "application/json")
        .body(deep)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    assert!((400..500).contains(&status), "deep nesting: {status}");
    let b: Value = body(res).await;
    assert!(b["error"]["code"].is_string(), "a JSON error: {b}");
    still_serving(&t).await;
    t.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn traversal_in_route_paths_never_reaches_the_admin_api_or_another_extension() {
    let t = host(Base::default(), None).await;
    for path in [
        "/ext/base/../../api/v1/extensions",
        "/ext/base/%2e%2e/%2e%2e/api/v1/extensions",
        "/ext/base/..%2f..%2fapi/v1/extensions",
        "/ext/base/items/..%2f..%2f..%2fdependent%2fping",
        "/ext/base//../dependent/ping",
        "/ext/base/items/%00",
    ] {
        // No token: if traversal reached the admin API it would answer 401, not 404.
        let request = format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
        let status = raw(t.base_url(), request.as_bytes()).await;
        assert!(
            matches!(status, Some(400 | 404)),
            "{path}: expected 400 or 404 from the extension's own router, got {status:?}"
        );
        let with_token = format!(
            "GET {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\nconnection: close\r\n\r\n"
        );
        let status = raw(t.base_url(), with_token.as_bytes()).await;
        assert!(matches!(status, Some(400 | 404)), "{path} with the admin token: {status:?}");
    }
    still_serving(&t).await;
    t.shutdown().await;
}
