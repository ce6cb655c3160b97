//! [`Ctx`]: what a job knows about its build, and the only way a pipeline performs effects.
//!
//! Reading the build (branch, tag, changed files, params, variables) and acting in it (logging, running
//! commands, reading a dependency's output) all go through `Ctx`, so every effect can be
//! seen, masked and journaled. `Ctx` is a facade: a cheap handle on a scope of the engine
//! (`durable::scope`, the script or one job), and each method delegates to the engine in a line
//! or two. This module owns the user-facing API and its docs, and no logic of its own: no
//! scheduling, journaling or replay.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::dsl::container::{Artifact, ContainerJob};
use crate::dsl::env::pipeline_env;
use crate::dsl::error::JobError;
use crate::dsl::output::{JobMarker, JobOutput, PipelineOutput};
use crate::durable::build::Build;
use crate::durable::scope::Scope;
use crate::durable::step::{self, ShellOutput};
use crate::glob;
use crate::protocol::{Changes, ContainerResult, OutputStream, Source, Trigger};
use crate::secret::Secret;

/// The build context handed to every job, condition and `#[pipeline]` function.
///
/// Cheap to clone. Inside a job it also knows the job: its id, its work directory and the
/// outputs of the jobs it depends on.
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// fn is_release(ctx: &Ctx) -> bool {
///     ctx.tag().is_some_and(|tag| tag.starts_with('v'))
/// }
///
/// let ctx = monkeyci_sdk::testing::TestCtx::new().tag("v1.2.0").ctx();
/// assert!(is_release(&ctx));
/// assert_eq!(ctx.branch(), None);
/// ```
#[derive(Clone)]
pub struct Ctx {
    /// The script or job this context acts for; its clones share it (and its draws).
    scope: Arc<Scope>,
}

impl Ctx {
    /// The context acting for `scope`, to hand to user code.
    pub(crate) fn new(scope: Arc<Scope>) -> Ctx {
        Ctx { scope }
    }

    /// A context of job `id` in this context's build, as the scheduler makes them.
    #[cfg(test)]
    pub(crate) fn for_job(&self, id: &str, suspendable: bool) -> Ctx {
        Ctx::new(Arc::new(Scope::job(Arc::clone(self.scope.build()), id, suspendable)))
    }

    /// A context of this context's build in which a container spec is planned: reading an
    /// output fails there, and is noted ([`Ctx::read_outputs`]).
    pub(crate) fn spec_preview(&self) -> Ctx {
        Ctx::new(Arc::new(Scope::spec_preview(Arc::clone(self.scope.build()))))
    }

    /// Whether code given this context read an output while it planned a container spec.
    pub(crate) fn read_outputs(&self) -> bool {
        self.scope.read_outputs()
    }

    /// Cancels the build, as Ctrl-C would.
    #[cfg(test)]
    pub(crate) fn cancel_build(&self) {
        self.build().cancel();
    }

    fn build(&self) -> &Build {
        self.scope.build()
    }

    /// Runs a container from inside an action job and waits for it to end: the job fails
    /// with the container's message if it does not succeed.
    ///
    /// This is a journaled step: while it waits (and nothing else runs in the script), the
    /// script may suspend; when it is resumed, the action job runs again from its start and
    /// each step (`ctx.run`, [`Ctx::shell`]) that already ended returns its recorded result at
    /// once, while the one in flight is awaited again (never started twice). Take the steps in
    /// the same order on every run of the job: a resumed job that asks for a different
    /// container than the one recorded at that step fails, naming both. Futures may run
    /// concurrently (`join!`); their order is the order of the calls.
    ///
    /// ```no_run
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn build_both(ctx: &Ctx) -> Result<()> {
    ///     let a = ctx.run(container("rust:1.95").script(["cargo build -p a"]));
    ///     let b = ctx.run(container("rust:1.95").script(["cargo build -p b"]));
    ///     let (a, b) = monkeyci_sdk::join!(a, b);
    ///     a?;
    ///     b?;
    ///     Ok(())
    /// }
    /// # fn main() {}
    /// ```
    pub fn run(&self, spec: ContainerJob) -> impl Future<Output = Result<ContainerResult, JobError>> + Send + '_ {
        step::run(&self.scope, spec.with_default_env(pipeline_env()).into_spec())
    }

