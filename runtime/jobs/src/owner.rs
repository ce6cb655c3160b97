//! Who started a job: [`Owner`], this `monkeyci` process (host, pid and start time), and the
//! marks that carry it: container labels ([`LABEL_OWNER`], [`LABEL_BUILD`]) and, for the shell
//! engine, the variables every process of a job inherits ([`ENV_OWNER`], [`ENV_BUILD`]).
//!
//! An owner on this host whose pid is gone, or now names a process that started at another
//! time, is gone: what it started is left over (after a `kill -9`, a crash, a power cut of
//! the process but not of the engine) and the next build stops it. An owner on another host is
//! never judged: its containers are not ours to stop.
//!
//! It names and judges owners only: stopping what they left is the engines' part.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::OnceLock;

use crate::procs::StatFields;

/// Container label: the build that started the container.
pub(crate) const LABEL_BUILD: &str = "monkeyci.build";
/// Container label: the [`Owner`] that started the container.
pub(crate) const LABEL_OWNER: &str = "monkeyci.owner";
/// Env var of a shell-engine job: the build that started it.
pub(crate) const ENV_BUILD: &str = "MONKEYCI_BUILD";
/// Env var of a shell-engine job: the [`Owner`] that started it.
pub(crate) const ENV_OWNER: &str = "MONKEYCI_OWNER";

/// A `monkeyci` process: `<host>:<pid>:<start time>` in labels and variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    host: String,
    pid: libc::pid_t,
    /// In clock ticks since boot ([`StatFields::start_time`]).
    start_time: u64,
}

impl Owner {
    /// This process.
    pub(crate) fn this() -> &'static Owner {
        static THIS: OnceLock<Owner> = OnceLock::new();
        THIS.get_or_init(|| {
            let pid = libc::pid_t::try_from(std::process::id()).unwrap_or(libc::pid_t::MAX);
            Owner { host: host_name(), pid, start_time: StatFields::of(pid).map_or(0, |f| f.start_time) }
        })
    }

    /// Parses `<host>:<pid>:<start time>` (the host may hold `:`).
    pub(crate) fn parse(text: &str) -> Option<Owner> {
        let (rest, start_time) = text.rsplit_once(':')?;
        let (host, pid) = rest.rsplit_once(':')?;
        Some(Owner { host: host.to_owned(), pid: pid.parse().ok()?, start_time: start_time.parse().ok()? })
    }

    /// The owner's pid.
    pub(crate) fn pid(&self) -> libc::pid_t {
        self.pid
    }

    /// Whether this owner is a process of this host that is no longer running.
    pub(crate) fn is_gone(&self) -> bool {
        if self.host != Owner::this().host || *self == *Owner::this() {
            return false;
        }
        match StatFields::of(self.pid) {
            Some(now) => now.start_time != self.start_time || now.state == 'Z',
            None => true,
        }
    }
}

impl fmt::Display for Owner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.host, self.pid, self.start_time)
    }
}

/// This host's name (empty if it has none: owners are then compared by pid and start time).
fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into `buf`.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    if ok { String::from_utf8_lossy(&buf[..len]).into_owned() } else { String::new() }
}

/// Tells on stderr, once per build, what was stopped of builds whose `monkeyci` is gone:
/// `found` maps each build to its owner's pid and how many `things` (containers, processes)
/// of it were stopped.
pub(crate) fn report_stopped(found: &BTreeMap<String, (libc::pid_t, usize)>, thing: &str, things: &str) {
    for (build, (pid, count)) in found {
        let what = if *count == 1 { thing } else { things };
        eprintln!("note: stopped {count} {what} left by build {build}, whose monkeyci (pid {pid}) is gone");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_named_and_judged() {
        let this = Owner::this();
        assert_eq!(Owner::parse(&this.to_string()).as_ref(), Some(this));
        assert!(!this.is_gone(), "this process is running");
        let restarted = Owner { start_time: this.start_time + 1, ..this.clone() };
        assert!(restarted.is_gone(), "the same pid with another start time is another process");
        let elsewhere = Owner { host: format!("{}-other", this.host), ..restarted.clone() };
        assert!(!elsewhere.is_gone(), "another host's owners are never judged");
        assert_eq!(
            Owner::parse("a:b:7:12"),
            Some(Owner { host: "a:b".into(), pid: 7, start_time: 12 }),
            "the host may hold colons"
        );
        assert_eq!(Owner::parse("host:x:1"), None);
    }
}
