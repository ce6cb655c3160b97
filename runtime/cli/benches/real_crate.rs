//! A real crate's CI, warm: a `.monkeyci` pipeline running what its GitHub workflow would
//! (`cargo build`, `cargo test`, `cargo clippy` where it is installed, `cargo doc`) as one
//! container job on the host shell engine, with a `target` cache keyed on `Cargo.lock`, against
//! the same commands run by hand one after another in a copy of the checkout.
//!
//! The crate is `semver` from crates.io (pure Rust, no dependencies, real tests): a throwaway
//! project depends on it, `cargo fetch` downloads it, and its source is copied from cargo's
//! registry into a git repository of its own. `~/.cargo/registry` is the user's, not cached.
//! Each side runs once cold (not measured: the pipeline compiles, the cache is saved, the
//! copy's `target/` fills), then `RUNS` warm runs are measured. Printed: the median wall time
//! of each side, the CPU-seconds of all their processes (`getrusage(RUSAGE_CHILDREN)`), the
//! ratios, and whether cargo found anything to rebuild in the warm pipeline (`cargo -v` lines
//! saying `Dirty`). Target: within 1.1x of by hand. Timings never fail the bench.
//!
//! Without crates.io (no network, no registry) it prints `skipped: ...` and exits 0. Run with
//! `cargo bench -p monkeyci --bench real_crate`.

// A benchmark is a tool, not a test to clippy: it panics on setup failures, as tests do.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{children_cpu_seconds, median, median_duration};

/// The crate, and the version requirement fetched.
const CRATE: (&str, &str) = ("semver", "=1.0.26");
const RUNS: usize = 3;

fn main() {
    let bin = env!("CARGO_BIN_EXE_monkeyci");
    let workspace = common::workspace();
    // Outside the workspace: a crate below it would be taken for one of its members.
    let tmp = tempfile::Builder::new().prefix("monkeyci-real-crate-").tempdir().unwrap();
    // The pipeline cache is kept between bench runs, so the sdk compiles once; outside the
    // workspace too, since jobs work below it.
    let cache = std::env::temp_dir().join("monkeyci-bench-real-crate-cache");

    let source = match fetch_crate(tmp.path()) {
        Ok(source) => source,
        Err(reason) => {
            println!("skipped: cannot get `{}` from crates.io: {reason}", CRATE.0);
            return;
        }
    };
    let clippy = cargo(["clippy", "--version"], tmp.path()).is_ok();
    let mut commands = vec!["cargo build", "cargo test"];
    if clippy {
        commands.push("cargo clippy --lib --tests");
    }
    commands.push("cargo doc --no-deps");

    let repo = tmp.path().join("repo");
    copy_tree(&source, &repo);
    // The crate's own lock file is what the cache is keyed on; a crate without one gets one.
    if !repo.join("Cargo.lock").exists() {
        cargo(["generate-lockfile"], &repo).unwrap();
    }
    std::fs::write(repo.join(".gitignore"), "/target\n").unwrap();
    pipeline(&repo, &workspace, &commands);
    git(&repo, &["init", "-q", "-b", "main"]);
    git(&repo, &["add", "-A"]);
    git(&repo, &["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-qm", "import"]);
    let by_hand = tmp.path().join("by-hand");
    copy_tree(&repo, &by_hand);

    // Cold, not measured.
    let cold = run_pipeline(bin, &repo, &cache, false);
    run_by_hand(&commands, &by_hand, false);
    println!("cold pipeline run (compiles the pipeline, saves the cache): {:.1} s", cold.wall.as_secs_f64());

    let mut ours = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..RUNS {
        ours.push(run_pipeline(bin, &repo, &cache, false));
        peer.push(run_by_hand(&commands, &by_hand, false));
    }
    // One more run of each asks cargo why it rebuilds anything (`-v`): not measured.
    let verbose = run_pipeline(bin, &repo, &cache, true);
    let dirty: Vec<&str> = verbose.output.lines().filter(|l| l.contains("Dirty")).collect();
    let fresh = verbose.output.lines().filter(|l| l.contains("Fresh")).count();
    let peer_verbose = run_by_hand(&commands, &by_hand, true);
    let peer_dirty = peer_verbose.output.lines().filter(|l| l.contains("Dirty")).count();

    let wall = |runs: &[Run]| median_duration(&mut runs.iter().map(|r| r.wall).collect::<Vec<_>>());
    let cpu = |runs: &[Run]| median(&runs.iter().map(|r| r.cpu).collect::<Vec<_>>());
    let (ours_wall, peer_wall) = (wall(&ours), wall(&peer));
    let (ours_cpu, peer_cpu) = (cpu(&ours), cpu(&peer));
    println!(
        "warm `{}` {} ({}), median of {RUNS} runs: {}",
        CRATE.0,
        CRATE.1,
        if clippy { "with clippy" } else { "clippy is not installed" },
        commands.join("; ")
    );
    println!("{:<52} {:>9} {:>9}", "", "wall", "CPU");
    println!(
        "{:<52} {:>7.2} s {:>7.2} s",
        "monkeyci build run, shell engine, target cache",
        ours_wall.as_secs_f64(),
        ours_cpu
    );
    println!("{:<52} {:>7.2} s {:>7.2} s", "peer: the same commands by hand", peer_wall.as_secs_f64(), peer_cpu);
    let ratio = ours_wall.as_secs_f64() / peer_wall.as_secs_f64();
    println!("ratio ours/by hand: wall {ratio:.2}x, CPU {:.2}x", ours_cpu / peer_cpu);
    println!("cargo -v in the warm pipeline: {} Dirty, {fresh} Fresh (by hand: {peer_dirty} Dirty)", dirty.len());
    for line in dirty.iter().take(5) {
        println!("  {}", line.trim());
    }
    // Where the warm pipeline's time goes: the job's own lines, timed (not cargo's).
    println!("timeline of the last (verbose) pipeline run:");
    for line in verbose.output.lines().filter(|l| l.contains(" [ci] ") && !l.contains(" [ci] ! ")) {
        println!("  {line}");
    }
    let verdict = if ratio <= 1.1 { "PASS" } else { "MISS" };
    println!("target within 1.1x of by hand: {verdict} ({ratio:.2}x)");
}

