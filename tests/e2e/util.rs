//! Helpers for driving the real `monkeyci` binary: [`MonkeyciCommand`] runs it the way a user
//! would (with the suite's shared pipeline cache) and returns an [`Output`] with the exit code,
//! stdout, stderr and the parsed `--events` file; [`TestRepo`] is a temporary git repository,
//! optionally with a `.monkeyci` pipeline crate written from a given `main.rs`. For container
//! jobs: [`Output::build_dir`] finds a run's build record, [`test_images_available`] the local
//! test images, and [`assert_no_container_left`], [`processes_running`] and [`CmdlineWatch`] show
//! what a build left behind or exposed.
//!
//! Nothing here knows about particular pipelines; the test modules do.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monkeyci_protocol::{BuildStatus, Event, EventKind, JobStatus, Plan};
use tempfile::TempDir;

/// The one cache (shared cargo target dir and binary cache) of every test in the suite, so the
/// sdk compiles once per run rather than once per test.
pub const CACHE_DIR: &str = concat!(env!("CARGO_TARGET_TMPDIR"), "/pipelines");

/// The binary under test.
const MONKEYCI: &str = env!("CARGO_BIN_EXE_monkeyci");

/// How long one command may take. The first one compiles the sdk and its dependencies (about
/// 40 s on two idle cores, much more on busy ones); a hung build must still end the test.
const TIMEOUT: Duration = Duration::from_secs(900);

/// The workspace root (`/work/main` in the development checkout).
pub fn workspace_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the workspace root exists")
}

/// The sdk checkout that test pipelines depend on by path.
pub fn sdk_dir() -> PathBuf {
    workspace_dir().join("monkeyci-sdk")
}

/// The example pipeline crate `examples/<name>`.
pub fn example(name: &str) -> PathBuf {
    let dir = workspace_dir().join("examples").join(name);
    assert!(dir.join("Cargo.toml").is_file(), "no example pipeline {}", dir.display());
    dir
}

/// One invocation of `monkeyci`, built up like a [`Command`].
pub struct MonkeyciCommand {
    args: Vec<OsString>,
    envs: Vec<(OsString, Option<OsString>)>,
    current_dir: Option<PathBuf>,
    /// Holds the `--events` file when the command writes one.
    events_dir: Option<TempDir>,
    /// Send `signal` (default SIGINT, as Ctrl-C would) once this turns true (polled every 10 ms).
    interrupt_when: Option<Box<dyn FnMut() -> bool>>,
    signal: libc::c_int,
    /// What the command reads on stdin (default: nothing, as from /dev/null).
    stdin: Option<Vec<u8>>,
    /// Close the reading end of stdout at once, as `| head` does once it has enough.
    close_stdout: bool,
}

