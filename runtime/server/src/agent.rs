//! The agent: claims queued builds and runs each with the same code as `monkeyci build run`
//! (`monkeyci_build`: compile with the shared cache, the build API, the engines, the journal,
//! suspension), after cloning the repository at the build's commit.
//!
//! This module owns a build's life on an agent: claim, clone, compile, run, heartbeat, cancel,
//! and the build's end. It reaches the server only through a [`Link`]: the agent embedded in
//! `monkeyci server` links in process ([`crate::dispatch::Dispatch`]), `monkeyci agent` over
//! HTTP; the code that runs a build is the same. Everything the build shows goes, in order,
//! through its [`Records`], which numbers it for the link (so a resend is harmless).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use monkeyci_build::compiler::{self, Compiler, PipelineCrate};
use monkeyci_build::controller::{self, ScriptRequest, StopSource, Update};
use monkeyci_build::git::{self, GitOverrides};
use monkeyci_build::sandbox::Sandbox;
use monkeyci_build::state::Verdict;
use monkeyci_jobs::EngineChoice;
use monkeyci_protocol::{BuildInfo, OutputStream, ScriptMode, Source, SuspendMode, Trigger};
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, watch};

use crate::link::{Claim, EndBuild, Link, LinkError};
use crate::model::{Build, Line, RecordBody, Status};

/// How an agent runs builds.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The agent's name, shown on the builds it runs.
    pub name: String,
    /// Builds at once.
    pub capacity: usize,
    /// Where builds are checked out and recorded while they run.
    pub work_dir: PathBuf,
    /// The compile cache and blob store (as `~/.cache/monkeyci` for a local build).
    pub cache_dir: PathBuf,
    /// The sdk pipelines are compiled against, when they name it by version.
    pub sdk_path: Option<PathBuf>,
    /// What runs container jobs.
    pub engine: EngineChoice,
    /// Whether each build's compile and script run in a [`Sandbox`] (they should: they are
    /// the repository's code; only for a trusted setup without bubblewrap, `false`).
    pub sandbox: bool,
    /// Directories no build may see (the server's data dir).
    pub private: Vec<PathBuf>,
}

/// How often a running build's agent says it is alive and looks for cancel requests.
const HEARTBEAT: Duration = Duration::from_secs(1);

/// The cancel requests sent to a build whose server says it is over (taken for lost while
/// the agent could not reach it): the pipeline is asked to stop, then made to.
const STOP_OVER: u32 = 2;

/// An agent in this process, reaching the server through `L`.
#[derive(Debug)]
pub struct Agent<L> {
    inner: Arc<Inner<L>>,
}

impl<L> Clone for Agent<L> {
    fn clone(&self) -> Self {
        Agent { inner: Arc::clone(&self.inner) }
    }
}

#[derive(Debug)]
struct Inner<L> {
    config: AgentConfig,
    link: L,
    wake: Notify,
    running: Mutex<HashMap<String, watch::Sender<u32>>>,
}

impl<L> Agent<L> {
    /// An agent taking builds through `link`.
    pub fn new(config: AgentConfig, link: L) -> Agent<L> {
        Agent { inner: Arc::new(Inner { config, link, wake: Notify::new(), running: Mutex::new(HashMap::new()) }) }
    }

    /// Tells the agent a build was queued, so it looks now rather than at its next poll.
    pub fn wake(&self) {
        self.inner.wake.notify_one();
    }

    /// Tells the agent a cancel was asked for `build_id`, if it runs it (it also finds out
    /// at its next heartbeat).
    pub fn cancel(&self, build_id: &str, requests: i64) {
        if let Some(stop) = self.inner.running.lock().get(build_id) {
            let _ = stop.send(u32::try_from(requests).unwrap_or(u32::MAX));
        }
    }

    /// Its name, as builds show it.
    pub fn name(&self) -> &str {
        &self.inner.config.name
    }

