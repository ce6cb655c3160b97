//! `ctx.shell` hardening: a command gets none of the script's credentials, ends with its
//! step (what it leaves running, what ignores SIGTERM, what runs when the script is killed),
//! and output that is not UTF-8 is kept. Planning stuck in pipeline code fails, naming it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use monkeyci_protocol::JobStatus;

use crate::util::{MonkeyciCommand, TestRepo, processes_running};

/// Waits up to `limit` for every process with exactly `argv` to be gone; those left.
fn left_after(argv: &[&str], limit: Duration) -> Vec<(u32, Vec<String>)> {
    let deadline = Instant::now() + limit;
    loop {
        let left = processes_running(argv);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn shell_commands_get_no_build_credentials() {
    let repo = TestRepo::with_pipeline(
        "shell_env",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn peek(ctx: &Ctx) -> Result<()> {
    ctx.shell("echo \"script=${MONKEYCI_SCRIPT:-unset}\"; env | grep -c '^MONKEYCI_SCRIPT=' || true").await?;
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert_eq!(out.log("peek"), ["script=unset", "0"], "{out:?}");
}

#[test]
fn shell_commands_end_with_their_step() {
    let repo = TestRepo::with_pipeline(
        "shell_group",
        r#"
use monkeyci_sdk::prelude::*;

#[job(timeout = "60s")]
async fn background(ctx: &Ctx) -> Result<()> {
    ctx.shell("sleep 123457 & echo started").await?;
    ctx.log("returned");
    Ok(())
}

#[job(timeout = "1s")]
async fn stubborn(ctx: &Ctx) -> Result<()> {
    ctx.shell("trap '' TERM; sleep 123458; echo never").await?;
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(1);
    assert_eq!(out.status("background"), Some(JobStatus::Success), "{out:?}");
    assert_eq!(out.log("background"), ["started", "returned"], "{out:?}");
    let took = out.end_time("background").unwrap() - out.start_time("background").unwrap();
    assert!(took < 10_000, "the step waited {took} ms for the process it left behind: {out:?}");
    assert_eq!(out.status("stubborn"), Some(JobStatus::Timeout), "{out:?}");
    assert_eq!(left_after(&["sleep", "123457"], Duration::from_secs(5)), Vec::<(u32, Vec<String>)>::new());
    assert_eq!(left_after(&["sleep", "123458"], Duration::from_secs(5)), Vec::<(u32, Vec<String>)>::new());
}

/// The parent pid of `pid`.
fn parent_of(pid: u32) -> Option<u32> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ")?.1.split(' ').nth(1)?.parse().ok()
}

#[test]
fn a_shell_command_dies_with_its_killed_script() {
    let repo = TestRepo::with_pipeline(
        "shell_killed",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn slow(ctx: &Ctx) -> Result<()> {
    ctx.shell("echo going; sleep 6.123459; echo done").await?;
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    // Once the command sleeps: kill -9 the script (the sleep's parent's parent), then watch
    // the sleep it had started.
    let killed: Arc<Mutex<Option<(u32, Instant)>>> = Arc::default();
    let outlived: Arc<Mutex<Option<u128>>> = Arc::default();
    let (kill, watch) = (Arc::clone(&killed), Arc::clone(&outlived));
    let out = MonkeyciCommand::run(repo.path())
        .interrupt_when(move || {
            let mut kill = kill.lock().unwrap();
            match *kill {
                None => {
                    if let Some((sleep, _)) = processes_running(&["sleep", "6.123459"]).first()
                        && let Some(script) = parent_of(*sleep).and_then(parent_of)
                    {
                        // SAFETY: kill(2) has no memory effects; the pid is this test's script.
                        unsafe { libc::kill(script as libc::pid_t, libc::SIGKILL) };
                        *kill = Some((*sleep, Instant::now()));
                    }
                }
                Some((sleep, at)) => {
                    let alive =
                        std::fs::read_to_string(format!("/proc/{sleep}/stat")).is_ok_and(|stat| !stat.contains(") Z "));
                    if alive && at.elapsed() > Duration::from_secs(2) {
                        watch.lock().unwrap().get_or_insert(at.elapsed().as_millis());
                    }
                }
            }
            false
        })
        .output();
    assert!(killed.lock().unwrap().is_some(), "the script was never killed: {out:?}");
    assert_eq!(*outlived.lock().unwrap(), None, "the command outlived its killed script: {out:?}");
    assert_eq!(out.status("slow"), Some(JobStatus::Success), "{out:?}");
}

#[test]
fn shell_output_that_is_not_utf8_is_kept() {
    let repo = TestRepo::with_pipeline(
        "shell_bytes",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn bytes(ctx: &Ctx) -> Result<()> {
    let out = ctx.shell(r"printf 'a\377b\n'; echo after").await?;
    ctx.log(format!("stdout {:?}", out.stdout));
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    let out = MonkeyciCommand::run(repo.path()).output();
    out.assert_code(0);
    assert_eq!(out.log("bytes"), ["a\u{fffd}b", "after", "stdout \"a\u{fffd}b\\nafter\\n\""], "{out:?}");
}

#[test]
fn a_when_condition_that_never_returns_fails_planning_naming_it() {
    let repo = TestRepo::with_pipeline(
        "shell_plan_limit",
        r#"
use monkeyci_sdk::prelude::*;

fn forever(_ctx: &Ctx) -> bool {
    loop {
        std::thread::sleep(std::time::Duration::from_secs(1));
    }
}

#[job]
async fn build(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

#[job(when = forever)]
async fn deploy(_ctx: &Ctx) -> Result<()> {
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    let said = "the `when` condition `forever` of job `deploy` did not return within 2 s";
    for command in [MonkeyciCommand::run(repo.path()), MonkeyciCommand::verify(repo.path())] {
        let started = Instant::now();
        let out = command.env("MONKEYCI_PLAN_TIMEOUT", "2").output();
        out.assert_code(2);
        assert!(format!("{}{}", out.stdout, out.stderr).contains(said), "{out:?}");
        assert!(out.started_jobs().is_empty(), "{out:?}");
        assert!(started.elapsed() < Duration::from_secs(240), "{out:?}");
    }
}
