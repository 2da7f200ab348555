//! The request path of one extension route, from the gate to the post-response actions.
//! `docs/request-path.md` describes the order; this file is that order.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, OriginalUri, Request};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::MethodRouter;
use axum::routing::Route;

use crate::config::admin_token::AdminToken;
use crate::extension::context::Context;
use crate::extension::error::ApiError;
use crate::extension::gate::Slot;
use crate::extension::hooks::middleware::{HandlerPanicked, MiddlewareEntry, MiddlewareSet, Next};
use crate::extension::hooks::{Access, Completed, ErrorKind, HookPoint, Identity, RequestError, RequestInfo};
use crate::extension::site::split_site_path;
use crate::http::hook_chain::{
    Chains, FailMode, Head, Registry, run_request_filters, run_response_filters, spawn_actions,
};
use crate::limits::rate_limit::{ClientKey, Decision, RateLimit};
use crate::observe::metrics::{ErrorType, ExtensionMetrics, RequestMeter};
use crate::observe::request_id::RequestId;
use crate::observe::stats::Counters;
use crate::runtime::lifecycle::Managed;
use crate::sites::gates::{SiteGate, SiteGates};

/// What every route of one extension shares, resolved once when the router is built.
#[derive(Debug)]
pub(crate) struct ExtensionPath {
    name: Arc<str>,
    slot: Arc<Slot>,
    cx: Context,
    chains: Chains,
    middleware: Arc<[Arc<MiddlewareEntry>]>,
    /// Pre-resolved Prometheus handles.
    metrics: Arc<ExtensionMetrics>,
    /// The admin API token: a request bearing it is identity `admin` with role `admin`.
    admin_token: AdminToken,
    /// Served only under `/sites/<slug>/ext/<name>/…`.
    site_scoped: bool,
    /// Which sites run it, with which config.
    sites: Arc<SiteGates>,
    /// Its slot in `sites` (`usize::MAX`: none, so never active at a site).
    site_slot: usize,
}

impl ExtensionPath {
    pub(crate) fn new(
        m: &Managed,
        hooks: &Registry,
        middleware: &MiddlewareSet,
        admin_token: AdminToken,
        sites: &Arc<SiteGates>,
    ) -> Self {
        let name = m.name();
        Self {
            site_scoped: m.site_scoped(),
            site_slot: sites.slot_of(name).unwrap_or(usize::MAX),
            sites: sites.clone(),
            name: name.into(),
            slot: m.slot().clone(),
            cx: m.cx().clone(),
            chains: hooks.chains_for(name),
            middleware: middleware.for_extension(name),
            metrics: m.metrics().clone(),
            admin_token,
        }
    }
}

#[derive(Debug)]
struct RouteState {
    ext: Arc<ExtensionPath>,
    route: Arc<str>,
    /// The same route under a site, `/sites/{site}/ext/<name>/…`: the metric label and the
    /// hooks' route of site requests, bounded whatever the slug.
    site_route: Arc<str>,
    access: Access,
}

/// Wraps one route's handler in the request path.
pub(crate) fn wrap(
    ext: &Arc<ExtensionPath>,
    path: &str,
    access: &Access,
    handler: MethodRouter,
) -> MethodRouter {
    let state = Arc::new(RouteState {
        ext: ext.clone(),
        route: format!("/ext/{}{path}", ext.name).into(),
        site_route: site_route(&ext.name, path).into(),
        access: access.clone(),
    });
    handler
        .route_layer(tower::layer::layer_fn(move |handler: Route| RunRoute { state: state.clone(), handler }))
}

/// One route's request path around its handler: a service of ours rather than an axum
/// `from_fn` layer (which clones and boxes the inner service once more per request).
#[derive(Clone)]
struct RunRoute {
    state: Arc<RouteState>,
    handler: Route,
}

impl tower::Service<Request> for RunRoute {
    type Response = Response;
    type Error = std::convert::Infallible;
    type Future = futures::future::BoxFuture<'static, Result<Response, Self::Error>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: Request) -> Self::Future {
        let (state, handler) = (self.state.clone(), self.handler.clone());
        Box::pin(run_route(state, req, handler))
    }
}

