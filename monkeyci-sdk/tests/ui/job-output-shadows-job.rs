// `let version = ctx.output(&version)` cannot reuse the job's name: the job is a unit struct.
use monkeyci_sdk::prelude::*;

#[job]
async fn version(_ctx: &Ctx) -> Result<String> {
    Ok("1.0.0".to_owned())
}

#[job(depends_on = [version])]
async fn package(ctx: &Ctx) -> Result<()> {
    let version: String = ctx.output(&version)?;
    ctx.log(format!("packaging {version}"));
    Ok(())
}

fn main() {}
