//! The example pipelines of `examples/`, run with `monkeyci build run` as a user would: each
//! test checks the exit code, the events (`--events`) and what the user reads on stdout.
//!
//! Examples are pipeline crates themselves, so the tests pass the crate directory. Their git
//! context would be this checkout's, so every test that depends on it sets it explicitly.

use monkeyci_protocol::{BuildStatus, EventKind, JobKind, JobStatus};

use crate::util::{MonkeyciCommand, example};

/// What a container job reports while this runtime has no container engine.

#[test]
fn single_job_runs_and_says_hello() {
    let out = MonkeyciCommand::run(example("single-job")).output();
    out.assert_code(0);

    let script_start = out.position("script/start", None).expect("script/start");
    let job_start = out.position("job/start", Some("hello")).expect("job/start");
    let job_output = out.position("job/output", Some("hello")).expect("job/output");
    let job_end = out.position("job/end", Some("hello")).expect("job/end");
    let script_end = out.position("script/end", None).expect("script/end");
    assert!(
        script_start < job_start && job_start < job_output && job_output < job_end && job_end < script_end,
        "events out of order; {out:?}"
    );

    let log = out.log("hello");
    assert_eq!(log.len(), 1, "{out:?}");
    assert!(log[0].starts_with("hello from build "), "{out:?}");
    assert_eq!(out.status("hello"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.build_end(), Some((BuildStatus::Success, None)), "{out:?}");

    out.assert_stdout_contains("[hello] started")
        .assert_stdout_contains(&format!("[hello] | {}", log[0]))
        .assert_stdout_contains("build success");
}

#[test]
fn parallel_jobs_overlap_in_time() {
    let out = MonkeyciCommand::run(example("parallel-jobs")).output();
    out.assert_code(0);

    let ids: Vec<String> = (1..=20).map(|n| format!("job-{n:02}")).collect();
    for (n, id) in (1..).zip(&ids) {
        assert_eq!(out.status(id), Some(JobStatus::Success), "{id}; {out:?}");
        assert_eq!(out.log(id), [format!("job {n} done")], "{out:?}");
    }
    // Each job waits 500 ms: had they run one after the other, a job would have ended before
    // the next one started, and the build would take 10 s.
    let last_start = ids.iter().map(|id| out.start_time(id).expect("started")).max().unwrap();
    let first_end = ids.iter().map(|id| out.end_time(id).expect("ended")).min().unwrap();
    assert!(last_start <= first_end, "a job ended before the last one started; {out:?}");
    let makespan = out.time_of("script/end").unwrap() - out.time_of("script/start").unwrap();
    assert!(makespan < 5_000, "20 jobs of 500 ms took {makespan} ms; {out:?}");
}

#[test]
fn sequential_jobs_start_after_their_predecessor_ended() {
    let out = MonkeyciCommand::run(example("sequential-jobs")).output();
    out.assert_code(0);

    let ids: Vec<String> = (1..=20).map(|n| format!("job-{n:02}")).collect();
    assert_eq!(out.started_jobs(), ids, "{out:?}");
    for pair in ids.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert_eq!(out.status(before), Some(JobStatus::Success), "{out:?}");
        let ended = out.position("job/end", Some(before)).expect("job/end");
        let started = out.position("job/start", Some(after)).expect("job/start");
        assert!(ended < started, "{after} started before {before} ended; {out:?}");
        assert!(out.end_time(before) <= out.start_time(after), "{out:?}");
    }
    assert_eq!(out.log("job-20"), ["this is job-20"]);
}

