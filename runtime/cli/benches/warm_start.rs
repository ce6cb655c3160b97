//! Time from `monkeyci build run` to the first job start, for an unchanged, already compiled
//! pipeline, against the cheapest alternative that asks cargo: a no-op `cargo build` of the
//! same crate (what a runner that always invokes cargo pays before anything starts).
//!
//! Target: under 100 ms to the first job start. Run with `cargo bench -p monkeyci
//! --bench warm_start`; it prints a table and ratios, and never fails on timings.

// A benchmark is a tool, not a test to clippy: it panics on setup failures, as tests do.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const RUNS: usize = 15;

fn main() {
    let bin = env!("CARGO_BIN_EXE_monkeyci");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/single-job").canonicalize().unwrap();
    let cache = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-pipelines");
    let events = cache.join("events.jsonl");
    std::fs::create_dir_all(&cache).unwrap();

    // Compile once; the measured runs find the binary in the cache.
    run_monkeyci(bin, &example, &cache, &events);

    let mut to_first_job = Vec::new();
    let mut whole_run = Vec::new();
    for _ in 0..RUNS {
        let started_ms = now_ms();
        let started = Instant::now();
        run_monkeyci(bin, &example, &cache, &events);
        whole_run.push(started.elapsed());
        let first_start = first_job_start(&events).expect("the build started a job");
        to_first_job.push(Duration::from_millis(first_start.saturating_sub(started_ms)));
    }

    let mut cargo_noop = Vec::new();
    for _ in 0..RUNS {
        let started = Instant::now();
        let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--quiet", "--manifest-path"])
            .arg(example.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(cache.join("target"))
            .env("CARGO_INCREMENTAL", "0")
            .stdout(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        cargo_noop.push(started.elapsed());
    }

    let ours = median(&mut to_first_job);
    let whole = median(&mut whole_run);
    let peer = median(&mut cargo_noop);
    println!("warm start of examples/single-job, median of {RUNS} runs");
    println!("{:<46} {:>10}", "measure", "median");
    println!("{:<46} {:>8.1}ms", "monkeyci build run -> first job/start", ms(ours));
    println!("{:<46} {:>8.1}ms", "monkeyci build run, whole (1 job)", ms(whole));
    println!("{:<46} {:>8.1}ms", "peer: no-op `cargo build` of the same crate", ms(peer));
    println!("ratio first-job-start / no-op cargo build: {:.2}x", ms(ours) / ms(peer));
    let verdict = if ours < Duration::from_millis(100) { "PASS" } else { "MISS" };
    println!("target < 100 ms to first job start: {verdict} ({:.1} ms)", ms(ours));
}

fn run_monkeyci(bin: &str, example: &Path, cache: &Path, events: &Path) {
    let status = Command::new(bin)
        .args(["build", "run", "--plain", "--events"])
        .arg(events)
        .arg(example)
        .env("MONKEYCI_CACHE_DIR", cache)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "monkeyci build run failed");
}

fn first_job_start(events: &Path) -> Option<u64> {
    std::fs::read_to_string(events).ok()?.lines().find_map(|line| {
        let event: serde_json::Value = serde_json::from_str(line).ok()?;
        (event["type"] == "job/start").then(|| event["time"].as_u64()).flatten()
    })
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
