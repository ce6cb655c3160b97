// `is_relase` is a typo: the condition function is `is_release`.
use monkeyci_sdk::prelude::*;

fn is_release(ctx: &Ctx) -> bool {
    ctx.tag().is_some()
}

#[job(when = is_relase)]
async fn publish(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
