//! What an earlier launch of this script journaled, read back for a resume: which jobs ended
//! (and how), which containers were dispatched (with the spec, when it was resolved from the
//! outputs of the job's dependencies), which action jobs were in flight, and the
//! results of their steps (`ctx.run`, `ctx.shell`), matched to the steps a resumed job takes.
//!
//! This module interprets a journal; it never performs I/O. The script reads the journal through
//! the build API (`script`), and entries are written as `journal/record` events through a job's
//! scope (`durable::scope`); replaying a step is `durable::step`'s.

use std::collections::HashMap;

use crate::protocol::{ContainerResult, ContainerSpec, JobStatus, JournalEntry, JournalRecord, StepKey};

/// A job's journaled end: status, last attempt, output, message.
pub(crate) type Ended = (JobStatus, u32, Option<serde_json::Value>, Option<String>);

/// Where a job that was running when the script stopped picks up again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Resume {
    /// The attempt in flight: a container job awaits it again, an action job runs it again
    /// with its recorded steps replayed.
    pub(crate) attempt: u32,
    /// When that attempt started (ms since the epoch), if recorded.
    pub(crate) started_at_ms: Option<u64>,
}

/// A journal read back for a resume.
#[derive(Debug, Clone, Default)]
pub(crate) struct Replay {
    /// Jobs that ended, with how: they are not run again.
    pub(crate) ended: HashMap<String, Ended>,
    /// Jobs running when the script stopped, and where they pick up.
    pub(crate) resumed: HashMap<String, Resume>,
    /// Action jobs declared `idempotent = false` that started and did not end: they fail
    /// rather than run again.
    pub(crate) unfinished_non_idempotent: HashMap<String, u32>,
    /// The jobs planned when the build started.
    planned: Option<Vec<String>>,
    /// The specs container jobs were dispatched with, when they were resolved from their
    /// dependencies' outputs (the latest attempt's).
    pub(crate) specs: HashMap<String, ContainerSpec>,
    /// Recorded steps of action jobs.
    pub(crate) steps: Steps,
    /// Entries read.
    pub(crate) entries: usize,
}

/// The recorded steps of action jobs, by (job, attempt, step number from 1), and how many log
/// lines each in-flight attempt had written when the script suspended.
#[derive(Debug, Clone, Default)]
pub(crate) struct Steps {
    by_key: HashMap<(String, u32, u32), Step>,
    lines: HashMap<(String, u32), u64>,
}

/// A step an action job took.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Step {
    /// `ctx.run`: the container asked for, and how it ended.
    Run { digest: String, result: ContainerResult },
    /// `ctx.shell`: the command (masked), its exit code, output and log lines.
    Shell { command: String, code: Option<i32>, stdout: String, stderr: String, lines: u64 },
}

impl Step {
    /// The step as a user wrote it, for a divergence message.
    pub(crate) fn describe(&self) -> String {
        match self {
            Step::Run { digest, .. } => format!("ctx.run of `{digest}`"),
            Step::Shell { command, .. } => format!("ctx.shell(`{command}`)"),
        }
    }
}

impl Steps {
    /// The step `n` (from 1) of `job`'s `attempt`, if it was recorded.
    pub(crate) fn get(&self, job: &str, attempt: u32, n: u32) -> Option<&Step> {
        self.by_key.get(&(job.to_owned(), attempt, n))
    }

    /// Keeps `step`, recorded at `key` of `job`'s `attempt`; a step result under another key
    /// than a step's cannot be asked for, and is dropped.
    fn record(&mut self, job: &str, attempt: u32, key: StepKey, step: Step) {
        if let StepKey::Step(n) = key {
            self.by_key.insert((job.to_owned(), attempt, n), step);
        }
    }

    /// How many log lines of `job`'s `attempt` were written before the script suspended.
    pub(crate) fn lines_written(&self, job: &str, attempt: u32) -> u64 {
        self.lines.get(&(job.to_owned(), attempt)).copied().unwrap_or(0)
    }
}

impl Replay {
    pub(crate) fn new(entries: Vec<JournalEntry>) -> Replay {
        let mut replay = Replay { entries: entries.len(), ..Replay::default() };
        for entry in entries {
            let key = entry.key();
            let job = entry.job_id;
            match entry.record {
                JournalRecord::Planned { jobs } => replay.planned = Some(jobs),
                JournalRecord::ContainerDispatched { attempt, at_ms, spec } => {
                    if let Some(spec) = spec {
                        replay.specs.insert(job.clone(), *spec);
                    }
                    replay.resumed.insert(job, Resume { attempt, started_at_ms: at_ms });
                }
                JournalRecord::JobStart { attempt } => {
                    replay.unfinished_non_idempotent.insert(job.clone(), attempt);
                    replay.continue_at(job, attempt, None);
                }
                JournalRecord::JobSuspended { attempt, lines, started_at_ms } => {
                    replay.steps.lines.insert((job.clone(), attempt), lines);
                    replay.continue_at(job, attempt, Some(started_at_ms));
                }
                JournalRecord::RunResult { attempt, digest, result } => {
                    replay.steps.record(&job, attempt, key, Step::Run { digest, result });
                    replay.continue_at(job, attempt, None);
                }
                JournalRecord::ShellResult { attempt, command, code, stdout, stderr, lines } => {
                    let step = Step::Shell { command, code, stdout, stderr, lines };
                    replay.steps.record(&job, attempt, key, step);
                    replay.continue_at(job, attempt, None);
                }
                // The runtime hands back stored records whole; a reference left here has nothing
                // to replay.
                JournalRecord::Stored { .. } => {}
                JournalRecord::JobEnd { status, attempt, output, message } => {
                    replay.resumed.remove(&job);
                    replay.unfinished_non_idempotent.remove(&job);
                    replay.ended.insert(job, (status, attempt, output, message));
                }
            }
        }
        replay
    }

