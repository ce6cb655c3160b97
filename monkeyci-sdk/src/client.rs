//! The script's side of the build API: a small HTTP/1.1 client over loopback TCP, and the
//! background poster that batches events to it.
//!
//! It speaks only to the controller that started the script (`http://127.0.0.1:PORT`), with
//! the build's bearer token. It knows nothing about jobs or scheduling.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode, header};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

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

    pub(crate) async fn post_events(&self, events: &[Event]) -> Result<(), Error> {
        self.request(Method::POST, "/events", Some(serde_json::to_vec(events)?)).await.map(drop)
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

/// Sends events to the build API in batches, from a background task, in order.
pub(crate) struct ApiEventSink {
    tx: mpsc::UnboundedSender<Message>,
}

/// Events sent in one request at most.
const MAX_BATCH: usize = 500;

impl ApiEventSink {
    pub(crate) fn start(client: ApiClient) -> ApiEventSink {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(post_events(client, rx));
        ApiEventSink { tx }
    }
}

impl EventSink for ApiEventSink {
    fn emit(&self, event: Event) {
        let _ = self.tx.send(Message::Event(event));
    }

    /// Waits until every event emitted so far has been sent (or given up on).
    fn flush(&self) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            let (done, wait) = oneshot::channel();
            if self.tx.send(Message::Flush(done)).is_ok() {
                let _ = wait.await;
            }
        })
    }
}

async fn post_events(client: ApiClient, mut rx: mpsc::UnboundedReceiver<Message>) {
    let mut batch: Vec<Event> = Vec::new();
    let mut flushes: Vec<oneshot::Sender<()>> = Vec::new();
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(message) = next.take() {
            match message {
                Message::Event(event) => batch.push(event),
                Message::Flush(done) => flushes.push(done),
            }
            if batch.len() < MAX_BATCH {
                next = rx.try_recv().ok();
            }
        }
        if !batch.is_empty() {
            send_with_retries(&client, &batch).await;
            batch.clear();
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

async fn send_with_retries(client: &ApiClient, batch: &[Event]) {
    let mut delay = Duration::from_millis(50);
    for attempt in 1..=5 {
        match client.post_events(batch).await {
            Ok(()) => return,
            Err(err) if attempt == 5 => {
                eprintln!("monkeyci: lost {} build events: {}", batch.len(), crate::protocol::error_chain(&err));
            }
            Err(_) => {
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
}
