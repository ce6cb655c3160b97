//! The DAG scheduler: runs the planned jobs of one build, each as soon as its dependencies have
//! succeeded, and reports every state change as an event.
//!
//! Async action jobs are not bounded; process work (commands, containers) takes a slot of
//! `--max-parallel` from the build. Dependents of a job that failed or was skipped are
//! skipped with the reason; independent branches keep running unless `fail_fast` is set. A
//! job allowed to fail counts as succeeded for its dependents and for the build's status.
//! Planning (conditions, cycles, filters) happens before, in `plan`.
//!
//! The scheduler drives the engine (`durable::build::Build`, a `durable::scope::Scope` per job)
//! and makes a [`Ctx`] only to hand one to a job's code: an action job's, or the function of a
//! container job whose spec reads its dependencies' outputs, resolved once they ended and
//! journaled with its dispatch. It never takes a journaled step itself.

use std::any::Any;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use std::task::{Context, Poll};

use tokio::task::JoinSet;

use crate::ctx::Ctx;
use crate::dsl::env::pipeline_env;
use crate::dsl::error::JobError;
use crate::dsl::job::{ActionFn, Job, JobBodyKind, SpecFn};
use crate::durable::build::{Build, Slot};
use crate::durable::journal::{Ended, Replay, Resume};
use crate::durable::scope::Scope;
use crate::future::BoxFuture;
use crate::plan::{Resolved, panic_message};
use crate::protocol::{
    BuildStatus, ContainerSpec, EventKind, JobStatus, JournalEntry, JournalRecord, Runs, StepKey, now_ms,
};

/// How to run a build.
#[derive(Debug, Clone, Default)]
pub(crate) struct Options {
    /// After the first failure, start nothing new and cancel what runs.
    pub(crate) fail_fast: bool,
    /// Suspend once only container jobs have been running this long (`None`: never).
    pub(crate) suspend_after: Option<std::time::Duration>,
    /// What an earlier launch of this script journaled.
    pub(crate) replay: Replay,
}

/// How one job ended.
#[derive(Debug, Clone)]
pub(crate) struct JobReport {
    pub(crate) id: String,
    pub(crate) status: JobStatus,
    pub(crate) message: Option<String>,
    /// Declared `allow_failure`: a failure does not fail the build.
    pub(crate) allow_failure: bool,
}

impl JobReport {
    fn fails_build(&self) -> bool {
        self.status.is_failure() && !self.status.is_allowed_failure(self.allow_failure)
    }
}

/// How the build ended.
#[derive(Debug, Clone)]
pub(crate) struct BuildReport {
    pub(crate) status: BuildStatus,
    pub(crate) jobs: Vec<JobReport>,
    /// The script suspended while this many jobs wait for containers; the build goes on when it is
    /// resumed.
    pub(crate) suspended: Option<usize>,
}

struct Outcome {
    status: JobStatus,
    attempt: u32,
    duration_ms: u64,
    message: Option<String>,
    output: Option<serde_json::Value>,
}

impl Outcome {
    fn not_run(status: JobStatus, message: String) -> Outcome {
        Outcome { status, attempt: 0, duration_ms: 0, message: Some(message), output: None }
    }
}

tokio::task_local! {
    /// The job whose code is running, so a panic can be attributed to it.
    static CURRENT_JOB: String;
}

/// Panic messages of jobs, by job id, with their location.
fn job_panics() -> &'static Mutex<HashMap<String, String>> {
    static PANICS: OnceLock<Mutex<HashMap<String, String>>> = OnceLock::new();
    PANICS.get_or_init(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            match CURRENT_JOB.try_with(Clone::clone) {
                // A job's panic becomes that job's failure message; it is reported there.
                Ok(job) => {
                    let mut message = panic_message(info.payload());
                    if let Some(at) = info.location() {
                        message = format!("{message} (at {}:{})", at.file(), at.line());
                    }
                    if let Some(panics) = PANICS.get() {
                        panics.lock().insert(job, message);
                    }
                }
                Err(_) => previous(info),
            }
        }));
        Mutex::new(HashMap::new())
    })
}

/// Runs `resolved` to the end in `build` and reports how every job ended.
pub(crate) async fn run(build: &Arc<Build>, resolved: Resolved, options: Options) -> BuildReport {
    // On a worker thread, waking the loop when a job ends needs no hop to the thread that
    // called `block_on`: long dependency chains start each job sooner.
    match tokio::spawn(run_on_worker(Arc::clone(build), resolved, options)).await {
        Ok(report) => report,
        Err(err) => std::panic::resume_unwind(err.into_panic()),
    }
}