impl MonkeyciCommand {
    /// `monkeyci ARGS...`, with the suite's cache dir and nothing else set up.
    pub fn new<I, S>(args: I) -> MonkeyciCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        MonkeyciCommand {
            args: args.into_iter().map(|a| a.as_ref().to_owned()).collect(),
            envs: Vec::new(),
            current_dir: None,
            events_dir: None,
            interrupt_when: None,
            signal: libc::SIGINT,
            close_stdout: false,
            stdin: None,
        }
    }

    /// `monkeyci build run DIR --plain --events <temp file>`.
    pub fn run(dir: impl AsRef<Path>) -> MonkeyciCommand {
        let events_dir = tempfile::tempdir().expect("a temp dir for the events file");
        let mut cmd = MonkeyciCommand::new(["build", "run"]).arg(dir.as_ref()).arg("--plain").arg("--events");
        cmd = cmd.arg(events_dir.path().join("events.jsonl"));
        cmd.events_dir = Some(events_dir);
        cmd
    }

    /// `monkeyci build plan DIR`.
    pub fn plan(dir: impl AsRef<Path>) -> MonkeyciCommand {
        MonkeyciCommand::new(["build", "plan"]).arg(dir.as_ref())
    }

    /// `monkeyci build verify DIR`.
    pub fn verify(dir: impl AsRef<Path>) -> MonkeyciCommand {
        MonkeyciCommand::new(["build", "verify"]).arg(dir.as_ref())
    }

    /// `monkeyci build test DIR`.
    pub fn test(dir: impl AsRef<Path>) -> MonkeyciCommand {
        MonkeyciCommand::new(["build", "test"]).arg(dir.as_ref())
    }

    /// `monkeyci init DIR`.
    pub fn init(dir: impl AsRef<Path>) -> MonkeyciCommand {
        MonkeyciCommand::new(["init"]).arg(dir.as_ref())
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> MonkeyciCommand {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    pub fn args<I, S>(mut self, args: I) -> MonkeyciCommand
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> MonkeyciCommand {
        self.envs.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    pub fn env_remove(mut self, key: impl AsRef<OsStr>) -> MonkeyciCommand {
        self.envs.push((key.as_ref().to_owned(), None));
        self
    }

    pub fn current_dir(mut self, dir: impl AsRef<Path>) -> MonkeyciCommand {
        self.current_dir = Some(dir.as_ref().to_owned());
        self
    }

    /// Gives the command `text` to read on stdin, then its end.
    pub fn stdin(mut self, text: &str) -> MonkeyciCommand {
        self.stdin = Some(text.as_bytes().to_vec());
        self
    }

    /// Sends the process SIGINT, as Ctrl-C would, once `marker` exists.
    pub fn interrupt_when_exists(self, marker: impl AsRef<Path>) -> MonkeyciCommand {
        let marker = marker.as_ref().to_owned();
        self.interrupt_when(move || marker.exists())
    }

    /// Sends the process SIGINT, as Ctrl-C would, once `condition` turns true (it is polled
    /// every 10 ms while the command runs).
    pub fn interrupt_when(mut self, condition: impl FnMut() -> bool + 'static) -> MonkeyciCommand {
        self.interrupt_when = Some(Box::new(condition));
        self
    }

    /// Closes the reading end of the command's stdout at once (as `monkeyci ... | head` does
    /// once it read enough): its writes then fail with a broken pipe.
    pub fn close_stdout(mut self) -> MonkeyciCommand {
        self.close_stdout = true;
        self
    }

    /// Interrupts with `signal` (such as SIGTERM, as a service manager or `kill` would)
    /// instead of SIGINT.
    pub fn interrupt_with(mut self, signal: libc::c_int) -> MonkeyciCommand {
        self.signal = signal;
        self
    }

    /// Runs the command to its end and collects what it did.
    pub fn output(mut self) -> Output {
        let mut cmd = Command::new(MONKEYCI);
        cmd.args(&self.args)
            .env("MONKEYCI_CACHE_DIR", CACHE_DIR)
            // Tests read their build's record after it ended, while others build: the shared
            // cache keeps them all (pruning has its own test, on a cache of its own).
            .env("MONKEYCI_KEEP_BUILDS", "0")
            // Whatever the developer's shell has must not change what the tests see.
            .env_remove("MONKEYCI_SDK_PATH")
            .env_remove("MONKEYCI_SCRIPT")
            .env("NO_COLOR", "1")
            .stdin(if self.stdin.is_some() { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.envs {
            match value {
                Some(value) => cmd.env(key, value),
                None => cmd.env_remove(key),
            };
        }
        if let Some(dir) = &self.current_dir {
            cmd.current_dir(dir);
        }
        let description = self.description();
        let started = Instant::now();
        let mut child = cmd.spawn().unwrap_or_else(|err| panic!("cannot start {description}: {err}"));
        if let (Some(text), Some(mut stdin)) = (self.stdin.take(), child.stdin.take()) {
            // From a thread: the command may read it slowly; dropping it closes the pipe.
            std::thread::spawn(move || {
                let _ = std::io::Write::write_all(&mut stdin, &text);
            });
        }
        let stdout = child.stdout.take().expect("stdout is piped");
        let stdout = if self.close_stdout {
            drop(stdout);
            std::thread::spawn(String::new)
        } else {
            read_in_background(stdout)
        };
        let stderr = read_in_background(child.stderr.take().expect("stderr is piped"));
        let mut interrupt_when = self.interrupt_when.take();
        let status = loop {
            if let Some(status) = child.try_wait().expect("waiting for monkeyci") {
                break status;
            }
            if interrupt_when.as_mut().is_some_and(|condition| condition()) {
                interrupt_when = None;
                let pid = libc::pid_t::try_from(child.id()).expect("a pid fits pid_t");
                // SAFETY: kill(2) only sends a signal to the child we started.
                unsafe {
                    libc::kill(pid, self.signal);
                }
            }
            if started.elapsed() > TIMEOUT {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "{description} still ran after {TIMEOUT:?}; killed it\n--- stdout\n{}\n--- stderr\n{}",
                    stdout.join().unwrap_or_default(),
                    stderr.join().unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let elapsed = started.elapsed();
        let stdout = stdout.join().expect("reading stdout");
        let stderr = stderr.join().expect("reading stderr");
        let (events_text, events) = match &self.events_dir {
            Some(dir) => read_events(&dir.path().join("events.jsonl"), &description),
            None => (String::new(), Vec::new()),
        };
        Output { description, code: status.code(), stdout, stderr, events_text, events, elapsed }
    }

    fn description(&self) -> String {
        let args: Vec<_> = self.args.iter().map(|a| a.to_string_lossy()).collect();
        format!("`monkeyci {}`", args.join(" "))
    }
}

fn read_in_background(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// The events file as text and as events; no file (the command failed before it ran
/// anything) is no events. A line that is not an event fails the test.
fn read_events(path: &Path, description: &str) -> (String, Vec<Event>) {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return (String::new(), Vec::new()),
        Err(err) => panic!("cannot read the events file of {description}: {err}"),
    };
    let events = text
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            serde_json::from_str::<Event>(line)
                .unwrap_or_else(|err| panic!("{description} wrote an event line that does not parse ({err}): {line}"))
        })
        .collect();
    (text, events)
}

/// What one `monkeyci` command did.
pub struct Output {
    description: String,
    /// The exit code (`None`: killed by a signal).
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    /// The `--events` file as written.
    pub events_text: String,
    /// The `--events` file, parsed.
    pub events: Vec<Event>,
    /// How long the command took.
    pub elapsed: Duration,
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} exited with {:?} after {:?}", self.description, self.code, self.elapsed)?;
        writeln!(f, "--- stdout\n{}", self.stdout)?;
        writeln!(f, "--- stderr\n{}", self.stderr)?;
        writeln!(f, "--- events\n{}", self.events_text)
    }
}

impl Output {
    /// Fails the test, showing everything the command printed, unless it exited with `code`.
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Output {
        assert_eq!(self.code, Some(code), "unexpected exit code; {self:?}");
        self
    }

    /// Fails the test unless stdout contains `text`.
    #[track_caller]
    pub fn assert_stdout_contains(&self, text: &str) -> &Output {
        assert!(self.stdout.contains(text), "stdout lacks {text:?}; {self:?}");
        self
    }

    /// Fails the test unless stderr contains `text`.
    #[track_caller]
    pub fn assert_stderr_contains(&self, text: &str) -> &Output {
        assert!(self.stderr.contains(text), "stderr lacks {text:?}; {self:?}");
        self
    }

    /// Whether cargo was run to build the pipeline.
    pub fn compiled(&self) -> bool {
        self.stderr.contains("compiling pipeline")
    }

    /// The events of one type (`"job/start"`), in order.
    pub fn events_of(&self, type_name: &str) -> Vec<&Event> {
        self.events.iter().filter(|e| e.kind.type_name() == type_name).collect()
    }

    /// Where the first event of `type_name` about `job` is in the stream.
    pub fn position(&self, type_name: &str, job: Option<&str>) -> Option<usize> {
        self.events.iter().position(|e| e.kind.type_name() == type_name && e.kind.job_id() == job)
    }

    /// The ids of the jobs that started (their first attempt), in start order.
    pub fn started_jobs(&self) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JobStart { job_id, attempt: 1 } => Some(job_id.as_str()),
                _ => None,
            })
            .collect()
    }

    /// How every job ended: its `job/end` status, or `Skipped` for a `job/skipped` job.
    pub fn statuses(&self) -> BTreeMap<&str, JobStatus> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JobEnd { job_id, status, .. } => Some((job_id.as_str(), *status)),
                EventKind::JobSkipped { job_id, .. } => Some((job_id.as_str(), JobStatus::Skipped)),
                _ => None,
            })
            .collect()
    }

    /// How `job` ended.
    pub fn status(&self, job: &str) -> Option<JobStatus> {
        self.statuses().get(job).copied()
    }

    /// The message of `job`'s `job/end` event.
    pub fn message(&self, job: &str) -> Option<&str> {
        self.events.iter().rev().find_map(|e| match &e.kind {
            EventKind::JobEnd { job_id, message, .. } if job_id == job => message.as_deref(),
            _ => None,
        })
    }

    /// Why `job` was skipped.
    pub fn skip_reason(&self, job: &str) -> Option<&str> {
        self.events.iter().find_map(|e| match &e.kind {
            EventKind::JobSkipped { job_id, reason } if job_id == job => Some(reason.as_str()),
            _ => None,
        })
    }

    /// The lines `job` logged (`job/output`), in order.
    pub fn log(&self, job: &str) -> Vec<&str> {
        self.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JobOutput { job_id, line, .. } if job_id == job => Some(line.as_str()),
                _ => None,
            })
            .collect()
    }

    /// When `job`'s first attempt started (ms since the epoch).
    pub fn start_time(&self, job: &str) -> Option<u64> {
        self.events.iter().find_map(|e| match &e.kind {
            EventKind::JobStart { job_id, .. } if job_id == job => Some(e.time),
            _ => None,
        })
    }

    /// When `job` ended (ms since the epoch).
    pub fn end_time(&self, job: &str) -> Option<u64> {
        self.events.iter().find_map(|e| match &e.kind {
            EventKind::JobEnd { job_id, .. } if job_id == job => Some(e.time),
            _ => None,
        })
    }

    /// The status and message of the `script/end` event.
    pub fn build_end(&self) -> Option<(BuildStatus, Option<&str>)> {
        self.events.iter().find_map(|e| match &e.kind {
            EventKind::ScriptEnd { status, message } => Some((*status, message.as_deref())),
            _ => None,
        })
    }

    /// The time of the first event of `type_name`.
    pub fn time_of(&self, type_name: &str) -> Option<u64> {
        self.events.iter().find(|e| e.kind.type_name() == type_name).map(|e| e.time)
    }

    /// Stdout parsed as a JSON plan (`build plan --format json`).
    #[track_caller]
    pub fn plan(&self) -> Plan {
        serde_json::from_str(&self.stdout).unwrap_or_else(|err| panic!("stdout is not a JSON plan ({err}); {self:?}"))
    }

    /// This run's build record, `$MONKEYCI_CACHE_DIR/builds/<build id>/`: the one whose
    /// `events.jsonl` is this run's `--events` file (the newest build may be another test's).
    #[track_caller]
    pub fn build_dir(&self) -> PathBuf {
        assert!(
            !self.events_text.is_empty(),
            "{} wrote no events, so it has no build record; {self:?}",
            self.description
        );
        let len = self.events_text.len() as u64;
        let found =
            std::fs::read_dir(builds_dir()).into_iter().flatten().flatten().map(|entry| entry.path()).find(|dir| {
                let events = dir.join("events.jsonl");
                std::fs::metadata(&events).is_ok_and(|m| m.len() == len)
                    && std::fs::read_to_string(&events).is_ok_and(|text| text == self.events_text)
            });
        found.unwrap_or_else(|| {
            panic!("no build record in {} holds this run's events; {self:?}", builds_dir().display())
        })
    }

    /// This run's build id (the name of [`Output::build_dir`]).
    #[track_caller]
    pub fn build_id(&self) -> String {
        self.build_dir().file_name().expect("a build dir has a name").to_string_lossy().into_owned()
    }
}

