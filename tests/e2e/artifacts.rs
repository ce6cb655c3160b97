//! Artifacts and caches: files handed from job to job within a build, and kept between
//! builds of a repository, on the podman engine and on the host shell engine.

use monkeyci_protocol::{EventKind, JobStatus};

use crate::util::{MonkeyciCommand, TestRepo, engines, run_on};

const HANDOFF_PIPELINE: &str = r#"
use monkeyci_sdk::prelude::*;

const IMAGE: &str = "localhost/monkeyci-test/busybox";

#[job]
fn produce(_ctx: &Ctx) -> ContainerJob {
    container(IMAGE)
        .script(["sleep 1", "mkdir -p out/nested", "echo built-by-produce > out/nested/result.txt"])
        .save_artifact(artifact("out", "out"))
}

#[job]
fn other(_ctx: &Ctx) -> ContainerJob {
    container(IMAGE).script(["sleep 1", "echo other"])
}

#[job(depends_on = [produce, other])]
fn consume(_ctx: &Ctx) -> ContainerJob {
    container(IMAGE).restore_artifact("out").script(["cat out/nested/result.txt"])
}

#[job(depends_on = [produce])]
fn without_restore(_ctx: &Ctx) -> ContainerJob {
    container(IMAGE).script(["test ! -e out/nested/result.txt && echo not-restored"])
}

monkeyci_sdk::main!();
"#;

#[test]
fn parallel_container_jobs_hand_an_artifact_to_a_dependent() {
    for engine in engines() {
        let repo = TestRepo::with_pipeline(&format!("handoff_{engine}"), HANDOFF_PIPELINE);
        let out = run_on(&repo, engine).output();
        out.assert_code(0);
        // produce and other overlap in time.
        let (produce_start, other_start) = (out.start_time("produce").unwrap(), out.start_time("other").unwrap());
        let first_end = out.end_time("produce").unwrap().min(out.end_time("other").unwrap());
        assert!(produce_start < first_end && other_start < first_end, "{engine}: not parallel: {out:?}");
        assert!(out.start_time("consume").unwrap() >= out.end_time("produce").unwrap(), "{engine}: {out:?}");
        assert_eq!(out.log("consume"), ["restored artifact `out`", "built-by-produce"], "{engine}: {out:?}");
        assert_eq!(out.log("without-restore"), ["not-restored"], "{engine}: {out:?}");
        assert!(out.log("produce").contains(&"saved artifact `out` (1 files)"), "{engine}: {out:?}");
    }
}

#[test]
fn a_missing_artifact_fails_the_restoring_job_and_an_optional_one_is_skipped() {
    let repo = TestRepo::with_pipeline(
        "missing_artifact",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
fn needs(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").restore_artifact("never-saved").script(["echo ran"])
}

#[job]
fn tolerates(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").restore_optional_artifact("never-saved").script(["echo ran"])
}

monkeyci_sdk::main!();
"#,
    );
    let out = run_on(&repo, "shell").output();
    out.assert_code(1);
    assert_eq!(out.status("needs"), Some(JobStatus::Failure), "{out:?}");
    let message = out.message("needs").unwrap();
    assert!(message.contains("artifact `never-saved` does not exist"), "{message}");
    assert!(!out.log("needs").contains(&"ran"), "the job must not run without its artifact: {out:?}");
    assert_eq!(out.status("tolerates"), Some(JobStatus::Success), "{out:?}");
    assert!(out.log("tolerates").contains(&"ran"), "{out:?}");
}

