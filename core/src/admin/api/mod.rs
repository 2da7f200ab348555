//! The admin API under `/api/v1`: bearer-token protected, JSON in and out.
//!
//! | route | file |
//! |---|---|
//! | `GET /api/v1/extensions`, `GET /api/v1/extensions/{name}` | `extensions.rs` |
//! | `POST /api/v1/extensions/{name}/enable`, `…/disable` | `switch.rs` |
//! | `GET /api/v1/extensions/{name}/health` | `health.rs` |
//! | `GET /api/v1/extensions/{name}/metrics` | `metrics.rs` |
//! | `GET`/`PUT /api/v1/extensions/{name}/config` | `config.rs` |
//! | `GET /api/v1/extensions/{name}/entities`, `POST /api/v1/entities/validate` | `entities.rs` |
//! | `GET /api/v1/audit`, `GET /api/v1/audit/verify` | `audit.rs` |
//! | `GET /api/v1/openapi.json` | `openapi.rs` |
//! | `GET`/`POST /api/v1/sites`, `GET /api/v1/sites/{site}`, `…/suspend`, `…/resume`, `…/features`, `…/capabilities/{capability}`, `…/status` | `sites.rs` |
//! | `…/extensions/{name}/validate`, `…/extensions/validate-combination`, `…/activate`, `DELETE …/extensions/{name}`, `…/signoffs`, `…/audit-trail` | `site_extensions.rs` |
//! | `…/compliance-report`, `…/snapshots`, `…/snapshots/{id}`, `…/snapshots/{id}/restore` | `site_reports.rs` |
//! | `GET`/`POST /api/v1/stages`, `GET`/`PUT`/`DELETE /api/v1/stages/{id}`, `…/enable`, `…/disable`, `…/health` | `stages.rs` |
//! | `GET /api/v1/pipelines`, `GET`/`PUT`/`DELETE /api/v1/pipelines/{name}` | `pipelines.rs` |
//!
//! Every route, the OpenAPI document included, needs `Authorization: Bearer <token>`: the admin
//! token or an operator's personal token, or the console's session cookie with its CSRF token
//! (see `auth.rs`; host-wide routes need no site scope to read and role `admin` to change;
//! site routes authorise in each handler, by role and site scope). The route list below is the
//! one place routes are declared; the OpenAPI document is checked against it by a test.

mod audit;
pub(crate) mod auth;
mod config;
mod entities;
mod error;
mod extensions;
mod health;
mod metrics;
mod openapi;
mod openapi_entities;
mod openapi_parts;
mod openapi_pipelines;
mod openapi_sites;
mod pipelines;
mod site_extensions;
mod site_reports;
mod sites;
mod stages;
mod switch;

use std::sync::Arc;

use axum::Router;
use axum::http::Method;
use axum::middleware;
use axum::routing::{MethodRouter, delete, get, post, put};

use crate::config::admin_token::AdminToken;
use crate::runtime::controller::Controller;
use crate::runtime::lifecycle::Runtime;

/// What every admin API handler shares: the controller (over this process's runtime) and the
/// token the API requires. One `Clone` state for the whole API.
#[derive(Debug, Clone)]
pub(crate) struct ApiState {
    pub(crate) controller: Controller,
    pub(crate) token: AdminToken,
}

impl ApiState {
    pub(crate) fn new(runtime: &Arc<Runtime>, token: AdminToken) -> Self {
        Self { controller: Controller::with_runtime(runtime), token }
    }
}

type State = ApiState;

/// Collects routes and remembers each (method, path), so the OpenAPI test sees the real list.
struct Routes {
    router: Router<State>,
    declared: Vec<(Method, &'static str)>,
}

impl Routes {
    /// Every route added so far needs [`crate::access::Action::Inspect`] to read and
    /// [`crate::access::Action::Administer`] to change.
    fn host_wide(mut self) -> Self {
        self.router = self.router.route_layer(middleware::from_fn(auth::require_host));
        self
    }

