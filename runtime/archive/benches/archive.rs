//! Saving and restoring a workspace: `archive::pack` to a file and `archive::unpack` from it,
//! against GNU `tar --zstd -cf` / `tar --zstd -xf` (tar piping through the `zstd` CLI, level 3 on
//! both sides) on the same data, in the same run.
//!
//! Target: at least 0.9x the CLI's throughput, both ways. The data (1 GiB by default; set
//! `ARCHIVE_BENCH_MB` for quick runs) is many small text files of varied compressibility, some
//! medium files and a few large binary-ish ones, generated once under the cargo target tmp dir and
//! reused. `ARCHIVE_BENCH_RUNS` (default 3) sets the runs per measure (median reported);
//! `ARCHIVE_BENCH_SWEEP=1` also times `pack` with 0, 1 and 2 zstd workers. Dirty pages are
//! synced before each timed step. Prints a table, ratios and PASS/MISS; never fails on timings.
//!
//! Run with `cargo bench -p monkeyci-archive --bench archive`.

// A bench is no test for clippy, but like one it may panic on a broken setup.
#![allow(clippy::unwrap_used)]

use monkeyci_archive as archive;

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const MIB: u64 = 1024 * 1024;
const TARGET: f64 = 0.9;
/// Bump when the generator changes, so stale data is regenerated.
const DATA_VERSION: u32 = 1;

fn main() {
    let mb: u64 = env_num("ARCHIVE_BENCH_MB", 1024);
    let runs: usize = env_num("ARCHIVE_BENCH_RUNS", 3).max(1);
    let sweep = std::env::var("ARCHIVE_BENCH_SWEEP").is_ok_and(|v| v == "1");
    let work = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("archive-bench");
    let data = work.join(format!("data-{mb}mb"));
    let generated = ensure_data(&data, mb * MIB);
    println!("data: {} ({} files, {:.1} MiB)", data.display(), generated.files, generated.bytes as f64 / MIB as f64);

    let Some(peer) = find_peer() else {
        println!("peer: GNU tar with zstd not found (install `zstd`); nothing to compare against");
        return;
    };
    println!("peer: {peer}");

    let ours_archive = work.join("ours.tar.zst");
    let peer_archive = work.join("peer.tar.zst");
    let ours_out = work.join("ours-out");
    let peer_out = work.join("peer-out");

    let mut t = Timings::default();
    let mut ours_size = 0;
    let default_workers = archive::PackOptions::default().workers;
    for run in 0..runs {
        sync();
        let started = Instant::now();
        let stats = pack_to(&data, &ours_archive, &archive::PackOptions::default());
        t.ours_pack.push(started.elapsed());
        ours_size = stats.bytes_out;
        assert_eq!((stats.files, stats.bytes_in), (generated.files, generated.bytes), "pack missed files");

        sync();
        let started = Instant::now();
        run_tar(Command::new("tar").args(["--zstd", "-cf"]).arg(&peer_archive).arg("-C").arg(&data).arg("."));
        t.peer_pack.push(started.elapsed());

        remove(&ours_out);
        sync();
        let started = Instant::now();
        let file = File::open(&ours_archive).expect("open our archive");
        let unpacked = archive::unpack(file, &ours_out).expect("unpack");
        t.ours_unpack.push(started.elapsed());
        assert_eq!((unpacked.files, unpacked.bytes), (generated.files, generated.bytes), "unpack missed files");

        remove(&peer_out);
        fs::create_dir_all(&peer_out).unwrap();
        sync();
        let started = Instant::now();
        run_tar(Command::new("tar").args(["--zstd", "-xf"]).arg(&peer_archive).arg("-C").arg(&peer_out));
        t.peer_unpack.push(started.elapsed());
        eprintln!("run {}/{runs} done", run + 1);
    }
    let peer_size = fs::metadata(&peer_archive).unwrap().len();

    let bytes = generated.bytes;
    let (op, pp, ou, pu) =
        (median(&mut t.ours_pack), median(&mut t.peer_pack), median(&mut t.ours_unpack), median(&mut t.peer_unpack));
    println!();
    println!("{} MiB in {} files, median of {runs} runs", bytes / MIB, generated.files);
    println!("{:<44} {:>9} {:>10} {:>9}", "measure", "time", "MB/s", "ratio");
    let ratio = |size: u64| bytes as f64 / size as f64;
    println!(
        "{:<44} {:>8.2}s {:>10.1} {:>8.2}x",
        format!("ours: pack (level 3, {default_workers} workers)"),
        secs(op),
        mbps(bytes, op),
        ratio(ours_size)
    );
    println!("{:<44} {:>8.2}s {:>10.1} {:>8.2}x", "peer: tar --zstd -cf", secs(pp), mbps(bytes, pp), ratio(peer_size));
    println!("{:<44} {:>8.2}s {:>10.1}", "ours: unpack", secs(ou), mbps(bytes, ou));
    println!("{:<44} {:>8.2}s {:>10.1}", "peer: tar --zstd -xf", secs(pu), mbps(bytes, pu));
    println!("(ratio column: uncompressed / compressed size)");
    let pack_ratio = secs(pp) / secs(op);
    let unpack_ratio = secs(pu) / secs(ou);
    println!("throughput ours/peer: pack {pack_ratio:.2}x, unpack {unpack_ratio:.2}x");
    println!("target >= {TARGET}x of the CLI: pack {}, unpack {}", verdict(pack_ratio), verdict(unpack_ratio));

    if sweep {
        println!();
        println!("pack by zstd workers (level 3), median of {runs} runs");
        for workers in [0, 1, 2] {
            let mut times = Vec::new();
            let mut size = 0;
            for _ in 0..runs {
                sync();
                let started = Instant::now();
                size = pack_to(&data, &ours_archive, &archive::PackOptions { level: 3, workers }).bytes_out;
                times.push(started.elapsed());
            }
            let time = median(&mut times);
            println!(
                "{:<44} {:>8.2}s {:>10.1} {:>8.2}x  ({:.2}x of peer)",
                format!("ours: pack, {workers} workers"),
                secs(time),
                mbps(bytes, time),
                ratio(size),
                secs(pp) / secs(time)
            );
        }
    }
    remove(&ours_out);
    remove(&peer_out);
    let _ = fs::remove_file(&ours_archive);
    let _ = fs::remove_file(&peer_archive);
}

