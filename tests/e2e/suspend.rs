//! Suspension end to end: with `--suspend always|auto`, the pipeline process exits while only
//! container jobs run (`script/suspended`) and is relaunched from its journal when one of them
//! ends (`script/resumed`), once per container in a chain; a script killed by a signal is
//! resumed the same way; a job declared `idempotent = false` never runs twice (no suspension
//! under it, a failure instead of a re-run after a crash); a large output is journaled by
//! reference to the blob store; a binary that changed while the build was suspended is refused.
//!
//! The tests look at the process table (`/proc`) for the pipeline binary
//! (`$MONKEYCI_CACHE_DIR/bin/<hash>/<package>`), and count how often each job's code ran by the
//! lines it appends to a log file outside the checkout. Container jobs show they run through
//! marker files in their own directory (`jobs/<job>-1/`, `$MONKEYCI_ROOT` inside, which podman
//! containers see too; not in `work/`, which goes when the job ends).
//! Each test runs on the shell engine, and on podman where it and the test images are here.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use monkeyci_protocol::{BuildStatus, Event, EventKind, JobStatus, JournalRecord};

use crate::util::{
    BUSYBOX, MonkeyciCommand, Output, TestRepo, builds_dir, count, engines, file_in_new_build, lines_of,
    noting_prelude, run_on,
};

/// The processes running the pipeline binary of `package` (`.../bin/<hash>/<package>`, as the
/// controller starts it), with the binary's path.
fn script_processes(package: &str) -> Vec<(u32, PathBuf)> {
    let is_script = |path: &Path| {
        path.file_name().is_some_and(|name| name == package)
            && path.parent().and_then(Path::parent).and_then(Path::file_name).is_some_and(|dir| dir == "bin")
    };
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        // The executable (" (deleted)" once the file was replaced), else the program as started.
        let exe = std::fs::read_link(entry.path().join("exe")).ok().map(|exe| {
            let exe = exe.to_string_lossy();
            PathBuf::from(exe.strip_suffix(" (deleted)").unwrap_or(&exe))
        });
        let argv0 = std::fs::read(entry.path().join("cmdline")).ok().and_then(|bytes| {
            let first = bytes.split(|b| *b == 0).next()?;
            (!first.is_empty()).then(|| PathBuf::from(String::from_utf8_lossy(first).into_owned()))
        });
        if let Some(path) = [exe, argv0].into_iter().flatten().find(|path| is_script(path)) {
            found.push((pid, path));
        }
    }
    found
}

/// The newest compiled binary of `package` in the suite's cache (`bin/<hash>/<package>`).
fn cached_binary(package: &str) -> Option<PathBuf> {
    let bin = Path::new(crate::util::CACHE_DIR).join("bin");
    std::fs::read_dir(bin)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join(package))
        .filter_map(|path| Some((std::fs::metadata(&path).ok()?.modified().ok()?, path)))
        .max()
        .map(|(_, path)| path)
}

/// Sends `signal` to `pid`.
fn send_signal(pid: u32, signal: libc::c_int) {
    let pid = libc::pid_t::try_from(pid).expect("a pid fits pid_t");
    // SAFETY: kill(2) has no memory effects; the pid is the test's own pipeline script.
    unsafe {
        libc::kill(pid, signal);
    }
}

/// Finds, among the builds recorded after it was made, the one whose events mention a job
/// (unique to the test), and reads that build's events as they are written.
struct NewBuild {
    before: BTreeSet<OsString>,
    job: String,
    dir: Option<PathBuf>,
}

impl NewBuild {
    fn with_job(job: &str) -> NewBuild {
        let before = std::fs::read_dir(builds_dir()).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
        NewBuild { before, job: job.to_owned(), dir: None }
    }

    /// The events recorded so far (a line still being written is left out).
    fn events(&mut self) -> Vec<Event> {
        let parse = |path: &Path| -> Vec<Event> {
            std::fs::read_to_string(path)
                .unwrap_or_default()
                .lines()
                .filter_map(|line| serde_json::from_str::<Event>(line).ok())
                .collect()
        };
        if let Some(dir) = &self.dir {
            return parse(&dir.join("events.jsonl"));
        }
        for entry in std::fs::read_dir(builds_dir()).into_iter().flatten().flatten() {
            if self.before.contains(&entry.file_name()) {
                continue;
            }
            let events = parse(&entry.path().join("events.jsonl"));
            if events.iter().any(|e| e.kind.job_id() == Some(self.job.as_str())) {
                self.dir = Some(entry.path());
                return events;
            }
        }
        Vec::new()
    }
}

