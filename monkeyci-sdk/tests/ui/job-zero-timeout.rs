// A zero timeout would stop every attempt at once.
use monkeyci_sdk::prelude::*;

#[job(timeout = "0s")]
async fn slow(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
