// A job id cannot contain spaces.
use monkeyci_sdk::prelude::*;

#[job(id = "unit test")]
async fn unit_test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
