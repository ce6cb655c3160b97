// A #[job] is a free function: it cannot be a method taking `self`.
use monkeyci_sdk::prelude::*;

struct Pipeline;

impl Pipeline {
    #[job]
    async fn build(&self) -> Result<()> {
        Ok(())
    }
}

fn main() {}
