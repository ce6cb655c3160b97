//! The resolved DAG of a build, as data: which jobs run, what they depend on, and which were
//! left out and why.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::cache::{self, CARGO_HOME_VAR, CachePath};
use crate::status::JobStatus;

/// The jobs of one build, in dependency order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// Jobs that will run, each after all of its dependencies.
    pub jobs: Vec<PlannedJob>,
    /// Jobs left out (a `when` condition was false, or a dependency was left out).
    #[serde(default)]
    pub skipped: Vec<SkippedJob>,
}

impl Plan {
    /// The planned job with this id.
    pub fn job(&self, id: &str) -> Option<&PlannedJob> {
        self.jobs.iter().find(|job| job.id == id)
    }

    /// The ids of the planned jobs, in dependency order.
    pub fn job_ids(&self) -> Vec<&str> {
        self.jobs.iter().map(|job| job.id.as_str()).collect()
    }
}

/// Whether a job runs in the script process or in a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobKind {
    /// Async Rust in the script process.
    Action,
    /// Shell lines in a container.
    Container,
}

/// One job of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedJob {
    /// The job id.
    pub id: String,
    /// Action or container.
    pub kind: JobKind,
    /// Ids of the jobs it waits for.
    #[serde(default)]
    pub depends_on: Vec<String>,
    /// It waits for approval before it runs.
    #[serde(default)]
    pub blocked: bool,
    /// Stopped after this long, per attempt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Extra attempts after an error (action jobs).
    #[serde(default)]
    pub retries: u32,
    /// An action job that may run again after a crash or a suspension (the default); a job
    /// declared `idempotent = false` fails instead, and the script never suspends under it.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub idempotent: bool,
    /// Its failure (or timeout) does not fail the build, and jobs depending on it run as if
    /// it had succeeded: `#[job(allow_failure)]`, for jobs such as an MSRV check. It still
    /// ends with status `failure` (or `timeout`), shown as allowed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_failure: bool,
    /// When it runs, given how its dependencies ended (default: when they all succeeded).
    #[serde(default, skip_serializing_if = "Runs::is_default")]
    pub runs: Runs,
    /// What a container job runs; `None` for an action job, and for a container job whose
    /// spec is resolved at run time ([`PlannedJob::resolved_at_run_time`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<ContainerSpec>,
    /// A container job whose spec reads the outputs of jobs it depends on (GitHub's
    /// `${{ needs.x.outputs.y }}`): it is resolved when they have ended, just before the
    /// container starts, so the plan has no `container` for it yet.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resolved_at_run_time: bool,
    /// Where it was declared (`src/main.rs:12`, or the `#[pipeline]` function).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub declared_at: Option<String>,
}

/// When a job runs, given how its dependencies ended (GitHub's `success()`, `failure()` and
/// `always()`). A job allowed to fail counts as succeeded here.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Runs {
    /// When every dependency succeeded; skipped, naming it, as soon as one did not.
    #[default]
    OnSuccess,
    /// Once every dependency ended, if one of them failed, timed out or was canceled, or was
    /// skipped because a job before it did: reports and notifications about a failure.
    OnFailure,
    /// Once every dependency ended, however: cleanup. Not when the build is canceled.
    Always,
}

impl Runs {
    /// `on_success`, `on_failure`, `always`: as written in `#[job(runs = ...)]`.
    pub fn as_str(self) -> &'static str {
        match self {
            Runs::OnSuccess => "on_success",
            Runs::OnFailure => "on_failure",
            Runs::Always => "always",
        }
    }

    fn is_default(&self) -> bool {
        *self == Runs::OnSuccess
    }
}

/// A job that is not part of this build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedJob {
    /// The job id.
    pub id: String,
    /// Why it is left out.
    pub reason: String,
}

/// What a container job runs, as sent over the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// The image, such as `docker.io/rust:1.95`.
    pub image: String,
    /// Shell lines, each run with `/bin/sh` in order; the first failure stops the job.
    #[serde(default)]
    pub script: Vec<String>,
    /// The image's own command to run instead of a script.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Plain environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Environment variables whose values come from build params, by param name; the values
    /// never travel in a spec.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secret_env: BTreeMap<String, String>,
    /// Working directory relative to the checkout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub work_dir: Option<String>,
    /// n CPUs and 2n GiB of memory.
    pub size: u32,
    /// Stop the container after this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Artifacts saved from the work dir after the job succeeds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub save_artifacts: Vec<ArtifactSpec>,
    /// Artifacts of earlier jobs of this build, restored into the work dir before it starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_artifacts: Vec<RestoreSpec>,
    /// Caches restored before and saved after the job, shared by the builds of a repository.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub caches: Vec<CacheSpec>,
    /// The container may use the network (default: no network at all).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    /// The workspace copy includes `.git`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub with_git: bool,
}

