// `idempotent` is a bool, not a string.
use monkeyci_sdk::prelude::*;

#[job(idempotent = "no")]
async fn deploy(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
