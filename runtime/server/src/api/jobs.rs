//! A build's jobs and their logs (read from the build's stored records through the one fold of
//! an event stream, `monkeyci_build::state::BuildState`), retrying a build, and deciding about a
//! blocked job (the embedded agent's `crate::approvals` waits for the decision).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use monkeyci_build::state::BuildState;
use monkeyci_protocol::{EventKind, JobStatus, OutputStream};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::builds::{Queued, visible};
use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use crate::auth::Caller;
use crate::db::NewBuild;
use crate::model::{Record, RecordBody};

/// One job of a build, as its events tell it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Job {
    /// Its id.
    pub id: String,
    /// How it stands: `pending`, `queued`, `blocked` (waiting for approval), `running`,
    /// `success`, `failure`, `timeout`, `canceled` or `skipped`.
    #[schema(value_type = String, example = "success")]
    pub status: JobStatus,
    /// Its latest attempt, from 1 (0: it did not start).
    pub attempt: u32,
    /// When its latest attempt started, in milliseconds since the Unix epoch.
    pub started_ms: Option<u64>,
    /// How long its latest attempt ran, once it ended.
    pub duration_ms: Option<u64>,
    /// Why it ended as it did, or was skipped.
    pub message: Option<String>,
    /// Whether it may fail without failing the build.
    pub allow_failure: bool,
    /// The commands of its latest attempt.
    pub commands: Vec<JobCommand>,
    /// How many lines its log holds (see the logs route).
    pub log_lines: u64,
    /// The last lines its latest command wrote to stderr.
    pub stderr_tail: Vec<String>,
}

/// A command of a job: a container job's script line, or an action job's `ctx.shell`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobCommand {
    /// Its index in the job (from 0).
    pub index: usize,
    /// The command as written.
    pub line: String,
    /// Its exit code, once it ended.
    pub exit: Option<i32>,
}

/// What a line of a job's log is, as the job script protocol marks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogKind {
    /// A command starts: `line` is the command.
    Command,
    /// A line the job wrote to stdout.
    Stdout,
    /// A line the job wrote to stderr.
    Stderr,
    /// A command ended: `line` is its exit code.
    Exit,
}

/// One line of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Its place in the job's log, from 0: ask for `offset` = the next one to go on.
    pub offset: u64,
    /// When it was written, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// The attempt of the job it belongs to.
    pub attempt: u32,
    /// The command it belongs to (its index), if it is part of one.
    pub command: Option<usize>,
    /// What it is.
    pub kind: LogKind,
    /// The text (secrets masked).
    pub line: String,
}

/// A page of a job's log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct JobLog {
    /// The job.
    pub job: String,
    /// Its lines from the offset asked for, in order.
    pub lines: Vec<LogLine>,
    /// The offset to ask for next.
    pub next_offset: u64,
    /// Whether the log is complete: the job (or the build) is over and every line was sent.
    pub done: bool,
}

/// `GET /api/v1/builds/{id}/jobs/{job}/logs` query.
#[derive(Debug, Clone, Default, Serialize, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogsQuery {
    /// The first line to send (default 0).
    #[serde(default)]
    pub offset: u64,
    /// At most this many lines (default and most 5000).
    #[serde(default)]
    pub limit: Option<u64>,
}

/// The answer to an approval or a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Decided {
    /// The build.
    pub build: String,
    /// The job.
    pub job: String,
    /// Whether it may run.
    pub approved: bool,
}

/// The most lines a page of a log holds.
const LOG_PAGE: u64 = 5000;

/// The build's events folded, and each job's log lines, from its records.
struct Folded {
    state: BuildState,
    logs: std::collections::HashMap<String, Vec<LogLine>>,
}

