// A pipeline's output type is kept as JSON, like a job's: it must be Serialize + Deserialize.
use monkeyci_sdk::prelude::*;

struct Report {
    passed: u32,
}

#[pipeline(output = Report)]
fn matrix(_ctx: &Ctx) -> Vec<Job> {
    Vec::new()
}

fn main() {}
