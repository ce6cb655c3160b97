//! What `/proc` says about a process: its state, process group and start time
//! ([`StatFields`]).
//!
//! It only reads: it must not signal or start processes.

/// The fields of `/proc/<pid>/stat` this crate uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StatFields {
    /// `R`, `S`, `Z` (zombie), …
    pub(crate) state: char,
    /// The process group.
    pub(crate) pgrp: libc::pid_t,
    /// When it started, in clock ticks since boot: with the pid, it names one process.
    pub(crate) start_time: u64,
}

impl StatFields {
    /// Parses the text of `/proc/<pid>/stat`. The command name (in parentheses) may hold
    /// spaces and parentheses, so the fields are counted from its last `)`.
    pub(crate) fn parse(stat: &str) -> Option<StatFields> {
        let after = &stat[stat.rfind(')')? + 1..];
        let fields: Vec<&str> = after.split_whitespace().collect();
        // After the name: state (field 3 of stat(5)), ppid, pgrp, …, starttime (field 22).
        Some(StatFields {
            state: fields.first()?.chars().next()?,
            pgrp: fields.get(2)?.parse().ok()?,
            start_time: fields.get(19)?.parse().ok()?,
        })
    }

    /// The fields of process `pid`, if it exists (a zombie does, until it is reaped).
    pub(crate) fn of(pid: libc::pid_t) -> Option<StatFields> {
        StatFields::parse(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
    }
}

/// The pids in `/proc`.
pub(crate) fn pids() -> Vec<libc::pid_t> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries.flatten().filter_map(|entry| entry.file_name().to_str()?.parse().ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_last_parenthesis() {
        let stat = "4242 (a (b) c) S 1 4240 4240 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1234 56";
        assert_eq!(StatFields::parse(stat), Some(StatFields { state: 'S', pgrp: 4240, start_time: 987654 }));
        assert_eq!(StatFields::parse("1 (x) S 1"), None);
        let me = StatFields::of(libc::pid_t::try_from(std::process::id()).unwrap()).unwrap();
        assert_ne!(me.state, 'Z');
        assert!(pids().contains(&libc::pid_t::try_from(std::process::id()).unwrap()));
    }
}
