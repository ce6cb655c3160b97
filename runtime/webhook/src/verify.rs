//! Signature checks: whether a delivery was sent by the forge that knows the repository's webhook
//! secret.
//!
//! | provider | header | value |
//! |---|---|---|
//! | GitHub | `X-Hub-Signature-256` | `sha256=` + hex HMAC-SHA256(secret, body) |
//! | GitLab | `X-Gitlab-Token` | the secret itself |
//! | Bitbucket Cloud | `X-Hub-Signature` | `sha256=` + hex HMAC-SHA256(secret, body) |
//! | Gitea / Forgejo | `X-Gitea-Signature`, `X-Forgejo-Signature` | hex HMAC-SHA256(secret, body), no prefix |
//!
//! The MAC is always over the raw body bytes as received, never over re-serialised JSON, and
//! every comparison is constant time (`hmac`'s `verify_slice`; GitLab's token is compared as
//! SHA-256 digests with `subtle`, so not even its length leaks). Errors name the header and what
//! is wrong with it, never the secret or the expected value. Only SHA-256 is accepted: the legacy
//! SHA-1 headers (`X-Hub-Signature: sha1=…` from GitHub and Gitea) are not read.

use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::headers::{self, HeaderProblem};
use crate::provider::Provider;

type HmacSha256 = Hmac<Sha256>;

const GITHUB: &str = "X-Hub-Signature-256";
const GITLAB: &str = "X-Gitlab-Token";
const BITBUCKET: &str = "X-Hub-Signature";
const GITEA: [&str; 2] = ["X-Forgejo-Signature", "X-Gitea-Signature"];
/// How a missing Gitea signature is named: either header would do.
const GITEA_EITHER: &str = "X-Gitea-Signature` or `X-Forgejo-Signature";

/// Why a delivery is not trusted. Every variant means "answer 401 and build nothing".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The repository has no webhook secret: nothing can be verified, so nothing is accepted.
    #[error("no webhook secret is set for this repository, so no delivery is trusted")]
    EmptySecret,
    /// The signature (or token) header is absent: the forge has no secret configured, or the
    /// delivery was not sent by it.
    #[error("header `{header}` is missing")]
    MissingHeader {
        /// The header expected.
        header: &'static str,
    },
    /// The header is present but not in the provider's format.
    #[error("header `{header}` is malformed: {reason}")]
    Malformed {
        /// The header read.
        header: &'static str,
        /// What is wrong with it (never its value).
        reason: &'static str,
    },
    /// The header is well formed but does not match the body signed with the secret.
    #[error("header `{header}` does not match this body and the repository's webhook secret")]
    Mismatch {
        /// The header read.
        header: &'static str,
    },
}

/// Checks that `body` (the raw request body, byte for byte) was sent by a forge holding
/// `secret`, using `provider`'s header (see the table in this module's docs).
///
/// An empty `secret` is refused ([`VerifyError::EmptySecret`]): a repository without a webhook
/// secret accepts no delivery. For Gitea, every signature header present (`X-Forgejo-Signature`,
/// `X-Gitea-Signature`) must match, and one is enough.
///
/// ```
/// use http::HeaderMap;
/// use monkeyci_webhook::{Provider, VerifyError, verify};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let body = br#"{"zen": "Keep it logically awesome."}"#;
/// let mut headers = HeaderMap::new();
/// // HMAC-SHA256 of `body` under the key "s3cret", as Gitea sends it.
/// headers.insert(
///     "x-gitea-signature",
///     "e279c786c1c838837b1845e5423948346c454eb4a8d88648405364a97f51ea1f".parse()?,
/// );
/// assert_eq!(
///     verify(Provider::Gitea, b"other", &headers, body),
///     Err(VerifyError::Mismatch { header: "X-Gitea-Signature" })
/// );
/// assert_eq!(verify(Provider::Gitea, b"", &headers, body), Err(VerifyError::EmptySecret));
/// verify(Provider::Gitea, b"s3cret", &headers, body)?;
/// # Ok(())
/// # }
/// ```
pub fn verify(provider: Provider, secret: &[u8], headers: &HeaderMap, body: &[u8]) -> Result<(), VerifyError> {
    if secret.is_empty() {
        return Err(VerifyError::EmptySecret);
    }
    match provider {
        Provider::GitHub => check_hmac(headers, GITHUB, Some("sha256="), secret, body),
        Provider::Bitbucket => check_hmac(headers, BITBUCKET, Some("sha256="), secret, body),
        Provider::Gitea => {
            let mut checked = false;
            for header in GITEA {
                if headers.contains_key(header) {
                    check_hmac(headers, header, None, secret, body)?;
                    checked = true;
                }
            }
            if checked { Ok(()) } else { Err(VerifyError::MissingHeader { header: GITEA_EITHER }) }
        }
        Provider::GitLab => {
            let token = read(headers, GITLAB)?;
            let sent = Sha256::digest(token.as_bytes());
            let expected = Sha256::digest(secret);
            if bool::from(sent.ct_eq(&expected)) { Ok(()) } else { Err(VerifyError::Mismatch { header: GITLAB }) }
        }
    }
}

