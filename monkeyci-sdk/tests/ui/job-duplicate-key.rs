// `when` is given twice.
use monkeyci_sdk::prelude::*;

fn is_release(ctx: &Ctx) -> bool {
    ctx.tag().is_some()
}

fn on_main(ctx: &Ctx) -> bool {
    ctx.is_main_branch()
}

#[job(when = is_release, when = on_main)]
async fn publish(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
