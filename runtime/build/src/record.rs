//! What a build leaves on disk ([`Recorder`]), and how it is read back ([`BuildRecord`], e.g.
//! by `monkeyci build logs`).
//!
//! A build's directory (`<cache>/builds/<build id>/`) holds `build.json` (what the build is of:
//! the repository, ref and commit, when it started and how it ended, see [`RecordInfo`]),
//! `events.jsonl` (every event, in order), `logs/<job>.log` (each job's output lines, raw) and
//! `jobs/<job>-<attempt>/`
//! (container jobs' own directories, written by `monkeyci-jobs`: `logs/<i>.out|.err` per
//! command, the job's own `events.jsonl` and its `script/` lines). What a user reads later is
//! kept, not workspaces: a job's workspace copy (`work/`) and scratch (`tmp/`) are removed once
//! the job ended, and [`prune`](crate::prune) removes those a crashed run left
//! (`workspaces`). Writing is best-effort: a full disk warns once on stderr and never fails
//! the build. Removing old records is [`prune`](crate::prune)'s.
//!
//! Records written before `build.json` existed are still read: they only cannot say their
//! repository ([`BuildRecord::info`] is `None`), and [`summaries`] folds their events for how
//! they ended.
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
//! assert_eq!(record.job_events("test")?.len(), 3);
//! assert_eq!(std::fs::read_to_string(record.dir.join("logs/test.log"))?, "ok\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};

use monkeyci_protocol::{BuildInfo, BuildStatus, Event, EventKind, OutputStream};
use serde::{Deserialize, Serialize};

use crate::state::BuildState;

/// The file of a record that says what the build is of ([`RecordInfo`]).
const INFO_FILE: &str = "build.json";

/// What a record says of its build besides its events (`build.json`): whose repository, which
/// ref and commit, when it started and, once it did, how it ended. Written when the build
/// starts and again when it ends, so listing builds never folds their events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordInfo {
    /// The repository built: its checkout directory, as the build saw it (canonical).
    pub repository: PathBuf,
    /// The full ref built (`refs/heads/main`, `refs/tags/v1`), when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// The commit built, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When the build started, in milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// How the build ended (`script/end`), once it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended: Option<Ended>,
}

