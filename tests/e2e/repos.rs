//! Pipelines in real git repositories made for each test ([`TestRepo`]): what git says about
//! changes, pipelines that do not compile, the pipeline's own unit tests, `monkeyci init`, and
//! the compiled-binary cache (warm starts).

use monkeyci_protocol::JobStatus;

use crate::util::{MonkeyciCommand, TestRepo};

/// A pipeline whose jobs depend on what changed, with one job listing the changes.
const CHANGES_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

fn app_changed(ctx: &Ctx) -> bool {
    ctx.touched("app/**")
}

fn docs_changed(ctx: &Ctx) -> bool {
    ctx.touched("docs/**")
}

#[job(when = app_changed)]
async fn test_app(ctx: &Ctx) -> Result<()> {
    ctx.log("testing the app");
    Ok(())
}

#[job(when = docs_changed)]
async fn check_docs(ctx: &Ctx) -> Result<()> {
    ctx.log("checking the docs");
    Ok(())
}

/// One line per changed file, as git reported it.
#[job]
async fn list_changes(ctx: &Ctx) -> Result<()> {
    let changes = ctx.changes();
    for path in &changes.added {
        ctx.log(format!("added {path}"));
    }
    for path in &changes.modified {
        ctx.log(format!("modified {path}"));
    }
    for path in &changes.removed {
        ctx.log(format!("removed {path}"));
    }
    Ok(())
}

monkeyci_sdk::main!();
"#;

/// A repository with an app and its docs, committed, and [`CHANGES_PIPELINE`].
fn repo_with_app_and_docs(name: &str) -> TestRepo {
    let repo = TestRepo::with_pipeline(name, CHANGES_PIPELINE);
    repo.write("app/src/main.rs", "fn main() {}\n");
    repo.write("docs/index.md", "# Docs\n");
    repo.commit("app and docs");
    repo
}

