//! The per-build bearer token and the extractor that checks it.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::{ApiError, BuildApiState};

/// A random secret that authorizes calls for one build.
#[derive(Clone, PartialEq, Eq)]
pub struct BuildToken(String);

impl BuildToken {
    /// 32 random bytes from the OS, hex-encoded.
    pub fn generate() -> std::io::Result<BuildToken> {
        use std::io::Read;
        let mut bytes = [0u8; 32];
        std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
        Ok(BuildToken(hex::encode(bytes)))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares in time independent of where the first difference is.
    fn matches(&self, presented: &str) -> bool {
        let (a, b) = (self.0.as_bytes(), presented.as_bytes());
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl std::fmt::Debug for BuildToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BuildToken(***)")
    }
}

/// Proof that a request carried this build's token; handlers that take it reject others
/// with 401.
pub struct Authorized;

impl FromRequestParts<BuildApiState> for Authorized {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &BuildApiState) -> Result<Self, Self::Rejection> {
        let presented = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized("missing bearer token"))?;
        if state.inner.token.matches(presented) {
            Ok(Authorized)
        } else {
            Err(ApiError::Unauthorized("invalid token for this build"))
        }
    }
}
