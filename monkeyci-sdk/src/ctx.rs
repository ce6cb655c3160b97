//! [`Ctx`]: what a job knows about its build, and the only way a pipeline performs effects.
//!
//! Reading the build (branch, tag, changed files, params) and acting in it (logging, running
//! commands, reading a dependency's output) all go through `Ctx`, so the scheduler can see,
//! mask and later journal every effect. This module owns no scheduling logic.

use std::collections::{HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::Semaphore;

use crate::dsl::container::{Artifact, ContainerJob};
use crate::dsl::error::JobError;
use crate::dsl::output::JobMarker;
use crate::durable::journal::{Step, Steps, step_diverged};
use crate::durable::suspend::{Waiting, WaitingGuard};
use crate::glob;
use crate::protocol::{
    BuildInfo, Changes, ContainerResult, Event, EventKind, JobStatus, JournalEntry, JournalRecord, Masker,
    OutputStream, ParamMap, Source, StepKey,
};
use crate::runner::{Approver, ArtifactStore, ContainerRunner, EventSink, Started};
use crate::secret::Secret;

/// The build context handed to every job, condition and `#[pipeline]` function.
///
/// Cheap to clone. Inside a job it also knows the job: its id, its work directory and the
/// outputs of the jobs it depends on.
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// fn is_release(ctx: &Ctx) -> bool {
///     ctx.tag().is_some_and(|tag| tag.starts_with('v'))
/// }
///
/// let ctx = monkeyci_sdk::testing::TestCtx::new().tag("v1.2.0").ctx();
/// assert!(is_release(&ctx));
/// assert_eq!(ctx.branch(), None);
/// ```
#[derive(Clone)]
pub struct Ctx {
    pub(crate) build: Arc<BuildState>,
    pub(crate) job: Option<Arc<JobScope>>,
    /// Numbers drawn with `random_u64` by this context and its clones.
    draws: Arc<AtomicU64>,
}

/// What all jobs of one build share.
pub(crate) struct BuildState {
    pub(crate) info: BuildInfo,
    pub(crate) params: ParamMap,
    pub(crate) masker: Masker,
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) containers: Arc<dyn ContainerRunner>,
    pub(crate) approver: Arc<dyn Approver>,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
    /// Bounds process work (commands, containers); async action code is not bounded.
    pub(crate) process_slots: Arc<Semaphore>,
    /// Outputs of finished jobs, as JSON.
    pub(crate) outputs: Mutex<HashMap<String, Arc<serde_json::Value>>>,
    /// Each planned job's direct dependencies, set once the build is planned.
    pub(crate) graph: OnceLock<HashMap<String, Vec<String>>>,
    /// Set once the build is canceled; the scheduler stops everything.
    pub(crate) canceled: tokio::sync::watch::Sender<bool>,
    /// Jobs waiting for containers: when every running job is, nothing runs in this process
    /// and the script may suspend.
    pub(crate) waiting: Waiting,
    /// Steps of action jobs journaled by an earlier launch.
    pub(crate) replayed_steps: OnceLock<Steps>,
}

/// The job a context belongs to.
pub(crate) struct JobScope {
    pub(crate) id: String,
    pub(crate) work_dir: PathBuf,
    /// Whether the script may suspend while this job waits for containers (`idempotent`).
    suspendable: bool,
    /// The attempt running now.
    attempt: AtomicU32,
    /// When it started, ms since the epoch (before a suspension, for a resumed attempt).
    started_at_ms: AtomicU64,
    /// Journaled steps (`ctx.run`, `ctx.shell`) taken in this attempt.
    steps: AtomicU32,
    /// Log lines written in this attempt, counting those a replay held back.
    lines: AtomicU64,
    /// Log lines of this attempt written before the script suspended: a replay holds them back.
    lines_written_before: AtomicU64,
}

