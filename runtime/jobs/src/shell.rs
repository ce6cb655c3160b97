//! The host shell engine: runs a container job's wrapper with `/bin/sh` on this machine, in
//! the job's own directory. Images are ignored (announced by [`crate::select`] when `auto` falls back to it), and so
//! are `.network()` and `.size(..)`: the job has the machine's network, CPUs and memory. The
//! first job of a build that asks for either gets a note on stderr, once per build for each
//! ([`Ignored`]). It lets pipelines with container jobs run everywhere, and is tested on its
//! own.
//!
//! A job's `HOME` is the user's: a job caching `~/.cargo/registry` or `~/.cargo/git` gets its
//! own cargo home (its `CARGO_HOME`, see `prepare`), so the user's `~/.cargo` is never restored
//! into or saved from; what a script itself does to `~` is not confined.
//!
//! A job's processes end with it. The wrapper runs in its own process group, with an
//! environment made here (the user's variables of [`crate::hostenv::HOST_JOB_VARS`], the job's own, the job script
//! protocol's: nothing else of this process, so no `MONKEYCI_SCRIPT`; a script's secret
//! values come from its secrets file, see [`crate::jobscript`]). When the job is stopped
//! the abort file is written first (so the wrapper starts no other line), then the group gets
//! SIGTERM and, after the grace period, SIGKILL. When the wrapper ends on its own, whatever
//! is left in its group (`sleep 60 &`) is ended the same way. A process that leaves the group
//! (`setsid`) escapes that.
//!
//! Every process of a job inherits its marks, [`owner::ENV_BUILD`] and [`owner::ENV_OWNER`].
//! Before its first job the engine looks for processes (of this user: others' environments
//! cannot be read) marked with an owner that is gone, and ends them: SIGTERM, then SIGKILL
//! after [`ORPHAN_GRACE`]. Only marked processes are signaled, one by one, never a whole
//! group: a leftover started with a cleared environment (`env -i`) carries no mark and is
//! not found.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::engine::{self, BoxFuture, ContainerEngine, EngineError, EngineExit, EngineJob};
use crate::hostenv;
use crate::jobscript::JobLayout;
use crate::output::ProcessOutput;
use crate::owner::{self, Owner};
use crate::procs::{self, StatFields};

/// How long a job may take to stop after SIGTERM before it is killed.
const GRACE: Duration = Duration::from_secs(5);

/// How long what a gone `monkeyci` left has to end after SIGTERM, before it is killed.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);

/// How often a process group is looked at while it is ending.
const GROUP_POLL: Duration = Duration::from_millis(20);

/// Runs jobs with the host's `/bin/sh`.
pub(crate) struct ShellEngine {
    /// Set once what a gone `monkeyci` left running was stopped, before the first job.
    orphans_stopped: tokio::sync::OnceCell<()>,
    /// The settings this engine ignores that a job of the build asked for, said once each.
    ignored: Ignored,
}

impl ShellEngine {
    pub(crate) fn new() -> ShellEngine {
        ShellEngine { orphans_stopped: tokio::sync::OnceCell::new(), ignored: Ignored::default() }
    }
}

/// The settings of a container job the shell engine ignores, `.network()` and `.size(..)`,
/// each told once per build (an engine serves one build): the first job asking for it is named.
#[derive(Default)]
struct Ignored {
    network: AtomicBool,
    size: AtomicBool,
}

impl Ignored {
    /// The notes about `job` not said yet for this build.
    fn notes(&self, job: &EngineJob) -> Vec<String> {
        let first = |told: &AtomicBool| !told.swap(true, Ordering::Relaxed);
        let mut notes = Vec::new();
        if job.network && first(&self.network) {
            notes.push(format!(
                "note: the shell engine ignores `.network()` (job `{}`): container jobs run on this machine, with \
                 its network, whether they ask for one or not",
                job.job_id
            ));
        }
        if job.cpus > 1 && first(&self.size) {
            notes.push(format!(
                "note: the shell engine ignores `.size({})` (job `{}`): container jobs run on this machine, with all \
                 its CPUs and memory",
                job.cpus, job.job_id
            ));
        }
        notes
    }
}

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
            self.orphans_stopped.get_or_init(stop_orphans).await;
            for note in self.ignored.notes(job) {
                eprintln!("{note}");
            }
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
            cmd.envs(hostenv::host_job_vars()).envs(&job.env).envs(&job.secret_env);
            cmd.envs(job.protocol_env_on_host.iter().map(|(k, v)| (k, v)));
            // Last, so the job's own variables cannot hide them.
            cmd.env(owner::ENV_BUILD, &job.build_id).env(owner::ENV_OWNER, Owner::this().to_string());
            let mut child = cmd.spawn().map_err(|source| EngineError::Spawn { program: program.clone(), source })?;
            // Declared after the child, so dropped before it: a dropped run kills the group
            // while its leader (killed by `kill_on_drop` after this) still holds the group id.
            let mut group = child.id().and_then(|pid| libc::pid_t::try_from(pid).ok()).map(ProcessGroup::new);
            let pumps = output.pump(&mut child);
            let status = wait_or_stop(&mut child, group.as_mut(), &job.root, stop).await;
            if let Some(group) = group.as_mut() {
                group.end().await;
            }
            engine::forget_secrets(&JobLayout::new(&job.root));
            let status = status?;
            let stderr = pumps.finish().await;
            Ok(EngineExit { code: status.code(), stderr })
        })
    }
}