/// One look at the machine while a build runs.
struct Sample {
    at: Instant,
    /// A process runs the pipeline binary.
    script: bool,
    /// The container job touched `started` (its first line ran).
    started: bool,
    /// The container job touched `done` (its last line ran).
    done: bool,
}

/// Looks every 100 ms, from a thread, whether the pipeline binary of `package` runs and how
/// far the container job `job` got.
struct ScriptWatch {
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Vec<Sample>>,
}

impl ScriptWatch {
    fn start(package: &str, job: &str) -> ScriptWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let package = package.to_owned();
        let mut started = file_in_new_build(&format!("jobs/{job}-1/started"));
        let mut done = file_in_new_build(&format!("jobs/{job}-1/done"));
        let thread = std::thread::spawn(move || {
            let mut samples = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                // Markers first: a script seen after `done` is then never counted as running
                // inside the window.
                let (started, done) = (started(), done());
                let script = !script_processes(&package).is_empty();
                samples.push(Sample { at: Instant::now(), script, started, done });
                std::thread::sleep(Duration::from_millis(100));
            }
            samples
        });
        ScriptWatch { stop, thread }
    }

    fn finish(self) -> Vec<Sample> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the watch thread")
    }
}

/// The samples taken while the container ran (after `started`, before `done`).
fn while_container_ran(samples: &[Sample]) -> Vec<&Sample> {
    samples.iter().filter(|s| s.started && !s.done).collect()
}

/// The longest stretch of consecutive `samples` in which no script process ran.
fn longest_without_script(samples: &[&Sample]) -> Duration {
    let mut longest = Duration::ZERO;
    let mut since: Option<Instant> = None;
    for sample in samples {
        match (sample.script, since) {
            (false, None) => since = Some(sample.at),
            (false, Some(first)) => longest = longest.max(sample.at - first),
            (true, _) => since = None,
        }
    }
    longest
}

/// Where the first event of `type_name` is.
fn position_of_type(out: &Output, type_name: &str) -> Option<usize> {
    out.events.iter().position(|e| e.kind.type_name() == type_name)
}

/// An action job before and after a five-second container job (`CONTAINER_JOB`, a name unique
/// to the test); `after` reads `before`'s typed output.
fn window_pipeline(log: &Path, container_job: &str) -> String {
    noting_prelude(log)
        + &r#"
#[job]
async fn before(ctx: &Ctx) -> Result<(u32, String)> {
    note("before")?;
    // Long enough for the test to see the script process at work.
    ctx.sleep(Duration::from_millis(500)).await;
    Ok((42, "from before".to_owned()))
}

#[job(depends_on = [before])]
fn CONTAINER_JOB(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["touch \"$MONKEYCI_ROOT/started\"", "sleep 5", "touch \"$MONKEYCI_ROOT/done\""])
}

#[job(depends_on = [before, CONTAINER_JOB])]
async fn after(ctx: &Ctx) -> Result<()> {
    let (number, text) = ctx.output::<before>()?;
    ctx.log(format!("before gave {number} and {text:?}"));
    note("after")?;
    ctx.sleep(Duration::from_millis(500)).await;
    Ok(())
}

monkeyci_sdk::main!();
"#
        .replace("CONTAINER_JOB", container_job)
        .replace("IMAGE", BUSYBOX)
}

/// What tests 1 and 2 check in either mode: the build succeeded, each action job ran once and
/// `after` read `before`'s output.
#[track_caller]
fn assert_window_build_succeeded(out: &Output, log: &Path, engine: &str) {
    out.assert_code(0);
    assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Success), "{engine}: {out:?}");
    assert_eq!(lines_of(log), ["before", "after"], "{engine}: each action job must run once; {out:?}");
    assert_eq!(out.log("after"), ["before gave 42 and \"from before\""], "{engine}: {out:?}");
    for job in ["before", "after"] {
        assert_eq!(out.status(job), Some(JobStatus::Success), "{engine} {job}: {out:?}");
        let starts = out.events_of("job/start").into_iter().filter(|e| e.kind.job_id() == Some(job)).count();
        assert_eq!(starts, 1, "{engine}: {job} must start once; {out:?}");
    }
}

