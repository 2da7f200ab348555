//! The official `webhooks` extension: sends event-bus events (host events and other extensions'
//! events) to HTTP endpoints, signed with HMAC-SHA256, from a durable queue in its own schema,
//! with retries, exponential backoff and a delivery history.
//!
//! - `GET|POST /ext/webhooks/subscriptions`, `GET|PUT|PATCH|DELETE /ext/webhooks/subscriptions/{id}`
//! - `GET /ext/webhooks/deliveries?status=&subscription=&limit=`, `GET /ext/webhooks/deliveries/{id}`,
//!   `POST /ext/webhooks/deliveries/{id}/redeliver`
//!
//! Every route requires role `admin` (the admin bearer token, or an identity an authentication
//! hook gave that role). It needs permissions `database`, `events:subscribe` and `http:outbound`.
//! See the crate's README for the payload, signature verification, retries and config.
#![warn(missing_docs)]

mod deliveries;
mod queue;
mod settings;
mod signature;
mod subscriptions;
mod target;
mod worker;

use std::sync::Arc;
use std::time::Duration;

use annex_core::{Context, Event, Extension, ExtensionResult, Metadata, Migrations, Registrar, permission};
use axum::extract::Path;

pub use signature::{DELIVERY_HEADER, EVENT_HEADER, SIGNATURE_HEADER, signature};

use worker::Shared;

/// The webhooks extension.
#[derive(Debug, Default)]
pub struct Webhooks {
    shared: Arc<Shared>,
}

#[annex_core::async_trait]
impl Extension for Webhooks {
    fn metadata(&self) -> Metadata {
        Metadata::new("webhooks", env!("CARGO_PKG_VERSION"))
            .description("Signed, retried webhook deliveries of event-bus events")
            .permission(permission::DATABASE)
            .permission(permission::EVENTS_SUBSCRIBE)
            .permission(permission::HTTP_OUTBOUND)
    }

    fn config_schema(&self) -> Option<serde_json::Value> {
        Some(settings::schema())
    }

    fn migrations(&self) -> Migrations {
        annex_core::migrations!("migrations")
    }

    fn register(&self, r: &mut Registrar) {
        r.get("/subscriptions", subscriptions::list).require_role("admin");
        r.post("/subscriptions", subscriptions::create).require_role("admin");
        r.get("/subscriptions/{id}", subscriptions::get).require_role("admin");
        r.put("/subscriptions/{id}", subscriptions::update).require_role("admin");
        r.patch("/subscriptions/{id}", subscriptions::update).require_role("admin");
        r.delete("/subscriptions/{id}", subscriptions::delete).require_role("admin");
        r.get("/deliveries", deliveries::list).require_role("admin");
        r.get("/deliveries/{id}", deliveries::get).require_role("admin");
        let shared = self.shared.clone();
        r.post("/deliveries/{id}/redeliver", move |cx: Context, id: Path<String>| {
            deliveries::redeliver(shared.clone(), cx, id)
        })
        .require_role("admin");

        // The host's state-change events come from the outbox, durably and once across
        // replicas; the bus brings everything else (extensions' events, `extension.unhealthy`).
        let shared = self.shared.clone();
        r.subscribe("*", move |cx: Context, event: Event| {
            let shared = shared.clone();
            async move {
                if event.outbox_id().is_none()
                    && let Err(e) = on_event(&shared, &cx, &event).await
                {
                    tracing::error!(error = %e, event = %event.name, "webhooks: event not enqueued");
                }
            }
        });
        let shared = self.shared.clone();
        r.subscribe_durable("*", move |cx: Context, event: Event| {
            let shared = shared.clone();
            async move { on_event(&shared, &cx, &event).await }
        });
    }

    async fn start(&self, cx: &Context) -> ExtensionResult {
        self.shared.start(cx)
    }

    async fn stop(&self, cx: &Context) -> ExtensionResult {
        self.shared.stop(cx, Duration::from_secs(3)).await;
        Ok(())
    }
}

/// Enqueues the event for every matching subscription (idempotently: see
/// [`queue::delivery_id`]) and wakes the local worker.
async fn on_event(shared: &Shared, cx: &Context, event: &Event) -> Result<(), String> {
    let db = cx.db().map_err(|e| e.to_string())?;
    match queue::enqueue(db, event).await.map_err(|e| e.to_string())? {
        0 => {}
        _ => shared.wake.notify_one(),
    }
    Ok(())
}

annex_core::register_extension!(Webhooks);
