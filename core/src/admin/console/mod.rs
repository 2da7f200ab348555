//! The admin console at `/admin/`: a single-page application served from the binary (its HTML,
//! CSS and ES modules are embedded with `include_str!`; no Node at run time, no build step).
//! The pages call the admin API (`/api/v1/…`) with the session cookie, so every change goes
//! through the same handlers, controller and permission checks as a bearer-token call.
//!
//! | route | what |
//! |---|---|
//! | `GET /admin/`, `GET /admin/login` | the page shell (`assets/index.html`) |
//! | `GET /admin/assets/{file}` | CSS and JS modules |
//! | `GET`/`POST`/`DELETE /admin/api/session` | who is logged in / log in / log out (`login.rs`) |
//! | any method on `/admin/api/entities/{extension}/{*rest}` | the entity API as the session's actor (`entities.rs`) |
//!
//! Every answer carries a strict `Content-Security-Policy` (`default-src 'self'`, no inline
//! script or style), `X-Frame-Options: DENY`, `X-Content-Type-Options: nosniff` and
//! `Referrer-Policy: no-referrer`. docs/console.md describes the pages and the session design.

mod entities;
mod login;

pub(crate) use entities::AppRouter;

use std::sync::Arc;

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::admin::api::ApiState;
use crate::extension::error::ApiError;

/// The policy every console answer carries: only this origin's files, no inline code.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
                   frame-ancestors 'none'";

/// One embedded file: its name under `assets/`, content type and bytes.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    body: &'static str,
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset { name: $name, content_type: $type, body: include_str!(concat!("assets/", $name)) }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file the console serves.
const ASSETS: &[Asset] = &[
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("app.js", JS),
    asset!("ui.js", JS),
    asset!("pages/overview.js", JS),
    asset!("pages/extension.js", JS),
    asset!("pages/audit.js", JS),
    asset!("pages/sites.js", JS),
    asset!("pages/pipelines.js", JS),
    asset!("pages/entities.js", JS),
];

const INDEX: &str = include_str!("assets/index.html");

/// What the console's handlers share.
#[derive(Debug, Clone)]
pub(crate) struct ConsoleState {
    pub(crate) api: ApiState,
    pub(crate) attempts: Arc<login::Attempts>,
    pub(crate) app: std::sync::Weak<std::sync::OnceLock<Router>>,
}

fn index() -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8"), (header::CACHE_CONTROL, "no-store")], INDEX)
        .into_response()
}

async fn asset(Path(file): Path<String>) -> Response {
    match ASSETS.iter().find(|a| a.name == file) {
        // Embedded in the binary: a new binary may bring new files, so revalidate each time.
        Some(a) => ([(header::CONTENT_TYPE, a.content_type), (header::CACHE_CONTROL, "no-cache")], a.body)
            .into_response(),
        None => {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("the console has no file `{file}`"))
                .into_response()
        }
    }
}

async fn secure_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    res
}

/// The console's routes, ready to merge into the app.
/// `app` is filled with the whole application's router once built (for `entities.rs`).
pub(crate) fn router(api: ApiState, app: &AppRouter) -> Router {
    let state = ConsoleState { api, attempts: Arc::new(login::Attempts::new()), app: app.weak() };
    Router::new()
        .route("/admin", get(|| async { Redirect::permanent("/admin/") }))
        .route("/admin/", get(|| async { index() }))
        .route("/admin/login", get(|| async { index() }))
        .route("/admin/assets/{*file}", get(asset))
        .route("/admin/api/session", get(login::current).post(login::login).delete(login::logout))
        .route("/admin/api/entities/{extension}/{*rest}", axum::routing::any(entities::proxy))
        .layer(middleware::map_response(secure_headers))
        .with_state(state)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_module_a_page_imports_is_served_and_no_script_is_inline() {
        let names: Vec<&str> = super::ASSETS.iter().map(|a| a.name).collect();
        for a in super::ASSETS {
            let dir = a.name.rsplit_once('/').map_or("", |(d, _)| d);
            for quote in ["from \"", "import(\""] {
                for part in a.body.split(quote).skip(1) {
                    let Some(end) = part.find('"') else { continue };
                    let raw = &part[..end];
                    let name = match (raw.strip_prefix("./"), raw.strip_prefix("../")) {
                        (Some(rest), _) if dir.is_empty() => rest.to_owned(),
                        (Some(rest), _) => format!("{dir}/{rest}"),
                        (_, Some(rest)) => rest.to_owned(),
                        _ => continue,
                    };
                    assert!(names.contains(&name.as_str()), "{} imports {raw}, which is not served", a.name);
                }
            }
        }
        assert!(
            !super::INDEX.contains("<script>") && !super::INDEX.contains(" style="),
            "no inline script or style"
        );
        assert!(super::CSP.starts_with("default-src 'self'"));
    }
}
