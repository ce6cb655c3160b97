//! Container jobs: the job script protocol, the engines that run it, and the container jobs of
//! one build.
//!
//! The principal type is [`ContainerJobs`], the container jobs of one build: what the build API
//! hands them to. It starts each (job, attempt) once, prepares the job's directory (its own
//! copy of the workspace, the generated job script of [`jobscript`], restored artifacts and
//! caches, then the start file, or the abort file when that fails), runs it with the build's
//! engine, follows the script's event log and the commands' output into the build's event
//! stream, enforces the time limit, saves artifacts and caches, and keeps the result for
//! whoever waits on it.
//!
//! The build's event stream is a bounded channel: a job's output waits for room in it, so a
//! job printing faster than the build takes its lines is slowed to the build's pace (its
//! process blocks on its pipe, its files are followed later) and no line is dropped. Nothing
//! waiting for room holds up a stop: after [`ContainerJobs::shutdown`] a job's events wait
//! one more second at most, then what is left is only in the job's files, and each job's end
//! (`container/end`) has room kept for it from its start.
//!
//! [`ContainerEngine`] is the contract an engine implements: run one prepared job to its end,
//! stopping it (SIGTERM, grace, kill) when told to; nothing a job starts outlives it, and what
//! a `monkeyci` killed with `kill -9` left running is stopped by the next build that starts a
//! container job. Engines: `podman` and `docker` and the
//! host `shell`; [`select`] picks one for an [`EngineChoice`].
//!
//! This crate owns container jobs for the local runner today, and the pieces the agent and
//! the sidecar will share, so the job script protocol has one implementation. It must not
//! compile pipelines, serve HTTP or render anything for people: the build crate and the
//! binary do that, and read what happens from the build's events.
//!
//! A job passes through the modules in one direction: `lib` (the registry) → `supervise`
//! (the order of the steps) → `prepare` → the engine (`engine`, `podman`, `shell`, with
//! `output` forwarding its process's output) → [`follow`] (the job's files as they grow) →
//! `save`. None of them imports one that comes before it.
//!
//! # Writing a sidecar against this crate
//!
//! A sidecar shares only an empty volume with the job container, so it needs the protocol,
//! not [`ContainerJobs`]:
//!
//! 1. Lay out the volume with [`jobscript::JobLayout`] and write the wrapper and one file per
//!    script line with [`JobLayout::write_script`](jobscript::JobLayout::write_script) (the
//!    wrapper's text alone is [`jobscript::wrapper_script`]). The container runs
//!    `/bin/sh <wrapper>` with the variables of [`JobLayout::env`](jobscript::JobLayout::env)
//!    for the layout [`mounted_at`](jobscript::JobLayout::mounted_at) its mount point
//!    ([`jobscript::DEFAULT_MOUNT`]); it waits for the start file.
//! 2. Fill `work/` (e.g. with [`workspace::copy_checkout`], or from the build API), then
//!    [`signal_start`](jobscript::JobLayout::signal_start); on any failure
//!    [`signal_abort`](jobscript::JobLayout::signal_abort) with the reason instead, and the
//!    wrapper ends at once with [`jobscript::EXIT_ABORTED`].
//! 3. Follow the job with [`follow::JobTail`]: [`next`](follow::JobTail::next) (or
//!    [`poll`](follow::JobTail::poll)) returns each [`jobscript::ContainerEvent`] and each line
//!    of the commands' logs as [`follow::Followed`], in order, with the byte offset just past
//!    it in its file: the key for resend-safe uploads. After the `container/script-end`
//!    event, [`finish`](follow::JobTail::finish) returns the last partial lines. A tail that
//!    restarts resumes a file at an offset with [`follow::LineTail::starting_at`].

mod choice;
mod engine;
pub mod follow;
pub mod hostenv;
pub mod jobscript;
mod output;
mod owner;
mod podman;
mod prepare;
mod procs;
mod save;
mod shell;
mod supervise;
pub mod workspace;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use monkeyci_protocol::{ContainerRequest, ContainerResult, ContainerSpec, Event, Masker, ParamMap};
use monkeyci_store::files;
use parking_lot::Mutex;
use tokio::sync::{mpsc, watch};

