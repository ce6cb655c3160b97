//! Build parameters and how secrets are kept out of logs.
//!
//! `ctx.param(name)` returns a `Secret`: it has no `Display`, its `Debug` shows only the name,
//! and its value is masked as `***` in every line a job logs. To prove the masking, this job
//! logs the token on purpose (don't do that in a real pipeline). A missing parameter fails the
//! job with a message naming it.

use monkeyci_sdk::prelude::*;

/// Checks the deploy token, as a deploy job would before using it.
#[job]
async fn deploy(ctx: &Ctx) -> Result<usize> {
    let token = ctx.param("DEPLOY_TOKEN")?;
    // Something derived from the secret, not the secret itself.
    let length = token.expose().len();
    ctx.log(format!("got {token:?}, {length} characters long"));
    // Deliberately logging the value: the log shows `***` instead.
    ctx.log(token.expose());
    Ok(length)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;
    use monkeyci_sdk::testing::{EventKind, JobStatus};

    const TOKEN: &str = "s3cr3t-t0ken-value";

    #[test]
    fn the_secret_is_masked_in_the_log() {
        let run = TestCtx::new().param("DEPLOY_TOKEN", TOKEN).run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.output::<deploy>(), Some(TOKEN.len()));
        assert_eq!(run.log("deploy"), ["got Secret(DEPLOY_TOKEN), 18 characters long", "***"]);
    }

    #[test]
    fn the_secret_is_in_no_event() {
        let run = TestCtx::new().param("DEPLOY_TOKEN", TOKEN).run().unwrap();
        for event in run.events() {
            let text = format!("{:?}", event.kind);
            assert!(!text.contains(TOKEN), "the secret leaked into {text}");
        }
        let logged =
            run.events().iter().any(|e| matches!(&e.kind, EventKind::JobOutput { line, .. } if line.contains("***")));
        assert!(logged, "the masked line is missing");
    }

    #[test]
    fn a_missing_param_fails_the_job_and_names_it() {
        let run = TestCtx::new().param("OTHER", "value").run().unwrap();
        assert!(!run.succeeded());
        assert_eq!(run.job_status("deploy"), Some(JobStatus::Failure));
        assert_eq!(run.message("deploy"), Some("build parameter \"DEPLOY_TOKEN\" is not set; this build has: OTHER"));
        assert!(run.log("deploy").is_empty());
    }

    #[test]
    fn no_params_at_all() {
        let run = TestCtx::new().run().unwrap();
        let message = run.message("deploy").unwrap();
        assert!(message.contains("DEPLOY_TOKEN"), "{message}");
        assert!(message.contains("no parameters"), "{message}");
    }
}
