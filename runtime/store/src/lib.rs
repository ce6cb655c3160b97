//! Blob storage: where workspaces, artifacts, caches and large journal records are kept between
//! jobs and builds.
//!
//! This crate owns the [`BlobStore`] contract and the [`BlobKey`] rules; one module per backend
//! implements it ([`local`]: a directory, the embedded default; an S3 one via `object_store` will
//! follow). [`keys`] is the one place that says where each kind of blob lives, and [`files`]
//! saves and restores artifacts and caches as archives (`monkeyci-archive`). The store itself
//! knows nothing of archives or builds: callers pick the keys and the bytes. It never runs a
//! container or a process.
//!
//! ```
//! use std::io::Read;
//! use std::sync::Arc;
//!
//! use monkeyci_store::{BlobKey, BlobStore, LocalBlobStore};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let root = tempfile::tempdir()?;
//! let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(root.path())?);
//!
//! let key = BlobKey::new("artifacts/build-1/dist.tar.zst")?;
//! assert_eq!(store.put(&key, &mut &b"archive bytes"[..])?, 13);
//!
//! let mut blob = Vec::new();
//! store.get(&key)?.expect("just stored").read_to_end(&mut blob)?;
//! assert_eq!(blob, b"archive bytes");
//! assert_eq!(store.list("artifacts/build-1")?, [key]);
//! # Ok(())
//! # }
//! ```
//!
//! # Why a blocking API
//!
//! Every caller sits next to blocking work: `monkeyci-archive` packs and unpacks through
//! `std::io::{Read, Write}` (the `tar` and `zstd` crates are synchronous) and walks the file
//! system, so it runs under `tokio::task::spawn_blocking` anyway. A blocking trait lets a blob flow
//! straight from `get` into `unpack`, or from a pipe into `put`, without async adapters on our
//! side, and keeps `dyn BlobStore` simple (no boxed futures). The S3 implementation will bridge
//! the other way, inside the blocking thread: it holds a `tokio::runtime::Handle`, drives
//! `object_store` uploads with `Handle::block_on` (multipart, part by part, from the reader) and
//! returns downloads as a reader with `tokio_util::io::SyncIoBridge`. The price is that methods
//! must not be called from an async task directly: always from `spawn_blocking`.
//!
//! # The contract
//!
//! - Keys are `/`-separated relative names ([`BlobKey`]); invalid ones are refused before any
//!   I/O with [`Error::InvalidKey`] naming the key and the reason.
//! - [`BlobStore::put`] streams from a reader and is atomic: a concurrent `get` sees the previous
//!   blob (or none) until `put` returns, then the whole new one; a failed `put` leaves the previous
//!   blob untouched. The last `put` of a key wins.
//! - A reader returned by [`BlobStore::get`] keeps reading the blob as it was when it was opened,
//!   even if the key is overwritten or deleted meanwhile.
//! - [`BlobStore::list_info`] (and [`list`](BlobStore::list), [`newest`](BlobStore::newest)) see
//!   the keys strictly below a prefix directory, segment-wise: prefix `caches/a` covers
//!   `caches/a/x` but not `caches/ab` nor `caches/a` itself; `""` covers everything.
//! - A key must not also be the directory of other keys (`a/b` and `a/b/c`): stores that keep a
//!   directory tree refuse it with [`Error::Conflict`]; callers design their key schemes so it
//!   never happens.

#![doc(test(attr(deny(warnings))))]

pub mod files;
pub mod keys;
pub mod local;

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::SystemTime;

pub use local::LocalBlobStore;

/// The longest key accepted, in bytes (S3's limit).
pub const MAX_KEY_LEN: usize = 1024;

/// A reader over one blob's bytes.
pub type BlobReader = Box<dyn Read + Send>;

/// A store of immutable-once-written blobs under string keys. Used as `Arc<dyn BlobStore>`.
///
/// Every method blocks: call it from `tokio::task::spawn_blocking` (see the
/// [crate documentation](crate#why-a-blocking-api)).
pub trait BlobStore: Send + Sync + fmt::Debug {
    /// Stores everything `data` yields under `key`, replacing any blob there, atomically. Returns
    /// the number of bytes stored.
    fn put(&self, key: &BlobKey, data: &mut dyn Read) -> Result<u64, Error>;

    /// Opens the blob under `key`, or `None` if there is none.
    fn get(&self, key: &BlobKey) -> Result<Option<BlobReader>, Error>;

    /// Whether a blob exists under `key`.
    fn exists(&self, key: &BlobKey) -> Result<bool, Error>;

    /// Deletes the blob under `key`; returns whether there was one.
    fn delete(&self, key: &BlobKey) -> Result<bool, Error>;

    /// The blobs below `prefix` (`""`, or a key-like directory name; a trailing `/` is allowed),
    /// with size and write time, sorted by key.
    fn list_info(&self, prefix: &str) -> Result<Vec<BlobInfo>, Error>;

    /// The keys below `prefix`, sorted.
    fn list(&self, prefix: &str) -> Result<Vec<BlobKey>, Error> {
        Ok(self.list_info(prefix)?.into_iter().map(|info| info.key).collect())
    }

    /// The most recently written key below `prefix` (ties go to the greatest key), for falling
    /// back to the latest cache when there is none for the exact key.
    fn newest(&self, prefix: &str) -> Result<Option<BlobKey>, Error> {
        let newest = self.list_info(prefix)?.into_iter().max_by(|a, b| (a.modified, &a.key).cmp(&(b.modified, &b.key)));
        Ok(newest.map(|info| info.key))
    }
}

