// `dependson` is not a #[job] argument (it is `depends_on`).
use monkeyci_sdk::prelude::*;

#[job]
fn build(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

#[job(dependson = [build])]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
