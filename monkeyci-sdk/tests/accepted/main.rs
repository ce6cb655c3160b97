//! The shapes `#[job]` and `#[pipeline]` accept, one module each: this test binary compiling
//! is most of the test (the compile-fail side is `compiletest.rs`), and each module's jobs
//! must be registered under the ids the macros give them (`unit_test` is `unit-test`).
//!
//! They are ordinary modules of one binary, not trybuild pass tests, so they compile with the
//! workspace's build and trybuild only needs `cargo check` for its compile-fail cases.

// Each shape is compiled, never run; `pub` is part of some shapes.
#![allow(dead_code, unreachable_pub)]

mod job_action_every_argument;
mod job_async_no_arguments;
mod job_container;
mod job_depends_on_path;
mod job_depends_on_pipeline;
mod job_output_variable_named_like_job;
mod job_with_id;
mod pipeline_iterator;
mod pipeline_vec;

use std::collections::BTreeMap;

use monkeyci_sdk::__private::{JobDef, PipelineDef, inventory};

/// (job id, the file it is declared in) of every registered job.
fn registered_jobs() -> Vec<(&'static str, &'static str)> {
    let mut jobs: Vec<_> = inventory::iter::<JobDef>
        .into_iter()
        .map(|def| (def.id, def.location.rsplit('/').next().unwrap_or(def.location)))
        .collect();
    jobs.sort();
    jobs
}

#[test]
fn every_module_registers_its_jobs_under_their_ids() {
    let mut by_file: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, location) in registered_jobs() {
        let file = location.split(':').next().unwrap_or(location);
        by_file.entry(file).or_default().push(id);
    }
    let expected: BTreeMap<&str, Vec<&str>> = [
        ("job_action_every_argument.rs", vec!["announce", "lint", "publish-crate", "unit-test"]),
        ("job_async_no_arguments.rs", vec!["answer", "nothing"]),
        ("job_container.rs", vec!["package", "unit-test"]),
        ("job_depends_on_path.rs", vec!["compile", "publish", "version"]),
        ("job_depends_on_pipeline.rs", vec!["package", "summary", "version"]),
        ("job_output_variable_named_like_job.rs", vec!["package", "version"]),
        ("job_with_id.rs", vec!["report", "unit-test.v2"]),
        ("pipeline_iterator.rs", vec![]),
        ("pipeline_vec.rs", vec!["compile"]),
    ]
    .into_iter()
    .filter(|(_, ids)| !ids.is_empty())
    .collect();
    assert_eq!(by_file, expected);
}

#[test]
fn arguments_reach_the_registration() {
    let def = |id: &str| inventory::iter::<JobDef>.into_iter().find(|def| def.id == id).expect("registered");
    let publish = def("publish-crate");
    assert!(publish.allow_failure && publish.blocked && !publish.idempotent);
    assert_eq!((publish.retries, publish.timeout_ms), (2, Some(5_400_000)));
    assert!(!def("announce").allow_failure);
    assert_eq!((publish.runs, def("announce").runs), (monkeyci_sdk::Runs::Always, monkeyci_sdk::Runs::OnFailure));
    assert_eq!(def("lint").runs, monkeyci_sdk::Runs::OnSuccess);
}

#[test]
fn every_pipeline_function_is_registered() {
    let mut names: Vec<_> = inventory::iter::<PipelineDef>.into_iter().map(|def| def.name).collect();
    names.sort();
    assert_eq!(names, ["after_checks", "checks", "fixed", "optional", "per_crate", "per_target"]);
}

#[test]
fn a_pipeline_in_depends_on_names_every_job_it_makes() {
    use job_depends_on_pipeline::{after_checks, checks, package};
    use monkeyci_sdk::JobId;
    let summary = inventory::iter::<JobDef>.into_iter().find(|def| def.id == "summary").expect("registered");
    assert_eq!(
        (summary.depends_on)(),
        [JobId::all_of::<checks>(), JobId::of::<package>(), JobId::all_of::<after_checks>()]
    );
    let checks = inventory::iter::<PipelineDef>.into_iter().find(|def| def.name == "checks").expect("registered");
    assert_eq!(checks.key, "accepted::job_depends_on_pipeline::checks");
    assert_eq!(checks.output.map(|output| output().name()), Some("u32".to_owned()));
}