/// A cache is saved after a build that restored nothing, or another key; one restored by the
/// key it still has is not saved again (real projects' CI: packing an unchanged `target/`
/// took 5 s of a 17 s job), as CI caches do.
#[test]
fn a_cache_is_saved_unless_its_key_hit() {
    for engine in engines() {
        let repo = TestRepo::with_pipeline(
            &format!("cache_{engine}"),
            r#"
use monkeyci_sdk::prelude::*;

#[job]
fn count(ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox")
        .cache(cache("counter", "cache").key_files(["deps.lock"]))
        .script(["mkdir -p cache", format!("touch cache/file-{}", ctx.build_id()).as_str(), "ls cache | wc -l"])
}

monkeyci_sdk::main!();
"#,
        );
        let mut counts = Vec::new();
        for (build, lock) in ["v1", "v1", "v1", "v2", "v2"].into_iter().enumerate() {
            repo.write("deps.lock", lock);
            let out = run_on(&repo, engine).output();
            out.assert_code(0);
            let log = out.log("count");
            counts.push(log.iter().rev().find_map(|l| l.trim().parse::<u32>().ok()).expect("a count"));
            let saved = log.iter().any(|l| l.starts_with("saved cache `counter` ("));
            let hit =
                log.iter().any(|l| l.starts_with("cache `counter` unchanged (key ") && l.ends_with(" hit): not saved"));
            // Build 0 restores nothing, build 3 the archive of key v1: both save theirs.
            let expect_saved = build == 0 || build == 3;
            assert_eq!((saved, hit), (expect_saved, !expect_saved), "{engine}: build {build}: {out:?}");
        }
        // Builds 1 and 2 restore build 0's archive, builds 3 and 4 build 0's plus their own.
        assert_eq!(counts, [1, 2, 2, 2, 3], "{engine}");
    }
}

#[test]
fn action_jobs_and_container_jobs_share_artifacts() {
    let repo = TestRepo::with_pipeline(
        "action_artifacts",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn write_report(ctx: &Ctx) -> Result<()> {
    let dir = ctx.work_dir().join("reports");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("a.txt"), "from action")?;
    ctx.save_artifact(artifact("reports", "reports")).await
}

#[job(depends_on = [write_report])]
fn read_report(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox")
        .restore_artifact("reports")
        .script(["cat reports/a.txt", "echo from-container > b.txt"])
        .save_artifact(artifact("b", "b.txt"))
}

#[job(depends_on = [read_report])]
async fn read_back(ctx: &Ctx) -> Result<String> {
    ctx.restore_artifact("b").await?;
    let text = std::fs::read_to_string(ctx.work_dir().join("b.txt"))?;
    ctx.log(text.trim());
    Ok(text)
}

#[job]
async fn save_missing(ctx: &Ctx) -> Result<()> {
    ctx.save_artifact(artifact("x", "no/such/dir")).await
}

monkeyci_sdk::main!();
"#,
    );
    let out = run_on(&repo, "shell").output();
    out.assert_code(1);
    assert!(out.log("read-report").contains(&"from action"), "{out:?}");
    assert_eq!(out.log("read-back"), ["from-container"], "{out:?}");
    let message = out.message("save-missing").unwrap();
    assert!(message.contains("no/such/dir") && message.contains("does not exist"), "{message}");
    assert!(
        out.events.iter().any(
            |e| matches!(&e.kind, EventKind::JobEnd { job_id, status: JobStatus::Success, .. } if job_id == "read-back")
        ),
        "{out:?}"
    );
}

#[test]
fn a_failed_jobs_artifact_is_still_saved() {
    for engine in engines() {
        let repo = TestRepo::with_pipeline(
            &format!("failed_artifact_{engine}"),
            r#"
use monkeyci_sdk::prelude::*;

#[job]
fn stops(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox")
        .script(["echo a > f", "false", "echo never"])
        .save_artifact(artifact("report", "f"))
}

monkeyci_sdk::main!();
"#,
        );
        let out = run_on(&repo, engine).output();
        out.assert_code(1);
        assert!(out.log("stops").contains(&"saved artifact `report` (1 files)"), "{engine}: {out:?}");
        // The archive holds `f` as the job left it.
        let build = out.build_id();
        let blob = std::path::Path::new(crate::util::CACHE_DIR).join(format!("blobs/artifacts/{build}/report.tar.zst"));
        let listing = std::process::Command::new("tar").arg("--zstd").arg("-xOf").arg(&blob).arg("f").output().unwrap();
        assert!(listing.status.success(), "{engine}: cannot read {}: {listing:?}", blob.display());
        assert_eq!(String::from_utf8_lossy(&listing.stdout), "a\n", "{engine}");
    }
}

