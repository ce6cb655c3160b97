//! The values a pipeline is made of: [`Job`]s, [`ContainerJob`] specs, job errors, the
//! traits that connect `#[job]` functions to them, and the definitions `#[job]` and
//! `#[pipeline]` register ([`JobDef`], [`PipelineDef`]).
//!
//! Everything `#[job]` and `#[pipeline]` generate ends up as these values, so tests and
//! `#[pipeline]` functions can build the same things without a macro. Nothing here plans or
//! runs a job.

mod container;
mod error;
mod job;
mod registry;

pub use container::{Artifact, Cache, ContainerJob, artifact, cache, container};
pub use error::{JobError, ResultExt};
pub(crate) use job::{ActionFn, JobBodyKind, output_to_json};
pub use job::{Job, JobId, JobMarker, JobOutput};
pub use registry::{ActionFuture, Condition, JobBody, JobDef, PipelineDef};
