//! `POST /events`: the script reports what happens.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use monkeyci_protocol::{Event, EventKind};

use monkeyci_protocol::id::{self, InvalidId};

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
    // Ids become file names and keys: the whole batch is checked before any of it is taken.
    for (i, event) in events.iter().enumerate() {
        check_ids(event)
            .map_err(|err| ApiError::BadRequest(format!("event {i} ({}): {err}", event.kind.type_name())))?;
    }
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

/// The job ids an event names: the event's own, and a journal entry's (empty for the entries
/// of the script as a whole).
fn check_ids(event: &Event) -> Result<(), InvalidId> {
    if let Some(job_id) = event.kind.job_id() {
        id::check(job_id)?;
    }
    if let EventKind::JournalRecord { entry } = &event.kind
        && !entry.job_id.is_empty()
    {
        id::check(&entry.job_id)?;
    }
    Ok(())
}
