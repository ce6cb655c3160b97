//! `monkeyci build list|logs|artifacts`: read back the builds recorded in the cache
//! (`monkeyci_build::record`) and the artifacts they stored (`monkeyci_store::files`).
//!
//! Each reads the builds of one repository: the one it is run in, or given (`DIR`, `--repo`),
//! found as the nearest of the recorded repositories that contains that directory; `--all`
//! reads every repository's. A build of another repository asked for by id is refused, naming
//! it; a record written before records said their repository is read when asked for by id,
//! and listed only with `--all`. Reading never changes a record.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use monkeyci_build::record::{self, BuildRecord, RecordInfo, RecordSummary};
use monkeyci_store::LocalBlobStore;
use monkeyci_store::files as stored;

use crate::args::{ArtifactsArgs, ListArgs, LogsArgs, RecordScope};
use crate::outcome::Outcome;

/// The recorded builds a command may read: those of `repository`, or all of them.
struct Scope {
    /// The directory asked about (canonical), for messages.
    asked: PathBuf,
    /// The repository whose builds are read; `None` when `--all` is given, or no recorded
    /// repository contains `asked`.
    repository: Option<PathBuf>,
    all: bool,
    /// Every recorded build, newest first.
    builds: Vec<RecordSummary>,
}

impl Scope {
    fn new(builds_dir: &Path, dir: &Path, all: bool) -> anyhow::Result<Scope> {
        let asked = dir.canonicalize().with_context(|| format!("cannot read {}", dir.display()))?;
        let builds = record::summaries(builds_dir);
        // The nearest recorded repository containing `asked`: a build run from a
        // subdirectory, or `build logs` run in one, is of the repository around it.
        let repository = builds
            .iter()
            .filter_map(|b| b.info.as_ref().map(|info| &info.repository))
            .filter(|repo| asked.starts_with(repo))
            .max_by_key(|repo| repo.components().count())
            .cloned();
        Ok(Scope { asked, repository, all, builds })
    }

    fn of_scope(&self, build: &RecordSummary) -> bool {
        self.all || repository_of(build).is_some_and(|repo| Some(repo) == self.repository.as_deref())
    }

    /// The builds in scope, newest first.
    fn listed(&self) -> impl Iterator<Item = &RecordSummary> {
        self.builds.iter().filter(|b| self.of_scope(b))
    }

    /// Whether `id` is a recorded build (of any repository).
    fn is_build(&self, id: &str) -> bool {
        self.builds.iter().any(|b| b.id == id)
    }

    /// The build `id` (it must be in scope), or the newest in scope.
    fn pick(&self, builds_dir: &Path, id: Option<&str>) -> anyhow::Result<BuildRecord> {
        let id = match id {
            Some(id) => {
                if let Some(build) = self.builds.iter().find(|b| b.id == id)
                    && !self.all
                    && let Some(theirs) = repository_of(build)
                    && Some(theirs) != self.repository.as_deref()
                {
                    bail!(
                        "build {id} is a build of {}, not of {}; add --all to read the builds of every repository",
                        theirs.display(),
                        self.here().display()
                    );
                }
                Some(id)
            }
            None => match self.listed().next() {
                Some(newest) => Some(newest.id.as_str()),
                None if self.all => None,
                None => bail!(
                    "no build of {} is recorded in {}; `monkeyci build list --all` lists every repository's",
                    self.here().display(),
                    builds_dir.display()
                ),
            },
        };
        Ok(BuildRecord::open(builds_dir, id)?)
    }

    /// The repository read, for messages: the one found, else the directory asked about.
    fn here(&self) -> &Path {
        self.repository.as_deref().unwrap_or(&self.asked)
    }
}

fn repository_of(build: &RecordSummary) -> Option<&Path> {
    build.info.as_ref().map(|info| info.repository.as_path())
}

fn builds_dir() -> anyhow::Result<PathBuf> {
    Ok(crate::paths::cache_dir()?.join("builds"))
}

