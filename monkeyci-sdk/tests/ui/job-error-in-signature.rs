// `build` takes its context by value; only that is reported, not errors in the jobs that use it.
use monkeyci_sdk::prelude::*;

#[job]
async fn build(ctx: Ctx) -> Result<String> {
    Ok(ctx.build_id().to_owned())
}

#[job(depends_on = [build])]
async fn package(ctx: &Ctx) -> Result<()> {
    let binary = ctx.output::<build>()?;
    ctx.log(format!("packaging {binary}"));
    Ok(())
}

fn main() {}
