//! Following a running job's files: [`LineTail`] reads the complete lines of one growing file
//! from a byte offset, and [`JobTail`] follows a job's event log and, as its events start
//! them, each command's stdout and stderr logs, returning everything in order: a command's
//! output comes after its `command/start` and before its `command/end`.
//!
//! Both only read files under a [`JobLayout`]: they parse the event log but give the events no
//! meaning, send nothing and start nothing. The supervisor turns what they return into build
//! events; a sidecar would forward it to the build API, keyed by the byte offsets they report.
//! Log paths come from the layout and the command's number, never from the event's text.
//!
//! The job writes these files, so what is in them is its word, checked here: no name on the
//! way to a file may be a symbolic link, and only regular files are read (see `confined`);
//! the event log's lines and size are bounded and its events must come in the wrapper's order
//! (a command starts after the previous one ended, and only the script's own commands); the
//! commands' logs together are read up to a limit ([`LOG_LIMIT`] by default), and a line of
//! a log longer than [`MAX_OUTPUT_LINE`] is returned in pieces. Each call reads a bounded
//! amount, so following costs time linear in what the job writes and never blocks its caller
//! for long; [`JobTail::is_behind`] says when there is more to read at once.

pub(crate) mod confined;

use std::collections::VecDeque;
use std::fs;
use std::io::{self, Read, Seek};
use std::path::{Path, PathBuf};
use std::time::Duration;

use monkeyci_protocol::OutputStream;

use crate::jobscript::{ContainerEvent, JobLayout, MAX_EVENT_LINE};

/// How often [`JobTail::next`] looks for new lines by default.
pub const POLL_INTERVAL: Duration = Duration::from_millis(50);
/// How many bytes of its commands' logs a job may have read, by default; the rest is not.
pub const LOG_LIMIT: u64 = 64 << 20;
/// The longest line of output returned whole; a longer one comes in pieces of at most this.
pub const MAX_OUTPUT_LINE: usize = 64 * 1024;
/// The largest event log read: the wrapper writes about 150 bytes per command.
pub const MAX_EVENT_LOG: u64 = 16 << 20;
/// How many bad event lines are reported before the event log is given up on.
const MAX_BAD_EVENT_LINES: usize = 100;
/// About how many bytes one [`JobTail::poll`] returns at most, so a job writing fast never
/// holds its caller up for long, counting [`LINE_COST`] more for each line. Small, so that
/// what one poll returns (some 500 lines of 64 bytes) and the memory it takes stay in the
/// CPU's cache and are reused from one poll to the next (a tail following fast output costs
/// about 25% more CPU with 4 MiB).
const READ_BUDGET: usize = 96 << 10;
/// What one line returned costs of the [`READ_BUDGET`] besides its bytes: about the size of
/// a [`Followed`] and of the allocation of its text.
const LINE_COST: usize = 128;

