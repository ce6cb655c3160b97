// The argument of a #[pipeline] must be the build context, `&Ctx`.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn jobs(names: &[&str]) -> Vec<Job> {
    names.iter().map(|name| Job::container(*name, container("rust:1.95"))).collect()
}

fn main() {}
