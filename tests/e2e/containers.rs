//! Container jobs end to end: pipelines whose `#[job]`s return a `ContainerJob`, run by the
//! `podman` engine (with the suite's local test images, see `scripts/test-images.sh`) and by the
//! host `shell` engine, checked through the events, the build record
//! (`$MONKEYCI_CACHE_DIR/builds/<build id>/`, with each container job's own directory
//! `jobs/<job>-<attempt>/`), `monkeyci build logs`, and what podman and the process table show
//! afterwards.
//!
//! Most tests run the same pipeline on both engines; podman is skipped (with a visible reason)
//! where it is not installed, outside CI. Tests that need an image's contents (no shell, a
//! missing image, cgroup limits) are podman only.

use std::path::{Path, PathBuf};

use monkeyci_protocol::{BuildStatus, EventKind, JobStatus, OutputStream};

use crate::util::{
    BUSYBOX, CmdlineWatch, MonkeyciCommand, Output, TestRepo, assert_no_container_left, assert_no_process_left,
    engines, file_in_new_build, processes_running, run_on, test_images_available,
};

/// The image and engine of `job`'s `container/start` events.
fn container_starts<'a>(out: &'a Output, job: &str) -> Vec<(&'a str, &'a str)> {
    out.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::ContainerStart { job_id, image, engine, .. } if job_id == job => {
                Some((image.as_str(), engine.as_str()))
            }
            _ => None,
        })
        .collect()
}

/// Status, exit and message of `job`'s `container/end` event.
fn container_end<'a>(out: &'a Output, job: &str) -> Option<(JobStatus, Option<i32>, Option<&'a str>)> {
    out.events.iter().find_map(|e| match &e.kind {
        EventKind::ContainerEnd { job_id, status, exit, message } if job_id == job => {
            Some((*status, *exit, message.as_deref()))
        }
        _ => None,
    })
}

/// `job`'s `command/start` events: (index, line).
fn command_starts<'a>(out: &'a Output, job: &str) -> Vec<(usize, &'a str)> {
    out.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CommandStart { job_id, command, line } if job_id == job => Some((*command, line.as_str())),
            _ => None,
        })
        .collect()
}

/// `job`'s `command/end` events: (index, exit).
fn command_ends(out: &Output, job: &str) -> Vec<(usize, i32)> {
    out.events
        .iter()
        .filter_map(|e| match &e.kind {
            EventKind::CommandEnd { job_id, command, exit } if job_id == job => Some((*command, *exit)),
            _ => None,
        })
        .collect()
}

/// Where the first event matching `pred` is.
fn position_of(out: &Output, pred: impl Fn(&EventKind) -> bool) -> Option<usize> {
    out.events.iter().position(|e| pred(&e.kind))
}

/// The directory of `job`'s first attempt in this run's build record.
fn job_dir(out: &Output, job: &str) -> PathBuf {
    out.build_dir().join("jobs").join(format!("{job}-1"))
}

/// A `sleep` duration no other process uses, so the test can tell whether its sleep is gone.
fn unique_sleep_seconds() -> String {
    (100_000 + std::process::id()).to_string()
}

/// Milliseconds between `job`'s `job/start` and `job/end`.
fn job_millis(out: &Output, job: &str) -> u64 {
    let start = out.start_time(job).unwrap_or_else(|| panic!("{job} did not start; {out:?}"));
    let end = out.end_time(job).unwrap_or_else(|| panic!("{job} did not end; {out:?}"));
    end - start
}

