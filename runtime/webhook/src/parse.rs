//! Reading a delivery into a [`Hook`]: the event and delivery headers, decoding the body with the
//! path of any bad field, and the rules that turn a provider's ref change into a [`Push`] or an
//! [`Ignored`] reason. The payload shapes themselves live in the provider modules.
//!
//! An event kind this crate does not build (a pull request, an issue…) is not an error: it is
//! [`Ignored::Event`]. A missing or unreadable event header, or a push body that is not the
//! provider's JSON, is a [`ParseError`] (the server answers 400).

use std::fmt;

use http::HeaderMap;
use serde::de::DeserializeOwned;

use crate::headers::{self, HeaderProblem};
use crate::hook::{self, ChangedFiles, Hook, Ignored, Person, Push, RefName, Repository};
use crate::{Provider, bitbucket, gitea, github, gitlab};

/// Why a delivery could not be read. Every variant means "answer 400": the request is not what
/// the provider sends.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// A header the provider always sends (the event kind) is absent.
    #[error("header `{header}` is missing")]
    MissingHeader {
        /// The header expected.
        header: &'static str,
    },
    /// A header is present but unusable.
    #[error("header `{header}` is not usable: {reason}")]
    BadHeader {
        /// The header read.
        header: &'static str,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The body is not JSON, or a field is missing or of the wrong type; the cause says which
    /// (serde's message, e.g. "missing field `id`").
    #[error("invalid {provider} `{event}` body{}", at(.path))]
    Body {
        /// The provider whose format was expected.
        provider: Provider,
        /// The event header's value.
        event: String,
        /// Where in the body, e.g. `head_commit.id` or `push.changes[0].new.type`; empty when
        /// the body is not JSON at all.
        path: String,
        /// serde_json's error.
        #[source]
        source: serde_json::Error,
    },
    /// A field has the right type but a value no forge sends (e.g. a commit id that is not hex).
    #[error("invalid {provider} body: field `{path}` is not {expected}")]
    Field {
        /// The provider whose format was expected.
        provider: Provider,
        /// Where in the body.
        path: String,
        /// What it should be.
        expected: &'static str,
    },
}

fn at(path: &str) -> String {
    if path.is_empty() { String::new() } else { format!(" at `{path}`") }
}

