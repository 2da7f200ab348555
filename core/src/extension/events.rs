//! The event bus: host events (`extension.enabled`, …) and extension events (`<name>.<event>`),
//! delivered asynchronously to subscribers that registered a pattern.
//!
//! Each subscription has its own bounded queue ([`QUEUE_CAPACITY`] events) drained by its own
//! task. Publishing never waits: when a subscriber's queue is full the new event is dropped for
//! that subscriber only, counted, and logged (first drop, then every 1000th). A slow subscriber
//! therefore costs at most its queue's memory and never slows the publisher or the others.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use futures::future::BoxFuture;
use serde::Serialize;
use tokio::sync::mpsc;

use crate::extension::gate::Slot;
use crate::extension::panic;
use crate::observe::stats::Counters;

/// Events a subscriber's queue holds before new ones are dropped for it.
pub const QUEUE_CAPACITY: usize = 1024;

/// One event.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Event {
    /// Unique id.
    pub id: String,
    /// `extension.enabled`, `<ext>.<event>`, …
    pub name: String,
    /// `host` or the publishing extension's name.
    pub source: String,
    /// RFC 3339 time of publication.
    pub occurred_at: String,
    /// The event's data.
    pub data: serde_json::Value,
}

/// The prefix of the id of an event that comes from the outbox: `outbox-<row id>`.
const OUTBOX_ID_PREFIX: &str = "outbox-";

impl Event {
    /// The outbox row this event was read from, for the host's state-change events
    /// (`extension.enabled`, …); `None` for an event published straight on the bus.
    pub fn outbox_id(&self) -> Option<i64> {
        self.id.strip_prefix(OUTBOX_ID_PREFIX)?.parse().ok()
    }

    /// The event of outbox row `id`: the same id, time and data on every replica and every
    /// redelivery.
    pub(crate) fn from_outbox(id: i64, name: String, occurred_at: String, data: serde_json::Value) -> Self {
        Self { id: format!("{OUTBOX_ID_PREFIX}{id}"), name, source: "host".to_owned(), occurred_at, data }
    }

    pub(crate) fn new(name: String, source: &str, data: serde_json::Value) -> Self {
        Self {
            id: uuid::Uuid::new_v4().simple().to_string(),
            name,
            source: source.to_owned(),
            occurred_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
            data,
        }
    }
}

/// Delivers one event to a subscriber (the runtime binds the subscriber's context in).
pub(crate) type Deliver = Arc<dyn Fn(Event) -> BoxFuture<'static, ()> + Send + Sync>;

/// Delivers one outbox event to a durable subscriber and says whether it was handled.
pub(crate) type DeliverDurable = Arc<dyn Fn(Event) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One durable subscription (`Registrar::subscribe_durable`): the host's outbox relay delivers
/// to it from a cursor of its own.
pub(crate) struct DurableSubscription {
    pub(crate) extension: String,
    pub(crate) pattern: String,
    pub(crate) gate: Arc<Slot>,
    pub(crate) deliver: DeliverDurable,
}

impl DurableSubscription {
    /// The name of its cursor in `annex.event_cursors`.
    pub(crate) fn consumer(&self) -> String {
        format!("{}/{}", self.extension, self.pattern)
    }
}

/// One subscription, as the runtime wires it: whose it is, its pattern, the subscriber's gate and
/// counters, and the bound handler.
pub(crate) struct Subscription {
    pub(crate) extension: String,
    pub(crate) pattern: String,
    pub(crate) gate: Arc<Slot>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) deliver: Deliver,
}

/// `*` matches everything; a `*` segment matches one segment, or every remaining segment when it
/// is last (`extension.*` matches `extension.enabled`); other segments match exactly.
pub fn pattern_matches(pattern: &str, name: &str) -> bool {
    let mut pat = pattern.split('.').peekable();
    let mut segs = name.split('.');
    while let Some(p) = pat.next() {
        let last = pat.peek().is_none();
        match (p, segs.next()) {
            ("*", Some(_)) if last => return true,
            ("*", Some(_)) => {}
            (p, Some(s)) if p == s => {}
            _ => return false,
        }
    }
    segs.next().is_none()
}

