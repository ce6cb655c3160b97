// An action job returns `Result<T>` or nothing, not a bare value.
use monkeyci_sdk::prelude::*;

#[job]
async fn version(_ctx: &Ctx) -> String {
    "1.0.0".to_owned()
}

fn main() {}
