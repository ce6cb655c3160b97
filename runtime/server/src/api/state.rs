//! What handlers share: the state they reach ([`AppState`]), who calls ([`Caller`] from the
//! bearer token) and what the caller may reach.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use super::error::ApiError;
use crate::agent::Agent;
use crate::auth::{self, Caller};
use crate::db::Db;
use crate::dispatch::Dispatch;
use crate::stream::Streams;

/// What every handler can reach.
#[derive(Debug, Clone)]
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Builds' live streams.
    pub streams: Streams,
    /// The embedded agent, told at once of new builds and cancels.
    pub agent: Option<Agent<Dispatch>>,
    /// Set while the server shuts down: long polls and event streams end.
    pub shutdown: Arc<tokio::sync::Notify>,
}

/// Who the request's bearer token is.
pub(super) async fn bearer(parts: &Parts, state: &AppState) -> Result<Caller, ApiError> {
    let header = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or(ApiError::Unauthorized)?;
    let token = header.to_str().ok().and_then(|h| h.strip_prefix("Bearer ")).ok_or(ApiError::Unauthorized)?;
    auth::caller(&state.db, token.trim()).await?.ok_or(ApiError::Unauthorized)
}

/// The caller of every route but the agent protocol's: an agent token reaches none of them.
impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Caller, ApiError> {
        match bearer(parts, state).await? {
            Caller::Agent => Err(ApiError::Forbidden(
                "an agent token reaches only the agent protocol (/api/v1/agent/...)".to_owned(),
            )),
            caller => Ok(caller),
        }
    }
}

/// The caller must be an admin.
pub(super) fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Org(_) | Caller::Agent | Caller::Build(_) => {
            Err(ApiError::Forbidden("this needs an admin token".to_owned()))
        }
    }
}

/// The caller must reach `org`: otherwise 403, whether the org exists or not.
pub(super) fn reach(caller: &Caller, org: &str) -> Result<(), ApiError> {
    if caller.reaches(org) { Ok(()) } else { Err(ApiError::Forbidden(format!("this token cannot reach org {org:?}"))) }
}
