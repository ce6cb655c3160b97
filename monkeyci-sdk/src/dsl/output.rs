//! What ties a `#[job]` or `#[pipeline]` function to the values it hands on: [`JobMarker`] (the
//! type naming a job and its output), [`PipelineMarker`] and [`PipelineOutput`] (the type naming
//! a pipeline, and the output of its jobs), [`JobOutput`] (what an output must be to be kept as
//! JSON) and [`OutputType`] (an output type, named, for checks when the build is planned).
//!
//! These traits know nothing of the build context or of running jobs, so both the job
//! definitions and [`Ctx::output`](crate::Ctx::output) can stand on them.

use std::any::TypeId;

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

/// The type `#[pipeline]` generates beside a pipeline function, with the function's name: it
/// names the pipeline, so a `#[job]` can depend on every job it makes (`depends_on =
/// [matrix]`, or [`JobId::all_of`](crate::JobId::all_of) in a builder).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a #[pipeline]",
    label = "not declared with #[pipeline]",
    note = "`JobId::all_of::<P>()` and `ctx.output_of::<P>(id)` take functions declared with `#[pipeline]`"
)]
pub trait PipelineMarker {
    /// The pipeline function's name, for messages.
    const NAME: &'static str;
    /// What tells it from every other pipeline of the crate: its module path and name.
    const KEY: &'static str;
}

/// A pipeline that declares the output of its jobs, `#[pipeline(output = T)]`: later jobs read
/// them typed, by id, with [`Ctx::output_of`](crate::Ctx::output_of). Planning checks that
/// each of its action jobs returns a `T` (its container jobs, `()`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a #[pipeline] that declares its jobs' output type",
    label = "`output_of` reads the jobs of a `#[pipeline(output = T)]`",
    note = "declare what a pipeline's jobs return with `#[pipeline(output = T)]`; read a #[job]'s output with `ctx.output::<J>()`"
)]
pub trait PipelineOutput: PipelineMarker {
    /// What each of its jobs returns: a [`JobOutput`], checked where the pipeline declares it
    /// (a bound here would report a bad type twice, in serde's words rather than ours).
    type Output;
}

/// A job's output type, named: what a `#[pipeline(output = T)]` declares and what
/// [`Job::action`](crate::Job::action) returns, compared when the build is planned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputType {
    id: TypeId,
    name: &'static str,
}

impl OutputType {
    /// The type `T`.
    pub fn of<T: JobOutput>() -> OutputType {
        OutputType { id: TypeId::of::<T>(), name: std::any::type_name::<T>() }
    }

    /// Its name as written in code, without module paths: `Vec<Report>`, not
    /// `alloc::vec::Vec<my_pipeline::Report>`.
    pub fn name(&self) -> String {
        let mut short = String::with_capacity(self.name.len());
        let mut segment = String::new();
        let mut chars = self.name.chars().peekable();
        while let Some(c) = chars.next() {
            if c.is_alphanumeric() || c == '_' {
                segment.push(c);
            } else if c == ':' && chars.peek() == Some(&':') {
                chars.next();
                segment.clear();
            } else {
                short.push_str(&segment);
                segment.clear();
                short.push(c);
            }
        }
        short.push_str(&segment);
        short
    }
}

/// An action job's output as JSON, or the job's error.
/// An output nested deeper than this (arrays and objects in one another) is refused: the build
/// API, and every reader of the journal, parse JSON at most 128 levels deep, and the output
/// travels inside a few levels of its own.
pub(crate) const MAX_OUTPUT_DEPTH: usize = 100;

/// An action job's output as JSON, or the job's error (also when the output is nested deeper
/// than [`MAX_OUTPUT_DEPTH`], which could not be delivered).
pub(crate) fn output_to_json<T: JobOutput>(output: Result<T, JobError>) -> Result<serde_json::Value, JobError> {
    let value = output?;
    let json = serde_json::to_value(&value)
        .map_err(|err| JobError::with_source("the job's output cannot be stored as JSON", err))?;
    if depth(&json) > MAX_OUTPUT_DEPTH {
        return Err(JobError::msg(format!(
            "the job's output is nested deeper than {MAX_OUTPUT_DEPTH} levels (arrays and objects in one another), \
             more than the build can keep; return a flatter value"
        )));
    }
    Ok(json)
}

/// How deep arrays and objects nest in `value` (a scalar: 0), without recursion.
fn depth(value: &serde_json::Value) -> usize {
    let mut deepest = 0;
    let mut stack = vec![(value, 0)];
    while let Some((value, level)) = stack.pop() {
        let children: Box<dyn Iterator<Item = &serde_json::Value>> = match value {
            serde_json::Value::Array(items) => Box::new(items.iter()),
            serde_json::Value::Object(fields) => Box::new(fields.values()),
            _ => continue,
        };
        deepest = deepest.max(level + 1);
        stack.extend(children.map(|child| (child, level + 1)));
    }
    deepest
}

/// A value an action job can return to its dependents: it is kept as JSON, so it must
/// serialize and deserialize.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be a #[job] output: it must be Serialize + DeserializeOwned",
    note = "derive `serde::Serialize` and `serde::Deserialize` for it"
)]
pub trait JobOutput: Serialize + DeserializeOwned + Send + 'static {}

impl<T: Serialize + DeserializeOwned + Send + 'static> JobOutput for T {}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> serde_json::Value {
        (0..levels).fold(serde_json::json!(1), |inner, _| serde_json::json!([inner]))
    }

    #[test]
    fn output_types_are_named_without_their_module_paths() {
        assert_eq!(OutputType::of::<String>().name(), "String");
        assert_eq!(OutputType::of::<Vec<Option<u32>>>().name(), "Vec<Option<u32>>");
        assert_eq!(
            OutputType::of::<(String, std::collections::BTreeMap<String, u8>)>().name(),
            "(String, BTreeMap<String, u8>)"
        );
    }

    #[test]
    fn outputs_are_refused_past_the_depth_the_build_can_keep() {
        assert_eq!(depth(&serde_json::json!("flat")), 0);
        assert_eq!(depth(&serde_json::json!({"a": [1, {"b": []}], "c": 2})), 4);
        assert!(output_to_json(Ok(nested(MAX_OUTPUT_DEPTH))).is_ok());
        let err = output_to_json(Ok(nested(200))).unwrap_err();
        assert!(err.to_string().contains("nested deeper than 100 levels"), "{err}");
    }
}
