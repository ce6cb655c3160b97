// `biuld` is a typo: no #[job] of that name exists.
use monkeyci_sdk::prelude::*;

#[job]
fn build(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

#[job(depends_on = [biuld])]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
