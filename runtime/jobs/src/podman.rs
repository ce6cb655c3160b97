//! The podman and docker engines: one container per job attempt, through the engine's CLI.
//!
//! The job's directory is mounted at [`DEFAULT_MOUNT`](crate::jobscript::DEFAULT_MOUNT); the container runs the generated wrapper with
//! its `/bin/sh` (or, with `.command(..)`, the image's own command, whose output is the job's
//! output). No network unless the job asks for it, CPUs and memory from the job's size.
//! Containers are named per build, job and attempt, and removed afterwards.
//!
//! Secret values are on no command line and, for script lines, in no container setting: the
//! wrapper reads them from its secrets file, so `podman inspect` and `docker inspect` cannot
//! show them. A job with its own command has no wrapper: its secrets are passed through the
//! engine's environment (`-e NAME`), and `inspect` shows them.

use std::process::Stdio;

use tokio::sync::watch;

use crate::engine::{self, BoxFuture, ContainerEngine, EngineError, EngineExit, EngineJob};
use crate::jobscript::{DEFAULT_MOUNT as MOUNT, JobLayout};
use crate::output::ProcessOutput;

/// Seconds a container may take to stop after SIGTERM before it is killed.
const GRACE_SECONDS: &str = "10";

/// A container engine driven through its command line: `podman` or `docker`.
pub(crate) struct CliEngine {
    program: &'static str,
}

impl CliEngine {
    pub(crate) fn podman() -> CliEngine {
        CliEngine { program: "podman" }
    }

    pub(crate) fn docker() -> CliEngine {
        CliEngine { program: "docker" }
    }

    fn run_args(&self, job: &EngineJob) -> Vec<String> {
        // `--init`: a tiny init as PID 1 forwards signals, so stopping a job takes effect at
        // once (a shell as PID 1 ignores SIGTERM).
        let mut args: Vec<String> =
            vec!["run".into(), "--rm".into(), "--init".into(), "--name".into(), job.name.clone()];
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
