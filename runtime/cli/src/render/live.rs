//! Live output for terminals: a block of job lines at the bottom, redrawn in place, with job
//! output and notable events scrolling above it. It draws what the build's fold says, into a
//! buffer the [`Console`](super::Console) writes out.

use std::io::Write;

use monkeyci_protocol::{EventKind, JobStatus};

use monkeyci_build::controller::Update;
use monkeyci_build::state::BuildState;

use super::plain::describe;
use super::view::{format_ms, paint_job, status_text};

/// Jobs shown one per line; beyond this, only running jobs are listed.
const MAX_LINES: usize = 15;

/// The redrawable block: how many lines it currently occupies.
#[derive(Debug, Default)]
pub(super) struct LiveBlock {
    drawn: usize,
}

impl LiveBlock {
    pub(super) fn update(
        &mut self,
        out: &mut Vec<u8>,
        view: &BuildState,
        update: &Update,
        color: bool,
        server_build: Option<&str>,
    ) {
        let scroll = match update {
            Update::ScriptLine(_, line) => Some(format!("[script] {line}")),
            Update::Event(event) => match &event.kind {
                // Status changes show in the block; output and notable events scroll above it.
                EventKind::JobOutput { .. }
                | EventKind::CommandStart { .. }
                | EventKind::JobRetrying { .. }
                | EventKind::JobBlocked { .. }
                | EventKind::ScriptSuspended { .. }
                | EventKind::ScriptResumed { .. }
                | EventKind::ScriptEnd { .. } => describe(event, view, server_build),
                EventKind::JobEnd { status, .. } if status.is_failure() => describe(event, view, server_build),
                _ => None,
            },
        };
        self.clear(out);
        if let Some(line) = scroll {
            let _ = writeln!(out, "{line}");
        }
        self.draw(out, view, color);
    }

    pub(super) fn redraw(&mut self, out: &mut Vec<u8>, view: &BuildState, color: bool) {
        self.clear(out);
        self.draw(out, view, color);
    }

    /// Erases the block, leaving the cursor where it started.
    pub(super) fn clear(&mut self, out: &mut Vec<u8>) {
        if self.drawn > 0 {
            let _ = write!(out, "\x1b[{}A\r\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    fn draw(&mut self, out: &mut Vec<u8>, view: &BuildState, color: bool) {
        let columns = std::env::var("COLUMNS").ok().and_then(|c| c.parse().ok()).unwrap_or(100usize);
        let width = view.jobs().iter().map(|j| j.id.len()).max().unwrap_or(0).min(40);
        let shown: Vec<_> = if view.jobs().len() <= MAX_LINES {
            view.jobs().iter().collect()
        } else {
            view.jobs().iter().filter(|j| j.status == JobStatus::Running).take(MAX_LINES).collect()
        };
        for job in &shown {
            let elapsed = match (job.status, job.started_ms, job.duration_ms) {
                (JobStatus::Running, Some(started), _) => {
                    format_ms(monkeyci_protocol::now_ms().saturating_sub(started))
                }
                (_, _, Some(ms)) => format_ms(ms),
                _ => String::new(),
            };
            let symbol = match job.status {
                _ if job.failed_allowed() => "!",
                JobStatus::Success => "✓",
                JobStatus::Failure | JobStatus::Timeout | JobStatus::Canceled => "✗",
                JobStatus::Running => "●",
                JobStatus::Skipped => "-",
                JobStatus::Blocked => "‖",
                JobStatus::Pending | JobStatus::Queued => "·",
            };
            let mut text = format!("{symbol} {:<width$}  {:<8} {elapsed:>8}", job.id, status_text(job));
            if let Some(message) = job.message.as_deref().and_then(|m| m.lines().next()) {
                text.push_str("  ");
                text.push_str(message);
            }
            let text: String = text.chars().take(columns.saturating_sub(1)).collect();
            let _ = writeln!(out, "{}", paint_job(color, job, &text));
        }
        self.drawn = shown.len();
        if view.jobs().len() > MAX_LINES {
            let done = view.jobs().iter().filter(|j| j.status.is_final()).count();
            let _ = writeln!(out, "{done}/{} jobs done", view.jobs().len());
            self.drawn += 1;
        }
    }
}
