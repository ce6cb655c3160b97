//! [`Job`]: one node of the build's DAG, built by `#[job]`, `#[pipeline]` functions and tests
//! alike, and [`JobId`], the name dependencies use.
//!
//! A `Job` says what to run and how (dependencies, limits, retries); it is neither planned nor
//! run here (`plan` and the scheduler do that). A container job's spec is a value, or a
//! function of the context that reads its dependencies' outputs; planning and the scheduler
//! decide when that function runs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use crate::ctx::Ctx;
use crate::dsl::container::ContainerJob;
use crate::dsl::error::JobError;
use crate::dsl::output::{JobMarker, JobOutput, OutputType, PipelineMarker, output_to_json};
use crate::future::BoxFuture;
use crate::protocol::Runs;

pub(crate) type ActionFn = Arc<dyn Fn(Ctx) -> BoxFuture<'static, Result<serde_json::Value, JobError>> + Send + Sync>;

/// A container job's spec, computed from the context.
pub(crate) type SpecFn = Arc<dyn Fn(&Ctx) -> Result<ContainerJob, JobError> + Send + Sync>;

/// What a job does.
#[derive(Clone)]
pub(crate) enum JobBodyKind {
    Action(ActionFn),
    /// A container job whose spec is known.
    Container(Box<ContainerJob>),
    /// A container job whose spec is computed by this function: when the build is planned, if
    /// it can be (it reads no output), else when the job's dependencies have ended.
    Deferred(SpecFn),
}

/// A `#[pipeline]` a job depends on: every job it makes, known once it ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PipelineRef {
    /// [`PipelineMarker::KEY`].
    pub(crate) key: &'static str,
    /// [`PipelineMarker::NAME`].
    pub(crate) name: &'static str,
}

/// One job of a build: an id, its dependencies and what it runs.
///
/// `#[job]` functions become `Job`s when the build is planned; a `#[pipeline]` function
/// returns them directly, which is how jobs are computed at run time (matrices, monorepos).
///
/// ```
/// use monkeyci_sdk::prelude::*;
///
/// #[pipeline]
/// fn per_target(_ctx: &Ctx) -> Vec<Job> {
///     ["x86_64", "aarch64"]
///         .into_iter()
///         .map(|arch| {
///             Job::action(format!("build-{arch}"), move |ctx: Ctx| async move {
///                 ctx.log(format!("building for {arch}"));
///                 Ok(arch.len())
///             })
///         })
///         .collect()
/// }
/// # fn main() {}
/// ```
#[derive(Clone)]
#[must_use = "a Job does nothing until a #[pipeline] returns it"]
pub struct Job {
    pub(crate) id: String,
    pub(crate) depends_on: Vec<String>,
    /// Pipelines whose jobs it depends on, until planning adds their ids to `depends_on`.
    pub(crate) depends_on_pipelines: Vec<PipelineRef>,
    /// What it returns, when the builder knows (`Job::action`, `Job::container`).
    pub(crate) output: Option<OutputType>,
    pub(crate) blocked: bool,
    pub(crate) timeout: Option<Duration>,
    pub(crate) retries: u32,
    pub(crate) idempotent: bool,
    pub(crate) allow_failure: bool,
    pub(crate) runs: Runs,
    pub(crate) body: JobBodyKind,
    pub(crate) declared_at: Option<String>,
}

impl Job {
    /// An action job: `f` runs in the script process and its output (any
    /// `Serialize + Deserialize` value) is kept as JSON for the jobs that depend on it.
    pub fn action<F, Fut, T>(id: impl Into<String>, f: F) -> Job
    where
        F: Fn(Ctx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<T, JobError>> + Send + 'static,
        T: JobOutput,
    {
        let f = Arc::new(f);
        let action: ActionFn = Arc::new(move |ctx| {
            let fut = f(ctx);
            Box::pin(async move { output_to_json(fut.await) })
        });
        Job { output: Some(OutputType::of::<T>()), ..Job::new(id.into(), JobBodyKind::Action(action)) }
    }

    /// A container job running `spec`.
    pub fn container(id: impl Into<String>, spec: ContainerJob) -> Job {
        Job { output: Some(OutputType::of::<()>()), ..Job::new(id.into(), JobBodyKind::Container(Box::new(spec))) }
    }

    /// A container job whose spec `f` computes from the context, and may read the outputs of
    /// the jobs this one depends on ([`Ctx::output`], [`Ctx::output_of`]), as a `#[job]`
    /// returning `Result<ContainerJob>` may: such a spec is resolved when those jobs have
    /// ended, just before the container starts (the plan then says so instead of showing it).
    /// A spec that reads no output is resolved when the build is planned.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// #[job]
    /// async fn version(_ctx: &Ctx) -> Result<String> {
    ///     Ok("1.2.3".into())
    /// }
    ///
    /// #[pipeline]
    /// fn images(_ctx: &Ctx) -> Vec<Job> {
    ///     ["alpine", "debian"]
    ///         .into_iter()
    ///         .map(|os| {
    ///             Job::container_with(format!("image-{os}"), move |ctx: &Ctx| {
    ///                 let version = ctx.output::<version>()?;
    ///                 Ok(container(format!("docker.io/{os}")).script([format!("echo app {version} on {os}")]))
    ///             })
    ///             .depends_on([JobId::of::<version>()])
    ///         })
    ///         .collect()
    /// }
    /// # fn main() {}
    /// ```
    pub fn container_with<F>(id: impl Into<String>, f: F) -> Job
    where
        F: Fn(&Ctx) -> Result<ContainerJob, JobError> + Send + Sync + 'static,
    {
        Job { output: Some(OutputType::of::<()>()), ..Job::new(id.into(), JobBodyKind::Deferred(Arc::new(f))) }
    }

    pub(crate) fn new(id: String, body: JobBodyKind) -> Job {
        Job {
            id,
            depends_on: Vec::new(),
            depends_on_pipelines: Vec::new(),
            output: None,
            blocked: false,
            timeout: None,
            retries: 0,
            idempotent: true,
            allow_failure: false,
            runs: Runs::OnSuccess,
            body,
            declared_at: None,
        }
    }

    /// Runs after these jobs, given by id (`.depends_on(["build"])`), by `#[job]` function
    /// (`.depends_on([JobId::of::<build>()])`) or by `#[pipeline]` function, for every job it
    /// makes (`.depends_on([JobId::all_of::<matrix>()])`).
    pub fn depends_on<I, D>(mut self, deps: I) -> Self
    where
        I: IntoIterator<Item = D>,
        D: Into<JobId>,
    {
        for dep in deps {
            match dep.into().0 {
                Dep::Job(id) => self.depends_on.push(id),
                Dep::Pipeline(pipeline) => self.depends_on_pipelines.push(pipeline),
            }
        }
        self
    }

    /// Waits for approval before running.
    pub fn blocked(mut self) -> Self {
        self.blocked = true;
        self
    }

    /// Stops an attempt that runs longer than `limit`.
    pub fn timeout(mut self, limit: Duration) -> Self {
        self.timeout = Some(limit);
        self
    }

    /// Runs the job up to `n` more times when it fails or times out: an action job runs its
    /// function again, a container job gets a new container (with a fresh copy of the
    /// checkout) for each attempt. Each attempt is reported with its number.
    pub fn retries(mut self, n: u32) -> Self {
        self.retries = n;
        self
    }

    /// Declares whether this action job may run again when the script is resumed after a
    /// crash (the default: `true`). With `false`, the script never suspends while the job
    /// runs, and if the process dies while it runs (killed, out of memory), the resumed build
    /// fails the job instead of running it a second time: for jobs whose effects must not
    /// repeat, such as a deployment or a release upload. Container jobs need no declaration:
    /// their dispatch is recorded before it happens, and a resume never starts a second one.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// let publish = Job::action("publish", |ctx: Ctx| async move {
    ///     ctx.shell("cargo publish --locked").await?;
    ///     Ok(())
    /// })
    /// .idempotent(false);
    /// # let _ = publish;
    /// ```
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }

