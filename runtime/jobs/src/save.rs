//! What a job leaves once it ended: its per-command logs with secrets masked, its artifacts
//! (whenever its script ran) and, after a success, its caches (not saved again when restored
//! by the key they have, see [`files`]); and what it does not leave: its workspace copy, which
//! [`discard_work`] removes once all of that is saved, so the build record keeps what a user
//! reads later (the job's logs, events and script), not a `target/` per job.
//!
//! It reads the job's directory and writes the build's blobs; it must not judge the job
//! beyond "an artifact that cannot be saved fails a job that succeeded", nor send events (its
//! notes go back to the supervisor).
//!
//! The job's directory was the job's to write: its logs are opened through
//! [`confined`](crate::follow::confined) (no link followed, regular files only), read up to the
//! job's log limit, and a masked log is a new file renamed over the old entry, never a write
//! into an existing file. Links and other special files in `logs/`, or a `logs` that is not a
//! directory, are removed (the link, not what it points to), so the build record holds none.
//! The workspace copy is removed the same way: no link in it is followed.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::Arc;

use monkeyci_protocol::error_chain as chain;
use monkeyci_protocol::{ContainerResult, ContainerSpec, JobStatus, Masker, OutputStream};
use monkeyci_store::files::{self, CacheSave, JobFiles};

use crate::follow::LOG_LIMIT;
use crate::follow::confined::{Dir, Kind};
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

/// Masks secrets in the job's per-command log files (of its `lines` script lines), which the
/// build record keeps: the raw output never outlives the job with a secret in it. Call it once
/// the job's process is gone. Returns notes for the job's output about what was refused.
pub(crate) async fn mask_logs(masker: &Arc<Masker>, layout: &JobLayout, lines: usize) -> Vec<Note> {
    let masker = Arc::clone(masker);
    let root = layout.root().to_owned();
    tokio::task::spawn_blocking(move || {
        let mut notes = Vec::new();
        let mut note = |text: String| notes.push((OutputStream::Stderr, format!("monkeyci: {text}")));
        let root = match Dir::open(&root) {
            Ok(root) => root,
            Err(err) => {
                note(format!("cannot open {}: {err}", root.display()));
                return notes;
            }
        };
        let Some(logs) = logs_dir(&root, &mut note) else { return notes };
        let mut left = LOG_LIMIT;
        for i in 0..lines {
            for suffix in ["out", "err"] {
                let name = format!("{i}.{suffix}");
                if let Err(err) = mask_log(&masker, &logs, &name, &mut left) {
                    note(format!("{}: {err}", logs.path().join(&name).display()));
                }
            }
        }
        notes
    })
    .await
    .unwrap_or_default()
}

/// The job's `logs/` directory, with every entry that is neither a file nor a directory
/// removed; a `logs` that is not a directory is removed itself.
fn logs_dir(root: &Dir, note: &mut impl FnMut(String)) -> Option<Dir> {
    let path = root.path().join("logs");
    match root.kind("logs") {
        Ok(Some(Kind::Dir)) => {}
        Ok(None) => return None,
        Ok(Some(kind)) => {
            let removed = root.remove("logs");
            note(format!("{} is {}, not a directory: {}", path.display(), kind.described(), done(removed)));
            return None;
        }
        Err(err) => {
            note(format!("cannot look at {}: {err}", path.display()));
            return None;
        }
    }
    let logs = match root.dir("logs") {
        Ok(logs) => logs,
        Err(err) => {
            note(format!("cannot open {}: {err}", path.display()));
            return None;
        }
    };
    for name in logs.names().unwrap_or_default() {
        if let Ok(Some(kind @ (Kind::Link | Kind::Other))) = logs.kind(&name) {
            let removed = logs.remove(&name);
            let path = logs.path().join(&name);
            note(format!("{} is {}, not a file: {}", path.display(), kind.described(), done(removed)));
        }
    }
    Some(logs)
}

fn done(removed: std::io::Result<()>) -> String {
    match removed {
        Ok(()) => "removed".into(),
        Err(err) => format!("cannot remove it: {err}"),
    }
}

