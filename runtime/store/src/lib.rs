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

mod blob;
pub mod files;
pub mod keys;
pub mod local;

pub use blob::{BlobInfo, BlobKey, BlobReader, BlobStore, Error, MAX_KEY_LEN};
pub use local::LocalBlobStore;