    /// The builds it runs now, and how many it runs at once.
    pub fn load(&self) -> (usize, usize) {
        (self.inner.running.lock().len(), self.inner.config.capacity)
    }
}

impl<L: Link> Agent<L> {
    /// Claims and runs builds until the process ends, or the server refuses the agent's claims
    /// (its token).
    pub async fn run(self) -> Result<(), LinkError> {
        loop {
            while self.inner.running.lock().len() < self.inner.config.capacity.max(1) {
                match self.inner.link.claim(&self.inner.config.name).await {
                    Ok(Some(claim)) => {
                        let (stop, stopped) = watch::channel(0u32);
                        self.inner.running.lock().insert(claim.build.id.clone(), stop);
                        let agent = self.clone();
                        tokio::spawn(async move {
                            let id = claim.build.id.clone();
                            agent.run_build(claim, stopped).await;
                            agent.inner.running.lock().remove(&id);
                            agent.wake();
                        });
                    }
                    Ok(None) => break,
                    Err(err @ LinkError::Refused(_)) => return Err(err),
                    Err(err) => {
                        tracing::warn!("cannot claim a build: {}", monkeyci_protocol::error_chain(&err));
                        break;
                    }
                }
            }
            let _ = tokio::time::timeout(Duration::from_secs(2), self.inner.wake.notified()).await;
        }
    }