#[test]
fn failing_job_fails_the_build_and_skips_its_dependents() {
    let out = MonkeyciCommand::run(example("failing-job")).output();
    out.assert_code(1);

    let message = "compilation failed: src/lib.rs:12: mismatched types";
    assert_eq!(out.status("compile"), Some(JobStatus::Failure), "{out:?}");
    assert_eq!(out.message("compile"), Some(message), "{out:?}");
    out.assert_stdout_contains("[compile] failure after").assert_stdout_contains(message);

    // Dependents do not run; each says which dependency stopped it.
    assert_eq!(out.status("test"), Some(JobStatus::Skipped), "{out:?}");
    let reason = out.skip_reason("test").unwrap();
    assert!(reason.contains("`compile`") && reason.contains("failed"), "{reason}");
    assert_eq!(out.status("package"), Some(JobStatus::Skipped), "{out:?}");
    assert!(out.skip_reason("package").unwrap().contains("`test`"), "{out:?}");
    assert!(!out.started_jobs().contains(&"test") && !out.started_jobs().contains(&"package"));
    out.assert_stdout_contains("[test] skipped: ");

    // The independent job still runs.
    assert_eq!(out.status("lint"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.log("lint"), ["no lint warnings"]);

    // The summary table has a row per job.
    let row = |job: &str| out.stdout.lines().find(|l| l.split_whitespace().next() == Some(job)).unwrap_or_default();
    assert!(out.stdout.contains("JOB") && out.stdout.contains("STATUS"), "no summary; {out:?}");
    assert!(row("compile").contains("failure") && row("compile").contains(message), "{out:?}");
    assert!(row("package").contains("skipped") && row("lint").contains("success"), "{out:?}");

    let (status, why) = out.build_end().expect("script/end");
    assert_eq!(status, BuildStatus::Failure);
    assert!(why.unwrap_or_default().contains("compile"), "{out:?}");
    out.assert_stdout_contains("build failure");
}

/// Runs conditional-jobs with `context` and returns the outcome, with the main branch fixed.
fn conditional(context: &[&str]) -> crate::util::Output {
    MonkeyciCommand::run(example("conditional-jobs")).args(["--main-branch", "main"]).args(context).output()
}

#[test]
fn conditional_jobs_on_the_main_branch_deploy() {
    let out = conditional(&["--branch", "main"]);
    out.assert_code(0);
    assert_eq!(out.started_jobs(), ["build", "deploy-staging"], "{out:?}");
    assert_eq!(out.status("deploy-staging"), Some(JobStatus::Success));
    assert_eq!(out.log("deploy-staging"), ["deploying branch main to staging"]);
    assert_eq!(out.status("release"), Some(JobStatus::Skipped));
    assert!(out.skip_reason("release").unwrap().contains("is_release_tag"), "{out:?}");
    out.assert_stdout_contains("[release] skipped: ").assert_stdout_contains("is_release_tag");
}

#[test]
fn conditional_jobs_on_a_feature_branch_only_build() {
    let out = conditional(&["--branch", "feature"]);
    out.assert_code(0);
    assert_eq!(out.started_jobs(), ["build"], "{out:?}");
    assert_eq!(out.log("build"), ["building branch feature"]);
    assert!(out.skip_reason("deploy-staging").unwrap().contains("is_main"), "{out:?}");
    assert!(out.skip_reason("release").unwrap().contains("is_release_tag"), "{out:?}");
}

#[test]
fn conditional_jobs_on_a_version_tag_release() {
    let out = conditional(&["--tag", "v1.2.0"]);
    out.assert_code(0);
    assert_eq!(out.started_jobs(), ["build", "release"], "{out:?}");
    assert_eq!(out.log("build"), ["building tag v1.2.0"]);
    assert_eq!(out.log("release"), ["releasing version 1.2.0"]);
    assert_eq!(out.status("deploy-staging"), Some(JobStatus::Skipped));
    assert!(out.skip_reason("deploy-staging").unwrap().contains("is_main"), "{out:?}");
}

#[test]
fn changed_files_pick_the_jobs_to_run() {
    // (changed file, job that runs, job that is skipped, its condition)
    let cases = [
        ("app/src/main.rs", "test-app", "test-docs", "docs_changed"),
        ("docs/x.md", "test-docs", "test-app", "app_changed"),
    ];
    for (changed, runs, skipped, condition) in cases {
        let plan =
            MonkeyciCommand::plan(example("changed-files")).args(["--format", "json", "--changed", changed]).output();
        plan.assert_code(0);
        let plan = plan.plan();
        assert_eq!(plan.job_ids(), [runs], "--changed {changed}: {plan:?}");
        assert_eq!(plan.skipped.len(), 1, "{plan:?}");
        assert_eq!(plan.skipped[0].id, skipped);
        assert!(plan.skipped[0].reason.contains(condition), "{plan:?}");

        // Both jobs are container jobs: the one selected is attempted on the host shell
        // engine (and fails there: no `app` directory, no mdbook), the other is skipped.
        let out =
            MonkeyciCommand::run(example("changed-files")).args(["--changed", changed, "--engine", "shell"]).output();
        out.assert_code(1);
        assert_eq!(out.started_jobs(), [runs], "--changed {changed}; {out:?}");
        let message = out.message(runs).unwrap_or_default();
        assert!(message.contains("work_dir \"app\"") || message.contains("`mdbook build docs`"), "{out:?}");
        assert_eq!(out.status(skipped), Some(JobStatus::Skipped), "{out:?}");
        assert!(out.skip_reason(skipped).unwrap().contains(condition), "{out:?}");
    }
}

#[test]
fn matrix_plans_one_container_job_per_combination() {
    let out = MonkeyciCommand::plan(example("matrix")).args(["--format", "json"]).output();
    out.assert_code(0);
    let plan = out.plan();
    let expected = ["test-bookworm-1.95", "test-bookworm-1.96", "test-alpine-1.95", "test-alpine-1.96"];
    let prepare = plan.job("prepare").expect("prepare is planned");
    assert!(prepare.depends_on.is_empty());
    assert_eq!(prepare.kind, JobKind::Action);
    assert_eq!(plan.job("summary").expect("summary is planned").depends_on, ["prepare"]);
    for id in expected {
        let job = plan.job(id).unwrap_or_else(|| panic!("{id} is not planned: {plan:?}"));
        assert_eq!(job.kind, JobKind::Container, "{id}");
        assert_eq!(job.depends_on, ["prepare"], "{id}");
        let spec = job.container.as_ref().expect("a container spec");
        let (os, rust) = id.trim_start_matches("test-").split_once('-').unwrap();
        assert_eq!(spec.image, format!("docker.io/rust:{rust}-{os}"));
        assert_eq!(spec.env.get("MATRIX_OS").map(String::as_str), Some(os));
        assert_eq!(spec.env.get("MATRIX_RUST").map(String::as_str), Some(rust));
    }
    assert_eq!(plan.jobs.len(), 6, "{plan:?}");
}

#[test]
fn matrix_container_jobs_report_the_engines_error_for_a_missing_image() {
    if !crate::util::podman_available() {
        return;
    }
    // The matrix images cannot be pulled here (no registry): each job fails with podman's own
    // message, and the action jobs still succeed.
    let out = MonkeyciCommand::run(example("matrix")).args(["--engine", "podman"]).output();
    out.assert_code(1);
    assert_eq!(out.status("prepare"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.status("summary"), Some(JobStatus::Success), "{out:?}");
    assert!(out.log("summary")[0].starts_with("4 combinations"), "{out:?}");
    for id in ["test-bookworm-1.95", "test-bookworm-1.96", "test-alpine-1.95", "test-alpine-1.96"] {
        assert_eq!(out.status(id), Some(JobStatus::Failure), "{id}; {out:?}");
        let message = out.message(id).unwrap_or_default();
        assert!(
            message.contains("podman could not start the container") && message.contains("rust:"),
            "{id}: {message}"
        );
    }
    assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Failure));
}

