//! Workspace, artifact and cache archives: tar streams compressed with zstd.
//!
//! This crate owns the archive format and the rules for extracting one safely. It never decides
//! *what* to archive (the engines and the sidecar choose the paths) nor *where* archives are kept
//! (that is the `monkeyci-store` crate).
//!
//! - [`pack`] writes the given relative paths of a directory as one tar+zstd stream to any
//!   [`Write`]: files, directories (recursively, in sorted order), symlinks as symlinks, with
//!   permission bits and mtimes (whole seconds, like GNU tar). Memory stays constant: one file is
//!   read at a time through a reused buffer. [`pack_dir`] packs a whole directory,
//!   [`resolve_paths`] turns a job's glob-less path list into what exists.
//! - [`unpack`] extracts such a stream into a directory, entry by entry, without trusting it.
//!
//! Both block (they read and write files): from async code, call them in
//! `tokio::task::spawn_blocking`.
//!
//! ```
//! use std::fs;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let tmp = tempfile::tempdir()?;
//! let (src, dest) = (tmp.path().join("src"), tmp.path().join("dest"));
//! fs::create_dir_all(src.join("target/release"))?;
//! fs::write(src.join("target/release/app"), "binary")?;
//! fs::write(src.join("README.md"), "not archived")?;
//!
//! // Pack only `target` (paths are relative to `src`), into memory or any other `Write`.
//! let mut archive = Vec::new();
//! let packed = monkeyci_archive::pack(&src, &["target"], &mut archive)?;
//! assert_eq!((packed.files, packed.dirs), (1, 2));
//!
//! // Unpack it elsewhere (`dest` is created), from any `Read`.
//! let unpacked = monkeyci_archive::unpack(archive.as_slice(), &dest)?;
//! assert_eq!(unpacked.files, 1);
//! assert_eq!(fs::read_to_string(dest.join("target/release/app"))?, "binary");
//! assert!(!dest.join("README.md").exists());
//! # Ok(())
//! # }
//! ```
//!
//! # Safety rules of [`unpack`]
//!
//! Each entry is checked before anything is written; a refused entry fails the whole unpack with
//! [`Error::Rejected`], naming the entry and the [`Rejection`]:
//! - entry paths must be relative and free of `..` (`.` and repeated `/` are dropped);
//! - only regular files, directories, symlinks and hard links are accepted (no devices, fifos, or
//!   sparse files);
//! - a symlink target must be relative, may start with `..` components but has none after a
//!   normal component (`../lib/x` is fine, `a/../../x` is not: whether it escapes depends on what
//!   `a` becomes later), and must resolve inside the destination when it is created, following
//!   symlinks that already exist there;
//! - a hard link must name a regular file already inside the destination (never a symlink: a
//!   relative symlink moved to another directory would point elsewhere);
//! - parent directories of an entry are resolved like the kernel would, following symlinks only
//!   while they stay inside the destination; a write through a symlink that leads out is refused;
//! - an existing file is never opened for writing: it is moved aside and a new one is created, so
//!   a hard link into the destination cannot be used to write to the file it shares;
//! - a directory is never replaced by a file or symlink, nor a file by a directory.
//!
//! Modes keep the permission bits only (setuid, setgid and sticky are dropped) and ownership is
//! never changed. Symlink mtimes are not restored.
//!
//! # What a failed unpack leaves behind
//!
//! Nothing is ever written outside the destination. Inside it, a failed unpack (a refused entry, a
//! corrupt or truncated stream, an I/O error) is rolled back: paths it created are removed and the
//! files and symlinks it replaced are moved back from a backup directory inside the destination
//! (`.monkeyci-unpack-*`, removed at the end). Directory modes and mtimes are only applied once
//! every entry is in place; the mtimes of directories that existed before may still change.
//! Memory grows with the number of entries (one path each, kept for the rollback). Not covered: a
//! crash of the process mid-unpack (the backup directory then remains), and other processes
//! changing the destination while it is being unpacked.

#![doc(test(attr(deny(warnings))))]

use std::collections::{HashSet, VecDeque};
use std::ffi::{OsStr, OsString};
use std::fs::{self, File, FileTimes, Metadata, OpenOptions};
use std::io::{self, BufWriter, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The zstd level used when none is given (zstd's own default, as `tar --zstd` uses).
pub const DEFAULT_LEVEL: i32 = 3;

/// Size of the buffer files are read and written through.
const COPY_BUFFER: usize = 256 * 1024;

/// How many symlinks one path resolution may follow before giving up (Linux's limit).
const MAX_SYMLINK_HOPS: usize = 40;

/// An error packing or unpacking an archive. Each names the path or entry concerned.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A path given to [`pack`] or [`resolve_paths`] is not a clean relative path.
    #[error("invalid archive path `{}`: {reason}", .path.display())]
    InvalidPath {
        /// The path as given by the caller.
        path: PathBuf,
        /// What is wrong with it, and what to use instead.
        reason: String,
    },
    /// [`pack`] found a symlink that [`unpack`] would refuse (it points outside the archive).
    #[error("cannot archive symlink `{}` -> `{}`: {reason}", .path.display(), .target.display())]
    UnsafeSymlink {
        /// The symlink, relative to the directory being packed.
        path: PathBuf,
        /// Where the symlink points, as stored in it.
        target: PathBuf,
        /// Why [`unpack`] would refuse it, and what to do instead.
        reason: &'static str,
    },
    /// Reading a file or directory to pack failed.
    #[error("cannot read `{}`", .path.display())]
    Read {
        /// The file or directory that could not be read.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A file changed size while it was being packed.
    #[error("`{}` changed while it was being archived ({expected} bytes expected)", .path.display())]
    Changed {
        /// The file that shrank.
        path: PathBuf,
        /// Its size when it was listed.
        expected: u64,
    },
    /// Writing the compressed stream failed.
    #[error("cannot write the archive stream")]
    WriteArchive(#[source] io::Error),
    /// Reading the compressed stream failed: the stream is corrupt or truncated, or its reader
    /// failed.
    #[error("cannot read the archive stream (corrupt or truncated?)")]
    ReadArchive(#[source] io::Error),
    /// An archive entry was refused; nothing of the archive is left behind.
    #[error("archive entry `{entry}` refused: {reason}")]
    Rejected {
        /// The entry path as written in the archive (lossily decoded).
        entry: String,
        /// Why it was refused.
        reason: Rejection,
    },
    /// Writing an extracted entry failed.
    #[error("cannot extract `{}`", .path.display())]
    Write {
        /// The path in the destination that could not be written.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
}

/// Why [`unpack`] refused an entry. Paths and targets are shown as written in the archive or
/// relative to the destination, decoded lossily.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The entry path starts with `/`.
    #[error("absolute path")]
    AbsolutePath,
    /// The entry path contains a `..` component.
    #[error("path contains a `..` component")]
    ParentDir,
    /// The entry (or a link target) has no name at all.
    #[error("empty path")]
    EmptyPath,
    /// The entry is of a type that is never extracted (device, fifo, sparse file, …).
    #[error("{kind} entries are not allowed")]
    EntryType {
        /// The entry type, e.g. "character device".
        kind: &'static str,
    },
    /// A symlink or hard link would point outside the destination.
    #[error("link target `{target}` resolves outside the destination")]
    LinkOutside {
        /// The link target as written in the archive.
        target: String,
    },
    /// A symlink target climbs (`..`) after descending into a name, e.g. `a/../../x`.
    #[error("symlink target `{target}` has `..` after a normal component")]
    LinkParentAfterName {
        /// The symlink target as written in the archive.
        target: String,
    },
    /// A hard link does not name a regular file already extracted in the destination.
    #[error("link target `{target}` is not a regular file in the destination")]
    HardLinkTarget {
        /// The hard link target as written in the archive.
        target: String,
    },
    /// The entry's parent directories go through a symlink that leads out of the destination.
    #[error("path goes through symlink `{link}`, which leads outside the destination")]
    ThroughSymlink {
        /// The symlink, relative to the destination.
        link: String,
    },
    /// Resolving the entry's path followed more than 40 symlinks.
    #[error("too many levels of symbolic links")]
    SymlinkLoop,
    /// A parent of the entry, or the directory entry itself, is an existing non-directory.
    #[error("`{path}` is not a directory")]
    NotADirectory {
        /// The non-directory, relative to the destination.
        path: String,
    },
    /// A file or symlink entry would replace an existing directory.
    #[error("would replace the directory `{path}`")]
    ReplacesDirectory {
        /// The directory, relative to the destination.
        path: String,
    },
}

/// How [`pack_with`] compresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PackOptions {
    /// zstd level (1..=22; [`DEFAULT_LEVEL`] by default).
    pub level: i32,
    /// zstd worker threads; 0 compresses on the calling thread. With 1 or more, compression runs
    /// beside the file reading, like `tar | zstd` does.
    pub workers: u32,
}

impl Default for PackOptions {
    /// Level 3, one zstd worker per core up to 4. Measured on 2 shared cores (200 MiB of mixed
    /// files, `benches/archive.rs`): 0 workers ran at 0.7-0.8x of `tar --zstd`, 1 worker (which
    /// only overlaps reading with compressing, like `tar | zstd`) at 0.8-1.0x, 2 workers at
    /// 1.3-1.4x; the compressed size is the same within 0.5%.
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        PackOptions { level: DEFAULT_LEVEL, workers: cores.clamp(1, 4) as u32 }
    }
}

/// What [`pack`] wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PackStats {
    /// Regular files archived.
    pub files: u64,
    /// Directories archived.
    pub dirs: u64,
    /// Symlinks archived.
    pub symlinks: u64,
    /// Bytes of file content read.
    pub bytes_in: u64,
    /// Compressed bytes written to the writer.
    pub bytes_out: u64,
}

/// What [`unpack`] extracted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UnpackStats {
    /// Regular files written.
    pub files: u64,
    /// Directory entries (created or already present).
    pub dirs: u64,
    /// Symlinks created.
    pub symlinks: u64,
    /// Hard links created.
    pub hard_links: u64,
    /// Bytes of file content written.
    pub bytes: u64,
}

