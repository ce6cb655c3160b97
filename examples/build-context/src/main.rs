//! What a build knows beyond git: plain variables.
//!
//! `ctx.var("NAME")` reads a variable given with `monkeyci build run --var NAME=VALUE` (or
//! `--var NAME`, from the environment). Variables are not secrets: unlike `--param` values,
//! they are never masked, so `on push` reads as itself in the log.

use monkeyci_sdk::prelude::*;

/// Says what the build is for.
#[job]
async fn announce(ctx: &Ctx) -> Result<()> {
    let event = ctx.var("EVENT").unwrap_or("an unknown event");
    let target = ctx.var("DEPLOY_ENV").unwrap_or("nowhere");
    ctx.log(format!("building on {event}, deploying to {target}"));
    Ok(())
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn variables_are_read_as_they_are() {
        let run = TestCtx::new().var("EVENT", "push").var("DEPLOY_ENV", "staging").run().unwrap();
        assert_eq!(run.log("announce"), ["building on push, deploying to staging"]);
        let run = TestCtx::new().run().unwrap();
        assert_eq!(run.log("announce"), ["building on an unknown event, deploying to nowhere"]);
    }
}
