// `depends_on` needs a value: `depends_on = [build]`.
use monkeyci_sdk::prelude::*;

#[job(depends_on)]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
