//! `monkeyci`: runs pipeline crates locally with live progress, and reads back recorded builds.
//!
//! The binary is thin: it parses the command line ([`args`]), runs one command ([`cmd`], one
//! module per subcommand), shows progress and summaries ([`render`], [`planfmt`]) and reports
//! an error once. The work is the libraries', shared with the server to come: `monkeyci-build`
//! (compiling, the build API, the script process, records), `monkeyci-jobs` (container jobs
//! and engines), `monkeyci-store` (blobs, artifacts, caches) and `monkeyci-archive`. The binary
//! decides nothing about a build: it makes the local choices (paths, the terminal, the person
//! at it) and shows the result.
//!
//! Exit codes: 0 success; 1 a job failed (or the pipeline's tests failed); 2 the pipeline
//! could not be compiled, planned or run, or the command line was wrong.

mod args;
mod cmd;
mod outcome;
mod param_args;
mod paths;
mod planfmt;
mod remote_args;
mod render;
mod settings;

use std::process::ExitCode;

use clap::Parser;

use args::Cli;
use outcome::Outcome;

fn main() -> ExitCode {
    init_diagnostics();
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
        // A closed pipe (`monkeyci build plan | head`) is the reader's choice, not an error.
        Err(err) if err.chain().any(is_broken_pipe) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}

fn is_broken_pipe(err: &(dyn std::error::Error + 'static)) -> bool {
    err.downcast_ref::<std::io::Error>().is_some_and(|err| err.kind() == std::io::ErrorKind::BrokenPipe)
}

/// Diagnostics (`tracing`) go to stderr at the level in `MONKEYCI_LOG` (error, warn, info,
/// debug, trace; default warn). What users read is the renderer's, not these.
fn init_diagnostics() {
    let level = std::env::var("MONKEYCI_LOG")
        .ok()
        .and_then(|level| level.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::WARN);
    tracing_subscriber::fmt().with_max_level(level).with_writer(std::io::stderr).without_time().init();
}
