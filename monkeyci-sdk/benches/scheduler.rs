//! Scheduler overhead per job, against plain tokio doing the same no-op work.
//!
//! A report, not a test: it always exits 0. Run it with
//! `cargo bench -p monkeyci-sdk --bench scheduler`.
//!
//! Scenarios, each with `JOBS` no-op action jobs:
//! - wide: every job independent. Peer: `tokio::spawn` every task, then await them all.
//! - chain: each job depends on the previous one. Peer: spawn a task, await its
//!   `JoinHandle`, then spawn the next.
//!
//! Ours is `TestCtx::run_jobs_async` (plan + run, events kept in memory) on the same
//! multi-thread runtime; building the `Vec<Job>` is outside the timed region. Planning alone
//! (`TestCtx::plan_jobs`) is timed separately for reference; it is included in ours.
//!
//! Each scenario runs from two places, peer and ours alike:
//! - `block_on`: the driving future is the runtime's `block_on` future, as in the script's
//!   `main` and `TestCtx::run`. Every spawned task runs on a worker thread, so each hop of a
//!   chain crosses threads twice (a futex wake each way), which dominates the chain's time.
//! - `worker`: the driving future is itself a spawned task, so tokio keeps a chain on one
//!   worker. This shows the scheduler's own CPU cost most clearly and is the least noisy.
//!
//! Peer and ours alternate within each iteration so drift on a shared machine hits both
//! alike; the "paired" figure is the median of the per-iteration differences. Allocations
//! are counted in one separate, untimed run (they do not depend on timing).
//!
//! `BENCH_ITERS` and `BENCH_WARMUP` override the iteration counts.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use monkeyci_sdk::testing::{TestCtx, TestRun};
use monkeyci_sdk::{Ctx, Job, JobError, PlanError};
use tokio::runtime::Runtime;

const JOBS: usize = 1_000;
const TARGET_US_PER_JOB: f64 = 10.0;

/// The system allocator, counting allocations while `COUNTING` is set.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded unchanged to `System`.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: the caller upholds `GlobalAlloc::alloc`'s contract.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if COUNTING.load(Ordering::Relaxed) {
            ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        }
        // SAFETY: `ptr` came from `System` with this layout; the caller upholds the rest.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: CountingAlloc = CountingAlloc;

/// Allocations made by `f`, from any thread.
fn count_allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    ALLOCATIONS.store(0, Ordering::Relaxed);
    COUNTING.store(true, Ordering::SeqCst);
    let out = f();
    COUNTING.store(false, Ordering::SeqCst);
    (ALLOCATIONS.load(Ordering::Relaxed), out)
}

#[derive(Clone, Copy)]
enum Shape {
    Wide,
    Chain,
}

impl Shape {
    fn name(self) -> &'static str {
        match self {
            Shape::Wide => "wide",
            Shape::Chain => "chain",
        }
    }
}

/// Where the timed future runs.
#[derive(Clone, Copy)]
enum Place {
    BlockOn,
    Worker,
}

impl Place {
    fn name(self) -> &'static str {
        match self {
            Place::BlockOn => "block_on",
            Place::Worker => "worker",
        }
    }

    /// Runs `fut` there and returns its output.
    fn run<F>(self, rt: &Runtime, fut: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        match self {
            Place::BlockOn => rt.block_on(fut),
            Place::Worker => rt.block_on(rt.spawn(fut)).expect("the benchmark task completes"),
        }
    }
}

fn jobs(shape: Shape) -> Vec<Job> {
    (0..JOBS)
        .map(|i| {
            let job = Job::action(format!("job-{i}"), |_ctx: Ctx| async move { Ok::<_, JobError>(()) });
            match shape {
                Shape::Chain if i > 0 => job.depends_on([format!("job-{}", i - 1)]),
                _ => job,
            }
        })
        .collect()
}

async fn peer(shape: Shape) {
    match shape {
        Shape::Wide => {
            let handles: Vec<_> = (0..JOBS).map(|_| tokio::spawn(async { black_box(()) })).collect();
            for handle in handles {
                handle.await.expect("no-op task");
            }
        }
        Shape::Chain => {
            for _ in 0..JOBS {
                tokio::spawn(async { black_box(()) }).await.expect("no-op task");
            }
        }
    }
}

fn time_peer(rt: &Runtime, shape: Shape, place: Place) -> Duration {
    place.run(rt, async move {
        let started = Instant::now();
        peer(shape).await;
        started.elapsed()
    })
}

/// Runs the jobs of `shape` with our scheduler; the run's result is dropped untimed.
fn time_ours(rt: &Runtime, shape: Shape, place: Place) -> Duration {
    let ctx = TestCtx::new();
    let jobs = jobs(shape);
    let (elapsed, run) = place.run(rt, async move {
        let started = Instant::now();
        let run = ctx.run_jobs_async(jobs).await;
        (started.elapsed(), run)
    });
    check(run);
    elapsed
}

fn check(run: Result<TestRun, PlanError>) {
    let run = run.expect("the benchmark jobs plan");
    assert!(run.succeeded(), "the benchmark jobs succeed");
}

fn time_plan(shape: Shape) -> Duration {
    let ctx = TestCtx::new();
    let jobs = jobs(shape);
    let started = Instant::now();
    let plan = ctx.plan_jobs(jobs);
    let elapsed = started.elapsed();
    assert_eq!(plan.expect("the benchmark jobs plan").jobs.len(), JOBS);
    elapsed
}

