//! Everything a pipeline usually needs: `use monkeyci_sdk::prelude::*;`.

pub use crate::ctx::{Ctx, Secret, ShellOutput};
pub use crate::dsl::{ContainerJob, Job, JobError, JobId, ResultExt, artifact, cache, container};
#[doc(inline)]
pub use crate::{job, pipeline};

/// `Result<T, JobError>`: what action jobs return.
pub type Result<T, E = JobError> = std::result::Result<T, E>;