#[test]
fn typed_output_flows_to_the_dependent() {
    let tagged = MonkeyciCommand::run(example("typed-output")).args(["--tag", "v1.12.3"]).output();
    tagged.assert_code(0);
    assert_eq!(tagged.log("package"), ["packaging app-1.12.3.tar.gz"], "{tagged:?}");
    tagged.assert_stdout_contains("[package] | packaging app-1.12.3.tar.gz");

    let untagged = MonkeyciCommand::run(example("typed-output")).args(["--branch", "main"]).output();
    untagged.assert_code(0);
    assert_eq!(untagged.log("package"), ["packaging app-0.0.0-snapshot.tar.gz"], "{untagged:?}");
}

#[test]
fn typed_output_that_cannot_be_made_skips_the_dependent() {
    let out = MonkeyciCommand::run(example("typed-output")).args(["--tag", "v1.x"]).output();
    out.assert_code(1);
    assert_eq!(out.status("version"), Some(JobStatus::Failure), "{out:?}");
    assert!(out.message("version").unwrap().contains("is not a version"), "{out:?}");
    assert_eq!(out.status("package"), Some(JobStatus::Skipped), "{out:?}");
    assert!(out.skip_reason("package").unwrap().contains("`version`"), "{out:?}");
}

#[test]
fn params_secret_never_appears_in_any_output() {
    const SECRET: &str = "e2e-s3cr3t-7f3a9c";
    let out = MonkeyciCommand::run(example("params")).arg("--param").arg(format!("DEPLOY_TOKEN={SECRET}")).output();
    out.assert_code(0);
    assert!(!out.stdout.contains(SECRET), "the secret is on stdout; {out:?}");
    assert!(!out.stderr.contains(SECRET), "the secret is on stderr; {out:?}");
    assert!(!out.events_text.contains(SECRET), "the secret is in the events; {out:?}");

    let log = out.log("deploy");
    assert_eq!(log, [format!("got Secret(DEPLOY_TOKEN), {} characters long", SECRET.len()).as_str(), "***"]);
    out.assert_stdout_contains("[deploy] | ***");
}

