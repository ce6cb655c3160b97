//! Artifacts and caches of container jobs: archives of parts of a job's work dir, kept in the
//! blob store.
//!
//! Keys come from [`crate::keys`]: artifacts are scoped to the build, caches shared by the
//! builds of a repository. A cache's key is the one the pipeline gave, its key files' hash, or
//! both (`linux-main-3fa2…`); on a miss, the newest archive matching the first restore key that
//! matches any is restored, or without restore keys the newest of the id
//! ([`CacheRestore`] says which, for the job's log). A key's archive is kept as first saved, as
//! CI caches do: a cache restored by its exact key whose key did not change is not packed and
//! saved again ([`CacheSave::KeyHit`]); one restored from nothing or from another key is.
//!
//! Paths are relative to the job's work dir, or to the job's own cargo home for
//! `~/.cargo/registry` and `~/.cargo/git` ([`CacheDirs`]; the rules are
//! [`monkeyci_protocol::cache`]'s), and restored at the same place. After the build,
//! [`stored_artifacts`] lists a build's artifacts and [`extract_artifact`] extracts one
//! elsewhere, with the same checks. Archives are made by
//! [`monkeyci_archive`]; this module only picks the paths and keys. Every function blocks: call
//! them from `spawn_blocking`.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use monkeyci_protocol::cache::{self, CachePath};
use monkeyci_protocol::id::InvalidId;
use monkeyci_protocol::{ArtifactSpec, CacheSpec, RestoreSpec};
use parking_lot::Mutex;
use sha2::{Digest, Sha256};

use monkeyci_archive as archive;

use crate::{BlobKey, BlobStore, keys};

/// Why an artifact or cache could not be saved or restored.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required artifact was never saved in this build; holds the artifact id.
    #[error(
        "artifact `{0}` does not exist: no earlier job of this build saved it (does this job depend on the one that does?)"
    )]
    MissingArtifact(String),
    /// A build has no artifact of the id asked for (read back after the build).
    #[error("build {build} has no artifact `{id}`; {}", saved_list(.saved))]
    NoSuchArtifact {
        /// The build.
        build: String,
        /// The artifact id asked for.
        id: String,
        /// The ids of the artifacts it has.
        saved: Vec<String>,
    },
    /// The path of an artifact or cache is not a relative path inside the work dir.
    #[error("path `{path}` of {what} `{id}` {reason}")]
    BadPath {
        /// "artifact" or "cache".
        what: &'static str,
        /// The artifact or cache id.
        id: String,
        /// The path as given in the job spec.
        path: String,
        /// What is wrong with it, and what to write instead.
        reason: &'static str,
    },
    /// The path to save does not exist in the work dir.
    #[error("path `{path}` of {what} `{id}` does not exist in the work dir: nothing to save")]
    NothingToSave {
        /// "artifact" or "cache".
        what: &'static str,
        /// The artifact or cache id.
        id: String,
        /// The path as given in the job spec.
        path: String,
    },
    /// The artifact or cache id breaks the id rule ([`monkeyci_protocol::id`]).
    #[error("invalid {what} id `{id}`: {reason}")]
    BadId {
        /// "artifact" or "cache".
        what: &'static str,
        /// The id as given.
        id: String,
        /// Which rule it breaks, and what to use instead.
        reason: String,
    },
    /// A cache's path or keys break the rules of [`monkeyci_protocol::cache`].
    #[error("invalid cache `{id}`")]
    InvalidCache {
        /// The cache id.
        id: String,
        /// What is wrong.
        #[source]
        problem: cache::Problem,
    },
    /// The scratch directory or the temporary archive in it could not be created or read; holds
    /// that path.
    #[error("cannot use `{}` for a temporary archive", .0.display())]
    Temp(PathBuf, #[source] std::io::Error),
    /// Packing or unpacking the archive failed.
    #[error(transparent)]
    Archive(#[from] archive::Error),
    /// The blob store failed.
    #[error(transparent)]
    Store(#[from] crate::Error),
}

/// What [`JobFiles::save_cache`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheSave {
    /// The cache was packed and saved; holds the number of files.
    Saved(u64),
    /// Nothing was saved: the cache was restored by the key it has now (holds the key), and a
    /// key's archive is kept as first saved.
    KeyHit(String),
}

/// What [`JobFiles::restore_cache`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheRestore {
    /// Nothing restored: no archive has the key, nor matches a restore key (without restore
    /// keys: the id has no archive yet).
    Miss {
        /// The cache's key.
        key: String,
    },
    /// The archive of the exact key was restored.
    Hit {
        /// The cache's key.
        key: String,
    },
    /// No archive has the key; another one was restored.
    Fallback {
        /// The cache's key (it is saved under it if the job succeeds).
        key: String,
        /// The key of the archive restored.
        restored: String,
        /// The restore key it matched; `None`: it is the newest archive of the id (the cache
        /// has no restore keys).
        restore_key: Option<String>,
    },
}

