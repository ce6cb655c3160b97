//! Container jobs: the job script protocol, the engines that run it, and the container jobs of
//! one build.
//!
//! [`ContainerJobs`] is what the build API hands container jobs to: it starts each (job,
//! attempt) once, prepares the job's directory (its own copy of the workspace, the generated
//! job script of [`jobscript`], the start file), runs it with the build's engine, follows the
//! script's event log and the commands' output into the build's event stream, enforces the
//! time limit, and keeps the result for whoever waits on it.
//!
//! [`ContainerEngine`] is the contract an engine implements: run one prepared job to its end,
//! stopping it (SIGTERM, grace, kill) when told to. Engines: `podman` and `docker`
//! ([`podman::CliEngine`]) and the host `shell`. [`select`] picks one.

pub mod jobscript;
mod podman;
mod shell;
pub mod workspace;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use monkeyci_protocol::Masker;
use monkeyci_protocol::{
    ContainerRequest, ContainerResult, ContainerSpec, Event, EventKind, JobStatus, OutputStream, ParamMap,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::{mpsc, watch};

use jobscript::{ContainerEvent, EventTail, JobLayout};
use monkeyci_protocol::error_chain as chain;
use monkeyci_store::files;

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Which engine runs container jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// podman if installed, else docker, else the host shell.
    Auto,
    /// The podman CLI.
    Podman,
    /// The docker CLI.
    Docker,
    /// `/bin/sh` on this machine; images are ignored.
    Shell,
}

impl EngineChoice {
    /// Every choice with its name on the command line, in the order `--help` lists them.
    pub const ALL: [(&'static str, EngineChoice); 4] = [
        ("auto", EngineChoice::Auto),
        ("podman", EngineChoice::Podman),
        ("docker", EngineChoice::Docker),
        ("shell", EngineChoice::Shell),
    ];
}

impl std::str::FromStr for EngineChoice {
    type Err = String;

    fn from_str(name: &str) -> Result<EngineChoice, String> {
        EngineChoice::ALL.iter().find(|(n, _)| *n == name).map(|(_, choice)| *choice).ok_or_else(|| {
            let names: Vec<&str> = EngineChoice::ALL.iter().map(|(n, _)| *n).collect();
            format!("unknown engine {name:?}; expected one of: {}", names.join(", "))
        })
    }
}

/// The engine for `choice`; `auto` announces on stderr when it falls back to the host shell.
pub fn select(choice: EngineChoice) -> Arc<dyn ContainerEngine> {
    let found = |program| which::which(program).is_ok();
    match choice {
        EngineChoice::Podman => Arc::new(podman::CliEngine::podman()),
        EngineChoice::Docker => Arc::new(podman::CliEngine::docker()),
        EngineChoice::Shell => Arc::new(shell::ShellEngine),
        EngineChoice::Auto if found("podman") => Arc::new(podman::CliEngine::podman()),
        EngineChoice::Auto if found("docker") => Arc::new(podman::CliEngine::docker()),
        EngineChoice::Auto => {
            eprintln!(
                "note: neither podman nor docker is installed: container jobs run on this machine with /bin/sh, \
                 and their images are ignored (choose with --engine)"
            );
            Arc::new(shell::ShellEngine)
        }
    }
}

/// One prepared job attempt, as an engine sees it.
#[derive(Debug, Clone)]
pub struct EngineJob {
    /// Unique per build, job and attempt (the container name).
    pub name: String,
    pub image: String,
    /// The job's directory on the host (the volume shared with the container).
    pub root: PathBuf,
    /// The wrapper's path relative to `root`.
    pub wrapper_in_root: String,
    /// The wrapper's path on the host.
    pub wrapper_on_host: PathBuf,
    /// The working directory, on the host and in the container.
    pub work_dir_on_host: PathBuf,
    pub work_dir_in_container: String,
    /// The job's plain environment.
    pub env: BTreeMap<String, String>,
    /// Secret environment variables, values resolved from the build params.
    pub secret_env: BTreeMap<String, String>,
    /// What the wrapper needs to find its files, for each side.
    pub protocol_env_on_host: Vec<(String, String)>,
    pub protocol_env_in_container: Vec<(String, String)>,
    /// The image's own command instead of the wrapper (empty: the wrapper).
    pub command: Vec<String>,
    pub cpus: u32,
    pub memory_gib: u32,
    pub network: bool,
}

/// How an engine's process ended.
#[derive(Debug, Clone)]
pub struct EngineExit {
    /// Its exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    /// What the engine (or the command, for `.command` jobs) printed on stderr, last part.
    pub stderr: String,
}

/// Why an engine could not run a job at all.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot start `{program}`")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("lost track of the container process")]
    Wait(#[source] std::io::Error),
}

/// Runs prepared jobs. `run` returns when the job's process is gone; when `stop` turns true
/// the engine stops it (SIGTERM, a grace period, then kill) and still returns its exit.
pub trait ContainerEngine: Send + Sync {
    fn name(&self) -> &'static str;

