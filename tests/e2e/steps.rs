//! `ctx.run` and `ctx.shell`: containers and commands run from inside an action job, as
//! journaled steps that survive a suspension and are replayed in call order.

use monkeyci_protocol::{EventKind, JobStatus};

use crate::util::{BUSYBOX, TestRepo, count, engines, lines_of, noting_prelude, run_on};

/// An action job awaiting two containers at once; each launch of the job notes it, so the
/// test can count how often its code ran.
fn join_pipeline(log: &std::path::Path) -> String {
    noting_prelude(log)
        + &r#"
#[job]
async fn both(ctx: &Ctx) -> Result<Vec<String>> {
    note("started")?;
    let a = ctx.run(container("IMAGE").script(["sleep 3", "echo from-a"]));
    let b = ctx.run(container("IMAGE").script(["sleep 3", "echo from-b"]).env("WHICH", "b"));
    let (a, b) = monkeyci_sdk::join!(a, b);
    note("joined")?;
    Ok(vec![format!("a exit {:?}", a?.exit), format!("b exit {:?}", b?.exit)])
}

#[job(depends_on = [both])]
async fn after(ctx: &Ctx) -> Result<()> {
    let results = ctx.output::<both>()?;
    ctx.log(results.join(", "));
    note("after")?;
    Ok(())
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

#[test]
fn two_containers_awaited_in_one_action_job_run_together_and_survive_a_suspension() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("steps_join_{engine}"), &join_pipeline(&log));
        let out = run_on(&repo, engine).args(["--suspend", "always"]).output();
        out.assert_code(0);
        assert_eq!(out.status("both"), Some(JobStatus::Success), "{engine}: {out:?}");
        assert_eq!(out.log("after"), ["a exit Some(0), b exit Some(0)"], "{engine}: {out:?}");

        // Both containers ran at the same time: each started before the other ended.
        let starts: Vec<u64> = out.events_of("container/start").iter().map(|e| e.time).collect();
        let ends: Vec<u64> = out.events_of("container/end").iter().map(|e| e.time).collect();
        assert_eq!((starts.len(), ends.len()), (2, 2), "{engine}: {out:?}");
        assert!(starts.iter().all(|s| ends.iter().all(|e| s < e)), "{engine}: not concurrent: {out:?}");

        // One suspension while both ran, one or two resumes.
        assert_eq!(out.events_of("script/suspended").len(), 1, "{engine}: {out:?}");
        let resumes = out.events_of("script/resumed").len();
        assert!((1..=2).contains(&resumes), "{engine}: {resumes} resumes: {out:?}");

        // The job's code ran again after each resume, but the containers only once each and
        // everything after the join exactly once.
        let lines = lines_of(&log);
        assert_eq!(count(&lines, "started"), 1 + resumes, "{engine}: {lines:?}");
        assert_eq!((count(&lines, "joined"), count(&lines, "after")), (1, 1), "{engine}: {lines:?}");
        assert_eq!(out.log("both.run1").iter().filter(|l| **l == "from-a").count(), 1, "{engine}: {out:?}");
        assert_eq!(out.log("both.run2").iter().filter(|l| **l == "from-b").count(), 1, "{engine}: {out:?}");
    }
}

/// An action job that logs, runs a shell command, logs, waits for a three-second container
/// and logs again; the shell command and the job's start note themselves.
fn shell_pipeline(log: &std::path::Path) -> String {
    noting_prelude(log)
        + &r#"
#[job]
async fn steps(ctx: &Ctx) -> Result<String> {
    note("started")?;
    ctx.log("before");
    let made = ctx.shell(&format!("echo shell-ran >> {LOG}; echo from-shell")).await?;
    ctx.log("between");
    ctx.run(container("IMAGE").script(["sleep 3"])).await?;
    ctx.log("after");
    Ok(made.stdout)
}

#[job(depends_on = [steps])]
async fn report(ctx: &Ctx) -> Result<()> {
    ctx.log(format!("shell said {}", ctx.output::<steps>()?.trim()));
    Ok(())
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

/// Across a suspension, an action job runs again from its start, but its `ctx.shell` step is
/// replayed (the command runs once, its output is returned again), the log lines written
/// before the suspension are not written twice, and its duration spans the suspension.
#[test]
fn shell_steps_and_log_lines_are_not_repeated_across_a_suspension() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("runs.log");
        let repo = TestRepo::with_pipeline(&format!("steps_shell_{engine}"), &shell_pipeline(&log));
        let out = run_on(&repo, engine).args(["--suspend", "always"]).output();
        out.assert_code(0);
        assert_eq!(out.events_of("script/suspended").len(), 1, "{engine}: {out:?}");
        let lines = lines_of(&log);
        assert_eq!((count(&lines, "started"), count(&lines, "shell-ran")), (2, 1), "{engine}: {lines:?}");
        assert_eq!(out.log("steps"), ["before", "from-shell", "between", "after"], "{engine}: {out:?}");
        assert_eq!(out.log("report"), ["shell said from-shell"], "{engine}: {out:?}");
        assert_eq!(out.started_jobs().iter().filter(|j| **j == "steps").count(), 1, "{engine}: {out:?}");
        let duration = out.events_of("job/end").iter().find_map(|e| match &e.kind {
            EventKind::JobEnd { job_id, duration_ms, .. } if job_id == "steps" => Some(*duration_ms),
            _ => None,
        });
        assert!(duration.is_some_and(|ms| ms >= 3_000), "{engine}: duration {duration:?} ms; {out:?}");
    }
}