/// The paths of a glob-less list that exist, as computed by [`resolve_paths`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedPaths {
    /// Clean relative paths that exist, sorted, without paths already inside another one.
    pub present: Vec<PathBuf>,
    /// Clean relative paths that do not exist, sorted.
    pub missing: Vec<PathBuf>,
}

/// Validates a list of relative paths (no globs) under `src_dir` and splits it into the paths
/// that exist and those that do not, ready for [`pack`].
///
/// Each path must be relative without `..`; `.` and `""` mean the whole directory. Duplicates and
/// paths inside another listed path are dropped. A path whose parent is a symlink is an error: an
/// archive never reads through symlinks.
pub fn resolve_paths<S: AsRef<Path>>(src_dir: &Path, list: &[S]) -> Result<ResolvedPaths, Error> {
    let mut clean = list.iter().map(|p| clean_relative(p.as_ref())).collect::<Result<Vec<_>, _>>()?;
    clean.sort();
    clean.dedup();
    let mut resolved = ResolvedPaths::default();
    for path in clean {
        if resolved.present.iter().any(|kept| path.starts_with(kept)) {
            continue;
        }
        check_real_parents(src_dir, &path)?;
        match fs::symlink_metadata(src_dir.join(&path)) {
            Ok(_) => resolved.present.push(path),
            Err(err) if err.kind() == io::ErrorKind::NotFound => resolved.missing.push(path),
            Err(source) => return Err(Error::Read { path: src_dir.join(&path), source }),
        }
    }
    Ok(resolved)
}

/// Packs the whole of `src_dir` (its entries, not the directory itself) with the default options.
pub fn pack_dir<W: Write>(src_dir: &Path, writer: W) -> Result<PackStats, Error> {
    pack(src_dir, &[Path::new("")], writer)
}

/// Packs `paths` (relative to `src_dir`) as a tar+zstd stream into `writer` with the default
/// [`PackOptions`]. See [`pack_with`].
pub fn pack<W: Write, P: AsRef<Path>>(src_dir: &Path, paths: &[P], writer: W) -> Result<PackStats, Error> {
    pack_with(src_dir, paths, writer, &PackOptions::default())
}

/// Packs `paths` (relative to `src_dir`; `""` or `.` for all of it) as a tar+zstd stream into
/// `writer`, then flushes it.
///
/// Directories are walked recursively in sorted order; symlinks are stored as symlinks and never
/// followed, neither inside the tree nor in the parents of a listed path. Entry names are the
/// paths relative to `src_dir`. Sockets, fifos and devices are skipped; hard-linked files are
/// stored once per name. A file that shrinks while it is read is an [`Error::Changed`]; one that
/// grows is stored with the size it had when listed. A symlink that [`unpack`] would refuse
/// (absolute, or leading outside `src_dir`) is an [`Error::UnsafeSymlink`]: better to fail where
/// it is made than where it is restored.
pub fn pack_with<W: Write, P: AsRef<Path>>(
    src_dir: &Path,
    paths: &[P],
    writer: W,
    options: &PackOptions,
) -> Result<PackStats, Error> {
    let paths = paths.iter().map(|p| clean_relative(p.as_ref())).collect::<Result<Vec<_>, _>>()?;
    for path in &paths {
        check_real_parents(src_dir, path)?;
    }
    let mut encoder =
        zstd::Encoder::new(CountingWriter { inner: writer, count: 0 }, options.level).map_err(Error::WriteArchive)?;
    encoder.include_checksum(true).map_err(Error::WriteArchive)?;
    if options.workers > 0 {
        encoder.multithread(options.workers).map_err(Error::WriteArchive)?;
    }
    let mut packer = Packer {
        src_dir,
        builder: tar::Builder::new(BufWriter::with_capacity(COPY_BUFFER, encoder)),
        buf: vec![0; COPY_BUFFER],
        stats: PackStats::default(),
    };
    for path in &paths {
        packer.add_tree(path)?;
    }
    let Packer { builder, mut stats, .. } = packer;
    let mut builder = builder;
    builder.finish().map_err(Error::WriteArchive)?;
    let buffered = builder.into_inner().map_err(Error::WriteArchive)?;
    let encoder = buffered.into_inner().map_err(|err| Error::WriteArchive(err.into_error()))?;
    let mut counting = encoder.finish().map_err(Error::WriteArchive)?;
    counting.flush().map_err(Error::WriteArchive)?;
    stats.bytes_out = counting.count;
    Ok(stats)
}

/// Extracts a tar+zstd stream into `dest_dir` (created if missing), refusing anything unsafe.
///
/// See the [crate documentation](crate) for the rules and for what a failed unpack leaves behind. The
/// whole stream is read, so a truncated or corrupt one is an error even after the last entry.
pub fn unpack<R: Read>(reader: R, dest_dir: &Path) -> Result<UnpackStats, Error> {
    let created_root = match fs::symlink_metadata(dest_dir) {
        Ok(_) => false,
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(dest_dir).map_err(|source| Error::Write { path: dest_dir.to_owned(), source })?;
            true
        }
        Err(source) => return Err(Error::Write { path: dest_dir.to_owned(), source }),
    };
    let mut unpacker = Unpacker::new(dest_dir);
    match unpacker.run(reader) {
        Ok(()) => {
            let stats = unpacker.stats;
            unpacker.commit()?;
            Ok(stats)
        }
        Err(err) => {
            unpacker.rollback();
            if created_root {
                let _ = fs::remove_dir(dest_dir);
            }
            Err(err)
        }
    }
}

/// Why [`clean_relative`] refuses a path with `..`.
const CONTAINS_PARENT: &str = "contains `..`; name a path inside the archived directory";
/// Why [`clean_relative`] refuses an absolute path.
const IS_ABSOLUTE: &str = "is absolute; give it relative to the archived directory";

/// Turns `path` into a clean relative path: `.` and empty components dropped, `..` and roots
/// refused.
fn clean_relative(path: &Path) -> Result<PathBuf, Error> {
    let invalid = |reason: &str| Error::InvalidPath { path: path.to_owned(), reason: reason.to_owned() };
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(name) => clean.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err(invalid(CONTAINS_PARENT)),
            Component::RootDir | Component::Prefix(_) => return Err(invalid(IS_ABSOLUTE)),
        }
    }
    Ok(clean)
}

/// Checks that every parent of `path` under `src_dir` is a real directory, not a symlink.
fn check_real_parents(src_dir: &Path, path: &Path) -> Result<(), Error> {
    let mut current = src_dir.to_path_buf();
    let mut parents = path.components().peekable();
    while let Some(component) = parents.next() {
        if parents.peek().is_none() {
            break;
        }
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link = current.strip_prefix(src_dir).unwrap_or(&current).display().to_string();
                return Err(Error::InvalidPath {
                    path: path.to_owned(),
                    reason: format!(
                        "goes through symlink `{link}`, which archives never follow; name the path it points to instead"
                    ),
                });
            }
            Ok(_) => {}
            // A missing parent is reported by the caller as a missing path.
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(source) => return Err(Error::Read { path: current, source }),
        }
    }
    Ok(())
}

