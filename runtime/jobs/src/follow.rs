//! Following a running job's files: [`LineTail`] reads the complete lines of one growing file
//! from a byte offset, and [`JobTail`] follows a job's event log and, as its events start
//! them, each command's stdout and stderr logs, returning everything in order: a command's
//! output comes after its `command/start` and before its `command/end`.
//!
//! Both only read files under a [`JobLayout`]: they parse the event log but give the events no
//! meaning, send nothing and start nothing. The supervisor turns what they return into build
//! events; a sidecar would forward it to the build API, keyed by the byte offsets they report.
//! Log paths come from the layout and the command's number, never from the event's text.

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

use monkeyci_protocol::OutputStream;

use crate::jobscript::{ContainerEvent, JobLayout, MAX_EVENT_LINE};

/// How often [`JobTail::next`] looks for new lines by default.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// What went wrong reading a followed file.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file exists but cannot be opened or read.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done: `open`, `read`, `seek in`.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A line of the event log is not an event; it is skipped.
    #[error("malformed event line {line_no} in {}: {line:?}", file.display())]
    MalformedLine {
        /// The event log.
        file: PathBuf,
        /// The line's number (1-based).
        line_no: usize,
        /// The line, cut to a readable length.
        line: String,
        /// Why it does not parse.
        #[source]
        source: serde_json::Error,
    },
    /// A line is longer than the tail accepts; it is skipped.
    #[error("event line {line_no} in {} is longer than {max} bytes", file.display())]
    LineTooLong {
        /// The file.
        file: PathBuf,
        /// The line's number (1-based).
        line_no: usize,
        /// The longest line accepted.
        max: usize,
    },
}

/// One complete line of a followed file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// Its number, counting from the offset the tail started at (1-based).
    pub number: usize,
    /// Its bytes, without the newline.
    pub bytes: Vec<u8>,
    /// The byte offset just past it: where a tail resuming after this line starts.
    pub end: u64,
}

/// A line waiting in a [`LineTail`].
#[derive(Debug)]
enum Entry {
    Line(Line),
    /// A line that grew past the limit; its bytes are dropped as they arrive.
    TooLong(usize),
    /// The end of a dropped line: the offset moves past it.
    Skipped(u64),
}

/// Follows one growing file from a byte offset, returning each complete line once, in order.
///
/// Reads are small synchronous reads of a local file, made only when no complete line is
/// buffered; the file need not exist yet. A partial last line waits for its newline, or for
/// [`LineTail::rest`] once the writer is gone.
#[derive(Debug)]
pub struct LineTail {
    path: PathBuf,
    file: Option<fs::File>,
    /// Where the next read starts.
    read: u64,
    /// Just past the last line returned.
    offset: u64,
    /// The partial last line read so far.
    partial: Vec<u8>,
    /// Lines read but not yet returned, in file order.
    lines: VecDeque<Entry>,
    /// Number of the last line read to its end.
    line_no: usize,
    /// Dropping the rest of a line that was too long.
    skipping: bool,
    /// The longest line accepted (`None`: any length).
    max_line: Option<usize>,
}

impl LineTail {
    /// Follows `path` from its beginning, accepting lines of any length.
    pub fn new(path: impl Into<PathBuf>) -> LineTail {
        LineTail::starting_at(path, 0)
    }

    /// Follows `path` from byte `offset` (a [`Line::end`] of an earlier tail).
    pub fn starting_at(path: impl Into<PathBuf>, offset: u64) -> LineTail {
        LineTail {
            path: path.into(),
            file: None,
            read: offset,
            offset,
            partial: Vec::new(),
            lines: VecDeque::new(),
            line_no: 0,
            skipping: false,
            max_line: None,
        }
    }

    /// Refuses lines longer than `max` bytes: each is reported once by
    /// [`LineTail::next_line`] as [`Error::LineTooLong`] and dropped.
    pub fn with_max_line(mut self, max: usize) -> LineTail {
        self.max_line = Some(max);
        self
    }

    /// The file followed.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The byte offset just past the last line returned.
    pub fn offset(&self) -> u64 {
        self.offset
    }

