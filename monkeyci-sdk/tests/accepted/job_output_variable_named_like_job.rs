//! A local variable may share its name with a job: the job marker is a type, not a value.
use monkeyci_sdk::prelude::*;

#[job]
async fn version(_ctx: &Ctx) -> Result<String> {
    Ok("1.0.0".to_owned())
}

#[job(depends_on = [version])]
async fn package(ctx: &Ctx) -> Result<()> {
    let version: String = ctx.output::<version>()?;
    ctx.log(format!("packaging {version}"));
    Ok(())
}