impl ContainerSpec {
    /// What the container runs (image, script, command) in one line: how the journal and the
    /// runtime tell whether a resumed script asks for the same container as before.
    ///
    /// ```
    /// use monkeyci_protocol::ContainerSpec;
    ///
    /// let spec = ContainerSpec { image: "alpine".into(), script: vec!["make".into()], ..Default::default() };
    /// assert_eq!(spec.digest(), r#"alpine ["make"] []"#);
    /// ```
    pub fn digest(&self) -> String {
        format!("{} {:?} {:?}", self.image, self.script, self.command)
    }

    /// What keeps this spec from running, if anything: an empty image, nothing to run, or a
    /// `work_dir` that is not a relative path inside the checkout. Planning reports it, so
    /// `monkeyci build plan` and `verify` catch it; the runtime refuses such a spec too.
    ///
    /// ```
    /// use monkeyci_protocol::ContainerSpec;
    ///
    /// let spec = ContainerSpec { image: "alpine".into(), script: vec!["make".into()], ..Default::default() };
    /// assert_eq!(spec.problem(), None);
    /// let escaping = ContainerSpec { work_dir: Some("../elsewhere".into()), ..spec };
    /// assert!(escaping.problem().unwrap().contains("work_dir"));
    /// ```
    pub fn problem(&self) -> Option<String> {
        if self.image.trim().is_empty() {
            return Some("the image is empty".to_owned());
        }
        if self.script.is_empty() && self.command.is_empty() {
            return Some("nothing to run: give it script lines or a command".to_owned());
        }
        if let Some(dir) = &self.work_dir
            && !is_inside(dir)
        {
            return Some(format!("work_dir {dir:?} must be a relative path inside the checkout, without `..`"));
        }
        if self.size > MAX_SIZE {
            return Some(format!(
                "size {} is too large: at most {MAX_SIZE} (CPUs; memory is twice that in GiB)",
                self.size
            ));
        }
        for artifact in &self.save_artifacts {
            if let Err(err) = crate::id::check(&artifact.id) {
                return Some(format!("artifact id {:?}: {err}", artifact.id));
            }
            if !is_inside(&artifact.path) {
                return Some(format!(
                    "artifact `{}`: path {:?} must be a relative path inside the work dir, without `..` (`.` for all of it)",
                    artifact.id, artifact.path
                ));
            }
        }
        for restore in &self.restore_artifacts {
            if let Err(err) = crate::id::check(&restore.id) {
                return Some(format!("artifact id {:?}: {err}", restore.id));
            }
        }
        let sets_cargo_home = self.env.contains_key(CARGO_HOME_VAR) || self.secret_env.contains_key(CARGO_HOME_VAR);
        for cache in &self.caches {
            let in_cargo_home = matches!(cache.location(), Ok(CachePath::CargoHome(_)));
            let problem = cache.problem().or_else(|| {
                // The job's cargo would not look where its cache is restored.
                (in_cargo_home && sets_cargo_home).then(|| cache::Problem::CargoHomeSet(cache.path.clone()))
            });
            if let Some(problem) = problem {
                return Some(format!("cache `{}`: {problem}", cache.id));
            }
        }
        None
    }
}

/// The largest [`ContainerSpec::size`]: CPUs, with twice that in GiB of memory.
pub const MAX_SIZE: u32 = 1024;

/// Whether `path` is a relative path that stays inside the directory it is relative to.
fn is_inside(path: &str) -> bool {
    !path.is_empty()
        && std::path::Path::new(path)
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::CurDir))
}

/// Files a job saves for later jobs of the same build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ArtifactSpec {
    /// The artifact's id, unique in the build.
    pub id: String,
    /// A file or directory, relative to the job's work dir.
    pub path: String,
}

/// An artifact a job restores before it starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSpec {
    /// The artifact's id.
    pub id: String,
    /// A missing artifact is skipped instead of failing the job.
    #[serde(default)]
    pub optional: bool,
}