async fn run_route(
    rs: Arc<RouteState>,
    req: Request,
    handler: Route,
) -> Result<Response, std::convert::Infallible> {
    Ok(run(rs, req, handler).await)
}

/// The template of extension `name`'s route `path` under every site.
pub(crate) fn site_route(name: &str, path: &str) -> String {
    format!("/sites/{{site}}/ext/{name}{path}")
}

/// What the inner part of the path learned, for the outer part.
#[derive(Default)]
struct Seen {
    identity: Option<Identity>,
    info: Option<Arc<RequestInfo>>,
    handler_ran: bool,
}

/// What response filters and actions learn about the request head, taken only when some hook
/// needs it (headers are reference-counted, so this copies no bytes).
struct Observed {
    method: Method,
    user_agent: Option<HeaderValue>,
    referer: Option<HeaderValue>,
}

fn info(rs: &RouteState, seen: &Observed, uri: &Uri, identity: Option<Identity>) -> Arc<RequestInfo> {
    let route = if split_site_path(uri.path()).is_some() { &rs.site_route } else { &rs.route };
    Arc::new(RequestInfo {
        method: seen.method.clone(),
        uri: uri.clone(),
        extension: rs.ext.name.clone(),
        route: route.clone(),
        request_id: RequestId::current(),
        identity,
        user_agent: seen.user_agent.clone(),
        referer: seen.referer.clone(),
    })
}

fn content_length(req: &Request) -> Option<u64> {
    req.headers().get(header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

/// Why the request path refused a request before (or instead of) the handler's answer.
enum Refusal<'a> {
    /// The gate is closed: the extension is not running.
    Closed,
    /// A site-scoped extension was asked for outside a site.
    SiteOnly,
    /// No site has this slug.
    UnknownSite(&'a str),
    /// The site is suspended.
    SiteSuspended(&'a str),
    /// The extension is not active at this site.
    NotActiveAt(&'a str),
    /// `quotas.max_concurrent` requests are in flight.
    Busy,
    /// The body is larger than `quotas.max_body_bytes`.
    TooLarge(u64),
    /// The inner path did not finish within `quotas.timeout_ms`.
    TimedOut(Duration),
    /// The rate limit's bucket is empty.
    RateLimited(&'a RateLimit, Duration),
    /// The extension spent its CPU budget (`quotas.cpu_ms_per_s`); under it again after this.
    CpuQuota(u32, Duration),
    /// The extension holds more live bytes than `quotas.max_memory_bytes`: (live, limit).
    MemoryQuota(u64, u64),
}

/// The one place a refusal becomes a response: it is counted once (the extension's counter and
/// `extension_errors_total`), and answered in the JSON error shape.
fn refuse(ext: &ExtensionPath, why: Refusal<'_>) -> Response {
    let counters = ext.cx.counters();
    let name = &ext.name;
    match why {
        Refusal::Closed => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "extension_disabled",
            format!("extension `{name}` is not serving ({})", ext.slot.state()),
        )
        .into_response(),
        Refusal::SiteOnly => ApiError::new(
            StatusCode::NOT_FOUND,
            "site_scoped",
            format!(
                "extension `{name}` serves sites only: use /sites/<slug>/ext/{name}/… at a site where it is active"
            ),
        )
        .into_response(),
        Refusal::UnknownSite(slug) => ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_site",
            format!("no site has the slug `{slug}`; GET /api/v1/sites lists them"),
        )
        .into_response(),
        Refusal::SiteSuspended(slug) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "site_suspended",
            format!("site `{slug}` is suspended: its extensions do not serve until an operator resumes it"),
        )
        .into_response(),
        Refusal::NotActiveAt(slug) => ApiError::new(
            StatusCode::NOT_FOUND,
            "extension_not_active",
            format!(
                "extension `{name}` is not active at site `{slug}`; activate it there with POST /api/v1/sites/{slug}/extensions/{name}/activate (or `annex sites activate {slug} {name}`)"
            ),
        )
        .into_response(),
        Refusal::Busy => {
            Counters::bump(&counters.quota_rejections);
            ext.metrics.error(ErrorType::QuotaExceeded);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "quota_exceeded",
                format!(
                    "extension `{name}` is serving as many requests as its quota allows (quotas.max_concurrent); retry shortly"
                ),
            )
            .into_response()
        }
        Refusal::TooLarge(max) => {
            Counters::bump(&counters.quota_rejections);
            ext.metrics.error(ErrorType::QuotaExceeded);
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("extension `{name}` accepts request bodies of at most {max} bytes"),
            )
            .into_response()
        }
        Refusal::TimedOut(limit) => {
            Counters::bump(&counters.timeouts);
            ext.metrics.error(ErrorType::Timeout);
            ApiError::new(StatusCode::GATEWAY_TIMEOUT, "timeout", timeout_message(name, limit))
                .into_response()
        }
        Refusal::CpuQuota(ms_per_s, retry_after) => {
            Counters::bump(&counters.quota_rejections);
            ext.metrics.error(ErrorType::CpuQuota);
            ext.cx.limits().cpu.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let secs = RateLimit::retry_secs(retry_after);
            let message = format!(
                "extension `{name}` used its CPU budget (quotas.cpu_ms_per_s = {ms_per_s} ms per second); retry in {secs} s"
            );
            let mut res =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "cpu_quota_exceeded", message).into_response();
            res.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
            res
        }
        Refusal::MemoryQuota(live, max) => {
            Counters::bump(&counters.quota_rejections);
            ext.metrics.error(ErrorType::MemoryQuota);
            ext.cx.limits().memory.refused.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "memory_quota_exceeded",
                format!(
                    "extension `{name}` holds {live} bytes, more than its quota (quotas.max_memory_bytes = {max}); it serves again once it frees memory"
                ),
            )
            .into_response()
        }
        Refusal::RateLimited(rate, retry_after) => {
            Counters::bump(&counters.rate_limited);
            ext.metrics.error(ErrorType::RateLimited);
            let secs = RateLimit::retry_secs(retry_after);
            let message = format!(
                "extension `{name}` allows {} requests per second (burst {}); retry in {secs} s",
                rate.config.per_second, rate.config.burst
            );
            let mut res =
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message).into_response();
            rate.annotate_refusal(res.headers_mut(), secs);
            res
        }
    }
}