async fn run_on_worker(build: Arc<Build>, mut resolved: Resolved, options: Options) -> BuildReport {
    let build = &build;
    job_panics();
    build.set_graph(resolved.graph());
    build.set_pipelines(std::mem::take(&mut resolved.pipelines));
    build.set_replayed_steps(options.replay.steps.clone());
    let plan = resolved.plan();
    // A resumed script has told all this before: it only says it resumed.
    let resuming = !options.replay.is_empty();
    if resuming {
        build.emit(EventKind::ScriptResumed { replayed: options.replay.entries });
    } else {
        let jobs = plan.jobs.iter().map(|job| job.id.clone()).collect();
        build.emit(EventKind::ScriptStart { jobs: plan.jobs, skipped: plan.skipped });
        build.emit(EventKind::JournalRecord {
            entry: JournalEntry::new("", StepKey::Job, JournalRecord::Planned { jobs }),
        });
    }

    let mut reports: Vec<JobReport> = Vec::new();
    for left_out in &resolved.skipped {
        if !resuming {
            build.emit(EventKind::JobSkipped { job_id: left_out.id.clone(), reason: left_out.reason.clone() });
        }
        reports.push(JobReport {
            id: left_out.id.clone(),
            status: JobStatus::Skipped,
            message: Some(left_out.reason.clone()),
            allow_failure: false,
        });
    }

    let jobs = resolved.jobs;
    let count = jobs.len();
    let mut dag = Dag::new(&jobs);
    let ids = dag.ids.clone();
    let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();

    if !resuming {
        for id in &ids {
            build.emit(EventKind::JobPending { job_id: id.clone() });
        }
    }
    let mut running: JoinSet<Outcome> = JoinSet::new();
    let mut task_job: HashMap<tokio::task::Id, usize> = HashMap::with_capacity(count);
    let mut stopped: Option<Stop> = None;
    let mut canceled = build.canceled();

    // Scopes of the action jobs running, to journal where they are if the script suspends.
    let mut action_scopes: HashMap<usize, Arc<Scope>> = HashMap::new();
    let mut journaled: Vec<Option<Ended>> = ids.iter().map(|id| options.replay.ended.get(id).cloned()).collect();
    loop {
        while let Some(i) = dag.ready.pop_front() {
            // After a fail_fast stop, reports and cleanup (`runs = on_failure`, `always`) still
            // run; after a cancel, nothing does.
            let for_failures = matches!(stopped, Some(Stop::FailFast(_))) && dag.runs[i] != Runs::OnSuccess;
            if let Some(stop) = stopped.as_ref().filter(|_| !for_failures) {
                let outcome = Outcome::not_run(JobStatus::Skipped, stop.skip_reason());
                dag.finish(build, i, outcome, None);
                continue;
            }
            // Replayed: the journaled end, without running the job or telling anyone again.
            if let Some((status, attempt, output, message)) = journaled[i].take() {
                slots[i] = None;
                dag.replayed(build, i, Outcome { status, attempt, duration_ms: 0, message, output });
                continue;
            }
            let Some(job) = slots[i].take() else { continue };
            if !job.idempotent
                && let Some(attempt) = options.replay.unfinished_non_idempotent.get(&ids[i])
            {
                let message = format!(
                    "attempt {attempt} was running when the pipeline process ended (killed or crashed); the job is \
                     declared `idempotent = false`, so it is not run again: check what it did, then re-run the build"
                );
                let outcome = Outcome {
                    status: JobStatus::Failure,
                    attempt: *attempt,
                    duration_ms: 0,
                    message: Some(message),
                    output: None,
                };
                dag.finish(build, i, outcome, None);
                continue;
            }
            let resume = options.replay.resumed.get(&ids[i]).copied();
            if resume.is_none() {
                build.emit(EventKind::JobQueued { job_id: ids[i].clone() });
            }
            let scope = Arc::new(Scope::job(Arc::clone(build), &ids[i], job.idempotent));
            if matches!(job.body, JobBodyKind::Action(_)) {
                action_scopes.insert(i, Arc::clone(&scope));
            }
            let journaled_spec = options.replay.specs.get(&ids[i]).cloned();
            let handle = running.spawn(run_job(scope, job, resume, journaled_spec));
            task_job.insert(handle.id(), i);
        }
        let in_flight = running.len();
        let joined = tokio::select! {
            biased;
            joined = running.join_next_with_id() => joined,
            _ = canceled.wait_for(|canceled| *canceled), if stopped.is_none() => {
                stopped = Some(Stop::Canceled);
                running.abort_all();
                continue;
            }
            _ = build.waiting().only_waiting(in_flight, options.suspend_after.unwrap_or_default()),
                if options.suspend_after.is_some() && stopped.is_none() =>
            {
                let waiting = in_flight;
                for scope in action_scopes.values() {
                    scope.journal_suspended();
                }
                build.emit(EventKind::ScriptSuspended { waiting });
                return BuildReport { status: BuildStatus::Success, jobs: Vec::new(), suspended: Some(waiting) };
            }
        };
        let Some(joined) = joined else { break };
        let (i, outcome) = match joined {
            Ok((task, outcome)) => (task_job.remove(&task), outcome),
            Err(err) => {
                let outcome = if err.is_cancelled() {
                    let why = stopped.as_ref().map_or_else(|| "canceled".to_owned(), Stop::cancel_reason);
                    Outcome::not_run(JobStatus::Canceled, why)
                } else {
                    Outcome::not_run(JobStatus::Failure, format!("the scheduler lost this job: {err}"))
                };
                (task_job.remove(&err.id()), outcome)
            }
        };
        let Some(i) = i else { continue };
        action_scopes.remove(&i);
        let fails_build = dag.fails_build(i, outcome.status);
        dag.finish(build, i, outcome, None);
        if fails_build && options.fail_fast && stopped.is_none() {
            stopped = Some(Stop::FailFast(ids[i].clone()));
            running.abort_all();
        }
    }

    for (i, outcome) in std::mem::take(&mut dag.outcomes).into_iter().enumerate() {
        let (status, message) = match outcome {
            Some(o) => (o.status, o.message),
            // Unreachable for a valid plan; report rather than hide it.
            None => (JobStatus::Skipped, Some("never became ready".to_owned())),
        };
        reports.push(JobReport { id: ids[i].clone(), status, message, allow_failure: dag.allow_failure[i] });
    }
    let (status, message) = match stopped {
        Some(Stop::Canceled) => (BuildStatus::Canceled, Some("the build was canceled".to_owned())),
        _ if reports.iter().any(JobReport::fails_build) => (BuildStatus::Failure, failure_summary(&reports)),
        _ => (BuildStatus::Success, allowed_summary(&reports)),
    };
    build.emit(EventKind::ScriptEnd { status, message });
    BuildReport { status, jobs: reports, suspended: None }
}

/// Why the scheduler stopped starting jobs.
enum Stop {
    /// A job failed and `fail_fast` is on.
    FailFast(String),
    /// The build was canceled (Ctrl-C, SIGTERM, an API call).
    Canceled,
}

impl Stop {
    fn skip_reason(&self) -> String {
        match self {
            Stop::FailFast(job) => format!("fail_fast: job `{job}` failed"),
            Stop::Canceled => "the build was canceled".to_owned(),
        }
    }

    fn cancel_reason(&self) -> String {
        match self {
            Stop::FailFast(job) => format!("canceled: job `{job}` failed and fail_fast is on"),
            Stop::Canceled => "canceled: the build was canceled".to_owned(),
        }
    }
}

fn failure_summary(reports: &[JobReport]) -> Option<String> {
    let failed: Vec<&str> = reports.iter().filter(|r| r.fails_build()).map(|r| r.id.as_str()).collect();
    match failed.as_slice() {
        [] => None,
        [one] => Some(format!("job `{one}` failed")),
        many => Some(format!("{} jobs failed: {}", many.len(), many.join(", "))),
    }
}

/// What a build that succeeded says of the jobs that were allowed to fail and did.
fn allowed_summary(reports: &[JobReport]) -> Option<String> {
    let allowed: Vec<&str> =
        reports.iter().filter(|r| r.status.is_allowed_failure(r.allow_failure)).map(|r| r.id.as_str()).collect();
    match allowed.as_slice() {
        [] => None,
        [one] => Some(format!("job `{one}` failed, which it is allowed to")),
        many => Some(format!("{} jobs failed, which they are allowed to: {}", many.len(), many.join(", "))),
    }
}

/// The jobs' graph, and how far the build went through it: which jobs ended and how, which
/// wait for how many dependencies, which are ready to start.
struct Dag {
    ids: Vec<String>,
    dependents: Vec<Vec<usize>>,
    allow_failure: Vec<bool>,
    runs: Vec<Runs>,
    /// Dependencies of each job that have not ended yet.
    remaining: Vec<usize>,
    /// Whether a dependency of each job failed, or was skipped because a job before it failed:
    /// what `runs = on_failure` waits for.
    upstream_failed: Vec<bool>,
    outcomes: Vec<Option<Outcome>>,
    ready: VecDeque<usize>,
}

