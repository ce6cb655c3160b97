//! The script's side of the build API: a small HTTP/1.1 client over loopback TCP, and the
//! background poster that delivers events to it in numbered batches, at least once each.
//!
//! It speaks only to the controller that started the script (`http://127.0.0.1:PORT`), with
//! the build's bearer token. It knows nothing about jobs or scheduling.

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use crate::dsl::error::JobError;
use crate::future::BoxFuture;
use crate::protocol::{
    ApiEndpoint, ArtifactSpec, ContainerRequest, ContainerResult, ContainerStarted, ContainerState, Event, Journal,
    ParamMap,
};
use crate::runner::{Approver, ArtifactStore, ContainerRunner, EventSink, Started};

/// Why a build API call failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("the build API URL {0:?} is not `http://host:port`")]
    BadUrl(String),
    #[error("cannot reach the build API at {url}")]
    Connect {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the build API connection failed")]
    Http(#[from] hyper::Error),
    #[error("cannot build the request")]
    Request(#[from] hyper::http::Error),
    #[error("the build API answered {status} to {method} {path}: {body}")]
    Status { method: Method, path: String, status: StatusCode, body: String },
    #[error("the build API sent a body that is not what was expected")]
    Decode(#[from] serde_json::Error),
}

/// A client for one build's API.
#[derive(Clone)]
pub(crate) struct ApiClient {
    url: String,
    authority: String,
    token: String,
}

impl ApiClient {
    pub(crate) fn new(endpoint: &ApiEndpoint) -> Result<ApiClient, Error> {
        let authority = endpoint
            .url
            .strip_prefix("http://")
            .map(|rest| rest.trim_end_matches('/'))
            .filter(|rest| !rest.is_empty() && !rest.contains('/'))
            .ok_or_else(|| Error::BadUrl(endpoint.url.clone()))?;
        Ok(ApiClient { url: endpoint.url.clone(), authority: authority.to_owned(), token: endpoint.token.clone() })
    }

    async fn request(&self, method: Method, path: &str, body: Option<Vec<u8>>) -> Result<Bytes, Error> {
        let stream = TcpStream::connect(&self.authority)
            .await
            .map_err(|source| Error::Connect { url: self.url.clone(), source })?;
        let _ = stream.set_nodelay(true);
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method.clone())
            .uri(path)
            .header(header::HOST, &self.authority)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body.unwrap_or_default())))?;
        let response = sender.send_request(request).await?;
        let status = response.status();
        let bytes = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            // The API answers errors as {"error": message}; show just the message.
            let body = serde_json::from_slice::<serde_json::Value>(&bytes)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
            return Err(Error::Status { method, path: path.to_owned(), status, body });
        }
        Ok(bytes)
    }

    /// Posts one body of `POST /events` (a numbered batch).
    pub(crate) async fn post_events(&self, body: Vec<u8>) -> Result<(), Error> {
        self.request(Method::POST, "/events", Some(body)).await.map(drop)
    }

    pub(crate) async fn journal(&self) -> Result<Journal, Error> {
        Ok(serde_json::from_slice(&self.request(Method::GET, "/journal", None).await?)?)
    }

    pub(crate) async fn params(&self) -> Result<ParamMap, Error> {
        Ok(serde_json::from_slice(&self.request(Method::GET, "/params", None).await?)?)
    }

    pub(crate) async fn approval(&self, job_id: &str) -> Result<bool, Error> {
        #[derive(serde::Deserialize)]
        struct Approval {
            approved: bool,
        }
        let path = format!("/jobs/{job_id}/approval");
        let answer: Approval = serde_json::from_slice(&self.request(Method::POST, &path, None).await?)?;
        Ok(answer.approved)
    }
}

impl Approver for ApiClient {
    fn approve<'a>(&'a self, job_id: &'a str) -> BoxFuture<'a, Result<bool, JobError>> {
        Box::pin(
            async move { self.approval(job_id).await.map_err(|err| JobError::with_source("asking for approval", err)) },
        )
    }
}

