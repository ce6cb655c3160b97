//! The agent protocol: what an agent and the server say to each other about builds, and
//! [`Link`], the one interface the agent ([`crate::agent`]) runs builds through. The agent
//! embedded in `monkeyci server` links in process ([`crate::dispatch::Dispatch`]: the
//! database and the live streams); `monkeyci agent` over HTTP (`crate::remote_link`,
//! `/api/v1/agent/...`). The bodies here are that API's, as its OpenAPI document shows them.
//!
//! The rules, the same for both links:
//! - a claim hands over the oldest queued build with what running it needs;
//! - a heartbeat (every second) says the agent is alive and answers the build's cancel
//!   requests; a build that is no longer running answers 409 (the agent stops it);
//! - the agent numbers the records of a build's stream itself, from the number after the last
//!   stored (`last_seq` of the claim); an append carries the number of its first record; the
//!   server stores each number once, acknowledges a resend and refuses a gap (409 naming the
//!   number expected); it answers the number of the last stored record. So an append can be
//!   sent again until it is acknowledged, and nothing is lost or doubled;
//! - the end comes after every record is acknowledged; the server writes the end record.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::model::{Build, RecordBody, Status};

/// The most records one append may carry.
pub const MAX_RECORDS_PER_APPEND: usize = 1000;

/// The largest append body the server takes, in bytes.
pub const MAX_APPEND_BYTES: usize = 8 * 1024 * 1024;

/// `POST /api/v1/agent/claim`: who claims.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ClaimRequest {
    /// The agent's name, shown on the builds it runs.
    pub agent: String,
}

/// A claimed build, with what running it needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Claim {
    /// The build, now running on the claiming agent.
    pub build: Build,
    /// Where its repository is cloned from.
    pub url: String,
    /// Its repository's main branch.
    pub main_branch: String,
    /// The number of the last record already in the build's stream: the agent numbers its
    /// records from the next.
    pub last_seq: i64,
    /// The build's own token: it reaches only this build's params
    /// (`GET /api/v1/builds/{id}/params`), and only while the build runs.
    pub build_token: String,
}

/// Where the decision about a blocked job stands
/// (`POST /api/v1/agent/builds/{id}/jobs/{job}/approval`: asking notes that the job waits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Approval {
    /// Nobody decided yet: ask again later.
    Waiting,
    /// It may run.
    Approved,
    /// It may not.
    Rejected,
}

/// The answer about a blocked job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalState {
    /// Where the decision stands.
    pub decision: Approval,
}

/// `POST /api/v1/agent/builds/{id}/heartbeat`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HeartbeatRequest {
    /// The commit the agent checked out, once it knows.
    #[serde(default)]
    pub commit: Option<String>,
}

/// The answer to a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Beat {
    /// How many times canceling the build was asked (the first asks the pipeline to stop, the
    /// next ones insist).
    pub cancel_requests: i64,
}

/// `POST /api/v1/agent/builds/{id}/records`: records numbered from `first_seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AppendRecords {
    /// The number of the first record; the others follow one by one.
    pub first_seq: i64,
    /// The records, in order (each as a record's `kind` and `data`).
    pub records: Vec<RecordBody>,
}

/// The answer to an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Appended {
    /// The number of the last record stored: everything up to it is kept.
    pub last_seq: i64,
}

/// `POST /api/v1/agent/builds/{id}/end`: how the build ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct EndBuild {
    /// The final status (not `queued` or `running`).
    pub status: Status,
    /// Why, when not a success.
    #[serde(default)]
    pub error: Option<String>,
    /// The number of the last record the agent appended: the server refuses the end (409) if
    /// it has not kept them all.
    pub last_seq: i64,
}

/// The answer to an end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Ended {
    /// `false`: the build was over already (taken for lost, or this end was sent twice), and
    /// that end stands.
    pub ended: bool,
}

/// Why a link could not do what the agent asked.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// The server refuses, and asking again will not change it: the build is over, or the
    /// stream would have a gap. The agent stops the build.
    #[error("the server refuses: {0}")]
    Refused(String),
    /// The server could not be reached or failed, for longer than the link tries.
    #[error("the server cannot be reached")]
    Unreachable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// How an agent reaches the server: claims builds, says they are alive, appends their records
/// and ends them. The futures are `Send`, so builds run on tasks of their own.
pub trait Link: std::fmt::Debug + Clone + Send + Sync + 'static {
    /// Claims the oldest queued build for `agent`, if there is one.
    fn claim(&self, agent: &str) -> impl Future<Output = Result<Option<Claim>, LinkError>> + Send;

    /// Says the build's agent is alive (and the commit it found); answers its cancel requests.
    fn heartbeat(&self, build_id: &str, commit: Option<&str>) -> impl Future<Output = Result<Beat, LinkError>> + Send;

    /// Appends records numbered from `first_seq`; answers the number of the last one stored.
    fn append(
        &self,
        build_id: &str,
        first_seq: i64,
        records: Vec<RecordBody>,
    ) -> impl Future<Output = Result<i64, LinkError>> + Send;

    /// Ends the build; `false` if it was over already.
    fn end(&self, build_id: &str, end: EndBuild) -> impl Future<Output = Result<bool, LinkError>> + Send;

    /// Notes that `job` of the running build waits for a person's decision (asking again is
    /// harmless) and says where that decision stands.
    fn approval(&self, build_id: &str, job: &str) -> impl Future<Output = Result<Approval, LinkError>> + Send;

    /// The build's params, in clear, read with its own token (`Claim::build_token`).
    fn params(
        &self,
        build_id: &str,
        build_token: &str,
    ) -> impl Future<Output = Result<monkeyci_protocol::ParamMap, LinkError>> + Send;
}
