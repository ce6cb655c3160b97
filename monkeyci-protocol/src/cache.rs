//! The rules of a container job's caches ([`CacheSpec`](crate::CacheSpec)) that every side
//! must read the same: where a cache path lives ([`location`]: the work dir, or the job's own
//! cargo home for `~/.cargo/registry` and `~/.cargo/git`), which keys and restore keys are
//! valid ([`problem`]), and how a key is written in a blob key ([`escape_key`]). It stands
//! below the wire types: `CacheSpec` and `ContainerSpec` call it. The sdk checks them when a pipeline plans
//! (so `monkeyci build verify` and `build plan` refuse a bad cache, naming its job), the
//! runtime again before it restores or saves anything.
//!
//! A cache's key is its [`key`](crate::CacheSpec::key), its key files' hash, or both joined by
//! `-` (`linux-main-3fa2…`). On a miss of that exact key, the newest archive whose key starts
//! with the first [restore key](crate::CacheSpec::restore_keys) that matches any is restored;
//! without restore keys, the newest archive of the cache id (as if the only restore key were
//! `""`).
//!
//! Pure rules: no I/O.

use std::path::{Component, Path};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};

/// The longest key or restore key, in bytes once escaped ([`escape_key`]: `/`, `%` and `\`
/// count three). With the key files' hash and the archive's extension, a key stays within the
/// 255 bytes a file name may have.
pub const MAX_KEY_LEN: usize = 200;

/// The directories of the cargo home a cache may name with `~/.cargo/<dir>`: the registry's
/// index and downloaded crates, and git dependencies' checkouts.
pub const CARGO_HOME_DIRS: [&str; 2] = ["registry", "git"];

/// The variable that points a job's cargo at its own cargo home, set for every job that caches
/// a path of it.
pub const CARGO_HOME_VAR: &str = "CARGO_HOME";

/// Where a cache's files are, as [`location`] reads its path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CachePath<'a> {
    /// Relative to the job's work dir (the root of its copy of the checkout).
    Work(&'a str),
    /// Relative to the job's own cargo home (`registry`, `git/db`): the path was
    /// `~/.cargo/registry`, `~/.cargo/git` or a path inside them. The job's `CARGO_HOME` points
    /// there; the machine's own `~/.cargo` is never read or written for it.
    CargoHome(&'a str),
}

/// What is wrong with a cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Problem {
    /// The id breaks the id rule.
    #[error("id {id:?} is invalid: {reason}")]
    Id {
        /// The id as given.
        id: String,
        /// Which rule it breaks.
        reason: crate::id::InvalidId,
    },
    /// The path is empty.
    #[error("the path is empty; use `.` for the whole work dir")]
    EmptyPath,
    /// The path is absolute.
    #[error("path {0:?} is absolute; give a path inside the work dir (or `~/.cargo/registry`, `~/.cargo/git`)")]
    Absolute(String),
    /// The path goes up with `..`.
    #[error("path {0:?} contains `..`; give a path inside the work dir")]
    Parent(String),
    /// A `~` path other than the cargo home's registry and git directories.
    #[error(
        "path {0:?} is in the home directory, which only `~/.cargo/registry` and `~/.cargo/git` (or paths inside \
         them) may name: the job's own cargo home; give other caches a path inside the work dir"
    )]
    Home(String),
    /// The key or a restore key cannot be used.
    #[error("{which} {key:?} {reason}")]
    Key {
        /// "key" or "restore key".
        which: &'static str,
        /// The key as given.
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The job sets `CARGO_HOME` itself and caches a path of the cargo home.
    #[error(
        "path {0:?} is kept in the job's own cargo home, which MonkeyCI points `CARGO_HOME` at: the job must not \
         set `CARGO_HOME` itself (or cache `<its CARGO_HOME>/registry` as a work dir path)"
    )]
    CargoHomeSet(String),
}

/// Where the files of a cache with this `path` are: a path inside the work dir, or one of
/// the job's own cargo home (`~/.cargo/registry`, `~/.cargo/git`, or inside them).
///
/// ```
/// use monkeyci_protocol::cache::{CachePath, location};
///
/// assert_eq!(location("target"), Ok(CachePath::Work("target")));
/// assert_eq!(location("~/.cargo/registry/"), Ok(CachePath::CargoHome("registry/")));
/// assert!(location("~/.npm").is_err());
/// assert!(location("/var/cache").is_err());
/// ```
pub fn location(path: &str) -> Result<CachePath<'_>, Problem> {
    if path.is_empty() {
        return Err(Problem::EmptyPath);
    }
    if path.starts_with('~') {
        // `~`, `~/...`, and `~user/...` (someone's home) alike: never a directory of the work
        // dir named `~`.
        let inside = path.strip_prefix("~/.cargo/").filter(|rest| {
            let mut parts = Path::new(rest).components();
            let top = parts.next();
            top.is_some_and(|top| CARGO_HOME_DIRS.iter().any(|dir| top.as_os_str() == *dir))
                && parts.all(|c| matches!(c, Component::Normal(_) | Component::CurDir))
        });
        return inside.map(CachePath::CargoHome).ok_or_else(|| Problem::Home(path.to_owned()));
    }
    for component in Path::new(path).components() {
        match component {
            Component::Normal(_) | Component::CurDir => {}
            Component::ParentDir => return Err(Problem::Parent(path.to_owned())),
            Component::RootDir | Component::Prefix(_) => return Err(Problem::Absolute(path.to_owned())),
        }
    }
    Ok(CachePath::Work(path))
}

