//! What the user sees of a build: live progress while it runs and a summary at the end.
//!
//! On a terminal one line per job updates in place, with job output scrolling above it;
//! otherwise every update is a plain time-stamped line. Both read the build's one fold of the
//! event stream, `monkeyci_build::state::BuildState`. Rendering never decides anything about
//! the build.

mod live;
mod plain;
mod view;

use std::io::{IsTerminal, Write};

use monkeyci_build::controller::Update;
use monkeyci_build::state::BuildState;

pub(crate) use view::{format_ms, job_summaries, summary};

/// The lines of a recorded job's events (see `BuildRecord::job_events`), as the plain live
/// view shows them: time, `[job]`, `$ line  (command N)` markers, `| ` and `! ` output.
pub(crate) fn job_log(events: &[monkeyci_protocol::Event], out: &mut Vec<u8>) {
    let mut state = BuildState::default();
    for event in events {
        state.apply(event);
        if event.kind.job_id().is_some() {
            plain::event_line(out, event, &state, None);
        }
    }
}

/// How to show progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    /// Redraw job lines in place (terminals).
    Live,
    /// One time-stamped line per update (logs, pipes, CI).
    Plain,
}

impl Style {
    /// Live on a terminal, plain otherwise.
    pub(crate) fn detect() -> Style {
        if std::io::stdout().is_terminal() && std::env::var_os("TERM").is_some_and(|t| t != "dumb") {
            Style::Live
        } else {
            Style::Plain
        }
    }
}

/// Shows a build's progress on stdout.
pub(crate) struct Console {
    state: BuildState,
    live: Option<live::LiveBlock>,
    color: bool,
    /// While a question is asked: the updates that arrived, shown once it is answered.
    paused: Option<Vec<Update>>,
    /// The id of the build on a server shown, if it is one.
    server_build: Option<String>,
}

impl Console {
    pub(crate) fn new(style: Style) -> Console {
        let color = style == Style::Live && std::env::var_os("NO_COLOR").is_none();
        let live = (style == Style::Live).then(live::LiveBlock::default);
        Console { state: BuildState::default(), live, color, paused: None, server_build: None }
    }

    /// Shows build `id` of a server: a blocked job says how to approve it there.
    pub(crate) fn of_server_build(self, id: &str) -> Console {
        Console { server_build: Some(id.to_owned()), ..self }
    }

    /// Takes one update into account and shows it (once resumed, if paused).
    pub(crate) fn update(&mut self, update: &Update) {
        if let Some(held) = &mut self.paused {
            held.push(update.clone());
            return;
        }
        if let Update::Event(event) = update {
            self.state.apply(event);
        }
        let mut out = Vec::new();
        match &mut self.live {
            Some(block) => block.update(&mut out, &self.state, update, self.color, self.server_build.as_deref()),
            None => plain::line(&mut out, update, &self.state, self.server_build.as_deref()),
        }
        emit(&out);
    }

    /// Stops showing anything (the live block is erased) while someone is asked a question.
    pub(crate) fn pause(&mut self) {
        if self.paused.is_some() {
            return;
        }
        let mut out = Vec::new();
        if let Some(block) = &mut self.live {
            block.clear(&mut out);
        }
        emit(&out);
        self.paused = Some(Vec::new());
    }

    /// Shows what arrived while paused, and goes on as before.
    pub(crate) fn resume(&mut self) {
        for update in self.paused.take().unwrap_or_default() {
            self.update(&update);
        }
        self.tick();
    }

    /// Refreshes elapsed times (live style only).
    pub(crate) fn tick(&mut self) {
        if self.paused.is_some() {
            return;
        }
        if let Some(block) = &mut self.live {
            let mut out = Vec::new();
            block.redraw(&mut out, &self.state, self.color);
            emit(&out);
        }
    }

    /// Ends live output and prints the summary table, then `footer` (the build's id and how
    /// to read it again).
    pub(crate) fn finish(&mut self, footer: &str) {
        self.resume();
        let mut out = Vec::new();
        if let Some(block) = &mut self.live {
            block.clear(&mut out);
        }
        view::summary(&self.state, &mut out, self.color);
        let _ = writeln!(out, "{footer}");
        emit(&out);
    }
}

/// Writes to stdout; a closed pipe or full disk must not abort the build.
fn emit(bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(bytes);
    let _ = stdout.flush();
}

/// For the live style, a task redrawing `console` five times a second (the clock of running
/// jobs moves even when nothing is printed); abort it when the build is over.
pub(crate) fn live_ticker(
    console: &std::sync::Arc<parking_lot::Mutex<Console>>,
    style: Style,
) -> Option<tokio::task::JoinHandle<()>> {
    (style == Style::Live).then(|| {
        let console = std::sync::Arc::clone(console);
        tokio::spawn(async move {
            let mut every = tokio::time::interval(std::time::Duration::from_millis(200));
            loop {
                every.tick().await;
                console.lock().tick();
            }
        })
    })
}
