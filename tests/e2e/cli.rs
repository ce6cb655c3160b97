//! The command line itself: `--job` filters, `build plan` formats, `build verify`,
//! `build test`, and the clear errors (exit 2) for bad inputs.

use std::collections::HashMap;

use monkeyci_protocol::JobStatus;

use crate::util::{MonkeyciCommand, TestRepo, example};

/// A pipeline with a single job that always succeeds.
const HELLO_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn hello(ctx: &Ctx) -> Result<()> {
    ctx.log("hello");
    Ok(())
}

monkeyci_sdk::main!();
"#;

/// #9: `monkeyci build verify | head` panicked on the closed pipe. A reader that stops reading
/// is not an error: the command ends quietly, with exit code 0.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    for args in [["build", "plan"], ["build", "verify"]] {
        let out = MonkeyciCommand::new(args).arg(example("matrix")).close_stdout().output();
        out.assert_code(0);
        assert!(!out.stderr.contains("panicked"), "{out:?}");
    }
}

/// #9: `--suspend-after 400000000000000000m` overflowed (a panic in the debug build).
#[test]
fn a_duration_too_long_is_refused_with_a_clear_error() {
    let out = MonkeyciCommand::run(example("single-job")).args(["--suspend-after", "400000000000000000m"]).output();
    out.assert_code(2);
    assert!(out.stderr.contains("invalid duration \"400000000000000000m\""), "{out:?}");
    assert!(!out.stderr.contains("panicked"), "{out:?}");
}

#[test]
fn job_filter_runs_the_job_and_its_dependencies_only() {
    let out = MonkeyciCommand::run(example("sequential-jobs")).args(["--job", "job-03"]).output();
    out.assert_code(0);
    assert_eq!(out.started_jobs(), ["job-01", "job-02", "job-03"], "{out:?}");
    assert!(out.statuses().values().all(|s| *s == JobStatus::Success), "{out:?}");

    let plan = MonkeyciCommand::plan(example("sequential-jobs")).args(["--format", "json", "--job", "job-03"]).output();
    plan.assert_code(0);
    assert_eq!(plan.plan().job_ids(), ["job-01", "job-02", "job-03"]);

    // The failing job is not a dependency of `lint`, so it does not run and the build passes.
    let out = MonkeyciCommand::run(example("failing-job")).args(["--job", "lint"]).output();
    out.assert_code(0);
    assert_eq!(out.started_jobs(), ["lint"], "{out:?}");
}

#[test]
fn job_filter_with_an_unknown_id_lists_the_known_jobs() {
    let run = MonkeyciCommand::run(example("failing-job")).args(["--job", "deploy"]).output();
    run.assert_code(2).assert_stderr_contains("unknown job `deploy`");
    for known in ["compile", "test", "package", "lint"] {
        run.assert_stderr_contains(known);
    }
    assert!(run.events_of("job/start").is_empty(), "a job ran; {run:?}");

    MonkeyciCommand::plan(example("failing-job"))
        .args(["--job", "deploy"])
        .output()
        .assert_code(2)
        .assert_stderr_contains("unknown job `deploy`");
}

#[test]
fn plan_formats_show_jobs_and_dependencies() {
    let plan = |format: &str| {
        let out = MonkeyciCommand::plan(example("failing-job")).args(["--format", format]).output();
        out.assert_code(0);
        out
    };

    let text = plan("text").stdout;
    assert!(text.starts_with("4 jobs"), "{text}");
    assert!(text.contains("test") && text.contains("after compile"), "{text}");
    assert!(text.contains("package") && text.contains("after test"), "{text}");

    let json = plan("json").plan();
    assert_eq!(json.jobs.len(), 4, "{json:?}");
    assert!(json.job("compile").unwrap().depends_on.is_empty());
    assert!(json.job("lint").unwrap().depends_on.is_empty());
    assert_eq!(json.job("test").unwrap().depends_on, ["compile"]);
    assert_eq!(json.job("package").unwrap().depends_on, ["test"]);
    let ids = json.job_ids();
    let at = |id: &str| ids.iter().position(|j| *j == id).unwrap();
    assert!(at("compile") < at("test") && at("test") < at("package"), "not in dependency order: {ids:?}");

    let mermaid = plan("mermaid").stdout;
    assert!(mermaid.starts_with("flowchart TD\n"), "{mermaid}");
    // Nodes are declared as `jN["id"]`; edges name the nodes.
    let nodes: HashMap<&str, &str> = mermaid
        .lines()
        .filter_map(|line| {
            let (node, label) = line.trim().split_once('[')?;
            Some((label.trim_matches(|c| matches!(c, '[' | ']' | '(' | ')' | '"')), node))
        })
        .collect();
    for (from, to) in [("compile", "test"), ("test", "package")] {
        let edge = format!("{} --> {}", nodes[from], nodes[to]);
        assert!(mermaid.lines().any(|l| l.trim() == edge), "no edge {from} -> {to} ({edge}) in\n{mermaid}");
    }

    let dot = plan("dot").stdout;
    assert!(dot.starts_with("digraph"), "{dot}");
    assert!(dot.contains("\"compile\" -> \"test\""), "{dot}");
    assert!(dot.contains("\"test\" -> \"package\""), "{dot}");
    assert!(dot.contains("\"lint\""), "{dot}");
}

