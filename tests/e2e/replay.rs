//! Replay on resume, end to end: a resumed script (`--suspend always`) replays its journal, and
//! refuses to go on when its code now decides differently from the first launch. The wall clock
//! is the usual culprit: read in a `#[pipeline]` function it makes the resume plan other jobs
//! (the build fails naming them and re-runs nothing; `ctx.now()` is the fix), and read inside an
//! action job it makes a `ctx.run` step ask for another container than the one journaled (the
//! job fails naming both). A journal of 10,000 entries replays every job exactly once.
//!
//! A `ctx.run` step still in flight when the script suspended (not journaled yet) is checked
//! too: the runtime refuses to hand the resumed job a container other than the one it asks for.
//!
//! Like `suspend.rs`, each job's code notes its runs in a log file outside the checkout, so the
//! tests can count how often it ran.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::Instant;

use monkeyci_protocol::{BuildStatus, Event, EventKind, JobStatus};

use crate::util::{
    BUSYBOX, MonkeyciCommand, Output, TestRepo, engines, lines_of, noting_prelude, replayed_counts, run_on,
};

/// `monkeyci build run --suspend always` of the repository with `engine`.
fn run_suspending(repo: &TestRepo, engine: &str) -> MonkeyciCommand {
    run_on(repo, engine).args(["--suspend", "always"])
}

/// The jobs of the `script/start` event (the first launch's plan).
fn first_plan(out: &Output) -> Vec<&str> {
    out.events
        .iter()
        .find_map(|e| match &e.kind {
            EventKind::ScriptStart { jobs, .. } => Some(jobs.iter().map(|j| j.id.as_str()).collect()),
            _ => None,
        })
        .unwrap_or_default()
}

/// The jobs whose container started, in order.
fn containers_started(out: &Output) -> Vec<&str> {
    out.events_of("container/start").iter().filter_map(|e| e.kind.job_id()).collect()
}

/// A `#[pipeline]` that plans `fresh` when `NOW` is less than two seconds after the build
/// started (`ctx.now()`), else `late`; then a three-second container job and an action job
/// after it. `now` is the Rust expression read as the current time.
fn clock_pipeline(log: &Path, now: &str) -> String {
    noting_prelude(log)
        + &r#"
#[pipeline]
fn clocked(ctx: &Ctx) -> Vec<Job> {
    let now: SystemTime = NOW;
    let since_start = now.duration_since(ctx.now()).unwrap_or_default();
    let first: &'static str = if since_start < Duration::from_secs(2) { "fresh" } else { "late" };
    vec![
        Job::action(first, move |_ctx: Ctx| async move { note(first) }),
        Job::container("clock-wait", container("IMAGE").script(["sleep 3"])).depends_on([first]),
        Job::action("clock-after", |_ctx: Ctx| async move { note("after") }).depends_on(["clock-wait"]),
    ]
}

monkeyci_sdk::main!();
"#
        .replace("NOW", now)
        .replace("IMAGE", BUSYBOX)
}

/// The wall clock read in `#[pipeline]` makes the resume (three seconds later, after the
/// container) plan `late` where the first launch planned `fresh`: the build fails with an
/// error naming both jobs and telling the user to use `ctx.now()`, and re-runs nothing (`fresh`
/// ran once, `late` and the job after the container never).
#[test]
fn the_wall_clock_in_a_pipeline_function_fails_the_resume_naming_the_jobs() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let pipeline = clock_pipeline(&log, "SystemTime::now()");
        let repo = TestRepo::with_pipeline(&format!("replay_wall_clock_{engine}"), &pipeline);
        let out = run_suspending(&repo, engine).output();
        assert_eq!(
            first_plan(&out),
            ["fresh", "clock-wait", "clock-after"],
            "{engine}: the first launch must plan `fresh` (it planned within two seconds of the start); {out:?}"
        );
        assert_eq!(out.events_of("script/suspended").len(), 1, "{engine}: {out:?}");

        // Refused before anything ran again: no `script/resumed`, an error naming both jobs.
        out.assert_code(2);
        let (status, message) = out.build_end().unwrap_or_else(|| panic!("{engine}: no script/end; {out:?}"));
        assert_eq!(status, BuildStatus::Error, "{engine}: {out:?}");
        let message = message.unwrap_or_default();
        for text in ["planned before but not now: fresh", "planned now but not before: late", "use ctx.now()"] {
            assert!(message.contains(text), "{engine}: the message lacks {text:?}: {message:?}");
        }
        assert!(out.events_of("script/resumed").is_empty(), "{engine}: it must not resume; {out:?}");
        // What the user reads: the error on stderr, and the end of the build on stdout.
        out.assert_stderr_contains(&format!("error: {message}"));
        out.assert_stdout_contains("planned now but not before: late");

        // Nothing re-ran: `fresh` once, its container once, nothing after.
        assert_eq!(lines_of(&log), ["fresh"], "{engine}: {out:?}");
        assert_eq!(containers_started(&out), ["clock-wait"], "{engine}: {out:?}");
        let container_ends: Vec<&EventKind> = out.events_of("container/end").iter().map(|e| &e.kind).collect();
        assert!(
            matches!(container_ends.as_slice(), [EventKind::ContainerEnd { status: JobStatus::Success, .. }]),
            "{engine}: the container must have ended once, before the resume; {out:?}"
        );
        assert_eq!(out.started_jobs(), ["fresh", "clock-wait"], "{engine}: {out:?}");
        assert_eq!(out.status("late"), None, "{engine}: {out:?}");
    }
}