    /// Notes that an action job got as far as `attempt`: a resume continues the latest one.
    fn continue_at(&mut self, job: String, attempt: u32, started_at_ms: Option<u64>) {
        let resume = self.resumed.entry(job).or_insert(Resume { attempt, started_at_ms });
        if attempt > resume.attempt {
            *resume = Resume { attempt, started_at_ms };
        } else if attempt == resume.attempt && started_at_ms.is_some() {
            resume.started_at_ms = started_at_ms;
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries == 0
    }

    /// Why the jobs planned now cannot replay this journal, if they cannot: a resumed script
    /// must plan what the first launch planned.
    pub(crate) fn divergence(&self, planned_now: &[String]) -> Option<String> {
        let before = self.planned.as_ref()?;
        if before == planned_now {
            return None;
        }
        let gone: Vec<&str> = before.iter().filter(|j| !planned_now.contains(j)).map(String::as_str).collect();
        let new: Vec<&str> = planned_now.iter().filter(|j| !before.contains(j)).map(String::as_str).collect();
        let mut what = Vec::new();
        if !gone.is_empty() {
            what.push(format!("planned before but not now: {}", gone.join(", ")));
        }
        if !new.is_empty() {
            what.push(format!("planned now but not before: {}", new.join(", ")));
        }
        if what.is_empty() {
            what.push(format!("the order changed: before {}, now {}", before.join(", "), planned_now.join(", ")));
        }
        Some(format!(
            "the resumed pipeline planned other jobs than when the build started ({}); conditions and \
             #[pipeline] functions must depend only on the build context (use ctx.now() and ctx.random_u64(), \
             not the clock, randomness or files outside the checkout); nothing was re-run",
            what.join("; ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(job: &str, key: StepKey, record: JournalRecord) -> JournalEntry {
        JournalEntry::new(job, key, record)
    }

    #[test]
    fn a_replay_that_plans_other_jobs_is_refused_naming_them() {
        let planned = |jobs: &[&str]| {
            entry("", StepKey::Job, JournalRecord::Planned { jobs: jobs.iter().map(|j| j.to_string()).collect() })
        };
        let replay = Replay::new(vec![planned(&["a", "b"])]);
        assert_eq!(replay.divergence(&["a".into(), "b".into()]), None);
        let message = replay.divergence(&["a".into(), "c".into()]).unwrap();
        assert!(message.contains("planned before but not now: b"), "{message}");
        assert!(message.contains("planned now but not before: c"), "{message}");
        assert!(message.contains("nothing was re-run"), "{message}");
    }

    #[test]
    fn a_job_in_flight_resumes_at_its_latest_attempt_with_its_steps_and_log_position() {
        let shell = |attempt, command: &str| JournalRecord::ShellResult {
            attempt,
            command: command.into(),
            code: Some(0),
            stdout: String::new(),
            stderr: String::new(),
            lines: 2,
        };
        let replay = Replay::new(vec![
            entry("job", StepKey::Step(1), shell(1, "make")),
            entry("job", StepKey::Step(1), shell(2, "make again")),
            entry("job", StepKey::Job, JournalRecord::JobSuspended { attempt: 2, lines: 7, started_at_ms: 1_000 }),
            entry(
                "done",
                StepKey::End,
                JournalRecord::JobEnd { status: JobStatus::Success, attempt: 1, output: None, message: None },
            ),
        ]);
        assert_eq!(replay.resumed.get("job"), Some(&Resume { attempt: 2, started_at_ms: Some(1_000) }));
        assert!(!replay.resumed.contains_key("done"));
        assert_eq!(replay.steps.get("job", 2, 1).map(Step::describe).as_deref(), Some("ctx.shell(`make again`)"));
        assert_eq!(replay.steps.get("job", 1, 1).map(Step::describe).as_deref(), Some("ctx.shell(`make`)"));
        assert_eq!(replay.steps.lines_written("job", 2), 7);
        assert_eq!(replay.steps.lines_written("job", 1), 0);
    }

    #[test]
    fn a_non_idempotent_job_is_unfinished_until_its_end_is_journaled() {
        let start = entry("deploy", StepKey::Job, JournalRecord::JobStart { attempt: 1 });
        assert_eq!(Replay::new(vec![start.clone()]).unfinished_non_idempotent.get("deploy"), Some(&1));
        let end = entry(
            "deploy",
            StepKey::End,
            JournalRecord::JobEnd { status: JobStatus::Failure, attempt: 1, output: None, message: None },
        );
        assert!(Replay::new(vec![start, end]).unfinished_non_idempotent.is_empty());
    }
}
