//! One module per subcommand, each with a `run` taking its arguments.

mod build;
mod init;

use super::Outcome;
use super::args::{BuildCommand, Cli, Command};

pub(crate) fn run(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Build(BuildCommand::Run(args)) => build::run(args),
        Command::Build(BuildCommand::Plan(args)) => build::plan(args),
        Command::Build(BuildCommand::Verify(args)) => build::verify(args),
        Command::Build(BuildCommand::Test(args)) => build::test(args),
        Command::Init(args) => init::run(args),
    }
}
