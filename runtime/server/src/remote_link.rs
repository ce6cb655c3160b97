//! The agent protocol over HTTP: the [`Link`] of `monkeyci agent`, calling the server's
//! `/api/v1/agent/...` routes with an agent token through the [`Client`].
//!
//! A call that fails without an answer, or with one that may change (5xx, 408, 429), is sent
//! again after a pause that doubles up to [`MAX_PAUSE`], for up to the link's patience; so a
//! server restarting mid-build loses nothing: the records not acknowledged are sent again, and
//! the server keeps each number once. A refusal (409: the build is over or the stream has a
//! gap; 401/403: the token) is not asked again. Records go in chunks of at most
//! [`CHUNK_RECORDS`] records and about [`CHUNK_BYTES`] bytes.

use std::time::{Duration, Instant};

use hyper::{Method, StatusCode};

use crate::client::{Client, ClientError};
use crate::link::{
    AppendRecords, Appended, Approval, ApprovalState, Beat, Claim, ClaimRequest, EndBuild, Ended, HeartbeatRequest,
    Link, LinkError,
};
use crate::model::RecordBody;
use monkeyci_protocol::ParamMap;

/// The most records sent in one append.
pub const CHUNK_RECORDS: usize = 500;

/// About the most bytes of records sent in one append (a single larger record goes alone).
pub const CHUNK_BYTES: usize = 1024 * 1024;

/// The longest pause between two tries.
pub const MAX_PAUSE: Duration = Duration::from_secs(5);

/// The first pause after a failed try.
const FIRST_PAUSE: Duration = Duration::from_millis(100);

/// How long one request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A link to a server over HTTP.
#[derive(Debug, Clone)]
pub struct HttpLink {
    client: Client,
    patience: Duration,
}

impl HttpLink {
    /// A link through `client` (with an agent token) that keeps trying a failed call for up to
    /// `patience`.
    pub fn new(client: Client, patience: Duration) -> HttpLink {
        HttpLink { client, patience }
    }

    /// POSTs to `path` once with the agent's token: a refusal is [`LinkError::Refused`], any
    /// other failure [`LinkError::Unreachable`].
    async fn call_once<T, B>(&self, path: &str, body: &B) -> Result<T, LinkError>
    where
        T: serde::de::DeserializeOwned,
        B: serde::Serialize + Sync,
    {
        ask(&self.client, Method::POST, path, Some(body)).await
    }

    /// Calls `path` until it is answered, a refusal comes, or the patience runs out.
    async fn call<T, B>(&self, path: &str, body: &B) -> Result<T, LinkError>
    where
        T: serde::de::DeserializeOwned,
        B: serde::Serialize + Sync,
    {
        let deadline = Instant::now() + self.patience;
        let mut pause = FIRST_PAUSE;
        loop {
            match self.call_once(path, body).await {
                Err(LinkError::Unreachable(err)) => {
                    if Instant::now() + pause > deadline {
                        return Err(LinkError::Unreachable(err));
                    }
                    tracing::warn!("{path}: {}; trying again in {pause:?}", monkeyci_protocol::error_chain(&*err));
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(MAX_PAUSE);
                }
                answer => return answer,
            }
        }
    }
}

/// Whether an error answer may be different when asked again.
/// One call of `method` on `path` through `client`, within [`REQUEST_TIMEOUT`]: a refusal is
/// [`LinkError::Refused`], any other failure (no answer, one that may change) is
/// [`LinkError::Unreachable`].
async fn ask<T, B>(client: &Client, method: Method, path: &str, body: Option<&B>) -> Result<T, LinkError>
where
    T: serde::de::DeserializeOwned,
    B: serde::Serialize + Sync,
{
    match tokio::time::timeout(REQUEST_TIMEOUT, client.call(method, path, body)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(ClientError::Api { status, message, .. })) if !worth_again(status) => {
            Err(LinkError::Refused(format!("{status}: {message}")))
        }
        Ok(Err(err)) => Err(LinkError::Unreachable(Box::new(err))),
        Err(_) => Err(LinkError::Unreachable(Box::new(ClientError::Connect {
            url: client.url().to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::TimedOut, "no answer in time"),
        }))),
    }
}

