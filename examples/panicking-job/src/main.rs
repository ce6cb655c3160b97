//! A job that panics fails like a job that returns an error.
//!
//! The panic is caught and becomes the job's failure message (with where it happened); the
//! script keeps running. `after-explode` depends on `explode`, so it is skipped; `survivor`
//! depends on nothing and succeeds.

use monkeyci_sdk::prelude::*;

/// Panics, as a broken invariant (or an `unwrap()` on a bad value) would.
#[job]
async fn explode(ctx: &Ctx) -> Result<u32> {
    ctx.log("computing the answer");
    let answer: u32 = "41".parse()?;
    if answer != 42 {
        panic!("boom: the answer was not 42");
    }
    Ok(answer)
}

/// Independent of `explode`: not affected by its panic.
#[job]
async fn survivor(ctx: &Ctx) -> Result<()> {
    ctx.log("still here");
    Ok(())
}

/// Needs `explode`'s answer: skipped.
#[job(depends_on = [explode])]
async fn after_explode(ctx: &Ctx) -> Result<()> {
    let answer = ctx.output::<explode>()?;
    ctx.log(format!("the answer is {answer}"));
    Ok(())
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;
    use monkeyci_sdk::testing::{BuildStatus, JobStatus};

    #[test]
    fn a_panic_fails_the_job_not_the_script() {
        let run = TestCtx::new().run().unwrap();
        assert_eq!(run.status(), BuildStatus::Failure);

        assert_eq!(run.job_status("explode"), Some(JobStatus::Failure));
        let message = run.message("explode").unwrap();
        // "panicked: boom: the answer was not 42 (at examples/panicking-job/src/main.rs:15)"
        assert!(message.starts_with("panicked: boom: the answer was not 42 (at "), "{message}");
        assert!(message.contains("src/main.rs:"), "the panic's location is missing: {message}");
        assert_eq!(run.log("explode"), ["computing the answer"]);
        assert_eq!(run.output::<explode>(), None);

        assert_eq!(run.job_status("survivor"), Some(JobStatus::Success));
        assert_eq!(run.log("survivor"), ["still here"]);

        assert_eq!(run.job_status("after-explode"), Some(JobStatus::Skipped));
        assert_eq!(run.message("after-explode"), Some("dependency `explode` failed"));
        assert!(run.log("after-explode").is_empty());
    }
}
