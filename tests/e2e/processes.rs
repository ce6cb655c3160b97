//! Nothing a container job starts outlives it or sees more than its own job (issue
//! "hardening"): a job's background processes and processes ignoring SIGTERM end with it,
//! containers and processes of a `monkeyci` killed with `kill -9` are stopped by the next
//! build, secret values do not show in `podman inspect` / `docker inspect`, and shell-engine
//! jobs get none of the runtime's `MONKEYCI_*` variables (the build API's URL and token).
//!
//! Each test runs on the engines it concerns: the host shell, podman where it and the test
//! images are here, and docker where a daemon answers.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;
use std::rc::Rc;

use monkeyci_protocol::{EventKind, JobStatus};

use crate::util::{
    TestRepo, assert_no_process_left, builds_dir, container_names, docker_available, engines, processes_running, run_on,
};

/// A number no other test's `sleep` uses: `offset` tells this module's tests apart.
fn unique_seconds(offset: u32) -> String {
    (300_000 + 1_000 * offset + std::process::id() % 1_000).to_string()
}

/// The containers of `engine` whose name holds `build_id`.
fn containers_of(engine: &str, build_id: &str) -> Vec<String> {
    container_names(engine).into_iter().filter(|name| name.contains(build_id)).collect()
}

/// Removes (after the test looked) what a test's build left on `engine`.
fn remove_containers(engine: &str, names: &[String]) {
    for name in names {
        let _ = Command::new(engine).args(["rm", "-f", name]).output();
    }
}

const BACKGROUND_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn leaves_a_sleep(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["sleep SECONDS &", "echo done"])
}

monkeyci_sdk::main!();
"#;

/// A line ending in `&` does not outlive its job: what is left in the job's process group when
/// the script ends gets SIGTERM (and SIGKILL after the grace period).
#[test]
fn a_background_process_ends_with_its_job() {
    let seconds = unique_seconds(1);
    let repo = TestRepo::with_pipeline("pr_background", &BACKGROUND_PIPELINE.replace("SECONDS", &seconds));
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(0);
        assert_eq!(out.status("leaves-a-sleep"), Some(JobStatus::Success), "{engine}: {out:?}");
        assert_no_process_left(&["sleep", &seconds], engine, &out);
        if engine != "shell" {
            let left = containers_of(engine, &out.build_id());
            remove_containers(engine, &left);
            assert!(left.is_empty(), "{engine}: containers left: {left:?}");
        }
    }
}

const IGNORES_TERM_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job(timeout = "2s")]
fn ignores_sigterm(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["trap '' TERM; sleep SECONDS"])
}

monkeyci_sdk::main!();
"#;

/// A line that ignores SIGTERM is killed when the grace period after its time limit is over.
#[test]
fn a_job_ignoring_sigterm_is_killed_after_its_time_limit() {
    let seconds = unique_seconds(2);
    let repo = TestRepo::with_pipeline("pr_ignores_term", &IGNORES_TERM_PIPELINE.replace("SECONDS", &seconds));
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(1);
        assert_eq!(out.status("ignores-sigterm"), Some(JobStatus::Timeout), "{engine}: {out:?}");
        // The time limit, then the grace period (shell 5 s, podman 10 s), then a kill.
        let limit = if engine == "shell" { 12 } else { 20 };
        let script_ms = out.time_of("script/end").unwrap_or_default() - out.time_of("script/start").unwrap_or_default();
        assert!(script_ms < limit * 1_000, "{engine}: the build took {script_ms} ms; {out:?}");
        assert_no_process_left(&["sleep", &seconds], engine, &out);
    }
}

/// [`engines`], and docker where a daemon answers.
fn engines_and_docker() -> Vec<&'static str> {
    let mut engines = engines();
    if docker_available() {
        engines.push("docker");
    }
    engines
}

/// [`engines`] without the host shell, plus docker where a daemon answers: the engines with
/// containers.
fn container_engines() -> Vec<&'static str> {
    let mut engines: Vec<&'static str> = engines().into_iter().filter(|e| *e != "shell").collect();
    if docker_available() {
        engines.push("docker");
    }
    engines
}

