//! The command line of what talks to a server, or is one: `server`, `agent`, `token`, `org`,
//! `repo`, `usage` and the remote `build` commands. Like [`crate::args`], only clap structs.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `monkeyci server`: every setting comes, lowest first, from the defaults, the TOML file
/// (`--config`, default `server.toml` in the data dir, keys named as the flags with `_`),
/// `MONKEYCI_*` variables, then these flags.
#[derive(Debug, Args)]
#[command(after_help = "Configuration layers, lowest first: built-in defaults; the TOML file \
    (--config, default DATA_DIR/server.toml; keys as the flags, with `_`: listen, data_dir, \
    database_url, agent_capacity, engine, sdk_path, cache_dir, sandbox, agent_timeout, key_file); MONKEYCI_* environment variables \
    (shown with each flag); the flags.\n\nThe first start on an empty database prints an admin \
    token once.")]
pub(crate) struct ServerArgs {
    /// The address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "MONKEYCI_LISTEN", value_name = "ADDR")]
    pub(crate) listen: Option<SocketAddr>,
    /// Where the server keeps its data [default: $XDG_DATA_HOME/monkeyci or
    /// ~/.local/share/monkeyci].
    #[arg(long, env = "MONKEYCI_DATA_DIR", value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// The configuration file [default: DATA_DIR/server.toml, if it exists].
    #[arg(long, env = "MONKEYCI_CONFIG", value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// The database: sqlite://PATH or postgres://USER@HOST/DB [default: SQLite in the data dir].
    #[arg(long, env = "MONKEYCI_DATABASE_URL", value_name = "URL")]
    pub(crate) database_url: Option<String>,
    /// Builds the embedded agent runs at once; 0: none (only remote agents) [default: 2].
    #[arg(long, env = "MONKEYCI_AGENT_CAPACITY", value_name = "N")]
    pub(crate) agent_capacity: Option<usize>,
    /// What runs container jobs on the embedded agent: auto, podman, docker or shell
    /// [default: auto].
    #[arg(long, env = "MONKEYCI_ENGINE", value_name = "ENGINE")]
    pub(crate) engine: Option<String>,
    /// A local monkeyci-sdk checkout for pipelines that depend on the sdk by version.
    #[arg(long, env = "MONKEYCI_SDK_PATH", value_name = "DIR")]
    pub(crate) sdk_path: Option<PathBuf>,
    /// The compile cache and blob store of the embedded agent [default: DATA_DIR/cache].
    #[arg(long, env = "MONKEYCI_CACHE_DIR", value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// Run builds without the sandbox (bubblewrap) that keeps a repository's code from the
    /// server's data and other builds: only for repositories you trust.
    #[arg(long)]
    pub(crate) no_sandbox: bool,
    /// The file of the key params are encrypted with, made (mode 0600) at the first start
    /// unless MONKEYCI_SERVER_KEY holds the key (64 hex digits or base64 of 32 bytes). Keep a
    /// copy: without the key, the stored params are lost [default: DATA_DIR/server.key].
    #[arg(long, env = "MONKEYCI_KEY_FILE", value_name = "FILE")]
    pub(crate) key_file: Option<PathBuf>,
    /// How long an agent may be silent before its builds end as `error: agent lost` (`30s`,
    /// `2m`) [default: 30s].
    #[arg(long, env = "MONKEYCI_AGENT_TIMEOUT", value_name = "DURATION", value_parser = monkeyci_protocol::duration::parse)]
    pub(crate) agent_timeout: Option<std::time::Duration>,
}

/// `monkeyci agent`: takes builds from a server's queue and runs them here, as the server's
/// embedded agent does.
#[derive(Debug, Args)]
pub(crate) struct AgentArgs {
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
    /// Builds run at once.
    #[arg(long, env = "MONKEYCI_AGENT_CAPACITY", value_name = "N", default_value_t = 2,
        value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) capacity: u32,
    /// The agent's name, shown on the builds it runs (letters, digits, `-`, `_`, `.`)
    /// [default: the host's name].
    #[arg(long, env = "MONKEYCI_AGENT_NAME", value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Where builds are checked out while they run [default: DATA_DIR/agents/NAME].
    #[arg(long, value_name = "DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// The compile cache and blob store [default: as for `build run`].
    #[arg(long, env = "MONKEYCI_CACHE_DIR", value_name = "DIR")]
    pub(crate) cache_dir: Option<PathBuf>,
    /// What runs container jobs: auto, podman, docker or shell.
    #[arg(long, env = "MONKEYCI_ENGINE", value_name = "ENGINE", default_value = "auto")]
    pub(crate) engine: String,
    /// A local monkeyci-sdk checkout for pipelines that depend on the sdk by version.
    #[arg(long, env = "MONKEYCI_SDK_PATH", value_name = "DIR")]
    pub(crate) sdk_path: Option<PathBuf>,
    /// Run builds without the sandbox (bubblewrap): only for repositories you trust.
    #[arg(long)]
    pub(crate) no_sandbox: bool,
}

