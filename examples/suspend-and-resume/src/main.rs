//! A pipeline that waits for containers, and a script that does not wait with them.
//!
//! `compile` is a container job; `test` waits for two containers at once from inside an
//! action job (`ctx.run` and `join!`), then runs a command; `publish` only runs for version
//! tags, and must never run twice (`idempotent = false`).
//!
//! Run it with `monkeyci build run examples/suspend-and-resume --suspend always --tag v1.0.0`
//! (add `--engine shell` where the image cannot be pulled: the lines then run on the host).
//! While only containers run, the script exits ("script suspended while 1 job waits for
//! containers"); when they end, monkeyci starts it again and it replays its journal: `compile` is
//! not started again, `test` gets back the results of the steps it already took, and nothing
//! it logged is logged twice. `publish` reads `test`'s output as if the script had never left.

use monkeyci_sdk::prelude::*;

const ALPINE: &str = "docker.io/library/alpine:3.20";

/// Builds the application in a container.
#[job]
fn compile(_ctx: &Ctx) -> ContainerJob {
    container(ALPINE).script(["echo compiling", "sleep 1", "echo compiled"])
}

/// Runs the unit and integration suites in two containers at once, then sums up.
#[job(depends_on = [compile])]
async fn test(ctx: &Ctx) -> Result<String> {
    ctx.log("running both suites");
    let unit = ctx.run(container(ALPINE).script(["sleep 1", "echo unit: 12 passed"]));
    let integration = ctx.run(container(ALPINE).script(["sleep 1", "echo integration: 3 passed"]));
    let (unit, integration) = monkeyci_sdk::join!(unit, integration);
    unit?;
    integration?;
    let summary = ctx.shell("echo both suites passed").await?;
    Ok(summary.stdout.trim().to_owned())
}

/// Whether this build is for a version tag such as `v1.0.0`.
fn is_release(ctx: &Ctx) -> bool {
    ctx.tag().is_some_and(|tag| tag.starts_with('v'))
}

/// Publishes the release: not something to do twice, so the script never suspends while it
/// runs, and a crash in the middle fails it rather than running it again.
#[job(depends_on = [test], when = is_release, idempotent = false)]
async fn publish(ctx: &Ctx) -> Result<String> {
    let tested = ctx.output::<test>()?;
    // The same id on every launch of the script: it comes from the build, not the clock.
    let release_id = ctx.uuid();
    ctx.log(format!("publishing {} ({tested}) as release {release_id}", ctx.tag().unwrap_or_default()));
    Ok(release_id)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn a_version_tag_is_tested_and_published() {
        let run = TestCtx::new().tag("v1.0.0").run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.output::<test>().as_deref(), Some("both suites passed"));
        let release_id = run.output::<publish>().unwrap();
        assert_eq!(run.log("publish"), [format!("publishing v1.0.0 (both suites passed) as release {release_id}")]);
        // `test`'s two containers, asked for in call order (faked here).
        let asked: Vec<&str> = run.containers().iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(asked, ["compile", "test.run1", "test.run2"]);
    }

    #[test]
    fn a_branch_build_is_tested_but_not_published() {
        let plan = TestCtx::new().branch("main").plan().unwrap();
        let planned: Vec<&str> = plan.jobs.iter().map(|job| job.id.as_str()).collect();
        assert_eq!(planned, ["compile", "test"]);
        assert!(plan.skipped.iter().any(|job| job.id == "publish"));
    }

    #[test]
    fn publish_is_declared_not_idempotent() {
        let plan = TestCtx::new().tag("v1.0.0").plan().unwrap();
        let publish = plan.jobs.iter().find(|job| job.id == "publish").unwrap();
        assert!(!publish.idempotent);
    }
}