/// The build directory recorded after this call that holds `rel`, once one does.
fn new_build_with(rel: &str) -> impl FnMut() -> Option<PathBuf> + 'static {
    let names = || -> Vec<OsString> {
        std::fs::read_dir(builds_dir()).into_iter().flatten().flatten().map(|e| e.file_name()).collect()
    };
    let before: BTreeSet<OsString> = names().into_iter().collect();
    let rel = rel.to_owned();
    move || {
        names()
            .into_iter()
            .filter(|name| !before.contains(name))
            .map(|name| builds_dir().join(name))
            .find(|dir| dir.join(&rel).exists())
    }
}

const INSPECT_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn hides_secret(ctx: &Ctx) -> ContainerJob {
    let token = ctx.param("DEPLOY_TOKEN").expect("the build has --param DEPLOY_TOKEN");
    container("localhost/monkeyci-test/busybox").env_secret("TOKEN", &token).script([
        // Not the value, so not masked: proves the job got the exact value.
        "echo \"upper=$(echo \"$TOKEN\" | tr a-z A-Z)\"",
        "touch MARK",
        "sleep 60",
    ])
}

monkeyci_sdk::main!();
"#;

/// A running container's `inspect` shows no secret value (they are not passed as `-e`, but
/// read by the wrapper from a file it deletes at once), and the job still gets it.
#[test]
fn secrets_do_not_show_in_inspect() {
    const SECRET: &str = "inspect-s3cr3t-value";
    let repo = TestRepo::with_pipeline("pr_inspect", &INSPECT_PIPELINE.replace("MARK", "inspect-mark"));
    for engine in container_engines() {
        let mut started = new_build_with("jobs/hides-secret-1/work/inspect-mark");
        let inspected: Rc<RefCell<Option<(String, String)>>> = Rc::default();
        let seen = Rc::clone(&inspected);
        let out = run_on(&repo, engine)
            .args(["--param", "DEPLOY_TOKEN"])
            .env("DEPLOY_TOKEN", SECRET)
            .interrupt_when(move || {
                let Some(build) = started() else { return false };
                let build_id = build.file_name().unwrap().to_string_lossy().into_owned();
                let Some(name) = containers_of(engine, &build_id).pop() else { return false };
                let out = Command::new(engine).args(["inspect", &name]).output().unwrap();
                *seen.borrow_mut() = Some((name, String::from_utf8_lossy(&out.stdout).into_owned()));
                true
            })
            .output();
        let (name, inspect) =
            inspected.borrow_mut().take().unwrap_or_else(|| panic!("{engine}: never inspected; {out:?}"));
        assert!(inspect.contains(&name), "{engine}: inspect of {name} failed: {inspect}");
        assert!(!inspect.contains(SECRET), "{engine}: inspect shows the secret: {inspect}");
        assert!(out.log("hides-secret").contains(&"upper=INSPECT-S3CR3T-VALUE"), "{engine}: {out:?}");
        // Its container ends canceled (the build may be suspended then, and record no job end).
        let ended = out.events.iter().find_map(|e| match &e.kind {
            EventKind::ContainerEnd { job_id, status, .. } if job_id == "hides-secret" => Some(*status),
            _ => None,
        });
        assert_eq!(ended, Some(JobStatus::Canceled), "{engine}: {out:?}");
        let left = containers_of(engine, &out.build_id());
        remove_containers(engine, &left);
        assert!(left.is_empty(), "{engine}: containers left: {left:?}");
    }
}

const ENV_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn prints_env(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["env"])
}

monkeyci_sdk::main!();
"#;

