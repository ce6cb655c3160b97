//! The journal of a build, as the script reports it (`journal/record` events), and `GET
//! /journal`, which hands it back to a resumed script.
//!
//! A large entry (a job's big output, a chatty `ctx.shell` step) is not kept inline: its record
//! goes to the blob store and the journal, in memory and in the build's `events.jsonl`, holds a
//! `journal/stored` reference to it. `GET /journal` resolves the references, so the script
//! always reads whole records.

use std::sync::{Arc, Mutex};

use axum::Json;
use axum::extract::State;
use monkeyci_protocol::{Journal, JournalEntry, JournalRecord};

use super::auth::Authorized;
use super::{ApiError, BuildApiState};
use monkeyci_store::{BlobKey, BlobStore, keys};

/// Records whose JSON is larger than this go to the blob store.
pub const LARGE_RECORD_BYTES: usize = 64 * 1024;

/// The journal of one build.
#[derive(Clone, Default)]
pub struct JournalStore {
    entries: Arc<Mutex<Vec<JournalEntry>>>,
    /// Where large records go, and the build they belong to; none: they stay inline.
    blobs: Option<(Arc<dyn BlobStore>, String)>,
}

impl JournalStore {
    /// The journal of build `build_id`, keeping large records in `store`.
    pub fn new(store: Arc<dyn BlobStore>, build_id: &str) -> JournalStore {
        JournalStore { entries: Arc::default(), blobs: Some((store, build_id.to_owned())) }
    }

    /// Appends `entry`, moving a large record to the blob store; returns the entry as kept
    /// (with a `journal/stored` reference in place of a large record).
    pub async fn record(&self, entry: JournalEntry) -> Result<JournalEntry, ApiError> {
        let entry = match &self.blobs {
            Some((store, build_id)) => store_if_large(Arc::clone(store), build_id, entry).await?,
            None => entry,
        };
        self.entries.lock().unwrap_or_else(|e| e.into_inner()).push(entry.clone());
        Ok(entry)
    }

    pub fn has_entries(&self) -> bool {
        !self.entries.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
    }

    /// The whole journal, with stored records read back.
    pub async fn journal(&self) -> Result<Journal, ApiError> {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if !entries.iter().any(|entry| matches!(entry.record, JournalRecord::Stored { .. })) {
            return Ok(Journal { entries });
        }
        let Some((store, _)) = &self.blobs else {
            return Err(ApiError::Internal("the journal refers to stored records, but there is no blob store".into()));
        };
        let store = Arc::clone(store);
        let entries = tokio::task::spawn_blocking(move || {
            for entry in &mut entries {
                if let JournalRecord::Stored { key, .. } = &entry.record {
                    entry.record = read_stored(store.as_ref(), key)?;
                }
            }
            Ok::<_, ApiError>(entries)
        })
        .await
        .map_err(|err| ApiError::Internal(format!("reading stored journal records: {err}")))??;
        Ok(Journal { entries })
    }
}

/// `entry`, with its record moved to the blob store if it is large.
async fn store_if_large(
    store: Arc<dyn BlobStore>,
    build_id: &str,
    entry: JournalEntry,
) -> Result<JournalEntry, ApiError> {
    let json = serde_json::to_vec(&entry.record)
        .map_err(|err| ApiError::Internal(format!("cannot encode a journal record: {err}")))?;
    if json.len() <= LARGE_RECORD_BYTES {
        return Ok(entry);
    }
    let digest: String = {
        use sha2::{Digest, Sha256};
        hex::encode(&Sha256::digest(&json)[..16])
    };
    let key = keys::journal_record(build_id, &digest)
        .map_err(|err| ApiError::Internal(format!("cannot name a stored journal record: {err}")))?;
    let bytes = json.len() as u64;
    let stored_key = key.as_str().to_owned();
    tokio::task::spawn_blocking(move || store.put(&key, &mut json.as_slice()))
        .await
        .map_err(|err| ApiError::Internal(format!("storing a journal record: {err}")))?
        .map_err(|err| ApiError::Internal(format!("cannot store a journal record of {bytes} bytes: {err}")))?;
    Ok(JournalEntry { record: JournalRecord::Stored { key: stored_key, bytes }, ..entry })
}

/// The record stored under `key`.
fn read_stored(store: &dyn BlobStore, key: &str) -> Result<JournalRecord, ApiError> {
    let missing = || ApiError::Internal(format!("the stored journal record {key} is missing from the blob store"));
    let blob_key = BlobKey::new(key).map_err(|err| ApiError::Internal(err.to_string()))?;
    let reader = store.get(&blob_key).map_err(|err| ApiError::Internal(err.to_string()))?.ok_or_else(missing)?;
    serde_json::from_reader(std::io::BufReader::new(reader))
        .map_err(|err| ApiError::Internal(format!("the stored journal record {key} cannot be read: {err}")))
}

/// `GET /journal`: the journal so far, for a resumed script.
pub(super) async fn journal_get(
    _auth: Authorized,
    State(state): State<BuildApiState>,
) -> Result<Json<Journal>, ApiError> {
    Ok(Json(state.inner.journal.journal().await?))
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