/// Which server, as whom: the flags, else `MONKEYCI_SERVER`/`MONKEYCI_TOKEN`, else `server`
/// and `token` in the settings file (`crate::settings`).
#[derive(Debug, Args)]
pub(crate) struct RemoteArgs {
    /// The server's URL [default: `server` in $XDG_CONFIG_HOME/monkeyci/cli.toml (else
    /// ~/.config/monkeyci/cli.toml), else http://127.0.0.1:8080].
    #[arg(long, env = "MONKEYCI_SERVER", value_name = "URL")]
    pub(crate) server: Option<String>,
    /// An API token [default: `token` in that cli.toml].
    #[arg(long, env = "MONKEYCI_TOKEN", value_name = "TOKEN", hide_env_values = true)]
    pub(crate) token: Option<String>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Make a token, shown once. With --data-dir or --database-url it is made in that
    /// database directly (the server need not run); otherwise through the server (admin).
    Create(TokenCreateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct TokenCreateArgs {
    /// An admin token: it reaches everything.
    #[arg(long, conflicts_with = "org")]
    pub(crate) admin: bool,
    /// A token reaching only this org.
    #[arg(long, required_unless_present_any = ["admin", "agent"])]
    pub(crate) org: Option<String>,
    /// An agent's token (for `monkeyci agent`): it reaches only the agent protocol.
    #[arg(long, conflicts_with_all = ["admin", "org"])]
    pub(crate) agent: bool,
    /// What the token is for.
    #[arg(long, default_value = "")]
    pub(crate) description: String,
    /// Make it in the database of the server with this data dir.
    #[arg(long, value_name = "DIR")]
    pub(crate) data_dir: Option<PathBuf>,
    /// Make it in this database.
    #[arg(long, value_name = "URL")]
    pub(crate) database_url: Option<String>,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum OrgCommand {
    /// Create an org (admin).
    Create(OrgCreateArgs),
    /// List the orgs the token reaches.
    List(RemoteArgs),
    /// Set an org's monthly credit limit (admin); its builds over it end in error.
    SetCredits(OrgCreditsArgs),
}

#[derive(Debug, Args)]
pub(crate) struct OrgCreditsArgs {
    /// The org.
    pub(crate) org: String,
    /// Credits per calendar month (a credit: one second of a size-1 container, or of the
    /// script process), or `none` to remove the limit.
    pub(crate) credits: String,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct UsageArgs {
    /// The org.
    pub(crate) org: String,
    /// The first day, YYYY-MM-DD (UTC) [default: the first of this month].
    #[arg(long, value_name = "DATE")]
    pub(crate) from: Option<String>,
    /// The last day, included, YYYY-MM-DD (UTC) [default: today].
    #[arg(long, value_name = "DATE")]
    pub(crate) to: Option<String>,
    /// The server's answer as JSON instead of a table.
    #[arg(long)]
    pub(crate) json: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct OrgCreateArgs {
    /// Its id: letters, digits, `-`, `_`, `.`.
    pub(crate) id: String,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum RepoCommand {
    /// Add a repository to an org.
    Add(RepoAddArgs),
    /// List an org's repositories.
    List(RepoListArgs),
}

#[derive(Debug, Args)]
pub(crate) struct RepoAddArgs {
    /// ORG/NAME.
    pub(crate) repo: String,
    /// Any URL git can clone (https://, ssh, file://).
    #[arg(long)]
    pub(crate) url: String,
    /// Its main branch [default: main].
    #[arg(long)]
    pub(crate) main_branch: Option<String>,
    /// The secret webhooks are signed with (without one, webhooks are refused).
    #[arg(long, env = "MONKEYCI_WEBHOOK_SECRET", hide_env_values = true)]
    pub(crate) webhook_secret: Option<String>,
    /// A label, for param filters (repeatable).
    #[arg(long = "label")]
    pub(crate) labels: Vec<String>,
    /// Queue a build whose agent was lost again, once, as a new build.
    #[arg(long)]
    pub(crate) retry_lost: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RepoListArgs {
    /// The org.
    pub(crate) org: String,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TriggerArgs {
    /// ORG/REPO.
    pub(crate) repo: String,
    /// Build this branch [default: the repository's main branch].
    #[arg(long, conflicts_with = "tag")]
    pub(crate) branch: Option<String>,
    /// Build this tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Build this commit (of that branch or tag).
    #[arg(long)]
    pub(crate) commit: Option<String>,
    /// Follow the build live and exit as `build watch` does.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Plain time-stamped lines even on a terminal (with --watch).
    #[arg(long)]
    pub(crate) plain: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct BuildIdArgs {
    /// The build's id.
    pub(crate) id: String,
    /// Plain time-stamped lines even on a terminal (watch).
    #[arg(long)]
    pub(crate) plain: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RetryArgs {
    /// The build to run again: same repository, ref and commit.
    pub(crate) id: String,
    /// Follow the new build live and exit as `build watch` does.
    #[arg(long)]
    pub(crate) watch: bool,
    /// Plain time-stamped lines even on a terminal (with --watch).
    #[arg(long)]
    pub(crate) plain: bool,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct JobDecisionArgs {
    /// The build's id.
    pub(crate) id: String,
    /// The blocked job, waiting for approval.
    pub(crate) job: String,
    #[command(flatten)]
    pub(crate) remote: RemoteArgs,
}