/// A temporary git repository (branch `main`, one commit), optionally with a pipeline crate in
/// `.monkeyci`. Removed when dropped.
pub struct TestRepo {
    dir: TempDir,
    package: String,
}

impl TestRepo {
    /// A git repository with a README and no pipeline; `name` makes its pipeline's package
    /// name (`e2e-<name>`) unique in the shared target dir.
    pub fn new(name: &str) -> TestRepo {
        let repo = TestRepo::plain_dir(name);
        repo.git(&["init", "-q", "-b", "main"]);
        repo.git(&["config", "user.name", "MonkeyCI e2e"]);
        repo.git(&["config", "user.email", "e2e@monkeyci.invalid"]);
        repo.git(&["config", "commit.gpgsign", "false"]);
        repo.write("README.md", "# A test repository\n");
        repo.commit("initial commit");
        repo
    }

    /// Like [`TestRepo::with_pipeline`], with the pipeline's package called `package` (as
    /// `monkeyci init` calls every pipeline `pipeline`).
    pub fn with_pipeline_package(name: &str, package: &str, main_rs: &str) -> TestRepo {
        let mut repo = TestRepo::new(name);
        repo.package = package.to_owned();
        repo.write_pipeline_crate(main_rs);
        repo.commit("add the pipeline");
        repo
    }

