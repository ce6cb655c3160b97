//! A #[pipeline] may return any iterator of `Job`s.
use monkeyci_sdk::prelude::*;

#[pipeline]
fn per_target(_ctx: &Ctx) -> impl Iterator<Item = Job> {
    ["x86_64", "aarch64"]
        .into_iter()
        .map(|arch| Job::container(format!("build-{arch}"), container(format!("rust:1.95-{arch}"))))
}

#[pipeline]
fn optional(ctx: &Ctx) -> Option<Job> {
    ctx.tag().map(|tag| Job::container(format!("release-{tag}"), container("rust:1.95")))
}
