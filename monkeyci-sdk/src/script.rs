//! The pipeline binary's `main`: reads what the runtime asked for, plans, runs or reports the
//! plan, and exits with a status the runtime understands.
//!
//! Exit codes: 0 the build succeeded (or the plan was reported), 1 a job failed, 2 the
//! pipeline could not be planned or the script could not talk to the runtime, 3 the script
//! suspended (see [`SCRIPT_EXIT_SUSPENDED`]).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use crate::client::{ApiClient, ApiEventSink};
use crate::ctx::Ctx;
use crate::durable::build::Build;
use crate::durable::journal::Replay;
use crate::durable::scope::Scope;
use crate::protocol::error_chain;
use crate::protocol::{
    BuildStatus, EventKind, SCRIPT_CONFIG_ENV, SCRIPT_CONFIG_ON_STDIN, SCRIPT_EXIT_SUSPENDED, ScriptConfig, ScriptMode,
    SuspendMode,
};
use crate::runner::{EventSink, Seams};
use crate::{plan, scheduler};

const PLANNING_FAILED: u8 = 2;

/// The script could not deliver its events to the runtime (see the module's exit codes).
const EVENTS_LOST: u8 = 2;

pub(crate) fn main() -> ExitCode {
    let config = match std::env::var(SCRIPT_CONFIG_ENV) {
        Ok(config) => config,
        Err(_) => {
            eprintln!(
                "this program is a MonkeyCI pipeline; run it with `monkeyci build run` in its repository \
                 (or test it with `cargo test`)"
            );
            return ExitCode::from(PLANNING_FAILED);
        }
    };
    let config = if config == SCRIPT_CONFIG_ON_STDIN {
        let mut text = String::new();
        if let Err(err) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            eprintln!("monkeyci: cannot read the script configuration from stdin: {err}");
            return ExitCode::from(PLANNING_FAILED);
        }
        text
    } else {
        config
    };
    let config: ScriptConfig = match serde_json::from_str(&config) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("monkeyci: {SCRIPT_CONFIG_ENV} is not a valid script configuration: {err}");
            return ExitCode::from(PLANNING_FAILED);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("monkeyci: cannot start the async runtime: {err}");
            return ExitCode::from(PLANNING_FAILED);
        }
    };
    ExitCode::from(runtime.block_on(run(config)))
}

async fn run(config: ScriptConfig) -> u8 {
    let client = match ApiClient::new(&config.api) {
        Ok(client) => client,
        Err(err) => {
            eprintln!("monkeyci: {}", error_chain(&err));
            return PLANNING_FAILED;
        }
    };
    let params = match client.params().await {
        Ok(params) => params,
        Err(err) => {
            eprintln!("monkeyci: cannot read the build parameters: {}", error_chain(&err));
            return PLANNING_FAILED;
        }
    };
    let sink = Arc::new(ApiEventSink::start(client.clone(), config.launch));
    let seams = Seams {
        events: sink.clone(),
        containers: Arc::new(client.clone()),
        artifacts: Arc::new(client.clone()),
        approver: Arc::new(client.clone()),
    };
    let build = Arc::new(Build::new(config.build, params, seams, config.max_parallel));
    let ctx = Ctx::new(Arc::new(Scope::script(Arc::clone(&build))));
    let code = match plan::resolve(&ctx, &config.jobs) {
        Err(err) => {
            build.emit(EventKind::ScriptEnd { status: BuildStatus::Error, message: Some(err.to_string()) });
            PLANNING_FAILED
        }
        Ok(resolved) => match config.mode {
            ScriptMode::Plan => {
                build.emit(EventKind::ScriptPlan { plan: resolved.plan() });
                0
            }
            ScriptMode::Run => {
                let canceler = Arc::clone(&build);
                tokio::spawn(async move {
                    if termination_requested().await {
                        canceler.cancel();
                    }
                });
                // Events that cannot reach the runtime leave it blind: stop the build at once.
                let (canceler, watched) = (Arc::clone(&build), Arc::clone(&sink));
                tokio::spawn(async move {
                    let _ = watched.failed().await;
                    canceler.cancel();
                });
                let replay = if config.resume {
                    match client.journal().await {
                        Ok(journal) => Replay::new(journal.entries),
                        Err(err) => {
                            eprintln!("monkeyci: cannot read the journal to resume: {}", error_chain(&err));
                            sink.flush().await;
                            return PLANNING_FAILED;
                        }
                    }
                } else {
                    Replay::default()
                };
                let suspend_after = match config.suspend {
                    SuspendMode::Never => None,
                    SuspendMode::Always => Some(Duration::ZERO),
                    SuspendMode::Auto => Some(Duration::from_millis(config.suspend_after_ms)),
                };
                let planned: Vec<String> = resolved.plan().jobs.into_iter().map(|job| job.id).collect();
                if let Some(message) = replay.divergence(&planned) {
                    build.emit(EventKind::ScriptEnd { status: BuildStatus::Error, message: Some(message) });
                    sink.flush().await;
                    return PLANNING_FAILED;
                }
                let options = scheduler::Options { fail_fast: config.fail_fast, suspend_after, replay };
                let report = scheduler::run(&build, resolved, options).await;
                match report.suspended {
                    Some(_) => SCRIPT_EXIT_SUSPENDED,
                    None => u8::from(report.status != BuildStatus::Success),
                }
            }
        },
    };
    sink.flush().await;
    match sink.failure() {
        // The runtime did not get the whole story, whatever the jobs did: the build failed.
        Some(message) => {
            eprintln!("monkeyci: the build failed: {message}");
            EVENTS_LOST
        }
        None => code,
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM; `false` if they cannot be watched.
async fn termination_requested() -> bool {
    let Ok(mut term) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) else {
        return false;
    };
    tokio::select! {
        interrupted = tokio::signal::ctrl_c() => interrupted.is_ok(),
        _ = term.recv() => true,
    }
}