/// The header a forge holding `secret` would send with `body`, as `(name, value)`: what
/// [`verify`] accepts. For tests and forge emulators; GitLab's value is the secret itself
/// (read as UTF-8, since GitLab's token is text).
pub fn sign(provider: Provider, secret: &[u8], body: &[u8]) -> (HeaderName, String) {
    let hex_mac = || hex::encode(mac(secret).chain_update(body).finalize().into_bytes());
    match provider {
        Provider::GitHub => (HeaderName::from_static("x-hub-signature-256"), format!("sha256={}", hex_mac())),
        Provider::Bitbucket => (HeaderName::from_static("x-hub-signature"), format!("sha256={}", hex_mac())),
        Provider::Gitea => (HeaderName::from_static("x-gitea-signature"), hex_mac()),
        Provider::GitLab => (HeaderName::from_static("x-gitlab-token"), String::from_utf8_lossy(secret).into_owned()),
    }
}

fn mac(secret: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => unreachable!("HMAC takes a key of any length"),
    }
}

fn read<'h>(headers: &'h HeaderMap, header: &'static str) -> Result<&'h str, VerifyError> {
    match headers::get(headers, header) {
        Ok(Some(value)) => Ok(value),
        Ok(None) => Err(VerifyError::MissingHeader { header }),
        Err(problem @ (HeaderProblem::Repeated | HeaderProblem::NotText)) => {
            Err(VerifyError::Malformed { header, reason: problem.reason() })
        }
    }
}

/// Checks `header` = `prefix` + hex HMAC-SHA256(secret, body).
fn check_hmac(
    headers: &HeaderMap,
    header: &'static str,
    prefix: Option<&'static str>,
    secret: &[u8],
    body: &[u8],
) -> Result<(), VerifyError> {
    let value = read(headers, header)?;
    let hex_sig = match prefix {
        None => value,
        Some(prefix) => value
            .strip_prefix(prefix)
            .ok_or(VerifyError::Malformed { header, reason: "expected `sha256=` followed by 64 hex digits" })?,
    };
    let malformed = VerifyError::Malformed {
        header,
        reason: match prefix {
            Some(_) => "expected `sha256=` followed by 64 hex digits",
            None => "expected 64 hex digits",
        },
    };
    if hex_sig.len() != 64 {
        return Err(malformed);
    }
    let signature = hex::decode(hex_sig).map_err(|_| malformed)?;
    mac(secret).chain_update(body).verify_slice(&signature).map_err(|_| VerifyError::Mismatch { header })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    /// RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
    const RFC4231_2: &str = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";

    #[test]
    fn github_signature_is_the_rfc_4231_hmac() {
        let body = b"what do ya want for nothing?";
        let (name, value) = sign(Provider::GitHub, b"Jefe", body);
        assert_eq!(name, "x-hub-signature-256");
        assert_eq!(value, format!("sha256={RFC4231_2}"));
        let sent = headers(&[(GITHUB, &value)]);
        assert_eq!(verify(Provider::GitHub, b"Jefe", &sent, body), Ok(()));
        // Uppercase hex is the same signature.
        let upper = headers(&[(GITHUB, &format!("sha256={}", RFC4231_2.to_uppercase()))]);
        assert_eq!(verify(Provider::GitHub, b"Jefe", &upper, body), Ok(()));
    }

    #[test]
    fn malformed_signatures_say_what_is_expected() {
        let body = b"what do ya want for nothing?";
        for value in [
            RFC4231_2.to_owned(),
            format!("sha1={RFC4231_2}"),
            format!("sha256={}", &RFC4231_2[..62]),
            format!("sha256={}zz", &RFC4231_2[..62]),
        ] {
            let sent = headers(&[(GITHUB, &value)]);
            assert_eq!(
                verify(Provider::GitHub, b"Jefe", &sent, body),
                Err(VerifyError::Malformed { header: GITHUB, reason: "expected `sha256=` followed by 64 hex digits" }),
                "{value}"
            );
        }
        let prefixed = headers(&[("X-Gitea-Signature", &format!("sha256={RFC4231_2}"))]);
        assert_eq!(
            verify(Provider::Gitea, b"Jefe", &prefixed, body),
            Err(VerifyError::Malformed { header: "X-Gitea-Signature", reason: "expected 64 hex digits" })
        );
    }

    #[test]
    fn a_repeated_signature_header_is_refused() {
        let body = b"what do ya want for nothing?";
        let value = format!("sha256={RFC4231_2}");
        let sent = headers(&[(GITHUB, &value), (GITHUB, "sha256=00")]);
        assert_eq!(
            verify(Provider::GitHub, b"Jefe", &sent, body),
            Err(VerifyError::Malformed { header: GITHUB, reason: "it is sent more than once" })
        );
    }

    #[test]
    fn gitlab_token_is_compared_whole() {
        let sent = headers(&[(GITLAB, "tok3n")]);
        assert_eq!(verify(Provider::GitLab, b"tok3n", &sent, b"{}"), Ok(()));
        for secret in [&b"tok3"[..], b"tok3n-", b"TOK3N"] {
            assert_eq!(verify(Provider::GitLab, secret, &sent, b"{}"), Err(VerifyError::Mismatch { header: GITLAB }));
        }
    }

    #[test]
    fn errors_never_show_the_secret_or_the_expected_value() {
        let body = b"{}";
        let secret = b"hunter2-very-secret";
        let (_, expected) = sign(Provider::GitHub, secret, body);
        let sent = headers(&[(GITHUB, &format!("sha256={}", "0".repeat(64)))]);
        let err = verify(Provider::GitHub, secret, &sent, body).unwrap_err();
        let shown = format!("{err} {err:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains(&expected[7..]), "{shown}");
        let sent = headers(&[(GITLAB, "wrong")]);
        let err = verify(Provider::GitLab, secret, &sent, body).unwrap_err();
        assert!(!format!("{err} {err:?}").contains("hunter2"));
    }
}