/// Waits for the child; when `stop` turns true, writes the abort file (the wrapper starts no
/// other line), sends SIGTERM to its process group, then SIGKILL after the grace period.
async fn wait_or_stop(
    child: &mut tokio::process::Child,
    mut group: Option<&mut ProcessGroup>,
    root: &std::path::Path,
    mut stop: watch::Receiver<bool>,
) -> Result<std::process::ExitStatus, EngineError> {
    tokio::select! {
        status = child.wait() => return status.map_err(EngineError::Wait),
        _ = engine::stopped(&mut stop) => {}
    }
    engine::abort_for_stop(&JobLayout::new(root));
    if let Some(group) = group.as_deref_mut() {
        group.terminate();
    }
    match tokio::time::timeout(GRACE, child.wait()).await {
        Ok(status) => status.map_err(EngineError::Wait),
        Err(_) => {
            if let Some(group) = group {
                group.kill();
            }
            child.wait().await.map_err(EngineError::Wait)
        }
    }
}

/// A job's process group (its id is the wrapper's pid), ended with the job.
///
/// The group's id stays the job's while the wrapper is not yet reaped, or while any process is
/// left in it; once the group is empty the id could in principle name a new group, so the
/// group is looked at (from `/proc`) right before each signal, and never signaled once empty.
struct ProcessGroup {
    id: libc::pid_t,
    /// When SIGTERM was sent: SIGKILL follows after [`GRACE`].
    terminated_at: Option<Instant>,
    /// Whether it was ended: a dropped group that was not is killed.
    ended: bool,
}

impl ProcessGroup {
    fn new(id: libc::pid_t) -> ProcessGroup {
        ProcessGroup { id, terminated_at: None, ended: false }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the job's own process group has no memory effects.
        unsafe {
            libc::kill(-self.id, signal);
        }
    }

    fn terminate(&mut self) {
        self.terminated_at.get_or_insert_with(Instant::now);
        self.signal(libc::SIGTERM);
    }

    fn kill(&self) {
        self.signal(libc::SIGKILL);
    }

    /// Ends what is left in the group once its leader is gone: SIGTERM (unless it was sent
    /// already), then SIGKILL once the grace period since the SIGTERM is over; returns when
    /// the group is empty (or a moment after the SIGKILL, which cannot be resisted).
    async fn end(&mut self) {
        self.ended = true;
        if !group_alive(self.id) {
            return;
        }
        self.terminate();
        let kill_at = self.terminated_at.unwrap_or_else(Instant::now) + GRACE;
        let mut killed_at = None;
        while group_alive(self.id) {
            let now = Instant::now();
            match killed_at {
                None if now >= kill_at => {
                    self.kill();
                    killed_at = Some(now);
                }
                Some(at) if now >= at + GRACE => return,
                _ => {}
            }
            tokio::time::sleep(GROUP_POLL).await;
        }
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if !self.ended {
            self.kill();
        }
    }
}

/// Whether process group `id` still has a process that is not a zombie (an orphaned zombie
/// waits for whoever adopts it, and needs no signal).
fn group_alive(id: libc::pid_t) -> bool {
    // SAFETY: signal 0 only checks that the group exists; no memory effects.
    if unsafe { libc::kill(-id, 0) } != 0 {
        return false;
    }
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    procs::pids().into_iter().any(|pid| StatFields::of(pid).is_some_and(|f| f.pgrp == id && f.state != 'Z'))
}

