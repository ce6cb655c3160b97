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

    /// Restores a cache before the job and saves it after it succeeded. Cache problems are
    /// warnings, never failures.
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
pub fn cache(id: impl Into<String>, path: impl Into<String>) -> Cache {
    Cache(CacheSpec { id: id.into(), path: path.into(), key_files: Vec::new() })
}

/// A cache; see [`cache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cache(CacheSpec);

impl Cache {
    /// Keys the cache by the contents of these files (relative to the work dir), so a change
    /// to them starts a new cache (restoring the newest one of the same id meanwhile).
    pub fn key_files<I, S>(mut self, files: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.0.key_files.extend(files.into_iter().map(Into::into));
        self
    }
}
