//! The job script protocol: how a container job's shell lines run, in a container or on the host.
//!
//! Images are not under our control, so a job's lines are run by a generated POSIX `sh` wrapper
//! (`job.sh`, see [`wrapper_script`]) from one shared directory, the job root, laid out by
//! [`JobLayout`]:
//!
//! ```text
//! <root>/script/job.sh      the wrapper
//! <root>/script/0, 1, …     one file per script line (never interpolated, so no escaping)
//! <root>/logs/<i>.out|.err  each line's stdout and stderr
//! <root>/events.jsonl       the event log: one JSON object per line, appended by the wrapper
//! <root>/start              start lock: the wrapper waits until it exists
//! <root>/abort              give-up file: the wrapper stops waiting, or stops between lines
//! <root>/wake               a FIFO the wrapper waits on, read-write, until `start` exists;
//!                           the host writes a newline to it after creating `start` or `abort`
//! <root>/secrets            the job's secret variables (mode 0600), if it has any: the wrapper
//!                           exports them and deletes the file before anything else
//! <root>/work/              the job's workspace copy; the lines run in it or in a subdirectory
//! ```
//!
//! The wrapper waits for `start` without polling where it can: it opens `wake` (read-write,
//! so the open never blocks), then looks for `start` and `abort`, and blocks reading `wake`
//! until the host's newline. The host creates `start` (or `abort`) first and then writes
//! (without blocking), so either the wrapper had `wake` open and is woken, or it opens it
//! later and finds the file. Without a usable `wake` (no FIFOs on the file system, another
//! user in the container), it looks every 5 ms at first, then less often, up to 100 ms.
//!
//! The wrapper learns where the root is from the environment, so the same files work wherever
//! the root is mounted (`/monkeyci` in a container, the host path with the shell engine):
//! - `MONKEYCI_ROOT` (required, absolute): the job root as the wrapper sees it;
//! - `MONKEYCI_WORK_DIR` (optional): where the lines run; absolute, or relative to
//!   `$MONKEYCI_ROOT/work`; default `$MONKEYCI_ROOT/work`;
//! - `MONKEYCI_SHELL` (optional): the shell that runs each line file; default `/bin/sh`.
//!
//! Secret values never travel in the environment an engine is given, where `podman inspect`
//! and `docker inspect` would show them: [`JobLayout::write_secrets`] writes them to the job
//! root, and the wrapper reads them into its own environment (which the lines inherit) and
//! deletes the file at once.
//!
//! The events ([`ContainerEvent`]) on the wire, in order:
//!
//! ```text
//! {"type":"container/start"}
//! {"type":"command/start","command":0,"stdout":"logs/0.out","stderr":"logs/0.err"}
//! {"type":"command/end","command":0,"exit":0}
//! …
//! {"type":"container/script-end","status":"success","exit":0}
//! ```
//!
//! The wrapper exits with the first non-zero exit of a line (status `failure`), with
//! [`EXIT_ABORTED`] when it gave up on the abort file (status `aborted`; no `container/start` if it
//! was still waiting), or with [`EXIT_SETUP`] when the job cannot start (no usable
//! `MONKEYCI_ROOT`: a message on stderr and no events; no work dir: status `failure` with
//! `"reason":"no-work-dir"`, and a message on stderr). [`crate::follow::JobTail`] follows the
//! event log and the logs live.
//!
//! This module owns the files and their meaning only: it starts no process or container and
//! speaks no HTTP; engines and the sidecar do that.

use std::fs;
use std::io;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Where the job root is mounted in a job container.
pub const DEFAULT_MOUNT: &str = "/monkeyci";
/// Env var: the job root as the wrapper sees it (absolute).
pub const ENV_ROOT: &str = "MONKEYCI_ROOT";
/// Env var: the directory the lines run in (absolute, or relative to `$MONKEYCI_ROOT/work`).
pub const ENV_WORK_DIR: &str = "MONKEYCI_WORK_DIR";
/// Env var: the shell that runs each line (default `/bin/sh`).
pub const ENV_SHELL: &str = "MONKEYCI_SHELL";
/// The wrapper's exit code when it gave up because the abort file appeared.
pub const EXIT_ABORTED: i32 = 125;
/// The wrapper's exit code when the job could not start (no usable root or work dir).
pub const EXIT_SETUP: i32 = 122;
/// The longest event line [`crate::follow::JobTail`] accepts; the wrapper's lines are under 100 bytes.
pub const MAX_EVENT_LINE: usize = 64 * 1024;

/// What went wrong writing a job's files.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory of the job could not be written.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, e.g. `write script line`.
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A secret variable whose name the wrapper cannot export.
    #[error(
        "secret env name {name:?} is not a valid variable name (letters, digits and `_`, not starting with a digit)"
    )]
    BadSecretName {
        /// The name as given.
        name: String,
    },
    /// A work dir that would leave the job's `work/` directory.
    #[error("work dir {dir:?} must be a relative path inside the job's work/ directory")]
    BadWorkDir {
        /// The work dir as given.
        dir: PathBuf,
    },
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io { action, path: path.to_owned(), source }
}