/// What keeps a cache from being restored or saved, if anything: its `id`, its `path` (see
/// [`location`]), its `key` and `restore_keys` (no control characters, at most [`MAX_KEY_LEN`]
/// bytes escaped; only a restore key may be empty, matching every key).
pub fn problem(id: &str, path: &str, key: Option<&str>, restore_keys: &[String]) -> Option<Problem> {
    if let Err(reason) = crate::id::check(id) {
        return Some(Problem::Id { id: id.to_owned(), reason });
    }
    if let Err(problem) = location(path) {
        return Some(problem);
    }
    let keys = key.into_iter().map(|key| ("key", key)).chain(restore_keys.iter().map(|k| ("restore key", k.as_str())));
    for (which, key) in keys {
        let reason = if which == "key" && key.is_empty() {
            "is empty; leave the key out to key the cache by its key files alone".to_owned()
        } else if key.chars().any(char::is_control) {
            "holds a control character".to_owned()
        } else if escape_key(key).len() > MAX_KEY_LEN {
            format!("is too long: at most {MAX_KEY_LEN} bytes (`/`, `%` and `\\` count three)")
        } else {
            continue;
        };
        return Some(Problem::Key { which, key: key.to_owned(), reason });
    }
    None
}

/// `/`, `%`, `\` and control characters: what a key may not hold as one segment of a blob key
/// (or a file name).
const KEY_ESCAPES: &AsciiSet = &CONTROLS.add(b'/').add(b'%').add(b'\\');

/// A cache key as one segment of a blob key: `/`, `%` and `\` percent-encoded, everything else
/// as it is. A prefix of a key escapes to a prefix of the escaped key.
///
/// ```
/// use monkeyci_protocol::cache::{escape_key, unescape_key};
///
/// assert_eq!(escape_key("linux-feature/x-3fa2"), "linux-feature%2Fx-3fa2");
/// assert_eq!(unescape_key(&escape_key("50%/a\\b")), "50%/a\\b");
/// ```
pub fn escape_key(key: &str) -> String {
    utf8_percent_encode(key, KEY_ESCAPES).to_string()
}

/// The key an [`escape_key`] segment stands for.
pub fn unescape_key(segment: &str) -> String {
    percent_decode_str(segment).decode_utf8_lossy().into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 10: `~/.cargo/registry` and `~/.cargo/git` (what every Rust CI caches) map to the
    /// job's own cargo home; every other `~`, absolute or `..` path is refused when planning.
    #[test]
    fn only_the_cargo_homes_registry_and_git_may_leave_the_work_dir() {
        for (path, inside) in [
            ("~/.cargo/registry", "registry"),
            ("~/.cargo/git", "git"),
            ("~/.cargo/registry/index/", "registry/index/"),
            ("~/.cargo/git/db", "git/db"),
        ] {
            assert_eq!(location(path), Ok(CachePath::CargoHome(inside)), "{path}");
        }
        for path in ["~", "~/", "~/.cargo", "~/.cargo/bin", "~/.cargo/registry/../bin", "~/.npm", "~root/.cargo/git"] {
            assert_eq!(location(path), Err(Problem::Home(path.into())), "{path}");
        }
        assert_eq!(location("/root/.cargo/registry"), Err(Problem::Absolute("/root/.cargo/registry".into())));
        assert_eq!(location("a/../../b"), Err(Problem::Parent("a/../../b".into())));
        assert_eq!(location(""), Err(Problem::EmptyPath));
        assert_eq!(location("./target"), Ok(CachePath::Work("./target")));
        assert_eq!(location("~target"), Err(Problem::Home("~target".into())));
        assert_eq!(location("target~"), Ok(CachePath::Work("target~")));
        assert_eq!(
            problem("npm", "~/.npm", None, &[]).unwrap().to_string(),
            "path \"~/.npm\" is in the home directory, which only `~/.cargo/registry` and `~/.cargo/git` (or paths \
             inside them) may name: the job's own cargo home; give other caches a path inside the work dir"
        );
    }

    #[test]
    fn keys_and_restore_keys_are_checked() {
        let message = |key: &str, restore: &[&str]| {
            let restore: Vec<String> = restore.iter().map(|k| k.to_string()).collect();
            problem("target", "target", Some(key), &restore).map(|p| p.to_string())
        };
        assert_eq!(message("linux-feature/a b-é", &["linux-", ""]), None);
        assert_eq!(
            message("", &[]).unwrap(),
            "key \"\" is empty; leave the key out to key the cache by its key files alone"
        );
        assert_eq!(message("a\nb", &[]).unwrap(), "key \"a\\nb\" holds a control character");
        assert_eq!(message("ok", &["x\u{7}"]).unwrap(), "restore key \"x\\u{7}\" holds a control character");
        assert_eq!(message(&"a".repeat(MAX_KEY_LEN), &[]), None);
        assert!(message(&"/".repeat(MAX_KEY_LEN / 3 + 1), &[]).unwrap().contains("is too long: at most 200 bytes"));
        let bad_id = problem("a/b", "target", None, &[]).unwrap().to_string();
        assert!(bad_id.starts_with("id \"a/b\" is invalid: "), "{bad_id}");
    }

    #[test]
    fn escaped_keys_keep_prefixes_and_round_trip() {
        for key in ["", "a", "linux-main-3fa2", "feature/x", "100%", "a\\b", "ünïcode/ß"] {
            assert_eq!(unescape_key(&escape_key(key)), key);
            assert!(!escape_key(key).contains('/'));
        }
        assert!(escape_key("feature/x-abc").starts_with(&escape_key("feature/")));
    }
}
