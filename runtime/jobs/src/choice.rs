//! Which engine runs a build's container jobs: [`EngineChoice`] (what the user asked for) and
//! [`select`] (the engine it means on this machine).
//!
//! It only chooses: it must not prepare or run jobs.

use std::sync::Arc;

use crate::engine::ContainerEngine;
use crate::{podman, shell};

/// Which engine runs container jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EngineChoice {
    /// podman if installed, else docker, else the host shell.
    Auto,
    /// The podman CLI.
    Podman,
    /// The docker CLI.
    Docker,
    /// `/bin/sh` on this machine; images are ignored.
    Shell,
}

impl EngineChoice {
    /// Every choice with its name on the command line, in the order `--help` lists them.
    pub const ALL: [(&'static str, EngineChoice); 4] = [
        ("auto", EngineChoice::Auto),
        ("podman", EngineChoice::Podman),
        ("docker", EngineChoice::Docker),
        ("shell", EngineChoice::Shell),
    ];
}

impl std::str::FromStr for EngineChoice {
    type Err = String;

    fn from_str(name: &str) -> Result<EngineChoice, String> {
        EngineChoice::ALL.iter().find(|(n, _)| *n == name).map(|(_, choice)| *choice).ok_or_else(|| {
            let names: Vec<&str> = EngineChoice::ALL.iter().map(|(n, _)| *n).collect();
            format!("unknown engine {name:?}; expected one of: {}", names.join(", "))
        })
    }
}

impl EngineChoice {
    /// What `auto` means on this machine: podman if installed, else docker, else the host
    /// shell; any other choice as it is.
    pub fn resolve(self) -> EngineChoice {
        let found = |program| which::which(program).is_ok();
        match self {
            EngineChoice::Auto if found("podman") => EngineChoice::Podman,
            EngineChoice::Auto if found("docker") => EngineChoice::Docker,
            EngineChoice::Auto => EngineChoice::Shell,
            chosen => chosen,
        }
    }
}

/// The engine for `choice`; `auto` announces on stderr when it falls back to the host shell.
pub fn select(choice: EngineChoice) -> Arc<dyn ContainerEngine> {
    match (choice, choice.resolve()) {
        (_, EngineChoice::Podman) => Arc::new(podman::CliEngine::podman()),
        (_, EngineChoice::Docker) => Arc::new(podman::CliEngine::docker()),
        (EngineChoice::Auto, _) => {
            eprintln!(
                "note: neither podman nor docker is installed: container jobs run on this machine with /bin/sh, \
                 and their images are ignored (choose with --engine)"
            );
            Arc::new(shell::ShellEngine::new())
        }
        (_, _) => Arc::new(shell::ShellEngine::new()),
    }
}
