//! Forge webhooks: `POST /webhook/{provider}/{org}/{repo}`, or `POST /webhook/{provider}` (the
//! repository found by the clone URLs the payload names, and the signature checked with each
//! candidate's secret). Checking and reading a delivery is `monkeyci-webhook`'s; this handler
//! finds the repository, queues the builds (once per delivery id) and answers at once.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use monkeyci_webhook::{Hook, Provider, Push, RefName};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use crate::db::{Delivered, NewBuild};
use crate::model::Repo;

/// The answer to a delivery that queued builds (202), or had already (200).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Accepted {
    /// The (first) build's id.
    pub id: String,
    /// Every build the delivery made (one per ref it pushed).
    pub ids: Vec<String>,
    /// The delivery was seen before: nothing new was queued.
    pub duplicate: bool,
}

/// Why a delivery was not accepted, said the same way whatever the reason (a repository that
/// does not exist, has no secret, or another secret), so nothing about the repository leaks.
const NOT_VERIFIED: &str =
    "the delivery's signature does not verify: check the webhook's secret (and that the repository is added with one)";

/// The headers forges send with a delivery, as the OpenAPI document describes them (both
/// webhook routes take the same); the handlers read them through `monkeyci-webhook`.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)] // Only described, never built: the handlers take the raw `HeaderMap`.
struct WebhookHeaders {
    /// GitHub: the event (`push`, `ping`, ...).
    #[param(rename = "X-GitHub-Event")]
    x_github_event: Option<String>,
    /// GitHub: the delivery's id.
    #[param(rename = "X-GitHub-Delivery")]
    x_github_delivery: Option<String>,
    /// GitHub: `sha256=` and the body's HMAC-SHA256 by the secret.
    #[param(rename = "X-Hub-Signature-256")]
    x_hub_signature_256: Option<String>,
    /// GitLab: the event (`Push Hook`, `Tag Push Hook`, ...).
    #[param(rename = "X-Gitlab-Event")]
    x_gitlab_event: Option<String>,
    /// GitLab: the secret itself.
    #[param(rename = "X-Gitlab-Token")]
    x_gitlab_token: Option<String>,
    /// GitLab: the delivery's id.
    #[param(rename = "X-Gitlab-Event-UUID")]
    x_gitlab_event_uuid: Option<String>,
    /// GitLab: the delivery's id (when there is no `X-Gitlab-Event-UUID`).
    #[param(rename = "Idempotency-Key")]
    idempotency_key: Option<String>,
    /// Bitbucket: the event (`repo:push`, ...).
    #[param(rename = "X-Event-Key")]
    x_event_key: Option<String>,
    /// Bitbucket: `sha256=` and the body's HMAC-SHA256 by the secret.
    #[param(rename = "X-Hub-Signature")]
    x_hub_signature: Option<String>,
    /// Bitbucket: the delivery's id.
    #[param(rename = "X-Request-UUID")]
    x_request_uuid: Option<String>,
    /// Gitea: the event (or `X-Forgejo-Event`).
    #[param(rename = "X-Gitea-Event")]
    x_gitea_event: Option<String>,
    /// Forgejo: the event.
    #[param(rename = "X-Forgejo-Event")]
    x_forgejo_event: Option<String>,
    /// Gitea: the body's HMAC-SHA256 by the secret, in hex (or `X-Forgejo-Signature`).
    #[param(rename = "X-Gitea-Signature")]
    x_gitea_signature: Option<String>,
    /// Forgejo: the body's HMAC-SHA256 by the secret, in hex.
    #[param(rename = "X-Forgejo-Signature")]
    x_forgejo_signature: Option<String>,
    /// Gitea: the delivery's id (or `X-Forgejo-Delivery`).
    #[param(rename = "X-Gitea-Delivery")]
    x_gitea_delivery: Option<String>,
    /// Forgejo: the delivery's id.
    #[param(rename = "X-Forgejo-Delivery")]
    x_forgejo_delivery: Option<String>,
}

