//! Taking a journaled step of an action job, [`run`] for `ctx.run` and [`shell`] for
//! `ctx.shell`: the step gets its number when it is called, returns the result an earlier
//! launch recorded at that number without running again, fails naming both steps when the
//! job asks for something else there (it diverged), and otherwise runs and journals its result.
//!
//! The step's number is taken before the returned future is first polled, so concurrent steps
//! keep the order of their calls. Running is the seams' (containers) or a child process's
//! (`sh -c`); this module decides only whether to run, and what to record.

use std::future::Future;
use std::process::Stdio;
use std::sync::Arc;

use tokio::io::{AsyncBufReadExt, BufReader};

use crate::dsl::error::JobError;
use crate::durable::journal::Step;
use crate::durable::scope::{Scope, StepNumber};
use crate::protocol::{
    ContainerRequest, ContainerResult, ContainerSpec, JobStatus, JournalRecord, OutputStream, StepKey,
};

/// What a command run with [`Ctx::shell`](crate::Ctx::shell) printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ShellOutput {
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

/// A step taken: its number, and what an earlier launch recorded for it.
struct Taken {
    number: StepNumber,
    recorded: Option<Step>,
}

/// Takes the next step of `scope`'s job (none outside a job).
fn take(scope: &Scope) -> Option<Taken> {
    let number = scope.next_step()?;
    let recorded = scope.build().replayed_step(&number.job, number.attempt, number.n);
    Some(Taken { number, recorded })
}

/// The error of a resumed job whose step `n` is not the one recorded there.
pub(crate) fn step_diverged(job: &str, n: u32, recorded: &Step, now: &str) -> JobError {
    JobError::msg(format!(
        "job `{job}` diverged on resume: its step {n} was {} before, and now is {now}; a job must take \
         its ctx.run and ctx.shell steps in the same order with the same containers and commands on every run",
        recorded.describe()
    ))
}

/// `ctx.run`: runs the container of `spec` as the next step of `scope`'s job and waits for it
/// to end; the step fails with the container's message if it does not succeed.
pub(crate) fn run(
    scope: &Scope,
    spec: ContainerSpec,
) -> impl Future<Output = Result<ContainerResult, JobError>> + Send + '_ {
    let taken = take(scope);
    async move {
        let Some(Taken { number: StepNumber { job, attempt, n }, recorded }) = taken else {
            return Err(JobError::msg("ctx.run can only be used inside a job"));
        };
        let digest = spec.digest();
        let result = match recorded {
            Some(Step::Run { digest: recorded_digest, result }) if recorded_digest == digest => result,
            Some(other) => return Err(step_diverged(&job, n, &other, &format!("ctx.run of `{digest}`"))),
            None => {
                let request = ContainerRequest { job_id: format!("{job}.run{n}"), attempt, spec };
                let result = scope.run_container(request).await?;
                scope.journal(StepKey::Step(n), JournalRecord::RunResult { attempt, digest, result: result.clone() });
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

/// `ctx.shell`: runs `command` with `sh -c` in the work dir of `scope`'s job as its next step
/// (outside a job, unjournaled), streaming its output into the job's log; fails when the
/// command exits non-zero. Holds a slot of `--max-parallel` while it runs.
pub(crate) fn shell<'a>(
    scope: &'a Arc<Scope>,
    command: &'a str,
) -> impl Future<Output = Result<ShellOutput, JobError>> + Send + 'a {
    // The step number is taken now, in call order, like `run`'s.
    let taken = take(scope);
    shell_step(scope, command, taken)
}

async fn shell_step(scope: &Arc<Scope>, command: &str, taken: Option<Taken>) -> Result<ShellOutput, JobError> {
    let build = scope.build();
    let masked = build.mask(command);
    if let Some(Taken { number, recorded: Some(recorded) }) = &taken {
        return match recorded {
            Step::Shell { command: recorded_command, code, stdout, stderr, lines } if *recorded_command == masked => {
                // Its log lines were written when it ran.
                scope.count_lines(*lines);
                shell_outcome(&masked, *code, stdout.clone(), stderr.clone())
            }
            other => Err(step_diverged(&number.job, number.n, other, &format!("ctx.shell(`{masked}`)"))),
        };
    }
    let _slot = build.process_slot().await.map_err(|_| JobError::msg("the build is shutting down"))?;
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(command)
        .current_dir(scope.work_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|err| JobError::with_source(format!("could not start `{masked}`"), err))?;
    let stdout = child.stdout.take().map(|s| pump(Arc::clone(scope), s, OutputStream::Stdout));
    let stderr = child.stderr.take().map(|s| pump(Arc::clone(scope), s, OutputStream::Stderr));
    let status = child.wait().await.map_err(|err| JobError::with_source(format!("waiting for `{masked}`"), err))?;
    let (stdout, stdout_lines) = join_pump(stdout).await;
    let (stderr, stderr_lines) = join_pump(stderr).await;
    if let Some(Taken { number: StepNumber { attempt, n, .. }, recorded: None }) = taken {
        let record = JournalRecord::ShellResult {
            attempt,
            command: masked.clone(),
            code: status.code(),
            stdout: build.mask(&stdout),
            stderr: build.mask(&stderr),
            lines: stdout_lines + stderr_lines,
        };
        scope.journal(StepKey::Step(n), record);
    }
    shell_outcome(&masked, status.code(), stdout, stderr)
}

/// Reads `reader` to its end into the job's log; the task returns what it read and how many
/// log lines it wrote.
fn pump<R>(scope: Arc<Scope>, reader: R, stream: OutputStream) -> tokio::task::JoinHandle<(String, u64)>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut lines = BufReader::new(reader).lines();
        let mut all = String::new();
        let mut written = 0;
        while let Ok(Some(line)) = lines.next_line().await {
            written += scope.output_line(stream, &line);
            all.push_str(&line);
            all.push('\n');
        }
        (all, written)
    })
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
