//! Which toolchain and environment each part of a build gets: the pipeline compiles with
//! MonkeyCI's toolchain whatever the repository pins, while its jobs (action jobs'
//! `ctx.shell`, host-shell container jobs) follow the repository's pin and get none of the
//! variables cargo and rustup set for MonkeyCI's own run (these tests run it under
//! `cargo test`, which sets them).

use crate::util::{BUSYBOX, MonkeyciCommand, TestRepo};

/// rustup's answer for a pinned toolchain that is not installed.
const NOT_INSTALLED: &str = "toolchain '1.71.0";

#[test]
fn a_repository_pinning_an_old_toolchain_still_compiles_its_pipeline_and_its_jobs_follow_the_pin() {
    let repo = TestRepo::with_pipeline(
        "toolchain_pin",
        &format!(
            r#"
use monkeyci_sdk::prelude::*;

const PEEK: &str = "echo \"pkg=${{CARGO_PKG_NAME:-unset}} dir=${{CARGO_MANIFEST_DIR:-unset}} source=${{RUSTUP_TOOLCHAIN_SOURCE:-unset}} auto=${{RUSTUP_AUTO_INSTALL:-unset}}\"; rustc --version 2>&1 | head -1";

#[job]
async fn action(ctx: &Ctx) -> Result<()> {{
    ctx.shell(PEEK).await?;
    Ok(())
}}

#[job]
fn host(_ctx: &Ctx) -> ContainerJob {{
    container("{BUSYBOX}").script([PEEK])
}}

monkeyci_sdk::main!();
"#
        ),
    );
    // An old MSRV pin, not installed here: the pipeline (edition 2024) could not compile
    // with it, and rustup must not download it.
    repo.write("rust-toolchain.toml", "[toolchain]\nchannel = \"1.71.0\"\n");
    repo.commit("pin an old toolchain");
    // Run as an installed `monkeyci` is, outside cargo: with no toolchain in the environment,
    // rustup's default compiles the pipeline.
    let installed = |cmd: MonkeyciCommand| {
        cmd.env("RUSTUP_AUTO_INSTALL", "0")
            .env_remove("RUSTUP_TOOLCHAIN")
            .env_remove("RUSTUP_TOOLCHAIN_SOURCE")
            .env_remove("CARGO")
    };
    let out = installed(MonkeyciCommand::run(repo.path()).args(["--engine", "shell"])).output();
    out.assert_code(0);
    for job in ["action", "host"] {
        let log = out.log(job);
        assert_eq!(log.first().copied(), Some("pkg=unset dir=unset source=unset auto=0"), "{job}: {out:?}");
        assert!(log.iter().any(|l| l.contains(NOT_INSTALLED)), "{job} follows the repository's pin: {out:?}");
    }
}

#[test]
fn a_toolchain_file_of_the_pipelines_own_chooses_its_toolchain() {
    let repo = TestRepo::with_pipeline(
        "toolchain_own",
        r#"
use monkeyci_sdk::prelude::*;

#[job]
async fn noop(ctx: &Ctx) -> Result<()> {
    ctx.log("ran");
    Ok(())
}

monkeyci_sdk::main!();
"#,
    );
    // The pipeline's own pin wins over the toolchain MonkeyCI runs with: this one is not
    // installed, so compiling fails saying so.
    repo.write(".monkeyci/rust-toolchain.toml", "[toolchain]\nchannel = \"1.71.0\"\n");
    repo.commit("pin the pipeline's toolchain");
    let out = MonkeyciCommand::run(repo.path()).env("RUSTUP_AUTO_INSTALL", "0").output();
    out.assert_code(2);
    assert!(out.stderr.contains(NOT_INSTALLED), "{out:?}");
}
