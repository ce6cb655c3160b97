//! Keeping the cache bounded: old build records (with their artifacts and stored journal
//! records), the workspace copies crashed runs left in the records kept, pipeline binaries not
//! used for a while, and all but the newest archives of each cache.
//!
//! A build's artifacts live as long as its record, no longer: their keys are the build's
//! (`artifacts/<build>/`, [`keys`]) and only that build restores them, so nothing else refers
//! to them. Pruning a record removes its artifacts and journal blobs with it, and those whose
//! record is gone however it went (removed by hand, say) are removed too. To keep an artifact
//! longer, extract it (`monkeyci build artifacts BUILD ID --to DIR`) or keep more records.
//!
//! [`Policy`] decides what is kept; [`prune()`] only removes. A build still running holds the
//! lock of its record ([`crate::record::Recorder`]) and is never removed, however old. Its
//! caller decides when to prune: the `monkeyci` binary does after every `monkeyci build run`,
//! and as `monkeyci cache prune`. The shared target directory goes only on request
//! ([`remove_target_dir`]), and never while cargo compiles into it.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use monkeyci_store::{BlobInfo, BlobStore, keys};

/// What the cache keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// The newest build records kept; `0` keeps them all.
    pub keep_builds: usize,
    /// Pipeline binaries not used for this long are removed.
    pub unused_binaries: Duration,
    /// The newest archives kept of each cache of each repository.
    pub keep_cache_archives: usize,
}

/// `MONKEYCI_KEEP_BUILDS`: how many build records `build run` keeps (default 100; 0: all).
pub(crate) const KEEP_BUILDS_ENV: &str = "MONKEYCI_KEEP_BUILDS";

impl Default for Policy {
    fn default() -> Self {
        Policy { keep_builds: 100, unused_binaries: Duration::from_secs(30 * 24 * 3600), keep_cache_archives: 3 }
    }
}

impl Policy {
    /// The default policy, with `MONKEYCI_KEEP_BUILDS` if it is set; `Err` says why its value
    /// is not a number.
    pub fn from_env() -> Result<Policy, String> {
        Policy::with_keep_builds_setting(std::env::var_os(KEEP_BUILDS_ENV).as_deref())
    }

    /// The default policy, keeping as many builds as `setting` says (the default without it).
    fn with_keep_builds_setting(setting: Option<&std::ffi::OsStr>) -> Result<Policy, String> {
        let mut policy = Policy::default();
        if let Some(value) = setting {
            let value = value.to_string_lossy();
            policy.keep_builds = value.trim().parse().map_err(|_| {
                format!("{KEEP_BUILDS_ENV}={value:?} is not a number of builds to keep (0 keeps them all)")
            })?;
        }
        Ok(policy)
    }
}

/// What a prune removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Build records removed.
    pub builds: usize,
    /// Cached pipeline binaries removed.
    pub binaries: usize,
    /// Blobs removed from the blob store (artifacts, journal records, cache archives).
    pub blobs: usize,
    /// The bytes all of them took.
    pub bytes: u64,
    /// Old builds kept because they still run.
    pub running: usize,
    /// Workspace copies (and scratch directories) removed from the records kept: a crashed
    /// run's, whose jobs never removed them.
    pub workspaces: usize,
    /// Builds whose stored blobs (artifacts, journal records) were removed because their
    /// record was gone already (their blobs are counted in `blobs`).
    pub orphans: usize,
    /// What could not be removed and why (it does not stop the prune).
    pub warnings: Vec<String>,
}

