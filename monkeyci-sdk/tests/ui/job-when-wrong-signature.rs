// A `when` condition is `fn(&Ctx) -> bool`; this one returns an `Option`.
use monkeyci_sdk::prelude::*;

fn release_tag(ctx: &Ctx) -> Option<&str> {
    ctx.tag()
}

#[job(when = release_tag)]
async fn publish(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