impl Dag {
    fn new(jobs: &[Job]) -> Dag {
        let ids: Vec<String> = jobs.iter().map(|job| job.id.clone()).collect();
        let index: HashMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
        let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
        for (i, job) in jobs.iter().enumerate() {
            for dep in &job.depends_on {
                dependents[index[dep.as_str()]].push(i);
            }
        }
        let remaining: Vec<usize> = jobs.iter().map(|job| job.depends_on.len()).collect();
        Dag {
            ready: (0..jobs.len()).filter(|&i| remaining[i] == 0).collect(),
            ids,
            dependents,
            allow_failure: jobs.iter().map(|job| job.allow_failure).collect(),
            runs: jobs.iter().map(|job| job.runs).collect(),
            remaining,
            upstream_failed: vec![false; jobs.len()],
            outcomes: (0..jobs.len()).map(|_| None).collect(),
        }
    }

    /// Whether job `i` ending with `status` lets its dependents run: a success, or a failure
    /// it is allowed.
    fn passed(&self, i: usize, status: JobStatus) -> bool {
        status == JobStatus::Success || status.is_allowed_failure(self.allow_failure[i])
    }

    /// Whether job `i` ending with `status` fails the build.
    fn fails_build(&self, i: usize, status: JobStatus) -> bool {
        status.is_failure() && !status.is_allowed_failure(self.allow_failure[i])
    }

    /// Takes the journaled end of job `i`, told before: its dependents go on as they did.
    fn replayed(&mut self, build: &Build, i: usize, outcome: Outcome) {
        self.settle(build, i, outcome, None, false);
    }

    /// Records how job `i` ended and reports it.
    fn finish(&mut self, build: &Build, i: usize, outcome: Outcome, root: Option<&str>) {
        self.settle(build, i, outcome, root, true);
    }

    /// Records how job `i` ended, reports it if `tell`, and moves its dependents on: each is
    /// queued once all of its dependencies ended as its [`Runs`] wants, or skipped, saying why.
    /// `root` is what started a cascade of skips, so a job far down a chain still says which
    /// job failed.
    fn settle(&mut self, build: &Build, i: usize, outcome: Outcome, root: Option<&str>, tell: bool) {
        let status = outcome.status;
        let id = self.ids[i].clone();
        let message = outcome.message.clone().unwrap_or_default();
        if tell {
            if status == JobStatus::Skipped {
                build.emit(EventKind::JobSkipped { job_id: id.clone(), reason: message.clone() });
            } else {
                build.emit(EventKind::JobEnd {
                    job_id: id.clone(),
                    attempt: outcome.attempt,
                    status,
                    duration_ms: outcome.duration_ms,
                    message: outcome.message.clone(),
                });
            }
            build.emit(EventKind::JournalRecord {
                entry: JournalEntry::new(
                    id.clone(),
                    StepKey::End,
                    JournalRecord::JobEnd {
                        status,
                        attempt: outcome.attempt,
                        output: outcome.output.clone(),
                        message: outcome.message.clone(),
                    },
                ),
            });
        }
        let passed = self.passed(i, status);
        if status == JobStatus::Success
            && let Some(output) = &outcome.output
        {
            build.keep_output(&id, output);
        }
        // A failure, or a skip because of one, is what `runs = on_failure` dependents wait for.
        let failed = self.fails_build(i, status) || (status == JobStatus::Skipped && self.upstream_failed[i]);
        self.outcomes[i] = Some(outcome);
        // Why an `on_success` dependent does not run, and the root of the cascade.
        let (reason, root) = match status {
            _ if passed => (String::new(), String::new()),
            JobStatus::Skipped => {
                let root = root.map_or(message, str::to_owned);
                (format!("dependency `{id}` was skipped ({root})"), root)
            }
            _ => {
                let what = match status {
                    JobStatus::Timeout => "timed out",
                    JobStatus::Canceled => "was canceled",
                    _ => "failed",
                };
                (format!("dependency `{id}` {what}"), format!("`{id}` {what}"))
            }
        };
        for d in self.dependents[i].clone() {
            if self.outcomes[d].is_some() {
                continue;
            }
            self.remaining[d] -= 1;
            self.upstream_failed[d] |= failed;
            let skip = match self.runs[d] {
                Runs::OnSuccess if !passed => Some((reason.clone(), Some(root.as_str()))),
                _ if self.remaining[d] > 0 => continue,
                Runs::OnFailure if !self.upstream_failed[d] => {
                    Some(("runs = on_failure, and no dependency failed".to_owned(), None))
                }
                Runs::OnSuccess | Runs::OnFailure | Runs::Always => None,
            };
            match skip {
                Some((reason, root)) => {
                    self.settle(build, d, Outcome::not_run(JobStatus::Skipped, reason), root, tell);
                }
                None => self.ready.push_back(d),
            }
        }
    }
}

/// Runs one job: approval, then its container spec resolved if it reads its dependencies'
/// outputs, then attempts until one succeeds or none are left. `resume` is where a job running
/// when an earlier launch stopped picks up: a container job awaits the same dispatched attempt
/// again, never starting another (with the spec `journaled_spec` it was dispatched with, if it
/// was resolved then); an action job runs that attempt again, its recorded steps replayed.
async fn run_job(
    scope: Arc<Scope>,
    job: Job,
    resume: Option<Resume>,
    journaled_spec: Option<ContainerSpec>,
) -> Outcome {
    let build = scope.build();
    let id = job.id.clone();
    if job.blocked && resume.is_none() {
        build.emit(EventKind::JobBlocked { job_id: id.clone() });
        match build.approve(&id).await {
            Ok(true) => build.emit(EventKind::JobUnblocked { job_id: id.clone() }),
            Ok(false) => return Outcome::not_run(JobStatus::Skipped, "blocked: it was not approved".to_owned()),
            Err(err) => return Outcome::not_run(JobStatus::Failure, format!("approval failed: {err}")),
        }
    }
    // Resolved once, now that its dependencies ended: every attempt runs the same spec.
    let work = match &job.body {
        JobBodyKind::Action(action) => Work::Action(Arc::clone(action)),
        JobBodyKind::Container(spec) => {
            Work::Container(Box::new(Dispatch { spec: (**spec).clone().into_spec(), journal_spec: false }))
        }
        JobBodyKind::Deferred(f) => match journaled_spec.filter(|_| resume.is_some()) {
            Some(spec) => Work::Container(Box::new(Dispatch { spec, journal_spec: true })),
            None => match resolve_spec(&scope, &id, f) {
                Ok(spec) => Work::Container(Box::new(Dispatch { spec, journal_spec: true })),
                Err(message) => return Outcome::not_run(JobStatus::Failure, build.mask(&message)),
            },
        },
    };
    // A container job's new attempt is a new container run, with its attempt number.
    let attempts = job.retries.saturating_add(1);
    let mut attempt = resume.map_or(0, |resume| resume.attempt - 1);
    loop {
        attempt += 1;
        let resumed = resume.filter(|resume| resume.attempt == attempt);
        // Process work waits for a slot of `--max-parallel` before it counts as started.
        let _slot = match work {
            Work::Container(_) => match build.slot(Slot::Container, |_| ()).await {
                Ok(slot) => Some(slot),
                Err(_) => return Outcome::not_run(JobStatus::Canceled, "the build is shutting down".to_owned()),
            },
            Work::Action(_) => None,
        };
        let started_at_ms = resumed.and_then(|resume| resume.started_at_ms).unwrap_or_else(now_ms);
        scope.start_attempt(attempt, started_at_ms);
        if resumed.is_none() {
            build.emit(EventKind::JobStart { job_id: id.clone(), attempt });
            if !job.idempotent && matches!(job.body, JobBodyKind::Action(_)) {
                // Written ahead: a crash from here on must find it in the journal.
                scope.journal(StepKey::Job, JournalRecord::JobStart { attempt });
                build.flush_events().await;
            }
        }
        let (status, message, output) = match &work {
            Work::Container(dispatch) => run_container(&scope, &job, dispatch, attempt, resumed.is_some()).await,
            Work::Action(action) => run_action(&scope, &job, action(Ctx::new(Arc::clone(&scope)))).await,
        };
        let duration_ms = now_ms().saturating_sub(started_at_ms);
        let message = message.map(|m| build.mask(&m));
        if status != JobStatus::Success && attempt < attempts {
            build.emit(EventKind::JobRetrying { job_id: id.clone(), attempt, message: message.unwrap_or_default() });
            continue;
        }
        return Outcome { status, attempt, duration_ms, message, output };
    }
}