impl std::fmt::Display for Pruned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "removed {} build record{}, {} pipeline binar{}, {} stored blob{}: {:.1} MiB",
            self.builds,
            if self.builds == 1 { "" } else { "s" },
            self.binaries,
            if self.binaries == 1 { "y" } else { "ies" },
            self.blobs,
            if self.blobs == 1 { "" } else { "s" },
            self.bytes as f64 / (1024.0 * 1024.0)
        )?;
        if self.workspaces > 0 {
            let s = if self.workspaces == 1 { "y" } else { "ies" };
            write!(f, "; and {} workspace cop{s} left in the records kept", self.workspaces)?;
        }
        if self.orphans > 0 {
            let s = if self.orphans == 1 { "" } else { "s" };
            write!(f, "; and the artifacts of {} build{s} whose record was gone", self.orphans)?;
        }
        if self.running > 0 {
            write!(f, "; kept {} old build{} still running", self.running, if self.running == 1 { "" } else { "s" })?;
        }
        for warning in &self.warnings {
            write!(f, "\nwarning: {warning}")?;
        }
        Ok(())
    }
}

/// Why a prune stopped.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the cache could not be listed, read or removed.
    #[error("cannot {what} {}", path.display())]
    Io {
        /// What was being done ("remove", "list", ...).
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The blob store could not list or delete.
    #[error(transparent)]
    Store(#[from] monkeyci_store::Error),
}

fn io<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> Error + 'a {
    move |source| Error::Io { what, path: path.to_owned(), source }
}

/// Removes from the cache in `cache_dir` (and its blob store) what `policy` does not keep.
/// Blocking: file system walks and blob store calls.
pub fn prune(cache_dir: &Path, store: &dyn BlobStore, policy: &Policy) -> Result<Pruned, Error> {
    let mut pruned = Pruned::default();
    prune_builds(cache_dir, store, policy, &mut pruned)?;
    prune_orphans(&cache_dir.join("builds"), store, &mut pruned)?;
    prune_binaries(cache_dir, policy, &mut pruned)?;
    prune_cache_archives(store, policy, &mut pruned)?;
    Ok(pruned)
}

/// Build records beyond the newest `keep_builds`, with their artifacts and journal blobs.
fn prune_builds(cache_dir: &Path, store: &dyn BlobStore, policy: &Policy, pruned: &mut Pruned) -> Result<(), Error> {
    if policy.keep_builds == 0 {
        return Ok(());
    }
    let builds_dir = cache_dir.join("builds");
    let all = crate::record::builds(&builds_dir);
    let old = all.len().saturating_sub(policy.keep_builds);
    for id in &all[..old] {
        let dir = builds_dir.join(id);
        if crate::record::is_running(&dir) {
            pruned.running += 1;
            continue;
        }
        pruned.bytes += size_of_tree(&dir);
        std::fs::remove_dir_all(&dir).map_err(io("remove", &dir))?;
        pruned.builds += 1;
        for prefix in [keys::artifacts_prefix(id), keys::journal_records_prefix(id)] {
            remove_blobs(store, store.list_info(&prefix)?, pruned)?;
        }
    }
    for id in &all[old..] {
        let dir = builds_dir.join(id);
        if !crate::record::is_running(&dir) {
            remove_workspaces(&dir, pruned);
        }
    }
    Ok(())
}

/// The artifacts and journal blobs of builds that have no record directory at all (it was
/// removed by hand, or by a prune stopped halfway). A build has its record directory before
/// it stores anything, so a running build's blobs are never taken.
fn prune_orphans(builds_dir: &Path, store: &dyn BlobStore, pruned: &mut Pruned) -> Result<(), Error> {
    let mut orphans = std::collections::BTreeMap::<String, Vec<BlobInfo>>::new();
    for top in [keys::ARTIFACTS_PREFIX, keys::JOURNAL_PREFIX] {
        for info in store.list_info(top)? {
            let Some(build) = info.key.as_str().split('/').nth(1).map(str::to_owned) else { continue };
            if std::fs::symlink_metadata(builds_dir.join(&build)).is_err() {
                orphans.entry(build).or_default().push(info);
            }
        }
    }
    for (_, blobs) in orphans {
        pruned.orphans += 1;
        remove_blobs(store, blobs, pruned)?;
    }
    Ok(())
}

