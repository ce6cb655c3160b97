//! Params: an org's param sets (with label filters) and a repository's own params, set,
//! listed (names and lengths, never values) and deleted by the org's token or an admin; and a
//! running build's params in clear, for that build's own token only.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use monkeyci_protocol::ParamMap;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, Body, ErrorBody};
use super::orgs::check_id;
use super::state::{AppState, reach};
use crate::auth::Caller;
use crate::params::{LabelFilter, ParamOwner, ParamSet, RepoParams};

/// The longest value taken, in bytes.
const VALUE_MAX: usize = 64 * 1024;

/// `PUT /api/v1/orgs/{org}/params/{set}`: creates or changes a param set.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PutParamSet {
    /// What the set is for (unchanged when not given).
    #[serde(default)]
    pub description: Option<String>,
    /// Which repositories get the set: an OR of AND clauses on their labels,
    /// `[[{"label": "env", "value": "prod"}]]`; `[]` for every repository (unchanged when
    /// not given; a new set applies to every repository).
    #[serde(default)]
    pub label_filter: Option<LabelFilter>,
    /// Params to set in it, by name (the set's other params stay).
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub values: ParamMap,
}

/// `PUT /api/v1/orgs/{org}/repos/{repo}/params`: sets some of a repository's own params.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct PutRepoParams {
    /// Params to set, by name (its other params stay).
    #[serde(default)]
    #[schema(value_type = std::collections::BTreeMap<String, String>)]
    pub values: ParamMap,
}

/// An org's param sets, with their params' names and lengths (never their values).
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/params", operation_id = "list_param_sets", tag = "params",
    security(("bearer" = [])),
    params(("org" = String, Path, description = "The org's id")),
    responses(
        (status = 200, description = "The org's param sets, by name", body = [ParamSet]),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn list_sets(
    State(state): State<AppState>,
    caller: Caller,
    Path(org): Path<String>,
) -> Result<Json<Vec<ParamSet>>, ApiError> {
    reach(&caller, &org)?;
    known_org(&state, &org).await?;
    Ok(Json(state.db.param_sets(&org).await?))
}

/// Creates or changes an org's param set: its description and label filter when given, and
/// the values given (stored encrypted). Answers the set as listed, without values.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org}/params/{set}", operation_id = "put_param_set", tag = "params",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("set" = String, Path, description = "The param set's name in the org"),
    ),
    request_body = PutParamSet,
    responses(
        (status = 200, description = "The set, without values", body = ParamSet),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such org", body = ErrorBody),
        (status = 422, description = "A name, label or value that is not valid; the message names which", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn put_set(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, set)): Path<(String, String)>,
    Body(body): Body<PutParamSet>,
) -> Result<Json<ParamSet>, ApiError> {
    reach(&caller, &org)?;
    known_org(&state, &org).await?;
    check_id("set", &set)?;
    check_values(&body.values)?;
    if let Some(filter) = &body.label_filter
        && filter.0.iter().flatten().any(|m| m.label.is_empty() || m.label.contains('='))
    {
        return Err(ApiError::Invalid("label_filter: a label name is empty or has `=`".to_owned()));
    }
    state.db.set_param_set(&org, &set, body.description.as_deref(), body.label_filter.as_ref(), &body.values).await?;
    let sets = state.db.param_sets(&org).await?;
    sets.into_iter().find(|s| s.name == set).map(Json).ok_or_else(|| ApiError::NotFound(format!("no param set {set}")))
}

/// Deletes an org's param set with its params.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org}/params/{set}", operation_id = "delete_param_set", tag = "params",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("set" = String, Path, description = "The param set's name in the org"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such param set", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn delete_set(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, set)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    reach(&caller, &org)?;
    if state.db.delete_param_set(&org, &set).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no param set {set:?} in org {org:?}")))
    }
}

/// Deletes one param of an org's param set.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org}/params/{set}/{name}", operation_id = "delete_set_param", tag = "params",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("set" = String, Path, description = "The param set's name in the org"),
        ("name" = String, Path, description = "The param's name"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such param in the set", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn delete_set_param(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, set, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    reach(&caller, &org)?;
    if state.db.delete_param(&org, &ParamOwner::Set(set.clone()), &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no param {name:?} in param set {set:?}")))
    }
}

