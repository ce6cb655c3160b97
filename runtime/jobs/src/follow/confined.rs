//! Opening files in a directory the job can write (its root, mounted into the container), so
//! that nothing the job puts there redirects the host: a [`Dir`] is an open directory, and
//! every file or directory under it is opened relative to it, one name at a time, refusing
//! symbolic links (`O_NOFOLLOW`) and anything but a regular file or directory (checked with
//! `fstat` on the opened descriptor, which must be the entry `fstatat` saw), without blocking
//! on a FIFO (`O_NONBLOCK`).
//!
//! It only opens, creates, renames and removes entries, and wakes a FIFO; what is read and how
//! much is its callers' business ([`crate::follow`], `save`, [`crate::jobscript`]). New files
//! are always created (`O_EXCL`) and moved into place with `renameat`: an existing entry is
//! never opened for writing, except a FIFO by [`Dir::wake_fifo`] (checked to be one, before
//! and after opening; it writes one newline and nothing else).

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// What an entry is, as `fstatat` (not following links) sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Link,
    /// A FIFO, socket or device.
    Other,
}

impl Kind {
    fn of(mode: libc::mode_t) -> Kind {
        match mode & libc::S_IFMT {
            libc::S_IFREG => Kind::File,
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Link,
            _ => Kind::Other,
        }
    }

    /// What it is, for messages: "a symbolic link".
    pub(crate) fn described(self) -> &'static str {
        match self {
            Kind::File => "a regular file",
            Kind::Dir => "a directory",
            Kind::Link => "a symbolic link",
            Kind::Other => "a FIFO, socket or device",
        }
    }
}

/// The error for an entry that is not what the host reads: its kind is in the message.
fn refused(kind: Kind, wanted: Kind) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!(
            "it is {}, not {}; the host follows no link in a job's directory",
            kind.described(),
            wanted.described()
        ),
    )
}

/// Whether `err` is a refusal of [`Dir`] (a link, or not the kind wanted), not an I/O failure.
pub(crate) fn is_refusal(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::InvalidInput
}

fn c_name(name: &str) -> io::Result<CString> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("{name:?} is not a plain file name")));
    }
    CString::new(name).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a file name with a NUL byte"))
}

fn cvt(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(ret) }
}

/// Opens the regular file at `path` for reading, refusing it if its own name is a link, or it
/// is a FIFO, socket or device (the directories on its way are followed: see [`Dir`] for a
/// file none of whose names may be a link).
pub(crate) fn open_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    let seen = std::fs::symlink_metadata(path)?;
    let kind = kind_of(&seen);
    if kind != Kind::File {
        return Err(refused(kind, Kind::File));
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|err| if err.raw_os_error() == Some(libc::ELOOP) { refused(Kind::Link, Kind::File) } else { err })?;
    let meta = file.metadata()?;
    if kind_of(&meta) != Kind::File || meta.dev() != seen.dev() || meta.ino() != seen.ino() {
        return Err(refused(kind_of(&meta), Kind::File));
    }
    Ok(file)
}

fn kind_of(meta: &std::fs::Metadata) -> Kind {
    let kind = meta.file_type();
    if kind.is_symlink() {
        Kind::Link
    } else if kind.is_file() {
        Kind::File
    } else if kind.is_dir() {
        Kind::Dir
    } else {
        Kind::Other
    }
}

/// An open directory; every entry under it is reached through it, never by path.
#[derive(Debug)]
pub(crate) struct Dir {
    fd: OwnedFd,
    path: PathBuf,
}

impl Dir {
    /// Opens the directory `path` (the job root: its parents are the host's, so only its own
    /// name must not be a link).
    pub(crate) fn open(path: &Path) -> io::Result<Dir> {
        let c_path = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a path with a NUL byte"))?;
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: open(2) with a valid NUL-terminated path; the fd it returns is owned here.
        let fd = match cvt(unsafe { libc::open(c_path.as_ptr(), flags) }) {
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return Err(refused(Kind::Link, Kind::Dir)),
            Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => return Err(refused(Kind::Other, Kind::Dir)),
            Err(err) => return Err(err),
        };
        Ok(Dir { fd, path: path.to_owned() })
    }