/// Where a job's caches go: its work dir, and its own cargo home (for `~/.cargo/registry` and
/// `~/.cargo/git`: the directory the job's `CARGO_HOME` names, never the machine's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheDirs {
    /// The root of the job's copy of the checkout: paths and key files are relative to it.
    pub work: PathBuf,
    /// The job's own cargo home.
    pub cargo_home: PathBuf,
}

impl CacheDirs {
    /// The directory `spec`'s path is relative to, and that path.
    fn locate<'a>(&'a self, spec: &'a CacheSpec) -> Result<(&'a Path, &'a Path), Error> {
        if let Some(problem) = spec.problem() {
            return Err(Error::InvalidCache { id: spec.id.clone(), problem });
        }
        match spec.location() {
            Ok(CachePath::Work(path)) => Ok((&self.work, Path::new(path))),
            Ok(CachePath::CargoHome(path)) => Ok((&self.cargo_home, Path::new(path))),
            Err(problem) => Err(Error::InvalidCache { id: spec.id.clone(), problem }),
        }
    }
}

/// Where a build's artifacts and a repository's caches live.
#[derive(Clone)]
pub struct JobFiles {
    store: Arc<dyn BlobStore>,
    build_id: String,
    repo: String,
    /// The caches restored by their exact key: (work dir, key), until they are saved or
    /// [forgotten](JobFiles::forget).
    hits: Arc<Mutex<HashSet<(PathBuf, BlobKey)>>>,
}

impl JobFiles {
    /// Files of build `build_id` of the repository checked out at `checkout`.
    pub fn new(store: Arc<dyn BlobStore>, build_id: &str, checkout: &Path) -> JobFiles {
        // A local repository is known by where it is; the digest keeps the key short and safe.
        let digest = Sha256::digest(checkout.to_string_lossy().as_bytes());
        let repo: String = hex::encode(&digest[..8]);
        JobFiles { store, build_id: build_id.to_owned(), repo, hits: Arc::default() }
    }

    fn artifact_key(&self, id: &str) -> Result<BlobKey, Error> {
        check_id("artifact", id)?;
        Ok(keys::artifact(&self.build_id, id)?)
    }

    /// Restores an artifact into `work`; `Ok(false)` for a missing optional one.
    pub fn restore_artifact(&self, spec: &RestoreSpec, work: &Path) -> Result<bool, Error> {
        let key = self.artifact_key(&spec.id)?;
        match self.store.get(&key)? {
            Some(reader) => {
                archive::unpack(reader, work)?;
                Ok(true)
            }
            None if spec.optional => Ok(false),
            None => Err(Error::MissingArtifact(spec.id.clone())),
        }
    }

    /// Saves an artifact from `work`; returns the number of files.
    pub fn save_artifact(&self, spec: &ArtifactSpec, work: &Path, scratch: &Path) -> Result<u64, Error> {
        let key = self.artifact_key(&spec.id)?;
        let path = checked_path("artifact", &spec.id, &spec.path)?;
        if std::fs::symlink_metadata(work.join(&path)).is_err() {
            return Err(Error::NothingToSave { what: "artifact", id: spec.id.clone(), path: spec.path.clone() });
        }
        self.put_archive(&key, work, &path, scratch)
    }