struct Subscriber {
    extension: String,
    pattern: String,
    /// The subscriber's gate: an event published while it is closed is not queued for it.
    gate: Arc<Slot>,
    tx: mpsc::Sender<Event>,
    dropped: AtomicU64,
}

/// The bus. One per host.
#[derive(Default)]
pub(crate) struct EventBus {
    subscribers: RwLock<Vec<Subscriber>>,
    durable: RwLock<Vec<Arc<DurableSubscription>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let subs = self.subscribers.read().map(|s| s.len()).unwrap_or(0);
        f.debug_struct("EventBus").field("subscribers", &subs).finish()
    }
}

impl EventBus {
    /// Adds a subscription and starts the task that drains its queue. Events arrive only while
    /// the subscriber's gate is open (it is running); a panic in the handler is caught, counted
    /// and logged, and the next event is delivered as usual.
    pub(crate) fn subscribe(&self, subscriber: Subscription) {
        let (tx, mut rx) = mpsc::channel::<Event>(QUEUE_CAPACITY);
        let Subscription { extension, pattern, gate, counters, deliver } = subscriber;
        let queue_gate = gate.clone();
        let name_of_subscriber = extension.clone();
        let task = async move {
            while let Some(event) = rx.recv().await {
                if !gate.is_open() {
                    continue;
                }
                let name = event.name.clone();
                if let Err(message) = panic::catch(deliver(event)).await {
                    Counters::bump(&counters.hook_panics);
                    tracing::error!(extension = %name_of_subscriber, event = %name, panic = %message, "event handler panicked");
                }
            }
        };
        tokio::spawn(task);
        let mut subs = self.subscribers.write().unwrap_or_else(|p| p.into_inner());
        subs.push(Subscriber { extension, pattern, gate: queue_gate, tx, dropped: AtomicU64::new(0) });
    }

    /// Delivers `event` to every matching subscriber without waiting.
    pub(crate) fn publish(&self, event: Event) {
        let subs = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        // The gate is checked when publishing (an event from before the subscriber ran is not
        // its business, however late its queue is drained) and again when delivering (it may
        // have stopped since).
        for s in subs.iter().filter(|s| s.gate.is_open() && pattern_matches(&s.pattern, &event.name)) {
            if s.tx.try_send(event.clone()).is_err() {
                let n = s.dropped.fetch_add(1, Ordering::Relaxed);
                if n % 1000 == 0 {
                    tracing::warn!(subscriber = %s.extension, pattern = %s.pattern, event = %event.name, dropped = n + 1,
                        "subscriber queue full; event dropped for this subscriber");
                }
            }
        }
    }

    /// Adds a durable subscription (delivered by the outbox relay, not by [`EventBus::publish`]).
    pub(crate) fn subscribe_durable(&self, subscription: DurableSubscription) {
        self.durable.write().unwrap_or_else(|p| p.into_inner()).push(Arc::new(subscription));
    }

    /// The durable subscriptions.
    pub(crate) fn durable(&self) -> Vec<Arc<DurableSubscription>> {
        self.durable.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Drops every subscription; their tasks finish once their queues are drained.
    pub(crate) fn close(&self) {
        self.subscribers.write().unwrap_or_else(|p| p.into_inner()).clear();
        self.durable.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    /// Events dropped so far for each subscriber, by extension name and pattern.
    pub(crate) fn dropped(&self) -> Vec<(String, String, u64)> {
        let subs = self.subscribers.read().unwrap_or_else(|p| p.into_inner());
        subs.iter()
            .map(|s| (s.extension.clone(), s.pattern.clone(), s.dropped.load(Ordering::Relaxed)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::pattern_matches;

    #[test]
    fn patterns_match_by_segment() {
        assert!(pattern_matches("*", "extension.enabled"));
        assert!(pattern_matches("extension.*", "extension.enabled"));
        assert!(pattern_matches("extension.*", "extension.config.changed"));
        assert!(!pattern_matches("extension.*", "extension"));
        assert!(!pattern_matches("extension.*", "extensions.enabled"));
        assert!(pattern_matches("*.created", "shop.created"));
        assert!(!pattern_matches("*.created", "shop.deleted"));
        assert!(pattern_matches("shop.created", "shop.created"));
        assert!(!pattern_matches("shop.created", "shop.created.late"));
    }
}
