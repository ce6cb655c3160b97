//! What a job leaves once it ended: its per-command logs with secrets masked, its artifacts
//! (whenever its script ran) and, after a success, its caches.
//!
//! It reads the job's directory and writes the build's blobs; it must not judge the job
//! beyond "an artifact that cannot be saved fails a job that succeeded", nor send events (its
//! notes go back to the supervisor).

use std::sync::Arc;

use monkeyci_protocol::error_chain as chain;
use monkeyci_protocol::{ContainerResult, ContainerSpec, JobStatus, Masker, OutputStream};
use monkeyci_store::files::{self, JobFiles};

use crate::jobscript::JobLayout;
use crate::prepare::Note;

/// Why what a job left could not be kept.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// An artifact of the job could not be saved.
    #[error("cannot save artifact `{id}`")]
    Artifact {
        /// The artifact.
        id: String,
        /// Why.
        #[source]
        source: files::Error,
    },
    /// The task saving the files panicked or was canceled.
    #[error("saving the job's files failed")]
    Task(#[source] tokio::task::JoinError),
}

/// Masks secrets in the job's per-command log files, which the build record keeps: the raw
/// output never outlives the job with a secret in it.
pub(crate) async fn mask_logs(masker: &Arc<Masker>, layout: &JobLayout) {
    if masker.is_empty() {
        return;
    }
    let masker = Arc::clone(masker);
    let logs = layout.logs_dir();
    let _ = tokio::task::spawn_blocking(move || {
        for entry in std::fs::read_dir(&logs).into_iter().flatten().flatten() {
            let path = entry.path();
            if let Ok(bytes) = std::fs::read(&path) {
                let text = String::from_utf8_lossy(&bytes);
                let masked = masker.mask(&text);
                if masked != text {
                    let _ = std::fs::write(&path, masked);
                }
            }
        }
    })
    .await;
}

/// Saves the job's artifacts (whenever its script ran, so a failed job's reports are kept;
/// an artifact that cannot be saved fails a job that succeeded) and, after a success, its
/// caches (problems are warnings). Returns notes for the job's output, and the failure.
pub(crate) async fn save_files(
    files: &JobFiles,
    spec: &ContainerSpec,
    layout: &JobLayout,
    result: &ContainerResult,
) -> (Vec<Note>, Result<(), Error>) {
    let ran = matches!(result.status, JobStatus::Success | JobStatus::Failure) && result.exit.is_some();
    if !ran || (spec.save_artifacts.is_empty() && spec.caches.is_empty()) {
        return (Vec::new(), Ok(()));
    }
    let succeeded = result.status == JobStatus::Success;
    let files = files.clone();
    let artifacts = spec.save_artifacts.clone();
    let caches = if succeeded { spec.caches.clone() } else { Vec::new() };
    let work = layout.work_root();
    let scratch = layout.root().join("tmp");
    let saved = tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        let mut failure = None;
        for artifact in &artifacts {
            match files.save_artifact(artifact, &work, &scratch) {
                Ok(count) => {
                    notes.push((OutputStream::Stdout, format!("saved artifact `{}` ({count} files)", artifact.id)))
                }
                Err(source) => {
                    let err = Error::Artifact { id: artifact.id.clone(), source };
                    notes.push((OutputStream::Stderr, chain(&err)));
                    failure.get_or_insert(err);
                }
            }
        }
        for cache in &caches {
            match files.save_cache(cache, &work, &scratch) {
                Ok(count) => notes.push((OutputStream::Stdout, format!("saved cache `{}` ({count} files)", cache.id))),
                Err(err) => notes
                    .push((OutputStream::Stderr, format!("warning: cache `{}` not saved: {}", cache.id, chain(&err)))),
            }
        }
        (notes, failure)
    })
    .await;
    match saved {
        Err(e) => (Vec::new(), Err(Error::Task(e))),
        Ok((notes, Some(err))) if succeeded => (notes, Err(err)),
        Ok((notes, _)) => (notes, Ok(())),
    }
}