#[test]
fn plan_follows_the_context_flags() {
    let out = MonkeyciCommand::plan(example("conditional-jobs"))
        .args(["--format", "json", "--tag", "v1.2.0", "--main-branch", "main"])
        .output();
    out.assert_code(0);
    let plan = out.plan();
    assert_eq!(plan.job_ids(), ["build", "release"]);
    assert_eq!(plan.skipped.len(), 1);
    assert_eq!(plan.skipped[0].id, "deploy-staging");
    assert!(plan.skipped[0].reason.contains("is_main"), "{plan:?}");

    let text = MonkeyciCommand::plan(example("conditional-jobs")).args(["--branch", "feature"]).output();
    text.assert_code(0).assert_stdout_contains("deploy-staging").assert_stdout_contains("is_main");
}

#[test]
fn verify_accepts_a_good_pipeline_and_refuses_a_cycle() {
    MonkeyciCommand::verify(example("single-job"))
        .output()
        .assert_code(0)
        .assert_stdout_contains("pipeline OK")
        .assert_stdout_contains("hello");

    MonkeyciCommand::verify(example("cycle")).output().assert_code(2).assert_stderr_contains("a -> b -> c -> a");
}

#[test]
fn build_test_runs_the_pipeline_unit_tests() {
    MonkeyciCommand::test(example("single-job"))
        .output()
        .assert_code(0)
        .assert_stdout_contains("tests::says_hello ... ok")
        .assert_stdout_contains("test result: ok. 2 passed");

    // Arguments after `--` go to `cargo test`.
    MonkeyciCommand::test(example("single-job"))
        .args(["--", "says_hello"])
        .output()
        .assert_code(0)
        .assert_stdout_contains("test result: ok. 1 passed")
        .assert_stdout_contains("1 filtered out");
}

#[test]
fn no_pipeline_in_dir_suggests_init() {
    let dir = tempfile::tempdir().unwrap();
    for command in ["run", "plan", "verify", "test"] {
        let out = MonkeyciCommand::new(["build", command]).arg(dir.path()).output();
        out.assert_code(2).assert_stderr_contains("no pipeline").assert_stderr_contains("monkeyci init");
    }
}

#[test]
fn param_without_value_or_environment_variable_is_refused() {
    let out = MonkeyciCommand::run(example("single-job"))
        .args(["--param", "E2E_UNSET_PARAM"])
        .env_remove("E2E_UNSET_PARAM")
        .output();
    out.assert_code(2).assert_stderr_contains("--param E2E_UNSET_PARAM").assert_stderr_contains("no value");
    assert!(out.events.is_empty(), "the build ran; {out:?}");
    assert!(!out.stdout.contains("[hello] started"), "the build ran; {out:?}");
}

#[test]
fn unknown_base_revision_is_refused() {
    let repo = TestRepo::with_pipeline("unknown_base", HELLO_PIPELINE);
    let out = MonkeyciCommand::run(repo.path()).args(["--base", "nosuchrev"]).output();
    out.assert_code(2).assert_stderr_contains("--base nosuchrev").assert_stderr_contains("no such commit");
    assert!(out.events.is_empty(), "the build ran; {out:?}");
}

#[test]
fn base_outside_a_git_repository_is_refused() {
    let repo = TestRepo::without_git("base_without_git", HELLO_PIPELINE);
    let out = MonkeyciCommand::run(repo.path()).args(["--base", "main"]).output();
    out.assert_code(2).assert_stderr_contains("--base");
    assert!(out.events.is_empty(), "the build ran; {out:?}");
}

/// Sets the modification time of `path` (a file or directory) to `ago` before now.
fn age(path: &std::path::Path, ago: std::time::Duration) {
    let file = std::fs::File::open(path).unwrap();
    file.set_modified(std::time::SystemTime::now() - ago).unwrap();
}

