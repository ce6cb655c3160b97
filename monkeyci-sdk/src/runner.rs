//! The seams between the scheduler and the outside world: where events go, who runs container
//! jobs and who approves blocked jobs. The script process plugs in the build API client;
//! `testing` plugs in in-memory versions.

use parking_lot::Mutex;

use crate::ctx::Ctx;
use crate::dsl::JobError;
use crate::future::BoxFuture;
use crate::protocol::{ArtifactSpec, ContainerRequest, ContainerResult, Event};

/// Receives every event of a build, in order. Must not block.
pub(crate) trait EventSink: Send + Sync {
    fn emit(&self, event: Event);

    /// Waits until every event emitted so far is where it goes (the build API has it).
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
}

/// Runs container jobs to completion. Running the same (job, attempt) twice runs one
/// container. While the container runs, the calling job counts as only waiting (see
/// `Ctx::waiting_for_container`).
pub(crate) trait ContainerRunner: Send + Sync {
    fn run<'a>(&'a self, ctx: &'a Ctx, request: ContainerRequest) -> BoxFuture<'a, Result<ContainerResult, JobError>>;
}

/// Keeps action jobs' artifacts: files of the work dir saved for later jobs of the build.
pub(crate) trait ArtifactStore: Send + Sync {
    /// Saves `artifact.path` of the job's work dir as artifact `artifact.id`.
    fn save<'a>(&'a self, ctx: &'a Ctx, artifact: ArtifactSpec) -> BoxFuture<'a, Result<(), JobError>>;
    /// Restores an artifact into the job's work dir; `Ok(false)` when it does not exist.
    fn restore<'a>(&'a self, ctx: &'a Ctx, id: &'a str) -> BoxFuture<'a, Result<bool, JobError>>;
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
