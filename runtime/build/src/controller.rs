//! The controller of one build: wiring only. It starts what serves the build (the blob store,
//! the container jobs, the journal, the build API), launches the compiled pipeline script with
//! its configuration, relaunches it when it suspended or crashed, and turns what the script
//! reports (events over the API, lines it prints) into one ordered stream of [`Update`]s,
//! folded into the build's [`BuildState`], recorded, and handed to whoever watches
//! ([`run_script`]).
//!
//! It does not compile (see [`crate::compiler`]), does not decide what the build means (see
//! [`crate::state`]) and does not render (that is the caller's, e.g. the `monkeyci` binary).
//!
//! The build's events come through one bounded channel ([`EVENTS_CAPACITY`]): whoever sends
//! faster than the controller handles them (a job printing as fast as it can) waits for room,
//! so the controller must keep taking events whenever it waits on something a sender may need
//! (the containers it stops, the containers a suspended script waits for).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use monkeyci_protocol::Masker;
use monkeyci_protocol::{
    ApiEndpoint, BuildInfo, BuildStatus, Event, EventKind, OutputStream, ParamMap, Plan, SCRIPT_CONFIG_ENV,
    SCRIPT_CONFIG_ON_STDIN, SCRIPT_EXIT_SUSPENDED, ScriptConfig, ScriptMode, SuspendMode,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

use crate::api::{self, BuildApiState, BuildToken};
use crate::journal::JournalStore;
use crate::record::Recorder;
use crate::state::{BuildState, Verdict};
use monkeyci_jobs::{ContainerJobs, EngineChoice};
use monkeyci_store::files::{ActionArtifacts, JobFiles};
use monkeyci_store::{BlobStore, LocalBlobStore};

/// How many events may wait for the controller: enough for several of the script's batches
/// (500 events at most) and a few polls of a job's output, small enough that what is queued
/// when the build is canceled is rendered and recorded in a fraction of a second (about 0.25 s
/// in a debug build), and that memory stays bounded (mostly output lines, at most
/// 64 KiB each). A sender finding it full waits: the job's output slows to the controller's
/// pace instead of piling up.
pub const EVENTS_CAPACITY: usize = 4096;

/// Something that happened in the build, in the order it reached the controller.
#[derive(Debug, Clone)]
pub enum Update {
    /// An event the script reported.
    Event(Event),
    /// A line the script process printed itself (not through a job), secrets masked.
    ScriptLine(OutputStream, String),
}

/// What to run.
#[derive(Debug, Clone)]
pub struct ScriptRequest {
    /// The build: its id, checkout directory (where the script runs) and git context.
    pub build: BuildInfo,
    /// The build parameters, served to the script; their values are masked in its output.
    pub params: ParamMap,
    /// Whether the script runs the build or only plans it.
    pub mode: ScriptMode,
    /// The jobs asked for (with what they depend on); empty: every job.
    pub jobs: Vec<String>,
    /// At most this many jobs doing process work (commands, containers) at once.
    pub max_parallel: usize,
    /// Whether the script stops starting jobs after the first failure.
    pub fail_fast: bool,
    /// Blocked jobs approved up front, and who to ask about the others.
    pub approvals: api::Approvals,
    /// Where the build's record (events, logs, container jobs' files) goes; `None` (plan
    /// mode): no record, and container jobs are refused.
    pub build_dir: Option<PathBuf>,
    /// What runs container jobs.
    pub engine: EngineChoice,
    /// The local blob store's root: artifacts and caches are kept in `blobs/` below it.
    pub store_root: PathBuf,
    /// When the script may exit while only container jobs run.
    pub suspend: SuspendMode,
    /// How long `auto` waits before suspending.
    pub suspend_after: std::time::Duration,
    /// What asks the build to stop.
    pub stop: StopSource,
    /// Where the script runs: in a sandbox, with the sandbox's environment, when a service
    /// builds other people's code (`None`: as this process's child, with the user's
    /// environment less what cargo and rustup set for MonkeyCI's own run, a local build).
    pub sandbox: Option<crate::sandbox::Sandbox>,
}

/// What asks a build to stop. Each request counts as one interrupt: the first asks the
/// script to cancel the build (it reports what it stopped), the second kills it.
#[derive(Debug, Clone)]
pub enum StopSource {
    /// Ctrl-C and SIGTERM to this process (a local build: `monkeyci build run`).
    Signals,
    /// A count of requests to stop, raised by whoever runs the build (a server's agent, on
    /// a cancel through its API). Signals to the process are left to its owner.
    Requests(tokio::sync::watch::Receiver<u32>),
}

/// How the script ended.
#[derive(Debug)]
pub struct ScriptOutcome {
    /// The script process's exit status.
    pub exit: ExitStatus,
    /// The build, folded from its events: how it ended, and the plan in plan mode.
    pub state: BuildState,
}

impl ScriptOutcome {
    /// What the build means for whoever started it.
    pub fn verdict(&self) -> Verdict {
        self.state.verdict(Some(self.exit))
    }

    /// The plan, in plan mode, if the script planned and exited cleanly.
    pub fn plan(&self) -> Option<&Plan> {
        self.state.plan().filter(|_| self.exit.success())
    }
}

/// Why a build could not be run at all (a build that runs and fails is not an error: see
/// [`ScriptOutcome::verdict`]).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No token could be made for the build API.
    #[error("cannot create a build token")]
    Token(#[source] std::io::Error),
    /// The build's record could not be started.
    #[error("cannot create the build record in {}", dir.display())]
    Record {
        /// The record's directory.
        dir: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The blob store for artifacts, caches and large journal records cannot be used.
    #[error("cannot use {} for artifacts and caches", root.display())]
    Store {
        /// The store's root directory.
        root: PathBuf,
        /// What failed.
        #[source]
        source: monkeyci_store::Error,
    },
    /// The build API could not listen on 127.0.0.1.
    #[error("cannot open the build API port")]
    Listen(#[source] std::io::Error),
    /// Ctrl-C cannot be watched for.
    #[error("cannot watch for Ctrl-C and SIGTERM")]
    Signals(#[source] std::io::Error),
    /// The script's configuration could not be encoded.
    #[error("cannot encode the script's configuration")]
    Config(#[source] serde_json::Error),
    /// The script process could not be started.
    #[error("cannot start the pipeline script {}", binary.display())]
    Spawn {
        /// The script binary.
        binary: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The script process was lost.
    #[error("waiting for the pipeline script")]
    Wait(#[source] std::io::Error),
}

/// Runs the script `binary` for `request` and hands every update to `on_update` as it comes.
///
/// The script is launched, followed to its exit, and relaunched (resumed from its journal)
/// while it suspends or, a few times, after it was killed by a signal. The first Ctrl-C asks
/// it to cancel the build; a second kills it.
pub async fn run_script(
    binary: &Path,
    request: ScriptRequest,
    on_update: impl FnMut(Update),
) -> Result<ScriptOutcome, Error> {
    let (services, events) = BuildServices::start(&request).await?;
    let recorder = match &request.build_dir {
        Some(dir) => {
            let mut recorder = Recorder::create(dir).map_err(|source| Error::Record { dir: dir.clone(), source })?;
            recorder.note_binary(binary);
            recorder.note_build(&request.build);
            Some(recorder)
        }
        None => None,
    };
    let mut build = Followed {
        state: BuildState::default(),
        recorder,
        masker: Masker::new(request.params.values().map(String::as_str)),
        on_update,
        events,
        stop: Interrupts::watch(&request.stop)?,
        interrupts: 0,
    };
    // The journal belongs to this binary: note what it is now, so a changed one is refused.
    let mut identity = BinaryIdentity::of(binary);
    let mut crash_resumes = 0;
    let mut resume = false;
    let mut launches = 0;
    let exit = loop {
        // The script numbers its event batches per launch; the API applies each once.
        launches += 1;
        let config = ScriptConfig {
            build: request.build.clone(),
            api: ApiEndpoint { url: format!("http://{}", services.addr), token: services.token.as_str().to_owned() },
            mode: request.mode,
            jobs: request.jobs.clone(),
            max_parallel: request.max_parallel,
            fail_fast: request.fail_fast,
            suspend: request.suspend,
            suspend_after_ms: u64::try_from(request.suspend_after.as_millis()).unwrap_or(u64::MAX),
            resume,
            launch: launches,
        };
        let suspensions_before = build.state.suspensions();
        let status = build.launch(binary, &request.build.checkout_dir, &config, request.sandbox.as_ref()).await?;
        let launch = Launch { status, suspended: build.state.suspensions() > suspensions_before };
        match next_step(&mut build, &services, &launch, &mut crash_resumes, &mut identity, binary).await {
            Step::Resume => resume = true,
            Step::Done => break status,
        }
    };
    services.shutdown(&mut build).await;
    if let Some(recorder) = &mut build.recorder {
        recorder.finish();
    }
    Ok(ScriptOutcome { exit, state: build.state })
}

/// What serves one build while its script runs: the blob store, the container jobs, the
/// journal and the build API on 127.0.0.1.
struct BuildServices {
    token: BuildToken,
    addr: std::net::SocketAddr,
    containers: Option<Arc<ContainerJobs>>,
    journal: JournalStore,
    stop_api: tokio::sync::oneshot::Sender<()>,
    api: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl BuildServices {
    /// Starts them; the receiver gets every event of the build (the script's and the
    /// container jobs').
    async fn start(request: &ScriptRequest) -> Result<(BuildServices, mpsc::Receiver<Event>), Error> {
        let token = BuildToken::generate().map_err(Error::Token)?;
        let (event_tx, events_rx) = mpsc::channel::<Event>(EVENTS_CAPACITY);
        let store: Arc<dyn BlobStore> = Arc::new(
            LocalBlobStore::new(&request.store_root)
                .map_err(|source| Error::Store { root: request.store_root.clone(), source })?,
        );
        let files = JobFiles::new(Arc::clone(&store), &request.build.build_id, &request.build.checkout_dir);
        let action_artifacts = request.build_dir.as_ref().map(|dir| {
            Arc::new(ActionArtifacts::new(files.clone(), request.build.checkout_dir.clone(), dir.join("tmp")))
        });
        let containers = request.build_dir.as_ref().map(|dir| {
            Arc::new(ContainerJobs::new(
                request.engine,
                request.build.build_id.clone(),
                request.build.checkout_dir.clone(),
                dir.join("jobs"),
                files,
                request.params.clone(),
                event_tx.clone(),
            ))
        });
        let journal = JournalStore::new(Arc::clone(&store), &request.build.build_id);
        let state = BuildApiState::new(
            token.clone(),
            request.params.clone(),
            request.approvals.clone(),
            event_tx,
            containers.clone(),
            action_artifacts,
            journal.clone(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(Error::Listen)?;
        let addr = listener.local_addr().map_err(Error::Listen)?;
        let (stop_api, stopped) = tokio::sync::oneshot::channel::<()>();
        let api = tokio::spawn(async move {
            axum::serve(listener, api::router(state))
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
        });
        Ok((BuildServices { token, addr, containers, journal, stop_api, api }, events_rx))
    }

    /// Stops what is left: containers still running belong to a script that is gone (killed,
    /// canceled); their last events are still followed, taken while they stop (a job waiting
    /// for room must not keep its stop from completing; after a moment the jobs give up on
    /// what they had left to show, see [`ContainerJobs::shutdown`]). Then the API stops.
    async fn shutdown<F: FnMut(Update)>(self, build: &mut Followed<F>) {
        if let Some(containers) = &self.containers {
            build.taking_events(containers.shutdown()).await;
        }
        while let Ok(event) = build.events.try_recv() {
            build.handle(Update::Event(event));
        }
        let _ = self.stop_api.send(());
        let _ = self.api.await;
    }
}

/// The build as the controller follows it: the fold of its events, its record, and whoever
/// watches it.
struct Followed<F> {
    state: BuildState,
    recorder: Option<Recorder>,
    masker: Masker,
    on_update: F,
    events: mpsc::Receiver<Event>,
    stop: Interrupts,
    interrupts: u32,
}

/// The largest script configuration passed in its variable: the kernel takes at most 128 KiB
/// for one.
const CONFIG_IN_ENV_MAX: usize = 64 * 1024;

impl<F: FnMut(Update)> Followed<F> {
    /// Runs `work` to its end while taking the build's events as they come: a sender waiting
    /// for room may be what `work` waits for.
    async fn taking_events<T>(&mut self, work: impl Future<Output = T>) -> T {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return out,
                Some(event) = self.events.recv() => self.handle(Update::Event(event)),
            }
        }
    }

    fn handle(&mut self, update: Update) {
        if let Update::Event(event) = &update {
            if let Some(recorder) = &mut self.recorder {
                recorder.record(event);
            }
            self.state.apply(event);
        }
        (self.on_update)(update);
    }

    /// Starts the script once and follows its events and lines until it exits.
    ///
    /// Its configuration is [`SCRIPT_CONFIG_ENV`]; one larger than [`CONFIG_IN_ENV_MAX`]
    /// comes on its stdin ([`SCRIPT_CONFIG_ON_STDIN`]).
    async fn launch(
        &mut self,
        binary: &Path,
        checkout: &Path,
        config: &ScriptConfig,
        sandbox: Option<&crate::sandbox::Sandbox>,
    ) -> Result<ExitStatus, Error> {
        let config = serde_json::to_string(config).map_err(Error::Config)?;
        // A configuration too large for one variable (a checkout's changed files) comes on
        // stdin.
        let on_stdin = config.len() > CONFIG_IN_ENV_MAX;
        let mut command = match sandbox {
            Some(sandbox) => {
                let mut command = tokio::process::Command::from(sandbox.command(binary));
                // Interrupts go to the whole group (see `interrupt`), and bubblewrap itself
                // ignores them, so the script gets the first one and cancels gracefully; the
                // signal handler it installs replaces the inherited "ignore".
                command.process_group(0);
                // SAFETY: only async-signal-safe calls between fork and exec.
                unsafe {
                    command.pre_exec(|| {
                        libc::signal(libc::SIGINT, libc::SIG_IGN);
                        Ok(())
                    });
                }
                command
            }
            None => tokio::process::Command::new(binary),
        };
        let env: Vec<(std::ffi::OsString, std::ffi::OsString)> = match sandbox {
            Some(sandbox) => sandbox.env.iter().map(|(k, v)| (k.into(), v.into())).collect(),
            // The user's environment, not what cargo or rustup set for MonkeyCI's own run.
            None => monkeyci_jobs::hostenv::user_vars(),
        };
        let mut child = command
            .env_clear()
            .envs(env)
            .env(SCRIPT_CONFIG_ENV, if on_stdin { SCRIPT_CONFIG_ON_STDIN } else { &config })
            .current_dir(checkout)
            .stdin(if on_stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|source| Error::Spawn { binary: binary.to_owned(), source })?;
        if let Some(mut stdin) = child.stdin.take() {
            // A script that exits without reading it is judged by its exit, not here.
            tokio::spawn(async move {
                let _ = tokio::io::AsyncWriteExt::write_all(&mut stdin, config.as_bytes()).await;
            });
        }
        let (line_tx, mut line_rx) = mpsc::unbounded_channel::<(OutputStream, String)>();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, OutputStream::Stdout, line_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, OutputStream::Stderr, line_tx.clone()));
        }
        drop(line_tx);
        let mut lines_open = true;
        let status = loop {
            tokio::select! {
                // The first Ctrl-C (or SIGTERM) asks the script to cancel the build (it reports
                // what it stopped); the second kills it.
                () = self.stop.recv() => {
                    self.interrupts += 1;
                    match (self.interrupts, child.id()) {
                        // A sandboxed script is reached through its process group.
                        (1, Some(pid)) => interrupt(pid, sandbox.is_some()),
                        _ => { let _ = child.start_kill(); }
                    }
                },
                Some(event) = self.events.recv() => self.handle(Update::Event(event)),
                line = line_rx.recv(), if lines_open => match line {
                    Some((stream, line)) => {
                        let line = self.masker.mask(&line);
                        self.handle(Update::ScriptLine(stream, line));
                    }
                    None => lines_open = false,
                },
                status = child.wait() => break status.map_err(Error::Wait)?,
            }
        };
        // The script flushes its events before it exits; whatever it printed last follows.
        // Only what is queued now, and nothing once interrupted: a container still printing
        // fast would keep this going, and its stop ([`BuildServices::shutdown`], which then
        // takes the rest) waits for this launch to return. Meanwhile senders wait for room;
        // none of them is needed for the script's lines to end.
        let queued = if self.interrupts > 0 { 0 } else { self.events.len() };
        for _ in 0..queued {
            match self.events.try_recv() {
                Ok(event) => self.handle(Update::Event(event)),
                Err(_) => break,
            }
        }
        while let Some((stream, line)) = line_rx.recv().await {
            let line = self.masker.mask(&line);
            self.handle(Update::ScriptLine(stream, line));
        }
        Ok(status)
    }

    /// Ends the build from the controller's side, saying why.
    fn end(&mut self, status: BuildStatus, message: String) {
        self.handle(Update::Event(Event::now(EventKind::ScriptEnd { status, message: Some(message) })));
    }
}

/// Ctrl-C and SIGTERM, watched by one listener each for the whole build: one arriving between
/// two looks (while an event is handled, or between launches) is kept, not lost. SIGTERM (a
/// service manager, `kill`, a CI runner stopping a job) is handled as Ctrl-C is, so running
/// containers are stopped and secrets masked before MonkeyCI exits. Or, for a build run by a
/// service, the requests its owner counts ([`StopSource::Requests`]), each taken once.
enum Interrupts {
    Signals { int: tokio::signal::unix::Signal, term: tokio::signal::unix::Signal },
    Requests { requests: tokio::sync::watch::Receiver<u32>, taken: u32 },
}

impl Interrupts {
    fn watch(source: &StopSource) -> Result<Interrupts, Error> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(match source {
            StopSource::Signals => Interrupts::Signals {
                int: signal(SignalKind::interrupt()).map_err(Error::Signals)?,
                term: signal(SignalKind::terminate()).map_err(Error::Signals)?,
            },
            StopSource::Requests(requests) => Interrupts::Requests { requests: requests.clone(), taken: 0 },
        })
    }

    /// The next Ctrl-C or SIGTERM, or the next request not taken yet.
    async fn recv(&mut self) {
        match self {
            Interrupts::Signals { int, term } => tokio::select! {
                Some(()) = int.recv() => {}
                Some(()) = term.recv() => {}
                else => std::future::pending().await,
            },
            Interrupts::Requests { requests, taken } => loop {
                if *requests.borrow_and_update() > *taken {
                    *taken += 1;
                    return;
                }
                if requests.changed().await.is_err() {
                    // Whoever counted is gone: nothing will ask any more.
                    std::future::pending::<()>().await;
                }
            },
        }
    }
}

/// How one launch of the script ended.
struct Launch {
    status: ExitStatus,
    /// It reported a suspension.
    suspended: bool,
}

/// What follows a launch.
enum Step {
    /// Relaunch the script, resuming from its journal.
    Resume,
    /// The build is over.
    Done,
}

/// Decides what follows a launch: a suspended script is resumed once a container it waits
/// for ended; a crashed one (killed by a signal, with a journal) is resumed a few times; any
/// other exit, an end, Ctrl-C or a changed binary ends the build.
async fn next_step<F: FnMut(Update)>(
    build: &mut Followed<F>,
    services: &BuildServices,
    launch: &Launch,
    crash_resumes: &mut u32,
    identity: &mut BinaryIdentity,
    binary: &Path,
) -> Step {
    if build.state.end().is_some() || build.interrupts > 0 {
        return Step::Done;
    }
    let Some(containers) = &services.containers else { return Step::Done };
    let status = launch.status;
    let is_suspended = status.code() == Some(i32::from(SCRIPT_EXIT_SUSPENDED)) && launch.suspended;
    // A script killed by a signal (OOM, kill -9) resumes from its journal too, a few times.
    let crashed = status.code().is_none() && services.journal.has_entries();
    if !(is_suspended || (crashed && *crash_resumes < MAX_CRASH_RESUMES)) {
        return Step::Done;
    }
    if crashed && !is_suspended {
        *crash_resumes += 1;
        let line = format!("monkeyci: the pipeline script stopped ({status}); resuming it from its journal");
        build.handle(Update::ScriptLine(OutputStream::Stderr, line));
    }
    if is_suspended {
        let waiting = build.state.waiting().max(1);
        let one_ended = containers.wait_until_fewer_running(waiting);
        tokio::pin!(one_ended);
        loop {
            tokio::select! {
                _ = &mut one_ended => {
                    // Containers ending together cause one resume, not one each; when none is
                    // left running there is nothing to wait for.
                    let others = tokio::time::timeout(RESUME_COALESCE, containers.wait_until_fewer_running(1));
                    let _ = build.taking_events(others).await;
                    break;
                }
                // The containers' output is shown and recorded as it comes, suspended or not.
                Some(event) = build.events.recv() => build.handle(Update::Event(event)),
                () = build.stop.recv() => {
                    build.end(BuildStatus::Canceled, "the build was canceled while the script was suspended".to_owned());
                    return Step::Done;
                }
            }
        }
    }
    if !build.taking_events(identity.still_matches(binary)).await {
        let message = format!(
            "the pipeline binary {} changed while the build was suspended; a resume under another binary could \
             replay its journal wrongly, so nothing was re-run",
            binary.display()
        );
        build.end(BuildStatus::Error, message);
        return Step::Done;
    }
    Step::Resume
}

/// Sends each line `reader` gives, as long as it gives any: bytes split at `\n` (a `\r`
/// before it dropped), those that are not UTF-8 replaced, so a stray byte neither ends the
/// output nor closes the pipe under the script.
async fn forward_lines(
    reader: impl AsyncRead + Unpin,
    stream: OutputStream,
    tx: mpsc::UnboundedSender<(OutputStream, String)>,
) {
    let mut reader = BufReader::new(reader);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) => break,
            Ok(_) => {
                if buf.last() == Some(&b'\n') {
                    buf.pop();
                    if buf.last() == Some(&b'\r') {
                        buf.pop();
                    }
                }
                let line = String::from_utf8_lossy(&buf).into_owned();
                if tx.send((stream, line)).is_err() {
                    // Nobody listens any more; keep the pipe drained so the script never blocks.
                    let _ = tokio::io::copy(&mut reader, &mut tokio::io::sink()).await;
                    break;
                }
            }
            // A read error (EINTR is retried by tokio) leaves nothing to forward.
            Err(_) => break,
        }
    }
}

/// How long a resume waits after a container ended, for others still running to end at about
/// the same time.
const RESUME_COALESCE: std::time::Duration = std::time::Duration::from_millis(200);

/// How often a script killed by a signal is resumed before the build gives up.
const MAX_CRASH_RESUMES: u32 = 3;

/// What a script binary was when the build started: file metadata, taken at once, and its
/// SHA-256, computed in the background (it is only needed if the script suspends).
struct BinaryIdentity {
    metadata: Option<(u64, u64, Option<std::time::SystemTime>)>,
    digest: LaunchDigest,
}

/// The SHA-256 of the binary as launched: being computed, then known (`None`: unreadable).
enum LaunchDigest {
    Computing(tokio::task::JoinHandle<Option<String>>),
    Known(Option<String>),
}

impl BinaryIdentity {
    fn of(binary: &Path) -> BinaryIdentity {
        let path = binary.to_owned();
        let digest = tokio::task::spawn_blocking(move || file_digest(&path).ok());
        BinaryIdentity { metadata: metadata_of(binary), digest: LaunchDigest::Computing(digest) }
    }

    /// Whether `binary` is still the same file with the same contents (asked before every
    /// resume, so the digest of the launch is kept once known).
    async fn still_matches(&mut self, binary: &Path) -> bool {
        if self.metadata.is_none() || metadata_of(binary) != self.metadata {
            return false;
        }
        if let LaunchDigest::Computing(handle) = &mut self.digest {
            self.digest = LaunchDigest::Known(handle.await.ok().flatten());
        }
        let LaunchDigest::Known(recorded) = &self.digest else { return false };
        let recorded = recorded.clone();
        let path = binary.to_owned();
        let now = tokio::task::spawn_blocking(move || file_digest(&path).ok()).await.ok().flatten();
        recorded.is_some() && recorded == now
    }
}

fn metadata_of(binary: &Path) -> Option<(u64, u64, Option<std::time::SystemTime>)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(binary).ok()?;
    Some((meta.ino(), meta.len(), meta.modified().ok()))
}

/// The SHA-256 of a file, hex: the identity of the script binary a journal belongs to.
fn file_digest(path: &Path) -> std::io::Result<String> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// Sends SIGINT to the script process.
/// SIGINT to process `pid`, or to the process group it leads (a sandboxed script and its
/// sandbox).
fn interrupt(pid: u32, group: bool) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) has no memory effects; at worst the process or group is already gone.
    unsafe {
        libc::kill(if group { -pid } else { pid }, libc::SIGINT);
    }
}