    /// A git repository whose pipeline's `src/main.rs` is `main_rs`, everything committed.
    pub fn with_pipeline(name: &str, main_rs: &str) -> TestRepo {
        let repo = TestRepo::new(name);
        repo.write_pipeline_crate(main_rs);
        repo.commit("add the pipeline");
        repo
    }

    /// A directory that is not a git repository, with a pipeline crate.
    pub fn without_git(name: &str, main_rs: &str) -> TestRepo {
        let repo = TestRepo::plain_dir(name);
        repo.write_pipeline_crate(main_rs);
        repo
    }

    fn plain_dir(name: &str) -> TestRepo {
        let dir = tempfile::Builder::new().prefix(&format!("monkeyci-e2e-{name}-")).tempdir().expect("a temp dir");
        let package = format!("e2e-{}", name.replace('_', "-"));
        TestRepo { dir, package }
    }

    /// `.monkeyci/`: a crate depending on the sdk checkout by path, with the workspace's lock
    /// file (same dependency versions, no registry access, the compiled sdk is reused), in
    /// its own workspace.
    fn write_pipeline_crate(&self, main_rs: &str) {
        let manifest = format!(
            "[package]\nname = \"{}\"\nversion = \"0.1.0\"\nedition = \"2024\"\npublish = false\n\n\
             [dependencies]\nmonkeyci-sdk = {{ path = {:?} }}\n\n[workspace]\n",
            self.package,
            sdk_dir().to_str().expect("the sdk path is UTF-8"),
        );
        self.write(".monkeyci/Cargo.toml", &manifest);
        let lock = std::fs::read_to_string(workspace_dir().join("Cargo.lock")).expect("the workspace's Cargo.lock");
        self.write(".monkeyci/Cargo.lock", &lock);
        self.write(".monkeyci/src/main.rs", main_rs);
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The pipeline's package name.
    pub fn package(&self) -> &str {
        &self.package
    }

    /// Writes `contents` to `rel` (creating directories).
    pub fn write(&self, rel: &str, contents: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a file has a parent")).expect("creating directories");
        std::fs::write(&path, contents).unwrap_or_else(|err| panic!("cannot write {}: {err}", path.display()));
    }

    pub fn remove(&self, rel: &str) {
        std::fs::remove_file(self.path().join(rel)).unwrap_or_else(|err| panic!("cannot remove {rel}: {err}"));
    }

    /// Replaces the pipeline's `src/main.rs`.
    pub fn write_main_rs(&self, main_rs: &str) {
        self.write(".monkeyci/src/main.rs", main_rs);
    }

    /// Runs git in the repository and returns its stdout; fails the test if git fails.
    pub fn git(&self, args: &[&str]) -> String {
        let out = Command::new("git")
            .arg("-C")
            .arg(self.path())
            .args(args)
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {} failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).trim_end().to_owned()
    }