    /// Its path, for messages.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What entry `name` is, not following a link; `None` when there is none.
    pub(crate) fn kind(&self, name: &str) -> io::Result<Option<Kind>> {
        Ok(self.stat(name)?.map(|st| Kind::of(st.st_mode)))
    }

    fn stat(&self, name: &str) -> io::Result<Option<libc::stat>> {
        let c = c_name(name)?;
        // SAFETY: an all-zero `stat` is a valid value for fstatat(2) to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: a valid dir fd, NUL-terminated name and a `stat` to write into.
        match cvt(unsafe { libc::fstatat(self.fd.as_raw_fd(), c.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) }) {
            Ok(_) => Ok(Some(st)),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Opens entry `name`, which must be of kind `wanted` (a file or a directory), and be the
    /// entry seen before opening it.
    fn open_entry(&self, name: &str, wanted: Kind) -> io::Result<OwnedFd> {
        let seen = self.stat(name)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        let kind = Kind::of(seen.st_mode);
        if kind != wanted {
            return Err(refused(kind, wanted));
        }
        let c = c_name(name)?;
        let mut flags = libc::O_RDONLY | libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
        if wanted == Kind::Dir {
            flags |= libc::O_DIRECTORY;
        }
        // SAFETY: openat(2) with a valid dir fd and NUL-terminated name; the fd is owned here.
        let fd = match cvt(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) }) {
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return Err(refused(Kind::Link, wanted)),
            Err(err) if err.raw_os_error() == Some(libc::ENOTDIR) => return Err(refused(Kind::Other, wanted)),
            Err(err) => return Err(err),
        };
        let file = File::from(fd);
        let meta = file.metadata()?;
        let now = kind_of(&meta);
        // `dev_t` and `ino_t` are u64 on Linux, but not everywhere.
        #[allow(clippy::unnecessary_cast)]
        let same = meta.dev() == seen.st_dev as u64 && meta.ino() == seen.st_ino as u64;
        if now != wanted || !same {
            return Err(refused(now, wanted));
        }
        Ok(OwnedFd::from(file))
    }

