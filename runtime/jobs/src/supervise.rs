//! Supervising one job attempt from its request to its result: prepare its directory, run it
//! with the engine within its time limit (stopping it when the build is canceled), turn what
//! [`JobTail`] follows into build events, save what it leaves, and judge how it ended.
//!
//! It owns the order of those steps and the result's message; it must not choose engines,
//! keep the build's registry of runs (that is [`crate::ContainerJobs`]) or read the job's
//! files itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use monkeyci_protocol::error_chain as chain;
use monkeyci_protocol::{ContainerRequest, ContainerResult, EventKind, JobStatus, Masker, OutputStream, ParamMap};
use tokio::sync::watch;

use crate::engine::{self, BoxFuture, ContainerEngine, EngineError, EngineJob};
use crate::follow::{Followed, JobTail, POLL_INTERVAL};
use crate::jobscript::{ContainerEvent, JobLayout};
use crate::output::{JobEvents, ProcessOutput};
use crate::prepare::{self, BuildDirs, Note};
use crate::save;

/// What every container job of the build shares.
pub(crate) struct Build {
    /// Where jobs are prepared from and into.
    pub(crate) dirs: BuildDirs,
    /// The build's parameters (secret values come from them).
    pub(crate) params: ParamMap,
    /// Hides the parameters' values in output.
    pub(crate) masker: Arc<Masker>,
    /// The build's event stream.
    pub(crate) events: tokio::sync::mpsc::UnboundedSender<monkeyci_protocol::Event>,
    /// How many runs ended so far.
    pub(crate) finished: watch::Sender<usize>,
}

impl Build {
    fn job_events(&self, job_id: &str) -> JobEvents {
        JobEvents::new(job_id.to_owned(), Arc::clone(&self.masker), self.events.clone())
    }
}

