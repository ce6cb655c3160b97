//! Build events: every state change of a script and its jobs. The CLI renderer, the tests and
//! the server all consume the same stream.

use serde::{Deserialize, Serialize};

use crate::journal::JournalEntry;
use crate::plan::{Plan, PlannedJob, SkippedJob};
use crate::status::{BuildStatus, JobStatus, OutputStream};
use crate::time::now_ms;

/// One event, time-stamped in milliseconds since the Unix epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// When it happened.
    pub time: u64,
    /// What happened.
    #[serde(flatten)]
    pub kind: EventKind,
}

impl Event {
    /// An event stamped with the current time.
    pub fn now(kind: EventKind) -> Self {
        Event { time: now_ms(), kind }
    }
}

/// A numbered piece of a script's event stream, as the sdk posts it to the build API's
/// `POST /events`: `{"launch": L, "seq": N, "events": [...]}`.
///
/// `seq` counts the batches of one launch of the script from 1, and the API applies each
/// (`launch`, `seq`) once: a batch sent again (its answer was lost) is acknowledged and not
/// applied twice, so the script may resend until it is acknowledged. A bare array of events
/// is still taken, unnumbered (applied as often as it is sent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventBatch {
    /// Which launch of the script sent it (from 1; see `ScriptConfig::launch`).
    pub launch: u32,
    /// Its place in that launch's stream, from 1.
    pub seq: u64,
    /// The events, in order.
    pub events: Vec<Event>,
}

