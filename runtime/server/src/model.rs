//! The server's entities as the API shows them: orgs, repositories, builds, the records of a
//! build's stream, tokens. These are the REST API's bodies, so the `monkeyci` command's client
//! and the server read the same definitions, and the OpenAPI document describes them from here
//! (`ToSchema`).

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An organisation: the unit that owns repositories, params and tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Org {
    /// Its id, also its name in URLs (the id alphabet: letters, digits, `-`, `_`, `.`).
    pub id: String,
    /// When it was created, in milliseconds since the Unix epoch.
    pub created_ms: i64,
}

/// A repository the server builds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Repo {
    /// The org it belongs to.
    pub org: String,
    /// Its name within the org (the id alphabet).
    pub name: String,
    /// Where it is cloned from: any URL git can clone, `file://` included.
    pub url: String,
    /// Its main branch, without `refs/heads/`.
    pub main_branch: String,
    /// Labels, which org params can be filtered on.
    pub labels: Vec<String>,
    /// Whether webhooks are accepted for it (they are only with a secret to check them by).
    pub webhook_secret_set: bool,
    /// When it was added, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// Whether a build whose agent stopped answering is queued again, once, as a new build
    /// (whose `retry_of_lost` names the lost one).
    #[serde(default)]
    pub retry_lost: bool,
}

/// How a build stands on the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Waiting for an agent.
    Queued,
    /// Claimed by an agent, which runs it.
    Running,
    /// Every job that ran succeeded.
    Success,
    /// A job failed.
    Failure,
    /// The pipeline could not be cloned, compiled or planned, or its agent was lost.
    Error,
    /// Canceled.
    Canceled,
}

impl Status {
    /// Every status with its name on the wire, in the order a build goes through them.
    pub const ALL: [(&'static str, Status); 6] = [
        ("queued", Status::Queued),
        ("running", Status::Running),
        ("success", Status::Success),
        ("failure", Status::Failure),
        ("error", Status::Error),
        ("canceled", Status::Canceled),
    ];

    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        Status::ALL.iter().find(|(_, status)| *status == self).map_or("error", |(name, _)| name)
    }

    /// Whether the build is over.
    pub fn is_final(self) -> bool {
        !matches!(self, Status::Queued | Status::Running)
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Status::ALL.iter().find(|(name, _)| *name == s).map(|(_, status)| *status).ok_or_else(|| {
            let names: Vec<_> = Status::ALL.iter().map(|(name, _)| *name).collect();
            format!("unknown build status {s:?}; expected one of {}", names.join(", "))
        })
    }
}

/// A build of a repository, as the server keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Build {
    /// Its id, unique on the server.
    pub id: String,
    /// The org of its repository.
    pub org: String,
    /// Its repository's name.
    pub repo: String,
    /// Its number within the repository, from 1.
    pub number: i64,
    /// How it stands.
    pub status: Status,
    /// Who asked for it: `api` or `webhook`.
    pub source: String,
    /// Why: `push`, `tag`, `manual`, ...
    pub trigger: String,
    /// The full ref built (`refs/heads/main`, `refs/tags/v1.0`), if known.
    pub git_ref: Option<String>,
    /// The commit built, once known.
    pub commit: Option<String>,
    /// The commit the push started from, if it said.
    pub before: Option<String>,
    /// The head commit's message, if known.
    pub message: Option<String>,
    /// Who pushed or triggered it, if known.
    pub author: Option<String>,
    /// The files the push changed, when the forge listed them (`None`: asked of git).
    pub changed: Option<Vec<String>>,
    /// Why it ended in error or was canceled, when it did.
    pub error: Option<String>,
    /// The agent running (or that ran) it.
    pub agent: Option<String>,
    /// When it was queued, in milliseconds since the Unix epoch.
    pub created_ms: i64,
    /// When an agent started it.
    pub started_ms: Option<i64>,
    /// When it ended.
    pub ended_ms: Option<i64>,
    /// The build this one runs again because that build's agent was lost (`error: agent lost`)
    /// and its repository retries lost builds.
    #[serde(default)]
    pub retry_of_lost: Option<String>,
    /// The build this one retries, if it is a retry.
    #[serde(default)]
    pub retry_of: Option<String>,
}

impl Build {
    /// The branch built, if a branch was.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref.as_deref().and_then(|r| r.strip_prefix("refs/heads/"))
    }

    /// The tag built, if a tag was.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref.as_deref().and_then(|r| r.strip_prefix("refs/tags/"))
    }
}

/// One record of a build's stream, numbered from 1 in the order the server took them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Record {
    /// Its place in the build's stream, from 1; the SSE `id`.
    pub seq: i64,
    /// What it holds.
    #[serde(flatten)]
    pub body: RecordBody,
}

/// What a record of a build's stream holds: the SSE `event` name is its `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "lowercase")]
pub enum RecordBody {
    /// An event of the build (the script's or a container job's): a `monkeyci_protocol::Event`.
    #[schema(value_type = Object)]
    Event(monkeyci_protocol::Event),
    /// A line printed by the script process itself, or by the agent preparing the build
    /// (clone, compile), secrets masked.
    Line(Line),
    /// The build is over: always the stream's last record.
    End(BuildEnd),
}

impl RecordBody {
    /// Its kind (`event`, `line`, `end`) and its data as JSON: how the database keeps it and
    /// SSE sends it (`event:` and `data:`).
    pub fn kind_and_data(&self) -> (&'static str, String) {
        // Serializing these plain data types cannot fail.
        let json = |value: serde_json::Result<String>| value.unwrap_or_default();
        match self {
            RecordBody::Event(event) => ("event", json(serde_json::to_string(event))),
            RecordBody::Line(line) => ("line", json(serde_json::to_string(line))),
            RecordBody::End(end) => ("end", json(serde_json::to_string(end))),
        }
    }

    /// Reads back what [`RecordBody::kind_and_data`] wrote; `Ok(None)` for a kind it does not
    /// know.
    pub fn from_kind_and_data(kind: &str, data: &str) -> serde_json::Result<Option<RecordBody>> {
        Ok(Some(match kind {
            "event" => RecordBody::Event(serde_json::from_str(data)?),
            "line" => RecordBody::Line(serde_json::from_str(data)?),
            "end" => RecordBody::End(serde_json::from_str(data)?),
            _ => return Ok(None),
        }))
    }

    /// Whether it ends its build's stream.
    pub fn is_end(&self) -> bool {
        matches!(self, RecordBody::End(_))
    }
}

/// A line of output outside any job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Line {
    /// Where it was printed: `stdout` or `stderr`.
    #[schema(value_type = String, example = "stdout")]
    pub stream: monkeyci_protocol::OutputStream,
    /// The line, without its end.
    pub line: String,
}

/// How a build ended, as the last record of its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BuildEnd {
    /// The final status.
    pub status: Status,
    /// Why, when not a success.
    pub error: Option<String>,
}

/// A new API token, shown once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct NewToken {
    /// The token itself: send it as `Authorization: Bearer <token>`. Only its hash is kept.
    pub token: String,
    /// Whether it may do everything.
    pub admin: bool,
    /// The org it is scoped to, when not admin.
    pub org: Option<String>,
    /// Whether it is an agent's: it reaches only the agent protocol (`/api/v1/agent/...`).
    #[serde(default)]
    pub agent: bool,
}
