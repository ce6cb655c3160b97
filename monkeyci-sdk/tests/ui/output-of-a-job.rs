// `ctx.output_of` reads a job of a pipeline by id; a #[job]'s output is `ctx.output::<J>()`.
use monkeyci_sdk::prelude::*;

#[job]
async fn build(_ctx: &Ctx) -> Result<u32> {
    Ok(1)
}

#[job(depends_on = [build])]
async fn summary(ctx: &Ctx) -> Result<u32> {
    ctx.output_of::<build>("build")
}

fn main() {}