/// What happened, tagged on the wire by `type` (such as `"job/start"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum EventKind {
    /// The script planned its jobs and starts running them.
    #[serde(rename = "script/start")]
    ScriptStart {
        /// The jobs that will run, in dependency order.
        jobs: Vec<PlannedJob>,
        /// Jobs left out of this build, with the reason.
        #[serde(default)]
        skipped: Vec<SkippedJob>,
    },
    /// The script was asked only to plan; this is the plan.
    #[serde(rename = "script/plan")]
    ScriptPlan {
        /// The plan.
        plan: Plan,
    },
    /// The script finished.
    #[serde(rename = "script/end")]
    ScriptEnd {
        /// How the build ended.
        status: BuildStatus,
        /// Why, when it did not succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A job is part of the build and waits for its dependencies.
    #[serde(rename = "job/pending")]
    JobPending {
        /// The job.
        job_id: String,
    },
    /// A job's dependencies succeeded; it is about to start.
    #[serde(rename = "job/queued")]
    JobQueued {
        /// The job.
        job_id: String,
    },
    /// A job waits for approval.
    #[serde(rename = "job/blocked")]
    JobBlocked {
        /// The job.
        job_id: String,
    },
    /// A blocked job was approved.
    #[serde(rename = "job/unblocked")]
    JobUnblocked {
        /// The job.
        job_id: String,
    },
    /// An attempt of a job started running.
    #[serde(rename = "job/start")]
    JobStart {
        /// The job.
        job_id: String,
        /// 1 for the first attempt.
        attempt: u32,
    },
    /// A line of a job's output.
    #[serde(rename = "job/output")]
    JobOutput {
        /// The job.
        job_id: String,
        /// stdout or stderr.
        stream: OutputStream,
        /// The line, without its line ending; secrets are masked.
        line: String,
    },
    /// The job's summary: a short Markdown result for the build page and `build logs`
    /// (`ctx.summary(..)`); a later one replaces an earlier one.
    #[serde(rename = "job/summary")]
    JobSummary {
        /// The job.
        job_id: String,
        /// The summary, in Markdown; secrets are masked.
        markdown: String,
    },
    /// An attempt failed and the job will run again.
    #[serde(rename = "job/retrying")]
    JobRetrying {
        /// The job.
        job_id: String,
        /// The attempt that failed.
        attempt: u32,
        /// Why it failed.
        message: String,
    },
    /// A job finished.
    #[serde(rename = "job/end")]
    JobEnd {
        /// The job.
        job_id: String,
        /// The last attempt.
        attempt: u32,
        /// How it ended.
        status: JobStatus,
        /// Run time of the last attempt, in milliseconds.
        duration_ms: u64,
        /// Why, when it did not succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// A container job's container started running its script.
    #[serde(rename = "container/start")]
    ContainerStart {
        /// The job.
        job_id: String,
        /// The image (which the shell engine ignores).
        image: String,
        /// The engine running it: podman, docker or shell.
        engine: String,
        /// Its size (n CPUs and 2n GiB), which metering multiplies its time by; absent in
        /// events recorded before it was sent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u32>,
    },
    /// A script line of a container job started.
    #[serde(rename = "command/start")]
    CommandStart {
        /// The job.
        job_id: String,
        /// The line's index in the script, from 0.
        command: usize,
        /// The line itself (secrets masked).
        line: String,
    },
    /// A script line of a container job ended.
    #[serde(rename = "command/end")]
    CommandEnd {
        /// The job.
        job_id: String,
        /// The line's index in the script.
        command: usize,
        /// Its exit code.
        exit: i32,
    },
    /// A container job's container is gone.
    #[serde(rename = "container/end")]
    ContainerEnd {
        /// The job.
        job_id: String,
        /// How it ended.
        status: JobStatus,
        /// The exit code of the script (or of the image's command).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        exit: Option<i32>,
        /// Why, when it did not succeed.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        message: Option<String>,
    },
    /// The script journaled a step (kept with the build for a resume).
    #[serde(rename = "journal/record")]
    JournalRecord {
        /// The entry.
        entry: JournalEntry,
    },
    /// Every running job only waits for containers: the script exits until one of them ends.
    #[serde(rename = "script/suspended")]
    ScriptSuspended {
        /// The jobs waiting (container jobs, and action jobs waiting in `ctx.run`).
        waiting: usize,
    },
    /// The script was relaunched and replayed its journal.
    #[serde(rename = "script/resumed")]
    ScriptResumed {
        /// Journal entries replayed.
        replayed: usize,
    },
    /// A job did not run.
    #[serde(rename = "job/skipped")]
    JobSkipped {
        /// The job.
        job_id: String,
        /// Why.
        reason: String,
    },
}

impl EventKind {
    /// The job this event is about, if any.
    pub fn job_id(&self) -> Option<&str> {
        match self {
            EventKind::JobPending { job_id }
            | EventKind::JobQueued { job_id }
            | EventKind::JobBlocked { job_id }
            | EventKind::JobUnblocked { job_id }
            | EventKind::JobStart { job_id, .. }
            | EventKind::JobOutput { job_id, .. }
            | EventKind::JobSummary { job_id, .. }
            | EventKind::JobRetrying { job_id, .. }
            | EventKind::JobEnd { job_id, .. }
            | EventKind::ContainerStart { job_id, .. }
            | EventKind::CommandStart { job_id, .. }
            | EventKind::CommandEnd { job_id, .. }
            | EventKind::ContainerEnd { job_id, .. }
            | EventKind::JobSkipped { job_id, .. } => Some(job_id),
            EventKind::ScriptStart { .. }
            | EventKind::ScriptPlan { .. }
            | EventKind::ScriptEnd { .. }
            | EventKind::JournalRecord { .. }
            | EventKind::ScriptSuspended { .. }
            | EventKind::ScriptResumed { .. } => None,
        }
    }

    /// The wire name of the event, such as `job/start`.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::ScriptStart { .. } => "script/start",
            EventKind::ScriptPlan { .. } => "script/plan",
            EventKind::ScriptEnd { .. } => "script/end",
            EventKind::JobPending { .. } => "job/pending",
            EventKind::JobQueued { .. } => "job/queued",
            EventKind::JobBlocked { .. } => "job/blocked",
            EventKind::JobUnblocked { .. } => "job/unblocked",
            EventKind::JobStart { .. } => "job/start",
            EventKind::JobOutput { .. } => "job/output",
            EventKind::JobSummary { .. } => "job/summary",
            EventKind::JobRetrying { .. } => "job/retrying",
            EventKind::JobEnd { .. } => "job/end",
            EventKind::ContainerStart { .. } => "container/start",
            EventKind::CommandStart { .. } => "command/start",
            EventKind::CommandEnd { .. } => "command/end",
            EventKind::ContainerEnd { .. } => "container/end",
            EventKind::JobSkipped { .. } => "job/skipped",
            EventKind::JournalRecord { .. } => "journal/record",
            EventKind::ScriptSuspended { .. } => "script/suspended",
            EventKind::ScriptResumed { .. } => "script/resumed",
        }
    }
}