/// Where a build's effects go: events, containers, approvals and artifacts.
pub(crate) struct Seams {
    pub(crate) events: Arc<dyn EventSink>,
    pub(crate) containers: Arc<dyn ContainerRunner>,
    pub(crate) approver: Arc<dyn Approver>,
    pub(crate) artifacts: Arc<dyn ArtifactStore>,
}

impl BuildState {
    /// A build that has not started: `max_parallel` bounds its process work.
    pub(crate) fn new(info: BuildInfo, params: ParamMap, seams: Seams, max_parallel: usize) -> BuildState {
        let Seams { events, containers, approver, artifacts } = seams;
        BuildState {
            info,
            masker: Masker::new(params.values().map(String::as_str)),
            params,
            events,
            containers,
            approver,
            artifacts,
            process_slots: Arc::new(Semaphore::new(max_parallel.max(1))),
            outputs: Mutex::new(HashMap::new()),
            graph: OnceLock::new(),
            canceled: tokio::sync::watch::Sender::new(false),
            waiting: Waiting::default(),
            replayed_steps: OnceLock::new(),
        }
    }
}

impl Ctx {
    pub(crate) fn new(build: BuildState) -> Ctx {
        Ctx { build: Arc::new(build), job: None, draws: Arc::default() }
    }

    /// The context of job `id`; `suspendable` unless it is an action job declared
    /// `idempotent = false`.
    pub(crate) fn for_job(&self, id: &str, suspendable: bool) -> Ctx {
        let work_dir = self.build.info.checkout_dir.clone();
        Ctx {
            build: Arc::clone(&self.build),
            job: Some(Arc::new(JobScope {
                id: id.to_owned(),
                work_dir,
                suspendable,
                attempt: AtomicU32::new(1),
                started_at_ms: AtomicU64::new(crate::protocol::now_ms()),
                steps: AtomicU32::new(0),
                lines: AtomicU64::new(0),
                lines_written_before: AtomicU64::new(0),
            })),
            draws: Arc::default(),
        }
    }

    /// Starts `attempt` of this context's job: its steps and log lines count from zero, and a
    /// resumed attempt holds back the log lines it wrote before the script suspended.
    pub(crate) fn start_attempt(&self, attempt: u32, started_at_ms: u64) {
        let Some(job) = &self.job else { return };
        let written = self.build.replayed_steps.get().map_or(0, |steps| steps.lines_written(&job.id, attempt));
        job.attempt.store(attempt, Ordering::SeqCst);
        job.started_at_ms.store(started_at_ms, Ordering::SeqCst);
        job.steps.store(0, Ordering::SeqCst);
        job.lines.store(0, Ordering::SeqCst);
        job.lines_written_before.store(written, Ordering::SeqCst);
    }

    /// How long this context's job's attempt has run, counting from its start before a
    /// suspension (zero outside a job).
    pub(crate) fn attempt_elapsed(&self) -> std::time::Duration {
        let Some(job) = &self.job else { return std::time::Duration::ZERO };
        let started = job.started_at_ms.load(Ordering::SeqCst);
        std::time::Duration::from_millis(crate::protocol::now_ms().saturating_sub(started))
    }

    /// Journals `record` at `key` for this context's job.
    pub(crate) fn journal(&self, key: StepKey, record: JournalRecord) {
        if let Some(job) = &self.job {
            self.emit(EventKind::JournalRecord { entry: JournalEntry::new(job.id.clone(), key, record) });
        }
    }

    /// Journals where this action job is, as the script suspends: the resumed script runs the
    /// same attempt again and holds back the log lines written so far.
    pub(crate) fn journal_suspended(&self) {
        if let Some(job) = &self.job {
            let record = JournalRecord::JobSuspended {
                attempt: job.attempt.load(Ordering::SeqCst),
                lines: job.lines.load(Ordering::SeqCst),
                started_at_ms: job.started_at_ms.load(Ordering::SeqCst),
            };
            self.journal(StepKey::Job, record);
        }
    }

