//! Support code for what `#[job]`, `#[pipeline]` and `main!` generate.
//!
//! **Not public API**: names and shapes here change without notice. Generated code reaches
//! this module through absolute paths (`::monkeyci_sdk::__private::...`) only.

use std::future::Future;
use std::pin::Pin;

pub use inventory;
pub use serde;

pub use crate::dsl::JobMarker;
use crate::dsl::{ContainerJob, Job, JobError, JobOutput};
use crate::ctx::Ctx;

/// A registered `#[job]`.
pub struct JobDef {
    /// The job id.
    pub id: &'static str,
    /// Ids of the jobs it depends on (a function, since they come from other jobs' markers).
    pub depends_on: fn() -> Vec<&'static str>,
    /// The `when` condition.
    pub when: Option<Condition>,
    /// Waits for approval.
    pub blocked: bool,
    /// Per-attempt time limit.
    pub timeout_ms: Option<u64>,
    /// Extra attempts on error.
    pub retries: u32,
    /// What it runs.
    pub body: JobBody,
    /// `file:line` of the declaration.
    pub location: &'static str,
}

/// A `when = predicate` condition and the predicate's name, for messages.
pub struct Condition {
    /// The predicate.
    pub check: fn(&Ctx) -> bool,
    /// As written in the attribute.
    pub name: &'static str,
}

/// The future an action job returns, type-erased.
pub type ActionFuture = Pin<Box<dyn Future<Output = Result<serde_json::Value, JobError>> + Send + 'static>>;

/// What a registered job runs.
pub enum JobBody {
    /// An async fn run in the script process.
    Action(fn(Ctx) -> ActionFuture),
    /// A function building a container spec from the context.
    Container(fn(&Ctx) -> ContainerJob),
}

/// A registered `#[pipeline]` function.
pub struct PipelineDef {
    /// The function's name.
    pub name: &'static str,
    /// Computes the jobs.
    pub jobs: fn(&Ctx) -> Vec<Job>,
    /// `file:line` of the declaration.
    pub location: &'static str,
}

inventory::collect!(JobDef);
inventory::collect!(PipelineDef);

/// The id of a `#[job]`, through its marker.
pub fn job_id<J: JobMarker>(_job: &J) -> &'static str {
    J::ID
}

/// What an async `#[job]` may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for an action #[job]",
    label = "an async #[job] returns `Result<T>` or `()`",
    note = "an action job returns `Result<T>` (with `T: Serialize + Deserialize`) or nothing; \
            a job returning `ContainerJob` must not be `async`"
)]
pub trait ActionResult {
    /// What dependents read with `ctx.output`.
    type Output: JobOutput;
    /// The output as JSON, or the job's error.
    fn into_job_result(self) -> Result<serde_json::Value, JobError>;
}

impl<T: JobOutput, E: Into<JobError>> ActionResult for Result<T, E> {
    type Output = T;

    fn into_job_result(self) -> Result<serde_json::Value, JobError> {
        let value = self.map_err(Into::into)?;
        serde_json::to_value(&value).map_err(|err| JobError::with_source("the job's output cannot be stored as JSON", err))
    }
}

impl ActionResult for () {
    type Output = ();

    fn into_job_result(self) -> Result<serde_json::Value, JobError> {
        Ok(serde_json::Value::Null)
    }
}

/// What a non-async `#[job]` may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a container #[job]",
    label = "a #[job] that is not async returns `ContainerJob`",
    note = "make the function `async` to declare an action job"
)]
pub trait IntoContainerJob {
    /// What dependents read with `ctx.output`.
    type Output: JobOutput;
    /// The spec.
    fn into_container_job(self) -> ContainerJob;
}

impl IntoContainerJob for ContainerJob {
    type Output = ();

    fn into_container_job(self) -> ContainerJob {
        self
    }
}

/// What a `#[pipeline]` function may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a #[pipeline]",
    label = "a #[pipeline] returns `Vec<Job>` (or any iterator of `Job`s)"
)]
pub trait IntoJobs {
    /// The jobs.
    fn into_jobs(self) -> Vec<Job>;
}

impl<I: IntoIterator<Item = Job>> IntoJobs for I {
    fn into_jobs(self) -> Vec<Job> {
        self.into_iter().collect()
    }
}

/// The body of `main!()`: runs the script as the runtime asked.
pub fn run_main() -> std::process::ExitCode {
    crate::script::main()
}