/// Reads a delivery's headers and raw body into a [`Hook`]. Call [`verify`](crate::verify)
/// first: parsing trusts the body.
///
/// Which event headers are read: GitHub `X-GitHub-Event` (`push`; `ping`), GitLab
/// `X-Gitlab-Event` (`Push Hook`, `Tag Push Hook`), Bitbucket `X-Event-Key` (`repo:push`;
/// `diagnostics:ping`), Gitea `X-Forgejo-Event` or `X-Gitea-Event` (`push`). Any other event is
/// [`Ignored::Event`]. A push is ignored when it deletes its ref, when its ref is neither a branch
/// nor a tag, and when its head commit's message contains `[skip ci]` or `[ci skip]` (any case).
///
/// ```
/// use http::HeaderMap;
/// use monkeyci_webhook::{Hook, Ignored, Provider, parse};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let body = br#"{"object_kind": "push", "ref": "refs/heads/main",
///   "before": "95790bf891e76fee5e1747ab589903a6a1f80f22",
///   "after": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
///   "checkout_sha": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
///   "user_username": "jsmith",
///   "project": {"path_with_namespace": "mike/diaspora"},
///   "commits": [{"id": "da1560886d4f094c3e6c9ef40349f7d38b5d27d7",
///     "message": "fix typo [skip ci]", "added": [], "modified": ["README.md"], "removed": []}],
///   "total_commits_count": 1}"#;
/// let mut headers = HeaderMap::new();
/// headers.insert("x-gitlab-event", "Push Hook".parse()?);
/// headers.insert("x-gitlab-event-uuid", "13792a34-cac6-4fda-95a8-c58e00a3954e".parse()?);
///
/// let hook = parse(Provider::GitLab, &headers, body)?;
/// assert_eq!(hook.delivery(), Some("13792a34-cac6-4fda-95a8-c58e00a3954e"));
/// assert!(matches!(hook, Hook::Ignored { reason: Ignored::SkipCi { .. }, .. }));
///
/// // A field of the wrong type is named by its path.
/// let err = parse(Provider::GitLab, &headers, br#"{"ref": 3}"#).unwrap_err();
/// assert_eq!(err.to_string(), "invalid gitlab `Push Hook` body at `ref`");
/// # Ok(())
/// # }
/// ```
pub fn parse(provider: Provider, headers: &HeaderMap, body: &[u8]) -> Result<Hook, ParseError> {
    let event = match header(headers, event_headers(provider))? {
        Some(event) => event,
        None => {
            return Err(ParseError::MissingHeader { header: missing_event_header(provider) });
        }
    };
    let delivery = header(headers, delivery_headers(provider))?.map(str::to_owned);
    let ignored = |reason| Ok(Hook::Ignored { delivery: delivery.clone(), reason });
    let raws = match (provider, event) {
        (Provider::GitHub, "push") => github::read(event, body)?,
        (Provider::GitLab, "Push Hook" | "Tag Push Hook") => gitlab::read(event, body)?,
        (Provider::Bitbucket, "repo:push") => bitbucket::read(event, body)?,
        (Provider::Gitea, "push") => gitea::read(event, body)?,
        (Provider::GitHub, "ping") | (Provider::Bitbucket, "diagnostics:ping") => {
            return ignored(Ignored::Ping);
        }
        (_, other) => return ignored(Ignored::Event(other.to_owned())),
    };
    let mut pushes = Vec::with_capacity(raws.len());
    let mut first_reason = None;
    for raw in raws {
        match raw.finish(provider, delivery.as_deref())? {
            Ok(push) => pushes.push(push),
            Err(reason) => {
                first_reason.get_or_insert(reason);
            }
        }
    }
    if pushes.is_empty() { ignored(first_reason.unwrap_or(Ignored::NoChanges)) } else { Ok(Hook::Push(pushes)) }
}

fn event_headers(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::GitHub => &["X-GitHub-Event"],
        Provider::GitLab => &["X-Gitlab-Event"],
        Provider::Bitbucket => &["X-Event-Key"],
        Provider::Gitea => &["X-Forgejo-Event", "X-Gitea-Event"],
    }
}

fn missing_event_header(provider: Provider) -> &'static str {
    match provider {
        Provider::Gitea => "X-Gitea-Event` or `X-Forgejo-Event",
        other => event_headers(other)[0],
    }
}

fn delivery_headers(provider: Provider) -> &'static [&'static str] {
    match provider {
        Provider::GitHub => &["X-GitHub-Delivery"],
        Provider::GitLab => &["X-Gitlab-Event-UUID", "Idempotency-Key"],
        Provider::Bitbucket => &["X-Request-UUID"],
        Provider::Gitea => &["X-Forgejo-Delivery", "X-Gitea-Delivery"],
    }
}

