//! Builds: trigger, list, show, cancel, and their stream of records (long poll and SSE).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, Body, ErrorBody};
use super::state::{AppState, reach};
use crate::auth::Caller;
use crate::db::{BuildFilter, NewBuild};
use crate::model::{Build, Record, Status};

/// `POST /api/v1/orgs/{org}/repos/{repo}/builds`: what to build (default: the main branch's
/// head).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct Trigger {
    /// A branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// A tag (instead of a branch).
    #[serde(default)]
    pub tag: Option<String>,
    /// A commit on that branch or tag.
    #[serde(default)]
    pub commit: Option<String>,
}

/// The answer to a trigger or a webhook that queued a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Queued {
    /// The build's id.
    pub id: String,
    /// Its number in its repository.
    pub number: i64,
}

/// `GET /api/v1/builds` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this org's builds.
    #[serde(default)]
    pub org: Option<String>,
    /// Only this repository's (with `org`).
    #[serde(default)]
    pub repo: Option<String>,
    /// Only builds in this status: `queued`, `running`, `success`, `failure`, `error` or
    /// `canceled`.
    #[serde(default)]
    pub status: Option<String>,
    /// Only builds of this branch.
    #[serde(default)]
    pub branch: Option<String>,
    /// The next page: builds queued before this id.
    #[serde(default)]
    pub before: Option<String>,
    /// Page size (default 50, at most 1000).
    #[serde(default)]
    pub limit: Option<i64>,
}

/// `GET /api/v1/builds/{id}/records` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecordsQuery {
    /// Records after this one (default 0: from the start).
    #[serde(default)]
    pub after: i64,
    /// Wait up to this many seconds (at most 60) for a record when there is none yet.
    #[serde(default)]
    pub wait: u64,
}

/// Queues a build of a repository: the main branch's head unless the body names a branch, tag
/// or commit.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org}/repos/{repo}/builds", operation_id = "trigger_build", tag = "builds",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
    ),
    request_body = Trigger,
    responses(
        (status = 202, description = "Queued", body = Queued),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such repository", body = ErrorBody),
        (status = 422, description = "A branch, tag or commit that is not a valid git name, or both a branch and a tag", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn trigger(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, repo)): Path<(String, String)>,
    Body(body): Body<Trigger>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    reach(&caller, &org)?;
    let (found, _) =
        state.db.repo(&org, &repo).await?.ok_or_else(|| ApiError::NotFound(format!("no repository {org}/{repo}")))?;
    for (field, value) in [("branch", &body.branch), ("tag", &body.tag), ("commit", &body.commit)] {
        if let Some(value) = value
            && (value.is_empty()
                || value.starts_with('-')
                || value.contains("..")
                || value.contains(char::is_whitespace))
        {
            return Err(ApiError::Invalid(format!("{field}: {value:?} is not a valid git name")));
        }
    }
    let (git_ref, trigger) = match (&body.tag, &body.branch) {
        (Some(_), Some(_)) => return Err(ApiError::Invalid("tag: give a branch or a tag, not both".to_owned())),
        (Some(tag), None) => (format!("refs/tags/{tag}"), "tag"),
        (None, Some(branch)) => (format!("refs/heads/{branch}"), "manual"),
        (None, None) => (format!("refs/heads/{}", found.main_branch), "manual"),
    };
    let new = NewBuild {
        org,
        repo,
        source: "api".to_owned(),
        trigger: trigger.to_owned(),
        git_ref: Some(git_ref),
        commit: body.commit,
        ..NewBuild::default()
    };
    let build = state.db.queue_build(&new).await?;
    if let Some(agent) = &state.agent {
        agent.wake();
    }
    Ok((StatusCode::ACCEPTED, Json(Queued { id: build.id, number: build.number })))
}