/// Issue 10: a key computed by the pipeline (here from the branch, with `/` in it) joined with
/// the key files' hash, and restore keys tried in order on a miss, as `actions/cache`'s
/// `restore-keys`: the job's log says which archive was restored and by which prefix.
#[test]
fn a_cache_key_from_the_branch_falls_back_on_its_restore_keys() {
    for engine in engines() {
        let repo = TestRepo::with_pipeline(
            &format!("cache_keys_{engine}"),
            r#"
use monkeyci_sdk::prelude::*;

#[job]
fn count(ctx: &Ctx) -> ContainerJob {
    let branch = ctx.branch().unwrap_or("detached");
    let name = branch.replace('/', "_");
    container("localhost/monkeyci-test/busybox")
        .cache(
            cache("counter", "cache")
                .key(format!("os-{branch}"))
                .key_files(["deps.lock"])
                .restore_keys([format!("os-{branch}-"), "os-main-".to_owned()]),
        )
        .script(["mkdir -p cache".to_owned(), format!("touch cache/{name}-$(cat deps.lock)"), "ls cache".to_owned()])
}

monkeyci_sdk::main!();
"#,
        );
        repo.git(&["branch", "-M", "main"]);
        // Each build: the branch, the lock file, what the job's log says about restoring, and
        // what the cache holds at the end of the job.
        let builds: [(&str, &str, &str, &[&str]); 4] = [
            ("main", "v1", "cache `counter` not restored: none has key `os-main-", &["main-v1"]),
            (
                "feature/x",
                "v1",
                "restored cache `counter` from key `os-main-", // by the second restore key
                &["feature_x-v1", "main-v1"],
            ),
            (
                "feature/x",
                "v2",
                "restored cache `counter` from key `os-feature/x-", // the first restore key wins
                &["feature_x-v1", "feature_x-v2", "main-v1"],
            ),
            // The newest archive is feature/x's, but main's restore key matches main's only.
            ("main", "v2", "restored cache `counter` from key `os-main-", &["main-v1", "main-v2"]),
        ];
        for (i, (branch, lock, restored, holds)) in builds.into_iter().enumerate() {
            if repo.git(&["branch", "--show-current"]).trim() != branch {
                if repo.git(&["branch", "--list", branch]).trim().is_empty() {
                    repo.git(&["checkout", "-q", "-b", branch]);
                } else {
                    repo.git(&["checkout", "-q", branch]);
                }
            }
            repo.write("deps.lock", lock);
            let out = run_on(&repo, engine).output();
            out.assert_code(0);
            let log = out.log("count");
            assert!(log.first().is_some_and(|l| l.starts_with(restored)), "{engine}: build {i}: {log:?}");
            if i == 1 {
                assert!(log[0].contains("(restore key `os-main-`): none has key `os-feature/x-"), "{log:?}");
            }
            let listed: Vec<&str> = log.iter().copied().filter(|l| holds.contains(l)).collect();
            assert_eq!(listed, holds, "{engine}: build {i}: {log:?}");
            assert!(log.iter().any(|l| l.starts_with("saved cache `counter` (")), "{engine}: build {i}: {log:?}");
        }
    }
}

