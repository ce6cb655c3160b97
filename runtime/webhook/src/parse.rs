//! Reading a delivery into a [`Hook`]: the event and delivery headers, and which provider module
//! reads which event. The payload shapes live in the provider modules; decoding and the rules
//! shared by all providers in [`payload`](crate::payload).
//!
//! An event kind this crate does not build (a pull request, an issue…) is not an error: it is
//! [`Ignored::Event`]. A missing or unreadable event header, or a push body that is not the
//! provider's JSON, is a [`ParseError`] (the server answers 400).

use http::HeaderMap;

use crate::headers::{self, HeaderProblem};
use crate::hook::{Hook, Ignored};
use crate::payload::ParseError;
use crate::provider::Provider;
use crate::{bitbucket, gitea, github, gitlab};

/// Reads a delivery's headers and raw body into a [`Hook`]. Call [`verify`](crate::verify())
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
