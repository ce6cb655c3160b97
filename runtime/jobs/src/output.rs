//! A job's output into the build's event stream: [`JobEvents`], one job's handle on the stream
//! (every line masked), and [`ProcessOutput`], which forwards a process's stdout and stderr
//! lines through it.
//!
//! It needs the job id, the masker and the event sender, and nothing else of the build: it
//! must not run, prepare or judge jobs.
//!
//! A process's output is the job's, so it is read as bytes: what is not UTF-8 is shown lossily
//! (and what follows it is not lost), a line longer than [`MAX_OUTPUT_LINE`] comes in pieces,
//! and past the job's [`LOG_LIMIT`] the output is still read (so the process never blocks or
//! dies on a closed pipe) but no longer forwarded.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use monkeyci_protocol::{Event, EventKind, Masker, OutputStream};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;

use crate::follow::{LOG_LIMIT, MAX_OUTPUT_LINE, utf8_cut};

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
                    if before <= limit {
                        events.line(
                            OutputStream::Stderr,
                            &format!("monkeyci: the job's output passed its limit of {limit} bytes; the rest of it is not shown"),
                        );
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
                events.emit(EventKind::JobOutput { job_id: events.job_id().to_owned(), stream, line: text });
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

    /// Runs `script` with `sh`, forwarding its output; returns its exit code and the lines.
    async fn run(script: &str, output: impl FnOnce(JobEvents) -> ProcessOutput) -> (Option<i32>, Vec<String>) {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let events = JobEvents::new("j".into(), Arc::new(Masker::new(["s3cret"])), tx);
        let mut child = tokio::process::Command::new("sh")
            .args(["-c", script])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pumps = output(events).pump(&mut child);
        let status = child.wait().await.unwrap();
        pumps.finish().await;
        let mut lines = Vec::new();
        while let Ok(event) = rx.try_recv() {
            if let EventKind::JobOutput { line, .. } = event.kind {
                lines.push(line);
            }
        }
        (status.code(), lines)
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
