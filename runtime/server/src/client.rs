//! A client of the server's REST API and live events: what the `monkeyci` command (and remote
//! agents) use to talk to a server. HTTP/1.1 over TCP, `http://` only.
//!
//! It knows the API's paths and bodies ([`crate::model`], [`crate::usage`], [`crate::api`])
//! and turns error answers into [`ClientError::Api`] with the server's code and message. It
//! prints nothing.

use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;

use crate::api::{ErrorBody, Queued, Trigger};
use crate::model::{Build, BuildEnd, NewToken, Org, Record, RecordBody, Repo};
use crate::usage::{CreditLimit, Usage};

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server URL is not `http://host:port`.
    #[error("the server URL {0:?} is not http://HOST:PORT (https is not supported yet: use a TLS proxy in front)")]
    BadUrl(String),
    /// The server cannot be reached.
    #[error("cannot reach the server at {url}")]
    Connect {
        /// The server.
        url: String,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// The connection failed.
    #[error("the connection to the server failed")]
    Http(#[from] hyper::Error),
    /// The request could not be made.
    #[error("cannot build the request")]
    Request(#[from] hyper::http::Error),
    /// The server answered with an error.
    #[error("the server answered {status}: {message}")]
    Api {
        /// The HTTP status.
        status: StatusCode,
        /// The server's error code (`not_found`, `forbidden`, ...).
        code: String,
        /// The server's message.
        message: String,
    },
    /// The server sent something that is not what was expected.
    #[error("the server sent an unexpected body")]
    Decode(#[from] serde_json::Error),
}

/// A client of one server, with one token.
#[derive(Debug, Clone)]
pub struct Client {
    url: String,
    authority: String,
    token: String,
}

impl Client {
    /// A client of the server at `url` (`http://HOST:PORT`), sending `token`.
    ///
    /// ```
    /// let client = monkeyci_server::client::Client::new("http://127.0.0.1:8080", "mci_x").unwrap();
    /// assert_eq!(client.url(), "http://127.0.0.1:8080");
    /// assert!(monkeyci_server::client::Client::new("https://ci.example", "t").is_err());
    /// ```
    pub fn new(url: &str, token: &str) -> Result<Client, ClientError> {
        let authority = url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| ClientError::BadUrl(url.to_owned()))?;
        Ok(Client {
            url: url.trim_end_matches('/').to_owned(),
            authority: authority.to_owned(),
            token: token.to_owned(),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A request to `path` with this client's host and token.
    fn request(&self, method: Method, path: &str) -> hyper::http::request::Builder {
        Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
    }

    /// Sends `request` on a new connection; an error answer becomes [`ClientError::Api`].
    async fn send(&self, request: Request<Full<Bytes>>) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|source| ClientError::Connect { url: self.url.clone(), source })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let response = sender.send_request(request).await?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        let (code, message) = match serde_json::from_slice::<ErrorBody>(&bytes) {
            Ok(body) => (body.error.code, body.error.message),
            Err(_) => ("unknown".to_owned(), String::from_utf8_lossy(&bytes).into_owned()),
        };
        Err(ClientError::Api { status, code, message })
    }

    /// Calls `path` with `body` as JSON; the answer's JSON.
    pub(crate) async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, ClientError> {
        let body = body.map(serde_json::to_vec).transpose()?;
        let request = self
            .request(method, path)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = self.send(request).await?;
        let bytes = response.into_body().collect().await?.to_bytes();
        Ok(serde_json::from_slice(&bytes)?)
    }

    /// Creates an org (admin).
    pub async fn create_org(&self, id: &str) -> Result<Org, ClientError> {
        self.call(Method::POST, "/api/v1/orgs", Some(&crate::api::CreateOrg { id: id.to_owned() })).await
    }

    /// The orgs the token reaches.
    pub async fn orgs(&self) -> Result<Vec<Org>, ClientError> {
        self.call(Method::GET, "/api/v1/orgs", None::<&()>).await
    }

    /// Adds a repository to an org.
    pub async fn add_repo(&self, org: &str, repo: &crate::api::AddRepo) -> Result<Repo, ClientError> {
        self.call(Method::POST, &format!("/api/v1/orgs/{org}/repos"), Some(repo)).await
    }

    /// An org's repositories.
    pub async fn repos(&self, org: &str) -> Result<Vec<Repo>, ClientError> {
        self.call(Method::GET, &format!("/api/v1/orgs/{org}/repos"), None::<&()>).await
    }

    /// Makes a token (admin); shown once.
    pub async fn create_token(&self, request: &crate::api::CreateToken) -> Result<NewToken, ClientError> {
        self.call(Method::POST, "/api/v1/tokens", Some(request)).await
    }

    /// Queues a build of `org/repo`.
    pub async fn trigger(&self, org: &str, repo: &str, what: &Trigger) -> Result<Queued, ClientError> {
        self.call(Method::POST, &format!("/api/v1/orgs/{org}/repos/{repo}/builds"), Some(what)).await
    }

    /// Builds, newest first; `query` is the URL query (`org=a&status=running`).
    pub async fn builds(&self, query: &str) -> Result<Vec<Build>, ClientError> {
        self.call(Method::GET, &format!("/api/v1/builds?{query}"), None::<&()>).await
    }

    /// One build.
    pub async fn build(&self, id: &str) -> Result<Build, ClientError> {
        self.call(Method::GET, &format!("/api/v1/builds/{}", path_segment(id)), None::<&()>).await
    }

    /// Asks to cancel a build.
    pub async fn cancel(&self, id: &str) -> Result<Build, ClientError> {
        self.call(Method::POST, &format!("/api/v1/builds/{}/cancel", path_segment(id)), None::<&()>).await
    }

    /// A build's jobs.
    pub async fn jobs(&self, id: &str) -> Result<Vec<crate::api::Job>, ClientError> {
        self.call(Method::GET, &format!("/api/v1/builds/{}/jobs", path_segment(id)), None::<&()>).await
    }

    /// A job's log from line `offset`.
    pub async fn job_log(&self, id: &str, job: &str, offset: u64) -> Result<crate::api::JobLog, ClientError> {
        let path = format!("/api/v1/builds/{}/jobs/{}/logs?offset={offset}", path_segment(id), path_segment(job));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Queues a build again (same repository, ref and commit).
    pub async fn retry(&self, id: &str) -> Result<Queued, ClientError> {
        self.call(Method::POST, &format!("/api/v1/builds/{}/retry", path_segment(id)), None::<&()>).await
    }

    /// Approves (or rejects) a blocked job that waits for it.
    pub async fn decide(&self, id: &str, job: &str, approve: bool) -> Result<crate::api::Decided, ClientError> {
        let verb = if approve { "approve" } else { "reject" };
        let path = format!("/api/v1/builds/{}/jobs/{}/{verb}", path_segment(id), path_segment(job));
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Records of a build after `after`, waiting up to `wait` for one (the long poll).
    pub async fn records(&self, id: &str, after: i64, wait: Duration) -> Result<Vec<Record>, ClientError> {
        let path = format!("/api/v1/builds/{}/records?after={after}&wait={}", path_segment(id), wait.as_secs());
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// An org's param sets (names only).
    pub async fn param_sets(&self, org: &str) -> Result<Vec<crate::params::ParamSet>, ClientError> {
        self.call(Method::GET, &format!("/api/v1/orgs/{}/params", path_segment(org)), None::<&()>).await
    }

    /// Creates or changes an org's param set.
    pub async fn put_param_set(
        &self,
        org: &str,
        set: &str,
        body: &crate::api::PutParamSet,
    ) -> Result<crate::params::ParamSet, ClientError> {
        let path = format!("/api/v1/orgs/{}/params/{}", path_segment(org), path_segment(set));
        self.call(Method::PUT, &path, Some(body)).await
    }

    /// A repository's own params (names only).
    pub async fn repo_params(&self, org: &str, repo: &str) -> Result<crate::params::RepoParams, ClientError> {
        let path = format!("/api/v1/orgs/{}/repos/{}/params", path_segment(org), path_segment(repo));
        self.call(Method::GET, &path, None::<&()>).await
    }

    /// Sets some of a repository's own params.
    pub async fn put_repo_params(
        &self,
        org: &str,
        repo: &str,
        body: &crate::api::PutRepoParams,
    ) -> Result<crate::params::RepoParams, ClientError> {
        let path = format!("/api/v1/orgs/{}/repos/{}/params", path_segment(org), path_segment(repo));
        self.call(Method::PUT, &path, Some(body)).await
    }

    /// Deletes an org's param set (`name`: `None`), one of its params, or one of a
    /// repository's own params (`repo`).
    pub async fn delete_param(
        &self,
        org: &str,
        owner: &crate::params::ParamOwner,
        name: Option<&str>,
    ) -> Result<(), ClientError> {
        let mut path = match owner {
            crate::params::ParamOwner::Set(set) => {
                format!("/api/v1/orgs/{}/params/{}", path_segment(org), path_segment(set))
            }
            crate::params::ParamOwner::Repo(repo) => {
                format!("/api/v1/orgs/{}/repos/{}/params", path_segment(org), path_segment(repo))
            }
        };
        if let Some(name) = name {
            path = format!("{path}/{}", path_segment(name));
        }
        self.send(self.request(Method::DELETE, &path).body(Full::new(Bytes::new()))?).await?;
        Ok(())
    }

    /// What the org's builds that ended from `from` to `to` used (days `YYYY-MM-DD`, UTC, both
    /// included; `None`: from the first of this month, to today).
    pub async fn usage(&self, org: &str, from: Option<&str>, to: Option<&str>) -> Result<Usage, ClientError> {
        let mut path = format!("/api/v1/orgs/{}/usage?", path_segment(org));
        for (name, day) in [("from", from), ("to", to)] {
            if let Some(day) = day {
                path.push_str(&format!("{name}={}&", path_segment(day)));
            }
        }
        self.call(Method::GET, path.trim_end_matches(['?', '&']), None::<&()>).await
    }

    /// Sets (or with `None` removes) the org's monthly credit limit (admin).
    pub async fn set_credits(&self, org: &str, monthly_limit: Option<i64>) -> Result<CreditLimit, ClientError> {
        let path = format!("/api/v1/orgs/{}/credits", path_segment(org));
        self.call(Method::PUT, &path, Some(&CreditLimit { monthly_limit })).await
    }

    /// Follows a build's records over server-sent events from after `after`, handing each to
    /// `on_record`, until its end record (returned). A dropped connection is taken up again
    /// where it stopped (`Last-Event-ID`), so no record is lost or repeated.
    pub async fn follow(
        &self,
        id: &str,
        mut after: i64,
        mut on_record: impl FnMut(&Record),
    ) -> Result<BuildEnd, ClientError> {
        let mut failures = 0u32;
        loop {
            match self.follow_once(id, &mut after, &mut on_record).await {
                Ok(Some(end)) => return Ok(end),
                // The stream ended without the end (the server stopped): again.
                Ok(None) => failures = 0,
                Err(err @ ClientError::Api { .. }) => return Err(err),
                Err(err) => {
                    failures += 1;
                    if failures > 30 {
                        return Err(err);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    async fn follow_once(
        &self,
        id: &str,
        after: &mut i64,
        on_record: &mut impl FnMut(&Record),
    ) -> Result<Option<BuildEnd>, ClientError> {
        let request = self
            .request(Method::GET, &format!("/api/v1/builds/{}/events", path_segment(id)))
            .header(header::ACCEPT, "text/event-stream")
            .header("last-event-id", after.to_string())
            .body(Full::new(Bytes::new()))?;
        let response = self.send(request).await?;
        let mut body = response.into_body();
        let mut parser = SseParser::default();
        while let Some(frame) = body.frame().await {
            let Ok(data) = frame?.into_data() else { continue };
            for message in parser.push(&data) {
                let Some(record) = message.record()? else { continue };
                if record.seq <= *after {
                    continue;
                }
                *after = record.seq;
                on_record(&record);
                if let RecordBody::End(end) = record.body {
                    return Ok(Some(end));
                }
            }
        }
        Ok(None)
    }
}

/// `id` as one path segment: only the id alphabet passes, anything else is replaced (and then
/// not found) rather than reaching another path.
pub(crate) fn path_segment(id: &str) -> String {
    monkeyci_protocol::id::sanitize(id)
}

/// Cuts server-sent events out of a byte stream.
#[derive(Debug, Default)]
struct SseParser {
    pending: Vec<u8>,
}

/// One server-sent event.
#[derive(Debug, Default, PartialEq, Eq)]
struct SseMessage {
    id: Option<String>,
    event: Option<String>,
    data: String,
}

impl SseParser {
    /// Takes `bytes`; returns the events they complete.
    fn push(&mut self, bytes: &[u8]) -> Vec<SseMessage> {
        self.pending.extend_from_slice(bytes);
        let mut messages = Vec::new();
        while let Some(end) = find_blank_line(&self.pending) {
            let block: Vec<u8> = self.pending.drain(..end.0).collect();
            self.pending.drain(..end.1 - end.0);
            let mut message = SseMessage::default();
            for line in String::from_utf8_lossy(&block).lines() {
                let (field, value) = line.split_once(':').unwrap_or((line, ""));
                let value = value.strip_prefix(' ').unwrap_or(value);
                match field {
                    "id" => message.id = Some(value.to_owned()),
                    "event" => message.event = Some(value.to_owned()),
                    "data" => {
                        if !message.data.is_empty() {
                            message.data.push('\n');
                        }
                        message.data.push_str(value);
                    }
                    // Comments (keep-alives) and unknown fields.
                    _ => {}
                }
            }
            if message.id.is_some() || message.event.is_some() || !message.data.is_empty() {
                messages.push(message);
            }
        }
        messages
    }
}

/// Where the first blank line is: (end of the block, start of what follows).
fn find_blank_line(bytes: &[u8]) -> Option<(usize, usize)> {
    let lf = bytes.windows(2).position(|w| w == b"\n\n").map(|i| (i, i + 2));
    let crlf = bytes.windows(4).position(|w| w == b"\r\n\r\n").map(|i| (i, i + 4));
    match (lf, crlf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

impl SseMessage {
    /// The record it carries; `None` for an event that is not a record.
    fn record(&self) -> Result<Option<Record>, serde_json::Error> {
        let (Some(id), Some(kind)) = (&self.id, &self.event) else { return Ok(None) };
        let Ok(seq) = id.parse::<i64>() else { return Ok(None) };
        Ok(RecordBody::from_kind_and_data(kind, &self.data)?.map(|body| Record { seq, body }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Line;

    #[test]
    fn events_cut_across_chunks_and_keep_alives_are_skipped() {
        let mut parser = SseParser::default();
        assert!(parser.push(b": keep-alive\n\nid: 1\nevent: line\nda").is_empty());
        let messages = parser.push(b"ta: {\"stream\":\"stdout\",\"line\":\"hi\"}\n\nid: 2\n");
        assert_eq!(messages.len(), 1);
        let record = messages[0].record().unwrap().unwrap();
        assert_eq!(record.seq, 1);
        assert!(matches!(record.body, RecordBody::Line(Line { ref line, .. }) if line == "hi"));
        let messages = parser.push(b"event: end\r\ndata: {\"status\":\"success\",\"error\":null}\r\n\r\n");
        assert_eq!(messages.len(), 1);
        assert!(matches!(messages[0].record().unwrap().unwrap().body, RecordBody::End(_)));
    }
}