#[test]
fn suspended_script_leaves_no_process_while_its_container_runs() {
    let container_job = "window_always_wait";
    let job = container_job.replace('_', "-");
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo =
            TestRepo::with_pipeline(&format!("suspend_window_always_{engine}"), &window_pipeline(&log, container_job));
        let watch = ScriptWatch::start(repo.package(), &job);
        let out = run_on(&repo, engine).args(["--suspend", "always"]).output();
        let samples = watch.finish();
        assert_window_build_succeeded(&out, &log, engine);
        assert_eq!(out.status(&job), Some(JobStatus::Success), "{engine}: {out:?}");

        // Suspended once while the container ran, then resumed once, in that order.
        assert_eq!(out.events_of("script/suspended").len(), 1, "{engine}: {out:?}");
        assert_eq!(out.events_of("script/resumed").len(), 1, "{engine}: {out:?}");
        let suspended = position_of_type(&out, "script/suspended");
        let resumed = position_of_type(&out, "script/resumed");
        assert!(suspended < resumed, "{engine}: resumed before it suspended; {out:?}");
        assert!(
            out.position("job/end", Some("before")) < suspended && resumed < out.position("job/start", Some("after")),
            "{engine}: {out:?}"
        );

        // The process table: the script ran before and after the container, and not for
        // seconds while the container ran.
        let window = while_container_ran(&samples);
        let first_started = samples.iter().position(|s| s.started).unwrap_or(samples.len());
        assert!(samples[..first_started].iter().any(|s| s.script), "{engine}: the script was never seen before");
        assert!(samples.iter().any(|s| s.done && s.script), "{engine}: the resumed script was never seen");
        let longest = longest_without_script(&window);
        assert!(
            longest >= Duration::from_secs(3),
            "{engine}: while the container ran ({} samples), the script was gone for at most {longest:?}; {out:?}",
            window.len()
        );
    }
}

#[test]
fn never_suspending_keeps_the_script_running() {
    let container_job = "window_never_wait";
    let job = container_job.replace('_', "-");
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo =
            TestRepo::with_pipeline(&format!("suspend_window_never_{engine}"), &window_pipeline(&log, container_job));
        let watch = ScriptWatch::start(repo.package(), &job);
        let out = run_on(&repo, engine).args(["--suspend", "never"]).output();
        let samples = watch.finish();
        assert_window_build_succeeded(&out, &log, engine);
        assert!(out.events_of("script/suspended").is_empty(), "{engine}: {out:?}");
        assert!(out.events_of("script/resumed").is_empty(), "{engine}: {out:?}");

        let window = while_container_ran(&samples);
        assert!(window.len() >= 20, "{engine}: the container was seen running {} times", window.len());
        let gone = window.iter().filter(|s| !s.script).count();
        assert_eq!(gone, 0, "{engine}: the script was gone {gone} of {} times the container ran", window.len());
    }
}

/// Two independent container jobs, one sleeping four seconds and one 300 ms; the tests pick
/// one with `--job`.
const AUTO_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn auto_long(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["sleep 4"])
}

