// #[pipeline] goes on a function, not a constant.
use monkeyci_sdk::prelude::*;

#[pipeline]
const JOBS: [&str; 2] = ["build", "test"];

fn main() {}