/// `bytes` for people: in MiB when it is a whole number of them.
fn size(bytes: u64) -> String {
    if bytes > 0 && bytes.is_multiple_of(1 << 20) { format!("{} MiB", bytes >> 20) } else { format!("{bytes} bytes") }
}

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
    /// The file, or a directory on its way, is a symbolic link or not a regular file: it is
    /// not read, now or later.
    #[error("refused to read {}", path.display())]
    Refused {
        /// The file.
        path: PathBuf,
        /// What it is.
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
    /// An event that cannot come at this point of the script; it is skipped.
    #[error("event line {line_no} in {} cannot be right ({problem}): {line:?}", file.display())]
    UnexpectedEvent {
        /// The event log.
        file: PathBuf,
        /// The line's number (1-based).
        line_no: usize,
        /// The line, cut to a readable length.
        line: String,
        /// Why it cannot be right.
        problem: String,
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
    /// The event log is too large, or has too many bad lines: the rest of it is not read.
    #[error("gave up on the event log {}: {why}", file.display())]
    EventLogAbandoned {
        /// The event log.
        file: PathBuf,
        /// Why.
        why: String,
    },
    /// The commands' logs passed the job's limit: the rest of them is not read.
    #[error("the job's output passed its limit of {}; the rest of it is not shown", size(*limit))]
    LogLimit {
        /// The limit, in bytes.
        limit: u64,
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

/// What a [`LineTail`] does with lines longer than a limit.
#[derive(Debug, Clone, Copy)]
enum LongLines {
    /// Any length is accepted.
    Any,
    /// Reported once as [`Error::LineTooLong`] and dropped.
    Drop(usize),
    /// Returned in pieces of at most this many bytes (cut between UTF-8 characters).
    Split(usize),
}

/// Where a [`LineTail`]'s file is.
#[derive(Debug)]
enum Source {
    /// At a path; its last name must not be a link.
    Path,
    /// At a relative path under a directory; no name of it may be a link.
    Beneath { root: PathBuf, rel: PathBuf },
}

/// Follows one growing file from a byte offset, returning each complete line once, in order.
///
/// Reads are small synchronous reads of a local file, made only when no complete line is
/// buffered; the file need not exist yet. A partial last line waits for its newline, or for
/// [`LineTail::rest`] once the writer is gone. The file is opened without following a link
/// and must be a regular file (a FIFO or a device is refused too, without blocking on it);
/// once refused it is not tried again.
#[derive(Debug)]
pub struct LineTail {
    path: PathBuf,
    source: Source,
    file: Option<fs::File>,
    /// The file was refused: nothing more is read.
    refused: bool,
    /// Where the next read starts: the file offset just past `buf`.
    read: u64,
    /// Just past the last line returned.
    offset: u64,
    /// Bytes read: `buf[start..]` are not returned yet (complete lines and a partial last
    /// one). Bounded by the longest line kept plus one read, unless lines may be any length.
    buf: Vec<u8>,
    /// Where the bytes not yet returned start in `buf`.
    start: usize,
    /// Where to look for the next newline in `buf`: none before it, from `start` on.
    scanned: usize,
    /// Number of the last line read to its end.
    line_no: usize,
    /// Dropping the rest of a line that was too long.
    skipping: bool,
    long: LongLines,
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
            source: Source::Path,
            file: None,
            refused: false,
            read: offset,
            offset,
            buf: Vec::new(),
            start: 0,
            scanned: 0,
            line_no: 0,
            skipping: false,
            long: LongLines::Any,
        }
    }

    /// Follows `rel` under the directory `root` from byte `offset`, refusing the file if any
    /// name of `rel` is a symbolic link: what a tail of a file in a job's directory uses,
    /// since the job can replace its directories too.
    pub fn beneath(root: impl Into<PathBuf>, rel: impl Into<PathBuf>, offset: u64) -> LineTail {
        let (root, rel) = (root.into(), rel.into());
        LineTail {
            source: Source::Beneath { root: root.clone(), rel: rel.clone() },
            ..LineTail::starting_at(root.join(rel), offset)
        }
    }

    /// Refuses lines longer than `max` bytes: each is reported once by
    /// [`LineTail::next_line`] as [`Error::LineTooLong`] and dropped.
    pub fn with_max_line(mut self, max: usize) -> LineTail {
        self.long = LongLines::Drop(max);
        self
    }

    /// Returns lines longer than `max` bytes (at least 4) in pieces of at most `max` bytes,
    /// each ending between two UTF-8 characters when it can.
    pub fn with_split_lines(mut self, max: usize) -> LineTail {
        self.long = LongLines::Split(max.max(4));
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
            let newline = memchr::memchr(b'\n', &self.buf[self.scanned..]).map(|i| self.scanned + i);
            let len = newline.unwrap_or(self.buf.len()) - self.start;
            // The file offset of `buf[0]`.
            let base = self.read - self.buf.len() as u64;
            if self.skipping {
                match newline {
                    Some(at) => {
                        self.skipping = false;
                        self.line_no += 1;
                        self.consume(at + 1);
                        self.offset = base + (at + 1) as u64;
                        continue;
                    }
                    None => {
                        // Dropped as it arrives.
                        self.consume(self.buf.len());
                    }
                }
            } else {
                match (self.long, newline) {
                    (LongLines::Drop(max), _) if len > max => {
                        // Reported now; the rest of the line is dropped as it arrives.
                        self.skipping = true;
                        return Err(Error::LineTooLong { file: self.path.clone(), line_no: self.line_no + 1, max });
                    }
                    (LongLines::Split(max), _) if len > max => {
                        let cut = utf8_cut(&self.buf[self.start..self.start + len], max);
                        return Ok(Some(self.take(cut, 0, base)));
                    }
                    (_, Some(at)) => return Ok(Some(self.take(at - self.start, 1, base))),
                    (_, None) => self.scanned = self.buf.len(),
                }
            }
            if !self.read_more()? {
                return Ok(None);
            }
        }
    }

    /// Returns the next `len` bytes as a line, and moves past them and `skip` more.
    fn take(&mut self, len: usize, skip: usize, base: u64) -> Line {
        let bytes = self.buf[self.start..self.start + len].to_vec();
        let end = base + (self.start + len + skip) as u64;
        self.consume(self.start + len + skip);
        self.line_no += 1;
        self.offset = end;
        Line { number: self.line_no, bytes, end }
    }

    /// Moves past the bytes of `buf` before `to`.
    fn consume(&mut self, to: usize) {
        self.start = to;
        self.scanned = self.scanned.max(to);
    }

    /// The partial last line (no newline yet), taken as a line: call it once the writer is
    /// gone. `None` when there is none.
    pub fn rest(&mut self) -> Option<Line> {
        let pending = &self.buf[self.start..];
        let too_long = match self.long {
            LongLines::Drop(max) | LongLines::Split(max) => pending.len() > max,
            LongLines::Any => false,
        };
        if self.skipping || pending.is_empty() || too_long || memchr::memchr(b'\n', pending).is_some() {
            return None;
        }
        let base = self.read - self.buf.len() as u64;
        Some(self.take(pending.len(), 0, base))
    }

    /// Opens the file, refusing a link or anything but a regular file.
    fn open(&self) -> io::Result<fs::File> {
        match &self.source {
            Source::Path => confined::open_file(&self.path),
            Source::Beneath { root, rel } => confined::Dir::open(root)?.file_beneath(rel),
        }
    }

    /// Reads what the file has now (one read at most) after the bytes not yet returned; false
    /// when there was nothing new (or no file yet, or it was refused).
    fn read_more(&mut self) -> Result<bool, Error> {
        /// The most read at once.
        const CHUNK: usize = 64 * 1024;
        if self.refused {
            return Ok(false);
        }
        let file = match &mut self.file {
            Some(file) => file,
            None => match self.open() {
                Ok(mut file) => {
                    if self.read > 0 {
                        file.seek(io::SeekFrom::Start(self.read)).map_err(self.io_err("seek in"))?;
                    }
                    self.file.insert(file)
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
                Err(source) if confined::is_refusal(&source) => {
                    self.refused = true;
                    return Err(Error::Refused { path: self.path.clone(), source });
                }
                Err(e) => return Err(self.io_err("open")(e)),
            },
        };
        // What was returned is dropped; what was not moves to the front.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scanned -= self.start;
            self.start = 0;
        }
        let filled = self.buf.len();
        self.buf.resize(filled + CHUNK, 0);
        let read = loop {
            match file.read(&mut self.buf[filled..]) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                read => break read,
            }
        };
        let n = read.as_ref().map_or(0, |n| (*n).min(CHUNK));
        self.buf.truncate(filled + n);
        let n = read.map_err(self.io_err("read")).map(|_| n)?;
        self.read += n as u64;
        Ok(n > 0)
    }

    fn io_err(&self, action: &'static str) -> impl FnOnce(io::Error) -> Error + '_ {
        move |source| Error::Io { action, path: self.path.clone(), source }
    }
}