    fn run<'a>(
        &'a self,
        job: &'a EngineJob,
        output: ProcessOutput,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<EngineExit, EngineError>>;

    /// Removes whatever the job left behind in the engine.
    fn cleanup<'a>(&'a self, _job: &'a EngineJob) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut watch::Receiver<bool>) {
    // The guard `wait_for` returns is dropped here, so callers' futures stay `Send`.
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Why a container request is refused.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("invalid job id {0:?}")]
    JobId(String),
    #[error("job `{job}`: {problem}")]
    Invalid { job: String, problem: String },
    #[error("job `{job}`: the secret env {var} names build parameter {param:?}, which is not set")]
    UnknownSecret { job: String, var: String, param: String },
    #[error(
        "job `{job}` attempt {attempt} diverged on resume: its container was started as {before}, and is now \
         asked for as {now}; a resumed pipeline must ask for the same containers (see \"Suspension and resume\" \
         in the sdk's docs)"
    )]
    Diverged { job: String, attempt: u32, before: String, now: String },
}

/// What every container job of the build shares.
struct BuildSide {
    build_id: String,
    /// How many runs ended so far.
    finished: watch::Sender<usize>,
    files: files::JobFiles,
    checkout_dir: PathBuf,
    jobs_dir: PathBuf,
    params: ParamMap,
    masker: Masker,
    events: mpsc::UnboundedSender<Event>,
}

/// A run's result, once it ended.
type ResultWatch = watch::Receiver<Option<ContainerResult>>;

