// A #[pipeline] returns the jobs it computes.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn jobs(ctx: &Ctx) {
    ctx.log("computing jobs");
}

fn main() {}