/// A delivery for one repository, verified with its webhook secret.
#[utoipa::path(
    post, path = "/webhook/{provider}/{org}/{repo}", operation_id = "webhook_for_repo", tag = "webhooks",
    params(
        ("provider" = String, Path, description = "`github`, `gitlab`, `bitbucket`, `gitea`, `forgejo` or `codeberg`"),
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
        WebhookHeaders,
    ),
    request_body(content = Object, description = "The forge's payload, as it sent it", content_type = "application/json"),
    responses(
        (status = 202, description = "Builds queued, one per ref the delivery pushed", body = Accepted),
        (status = 200, description = "A redelivery: nothing new queued; the builds it queued before", body = Accepted),
        (status = 204, description = "Verified, but it starts nothing (a ping, a deleted branch, another event)"),
        (status = 400, description = "Verified, but the payload cannot be read", body = ErrorBody),
        (status = 401, description = "The delivery does not verify, said the same way whatever the reason", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 413, description = "A body over 25 MB"),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn receive_for_repo(
    State(state): State<AppState>,
    Path((provider, org, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = provider_of(&provider)?;
    let found = state.db.repo(&org, &name).await?;
    let Some((repo, Some(secret))) = found else {
        return Err(ApiError::BadSignature(NOT_VERIFIED.to_owned()));
    };
    if let Err(err) = monkeyci_webhook::verify(provider, secret.as_bytes(), &headers, &body) {
        tracing::info!("webhook for {org}/{name} refused: {err}");
        return Err(ApiError::BadSignature(NOT_VERIFIED.to_owned()));
    }
    accept(&state, provider, &repo, &headers, &body).await
}

/// A delivery for whichever repository is registered under a clone URL the payload names, and
/// whose secret verifies it.
#[utoipa::path(
    post, path = "/webhook/{provider}", operation_id = "webhook", tag = "webhooks",
    params(
        ("provider" = String, Path, description = "`github`, `gitlab`, `bitbucket`, `gitea`, `forgejo` or `codeberg`"),
        WebhookHeaders,
    ),
    request_body(content = Object, description = "The forge's payload, as it sent it", content_type = "application/json"),
    responses(
        (status = 202, description = "Builds queued, one per ref the delivery pushed", body = Accepted),
        (status = 200, description = "A redelivery: nothing new queued; the builds it queued before", body = Accepted),
        (status = 204, description = "Verified, but it starts nothing (a ping, a deleted branch, another event)"),
        (status = 400, description = "Verified, but the payload cannot be read", body = ErrorBody),
        (status = 401, description = "The delivery does not verify, said the same way whatever the reason", body = ErrorBody),
        (status = 404, description = "No such provider", body = ErrorBody),
        (status = 413, description = "A body over 25 MB"),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let provider = provider_of(&provider)?;
    // Read (not trusted) only to find which repositories it may be for.
    let urls = match monkeyci_webhook::parse(provider, &headers, &body) {
        Ok(Hook::Push(pushes)) => pushes.first().map(candidate_urls).unwrap_or_default(),
        // What starts nothing needs no repository; still, only a verified one is answered.
        Ok(Hook::Ignored { .. }) | Err(_) => Vec::new(),
    };
    for (repo, secret) in state.db.repos_by_url(&urls).await? {
        let Some(secret) = secret else { continue };
        if monkeyci_webhook::verify(provider, secret.as_bytes(), &headers, &body).is_ok() {
            return accept(&state, provider, &repo, &headers, &body).await;
        }
    }
    Err(ApiError::BadSignature(NOT_VERIFIED.to_owned()))
}

fn provider_of(name: &str) -> Result<Provider, ApiError> {
    name.parse().map_err(|e: monkeyci_webhook::UnknownProvider| ApiError::NotFound(e.to_string()))
}

/// The URLs a repository of the push may be registered under.
fn candidate_urls(push: &Push) -> Vec<String> {
    let repo = &push.repository;
    let mut urls: Vec<String> =
        [&repo.clone_url, &repo.ssh_url, &repo.html_url].into_iter().flatten().cloned().collect();
    if let Some(html) = &repo.html_url {
        urls.push(format!("{html}.git"));
    }
    urls
}

/// Reads a verified delivery and queues what it asks for.
async fn accept(
    state: &AppState,
    provider: Provider,
    repo: &Repo,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, ApiError> {
    let hook = monkeyci_webhook::parse(provider, headers, body).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let delivery = hook.delivery().map(str::to_owned);
    let pushes = match hook {
        Hook::Push(pushes) => pushes,
        Hook::Ignored { reason, .. } => {
            tracing::info!("webhook for {}/{} starts nothing: {reason}", repo.org, repo.name);
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
    };
    let builds: Vec<NewBuild> = pushes.iter().map(|push| new_build(repo, push)).collect();
    let (queued, duplicate) = match &delivery {
        Some(id) => match state.db.queue_delivery(provider.as_str(), id, &builds).await? {
            Delivered::Queued(queued) => (queued.into_iter().map(|b| b.id).collect::<Vec<_>>(), false),
            Delivered::Seen(first) => (first.into_iter().collect(), true),
        },
        None => {
            let mut ids = Vec::new();
            for build in &builds {
                ids.push(state.db.queue_build(build).await?.id);
            }
            (ids, false)
        }
    };
    if let Some(agent) = &state.agent
        && !duplicate
    {
        agent.wake();
    }
    let Some(first) = queued.first().cloned() else {
        // A duplicate of a delivery that started nothing.
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    let status = if duplicate { StatusCode::OK } else { StatusCode::ACCEPTED };
    Ok((status, Json(Accepted { id: first, ids: queued, duplicate })).into_response())
}

fn new_build(repo: &Repo, push: &Push) -> NewBuild {
    let author =
        push.author.as_ref().and_then(|a| a.login.clone().or_else(|| a.name.clone()).or_else(|| a.email.clone()));
    NewBuild {
        org: repo.org.clone(),
        repo: repo.name.clone(),
        source: "webhook".to_owned(),
        trigger: match push.target {
            RefName::Tag(_) => "tag",
            RefName::Branch(_) => "push",
        }
        .to_owned(),
        git_ref: Some(push.git_ref.clone()),
        commit: Some(push.commit.clone()),
        before: push.before.clone(),
        message: push.message.clone(),
        author,
        changed: push.files.complete.then(|| push.files.paths.clone()),
        retry_of: None,
    }
}