/// `monkeyci cache prune` on a cache of its own: the oldest build record goes with its
/// artifacts, a binary unused for 40 days goes, the rest stays, and the report says so.
#[test]
fn cache_prune_removes_old_builds_and_unused_binaries() {
    let cache = tempfile::tempdir().unwrap();
    let day = std::time::Duration::from_secs(24 * 3600);
    for (id, days) in [("b-1", 3), ("b-2", 2), ("b-3", 1)] {
        let dir = cache.path().join("builds").join(id);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("events.jsonl"), "").unwrap();
        age(&dir, day * days);
        let artifacts = cache.path().join("blobs/artifacts").join(id);
        std::fs::create_dir_all(&artifacts).unwrap();
        std::fs::write(artifacts.join("dist.tar.zst"), "archive").unwrap();
    }
    for (hash, days) in [("unused", 40), ("used", 1)] {
        let dir = cache.path().join("bin").join(hash);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("pipeline"), "binary").unwrap();
        age(&dir, day * days);
    }

    let out =
        MonkeyciCommand::new(["cache", "prune", "--keep-builds", "2"]).env("MONKEYCI_CACHE_DIR", cache.path()).output();
    out.assert_code(0);
    out.assert_stdout_contains("removed 1 build record, 1 pipeline binary, 1 stored blob");
    let left = |dir: &str| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(cache.path().join(dir))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    assert_eq!(left("builds"), ["b-2", "b-3"]);
    assert_eq!(left("blobs/artifacts"), ["b-2", "b-3"]);
    assert_eq!(left("bin"), ["used"]);

    std::fs::create_dir_all(cache.path().join("target/debug/deps")).unwrap();
    std::fs::write(cache.path().join("target/debug/deps/libold.rlib"), "rlib").unwrap();
    let out = MonkeyciCommand::new(["cache", "prune", "--target"]).env("MONKEYCI_CACHE_DIR", cache.path()).output();
    out.assert_code(0);
    out.assert_stdout_contains("removed the shared target directory");
    assert!(!cache.path().join("target").exists(), "{out:?}");
    assert_eq!(left("builds"), ["b-2", "b-3"], "MONKEYCI_KEEP_BUILDS=0 (set for every test) keeps all");

    let out = MonkeyciCommand::new(["cache", "prune", "--keep-builds", "many"])
        .env("MONKEYCI_CACHE_DIR", cache.path())
        .output();
    out.assert_code(2);
    out.assert_stderr_contains("--keep-builds");
    assert_eq!(left("builds"), ["b-2", "b-3"], "a bad argument removes nothing");
}

/// A bad `MONKEYCI_KEEP_BUILDS` does not fail a build: it says why nothing was pruned.
#[test]
fn a_bad_keep_builds_setting_warns_after_the_build() {
    let repo = TestRepo::with_pipeline("cli_keep_builds", HELLO_PIPELINE);
    let out = MonkeyciCommand::run(repo.path()).env("MONKEYCI_KEEP_BUILDS", "lots").output();
    out.assert_code(0);
    out.assert_stderr_contains("warning: the cache was not pruned: MONKEYCI_KEEP_BUILDS=\"lots\" is not a number");
}

/// A blocked job and a job after it.
const BLOCKED_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn build(ctx: &Ctx) -> Result<()> {
    ctx.log("built");
    Ok(())
}

#[job(depends_on = [build], blocked)]
async fn deploy(ctx: &Ctx) -> Result<()> {
    ctx.log("deployed");
    Ok(())
}

#[job(depends_on = [deploy])]
async fn announce(ctx: &Ctx) -> Result<()> {
    ctx.log("announced");
    Ok(())
}

monkeyci_sdk::main!();
"#;

/// With `--ask always`, a blocked job is put to stdin: `y` runs it, anything else or no
/// answer skips it (and its dependents); without asking it is skipped at once.
#[test]
fn blocked_jobs_are_asked_about_on_stdin() {
    let repo = TestRepo::with_pipeline("cli_ask", BLOCKED_PIPELINE);
    let out = MonkeyciCommand::run(repo.path()).args(["--ask", "always"]).stdin("y\n").output();
    out.assert_code(0);
    out.assert_stderr_contains("job `deploy` is blocked: run it? [y/N]");
    assert_eq!(out.log("deploy"), ["deployed"], "{out:?}");
    assert_eq!(out.status("announce"), Some(JobStatus::Success), "{out:?}");

    for (answer, said) in [("no\n", "no"), ("", "the end of stdin")] {
        let out = MonkeyciCommand::run(repo.path()).args(["--ask", "always"]).stdin(answer).output();
        out.assert_code(0);
        assert_eq!(out.status("deploy"), Some(JobStatus::Skipped), "{said}: {out:?}");
        assert_eq!(out.skip_reason("deploy"), Some("blocked: it was not approved"), "{said}: {out:?}");
        assert_eq!(out.status("announce"), Some(JobStatus::Skipped), "{said}: {out:?}");
    }

    // Not a terminal and no --ask: nobody is asked, nothing waits.
    let out = MonkeyciCommand::run(repo.path()).stdin("y\n").output();
    assert!(!out.stderr.contains("is blocked"), "{out:?}");
    assert_eq!(out.status("deploy"), Some(JobStatus::Skipped), "{out:?}");
    let approved = MonkeyciCommand::run(repo.path()).args(["--approve", "deploy", "--ask", "always"]).output();
    assert!(!approved.stderr.contains("is blocked"), "--approve needs no question: {approved:?}");
    assert_eq!(approved.status("announce"), Some(JobStatus::Success), "{approved:?}");
}
