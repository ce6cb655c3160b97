// The context is taken by reference: `ctx: &Ctx`, not `ctx: Ctx`.
use monkeyci_sdk::prelude::*;

#[job]
async fn build(ctx: Ctx) -> Result<()> {
    ctx.log("building");
    Ok(())
}

fn main() {}
