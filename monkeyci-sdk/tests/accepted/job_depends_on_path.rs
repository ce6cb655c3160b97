//! Jobs in a submodule are named by path in `depends_on`.
use monkeyci_sdk::prelude::*;

mod build {
    use monkeyci_sdk::prelude::*;

    #[job]
    pub fn compile(_ctx: &Ctx) -> ContainerJob {
        container("rust:1.95").script(["cargo build --release"])
    }

    #[job]
    pub(crate) async fn version(_ctx: &Ctx) -> Result<String> {
        Ok("1.0.0".to_owned())
    }
}

#[job(depends_on = [build::compile, crate::job_depends_on_path::build::version])]
async fn publish(ctx: &Ctx) -> Result<()> {
    let version = ctx.output::<build::version>()?;
    ctx.log(format!("publishing {version}"));
    Ok(())
}