/// A refusal before the request entered the path, counted.
fn refused(ext: &ExtensionPath, why: Refusal<'_>, meter: RequestMeter<'_>) -> Response {
    let response = refuse(ext, why);
    meter.finish(response.status(), false);
    response
}

fn timeout_message(name: &str, limit: Duration) -> String {
    format!("extension `{name}` did not answer within {} ms (quotas.timeout_ms)", limit.as_millis())
}

async fn run(rs: Arc<RouteState>, mut req: Request, next: Route) -> Response {
    let ext = &*rs.ext;
    // The site-path router rewrote `/sites/<slug>/ext/<name>/…` to `/ext/<name>/…`; hooks see
    // the original path, prefixes match its `/ext/<name>/…` part.
    let uri = req.extensions().get::<OriginalUri>().map_or_else(|| req.uri().clone(), |o| o.0.clone());
    let site_path = split_site_path(uri.path());
    // Metered from the first step, so a closed gate's answers are counted too; a site request
    // under its template, never its slug.
    let meter = match site_path {
        Some(_) => ext.metrics.start_route(req.method(), Some(&rs.site_route)),
        None => ext.metrics.start(&req),
    };
    // The site's gate (this extension at this site), then the extension's own.
    let gates = match site_path {
        None if ext.site_scoped => Err(Refusal::SiteOnly),
        None => Ok(ext.cx.clone()),
        Some((slug, _)) => match ext.sites.check(slug, ext.site_slot) {
            SiteGate::Open(scope) => Ok(ext.cx.at_site(scope)),
            SiteGate::UnknownSite => Err(Refusal::UnknownSite(slug)),
            SiteGate::Suspended => Err(Refusal::SiteSuspended(slug)),
            SiteGate::NotActive => Err(Refusal::NotActiveAt(slug)),
        },
    };
    let cx = match gates {
        Ok(cx) if ext.slot.is_open() => cx,
        Ok(_) => return refused(ext, Refusal::Closed, meter),
        Err(why) => return refused(ext, why, meter),
    };
    // The CPU and memory quotas: one load each when unset.
    let limits = ext.cx.limits();
    if let Some(retry_after) = limits.cpu.over() {
        let ms_per_s = limits.cpu.limit().unwrap_or_default();
        return refused(ext, Refusal::CpuQuota(ms_per_s, retry_after), meter);
    }
    if let Some((live, max)) = limits.memory.over(limits.owner()) {
        return refused(ext, Refusal::MemoryQuota(live, max), meter);
    }
    let path = site_path.map_or(uri.path(), |(_, path)| path);
    let method = ext.chains.needs_info.then(|| Observed {
        method: req.method().clone(),
        user_agent: req.headers().get(header::USER_AGENT).cloned(),
        referer: req.headers().get(header::REFERER).cloned(),
    });
    let mut seen = Seen::default();
    let mut timed_out = None;

    let response = match limits.enter() {
        None => refuse(ext, Refusal::Busy),
        Some(_in_flight) => match limits.max_body_bytes() {
            Some(max) if content_length(&req).is_some_and(|len| len > max) => {
                refuse(ext, Refusal::TooLarge(max))
            }
            max => {
                if let Some(max) = max {
                    // Bodies without a length are cut off at the limit as they stream in.
                    let max = usize::try_from(max).unwrap_or(usize::MAX);
                    req = req.map(|body| Body::new(http_body_util::Limited::new(body, max)));
                }
                let at = Target { cx: &cx, uri: &uri, path };
                let inner = cx.clone().serving(inner(&rs, req, next, &at, method.as_ref(), &mut seen));
                match limits.timeout() {
                    None => inner.await,
                    Some(limit) => match tokio::time::timeout(limit, inner).await {
                        Ok(res) => res,
                        Err(_) => {
                            timed_out = Some(timeout_message(&ext.name, limit));
                            refuse(ext, Refusal::TimedOut(limit))
                        }
                    },
                }
            }
        },
    };

    let panicked = response.extensions().get::<HandlerPanicked>().is_some();
    if panicked {
        ext.metrics.error(ErrorType::Panic);
    }
    let handler_error =
        seen.handler_ran && timed_out.is_none() && !panicked && response.status().is_server_error();
    let Some(method) = method else {
        meter.finish(response.status(), handler_error);
        return response;
    };
    let error = if let Some(message) = timed_out {
        Some(RequestError { kind: ErrorKind::Timeout, message: message.into() })
    } else if let Some(HandlerPanicked(message)) = response.extensions().get::<HandlerPanicked>() {
        Some(RequestError { kind: ErrorKind::Panic, message: message.clone() })
    } else if seen.handler_ran && response.status().is_server_error() {
        Some(RequestError { kind: ErrorKind::Handler, message: response.status().to_string().into() })
    } else {
        None
    };
    let info = seen.info.take().unwrap_or_else(|| info(&rs, &method, &uri, seen.identity.take()));
    let pre_response = ext.chains.get(HookPoint::PreResponse);
    let response = if pre_response.is_empty() {
        response
    } else {
        run_response_filters(pre_response, path, response, &info).await
    };
    // After the last filter that may change it: the status recorded is the one the client gets.
    let elapsed = meter.finish(response.status(), handler_error);
    let done = Completed { request: info, status: response.status(), elapsed, error };
    spawn_actions(&ext.chains, path, done);
    response
}

