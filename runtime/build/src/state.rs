//! [`BuildState`]: the one fold of a build's event stream.
//!
//! Everything that asks "how is this build doing?" reads this fold: the controller (did the
//! script end, plan or suspend?), the live view and the summary, the build record read back by
//! `monkeyci build logs`, and the command's exit code ([`BuildState::verdict`]). It owns no I/O
//! and renders nothing: it only takes events, in order, and answers questions about them.
//!
//! ```
//! use monkeyci_build::state::BuildState;
//! use monkeyci_protocol::{BuildStatus, Event, EventKind, JobStatus};
//!
//! let mut state = BuildState::default();
//! for kind in [
//!     EventKind::JobPending { job_id: "test".into() },
//!     EventKind::JobStart { job_id: "test".into(), attempt: 1 },
//!     EventKind::JobEnd { job_id: "test".into(), attempt: 1, status: JobStatus::Success, duration_ms: 5, message: None },
//!     EventKind::ScriptEnd { status: BuildStatus::Success, message: None },
//! ] {
//!     state.apply(&Event::now(kind));
//! }
//! assert_eq!(state.job("test").map(|job| job.status), Some(JobStatus::Success));
//! assert_eq!(state.end(), Some(&(BuildStatus::Success, None)));
//! ```

use std::collections::HashMap;
use std::process::ExitStatus;

use monkeyci_protocol::{BuildStatus, Event, EventKind, JobStatus, OutputStream, Plan};

/// One job, as the events tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobState {
    /// The job's id.
    pub id: String,
    /// Its latest status.
    pub status: JobStatus,
    /// Its latest attempt (0 before it started).
    pub attempt: u32,
    /// When its latest attempt started, in milliseconds since the Unix epoch.
    pub started_ms: Option<u64>,
    /// How long it ran, once it ended.
    pub duration_ms: Option<u64>,
    /// Why it ended as it did, or was skipped.
    pub message: Option<String>,
    /// The commands of its latest attempt: a container job's script lines, an action job's
    /// `ctx.shell` commands.
    pub commands: Vec<CommandState>,
    /// Declared `allow_failure` (from the plan): a failure does not fail the build.
    pub allow_failure: bool,
    /// The last lines (at most [`STDERR_TAIL`]) its latest command wrote to stderr (a
    /// container job's script line or a `ctx.shell` command; else its latest attempt): what
    /// failed in it, shown with its failure.
    pub stderr_tail: Vec<String>,
    /// The Markdown summary it left (`ctx.summary(..)`), the latest if several.
    pub summary: Option<String>,
}

/// How many of a job's last stderr lines [`JobState::stderr_tail`] keeps.
pub const STDERR_TAIL: usize = 5;

impl JobState {
    /// Whether it failed (or timed out) and was allowed to: shown as such, not as a failure
    /// of the build.
    pub fn failed_allowed(&self) -> bool {
        self.status.is_allowed_failure(self.allow_failure)
    }
}

/// One script line of a container job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandState {
    /// Its index in the job's script (for `ctx.shell`, its step number in the job).
    pub index: usize,
    /// The line as written.
    pub line: String,
    /// Its exit code, once it ended.
    pub exit: Option<i32>,
}

/// Every job of a build in the order they appeared, and how the build ended.
#[derive(Debug, Clone, Default)]
pub struct BuildState {
    jobs: Vec<JobState>,
    index: HashMap<String, usize>,
    end: Option<(BuildStatus, Option<String>)>,
    plan: Option<Plan>,
    suspensions: usize,
    waiting: usize,
}

/// What a finished build means for whoever started it (for the `monkeyci` command, its exit
/// code).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Every job that ran succeeded.
    Success,
    /// A job failed, or the build was canceled; the jobs' own messages tell why.
    Failed,
    /// The pipeline could not be planned or run: why, for people.
    Unusable(String),
}

