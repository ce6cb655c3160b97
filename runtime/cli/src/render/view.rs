//! The summary table of a build, and the colours of job statuses: formatting into a buffer,
//! shared by the live and plain styles and by `build logs`.

use std::io::Write;

use monkeyci_build::state::{BuildState, JobState};
use monkeyci_protocol::JobStatus;

/// The table printed at the end of a build (and by `build logs`): job, status, duration,
/// message; the last stderr lines of each failed job; then how the build ended.
pub(crate) fn summary(state: &BuildState, out: &mut Vec<u8>, color: bool) {
    if state.jobs().is_empty() {
        return;
    }
    let width = state.jobs().iter().map(|j| j.id.len()).max().unwrap_or(3).max(3);
    let status_width = state.jobs().iter().map(|j| status_text(j).len()).max().unwrap_or(8).max(8);
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<width$}  {:<status_width$}  {:>9}  MESSAGE", "JOB", "STATUS", "DURATION");
    for job in state.jobs() {
        let duration = job.duration_ms.map(format_ms).unwrap_or_default();
        let message = job.message.as_deref().unwrap_or("").lines().next().unwrap_or("");
        let status = paint_job(color, job, &format!("{:<status_width$}", status_text(job)));
        let line = format!("{:<width$}  {status}  {duration:>9}  {message}", job.id);
        let _ = writeln!(out, "{}", line.trim_end());
    }
    // What failed in each failed job's last command.
    for job in state.jobs() {
        if matches!(job.status, JobStatus::Failure | JobStatus::Timeout) && !job.stderr_tail.is_empty() {
            let _ = writeln!(out, "\n{}: the last lines of its stderr:", job.id);
            for line in &job.stderr_tail {
                let _ = writeln!(out, "  ! {line}");
            }
        }
    }
    job_summaries(state, None, out);
    if let Some((status, message)) = state.end() {
        let _ = write!(out, "\nbuild {status}");
        if let Some(message) = message {
            let _ = write!(out, ": {message}");
        }
        let _ = writeln!(out);
    }
}

/// The summaries jobs left (`ctx.summary`), each under its job's name; only `job`'s when
/// given.
pub(crate) fn job_summaries(state: &BuildState, job: Option<&str>, out: &mut Vec<u8>) {
    for state in state.jobs().iter().filter(|state| job.is_none_or(|job| state.id == job)) {
        if let Some(summary) = &state.summary {
            let _ = writeln!(out, "\nsummary of {}:", state.id);
            for line in summary.lines() {
                let _ = writeln!(out, "  {}", super::plain::strip_ansi(line));
            }
        }
    }
}

pub(crate) use monkeyci_protocol::duration::clock as format_ms;

/// A job's status as people read it: `failure (allowed)` for a job allowed to fail.
pub(crate) fn status_text(job: &JobState) -> String {
    if job.failed_allowed() { format!("{} (allowed)", job.status) } else { job.status.as_str().to_owned() }
}

/// Colors a job's status for a terminal: a failure it is allowed is a warning, not an error.
pub(crate) fn paint_job(color: bool, job: &JobState, text: &str) -> String {
    if color && job.failed_allowed() {
        return format!("\x1b[33m{text}\x1b[0m");
    }
    paint(color, job.status, text)
}

/// Colors a status for a terminal.
fn paint(color: bool, status: JobStatus, text: &str) -> String {
    if !color {
        return text.to_owned();
    }
    let code = match status {
        JobStatus::Success => "32",
        JobStatus::Failure | JobStatus::Timeout | JobStatus::Canceled => "31",
        JobStatus::Running => "36",
        JobStatus::Blocked => "33",
        JobStatus::Skipped => "2",
        JobStatus::Pending | JobStatus::Queued => "39",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}
