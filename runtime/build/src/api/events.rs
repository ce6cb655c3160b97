//! `POST /events`: the script reports what happens, in numbered batches that are applied once
//! each (see [`EventBatch`]), or as a bare array applied as it comes.
//!
//! Each event waits for room in the build's bounded event stream, up to
//! [`ROOM_WAIT`](super::state::ROOM_WAIT) for the whole request; then the answer is 503 and
//! the batch, sent again, is taken up where it stopped. An event's effects happen together,
//! once there is room: a journal record is written only when its event can be handed on at
//! once, so a batch applied in part never writes a record twice.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use monkeyci_protocol::{Event, EventBatch, EventKind};

use monkeyci_protocol::id::{self, InvalidId};

use super::auth::Authorized;
use super::error::ApiError;
use super::state::{BuildApiState, Delivered};

pub(super) async fn events_post(
    _auth: Authorized,
    State(state): State<BuildApiState>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let (numbered, events) = parse(&body)?;
    // Ids become file names and keys: the whole batch is checked before any of it is taken.
    for (i, event) in events.iter().enumerate() {
        check_ids(event)
            .map_err(|err| ApiError::BadRequest(format!("event {i} ({}): {err}", event.kind.type_name())))?;
    }
    let deadline = tokio::time::Instant::now() + state.inner.room_wait;
    let Some((launch, seq)) = numbered else {
        apply(&state, events, deadline, &mut 0).await?;
        return Ok(StatusCode::ACCEPTED);
    };
    // Held until the batch is applied: the same batch sent again meanwhile waits, then is
    // acknowledged without being applied.
    let mut delivered = state.inner.delivered.lock().await;
    let progress = delivered.entry(launch).or_insert(Delivered { seq: 0, applied: 0, complete: true });
    if seq < progress.seq || (seq == progress.seq && progress.complete) {
        return Ok(StatusCode::OK);
    }
    if seq == progress.seq + 1 && progress.complete {
        *progress = Delivered { seq, applied: 0, complete: false };
    } else if seq != progress.seq {
        let expected = if progress.complete { progress.seq + 1 } else { progress.seq };
        return Err(ApiError::BadRequest(format!(
            "batch {seq} of launch {launch} arrived before batch {expected}: batches are applied in order"
        )));
    }
    // A batch applied in part (the journal failed, the stream stayed full) is taken up again
    // where it stopped.
    let skip = progress.applied;
    let result = apply(&state, events.into_iter().skip(skip).collect(), deadline, &mut progress.applied).await;
    progress.complete = result.is_ok();
    result.map(|()| StatusCode::ACCEPTED)
}

/// A batch's launch and number; `None` for a bare array.
type Numbered = Option<(u32, u64)>;

/// The body as a numbered batch or a bare array of events.
fn parse(body: &[u8]) -> Result<(Numbered, Vec<Event>), ApiError> {
    let bare = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if bare {
        let events = serde_json::from_slice(body)
            .map_err(|err| ApiError::BadRequest(format!("the body is not a JSON array of events: {err}")))?;
        return Ok((None, events));
    }
    let batch: EventBatch = serde_json::from_slice(body).map_err(|err| {
        ApiError::BadRequest(format!(
            "the body is not a batch of events ({{\"launch\", \"seq\", \"events\"}}) nor a JSON array of events: {err}"
        ))
    })?;
    if batch.seq == 0 {
        return Err(ApiError::BadRequest("batch numbers (`seq`) start at 1".to_owned()));
    }
    Ok((Some((batch.launch, batch.seq)), batch.events))
}

/// Hands `events` to the build in order, waiting for room until `deadline`, counting in
/// `applied` each one taken.
async fn apply(
    state: &BuildApiState,
    events: Vec<Event>,
    deadline: tokio::time::Instant,
    applied: &mut usize,
) -> Result<(), ApiError> {
    for mut event in events {
        // Room first: once the journal has a record, its event is handed on without waiting,
        // and counted, so the batch sent again does not write the record twice.
        let permit = match tokio::time::timeout_at(deadline, state.inner.events.reserve()).await {
            Ok(Ok(permit)) => permit,
            Ok(Err(_)) => return Err(ApiError::Unavailable("the build is over")),
            Err(_) => return Err(ApiError::Unavailable("the build's event stream stayed full; send the batch again")),
        };
        // The build's record keeps the entry as the journal does: a large one by reference.
        if let EventKind::JournalRecord { entry } = &mut event.kind {
            *entry = state
                .inner
                .journal
                .record(entry.clone())
                .await
                .map_err(|err| ApiError::Internal(monkeyci_protocol::error_chain(&err)))?;
        }
        permit.send(event);
        *applied += 1;
    }
    Ok(())
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
