//! What suspension (`monkeyci build run --suspend always`) costs and saves, against the same
//! pipeline never suspended (`--suspend never`) in the same run.
//!
//! 1. **Resume latency**: from a container's end to the start of the action job depending on
//!    it, from the build's events: `container/end` (the controller emits it once the container
//!    is gone) to the dependent's `job/start`. Not from the container job's `job/end`: while the
//!    script is suspended nobody can emit it; the resumed script does, just before it starts the
//!    dependent, so that span would hide the relaunch (it is printed too, to show it). One
//!    action -> container -> action build per sample, `LATENCY_RUNS` per mode, median.
//! 2. **Replay time per 1,000 journal entries**: `REPLAY_MANY_JOBS` no-op action jobs, a short
//!    container job after them and an action job after it, suspended: the script suspends once
//!    and its resume replays the whole journal (`script/resumed {replayed}`). The span of 1
//!    (container/end -> final job/start) for that pipeline, minus the span for the same
//!    pipeline with `REPLAY_FEW_JOBS`, divided by the thousands of entries that adds. That is
//!    all a resume does per entry: fetch the journal, plan the jobs again, replay their ends.
//!    Medians of `REPLAY_RUNS`. Peer: the same span never suspended. Engine-independent (the
//!    engine does nothing in that span): shell engine only.
//! 3. **Script CPU-seconds, peak RSS, process-seconds** over `CPU_CONTAINERS` sequential
//!    container jobs of `sleep 2`. Every script process reports its own usage when it exits:
//!    `getrusage(RUSAGE_SELF)` (CPU of all its threads to the microsecond, `ru_maxrss` = VmHWM)
//!    and its lifetime, from an `.init_array` constructor to an `atexit` handler (so not the
//!    exec before nor the unmapping after, well under a millisecond). Why not /proc alone:
//!    `/proc/<pid>/stat` counts utime+stime in clock ticks (10 ms at 100 Hz), truncated, which
//!    rounds a resumed script's few milliseconds down to nothing, and a look every 20 ms misses
//!    what a process did after the last look, or a whole short-lived process. The controller is
//!    the scripts' parent and its `cutime` gets their exact CPU when it reaps them, but the
//!    container engine's processes (sh, podman) are its children too and land in the same
//!    counter. So the /proc view (a look every 20 ms at every process running the cached
//!    binary: utime+stime, VmHWM) is printed beside the self-reports as a lower bound, and it
//!    checks independently whether a script process existed while a container ran. Also
//!    printed: the CPU-seconds of the whole build, monkeyci and every process it waited for
//!    (`getrusage(RUSAGE_CHILDREN)` of this process before and after), where what resuming
//!    costs the controller shows.
//!    Target: the suspended build spends under 10% of the script CPU-seconds of the
//!    never-suspended one, and holds no script process while containers run (apart from the
//!    hand-off: the script exits once its container runs, at most `HANDOFF` after
//!    `container/start`). Printed as PASS/MISS; timings never fail the bench.
//!
//! All scenarios are one pipeline crate (the script reads which one from the environment it
//! inherits from the controller), compiled once and run once per engine before anything is
//! measured. The shell engine (container scripts run on the host with sh) needs nothing;
//! podman runs too where it and `scripts/test-images.sh`'s images are here. A build that fails
//! is reported (`could not measure: ...`, with monkeyci's last words) and its section skipped.
//! Run with `cargo bench -p monkeyci --bench suspend`.

// A benchmark is a tool, not a test to clippy: it panics on setup failures, as tests do.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{children_cpu_seconds, median};
use monkeyci_protocol::{Event, EventKind};

const IMAGE: &str = "localhost/monkeyci-test/busybox";
/// The pipeline crate's package, which is also the file name of its cached binary.
const PACKAGE: &str = "bench-suspend";

const LATENCY_RUNS: usize = 5;
const REPLAY_MANY_JOBS: usize = 5000;
const REPLAY_FEW_JOBS: usize = 10;
const REPLAY_RUNS: usize = 3;
const CPU_CONTAINERS: usize = 10;
/// How often the /proc view looks for script processes.
const POLL: Duration = Duration::from_millis(20);
/// How long after `container/start` a suspending script may still exist.
const HANDOFF: Duration = Duration::from_millis(100);