impl BuildState {
    /// Takes one event into account.
    pub fn apply(&mut self, event: &Event) {
        match &event.kind {
            EventKind::ScriptStart { jobs, skipped } => {
                for job in jobs {
                    self.job_mut(&job.id).allow_failure = job.allow_failure;
                }
                for s in skipped {
                    let job = self.job_mut(&s.id);
                    job.status = JobStatus::Skipped;
                    job.message = Some(s.reason.clone());
                }
            }
            EventKind::ScriptPlan { plan } => self.plan = Some(plan.clone()),
            EventKind::JobPending { job_id } => self.job_mut(job_id).status = JobStatus::Pending,
            EventKind::JobQueued { job_id } => self.job_mut(job_id).status = JobStatus::Queued,
            EventKind::JobBlocked { job_id } => self.job_mut(job_id).status = JobStatus::Blocked,
            EventKind::JobUnblocked { job_id } => self.job_mut(job_id).status = JobStatus::Queued,
            EventKind::JobStart { job_id, attempt } => {
                let job = self.job_mut(job_id);
                if job.attempt != *attempt {
                    job.commands.clear();
                    job.summary = None;
                }
                job.stderr_tail.clear();
                job.status = JobStatus::Running;
                job.attempt = *attempt;
                job.started_ms = Some(event.time);
                job.duration_ms = None;
                job.message = None;
            }
            EventKind::JobEnd { job_id, attempt, status, duration_ms, message } => {
                let job = self.job_mut(job_id);
                job.status = *status;
                job.attempt = *attempt;
                job.duration_ms = Some(*duration_ms);
                job.message = message.clone();
            }
            EventKind::JobSkipped { job_id, reason } => {
                let job = self.job_mut(job_id);
                job.status = JobStatus::Skipped;
                job.message = Some(reason.clone());
            }
            EventKind::CommandStart { job_id, command, line } => {
                let job = self.job_mut(job_id);
                job.commands.retain(|c| c.index != *command);
                job.commands.push(CommandState { index: *command, line: line.clone(), exit: None });
                job.stderr_tail.clear();
            }
            EventKind::JobOutput { job_id, stream: OutputStream::Stderr, line } => {
                let tail = &mut self.job_mut(job_id).stderr_tail;
                if !line.trim().is_empty() {
                    if tail.len() == STDERR_TAIL {
                        tail.remove(0);
                    }
                    tail.push(line.clone());
                }
            }
            EventKind::CommandEnd { job_id, command, exit } => {
                if let Some(c) = self.job_mut(job_id).commands.iter_mut().rev().find(|c| c.index == *command) {
                    c.exit = Some(*exit);
                }
            }
            EventKind::JobSummary { job_id, markdown } => {
                self.job_mut(job_id).summary = Some(markdown.clone());
            }
            EventKind::ScriptSuspended { waiting } => {
                self.suspensions += 1;
                self.waiting = *waiting;
            }
            EventKind::ScriptEnd { status, message } => {
                self.end = Some((*status, message.clone()));
                self.close_unfinished(event.time);
            }
            EventKind::JobOutput { .. }
            | EventKind::JobRetrying { .. }
            | EventKind::ContainerStart { .. }
            | EventKind::ContainerEnd { .. }
            | EventKind::JournalRecord { .. }
            | EventKind::ScriptResumed { .. } => {}
        }
    }

    /// Every job, in the order it first appeared (plan order).
    pub fn jobs(&self) -> &[JobState] {
        &self.jobs
    }

    /// The job `id`, if any event named it.
    pub fn job(&self, id: &str) -> Option<&JobState> {
        self.index.get(id).map(|&i| &self.jobs[i])
    }

    /// How the build ended (`script/end`), if it did.
    pub fn end(&self) -> Option<&(BuildStatus, Option<String>)> {
        self.end.as_ref()
    }

    /// The plan, when the script was asked only to plan.
    pub fn plan(&self) -> Option<&Plan> {
        self.plan.as_ref()
    }

    /// How often the script suspended while containers ran.
    pub fn suspensions(&self) -> usize {
        self.suspensions
    }

    /// How many jobs the latest suspension left waiting for containers.
    pub fn waiting(&self) -> usize {
        self.waiting
    }

