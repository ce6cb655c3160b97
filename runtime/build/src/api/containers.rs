//! `POST /containers` and `GET /containers/{id}`: container jobs, started by the script and
//! run by the build's engine.

use std::time::Duration;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use monkeyci_protocol::{ContainerRequest, ContainerStarted, ContainerState};
use serde::Deserialize;

use super::auth::Authorized;
use super::error::ApiError;
use super::state::BuildApiState;

/// Starts the container job, or finds the one already started for this job and attempt.
pub(super) async fn containers_post(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    body: Bytes,
) -> Result<(StatusCode, Json<ContainerStarted>), ApiError> {
    let request: ContainerRequest = serde_json::from_slice(&body)
        .map_err(|err| ApiError::BadRequest(format!("the body is not a container request: {err}")))?;
    let containers = state.inner.containers.as_ref().ok_or(ApiError::Unavailable("this build runs no containers"))?;
    let id = containers.start(request).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    Ok((StatusCode::ACCEPTED, Json(ContainerStarted { id })))
}

#[derive(Deserialize)]
pub(super) struct WaitQuery {
    /// Seconds to wait for the end before answering with the state so far.
    #[serde(default)]
    wait: u64,
}

/// The state of a container job, waiting up to `?wait=` seconds (at most 60) for its end.
pub(super) async fn containers_get(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    Path(id): Path<String>,
    Query(query): Query<WaitQuery>,
) -> Result<Json<ContainerState>, ApiError> {
    let containers = state.inner.containers.as_ref().ok_or(ApiError::Unavailable("this build runs no containers"))?;
    let wait = Duration::from_secs(query.wait.min(60));
    let result =
        containers.wait(&id, wait).await.ok_or_else(|| ApiError::NotFound(format!("no container job {id:?}")))?;
    Ok(Json(ContainerState { id, result }))
}
