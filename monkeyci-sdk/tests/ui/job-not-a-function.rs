// #[job] goes on a function, not a struct.
use monkeyci_sdk::prelude::*;

#[job]
struct Build {
    image: String,
}

fn main() {}
