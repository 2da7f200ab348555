//! Request hooks, middleware and identity over real HTTP and a real database.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::scripted::{Log, Scripted, grant};
use annex_core::testkit::TestHost;
use annex_core::{
    Hook, Identity, Next,
    hooks::{Completed, ErrorKind, HookRequest, HookResponse},
    host::ExtensionState,
};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::IntoResponse;

/// Registers, for `name`, a request-filter, response-filter and middleware that log
/// `<point>:<name>.<id>` with the given priorities and scopes.
fn logging(name: &'static str, log: &Log, pre: Vec<(&'static str, i32, Option<&'static str>)>) -> Scripted {
    let log = log.clone();
    Scripted::new(name, move |r| {
        let handler_log = log.clone();
        r.get("/x", move || {
            let log = handler_log.clone();
            async move {
                log.push("handler");
                "ok"
            }
        });
        for &(id, priority, prefix) in &pre {
            let hook = match prefix {
                Some(p) => Hook::new(id).priority(priority).prefix(p),
                None => Hook::new(id).priority(priority),
            };
            let (l1, l2, l3, l4) = (log.clone(), log.clone(), log.clone(), log.clone());
            r.pre_request(hook.clone(), move |cx, _req: HookRequest| {
                let entry = format!("pre:{}.{id}", cx.name());
                let log = l1.clone();
                async move {
                    log.push(entry);
                    Ok(())
                }
            });
            r.post_request(hook.clone(), move |cx, _res: HookResponse| {
                let entry = format!("post:{}.{id}", cx.name());
                let log = l2.clone();
                async move {
                    log.push(entry);
                    Ok(())
                }
            });
            r.pre_response(hook.clone(), move |cx, _res: HookResponse| {
                let entry = format!("resp:{}.{id}", cx.name());
                let log = l3.clone();
                async move {
                    log.push(entry);
                    Ok(())
                }
            });
            r.middleware(hook, move |cx, req: Request, next: Next| {
                let entry = format!("mw:{}.{id}", cx.name());
                let log = l4.clone();
                async move {
                    log.push(entry);
                    next.run(req).await
                }
            });
        }
    })
}

#[tokio::test]
async fn hooks_and_middleware_run_by_priority_then_extension_then_id_across_extensions() {
    let log = Log::default();
    // Registered out of order on purpose: the order must come from (priority, extension, id).
    let alpha = logging("alpha", &log, vec![("z", 0, None), ("a", 5, Some("/ext/alpha"))]);
    let beta = logging("beta", &log, vec![("m", 0, None), ("b", -1, Some("/ext/alpha/x"))]);
    let t = TestHost::builder()
        .extension(beta)
        .extension(alpha)
        .config(|c| {
            grant(c, "alpha", &["hooks:global"]);
            grant(c, "beta", &["hooks:global"]);
        })
        .start()
        .await
        .expect("host starts");

    let expected: Vec<String> = [
        "pre:beta.b",
        "pre:alpha.z",
        "pre:beta.m",
        "pre:alpha.a",
        "mw:beta.b",
        "mw:alpha.z",
        "mw:beta.m",
        "mw:alpha.a",
        "handler",
        "post:beta.b",
        "post:alpha.z",
        "post:beta.m",
        "post:alpha.a",
        "resp:beta.b",
        "resp:alpha.z",
        "resp:beta.m",
        "resp:alpha.a",
    ]
    .map(String::from)
    .to_vec();
    for _ in 0..3 {
        assert_eq!(t.get("/ext/alpha/x").await.status(), 200);
        assert_eq!(log.take(), expected);
    }
    // beta's own route: alpha's `a` and beta's `b` are limited to alpha's paths.
    assert_eq!(t.get("/ext/beta/x").await.status(), 200);
    let on_beta = log.take();
    assert_eq!(on_beta[..2], ["pre:alpha.z".to_owned(), "pre:beta.m".to_owned()]);
    assert_eq!(on_beta.len(), 2 * 4 + 1);

    let pre: Vec<(String, String)> = t
        .host()
        .hooks()
        .into_iter()
        .filter(|h| h.point == "pre_request")
        .map(|h| (h.extension, h.id))
        .collect();
    let names =
        |v: &[(&str, &str)]| v.iter().map(|(e, i)| ((*e).to_owned(), (*i).to_owned())).collect::<Vec<_>>();
    assert_eq!(pre, names(&[("beta", "b"), ("alpha", "z"), ("beta", "m"), ("alpha", "a")]));
    t.shutdown().await;
}

