//! A job's output into the build's event stream: [`JobEvents`], one job's handle on the stream
//! (every line masked), [`Outbox`], the events a job found waiting for room, in order, and
//! [`ProcessOutput`], which forwards a process's stdout and stderr lines through it.
//!
//! It needs the job id, the masker and the event sender, and nothing else of the build: it
//! must not run, prepare or judge jobs.
//!
//! The stream is bounded: a job's events wait for room, so a job printing faster than the
//! build takes its lines is held up (its process blocks on its pipe, its files are followed
//! later) and nothing is dropped. Once the build is canceled the events of a job wait for room
//! [`CANCEL_PATIENCE`] more at most: from then on (or once the build stopped listening) the
//! job's events are cut, nothing more of it is sent, and what was found is still in its
//! files. Each job keeps room for its last events from its start ([`LastEvents`]), so its
//! end is never lost and never waits.
//!
//! A process's output is the job's, so it is read as bytes: what is not UTF-8 is shown lossily
//! (and what follows it is not lost), a line longer than [`MAX_OUTPUT_LINE`] comes in pieces,
//! and past the job's [`LOG_LIMIT`] the output is still read (so the process never blocks or
//! dies on a closed pipe) but no longer forwarded.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use monkeyci_protocol::{Event, EventKind, Masker, OutputStream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::follow::{LOG_LIMIT, MAX_OUTPUT_LINE, utf8_cut};

/// How much of a process's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

/// How long after the build is canceled a job's events still wait for room in the stream: the
/// last lines of a job get shown while the controller takes what is queued, but a job printing
/// fast (or a build no longer reading) cannot hold its stop up.
pub(crate) const CANCEL_PATIENCE: Duration = Duration::from_secs(1);

/// One job's handle on the build's event stream; every output line it sends is masked.
#[derive(Clone)]
pub(crate) struct JobEvents {
    job_id: String,
    masker: Arc<Masker>,
    events: mpsc::Sender<Event>,
    /// When the job's events stop waiting for room: set when the build is canceled.
    give_up_at: watch::Receiver<Option<Instant>>,
    /// Set once an event of the job was not sent: nothing after it is either, so what was
    /// shown has no holes.
    cut: Arc<AtomicBool>,
}

impl JobEvents {
    /// The events of job `job_id`, masked with `masker`, sent to `events`; they stop waiting
    /// for room once `give_up_at` names an instant and it passed.
    pub(crate) fn new(
        job_id: String,
        masker: Arc<Masker>,
        events: mpsc::Sender<Event>,
        give_up_at: watch::Receiver<Option<Instant>>,
    ) -> JobEvents {
        JobEvents { job_id, masker, events, give_up_at, cut: Arc::default() }
    }

    /// The job these events are about.
    pub(crate) fn job_id(&self) -> &str {
        &self.job_id
    }

    /// `text` with the build's secrets masked.
    pub(crate) fn mask(&self, text: &str) -> String {
        self.masker.mask(text)
    }

    /// Whether the job's events were cut: nothing more of them is sent.
    pub(crate) fn is_cut(&self) -> bool {
        self.cut.load(Ordering::Relaxed)
    }

    /// Waits for room for one event; `None` once the job's events are cut (the build is over,
    /// or was canceled and the patience passed), which they stay. Cancel-safe: dropped while
    /// waiting, it took no room.
    pub(crate) async fn room(&self) -> Option<mpsc::Permit<'_, Event>> {
        if self.is_cut() {
            return None;
        }
        let mut give_up_at = self.give_up_at.clone();
        let permit = tokio::select! {
            biased;
            () = given_up(&mut give_up_at) => None,
            permit = self.events.reserve() => permit.ok(),
        };
        if permit.is_none() {
            self.cut.store(true, Ordering::Relaxed);
        }
        permit
    }

    /// Sends an event once there is room; `false` if the job's events are cut (a build that
    /// stopped listening is not an error).
    pub(crate) async fn send(&self, kind: EventKind) -> bool {
        match self.room().await {
            Some(permit) => {
                permit.send(Event::now(kind));
                true
            }
            None => false,
        }
    }

    /// Sends a line of the job's output, masked, once there is room; `false` if the job's
    /// events are cut.
    pub(crate) async fn line(&self, stream: OutputStream, line: &str) -> bool {
        self.send(EventKind::JobOutput { job_id: self.job_id.clone(), stream, line: self.mask(line) }).await
    }

    /// Room for the job's last events, to be kept from its start; `None` if the build was
    /// canceled and gave up on the job before there was room, or is over.
    pub(crate) async fn reserve_last(&self) -> Option<LastEvents> {
        let mut give_up_at = self.give_up_at.clone();
        tokio::select! {
            biased;
            () = given_up(&mut give_up_at) => None,
            permits = async {
                let note = self.events.clone().reserve_owned().await.ok()?;
                let end = self.events.clone().reserve_owned().await.ok()?;
                Some(LastEvents { note, end })
            } => permits,
        }
    }
}

