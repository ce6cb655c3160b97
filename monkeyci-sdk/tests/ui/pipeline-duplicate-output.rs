// `output` is given once.
use monkeyci_sdk::prelude::*;

#[pipeline(output = u32, output = String)]
fn matrix(_ctx: &Ctx) -> Vec<Job> {
    Vec::new()
}

fn main() {}