/// The container jobs of one build.
pub struct ContainerJobs {
    choice: EngineChoice,
    /// Chosen when the first container job arrives, so builds without any say nothing.
    engine: std::sync::OnceLock<Arc<dyn ContainerEngine>>,
    build: Arc<BuildSide>,
    /// Every run started, by id: its spec (a request for the same id must match it) and its
    /// result once it ended.
    runs: Mutex<HashMap<String, (ContainerSpec, ResultWatch)>>,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl ContainerJobs {
    pub fn new(
        choice: EngineChoice,
        build_id: String,
        checkout_dir: PathBuf,
        jobs_dir: PathBuf,
        files: files::JobFiles,
        params: ParamMap,
        events: mpsc::UnboundedSender<Event>,
    ) -> ContainerJobs {
        let masker = Masker::new(params.values().map(String::as_str));
        ContainerJobs {
            choice,
            engine: std::sync::OnceLock::new(),
            build: Arc::new(BuildSide {
                build_id,
                finished: watch::Sender::new(0),
                files,
                checkout_dir,
                jobs_dir,
                params,
                masker,
                events,
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
        let mut runs = self.runs.lock().unwrap_or_else(|e| e.into_inner());
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
        let prepared = self.check(&request)?;
        let (done_tx, done_rx) = watch::channel(None);
        runs.insert(id.clone(), (request.spec.clone(), done_rx));
        let engine = Arc::clone(self.engine.get_or_init(|| select(self.choice)));
        let task = tokio::spawn(run_job(
            engine,
            Arc::clone(&self.build),
            id.clone(),
            request,
            prepared,
            self.stop.subscribe(),
            done_tx,
        ));
        self.tasks.lock().unwrap_or_else(|e| e.into_inner()).push(task);
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
        let mut rx = self.runs.lock().unwrap_or_else(|e| e.into_inner()).get(id)?.1.clone();
        let _ = tokio::time::timeout(wait, rx.wait_for(Option::is_some)).await;
        let result = rx.borrow().clone();
        Some(result)
    }

    /// Waits until fewer than `waiting` runs are still going: one that a suspended script
    /// waits for has ended (no run starts while the script is away).
    pub async fn wait_until_fewer_running(&self, waiting: usize) {
        let started = || self.runs.lock().unwrap_or_else(|e| e.into_inner()).len();
        let mut finished = self.build.finished.subscribe();
        let _ = finished.wait_for(|finished| started().saturating_sub(*finished) < waiting).await;
    }

    /// Stops every running job and waits until they are gone.
    pub async fn shutdown(&self) {
        self.stop.send_replace(true);
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            let _ = task.await;
        }
    }
}

/// Forwards a process's stdout and stderr lines into the build's events as the job's output,
/// and keeps the end of stderr for error messages.
pub struct ProcessOutput {
    job_id: String,
    build: Arc<BuildSide>,
}

/// The tasks reading a process's output.
pub struct Pumps {
    stdout: Option<tokio::task::JoinHandle<String>>,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

/// How much of a process's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

impl ProcessOutput {
    pub fn pump(&self, child: &mut tokio::process::Child) -> Pumps {
        Pumps {
            stdout: child.stdout.take().map(|out| self.forward(out, OutputStream::Stdout)),
            stderr: child.stderr.take().map(|err| self.forward(err, OutputStream::Stderr)),
        }
    }

    fn forward(
        &self,
        reader: impl AsyncRead + Unpin + Send + 'static,
        stream: OutputStream,
    ) -> tokio::task::JoinHandle<String> {
        let job_id = self.job_id.clone();
        let build = Arc::clone(&self.build);
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            let mut kept = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = build.masker.mask(&line);
                kept.push_str(&line);
                kept.push('\n');
                if kept.len() > STDERR_TAIL {
                    let cut = kept.len() - STDERR_TAIL;
                    let cut = (cut..kept.len()).find(|&i| kept.is_char_boundary(i)).unwrap_or(kept.len());
                    kept.drain(..cut);
                }
                build.emit(EventKind::JobOutput { job_id: job_id.clone(), stream, line });
            }
            kept
        })
    }
}

impl Pumps {
    /// Waits until both streams are read to their end; returns the end of stderr.
    pub async fn finish(self) -> String {
        if let Some(out) = self.stdout {
            let _ = out.await;
        }
        match self.stderr {
            Some(err) => err.await.unwrap_or_default(),
            None => String::new(),
        }
    }
}

impl BuildSide {
    fn emit(&self, kind: EventKind) {
        let _ = self.events.send(Event::now(kind));
    }
}

/// Runs one container job attempt to its end and publishes the result.
async fn run_job(
    engine: Arc<dyn ContainerEngine>,
    build: Arc<BuildSide>,
    id: String,
    request: ContainerRequest,
    secrets: BTreeMap<String, String>,
    stop: watch::Receiver<bool>,
    done: watch::Sender<Option<ContainerResult>>,
) {
    let job_id = request.job_id.clone();
    let result = match prepare(&engine, &build, &id, &request, secrets).await {
        Ok((job, layout)) => {
            let mut result = execute(&engine, &build, &job, &layout, &request, stop).await;
            engine.cleanup(&job).await;
            mask_logs(&build, &layout).await;
            if let Err(message) = save_files(&build, &request, &layout, &result).await {
                result = ContainerResult { status: JobStatus::Failure, exit: result.exit, message: Some(message) };
            }
            result
        }
        Err(message) => ContainerResult { status: JobStatus::Failure, exit: None, message: Some(message) },
    };
    build.emit(EventKind::ContainerEnd {
        job_id,
        status: result.status,
        exit: result.exit,
        message: result.message.clone(),
    });
    done.send_replace(Some(result));
    build.finished.send_modify(|count| *count += 1);
}

/// Creates the job's directory: workspace copy, job script, start file.
async fn prepare(
    engine: &Arc<dyn ContainerEngine>,
    build: &Arc<BuildSide>,
    id: &str,
    request: &ContainerRequest,
    secrets: BTreeMap<String, String>,
) -> Result<(EngineJob, JobLayout), String> {
    let spec: &ContainerSpec = &request.spec;
    let root = build.jobs_dir.join(id);
    let layout = JobLayout::new(root.clone());
    let checkout = build.checkout_dir.clone();
    let with_git = spec.with_git;
    let work = layout.work_root();
    let script = spec.script.clone();
    let prepared_layout = layout.clone();
    let files = build.files.clone();
    let restores = spec.restore_artifacts.clone();
    let caches = spec.caches.clone();
    let notes = tokio::task::spawn_blocking(move || -> Result<Vec<(OutputStream, String)>, String> {
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| format!("cannot clear {}: {e}", root.display()))?;
        }
        workspace::copy_checkout(&checkout, &work, with_git)
            .map_err(|e| format!("cannot copy the workspace: {}", chain(&e)))?;
        prepared_layout.write_script(&script).map_err(|e| format!("cannot write the job script: {}", chain(&e)))?;
        let mut notes = Vec::new();
        for restore in &restores {
            match files.restore_artifact(restore, &work) {
                Ok(true) => notes.push((OutputStream::Stdout, format!("restored artifact `{}`", restore.id))),
                Ok(false) => {
                    notes.push((OutputStream::Stdout, format!("artifact `{}` does not exist (optional)", restore.id)))
                }
                Err(err) => return Err(format!("cannot restore artifact `{}`: {}", restore.id, chain(&err))),
            }
        }
        for cache in &caches {
            match files.restore_cache(cache, &work) {
                Ok(Some(key)) => notes.push((OutputStream::Stdout, format!("restored cache `{}` ({key})", cache.id))),
                Ok(None) => {
                    notes.push((OutputStream::Stdout, format!("cache `{}` is empty: nothing saved yet", cache.id)))
                }
                Err(err) => notes.push((
                    OutputStream::Stderr,
                    format!("warning: cache `{}` not restored: {}", cache.id, chain(&err)),
                )),
            }
        }
        Ok(notes)
    })
    .await
    .map_err(|e| format!("preparing the job failed: {e}"))??;
    for (stream, line) in notes {
        build.emit(EventKind::JobOutput { job_id: request.job_id.clone(), stream, line });
    }

    let work_sub = spec.work_dir.as_deref().map(Path::new);
    let work_dir_on_host = layout.work_dir(work_sub).map_err(|e| chain(&e))?;
    if !work_dir_on_host.is_dir() {
        return Err(format!(
            "work_dir {:?} is not a directory of the checkout",
            spec.work_dir.as_deref().unwrap_or_default()
        ));
    }
    let in_container = layout.mounted_at(podman::MOUNT);
    let env_of = |layout: &JobLayout| -> Result<Vec<(String, String)>, String> {
        let vars = layout.env(work_sub).map_err(|e| chain(&e))?;
        Ok(vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_string_lossy().into_owned())).collect())
    };
    let wrapper_in_root =
        layout.wrapper().strip_prefix(layout.root()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let job = EngineJob {
        name: container_name(&build.build_id, id),
        image: spec.image.clone(),
        root: layout.root().to_owned(),
        wrapper_in_root,
        wrapper_on_host: layout.wrapper(),
        work_dir_on_host: work_dir_on_host.clone(),
        work_dir_in_container: in_container.work_dir(work_sub).map_err(|e| chain(&e))?.to_string_lossy().into_owned(),
        env: spec.env.clone(),
        secret_env: secrets,
        protocol_env_on_host: env_of(&layout)?,
        protocol_env_in_container: env_of(&in_container)?,
        command: spec.command.clone(),
        cpus: spec.size.max(1),
        memory_gib: spec.size.max(1) * 2,
        network: spec.network,
    };
    let _ = engine;
    layout.signal_start().map_err(|e| format!("cannot create the start file: {}", chain(&e)))?;
    Ok((job, layout))
}

