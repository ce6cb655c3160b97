// `build` has a bad timeout; only that is reported, not errors in the jobs that use `build`.
use monkeyci_sdk::prelude::*;

#[job(timeout = "10 minutes")]
async fn build(_ctx: &Ctx) -> Result<String> {
    Ok("target/release/app".to_owned())
}

#[job(depends_on = [build])]
async fn package(ctx: &Ctx) -> Result<()> {
    let binary = ctx.output::<build>()?;
    ctx.log(format!("packaging {binary}"));
    Ok(())
}

fn main() {}