impl ContainerRunner for ApiClient {
    fn start<'a>(&'a self, request: &'a ContainerRequest) -> BoxFuture<'a, Result<Started, JobError>> {
        Box::pin(async move { self.start_container(request).await.map_err(|err| container_error(request, err)) })
    }

    fn wait<'a>(
        &'a self,
        request: &'a ContainerRequest,
        id: &'a str,
    ) -> BoxFuture<'a, Result<ContainerResult, JobError>> {
        Box::pin(async move { self.wait_container(id).await.map_err(|err| container_error(request, err)) })
    }
}

fn container_error(request: &ContainerRequest, err: Error) -> JobError {
    JobError::with_source(format!("cannot run the container job (image `{}`)", request.spec.image), err)
}

impl ArtifactStore for ApiClient {
    fn save<'a>(&'a self, _work_dir: &'a Path, artifact: ArtifactSpec) -> BoxFuture<'a, Result<(), JobError>> {
        Box::pin(async move {
            let path = format!("/artifacts/{}", artifact.id);
            let body = serde_json::to_vec(&serde_json::json!({ "path": artifact.path }))
                .map_err(|err| JobError::with_source("cannot encode the request", err))?;
            self.request(Method::POST, &path, Some(body))
                .await
                .map(drop)
                .map_err(|err| JobError::with_source(format!("cannot save artifact `{}`", artifact.id), err))
        })
    }

    fn restore<'a>(&'a self, _work_dir: &'a Path, id: &'a str) -> BoxFuture<'a, Result<bool, JobError>> {
        Box::pin(async move {
            match self.request(Method::POST, &format!("/artifacts/{id}/restore"), None).await {
                Ok(_) => Ok(true),
                Err(Error::Status { status: StatusCode::NOT_FOUND, .. }) => Ok(false),
                Err(err) => Err(JobError::with_source(format!("cannot restore artifact `{id}`"), err)),
            }
        })
    }
}

impl ApiClient {
    /// Starts a container job (or finds the one already started for this job and attempt).
    async fn start_container(&self, request: &ContainerRequest) -> Result<Started, Error> {
        let body = serde_json::to_vec(request)?;
        let started: ContainerStarted =
            serde_json::from_slice(&self.request(Method::POST, "/containers", Some(body)).await?)?;
        // A container that already ended (a resumed script awaiting it again) answers at once;
        // only one still running makes this job a waiting one.
        let state: ContainerState =
            serde_json::from_slice(&self.request(Method::GET, &format!("/containers/{}", started.id), None).await?)?;
        Ok(match state.result {
            Some(result) => Started::Ended(result),
            None => Started::Running(started.id),
        })
    }

    /// Waits for the started container `id` to end.
    async fn wait_container(&self, id: &str) -> Result<ContainerResult, Error> {
        let path = format!("/containers/{id}?wait=30");
        loop {
            let state: ContainerState = serde_json::from_slice(&self.request(Method::GET, &path, None).await?)?;
            if let Some(result) = state.result {
                return Ok(result);
            }
        }
    }
}

enum Message {
    Event(Event),
    Flush(oneshot::Sender<()>),
}

/// Sends events to the build API from a background task, in order, in numbered batches of a
/// bounded size (see [`EventBatch`](crate::protocol::EventBatch)), each resent until the API
/// acknowledges it; the API applies each batch once. If a batch cannot be delivered (the API
/// is unreachable for [`DeliveryPolicy::give_up_after`], or refuses it), nothing after it is
/// sent and [`failure`](ApiEventSink::failure) says why: the build must not claim success.
pub(crate) struct ApiEventSink {
    tx: mpsc::UnboundedSender<Message>,
    failed: watch::Receiver<Option<String>>,
}

/// Events sent in one request at most.
const MAX_BATCH_EVENTS: usize = 500;

/// Bytes of events sent in one request at most (one larger event goes alone).
const MAX_BATCH_BYTES: usize = 1024 * 1024;

