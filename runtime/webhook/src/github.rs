//! GitHub's `push` payload, mapped onto a [`RawPush`]. Gitea's payload copies this shape, so
//! [`gitea`](crate::gitea) decodes the same [`Payload`] with its own rules.
//!
//! Only the fields a build needs are declared; everything else in the body is skipped.
//! GitHub lists at most 2048 commits in a delivery.

use serde::Deserialize;

use crate::hook::{ChangedFiles, FilesBuilder, Person, Repository};
use crate::payload::{Field, ParseError, RawPush, decode};
use crate::provider::Provider;

/// The most commits GitHub lists in a push delivery.
const MAX_COMMITS: usize = 2048;

/// A push body as GitHub (and Gitea) sends it.
#[derive(Debug, Deserialize)]
pub(crate) struct Payload {
    #[serde(rename = "ref")]
    pub(crate) git_ref: String,
    pub(crate) before: String,
    pub(crate) after: String,
    /// GitHub only; Gitea leaves it out.
    #[serde(default)]
    pub(crate) deleted: bool,
    pub(crate) commits: Vec<Commit>,
    /// `null` when the ref was deleted; absent from old Gitea payloads.
    #[serde(default)]
    pub(crate) head_commit: Option<Commit>,
    /// Gitea only: how many commits the push has, of which `commits` lists the latest few.
    #[serde(default)]
    pub(crate) total_commits: Option<usize>,
    pub(crate) repository: Repo,
    #[serde(default)]
    pub(crate) pusher: Option<User>,
    #[serde(default)]
    pub(crate) sender: Option<User>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Commit {
    pub(crate) id: String,
    pub(crate) message: String,
    #[serde(default)]
    pub(crate) author: Option<CommitAuthor>,
    #[serde(default)]
    pub(crate) added: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) modified: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) removed: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct CommitAuthor {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    username: Option<String>,
}

impl CommitAuthor {
    pub(crate) fn person(&self) -> Option<Person> {
        Person::new(self.name.clone(), self.email.clone(), self.username.clone())
    }
}

/// GitHub's `pusher` (`name` is the account name) and `sender`, Gitea's `pusher` and `sender`
/// (`login`, `username`, `full_name`).
#[derive(Debug, Deserialize)]
pub(crate) struct User {
    #[serde(default)]
    pub(crate) name: Option<String>,
    #[serde(default)]
    pub(crate) full_name: Option<String>,
    #[serde(default)]
    pub(crate) email: Option<String>,
    #[serde(default)]
    pub(crate) login: Option<String>,
    #[serde(default)]
    pub(crate) username: Option<String>,
}

#[derive(Debug, Deserialize)]
pub(crate) struct Repo {
    full_name: String,
    #[serde(default)]
    html_url: Option<String>,
    #[serde(default)]
    clone_url: Option<String>,
    #[serde(default)]
    ssh_url: Option<String>,
}

impl Repo {
    pub(crate) fn identity(self) -> Repository {
        Repository {
            full_name: self.full_name,
            html_url: self.html_url,
            clone_url: self.clone_url,
            ssh_url: self.ssh_url,
        }
    }
}

impl Payload {
    /// The files of the listed commits, `complete` as the provider's limit says.
    pub(crate) fn files(&mut self, complete: bool) -> ChangedFiles {
        let mut files = FilesBuilder::new(complete);
        for commit in &mut self.commits {
            files.commit(commit.added.take(), commit.modified.take(), commit.removed.take());
        }
        files.build()
    }
}

/// Reads a `push` delivery.
pub(crate) fn read(event: &str, body: &[u8]) -> Result<Vec<RawPush>, ParseError> {
    let mut payload: Payload = decode(Provider::GitHub, event, body)?;
    let files = payload.files(payload.commits.len() < MAX_COMMITS);
    let (commit, author, message) = match payload.head_commit {
        Some(head) => (
            Field::new("head_commit.id", head.id),
            head.author.as_ref().and_then(CommitAuthor::person),
            Some(head.message),
        ),
        None => (Field::new("after", payload.after), None, None),
    };
    let author = author.or_else(|| {
        // GitHub's pusher `name` is the account name.
        let pusher = payload.pusher.as_ref()?;
        Person::new(None, pusher.email.clone(), pusher.name.clone())
    });
    let author = author.or_else(|| {
        let sender = payload.sender.as_ref()?;
        Person::new(None, None, sender.login.clone())
    });
    Ok(vec![RawPush {
        git_ref: payload.git_ref,
        deleted: payload.deleted,
        commit: Some(commit),
        before: Some(Field::new("before", payload.before)),
        author,
        message,
        repository: payload.repository.identity(),
        files,
    }])
}