#[job]
fn auto_short(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["sleep 0.3"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn auto_suspends_only_after_its_delay() {
    for engine in engines() {
        let repo = TestRepo::with_pipeline(&format!("suspend_auto_{engine}"), AUTO_PIPELINE);

        let long =
            run_on(&repo, engine).args(["--job", "auto-long", "--suspend", "auto", "--suspend-after", "1s"]).output();
        long.assert_code(0);
        assert_eq!(long.status("auto-long"), Some(JobStatus::Success), "{engine}: {long:?}");
        assert_eq!(long.events_of("script/suspended").len(), 1, "{engine}: {long:?}");
        assert_eq!(long.events_of("script/resumed").len(), 1, "{engine}: {long:?}");
        // Not before the container job had waited for its second.
        let waited = long.time_of("script/suspended").unwrap_or_default()
            - long.start_time("auto-long").unwrap_or_else(|| panic!("{engine}: no job/start; {long:?}"));
        assert!(waited >= 950, "{engine}: suspended after {waited} ms, not 1 s; {long:?}");

        // The default wait is 3 s: a 300 ms container ends first.
        let short = run_on(&repo, engine).args(["--job", "auto-short"]).output();
        short.assert_code(0);
        assert_eq!(short.status("auto-short"), Some(JobStatus::Success), "{engine}: {short:?}");
        assert!(short.events_of("script/suspended").is_empty(), "{engine}: {short:?}");
        assert!(short.events_of("script/resumed").is_empty(), "{engine}: {short:?}");
    }
}

/// `crash_a`, then `crash_b`, which takes three seconds.
fn crash_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + r#"
#[job]
async fn crash_a(_ctx: &Ctx) -> Result<()> {
    note("a")
}

#[job(depends_on = [crash_a])]
async fn crash_b(ctx: &Ctx) -> Result<()> {
    note("b-start")?;
    ctx.sleep(Duration::from_secs(3)).await;
    note("b-end")
}

monkeyci_sdk::main!();
"#
}

#[test]
fn killed_script_resumes_from_its_journal() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("suspend_crash_{engine}"), &crash_pipeline(&log));
        let package = repo.package().to_owned();
        let killed: Arc<std::sync::Mutex<Vec<u32>>> = Arc::default();
        let kills = Arc::clone(&killed);
        let mut build = NewBuild::with_job("crash-a");
        let mut last_look = Instant::now() - Duration::from_secs(1);
        let watched_log = log.clone();
        // Once `crash_b` runs and the controller has `crash_a`'s end in the journal: kill -9.
        let out = run_on(&repo, engine)
            .interrupt_when(move || {
                if !kills.lock().unwrap().is_empty() || last_look.elapsed() < Duration::from_millis(20) {
                    return false;
                }
                last_look = Instant::now();
                if count(&lines_of(&watched_log), "b-start") == 0 {
                    return false;
                }
                let a_journaled = build.events().iter().any(|e| {
                    matches!(&e.kind, EventKind::JournalRecord { entry }
                        if entry.job_id == "crash-a" && matches!(entry.record, JournalRecord::JobEnd { .. }))
                });
                if a_journaled {
                    for (pid, _) in script_processes(&package) {
                        send_signal(pid, libc::SIGKILL);
                        kills.lock().unwrap().push(pid);
                    }
                }
                false
            })
            .output();
        let killed = killed.lock().unwrap().clone();
        assert_eq!(killed.len(), 1, "{engine}: one script process must have been killed: {killed:?}; {out:?}");

        out.assert_code(0);
        assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Success), "{engine}: {out:?}");
        let lines = lines_of(&log);
        assert_eq!(count(&lines, "a"), 1, "{engine}: {lines:?}; {out:?}");
        assert!((1..=2).contains(&count(&lines, "b-start")), "{engine}: {lines:?}; {out:?}");
        assert_eq!(count(&lines, "b-end"), 1, "{engine}: {lines:?}; {out:?}");
        assert_eq!(out.status("crash-b"), Some(JobStatus::Success), "{engine}: {out:?}");
        assert_eq!(out.events_of("script/resumed").len(), 1, "{engine}: {out:?}");
        // The controller says why the script ran again (a line of the script's stderr, which
        // the plain renderer shows on stdout as `[script] ! ...`).
        let said = format!("{}{}", out.stdout, out.stderr);
        assert!(said.contains("resuming it from its journal"), "{engine}: {out:?}");
    }
}

/// A job declared `idempotent = false` (`nonidem-deploy`) after an ordinary one: it waits
/// for a two-second container inside, then sleeps three seconds.
fn non_idempotent_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + &r#"
#[job(id = "nonidem-first")]
async fn first(_ctx: &Ctx) -> Result<()> {
    note("first")
}

