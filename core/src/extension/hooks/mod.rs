//! Request hooks: filters that see, change or answer requests and responses, and actions that
//! observe finished requests. See `docs/request-path.md` for where each point runs.
//!
//! Hooks are registered in [`Extension::register`](crate::Extension::register) with a
//! [`Hook`] (id, priority, scope). Each point's chain is sorted once at startup by priority
//! (lower first), then extension name, then id. A hook runs as its own extension (it receives
//! that extension's [`Context`]) and only while that extension is running.

pub(crate) mod identity;
pub(crate) mod middleware;
pub(crate) mod placement;

use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::extract::Request;
use axum::http::header::AsHeaderName;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, Uri, request, response};
use axum::response::Response;
use futures::future::BoxFuture;
use serde::Serialize;

use crate::extension::context::Context;
use crate::observe::request_id::RequestId;

pub(crate) use identity::Access;
pub use identity::Identity;
pub use middleware::Next;

/// Where in the request path a hook runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum HookPoint {
    /// Filter, first: establishes the caller's [`Identity`].
    Authentication,
    /// Filter, after authentication: may deny.
    Authorization,
    /// Filter, before the middleware and handler: may change the request or answer early.
    PreRequest,
    /// Filter, after the handler: may change or replace the response.
    PostRequest,
    /// Filter, just before the response leaves: may change headers (runs on every response).
    PreResponse,
    /// Action, after the response: observes, off the response path.
    PostResponse,
    /// Action, after a handler panic, a timeout or a 5xx answer: observes.
    Error,
}

impl HookPoint {
    /// The point's name: `authentication`, `pre_request`, …
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::PreRequest => "pre_request",
            Self::PostRequest => "post_request",
            Self::PreResponse => "pre_response",
            Self::PostResponse => "post_response",
            Self::Error => "error",
        }
    }
}

impl fmt::Display for HookPoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where and in which order a hook or a middleware runs: an id (unique per extension and
/// point), a priority (lower runs first; default 0) and a scope.
///
/// Without a prefix a hook is **global**: it sees every request to every extension's routes and
/// needs permission `hooks:global`, as does a prefix outside the extension's own
/// `/ext/<name>`. [`Hook::own_routes`] limits it to the extension's own routes.
///
/// ```
/// use annex_core::Hook;
/// let mine = Hook::new("audit").priority(-10).own_routes();
/// let theirs = Hook::new("tag").prefix("/ext/shop/orders");
/// let everywhere = Hook::new("trace");
/// # let _ = (mine, theirs, everywhere);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub(crate) id: String,
    pub(crate) priority: i32,
    pub(crate) scope: Scope,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Scope {
    Global,
    Own,
    Prefix(String),
}

impl Hook {
    /// A global hook with priority 0.
    pub fn new(id: impl Into<String>) -> Self {
        Self { id: id.into(), priority: 0, scope: Scope::Global }
    }

    /// Sets the priority: lower runs first; ties go by extension name, then id.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }

    /// Limits the hook to request paths under `prefix` (an absolute path such as
    /// `/ext/shop/orders`; matched by whole segments).
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.scope = Scope::Prefix(prefix.into());
        self
    }

    /// Limits the hook to the registering extension's own routes (`/ext/<name>`).
    pub fn own_routes(mut self) -> Self {
        self.scope = Scope::Own;
        self
    }
}

pub(crate) type RequestFilterFn =
    Arc<dyn Fn(Context, HookRequest) -> BoxFuture<'static, Result<(), Response>> + Send + Sync>;
pub(crate) type ResponseFilterFn =
    Arc<dyn Fn(Context, HookResponse) -> BoxFuture<'static, Result<(), Response>> + Send + Sync>;
pub(crate) type ActionFn = Arc<dyn Fn(Context, Completed) -> BoxFuture<'static, ()> + Send + Sync>;

/// A hook's function, by kind.
#[derive(Clone)]
pub(crate) enum HookFn {
    Request(RequestFilterFn),
    Response(ResponseFilterFn),
    Action(ActionFn),
}

/// One hook as registered.
pub(crate) struct HookSpec {
    pub(crate) point: HookPoint,
    pub(crate) hook: Hook,
    pub(crate) f: HookFn,
}

impl fmt::Debug for HookSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookSpec").field("point", &self.point).field("hook", &self.hook).finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The request as a request filter sees it: method, URI, headers and extensions (not the body).
///
/// It is a shared handle so that a hook that panics cannot lose the request: the host still
/// holds it and carries on. Cheap to clone; every accessor takes a short lock.
#[derive(Clone)]
pub struct HookRequest {
    parts: Arc<Mutex<request::Parts>>,
    target: Arc<str>,
}

impl fmt::Debug for HookRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = lock(&self.parts);
        f.debug_struct("HookRequest").field("method", &p.method).field("uri", &p.uri).finish()
    }
}

impl HookRequest {
    pub(crate) fn new(parts: request::Parts, target: Arc<str>) -> Self {
        Self { parts: Arc::new(Mutex::new(parts)), target }
    }