    /// Restores a cache into `dirs`: the archive of its key, else the newest one matching its
    /// first restore key that matches any (without restore keys: the newest of its id). An
    /// exact hit is remembered for [`save_cache`](JobFiles::save_cache) of the same work dir.
    pub fn restore_cache(&self, spec: &CacheSpec, dirs: &CacheDirs) -> Result<CacheRestore, Error> {
        let (base, _) = dirs.locate(spec)?;
        let (exact, wanted) = self.cache_key(spec, &dirs.work)?;
        let (key, outcome) = if self.store.exists(&exact)? {
            (exact, CacheRestore::Hit { key: wanted })
        } else {
            match self.fallback(spec)? {
                Some((key, restore_key)) => {
                    let restored = stored_cache_key(&key);
                    (key, CacheRestore::Fallback { key: wanted, restored, restore_key })
                }
                None => return Ok(CacheRestore::Miss { key: wanted }),
            }
        };
        let Some(reader) = self.store.get(&key)? else {
            // Pruned since it was found.
            let (CacheRestore::Hit { key } | CacheRestore::Fallback { key, .. } | CacheRestore::Miss { key }) = outcome;
            return Ok(CacheRestore::Miss { key });
        };
        archive::unpack(reader, base)?;
        if matches!(outcome, CacheRestore::Hit { .. }) {
            self.hits.lock().insert((dirs.work.clone(), key));
        }
        Ok(outcome)
    }

    /// The archive to restore on a miss, and the restore key it matched: the newest whose key
    /// starts with the first restore key that matches any; without restore keys, the newest
    /// of the id.
    fn fallback(&self, spec: &CacheSpec) -> Result<Option<(BlobKey, Option<String>)>, Error> {
        let prefix = keys::cache_prefix(&self.repo, &spec.id);
        if spec.restore_keys.is_empty() {
            return Ok(self.store.newest(&prefix)?.map(|key| (key, None)));
        }
        let archives = self.store.list_info(&prefix)?;
        for restore_key in &spec.restore_keys {
            let newest = archives
                .iter()
                .filter(|info| stored_cache_key(&info.key).starts_with(restore_key.as_str()))
                .max_by(|a, b| (a.modified, &a.key).cmp(&(b.modified, &b.key)));
            if let Some(info) = newest {
                return Ok(Some((info.key.clone(), Some(restore_key.clone()))));
            }
        }
        Ok(None)
    }

    /// Saves a cache from `dirs` under its current key, unless it was restored into the same
    /// work dir by that very key ([`CacheSave::KeyHit`]: a key's archive is kept as first
    /// saved).
    pub fn save_cache(&self, spec: &CacheSpec, dirs: &CacheDirs, scratch: &Path) -> Result<CacheSave, Error> {
        let (base, path) = dirs.locate(spec)?;
        let (key, wanted) = self.cache_key(spec, &dirs.work)?;
        let hit = {
            let mut hits = self.hits.lock();
            let hit = hits.remove(&(dirs.work.clone(), key.clone()));
            // A hit under a key the job changed since is done with too.
            let prefix = format!("{}/", keys::cache_prefix(&self.repo, &spec.id));
            hits.retain(|(dir, old)| *dir != dirs.work || !old.as_str().starts_with(&prefix));
            hit
        };
        if hit {
            return Ok(CacheSave::KeyHit(wanted));
        }
        if std::fs::symlink_metadata(base.join(path)).is_err() {
            return Err(Error::NothingToSave { what: "cache", id: spec.id.clone(), path: spec.path.clone() });
        }
        self.put_archive(&key, base, path, scratch).map(CacheSave::Saved)
    }

    /// Forgets the caches restored into `work` that were not saved (the job failed, or the
    /// key changed): call it once the job using `work` ended.
    pub fn forget(&self, work: &Path) {
        self.hits.lock().retain(|(dir, _)| dir != work);
    }

    /// The blob key of the cache for its current key files, and its key as people read it:
    /// the pipeline's key, the key files' hash, or both joined by `-`.
    fn cache_key(&self, spec: &CacheSpec, work: &Path) -> Result<(BlobKey, String), Error> {
        check_id("cache", &spec.id)?;
        let key = match (&spec.key, spec.key_files.is_empty()) {
            (Some(key), true) => key.clone(),
            (Some(key), false) => format!("{key}-{}", files_hash(&spec.key_files, work)),
            // Without either, the hash of no files: one key for ever, as before keys existed.
            (None, _) => files_hash(&spec.key_files, work),
        };
        Ok((keys::cache(&self.repo, &spec.id, &key)?, key))
    }