    /// Commits everything in the working tree.
    pub fn commit(&self, message: &str) {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
    }
}

impl Drop for TestRepo {
    /// Removes the pipeline's binaries from the shared cache (`bin/<hash>/<package>`): each
    /// test repository is a new path, hence new hashes, and nothing would ever use them again.
    /// Best effort; the temp dir itself goes with `TempDir`.
    fn drop(&mut self) {
        let Ok(manifest) = std::fs::read_to_string(self.path().join(".monkeyci/Cargo.toml")) else { return };
        let Some(package) = manifest.lines().find_map(|line| {
            let value = line.strip_prefix("name")?.trim_start().strip_prefix('=')?.trim();
            Some(value.trim_matches('"').to_owned())
        }) else {
            return;
        };
        let Ok(entries) = std::fs::read_dir(Path::new(CACHE_DIR).join("bin")) else { return };
        for entry in entries.flatten() {
            if std::fs::remove_file(entry.path().join(&package)).is_ok() {
                let _ = std::fs::remove_dir(entry.path());
            }
        }
    }
}

/// Where builds are recorded: `$MONKEYCI_CACHE_DIR/builds`.
pub fn builds_dir() -> PathBuf {
    Path::new(CACHE_DIR).join("builds")
}

/// A condition for [`MonkeyciCommand::interrupt_when`]: true once a build recorded after this
/// call has the file `rel` (e.g. `jobs/<job>-1/work/started`). Build ids are not known before
/// a build starts, and older builds of the same pipeline may have the same file.
pub fn file_in_new_build(rel: &str) -> impl FnMut() -> bool + 'static {
    let names = || -> Vec<OsString> {
        std::fs::read_dir(builds_dir()).into_iter().flatten().flatten().map(|e| e.file_name()).collect()
    };
    let before: std::collections::BTreeSet<OsString> = names().into_iter().collect();
    let rel = rel.to_owned();
    move || names().iter().any(|name| !before.contains(name) && builds_dir().join(name).join(&rel).exists())
}

