//! An action job using every #[job] argument.
use monkeyci_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[job]
fn unit_test(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo test --locked"])
}

#[job]
async fn lint(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn is_release(ctx: &Ctx) -> bool {
    ctx.tag().is_some()
}

#[derive(Serialize, Deserialize)]
pub struct Release {
    pub version: String,
}

/// Publishes the crate.
#[job(
    depends_on = [unit_test, lint],
    when = is_release,
    id = "publish-crate",
    blocked,
    timeout = "1h30m",
    retries = 2,
    idempotent = false,
    allow_failure,
    runs = always,
)]
pub async fn publish(ctx: &Ctx) -> Result<Release> {
    ctx.log("publishing");
    Ok(Release { version: ctx.tag().unwrap_or_default().to_owned() })
}

#[job(depends_on = [publish], blocked = false, timeout = "500ms", retries = 0, idempotent = true, allow_failure = false, runs = on_failure)]
async fn announce(ctx: &Ctx) -> Result<()> {
    let release: Release = ctx.output::<publish>()?;
    ctx.log(format!("released {}", release.version));
    Ok(())
}
