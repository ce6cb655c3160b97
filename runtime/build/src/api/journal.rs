//! `GET /journal`: the journal so far, for a resumed script (see [`crate::journal`]).

use axum::Json;
use axum::extract::State;
use monkeyci_protocol::Journal;

use super::auth::Authorized;
use super::error::ApiError;
use super::state::BuildApiState;

/// `GET /journal`: the journal so far, for a resumed script.
pub(super) async fn journal_get(
    _auth: Authorized,
    State(state): State<BuildApiState>,
) -> Result<Json<Journal>, ApiError> {
    let journal =
        state.inner.journal.journal().await.map_err(|err| ApiError::Internal(monkeyci_protocol::error_chain(&err)))?;
    Ok(Json(journal))
}
