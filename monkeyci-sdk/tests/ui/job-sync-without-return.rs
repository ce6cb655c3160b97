// A non-async #[job] is a container job and must return a `ContainerJob`.
use monkeyci_sdk::prelude::*;

#[job]
fn build(ctx: &Ctx) {
    ctx.log("building");
}

fn main() {}
