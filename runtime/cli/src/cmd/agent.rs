//! `monkeyci agent`: a remote agent. It takes builds from a server's queue over the agent
//! protocol (`monkeyci_server::remote_link`) and runs each as the server's embedded agent does
//! (`monkeyci_server::agent`: clone, compile, run, sandbox), until Ctrl-C or SIGTERM. Builds it
//! was running when it stops end on the server as `error: agent lost`.

use std::time::Duration;

use anyhow::{Context as _, bail};
use monkeyci_jobs::EngineChoice;
use monkeyci_server::agent::{Agent, AgentConfig};
use monkeyci_server::remote_link::HttpLink;

use crate::outcome::Outcome;
use crate::remote_args::AgentArgs;

/// How long a remote agent keeps trying to reach its server before it gives up on a build.
const PATIENCE: Duration = Duration::from_secs(10 * 60);

pub(super) fn run(args: AgentArgs) -> anyhow::Result<Outcome> {
    let client = super::remote::client(&args.remote)?;
    let engine = args.engine.parse::<EngineChoice>().map_err(anyhow::Error::msg)?.resolve();
    let sandbox = !args.no_sandbox;
    if sandbox {
        monkeyci_build::sandbox::Sandbox::available()
            .context("cannot sandbox builds (or start with --no-sandbox, for trusted repositories only)")?;
        if engine == EngineChoice::Shell {
            bail!(
                "container jobs on the shell engine would run on this machine outside the sandbox: install podman \
                 or docker (or start with --no-sandbox, for trusted repositories only)"
            );
        }
    }
    let name = match args.name {
        Some(name) => name,
        None => host_name(),
    };
    monkeyci_protocol::id::check(&name).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
    let work_dir = match args.work_dir {
        Some(dir) => dir,
        None => crate::paths::data_dir()?.join("agents").join(&name),
    };
    std::fs::create_dir_all(&work_dir).with_context(|| format!("cannot create {}", work_dir.display()))?;
    let cache_dir = match args.cache_dir {
        Some(dir) => dir,
        None => crate::paths::cache_dir()?,
    };
    let config = AgentConfig {
        name: name.clone(),
        capacity: args.capacity as usize,
        work_dir,
        cache_dir,
        sdk_path: crate::paths::sdk_path(args.sdk_path.as_deref()),
        engine,
        sandbox,
        private: Vec::new(),
    };
    let server = client.url().to_owned();
    super::runtime::runtime()?.block_on(async move {
        let agent = Agent::new(config, HttpLink::new(client, PATIENCE));
        println!("monkeyci agent {name} running builds of {server} ({} at once)", args.capacity);
        tokio::select! {
            ran = agent.run() => ran.context("the server refuses this agent")?,
            () = super::remote::stop_signal() => {}
        }
        println!("monkeyci agent {name} stopped");
        Ok::<_, anyhow::Error>(())
    })?;
    Ok(Outcome::Success)
}

/// The host's name, in the id alphabet; `agent` if it cannot be read.
fn host_name() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let name = monkeyci_protocol::id::sanitize(name.trim());
    if monkeyci_protocol::id::check(&name).is_ok() { name } else { "agent".to_owned() }
}
