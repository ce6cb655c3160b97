//! Jobs and their data (#10): container specs that read their dependencies' outputs are
//! resolved when those have ended, and a suspended build resumes with the spec it dispatched;
//! a `#[job]` depends on a whole `#[pipeline]` and reads its jobs' outputs by id; a pipeline
//! job returning another type than its pipeline declares fails planning.

use monkeyci_protocol::{BuildStatus, JobStatus};

use crate::util::{BUSYBOX, MonkeyciCommand, TestRepo, count, engines, example, lines_of, noting_prelude, run_on};

#[test]
fn job_data_example_builds_container_specs_from_outputs_and_reads_the_matrix_by_id() {
    let out = MonkeyciCommand::run(example("job-data")).args(["--engine", "shell", "--tag", "v1.2.3"]).output();
    out.assert_code(0);
    assert_eq!(out.log("package"), ["packaging app-1.2.3.tar"], "{out:?}");
    assert_eq!(out.log("image-amd64"), ["image app:1.2.3-amd64"], "{out:?}");
    assert_eq!(out.log("image-arm64"), ["image app:1.2.3-arm64"], "{out:?}");
    assert_eq!(
        out.log("summary"),
        ["minimum supported Rust 1.95: 12 passed", "25 tests passed in test-1.95, test-1.96"],
        "{out:?}"
    );
    // `summary` waited for every job of the matrix, though it names none of them.
    for test in ["test-1.95", "test-1.96", "package"] {
        assert!(out.end_time(test) <= out.start_time("summary"), "{test} ended after summary started; {out:?}");
    }
    assert_eq!(out.build_end(), Some((BuildStatus::Success, None)), "{out:?}");
}

#[test]
fn the_plan_says_which_container_specs_are_resolved_at_run_time() {
    let json = MonkeyciCommand::plan(example("job-data")).args(["--format", "json"]).output();
    json.assert_code(0);
    let plan = json.plan();
    let package = plan.job("package").expect("package is planned");
    assert!(package.resolved_at_run_time && package.container.is_none(), "{package:?}");
    assert_eq!(plan.job("summary").expect("planned").depends_on, ["package", "test-1.95", "test-1.96"]);

    let text = MonkeyciCommand::plan(example("job-data")).output();
    text.assert_code(0);
    let row = text.stdout.lines().find(|line| line.contains(" package ")).unwrap_or_default();
    assert!(
        row.contains("container (spec resolved when its dependencies ended)") && row.contains("after version"),
        "{text:?}"
    );
}

/// A container job whose spec reads `version`'s output and notes each time it is resolved.
fn resolved_pipeline(log: &std::path::Path) -> String {
    noting_prelude(log)
        + &r#"
#[job]
async fn version(_ctx: &Ctx) -> Result<String> {
    Ok("4.5.6".into())
}

#[job(depends_on = [version])]
fn package(ctx: &Ctx) -> Result<ContainerJob> {
    let version = ctx.output::<version>()?;
    note(&format!("resolved {version}"))?;
    Ok(container("IMAGE").script(["sleep 2", "echo packaging $VERSION"]).env("VERSION", version))
}

#[job(depends_on = [package])]
async fn after(ctx: &Ctx) -> Result<()> {
    ctx.log("after");
    Ok(())
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

#[test]
fn a_resolved_container_spec_is_dispatched_once_and_survives_a_suspension() {
    for engine in engines() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("resolved.log");
        let repo = TestRepo::with_pipeline(&format!("data_resolved_{engine}"), &resolved_pipeline(&log));
        let out = run_on(&repo, engine).args(["--suspend", "always"]).output();
        out.assert_code(0);
        assert_eq!(out.events_of("script/suspended").len(), 1, "{engine}: {out:?}");
        assert_eq!(out.log("package"), ["packaging 4.5.6"], "{engine}: {out:?}");
        assert_eq!(out.status("after"), Some(JobStatus::Success), "{engine}: {out:?}");
        // Resolved once, before the dispatch: the resumed script awaited the journaled spec.
        assert_eq!(count(&lines_of(&log), "resolved 4.5.6"), 1, "{engine}: {:?}", lines_of(&log));
        assert_eq!(out.events_of("container/start").len(), 1, "{engine}: {out:?}");
    }
}

#[test]
fn a_pipeline_job_returning_another_type_than_declared_fails_planning() {
    let repo = TestRepo::with_pipeline(
        "data_output_type",
        r#"
use monkeyci_sdk::prelude::*;

#[pipeline(output = u32)]
fn matrix(_ctx: &Ctx) -> Vec<Job> {
    vec![Job::action("test-a", |_ctx| async { Ok("passed".to_owned()) })]
}

monkeyci_sdk::main!();
"#,
    );
    let out = MonkeyciCommand::plan(repo.path()).output();
    out.assert_code(2).assert_stderr_contains(
        "job `test-a` of #[pipeline] `matrix` returns `String`, but the pipeline declares `output = u32`",
    );
}