const FAILING_SCRIPT_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn stops_early(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["echo first-line-out && echo a > f", "false", "echo never"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn script_stops_at_the_first_failing_line() {
    let repo = TestRepo::with_pipeline("ct_failing_script", FAILING_SCRIPT_PIPELINE);
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(1);
        let job = "stops-early";
        assert_eq!(out.status(job), Some(JobStatus::Failure), "{engine}: {out:?}");
        let message = out.message(job).unwrap_or_default();
        assert!(message.contains("command 1") && message.contains("`false`"), "{engine}: {message:?}; {out:?}");
        assert_eq!(container_starts(&out, job), [(BUSYBOX, engine)], "{engine}: {out:?}");
        let (status, exit, _) =
            container_end(&out, job).unwrap_or_else(|| panic!("{engine}: no container/end; {out:?}"));
        assert_eq!((status, exit), (JobStatus::Failure, Some(1)), "{engine}: {out:?}");

        // Lines 0 and 1 ran, line 2 did not.
        assert_eq!(
            command_starts(&out, job),
            [(0, "echo first-line-out && echo a > f"), (1, "false")],
            "{engine}: {out:?}"
        );
        assert_eq!(command_ends(&out, job), [(0, 0), (1, 1)], "{engine}: {out:?}");
        assert_eq!(out.log(job), ["first-line-out"], "{engine}: {out:?}");
        // A line's output comes between its start and its end.
        let output_at =
            position_of(&out, |k| matches!(k, EventKind::JobOutput { line, .. } if line == "first-line-out"));
        let start_at = position_of(&out, |k| matches!(k, EventKind::CommandStart { command: 0, .. }));
        let end_at = position_of(&out, |k| matches!(k, EventKind::CommandEnd { command: 0, .. }));
        assert!(start_at < output_at && output_at < end_at, "{engine}: {out:?}");

        // The job's own directory: each line's output in its own files (its workspace copy goes
        // once it ended, see `records`).
        let dir = job_dir(&out, job);
        let read = |rel: &str| {
            std::fs::read_to_string(dir.join(rel)).unwrap_or_else(|err| panic!("{engine}: cannot read {rel}: {err}"))
        };
        assert_eq!(read("logs/0.out"), "first-line-out\n", "{engine}");
        assert_eq!(read("logs/1.out"), "", "{engine}");
        assert!(!dir.join("logs/2.out").exists(), "{engine}: line 2 must not have run");
        // The job ran in a copy: the checkout itself is untouched.
        assert!(!repo.path().join("f").exists(), "{engine}: the job wrote into the checkout");

        // `monkeyci build logs BUILD JOB` shows the output and where each command's logs are.
        let logs =
            MonkeyciCommand::new(["build", "logs"]).arg(out.build_id()).arg(job).current_dir(repo.path()).output();
        logs.assert_code(0);
        logs.assert_stdout_contains("first-line-out");
        logs.assert_stdout_contains("command 0 (exit 0): echo first-line-out && echo a > f");
        logs.assert_stdout_contains("command 1 (exit 1): false");
        logs.assert_stdout_contains(&dir.join("logs/0.out").display().to_string());
        logs.assert_stdout_contains(&dir.join("logs/1.err").display().to_string());
        assert!(!logs.stdout.contains("command 2"), "{engine}: {logs:?}");
    }
}

const ENV_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn shows_env(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox")
        .env("GREETING", "hello there")
        .work_dir("sub")
        .size(2)
        .script([
            "echo \"$GREETING\"",
            "pwd",
            "cat marker.txt",
            "nproc",
            // cgroup v2, else v1: "quota period" and the memory limit in bytes.
            "echo \"cpu-limit $(cat /sys/fs/cgroup/cpu.max 2>/dev/null || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us))\"",
            "echo \"memory-limit $(cat /sys/fs/cgroup/memory.max 2>/dev/null || cat /sys/fs/cgroup/memory/memory.limit_in_bytes)\"",
        ])
}

monkeyci_sdk::main!();
"#;

#[test]
fn env_work_dir_and_size_reach_the_container() {
    let repo = TestRepo::with_pipeline("ct_env", ENV_PIPELINE);
    repo.write("sub/marker.txt", "marker in sub\n");
    repo.commit("a sub directory");
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(0);
        let job = "shows-env";
        let log = out.log(job);
        assert_eq!(log.first(), Some(&"hello there"), "{engine}: {out:?}");
        assert!(log.get(1).is_some_and(|pwd| pwd.ends_with("/work/sub")), "{engine}: pwd: {log:?}");
        assert_eq!(log.get(2), Some(&"marker in sub"), "{engine}: {out:?}");
        assert!(log.get(3).is_some_and(|n| n.parse::<u32>().is_ok()), "{engine}: nproc: {log:?}");
        if engine != "podman" {
            // The shell engine ignores sizes: the job gets what the machine has.
            continue;
        }
        let value = |prefix: &str| -> Vec<u64> {
            let line =
                log.iter().find_map(|l| l.strip_prefix(prefix)).unwrap_or_else(|| panic!("no {prefix:?}: {log:?}"));
            line.split_whitespace()
                .map(|n| n.parse().unwrap_or_else(|_| panic!("{prefix:?} is not numbers: {line:?}")))
                .collect()
        };
        // `nproc` shows the host's CPUs under --cpus; the CFS quota is what limits the job.
        let cpu = value("cpu-limit ");
        assert!(cpu.len() == 2 && cpu[0] == 2 * cpu[1], "size 2 must give 2 CPUs (quota, period): {cpu:?}; {out:?}");
        assert_eq!(value("memory-limit "), [4 * 1024 * 1024 * 1024], "size 2 must give 4 GiB; {out:?}");
    }
}

