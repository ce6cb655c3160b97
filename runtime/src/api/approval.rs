//! `POST /jobs/{job_id}/approval`: may a blocked job run?
//!
//! A local build approves the jobs named with `--approve`; every other blocked job is
//! declined at once, so a build never hangs waiting for a person who is not asked.

use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;

use super::BuildApiState;
use super::auth::Authorized;

#[derive(Serialize)]
pub(super) struct Approval {
    approved: bool,
}

pub(super) async fn approval_post(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    Path(job_id): Path<String>,
) -> Json<Approval> {
    Json(Approval { approved: state.inner.approved.contains(&job_id) })
}