/// How long the sink keeps trying to deliver a batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeliveryPolicy {
    /// Give up on a batch once it could not be delivered for this long.
    pub(crate) give_up_after: Duration,
    /// How long one attempt may take.
    pub(crate) attempt_timeout: Duration,
    /// The first pause between attempts; it doubles up to `max_backoff`.
    pub(crate) first_backoff: Duration,
    /// The longest pause between attempts.
    pub(crate) max_backoff: Duration,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        DeliveryPolicy {
            give_up_after: Duration::from_secs(30),
            attempt_timeout: Duration::from_secs(20),
            first_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(2),
        }
    }
}

impl ApiEventSink {
    /// Starts delivering the events of this `launch` of the script.
    pub(crate) fn start(client: ApiClient, launch: u32) -> ApiEventSink {
        ApiEventSink::with_policy(client, launch, DeliveryPolicy::default())
    }

    pub(crate) fn with_policy(client: ApiClient, launch: u32, policy: DeliveryPolicy) -> ApiEventSink {
        let (tx, rx) = mpsc::unbounded_channel();
        let (failed_tx, failed) = watch::channel(None);
        let poster = Poster { client, launch, policy, seq: 0, failed: failed_tx };
        tokio::spawn(poster.run(rx));
        ApiEventSink { tx, failed }
    }

    /// Why events could not be delivered, once that happened.
    pub(crate) fn failure(&self) -> Option<String> {
        self.failed.borrow().clone()
    }

    /// Waits until delivery failed, and says why (never returns while it works).
    pub(crate) async fn failed(&self) -> String {
        let mut failed = self.failed.clone();
        let message = failed.wait_for(Option::is_some).await.ok().and_then(|message| message.clone());
        match message {
            Some(message) => message,
            // The poster is gone without failing: it never will.
            None => std::future::pending().await,
        }
    }
}

impl EventSink for ApiEventSink {
    fn emit(&self, event: Event) {
        let _ = self.tx.send(Message::Event(event));
    }

    /// Waits until every event emitted so far has been acknowledged by the build API (or
    /// delivery failed: see [`ApiEventSink::failure`]).
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            if self.tx.send(Message::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        })
    }
}

/// An event waiting to be sent, as JSON, or a flush waiting for the events before it.
enum Pending {
    Event(Vec<u8>),
    Flush(oneshot::Sender<()>),
}

/// The background task behind [`ApiEventSink`].
struct Poster {
    client: ApiClient,
    launch: u32,
    policy: DeliveryPolicy,
    /// The last batch number used.
    seq: u64,
    failed: watch::Sender<Option<String>>,
}

