// A #[pipeline] function cannot have type parameters.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn jobs<T>(_ctx: &Ctx) -> Vec<Job> {
    Vec::new()
}

fn main() {}