    /// The id of this build.
    pub fn build_id(&self) -> &str {
        &self.build().info().build_id
    }

    /// The full git ref being built, such as `refs/heads/main` or `refs/tags/v1.0`.
    pub fn git_ref(&self) -> Option<&str> {
        self.build().info().git.git_ref.as_deref()
    }

    /// The branch being built, when the ref is a branch.
    pub fn branch(&self) -> Option<&str> {
        self.git_ref()?.strip_prefix("refs/heads/")
    }

    /// The tag being built, when the ref is a tag.
    pub fn tag(&self) -> Option<&str> {
        self.git_ref()?.strip_prefix("refs/tags/")
    }

    /// The commit being built.
    pub fn commit_id(&self) -> Option<&str> {
        self.build().info().git.commit_id.as_deref()
    }

    /// The repository's main branch.
    pub fn main_branch(&self) -> &str {
        &self.build().info().git.main_branch
    }

    /// Whether the build is on the main branch.
    pub fn is_main_branch(&self) -> bool {
        self.branch() == Some(self.main_branch())
    }

    /// The files this build's commits changed.
    pub fn changes(&self) -> &Changes {
        &self.build().info().git.changes
    }

    /// Whether any added, modified or removed file matches `pattern`, a glob over paths
    /// relative to the repository root: `*` stays within a directory, `**` spans
    /// directories, `?` is one character and `[abc]` one of a set.
    ///
    /// ```
    /// let ctx = monkeyci_sdk::testing::TestCtx::new().modified(["app/src/main.rs"]).ctx();
    /// assert!(ctx.touched("app/**"));
    /// assert!(ctx.touched("**/*.rs"));
    /// assert!(!ctx.touched("docs/**"));
    /// ```
    pub fn touched(&self, pattern: &str) -> bool {
        self.changes().all().any(|path| glob::matches(pattern, path))
    }

    /// The event the build is for: a push, a pull request, a tag, a manual start or a
    /// schedule (`--trigger`; by default `Tag` when building a tag, else `Push`).
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// fn not_pull_request(ctx: &Ctx) -> bool {
    ///     ctx.trigger() != Trigger::PullRequest
    /// }
    ///
    /// let ctx = monkeyci_sdk::testing::TestCtx::new().trigger(Trigger::PullRequest).ctx();
    /// assert!(!not_pull_request(&ctx));
    /// let tagged = monkeyci_sdk::testing::TestCtx::new().tag("v1.0").ctx();
    /// assert_eq!(tagged.trigger(), Trigger::Tag);
    /// ```
    pub fn trigger(&self) -> Trigger {
        self.build().info().trigger()
    }

    /// Who started the build: the command line, the API or a webhook (see [`Ctx::trigger`]
    /// for why).
    pub fn source(&self) -> Source {
        self.build().info().source
    }

    /// Where the repository is checked out.
    pub fn checkout_dir(&self) -> &Path {
        &self.build().info().checkout_dir
    }

    /// The directory the current job works in (the checkout, outside a job).
    pub fn work_dir(&self) -> &Path {
        self.scope.work_dir()
    }

    /// The id of the job this context belongs to, if any.
    pub fn job_id(&self) -> Option<&str> {
        self.scope.job_id()
    }

    /// Leaves a short Markdown result for the build: `monkeyci build logs` and the summary at
    /// the end of a build show it under the job's name, and the server keeps it with the
    /// build (as GitHub's job summaries). A later call replaces an earlier one; each attempt
    /// starts without one. Secrets are masked. At most 64 KiB; outside a job, an error.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn bench(ctx: &Ctx) -> Result<()> {
    ///     ctx.summary("| bench | time |\n|---|---|\n| parse | 1.2 ms |")?;
    ///     Ok(())
    /// }
    /// # fn main() {}
    /// ```
    pub fn summary(&self, markdown: impl AsRef<str>) -> Result<(), JobError> {
        self.scope.summary(markdown.as_ref())
    }

