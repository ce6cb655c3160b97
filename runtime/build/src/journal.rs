//! [`JournalStore`]: the journal of a build, as the script reports it (`journal/record`
//! events), kept for a resumed script (the build API's `GET /journal`).
//!
//! A large entry (a job's big output, a chatty `ctx.shell` step) is not kept inline: its record
//! goes to the blob store and the journal, in memory and in the build's `events.jsonl`, holds a
//! `journal/stored` reference to it. [`JournalStore::journal`] resolves the references, so the
//! script always reads whole records. It serves no HTTP (the API's handlers call it) and keeps
//! only what the script reported: it never decides what a resumed script replays.

use std::sync::Arc;

use parking_lot::Mutex;

use monkeyci_protocol::{Journal, JournalEntry, JournalRecord};
use monkeyci_store::{BlobKey, BlobStore, keys};

/// Why a journal record could not be kept or read back.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// A record could not be turned into JSON.
    #[error("cannot encode a journal record")]
    Encode(#[source] serde_json::Error),
    /// The blob store refused a record or a read.
    #[error("the blob store failed for the journal record {key}")]
    Store {
        /// The record's key in the blob store.
        key: String,
        /// What the store said.
        #[source]
        source: monkeyci_store::Error,
    },
    /// A stored record is gone.
    #[error("the stored journal record {0} is missing from the blob store")]
    Missing(String),
    /// A stored record is not a journal record.
    #[error("the stored journal record {key} cannot be read")]
    Unreadable {
        /// The record's key in the blob store.
        key: String,
        /// What is wrong with it.
        #[source]
        source: serde_json::Error,
    },
    /// The journal refers to stored records but has no blob store to read them from.
    #[error("the journal refers to stored records, but there is no blob store")]
    NoBlobStore,
    /// The blocking task that moved a record was lost.
    #[error("the task that moved a journal record did not finish")]
    Task(#[source] tokio::task::JoinError),
}

/// Records whose JSON is larger than this go to the blob store.
pub(crate) const LARGE_RECORD_BYTES: usize = 64 * 1024;

/// The journal of one build.
#[derive(Clone, Default)]
pub(crate) struct JournalStore {
    entries: Arc<Mutex<Vec<JournalEntry>>>,
    /// Where large records go, and the build they belong to; none: they stay inline.
    blobs: Option<(Arc<dyn BlobStore>, String)>,
}

impl JournalStore {
    /// The journal of build `build_id`, keeping large records in `store`.
    pub(crate) fn new(store: Arc<dyn BlobStore>, build_id: &str) -> JournalStore {
        JournalStore { entries: Arc::default(), blobs: Some((store, build_id.to_owned())) }
    }

    /// Appends `entry`, moving a large record to the blob store; returns the entry as kept
    /// (with a `journal/stored` reference in place of a large record).
    pub(crate) async fn record(&self, entry: JournalEntry) -> Result<JournalEntry, Error> {
        let entry = match &self.blobs {
            Some((store, build_id)) => store_if_large(Arc::clone(store), build_id, entry).await?,
            None => entry,
        };
        self.entries.lock().push(entry.clone());
        Ok(entry)
    }

    /// Whether the script journaled anything yet (a script that did can be resumed).
    pub(crate) fn has_entries(&self) -> bool {
        !self.entries.lock().is_empty()
    }

    /// The whole journal, with stored records read back.
    pub(crate) async fn journal(&self) -> Result<Journal, Error> {
        let mut entries = self.entries.lock().clone();
        if !entries.iter().any(|entry| matches!(entry.record, JournalRecord::Stored { .. })) {
            return Ok(Journal { entries });
        }
        let Some((store, _)) = &self.blobs else {
            return Err(Error::NoBlobStore);
        };
        let store = Arc::clone(store);
        let entries = tokio::task::spawn_blocking(move || {
            for entry in &mut entries {
                if let JournalRecord::Stored { key, .. } = &entry.record {
                    entry.record = read_stored(store.as_ref(), key)?;
                }
            }
            Ok::<_, Error>(entries)
        })
        .await
        .map_err(Error::Task)??;
        Ok(Journal { entries })
    }
}

/// `entry`, with its record moved to the blob store if it is large.
async fn store_if_large(store: Arc<dyn BlobStore>, build_id: &str, entry: JournalEntry) -> Result<JournalEntry, Error> {
    let json = serde_json::to_vec(&entry.record).map_err(Error::Encode)?;
    if json.len() <= LARGE_RECORD_BYTES {
        return Ok(entry);
    }
    let digest: String = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(&json)[..16])
    };
    let key = keys::journal_record(build_id, &digest).map_err(|source| Error::Store {
        key: format!("{}/{digest}", keys::journal_records_prefix(build_id)),
        source,
    })?;
    let bytes = json.len() as u64;
    let stored_key = key.as_str().to_owned();
    let put_key = stored_key.clone();
    tokio::task::spawn_blocking(move || store.put(&key, &mut json.as_slice()))
        .await
        .map_err(Error::Task)?
        .map_err(|source| Error::Store { key: put_key, source })?;
    Ok(JournalEntry { record: JournalRecord::Stored { key: stored_key, bytes }, ..entry })
}

/// The record stored under `key`.
fn read_stored(store: &dyn BlobStore, key: &str) -> Result<JournalRecord, Error> {
    let store_err = |source| Error::Store { key: key.to_owned(), source };
    let blob_key = BlobKey::new(key).map_err(store_err)?;
    let reader = store.get(&blob_key).map_err(store_err)?.ok_or_else(|| Error::Missing(key.to_owned()))?;
    serde_json::from_reader(std::io::BufReader::new(reader))
        .map_err(|source| Error::Unreadable { key: key.to_owned(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_store::LocalBlobStore;

    fn shell_step(stdout: String) -> JournalEntry {
        JournalEntry {
            job_id: "build".into(),
            seq: 2,
            record: JournalRecord::ShellResult {
                attempt: 1,
                command: "cargo build".into(),
                code: Some(0),
                stdout,
                stderr: String::new(),
                lines: 1,
            },
        }
    }

    #[tokio::test]
    async fn large_records_are_kept_in_the_blob_store_and_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.path()).unwrap());
        let journal = JournalStore::new(Arc::clone(&store), "b-1");
        let small = shell_step("ok\n".into());
        let large = shell_step("x".repeat(LARGE_RECORD_BYTES + 1));

        assert_eq!(journal.record(small.clone()).await.unwrap(), small, "a small record stays inline");
        let kept = journal.record(large.clone()).await.unwrap();
        let JournalRecord::Stored { key, bytes } = &kept.record else { panic!("not stored: {kept:?}") };
        assert!(key.starts_with("journal/b-1/") && *bytes > LARGE_RECORD_BYTES as u64, "{key} {bytes}");
        assert_eq!((kept.job_id.as_str(), kept.seq), ("build", 2));
        assert_eq!(store.list("journal/b-1").unwrap().len(), 1);

        assert_eq!(journal.journal().await.unwrap().entries, [small, large]);
    }

    #[tokio::test]
    async fn a_stored_record_gone_from_the_blob_store_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.path()).unwrap());
        let journal = JournalStore::new(Arc::clone(&store), "b-2");
        let kept = journal.record(shell_step("y".repeat(LARGE_RECORD_BYTES * 2))).await.unwrap();
        let JournalRecord::Stored { key, .. } = &kept.record else { panic!("not stored") };
        store.delete(&BlobKey::new(key.as_str()).unwrap()).unwrap();
        let err = journal.journal().await.unwrap_err().to_string();
        assert!(err.contains(key.as_str()) && err.contains("missing"), "{err}");
    }
}
