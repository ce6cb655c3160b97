//! Preparing a job attempt's directory: its own copy of the workspace, the job script of
//! [`crate::jobscript`], the artifacts and caches it restores, and the start file; and the
//! [`EngineJob`] that tells an engine how to run it.
//!
//! It writes the job's directory and reads the build's blobs; it must not run the job, follow
//! it or send events (what it has to say comes back as notes for the supervisor).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use monkeyci_protocol::error_chain as chain;
use monkeyci_protocol::{ContainerRequest, ContainerSpec, OutputStream};
use monkeyci_store::files::JobFiles;

use crate::engine::EngineJob;
use crate::jobscript::{DEFAULT_MOUNT, JobLayout};
use crate::workspace;

/// Where a build's jobs are prepared from, and into.
pub(crate) struct BuildDirs {
    /// The build's id (part of container names).
    pub(crate) build_id: String,
    /// The checkout each job gets a copy of.
    pub(crate) checkout_dir: PathBuf,
    /// Where each job attempt gets its directory.
    pub(crate) jobs_dir: PathBuf,
    /// The build's artifacts and the repository's caches.
    pub(crate) files: JobFiles,
}

/// A line for the job's output, about what preparing did.
pub(crate) type Note = (OutputStream, String);

/// Creates the job's directory: workspace copy, job script, restored artifacts and caches,
/// start file. Returns the engine's view of the job, its layout, and notes for its output.
pub(crate) async fn prepare(
    dirs: &BuildDirs,
    id: &str,
    request: &ContainerRequest,
    secrets: BTreeMap<String, String>,
) -> Result<(EngineJob, JobLayout, Vec<Note>), String> {
    let spec: &ContainerSpec = &request.spec;
    let root = dirs.jobs_dir.join(id);
    let layout = JobLayout::new(root.clone());
    let checkout = dirs.checkout_dir.clone();
    let with_git = spec.with_git;
    let work = layout.work_root();
    let script = spec.script.clone();
    let prepared_layout = layout.clone();
    let files = dirs.files.clone();
    let restores = spec.restore_artifacts.clone();
    let caches = spec.caches.clone();
    let notes = tokio::task::spawn_blocking(move || -> Result<Vec<Note>, String> {
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|e| format!("cannot clear {}: {e}", root.display()))?;
        }
        workspace::copy_checkout(&checkout, &work, with_git)
            .map_err(|e| format!("cannot copy the workspace: {}", chain(&e)))?;
        prepared_layout.write_script(&script).map_err(|e| format!("cannot write the job script: {}", chain(&e)))?;
        let mut notes = Vec::new();
        for restore in &restores {
            match files.restore_artifact(restore, &work) {
                Ok(true) => notes.push((OutputStream::Stdout, format!("restored artifact `{}`", restore.id))),
                Ok(false) => {
                    notes.push((OutputStream::Stdout, format!("artifact `{}` does not exist (optional)", restore.id)))
                }
                Err(err) => return Err(format!("cannot restore artifact `{}`: {}", restore.id, chain(&err))),
            }
        }
        for cache in &caches {
            match files.restore_cache(cache, &work) {
                Ok(Some(key)) => notes.push((OutputStream::Stdout, format!("restored cache `{}` ({key})", cache.id))),
                Ok(None) => {
                    notes.push((OutputStream::Stdout, format!("cache `{}` is empty: nothing saved yet", cache.id)))
                }
                Err(err) => notes.push((
                    OutputStream::Stderr,
                    format!("warning: cache `{}` not restored: {}", cache.id, chain(&err)),
                )),
            }
        }
        Ok(notes)
    })
    .await
    .map_err(|e| format!("preparing the job failed: {e}"))??;

    let work_sub = spec.work_dir.as_deref().map(Path::new);
    let work_dir_on_host = layout.work_dir(work_sub).map_err(|e| chain(&e))?;
    if !work_dir_on_host.is_dir() {
        return Err(format!(
            "work_dir {:?} is not a directory of the checkout",
            spec.work_dir.as_deref().unwrap_or_default()
        ));
    }
    let in_container = layout.mounted_at(DEFAULT_MOUNT);
    let env_of = |layout: &JobLayout| -> Result<Vec<(String, String)>, String> {
        let vars = layout.env(work_sub).map_err(|e| chain(&e))?;
        Ok(vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_string_lossy().into_owned())).collect())
    };
    let wrapper_in_root =
        layout.wrapper().strip_prefix(layout.root()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let job = EngineJob {
        name: container_name(&dirs.build_id, id),
        image: spec.image.clone(),
        root: layout.root().to_owned(),
        wrapper_in_root,
        wrapper_on_host: layout.wrapper(),
        work_dir_on_host: work_dir_on_host.clone(),
        work_dir_in_container: in_container.work_dir(work_sub).map_err(|e| chain(&e))?.to_string_lossy().into_owned(),
        env: spec.env.clone(),
        secret_env: secrets,
        protocol_env_on_host: env_of(&layout)?,
        protocol_env_in_container: env_of(&in_container)?,
        command: spec.command.clone(),
        cpus: spec.size.max(1),
        memory_gib: spec.size.max(1) * 2,
        network: spec.network,
    };
    layout.signal_start().map_err(|e| format!("cannot create the start file: {}", chain(&e)))?;
    Ok((job, layout, notes))
}

/// Container names: `monkeyci-<build>-<job>-<attempt>`, in the alphabet engines accept.
fn container_name(build_id: &str, id: &str) -> String {
    monkeyci_protocol::id::sanitize(&format!("monkeyci-{build_id}-{id}"))
}