const WORK_DIR_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn in_dir(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").work_dir("DIR").script(["pwd"])
}

monkeyci_sdk::main!();
"#;

/// A work dir outside the checkout is refused when the pipeline is planned: `verify`, `plan`
/// and `run` all fail, naming the job and the dir, and nothing runs.
#[test]
fn work_dirs_outside_the_checkout_are_refused_when_planned() {
    let repo = TestRepo::with_pipeline("ct_outside_work_dir", &WORK_DIR_PIPELINE.replace("DIR", "/etc"));
    for dir in ["sub/../../outside", "/etc"] {
        repo.write_main_rs(&WORK_DIR_PIPELINE.replace("DIR", dir));
        let expected = "container job `in-dir`";
        for out in [MonkeyciCommand::verify(repo.path()).output(), MonkeyciCommand::plan(repo.path()).output()] {
            out.assert_code(2);
            out.assert_stderr_contains(expected);
            out.assert_stderr_contains(&format!("work_dir {dir:?} must be a relative path inside the checkout"));
        }
        let out = run_on(&repo, "shell").output();
        out.assert_code(2);
        let message = out.build_end().and_then(|(_, message)| message).unwrap_or_default();
        assert!(message.contains(expected) && message.contains(dir), "{dir}: {message:?}; {out:?}");
        assert!(out.events_of("container/start").is_empty(), "{dir}: nothing may run; {out:?}");
    }
}

/// A work dir inside the checkout that does not exist fails the job when it runs, saying so.
#[test]
fn a_missing_work_dir_fails_the_job_clearly() {
    let repo = TestRepo::with_pipeline("ct_missing_work_dir", &WORK_DIR_PIPELINE.replace("DIR", "no/such/dir"));
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(1);
        assert_eq!(out.status("in-dir"), Some(JobStatus::Failure), "{engine}: {out:?}");
        let message = out.message("in-dir").unwrap_or_default();
        assert!(
            message.contains("no/such/dir") && message.contains("is not a directory of the checkout"),
            "{engine}: {message:?}; {out:?}"
        );
        assert!(container_starts(&out, "in-dir").is_empty(), "{engine}: nothing may run; {out:?}");
        assert!(command_starts(&out, "in-dir").is_empty(), "{engine}: nothing may run; {out:?}");
        assert!(out.log("in-dir").is_empty(), "{engine}: nothing may run; {out:?}");
    }
}

