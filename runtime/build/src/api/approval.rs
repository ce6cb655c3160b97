//! `POST /jobs/{job_id}/approval`: may a blocked job run?
//!
//! A local build approves the jobs named with `--approve`. Any other blocked job is put to the
//! [`Asker`](super::Asker) when there is one (someone at the terminal, `--ask`), and declined at once when
//! there is none, so a build never hangs waiting for a person who is not asked.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use tokio::sync::oneshot;

use super::auth::Authorized;
use super::error::ApiError;
use super::state::BuildApiState;

#[derive(Serialize)]
pub(super) struct Approval {
    approved: bool,
}

pub(super) async fn approval_post(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    Path(job_id): Path<String>,
) -> Result<Json<Approval>, ApiError> {
    monkeyci_protocol::id::check(&job_id).map_err(|err| ApiError::BadRequest(err.to_string()))?;
    if state.inner.approved.contains(&job_id) {
        return Ok(Json(Approval { approved: true }));
    }
    let Some(asker) = &state.inner.asker else { return Ok(Json(Approval { approved: false })) };
    let (answer, answered) = oneshot::channel();
    // Nobody left to ask (or no answer) declines.
    let approved = asker.send((job_id, answer)).is_ok() && answered.await.unwrap_or(false);
    Ok(Json(Approval { approved }))
}
