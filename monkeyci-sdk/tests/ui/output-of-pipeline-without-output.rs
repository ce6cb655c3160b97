// `ctx.output_of` reads jobs of a pipeline that declares their output type.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn matrix(_ctx: &Ctx) -> Vec<Job> {
    Vec::new()
}

#[job(depends_on = [matrix])]
async fn summary(ctx: &Ctx) -> Result<u32> {
    ctx.output_of::<matrix>("test-1.95")
}

fn main() {}
