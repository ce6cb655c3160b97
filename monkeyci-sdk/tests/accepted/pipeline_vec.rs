//! A #[pipeline] returning `Vec<Job>`, and one needing no context.
use monkeyci_sdk::prelude::*;

#[job]
fn compile(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo build"])
}

#[pipeline]
fn per_crate(ctx: &Ctx) -> Vec<Job> {
    ["core", "cli"]
        .into_iter()
        .filter(|name| ctx.touched(&format!("{name}/**")))
        .map(|name| {
            Job::container(format!("test-{name}"), container("rust:1.95").script([format!("cargo test -p {name}")]))
                .depends_on([JobId::of::<compile>()])
        })
        .collect()
}

#[pipeline]
fn fixed() -> Vec<Job> {
    vec![Job::action("hello", |ctx: Ctx| async move {
        ctx.log("hello");
        Ok(())
    })]
}