/// Ends the processes of jobs whose `monkeyci` is gone (see the module docs) and says so on
/// stderr, once per build.
async fn stop_orphans() {
    let stopped = tokio::task::spawn_blocking(|| {
        let orphans: Vec<(libc::pid_t, String, Owner)> = procs::pids()
            .into_iter()
            .filter_map(|pid| {
                let (build, owner) = marks_of(pid)?;
                let alive = StatFields::of(pid).is_some_and(|f| f.state != 'Z');
                (alive && owner.is_gone()).then_some((pid, build, owner))
            })
            .collect();
        if orphans.is_empty() {
            return BTreeMap::new();
        }
        let still_marked = |(pid, build, owner): &&(libc::pid_t, String, Owner)| {
            marks_of(*pid).is_some_and(|m| m == (build.clone(), owner.clone()))
        };
        let signal = |pid: libc::pid_t, signal: libc::c_int| {
            // SAFETY: kill(2) on a process that carries a gone owner's marks; no memory effects.
            unsafe {
                libc::kill(pid, signal);
            }
        };
        for orphan in orphans.iter().filter(still_marked) {
            signal(orphan.0, libc::SIGTERM);
        }
        let kill_at = std::time::Instant::now() + ORPHAN_GRACE;
        let running = |pid: libc::pid_t| StatFields::of(pid).is_some_and(|f| f.state != 'Z');
        while orphans.iter().any(|o| running(o.0)) && std::time::Instant::now() < kill_at {
            std::thread::sleep(GROUP_POLL);
        }
        for orphan in orphans.iter().filter(|o| running(o.0)).filter(still_marked) {
            signal(orphan.0, libc::SIGKILL);
        }
        let mut stopped: BTreeMap<String, (libc::pid_t, usize)> = BTreeMap::new();
        for (_, build, owner) in &orphans {
            stopped.entry(build.clone()).or_insert((owner.pid(), 0)).1 += 1;
        }
        stopped
    })
    .await
    .unwrap_or_default();
    owner::report_stopped(&stopped, "process", "processes");
}