fn fold(records: &[Record]) -> Folded {
    let mut state = BuildState::default();
    let mut logs: std::collections::HashMap<String, Vec<LogLine>> = std::collections::HashMap::new();
    for record in records {
        let RecordBody::Event(event) = &record.body else { continue };
        state.apply(event);
        let Some(job) = event.kind.job_id() else { continue };
        let current = state.job(job);
        // The command a line belongs to: the job's latest, while it has not ended.
        let running = current.and_then(|j| j.commands.last()).filter(|c| c.exit.is_none()).map(|c| c.index);
        let attempt = current.map_or(0, |j| j.attempt);
        let (kind, command, line) = match &event.kind {
            EventKind::CommandStart { command, line, .. } => (LogKind::Command, Some(*command), line.clone()),
            EventKind::JobOutput { stream: OutputStream::Stdout, line, .. } => (LogKind::Stdout, running, line.clone()),
            EventKind::JobOutput { stream: OutputStream::Stderr, line, .. } => (LogKind::Stderr, running, line.clone()),
            EventKind::CommandEnd { command, exit, .. } => (LogKind::Exit, Some(*command), exit.to_string()),
            _ => continue,
        };
        let log = logs.entry(job.to_owned()).or_default();
        let offset = log.len() as u64;
        log.push(LogLine { offset, time_ms: event.time, attempt, command, kind, line });
    }
    Folded { state, logs }
}

/// The jobs of a build, in plan order.
#[utoipa::path(
    get, path = "/api/v1/builds/{id}/jobs", operation_id = "build_jobs", tag = "builds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "Its jobs, in the order they appeared (plan order)", body = [Job]),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn jobs(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<Vec<Job>>, ApiError> {
    visible(&state, &caller, &id).await?;
    let folded = fold(&state.db.all_records(&id).await?);
    let jobs = folded
        .state
        .jobs()
        .iter()
        .map(|job| Job {
            id: job.id.clone(),
            status: job.status,
            attempt: job.attempt,
            started_ms: job.started_ms,
            duration_ms: job.duration_ms,
            message: job.message.clone(),
            allow_failure: job.allow_failure,
            commands: job
                .commands
                .iter()
                .map(|c| JobCommand { index: c.index, line: c.line.clone(), exit: c.exit })
                .collect(),
            log_lines: folded.logs.get(&job.id).map_or(0, |log| log.len() as u64),
            stderr_tail: job.stderr_tail.clone(),
        })
        .collect();
    Ok(Json(jobs))
}

/// A job's log from `offset`: its commands, as the job script marks them, and its output.
#[utoipa::path(
    get, path = "/api/v1/builds/{id}/jobs/{job}/logs", operation_id = "job_logs", tag = "builds",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The build's id"),
        ("job" = String, Path, description = "The job's id"),
        LogsQuery,
    ),
    responses(
        (status = 200, description = "The log's lines from `offset`; `done` once the job is over and all were sent", body = JobLog),
        (status = 400, description = "A malformed query", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token), or no such job in a build that is over", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn logs(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, job)): Path<(String, String)>,
    Query(query): Query<LogsQuery>,
) -> Result<Json<JobLog>, ApiError> {
    let build = visible(&state, &caller, &id).await?;
    let folded = fold(&state.db.all_records(&id).await?);
    let build_over = build.status.is_final() || folded.state.end().is_some();
    let job_over = match folded.state.job(&job) {
        Some(found) => found.status.is_final(),
        None if build_over => return Err(ApiError::NotFound(format!("build {id} has no job {job:?}"))),
        None => false,
    };
    let all = folded.logs.get(&job).map_or(&[][..], Vec::as_slice);
    let start = usize::try_from(query.offset).unwrap_or(usize::MAX).min(all.len());
    let limit = usize::try_from(query.limit.unwrap_or(LOG_PAGE).clamp(1, LOG_PAGE)).unwrap_or(usize::MAX);
    let lines: Vec<LogLine> = all[start..].iter().take(limit).cloned().collect();
    let next_offset = (start + lines.len()) as u64;
    let done = (job_over || build_over) && next_offset == all.len() as u64;
    Ok(Json(JobLog { job, lines, next_offset, done }))
}

/// Queues a new build of the same repository, ref and commit as a build that is over, saying
/// which build it retries.
#[utoipa::path(
    post, path = "/api/v1/builds/{id}/retry", operation_id = "retry_build", tag = "builds",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 202, description = "The new build, queued", body = Queued),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 409, description = "The build is not over yet, or its repository was removed", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn retry(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let build = visible(&state, &caller, &id).await?;
    if !build.status.is_final() {
        return Err(ApiError::Conflict(format!("build {id} is not over ({}): cancel it first", build.status)));
    }
    let retry_of = Some(build.id.clone());
    let new = NewBuild { source: "api".to_owned(), retry_of, ..NewBuild::again(build) };
    let queued = state.db.queue_build(&new).await?;
    if let Some(agent) = &state.agent {
        agent.wake();
    }
    Ok((StatusCode::ACCEPTED, Json(Queued { id: queued.id, number: queued.number })))
}

