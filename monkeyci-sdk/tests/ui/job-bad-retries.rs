// `retries` is a number, not a string.
use monkeyci_sdk::prelude::*;

#[job(retries = "3")]
async fn flaky(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