#[job(id = "nonidem-deploy", depends_on = [first], idempotent = false)]
async fn deploy(ctx: &Ctx) -> Result<()> {
    note("deploy-start")?;
    ctx.run(container("IMAGE").script(["sleep 2"])).await?;
    note("deploy-waited")?;
    ctx.sleep(Duration::from_secs(3)).await;
    note("deploy-end")
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

/// A job declared `idempotent = false` is never re-run: the script does not suspend while it
/// waits for its container (the process stays), and when the process is killed while the job
/// runs, the resumed build fails the job with the reason instead of running it again.
#[test]
fn a_job_that_is_not_idempotent_is_never_run_twice() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("suspend_nonidem_{engine}"), &non_idempotent_pipeline(&log));

        // Left alone, it completes without suspending, though only its container runs.
        let out = run_on(&repo, engine).args(["--suspend", "always"]).output();
        out.assert_code(0);
        assert!(out.events_of("script/suspended").is_empty(), "{engine}: it must not suspend; {out:?}");
        assert_eq!(lines_of(&log), ["first", "deploy-start", "deploy-waited", "deploy-end"], "{engine}: {out:?}");
        std::fs::remove_file(&log).unwrap();

        // Killed while the job runs (after its container, with its start journaled).
        let package = repo.package().to_owned();
        let killed: Arc<std::sync::Mutex<Vec<u32>>> = Arc::default();
        let kills = Arc::clone(&killed);
        let mut build = NewBuild::with_job("nonidem-deploy");
        let watched_log = log.clone();
        let out = run_on(&repo, engine)
            .args(["--suspend", "always"])
            .interrupt_when(move || {
                if !kills.lock().unwrap().is_empty() || count(&lines_of(&watched_log), "deploy-waited") == 0 {
                    return false;
                }
                let start_journaled = build.events().iter().any(|e| {
                    matches!(&e.kind, EventKind::JournalRecord { entry }
                        if entry.job_id == "nonidem-deploy" && matches!(entry.record, JournalRecord::JobStart { .. }))
                });
                if start_journaled {
                    for (pid, _) in script_processes(&package) {
                        send_signal(pid, libc::SIGKILL);
                        kills.lock().unwrap().push(pid);
                    }
                }
                false
            })
            .output();
        assert_eq!(killed.lock().unwrap().len(), 1, "{engine}: one script process must have been killed; {out:?}");
        out.assert_code(1);
        assert_eq!(out.status("nonidem-first"), Some(JobStatus::Success), "{engine}: {out:?}");
        assert_eq!(out.status("nonidem-deploy"), Some(JobStatus::Failure), "{engine}: {out:?}");
        let message = out.message("nonidem-deploy").unwrap_or_default();
        assert!(message.contains("idempotent = false") && message.contains("not run again"), "{engine}: {message}");
        assert_eq!(lines_of(&log), ["first", "deploy-start", "deploy-waited"], "{engine}: nothing may run again");
    }
}

/// A job with an output of 300,000 characters, a container job, and a job after it reading
/// that output.
fn large_output_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + &r#"
#[job(id = "large-make")]
async fn make(_ctx: &Ctx) -> Result<String> {
    note("make")?;
    Ok("x".repeat(300_000))
}

#[job(id = "large-wait", depends_on = [make])]
fn wait(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["sleep 2"])
}

#[job(id = "large-read", depends_on = [make, wait])]
async fn read(ctx: &Ctx) -> Result<()> {
    let made = ctx.output::<make>()?;
    ctx.log(format!("{} characters, all x: {}", made.len(), made.chars().all(|c| c == 'x')));
    Ok(())
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

/// A large output is kept in the blob store, the journal holds a reference to it, and the
/// resumed script reads the whole value back.
#[test]
fn a_large_output_is_journaled_by_reference_and_replayed_whole() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let repo = TestRepo::with_pipeline("suspend_large_output", &large_output_pipeline(&log));
    let out = run_on(&repo, "shell").args(["--suspend", "always"]).output();
    out.assert_code(0);
    assert_eq!(out.events_of("script/resumed").len(), 1, "{out:?}");
    assert_eq!(out.log("large-read"), ["300000 characters, all x: true"], "{out:?}");
    assert_eq!(lines_of(&log), ["make"], "{out:?}");
    let stored: Vec<(String, u64)> = out
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::JournalRecord { entry } if entry.job_id == "large-make" => match &entry.record {
                JournalRecord::Stored { key, bytes } => Some((key.clone(), *bytes)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1, "the job's end must be journaled by reference: {stored:?}");
    assert!(stored[0].1 > 300_000, "{stored:?}");
    let blob = Path::new(crate::util::CACHE_DIR).join("blobs").join(&stored[0].0);
    assert!(blob.is_file(), "the record is in the blob store at {}", blob.display());
    let events_file = std::fs::read_to_string(out.build_dir().join("events.jsonl")).unwrap();
    assert!(events_file.len() < 100_000, "the build record keeps the reference, not the value");
}

/// Two container jobs one after the other, then an action job: the script suspends twice.
fn chain_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + &r#"
#[job(id = "chain-first")]
fn first(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["sleep 1"])
}

#[job(id = "chain-second", depends_on = [first])]
fn second(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["sleep 1"])
}

