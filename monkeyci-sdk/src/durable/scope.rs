//! [`Scope`]: who acts in a build, the script itself (planning: conditions, `#[pipeline]`
//! functions, container specs) or one job. A job's scope knows its id and work dir, the attempt
//! running and when it started, how many journaled steps it took and log lines it wrote, and
//! whether the script may suspend under it; every scope counts its random draws. A scope that
//! plans a container spec notes whether the spec read an output, which only a job can: the
//! spec is then resolved when the job's dependencies have ended.
//!
//! A [`Ctx`](crate::Ctx) is a handle on a scope. This module keeps those counts and writes the
//! job's log and journal through the [`Build`]; it takes no step itself (`durable::step` does)
//! and never names `Ctx`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use serde::de::DeserializeOwned;

use crate::dsl::error::JobError;
use crate::durable::build::Build;
use crate::durable::suspend::WaitingGuard;
use crate::protocol::{
    ArtifactSpec, ContainerRequest, ContainerResult, EventKind, JournalEntry, JournalRecord, OutputStream, StepKey,
    now_ms,
};
use crate::runner::Started;

/// The script or one job of a build.
pub(crate) struct Scope {
    build: Arc<Build>,
    /// The job, if this is a job's scope.
    job: Option<JobScope>,
    /// Numbers drawn with [`Scope::random_u64`].
    draws: AtomicU64,
    /// Planning a container spec: whether it read an output (known only once the job's
    /// dependencies ended).
    previewing: Option<AtomicBool>,
}

/// What a job's scope knows of its job.
struct JobScope {
    id: String,
    work_dir: PathBuf,
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

/// A journaled step a job takes: its job, attempt and number (from 1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StepNumber {
    pub(crate) job: String,
    pub(crate) attempt: u32,
    pub(crate) n: u32,
}

impl Scope {
    /// The script's own scope: what conditions and `#[pipeline]` functions see.
    pub(crate) fn script(build: Arc<Build>) -> Scope {
        Scope { build, job: None, draws: AtomicU64::new(0), previewing: None }
    }

    /// The scope a container spec is planned in: the script's, where reading an output is
    /// noted ([`Scope::read_outputs`]) and fails.
    pub(crate) fn spec_preview(build: Arc<Build>) -> Scope {
        Scope { previewing: Some(AtomicBool::new(false)), ..Scope::script(build) }
    }

    /// Whether the container spec planned in this scope read an output.
    pub(crate) fn read_outputs(&self) -> bool {
        self.previewing.as_ref().is_some_and(|read| read.load(Ordering::SeqCst))
    }

    /// The scope of job `id`; `suspendable` unless it is an action job declared
    /// `idempotent = false`.
    pub(crate) fn job(build: Arc<Build>, id: &str, suspendable: bool) -> Scope {
        let job = JobScope {
            id: id.to_owned(),
            work_dir: build.info().checkout_dir.clone(),
            suspendable,
            attempt: AtomicU32::new(1),
            started_at_ms: AtomicU64::new(now_ms()),
            steps: AtomicU32::new(0),
            lines: AtomicU64::new(0),
            lines_written_before: AtomicU64::new(0),
        };
        Scope { build, job: Some(job), draws: AtomicU64::new(0), previewing: None }
    }

    /// The build this scope acts in.
    pub(crate) fn build(&self) -> &Arc<Build> {
        &self.build
    }

    /// The id of the job, if this is a job's scope.
    pub(crate) fn job_id(&self) -> Option<&str> {
        self.job.as_ref().map(|job| job.id.as_str())
    }

    /// The directory the job works in (the checkout, outside a job).
    pub(crate) fn work_dir(&self) -> &Path {
        match &self.job {
            Some(job) => &job.work_dir,
            None => &self.build.info().checkout_dir,
        }
    }

    /// Starts `attempt` of the job: its steps and log lines count from zero, and a resumed
    /// attempt holds back the log lines it wrote before the script suspended.
    pub(crate) fn start_attempt(&self, attempt: u32, started_at_ms: u64) {
        let Some(job) = &self.job else { return };
        let written = self.build.lines_written(&job.id, attempt);
        job.attempt.store(attempt, Ordering::SeqCst);
        job.started_at_ms.store(started_at_ms, Ordering::SeqCst);
        job.steps.store(0, Ordering::SeqCst);
        job.lines.store(0, Ordering::SeqCst);
        job.lines_written_before.store(written, Ordering::SeqCst);
    }

    /// How long the job's attempt has run, counting from its start before a suspension (zero
    /// outside a job).
    pub(crate) fn attempt_elapsed(&self) -> Duration {
        let Some(job) = &self.job else { return Duration::ZERO };
        let started = job.started_at_ms.load(Ordering::SeqCst);
        Duration::from_millis(now_ms().saturating_sub(started))
    }