/// What each attempt of a job runs.
enum Work {
    Action(ActionFn),
    /// Boxed: a spec is large beside an action's pointer.
    Container(Box<Dispatch>),
}

/// The container a container job runs, on every attempt.
struct Dispatch {
    spec: ContainerSpec,
    /// Resolved from the dependencies' outputs: journaled with the dispatch, so a resumed
    /// script awaits the container with the spec it was started with.
    journal_spec: bool,
}

/// The spec `f` computes in `id`'s scope, now that its dependencies ended, with the pipeline's
/// environment; or why there is none (an error, a panic, or a spec that cannot run).
fn resolve_spec(scope: &Arc<Scope>, id: &str, f: &SpecFn) -> Result<ContainerSpec, String> {
    let ctx = Ctx::new(Arc::clone(scope));
    let resolved = CURRENT_JOB.sync_scope(id.to_owned(), || std::panic::catch_unwind(AssertUnwindSafe(|| f(&ctx))));
    let spec = match resolved {
        Ok(Ok(spec)) => spec.with_default_env(pipeline_env()).into_spec(),
        Ok(Err(err)) => return Err(format!("its container spec could not be resolved: {err}")),
        Err(payload) => {
            let message = job_panics().lock().remove(id).unwrap_or_else(|| panic_message(&*payload));
            return Err(format!("its container spec panicked: {message}"));
        }
    };
    match spec.problem() {
        Some(problem) => Err(format!("its container spec cannot run: {problem}")),
        None => Ok(spec),
    }
}

/// Runs one attempt of container job `job` in a container of `dispatch`; `resumed` when an
/// earlier launch of the script started it.
async fn run_container(
    scope: &Arc<Scope>,
    job: &Job,
    dispatch: &Dispatch,
    attempt: u32,
    resumed: bool,
) -> (JobStatus, Option<String>, Option<serde_json::Value>) {
    let mut spec = dispatch.spec.clone();
    // The engine enforces the time limit: it stops the container, which a dropped
    // future here would not.
    if spec.timeout_ms.is_none() {
        spec.timeout_ms = job.timeout.map(|limit| limit.as_millis() as u64);
    }
    let journaled = dispatch.journal_spec.then(|| Box::new(spec.clone()));
    let request = crate::protocol::ContainerRequest { job_id: job.id.clone(), attempt, spec };
    let run = async {
        // Journaled before it is sent: on resume the same attempt is awaited, never started
        // twice (dispatch is idempotent per job and attempt).
        if !resumed {
            let record = JournalRecord::ContainerDispatched { attempt, at_ms: Some(now_ms()), spec: journaled };
            scope.journal(StepKey::Job, record);
        }
        scope.run_container(request).await
    };
    match CURRENT_JOB.scope(job.id.clone(), run).await {
        Ok(result) if result.status == JobStatus::Success => (JobStatus::Success, None, Some(serde_json::Value::Null)),
        Ok(result) => {
            let status = match result.status {
                JobStatus::Timeout | JobStatus::Canceled => result.status,
                _ => JobStatus::Failure,
            };
            (status, result.message, None)
        }
        Err(err) => (JobStatus::Failure, Some(err.to_string()), None),
    }
}

async fn run_action(
    scope: &Scope,
    job: &Job,
    body: BoxFuture<'static, Result<serde_json::Value, JobError>>,
) -> (JobStatus, Option<String>, Option<serde_json::Value>) {
    // The job's code runs inside this task: a timeout or a canceled build drops it.
    let attempt = CURRENT_JOB.scope(job.id.clone(), CatchUnwind(body));
    let result = match job.timeout {
        // The limit counts from the attempt's start, before a suspension if it was resumed.
        Some(limit) => match tokio::time::timeout(limit.saturating_sub(scope.attempt_elapsed()), attempt).await {
            Ok(result) => result,
            Err(_) => {
                let message = format!("timed out after {}", monkeyci_protocol::duration::short(limit));
                return (JobStatus::Timeout, Some(message), None);
            }
        },
        None => attempt.await,
    };
    match result {
        Ok(Ok(output)) => (JobStatus::Success, None, Some(output)),
        Ok(Err(err)) => (JobStatus::Failure, Some(err.to_string()), None),
        Err(payload) => {
            let recorded = job_panics().lock().remove(&job.id);
            let message = recorded.unwrap_or_else(|| panic_message(&*payload));
            (JobStatus::Failure, Some(format!("panicked: {message}")), None)
        }
    }
}

/// Polls a job's future, turning a panic into an `Err` with its payload, so a panicking job
/// fails alone and the build goes on.
struct CatchUnwind<F: ?Sized>(Pin<Box<F>>);

impl<F: Future + ?Sized> Future for CatchUnwind<F> {
    type Output = Result<F::Output, Box<dyn Any + Send>>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::time::Duration;

    use crate::protocol::{BuildStatus, EventKind, JobStatus, StepKey};
    use crate::testing::TestCtx;
    use crate::{Job, JobError};

