//! What a build leaves on disk ([`Recorder`]), and how it is read back ([`BuildRecord`], e.g.
//! by `monkeyci build logs`).
//!
//! A build's directory (`<cache>/builds/<build id>/`) holds `events.jsonl` (every event, in
//! order), `logs/<job>.log` (each job's output lines, as shown live) and `jobs/<job>-<attempt>/`
//! (container jobs' own directories, written by `monkeyci-jobs`: `logs/<i>.out|.err` per
//! command, the job's own `events.jsonl` and its `script/` lines). What a user reads later is
//! kept, not workspaces: a job's workspace copy (`work/`) and scratch (`tmp/`) are removed once
//! the job ended, and [`prune`](crate::prune) removes those a crashed run left
//! (`workspaces`). Writing is best-effort: a full disk warns once on stderr and never fails
//! the build. Removing old records is [`prune`](crate::prune)'s.
//!
//! ```
//! use monkeyci_build::record::{BuildRecord, Recorder};
//! use monkeyci_protocol::{BuildStatus, Event, EventKind, JobStatus, OutputStream};
//!
//! let cache = tempfile::tempdir()?;
//! let builds = cache.path().join("builds");
//! let mut recorder = Recorder::create(&builds.join("b-1"))?;
//! for kind in [
//!     EventKind::JobStart { job_id: "test".into(), attempt: 1 },
//!     EventKind::JobOutput { job_id: "test".into(), stream: OutputStream::Stdout, line: "ok".into() },
//!     EventKind::JobEnd { job_id: "test".into(), attempt: 1, status: JobStatus::Success, duration_ms: 5, message: None },
//!     EventKind::ScriptEnd { status: BuildStatus::Success, message: None },
//! ] {
//!     recorder.record(&Event::now(kind));
//! }
//! recorder.finish();
//! drop(recorder);
//!
//! // No id: the newest build.
//! let record = BuildRecord::open(&builds, None)?;
//! assert_eq!(record.id, "b-1");
//! assert_eq!(record.state.job("test").map(|job| job.status), Some(JobStatus::Success));
//! let mut log = Vec::new();
//! record.write_job_log("test", &mut log)?;
//! assert_eq!(String::from_utf8(log)?, "ok\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use monkeyci_protocol::{Event, EventKind, OutputStream};

use crate::state::BuildState;

/// Writes a build's record as its events arrive. It holds the record's lock while it lives,
/// so the build is known to run (and is never pruned).
pub struct Recorder {
    _lock: File,
    dir: PathBuf,
    events: Option<BufWriter<File>>,
    logs: HashMap<String, BufWriter<File>>,
    warned: bool,
}

impl Recorder {
    /// Starts the record of a build in `dir` (`<builds>/<build id>`), creating `<builds>` for
    /// its owner only; fails if another recorder holds the record.
    pub fn create(dir: &Path) -> std::io::Result<Recorder> {
        // Only the owner reads build records: raw command logs hold secret values until a job
        // ends and they are masked.
        if let Some(builds) = dir.parent()
            && !builds.exists()
        {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(builds)?;
        }
        std::fs::create_dir_all(dir.join("logs"))?;
        let lock = lock(dir)?;
        let events = BufWriter::new(File::create(dir.join("events.jsonl"))?);
        Ok(Recorder { _lock: lock, dir: dir.to_owned(), events: Some(events), logs: HashMap::new(), warned: false })
    }

    /// Notes the pipeline binary this build runs (and relaunches when it resumes), so that
    /// pruning keeps it while the build runs.
    pub fn note_binary(&mut self, binary: &Path) {
        if let Err(err) = std::fs::write(self.dir.join("binary"), binary.as_os_str().as_encoded_bytes())
            && !std::mem::replace(&mut self.warned, true)
        {
            eprintln!("warning: cannot write the build record in {}: {err}", self.dir.display());
        }
    }

    /// Appends `event` to `events.jsonl`, and a job's output line to its log.
    pub fn record(&mut self, event: &Event) {
        let mut result = self.append_event(event);
        if let EventKind::JobOutput { job_id, stream, line } = &event.kind {
            result = result.and_then(|()| self.append_log(job_id, *stream, line));
        }
        if let Err(err) = result
            && !std::mem::replace(&mut self.warned, true)
        {
            eprintln!("warning: cannot write the build record in {}: {err}", self.dir.display());
        }
    }