    fn add(mut self, method: Method, path: &'static str, handler: MethodRouter<State>) -> Self {
        self.declared.push((method, path));
        self.router = self.router.route(path, handler);
        self
    }
}

fn routes() -> Routes {
    let routes = Routes { router: Router::new(), declared: Vec::new() };
    routes
        .add(Method::GET, "/api/v1/extensions", get(extensions::list))
        .add(Method::GET, "/api/v1/extensions/{name}", get(extensions::info))
        .add(Method::POST, "/api/v1/extensions/{name}/enable", post(switch::enable))
        .add(Method::POST, "/api/v1/extensions/{name}/disable", post(switch::disable))
        .add(Method::GET, "/api/v1/extensions/{name}/health", get(health::health))
        .add(Method::GET, "/api/v1/extensions/{name}/metrics", get(metrics::metrics))
        .add(Method::GET, "/api/v1/extensions/{name}/config", get(config::get_config))
        .add(Method::PUT, "/api/v1/extensions/{name}/config", put(config::put_config))
        .add(Method::GET, "/api/v1/extensions/{name}/entities", get(entities::of_extension))
        .add(Method::POST, "/api/v1/entities/validate", post(entities::validate))
        .add(Method::GET, "/api/v1/audit", get(audit::audit))
        .add(Method::GET, "/api/v1/audit/verify", get(audit::verify))
        .add(Method::GET, "/api/v1/openapi.json", get(openapi::document))
        .host_wide()
        // Site routes authorise per handler (role and site scope), so they come after host_wide().
        .add(Method::GET, "/api/v1/sites", get(sites::list))
        .add(Method::POST, "/api/v1/sites", post(sites::create))
        .add(Method::GET, "/api/v1/sites/{site}", get(sites::show))
        .add(Method::POST, "/api/v1/sites/{site}/suspend", post(sites::suspend))
        .add(Method::POST, "/api/v1/sites/{site}/resume", post(sites::resume))
        .add(Method::GET, "/api/v1/sites/{site}/features", get(sites::features))
        .add(Method::GET, "/api/v1/sites/{site}/capabilities/{capability}", get(sites::capability))
        .add(Method::GET, "/api/v1/sites/{site}/status", get(sites::status))
        .add(
            Method::POST,
            "/api/v1/sites/{site}/extensions/validate-combination",
            post(site_extensions::validate_combination),
        )
        .add(Method::POST, "/api/v1/sites/{site}/extensions/{name}/validate", post(site_extensions::validate))
        .add(Method::POST, "/api/v1/sites/{site}/extensions/{name}/activate", post(site_extensions::activate))
        .add(Method::DELETE, "/api/v1/sites/{site}/extensions/{name}", delete(site_extensions::deactivate))
        .add(Method::GET, "/api/v1/sites/{site}/extensions/{name}/signoffs", get(site_extensions::signoffs))
        .add(Method::POST, "/api/v1/sites/{site}/extensions/{name}/signoffs", post(site_extensions::sign))
        .add(Method::GET, "/api/v1/sites/{site}/extensions/{name}/audit-trail", get(site_extensions::trail))
        .add(Method::GET, "/api/v1/sites/{site}/compliance-report", get(site_reports::compliance))
        .add(Method::GET, "/api/v1/sites/{site}/snapshots", get(site_reports::list))
        .add(Method::POST, "/api/v1/sites/{site}/snapshots", post(site_reports::take))
        .add(Method::GET, "/api/v1/sites/{site}/snapshots/{id}", get(site_reports::get))
        .add(Method::POST, "/api/v1/sites/{site}/snapshots/{id}/restore", post(site_reports::restore))
        // The registry authorises per handler too: reading needs any caller, changing Administer.
        .add(Method::GET, "/api/v1/stages", get(stages::list))
        .add(Method::POST, "/api/v1/stages", post(stages::create))
        .add(Method::GET, "/api/v1/stages/{id}", get(stages::show))
        .add(Method::PUT, "/api/v1/stages/{id}", put(stages::update))
        .add(Method::DELETE, "/api/v1/stages/{id}", delete(stages::remove))
        .add(Method::POST, "/api/v1/stages/{id}/enable", post(stages::enable))
        .add(Method::POST, "/api/v1/stages/{id}/disable", post(stages::disable))
        .add(Method::GET, "/api/v1/stages/{id}/health", get(stages::health))
        .add(Method::GET, "/api/v1/pipelines", get(pipelines::list))
        .add(Method::GET, "/api/v1/pipelines/{name}", get(pipelines::show))
        .add(Method::PUT, "/api/v1/pipelines/{name}", put(pipelines::put))
        .add(Method::DELETE, "/api/v1/pipelines/{name}", delete(pipelines::remove))
}

/// The admin API's routes, token check included, ready to merge into the app.
pub(crate) fn router(state: ApiState) -> Router {
    routes().router.layer(middleware::from_fn_with_state(state.clone(), auth::authenticate)).with_state(state)
}

/// Every (method, path) the router serves.
#[cfg(test)]
pub(crate) fn declared_routes() -> Vec<(Method, &'static str)> {
    routes().declared
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    #[test]
    fn every_route_of_the_router_is_in_the_openapi_document_and_back() {
        let served: BTreeSet<(String, String)> = super::declared_routes()
            .into_iter()
            .map(|(m, p)| (m.as_str().to_lowercase(), p.to_owned()))
            .collect();
        let doc = super::openapi::spec(&crate::plan::catalog::Catalog::default());
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("path item").keys() {
                documented.insert((method.clone(), path.clone()));
            }
        }
        assert_eq!(served, documented);
    }
}
