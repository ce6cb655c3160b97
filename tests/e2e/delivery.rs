//! Nothing lost, nothing misreported (issue "hardening"): every event a pipeline reports
//! reaches the build exactly once, however much it logs; an output the build API could not
//! take fails its job at the source; and bytes that are not UTF-8 on the pipeline's own
//! stdout neither stop its output nor break its pipe.

use monkeyci_protocol::{BuildStatus, JobStatus};

use crate::util::{MonkeyciCommand, TestRepo};

/// 3,000 `ctx.log` lines of 8 KB (24 MB of events): 2,500 of them were lost and the build still
/// said success. Each arrives once, in order.
#[test]
fn thousands_of_large_log_lines_all_arrive_exactly_once() {
    let main_rs = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn chatty(ctx: &Ctx) -> Result<()> {
    let filler = "x".repeat(8 * 1024);
    for i in 0..3000 {
        ctx.log(format!("{i:04} {filler}"));
    }
    Ok(())
}

monkeyci_sdk::main!();
"#;
    let repo = TestRepo::with_pipeline("delivery_logs", main_rs);
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    let log = out.log("chatty");
    let numbers: Vec<&str> = log.iter().map(|line| line.split(' ').next().unwrap_or_default()).collect();
    let expected: Vec<String> = (0..3000).map(|i| format!("{i:04}")).collect();
    assert_eq!(numbers.len(), 3000, "{} lines arrived", numbers.len());
    assert!(numbers.iter().zip(&expected).all(|(got, want)| got == want), "lines lost, doubled or out of order");
    assert!(log.iter().all(|line| line.len() == 5 + 8 * 1024));
    assert_eq!(out.status("chatty"), Some(JobStatus::Success));
    assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Success));
    assert_eq!(out.events_of("script/end").len(), 1);
}

/// A `ctx.shell` printing 3 MB on one line, then 20,000 short lines: the job's end and
/// `script/end` were lost (the build exited 2, "stopped before the build ended").
#[test]
fn a_shell_step_printing_megabytes_still_ends_its_job_and_the_build() {
    let main_rs = r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn loud(ctx: &Ctx) -> Result<usize> {
    let out = ctx.shell("head -c 3145728 /dev/zero | tr '\\000' x; echo; seq 1 20000").await?;
    Ok(out.stdout.len())
}

monkeyci_sdk::main!();
"#;
    let repo = TestRepo::with_pipeline("delivery_shell", main_rs);
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert_eq!(out.status("loud"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Success));
    let log = out.log("loud");
    assert_eq!(log.len(), 20_001, "{} lines arrived", log.len());
    assert_eq!(log[0].len(), 3 * 1024 * 1024);
    assert!(log[1..].iter().enumerate().all(|(i, line)| *line == (i + 1).to_string()));
    let end = out.position("job/end", Some("loud")).unwrap();
    assert!(out.position("script/end", None).is_some_and(|script_end| script_end > end));
}

/// A job output nested 200 deep was refused by the build API (its JSON recursion limit) and
/// the build misreported. The job fails at the source, saying why; the other jobs' events stay.
#[test]
fn an_output_nested_too_deep_fails_its_job_saying_so() {
    let main_rs = r#"
use monkeyci_sdk::prelude::*;
use monkeyci_sdk::__private::serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize)]
#[serde(crate = "monkeyci_sdk::__private::serde")]
struct Nest(Vec<Nest>);

#[job]
async fn deep(_ctx: &Ctx) -> Result<Nest> {
    let mut nest = Nest(Vec::new());
    for _ in 1..200 {
        nest = Nest(vec![nest]);
    }
    Ok(nest)
}

#[job]
async fn fine(ctx: &Ctx) -> Result<()> {
    ctx.log("still here");
    Ok(())
}

monkeyci_sdk::main!();
"#;
    let repo = TestRepo::with_pipeline("delivery_deep", main_rs);
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(1);
    assert_eq!(out.status("deep"), Some(JobStatus::Failure), "{out:?}");
    let message = out.message("deep").unwrap_or_default();
    assert!(message.contains("nested deeper than 100 levels"), "{message:?}; {out:?}");
    assert_eq!(out.status("fine"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.log("fine"), ["still here"]);
    assert_eq!(out.build_end().map(|(status, _)| status), Some(BuildStatus::Failure), "{out:?}");
}

/// The pipeline printing `\xff` on its stdout stopped the controller reading it, and the next
/// `println!` panicked on the closed pipe. Every line arrives, the bad byte replaced.
#[test]
fn bytes_that_are_not_utf8_on_the_pipelines_stdout_stop_nothing() {
    let main_rs = r#"
use std::io::Write;
use monkeyci_sdk::prelude::*;

#[job]
async fn raw(_ctx: &Ctx) -> Result<()> {
    std::io::stdout().write_all(b"before\n\xff\nmid\xfedle\n").map_err(|err| JobError::msg(err.to_string()))?;
    for i in 0..200 {
        println!("after-{i}");
    }
    Ok(())
}

monkeyci_sdk::main!();
"#;
    let repo = TestRepo::with_pipeline("delivery_bytes", main_rs);
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert_eq!(out.status("raw"), Some(JobStatus::Success), "{out:?}");
    for line in ["[script] | before", "[script] | \u{fffd}\n", "[script] | mid\u{fffd}dle", "[script] | after-199"] {
        out.assert_stdout_contains(line);
    }
    let printed = out.stdout.lines().filter(|line| line.contains("[script] | after-")).count();
    assert_eq!(printed, 200, "{out:?}");
}