pub use choice::{EngineChoice, select};
pub use engine::{BoxFuture, ContainerEngine, EngineError, EngineExit, EngineJob, stopped};
pub use output::{ProcessOutput, Pumps};

use prepare::BuildDirs;
use supervise::Build;

/// Why a container request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The job id is not a valid id.
    #[error("invalid job id {0:?}")]
    JobId(String),
    /// The container spec cannot run (e.g. nothing to run, a work dir outside the checkout).
    #[error("job `{job}`: {problem}")]
    Invalid {
        /// The job.
        job: String,
        /// What is wrong with its spec.
        problem: String,
    },
    /// A secret env var names a build parameter that is not set.
    #[error("job `{job}`: the secret env {var} names build parameter {param:?}, which is not set")]
    UnknownSecret {
        /// The job.
        job: String,
        /// The env var.
        var: String,
        /// The parameter it names.
        param: String,
    },
    /// The same job and attempt was asked for with another spec after a resume.
    #[error(
        "job `{job}` attempt {attempt} diverged on resume: its container was started as {before}, and is now \
         asked for as {now}; a resumed pipeline must ask for the same containers (see \"Suspension and resume\" \
         in the sdk's docs)"
    )]
    Diverged {
        /// The job.
        job: String,
        /// Its attempt.
        attempt: u32,
        /// The spec it was started with (its digest).
        before: String,
        /// The spec asked for now (its digest).
        now: String,
    },
}

/// A run's result, once it ended.
type ResultWatch = watch::Receiver<Option<ContainerResult>>;

