//! Following a job's output (issue "hardening", 3): a job's wrapper runs one script line that
//! writes N MB to its stdout log, and a [`JobTail`] follows it live, against `cat` of the same
//! bytes to a pipe read by this process. Prints a table and the ratios; never fails on
//! timings (the target is a tail within 3x of `cat`, the same ratio at every size: linear).
//! "tail alone" is the time to read the same log again once the job ended: the reader's cost
//! without the job's writes, and its CPU time per line (steadier than times on a busy machine).
//!
//! Run with `cargo bench -p monkeyci-jobs --bench follow` (sizes in MB: `-- 20 200`).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use monkeyci_jobs::follow::{Followed, JobTail};
use monkeyci_jobs::jobscript::JobLayout;

/// Writes `mb` MB of 64-byte lines to `path`.
fn data(path: &Path, mb: usize) {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).expect("create the data file"));
    let mut written = 0;
    let mut i = 0u64;
    while written < mb * 1_000_000 {
        let line = format!("line {i:>12} of the output a job prints as fast as it can\n");
        out.write_all(line.as_bytes()).expect("write the data file");
        written += line.len();
        i += 1;
    }
    out.flush().expect("write the data file");
}

/// `cat` of `path` to a pipe, read to its end here: bytes and time.
fn cat(path: &Path) -> (u64, Duration) {
    let began = Instant::now();
    let mut child = Command::new("cat").arg(path).stdout(Stdio::piped()).spawn().expect("cat runs");
    let mut out = child.stdout.take().expect("piped");
    let mut buf = vec![0u8; 64 * 1024];
    let mut bytes = 0u64;
    loop {
        match out.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes += n as u64,
            Err(err) => panic!("reading cat: {err}"),
        }
    }
    child.wait().expect("cat ends");
    (bytes, began.elapsed())
}

/// The job's wrapper `cat`s `path` into its log while a tail follows it: the bytes of the
/// lines followed (with their newlines) and the time until the last one was returned.
fn follow(dir: &Path, path: &Path) -> (u64, usize, Duration) {
    let layout = JobLayout::new(dir.join("job"));
    let line = format!("cat '{}'", path.display());
    layout.write_script(&[line]).expect("write the job script");
    layout.signal_start().expect("start file");
    let began = Instant::now();
    let mut child = Command::new("/bin/sh")
        .arg(layout.wrapper())
        .envs(layout.env(None).expect("env"))
        .stdin(Stdio::null())
        .spawn()
        .expect("the wrapper runs");
    let mut tail = JobTail::new(layout.clone()).with_commands(1).with_log_limit(u64::MAX);
    let (mut bytes, mut lines) = (0u64, 0usize);
    let mut count = |found: Vec<Result<Followed, monkeyci_jobs::follow::Error>>| {
        for found in found {
            if let Ok(Followed::Output { line, .. }) = found {
                bytes += line.len() as u64 + 1;
                lines += 1;
            }
        }
    };
    loop {
        let found = tail.poll();
        let nothing = found.is_empty();
        count(found);
        if tail.is_done() && !tail.is_behind() {
            break;
        }
        if nothing && !tail.is_behind() {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    child.wait().expect("the wrapper ends");
    count(tail.finish());
    let took = began.elapsed();
    (bytes, lines, took)
}

/// CPU time (user and system) this thread used so far.
fn thread_cpu() -> Duration {
    // SAFETY: an all-zero `rusage` is a valid value for getrusage(2) to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage(2) with a valid `rusage` to write into.
    unsafe { libc::getrusage(libc::RUSAGE_THREAD, &mut usage) };
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    time(usage.ru_utime) + time(usage.ru_stime)
}

/// The tail alone: the time and CPU time to read the log the job of [`follow`] left, once it
/// ended.
fn reread(dir: &Path) -> (Duration, Duration) {
    let layout = JobLayout::new(dir.join("job"));
    let began = Instant::now();
    let cpu = thread_cpu();
    let mut tail = JobTail::new(layout.clone()).with_commands(1).with_log_limit(u64::MAX);
    let mut lines = 0usize;
    loop {
        lines += tail.poll().len();
        if !tail.is_behind() {
            break;
        }
    }
    lines += tail.finish().len();
    let (took, cpu) = (began.elapsed(), thread_cpu() - cpu);
    assert!(lines > 0);
    std::fs::remove_dir_all(layout.root()).expect("remove the job");
    (took, cpu)
}

fn main() {
    let mut sizes: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    if sizes.is_empty() {
        sizes = vec![5, 20, 50, 200];
    }
    let dir = tempfile::tempdir().expect("a temp dir");
    println!(
        "{:>6}  {:>10}  {:>10}  {:>8}  {:>12}  {:>10}  {:>12}  {:>14}",
        "MB", "cat", "follow", "ratio", "follow MB/s", "ms per MB", "tail alone", "its ns of CPU/line"
    );
    for mb in sizes {
        let path = dir.path().join(format!("{mb}.txt"));
        data(&path, mb);
        let (cat_bytes, cat_took) = cat(&path);
        let (bytes, lines, took) = follow(dir.path(), &path);
        let (alone, alone_cpu) = reread(dir.path());
        assert_eq!(bytes, cat_bytes, "the tail returned other bytes than cat ({lines} lines)");
        let ratio = took.as_secs_f64() / cat_took.as_secs_f64();
        println!(
            "{mb:>6}  {:>9.3}s  {:>9.3}s  {ratio:>7.2}x  {:>12.0}  {:>10.2}  {:>11.3}s  {:>14.0}",
            cat_took.as_secs_f64(),
            took.as_secs_f64(),
            bytes as f64 / 1e6 / took.as_secs_f64(),
            took.as_secs_f64() * 1000.0 / mb as f64,
            alone.as_secs_f64(),
            alone_cpu.as_secs_f64() * 1e9 / lines as f64,
        );
        std::fs::remove_file(&path).expect("remove the data");
    }
}