/// A repository's own params: names and lengths, never values.
#[utoipa::path(
    get, path = "/api/v1/orgs/{org}/repos/{repo}/params", operation_id = "list_repo_params", tag = "params",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
    ),
    responses(
        (status = 200, description = "The repository's params, by name", body = RepoParams),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such repository", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn list_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, repo)): Path<(String, String)>,
) -> Result<Json<RepoParams>, ApiError> {
    reach(&caller, &org)?;
    known_repo(&state, &org, &repo).await?;
    let params = state.db.param_infos(&org, &ParamOwner::Repo(repo.clone())).await?;
    Ok(Json(RepoParams { org, repo, params }))
}

/// Sets some of a repository's own params (stored encrypted); they override the org's sets'
/// by name. Answers the repository's params as listed, without values.
#[utoipa::path(
    put, path = "/api/v1/orgs/{org}/repos/{repo}/params", operation_id = "put_repo_params", tag = "params",
    security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
    ),
    request_body = PutRepoParams,
    responses(
        (status = 200, description = "The repository's params, without values", body = RepoParams),
        (status = 400, description = "The body is not JSON of this shape", body = ErrorBody),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such repository", body = ErrorBody),
        (status = 422, description = "A name or value that is not valid; the message names which", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn put_repo(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, repo)): Path<(String, String)>,
    Body(body): Body<PutRepoParams>,
) -> Result<Json<RepoParams>, ApiError> {
    reach(&caller, &org)?;
    known_repo(&state, &org, &repo).await?;
    check_values(&body.values)?;
    state.db.set_repo_params(&org, &repo, &body.values).await?;
    let params = state.db.param_infos(&org, &ParamOwner::Repo(repo.clone())).await?;
    Ok(Json(RepoParams { org, repo, params }))
}

/// Deletes one of a repository's own params.
#[utoipa::path(
    delete, path = "/api/v1/orgs/{org}/repos/{repo}/params/{name}", operation_id = "delete_repo_param",
    tag = "params", security(("bearer" = [])),
    params(
        ("org" = String, Path, description = "The org's id"),
        ("repo" = String, Path, description = "The repository's name in the org"),
        ("name" = String, Path, description = "The param's name"),
    ),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "No token, or not one of ours", body = ErrorBody),
        (status = 403, description = "The token does not reach this org", body = ErrorBody),
        (status = 404, description = "No such param", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn delete_repo_param(
    State(state): State<AppState>,
    caller: Caller,
    Path((org, repo, name)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    reach(&caller, &org)?;
    if state.db.delete_param(&org, &ParamOwner::Repo(repo.clone()), &name).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no param {name:?} in repository {org}/{repo}")))
    }
}

/// A running build's params, in clear: the org's sets that match its repository's labels,
/// then the repository's own over them. Only the build's own token (made when an agent
/// claimed it) reads them: any other token, admin and the org's included, gets 403, and the
/// token stops working when the build ends (401).
#[utoipa::path(
    get, path = "/api/v1/builds/{id}/params", operation_id = "build_params", tag = "params",
    security(("bearer" = [])),
    params(("id" = String, Path, description = "The build's id")),
    responses(
        (status = 200, description = "The build's params, by name, in clear", body = std::collections::BTreeMap<String, String>),
        (status = 401, description = "No token, not one of ours, or the token of a build that is over", body = ErrorBody),
        (status = 403, description = "Not this build's own token", body = ErrorBody),
        (status = 500, description = "The server failed", body = ErrorBody),
    )
)]
pub(super) async fn build(
    State(state): State<AppState>,
    caller: Caller,
    Path(id): Path<String>,
) -> Result<Json<ParamMap>, ApiError> {
    let forbidden = || ApiError::Forbidden("only the build's own token reads its params".to_owned());
    match caller {
        Caller::Build(own) if own == id => state.db.build_params(&id).await?.map(Json).ok_or_else(forbidden),
        _ => Err(forbidden()),
    }
}

/// Each name is in the id alphabet and each value at most [`VALUE_MAX`] bytes, or 422.
fn check_values(values: &ParamMap) -> Result<(), ApiError> {
    for (name, value) in values {
        check_id("values", name)?;
        if value.len() > VALUE_MAX {
            return Err(ApiError::Invalid(format!("values: {name} is longer than {VALUE_MAX} bytes")));
        }
    }
    Ok(())
}

async fn known_org(state: &AppState, org: &str) -> Result<(), ApiError> {
    match state.db.org(org).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("no org {org:?}"))),
    }
}

async fn known_repo(state: &AppState, org: &str, repo: &str) -> Result<(), ApiError> {
    match state.db.repo(org, repo).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::NotFound(format!("no repository {org}/{repo}"))),
    }
}
