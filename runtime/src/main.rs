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
mod record;
mod render;
mod storage;

fn main() -> std::process::ExitCode {
    cli::main()
}
