//! End-to-end tests: they drive the real `monkeyci` binary as a user would, on the example
//! pipelines and on git repositories made for each test, and check exit codes, the events
//! written with `--events` and what the user reads.
//!
//! All tests share one pipeline cache (`MONKEYCI_CACHE_DIR`, see [`util::CACHE_DIR`]), so the
//! sdk compiles once per run. Run with `cargo test -p monkeyci --test e2e`.

// A test crate: its helpers are `pub` for the test modules, and setup failures may panic.
#![allow(unreachable_pub, clippy::unwrap_used)]

/// `MonkeyciCommand` (runs the binary, parses its events) and `TestRepo` (temp git repository
/// with a `.monkeyci` pipeline crate).
mod util;

/// Every example pipeline of `examples/`, run end to end.
mod examples;

/// Pipelines in real git repositories: changes from git, compile errors, unit tests, `init`,
/// warm starts.
mod repos;

/// The command line: job filters, plan formats, verify, test, and errors for bad inputs.
mod cli;

/// Artifacts and caches: files handed between jobs of a build and kept between builds.
mod artifacts;

/// Build records: what a user reads later is kept, not workspace copies; `build list` and
/// `build logs` read a repository's own builds, with the markers of the live view.
mod records;

/// Container jobs on the podman and host-shell engines: script lines and their logs, env,
/// work dir and size, time limits, images without a shell or missing, secrets, parallelism,
/// idempotent dispatch, Ctrl-C.
mod containers;

/// Nothing lost, nothing misreported: thousands of large log lines and megabytes of shell
/// output arrive exactly once, an output too deep for the build API fails its job, and bytes
/// that are not UTF-8 on the pipeline's stdout stop nothing.
mod delivery;

/// Which toolchain compiles the pipeline, and which toolchain and environment its jobs get.
mod toolchain;

/// `ctx.run`: containers awaited from inside action jobs, across suspensions.
mod steps;

/// `ctx.shell` hardening: no build credentials in a command's environment; a command's
/// processes end with its step (left in the background, ignoring SIGTERM, or when the script
/// is killed); output that is not UTF-8 is kept. And planning that hangs in a `when`
/// condition fails naming it.
mod shell;

/// Jobs and their data: container specs from their dependencies' outputs (across a
/// suspension), jobs after a whole `#[pipeline]`, matrix outputs read by id.
mod data;

/// Suspension: the pipeline process exits while only containers run and is resumed from its
/// journal (also after kill -9); what the process table shows, what runs once, a changed binary.
mod suspend;

/// Replay on resume: a resumed script that plans other jobs, or whose action job asks for
/// another container at a journaled `ctx.run` step, fails naming both; a journal of 10,000
/// entries replays every job once.
mod replay;

/// The docker engine against a real dockerd: lines, env, secrets, no network, time limits,
/// suspension, nothing left behind.
mod docker;

/// Nothing a container job starts outlives it or sees more than its own job: background
/// processes, SIGTERM ignored, containers of a killed `monkeyci`, secrets in `inspect`, the
/// runtime's variables.
mod processes;

/// Hostile container jobs (issue "hardening"): links and special files in the job's directory,
/// forged events, output that is not UTF-8 or comes fast; on the shell, podman and docker.
mod hostile;

/// `monkeyci server`: builds through the API and the CLI on its embedded agent, errors and
/// scopes, cancel, the event stream across reconnects, a restart after `kill -9`.
mod server;

/// Remote agents (`monkeyci agent`): two agents share a queue and no build runs twice; an
/// agent killed mid-build loses it (`error: agent lost`) and its retry runs on the other; a
/// server killed mid-build comes back and the remote build's log is complete; cancel.
mod agents;

/// Forge webhooks into `monkeyci server`: signed real payloads start builds; bad signatures,
/// deletions, pings and redeliveries start nothing; a burst of 200 loses none.
mod webhooks;

/// The API of builds run by a server, with the CLI against it: jobs and their logs, retry,
/// approvals of blocked jobs, `build list` filters, an org's live events, org scopes.
mod api;
/// Params on `monkeyci server` (issue 11): a pipeline reads a param and shows it every way it
/// can, and no record, event stream, log or API answer shows it; label filters; nothing in
/// clear in the database; build tokens reach only their running build; org tokens only their
/// org's params.
mod params;
/// Metering on `monkeyci server`: a build's container, action and script time in
/// `/usage` and `monkeyci usage`, once across a restart; an org over its credits runs no more.
mod usage;