    /// A build parameter. Its value is a [`Secret`]: it cannot be printed or serialized by
    /// accident, and it is masked in job output.
    pub fn param(&self, name: &str) -> Result<Secret, JobError> {
        self.build().param(name)
    }

    /// A plain build variable (`monkeyci build run --var NAME=VALUE`), or `None` when it is not
    /// set. Variables are not secrets: they are never masked, so a value such as `push` reads
    /// as itself in logs. Use [`Ctx::param`] for tokens and passwords.
    ///
    /// ```
    /// let ctx = monkeyci_sdk::testing::TestCtx::new().var("DEPLOY_ENV", "staging").ctx();
    /// assert_eq!(ctx.var("DEPLOY_ENV"), Some("staging"));
    /// assert_eq!(ctx.var("OTHER"), None);
    /// ```
    pub fn var(&self, name: &str) -> Option<&str> {
        self.build().info().vars.get(name).map(String::as_str)
    }

    /// The output of the `#[job]` `J`, which this job depends on (directly or through others):
    /// `ctx.output::<build>()` has the type `build` returns.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn version(_ctx: &Ctx) -> Result<String> {
    ///     Ok("1.2.3".into())
    /// }
    ///
    /// #[job(depends_on = [version])]
    /// async fn package(ctx: &Ctx) -> Result<String> {
    ///     let version = ctx.output::<version>()?; // a String, as `version` returns
    ///     Ok(format!("app-{version}.tar"))
    /// }
    /// # fn main() {}
    /// ```
    ///
    /// A container `#[job]` reads its dependencies' outputs the same way, from a function that
    /// returns `Result<ContainerJob>`: its spec is then resolved when they have ended, just
    /// before the container starts, rather than when the build is planned.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn version(_ctx: &Ctx) -> Result<String> {
    ///     Ok("1.2.3".into())
    /// }
    ///
    /// #[job(depends_on = [version])]
    /// fn package(ctx: &Ctx) -> Result<ContainerJob> {
    ///     let version = ctx.output::<version>()?;
    ///     Ok(container("docker.io/alpine").script(["./package.sh"]).env("VERSION", version))
    /// }
    /// # fn main() {}
    /// ```
    pub fn output<J: JobMarker>(&self) -> Result<J::Output, JobError> {
        self.scope.output(J::ID)
    }

    /// The output of job `id` of the `#[pipeline(output = T)]` `P`, a `T`: a job of a matrix,
    /// read by its id, by a job that depends on it (or on the whole pipeline, `depends_on =
    /// [P]`). An id that `P` did not make is an error naming the ones it did.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[pipeline(output = u32)]
    /// fn matrix(_ctx: &Ctx) -> Vec<Job> {
    ///     ["1.95", "1.96"]
    ///         .into_iter()
    ///         .map(|rust| Job::action(format!("test-{rust}"), |_ctx| async { Ok(42u32) }))
    ///         .collect()
    /// }
    ///
    /// #[job(depends_on = [matrix])]
    /// async fn report(ctx: &Ctx) -> Result<()> {
    ///     let passed: u32 = ctx.output_of::<matrix>("test-1.95")?;
    ///     ctx.log(format!("{passed} tests passed on 1.95"));
    ///     Ok(())
    /// }
    /// # fn main() {}
    /// ```
    pub fn output_of<P: PipelineOutput>(&self, id: &str) -> Result<P::Output, JobError>
    where
        P::Output: JobOutput,
    {
        self.scope.output_of(P::KEY, P::NAME, id)
    }