/// The names of all containers of `engine` (`podman` or `docker`), running or not (`ps -a`).
pub fn container_names(engine: &str) -> Vec<String> {
    let out = Command::new(engine).args(["ps", "-a", "--format", "{{.Names}}"]).output().expect("the engine runs");
    assert!(out.status.success(), "{engine} ps failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect()
}

/// Fails (after removing them) if `engine` (`podman` or `docker`) still has containers of
/// this run's build.
#[track_caller]
pub fn assert_no_container_left(engine: &str, out: &Output) {
    let build_id = out.build_id();
    let left: Vec<String> = container_names(engine).into_iter().filter(|name| name.contains(&build_id)).collect();
    for name in &left {
        let _ = Command::new(engine).args(["rm", "-f", name]).output();
    }
    assert!(left.is_empty(), "{engine} containers of build {build_id} were left behind: {left:?}; {out:?}");
}

/// The processes of this machine (pid and arguments) whose command line is exactly `argv`
/// (the program compared by file name), containers' processes included.
pub fn processes_running(argv: &[&str]) -> Vec<(u32, Vec<String>)> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = bytes
            .split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let program_matches =
            |program: &str, wanted: &str| program == wanted || program.ends_with(&format!("/{wanted}"));
        if args.len() == argv.len()
            && !args.is_empty()
            && program_matches(&args[0], argv[0])
            && args[1..].iter().zip(&argv[1..]).all(|(a, b)| a == b)
        {
            found.push((pid, args));
        }
    }
    found
}