/// What a build was of, for people: `/src/app (branch main at 1a2b3c4d)`.
pub(crate) fn what_was_built(info: &RecordInfo) -> String {
    let mut text = info.repository.display().to_string();
    match (short_ref(info.git_ref.as_deref()), short_commit(info.commit.as_deref())) {
        (Some(r), Some(c)) => text.push_str(&format!(" ({r} at {c})")),
        (Some(r), None) => text.push_str(&format!(" ({r})")),
        (None, Some(c)) => text.push_str(&format!(" (at {c})")),
        (None, None) => {}
    }
    text
}

/// `branch main`, `tag v1`, or the ref as it is.
fn short_ref(git_ref: Option<&str>) -> Option<String> {
    let git_ref = git_ref?;
    Some(match (git_ref.strip_prefix("refs/heads/"), git_ref.strip_prefix("refs/tags/")) {
        (Some(branch), _) => format!("branch {branch}"),
        (_, Some(tag)) => format!("tag {tag}"),
        _ => git_ref.to_owned(),
    })
}

fn short_commit(commit: Option<&str>) -> Option<String> {
    commit.map(|c| c.chars().take(8).collect())
}

/// How long ago `ms` was, `now_ms` being now: `12s ago`, `5m ago`, `3h ago`, `2d ago`.
fn ago(now_ms: u64, ms: u64) -> String {
    let secs = now_ms.saturating_sub(ms) / 1000;
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86_400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86_400),
    }
}

/// How a listed build ended, or that it did not.
fn status_of(build: &RecordSummary) -> &'static str {
    match build.ended {
        Some(ended) => ended.status.as_str(),
        None if build.running => "running",
        None => "did not end",
    }
}

/// The rows of `monkeyci build list`: one per build, columns aligned; with the repository
/// when `all`.
fn list_table(builds: &[&RecordSummary], all: bool, now_ms: u64) -> String {
    let mut rows = vec![["BUILD", "WHEN", "REF", "COMMIT", "STATUS", "DURATION", "REPOSITORY"].map(str::to_owned)];
    for build in builds {
        let info = build.info.as_ref();
        let git_ref = info.and_then(|i| short_ref(i.git_ref.as_deref()));
        rows.push([
            build.id.clone(),
            ago(now_ms, build.started_ms),
            git_ref.unwrap_or_else(|| "-".to_owned()),
            info.and_then(|i| short_commit(i.commit.as_deref())).unwrap_or_else(|| "-".to_owned()),
            status_of(build).to_owned(),
            build.duration_ms().map(crate::render::format_ms).unwrap_or_else(|| "-".to_owned()),
            info.map_or_else(|| "(not recorded)".to_owned(), |i| i.repository.display().to_string()),
        ]);
    }
    let columns = if all { 7 } else { 6 };
    let widths: Vec<usize> =
        (0..columns).map(|c| rows.iter().map(|row| row[c].chars().count()).max().unwrap_or(0)).collect();
    let mut text = String::new();
    for row in &rows {
        let cells: Vec<String> = (0..columns).map(|c| format!("{:<w$}", row[c], w = widths[c])).collect();
        text.push_str(cells.join("  ").trim_end());
        text.push('\n');
    }
    text
}

pub(super) fn list(args: ListArgs) -> anyhow::Result<Outcome> {
    let builds_dir = builds_dir()?;
    let scope = Scope::new(&builds_dir, &args.dir, args.all)?;
    let limit = if args.limit == 0 { usize::MAX } else { args.limit };
    let listed: Vec<&RecordSummary> = scope.listed().take(limit).collect();
    let mut out = std::io::stdout().lock();
    if listed.is_empty() {
        if args.all {
            writeln!(out, "no builds recorded in {}", builds_dir.display())?;
        } else {
            writeln!(out, "no builds of {} recorded in {}", scope.here().display(), builds_dir.display())?;
        }
    } else {
        if !args.all {
            writeln!(out, "builds of {}", scope.here().display())?;
        }
        out.write_all(list_table(&listed, args.all, monkeyci_protocol::now_ms()).as_bytes())?;
        let more = scope.listed().count().saturating_sub(listed.len());
        if more > 0 {
            writeln!(out, "({more} older; --limit 0 lists them all)")?;
        }
    }
    let unknown = scope.builds.iter().filter(|b| b.info.is_none()).count();
    if !args.all && unknown > 0 {
        let s = if unknown == 1 { " does" } else { "s do" };
        writeln!(out, "({unknown} older record{s} not say their repository: --all lists them)")?;
    }
    Ok(Outcome::Success)
}

