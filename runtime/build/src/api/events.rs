//! `POST /events`: the script reports what happens.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use monkeyci_protocol::{Event, EventKind};

use super::auth::Authorized;
use super::error::ApiError;
use super::state::BuildApiState;

pub(super) async fn events_post(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let events: Vec<Event> = serde_json::from_slice(&body)
        .map_err(|err| ApiError::BadRequest(format!("the body is not a JSON array of events: {err}")))?;
    for mut event in events {
        // The build's record keeps the entry as the journal does: a large one by reference.
        if let EventKind::JournalRecord { entry } = &mut event.kind {
            *entry = state
                .inner
                .journal
                .record(entry.clone())
                .await
                .map_err(|err| ApiError::Internal(monkeyci_protocol::error_chain(&err)))?;
        }
        state.inner.events.send(event).map_err(|_| ApiError::Unavailable("the build is over"))?;
    }
    Ok(StatusCode::ACCEPTED)
}