/// Masks secrets in the job's per-command log files, which the build record keeps: the raw
/// output never outlives the job with a secret in it.
async fn mask_logs(build: &Arc<BuildSide>, layout: &JobLayout) {
    if build.masker.is_empty() {
        return;
    }
    let build = Arc::clone(build);
    let logs = layout.logs_dir();
    let _ = tokio::task::spawn_blocking(move || {
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let path = entry.path();
            if let Ok(bytes) = std::fs::read(&path) {
                let text = String::from_utf8_lossy(&bytes);
                let masked = build.masker.mask(&text);
                if masked != text {
                    let _ = std::fs::write(&path, masked);
                }
            }
        }
    })
    .await;
}

/// Saves the job's artifacts (whenever its script ran, so a failed job's reports are kept;
/// an artifact that cannot be saved fails a job that succeeded) and, after a success, its
/// caches (problems are warnings).
async fn save_files(
    build: &Arc<BuildSide>,
    request: &ContainerRequest,
    layout: &JobLayout,
    result: &ContainerResult,
) -> Result<(), String> {
    let spec = &request.spec;
    let ran = matches!(result.status, JobStatus::Success | JobStatus::Failure) && result.exit.is_some();
    if !ran || (spec.save_artifacts.is_empty() && spec.caches.is_empty()) {
        return Ok(());
    }
    let succeeded = result.status == JobStatus::Success;
    let files = build.files.clone();
    let artifacts = spec.save_artifacts.clone();
    let caches = if succeeded { spec.caches.clone() } else { Vec::new() };
    let work = layout.work_root();
    let scratch = layout.root().join("tmp");
    let (notes, failure) = tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        let mut failure = None;
        for artifact in &artifacts {
            match files.save_artifact(artifact, &work, &scratch) {
                Ok(count) => {
                    notes.push((OutputStream::Stdout, format!("saved artifact `{}` ({count} files)", artifact.id)))
                }
                Err(err) => {
                    let message = format!("cannot save artifact `{}`: {}", artifact.id, chain(&err));
                    notes.push((OutputStream::Stderr, message.clone()));
                    failure.get_or_insert(message);
                }
            }
        }
        for cache in &caches {
            match files.save_cache(cache, &work, &scratch) {
                Ok(count) => notes.push((OutputStream::Stdout, format!("saved cache `{}` ({count} files)", cache.id))),
                Err(err) => notes
                    .push((OutputStream::Stderr, format!("warning: cache `{}` not saved: {}", cache.id, chain(&err)))),
            }
        }
        (notes, failure)
    })
    .await
    .map_err(|e| format!("saving the job's files failed: {e}"))?;
    for (stream, line) in notes {
        build.emit(EventKind::JobOutput { job_id: request.job_id.clone(), stream, line });
    }
    match failure {
        Some(message) if succeeded => Err(message),
        _ => Ok(()),
    }
}