#[derive(Default)]
struct Timings {
    ours_pack: Vec<Duration>,
    peer_pack: Vec<Duration>,
    ours_unpack: Vec<Duration>,
    peer_unpack: Vec<Duration>,
}

fn pack_to(data: &Path, out: &Path, options: &archive::PackOptions) -> archive::PackStats {
    let file = File::create(out).expect("create our archive");
    archive::pack_with(data, &[""], file, options).expect("pack")
}

fn run_tar(command: &mut Command) {
    let status = command.status().expect("run tar");
    assert!(status.success(), "tar failed: {command:?}");
}

/// `GNU tar x.y (zstd vX)` if tar is GNU tar and the zstd CLI is there.
fn find_peer() -> Option<String> {
    let tar = Command::new("tar").arg("--version").output().ok()?;
    let tar = String::from_utf8_lossy(&tar.stdout).lines().next()?.to_owned();
    if !tar.contains("GNU tar") {
        return None;
    }
    let zstd = Command::new("zstd").arg("--version").output().ok()?;
    let zstd = String::from_utf8_lossy(&zstd.stdout);
    let version = zstd.split_whitespace().find(|word| word.starts_with('v')).unwrap_or("?").trim_end_matches(',');
    Some(format!("{tar}, `tar --zstd` through the zstd CLI {version} (default level 3)"))
}

fn verdict(ratio: f64) -> &'static str {
    if ratio >= TARGET { "PASS" } else { "MISS" }
}

fn sync() {
    // SAFETY: sync(2) takes no arguments and cannot fail.
    unsafe { libc::sync() };
}

fn remove(dir: &Path) {
    if dir.exists() {
        fs::remove_dir_all(dir).unwrap();
    }
}

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

