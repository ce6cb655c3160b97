//! What ties a `#[job]` function to the values it hands on: [`JobMarker`] (the type naming a
//! job and its output) and [`JobOutput`] (what an output must be to be kept as JSON).
//!
//! These traits know nothing of the build context or of running jobs, so both the job
//! definitions and [`Ctx::output`](crate::Ctx::output) can stand on them.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dsl::error::JobError;

/// The type `#[job]` generates beside a job function, with the function's name: it names the
/// job and carries the type of its output, so `ctx.output::<build>()` is typed and
/// `depends_on = [build]` is checked by rustc. It lives in the type namespace only (like
/// Rocket's route structs), so the function stays an ordinary function and a local variable
/// may share the job's name.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a #[job]",
    label = "not declared with #[job]",
    note = "`depends_on`, `ctx.output::<J>()` and `JobId::of::<J>()` take functions declared with `#[job]`"
)]
pub trait JobMarker {
    /// What the job's dependents read with `ctx.output`.
    type Output: JobOutput;
    /// The job's id.
    const ID: &'static str;
}

/// An action job's output as JSON, or the job's error.
pub(crate) fn output_to_json<T: JobOutput>(output: Result<T, JobError>) -> Result<serde_json::Value, JobError> {
    let value = output?;
    serde_json::to_value(&value).map_err(|err| JobError::with_source("the job's output cannot be stored as JSON", err))
}

/// A value an action job can return to its dependents: it is kept as JSON, so it must
/// serialize and deserialize.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a #[job] output: it must be Serialize + DeserializeOwned",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait JobOutput: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> JobOutput for T {}