fn worth_again(status: StatusCode) -> bool {
    status.is_server_error() || status == StatusCode::REQUEST_TIMEOUT || status == StatusCode::TOO_MANY_REQUESTS
}

fn build_path(build_id: &str, what: &str) -> String {
    format!("/api/v1/agent/builds/{}/{what}", monkeyci_protocol::id::sanitize(build_id))
}

/// `records` cut into chunks of at most [`CHUNK_RECORDS`] and about [`CHUNK_BYTES`].
fn chunks(records: Vec<RecordBody>) -> Vec<Vec<RecordBody>> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for record in records {
        let size = record.kind_and_data().1.len() + 32;
        if !chunk.is_empty() && (chunk.len() == CHUNK_RECORDS || bytes + size > CHUNK_BYTES) {
            chunks.push(std::mem::take(&mut chunk));
            bytes = 0;
        }
        bytes += size;
        chunk.push(record);
    }
    if !chunk.is_empty() {
        chunks.push(chunk);
    }
    chunks
}

impl Link for HttpLink {
    async fn claim(&self, agent: &str) -> Result<Option<Claim>, LinkError> {
        // One try: the agent asks again at its next poll. (A claim whose answer was lost
        // leaves a build running on nobody: it is taken for lost, and retried if its
        // repository says so.)
        self.call_once("/api/v1/agent/claim", &ClaimRequest { agent: agent.to_owned() }).await
    }

    async fn heartbeat(&self, build_id: &str, commit: Option<&str>) -> Result<Beat, LinkError> {
        let request = HeartbeatRequest { commit: commit.map(str::to_owned) };
        match commit {
            // The commit is said once: it is worth insisting.
            Some(_) => self.call(&build_path(build_id, "heartbeat"), &request).await,
            // One try: the next beat is a second away.
            None => self.call_once(&build_path(build_id, "heartbeat"), &request).await,
        }
    }

    async fn append(&self, build_id: &str, first_seq: i64, records: Vec<RecordBody>) -> Result<i64, LinkError> {
        let path = build_path(build_id, "records");
        let mut first_seq = first_seq;
        let mut last = first_seq - 1;
        for chunk in chunks(records) {
            let count = chunk.len() as i64;
            let request = AppendRecords { first_seq, records: chunk };
            let appended: Appended = self.call(&path, &request).await?;
            last = appended.last_seq;
            first_seq += count;
        }
        Ok(last)
    }

    async fn end(&self, build_id: &str, end: EndBuild) -> Result<bool, LinkError> {
        let ended: Ended = self.call(&build_path(build_id, "end"), &end).await?;
        Ok(ended.ended)
    }

    async fn approval(&self, build_id: &str, job: &str) -> Result<Approval, LinkError> {
        let path = format!("{}/{}/approval", build_path(build_id, "jobs"), crate::client::path_segment(job));
        let state: ApprovalState = self.call(&path, &()).await?;
        Ok(state.decision)
    }

    async fn params(&self, build_id: &str, build_token: &str) -> Result<ParamMap, LinkError> {
        // With the build's own token, not the agent's: only it reaches the values.
        let client =
            Client::new(self.client.url(), build_token).map_err(|err| LinkError::Unreachable(Box::new(err)))?;
        let path = format!("/api/v1/builds/{}/params", crate::client::path_segment(build_id));
        ask(&client, Method::GET, &path, None::<&()>).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Line;

    fn line(text: String) -> RecordBody {
        RecordBody::Line(Line { stream: monkeyci_protocol::OutputStream::Stdout, line: text })
    }

    #[test]
    fn records_go_in_bounded_chunks_in_order() {
        let many: Vec<_> = (0..1234).map(|i| line(format!("line {i}"))).collect();
        let cut = chunks(many.clone());
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), [500, 500, 234]);
        assert_eq!(cut.concat(), many);
        let big: Vec<_> = (0..5).map(|i| line(format!("{i}{}", "x".repeat(400_000)))).collect();
        let cut = chunks(big.clone());
        assert_eq!(cut.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 1]);
        assert_eq!(cut.concat(), big);
        assert!(chunks(Vec::new()).is_empty());
    }
}
