//! What a build knows beyond git (plain variables, the event it is for), and the environment
//! of all its jobs.
//!
//! `ctx.var("NAME")` reads a variable given with `monkeyci build run --var NAME=VALUE` (or
//! `--var NAME`, from the environment). Variables are not secrets: unlike `--param` values,
//! they are never masked, so `on push` reads as itself in the log.
//!
//! `ctx.trigger()` is the event the build is for: a push, a pull request, a tag, a manual
//! start or a schedule (`--trigger pull-request`; by default `tag` when building a tag, else
//! `push`). `publish_preview` does not run for pull requests.
//!
//! `monkeyci_sdk::main!(env = [...])` sets environment variables for every job, as a
//! workflow's `env:` does: `lint`'s container and `versions`' `ctx.shell` command see
//! `CARGO_TERM_COLOR`; `lint` sets its own `RUST_LOG`, which wins over the pipeline's. Run the
//! container job anywhere with `--engine shell`.

use monkeyci_sdk::prelude::*;

/// Says what the build is for.
#[job]
async fn announce(ctx: &Ctx) -> Result<()> {
    let event = ctx.var("EVENT").unwrap_or("an unknown event");
    let target = ctx.var("DEPLOY_ENV").unwrap_or("nowhere");
    ctx.log(format!("building on {event}, deploying to {target}"));
    Ok(())
}

/// Publishes a preview of the docs; pull requests get none.
#[job(when = not_pull_request)]
async fn publish_preview(ctx: &Ctx) -> Result<()> {
    ctx.log(format!("publishing a preview for this {}", ctx.trigger()));
    Ok(())
}

fn not_pull_request(ctx: &Ctx) -> bool {
    ctx.trigger() != Trigger::PullRequest
}

/// Prints the environment it got from the pipeline and from itself.
#[job]
fn lint(_ctx: &Ctx) -> ContainerJob {
    container("docker.io/rust:1.95")
        .env("RUST_LOG", "debug")
        .script([r#"echo "color=$CARGO_TERM_COLOR log=$RUST_LOG""#])
}

/// Runs a command that sees the pipeline's environment.
#[job]
async fn versions(ctx: &Ctx) -> Result<String> {
    let out = ctx.shell(r#"echo "color=$CARGO_TERM_COLOR log=$RUST_LOG""#).await?;
    Ok(out.stdout.trim().to_owned())
}

monkeyci_sdk::main!(env = [("CARGO_TERM_COLOR", "always"), ("RUST_LOG", "info")]);

#[cfg(test)]
mod tests {
    use monkeyci_sdk::Trigger;
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn variables_are_read_as_they_are() {
        let run = TestCtx::new().var("EVENT", "push").var("DEPLOY_ENV", "staging").run().unwrap();
        assert_eq!(run.log("announce"), ["building on push, deploying to staging"]);
        let run = TestCtx::new().run().unwrap();
        assert_eq!(run.log("announce"), ["building on an unknown event, deploying to nowhere"]);
    }

    #[test]
    fn every_job_gets_the_pipeline_environment_under_its_own() {
        let plan = TestCtx::new().plan().unwrap();
        let env = &plan.job("lint").unwrap().container.as_ref().unwrap().env;
        assert_eq!(env.get("CARGO_TERM_COLOR").map(String::as_str), Some("always"));
        assert_eq!(env.get("RUST_LOG").map(String::as_str), Some("debug"), "the job's own wins");
        let run = TestCtx::new().run().unwrap();
        assert_eq!(run.output::<super::versions>().as_deref(), Some("color=always log=info"));
    }

    #[test]
    fn pull_requests_get_no_preview() {
        let plan = TestCtx::new().trigger(Trigger::PullRequest).plan().unwrap();
        assert_eq!(plan.job_ids(), ["announce", "lint", "versions"]);
        let run = TestCtx::new().tag("v1.0").run().unwrap();
        assert_eq!(run.log("publish-preview"), ["publishing a preview for this tag"]);
    }
}
