//! The [`Registrar`]: what an extension declares in [`Extension::register`](crate::Extension::register).

use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};
use std::future::Future;

use crate::context::Context;
use crate::events::{self, Event, EventHandler};

/// One route an extension declared, relative to its `/ext/<name>` prefix.
#[derive(Debug)]
pub(crate) struct RouteSpec {
    pub(crate) method: Method,
    pub(crate) path: String,
    pub(crate) handler: MethodRouter,
}

/// Collects what an extension contributes: routes now; hooks and middleware go here too.
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
}

impl std::fmt::Debug for Registrar {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registrar")
            .field("extension", &self.extension)
            .field("routes", &self.routes.len())
            .field("subscriptions", &self.subscriptions.len())
            .finish()
    }
}

impl Registrar {
    pub(crate) fn new(extension: &str) -> Self {
        Self { extension: extension.to_owned(), routes: Vec::new(), subscriptions: Vec::new() }
    }

    /// The name of the extension being registered.
    pub fn extension(&self) -> &str {
        &self.extension
    }

    /// Adds a route for `method` at `path` (relative to `/ext/<name>`).
    ///
    /// Methods axum cannot route (such as `CONNECT`) are reported as a startup error.
    pub fn route<H, T>(&mut self, method: Method, path: &str, handler: H) -> &mut Self
    where
        H: Handler<T, ()>,
        T: 'static,
    {
        let handler = match MethodFilter::try_from(method.clone()) {
            Ok(filter) => on(filter, handler),
            // Kept so validation can name the route; it is never mounted.
            Err(_) => MethodRouter::new(),
        };
        self.routes.push(RouteSpec { method, path: path.to_owned(), handler });
        self
    }

    /// Subscribes to events whose name matches `pattern` (`*`, `extension.*`, `shop.created`).
    /// Delivery is asynchronous, in order per subscription, and only while this extension runs.
    pub fn subscribe<F, Fut>(&mut self, pattern: &str, handler: F) -> &mut Self
    where
        F: Fn(Context, Event) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.subscriptions.push((pattern.to_owned(), events::handler(handler)));
        self
    }

    /// Adds a `GET` route.
    pub fn get<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> &mut Self {
        self.route(Method::GET, path, handler)
    }

    /// Adds a `POST` route.
    pub fn post<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> &mut Self {
        self.route(Method::POST, path, handler)
    }

    /// Adds a `PUT` route.
    pub fn put<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> &mut Self {
        self.route(Method::PUT, path, handler)
    }

    /// Adds a `PATCH` route.
    pub fn patch<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> &mut Self {
        self.route(Method::PATCH, path, handler)
    }

    /// Adds a `DELETE` route.
    pub fn delete<H: Handler<T, ()>, T: 'static>(&mut self, path: &str, handler: H) -> &mut Self {
        self.route(Method::DELETE, path, handler)
    }
}
