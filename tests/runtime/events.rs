//! The event bus end to end: patterns, host and extension events, a panicking subscriber, a
//! full queue.

use std::sync::Arc;
use std::time::Duration;

use crate::scripted::{Scripted, grant};
use annex_core::testkit::TestHost;
use annex_core::{Event, extension::QUEUE_CAPACITY};
use tokio::sync::{Notify, mpsc};

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("an event within 5 s").expect("open")
}

#[tokio::test]
async fn subscribers_receive_host_and_extension_events_matching_their_patterns() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = Scripted::new("listener", move |r| {
        for pattern in ["extension.*", "shop.*"] {
            let tx = tx.clone();
            r.subscribe(pattern, move |_cx, event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send((pattern, event));
                }
            });
        }
    })
    .needs("events:subscribe");
    let shop = Scripted::new("shop", |r| {
        r.post("/orders", |cx: annex_core::Context| async move {
            cx.publish("created", serde_json::json!({ "order": 7 }))
                .map(|()| "created")
                .map_err(|e| e.to_string())
        });
    })
    .needs("events:publish");
    let t = TestHost::builder()
        .extension(listener)
        .extension(shop)
        .config(|c| {
            grant(c, "listener", &["events:subscribe"]);
            grant(c, "shop", &["events:publish"]);
        })
        .start()
        .await
        .expect("host starts");

    t.host().publish("extension.enabled", serde_json::json!({ "extension": "shop" }));
    t.host().publish("unrelated.thing", serde_json::json!({}));
    let res = t.client().post(t.url("/ext/shop/orders")).send().await.expect("sent");
    assert_eq!(res.status(), 200);
    // The sentinel: each subscription has its own queue, delivered in order, so had
    // `unrelated.thing` been queued for either pattern, it would arrive before `shop.created`
    // (published after it, on the `shop.*` queue) or before this (on the `extension.*` queue).
    t.host().publish("extension.sentinel", serde_json::json!({}));

    // The two queues are drained by tasks of their own: compare the order per pattern.
    let mut seen: Vec<(&str, String, String)> = Vec::new();
    let mut order = None;
    for _ in 0..3 {
        let (pattern, event) = next(&mut rx).await;
        if event.name == "shop.created" {
            order = Some(event.data["order"].clone());
        }
        seen.push((pattern, event.name, event.source));
    }
    let on = |pattern: &str| -> Vec<(String, String)> {
        seen.iter().filter(|s| s.0 == pattern).map(|s| (s.1.clone(), s.2.clone())).collect()
    };
    let pair = |name: &str, source: &str| (name.to_owned(), source.to_owned());
    assert_eq!(
        on("extension.*"),
        [pair("extension.enabled", "host"), pair("extension.sentinel", "host")],
        "`unrelated.thing` matches no pattern: {seen:?}"
    );
    assert_eq!(on("shop.*"), [pair("shop.created", "shop")], "{seen:?}");
    assert_eq!(order, Some(serde_json::json!(7)));
    t.shutdown().await;
}

#[tokio::test]
async fn a_panicking_subscriber_is_counted_and_still_gets_the_next_event() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let fragile = Scripted::new("fragile", move |r| {
        let tx = tx.clone();
        r.subscribe("*", move |_cx, event: Event| {
            let tx = tx.clone();
            async move {
                if event.data["explode"] == true {
                    panic!("subscriber exploded");
                }
                let _ = tx.send(event);
            }
        });
    })
    .needs("events:subscribe");
    let t = TestHost::builder()
        .extension(fragile)
        .config(|c| grant(c, "fragile", &["events:subscribe"]))
        .start()
        .await
        .expect("host starts");
    t.host().publish("test.one", serde_json::json!({ "explode": true }));
    t.host().publish("test.two", serde_json::json!({ "explode": false }));
    assert_eq!(next(&mut rx).await.name, "test.two");
    assert_eq!(t.host().stats("fragile").expect("stats").hook_panics, 1);
    t.shutdown().await;
}