/// The same pipeline reading `ctx.now()` (the build's start, the same on every launch) as its
/// time, the documented fix, plans the same jobs on the resume and succeeds, each job once.
#[test]
fn ctx_now_in_a_pipeline_function_resumes_with_the_same_plan() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("replay_ctx_now_{engine}"), &clock_pipeline(&log, "ctx.now()"));
        let out = run_suspending(&repo, engine).output();
        out.assert_code(0);
        assert_eq!(out.build_end(), Some((BuildStatus::Success, None)), "{engine}: {out:?}");
        assert_eq!(first_plan(&out), ["fresh", "clock-wait", "clock-after"], "{engine}: {out:?}");
        assert_eq!(out.events_of("script/suspended").len(), 1, "{engine}: {out:?}");
        let replayed = replayed_counts(&out);
        assert!(
            replayed.len() == 1 && replayed[0] >= 3,
            "{engine}: one resume replaying the plan expected: {replayed:?}"
        );
        assert_eq!(lines_of(&log), ["fresh", "after"], "{engine}: {out:?}");
        assert_eq!(containers_started(&out), ["clock-wait"], "{engine}: {out:?}");
        assert_eq!(out.started_jobs(), ["fresh", "clock-wait", "clock-after"], "{engine}: {out:?}");
    }
}

/// An action job whose first `ctx.run` step runs `echo fresh` when the job's code runs less
/// than two seconds after the build started (wall clock), else `echo late`, then a
/// three-second step; `clock-hold` keeps the script busy until step 1 has ended, so the script
/// suspends only during step 2, with step 1 journaled. A job after it.
fn steps_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + &r#"
#[job]
async fn clock_steps(ctx: &Ctx) -> Result<()> {
    let since_start = SystemTime::now().duration_since(ctx.now()).unwrap_or_default();
    let first = if since_start < Duration::from_secs(2) { "echo fresh" } else { "echo late" };
    note(&format!("step1 {first}"))?;
    ctx.run(container("IMAGE").script([first])).await?;
    note("step1-done")?;
    ctx.run(container("IMAGE").script(["sleep 3"])).await?;
    note("step2-done")
}

/// Runs until step 1 has ended: while it runs, the script cannot suspend.
#[job]
async fn clock_hold(ctx: &Ctx) -> Result<()> {
    for _ in 0..1500 {
        if std::fs::read_to_string(LOG).unwrap_or_default().lines().any(|l| l == "step1-done") {
            return Ok(());
        }
        ctx.sleep(Duration::from_millis(20)).await;
    }
    Err(JobError::msg("step 1 did not end within 30 s"))
}

