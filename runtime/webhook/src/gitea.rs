//! Gitea's (and Forgejo's) `push` payload, which copies GitHub's shape ([`github::Payload`]),
//! mapped onto a [`RawPush`].
//!
//! What differs from GitHub: no `deleted` flag (a zero `after` says it), `head_commit` may be
//! absent (older Gitea), the pusher is `login`/`full_name`/`email`, and the commit list is cut
//! at the server's `FEED_MAX_COMMIT_NUM` (default 5), with `total_commits` giving the real count
//! in newer versions. Branch and tag creation and deletion also come as separate `create` and
//! `delete` events, which are not built.

use crate::github::{self, CommitAuthor};
use crate::hook::Person;
use crate::payload::{Field, ParseError, RawPush, decode};
use crate::provider::Provider;

/// Gitea's default `[ui] FEED_MAX_COMMIT_NUM`: how many commits a payload without
/// `total_commits` may have been cut to.
const DEFAULT_MAX_COMMITS: usize = 5;

/// Reads a `push` delivery.
pub(crate) fn read(event: &str, body: &[u8]) -> Result<Vec<RawPush>, ParseError> {
    let mut payload: github::Payload = decode(Provider::Gitea, event, body)?;
    let listed = payload.commits.len();
    let complete = match payload.total_commits {
        Some(total) => total <= listed,
        None => listed < DEFAULT_MAX_COMMITS,
    };
    let files = payload.files(complete);
    // The head commit: `head_commit` where sent, else the listed commit `after` names.
    let head = match payload.head_commit.take() {
        Some(head) => Some((Field::new("head_commit.id", head.id.clone()), head)),
        None => {
            let index = payload.commits.iter().position(|c| c.id == payload.after);
            index.map(|i| {
                let commit = payload.commits.swap_remove(i);
                (Field::new(format!("commits[{i}].id"), commit.id.clone()), commit)
            })
        }
    };
    let (commit, author, message) = match head {
        Some((id, head)) => (id, head.author.as_ref().and_then(CommitAuthor::person), Some(head.message)),
        None => (Field::new("after", payload.after), None, None),
    };
    let author = author.or_else(|| {
        let pusher = payload.pusher.as_ref().or(payload.sender.as_ref())?;
        Person::new(
            pusher.full_name.clone(),
            pusher.email.clone(),
            pusher.login.clone().or_else(|| pusher.username.clone()),
        )
    });
    Ok(vec![RawPush {
        git_ref: payload.git_ref,
        deleted: false,
        commit: Some(commit),
        before: Some(Field::new("before", payload.before)),
        author,
        message,
        repository: payload.repository.identity(),
        files,
    }])
}
