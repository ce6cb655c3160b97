//! Bitbucket Cloud's `repo:push` payload, mapped onto one [`RawPush`] per ref change.
//!
//! A delivery carries `push.changes[]`, each with `old` and `new` ref states (`{type: "branch" |
//! "tag", name, target: {hash, message, author}}`, `null` when the ref did not exist before or
//! does not after) and `closed` for a deletion. Bitbucket sends no file lists, so the changed
//! files are always unknown, and no clone URL (only `links.html`).

use serde::Deserialize;

use crate::hook::{ChangedFiles, Person, RefName, Repository};
use crate::payload::{Field, ParseError, RawPush, decode};
use crate::provider::Provider;

#[derive(Debug, Deserialize)]
struct Payload {
    push: PushBody,
    repository: Repo,
    #[serde(default)]
    actor: Option<User>,
}

#[derive(Debug, Deserialize)]
struct PushBody {
    changes: Vec<Change>,
}

#[derive(Debug, Deserialize)]
struct Change {
    #[serde(default)]
    old: Option<RefState>,
    #[serde(default)]
    new: Option<RefState>,
    #[serde(default)]
    closed: bool,
}

#[derive(Debug, Deserialize)]
struct RefState {
    #[serde(rename = "type")]
    kind: RefKind,
    name: String,
    target: Target,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "lowercase")]
enum RefKind {
    Branch,
    Tag,
}

#[derive(Debug, Deserialize)]
struct Target {
    hash: String,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    author: Option<Author>,
}

#[derive(Debug, Deserialize)]
struct Author {
    /// `Name <email>`, as in the commit.
    #[serde(default)]
    raw: Option<String>,
    /// The Bitbucket account, when the email is linked to one.
    #[serde(default)]
    user: Option<User>,
}

#[derive(Debug, Deserialize)]
struct User {
    /// Replaced by `nickname` in newer payloads.
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    nickname: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
}

impl User {
    fn login(&self) -> Option<String> {
        self.nickname.clone().or_else(|| self.username.clone())
    }
}

#[derive(Debug, Deserialize)]
struct Repo {
    full_name: String,
    #[serde(default)]
    links: Option<Links>,
}

#[derive(Debug, Deserialize)]
struct Links {
    #[serde(default)]
    html: Option<Href>,
}

#[derive(Debug, Deserialize)]
struct Href {
    href: String,
}

/// Reads a `repo:push` delivery: one push per ref change, in the payload's order.
pub(crate) fn read(event: &str, body: &[u8]) -> Result<Vec<RawPush>, ParseError> {
    let payload: Payload = decode(Provider::Bitbucket, event, body)?;
    let repository = Repository {
        full_name: payload.repository.full_name,
        html_url: payload.repository.links.and_then(|links| links.html).map(|html| html.href),
        clone_url: None,
        ssh_url: None,
    };
    let actor = payload.actor;
    let mut pushes = Vec::with_capacity(payload.push.changes.len());
    for (i, change) in payload.push.changes.into_iter().enumerate() {
        let Some(state) = change.new.as_ref().or(change.old.as_ref()) else {
            return Err(ParseError::Field {
                provider: Provider::Bitbucket,
                path: format!("push.changes[{i}]"),
                expected: "a ref change (`old` and `new` are both null)",
            });
        };
        let git_ref = match state.kind {
            RefKind::Branch => RefName::Branch(state.name.clone()),
            RefKind::Tag => RefName::Tag(state.name.clone()),
        }
        .full();
        let before = change.old.map(|old| Field::new(format!("push.changes[{i}].old.target.hash"), old.target.hash));
        let (commit, author, message) = match change.new {
            Some(new) => {
                let author = new.target.author.and_then(|author| {
                    let (name, email) = author.raw.as_deref().map(split_raw).unwrap_or_default();
                    let user = author.user.as_ref();
                    Person::new(
                        name.or_else(|| user.and_then(|u| u.display_name.clone())),
                        email,
                        user.and_then(User::login),
                    )
                });
                let commit = Field::new(format!("push.changes[{i}].new.target.hash"), new.target.hash);
                (Some(commit), author, new.target.message)
            }
            None => (None, None, None),
        };
        let author = author.or_else(|| {
            let actor = actor.as_ref()?;
            Person::new(actor.display_name.clone(), None, actor.login())
        });
        pushes.push(RawPush {
            git_ref,
            deleted: change.closed,
            commit,
            before,
            author,
            message,
            repository: repository.clone(),
            files: ChangedFiles::default(),
        });
    }
    Ok(pushes)
}

/// Splits `Name <email>` into its parts; text without `<…>` is all name.
fn split_raw(raw: &str) -> (Option<String>, Option<String>) {
    match raw.rsplit_once('<') {
        Some((name, rest)) if rest.ends_with('>') => {
            (Some(name.trim().to_owned()), Some(rest.trim_end_matches('>').trim().to_owned()))
        }
        _ => (Some(raw.trim().to_owned()), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_authors_split_into_name_and_email() {
        assert_eq!(
            split_raw("Brad Rydzewski <brad.rydzewski@gmail.com>"),
            (Some("Brad Rydzewski".into()), Some("brad.rydzewski@gmail.com".into()))
        );
        assert_eq!(split_raw("builder"), (Some("builder".into()), None));
    }
}
