//! [`Sandbox`]: where an untrusted process (a pipeline's compile, with its build scripts and
//! proc macros, and the pipeline script itself) runs when a service builds other people's
//! repositories: inside bubblewrap (`bwrap`), with the host read-only, what it must not see
//! hidden under empty directories, and only its own build's directories writable.
//!
//! It shares the host's network (the script reaches its build API on 127.0.0.1) and nothing
//! else: its own process, IPC and mount namespaces, a fresh `/proc`, `/dev` and `/tmp`. A local
//! build (`monkeyci build run`) runs the developer's own code and uses no sandbox.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Where an untrusted process may look and write.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sandbox {
    /// Directories hidden under an empty one (the server's data, the home directory, other
    /// builds' files, sockets of container engines).
    pub hidden: Vec<PathBuf>,
    /// Paths (under hidden ones, say) it may read.
    pub readable: Vec<PathBuf>,
    /// Directories it may write; everything else is read-only.
    pub writable: Vec<PathBuf>,
    /// Its whole environment: nothing of the service's own (its database URL, its keys)
    /// reaches it.
    pub env: Vec<(String, String)>,
}

/// What one path becomes in the sandbox (in this order when paths are equally deep).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mount {
    Hide,
    Read,
    Write,
}

/// The program that makes the sandbox.
pub const BWRAP: &str = "bwrap";

/// Why a sandbox cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// bubblewrap is not installed.
    #[error(
        "bubblewrap (`bwrap`) is not installed: a server runs each build's pipeline in it (Debian: apt install bubblewrap)"
    )]
    Missing(#[source] which::Error),
}

impl Sandbox {
    /// Checks that bubblewrap can be found.
    pub fn available() -> Result<PathBuf, Error> {
        which::which(BWRAP).map_err(Error::Missing)
    }

    /// A command running `program` in the sandbox (its arguments, environment and directory
    /// are set on the returned command as usual).
    ///
    /// ```
    /// use monkeyci_build::sandbox::Sandbox;
    ///
    /// let data = std::env::temp_dir().join("monkeyci-sandbox-doc");
    /// std::fs::create_dir_all(data.join("build-1"))?;
    /// let sandbox = Sandbox { hidden: vec![data.clone()], writable: vec![data.join("build-1")], ..Sandbox::default() };
    /// let cmd = sandbox.command("/bin/true".as_ref());
    /// let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
    /// let hide = args.iter().position(|a| *a == data.as_os_str()).unwrap();
    /// let bind = args.iter().position(|a| *a == data.join("build-1").as_os_str()).unwrap();
    /// assert!(hide < bind, "hidden first, then the build's own directory on top");
    /// // A directory hidden inside a readable one stays hidden: the deeper mount comes later.
    /// let nested = Sandbox { hidden: vec![data.join("build-1")], readable: vec![data.clone()], ..Sandbox::default() };
    /// let args: Vec<_> = nested.command("/bin/true".as_ref()).get_args().map(|a| a.to_owned()).collect();
    /// let read = args.iter().position(|a| *a == data.as_os_str()).unwrap();
    /// let hide = args.iter().position(|a| *a == data.join("build-1").as_os_str()).unwrap();
    /// assert!(read < hide);
    /// assert_eq!(args.last().unwrap(), "/bin/true");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn command(&self, program: &Path) -> Command {
        let mut cmd = Command::new(BWRAP);
        cmd.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"]);
        cmd.args(["--unshare-pid", "--unshare-ipc", "--unshare-uts", "--die-with-parent"]);
        // Each mount covers what is below it, so they go shallowest first: a hidden directory
        // inside a readable one stays hidden, and a writable one inside a hidden one is seen.
        // Only real directories are hidden: bubblewrap cannot mount over a link (`/var/run` is
        // one to `/run` on most systems; its target is hidden by its own name).
        let is_dir = |p: &PathBuf| p.symlink_metadata().is_ok_and(|m| m.is_dir());
        let mut mounts: Vec<(&PathBuf, Mount)> = Vec::new();
        mounts.extend(self.hidden.iter().filter(|p| is_dir(p)).map(|p| (p, Mount::Hide)));
        mounts.extend(self.readable.iter().filter(|p| p.exists()).map(|p| (p, Mount::Read)));
        mounts.extend(self.writable.iter().filter(|p| p.exists()).map(|p| (p, Mount::Write)));
        mounts.sort_by_key(|(path, mount)| (path.components().count(), *mount));
        for (path, mount) in mounts {
            match mount {
                Mount::Hide => cmd.arg("--tmpfs").arg(path),
                Mount::Read => cmd.arg("--ro-bind").arg(path).arg(path),
                Mount::Write => cmd.arg("--bind").arg(path).arg(path),
            };
        }
        cmd.arg("--").arg(program);
        cmd
    }
}
