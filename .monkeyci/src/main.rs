//! The pipeline of this repository, dogfooding MonkeyCI: formatting, lints and the sdk's
//! tests, run in parallel where they can be, with the test summary passed on as a typed
//! output. Run it with `cargo run -p monkeyci -- build run .` from the repository
//! root.

use monkeyci_sdk::prelude::*;
use serde::{Deserialize, Serialize};

/// Checks formatting of the whole workspace.
#[job]
async fn fmt(ctx: &Ctx) -> Result<()> {
    ctx.shell("cargo fmt --all -- --check").await?;
    Ok(())
}

/// Lints the sdk and the macros.
#[job(depends_on = [fmt])]
async fn clippy(ctx: &Ctx) -> Result<()> {
    ctx.shell("cargo clippy -p monkeyci-sdk -p monkeyci-macros --all-targets -- -D warnings").await?;
    Ok(())
}

/// What the sdk's unit tests reported.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
struct TestSummary {
    passed: u32,
    failed: u32,
}

/// Runs the sdk's unit tests and counts the results.
#[job(depends_on = [fmt], timeout = "20m")]
async fn sdk_tests(ctx: &Ctx) -> Result<TestSummary> {
    let out = ctx.shell("cargo test -p monkeyci-sdk --lib 2>&1").await?;
    Ok(summarize(&out.stdout))
}

/// Reports the totals of the test run.
#[job(depends_on = [sdk_tests, clippy])]
async fn report(ctx: &Ctx) -> Result<String> {
    let summary = ctx.output::<sdk_tests>()?;
    let text = format!("{} sdk tests passed, {} failed", summary.passed, summary.failed);
    ctx.log(&text);
    Ok(text)
}

/// Adds up the `test result:` lines of `cargo test` output.
fn summarize(output: &str) -> TestSummary {
    let mut summary = TestSummary { passed: 0, failed: 0 };
    for line in output.lines().filter(|l| l.starts_with("test result:")) {
        let count = |word: &str| -> u32 {
            line.split(';')
                .find(|part| part.trim_end().ends_with(word))
                .and_then(|part| part.split_whitespace().rev().nth(1))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0)
        };
        summary.passed += count("passed");
        summary.failed += count("failed");
    }
    summary
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn plan_runs_fmt_first_and_report_last() {
        let plan = TestCtx::new().branch("main").plan().unwrap();
        assert_eq!(plan.job_ids(), ["fmt", "clippy", "sdk-tests", "report"]);
        assert_eq!(plan.job("report").unwrap().depends_on, ["sdk-tests", "clippy"]);
    }

    #[test]
    fn counts_cargo_test_results() {
        let out = "test result: ok. 12 passed; 0 failed; 0 ignored\nnoise\ntest result: FAILED. 3 passed; 2 failed; 1 ignored";
        assert_eq!(summarize(out), TestSummary { passed: 15, failed: 2 });
    }
}