fn mbps(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

/// What the generator wrote: regular files and their total size.
struct Generated {
    files: u64,
    bytes: u64,
}

/// Generates the data set into `dir` unless a complete one of the same size is there (its
/// marker, next to `dir`, records the counts).
fn ensure_data(dir: &Path, total: u64) -> Generated {
    let marker = dir.with_extension("complete");
    let header = format!("v{DATA_VERSION} {total}");
    if let Ok(content) = fs::read_to_string(&marker)
        && let Some((found, counts)) = content.split_once('\n')
        && found == header
        && let Some((files, bytes)) = counts.trim().split_once(' ')
        && let (Ok(files), Ok(bytes)) = (files.parse(), bytes.parse())
        && dir.is_dir()
    {
        return Generated { files, bytes };
    }
    let _ = fs::remove_file(&marker);
    remove(dir);
    eprintln!("generating {} MiB of test data in {} ...", total / MIB, dir.display());
    let mut generator = Generator { rng: Rng(0x9E37_79B9_7F4A_7C15), files: 0, bytes: 0, buf: Vec::new() };
    generator.generate(dir, total);
    fs::write(&marker, format!("{header}\n{} {}\n", generator.files, generator.bytes)).unwrap();
    Generated { files: generator.files, bytes: generator.bytes }
}

/// xorshift64*: fast, deterministic, good enough for test data.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Log-uniform in `lo..hi`: many small values, a few large ones.
    fn log_uniform(&mut self, lo: u64, hi: u64) -> u64 {
        let (lo, hi) = ((lo as f64).ln(), (hi as f64).ln());
        let unit = (self.next() >> 11) as f64 / (1u64 << 53) as f64;
        (lo + unit * (hi - lo)).exp() as u64
    }
}

const WORDS: &[&str] = &[
    "fn",
    "let",
    "mut",
    "impl",
    "struct",
    "enum",
    "match",
    "pub",
    "use",
    "crate",
    "self",
    "Self",
    "return",
    "if",
    "else",
    "for",
    "while",
    "loop",
    "in",
    "as",
    "where",
    "async",
    "await",
    "move",
    "ref",
    "const",
    "static",
    "type",
    "trait",
    "mod",
    "Result",
    "Option",
    "Some",
    "None",
    "Ok",
    "Err",
    "String",
    "Vec",
    "Box",
    "Arc",
    "HashMap",
    "u64",
    "usize",
    "bool",
    "&str",
    "config",
    "builder",
    "request",
    "response",
    "handler",
    "state",
    "error",
    "value",
    "index",
    "buffer",
    "reader",
    "writer",
    "context",
    "workspace",
    "artifact",
    "cache",
    "job",
    "pipeline",
    "build",
    "event",
    "=",
    "==",
    "=>",
    "->",
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    ".",
    "::",
    "+",
    "-",
    "*",
    "&",
    "?",
    "!",
    "<",
    ">",
    "0",
    "1",
];

struct Generator {
    rng: Rng,
    files: u64,
    bytes: u64,
    buf: Vec<u8>,
}

impl Generator {
    fn generate(&mut self, root: &Path, total: u64) {
        fs::create_dir_all(root).unwrap();
        // 45% small text files (200 B .. 48 KiB) in a nested source-like tree.
        let small_budget = total * 45 / 100;
        let mut written = 0;
        let mut dir_index = 0;
        while written < small_budget {
            let dir = root.join(format!("src/mod{:03}/sub{:02}", dir_index / 8, dir_index % 8));
            fs::create_dir_all(&dir).unwrap();
            for file in 0..60 {
                let size = self.rng.log_uniform(200, 48 * 1024);
                let kind = self.rng.below(10);
                self.buf.clear();
                match kind {
                    0..=5 => self.code_text(size),
                    6..=8 => self.log_text(size),
                    _ => self.token_text(size),
                }
                written += self.write(&dir.join(format!("file{file:03}.{}", ["rs", "log", "txt"][kind as usize % 3])));
                if written >= small_budget {
                    break;
                }
            }
            dir_index += 1;
        }
        // 30% medium files (64 KiB .. 4 MiB), binary-ish or text.
        let medium_budget = total * 30 / 100;
        let mut written = 0;
        let mut index = 0;
        while written < medium_budget {
            let size = self.rng.log_uniform(64 * 1024, 4 * MIB).min(medium_budget - written + 1);
            self.buf.clear();
            if index % 3 == 0 {
                self.code_text(size)
            } else {
                self.binary(size, 0.35)
            }
            let dir = root.join(format!("target/debug/deps{}", index % 5));
            fs::create_dir_all(&dir).unwrap();
            written += self.write(&dir.join(format!("lib{index:04}.rlib")));
            index += 1;
        }
        // 25% in a few large binary-ish files: one nearly incompressible, the rest mixed.
        let large_budget = total - total * 45 / 100 - total * 30 / 100;
        let parts = [0.4, 0.35, 0.25];
        let random_share = [0.95, 0.4, 0.2];
        for (i, (part, share)) in parts.iter().zip(random_share).enumerate() {
            let size = (large_budget as f64 * part) as u64;
            self.buf.clear();
            self.binary(size, share);
            fs::create_dir_all(root.join("assets")).unwrap();
            self.write(&root.join(format!("assets/blob{i}.bin")));
        }
        // A few empty directories and symlinks.
        for i in 0..20 {
            fs::create_dir_all(root.join(format!("empty/e{i}/inner"))).unwrap();
        }
        std::os::unix::fs::symlink("../src", root.join("assets/src-link")).unwrap();
        std::os::unix::fs::symlink("blob0.bin", root.join("assets/current.bin")).unwrap();
    }