/// A writer that counts the bytes it passes on.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.count += written as u64;
        Ok(written)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

type ArchiveWriter<W> = tar::Builder<BufWriter<zstd::Encoder<'static, CountingWriter<W>>>>;

/// One [`pack_with`] call: the tar builder and a reused read buffer.
struct Packer<'a, W: Write> {
    src_dir: &'a Path,
    builder: ArchiveWriter<W>,
    buf: Vec<u8>,
    stats: PackStats,
}

impl<W: Write> Packer<'_, W> {
    /// Adds `rel` and, if it is a directory, everything below it (depth first, sorted). An empty
    /// `rel` adds the entries of `src_dir` without an entry for `src_dir` itself.
    fn add_tree(&mut self, rel: &Path) -> Result<(), Error> {
        if !rel.as_os_str().is_empty() {
            let full = self.src_dir.join(rel);
            let meta = fs::symlink_metadata(&full).map_err(|source| Error::Read { path: full, source })?;
            self.add_entry(rel, &meta)?;
            if !meta.is_dir() {
                return Ok(());
            }
        }
        let mut stack = vec![(rel.to_path_buf(), self.children(rel)?.into_iter())];
        while let Some((dir, children)) = stack.last_mut() {
            let Some((name, meta)) = children.next() else {
                stack.pop();
                continue;
            };
            let child = dir.join(name);
            self.add_entry(&child, &meta)?;
            if meta.is_dir() {
                let grandchildren = self.children(&child)?.into_iter();
                stack.push((child, grandchildren));
            }
        }
        Ok(())
    }

    /// The entries of directory `rel`, sorted by name, with their (not followed) metadata.
    fn children(&self, rel: &Path) -> Result<Vec<(OsString, Metadata)>, Error> {
        let dir = self.src_dir.join(rel);
        let read_err = |source| Error::Read { path: dir.clone(), source };
        let mut children = Vec::new();
        for entry in fs::read_dir(&dir).map_err(read_err)? {
            let entry = entry.map_err(read_err)?;
            let meta = entry.metadata().map_err(|source| Error::Read { path: entry.path(), source })?;
            children.push((entry.file_name(), meta));
        }
        children.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(children)
    }

    fn add_entry(&mut self, rel: &Path, meta: &Metadata) -> Result<(), Error> {
        let file_type = meta.file_type();
        let mut header = tar::Header::new_gnu();
        header.set_metadata_in_mode(meta, tar::HeaderMode::Complete);
        header.set_mode(meta.mode() & 0o7777);
        if file_type.is_dir() {
            self.builder.append_data(&mut header, rel, io::empty()).map_err(Error::WriteArchive)?;
            self.stats.dirs += 1;
        } else if file_type.is_symlink() {
            let full = self.src_dir.join(rel);
            let target = fs::read_link(&full).map_err(|source| Error::Read { path: full, source })?;
            check_packed_symlink(rel, &target)?;
            self.builder.append_link(&mut header, rel, &target).map_err(Error::WriteArchive)?;
            self.stats.symlinks += 1;
        } else if file_type.is_file() {
            self.add_file(rel, meta.len(), &mut header)?;
        } else {
            tracing::warn!(path = %rel.display(), "not archived: neither a file, a directory nor a symlink");
        }
        Ok(())
    }

    fn add_file(&mut self, rel: &Path, len: u64, header: &mut tar::Header) -> Result<(), Error> {
        let full = self.src_dir.join(rel);
        let file = File::open(&full).map_err(|source| Error::Read { path: full.clone(), source })?;
        let mut source = FileSource { file, buf: &mut self.buf, start: 0, end: 0, remaining: len, error: None };
        let appended = self.builder.append_data(header, rel, &mut source);
        if let Some(err) = source.error.take() {
            return Err(match err.kind() {
                io::ErrorKind::UnexpectedEof => Error::Changed { path: full, expected: len },
                _ => Error::Read { path: full, source: err },
            });
        }
        appended.map_err(Error::WriteArchive)?;
        self.stats.files += 1;
        self.stats.bytes_in += len;
        Ok(())
    }
}

/// Why [`check_packed_symlink`] refuses an absolute target.
const ABSOLUTE_TARGET: &str = "absolute targets are not archived; make the link relative";
/// Why [`check_packed_symlink`] refuses `a/../..`-like targets.
const PARENT_AFTER_NAME: &str = "its target has `..` after a normal component; put every `..` first, as in `../x`";
/// Why [`check_packed_symlink`] refuses a target above the archived directory.
const POINTS_OUTSIDE: &str = "points outside the archived directory; archive a directory that also holds its target";

/// Refuses, at pack time, a symlink that [`unpack`] would refuse whatever the destination holds.
fn check_packed_symlink(rel: &Path, target: &Path) -> Result<(), Error> {
    let unsafe_link = |reason| Error::UnsafeSymlink { path: rel.to_owned(), target: target.to_owned(), reason };
    if target.has_root() {
        return Err(unsafe_link(ABSOLUTE_TARGET));
    }
    let parts = link_parts(target.as_os_str()).map_err(|_| unsafe_link(PARENT_AFTER_NAME))?;
    let ups = parts.iter().take_while(|part| matches!(part, Part::Up)).count();
    let depth = rel.components().count() - 1;
    if ups > depth {
        return Err(unsafe_link(POINTS_OUTSIDE));
    }
    Ok(())
}

/// Reads exactly `remaining` bytes of a file through a shared buffer (one `read` call per
/// buffer-full, none after the end), keeping the first read error for the caller.
struct FileSource<'a> {
    file: File,
    buf: &'a mut Vec<u8>,
    start: usize,
    end: usize,
    remaining: u64,
    error: Option<io::Error>,
}

impl Read for FileSource<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        if self.start == self.end {
            if self.remaining == 0 {
                return Ok(0);
            }
            let want = self.buf.len().min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
            let read = loop {
                match self.file.read(&mut self.buf[..want]) {
                    Ok(0) => {
                        let err = io::Error::from(io::ErrorKind::UnexpectedEof);
                        self.error = Some(io::Error::from(io::ErrorKind::UnexpectedEof));
                        return Err(err);
                    }
                    Ok(read) => break read,
                    Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                    Err(err) => {
                        let kind = err.kind();
                        self.error = Some(err);
                        return Err(kind.into());
                    }
                }
            };
            self.start = 0;
            self.end = read;
            self.remaining -= read as u64;
        }
        let n = out.len().min(self.end - self.start);
        out[..n].copy_from_slice(&self.buf[self.start..self.start + n]);
        self.start += n;
        Ok(n)
    }
}

/// A component of a symlink target: `..` or a name (`.` is dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Up,
    Name(OsString),
}

/// Splits a relative symlink target into parts, refusing `..` after a normal component.
fn link_parts(target: &OsStr) -> Result<Vec<Part>, Rejection> {
    let mut parts = Vec::new();
    for part in any_parts(target) {
        if part == Part::Up && parts.last().is_some_and(|last| matches!(last, Part::Name(_))) {
            return Err(Rejection::LinkParentAfterName { target: lossy(target) });
        }
        parts.push(part);
    }
    Ok(parts)
}

/// Splits a path on `/` into parts, dropping empty and `.` components.
fn any_parts(path: &OsStr) -> impl Iterator<Item = Part> + '_ {
    path.as_bytes()
        .split(|byte| *byte == b'/')
        .filter(|part| !part.is_empty() && *part != b".")
        .map(|part| if part == b".." { Part::Up } else { Part::Name(OsStr::from_bytes(part).to_owned()) })
}

fn lossy(path: &OsStr) -> String {
    String::from_utf8_lossy(path.as_bytes()).into_owned()
}

/// Turns an entry path from the archive into a clean relative path (possibly empty: the root).
fn entry_path(raw: &[u8]) -> Result<PathBuf, Rejection> {
    if raw.first() == Some(&b'/') {
        return Err(Rejection::AbsolutePath);
    }
    let mut clean = PathBuf::new();
    for part in any_parts(OsStr::from_bytes(raw)) {
        match part {
            Part::Up => return Err(Rejection::ParentDir),
            Part::Name(name) => clean.push(name),
        }
    }
    Ok(clean)
}

/// Where a path resolution ends.
struct Resolved {
    /// The physical path, relative to the destination, made of real directories (plus, with
    /// `missing`, names that do not exist).
    rel: PathBuf,
    /// Whether a symlink was followed on the way.
    via_symlink: bool,
    /// Whether a component did not exist (only when resolving without creating).
    missing: bool,
}