/// Container names: `monkeyci-<build>-<job>-<attempt>`, in the alphabet engines accept.
fn container_name(build_id: &str, id: &str) -> String {
    monkeyci_protocol::id::sanitize(&format!("monkeyci-{build_id}-{id}"))
}

/// Runs the prepared job with the engine, following its events and output, within its time
/// limit.
async fn execute(
    engine: &Arc<dyn ContainerEngine>,
    build: &Arc<BuildSide>,
    job: &EngineJob,
    layout: &JobLayout,
    request: &ContainerRequest,
    mut build_stop: watch::Receiver<bool>,
) -> ContainerResult {
    let job_id = request.job_id.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let output = ProcessOutput { job_id: job_id.clone(), build: Arc::clone(build) };
    let command_mode = !job.command.is_empty();
    if command_mode {
        build.emit(EventKind::ContainerStart {
            job_id: job_id.clone(),
            image: job.image.clone(),
            engine: engine.name().into(),
        });
    }
    let mut follower = Follower::new(
        Arc::clone(build),
        job_id.clone(),
        layout.clone(),
        request.spec.script.clone(),
        engine.name(),
        &job.image,
    );
    let mut tail = EventTail::new(layout.events());
    let run = engine.run(job, output, stop_rx);
    tokio::pin!(run);
    let deadline = request.spec.timeout_ms.map(Duration::from_millis);
    let sleep = tokio::time::sleep(deadline.unwrap_or(Duration::from_secs(u64::MAX / 4)));
    tokio::pin!(sleep);
    let mut stopped: Option<JobStatus> = None;
    let mut poll = tokio::time::interval(Duration::from_millis(50));
    let exit = loop {
        tokio::select! {
            exit = &mut run => break exit,
            _ = &mut sleep, if stopped.is_none() && deadline.is_some() => {
                stopped = Some(JobStatus::Timeout);
                stop_tx.send_replace(true);
            }
            _ = self::stopped(&mut build_stop), if stopped.is_none() => {
                stopped = Some(JobStatus::Canceled);
                stop_tx.send_replace(true);
            }
            _ = poll.tick() => {
                if let Err(message) = follower.drain(&mut tail).await {
                    build.emit(EventKind::JobOutput { job_id: job_id.clone(), stream: OutputStream::Stderr, line: message });
                }
            }
        }
    };
    if let Err(message) = follower.drain(&mut tail).await {
        build.emit(EventKind::JobOutput { job_id: job_id.clone(), stream: OutputStream::Stderr, line: message });
    }
    follower.finish().await;

    let exit = match exit {
        Ok(exit) => exit,
        Err(err) => {
            return ContainerResult {
                status: JobStatus::Failure,
                exit: None,
                message: Some(format!("{}: {}", engine.name(), chain(&err))),
            };
        }
    };
    match stopped {
        Some(JobStatus::Timeout) => {
            let limit = deadline.unwrap_or_default();
            return ContainerResult {
                status: JobStatus::Timeout,
                exit: exit.code,
                message: Some(format!("timed out after {}", monkeyci_protocol::duration::short(limit))),
            };
        }
        Some(status) => {
            return ContainerResult {
                status,
                exit: exit.code,
                message: Some("canceled: the build was canceled".into()),
            };
        }
        None => {}
    }
    if command_mode {
        return match exit.code {
            Some(0) => ContainerResult { status: JobStatus::Success, exit: Some(0), message: None },
            code => ContainerResult {
                status: JobStatus::Failure,
                exit: code,
                message: Some(exit_message("the command", code)),
            },
        };
    }
    match follower.script_end {
        Some(0) => ContainerResult { status: JobStatus::Success, exit: Some(0), message: None },
        Some(code) => {
            let message = match follower.last_failed {
                Some(i) => {
                    let line = request.spec.script.get(i).map(|l| build.masker.mask(l)).unwrap_or_default();
                    format!("command {i} (`{line}`) exited with code {code}")
                }
                None => format!("the job script ended with code {code}"),
            };
            ContainerResult { status: JobStatus::Failure, exit: Some(code), message: Some(message) }
        }
        None => {
            let stderr = build.masker.mask(exit.stderr.trim());
            let message = if !follower.started && mentions_missing_shell(&stderr) {
                format!(
                    "image `{}` has no /bin/sh, which script lines need; give the job `.command([...])` to run the \
                     image's own command instead ({}: {})",
                    job.image,
                    engine.name(),
                    last_line(&stderr)
                )
            } else if !follower.started {
                format!(
                    "{} could not start the container: {}",
                    engine.name(),
                    if stderr.is_empty() { exit_message("it", exit.code) } else { last_line(&stderr).to_owned() }
                )
            } else {
                format!("the container ended before its script did ({})", exit_message("it", exit.code))
            };
            ContainerResult { status: JobStatus::Failure, exit: exit.code, message: Some(message) }
        }
    }
}

