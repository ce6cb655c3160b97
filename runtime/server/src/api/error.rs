//! [`ApiError`]: every error answer of the API, as `{"error": {"code", "message"}}` with its
//! status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::db::DbError;

/// An error answer.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400: the request is malformed; the message names what.
    #[error("{0}")]
    BadRequest(String),
    /// 401: no token, or not one of ours.
    #[error("a valid token is needed: send `Authorization: Bearer <token>`")]
    Unauthorized,
    /// 401: a webhook's signature or token does not match.
    #[error("{0}")]
    BadSignature(String),
    /// 403: the token does not reach this.
    #[error("{0}")]
    Forbidden(String),
    /// 404: no such thing.
    #[error("{0}")]
    NotFound(String),
    /// 409: it exists already, or is in a state that does not allow this.
    #[error("{0}")]
    Conflict(String),
    /// 422: well-formed, but not valid.
    #[error("{0}")]
    Invalid(String),
    /// 500: the server failed (the details are in its log, not in the answer).
    #[error("internal error")]
    Internal(#[source] DbError),
}

/// The body of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// What went wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    /// A stable code: `bad_request`, `unauthorized`, `forbidden`, `not_found`, `conflict`,
    /// `invalid`, `internal`.
    pub code: String,
    /// For people.
    pub message: String,
}

impl ApiError {
    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            ApiError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::BadSignature(_) => (StatusCode::UNAUTHORIZED, "bad_signature"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::Invalid(_) => (StatusCode::UNPROCESSABLE_ENTITY, "invalid"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(err: DbError) -> ApiError {
        match err {
            DbError::Conflict(what) => ApiError::Conflict(format!("{what} exists already")),
            other => ApiError::Internal(other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(err) = &self {
            tracing::error!("{}", monkeyci_protocol::error_chain(err));
        }
        let (status, code) = self.status_and_code();
        let body = ErrorBody { error: ErrorDetail { code: code.to_owned(), message: self.to_string() } };
        (status, Json(body)).into_response()
    }
}

/// A JSON body, with a 400 naming what is wrong in it instead of axum's plain-text rejection.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Body<T>(pub(super) T);

impl<S, T> axum::extract::FromRequest<S> for Body<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, state: &S) -> Result<Body<T>, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot read the body: {e}")))?;
        serde_json::from_slice(&bytes).map(Body).map_err(|e| ApiError::BadRequest(format!("bad JSON body: {e}")))
    }
}
