//! The [`ContainerEngine`] contract: what an engine is given ([`EngineJob`]), what it answers
//! ([`EngineExit`], [`EngineError`]) and how it is stopped ([`stopped`]).
//!
//! - **One run per job attempt.** An [`EngineJob`] is prepared once per (build, job, attempt)
//!   and its `name` is unique for it; the caller starts each attempt once, so `run` is never
//!   asked twice for the same name while the first runs. Starting is idempotent at the level
//!   of [`crate::ContainerJobs::start`], not of the engine.
//! - **Done** means the job's process (container, or host shell) is gone: `run` returns only
//!   then, with its exit code and the end of its stderr, whether the script succeeded, failed
//!   or was stopped. Whether the *job* succeeded is for the supervisor to judge, from the job
//!   script's events; an engine never reads them.
//! - **Secrets** are never in what an engine is told to run: the wrapper reads them from the
//!   secrets file, which the engine removes once the process is gone ([`forget_secrets`]).
//! - **Leftovers**: an engine marks what it starts with its build and its owner (this
//!   process, see `owner`) and, before its first job, stops what is marked with an owner
//!   that is gone (a `monkeyci` killed with `kill -9`), telling so once on stderr.
//! - **Stopping**: when the `stop` receiver turns true the engine writes the abort file
//!   ([`abort_for_stop`], so the wrapper starts no other line), stops the process (SIGTERM, a
//!   grace period, then kill) and still returns its exit. Nothing the job started outlives it. [`ContainerEngine::cleanup`]
//!   removes what the engine left behind (a container), after `run` returned.
//!
//! This module owns the contract only: the implementations are in `podman` and `shell`, and
//! the choice between them in `choice`.

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use tokio::sync::watch;

use crate::jobscript::JobLayout;
use crate::output::ProcessOutput;

/// A boxed, sendable future: what the engine trait's methods return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// One prepared job attempt, as an engine sees it.
#[derive(Debug, Clone)]
pub struct EngineJob {
    /// Unique per build, job and attempt (the container name).
    pub name: String,
    /// The job's id, for messages about it.
    pub job_id: String,
    /// The build it belongs to (a container label, a shell job's variable): the next build
    /// names it when it stops what a build whose `monkeyci` is gone left running.
    pub build_id: String,
    /// The image to run (the shell engine ignores it).
    pub image: String,
    /// The job's directory on the host (the volume shared with the container).
    pub root: PathBuf,
    /// The wrapper's path relative to `root`.
    pub wrapper_in_root: String,
    /// The wrapper's path on the host.
    pub wrapper_on_host: PathBuf,
    /// Where the process starts, on the host (the shell engine).
    pub work_dir_on_host: PathBuf,
    /// Where the process starts, in the container.
    pub work_dir_in_container: String,
    /// The job's plain environment.
    pub env: BTreeMap<String, String>,
    /// Secret environment variables, values resolved from the build params, for a job with its
    /// own command only: a script's secrets are in its secrets file, which the wrapper reads
    /// (see [`crate::jobscript`]), so that no engine shows them (`inspect`).
    pub secret_env: BTreeMap<String, String>,
    /// What the wrapper needs to find its files, on the host.
    pub protocol_env_on_host: Vec<(String, String)>,
    /// What the wrapper needs to find its files, in the container.
    pub protocol_env_in_container: Vec<(String, String)>,
    /// The image's own command instead of the wrapper (empty: the wrapper).
    pub command: Vec<String>,
    /// CPUs the container may use.
    pub cpus: u32,
    /// Memory the container may use, in GiB.
    pub memory_gib: u32,
    /// Whether the container has a network.
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
    /// The engine's program could not be started.
    #[error("cannot start `{program}`")]
    Spawn {
        /// The program, e.g. `podman`.
        program: String,
        /// Why it could not start.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the engine's process failed.
    #[error("lost track of the container process")]
    Wait(#[source] std::io::Error),
}

/// Runs prepared jobs. `run` returns when the job's process is gone; when `stop` turns true
/// the engine stops it (SIGTERM, a grace period, then kill) and still returns its exit.
pub trait ContainerEngine: Send + Sync {
    /// The engine's name in events and messages: `podman`, `docker`, `shell`.
    fn name(&self) -> &'static str;

    /// Runs `job` to its end, forwarding the process's own output to `output`.
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

/// The abort file's text when the job is stopped (time limit, cancel).
const STOPPED: &str = "stopped: the job's time limit passed or the build was canceled";

/// Before an engine stops a job: creates the abort file, unless one exists (its reason is
/// kept), so a wrapper between two lines ends instead of starting the next one. A failure is
/// logged: the job is stopped either way.
pub(crate) fn abort_for_stop(layout: &JobLayout) {
    let path = layout.abort_file();
    let created = std::fs::OpenOptions::new().write(true).create_new(true).open(&path);
    match created {
        Ok(mut file) => {
            if let Err(err) = std::io::Write::write_all(&mut file, format!("{STOPPED}\n").as_bytes()) {
                tracing::warn!("cannot write {}: {err}", path.display());
            }
        }
        Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(err) => tracing::warn!("cannot create {}: {err}", path.display()),
    }
}

/// After the job's process is gone: removes its secrets file, in case the wrapper never ran
/// (an image that cannot start) or could not remove it. A failure is logged.
pub(crate) fn forget_secrets(layout: &JobLayout) {
    if let Err(err) = layout.forget_secrets() {
        tracing::warn!("{}", monkeyci_protocol::error_chain(&err));
    }
}