/// Why a resolution failed.
enum ResolveError {
    Rejected(Rejection),
    Io(PathBuf, io::Error),
}

/// What to do with a missing component while resolving.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnMissing {
    /// Create it as a directory (parents of an entry being written).
    Create,
    /// Stop there (checking a link target).
    Stop,
}

/// Something [`unpack`] created, to remove on rollback.
struct Created {
    path: PathBuf,
    is_dir: bool,
}

/// One [`unpack`] call.
struct Unpacker {
    root: PathBuf,
    /// Parent paths known to be real directories (logical path == physical path).
    real_dirs: HashSet<PathBuf>,
    created: Vec<Created>,
    /// The backup directory, once something had to be replaced.
    backup_dir: Option<PathBuf>,
    /// (original, backup) pairs, in the order they were moved aside.
    backups: Vec<(PathBuf, PathBuf)>,
    /// Directory modes and mtimes, applied at the end.
    dir_meta: Vec<(PathBuf, u32, Option<SystemTime>)>,
    buf: Vec<u8>,
    /// The process umask, if known: files whose mode it would change get an explicit chmod.
    umask: Option<u32>,
    stats: UnpackStats,
}

impl Unpacker {
    fn new(root: &Path) -> Self {
        let mut real_dirs = HashSet::new();
        real_dirs.insert(PathBuf::new());
        Unpacker {
            root: root.to_path_buf(),
            real_dirs,
            created: Vec::new(),
            backup_dir: None,
            backups: Vec::new(),
            dir_meta: Vec::new(),
            buf: vec![0; COPY_BUFFER],
            umask: process_umask(),
            stats: UnpackStats::default(),
        }
    }

    fn run<R: Read>(&mut self, reader: R) -> Result<(), Error> {
        let decoder = zstd::Decoder::new(reader).map_err(Error::ReadArchive)?;
        let mut archive = tar::Archive::new(decoder);
        for entry in archive.entries().map_err(Error::ReadArchive)? {
            let mut entry = entry.map_err(Error::ReadArchive)?;
            let raw = entry.path_bytes().into_owned();
            self.extract(&mut entry, &raw).map_err(|err| match err {
                EntryError::Rejected(reason) => {
                    Error::Rejected { entry: String::from_utf8_lossy(&raw).into_owned(), reason }
                }
                EntryError::Other(err) => err,
            })?;
        }
        // Read to the end, so a stream cut after the tar end marker (or corrupt there) fails too.
        let mut decoder = archive.into_inner();
        io::copy(&mut decoder, &mut io::sink()).map_err(Error::ReadArchive)?;
        Ok(())
    }