/// The container jobs of one build.
pub struct ContainerJobs {
    choice: EngineChoice,
    /// Chosen when the first container job arrives, so builds without any say nothing.
    engine: OnceLock<Arc<dyn ContainerEngine>>,
    build: Arc<Build>,
    /// Every run started, by id: its spec (a request for the same id must match it) and its
    /// result once it ended.
    runs: Mutex<HashMap<String, (ContainerSpec, ResultWatch)>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl ContainerJobs {
    /// The container jobs of build `build_id`: each gets a copy of `checkout_dir` in its own
    /// directory under `jobs_dir`, restores and saves artifacts and caches through `files`,
    /// takes its secret values from `params` (which every output line is masked against), and
    /// reports to `events`. The engine is chosen (by `choice`) when the first job starts.
    pub fn new(
        choice: EngineChoice,
        build_id: String,
        checkout_dir: PathBuf,
        jobs_dir: PathBuf,
        files: files::JobFiles,
        params: ParamMap,
        events: mpsc::Sender<Event>,
    ) -> ContainerJobs {
        let masker = Arc::new(Masker::new(params.values().map(String::as_str)));
        ContainerJobs {
            choice,
            engine: OnceLock::new(),
            build: Arc::new(Build {
                dirs: BuildDirs { build_id, checkout_dir, jobs_dir, files },
                params,
                masker,
                events,
                give_up_at: watch::Sender::new(None),
                finished: watch::Sender::new(0),
            }),
            runs: Mutex::new(HashMap::new()),
            stop: watch::Sender::new(false),
            tasks: Mutex::new(Vec::new()),
        }
    }

    /// Starts the job (once per job and attempt) and returns the id to wait on.
    pub fn start(&self, request: ContainerRequest) -> Result<String, RequestError> {
        let job = &request.job_id;
        if monkeyci_protocol::id::check(job).is_err() {
            return Err(RequestError::JobId(job.clone()));
        }
        let id = format!("{job}-{}", request.attempt);
        let mut runs = self.runs.lock();
        if let Some((spec, _)) = runs.get(&id) {
            if *spec != request.spec {
                return Err(RequestError::Diverged {
                    job: job.clone(),
                    attempt: request.attempt,
                    before: format!("`{}`", spec.digest()),
                    now: format!("`{}`", request.spec.digest()),
                });
            }
            return Ok(id);
        }
        let secrets = self.check(&request)?;
        let (done_tx, done_rx) = watch::channel(None);
        runs.insert(id.clone(), (request.spec.clone(), done_rx));
        let engine = Arc::clone(self.engine.get_or_init(|| select(self.choice)));
        let task = tokio::spawn(supervise::run_job(
            engine,
            Arc::clone(&self.build),
            id.clone(),
            request,
            secrets,
            self.stop.subscribe(),
            done_tx,
        ));
        self.tasks.lock().push(task);
        Ok(id)
    }

    /// Checks a request before anything runs; returns the secret values.
    fn check(&self, request: &ContainerRequest) -> Result<BTreeMap<String, String>, RequestError> {
        let job = request.job_id.clone();
        let spec = &request.spec;
        if let Some(problem) = spec.problem() {
            return Err(RequestError::Invalid { job, problem });
        }
        let mut secrets = BTreeMap::new();
        for (var, param) in &spec.secret_env {
            if !jobscript::is_var_name(var) {
                let problem = format!("secret env name {var:?} is not a valid variable name");
                return Err(RequestError::Invalid { job, problem });
            }
            let value = self.build.params.get(param).ok_or_else(|| RequestError::UnknownSecret {
                job: job.clone(),
                var: var.clone(),
                param: param.clone(),
            })?;
            secrets.insert(var.clone(), value.clone());
        }
        Ok(secrets)
    }

    /// The result of run `id`, waiting up to `wait` for it; `None` if there is no such run.
    pub async fn wait(&self, id: &str, wait: Duration) -> Option<Option<ContainerResult>> {
        let mut rx = self.runs.lock().get(id)?.1.clone();
        let _ = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        let result = rx.borrow().clone();
        Some(result)
    }

    /// Waits until fewer than `waiting` runs are still going: one that a suspended script
    /// waits for has ended (no run starts while the script is away).
    pub async fn wait_until_fewer_running(&self, waiting: usize) {
        let started = || self.runs.lock().len();
        let mut finished = self.build.finished.subscribe();
        let _ = finished.wait_for(|finished| started().saturating_sub(*finished) < waiting).await;
    }

    /// Stops every running job and waits until they are gone: the build is canceled. Their
    /// events still wait for room in the stream for a second (`CANCEL_PATIENCE`), then are cut
    /// (see the module docs), so this ends though nobody reads them.
    pub async fn shutdown(&self) {
        let give_up_at = tokio::time::Instant::now() + output::CANCEL_PATIENCE;
        self.build.give_up_at.send_if_modified(|at| {
            let first = at.is_none();
            at.get_or_insert(give_up_at);
            first
        });
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock());
        for task in tasks {
            let _ = task.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use monkeyci_protocol::{ContainerRequest, ContainerSpec, EventKind, JobStatus};
    use tokio::sync::mpsc;

    use super::*;
    use monkeyci_store::{BlobStore, LocalBlobStore};

    fn jobs(dir: &Path, params: ParamMap) -> (ContainerJobs, mpsc::Receiver<Event>) {
        let checkout = dir.join("checkout");
        std::fs::create_dir_all(checkout.join("sub")).unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.join("blobs")).unwrap());
        let files = files::JobFiles::new(store, "b1", &checkout);
        let (tx, rx) = mpsc::channel(1024);
        let jobs = ContainerJobs::new(EngineChoice::Shell, "b1".into(), checkout, dir.join("jobs"), files, params, tx);
        (jobs, rx)
    }

    fn request(job: &str, script: &[&str]) -> ContainerRequest {
        let spec = ContainerSpec {
            image: "ignored".into(),
            script: script.iter().map(|s| s.to_string()).collect(),
            size: 1,
            ..ContainerSpec::default()
        };
        ContainerRequest { job_id: job.into(), attempt: 1, spec }
    }