#[test]
fn uncommitted_changes_are_read_from_git() {
    let repo = repo_with_app_and_docs("uncommitted_changes");

    repo.write("app/src/main.rs", "fn main() { println!(\"changed\"); }\n");
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert!(out.log("list-changes").contains(&"modified app/src/main.rs"), "{out:?}");
    assert_eq!(out.status("test-app"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.status("check-docs"), Some(JobStatus::Skipped), "{out:?}");
    assert!(out.skip_reason("check-docs").unwrap().contains("docs_changed"), "{out:?}");

    // An untracked file counts as added.
    repo.write("docs/new-page.md", "# New\n");
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert!(out.log("list-changes").contains(&"added docs/new-page.md"), "{out:?}");
    assert_eq!(out.status("check-docs"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.log("check-docs"), ["checking the docs"]);

    // A deleted file counts as removed.
    repo.remove("app/src/main.rs");
    repo.remove("docs/new-page.md");
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert!(out.log("list-changes").contains(&"removed app/src/main.rs"), "{out:?}");
    assert_eq!(out.status("test-app"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.status("check-docs"), Some(JobStatus::Skipped), "{out:?}");
}

/// Found by the fixed-cost benchmark: a checkout with 10,000 untracked files failed every
/// build with "Argument list too long", because the script's configuration (the changed
/// files among it) went into one environment variable, which holds at most 128 KiB.
#[test]
fn thousands_of_changed_files_reach_the_pipeline() {
    let repo = TestRepo::with_pipeline(
        "many_changes",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn count(ctx: &Ctx) -> Result<()> {
    ctx.log(format!("{} added", ctx.changes().added.len()));
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    let name = "x".repeat(60);
    for i in 0..4000 {
        repo.write(&format!("generated/{name}-{i:05}.txt"), "");
    }
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert_eq!(out.log("count"), ["4000 added"], "{out:?}");
}

#[test]
fn committed_changes_since_base_are_read_from_git() {
    let repo = repo_with_app_and_docs("committed_changes");
    let before_app_change = repo.git(&["rev-parse", "HEAD"]);
    repo.write("app/src/main.rs", "fn main() { println!(\"v2\"); }\n");
    repo.commit("change the app");
    repo.write("docs/index.md", "# Docs, v2\n");
    repo.commit("change the docs");

    // Without --base, changes are those of the working tree: none of the app or docs.
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert_eq!(out.status("test-app"), Some(JobStatus::Skipped), "{out:?}");
    assert_eq!(out.status("check-docs"), Some(JobStatus::Skipped), "{out:?}");

    let out = MonkeyciCommand::run(repo.path()).args(["--base", "HEAD~1"]).output();
    out.assert_code(0);
    assert!(out.log("list-changes").contains(&"modified docs/index.md"), "{out:?}");
    assert!(!out.log("list-changes").contains(&"modified app/src/main.rs"), "{out:?}");
    assert_eq!(out.status("check-docs"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.status("test-app"), Some(JobStatus::Skipped), "{out:?}");

    let out = MonkeyciCommand::run(repo.path()).args(["--base", &before_app_change]).output();
    out.assert_code(0);
    let log = out.log("list-changes");
    assert!(log.contains(&"modified docs/index.md") && log.contains(&"modified app/src/main.rs"), "{out:?}");
    assert_eq!(out.status("check-docs"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.status("test-app"), Some(JobStatus::Success), "{out:?}");
}

#[test]
fn pipeline_that_does_not_compile_shows_cargo_diagnostics() {
    let repo = TestRepo::with_pipeline(
        "compile_error",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn broken(ctx: &Ctx) -> Result<u32> {
    let count: u32 = "not a number";
    ctx.log("unreachable");
    Ok(count)
}

monkeyci_sdk::main!();
"#,
    );
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(2)
        .assert_stderr_contains("error[E0308]")
        .assert_stderr_contains("mismatched types")
        .assert_stderr_contains("src/main.rs")
        .assert_stderr_contains("does not compile");
    assert!(out.events.is_empty(), "something ran; {out:?}");

    MonkeyciCommand::verify(repo.path()).output().assert_code(2).assert_stderr_contains("error[E0308]");
}

#[test]
fn build_test_fails_when_a_pipeline_unit_test_fails() {
    let repo = TestRepo::with_pipeline(
        "failing_unit_test",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn build(ctx: &Ctx) -> Result<()> {
    ctx.log("building");
    Ok(())
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn plans_the_build_job() {
        assert_eq!(TestCtx::new().plan().unwrap().job_ids(), ["build"]);
    }

    #[test]
    fn plans_a_deploy_job() {
        assert_eq!(TestCtx::new().plan().unwrap().job_ids(), ["build", "deploy"]);
    }
}
"#,
    );
    let out = MonkeyciCommand::test(repo.path()).output();
    out.assert_code(1)
        .assert_stdout_contains("plans_a_deploy_job ... FAILED")
        .assert_stdout_contains("plans_the_build_job ... ok")
        .assert_stdout_contains("1 passed; 1 failed");
}

#[test]
fn init_creates_a_pipeline_that_checks_the_readme() {
    let repo = TestRepo::new("init");
    let out = MonkeyciCommand::init(".").current_dir(repo.path()).output();
    out.assert_code(0).assert_stdout_contains("created");
    let manifest = std::fs::read_to_string(repo.path().join(".monkeyci/Cargo.toml")).unwrap();
    assert!(manifest.contains("monkeyci-sdk = \"0.1\""), "{manifest}");
    assert!(repo.path().join(".monkeyci/src/main.rs").is_file());
    // The user's lock file: the workspace's, so cargo resolves the same versions without the
    // registry (the runtime patches the sdk to this checkout).
    repo.write(
        ".monkeyci/Cargo.lock",
        &std::fs::read_to_string(crate::util::workspace_dir().join("Cargo.lock")).unwrap(),
    );

    // `monkeyci build run` in the repository, as the message after init says.
    let out = MonkeyciCommand::run(".").current_dir(repo.path()).output();
    out.assert_code(0);
    assert_eq!(out.status("check-readme"), Some(JobStatus::Success), "{out:?}");
    let size = std::fs::metadata(repo.path().join("README.md")).unwrap().len();
    assert_eq!(out.log("check-readme"), [format!("README.md has {size} bytes")], "{out:?}");

    repo.remove("README.md");
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(1).assert_stdout_contains("no README.md");
    assert_eq!(out.status("check-readme"), Some(JobStatus::Failure), "{out:?}");
    assert!(out.message("check-readme").unwrap().contains("no README.md"), "{out:?}");

    let out = MonkeyciCommand::test(repo.path()).output();
    out.assert_code(0).assert_stdout_contains("test result: ok. 1 passed");
}

#[test]
fn init_refuses_to_overwrite_a_pipeline() {
    let repo = TestRepo::new("init_twice");
    MonkeyciCommand::init(repo.path()).output().assert_code(0);
    repo.write_main_rs("// the user's own pipeline\n");

    let out = MonkeyciCommand::init(repo.path()).output();
    out.assert_code(2).assert_stderr_contains("already exists");
    let main_rs = std::fs::read_to_string(repo.path().join(".monkeyci/src/main.rs")).unwrap();
    assert_eq!(main_rs, "// the user's own pipeline\n", "init overwrote the pipeline");
}

/// A one-job pipeline logging `word`.
fn logging_pipeline(word: &str) -> String {
    format!(
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn say(ctx: &Ctx) -> Result<()> {{
    ctx.log("version {word}");
    Ok(())
}}

monkeyci_sdk::main!();
"#
    )
}

#[test]
fn unchanged_pipeline_starts_without_cargo_on_the_second_run() {
    let repo = TestRepo::with_pipeline("warm_second_run", &logging_pipeline("one"));
    let first = MonkeyciCommand::run(repo.path()).output();
    first.assert_code(0);
    assert!(first.compiled(), "{first:?}");
    let second = MonkeyciCommand::run(repo.path()).output();
    second.assert_code(0);
    assert!(!second.compiled(), "the unchanged pipeline was compiled again; {second:?}");
    assert_eq!(second.log("say"), ["version one"]);
}

#[test]
fn warm_start_skips_cargo_until_the_pipeline_changes() {
    let repo = TestRepo::with_pipeline("warm_start", &logging_pipeline("one"));
    let first = MonkeyciCommand::run(repo.path()).output();
    first.assert_code(0).assert_stderr_contains(&format!("compiling pipeline `{}`", repo.package()));
    // Cargo may have rewritten Cargo.lock on the first build (see the ignored test above);
    // from then on nothing changes.
    MonkeyciCommand::run(repo.path()).output().assert_code(0);
    let warm = MonkeyciCommand::run(repo.path()).output();
    warm.assert_code(0);
    assert!(!warm.compiled(), "the unchanged pipeline was compiled again; {warm:?}");
    assert_eq!(warm.log("say"), ["version one"], "{warm:?}");

    repo.write_main_rs(&logging_pipeline("two"));
    let edited = MonkeyciCommand::run(repo.path()).output();
    edited.assert_code(0);
    assert!(edited.compiled(), "the edited pipeline was not recompiled; {edited:?}");
    assert_eq!(edited.log("say"), ["version two"], "{edited:?}");

    let warm = MonkeyciCommand::run(repo.path()).output();
    warm.assert_code(0);
    assert!(!warm.compiled(), "{warm:?}");
    assert_eq!(warm.log("say"), ["version two"], "{warm:?}");
}

/// #9: pipelines share one cargo target dir, and cargo keys a package's build by its name and
/// version, not its path: without care, a second repository whose pipeline has the same name
/// ran the first one's binary (and MonkeyCI cached it under its own hash).
#[test]
fn pipelines_of_the_same_name_each_run_their_own_binary() {
    let a = TestRepo::with_pipeline_package("same_name_a", "e2e-same-name", &logging_pipeline("a1"));
    let b = TestRepo::with_pipeline_package("same_name_b", "e2e-same-name", &logging_pipeline("b1"));
    for (repo, word) in [(&a, "a1"), (&b, "b1"), (&a, "a1")] {
        let out = MonkeyciCommand::run(repo.path()).output();
        out.assert_code(0);
        assert_eq!(out.log("say"), [format!("version {word}")], "{out:?}");
    }
    // B edited, then A a second later: B's sources are older than A's last build.
    b.write_main_rs(&logging_pipeline("b2"));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    a.write_main_rs(&logging_pipeline("a2"));
    for (repo, word) in [(&a, "a2"), (&b, "b2")] {
        let out = MonkeyciCommand::run(repo.path()).output();
        out.assert_code(0);
        assert_eq!(out.log("say"), [format!("version {word}")], "{out:?}");
    }
    // Both edited and built at once.
    a.write_main_rs(&logging_pipeline("a3"));
    b.write_main_rs(&logging_pipeline("b3"));
    let (a_path, b_path) = (a.path().to_owned(), b.path().to_owned());
    let a_run = std::thread::spawn(move || MonkeyciCommand::run(&a_path).output());
    let b_out = MonkeyciCommand::run(&b_path).output();
    let a_out = a_run.join().expect("the build of a");
    for (out, word) in [(a_out, "a3"), (b_out, "b3")] {
        out.assert_code(0);
        assert_eq!(out.log("say"), [format!("version {word}")], "{out:?}");
    }
}

/// Ctrl-C cancels the build: the running job is stopped and reported canceled, its dependent
/// skipped, the summary shown, and the exit code says the build did not succeed.
#[test]
fn ctrl_c_cancels_the_build_and_reports_it() {
    let repo = TestRepo::with_pipeline(
        "ctrl_c",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn slow(ctx: &Ctx) -> Result<()> {
    std::fs::write(ctx.checkout_dir().join("started"), "")?;
    ctx.sleep(std::time::Duration::from_secs(120)).await;
    Ok(())
}

#[job(depends_on = [slow])]
async fn after(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    let out = MonkeyciCommand::run(repo.path()).interrupt_when_exists(repo.path().join("started")).output();
    out.assert_code(1);
    assert!(out.elapsed < std::time::Duration::from_secs(60), "the build was not stopped: {out:?}");
    assert_eq!(out.status("slow"), Some(JobStatus::Canceled), "{out:?}");
    assert_eq!(out.status("after"), Some(JobStatus::Skipped), "{out:?}");
    assert_eq!(out.build_end().map(|(status, _)| status), Some(monkeyci_protocol::BuildStatus::Canceled));
    out.assert_stdout_contains("build canceled");
}