/// Lets a blocked job that waits for approval run.
#[utoipa::path(
    post, path = "/api/v1/builds/{id}/jobs/{job}/approve", operation_id = "approve_job", tag = "builds",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The build's id"),
        ("job" = String, Path, description = "The job's id"),
    ),
    responses(
        (status = 200, description = "Approved: the job runs", body = Decided),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 409, description = "The job does not wait for approval (now)", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn approve(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, job)): Path<(String, String)>,
) -> Result<Json<Decided>, ApiError> {
    decide(&state, &caller, id, job, true).await
}

/// Keeps a blocked job that waits for approval from running: it is skipped.
#[utoipa::path(
    post, path = "/api/v1/builds/{id}/jobs/{job}/reject", operation_id = "reject_job", tag = "builds",
    security(("bearer" = [])),
    params(
        ("id" = String, Path, description = "The build's id"),
        ("job" = String, Path, description = "The job's id"),
    ),
    responses(
        (status = 200, description = "Rejected: the job is skipped", body = Decided),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "An org token that does not reach the build (or there is none)", body = ErrorBody),
        (status = 404, description = "No such build (admin token)", body = ErrorBody),
        (status = 409, description = "The job does not wait for approval (now)", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn reject(
    State(state): State<AppState>,
    caller: Caller,
    Path((id, job)): Path<(String, String)>,
) -> Result<Json<Decided>, ApiError> {
    decide(&state, &caller, id, job, false).await
}

async fn decide(
    state: &AppState,
    caller: &Caller,
    id: String,
    job: String,
    approved: bool,
) -> Result<Json<Decided>, ApiError> {
    visible(state, caller, &id).await?;
    if !state.db.decide(&id, &job, approved).await? {
        return Err(ApiError::Conflict(format!("job {job:?} of build {id} does not wait for approval")));
    }
    Ok(Json(Decided { build: id, job, approved }))
}

#[cfg(test)]
mod tests {
    use monkeyci_protocol::Event;

    use super::*;

    fn record(seq: i64, time: u64, kind: EventKind) -> Record {
        Record { seq, body: RecordBody::Event(Event { time, kind }) }
    }

    #[test]
    fn a_jobs_log_marks_each_command_and_the_output_inside_it() {
        let job = || "build".to_owned();
        let records = [
            record(1, 1, EventKind::JobStart { job_id: job(), attempt: 1 }),
            record(2, 2, EventKind::JobOutput { job_id: job(), stream: OutputStream::Stdout, line: "before".into() }),
            record(3, 3, EventKind::CommandStart { job_id: job(), command: 0, line: "make".into() }),
            record(
                4,
                4,
                EventKind::JobOutput { job_id: "other".into(), stream: OutputStream::Stdout, line: "x".into() },
            ),
            record(5, 5, EventKind::JobOutput { job_id: job(), stream: OutputStream::Stderr, line: "warn".into() }),
            record(6, 6, EventKind::CommandEnd { job_id: job(), command: 0, exit: 2 }),
            record(7, 7, EventKind::JobOutput { job_id: job(), stream: OutputStream::Stdout, line: "after".into() }),
        ];
        let folded = fold(&records);
        let log: Vec<_> = folded.logs["build"].iter().map(|l| (l.offset, l.kind, l.command, l.line.as_str())).collect();
        assert_eq!(
            log,
            [
                (0, LogKind::Stdout, None, "before"),
                (1, LogKind::Command, Some(0), "make"),
                (2, LogKind::Stderr, Some(0), "warn"),
                (3, LogKind::Exit, Some(0), "2"),
                (4, LogKind::Stdout, None, "after"),
            ]
        );
        assert_eq!(folded.state.job("build").map(|j| j.status), Some(JobStatus::Running));
        assert_eq!(folded.logs["other"].len(), 1);
    }
}
