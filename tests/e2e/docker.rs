//! The docker engine end to end (`--engine docker`, against a real dockerd): script lines and
//! their exit codes, env and masked secrets, no network, a time limit that stops the
//! container, and a suspension while a docker container runs; no container is left behind.
//!
//! The container tests of `containers.rs` run on podman and the shell; these check that the
//! same engine code drives docker's CLI the same way. Skipped (with the reason) where no
//! dockerd answers, outside CI.

use monkeyci_protocol::{EventKind, JobStatus};

use crate::util::{BUSYBOX, TestRepo, assert_no_container_left, docker_available, lines_of, noting_prelude, run_on};

const SECRET: &str = "d0cker-s3cret-value";

/// A job using lines, env, a secret and the network setting, and one failing with code 3.
const JOBS_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job(id = "docker-says")]
fn says(ctx: &Ctx) -> ContainerJob {
    let token = ctx.param("TOKEN").expect("the build has --param TOKEN");
    container("IMAGE")
        .script([
            "echo hello from $(cat /etc/hostname | wc -c) chars of hostname",
            "echo greeting=$GREETING",
            "echo token=$TOKEN",
            "ip -o link | grep -v ' lo:' | wc -l | sed 's/^/links=/'",
            "echo made > made.txt",
        ])
        .env("GREETING", "hi there")
        .env_secret("TOKEN", &token)
}

#[job(id = "docker-fails", depends_on = [says])]
fn fails(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["test -f made.txt || echo no-made-file", "exit 3", "echo never"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn docker_runs_script_lines_with_env_and_masked_secrets() {
    if !docker_available() {
        return;
    }
    let repo = TestRepo::with_pipeline("docker_jobs", &JOBS_PIPELINE.replace("IMAGE", BUSYBOX));
    let out = run_on(&repo, "docker").args(["--param", "TOKEN"]).env("TOKEN", SECRET).output();
    out.assert_code(1);
    let engines: Vec<&str> = out
        .events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ContainerStart { engine, .. } => Some(engine.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(engines, ["docker", "docker"], "{out:?}");

    assert_eq!(out.status("docker-says"), Some(JobStatus::Success), "{out:?}");
    let log = out.log("docker-says");
    assert!(log.contains(&"greeting=hi there"), "{log:?}");
    assert!(log.contains(&"token=***"), "the secret must be masked: {log:?}");
    assert!(log.contains(&"links=0"), "no network device but lo: {log:?}");
    assert!(!format!("{out:?}").contains(SECRET), "the secret leaked: {out:?}");

    assert_eq!(out.status("docker-fails"), Some(JobStatus::Failure), "{out:?}");
    let log = out.log("docker-fails");
    assert!(log.contains(&"no-made-file"), "each job has its own copy of the checkout: {log:?}");
    assert!(!log.contains(&"never"), "the script stops at the failing line: {log:?}");
    let message = out.message("docker-fails").unwrap_or_default();
    assert!(message.contains("exit 3") || message.contains("code 3"), "{message}");
    assert_no_container_left("docker", &out);
}

const TIMEOUT_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job(id = "docker-slow")]
fn slow(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["sleep 60"]).timeout(std::time::Duration::from_secs(2))
}

monkeyci_sdk::main!();
"#;

/// A job over its time limit is stopped at once (SIGTERM through `--init`), not after docker's
/// grace period, and its container is gone.
#[test]
fn docker_stops_a_job_at_its_time_limit() {
    if !docker_available() {
        return;
    }
    let repo = TestRepo::with_pipeline("docker_timeout", &TIMEOUT_PIPELINE.replace("IMAGE", BUSYBOX));
    let started = std::time::Instant::now();
    let out = run_on(&repo, "docker").output();
    out.assert_code(1);
    assert_eq!(out.status("docker-slow"), Some(JobStatus::Timeout), "{out:?}");
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(30), "stopped after {took:?}; {out:?}");
    let ms = out.end_time("docker-slow").unwrap_or(0) - out.start_time("docker-slow").unwrap_or(0);
    assert!((2_000..10_000).contains(&ms), "the job took {ms} ms; {out:?}");
    assert_no_container_left("docker", &out);
}

/// An action job, a docker container job, an action job after it.
fn suspend_pipeline(log: &std::path::Path) -> String {
    noting_prelude(log)
        + &r#"
#[job(id = "docker-before")]
async fn before(_ctx: &Ctx) -> Result<u32> {
    note("before")?;
    Ok(7)
}

#[job(id = "docker-wait", depends_on = [before])]
fn wait(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["sleep 2"])
}

#[job(id = "docker-after", depends_on = [before, wait])]
async fn after(ctx: &Ctx) -> Result<()> {
    note(&format!("after {}", ctx.output::<before>()?))
}

monkeyci_sdk::main!();
"#
        .replace("IMAGE", BUSYBOX)
}

/// The script suspends while a docker container runs and resumes when it ends.
#[test]
fn docker_containers_survive_a_suspension() {
    if !docker_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("runs.log");
    let repo = TestRepo::with_pipeline("docker_suspend", &suspend_pipeline(&log));
    let out = run_on(&repo, "docker").args(["--suspend", "always"]).output();
    out.assert_code(0);
    assert_eq!(out.events_of("script/suspended").len(), 1, "{out:?}");
    assert_eq!(out.events_of("script/resumed").len(), 1, "{out:?}");
    assert_eq!(lines_of(&log), ["before", "after 7"], "{out:?}");
    assert_no_container_left("docker", &out);
}
