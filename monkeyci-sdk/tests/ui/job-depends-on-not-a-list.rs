// `depends_on` takes a list, even for a single job: `depends_on = [build]`.
use monkeyci_sdk::prelude::*;

#[job]
fn build(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

#[job(depends_on = build)]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