impl Poster {
    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Message>) {
        let mut pending: VecDeque<Pending> = VecDeque::new();
        loop {
            if pending.is_empty() {
                match rx.recv().await {
                    Some(message) => self.take(message, &mut pending),
                    None => return,
                }
            }
            while let Ok(message) = rx.try_recv() {
                self.take(message, &mut pending);
            }
            while matches!(pending.front(), Some(Pending::Flush(_))) {
                if let Some(Pending::Flush(done)) = pending.pop_front() {
                    let _ = done.send(());
                }
            }
            let body = self.next_batch(&mut pending);
            if let Some(body) = body
                && let Err(message) = self.deliver(body).await
            {
                // Nothing after a lost batch can be applied in order: say so, and stop sending.
                self.failed.send_replace(Some(message));
                // Dropping the flushes waiting answers them.
                pending.clear();
            }
        }
    }

    /// Queues `message`; once delivery failed, events are dropped and flushes answered.
    fn take(&self, message: Message, pending: &mut VecDeque<Pending>) {
        if self.failed.borrow().is_some() {
            if let Message::Flush(done) = message {
                let _ = done.send(());
            }
            pending.clear();
            return;
        }
        match message {
            Message::Event(event) => match serde_json::to_vec(&event) {
                Ok(json) => pending.push_back(Pending::Event(json)),
                Err(err) => {
                    let message = format!("cannot encode a `{}` event: {err}", event.kind.type_name());
                    self.failed.send_replace(Some(message));
                    pending.clear();
                }
            },
            Message::Flush(done) => pending.push_back(Pending::Flush(done)),
        }
    }

    /// The body of the next batch (`{"launch", "seq", "events"}`) made of the events at the
    /// front of `pending`, or `None` if there are none.
    fn next_batch(&mut self, pending: &mut VecDeque<Pending>) -> Option<Vec<u8>> {
        let mut events = Vec::new();
        let mut bytes = 0;
        while let Some(Pending::Event(json)) = pending.front() {
            let full = events.len() == MAX_BATCH_EVENTS || bytes + json.len() > MAX_BATCH_BYTES;
            if !events.is_empty() && full {
                break;
            }
            bytes += json.len() + 1;
            if let Some(Pending::Event(json)) = pending.pop_front() {
                events.push(json);
            }
        }
        if events.is_empty() {
            return None;
        }
        self.seq += 1;
        let mut body = format!(r#"{{"launch":{},"seq":{},"events":["#, self.launch, self.seq).into_bytes();
        body.reserve(bytes + 2);
        for (i, json) in events.iter().enumerate() {
            if i > 0 {
                body.push(b',');
            }
            body.extend_from_slice(json);
        }
        body.extend_from_slice(b"]}");
        Some(body)
    }

    /// Posts `body` until the API acknowledges it; an error says why it never will.
    async fn deliver(&self, body: Vec<u8>) -> Result<(), String> {
        let policy = self.policy;
        let mut delay = policy.first_backoff;
        let mut first_failure: Option<Instant> = None;
        loop {
            let attempt = tokio::time::timeout(policy.attempt_timeout, self.client.post_events(body.clone())).await;
            let err = match &attempt {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(err)) => crate::protocol::error_chain(err),
                Err(_) => format!("the build API did not answer within {:?}", policy.attempt_timeout),
            };
            let refused = match &attempt {
                Ok(Err(Error::Status { status, .. })) => {
                    status.is_client_error()
                        && *status != StatusCode::REQUEST_TIMEOUT
                        && *status != StatusCode::TOO_MANY_REQUESTS
                }
                _ => false,
            };
            if refused {
                return Err(format!("the build API refused batch {} of this script's events: {err}", self.seq));
            }
            let since = *first_failure.get_or_insert_with(Instant::now);
            if since.elapsed() >= policy.give_up_after {
                return Err(format!(
                    "cannot deliver this script's events to the build API (tried for {:?}): {err}",
                    policy.give_up_after
                ));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(policy.max_backoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use parking_lot::Mutex;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    use super::*;
    use crate::protocol::EventKind;

    /// A build API answering the `n`th `POST /events` with `answer(n)` (from 0), keeping every
    /// body it got.
    async fn fake_api(answer: fn(usize) -> u16) -> (ApiClient, Arc<Mutex<Vec<serde_json::Value>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let kept = Arc::clone(&bodies);
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut request = Vec::new();
                let mut buf = vec![0; 64 * 1024];
                let body = loop {
                    let n = stream.read(&mut buf).await.unwrap();
                    request.extend_from_slice(&buf[..n]);
                    let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") else { continue };
                    let head = String::from_utf8_lossy(&request[..end]).to_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|line| line.strip_prefix("content-length: "))
                        .map_or(0, |n| n.trim().parse().unwrap());
                    if request.len() >= end + 4 + length {
                        break request[end + 4..end + 4 + length].to_vec();
                    }
                };
                let n = {
                    let mut bodies = kept.lock();
                    bodies.push(serde_json::from_slice(&body).unwrap());
                    bodies.len() - 1
                };
                let status = answer(n);
                let answer = format!("HTTP/1.1 {status} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\n{{}}");
                let _ = stream.write_all(answer.as_bytes()).await;
            }
        });
        let client = ApiClient::new(&ApiEndpoint { url, token: "t".into() }).unwrap();
        (client, bodies)
    }

    fn quick() -> DeliveryPolicy {
        DeliveryPolicy {
            give_up_after: Duration::from_millis(300),
            attempt_timeout: Duration::from_secs(5),
            first_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(20),
        }
    }

    fn pending(job: &str) -> Event {
        Event::now(EventKind::JobPending { job_id: job.into() })
    }

    #[tokio::test]
    async fn a_batch_is_resent_with_its_number_until_acknowledged() {
        let (client, bodies) = fake_api(|n| if n < 2 { 503 } else { 202 }).await;
        let sink = ApiEventSink::with_policy(client, 7, quick());
        sink.emit(pending("a"));
        sink.emit(pending("b"));
        sink.flush().await;
        sink.emit(pending("c"));
        sink.flush().await;
        assert_eq!(sink.failure(), None);
        let bodies = bodies.lock();
        let numbers: Vec<(u64, u64, usize)> = bodies
            .iter()
            .map(|b| (b["launch"].as_u64().unwrap(), b["seq"].as_u64().unwrap(), b["events"].as_array().unwrap().len()))
            .collect();
        assert_eq!(numbers, [(7, 1, 2), (7, 1, 2), (7, 1, 2), (7, 2, 1)]);
    }

    #[tokio::test]
    async fn many_large_events_go_in_bounded_numbered_batches_in_order() {
        let (client, bodies) = fake_api(|_| 202).await;
        let sink = ApiEventSink::with_policy(client, 1, quick());
        let filler = "x".repeat(8 * 1024);
        for i in 0..3000 {
            let line = format!("{i:04} {filler}");
            sink.emit(Event::now(EventKind::JobOutput {
                job_id: "j".into(),
                stream: crate::protocol::OutputStream::Stdout,
                line,
            }));
        }
        sink.emit(Event::now(EventKind::JobOutput {
            job_id: "j".into(),
            stream: crate::protocol::OutputStream::Stdout,
            line: "y".repeat(3 * 1024 * 1024),
        }));
        sink.flush().await;
        assert_eq!(sink.failure(), None);
        let bodies = bodies.lock();
        let mut lines = Vec::new();
        for (i, body) in bodies.iter().enumerate() {
            assert_eq!(body["seq"].as_u64(), Some(i as u64 + 1));
            let events = body["events"].as_array().unwrap();
            let size = serde_json::to_vec(body).unwrap().len();
            assert!(size <= MAX_BATCH_BYTES + 64 || events.len() == 1, "batch {i}: {size} bytes");
            lines.extend(events.iter().map(|e| e["line"].as_str().unwrap()[..4].to_owned()));
        }
        let expected: Vec<String> = (0..3000).map(|i| format!("{i:04}")).chain(["yyyy".to_owned()]).collect();
        assert_eq!(lines, expected);
    }

    #[tokio::test]
    async fn an_unreachable_api_ends_in_a_failure_saying_so() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let client = ApiClient::new(&ApiEndpoint { url, token: "t".into() }).unwrap();
        let sink = ApiEventSink::with_policy(client, 1, quick());
        sink.emit(pending("a"));
        sink.flush().await;
        let failure = sink.failure().unwrap();
        assert!(failure.starts_with("cannot deliver this script's events to the build API"), "{failure}");
        assert_eq!(sink.failed().await, failure);
        // Later events are dropped, and flushes still return.
        sink.emit(pending("b"));
        sink.flush().await;
    }

    #[tokio::test]
    async fn a_refused_batch_fails_at_once() {
        let (client, bodies) = fake_api(|_| 400).await;
        let sink =
            ApiEventSink::with_policy(client, 1, DeliveryPolicy { give_up_after: Duration::from_secs(60), ..quick() });
        sink.emit(pending("a"));
        sink.flush().await;
        let failure = sink.failure().unwrap();
        assert!(failure.starts_with("the build API refused batch 1"), "{failure}");
        assert_eq!(bodies.lock().len(), 1);
    }
}
