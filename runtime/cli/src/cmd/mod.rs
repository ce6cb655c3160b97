//! One module per subcommand, each with one function per command taking its arguments and
//! returning its [`Outcome`]. Errors are returned, never printed here: `main` reports them.

mod agent;
mod build;
mod cache;
mod init;
mod params;
mod records;
mod remote;
mod runtime;
mod usage;

use super::args::{BuildCommand, CacheCommand, Cli, Command};
use crate::outcome::Outcome;

pub(crate) fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Build(build) => match *build {
            BuildCommand::Run(args) => build::run(args),
            BuildCommand::Plan(args) => build::plan(args),
            BuildCommand::Verify(args) => build::verify(args),
            BuildCommand::Test(args) => build::test(args),
            BuildCommand::List(args) if remote::lists_remotely(&args) => remote::list(args),
            BuildCommand::List(args) => records::list(args),
            BuildCommand::Logs(args) if args.remote.server.is_some() => remote::logs(args),
            BuildCommand::Logs(args) => records::logs(args),
            BuildCommand::Artifacts(args) => records::artifacts(args),
            BuildCommand::Trigger(args) => remote::trigger(args),
            BuildCommand::Show(args) => remote::show(args),
            BuildCommand::Watch(args) => remote::watch(args),
            BuildCommand::Cancel(args) => remote::cancel(args),
            BuildCommand::Retry(args) => remote::retry(args),
            BuildCommand::Approve(args) => remote::decide(args, true),
            BuildCommand::Reject(args) => remote::decide(args, false),
        },
        Command::Init(args) => init::run(args),
        Command::Cache(CacheCommand::Prune(args)) => cache::prune(args),
        Command::Server(args) => remote::server(*args),
        Command::Agent(args) => agent::run(*args),
        Command::Token(command) => remote::token(command),
        Command::Org(command) => remote::org(command),
        Command::Repo(command) => remote::repo(command),
        Command::Param(command) => params::run(command),
        Command::Usage(args) => usage::show(args),
    }
}