/// Where to cut `bytes` (longer than `max`) into a piece of at most `max` bytes: before the
/// UTF-8 character `max` falls into, unless that is not UTF-8.
pub(crate) fn utf8_cut(bytes: &[u8], max: usize) -> usize {
    let is_continuation = |i: usize| bytes.get(i).is_some_and(|b| b & 0xC0 == 0x80);
    (max.saturating_sub(3)..=max).rev().find(|&cut| cut > 0 && !is_continuation(cut)).unwrap_or(max)
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

/// How much of the commands' logs may still be read: in this call, and for the whole job.
struct Budget {
    /// Bytes left for this call.
    call: usize,
    /// Bytes read for the whole job so far.
    used: u64,
    /// The job's limit.
    limit: u64,
    /// The limit was hit: nothing more is read.
    hit: bool,
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
    /// The event log was given up on: nothing more of it is read.
    abandoned: bool,
    /// Bad event lines reported so far.
    bad_lines: usize,
    /// How many script lines the job has, when known: no other command may start.
    commands: Option<usize>,
    /// The `container/start` event was read.
    started: bool,
    /// The command running (started, not ended).
    running: Option<usize>,
    /// The command that may start next.
    next_command: usize,
    /// A `command/end` waiting until its command's output is read.
    held: Option<(ContainerEvent, u64)>,
    log_limit: u64,
    log_used: u64,
    limit_hit: bool,
    /// The last read stopped before reading everything there was.
    behind: bool,
    interval: Duration,
}

impl JobTail {
    /// Follows the job under `layout` from the start of its event log; the files need not
    /// exist yet.
    pub fn new(layout: JobLayout) -> JobTail {
        let events = LineTail::beneath(layout.root(), "events.jsonl", 0).with_max_line(MAX_EVENT_LINE);
        JobTail {
            layout,
            events,
            logs: Vec::new(),
            found: VecDeque::new(),
            done: false,
            abandoned: false,
            bad_lines: 0,
            commands: None,
            started: false,
            running: None,
            next_command: 0,
            held: None,
            log_limit: LOG_LIMIT,
            log_used: 0,
            limit_hit: false,
            behind: false,
            interval: POLL_INTERVAL,
        }
    }

    /// Polls every `interval` in [`JobTail::next`] instead of [`POLL_INTERVAL`].
    pub fn with_interval(mut self, interval: Duration) -> JobTail {
        self.interval = interval;
        self
    }

    /// The job's script has `lines` lines: a `command/start` of any other command is refused.
    pub fn with_commands(mut self, lines: usize) -> JobTail {
        self.commands = Some(lines);
        self
    }

    /// Reads at most `limit` bytes of the commands' logs instead of [`LOG_LIMIT`].
    pub fn with_log_limit(mut self, limit: u64) -> JobTail {
        self.log_limit = limit;
        self
    }

    /// Whether the `container/script-end` event has been read (nothing after it is).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Whether the last call stopped before reading everything the files had: call again at
    /// once rather than after the poll interval.
    pub fn is_behind(&self) -> bool {
        self.behind
    }

    /// What was found since the last call, without waiting (about 96 KiB at most: see
    /// [`JobTail::is_behind`]). An error (a malformed, unexpected or too long event line, an
    /// unreadable event log, a refused file, the output limit) takes its place in the order;
    /// what follows it is still returned.
    pub fn poll(&mut self) -> Vec<Result<Followed, Error>> {
        self.read();
        self.found.drain(..).collect()
    }

    /// The next thing found, waiting for it; `None` once the script ended (or its event log
    /// was given up on) and everything before its end was returned. It waits forever if the
    /// wrapper dies: race it with the process (it is cancel-safe).
    pub async fn next(&mut self) -> Option<Result<Followed, Error>> {
        loop {
            if let Some(found) = self.found.pop_front() {
                return Some(found);
            }
            if (self.done || self.abandoned) && self.held.is_none() && !self.behind {
                return None;
            }
            self.read();
            if self.found.is_empty() && !self.behind {
                tokio::time::sleep(self.interval).await;
            }
        }
    }

    /// Everything left, once the job's process is gone: what [`JobTail::poll`] returns until it
    /// is no longer behind, plus each log's last line that has no newline.
    pub fn finish(&mut self) -> Vec<Result<Followed, Error>> {
        self.read();
        while self.behind {
            self.read();
        }
        let mut budget = self.budget(usize::MAX);
        for log in &mut self.logs {
            if let Some(line) = log.tail.rest() {
                take_line(log, line, &mut budget, &mut self.found);
            }
        }
        self.end_budget(budget);
        self.found.drain(..).collect()
    }

    fn budget(&self, call: usize) -> Budget {
        Budget { call, used: self.log_used, limit: self.log_limit, hit: self.limit_hit }
    }

    fn end_budget(&mut self, budget: Budget) {
        self.log_used = budget.used;
        self.limit_hit = budget.hit;
    }

    /// Reads the new events, and after them the commands' logs, up to the read budget.
    fn read(&mut self) {
        let mut budget = self.budget(READ_BUDGET);
        self.behind = false;
        loop {
            if let Some((event, end)) = self.held.take() {
                // The command's output comes before its end.
                if !read_logs(&mut self.logs, &mut budget, &mut self.found) {
                    self.held = Some((event, end));
                    self.behind = true;
                    break;
                }
                self.found.push_back(Ok(Followed::Event { event, end }));
            }
            if self.done || self.abandoned {
                break;
            }
            if budget.call == 0 {
                self.behind = true;
                break;
            }
            let line = match self.events.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(err @ (Error::Io { .. } | Error::Refused { .. })) => {
                    // Tried again at the next call (a refused file is not).
                    self.found.push_back(Err(err));
                    break;
                }
                Err(err) => {
                    self.bad_line(err);
                    continue;
                }
            };
            budget.call = budget.call.saturating_sub(line.bytes.len() + 1 + LINE_COST);
            if line.end > MAX_EVENT_LOG {
                self.abandon(format!("it is larger than {}", size(MAX_EVENT_LOG)));
                break;
            }
            if line.bytes.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<ContainerEvent>(&line.bytes) {
                Ok(event) => self.on_event(event, &line),
                Err(source) => self.bad_line(Error::MalformedLine {
                    file: self.events.path().to_owned(),
                    line_no: line.number,
                    line: quote_line(&line.bytes),
                    source,
                }),
            }
        }
        if self.held.is_none() && !read_logs(&mut self.logs, &mut budget, &mut self.found) {
            self.behind = true;
        }
        self.end_budget(budget);
    }

    /// Reports a bad event line, and gives up on the event log after too many.
    fn bad_line(&mut self, err: Error) {
        self.found.push_back(Err(err));
        self.bad_lines += 1;
        if self.bad_lines >= MAX_BAD_EVENT_LINES {
            self.abandon(format!("it has {} bad lines", self.bad_lines));
        }
    }

    fn abandon(&mut self, why: String) {
        self.abandoned = true;
        self.found.push_back(Err(Error::EventLogAbandoned { file: self.events.path().to_owned(), why }));
    }

    /// Why `event` cannot come now, if it cannot: the wrapper starts the container, then runs
    /// the script's commands one after the other, in order, and ends the script between them.
    fn problem(&self, event: &ContainerEvent) -> Option<String> {
        match (event, self.running) {
            (ContainerEvent::Start, _) if self.started => Some("the container already started".into()),
            (ContainerEvent::CommandStart { .. }, _) if !self.started => Some("the container has not started".into()),
            (ContainerEvent::CommandStart { .. }, Some(running)) => Some(format!("command {running} has not ended")),
            (ContainerEvent::CommandStart { command, .. }, None) if self.commands.is_some_and(|n| *command >= n) => {
                Some(format!("the script has {} lines", self.commands.unwrap_or_default()))
            }
            (ContainerEvent::CommandStart { command, .. }, None) if *command != self.next_command => {
                Some(format!("command {} is next", self.next_command))
            }
            (ContainerEvent::CommandEnd { command, .. }, running) if running != Some(*command) => {
                Some(format!("command {command} is not running"))
            }
            (ContainerEvent::ScriptEnd { .. }, Some(running)) => Some(format!("command {running} has not ended")),
            _ => None,
        }
    }

    fn on_event(&mut self, event: ContainerEvent, line: &Line) {
        if let Some(problem) = self.problem(&event) {
            self.bad_line(Error::UnexpectedEvent {
                file: self.events.path().to_owned(),
                line_no: line.number,
                line: quote_line(&line.bytes),
                problem,
            });
            return;
        }
        let end = line.end;
        match &event {
            ContainerEvent::Start => self.started = true,
            ContainerEvent::CommandStart { command, .. } => {
                let command = *command;
                self.running = Some(command);
                self.next_command = command + 1;
                for (stream, path) in [
                    (OutputStream::Stdout, self.layout.stdout_log(command)),
                    (OutputStream::Stderr, self.layout.stderr_log(command)),
                ] {
                    let rel = path.strip_prefix(self.layout.root()).map(Path::to_owned).unwrap_or(path);
                    let tail = LineTail::beneath(self.layout.root(), rel, 0).with_split_lines(MAX_OUTPUT_LINE);
                    self.logs.push(CommandLog { command, stream, tail });
                }
            }
            ContainerEvent::CommandEnd { .. } => {
                self.running = None;
                // Returned once the command's output is.
                self.held = Some((event, end));
                return;
            }
            ContainerEvent::ScriptEnd { .. } => self.done = true,
        }
        self.found.push_back(Ok(Followed::Event { event, end }));
    }
}

