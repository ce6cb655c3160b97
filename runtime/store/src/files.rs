//! Artifacts and caches of container jobs: archives of parts of a job's work dir, kept in the
//! blob store.
//!
//! Keys come from [`crate::keys`]: artifacts are scoped to the build, caches shared by the
//! builds of a repository (a cache's key hashes its key files, and a cache without an exact
//! match falls back to the newest of the same id). A key's archive is kept as first saved, as
//! CI caches do: a cache restored by its exact key whose key files did not change is not packed
//! and saved again ([`CacheSave::KeyHit`]); one restored from nothing or from another key is.
//! Paths are relative to the job's work dir and restored at the same place. After the build,
//! [`stored_artifacts`] lists a build's artifacts and [`extract_artifact`] extracts one
//! elsewhere, with the same checks. Archives are made by [`monkeyci_archive`]; this module only picks
//! the paths and keys. Every function blocks: call them from `spawn_blocking`.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

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
    /// Nothing was saved: the cache was restored by the key it has now (holds the key's hash),
    /// and a key's archive is kept as first saved.
    KeyHit(String),
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

    /// Restores a cache into `work`: the one for the current key files, else the newest of the
    /// same id. Returns which key was restored, if any. An exact hit is remembered for
    /// [`save_cache`](JobFiles::save_cache) of the same work dir.
    pub fn restore_cache(&self, spec: &CacheSpec, work: &Path) -> Result<Option<String>, Error> {
        check_id("cache", &spec.id)?;
        checked_path("cache", &spec.id, &spec.path)?;
        let exact = self.cache_key(spec, work)?;
        let (key, hit) = if self.store.exists(&exact)? {
            (Some(exact), true)
        } else {
            (self.store.newest(&keys::cache_prefix(&self.repo, &spec.id))?, false)
        };
        let Some(key) = key else { return Ok(None) };
        match self.store.get(&key)? {
            Some(reader) => {
                archive::unpack(reader, work)?;
                let hash = key_hash(&key);
                if hit {
                    self.hits.lock().insert((work.to_owned(), key));
                }
                Ok(Some(hash))
            }
            None => Ok(None),
        }
    }

    /// Saves a cache from `work` under the current key, unless it was restored into `work` by
    /// that very key ([`CacheSave::KeyHit`]: the key files did not change, and a key's archive
    /// is kept as first saved).
    pub fn save_cache(&self, spec: &CacheSpec, work: &Path, scratch: &Path) -> Result<CacheSave, Error> {
        let path = checked_path("cache", &spec.id, &spec.path)?;
        let key = self.cache_key(spec, work)?;
        let hit = {
            let mut hits = self.hits.lock();
            let hit = hits.remove(&(work.to_owned(), key.clone()));
            // A hit under a key the job changed since is done with too.
            let prefix = format!("{}/", keys::cache_prefix(&self.repo, &spec.id));
            hits.retain(|(dir, old)| dir != work || !old.as_str().starts_with(&prefix));
            hit
        };
        if hit {
            return Ok(CacheSave::KeyHit(key_hash(&key)));
        }
        if std::fs::symlink_metadata(work.join(&path)).is_err() {
            return Err(Error::NothingToSave { what: "cache", id: spec.id.clone(), path: spec.path.clone() });
        }
        self.put_archive(&key, work, &path, scratch).map(CacheSave::Saved)
    }

    /// Forgets the caches restored into `work` that were not saved (the job failed, or the
    /// key changed): call it once the job using `work` ended.
    pub fn forget(&self, work: &Path) {
        self.hits.lock().retain(|(dir, _)| dir != work);
    }

    /// The key of the cache for the current key files.
    fn cache_key(&self, spec: &CacheSpec, work: &Path) -> Result<BlobKey, Error> {
        check_id("cache", &spec.id)?;
        let mut hasher = Sha256::new();
        for file in &spec.key_files {
            hasher.update(file.as_bytes());
            hasher.update([0]);
            // A missing key file is part of the key too: it hashes as absent.
            if let Ok(bytes) = std::fs::read(work.join(file)) {
                hasher.update((bytes.len() as u64).to_le_bytes());
                hasher.update(&bytes);
            }
        }
        let hash: String = hex::encode(&hasher.finalize()[..12]);
        Ok(keys::cache(&self.repo, &spec.id, &hash)?)
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

/// The hash part of a cache's key (`caches/<repo>/<id>/<hash>.tar.zst`).
fn key_hash(key: &BlobKey) -> String {
    key.as_str().rsplit('/').next().unwrap_or_default().trim_end_matches(".tar.zst").to_owned()
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
    use super::*;

    #[test]
    fn bad_paths_and_ids_name_the_value_and_the_fix() {
        let message = |result: Result<PathBuf, Error>| result.unwrap_err().to_string();
        assert_eq!(
            message(checked_path("artifact", "dist", "")),
            "path `` of artifact `dist` is empty; use `.` for the whole work dir"
        );
        assert_eq!(
            message(checked_path("cache", "cargo", "../target")),
            "path `../target` of cache `cargo` contains `..`; name a path inside the work dir"
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

    /// What real projects' CI showed: a cache whose key hit was packed and saved again after
    /// every job (5 s of a 17 s job). A key's archive is kept as first saved; a cache restored
    /// from nothing or from another key, or whose key files changed during the job, is saved.
    #[test]
    fn a_cache_restored_by_its_exact_key_is_not_saved_again() {
        let tmp = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(crate::LocalBlobStore::new(tmp.path().join("store")).unwrap());
        let files = JobFiles::new(Arc::clone(&store), "b1", tmp.path());
        let spec = CacheSpec { id: "target".into(), path: "target".into(), key_files: vec!["Cargo.lock".into()] };
        let scratch = tmp.path().join("scratch");
        let job = |name: &str, lock: &str| {
            let work = tmp.path().join(name);
            std::fs::create_dir_all(work.join("target")).unwrap();
            std::fs::write(work.join("Cargo.lock"), lock).unwrap();
            std::fs::write(work.join("target").join(name), name).unwrap();
            work
        };
        let archives = || store.list("caches").unwrap().len();

        let first = job("first", "v1");
        assert_eq!(files.restore_cache(&spec, &first).unwrap(), None);
        assert_eq!(files.save_cache(&spec, &first, &scratch).unwrap(), CacheSave::Saved(1));

        let second = job("second", "v1");
        let hash = files.restore_cache(&spec, &second).unwrap().unwrap();
        assert_eq!(files.save_cache(&spec, &second, &scratch).unwrap(), CacheSave::KeyHit(hash));
        assert_eq!(archives(), 1);

        // Restored from another key: saved under the new one.
        let third = job("third", "v2");
        assert!(files.restore_cache(&spec, &third).unwrap().is_some());
        assert!(third.join("target/first").is_file(), "the newest archive of the id is restored");
        assert!(matches!(files.save_cache(&spec, &third, &scratch).unwrap(), CacheSave::Saved(_)));
        assert_eq!(archives(), 2);

        // A key hit whose key files change during the job: saved under the new key.
        let fourth = job("fourth", "v2");
        assert!(files.restore_cache(&spec, &fourth).unwrap().is_some());
        std::fs::write(fourth.join("Cargo.lock"), "v3").unwrap();
        assert!(matches!(files.save_cache(&spec, &fourth, &scratch).unwrap(), CacheSave::Saved(_)));
        assert_eq!(archives(), 3);

        // A hit not saved (the job failed) is forgotten with its work dir.
        let fifth = job("fifth", "v3");
        assert!(files.restore_cache(&spec, &fifth).unwrap().is_some());
        assert_eq!(files.hits.lock().len(), 1);
        files.forget(&fifth);
        assert!(files.hits.lock().is_empty());
    }
}
