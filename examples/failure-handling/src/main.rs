//! Failures a pipeline plans for.
//!
//! `#[job(allow_failure)]` lets a job fail without failing the build: `msrv` builds on the
//! oldest supported Rust, which is worth seeing but not worth blocking a merge on. Its failure
//! shows as `failure (allowed)`, the build succeeds, and `package`, which depends on it, runs
//! as if it had succeeded (as GitHub's `continue-on-error` does for `needs`).
//!
//! `runs = on_failure` and `runs = always` run a job once its dependencies ended, whatever
//! happened to them (GitHub's `if: failure()` and `if: always()`): `report` says what failed,
//! and only runs when something did (on the branch `broken`, where `test` fails and `package`
//! is skipped because of it); `cleanup` runs every time.
//!
//! `#[job(retries = 2)]` gives a container job up to two more attempts, each in a new
//! container: `integration` fails its first attempt (as a test against a service that is not
//! up yet would) and passes the second. Its marker file is in `/tmp`, which the attempts share
//! only on the host shell engine.
//!
//! The container jobs run anywhere with `--engine shell` (their images are then ignored).

use monkeyci_sdk::prelude::*;

/// Builds with the minimum supported Rust version; it fails today, and may.
#[job(allow_failure)]
fn msrv(_ctx: &Ctx) -> ContainerJob {
    container("docker.io/rust:1.80")
        .script(["echo 'error[E0658]: `let` expressions in this position are unstable'", "exit 101"])
}

/// Runs the tests: they fail on the branch `broken`, as a real regression would.
#[job]
async fn test(ctx: &Ctx) -> Result<()> {
    if ctx.branch() == Some("broken") {
        return Err(JobError::msg("3 tests failed"));
    }
    ctx.log("all tests passed");
    Ok(())
}

/// Packages the release once the tests passed; `msrv` failing does not stop it.
#[job(depends_on = [test, msrv])]
async fn package(ctx: &Ctx) -> Result<()> {
    ctx.log("packaged app.tar.gz");
    Ok(())
}

/// The file that tells `integration` it already ran once in this build.
fn marker(ctx: &Ctx) -> String {
    format!("/tmp/monkeyci-example-integration-{}", ctx.build_id())
}

/// Fails its first attempt, then passes.
#[job(retries = 2)]
fn integration(ctx: &Ctx) -> ContainerJob {
    container("docker.io/alpine:3").env("MARKER", marker(ctx)).script([
        r#"if [ ! -e "$MARKER" ]; then touch "$MARKER"; echo "connection refused"; exit 1; fi"#,
        "echo 'integration tests passed'",
    ])
}

/// Tells what failed; skipped, saying why, when nothing did.
#[job(depends_on = [package], runs = on_failure)]
async fn report(ctx: &Ctx) -> Result<()> {
    ctx.log(format!("the build of {} failed: see the jobs above", ctx.branch().unwrap_or("HEAD")));
    Ok(())
}

/// Removes what the build left behind, however it went.
#[job(depends_on = [test, package, integration], runs = always)]
async fn cleanup(ctx: &Ctx) -> Result<()> {
    ctx.shell(&format!("rm -f {}", marker(ctx))).await?;
    ctx.log("removed the staging directory");
    Ok(())
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use monkeyci_sdk::testing::{JobStatus, TestCtx};

    #[test]
    fn msrv_is_allowed_to_fail() {
        let plan = TestCtx::new().plan().unwrap();
        assert!(plan.job("msrv").unwrap().allow_failure);
        assert!(!plan.job("test").unwrap().allow_failure);
        // The fake engine of unit tests succeeds every container: the build goes on either way.
        let run = TestCtx::new().branch("main").run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.job_status("package"), Some(JobStatus::Success));
        assert_eq!(run.job_status("report"), Some(JobStatus::Skipped));
        assert_eq!(run.job_status("cleanup"), Some(JobStatus::Success));
    }

    #[test]
    fn integration_gets_another_container_when_it_fails() {
        let run = TestCtx::new().branch("main").fail_container("integration", 1).run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        let attempts = run.containers().iter().filter(|(id, _)| id == "integration").count();
        assert_eq!(attempts, 2);
    }

    #[test]
    fn a_failure_is_reported_and_cleaned_up_after() {
        let run = TestCtx::new().branch("broken").run().unwrap();
        assert!(!run.succeeded());
        assert_eq!(run.message("package"), Some("dependency `test` failed"));
        assert_eq!(run.log("report"), ["the build of broken failed: see the jobs above"]);
        assert_eq!(run.log("cleanup"), ["removed the staging directory"]);
    }
}