#[job(depends_on = [clock_steps])]
async fn clock_steps_after(_ctx: &Ctx) -> Result<()> {
    note("after")
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

/// The wall clock read inside an action job picks step 1's container: `echo fresh` on the first
/// launch, which runs and is journaled; the script suspends during step 2 and is resumed after
/// it, three seconds later, when the job's code asks for `echo late` at step 1. The job fails
/// naming both containers; no container ran twice and the job after it was skipped.
#[test]
fn the_wall_clock_choosing_a_ctx_run_container_fails_the_resumed_job_naming_both() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("replay_steps_clock_{engine}"), &steps_pipeline(&log));
        let out = run_suspending(&repo, engine).output();

        // The first launch ran step 1 as `echo fresh` and suspended during step 2; the resumed
        // job asked for `echo late` at step 1 and stopped there.
        assert_eq!(
            lines_of(&log),
            ["step1 echo fresh", "step1-done", "step1 echo late"],
            "{engine}: the first launch must reach step 1 within two seconds of the start; {out:?}"
        );
        assert_eq!(out.events_of("script/suspended").len(), 1, "{engine}: {out:?}");
        assert_eq!(out.events_of("script/resumed").len(), 1, "{engine}: {out:?}");
        assert_eq!(containers_started(&out), ["clock-steps.run1", "clock-steps.run2"], "{engine}: {out:?}");
        assert_eq!(out.status("clock-hold"), Some(JobStatus::Success), "{engine}: {out:?}");

        out.assert_code(1);
        assert_eq!(out.status("clock-steps"), Some(JobStatus::Failure), "{engine}: {out:?}");
        let message = out.message("clock-steps").unwrap_or_default();
        for text in ["diverged on resume", "step 1", r#"["echo fresh"]"#, r#"["echo late"]"#] {
            assert!(message.contains(text), "{engine}: the job's message lacks {text:?}: {message:?}");
        }
        assert_eq!(out.status("clock-steps-after"), Some(JobStatus::Skipped), "{engine}: {out:?}");
        let (status, _) = out.build_end().unwrap_or_else(|| panic!("{engine}: no script/end; {out:?}"));
        assert_eq!(status, BuildStatus::Failure, "{engine}: {out:?}");
        // What the user reads: the job's failure with both containers.
        out.assert_stdout_contains("[clock-steps] failure after");
        out.assert_stdout_contains(message);
    }
}

/// An action job whose only `ctx.run` step is chosen by the wall clock: a three-second
/// `sleep 3; echo fresh` when the job's code runs less than two seconds after the build
/// started, else `echo late`. The script suspends while the step runs, so the step is in
/// flight, not journaled, when the resumed job asks for it again.
fn in_flight_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + &r#"
#[job]
async fn in_flight_step(ctx: &Ctx) -> Result<()> {
    let since_start = SystemTime::now().duration_since(ctx.now()).unwrap_or_default();
    let script = if since_start < Duration::from_secs(2) { "sleep 3; echo fresh" } else { "echo late" };
    note(&format!("step1 {script}"))?;
    ctx.run(container("IMAGE").script([script])).await?;
    note("step1-done")
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

/// A `ctx.run` step in flight when the script suspended, asked for with another container by
/// the resumed job, must fail the job naming both (as a journaled step does), rather than hand
/// it the result of the container it no longer asks for.
#[test]
fn a_ctx_run_step_in_flight_asked_differently_on_resume_fails_naming_both() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let repo = TestRepo::with_pipeline("replay_in_flight", &in_flight_pipeline(&log));
    let out = run_suspending(&repo, "shell").output();
    // The first launch asked for the long container; the resume, after it, for the other one.
    let asked: Vec<String> = lines_of(&log).into_iter().filter(|l| l.starts_with("step1 ")).collect();
    assert_eq!(asked, ["step1 sleep 3; echo fresh", "step1 echo late"], "{out:?}");
    assert_eq!(containers_started(&out), ["in-flight-step.run1"], "{out:?}");

    assert_eq!(out.status("in-flight-step"), Some(JobStatus::Failure), "{out:?}");
    let message = out.message("in-flight-step").unwrap_or_default();
    for text in ["sleep 3; echo fresh", "echo late"] {
        assert!(message.contains(text), "the job's message lacks {text:?}: {message:?}");
    }
    out.assert_code(1);
}

/// How many tiny action jobs the long journal test has.
const MANY: usize = 10_000;

/// `MANY` tiny action jobs, a short container job depending on all of them, and an action job
/// after the container.
fn many_pipeline(log: &Path) -> String {
    noting_prelude(log)
        + &r#"
#[pipeline]
fn many(_ctx: &Ctx) -> Vec<Job> {
    let mut jobs: Vec<Job> = (1..=MANY_JOBS)
        .map(|n| {
            Job::action(format!("tiny-{n:05}"), move |_ctx: Ctx| async move {
                note(&format!("tiny-{n:05}"))?;
                Ok(n)
            })
        })
        .collect();
    let tiny: Vec<String> = jobs.iter().map(|job| job.id().to_owned()).collect();
    jobs.push(Job::container("huge-wait", container("IMAGE").script(["sleep 1"])).depends_on(tiny));
    jobs.push(Job::action("huge-final", |_ctx: Ctx| async move { note("final") }).depends_on(["huge-wait"]));
    jobs
}

monkeyci_sdk::main!();
"#
        .replace("MANY_JOBS", &format!("{MANY}u32"))
        .replace("IMAGE", BUSYBOX)
}

