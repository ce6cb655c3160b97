//! Wire types shared by the pipeline script and the runtime: the build context handed to a
//! script, events, plans and build API payloads.
//!
//! Both sides of every connection use these types, so they cannot drift. This module only
//! defines data and its (de)serialization; it performs no I/O.

mod build;
mod event;
mod journal;
mod plan;

pub use build::{ApiEndpoint, BuildInfo, Changes, GitInfo, ParamMap, ScriptConfig, ScriptMode, Source, SuspendMode};
pub use event::{BuildStatus, Event, EventKind, JobStatus, OutputStream};
pub use journal::{Journal, JournalEntry, JournalRecord};
pub use plan::{
    ArtifactSpec, CacheSpec, ContainerRequest, ContainerResult, ContainerSpec, ContainerStarted, ContainerState,
    JobKind, Plan, PlannedJob, RestoreSpec, SkippedJob,
};

/// The environment variable through which the runtime hands a [`ScriptConfig`] (as JSON) to
/// the pipeline script.
pub const SCRIPT_CONFIG_ENV: &str = "MONKEYCI_SCRIPT";

/// The exit code of a script that suspended: it exited while only container jobs run, and
/// wants to be relaunched with `resume` once one of them ends.
pub const SCRIPT_EXIT_SUSPENDED: u8 = 3;

/// Milliseconds since the Unix epoch: the time stamp of every event.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}