    #[tokio::test]
    async fn the_same_job_and_attempt_runs_once() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, mut events) = jobs(dir.path(), ParamMap::new());
        let marker = dir.path().join("runs");
        let line = format!("echo run >> {}", marker.display());
        let first = jobs.start(request("once", &[&line])).unwrap();
        let second = jobs.start(request("once", &[&line])).unwrap();
        assert_eq!(first, second);
        let result = jobs.wait(&first, Duration::from_secs(30)).await.unwrap().unwrap();
        assert_eq!(result.status, JobStatus::Success);
        jobs.shutdown().await;
        assert_eq!(std::fs::read_to_string(&marker).unwrap(), "run\n");
        let mut starts = 0;
        while let Ok(event) = events.try_recv() {
            starts += usize::from(matches!(event.kind, EventKind::ContainerStart { .. }));
        }
        assert_eq!(starts, 1);
        // The same job and attempt asked for another container is refused, naming both.
        let err = jobs.start(request("once", &["echo other"])).unwrap_err().to_string();
        assert!(err.contains("diverged on resume") && err.contains(&line) && err.contains("echo other"), "{err}");
        // Another attempt is another run.
        let third = jobs.start(ContainerRequest { attempt: 2, ..request("once", &[&line]) }).unwrap();
        assert_ne!(third, first);
        assert!(jobs.wait("nope", Duration::ZERO).await.is_none());
    }

    /// A job whose preparation fails after its wrapper started (here: its work dir is not in the
    /// checkout) gets the abort file: the wrapper, waiting for the start file, gives up at once
    /// (well within the grace after which it would be stopped), and the job fails naming why.
    #[tokio::test]
    async fn a_job_whose_preparation_fails_is_aborted_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, mut events) = jobs(dir.path(), ParamMap::new());
        let mut lost = request("lost", &["echo ran > ran"]);
        lost.spec.work_dir = Some("no/such/dir".into());
        let began = std::time::Instant::now();
        let id = jobs.start(lost).unwrap();
        let result = jobs.wait(&id, Duration::from_secs(30)).await.unwrap().unwrap();
        let took = began.elapsed();
        jobs.shutdown().await;
        let reason = "work_dir \"no/such/dir\" is not a directory of the checkout";
        assert_eq!((result.status, result.exit, result.message.as_deref()), (JobStatus::Failure, None, Some(reason)));
        assert!(took < Duration::from_secs(3), "took {took:?}");
        let root = dir.path().join("jobs").join(&id);
        assert_eq!(std::fs::read_to_string(root.join("abort")).unwrap(), format!("{reason}\n"));
        // The wrapper ended itself on the abort file, before running anything.
        assert_eq!(
            std::fs::read_to_string(root.join("events.jsonl")).unwrap(),
            "{\"type\":\"container/script-end\",\"status\":\"aborted\",\"exit\":125}\n"
        );
        assert!(!root.join("work/ran").exists());
        while let Ok(event) = events.try_recv() {
            let ran = matches!(event.kind, EventKind::ContainerStart { .. } | EventKind::CommandStart { .. });
            assert!(!ran, "nothing may run: {event:?}");
        }
    }

    #[tokio::test]
    async fn bad_requests_are_refused_before_anything_runs() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, _events) = jobs(dir.path(), ParamMap::new());
        let mut escape = request("j", &["true"]);
        escape.spec.work_dir = Some("../outside".into());
        assert!(jobs.start(escape).unwrap_err().to_string().contains("work_dir \"../outside\""));
        let mut absolute = request("j", &["true"]);
        absolute.spec.work_dir = Some("/etc".into());
        assert!(jobs.start(absolute).unwrap_err().to_string().contains("work_dir \"/etc\""));
        let mut secret = request("j", &["true"]);
        secret.spec.secret_env = BTreeMap::from([("TOKEN".to_owned(), "MISSING".to_owned())]);
        let err = jobs.start(secret).unwrap_err();
        assert_eq!(
            err.to_string(),
            "job `j`: the secret env TOKEN names build parameter \"MISSING\", which is not set"
        );
        assert!(matches!(jobs.start(request("a/b", &["true"])), Err(RequestError::JobId(_))));
        assert!(jobs.start(request("j", &[])).unwrap_err().to_string().contains("nothing to run"));
        assert!(!dir.path().join("jobs").exists(), "nothing may run for a refused request");
    }
}
