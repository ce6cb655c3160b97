// The argument must be the build context, `&Ctx`.
use monkeyci_sdk::prelude::*;

#[job]
async fn build(name: &str) -> Result<()> {
    let _ = name;
    Ok(())
}

fn main() {}
