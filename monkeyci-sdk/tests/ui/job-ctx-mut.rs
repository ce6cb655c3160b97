// Jobs share the context: it is `&Ctx`, not `&mut Ctx`.
use monkeyci_sdk::prelude::*;

#[job]
fn build(_ctx: &mut Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

fn main() {}
