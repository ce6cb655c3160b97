//! Jobs that run only on some refs.
//!
//! A condition is a plain function of the build context, named with `when = ...`. When it is
//! false the job is left out of the build (and listed as skipped, with the condition's name).
//! `build` always runs, `deploy-staging` only on the main branch, `release` only on a tag
//! starting with `v`.

use monkeyci_sdk::prelude::*;

/// Whether this build is on the repository's main branch.
fn is_main(ctx: &Ctx) -> bool {
    ctx.is_main_branch()
}

/// Whether this build is for a release tag such as `v1.2.0`.
fn is_release_tag(ctx: &Ctx) -> bool {
    ctx.tag().is_some_and(|tag| tag.starts_with('v'))
}

/// Runs on every build.
#[job]
async fn build(ctx: &Ctx) -> Result<String> {
    let what = match (ctx.branch(), ctx.tag()) {
        (Some(branch), _) => format!("branch {branch}"),
        (None, Some(tag)) => format!("tag {tag}"),
        (None, None) => "the working tree".to_owned(),
    };
    ctx.log(format!("building {what}"));
    Ok(what)
}

/// Deploys every change to the main branch.
#[job(depends_on = [build], when = is_main)]
async fn deploy_staging(ctx: &Ctx) -> Result<()> {
    let built = ctx.output::<build>()?;
    ctx.log(format!("deploying {built} to staging"));
    Ok(())
}

/// Publishes a release for a version tag.
#[job(depends_on = [build], when = is_release_tag)]
async fn release(ctx: &Ctx) -> Result<String> {
    let version = ctx.tag().unwrap_or_default().trim_start_matches('v').to_owned();
    ctx.log(format!("releasing version {version}"));
    Ok(version)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;
    use monkeyci_sdk::testing::{JobStatus, Plan};

    fn skipped(plan: &Plan) -> Vec<(&str, &str)> {
        plan.skipped.iter().map(|s| (s.id.as_str(), s.reason.as_str())).collect()
    }

    #[test]
    fn main_branch_builds_and_deploys() {
        let ctx = TestCtx::new().branch("main");
        let plan = ctx.plan().unwrap();
        assert_eq!(plan.job_ids(), ["build", "deploy-staging"]);
        assert_eq!(skipped(&plan), [("release", "condition `is_release_tag` is false")]);

        let run = ctx.run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.log("deploy-staging"), ["deploying branch main to staging"]);
        assert_eq!(run.job_status("release"), Some(JobStatus::Skipped));
        assert!(run.log("release").is_empty());
    }

    #[test]
    fn main_branch_can_have_another_name() {
        let plan = TestCtx::new().main_branch("trunk").branch("trunk").plan().unwrap();
        assert_eq!(plan.job_ids(), ["build", "deploy-staging"]);
        let plan = TestCtx::new().main_branch("trunk").branch("main").plan().unwrap();
        assert_eq!(plan.job_ids(), ["build"]);
    }

    #[test]
    fn feature_branch_only_builds() {
        let plan = TestCtx::new().branch("feature/login").plan().unwrap();
        assert_eq!(plan.job_ids(), ["build"]);
        assert_eq!(
            skipped(&plan),
            [("deploy-staging", "condition `is_main` is false"), ("release", "condition `is_release_tag` is false")]
        );
    }

    #[test]
    fn version_tag_builds_and_releases() {
        let ctx = TestCtx::new().tag("v1.4.0");
        assert_eq!(ctx.plan().unwrap().job_ids(), ["build", "release"]);

        let run = ctx.run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.output::<build>().unwrap(), "tag v1.4.0");
        assert_eq!(run.output::<release>().unwrap(), "1.4.0");
        assert_eq!(run.job_status("deploy-staging"), Some(JobStatus::Skipped));
    }

    #[test]
    fn other_tags_are_not_released() {
        assert_eq!(TestCtx::new().tag("nightly-2024-05-01").plan().unwrap().job_ids(), ["build"]);
    }

    #[test]
    fn conditions_are_plain_functions() {
        assert!(is_main(&TestCtx::new().branch("main").ctx()));
        assert!(!is_main(&TestCtx::new().tag("main").ctx()));
        assert!(!is_main(&TestCtx::new().ctx()));
        assert!(is_release_tag(&TestCtx::new().tag("v2.0.0-rc.1").ctx()));
        assert!(!is_release_tag(&TestCtx::new().branch("v2").ctx()));
    }
}
