//! What a build is about: where the code is, which git ref, what changed, who triggered it.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Build parameters by name. Values are secrets: scripts see them only as the sdk's `Secret`.
pub type ParamMap = BTreeMap<String, String>;

/// Plain build variables by name (`--var NAME=VALUE`): not secret, never masked, read with
/// the sdk's `Ctx::var`.
pub type VarMap = BTreeMap<String, String>;

/// Who started a build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// `monkeyci build run` on a developer's machine.
    #[default]
    Cli,
    /// A call to the MonkeyCI API (a manual trigger).
    Api,
    /// A webhook from a git forge.
    Webhook,
}

impl std::str::FromStr for Source {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cli" => Ok(Source::Cli),
            "api" => Ok(Source::Api),
            "webhook" => Ok(Source::Webhook),
            other => Err(format!("unknown build source {other:?}; expected cli, api or webhook")),
        }
    }
}

/// The event a build is for: what a webhook (GitHub's `push`, `pull_request`,
/// `workflow_dispatch`, `schedule`; GitLab's Push, Tag Push and Merge Request hooks) or the
/// command line (`--trigger`) says happened. [`Source`] says who asked for the build; this
/// says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Trigger {
    /// Commits pushed to a branch.
    Push,
    /// A pull (merge) request opened or updated.
    PullRequest,
    /// A tag pushed.
    Tag,
    /// Started by hand (GitHub's `workflow_dispatch`, a button, the API).
    Manual,
    /// Started by a schedule.
    Schedule,
}

impl Trigger {
    /// Every trigger, with its name as written on the command line and the wire.
    pub const ALL: [(&'static str, Trigger); 5] = [
        ("push", Trigger::Push),
        ("pull-request", Trigger::PullRequest),
        ("tag", Trigger::Tag),
        ("manual", Trigger::Manual),
        ("schedule", Trigger::Schedule),
    ];

    /// The name as written on the command line and the wire, such as `pull-request`.
    pub fn as_str(self) -> &'static str {
        Trigger::ALL.iter().find(|(_, trigger)| *trigger == self).map_or("push", |(name, _)| name)
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Trigger {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Trigger::ALL.iter().find(|(name, _)| *name == s).map(|(_, trigger)| *trigger).ok_or_else(|| {
            let names: Vec<&str> = Trigger::ALL.iter().map(|(name, _)| *name).collect();
            format!("unknown trigger {s:?}; expected one of: {}", names.join(", "))
        })
    }
}

/// Files changed by the commits being built, as paths relative to the repository root.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Changes {
    /// Files that are new.
    #[serde(default)]
    pub added: Vec<String>,
    /// Files that changed.
    #[serde(default)]
    pub modified: Vec<String>,
    /// Files that were deleted.
    #[serde(default)]
    pub removed: Vec<String>,
}

impl Changes {
    /// Every changed path: added, modified and removed.
    pub fn all(&self) -> impl Iterator<Item = &str> {
        self.added.iter().chain(&self.modified).chain(&self.removed).map(String::as_str)
    }
}

/// The git side of a build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GitInfo {
    /// The full ref being built, such as `refs/heads/main` or `refs/tags/v1.2.0`.
    #[serde(default, rename = "ref")]
    pub git_ref: Option<String>,
    /// The commit being built.
    #[serde(default)]
    pub commit_id: Option<String>,
    /// The repository's main branch (`main` unless configured otherwise).
    pub main_branch: String,
    /// What changed.
    #[serde(default)]
    pub changes: Changes,
}

impl Default for GitInfo {
    fn default() -> Self {
        GitInfo { git_ref: None, commit_id: None, main_branch: "main".into(), changes: Changes::default() }
    }
}

