//! `monkeyci init`: creates a working pipeline crate with one job and one unit test. It never
//! overwrites an existing pipeline and does not compile the new one.

use std::io::Write as _;
use std::path::Path;

use anyhow::{Context as _, bail};

use crate::args::InitArgs;
use crate::outcome::Outcome;

const CARGO_TOML: &str = r#"[package]
name = "pipeline"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
monkeyci-sdk = "0.1"

# The pipeline is its own workspace, even inside a repository that is one.
[workspace]
"#;

const MAIN_RS: &str = r#"//! The build pipeline of this repository. Run it with `monkeyci build run`,
//! test it with `monkeyci build test`.

use monkeyci_sdk::prelude::*;

/// Checks that the repository has a README.
#[job]
async fn check_readme(ctx: &Ctx) -> Result<u64> {
    let readme = ctx.checkout_dir().join("README.md");
    let size = std::fs::metadata(&readme).context("the repository has no README.md")?.len();
    ctx.log(format!("README.md has {size} bytes"));
    Ok(size)
}

monkeyci_sdk::main!();

#[cfg(test)]
mod tests {
    use monkeyci_sdk::testing::TestCtx;

    #[test]
    fn checks_the_readme_on_every_build() {
        let plan = TestCtx::new().branch("main").plan().unwrap();
        assert_eq!(plan.job_ids(), ["check-readme"]);
    }
}
"#;

pub(super) fn run(args: InitArgs) -> anyhow::Result<Outcome> {
    let dir = args.dir.join(".monkeyci");
    if dir.exists() {
        bail!("{} already exists; remove it first to start a new pipeline", dir.display());
    }
    write(&dir.join("Cargo.toml"), CARGO_TOML)?;
    write(&dir.join("src/main.rs"), MAIN_RS)?;
    write(&dir.join(".gitignore"), "/target\n")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "created {}: one job (check-readme) and one unit test", dir.display())?;
    writeln!(
        out,
        "run it with `monkeyci build run {}`; test it with `monkeyci build test {}`",
        args.dir.display(),
        args.dir.display()
    )?;
    Ok(Outcome::Success)
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(path, contents).with_context(|| format!("cannot write {}", path.display()))
}
