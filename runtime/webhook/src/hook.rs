//! What a delivery means for CI, whatever the forge: a [`Hook`] is [`Push`]es to build or the
//! reason it is [`Ignored`]. This module owns those types and the rules every provider shares
//! (zero ids, branch or tag, `[skip ci]`, merging changed files); the provider modules only map
//! their payloads onto them.

use std::collections::HashSet;
use std::fmt;

/// A verified delivery, read: what to build, or why nothing is built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hook {
    /// One push per ref that moved, never empty. GitHub, GitLab and Gitea send exactly one;
    /// Bitbucket can send several ref changes in one delivery (deleted or skipped ones are left
    /// out, and if none is left the hook is [`Hook::Ignored`] for the first one's reason).
    Push(Vec<Push>),
    /// Nothing to build.
    Ignored {
        /// The forge's delivery id, as on [`Push::delivery`].
        delivery: Option<String>,
        /// Why.
        reason: Ignored,
    },
}

impl Hook {
    /// The forge's id of this delivery, whether or not it is built: a redelivery has the same
    /// one, so a server can drop it.
    pub fn delivery(&self) -> Option<&str> {
        match self {
            Hook::Push(pushes) => pushes.first().and_then(|push| push.delivery.as_deref()),
            Hook::Ignored { delivery, .. } => delivery.as_deref(),
        }
    }
}

/// Why a delivery starts no build. The server answers it with 2xx (the forge did nothing wrong)
/// and may show the reason ([`fmt::Display`]) in its response or log.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// The forge checking the hook works (GitHub's `ping`, Bitbucket's `diagnostics:ping`).
    Ping,
    /// An event kind other than a push, as the event header names it (`pull_request`,
    /// `Merge Request Hook`, `repo:fork`, `issues`…).
    Event(String),
    /// A branch or tag was deleted.
    Deleted {
        /// The full ref, e.g. `refs/heads/feature`.
        git_ref: String,
    },
    /// The head commit's message contains `[skip ci]` or `[ci skip]` (any case).
    SkipCi {
        /// The full ref.
        git_ref: String,
        /// The head commit.
        commit: String,
    },
    /// The ref is neither under `refs/heads/` nor `refs/tags/` (e.g. `refs/notes/commits`).
    OtherRef {
        /// The full ref.
        git_ref: String,
    },
    /// A Bitbucket push whose `push.changes` is empty.
    NoChanges,
}

impl fmt::Display for Ignored {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Ignored::Ping => f.write_str("ping"),
            Ignored::Event(event) => write!(f, "event `{event}` is not built"),
            Ignored::Deleted { git_ref } => write!(f, "`{git_ref}` was deleted"),
            Ignored::SkipCi { git_ref, commit } => {
                write!(f, "head commit {commit} of `{git_ref}` asks to skip CI")
            }
            Ignored::OtherRef { git_ref } => write!(f, "`{git_ref}` is neither a branch nor a tag"),
            Ignored::NoChanges => f.write_str("the push changes no ref"),
        }
    }
}

/// One ref moved by a push, with what a build needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Push {
    /// The forge's delivery id (`X-GitHub-Delivery`, `X-Gitlab-Event-UUID` or `Idempotency-Key`,
    /// `X-Request-UUID`, `X-Forgejo-Delivery` or `X-Gitea-Delivery`), if it sent one.
    pub delivery: Option<String>,
    /// The full ref, e.g. `refs/heads/main` or `refs/tags/v1.0.0`.
    pub git_ref: String,
    /// The branch or tag [`git_ref`](Self::git_ref) names.
    pub target: RefName,
    /// The commit to build: the head commit's id where the payload has it (for an annotated tag,
    /// GitHub's and Gitea's `after` is the tag object), else `after`; GitLab's `checkout_sha`;
    /// Bitbucket's `new.target.hash`. 40 (SHA-1) or 64 (SHA-256) lowercase hex digits.
    pub commit: String,
    /// The ref's previous commit; `None` when the push created the ref.
    pub before: Option<String>,
    /// Who the build is attributed to: the head commit's author where the payload has the head
    /// commit, else the user who pushed. `None` if the payload names nobody.
    pub author: Option<Person>,
    /// The head commit's message, if the payload has it (GitLab sends none for a tag push).
    pub message: Option<String>,
    /// The repository pushed to, for the server to find its configuration.
    pub repository: Repository,
    /// The files the pushed commits change.
    pub files: ChangedFiles,
}

