//! Jobs and their data: container jobs built from their dependencies' outputs, jobs that wait
//! for a whole matrix, and a matrix whose outputs are read by id.
//!
//! - `version` works out the version being built; `package`, a container job, puts it in its
//!   environment. Its spec reads `version`'s output, so it is resolved when `version` has
//!   ended, just before the container starts (GitHub's `${{ needs.version.outputs.. }}`):
//!   `build plan` lists it as "container (spec resolved when its dependencies ended)".
//! - `images` is a `#[pipeline]` of container jobs doing the same with `Job::container_with`.
//! - `matrix` is a `#[pipeline(output = TestReport)]`: one action job per Rust version, each
//!   returning a `TestReport` (planning checks that they do).
//! - `summary` depends on the whole `matrix` pipeline by name (`depends_on = [matrix]`: every
//!   job it made), reads the MSRV job's report by its id with `ctx.output_of::<matrix>(id)` and
//!   all of them with `ctx.outputs_of::<matrix>()`.
//!
//! Run it with `monkeyci build run examples/job-data --tag v1.2.3 --engine shell` (the
//! container jobs' lines then run on the host).

use monkeyci_sdk::prelude::*;
use serde::{Deserialize, Serialize};

const ALPINE: &str = "docker.io/library/alpine:3.20";

/// The Rust versions of the test matrix; the first is the minimum supported one.
const RUST_VERSIONS: [&str; 2] = ["1.95", "1.96"];

/// The targets `images` builds for.
const ARCHES: [&str; 2] = ["amd64", "arm64"];

/// The version being built: `1.2.3` for the tag `v1.2.3`, else `0.0.0-dev`.
#[job]
async fn version(ctx: &Ctx) -> Result<String> {
    let version = ctx.tag().and_then(|tag| tag.strip_prefix('v')).unwrap_or("0.0.0-dev").to_owned();
    ctx.log(format!("building version {version}"));
    Ok(version)
}

/// Packages that version in a container: the spec reads `version`'s output, so it is resolved
/// once `version` has ended.
#[job(depends_on = [version])]
fn package(ctx: &Ctx) -> Result<ContainerJob> {
    let version = ctx.output::<version>()?;
    Ok(container(ALPINE).script(["echo packaging app-$VERSION.tar"]).env("VERSION", version))
}

/// One image per target, each a container job whose spec reads `version`'s output.
#[pipeline]
fn images(_ctx: &Ctx) -> Vec<Job> {
    ARCHES
        .into_iter()
        .map(|arch| {
            Job::container_with(format!("image-{arch}"), move |ctx: &Ctx| {
                let version = ctx.output::<version>()?;
                Ok(container(ALPINE).script([format!("echo image app:{version}-{arch}")]))
            })
            .depends_on([JobId::of::<version>()])
        })
        .collect()
}

/// What a test job of the matrix reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct TestReport {
    rust: String,
    passed: u32,
}

/// `test-<rust>` for every Rust version, each returning a `TestReport`.
#[pipeline(output = TestReport)]
fn matrix(_ctx: &Ctx) -> Vec<Job> {
    RUST_VERSIONS
        .into_iter()
        .enumerate()
        .map(|(n, rust)| {
            Job::action(format!("test-{rust}"), move |ctx: Ctx| async move {
                let version = ctx.output::<version>()?;
                let passed = 12 + n as u32;
                ctx.log(format!("{passed} tests of {version} passed on Rust {rust}"));
                Ok(TestReport { rust: rust.to_owned(), passed })
            })
            .depends_on([JobId::of::<version>()])
        })
        .collect()
}

/// Runs after every job of `matrix` and after `package`, and sums up the reports.
#[job(depends_on = [matrix, package])]
async fn summary(ctx: &Ctx) -> Result<u32> {
    let msrv = ctx.output_of::<matrix>(&format!("test-{}", RUST_VERSIONS[0]))?;
    ctx.log(format!("minimum supported Rust {}: {} passed", msrv.rust, msrv.passed));
    let reports = ctx.outputs_of::<matrix>()?;
    let total = reports.values().map(|report| report.passed).sum();
    let ids: Vec<&str> = reports.keys().map(String::as_str).collect();
    ctx.log(format!("{total} tests passed in {}", ids.join(", ")));
    Ok(total)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::{JobKind, TestCtx};

    #[test]
    fn container_specs_reading_outputs_are_planned_without_a_spec() {
        let plan = TestCtx::new().plan().unwrap();
        for id in ["package", "image-amd64", "image-arm64"] {
            let job = plan.job(id).unwrap();
            assert_eq!(job.kind, JobKind::Container, "{id}");
            assert!(job.resolved_at_run_time && job.container.is_none(), "{id}: {job:?}");
            assert_eq!(job.depends_on, ["version"], "{id}");
        }
    }

    #[test]
    fn depending_on_a_pipeline_depends_on_every_job_it_made() {
        let plan = TestCtx::new().plan().unwrap();
        assert_eq!(plan.job("summary").unwrap().depends_on, ["package", "test-1.95", "test-1.96"]);
        // `--job summary` keeps the matrix it waits for.
        let only = TestCtx::new().only("summary").plan().unwrap();
        assert_eq!(only.job_ids(), ["version", "package", "test-1.95", "test-1.96", "summary"]);
    }

    #[test]
    fn container_specs_get_the_version_once_it_is_known() {
        let run = TestCtx::new().tag("v1.2.3").run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        let spec = |id: &str| run.containers().iter().find(|(job, _)| job == id).map(|(_, spec)| spec.clone());
        assert_eq!(spec("package").unwrap().env["VERSION"], "1.2.3");
        assert_eq!(spec("image-arm64").unwrap().script, ["echo image app:1.2.3-arm64"]);
        let untagged = TestCtx::new().run().unwrap();
        let package = untagged.containers().iter().find(|(job, _)| job == "package").unwrap();
        assert_eq!(package.1.env["VERSION"], "0.0.0-dev");
    }

    #[test]
    fn the_summary_reads_the_matrix_outputs_by_id() {
        let run = TestCtx::new().tag("v1.2.3").run().unwrap();
        assert_eq!(run.output::<summary>(), Some(25));
        assert_eq!(
            run.log("summary"),
            ["minimum supported Rust 1.95: 12 passed", "25 tests passed in test-1.95, test-1.96"]
        );
        assert_eq!(run.output_of::<matrix>("test-1.96"), Some(TestReport { rust: "1.96".into(), passed: 13 }));
    }

    #[test]
    fn the_pipeline_functions_are_callable() {
        let ctx = TestCtx::new().ctx();
        let ids: Vec<String> = matrix(&ctx).iter().map(|job| job.id().to_owned()).collect();
        assert_eq!(ids, ["test-1.95", "test-1.96"]);
        // A spec resolved later has no spec to show yet.
        assert!(images(&ctx).iter().all(|job| job.container_spec().is_none()));
    }
}