// `Err` is the response itself, as in the hook filters: boxing it would cost an allocation on
// exactly the path that must stay cheap.
#[allow(clippy::result_large_err)]
fn limited(
    rate: &RateLimit,
    ext: &ExtensionPath,
    key: &ClientKey,
    remaining: &mut Option<u32>,
) -> Result<(), Response> {
    match rate.check(key) {
        Decision::Allowed { remaining: left } => {
            *remaining = Some(left);
            Ok(())
        }
        Decision::Limited { retry_after } => Err(refuse(ext, Refusal::RateLimited(rate, retry_after))),
    }
}

/// Where a request is going: the handler's context (with its site, if any), the full URI, and
/// the path hook prefixes are matched against.
#[derive(Clone, Copy)]
struct Target<'a> {
    cx: &'a Context,
    uri: &'a Uri,
    path: &'a str,
}

/// The identity of an enabled operator whose personal token the request bears.
async fn operator_identity(ext: &ExtensionPath, headers: &axum::http::HeaderMap) -> Option<Identity> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let token = value.split_once(' ').filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))?.1.trim();
    if !token.starts_with(crate::access::operators::TOKEN_PREFIX) {
        return None;
    }
    let pool = ext.cx.host_pool()?;
    match crate::access::operators::by_token(pool, token).await {
        Ok(Some(o)) => Some(
            o.roles
                .iter()
                .fold(Identity::new(format!("operator:{}", o.username)), |i, r| i.with_role(r.clone())),
        ),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!(error = %e, "could not look up an operator token");
            None
        }
    }
}

