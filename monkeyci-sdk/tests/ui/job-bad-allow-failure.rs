// `allow_failure` is a flag or `allow_failure = true`/`false`, not a string.
use monkeyci_sdk::prelude::*;

#[job(allow_failure = "yes")]
async fn msrv(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