    /// What the build means for whoever started it, given how the script process exited
    /// (`None`: it was never seen to exit, as for a recorded build).
    pub fn verdict(&self, exit: Option<ExitStatus>) -> Verdict {
        let exited_ok = exit.is_none_or(|status| status.success());
        match &self.end {
            Some((BuildStatus::Success, _)) if exited_ok => Verdict::Success,
            Some((BuildStatus::Failure | BuildStatus::Canceled, _)) => Verdict::Failed,
            Some((BuildStatus::Error, message)) => Verdict::Unusable(
                message.clone().unwrap_or_else(|| "the pipeline cannot be planned (no reason given)".to_owned()),
            ),
            Some((BuildStatus::Success, _)) | None => {
                let how = match exit.map(|status| status.code()) {
                    Some(Some(code)) => format!("exit code {code}"),
                    Some(None) => "a signal".to_owned(),
                    None => "no end".to_owned(),
                };
                let stage = if self.jobs.is_empty() { "before planning" } else { "before the build ended" };
                Verdict::Unusable(format!("the pipeline script stopped with {how} {stage} (its output is above)"))
            }
        }
    }

    fn job_mut(&mut self, id: &str) -> &mut JobState {
        let next = self.jobs.len();
        let i = *self.index.entry(id.to_owned()).or_insert(next);
        if i == next {
            self.jobs.push(JobState {
                id: id.to_owned(),
                status: JobStatus::Pending,
                attempt: 0,
                started_ms: None,
                duration_ms: None,
                message: None,
                commands: Vec::new(),
                allow_failure: false,
                stderr_tail: Vec::new(),
                summary: None,
            });
        }
        &mut self.jobs[i]
    }

