//! Orgs, their repositories, and tokens.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Body, ErrorBody};
use super::state::{AppState, admin_only, reach};
use crate::auth::{self, Caller};
use crate::db::NewRepo;
use crate::model::{NewToken, Org, Repo};

/// `POST /api/v1/orgs`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateOrg {
    /// The new org's id.
    pub id: String,
}

/// `POST /api/v1/orgs/{org}/repos`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AddRepo {
    /// Its name within the org.
    pub name: String,
    /// Any URL git can clone.
    pub url: String,
    /// Its main branch (default `main`).
    #[serde(default)]
    pub main_branch: Option<String>,
    /// Labels for param filters.
    #[serde(default)]
    pub labels: Vec<String>,
    /// The secret webhooks are signed with; without one, webhooks are refused.
    #[serde(default)]
    pub webhook_secret: Option<String>,
    /// Queue a build whose agent was lost again, once, as a new build (default false).
    #[serde(default)]
    pub retry_lost: bool,
}

/// `POST /api/v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CreateToken {
    /// An admin token (needs `org` unset).
    #[serde(default)]
    pub admin: bool,
    /// The org the token is scoped to.
    #[serde(default)]
    pub org: Option<String>,
    /// An agent token (needs `admin` false and `org` unset): it reaches only the agent
    /// protocol.
    #[serde(default)]
    pub agent: bool,
    /// What it is for.
    #[serde(default)]
    pub description: String,
}

/// The orgs the token reaches: every org for an admin, its own for an org token.
#[utoipa::path(
    get, path = "/api/v1/orgs", operation_id = "list_orgs", tag = "orgs", security(("bearer" = [])),
    responses(
        (status = 200, description = "The orgs, oldest first", body = [Org]),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn list(State(state): State<AppState>, caller: Caller) -> Result<Json<Vec<Org>>, ApiError> {
    let only = match &caller {
        Caller::Admin => None,
        Caller::Org(org) => Some(org.as_str()),
        Caller::Agent | Caller::Build(_) => return Ok(Json(Vec::new())),
    };
    Ok(Json(state.db.orgs(only).await?))
}

/// Creates an org (admin only).
#[utoipa::path(
    post, path = "/api/v1/orgs", operation_id = "create_org", tag = "orgs", security(("bearer" = [])),
    request_body = CreateOrg,
    responses(
        (status = 201, description = "The new org", body = Org),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 409, description = "The org exists already", body = ErrorBody),
        (status = 422, description = "The id is not in the id alphabet", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateOrg>,
) -> Result<(StatusCode, Json<Org>), ApiError> {
    admin_only(&caller)?;
    check_id("id", &body.id)?;
    Ok((StatusCode::CREATED, Json(state.db.create_org(&body.id).await?)))
}

/// An org's repositories.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/repos", operation_id = "list_repos", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path, description = "The org's id")),
    responses(
        (status = 200, description = "The org's repositories", body = [Repo]),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn repos(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Vec<Repo>>, ApiError> {
    reach(&caller, &org)?;
    known_org(&state, &org).await?;
    Ok(Json(state.db.repos(&org).await?))
}

/// One repository.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/repos/{repo}", operation_id = "show_repo", tag = "orgs", security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
    ),
    responses(
        (status = 200, description = "The repository", body = Repo),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such repository", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn repo(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, name)): Path<(String, String)>,
) -> Result<Json<Repo>, ApiError> {
    reach(&caller, &org)?;
    let (repo, _) =
        state.db.repo(&org, &name).await?.ok_or_else(|| ApiError::NotFound(format!("no repository {org}/{name}")))?;
    Ok(Json(repo))
}

/// Adds a repository to an org.
#[utoipa::path(
    post, path = "/api/v1/orgs/{org}/repos", operation_id = "add_repo", tag = "orgs", security(("bearer" = [])),
    params(("org" = String, Path, description = "The org's id")),
    request_body = AddRepo,
    responses(
        (status = 201, description = "The new repository", body = Repo),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 409, description = "The org has a repository of this name already", body = ErrorBody),
        (status = 422, description = "A name, URL, branch or secret that is not valid; the message names which", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn add_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
    Body(body): Body<AddRepo>,
) -> Result<(StatusCode, Json<Repo>), ApiError> {
    reach(&caller, &org)?;
    known_org(&state, &org).await?;
    check_id("name", &body.name)?;
    if body.url.trim().is_empty() || body.url.starts_with('-') {
        return Err(ApiError::Invalid(format!("url: {:?} is not a URL git can clone", body.url)));
    }
    let main_branch = body.main_branch.unwrap_or_else(|| "main".to_owned());
    if main_branch.is_empty() || main_branch.starts_with('-') || main_branch.contains("..") {
        return Err(ApiError::Invalid(format!("main_branch: {main_branch:?} is not a branch name")));
    }
    if let Some(secret) = &body.webhook_secret
        && secret.len() < 8
    {
        return Err(ApiError::Invalid("webhook_secret: use at least 8 characters".to_owned()));
    }
    let repo = NewRepo {
        org,
        name: body.name,
        url: body.url,
        main_branch,
        labels: body.labels,
        webhook_secret: body.webhook_secret,
        retry_lost: body.retry_lost,
    };
    Ok((StatusCode::CREATED, Json(state.db.create_repo(&repo).await?)))
}

/// Creates a token (admin only): an admin token, one scoped to an org, or an agent's. It is
/// shown once.
#[utoipa::path(
    post, path = "/api/v1/tokens", operation_id = "create_token", tag = "orgs", security(("bearer" = [])),
    request_body = CreateToken,
    responses(
        (status = 201, description = "The new token", body = NewToken),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "Not an admin token", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 422, description = "Not exactly one of an org, admin or agent", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn create_token(
    State(state): State<AppState>,
    caller: Caller,
    Body(body): Body<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiError> {
    admin_only(&caller)?;
    if body.agent {
        if body.admin || body.org.is_some() {
            return Err(ApiError::Invalid("agent: an agent token is neither admin nor an org's".to_owned()));
        }
        let token = auth::create_agent_token(&state.db, &body.description).await?;
        return Ok((StatusCode::CREATED, Json(NewToken { token, admin: false, org: None, agent: true })));
    }
    match (&body.org, body.admin) {
        (Some(_), true) => return Err(ApiError::Invalid("org: an admin token has no org".to_owned())),
        (None, false) => {
            return Err(ApiError::Invalid("org: name the org the token is for, or ask for admin".to_owned()));
        }
        (Some(org), false) => known_org(&state, org).await?,
        (None, true) => {}
    }
    let token = auth::create_token(&state.db, body.admin, body.org.as_deref(), &body.description).await?;
    Ok((StatusCode::CREATED, Json(NewToken { token, admin: body.admin, org: body.org, agent: false })))
}

pub(super) async fn known_org(state: &AppState, org: &str) -> Result<(), ApiError> {
    match state.db.org(org).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("no org {org:?}"))),
    }
}

/// `field` holds a valid id (the job-id alphabet), or 422 naming it.
pub(super) fn check_id(field: &str, value: &str) -> Result<(), ApiError> {
    monkeyci_protocol::id::check(value).map_err(|e| ApiError::Invalid(format!("{field}: {e}")))
}
