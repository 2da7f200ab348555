//! The [`Registrar`]: what an extension declares in [`Extension::register`](crate::Extension::register).

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use std::future::Future;

use crate::context::Context;
use crate::events::{self, Event, EventHandler};
use crate::hooks::{Access, HookSpec};
use crate::middleware::MiddlewareSpec;

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
    pub(crate) hooks: Vec<HookSpec>,
    pub(crate) middleware: Vec<MiddlewareSpec>,
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("extension", &self.extension)
            .field("routes", &self.routes.len())
            .field("subscriptions", &self.subscriptions.len())
            .field("hooks", &self.hooks)
            .field("middleware", &self.middleware)
            .finish()
    }
}

impl Registrar {
    pub(crate) fn new(extension: &str) -> Self {
        Self {
            extension: extension.to_owned(),
            routes: Vec::new(),
            subscriptions: Vec::new(),
            hooks: Vec::new(),
            middleware: Vec::new(),
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
        self.subscriptions.push((pattern.to_owned(), events::handler(handler)));
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
