//! [`LocalBlobStore`]: blobs as files under a root directory, the embedded default.
//!
//! Layout: the blob `a/b/c` is the file `<root>/blobs/a/b/c`; `put` writes `<root>/tmp/<unique>`,
//! syncs it, stamps its mtime with the time of the write and renames it into place, so readers
//! never see a partial blob (rename is atomic within one file system, and an open reader keeps the
//! file it opened). Directories left empty by `delete` are removed. Temporary files of crashed
//! writers stay in `tmp/` (never visible as blobs); [`LocalBlobStore::new`] removes those older
//! than a day. Several processes may share one root.

use std::fs::{self, File, FileTimes};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{BlobInfo, BlobKey, BlobReader, BlobStore, Error, validate_prefix};

/// Temporary files older than this are from crashed writers.
const STALE_TMP: Duration = Duration::from_secs(24 * 60 * 60);

const COPY_BUFFER: usize = 256 * 1024;

/// A [`BlobStore`] in a local directory.
#[derive(Debug)]
pub struct LocalBlobStore {
    blobs: PathBuf,
    tmp: PathBuf,
}

impl LocalBlobStore {
    /// Opens (creating if needed) a store rooted at `root`.
    pub fn new(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let store = LocalBlobStore { blobs: root.join("blobs"), tmp: root.join("tmp") };
        for dir in [&store.blobs, &store.tmp] {
            fs::create_dir_all(dir).map_err(|source| io_err("create", dir, source))?;
        }
        store.remove_stale_tmp();
        Ok(store)
    }

    fn path(&self, key: &BlobKey) -> PathBuf {
        let mut path = self.blobs.clone();
        path.extend(key.segments());
        path
    }

    fn remove_stale_tmp(&self) {
        let Ok(entries) = fs::read_dir(&self.tmp) else { return };
        let now = SystemTime::now();
        for entry in entries.flatten() {
            let stale = entry
                .metadata()
                .and_then(|meta| meta.modified())
                .is_ok_and(|modified| now.duration_since(modified).is_ok_and(|age| age > STALE_TMP));
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
    }

    /// Writes `data` to a new temporary file, synced and stamped with the current time.
    fn write_tmp(&self, key: &BlobKey, data: &mut dyn Read) -> Result<(TmpFile, u64), Error> {
        let tmp = TmpFile { path: self.tmp.join(unique_name()), keep: false };
        let mut file = File::options()
            .write(true)
            .create_new(true)
            .open(&tmp.path)
            .map_err(|source| io_err("create", &tmp.path, source))?;
        let mut buf = vec![0; COPY_BUFFER];
        let mut size = 0u64;
        loop {
            let read = match data.read(&mut buf) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(source) => return Err(Error::Source { key: key.clone(), source }),
            };
            file.write_all(&buf[..read]).map_err(|source| io_err("write", &tmp.path, source))?;
            size += read as u64;
        }
        file.set_times(FileTimes::new().set_modified(SystemTime::now()))
            .map_err(|source| io_err("stamp", &tmp.path, source))?;
        file.sync_all().map_err(|source| io_err("sync", &tmp.path, source))?;
        Ok((tmp, size))
    }

    /// Whether `path` (or one of its parents below the blobs directory) is in the way of `key`.
    fn conflicts(&self, path: &Path) -> bool {
        if path.is_dir() {
            return true;
        }
        path.ancestors().skip(1).take_while(|dir| *dir != self.blobs).any(|dir| dir.is_file())
    }

    /// Removes the now empty parent directories of `path`, up to the blobs directory.
    fn prune(&self, path: &Path) {
        for dir in path.ancestors().skip(1).take_while(|dir| *dir != self.blobs) {
            if fs::remove_dir(dir).is_err() {
                break;
            }
        }
    }
}

