// `when` names a function; it does not take an expression.
use monkeyci_sdk::prelude::*;

#[job(when = |ctx: &Ctx| ctx.tag().is_some())]
async fn publish(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
