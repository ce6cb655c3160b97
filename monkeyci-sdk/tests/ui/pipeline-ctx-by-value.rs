// The context is taken by reference: `ctx: &Ctx`.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn jobs(_ctx: Ctx) -> Vec<Job> {
    Vec::new()
}

fn main() {}