#[tokio::test]
async fn an_aborting_pre_request_stops_the_chain_and_the_handler_never_runs() {
    let log = Log::default();
    let calls = Arc::new(AtomicUsize::new(0));
    let (l1, l2, l3, c) = (log.clone(), log.clone(), log.clone(), calls.clone());
    let gate = Scripted::new("gate", move |r| {
        let c = c.clone();
        r.get("/x", move || {
            c.fetch_add(1, Ordering::SeqCst);
            async { "handler ran" }
        });
        let l = l1.clone();
        r.pre_request(Hook::new("deny").priority(1).own_routes(), move |_cx, req: HookRequest| {
            let log = l.clone();
            async move {
                log.push("deny");
                if req.header("x-deny").is_some() {
                    return Err((StatusCode::FORBIDDEN, "denied by hook").into_response());
                }
                Ok(())
            }
        });
        let l = l2.clone();
        r.pre_request(Hook::new("later").priority(2).own_routes(), move |_cx, _req| {
            let log = l.clone();
            async move {
                log.push("later");
                Ok(())
            }
        });
        let l = l3.clone();
        r.post_request(Hook::new("post").own_routes(), move |_cx, _res| {
            let log = l.clone();
            async move {
                log.push("post");
                Ok(())
            }
        });
        r.pre_response(Hook::new("tag").own_routes(), |_cx, res: HookResponse| async move {
            res.set_header(HeaderName::from_static("x-tag"), HeaderValue::from_static("seen"));
            Ok(())
        });
    });
    let t = TestHost::builder().extension(gate).start().await.expect("host starts");

    let res = t.client().get(t.url("/ext/gate/x")).header("x-deny", "1").send().await.expect("sent");
    assert_eq!(res.status(), 403);
    assert_eq!(res.headers()["x-tag"], "seen", "pre_response runs on early answers too");
    // A plain-text answer leaves annex in its JSON error shape, its message kept.
    let body: serde_json::Value = res.json().await.expect("a JSON error");
    assert_eq!(body["error"]["message"], "denied by hook", "{body}");
    assert_eq!(body["error"]["code"], "forbidden", "{body}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the handler must not run");
    assert_eq!(log.take(), ["deny"], "later filters and post_request must not run");

    let res = t.get("/ext/gate/x").await;
    assert_eq!(res.status(), 200);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(log.take(), ["deny", "later", "post"]);
    t.shutdown().await;
}

#[tokio::test]
async fn a_global_hook_of_one_extension_sees_requests_to_another() {
    let log = Log::default();
    let l = log.clone();
    let watcher = Scripted::new("watcher", move |r| {
        let l = l.clone();
        r.pre_request(Hook::new("watch"), move |cx, req: HookRequest| {
            let entry = format!("{} saw {} {}", cx.name(), req.target(), req.uri().path());
            let log = l.clone();
            async move {
                log.push(entry);
                Ok(())
            }
        });
    });
    let shop = Scripted::new("shop", |r| {
        r.get("/items", || async { "items" });
    });
    let t = TestHost::builder()
        .extension(watcher)
        .extension(shop)
        .config(|c| grant(c, "watcher", &["hooks:global"]))
        .start()
        .await
        .expect("host starts");
    assert_eq!(t.get("/ext/shop/items").await.status(), 200);
    assert_eq!(log.take(), ["watcher saw shop /ext/shop/items"]);
    t.shutdown().await;
}

#[tokio::test]
async fn a_panicking_hook_is_caught_counted_and_the_request_still_completes() {
    let errors = Log::default();
    let e = errors.clone();
    let fragile = Scripted::new("fragile", move |r| {
        r.get("/x", || async { "still fine" });
        r.get("/boom", || async {
            if true {
                panic!("handler exploded");
            }
            "unreachable"
        });
        r.pre_request(Hook::new("bad").own_routes(), |_cx, _req| async {
            if true {
                panic!("hook exploded");
            }
            Ok(())
        });
        r.post_response(Hook::new("bad_action").own_routes(), |_cx, _done: Completed| async {
            panic!("action exploded");
        });
        let e = e.clone();
        r.on_error(Hook::new("errors").own_routes(), move |_cx, done: Completed| {
            let e = e.clone();
            async move {
                let kind = done.error.map(|err| err.kind);
                e.push(format!("{} {:?} {}", done.request.route, kind, done.status.as_u16()));
            }
        });
    });
    let t = TestHost::builder().extension(fragile).start().await.expect("host starts");
    for _ in 0..3 {
        let res = t.get("/ext/fragile/x").await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.text().await.expect("body"), "still fine");
    }
    let res = t.get("/ext/fragile/boom").await;
    assert_eq!(res.status(), 500);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "internal_error");

    // Actions run in the background: wait for them, generously.
    for _ in 0..100 {
        if t.host().stats("fragile").expect("stats").hook_panics >= 3 + 4 && !errors.entries().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let stats = t.host().stats("fragile").expect("stats");
    assert_eq!(stats.hook_panics, 4 + 4, "4 pre_request and 4 post_response panics");
    assert_eq!(stats.handler_panics, 1);
    let bad = t.host().hooks().into_iter().find(|h| h.id == "bad").expect("listed");
    assert_eq!((bad.calls, bad.panics), (4, 4));
    assert_eq!(errors.entries(), [format!("/ext/fragile/boom Some({:?}) 500", ErrorKind::Panic)]);
    assert_eq!(t.get("/health").await.status(), 200);
    t.shutdown().await;
}

