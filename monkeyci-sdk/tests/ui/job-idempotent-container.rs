// `idempotent` is for action jobs: a container job is never started twice on resume.
use monkeyci_sdk::prelude::*;

#[job(idempotent = false)]
fn deploy(_ctx: &Ctx) -> ContainerJob {
    container("alpine").script(["./deploy.sh"])
}

fn main() {}
