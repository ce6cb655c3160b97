//! [`ContainerJob`]: what a container job runs, as a builder, with the artifacts and caches it
//! saves and restores.
//!
//! These are values only: nothing here checks a spec against the build (`plan` does) or starts a
//! container (the engine does, through the seams).

use std::collections::BTreeMap;

use crate::protocol::{ArtifactSpec, CacheSpec, ContainerSpec, RestoreSpec};
use crate::secret::Secret;

/// Starts a container job spec for `image`.
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// let job = container("docker.io/rust:1.95")
///     .script(["cargo test --locked"])
///     .env("RUST_BACKTRACE", "1")
///     .size(2);
/// assert_eq!(job.spec().size, 2);
/// ```
pub fn container(image: impl Into<String>) -> ContainerJob {
    ContainerJob { spec: ContainerSpec { image: image.into(), size: 1, ..ContainerSpec::default() } }
}

/// What a container job runs: an image, shell lines and their environment.
///
/// Return one from a non-async `#[job]` function to declare a container job, or turn it into
/// a [`Job`](crate::Job) with [`Job::container`](crate::Job::container) in a `#[pipeline]`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use = "a ContainerJob does nothing until it is returned from a #[job] or made into a Job"]
pub struct ContainerJob {
    spec: ContainerSpec,
}

impl ContainerJob {
    /// Shell lines to run in order with `/bin/sh`; the first that fails stops the job.
    pub fn script<I, S>(mut self, lines: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.script.extend(lines.into_iter().map(Into::into));
        self
    }

    /// Runs the image's own command (no shell needed in the image) instead of a script.
    pub fn command<I, S>(mut self, argv: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.spec.command = argv.into_iter().map(Into::into).collect();
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.spec.env.insert(name.into(), value.into());
        self
    }

    /// Sets an environment variable to a secret build parameter. Only the parameter's name
    /// travels with the job; its value is masked in every log.
    pub fn env_secret(mut self, name: impl Into<String>, secret: &Secret) -> Self {
        self.spec.secret_env.insert(name.into(), secret.name().to_owned());
        self
    }

    /// Runs in this directory, relative to the checkout.
    pub fn work_dir(mut self, dir: impl Into<String>) -> Self {
        self.spec.work_dir = Some(dir.into());
        self
    }

    /// Asks for `n` CPUs and `2n` GiB of memory (default 1).
    pub fn size(mut self, n: u32) -> Self {
        self.spec.size = n;
        self
    }

    /// Stops the container after `limit` (the job then ends with status `timeout`).
    pub fn timeout(mut self, limit: std::time::Duration) -> Self {
        self.spec.timeout_ms = Some(limit.as_millis() as u64);
        self
    }

    /// Gives the container network access (by default it has none).
    pub fn network(mut self) -> Self {
        self.spec.network = true;
        self
    }

    /// Includes the repository's `.git` directory in the job's copy of the checkout (by
    /// default only the files are copied).
    pub fn with_git(mut self) -> Self {
        self.spec.with_git = true;
        self
    }

    /// Saves files of the work dir as an artifact when the script has run (also when it failed,
    /// so reports of failed jobs are kept); later jobs of the
    /// build restore it with [`ContainerJob::restore_artifact`].
    pub fn save_artifact(mut self, artifact: Artifact) -> Self {
        self.spec.save_artifacts.push(artifact.0);
        self
    }

    /// Restores an artifact saved by an earlier job (which this one should depend on) into
    /// the work dir, at the path it was saved from. A missing artifact fails the job.
    pub fn restore_artifact(mut self, id: impl Into<String>) -> Self {
        self.spec.restore_artifacts.push(RestoreSpec { id: id.into(), optional: false });
        self
    }

    /// Like [`ContainerJob::restore_artifact`], but a missing artifact is skipped.
    pub fn restore_optional_artifact(mut self, id: impl Into<String>) -> Self {
        self.spec.restore_artifacts.push(RestoreSpec { id: id.into(), optional: true });
        self
    }

    /// Restores a cache before the job and saves it after it succeeded (unless it was restored
    /// by its exact key: a key's archive is kept as first saved). Problems restoring or saving
    /// are warnings, never failures; a path or key that can never work (see [`cache`]) fails
    /// planning, naming the job.
    pub fn cache(mut self, cache: Cache) -> Self {
        self.spec.caches.push(cache.0);
        self
    }

    /// Sets each variable of `env` this job does not set itself (the pipeline's environment:
    /// a job's own `.env` wins).
    pub(crate) fn with_default_env<'a>(mut self, env: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        for (name, value) in env {
            if !self.spec.secret_env.contains_key(name) {
                self.spec.env.entry(name.to_owned()).or_insert_with(|| value.to_owned());
            }
        }
        self
    }

    /// The spec as it is sent to the build API.
    pub fn spec(&self) -> &ContainerSpec {
        &self.spec
    }

    pub(crate) fn into_spec(self) -> ContainerSpec {
        self.spec
    }

    /// The environment this job sets, secrets by parameter name.
    pub fn env_vars(&self) -> &BTreeMap<String, String> {
        &self.spec.env
    }
}