impl Push {
    /// The branch pushed, if it is one.
    pub fn branch(&self) -> Option<&str> {
        match &self.target {
            RefName::Branch(name) => Some(name),
            RefName::Tag(_) => None,
        }
    }

    /// The tag pushed, if it is one.
    pub fn tag(&self) -> Option<&str> {
        match &self.target {
            RefName::Tag(name) => Some(name),
            RefName::Branch(_) => None,
        }
    }
}

/// A branch or a tag, by its short name (`main`, `feature/x`, `v1.0.0`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RefName {
    /// `refs/heads/<name>`.
    Branch(String),
    /// `refs/tags/<name>`.
    Tag(String),
}

impl RefName {
    /// Reads a full ref; `None` if it is neither a branch nor a tag.
    pub(crate) fn from_full(git_ref: &str) -> Option<RefName> {
        if let Some(name) = git_ref.strip_prefix("refs/heads/") {
            Some(RefName::Branch(name.to_owned())).filter(|_| !name.is_empty())
        } else if let Some(name) = git_ref.strip_prefix("refs/tags/") {
            Some(RefName::Tag(name.to_owned())).filter(|_| !name.is_empty())
        } else {
            None
        }
    }

    /// The full ref: `refs/heads/<name>` or `refs/tags/<name>`.
    pub fn full(&self) -> String {
        match self {
            RefName::Branch(name) => format!("refs/heads/{name}"),
            RefName::Tag(name) => format!("refs/tags/{name}"),
        }
    }
}

/// A person as the payload names them: any of a display name, an email, a forge login.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Person {
    /// Display name (`Jane Doe`).
    pub name: Option<String>,
    /// Email address, unless the forge redacts it.
    pub email: Option<String>,
    /// Forge user name (`octocat`).
    pub login: Option<String>,
}

impl Person {
    /// A person from the payload's fields, with empty strings and GitLab's `[REDACTED]` emails
    /// left out; `None` if nothing is left.
    pub(crate) fn new(name: Option<String>, email: Option<String>, login: Option<String>) -> Option<Person> {
        let keep = |value: Option<String>| value.filter(|v| !v.trim().is_empty());
        let person =
            Person { name: keep(name), email: keep(email).filter(|email| email != "[REDACTED]"), login: keep(login) };
        (person != Person::default()).then_some(person)
    }
}

/// The repository a delivery is for, as the payload identifies it. A server matches it against
/// its configured repositories; URLs the payload does not give are `None` (Bitbucket Cloud
/// sends no clone URL).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repository {
    /// `owner/name` (GitLab: `group/subgroup/name`, its `path_with_namespace`).
    pub full_name: String,
    /// The repository's web page.
    pub html_url: Option<String>,
    /// The HTTP(S) clone URL.
    pub clone_url: Option<String>,
    /// The SSH clone URL (`git@host:owner/name.git` or `ssh://…`).
    pub ssh_url: Option<String>,
}

/// The files changed by the pushed commits the payload lists: each list is the union over those
/// commits, without repeats, in first-seen order.
///
/// [`complete`](Self::complete) says whether that is every file the push changes:
/// - Bitbucket Cloud sends no file lists: always empty and incomplete.
/// - GitLab lists at most 20 commits: incomplete when `total_commits_count` is larger.
/// - GitHub lists at most 2048 commits: incomplete at 2048.
/// - Gitea lists at most `FEED_MAX_COMMIT_NUM` commits (default 5): incomplete when
///   `total_commits` is larger or, for a Gitea too old to send it, when 5 or more are listed.
/// - A commit without `added`/`modified`/`removed` arrays (Gitea's documentation example) makes
///   the lists unknown, so incomplete: an absent list is not an empty one.
///
/// The pushed commits are those new to the repository: for a created tag on an existing commit
/// they are none, and the lists are empty but complete. What to build then is the caller's call.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChangedFiles {
    /// Every path added, modified or removed, each once, in first-seen order (commit by commit,
    /// and within a commit added, then modified, then removed).
    pub paths: Vec<String>,
    /// Paths added.
    pub added: Vec<String>,
    /// Paths modified.
    pub modified: Vec<String>,
    /// Paths removed.
    pub removed: Vec<String>,
    /// Whether the lists are known to hold every file the push changes.
    pub complete: bool,
}

/// Builds [`ChangedFiles`] commit by commit.
#[derive(Debug)]
pub(crate) struct FilesBuilder {
    files: ChangedFiles,
    seen: [HashSet<String>; 4],
}