/// The workspace copies a crashed run left in the record in `dir` (its jobs remove their own
/// when they end). No link is followed: a link goes itself. What cannot be removed is a
/// warning, not an error: a prune goes on.
fn remove_workspaces(dir: &Path, pruned: &mut Pruned) {
    for path in crate::record::workspaces(dir) {
        let bytes = size_of_tree(&path);
        let removed = match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(&path),
            Ok(_) => std::fs::remove_file(&path),
            Err(err) => Err(err),
        };
        match removed {
            Ok(()) => {
                pruned.workspaces += 1;
                pruned.bytes += bytes;
            }
            Err(err) => pruned.warnings.push(format!("cannot remove {}: {err}", path.display())),
        }
    }
}

/// Pipeline binaries (`bin/<hash>/`) not used for `unused_binaries` (the compiler touches a
/// binary's directory whenever it is used), except those of running builds.
fn prune_binaries(cache_dir: &Path, policy: &Policy, pruned: &mut Pruned) -> Result<(), Error> {
    let bin = cache_dir.join("bin");
    let Ok(entries) = std::fs::read_dir(&bin) else { return Ok(()) };
    let now = SystemTime::now();
    // A running build (a suspended one too) relaunches its binary: it is in use, however old.
    let in_use = crate::record::binaries_in_use(&cache_dir.join("builds"));
    for entry in entries {
        let entry = entry.map_err(io("list", &bin))?;
        let path = entry.path();
        if in_use.iter().any(|binary| binary.starts_with(&path)) {
            continue;
        }
        let used = entry.metadata().and_then(|m| m.modified()).map_err(io("read the time of", &path))?;
        if now.duration_since(used).unwrap_or_default() > policy.unused_binaries {
            pruned.bytes += size_of_tree(&path);
            std::fs::remove_dir_all(&path).map_err(io("remove", &path))?;
            pruned.binaries += 1;
        }
    }
    Ok(())
}

/// All but the newest `keep_cache_archives` archives of each cache
/// (`caches/<repo>/<cache id>/<key hash>.tar.zst`).
fn prune_cache_archives(store: &dyn BlobStore, policy: &Policy, pruned: &mut Pruned) -> Result<(), Error> {
    let mut by_cache: std::collections::BTreeMap<String, Vec<BlobInfo>> = Default::default();
    for info in store.list_info(keys::CACHES_PREFIX)? {
        let cache = info.key.as_str().rsplit_once('/').map_or("", |(dir, _)| dir).to_owned();
        by_cache.entry(cache).or_default().push(info);
    }
    for (_, mut archives) in by_cache {
        archives.sort_by(|a, b| (b.modified, &b.key).cmp(&(a.modified, &a.key)));
        remove_blobs(store, archives.into_iter().skip(policy.keep_cache_archives).collect(), pruned)?;
    }
    Ok(())
}

fn remove_blobs(store: &dyn BlobStore, blobs: Vec<BlobInfo>, pruned: &mut Pruned) -> Result<(), Error> {
    for blob in blobs {
        if store.delete(&blob.key)? {
            pruned.blobs += 1;
            pruned.bytes += blob.size;
        }
    }
    Ok(())
}

/// Removes the cargo target directory the pipelines share (`target`), unless cargo is
/// compiling into it (it holds `debug/.cargo-lock`); returns the bytes freed.
pub fn remove_target_dir(target: &Path) -> Result<u64, Error> {
    if !target.exists() {
        return Ok(0);
    }
    let lock_path = target.join("debug").join(".cargo-lock");
    // Held until the directory is gone, so no compile starts meanwhile.
    let _lock = match std::fs::File::options().write(true).open(&lock_path) {
        Ok(lock) => match lock.try_lock() {
            Ok(()) => Some(lock),
            Err(_) => {
                let busy = std::io::Error::other("a pipeline is being compiled into it; try again when it is done");
                return Err(Error::Io { what: "remove", path: target.to_owned(), source: busy });
            }
        },
        Err(_) => None,
    };
    let bytes = size_of_tree(target);
    std::fs::remove_dir_all(target).map_err(io("remove", target))?;
    Ok(bytes)
}

