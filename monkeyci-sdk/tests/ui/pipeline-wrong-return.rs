// A #[pipeline] returns `Job`s, not container specs.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn jobs(_ctx: &Ctx) -> Vec<ContainerJob> {
    vec![container("rust:1.95").script(["cargo test"])]
}

fn main() {}
