// #[pipeline] takes one argument, `output = T`; `name` is not one.
use monkeyci_sdk::prelude::*;

#[pipeline(name = "per-crate")]
fn jobs(_ctx: &Ctx) -> Vec<Job> {
    Vec::new()
}

fn main() {}