const TIMEOUT_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job(timeout = "2s")]
fn sleeps_too_long(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["sleep SLEEP_SECONDS"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn timeout_stops_the_container() {
    let seconds = unique_sleep_seconds();
    let repo = TestRepo::with_pipeline("ct_timeout", &TIMEOUT_PIPELINE.replace("SLEEP_SECONDS", &seconds));
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(1);
        let job = "sleeps-too-long";
        assert_eq!(out.status(job), Some(JobStatus::Timeout), "{engine}: {out:?}");
        assert!(out.message(job).unwrap_or_default().contains("timed out after 2"), "{engine}: {out:?}");
        let (status, _, _) = container_end(&out, job).unwrap_or_else(|| panic!("{engine}: no container/end; {out:?}"));
        assert_eq!(status, JobStatus::Timeout, "{engine}: {out:?}");
        // Stopped at once (SIGTERM), not after the grace period (podman 10 s, shell 5 s) by a kill.
        let limit_ms = if engine == "podman" { 8_000 } else { 6_000 };
        let took = job_millis(&out, job);
        assert!((2_000..limit_ms).contains(&took), "{engine}: the job took {took} ms; {out:?}");
        let script_ms = out.time_of("script/end").unwrap_or_default() - out.time_of("script/start").unwrap_or_default();
        assert!(script_ms < 15_000, "{engine}: the build took {script_ms} ms; {out:?}");
        if engine == "podman" {
            assert_no_container_left("podman", &out);
        }
        assert_no_process_left(&["sleep", &seconds], engine, &out);
    }
}

const NO_SHELL_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn needs_a_shell(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/noshell").script(["echo hello"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn image_without_shell_fails_with_a_hint() {
    if !test_images_available() {
        return;
    }
    let repo = TestRepo::with_pipeline("ct_no_shell", NO_SHELL_PIPELINE);
    let out = run_on(&repo, "podman").output();
    out.assert_code(1);
    let job = "needs-a-shell";
    assert_eq!(out.status(job), Some(JobStatus::Failure), "{out:?}");
    let message = out.message(job).unwrap_or_default();
    assert!(message.contains("no /bin/sh") && message.contains(".command("), "{message:?}; {out:?}");
    assert!(command_starts(&out, job).is_empty(), "{out:?}");
    assert_no_container_left("podman", &out);
}

const OWN_COMMAND_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn own_command(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/noshell").command(["/bin/busybox", "echo", "own command"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn image_without_shell_runs_its_own_command() {
    if !test_images_available() {
        return;
    }
    let repo = TestRepo::with_pipeline("ct_own_command", OWN_COMMAND_PIPELINE);
    let out = run_on(&repo, "podman").output();
    out.assert_code(0);
    let job = "own-command";
    assert_eq!(out.status(job), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.log(job), ["own command"], "{out:?}");
    assert_eq!(container_starts(&out, job), [("localhost/monkeyci-test/noshell", "podman")], "{out:?}");
    assert_eq!(container_end(&out, job), Some((JobStatus::Success, Some(0), None)), "{out:?}");
    assert!(command_starts(&out, job).is_empty(), "a command has no script lines; {out:?}");
    assert_no_container_left("podman", &out);
}

const SECRET_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn uses_secret(ctx: &Ctx) -> ContainerJob {
    let token = ctx.param("DEPLOY_TOKEN").expect("the build has --param DEPLOY_TOKEN");
    container("localhost/monkeyci-test/busybox").env_secret("TOKEN", &token).script([
        "echo \"token=$TOKEN\"",
        "echo \"$TOKEN\" >&2",
        // Not the value, so not masked: proves the container got the exact value.
        "echo \"upper=$(echo \"$TOKEN\" | tr a-z A-Z)\"",
        // Time for the test to look at every process's command line.
        "sleep 1",
    ])
}

monkeyci_sdk::main!();
"#;

#[test]
fn secrets_reach_the_container_and_nothing_else() {
    const SECRET: &str = "s3cr3t-value-123";
    let repo = TestRepo::with_pipeline("ct_secret", SECRET_PIPELINE);
    for engine in engines() {
        let watch = CmdlineWatch::start(SECRET);
        // `--param NAME` takes the value from the environment: it is on no command line.
        let out = run_on(&repo, engine).args(["--param", "DEPLOY_TOKEN"]).env("DEPLOY_TOKEN", SECRET).output();
        let (scans, cmdlines) = watch.finish();
        out.assert_code(0);
        let job = "uses-secret";
        assert!(out.log(job).contains(&"token=***"), "{engine}: {out:?}");
        assert!(out.log(job).contains(&"upper=S3CR3T-VALUE-123"), "{engine}: {out:?}");
        let stderr_lines: Vec<&str> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::JobOutput { job_id, stream: OutputStream::Stderr, line } if job_id == job => {
                    Some(line.as_str())
                }
                _ => None,
            })
            .collect();
        assert_eq!(stderr_lines, ["***"], "{engine}: {out:?}");
        for (what, text) in [("stdout", &out.stdout), ("stderr", &out.stderr), ("the events file", &out.events_text)] {
            assert!(!text.contains(SECRET), "{engine}: the secret is in {what}; {out:?}");
        }
        assert!(scans > 0, "{engine}: the process table was never scanned");
        assert!(cmdlines.is_empty(), "{engine}: the secret was on command lines: {cmdlines:?}");

        // Nor is it anywhere in the build record: not in its events or job logs, and not in
        // the job's own command logs, which hold the container's raw output while it runs and
        // are masked when the job ends.
        let holding: Vec<PathBuf> = files_under(&out.build_dir())
            .into_iter()
            .filter(|path| {
                std::fs::read(path).is_ok_and(|bytes| bytes.windows(SECRET.len()).any(|w| w == SECRET.as_bytes()))
            })
            .collect();
        assert!(holding.is_empty(), "{engine}: the secret is in the build record: {holding:?}");
        let raw_logs = job_dir(&out, job).join("logs");
        let raw = |rel: &str| std::fs::read_to_string(raw_logs.join(rel)).unwrap_or_default();
        assert_eq!((raw("0.out"), raw("1.err")), ("token=***\n".into(), "***\n".into()), "{engine}");
    }
}