#[tokio::test]
async fn a_full_subscriber_queue_drops_new_events_for_that_subscriber_only() {
    let release = Arc::new(Notify::new());
    let (started_tx, mut started) = mpsc::unbounded_channel::<()>();
    let (slow_tx, mut slow_rx) = mpsc::unbounded_channel::<Event>();
    let (fast_tx, mut fast_rx) = mpsc::unbounded_channel::<Event>();
    let r2 = release.clone();
    let slow = Scripted::new("slow", move |r| {
        let (release, started, seen) = (r2.clone(), started_tx.clone(), slow_tx.clone());
        r.subscribe("load.*", move |_cx, event: Event| {
            let (release, started, seen) = (release.clone(), started.clone(), seen.clone());
            async move {
                if event.name == "load.first" {
                    let _ = started.send(());
                    release.notified().await;
                }
                let _ = seen.send(event);
            }
        });
    })
    .needs("events:subscribe");
    let fast = Scripted::new("fast", move |r| {
        let seen = fast_tx.clone();
        r.subscribe("load.*", move |_cx, event: Event| {
            let seen = seen.clone();
            async move {
                let _ = seen.send(event);
            }
        });
    })
    .needs("events:subscribe");
    let t = TestHost::builder()
        .extension(slow)
        .extension(fast)
        .config(|c| {
            grant(c, "slow", &["events:subscribe"]);
            grant(c, "fast", &["events:subscribe"]);
        })
        .start()
        .await
        .expect("host starts");

    // The slow subscriber takes the first event and blocks; its queue then fills up.
    t.host().publish("load.first", serde_json::json!({}));
    tokio::time::timeout(Duration::from_secs(5), started.recv()).await.expect("started").expect("open");
    // Published in batches that the fast subscriber keeps up with, so only the slow one's
    // queue overflows.
    let overflow = 10;
    let total = QUEUE_CAPACITY + overflow;
    next(&mut fast_rx).await;
    let mut fast_seen = 0;
    for i in 0..total {
        t.host().publish("load.more", serde_json::json!({ "i": i }));
        if (i + 1) % 100 == 0 || i + 1 == total {
            while fast_seen < i + 1 {
                next(&mut fast_rx).await;
                fast_seen += 1;
            }
        }
    }
    let dropped = |ext: &str| {
        t.host()
            .events_dropped()
            .into_iter()
            .find(|(e, _, _)| e == ext)
            .map(|(_, _, n)| n)
            .expect("subscribed")
    };
    assert_eq!(dropped("slow"), overflow as u64);

    assert_eq!(dropped("fast"), 0, "the fast subscriber got everything");

    release.notify_one();
    let mut slow_seen = 0;
    while slow_seen < 1 + QUEUE_CAPACITY {
        next(&mut slow_rx).await;
        slow_seen += 1;
    }
    // The sentinel, published once the slow queue is drained: had more than a full queue been
    // kept, the extra events would arrive before it.
    t.host().publish("load.sentinel", serde_json::json!({}));
    let after = next(&mut slow_rx).await;
    assert_eq!(
        after.name, "load.sentinel",
        "exactly the first event and a full queue arrived: then {after:?}"
    );
    assert_eq!(dropped("slow"), overflow as u64, "the sentinel found room");
    t.shutdown().await;
}

#[tokio::test]
async fn an_event_published_while_the_subscriber_is_disabled_never_reaches_it() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let listener = Scripted::new("listener", move |r| {
        let tx = tx.clone();
        r.subscribe("news.*", move |_cx, event: Event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.name);
            }
        });
    })
    .needs("events:subscribe");
    let t = TestHost::builder()
        .extension(listener)
        .config(|c| grant(c, "listener", &["events:subscribe"]))
        .start()
        .await
        .expect("host starts");
    t.host().disable("listener", false).await.expect("disabled");
    t.host().publish("news.missed", serde_json::json!({}));
    t.host().enable("listener").await.expect("enabled");
    // The sentinel, published once it runs again, must be the first thing it gets.
    t.host().publish("news.sentinel", serde_json::json!({}));
    assert_eq!(next(&mut rx).await, "news.sentinel");
    t.shutdown().await;
}