/// Files kept between builds of a repository; the rules of its path and keys are in
/// [`crate::cache`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheSpec {
    /// The cache's id.
    pub id: String,
    /// A directory (or file), relative to the job's work dir; or `~/.cargo/registry`,
    /// `~/.cargo/git` (or inside them): the job's own cargo home.
    pub path: String,
    /// Files whose contents key the cache (e.g. `Cargo.lock`), relative to the work dir.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key_files: Vec<String>,
    /// The key the pipeline computed (e.g. `linux-main`); with key files, the key is this, `-`
    /// and their hash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Prefixes tried in order when no archive has the exact key: the newest archive whose key
    /// starts with the first that matches is restored. Without any, the newest archive of the
    /// cache id is.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restore_keys: Vec<String>,
}

impl CacheSpec {
    /// Where the cache's files are: see [`cache::location`].
    pub fn location(&self) -> Result<CachePath<'_>, cache::Problem> {
        cache::location(&self.path)
    }

    /// What keeps this cache from being restored or saved, if anything: see [`cache::problem`].
    pub fn problem(&self) -> Option<cache::Problem> {
        cache::problem(&self.id, &self.path, self.key.as_deref(), &self.restore_keys)
    }
}

/// `POST /containers`: run a container job. Sending the same `(job_id, attempt)` twice starts
/// one container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRequest {
    /// The job.
    pub job_id: String,
    /// The attempt (1 for the first).
    pub attempt: u32,
    /// What to run.
    pub spec: ContainerSpec,
}

/// What `POST /containers` answers: the run's id, for `GET /containers/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerStarted {
    /// The id of this container run.
    pub id: String,
}

/// `GET /containers/{id}`: a container run, and its result once it ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerState {
    /// The id of the run.
    pub id: String,
    /// The result, once the container is gone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<ContainerResult>,
}

/// How a container job ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerResult {
    /// success, failure, timeout or canceled.
    pub status: JobStatus,
    /// The exit code of the script or command, when it ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit: Option<i32>,
    /// Why, when it did not succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

fn default_true() -> bool {
    true
}

fn is_true(value: &bool) -> bool {
    *value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ContainerSpec {
        ContainerSpec { image: "alpine".into(), script: vec!["make".into()], ..Default::default() }
    }

    /// #9: artifact paths that can only fail, and sizes that overflow, are refused when the
    /// pipeline is planned, not after the container ran.
    #[test]
    fn paths_ids_and_sizes_that_can_only_fail_are_problems() {
        let artifact = |path: &str| ArtifactSpec { id: "dist".into(), path: path.into() };
        for path in ["/etc/passwd", "../outside", "a/../../b", ""] {
            let spec = ContainerSpec { save_artifacts: vec![artifact(path)], ..spec() };
            assert!(spec.problem().is_some_and(|p| p.contains("artifact `dist`")), "{path:?}");
        }
        assert_eq!(ContainerSpec { save_artifacts: vec![artifact("target/dist")], ..spec() }.problem(), None);
        let bad_id = ArtifactSpec { id: "../x".into(), path: "x".into() };
        assert!(ContainerSpec { save_artifacts: vec![bad_id], ..spec() }.problem().is_some());
        let cache = |path: &str| CacheSpec { id: "cargo".into(), path: path.into(), ..CacheSpec::default() };
        assert!(ContainerSpec { caches: vec![cache("/var/cache")], ..spec() }.problem().is_some());
        assert_eq!(ContainerSpec { caches: vec![cache("~/.cargo/registry")], ..spec() }.problem(), None);
        assert_eq!(
            ContainerSpec { caches: vec![cache("~/.npm")], ..spec() }.problem().unwrap(),
            "cache `cargo`: path \"~/.npm\" is in the home directory, which only `~/.cargo/registry` and \
             `~/.cargo/git` (or paths inside them) may name: the job's own cargo home; give other caches a path \
             inside the work dir"
        );
        // A job caching the cargo home must not point its cargo elsewhere.
        let registry = ContainerSpec { caches: vec![cache("~/.cargo/registry")], ..spec() };
        let env = BTreeMap::from([("CARGO_HOME".to_owned(), "/x".to_owned())]);
        assert!(ContainerSpec { env, ..registry.clone() }.problem().unwrap().contains("must not set `CARGO_HOME`"));
        let secret_env = BTreeMap::from([("CARGO_HOME".to_owned(), "P".to_owned())]);
        assert!(ContainerSpec { secret_env, ..registry }.problem().is_some());
        assert!(ContainerSpec { size: u32::MAX, ..spec() }.problem().is_some_and(|p| p.contains("too large")));
        assert_eq!(ContainerSpec { size: MAX_SIZE, ..spec() }.problem(), None);
    }
}
