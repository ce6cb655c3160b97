//! The journal: what a script has done, so a relaunched script can replay it instead of doing
//! it again. Entries are keyed by job and [`StepKey`] within the job (on the wire, a number:
//! `seq`); the runtime keeps them with the build, opaquely, and hands them back on resume.
//!
//! [`StepKey`] is the one place where `seq` numbers get their meaning; nothing else reads or
//! writes them by hand.

use serde::{Deserialize, Serialize};

use crate::plan::{ContainerResult, ContainerSpec};
use crate::status::JobStatus;

/// One journaled step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// The job it belongs to.
    pub job_id: String,
    /// Its position among the job's entries, from 0: a [`StepKey`] as a number (see
    /// [`JournalEntry::key`]).
    pub seq: u32,
    /// What happened.
    #[serde(flatten)]
    pub record: JournalRecord,
}

impl JournalEntry {
    /// An entry of job `job_id` at `key`.
    pub fn new(job_id: impl Into<String>, key: StepKey, record: JournalRecord) -> JournalEntry {
        JournalEntry { job_id: job_id.into(), seq: key.into(), record }
    }

    /// Where the entry stands among its job's entries.
    pub fn key(&self) -> StepKey {
        StepKey::from(self.seq)
    }
}

/// Where an entry stands among its job's entries: the wire's `seq`, named.
///
/// ```
/// use monkeyci_protocol::StepKey;
///
/// assert_eq!(u32::from(StepKey::Job), 0);
/// assert_eq!(u32::from(StepKey::End), 1);
/// assert_eq!(u32::from(StepKey::Step(1)), 2);
/// assert_eq!(StepKey::from(2), StepKey::Step(1));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StepKey {
    /// An entry about the job as a whole, before and between its steps: the plan (under job
    /// id `""`), an attempt's start, its container's dispatch, its suspension. `seq` 0.
    Job,
    /// The job's end. `seq` 1.
    End,
    /// The result of step `n` (from 1) of an action job: a `ctx.run` or `ctx.shell`. `seq`
    /// 1 + `n`.
    Step(u32),
}

impl From<StepKey> for u32 {
    fn from(key: StepKey) -> u32 {
        match key {
            StepKey::Job => 0,
            StepKey::End => 1,
            // Steps count from 1, so none lands on `End`.
            StepKey::Step(n) => n.max(1).saturating_add(1),
        }
    }
}

impl From<u32> for StepKey {
    fn from(seq: u32) -> StepKey {
        match seq {
            0 => StepKey::Job,
            1 => StepKey::End,
            n => StepKey::Step(n - 1),
        }
    }
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
        /// The spec dispatched, when it was resolved at run time from the outputs of the
        /// job's dependencies: a resumed script awaits this container, as it was started.
        /// Boxed: most dispatches carry none, and events should stay small.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        spec: Option<Box<ContainerSpec>>,
    },
    /// A `ctx.run` step of an action job ended (at [`StepKey::Step`]).
    #[serde(rename = "ctx/run")]
    RunResult {
        /// The job's attempt it belongs to.
        #[serde(default = "first_attempt")]
        attempt: u32,
        /// What the step ran (image, script, command), to detect a diverging replay.
        digest: String,
        /// How its container ended.
        result: ContainerResult,
    },
    /// A `ctx.shell` step of an action job ended (at [`StepKey::Step`]). Its output
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_keys_are_the_seq_numbers_of_the_wire() {
        for (key, seq) in [(StepKey::Job, 0), (StepKey::End, 1), (StepKey::Step(1), 2), (StepKey::Step(7), 8)] {
            assert_eq!(u32::from(key), seq, "{key:?}");
            assert_eq!(StepKey::from(seq), key, "{seq}");
        }
        assert_eq!(StepKey::from(u32::MAX), StepKey::Step(u32::MAX - 1));
        assert_eq!(u32::from(StepKey::Step(u32::MAX)), u32::MAX, "saturates rather than wraps");
    }

    #[test]
    fn an_entry_made_from_a_key_is_the_json_it_always_was() {
        let entry = JournalEntry::new("build", StepKey::Step(1), JournalRecord::JobStart { attempt: 1 });
        assert_eq!(entry.key(), StepKey::Step(1));
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(json, r#"{"job_id":"build","seq":2,"kind":"job/start","attempt":1}"#);
        let back: JournalEntry = serde_json::from_str(&json).unwrap();
        assert_eq!(back, entry);
    }
}
