// Three mistakes in one attribute (an unknown key, a bad id, a bad timeout): all three are reported.
use monkeyci_sdk::prelude::*;

#[job(dependson = [build], id = "unit test", timeout = "ten minutes")]
async fn unit_test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