    /// The outputs of every job of the `#[pipeline(output = T)]` `P`, by id: this job must
    /// depend on each (`depends_on = [P]` does). A job allowed to fail that failed has no
    /// output and is left out.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[pipeline(output = u32)]
    /// fn matrix(_ctx: &Ctx) -> Vec<Job> {
    ///     vec![Job::action("test-a", |_ctx| async { Ok(1u32) }), Job::action("test-b", |_ctx| async { Ok(2u32) })]
    /// }
    ///
    /// #[job(depends_on = [matrix])]
    /// async fn total(ctx: &Ctx) -> Result<u32> {
    ///     Ok(ctx.outputs_of::<matrix>()?.values().sum())
    /// }
    /// # fn main() {}
    /// ```
    pub fn outputs_of<P: PipelineOutput>(&self) -> Result<BTreeMap<String, P::Output>, JobError>
    where
        P::Output: JobOutput,
    {
        self.scope.outputs_of(P::KEY, P::NAME)
    }

    /// Saves files of the work dir as an artifact for later jobs of this build (container
    /// jobs restore it with `.restore_artifact(id)`, action jobs with
    /// [`Ctx::restore_artifact`]).
    ///
    /// ```no_run
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn report(ctx: &Ctx) -> Result<()> {
    ///     std::fs::write(ctx.work_dir().join("report.txt"), "all good")?;
    ///     ctx.save_artifact(artifact("report", "report.txt")).await
    /// }
    /// # fn main() {}
    /// ```
    pub async fn save_artifact(&self, artifact: Artifact) -> Result<(), JobError> {
        self.scope.save_artifact(artifact.into_spec()).await
    }

    /// Restores an artifact saved by an earlier job of the build into the work dir, at the
    /// path it was saved from. A missing artifact is an error naming it.
    pub async fn restore_artifact(&self, id: &str) -> Result<(), JobError> {
        self.scope.restore_artifact(id).await
    }

    /// The time the build started: the same on every launch of the script (a resumed script
    /// sees the same value), so conditions and `#[pipeline]` functions may branch on it.
    /// Reading the system clock instead can make a resumed script plan differently, which
    /// the runtime refuses.
    pub fn now(&self) -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(self.build().info().started_at_ms)
    }

    /// A pseudo-random number, the same sequence on every launch of the script: seeded by
    /// the build id, the job and how many numbers this context has drawn.
    pub fn random_u64(&self) -> u64 {
        self.scope.random_u64()
    }

    /// A random UUID (version 4, as text), the same on every launch of the script: made of
    /// two [`Ctx::random_u64`] draws, so it also counts as two draws.
    ///
    /// ```
    /// let ctx = monkeyci_sdk::testing::TestCtx::new().ctx();
    /// let id = ctx.uuid();
    /// assert_eq!(id.len(), 36);
    /// assert_eq!(&id[14..15], "4");
    /// assert_ne!(id, ctx.uuid());
    /// ```
    pub fn uuid(&self) -> String {
        self.scope.uuid()
    }

    /// Waits for `duration` without holding a thread (other jobs keep running).
    pub async fn sleep(&self, duration: Duration) {
        tokio::time::sleep(duration).await;
    }

    /// Adds a line to the current job's output (secrets masked).
    pub fn log(&self, line: impl fmt::Display) {
        self.scope.output_line(OutputStream::Stdout, &line.to_string());
    }

    /// Runs `command` with `sh -c` in the job's work directory, streaming its output into the
    /// job's log. Fails when the command exits non-zero. Counts against `--max-parallel`.
    ///
    /// Inside a job this is a journaled step, like [`Ctx::run`]: when a suspended script is
    /// resumed and the job runs again, a command that already ran is not run again; its
    /// recorded exit code and output (with secrets masked) are returned.
    ///
    /// The command runs in a process group of its own, without the build's credentials
    /// (`MONKEYCI_SCRIPT`). The step ends when the shell exits: what the command left running
    /// in the background is stopped (SIGTERM, then SIGKILL), and so is everything in the group
    /// when the job times out, is canceled or the script dies. Output that is not UTF-8 is kept,
    /// with replacement characters.
    ///
    /// ```no_run
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn test(ctx: &Ctx) -> Result<()> {
    ///     ctx.shell("cargo test --locked").await?;
    ///     Ok(())
    /// }
    /// # fn main() {}
    /// ```
    pub fn shell<'a>(&'a self, command: &'a str) -> impl Future<Output = Result<ShellOutput, JobError>> + Send + 'a {
        step::shell(&self.scope, command)
    }
}
