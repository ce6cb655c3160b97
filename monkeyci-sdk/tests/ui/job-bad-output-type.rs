// An action job's output is kept as JSON, so it must be Serialize + Deserialize.
use monkeyci_sdk::prelude::*;

struct Release {
    version: String,
}

#[job]
async fn release(_ctx: &Ctx) -> Result<Release> {
    Ok(Release { version: "1.0.0".to_owned() })
}

fn main() {}
