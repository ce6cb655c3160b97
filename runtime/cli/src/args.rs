//! The command line, as clap structs that mirror it. Nothing here acts on an argument:
//! turning them into what the build library takes happens in the command modules ([`crate::cmd`]).

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand};
use monkeyci_protocol::{Source, SuspendMode, Trigger};

use crate::planfmt::PlanFormat;
use monkeyci_jobs::EngineChoice;

/// MonkeyCI: CI pipelines written in Rust.
#[derive(Debug, Parser)]
#[command(
    name = "monkeyci",
    version,
    about,
    long_about = None,
    after_help = "Commands that talk to a server take --server and --token, else MONKEYCI_SERVER and \
        MONKEYCI_TOKEN, else `server = \"http://...\"` and `token = \"mci_...\"` in \
        $XDG_CONFIG_HOME/monkeyci/cli.toml (else ~/.config/monkeyci/cli.toml)."
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run, plan, verify or test the pipeline of a repository.
    #[command(subcommand)]
    Build(Box<BuildCommand>),
    /// Create a working pipeline crate in DIR/.monkeyci.
    Init(InitArgs),
    /// Manage the cache of compiled pipelines, build records and stored files.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Run a MonkeyCI server: webhooks in, a build queue, an embedded agent, the REST API.
    Server(Box<crate::remote_args::ServerArgs>),
    /// Run builds of a server's queue on this machine (a remote agent).
    Agent(Box<crate::remote_args::AgentArgs>),
    /// Make API tokens.
    #[command(subcommand)]
    Token(crate::remote_args::TokenCommand),
    /// Manage orgs on a server.
    #[command(subcommand)]
    Org(crate::remote_args::OrgCommand),
    /// Manage repositories on a server.
    #[command(subcommand)]
    Repo(crate::remote_args::RepoCommand),
    /// Manage params (secrets) on a server: org param sets and repositories' own.
    #[command(subcommand)]
    Param(crate::param_args::ParamCommand),
    /// Show what an org's builds used on a server (container, action and script time, credits).
    Usage(crate::remote_args::UsageArgs),
}

#[derive(Debug, Subcommand)]
pub(crate) enum CacheCommand {
    /// Remove old build records (with their artifacts), pipeline binaries not used lately and
    /// old cache archives. `build run` does this after every build with the defaults.
    Prune(PruneArgs),
}

#[derive(Debug, Args)]
pub(crate) struct PruneArgs {
    /// Build records to keep, newest first; 0 keeps them all [default: MONKEYCI_KEEP_BUILDS, else 100].
    #[arg(long, value_name = "N")]
    pub(crate) keep_builds: Option<usize>,
    /// Remove pipeline binaries not used for this many days.
    #[arg(long, value_name = "DAYS", default_value_t = 30)]
    pub(crate) unused_days: u64,
    /// Archives to keep of each cache of each repository, newest first.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub(crate) keep_cache_archives: usize,
    /// Also remove the cargo target directory the pipelines share: it only grows, and every
    /// pipeline compiles from scratch the next time.
    #[arg(long)]
    pub(crate) target: bool,
}

#[derive(Debug, Subcommand)]
pub(crate) enum BuildCommand {
    /// Compile the pipeline and run its jobs.
    Run(RunArgs),
    /// Show the jobs that would run, without running them.
    Plan(PlanArgs),
    /// Compile the pipeline and check that it plans (no cycles, no unknown jobs).
    Verify(VerifyArgs),
    /// Run the pipeline crate's own unit tests (`cargo test`).
    Test(TestArgs),
    /// List the recorded builds of a repository, newest first; with a server (--server,
    /// MONKEYCI_SERVER, or --repo/--status/--branch), the server's builds.
    List(ListArgs),
    /// Show a recorded build of this repository: its jobs, or one job's output and command
    /// logs; with a server (--server or MONKEYCI_SERVER), a build on the server.
    Logs(LogsArgs),
    /// List the artifacts of a recorded build of this repository, or extract one.
    Artifacts(ArtifactsArgs),
    /// Queue a build of a repository on a server (and follow it with --watch).
    Trigger(crate::remote_args::TriggerArgs),
    /// Show a build on a server.
    Show(crate::remote_args::BuildIdArgs),
    /// Follow a build on a server live; exits as `build run` does (0, 1 or 2).
    Watch(crate::remote_args::BuildIdArgs),
    /// Cancel a build on a server.
    Cancel(crate::remote_args::BuildIdArgs),
    /// Queue a build on a server again: same repository, ref and commit (and --watch it).
    Retry(crate::remote_args::RetryArgs),
    /// Let a blocked job of a build on a server run.
    Approve(crate::remote_args::JobDecisionArgs),
    /// Keep a blocked job of a build on a server from running (it is skipped).
    Reject(crate::remote_args::JobDecisionArgs),
}