fn exit_message(what: &str, code: Option<i32>) -> String {
    match code {
        Some(code) => format!("{what} exited with code {code}"),
        None => format!("{what} was killed by a signal"),
    }
}

/// Whether an engine's error says the image has no `/bin/sh` (runc names it; behind
/// `--init`, catatonit only says it could not exec its child).
fn mentions_missing_shell(stderr: &str) -> bool {
    let missing = stderr.contains("no such file") || stderr.contains("not found") || stderr.contains("No such file");
    (stderr.contains("/bin/sh") && missing) || stderr.contains("failed to exec pid1")
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(text)
}

/// Turns the job script's events into build events, and follows each command's log files
/// while it runs.
struct Follower {
    build: Arc<BuildSide>,
    job_id: String,
    layout: JobLayout,
    script: Vec<String>,
    engine: &'static str,
    image: String,
    started: bool,
    last_failed: Option<usize>,
    script_end: Option<i32>,
    logs: Vec<LogFollow>,
}

impl Follower {
    fn new(
        build: Arc<BuildSide>,
        job_id: String,
        layout: JobLayout,
        script: Vec<String>,
        engine: &'static str,
        image: &str,
    ) -> Follower {
        Follower {
            build,
            job_id,
            layout,
            script,
            engine,
            image: image.to_owned(),
            started: false,
            last_failed: None,
            script_end: None,
            logs: Vec::new(),
        }
    }

