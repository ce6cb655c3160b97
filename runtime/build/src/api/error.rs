//! [`ApiError`]: the one error type of the build API, and how it becomes a response. It
//! decides status codes only; what went wrong is the handlers' to say.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// Why a request failed; answered as `{"error": message}` with the matching status.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 401: the request carried no token, or not this build's; why.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// 400: the request is malformed; what is wrong with it.
    #[error("{0}")]
    BadRequest(String),
    /// 404: what the request named does not exist; what is missing.
    #[error("{0}")]
    NotFound(String),
    /// 503: this build does not serve that (no containers, no artifacts) or is over; which.
    #[error("{0}")]
    Unavailable(&'static str),
    /// 500: the runtime failed; the error chain.
    #[error("{0}")]
    Internal(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match &self {
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        (status, Json(serde_json::json!({ "error": self.to_string() }))).into_response()
    }
}
