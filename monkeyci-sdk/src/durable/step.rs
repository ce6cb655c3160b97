//! Taking a journaled step of an action job, [`run`] for `ctx.run` and [`shell`] for
//! `ctx.shell`: the step gets its number when it is called, returns the result an earlier
//! launch recorded at that number without running again, fails naming both steps when the
//! job asks for something else there (it diverged), and otherwise runs and journals its result.
//!
//! The step's number is taken before the returned future is first polled, so concurrent steps
//! keep the order of their calls. Running is the seams' (containers) or a child process's
//! (`sh -c`); this module decides only whether to run, and what to record.

use std::future::Future;
use std::os::unix::process::CommandExt;
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use crate::dsl::error::JobError;
use crate::durable::build::Slot;
use crate::durable::journal::Step;
use crate::durable::scope::{Scope, StepNumber};
use crate::protocol::{
    ContainerRequest, ContainerResult, ContainerSpec, EventKind, JobStatus, JournalRecord, OutputStream,
    SCRIPT_CONFIG_ENV, StepKey,
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
/// (outside a job, unjournaled), streaming its output into the job's log between a
/// `command/start` and a `command/end` event (numbered by the step, as a container job's script
/// lines are by their index); fails when the command exits non-zero. Holds a slot of
/// `--max-parallel` while it runs.
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
    let _slot = build
        .slot(Slot::Command, |max| {
            scope.note(&format!("waiting for a free slot: --max-parallel {max} commands are running"))
        })
        .await
        .map_err(|_| JobError::msg("the build is shutting down"))?;
    let mut command_line = tokio::process::Command::new("sh");
    command_line
        .arg("-c")
        .arg(command)
        .current_dir(scope.work_dir())
        // The pipeline's environment (`main!(env = [...])`), over the script's.
        .envs(crate::dsl::env::pipeline_env())
        // The build API's address and token are the script's alone.
        .env_remove(SCRIPT_CONFIG_ENV)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own process group, so that everything it starts can be stopped with it.
        .process_group(0);
    keep_environment_from_children();
    let mut child =
        command_line.spawn().map_err(|err| JobError::with_source(format!("could not start `{masked}`"), err))?;
    // Shown like a container job's script line (`$ cargo test  (command N)`), numbered by its
    // step; not again on replay, like its output.
    let marker = taken.as_ref().map(|Taken { number, .. }| (number.job.clone(), number.n as usize));
    if let Some((job_id, command)) = &marker {
        build.emit(EventKind::CommandStart { job_id: job_id.clone(), command: *command, line: masked.clone() });
    }
    // From here on, whatever ends this step (the command, an error, a timeout or a cancel
    // dropping this future, the script's death) stops the command's whole group.
    let mut group = child.id().map(ProcessGroup::watch);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stdout = child.stdout.take().map(|s| pump(Arc::clone(scope), s, OutputStream::Stdout, stop_rx.clone()));
    let stderr = child.stderr.take().map(|s| pump(Arc::clone(scope), s, OutputStream::Stderr, stop_rx));
    let status = child.wait().await.map_err(|err| JobError::with_source(format!("waiting for `{masked}`"), err))?;
    // The shell is gone, but what it left running may hold its output open. Whatever was
    // written is read to the end of the pipes: they end when the last process holding them
    // does. So what is left gets a short moment, then is stopped with the group, and reading
    // goes on until the pipes end; only a process that left the group (`setsid`) and still
    // holds them makes reading stop without their end.
    let drained = async {
        let stdout = join_pump(stdout).await;
        let stderr = join_pump(stderr).await;
        (stdout, stderr)
    };
    tokio::pin!(drained);
    let read = match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut drained).await {
        Ok(read) => Some(read),
        Err(_) => {
            drop(group.take());
            tokio::time::timeout(STOP_GRACE + DRAIN_AFTER_EXIT, &mut drained).await.ok()
        }
    };
    let ((stdout, stdout_lines), (stderr, stderr_lines)) = match read {
        Some(read) => read,
        None => {
            let _ = stop_tx.send(true);
            drained.await
        }
    };
    drop(group);
    if let (Some((job_id, command)), Some(exit)) = (marker, status.code()) {
        build.emit(EventKind::CommandEnd { job_id, command, exit });
    }
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

/// How long what a `ctx.shell` command's shell left running may go on after the shell ended,
/// before it is stopped.
const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(200);

/// How long the processes of a step that ends get between SIGTERM and SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(2);

/// Makes the script's memory and environment (`/proc/<pid>/environ`, which still shows the
/// build API's token) unreadable to the processes it starts, though they run as its user.
fn keep_environment_from_children() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // SAFETY: prctl(PR_SET_DUMPABLE) takes plain integers and touches no memory of ours.
        unsafe {
            libc::prctl(libc::PR_SET_DUMPABLE, 0, 0, 0, 0);
        }
    });
}

