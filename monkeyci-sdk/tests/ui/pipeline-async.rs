// A #[pipeline] computes jobs and cannot be `async`.
use monkeyci_sdk::prelude::*;

#[pipeline]
async fn jobs(_ctx: &Ctx) -> Vec<Job> {
    Vec::new()
}

fn main() {}