/// The bytes of the files below `path` (what can be read of them).
fn size_of_tree(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return 0 };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path).into_iter().flatten().flatten().map(|entry| size_of_tree(&entry.path())).sum()
}

#[cfg(test)]
mod tests {
    use std::fs::{File, FileTimes};

    use super::*;
    use monkeyci_store::{BlobKey, LocalBlobStore};

    fn set_mtime(path: &Path, ago: Duration) {
        let file = File::open(path).unwrap();
        file.set_times(FileTimes::new().set_modified(SystemTime::now() - ago)).unwrap();
    }

    fn put(store: &dyn BlobStore, key: &str) {
        store.put(&BlobKey::new(key).unwrap(), &mut &b"blob"[..]).unwrap();
    }

    fn keys(store: &dyn BlobStore, prefix: &str) -> Vec<String> {
        store.list(prefix).unwrap().into_iter().map(|k| k.as_str().to_owned()).collect()
    }

    /// A recorded build `id`, last written `ago`.
    fn build(cache: &Path, id: &str, ago: Duration) {
        let dir = cache.join("builds").join(id);
        std::fs::create_dir_all(dir.join("logs")).unwrap();
        std::fs::write(dir.join("events.jsonl"), "{}\n").unwrap();
        set_mtime(&dir, ago);
    }

    #[test]
    fn keeps_the_newest_builds_recent_binaries_and_cache_archives() {
        let cache = tempfile::tempdir().unwrap();
        let cache = cache.path();
        let store = LocalBlobStore::new(cache).unwrap();
        let hour = Duration::from_secs(3600);
        for (i, id) in ["b-old", "b-mid", "b-new"].iter().enumerate() {
            build(cache, id, hour * (3 - i as u32));
            put(&store, &format!("artifacts/{id}/out.tar.zst"));
            put(&store, &format!("journal/{id}/big.json"));
        }
        for (hash, ago) in [("recent", hour), ("stale", hour * 24 * 40)] {
            let dir = cache.join("bin").join(hash);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("pipeline"), b"binary").unwrap();
            set_mtime(&dir, ago);
        }
        for n in 0..5 {
            put(&store, &format!("caches/repo/cargo/{n}.tar.zst"));
            set_mtime(&cache.join(format!("blobs/caches/repo/cargo/{n}.tar.zst")), hour * (10 - n));
        }
        put(&store, "caches/repo/npm/only.tar.zst");

