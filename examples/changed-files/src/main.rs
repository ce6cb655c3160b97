//! Running only the jobs a change needs.
//!
//! `ctx.touched(glob)` tells whether the build's commits added, modified or removed a file
//! matching the glob. Used in `when` conditions, it keeps a monorepo's builds short: `test-app`
//! runs when something under `app/` changed, `test-docs` when something under `docs/` or a
//! Markdown file at the top of the repository changed.

use monkeyci_sdk::prelude::*;

/// Whether the application's code changed.
fn app_changed(ctx: &Ctx) -> bool {
    ctx.touched("app/**")
}

/// Whether the documentation changed.
fn docs_changed(ctx: &Ctx) -> bool {
    ctx.touched("docs/**") || ctx.touched("*.md")
}

/// Tests the application.
#[job(when = app_changed)]
fn test_app(_ctx: &Ctx) -> ContainerJob {
    container("docker.io/rust:1.95").work_dir("app").script(["cargo test --locked"])
}

/// Checks that the documentation builds and its links work.
#[job(when = docs_changed)]
fn test_docs(_ctx: &Ctx) -> ContainerJob {
    container("docker.io/peaceiris/mdbook:v0.4.40").script(["mdbook build docs", "mdbook test docs"])
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn app_change_tests_the_app_only() {
        let ctx = TestCtx::new().modified(["app/src/main.rs"]);
        let plan = ctx.plan().unwrap();
        assert_eq!(plan.job_ids(), ["test-app"]);
        assert_eq!(plan.skipped[0].id, "test-docs");
        assert_eq!(plan.skipped[0].reason, "condition `docs_changed` is false");

        let run = ctx.run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        let started: Vec<&str> = run.containers().iter().map(|(job, _)| job.as_str()).collect();
        assert_eq!(started, ["test-app"]);
        assert_eq!(run.containers()[0].1.script, ["cargo test --locked"]);
    }

    #[test]
    fn docs_change_tests_the_docs_only() {
        let plan = TestCtx::new().added(["docs/guide/install.md"]).plan().unwrap();
        assert_eq!(plan.job_ids(), ["test-docs"]);
    }

    #[test]
    fn top_level_markdown_counts_as_docs() {
        assert_eq!(TestCtx::new().modified(["README.md"]).plan().unwrap().job_ids(), ["test-docs"]);
        // `*.md` stays in the top directory: a Markdown file inside the app is app code.
        assert_eq!(TestCtx::new().modified(["app/CHANGELOG.md"]).plan().unwrap().job_ids(), ["test-app"]);
    }

    #[test]
    fn removed_files_count_too() {
        assert_eq!(TestCtx::new().removed(["app/src/old.rs"]).plan().unwrap().job_ids(), ["test-app"]);
    }

    #[test]
    fn both_changed_runs_both() {
        let ctx = TestCtx::new().modified(["app/Cargo.toml"]).added(["CONTRIBUTING.md"]);
        assert_eq!(ctx.plan().unwrap().job_ids(), ["test-app", "test-docs"]);
        let run = ctx.run().unwrap();
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.containers().len(), 2);
    }

    #[test]
    fn conditions_are_plain_functions() {
        assert!(app_changed(&TestCtx::new().modified(["app/src/deep/nested/mod.rs"]).ctx()));
        assert!(!app_changed(&TestCtx::new().modified(["application.rs"]).ctx()));
        assert!(docs_changed(&TestCtx::new().added(["docs/img/logo.svg"]).ctx()));
        assert!(!docs_changed(&TestCtx::new().ctx()));
    }

    #[test]
    fn unrelated_change_runs_nothing() {
        let plan = TestCtx::new().modified(["scripts/release.sh"]).plan().unwrap();
        assert!(plan.job_ids().is_empty());
        assert_eq!(plan.skipped.len(), 2);
    }
}
