//! The server's HTTP interface: the REST API under `/api/v1`, live events, webhooks and
//! `/healthz`. The router below is the table of contents; each handler is small and leaves the
//! work to the database, the stream and the agent.

mod builds;
mod error;
mod orgs;
mod state;
mod webhooks;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub use builds::{ListQuery, Queued, RecordsQuery, Trigger};
pub use error::{ApiError, ErrorBody, ErrorDetail};
pub use orgs::{AddRepo, CreateOrg, CreateToken};
pub use webhooks::Accepted;

pub use state::AppState;

/// The largest webhook body taken: GitHub caps its payloads at 25 MB.
const WEBHOOK_BODY_MAX: usize = 25 * 1024 * 1024;

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
        .route("/webhook/{provider}", post(webhooks::receive).layer(DefaultBodyLimit::max(WEBHOOK_BODY_MAX)))
        .route(
            "/webhook/{provider}/{org}/{repo}",
            post(webhooks::receive_for_repo).layer(DefaultBodyLimit::max(WEBHOOK_BODY_MAX)),
        )
        .fallback(|| async { error::ApiError::NotFound("no such route".to_owned()) })
        .with_state(state)
}
