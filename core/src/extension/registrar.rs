//! The [`Registrar`]: what an extension declares in [`Extension::register`](crate::Extension::register).

use axum::extract::Request;
use axum::handler::Handler;
use axum::http::Method;
use axum::response::Response;
use axum::routing::{MethodFilter, MethodRouter, on};
use std::future::Future;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::extension::context::Context;
use crate::extension::events::Event;
use crate::extension::hooks::middleware::{MiddlewareFn, MiddlewareSpec, Next};
use crate::extension::hooks::{
    Access, ActionFn, Completed, Hook, HookFn, HookPoint, HookRequest, HookResponse, HookSpec,
    RequestFilterFn, ResponseFilterFn,
};
use crate::extension::stage::{StageRegistration, StageRequest, StageResult, StageSpec};

/// A subscriber's handler, as registered.
pub(crate) type EventHandler = Arc<dyn Fn(Context, Event) -> BoxFuture<'static, ()> + Send + Sync>;

/// A durable subscriber's handler, as registered: `Err` leaves the event unacknowledged.
pub(crate) type DurableHandler =
    Arc<dyn Fn(Context, Event) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// One route an extension declared, relative to its `/ext/<name>` prefix.
#[derive(Debug)]
pub(crate) struct RouteSpec {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) handler: MethodRouter,
    pub(crate) access: Access,
}

/// The route just added; require an identity or a role of its callers, or go on registering
/// (it dereferences to the [`Registrar`]).
///
/// ```
/// use annex_core::Registrar;
/// fn register(r: &mut Registrar) {
///     r.get("/me", || async { "me" }).require_identity();
///     r.delete("/items/{id}", || async { "gone" }).require_role("admin");
/// }
/// ```
#[derive(Debug)]
pub struct RouteRef<'a> {
    registrar: &'a mut Registrar,
}

impl RouteRef<'_> {
    fn set(self, access: Access) -> Self {
        if let Some(route) = self.registrar.routes.last_mut() {
            route.access = access;
        }
        self
    }

    /// Callers without an [`Identity`](crate::Identity) get 401 `unauthenticated`.
    pub fn require_identity(self) -> Self {
        self.set(Access::Identity)
    }

    /// Callers without an identity get 401; with one that lacks `role`, 403 `forbidden`.
    pub fn require_role(self, role: &str) -> Self {
        self.set(Access::Role(role.into()))
    }
}

impl std::ops::Deref for RouteRef<'_> {
    type Target = Registrar;
    fn deref(&self) -> &Registrar {
        self.registrar
    }
}

impl std::ops::DerefMut for RouteRef<'_> {
    fn deref_mut(&mut self) -> &mut Registrar {
        self.registrar
    }
}

/// Collects what an extension contributes: routes, event subscriptions, hooks and middleware.
///
/// Paths are relative to the extension: `r.get("/items/{id}", h)` serves
/// `GET /ext/<name>/items/{id}`. Two routes with the same method and path are a startup error,
/// not a panic.
///
/// Handlers are ordinary axum handlers; take a [`Context`](crate::Context) argument to reach the
/// extension's own services.
pub struct Registrar {
    extension: String,
    pub(crate) routes: Vec<RouteSpec>,
    pub(crate) subscriptions: Vec<(String, EventHandler)>,
    pub(crate) durable: Vec<(String, DurableHandler)>,
    pub(crate) hooks: Vec<HookSpec>,
    pub(crate) middleware: Vec<MiddlewareSpec>,
    pub(crate) stages: Vec<StageRegistration>,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("extension", &self.extension)
            .field("routes", &self.routes.len())
            .field("subscriptions", &self.subscriptions.len())
            .field("hooks", &self.hooks)
            .field("middleware", &self.middleware)
            .field("stages", &self.stages)
            .finish()
    }
}

impl Registrar {
    pub(crate) fn new(extension: &str) -> Self {
        Self {
            extension: extension.to_owned(),
            routes: Vec::new(),
            subscriptions: Vec::new(),
            durable: Vec::new(),
            hooks: Vec::new(),
            middleware: Vec::new(),
            stages: Vec::new(),
        }
    }

