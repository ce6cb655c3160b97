//! A container job: a plain fn returning a `ContainerJob`.
use monkeyci_sdk::prelude::*;

#[job(timeout = "10m")]
fn unit_test(ctx: &Ctx) -> ContainerJob {
    let job = container("docker.io/rust:1.95").script(["cargo test --locked"]).size(2);
    if ctx.is_main_branch() { job.env("RUST_BACKTRACE", "1") } else { job }
}

#[job(depends_on = [unit_test])]
fn package(_ctx: &Ctx) -> ContainerJob {
    container("docker.io/rust:1.95").command(["cargo", "package"])
}