    async fn run_build(&self, claim: Claim, stop: watch::Receiver<u32>) {
        let build = &claim.build;
        let mut records = Records { link: &self.inner.link, build_id: &build.id, next_seq: claim.last_seq + 1 };
        let dir = self.inner.config.work_dir.join(&build.id);
        let heartbeat = tokio::spawn(heartbeat(self.clone(), build.id.clone()));
        let (status, error) = match self.build_in(&claim, &dir, stop, &mut records).await {
            Ok(ended) => ended,
            Err(err) => (Status::Error, Some(monkeyci_protocol::error_chain(&*err))),
        };
        heartbeat.abort();
        if let Err(err) = std::fs::remove_dir_all(&dir)
            && err.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!("build {}: cannot remove {}: {err}", build.id, dir.display());
        }
        // `false`: it ended meanwhile (its agent was taken for lost), and that end stands.
        let end = EndBuild { status, error, last_seq: records.next_seq - 1 };
        match self.inner.link.end(&build.id, end).await {
            Ok(true) => {}
            Ok(false) => tracing::warn!("build {}: it was over already (its agent was taken for lost)", build.id),
            Err(err) => tracing::error!("build {}: cannot end it: {}", build.id, monkeyci_protocol::error_chain(&err)),
        }
    }

    /// Clones, compiles and runs `build` in `dir`; how it ended.
    async fn build_in(
        &self,
        claim: &Claim,
        dir: &Path,
        stop: watch::Receiver<u32>,
        writer: &mut Records<'_, L>,
    ) -> Result<(Status, Option<String>), Box<dyn std::error::Error + Send + Sync>> {
        let config = &self.inner.config;
        let build = &claim.build;
        let checkout = dir.join("checkout");
        std::fs::create_dir_all(dir)?;
        say(writer, format!("agent {} runs build {}", config.name, build.id)).await?;
        if let Some(lost) = &build.retry_of_lost {
            say(writer, format!("running again build {lost}, whose agent was lost")).await?;
        }
        say(writer, format!("cloning {}", claim.url)).await?;
        if let Err(why) = clone(&claim.url, build, &checkout, writer).await? {
            return Ok((Status::Error, Some(why)));
        }
        let commit = git_output(&checkout, &["rev-parse", "HEAD"]).await;
        self.inner.link.heartbeat(&build.id, commit.as_deref()).await?;
        let krate = match PipelineCrate::locate(&checkout) {
            Ok(krate) => krate,
            Err(err) => return Ok((Status::Error, Some(monkeyci_protocol::error_chain(&err)))),
        };
        // Cargo's output reaches the build's stream as it comes.
        let (diagnostics, writes) = std::io::pipe()?;
        let (line_tx, mut line_rx) = mpsc::unbounded_channel::<String>();
        let reader = tokio::task::spawn_blocking(move || {
            use std::io::BufRead as _;
            for line in std::io::BufReader::new(diagnostics).lines().map_while(Result::ok) {
                let _ = line_tx.send(line);
            }
        });
        let mut compiler = Compiler::new(config.cache_dir.clone(), config.sdk_path.clone());
        if config.sandbox {
            let mut sandbox = self.sandbox_for(dir);
            // Cargo writes the lock file and fetches dependencies.
            sandbox.writable.push(dir.to_owned());
            if let Some(cargo_home) = cargo_home() {
                sandbox.writable.extend([cargo_home.join("registry"), cargo_home.join("git")]);
            }
            compiler = compiler.sandboxed(sandbox);
        }
        let compiling = tokio::task::spawn_blocking(move || compiler.compile_reporting(&krate, Some(writes)));
        while let Some(line) = line_rx.recv().await {
            let mut lines = vec![line];
            while let Ok(more) = line_rx.try_recv() {
                lines.push(more);
            }
            let records =
                lines.into_iter().map(|line| RecordBody::Line(Line { stream: OutputStream::Stderr, line })).collect();
            writer.write(records).await?;
        }
        let _ = reader.await;
        let compiled = compiling.await?;
        let binary = match compiled {
            Ok(compiled) => compiled.binary,
            Err(err @ compiler::Error::CompileFailed) => return Ok((Status::Error, Some(err.to_string()))),
            Err(err) => return Err(err.into()),
        };
        let overrides = GitOverrides {
            branch: build.branch().map(str::to_owned),
            tag: build.tag().map(str::to_owned),
            commit: commit.clone(),
            main_branch: Some(claim.main_branch.clone()),
            changed: build.changed.clone().unwrap_or_default(),
            base: match (&build.changed, &build.before) {
                (None, Some(before)) => Some(before.clone()),
                _ => None,
            },
        };
        let git = match git::git_info(&checkout, &overrides) {
            Ok(git) => git,
            Err(err) => return Ok((Status::Error, Some(monkeyci_protocol::error_chain(&err)))),
        };
        let trigger = Trigger::ALL.iter().find(|(name, _)| *name == build.trigger).map(|(_, t)| *t);
        let info = BuildInfo {
            build_id: build.id.clone(),
            checkout_dir: checkout.canonicalize()?,
            git,
            source: if build.source == "webhook" { Source::Webhook } else { Source::Api },
            started_at_ms: monkeyci_protocol::now_ms(),
            vars: Default::default(),
            trigger,
        };
        // The build's params, read with its own token (the server masks them in its stream).
        let params = self.inner.link.params(&build.id, &claim.build_token).await?;
        let request = ScriptRequest {
            build: info,
            params,
            mode: ScriptMode::Run,
            jobs: Vec::new(),
            max_parallel: std::thread::available_parallelism().map_or(2, |n| n.get()),
            fail_fast: false,
            // Blocked jobs wait for a decision through the API.
            approvals: crate::approvals::for_build(self.inner.link.clone(), build.id.clone()),
            build_dir: Some(dir.join("record")),
            engine: config.engine,
            store_root: config.cache_dir.clone(),
            suspend: SuspendMode::Auto,
            suspend_after: Duration::from_secs(5),
            stop: StopSource::Requests(stop),
            sandbox: config.sandbox.then(|| {
                let mut sandbox = self.sandbox_for(dir);
                sandbox.readable.push(binary.clone());
                sandbox.writable.push(checkout.clone());
                sandbox
            }),
        };
        // The script's updates come one by one from a synchronous callback; a task keeps
        // them, in order, in batches.
        let (tx, mut rx) = mpsc::unbounded_channel::<RecordBody>();
        let outcome = {
            let keep = async {
                let mut batch = Vec::new();
                while let Some(first) = rx.recv().await {
                    batch.push(first);
                    while batch.len() < 256
                        && let Ok(more) = rx.try_recv()
                    {
                        batch.push(more);
                    }
                    writer.write(std::mem::take(&mut batch)).await?;
                }
                Ok::<_, LinkError>(())
            };
            let run = async move {
                let outcome = controller::run_script(&binary, request, |update| {
                    let _ = tx.send(match update {
                        Update::Event(event) => RecordBody::Event(event),
                        Update::ScriptLine(stream, line) => RecordBody::Line(Line { stream, line }),
                    });
                })
                .await;
                drop(tx);
                outcome
            };
            let (outcome, kept) = tokio::join!(run, keep);
            kept?;
            outcome?
        };
        let canceled = matches!(outcome.state.end(), Some((monkeyci_protocol::BuildStatus::Canceled, _)));
        Ok(match outcome.verdict() {
            Verdict::Success => (Status::Success, None),
            Verdict::Failed if canceled => (Status::Canceled, Some("the build was canceled".to_owned())),
            Verdict::Failed => (Status::Failure, None),
            Verdict::Unusable(why) => (Status::Error, Some(why)),
        })
    }
}