/// The process group of a `ctx.shell` command, stopped when this is dropped: SIGTERM, then
/// SIGKILL after [`STOP_GRACE`] to what is left.
///
/// A watcher (`sh` in a group of its own, reading a pipe only the script holds) kills the
/// group if the script dies first, even by SIGKILL: the pipe closes with the script.
/// (`PR_SET_PDEATHSIG` would not do: it reaches only the shell, not what the shell started,
/// and fires when the spawning thread ends, not the script.)
struct ProcessGroup {
    id: libc::pid_t,
    watcher: Option<std::process::Child>,
}

impl ProcessGroup {
    fn watch(leader: u32) -> ProcessGroup {
        let id = leader as libc::pid_t;
        let watcher = std::process::Command::new("sh")
            .arg("-c")
            .arg(r#"read -r line; kill -9 "-$1" 2>/dev/null"#)
            .arg("monkeyci-group-watcher")
            .arg(id.to_string())
            .env_remove(SCRIPT_CONFIG_ENV)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .ok();
        ProcessGroup { id, watcher }
    }

    /// Sends `signal` to the group; `false` once no process is left in it.
    fn signal(id: libc::pid_t, signal: libc::c_int) -> bool {
        // SAFETY: kill takes plain integers; a negative id names a process group.
        unsafe { libc::kill(-id, signal) == 0 }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        let id = self.id;
        let watcher = self.watcher.take();
        let stop_watcher = |watcher: Option<std::process::Child>| {
            if let Some(mut watcher) = watcher {
                let _ = watcher.kill();
                let _ = watcher.wait();
            }
        };
        if !ProcessGroup::signal(id, libc::SIGTERM) {
            stop_watcher(watcher);
            return;
        }
        // The grace runs on a thread of its own: this may be a future dropped by a timeout.
        let _ = std::thread::Builder::new().name("monkeyci-stop-group".into()).spawn(move || {
            let deadline = std::time::Instant::now() + STOP_GRACE;
            let mut left = true;
            while left && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
                left = ProcessGroup::signal(id, 0);
            }
            if left {
                ProcessGroup::signal(id, libc::SIGKILL);
            }
            stop_watcher(watcher);
        });
    }
}