    /// Takes the parts back; a hook that kept a clone of the handle keeps an empty request.
    pub(crate) fn into_parts(self) -> request::Parts {
        match Arc::try_unwrap(self.parts) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => std::mem::replace(&mut *lock(&shared), Request::new(()).into_parts().0),
        }
    }

    /// The extension whose route was requested (a global hook sees other extensions' requests).
    pub fn target(&self) -> &str {
        &self.target
    }

    /// The method.
    pub fn method(&self) -> Method {
        lock(&self.parts).method.clone()
    }

    /// The URI as the client sent it (with the `/ext/<name>` prefix).
    pub fn uri(&self) -> Uri {
        let parts = lock(&self.parts);
        parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.clone(), |o| o.0.clone())
    }

    /// A header's value.
    pub fn header(&self, name: impl AsHeaderName) -> Option<HeaderValue> {
        lock(&self.parts).headers.get(name).cloned()
    }

    /// Sets a header, replacing any value it had.
    pub fn set_header(&self, name: HeaderName, value: HeaderValue) {
        lock(&self.parts).headers.insert(name, value);
    }

    /// Removes a header.
    pub fn remove_header(&self, name: impl AsHeaderName) {
        lock(&self.parts).headers.remove(name);
    }

    /// The caller's identity, once an `authentication` hook set one.
    pub fn identity(&self) -> Option<Identity> {
        lock(&self.parts).extensions.get::<Identity>().cloned()
    }

    /// Sets the caller's identity (what `authentication` hooks are for). Handlers extract it as
    /// [`Identity`]; `authorization` hooks and route requirements check it.
    pub fn set_identity(&self, identity: Identity) {
        lock(&self.parts).extensions.insert(identity);
    }

    /// A typed request extension.
    pub fn extension<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        lock(&self.parts).extensions.get::<T>().cloned()
    }

    /// Inserts a typed request extension, which handlers can extract with
    /// `axum::Extension<T>`.
    pub fn insert_extension<T: Clone + Send + Sync + 'static>(&self, value: T) {
        lock(&self.parts).extensions.insert(value);
    }

    /// Anything else: runs `f` with the request head locked. Do not block inside.
    pub fn with_parts<R>(&self, f: impl FnOnce(&mut request::Parts) -> R) -> R {
        f(&mut lock(&self.parts))
    }
}

/// The response as a response filter sees it: status, headers and extensions (not the body;
/// to replace the body, return a new response as `Err(response)`).
#[derive(Clone)]
pub struct HookResponse {
    parts: Arc<Mutex<response::Parts>>,
    request: Arc<RequestInfo>,
}

impl fmt::Debug for HookResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("HookResponse")
            .field("status", &self.status())
            .field("request", &self.request)
            .finish()
    }
}

impl HookResponse {
    pub(crate) fn new(parts: response::Parts, request: Arc<RequestInfo>) -> Self {
        Self { parts: Arc::new(Mutex::new(parts)), request }
    }

    pub(crate) fn into_parts(self) -> response::Parts {
        match Arc::try_unwrap(self.parts) {
            Ok(m) => m.into_inner().unwrap_or_else(|p| p.into_inner()),
            Err(shared) => std::mem::replace(&mut *lock(&shared), Response::new(()).into_parts().0),
        }
    }

    /// The request this answers.
    pub fn request(&self) -> &RequestInfo {
        &self.request
    }

    /// The status.
    pub fn status(&self) -> StatusCode {
        lock(&self.parts).status
    }

    /// Changes the status.
    pub fn set_status(&self, status: StatusCode) {
        lock(&self.parts).status = status;
    }

    /// A header's value.
    pub fn header(&self, name: impl AsHeaderName) -> Option<HeaderValue> {
        lock(&self.parts).headers.get(name).cloned()
    }

    /// Sets a header, replacing any value it had.
    pub fn set_header(&self, name: HeaderName, value: HeaderValue) {
        lock(&self.parts).headers.insert(name, value);
    }

    /// Removes a header.
    pub fn remove_header(&self, name: impl AsHeaderName) {
        lock(&self.parts).headers.remove(name);
    }

    /// Anything else: runs `f` with the response head locked. Do not block inside.
    pub fn with_parts<R>(&self, f: impl FnOnce(&mut response::Parts) -> R) -> R {
        f(&mut lock(&self.parts))
    }
}

/// What response filters and actions know about the request.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RequestInfo {
    /// The method.
    pub method: Method,
    /// The URI as received.
    pub uri: Uri,
    /// The extension whose route was requested.
    pub extension: Arc<str>,
    /// The route template, such as `/ext/shop/items/{id}`.
    pub route: Arc<str>,
    /// The request id.
    pub request_id: Option<RequestId>,
    /// The caller, if authenticated.
    pub identity: Option<Identity>,
    /// The `User-Agent` header as received.
    pub user_agent: Option<HeaderValue>,
    /// The `Referer` header as received.
    pub referer: Option<HeaderValue>,
}

/// A finished request, as `post_response` and `error` actions see it.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Completed {
    /// The request.
    pub request: Arc<RequestInfo>,
    /// The status sent.
    pub status: StatusCode,
    /// Time from entering the extension's request path to the response.
    pub elapsed: Duration,
    /// What went wrong, for `error` actions (and for `post_response` when something did).
    pub error: Option<RequestError>,
}

/// What went wrong with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestError {
    /// Which kind of failure.
    pub kind: ErrorKind,
    /// For humans (a panic message, the time limit, …).
    pub message: Arc<str>,
}

/// The kinds of failure `error` actions observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The handler panicked (the client got a 500).
    Panic,
    /// The request exceeded `quotas.timeout_ms` (the client got a 504).
    Timeout,
    /// The handler answered with a 5xx status.
    Handler,
}

/// One registered hook and its figures so far.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct HookInfo {
    /// The extension that registered it.
    pub extension: String,
    /// The hook point, or `middleware`.
    pub point: String,
    /// Its id.
    pub id: String,
    /// Its priority.
    pub priority: i32,
    /// Its path prefix; `None` for a global hook.
    pub prefix: Option<String>,
    /// Calls so far.
    pub calls: u64,
    /// Panics caught so far.
    pub panics: u64,
    /// Action calls cut off by the action timeout.
    pub timeouts: u64,
    /// Time spent in it so far.
    pub total_time: Duration,
}
