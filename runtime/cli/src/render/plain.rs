//! Plain output: one time-stamped line per update, for logs and pipes. It keeps no state:
//! each line comes from its update alone, into a buffer the [`Console`](super::Console)
//! writes out.

use std::io::Write;

use monkeyci_protocol::{Event, EventKind, JobStatus, OutputStream};

use super::view::format_ms;
use monkeyci_build::controller::Update;
use monkeyci_build::state::BuildState;

/// Writes the line for `update`, if it deserves one; `state` is the build with `update`
/// applied; `server_build`: the id of the build on a server being shown, if it is one.
pub(super) fn line(out: &mut Vec<u8>, update: &Update, state: &BuildState, server_build: Option<&str>) {
    match update {
        Update::ScriptLine(stream, line) => {
            let line = strip_ansi(line);
            let _ = writeln!(out, "{} [script] {}{line}", clock(monkeyci_protocol::now_ms()), marker(*stream));
        }
        Update::Event(event) => event_line(out, event, state, server_build),
    }
}

/// Writes the line (or lines) for `event`, as [`line`] does: `monkeyci build logs JOB` shows a
/// recorded job with these.
pub(super) fn event_line(out: &mut Vec<u8>, event: &Event, state: &BuildState, server_build: Option<&str>) {
    if let Some(text) = describe(event, state, server_build) {
        for text in text.lines() {
            let _ = writeln!(out, "{} {}", clock(event.time), strip_ansi(text));
        }
    }
}

fn marker(stream: OutputStream) -> &'static str {
    match stream {
        OutputStream::Stdout => "| ",
        OutputStream::Stderr => "! ",
    }
}

/// The text of an event's line, or `None` for events not worth one; `state` is the build
/// with `event` applied (it knows which jobs may fail); `server_build` the id of the build on a
/// server being shown (a blocked job there is approved with `monkeyci build approve`).
pub(super) fn describe(event: &Event, state: &BuildState, server_build: Option<&str>) -> Option<String> {
    Some(match &event.kind {
        EventKind::ScriptStart { jobs, .. } => {
            let ids: Vec<&str> = jobs.iter().map(|j| j.id.as_str()).collect();
            format!("script started: {} jobs: {}", jobs.len(), ids.join(", "))
        }
        EventKind::ScriptEnd { status, message } => match message {
            Some(message) => format!("script ended: {status}: {message}"),
            None => format!("script ended: {status}"),
        },
        EventKind::JobBlocked { job_id } => match server_build {
            Some(build) => format!(
                "[{job_id}] blocked: waiting for approval (`monkeyci build approve {build} {job_id}` lets it run, \
                 `monkeyci build reject {build} {job_id}` skips it)"
            ),
            None => format!("[{job_id}] blocked: waiting for approval (run with --approve {job_id} to let it run)"),
        },
        EventKind::JobUnblocked { job_id } => format!("[{job_id}] approved"),
        EventKind::JobStart { job_id, attempt } if *attempt > 1 => format!("[{job_id}] started (attempt {attempt})"),
        EventKind::JobStart { job_id, .. } => format!("[{job_id}] started"),
        EventKind::JobOutput { job_id, stream, line } => format!("[{job_id}] {}{line}", marker(*stream)),
        EventKind::JobRetrying { job_id, attempt, message } => {
            format!("[{job_id}] attempt {attempt} failed: {message}; retrying")
        }
        EventKind::JobEnd { job_id, status, duration_ms, message, .. } => {
            let job = state.job(job_id);
            let allowed = if job.is_some_and(|job| job.failed_allowed()) { " (allowed)" } else { "" };
            let mut text = match message {
                Some(message) => format!("[{job_id}] {status}{allowed} after {}: {message}", format_ms(*duration_ms)),
                None => format!("[{job_id}] {status}{allowed} after {}", format_ms(*duration_ms)),
            };
            // What failed in the command: the last lines of its stderr.
            if matches!(status, JobStatus::Failure | JobStatus::Timeout) {
                let tail = job.map_or(&[][..], |job| &job.stderr_tail[..]);
                if !tail.is_empty() {
                    text.push_str("; the last lines of its stderr:");
                }
                for line in tail {
                    text.push_str(&format!("\n[{job_id}]   ! {line}"));
                }
            }
            text
        }
        EventKind::JobSkipped { job_id, reason } => format!("[{job_id}] skipped: {reason}"),
        EventKind::JobSummary { job_id, markdown } => match markdown.lines().count() {
            1 => format!("[{job_id}] left a summary of 1 line (shown with the build's summary)"),
            n => format!("[{job_id}] left a summary of {n} lines (shown with the build's summary)"),
        },
        EventKind::ContainerStart { job_id, image, engine, .. } => {
            format!("[{job_id}] container started: {image} ({engine})")
        }
        EventKind::CommandStart { job_id, command, line } => format!("[{job_id}] $ {line}  (command {command})"),
        EventKind::CommandEnd { job_id, command, exit } if *exit != 0 => {
            format!("[{job_id}] command {command} exited with code {exit}")
        }
        EventKind::ContainerEnd { job_id, status, exit, .. } => match exit {
            Some(exit) => format!("[{job_id}] container ended: {status} (exit code {exit})"),
            None => format!("[{job_id}] container ended: {status}"),
        },
        EventKind::CommandEnd { .. } | EventKind::JournalRecord { .. } => return None,
        EventKind::ScriptSuspended { waiting } => {
            let (jobs, wait) = if *waiting == 1 { ("job", "waits") } else { ("jobs", "wait") };
            format!("script suspended while {waiting} {jobs} {wait} for containers")
        }
        EventKind::ScriptResumed { replayed } => format!("script resumed (replayed {replayed} journal entries)"),
        EventKind::ScriptPlan { .. } | EventKind::JobPending { .. } | EventKind::JobQueued { .. } => return None,
    })
}

/// `HH:MM:SS.mmm` (UTC) of a time in milliseconds since the epoch.
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    format!("{:02}:{:02}:{:02}.{:03}", (secs / 3600) % 24, (secs / 60) % 60, secs % 60, ms % 1000)
}

/// `text` without terminal escape sequences (colors, cursor moves), which tools print even
/// into pipes and which make logs unreadable.
pub(super) fn strip_ansi(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.contains('\x1b') {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x1b' {
            out.push(c);
            continue;
        }
        match chars.next() {
            // CSI: parameters and intermediates, then one final byte in @..~.
            Some('[') => {
                for c in chars.by_ref() {
                    if ('@'..='~').contains(&c) {
                        break;
                    }
                }
            }
            // Character set selection such as ESC ( B: one more character.
            Some('(' | ')') => {
                chars.next();
            }
            _ => {}
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_blocked_job_says_how_to_approve_it_where_it_runs() {
        let event = Event { time: 0, kind: EventKind::JobBlocked { job_id: "deploy".into() } };
        let state = BuildState::default();
        let local = describe(&event, &state, None).unwrap_or_default();
        assert!(local.contains("run with --approve deploy"), "{local}");
        let remote = describe(&event, &state, Some("b1")).unwrap_or_default();
        assert!(remote.starts_with("[deploy] blocked: waiting for approval"), "{remote}");
        assert!(remote.contains("`monkeyci build approve b1 deploy`"), "{remote}");
    }

    #[test]
    fn strips_colors_and_charset_switches() {
        assert_eq!(strip_ansi("\x1b(B\x1b[m\x1b[32m+ added\x1b[0m"), "+ added");
        assert_eq!(strip_ansi("plain"), "plain");
    }
}