    /// Handles every event written so far; an error is a malformed event line, reported and
    /// skipped.
    async fn drain(&mut self, tail: &mut EventTail) -> Result<(), String> {
        loop {
            match tail.try_next() {
                Ok(Some(event)) => self.handle(event).await,
                Ok(None) => break,
                Err(err) => return Err(format!("monkeyci: {}", chain(&err))),
            }
        }
        for log in &mut self.logs {
            log.poll(&self.build, &self.job_id).await;
        }
        Ok(())
    }

    async fn handle(&mut self, event: ContainerEvent) {
        let job_id = self.job_id.clone();
        match event {
            ContainerEvent::Start => {
                self.started = true;
                self.build.emit(EventKind::ContainerStart {
                    job_id,
                    image: self.image.clone(),
                    engine: self.engine.into(),
                });
            }
            ContainerEvent::CommandStart { command, .. } => {
                let line = self.script.get(command).map(|l| self.build.masker.mask(l)).unwrap_or_default();
                self.logs.push(LogFollow::new(self.layout.stdout_log(command), OutputStream::Stdout));
                self.logs.push(LogFollow::new(self.layout.stderr_log(command), OutputStream::Stderr));
                self.build.emit(EventKind::CommandStart { job_id, command, line });
            }
            ContainerEvent::CommandEnd { command, exit } => {
                // The command's output comes before its end.
                for log in &mut self.logs {
                    log.poll(&self.build, &self.job_id).await;
                }
                if exit != 0 {
                    self.last_failed = Some(command);
                }
                self.build.emit(EventKind::CommandEnd { job_id, command, exit });
            }
            ContainerEvent::ScriptEnd { exit, .. } => self.script_end = Some(exit),
        }
    }

    async fn finish(&mut self) {
        for log in &mut self.logs {
            log.poll(&self.build, &self.job_id).await;
            log.flush(&self.build, &self.job_id);
        }
    }
}

/// Follows one log file as it grows, emitting complete lines.
struct LogFollow {
    path: PathBuf,
    stream: OutputStream,
    offset: u64,
    partial: Vec<u8>,
}

impl LogFollow {
    fn new(path: PathBuf, stream: OutputStream) -> LogFollow {
        LogFollow { path, stream, offset: 0, partial: Vec::new() }
    }

    async fn poll(&mut self, build: &BuildSide, job_id: &str) {
        use tokio::io::{AsyncReadExt, AsyncSeekExt};
        let Ok(mut file) = tokio::fs::File::open(&self.path).await else { return };
        if file.seek(std::io::SeekFrom::Start(self.offset)).await.is_err() {
            return;
        }
        let mut buf = Vec::new();
        if let Ok(n) = file.read_to_end(&mut buf).await {
            self.offset += n as u64;
            self.partial.extend_from_slice(&buf);
        }
        while let Some(pos) = self.partial.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=pos).collect();
            self.emit(build, job_id, &line[..line.len() - 1]);
        }
    }

    fn flush(&mut self, build: &BuildSide, job_id: &str) {
        if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.emit(build, job_id, &line);
        }
    }

    fn emit(&self, build: &BuildSide, job_id: &str, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        let line = build.masker.mask(line.trim_end_matches('\r'));
        build.emit(EventKind::JobOutput { job_id: job_id.to_owned(), stream: self.stream, line });
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use monkeyci_protocol::{ContainerRequest, ContainerSpec, EventKind, JobStatus};
    use tokio::sync::mpsc;

    use super::*;
    use monkeyci_store::{BlobStore, LocalBlobStore};

    fn jobs(dir: &Path, params: ParamMap) -> (ContainerJobs, mpsc::UnboundedReceiver<Event>) {
        let checkout = dir.join("checkout");
        std::fs::create_dir_all(checkout.join("sub")).unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.join("blobs")).unwrap());
        let files = files::JobFiles::new(store, "b1", &checkout);
        let (tx, rx) = mpsc::unbounded_channel();
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
