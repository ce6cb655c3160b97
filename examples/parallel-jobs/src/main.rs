//! Independent jobs run at the same time.
//!
//! A `#[pipeline]` computes 20 action jobs with no dependencies between them. Each waits half a
//! second with `ctx.sleep` (which holds no thread), so the whole build takes about half a second,
//! not ten.

use std::time::Duration;

use monkeyci_sdk::prelude::*;

/// How many jobs the pipeline has.
const JOBS: u32 = 20;

/// How long each job waits.
const WAIT: Duration = Duration::from_millis(500);

/// `job-01` … `job-20`, all independent of each other.
#[pipeline]
fn parallel(_ctx: &Ctx) -> Vec<Job> {
    (1..=JOBS)
        .map(|n| {
            Job::action(format!("job-{n:02}"), move |ctx: Ctx| async move {
                ctx.sleep(WAIT).await;
                ctx.log(format!("job {n} done"));
                Ok(n)
            })
        })
        .collect()
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;
    use monkeyci_sdk::testing::TestCtx;

    fn ids() -> Vec<String> {
        (1..=JOBS).map(|n| format!("job-{n:02}")).collect()
    }

    #[test]
    fn plans_twenty_independent_jobs() {
        let plan = TestCtx::new().plan().unwrap();
        assert_eq!(plan.job_ids(), ids());
        for job in &plan.jobs {
            assert!(job.depends_on.is_empty(), "{} has dependencies: {:?}", job.id, job.depends_on);
        }
        assert!(plan.skipped.is_empty());
    }

    #[test]
    fn jobs_run_concurrently() {
        let started = Instant::now();
        let run = TestCtx::new().run().unwrap();
        let elapsed = started.elapsed();

        assert!(run.succeeded(), "{run:?}");
        for (n, id) in (1..=JOBS).zip(ids()) {
            assert_eq!(run.log(&id), [format!("job {n} done")]);
            assert_eq!(run.output_json(&id).and_then(|v| v.as_u64()), Some(u64::from(n)));
        }
        // One after the other they would take 20 × 500 ms = 10 s.
        assert!(elapsed < WAIT * 6, "20 jobs of {WAIT:?} took {elapsed:?}: they did not run concurrently");
    }
}