    /// The next complete line if the file has one now, without waiting; `Ok(None)` when there
    /// is none yet. An error consumes what it reports: calling again goes on after it.
    pub fn next_line(&mut self) -> Result<Option<Line>, Error> {
        loop {
            match self.lines.pop_front() {
                Some(Entry::Line(line)) => {
                    self.offset = line.end;
                    return Ok(Some(line));
                }
                Some(Entry::TooLong(line_no)) => {
                    let max = self.max_line.unwrap_or_default();
                    return Err(Error::LineTooLong { file: self.path.clone(), line_no, max });
                }
                Some(Entry::Skipped(end)) => self.offset = end,
                None => {
                    if !self.read_more()? {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// The partial last line (no newline yet), taken as a line: call it once the writer is
    /// gone. `None` when there is none.
    pub fn rest(&mut self) -> Option<Line> {
        if self.skipping || self.partial.is_empty() || !self.lines.is_empty() {
            return None;
        }
        self.line_no += 1;
        self.offset = self.read;
        Some(Line { number: self.line_no, bytes: std::mem::take(&mut self.partial), end: self.read })
    }

    /// Reads what the file has now and splits off complete lines; false when there was nothing
    /// new (or no file yet).
    fn read_more(&mut self) -> Result<bool, Error> {
        let file = match &mut self.file {
            Some(file) => file,
            None => match fs::File::open(&self.path) {
                Ok(mut file) => {
                    if self.read > 0 {
                        file.seek(io::SeekFrom::Start(self.read)).map_err(self.io_err("seek in"))?;
                    }
                    self.file.insert(file)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(e) => return Err(self.io_err("open")(e)),
            },
        };
        let mut chunk = [0u8; 16 * 1024];
        let n = loop {
            match file.read(&mut chunk) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(self.io_err("read")(e)),
            }
        };
        if n == 0 {
            return Ok(false);
        }
        let start = self.read;
        self.read += n as u64;
        let mut at = 0;
        while let Some(pos) = chunk[at..n].iter().position(|&b| b == b'\n') {
            let end = start + (at + pos + 1) as u64;
            self.line_no += 1;
            if self.skipping {
                self.skipping = false;
                self.lines.push_back(Entry::Skipped(end));
            } else {
                self.partial.extend_from_slice(&chunk[at..at + pos]);
                let bytes = std::mem::take(&mut self.partial);
                self.lines.push_back(Entry::Line(Line { number: self.line_no, bytes, end }));
            }
            at += pos + 1;
        }
        if !self.skipping {
            self.partial.extend_from_slice(&chunk[at..n]);
            if self.max_line.is_some_and(|max| self.partial.len() > max) {
                // Reported in its turn; the rest of the line is dropped as it arrives.
                self.partial = Vec::new();
                self.skipping = true;
                self.lines.push_back(Entry::TooLong(self.line_no + 1));
            }
        }
        Ok(true)
    }

    fn io_err(&self, action: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io { action, path: self.path.clone(), source }
    }
}

/// What a [`JobTail`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Followed {
    /// An event of the event log.
    Event {
        /// The event.
        event: ContainerEvent,
        /// The event log's offset just past it.
        end: u64,
    },
    /// A line a command wrote to its stdout or stderr log (lossy UTF-8, no line end).
    Output {
        /// The command (script line) that wrote it, 0-based.
        command: usize,
        /// Which of its logs.
        stream: OutputStream,
        /// The line.
        line: String,
        /// That log file's offset just past the line.
        end: u64,
    },
}

/// One command's log, followed since its `command/start`.
#[derive(Debug)]
struct CommandLog {
    command: usize,
    stream: OutputStream,
    tail: LineTail,
}

/// Follows one job's event log and its commands' logs (see the module docs).
#[derive(Debug)]
pub struct JobTail {
    layout: JobLayout,
    events: LineTail,
    logs: Vec<CommandLog>,
    found: VecDeque<Result<Followed, Error>>,
    /// The `container/script-end` event was read: nothing after it is.
    done: bool,
    interval: Duration,
}

impl JobTail {
    /// Follows the job under `layout` from the start of its event log; the files need not
    /// exist yet.
    pub fn new(layout: JobLayout) -> JobTail {
        let events = LineTail::new(layout.events()).with_max_line(MAX_EVENT_LINE);
        JobTail { layout, events, logs: Vec::new(), found: VecDeque::new(), done: false, interval: POLL_INTERVAL }
    }

    /// Polls every `interval` in [`JobTail::next`] instead of [`POLL_INTERVAL`].
    pub fn with_interval(mut self, interval: Duration) -> JobTail {
        self.interval = interval;
        self
    }

    /// Whether the `container/script-end` event has been read (nothing after it is).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Everything found since the last call, without waiting. An error (a malformed or too
    /// long event line, an unreadable event log) takes its place in the order; what follows
    /// it is still returned.
    pub fn poll(&mut self) -> Vec<Result<Followed, Error>> {
        self.read();
        self.found.drain(..).collect()
    }

    /// The next thing found, waiting for it; `None` once the script ended and everything
    /// before its end was returned. It waits forever if the wrapper dies: race it with the
    /// process (it is cancel-safe).
    pub async fn next(&mut self) -> Option<Result<Followed, Error>> {
        loop {
            if let Some(found) = self.found.pop_front() {
                return Some(found);
            }
            if self.done {
                return None;
            }
            self.read();
            if self.found.is_empty() && !self.done {
                tokio::time::sleep(self.interval).await;
            }
        }
    }

    /// Everything left, once the job's process is gone: what [`JobTail::poll`] returns, plus
    /// each log's last line that has no newline.
    pub fn finish(&mut self) -> Vec<Result<Followed, Error>> {
        self.read();
        for log in &mut self.logs {
            drain_log(log, &mut self.found);
            if let Some(line) = log.tail.rest() {
                self.found.push_back(Ok(output(log, line)));
            }
        }
        self.found.drain(..).collect()
    }

    /// Reads the new events, and after them the commands' logs.
    fn read(&mut self) {
        while !self.done {
            let line = match self.events.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(err @ Error::Io { .. }) => {
                    // Tried again at the next call.
                    self.found.push_back(Err(err));
                    break;
                }
                Err(err) => {
                    self.found.push_back(Err(err));
                    continue;
                }
            };
            if line.bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<ContainerEvent>(&line.bytes) {
                Ok(event) => self.on_event(event, line.end),
                Err(source) => self.found.push_back(Err(Error::MalformedLine {
                    file: self.events.path().to_owned(),
                    line_no: line.number,
                    line: quote_line(&line.bytes),
                    source,
                })),
            }
        }
        self.read_logs();
    }

    fn on_event(&mut self, event: ContainerEvent, end: u64) {
        match &event {
            ContainerEvent::CommandStart { command, .. } => {
                let command = *command;
                self.logs.push(CommandLog {
                    command,
                    stream: OutputStream::Stdout,
                    tail: LineTail::new(self.layout.stdout_log(command)),
                });
                self.logs.push(CommandLog {
                    command,
                    stream: OutputStream::Stderr,
                    tail: LineTail::new(self.layout.stderr_log(command)),
                });
            }
            // The command's output comes before its end.
            ContainerEvent::CommandEnd { .. } => self.read_logs(),
            ContainerEvent::ScriptEnd { .. } => self.done = true,
            ContainerEvent::Start => {}
        }
        self.found.push_back(Ok(Followed::Event { event, end }));
    }

    fn read_logs(&mut self) {
        for log in &mut self.logs {
            drain_log(log, &mut self.found);
        }
    }
}

/// Moves the complete lines `log` has now into `found`. A log that cannot be read is
/// skipped: the command's output is its own business, and the event log says how it ended.
fn drain_log(log: &mut CommandLog, found: &mut VecDeque<Result<Followed, Error>>) {
    while let Ok(Some(line)) = log.tail.next_line() {
        found.push_back(Ok(output(log, line)));
    }
}

fn output(log: &CommandLog, line: Line) -> Followed {
    let text = String::from_utf8_lossy(&line.bytes);
    Followed::Output {
        command: log.command,
        stream: log.stream,
        line: text.trim_end_matches('\r').to_owned(),
        end: line.end,
    }
}

/// The bad line for an error message, cut to a readable length.
fn quote_line(line: &[u8]) -> String {
    const MAX: usize = 200;
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches(['\n', '\r']);
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::io::Write;

    use super::*;
    use crate::jobscript::ScriptStatus;
    use crate::jobscript::test_support::*;

    /// Appends `chunks` to `path` (created by the first), pausing between them.
    async fn write_chunks(path: PathBuf, chunks: Vec<Vec<u8>>) {
        for chunk in chunks {
            tokio::time::sleep(Duration::from_millis(30)).await;
            let mut f = fs::OpenOptions::new().create(true).append(true).open(&path).unwrap();
            f.write_all(&chunk).unwrap();
        }
    }

    /// The next event of `tail`, skipping output.
    async fn next_event(tail: &mut JobTail) -> Option<Result<ContainerEvent, Error>> {
        loop {
            match tail.next().await? {
                Ok(Followed::Event { event, .. }) => return Some(Ok(event)),
                Ok(Followed::Output { .. }) => {}
                Err(err) => return Some(Err(err)),
            }
        }
    }

    #[tokio::test]
    async fn follow_reads_events_in_chunks_with_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let layout = JobLayout::new(dir.path());
        let expected = vec![
            ContainerEvent::Start,
            cmd_start(0),
            cmd_end(0, 0),
            cmd_start(1),
            cmd_end(1, 7),
            end(ScriptStatus::Failure, 7),
        ];
        let mut text = String::new();
        for event in &expected {
            text.push_str(&serde_json::to_string(event).unwrap());
            text.push('\n');
        }
        let end_of_script = text.len() as u64;
        text.push_str("\n{\"type\":\"after the end, never read\"}\n");
        // Chunks that cut lines anywhere, including one byte at a time and right at newlines.
        let bytes = text.into_bytes();
        let mut chunks = Vec::new();
        let mut at = 0;
        for size in [1, 5, 20, 26, 1, 1, 80, 3, 60, 120, 9].into_iter().cycle() {
            if at >= bytes.len() {
                break;
            }
            let to = (at + size).min(bytes.len());
            chunks.push(bytes[at..to].to_vec());
            at = to;
        }
        let writer = tokio::spawn(write_chunks(layout.events(), chunks));
        let mut tail = JobTail::new(layout).with_interval(Duration::from_millis(5));
        let mut got = Vec::new();
        let mut last_end = 0;
        let read_all = async {
            while let Some(found) = tail.next().await {
                let Followed::Event { event, end } = found.unwrap() else { continue };
                got.push(event);
                last_end = end;
            }
        };
        tokio::time::timeout(Duration::from_secs(20), read_all).await.expect("the tail did not end");
        assert_eq!(got, expected);
        assert_eq!(last_end, end_of_script);
        assert!(tail.is_done());
        assert!(tail.next().await.is_none());
        writer.await.unwrap();
    }

    #[tokio::test]
    async fn follow_reports_a_malformed_event_line_and_goes_on() {
        let dir = tempfile::tempdir().unwrap();
        let layout = JobLayout::new(dir.path());
        let path = layout.events();
        fs::write(&path, "{\"type\":\"container/start\"}\n\n{\"type\":\"command/end\",\"command\":0}\n").unwrap();
        let mut tail = JobTail::new(layout);
        assert_eq!(next_event(&mut tail).await.unwrap().unwrap(), ContainerEvent::Start);
        let err = next_event(&mut tail).await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "malformed event line 3 in {}: \"{{\\\"type\\\":\\\"command/end\\\",\\\"command\\\":0}}\"",
                path.display()
            )
        );
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.contains("missing field `exit`"), "{cause}");
        // Nothing is lost: the line after the bad one arrives later and is returned.
        assert!(tail.poll().is_empty());
        let mut f = fs::OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"{\"type\":\"command/end\",\"command\":0,\"exit\":0}\n").unwrap();
        assert_eq!(next_event(&mut tail).await.unwrap().unwrap(), cmd_end(0, 0));

        // A line that never ends is refused instead of growing without bound.
        f.write_all(&vec![b'x'; MAX_EVENT_LINE + 10]).unwrap();
        let err = next_event(&mut tail).await.unwrap().unwrap_err();
        assert!(matches!(err, Error::LineTooLong { line_no: 5, .. }), "{err}");
        f.write_all(b"xxx\n{\"type\":\"container/start\"}\n").unwrap();
        assert_eq!(next_event(&mut tail).await.unwrap().unwrap(), ContainerEvent::Start);
    }

    #[test]
    fn follow_lines_resume_at_an_offset_and_keep_the_partial_last_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.out");
        let mut tail = LineTail::new(&path);
        assert_eq!(tail.next_line().unwrap(), None, "no file yet");
        fs::write(&path, "one\r\ntwo\nthr").unwrap();
        let one = tail.next_line().unwrap().unwrap();
        assert_eq!((one.number, one.bytes.as_slice(), one.end), (1, &b"one\r"[..], 5));
        let two = tail.next_line().unwrap().unwrap();
        assert_eq!((two.bytes.as_slice(), two.end), (&b"two"[..], 9));
        assert_eq!(tail.next_line().unwrap(), None, "a partial line waits");
        assert_eq!(tail.offset(), 9);
        let mut resumed = LineTail::starting_at(&path, one.end);
        assert_eq!(resumed.next_line().unwrap().unwrap().bytes, b"two");
        let rest = tail.rest().unwrap();
        assert_eq!((rest.bytes.as_slice(), rest.end), (&b"thr"[..], 12));
        assert_eq!(tail.rest(), None);
    }

    #[tokio::test]
    async fn follow_a_live_wrapper_with_its_output_between_start_and_end() {
        for shell in shells() {
            let (_dir, layout) = job(&["echo one; echo err >&2", "sleep 0.2", "printf half; exit 3"], false);
            let mut cmd = tokio::process::Command::from(wrapper_cmd(&shell, &layout, None, true));
            cmd.kill_on_drop(true);
            let mut child = cmd.spawn().unwrap();
            let mut tail = JobTail::new(layout.clone()).with_interval(Duration::from_millis(10));
            let starter = layout.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(100)).await;
                starter.signal_start().unwrap();
            });
            let mut got = Vec::new();
            let follow = async {
                while let Some(found) = tail.next().await {
                    got.push(found.unwrap());
                }
            };
            tokio::time::timeout(Duration::from_secs(30), follow).await.expect("no script-end event");
            let status = tokio::time::timeout(Duration::from_secs(30), child.wait()).await.unwrap().unwrap();
            assert_eq!(status.code(), Some(3), "{}", shell.name);
            got.extend(tail.finish().into_iter().map(Result::unwrap));
            let event = |event| Followed::Event { end: 0, event };
            let out = |command, stream, line: &str| Followed::Output { command, stream, line: line.into(), end: 0 };
            let got: Vec<Followed> = got
                .into_iter()
                .map(|f| match f {
                    Followed::Event { event, .. } => Followed::Event { event, end: 0 },
                    Followed::Output { command, stream, line, .. } => {
                        Followed::Output { command, stream, line, end: 0 }
                    }
                })
                .collect();
            assert_eq!(
                got,
                [
                    event(ContainerEvent::Start),
                    event(cmd_start(0)),
                    out(0, OutputStream::Stdout, "one"),
                    out(0, OutputStream::Stderr, "err"),
                    event(cmd_end(0, 0)),
                    event(cmd_start(1)),
                    event(cmd_end(1, 0)),
                    event(cmd_start(2)),
                    event(cmd_end(2, 3)),
                    event(end(ScriptStatus::Failure, 3)),
                    out(2, OutputStream::Stdout, "half"),
                ],
                "{}",
                shell.name
            );
        }
    }
}