/// The pipeline: which jobs depends on `SUSPEND_BENCH_SCENARIO` (and a count), so that each
/// scenario plans only its own jobs. Its constructor and exit handler write the usage
/// line of every process to `$SUSPEND_BENCH_USAGE`, when set.
const PIPELINE: &str = r#"use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};

use monkeyci_sdk::prelude::*;

const IMAGE: &str = "IMAGE";

#[pipeline]
fn bench(_ctx: &Ctx) -> Vec<Job> {
    let count = std::env::var("SUSPEND_BENCH_COUNT").ok().and_then(|n| n.parse().ok()).unwrap_or(1);
    match std::env::var("SUSPEND_BENCH_SCENARIO").unwrap_or_default().as_str() {
        "latency" => container_between_actions(),
        "replay" => many_jobs_then_container(count),
        "cpu" => sleeping_containers(count),
        other => panic!("unknown SUSPEND_BENCH_SCENARIO {other:?}"),
    }
}

fn noop(id: String) -> Job {
    Job::action(id, |_ctx: Ctx| async { Ok(()) })
}

fn sleeping(id: String, seconds: &str) -> Job {
    Job::container(id, container(IMAGE).script([format!("sleep {seconds}")]))
}

/// before -> box -> after
fn container_between_actions() -> Vec<Job> {
    vec![
        noop("before".into()),
        sleeping("box".into(), "0.5").depends_on(["before"]),
        noop("after".into()).depends_on(["box"]),
    ]
}

/// tiny-0 .. tiny-{count-1} -> replay-box -> replay-final
fn many_jobs_then_container(count: usize) -> Vec<Job> {
    let mut jobs: Vec<Job> = (0..count).map(|i| noop(format!("tiny-{i}"))).collect();
    let tiny: Vec<String> = jobs.iter().map(|job| job.id().to_owned()).collect();
    jobs.push(sleeping("replay-box".into(), "0.5").depends_on(tiny));
    jobs.push(noop("replay-final".into()).depends_on(["replay-box"]));
    jobs
}

/// sleep-0 -> sleep-1 -> ... -> sleep-{count-1}, two seconds each
fn sleeping_containers(count: usize) -> Vec<Job> {
    (0..count)
        .map(|i| {
            let job = sleeping(format!("sleep-{i}"), "2");
            if i == 0 { job } else { job.depends_on([format!("sleep-{}", i - 1)]) }
        })
        .collect()
}

monkeyci_sdk::main!();

// The benchmark's probe: one line per process, "pid start_us exit_us cpu_us maxrss_kb".

static STARTED_US: AtomicU64 = AtomicU64::new(0);

fn now_us() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros() as u64
}

extern "C" fn at_start() {
    STARTED_US.store(now_us(), Ordering::Relaxed);
    if std::env::var_os("SUSPEND_BENCH_USAGE").is_some() {
        // SAFETY: registers a function without arguments to run at exit.
        unsafe { libc::atexit(report_usage) };
    }
}

#[used]
#[unsafe(link_section = ".init_array")]
static AT_START: extern "C" fn() = at_start;

extern "C" fn report_usage() {
    let Some(path) = std::env::var_os("SUSPEND_BENCH_USAGE") else { return };
    // SAFETY: getrusage only fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    let cpu_us = micros(usage.ru_utime) + micros(usage.ru_stime);
    let line = format!(
        "{} {} {} {cpu_us} {}\n",
        std::process::id(),
        STARTED_US.load(Ordering::Relaxed),
        now_us(),
        usage.ru_maxrss
    );
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
    let _ = file.and_then(|mut file| file.write_all(line.as_bytes()));
}
"#;

fn main() {
    let bench = Bench::new();
    let engines = engines();
    println!("suspension: --suspend always vs --suspend never (peer), same pipelines, same run");
    bench.compile();
    for engine in &engines {
        // Warm-up (page cache, podman's storage), not measured.
        let _ = bench.run(engine, "never", Scenario::Latency);
    }
    for engine in &engines {
        resume_latency(&bench, engine);
    }
    replay_time(&bench);
    for engine in &engines {
        script_cost(&bench, engine);
    }
}

