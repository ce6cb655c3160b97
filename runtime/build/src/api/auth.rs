//! [`Authorized`]: the extractor that checks a request's bearer token against the build's.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::error::ApiError;
use super::state::BuildApiState;

/// Proof that a request carried this build's token; handlers that take it reject others
/// with 401.
pub(super) struct Authorized;

impl FromRequestParts<BuildApiState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &BuildApiState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        if state.inner.token.matches(presented) {
            Ok(Authorized)
        } else {
            Err(ApiError::Unauthorized("invalid token for this build"))
        }
    }
}