/// Reads `reader` to its end (or until `stop`) into the job's log, line by line, bytes that
/// are not UTF-8 replaced by U+FFFD; the task returns what it read and how many log lines it
/// wrote.
fn pump<R>(
    scope: Arc<Scope>,
    mut reader: R,
    stream: OutputStream,
    mut stop: tokio::sync::watch::Receiver<bool>,
) -> tokio::task::JoinHandle<(String, u64)>
where
    R: tokio::io::AsyncRead + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut all = String::new();
        let mut written = 0;
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 8192];
        let mut line_out = |bytes: &[u8], all: &mut String| {
            let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
            let line = String::from_utf8_lossy(bytes);
            written += scope.output_line(stream, &line);
            all.push_str(&line);
            all.push('\n');
        };
        loop {
            let read = tokio::select! {
                biased;
                _ = stop.wait_for(|stop| *stop) => break,
                read = reader.read(&mut chunk) => read,
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    pending.extend_from_slice(&chunk[..n]);
                    let mut start = 0;
                    while let Some(end) = pending[start..].iter().position(|b| *b == b'\n') {
                        line_out(&pending[start..start + end], &mut all);
                        start += end + 1;
                    }
                    pending.drain(..start);
                }
            }
        }
        if !pending.is_empty() {
            line_out(&pending, &mut all);
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

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    use crate::dsl::job::Job;
    use crate::protocol::JobStatus;
    use crate::testing::TestCtx;

    /// The processes whose command line has `arg` as one of its arguments.
    fn processes_with(arg: &str) -> Vec<String> {
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
            let args: Vec<String> =
                cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            if args.iter().skip(1).any(|a| a == arg) {
                found.push(args.join(" "));
            }
        }
        found
    }

    /// Waits up to `limit` for the processes with `arg` to be gone; what is left.
    fn gone_within(arg: &str, limit: Duration) -> Vec<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = processes_with(arg);
            if left.is_empty() || Instant::now() > deadline {
                return left;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    #[test]
    fn a_command_that_leaves_a_process_behind_returns_when_its_shell_exits_and_the_process_is_stopped() {
        let job = Job::action("bg", |ctx| async move {
            let out = ctx.shell("sleep 7340011 & echo started").await?;
            Ok(out.stdout)
        });
        let started = Instant::now();
        let run = TestCtx::new().run_jobs(vec![job]).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
        assert_eq!(run.job_status("bg"), Some(JobStatus::Success), "{:?}", run.message("bg"));
        assert_eq!(run.output_json("bg"), Some(&serde_json::json!("started\n")));
        assert_eq!(gone_within("7340011", Duration::from_secs(5)), Vec::<String>::new());
    }

    #[test]
    fn a_command_that_ignores_sigterm_is_killed_after_its_job_times_out() {
        let job = Job::action("stubborn", |ctx| async move {
            ctx.shell("trap '' TERM; sleep 7340012; echo never").await?;
            Ok(())
        })
        .timeout(Duration::from_millis(300));
        let run = TestCtx::new().run_jobs(vec![job]).unwrap();
        assert_eq!(run.job_status("stubborn"), Some(JobStatus::Timeout), "{:?}", run.message("stubborn"));
        assert_eq!(gone_within("7340012", Duration::from_secs(6)), Vec::<String>::new());
    }

    /// Issue 10: `ctx.shell` commands were never shown. Each one is a `command/start` before
    /// its output and a `command/end` with its exit code after it, as a container job's script
    /// lines are.
    #[test]
    fn a_shell_command_is_shown_between_its_start_and_its_end() {
        use crate::protocol::{EventKind, OutputStream};
        let job = Job::action("sh", |ctx| async move {
            ctx.shell("echo out; echo oops >&2").await?;
            ctx.shell("exit 3").await?;
            Ok(())
        });
        let run = TestCtx::new().run_jobs(vec![job]).unwrap();
        assert_eq!(run.job_status("sh"), Some(JobStatus::Failure));
        let shown: Vec<String> = run
            .events()
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::CommandStart { job_id, command, line } => Some(format!("{job_id} start {command}: {line}")),
                EventKind::CommandEnd { job_id, command, exit } => Some(format!("{job_id} end {command}: {exit}")),
                EventKind::JobOutput { stream: OutputStream::Stderr, line, .. } => Some(format!("! {line}")),
                EventKind::JobOutput { line, .. } => Some(line.clone()),
                _ => None,
            })
            .collect();
        let [first, out, err, end, second, last] = &shown[..] else { panic!("{shown:?}") };
        assert!(first.starts_with("sh start ") && first.ends_with(": echo out; echo oops >&2"), "{shown:?}");
        // stdout and stderr are read apart: their lines may come in either order.
        let mut output = [out.as_str(), err.as_str()];
        output.sort();
        assert_eq!(output, ["! oops", "out"], "{shown:?}");
        assert_eq!(end, &first.replace("start", "end").replace("echo out; echo oops >&2", "0"), "{shown:?}");
        assert!(second.ends_with(": exit 3") && last.ends_with(": 3") && second != first, "{shown:?}");
    }

    /// Issue 10: a job could not leave a short result for the build page and `build logs`.
    #[test]
    fn a_job_summary_is_its_latest_masked_and_bounded_and_only_jobs_leave_one() {
        let job = Job::action("report", |ctx| async move {
            ctx.summary("first")?;
            let token = ctx.param("TOKEN")?;
            ctx.summary(format!("| result | ok |\n| token | {} |", token.expose()))?;
            let too_long = ctx.summary("x".repeat(64 * 1024 + 1)).map_err(|e| e.to_string());
            Ok(too_long.err())
        });
        let run = TestCtx::new().param("TOKEN", "s3cr3t-value").run_jobs(vec![job]).unwrap();
        assert_eq!(run.job_status("report"), Some(JobStatus::Success), "{:?}", run.message("report"));
        assert_eq!(run.summary("report"), Some("| result | ok |\n| token | *** |"));
        assert_eq!(
            run.output_json("report"),
            Some(&serde_json::json!("the summary of job report is 65537 bytes; a summary may have at most 65536"))
        );
        let outside = TestCtx::new().ctx().summary("x").map_err(|e| e.to_string());
        assert_eq!(outside, Err("ctx.summary(..) can only be called inside a job".to_owned()));
    }

    #[test]
    fn a_command_waiting_for_a_slot_says_so_in_its_jobs_log() {
        let jobs = ["a", "b"].map(|id| {
            Job::action(id, |ctx| async move {
                ctx.shell("sleep 0.3").await?;
                Ok(())
            })
        });
        let run = TestCtx::new().max_parallel(1).run_jobs(jobs.into()).unwrap();
        let waited: Vec<&str> = ["a", "b"].into_iter().filter(|id| !run.log(id).is_empty()).collect();
        assert_eq!(waited.len(), 1, "one of the two commands waits: {:?}", run.events());
        let log = run.log(waited[0]);
        assert_eq!(log, ["waiting for a free slot: --max-parallel 1 commands are running"]);
        assert_eq!([run.job_status("a"), run.job_status("b")], [Some(JobStatus::Success); 2]);
    }

    #[test]
    fn output_that_is_not_utf8_is_kept_with_replacement_characters() {
        let job = Job::action("bytes", |ctx| async move {
            let out = ctx.shell(r"printf 'a\377b\nafter\n'; printf 'err\376\n' >&2; printf tail").await?;
            Ok((out.stdout, out.stderr))
        });
        let run = TestCtx::new().run_jobs(vec![job]).unwrap();
        assert_eq!(run.job_status("bytes"), Some(JobStatus::Success), "{:?}", run.message("bytes"));
        assert_eq!(run.output_json("bytes"), Some(&serde_json::json!(["a\u{fffd}b\nafter\ntail\n", "err\u{fffd}\n"])));
        let log = run.log("bytes");
        assert!(log.contains(&"a\u{fffd}b") && log.contains(&"tail"), "{log:?}");
    }
}
