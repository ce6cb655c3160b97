//! The journal: what a script has done, so a relaunched script can replay it instead of doing
//! it again. Entries are keyed by job and sequence within the job; the runtime keeps them with
//! the build and hands them back on resume.

use serde::{Deserialize, Serialize};

use super::JobStatus;

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
    },
    /// A `ctx.run` step of an action job ended (`seq` is 1 + the step number).
    #[serde(rename = "ctx/run")]
    RunResult {
        /// What the step ran (image, script, command), to detect a diverging replay.
        digest: String,
        /// How its container ended.
        result: super::ContainerResult,
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