/// Moves the complete lines the logs have now into `found`, within `budget`; false when the
/// call's budget ran out first. A log that cannot be read is skipped (a refused one is
/// reported): the command's output is its own business, and the event log says how it ended.
fn read_logs(logs: &mut [CommandLog], budget: &mut Budget, found: &mut VecDeque<Result<Followed, Error>>) -> bool {
    for log in logs {
        loop {
            if budget.hit {
                return true;
            }
            if budget.call == 0 {
                return false;
            }
            match log.tail.next_line() {
                Ok(Some(line)) => take_line(log, line, budget, found),
                Ok(None) => break,
                Err(err @ Error::Refused { .. }) => {
                    found.push_back(Err(err));
                    break;
                }
                Err(_) => break,
            }
        }
    }
    true
}

/// Returns `line` of `log` if the job's limit allows it; reports the limit when it does not.
fn take_line(log: &CommandLog, line: Line, budget: &mut Budget, found: &mut VecDeque<Result<Followed, Error>>) {
    if budget.hit {
        return;
    }
    let len = line.bytes.len() as u64 + 1;
    if budget.used + len > budget.limit {
        budget.hit = true;
        found.push_back(Err(Error::LogLimit { limit: budget.limit }));
        return;
    }
    budget.used += len;
    budget.call = budget.call.saturating_sub(len as usize + LINE_COST);
    found.push_back(Ok(output(log, line)));
}

