//! Passing a typed value from one job to another.
//!
//! An action job's `Result<T>` is its output: any type that derives `Serialize` and
//! `Deserialize`. A job that depends on it reads it with `ctx.output::<job>()`, and gets a `T`
//! back, checked by the compiler: here `version` works out a `Version` from the build's tag and
//! `package` names the archive after it.

use monkeyci_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// A semantic version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Version {
    major: u32,
    minor: u32,
    patch: u32,
    /// Whether this is a release, built from a tag such as `v1.2.3`.
    release: bool,
}

/// The version from a tag such as `v1.2.3`, or `0.0.0` for a build that is not tagged.
#[job]
async fn version(ctx: &Ctx) -> Result<Version> {
    let Some(tag) = ctx.tag() else {
        ctx.log("not a tagged build: version 0.0.0");
        return Ok(Version { major: 0, minor: 0, patch: 0, release: false });
    };
    let numbers = tag.strip_prefix('v').context(format!("tag {tag:?} does not start with `v`"))?;
    let parts: Vec<u32> = numbers
        .split('.')
        .map(str::parse)
        .collect::<std::result::Result<_, _>>()
        .context(format!("tag {tag:?} is not a version"))?;
    let [major, minor, patch] = parts[..] else {
        return Err(JobError::msg(format!("tag {tag:?} is not `vMAJOR.MINOR.PATCH`")));
    };
    Ok(Version { major, minor, patch, release: true })
}

/// The archive's file name, made from the version.
#[job(depends_on = [version])]
async fn package(ctx: &Ctx) -> Result<String> {
    let Version { major, minor, patch, release } = ctx.output::<version>()?;
    let suffix = if release { "" } else { "-snapshot" };
    let archive = format!("app-{major}.{minor}.{patch}{suffix}.tar.gz");
    ctx.log(format!("packaging {archive}"));
    // A short result for the build's summary and `monkeyci build logs`.
    ctx.summary(format!("| archive | release |\n|---|---|\n| `{archive}` | {release} |"))?;
    Ok(archive)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::JobStatus;
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn tagged_build_packages_the_release() {
        let run = TestCtx::new().tag("v1.12.3").run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.output::<version>(), Some(Version { major: 1, minor: 12, patch: 3, release: true }));
        assert_eq!(run.output::<package>().as_deref(), Some("app-1.12.3.tar.gz"));
        assert_eq!(run.log("package"), ["packaging app-1.12.3.tar.gz"]);
        assert_eq!(run.summary("package"), Some("| archive | release |\n|---|---|\n| `app-1.12.3.tar.gz` | true |"));
    }

    #[test]
    fn untagged_build_packages_a_snapshot() {
        let run = TestCtx::new().branch("main").run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.output::<package>().as_deref(), Some("app-0.0.0-snapshot.tar.gz"));
    }

    #[test]
    fn bad_tag_fails_version_and_skips_package() {
        let run = TestCtx::new().tag("v1.x").run().unwrap();
        assert!(!run.succeeded());
        assert_eq!(run.job_status("version"), Some(JobStatus::Failure));
        assert_eq!(run.message("version"), Some("tag \"v1.x\" is not a version: invalid digit found in string"));
        assert_eq!(run.job_status("package"), Some(JobStatus::Skipped));
        assert_eq!(run.output::<package>(), None);
    }

    #[test]
    fn the_output_is_kept_as_json() {
        let run = TestCtx::new().tag("v2.0.1").run().unwrap();
        let json = run.output_json("version").unwrap();
        assert_eq!(json["major"], 2);
        assert_eq!(json["patch"], 1);
        assert_eq!(json["release"], true);
    }
}