/// Why a job attempt failed before its script could say how it went.
#[derive(Debug, thiserror::Error)]
pub(crate) enum JobError {
    /// Its directory could not be prepared.
    #[error(transparent)]
    Prepare(#[from] prepare::Error),
    /// The engine could not run it.
    #[error("{engine}")]
    Engine {
        /// The engine's name.
        engine: &'static str,
        /// Why.
        #[source]
        source: EngineError,
    },
    /// What it left could not be saved.
    #[error(transparent)]
    Save(#[from] save::Error),
}

impl JobError {
    /// The job's result for this failure: the one place an error becomes a job's message.
    fn result(&self, exit: Option<i32>) -> ContainerResult {
        ContainerResult { status: JobStatus::Failure, exit, message: Some(chain(self)) }
    }
}

/// How long a job's process may take to end after its preparation failed and the abort file
/// was written, before it is stopped.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// Runs one container job attempt to its end and publishes the result.
pub(crate) async fn run_job(
    engine: Arc<dyn ContainerEngine>,
    build: Arc<Build>,
    id: String,
    request: ContainerRequest,
    secrets: BTreeMap<String, String>,
    stop: watch::Receiver<bool>,
    done: watch::Sender<Option<ContainerResult>>,
) {
    let events = build.job_events(&request.job_id);
    let result = match prepare::create(&build.dirs, &id, &request.spec, secrets).await {
        Ok((job, layout)) => {
            let mut result = execute(&engine, &build, &events, &job, &layout, &request, stop).await;
            engine.cleanup(&job).await;
            emit_notes(&events, save::mask_logs(&build.masker, &layout, request.spec.script.len()).await);
            let (notes, saved) = save::save_files(&build.dirs.files, &request.spec, &layout, &result).await;
            emit_notes(&events, notes);
            if let Err(err) = saved {
                result = JobError::from(err).result(result.exit);
            }
            emit_notes(&events, save::discard_work(&build.dirs.files, &layout).await);
            result
        }
        Err(err) => {
            prepare::abort(&prepare::layout(&build.dirs, &id), &err);
            JobError::from(err).result(None)
        }
    };
    events.emit(EventKind::ContainerEnd {
        job_id: request.job_id.clone(),
        status: result.status,
        exit: result.exit,
        message: result.message.clone(),
    });
    done.send_replace(Some(result));
    build.finished.send_modify(|count| *count += 1);
}

fn emit_notes(events: &JobEvents, notes: Vec<Note>) {
    for (stream, line) in notes {
        events.emit(EventKind::JobOutput { job_id: events.job_id().to_owned(), stream, line });
    }
}

/// Runs the job with the engine, following its events and output, within its time limit.
///
/// The wrapper starts at once and waits for the start file while the job's directory is
/// filled; [`prepare::finish`] then writes the start file, or the abort file that makes it
/// give up. A job with its own command has no wrapper: its directory is filled first. The time
/// limit counts from the start.
async fn execute(
    engine: &Arc<dyn ContainerEngine>,
    build: &Build,
    events: &JobEvents,
    job: &EngineJob,
    layout: &JobLayout,
    request: &ContainerRequest,
    mut build_stop: watch::Receiver<bool>,
) -> ContainerResult {
    let (stop_tx, stop_rx) = watch::channel(false);
    let command_mode = !job.command.is_empty();
    let deadline = request.spec.timeout_ms.map(Duration::from_millis);
    let sleep = tokio::time::sleep(Duration::from_secs(u64::MAX / 4));
    tokio::pin!(sleep);
    // The timer runs for the time limit once started, or for the grace after an abort.
    let mut timer: Option<Timer> = None;
    let mut preparing: Option<BoxFuture<'_, Result<Vec<Note>, prepare::Error>>> =
        Some(Box::pin(prepare::fill(&build.dirs, &request.spec, layout)));
    let mut failed: Option<JobError> = None;
    if command_mode {
        if let Some(filling) = preparing.take() {
            match prepare::finish(layout, filling.await) {
                Ok(notes) => emit_notes(events, notes),
                Err(err) => return JobError::from(err).result(None),
            }
        }
        events.emit(EventKind::ContainerStart {
            job_id: events.job_id().to_owned(),
            image: job.image.clone(),
            engine: engine.name().into(),
        });
        if let Some(limit) = deadline {
            sleep.as_mut().reset(tokio::time::Instant::now() + limit);
            timer = Some(Timer::Limit);
        }
    }
    let mut progress = Progress::new(events.clone(), &request.spec.script, engine.name(), &job.image);
    let mut tail = JobTail::new(layout.clone()).with_commands(request.spec.script.len());
    let run = engine.run(job, ProcessOutput::new(events.clone()), stop_rx);
    tokio::pin!(run);
    let mut stopped: Option<JobStatus> = None;
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let exit = loop {
        let behind = tail.is_behind();
        tokio::select! {
            exit = &mut run => break exit,
            filled = async {
                match preparing.as_mut() {
                    Some(filling) => filling.await,
                    None => std::future::pending().await,
                }
            }, if preparing.is_some() => {
                preparing = None;
                match prepare::finish(layout, filled) {
                    Ok(notes) => {
                        emit_notes(events, notes);
                        if let Some(limit) = deadline {
                            sleep.as_mut().reset(tokio::time::Instant::now() + limit);
                            timer = Some(Timer::Limit);
                        }
                    }
                    Err(err) => {
                        failed = Some(err.into());
                        sleep.as_mut().reset(tokio::time::Instant::now() + ABORT_GRACE);
                        timer = Some(Timer::Abort);
                    }
                }
            }
            _ = &mut sleep, if timer.is_some() && stopped.is_none() => {
                stopped = Some(if timer == Some(Timer::Limit) { JobStatus::Timeout } else { JobStatus::Failure });
                stop_tx.send_replace(true);
            }
            _ = engine::stopped(&mut build_stop), if stopped.is_none() => {
                stopped = Some(JobStatus::Canceled);
                stop_tx.send_replace(true);
            }
            // A job writing faster than the poll interval is read again at once, each poll
            // a bounded amount, so stopping it still takes effect between two polls.
            _ = async {
                if behind { tokio::task::yield_now().await } else { poll.tick().await; }
            } => progress.handle(tail.poll()),
        }
    };
    // The process ended before its preparation did: nothing waits for the start file now.
    if let Some(filling) = preparing.take()
        && let Err(err) = filling.await
    {
        prepare::abort(layout, &err);
        failed = Some(err.into());
    }
    while tail.is_behind() {
        progress.handle(tail.poll());
        tokio::task::yield_now().await;
    }
    progress.handle(tail.finish());

    if let Some(err) = failed {
        return err.result(None);
    }
    let exit = match exit {
        Ok(exit) => exit,
        Err(source) => return JobError::Engine { engine: engine.name(), source }.result(None),
    };
    match stopped {
        Some(JobStatus::Timeout) => {
            let limit = deadline.unwrap_or_default();
            return ContainerResult {
                status: JobStatus::Timeout,
                exit: exit.code,
                message: Some(format!("timed out after {}", monkeyci_protocol::duration::short(limit))),
            };
        }
        Some(status) => {
            return ContainerResult {
                status,
                exit: exit.code,
                message: Some("canceled: the build was canceled".into()),
            };
        }
        None => {}
    }
    if command_mode {
        return match exit.code {
            Some(0) => ContainerResult { status: JobStatus::Success, exit: Some(0), message: None },
            code => ContainerResult {
                status: JobStatus::Failure,
                exit: code,
                message: Some(exit_message("the command", code)),
            },
        };
    }
    match progress.script_end {
        // The event log is the job's word: the engine's exit must say the same.
        Some(said) if exit.code != Some(said) => {
            let reported = if said == 0 { "success".to_owned() } else { format!("exit code {said}") };
            let ended = match exit.code {
                Some(code) => format!("exited with {code}"),
                None => "was killed by a signal".to_owned(),
            };
            let message = format!("the job's script reported {reported} but its container {ended}");
            ContainerResult { status: JobStatus::Failure, exit: exit.code, message: Some(message) }
        }
        Some(0) => ContainerResult { status: JobStatus::Success, exit: Some(0), message: None },
        Some(code) => {
            let message = match progress.last_failed {
                Some(i) => {
                    let line = request.spec.script.get(i).map(|l| events.mask(l)).unwrap_or_default();
                    format!("command {i} (`{line}`) exited with code {code}")
                }
                None => format!("the job script ended with code {code}"),
            };
            ContainerResult { status: JobStatus::Failure, exit: Some(code), message: Some(message) }
        }
        None => {
            let stderr = events.mask(exit.stderr.trim());
            let message = if !progress.started && mentions_missing_shell(&stderr) {
                format!(
                    "image `{}` has no /bin/sh, which script lines need; give the job `.command([...])` to run the \
                     image's own command instead ({}: {})",
                    job.image,
                    engine.name(),
                    last_line(&stderr)
                )
            } else if !progress.started {
                format!(
                    "{} could not start the container: {}",
                    engine.name(),
                    if stderr.is_empty() { exit_message("it", exit.code) } else { last_line(&stderr).to_owned() }
                )
            } else {
                format!("the container ended before its script did ({})", exit_message("it", exit.code))
            };
            ContainerResult { status: JobStatus::Failure, exit: exit.code, message: Some(message) }
        }
    }
}

/// What the timer of [`execute`] runs for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    /// The job's time limit, from its start.
    Limit,
    /// The grace a job's process has to end after its preparation failed.
    Abort,
}

fn exit_message(what: &str, code: Option<i32>) -> String {
    match code {
        Some(code) => format!("{what} exited with code {code}"),
        None => format!("{what} was killed by a signal"),
    }
}

/// Whether an engine's error says the image has no `/bin/sh` (runc names it; behind
/// `--init`, catatonit only says it could not exec its child).
fn mentions_missing_shell(stderr: &str) -> bool {
    let missing = stderr.contains("no such file") || stderr.contains("not found") || stderr.contains("No such file");
    (stderr.contains("/bin/sh") && missing) || stderr.contains("failed to exec pid1")
}

fn last_line(text: &str) -> &str {
    text.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or(text)
}

/// Turns what the job's tail found into build events, and remembers how the script went.
struct Progress {
    events: JobEvents,
    script: Vec<String>,
    engine: &'static str,
    image: String,
    /// The `container/start` event arrived: the start file was seen.
    started: bool,
    /// The last command that exited non-zero.
    last_failed: Option<usize>,
    /// The script's exit, once it ended.
    script_end: Option<i32>,
}

impl Progress {
    fn new(events: JobEvents, script: &[String], engine: &'static str, image: &str) -> Progress {
        Progress {
            events,
            script: script.to_vec(),
            engine,
            image: image.to_owned(),
            started: false,
            last_failed: None,
            script_end: None,
        }
    }