    fn extract<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, raw: &[u8]) -> Result<(), EntryError> {
        let rel = entry_path(raw)?;
        let kind = entry.header().entry_type();
        let forbidden = |kind| Err(EntryError::Rejected(Rejection::EntryType { kind }));
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous => self.extract_file(entry, &rel),
            tar::EntryType::Directory => self.extract_dir(entry, &rel),
            tar::EntryType::Symlink => self.extract_symlink(entry, &rel),
            tar::EntryType::Link => self.extract_hard_link(entry, &rel),
            // Global PAX headers carry nothing we apply.
            tar::EntryType::XGlobalHeader => Ok(()),
            tar::EntryType::Char => forbidden("character device"),
            tar::EntryType::Block => forbidden("block device"),
            tar::EntryType::Fifo => forbidden("fifo"),
            tar::EntryType::GNUSparse => forbidden("sparse file"),
            _ => forbidden("unknown type"),
        }
    }

    /// Resolves the parent directories of entry `rel` (creating missing ones) and returns the
    /// physical path the entry itself goes to.
    fn target_path(&mut self, rel: &Path) -> Result<(PathBuf, bool), EntryError> {
        let name = rel.file_name().ok_or(Rejection::EmptyPath)?;
        let parent = rel.parent().unwrap_or(Path::new(""));
        if self.real_dirs.contains(parent) {
            return Ok((self.root.join(rel), false));
        }
        let parts: VecDeque<Part> = parent.components().map(|c| Part::Name(c.as_os_str().to_owned())).collect();
        let resolved = self.resolve(PathBuf::new(), parts, OnMissing::Create)?;
        if !resolved.via_symlink {
            self.real_dirs.insert(parent.to_path_buf());
        }
        Ok((self.root.join(resolved.rel).join(name), resolved.via_symlink))
    }

    /// Resolves `parts` from `start` (relative to the destination, real directories only) the way
    /// the kernel would, following symlinks, but never above the destination.
    fn resolve(
        &mut self,
        start: PathBuf,
        mut parts: VecDeque<Part>,
        on_missing: OnMissing,
    ) -> Result<Resolved, ResolveError> {
        let mut rel = start;
        let mut depth = rel.components().count();
        let mut hops = 0;
        let mut via_symlink = false;
        let mut last_link = None;
        while let Some(part) = parts.pop_front() {
            let name = match part {
                Part::Up => {
                    if depth == 0 {
                        return Err(ResolveError::Rejected(match last_link {
                            Some(link) => Rejection::ThroughSymlink { link },
                            None => Rejection::LinkOutside { target: "..".to_owned() },
                        }));
                    }
                    rel.pop();
                    depth -= 1;
                    continue;
                }
                Part::Name(name) => name,
            };
            let full = self.root.join(&rel).join(&name);
            match fs::symlink_metadata(&full) {
                Ok(meta) if meta.is_dir() => {}
                Ok(meta) if meta.file_type().is_symlink() => {
                    hops += 1;
                    if hops > MAX_SYMLINK_HOPS {
                        return Err(ResolveError::Rejected(Rejection::SymlinkLoop));
                    }
                    let target = fs::read_link(&full).map_err(|err| ResolveError::Io(full.clone(), err))?;
                    let link = lossy(rel.join(&name).as_os_str());
                    if target.has_root() {
                        return Err(ResolveError::Rejected(Rejection::ThroughSymlink { link }));
                    }
                    for part in any_parts(target.as_os_str()).collect::<Vec<_>>().into_iter().rev() {
                        parts.push_front(part);
                    }
                    last_link = Some(link);
                    via_symlink = true;
                    continue;
                }
                Ok(_) => {
                    if on_missing == OnMissing::Stop {
                        // A file in the middle: the path cannot be followed further, so it stays here.
                        return stop_here(rel, name, parts, via_symlink);
                    }
                    return Err(ResolveError::Rejected(Rejection::NotADirectory {
                        path: lossy(rel.join(&name).as_os_str()),
                    }));
                }
                Err(err) if err.kind() == io::ErrorKind::NotFound => match on_missing {
                    OnMissing::Stop => return stop_here(rel, name, parts, via_symlink),
                    OnMissing::Create => {
                        fs::create_dir(&full).map_err(|err| ResolveError::Io(full.clone(), err))?;
                        self.created.push(Created { path: full, is_dir: true });
                    }
                },
                Err(err) => return Err(ResolveError::Io(full, err)),
            }
            rel.push(name);
            depth += 1;
        }
        Ok(Resolved { rel, via_symlink, missing: false })
    }

    fn extract_file<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &Path) -> Result<(), EntryError> {
        let (path, _) = self.target_path(rel)?;
        let mode = entry.header().mode().unwrap_or(0o644) & 0o777;
        let mut file =
            self.create_new(&path, |path| OpenOptions::new().write(true).create_new(true).mode(mode).open(path))?;
        let expected = entry.size();
        let mut written = 0u64;
        loop {
            let read = match entry.read(&mut self.buf) {
                Ok(0) => break,
                Ok(read) => read,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
                Err(err) => return Err(EntryError::Other(Error::ReadArchive(err))),
            };
            file.write_all(&self.buf[..read]).map_err(|source| write_err(&path, source))?;
            written += read as u64;
        }
        if written != expected {
            let short =
                io::Error::new(io::ErrorKind::UnexpectedEof, format!("entry ends after {written} of {expected} bytes"));
            return Err(EntryError::Other(Error::ReadArchive(short)));
        }
        if self.umask.is_none_or(|umask| mode & umask != 0) {
            file.set_permissions(fs::Permissions::from_mode(mode)).map_err(|source| write_err(&path, source))?;
        }
        if let Some(mtime) = header_mtime(entry.header()) {
            file.set_modified(mtime).map_err(|source| write_err(&path, source))?;
        }
        self.stats.files += 1;
        self.stats.bytes += written;
        Ok(())
    }

    fn extract_dir<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &Path) -> Result<(), EntryError> {
        if rel.as_os_str().is_empty() {
            return Ok(()); // `./`: the destination itself, left as it is.
        }
        let (path, via_symlink) = self.target_path(rel)?;
        match fs::symlink_metadata(&path) {
            Ok(meta) if meta.is_dir() => {}
            Ok(meta) if meta.file_type().is_symlink() => {
                self.move_aside(&path)?;
                self.make_dir(&path)?;
            }
            Ok(_) => return Err(Rejection::NotADirectory { path: lossy(rel.as_os_str()) }.into()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => self.make_dir(&path)?,
            Err(source) => return Err(write_err(&path, source)),
        }
        if !via_symlink {
            self.real_dirs.insert(rel.to_path_buf());
        }
        let mode = entry.header().mode().unwrap_or(0o755) & 0o777;
        self.dir_meta.push((path, mode, header_mtime(entry.header())));
        self.stats.dirs += 1;
        Ok(())
    }

    fn make_dir(&mut self, path: &Path) -> Result<(), EntryError> {
        fs::create_dir(path).map_err(|source| write_err(path, source))?;
        self.created.push(Created { path: path.to_owned(), is_dir: true });
        Ok(())
    }

    fn extract_symlink<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &Path) -> Result<(), EntryError> {
        let target = entry.link_name_bytes().ok_or(Rejection::EmptyPath)?.into_owned();
        let target = OsStr::from_bytes(&target);
        if target.as_bytes().first() == Some(&b'/') {
            return Err(Rejection::LinkOutside { target: lossy(target) }.into());
        }
        let parts = link_parts(target)?;
        let (path, _) = self.target_path(rel)?;
        // Where the link lives, physically, relative to the destination.
        let parent = path.parent().and_then(|p| p.strip_prefix(&self.root).ok()).unwrap_or(Path::new("")).to_owned();
        match self.resolve(parent, parts.into(), OnMissing::Stop) {
            Ok(_) => {}
            Err(ResolveError::Rejected(Rejection::SymlinkLoop)) => return Err(Rejection::SymlinkLoop.into()),
            Err(ResolveError::Rejected(_)) => return Err(Rejection::LinkOutside { target: lossy(target) }.into()),
            Err(ResolveError::Io(path, source)) => return Err(write_err(&path, source)),
        }
        self.create_new(&path, |path| std::os::unix::fs::symlink(target, path))?;
        self.stats.symlinks += 1;
        Ok(())
    }

    fn extract_hard_link<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, rel: &Path) -> Result<(), EntryError> {
        let raw_target = entry.link_name_bytes().ok_or(Rejection::EmptyPath)?.into_owned();
        let target_name = lossy(OsStr::from_bytes(&raw_target));
        let outside = || Rejection::LinkOutside { target: target_name.clone() };
        let target_rel = entry_path(&raw_target).map_err(|_| outside())?;
        let target_file = target_rel.file_name().ok_or_else(outside)?.to_owned();
        let parts = target_rel.parent().unwrap_or(Path::new("")).components();
        let parts: VecDeque<Part> = parts.map(|c| Part::Name(c.as_os_str().to_owned())).collect();
        let resolved = match self.resolve(PathBuf::new(), parts, OnMissing::Stop) {
            Ok(resolved) => resolved,
            Err(ResolveError::Rejected(_)) => return Err(outside().into()),
            Err(ResolveError::Io(path, source)) => return Err(write_err(&path, source)),
        };
        let source = self.root.join(&resolved.rel).join(target_file);
        let is_file = !resolved.missing && fs::symlink_metadata(&source).is_ok_and(|meta| meta.is_file());
        if !is_file {
            return Err(Rejection::HardLinkTarget { target: target_name }.into());
        }
        let (path, _) = self.target_path(rel)?;
        self.create_new(&path, |path| fs::hard_link(&source, path))?;
        self.stats.hard_links += 1;
        Ok(())
    }

    /// Creates `path` with `create` (which must fail with `AlreadyExists` rather than replace),
    /// moving an existing file or symlink aside first. Directories are never replaced.
    fn create_new<T>(&mut self, path: &Path, create: impl Fn(&Path) -> io::Result<T>) -> Result<T, EntryError> {
        let created = match create(path) {
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::symlink_metadata(path).map_err(|source| write_err(path, source))?;
                if meta.is_dir() {
                    let shown = path.strip_prefix(&self.root).unwrap_or(path);
                    return Err(Rejection::ReplacesDirectory { path: lossy(shown.as_os_str()) }.into());
                }
                self.move_aside(path)?;
                create(path)
            }
            other => other,
        }
        .map_err(|source| write_err(path, source))?;
        self.created.push(Created { path: path.to_owned(), is_dir: false });
        Ok(created)
    }

    /// Moves an existing file or symlink into the backup directory, to restore on rollback.
    fn move_aside(&mut self, path: &Path) -> Result<(), EntryError> {
        let backup_dir = match &self.backup_dir {
            Some(dir) => dir.clone(),
            None => {
                let dir = self.root.join(unique_name(".monkeyci-unpack"));
                fs::create_dir(&dir).map_err(|source| write_err(&dir, source))?;
                self.backup_dir = Some(dir.clone());
                dir
            }
        };
        let backup = backup_dir.join(self.backups.len().to_string());
        fs::rename(path, &backup).map_err(|source| write_err(path, source))?;
        self.backups.push((path.to_owned(), backup));
        Ok(())
    }

    /// Applies directory metadata (deepest last-seen first) and drops the backups.
    fn commit(self) -> Result<(), Error> {
        for (path, mode, mtime) in self.dir_meta.iter().rev() {
            if let Some(mtime) = mtime {
                let dir = File::open(path).map_err(|source| Error::Write { path: path.clone(), source })?;
                dir.set_times(FileTimes::new().set_modified(*mtime))
                    .map_err(|source| Error::Write { path: path.clone(), source })?;
            }
            fs::set_permissions(path, fs::Permissions::from_mode(*mode))
                .map_err(|source| Error::Write { path: path.clone(), source })?;
        }
        if let Some(dir) = &self.backup_dir
            && let Err(err) = fs::remove_dir_all(dir)
        {
            tracing::warn!(path = %dir.display(), error = %err, "cannot remove the unpack backup directory");
        }
        Ok(())
    }

    /// Undoes what this unpack did, as far as the file system lets it.
    fn rollback(&mut self) {
        for created in self.created.iter().rev() {
            let removed = if created.is_dir { fs::remove_dir(&created.path) } else { fs::remove_file(&created.path) };
            if let Err(err) = removed
                && err.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %created.path.display(), error = %err, "rollback: cannot remove");
            }
        }
        for (original, backup) in self.backups.iter().rev() {
            if let Err(err) = fs::rename(backup, original) {
                tracing::warn!(path = %original.display(), error = %err, "rollback: cannot restore");
            }
        }
        if let Some(dir) = &self.backup_dir {
            let _ = fs::remove_dir_all(dir);
        }
    }
}

/// A resolution that stops at a missing (or non-directory) `name`: fine as long as nothing left
/// could climb back up.
fn stop_here(rel: PathBuf, name: OsString, parts: VecDeque<Part>, via_symlink: bool) -> Result<Resolved, ResolveError> {
    if parts.contains(&Part::Up) {
        return Err(ResolveError::Rejected(Rejection::LinkOutside { target: lossy(rel.join(name).as_os_str()) }));
    }
    Ok(Resolved { rel, via_symlink, missing: true })
}

/// An error while extracting one entry: a refusal (named with the entry by the caller) or another
/// error that already names its path.
enum EntryError {
    Rejected(Rejection),
    Other(Error),
}

impl From<Rejection> for EntryError {
    fn from(reason: Rejection) -> Self {
        EntryError::Rejected(reason)
    }
}

impl From<ResolveError> for EntryError {
    fn from(err: ResolveError) -> Self {
        match err {
            ResolveError::Rejected(reason) => EntryError::Rejected(reason),
            ResolveError::Io(path, source) => write_err(&path, source),
        }
    }
}

fn write_err(path: &Path, source: io::Error) -> EntryError {
    EntryError::Other(Error::Write { path: path.to_owned(), source })
}

fn header_mtime(header: &tar::Header) -> Option<SystemTime> {
    header.mtime().ok().and_then(|secs| UNIX_EPOCH.checked_add(Duration::from_secs(secs)))
}

/// The process umask, read from `/proc/self/status` (reading it with `umask(2)` would change it
/// for every thread for a moment).
fn process_umask() -> Option<u32> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find_map(|line| line.strip_prefix("Umask:"))?;
    u32::from_str_radix(line.trim(), 8).ok()
}