    /// The name of the extension being registered.
    pub fn extension(&self) -> &str {
        &self.extension
    }

    /// Adds a route for `method` at `path` (relative to `/ext/<name>`).
    ///
    /// Methods axum cannot route (such as `CONNECT`) are reported as a startup error.
    pub fn route<H, T>(&mut self, method: Method, path: &str, handler: H) -> RouteRef<'_>
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        let handler = match MethodFilter::try_from(method.clone()) {
            Ok(filter) => on(filter, handler),
            // Kept so validation can name the route; it is never mounted.
            Err(_) => MethodRouter::new(),
        };
        self.routes.push(RouteSpec { method, path: path.to_owned(), handler, access: Access::Anyone });
        RouteRef { registrar: self }
    }

    /// Subscribes to events whose name matches `pattern` (`*`, `extension.*`, `shop.created`).
    /// Delivery is asynchronous, in order per subscription, and only while this extension runs.
    /// Needs permission `events:subscribe`.
    pub fn subscribe<F, Fut>(&mut self, pattern: &str, handler: F) -> &mut Self
    where
        F: Fn(Context, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let handler: EventHandler = Arc::new(move |cx, ev| Box::pin(handler(cx, ev)));
        self.subscriptions.push((pattern.to_owned(), handler));
        self
    }

    /// Subscribes durably to the host's state-change events (the outbox: `extension.enabled`,
    /// `extension.disabled`, `extension.config_changed`, `extension.migrated`,
    /// `site.extension_activated`, `site.extension_reconfigured`, `site.extension_deactivated`,
    /// `site.signoff_recorded`) whose name matches `pattern`. Unlike [`Registrar::subscribe`], every such event is delivered, in
    /// order, including those stored while no server ran or this extension was stopped, and
    /// across replicas each reaches one of them: the host keeps a cursor per subscription,
    /// advanced only when the handler returns `Ok`. `Err` (or a panic) delivers the event
    /// again later. Delivery is at least once: make the handler idempotent (the event's `id`
    /// is stable across redeliveries). Needs permission `events:subscribe`.
    pub fn subscribe_durable<F, Fut>(&mut self, pattern: &str, handler: F) -> &mut Self
    where
        F: Fn(Context, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let handler: DurableHandler = Arc::new(move |cx, ev| Box::pin(handler(cx, ev)));
        self.durable.push((pattern.to_owned(), handler));
        self
    }

    /// Adds a `GET` route.
    pub fn get<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> RouteRef<'_> {
        self.route(Method::GET, path, handler)
    }

    /// Adds a `POST` route.
    pub fn post<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> RouteRef<'_> {
        self.route(Method::POST, path, handler)
    }

    /// Adds a `PUT` route.
    pub fn put<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> RouteRef<'_> {
        self.route(Method::PUT, path, handler)
    }

    /// Adds a `PATCH` route.
    pub fn patch<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> RouteRef<'_> {
        self.route(Method::PATCH, path, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> RouteRef<'_> {
        self.route(Method::DELETE, path, handler)
    }
}