#[test]
fn params_value_can_come_from_the_environment() {
    const SECRET: &str = "from-the-environment-42";
    let out =
        MonkeyciCommand::run(example("params")).args(["--param", "DEPLOY_TOKEN"]).env("DEPLOY_TOKEN", SECRET).output();
    out.assert_code(0);
    // The length proves the job got the environment's value.
    assert_eq!(out.log("deploy")[0], format!("got Secret(DEPLOY_TOKEN), {} characters long", SECRET.len()));
    for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr), ("events", &out.events_text)] {
        assert!(!text.contains(SECRET), "the secret is in {what}; {out:?}");
    }
}

#[test]
fn params_missing_fails_the_job_naming_the_param() {
    let out = MonkeyciCommand::run(example("params")).env_remove("DEPLOY_TOKEN").output();
    out.assert_code(1);
    assert_eq!(out.status("deploy"), Some(JobStatus::Failure));
    assert!(out.message("deploy").unwrap().contains("\"DEPLOY_TOKEN\" is not set"), "{out:?}");
}

#[test]
fn panicking_job_fails_with_the_panic_message() {
    let out = MonkeyciCommand::run(example("panicking-job")).output();
    out.assert_code(1);
    assert_eq!(out.status("explode"), Some(JobStatus::Failure), "{out:?}");
    let message = out.message("explode").unwrap();
    assert!(message.contains("boom: the answer was not 42"), "{message}");
    out.assert_stdout_contains("boom: the answer was not 42");
    assert_eq!(out.status("survivor"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.log("survivor"), ["still here"]);
    assert_eq!(out.status("after-explode"), Some(JobStatus::Skipped), "{out:?}");
    assert!(out.skip_reason("after-explode").unwrap().contains("`explode`"), "{out:?}");
    assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Failure));
}

#[test]
fn cycle_is_refused_and_named_before_anything_runs() {
    let out = MonkeyciCommand::run(example("cycle")).output();
    out.assert_code(2).assert_stderr_contains("a -> b -> c -> a");
    assert!(out.events_of("job/start").is_empty(), "a job ran; {out:?}");
    assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Error), "{out:?}");
}

