//! Write MonkeyCI pipelines as Rust.
//!
//! A pipeline is a small binary crate in `.monkeyci/` of a repository. Its jobs are functions
//! marked [`#[job]`](job): an `async fn` is an *action job* that runs in the script process and
//! returns a typed output; a plain `fn` returning a [`ContainerJob`] is a *container job*.
//! Dependencies are named by function, so a typo is a compile error, and conditions are
//! ordinary functions of the build context [`Ctx`]. `monkeyci build run` compiles the crate
//! and runs it; `cargo test` tests it with [`testing`].
//!
//! ```
//! use monkeyci_sdk::prelude::*;
//! use serde::{Deserialize, Serialize};
//!
//! /// Runs the tests in a container.
//! #[job]
//! fn unit_test(_ctx: &Ctx) -> ContainerJob {
//!     container("docker.io/rust:1.95").script(["cargo test --locked"]).size(2)
//! }
//!
//! #[derive(Serialize, Deserialize)]
//! struct Release {
//!     version: String,
//! }
//!
//! /// An action job: async Rust in the script process; its output goes to its dependents.
//! #[job(depends_on = [unit_test], when = is_release)]
//! async fn publish(ctx: &Ctx) -> Result<Release> {
//!     let token = ctx.param("CRATES_TOKEN")?; // a Secret: never printed
//!     ctx.log(format!("publishing with {token:?}"));
//!     Ok(Release { version: ctx.tag().unwrap_or_default().to_owned() })
//! }
//!
//! #[job(depends_on = [publish])]
//! async fn announce(ctx: &Ctx) -> Result<()> {
//!     let release = ctx.output::<publish>()?;
//!     ctx.log(format!("released {}", release.version));
//!     Ok(())
//! }
//!
//! fn is_release(ctx: &Ctx) -> bool {
//!     ctx.tag().is_some()
//! }
//!
//! /// Jobs computed from the context.
//! #[pipeline]
//! fn per_crate(ctx: &Ctx) -> Vec<Job> {
//!     ["core", "cli"]
//!         .into_iter()
//!         .filter(|name| ctx.touched(&format!("{name}/**")))
//!         .map(|name| Job::container(format!("test-{name}"), container("rust:1.95").script([format!("cargo test -p {name}")])))
//!         .collect()
//! }
//!
//! monkeyci_sdk::main!();
//! ```
//!
//! # What runs where
//!
//! The script binary plans the build (evaluating conditions and `#[pipeline]` functions),
//! then runs every job as soon as its dependencies succeeded. Action jobs run concurrently in
//! the script process; process work ([`Ctx::shell`], container jobs) is bounded by
//! `--max-parallel`. A job that fails or panics fails the build, its dependents are skipped
//! with the reason, and independent jobs keep running (unless `--fail-fast`).
//!
//! All effects go through [`Ctx`]: reading params, logging, running commands, reading the
//! outputs of dependencies. Job output printed with `println!` still appears, but attributed
//! to the script rather than the job: prefer [`Ctx::log`].
//!
//! # Suspension and resume
//!
//! A script that only waits for containers costs memory and CPU for nothing, so it can
//! *suspend*: once every running job is waiting for a container (a container job, or an action
//! job inside [`Ctx::run`]), it journals where each job is and exits
//! (`monkeyci build run --suspend auto|always|never`). When a container ends, the runtime
//! starts the same compiled binary again, which plans the same jobs and *replays* its journal:
//! - jobs that ended return their recorded status and output without running;
//! - container jobs already started are awaited again, never started twice;
//! - an action job that was waiting runs again from its start, but each step it had already
//!   taken ([`Ctx::run`], [`Ctx::shell`]) returns its recorded result at once without running,
//!   and the log lines it had written are not written again; the container it was waiting for
//!   is awaited again. Its duration and its `timeout` count from its first start.
//!
//! A script killed in the middle (`kill -9`, out of memory) resumes the same way from its
//! journal: only the step that was in flight runs again. A job that must not run twice (a
//! deployment, a release upload) declares `#[job(idempotent = false)]`: the script never
//! suspends while it runs, and after a crash it fails instead of running again.
//!
//! For the replay to be right, a launch must take the same decisions as the one before:
//! - conditions and `#[pipeline]` functions must depend only on [`Ctx`] (branch, tag,
//!   changes, params, source, [`Ctx::now`], [`Ctx::random_u64`], [`Ctx::uuid`]), not on the wall clock,
//!   randomness, environment variables or files outside the checkout. A resumed script that
//!   plans other jobs fails the build, naming the jobs gained and lost, and re-runs nothing;
//! - an action job must take its `ctx.run` and `ctx.shell` steps in the same order with the
//!   same containers and commands; a step that differs from the recorded one fails the job,
//!   naming both;
//! - effects that bypass `Ctx` (writing files with `std::fs`, HTTP calls, `println!`) are not
//!   journaled: in an action job that waits in `ctx.run`, code before the wait runs again on
//!   resume. Put such effects in `ctx.shell`, after the last `ctx.run`, or in a job of their own;
//! - a job's output is what its dependents see after a resume: pass data between jobs as
//!   outputs or artifacts, not through global variables or files the script keeps in memory;
//! - a replayed `ctx.shell` step returns its output with secrets masked, as it was journaled.
//!
//! The runtime refuses to resume under a different binary: the journal belongs to the binary
//! that wrote it.
#![doc(test(attr(deny(warnings))))]