    fn append_event(&mut self, event: &Event) -> std::io::Result<()> {
        if let Some(events) = &mut self.events {
            serde_json::to_writer(&mut *events, event)?;
            events.write_all(b"\n")?;
            // The record is followed while the build runs (`monkeyci build logs`, tests).
            events.flush()?;
        }
        Ok(())
    }

    fn append_log(&mut self, job_id: &str, stream: OutputStream, line: &str) -> std::io::Result<()> {
        // The build API refuses events with invalid ids; this keeps the rule where the file
        // name is made, too.
        monkeyci_protocol::id::check(job_id).map_err(std::io::Error::other)?;
        let log = match self.logs.get_mut(job_id) {
            Some(log) => log,
            None => {
                let file = File::create(self.dir.join("logs").join(format!("{job_id}.log")))?;
                self.logs.entry(job_id.to_owned()).or_insert(BufWriter::new(file))
            }
        };
        let marker = if stream == OutputStream::Stderr { "! " } else { "" };
        writeln!(log, "{marker}{line}")
    }

    /// Writes out everything buffered.
    pub fn finish(&mut self) {
        let results = self.events.iter_mut().map(|w| w.flush()).chain(self.logs.values_mut().map(|w| w.flush()));
        for result in results.collect::<Vec<_>>() {
            if let Err(err) = result
                && !std::mem::replace(&mut self.warned, true)
            {
                eprintln!("warning: cannot write the build record in {}: {err}", self.dir.display());
            }
        }
    }
}

/// Why a record cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No build is recorded; the directory of build records.
    #[error("no builds recorded in {}", .0.display())]
    NoBuilds(PathBuf),
    /// No build has the id asked for.
    #[error("no build {id:?} in {}; recent builds: {}", dir.display(), recent.join(", "))]
    UnknownBuild {
        /// The id asked for.
        id: String,
        /// The directory of build records.
        dir: PathBuf,
        /// The newest builds' ids, newest first (at most 5).
        recent: Vec<String>,
    },
    /// The build has no job with the id asked for.
    #[error("build {build} has no job {job:?}; its jobs are: {}", jobs.join(", "))]
    UnknownJob {
        /// The build's id.
        build: String,
        /// The job id asked for.
        job: String,
        /// The build's jobs, in plan order.
        jobs: Vec<String>,
    },
    /// A file of the record cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
}

/// Takes the lock of the build record in `dir` (`dir/lock`, an exclusive `flock`), released
/// when the file is dropped or the process ends, however it ends.
pub(crate) fn lock(dir: &Path) -> std::io::Result<File> {
    let file = File::options().create(true).truncate(false).write(true).open(dir.join("lock"))?;
    file.try_lock()
        .map_err(|err| std::io::Error::other(format!("the build record {} is in use: {err}", dir.display())))?;
    Ok(file)
}

/// Whether the build recorded in `dir` is running: its lock is held.
pub(crate) fn is_running(dir: &Path) -> bool {
    let Ok(file) = File::options().write(true).open(dir.join("lock")) else { return false };
    file.try_lock().is_err()
}

/// The pipeline binaries of the builds running now (see [`Recorder::note_binary`]).
pub(crate) fn binaries_in_use(builds_dir: &Path) -> Vec<PathBuf> {
    builds(builds_dir)
        .into_iter()
        .map(|id| builds_dir.join(id))
        .filter(|dir| is_running(dir))
        .filter_map(|dir| std::fs::read(dir.join("binary")).ok())
        .map(|bytes| PathBuf::from(String::from_utf8_lossy(&bytes).into_owned()))
        .collect()
}

/// The workspace copies and scratch directories (`jobs/<job>-<attempt>/work`, `.../tmp`) in the
/// record in `dir`: a job's are removed when it ends, so these are a crashed run's (or of a
/// job that runs, in a running build's record).
pub(crate) fn workspaces(dir: &Path) -> Vec<PathBuf> {
    let Ok(jobs) = std::fs::read_dir(dir.join("jobs")) else { return Vec::new() };
    let mut found: Vec<PathBuf> = jobs
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .flat_map(|e| ["work", "tmp"].map(|name| e.path().join(name)))
        .filter(|path| std::fs::symlink_metadata(path).is_ok())
        .collect();
    found.sort();
    found
}