/// The shell engine, and podman when it and the test image are here.
fn engines() -> Vec<&'static str> {
    let podman = Command::new("podman")
        .args(["image", "exists", IMAGE])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if podman {
        vec!["shell", "podman"]
    } else {
        println!("podman: skipped, podman or the image {IMAGE} is missing (run `bash scripts/test-images.sh`)");
        vec!["shell"]
    }
}

/// Which jobs the pipeline plans, and how many.
#[derive(Clone, Copy)]
enum Scenario {
    Latency,
    Replay { jobs: usize },
    Cpu,
}

impl Scenario {
    fn env(self) -> [(&'static str, String); 2] {
        let (name, count) = match self {
            Scenario::Latency => ("latency", 1),
            Scenario::Replay { jobs } => ("replay", jobs),
            Scenario::Cpu => ("cpu", CPU_CONTAINERS),
        };
        [("SUSPEND_BENCH_SCENARIO", name.to_owned()), ("SUSPEND_BENCH_COUNT", count.to_string())]
    }
}

/// The pipeline repository, the binary cache, and where each build's files go.
struct Bench {
    monkeyci: &'static str,
    repo: PathBuf,
    cache: PathBuf,
    scratch: PathBuf,
}

/// One finished build: its events, how long `monkeyci build run` took, and the CPU time of it
/// and of every process it waited for (scripts, sh or podman; not podman's detached conmon).
struct Build {
    events: Vec<Event>,
    wall: Duration,
    cpu_seconds: f64,
}

impl Bench {
    fn new() -> Bench {
        let workspace = common::workspace();
        let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("suspend-bench");
        let bench = Bench {
            monkeyci: env!("CARGO_BIN_EXE_monkeyci"),
            repo: root.join("repo"),
            cache: root.join("cache"),
            scratch: root.join("scratch"),
        };
        write_pipeline(&bench.repo.join(".monkeyci"), &workspace);
        std::fs::create_dir_all(&bench.scratch).unwrap();
        bench
    }

    /// Compiles the pipeline (a minute or two the first time: the sdk), not measured.
    fn compile(&self) {
        let started = Instant::now();
        let out = Command::new(self.monkeyci)
            .args(["build", "verify"])
            .arg(&self.repo)
            .env("MONKEYCI_CACHE_DIR", &self.cache)
            .envs(Scenario::Latency.env())
            .output()
            .unwrap();
        assert!(out.status.success(), "the pipeline does not compile: {}", String::from_utf8_lossy(&out.stderr));
        println!("(pipeline compiled or found in the cache in {:.1} s; not measured)", started.elapsed().as_secs_f64());
    }

    fn run(&self, engine: &str, suspend: &str, scenario: Scenario) -> Result<Build, String> {
        self.run_with(engine, suspend, scenario, &[])
    }

    /// A build, or why it failed: a broken build is reported, not measured.
    fn run_with(
        &self,
        engine: &str,
        suspend: &str,
        scenario: Scenario,
        env: &[(&str, &Path)],
    ) -> Result<Build, String> {
        let events = self.scratch.join("events.jsonl");
        let (started, cpu_before) = (Instant::now(), children_cpu_seconds());
        let out = Command::new(self.monkeyci)
            .args(["build", "run", "--plain", "--engine", engine, "--suspend", suspend, "--events"])
            .arg(&events)
            .arg(&self.repo)
            .env("MONKEYCI_CACHE_DIR", &self.cache)
            .env("RUST_BACKTRACE", "0")
            .envs(scenario.env())
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .output()
            .unwrap();
        let (wall, cpu_seconds) = (started.elapsed(), children_cpu_seconds() - cpu_before);
        if !out.status.success() {
            let stderr = String::from_utf8_lossy(&out.stderr);
            let said: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty() && !l.starts_with("note:")).collect();
            let last = said[said.len().saturating_sub(2)..].join(" / ");
            return Err(format!("`build run --engine {engine} --suspend {suspend}` failed ({}): {last}", out.status));
        }
        Ok(Build { events: read_events(&events), wall, cpu_seconds })
    }
}

/// The pipeline crate (sdk by path, the workspace's lock file, libc for the probe).
fn write_pipeline(crate_dir: &Path, workspace: &Path) {
    let main = PIPELINE.replace("\"IMAGE\"", &format!("{IMAGE:?}"));
    common::write_pipeline(crate_dir, workspace, PACKAGE, "libc = \"0.2\"\n", &main);
}

