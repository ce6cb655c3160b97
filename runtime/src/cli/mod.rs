//! The `monkeyci` command line: parses arguments, runs one command, reports errors once.
//!
//! Exit codes: 0 success; 1 a job failed (or the pipeline's tests failed); 2 the pipeline
//! could not be compiled, planned or run, or the command line was wrong.

mod args;
mod cmd;

use std::process::ExitCode;

use clap::Parser;

pub(crate) use args::Cli;

/// How a command ended, when it did not fail with an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Success,
    /// A job (or test) failed; the details were shown.
    Failed,
    /// The pipeline could not be built or planned; the details were shown.
    Unusable,
}

pub(crate) fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let _ = err.print();
            return if err.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match cmd::run(cli) {
        Ok(Outcome::Success) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Ok(Outcome::Unusable) => ExitCode::from(2),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
