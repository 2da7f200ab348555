//! Per-extension request rate limits (governor's GCRA), from `[extensions.<name>] rate_limit`.
//!
//! `per_second` is the sustained rate, `burst` the bucket size. With `per_client = true` each
//! caller has its own bucket, keyed by its authenticated [`Identity`](crate::Identity), else its
//! IP address. Idle keys are pruned periodically so the keyed state cannot grow without bound.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

use crate::config::RateLimitConfig;
use crate::limits::error::LimitsError;

/// How often idle per-client keys are pruned.
pub(crate) const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

const LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

type Direct = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;
type Keyed =
    RateLimiter<ClientKey, DefaultKeyedStateStore<ClientKey>, DefaultClock, StateInformationMiddleware>;

/// Whose bucket a request draws from when limits are per client.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum ClientKey {
    Identity(Arc<str>),
    Ip(IpAddr),
    /// No identity and no peer address (an in-process call, as in benchmarks).
    Unknown,
}

#[derive(Debug)]
enum Limiter {
    Shared(Direct),
    PerClient(Keyed),
}

/// One extension's limiter.
#[derive(Debug)]
pub(crate) struct RateLimit {
    pub(crate) config: RateLimitConfig,
    limiter: Limiter,
    limit: HeaderValue,
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    Allowed { remaining: u32 },
    Limited { retry_after: Duration },
}

impl RateLimit {
    pub(crate) fn new(extension: &str, config: RateLimitConfig) -> Result<Self, LimitsError> {
        let nonzero = |value: u32, key: &'static str| {
            NonZeroU32::new(value).ok_or_else(|| LimitsError {
                extension: extension.to_owned(),
                key,
                reason: "must be at least 1 (remove rate_limit to lift the limit)".into(),
            })
        };
        let quota = Quota::per_second(nonzero(config.per_second, "rate_limit.per_second")?)
            .allow_burst(nonzero(config.burst, "rate_limit.burst")?);
        let limiter = if config.per_client {
            Limiter::PerClient(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
        } else {
            Limiter::Shared(RateLimiter::direct(quota).with_middleware::<StateInformationMiddleware>())
        };
        Ok(Self { config, limiter, limit: HeaderValue::from(config.burst) })
    }

    pub(crate) fn per_client(&self) -> bool {
        self.config.per_client
    }

    /// Takes one request from the bucket (`key` is ignored unless per client).
    pub(crate) fn check(&self, key: &ClientKey) -> Decision {
        let (outcome, clock) = match &self.limiter {
            Limiter::Shared(l) => (l.check(), l.clock()),
            Limiter::PerClient(l) => (l.check_key(key), l.clock()),
        };
        match outcome {
            Ok(snapshot) => Decision::Allowed { remaining: snapshot.remaining_burst_capacity() },
            Err(not_until) => Decision::Limited { retry_after: not_until.wait_time_from(clock.now()) },
        }
    }

    /// `X-RateLimit-Limit` and `X-RateLimit-Remaining` on an allowed response.
    pub(crate) fn annotate(&self, headers: &mut HeaderMap, remaining: u32) {
        headers.insert(LIMIT, self.limit.clone());
        headers.insert(REMAINING, HeaderValue::from(remaining));
    }

    /// `retry_after` in whole seconds, rounded up, at least 1 (what `Retry-After` carries).
    pub(crate) fn retry_secs(retry_after: Duration) -> u64 {
        (retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0)).max(1)
    }

    /// `Retry-After`, `X-RateLimit-Limit` and a zero `X-RateLimit-Remaining` on a refused request.
    pub(crate) fn annotate_refusal(&self, headers: &mut HeaderMap, retry_secs: u64) {
        headers.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(retry_secs));
        headers.insert(LIMIT, self.limit.clone());
        headers.insert(REMAINING, HeaderValue::from_static("0"));
    }

    /// Drops per-client state that is back to full (indistinguishable from a fresh key).
    pub(crate) fn prune(&self) {
        if let Limiter::PerClient(l) = &self.limiter {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }

    /// Per-client keys held.
    pub(crate) fn keys(&self) -> usize {
        match &self.limiter {
            Limiter::PerClient(l) => l.len(),
            Limiter::Shared(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32, per_client: bool) -> RateLimit {
        RateLimit::new("t", RateLimitConfig { per_second, burst, per_client }).expect("valid")
    }

    #[test]
    fn a_burst_is_allowed_then_limited_with_a_retry_time() {
        let l = limit(1, 3, false);
        let key = ClientKey::Unknown;
        assert_eq!(l.check(&key), Decision::Allowed { remaining: 2 });
        assert_eq!(l.check(&key), Decision::Allowed { remaining: 1 });
        assert_eq!(l.check(&key), Decision::Allowed { remaining: 0 });
        match l.check(&key) {
            Decision::Limited { retry_after } => assert!(retry_after <= Duration::from_secs(1)),
            other => panic!("expected a limit, got {other:?}"),
        }
    }

    #[test]
    fn zero_rates_are_refused_with_the_key_named() {
        let err = RateLimit::new("shop", RateLimitConfig { per_second: 0, burst: 1, per_client: false })
            .expect_err("zero");
        assert!(err.to_string().contains("extensions.shop.rate_limit.per_second"), "{err}");
    }

    #[test]
    fn idle_client_keys_are_pruned() {
        let l = limit(1000, 1, true);
        for i in 0..100u8 {
            let _ = l.check(&ClientKey::Ip(IpAddr::from([10, 0, 0, i])));
        }
        assert_eq!(l.keys(), 100);
        std::thread::sleep(Duration::from_millis(20));
        l.prune();
        assert_eq!(l.keys(), 0);
    }
}