    fn write(&mut self, path: &Path) -> u64 {
        let mut file = BufWriter::new(File::create(path).unwrap());
        file.write_all(&self.buf).unwrap();
        file.flush().unwrap();
        self.files += 1;
        self.bytes += self.buf.len() as u64;
        self.buf.len() as u64
    }

    /// Code-like text from a small vocabulary: compresses well (~4-6x).
    fn code_text(&mut self, size: u64) {
        let size = size as usize;
        while self.buf.len() < size {
            let indent = self.rng.below(5) as usize * 4;
            self.buf.extend(std::iter::repeat_n(b' ', indent));
            for _ in 0..3 + self.rng.below(9) {
                let word = WORDS[self.rng.below(WORDS.len() as u64) as usize];
                self.buf.extend_from_slice(word.as_bytes());
                self.buf.push(b' ');
            }
            self.buf.push(b'\n');
        }
        self.buf.truncate(size);
    }

    /// Log lines with timestamps and ids: medium compressibility (~3x).
    fn log_text(&mut self, size: u64) {
        let size = size as usize;
        let mut t = 1_700_000_000_000u64 + self.rng.below(1_000_000);
        while self.buf.len() < size {
            t += self.rng.below(5000);
            let level = ["INFO", "DEBUG", "WARN", "INFO", "TRACE"][self.rng.below(5) as usize];
            let line = format!(
                "{t} {level} job={:08x} step={} msg=\"{} {} {}\" took={}ms\n",
                self.rng.next() as u32,
                self.rng.below(40),
                WORDS[self.rng.below(WORDS.len() as u64) as usize],
                WORDS[self.rng.below(WORDS.len() as u64) as usize],
                WORDS[self.rng.below(WORDS.len() as u64) as usize],
                self.rng.below(100_000)
            );
            self.buf.extend_from_slice(line.as_bytes());
        }
        self.buf.truncate(size);
    }

    /// Random hex tokens (lock files, hashes): compresses ~2x.
    fn token_text(&mut self, size: u64) {
        let size = size as usize;
        while self.buf.len() < size {
            let line =
                format!("\"{:016x}{:016x}\" = \"sha256:{:016x}\"\n", self.rng.next(), self.rng.next(), self.rng.next());
            self.buf.extend_from_slice(line.as_bytes());
        }
        self.buf.truncate(size);
    }

    /// Binary-ish: blocks of random bytes (share `random`), repeats of earlier blocks, small-integer
    /// tables and zero runs.
    fn binary(&mut self, size: u64, random: f64) {
        let size = size as usize;
        let threshold = (random * 1000.0) as u64;
        while self.buf.len() < size {
            let block = 256 + self.rng.below(8192) as usize;
            let roll = self.rng.below(1000);
            if roll < threshold || self.buf.len() < 65536 {
                for _ in 0..block / 8 {
                    self.buf.extend_from_slice(&self.rng.next().to_le_bytes());
                }
            } else if roll < threshold + (1000 - threshold) / 2 {
                let from = self.rng.below((self.buf.len() - block) as u64) as usize;
                self.buf.extend_from_within(from..from + block);
            } else if roll.is_multiple_of(2) {
                for _ in 0..block / 4 {
                    self.buf.extend_from_slice(&(self.rng.below(300) as u32).to_le_bytes());
                }
            } else {
                self.buf.extend(std::iter::repeat_n(0u8, block));
            }
        }
        self.buf.truncate(size);
    }
}