/// One argument is a build if such a build exists, else an item (job, artifact) of the
/// newest build.
fn build_and_item(scope: &Scope, first: Option<String>, second: Option<String>) -> (Option<String>, Option<String>) {
    match (first, second) {
        (Some(first), None) if scope.is_build(&first) => (Some(first), None),
        (first, None) => (None, first),
        (first, second) => (first, second),
    }
}

pub(super) fn logs(args: LogsArgs) -> anyhow::Result<Outcome> {
    if args.follow {
        bail!("--follow follows a build on a server: give --server or set MONKEYCI_SERVER");
    }
    let builds_dir = builds_dir()?;
    let RecordScope { repo, all } = &args.scope;
    let scope = Scope::new(&builds_dir, repo, *all)?;
    let (build, job) = build_and_item(&scope, args.first, args.second);
    let record = scope.pick(&builds_dir, build.as_deref())?;
    let mut out = Vec::new();
    match job {
        Some(job) => job_log(&record, &job, &mut out)?,
        None => {
            let _ = write!(out, "build {}", record.id);
            if let Some(info) = &record.info {
                let _ = write!(out, " of {}", what_was_built(info));
            }
            let _ = writeln!(out, " ({})", record.dir.display());
            crate::render::summary(&record.state, &mut out, false);
            if record.state.end().is_none() {
                let _ = writeln!(out, "\nthe build did not end (it runs, or its process was killed)");
            }
            match record.state.suspensions() {
                0 => {}
                1 => _ = writeln!(out, "the script suspended once while containers ran"),
                n => _ = writeln!(out, "the script suspended {n} times while containers ran"),
            }
            let _ = writeln!(out, "show a job's output with `monkeyci build logs {} JOB`", record.id);
        }
    }
    std::io::stdout().lock().write_all(&out)?;
    Ok(Outcome::Success)
}

/// A recorded job's lines, as shown live, then where its commands' own logs are.
fn job_log(record: &BuildRecord, job: &str, out: &mut Vec<u8>) -> anyhow::Result<()> {
    let events = record.job_events(job)?;
    let before = out.len();
    crate::render::job_log(&events, out);
    if out.len() == before {
        let _ = writeln!(out, "(job {job} printed nothing)");
    }
    crate::render::job_summaries(&record.state, Some(job), out);
    let Some(state) = record.state.job(job) else { return Ok(()) };
    let logs: Vec<_> = state
        .commands
        .iter()
        .map(|c| (c, record.command_log(job, c.index, "out"), record.command_log(job, c.index, "err")))
        .filter(|(_, out, err)| out.is_some() || err.is_some())
        .collect();
    if !logs.is_empty() {
        let _ = writeln!(out, "\ncommand logs of the last attempt:");
        for (command, stdout, stderr) in logs {
            let exit = command.exit.map_or_else(|| "did not end".to_owned(), |code| format!("exit {code}"));
            let _ = writeln!(out, "  command {} ({exit}): {}", command.index, command.line);
            for (path, name) in [(stdout, "stdout"), (stderr, "stderr")] {
                if let Some(path) = path {
                    let _ = writeln!(out, "    {name}: {}", path.display());
                }
            }
        }
    }
    Ok(())
}

