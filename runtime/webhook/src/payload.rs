//! What every provider module hands to [`parse`](crate::parse()): decoding a body while naming
//! the path of a bad field ([`decode`]), the [`ParseError`] it reports, and one ref change as read
//! ([`RawPush`]) with the rules all providers share to make it a [`Push`] or an [`Ignored`]
//! reason: deletion, branch or tag, commit ids, `[skip ci]`.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::hook::{self, ChangedFiles, Ignored, Person, Push, RefName, Repository};
use crate::provider::Provider;

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
    pub(crate) fn finish(
        self,
        provider: Provider,
        delivery: Option<&str>,
    ) -> Result<Result<Push, Ignored>, ParseError> {
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
