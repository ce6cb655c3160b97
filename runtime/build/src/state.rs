//! [`BuildState`]: the one fold of a build's event stream.
//!
//! Everything that asks "how is this build doing?" reads this fold: the controller (did the
//! script end, plan or suspend?), the live view and the summary, the build record read back by
//! `monkeyci build logs`, the command's exit code ([`BuildState::verdict`]), and the server's
//! metering (what each job's containers and attempts and the script process used:
//! [`JobState::usage`], [`BuildState::script_ms`]). It owns no I/O and renders nothing: it
//! only takes events, in order, and answers questions about them.
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

use monkeyci_protocol::{BuildStatus, Event, EventKind, JobKind, JobStatus, OutputStream, Plan};

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
    /// Action or container, as planned (`None` before the plan named it).
    pub kind: Option<JobKind>,
    /// What its containers and attempts used, for metering.
    pub usage: JobUsage,
}

/// What a job used, as its events tell it: the figures metering bills.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JobUsage {
    /// How long its containers ran, from `container/start` to `container/end`, in
    /// milliseconds: every attempt, and an action job's `ctx.run` containers.
    pub container_ms: u64,
    /// The same, each container's time multiplied by its size (n CPUs and 2n GiB): from
    /// `container/start`, else the planned size, else 1.
    pub container_size_ms: u64,
    /// How long its attempts ran, from `job/start` to `job/end` (or to the next attempt's
    /// start), in milliseconds, summed over attempts.
    pub run_ms: u64,
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
    /// Each job's containers running now: (start time, size), oldest first.
    containers: HashMap<String, Vec<(u64, u32)>>,
    /// The planned size of each container job, by id.
    sizes: HashMap<String, u32>,
    /// How long the script process ran, in the launches that ended.
    script_ms: u64,
    /// When the script's current launch said it started, while it runs.
    script_since: Option<u64>,
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
                self.script_since.get_or_insert(event.time);
                for job in jobs {
                    let state = self.job_mut(&job.id);
                    state.allow_failure = job.allow_failure;
                    state.kind = Some(job.kind);
                    if let Some(spec) = &job.container {
                        self.sizes.insert(job.id.clone(), spec.size.max(1));
                    }
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
                // An attempt that ended without `job/end` (it is retried) ran until now.
                if let (JobStatus::Running, Some(started)) = (job.status, job.started_ms) {
                    job.usage.run_ms += event.time.saturating_sub(started);
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
                job.usage.run_ms += duration_ms;
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
                self.script_stopped(event.time);
            }
            EventKind::ScriptResumed { .. } => {
                self.script_since.get_or_insert(event.time);
            }
            EventKind::ScriptEnd { status, message } => {
                self.end = Some((*status, message.clone()));
                self.script_stopped(event.time);
                self.close_unfinished(event.time);
            }
            EventKind::ContainerStart { job_id, size, .. } => {
                let size = size.or_else(|| self.sizes.get(job_id).copied()).unwrap_or(1).max(1);
                self.job_mut(job_id);
                self.containers.entry(job_id.clone()).or_default().push((event.time, size));
            }
            EventKind::ContainerEnd { job_id, .. } => self.container_stopped(job_id, event.time),
            EventKind::JobOutput { .. } | EventKind::JobRetrying { .. } | EventKind::JournalRecord { .. } => {}
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

    /// How long the script process ran, in milliseconds: from the `script/start` or
    /// `script/resumed` of each launch to the `script/suspended` or `script/end` it exits
    /// after. A suspension is time it did not run. (The few milliseconds between the
    /// process's start and its first event, and after its last, are not counted; a launch
    /// that crashed and was resumed counts until the resumed one's start.)
    pub fn script_ms(&self) -> u64 {
        self.script_ms
    }

    /// The build ended at `at_ms` (as the server recorded it), whatever its events said: a
    /// script still running (it crashed, its agent was lost), containers with no
    /// `container/end` and jobs without an end are counted until then, as `script/end`
    /// would.
    pub fn close(&mut self, at_ms: u64) {
        self.script_stopped(at_ms);
        if self.end.is_none() {
            self.close_unfinished(at_ms);
        }
        let open: Vec<String> = self.containers.keys().cloned().collect();
        for job_id in open {
            while self.containers.get(&job_id).is_some_and(|open| !open.is_empty()) {
                self.container_stopped(&job_id, at_ms);
            }
        }
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
                kind: None,
                usage: JobUsage::default(),
            });
        }
        &mut self.jobs[i]
    }

    /// The script's launch exited (or said it is about to) at `at_ms`.
    fn script_stopped(&mut self, at_ms: u64) {
        if let Some(since) = self.script_since.take() {
            self.script_ms += at_ms.saturating_sub(since);
        }
    }

    /// One of `job_id`'s containers ended at `at_ms`: the oldest running, as `container/end`
    /// does not say which (a job's containers run one after the other, but for `ctx.run`
    /// steps started together).
    fn container_stopped(&mut self, job_id: &str, at_ms: u64) {
        let Some(open) = self.containers.get_mut(job_id).filter(|open| !open.is_empty()) else { return };
        let (started, size) = open.remove(0);
        let ms = at_ms.saturating_sub(started);
        let usage = &mut self.job_mut(job_id).usage;
        usage.container_ms += ms;
        usage.container_size_ms += ms * u64::from(size);
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
                job.usage.run_ms += job.duration_ms.unwrap_or(0);
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

    fn planned(id: &str, kind: monkeyci_protocol::JobKind, size: Option<u32>) -> monkeyci_protocol::PlannedJob {
        monkeyci_protocol::PlannedJob {
            id: id.into(),
            kind,
            depends_on: Vec::new(),
            blocked: false,
            timeout_ms: None,
            retries: 0,
            idempotent: true,
            allow_failure: false,
            runs: Default::default(),
            container: size.map(|size| monkeyci_protocol::ContainerSpec {
                image: "alpine".into(),
                script: vec!["sleep 3".into()],
                size,
                ..Default::default()
            }),
            resolved_at_run_time: false,
            declared_at: None,
        }
    }

    fn job_end(id: &str, attempt: u32, duration_ms: u64) -> EventKind {
        EventKind::JobEnd { job_id: id.into(), attempt, status: JobStatus::Success, duration_ms, message: None }
    }

    /// Issue 11: metering reads this fold. A container job of size 2 whose container runs
    /// 3 s, an action job retried once, and a script suspended while the container ran: the
    /// script's time is its wall time less the suspension.
    #[test]
    fn usage_counts_container_size_seconds_attempts_and_the_script_less_its_suspension() {
        let container = |time, kind| (time, kind);
        let mut state = fold([
            (
                1_000,
                EventKind::ScriptStart {
                    jobs: vec![planned("image", JobKind::Container, Some(2)), planned("lint", JobKind::Action, None)],
                    skipped: vec![],
                },
            ),
            (1_100, EventKind::JobStart { job_id: "lint".into(), attempt: 1 }),
            (1_200, EventKind::JobStart { job_id: "image".into(), attempt: 1 }),
            container(
                1_500,
                EventKind::ContainerStart {
                    job_id: "image".into(),
                    image: "alpine".into(),
                    engine: "shell".into(),
                    size: None,
                },
            ),
            // Attempt 1 of `lint` fails after 400 ms and is retried: attempt 2 runs 600 ms.
            (1_500, EventKind::JobStart { job_id: "lint".into(), attempt: 2 }),
            (2_100, job_end("lint", 2, 600)),
            // The script waits only for the container: it exits at 2.2 s, and is resumed at
            // 4.6 s when the container has ended.
            (2_200, EventKind::ScriptSuspended { waiting: 1 }),
            (
                4_500,
                EventKind::ContainerEnd {
                    job_id: "image".into(),
                    status: JobStatus::Success,
                    exit: Some(0),
                    message: None,
                },
            ),
            (4_600, EventKind::ScriptResumed { replayed: 3 }),
            (4_700, job_end("image", 1, 3_500)),
            (5_000, EventKind::ScriptEnd { status: BuildStatus::Success, message: None }),
        ]);
        state.close(5_100);
        let image = state.job("image").unwrap();
        assert_eq!(image.kind, Some(JobKind::Container));
        assert_eq!(image.usage, JobUsage { container_ms: 3_000, container_size_ms: 6_000, run_ms: 3_500 });
        let lint = state.job("lint").unwrap();
        assert_eq!(lint.kind, Some(JobKind::Action));
        assert_eq!(lint.usage, JobUsage { container_ms: 0, container_size_ms: 0, run_ms: 1_000 });
        // 1.0 s to 2.2 s, then 4.6 s to 5.0 s: 1.6 s of a 4 s wall time.
        assert_eq!(state.script_ms(), 1_600);
    }

    #[test]
    fn usage_takes_the_size_the_container_started_with_and_closes_what_the_build_ended_without() {
        let mut state = fold([
            (0, EventKind::ScriptStart { jobs: vec![planned("c", JobKind::Container, Some(1))], skipped: vec![] }),
            (100, EventKind::JobStart { job_id: "c".into(), attempt: 1 }),
            (
                1_000,
                EventKind::ContainerStart {
                    job_id: "c".into(),
                    image: "alpine".into(),
                    engine: "podman".into(),
                    size: Some(4),
                },
            ),
        ]);
        // The script was killed and the build ended (its agent was lost) at 3 s.
        state.close(3_000);
        let c = state.job("c").unwrap();
        assert_eq!(c.usage, JobUsage { container_ms: 2_000, container_size_ms: 8_000, run_ms: 2_900 });
        assert_eq!(state.script_ms(), 3_000);
        assert_eq!(c.status, JobStatus::Canceled);
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
