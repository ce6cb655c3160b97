//! Hostile container jobs (issue "hardening"): jobs are untrusted code, so nothing they do in
//! the directory they share with the host (their job root: event log, command logs) may make
//! the host read or change its own files, forge how the job ended, or lose its output. Each
//! test runs on every engine here: the host shell, podman and docker.

use std::path::Path;
use std::time::{Duration, SystemTime};

use monkeyci_protocol::{BuildStatus, EventKind, JobStatus};

use crate::util::{BUSYBOX, MonkeyciCommand, TestRepo, builds_dir, docker_available, engines, run_on};

/// Milliseconds since the epoch, as events are stamped.
fn epoch_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

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

const LINKS_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

/// Points its logs at a host file: one already written, and those of a command it announces
/// itself.
#[job]
fn link_file(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script([
        "echo visible-line",
        "rm -f \"$MONKEYCI_ROOT/logs/0.out\" && ln -s HOST_DIR/secret.txt \"$MONKEYCI_ROOT/logs/0.out\"",
        "ln -s HOST_DIR/secret.txt \"$MONKEYCI_ROOT/logs/5.out\" && ln -s /dev/zero \"$MONKEYCI_ROOT/logs/5.err\" && printf '%s\\n' '{\"type\":\"command/start\",\"command\":5,\"stdout\":\"logs/5.out\",\"stderr\":\"logs/5.err\"}' >> \"$MONKEYCI_ROOT/events.jsonl\" && sleep 1",
    ])
}

/// Replaces its logs directory by a link to a host directory.
#[job]
fn link_dir(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script([
        "echo before-the-swap",
        "mv \"$MONKEYCI_ROOT/logs\" \"$MONKEYCI_ROOT/logs.real\" && ln -s HOST_DIR/logs \"$MONKEYCI_ROOT/logs\"",
    ])
}

monkeyci_sdk::main!();
"#;

/// Issue "hardening", 1: links in the job's directory to host files and directories are not
/// followed: the host files are neither shown (live or in `build logs`) nor rewritten when the
/// job's logs are masked, and the build record keeps no link to them.
#[test]
fn hostile_links_in_the_job_directory_are_not_followed() {
    const PARAM: &str = "hostile-param-value-42";
    let host = tempfile::tempdir().unwrap();
    let secret = format!("host-only-line\n{PARAM}\n");
    std::fs::create_dir_all(host.path().join("logs")).unwrap();
    let host_files = [host.path().join("secret.txt"), host.path().join("logs/0.out"), host.path().join("logs/1.out")];
    for file in &host_files {
        std::fs::write(file, &secret).unwrap();
    }
    let pipeline = LINKS_PIPELINE.replace("IMAGE", BUSYBOX).replace("HOST_DIR", &host.path().display().to_string());
    let repo = TestRepo::with_pipeline("hostile_links", &pipeline);
    for engine in all_engines() {
        let out = run_on(&repo, engine).args(["--param", "HOSTILE"]).env("HOSTILE", PARAM).output();
        for file in &host_files {
            let now = std::fs::read_to_string(file).unwrap_or_default();
            assert_eq!(now, secret, "{engine}: the host file {} was changed; {out:?}", file.display());
        }
        for job in ["link-file", "link-dir"] {
            let log = out.log(job);
            assert!(!log.iter().any(|l| l.contains("host-only-line")), "{engine}: {job} showed a host file; {out:?}");
            let logs =
                MonkeyciCommand::new(["build", "logs"]).arg(out.build_id()).arg(job).current_dir(repo.path()).output();
            logs.assert_code(0);
            assert!(!logs.stdout.contains("host-only-line"), "{engine}: {job}: {logs:?}");
            // Every command log `build logs` points at is a file of the record, no link.
            for path in logs.stdout.lines().filter_map(|l| l.trim().strip_prefix("stdout: ")) {
                let meta = std::fs::symlink_metadata(path).unwrap();
                assert!(meta.is_file(), "{engine}: {job}: {path} is no regular file");
                let parent = Path::new(path).parent().unwrap();
                assert!(!std::fs::symlink_metadata(parent).unwrap().is_symlink(), "{engine}: {parent:?} is a link");
                let text = std::fs::read_to_string(path).unwrap();
                assert!(!text.contains("host-only-line") && !text.contains(PARAM), "{engine}: {path}: {text}");
            }
        }
        // What was refused is said.
        let said = |job: &str, text: &str| out.log(job).iter().any(|l| l.starts_with("monkeyci: ") && l.contains(text));
        assert!(said("link-file", "logs/0.out is a symbolic link"), "{engine}: {out:?}");
        assert!(said("link-file", "cannot be right"), "{engine}: {out:?}");
        assert!(said("link-dir", "logs is a symbolic link"), "{engine}: {out:?}");
        let record = out.build_dir().join("jobs");
        for rel in ["link-file-1/logs/0.out", "link-file-1/logs/5.out", "link-file-1/logs/5.err", "link-dir-1/logs"] {
            let left = std::fs::symlink_metadata(record.join(rel));
            assert!(!left.is_ok_and(|m| m.is_symlink()), "{engine}: the record keeps the link {rel}");
        }
    }
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

const NOT_UTF8_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn script_prints_bytes(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["printf 'a\\377b\\n'; sleep 0.3; echo after-the-byte"])
}