/// Everything a script knows about the build it runs in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildInfo {
    /// Unique id of the build.
    pub build_id: String,
    /// Where the code is checked out.
    pub checkout_dir: PathBuf,
    /// Git ref, commit and changes.
    #[serde(default)]
    pub git: GitInfo,
    /// Who triggered the build.
    #[serde(default)]
    pub source: Source,
    /// When the build started, in milliseconds since the Unix epoch: the sdk's `Ctx::now` for
    /// the whole build, the same on every launch of the script.
    #[serde(default)]
    pub started_at_ms: u64,
    /// Plain variables: values that are not secrets, such as the event that triggered the
    /// build. Unlike params they travel with the build info and are never masked.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub vars: VarMap,
    /// The event the build is for, when it was said; see [`BuildInfo::trigger`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
}

impl BuildInfo {
    /// The event the build is for: as said, else [`Trigger::Tag`] when the ref built is a tag
    /// (`--tag`, or a checkout at a tag), else [`Trigger::Push`].
    ///
    /// ```
    /// use monkeyci_protocol::{BuildInfo, Trigger};
    ///
    /// let mut info: BuildInfo = serde_json::from_str(r#"{"build_id":"b","checkout_dir":"."}"#).unwrap();
    /// assert_eq!(info.trigger(), Trigger::Push);
    /// info.git.git_ref = Some("refs/tags/v1.0".into());
    /// assert_eq!(info.trigger(), Trigger::Tag);
    /// info.trigger = Some(Trigger::Manual);
    /// assert_eq!(info.trigger(), Trigger::Manual);
    /// ```
    pub fn trigger(&self) -> Trigger {
        self.trigger.unwrap_or_else(|| match &self.git.git_ref {
            Some(git_ref) if git_ref.starts_with("refs/tags/") => Trigger::Tag,
            _ => Trigger::Push,
        })
    }
}

/// How a script reaches its build API.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiEndpoint {
    /// Base URL, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    /// The build's bearer token.
    pub token: String,
}

impl std::fmt::Debug for ApiEndpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiEndpoint").field("url", &self.url).field("token", &"***").finish()
    }
}

/// What the runtime asks a script process to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptMode {
    /// Plan and run the jobs.
    Run,
    /// Only plan, and report the plan as a `script/plan` event.
    Plan,
}

/// The configuration a script process starts from, passed in [`SCRIPT_CONFIG_ENV`](crate::SCRIPT_CONFIG_ENV).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScriptConfig {
    /// The build.
    pub build: BuildInfo,
    /// The build API.
    pub api: ApiEndpoint,
    /// Run or only plan.
    pub mode: ScriptMode,
    /// Only these jobs and what they depend on (empty: all).
    #[serde(default)]
    pub jobs: Vec<String>,
    /// At most this many jobs doing process work (commands, containers) at once.
    pub max_parallel: usize,
    /// Stop starting jobs after the first failure.
    #[serde(default)]
    pub fail_fast: bool,
    /// When the script may exit while only container jobs run.
    #[serde(default)]
    pub suspend: SuspendMode,
    /// How long only container jobs must have been running before `auto` suspends.
    #[serde(default)]
    pub suspend_after_ms: u64,
    /// This launch resumes a suspended (or crashed) script: replay the journal first.
    #[serde(default)]
    pub resume: bool,
    /// Which launch of the script this is for its build, from 1 (0: not said). The script
    /// numbers its event batches within it (see [`EventBatch`](crate::EventBatch)).
    #[serde(default)]
    pub launch: u32,
}

/// When a script suspends: exits while only container jobs run, to be resumed from its
/// journal when one of them ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SuspendMode {
    /// Never: the script waits for its containers.
    #[default]
    Never,
    /// Once only container jobs have been running for `suspend_after_ms`.
    Auto,
    /// As soon as only container jobs run.
    Always,
}

impl std::str::FromStr for SuspendMode {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "never" => Ok(SuspendMode::Never),
            "auto" => Ok(SuspendMode::Auto),
            "always" => Ok(SuspendMode::Always),
            other => Err(format!("unknown suspend mode {other:?}; expected never, auto or always")),
        }
    }
}