impl BlobStore for LocalBlobStore {
    fn put(&self, key: &BlobKey, data: &mut dyn Read) -> Result<u64, Error> {
        let (mut tmp, size) = self.write_tmp(key, data)?;
        let path = self.path(key);
        let parent = path.parent().unwrap_or(&self.blobs);
        // A concurrent `delete` may prune the parent between the two steps: try again.
        let mut attempts = 0;
        loop {
            attempts += 1;
            if let Err(source) = fs::create_dir_all(parent) {
                if self.conflicts(&path) {
                    return Err(Error::Conflict { key: key.clone() });
                }
                return Err(io_err("create", parent, source));
            }
            match fs::rename(&tmp.path, &path) {
                Ok(()) => {
                    tmp.keep = true;
                    return Ok(size);
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound && attempts < 5 => continue,
                Err(source) => {
                    if self.conflicts(&path) {
                        return Err(Error::Conflict { key: key.clone() });
                    }
                    return Err(io_err("store", &path, source));
                }
            }
        }
    }

    fn get(&self, key: &BlobKey) -> Result<Option<BlobReader>, Error> {
        let path = self.path(key);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(err) if is_absent(&err) => return Ok(None),
            Err(source) => return Err(io_err("open", &path, source)),
        };
        // A directory of other keys opens fine on Linux, but is no blob.
        let meta = file.metadata().map_err(|source| io_err("inspect", &path, source))?;
        Ok(meta.is_file().then(|| Box::new(file) as BlobReader))
    }

    fn exists(&self, key: &BlobKey) -> Result<bool, Error> {
        let path = self.path(key);
        match fs::metadata(&path) {
            Ok(meta) => Ok(meta.is_file()),
            Err(err) if is_absent(&err) => Ok(false),
            Err(source) => Err(io_err("inspect", &path, source)),
        }
    }

    fn delete(&self, key: &BlobKey) -> Result<bool, Error> {
        let path = self.path(key);
        match fs::remove_file(&path) {
            Ok(()) => {
                self.prune(&path);
                Ok(true)
            }
            Err(err) if is_absent(&err) || path.is_dir() => Ok(false),
            Err(source) => Err(io_err("delete", &path, source)),
        }
    }

    fn list_info(&self, prefix: &str) -> Result<Vec<BlobInfo>, Error> {
        let prefix = validate_prefix(prefix)?;
        let mut start = self.blobs.clone();
        if !prefix.is_empty() {
            start.extend(prefix.split('/'));
        }
        let mut found = Vec::new();
        let mut dirs = vec![(start, prefix.to_owned())];
        while let Some((dir, key_prefix)) = dirs.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                // A prefix that is no directory (absent, or a blob) has nothing below it.
                Err(err) if is_absent(&err) => continue,
                Err(source) => return Err(io_err("list", &dir, source)),
            };
            for entry in entries {
                let entry = entry.map_err(|source| io_err("list", &dir, source))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    tracing::warn!(path = %entry.path().display(), "blob store: ignoring a file name that is not UTF-8");
                    continue;
                };
                let key = if key_prefix.is_empty() { name } else { format!("{key_prefix}/{name}") };
                let meta = match entry.metadata() {
                    Ok(meta) => meta,
                    // Deleted while listing.
                    Err(err) if is_absent(&err) => continue,
                    Err(source) => return Err(io_err("inspect", &entry.path(), source)),
                };
                if meta.is_dir() {
                    dirs.push((entry.path(), key));
                } else if meta.is_file() {
                    let Ok(key) = BlobKey::new(key) else { continue };
                    let modified = meta.modified().map_err(|source| io_err("inspect", &entry.path(), source))?;
                    found.push(BlobInfo { key, size: meta.len(), modified });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}

/// A temporary file, removed on drop unless kept.
struct TmpFile {
    path: PathBuf,
    keep: bool,
}

impl Drop for TmpFile {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn is_absent(err: &io::Error) -> bool {
    matches!(err.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory)
}

fn io_err(action: &'static str, path: &Path, source: io::Error) -> Error {
    Error::Io { action, path: path.to_owned(), source }
}

fn unique_name() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{}-{nanos}-{}.tmp", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}
