//! The controller of a local build: serves the build API, starts the compiled pipeline
//! script with its configuration, and turns what the script reports (events over the API,
//! lines it prints) into one ordered stream of [`Update`]s for the renderer.
//!
//! It does not compile (see `compiler`) and does not render (see `render`).

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;

use anyhow::Context as _;
use monkeyci_protocol::Masker;
use monkeyci_protocol::{
    ApiEndpoint, BuildInfo, BuildStatus, Event, EventKind, OutputStream, ParamMap, Plan, SCRIPT_CONFIG_ENV,
    SCRIPT_EXIT_SUSPENDED, ScriptConfig, ScriptMode, SuspendMode,
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
    pub build: BuildInfo,
    pub params: ParamMap,
    pub mode: ScriptMode,
    pub jobs: Vec<String>,
    pub max_parallel: usize,
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

/// Runs the script `binary` for `request` and hands every update to `on_update` as it comes.
pub async fn run_script(
    binary: &Path,
    request: ScriptRequest,
    mut on_update: impl FnMut(Update),
) -> anyhow::Result<ScriptOutcome> {
    let token = BuildToken::generate().context("cannot create a build token")?;
    let (event_tx, mut event_rx) = mpsc::unbounded_channel::<Event>();
    let mut recorder = match &request.build_dir {
        Some(dir) => Some(
            Recorder::create(dir).with_context(|| format!("cannot create the build record in {}", dir.display()))?,
        ),
        None => None,
    };
    let store: Arc<dyn BlobStore> = Arc::new(
        LocalBlobStore::new(&request.store_root)
            .with_context(|| format!("cannot use {} for artifacts and caches", request.store_root.display()))?,
    );
    let files = JobFiles::new(Arc::clone(&store), &request.build.build_id, &request.build.checkout_dir);
    let action_artifacts = request
        .build_dir
        .as_ref()
        .map(|dir| Arc::new(ActionArtifacts::new(files.clone(), request.build.checkout_dir.clone(), dir.join("tmp"))));
    let containers = request.build_dir.as_ref().map(|dir| dir.join("jobs")).map(|jobs_dir| {
        Arc::new(ContainerJobs::new(
            request.engine,
            request.build.build_id.clone(),
            request.build.checkout_dir.clone(),
            jobs_dir,
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("cannot open the build API port")?;
    let addr = listener.local_addr().context("cannot read the build API address")?;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, api::router(state))
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });

    let masker = Masker::new(request.params.values().map(String::as_str));
    let mut state = BuildState::default();
    let mut handle = |update: Update, state: &mut BuildState| {
        if let Update::Event(event) = &update {
            if let Some(recorder) = &mut recorder {
                recorder.record(event);
            }
            state.apply(event);
        }
        on_update(update);
    };
    let mut interrupts = 0;
    // One listener for the whole build: a Ctrl-C arriving between two looks at it (while an
    // event is handled, or between launches) is kept, not lost.
    let mut ctrl_c =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).context("cannot watch for Ctrl-C")?;
    let mut resume = false;
    let mut crash_resumes = 0;
    // The journal belongs to this binary: note what it is now, so a changed one is refused.
    let mut identity = BinaryIdentity::of(binary);
    let exit = loop {
        let config = ScriptConfig {
            build: request.build.clone(),
            api: ApiEndpoint { url: format!("http://{addr}"), token: token.as_str().to_owned() },
            mode: request.mode,
            jobs: request.jobs.clone(),
            max_parallel: request.max_parallel,
            fail_fast: request.fail_fast,
            suspend: request.suspend,
            suspend_after_ms: request.suspend_after.as_millis() as u64,
            resume,
        };
        let mut child = tokio::process::Command::new(binary)
            .env(SCRIPT_CONFIG_ENV, serde_json::to_string(&config)?)
            .current_dir(&request.build.checkout_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start the pipeline script {}", binary.display()))?;
        let (line_tx, mut line_rx) = mpsc::unbounded_channel::<(OutputStream, String)>();
        if let Some(out) = child.stdout.take() {
            tokio::spawn(forward_lines(out, OutputStream::Stdout, line_tx.clone()));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(forward_lines(err, OutputStream::Stderr, line_tx.clone()));
        }
        drop(line_tx);
        let suspensions_before = state.suspensions();
        let mut lines_open = true;
        let status = loop {
            tokio::select! {
                // The first Ctrl-C asks the script to cancel the build (it reports what it
                // stopped); the second kills it.
                Some(()) = ctrl_c.recv() => {
                    interrupts += 1;
                    match (interrupts, child.id()) {
                        (1, Some(pid)) => interrupt(pid),
                        _ => { let _ = child.start_kill(); }
                    }
                },
                Some(event) = event_rx.recv() => handle(Update::Event(event), &mut state),
                line = line_rx.recv(), if lines_open => match line {
                    Some((stream, line)) => {
                        handle(Update::ScriptLine(stream, masker.mask(&line)), &mut state)
                    }
                    None => lines_open = false,
                },
                status = child.wait() => break status.context("waiting for the pipeline script")?,
            }
        };
        // The script flushes its events before it exits; whatever it printed last follows.
        while let Ok(event) = event_rx.try_recv() {
            handle(Update::Event(event), &mut state);
        }
        while let Some((stream, line)) = line_rx.recv().await {
            handle(Update::ScriptLine(stream, masker.mask(&line)), &mut state);
        }
        if state.end().is_some() || interrupts > 0 {
            break status;
        }
        let Some(containers) = &containers else { break status };
        let is_suspended =
            status.code() == Some(i32::from(SCRIPT_EXIT_SUSPENDED)) && state.suspensions() > suspensions_before;
        // A script killed by a signal (OOM, kill -9) resumes from its journal too, a few times.
        let crashed = status.code().is_none() && journal.has_entries();
        if !(is_suspended || (crashed && crash_resumes < MAX_CRASH_RESUMES)) {
            break status;
        }
        if crashed && !is_suspended {
            crash_resumes += 1;
            let line = format!("monkeyci: the pipeline script stopped ({status}); resuming it from its journal");
            handle(Update::ScriptLine(OutputStream::Stderr, line), &mut state);
        }
        if is_suspended {
            let waiting = state.waiting().max(1);
            tokio::select! {
                _ = containers.wait_until_fewer_running(waiting) => {
                    // Containers ending together cause one resume, not one each; when none
                    // is left running there is nothing to wait for.
                    let _ = tokio::time::timeout(RESUME_COALESCE, containers.wait_until_fewer_running(1)).await;
                }
                Some(()) = ctrl_c.recv() => {
                    let event = Event::now(EventKind::ScriptEnd {
                        status: BuildStatus::Canceled,
                        message: Some("the build was canceled while the script was suspended".to_owned()),
                    });
                    handle(Update::Event(event), &mut state);
                    break status;
                }
            }
        }
        if !identity.still_matches(binary).await {
            let message = format!(
                "the pipeline binary {} changed while the build was suspended; a resume under another binary \
                 could replay its journal wrongly, so nothing was re-run",
                binary.display()
            );
            let event = Event::now(EventKind::ScriptEnd { status: BuildStatus::Error, message: Some(message) });
            handle(Update::Event(event), &mut state);
            break status;
        }
        resume = true;
    };
    // Containers still running belong to a script that is gone (killed, canceled): stop them.
    if let Some(containers) = &containers {
        containers.shutdown().await;
    }
    while let Ok(event) = event_rx.try_recv() {
        handle(Update::Event(event), &mut state);
    }
    let _ = stop_tx.send(());
    let _ = server.await;
    if let Some(recorder) = &mut recorder {
        recorder.finish();
    }
    Ok(ScriptOutcome { exit, state })
}

async fn forward_lines(
    reader: impl AsyncRead + Unpin,
    stream: OutputStream,
    tx: mpsc::UnboundedSender<(OutputStream, String)>,
) {
    let mut lines = BufReader::new(reader).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if tx.send((stream, line)).is_err() {
            break;
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
fn interrupt(pid: u32) {
    let Ok(pid) = libc::pid_t::try_from(pid) else { return };
    // SAFETY: kill(2) has no memory effects; at worst the process is already gone.
    unsafe {
        libc::kill(pid, libc::SIGINT);
    }
}
