//! `POST /artifacts/{id}` and `POST /artifacts/{id}/restore`: artifacts of action jobs, which
//! run in the checkout itself, so the controller packs and unpacks there.

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth::Authorized;
use super::error::ApiError;
use super::state::BuildApiState;
use monkeyci_store::files::{ActionArtifacts, Error as FilesError};

#[derive(Deserialize)]
struct SaveRequest {
    path: String,
}

fn artifacts(state: &BuildApiState) -> Result<std::sync::Arc<ActionArtifacts>, ApiError> {
    state.inner.artifacts.clone().ok_or(ApiError::Unavailable("this build keeps no artifacts"))
}

fn error(err: FilesError) -> ApiError {
    match err {
        FilesError::MissingArtifact(id) => ApiError::NotFound(format!("no artifact {id:?} in this build")),
        FilesError::BadPath { .. } | FilesError::BadId { .. } | FilesError::NothingToSave { .. } => {
            ApiError::BadRequest(err.to_string())
        }
        other => ApiError::Internal(monkeyci_protocol::error_chain(&other)),
    }
}

pub(super) async fn artifacts_post(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let request: SaveRequest = serde_json::from_slice(&body)
        .map_err(|err| ApiError::BadRequest(format!("the body is not {{\"path\": ...}}: {err}")))?;
    let artifacts = artifacts(&state)?;
    tokio::task::spawn_blocking(move || artifacts.save(&id, &request.path))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
        .map_err(error)?;
    Ok(StatusCode::CREATED)
}

pub(super) async fn artifacts_restore(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let artifacts = artifacts(&state)?;
    let missing = id.clone();
    let found = tokio::task::spawn_blocking(move || artifacts.restore(&id))
        .await
        .map_err(|err| ApiError::Internal(err.to_string()))?
        .map_err(error)?;
    if found {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no artifact {missing:?} in this build")))
    }
}