        let policy = Policy { keep_builds: 2, ..Policy::default() };
        let pruned = prune(cache, &store, &policy).unwrap();
        assert_eq!((pruned.builds, pruned.binaries, pruned.blobs, pruned.running), (1, 1, 4, 0), "{pruned}");
        assert!(pruned.bytes > 0);
        assert_eq!(crate::record::builds(&cache.join("builds")), ["b-mid", "b-new"]);
        assert_eq!(keys(&store, "artifacts"), ["artifacts/b-mid/out.tar.zst", "artifacts/b-new/out.tar.zst"]);
        assert_eq!(keys(&store, "journal"), ["journal/b-mid/big.json", "journal/b-new/big.json"]);
        assert!(cache.join("bin/recent/pipeline").is_file() && !cache.join("bin/stale").exists());
        assert_eq!(
            keys(&store, "caches"),
            [
                "caches/repo/cargo/2.tar.zst",
                "caches/repo/cargo/3.tar.zst",
                "caches/repo/cargo/4.tar.zst",
                "caches/repo/npm/only.tar.zst"
            ]
        );
        assert_eq!(prune(cache, &store, &policy).unwrap(), Pruned::default(), "a second prune finds nothing");
    }

    /// Issue 10: artifacts live as long as their record. A build's whose record is gone
    /// (removed by hand) go at the next prune; a running build's, and a kept one's, stay.
    #[test]
    fn artifacts_whose_record_is_gone_are_removed_and_others_kept() {
        let cache = tempfile::tempdir().unwrap();
        let cache = cache.path();
        let store = LocalBlobStore::new(cache).unwrap();
        build(cache, "b-kept", Duration::ZERO);
        let _running = crate::record::Recorder::create(&cache.join("builds/b-running")).unwrap();
        for id in ["b-kept", "b-running", "b-gone"] {
            put(&store, &format!("artifacts/{id}/dist.tar.zst"));
            put(&store, &format!("journal/{id}/big.json"));
        }
        let pruned = prune(cache, &store, &Policy { keep_builds: 0, ..Policy::default() }).unwrap();
        assert_eq!((pruned.builds, pruned.orphans, pruned.blobs), (0, 1, 2), "{pruned}");
        assert!(pruned.to_string().contains("the artifacts of 1 build whose record was gone"), "{pruned}");
        assert_eq!(keys(&store, "artifacts"), ["artifacts/b-kept/dist.tar.zst", "artifacts/b-running/dist.tar.zst"]);
        assert_eq!(keys(&store, "journal"), ["journal/b-kept/big.json", "journal/b-running/big.json"]);
    }

    /// A crashed run's record kept the workspace copy of each job it ran (a `target/` each):
    /// pruning removes them from the records it keeps, but not from a build still running,
    /// and keeps what a user reads later.
    #[test]
    fn workspaces_left_in_kept_records_go_but_not_while_the_build_runs() {
        let cache = tempfile::tempdir().unwrap();
        let cache = cache.path();
        let store = LocalBlobStore::new(cache).unwrap();
        let outside = cache.join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "keep").unwrap();
        for id in ["b-crashed", "b-running"] {
            build(cache, id, Duration::ZERO);
            let job = cache.join("builds").join(id).join("jobs/test-1");
            std::fs::create_dir_all(job.join("work/target/debug")).unwrap();
            std::fs::write(job.join("work/target/debug/big"), vec![0u8; 8192]).unwrap();
            std::os::unix::fs::symlink(&outside, job.join("work/target/link")).unwrap();
            std::fs::create_dir_all(job.join("tmp")).unwrap();
            std::fs::create_dir_all(job.join("logs")).unwrap();
            std::fs::write(job.join("logs/0.out"), "out").unwrap();
            std::fs::write(job.join("events.jsonl"), "{}\n").unwrap();
        }
        let lock = crate::record::lock(&cache.join("builds/b-running")).unwrap();

        let pruned = prune(cache, &store, &Policy::default()).unwrap();
        assert_eq!((pruned.builds, pruned.workspaces), (0, 2), "{pruned}");
        assert!(pruned.bytes >= 8192 && pruned.warnings.is_empty(), "{pruned}");
        assert!(pruned.to_string().ends_with("; and 2 workspace copies left in the records kept"), "{pruned}");
        let crashed = cache.join("builds/b-crashed/jobs/test-1");
        assert!(!crashed.join("work").exists() && !crashed.join("tmp").exists());
        assert!(crashed.join("logs/0.out").is_file() && crashed.join("events.jsonl").is_file());
        assert!(outside.join("keep").is_file(), "a link in a workspace is not followed");
        let running = cache.join("builds/b-running/jobs/test-1");
        assert!(running.join("work/target/debug/big").is_file(), "a running build's jobs may use theirs");

        drop(lock);
        assert_eq!(prune(cache, &store, &Policy::default()).unwrap().workspaces, 2);
        assert_eq!(crate::record::workspaces(&cache.join("builds/b-running")), Vec::<PathBuf>::new());
    }

    #[test]
    fn a_running_build_is_kept_however_old_and_zero_keeps_every_build() {
        let cache = tempfile::tempdir().unwrap();
        let cache = cache.path();
        let store = LocalBlobStore::new(cache).unwrap();
        build(cache, "b-running", Duration::from_secs(7200));
        build(cache, "b-done", Duration::from_secs(3600));
        build(cache, "b-now", Duration::ZERO);
        let lock = crate::record::lock(&cache.join("builds/b-running")).unwrap();

        let all = Policy { keep_builds: 0, ..Policy::default() };
        assert_eq!(prune(cache, &store, &all).unwrap().builds, 0);
        let pruned = prune(cache, &store, &Policy { keep_builds: 1, ..Policy::default() }).unwrap();
        assert_eq!((pruned.builds, pruned.running), (1, 1), "{pruned}");
        assert_eq!(crate::record::builds(&cache.join("builds")), ["b-running", "b-now"]);
        drop(lock);
        let pruned = prune(cache, &store, &Policy { keep_builds: 1, ..Policy::default() }).unwrap();
        assert_eq!((pruned.builds, pruned.running), (1, 0), "{pruned}");
    }

    /// #9: `cache prune` during a suspended build deleted its binary, and the resume failed
    /// with a misleading message. A running build's binary is in use, however old.
    #[test]
    fn the_binary_of_a_running_build_is_kept() {
        let cache = tempfile::tempdir().unwrap();
        let cache = cache.path();
        let store = LocalBlobStore::new(cache).unwrap();
        let binary = cache.join("bin/h1/pipeline");
        std::fs::create_dir_all(binary.parent().unwrap()).unwrap();
        std::fs::write(&binary, b"binary").unwrap();
        set_mtime(binary.parent().unwrap(), Duration::from_secs(3600));
        let mut recorder = crate::record::Recorder::create(&cache.join("builds/b-suspended")).unwrap();
        recorder.note_binary(&binary);

        let eager = Policy { unused_binaries: Duration::ZERO, ..Policy::default() };
        assert_eq!(prune(cache, &store, &eager).unwrap().binaries, 0);
        assert!(binary.is_file(), "the running build's binary went");
        drop(recorder);
        assert_eq!(prune(cache, &store, &eager).unwrap().binaries, 1, "once the build ended it may go");
    }

    #[test]
    fn the_target_dir_goes_unless_cargo_compiles_into_it() {
        let cache = tempfile::tempdir().unwrap();
        let target = cache.path().join("target");
        std::fs::create_dir_all(target.join("debug/deps")).unwrap();
        std::fs::write(target.join("debug/deps/libfoo.rlib"), vec![0u8; 4096]).unwrap();
        let lock = File::create(target.join("debug/.cargo-lock")).unwrap();
        lock.lock().unwrap();
        let Err(Error::Io { source, .. }) = remove_target_dir(&target) else { panic!("removed while locked") };
        assert!(source.to_string().contains("being compiled"), "{source}");
        assert!(target.join("debug/deps/libfoo.rlib").is_file(), "nothing goes while cargo holds the lock");
        drop(lock);
        assert!(remove_target_dir(&target).unwrap() >= 4096);
        assert!(!target.exists());
        assert_eq!(remove_target_dir(&target).unwrap(), 0, "nothing to remove is no error");
    }

    #[test]
    fn a_bad_keep_builds_setting_is_an_error_naming_it() {
        let setting = |value: &str| Policy::with_keep_builds_setting(Some(std::ffi::OsStr::new(value)));
        let err = setting("lots").unwrap_err();
        assert!(err.contains("MONKEYCI_KEEP_BUILDS") && err.contains("lots"), "{err}");
        assert_eq!(setting(" 7 ").unwrap().keep_builds, 7);
        assert_eq!(Policy::with_keep_builds_setting(None).unwrap(), Policy::default());
    }
}
