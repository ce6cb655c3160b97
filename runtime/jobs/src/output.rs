//! A job's output into the build's event stream: [`JobEvents`], one job's handle on the stream
//! (every line masked), and [`ProcessOutput`], which forwards a process's stdout and stderr
//! lines through it.
//!
//! It needs the job id, the masker and the event sender, and nothing else of the build: it
//! must not run, prepare or judge jobs.

use std::sync::Arc;

use monkeyci_protocol::{Event, EventKind, Masker, OutputStream};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// How much of a process's stderr is kept for error messages.
const STDERR_TAIL: usize = 4096;

/// One job's handle on the build's event stream; every output line it sends is masked.
#[derive(Clone)]
pub(crate) struct JobEvents {
    job_id: String,
    masker: Arc<Masker>,
    events: mpsc::UnboundedSender<Event>,
}

impl JobEvents {
    pub(crate) fn new(job_id: String, masker: Arc<Masker>, events: mpsc::UnboundedSender<Event>) -> JobEvents {
        JobEvents { job_id, masker, events }
    }

    /// The job these events are about.
    pub(crate) fn job_id(&self) -> &str {
        &self.job_id
    }

    /// `text` with the build's secrets masked.
    pub(crate) fn mask(&self, text: &str) -> String {
        self.masker.mask(text)
    }

    /// Sends an event (a build that stopped listening is not an error).
    pub(crate) fn emit(&self, kind: EventKind) {
        let _ = self.events.send(Event::now(kind));
    }

    /// Sends a line of the job's output, masked.
    pub(crate) fn line(&self, stream: OutputStream, line: &str) {
        self.emit(EventKind::JobOutput { job_id: self.job_id.clone(), stream, line: self.mask(line) });
    }
}

/// Forwards a process's stdout and stderr lines into the build's events as the job's output,
/// and keeps the end of stderr for error messages.
pub struct ProcessOutput {
    events: JobEvents,
}

/// The tasks reading a process's output.
pub struct Pumps {
    stdout: Option<tokio::task::JoinHandle<String>>,
    stderr: Option<tokio::task::JoinHandle<String>>,
}

impl ProcessOutput {
    pub(crate) fn new(events: JobEvents) -> ProcessOutput {
        ProcessOutput { events }
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
        tokio::spawn(async move {
            let mut lines = BufReader::new(reader).lines();
            let mut kept = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                let line = events.mask(&line);
                kept.push_str(&line);
                kept.push('\n');
                if kept.len() > STDERR_TAIL {
                    let cut = kept.len() - STDERR_TAIL;
                    let cut = (cut..kept.len()).find(|&i| kept.is_char_boundary(i)).unwrap_or(kept.len());
                    kept.drain(..cut);
                }
                events.emit(EventKind::JobOutput { job_id: events.job_id().to_owned(), stream, line });
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