fn authenticated(name: &'static str) -> Scripted {
    Scripted::new(name, |r| {
        r.authentication(Hook::new("header_user").own_routes(), |_cx, req: HookRequest| async move {
            let user = req.header("x-user").and_then(|v| v.to_str().ok().map(str::to_owned));
            if let Some(user) = user {
                let roles = req
                    .header("x-roles")
                    .and_then(|v| v.to_str().ok().map(str::to_owned))
                    .unwrap_or_default();
                let identity = roles
                    .split(',')
                    .filter(|r| !r.is_empty())
                    .fold(Identity::new(user), |i, r| i.with_role(r));
                req.set_identity(identity);
            }
            Ok(())
        });
        r.authorization(Hook::new("no_mallory").own_routes(), |_cx, req: HookRequest| async move {
            match req.identity() {
                Some(id) if id.id() == "mallory" => Err(StatusCode::FORBIDDEN.into_response()),
                _ => Ok(()),
            }
        });
        r.get("/me", |id: Identity| async move { id.id().to_owned() }).require_identity();
        r.get("/admin", |id: Identity| async move { format!("hello admin {}", id.id()) })
            .require_role("admin");
        r.get("/open", |id: Option<Identity>| async move {
            id.map_or("anonymous".to_owned(), |i| i.id().to_owned())
        });
    })
    .needs("hooks:auth")
}

#[tokio::test]
async fn the_identity_from_authentication_reaches_handlers_and_routes_require_it() {
    let t = TestHost::builder()
        .extension(authenticated("portal"))
        .config(|c| grant(c, "portal", &["hooks:auth"]))
        .start()
        .await
        .expect("host starts");
    let get = |path: &'static str, user: Option<&'static str>, roles: &'static str| {
        let mut req = t.client().get(t.url(path)).header("x-roles", roles);
        if let Some(user) = user {
            req = req.header("x-user", user);
        }
        async move { req.send().await.expect("sent") }
    };
    let res = get("/ext/portal/me", None, "").await;
    assert_eq!(res.status(), 401);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert_eq!(get("/ext/portal/me", Some("alice"), "").await.text().await.expect("body"), "alice");
    let res = get("/ext/portal/admin", Some("alice"), "").await;
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.expect("json");
    assert_eq!(body["error"]["code"], "forbidden");
    let res = get("/ext/portal/admin", Some("alice"), "staff,admin").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.text().await.expect("body"), "hello admin alice");
    assert_eq!(get("/ext/portal/open", None, "").await.text().await.expect("body"), "anonymous");
    assert_eq!(get("/ext/portal/open", Some("mallory"), "").await.status(), 403, "authorization denies");
    t.shutdown().await;
}

#[tokio::test]
async fn hooks_of_an_extension_that_is_not_running_are_skipped() {
    // `intruder` wants a global hook but is not granted hooks:global: it does not enable, and
    // its hook (which would answer 418 everywhere) never runs.
    let intruder = Scripted::new("intruder", |r| {
        r.pre_request(Hook::new("teapot"), |_cx, _req| async {
            Err(StatusCode::IM_A_TEAPOT.into_response())
        });
    });
    let shop = Scripted::new("shop", |r| {
        r.get("/items", || async { "items" });
    });
    let t = TestHost::builder().extension(intruder).extension(shop).start().await.expect("host starts");
    match t.host().state("intruder") {
        Some(ExtensionState::Failed(reason)) => {
            assert!(reason.contains("`hooks:global`"), "{reason}");
            assert!(reason.contains("[extensions.intruder]"), "{reason}");
        }
        other => panic!("expected intruder to fail, got {other:?}"),
    }
    assert_eq!(t.get("/ext/shop/items").await.status(), 200);
    t.shutdown().await;
}
