//! GitLab's `Push Hook` and `Tag Push Hook` payloads, mapped onto a [`RawPush`].
//!
//! GitLab has no `created`/`deleted` flags: a zero `before` is a creation, a zero `after` (with
//! `checkout_sha: null`) a deletion. The commit to build is `checkout_sha` (for an annotated tag
//! `after` is the tag object). `commits` lists at most 20 commits, the latest ones, while
//! `total_commits_count` counts them all. The repository's identity is `project`.

use serde::Deserialize;

use crate::hook::{self, FilesBuilder, Person, Repository};
use crate::payload::{Field, ParseError, RawPush, decode};
use crate::provider::Provider;

#[derive(Debug, Deserialize)]
struct Payload {
    #[serde(rename = "ref")]
    git_ref: String,
    before: String,
    after: String,
    #[serde(default)]
    checkout_sha: Option<String>,
    #[serde(default)]
    user_name: Option<String>,
    #[serde(default)]
    user_username: Option<String>,
    #[serde(default)]
    user_email: Option<String>,
    project: Project,
    #[serde(default)]
    commits: Vec<Commit>,
    #[serde(default)]
    total_commits_count: Option<usize>,
}

#[derive(Debug, Deserialize)]
struct Project {
    path_with_namespace: String,
    #[serde(default)]
    web_url: Option<String>,
    #[serde(default)]
    git_http_url: Option<String>,
    #[serde(default)]
    git_ssh_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Commit {
    id: String,
    message: String,
    #[serde(default)]
    author: Option<Author>,
    #[serde(default)]
    added: Option<Vec<String>>,
    #[serde(default)]
    modified: Option<Vec<String>>,
    #[serde(default)]
    removed: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
struct Author {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

/// Reads a `Push Hook` or `Tag Push Hook` delivery.
pub(crate) fn read(event: &str, body: &[u8]) -> Result<Vec<RawPush>, ParseError> {
    let payload: Payload = decode(Provider::GitLab, event, body)?;
    // A deletion: `after` is zero and `checkout_sha` null.
    let deleted = hook::is_zero_id(&payload.after);
    let listed = payload.commits.len();
    let complete = payload.total_commits_count.is_none_or(|total| total <= listed);
    let mut files = FilesBuilder::new(complete);
    let mut head = None;
    let commit = match payload.checkout_sha {
        Some(sha) if !sha.is_empty() => Field::new("checkout_sha", sha),
        _ => Field::new("after", payload.after),
    };
    for commit_entry in payload.commits {
        files.commit(commit_entry.added, commit_entry.modified, commit_entry.removed);
        if commit_entry.id == commit.value {
            head = Some((commit_entry.message, commit_entry.author));
        }
    }
    let (message, author) = match head {
        Some((message, author)) => (Some(message), author.and_then(|a| Person::new(a.name, a.email, None))),
        None => (None, None),
    };
    let author = author.or_else(|| Person::new(payload.user_name, payload.user_email, payload.user_username));
    let project = payload.project;
    Ok(vec![RawPush {
        git_ref: payload.git_ref,
        deleted,
        commit: Some(commit),
        before: Some(Field::new("before", payload.before)),
        author,
        message,
        repository: Repository {
            full_name: project.path_with_namespace,
            html_url: project.web_url,
            clone_url: project.git_http_url,
            ssh_url: project.git_ssh_url,
        },
        files: files.build(),
    }])
}
