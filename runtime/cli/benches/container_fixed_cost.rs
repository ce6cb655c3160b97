//! The fixed cost of a container job, against a build tool running the same commands in the
//! same run.
//!
//! N container jobs running `true` on the shell engine, through the real `monkeyci build run
//! --max-parallel 2`, against the same N action jobs each calling `ctx.shell("true")`, and
//! against `ninja -j2` running N `true` commands (`make -j2`, else `xargs -P2`, when ninja is
//! missing: it says so). Each build's time per job is its time minus that of the same pipeline
//! with no job but one no-op action (the build's own start and end); CPU is user + system of
//! this process's children (`getrusage(RUSAGE_CHILDREN)`), monkeyci and everything it waited
//! for. Medians of `RUNS`. The jobs are independent, so two run at once, as ninja's do.
//! Target: container jobs within 1.5x of ninja. Never fails on timings.
//!
//! With `MONKEYCI_BENCH_LARGE=1` it also runs one container job in a checkout of about 1 GiB
//! (four files of 224 MiB, untracked, and 10,000 of 12.5 KiB, committed; made once under the
//! target dir) and prints its time over the same job in the small checkout, the disk its
//! workspace takes, and the file system it is on.
//!
//! Run with `cargo bench -p monkeyci --bench container_fixed_cost` (`-- 200` for N = 200;
//! default 1000).

// A benchmark is a tool, not a test to clippy: it panics on setup failures, as tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{children_cpu_seconds, median};

const RUNS: usize = 3;
const PACKAGE: &str = "bench-fixed-cost";

/// The pipeline: `FIXED_COST_KIND` (`container`, `action` or anything else for none) and
/// `FIXED_COST_COUNT` jobs of it, from the environment the script inherits.
const PIPELINE: &str = r#"use monkeyci_sdk::prelude::*;

#[pipeline]
fn bench(_ctx: &Ctx) -> Vec<Job> {
    let count: usize = std::env::var("FIXED_COST_COUNT").ok().and_then(|n| n.parse().ok()).unwrap_or(0);
    match std::env::var("FIXED_COST_KIND").unwrap_or_default().as_str() {
        "container" => (0..count)
            .map(|i| Job::container(format!("c{i}"), container("localhost/monkeyci-test/busybox").script(["true"])))
            .collect(),
        "action" => (0..count)
            .map(|i| {
                Job::action(format!("a{i}"), |ctx: Ctx| async move {
                    ctx.shell("true").await?;
                    Ok(())
                })
            })
            .collect(),
        _ => vec![Job::action("none", |_ctx: Ctx| async { Ok(()) })],
    }
}

monkeyci_sdk::main!();
"#;