// Lets the sdk's own tests use `#[job]`, whose expansion names `::monkeyci_sdk`.
extern crate self as monkeyci_sdk;

mod client;
mod ctx;
mod dsl;
mod durable;
mod future;
mod glob;
mod plan;
pub mod prelude;
// The wire types, shared with the runtime; tests of pipelines find the ones they read in
// `testing`.
use monkeyci_protocol as protocol;
mod runner;
mod scheduler;
mod script;
mod secret;
pub mod testing;

#[doc(hidden)]
pub mod __private;

pub use ctx::Ctx;
pub use dsl::container::{Artifact, Cache, ContainerJob, artifact, cache, container};
pub use dsl::error::{JobError, ResultExt};
pub use dsl::job::{Job, JobId};
pub use dsl::output::{JobMarker, JobOutput, PipelineMarker, PipelineOutput};
pub use durable::step::ShellOutput;
/// What a build is about and what a container job runs, as [`Ctx`] and [`ContainerJob`] show them.
pub use monkeyci_protocol::{Changes, ContainerSpec, Runs, Source, Trigger};
pub use plan::Error as PlanError;
pub use secret::Secret;

/// Declares a job.
///
/// On an `async fn(&Ctx) -> Result<T>` it declares an **action job**, run in the script
/// process; `T` (any `Serialize + Deserialize` type, or `()`) is kept as JSON and read by
/// dependents with [`Ctx::output`]. On a plain `fn(&Ctx) -> ContainerJob` (or
/// `-> Result<ContainerJob>`) it declares a **container job**; a container job whose spec reads
/// the output of a job it depends on ([`Ctx::output`]) has it resolved when that job has
/// ended, just before its container starts (the plan says so instead of showing the spec). The
/// id is the function's name with `_` as `-`.
///
/// The function stays an ordinary function (tests can call it). Beside it, `#[job]` declares a
/// type of the same name that names the job: `depends_on = [build]`, `ctx.output::<build>()`,
/// `Job::action(..).depends_on([JobId::of::<build>()])`.
///
/// | argument | meaning |
/// |---|---|
/// | `depends_on = [a, b]` | runs after the jobs `a` and `b` succeeded (names of `#[job]` functions, or of `#[pipeline]` functions: every job they make) |
/// | `when = predicate` | a `fn(&Ctx) -> bool`; when false, the job is not part of the build |
/// | `id = "name"` | the job id (default: the function name with `_` as `-`) |
/// | `blocked` | waits for approval before it runs |
/// | `timeout = "10m"` | stops an attempt after this long (`500ms`, `30s`, `10m`, `1h30m`) |
/// | `retries = 2` | runs the job again when it fails, up to this many times (a container job in a new container, with the next attempt number) |
/// | `idempotent = false` | an action job that must not run twice: the script does not suspend while it runs, and after a crash it fails instead of running again ([`Job::idempotent`]) |
/// | `runs = on_failure` | runs once its dependencies ended, only if one failed (or was skipped because a job before it failed); `runs = always` runs however they ended (not when the build is canceled); default `on_success` ([`Job::runs`]) |
/// | `allow_failure` | its failure or timeout does not fail the build; it shows as `failure (allowed)` and its dependents run as if it had succeeded ([`Job::allow_failure`]) |
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// #[job(timeout = "5m", retries = 1)]
/// async fn fetch(ctx: &Ctx) -> Result<u32> {
///     ctx.log("fetching");
///     Ok(42)
/// }
///
/// #[job(depends_on = [fetch], id = "check-answer", when = on_main)]
/// async fn check(ctx: &Ctx) -> Result<()> {
///     let answer = ctx.output::<fetch>()?; // a u32
///     if answer != 42 {
///         return Err(JobError::msg(format!("wrong answer {answer}")));
///     }
///     Ok(())
/// }
///
/// fn on_main(ctx: &Ctx) -> bool {
///     ctx.is_main_branch()
/// }
/// # fn main() {}
/// ```
#[doc(inline)]
pub use monkeyci_macros::job;