    /// Jobs a build ended without (a resume refused, the script gone, Ctrl-C): one that was
    /// running shows as canceled after the time it ran, one that never started as skipped,
    /// saying why.
    fn close_unfinished(&mut self, now_ms: u64) {
        for job in &mut self.jobs {
            let (status, message) = match job.status {
                JobStatus::Running => (JobStatus::Canceled, "the build ended while it ran"),
                JobStatus::Pending | JobStatus::Queued | JobStatus::Blocked => {
                    (JobStatus::Skipped, "the build ended before it ran")
                }
                _ => continue,
            };
            if status == JobStatus::Canceled {
                job.duration_ms = job.started_ms.map(|started| now_ms.saturating_sub(started));
            }
            job.status = status;
            job.message.get_or_insert_with(|| message.to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fold(kinds: impl IntoIterator<Item = (u64, EventKind)>) -> BuildState {
        let mut state = BuildState::default();
        for (time, kind) in kinds {
            state.apply(&Event { time, kind });
        }
        state
    }

    #[test]
    fn a_build_that_ends_first_leaves_no_job_looking_unfinished() {
        let state = fold([
            (1, EventKind::JobPending { job_id: "wait".into() }),
            (1, EventKind::JobPending { job_id: "after".into() }),
            (1_000, EventKind::JobStart { job_id: "wait".into(), attempt: 1 }),
            (21_000, EventKind::ScriptEnd { status: BuildStatus::Error, message: Some("refused".into()) }),
        ]);
        let jobs: Vec<_> =
            state.jobs().iter().map(|j| (j.id.as_str(), j.status, j.duration_ms, j.message.as_deref())).collect();
        assert_eq!(
            jobs,
            [
                ("wait", JobStatus::Canceled, Some(20_000), Some("the build ended while it ran")),
                ("after", JobStatus::Skipped, None, Some("the build ended before it ran")),
            ]
        );
    }

    #[test]
    fn a_jobs_summary_is_its_latest_attempts_latest() {
        let summary = |markdown: &str| EventKind::JobSummary { job_id: "s".into(), markdown: markdown.into() };
        let state = fold([
            (1, EventKind::JobStart { job_id: "s".into(), attempt: 1 }),
            (2, summary("one")),
            (3, summary("two")),
        ]);
        assert_eq!(state.job("s").and_then(|j| j.summary.as_deref()), Some("two"));
        let retried = fold([
            (1, EventKind::JobStart { job_id: "s".into(), attempt: 1 }),
            (2, summary("attempt 1")),
            (3, EventKind::JobStart { job_id: "s".into(), attempt: 2 }),
        ]);
        assert_eq!(retried.job("s").and_then(|j| j.summary.as_deref()), None);
    }

    #[test]
    fn commands_are_those_of_the_latest_attempt() {
        let state = fold([
            (1, EventKind::JobStart { job_id: "c".into(), attempt: 1 }),
            (2, EventKind::CommandStart { job_id: "c".into(), command: 0, line: "make".into() }),
            (3, EventKind::CommandEnd { job_id: "c".into(), command: 0, exit: 2 }),
            (4, EventKind::JobStart { job_id: "c".into(), attempt: 2 }),
            (5, EventKind::CommandStart { job_id: "c".into(), command: 0, line: "make".into() }),
        ]);
        let job = state.job("c").unwrap();
        assert_eq!((job.attempt, job.commands.len(), job.commands[0].exit), (2, 1, None));
    }

    #[test]
    fn the_verdict_follows_the_end_and_the_exit() {
        let ended = |status| fold([(1, EventKind::ScriptEnd { status, message: None })]);
        assert_eq!(ended(BuildStatus::Success).verdict(None), Verdict::Success);
        assert_eq!(ended(BuildStatus::Failure).verdict(None), Verdict::Failed);
        assert_eq!(ended(BuildStatus::Canceled).verdict(None), Verdict::Failed);
        assert!(matches!(ended(BuildStatus::Error).verdict(None), Verdict::Unusable(_)));
        let Verdict::Unusable(why) = BuildState::default().verdict(None) else { panic!("no end is unusable") };
        assert!(why.contains("before planning"), "{why}");
    }

    #[test]
    fn a_failure_is_allowed_when_the_plan_says_so() {
        let planned = |id: &str, allow_failure| monkeyci_protocol::PlannedJob {
            id: id.into(),
            kind: monkeyci_protocol::JobKind::Action,
            depends_on: Vec::new(),
            blocked: false,
            timeout_ms: None,
            retries: 0,
            idempotent: true,
            allow_failure,
            runs: Default::default(),
            container: None,
            resolved_at_run_time: false,
            declared_at: None,
        };
        let end = |id: &str, status| EventKind::JobEnd {
            job_id: id.into(),
            attempt: 1,
            status,
            duration_ms: 1,
            message: None,
        };
        let state = fold([
            (1, EventKind::ScriptStart { jobs: vec![planned("msrv", true), planned("test", false)], skipped: vec![] }),
            (2, end("msrv", JobStatus::Failure)),
            (3, end("test", JobStatus::Failure)),
        ]);
        assert!(state.job("msrv").unwrap().failed_allowed());
        assert!(!state.job("test").unwrap().failed_allowed());
    }

    /// Issue 10: a failure line named only the command. The fold keeps the last stderr lines
    /// of the latest command, to show what failed in it.
    #[test]
    fn the_stderr_tail_is_that_of_the_latest_command() {
        let err =
            |line: &str| EventKind::JobOutput { job_id: "t".into(), stream: OutputStream::Stderr, line: line.into() };
        let mut kinds = vec![
            (1, EventKind::JobStart { job_id: "t".into(), attempt: 1 }),
            (2, EventKind::CommandStart { job_id: "t".into(), command: 0, line: "cargo build".into() }),
            (3, err("warning: unused")),
            (4, EventKind::CommandEnd { job_id: "t".into(), command: 0, exit: 0 }),
            (5, EventKind::CommandStart { job_id: "t".into(), command: 1, line: "cargo test".into() }),
        ];
        for n in 0..7 {
            kinds.push((6, err(&format!("line {n}"))));
        }
        kinds.push((7, err("  ")));
        kinds.push((8, EventKind::JobOutput { job_id: "t".into(), stream: OutputStream::Stdout, line: "out".into() }));
        let state = fold(kinds);
        assert_eq!(state.job("t").unwrap().stderr_tail, ["line 2", "line 3", "line 4", "line 5", "line 6"]);
        let retried = fold([(1, err("old")), (2, EventKind::JobStart { job_id: "t".into(), attempt: 2 })]);
        assert!(retried.job("t").unwrap().stderr_tail.is_empty());
    }

    #[test]
    fn suspensions_are_counted() {
        let state = fold([
            (1, EventKind::ScriptSuspended { waiting: 2 }),
            (2, EventKind::ScriptResumed { replayed: 0 }),
            (3, EventKind::ScriptSuspended { waiting: 1 }),
        ]);
        assert_eq!((state.suspensions(), state.waiting()), (2, 1));
    }
}