/// Files of a job's work dir kept for later jobs of the build: `artifact("dist", "target/dist")`.
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// let build = container("rust:1.95").script(["cargo build --release"]).save_artifact(artifact("bin", "target/release"));
/// let test = container("debian").restore_artifact("bin").script(["target/release/app --version"]);
/// assert_eq!(build.spec().save_artifacts[0].path, "target/release");
/// assert_eq!(test.spec().restore_artifacts[0].id, "bin");
/// ```
pub fn artifact(id: impl Into<String>, path: impl Into<String>) -> Artifact {
    Artifact(ArtifactSpec { id: id.into(), path: path.into() })
}

/// An artifact to save; see [`artifact`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact(ArtifactSpec);

impl Artifact {
    pub(crate) fn into_spec(self) -> ArtifactSpec {
        self.0
    }
}

/// Files kept between builds of the repository: `cache("cargo", "target").key_files(["Cargo.lock"])`.
///
/// `path` is relative to the work dir, or one of the cargo home's directories every Rust CI
/// keeps: `~/.cargo/registry` and `~/.cargo/git` (or a path inside them; see
/// [`Cache::cargo_registry`] and [`Cache::cargo_git`]). Those are the job's *own* cargo home,
/// which its `CARGO_HOME` names, on every engine (on the host shell engine too: the
/// machine's `~/.cargo` is never restored into or saved from). Any other absolute, `~` or `..`
/// path fails `monkeyci build verify` and `build plan`, naming the job and the path.
///
/// A cache is saved under its key: the one given with [`Cache::key`], the hash of its
/// [`Cache::key_files`], or both joined by `-`. Before the job, the archive of that exact key is
/// restored; on a miss, the newest whose key starts with the first of its
/// [`Cache::restore_keys`] that matches any; without restore keys, the newest of the cache id.
/// The job's log says which was restored.
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// let branch = "main"; // in a #[job]: ctx.branch().unwrap_or("detached")
/// let job = container("docker.io/rust:1.95")
///     .cache(cache("target", "target").key(format!("linux-{branch}")).key_files(["Cargo.lock"]).restore_keys(["linux-"]))
///     .cache(Cache::cargo_registry())
///     .script(["cargo test --locked"]);
/// assert_eq!(job.spec().caches[0].key.as_deref(), Some("linux-main"));
/// assert_eq!(job.spec().caches[1].path, "~/.cargo/registry");
/// ```
pub fn cache(id: impl Into<String>, path: impl Into<String>) -> Cache {
    Cache(CacheSpec { id: id.into(), path: path.into(), ..CacheSpec::default() })
}

/// A cache; see [`cache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache(CacheSpec);

impl Cache {
    /// `cache("cargo-registry", "~/.cargo/registry").key_files(["Cargo.lock"])`: the crates
    /// cargo downloaded (and the registry index), in the job's own cargo home. A new lock file
    /// restores the newest registry meanwhile, and saves its own.
    pub fn cargo_registry() -> Cache {
        cache("cargo-registry", "~/.cargo/registry").key_files(["Cargo.lock"])
    }

    /// `cache("cargo-git", "~/.cargo/git").key_files(["Cargo.lock"])`: git dependencies'
    /// clones and checkouts, in the job's own cargo home.
    pub fn cargo_git() -> Cache {
        cache("cargo-git", "~/.cargo/git").key_files(["Cargo.lock"])
    }

    /// Keys the cache by the contents of these files (relative to the work dir), so a change
    /// to them starts a new cache (restoring the newest one of the same id, or of the first
    /// matching [restore key](Cache::restore_keys), meanwhile).
    pub fn key_files<I, S>(mut self, files: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.0.key_files.extend(files.into_iter().map(Into::into));
        self
    }

    /// Keys the cache by a string the pipeline computes, e.g. `format!("{os}-{branch}")`; with
    /// [`Cache::key_files`] too, the key is this, `-` and their hash. At most 200 bytes, no
    /// control characters.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.0.key = Some(key.into());
        self
    }

    /// Prefixes to fall back on when no archive has the exact key, tried in order (as
    /// `actions/cache`'s `restore-keys`): the newest archive whose key starts with the first
    /// one matching any is restored. Giving restore keys replaces the default fallback (the
    /// newest archive of the cache id); end with `""` to keep it as the last resort.
    pub fn restore_keys<I, S>(mut self, prefixes: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.0.restore_keys.extend(prefixes.into_iter().map(Into::into));
        self
    }

    /// The spec as it is sent to the build API.
    pub fn spec(&self) -> &CacheSpec {
        &self.0
    }
}
