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
pub use crate::dsl::output::JobMarker;
use crate::dsl::output::{JobOutput, output_to_json};
pub use crate::dsl::registry::{ActionFuture, Condition, JobBody, JobDef, PipelineDef};

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

/// The output of the `#[job]` `J` as JSON, or the job's error. Its bound is `J: JobMarker`, not `T: JobOutput`,
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