/// The builds the token reaches, newest first, a page at a time.
#[utoipa::path(
    get, path = "/api/v1/builds", operation_id = "list_builds", tag = "builds", security(("bearer" = [])),
    params(ListQuery),
    responses(
        (status = 200, description = "A page of builds, newest first", body = [Build]),
        (status = 400, description = "`repo` without `org`, an unknown status, or a malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach `org`", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> Result<Json<Vec<Build>>, ApiError> {
    let orgs = match (&query.org, caller.orgs()) {
        (Some(org), _) => {
            reach(&caller, org)?;
            Some(vec![org.clone()])
        }
        (None, orgs) => orgs,
    };
    if query.repo.is_some() && query.org.is_none() {
        return Err(ApiError::BadRequest("repo: give the org too (org=...&repo=...)".to_owned()));
    }
    let status = query.status.as_deref().map(str::parse::<Status>).transpose().map_err(ApiError::BadRequest)?;
    let filter = BuildFilter {
        orgs,
        repo: query.repo,
        status,
        git_ref: query.branch.map(|b| format!("refs/heads/{b}")),
        before_id: query.before,
        limit: query.limit.unwrap_or(50),
    };
    Ok(Json(state.db.builds(&filter).await?))
}

/// The build `id`, if the caller reaches it: otherwise 403 for an org token (so it cannot
/// tell another org's build from none) and 404 for an admin.
pub(super) async fn visible(state: &AppState, caller: &Caller, id: &str) -> Result<Build, ApiError> {
    let build = state.db.build(id).await?.filter(|build| caller.reaches(&build.org));
    build.ok_or_else(|| match caller {
        Caller::Admin => ApiError::NotFound(format!("no build {id}")),
        Caller::Org(_) | Caller::Agent | Caller::Build(_) => {
            ApiError::Forbidden(format!("this token cannot reach build {id}"))
        }
    })
}

/// One build.
#[utoipa::path(
    get, path = "/api/v1/builds/{id}", operation_id = "show_build", tag = "builds", security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build", body = Build),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn show(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Build>, ApiError> {
    Ok(Json(visible(&state, &caller, &id).await?))
}

/// Cancels a queued or running build.
#[utoipa::path(
    post, path = "/api/v1/builds/{id}/cancel", operation_id = "cancel_build", tag = "builds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 202, description = "Canceled, or asked of its agent: the build as it stands now", body = Build),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 409, description = "The build is over", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn cancel(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Build>), ApiError> {
    let build = visible(&state, &caller, &id).await?;
    match build.status {
        Status::Queued => {
            // Nobody runs it yet: it ends here (unless an agent claimed it meanwhile).
            let why = "canceled before it started";
            let mut writer = crate::stream::Writer::open(&state.db, &state.streams, &id).await?;
            if !writer.end_build(Status::Canceled, Some(why.to_owned())).await? {
                let requests = state.db.request_cancel(&id).await?;
                if let Some(agent) = &state.agent {
                    agent.cancel(&id, requests);
                }
            }
        }
        Status::Running => {
            let requests = state.db.request_cancel(&id).await?;
            if let Some(agent) = &state.agent {
                agent.cancel(&id, requests);
            }
        }
        done => return Err(ApiError::Conflict(format!("build {id} is over ({done})"))),
    }
    let build = visible(&state, &caller, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(build)))
}

