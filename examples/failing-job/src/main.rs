//! What happens when a job fails.
//!
//! `compile` returns an error, so the build fails. The jobs that depend on it, directly
//! (`test`) or through another job (`package`), are skipped with the reason, while `lint`,
//! which depends on nothing, still runs and succeeds.

use monkeyci_sdk::prelude::*;

/// Fails, as a compiler would on a type error.
#[job]
async fn compile(ctx: &Ctx) -> Result<()> {
    ctx.log("compiling src/lib.rs");
    Err(JobError::msg("compilation failed: src/lib.rs:12: mismatched types"))
}

/// Needs a compiled program: never runs.
#[job(depends_on = [compile])]
async fn test(ctx: &Ctx) -> Result<()> {
    ctx.log("running the tests");
    Ok(())
}

/// Needs tested code: never runs either.
#[job(depends_on = [test])]
async fn package(ctx: &Ctx) -> Result<String> {
    ctx.log("packaging");
    Ok("app.tar.gz".into())
}

/// Independent of `compile`: runs and succeeds even though the build fails.
#[job]
async fn lint(ctx: &Ctx) -> Result<()> {
    ctx.log("no lint warnings");
    Ok(())
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;
    use monkeyci_sdk::testing::{BuildStatus, JobStatus};

    #[test]
    fn plans_all_four_jobs() {
        let plan = TestCtx::new().plan().unwrap();
        assert_eq!(plan.job_ids(), ["compile", "test", "package", "lint"]);
        assert_eq!(plan.job("test").unwrap().depends_on, ["compile"]);
        assert_eq!(plan.job("package").unwrap().depends_on, ["test"]);
        assert!(plan.job("lint").unwrap().depends_on.is_empty());
    }

    #[test]
    fn a_failing_job_fails_the_build_and_skips_its_dependents() {
        let run = TestCtx::new().run().unwrap();
        assert_eq!(run.status(), BuildStatus::Failure);
        assert!(!run.succeeded());

        assert_eq!(run.job_status("compile"), Some(JobStatus::Failure));
        assert_eq!(run.message("compile"), Some("compilation failed: src/lib.rs:12: mismatched types"));
        assert_eq!(run.log("compile"), ["compiling src/lib.rs"]);

        assert_eq!(run.job_status("test"), Some(JobStatus::Skipped));
        assert_eq!(run.message("test"), Some("dependency `compile` failed"));
        assert!(run.log("test").is_empty(), "a skipped job must not run");

        assert_eq!(run.job_status("package"), Some(JobStatus::Skipped));
        assert_eq!(run.message("package"), Some("dependency `test` was skipped (`compile` failed)"));
        assert!(run.log("package").is_empty(), "a skipped job must not run");
        assert_eq!(run.output::<package>(), None);

        assert_eq!(run.job_status("lint"), Some(JobStatus::Success));
        assert_eq!(run.log("lint"), ["no lint warnings"]);
    }

    #[test]
    fn fail_fast_skips_jobs_not_yet_started() {
        let run = TestCtx::new().fail_fast().run().unwrap();
        assert_eq!(run.status(), BuildStatus::Failure);
        assert_eq!(run.job_status("compile"), Some(JobStatus::Failure));
        assert_eq!(run.job_status("test"), Some(JobStatus::Skipped));
        assert_eq!(run.job_status("package"), Some(JobStatus::Skipped));
    }
}