    /// Counts this context's job as waiting for a container until the guard is dropped (a job
    /// that must not be re-run is never counted, so the script does not suspend under it).
    pub(crate) fn waiting_for_container(&self) -> WaitingGuard<'_> {
        let job = match &self.job {
            Some(job) if !job.suspendable => None,
            job => Some(job.as_ref().map_or("script", |job| job.id.as_str()).to_owned()),
        };
        self.build.waiting.enter(job)
    }

    /// Runs the container of `request` to its end; while it runs, this context's job counts as
    /// waiting for it.
    pub(crate) async fn run_container(
        &self,
        request: crate::protocol::ContainerRequest,
    ) -> Result<ContainerResult, JobError> {
        let containers = &self.build.containers;
        match containers.start(&request).await? {
            Started::Ended(result) => Ok(result),
            Started::Running(id) => {
                let _waiting = self.waiting_for_container();
                containers.wait(&request, &id).await
            }
        }
    }

    /// Takes the next journaled step of this context's job (none outside a job). Called when
    /// the step is called, so concurrent steps keep the order of their calls.
    fn next_step(&self) -> Option<StepTaken> {
        let job = self.job.as_ref()?;
        let n = job.steps.fetch_add(1, Ordering::SeqCst) + 1;
        let attempt = job.attempt.load(Ordering::SeqCst);
        let recorded = self.build.replayed_steps.get().and_then(|steps| steps.get(&job.id, attempt, n)).cloned();
        Some(StepTaken { job: job.id.clone(), attempt, n, recorded })
    }

    /// Runs a container from inside an action job and waits for it to end: the job fails
    /// with the container's message if it does not succeed.
    ///
    /// This is a journaled step: while it waits (and nothing else runs in the script), the
    /// script may suspend; when it is resumed, the action job runs again from its start and
    /// each step (`ctx.run`, [`Ctx::shell`]) that already ended returns its recorded result at
    /// once, while the one in flight is awaited again (never started twice). Take the steps in
    /// the same order on every run of the job: a resumed job that asks for a different
    /// container than the one recorded at that step fails, naming both. Futures may run
    /// concurrently (`join!`); their order is the order of the calls.
    ///
    /// ```no_run
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn build_both(ctx: &Ctx) -> Result<()> {
    ///     let a = ctx.run(container("rust:1.95").script(["cargo build -p a"]));
    ///     let b = ctx.run(container("rust:1.95").script(["cargo build -p b"]));
    ///     let (a, b) = monkeyci_sdk::join!(a, b);
    ///     a?;
    ///     b?;
    ///     Ok(())
    /// }
    /// # fn main() {}
    /// ```
    pub fn run(
        &self,
        spec: ContainerJob,
    ) -> impl std::future::Future<Output = Result<ContainerResult, JobError>> + Send + '_ {
        let step = self.next_step();
        async move {
            let Some(StepTaken { job, attempt, n, recorded }) = step else {
                return Err(JobError::msg("ctx.run can only be used inside a job"));
            };
            let spec = spec.into_spec();
            let digest = spec.digest();
            let result = match recorded {
                Some(Step::Run { digest: recorded_digest, result }) if recorded_digest == digest => result,
                Some(other) => return Err(step_diverged(&job, n, &other, &format!("ctx.run of `{digest}`"))),
                None => {
                    let request = crate::protocol::ContainerRequest { job_id: format!("{job}.run{n}"), attempt, spec };
                    let result = self.run_container(request).await?;
                    self.journal(
                        StepKey::Step(n),
                        JournalRecord::RunResult { attempt, digest, result: result.clone() },
                    );
                    result
                }
            };
            match result.status {
                JobStatus::Success => Ok(result),
                status => Err(JobError::msg(
                    result.message.clone().unwrap_or_else(|| format!("the container of step {n} ended: {status}")),
                )),
            }
        }
    }

    /// Cancels the build: running jobs are stopped, the others skipped.
    pub(crate) fn cancel_build(&self) {
        self.build.canceled.send_replace(true);
    }

    pub(crate) fn emit(&self, kind: EventKind) {
        self.build.events.emit(Event::now(kind));
    }

    /// The id of this build.
    pub fn build_id(&self) -> &str {
        &self.build.info.build_id
    }

    /// The full git ref being built, such as `refs/heads/main` or `refs/tags/v1.0`.
    pub fn git_ref(&self) -> Option<&str> {
        self.build.info.git.git_ref.as_deref()
    }

    /// The branch being built, when the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref()?.strip_prefix("refs/heads/")
    }

    /// The tag being built, when the ref is a tag.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref()?.strip_prefix("refs/tags/")
    }

    /// The commit being built.
    pub fn commit_id(&self) -> Option<&str> {
        self.build.info.git.commit_id.as_deref()
    }

    /// The repository's main branch.
    pub fn main_branch(&self) -> &str {
        &self.build.info.git.main_branch
    }

    /// Whether the build is on the main branch.
    pub fn is_main_branch(&self) -> bool {
        self.branch() == Some(self.main_branch())
    }

    /// The files this build's commits changed.
    pub fn changes(&self) -> &Changes {
        &self.build.info.git.changes
    }

    /// Whether any added, modified or removed file matches `pattern`, a glob over paths
    /// relative to the repository root: `*` stays within a directory, `**` spans
    /// directories, `?` is one character and `[abc]` one of a set.
    ///
    /// ```
    /// let ctx = monkeyci_sdk::testing::TestCtx::new().modified(["app/src/main.rs"]).ctx();
    /// assert!(ctx.touched("app/**"));
    /// assert!(ctx.touched("**/*.rs"));
    /// assert!(!ctx.touched("docs/**"));
    /// ```
    pub fn touched(&self, pattern: &str) -> bool {
        self.changes().all().any(|path| glob::matches(pattern, path))
    }

    /// Who triggered the build.
    pub fn source(&self) -> Source {
        self.build.info.source
    }

    /// Where the repository is checked out.
    pub fn checkout_dir(&self) -> &Path {
        &self.build.info.checkout_dir
    }

    /// The directory the current job works in (the checkout, outside a job).
    pub fn work_dir(&self) -> &Path {
        match &self.job {
            Some(job) => &job.work_dir,
            None => self.checkout_dir(),
        }
    }

    /// The id of the job this context belongs to, if any.
    pub fn job_id(&self) -> Option<&str> {
        self.job.as_ref().map(|job| job.id.as_str())
    }

    /// A build parameter. Its value is a [`Secret`]: it cannot be printed or serialized by
    /// accident, and it is masked in job output.
    pub fn param(&self, name: &str) -> Result<Secret, JobError> {
        match self.build.params.get(name) {
            Some(value) => Ok(Secret::new(name, value)),
            None => {
                let known: Vec<&str> = self.build.params.keys().map(String::as_str).collect();
                Err(JobError::msg(if known.is_empty() {
                    format!("build parameter {name:?} is not set (this build has no parameters)")
                } else {
                    format!("build parameter {name:?} is not set; this build has: {}", known.join(", "))
                }))
            }
        }
    }

    /// The output of the `#[job]` `J`, which this job depends on (directly or through others):
    /// `ctx.output::<build>()` has the type `build` returns.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn version(_ctx: &Ctx) -> Result<String> {
    ///     Ok("1.2.3".into())
    /// }
    ///
    /// #[job(depends_on = [version])]
    /// async fn package(ctx: &Ctx) -> Result<String> {
    ///     let version = ctx.output::<version>()?; // a String, as `version` returns
    ///     Ok(format!("app-{version}.tar"))
    /// }
    /// # fn main() {}
    /// ```
    pub fn output<J: JobMarker>(&self) -> Result<J::Output, JobError> {
        let id = J::ID;
        let Some(scope) = &self.job else {
            return Err(JobError::msg(format!(
                "the output of job `{id}` can only be read inside a job that depends on it"
            )));
        };
        if !self.depends_on(&scope.id, id) {
            return Err(JobError::msg(format!(
                "job `{}` reads the output of `{id}` but does not depend on it; add it to `depends_on`",
                scope.id
            )));
        }
        let value = self.build.outputs.lock().get(id).cloned();
        let Some(value) = value else {
            return Err(JobError::msg(format!("job `{id}` has no output (it did not succeed)")));
        };
        <J::Output as serde::Deserialize>::deserialize(value.as_ref())
            .map_err(|err| JobError::with_source(format!("the output of job `{id}` does not match its type"), err))
    }

    /// Whether `job` depends on `dependency`, directly or transitively.
    fn depends_on(&self, job: &str, dependency: &str) -> bool {
        let Some(graph) = self.build.graph.get() else { return false };
        let mut seen = HashSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([job]);
        while let Some(next) = queue.pop_front() {
            for dep in graph.get(next).into_iter().flatten() {
                if dep == dependency {
                    return true;
                }
                if seen.insert(dep.as_str()) {
                    queue.push_back(dep);
                }
            }
        }
        false
    }

    /// Saves files of the work dir as an artifact for later jobs of this build (container
    /// jobs restore it with `.restore_artifact(id)`, action jobs with
    /// [`Ctx::restore_artifact`]).
    ///
    /// ```no_run
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn report(ctx: &Ctx) -> Result<()> {
    ///     std::fs::write(ctx.work_dir().join("report.txt"), "all good")?;
    ///     ctx.save_artifact(artifact("report", "report.txt")).await
    /// }
    /// # fn main() {}
    /// ```
    pub async fn save_artifact(&self, artifact: Artifact) -> Result<(), JobError> {
        self.build.artifacts.save(self.work_dir(), artifact.into_spec()).await
    }

    /// Restores an artifact saved by an earlier job of the build into the work dir, at the
    /// path it was saved from. A missing artifact is an error naming it.
    pub async fn restore_artifact(&self, id: &str) -> Result<(), JobError> {
        if self.build.artifacts.restore(self.work_dir(), id).await? {
            Ok(())
        } else {
            Err(JobError::msg(format!(
                "artifact `{id}` does not exist: no earlier job of this build saved it (does this job depend on the one that does?)"
            )))
        }
    }

    /// The time the build started: the same on every launch of the script (a resumed script
    /// sees the same value), so conditions and `#[pipeline]` functions may branch on it.
    /// Reading the system clock instead can make a resumed script plan differently, which
    /// the runtime refuses.
    pub fn now(&self) -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(self.build.info.started_at_ms)
    }

    /// A pseudo-random number, the same sequence on every launch of the script: seeded by
    /// the build id, the job and how many numbers this context has drawn.
    pub fn random_u64(&self) -> u64 {
        let n = self.draws.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // FNV-1a over the seed, then a splitmix64 finish.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let job = self.job_id().unwrap_or("");
        for byte in self.build_id().bytes().chain([0]).chain(job.bytes()).chain(n.to_le_bytes()) {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }

    /// A random UUID (version 4, as text), the same on every launch of the script: made of
    /// two [`Ctx::random_u64`] draws, so it also counts as two draws.
    ///
    /// ```
    /// let ctx = monkeyci_sdk::testing::TestCtx::new().ctx();
    /// let id = ctx.uuid();
    /// assert_eq!(id.len(), 36);
    /// assert_eq!(&id[14..15], "4");
    /// assert_ne!(id, ctx.uuid());
    /// ```
    pub fn uuid(&self) -> String {
        let (high, low) = (self.random_u64(), self.random_u64());
        // Version 4, variant 10xx, as RFC 9562 lays them out.
        let high = (high & !0xF000) | 0x4000;
        let low = (low & !(0b11 << 62)) | (0b10 << 62);
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            high >> 32,
            (high >> 16) & 0xFFFF,
            high & 0xFFFF,
            low >> 48,
            low & 0xFFFF_FFFF_FFFF
        )
    }

    /// Waits for `duration` without holding a thread (other jobs keep running).
    pub async fn sleep(&self, duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Adds a line to the current job's output (secrets masked).
    pub fn log(&self, line: impl fmt::Display) {
        self.output_line(OutputStream::Stdout, &line.to_string());
    }

    /// Writes `text` to the job's log, a line at a time; returns how many lines it wrote. The
    /// lines a resumed job wrote before the script suspended are counted, not written again.
    fn output_line(&self, stream: OutputStream, text: &str) -> u64 {
        let job_id = self.job_id().unwrap_or("script").to_owned();
        let mut written = 0;
        for line in text.lines() {
            written += 1;
            if let Some(job) = &self.job
                && job.lines.fetch_add(1, Ordering::SeqCst) < job.lines_written_before.load(Ordering::SeqCst)
            {
                continue;
            }
            let line = self.build.masker.mask(line);
            self.emit(EventKind::JobOutput { job_id: job_id.clone(), stream, line });
        }
        written
    }

    /// Runs `command` with `sh -c` in the job's work directory, streaming its output into the
    /// job's log. Fails when the command exits non-zero. Counts against `--max-parallel`.
    ///
    /// Inside a job this is a journaled step, like [`Ctx::run`]: when a suspended script is
    /// resumed and the job runs again, a command that already ran is not run again; its
    /// recorded exit code and output (with secrets masked) are returned.
    ///
    /// ```no_run
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn test(ctx: &Ctx) -> Result<()> {
    ///     ctx.shell("cargo test --locked").await?;
    ///     Ok(())
    /// }
    /// # fn main() {}
    /// ```
    pub fn shell<'a>(
        &'a self,
        command: &'a str,
    ) -> impl std::future::Future<Output = Result<ShellOutput, JobError>> + Send + 'a {
        // The step number is taken now, in call order, like `run`'s.
        let step = self.next_step();
        self.shell_step(command, step)
    }

    async fn shell_step(&self, command: &str, step: Option<StepTaken>) -> Result<ShellOutput, JobError> {
        let masked = self.build.masker.mask(command);
        if let Some(StepTaken { job, n, recorded: Some(recorded), .. }) = &step {
            return match recorded {
                Step::Shell { command: recorded_command, code, stdout, stderr, lines }
                    if *recorded_command == masked =>
                {
                    // Its log lines were written when it ran.
                    if let Some(scope) = &self.job {
                        scope.lines.fetch_add(*lines, Ordering::SeqCst);
                    }
                    shell_outcome(&masked, *code, stdout.clone(), stderr.clone())
                }
                other => Err(step_diverged(job, *n, other, &format!("ctx.shell(`{masked}`)"))),
            };
        }
        let _slot =
            self.build.process_slots.acquire().await.map_err(|_| JobError::msg("the build is shutting down"))?;
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(command)
            .current_dir(self.work_dir())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|err| JobError::with_source(format!("could not start `{masked}`"), err))?;
        let stdout = child.stdout.take().map(|s| self.pump(s, OutputStream::Stdout));
        let stderr = child.stderr.take().map(|s| self.pump(s, OutputStream::Stderr));
        let status = child.wait().await.map_err(|err| JobError::with_source(format!("waiting for `{masked}`"), err))?;
        let (stdout, stdout_lines) = join_pump(stdout).await;
        let (stderr, stderr_lines) = join_pump(stderr).await;
        if let Some(StepTaken { attempt, n, recorded: None, .. }) = step {
            let masker = &self.build.masker;
            let record = JournalRecord::ShellResult {
                attempt,
                command: masked.clone(),
                code: status.code(),
                stdout: masker.mask(&stdout),
                stderr: masker.mask(&stderr),
                lines: stdout_lines + stderr_lines,
            };
            self.journal(StepKey::Step(n), record);
        }
        shell_outcome(&masked, status.code(), stdout, stderr)
    }

    fn pump<R>(&self, reader: R, stream: OutputStream) -> tokio::task::JoinHandle<(String, u64)>
    where
        R: tokio::io::AsyncRead + Unpin + Send + 'static,
    {
        let ctx = self.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            let mut all = String::new();
            let mut written = 0;
            while let Ok(Some(line)) = lines.next_line().await {
                written += ctx.output_line(stream, &line);
                all.push_str(&line);
                all.push('\n');
            }
            (all, written)
        })
    }
}

