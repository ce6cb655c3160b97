//! The agent protocol over HTTP (`/api/v1/agent/...`, for `monkeyci agent`): claim a build,
//! say it is alive, append its records, end it. Only an agent token reaches these routes, and
//! an agent token reaches nothing else. The rules are [`crate::link`]'s; the work is
//! [`Dispatch`]'s, the same as for the agent embedded in the server.

use axum::Json;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;

use super::error::{ApiError, Body, ErrorBody};
use super::state::{AppState, bearer};
use crate::auth::Caller;
use crate::db::agents::Refusal;
use crate::dispatch::{Dispatch, DispatchError};
use crate::link::{
    AppendRecords, Appended, ApprovalState, Beat, Claim, ClaimRequest, EndBuild, Ended, HeartbeatRequest,
    MAX_RECORDS_PER_APPEND,
};

/// A request made with an agent token.
#[derive(Debug, Clone, Copy)]
pub(super) struct AgentToken;

impl FromRequestParts<AppState> for AgentToken {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<AgentToken, ApiError> {
        match bearer(parts, state).await? {
            Caller::Agent => Ok(AgentToken),
            // An org or admin token never claims builds by accident.
            _ => Err(ApiError::Forbidden(
                "the agent protocol needs an agent token (`monkeyci token create --agent`)".to_owned(),
            )),
        }
    }
}

impl From<DispatchError> for ApiError {
    fn from(err: DispatchError) -> ApiError {
        match err {
            DispatchError::Refused(refusal @ Refusal::NoBuild(_)) => ApiError::NotFound(refusal.to_string()),
            DispatchError::Refused(refusal) => ApiError::Conflict(refusal.to_string()),
            err @ DispatchError::NotFinal(_) => ApiError::Invalid(err.to_string()),
            DispatchError::Db(err) => ApiError::Internal(err),
        }
    }
}

fn dispatch(state: &AppState) -> Dispatch {
    Dispatch::new(state.db.clone(), state.streams.clone())
}

/// Claims the oldest queued build: it runs on the claiming agent from now on.
#[utoipa::path(
    post, path = "/api/v1/agent/claim", operation_id = "agent_claim", tag = "agents", security(("bearer" = [])),
    request_body = ClaimRequest,
    responses(
        (status = 200, description = "The build claimed, with its repository's URL and main branch and the number \
            of the last record of its stream; `null` when nothing is queued", body = Option<Claim>),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 422, description = "An agent name that is not in the id alphabet", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn claim(
    State(state): State<AppState>,
    _agent: AgentToken,
    Body(body): Body<ClaimRequest>,
) -> Result<Json<Option<Claim>>, ApiError> {
    super::orgs::check_id("agent", &body.agent)?;
    Ok(Json(dispatch(&state).claim(&body.agent).await?))
}

/// Says the agent running the build is alive (and the commit it checked out, once known);
/// answers the build's cancel requests.
#[utoipa::path(
    post, path = "/api/v1/agent/builds/{id}/heartbeat", operation_id = "agent_heartbeat", tag = "agents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    request_body = HeartbeatRequest,
    responses(
        (status = 200, description = "How many times canceling the build was asked", body = Beat),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 404, description = "No such build", body = ErrorBody),
        (status = 409, description = "The build is not running (over, or taken for lost): stop it", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn heartbeat(
    State(state): State<AppState>,
    _agent: AgentToken,
    Path(id): Path<String>,
    Body(body): Body<HeartbeatRequest>,
) -> Result<Json<Beat>, ApiError> {
    Ok(Json(dispatch(&state).heartbeat(&id, body.commit.as_deref()).await?))
}

/// Appends records the agent numbered: those stored already are acknowledged (a resend), the
/// others must follow the last stored; they go to the build's live followers too.
#[utoipa::path(
    post, path = "/api/v1/agent/builds/{id}/records", operation_id = "agent_append", tag = "agents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    request_body = AppendRecords,
    responses(
        (status = 200, description = "Kept: the number of the last record stored", body = Appended),
        (status = 400, description = "The body is not JSON of this shape, or larger than 8 MiB", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 404, description = "No such build", body = ErrorBody),
        (status = 409, description = "A gap (the message names the record expected), or the build is not running", body = ErrorBody),
        (status = 422, description = "More than 1000 records", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn append(
    State(state): State<AppState>,
    _agent: AgentToken,
    Path(id): Path<String>,
    Body(body): Body<AppendRecords>,
) -> Result<Json<Appended>, ApiError> {
    if body.records.len() > MAX_RECORDS_PER_APPEND {
        return Err(ApiError::Invalid(format!("records: at most {MAX_RECORDS_PER_APPEND} at once")));
    }
    if body.records.iter().any(|record| record.is_end()) {
        return Err(ApiError::Invalid("records: the end record is the server's (end the build)".to_owned()));
    }
    let last_seq = dispatch(&state).append(&id, body.first_seq, body.records).await?;
    Ok(Json(Appended { last_seq }))
}

/// Ends the build, once every record the agent appended is kept; the server writes the end
/// record.
#[utoipa::path(
    post, path = "/api/v1/agent/builds/{id}/end", operation_id = "agent_end", tag = "agents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    request_body = EndBuild,
    responses(
        (status = 200, description = "Ended; `ended: false` if it was over already (that end stands)", body = Ended),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 404, description = "No such build", body = ErrorBody),
        (status = 409, description = "Records up to `last_seq` are not all kept", body = ErrorBody),
        (status = 422, description = "A status that is not final", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn end(
    State(state): State<AppState>,
    _agent: AgentToken,
    Path(id): Path<String>,
    Body(body): Body<EndBuild>,
) -> Result<Json<Ended>, ApiError> {
    let ended = dispatch(&state).end(&id, body).await?;
    Ok(Json(Ended { ended }))
}

/// Notes that a blocked job of the running build waits for a person's decision (asking again
/// is harmless) and answers where that decision stands; the agent asks again until it is
/// taken.
#[utoipa::path(
    post, path = "/api/v1/agent/builds/{id}/jobs/{job}/approval", operation_id = "agent_approval", tag = "agents",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id"), ("job" = String, Path, description = "The blocked job")),
    responses(
        (status = 200, description = "Where the decision stands", body = ApprovalState),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an agent token", body = ErrorBody),
        (status = 404, description = "No such build", body = ErrorBody),
        (status = 409, description = "The build is not running", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn approval(
    State(state): State<AppState>,
    _agent: AgentToken,
    Path((id, job)): Path<(String, String)>,
) -> Result<Json<ApprovalState>, ApiError> {
    let decision = dispatch(&state).approval(&id, &job).await?;
    Ok(Json(ApprovalState { decision }))
}