    /// Packs `path` of `work` into a scratch file, then stores it: a failed pack never leaves
    /// a partial blob.
    fn put_archive(&self, key: &BlobKey, work: &Path, path: &Path, scratch: &Path) -> Result<u64, Error> {
        std::fs::create_dir_all(scratch).map_err(|e| Error::Temp(scratch.to_owned(), e))?;
        let temp = scratch.join(format!("{}.partial", key.as_str().replace('/', "_")));
        let file = File::create(&temp).map_err(|e| Error::Temp(temp.clone(), e))?;
        let stats = archive::pack(work, &[path], file);
        let result = stats.map_err(Error::from).and_then(|stats| {
            let mut file = File::open(&temp).map_err(|e| Error::Temp(temp.clone(), e))?;
            self.store.put(key, &mut file)?;
            Ok(stats.files)
        });
        let _ = std::fs::remove_file(&temp);
        result
    }
}

/// Artifacts of action jobs, which work in the checkout itself.
pub struct ActionArtifacts {
    files: JobFiles,
    checkout: PathBuf,
    scratch: PathBuf,
}

impl ActionArtifacts {
    /// Artifacts of `files`, saved from and restored into `checkout`, packed through `scratch`
    /// (a directory for temporary archives, created when needed).
    pub fn new(files: JobFiles, checkout: PathBuf, scratch: PathBuf) -> ActionArtifacts {
        ActionArtifacts { files, checkout, scratch }
    }

    /// Saves `path` of the checkout as artifact `id`.
    pub fn save(&self, id: &str, path: &str) -> Result<u64, Error> {
        let spec = ArtifactSpec { id: id.to_owned(), path: path.to_owned() };
        self.files.save_artifact(&spec, &self.checkout, &self.scratch)
    }

    /// Restores artifact `id` into the checkout; `Ok(false)` when there is none.
    pub fn restore(&self, id: &str) -> Result<bool, Error> {
        let spec = RestoreSpec { id: id.to_owned(), optional: true };
        self.files.restore_artifact(&spec, &self.checkout)
    }
}

/// The hash of the contents of `files` (relative to `work`); a missing one hashes as absent.
fn files_hash(files: &[String], work: &Path) -> String {
    let mut hasher = Sha256::new();
    for file in files {
        hasher.update(file.as_bytes());
        hasher.update([0]);
        if let Ok(bytes) = std::fs::read(work.join(file)) {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(&bytes);
        }
    }
    hex::encode(&hasher.finalize()[..12])
}

/// The cache key an archive was saved under (`caches/<repo>/<id>/<escaped key>.tar.zst`).
fn stored_cache_key(key: &BlobKey) -> String {
    let name = key.as_str().rsplit('/').next().unwrap_or_default();
    cache::unescape_key(name.strip_suffix(".tar.zst").unwrap_or(name))
}

/// An artifact a build saved, as [`stored_artifacts`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredArtifact {
    /// Its id.
    pub id: String,
    /// The size of its archive, in bytes.
    pub size: u64,
    /// When it was saved.
    pub saved: std::time::SystemTime,
}

/// The artifacts build `build_id` saved, by id. They are kept as long as the build's record
/// (see `monkeyci_build::prune`).
pub fn stored_artifacts(store: &dyn BlobStore, build_id: &str) -> Result<Vec<StoredArtifact>, Error> {
    let mut found: Vec<StoredArtifact> = store
        .list_info(&keys::artifacts_prefix(build_id))?
        .into_iter()
        .filter_map(|info| {
            let id = info.key.as_str().rsplit('/').next()?.strip_suffix(".tar.zst")?.to_owned();
            Some(StoredArtifact { id, size: info.size, saved: info.modified })
        })
        .collect();
    found.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(found)
}

