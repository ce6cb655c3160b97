//! Jobs that run one after the other.
//!
//! A `#[pipeline]` computes a chain of 20 action jobs: `job-02` depends on `job-01`, `job-03` on
//! `job-02`, and so on. Dependencies between computed jobs are named by id. Each job waits a
//! moment, logs its id and returns its index, and starts only after the previous one succeeded.

use std::time::Duration;

use monkeyci_sdk::prelude::*;

/// How many jobs the chain has.
const JOBS: u32 = 20;

/// The id of the `n`th job, counting from 1.
fn job_id(n: u32) -> String {
    format!("job-{n:02}")
}

/// `job-01` → `job-02` → … → `job-20`.
#[pipeline]
fn chain(_ctx: &Ctx) -> Vec<Job> {
    (1..=JOBS)
        .map(|n| {
            let job = Job::action(job_id(n), move |ctx: Ctx| async move {
                ctx.sleep(Duration::from_millis(10)).await;
                ctx.log(format!("this is {}", job_id(n)));
                Ok(n)
            });
            if n == 1 { job } else { job.depends_on([job_id(n - 1)]) }
        })
        .collect()
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;
    use monkeyci_sdk::testing::{EventKind, JobStatus};

    #[test]
    fn plans_a_chain_in_order() {
        let plan = TestCtx::new().plan().unwrap();
        let expected: Vec<String> = (1..=JOBS).map(job_id).collect();
        assert_eq!(plan.job_ids(), expected);
        assert!(plan.jobs[0].depends_on.is_empty());
        for n in 2..=JOBS {
            let job = plan.job(&job_id(n)).unwrap();
            assert_eq!(job.depends_on, [job_id(n - 1)]);
        }
    }

    #[test]
    fn each_job_starts_after_the_previous_one_ended() {
        let run = TestCtx::new().run().unwrap();
        assert!(run.succeeded(), "{run:?}");

        // The job lifecycle, as it happened: start-01, end-01, start-02, end-02, ...
        let lifecycle: Vec<String> = run
            .events()
            .iter()
            .filter_map(|event| match &event.kind {
                EventKind::JobStart { job_id, .. } => Some(format!("start {job_id}")),
                EventKind::JobEnd { job_id, status, .. } => Some(format!("{status} {job_id}")),
                _ => None,
            })
            .collect();
        let expected: Vec<String> =
            (1..=JOBS).flat_map(|n| [format!("start {}", job_id(n)), format!("success {}", job_id(n))]).collect();
        assert_eq!(lifecycle, expected);

        for n in 1..=JOBS {
            let id = job_id(n);
            assert_eq!(run.job_status(&id), Some(JobStatus::Success));
            assert_eq!(run.log(&id), [format!("this is {id}")]);
            assert_eq!(run.output_json(&id).and_then(|v| v.as_u64()), Some(u64::from(n)));
        }
    }
}
