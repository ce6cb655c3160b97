//! The smallest pipeline: one action job.

use monkeyci_sdk::prelude::*;

/// Says hello, in the job's log.
#[job]
async fn hello(ctx: &Ctx) -> Result<String> {
    let greeting = format!("hello from build {}", ctx.build_id());
    ctx.log(&greeting);
    Ok(greeting)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn plans_one_job() {
        assert_eq!(TestCtx::new().plan().unwrap().job_ids(), ["hello"]);
    }

    #[test]
    fn says_hello() {
        let run = TestCtx::new().run().unwrap();
        assert!(run.succeeded());
        assert_eq!(run.output::<hello>().unwrap(), "hello from build test-build");
        assert_eq!(run.log("hello"), ["hello from build test-build"]);
    }
}
