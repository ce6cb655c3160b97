//! What a build record keeps: what a user reads later (events, job logs, each command's logs),
//! not the workspace copies of container jobs, whether a job succeeded, failed or timed out;
//! and how it is read back: per repository (`build list`, `build logs`), with the markers of
//! the live view.

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
            let logs =
                MonkeyciCommand::new(["build", "logs"]).arg(out.build_id()).arg(job).current_dir(repo.path()).output();
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

const FAILING_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn check(ctx: &Ctx) -> Result<()> {
    ctx.shell("echo building; echo 'error: it broke' >&2; echo 'help: fix it' >&2; exit 101").await?;
    Ok(())
}

#[job]
fn lint(_ctx: &Ctx) -> ContainerJob {
    container("IMAGE").script(["echo linting", "echo lint-warned >&2; exit 2"])
}

monkeyci_sdk::main!();
"#;

const PASSING_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn hello(ctx: &Ctx) -> Result<()> {
    ctx.log("hello");
    ctx.summary("draft")?;
    ctx.summary("| greeted | times |\n|---|---|\n| world | 1 |")?;
    Ok(())
}

monkeyci_sdk::main!();
"#;

/// Issue 10: `build run` never printed the build id, `build logs` showed the newest build of
/// any repository, and there was no `build list`. Each repository reads its own builds; another
/// repository's build is refused by id, naming it, unless `--all`.
#[test]
fn builds_are_listed_and_read_per_repository() {
    let a = TestRepo::with_pipeline("history_a", &FAILING_PIPELINE.replace("IMAGE", BUSYBOX));
    let b = TestRepo::with_pipeline("history_b", PASSING_PIPELINE);
    let (a_dir, b_dir) = (a.path().canonicalize().unwrap(), b.path().canonicalize().unwrap());
    let run_a = run_on(&a, "shell").output();
    run_a.assert_code(1);
    let id_a = run_a.build_id();
    let first = run_a.stdout.lines().next().unwrap_or_default();
    assert!(first.starts_with(&format!("build {id_a} of {} (branch main at ", a_dir.display())), "{run_a:?}");
    run_a.assert_stdout_contains(&format!("build id: {id_a} (`monkeyci build logs {id_a} [JOB]`"));
    let run_b = run_on(&b, "shell").output();
    run_b.assert_code(0);
    let id_b = run_b.build_id();

    let list_a = MonkeyciCommand::new(["build", "list"]).current_dir(&a_dir).output();
    list_a.assert_code(0).assert_stdout_contains(&format!("builds of {}", a_dir.display()));
    let row = list_a.stdout.lines().find(|l| l.starts_with(&id_a)).unwrap_or_else(|| panic!("{list_a:?}"));
    assert!(row.contains("branch main") && row.contains(" failure "), "{row}");
    assert!(!list_a.stdout.contains(&id_b), "another repository's build is listed: {list_a:?}");
    let list_b = MonkeyciCommand::new(["build", "list"]).arg(&b_dir).args(["--limit", "1"]).output();
    list_b.assert_code(0);
    assert!(list_b.stdout.lines().any(|l| l.starts_with(&id_b) && l.contains(" success ")), "{list_b:?}");
    let all = MonkeyciCommand::new(["build", "list", "--all", "--limit", "0"]).current_dir(&a_dir).output();
    all.assert_code(0).assert_stdout_contains(&id_a).assert_stdout_contains(&id_b);

    // The newest build of the repository it is run in, from a subdirectory too.
    for dir in [a_dir.clone(), a_dir.join(".monkeyci/src")] {
        let logs = MonkeyciCommand::new(["build", "logs"]).current_dir(&dir).output();
        logs.assert_code(0).assert_stdout_contains(&format!("build {id_a} of {}", a_dir.display()));
    }
    let refused = MonkeyciCommand::new(["build", "logs"]).arg(&id_b).current_dir(&a_dir).output();
    refused.assert_code(2);
    refused.assert_stderr_contains(&format!(
        "build {id_b} is a build of {}, not of {}",
        b_dir.display(),
        a_dir.display()
    ));
    refused.assert_stderr_contains("--all");
    MonkeyciCommand::new(["build", "logs", "--all"]).arg(&id_b).current_dir(&a_dir).output().assert_code(0);
    // A job's summary (issue 10): the latest one, live and read back.
    let summary = "summary of hello:\n  | greeted | times |\n  |---|---|\n  | world | 1 |\n";
    run_b.assert_stdout_contains(summary);
    let logs = MonkeyciCommand::new(["build", "logs", "hello", "--repo"]).arg(&b_dir).output();
    logs.assert_code(0).assert_stdout_contains(summary);
    assert!(!logs.stdout.contains("draft") && !run_b.stdout.contains("draft"), "{logs:?}");
}

/// Issue 10: `build logs JOB` dropped the `$ line  (command N)` markers shown live,
/// `ctx.shell` commands were never shown, and a failure line named only the command. Live and
/// read back, both show the commands, and the failure with the last lines of its stderr.
#[test]
fn commands_and_what_failed_in_them_are_shown_live_and_read_back() {
    let repo = TestRepo::with_pipeline("history_markers", &FAILING_PIPELINE.replace("IMAGE", BUSYBOX));
    let out = run_on(&repo, "shell").output();
    out.assert_code(1);
    let shell = "$ echo building; echo 'error: it broke' >&2; echo 'help: fix it' >&2; exit 101  (command ";
    for (job, shown) in [
        (
            "check",
            [
                shell,
                "[check] | building",
                "[check] ! error: it broke",
                "[check] failure after ",
                "[check]   ! error: it broke",
                "[check]   ! help: fix it",
            ],
        ),
        (
            "lint",
            [
                "[lint] $ echo linting  (command 0)",
                "[lint] | linting",
                "[lint] ! lint-warned",
                "[lint] command 1 exited with code 2",
                "[lint] failure after ",
                "[lint]   ! lint-warned",
            ],
        ),
    ] {
        let logs =
            MonkeyciCommand::new(["build", "logs"]).arg(out.build_id()).arg(job).current_dir(repo.path()).output();
        logs.assert_code(0);
        for text in shown {
            out.assert_stdout_contains(text);
            logs.assert_stdout_contains(text);
        }
    }
    // The summary says it too.
    out.assert_stdout_contains("check: the last lines of its stderr:\n  ! error: it broke\n  ! help: fix it\n");
    let message = out.message("check").unwrap();
    assert!(message.contains("exited with code 101"), "{message}");
}
