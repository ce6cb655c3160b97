// A job id cannot be empty.
use monkeyci_sdk::prelude::*;

#[job(id = "")]
async fn unit_test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
