// A #[job] function takes only the context; params come from `ctx.param`.
use monkeyci_sdk::prelude::*;

#[job]
async fn deploy(_ctx: &Ctx, target: &str) -> Result<()> {
    let _ = target;
    Ok(())
}

fn main() {}