/// The marks of process `pid` (its build and owner), if it is a job's and this user may read
/// its environment.
fn marks_of(pid: libc::pid_t) -> Option<(String, Owner)> {
    let environ = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    let value = |name: &str| {
        let prefix = format!("{name}=");
        environ
            .split(|b| *b == 0)
            .find_map(|var| var.strip_prefix(prefix.as_bytes()).map(|v| String::from_utf8_lossy(v).into_owned()))
    };
    Some((value(owner::ENV_BUILD)?, Owner::parse(&value(owner::ENV_OWNER)?)?))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;
    use std::sync::Arc;

    use monkeyci_protocol::Masker;
    use tokio::sync::mpsc;

    use super::*;
    use crate::jobscript::{EXIT_ABORTED, JobLayout};
    use crate::output::JobEvents;

    /// A started job in `dir` running `lines`; with `command`, run that instead of the wrapper
    /// (the wrapper's path is appended to it).
    fn job(dir: &Path, lines: &[&str], command: &[&str]) -> (EngineJob, JobLayout) {
        let layout = JobLayout::new(dir.join("job"));
        layout.write_script(lines).unwrap();
        layout.signal_start().unwrap();
        let env = layout.env(None).unwrap();
        let mut command: Vec<String> = command.iter().map(|s| s.to_string()).collect();
        if !command.is_empty() {
            command.push(layout.wrapper().to_string_lossy().into_owned());
        }
        let job = EngineJob {
            name: "monkeyci-b1-j-1".into(),
            job_id: "j".into(),
            build_id: "b1".into(),
            image: "ignored".into(),
            root: layout.root().to_owned(),
            wrapper_in_root: "script/job.sh".into(),
            wrapper_on_host: layout.wrapper(),
            work_dir_on_host: layout.work_root(),
            work_dir_in_container: "/monkeyci/work".into(),
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            protocol_env_on_host: env.iter().map(|(k, v)| (k.to_string(), v.to_string_lossy().into_owned())).collect(),
            protocol_env_in_container: Vec::new(),
            command,
            cpus: 1,
            memory_gib: 1,
            network: false,
        };
        (job, layout)
    }

    fn output() -> ProcessOutput {
        // Nobody reads: the output is dropped, and the job never waits for room.
        let (tx, _) = mpsc::channel(16);
        let masker = Arc::new(Masker::new(std::iter::empty::<&str>()));
        ProcessOutput::new(JobEvents::new("j".into(), masker, tx, watch::channel(None).1))
    }

    /// Whether `pid` (read from `file`) is still running (a zombie is not).
    fn running(file: &Path) -> bool {
        let pid: libc::pid_t = std::fs::read_to_string(file).unwrap().trim().parse().unwrap();
        StatFields::of(pid).is_some_and(|f| f.state != 'Z')
    }

    async fn wait_for(path: &Path) {
        for _ in 0..500 {
            if path.exists() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{} never appeared", path.display());
    }

    /// Issue 10: `.network()` and `.size(..)` mean nothing on the shell engine: the first job
    /// of the build asking for each is named once, and no other job after it.
    #[test]
    fn ignored_network_and_size_are_told_once_per_build() {
        let dir = tempfile::tempdir().unwrap();
        let (plain, _) = job(dir.path(), &["true"], &[]);
        let networked = EngineJob { job_id: "fetch".into(), network: true, ..plain.clone() };
        let big = EngineJob { job_id: "build".into(), cpus: 4, memory_gib: 8, ..plain.clone() };
        let both = EngineJob { job_id: "both".into(), network: true, cpus: 2, ..plain.clone() };

        let ignored = Ignored::default();
        assert!(ignored.notes(&plain).is_empty());
        let notes = ignored.notes(&networked);
        assert_eq!(notes.len(), 1);
        assert!(notes[0].starts_with("note: the shell engine ignores `.network()` (job `fetch`): "), "{notes:?}");
        assert_eq!(
            ignored.notes(&big),
            ["note: the shell engine ignores `.size(4)` (job `build`): container jobs \
            run on this machine, with all its CPUs and memory"]
        );
        assert!(ignored.notes(&both).is_empty() && ignored.notes(&networked).is_empty());
        // Another build, another engine: told again.
        assert_eq!(Ignored::default().notes(&both).len(), 2);
    }

    #[tokio::test]
    async fn what_a_finished_job_left_running_is_ended() {
        let dir = tempfile::tempdir().unwrap();
        let (job, layout) = job(dir.path(), &["sleep 51 & echo $! > bg.pid"], &[]);
        let (_stop_tx, stop) = watch::channel(false);
        let began = std::time::Instant::now();
        let exit = ShellEngine::new().run(&job, output(), stop).await.unwrap();
        assert_eq!(exit.code, Some(0), "{}", exit.stderr);
        assert!(!running(&layout.work_root().join("bg.pid")), "the background sleep outlived its job");
        assert!(began.elapsed() < GRACE, "a sleep ends on SIGTERM: took {:?}", began.elapsed());
    }

    #[tokio::test]
    async fn a_job_ignoring_sigterm_is_killed_after_the_grace() {
        let dir = tempfile::tempdir().unwrap();
        let line = "trap '' TERM; sleep 52 & echo $! > bg.pid; touch started; wait";
        let (job, layout) = job(dir.path(), &[line], &[]);
        let (stop_tx, stop) = watch::channel(false);
        let run = tokio::spawn(async move { ShellEngine::new().run(&job, output(), stop).await.map(|e| e.code) });
        wait_for(&layout.work_root().join("started")).await;
        let stopped_at = std::time::Instant::now();
        stop_tx.send_replace(true);
        let code = run.await.unwrap().unwrap();
        assert!(!running(&layout.work_root().join("bg.pid")), "a sleep ignoring SIGTERM outlived its job");
        let took = stopped_at.elapsed();
        assert!((GRACE..GRACE + Duration::from_secs(3)).contains(&took), "took {took:?} (code {code:?})");
    }

    /// The wrapper here ignores SIGTERM (as it does when started with it ignored), so only the
    /// abort file written on the stop keeps it from starting its next line.
    #[tokio::test]
    async fn a_stopped_wrapper_starts_no_other_line() {
        let dir = tempfile::tempdir().unwrap();
        let ignoring_term = ["/bin/sh", "-c", "trap '' TERM; exec /bin/sh \"$1\"", "sh"];
        let (job, layout) = job(dir.path(), &["touch started; sleep 1", "touch after-stop"], &ignoring_term);
        let (stop_tx, stop) = watch::channel(false);
        let run = tokio::spawn(async move { ShellEngine::new().run(&job, output(), stop).await.map(|e| e.code) });
        wait_for(&layout.work_root().join("started")).await;
        stop_tx.send_replace(true);
        let code = run.await.unwrap().unwrap();
        assert!(!layout.work_root().join("after-stop").exists(), "a line started after the stop");
        assert_eq!(code, Some(EXIT_ABORTED));
        let events = std::fs::read_to_string(layout.events()).unwrap();
        assert!(
            events.ends_with("{\"type\":\"container/script-end\",\"status\":\"aborted\",\"exit\":125}\n"),
            "{events}"
        );
    }
}
