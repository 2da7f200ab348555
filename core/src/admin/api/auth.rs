//! The middleware that checks the admin token (see `config/admin_token.rs`).

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;
use crate::extension::error::ApiError;

/// 401 unless the request carries `Authorization: Bearer <the token>`.
pub(super) async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let matched = state.token.matches(req.headers());
    if matched != Some(true) {
        let message = if matched.is_some() {
            "the admin token is wrong; use the one in server.admin_token, ANNEX_ADMIN_TOKEN or <data_dir>/admin-token"
        } else {
            "the admin API needs `Authorization: Bearer <token>` (server.admin_token, ANNEX_ADMIN_TOKEN or <data_dir>/admin-token)"
        };
        let mut res = ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message).into_response();
        res.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        return res;
    }
    next.run(req).await
}
