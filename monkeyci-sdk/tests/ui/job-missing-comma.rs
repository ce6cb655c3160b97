// Arguments are separated by commas: `depends_on = [build], when = is_release`.
use monkeyci_sdk::prelude::*;

#[job]
fn build(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

fn is_release(ctx: &Ctx) -> bool {
    ctx.tag().is_some()
}

#[job(depends_on = [build] when = is_release)]
async fn publish(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