impl<L> Agent<L> {
    /// The sandbox of a build in `dir`: the server's data, the cache (every repository's
    /// artifacts and caches), the home directory and the container engines' sockets hidden;
    /// the toolchain and the sdk readable. Each use adds what it may write.
    fn sandbox_for(&self, dir: &Path) -> Sandbox {
        let config = &self.inner.config;
        let home = std::env::var_os("HOME").map(PathBuf::from).filter(|h| h.is_absolute());
        let mut hidden = config.private.clone();
        hidden.extend([config.cache_dir.clone(), config.work_dir.clone(), "/run".into(), "/var/run".into()]);
        hidden.extend(home.iter().cloned());
        let rustup_home =
            std::env::var_os("RUSTUP_HOME").map(PathBuf::from).or_else(|| home.as_ref().map(|h| h.join(".rustup")));
        let mut readable: Vec<PathBuf> = rustup_home.iter().cloned().collect();
        readable.extend(cargo_home());
        // The sdk, and the workspace it inherits its manifest's settings from (with its
        // sibling crates).
        readable.extend(config.sdk_path.iter().map(|sdk| workspace_root(sdk).unwrap_or_else(|| sdk.clone())));
        // The build's own directory stays visible (what is written in it is added by each use).
        readable.push(dir.to_owned());
        let mut env = vec![
            ("PATH".to_owned(), std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_owned())),
            ("HOME".to_owned(), "/tmp".to_owned()),
            ("LANG".to_owned(), "C.UTF-8".to_owned()),
        ];
        if let Some(rustup) = &rustup_home {
            env.push(("RUSTUP_HOME".to_owned(), rustup.display().to_string()));
        }
        if let Some(cargo) = cargo_home() {
            env.push(("CARGO_HOME".to_owned(), cargo.display().to_string()));
        }
        Sandbox { hidden, readable, writable: Vec::new(), env }
    }
}

/// The nearest directory at or above `dir` whose manifest is a workspace's.
fn workspace_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml"))
                .is_ok_and(|manifest| manifest.lines().any(|line| line.trim() == "[workspace]"))
        })
        .map(Path::to_owned)
}

/// The host's cargo home: `CARGO_HOME`, else `~/.cargo`.
fn cargo_home() -> Option<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .filter(|p| p.is_absolute())
}

