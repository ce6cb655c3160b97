//! What handlers share: the state they reach ([`AppState`]), who calls ([`Caller`] from the
//! bearer token) and what the caller may reach.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::agent::Agent;
use crate::auth::{self, Caller};
use crate::db::Db;
use crate::stream::Streams;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Builds' live streams.
    pub streams: Streams,
    /// The embedded agent, told at once of new builds and cancels.
    pub agent: Option<Agent>,
    /// Set while the server shuts down: long polls and event streams end.
    pub shutdown: Arc<tokio::sync::Notify>,
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
        let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or(ApiError::Unauthorized)?;
        auth::caller(&state.db, token.trim()).await?.ok_or(ApiError::Unauthorized)
    }
}

/// The caller must be an admin.
pub(super) fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Org(_) | Caller::Build(_) => Err(ApiError::Forbidden("this needs an admin token".to_owned())),
    }
}

/// The caller must reach `org`: otherwise 403, whether the org exists or not.
pub(super) fn reach(caller: &Caller, org: &str) -> Result<(), ApiError> {
    if caller.reaches(org) { Ok(()) } else { Err(ApiError::Forbidden(format!("this token cannot reach org {org:?}"))) }
}
