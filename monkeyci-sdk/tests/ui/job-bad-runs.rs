// `runs` is one of the words `on_success`, `on_failure` or `always`, not GitHub's `failure()`.
use monkeyci_sdk::prelude::*;

#[job]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[job(depends_on = [test], runs = failure)]
async fn report(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[job(depends_on = [test], runs = "always")]
async fn cleanup(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
