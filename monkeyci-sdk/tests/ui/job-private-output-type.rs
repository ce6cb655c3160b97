// A `pub` job's output type must be public too, since dependents read it.
use monkeyci_sdk::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
struct Release {
    version: String,
}

#[job]
pub async fn release(_ctx: &Ctx) -> Result<Release> {
    Ok(Release { version: "1.0.0".to_owned() })
}

fn main() {}