/// Declares a function that computes jobs from the build context at run time: matrices,
/// monorepo fan-out, anything a loop can express. It returns `Vec<Job>` (or any iterator of
/// [`Job`]s); its jobs may depend on `#[job]`s, on other pipelines' jobs
/// ([`JobId::all_of`]) and on each other by id.
///
/// Beside it, `#[pipeline]` declares a type of the same name that names the pipeline: a
/// `#[job(depends_on = [matrix])]` runs after every job `matrix` made. With
/// `#[pipeline(output = T)]`, every job it makes returns a `T` (checked when the build is
/// planned: action jobs return `T`, container jobs `()`), and later jobs read one by its id
/// with [`Ctx::output_of`] or all of them with [`Ctx::outputs_of`]. Like a job's, the type
/// lives in the type namespace: a pipeline cannot share its name with a module or type in
/// scope (such as `mod tests`).
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// #[job]
/// async fn prepare(_ctx: &Ctx) -> Result<()> {
///     Ok(())
/// }
///
/// #[pipeline]
/// fn matrix(_ctx: &Ctx) -> Vec<Job> {
///     let mut jobs = Vec::new();
///     for os in ["linux", "macos"] {
///         for rust in ["stable", "1.95"] {
///             let image = format!("rust:{rust}-{os}");
///             let job = Job::container(format!("test-{os}-{rust}"), container(image).script(["cargo test"]));
///             jobs.push(job.depends_on([JobId::of::<prepare>()]));
///         }
///     }
///     jobs
/// }
/// # fn main() {}
/// ```
///
/// ```
/// use monkeyci_sdk::prelude::*;
/// use serde::{Deserialize, Serialize};
///
/// #[derive(Serialize, Deserialize)]
/// struct Report {
///     passed: u32,
/// }
///
/// #[pipeline(output = Report)]
/// fn tests(_ctx: &Ctx) -> Vec<Job> {
///     ["1.95", "1.96"]
///         .into_iter()
///         .map(|rust| Job::action(format!("test-{rust}"), |_ctx| async { Ok(Report { passed: 12 }) }))
///         .collect()
/// }
///
/// #[job(depends_on = [tests])]
/// async fn summary(ctx: &Ctx) -> Result<u32> {
///     let msrv = ctx.output_of::<tests>("test-1.95")?; // a Report
///     let all = ctx.outputs_of::<tests>()?; // every Report, by job id
///     Ok(msrv.passed + all.values().map(|report| report.passed).sum::<u32>())
/// }
/// # fn main() {}
/// ```
#[doc(inline)]
pub use monkeyci_macros::pipeline;

/// Awaits several futures at once, such as `ctx.run` steps, and returns all their results
/// (tokio's `join!`, re-exported so pipelines need no other dependency).
pub use tokio::join;

/// The `main` function of a pipeline crate: put `monkeyci_sdk::main!();` at the end of
/// `main.rs`. The binary then does what `monkeyci` asks of it (plan or run the jobs).
///
/// `main!(env = [("NAME", "value"), ...])` also sets environment variables for every job of
/// the pipeline, as a workflow's `env:` does: container jobs get them (a job's own `.env`
/// wins, and `build plan` shows them), and so do the commands of action jobs (`ctx.shell`, and
/// the containers of `ctx.run`). Unit tests with [`testing::TestCtx`] see them too.
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// #[job]
/// fn test(_ctx: &Ctx) -> ContainerJob {
///     container("rust:1.95").script(["cargo test"]).env("RUST_BACKTRACE", "full")
/// }
///
/// monkeyci_sdk::main!(env = [("CARGO_TERM_COLOR", "always"), ("RUST_BACKTRACE", "1")]);
/// ```
#[macro_export]
macro_rules! main {
    () => {
        fn main() -> ::std::process::ExitCode {
            ::monkeyci_sdk::__private::run_main()
        }
    };
    (env = [$(($name:expr, $value:expr)),* $(,)?] $(,)?) => {
        ::monkeyci_sdk::__private::inventory::submit! {
            ::monkeyci_sdk::__private::PipelineEnv { vars: &[$(($name, $value)),*] }
        }
        $crate::main!();
    };
}
