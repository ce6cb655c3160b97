//! Preparing a job attempt's directory, in the order of the job script protocol:
//!
//! 1. [`create`]: a fresh directory with the job script of [`crate::jobscript`] written (and
//!    the job's secrets file, which the wrapper reads and deletes), and the [`EngineJob`] that
//!    tells an engine how to run it. From here the wrapper can be
//!    started: it waits for the start file.
//! 2. [`fill`]: the job's own copy of the workspace, the artifacts and caches it restores, and
//!    a check that its work dir exists. A job caching `~/.cargo/registry` or `~/.cargo/git`
//!    gets its own cargo home in its directory ([`JobLayout::cargo_home`]), restored there and
//!    named by its `CARGO_HOME` (set in step 1), on every engine: on the host shell engine the
//!    job's `HOME` is the user's, and the user's `~/.cargo` is never restored into or saved
//!    from.
//! 3. [`finish`]: the start file when all of that succeeded; otherwise the abort file, naming
//!    the reason, so a wrapper already waiting gives up at once and the job fails with it.
//!
//! It writes the job's directory and reads the build's blobs; it must not run the job, follow
//! it or send events (what it has to say comes back as notes for the supervisor).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use monkeyci_protocol::cache::{CARGO_HOME_VAR, CachePath};
use monkeyci_protocol::error_chain as chain;
use monkeyci_protocol::{CacheSpec, ContainerSpec, OutputStream};
use monkeyci_store::files::{self, CacheDirs, CacheRestore, JobFiles};

use crate::engine::EngineJob;
use crate::jobscript::{self, DEFAULT_MOUNT, JobLayout};
use crate::workspace;