/// Extracts artifact `id` of build `build_id` into `dest` (created if needed), with the
/// checks of every restore ([`monkeyci_archive::unpack`]: no absolute path, no `..`, no link
/// leading out of `dest`); a file already there is replaced. Blocks.
pub fn extract_artifact(
    store: &dyn BlobStore,
    build_id: &str,
    id: &str,
    dest: &Path,
) -> Result<archive::UnpackStats, Error> {
    check_id("artifact", id)?;
    match store.get(&keys::artifact(build_id, id)?)? {
        Some(reader) => Ok(archive::unpack(reader, dest)?),
        None => {
            let saved = stored_artifacts(store, build_id)?.into_iter().map(|a| a.id).collect();
            Err(Error::NoSuchArtifact { build: build_id.to_owned(), id: id.to_owned(), saved })
        }
    }
}

/// "its artifacts are: a, b", or that there are none.
fn saved_list(saved: &[String]) -> String {
    if saved.is_empty() { "it saved none".to_owned() } else { format!("its artifacts are: {}", saved.join(", ")) }
}

fn check_id(what: &'static str, id: &str) -> Result<(), Error> {
    // The id rule's own messages speak of job ids: say it for artifacts and caches.
    let reason = match monkeyci_protocol::id::check(id) {
        Ok(()) => return Ok(()),
        Err(InvalidId::Empty) => "it is empty".to_owned(),
        Err(InvalidId::Character { bad, .. }) => {
            format!("{bad:?} is not allowed; use letters, digits, `-`, `_` and `.`")
        }
        Err(InvalidId::Reserved(_)) => "`.` and `..` are reserved; use letters or digits too".to_owned(),
    };
    Err(Error::BadId { what, id: id.to_owned(), reason })
}

/// `path` of artifact or cache `id`, if it stays inside the work dir.
fn checked_path(what: &'static str, id: &str, path: &str) -> Result<PathBuf, Error> {
    let bad = |reason| Err(Error::BadPath { what, id: id.to_owned(), path: path.to_owned(), reason });
    if path.is_empty() {
        return bad("is empty; use `.` for the whole work dir");
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return bad("contains `..`; name a path inside the work dir"),
            Component::RootDir | Component::Prefix(_) => return bad("is absolute; give it relative to the work dir"),
        }
    }
    Ok(PathBuf::from(path))
}

#[cfg(test)]
mod tests {
    use monkeyci_protocol::error_chain as chain;

    use super::*;

    #[test]
    fn bad_paths_and_ids_name_the_value_and_the_fix() {
        let message = |result: Result<PathBuf, Error>| result.unwrap_err().to_string();
        assert_eq!(
            message(checked_path("artifact", "dist", "")),
            "path `` of artifact `dist` is empty; use `.` for the whole work dir"
        );
        assert_eq!(
            message(checked_path("artifact", "dist", "../target")),
            "path `../target` of artifact `dist` contains `..`; name a path inside the work dir"
        );
        assert_eq!(
            message(checked_path("artifact", "dist", "/etc")),
            "path `/etc` of artifact `dist` is absolute; give it relative to the work dir"
        );
        assert_eq!(checked_path("artifact", "dist", "./target/release").unwrap(), Path::new("./target/release"));
        assert_eq!(checked_path("artifact", "dist", ".").unwrap(), Path::new("."));

        let message = |id: &str| check_id("artifact", id).unwrap_err().to_string();
        assert_eq!(message(""), "invalid artifact id ``: it is empty");
        assert_eq!(
            message("a/b"),
            "invalid artifact id `a/b`: '/' is not allowed; use letters, digits, `-`, `_` and `.`"
        );
        assert_eq!(message(".."), "invalid artifact id `..`: `.` and `..` are reserved; use letters or digits too");
        assert!(check_id("cache", "cargo-target_1.x").is_ok());
    }

