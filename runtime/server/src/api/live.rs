//! Live events of an org or of one of its repositories: every build's records, and each build
//! as it is queued, in one order, as server-sent events or a long poll.
//!
//! Each entry's `id` is its number in the org's stream (`org_events`), taken in the
//! transaction that keeps the record, under the org's row lock, so entries become visible in
//! the order of their numbers. A follower that resumes after `id` N (`Last-Event-ID`, or
//! `?after=N`) therefore gets every later entry once: none lost, none repeated. A
//! repository's stream is the org's, filtered: its ids are the org's numbers (with gaps).

use std::convert::Infallible;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::builds::{RecordsQuery, resume_after};
use super::error::{ApiError, ErrorBody};
use super::state::{AppState, reach};
use crate::auth::Caller;
use crate::db::jobs_api::OrgEntry;
use crate::model::{Build, BuildEnd, Line, RecordBody};

/// How often a follower of an org's events looks for new ones.
const POLL: Duration = Duration::from_millis(250);

/// Most entries read at once.
const PAGE: i64 = 500;

/// One entry of an org's (or a repository's) live events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrgRecord {
    /// Its number in the org's stream, from 1: the SSE `id`; resume after it with
    /// `Last-Event-ID` or `?after=`.
    pub id: i64,
    /// The build it is of.
    pub build: String,
    /// The build's repository.
    pub repo: String,
    /// Its place in the build's own stream (0 for `queued`).
    pub seq: i64,
    /// What it holds.
    #[serde(flatten)]
    pub body: OrgRecordBody,
}

/// What an entry of an org's events holds: the SSE `event` name is its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "lowercase")]
pub enum OrgRecordBody {
    /// A build was queued: the build, as it stands when read.
    Queued(Box<Build>),
    /// An event of the build: a `monkeyci_protocol::Event`.
    #[schema(value_type = Object)]
    Event(monkeyci_protocol::Event),
    /// A line of output outside any job.
    Line(Line),
    /// The build is over.
    End(BuildEnd),
}

/// The org (and repository) must exist and the caller reach it.
async fn check_scope(state: &AppState, caller: &Caller, org: &str, repo: Option<&str>) -> Result<(), ApiError> {
    reach(caller, org)?;
    if state.db.org(org).await?.is_none() {
        return Err(ApiError::NotFound(format!("no org {org}")));
    }
    if let Some(repo) = repo
        && state.db.repo(org, repo).await?.is_none()
    {
        return Err(ApiError::NotFound(format!("no repository {org}/{repo}")));
    }
    Ok(())
}

/// Up to [`PAGE`] entries after `after`, as the API shows them.
async fn page(state: &AppState, org: &str, repo: Option<&str>, after: i64) -> Result<Vec<OrgRecord>, ApiError> {
    let entries = state.db.org_entries(org, repo, after, PAGE).await?;
    let mut page = Vec::with_capacity(entries.len());
    for OrgEntry { n, repo, build_id, record } in entries {
        let (seq, body) = match record {
            Some(record) => (
                record.seq,
                match record.body {
                    RecordBody::Event(event) => OrgRecordBody::Event(event),
                    RecordBody::Line(line) => OrgRecordBody::Line(line),
                    RecordBody::End(end) => OrgRecordBody::End(end),
                },
            ),
            None => match state.db.build(&build_id).await? {
                Some(build) => (0, OrgRecordBody::Queued(Box::new(build))),
                None => continue,
            },
        };
        page.push(OrgRecord { id: n, build: build_id, repo, seq, body });
    }
    Ok(page)
}

/// The long poll: entries after `after`, waiting up to `wait` seconds for one.
async fn poll(
    state: &AppState,
    org: &str,
    repo: Option<&str>,
    query: &RecordsQuery,
) -> Result<Json<Vec<OrgRecord>>, ApiError> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(query.wait.min(60));
    loop {
        let found = page(state, org, repo, query.after).await?;
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            return Ok(Json(found));
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = state.shutdown.notified() => return Ok(Json(Vec::new())),
        }
    }
}