impl FilesBuilder {
    /// Starts with nothing listed and `complete` as the provider's commit count says.
    pub(crate) fn new(complete: bool) -> FilesBuilder {
        FilesBuilder { files: ChangedFiles { complete, ..ChangedFiles::default() }, seen: Default::default() }
    }

    /// Adds one commit's lists; an absent list makes the result incomplete.
    pub(crate) fn commit(
        &mut self,
        added: Option<Vec<String>>,
        modified: Option<Vec<String>>,
        removed: Option<Vec<String>>,
    ) {
        let ChangedFiles { paths, added: all_added, modified: all_modified, removed: all_removed, complete } =
            &mut self.files;
        let [seen_any, seen_added, seen_modified, seen_removed] = &mut self.seen;
        for (list, into, seen) in [
            (added, all_added, seen_added),
            (modified, all_modified, seen_modified),
            (removed, all_removed, seen_removed),
        ] {
            let Some(list) = list else {
                *complete = false;
                continue;
            };
            for path in list {
                if seen_any.insert(path.clone()) {
                    paths.push(path.clone());
                }
                if seen.insert(path.clone()) {
                    into.push(path);
                }
            }
        }
    }

    pub(crate) fn build(self) -> ChangedFiles {
        self.files
    }
}

/// A commit id made of zeros: "no commit" (a created ref's `before`, a deleted ref's `after`).
pub(crate) fn is_zero_id(id: &str) -> bool {
    !id.is_empty() && id.bytes().all(|b| b == b'0')
}

/// Whether `id` looks like a full commit id: 40 or 64 hex digits.
pub(crate) fn is_commit_id(id: &str) -> bool {
    matches!(id.len(), 40 | 64) && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Whether a head commit message asks to skip CI: `[skip ci]` or `[ci skip]`, in any case.
pub(crate) fn skips_ci(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("[skip ci]") || message.contains("[ci skip]")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(items: &[&str]) -> Option<Vec<String>> {
        Some(items.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn files_are_merged_in_first_seen_order_without_repeats() {
        let mut files = FilesBuilder::new(true);
        files.commit(strings(&["b", "a"]), strings(&["c"]), strings(&[]));
        files.commit(strings(&["a"]), strings(&["b", "d"]), strings(&["c"]));
        let files = files.build();
        assert_eq!(files.paths, ["b", "a", "c", "d"]);
        assert_eq!(files.added, ["b", "a"]);
        assert_eq!(files.modified, ["c", "b", "d"]);
        assert_eq!(files.removed, ["c"]);
        assert!(files.complete);
    }

    #[test]
    fn an_absent_list_makes_the_files_unknown() {
        let mut files = FilesBuilder::new(true);
        files.commit(strings(&["a"]), None, strings(&[]));
        let files = files.build();
        assert_eq!(files.paths, ["a"]);
        assert!(!files.complete);
    }

    #[test]
    fn skip_ci_in_any_case() {
        assert!(skips_ci("docs: typo [skip ci]"));
        assert!(skips_ci("[CI SKIP] bump"));
        assert!(skips_ci("wip\n\n[Skip CI]"));
        assert!(!skips_ci("skip ci"));
        assert!(!skips_ci("[skip-ci]"));
    }

    #[test]
    fn refs_and_ids() {
        assert_eq!(RefName::from_full("refs/heads/feature/x"), Some(RefName::Branch("feature/x".into())));
        assert_eq!(RefName::from_full("refs/tags/v1"), Some(RefName::Tag("v1".into())));
        assert_eq!(RefName::from_full("refs/notes/commits"), None);
        assert_eq!(RefName::from_full("refs/heads/"), None);
        assert_eq!(RefName::Tag("v1".into()).full(), "refs/tags/v1");
        assert!(is_zero_id(&"0".repeat(40)));
        assert!(is_zero_id(&"0".repeat(64)));
        assert!(!is_zero_id(""));
        assert!(is_commit_id(&"a".repeat(40)));
        assert!(!is_commit_id("--upload-pack=evil"));
    }

    #[test]
    fn a_person_keeps_what_the_payload_names() {
        assert_eq!(Person::new(Some(String::new()), None, None), None);
        assert_eq!(
            Person::new(None, Some("[REDACTED]".into()), Some("jsmith".into())),
            Some(Person { login: Some("jsmith".into()), ..Person::default() })
        );
    }
}