/// Issue 10: `~/.cargo/registry`, the cache every Rust CI keeps, is restored into and saved
/// from the job's own cargo home, which its `CARGO_HOME` names, on every engine; the user's
/// `~/.cargo` is never written (on the shell engine the job's `HOME` is the user's).
#[test]
fn the_cargo_registry_is_cached_in_the_jobs_own_cargo_home() {
    for engine in engines() {
        let repo = TestRepo::with_pipeline(
            &format!("cargo_home_{engine}"),
            r#"
use monkeyci_sdk::prelude::*;

#[job]
fn fetch(ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox")
        .cache(Cache::cargo_registry())
        .script([
            "echo \"home=$CARGO_HOME\"".to_owned(),
            "mkdir -p \"$CARGO_HOME/registry/cache\"".to_owned(),
            format!("touch \"$CARGO_HOME/registry/cache/crate-{}\"", ctx.build_id()),
            "ls \"$CARGO_HOME/registry/cache\" | wc -l".to_owned(),
        ])
}

monkeyci_sdk::main!();
"#,
        );
        let user_registry = std::env::var_os("HOME").map(|home| std::path::Path::new(&home).join(".cargo/registry"));
        let mut counts = Vec::new();
        for build in 0..2 {
            let out = run_on(&repo, engine).output();
            out.assert_code(0);
            let log = out.log("fetch");
            let home = log.iter().find_map(|l| l.strip_prefix("home=")).expect("the job's CARGO_HOME");
            assert!(home.ends_with("/cargo-home"), "{engine}: {home}");
            if engine == "shell" {
                assert!(std::path::Path::new(home).starts_with(out.build_dir()), "{engine}: {home}");
            }
            let restored =
                if build == 0 { "cache `cargo-registry` is empty" } else { "restored cache `cargo-registry`" };
            assert!(log[0].starts_with(restored), "{engine}: build {build}: {log:?}");
            counts.push(log.iter().rev().find_map(|l| l.trim().parse::<u32>().ok()).expect("a count"));
            if let Some(registry) = &user_registry {
                let crate_file = registry.join("cache").join(format!("crate-{}", out.build_id()));
                assert!(!crate_file.exists(), "{engine}: the user's ~/.cargo was written: {}", crate_file.display());
            }
        }
        assert_eq!(counts, [1, 2], "{engine}: the second build restores the first one's registry");
    }
}

/// Issue 10: a cache of any other home, absolute or `..` path used to be accepted by
/// `monkeyci build verify` and only warned about when the job ran; `verify` and `build plan`
/// now fail, naming the job and the path.
#[test]
fn verify_and_plan_refuse_a_cache_outside_the_work_dir_naming_the_job_and_the_path() {
    let repo = TestRepo::with_pipeline(
        "cache_home_path",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
fn install(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox").cache(cache("npm", "~/.npm")).script(["true"])
}

monkeyci_sdk::main!();
"#,
    );
    for out in [MonkeyciCommand::verify(repo.path()).output(), MonkeyciCommand::plan(repo.path()).output()] {
        out.assert_code(2);
        out.assert_stderr_contains("container job `install`");
        out.assert_stderr_contains("cache `npm`: path \"~/.npm\" is in the home directory");
    }
}

/// Issue 10: `monkeyci build artifacts` lists a build's artifacts and extracts one, into
/// `--to DIR`, for the build's own repository; an unknown id names those there are.
#[test]
fn a_builds_artifacts_are_listed_and_extracted() {
    let repo = TestRepo::with_pipeline(
        "artifacts_read_back",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
fn produce(_ctx: &Ctx) -> ContainerJob {
    container("localhost/monkeyci-test/busybox")
        .script(["mkdir -p out/nested", "echo built > out/nested/result.txt", "echo ok > report.txt"])
        .save_artifact(artifact("out", "out"))
        .save_artifact(artifact("report", "report.txt"))
}

monkeyci_sdk::main!();
"#,
    );
    let out = run_on(&repo, "shell").output();
    out.assert_code(0);
    let id = out.build_id();
    let listed = MonkeyciCommand::new(["build", "artifacts"]).current_dir(repo.path()).output();
    listed.assert_code(0).assert_stdout_contains(&format!("artifacts of build {id}:"));
    for artifact in ["out", "report"] {
        assert!(listed.stdout.lines().any(|l| l.starts_with(&format!("{artifact} "))), "{listed:?}");
    }
    let dest = tempfile::tempdir().unwrap();
    let to = dest.path().join("new");
    let extracted =
        MonkeyciCommand::new(["build", "artifacts", "out", "--to"]).arg(&to).current_dir(repo.path()).output();
    extracted.assert_code(0).assert_stdout_contains(&format!("extracted artifact `out` of build {id}"));
    assert_eq!(std::fs::read_to_string(to.join("out/nested/result.txt")).unwrap(), "built\n");
    assert!(!to.join("report.txt").exists());

    let unknown =
        MonkeyciCommand::new(["build", "artifacts"]).args([id.as_str(), "nope"]).current_dir(repo.path()).output();
    unknown
        .assert_code(2)
        .assert_stderr_contains(&format!("build {id} has no artifact `nope`; its artifacts are: out, report"));
}
