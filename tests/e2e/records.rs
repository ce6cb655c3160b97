//! What a build record keeps: what a user reads later (events, job logs, each command's logs),
//! not the workspace copies of container jobs, whether a job succeeded, failed or timed out.

use std::path::Path;

use monkeyci_protocol::JobStatus;

use crate::util::{BUSYBOX, MonkeyciCommand, TestRepo, engines, run_on};

const BIG_FILE_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

const BOX: &str = "IMAGE";
const WRITE: &str = "mkdir -p target/debug && dd if=/dev/zero of=target/debug/big bs=1048576 count=50 2>/dev/null";

#[job]
fn succeeds(_ctx: &Ctx) -> ContainerJob {
    container(BOX)
        .script([WRITE, "ln -s / target/root-link", "echo small > small.txt", "echo wrote-big"])
        .save_artifact(artifact("small", "small.txt"))
}

#[job]
fn fails(_ctx: &Ctx) -> ContainerJob {
    container(BOX).script([WRITE, "echo failing-now", "exit 3"])
}

#[job]
fn times_out(_ctx: &Ctx) -> ContainerJob {
    container(BOX).script([WRITE, "echo sleeping-now", "sleep 60"]).timeout(std::time::Duration::from_secs(3))
}

#[job(depends_on = [succeeds])]
fn reads_artifact(_ctx: &Ctx) -> ContainerJob {
    container(BOX).restore_artifact("small").script(["cat small.txt"])
}

monkeyci_sdk::main!();
"#;

/// The bytes of the files below `path`, links not followed.
fn size_of_tree(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).into_iter().flatten().flatten().map(|entry| size_of_tree(&entry.path())).sum()
}

/// What real projects' CI showed: a green build record took 1.8 GB, each container job's
/// workspace copy with its `target/`. A job writing 50 MB leaves a record without them (after
/// a success, a failure or a time limit), its artifact still handed on, and its logs still read
/// with `monkeyci build logs`.
#[test]
fn a_record_keeps_the_logs_not_the_workspace_copies() {
    let repo = TestRepo::with_pipeline("records_big_file", &BIG_FILE_PIPELINE.replace("IMAGE", BUSYBOX));
    for engine in engines() {
        let out = run_on(&repo, engine).output();
        out.assert_code(1);
        assert_eq!(out.status("succeeds"), Some(JobStatus::Success), "{engine}: {out:?}");
        assert_eq!(out.status("fails"), Some(JobStatus::Failure), "{engine}: {out:?}");
        assert_eq!(out.status("times-out"), Some(JobStatus::Timeout), "{engine}: {out:?}");
        assert_eq!(out.log("reads-artifact"), ["restored artifact `small`", "small"], "{engine}: {out:?}");

        let record = out.build_dir();
        let size = size_of_tree(&record);
        assert!(size < 1 << 20, "{engine}: the record takes {size} bytes");
        for job in ["succeeds", "fails", "times-out", "reads-artifact"] {
            let dir = record.join("jobs").join(format!("{job}-1"));
            assert!(dir.join("logs/0.out").is_file(), "{engine}: {job}: the command logs are gone");
            assert!(std::fs::symlink_metadata(dir.join("work")).is_err(), "{engine}: {job} kept its work dir");
            assert!(std::fs::symlink_metadata(dir.join("tmp")).is_err(), "{engine}: {job} kept its tmp dir");
        }
        assert!(Path::new("/bin/sh").exists(), "{engine}: removing a link to / followed it");

        // (job, what it printed, which command printed it, how its last command ended)
        for (job, line, index, ended) in [
            ("succeeds", "wrote-big", 3, "command 3 (exit 0): echo wrote-big"),
            ("fails", "failing-now", 1, "command 2 (exit 3): exit 3"),
            ("times-out", "sleeping-now", 1, "sleep 60"),
        ] {
            let logs = MonkeyciCommand::new(["build", "logs"]).arg(out.build_id()).arg(job).output();
            logs.assert_code(0);
            logs.assert_stdout_contains(line);
            logs.assert_stdout_contains(ended);
            let lines: Vec<&str> = logs.stdout.lines().map(str::trim).collect();
            let at = lines.iter().position(|l| l.starts_with(&format!("command {index} ")));
            let stdout = at.and_then(|at| lines.get(at + 1)?.strip_prefix("stdout: "));
            let stdout = stdout.unwrap_or_else(|| panic!("{engine}: {job}: no log of command {index}; {logs:?}"));
            assert_eq!(std::fs::read_to_string(stdout).unwrap(), format!("{line}\n"), "{engine}: {job}");
        }
    }
}
