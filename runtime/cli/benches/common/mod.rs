//! What the benches share: the pipeline crate they write (the sdk by path, the workspace's
//! lock file), a build's CPU time, medians. Each bench includes it with `mod common;` and
//! uses what it needs.

// Each bench uses some of these helpers, none all of them.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// The workspace this bench is built in.
pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Writes the pipeline crate `package` into `crate_dir` (a repository's `.monkeyci`): the sdk
/// of `workspace` by path plus `extra_deps` (manifest lines), the workspace's lock file, and
/// `main_rs`. Unchanged files are left alone, so the binary cache still has the pipeline.
pub(crate) fn write_pipeline(crate_dir: &Path, workspace: &Path, package: &str, extra_deps: &str, main_rs: &str) {
    std::fs::create_dir_all(crate_dir.join("src")).unwrap();
    let manifest = format!(
        "[package]\nname = \"{package}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n[dependencies]\n\
         monkeyci-sdk = {{ path = {:?} }}\n{extra_deps}\n[workspace]\n",
        workspace.join("monkeyci-sdk")
    );
    write_if_changed(&crate_dir.join("Cargo.toml"), &manifest);
    write_if_changed(&crate_dir.join("src/main.rs"), main_rs);
    if !crate_dir.join("Cargo.lock").exists() {
        std::fs::copy(workspace.join("Cargo.lock"), crate_dir.join("Cargo.lock")).unwrap();
    }
}

/// Leaves an unchanged file alone, so the binary cache still has the pipeline.
pub(crate) fn write_if_changed(path: &Path, contents: &str) {
    if std::fs::read_to_string(path).ok().as_deref() != Some(contents) {
        std::fs::write(path, contents).unwrap();
    }
}

/// User + system CPU of this process's children that ended and were waited for, and theirs.
pub(crate) fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage only fills the struct it is given.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// The median of `samples` (NaN when there are none).
pub(crate) fn median(samples: &[f64]) -> f64 {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN)
}

/// The median of `samples`.
pub(crate) fn median_duration(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}