/// A shell-engine job's environment is made for it: none of the runtime's `MONKEYCI_*`
/// variables (`MONKEYCI_SCRIPT` would give it the build API's URL and token; the suite sets
/// `MONKEYCI_CACHE_DIR`), only the job script protocol's and the job's marks.
#[test]
fn shell_jobs_get_no_build_credentials() {
    let repo = TestRepo::with_pipeline("pr_env", ENV_PIPELINE);
    let out = run_on(&repo, "shell")
        .env("MONKEYCI_SCRIPT", r#"{"api":"http://127.0.0.1:9/","token":"runtime-token"}"#)
        .env("MONKEYCI_E2E_RUNTIME_ONLY", "runtime-only")
        .output();
    out.assert_code(0);
    let log = out.log("prints-env");
    assert!(log.iter().any(|l| l.starts_with("PATH=")), "{out:?}");
    let mut ours: Vec<&str> =
        log.iter().filter(|l| l.starts_with("MONKEYCI_")).filter_map(|l| l.split_once('=')).map(|(k, _)| k).collect();
    ours.sort_unstable();
    let allowed = ["MONKEYCI_BUILD", "MONKEYCI_OWNER", "MONKEYCI_ROOT", "MONKEYCI_WORK_DIR"];
    assert!(ours.iter().all(|name| allowed.contains(name)), "the job got {ours:?}; {out:?}");
    assert!(ours.contains(&"MONKEYCI_ROOT"), "{out:?}");
    assert!(!out.events_text.contains("runtime-token") && !out.events_text.contains("runtime-only"), "{out:?}");
}

const ORPHAN_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn orphaned(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["touch orphan-mark", "sleep SECONDS"])
}

monkeyci_sdk::main!();
"#;

const NEXT_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn next_one(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["echo next"])
}

monkeyci_sdk::main!();
"#;

/// Whether `engine` runs a container of `build_id` (`ps`, not `ps -a`).
fn runs_container_of(engine: &str, build_id: &str) -> bool {
    let out = Command::new(engine).args(["ps", "--format", "{{.Names}}"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).lines().any(|name| name.contains(build_id))
}

/// After `kill -9` of `monkeyci` (not of its pipeline script) its job runs on, in its container
/// or as host processes; the next build that starts a container job on the same engine stops
/// it and says so. (Any build may be the one to stop it: in a full run of the suite, another
/// test's build running at the same moment could come first.)
#[test]
fn what_a_killed_monkeyci_left_running_is_stopped_by_the_next_build() {
    let seconds = unique_seconds(3);
    let orphan_repo = TestRepo::with_pipeline("pr_orphan", &ORPHAN_PIPELINE.replace("SECONDS", &seconds));
    let next_repo = TestRepo::with_pipeline("pr_orphan_next", NEXT_PIPELINE);
    for engine in engines_and_docker() {
        let mut started = new_build_with("jobs/orphaned-1/work/orphan-mark");
        let found: Rc<RefCell<Option<PathBuf>>> = Rc::default();
        let seen = Rc::clone(&found);
        let killed = run_on(&orphan_repo, engine)
            .interrupt_when(move || {
                let build = started();
                let found = build.is_some();
                *seen.borrow_mut() = build;
                found
            })
            .interrupt_with(libc::SIGKILL)
            .output();
        assert_eq!(killed.code, None, "{engine}: monkeyci was not killed; {killed:?}");
        let build = found.borrow_mut().take().unwrap_or_else(|| panic!("{engine}: no build; {killed:?}"));
        let build_id = build.file_name().unwrap().to_string_lossy().into_owned();
        // Its job runs on.
        if engine == "shell" {
            assert!(!processes_running(&["sleep", &seconds]).is_empty(), "{engine}: the job ended with monkeyci");
        } else {
            assert!(runs_container_of(engine, &build_id), "{engine}: the container ended with monkeyci");
        }

        let next = run_on(&next_repo, engine).output();
        next.assert_code(0);
        assert_eq!(next.status("next-one"), Some(JobStatus::Success), "{engine}: {next:?}");
        // The shell engine stops each of the job's processes (the wrapper, the line's shell,
        // the sleep); a container is one.
        let what = if engine == "shell" { " processes" } else { "stopped 1 container" };
        next.assert_stderr_contains(&format!("{what} left by build {build_id}, whose monkeyci (pid "));
        if engine == "shell" {
            assert_no_process_left(&["sleep", &seconds], engine, &next);
        } else {
            let left = containers_of(engine, &build_id);
            remove_containers(engine, &left);
            assert!(left.is_empty(), "{engine}: containers of the killed build left: {left:?}; {next:?}");
        }
    }
}