#[test]
fn retries_and_timeout_are_reported_per_attempt() {
    let out = MonkeyciCommand::run(example("retries-and-timeout")).output();
    out.assert_code(1);

    let attempts: Vec<u32> = out
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::JobStart { job_id, attempt } if job_id == "flaky" => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2, 3], "{out:?}");
    let retrying: Vec<(u32, &str)> = out
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::JobRetrying { job_id, attempt, message } if job_id == "flaky" => {
                Some((*attempt, message.as_str()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(retrying, [(1, "service not ready (attempt 1)"), (2, "service not ready (attempt 2)")], "{out:?}");
    assert_eq!(out.status("flaky"), Some(JobStatus::Success), "{out:?}");
    out.assert_stdout_contains("[flaky] started (attempt 3)");

    assert_eq!(out.status("hangs"), Some(JobStatus::Timeout), "{out:?}");
    assert_eq!(out.message("hangs"), Some("timed out after 200ms"), "{out:?}");
    // Stopped at its limit, not after the five seconds it would have slept.
    let ran = out.end_time("hangs").unwrap() - out.start_time("hangs").unwrap();
    assert!(ran < 3_000, "the timed-out job ran {ran} ms; {out:?}");
    assert!(!out.log("hangs").contains(&"got the lock"), "{out:?}");
    out.assert_stdout_contains("[hangs] timeout after");
}

/// The suspension example, on the shell engine: the script suspends while the containers run
/// and resumes; each container runs once, `test`'s log is not repeated, and `publish` (not
/// idempotent, the script never suspends under it) reads `test`'s output.
#[test]
fn suspend_and_resume_runs_each_container_once_and_publishes() {
    let out = MonkeyciCommand::run(example("suspend-and-resume"))
        .args(["--engine", "shell", "--suspend", "always", "--tag", "v1.0.0"])
        .output();
    out.assert_code(0);
    assert!(!out.events_of("script/suspended").is_empty(), "{out:?}");
    assert_eq!(out.events_of("script/suspended").len(), out.events_of("script/resumed").len(), "{out:?}");
    let started: Vec<&str> = out.events_of("container/start").iter().filter_map(|e| e.kind.job_id()).collect();
    assert_eq!(started.len(), 3, "each container once: {started:?}");
    for job in ["compile", "test.run1", "test.run2"] {
        assert!(started.contains(&job), "{job} did not run: {started:?}");
    }
    assert_eq!(out.log("test"), ["running both suites", "both suites passed"], "{out:?}");
    let published = out.log("publish");
    assert_eq!(published.len(), 1, "{out:?}");
    assert!(published[0].starts_with("publishing v1.0.0 (both suites passed) as release "), "{out:?}");
    out.assert_stdout_contains("script suspended while");
}

/// Runs failure-handling on the shell engine with `context`.
fn failure_handling(context: &[&str]) -> crate::util::Output {
    MonkeyciCommand::run(example("failure-handling")).args(["--engine", "shell"]).args(context).output()
}

#[test]
fn failure_handling_an_allowed_failure_keeps_the_build_green() {
    let out = failure_handling(&["--branch", "main"]);
    out.assert_code(0);
    assert_eq!(out.status("msrv"), Some(JobStatus::Failure), "{out:?}");
    assert_eq!(out.status("package"), Some(JobStatus::Success), "its dependents run; {out:?}");
    assert_eq!(out.log("package"), ["packaged app.tar.gz"]);
    let (status, why) = out.build_end().expect("script/end");
    assert_eq!(status, BuildStatus::Success);
    assert_eq!(why, Some("job `msrv` failed, which it is allowed to"), "{out:?}");
    // Shown as allowed, in the job's line and in the summary.
    out.assert_stdout_contains("[msrv] failure (allowed) after");
    let row = out.stdout.lines().find(|l| l.starts_with("msrv ")).unwrap_or_default();
    assert!(row.contains("failure (allowed)"), "{out:?}");
    out.assert_stdout_contains("build success: job `msrv` failed, which it is allowed to");
}

#[test]
fn failure_handling_reports_a_failure_and_always_cleans_up() {
    let out = failure_handling(&["--branch", "broken"]);
    out.assert_code(1);
    assert_eq!(out.status("test"), Some(JobStatus::Failure), "{out:?}");
    assert_eq!(out.skip_reason("package"), Some("dependency `test` failed"), "{out:?}");
    assert_eq!(out.log("report"), ["the build of broken failed: see the jobs above"], "{out:?}");
    assert_eq!(out.log("cleanup"), ["removed the staging directory"], "{out:?}");
    assert_eq!(out.build_end(), Some((BuildStatus::Failure, Some("job `test` failed"))), "{out:?}");

    // With nothing failed, the report is skipped, saying why, and cleanup still runs.
    let green = failure_handling(&["--branch", "main"]);
    assert_eq!(green.skip_reason("report"), Some("runs = on_failure, and no dependency failed"), "{green:?}");
    assert_eq!(green.status("cleanup"), Some(JobStatus::Success), "{green:?}");
    green.assert_stdout_contains("[report] skipped: runs = on_failure, and no dependency failed");
}

#[test]
fn failure_handling_retries_a_container_job_in_a_new_container() {
    let out = failure_handling(&["--branch", "main"]);
    out.assert_code(0);
    let attempts: Vec<u32> = out
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::JobStart { job_id, attempt } if job_id == "integration" => Some(*attempt),
            _ => None,
        })
        .collect();
    assert_eq!(attempts, [1, 2], "{out:?}");
    let containers = out.events_of("container/start").iter().filter(|e| e.kind.job_id() == Some("integration")).count();
    assert_eq!(containers, 2, "one container per attempt; {out:?}");
    assert_eq!(out.status("integration"), Some(JobStatus::Success), "{out:?}");
    out.assert_stdout_contains("[integration] started (attempt 2)");
    out.assert_stdout_contains("[integration] attempt 1 failed:");
}

