// `id` is a string literal, not a name.
use monkeyci_sdk::prelude::*;

#[job(id = unit_test)]
async fn unit_test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