/// The recorded builds in `builds_dir`, oldest first.
pub fn builds(builds_dir: &Path) -> Vec<String> {
    let mut ids: Vec<(std::time::SystemTime, String)> = std::fs::read_dir(builds_dir)
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().join("events.jsonl").is_file())
        .map(|e| {
            let modified = e.metadata().and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
            (modified, e.file_name().to_string_lossy().into_owned())
        })
        .collect();
    ids.sort();
    ids.into_iter().map(|(_, id)| id).collect()
}

/// One recorded build, read back.
pub struct BuildRecord {
    /// The build's id.
    pub id: String,
    /// Its record's directory.
    pub dir: PathBuf,
    /// The build, folded from its recorded events.
    pub state: BuildState,
}

impl BuildRecord {
    /// The build `id` in `builds_dir`, or the newest one.
    pub fn open(builds_dir: &Path, id: Option<&str>) -> Result<BuildRecord, Error> {
        let all = builds(builds_dir);
        let id = match id {
            Some(id) if all.iter().any(|b| b == id) => id.to_owned(),
            Some(id) => {
                let recent = all.iter().rev().take(5).cloned().collect();
                return Err(Error::UnknownBuild { id: id.to_owned(), dir: builds_dir.to_owned(), recent });
            }
            None => all.last().cloned().ok_or_else(|| Error::NoBuilds(builds_dir.to_owned()))?,
        };
        let dir = builds_dir.join(&id);
        let path = dir.join("events.jsonl");
        let file = File::open(&path).map_err(|source| Error::Read { path: path.clone(), source })?;
        let mut state = BuildState::default();
        for line in BufReader::new(file).lines() {
            let line = line.map_err(|source| Error::Read { path: path.clone(), source })?;
            // A record cut short by a crash still shows what it has.
            let Ok(event) = serde_json::from_str::<Event>(&line) else { continue };
            state.apply(&event);
        }
        Ok(BuildRecord { id, dir, state })
    }

    /// Writes the output of `job`: its log, and for a container job each command's own
    /// stdout and stderr files.
    pub fn write_job_log(&self, job: &str, out: &mut impl Write) -> Result<(), Error> {
        let Some(state) = self.state.job(job) else {
            let jobs = self.state.jobs().iter().map(|j| j.id.clone()).collect();
            return Err(Error::UnknownJob { build: self.id.clone(), job: job.to_owned(), jobs });
        };
        let log = self.dir.join("logs").join(format!("{job}.log"));
        match std::fs::read_to_string(&log) {
            Ok(text) => {
                let _ = write!(out, "{text}");
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let _ = writeln!(out, "(job {job} printed nothing)");
            }
            Err(source) => return Err(Error::Read { path: log, source }),
        }
        if !state.commands.is_empty() {
            let _ = writeln!(out, "\ncommand logs of the last attempt:");
            for command in &state.commands {
                let exit = command.exit.map_or_else(|| "did not end".to_owned(), |code| format!("exit {code}"));
                let _ = writeln!(out, "  command {} ({exit}): {}", command.index, command.line);
                for (suffix, name) in [("out", "stdout"), ("err", "stderr")] {
                    if let Some(path) = self.command_log(job, command.index, suffix) {
                        let _ = writeln!(out, "    {name}: {}", path.display());
                    }
                }
            }
        }
        Ok(())
    }

    /// The file of command `index`'s output of the job's last attempt, if there is one.
    pub fn command_log(&self, job: &str, index: usize, suffix: &str) -> Option<PathBuf> {
        let jobs = std::fs::read_dir(self.dir.join("jobs")).ok()?;
        let mut attempts: Vec<(u32, PathBuf)> = jobs
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let attempt = name.strip_prefix(job)?.strip_prefix('-')?.parse().ok()?;
                Some((attempt, e.path()))
            })
            .collect();
        attempts.sort();
        let path = attempts.last()?.1.join("logs").join(format!("{index}.{suffix}"));
        path.is_file().then_some(path)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn a_new_record_is_private_and_locked_while_it_is_written() {
        let cache = tempfile::tempdir().unwrap();
        let dir = cache.path().join("builds").join("b-1");
        let recorder = Recorder::create(&dir).unwrap();
        let mode = std::fs::metadata(cache.path().join("builds")).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "only the owner may read build records");
        assert!(is_running(&dir));
        assert!(Recorder::create(&dir).is_err(), "one build writes a record");
        drop(recorder);
        assert!(!is_running(&dir));
    }
}