/// Rate limit, auth, route access, `pre_request`, middleware, handler, `post_request`: the part
/// `quotas.timeout_ms` bounds.
async fn inner(
    rs: &RouteState,
    req: Request,
    next: Route,
    at: &Target<'_>,
    method: Option<&Observed>,
    seen: &mut Seen,
) -> Response {
    let ext = &*rs.ext;
    let Target { cx, uri, path } = *at;
    let rate = ext.cx.limits().rate_limit();
    let mut remaining = None;
    if let Some(rate) = rate.as_deref().filter(|r| !r.per_client())
        && let Err(res) = limited(rate, ext, &ClientKey::Unknown, &mut remaining)
    {
        return res;
    }
    let (mut parts, body) = req.into_parts();
    // The operator's admin token authenticates on extension routes too (identity `admin`, role
    // `admin`), so routes can `require_role("admin")` without an auth extension; so does an
    // enabled operator's personal token (identity `operator:<username>`, their roles), looked up
    // only for requests that carry one.
    match ext.admin_token.matches(&parts.headers) {
        Some(true) => {
            parts.extensions.insert(Identity::new("admin").with_role("admin"));
        }
        Some(false) => {
            if let Some(identity) = operator_identity(ext, &parts.headers).await {
                parts.extensions.insert(identity);
            }
        }
        None => {}
    }
    let mut head = Head::Plain(parts);
    let chains = &ext.chains;
    // An empty chain is skipped before its future is even built: the plain path builds none.
    let (authn, authz, pre) = (
        chains.get(HookPoint::Authentication),
        chains.get(HookPoint::Authorization),
        chains.get(HookPoint::PreRequest),
    );
    let early = async {
        if !authn.is_empty() {
            run_request_filters(authn, path, &mut head, &ext.name, FailMode::Open).await?;
        }
        if let Some(rate) = rate.as_deref().filter(|r| r.per_client()) {
            let key = match head.identity() {
                Some(identity) => ClientKey::Identity(identity.shared_id()),
                None => head
                    .extension::<ConnectInfo<SocketAddr>>()
                    .map_or(ClientKey::Unknown, |ConnectInfo(addr)| ClientKey::Ip(addr.ip())),
            };
            limited(rate, ext, &key, &mut remaining)?;
        }
        if !authz.is_empty() {
            run_request_filters(authz, path, &mut head, &ext.name, FailMode::Closed).await?;
        }
        rs.access.check(head.identity().as_ref()).map_err(IntoResponse::into_response)?;
        if !pre.is_empty() {
            run_request_filters(pre, path, &mut head, &ext.name, FailMode::Open).await?;
        }
        Ok(())
    };
    let early = early.await;
    if method.is_some() {
        seen.identity = head.identity();
    }
    let mut response = match early {
        Err(response) => response,
        Ok(()) => {
            let req = Request::from_parts(head.into_parts(), body);
            seen.handler_ran = true;
            // Metered inside: the handler as this extension, each middleware as its owner.
            let response = Next::new(ext.middleware.clone(), next, cx.clone()).run(req).await;
            match method {
                Some(method) => {
                    let info = info(rs, method, uri, seen.identity.clone());
                    let post_request = chains.get(HookPoint::PostRequest);
                    let response = if post_request.is_empty() {
                        response
                    } else {
                        run_response_filters(post_request, path, response, &info).await
                    };
                    seen.info = Some(info);
                    response
                }
                None => response,
            }
        }
    };
    if let (Some(rate), Some(left)) = (rate.as_deref(), remaining) {
        // Room for these two and the request id at once, not a reallocation per insert.
        response.headers_mut().reserve(3);
        rate.annotate(response.headers_mut(), left);
    }
    response
}
