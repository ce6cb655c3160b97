//! [`BuildView`]: the state of every job, folded from the event stream, and the summary table.

use std::collections::HashMap;
use std::io::Write;
use std::time::Instant;

use monkeyci_protocol::{BuildStatus, EventKind, JobStatus};

use monkeyci_build::controller::Update;

/// One job as the user sees it.
#[derive(Debug, Clone)]
pub(crate) struct JobView {
    pub(crate) id: String,
    pub(crate) status: JobStatus,
    pub(crate) attempt: u32,
    pub(crate) started: Option<Instant>,
    pub(crate) duration_ms: Option<u64>,
    pub(crate) message: Option<String>,
}

/// Every job of the build in plan order, and how the build ended.
#[derive(Debug, Default)]
pub(crate) struct BuildView {
    pub(crate) jobs: Vec<JobView>,
    index: HashMap<String, usize>,
    pub(crate) end: Option<(BuildStatus, Option<String>)>,
}

impl BuildView {
    fn job(&mut self, id: &str) -> &mut JobView {
        let next = self.jobs.len();
        let i = *self.index.entry(id.to_owned()).or_insert(next);
        if i == next {
            self.jobs.push(JobView {
                id: id.to_owned(),
                status: JobStatus::Pending,
                attempt: 0,
                started: None,
                duration_ms: None,
                message: None,
            });
        }
        &mut self.jobs[i]
    }

    pub(crate) fn apply(&mut self, update: &Update) {
        let Update::Event(event) = update else { return };
        match &event.kind {
            EventKind::ScriptStart { jobs, skipped } => {
                for job in jobs {
                    self.job(&job.id);
                }
                for s in skipped {
                    let job = self.job(&s.id);
                    job.status = JobStatus::Skipped;
                    job.message = Some(s.reason.clone());
                }
            }
            EventKind::JobPending { job_id } => self.job(job_id).status = JobStatus::Pending,
            EventKind::JobQueued { job_id } => self.job(job_id).status = JobStatus::Queued,
            EventKind::JobBlocked { job_id } => self.job(job_id).status = JobStatus::Blocked,
            EventKind::JobUnblocked { job_id } => self.job(job_id).status = JobStatus::Queued,
            EventKind::JobStart { job_id, attempt } => {
                let job = self.job(job_id);
                job.status = JobStatus::Running;
                job.attempt = *attempt;
                job.started = Some(Instant::now());
            }
            EventKind::JobEnd { job_id, attempt, status, duration_ms, message } => {
                let job = self.job(job_id);
                job.status = *status;
                job.attempt = *attempt;
                job.duration_ms = Some(*duration_ms);
                job.message = message.clone();
            }
            EventKind::JobSkipped { job_id, reason } => {
                let job = self.job(job_id);
                job.status = JobStatus::Skipped;
                job.message = Some(reason.clone());
            }
            EventKind::ScriptEnd { status, message } => {
                self.end = Some((*status, message.clone()));
                self.close_unfinished();
            }
            EventKind::ScriptPlan { .. }
            | EventKind::JobOutput { .. }
            | EventKind::JobRetrying { .. }
            | EventKind::ContainerStart { .. }
            | EventKind::CommandStart { .. }
            | EventKind::CommandEnd { .. }
            | EventKind::ContainerEnd { .. }
            | EventKind::JournalRecord { .. }
            | EventKind::ScriptSuspended { .. }
            | EventKind::ScriptResumed { .. } => {}
        }
    }

    /// Jobs a build ended without (a resume refused, the script gone): one that was running
    /// shows as canceled, one that never started as skipped, saying why.
    fn close_unfinished(&mut self) {
        for job in &mut self.jobs {
            let (status, message) = match job.status {
                JobStatus::Running => (JobStatus::Canceled, "the build ended while it ran"),
                JobStatus::Pending | JobStatus::Queued | JobStatus::Blocked => {
                    (JobStatus::Skipped, "the build ended before it ran")
                }
                _ => continue,
            };
            job.status = status;
            job.message.get_or_insert_with(|| message.to_owned());
        }
    }

    /// The table printed at the end: job, status, duration, message.
    pub(crate) fn summary(&self, out: &mut Vec<u8>, color: bool) {
        if self.jobs.is_empty() {
            return;
        }
        let width = self.jobs.iter().map(|j| j.id.len()).max().unwrap_or(3).max(3);
        let _ = writeln!(out);
        let _ = writeln!(out, "{:<width$}  {:<8}  {:>9}  MESSAGE", "JOB", "STATUS", "DURATION");
        for job in &self.jobs {
            let duration = job.duration_ms.map(format_ms).unwrap_or_default();
            let message = job.message.as_deref().unwrap_or("").lines().next().unwrap_or("");
            let status = paint(color, job.status, &format!("{:<8}", job.status.as_str()));
            let line = format!("{:<width$}  {status}  {duration:>9}  {message}", job.id);
            let _ = writeln!(out, "{}", line.trim_end());
        }
        if let Some((status, message)) = &self.end {
            let _ = write!(out, "\nbuild {status}");
            if let Some(message) = message {
                let _ = write!(out, ": {message}");
            }
            let _ = writeln!(out);
        }
    }
}

pub(crate) use monkeyci_protocol::duration::clock as format_ms;

/// Colors a status for a terminal.
pub(crate) fn paint(color: bool, status: JobStatus, text: &str) -> String {
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

#[cfg(test)]
mod tests {
    use monkeyci_protocol::{BuildStatus, Event, EventKind, JobStatus};

    use super::BuildView;
    use monkeyci_build::controller::Update;

    #[test]
    fn a_build_that_ends_first_leaves_no_job_looking_unfinished() {
        let mut view = BuildView::default();
        let events = [
            EventKind::JobPending { job_id: "wait".into() },
            EventKind::JobPending { job_id: "after".into() },
            EventKind::JobStart { job_id: "wait".into(), attempt: 1 },
            EventKind::ScriptEnd { status: BuildStatus::Error, message: Some("the resume was refused".into()) },
        ];
        for kind in events {
            view.apply(&Update::Event(Event::now(kind)));
        }
        let statuses: Vec<(&str, JobStatus, Option<&str>)> =
            view.jobs.iter().map(|j| (j.id.as_str(), j.status, j.message.as_deref())).collect();
        assert_eq!(
            statuses,
            [
                ("wait", JobStatus::Canceled, Some("the build ended while it ran")),
                ("after", JobStatus::Skipped, Some("the build ended before it ran")),
            ]
        );
    }
}