    /// Issue 10: a build's artifacts are listed and extracted after it, with the checks of a
    /// restore: an archive naming `..` or a link leading out writes nothing outside.
    #[test]
    fn a_builds_artifacts_are_listed_and_extracted_with_the_checks_of_a_restore() {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(crate::LocalBlobStore::new(tmp.path().join("store")).unwrap());
        let files = JobFiles::new(Arc::clone(&store), "b1", tmp.path());
        let work = tmp.path().join("work");
        std::fs::create_dir_all(work.join("dist/bin")).unwrap();
        std::fs::write(work.join("dist/bin/app"), "binary").unwrap();
        std::fs::write(work.join("report.txt"), "ok").unwrap();
        let scratch = tmp.path().join("scratch");
        for (id, path) in [("dist", "dist"), ("report", "report.txt")] {
            files.save_artifact(&ArtifactSpec { id: id.into(), path: path.into() }, &work, &scratch).unwrap();
        }
        let listed = stored_artifacts(store.as_ref(), "b1").unwrap();
        let ids: Vec<&str> = listed.iter().map(|a| a.id.as_str()).collect();
        assert_eq!(ids, ["dist", "report"]);
        assert!(listed.iter().all(|a| a.size > 0));
        assert!(stored_artifacts(store.as_ref(), "b2").unwrap().is_empty());

        let dest = tmp.path().join("out");
        let stats = extract_artifact(store.as_ref(), "b1", "dist", &dest).unwrap();
        assert_eq!((stats.files, std::fs::read_to_string(dest.join("dist/bin/app")).unwrap()), (1, "binary".into()));
        let err = extract_artifact(store.as_ref(), "b1", "nope", &dest).unwrap_err();
        assert_eq!(err.to_string(), "build b1 has no artifact `nope`; its artifacts are: dist, report");
        let err = extract_artifact(store.as_ref(), "b2", "dist", &dest).unwrap_err();
        assert_eq!(err.to_string(), "build b2 has no artifact `dist`; it saved none");
        assert!(matches!(extract_artifact(store.as_ref(), "b1", "../x", &dest), Err(Error::BadId { .. })));

        // A hostile archive: a link out, then a file through it.
        let mut hostile = Vec::new();
        {
            let mut tar = tar::Builder::new(zstd::Encoder::new(&mut hostile, 0).unwrap().auto_finish());
            let mut link = tar::Header::new_gnu();
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_size(0);
            tar.append_link(&mut link, "escape", tmp.path()).unwrap();
            let mut file = tar::Header::new_gnu();
            file.set_size(3);
            tar.append_data(&mut file, "escape/pwned", &b"bad"[..]).unwrap();
            tar.finish().unwrap();
        }
        store.put(&keys::artifact("b1", "hostile").unwrap(), &mut hostile.as_slice()).unwrap();
        let err = extract_artifact(store.as_ref(), "b1", "hostile", &dest).unwrap_err();
        assert!(matches!(err, Error::Archive(_)), "{err}");
        assert!(!tmp.path().join("pwned").exists(), "nothing is written outside the destination");
    }

    #[test]
    fn a_missing_artifact_says_which_and_why() {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(crate::LocalBlobStore::new(tmp.path().join("store")).unwrap());
        let files = JobFiles::new(store, "b1", tmp.path());
        let work = tmp.path().join("work");
        let missing = RestoreSpec { id: "dist".to_owned(), optional: false };
        let err = files.restore_artifact(&missing, &work).unwrap_err();
        assert!(err.to_string().starts_with("artifact `dist` does not exist: "), "{err}");
        let optional = RestoreSpec { id: "dist".to_owned(), optional: true };
        assert!(!files.restore_artifact(&optional, &work).unwrap());
        let err = files
            .save_artifact(&ArtifactSpec { id: "dist".into(), path: "out".into() }, &work, tmp.path())
            .unwrap_err();
        assert_eq!(err.to_string(), "path `out` of artifact `dist` does not exist in the work dir: nothing to save");
    }

    fn store(tmp: &Path) -> (Arc<dyn BlobStore>, JobFiles) {
        let store: Arc<dyn BlobStore> = Arc::new(crate::LocalBlobStore::new(tmp.join("store")).unwrap());
        let files = JobFiles::new(Arc::clone(&store), "b1", tmp);
        (store, files)
    }

    /// A job's directories: `<name>/work` with `Cargo.lock` holding `lock` and `target/<name>`,
    /// and `<name>/cargo-home`.
    fn job(tmp: &Path, name: &str, lock: &str) -> CacheDirs {
        let dirs = CacheDirs { work: tmp.join(name).join("work"), cargo_home: tmp.join(name).join("cargo-home") };
        std::fs::create_dir_all(dirs.work.join("target")).unwrap();
        std::fs::write(dirs.work.join("Cargo.lock"), lock).unwrap();
        std::fs::write(dirs.work.join("target").join(name), name).unwrap();
        dirs
    }