impl Registrar {
    fn request_filter<F, Fut>(&mut self, point: HookPoint, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, HookRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Response>> + Send + 'static,
    {
        let f: RequestFilterFn = Arc::new(move |cx, req| Box::pin(f(cx, req)));
        self.hooks.push(HookSpec { point, hook, f: HookFn::Request(f) });
        self
    }

    fn response_filter<F, Fut>(&mut self, point: HookPoint, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, HookResponse) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Response>> + Send + 'static,
    {
        let f: ResponseFilterFn = Arc::new(move |cx, res| Box::pin(f(cx, res)));
        self.hooks.push(HookSpec { point, hook, f: HookFn::Response(f) });
        self
    }

    fn action<F, Fut>(&mut self, point: HookPoint, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, Completed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let f: ActionFn = Arc::new(move |cx, done| Box::pin(f(cx, done)));
        self.hooks.push(HookSpec { point, hook, f: HookFn::Action(f) });
        self
    }

    /// An `authentication` filter: recognise the caller and
    /// [`set_identity`](HookRequest::set_identity), or answer early with `Err(response)`.
    /// Needs permission `hooks:auth`. A panic leaves the request unauthenticated.
    ///
    /// ```
    /// use annex_core::{Hook, Identity, Registrar, hooks::HookRequest};
    /// fn register(r: &mut Registrar) {
    ///     r.authentication(Hook::new("api_key"), |_cx, req: HookRequest| async move {
    ///         if let Some(key) = req.header("x-api-key").and_then(|v| v.to_str().ok().map(String::from)) {
    ///             req.set_identity(Identity::new(key));
    ///         }
    ///         Ok(())
    ///     });
    /// }
    /// ```
    pub fn authentication<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, HookRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Response>> + Send + 'static,
    {
        self.request_filter(HookPoint::Authentication, hook, f)
    }

    /// An `authorization` filter: deny with `Err(response)` (a 403, say). Needs permission
    /// `hooks:auth`. A panic denies the request (500): authorization fails closed.
    pub fn authorization<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, HookRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Response>> + Send + 'static,
    {
        self.request_filter(HookPoint::Authorization, hook, f)
    }

    /// A `pre_request` filter: change the request, or answer early with `Err(response)`, which
    /// stops the chain: later filters, middleware and the handler do not run. A panic skips
    /// this hook only.
    pub fn pre_request<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, HookRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Response>> + Send + 'static,
    {
        self.request_filter(HookPoint::PreRequest, hook, f)
    }

    /// A `post_request` filter, after the handler: change the response, or replace it with
    /// `Err(response)`, which stops the chain. Not run when the handler did not run.
    pub fn post_request<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, HookResponse) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Response>> + Send + 'static,
    {
        self.response_filter(HookPoint::PostRequest, hook, f)
    }

    /// A `pre_response` filter, just before the response leaves: runs on every response of
    /// the extension's routes, early answers and errors included (headers such as CORS).
    pub fn pre_response<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, HookResponse) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Response>> + Send + 'static,
    {
        self.response_filter(HookPoint::PreResponse, hook, f)
    }

    /// A `post_response` action: observes every finished request, in a background task with a
    /// time limit; never delays the client.
    pub fn post_response<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, Completed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.action(HookPoint::PostResponse, hook, f)
    }

    /// An `error` action: observes handler panics, timeouts and 5xx answers, like
    /// [`post_response`](Registrar::post_response).
    pub fn on_error<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, Completed) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.action(HookPoint::Error, hook, f)
    }

    /// Adds a middleware around handlers: on this extension's routes
    /// ([`Hook::own_routes`]), under a path prefix, or (no prefix) on every extension route.
    /// Reaching beyond its own routes needs permission `hooks:global`. Middleware runs after
    /// the `pre_request` hooks, outermost first by priority, then extension name, then id. A
    /// panic in it answers 500; it is counted as a hook panic.
    pub fn middleware<F, Fut>(&mut self, hook: Hook, f: F) -> &mut Self
    where
        F: Fn(Context, Request, Next) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response> + Send + 'static,
    {
        let f: MiddlewareFn = Arc::new(move |cx, req, next| Box::pin(f(cx, req, next)));
        self.middleware.push(MiddlewareSpec { hook, f });
        self
    }

    /// Registers a compiled-in pipeline [stage](crate::stage): its registry id is
    /// `<extension>.<name>`; a fresh installation's registry gets an entry for it with the
    /// spec's defaults, and operators compose pipelines from it. The handler is panic-isolated
    /// (a panic is a non-retryable stage error) and runs with this extension's [`Context`].
    pub fn stage<F, Fut>(&mut self, spec: StageSpec, f: F) -> &mut Self
    where
        F: Fn(Context, StageRequest) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = StageResult> + Send + 'static,
    {
        self.stages.push(StageRegistration::new(spec, f));
        self
    }
}
