// `output` names the type every job of the pipeline returns.
use monkeyci_sdk::prelude::*;

#[pipeline(output)]
fn matrix(_ctx: &Ctx) -> Vec<Job> {
    Vec::new()
}

fn main() {}
