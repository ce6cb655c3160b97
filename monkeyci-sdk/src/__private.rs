//! Support code for what `#[job]`, `#[pipeline]` and `main!` generate.
//!
//! **Not public API**: names and shapes here change without notice. Generated code reaches
//! this module through absolute paths (`::monkeyci_sdk::__private::...`) only.

pub use inventory;
pub use serde;

use crate::dsl::container::ContainerJob;
pub use crate::dsl::env::PipelineEnv;
use crate::dsl::error::JobError;
use crate::dsl::job::Job;
use crate::dsl::job::JobId;
pub use crate::dsl::output::{JobMarker, OutputType, PipelineMarker};
use crate::dsl::output::{JobOutput, output_to_json};
pub use crate::dsl::registry::{ActionFuture, Condition, JobBody, JobDef, PipelineDef};

/// What `depends_on = [name]` may name: a `#[job]` or a `#[pipeline]` (every job it makes).
/// The macros implement it on each marker.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is neither a #[job] nor a #[pipeline]",
    label = "not declared with #[job] or #[pipeline]",
    note = "`depends_on` lists functions declared with `#[job]` (that job) or `#[pipeline]` (every job it makes)"
)]
pub trait Dependency {
    /// The job or jobs it names.
    fn job_id() -> JobId;
}

/// What `depends_on = [D]` depends on.
pub fn dependency<D: Dependency>() -> JobId {
    D::job_id()
}

/// [`Dependency`] of a `#[job]`.
pub fn job_dependency<J: JobMarker>() -> JobId {
    JobId::of::<J>()
}

/// [`Dependency`] of a `#[pipeline]`.
pub fn pipeline_dependency<P: PipelineMarker>() -> JobId {
    JobId::all_of::<P>()
}

/// The output type a `#[pipeline(output = T)]` declares.
pub fn output_type<T: JobOutput>() -> OutputType {
    OutputType::of::<T>()
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

/// The output of the `#[job]` `J` as JSON, or the job's error. Its bound is `J: JobMarker`, not `T: JobOutput`,
/// so the generated body adds no check of its own: a bad output type is reported once, by
/// `J`'s `JobMarker` impl, under the job's return type.
pub fn job_output_to_json<J: JobMarker>(output: Result<J::Output, JobError>) -> Result<serde_json::Value, JobError> {
    output_to_json(output)
}

/// What a non-async `#[job]` may return.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a valid return type for a container #[job]",
    label = "a #[job] that is not async returns `ContainerJob` or `Result<ContainerJob>`",
    note = "make the function `async` to declare an action job"
)]
pub trait IntoContainerJob {
    /// What dependents read with `ctx.output`.
    type Output: JobOutput;
    /// The spec, or why it cannot be made.
    fn into_container_job(self) -> Result<ContainerJob, JobError>;
}

impl IntoContainerJob for ContainerJob {
    type Output = ();

    fn into_container_job(self) -> Result<ContainerJob, JobError> {
        Ok(self)
    }
}

impl<E: Into<JobError>> IntoContainerJob for Result<ContainerJob, E> {
    type Output = ();

    fn into_container_job(self) -> Result<ContainerJob, JobError> {
        self.map_err(Into::into)
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