/// The files of one job run under a root directory (see the module docs for the tree).
///
/// The same layout describes the host side (`JobLayout::new(host_dir)`) and the container side
/// ([`JobLayout::mounted_at`]); event paths are relative to the root, so they mean the same on both.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobLayout {
    root: PathBuf,
}

impl JobLayout {
    /// The layout rooted at `root` (created by [`JobLayout::write_script`]).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        JobLayout { root: root.into() }
    }

    /// The same layout as seen where the root is mounted, e.g. [`DEFAULT_MOUNT`] in a container.
    pub fn mounted_at(&self, mount: impl Into<PathBuf>) -> JobLayout {
        JobLayout::new(mount)
    }

    /// The job root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// `script/`: the wrapper and the line files.
    pub fn script_dir(&self) -> PathBuf {
        self.root.join("script")
    }

    /// The wrapper; run it as `/bin/sh <wrapper>` with the [`JobLayout::env`] variables.
    pub fn wrapper(&self) -> PathBuf {
        self.script_dir().join("job.sh")
    }

    /// The file holding script line `i` (0-based).
    pub fn line_file(&self, i: usize) -> PathBuf {
        self.script_dir().join(i.to_string())
    }

    /// `logs/`: each line's stdout and stderr.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }

    /// `logs/<i>.out`: the stdout of line `i`.
    pub fn stdout_log(&self, i: usize) -> PathBuf {
        self.logs_dir().join(format!("{i}.out"))
    }

    /// `logs/<i>.err`: the stderr of line `i`.
    pub fn stderr_log(&self, i: usize) -> PathBuf {
        self.logs_dir().join(format!("{i}.err"))
    }

    /// `events.jsonl`: the event log.
    pub fn events(&self) -> PathBuf {
        self.root.join("events.jsonl")
    }

    /// `start`: the wrapper runs the lines once it exists.
    pub fn start_file(&self) -> PathBuf {
        self.root.join("start")
    }

    /// `abort`: the wrapper gives up once it exists.
    pub fn abort_file(&self) -> PathBuf {
        self.root.join("abort")
    }

    /// `wake`: the FIFO the wrapper waits on for the start file.
    pub fn wake_file(&self) -> PathBuf {
        self.root.join("wake")
    }

    /// `secrets`: the job's secret variables, until the wrapper read them.
    pub fn secrets_file(&self) -> PathBuf {
        self.root.join("secrets")
    }

    /// `work/`: the workspace copy.
    pub fn work_root(&self) -> PathBuf {
        self.root.join("work")
    }

    /// `cargo-home/`: the job's own cargo home, where its `~/.cargo/registry` and
    /// `~/.cargo/git` caches go (its `CARGO_HOME` when it has such a cache).
    pub fn cargo_home(&self) -> PathBuf {
        self.root.join("cargo-home")
    }

    /// The directory the lines run in: `work/`, or `work/<sub>` for a job with a work dir.
    /// `sub` must be relative and stay inside `work/` (no `..`, no root).
    pub fn work_dir(&self, sub: Option<&Path>) -> Result<PathBuf, Error> {
        let Some(sub) = sub else { return Ok(self.work_root()) };
        if !sub.components().all(|c| matches!(c, Component::Normal(_) | Component::CurDir)) {
            return Err(Error::BadWorkDir { dir: sub.to_owned() });
        }
        Ok(self.work_root().join(sub))
    }

    /// The environment the wrapper needs, for this root: [`ENV_ROOT`] and [`ENV_WORK_DIR`]
    /// (absolute). Call it on the [`JobLayout::mounted_at`] layout for a container.
    pub fn env(&self, work_sub: Option<&Path>) -> Result<[(&'static str, PathBuf); 2], Error> {
        Ok([(ENV_ROOT, self.root.clone()), (ENV_WORK_DIR, self.work_dir(work_sub)?)])
    }

    /// Creates `script/`, `logs/`, `work/` and the `wake` FIFO and writes one file per line
    /// plus the wrapper (last, so an existing wrapper means the lines are in place). Leaves
    /// `events.jsonl`, `start` and `abort` alone: the root is expected to be fresh for each run.
    pub fn write_script<S: AsRef<str>>(&self, lines: &[S]) -> Result<(), Error> {
        for dir in [self.script_dir(), self.logs_dir(), self.work_root()] {
            fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        }
        // Without it (a file system without FIFOs) the wrapper polls for the start file.
        if let Ok(wake) = std::ffi::CString::new(self.wake_file().into_os_string().into_encoded_bytes()) {
            // SAFETY: mkfifo(3) with a NUL-terminated path.
            unsafe { libc::mkfifo(wake.as_ptr(), 0o600) };
        }
        for (i, line) in lines.iter().enumerate() {
            let line = line.as_ref();
            let mut text = String::with_capacity(line.len() + 1);
            text.push_str(line);
            if !line.ends_with('\n') {
                text.push('\n');
            }
            let path = self.line_file(i);
            fs::write(&path, text).map_err(io_err("write script line", &path))?;
        }
        let wrapper = self.wrapper();
        fs::write(&wrapper, wrapper_script(lines.len())).map_err(io_err("write", &wrapper))
    }

    /// Writes the secret variables `vars` (name to value) for the wrapper, readable by this
    /// user only, before the wrapper starts: it exports them and deletes the file before it
    /// does anything else. Writes nothing when there are none. Call it before the wrapper
    /// starts, and remove the file ([`JobLayout::forget_secrets`]) once the wrapper ended, in
    /// case it never ran.
    pub fn write_secrets(&self, vars: &std::collections::BTreeMap<String, String>) -> Result<(), Error> {
        if vars.is_empty() {
            return Ok(());
        }
        let mut text =
            String::from("# Generated by monkeyci: the job's secret variables. Read and deleted by job.sh.\n");
        for (name, value) in vars {
            if !is_var_name(name) {
                return Err(Error::BadSecretName { name: name.clone() });
            }
            // Single-quoted: nothing in it is special but the quote, which ends, is escaped
            // and reopens the quoting.
            text.push_str(&format!("export {name}='{}'\n", value.replace('\'', r"'\''")));
        }
        let path = self.secrets_file();
        let mut file = {
            use std::os::unix::fs::OpenOptionsExt;
            fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&path)
        }
        .map_err(io_err("create secrets file", &path))?;
        io::Write::write_all(&mut file, text.as_bytes()).map_err(|source| {
            // Half a file of secrets is no use to anyone.
            let _ = fs::remove_file(&path);
            Error::Io { action: "write secrets file", path: path.clone(), source }
        })
    }

    /// Removes the secrets file if the wrapper did not (it never started, or had no `rm`).
    pub fn forget_secrets(&self) -> Result<(), Error> {
        let path = self.secrets_file();
        match fs::remove_file(&path) {
            Err(err) if err.kind() != io::ErrorKind::NotFound => Err(io_err("remove secrets file", &path)(err)),
            _ => Ok(()),
        }
    }

    /// Creates the start file: the workspace (and artifacts, caches) are in place. Then wakes
    /// the wrapper if it waits.
    pub fn signal_start(&self) -> Result<(), Error> {
        let path = self.start_file();
        fs::write(&path, b"").map_err(io_err("create start file", &path))?;
        self.wake()
    }

    /// Creates the abort file, holding `reason`: the wrapper gives up waiting (or stops before
    /// its next line) and ends with status `aborted`. The wrapper only checks that the file
    /// exists; the reason is for whoever reads the job's directory. Then wakes the wrapper if
    /// it waits.
    pub fn signal_abort(&self, reason: &str) -> Result<(), Error> {
        let path = self.abort_file();
        fs::write(&path, format!("{reason}\n")).map_err(io_err("create abort file", &path))?;
        self.wake()
    }

    /// Wakes a wrapper waiting on `wake` for the start or abort file (see the module docs).
    /// Nothing to do when there is no `wake` (the wrapper polls) or no one reads it; what the
    /// job may have put there instead of the FIFO is refused, never written to.
    fn wake(&self) -> Result<(), Error> {
        let woken = crate::follow::confined::Dir::open(&self.root).and_then(|root| root.wake_fifo("wake"));
        match woken {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Io { action: "wake the wrapper through", path: self.wake_file(), source }),
        }
    }
}