fn output(log: &CommandLog, line: Line) -> Followed {
    let mut text = match String::from_utf8(line.bytes) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    };
    text.truncate(text.trim_end_matches('\r').len());
    Followed::Output { command: log.command, stream: log.stream, line: text, end: line.end }
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
        let start0 = serde_json::to_string(&cmd_start(0)).unwrap();
        fs::write(
            &path,
            format!("{{\"type\":\"container/start\"}}\n{start0}\n\n{{\"type\":\"command/end\",\"command\":0}}\n"),
        )
        .unwrap();
        let mut tail = JobTail::new(layout);
        assert_eq!(next_event(&mut tail).await.unwrap().unwrap(), ContainerEvent::Start);
        assert_eq!(next_event(&mut tail).await.unwrap().unwrap(), cmd_start(0));
        let err = next_event(&mut tail).await.unwrap().unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "malformed event line 4 in {}: \"{{\\\"type\\\":\\\"command/end\\\",\\\"command\\\":0}}\"",
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
        assert!(matches!(err, Error::LineTooLong { line_no: 6, .. }), "{err}");
        let start1 = serde_json::to_string(&cmd_start(1)).unwrap();
        f.write_all(format!("xxx\n{start1}\n").as_bytes()).unwrap();
        assert_eq!(next_event(&mut tail).await.unwrap().unwrap(), cmd_start(1));
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

    /// Lines across reads of any size, long ones cut into pieces or dropped: each line or
    /// piece comes once, in order, with the offset just past it, as a tail resuming there sees.
    #[test]
    fn follow_lines_across_reads_in_pieces_with_their_offsets() {
        let max = 100;
        let mut text = Vec::new();
        let mut expected_split = Vec::new();
        for (i, len) in [0, 1, 99, 100, 101, 250, 7, 0, 64 * 1024 + 3, 5].into_iter().enumerate() {
            let line: Vec<u8> = "é".repeat(len).into_bytes()[..len].iter().map(|b| b ^ (i as u8 & 1)).collect();
            let mut at = 0;
            while line.len() - at > max {
                let cut = utf8_cut(&line[at..], max);
                expected_split.push((line[at..at + cut].to_vec(), text.len() + at + cut));
                at += cut;
            }
            text.extend_from_slice(&line);
            text.push(b'\n');
            expected_split.push((line[at..].to_vec(), text.len()));
        }
        text.extend_from_slice(b"no newline");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("0.out");
        let mut f = fs::File::create(&path).unwrap();
        let mut split = LineTail::new(&path).with_split_lines(max);
        let mut dropped = LineTail::new(&path).with_max_line(max);
        let (mut got, mut got_dropped, mut too_long) = (Vec::new(), Vec::new(), Vec::new());
        let mut at = 0;
        for size in [1, 3, 70_000, 17, 150, 2, 65_536].into_iter().cycle() {
            let to = (at + size).min(text.len());
            f.write_all(&text[at..to]).unwrap();
            at = to;
            while let Some(line) = split.next_line().unwrap() {
                assert_eq!(split.offset(), line.end);
                got.push((line.bytes, line.end as usize));
            }
            loop {
                match dropped.next_line() {
                    Ok(Some(line)) => got_dropped.push(line.bytes),
                    Ok(None) => break,
                    Err(Error::LineTooLong { line_no, .. }) => too_long.push(line_no),
                    Err(err) => panic!("{err}"),
                }
            }
            if at == text.len() {
                break;
            }
        }
        assert_eq!(got.len(), expected_split.len());
        assert_eq!(got, expected_split);
        let rest = split.rest().unwrap();
        assert_eq!((rest.bytes.as_slice(), rest.end as usize), (&b"no newline"[..], text.len()));
        let short: Vec<Vec<u8>> = text.split(|&b| b == b'\n').filter(|l| l.len() <= max).map(<[u8]>::to_vec).collect();
        assert_eq!(got_dropped, short[..short.len() - 1]);
        assert_eq!(too_long, [5, 6, 9]);
        assert_eq!(dropped.offset() as usize, text.len() - "no newline".len());
        // Resuming just past any line or piece reads the same from there.
        for (i, (_, end)) in expected_split.iter().enumerate() {
            let mut resumed = LineTail::starting_at(&path, *end as u64).with_split_lines(max);
            let next = resumed.next_line().unwrap().map(|l| (l.bytes, l.end as usize));
            assert_eq!(next.as_ref(), expected_split.get(i + 1), "resuming at {end}");
        }
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

    /// A job root whose event log holds `events`, one per line.
    fn job_root(dir: &Path, events: &[ContainerEvent]) -> JobLayout {
        let layout = JobLayout::new(dir.join("root"));
        fs::create_dir_all(layout.logs_dir()).unwrap();
        let text: String = events.iter().map(|e| serde_json::to_string(e).unwrap() + "\n").collect();
        fs::write(layout.events(), text).unwrap();
        layout
    }

    fn outputs(found: &[Result<Followed, Error>]) -> Vec<String> {
        found
            .iter()
            .filter_map(|f| match f {
                Ok(Followed::Output { line, .. }) => Some(line.clone()),
                _ => None,
            })
            .collect()
    }

    fn errors(found: &[Result<Followed, Error>]) -> Vec<String> {
        found.iter().filter_map(|f| f.as_ref().err().map(|e| monkeyci_protocol::error_chain(e))).collect()
    }

    /// Issue "hardening", 1: the host must not follow links in the job's directory.
    #[test]
    fn follow_refuses_links_fifos_and_devices_in_the_job_directory() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host");
        fs::create_dir_all(&host).unwrap();
        fs::write(host.join("0.out"), "host secret\n").unwrap();
        let script = [
            ContainerEvent::Start,
            cmd_start(0),
            cmd_end(0, 0),
            cmd_start(1),
            cmd_end(1, 0),
            end(ScriptStatus::Success, 0),
        ];
        let layout = job_root(dir.path(), &script);
        std::os::unix::fs::symlink(host.join("0.out"), layout.stdout_log(0)).unwrap();
        std::os::unix::fs::symlink("/dev/zero", layout.stderr_log(0)).unwrap();
        let fifo = std::ffi::CString::new(layout.stdout_log(1).into_os_string().into_encoded_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        fs::write(layout.stderr_log(1), "mine\n").unwrap();
        let found = JobTail::new(layout.clone()).with_commands(2).finish();
        assert_eq!(outputs(&found), ["mine"]);
        let refused = |rel: &str, what: &str| {
            format!(
                "refused to read {}: it is {what}, not a regular file; the host follows no link in a job's directory",
                layout.root().join(rel).display()
            )
        };
        assert_eq!(
            errors(&found),
            [
                refused("logs/0.out", "a symbolic link"),
                refused("logs/0.err", "a symbolic link"),
                refused("logs/1.out", "a FIFO, socket or device")
            ]
        );

        // The logs directory itself replaced by a link to a host directory.
        let dir2 = tempfile::tempdir().unwrap();
        let layout = job_root(dir2.path(), &script[..3]);
        fs::remove_dir(layout.logs_dir()).unwrap();
        std::os::unix::fs::symlink(&host, layout.logs_dir()).unwrap();
        let found = JobTail::new(layout.clone()).finish();
        assert_eq!(outputs(&found), Vec::<String>::new());
        let errors = errors(&found);
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert!(errors.iter().all(|e| e.contains("it is a symbolic link, not a directory")), "{errors:?}");
    }

    /// Issue "hardening", 1: the commands' logs are read up to the job's limit, and a line
    /// without end comes in pieces, cut between characters.
    #[test]
    fn follow_reads_logs_up_to_the_limit_in_bounded_lines() {
        let dir = tempfile::tempdir().unwrap();
        let script = [ContainerEvent::Start, cmd_start(0), cmd_end(0, 0), end(ScriptStatus::Success, 0)];
        let layout = job_root(dir.path(), &script);
        let long = format!("x{}", "é".repeat(70_000));
        fs::write(layout.stdout_log(0), format!("short\n{long}\nafter\n")).unwrap();
        let found = JobTail::new(layout).with_log_limit(100_000).finish();
        let lines = outputs(&found);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[0], "short");
        assert_eq!(lines[1].len(), MAX_OUTPUT_LINE - 1, "cut before the character the limit falls into");
        assert!(long.starts_with(&lines[1]));
        assert_eq!(errors(&found), ["the job's output passed its limit of 100000 bytes; the rest of it is not shown"]);
        // The events still come, the end last.
        let events: Vec<_> = found
            .iter()
            .filter_map(|f| match f {
                Ok(Followed::Event { event, .. }) => Some(event.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(events, script);
    }

    /// Issue "hardening", 3: a poll reads a bounded amount; the output still comes before its
    /// command's end.
    #[test]
    fn follow_reads_a_bounded_amount_per_poll_and_keeps_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let script = [ContainerEvent::Start, cmd_start(0), cmd_end(0, 0), end(ScriptStatus::Success, 0)];
        let layout = job_root(dir.path(), &script);
        let line = "a line of output, 32 bytes long\n";
        let count = (READ_BUDGET * 5 / 2) / (line.len() + LINE_COST);
        fs::write(layout.stdout_log(0), line.repeat(count)).unwrap();
        let mut tail = JobTail::new(layout).with_log_limit(u64::MAX);
        let mut all = Vec::new();
        let mut polls = 0;
        loop {
            let found = tail.poll();
            polls += 1;
            assert!(found.len() <= READ_BUDGET / line.len() + 8, "{} in one poll", found.len());
            all.extend(found);
            if !tail.is_behind() {
                break;
            }
        }
        assert_eq!(polls, 3);
        let kinds: Vec<u8> = all
            .iter()
            .map(|f| match f.as_ref().unwrap() {
                Followed::Event { .. } => b'e',
                Followed::Output { .. } => b'o',
            })
            .collect();
        let mut expected = b"ee".to_vec();
        expected.extend(std::iter::repeat_n(b'o', count));
        expected.extend(b"ee");
        assert!(kinds == expected, "output must come between its start and its end");
    }

    /// Events that do not follow the wrapper's order are reported and skipped, so a job cannot
    /// make the host open logs of commands it does not have.
    #[test]
    fn follow_skips_events_out_of_the_wrappers_order() {
        let dir = tempfile::tempdir().unwrap();
        let script = [
            ContainerEvent::Start,
            cmd_start(0),
            cmd_start(7),
            cmd_end(3, 0),
            cmd_end(0, 0),
            cmd_start(9),
            end(ScriptStatus::Success, 0),
        ];
        let layout = job_root(dir.path(), &script);
        fs::write(layout.stdout_log(7), "not a command of the script\n").unwrap();
        let found = JobTail::new(layout).with_commands(2).finish();
        assert_eq!(outputs(&found), Vec::<String>::new());
        let problems: Vec<String> = found
            .iter()
            .filter_map(|f| match f {
                Err(Error::UnexpectedEvent { line_no, problem, .. }) => Some(format!("{line_no}: {problem}")),
                _ => None,
            })
            .collect();
        assert_eq!(
            problems,
            ["3: command 0 has not ended", "4: command 3 is not running", "6: the script has 2 lines"]
        );
    }
}