/// Why a job's directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    /// The directory of an earlier run with the same id could not be removed.
    #[error("cannot clear {}", path.display())]
    Clear {
        /// The job's directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The wrapper or a script line could not be written.
    #[error("cannot write the job script")]
    Script(#[source] jobscript::Error),
    /// The job's secrets file could not be written.
    #[error("cannot write the job's secrets file")]
    Secrets(#[source] jobscript::Error),
    /// The workspace could not be copied.
    #[error("cannot copy the workspace")]
    Workspace(#[source] workspace::Error),
    /// An artifact the job restores could not be restored.
    #[error("cannot restore artifact `{id}`")]
    Restore {
        /// The artifact.
        id: String,
        /// Why.
        #[source]
        source: files::Error,
    },
    /// The job's own cargo home could not be created.
    #[error("cannot create the job's cargo home {}", path.display())]
    CargoHome {
        /// Where.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The job's work dir is not a relative path inside its workspace.
    #[error(transparent)]
    WorkDir(jobscript::Error),
    /// The job's work dir is not in the copied workspace.
    #[error("work_dir {dir:?} is not a directory of the checkout")]
    NoWorkDir {
        /// The work dir, as the job gave it.
        dir: String,
    },
    /// The start file could not be created.
    #[error("cannot create the start file")]
    Start(#[source] jobscript::Error),
    /// The task preparing the directory panicked or was canceled.
    #[error("preparing the job failed")]
    Task(#[source] tokio::task::JoinError),
}

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

/// The directory of job attempt `id`.
pub(crate) fn layout(dirs: &BuildDirs, id: &str) -> JobLayout {
    JobLayout::new(dirs.jobs_dir.join(id))
}

/// Step 1: creates the job's directory (removing an earlier one) with its script written, and
/// says how an engine runs it. A script's secret values go to the secrets file, which the
/// wrapper reads and deletes, never to the engine's environment (where `inspect` shows them);
/// a job with its own command has no wrapper, so it gets them in its environment.
///
/// A job with its own command starts in its work dir, which exists only after [`fill`]; the
/// wrapper starts in `work/` (which exists now) and moves to the work dir itself once started.
pub(crate) async fn create(
    dirs: &BuildDirs,
    id: &str,
    job_id: &str,
    spec: &ContainerSpec,
    secrets: BTreeMap<String, String>,
) -> Result<(EngineJob, JobLayout), Error> {
    let layout = layout(dirs, id);
    let root = layout.root().to_owned();
    let work_sub = spec.work_dir.as_deref().map(Path::new);
    let in_container = layout.mounted_at(DEFAULT_MOUNT);
    let starts_in = if spec.command.is_empty() { None } else { work_sub };
    let own_cargo_home = caches_cargo_home(spec);
    let env_of = |layout: &JobLayout| -> Result<Vec<(String, String)>, Error> {
        let vars = layout.env(work_sub).map_err(Error::WorkDir)?;
        let mut vars: Vec<(String, String)> =
            vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_string_lossy().into_owned())).collect();
        if own_cargo_home {
            vars.push((CARGO_HOME_VAR.to_owned(), layout.cargo_home().to_string_lossy().into_owned()));
        }
        Ok(vars)
    };
    let (in_file, secret_env) =
        if spec.command.is_empty() { (secrets, BTreeMap::new()) } else { (BTreeMap::new(), secrets) };
    let wrapper_in_root =
        layout.wrapper().strip_prefix(layout.root()).map(|p| p.to_string_lossy().into_owned()).unwrap_or_default();
    let job = EngineJob {
        name: container_name(&dirs.build_id, id),
        job_id: job_id.to_owned(),
        build_id: dirs.build_id.clone(),
        image: spec.image.clone(),
        root: layout.root().to_owned(),
        wrapper_in_root,
        wrapper_on_host: layout.wrapper(),
        work_dir_on_host: layout.work_dir(starts_in).map_err(Error::WorkDir)?,
        work_dir_in_container: in_container.work_dir(starts_in).map_err(Error::WorkDir)?.to_string_lossy().into_owned(),
        env: spec.env.clone(),
        secret_env,
        protocol_env_on_host: env_of(&layout)?,
        protocol_env_in_container: env_of(&in_container)?,
        command: spec.command.clone(),
        cpus: spec.size.max(1),
        memory_gib: spec.size.max(1) * 2,
        network: spec.network,
    };
    // Described before anything is written: nothing can fail once the secrets file is there.
    let script = spec.script.clone();
    let written = layout.clone();
    tokio::task::spawn_blocking(move || -> Result<(), Error> {
        if root.exists() {
            std::fs::remove_dir_all(&root).map_err(|source| Error::Clear { path: root.clone(), source })?;
        }
        written.write_script(&script).map_err(Error::Script)?;
        written.write_secrets(&in_file).map_err(Error::Secrets)
    })
    .await
    .map_err(Error::Task)??;

    Ok((job, layout))
}

/// Whether `spec` caches a path of the cargo home, so the job gets its own.
fn caches_cargo_home(spec: &ContainerSpec) -> bool {
    spec.caches.iter().any(|cache| matches!(cache.location(), Ok(CachePath::CargoHome(_))))
}

/// Where `layout`'s job restores and saves its caches.
pub(crate) fn cache_dirs(layout: &JobLayout) -> CacheDirs {
    CacheDirs { work: layout.work_root(), cargo_home: layout.cargo_home() }
}

/// The job's log line about restoring `cache`.
fn restored_note(cache: &CacheSpec, restore: CacheRestore) -> String {
    let id = &cache.id;
    match restore {
        CacheRestore::Hit { key } => format!("restored cache `{id}` (key `{key}`)"),
        CacheRestore::Fallback { key, restored, restore_key: Some(prefix) } => {
            format!("restored cache `{id}` from key `{restored}` (restore key `{prefix}`): none has key `{key}` yet")
        }
        CacheRestore::Fallback { key, restored, restore_key: None } => {
            format!("restored cache `{id}` from key `{restored}` (its newest): none has key `{key}` yet")
        }
        CacheRestore::Miss { key } if cache.restore_keys.is_empty() => {
            format!("cache `{id}` is empty: nothing saved yet (key `{key}`)")
        }
        CacheRestore::Miss { key } => {
            let prefixes: Vec<String> = cache.restore_keys.iter().map(|k| format!("`{k}`")).collect();
            format!("cache `{id}` not restored: none has key `{key}` nor starts with {}", prefixes.join(", "))
        }
    }
}

/// Step 2: copies the workspace into the job's directory and restores its artifacts (a
/// missing required one is fatal) and caches (problems are warnings); checks its work dir.
/// Returns notes for the job's output.
pub(crate) async fn fill(dirs: &BuildDirs, spec: &ContainerSpec, layout: &JobLayout) -> Result<Vec<Note>, Error> {
    let checkout = dirs.checkout_dir.clone();
    let with_git = spec.with_git;
    let work = layout.work_root();
    let cache_dirs = cache_dirs(layout);
    let own_cargo_home = caches_cargo_home(spec);
    let work_dir = layout.work_dir(spec.work_dir.as_deref().map(Path::new)).map_err(Error::WorkDir)?;
    let asked_dir = spec.work_dir.clone().unwrap_or_default();
    let files = dirs.files.clone();
    let restores = spec.restore_artifacts.clone();
    let caches = spec.caches.clone();
    tokio::task::spawn_blocking(move || -> Result<Vec<Note>, Error> {
        workspace::copy_checkout(&checkout, &work, with_git).map_err(Error::Workspace)?;
        let mut notes = Vec::new();
        for restore in &restores {
            match files.restore_artifact(restore, &work) {
                Ok(true) => notes.push((OutputStream::Stdout, format!("restored artifact `{}`", restore.id))),
                Ok(false) => {
                    notes.push((OutputStream::Stdout, format!("artifact `{}` does not exist (optional)", restore.id)))
                }
                Err(source) => return Err(Error::Restore { id: restore.id.clone(), source }),
            }
        }
        if own_cargo_home {
            // Named by the job's CARGO_HOME whether or not a cache is restored into it.
            std::fs::create_dir_all(&cache_dirs.cargo_home)
                .map_err(|source| Error::CargoHome { path: cache_dirs.cargo_home.clone(), source })?;
        }
        for cache in &caches {
            match files.restore_cache(cache, &cache_dirs) {
                Ok(restore) => notes.push((OutputStream::Stdout, restored_note(cache, restore))),
                Err(err) => notes.push((
                    OutputStream::Stderr,
                    format!("warning: cache `{}` not restored: {}", cache.id, chain(&err)),
                )),
            }
        }
        if !work_dir.is_dir() {
            return Err(Error::NoWorkDir { dir: asked_dir });
        }
        Ok(notes)
    })
    .await
    .map_err(Error::Task)?
}

/// Step 3: the start file when `filled` succeeded; otherwise (or when the start file cannot be
/// created) the abort file, naming the reason. Returns `filled`, or why it could not start.
pub(crate) fn finish(layout: &JobLayout, filled: Result<Vec<Note>, Error>) -> Result<Vec<Note>, Error> {
    let started = filled.and_then(|notes| layout.signal_start().map(|()| notes).map_err(Error::Start));
    if let Err(err) = &started {
        abort(layout, err);
    }
    started
}

/// Writes the abort file naming `err`, so a wrapper waiting for the start file gives up at
/// once. A failure to write it is logged: the job fails with `err` either way, and its
/// process is stopped when its supervisor gives up on it.
pub(crate) fn abort(layout: &JobLayout, err: &Error) {
    if let Err(write) = layout.signal_abort(&chain(err)) {
        tracing::warn!("{}", chain(&write));
    }
}

/// Container names: `monkeyci-<build>-<job>-<attempt>`, in the alphabet engines accept.
fn container_name(build_id: &str, id: &str) -> String {
    monkeyci_protocol::id::sanitize(&format!("monkeyci-{build_id}-{id}"))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use monkeyci_store::{BlobStore, LocalBlobStore};

    use super::*;
    use crate::jobscript::EXIT_ABORTED;

    #[tokio::test]
    async fn a_failure_while_the_wrapper_waits_aborts_it_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let checkout = dir.path().join("checkout");
        std::fs::create_dir_all(&checkout).unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalBlobStore::new(dir.path().join("blobs")).unwrap());
        let files = JobFiles::new(store, "b1", &checkout);
        let dirs =
            BuildDirs { build_id: "b1".into(), checkout_dir: checkout, jobs_dir: dir.path().join("jobs"), files };
        let spec = ContainerSpec {
            script: vec!["echo ran > ran".into()],
            work_dir: Some("missing".into()),
            ..ContainerSpec::default()
        };
        let (job, layout) = create(&dirs, "j-1", "j", &spec, BTreeMap::new()).await.unwrap();

        // The wrapper, run with /bin/sh the way the shell engine runs it, waits for the start file
        // (it has no limit of its own: without the abort file it would wait forever).
        let mut wrapper = tokio::process::Command::new("/bin/sh")
            .arg(&job.wrapper_on_host)
            .current_dir(&job.work_dir_on_host)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .envs(job.protocol_env_on_host.iter().map(|(k, v)| (k, v)))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(wrapper.try_wait().unwrap().is_none(), "the wrapper must wait for the start file");

        let failed_at = Instant::now();
        let err = finish(&layout, fill(&dirs, &spec, &layout).await).unwrap_err();
        let reason = "work_dir \"missing\" is not a directory of the checkout";
        assert_eq!(chain(&err), reason);
        let status = tokio::time::timeout(Duration::from_secs(10), wrapper.wait())
            .await
            .expect("the wrapper still waits: the abort file did not stop it")
            .unwrap();
        assert_eq!(status.code(), Some(EXIT_ABORTED));
        assert!(failed_at.elapsed() < Duration::from_secs(2), "took {:?}", failed_at.elapsed());
        assert_eq!(std::fs::read_to_string(layout.abort_file()).unwrap(), format!("{reason}\n"));
        assert_eq!(
            std::fs::read_to_string(layout.events()).unwrap(),
            "{\"type\":\"container/script-end\",\"status\":\"aborted\",\"exit\":125}\n"
        );
        assert!(!layout.start_file().exists());
        assert!(!layout.work_root().join("ran").exists());
    }
}