fn read_events(path: &Path) -> Vec<Event> {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines().map(|line| serde_json::from_str(line).expect("an event")).collect()
}

impl Build {
    /// When the first event of `type_name` about `job` (or about no job) happened, in ms.
    fn time_of(&self, type_name: &str, job: Option<&str>) -> u64 {
        self.events
            .iter()
            .find(|e| e.kind.type_name() == type_name && e.kind.job_id() == job)
            .map(|e| e.time)
            .unwrap_or_else(|| panic!("no {type_name} event for {job:?}"))
    }

    /// The first event of `type_name` at or after `time`, in ms.
    fn first_after(&self, type_name: &str, time: u64) -> Option<u64> {
        self.events.iter().find(|e| e.kind.type_name() == type_name && e.time >= time).map(|e| e.time)
    }

    /// The `replayed` count of every `script/resumed`.
    fn replayed(&self) -> Vec<usize> {
        let resumed = |e: &Event| match e.kind {
            EventKind::ScriptResumed { replayed } => Some(replayed),
            _ => None,
        };
        self.events.iter().filter_map(resumed).collect()
    }

    /// When each container ran: `container/start` to `container/end`, in ms.
    fn container_windows(&self) -> Vec<(u64, u64)> {
        let mut starts = BTreeMap::new();
        let mut windows = Vec::new();
        for event in &self.events {
            match &event.kind {
                EventKind::ContainerStart { job_id, .. } => {
                    starts.insert(job_id.clone(), event.time);
                }
                EventKind::ContainerEnd { job_id, .. } => {
                    windows.extend(starts.remove(job_id).map(|start| (start, event.time)));
                }
                _ => {}
            }
        }
        windows
    }
}

// 1. Resume latency.

/// The samples of the latency builds, in ms: container/end -> dependent job/start, the
/// container job's job/end -> dependent job/start, container/end -> script/resumed.
#[derive(Default)]
struct Latencies {
    from_container_end: Vec<f64>,
    from_job_end: Vec<f64>,
    to_resumed: Vec<f64>,
}

impl Latencies {
    fn add(&mut self, build: &Build) {
        let container_end = build.time_of("container/end", Some("box"));
        let start = build.time_of("job/start", Some("after"));
        self.from_container_end.push(start.saturating_sub(container_end) as f64);
        self.from_job_end.push(start.saturating_sub(build.time_of("job/end", Some("box"))) as f64);
        if let Some(resumed) = build.first_after("script/resumed", container_end) {
            self.to_resumed.push(resumed.saturating_sub(container_end) as f64);
        }
    }

    fn measure(bench: &Bench, engine: &str, suspend: &str) -> Result<Latencies, String> {
        let mut latencies = Latencies::default();
        for _ in 0..LATENCY_RUNS {
            latencies.add(&bench.run(engine, suspend, Scenario::Latency)?);
        }
        Ok(latencies)
    }
}

fn resume_latency(bench: &Bench, engine: &str) {
    println!(
        "\n1. resume latency, {engine} engine: action -> container (sleep 0.5) -> action, median of {LATENCY_RUNS}"
    );
    let measured = Latencies::measure(bench, engine, "never")
        .and_then(|never| Ok((never, Latencies::measure(bench, engine, "always")?)));
    let (never, always) = match measured {
        Ok(both) => both,
        Err(why) => return println!("could not measure: {why}"),
    };
    println!("{:<48} {:>10} {:>10} {:>9}", "", "never", "always", "ratio");
    let (never_ms, always_ms) = (median(&never.from_container_end), median(&always.from_container_end));
    row_ms("container/end -> dependent job/start", never_ms, always_ms);
    println!("{:<48} {:>10} {:>8.1}ms", "  of which container/end -> script/resumed", "-", median(&always.to_resumed));
    row_ms("(container job's job/end -> job/start)", median(&never.from_job_end), median(&always.from_job_end));
    println!("resuming adds {:.1} ms per container end (events are stamped to the ms)", always_ms - never_ms);
}

// 2. Replay time.

/// The median span container/end -> final job/start (ms) of `REPLAY_RUNS` builds with `jobs`
/// no-op jobs, the entries their resume replayed (0 when never suspended), and the median build.
struct ReplayRuns {
    span_ms: f64,
    replayed: usize,
    wall: f64,
}