/// A listed blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlobInfo {
    /// The blob's key.
    pub key: BlobKey,
    /// Size in bytes.
    pub size: u64,
    /// When it was written (the end of its `put`).
    pub modified: SystemTime,
}

/// A valid blob key: `/`-separated segments, none empty, `.` or `..`; no leading `/`, no
/// backslash or control character; at most [`MAX_KEY_LEN`] bytes. Such a key can be used as a
/// relative file path and as an object-store key alike.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BlobKey(String);

impl BlobKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<Self, Error> {
        let key = key.into();
        match key_problem(&key) {
            None => Ok(BlobKey(key)),
            Some(reason) => Err(Error::InvalidKey { key, reason }),
        }
    }

    /// The key as a string, e.g. `caches/<repo>/<id>/<hash>.tar.zst`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key's segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }
}

impl fmt::Display for BlobKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for BlobKey {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl TryFrom<&str> for BlobKey {
    type Error = Error;

    fn try_from(key: &str) -> Result<Self, Error> {
        BlobKey::new(key)
    }
}

impl std::str::FromStr for BlobKey {
    type Err = Error;

    fn from_str(key: &str) -> Result<Self, Error> {
        BlobKey::new(key)
    }
}

/// Validates a list prefix: `""`, or a key with an optional trailing `/`. Returns it without the
/// trailing `/`.
pub(crate) fn validate_prefix(prefix: &str) -> Result<&str, Error> {
    let trimmed = prefix.strip_suffix('/').unwrap_or(prefix);
    if prefix.is_empty() {
        return Ok("");
    }
    match key_problem(trimmed) {
        None => Ok(trimmed),
        Some(reason) => Err(Error::InvalidKey { key: prefix.to_owned(), reason }),
    }
}

fn key_problem(key: &str) -> Option<&'static str> {
    if key.is_empty() {
        return Some("is empty");
    }
    if key.len() > MAX_KEY_LEN {
        return Some("is longer than 1024 bytes");
    }
    if key.starts_with('/') {
        return Some("is absolute (starts with `/`)");
    }
    if key.contains('\\') {
        return Some("contains a backslash");
    }
    if key.chars().any(char::is_control) {
        return Some("contains a control character");
    }
    for segment in key.split('/') {
        match segment {
            "" => return Some("has an empty segment"),
            "." | ".." => return Some("has a `.` or `..` segment"),
            _ => {}
        }
    }
    None
}

/// An error from a blob store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The key (or list prefix) is not a valid [`BlobKey`].
    #[error("invalid blob key `{key}`: {reason}")]
    InvalidKey {
        /// The key or prefix as given.
        key: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The key is also the directory of other keys, or one of its parents is a key.
    #[error("blob key `{key}` conflicts with existing keys (a key cannot also be a directory of keys)")]
    Conflict {
        /// The key that could not be stored.
        key: BlobKey,
    },
    /// The reader given to `put` failed; nothing was stored.
    #[error("cannot read the data to store under `{key}`")]
    Source {
        /// The key being stored.
        key: BlobKey,
        /// The reader's error.
        #[source]
        source: io::Error,
    },
    /// The store's own I/O failed.
    #[error("blob store: cannot {action} `{}`", .path.display())]
    Io {
        /// What the store was doing, as a verb: "create", "write", "list", …
        action: &'static str,
        /// The file or directory of the store it was working on.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_keys_are_accepted() {
        for key in
            ["a", "caches/cargo-target/0123abcd.tar.zst", "ws/build-1/workspace.tar.zst", "a/.hidden/b", "ünï/cödé"]
        {
            assert_eq!(BlobKey::new(key).unwrap().as_str(), key);
        }
    }

    #[test]
    fn invalid_keys_are_refused_with_the_reason() {
        let cases = [
            ("", "is empty"),
            ("/etc/passwd", "is absolute (starts with `/`)"),
            ("../escape", "has a `.` or `..` segment"),
            ("a/../../escape", "has a `.` or `..` segment"),
            ("a/./b", "has a `.` or `..` segment"),
            ("..", "has a `.` or `..` segment"),
            ("a//b", "has an empty segment"),
            ("a/", "has an empty segment"),
            ("a\\..\\b", "contains a backslash"),
            ("a\0b", "contains a control character"),
            ("a\nb", "contains a control character"),
        ];
        for (key, expected) in cases {
            match BlobKey::new(key) {
                Err(Error::InvalidKey { key: bad, reason }) => {
                    assert_eq!((bad.as_str(), reason), (key, expected));
                }
                other => panic!("{key:?}: expected InvalidKey, got {other:?}"),
            }
        }
        let long = "a/".repeat(600) + "b";
        assert!(matches!(BlobKey::new(long), Err(Error::InvalidKey { reason: "is longer than 1024 bytes", .. })));
        let message = BlobKey::new("a/../b").unwrap_err().to_string();
        assert_eq!(message, "invalid blob key `a/../b`: has a `.` or `..` segment");
    }

    #[test]
    fn prefixes_are_validated_like_keys() {
        assert_eq!(validate_prefix("").unwrap(), "");
        assert_eq!(validate_prefix("caches/x/").unwrap(), "caches/x");
        assert_eq!(validate_prefix("caches/x").unwrap(), "caches/x");
        assert!(validate_prefix("/").is_err());
        assert!(validate_prefix("../x").is_err());
        assert!(validate_prefix("x//").is_err());
    }
}
