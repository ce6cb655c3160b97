//! The build API: the HTTP interface a running pipeline script (and later a sidecar) talks
//! to, with a bearer token scoped to one build. The controller serves it on 127.0.0.1.
//!
//! The router below is the table of contents. Handlers are small and only move data between
//! HTTP and the build's state; what happens to events is the controller's business, and the
//! API neither listens on a port nor runs anything itself. Outside this crate, only how blocked
//! jobs are decided ([`Approvals`]) is public.
//!
//! - `GET  /openapi.json`: this API, described (no token needed)
//! - `POST /events`: append a numbered batch of events (`{"launch", "seq", "events"}`, applied once
//!   per launch and seq) or a bare JSON array of events to the build's stream
//! - `GET  /params`: the build parameters, as a JSON object
//! - `GET  /journal`: what the script journaled so far (`journal/record` events), for a resume;
//!   large records are kept in the blob store and read back here
//! - `POST /jobs/{job_id}/approval`: ask whether a blocked job may run; answers `{"approved": bool}`
//! - `POST /containers`: start a container job (idempotent per job and attempt); answers its id
//! - `GET  /containers/{id}?wait=SECONDS`: its state, waiting for its end up to SECONDS
//! - `POST /artifacts/{id}`: save `{"path": ...}` of the checkout as an artifact (action jobs)
//! - `POST /artifacts/{id}/restore`: restore an artifact into the checkout; 404 if there is none

mod approval;
mod artifacts;
mod auth;
mod containers;
mod error;
mod events;
mod journal;
mod params;
mod state;
mod token;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};

pub(crate) use state::BuildApiState;
pub use state::{Approvals, Asker};
pub(crate) use token::BuildToken;

/// The largest `POST /events` body: a batch holding a job's large output (the journal keeps it
/// by reference once received). axum's default, 2 MB, dropped such batches (#9).
pub(crate) const MAX_EVENTS_BODY: usize = 64 * 1024 * 1024;

/// The build API's routes.
pub(crate) fn router(state: BuildApiState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/events", post(events::events_post).layer(DefaultBodyLimit::max(MAX_EVENTS_BODY)))
        .route("/params", get(params::params_get))
        .route("/journal", get(journal::journal_get))
        .route("/jobs/{job_id}/approval", post(approval::approval_post))
        .route("/containers", post(containers::containers_post))
        .route("/containers/{id}", get(containers::containers_get))
        .route("/artifacts/{id}", post(artifacts::artifacts_post))
        .route("/artifacts/{id}/restore", post(artifacts::artifacts_restore))
        .with_state(state)
}

async fn openapi() -> impl axum::response::IntoResponse {
    ([(axum::http::header::CONTENT_TYPE, "application/json")], include_str!("openapi.json"))
}

#[cfg(test)]
mod tests;