/// Every file under `dir`.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => stack.push(entry.path()),
                Ok(kind) if kind.is_file() => files.push(entry.path()),
                _ => {}
            }
        }
    }
    files
}

const MISSING_IMAGE_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn missing_image(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/does-not-exist").script(["echo hello"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn missing_image_fails_with_podmans_message() {
    if !test_images_available() {
        return;
    }
    let repo = TestRepo::with_pipeline("ct_missing_image", MISSING_IMAGE_PIPELINE);
    let out = run_on(&repo, "podman").output();
    out.assert_code(1);
    let job = "missing-image";
    assert_eq!(out.status(job), Some(JobStatus::Failure), "{out:?}");
    let message = out.message(job).unwrap_or_default();
    // podman's own words: `Error: ... localhost/monkeyci-test/does-not-exist ...`.
    assert!(
        message.contains("podman") && message.contains("Error: ") && message.contains("monkeyci-test/does-not-exist"),
        "{message:?}; {out:?}"
    );
    assert!(container_starts(&out, job).is_empty(), "{out:?}");
    assert!(command_starts(&out, job).is_empty(), "{out:?}");
    assert_no_container_left("podman", &out);
}

const PARALLEL_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn left(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["echo left", "sleep 2"])
}

#[job]
fn right(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["echo right", "sleep 2"])
}