/// When to ask about blocked jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AskMode {
    /// When stdin is a terminal.
    Auto,
    /// Always, reading answers from stdin (scripts: `yes | monkeyci build run --ask always`).
    Always,
    /// Never: blocked jobs not named with `--approve` are skipped.
    Never,
}

/// Where the pipeline is and how to compile it.
#[derive(Debug, Args)]
pub(crate) struct PipelineArgs {
    /// The repository (its pipeline is DIR/.monkeyci) or a pipeline crate itself.
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// A local monkeyci-sdk checkout for pipelines that depend on the sdk by version.
    #[arg(long, env = "MONKEYCI_SDK_PATH", value_name = "DIR")]
    pub(crate) sdk_path: Option<PathBuf>,
}

/// The build context; what git says, unless overridden here.
#[derive(Debug, Args)]
pub(crate) struct ContextArgs {
    /// Build this branch (refs/heads/BRANCH).
    #[arg(long, conflicts_with = "tag")]
    pub(crate) branch: Option<String>,
    /// Build this tag (refs/tags/TAG).
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// The commit id the build reports.
    #[arg(long)]
    pub(crate) commit: Option<String>,
    /// The repository's main branch.
    #[arg(long)]
    pub(crate) main_branch: Option<String>,
    /// A changed file (repeatable); replaces the changes git reports.
    #[arg(long = "changed", value_name = "PATH")]
    pub(crate) changed: Vec<String>,
    /// Report changes relative to this commit (default: HEAD, i.e. uncommitted changes).
    #[arg(long, value_name = "REV")]
    pub(crate) base: Option<String>,
    /// A secret build parameter (masked in all output), NAME=VALUE, or NAME to take the value
    /// from the environment variable NAME (keeps it out of the process list). Repeatable.
    #[arg(long = "param", value_name = "NAME[=VALUE]")]
    pub(crate) params: Vec<String>,
    /// A plain build variable (not secret, never masked), NAME=VALUE, or NAME to take the
    /// value from the environment variable NAME; read with `ctx.var("NAME")`. Repeatable.
    #[arg(long = "var", value_name = "NAME[=VALUE]")]
    pub(crate) vars: Vec<String>,
    /// The event the build is for: push, pull-request, tag, manual or schedule (read with
    /// `ctx.trigger()`) [default: tag when the ref built is a tag, else push].
    #[arg(long)]
    pub(crate) trigger: Option<Trigger>,
    /// Who started the build: cli, api or webhook.
    #[arg(long, default_value = "cli")]
    pub(crate) source: Source,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    #[command(flatten)]
    pub(crate) context: ContextArgs,
    /// Run only this job and what it depends on (repeatable).
    #[arg(long = "job", value_name = "ID")]
    pub(crate) jobs: Vec<String>,
    /// At most this many container jobs at once, and apart from them this many `ctx.shell`
    /// commands, so action jobs never wait behind containers [default: the number of CPUs].
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) max_parallel: Option<u32>,
    /// After the first failure, start no new job and cancel running ones.
    #[arg(long)]
    pub(crate) fail_fast: bool,
    /// Approve this blocked job (repeatable).
    #[arg(long = "approve", value_name = "ID")]
    pub(crate) approve: Vec<String>,
    /// Ask on stdin whether each other blocked job may run: auto (when stdin is a terminal),
    /// always or never. A blocked job not approved is skipped.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) ask: AskMode,
    /// Also write every event as a JSON line to FILE.
    #[arg(long, value_name = "FILE")]
    pub(crate) events: Option<PathBuf>,
    /// Plain time-stamped lines even on a terminal.
    #[arg(long)]
    pub(crate) plain: bool,
    /// What runs container jobs: podman, docker, the host shell (images ignored), or auto
    /// (podman, else docker, else the shell).
    #[arg(
        long,
        default_value = "auto",
        value_parser = clap::builder::PossibleValuesParser::new(EngineChoice::ALL.map(|(name, _)| name))
            .try_map(|name| name.parse::<EngineChoice>()),
    )]
    pub(crate) engine: EngineChoice,
    /// When the pipeline process may exit while only container jobs run (it is relaunched
    /// and replays its journal when one ends): never, auto (after --suspend-after) or always.
    #[arg(long, default_value = "auto")]
    pub(crate) suspend: SuspendMode,
    /// How long only container jobs must run before `--suspend auto` suspends (`500ms`,
    /// `2s`, `1m`).
    #[arg(long, default_value = "3s", value_parser = monkeyci_protocol::duration::parse)]
    pub(crate) suspend_after: std::time::Duration,
}