#[job(id = "chain-last", depends_on = [second])]
async fn last(_ctx: &Ctx) -> Result<()> {
    note("last")
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

/// A build goes through as many suspensions and resumes as its containers need.
#[test]
fn a_script_suspends_and_resumes_once_per_container_in_a_chain() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("suspend_chain_{engine}"), &chain_pipeline(&log));
        let out = run_on(&repo, engine).args(["--suspend", "always"]).output();
        out.assert_code(0);
        assert_eq!(out.events_of("script/suspended").len(), 2, "{engine}: {out:?}");
        assert_eq!(out.events_of("script/resumed").len(), 2, "{engine}: {out:?}");
        assert_eq!(out.status("chain-last"), Some(JobStatus::Success), "{engine}: {out:?}");
        assert_eq!(lines_of(&log), ["last"], "{engine}: {out:?}");
        // The record tells it afterwards.
        let logs = MonkeyciCommand::new(["build", "logs", &out.build_id()]).current_dir(repo.path()).output();
        logs.assert_code(0);
        logs.assert_stdout_contains("build success\nthe script suspended 2 times while containers ran");
    }
}

const PAIR_PIPELINE: &str = r#"
#[job]
fn pair_left(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["sleep 3"])
}

#[job]
fn pair_right(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["sleep 3"])
}

#[job(depends_on = [pair_left, pair_right])]
async fn pair_joined(_ctx: &Ctx) -> Result<()> {
    note("joined")
}

monkeyci_sdk::main!();
"#;

#[test]
fn two_parallel_containers_and_their_dependent_across_a_suspension() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("suspend_pair_{engine}"), &(noting_prelude(&log) + PAIR_PIPELINE));
        let out = run_on(&repo, engine).args(["--suspend", "always", "--max-parallel", "2"]).output();
        out.assert_code(0);
        for job in ["pair-left", "pair-right", "pair-joined"] {
            assert_eq!(out.status(job), Some(JobStatus::Success), "{engine} {job}: {out:?}");
        }

        // Both containers ran at once, each started once.
        let starts: Vec<u64> = out.events_of("container/start").iter().map(|e| e.time).collect();
        let ends: Vec<u64> = out.events_of("container/end").iter().map(|e| e.time).collect();
        assert_eq!((starts.len(), ends.len()), (2, 2), "{engine}: {out:?}");
        assert!(starts.iter().all(|s| ends.iter().all(|e| s < e)), "{engine}: not concurrent; {out:?}");

        // The script suspended while both ran; it is resumed once when both end together, or
        // once per container when they end apart (and then suspends again in between).
        let suspensions = out.events_of("script/suspended").len();
        let resumes = out.events_of("script/resumed").len();
        assert!((1..=2).contains(&resumes), "{engine}: {resumes} resumes; {out:?}");
        assert_eq!(suspensions, resumes, "{engine}: each suspension is followed by one resume; {out:?}");
        let first_suspended = position_of_type(&out, "script/suspended");
        let first_container_end = position_of_type(&out, "container/end");
        assert!(first_suspended < first_container_end, "{engine}: it did not suspend while both ran; {out:?}");

        // The dependent ran once, after both.
        assert_eq!(lines_of(&log), ["joined"], "{engine}: {out:?}");
        let joined_start = out.position("job/start", Some("pair-joined"));
        for job in ["pair-left", "pair-right"] {
            let end = out
                .events
                .iter()
                .position(|e| matches!(&e.kind, EventKind::ContainerEnd { job_id, .. } if job_id == job));
            assert!(end.is_some() && end < joined_start, "{engine}: pair-joined started before {job} ended; {out:?}");
        }
    }
}

/// `--suspend always` with a five-second container between two action jobs; the test
/// replaces the pipeline binary while the build is suspended.
fn changed_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + &r#"
#[job]
async fn changed_before(ctx: &Ctx) -> Result<()> {
    note("before")?;
    // Long enough for the test to see the script process at work.
    ctx.sleep(Duration::from_millis(500)).await;
    Ok(())
}

#[job(depends_on = [changed_before])]
fn changed_wait(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["sleep 5"])
}

