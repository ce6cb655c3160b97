//! Retrying a flaky job, and stopping one that hangs.
//!
//! `#[job(retries = 2)]` runs an action job up to two more times when an attempt fails: `flaky`
//! fails twice and succeeds on its third attempt. `#[job(timeout = "200ms")]` stops an attempt
//! that runs longer: `hangs` would sleep five seconds and ends with status `timeout` instead.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use monkeyci_sdk::prelude::*;

/// How many times `flaky` has started, in this process.
static FLAKY_ATTEMPTS: AtomicU32 = AtomicU32::new(0);

/// Fails on its first two attempts, as a test against a slow service might.
#[job(retries = 2)]
async fn flaky(ctx: &Ctx) -> Result<u32> {
    let attempt = FLAKY_ATTEMPTS.fetch_add(1, Ordering::SeqCst) + 1;
    ctx.log(format!("attempt {attempt}"));
    if attempt < 3 {
        return Err(JobError::msg(format!("service not ready (attempt {attempt})")));
    }
    Ok(attempt)
}

/// Would take five seconds; its limit is 200 ms.
#[job(timeout = "200ms")]
async fn hangs(ctx: &Ctx) -> Result<()> {
    ctx.log("waiting for a lock that is never released");
    ctx.sleep(Duration::from_secs(5)).await;
    ctx.log("got the lock");
    Ok(())
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use monkeyci_sdk::testing::TestCtx;
    use monkeyci_sdk::testing::{BuildStatus, EventKind, JobStatus};

    #[test]
    fn plans_the_limits() {
        let plan = TestCtx::new().plan().unwrap();
        assert_eq!(plan.job("flaky").unwrap().retries, 2);
        assert_eq!(plan.job("flaky").unwrap().timeout_ms, None);
        assert_eq!(plan.job("hangs").unwrap().timeout_ms, Some(200));
        assert_eq!(plan.job("hangs").unwrap().retries, 0);
    }

    // The only test that runs the jobs: `FLAKY_ATTEMPTS` counts attempts for the whole process.
    #[test]
    fn flaky_is_retried_and_hangs_times_out() {
        let started = Instant::now();
        let run = TestCtx::new().run().unwrap();
        let elapsed = started.elapsed();

        assert_eq!(run.job_status("flaky"), Some(JobStatus::Success));
        assert_eq!(run.output::<flaky>(), Some(3));
        assert_eq!(run.log("flaky"), ["attempt 1", "attempt 2", "attempt 3"]);
        let retries: Vec<(u32, &str)> = run
            .events()
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JobRetrying { job_id, attempt, message } if job_id == "flaky" => {
                    Some((*attempt, message.as_str()))
                }
                _ => None,
            })
            .collect();
        assert_eq!(retries, [(1, "service not ready (attempt 1)"), (2, "service not ready (attempt 2)")]);

        assert_eq!(run.job_status("hangs"), Some(JobStatus::Timeout));
        assert_eq!(run.message("hangs"), Some("timed out after 200ms"));
        assert_eq!(run.log("hangs"), ["waiting for a lock that is never released"]);
        assert!(elapsed < Duration::from_secs(3), "the timed-out job was not stopped: the run took {elapsed:?}");

        // A timeout fails the build.
        assert_eq!(run.status(), BuildStatus::Failure);
    }
}