/// Downloads the crate with `cargo fetch` into the user's registry; returns its source there.
fn fetch_crate(tmp: &Path) -> Result<PathBuf, String> {
    let fetcher = tmp.join("fetcher");
    std::fs::create_dir_all(fetcher.join("src")).unwrap();
    std::fs::write(
        fetcher.join("Cargo.toml"),
        format!(
            "[package]\nname = \"fetcher\"\nversion = \"0.0.0\"\nedition = \"2021\"\n\n[dependencies]\n{} = \"{}\"\n\n\
             [workspace]\n",
            CRATE.0, CRATE.1
        ),
    )
    .unwrap();
    std::fs::write(fetcher.join("src/lib.rs"), "").unwrap();
    cargo(["fetch", "--quiet"], &fetcher)?;
    let metadata = cargo(["metadata", "--format-version", "1", "--offline"], &fetcher)?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata).map_err(|e| e.to_string())?;
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == CRATE.0)
        .and_then(|p| p["manifest_path"].as_str())
        .ok_or("cargo metadata does not list it")?;
    Ok(Path::new(manifest).parent().unwrap().to_owned())
}

/// Runs cargo with `args` in `dir`; its stdout, or why it failed.
fn cargo<const N: usize>(args: [&str; N], dir: &Path) -> Result<String, String> {
    let out = Command::new("cargo").args(args).current_dir(dir).output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).trim().lines().last().unwrap_or_default().to_owned());
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").args(args).current_dir(dir).status().unwrap();
    assert!(status.success(), "git {args:?} failed");
}

/// Copies the files of `from` into `to` (links as links); mtimes are not kept, as a fresh
/// clone's are not.
fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_tree(&entry.path(), &dest);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(entry.path()).unwrap(), dest).unwrap();
        } else {
            std::fs::copy(entry.path(), dest).unwrap();
        }
    }
}

/// The pipeline crate: one container job running `commands`, with a `target` cache keyed on
/// `Cargo.lock`. Its `-v` variant (from `MONKEYCI_BENCH_VERBOSE` in a build parameter) passes
/// `-v` to cargo.
fn pipeline(repo: &Path, workspace: &Path, commands: &[&str]) {
    let main = format!(
        r#"use monkeyci_sdk::prelude::*;

const COMMANDS: &[&str] = &{commands:?};

#[job]
fn ci(_ctx: &Ctx) -> ContainerJob {{
    let verbose = std::env::var_os("MONKEYCI_BENCH_VERBOSE").is_some();
    let lines: Vec<String> =
        COMMANDS.iter().map(|c| if verbose {{ format!("{{c}} -v") }} else {{ c.to_string() }}).collect();
    container("rust").script(lines).cache(cache("target", "target").key_files(["Cargo.lock"]))
}}

monkeyci_sdk::main!();
"#
    );
    common::write_pipeline(&repo.join(".monkeyci"), workspace, "bench-real-crate", "", &main);
}

/// One run of a side: its wall time, the CPU-seconds of the processes it waited for, and what
/// it printed.
struct Run {
    wall: Duration,
    cpu: f64,
    output: String,
}

fn run_pipeline(bin: &str, repo: &Path, cache: &Path, verbose: bool) -> Run {
    let mut cmd = Command::new(bin);
    cmd.args(["build", "run", "--plain", "--engine", "shell", "--suspend", "never"]).arg(repo);
    cmd.env("MONKEYCI_CACHE_DIR", cache);
    if verbose {
        cmd.env("MONKEYCI_BENCH_VERBOSE", "1");
    }
    measured(cmd, "monkeyci build run")
}

fn run_by_hand(commands: &[&str], dir: &Path, verbose: bool) -> Run {
    let script = commands.iter().map(|c| if verbose { format!("{c} -v") } else { c.to_string() });
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-ec").arg(script.collect::<Vec<_>>().join("\n")).current_dir(dir).env_clear();
    // The variables the shell engine passes on to a job: the peer runs with the same.
    cmd.envs(monkeyci_jobs::hostenv::host_job_vars());
    measured(cmd, "the commands by hand")
}

fn measured(mut cmd: Command, what: &str) -> Run {
    let cpu_before = children_cpu_seconds();
    let started = Instant::now();
    let out = cmd.stdin(Stdio::null()).output().unwrap();
    let wall = started.elapsed();
    let output = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{what} failed:\n{output}");
    Run { wall, cpu: children_cpu_seconds() - cpu_before, output }
}