/// What a pump read, and how many log lines it wrote.
async fn join_pump(handle: Option<tokio::task::JoinHandle<(String, u64)>>) -> (String, u64) {
    match handle {
        Some(handle) => handle.await.unwrap_or_default(),
        None => (String::new(), 0),
    }
}

/// What `ctx.shell` returns for a command that exited with `code` (`None`: killed).
fn shell_outcome(
    masked_command: &str,
    code: Option<i32>,
    stdout: String,
    stderr: String,
) -> Result<ShellOutput, JobError> {
    let how = match code {
        Some(0) => return Ok(ShellOutput { stdout, stderr }),
        Some(code) => format!("exited with code {code}"),
        None => "was killed by a signal".to_owned(),
    };
    Err(JobError::msg(format!("command `{masked_command}` {how}")))
}

/// A journaled step a job takes: its job, attempt and number (from 1), and what an earlier
/// launch recorded for it.
struct StepTaken {
    job: String,
    attempt: u32,
    n: u32,
    recorded: Option<Step>,
}

/// What a command run with [`Ctx::shell`] printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellOutput {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::Arc;

    use super::*;
    use crate::future::BoxFuture;
    use crate::protocol::{ArtifactSpec, ContainerRequest, GitInfo, Source};
    use crate::runner::MemorySink;

    /// A container that still runs when started.
    struct StillRunning;

    impl ContainerRunner for StillRunning {
        fn start<'a>(&'a self, _request: &'a ContainerRequest) -> BoxFuture<'a, Result<Started, JobError>> {
            Box::pin(async { Ok(Started::Running("c1".into())) })
        }

        fn wait<'a>(
            &'a self,
            _request: &'a ContainerRequest,
            id: &'a str,
        ) -> BoxFuture<'a, Result<ContainerResult, JobError>> {
            Box::pin(async move { Err(JobError::msg(format!("waited for {id}"))) })
        }
    }

    struct Nothing;

    impl ArtifactStore for Nothing {
        fn save<'a>(&'a self, _work_dir: &'a Path, _artifact: ArtifactSpec) -> BoxFuture<'a, Result<(), JobError>> {
            Box::pin(async { Ok(()) })
        }

        fn restore<'a>(&'a self, _work_dir: &'a Path, _id: &'a str) -> BoxFuture<'a, Result<bool, JobError>> {
            Box::pin(async { Ok(false) })
        }
    }

    impl Approver for Nothing {
        fn approve<'a>(&'a self, _job_id: &'a str) -> BoxFuture<'a, Result<bool, JobError>> {
            Box::pin(async { Ok(false) })
        }
    }

    #[tokio::test]
    async fn a_container_still_running_when_started_is_waited_for_and_the_wait_ends_with_it() {
        let info = BuildInfo {
            build_id: "b".into(),
            checkout_dir: PathBuf::from("."),
            git: GitInfo::default(),
            source: Source::Cli,
            started_at_ms: 0,
        };
        let seams = Seams {
            events: Arc::new(MemorySink::default()),
            containers: Arc::new(StillRunning),
            approver: Arc::new(Nothing),
            artifacts: Arc::new(Nothing),
        };
        let ctx = Ctx::new(BuildState::new(info, ParamMap::new(), seams, 1)).for_job("job", true);
        let spec = crate::dsl::container::container("img").script(["true"]).into_spec();
        let request = ContainerRequest { job_id: "job".into(), attempt: 1, spec };
        let err = ctx.run_container(request).await.unwrap_err();
        assert_eq!(err.to_string(), "waited for c1");
        assert_eq!(ctx.build.waiting.jobs(), 0, "the guard ends with the wait");
    }
}