fn header<'h>(headers: &'h HeaderMap, names: &[&'static str]) -> Result<Option<&'h str>, ParseError> {
    match headers::first_of(headers, names) {
        Ok(found) => Ok(found.map(|(_, value)| value)),
        Err((header, problem @ (HeaderProblem::Repeated | HeaderProblem::NotText))) => {
            Err(ParseError::BadHeader { header, reason: problem.reason() })
        }
    }
}

/// Decodes a provider's body, naming the path of a missing or mistyped field.
pub(crate) fn decode<T: DeserializeOwned>(provider: Provider, event: &str, body: &[u8]) -> Result<T, ParseError> {
    let body_error = |path: String, source| ParseError::Body { provider, event: event.to_owned(), path, source };
    let mut json = serde_json::Deserializer::from_slice(body);
    let value =
        serde_path_to_error::deserialize(&mut json).map_err(|err| body_error(field_path(&err), err.into_inner()))?;
    json.end().map_err(|err| body_error(String::new(), err))?;
    Ok(value)
}

/// The dotted path of the bad field: serde reports a missing field at its parent
/// (`head_commit` + "missing field `id`"), so the field's name is appended.
fn field_path(err: &serde_path_to_error::Error<serde_json::Error>) -> String {
    let parent = err.path().to_string();
    let parent = if parent == "." { String::new() } else { parent };
    let missing = err
        .inner()
        .to_string()
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(name, _)| name.to_owned());
    match (missing, parent.is_empty()) {
        (Some(name), true) => name,
        (Some(name), false) => format!("{parent}.{name}"),
        (None, _) => parent,
    }
}

/// A value read from the body, with the path it was read at (for errors).
#[derive(Debug)]
pub(crate) struct Field {
    pub(crate) path: String,
    pub(crate) value: String,
}

impl Field {
    pub(crate) fn new(path: impl fmt::Display, value: String) -> Field {
        Field { path: path.to_string(), value }
    }

    fn commit_id(self, provider: Provider) -> Result<String, ParseError> {
        if hook::is_commit_id(&self.value) {
            Ok(self.value.to_ascii_lowercase())
        } else {
            Err(ParseError::Field { provider, path: self.path, expected: "a commit id (40 or 64 hex digits)" })
        }
    }
}

/// One ref change as a provider module reads it, before the shared rules.
#[derive(Debug)]
pub(crate) struct RawPush {
    /// The full ref.
    pub(crate) git_ref: String,
    /// Whether the provider flags the ref as deleted (GitHub `deleted`, Bitbucket `closed` or
    /// `new: null`); a zero commit id also means deleted.
    pub(crate) deleted: bool,
    /// The commit to build (`None` only for a deletion).
    pub(crate) commit: Option<Field>,
    /// The previous commit, zero or absent when the ref was created.
    pub(crate) before: Option<Field>,
    pub(crate) author: Option<Person>,
    pub(crate) message: Option<String>,
    pub(crate) repository: Repository,
    pub(crate) files: ChangedFiles,
}