fn main() {
    let jobs: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(1000);
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("container-fixed-cost");
    let bench = Bench { monkeyci: env!("CARGO_BIN_EXE_monkeyci"), cache: root.join("cache") };
    let repo = git_repo(&root.join("repo"), &[]);
    bench.compile(&repo);

    let mut rows: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    let mut sample = |label: &str, f: &mut dyn FnMut() -> (Duration, f64)| {
        let (mut wall, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..RUNS {
            let (took, used) = f();
            wall.push(took.as_secs_f64());
            cpu.push(used);
        }
        rows.push((label.to_owned(), wall, cpu));
    };
    sample("monkeyci, no job (the build's own cost)", &mut || bench.run(&repo, "none", 0));
    sample(&format!("monkeyci, {jobs} container jobs `true` (shell engine)"), &mut || {
        bench.run(&repo, "container", jobs)
    });
    sample(&format!("monkeyci, {jobs} action jobs `ctx.shell(\"true\")`"), &mut || bench.run(&repo, "action", jobs));
    let (peer, mut peer_run) = peer(&root.join("peer"), jobs);
    sample(&format!("peer: {peer} running {jobs} `true`"), &mut *peer_run);

    let med = |i: usize| (median(&rows[i].1), median(&rows[i].2));
    let (base, base_cpu) = med(0);
    let (peer_wall, peer_cpu) = med(3);
    println!("{jobs} jobs, two at a time, median of {RUNS} runs");
    println!("{:<58} {:>9} {:>9} {:>11} {:>11}", "", "wall", "CPU", "ms per job", "CPU ms/job");
    for (i, (label, wall, cpu)) in rows.iter().enumerate() {
        let (wall, cpu) = (median(wall), median(cpu));
        let (per_job, cpu_per_job) = match i {
            0 => (f64::NAN, f64::NAN),
            3 => (wall * 1000.0 / jobs as f64, cpu * 1000.0 / jobs as f64),
            _ => ((wall - base) * 1000.0 / jobs as f64, (cpu - base_cpu) * 1000.0 / jobs as f64),
        };
        println!("{label:<58} {wall:>8.2}s {cpu:>8.2}s {per_job:>11.2} {cpu_per_job:>11.2}");
    }
    for (i, what) in [(1, "container jobs"), (2, "action jobs")] {
        let (wall, cpu) = med(i);
        println!(
            "{what} / {peer}: {:.2}x the time, {:.2}x the CPU (builds minus the build's own cost: {:.2}x, {:.2}x)",
            wall / peer_wall,
            cpu / peer_cpu,
            (wall - base) / peer_wall,
            (cpu - base_cpu) / peer_cpu,
        );
    }
    let verdict = if (med(1).0 - base) / peer_wall <= 1.5 { "PASS" } else { "MISS" };
    println!("target: container jobs (minus the build's own cost) within 1.5x of {peer}: {verdict}");

    if std::env::var_os("MONKEYCI_BENCH_LARGE").is_some_and(|v| v == "1") {
        large_checkout(&bench, &root, &repo);
    } else {
        println!("(set MONKEYCI_BENCH_LARGE=1 to measure a container job in a 1 GiB checkout)");
    }
}

struct Bench {
    monkeyci: &'static str,
    cache: PathBuf,
}

impl Bench {
    /// Compiles the pipeline (a minute or two the first time: the sdk), not measured.
    fn compile(&self, repo: &Path) {
        let started = Instant::now();
        let out = Command::new(self.monkeyci)
            .args(["build", "verify"])
            .arg(repo)
            .env("MONKEYCI_CACHE_DIR", &self.cache)
            .output()
            .unwrap();
        assert!(out.status.success(), "the pipeline does not compile: {}", String::from_utf8_lossy(&out.stderr));
        println!("(pipeline compiled or found in the cache in {:.1} s; not measured)", started.elapsed().as_secs_f64());
    }

    /// One build of `count` jobs of `kind` in `repo`: its time and CPU.
    fn run(&self, repo: &Path, kind: &str, count: usize) -> (Duration, f64) {
        let (started, cpu) = (Instant::now(), children_cpu_seconds());
        let out = Command::new(self.monkeyci)
            .args(["build", "run", "--plain", "--engine", "shell", "--suspend", "never", "--max-parallel", "2"])
            .arg(repo)
            .env("MONKEYCI_CACHE_DIR", &self.cache)
            .env("FIXED_COST_KIND", kind)
            .env("FIXED_COST_COUNT", count.to_string())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let took = (started.elapsed(), children_cpu_seconds() - cpu);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "monkeyci build run ({count} {kind}) failed in {}: {stderr}", repo.display());
        took
    }
}

/// A git repository at `dir` holding the pipeline crate and `tracked` (paths), committed.
fn git_repo(dir: &Path, tracked: &[&str]) -> PathBuf {
    common::write_pipeline(&dir.join(".monkeyci"), &common::workspace(), PACKAGE, "", PIPELINE);
    if !dir.join(".git").exists() {
        git(dir, &["init", "-q", "-b", "main"]);
    }
    std::fs::write(dir.join(".gitignore"), "/.monkeyci/target/\n").unwrap();
    git(dir, &[&["add", ".monkeyci", ".gitignore"], tracked].concat());
    let clean = Command::new("git").arg("-C").arg(dir).args(["diff", "--cached", "--quiet"]).status().unwrap();
    if !clean.success() {
        git(dir, &["-c", "user.name=bench", "-c", "user.email=bench@localhost", "commit", "-q", "-m", "pipeline"]);
    }
    dir.to_owned()
}

fn git(dir: &Path, args: &[&str]) {
    let status = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap();
    assert!(status.success(), "git {args:?} in {}", dir.display());
}

/// The peer, ninja if it is installed (else make, else xargs), and a run of it.
type PeerRun = Box<dyn FnMut() -> (Duration, f64)>;

