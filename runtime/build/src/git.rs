//! The git context of a build of a checkout on disk: ref, commit, main branch and changed
//! files, read with the `git` command from the repository being built, each overridable by the
//! caller ([`GitOverrides`], from the command line for a local build).
//!
//! It only reads: it never fetches, checks out or otherwise changes the repository.

use std::path::Path;
use std::process::Command;

use monkeyci_protocol::{Changes, GitInfo};

/// What the caller (for a local build, the command line) says about git, overriding what the
/// repository says.
#[derive(Debug, Clone, Default)]
pub struct GitOverrides {
    /// The branch built, without `refs/heads/` (ignored when `tag` is set).
    pub branch: Option<String>,
    /// The tag built, without `refs/tags/`.
    pub tag: Option<String>,
    /// The commit id built.
    pub commit: Option<String>,
    /// The repository's main branch, without `refs/heads/`.
    pub main_branch: Option<String>,
    /// The changed files, as paths from the repository root; empty: asked of git.
    pub changed: Vec<String>,
    /// The commit changes are counted from when `changed` is empty (default: `HEAD`).
    pub base: Option<String>,
}

/// Why git could not tell.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The `git` command could not be started.
    #[error("cannot run git")]
    Spawn(#[source] std::io::Error),
    /// A `git` command that must succeed failed.
    #[error("`git {args}` failed: {stderr}")]
    Failed {
        /// Its arguments, space-separated.
        args: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The base for changes is not a commit of the repository; the base as given.
    #[error("--base {0}: no such commit in this repository")]
    UnknownBase(String),
    /// A base for changes was given, but the directory is not in a git repository.
    #[error("--base {base}: {} is not in a git repository", dir.display())]
    NotARepository {
        /// The base as given.
        base: String,
        /// The directory built.
        dir: std::path::PathBuf,
    },
}

/// Runs git in `dir`; `Ok(None)` when it exits non-zero.
fn git(dir: &Path, args: &[&str]) -> Result<Option<String>, Error> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().map_err(Error::Spawn)?;
    Ok(out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim_end().to_owned()))
}

fn git_ok(dir: &Path, args: &[&str]) -> Result<String, Error> {
    let out = Command::new("git").arg("-C").arg(dir).args(args).output().map_err(Error::Spawn)?;
    if !out.status.success() {
        return Err(Error::Failed {
            args: args.join(" "),
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The git context for a build of `dir`: from the repository when `dir` is in one, then the
/// overrides on top.
pub fn git_info(dir: &Path, overrides: &GitOverrides) -> Result<GitInfo, Error> {
    let in_repo = git(dir, &["rev-parse", "--is-inside-work-tree"])?.as_deref() == Some("true");
    if let (false, Some(base)) = (in_repo, &overrides.base) {
        return Err(Error::NotARepository { base: base.clone(), dir: dir.to_owned() });
    }
    let mut info = GitInfo::default();
    if in_repo {
        info.commit_id = git(dir, &["rev-parse", "--verify", "-q", "HEAD"])?;
        info.git_ref = match git(dir, &["symbolic-ref", "-q", "HEAD"])? {
            Some(branch) => Some(branch),
            None => git(dir, &["tag", "--points-at", "HEAD"])?
                .and_then(|tags| tags.lines().next().map(|t| format!("refs/tags/{t}"))),
        };
        info.main_branch = main_branch(dir)?;
        if overrides.changed.is_empty() {
            info.changes = changes(dir, overrides.base.as_deref(), info.commit_id.is_some())?;
        }
    }
    if let Some(tag) = &overrides.tag {
        info.git_ref = Some(format!("refs/tags/{tag}"));
    } else if let Some(branch) = &overrides.branch {
        info.git_ref = Some(format!("refs/heads/{branch}"));
    }
    if let Some(commit) = &overrides.commit {
        info.commit_id = Some(commit.clone());
    }
    if let Some(main) = &overrides.main_branch {
        info.main_branch = main.clone();
    }
    if !overrides.changed.is_empty() {
        info.changes = Changes { modified: overrides.changed.clone(), ..Changes::default() };
    }
    Ok(info)
}

/// `origin`'s default branch if known, else `main` or `master` if such a branch exists, else
/// `main`.
fn main_branch(dir: &Path) -> Result<String, Error> {
    if let Some(head) = git(dir, &["symbolic-ref", "-q", "--short", "refs/remotes/origin/HEAD"])?
        && let Some(name) = head.strip_prefix("origin/")
    {
        return Ok(name.to_owned());
    }
    for candidate in ["main", "master"] {
        if git(dir, &["rev-parse", "--verify", "-q", &format!("refs/heads/{candidate}")])?.is_some() {
            return Ok(candidate.to_owned());
        }
    }
    Ok("main".to_owned())
}

/// Files changed between `base` (default: HEAD) and the working tree, plus untracked files.
fn changes(dir: &Path, base: Option<&str>, has_commits: bool) -> Result<Changes, Error> {
    let mut changes = Changes::default();
    let base = match base {
        Some(base) => {
            if git(dir, &["rev-parse", "--verify", "-q", &format!("{base}^{{commit}}")])?.is_none() {
                return Err(Error::UnknownBase(base.to_owned()));
            }
            Some(base)
        }
        None => has_commits.then_some("HEAD"),
    };
    if let Some(base) = base {
        let diff = git_ok(dir, &["diff", "--name-status", "--no-renames", "-z", base, "--"])?;
        let mut fields = diff.split('\0').filter(|f| !f.is_empty());
        while let (Some(status), Some(path)) = (fields.next(), fields.next()) {
            let list = match status.chars().next() {
                Some('A') => &mut changes.added,
                Some('D') => &mut changes.removed,
                _ => &mut changes.modified,
            };
            list.push(path.to_owned());
        }
    }
    let untracked = git_ok(dir, &["ls-files", "--others", "--exclude-standard", "-z", "--full-name", ":/"])?;
    changes.added.extend(untracked.split('\0').filter(|p| !p.is_empty()).map(str::to_owned));
    Ok(changes)
}
