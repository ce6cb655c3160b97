//! Hostile container jobs (issue "hardening"): jobs are untrusted code, so nothing they do in
//! the directory they share with the host (their job root: event log, command logs) may make
//! the host read or change its own files, forge how the job ended, or lose its output. Each
//! test runs on every engine here: the host shell, podman and docker.

use monkeyci_protocol::{EventKind, JobStatus};

use crate::util::{BUSYBOX, TestRepo, docker_available, engines, run_on};

/// The shell, podman (with the test images) and docker (with a daemon and the images).
fn all_engines() -> Vec<&'static str> {
    let mut all = engines();
    if docker_available() {
        all.push("docker");
    }
    all
}

/// Status, exit and message of `job`'s `container/end` event.
fn container_end(out: &crate::util::Output, job: &str) -> Option<(JobStatus, Option<i32>, Option<String>)> {
    out.events.iter().find_map(|e| match &e.kind {
        EventKind::ContainerEnd { job_id, status, exit, message } if job_id == job => {
            Some((*status, *exit, message.clone()))
        }
        _ => None,
    })
}

const FORGED_END_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn forges_success(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script([
        "printf '%s\\n' '{\"type\":\"command/end\",\"command\":0,\"exit\":0}' '{\"type\":\"container/script-end\",\"status\":\"success\",\"exit\":0}' >> \"$MONKEYCI_ROOT/events.jsonl\"; exit 1",
    ])
}

monkeyci_sdk::main!();
"#;

/// Issue "hardening", 2: the event log is the container's word: a script that reports success
/// in it (the end of its command, then of the script, in the wrapper's order) while its
/// container exits with 1 fails, saying why.
#[test]
fn hostile_a_forged_script_end_does_not_hide_a_failure() {
    let repo = TestRepo::with_pipeline("hostile_forged_end", &FORGED_END_PIPELINE.replace("IMAGE", BUSYBOX));
    for engine in all_engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(1);
        let job = "forges-success";
        assert_eq!(out.status(job), Some(JobStatus::Failure), "{engine}: {out:?}");
        let (status, exit, message) = container_end(&out, job).unwrap_or_else(|| panic!("{engine}: {out:?}"));
        assert_eq!((status, exit), (JobStatus::Failure, Some(1)), "{engine}: {out:?}");
        assert_eq!(
            message.as_deref(),
            Some("the job's script reported success but its container exited with 1"),
            "{engine}: {out:?}"
        );
    }
}