/// Sends the entries after `after` as they come, until the follower leaves or the server stops.
async fn follow(
    state: AppState,
    org: String,
    repo: Option<String>,
    mut after: i64,
    tx: tokio::sync::mpsc::Sender<SseEvent>,
) {
    loop {
        let Ok(found) = page(&state, &org, repo.as_deref(), after).await else { return };
        let full = found.len() as i64 == PAGE;
        for entry in found {
            after = entry.id;
            let kind = match &entry.body {
                OrgRecordBody::Queued(_) => "queued",
                OrgRecordBody::Event(_) => "event",
                OrgRecordBody::Line(_) => "line",
                OrgRecordBody::End(_) => "end",
            };
            let data = serde_json::to_string(&entry).unwrap_or_default();
            if tx.send(SseEvent::default().id(entry.id.to_string()).event(kind).data(data)).await.is_err() {
                return;
            }
        }
        if full {
            continue;
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = state.shutdown.notified() => return,
            () = tx.closed() => return,
        }
    }
}

fn sse(
    state: AppState,
    org: String,
    repo: Option<String>,
    after: i64,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let (tx, rx) = tokio::sync::mpsc::channel::<SseEvent>(64);
    tokio::spawn(follow(state, org, repo, after, tx));
    let stream = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|e| (Ok(e), rx)) });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

/// Server-sent events of every build of an org, live: builds as they are queued and their
/// records, from `Last-Event-ID` (or `?after=`) on. Each SSE event's `id` is the entry's
/// number in the org's stream, its `event` the entry's kind and its `data` the entry's JSON.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/events", operation_id = "org_events", tag = "live",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("after" = Option<i64>, Query, description = "Entries after this one (default 0: from the start)"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Entries after this one, when resuming (wins over `after`)"),
    ),
    responses(
        (
            status = 200,
            description = "Server-sent events, one per entry, without end: `id` is the entry's number in the org's \
                stream, `event` its kind (`queued`: a build was queued; `event`, `line`, `end`: a record of a build) \
                and `data` the entry as JSON (see `OrgRecord`), which names its build",
            content_type = "text/event-stream",
            body = String,
        ),
        (status = 400, description = "A `Last-Event-ID` that is not an entry number, or a malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn org_events(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(query): Query<RecordsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    check_scope(&state, &caller, &org, None).await?;
    let after = resume_after(&headers, query.after, "an event number")?;
    Ok(sse(state, org, None, after))
}

/// The long-poll fallback of an org's events: entries after `after`, waiting up to `wait`
/// seconds for one.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/records", operation_id = "org_records", tag = "live",
    security(("bearer" = [])),
    params(("org" = String, Path, description = "The org's id"), RecordsQuery),
    responses(
        (status = 200, description = "Up to 500 entries after `after`, in order; none if `wait` passed first", body = [OrgRecord]),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn org_records(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Query(query): Query<RecordsQuery>,
) -> Result<Json<Vec<OrgRecord>>, ApiError> {
    check_scope(&state, &caller, &org, None).await?;
    poll(&state, &org, None, &query).await
}

/// Server-sent events of every build of one repository, as the org's (its ids are the org's
/// entry numbers).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/repos/{repo}/events", operation_id = "repo_events", tag = "live",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
        ("after" = Option<i64>, Query, description = "Entries after this one (default 0: from the start)"),
        ("Last-Event-ID" = Option<i64>, Header, description = "Entries after this one, when resuming (wins over `after`)"),
    ),
    responses(
        (
            status = 200,
            description = "Server-sent events of the repository's builds, as the org's events",
            content_type = "text/event-stream",
            body = String,
        ),
        (status = 400, description = "A `Last-Event-ID` that is not an entry number, or a malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org or repository", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn repo_events(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, repo)): Path<(String, String)>,
    Query(query): Query<RecordsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>>, ApiError> {
    check_scope(&state, &caller, &org, Some(&repo)).await?;
    let after = resume_after(&headers, query.after, "an event number")?;
    Ok(sse(state, org, Some(repo), after))
}

/// The long-poll fallback of a repository's events.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/repos/{repo}/records", operation_id = "repo_records", tag = "live",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
        RecordsQuery,
    ),
    responses(
        (status = 200, description = "Up to 500 entries after `after`, in order; none if `wait` passed first", body = [OrgRecord]),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org or repository", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn repo_records(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, repo)): Path<(String, String)>,
    Query(query): Query<RecordsQuery>,
) -> Result<Json<Vec<OrgRecord>>, ApiError> {
    check_scope(&state, &caller, &org, Some(&repo)).await?;
    poll(&state, &org, Some(&repo), &query).await
}