    /// Lets this job fail without failing the build (GitHub's `continue-on-error`, GitLab's
    /// `allow_failure`), for checks you want to see but not block on, such as a build on the
    /// minimum supported Rust version. A failure or timeout still shows as such, marked as
    /// allowed; jobs depending on it run as if it had succeeded (an action job's output is
    /// then missing: [`Ctx::output`] fails). A canceled build is still canceled.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// let msrv = Job::container("msrv", container("rust:1.80").script(["cargo check"])).allow_failure();
    /// # let _ = msrv;
    /// ```
    pub fn allow_failure(mut self) -> Self {
        self.allow_failure = true;
        self
    }

    /// When the job runs, given how its dependencies ended: [`Runs::OnSuccess`] (the
    /// default), [`Runs::OnFailure`] (a report of what failed) or [`Runs::Always`] (cleanup).
    /// A job that is skipped (by `runs = on_failure` when nothing failed, say) says why.
    ///
    /// ```
    /// use monkeyci_sdk::prelude::*;
    ///
    /// let report = Job::action("report", |ctx: Ctx| async move {
    ///     ctx.log("something failed: see above");
    ///     Ok(())
    /// })
    /// .depends_on(["test"])
    /// .runs(Runs::OnFailure);
    /// # let _ = report;
    /// ```
    pub fn runs(mut self, runs: Runs) -> Self {
        self.runs = runs;
        self
    }

    /// The job's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The ids of the jobs it waits for (those of the `#[pipeline]`s it depends on once the
    /// build is planned).
    pub fn dependencies(&self) -> &[String] {
        &self.depends_on
    }

    /// The container spec, for a container job whose spec is known (not for one made with
    /// [`Job::container_with`], resolved later).
    pub fn container_spec(&self) -> Option<&ContainerJob> {
        match &self.body {
            JobBodyKind::Container(spec) => Some(spec),
            JobBodyKind::Action(_) | JobBodyKind::Deferred(_) => None,
        }
    }
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("id", &self.id)
            .field("depends_on", &self.depends_on)
            .field("container", &self.container_spec())
            .finish_non_exhaustive()
    }
}

/// A job named by id (`"build"`), or by its `#[job]` function (`JobId::of::<build>()`); or
/// every job of a `#[pipeline]` function (`JobId::all_of::<matrix>()`), as a dependency.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobId(Dep);

/// What a [`JobId`] names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Dep {
    Job(String),
    Pipeline(PipelineRef),
}

impl From<&str> for JobId {
    fn from(id: &str) -> Self {
        JobId(Dep::Job(id.to_owned()))
    }
}

impl From<String> for JobId {
    fn from(id: String) -> Self {
        JobId(Dep::Job(id))
    }
}

impl From<&String> for JobId {
    fn from(id: &String) -> Self {
        JobId(Dep::Job(id.clone()))
    }
}

impl JobId {
    /// The id of the `#[job]` `J`: `JobId::of::<build>()`.
    pub fn of<J: JobMarker>() -> JobId {
        JobId(Dep::Job(J::ID.to_owned()))
    }

    /// Every job the `#[pipeline]` `P` makes, whatever their ids: `JobId::all_of::<matrix>()`.
    /// A pipeline that makes no job in a build is no dependency.
    pub fn all_of<P: PipelineMarker>() -> JobId {
        JobId(Dep::Pipeline(PipelineRef { key: P::KEY, name: P::NAME }))
    }
}