impl ReplayRuns {
    fn measure(bench: &Bench, suspend: &str, jobs: usize) -> Result<ReplayRuns, String> {
        let (mut spans, mut walls, mut replayed) = (Vec::new(), Vec::new(), 0);
        for _ in 0..REPLAY_RUNS {
            let build = bench.run("shell", suspend, Scenario::Replay { jobs })?;
            let end = build.time_of("container/end", Some("replay-box"));
            spans.push(build.time_of("job/start", Some("replay-final")).saturating_sub(end) as f64);
            walls.push(build.wall.as_secs_f64());
            replayed = build.replayed().iter().sum();
        }
        Ok(ReplayRuns { span_ms: median(&spans), replayed, wall: median(&walls) })
    }
}

fn replay_time(bench: &Bench) {
    println!(
        "\n2. replay: N no-op action jobs -> container (sleep 0.5) -> action job, shell engine, median of \
         {REPLAY_RUNS}"
    );
    let measure = || -> Result<_, String> {
        Ok((
            ReplayRuns::measure(bench, "always", REPLAY_MANY_JOBS)?,
            ReplayRuns::measure(bench, "always", REPLAY_FEW_JOBS)?,
            ReplayRuns::measure(bench, "never", REPLAY_MANY_JOBS)?,
        ))
    };
    let (many, few, peer) = match measure() {
        Ok(runs) => runs,
        Err(why) => return println!("could not measure: {why}"),
    };
    println!("{:<48} {:>10} {:>10} {:>9}", "container/end -> final job/start", "span", "replayed", "build");
    let row = |label: String, runs: &ReplayRuns| {
        println!("{label:<48} {:>8.1}ms {:>10} {:>8.2}s", runs.span_ms, runs.replayed, runs.wall);
    };
    row(format!("always, N = {REPLAY_MANY_JOBS}"), &many);
    row(format!("always, N = {REPLAY_FEW_JOBS}"), &few);
    row(format!("peer: never, N = {REPLAY_MANY_JOBS}"), &peer);
    let thousands = many.replayed.saturating_sub(few.replayed) as f64 / 1000.0;
    println!("replay time per 1,000 journal entries: {:.1} ms", (many.span_ms - few.span_ms) / thousands);
    println!(
        "ratio always/never at N = {REPLAY_MANY_JOBS}: span {:.1}x, whole build {:.2}x",
        many.span_ms / peer.span_ms.max(1.0),
        many.wall / peer.wall
    );
}

// 3. Script CPU-seconds, peak RSS and process-seconds.

/// One script process as it reported itself at exit.
struct Usage {
    started_us: u64,
    exited_us: u64,
    cpu_us: u64,
    max_rss_kb: u64,
}

fn read_usage(path: &Path) -> Vec<Usage> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let parse = |line: &str| {
        let fields: Vec<u64> = line.split(' ').map(|f| f.parse().unwrap()).collect();
        Usage { started_us: fields[1], exited_us: fields[2], cpu_us: fields[3], max_rss_kb: fields[4] }
    };
    text.lines().map(parse).collect()
}

/// A script process as the looks at /proc saw it.
#[derive(Default)]
struct Seen {
    cpu_ticks: u64,
    hwm_kb: u64,
}

/// What the looks at /proc found during one build.
#[derive(Default)]
struct ProcView {
    processes: BTreeMap<u32, Seen>,
    /// When each look happened (ms since the epoch) and whether it found a script process.
    looks: Vec<(u64, bool)>,
}

/// Looks at /proc every `POLL`, from a thread, for processes running the cached binary.
struct ProcWatch {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<ProcView>,
}

impl ProcWatch {
    fn start() -> ProcWatch {
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut view = ProcView::default();
            while !stopped.load(Ordering::Relaxed) {
                let pids = script_pids();
                view.looks.push((now_ms(), !pids.is_empty()));
                for pid in pids {
                    let seen = view.processes.entry(pid).or_default();
                    // Zero once the process is gone: keep the last reading.
                    seen.cpu_ticks = seen.cpu_ticks.max(cpu_ticks(pid).unwrap_or(0));
                    seen.hwm_kb = seen.hwm_kb.max(vm_hwm_kb(pid).unwrap_or(0));
                }
                std::thread::sleep(POLL);
            }
            view
        });
        ProcWatch { stop, thread }
    }

    fn finish(self) -> ProcView {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the /proc watch thread")
    }
}

