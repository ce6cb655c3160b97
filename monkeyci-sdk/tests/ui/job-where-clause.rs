// A #[job] function cannot be generic, even through a `where` clause.
use monkeyci_sdk::prelude::*;

#[job]
async fn build(_ctx: &Ctx) -> Result<()>
where
    String: Clone,
{
    Ok(())
}

fn main() {}
