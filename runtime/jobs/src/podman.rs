//! The podman and docker engines: one container per job attempt, through the engine's CLI.
//!
//! The job's directory is mounted at [`DEFAULT_MOUNT`](crate::jobscript::DEFAULT_MOUNT); the container runs the generated wrapper with
//! its `/bin/sh` (or, with `.command(..)`, the image's own command, whose output is the job's
//! output). No network unless the job asks for it, CPUs and memory from the job's size.
//! Containers are named per build, job and attempt, and removed afterwards.
//!
//! Each container is labeled with its build and owner (`monkeyci.build`, `monkeyci.owner`, see
//! `owner`). Before its first job the engine stops and removes the containers whose owner is
//! gone: a `monkeyci` killed with `kill -9` cannot remove its own.
//!
//! Secret values are on no command line and, for script lines, in no container setting: the
//! wrapper reads them from its secrets file, so `podman inspect` and `docker inspect` cannot
//! show them. A job with its own command has no wrapper: its secrets are passed through the
//! engine's environment (`-e NAME`), and `inspect` shows them.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::{self, BoxFuture, ContainerEngine, EngineError, EngineExit, EngineJob};
use crate::jobscript::{DEFAULT_MOUNT as MOUNT, JobLayout};
use crate::output::ProcessOutput;
use crate::owner::{self, LABEL_BUILD, LABEL_OWNER, Owner};

/// How long a listing or removal by the engine's CLI may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);

/// Seconds a container may take to stop after SIGTERM before it is killed.
const GRACE_SECONDS: &str = "10";

/// A container engine driven through its command line: `podman` or `docker`.
pub(crate) struct CliEngine {
    program: &'static str,
    /// Set once the containers a gone `monkeyci` left were stopped, before the first job.
    orphans_stopped: tokio::sync::OnceCell<()>,
}

impl CliEngine {
    pub(crate) fn podman() -> CliEngine {
        CliEngine { program: "podman", orphans_stopped: tokio::sync::OnceCell::new() }
    }

    pub(crate) fn docker() -> CliEngine {
        CliEngine { program: "docker", orphans_stopped: tokio::sync::OnceCell::new() }
    }

    fn run_args(&self, job: &EngineJob) -> Vec<String> {
        // `--init`: a tiny init as PID 1 forwards signals, so stopping a job takes effect at
        // once (a shell as PID 1 ignores SIGTERM).
        let mut args: Vec<String> =
            vec!["run".into(), "--rm".into(), "--init".into(), "--name".into(), job.name.clone()];
        args.extend(["--label".into(), format!("{LABEL_BUILD}={}", job.build_id)]);
        args.extend(["--label".into(), format!("{LABEL_OWNER}={}", Owner::this())]);
        args.extend(["--network".into(), if job.network { "bridge".into() } else { "none".into() }]);
        args.extend(["--cpus".into(), job.cpus.to_string(), "--memory".into(), format!("{}g", job.memory_gib)]);
        args.extend(["-v".into(), format!("{}:{MOUNT}", job.root.display())]);
        args.extend(["-w".into(), job.work_dir_in_container.clone()]);
        for (name, value) in job.env.iter().chain(job.protocol_env_in_container.iter().map(|(k, v)| (k, v))) {
            args.extend(["-e".into(), format!("{name}={value}")]);
        }
        for name in job.secret_env.keys() {
            // A command's secrets (a script's are in its secrets file); the value comes from
            // the CLI's environment, set below.
            args.extend(["-e".into(), name.clone()]);
        }
        args.push(job.image.clone());
        if job.command.is_empty() {
            args.extend(["/bin/sh".into(), format!("{MOUNT}/{}", job.wrapper_in_root)]);
        } else {
            args.extend(job.command.iter().cloned());
        }
        args
    }

    /// Stops and removes the containers whose owner is gone (see `owner`), and says so on
    /// stderr, once per build. Containers of other hosts and of running owners are left alone;
    /// a failing or hanging engine CLI only means nothing is stopped now.
    async fn stop_orphans(&self) {
        let ids = self.output(&["ps", "-a", "-q", "--no-trunc", "--filter", &format!("label={LABEL_OWNER}")]).await;
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if ids.is_empty() {
            return;
        }
        let format = format!(
            "{{{{.Id}}}} {{{{index .Config.Labels \"{LABEL_OWNER}\"}}}} {{{{index .Config.Labels \"{LABEL_BUILD}\"}}}}"
        );
        let mut args = vec!["inspect", "--format", &format];
        args.extend(&ids);
        let described = self.output(&args).await;
        let mut gone: Vec<&str> = Vec::new();
        let mut stopped: BTreeMap<String, (libc::pid_t, usize)> = BTreeMap::new();
        for line in described.lines() {
            let mut fields = line.split_whitespace();
            let (Some(id), Some(owner), build) = (fields.next(), fields.next(), fields.next()) else { continue };
            let Some(owner) = Owner::parse(owner).filter(Owner::is_gone) else { continue };
            gone.push(id);
            stopped.entry(build.unwrap_or("?").to_owned()).or_insert((owner.pid(), 0)).1 += 1;
        }
        if gone.is_empty() {
            return;
        }
        let mut args = vec!["rm", "-f"];
        args.extend(&gone);
        self.output(&args).await;
        owner::report_stopped(&stopped, "container", "containers");
    }

    /// The stdout of the engine's CLI run with `args`, whether it succeeded or not (`inspect`
    /// of a container removed meanwhile fails, and still describes the others); empty when
    /// it cannot run or takes more than [`CLI_TIMEOUT`].
    async fn output(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new(self.program)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .output();
        match tokio::time::timeout(CLI_TIMEOUT, out).await {
            Ok(Ok(out)) => String::from_utf8_lossy(&out.stdout).into_owned(),
            _ => String::new(),
        }
    }

    async fn stop(&self, name: &str) {
        let _ = tokio::process::Command::new(self.program)
            .args(["stop", "-t", GRACE_SECONDS, name])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
    }
}

impl ContainerEngine for CliEngine {
    fn name(&self) -> &'static str {
        self.program
    }

    fn run<'a>(
        &'a self,
        job: &'a EngineJob,
        output: ProcessOutput,
        mut stop: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<EngineExit, EngineError>> {
        Box::pin(async move {
            self.orphans_stopped.get_or_init(|| self.stop_orphans()).await;
            let mut child = tokio::process::Command::new(self.program)
                .args(self.run_args(job))
                .envs(&job.secret_env)
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                // Its own process group: a Ctrl-C on the terminal reaches this process only,
                // which stops the job in order (abort file, then stop), rather than the engine's
                // CLI, which would pass the SIGINT on to the job's wrapper.
                .process_group(0)
                .spawn()
                .map_err(|source| EngineError::Spawn { program: self.program.to_owned(), source })?;
            let pumps = output.pump(&mut child);
            let status = tokio::select! {
                status = child.wait() => status.map_err(EngineError::Wait)?,
                _ = engine::stopped(&mut stop) => {
                    engine::abort_for_stop(&JobLayout::new(&job.root));
                    self.stop(&job.name).await;
                    child.wait().await.map_err(EngineError::Wait)?
                }
            };
            engine::forget_secrets(&JobLayout::new(&job.root));
            let stderr = pumps.finish().await;
            Ok(EngineExit { code: status.code(), stderr })
        })
    }

    fn cleanup<'a>(&'a self, job: &'a EngineJob) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // `--rm` removes it when it exits; this covers a container whose CLI was killed.
            let _ = tokio::process::Command::new(self.program)
                .args(["rm", "-f", &job.name])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .await;
        })
    }
}
