//! Where each kind of blob lives: the one key layout of the blob store.
//!
//! - `artifacts/<build>/<artifact id>.tar.zst`: a build's artifacts, one archive each;
//! - `caches/<repo>/<cache id>/<key>.tar.zst`: a repository's caches, shared by its builds, by
//!   key (escaped by [`monkeyci_protocol::cache::escape_key`]);
//! - `journal/<build>/<digest>.json`: journal records too large to keep inline.
//!
//! Pruning removes blobs by these prefixes, so every writer and remover names keys through
//! here. Ids are checked by the caller ([`monkeyci_protocol::id`]); [`BlobKey`] checks the rest.

use crate::{BlobKey, Error};

/// Where the artifacts of all builds are kept, below one directory per build.
pub const ARTIFACTS_PREFIX: &str = "artifacts";

/// Where the artifacts of build `build_id` are kept.
pub fn artifacts_prefix(build_id: &str) -> String {
    format!("{ARTIFACTS_PREFIX}/{build_id}")
}

/// The archive of artifact `id` of build `build_id`.
pub fn artifact(build_id: &str, id: &str) -> Result<BlobKey, Error> {
    BlobKey::new(format!("{}/{id}.tar.zst", artifacts_prefix(build_id)))
}

/// Where all caches are kept.
pub const CACHES_PREFIX: &str = "caches";

/// Where the archives of cache `id` of repository `repo` are kept, one per key.
pub fn cache_prefix(repo: &str, id: &str) -> String {
    format!("{CACHES_PREFIX}/{repo}/{id}")
}

/// The archive of cache `id` of repository `repo` for `key` (the pipeline's key and the key
/// files' hash, see [`crate::files`]).
pub fn cache(repo: &str, id: &str, key: &str) -> Result<BlobKey, Error> {
    BlobKey::new(format!("{}/{}.tar.zst", cache_prefix(repo, id), monkeyci_protocol::cache::escape_key(key)))
}

/// Where the large journal records of all builds are kept, below one directory per build.
pub const JOURNAL_PREFIX: &str = "journal";

/// Where the large journal records of build `build_id` are kept.
pub fn journal_records_prefix(build_id: &str) -> String {
    format!("{JOURNAL_PREFIX}/{build_id}")
}

/// A large journal record of build `build_id`, named by the digest of its content.
pub fn journal_record(build_id: &str, digest: &str) -> Result<BlobKey, Error> {
    BlobKey::new(format!("{}/{digest}.json", journal_records_prefix(build_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_live_below_their_prefixes() {
        assert_eq!(artifact("b1", "dist").unwrap().as_str(), "artifacts/b1/dist.tar.zst");
        assert_eq!(cache("r", "cargo", "abc").unwrap().as_str(), "caches/r/cargo/abc.tar.zst");
        assert_eq!(
            cache("r", "cargo", "linux-feature/x").unwrap().as_str(),
            "caches/r/cargo/linux-feature%2Fx.tar.zst"
        );
        assert_eq!(journal_record("b1", "ff").unwrap().as_str(), "journal/b1/ff.json");
    }
}