    /// Handles what was found, in order; a malformed event line is reported on the job's
    /// stderr and skipped.
    fn handle(&mut self, found: Vec<Result<Followed, crate::follow::Error>>) {
        for found in found {
            match found {
                Ok(Followed::Event { event, .. }) => self.event(event),
                Ok(Followed::Output { stream, line, .. }) => self.events.line(stream, &line),
                Err(err) => self.events.emit(EventKind::JobOutput {
                    job_id: self.events.job_id().to_owned(),
                    stream: OutputStream::Stderr,
                    line: format!("monkeyci: {}", chain(&err)),
                }),
            }
        }
    }

    fn event(&mut self, event: ContainerEvent) {
        let job_id = self.events.job_id().to_owned();
        match event {
            ContainerEvent::Start => {
                self.started = true;
                self.events.emit(EventKind::ContainerStart {
                    job_id,
                    image: self.image.clone(),
                    engine: self.engine.into(),
                });
            }
            ContainerEvent::CommandStart { command, .. } => {
                let line = self.script.get(command).map(|l| self.events.mask(l)).unwrap_or_default();
                self.events.emit(EventKind::CommandStart { job_id, command, line });
            }
            ContainerEvent::CommandEnd { command, exit } => {
                if exit != 0 {
                    self.last_failed = Some(command);
                }
                self.events.emit(EventKind::CommandEnd { job_id, command, exit });
            }
            ContainerEvent::ScriptEnd { exit, .. } => self.script_end = Some(exit),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use monkeyci_protocol::{ContainerRequest, ContainerSpec, JobStatus, ParamMap};
    use monkeyci_store::{BlobStore, LocalBlobStore, files};
    use tokio::sync::mpsc;

    use crate::{ContainerJobs, EngineChoice};

    /// Issue "hardening", 3: canceling the build stops a job printing as fast as it can at
    /// once, though nobody reads the build's events: following its output never holds the
    /// job's supervisor up.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn canceling_stops_a_job_printing_fast() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("checkout");
        std::fs::create_dir_all(&checkout).unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.path().join("blobs")).unwrap());
        let files = files::JobFiles::new(store, "b1", &checkout);
        let (tx, _events) = mpsc::unbounded_channel();
        let jobs_dir = dir.path().join("jobs");
        let jobs = ContainerJobs::new(
            EngineChoice::Shell,
            "b1".into(),
            checkout,
            jobs_dir.clone(),
            files,
            ParamMap::new(),
            tx,
        );
        let spec = ContainerSpec {
            image: "ignored".into(),
            script: vec!["yes 'a line of output printed as fast as it can be' | head -c 300000000; sleep 1000".into()],
            size: 1,
            ..ContainerSpec::default()
        };
        let id = jobs.start(ContainerRequest { job_id: "fast".into(), attempt: 1, spec }).unwrap();
        let log = jobs_dir.join(&id).join("logs/0.out");
        let began = Instant::now();
        while std::fs::metadata(&log).map_or(0, |m| m.len()) < 30_000_000 {
            assert!(began.elapsed() < Duration::from_secs(60), "the job did not print");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let canceled = Instant::now();
        tokio::time::timeout(Duration::from_secs(15), jobs.shutdown()).await.expect("canceling took too long");
        let took = canceled.elapsed();
        let result = jobs.wait(&id, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(result.status, JobStatus::Canceled, "{result:?}");
        assert!(took < Duration::from_secs(10), "canceling took {took:?}");
    }
}
