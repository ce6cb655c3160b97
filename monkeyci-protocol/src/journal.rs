//! The journal: what a script has done, so a relaunched script can replay it instead of doing
//! it again. Entries are keyed by job and sequence within the job; the runtime keeps them with
//! the build and hands them back on resume.

use serde::{Deserialize, Serialize};

use crate::JobStatus;

/// One journaled step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The job it belongs to.
    pub job_id: String,
    /// Its position among the job's entries, from 0.
    pub seq: u32,
    /// What happened.
    #[serde(flatten)]
    pub record: JournalRecord,
}

/// What a journal entry records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum JournalRecord {
    /// The jobs the script planned when the build started (recorded under job id `""`): a
    /// resume must plan the same ones.
    #[serde(rename = "script/planned")]
    Planned {
        /// The planned job ids, in order.
        jobs: Vec<String>,
    },
    /// A container job's container was started (the build API has it).
    #[serde(rename = "container/dispatched")]
    ContainerDispatched {
        /// The attempt.
        attempt: u32,
        /// When (ms since the epoch), so a resumed job's duration counts from its start.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<u64>,
    },
    /// A `ctx.run` step of an action job ended (`seq` is 1 + the step number).
    #[serde(rename = "ctx/run")]
    RunResult {
        /// The job's attempt it belongs to.
        #[serde(default = "first_attempt")]
        attempt: u32,
        /// What the step ran (image, script, command), to detect a diverging replay.
        digest: String,
        /// How its container ended.
        result: crate::ContainerResult,
    },
    /// A `ctx.shell` step of an action job ended (`seq` is 1 + the step number). Its output
    /// is kept with secrets masked.
    #[serde(rename = "ctx/shell")]
    ShellResult {
        /// The job's attempt it belongs to.
        attempt: u32,
        /// The command, secrets masked, to detect a diverging replay.
        command: String,
        /// Its exit code; `None` when a signal killed it.
        code: Option<i32>,
        /// What it printed on stdout (masked).
        stdout: String,
        /// What it printed on stderr (masked).
        stderr: String,
        /// How many lines of the job's log it wrote, so a replay skips them too.
        lines: u64,
    },
    /// An action job declared `idempotent = false` started an attempt: if the script dies
    /// before the job ends, a resume fails the job instead of running it again.
    #[serde(rename = "job/start")]
    JobStart {
        /// The attempt.
        attempt: u32,
    },
    /// An action job was waiting for `ctx.run` containers when the script suspended: the
    /// resumed script continues that attempt and does not repeat its first `lines` log lines.
    #[serde(rename = "job/suspended")]
    JobSuspended {
        /// The attempt in flight.
        attempt: u32,
        /// Lines of the job's log written so far in that attempt.
        lines: u64,
        /// When the attempt started (ms since the epoch), so its duration spans the suspension.
        started_at_ms: u64,
    },
    /// A large record, kept in the runtime's blob store under `key`: the journal the build
    /// keeps holds this reference, and `GET /journal` hands back the record itself.
    #[serde(rename = "journal/stored")]
    Stored {
        /// Its blob key.
        key: String,
        /// The size of its JSON.
        bytes: u64,
    },
    /// A job ended: replay returns this instead of running it again.
    #[serde(rename = "job/end")]
    JobEnd {
        /// How it ended.
        status: JobStatus,
        /// Its last attempt.
        attempt: u32,
        /// Its output, for a job that succeeded.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        output: Option<serde_json::Value>,
        /// Why, when it did not succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
}

/// `GET /journal`: everything journaled so far in this build.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// The entries, in the order they were made.
    pub entries: Vec<JournalEntry>,
}

fn first_attempt() -> u32 {
    1
}
