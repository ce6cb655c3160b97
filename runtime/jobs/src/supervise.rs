//! Supervising one job attempt from its request to its result: prepare its directory, run it
//! with the engine within its time limit (stopping it when the build is canceled), turn what
//! [`JobTail`] follows into build events, save what it leaves, and judge how it ended.
//!
//! What the tail finds goes out as fast as the build takes it (see [`crate::output`]): the tail
//! reads on only once that is sent, so a job writing faster is followed later, never dropped;
//! the supervisor never waits on the stream for a stop or a time limit. After a cancel it
//! catches up for [`CANCEL_PATIENCE`](crate::output::CANCEL_PATIENCE) at most, then says
//! where the rest is.
//!
//! It owns the order of those steps and the result's message; it must not choose engines,
//! keep the build's registry of runs (that is [`crate::ContainerJobs`]) or read the job's
//! files itself.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use monkeyci_protocol::error_chain as chain;
use monkeyci_protocol::{
    ContainerRequest, ContainerResult, ContainerSpec, EventKind, JobStatus, Masker, OutputStream, ParamMap,
};
use tokio::sync::{mpsc, watch};

use crate::engine::{self, BoxFuture, ContainerEngine, EngineError, EngineJob};
use crate::follow::{Followed, JobTail, POLL_INTERVAL};
use crate::jobscript::{ContainerEvent, JobLayout};
use crate::output::{JobEvents, Outbox, ProcessOutput};
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
    pub(crate) events: mpsc::Sender<monkeyci_protocol::Event>,
    /// When the jobs' events stop waiting for room: set when the build is canceled.
    pub(crate) give_up_at: watch::Sender<Option<tokio::time::Instant>>,
    /// How many runs ended so far.
    pub(crate) finished: watch::Sender<usize>,
}