#[job]
fn command_prints_bytes(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").command(["sh", "-c", "printf 'a\\377b\\n'; sleep 0.3; echo after-the-byte"])
}

monkeyci_sdk::main!();
"#;

/// Issue "hardening", 4: a byte that is not UTF-8 is shown lossily, and neither fails the job
/// nor loses what follows: in a script line's log and in a command's own output.
#[test]
fn hostile_bytes_that_are_not_utf8_lose_nothing() {
    let repo = TestRepo::with_pipeline("hostile_not_utf8", &NOT_UTF8_PIPELINE.replace("IMAGE", BUSYBOX));
    for engine in all_engines() {
        let out = run_on(&repo, engine).output();
        for job in ["script-prints-bytes", "command-prints-bytes"] {
            assert_eq!(out.status(job), Some(JobStatus::Success), "{engine}: {job}: {out:?}");
            assert_eq!(out.log(job), ["a\u{FFFD}b", "after-the-byte"], "{engine}: {job}: {out:?}");
        }
        out.assert_code(0);
    }
}

const FAST_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
fn prints_fast(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["yes 'a line of output printed as fast as it can be' | head -c 200000000; sleep 1000"])
}

monkeyci_sdk::main!();
"#;

/// Issue "hardening", 3: Ctrl-C stops a build whose job is printing fast (following its
/// output never holds the build up), and the job's output stops at its limit. The build's event
/// stream is bounded, so the job's output is followed at the pace the build renders it, and
/// after Ctrl-C there is no backlog to render: MonkeyCI exits within seconds.
#[test]
fn hostile_ctrl_c_stops_a_job_printing_fast() {
    let repo = TestRepo::with_pipeline("hostile_fast", &FAST_PIPELINE.replace("IMAGE", BUSYBOX));
    let job = "prints-fast";
    for engine in all_engines() {
        // Interrupted once the job's log of a build started by this run holds 5 MB.
        let before: Vec<_> =
            std::fs::read_dir(builds_dir()).into_iter().flatten().flatten().map(|e| e.path()).collect();
        let interrupted = std::sync::Arc::new(std::sync::Mutex::new(None::<u64>));
        let at = std::sync::Arc::clone(&interrupted);
        let printing = move || {
            let big = std::fs::read_dir(builds_dir()).into_iter().flatten().flatten().any(|e| {
                !before.contains(&e.path())
                    && std::fs::metadata(e.path().join(format!("jobs/{job}-1/logs/0.out")))
                        .is_ok_and(|m| m.len() > 5_000_000)
            });
            if big {
                at.lock().unwrap().get_or_insert_with(epoch_ms);
            }
            big
        };
        let out = run_on(&repo, engine).interrupt_when(printing).output();
        let exited = epoch_ms();
        let at = interrupted.lock().unwrap().unwrap_or_else(|| panic!("{engine}: never interrupted; {out:?}"));
        out.assert_code(1);
        // Nothing piled up to be rendered and recorded after the interrupt.
        let exiting = Duration::from_millis(exited.saturating_sub(at));
        assert!(exiting < Duration::from_secs(15), "{engine}: monkeyci exited {exiting:?} after the interrupt");
        // The job stopped soon after: its container ended.
        let ended = out.events_of("container/end").first().map(|e| e.time).unwrap_or_else(|| panic!("{out:?}"));
        let took = Duration::from_millis(ended.saturating_sub(at));
        assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Canceled), "{engine}: {out:?}");
        assert_eq!(out.status(job), Some(JobStatus::Canceled), "{engine}: {out:?}");
        assert!(took < Duration::from_secs(10), "{engine}: stopping took {took:?}");
        let log = out.log(job);
        assert!(log.len() > 1000, "{engine}: the output was followed");
        let limit = log.iter().filter(|l| l.contains("passed its limit")).count();
        assert!(limit <= 1, "{engine}: {limit} limit lines");
        // Whatever was shown is what was printed, whole lines but the last one the stop cut; a
        // note says where the rest is.
        let line = "a line of output printed as fast as it can be";
        let shown = log.iter().filter(|l| !l.starts_with("monkeyci: ")).count();
        let printed = log.iter().filter(|l| **l == line).count();
        let cut = log.iter().filter(|l| !l.starts_with("monkeyci: ") && **l != line && line.starts_with(**l)).count();
        assert!(shown == printed + cut && cut <= 1, "{engine}: {shown} shown, {printed} whole, {cut} cut");
        // The build record keeps the job's whole log file (up to the limit when masked).
        assert!(out.build_dir().join(format!("jobs/{job}-1/logs/0.out")).exists());
    }
}