    /// What real projects' CI showed: a cache whose key hit was packed and saved again after
    /// every job (5 s of a 17 s job). A key's archive is kept as first saved; a cache restored
    /// from nothing or from another key, or whose key files changed during the job, is saved.
    #[test]
    fn a_cache_restored_by_its_exact_key_is_not_saved_again() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, files) = store(tmp.path());
        let spec = CacheSpec {
            id: "target".into(),
            path: "target".into(),
            key_files: vec!["Cargo.lock".into()],
            ..CacheSpec::default()
        };
        let scratch = tmp.path().join("scratch");
        let job = |name: &str, lock: &str| job(tmp.path(), name, lock);
        let archives = || store.list("caches").unwrap().len();

        let first = job("first", "v1");
        assert!(matches!(files.restore_cache(&spec, &first).unwrap(), CacheRestore::Miss { .. }));
        assert_eq!(files.save_cache(&spec, &first, &scratch).unwrap(), CacheSave::Saved(1));

        let second = job("second", "v1");
        let CacheRestore::Hit { key } = files.restore_cache(&spec, &second).unwrap() else { panic!("no hit") };
        assert_eq!(files.save_cache(&spec, &second, &scratch).unwrap(), CacheSave::KeyHit(key));
        assert_eq!(archives(), 1);

        // Restored from another key: saved under the new one.
        let third = job("third", "v2");
        let restored = files.restore_cache(&spec, &third).unwrap();
        assert!(matches!(restored, CacheRestore::Fallback { restore_key: None, .. }), "{restored:?}");
        assert!(third.work.join("target/first").is_file(), "the newest archive of the id is restored");
        assert!(matches!(files.save_cache(&spec, &third, &scratch).unwrap(), CacheSave::Saved(_)));
        assert_eq!(archives(), 2);

        // A key hit whose key files change during the job: saved under the new key.
        let fourth = job("fourth", "v2");
        assert!(matches!(files.restore_cache(&spec, &fourth).unwrap(), CacheRestore::Hit { .. }));
        std::fs::write(fourth.work.join("Cargo.lock"), "v3").unwrap();
        assert!(matches!(files.save_cache(&spec, &fourth, &scratch).unwrap(), CacheSave::Saved(_)));
        assert_eq!(archives(), 3);

        // A hit not saved (the job failed) is forgotten with its work dir.
        let fifth = job("fifth", "v3");
        assert!(matches!(files.restore_cache(&spec, &fifth).unwrap(), CacheRestore::Hit { .. }));
        assert_eq!(files.hits.lock().len(), 1);
        files.forget(&fifth.work);
        assert!(files.hits.lock().is_empty());
    }

    /// Issue 10: a key computed by the pipeline, joined with the key files' hash; on a miss,
    /// the newest archive matching the first restore key that matches any, as `actions/cache`
    /// does, and nothing when none matches (no fallback to the newest of the id then).
    #[test]
    fn a_miss_restores_the_newest_archive_of_the_first_matching_restore_key() {
        let tmp = tempfile::tempdir().unwrap();
        let (_store, files) = store(tmp.path());
        let scratch = tmp.path().join("scratch");
        let spec = |key: &str, restore: &[&str]| CacheSpec {
            id: "target".into(),
            path: "target".into(),
            key: Some(key.into()),
            key_files: vec!["Cargo.lock".into()],
            restore_keys: restore.iter().map(|k| k.to_string()).collect(),
        };
        let save = |name: &str, key: &str| {
            let dirs = job(tmp.path(), name, "v1");
            let spec = spec(key, &[]);
            assert!(matches!(files.save_cache(&spec, &dirs, &scratch).unwrap(), CacheSave::Saved(1)), "{name}");
            // Write times apart, so "newest" is not decided by the key.
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        save("main-old", "linux-main");
        save("feature", "linux-feature/x");
        save("main-new", "linux-main");
        save("windows", "windows-main");

        let wanted = job(tmp.path(), "wanted", "v1");
        let hash = files_hash(&["Cargo.lock".into()], &wanted.work);
        // The exact key: a hit, whatever the restore keys.
        let hit = files.restore_cache(&spec("linux-feature/x", &["windows-"]), &wanted).unwrap();
        assert_eq!(hit, CacheRestore::Hit { key: format!("linux-feature/x-{hash}") });

        // A miss: the first restore key matching any archive wins, then the newest of those.
        let other = job(tmp.path(), "other", "v1");
        let restored =
            files.restore_cache(&spec("linux-fix", &["linux-fix-", "linux-main", "linux-"]), &other).unwrap();
        assert_eq!(
            restored,
            CacheRestore::Fallback {
                key: format!("linux-fix-{hash}"),
                restored: format!("linux-main-{hash}"),
                restore_key: Some("linux-main".into()),
            }
        );
        assert!(other.work.join("target/main-new").is_file() && !other.work.join("target/main-old").exists());
        let by_os = files.restore_cache(&spec("linux-fix", &["linux-"]), &job(tmp.path(), "os", "v1")).unwrap();
        assert!(matches!(by_os, CacheRestore::Fallback { ref restored, .. } if restored.starts_with("linux-main")));

        // No restore key matches: nothing, though the id has archives.
        let none = job(tmp.path(), "none", "v1");
        let missed = files.restore_cache(&spec("mac-main", &["mac-"]), &none).unwrap();
        assert_eq!(missed, CacheRestore::Miss { key: format!("mac-main-{hash}") });
        assert_eq!(std::fs::read_dir(none.work.join("target")).unwrap().count(), 1, "nothing restored");
        // `""` matches every key: the newest of the id, as without restore keys.
        let any = files.restore_cache(&spec("mac-main", &["mac-", ""]), &none).unwrap();
        assert!(matches!(any, CacheRestore::Fallback { ref restored, .. } if restored.starts_with("windows-main")));

        // A key alone, without key files.
        let plain = CacheSpec { key_files: Vec::new(), ..spec("linux-main", &[]) };
        let plain_dirs = job(tmp.path(), "plain", "v1");
        assert!(matches!(files.save_cache(&plain, &plain_dirs, &scratch).unwrap(), CacheSave::Saved(1)));
        let again = files.restore_cache(&plain, &job(tmp.path(), "again", "v9")).unwrap();
        assert_eq!(again, CacheRestore::Hit { key: "linux-main".into() });
    }

    /// Issue 10: `~/.cargo/registry` is saved from and restored into the job's own cargo home,
    /// never the machine's; other home, absolute and `..` paths are refused before any I/O.
    #[test]
    fn cargo_home_caches_live_in_the_jobs_own_cargo_home() {
        let tmp = tempfile::tempdir().unwrap();
        let (store, files) = store(tmp.path());
        let scratch = tmp.path().join("scratch");
        let spec = CacheSpec { id: "registry".into(), path: "~/.cargo/registry".into(), ..CacheSpec::default() };
        let first = job(tmp.path(), "first", "v1");
        std::fs::create_dir_all(first.cargo_home.join("registry/cache")).unwrap();
        std::fs::write(first.cargo_home.join("registry/cache/serde.crate"), "crate").unwrap();
        assert_eq!(files.save_cache(&spec, &first, &scratch).unwrap(), CacheSave::Saved(1));

        let second = job(tmp.path(), "second", "v1");
        assert!(matches!(files.restore_cache(&spec, &second).unwrap(), CacheRestore::Hit { .. }));
        assert_eq!(std::fs::read_to_string(second.cargo_home.join("registry/cache/serde.crate")).unwrap(), "crate");
        assert!(!second.work.join("registry").exists() && !second.work.join("~").exists());

        for path in ["~/.npm", "/root/.cargo/registry", "../target", "~/.cargo/bin"] {
            let bad = CacheSpec { path: path.into(), ..spec.clone() };
            let err = files.restore_cache(&bad, &second).unwrap_err();
            assert!(chain(&err).starts_with(&format!("invalid cache `registry`: path {path:?} ")), "{}", chain(&err));
            assert!(files.save_cache(&bad, &second, &scratch).is_err());
        }
        assert_eq!(store.list("caches").unwrap().len(), 1);
    }
}