pub(super) fn artifacts(args: ArtifactsArgs) -> anyhow::Result<Outcome> {
    let cache_dir = crate::paths::cache_dir()?;
    let builds_dir = cache_dir.join("builds");
    let RecordScope { repo, all } = &args.scope;
    let scope = Scope::new(&builds_dir, repo, *all)?;
    let (build, artifact) = build_and_item(&scope, args.first, args.second);
    let record = scope.pick(&builds_dir, build.as_deref())?;
    let store = LocalBlobStore::new(&cache_dir)
        .with_context(|| format!("cannot open the blob store of {}", cache_dir.display()))?;
    let mut out = std::io::stdout().lock();
    match artifact {
        None => {
            let saved = stored::stored_artifacts(&store, &record.id)?;
            if saved.is_empty() {
                writeln!(out, "build {} saved no artifacts", record.id)?;
                return Ok(Outcome::Success);
            }
            let width = saved.iter().map(|a| a.id.len()).max().unwrap_or(0).max(8);
            writeln!(out, "artifacts of build {}:", record.id)?;
            writeln!(out, "{:<width$}  {:>10}", "ARTIFACT", "SIZE")?;
            for artifact in &saved {
                writeln!(out, "{:<width$}  {:>10}", artifact.id, size(artifact.size))?;
            }
            writeln!(out, "extract one with `monkeyci build artifacts {} ID --to DIR`", record.id)?;
        }
        Some(id) => {
            let unpacked = stored::extract_artifact(&store, &record.id, &id, &args.to)
                .with_context(|| format!("cannot extract artifact `{id}` of build {}", record.id))?;
            let files = if unpacked.files == 1 { "file" } else { "files" };
            writeln!(
                out,
                "extracted artifact `{id}` of build {} into {}: {} {files}",
                record.id,
                args.to.display(),
                unpacked.files
            )?;
        }
    }
    Ok(Outcome::Success)
}

/// A size in bytes for people: `812 B`, `4.2 KiB`, `13.0 MiB`.
fn size(bytes: u64) -> String {
    match bytes {
        0..1024 => format!("{bytes} B"),
        1024..1_048_576 => format!("{:.1} KiB", bytes as f64 / 1024.0),
        _ => format!("{:.1} MiB", bytes as f64 / 1_048_576.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use monkeyci_build::record::Ended;
    use monkeyci_protocol::BuildStatus;

    fn summary(id: &str, repo: Option<&str>, started_ms: u64, ended: Option<(BuildStatus, u64)>) -> RecordSummary {
        RecordSummary {
            id: id.into(),
            info: repo.map(|repo| RecordInfo {
                repository: repo.into(),
                git_ref: Some("refs/heads/main".into()),
                commit: Some("0123456789abcdef".into()),
                started_ms,
                ended: None,
            }),
            started_ms,
            ended: ended.map(|(status, at_ms)| Ended { status, at_ms }),
            running: false,
        }
    }

    #[test]
    fn the_list_shows_when_what_how_and_how_long() {
        let builds = [
            summary("b-2", Some("/src/app"), 100_000, None),
            summary("b-1", Some("/src/app"), 10_000, Some((BuildStatus::Failure, 13_500))),
            summary("b-0", None, 0, Some((BuildStatus::Success, 1_000))),
        ];
        let rows: Vec<&RecordSummary> = builds.iter().collect();
        let table = list_table(&rows, false, 160_000);
        assert_eq!(
            table,
            "BUILD  WHEN    REF          COMMIT    STATUS       DURATION\n\
             b-2    1m ago  branch main  01234567  did not end  -\n\
             b-1    2m ago  branch main  01234567  failure      3.50s\n\
             b-0    2m ago  -            -         success      1.00s\n"
        );
        assert!(list_table(&rows, true, 160_000).lines().nth(3).unwrap().ends_with("(not recorded)"));
    }

    #[test]
    fn refs_and_ages_read_as_people_say_them() {
        assert_eq!(short_ref(Some("refs/tags/v1.2")).as_deref(), Some("tag v1.2"));
        assert_eq!(short_ref(Some("HEAD")).as_deref(), Some("HEAD"));
        assert_eq!([ago(5_000, 0), ago(7_200_000, 0), ago(3 * 86_400_000, 0)], ["5s ago", "2h ago", "3d ago"]);
        assert_eq!([size(812), size(4_300), size(13 << 20)], ["812 B", "4.2 KiB", "13.0 MiB"]);
    }
}
