//! A job whose id is not derived from its function name.
use monkeyci_sdk::prelude::*;

#[job(id = "unit-test.v2")]
fn unit_test(_ctx: &Ctx) -> ContainerJob {
    container("rust:1.95").script(["cargo test"])
}

#[job(depends_on = [unit_test])]
async fn report(_ctx: &Ctx) -> Result<()> {
    Ok(())
}