#[job(depends_on = [changed_wait])]
async fn changed_after(_ctx: &Ctx) -> Result<()> {
    note("after")
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

#[test]
fn a_binary_changed_while_suspended_is_not_resumed() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("suspend_changed_{engine}"), &changed_pipeline(&log));
        let package = repo.package().to_owned();
        let replaced: Arc<std::sync::Mutex<Option<PathBuf>>> = Arc::default();
        let done = Arc::clone(&replaced);
        let mut build = NewBuild::with_job("changed-wait");
        let mut binary: Option<PathBuf> = None;
        let mut suspended_at: Option<Instant> = None;
        let mut last_look = Instant::now() - Duration::from_secs(1);
        let out = run_on(&repo, engine)
            .args(["--suspend", "always"])
            .interrupt_when(move || {
                if done.lock().unwrap().is_some() || last_look.elapsed() < Duration::from_millis(20) {
                    return false;
                }
                last_look = Instant::now();
                let running = script_processes(&package);
                if let Some((_, path)) = running.first() {
                    binary = Some(path.clone());
                    return false;
                }
                // Suspended: the script said so and is gone; a moment later, while the
                // container still sleeps, replace the binary with another program.
                // Seen running, else the newest cached binary of this pipeline.
                let Some(binary) = binary.clone().or_else(|| cached_binary(&package)) else { return false };
                if suspended_at.is_none() && build.events().iter().any(|e| e.kind.type_name() == "script/suspended") {
                    suspended_at = Some(Instant::now());
                }
                if suspended_at.is_some_and(|at| at.elapsed() >= Duration::from_millis(500)) {
                    let partial = binary.with_extension("replacing");
                    std::fs::copy("/bin/true", &partial).expect("copying /bin/true");
                    std::fs::rename(&partial, &binary).expect("replacing the pipeline binary");
                    *done.lock().unwrap() = Some(binary);
                }
                false
            })
            .output();
        let replaced = replaced.lock().unwrap().clone();
        let binary = replaced.unwrap_or_else(|| panic!("{engine}: the binary was never replaced; {out:?}"));
        let cache = Path::new(crate::util::CACHE_DIR).canonicalize().expect("the cache dir");
        let binary = binary.canonicalize().unwrap_or(binary);
        assert!(binary.starts_with(cache.join("bin")), "{engine}: replaced {}, not a cached binary", binary.display());

        out.assert_code(2);
        let (status, message) = out.build_end().unwrap_or_else(|| panic!("{engine}: no script/end; {out:?}"));
        assert_eq!(status, BuildStatus::Error, "{engine}: {out:?}");
        let message = message.unwrap_or_default();
        assert!(message.contains("changed while the build was suspended"), "{engine}: {message:?}; {out:?}");
        out.assert_stderr_contains("changed while the build was suspended");
        assert!(out.events_of("script/resumed").is_empty(), "{engine}: it must not resume; {out:?}");
        assert_eq!(lines_of(&log), ["before"], "{engine}: {out:?}");
    }
}

const LIVE_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn chatty(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["echo first-line; sleep 4; echo last-line"])
}

monkeyci_sdk::main!();
"#;

/// #9: while the script was suspended, no container output was shown or recorded until the
/// container ended (the controller did not take events while it waited). Live output must not
/// depend on whether the script is suspended.
#[test]
fn container_output_is_live_while_the_script_is_suspended() {
    let repo = TestRepo::with_pipeline("live_while_suspended", LIVE_PIPELINE);
    for engine in engines() {
        let events = tempfile::tempdir().expect("a temp dir");
        let path = events.path().join("events.jsonl");
        let seen_early = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (watched, flag) = (path.clone(), std::sync::Arc::clone(&seen_early));
        let out = MonkeyciCommand::new(["build", "run"])
            .arg(repo.path())
            .args(["--plain", "--suspend", "always", "--engine", engine, "--events"])
            .arg(&path)
            // Never interrupts: looks at what the build has recorded so far, every 10 ms.
            .interrupt_when(move || {
                let text = std::fs::read_to_string(&watched).unwrap_or_default();
                // (The job's script, in `script/start`, names both lines: look for output events.)
                let (first, last) = (r#""line":"first-line""#, r#""line":"last-line""#);
                if text.contains(first) && !text.contains(last) && text.contains("script/suspended") {
                    flag.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                false
            })
            .output();
        out.assert_code(0);
        assert!(
            seen_early.load(std::sync::atomic::Ordering::SeqCst),
            "{engine}: the first line reached the events only once the container ended; {out:?}"
        );
    }
}