/// Says the build's agent is alive every [`HEARTBEAT`], and passes on cancel requests; stops
/// the build when the server says it is over.
async fn heartbeat<L: Link>(agent: Agent<L>, build_id: String) {
    let mut every = tokio::time::interval(HEARTBEAT);
    loop {
        every.tick().await;
        match agent.inner.link.heartbeat(&build_id, None).await {
            Ok(beat) if beat.cancel_requests > 0 => agent.cancel(&build_id, beat.cancel_requests),
            Ok(_) => {}
            Err(LinkError::Refused(why)) => {
                tracing::warn!("build {build_id}: stopping it: {why}");
                agent.cancel(&build_id, i64::from(STOP_OVER));
            }
            // Said again at the next beat.
            Err(err) => tracing::debug!("build {build_id}: heartbeat: {}", monkeyci_protocol::error_chain(&err)),
        }
    }
}

/// A build's stream as its agent writes it: numbered here, from after what the server holds,
/// and handed to the link, which keeps trying until they are acknowledged.
#[derive(Debug)]
pub struct Records<'a, L> {
    link: &'a L,
    build_id: &'a str,
    next_seq: i64,
}

impl<L: Link> Records<'_, L> {
    /// Appends `bodies`, in order, after what was written before.
    pub async fn write(&mut self, bodies: Vec<RecordBody>) -> Result<(), LinkError> {
        if bodies.is_empty() {
            return Ok(());
        }
        let count = bodies.len() as i64;
        let last = self.link.append(self.build_id, self.next_seq, bodies).await?;
        if last < self.next_seq + count - 1 {
            return Err(LinkError::Refused(format!("the server kept records up to {last} only")));
        }
        self.next_seq += count;
        Ok(())
    }
}

async fn say<L: Link>(writer: &mut Records<'_, L>, line: String) -> Result<(), LinkError> {
    writer.write(vec![RecordBody::Line(Line { stream: OutputStream::Stdout, line })]).await
}

/// Clones `url` into `checkout` at the build's commit, or at its ref's head; `Ok(Err(why))`
/// when git could not, with git's own words in the build's stream.
async fn clone<L: Link>(
    url: &str,
    build: &Build,
    checkout: &Path,
    writer: &mut Records<'_, L>,
) -> Result<Result<(), String>, LinkError> {
    let mut steps: Vec<Vec<String>> = Vec::new();
    let mut clone = vec!["clone".to_owned(), "--quiet".to_owned(), "--no-checkout".to_owned()];
    clone.extend(["--".to_owned(), url.to_owned(), checkout.display().to_string()]);
    steps.push(clone);
    let target = match (&build.commit, build.branch(), build.tag()) {
        (Some(commit), _, _) => commit.clone(),
        (None, Some(branch), _) => format!("origin/{branch}"),
        (None, None, Some(tag)) => format!("refs/tags/{tag}"),
        (None, None, None) => "HEAD".to_owned(),
    };
    let mut checkout_step = vec!["-C".to_owned(), checkout.display().to_string(), "checkout".to_owned()];
    checkout_step.extend(["--quiet".to_owned(), "--detach".to_owned(), target.clone(), "--".to_owned()]);
    steps.push(checkout_step);
    for args in steps {
        let output = tokio::process::Command::new("git")
            .args(&args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .stdin(std::process::Stdio::null())
            .output()
            .await;
        let output = match output {
            Ok(output) => output,
            Err(err) => return Ok(Err(format!("cannot run git: {err}"))),
        };
        let lines: Vec<RecordBody> = String::from_utf8_lossy(&output.stderr)
            .lines()
            .map(|line| RecordBody::Line(Line { stream: OutputStream::Stderr, line: line.to_owned() }))
            .collect();
        writer.write(lines).await?;
        if !output.status.success() {
            let what =
                if args[0] == "clone" { format!("cannot clone {url}") } else { format!("cannot check out {target}") };
            return Ok(Err(format!("{what} (git's message is in the log)")));
        }
    }
    Ok(Ok(()))
}

async fn git_output(dir: &Path, args: &[&str]) -> Option<String> {
    let output = tokio::process::Command::new("git").arg("-C").arg(dir).args(args).output().await.ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}