/// Masks log `name` of `logs`, reading at most `left` bytes of it (less what it read); what
/// is past the limit is dropped, with a line saying so.
fn mask_log(masker: &Masker, logs: &Dir, name: &str, left: &mut u64) -> std::io::Result<()> {
    if masker.is_empty() {
        return Ok(());
    }
    let file = match logs.file(name) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(err) => return Err(err),
    };
    let mut bytes = Vec::new();
    file.take(left.saturating_add(1)).read_to_end(&mut bytes)?;
    let cut = bytes.len() as u64 > *left;
    if cut {
        bytes.truncate(*left as usize);
    }
    *left -= bytes.len() as u64;
    let text = String::from_utf8_lossy(&bytes);
    let mut masked = masker.mask(&text);
    if masked == text && !cut {
        return Ok(());
    }
    if cut {
        if !masked.is_empty() && !masked.ends_with('\n') {
            masked.push('\n');
        }
        masked.push_str(&format!(
            "monkeyci: the job's output passed its limit of {LOG_LIMIT} bytes; the rest was dropped\n"
        ));
    }
    // A new file moved over the old entry: nothing the job left there is written through.
    let temp = format!(".{name}.masked");
    let _ = logs.remove(&temp);
    logs.create_new(&temp)?.write_all(masked.as_bytes())?;
    logs.rename(&temp, name)
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
    let cache_dirs = crate::prepare::cache_dirs(layout);
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
            match files.save_cache(cache, &cache_dirs, &scratch) {
                Ok(CacheSave::Saved(count)) => {
                    notes.push((OutputStream::Stdout, format!("saved cache `{}` ({count} files)", cache.id)))
                }
                Ok(CacheSave::KeyHit(key)) => notes.push((
                    OutputStream::Stdout,
                    format!("cache `{}` unchanged (key `{key}` hit): not saved", cache.id),
                )),
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

/// Removes the job's workspace copy (`work/`) and its scratch directory (`tmp/`) once the job
/// ended and its artifacts and caches are saved, whatever its status: nothing reads them
/// afterwards. [`std::fs::remove_dir_all`] follows no link (a link is removed, not what it
/// points to). A failure is a warning for the job's output, never the job's failure; pruning
/// (after every `monkeyci build run`, and `monkeyci cache prune`) removes what is left, from
/// records of crashed runs too.
pub(crate) async fn discard_work(files: &JobFiles, layout: &JobLayout) -> Vec<Note> {
    files.forget(&layout.work_root());
    let dirs = [layout.work_root(), layout.root().join("tmp")];
    tokio::task::spawn_blocking(move || discard(&dirs)).await.unwrap_or_default()
}

fn discard(dirs: &[PathBuf]) -> Vec<Note> {
    let mut notes = Vec::new();
    for dir in dirs {
        // A job may have left a file or a link in the place of the directory: it goes itself.
        let removed = match std::fs::symlink_metadata(dir) {
            Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(dir),
            Ok(_) => std::fs::remove_file(dir),
            Err(err) => Err(err),
        };
        match removed {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => notes.push((
                OutputStream::Stderr,
                format!(
                    "monkeyci: warning: cannot remove {} from the build record: {err}; `monkeyci cache prune` \
                     tries again",
                    dir.display()
                ),
            )),
        }
    }
    notes
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    /// A job's workspace copy is removed once it ended, and no link in it is followed: what a
    /// link points to outside stays, whether the link is inside `work/` or `work` itself.
    #[tokio::test]
    async fn the_workspace_copy_goes_without_following_links() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(outside.join("dir")).unwrap();
        std::fs::write(outside.join("dir/keep"), "keep").unwrap();
        std::fs::write(outside.join("file"), "keep").unwrap();
        let store: Arc<dyn monkeyci_store::BlobStore> =
            Arc::new(monkeyci_store::LocalBlobStore::new(tmp.path().join("blobs")).unwrap());
        let files = JobFiles::new(store, "b1", tmp.path());

        let layout = JobLayout::new(tmp.path().join("jobs/j-1"));
        let work = layout.work_root();
        std::fs::create_dir_all(work.join("target/debug")).unwrap();
        std::fs::write(work.join("target/debug/big"), vec![0u8; 1 << 20]).unwrap();
        symlink(outside.join("dir"), work.join("target/link-dir")).unwrap();
        symlink(outside.join("file"), work.join("link-file")).unwrap();
        std::fs::create_dir_all(layout.root().join("tmp")).unwrap();
        std::fs::create_dir_all(layout.logs_dir()).unwrap();
        std::fs::write(layout.stdout_log(0), "out").unwrap();
        assert!(discard_work(&files, &layout).await.is_empty());
        assert!(!work.exists() && !layout.root().join("tmp").exists());
        assert_eq!(std::fs::read_to_string(layout.stdout_log(0)).unwrap(), "out", "the logs stay");
        assert!(outside.join("dir/keep").is_file() && outside.join("file").is_file());

        // A job that replaced `work` with a link: the link goes, not what it points to.
        let layout = JobLayout::new(tmp.path().join("jobs/j-2"));
        std::fs::create_dir_all(layout.root()).unwrap();
        symlink(&outside, layout.work_root()).unwrap();
        assert!(discard_work(&files, &layout).await.is_empty());
        assert!(std::fs::symlink_metadata(layout.work_root()).is_err());
        assert!(outside.join("dir/keep").is_file() && outside.join("file").is_file());
        // Nothing to remove is no warning.
        assert!(discard_work(&files, &layout).await.is_empty());

        // What cannot be removed is said, and fails nothing.
        let notes = discard(&[outside.join("file/work")]);
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].1.starts_with("monkeyci: warning: cannot remove "), "{notes:?}");
        assert!(notes[0].1.ends_with("`monkeyci cache prune` tries again"), "{notes:?}");
    }
}
