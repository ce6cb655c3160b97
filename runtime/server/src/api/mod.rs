//! The server's HTTP interface: the REST API under `/api/v1`, live events, webhooks and
//! `/healthz`. The router below is the table of contents; each handler is small and leaves the
//! work to the database, the stream and the agent.

mod builds;
mod error;
mod orgs;

use std::sync::Arc;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::routing::{get, post};

pub use builds::{ListQuery, Queued, RecordsQuery, Trigger};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use orgs::{AddRepo, CreateOrg, CreateToken};

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

/// The routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/api/v1/orgs", get(orgs::list).post(orgs::create))
        .route("/api/v1/orgs/{org}/repos", get(orgs::repos).post(orgs::add_repo))
        .route("/api/v1/orgs/{org}/repos/{repo}", get(orgs::repo))
        .route("/api/v1/orgs/{org}/repos/{repo}/builds", post(builds::trigger))
        .route("/api/v1/tokens", post(orgs::create_token))
        .route("/api/v1/builds", get(builds::list))
        .route("/api/v1/builds/{id}", get(builds::show))
        .route("/api/v1/builds/{id}/cancel", post(builds::cancel))
        .route("/api/v1/builds/{id}/records", get(builds::records))
        .route("/api/v1/builds/{id}/events", get(builds::events))
        .fallback(|| async { ApiError::NotFound("no such route".to_owned()) })
        .with_state(state)
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
fn admin_only(caller: &Caller) -> Result<(), ApiError> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Org(_) => Err(ApiError::Forbidden("this needs an admin token".to_owned())),
    }
}

/// The caller must reach `org`: otherwise 403, whether the org exists or not.
fn reach(caller: &Caller, org: &str) -> Result<(), ApiError> {
    if caller.reaches(org) { Ok(()) } else { Err(ApiError::Forbidden(format!("this token cannot reach org {org:?}"))) }
}