#[test]
fn build_context_variables_are_plain_and_never_masked() {
    let out = MonkeyciCommand::run(example("build-context"))
        .args(["--var", "EVENT=push", "--var", "DEPLOY_ENV", "--param", "TOKEN=s3cret-value", "--engine", "shell"])
        .env("DEPLOY_ENV", "staging")
        .output();
    out.assert_code(0);
    assert_eq!(out.log("announce"), ["building on push, deploying to staging"], "{out:?}");
    out.assert_stdout_contains("[announce] | building on push, deploying to staging");

    let missing = MonkeyciCommand::run(example("build-context")).args(["--var", "NOT_SET_ANYWHERE"]).output();
    missing.assert_code(2).assert_stderr_contains("--var NOT_SET_ANYWHERE: no value given");
}

#[test]
fn build_context_trigger_comes_from_the_command_line_or_the_ref() {
    let pull_request = MonkeyciCommand::plan(example("build-context"))
        .args(["--format", "json", "--branch", "feature", "--trigger", "pull-request"])
        .output();
    pull_request.assert_code(0);
    let plan = pull_request.plan();
    assert_eq!(plan.job_ids(), ["announce", "lint", "versions"], "{plan:?}");
    assert!(plan.skipped.iter().any(|s| s.id == "publish-preview" && s.reason.contains("not_pull_request")));

    let tagged = MonkeyciCommand::run(example("build-context")).args(["--tag", "v1.0.0", "--engine", "shell"]).output();
    tagged.assert_code(0);
    assert_eq!(tagged.log("publish-preview"), ["publishing a preview for this tag"], "{tagged:?}");
    let pushed =
        MonkeyciCommand::run(example("build-context")).args(["--branch", "main", "--engine", "shell"]).output();
    assert_eq!(pushed.log("publish-preview"), ["publishing a preview for this push"], "{pushed:?}");

    MonkeyciCommand::plan(example("build-context"))
        .args(["--trigger", "merge-request"])
        .output()
        .assert_code(2)
        .assert_stderr_contains("pull-request");
}

#[test]
fn build_context_the_pipeline_environment_reaches_every_job() {
    let out =
        MonkeyciCommand::run(example("build-context")).args(["--engine", "shell"]).env_remove("RUST_LOG").output();
    out.assert_code(0);
    // A container job: the pipeline's variable, and its own over the pipeline's.
    assert_eq!(out.log("lint"), ["color=always log=debug"], "{out:?}");
    // An action job's command.
    assert_eq!(out.log("versions"), ["color=always log=info"], "{out:?}");
}