fn peer(dir: &Path, jobs: usize) -> (&'static str, PeerRun) {
    std::fs::create_dir_all(dir).unwrap();
    let works = |program: &str| {
        Command::new(program).arg("--version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok()
    };
    let timed = |mut cmd: Command| -> PeerRun {
        Box::new(move || {
            let (started, cpu) = (Instant::now(), children_cpu_seconds());
            let status = cmd.stdout(Stdio::null()).status().unwrap();
            assert!(status.success(), "the peer failed");
            (started.elapsed(), children_cpu_seconds() - cpu)
        })
    };
    if works("ninja") {
        // No outputs: ninja runs every edge each time.
        let mut text = String::from("rule run\n  command = true\n");
        for i in 0..jobs {
            text.push_str(&format!("build j{i}: run\n"));
        }
        std::fs::write(dir.join("build.ninja"), text).unwrap();
        let mut cmd = Command::new("ninja");
        cmd.args(["-j2", "-C"]).arg(dir);
        return ("ninja -j2", timed(cmd));
    }
    println!("ninja is missing (`apt-get install ninja-build`): the peer is make -j2, or xargs -P2");
    if works("make") {
        let names: Vec<String> = (0..jobs).map(|i| format!("j{i}")).collect();
        let text = format!(".PHONY: all {0}\nall: {0}\n$(filter j%,{0}):\n\ttrue\n", names.join(" "));
        std::fs::write(dir.join("Makefile"), text).unwrap();
        let mut cmd = Command::new("make");
        cmd.args(["-s", "-j2", "-C"]).arg(dir);
        return ("make -j2", timed(cmd));
    }
    let list = dir.join("list");
    std::fs::write(&list, "true\n".repeat(jobs)).unwrap();
    let mut cmd = Command::new("xargs");
    cmd.args(["-P2", "-n1", "-a"]).arg(&list).arg("sh").arg("-c").arg("$0");
    ("xargs -P2", timed(cmd))
}

/// One container job in a checkout of about 1 GiB, against one in the small checkout.
fn large_checkout(bench: &Bench, root: &Path, small: &Path) {
    let repo = root.join("large-repo");
    fill_large(&repo);
    // The many small files committed: monkeyci hands the script the untracked ones in one
    // variable, which 10,000 paths make too long to start a process with.
    let large = git_repo(&repo, &["src"]);
    let (small_took, _) = bench.run(small, "container", 1);
    let jobs_before = job_dirs(&bench.cache);
    let (took, cpu) = bench.run(&large, "container", 1);
    let new: Vec<PathBuf> = job_dirs(&bench.cache).into_iter().filter(|d| !jobs_before.contains(d)).collect();
    let bytes: u64 = new.iter().map(|d| disk_bytes(&d.join("work"))).sum();
    let fs_type = |path: &Path| {
        let out = Command::new("stat").args(["-f", "-c", "%T"]).arg(path).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    println!("one container job `true` in a checkout of {:.2} GiB:", disk_bytes(&repo) as f64 / (1u64 << 30) as f64);
    println!(
        "  {:.2} s ({:.2} s CPU), against {:.2} s in the small checkout; its workspace takes {:.2} GiB of disk",
        took.as_secs_f64(),
        cpu,
        small_took.as_secs_f64(),
        bytes as f64 / (1u64 << 30) as f64
    );
    println!("  file systems: checkout {}, job directories {}", fs_type(&repo), fs_type(&bench.cache));
    for dir in new {
        std::fs::remove_dir_all(dir.join("work")).unwrap();
    }
}

/// Four files of 224 MiB and 10,000 of 12.5 KiB (made once).
fn fill_large(repo: &Path) {
    let done = repo.join(".filled");
    if done.exists() {
        return;
    }
    std::fs::create_dir_all(repo.join("data")).unwrap();
    let block: Vec<u8> = (0..(1u32 << 20)).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    for i in 0..4 {
        let mut file = std::fs::File::create(repo.join(format!("data/big-{i}.bin"))).unwrap();
        for _ in 0..224 {
            std::io::Write::write_all(&mut file, &block).unwrap();
        }
    }
    for dir in 0..100 {
        let sub = repo.join(format!("src/m{dir}"));
        std::fs::create_dir_all(&sub).unwrap();
        for i in 0..100 {
            std::fs::write(sub.join(format!("f{i}.rs")), &block[i * 1000..i * 1000 + 12_800]).unwrap();
        }
    }
    std::fs::write(done, "").unwrap();
}

/// The job directories of the builds in `cache`.
fn job_dirs(cache: &Path) -> Vec<PathBuf> {
    let Ok(builds) = std::fs::read_dir(cache.join("builds")) else { return Vec::new() };
    builds
        .flatten()
        .filter_map(|b| std::fs::read_dir(b.path().join("jobs")).ok())
        .flat_map(|jobs| jobs.flatten().map(|j| j.path()).collect::<Vec<_>>())
        .collect()
}

/// The disk blocks under `path` (`du`), in bytes.
fn disk_bytes(path: &Path) -> u64 {
    let out = Command::new("du").args(["-s", "-B1"]).arg(path).output().unwrap();
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().and_then(|n| n.parse().ok()).unwrap_or(0)
}