struct Stats {
    median: Duration,
    min: Duration,
}

impl Stats {
    fn of(mut samples: Vec<Duration>) -> Stats {
        samples.sort();
        let n = samples.len();
        Stats { median: (samples[(n - 1) / 2] + samples[n / 2]) / 2, min: samples[0] }
    }
}

struct Row {
    shape: Shape,
    place: Place,
    peer: Stats,
    ours: Stats,
    plan: Stats,
    /// Median over iterations of `ours - peer`, in µs per job: less sensitive to load that
    /// changes between iterations than the difference of the medians.
    paired_us: f64,
}

fn measure(rt: &Runtime, shape: Shape, place: Place, warmup: usize, iters: usize) -> Row {
    for _ in 0..warmup {
        time_peer(rt, shape, place);
        time_ours(rt, shape, place);
        time_plan(shape);
    }
    let (mut peer, mut ours, mut plan) = (Vec::new(), Vec::new(), Vec::new());
    let mut paired = Vec::new();
    for i in 0..iters {
        // Alternate which goes first, so neither always runs on a warmer cache.
        if i.is_multiple_of(2) {
            peer.push(time_peer(rt, shape, place));
            ours.push(time_ours(rt, shape, place));
        } else {
            ours.push(time_ours(rt, shape, place));
            peer.push(time_peer(rt, shape, place));
        }
        plan.push(time_plan(shape));
        paired.push(per_job_us(ours[i], peer[i]));
    }
    paired.sort_by(f64::total_cmp);
    let paired_us = (paired[(iters - 1) / 2] + paired[iters / 2]) / 2.0;
    Row { shape, place, peer: Stats::of(peer), ours: Stats::of(ours), plan: Stats::of(plan), paired_us }
}

/// Allocations per job of the peer and of ours (plan + run), from `block_on`.
fn allocations_per_job(rt: &Runtime, shape: Shape) -> (f64, f64) {
    let (peer, ()) = count_allocations(|| rt.block_on(peer(shape)));
    let ctx = TestCtx::new();
    let jobs = jobs(shape);
    let (ours, run) = count_allocations(|| rt.block_on(ctx.run_jobs_async(jobs)));
    check(run);
    (peer as f64 / JOBS as f64, ours as f64 / JOBS as f64)
}

fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).filter(|&n| n > 0).unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

/// Overhead per job in microseconds.
fn per_job_us(ours: Duration, peer: Duration) -> f64 {
    (ours.as_secs_f64() - peer.as_secs_f64()) * 1e6 / JOBS as f64
}

fn verdict(overhead_us: f64) -> &'static str {
    if overhead_us < TARGET_US_PER_JOB { "PASS" } else { "MISS" }
}

fn main() {
    let warmup = env_count("BENCH_WARMUP", 5);
    let iters = env_count("BENCH_ITERS", 31);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("a tokio runtime");
    let workers = rt.metrics().num_workers();

    println!(
        "scheduler overhead: {JOBS} no-op action jobs; multi-thread runtime with {workers} workers; \
         {warmup} warm-up + {iters} measured iterations"
    );
    let mut rows = Vec::new();
    for shape in [Shape::Wide, Shape::Chain] {
        for place in [Place::BlockOn, Place::Worker] {
            rows.push(measure(&rt, shape, place, warmup, iters));
        }
    }

    println!();
    println!(
        "{:<15} {:>6} {:>11} {:>11} {:>11} {:>14} {:>9} {:>6}",
        "scenario", "stat", "peer", "ours", "(plan)", "overhead/job", "ours/peer", "target"
    );
    for row in &rows {
        let scenario = format!("{}/{}", row.shape.name(), row.place.name());
        for (stat, peer, ours, plan) in [
            ("median", row.peer.median, row.ours.median, row.plan.median),
            ("min", row.peer.min, row.ours.min, row.plan.min),
        ] {
            let overhead = per_job_us(ours, peer);
            let ratio = ours.as_secs_f64() / peer.as_secs_f64();
            println!(
                "{:<15} {:>6} {:>11} {:>11} {:>11} {:>11.2} µs {:>8.1}x {:>6}",
                scenario,
                stat,
                ms(peer),
                ms(ours),
                ms(plan),
                overhead,
                ratio,
                verdict(overhead)
            );
        }
        println!(
            "{:<15} {:>6} {:>11} {:>11} {:>11} {:>11.2} µs {:>9} {:>6}",
            scenario,
            "paired",
            "",
            "",
            "",
            row.paired_us,
            "",
            verdict(row.paired_us)
        );
    }

    println!();
    for shape in [Shape::Wide, Shape::Chain] {
        let (peer, ours) = allocations_per_job(&rt, shape);
        println!("{:<15} allocations/job: peer {peer:.1}, ours {ours:.1} (plan + run)", shape.name());
    }
    println!();
    println!(
        "overhead/job = (ours - peer) / {JOBS}; paired = median over iterations of that; \
         target < {TARGET_US_PER_JOB} µs/job.\n\
         ours = TestCtx::run_jobs_async (plan + run); (plan) = TestCtx::plan_jobs alone, part of ours."
    );
}
