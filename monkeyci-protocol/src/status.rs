//! How jobs and builds stand ([`JobStatus`], [`BuildStatus`]), and which stream an output
//! line came from ([`OutputStream`]).

use serde::{Deserialize, Serialize};

/// Which stream an output line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// The state of one job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    /// Waiting for its dependencies.
    Pending,
    /// Ready to start.
    Queued,
    /// Waiting for approval.
    Blocked,
    /// Running.
    Running,
    /// Finished successfully.
    Success,
    /// Finished with an error (or panicked).
    Failure,
    /// Ran longer than its timeout and was stopped.
    Timeout,
    /// Stopped because the build was canceled.
    Canceled,
    /// Did not run.
    Skipped,
}

impl JobStatus {
    /// Whether the job has finished, one way or another.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Success | JobStatus::Failure | JobStatus::Timeout | JobStatus::Canceled | JobStatus::Skipped
        )
    }

    /// Whether this status fails the build.
    pub fn is_failure(self) -> bool {
        matches!(self, JobStatus::Failure | JobStatus::Timeout | JobStatus::Canceled)
    }

    /// Whether this is a failure that a job declared `allow_failure` is allowed: a failure
    /// or a timeout, not a cancellation (a canceled build is never a success). Such a job
    /// keeps its status, does not fail the build, and counts as succeeded for its dependents.
    ///
    /// ```
    /// use monkeyci_protocol::JobStatus;
    ///
    /// assert!(JobStatus::Timeout.is_allowed_failure(true));
    /// assert!(!JobStatus::Failure.is_allowed_failure(false));
    /// assert!(!JobStatus::Canceled.is_allowed_failure(true));
    /// ```
    pub fn is_allowed_failure(self, allow_failure: bool) -> bool {
        allow_failure && matches!(self, JobStatus::Failure | JobStatus::Timeout)
    }

    /// The lowercase name used on the wire and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Pending => "pending",
            JobStatus::Queued => "queued",
            JobStatus::Blocked => "blocked",
            JobStatus::Running => "running",
            JobStatus::Success => "success",
            JobStatus::Failure => "failure",
            JobStatus::Timeout => "timeout",
            JobStatus::Canceled => "canceled",
            JobStatus::Skipped => "skipped",
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// Every job that ran succeeded.
    Success,
    /// A job failed.
    Failure,
    /// The pipeline could not be planned (cycle, unknown job, bad configuration).
    Error,
    /// The build was canceled.
    Canceled,
}

impl BuildStatus {
    /// The lowercase name used on the wire and in output.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Success => "success",
            BuildStatus::Failure => "failure",
            BuildStatus::Error => "error",
            BuildStatus::Canceled => "canceled",
        }
    }
}

impl std::fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