#[job(depends_on = [left, right])]
fn after_both(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["echo after"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn independent_container_jobs_run_in_parallel() {
    let repo = TestRepo::with_pipeline("ct_parallel", PARALLEL_PIPELINE);
    for engine in engines() {
        let out = run_on(&repo, engine).args(["--max-parallel", "2"]).output();
        out.assert_code(0);
        let start = |job: &str| {
            position_of(&out, |k| matches!(k, EventKind::ContainerStart { job_id, .. } if job_id == job))
                .unwrap_or_else(|| panic!("{engine}: {job} did not start; {out:?}"))
        };
        let end = |job: &str| {
            position_of(&out, |k| matches!(k, EventKind::ContainerEnd { job_id, .. } if job_id == job))
                .unwrap_or_else(|| panic!("{engine}: {job} did not end; {out:?}"))
        };
        let first_end = end("left").min(end("right"));
        assert!(start("left") < first_end && start("right") < first_end, "{engine}: not in parallel; {out:?}");
        let last_end = end("left").max(end("right"));
        assert!(start("after-both") > last_end, "{engine}: the dependent job started early; {out:?}");
        assert_eq!(out.log("after-both"), ["after"], "{engine}: {out:?}");
    }
}

/// An action job that plays a client resending its request: it posts the same container
/// request (`{job_id, attempt, spec}`) to the build API twice at once, waits for the run's
/// end, and posts it again, with the build's own API address and token.
const DISPATCH_PIPELINE: &str = r##"
use std::io::{Read, Write};
use std::net::TcpStream;

use monkeyci_sdk::prelude::*;

const REQUEST: &str = r#"{"job_id":"dispatch-twice","attempt":1,"spec":{"image":"localhost/monkeyci-test/busybox","script":["echo ran"],"size":1}}"#;

/// The build API's host:port and token, from the configuration the runtime gave the script.
fn api() -> (String, String) {
    let config = std::env::var("MONKEYCI_SCRIPT").expect("the script's configuration");
    let api = &config[config.find("\"api\":").expect("an api field")..];
    let field = |name: &str| {
        let key = format!("\"{name}\":\"");
        let start = api.find(&key).expect("the field") + key.len();
        api[start..start + api[start..].find('"').expect("its end")].to_owned()
    };
    (field("url").trim_start_matches("http://").to_owned(), field("token"))
}

/// One HTTP/1.1 request; the answer's status line and body.
fn call(addr: &str, token: &str, method: &str, path: &str, body: &str) -> String {
    let mut stream = TcpStream::connect(addr).expect("the build API");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .expect("sending the request");
    let mut answer = String::new();
    stream.read_to_string(&mut answer).expect("reading the answer");
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    format!("{status} {body}")
}

#[job]
async fn dispatch_twice(ctx: &Ctx) -> Result<()> {
    let (addr, token) = api();
    let posts: Vec<_> = (0..2)
        .map(|_| {
            let (addr, token) = (addr.clone(), token.clone());
            std::thread::spawn(move || call(&addr, &token, "POST", "/containers", REQUEST))
        })
        .collect();
    for post in posts {
        ctx.log(format!("POST {}", post.join().expect("a POST")));
    }
    let path = "/containers/dispatch-twice-1?wait=30";
    let mut state = call(&addr, &token, "GET", path, "");
    while !state.contains("\"result\":{") {
        state = call(&addr, &token, "GET", path, "");
    }
    ctx.log(format!("GET {state}"));
    ctx.log(format!("POST {}", call(&addr, &token, "POST", "/containers", REQUEST)));
    Ok(())
}

monkeyci_sdk::main!();
"##;

#[test]
fn dispatch_is_idempotent() {
    let repo = TestRepo::with_pipeline("ct_dispatch", DISPATCH_PIPELINE);
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(0);
        let job = "dispatch-twice";
        let log = out.log(job);
        let posts: Vec<&&str> = log.iter().filter(|l| l.starts_with("POST ")).collect();
        assert_eq!(posts.len(), 3, "{engine}: {out:?}");
        assert!(posts.iter().all(|p| p.contains("{\"id\":\"dispatch-twice-1\"}")), "{engine}: {posts:?}");
        assert!(posts.iter().all(|p| p.contains(" 20")), "{engine}: a POST was refused: {posts:?}");
        assert!(log.iter().any(|l| l.starts_with("GET ") && l.contains("\"status\":\"success\"")), "{engine}: {out:?}");
        // One container, one run of its script.
        assert_eq!(container_starts(&out, job).len(), 1, "{engine}: {out:?}");
        assert_eq!(command_starts(&out, job), [(0, "echo ran")], "{engine}: {out:?}");
        assert_eq!(log.iter().filter(|l| **l == "ran").count(), 1, "{engine}: {out:?}");
        let ends = out.events_of("container/end").len();
        assert_eq!(ends, 1, "{engine}: {out:?}");
        if engine == "podman" {
            assert_no_container_left("podman", &out);
        }
    }
}

const INTERRUPT_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn interrupted(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").script(["touch MARKER", "sleep SLEEP_SECONDS"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn ctrl_c_cancels_a_running_container_job() {
    cancels_a_running_container_job(libc::SIGINT);
}

/// A service manager, `kill` or a CI runner stopping MonkeyCI sends SIGTERM: it is handled as
/// Ctrl-C is, so no container is orphaned and no raw secret stays on disk.
#[test]
fn sigterm_cancels_a_running_container_job() {
    cancels_a_running_container_job(libc::SIGTERM);
}

fn cancels_a_running_container_job(signal: libc::c_int) {
    // Distinct per signal: the two tests run at once, and each looks for its own `sleep`.
    let seconds =
        (unique_sleep_seconds().parse::<u32>().expect("a number") + 1_000 * signal.unsigned_abs()).to_string();
    // And a marker of its own: a marker in any new build triggers the interrupt.
    let marker = format!("started-{signal}");
    let pipeline = INTERRUPT_PIPELINE.replace("SLEEP_SECONDS", &seconds).replace("MARKER", &marker);
    // Pipelines of the same name compiled at once could share a binary (#9): a name each.
    let repo = TestRepo::with_pipeline(&format!("ct_interrupt_{signal}"), &pipeline);
    let job = "interrupted";
    for engine in engines() {
        // The job runs in its own copy of the checkout (and, with podman, sees only its own
        // directory), so its marker is in its work dir under a build whose id is not known yet.
        let mut marked = file_in_new_build(&format!("jobs/{job}-1/work/{marker}"));
        // Interrupted once the sleep runs (the marker alone leaves a race with its start).
        let sleep = seconds.clone();
        let started = move || marked() && !processes_running(&["sleep", &sleep]).is_empty();
        let out = run_on(&repo, engine).interrupt_when(started).interrupt_with(signal).output();
        out.assert_code(1);
        assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Canceled), "{engine}: {out:?}");
        assert_eq!(out.status(job), Some(JobStatus::Canceled), "{engine}: {out:?}");
        assert_eq!(command_starts(&out, job).len(), 2, "{engine}: the sleep must have started; {out:?}");
        let (status, _, _) = container_end(&out, job).unwrap_or_else(|| panic!("{engine}: no container/end; {out:?}"));
        assert_eq!(status, JobStatus::Canceled, "{engine}: {out:?}");
        let took = job_millis(&out, job);
        assert!(took < 10_000, "{engine}: canceling took {took} ms; {out:?}");
        if engine == "podman" {
            assert_no_container_left("podman", &out);
        }
        assert_no_process_left(&["sleep", &seconds], engine, &out);
    }
}