/// The processes whose executable is a cached pipeline binary (`.../bin/<hash>/PACKAGE`).
fn script_pids() -> Vec<u32> {
    let is_script = |exe: &Path| {
        exe.file_name().is_some_and(|name| name == PACKAGE)
            && exe.parent().and_then(Path::parent).and_then(Path::file_name).is_some_and(|dir| dir == "bin")
    };
    let pids = std::fs::read_dir("/proc").into_iter().flatten().flatten().filter_map(|entry| {
        let pid = entry.file_name().to_str()?.parse::<u32>().ok()?;
        std::fs::read_link(entry.path().join("exe")).ok().filter(|exe| is_script(exe)).map(|_| pid)
    });
    pids.collect()
}

/// utime + stime of `pid`, in clock ticks (fields 14 and 15 of /proc/<pid>/stat).
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: count fields after its end.
    let after_name = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = after_name.split(' ').collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The peak resident set of `pid` (VmHWM in /proc/<pid>/status), in kB.
fn vm_hwm_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The clock ticks per second /proc/<pid>/stat counts in.
fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a system setting.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as f64 } else { 100.0 }
}

/// One build of the CPU scenario, measured both ways.
struct CostRun {
    build: Build,
    usage: Vec<Usage>,
    view: ProcView,
}

impl CostRun {
    fn measure(bench: &Bench, engine: &str, suspend: &str) -> Result<CostRun, String> {
        let usage_file = bench.scratch.join(format!("usage-{engine}-{suspend}.txt"));
        let _ = std::fs::remove_file(&usage_file);
        let watch = ProcWatch::start();
        let build = bench.run_with(engine, suspend, Scenario::Cpu, &[("SUSPEND_BENCH_USAGE", &usage_file)]);
        let view = watch.finish();
        Ok(CostRun { build: build?, usage: read_usage(&usage_file), view })
    }

    fn cpu_seconds(&self) -> f64 {
        self.usage.iter().map(|u| u.cpu_us).sum::<u64>() as f64 / 1e6
    }

    fn polled_cpu_seconds(&self) -> f64 {
        self.view.processes.values().map(|p| p.cpu_ticks).sum::<u64>() as f64 / clock_ticks_per_second()
    }

    fn peak_rss_mb(&self) -> f64 {
        self.usage.iter().map(|u| u.max_rss_kb).max().unwrap_or(0) as f64 / 1024.0
    }

    fn polled_peak_rss_mb(&self) -> f64 {
        self.view.processes.values().map(|p| p.hwm_kb).max().unwrap_or(0) as f64 / 1024.0
    }

    fn process_seconds(&self) -> f64 {
        self.usage.iter().map(|u| u.exited_us.saturating_sub(u.started_us)).sum::<u64>() as f64 / 1e6
    }

    /// For each container, how long script processes lived while it ran, from `grace` after
    /// its start to its end, in ms.
    fn script_ms_per_container(&self, grace: Duration) -> Vec<f64> {
        let grace_ms = grace.as_millis() as u64;
        let alive_between = |from_us: u64, to_us: u64| -> u64 {
            self.usage.iter().map(|u| u.exited_us.min(to_us).saturating_sub(u.started_us.max(from_us))).sum()
        };
        let windows = self.build.container_windows();
        windows
            .iter()
            .map(|&(start, end)| alive_between((start + grace_ms) * 1000, end * 1000) as f64 / 1000.0)
            .collect()
    }

    /// How long the containers ran, in seconds.
    fn container_seconds(&self) -> f64 {
        self.build.container_windows().iter().map(|(start, end)| end - start).sum::<u64>() as f64 / 1000.0
    }

    /// Looks at /proc inside the containers' run time (after the hand-off) and how many of
    /// them found a script process.
    fn looks_in_containers(&self) -> (usize, usize) {
        let windows = self.build.container_windows();
        let handoff = HANDOFF.as_millis() as u64;
        let inside = |at: u64| windows.iter().any(|&(start, end)| at >= start + handoff && at <= end);
        let looks: Vec<bool> = self.view.looks.iter().filter(|(at, _)| inside(*at)).map(|(_, s)| *s).collect();
        (looks.iter().filter(|s| **s).count(), looks.len())
    }
}

