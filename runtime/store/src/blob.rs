//! The [`BlobStore`] contract, the [`BlobKey`] rules and the store's [`Error`]: what every
//! backend implements and every caller relies on (see the crate docs for the contract).

use std::fmt;
use std::io::{self, Read};
use std::path::PathBuf;
use std::time::SystemTime;

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
