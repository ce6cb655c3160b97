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

use crate::blob::{BlobInfo, BlobKey, BlobReader, BlobStore, Error, validate_prefix};

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
                    let path = entry.path();
                    tracing::warn!(path = %path.display(), "blob store: ignoring a file name that is not UTF-8");
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicBool;
    use std::thread;

    fn key(key: &str) -> BlobKey {
        BlobKey::new(key).unwrap()
    }

    fn read_all(store: &dyn BlobStore, k: &str) -> Option<Vec<u8>> {
        let mut reader = store.get(&key(k)).unwrap()?;
        let mut data = Vec::new();
        reader.read_to_end(&mut data).unwrap();
        Some(data)
    }

    fn store() -> (tempfile::TempDir, Arc<dyn BlobStore>) {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(tmp.path().join("store")).unwrap();
        (tmp, Arc::new(store))
    }

    #[test]
    fn put_get_exists_delete() {
        let (_tmp, store) = store();
        assert_eq!(read_all(&*store, "caches/a/1.tar.zst"), None);
        assert!(!store.exists(&key("caches/a/1.tar.zst")).unwrap());
        assert_eq!(store.put(&key("caches/a/1.tar.zst"), &mut &b"one"[..]).unwrap(), 3);
        assert_eq!(read_all(&*store, "caches/a/1.tar.zst").unwrap(), b"one");
        assert!(store.exists(&key("caches/a/1.tar.zst")).unwrap());
        // A "directory" of keys is not a blob.
        assert!(!store.exists(&key("caches/a")).unwrap());
        assert_eq!(read_all(&*store, "caches/a"), None);
        assert_eq!(read_all(&*store, "caches/a/1.tar.zst/below"), None);

        store.put(&key("caches/a/1.tar.zst"), &mut &b"replaced"[..]).unwrap();
        assert_eq!(read_all(&*store, "caches/a/1.tar.zst").unwrap(), b"replaced");
        let empty: &[u8] = b"";
        store.put(&key("empty"), &mut &*empty).unwrap();
        assert_eq!(read_all(&*store, "empty").unwrap(), b"");

        assert!(store.delete(&key("caches/a/1.tar.zst")).unwrap());
        assert!(!store.delete(&key("caches/a/1.tar.zst")).unwrap());
        assert!(!store.delete(&key("caches")).unwrap());
        assert_eq!(read_all(&*store, "caches/a/1.tar.zst"), None);
    }

    #[test]
    fn delete_prunes_empty_directories() {
        let tmp = tempfile::tempdir().unwrap();
        let store = LocalBlobStore::new(tmp.path()).unwrap();
        store.put(&key("a/b/c/d"), &mut &b"x"[..]).unwrap();
        store.put(&key("a/keep"), &mut &b"x"[..]).unwrap();
        store.delete(&key("a/b/c/d")).unwrap();
        assert!(!tmp.path().join("blobs/a/b").exists());
        assert!(tmp.path().join("blobs/a/keep").is_file());
        // A put after the prune recreates the directories.
        store.put(&key("a/b/c/d"), &mut &b"y"[..]).unwrap();
        assert_eq!(read_all(&store, "a/b/c/d").unwrap(), b"y");
    }

    #[test]
    fn a_key_cannot_also_be_a_directory_of_keys() {
        let (_tmp, store) = store();
        store.put(&key("a/b"), &mut &b"x"[..]).unwrap();
        let err = store.put(&key("a/b/c"), &mut &b"y"[..]).unwrap_err();
        assert!(matches!(&err, Error::Conflict { key } if key.as_str() == "a/b/c"), "{err:?}");
        store.put(&key("d/e/f"), &mut &b"x"[..]).unwrap();
        let err = store.put(&key("d/e"), &mut &b"y"[..]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "blob key `d/e` conflicts with existing keys (a key cannot also be a directory of keys)"
        );
        assert_eq!(read_all(&*store, "a/b").unwrap(), b"x");
    }

    #[test]
    fn invalid_keys_and_prefixes_are_refused_before_any_io() {
        let (tmp, store) = store();
        for bad in ["../escape", "a/../../escape", "/abs", "a//b", "a\\b", ""] {
            assert!(matches!(BlobKey::new(bad), Err(Error::InvalidKey { .. })), "{bad:?}");
            assert!(matches!(store.list(bad), Err(Error::InvalidKey { .. })) || bad.is_empty(), "{bad:?}");
        }
        assert!(matches!(store.newest("../x"), Err(Error::InvalidKey { .. })));
        // Nothing was created next to the store.
        let names: Vec<_> = fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["store"]);
    }

    /// A reader that yields `chunks` pieces of `byte`, pausing between them, then optionally fails.
    struct Slow {
        chunks: usize,
        byte: u8,
        fail: bool,
        started: Arc<AtomicBool>,
    }

    impl Read for Slow {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.started.store(true, Ordering::SeqCst);
            if self.chunks == 0 {
                return if self.fail { Err(io::Error::other("source broke")) } else { Ok(0) };
            }
            self.chunks -= 1;
            thread::sleep(Duration::from_millis(2));
            let n = buf.len().min(1000);
            buf[..n].fill(self.byte);
            Ok(n)
        }
    }

    #[test]
    fn readers_see_nothing_or_a_whole_blob_during_a_put() {
        let (tmp, store) = store();
        let k = key("ws/build-1/workspace.tar.zst");
        let started = Arc::new(AtomicBool::new(false));
        let writer = {
            let store = Arc::clone(&store);
            let (k, started) = (k.clone(), Arc::clone(&started));
            thread::spawn(move || {
                store.put(&k, &mut Slow { chunks: 100, byte: b'a', fail: false, started }).unwrap();
                // Then overwrite it: readers must see all-a or all-b.
                let started = Arc::new(AtomicBool::new(false));
                store.put(&k, &mut Slow { chunks: 100, byte: b'b', fail: false, started }).unwrap();
            })
        };
        while !started.load(Ordering::SeqCst) {
            thread::yield_now();
        }
        let mut seen = (0, 0, 0);
        while !writer.is_finished() {
            match read_all(&*store, k.as_str()) {
                None => seen.0 += 1,
                Some(data) => {
                    assert_eq!(data.len(), 100_000, "a partial blob was visible");
                    assert!(data.iter().all(|b| *b == data[0]), "a mixed blob was visible");
                    if data[0] == b'a' { seen.1 += 1 } else { seen.2 += 1 }
                }
            }
            thread::sleep(Duration::from_millis(1));
        }
        writer.join().unwrap();
        assert!(seen.0 > 0 && seen.1 > 0, "the reader did not overlap the puts: {seen:?}");
        assert_eq!(read_all(&*store, k.as_str()).unwrap(), vec![b'b'; 100_000]);
        // No temporary file is left.
        assert_eq!(fs::read_dir(tmp.path().join("store/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn a_failed_put_keeps_the_previous_blob() {
        let (tmp, store) = store();
        let k = key("artifacts/junit");
        store.put(&k, &mut &b"previous"[..]).unwrap();
        let started = Arc::new(AtomicBool::new(false));
        let err = store.put(&k, &mut Slow { chunks: 3, byte: b'x', fail: true, started }).unwrap_err();
        assert_eq!(err.to_string(), "cannot read the data to store under `artifacts/junit`");
        assert_eq!(read_all(&*store, "artifacts/junit").unwrap(), b"previous");
        assert_eq!(fs::read_dir(tmp.path().join("store/tmp")).unwrap().count(), 0);
    }

    #[test]
    fn an_open_reader_keeps_its_blob() {
        let (_tmp, store) = store();
        let k = key("k");
        store.put(&k, &mut &b"first"[..]).unwrap();
        let mut reader = store.get(&k).unwrap().unwrap();
        store.put(&k, &mut &b"second"[..]).unwrap();
        store.delete(&k).unwrap();
        let mut data = String::new();
        reader.read_to_string(&mut data).unwrap();
        assert_eq!(data, "first");
    }

    #[test]
    fn list_is_sorted_and_segment_wise() {
        let (_tmp, store) = store();
        for k in ["caches/b/2", "caches/a/1", "caches/ab/3", "caches/a/sub/4", "other/5", "caches/a0"] {
            store.put(&key(k), &mut k.as_bytes()).unwrap();
        }
        let list = |prefix: &str| store.list(prefix).unwrap().iter().map(|k| k.to_string()).collect::<Vec<_>>();
        assert_eq!(list("caches/a"), ["caches/a/1", "caches/a/sub/4"]);
        assert_eq!(list("caches/a/"), ["caches/a/1", "caches/a/sub/4"]);
        assert_eq!(list("caches"), ["caches/a/1", "caches/a/sub/4", "caches/a0", "caches/ab/3", "caches/b/2"]);
        assert_eq!(list("").len(), 6);
        assert!(list("nothing/here").is_empty());
        // A blob is not a directory: nothing is below it.
        assert!(list("caches/a0").is_empty());
        let info = store.list_info("other").unwrap();
        assert_eq!((info[0].key.as_str(), info[0].size), ("other/5", 7));
    }

    #[test]
    fn newest_is_the_last_written() {
        let (_tmp, store) = store();
        assert_eq!(store.newest("caches/x").unwrap(), None);
        for k in ["caches/x/aaa", "caches/x/ccc", "caches/x/bbb", "caches/y/zzz"] {
            store.put(&key(k), &mut &b"data"[..]).unwrap();
        }
        assert_eq!(store.newest("caches/x").unwrap(), Some(key("caches/x/bbb")));
        assert_eq!(store.newest("").unwrap(), Some(key("caches/y/zzz")));
        store.put(&key("caches/x/aaa"), &mut &b"again"[..]).unwrap();
        assert_eq!(store.newest("caches/x").unwrap(), Some(key("caches/x/aaa")));
        store.delete(&key("caches/x/aaa")).unwrap();
        assert_eq!(store.newest("caches/x").unwrap(), Some(key("caches/x/bbb")));
    }

    #[test]
    fn stale_temporary_files_are_cleaned_up_on_open() {
        let tmp = tempfile::tempdir().unwrap();
        LocalBlobStore::new(tmp.path()).unwrap();
        let stale = tmp.path().join("tmp/1-2-3.tmp");
        let fresh = tmp.path().join("tmp/4-5-6.tmp");
        fs::write(&stale, b"partial").unwrap();
        fs::write(&fresh, b"in flight").unwrap();
        let old = SystemTime::now() - STALE_TMP - Duration::from_secs(60);
        File::options().write(true).open(&stale).unwrap().set_times(FileTimes::new().set_modified(old)).unwrap();
        LocalBlobStore::new(tmp.path()).unwrap();
        assert!(!stale.exists());
        assert!(fresh.exists());
    }
}
