//! Support code for what `#[job]`, `#[pipeline]` and `main!` generate.
//!
//! **Not public API**: names and shapes here change without notice. Generated code reaches
//! this module through absolute paths (`::monkeyci_sdk::__private::...`) only.

pub use inventory;
pub use serde;

use crate::ctx::Ctx;
pub use crate::dsl::JobMarker;
use crate::dsl::{ContainerJob, Job, JobError, JobOutput};

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
    /// May run again after a crash or a suspension.
    pub idempotent: bool,
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
pub type ActionFuture = crate::future::BoxFuture<'static, Result<serde_json::Value, JobError>>;

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
pub fn job_id<J: JobMarker>() -> &'static str {
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
    /// The output, or the job's error.
    fn into_output(self) -> Result<Self::Output, JobError>;
}

impl<T: JobOutput, E: Into<JobError>> ActionResult for Result<T, E> {
    type Output = T;

    fn into_output(self) -> Result<T, JobError> {
        self.map_err(Into::into)
    }
}

impl ActionResult for () {
    type Output = ();

    fn into_output(self) -> Result<(), JobError> {
        Ok(())
    }
}

/// An action job's output as JSON, or the job's error.
pub fn output_to_json<T: JobOutput>(output: Result<T, JobError>) -> Result<serde_json::Value, JobError> {
    let value = output?;
    serde_json::to_value(&value).map_err(|err| JobError::with_source("the job's output cannot be stored as JSON", err))
}

/// [`output_to_json`] for the `#[job]` `J`. Its bound is `J: JobMarker`, not `T: JobOutput`,
/// so the generated body adds no check of its own: a bad output type is reported once, by
/// `J`'s `JobMarker` impl, under the job's return type.
pub fn job_output_to_json<J: JobMarker>(output: Result<J::Output, JobError>) -> Result<serde_json::Value, JobError> {
    output_to_json(output)
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
    label = "a #[pipeline] returns `Vec<Job>` (or any iterator of `Job`s)",
    note = "return a single job as `vec![job]`, and no job as `Vec::new()`"
)]
pub trait IntoJobs {
    /// The jobs.
    fn into_jobs(self) -> Vec<Job>;
}

impl<I> IntoJobs for I
where
    I: IntoIterator,
    I::Item: PipelineJob,
{
    fn into_jobs(self) -> Vec<Job> {
        self.into_iter().map(PipelineJob::into_job).collect()
    }
}

/// What a `#[pipeline]` function's iterator yields: a [`Job`]. A trait rather than
/// `IntoIterator<Item = Job>` so that a wrong item type gets this message, not a type mismatch.
#[diagnostic::on_unimplemented(
    message = "a #[pipeline] returns `Job`s, not `{Self}`",
    label = "expected an iterator of `Job`s",
    note = "make jobs with `Job::container(id, spec)` or `Job::action(id, f)`"
)]
pub trait PipelineJob {
    /// The job.
    fn into_job(self) -> Job;
}

impl PipelineJob for Job {
    fn into_job(self) -> Job {
        self
    }
}

/// The body of `main!()`: runs the script as the runtime asked.
pub fn run_main() -> std::process::ExitCode {
    crate::script::main()
}