/// The long-poll fallback of the event stream: records after `after`, waiting up to `wait`
/// seconds for one.
#[utoipa::path(
    get, path = "/api/v1/builds/{id}/records", operation_id = "build_records", tag = "builds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id"), RecordsQuery),
    responses(
        (status = 200, description = "Up to 1000 records after `after`, in order; none if `wait` passed first", body = [Record]),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn records(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<RecordsQuery>,
) -> Result<Json<Vec<Record>>, ApiError> {
    visible(&state, &caller, &id).await?;
    let mut live = state.streams.subscribe(&id);
    let records = state.db.records_after(&id, query.after, 1000).await?;
    if !records.is_empty() || query.wait == 0 {
        return Ok(Json(records));
    }
    let deadline = tokio::time::sleep(Duration::from_secs(query.wait.min(60)));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => return Ok(Json(Vec::new())),
            () = state.shutdown.notified() => return Ok(Json(Vec::new())),
            next = live.recv() => match next {
                Ok(live) if live.record.seq <= query.after => continue,
                // Whatever arrived (and any that came with it) is in the database now.
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    Ok(Json(state.db.records_after(&id, query.after, 1000).await?))
}

/// Server-sent events: the build's records from `Last-Event-ID` (or `?after=`) on, live, to
/// the build's end. Each SSE event's `id` is the record's number, its `event` the record's
/// kind and its `data` the record's JSON.
#[utoipa::path(
    get, path = "/api/v1/builds/{id}/events", operation_id = "build_events", tag = "builds",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The build's id"),
        ("after" = Option<i64>, Query, description = "Records after this one (default 0: from the start)"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Records after this one, when resuming (wins over `after`)"),
    ),
    responses(
        (
            status = 200,
            description = "Server-sent events, one per record, to the build's end: `id` is the record's `seq`, \
                `event` its kind (`event`: a build event, `line`: a line of output outside any job, `end`: how \
                the build ended, always last) and `data` the record's `data` as JSON (see `Record`)",
            content_type = "text/event-stream",
            body = String,
            example = "id: 7\nevent: line\ndata: {\"stream\":\"stdout\",\"line\":\"compiling\"}\n\n",
        ),
        (status = 400, description = "A `Last-Event-ID` that is not a record number, or a malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn events(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
    Query(query): Query<RecordsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    visible(&state, &caller, &id).await?;
    let after = resume_after(&headers, query.after, "a record number")?;
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    tokio::spawn(follow(state, id, after, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Ok(Sse::new(stream).keep_alive(KeepAlive::default()))
}

/// Sends the build's records after `after` to `tx` until its end record, the follower leaves
/// or the server stops.
async fn follow(state: AppState, id: String, mut after: i64, tx: tokio::sync::mpsc::Sender<SseEvent>) {
    let mut live = state.streams.subscribe(&id);
    loop {
        // The database first: what was kept before (and while) this follower joined.
        let Ok(records) = state.db.records_after(&id, after, 500).await else { return };
        let caught_up = records.len() < 500;
        for record in records {
            after = record.seq;
            let end = record.body.is_end();
            if tx.send(sse_event(&record)).await.is_err() || end {
                return;
            }
        }
        if !caught_up {
            continue;
        }
        // Then live, until it falls behind (read the database again) or ends.
        loop {
            tokio::select! {
                () = state.shutdown.notified() => return,
                () = tx.closed() => return,
                next = live.recv() => match next {
                    Ok(live) if live.record.seq <= after => {}
                    Ok(live) if live.record.seq == after + 1 => {
                        after = live.record.seq;
                        let end = live.record.body.is_end();
                        // Encoded once for every follower.
                        let event = SseEvent::default().id(after.to_string()).event(live.kind).data(&live.data);
                        if tx.send(event).await.is_err() || end {
                            return;
                        }
                    }
                    // A gap, or too far behind: the database has it all.
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => break,
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                        live = state.streams.subscribe(&id);
                        break;
                    }
                },
            }
        }
    }
}

/// Where an event stream resumes: `Last-Event-ID` if sent (it must be `what`, a number), else
/// `?after=`.
pub(super) fn resume_after(headers: &HeaderMap, after: i64, what: &str) -> Result<i64, ApiError> {
    match headers.get("last-event-id") {
        Some(value) => value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .ok_or_else(|| ApiError::BadRequest(format!("Last-Event-ID: not {what}"))),
        None => Ok(after),
    }
}

fn sse_event(record: &Record) -> SseEvent {
    let (kind, data) = record.body.kind_and_data();
    SseEvent::default().id(record.seq.to_string()).event(kind).data(data)
}