    /// Takes the next journaled step of the job (none outside a job). Called when the step is
    /// called, so concurrent steps keep the order of their calls.
    pub(crate) fn next_step(&self) -> Option<StepNumber> {
        let job = self.job.as_ref()?;
        let n = job.steps.fetch_add(1, Ordering::SeqCst) + 1;
        let attempt = job.attempt.load(Ordering::SeqCst);
        Some(StepNumber { job: job.id.clone(), attempt, n })
    }

    /// Journals `record` at `key` for the job (nothing outside a job).
    pub(crate) fn journal(&self, key: StepKey, record: JournalRecord) {
        if let Some(job) = &self.job {
            self.build.emit(EventKind::JournalRecord { entry: JournalEntry::new(job.id.clone(), key, record) });
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

    /// Counts the job as waiting for a container until the guard is dropped (a job that must
    /// not be re-run is never counted, so the script does not suspend under it).
    pub(crate) fn waiting_for_container(&self) -> WaitingGuard<'_> {
        let job = match &self.job {
            Some(job) if !job.suspendable => None,
            job => Some(job.as_ref().map_or("script", |job| job.id.as_str()).to_owned()),
        };
        self.build.waiting().enter(job)
    }

    /// Runs the container of `request` to its end; while it runs, the job counts as waiting
    /// for it.
    pub(crate) async fn run_container(&self, request: ContainerRequest) -> Result<ContainerResult, JobError> {
        let containers = self.build.containers();
        match containers.start(&request).await? {
            Started::Ended(result) => Ok(result),
            Started::Running(id) => {
                let _waiting = self.waiting_for_container();
                containers.wait(&request, &id).await
            }
        }
    }

    /// Writes `text` to the job's log, a line at a time, secrets masked; returns how many lines
    /// it wrote. The lines a resumed job wrote before the script suspended are counted, not
    /// written again.
    pub(crate) fn output_line(&self, stream: OutputStream, text: &str) -> u64 {
        let job_id = self.job_id().unwrap_or("script").to_owned();
        let mut written = 0;
        for line in text.lines() {
            written += 1;
            if let Some(job) = &self.job
                && job.lines.fetch_add(1, Ordering::SeqCst) < job.lines_written_before.load(Ordering::SeqCst)
            {
                continue;
            }
            let line = self.build.mask(line);
            self.build.emit(EventKind::JobOutput { job_id: job_id.clone(), stream, line });
        }
        written
    }

    /// Sets the job's summary (secrets masked); outside a job, an error.
    pub(crate) fn summary(&self, markdown: &str) -> Result<(), JobError> {
        let Some(job_id) = self.job_id() else {
            return Err(JobError::msg("ctx.summary(..) can only be called inside a job"));
        };
        if markdown.len() > SUMMARY_MAX {
            return Err(JobError::msg(format!(
                "the summary of job {job_id} is {} bytes; a summary may have at most {SUMMARY_MAX}",
                markdown.len()
            )));
        }
        let markdown = self.build.mask(markdown);
        self.build.emit(EventKind::JobSummary { job_id: job_id.to_owned(), markdown });
        Ok(())
    }

    /// Writes a line of MonkeyCI's own to the job's log (secrets masked), live only: it is
    /// not one of the job's counted lines, so a resumed job neither writes it again nor
    /// skips one of its own for it.
    pub(crate) fn note(&self, text: &str) {
        let job_id = self.job_id().unwrap_or("script").to_owned();
        let line = self.build.mask(text);
        self.build.emit(EventKind::JobOutput { job_id, stream: OutputStream::Stderr, line });
    }

    /// Counts `lines` log lines as written: a replayed step's, written when it ran.
    pub(crate) fn count_lines(&self, lines: u64) {
        if let Some(job) = &self.job {
            job.lines.fetch_add(lines, Ordering::SeqCst);
        }
    }

    /// The output of job `id` as a `T`, if the job may read it: it must depend on `id`.
    pub(crate) fn output<T: DeserializeOwned>(&self, id: &str) -> Result<T, JobError> {
        if let Some(read) = &self.previewing {
            read.store(true, Ordering::SeqCst);
            return Err(JobError::msg(format!(
                "the output of job `{id}` is not known when the build is planned: \
                 this container spec is resolved when its dependencies have ended"
            )));
        }
        let Some(job) = &self.job else {
            return Err(JobError::msg(format!(
                "the output of job `{id}` can only be read inside a job that depends on it"
            )));
        };
        if !self.build.depends_on(&job.id, id) {
            return Err(JobError::msg(format!(
                "job `{}` reads the output of `{id}` but does not depend on it; add it to `depends_on`",
                job.id
            )));
        }
        let Some(value) = self.build.output(id) else {
            return Err(JobError::msg(format!("job `{id}` has no output (it did not succeed)")));
        };
        T::deserialize(value.as_ref())
            .map_err(|err| JobError::with_source(format!("the output of job `{id}` does not match its type"), err))
    }

    /// The output of job `id` of the `#[pipeline]` `name` (`key`) as a `T`: `id` must be one
    /// of the jobs it made, and this job must depend on it.
    pub(crate) fn output_of<T: DeserializeOwned>(&self, key: &str, name: &str, id: &str) -> Result<T, JobError> {
        if self.previewing.is_none() {
            let made = self.build.pipeline_jobs(key);
            if !made.iter().any(|made| made == id) {
                let jobs = if made.is_empty() {
                    "it made no job".to_owned()
                } else {
                    format!("its jobs are: {}", made.join(", "))
                };
                return Err(JobError::msg(format!("`{id}` is not a job of #[pipeline] `{name}`; {jobs}")));
            }
        }
        self.output(id)
    }

    /// The outputs of every job of the `#[pipeline]` `name` (`key`) that has one (that
    /// succeeded), as `T`s by id; this job must depend on each.
    pub(crate) fn outputs_of<T: DeserializeOwned>(
        &self,
        key: &str,
        name: &str,
    ) -> Result<BTreeMap<String, T>, JobError> {
        if self.previewing.is_some() {
            return self.output(&format!("#[pipeline] {name}"));
        }
        let mut outputs = BTreeMap::new();
        for id in self.build.pipeline_jobs(key) {
            match self.output(&id) {
                Ok(output) => {
                    outputs.insert(id, output);
                }
                // An allowed failure has no output; any other job of the pipeline this one
                // depends on succeeded, or this job would not run.
                Err(_) if self.build.output(&id).is_none() && self.may_read(&id) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(outputs)
    }

    /// Whether this job depends on `id`.
    fn may_read(&self, id: &str) -> bool {
        self.job.as_ref().is_some_and(|job| self.build.depends_on(&job.id, id))
    }

    /// Saves files of the work dir as an artifact of the build.
    pub(crate) async fn save_artifact(&self, artifact: ArtifactSpec) -> Result<(), JobError> {
        self.build.save_artifact(self.work_dir(), artifact).await
    }

    /// Restores the artifact `id` into the work dir; a missing artifact is an error naming it.
    pub(crate) async fn restore_artifact(&self, id: &str) -> Result<(), JobError> {
        if self.build.restore_artifact(self.work_dir(), id).await? {
            Ok(())
        } else {
            Err(JobError::msg(format!(
                "artifact `{id}` does not exist: no earlier job of this build saved it (does this job depend on the one that does?)"
            )))
        }
    }

    /// The next pseudo-random number of this scope: seeded by the build id, the job and how
    /// many numbers it has drawn, so the same on every launch.
    pub(crate) fn random_u64(&self) -> u64 {
        let n = self.draws.fetch_add(1, Ordering::Relaxed);
        // FNV-1a over the seed, then a splitmix64 finish.
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        let job = self.job_id().unwrap_or("");
        for byte in self.build.info().build_id.bytes().chain([0]).chain(job.bytes()).chain(n.to_le_bytes()) {
            h = (h ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        h = (h ^ (h >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        h = (h ^ (h >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        h ^ (h >> 31)
    }

    /// A version 4 UUID, as text, made of the next two draws.
    pub(crate) fn uuid(&self) -> String {
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
}

/// The largest job summary, in bytes: a summary is a short result, not a log.
pub(crate) const SUMMARY_MAX: usize = 64 * 1024;

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::future::BoxFuture;
    use crate::protocol::{BuildInfo, GitInfo, ParamMap, Source};
    use crate::runner::{Approver, ArtifactStore, ContainerRunner, MemorySink, Seams};

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

    fn build() -> Arc<Build> {
        let info = BuildInfo {
            build_id: "b".into(),
            checkout_dir: PathBuf::from("."),
            git: GitInfo::default(),
            source: Source::Cli,
            started_at_ms: 0,
            vars: Default::default(),
            trigger: None,
        };
        let seams = Seams {
            events: Arc::new(MemorySink::default()),
            containers: Arc::new(StillRunning),
            approver: Arc::new(Nothing),
            artifacts: Arc::new(Nothing),
        };
        Arc::new(Build::new(info, ParamMap::new(), seams, 1))
    }

    #[tokio::test]
    async fn a_container_still_running_when_started_is_waited_for_and_the_wait_ends_with_it() {
        let scope = Scope::job(build(), "job", true);
        let spec = crate::dsl::container::container("img").script(["true"]).into_spec();
        let request = ContainerRequest { job_id: "job".into(), attempt: 1, spec };
        let err = scope.run_container(request).await.unwrap_err();
        assert_eq!(err.to_string(), "waited for c1");
        assert_eq!(scope.build().waiting().jobs(), 0, "the guard ends with the wait");
    }

    #[test]
    fn a_job_that_is_not_idempotent_never_counts_as_only_waiting() {
        let build = build();
        let not_idempotent = Scope::job(Arc::clone(&build), "deploy", false);
        let guard = not_idempotent.waiting_for_container();
        assert_eq!(build.waiting().jobs(), 0);
        drop(guard);
        let ordinary = Scope::job(Arc::clone(&build), "build", true);
        let _guard = ordinary.waiting_for_container();
        assert_eq!(build.waiting().containers_of("build"), 1);
    }
}
