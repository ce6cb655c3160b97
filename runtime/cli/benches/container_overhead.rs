//! Per-container-job overhead of MonkeyCI over a bare `podman run` of the same command.
//!
//! A pipeline of N chained container jobs running `true`: the build's time minus that of the
//! same pipeline without them, per job, against N sequential `podman run` invocations with
//! the flags our engine uses. Run with
//! `cargo bench -p monkeyci --bench container_overhead`; it prints a table and ratios
//! and never fails on timings. Needs podman and `bash scripts/test-images.sh`.

// A benchmark is a tool, not a test to clippy: it panics on setup failures, as tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::median_duration as median;

const JOBS: usize = 8;
const IMAGE: &str = "localhost/monkeyci-test/busybox";

fn main() {
    let podman = Command::new("podman").args(["image", "exists", IMAGE]).status().is_ok_and(|s| s.success());
    if !podman {
        println!("skipped: podman or the image {IMAGE} is missing (run `bash scripts/test-images.sh`)");
        return;
    }
    let bin = env!("CARGO_BIN_EXE_monkeyci");
    let workspace = common::workspace();
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("container-overhead");
    let cache = root.join("cache");
    let with_jobs = pipeline(&root.join("with-jobs"), &workspace, JOBS);
    let without = pipeline(&root.join("without"), &workspace, 0);

    // Compile both once; the measured runs start from the binary cache.
    for dir in [&with_jobs, &without] {
        run_build(bin, dir, &cache);
    }
    let mut ours = Vec::new();
    let mut base = Vec::new();
    let mut peer = Vec::new();
    for _ in 0..3 {
        base.push(run_build(bin, &without, &cache));
        ours.push(run_build(bin, &with_jobs, &cache));
        let volume = root.join("volume");
        std::fs::create_dir_all(&volume).unwrap();
        let started = Instant::now();
        for i in 0..JOBS {
            let status = Command::new("podman")
                .args(["run", "--rm", "--init", "--name", &format!("mci-bench-{i}"), "--network", "none"])
                .args(["--cpus", "1", "--memory", "2g", "-v", &format!("{}:/monkeyci", volume.display())])
                .args(["-w", "/monkeyci", IMAGE, "/bin/sh", "-c", "true"])
                .stdout(Stdio::null())
                .status()
                .unwrap();
            assert!(status.success());
        }
        peer.push(started.elapsed());
    }
    let per_job = |total: Duration, base: Duration| total.saturating_sub(base).as_secs_f64() * 1000.0 / JOBS as f64;
    let ours_ms = per_job(median(&mut ours), median(&mut base));
    let peer_ms = median(&mut peer).as_secs_f64() * 1000.0 / JOBS as f64;
    println!("{JOBS} sequential container jobs running `true`, median of 3");
    println!("{:<52} {:>9.1} ms", "monkeyci, per container job (build minus empty build)", ours_ms);
    println!("{:<52} {:>9.1} ms", "peer: bare `podman run` with the same flags", peer_ms);
    println!("overhead per job: {:.1} ms; ratio ours/peer: {:.2}x", ours_ms - peer_ms, ours_ms / peer_ms);
}

/// A pipeline crate with `jobs` chained container jobs (or one trivial action job for none).
fn pipeline(dir: &Path, workspace: &Path, jobs: usize) -> PathBuf {
    let name = format!("bench-overhead-{jobs}");
    let main = format!(
        r#"use monkeyci_sdk::prelude::*;

#[pipeline]
fn chain(_ctx: &Ctx) -> Vec<Job> {{
    let mut jobs = vec![Job::action("start", |_ctx| async {{ Ok(()) }})];
    for i in 0..{jobs} {{
        let previous = if i == 0 {{ "start".to_owned() }} else {{ format!("c{{}}", i - 1) }};
        jobs.push(Job::container(format!("c{{i}}"), container({IMAGE:?}).script(["true"])).depends_on([previous]));
    }}
    jobs
}}

monkeyci_sdk::main!();
"#
    );
    common::write_pipeline(&dir.join(".monkeyci"), workspace, &name, "", &main);
    dir.to_owned()
}

fn run_build(bin: &str, dir: &Path, cache: &Path) -> Duration {
    let started = Instant::now();
    let status = Command::new(bin)
        .args(["build", "run", "--plain", "--engine", "podman", "--suspend", "never"])
        .arg(dir)
        .env("MONKEYCI_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "monkeyci build run failed in {}", dir.display());
    started.elapsed()
}
