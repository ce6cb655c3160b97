//! What a job leaves once it ended: its per-command logs with secrets masked, its artifacts
//! (whenever its script ran) and, after a success, its caches.
//!
//! It reads the job's directory and writes the build's blobs; it must not judge the job
//! beyond "an artifact that cannot be saved fails a job that succeeded", nor send events (its
//! notes go back to the supervisor).

use std::sync::Arc;

use monkeyci_protocol::error_chain as chain;
use monkeyci_protocol::{ContainerResult, ContainerSpec, JobStatus, Masker, OutputStream};
use monkeyci_store::files::JobFiles;

use crate::jobscript::JobLayout;
use crate::prepare::Note;

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
) -> (Vec<Note>, Result<(), String>) {
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
                Err(err) => {
                    let message = format!("cannot save artifact `{}`: {}", artifact.id, chain(&err));
                    notes.push((OutputStream::Stderr, message.clone()));
                    failure.get_or_insert(message);
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
        Err(e) => (Vec::new(), Err(format!("saving the job's files failed: {e}"))),
        Ok((notes, Some(message))) if succeeded => (notes, Err(message)),
        Ok((notes, _)) => (notes, Ok(())),
    }
}