/// Returns once the instant `give_up_at` names passed (never while it names none).
async fn given_up(give_up_at: &mut watch::Receiver<Option<Instant>>) {
    let at = match give_up_at.wait_for(Option::is_some).await {
        Ok(at) => *at,
        Err(_) => None,
    };
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Room kept in the build's event stream for a job's last events: a note, and its end.
pub(crate) struct LastEvents {
    note: mpsc::OwnedPermit<Event>,
    end: mpsc::OwnedPermit<Event>,
}

impl LastEvents {
    /// Sends `note` (if any) and then `end`, without waiting.
    pub(crate) fn send(self, note: Option<EventKind>, end: EventKind) {
        if let Some(note) = note {
            self.note.send(Event::now(note));
        }
        self.end.send(Event::now(end));
    }
}

/// The events of one job waiting for room in the build's stream, sent in order: what a job's
/// tail found is queued at once and goes out as the build takes it.
pub(crate) struct Outbox {
    events: JobEvents,
    queued: VecDeque<Event>,
}

impl Outbox {
    pub(crate) fn new(events: JobEvents) -> Outbox {
        Outbox { events, queued: VecDeque::new() }
    }

    /// The job's handle on the stream.
    pub(crate) fn events(&self) -> &JobEvents {
        &self.events
    }

    /// Queues an event (stamped now); dropped if the job's events are cut.
    pub(crate) fn push(&mut self, kind: EventKind) {
        if !self.events.is_cut() {
            self.queued.push_back(Event::now(kind));
        }
    }

    /// Whether nothing waits.
    pub(crate) fn is_empty(&self) -> bool {
        self.queued.is_empty()
    }

    /// Sends what is queued, in order, as room comes; drops it once the job's events are cut.
    /// Cancel-safe: dropped while waiting, it lost nothing and sent nothing twice.
    pub(crate) async fn flush(&mut self) {
        while !self.queued.is_empty() {
            match self.events.room().await {
                Some(permit) => {
                    if let Some(event) = self.queued.pop_front() {
                        permit.send(event);
                    }
                }
                None => self.queued.clear(),
            }
        }
    }
}

/// Forwards a process's stdout and stderr lines into the build's events as the job's output,
/// and keeps the end of stderr for error messages.
pub struct ProcessOutput {
    events: JobEvents,
    /// Bytes forwarded so far, of both streams.
    forwarded: Arc<AtomicU64>,
    limit: u64,
}

/// The tasks reading a process's output.
pub struct Pumps {
    stdout: Option<tokio::task::JoinHandle<String>>,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl ProcessOutput {
    pub(crate) fn new(events: JobEvents) -> ProcessOutput {
        ProcessOutput { events, forwarded: Arc::new(AtomicU64::new(0)), limit: LOG_LIMIT }
    }

    /// Forwards at most `limit` bytes instead of [`LOG_LIMIT`].
    #[cfg(test)]
    fn with_limit(mut self, limit: u64) -> ProcessOutput {
        self.limit = limit;
        self
    }

    /// Starts forwarding the child's piped stdout and stderr (a stream not piped is skipped).
    pub fn pump(&self, child: &mut tokio::process::Child) -> Pumps {
        Pumps {
            stdout: child.stdout.take().map(|out| self.forward(out, OutputStream::Stdout)),
            stderr: child.stderr.take().map(|err| self.forward(err, OutputStream::Stderr)),
        }
    }

    fn forward(
        &self,
        reader: impl AsyncRead + Unpin + Send + 'static,
        stream: OutputStream,
    ) -> tokio::task::JoinHandle<String> {
        let events = self.events.clone();
        let forwarded = Arc::clone(&self.forwarded);
        let limit = self.limit;
        tokio::spawn(async move {
            let mut reader = BufReader::new(reader);
            let mut kept = String::new();
            let mut line = Vec::new();
            // Cleared once the job's events are cut: the rest is read, and not forwarded.
            let mut forwarding = true;
            loop {
                // `line` may hold the start of a character cut off the last piece.
                let room = (MAX_OUTPUT_LINE + 1).saturating_sub(line.len()) as u64;
                match (&mut reader).take(room).read_until(b'\n', &mut line).await {
                    Ok(0) if line.is_empty() => break,
                    Ok(_) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => break,
                }
                let carry = if line.last() == Some(&b'\n') {
                    line.pop();
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    Vec::new()
                } else if line.len() > MAX_OUTPUT_LINE {
                    line.split_off(utf8_cut(&line, MAX_OUTPUT_LINE))
                } else {
                    // The end of the stream, without a newline.
                    Vec::new()
                };
                let size = line.len() as u64 + 1;
                let before = forwarded.fetch_add(size, Ordering::Relaxed);
                if before + size > limit {
                    if before <= limit && forwarding {
                        let note = format!(
                            "monkeyci: the job's output passed its limit of {limit} bytes; the rest of it is not shown"
                        );
                        forwarding = events.line(OutputStream::Stderr, &note).await;
                    }
                    line = carry;
                    continue;
                }
                let text = events.mask(&String::from_utf8_lossy(&line));
                line = carry;
                if stream == OutputStream::Stderr {
                    kept.push_str(&text);
                    kept.push('\n');
                    if kept.len() > 2 * STDERR_TAIL {
                        let cut = kept.len() - STDERR_TAIL;
                        let cut = (cut..kept.len()).find(|&i| kept.is_char_boundary(i)).unwrap_or(kept.len());
                        kept.drain(..cut);
                    }
                }
                if forwarding {
                    // Waits for room: a process printing faster than the build takes its lines
                    // blocks on its pipe meanwhile.
                    let job_id = events.job_id().to_owned();
                    forwarding = events.send(EventKind::JobOutput { job_id, stream, line: text }).await;
                }
            }
            if kept.len() > STDERR_TAIL {
                let cut = kept.len() - STDERR_TAIL;
                let cut = (cut..kept.len()).find(|&i| kept.is_char_boundary(i)).unwrap_or(kept.len());
                kept.drain(..cut);
            }
            kept
        })
    }
}

impl Pumps {
    /// Waits until both streams are read to their end; returns the end of stderr.
    pub async fn finish(self) -> String {
        if let Some(out) = self.stdout {
            let _ = out.await;
        }
        match self.stderr {
            Some(err) => err.await.unwrap_or_default(),
            None => String::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::process::Stdio;

    use super::*;

    /// A job's events on a channel holding `capacity`; the sender that cancels the build.
    fn job_events(capacity: usize) -> (JobEvents, mpsc::Receiver<Event>, watch::Sender<Option<Instant>>) {
        let (tx, rx) = mpsc::channel(capacity);
        let (give_up, give_up_at) = watch::channel(None);
        (JobEvents::new("j".into(), Arc::new(Masker::new(["s3cret"])), tx, give_up_at), rx, give_up)
    }

    fn sh(script: &str) -> tokio::process::Child {
        tokio::process::Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }

    fn line_of(event: Event) -> Option<String> {
        match event.kind {
            EventKind::JobOutput { line, .. } => Some(line),
            _ => None,
        }
    }

    /// Runs `script` with `sh`, forwarding its output; returns its exit code and the lines.
    async fn run(script: &str, output: impl FnOnce(JobEvents) -> ProcessOutput) -> (Option<i32>, Vec<String>) {
        let (events, mut rx, _give_up) = job_events(64);
        let taken = tokio::spawn(async move {
            let mut lines = Vec::new();
            while let Some(event) = rx.recv().await {
                lines.extend(line_of(event));
            }
            lines
        });
        let mut child = sh(script);
        let pumps = output(events).pump(&mut child);
        let status = child.wait().await.unwrap();
        pumps.finish().await;
        (status.code(), taken.await.unwrap())
    }

    /// The stream is bounded: a process printing far more than it holds while nobody reads is
    /// held up (blocked on its pipe), goes on once the build reads, slowly, and every line
    /// arrives once, in order, with never more queued than the stream holds.
    #[tokio::test]
    async fn a_process_printing_faster_than_the_build_reads_is_held_up_and_loses_nothing() {
        const CAPACITY: usize = 16;
        // About 170 kB: more than the pipe and the stream hold together.
        const LINES: usize = 30_000;
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let (events, mut rx, _give_up) = job_events(CAPACITY);
        let mut child = sh(&format!("seq 1 {LINES}; touch {}", done.display()));
        let pumps = ProcessOutput::new(events).pump(&mut child);

        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!done.exists(), "the process was not held up while nobody read");
        assert_eq!(rx.len(), CAPACITY);

        let mut lines = Vec::new();
        while let Some(event) = rx.recv().await {
            assert!(rx.len() <= CAPACITY);
            lines.extend(line_of(event));
            if lines.len() % 500 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
        assert!(child.wait().await.unwrap().success());
        pumps.finish().await;
        assert!(done.exists());
        let printed: Vec<String> = (1..=LINES).map(|i| i.to_string()).collect();
        assert!(lines == printed, "{} lines arrived, not the {LINES} printed in order", lines.len());
    }

    /// Once the build was canceled and its patience passed, a job's output no longer waits for
    /// room: the process is not held up (its pipe is still drained), and what was sent before
    /// is whole, without holes.
    #[tokio::test]
    async fn a_canceled_builds_job_is_no_longer_held_up() {
        const CAPACITY: usize = 16;
        let dir = tempfile::tempdir().unwrap();
        let done = dir.path().join("done");
        let (events, mut rx, give_up) = job_events(CAPACITY);
        let mut child = sh(&format!("seq 1 30000; touch {}", done.display()));
        let pumps = ProcessOutput::new(events.clone()).pump(&mut child);
        tokio::time::sleep(Duration::from_millis(200)).await;
        give_up.send_replace(Some(Instant::now()));
        let ended = tokio::time::timeout(Duration::from_secs(10), async {
            let status = child.wait().await.unwrap();
            pumps.finish().await;
            status
        })
        .await
        .expect("the canceled job was held up");
        assert!(ended.success() && done.exists());
        assert!(events.is_cut() && !events.send(EventKind::JobPending { job_id: "j".into() }).await);
        drop(events);
        let mut lines = Vec::new();
        while let Some(event) = rx.recv().await {
            lines.extend(line_of(event));
        }
        let printed: Vec<String> = (1..=CAPACITY).map(|i| i.to_string()).collect();
        assert_eq!(lines, printed);
    }

    /// Issue "hardening", 4: a byte that is not UTF-8 neither kills the process (by closing
    /// its pipe) nor loses what follows.
    #[tokio::test]
    async fn output_shows_bytes_that_are_not_utf8_lossily_and_goes_on() {
        let (code, lines) =
            run(r"printf 'a\377b\r\n'; sleep 0.2; echo next; echo s3cret >&2", ProcessOutput::new).await;
        assert_eq!(code, Some(0));
        let mut lines = lines;
        lines.sort();
        assert_eq!(lines, ["***", "a\u{FFFD}b", "next"]);
    }

    /// Issue "hardening", 1: a line without end comes in pieces, and past the job's limit
    /// nothing is forwarded, but everything is read.
    #[tokio::test]
    async fn output_bounds_lines_and_the_jobs_output() {
        let script =
            "head -c 200000 /dev/zero | tr '\\0' x; echo; i=0; while [ $i -lt 100 ]; do echo line $i; i=$((i+1)); done";
        let (code, lines) = run(script, |events| ProcessOutput::new(events).with_limit(150_000)).await;
        assert_eq!(code, Some(0));
        let lens: Vec<usize> = lines.iter().map(String::len).collect();
        assert_eq!(lens[..2], [MAX_OUTPUT_LINE, MAX_OUTPUT_LINE]);
        assert_eq!(
            lines[2],
            "monkeyci: the job's output passed its limit of 150000 bytes; the rest of it is not shown"
        );
        assert_eq!(lines.len(), 3);
    }
}
