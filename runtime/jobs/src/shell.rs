//! The host shell engine: runs a container job's wrapper with `/bin/sh` on this machine, in
//! the job's own directory. Images are ignored (announced by [`crate::select`] when `auto` falls back to it), and so
//! are CPU and memory sizes: the job gets what the machine has. It lets pipelines with
//! container jobs run everywhere, and is tested on its own.

use std::process::Stdio;
use std::time::Duration;

use tokio::sync::watch;

use crate::engine::{self, BoxFuture, ContainerEngine, EngineError, EngineExit, EngineJob};
use crate::output::ProcessOutput;

/// How long a job may take to stop after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// Runs jobs with the host's `/bin/sh`.
pub(crate) struct ShellEngine;

impl ContainerEngine for ShellEngine {
    fn name(&self) -> &'static str {
        "shell"
    }

    fn run<'a>(
        &'a self,
        job: &'a EngineJob,
        output: ProcessOutput,
        stop: watch::Receiver<bool>,
    ) -> BoxFuture<'a, Result<EngineExit, EngineError>> {
        Box::pin(async move {
            let (program, args): (String, Vec<String>) = match job.command.split_first() {
                Some((program, args)) => (program.clone(), args.to_vec()),
                None => ("/bin/sh".to_owned(), vec![job.wrapper_on_host.to_string_lossy().into_owned()]),
            };
            let mut cmd = tokio::process::Command::new(&program);
            cmd.args(&args)
                .current_dir(&job.work_dir_on_host)
                .env_clear()
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                // Its own process group, so stopping the job stops everything it started.
                .process_group(0);
            for var in ["PATH", "HOME", "USER", "LANG", "TMPDIR"] {
                if let Some(value) = std::env::var_os(var) {
                    cmd.env(var, value);
                }
            }
            cmd.envs(&job.env).envs(&job.secret_env);
            cmd.envs(job.protocol_env_on_host.iter().map(|(k, v)| (k, v)));
            let mut child = cmd.spawn().map_err(|source| EngineError::Spawn { program: program.clone(), source })?;
            let pid = child.id();
            let pumps = output.pump(&mut child);
            let status = wait_or_stop(&mut child, pid, stop).await?;
            let stderr = pumps.finish().await;
            Ok(EngineExit { code: status.code(), stderr })
        })
    }
}

/// Waits for the child; when `stop` turns true, sends SIGTERM to its process group, then
/// SIGKILL after the grace period.
async fn wait_or_stop(
    child: &mut tokio::process::Child,
    pid: Option<u32>,
    mut stop: watch::Receiver<bool>,
) -> Result<std::process::ExitStatus, EngineError> {
    tokio::select! {
        status = child.wait() => return status.map_err(EngineError::Wait),
        _ = engine::stopped(&mut stop) => {}
    }
    if let Some(pid) = pid {
        signal_group(pid, libc::SIGTERM);
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(status) => status.map_err(EngineError::Wait),
        Err(_) => {
            if let Some(pid) = pid {
                signal_group(pid, libc::SIGKILL);
            }
            child.wait().await.map_err(EngineError::Wait)
        }
    }
}

fn signal_group(pid: u32, signal: libc::c_int) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) on the job's own process group has no memory effects.
    unsafe {
        libc::kill(-pid, signal);
    }
}
