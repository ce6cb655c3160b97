// `retries` does not fit in a u32.
use monkeyci_sdk::prelude::*;

#[job(retries = 10000000000)]
async fn flaky(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
