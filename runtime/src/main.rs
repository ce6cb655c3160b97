//! `monkeyci`: compiles pipeline crates, runs them against a local build API, shows progress.
//!
//! Modules: `cli` (arguments and commands), `compiler` (cargo and the binary cache), `git`
//! (build context), `controller` (build API + script process), `api` (the build API's HTTP
//! routes), `render` (progress and summary), `planfmt` (plan output formats), `paths`.

mod api;
mod archive;
mod cli;
mod compiler;
mod controller;
mod engine;
mod git;
mod paths;
mod planfmt;
mod prune;
mod record;
mod render;
mod storage;

fn main() -> std::process::ExitCode {
    init_diagnostics();
    cli::main()
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
