// A job returning `ContainerJob` is a container job and must not be `async`.
use monkeyci_sdk::prelude::*;

#[job]
async fn build(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

fn main() {}