    fn ok(id: &str) -> Job {
        Job::action(id, |_ctx| async { Ok(()) })
    }

    fn failing(id: &str) -> Job {
        Job::action(id, |_ctx| async { Err::<(), _>(JobError::msg("broken")) })
    }

    #[test]
    fn replayed_jobs_do_not_run_again_and_keep_their_outputs() {
        use crate::protocol::{JournalEntry, JournalRecord};
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let first = Job::action("first", move |_ctx| {
            counter.fetch_add(1, Ordering::SeqCst);
            async { Ok(1u32) }
        });
        struct First;
        impl crate::JobMarker for First {
            type Output = u64;
            const ID: &'static str = "first";
        }
        let second = Job::action("second", |ctx| async move { Ok(ctx.output::<First>()? + 1) }).depends_on(["first"]);
        let journal = vec![JournalEntry::new(
            "first",
            StepKey::End,
            JournalRecord::JobEnd {
                status: JobStatus::Success,
                attempt: 1,
                output: Some(serde_json::json!(41)),
                message: None,
            },
        )];
        let ctx = TestCtx::new();
        let run = tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(ctx.run_jobs_replaying(vec![first, second], crate::durable::journal::Replay::new(journal)))
            .unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 0, "a journaled job must not run again");
        assert_eq!(run.output_json("second"), Some(&serde_json::json!(42)));
        assert!(run.events().iter().any(|e| matches!(e.kind, EventKind::ScriptResumed { replayed: 1 })));
    }

    #[test]
    fn ctx_run_steps_are_journaled_and_replayed_in_call_order() {
        use crate::protocol::{ContainerResult, JournalEntry, JournalRecord};
        let both = || {
            Job::action("both", |ctx| async move {
                let a = ctx.run(crate::container("img-a").script(["a"]));
                let b = ctx.run(crate::container("img-b").script(["b"]));
                let (a, b) = crate::join!(a, b);
                Ok((a?.exit, b?.exit))
            })
        };
        let run = TestCtx::new().run_jobs(vec![both()]).unwrap();
        assert_eq!(run.job_status("both"), Some(JobStatus::Success));
        let started: Vec<&str> = run.containers().iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(started, ["both.run1", "both.run2"]);
        let recorded: Vec<(StepKey, String)> = run
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JournalRecord { entry } => match &entry.record {
                    JournalRecord::RunResult { digest, .. } => Some((entry.key(), digest.clone())),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        assert_eq!(recorded.len(), 2);
        for key in [StepKey::Step(1), StepKey::Step(2)] {
            assert!(recorded.iter().any(|(recorded, _)| *recorded == key), "{key:?} in {recorded:?}");
        }

        // A resume with step 1 recorded awaits only step 2.
        let done = ContainerResult { status: JobStatus::Success, exit: Some(0), message: None };
        let journal = vec![JournalEntry::new(
            "both",
            StepKey::Step(1),
            JournalRecord::RunResult { attempt: 1, digest: "img-a [\"a\"] []".into(), result: done.clone() },
        )];
        let rt = tokio::runtime::Runtime::new().unwrap();
        let resumed = rt
            .block_on(TestCtx::new().run_jobs_replaying(vec![both()], crate::durable::journal::Replay::new(journal)))
            .unwrap();
        let started: Vec<&str> = resumed.containers().iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(started, ["both.run2"], "step 1 must be replayed, not run");

        // A resume whose step 1 asks for another container diverges, naming both.
        let other = vec![JournalEntry::new(
            "both",
            StepKey::Step(1),
            JournalRecord::RunResult { attempt: 1, digest: "img-z [\"z\"] []".into(), result: done },
        )];
        let diverged = rt
            .block_on(TestCtx::new().run_jobs_replaying(vec![both()], crate::durable::journal::Replay::new(other)))
            .unwrap();
        let message = diverged.message("both").unwrap();
        assert!(message.contains("diverged") && message.contains("img-z") && message.contains("img-a"), "{message}");
    }

    fn journal_of(run: &crate::testing::TestRun) -> Vec<crate::protocol::JournalEntry> {
        run.events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JournalRecord { entry } => Some(entry.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn shell_steps_are_replayed_and_their_log_lines_not_written_again() {
        use crate::protocol::{JournalEntry, JournalRecord};
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("ran");
        let command = format!("echo ran >> {}; echo one; echo two", marker.display());
        let job = move || {
            let command = command.clone();
            Job::action("sh", move |ctx| {
                let command = command.clone();
                async move {
                    ctx.log("before");
                    let first = ctx.shell(&command).await?;
                    ctx.log("after");
                    ctx.shell("echo three").await?;
                    Ok(first.stdout)
                }
            })
        };
        let live = TestCtx::new().run_jobs(vec![job()]).unwrap();
        assert_eq!(live.log("sh"), ["before", "one", "two", "after", "three"]);
        let shells: Vec<JournalEntry> = journal_of(&live)
            .into_iter()
            .filter(|entry| matches!(entry.record, JournalRecord::ShellResult { .. }))
            .collect();
        assert_eq!(shells.len(), 2, "{shells:?}");
        assert!(matches!(&shells[0].record, JournalRecord::ShellResult { lines: 2, code: Some(0), .. }));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n");

        // Suspended after the first step and "after": four lines written.
        let suspended = JournalEntry::new(
            "sh",
            StepKey::Job,
            JournalRecord::JobSuspended { attempt: 1, lines: 4, started_at_ms: 0 },
        );
        let replay = crate::durable::journal::Replay::new(vec![shells[0].clone(), suspended]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let resumed = rt.block_on(TestCtx::new().run_jobs_replaying(vec![job()], replay)).unwrap();
        assert_eq!(resumed.job_status("sh"), Some(JobStatus::Success));
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "ran\n", "a recorded command must not run again");
        assert_eq!(resumed.output_json("sh"), Some(&serde_json::json!("one\ntwo\n")));
        assert_eq!(resumed.log("sh"), ["three"], "lines written before the suspension are held back");
        assert!(
            !resumed
                .events()
                .iter()
                .any(|e| matches!(e.kind, EventKind::JobStart { .. } | EventKind::JobQueued { .. })),
            "a resumed job does not start again"
        );

        // A resumed job asking for another command at a recorded step diverges, naming both.
        let other = Job::action("sh", |ctx| async move { ctx.shell("echo something else").await.map(|_| ()) });
        let replay = crate::durable::journal::Replay::new(vec![shells[0].clone()]);
        let diverged = rt.block_on(TestCtx::new().run_jobs_replaying(vec![other], replay)).unwrap();
        let message = diverged.message("sh").unwrap();
        assert!(
            message.contains("diverged") && message.contains("echo ran") && message.contains("something else"),
            "{message}"
        );
    }

    #[test]
    fn a_job_that_is_not_idempotent_fails_rather_than_runs_again_after_a_crash() {
        use crate::protocol::{JournalEntry, JournalRecord};
        let runs = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&runs);
        let deploy = move || {
            let counter = Arc::clone(&counter);
            Job::action("deploy", move |_ctx| {
                counter.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
            .idempotent(false)
        };
        let live = TestCtx::new().run_jobs(vec![deploy()]).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1);
        let starts: Vec<JournalEntry> = journal_of(&live)
            .into_iter()
            .filter(|entry| matches!(entry.record, JournalRecord::JobStart { attempt: 1 }))
            .collect();
        assert_eq!(starts.len(), 1, "its start is journaled");

        let rt = tokio::runtime::Runtime::new().unwrap();
        let replay = crate::durable::journal::Replay::new(starts);
        let resumed = rt.block_on(TestCtx::new().run_jobs_replaying(vec![deploy()], replay)).unwrap();
        assert_eq!(runs.load(Ordering::SeqCst), 1, "it must not run again");
        assert_eq!(resumed.job_status("deploy"), Some(JobStatus::Failure));
        let message = resumed.message("deploy").unwrap();
        assert!(message.contains("idempotent = false") && message.contains("not run again"), "{message}");
    }

    #[test]
    fn a_resumed_container_job_counts_its_duration_from_its_dispatch() {
        use crate::protocol::{JournalEntry, JournalRecord, now_ms};
        let dispatched = JournalEntry::new(
            "wait",
            StepKey::Job,
            JournalRecord::ContainerDispatched { attempt: 1, at_ms: Some(now_ms() - 5_000), spec: None },
        );
        let job = Job::container("wait", crate::container("img").script(["sleep 5"]));
        let rt = tokio::runtime::Runtime::new().unwrap();
        let replay = crate::durable::journal::Replay::new(vec![dispatched]);
        let resumed = rt.block_on(TestCtx::new().run_jobs_replaying(vec![job], replay)).unwrap();
        let duration = resumed.events().iter().find_map(|e| match &e.kind {
            EventKind::JobEnd { duration_ms, .. } => Some(*duration_ms),
            _ => None,
        });
        assert!(duration.is_some_and(|ms| ms >= 5_000), "{duration:?}");
        let dispatches = journal_of(&resumed)
            .into_iter()
            .filter(|entry| matches!(entry.record, JournalRecord::ContainerDispatched { .. }))
            .count();
        assert_eq!(dispatches, 0, "a resumed dispatch is not journaled again");
    }

    #[test]
    fn a_resumed_action_job_keeps_the_time_it_already_used_of_its_limit() {
        use crate::protocol::{JournalEntry, JournalRecord, now_ms};
        let job = || {
            Job::action("slow", |ctx| async move {
                ctx.sleep(Duration::from_millis(1_500)).await;
                Ok(())
            })
            .timeout(Duration::from_secs(2))
        };
        let suspended = JournalEntry::new(
            "slow",
            StepKey::Job,
            JournalRecord::JobSuspended { attempt: 1, lines: 0, started_at_ms: now_ms() - 1_000 },
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let replay = crate::durable::journal::Replay::new(vec![suspended]);
        let resumed = rt.block_on(TestCtx::new().run_jobs_replaying(vec![job()], replay)).unwrap();
        assert_eq!(resumed.job_status("slow"), Some(JobStatus::Timeout), "1 s before the suspension + 1.5 s > 2 s");
        let fresh = TestCtx::new().run_jobs(vec![job()]).unwrap();
        assert_eq!(fresh.job_status("slow"), Some(JobStatus::Success));
    }

    #[test]
    fn now_and_random_are_the_same_on_every_launch() {
        let test = TestCtx::new();
        let (a, b) = (test.ctx().for_job("j", true), test.ctx().for_job("j", true));
        assert_eq!(a.now(), b.now());
        let draws = |ctx: &crate::Ctx| (0..3).map(|_| ctx.random_u64()).collect::<Vec<_>>();
        let first = draws(&a);
        assert_eq!(first, draws(&b));
        assert_ne!(first[0], first[1]);
        assert_ne!(draws(&test.ctx().for_job("other", true))[0], first[0]);
    }

    #[test]
    fn blocked_jobs_run_only_when_approved() {
        let jobs = || vec![ok("deploy").blocked(), ok("notify").depends_on(["deploy"])];
        let declined = TestCtx::new().run_jobs(jobs()).unwrap();
        assert_eq!(declined.job_status("deploy"), Some(JobStatus::Skipped));
        assert_eq!(declined.message("deploy"), Some("blocked: it was not approved"));
        assert_eq!(declined.message("notify"), Some("dependency `deploy` was skipped (blocked: it was not approved)"));
        assert!(
            declined.events().iter().any(|e| matches!(&e.kind, EventKind::JobBlocked { job_id } if job_id == "deploy"))
        );

        let approved = TestCtx::new().approve("deploy").run_jobs(jobs()).unwrap();
        assert_eq!(approved.job_status("notify"), Some(JobStatus::Success));
    }

    #[test]
    fn retries_count_attempts_until_success() {
        let calls = Arc::new(AtomicU32::new(0));
        let counter = Arc::clone(&calls);
        let flaky = Job::action("flaky", move |_ctx| {
            let attempt = counter.fetch_add(1, Ordering::SeqCst) + 1;
            async move { if attempt < 3 { Err(JobError::msg(format!("try {attempt}"))) } else { Ok(attempt) } }
        })
        .retries(5);
        let run = TestCtx::new().run_jobs(vec![flaky]).unwrap();
        assert_eq!(run.job_status("flaky"), Some(JobStatus::Success));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let starts: Vec<u32> = run
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JobStart { attempt, .. } => Some(*attempt),
                _ => None,
            })
            .collect();
        assert_eq!(starts, [1, 2, 3]);
    }

    #[test]
    fn an_allowed_failure_does_not_fail_the_build_and_its_dependents_run() {
        let slow_timeout = Job::action("slow", |ctx| async move {
            ctx.sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .timeout(Duration::from_millis(20))
        .allow_failure();
        let jobs = vec![failing("msrv").allow_failure(), ok("after").depends_on(["msrv"]), slow_timeout, ok("other")];
        // Not even fail_fast stops at an allowed failure.
        let run = TestCtx::new().fail_fast().run_jobs(jobs).unwrap();
        assert_eq!(run.status(), BuildStatus::Success);
        assert_eq!(run.job_status("msrv"), Some(JobStatus::Failure));
        assert_eq!(run.job_status("slow"), Some(JobStatus::Timeout));
        assert_eq!(run.job_status("after"), Some(JobStatus::Success));
        assert_eq!(run.job_status("other"), Some(JobStatus::Success));
        let end = run.events().iter().find_map(|e| match &e.kind {
            EventKind::ScriptEnd { status, message } => Some((*status, message.clone())),
            _ => None,
        });
        assert_eq!(
            end,
            Some((BuildStatus::Success, Some("2 jobs failed, which they are allowed to: msrv, slow".to_owned())))
        );
        let plan = TestCtx::new().plan_jobs(vec![failing("msrv").allow_failure()]).unwrap();
        assert!(plan.jobs[0].allow_failure);

        // A job not allowed to fail still fails the build beside one that is.
        let run = TestCtx::new().run_jobs(vec![failing("msrv").allow_failure(), failing("test")]).unwrap();
        assert_eq!(run.status(), BuildStatus::Failure);
        let end = run.events().iter().find_map(|e| match &e.kind {
            EventKind::ScriptEnd { message, .. } => message.clone(),
            _ => None,
        });
        assert_eq!(end.as_deref(), Some("job `test` failed"));
    }

    #[test]
    fn reports_run_on_failure_and_cleanup_always() {
        use crate::Runs;
        let jobs = |test: Job| {
            vec![
                ok("build"),
                test.depends_on(["build"]),
                ok("package").depends_on(["test"]),
                ok("report").depends_on(["package"]).runs(Runs::OnFailure),
                ok("notify").depends_on(["report"]),
                ok("cleanup").depends_on(["test", "package"]).runs(Runs::Always),
            ]
        };
        let failed = TestCtx::new().run_jobs(jobs(failing("test"))).unwrap();
        assert_eq!(failed.status(), BuildStatus::Failure);
        assert_eq!(failed.message("package"), Some("dependency `test` failed"), "skipped as before");
        // `package` was skipped because `test` failed: that is a failure for `report`.
        assert_eq!(failed.job_status("report"), Some(JobStatus::Success));
        assert_eq!(failed.job_status("notify"), Some(JobStatus::Success));
        assert_eq!(failed.job_status("cleanup"), Some(JobStatus::Success));

        let passed = TestCtx::new().run_jobs(jobs(ok("test"))).unwrap();
        assert_eq!(passed.status(), BuildStatus::Success);
        assert_eq!(passed.job_status("report"), Some(JobStatus::Skipped));
        assert_eq!(passed.message("report"), Some("runs = on_failure, and no dependency failed"));
        assert_eq!(
            passed.message("notify"),
            Some("dependency `report` was skipped (runs = on_failure, and no dependency failed)")
        );
        assert_eq!(passed.job_status("cleanup"), Some(JobStatus::Success));

        // A dependency skipped for another reason than a failure is no failure; `always` runs.
        let declined = vec![
            ok("deploy").blocked(),
            ok("report").depends_on(["deploy"]).runs(Runs::OnFailure),
            ok("cleanup").depends_on(["deploy"]).runs(Runs::Always),
        ];
        let declined = TestCtx::new().run_jobs(declined).unwrap();
        assert_eq!(declined.job_status("report"), Some(JobStatus::Skipped));
        assert_eq!(declined.job_status("cleanup"), Some(JobStatus::Success));

        // An allowed failure counts as a success.
        let allowed = vec![failing("msrv").allow_failure(), ok("report").depends_on(["msrv"]).runs(Runs::OnFailure)];
        assert_eq!(TestCtx::new().run_jobs(allowed).unwrap().job_status("report"), Some(JobStatus::Skipped));

        // fail_fast stops the rest, but reports and cleanup still run.
        let fast = TestCtx::new().fail_fast().run_jobs(jobs(failing("test"))).unwrap();
        assert_eq!(fast.job_status("report"), Some(JobStatus::Success));
        assert_eq!(fast.job_status("cleanup"), Some(JobStatus::Success));
        assert_eq!(fast.job_status("notify"), Some(JobStatus::Skipped));
        assert_eq!(fast.message("notify"), Some("fail_fast: job `test` failed"));

        let plan = TestCtx::new().plan_jobs(jobs(ok("test"))).unwrap();
        assert_eq!(plan.job("report").map(|job| job.runs), Some(Runs::OnFailure));
    }

    #[test]
    fn container_jobs_retry_in_a_new_container_per_attempt() {
        let job = || Job::container("flaky", crate::container("alpine").script(["./it.sh"])).retries(2);
        let run = TestCtx::new().fail_container("flaky", 2).run_jobs(vec![job()]).unwrap();
        assert_eq!(run.job_status("flaky"), Some(JobStatus::Success));
        assert_eq!(run.containers().len(), 3);
        let retrying: Vec<(u32, &str)> = run
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JobRetrying { attempt, message, .. } => Some((*attempt, message.as_str())),
                _ => None,
            })
            .collect();
        assert_eq!(
            retrying,
            [(1, "attempt 1 failed (TestCtx::fail_container)"), (2, "attempt 2 failed (TestCtx::fail_container)")]
        );

        let out_of_attempts = TestCtx::new().fail_container("flaky", 3).run_jobs(vec![job()]).unwrap();
        assert_eq!(out_of_attempts.job_status("flaky"), Some(JobStatus::Failure));
        assert_eq!(out_of_attempts.message("flaky"), Some("attempt 3 failed (TestCtx::fail_container)"));
    }

    #[test]
    fn timeouts_stop_the_job() {
        let slow = Job::action("slow", |ctx| async move {
            ctx.sleep(Duration::from_secs(30)).await;
            Ok(())
        })
        .timeout(Duration::from_millis(50));
        let run = TestCtx::new().run_jobs(vec![slow, ok("other")]).unwrap();
        assert_eq!(run.job_status("slow"), Some(JobStatus::Timeout));
        assert_eq!(run.message("slow"), Some("timed out after 50ms"));
        assert_eq!(run.job_status("other"), Some(JobStatus::Success));
        assert_eq!(run.status(), BuildStatus::Failure);
    }

    #[test]
    fn fail_fast_cancels_running_jobs_and_skips_the_rest() {
        let slow = Job::action("slow", |ctx| async move {
            ctx.sleep(Duration::from_secs(30)).await;
            Ok(())
        });
        let jobs = vec![slow, failing("broken"), ok("after").depends_on(["slow"])];
        let started = std::time::Instant::now();
        let run = TestCtx::new().fail_fast().run_jobs(jobs).unwrap();
        assert!(started.elapsed() < Duration::from_secs(10), "fail_fast must not wait for the slow job");
        assert_eq!(run.job_status("broken"), Some(JobStatus::Failure));
        assert_eq!(run.job_status("slow"), Some(JobStatus::Canceled));
        assert_eq!(run.job_status("after"), Some(JobStatus::Skipped));

        let without = TestCtx::new().run_jobs(vec![failing("broken"), ok("independent")]).unwrap();
        assert_eq!(without.job_status("independent"), Some(JobStatus::Success));
    }

    #[test]
    fn canceling_the_build_stops_running_jobs_and_skips_the_rest() {
        let slow = Job::action("slow", |ctx| async move {
            ctx.cancel_build();
            ctx.sleep(Duration::from_secs(30)).await;
            Ok(())
        });
        let run = TestCtx::new().run_jobs(vec![slow, ok("next").depends_on(["slow"])]).unwrap();
        assert_eq!(run.status(), BuildStatus::Canceled);
        assert_eq!(run.job_status("slow"), Some(JobStatus::Canceled));
        assert_eq!(run.message("next"), Some("dependency `slow` was canceled"));
    }

    #[test]
    fn a_panic_fails_only_its_job() {
        let boom = Job::action("boom", |_ctx| async {
            if true {
                panic!("kaboom");
            }
            Ok(())
        });
        let run = TestCtx::new().run_jobs(vec![boom, ok("fine")]).unwrap();
        assert_eq!(run.job_status("boom"), Some(JobStatus::Failure));
        let message = run.message("boom").unwrap();
        assert!(message.starts_with("panicked: kaboom (at "), "{message}");
        assert_eq!(run.job_status("fine"), Some(JobStatus::Success));
    }

    /// A container job whose spec reads `version`'s output, and `version`.
    fn version_and_package() -> Vec<Job> {
        struct Version;
        impl crate::JobMarker for Version {
            type Output = String;
            const ID: &'static str = "version";
        }
        let version = Job::action("version", |_ctx| async { Ok("1.2.3".to_owned()) });
        let package = Job::container_with("package", |ctx| {
            let version = ctx.output::<Version>()?;
            Ok(crate::container(format!("registry/app:{version}")).script([format!("echo packaging {version}")]))
        })
        .depends_on(["version"]);
        vec![version, package]
    }

    /// #10: a container job's spec may read the outputs of the jobs it depends on; it is
    /// resolved once they ended, and journaled with the dispatch.
    #[test]
    fn a_container_spec_reading_an_output_is_resolved_when_its_dependencies_ended() {
        use crate::protocol::JournalRecord;
        let plan = TestCtx::new().plan_jobs(version_and_package()).unwrap();
        let package = plan.job("package").unwrap();
        assert!(package.resolved_at_run_time && package.container.is_none(), "{package:?}");

        let run = TestCtx::new().run_jobs(version_and_package()).unwrap();
        assert_eq!(run.job_status("package"), Some(JobStatus::Success), "{run:?}");
        let [(job, spec)] = run.containers() else { panic!("{:?}", run.containers()) };
        assert_eq!((job.as_str(), spec.image.as_str()), ("package", "registry/app:1.2.3"));
        assert_eq!(spec.script, ["echo packaging 1.2.3"]);
        let journaled: Vec<_> = journal_of(&run)
            .into_iter()
            .filter_map(|entry| match entry.record {
                JournalRecord::ContainerDispatched { spec, .. } => Some(spec),
                _ => None,
            })
            .collect();
        assert_eq!(journaled, [Some(Box::new(spec.clone()))], "the resolved spec is journaled with its dispatch");
    }

    /// #10: a resumed script awaits the container it dispatched, with the spec it resolved then.
    #[test]
    fn a_resumed_container_job_keeps_the_spec_it_was_dispatched_with() {
        use crate::protocol::{JournalEntry, JournalRecord};
        let ended = JournalEntry::new(
            "version",
            StepKey::End,
            JournalRecord::JobEnd {
                status: JobStatus::Success,
                attempt: 1,
                output: Some(serde_json::json!("1.2.3")),
                message: None,
            },
        );
        let dispatched_spec = crate::container("registry/app:as-dispatched").script(["true"]).into_spec();
        let dispatched = JournalEntry::new(
            "package",
            StepKey::Job,
            JournalRecord::ContainerDispatched {
                attempt: 1,
                at_ms: None,
                spec: Some(Box::new(dispatched_spec.clone())),
            },
        );
        let rt = tokio::runtime::Runtime::new().unwrap();
        let replay = crate::durable::journal::Replay::new(vec![ended, dispatched]);
        let resumed = rt.block_on(TestCtx::new().run_jobs_replaying(version_and_package(), replay)).unwrap();
        assert_eq!(resumed.job_status("package"), Some(JobStatus::Success), "{resumed:?}");
        assert_eq!(resumed.containers(), [("package".to_owned(), dispatched_spec)]);
        let dispatches = journal_of(&resumed)
            .into_iter()
            .filter(|entry| matches!(entry.record, JournalRecord::ContainerDispatched { .. }))
            .count();
        assert_eq!(dispatches, 0, "a resumed dispatch is not journaled again");
    }

    #[test]
    fn a_container_spec_that_cannot_be_resolved_fails_its_job_and_skips_its_dependents() {
        let broken = Job::container_with("package", |_ctx| Err(JobError::msg("no version")));
        let run = TestCtx::new().run_jobs(vec![broken, ok("publish").depends_on(["package"])]).unwrap();
        assert_eq!(run.job_status("package"), Some(JobStatus::Failure));
        assert_eq!(run.message("package"), Some("its container spec could not be resolved: no version"));
        assert_eq!(run.message("publish"), Some("dependency `package` failed"));
        assert!(run.containers().is_empty());

        let escaping = Job::container_with("up", |_ctx| Ok(crate::container("alpine").script(["ls"]).work_dir("..")));
        let run = TestCtx::new().run_jobs(vec![escaping]).unwrap();
        let message = run.message("up").unwrap();
        assert!(message.starts_with("its container spec cannot run: work_dir"), "{message}");

        let stranger = Job::container_with("stranger", |ctx| {
            struct Source;
            impl crate::JobMarker for Source {
                type Output = ();
                const ID: &'static str = "source";
            }
            ctx.output::<Source>()?;
            Ok(crate::container("alpine").script(["true"]))
        });
        let run = TestCtx::new().run_jobs(vec![ok("source"), stranger]).unwrap();
        assert_eq!(
            run.message("stranger"),
            Some(
                "its container spec could not be resolved: job `stranger` reads the output of `source` but does not \
                 depend on it; add it to `depends_on`"
            )
        );
    }

    #[test]
    fn outputs_are_only_readable_by_dependents() {
        #[crate::job]
        async fn source(_ctx: &crate::Ctx) -> Result<u32, JobError> {
            Ok(7)
        }
        let reader = |id: &str| {
            Job::action(id, |ctx| async move {
                let n = ctx.output::<source>()?;
                Ok(n * 6)
            })
        };
        let source_job = Job::action("source", |_ctx| async { Ok(7u32) });
        let run = TestCtx::new()
            .run_jobs(vec![source_job, reader("dependent").depends_on(["source"]), reader("stranger")])
            .unwrap();
        assert_eq!(run.output_json("dependent"), Some(&serde_json::json!(42)));
        assert_eq!(
            run.message("stranger"),
            Some("job `stranger` reads the output of `source` but does not depend on it; add it to `depends_on`")
        );
    }
}