/// Whether `name` is a variable name a POSIX shell can export.
pub fn is_var_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The wrapper `job.sh` for a script of `lines` lines. Plain POSIX `sh` (dash, busybox ash):
/// the line count is the only value in it; everything else comes from the environment.
///
/// It first exports the variables of the secrets file, if there is one, and deletes it.
/// Each event is one `printf` appending one short line (a single `write`). A line runs as
/// `$MONKEYCI_SHELL script/<i>` in the work dir with stdin from `/dev/null`, in its own process
/// (a `cd` or `export` in one line does not carry over to the next). The abort file is checked
/// while waiting and between lines; it does not interrupt a running line.
pub fn wrapper_script(lines: usize) -> String {
    format!(
        r#"# Generated by monkeyci: runs a job's script lines, one file each. Do not edit.
# Env: MONKEYCI_ROOT (required, absolute), MONKEYCI_WORK_DIR (optional: absolute, or relative
# to $MONKEYCI_ROOT/work), MONKEYCI_SHELL (optional, default /bin/sh).
# Secret variables: exported, and their file emptied and deleted, before anything else (and
# before the wrapper's own variables are set, which a secret of the same name cannot change).
case ${{MONKEYCI_ROOT:-}} in
  /*)
    if [ -f "$MONKEYCI_ROOT/secrets" ]; then
      . "$MONKEYCI_ROOT/secrets"
      : >"$MONKEYCI_ROOT/secrets"
      rm -f "$MONKEYCI_ROOT/secrets" 2>/dev/null
    fi
    ;;
esac
lines={lines}
root=${{MONKEYCI_ROOT:-}}
case $root in
  /*) ;;
  *) echo "monkeyci: MONKEYCI_ROOT must be an absolute directory, got '$root'" >&2; exit {setup} ;;
esac
if [ ! -d "$root" ]; then
  echo "monkeyci: job root $root is not a directory" >&2
  exit {setup}
fi
events=$root/events.jsonl
shell=${{MONKEYCI_SHELL:-/bin/sh}}

emit() {{
  printf '%s\n' "$1" >>"$events" || {{ echo "monkeyci: cannot append to $events" >&2; exit {setup}; }}
}}
# end STATUS EXIT [EXTRA-JSON-FIELDS]
end() {{
  emit '{{"type":"container/script-end","status":"'"$1"'","exit":'"$2$3"'}}'
  exit "$2"
}}

# Waits for the start file: woken through the FIFO `wake` (opened before looking, so the
# host's newline after creating `start` or `abort` cannot be missed), else looking often at
# first, then less (the job's directory is usually filled within milliseconds).
waker=
if [ -p "$root/wake" ] && {{ command exec 3<>"$root/wake"; }} 2>/dev/null; then waker=1; fi
tick=0.005
while [ ! -e "$root/start" ]; do
  if [ -e "$root/abort" ]; then end aborted {aborted}; fi
  if [ -n "$waker" ]; then
    read -r woken <&3 || waker=
    continue
  fi
  sleep "$tick" 2>/dev/null || {{ tick=1; sleep 1; }}
  case $tick in 0.005) tick=0.01 ;; 0.01) tick=0.02 ;; 0.02) tick=0.05 ;; 0.05) tick=0.1 ;; esac
done
if [ -n "$waker" ]; then exec 3<&-; fi
emit '{{"type":"container/start"}}'

wd=${{MONKEYCI_WORK_DIR:-$root/work}}
case $wd in
  /*) ;;
  *) wd=$root/work/$wd ;;
esac
if [ ! -d "$wd" ] || ! cd "$wd"; then
  echo "monkeyci: work dir $wd does not exist or is not a directory" >&2
  end failure {setup} ',"reason":"no-work-dir"'
fi

i=0
while [ "$i" -lt "$lines" ]; do
  if [ -e "$root/abort" ]; then end aborted {aborted}; fi
  emit '{{"type":"command/start","command":'"$i"',"stdout":"logs/'"$i"'.out","stderr":"logs/'"$i"'.err"}}'
  "$shell" "$root/script/$i" </dev/null >"$root/logs/$i.out" 2>"$root/logs/$i.err"
  rc=$?
  emit '{{"type":"command/end","command":'"$i"',"exit":'"$rc"'}}'
  if [ "$rc" -ne 0 ]; then end failure "$rc"; fi
  i=$((i + 1))
done
end success 0
"#,
        setup = EXIT_SETUP,
        aborted = EXIT_ABORTED,
    )
}

/// One event of the event log, as the wrapper writes it (`"type"` names the variant).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum ContainerEvent {
    /// The start file appeared; the lines are about to run.
    #[serde(rename = "container/start")]
    Start,
    /// Line `command` (0-based) starts; its output goes to these root-relative files. They are
    /// always `logs/<command>.out` and `.err`: readers take the paths from
    /// [`JobLayout::stdout_log`] and [`JobLayout::stderr_log`], never from the event.
    #[serde(rename = "command/start")]
    CommandStart {
        /// The line's number.
        command: usize,
        /// Its stdout log, relative to the root.
        stdout: String,
        /// Its stderr log, relative to the root.
        stderr: String,
    },
    /// Line `command` exited with `exit`.
    #[serde(rename = "command/end")]
    CommandEnd {
        /// The line's number.
        command: usize,
        /// Its exit code.
        exit: i32,
    },
    /// The wrapper is done and exits with `exit`; always the last event.
    #[serde(rename = "container/script-end")]
    ScriptEnd {
        /// How it ended.
        status: ScriptStatus,
        /// The wrapper's exit code.
        exit: i32,
        /// Why it failed before running a line, if it did.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<EndReason>,
    },
}

/// How the script ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ScriptStatus {
    /// Every line exited 0.
    Success,
    /// A line exited non-zero (its exit is the script's), or the job could not start (`reason`).
    Failure,
    /// The abort file appeared; exit [`EXIT_ABORTED`].
    Aborted,
}

/// Why a script failed before running any line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// The work dir does not exist or is not a directory; exit [`EXIT_SETUP`].
    NoWorkDir,
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Running the wrapper in tests: the shells, a job root, its events.

    use super::*;

    use std::ffi::OsString;
    use std::io::Read;
    use std::process::{Child, Command, ExitStatus, Stdio};
    use std::time::{Duration, Instant};

    /// A shell to run the wrapper with: `argv` runs a script file, `line_shell` is the same shell
    /// as one path (for `MONKEYCI_SHELL`).
    pub(crate) struct Shell {
        pub(crate) name: &'static str,
        pub(crate) argv: Vec<OsString>,
        pub(crate) line_shell: PathBuf,
        _dir: Option<tempfile::TempDir>,
    }

    fn find_on_path(name: &str) -> Option<PathBuf> {
        let path = std::env::var_os("PATH")?;
        std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
    }

    /// busybox `sh` and `dash`. A missing one is skipped with a visible reason, except under CI
    /// (env `CI` set), where it fails the test.
    pub(crate) fn shells() -> Vec<Shell> {
        let mut shells = Vec::new();
        let mut missing = Vec::new();
        match find_on_path("busybox") {
            Some(busybox) => {
                // busybox picks the applet from argv[0], so `<dir>/sh -> busybox` is busybox sh.
                let dir = tempfile::tempdir().unwrap();
                let sh = dir.path().join("sh");
                std::os::unix::fs::symlink(&busybox, &sh).unwrap();
                shells.push(Shell {
                    name: "busybox sh",
                    argv: vec![busybox.into(), "sh".into()],
                    line_shell: sh,
                    _dir: Some(dir),
                });
            }
            None => missing.push("busybox"),
        }
        match find_on_path("dash") {
            Some(dash) => {
                shells.push(Shell { name: "dash", argv: vec![dash.clone().into()], line_shell: dash, _dir: None })
            }
            None => missing.push("dash"),
        }
        for name in missing {
            if std::env::var_os("CI").is_some() {
                panic!("`{name}` is not installed; CI must install it (apt: busybox-static, dash)");
            }
            eprintln!("SKIPPED: `{name}` is not installed, so the wrapper is not tested with it");
        }
        shells
    }

    /// A command running the wrapper of `layout` with `shell`, its env set for a host run.
    pub(crate) fn wrapper_cmd(shell: &Shell, layout: &JobLayout, work_sub: Option<&Path>, line_shell: bool) -> Command {
        let mut cmd = Command::new(&shell.argv[0]);
        cmd.args(&shell.argv[1..]).arg(layout.wrapper());
        cmd.env_remove(ENV_ROOT).env_remove(ENV_WORK_DIR).env_remove(ENV_SHELL);
        cmd.envs(layout.env(work_sub).unwrap());
        if line_shell {
            cmd.env(ENV_SHELL, &shell.line_shell);
        }
        // Started elsewhere than the work dir, so a line run in the wrong place shows.
        cmd.current_dir(layout.root());
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd
    }

    pub(crate) fn wait_timeout(child: &mut Child, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                child.kill().unwrap();
                panic!("the wrapper did not finish within {limit:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs the wrapper to the end (start file created first); returns exit code and stderr.
    pub(crate) fn run(shell: &Shell, layout: &JobLayout, work_sub: Option<&Path>, line_shell: bool) -> (i32, String) {
        let mut child = wrapper_cmd(shell, layout, work_sub, line_shell).spawn().unwrap();
        let status = wait_timeout(&mut child, Duration::from_secs(30));
        let mut stderr = String::new();
        child.stderr.take().unwrap().read_to_string(&mut stderr).unwrap();
        (status.code().expect("the wrapper was killed by a signal"), stderr)
    }

    pub(crate) fn events_text(layout: &JobLayout) -> String {
        fs::read_to_string(layout.events()).unwrap_or_default()
    }

    pub(crate) fn events(layout: &JobLayout) -> Vec<ContainerEvent> {
        events_text(layout).lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }

    pub(crate) fn cmd_start(i: usize) -> ContainerEvent {
        ContainerEvent::CommandStart { command: i, stdout: format!("logs/{i}.out"), stderr: format!("logs/{i}.err") }
    }

    pub(crate) fn cmd_end(i: usize, exit: i32) -> ContainerEvent {
        ContainerEvent::CommandEnd { command: i, exit }
    }

    pub(crate) fn end(status: ScriptStatus, exit: i32) -> ContainerEvent {
        ContainerEvent::ScriptEnd { status, exit, reason: None }
    }

    /// A fresh job root with `lines` written (and started when `start`).
    pub(crate) fn job(lines: &[&str], start: bool) -> (tempfile::TempDir, JobLayout) {
        let dir = tempfile::tempdir().unwrap();
        let layout = JobLayout::new(dir.path().join("job root"));
        layout.write_script(lines).unwrap();
        if start {
            layout.signal_start().unwrap();
        }
        (dir, layout)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::test_support::*;
    use super::*;

    #[test]
    fn jobscript_stops_at_first_failure_with_exact_events() {
        for shell in shells() {
            let (_dir, layout) = job(&["echo a > f", "false", "echo never"], true);
            // Lines run with the default /bin/sh here.
            let (code, stderr) = run(&shell, &layout, None, false);
            assert_eq!(code, 1, "{}: {stderr}", shell.name);
            assert_eq!(
                events_text(&layout),
                concat!(
                    "{\"type\":\"container/start\"}\n",
                    "{\"type\":\"command/start\",\"command\":0,\"stdout\":\"logs/0.out\",\"stderr\":\"logs/0.err\"}\n",
                    "{\"type\":\"command/end\",\"command\":0,\"exit\":0}\n",
                    "{\"type\":\"command/start\",\"command\":1,\"stdout\":\"logs/1.out\",\"stderr\":\"logs/1.err\"}\n",
                    "{\"type\":\"command/end\",\"command\":1,\"exit\":1}\n",
                    "{\"type\":\"container/script-end\",\"status\":\"failure\",\"exit\":1}\n",
                ),
                "{}",
                shell.name
            );
            assert_eq!(
                events(&layout),
                [
                    ContainerEvent::Start,
                    cmd_start(0),
                    cmd_end(0, 0),
                    cmd_start(1),
                    cmd_end(1, 1),
                    end(ScriptStatus::Failure, 1)
                ]
            );
            assert_eq!(fs::read_to_string(layout.work_root().join("f")).unwrap(), "a\n", "{}", shell.name);
            assert!(!layout.stdout_log(2).exists(), "{}: line 2 must not run", shell.name);
        }
    }

    #[test]
    fn jobscript_serializes_events_as_the_wrapper_writes_them() {
        let wire = [
            (ContainerEvent::Start, r#"{"type":"container/start"}"#),
            (cmd_start(3), r#"{"type":"command/start","command":3,"stdout":"logs/3.out","stderr":"logs/3.err"}"#),
            (cmd_end(3, 2), r#"{"type":"command/end","command":3,"exit":2}"#),
            (end(ScriptStatus::Success, 0), r#"{"type":"container/script-end","status":"success","exit":0}"#),
            (end(ScriptStatus::Aborted, 125), r#"{"type":"container/script-end","status":"aborted","exit":125}"#),
            (
                ContainerEvent::ScriptEnd {
                    status: ScriptStatus::Failure,
                    exit: 122,
                    reason: Some(EndReason::NoWorkDir),
                },
                r#"{"type":"container/script-end","status":"failure","exit":122,"reason":"no-work-dir"}"#,
            ),
        ];
        for (event, line) in wire {
            assert_eq!(serde_json::to_string(&event).unwrap(), line);
            assert_eq!(serde_json::from_str::<ContainerEvent>(line).unwrap(), event);
        }
    }

    #[test]
    fn jobscript_logs_each_lines_stdout_and_stderr_to_own_files() {
        for shell in shells() {
            let (_dir, layout) = job(&["echo out; echo err >&2", "echo two"], true);
            let (code, stderr) = run(&shell, &layout, None, true);
            assert_eq!(code, 0, "{}: {stderr}", shell.name);
            assert_eq!(fs::read_to_string(layout.stdout_log(0)).unwrap(), "out\n");
            assert_eq!(fs::read_to_string(layout.stderr_log(0)).unwrap(), "err\n");
            assert_eq!(fs::read_to_string(layout.stdout_log(1)).unwrap(), "two\n");
            assert_eq!(fs::read_to_string(layout.stderr_log(1)).unwrap(), "");
            let evs = events(&layout);
            let ContainerEvent::CommandStart { stdout, stderr, .. } = &evs[1] else { panic!("{evs:?}") };
            assert_eq!(layout.root().join(stdout), layout.stdout_log(0));
            assert_eq!(layout.root().join(stderr), layout.stderr_log(0));
            assert_eq!(evs.last(), Some(&end(ScriptStatus::Success, 0)));
        }
    }

    #[test]
    fn jobscript_runs_tricky_lines_verbatim() {
        let lines = [
            r#"echo "double \"quoted\" and 'single'" > q"#,
            r#"printf '%s\n' "$HOME" '$HOME' > home"#,
            r#"printf '%s\n' 'back\slash \\ \n' "a\\b" > bs"#,
            "cat > doc <<'EOF'\nline one $HOME\n  `not run` \\ end\nEOF",
            "cat > doc2 <<EOF\nhome=$HOME sub=$(echo sub)\nEOF",
            r#"x='50%'; echo "$x; && || | > <" > misc"#,
        ];
        for shell in shells() {
            let (_dir, layout) = job(&lines, true);
            let mut cmd = wrapper_cmd(&shell, &layout, None, true);
            cmd.env("HOME", "/home/monkey tester");
            let mut child = cmd.spawn().unwrap();
            let status = wait_timeout(&mut child, Duration::from_secs(30));
            let read = |name: &str| fs::read_to_string(layout.work_root().join(name)).unwrap();
            assert_eq!(status.code(), Some(0), "{}: {}", shell.name, events_text(&layout));
            assert_eq!(read("q"), "double \"quoted\" and 'single'\n", "{}", shell.name);
            assert_eq!(read("home"), "/home/monkey tester\n$HOME\n", "{}", shell.name);
            assert_eq!(read("bs"), "back\\slash \\\\ \\n\na\\b\n", "{}", shell.name);
            assert_eq!(read("doc"), "line one $HOME\n  `not run` \\ end\n", "{}", shell.name);
            assert_eq!(read("doc2"), "home=/home/monkey tester sub=sub\n", "{}", shell.name);
            assert_eq!(read("misc"), "50%; && || | > <\n", "{}", shell.name);
            assert_eq!(events(&layout).len(), 2 + 2 * lines.len(), "{}", shell.name);
        }
    }

    #[test]
    fn jobscript_exports_secrets_and_deletes_their_file_first() {
        let tricky = "it's \"quoted\" $HOME `id` \\ 50%\nsecond line '";
        let vars = std::collections::BTreeMap::from([
            ("TOKEN".to_owned(), tricky.to_owned()),
            ("_OTHER2".to_owned(), String::new()),
            // Named like a variable of the wrapper's own, which must not change.
            ("root".to_owned(), "/nowhere".to_owned()),
        ]);
        let lines = ["test -e \"$MONKEYCI_ROOT/secrets\" && echo file-left > left; printf '%s' \"$TOKEN\" > token; \
                      printf '%s' \"${_OTHER2-unset}\" > other"];
        for shell in shells() {
            let (_dir, layout) = job(&lines, true);
            layout.write_secrets(&vars).unwrap();
            let mode =
                std::os::unix::fs::PermissionsExt::mode(&fs::metadata(layout.secrets_file()).unwrap().permissions());
            assert_eq!(mode & 0o777, 0o600, "{}", shell.name);
            let (code, stderr) = run(&shell, &layout, None, true);
            assert_eq!(code, 0, "{}: {stderr}", shell.name);
            let read = |name: &str| fs::read_to_string(layout.work_root().join(name)).unwrap();
            assert_eq!(read("token"), tricky, "{}", shell.name);
            assert_eq!(read("other"), "", "{}", shell.name);
            assert!(
                !layout.work_root().join("left").exists(),
                "{}: the secrets file was there for the line",
                shell.name
            );
            assert!(!layout.secrets_file().exists(), "{}", shell.name);
            layout.forget_secrets().unwrap();
        }
        let (_dir, layout) = job(&["true"], false);
        let bad = std::collections::BTreeMap::from([("NOT-A-NAME".to_owned(), "x".to_owned())]);
        assert!(matches!(layout.write_secrets(&bad), Err(Error::BadSecretName { .. })));
        layout.write_secrets(&std::collections::BTreeMap::new()).unwrap();
        assert!(!layout.secrets_file().exists(), "no secrets, no file");
    }

    #[test]
    fn jobscript_waits_for_start_file() {
        for shell in shells() {
            let (_dir, layout) = job(&["echo ran > ran"], false);
            let mut child = wrapper_cmd(&shell, &layout, None, true).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            assert!(child.try_wait().unwrap().is_none(), "{}: the wrapper must wait", shell.name);
            assert_eq!(events_text(&layout), "", "{}: no events before start", shell.name);
            assert!(!layout.work_root().join("ran").exists());
            layout.signal_start().unwrap();
            let status = wait_timeout(&mut child, Duration::from_secs(30));
            assert_eq!(status.code(), Some(0), "{}", shell.name);
            assert_eq!(
                events(&layout),
                [ContainerEvent::Start, cmd_start(0), cmd_end(0, 0), end(ScriptStatus::Success, 0)]
            );
            assert_eq!(fs::read_to_string(layout.work_root().join("ran")).unwrap(), "ran\n");
        }
    }

    /// The children of process `pid`, if `/proc` says.
    fn children(pid: u32) -> Option<String> {
        fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).ok()
    }

    /// The wrapper waits on `wake` for the start file, in one blocking read: it starts no
    /// `sleep` (a poll every 5 to 100 ms did), and starts as soon as it is woken. Without
    /// `wake` it polls.
    #[test]
    fn jobscript_waits_on_wake_without_polling_and_polls_without_it() {
        for shell in shells() {
            for with_wake in [true, false] {
                let (_dir, layout) = job(&["echo ran > ran"], false);
                if !with_wake {
                    fs::remove_file(layout.wake_file()).unwrap();
                }
                let mut child = wrapper_cmd(&shell, &layout, None, true).spawn().unwrap();
                std::thread::sleep(Duration::from_millis(200));
                let mut seen = Vec::new();
                for _ in 0..10 {
                    std::thread::sleep(Duration::from_millis(23));
                    seen.extend(children(child.id()));
                }
                assert!(child.try_wait().unwrap().is_none(), "{}: the wrapper must wait", shell.name);
                if with_wake && !seen.is_empty() {
                    assert!(seen.iter().all(|c| c.trim().is_empty()), "{}: it polls: {seen:?}", shell.name);
                }
                if !with_wake && !seen.is_empty() {
                    assert!(seen.iter().any(|c| !c.trim().is_empty()), "{}: it must poll: {seen:?}", shell.name);
                }
                layout.signal_start().unwrap();
                let status = wait_timeout(&mut child, Duration::from_secs(30));
                assert_eq!(status.code(), Some(0), "{}", shell.name);
                assert_eq!(fs::read_to_string(layout.work_root().join("ran")).unwrap(), "ran\n");
            }
        }
    }

    /// The job may put anything at `wake` once it runs: the host never writes to it but a FIFO.
    #[test]
    fn jobscript_wakes_only_a_fifo() {
        let dir = tempfile::tempdir().unwrap();
        let host = dir.path().join("host.txt");
        fs::write(&host, "host file\n").unwrap();
        let (_dir, layout) = job(&["true"], false);
        fs::remove_file(layout.wake_file()).unwrap();
        std::os::unix::fs::symlink(&host, layout.wake_file()).unwrap();
        let err = layout.signal_abort("stopped").unwrap_err();
        assert!(err.to_string().starts_with("cannot wake the wrapper through"), "{err}");
        assert_eq!(fs::read_to_string(&host).unwrap(), "host file\n");
        fs::remove_file(layout.wake_file()).unwrap();
        fs::write(layout.wake_file(), "").unwrap();
        assert!(layout.signal_start().is_err());
        assert_eq!(fs::read_to_string(layout.wake_file()).unwrap(), "");
        // No FIFO, or one no one reads: nothing to wake.
        fs::remove_file(layout.wake_file()).unwrap();
        layout.signal_start().unwrap();
    }

    #[test]
    fn jobscript_gives_up_on_abort_while_waiting() {
        for shell in shells() {
            let (_dir, layout) = job(&["echo ran > ran"], false);
            let mut child = wrapper_cmd(&shell, &layout, None, true).spawn().unwrap();
            std::thread::sleep(Duration::from_millis(300));
            assert!(child.try_wait().unwrap().is_none(), "{}: the wrapper must wait", shell.name);
            layout.signal_abort("the test gave up").unwrap();
            let status = wait_timeout(&mut child, Duration::from_secs(30));
            assert_eq!(status.code(), Some(EXIT_ABORTED), "{}", shell.name);
            assert_eq!(events(&layout), [end(ScriptStatus::Aborted, EXIT_ABORTED)], "{}", shell.name);
            assert!(!layout.work_root().join("ran").exists());
        }
    }

    #[test]
    fn jobscript_checks_abort_between_lines() {
        for shell in shells() {
            // The first line creates the abort file itself, so the second must not run.
            let (_dir, layout) = job(&[r#": > "$MONKEYCI_ROOT/abort""#, "echo ran > ran"], true);
            let (code, stderr) = run(&shell, &layout, None, true);
            assert_eq!(code, EXIT_ABORTED, "{}: {stderr}", shell.name);
            assert_eq!(
                events(&layout),
                [ContainerEvent::Start, cmd_start(0), cmd_end(0, 0), end(ScriptStatus::Aborted, EXIT_ABORTED)]
            );
            assert!(!layout.work_root().join("ran").exists());
        }
    }

    #[test]
    fn jobscript_runs_in_work_subdir() {
        for shell in shells() {
            let (_dir, layout) = job(&["pwd > here"], true);
            fs::create_dir_all(layout.work_root().join("sub/dir")).unwrap();
            let (code, stderr) = run(&shell, &layout, Some(Path::new("sub/dir")), true);
            assert_eq!(code, 0, "{}: {stderr}", shell.name);
            let here = fs::read_to_string(layout.work_root().join("sub/dir/here")).unwrap();
            assert_eq!(Path::new(here.trim_end()), layout.work_root().join("sub/dir"));
        }
    }

    #[test]
    fn jobscript_fails_clearly_without_work_dir() {
        for shell in shells() {
            let (_dir, layout) = job(&["echo ran > ran"], true);
            let (code, stderr) = run(&shell, &layout, Some(Path::new("missing/sub")), true);
            assert_eq!(code, EXIT_SETUP, "{}: {stderr}", shell.name);
            let wd = layout.work_root().join("missing/sub");
            assert!(
                stderr.contains(&format!("monkeyci: work dir {} does not exist", wd.display())),
                "{}: {stderr}",
                shell.name
            );
            assert_eq!(
                events(&layout),
                [
                    ContainerEvent::Start,
                    ContainerEvent::ScriptEnd {
                        status: ScriptStatus::Failure,
                        exit: EXIT_SETUP,
                        reason: Some(EndReason::NoWorkDir)
                    }
                ],
                "{}",
                shell.name
            );
            assert!(!layout.stdout_log(0).exists());
            assert!(!layout.root().join("ran").exists());

            // No usable root: a message and no events at all.
            let mut cmd = wrapper_cmd(&shell, &layout, None, true);
            cmd.env(ENV_ROOT, "relative/root");
            let out = cmd.output().unwrap();
            assert_eq!(out.status.code(), Some(EXIT_SETUP), "{}", shell.name);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(stderr.contains("MONKEYCI_ROOT must be an absolute directory"), "{}: {stderr}", shell.name);
        }
    }

    #[test]
    fn jobscript_layout_paths_and_validation() {
        let host = JobLayout::new("/var/jobs/42");
        let ctr = host.mounted_at(DEFAULT_MOUNT);
        assert_eq!(ctr.wrapper(), Path::new("/monkeyci/script/job.sh"));
        assert_eq!(ctr.line_file(2), Path::new("/monkeyci/script/2"));
        assert_eq!(ctr.stdout_log(1), Path::new("/monkeyci/logs/1.out"));
        assert_eq!(host.stderr_log(1), Path::new("/var/jobs/42/logs/1.err"));
        assert_eq!(host.events(), Path::new("/var/jobs/42/events.jsonl"));
        assert_eq!(host.start_file(), Path::new("/var/jobs/42/start"));
        assert_eq!(host.abort_file(), Path::new("/var/jobs/42/abort"));
        assert_eq!(
            ctr.env(Some(Path::new("a/b"))).unwrap(),
            [(ENV_ROOT, PathBuf::from("/monkeyci")), (ENV_WORK_DIR, PathBuf::from("/monkeyci/work/a/b"))]
        );
        for bad in ["../x", "a/../../x", "/etc"] {
            let err = host.work_dir(Some(Path::new(bad))).unwrap_err();
            assert!(matches!(err, Error::BadWorkDir { .. }), "{bad}: {err}");
        }
    }
}
