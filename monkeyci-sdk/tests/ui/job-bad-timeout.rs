// `timeout` needs a unit: "10" is not a duration.
use monkeyci_sdk::prelude::*;

#[job(timeout = "10")]
async fn slow(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