    /// Writes one newline to the FIFO `name` without blocking, to wake a reader waiting on it:
    /// true when written, false when no one has it open for reading (or a newline waits in it
    /// already). Anything but a FIFO is refused, as [`Dir::file`] refuses what is not a file:
    /// the entry must be one before it is opened (without following a link, not blocking) and
    /// the opened descriptor must be that entry.
    pub(crate) fn wake_fifo(&self, name: &str) -> io::Result<bool> {
        let is_fifo = |mode: libc::mode_t| mode & libc::S_IFMT == libc::S_IFIFO;
        let not_fifo = |mode: libc::mode_t| {
            let kind = Kind::of(mode);
            let what = if kind == Kind::Other { "a socket or device" } else { kind.described() };
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("it is {what}, not a FIFO; the host follows no link in a job's directory"),
            )
        };
        let seen = self.stat(name)?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?;
        if !is_fifo(seen.st_mode) {
            return Err(not_fifo(seen.st_mode));
        }
        let c = c_name(name)?;
        let flags = libc::O_WRONLY | libc::O_NONBLOCK | libc::O_NOFOLLOW | libc::O_NOCTTY | libc::O_CLOEXEC;
        // SAFETY: openat(2) with a valid dir fd and NUL-terminated name; the fd is owned here.
        let fd = match cvt(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags) }) {
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd) },
            // A FIFO no one reads.
            Err(err) if err.raw_os_error() == Some(libc::ENXIO) => return Ok(false),
            Err(err) if err.raw_os_error() == Some(libc::ELOOP) => return Err(refused(Kind::Link, Kind::Other)),
            Err(err) => return Err(err),
        };
        // SAFETY: an all-zero `stat` is a valid value for fstat(2) to fill.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: fstat(2) of an fd owned here into a `stat`.
        cvt(unsafe { libc::fstat(fd.as_raw_fd(), &mut st) })?;
        if !is_fifo(st.st_mode) || st.st_dev != seen.st_dev || st.st_ino != seen.st_ino {
            return Err(not_fifo(st.st_mode));
        }
        loop {
            // SAFETY: write(2) of one byte from a valid buffer to an fd owned here.
            match cvt(unsafe { libc::write(fd.as_raw_fd(), b"\n".as_ptr().cast(), 1) } as libc::c_int) {
                Ok(_) => return Ok(true),
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                // Full: the reader has newlines to read already.
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(err) => return Err(err),
            }
        }
    }

    /// Opens subdirectory `name`, refusing a link or anything else.
    pub(crate) fn dir(&self, name: &str) -> io::Result<Dir> {
        let fd = self.open_entry(name, Kind::Dir)?;
        Ok(Dir { fd, path: self.path.join(name) })
    }

    /// Opens regular file `name` for reading, refusing a link, a FIFO, a device or a socket.
    pub(crate) fn file(&self, name: &str) -> io::Result<File> {
        Ok(File::from(self.open_entry(name, Kind::File)?))
    }

    /// Opens the regular file at `rel` (plain names only, no `..`), every directory on the way
    /// opened as [`Dir::dir`] does.
    pub(crate) fn file_beneath(&self, rel: &Path) -> io::Result<File> {
        let mut names = Vec::new();
        for component in rel.components() {
            match component {
                Component::Normal(name) => names.push(name.to_str().ok_or_else(|| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("{} is not UTF-8", rel.display()))
                })?),
                Component::CurDir => {}
                _ => {
                    let msg = format!("{} is not a relative path of plain names", rel.display());
                    return Err(io::Error::new(io::ErrorKind::InvalidInput, msg));
                }
            }
        }
        let Some((last, dirs)) = names.split_last() else {
            return Err(io::Error::new(io::ErrorKind::InvalidInput, "an empty path"));
        };
        let mut sub: Option<Dir> = None;
        for name in dirs {
            let next = sub.as_ref().unwrap_or(self).dir(name)?;
            sub = Some(next);
        }
        sub.as_ref().unwrap_or(self).file(last)
    }

    /// Creates the new file `name` (mode 0600) for writing; fails if any entry of that name
    /// exists, a link included.
    pub(crate) fn create_new(&self, name: &str) -> io::Result<File> {
        let c = c_name(name)?;
        let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: openat(2) with a valid dir fd and NUL-terminated name; the fd is owned here.
        let fd = cvt(unsafe { libc::openat(self.fd.as_raw_fd(), c.as_ptr(), flags, 0o600 as libc::c_uint) })?;
        // SAFETY: a fresh fd from openat.
        Ok(File::from(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Renames entry `from` to `to` in this directory, replacing the entry `to` (whatever it
    /// is, a link included: the link itself is replaced, not its target).
    pub(crate) fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let (from, to) = (c_name(from)?, c_name(to)?);
        let fd = self.fd.as_raw_fd();
        // SAFETY: renameat(2) with valid dir fds and NUL-terminated names.
        cvt(unsafe { libc::renameat(fd, from.as_ptr(), fd, to.as_ptr()) }).map(drop)
    }

    /// Removes entry `name` if it is not a directory (a link itself, never its target).
    pub(crate) fn remove(&self, name: &str) -> io::Result<()> {
        let c = c_name(name)?;
        // SAFETY: unlinkat(2) with a valid dir fd and NUL-terminated name.
        cvt(unsafe { libc::unlinkat(self.fd.as_raw_fd(), c.as_ptr(), 0) }).map(drop)
    }

    /// The names of its entries.
    pub(crate) fn names(&self) -> io::Result<Vec<String>> {
        // Listed through a duplicate of the fd, so the listing is of this directory.
        let dup = self.fd.try_clone()?;
        // SAFETY: fdopendir(3) takes ownership of the duplicate fd (closed by closedir).
        let stream = unsafe { libc::fdopendir(dup.as_raw_fd()) };
        if stream.is_null() {
            return Err(io::Error::last_os_error());
        }
        std::mem::forget(dup);
        let mut names = Vec::new();
        loop {
            // SAFETY: a valid DIR stream; the entry is read before the next call.
            let entry = unsafe { libc::readdir(stream) };
            if entry.is_null() {
                break;
            }
            // SAFETY: d_name is NUL-terminated within the entry.
            let name = unsafe { std::ffi::CStr::from_ptr((*entry).d_name.as_ptr()) };
            let name = String::from_utf8_lossy(name.to_bytes()).into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        // SAFETY: closes the stream (and the duplicate fd) opened above.
        unsafe { libc::closedir(stream) };
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn confined_refuses_links_fifos_and_devices_and_reads_regular_files() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.txt");
        std::fs::write(&host, "host secret\n").unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir_all(root.join("logs")).unwrap();
        std::fs::create_dir_all(dir.path().join("elsewhere")).unwrap();
        std::fs::write(root.join("logs/0.out"), "mine\n").unwrap();
        symlink(&host, root.join("logs/1.out")).unwrap();
        symlink("/dev/zero", root.join("logs/2.out")).unwrap();
        symlink(dir.path().join("elsewhere"), root.join("linked")).unwrap();
        let fifo = CString::new(root.join("logs/3.out").as_os_str().as_bytes()).unwrap();
        // SAFETY: mkfifo(3) with a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);

        let root_dir = Dir::open(&root).unwrap();
        let mut text = String::new();
        root_dir.file_beneath(Path::new("logs/0.out")).unwrap().read_to_string(&mut text).unwrap();
        assert_eq!(text, "mine\n");
        for (rel, kind) in [
            ("logs/1.out", "a symbolic link"),
            ("logs/2.out", "a symbolic link"),
            ("logs/3.out", "a FIFO, socket or device"),
            ("linked/x", "a symbolic link"),
            ("logs", "a directory"),
        ] {
            let err = root_dir.file_beneath(Path::new(rel)).unwrap_err();
            assert!(is_refusal(&err) && err.to_string().starts_with(&format!("it is {kind}")), "{rel}: {err}");
        }
        assert!(root_dir.file_beneath(Path::new("../host.txt")).is_err());
        assert_eq!(root_dir.file_beneath(Path::new("logs/9.out")).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert!(is_refusal(&Dir::open(&root.join("linked")).unwrap_err()));

        // Writing: a new file moved over a link replaces the link, never its target.
        let logs = root_dir.dir("logs").unwrap();
        assert!(logs.create_new("1.out").is_err(), "an existing link is not written through");
        logs.create_new("tmp").unwrap().write_all(b"masked\n").unwrap();
        logs.rename("tmp", "1.out").unwrap();
        assert_eq!(std::fs::read_to_string(root.join("logs/1.out")).unwrap(), "masked\n");
        assert_eq!(std::fs::read_to_string(&host).unwrap(), "host secret\n");
        logs.remove("2.out").unwrap();
        let mut names = logs.names().unwrap();
        names.sort();
        assert_eq!(names, ["0.out", "1.out", "3.out"]);
        assert_eq!(logs.kind("3.out").unwrap(), Some(Kind::Other));
        assert_eq!(root_dir.kind("linked").unwrap(), Some(Kind::Link));
        assert_eq!(root_dir.kind("nothing").unwrap(), None);
    }
}
