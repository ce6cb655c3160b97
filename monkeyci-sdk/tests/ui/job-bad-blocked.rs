// `blocked` is a flag or `blocked = true`/`false`, not a string.
use monkeyci_sdk::prelude::*;

#[job(blocked = "yes")]
async fn deploy(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