/// What a failed assertion on the long journal shows: not its 50,000 events.
fn brief(out: &Output) -> String {
    let tail: Vec<&str> = out.stdout.lines().rev().take(20).collect::<Vec<_>>().into_iter().rev().collect();
    format!(
        "exit {:?} after {:?}, {} events\n--- stderr\n{}\n--- stdout (last lines)\n{}",
        out.code,
        out.elapsed,
        out.events.len(),
        out.stderr,
        tail.join("\n")
    )
}

/// The time of the first event of `type_name` matching `pick`, in ms after `origin`.
fn at(events: &[Event], origin: u64, type_name: &str, pick: impl Fn(&Event) -> bool) -> String {
    match events.iter().find(|e| e.kind.type_name() == type_name && pick(e)) {
        Some(e) => format!("{:>6} ms", e.time.saturating_sub(origin)),
        None => "     never".to_owned(),
    }
}

/// Where the time of the long journal build went, from the events' own times (stamped where
/// they happened: in the script for its events, in the controller for containers).
fn phases(out: &Output, total: std::time::Duration) -> String {
    let events = &out.events;
    let origin = events.first().map_or(0, |e| e.time);
    let last = events.last().map_or(0, |e| e.time);
    let is_tiny = |e: &Event| e.kind.job_id().is_some_and(|j| j.starts_with("tiny-"));
    let last_tiny_end =
        events.iter().rev().find(|e| e.kind.type_name() == "job/end" && is_tiny(e)).map_or(0, |e| e.time);
    let any = |_: &Event| true;
    let job = |id: &'static str| move |e: &Event| e.kind.job_id() == Some(id);
    [
        format!("monkeyci ran {total:?} in all (compiling the pipeline included, if it did)"),
        format!("  script/start          {}", at(events, origin, "script/start", any)),
        format!("  first tiny job/start  {}", at(events, origin, "job/start", is_tiny)),
        format!("  last tiny job/end     {:>6} ms", last_tiny_end.saturating_sub(origin)),
        format!("  container/start       {}", at(events, origin, "container/start", any)),
        format!("  script/suspended      {}", at(events, origin, "script/suspended", any)),
        format!("  container/end         {}", at(events, origin, "container/end", any)),
        format!("  script/resumed        {}", at(events, origin, "script/resumed", any)),
        format!("  huge-final job/start  {}", at(events, origin, "job/start", job("huge-final"))),
        format!("  script/end            {}", at(events, origin, "script/end", any)),
        format!("  last event            {:>6} ms; {} events", last.saturating_sub(origin), events.len()),
    ]
    .join("\n")
}

/// 10,000 tiny action jobs before a container job, with `--suspend always`: the script suspends
/// once and is resumed once, replaying at least 10,000 journal entries; every tiny job ran
/// exactly once (the log file) and started once (the events), the final job once, and the build
/// succeeded. Prints how long it took and where the time went.
#[test]
fn a_journal_of_ten_thousand_entries_replays_every_job_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let repo = TestRepo::with_pipeline("replay_huge_journal", &many_pipeline(&log));
    let started = Instant::now();
    let out = run_suspending(&repo, "shell").output();
    let took = started.elapsed();
    eprintln!("a journal of {MANY} entries:\n{}", phases(&out, took));

    out.assert_code(0);
    assert_eq!(out.build_end(), Some((BuildStatus::Success, None)), "{}", brief(&out));
    assert_eq!(out.events_of("script/suspended").len(), 1, "{}", brief(&out));
    let replayed = replayed_counts(&out);
    assert!(
        replayed.len() == 1 && replayed[0] >= MANY,
        "one resume replaying every job's end (and more) expected: {replayed:?}; {}",
        brief(&out)
    );

    let lines = lines_of(&log);
    let tiny: BTreeSet<&str> = lines.iter().map(String::as_str).filter(|l| l.starts_with("tiny-")).collect();
    assert_eq!(tiny.len(), MANY, "not every tiny job ran; {}", brief(&out));
    assert_eq!(lines.len(), MANY + 1, "a job ran twice: {} lines; {}", lines.len(), brief(&out));
    assert_eq!(lines.iter().filter(|l| *l == "final").count(), 1, "{}", brief(&out));
    let starts = out.started_jobs();
    let tiny_starts: BTreeSet<&str> = starts.iter().copied().filter(|j| j.starts_with("tiny-")).collect();
    let tiny_start_count = starts.iter().filter(|j| j.starts_with("tiny-")).count();
    assert_eq!((tiny_starts.len(), tiny_start_count), (MANY, MANY), "replayed jobs must not start again");
    assert_eq!(out.status("huge-final"), Some(JobStatus::Success), "{}", brief(&out));
    assert_eq!(containers_started(&out), ["huge-wait"], "{}", brief(&out));
}