/// Watches every process's command line, from a background thread, for a text (a secret
/// that must only ever travel through the environment).
pub struct CmdlineWatch {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(usize, Vec<String>)>,
}

impl CmdlineWatch {
    pub fn start(needle: &str) -> CmdlineWatch {
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let needle = needle.as_bytes().to_owned();
        let stopped = std::sync::Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut seen = Vec::new();
            let mut scans = 0;
            while !stopped.load(Ordering::Relaxed) {
                scans += 1;
                for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
                    let Ok(bytes) = std::fs::read(entry.path().join("cmdline")) else { continue };
                    if bytes.windows(needle.len()).any(|w| w == needle.as_slice()) {
                        let line = String::from_utf8_lossy(&bytes).replace('\0', " ");
                        if !seen.contains(&line) {
                            seen.push(line);
                        }
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (scans, seen)
        });
        CmdlineWatch { stop, thread }
    }

    /// Stops watching; returns how many times every process was scanned and the command
    /// lines that held the text.
    pub fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().expect("the watch thread")
    }
}

/// Whether podman and the suite's test images (`localhost/monkeyci-test/busybox` and
/// `.../noshell`, built from busybox by `scripts/test-images.sh`, since nothing can be pulled)
/// are here; builds the images once per run when they are missing. Like [`podman_available`],
/// a missing piece skips outside CI and fails in CI.
pub fn test_images_available() -> bool {
    static BUILT: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    if !podman_available() {
        return false;
    }
    let result = BUILT.get_or_init(|| {
        let exists =
            |image: &str| Command::new("podman").args(["image", "exists", image]).status().is_ok_and(|s| s.success());
        if exists("localhost/monkeyci-test/busybox") && exists("localhost/monkeyci-test/noshell") {
            return Ok(());
        }
        let out = Command::new("bash")
            .arg(workspace_dir().join("scripts/test-images.sh"))
            .output()
            .map_err(|err| format!("cannot run scripts/test-images.sh: {err}"))?;
        if out.status.success()
            && exists("localhost/monkeyci-test/busybox")
            && exists("localhost/monkeyci-test/noshell")
        {
            Ok(())
        } else {
            Err(format!(
                "scripts/test-images.sh did not build the test images: {}",
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    });
    match result {
        Ok(()) => true,
        Err(reason) => {
            assert!(std::env::var_os("CI").is_none(), "{reason}");
            eprintln!("skipped: {reason}");
            false
        }
    }
}

/// Whether a docker daemon answers and has the suite's test images (`scripts/test-images.sh`
/// imports them where `docker info` works). Outside CI a missing piece skips the test with a
/// visible reason; in CI it fails it: CI installs docker.io and starts dockerd.
pub fn docker_available() -> bool {
    // Asked once a run (a daemon round trip), told to every test that skips.
    static MISSING: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    available(*MISSING.get_or_init(|| {
        let answers = Command::new("docker").arg("info").stdout(Stdio::null()).stderr(Stdio::null()).status();
        if !answers.is_ok_and(|s| s.success()) {
            Some("no docker daemon answers here (CI installs docker.io and starts dockerd)")
        } else if !Command::new("docker").args(["image", "inspect", BUSYBOX]).output().is_ok_and(|o| o.status.success())
        {
            Some("docker lacks the test images: run `bash scripts/test-images.sh` with dockerd running")
        } else {
            None
        }
    }))
}

/// Whether podman can run containers here. Outside CI a missing podman skips the test with a
/// visible reason; in CI (`CI` set) it fails it: CI installs podman.
pub fn podman_available() -> bool {
    // Asked once a run: `podman info` looks up its components' packages (dpkg-query), which
    // took 3% of the suite's CPU when every test asked.
    static MISSING: std::sync::OnceLock<Option<&'static str>> = std::sync::OnceLock::new();
    available(*MISSING.get_or_init(|| {
        let works = Command::new("podman")
            .args(["info", "--format", "{{.Host.OCIRuntime.Name}}"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        (!works).then_some("podman is not installed or does not work (CI installs it)")
    }))
}

/// Whether bubblewrap is installed (the server sandboxes builds with it); skips or fails as
/// [`podman_available`] does.
pub fn bwrap_available() -> bool {
    let found = Command::new("bwrap").arg("--version").output().is_ok_and(|o| o.status.success());
    available((!found).then_some("bubblewrap (`bwrap`) is not installed (CI installs it)"))
}

/// `true` when nothing is `missing`; else skips with the reason outside CI, and fails in CI.
fn available(missing: Option<&str>) -> bool {
    let Some(reason) = missing else { return true };
    assert!(std::env::var_os("CI").is_none(), "{reason}");
    eprintln!("skipped: {reason}");
    false
}

/// `monkeyci build run` of `repo` with container engine `engine` (`podman`, `docker`, `shell`).
pub fn run_on(repo: &TestRepo, engine: &str) -> MonkeyciCommand {
    MonkeyciCommand::run(repo.path()).args(["--engine", engine])
}

/// The suite's test image with a busybox `/bin/sh` (the shell engine ignores images).
pub const BUSYBOX: &str = "localhost/monkeyci-test/busybox";

/// The engines a container test runs on: the host shell, and podman when it and the test
/// images are here.
pub fn engines() -> Vec<&'static str> {
    let mut engines = vec!["shell"];
    if test_images_available() {
        engines.push("podman");
    }
    engines
}

/// The code a pipeline that counts its runs starts with: `LOG` is `log`, a file outside the
/// checkout, and `note(line)` appends a line to it, so a test can count how often a job's code
/// ran.
pub fn noting_prelude(log: &Path) -> String {
    format!(
        r#"
use std::io::Write;
#[allow(unused_imports)]
use std::time::{{Duration, SystemTime}};

use monkeyci_sdk::prelude::*;

const LOG: &str = {log:?};

/// One `write` per line: jobs running at the same time append whole lines.
fn note(line: &str) -> Result<()> {{
    let mut f = std::fs::OpenOptions::new().create(true).append(true).open(LOG)?;
    f.write_all(format!("{{line}}\n").as_bytes())?;
    Ok(())
}}
"#
    )
}

/// The lines of `log` (none when it was never written).
pub fn lines_of(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log).unwrap_or_default().lines().map(str::to_owned).collect()
}

/// How many of `lines` are exactly `line`.
pub fn count(lines: &[String], line: &str) -> usize {
    lines.iter().filter(|l| *l == line).count()
}

/// The `replayed` counts of the `script/resumed` events.
pub fn replayed_counts(out: &Output) -> Vec<usize> {
    out.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ScriptResumed { replayed } => Some(*replayed),
            _ => None,
        })
        .collect()
}

/// Fails (after killing them) if processes running exactly `argv` are still there a moment
/// after `out`'s build ended.
#[track_caller]
pub fn assert_no_process_left(argv: &[&str], what: &str, out: &Output) {
    let mut left = processes_running(argv);
    for _ in 0..30 {
        if left.is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
        left = processes_running(argv);
    }
    for (pid, _) in &left {
        // These are the test's own job's processes, found by their unique arguments.
        // SAFETY: kill(2) on a pid we just read has no memory effects.
        unsafe {
            libc::kill(*pid as libc::pid_t, libc::SIGKILL);
        }
    }
    assert!(left.is_empty(), "{what}: processes of the job outlived it: {left:?}; {out:?}");
}
