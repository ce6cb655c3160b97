//! The workspace of a container job: its own copy of the checkout, so parallel jobs cannot
//! trample each other or the checkout. Each file is a clone (`FICLONE`: blocks shared
//! copy-on-write) where the file system can make one, else a copy; never a hard link, which
//! a job could write through. In a git checkout it holds the tracked and untracked files that are
//! not ignored (`.git` only when asked); elsewhere, everything but `.git`. Files keep their
//! modification times, so build tools see the checkout as it is (a warm cache stays warm).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Why the workspace could not be copied.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The checkout's files could not be listed.
    #[error("cannot list the files of {}", dir.display())]
    List {
        /// The checkout.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be copied.
    #[error("cannot copy {} to {}", from.display(), to.display())]
    Copy {
        /// The file in the checkout.
        from: PathBuf,
        /// Where it was to go.
        to: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Copies the checkout at `src` into `dest` (created if needed; expected to be empty) and
/// returns how many files and symlinks it copied.
pub fn copy_checkout(src: &Path, dest: &Path, with_git: bool) -> Result<usize, Error> {
    let files = match git_files(src) {
        Some(files) => files,
        None => walk(src).map_err(|source| Error::List { dir: src.to_owned(), source })?,
    };
    std::fs::create_dir_all(dest).map_err(|source| Error::Copy {
        from: src.to_owned(),
        to: dest.to_owned(),
        source,
    })?;
    let mut copied = 0;
    for rel in &files {
        if !with_git && rel.components().next().is_some_and(|c| c.as_os_str() == ".git") {
            continue;
        }
        copied += copy_entry(&src.join(rel), &dest.join(rel))?;
    }
    if with_git && src.join(".git").exists() {
        for rel in walk(&src.join(".git")).map_err(|source| Error::List { dir: src.to_owned(), source })? {
            copied += copy_entry(&src.join(".git").join(&rel), &dest.join(".git").join(&rel))?;
        }
    }
    Ok(copied)
}

/// Tracked and untracked, not ignored files of the git work tree `dir` is in, relative to
/// `dir`; `None` when it is in none. One `git` process: `ls-files` fails outside a work tree.
fn git_files(dir: &Path) -> Option<Vec<PathBuf>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["ls-files", "--cached", "--others", "--exclude-standard", "-z"])
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    // Paths are relative to `dir` (git lists the subtree of the current directory); deleted
    // files still listed as tracked are skipped when copying.
    Some(text.split('\0').filter(|p| !p.is_empty()).map(PathBuf::from).collect())
}

