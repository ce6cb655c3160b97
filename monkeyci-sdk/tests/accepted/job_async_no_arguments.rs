//! An action job needing no context, and one returning nothing.
use monkeyci_sdk::prelude::*;

#[job]
async fn answer() -> Result<u32> {
    Ok(42)
}

#[job(depends_on = [answer])]
async fn nothing() {}