fn script_cost(bench: &Bench, engine: &str) {
    println!(
        "\n3. script cost, {engine} engine: {CPU_CONTAINERS} sequential container jobs of `sleep 2`, one build each"
    );
    let measured = CostRun::measure(bench, engine, "never")
        .and_then(|never| Ok((never, CostRun::measure(bench, engine, "always")?)));
    let (never, always) = match measured {
        Ok(both) => both,
        Err(why) => {
            println!("could not measure: {why}");
            return println!(
                "target: suspended script CPU-seconds < 10% of never's, no script while containers run: MISS"
            );
        }
    };
    println!("{:<52} {:>11} {:>11} {:>9}", "", "never", "always", "ratio");
    let row = |label: &str, never: f64, always: f64, unit: &str| {
        println!("{label:<52} {never:>9.3}{unit:<2} {always:>9.3}{unit:<2} {:>8.2}x", always / never);
    };
    let launches = |run: &CostRun| format!("{} ({} seen)", run.usage.len(), run.view.processes.len());
    println!("{:<52} {:>11} {:>11}", "script processes (seen in /proc)", launches(&never), launches(&always));
    row("script CPU-seconds (getrusage at exit)", never.cpu_seconds(), always.cpu_seconds(), "s");
    row("  /proc utime+stime, 10 ms ticks (lower bound)", never.polled_cpu_seconds(), always.polled_cpu_seconds(), "s");
    row("peak RSS of a script process (ru_maxrss)", never.peak_rss_mb(), always.peak_rss_mb(), "MB");
    row("  /proc VmHWM (polled)", never.polled_peak_rss_mb(), always.polled_peak_rss_mb(), "MB");
    row("script process-seconds", never.process_seconds(), always.process_seconds(), "s");
    row("build wall time", never.build.wall.as_secs_f64(), always.build.wall.as_secs_f64(), "s");
    row("build CPU-seconds, every process waited for", never.build.cpu_seconds, always.build.cpu_seconds, "s");
    let alive = |run: &CostRun| run.script_ms_per_container(HANDOFF).iter().sum::<f64>() / 1000.0;
    let always_alive = alive(&always);
    row("script alive while containers ran (after hand-off)", alive(&never), always_alive, "s");
    let (found, looks) = always.looks_in_containers();
    let handoff = always.script_ms_per_container(Duration::ZERO).into_iter().fold(0.0, f64::max);
    println!(
        "(suspended: containers ran {:.1} s; a script outlived a container's start by at most {handoff:.1} ms; \
         {found} of {looks} looks at /proc while containers ran found a script process)",
        always.container_seconds()
    );

    let cpu_share = always.cpu_seconds() / never.cpu_seconds();
    let cpu_verdict = if cpu_share < 0.10 { "PASS" } else { "MISS" };
    println!("target: suspended script CPU-seconds < 10% of never's: {cpu_verdict} ({:.0}%)", cpu_share * 100.0);
    // Why the CPU target cannot hold here: waiting costs a Rust script next to nothing, so
    // even a cheap relaunch per container costs more than the whole idle wait.
    let launches = always.usage.len().max(1) as f64;
    println!(
        "  (an idle never-suspended script costs {:.2} ms of CPU per second of waiting; a suspended one \
         {:.1} ms per launch, over {launches:.0} launches)",
        never.cpu_seconds() * 1000.0 / never.process_seconds().max(f64::EPSILON),
        always.cpu_seconds() * 1000.0 / launches,
    );
    let held_verdict = if always_alive > 0.0 || found > 0 { "MISS" } else { "PASS" };
    println!(
        "target: no script process while containers run (after a {} ms hand-off): {held_verdict} \
         ({:.1} ms alive, {found} of {looks} looks)",
        HANDOFF.as_millis(),
        always_alive * 1000.0
    );
}

// Helpers.

/// A row of milliseconds; events are stamped to the millisecond, so a 0 ms peer has no ratio.
fn row_ms(label: &str, never: f64, always: f64) {
    let ratio = if never >= 1.0 { format!("{:.0}x", always / never) } else { "-".to_owned() };
    println!("{label:<48} {never:>8.1}ms {always:>8.1}ms {ratio:>9}");
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}
