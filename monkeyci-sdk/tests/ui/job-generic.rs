// A #[job] function cannot have type parameters.
use monkeyci_sdk::prelude::*;

#[job]
async fn build<T: Default>(_ctx: &Ctx) -> Result<()> {
    let _ = T::default();
    Ok(())
}

fn main() {}
