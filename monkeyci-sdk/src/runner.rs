//! The seams between the scheduler and the outside world: where events go, who runs container
//! jobs, who keeps artifacts and who approves blocked jobs. The script process plugs in the
//! build API client; `testing` plugs in in-memory versions.
//!
//! The seams know nothing of [`Ctx`](crate::Ctx) or of the build's state: they get what
//! they act on (a request, a work dir, a job id) and hand back a result.

use std::path::Path;
use std::sync::Arc;

use parking_lot::Mutex;

use crate::dsl::error::JobError;
use crate::future::BoxFuture;
use crate::protocol::{ArtifactSpec, ContainerRequest, ContainerResult, Event};

/// Where a build's effects go: events, containers, approvals and artifacts.
pub(crate) struct Seams {
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) containers: Arc<dyn ContainerRunner>,
    pub(crate) approver: Arc<dyn Approver>,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
}

/// Receives every event of a build, in order. Must not block.
pub(crate) trait EventSink: Send + Sync {
    fn emit(&self, event: Event);

    /// Waits until every event emitted so far is where it goes (the build API has it).
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Runs container jobs to completion, in two steps: [`start`](ContainerRunner::start), then,
/// if the container still runs, [`wait`](ContainerRunner::wait). Starting the same (job,
/// attempt) twice starts one container. Between the two, the caller counts the job as only
/// waiting (the script may suspend then).
pub(crate) trait ContainerRunner: Send + Sync {
    /// Starts the container of `request`, or finds the one already started for its job and
    /// attempt.
    fn start<'a>(&'a self, request: &'a ContainerRequest) -> BoxFuture<'a, Result<Started, JobError>>;
    /// Waits for the started container `id` of `request` to end.
    fn wait<'a>(
        &'a self,
        request: &'a ContainerRequest,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerResult, JobError>>;
}

/// A started container job.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Started {
    /// It already ended (a resumed script finding it again, or a fake engine).
    Ended(ContainerResult),
    /// It runs, under this id: [`ContainerRunner::wait`] for it.
    Running(String),
}

/// Keeps action jobs' artifacts: files of a job's work dir saved for later jobs of the build.
pub(crate) trait ArtifactStore: Send + Sync {
    /// Saves `artifact.path` of `work_dir` as artifact `artifact.id`.
    fn save<'a>(&'a self, work_dir: &'a Path, artifact: ArtifactSpec) -> BoxFuture<'a, Result<(), JobError>>;
    /// Restores an artifact into `work_dir`; `Ok(false)` when it does not exist.
    fn restore<'a>(&'a self, work_dir: &'a Path, id: &'a str) -> BoxFuture<'a, Result<bool, JobError>>;
}

/// Decides whether a blocked job may run; may wait for a person.
pub(crate) trait Approver: Send + Sync {
    fn approve<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<bool, JobError>>;
}

/// Keeps events in memory (tests, benchmarks).
#[derive(Default)]
pub(crate) struct MemorySink {
    pub(crate) events: Mutex<Vec<Event>>,
}

impl EventSink for MemorySink {
    fn emit(&self, event: Event) {
        self.events.lock().push(event);
    }
}