impl RawPush {
    /// Applies the rules every provider shares: deletion, branch or tag, commit ids, skip-ci.
    fn finish(self, provider: Provider, delivery: Option<&str>) -> Result<Result<Push, Ignored>, ParseError> {
        let commit = match self.commit {
            Some(commit) if !self.deleted && !hook::is_zero_id(&commit.value) => commit,
            _ => {
                return Ok(Err(Ignored::Deleted { git_ref: self.git_ref }));
            }
        };
        let Some(target) = RefName::from_full(&self.git_ref) else {
            return Ok(Err(Ignored::OtherRef { git_ref: self.git_ref }));
        };
        let commit = commit.commit_id(provider)?;
        let before = match self.before {
            Some(before) if !hook::is_zero_id(&before.value) => Some(before.commit_id(provider)?),
            _ => None,
        };
        if self.message.as_deref().is_some_and(hook::skips_ci) {
            return Ok(Err(Ignored::SkipCi { git_ref: self.git_ref, commit }));
        }
        Ok(Ok(Push {
            delivery: delivery.map(str::to_owned),
            git_ref: self.git_ref,
            target,
            commit,
            before,
            author: self.author,
            message: self.message,
            repository: self.repository,
            files: self.files,
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::error::Error as _;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(http::HeaderName::from_bytes(name.as_bytes()).unwrap(), value.parse().unwrap());
        }
        map
    }

    fn chain(err: &ParseError) -> String {
        let mut text = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    #[test]
    fn a_missing_event_header_is_named() {
        for (provider, header) in [
            (Provider::GitHub, "X-GitHub-Event"),
            (Provider::GitLab, "X-Gitlab-Event"),
            (Provider::Bitbucket, "X-Event-Key"),
            (Provider::Gitea, "X-Gitea-Event` or `X-Forgejo-Event"),
        ] {
            let err = parse(provider, &HeaderMap::new(), b"{}").unwrap_err();
            assert!(matches!(err, ParseError::MissingHeader { header: h } if h == header), "{provider}: {err}");
        }
        // Another provider's event header is not read.
        let err = parse(Provider::GitLab, &headers(&[("X-GitHub-Event", "push")]), b"{}").unwrap_err();
        assert_eq!(err.to_string(), "header `X-Gitlab-Event` is missing");
    }

    #[test]
    fn a_repeated_event_header_is_refused() {
        let sent = headers(&[("X-GitHub-Event", "push"), ("X-GitHub-Event", "ping")]);
        let err = parse(Provider::GitHub, &sent, b"{}").unwrap_err();
        assert_eq!(err.to_string(), "header `X-GitHub-Event` is not usable: it is sent more than once");
    }

    #[test]
    fn other_events_are_ignored_by_name_with_their_delivery() {
        let sent =
            headers(&[("X-Gitea-Event", "pull_request"), ("X-Gitea-Delivery", "f6266f16-1bf3-46a5-9ea4-602e06ead473")]);
        let hook = parse(Provider::Gitea, &sent, b"not even json").unwrap();
        assert_eq!(
            hook,
            Hook::Ignored {
                delivery: Some("f6266f16-1bf3-46a5-9ea4-602e06ead473".into()),
                reason: Ignored::Event("pull_request".into()),
            }
        );
        assert_eq!(Ignored::Event("pull_request".into()).to_string(), "event `pull_request` is not built");
    }

    #[test]
    fn malformed_bodies_name_the_field() {
        let push = headers(&[("X-GitHub-Event", "push")]);
        let cases: [(&[u8], &str, &str); 5] = [
            (b"not json", "", "invalid github `push` body: expected ident at line 1 column 2"),
            (b"{}", "ref", "missing field `ref`"),
            (
                br#"{"ref": "refs/heads/main", "before": "", "after": "", "commits": [],
                    "head_commit": {"message": "m"}, "repository": {"full_name": "a/b"}}"#,
                "head_commit.id",
                "missing field `id`",
            ),
            (
                br#"{"ref": "refs/heads/main", "before": "", "after": "", "commits": [{"id": "x",
                    "message": "m", "added": "README.md"}], "head_commit": null,
                    "repository": {"full_name": "a/b"}}"#,
                "commits[0].added",
                "invalid type: string \"README.md\", expected a sequence",
            ),
            (
                br#"{"ref": "refs/heads/main", "before": "", "after": "", "commits": [],
                    "head_commit": null, "repository": {"full_name": "a/b"}} trailing"#,
                "",
                "trailing characters",
            ),
        ];
        for (body, path, cause) in cases {
            let err = parse(Provider::GitHub, &push, body).unwrap_err();
            let ParseError::Body { path: found, .. } = &err else {
                panic!("{err:?}");
            };
            assert_eq!(found, path);
            let chain = chain(&err);
            assert!(chain.contains(cause), "{chain}");
            if !path.is_empty() {
                assert!(chain.contains(&format!("at `{path}`")), "{chain}");
            }
        }
    }

    #[test]
    fn a_commit_id_that_is_not_hex_is_refused() {
        let push = headers(&[("X-GitHub-Event", "push")]);
        let body = br#"{"ref": "refs/heads/main", "before": "0000000000000000000000000000000000000000",
            "after": "--upload-pack=touch /tmp/x", "commits": [], "head_commit": null,
            "repository": {"full_name": "a/b"}}"#;
        let err = parse(Provider::GitHub, &push, body).unwrap_err();
        assert_eq!(err.to_string(), "invalid github body: field `after` is not a commit id (40 or 64 hex digits)");
    }
}
