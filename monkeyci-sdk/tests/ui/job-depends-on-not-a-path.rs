// `depends_on` lists #[job] functions by name, not job ids as strings.
use monkeyci_sdk::prelude::*;

#[job]
fn build(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

#[job(depends_on = ["build"])]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