/// How and when a recorded build ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    /// How it ended.
    pub status: BuildStatus,
    /// When, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl RecordInfo {
    /// What the record of `build` says of it before it ends.
    pub fn of(build: &BuildInfo) -> RecordInfo {
        RecordInfo {
            repository: build.checkout_dir.clone(),
            git_ref: build.git.git_ref.clone(),
            commit: build.git.commit_id.clone(),
            started_ms: build.started_at_ms,
            ended: None,
        }
    }

    /// The record's `build.json` in `dir`; `None` when it has none (written before there was
    /// one) or it cannot be read.
    pub fn read(dir: &Path) -> Option<RecordInfo> {
        let text = std::fs::read(dir.join(INFO_FILE)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    /// Writes `build.json` in `dir` whole (a temporary file renamed into place), so a reader
    /// never sees half of it.
    fn write(&self, dir: &Path) -> std::io::Result<()> {
        let temp = dir.join(format!("{INFO_FILE}.partial"));
        std::fs::write(&temp, serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?)?;
        std::fs::rename(&temp, dir.join(INFO_FILE))
    }
}

/// Writes a build's record as its events arrive. It holds the record's lock while it lives,
/// so the build is known to run (and is never pruned).
pub struct Recorder {
    _lock: File,
    dir: PathBuf,
    events: Option<BufWriter<File>>,
    logs: HashMap<String, BufWriter<File>>,
    info: Option<RecordInfo>,
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
        Ok(Recorder {
            _lock: lock,
            dir: dir.to_owned(),
            events: Some(events),
            logs: HashMap::new(),
            info: None,
            warned: false,
        })
    }

    /// Notes what the build is of (`build.json`: repository, ref, commit, start), so that its
    /// record can be listed and found by repository; [`record`](Recorder::record) adds how it
    /// ended.
    pub fn note_build(&mut self, build: &BuildInfo) {
        let info = RecordInfo::of(build);
        let result = info.write(&self.dir);
        self.info = Some(info);
        self.warn_on(result);
    }

    /// Warns once (on stderr) that the record cannot be written.
    fn warn_on(&mut self, result: std::io::Result<()>) {
        if let Err(err) = result
            && !std::mem::replace(&mut self.warned, true)
        {
            eprintln!("warning: cannot write the build record in {}: {err}", self.dir.display());
        }
    }

    /// Notes the pipeline binary this build runs (and relaunches when it resumes), so that
    /// pruning keeps it while the build runs.
    pub fn note_binary(&mut self, binary: &Path) {
        let result = std::fs::write(self.dir.join("binary"), binary.as_os_str().as_encoded_bytes());
        self.warn_on(result);
    }

    /// Appends `event` to `events.jsonl`, and a job's output line to its log; the build's end
    /// goes to `build.json` too.
    pub fn record(&mut self, event: &Event) {
        let mut result = self.append_event(event);
        match &event.kind {
            EventKind::JobOutput { job_id, stream, line } => {
                result = result.and_then(|()| self.append_log(job_id, *stream, line));
            }
            EventKind::ScriptEnd { status, .. } => {
                if let Some(info) = &mut self.info {
                    info.ended = Some(Ended { status: *status, at_ms: event.time });
                    let written = info.write(&self.dir);
                    result = result.and(written);
                }
            }
            _ => {}
        }
        self.warn_on(result);
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
            self.warn_on(result);
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

/// One recorded build as a list shows it, newest first ([`summaries`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordSummary {
    /// The build's id.
    pub id: String,
    /// What its `build.json` says; `None` for a record written before there was one.
    pub info: Option<RecordInfo>,
    /// When it started (for an older record: when its directory last changed), in
    /// milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// How it ended, if it did.
    pub ended: Option<Ended>,
    /// Whether it runs now (its record is locked).
    pub running: bool,
}

impl RecordSummary {
    /// How long it ran, once it ended.
    pub fn duration_ms(&self) -> Option<u64> {
        self.ended.map(|ended| ended.at_ms.saturating_sub(self.started_ms))
    }
}

/// Every build recorded in `builds_dir`, newest first. Records with a `build.json` are read
/// from it alone; older ones, and builds that did not end (killed), from their events.
pub fn summaries(builds_dir: &Path) -> Vec<RecordSummary> {
    let mut all: Vec<RecordSummary> = builds(builds_dir)
        .into_iter()
        .map(|id| {
            let dir = builds_dir.join(&id);
            let info = RecordInfo::read(&dir);
            let running = is_running(&dir);
            let (mut started_ms, mut ended) = match &info {
                Some(info) => (Some(info.started_ms), info.ended),
                None => (None, None),
            };
            if ended.is_none() && !running {
                let (first, end) = first_and_end(&dir);
                started_ms = started_ms.or(first);
                ended = end;
            }
            let started_ms = started_ms.unwrap_or_else(|| modified_ms(&dir));
            RecordSummary { id, info, started_ms, ended, running }
        })
        .collect();
    all.sort_by(|a, b| (b.started_ms, &b.id).cmp(&(a.started_ms, &a.id)));
    all
}

/// The time of the first event of the record in `dir`, and how the build ended, from its
/// events (for records without `build.json`, or whose build did not end).
fn first_and_end(dir: &Path) -> (Option<u64>, Option<Ended>) {
    let Ok(file) = File::open(dir.join("events.jsonl")) else { return (None, None) };
    let (mut first, mut end) = (None, None);
    for line in BufReader::new(file).lines() {
        let Ok(line) = line else { break };
        let Ok(event) = serde_json::from_str::<Event>(&line) else { continue };
        first.get_or_insert(event.time);
        if let EventKind::ScriptEnd { status, .. } = event.kind {
            end = Some(Ended { status, at_ms: event.time });
        }
    }
    (first, end)
}

/// When `dir` last changed, in milliseconds since the Unix epoch (0 when unknown).
fn modified_ms(dir: &Path) -> u64 {
    let modified = std::fs::metadata(dir).and_then(|m| m.modified()).unwrap_or(std::time::UNIX_EPOCH);
    let since = modified.duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    u64::try_from(since.as_millis()).unwrap_or(u64::MAX)
}

/// One recorded build, read back.
pub struct BuildRecord {
    /// The build's id.
    pub id: String,
    /// Its record's directory.
    pub dir: PathBuf,
    /// What its `build.json` says; `None` for a record written before there was one.
    pub info: Option<RecordInfo>,
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
        let mut state = BuildState::default();
        read_events(&dir.join("events.jsonl"), |event| state.apply(&event))?;
        let info = RecordInfo::read(&dir);
        Ok(BuildRecord { id, dir, info, state })
    }

    /// The recorded events of `job`, in order (all its attempts), after the `script/start`
    /// events (what the plan says of it): what a log of it shows, with the same markers as the
    /// live view. Its raw output is also in `logs/<job>.log`.
    pub fn job_events(&self, job: &str) -> Result<Vec<Event>, Error> {
        if self.state.job(job).is_none() {
            let jobs = self.state.jobs().iter().map(|j| j.id.clone()).collect();
            return Err(Error::UnknownJob { build: self.id.clone(), job: job.to_owned(), jobs });
        }
        let mut events = Vec::new();
        read_events(&self.dir.join("events.jsonl"), |event| {
            if event.kind.job_id() == Some(job) || matches!(event.kind, EventKind::ScriptStart { .. }) {
                events.push(event);
            }
        })?;
        Ok(events)
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

/// Hands each event of the events file `path` to `each`, in order. A line that does not parse
/// is left out: a record cut short by a crash still shows what it has.
fn read_events(path: &Path, mut each: impl FnMut(Event)) -> Result<(), Error> {
    let file = File::open(path).map_err(|source| Error::Read { path: path.to_owned(), source })?;
    for line in BufReader::new(file).lines() {
        let line = line.map_err(|source| Error::Read { path: path.to_owned(), source })?;
        if let Ok(event) = serde_json::from_str::<Event>(&line) {
            each(event);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn info(repo: &str, started_ms: u64) -> BuildInfo {
        BuildInfo {
            build_id: "ignored".into(),
            checkout_dir: PathBuf::from(repo),
            git: monkeyci_protocol::GitInfo {
                git_ref: Some("refs/heads/main".into()),
                commit_id: Some("abc123".into()),
                ..Default::default()
            },
            source: Default::default(),
            started_at_ms: started_ms,
            vars: Default::default(),
            trigger: None,
        }
    }

    /// Issue 10: a record did not know its repository, so `build logs` showed the newest build
    /// of any. `build.json` says it, and how the build ended; older records still list, from
    /// their events.
    #[test]
    fn a_record_says_its_repository_and_how_it_ended_and_older_ones_still_list() {
        let cache = tempfile::tempdir().unwrap();
        let builds = cache.path().join("builds");
        let mut recorder = Recorder::create(&builds.join("b-new")).unwrap();
        recorder.note_build(&info("/src/app", 5_000));
        let running = summaries(&builds);
        assert_eq!((running.len(), running[0].running, running[0].ended), (1, true, None));
        recorder
            .record(&Event { time: 7_500, kind: EventKind::ScriptEnd { status: BuildStatus::Failure, message: None } });
        recorder.finish();
        drop(recorder);

        // Written before build.json existed, earlier.
        let old = builds.join("b-old");
        std::fs::create_dir_all(&old).unwrap();
        let events = [
            Event { time: 1_000, kind: EventKind::JobStart { job_id: "t".into(), attempt: 1 } },
            Event { time: 3_000, kind: EventKind::ScriptEnd { status: BuildStatus::Success, message: None } },
        ];
        let lines: Vec<String> = events.iter().map(|e| serde_json::to_string(e).unwrap()).collect();
        std::fs::write(old.join("events.jsonl"), lines.join("\n") + "\n").unwrap();

        let listed = summaries(&builds);
        let ids: Vec<&str> = listed.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["b-new", "b-old"], "newest first");
        let new = &listed[0];
        let about = new.info.as_ref().unwrap();
        assert_eq!(about.repository, Path::new("/src/app"));
        assert_eq!((about.git_ref.as_deref(), about.commit.as_deref()), (Some("refs/heads/main"), Some("abc123")));
        assert_eq!(
            (new.running, new.ended.map(|e| e.status), new.duration_ms()),
            (false, Some(BuildStatus::Failure), Some(2_500))
        );
        let old = &listed[1];
        assert_eq!((old.info.is_none(), old.started_ms, old.duration_ms()), (true, 1_000, Some(2_000)));
        assert_eq!(old.ended.map(|e| e.status), Some(BuildStatus::Success));

        let record = BuildRecord::open(&builds, Some("b-old")).unwrap();
        assert!(record.info.is_none());
        assert_eq!(record.job_events("t").unwrap(), events[..1]);
        assert!(matches!(record.job_events("nope"), Err(Error::UnknownJob { .. })));
        assert_eq!(BuildRecord::open(&builds, Some("b-new")).unwrap().info.unwrap().repository, Path::new("/src/app"));
    }

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
