//! The build API: the HTTP interface a running pipeline script (and later a sidecar) talks
//! to, served on 127.0.0.1 with a bearer token scoped to one build.
//!
//! The router below is the table of contents. Handlers are small and only move data between
//! HTTP and [`BuildApiState`]; what happens to events is the controller's business.
//!
//! - `GET  /openapi.json`: this API, described (no token needed)
//! - `POST /events`: append a JSON array of events to the build's stream
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

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::Router;
use axum::routing::{get, post};
use monkeyci_protocol::{Event, ParamMap};
use tokio::sync::mpsc;

use monkeyci_jobs::ContainerJobs;
use monkeyci_store::files::ActionArtifacts;

pub use approval::Asker;
pub use auth::BuildToken;
pub use error::ApiError;
pub use journal::JournalStore;

/// What the API of one build serves from.
#[derive(Clone)]
pub struct BuildApiState {
    inner: Arc<Inner>,
}

struct Inner {
    token: BuildToken,
    params: ParamMap,
    approved: BTreeSet<String>,
    asker: Option<Asker>,
    events: mpsc::UnboundedSender<Event>,
    containers: Option<Arc<ContainerJobs>>,
    artifacts: Option<Arc<ActionArtifacts>>,
    journal: JournalStore,
}

/// How blocked jobs are decided: the ids approved up front, and who to ask about the others
/// (none: they are declined).
#[derive(Debug, Clone, Default)]
pub struct Approvals {
    pub approved: BTreeSet<String>,
    pub asker: Option<Asker>,
}

impl BuildApiState {
    /// State for one build; events posted by the script arrive on `events`; container jobs
    /// are run by `containers` (none: they are refused).
    pub fn new(
        token: BuildToken,
        params: ParamMap,
        approvals: Approvals,
        events: mpsc::UnboundedSender<Event>,
        containers: Option<Arc<ContainerJobs>>,
        artifacts: Option<Arc<ActionArtifacts>>,
        journal: JournalStore,
    ) -> BuildApiState {
        let Approvals { approved, asker } = approvals;
        let inner = Inner { token, params, approved, asker, events, containers, artifacts, journal };
        BuildApiState { inner: Arc::new(inner) }
    }
}

/// The build API's routes.
pub fn router(state: BuildApiState) -> Router {
    Router::new()
        .route("/openapi.json", get(openapi))
        .route("/events", post(events::events_post))
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
