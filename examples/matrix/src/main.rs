//! A build matrix: the same tests on every combination of operating system and Rust version.
//!
//! A `#[pipeline]` function computes the matrix with two loops, one container job per
//! combination. Computed jobs can depend on `#[job]` functions by name (`.depends_on([JobId::of::<prepare>()])`),
//! just as `#[job]`s can (`depends_on = [prepare]`): here all four test jobs and the `summary`
//! action job wait for `prepare`.

use monkeyci_sdk::prelude::*;

/// The operating systems the code is tested on, as image variants.
const OSES: [&str; 2] = ["bookworm", "alpine"];

/// The Rust versions the code is tested with.
const RUST_VERSIONS: [&str; 2] = ["1.95", "1.96"];

/// Works out what the matrix jobs share (here: the cargo flags).
#[job]
async fn prepare(ctx: &Ctx) -> Result<String> {
    let flags = "--locked --all-features".to_owned();
    ctx.log(format!("testing with `cargo test {flags}`"));
    Ok(flags)
}

/// `test-<os>-<rust>` for every operating system and Rust version.
#[pipeline]
fn matrix(_ctx: &Ctx) -> Vec<Job> {
    let mut jobs = Vec::new();
    for os in OSES {
        for rust in RUST_VERSIONS {
            let spec = container(format!("docker.io/rust:{rust}-{os}"))
                .script(["cargo test --locked --all-features"])
                .env("MATRIX_OS", os)
                .env("MATRIX_RUST", rust);
            jobs.push(Job::container(format!("test-{os}-{rust}"), spec).depends_on([JobId::of::<prepare>()]));
        }
    }
    jobs
}

/// Says what the matrix covers.
#[job(depends_on = [prepare])]
async fn summary(ctx: &Ctx) -> Result<usize> {
    let flags = ctx.output::<prepare>()?;
    let combinations = OSES.len() * RUST_VERSIONS.len();
    ctx.log(format!(
        "{combinations} combinations: {} × Rust {}, with {flags}",
        OSES.join("/"),
        RUST_VERSIONS.join("/")
    ));
    Ok(combinations)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;
    use monkeyci_sdk::testing::{EventKind, JobKind};

    const TESTS: [&str; 4] = ["test-bookworm-1.95", "test-bookworm-1.96", "test-alpine-1.95", "test-alpine-1.96"];

    #[test]
    fn the_pipeline_function_is_callable() {
        let jobs = matrix(&TestCtx::new().ctx());
        let ids: Vec<&str> = jobs.iter().map(Job::id).collect();
        assert_eq!(ids, TESTS);
        assert_eq!(jobs[2].container_spec().unwrap().spec().image, "docker.io/rust:1.95-alpine");
    }

    #[test]
    fn plans_prepare_then_the_matrix() {
        let plan = TestCtx::new().plan().unwrap();
        // `#[job]`s come first in source order, then computed jobs; dependencies first.
        let mut expected = vec!["prepare", "summary"];
        expected.extend(TESTS);
        assert_eq!(plan.job_ids(), expected);

        assert_eq!(plan.job("prepare").unwrap().kind, JobKind::Action);
        assert!(plan.job("prepare").unwrap().depends_on.is_empty());
        assert_eq!(plan.job("summary").unwrap().depends_on, ["prepare"]);
        for id in TESTS {
            let job = plan.job(id).unwrap();
            assert_eq!(job.kind, JobKind::Container, "{id}");
            assert_eq!(job.depends_on, ["prepare"], "{id}");
        }
        let alpine = plan.job("test-alpine-1.96").unwrap().container.as_ref().unwrap();
        assert_eq!(alpine.image, "docker.io/rust:1.96-alpine");
        assert_eq!(alpine.env["MATRIX_OS"], "alpine");
        assert_eq!(alpine.env["MATRIX_RUST"], "1.96");
    }

    #[test]
    fn runs_every_combination() {
        let run = TestCtx::new().run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.output::<summary>(), Some(4));
        assert_eq!(
            run.log("summary"),
            ["4 combinations: bookworm/alpine × Rust 1.95/1.96, with --locked --all-features"]
        );

        // Nothing of the matrix started before `prepare` ended.
        let prepared = run
            .events()
            .iter()
            .position(|e| matches!(&e.kind, EventKind::JobEnd { job_id, .. } if job_id == "prepare"))
            .unwrap();
        let first_test = run
            .events()
            .iter()
            .position(|e| matches!(&e.kind, EventKind::JobStart { job_id, .. } if job_id.starts_with("test-")))
            .unwrap();
        assert!(prepared < first_test, "a matrix job started before `prepare` ended");

        // The fake container engine saw each matrix job once.
        let mut started: Vec<&str> = run.containers().iter().map(|(job, _)| job.as_str()).collect();
        started.sort_unstable();
        let mut expected = TESTS.to_vec();
        expected.sort_unstable();
        assert_eq!(started, expected);
    }
}
