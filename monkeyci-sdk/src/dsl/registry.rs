//! What `#[job]` and `#[pipeline]` register in the pipeline binary: a [`JobDef`] per job
//! function and a [`PipelineDef`] per pipeline function, collected with `inventory`.
//!
//! These are plain data that planning reads (`plan`) and generated code builds (through
//! `__private`); nothing here evaluates a condition or runs a job.

use crate::ctx::Ctx;
use crate::dsl::container::ContainerJob;
use crate::dsl::error::JobError;
use crate::dsl::job::{Job, JobId};
use crate::dsl::output::OutputType;
use crate::future::BoxFuture;

/// A registered `#[job]`.
pub struct JobDef {
    /// The job id.
    pub id: &'static str,
    /// The jobs and pipelines it depends on (a function, since they come from their markers).
    pub depends_on: fn() -> Vec<JobId>,
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
    /// Its failure does not fail the build.
    pub allow_failure: bool,
    /// When it runs, given how its dependencies ended.
    pub runs: crate::protocol::Runs,
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
pub type ActionFuture = BoxFuture<'static, Result<serde_json::Value, JobError>>;

/// What a registered job runs.
pub enum JobBody {
    /// An async fn run in the script process.
    Action(fn(Ctx) -> ActionFuture),
    /// A function building a container spec from the context (and the outputs of the job's
    /// dependencies, once they ended).
    Container(fn(&Ctx) -> Result<ContainerJob, JobError>),
}

/// A registered `#[pipeline]` function.
pub struct PipelineDef {
    /// The function's name.
    pub name: &'static str,
    /// Its module path and name, as its marker's `PipelineMarker::KEY`.
    pub key: &'static str,
    /// The output type its jobs declare, `#[pipeline(output = T)]`.
    pub output: Option<fn() -> OutputType>,
    /// Computes the jobs.
    pub jobs: fn(&Ctx) -> Vec<Job>,
    /// `file:line` of the declaration.
    pub location: &'static str,
}

inventory::collect!(JobDef);
inventory::collect!(PipelineDef);
