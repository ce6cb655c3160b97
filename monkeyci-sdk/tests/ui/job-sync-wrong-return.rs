// A non-async #[job] returning a `Result` was meant to be an `async fn` action job.
use monkeyci_sdk::prelude::*;

#[job]
fn version(_ctx: &Ctx) -> Result<String> {
    Ok("1.0.0".to_owned())
}

fn main() {}
