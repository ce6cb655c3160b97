// `depends_on` lists #[job] functions; `helper` is a plain function.
use monkeyci_sdk::prelude::*;

fn helper(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

#[job(depends_on = [helper])]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
