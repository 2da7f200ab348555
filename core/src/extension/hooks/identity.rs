//! [`Identity`]: who is calling, as established by an `authentication` hook, and the access a
//! route can require of it.

use std::sync::Arc;

use axum::extract::{FromRequestParts, OptionalFromRequestParts};
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::extension::error::ApiError;

/// The caller of a request, set by an `authentication` hook with
/// [`HookRequest::set_identity`](crate::hooks::HookRequest::set_identity).
///
/// Handlers extract it: `Identity` answers 401 `unauthenticated` when no hook set one,
/// `Option<Identity>` never rejects. Cheap to clone.
///
/// ```
/// use annex_core::Identity;
/// let alice = Identity::new("alice").with_role("admin");
/// assert_eq!(alice.id(), "alice");
/// assert!(alice.has_role("admin"));
/// assert!(!alice.has_role("billing"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Identity {
    id: Arc<str>,
    roles: Arc<[String]>,
}

impl Identity {
    /// An identity with an id (a user id, an API key's name, …) and no roles.
    pub fn new(id: impl Into<Arc<str>>) -> Self {
        Self { id: id.into(), roles: Arc::new([]) }
    }

    /// Adds a role.
    pub fn with_role(self, role: impl Into<String>) -> Self {
        let mut roles = self.roles.to_vec();
        roles.push(role.into());
        Self { id: self.id, roles: roles.into() }
    }

    /// The id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Shares the id without copying it (the per-client rate limit keys on it).
    pub(crate) fn shared_id(&self) -> Arc<str> {
        self.id.clone()
    }

    /// The roles.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// Whether the identity has `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Identity {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.get::<Identity>().cloned().ok_or_else(unauthenticated)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Identity {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<Identity>().cloned())
    }
}

/// What a route requires of the caller; set with
/// [`RouteRef::require_identity`](crate::extension::RouteRef::require_identity) or
/// [`RouteRef::require_role`](crate::extension::RouteRef::require_role).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone.
    #[default]
    Anyone,
    /// Any authenticated identity (401 otherwise).
    Identity,
    /// An identity with this role (401 without identity, 403 without the role).
    Role(Arc<str>),
}

impl Access {
    /// `Ok` when `identity` satisfies the requirement, else the 401 / 403 to send.
    pub(crate) fn check(&self, identity: Option<&Identity>) -> Result<(), ApiError> {
        match (self, identity) {
            (Access::Anyone, _) => Ok(()),
            (_, None) => Err(unauthenticated()),
            (Access::Identity, Some(_)) => Ok(()),
            (Access::Role(role), Some(id)) if id.has_role(role) => Ok(()),
            (Access::Role(role), Some(id)) => Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!("`{}` lacks the role `{role}` this route requires", id.id()),
            )),
        }
    }
}

fn unauthenticated() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "unauthenticated",
        "this route requires an authenticated caller; no authentication hook recognised the request",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_answers_401_without_identity_and_403_without_the_role() {
        let alice = Identity::new("alice").with_role("staff");
        assert!(Access::Anyone.check(None).is_ok());
        assert_eq!(Access::Identity.check(None).map_err(|e| e.status()), Err(StatusCode::UNAUTHORIZED));
        assert!(Access::Identity.check(Some(&alice)).is_ok());
        assert!(Access::Role("staff".into()).check(Some(&alice)).is_ok());
        let denied = Access::Role("admin".into()).check(Some(&alice)).map_err(|e| e.status());
        assert_eq!(denied, Err(StatusCode::FORBIDDEN));
    }
}