impl Build {
    fn job_events(&self, job_id: &str) -> JobEvents {
        JobEvents::new(job_id.to_owned(), Arc::clone(&self.masker), self.events.clone(), self.give_up_at.subscribe())
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
    // Kept from the start, so the job's end is never lost and never waits for room.
    let last = events.reserve_last().await;
    let result = match prepare::create(&build.dirs, &id, &request.job_id, &request.spec, secrets).await {
        Ok((job, layout)) => {
            let mut progress = Progress::new(events.clone(), &request.spec, engine.name(), &job.image);
            let mut result = execute(&engine, &build, &mut progress, &job, &layout, &request, stop).await;
            engine.cleanup(&job).await;
            progress.notes(save::mask_logs(&build.masker, &layout, request.spec.script.len()).await);
            let (notes, saved) = save::save_files(&build.dirs.files, &request.spec, &layout, &result).await;
            progress.notes(notes);
            // Nothing reads the workspace copy once its artifacts and caches are saved.
            progress.notes(save::discard_work(&build.dirs.files, &layout).await);
            progress.outbox.flush().await;
            if let Err(err) = saved {
                result = JobError::from(err).result(result.exit);
            }
            result
        }
        Err(err) => {
            prepare::abort(&prepare::layout(&build.dirs, &id), &err);
            JobError::from(err).result(None)
        }
    };
    let note = events.is_cut().then(|| {
        let shown = "monkeyci: the build was canceled before all of this job's output was shown";
        // A command's own output goes nowhere else; script lines' output is in their logs.
        let line = if request.spec.command.is_empty() {
            format!("{shown}; its logs are in {}", prepare::layout(&build.dirs, &id).logs_dir().display())
        } else {
            format!("{shown}; the rest of it is not kept")
        };
        EventKind::JobOutput { job_id: request.job_id.clone(), stream: OutputStream::Stderr, line }
    });
    let end = EventKind::ContainerEnd {
        job_id: request.job_id.clone(),
        status: result.status,
        exit: result.exit,
        message: result.message.clone(),
    };
    match last {
        Some(last) => last.send(note, end),
        // The build gave up on the job before it had room: its end goes if there is room.
        None => {
            events.send(end).await;
        }
    }
    done.send_replace(Some(result));
    build.finished.send_modify(|count| *count += 1);
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
    progress: &mut Progress,
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
                Ok(notes) => progress.notes(notes),
                Err(err) => return JobError::from(err).result(None),
            }
        }
        progress.event(ContainerEvent::Start);
        if let Some(limit) = deadline {
            sleep.as_mut().reset(tokio::time::Instant::now() + limit);
            timer = Some(Timer::Limit);
        }
    }
    let mut tail = JobTail::new(layout.clone()).with_commands(request.spec.script.len());
    let run = engine.run(job, ProcessOutput::new(progress.outbox.events().clone()), stop_rx);
    tokio::pin!(run);
    let mut stopped: Option<JobStatus> = None;
    let mut poll = tokio::time::interval(POLL_INTERVAL);
    let exit = loop {
        let behind = tail.is_behind();
        let sending = !progress.outbox.is_empty();
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
                        progress.notes(notes);
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
            // What was found goes out as the build takes it, while the job is watched.
            () = progress.outbox.flush(), if sending => {}
            // Read on only once that is sent. A job writing faster than the poll interval is
            // read again at once, each poll a bounded amount.
            _ = async {
                if behind { tokio::task::yield_now().await } else { poll.tick().await; }
            }, if !sending => progress.handle(tail.poll()),
        }
    };
    // The process ended before its preparation did: nothing waits for the start file now.
    if let Some(filling) = preparing.take()
        && let Err(err) = filling.await
    {
        prepare::abort(layout, &err);
        failed = Some(err.into());
    }
    // Catch up with what the job wrote, as the build takes it (after a cancel, until the
    // job's events are cut).
    loop {
        progress.outbox.flush().await;
        if progress.outbox.events().is_cut() {
            break;
        }
        progress.handle(tail.poll());
        if !tail.is_behind() {
            progress.handle(tail.finish());
            break;
        }
    }
    // Cut: nothing more is shown, but a script that ended on its own is still read to its end
    // for how it ended.
    if progress.outbox.events().is_cut() && stopped.is_none() && !command_mode {
        progress.handle(tail.finish());
    }

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
                    let line = request.spec.script.get(i).map(|l| progress.mask(l)).unwrap_or_default();
                    format!("command {i} (`{line}`) exited with code {code}")
                }
                None => format!("the job script ended with code {code}"),
            };
            ContainerResult { status: JobStatus::Failure, exit: Some(code), message: Some(message) }
        }
        None => {
            let stderr = progress.mask(exit.stderr.trim());
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

/// Turns what the job's tail found into build events, queued in order, and remembers how the
/// script went.
struct Progress {
    outbox: Outbox,
    script: Vec<String>,
    engine: &'static str,
    image: String,
    /// The container's size, sent with its start for metering.
    size: u32,
    /// The `container/start` event arrived: the start file was seen.
    started: bool,
    /// The last command that exited non-zero.
    last_failed: Option<usize>,
    /// The script's exit, once it ended.
    script_end: Option<i32>,
}

impl Progress {
    fn new(events: JobEvents, spec: &ContainerSpec, engine: &'static str, image: &str) -> Progress {
        Progress {
            outbox: Outbox::new(events),
            script: spec.script.clone(),
            engine,
            image: image.to_owned(),
            size: spec.size.max(1),
            started: false,
            last_failed: None,
            script_end: None,
        }
    }

    fn job_id(&self) -> String {
        self.outbox.events().job_id().to_owned()
    }

    fn mask(&self, text: &str) -> String {
        self.outbox.events().mask(text)
    }

    /// Handles what was found, in order; a malformed event line is reported on the job's
    /// stderr and skipped. Once the job's events are cut only how the script went is kept.
    fn handle(&mut self, found: Vec<Result<Followed, crate::follow::Error>>) {
        for found in found {
            match found {
                Ok(Followed::Event { event, .. }) => self.event(event),
                Ok(Followed::Output { .. }) | Err(_) if self.outbox.events().is_cut() => {}
                Ok(Followed::Output { stream, line, .. }) => {
                    let line = self.mask(&line);
                    self.outbox.push(EventKind::JobOutput { job_id: self.job_id(), stream, line });
                }
                Err(err) => self.outbox.push(EventKind::JobOutput {
                    job_id: self.job_id(),
                    stream: OutputStream::Stderr,
                    line: format!("monkeyci: {}", chain(&err)),
                }),
            }
        }
    }

    /// Queues the runtime's notes on the job's output.
    fn notes(&mut self, notes: Vec<Note>) {
        for (stream, line) in notes {
            self.outbox.push(EventKind::JobOutput { job_id: self.job_id(), stream, line });
        }
    }

    fn event(&mut self, event: ContainerEvent) {
        let job_id = self.job_id();
        match event {
            ContainerEvent::Start => {
                self.started = true;
                self.outbox.push(EventKind::ContainerStart {
                    job_id,
                    image: self.image.clone(),
                    engine: self.engine.into(),
                    size: Some(self.size),
                });
            }
            ContainerEvent::CommandStart { command, .. } => {
                let line = self.script.get(command).map(|l| self.mask(l)).unwrap_or_default();
                self.outbox.push(EventKind::CommandStart { job_id, command, line });
            }
            ContainerEvent::CommandEnd { command, exit } => {
                if exit != 0 {
                    self.last_failed = Some(command);
                }
                self.outbox.push(EventKind::CommandEnd { job_id, command, exit });
            }
            ContainerEvent::ScriptEnd { exit, .. } => self.script_end = Some(exit),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use monkeyci_protocol::{ContainerRequest, ContainerSpec, Event, EventKind, JobStatus, ParamMap};
    use monkeyci_store::{BlobStore, LocalBlobStore, files};
    use tokio::sync::mpsc;

    use crate::{ContainerJobs, EngineChoice};

    /// Container jobs on the shell engine in `dir`, whose events go to a stream holding
    /// `capacity`; where their directories are.
    fn jobs(dir: &Path, capacity: usize) -> (ContainerJobs, mpsc::Receiver<Event>, PathBuf) {
        let checkout = dir.join("checkout");
        std::fs::create_dir_all(&checkout).unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.join("blobs")).unwrap());
        let files = files::JobFiles::new(store, "b1", &checkout);
        let (tx, events) = mpsc::channel(capacity);
        let jobs_dir = dir.join("jobs");
        let jobs = ContainerJobs::new(
            EngineChoice::Shell,
            "b1".into(),
            checkout,
            jobs_dir.clone(),
            files,
            ParamMap::new(),
            tx,
        );
        (jobs, events, jobs_dir)
    }

    fn request(job: &str, line: &str) -> ContainerRequest {
        let spec =
            ContainerSpec { image: "ignored".into(), script: vec![line.into()], size: 1, ..ContainerSpec::default() };
        ContainerRequest { job_id: job.into(), attempt: 1, spec }
    }

    /// Issue "hardening", 3: canceling the build stops a job printing as fast as it can at
    /// once, though nobody reads the build's events (the bounded stream is full): following
    /// its output never holds the job's supervisor up, and its end still arrives, after a note
    /// saying where the output not shown is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn canceling_stops_a_job_printing_fast() {
        let dir = tempfile::tempdir().unwrap();
        let (jobs, mut events, jobs_dir) = jobs(dir.path(), 4096);
        let line = "yes 'a line of output printed as fast as it can be' | head -c 300000000; sleep 1000";
        let id = jobs.start(request("fast", line)).unwrap();
        let log = jobs_dir.join(&id).join("logs/0.out");
        let began = Instant::now();
        while std::fs::metadata(&log).map_or(0, |m| m.len()) < 30_000_000 {
            assert!(began.elapsed() < Duration::from_secs(60), "the job did not print");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // The stream fills up (but for the room kept for the job's end).
        while events.len() + 2 < 4096 {
            assert!(began.elapsed() < Duration::from_secs(60), "the stream did not fill up: {}", events.len());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let canceled = Instant::now();
        tokio::time::timeout(Duration::from_secs(15), jobs.shutdown()).await.expect("canceling took too long");
        let took = canceled.elapsed();
        let result = jobs.wait(&id, Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(result.status, JobStatus::Canceled, "{result:?}");
        assert!(took < Duration::from_secs(10), "canceling took {took:?}");
        let mut last = Vec::new();
        while let Ok(event) = events.try_recv() {
            last.push(event.kind);
        }
        let [.., EventKind::JobOutput { line: note, .. }, EventKind::ContainerEnd { status, .. }] = &last[..] else {
            panic!("the job's end is missing: {:?}", last.last())
        };
        assert_eq!(*status, JobStatus::Canceled);
        assert!(note.contains("before all of this job's output was shown") && note.contains("logs"), "{note}");
    }

    /// A container job printing far more than the stream holds while the build reads slowly:
    /// its tail is read later, not dropped (nothing queued past the stream's capacity), and
    /// every line arrives once, in order, before the job's end.
    #[tokio::test]
    async fn a_job_printing_faster_than_the_build_reads_loses_no_line() {
        const CAPACITY: usize = 64;
        const LINES: usize = 20_000;
        let dir = tempfile::tempdir().unwrap();
        let (jobs, mut events, jobs_dir) = jobs(dir.path(), CAPACITY);
        let id = jobs.start(request("many", &format!("seq 1 {LINES}"))).unwrap();
        // Nobody reads until the job has printed everything: its tail waits meanwhile.
        let log = jobs_dir.join(&id).join("logs/0.out");
        let began = Instant::now();
        while std::fs::metadata(&log).map_or(0, |m| m.len()) < 108_894 {
            assert!(began.elapsed() < Duration::from_secs(30), "the job did not print");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(events.len() + 2, CAPACITY, "the stream is full (but for the room kept for the job's end)");
        let mut lines = Vec::new();
        let end = loop {
            let event = events.recv().await.unwrap();
            assert!(events.len() <= CAPACITY);
            match event.kind {
                EventKind::JobOutput { line, .. } => lines.push(line),
                EventKind::ContainerEnd { status, .. } => break status,
                _ => {}
            }
            if lines.len() % 1000 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        };
        assert_eq!(end, JobStatus::Success);
        let printed: Vec<String> = (1..=LINES).map(|i| i.to_string()).collect();
        assert!(lines == printed, "{} lines arrived, not the {LINES} printed in order", lines.len());
        jobs.shutdown().await;
    }
}
