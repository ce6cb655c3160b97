//! The vocabulary every part of MonkeyCI shares: the wire types of the build API and the event
//! stream, and the few rules that must read the same on every side.
//!
//! The pipeline script (through `monkeyci-sdk`), the `#[job]` macros, the runtime's crates
//! and, later, the server, the agents and the sidecar all use these definitions, so no two of
//! them can drift:
//! - what a build is about ([`BuildInfo`], [`GitInfo`], [`ScriptConfig`]);
//! - the event stream ([`Event`], [`EventKind`], [`JobStatus`], [`BuildStatus`]);
//! - plans and container jobs ([`Plan`], [`ContainerSpec`], [`ContainerRequest`]), and the
//!   rules of their caches' paths and keys ([`cache`]);
//! - the journal of a build ([`Journal`], [`JournalEntry`], [`StepKey`], [`JournalRecord`]);
//! - the one job-id rule ([`id`]), the one way to write and read durations ([`duration`]),
//!   secret masking ([`Masker`]) and how an error and its causes print ([`error_chain`]).
//!
//! This crate only defines data, its (de)serialization and pure rules. It performs no I/O,
//! starts no runtime and depends on nothing but serde and thiserror, and,
//! for masking, aho-corasick, base64 and percent-encoding.
//!
//! ```
//! use monkeyci_protocol::{Event, EventKind};
//!
//! let line = r#"{"time":1,"type":"script/start","jobs":[]}"#;
//! let event: Event = serde_json::from_str(line).unwrap();
//! assert!(matches!(event.kind, EventKind::ScriptStart { .. }));
//! ```
#![doc(test(attr(deny(warnings))))]

mod build;
pub mod cache;
pub mod duration;
mod event;
pub mod id;
mod journal;
mod mask;
mod plan;
mod status;
mod time;

pub use build::{
    ApiEndpoint, BuildInfo, Changes, GitInfo, ParamMap, ScriptConfig, ScriptMode, Source, SuspendMode, Trigger, VarMap,
};
pub use event::{Event, EventBatch, EventKind};
pub use journal::{Journal, JournalEntry, JournalRecord, StepKey};
pub use mask::Masker;
pub use plan::{
    ArtifactSpec, CacheSpec, ContainerRequest, ContainerResult, ContainerSpec, ContainerStarted, ContainerState,
    JobKind, MAX_SIZE, Plan, PlannedJob, RestoreSpec, Runs, SkippedJob,
};
pub use status::{BuildStatus, JobStatus, OutputStream};
pub use time::now_ms;

/// The environment variable through which the runtime hands a [`ScriptConfig`] (as JSON) to
/// the pipeline script.
pub const SCRIPT_CONFIG_ENV: &str = "MONKEYCI_SCRIPT";

/// The value of [`SCRIPT_CONFIG_ENV`] saying that the configuration comes as JSON on the
/// script's standard input instead: a build's configuration (a checkout's changed files) can
/// be larger than the 128 KiB the kernel allows one environment variable.
pub const SCRIPT_CONFIG_ON_STDIN: &str = "stdin";

/// The exit code of a script that suspended: it exited while only container jobs run, and
/// wants to be relaunched with `resume` once one of them ends.
pub const SCRIPT_EXIT_SUSPENDED: u8 = 3;

/// An error and each of its causes, joined by `: ` (`cannot save: disk full`): how every part
/// of MonkeyCI prints an error on one line.
///
/// ```
/// let io = std::io::Error::other("disk full");
/// assert_eq!(monkeyci_protocol::error_chain(&io), "disk full");
/// ```
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
