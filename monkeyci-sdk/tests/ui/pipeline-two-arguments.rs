// A #[pipeline] function takes only the context.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn jobs(_ctx: &Ctx, crates: &[&str]) -> Vec<Job> {
    let _ = crates;
    Vec::new()
}

fn main() {}
