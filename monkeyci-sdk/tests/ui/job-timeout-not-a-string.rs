// `timeout` is a string with a unit, not a bare number.
use monkeyci_sdk::prelude::*;

#[job(timeout = 600)]
async fn slow(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
