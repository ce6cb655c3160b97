// `depends_on` lists #[job] and #[pipeline] functions; `Settings` is a struct.
use monkeyci_sdk::prelude::*;

struct Settings;

#[job(depends_on = [Settings])]
async fn test(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

fn main() {}
