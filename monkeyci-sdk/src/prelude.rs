//! Everything a pipeline usually needs: `use monkeyci_sdk::prelude::*;`.

pub use crate::ctx::Ctx;
pub use crate::dsl::container::{Cache, ContainerJob, artifact, cache, container};
pub use crate::dsl::error::{JobError, ResultExt};
pub use crate::dsl::job::{Job, JobId};
pub use crate::durable::step::ShellOutput;
pub use crate::protocol::{Runs, Trigger};
pub use crate::secret::Secret;
#[doc(inline)]
pub use crate::{job, pipeline};

/// `Result<T, JobError>`: what action jobs return.
pub type Result<T, E = JobError> = std::result::Result<T, E>;