/// Every file and symlink under `dir`, relative to it.
fn walk(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for entry in std::fs::read_dir(dir.join(&rel))? {
            let entry = entry?;
            let path = rel.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                if path.as_os_str() != ".git" {
                    stack.push(path);
                }
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

fn copy_entry(from: &Path, to: &Path) -> Result<usize, Error> {
    let err = |source| Error::Copy { from: from.to_owned(), to: to.to_owned(), source };
    let meta = match std::fs::symlink_metadata(from) {
        Ok(meta) => meta,
        // Listed by git but deleted in the work tree.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(err(e)),
    };
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    if meta.file_type().is_symlink() {
        let target = std::fs::read_link(from).map_err(err)?;
        std::os::unix::fs::symlink(target, to).map_err(err)?;
    } else if meta.is_file() {
        copy_file(from, to, &meta).map_err(err)?;
    } else {
        return Ok(0);
    }
    Ok(1)
}

/// Copies the regular file `from` (whose metadata is `meta`) to `to`, with its permissions and
/// modification time: as a clone (`FICLONE`) where the file system can make one (btrfs, XFS,
/// bcachefs: the two share their blocks until either is written, and a write to one never
/// changes the other), else as a copy (`copy_file_range`, in the kernel).
fn copy_file(from: &Path, to: &Path, meta: &std::fs::Metadata) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut src = std::fs::File::open(from)?;
    let mut dest = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(meta.permissions().mode() & 0o7777)
        .open(to)?;
    if !clone(&src, &dest) {
        std::io::copy(&mut src, &mut dest)?;
    }
    // The mode without the umask, as `fs::copy` gives it.
    dest.set_permissions(meta.permissions())?;
    // With the original time, as a warm `cargo build` in the checkout would see it: a new
    // time on every file makes cargo rebuild what a restored `target` cache holds. Set
    // through the open file, which works even when the copy is read-only.
    dest.set_modified(meta.modified()?)
}

/// Makes the empty file `dest` a clone of `src`; false when the file system cannot (or they
/// are on two file systems).
#[cfg(target_os = "linux")]
fn clone(src: &std::fs::File, dest: &std::fs::File) -> bool {
    use std::os::fd::AsRawFd;
    // SAFETY: ioctl(2) FICLONE with two open file descriptors; no memory is passed.
    unsafe { libc::ioctl(dest.as_raw_fd(), libc::FICLONE, src.as_raw_fd()) == 0 }
}

#[cfg(not(target_os = "linux"))]
fn clone(_src: &std::fs::File, _dest: &std::fs::File) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn git(dir: &Path, args: &[&str]) {
        let status = Command::new("git").arg("-C").arg(dir).args(args).status().unwrap();
        assert!(status.success(), "git {args:?}");
    }

    #[test]
    fn copies_tracked_and_untracked_but_not_ignored_files() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let s = src.path();
        git(s, &["init", "-q", "-b", "main"]);
        std::fs::write(s.join(".gitignore"), "target/\n*.log\n").unwrap();
        std::fs::create_dir_all(s.join("src")).unwrap();
        std::fs::write(s.join("src/main.rs"), "fn main() {}").unwrap();
        git(s, &["add", "."]);
        std::fs::write(s.join("notes.txt"), "untracked").unwrap();
        std::fs::write(s.join("debug.log"), "ignored").unwrap();
        std::fs::create_dir_all(s.join("target")).unwrap();
        std::fs::write(s.join("target/big"), "ignored").unwrap();
        std::os::unix::fs::symlink("src/main.rs", s.join("link")).unwrap();

        let out = dest.path().join("work");
        copy_checkout(s, &out, false).unwrap();
        assert_eq!(std::fs::read_to_string(out.join("src/main.rs")).unwrap(), "fn main() {}");
        assert_eq!(std::fs::read_to_string(out.join("notes.txt")).unwrap(), "untracked");
        assert_eq!(std::fs::read_link(out.join("link")).unwrap(), Path::new("src/main.rs"));
        assert!(!out.join("debug.log").exists());
        assert!(!out.join("target").exists());
        assert!(!out.join(".git").exists());

        let with_git = dest.path().join("with-git");
        copy_checkout(s, &with_git, true).unwrap();
        assert!(with_git.join(".git/HEAD").is_file());
    }

    /// #9: every file got a new mtime in the copy, so cargo rebuilt the whole crate in every
    /// job although its `target` cache was restored.
    #[test]
    fn copies_keep_their_modification_times() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let file = src.path().join("lib.rs");
        std::fs::write(&file, "// old").unwrap();
        let then = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        std::fs::File::options().write(true).open(&file).unwrap().set_modified(then).unwrap();
        let out = dest.path().join("work");
        copy_checkout(src.path(), &out, false).unwrap();
        assert_eq!(std::fs::metadata(out.join("lib.rs")).unwrap().modified().unwrap(), then);
    }

    /// A copy (or clone) is the job's own: writing it leaves the checkout alone; modes are kept.
    #[test]
    fn copies_are_the_jobs_own_with_their_modes() {
        use std::os::unix::fs::PermissionsExt;
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let big: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(src.path().join("big.bin"), &big).unwrap();
        std::fs::write(src.path().join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(src.path().join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::write(src.path().join("ro.txt"), "read only").unwrap();
        std::fs::set_permissions(src.path().join("ro.txt"), std::fs::Permissions::from_mode(0o444)).unwrap();
        let out = dest.path().join("work");
        assert_eq!(copy_checkout(src.path(), &out, false).unwrap(), 3);
        assert_eq!(std::fs::read(out.join("big.bin")).unwrap(), big);
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&out.join("run.sh")), 0o755);
        assert_eq!(mode(&out.join("ro.txt")), 0o444);
        std::fs::write(out.join("big.bin"), "changed by the job").unwrap();
        assert_eq!(std::fs::read(src.path().join("big.bin")).unwrap(), big);
    }

    #[test]
    fn copies_everything_but_git_outside_a_repository() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(src.path().join("a/b")).unwrap();
        std::fs::write(src.path().join("a/b/c.txt"), "c").unwrap();
        let out = dest.path().join("work");
        assert_eq!(copy_checkout(src.path(), &out, false).unwrap(), 1);
        assert_eq!(std::fs::read_to_string(out.join("a/b/c.txt")).unwrap(), "c");
    }
}
