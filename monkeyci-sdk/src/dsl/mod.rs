//! The values a pipeline is made of: [`Job`]s, [`ContainerJob`] specs, job errors and the
//! traits that connect `#[job]` functions to them.
//!
//! Everything `#[job]` and `#[pipeline]` generate ends up as these values, so tests and
//! `#[pipeline]` functions can build the same things without a macro. Nothing here runs a job.

mod container;
mod error;
mod job;

pub use container::{Artifact, Cache, ContainerJob, artifact, cache, container};
pub use error::{JobError, ResultExt};
pub(crate) use job::{ActionFn, JobBodyKind};
pub use job::{Job, JobId, JobMarker, JobOutput};
