// A #[pipeline] returns a collection of jobs, even for a single job.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn jobs(_ctx: &Ctx) -> Job {
    Job::container("test", container("rust:1.95").script(["cargo test"]))
}

fn main() {}
