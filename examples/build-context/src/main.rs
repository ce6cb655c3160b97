//! What a build knows beyond git: plain variables and the event it is for.
//!
//! `ctx.var("NAME")` reads a variable given with `monkeyci build run --var NAME=VALUE` (or
//! `--var NAME`, from the environment). Variables are not secrets: unlike `--param` values,
//! they are never masked, so `on push` reads as itself in the log.
//!
//! `ctx.trigger()` is the event the build is for: a push, a pull request, a tag, a manual
//! start or a schedule (`--trigger pull-request`; by default `tag` when building a tag, else
//! `push`). `publish_preview` does not run for pull requests.

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

monkeyci_sdk::main!();

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
    fn pull_requests_get_no_preview() {
        let plan = TestCtx::new().trigger(Trigger::PullRequest).plan().unwrap();
        assert_eq!(plan.job_ids(), ["announce"]);
        let run = TestCtx::new().tag("v1.0").run().unwrap();
        assert_eq!(run.log("publish-preview"), ["publishing a preview for this tag"]);
    }
}