#[derive(Debug, Args)]
pub(crate) struct PlanArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    #[command(flatten)]
    pub(crate) context: ContextArgs,
    /// Only this job and what it depends on (repeatable).
    #[arg(long = "job", value_name = "ID")]
    pub(crate) jobs: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub(crate) format: PlanFormat,
}

#[derive(Debug, Args)]
pub(crate) struct VerifyArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    #[command(flatten)]
    pub(crate) context: ContextArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TestArgs {
    #[command(flatten)]
    pub(crate) pipeline: PipelineArgs,
    /// Arguments for `cargo test`, after `--`.
    #[arg(last = true)]
    pub(crate) cargo_args: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// The repository to add a pipeline to.
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
}

/// Which repository's recorded builds a command reads.
#[derive(Debug, Args)]
pub(crate) struct RecordScope {
    /// The repository (or a directory in it) whose builds are read.
    #[arg(long = "repo", value_name = "DIR", default_value = ".")]
    pub(crate) repo: PathBuf,
    /// Read the builds of every repository.
    #[arg(long)]
    pub(crate) all: bool,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// The repository (or a directory in it) whose builds are listed.
    #[arg(default_value = ".")]
    pub(crate) dir: PathBuf,
    /// List the builds of every repository.
    #[arg(long)]
    pub(crate) all: bool,
    /// At most this many builds, newest first; 0 lists them all (on a server, 1000).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub(crate) limit: usize,
    /// On a server: only this repository's builds.
    #[arg(long = "repo", value_name = "ORG/REPO")]
    pub(crate) repo: Option<String>,
    /// On a server: only builds in this status (queued, running, success, failure, error,
    /// canceled).
    #[arg(long)]
    pub(crate) status: Option<String>,
    /// On a server: only builds of this branch.
    #[arg(long)]
    pub(crate) branch: Option<String>,
    #[command(flatten)]
    pub(crate) remote: crate::remote_args::RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// A build id (default: the newest build of the repository), or a job of the newest build.
    #[arg(value_name = "BUILD")]
    pub(crate) first: Option<String>,
    /// A job of that build.
    #[arg(value_name = "JOB")]
    pub(crate) second: Option<String>,
    #[command(flatten)]
    pub(crate) scope: RecordScope,
    /// On a server: follow the job's log (or the build, without JOB) until it ends.
    #[arg(long)]
    pub(crate) follow: bool,
    #[command(flatten)]
    pub(crate) remote: crate::remote_args::RemoteArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ArtifactsArgs {
    /// A build id (default: the newest build of the repository), or an artifact of the newest
    /// build.
    #[arg(value_name = "BUILD")]
    pub(crate) first: Option<String>,
    /// An artifact of that build to extract; without it, the build's artifacts are listed.
    #[arg(value_name = "ID")]
    pub(crate) second: Option<String>,
    /// Where to extract the artifact (created if needed; files already there are replaced).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub(crate) to: PathBuf,
    #[command(flatten)]
    pub(crate) scope: RecordScope,
}
