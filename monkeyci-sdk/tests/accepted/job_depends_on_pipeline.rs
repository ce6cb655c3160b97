//! A #[job] depending on a whole #[pipeline], reading its jobs' outputs by id; a container
//! #[job] whose spec reads a dependency's output; pipelines depending on pipelines.
use monkeyci_sdk::prelude::*;

#[job]
pub async fn version(_ctx: &Ctx) -> Result<String> {
    Ok("1.2.3".into())
}

#[job(depends_on = [version])]
pub fn package(ctx: &Ctx) -> Result<ContainerJob> {
    Ok(container("alpine").script(["./package.sh"]).env("VERSION", ctx.output::<version>()?))
}

#[pipeline(output = u32)]
pub fn checks(_ctx: &Ctx) -> Vec<Job> {
    vec![Job::action("check-a", |_ctx| async { Ok(1u32) })]
}

#[pipeline]
pub fn after_checks(_ctx: &Ctx) -> Vec<Job> {
    vec![
        Job::container_with("report", |ctx: &Ctx| {
            let a = ctx.output_of::<checks>("check-a")?;
            Ok(container("alpine").script([format!("echo {a}")]))
        })
        .depends_on([JobId::all_of::<checks>()]),
    ]
}

#[job(depends_on = [checks, package, after_checks])]
async fn summary(ctx: &Ctx) -> Result<u32> {
    let one: u32 = ctx.output_of::<checks>("check-a")?;
    Ok(one + ctx.outputs_of::<checks>()?.values().sum::<u32>())
}