/// A name no archive can predict: prefix, process id, time and a counter.
fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos());
    format!("{prefix}-{}-{nanos}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::Relaxed))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::os::unix::fs::symlink;
    use std::process::Command;

    /// What a tree holds, for comparing an original with its extraction.
    #[derive(Debug, PartialEq, Eq)]
    enum Node {
        File { content: Vec<u8>, mode: u32, mtime: i64 },
        Dir { mode: u32, mtime: i64 },
        Symlink { target: PathBuf },
    }

    fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
        snapshot_with(root, true)
    }

    /// Like [`snapshot`], optionally without directory mtimes (which any change inside updates).
    fn snapshot_with(root: &Path, dir_mtimes: bool) -> BTreeMap<PathBuf, Node> {
        let mut nodes = BTreeMap::new();
        let mut dirs = vec![root.to_path_buf()];
        while let Some(dir) = dirs.pop() {
            for entry in fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let meta = fs::symlink_metadata(&path).unwrap();
                let rel = path.strip_prefix(root).unwrap().to_path_buf();
                let node = if meta.file_type().is_symlink() {
                    Node::Symlink { target: fs::read_link(&path).unwrap() }
                } else if meta.is_dir() {
                    dirs.push(path.clone());
                    Node::Dir { mode: meta.mode() & 0o7777, mtime: if dir_mtimes { meta.mtime() } else { 0 } }
                } else {
                    Node::File { content: fs::read(&path).unwrap(), mode: meta.mode() & 0o7777, mtime: meta.mtime() }
                };
                nodes.insert(rel, node);
            }
        }
        nodes
    }

    fn set_mtime(path: &Path, secs: u64) {
        let file = File::open(path).unwrap();
        file.set_times(FileTimes::new().set_modified(UNIX_EPOCH + Duration::from_secs(secs))).unwrap();
    }

    fn write(path: &Path, content: &[u8], mode: u32) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, content).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    /// A tree with nested and empty directories, symlinks, modes, unicode and long names.
    fn sample_tree(root: &Path) {
        write(&root.join("README.md"), b"# hello\n", 0o644);
        write(&root.join("bin/run.sh"), b"#!/bin/sh\necho hi\n", 0o755);
        write(&root.join("src/deep/er/still/main.rs"), b"fn main() {}\n", 0o600);
        write(&root.join("src/empty.txt"), b"", 0o444);
        write(&root.join("données/ünïcödé 文件.txt"), "héllo wörld\n".as_bytes(), 0o640);
        let long_dir = "d".repeat(120);
        write(&root.join(&long_dir).join("f".repeat(150)), b"long names", 0o644);
        let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        write(&root.join("data/big.bin"), &big, 0o644);
        fs::create_dir_all(root.join("empty/nested-empty")).unwrap();
        fs::create_dir_all(root.join("private")).unwrap();
        fs::set_permissions(root.join("private"), fs::Permissions::from_mode(0o700)).unwrap();
        symlink("../README.md", root.join("bin/readme")).unwrap();
        symlink("deep/er", root.join("src/shortcut")).unwrap();
        symlink("does-not-exist", root.join("dangling")).unwrap();
        symlink(".", root.join("src/self")).unwrap();
        for (i, path) in ["README.md", "bin/run.sh", "src/deep/er/still/main.rs", "data/big.bin"].iter().enumerate() {
            set_mtime(&root.join(path), 1_600_000_000 + i as u64 * 1000);
        }
        for dir in ["src/deep/er/still", "src/deep/er", "empty/nested-empty", "empty"] {
            set_mtime(&root.join(dir), 1_500_000_000);
        }
    }

    fn pack_to_vec(src: &Path, paths: &[&str]) -> (Vec<u8>, PackStats) {
        let mut out = Vec::new();
        let stats = pack(src, paths, &mut out).unwrap();
        (out, stats)
    }

    #[test]
    fn round_trip_keeps_files_dirs_symlinks_modes_and_mtimes() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        let mut archive = Vec::new();
        let stats = pack_dir(&src, &mut archive).unwrap();
        assert_eq!(stats.files, 7);
        assert_eq!(stats.symlinks, 4);
        assert_eq!(stats.bytes_out, archive.len() as u64);
        assert!(stats.bytes_in > 3_000_000);

        let dest = tmp.path().join("out/dest");
        let unpacked = unpack(archive.as_slice(), &dest).unwrap();
        assert_eq!((unpacked.files, unpacked.symlinks, unpacked.bytes), (7, 4, stats.bytes_in));
        assert_eq!(snapshot(&dest), snapshot(&src));

        // Unpacking again over the result replaces everything and changes nothing.
        unpack(archive.as_slice(), &dest).unwrap();
        assert_eq!(snapshot(&dest), snapshot(&src));
    }

    #[test]
    fn packs_only_the_given_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        let (archive, stats) = pack_to_vec(&src, &["./src/deep", "bin/run.sh"]);
        assert_eq!(stats.files, 2);
        let dest = tmp.path().join("dest");
        unpack(archive.as_slice(), &dest).unwrap();
        let got: Vec<_> = snapshot(&dest).into_keys().collect();
        let expected: Vec<PathBuf> = ["bin", "bin/run.sh", "src", "src/deep", "src/deep/er", "src/deep/er/still"]
            .iter()
            .map(PathBuf::from)
            .chain([PathBuf::from("src/deep/er/still/main.rs")])
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn pack_refuses_bad_paths_and_unsafe_symlinks() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        let err = pack(&src, &["../etc"], Vec::new()).unwrap_err();
        assert!(matches!(&err, Error::InvalidPath { reason, .. } if reason == CONTAINS_PARENT), "{err}");
        let err = pack(&src, &["/etc"], Vec::new()).unwrap_err();
        assert!(matches!(&err, Error::InvalidPath { reason, .. } if reason == IS_ABSOLUTE), "{err}");
        // A listed path is never read through a symlink.
        let err = pack(&src, &["src/shortcut/still/main.rs"], Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid archive path `src/shortcut/still/main.rs`: goes through symlink `src/shortcut`, which archives \
             never follow; name the path it points to instead"
        );
        let err = pack(&src, &["missing"], Vec::new()).unwrap_err();
        assert!(matches!(&err, Error::Read { source, .. } if source.kind() == io::ErrorKind::NotFound), "{err}");

        symlink("/etc", src.join("bin/etc")).unwrap();
        let err = pack(&src, &["bin"], Vec::new()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot archive symlink `bin/etc` -> `/etc`: absolute targets are not archived; make the link relative"
        );
        fs::remove_file(src.join("bin/etc")).unwrap();
        symlink("../../outside", src.join("bin/up")).unwrap();
        let err = pack(&src, &["bin"], Vec::new()).unwrap_err();
        assert!(matches!(err, Error::UnsafeSymlink { reason: POINTS_OUTSIDE, .. }), "{err}");
        fs::remove_file(src.join("bin/up")).unwrap();
        symlink("x/../../y", src.join("bin/sneaky")).unwrap();
        let err = pack(&src, &["bin"], Vec::new()).unwrap_err();
        assert!(matches!(err, Error::UnsafeSymlink { reason: PARENT_AFTER_NAME, .. }), "{err}");
    }

    #[test]
    fn resolve_paths_splits_present_and_missing() {
        let tmp = tempfile::tempdir().unwrap();
        sample_tree(tmp.path());
        let resolved =
            resolve_paths(tmp.path(), &["src", "src/deep/er", "./bin/run.sh", "nope/x", "bin//run.sh", "dangling"])
                .unwrap();
        let paths = |list: &[&str]| list.iter().map(PathBuf::from).collect::<Vec<_>>();
        assert_eq!(resolved.present, paths(&["bin/run.sh", "dangling", "src"]));
        assert_eq!(resolved.missing, paths(&["nope/x"]));
        assert!(matches!(resolve_paths(tmp.path(), &["a/../../b"]), Err(Error::InvalidPath { .. })));
        assert!(matches!(resolve_paths(tmp.path(), &["src/shortcut/still"]), Err(Error::InvalidPath { .. })));
        assert_eq!(resolve_paths(tmp.path(), &["."]).unwrap().present, vec![PathBuf::new()]);
    }

    /// An entry of a hand-made archive.
    enum Crafted<'a> {
        File(&'a [u8], &'a [u8]),
        Dir(&'a [u8]),
        Symlink(&'a [u8], &'a [u8]),
        HardLink(&'a [u8], &'a [u8]),
        Special(&'a [u8], tar::EntryType),
    }

    /// Builds a tar+zstd archive with the low-level header API, which (unlike `set_path`) lets
    /// any name through.
    fn craft(entries: &[Crafted<'_>]) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for entry in entries {
            let (name, kind, data, link): (&[u8], _, &[u8], Option<&[u8]>) = match entry {
                Crafted::File(name, data) => (name, tar::EntryType::Regular, data, None),
                Crafted::Dir(name) => (name, tar::EntryType::Directory, b"", None),
                Crafted::Symlink(name, target) => (name, tar::EntryType::Symlink, b"", Some(target)),
                Crafted::HardLink(name, target) => (name, tar::EntryType::Link, b"", Some(target)),
                Crafted::Special(name, kind) => (name, *kind, b"", None),
            };
            let mut header = tar::Header::new_gnu();
            header.as_old_mut().name[..name.len()].copy_from_slice(name);
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(if kind == tar::EntryType::Directory { 0o755 } else { 0o644 });
            header.set_mtime(1_600_000_000);
            if let Some(link) = link {
                header.set_link_name_literal(link).unwrap();
            }
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        zstd::encode_all(builder.into_inner().unwrap().as_slice(), 3).unwrap()
    }

    /// A temp dir holding `dest` and an `outside` directory with one file, to check that a
    /// refused archive writes nothing outside `dest` and leaves `dest` as it was.
    struct Sandbox {
        tmp: tempfile::TempDir,
    }

    impl Sandbox {
        fn new() -> Self {
            let tmp = tempfile::tempdir().unwrap();
            fs::create_dir(tmp.path().join("dest")).unwrap();
            write(&tmp.path().join("outside/passwd"), b"root:x:0:0\n", 0o644);
            Sandbox { tmp }
        }

        fn dest(&self) -> PathBuf {
            self.tmp.path().join("dest")
        }

        fn outside(&self) -> PathBuf {
            self.tmp.path().join("outside")
        }

        /// Unpacks `archive`, expects it refused with `expected`, and checks nothing moved.
        fn expect_rejected(&self, archive: &[u8], entry: &str, expected: Rejection) {
            let before = snapshot_with(self.tmp.path(), false);
            match unpack(archive, &self.dest()) {
                Err(Error::Rejected { entry: got_entry, reason }) => {
                    assert_eq!((got_entry.as_str(), reason), (entry, expected));
                }
                other => panic!("expected {expected:?} for `{entry}`, got {other:?}"),
            }
            assert_eq!(snapshot_with(self.tmp.path(), false), before, "the failed unpack changed the file system");
        }
    }

    #[test]
    fn refuses_absolute_paths() {
        let sandbox = Sandbox::new();
        let target = sandbox.outside().join("escape");
        let archive = craft(&[Crafted::File(b"ok.txt", b"fine"), Crafted::File(target.as_os_str().as_bytes(), b"x")]);
        sandbox.expect_rejected(&archive, &target.display().to_string(), Rejection::AbsolutePath);
        assert_eq!(
            unpack(archive.as_slice(), &sandbox.dest()).unwrap_err().to_string(),
            format!("archive entry `{}` refused: absolute path", target.display())
        );
    }

    #[test]
    fn refuses_parent_components() {
        let sandbox = Sandbox::new();
        for name in ["../escape", "a/../../escape", "a/b/../c", "./.."] {
            let archive = craft(&[Crafted::Dir(b"a/"), Crafted::File(name.as_bytes(), b"x")]);
            sandbox.expect_rejected(&archive, name, Rejection::ParentDir);
        }
        let archive = craft(&[Crafted::Dir(b"../up/")]);
        sandbox.expect_rejected(&archive, "../up/", Rejection::ParentDir);
    }

    #[test]
    fn refuses_a_symlink_out_and_never_writes_through_it() {
        let sandbox = Sandbox::new();
        // `evil -> <outside>` then `evil/passwd`: the link itself is refused, so the write that
        // would follow it never happens. (A temp dir stands in for /etc: these tests may run as root.)
        let outside = sandbox.outside();
        let archive = craft(&[
            Crafted::Symlink(b"evil", outside.as_os_str().as_bytes()),
            Crafted::File(b"evil/passwd", b"owned"),
        ]);
        sandbox.expect_rejected(&archive, "evil", Rejection::LinkOutside { target: outside.display().to_string() });
        let archive = craft(&[Crafted::Symlink(b"etc", b"/etc")]);
        sandbox.expect_rejected(&archive, "etc", Rejection::LinkOutside { target: "/etc".into() });

        let cases = [
            ("../..", Rejection::LinkOutside { target: "../..".into() }),
            ("../../outside/passwd", Rejection::LinkOutside { target: "../../outside/passwd".into() }),
            ("a/../../outside", Rejection::LinkParentAfterName { target: "a/../../outside".into() }),
            ("x/./../../../y", Rejection::LinkParentAfterName { target: "x/./../../../y".into() }),
        ];
        for (target, expected) in cases {
            let archive = craft(&[Crafted::Dir(b"sub/"), Crafted::Symlink(b"sub/up", target.as_bytes())]);
            sandbox.expect_rejected(&archive, "sub/up", expected);
        }
        // One level up from `sub` is still inside: `sub/up -> ../outside` is `dest/outside`.
        let archive = craft(&[Crafted::Dir(b"sub/"), Crafted::Symlink(b"sub/up", b"../outside")]);
        unpack(archive.as_slice(), &sandbox.dest()).unwrap();
        assert_eq!(fs::read_link(sandbox.dest().join("sub/up")).unwrap(), Path::new("../outside"));
        fs::remove_dir_all(sandbox.dest().join("sub")).unwrap();
        let archive = craft(&[Crafted::Symlink(b"up", b"../outside")]);
        sandbox.expect_rejected(&archive, "up", Rejection::LinkOutside { target: "../outside".into() });
    }

    #[test]
    fn refuses_symlink_chains_that_climb_out() {
        let sandbox = Sandbox::new();
        // `here -> .` is harmless alone, but `out -> here/..` would be the parent of dest.
        let archive = craft(&[Crafted::Symlink(b"here", b"."), Crafted::Symlink(b"out", b"here/..")]);
        sandbox.expect_rejected(&archive, "out", Rejection::LinkParentAfterName { target: "here/..".into() });
        // An existing link leading out is followed when checking a new one.
        symlink("..", sandbox.dest().join("up")).unwrap();
        let archive = craft(&[Crafted::Symlink(b"secret", b"up/outside/passwd")]);
        sandbox.expect_rejected(&archive, "secret", Rejection::LinkOutside { target: "up/outside/passwd".into() });
    }

    #[test]
    fn refuses_to_write_through_an_existing_symlink_out_of_dest() {
        let sandbox = Sandbox::new();
        symlink(sandbox.outside(), sandbox.dest().join("evil")).unwrap();
        symlink("../outside", sandbox.dest().join("rel")).unwrap();
        let archive = craft(&[Crafted::File(b"evil/passwd", b"owned")]);
        sandbox.expect_rejected(&archive, "evil/passwd", Rejection::ThroughSymlink { link: "evil".into() });
        let archive = craft(&[Crafted::File(b"fine", b"ok"), Crafted::File(b"rel/passwd", b"owned")]);
        sandbox.expect_rejected(&archive, "rel/passwd", Rejection::ThroughSymlink { link: "rel".into() });
        let archive = craft(&[Crafted::Dir(b"rel/newdir/")]);
        sandbox.expect_rejected(&archive, "rel/newdir/", Rejection::ThroughSymlink { link: "rel".into() });
        assert_eq!(fs::read(sandbox.outside().join("passwd")).unwrap(), b"root:x:0:0\n");
    }

    #[test]
    fn follows_symlinks_that_stay_inside() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        fs::create_dir_all(dest.join("real/deeper")).unwrap();
        symlink("real", dest.join("alias")).unwrap();
        let archive = craft(&[
            Crafted::File(b"alias/deeper/f", b"one"),
            Crafted::Symlink(b"alias/deeper/up", b"../../alias"),
            Crafted::File(b"alias/new/g", b"two"),
        ]);
        unpack(archive.as_slice(), &dest).unwrap();
        assert_eq!(fs::read(dest.join("real/deeper/f")).unwrap(), b"one");
        assert_eq!(fs::read(dest.join("real/new/g")).unwrap(), b"two");
        assert_eq!(fs::read_link(dest.join("real/deeper/up")).unwrap(), Path::new("../../alias"));
        // Replacing the existing symlink with a file never writes through it.
        let archive = craft(&[Crafted::File(b"alias", b"now a file")]);
        unpack(archive.as_slice(), &dest).unwrap();
        assert_eq!(fs::read(dest.join("alias")).unwrap(), b"now a file");
        assert!(dest.join("real/deeper/f").is_file());
    }

    #[test]
    fn refuses_hard_links_out_of_dest() {
        let sandbox = Sandbox::new();
        let archive = craft(&[Crafted::HardLink(b"passwd", b"/etc/passwd")]);
        sandbox.expect_rejected(&archive, "passwd", Rejection::LinkOutside { target: "/etc/passwd".into() });
        let archive = craft(&[Crafted::HardLink(b"passwd", b"../outside/passwd")]);
        sandbox.expect_rejected(&archive, "passwd", Rejection::LinkOutside { target: "../outside/passwd".into() });
        // Through a symlink that leads out.
        symlink(sandbox.outside(), sandbox.dest().join("evil")).unwrap();
        let archive = craft(&[Crafted::HardLink(b"passwd", b"evil/passwd")]);
        sandbox.expect_rejected(&archive, "passwd", Rejection::LinkOutside { target: "evil/passwd".into() });
        // To a symlink (which would point elsewhere from its new place) or to nothing.
        let archive =
            craft(&[Crafted::Dir(b"a/"), Crafted::Symlink(b"a/l", b"../x"), Crafted::HardLink(b"l2", b"a/l")]);
        sandbox.expect_rejected(&archive, "l2", Rejection::HardLinkTarget { target: "a/l".into() });
        let archive = craft(&[Crafted::HardLink(b"l3", b"missing")]);
        sandbox.expect_rejected(&archive, "l3", Rejection::HardLinkTarget { target: "missing".into() });
    }

    #[test]
    fn hard_links_inside_dest_work_and_are_never_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("dest");
        let archive = craft(&[
            Crafted::File(b"a", b"shared"),
            Crafted::HardLink(b"b", b"a"),
            // Re-extracting `a` must not change `b` (that would be writing through a link).
            Crafted::File(b"a", b"new"),
        ]);
        let stats = unpack(archive.as_slice(), &dest).unwrap();
        assert_eq!((stats.files, stats.hard_links), (2, 1));
        assert_eq!(fs::read(dest.join("a")).unwrap(), b"new");
        assert_eq!(fs::read(dest.join("b")).unwrap(), b"shared");
    }

    #[test]
    fn refuses_devices_and_fifos() {
        let sandbox = Sandbox::new();
        for (kind, name) in [
            (tar::EntryType::Char, "character device"),
            (tar::EntryType::Block, "block device"),
            (tar::EntryType::Fifo, "fifo"),
        ] {
            let archive = craft(&[Crafted::File(b"before", b"x"), Crafted::Special(b"dev", kind)]);
            sandbox.expect_rejected(&archive, "dev", Rejection::EntryType { kind: name });
        }
    }

    #[test]
    fn refuses_symlink_loops_and_type_changes() {
        let sandbox = Sandbox::new();
        let archive =
            craft(&[Crafted::Symlink(b"a", b"b"), Crafted::Symlink(b"b", b"a"), Crafted::File(b"a/x", b"loop")]);
        sandbox.expect_rejected(&archive, "a/x", Rejection::SymlinkLoop);
        let archive = craft(&[Crafted::Dir(b"d/"), Crafted::File(b"d/f", b"x"), Crafted::File(b"d", b"x")]);
        sandbox.expect_rejected(&archive, "d", Rejection::ReplacesDirectory { path: "d".into() });
        let archive = craft(&[Crafted::Dir(b"d/"), Crafted::Symlink(b"d", b"elsewhere")]);
        sandbox.expect_rejected(&archive, "d", Rejection::ReplacesDirectory { path: "d".into() });
        let archive = craft(&[Crafted::File(b"f", b"x"), Crafted::Dir(b"f/")]);
        sandbox.expect_rejected(&archive, "f/", Rejection::NotADirectory { path: "f".into() });
        let archive = craft(&[Crafted::File(b"f", b"x"), Crafted::File(b"f/g", b"x")]);
        sandbox.expect_rejected(&archive, "f/g", Rejection::NotADirectory { path: "f".into() });
    }

    #[test]
    fn a_refused_archive_restores_what_it_replaced() {
        let sandbox = Sandbox::new();
        let dest = sandbox.dest();
        write(&dest.join("keep.txt"), b"old", 0o644);
        symlink("keep.txt", dest.join("link")).unwrap();
        fs::create_dir(dest.join("dir")).unwrap();
        let archive = craft(&[
            Crafted::File(b"keep.txt", b"new"),
            Crafted::File(b"link", b"was a link"),
            Crafted::Dir(b"dir/"),
            Crafted::File(b"dir/new.txt", b"new"),
            Crafted::File(b"fresh/deep/file", b"new"),
            Crafted::File(b"../escape", b"x"),
        ]);
        // `expect_rejected` compares the whole sandbox before and after.
        sandbox.expect_rejected(&archive, "../escape", Rejection::ParentDir);
    }

    #[test]
    fn a_missing_dest_is_created_and_removed_again_on_failure() {
        let tmp = tempfile::tempdir().unwrap();
        let dest = tmp.path().join("new/dest");
        let archive = craft(&[Crafted::File(b"a", b"x"), Crafted::File(b"/abs", b"x")]);
        assert!(matches!(unpack(archive.as_slice(), &dest), Err(Error::Rejected { .. })));
        assert!(!dest.exists());
    }

    #[test]
    fn truncated_and_corrupt_streams_are_errors_and_roll_back() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        let (archive, _) = pack_to_vec(&src, &[""]);
        for cut in [archive.len() - 1, archive.len() / 2, 100] {
            let dest = tmp.path().join(format!("cut-{cut}"));
            let err = unpack(&archive[..cut], &dest).unwrap_err();
            assert!(matches!(err, Error::ReadArchive(_)), "cut at {cut}: {err:?}");
            assert!(!dest.exists(), "cut at {cut}: dest left behind");
        }
        let mut corrupt = archive.clone();
        let middle = corrupt.len() / 2;
        corrupt[middle] ^= 0xff;
        let dest = tmp.path().join("corrupt");
        assert!(matches!(unpack(corrupt.as_slice(), &dest), Err(Error::ReadArchive(_))));
        assert!(!dest.exists());
        let err = unpack(&b"not an archive at all"[..], &dest).unwrap_err();
        assert!(matches!(err, Error::ReadArchive(_)), "{err:?}");
    }

    /// GNU tar with zstd, if this machine has both.
    fn gnu_tar() -> Option<()> {
        let version = Command::new("tar").arg("--version").output().ok()?;
        let zstd = Command::new("zstd").arg("--version").output().ok()?;
        (String::from_utf8_lossy(&version.stdout).contains("GNU tar") && zstd.status.success()).then_some(())
    }

    #[test]
    fn interoperates_with_gnu_tar() {
        if gnu_tar().is_none() {
            eprintln!("skipped: GNU tar with zstd not found");
            return;
        }
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        // Ours -> GNU tar.
        let (archive, _) = pack_to_vec(&src, &[""]);
        fs::write(tmp.path().join("ours.tar.zst"), &archive).unwrap();
        let by_tar = tmp.path().join("by-tar");
        fs::create_dir(&by_tar).unwrap();
        let status = Command::new("tar")
            .args(["--zstd", "-xpf"])
            .arg(tmp.path().join("ours.tar.zst"))
            .arg("-C")
            .arg(&by_tar)
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(snapshot(&by_tar), snapshot(&src));
        // GNU tar -> ours.
        let theirs = tmp.path().join("theirs.tar.zst");
        let status =
            Command::new("tar").args(["--zstd", "-cf"]).arg(&theirs).arg("-C").arg(&src).arg(".").status().unwrap();
        assert!(status.success());
        let ours = tmp.path().join("ours");
        unpack(File::open(&theirs).unwrap(), &ours).unwrap();
        assert_eq!(snapshot(&ours), snapshot(&src));
    }

    #[test]
    fn multithreaded_compression_round_trips() {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        sample_tree(&src);
        for workers in [0, 2] {
            let mut archive = Vec::new();
            pack_with(&src, &[""], &mut archive, &PackOptions { level: 1, workers }).unwrap();
            let dest = tmp.path().join(format!("dest-{workers}"));
            unpack(archive.as_slice(), &dest).unwrap();
            assert_eq!(snapshot(&dest), snapshot(&src));
        }
    }
}
