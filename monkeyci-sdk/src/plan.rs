//! Planning: turns the registered `#[job]`s, the jobs of `#[pipeline]` functions and the build
//! context into the ordered jobs of one build, or a clear error.
//!
//! Conditions are evaluated here, container specs computed (or, when they read the outputs
//! of the jobs they depend on, left for when those have ended), dependencies on `#[pipeline]`s
//! turned into the ids of their jobs, dependencies checked, cycles found and named, and the job
//! filter applied. `plan` never performs I/O and never runs a job.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::RecvTimeoutError;
use std::time::{Duration, Instant};

use crate::ctx::Ctx;
use crate::dsl::env::pipeline_env;
use crate::dsl::job::{ActionFn, Job, JobBodyKind, SpecFn};
use crate::dsl::registry::{JobBody, JobDef, PipelineDef};
use crate::protocol::{JobKind, Plan, PlannedJob, SkippedJob};

/// Why a build could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Jobs depend on each other in a circle.
    #[error("dependency cycle: {} (each job depends on the next)", .jobs.join(" -> "))]
    Cycle {
        /// The jobs of the cycle, the first repeated at the end.
        jobs: Vec<String>,
    },
    /// A job depends on an id no job has.
    #[error("job `{job}` depends on `{dependency}`, but there is no job `{dependency}`")]
    UnknownDependency {
        /// The dependent job.
        job: String,
        /// The missing dependency.
        dependency: String,
    },
    /// Two jobs have the same id.
    #[error("job id `{id}` is used twice: by {first} and by {second}")]
    DuplicateJob {
        /// The id.
        id: String,
        /// Where the first was declared.
        first: String,
        /// Where the second was declared.
        second: String,
    },
    /// `--job` named a job that does not exist.
    #[error("unknown job `{id}`; the jobs are: {}", .known.join(", "))]
    UnknownJob {
        /// The requested id.
        id: String,
        /// Every job id of the pipeline.
        known: Vec<String>,
    },
    /// `--job` named a job that is left out of this build.
    #[error("job `{id}` is not part of this build: {reason}")]
    SelectedJobSkipped {
        /// The requested id.
        id: String,
        /// Why it is left out.
        reason: String,
    },
    /// A container job that cannot run as specified.
    #[error("container job `{job}` ({location}): {problem}")]
    InvalidContainer {
        /// The job.
        job: String,
        /// Where it was declared.
        location: String,
        /// What is wrong.
        problem: String,
    },
    /// A job id with characters that are not allowed.
    #[error("invalid job id {id:?}: use letters, digits, `-`, `_` and `.`")]
    InvalidId {
        /// The id.
        id: String,
    },
    /// Pipeline code panicked while the jobs were computed.
    #[error("{what} panicked: {message}")]
    Panicked {
        /// What was being evaluated.
        what: String,
        /// The panic message.
        message: String,
    },
    /// Pipeline code did not return within the planning limit (60 s, or `MONKEYCI_PLAN_TIMEOUT`).
    #[error("{what} did not return within {}", seconds(.limit))]
    TimedOut {
        /// What was being evaluated.
        what: String,
        /// How long it may take.
        limit: Duration,
    },
    /// A job depends on a `#[pipeline]` that this binary does not register.
    #[error("job `{job}` depends on #[pipeline] `{pipeline}`, which is not part of this plan")]
    UnknownPipeline {
        /// The dependent job.
        job: String,
        /// The pipeline function's name.
        pipeline: String,
    },
    /// A job of a `#[pipeline(output = T)]` returns another type than `T`.
    #[error(
        "job `{job}` of #[pipeline] `{pipeline}` returns `{returns}`, but the pipeline declares `output = {declared}`"
    )]
    OutputType {
        /// The job.
        job: String,
        /// The pipeline function's name.
        pipeline: String,
        /// The type the pipeline declares.
        declared: String,
        /// The type the job returns (`()` for a container job).
        returns: String,
    },
    /// The pipeline declares no jobs at all.
    #[error("the pipeline declares no jobs: add a #[job] function or a #[pipeline]")]
    NoJobs,
}

/// How long each `when` condition, container spec and `#[pipeline]` function may take while
/// a build is planned.
pub(crate) const PLAN_TIMEOUT: Duration = Duration::from_secs(60);

/// Overrides [`PLAN_TIMEOUT`]: seconds, as a decimal number (`0.5`).
pub(crate) const PLAN_TIMEOUT_ENV: &str = "MONKEYCI_PLAN_TIMEOUT";

/// The planning limit: [`PLAN_TIMEOUT_ENV`] if it is a positive number of seconds.
fn plan_limit() -> Duration {
    std::env::var(PLAN_TIMEOUT_ENV)
        .ok()
        .and_then(|secs| secs.trim().parse::<f64>().ok())
        .and_then(|secs| Duration::try_from_secs_f64(secs).ok())
        .filter(|limit| !limit.is_zero())
        .unwrap_or(PLAN_TIMEOUT)
}

/// `60 s`, `0.5 s`.
fn seconds(limit: &Duration) -> String {
    format!("{} s", limit.as_secs_f64())
}

/// The jobs of a build, in an order where every job comes after its dependencies.
pub(crate) struct Resolved {
    pub(crate) jobs: Vec<Job>,
    pub(crate) skipped: Vec<SkippedJob>,
    /// The planned jobs of each `#[pipeline]`, by its key.
    pub(crate) pipelines: HashMap<&'static str, Vec<String>>,
}

impl Resolved {
    /// The plan as data.
    pub(crate) fn plan(&self) -> Plan {
        Plan { jobs: self.jobs.iter().map(planned).collect(), skipped: self.skipped.clone() }
    }

    /// Each job's direct dependencies.
    pub(crate) fn graph(&self) -> HashMap<String, Vec<String>> {
        self.jobs.iter().map(|job| (job.id.clone(), job.depends_on.clone())).collect()
    }
}

fn planned(job: &Job) -> PlannedJob {
    let (kind, container) = match &job.body {
        JobBodyKind::Action(_) => (JobKind::Action, None),
        JobBodyKind::Container(spec) => (JobKind::Container, Some(spec.spec().clone())),
        JobBodyKind::Deferred(_) => (JobKind::Container, None),
    };
    PlannedJob {
        id: job.id.clone(),
        kind,
        depends_on: job.depends_on.clone(),
        blocked: job.blocked,
        timeout_ms: job.timeout.map(|t| t.as_millis() as u64),
        retries: job.retries,
        idempotent: job.idempotent,
        allow_failure: job.allow_failure,
        runs: job.runs,
        resolved_at_run_time: matches!(job.body, JobBodyKind::Deferred(_)),
        container,
        declared_at: job.declared_at.clone(),
    }
}

/// Plans the jobs registered in this binary for `ctx`, keeping only `filter` and what it
/// depends on (all jobs when `filter` is empty).
pub(crate) fn resolve(ctx: &Ctx, filter: &[String]) -> Result<Resolved, Error> {
    let Registered { jobs, skipped, mut pipelines } = registered_jobs_within_limit(ctx)?;
    if jobs.is_empty() && skipped.is_empty() {
        return Err(Error::NoJobs);
    }
    let mut resolved = order(jobs, skipped, filter)?;
    let planned: HashSet<&str> = resolved.jobs.iter().map(|job| job.id.as_str()).collect();
    for ids in pipelines.values_mut() {
        ids.retain(|id| planned.contains(id.as_str()));
    }
    resolved.pipelines = pipelines;
    Ok(resolved)
}

/// The jobs this binary registers, for one build.
struct Registered {
    jobs: Vec<Job>,
    skipped: Vec<SkippedJob>,
    /// The jobs of each `#[pipeline]`, by its key.
    pipelines: HashMap<&'static str, Vec<String>>,
}

/// Every `#[job]` (whose condition holds) and every job of every `#[pipeline]`, computed on a
/// thread of their own so that pipeline code that never returns fails planning, naming it,
/// after [`plan_limit`]. That thread cannot be stopped: it is left behind, and the script
/// exits with the error.
fn registered_jobs_within_limit(ctx: &Ctx) -> Result<Registered, Error> {
    let ctx = ctx.clone();
    within_limit(plan_limit(), move |watch| registered_jobs(&ctx, watch))
}

/// Every `#[job]` (whose condition holds) and every job of every `#[pipeline]`, in the order
/// they were declared, their container specs computed where they can be and their
/// dependencies on pipelines resolved; `watch` runs the pipeline's code.
fn registered_jobs(ctx: &Ctx, watch: &Watch) -> Result<Registered, Error> {
    let mut defs: Vec<&JobDef> = inventory::iter::<JobDef>.into_iter().collect();
    defs.sort_by_key(|def| source_order(def.location));
    let mut pipelines: Vec<&PipelineDef> = inventory::iter::<PipelineDef>.into_iter().collect();
    pipelines.sort_by_key(|def| source_order(def.location));

    let mut jobs = Vec::new();
    let mut skipped = Vec::new();
    for def in defs {
        if let Some(cond) = &def.when {
            let holds = watch
                .guard(|| (cond.check)(ctx), || format!("the `when` condition `{}` of job `{}`", cond.name, def.id))?;
            if !holds {
                skipped
                    .push(SkippedJob { id: def.id.to_owned(), reason: format!("condition `{}` is false", cond.name) });
                continue;
            }
        }
        let body = match def.body {
            JobBody::Action(f) => {
                let action: ActionFn = std::sync::Arc::new(f);
                JobBodyKind::Action(action)
            }
            JobBody::Container(f) => JobBodyKind::Deferred(Arc::new(f)),
        };
        let mut job = Job::new(def.id.to_owned(), body).depends_on((def.depends_on)());
        job.blocked = def.blocked;
        job.timeout = def.timeout_ms.map(Duration::from_millis);
        job.retries = def.retries;
        job.idempotent = def.idempotent;
        job.allow_failure = def.allow_failure;
        job.runs = def.runs;
        job.declared_at = Some(def.location.to_owned());
        jobs.push(job);
    }
    let mut made: HashMap<&'static str, Vec<String>> = HashMap::with_capacity(pipelines.len());
    for def in pipelines {
        let computed = watch.guard(|| (def.jobs)(ctx), || format!("the #[pipeline] function `{}`", def.name))?;
        let ids = made.entry(def.key).or_default();
        let declared = def.output.map(|output| output());
        for mut job in computed {
            job.declared_at.get_or_insert_with(|| format!("#[pipeline] {} ({})", def.name, def.location));
            if let (Some(declared), Some(returns)) = (declared, job.output)
                && declared != returns
            {
                return Err(Error::OutputType {
                    job: job.id,
                    pipeline: def.name.to_owned(),
                    declared: declared.name(),
                    returns: returns.name(),
                });
            }
            ids.push(job.id.clone());
            jobs.push(job);
        }
    }
    for job in &mut jobs {
        for pipeline in std::mem::take(&mut job.depends_on_pipelines) {
            let Some(ids) = made.get(pipeline.key) else {
                return Err(Error::UnknownPipeline { job: job.id.clone(), pipeline: pipeline.name.to_owned() });
            };
            for id in ids {
                if !job.depends_on.contains(id) {
                    job.depends_on.push(id.clone());
                }
            }
        }
        if let JobBodyKind::Deferred(f) = &job.body {
            job.body = preview(ctx, watch, job, Arc::clone(f))?;
        }
        // The pipeline's environment, under each container job's own.
        if let JobBodyKind::Container(spec) = &mut job.body {
            **spec = (**spec).clone().with_default_env(pipeline_env());
        }
    }
    Ok(Registered { jobs, skipped, pipelines: made })
}

/// The body of container job `job` once its spec function `f` ran as the build is planned:
/// the spec, unless the function read an output, known only once the job's dependencies have
/// ended; the spec is then resolved at that time (whatever the function returned now).
fn preview(ctx: &Ctx, watch: &Watch, job: &Job, f: SpecFn) -> Result<JobBodyKind, Error> {
    let preview = ctx.spec_preview();
    let spec = watch.guard(|| f(&preview), || format!("the container spec of job `{}`", job.id));
    if preview.read_outputs() {
        return Ok(JobBodyKind::Deferred(f));
    }
    match spec? {
        Ok(spec) => Ok(JobBodyKind::Container(Box::new(spec))),
        Err(err) => {
            Err(Error::InvalidContainer { job: job.id.clone(), location: location(job), problem: err.to_string() })
        }
    }
}

/// `(file, line)` of a `file:line` location, so jobs sort in source order.
fn source_order(location: &str) -> (&str, u32) {
    match location.rsplit_once(':') {
        Some((file, line)) => (file, line.parse().unwrap_or(0)),
        None => (location, 0),
    }
}

/// What pipeline code the planning thread runs, and since when.
#[derive(Default)]
struct Watch {
    running: parking_lot::Mutex<Option<(String, Instant)>>,
}

impl Watch {
    /// Runs pipeline code (`what()` says which), turning a panic into a planning error.
    fn guard<T>(&self, f: impl FnOnce() -> T, what: impl FnOnce() -> String) -> Result<T, Error> {
        let what = what();
        *self.running.lock() = Some((what.clone(), Instant::now()));
        let result = catch_unwind(AssertUnwindSafe(f))
            .map_err(|payload| Error::Panicked { what, message: panic_message(&*payload) });
        *self.running.lock() = None;
        result
    }
}

/// Runs `plan` on a thread of its own and returns its result, or an error naming the pipeline
/// code it runs ([`Watch::guard`]) as soon as one piece has run for longer than `limit`.
fn within_limit<T: Send + 'static>(
    limit: Duration,
    plan: impl FnOnce(&Watch) -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    let watch = Arc::new(Watch::default());
    let (done, result) = std::sync::mpsc::channel();
    let planner = Arc::clone(&watch);
    // Pipeline code may use the async runtime's handle, as it could on the caller's thread.
    let runtime = tokio::runtime::Handle::try_current().ok();
    std::thread::Builder::new()
        .name("monkeyci-plan".to_owned())
        .spawn(move || {
            let _runtime = runtime.as_ref().map(tokio::runtime::Handle::enter);
            let _ = done.send(plan(&planner));
        })
        .map_err(|err| Error::Panicked {
            what: "planning".to_owned(),
            message: format!("cannot start a thread to plan on: {err}"),
        })?;
    loop {
        let left = match &*watch.running.lock() {
            Some((_, since)) => limit.saturating_sub(since.elapsed()),
            None => limit,
        };
        match result.recv_timeout(left.max(Duration::from_millis(1))) {
            Ok(result) => return result,
            Err(RecvTimeoutError::Disconnected) => {
                return Err(Error::Panicked {
                    what: "planning".to_owned(),
                    message: "the planning thread ended without a plan".to_owned(),
                });
            }
            Err(RecvTimeoutError::Timeout) => {
                if let Some((what, since)) = &*watch.running.lock()
                    && since.elapsed() >= limit
                {
                    return Err(Error::TimedOut { what: what.clone(), limit });
                }
            }
        }
    }
}

pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

/// Checks and orders `jobs`: ids valid and unique, dependencies known, no cycles; dependents
/// of left-out jobs are left out too; `filter` keeps the named jobs and their dependencies.
pub(crate) fn order(jobs: Vec<Job>, mut skipped: Vec<SkippedJob>, filter: &[String]) -> Result<Resolved, Error> {
    let mut index: HashMap<String, usize> = HashMap::with_capacity(jobs.len());
    for (i, job) in jobs.iter().enumerate() {
        if monkeyci_protocol::id::check(&job.id).is_err() {
            return Err(Error::InvalidId { id: job.id.clone() });
        }
        // Planning the registered jobs resolved these; jobs given directly have no pipelines.
        if let Some(pipeline) = job.depends_on_pipelines.first() {
            return Err(Error::UnknownPipeline { job: job.id.clone(), pipeline: pipeline.name.to_owned() });
        }
        if let Some(problem) = job.container_spec().and_then(|spec| spec.spec().problem()) {
            return Err(Error::InvalidContainer { job: job.id.clone(), location: location(job), problem });
        }
        if let Some(&first) = index.get(&job.id) {
            return Err(Error::DuplicateJob {
                id: job.id.clone(),
                first: location(&jobs[first]),
                second: location(job),
            });
        }
        index.insert(job.id.clone(), i);
    }
    let mut left_out: HashSet<String> = skipped.iter().map(|s| s.id.clone()).collect();
    for job in &jobs {
        for dep in &job.depends_on {
            if !index.contains_key(dep) && !left_out.contains(dep) {
                return Err(Error::UnknownDependency { job: job.id.clone(), dependency: dep.clone() });
            }
        }
    }

    // Dependents of left-out jobs are left out too, until nothing changes.
    let mut keep = vec![true; jobs.len()];
    loop {
        let mut changed = false;
        for (i, job) in jobs.iter().enumerate() {
            if !keep[i] {
                continue;
            }
            if let Some(dep) = job.depends_on.iter().find(|d| left_out.contains(*d)) {
                keep[i] = false;
                left_out.insert(job.id.clone());
                skipped.push(SkippedJob {
                    id: job.id.clone(),
                    reason: format!("it depends on `{dep}`, which is not part of this build"),
                });
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }

    if !filter.is_empty() {
        let mut wanted = vec![false; jobs.len()];
        let mut stack = Vec::new();
        for id in filter {
            match index.get(id) {
                Some(&i) if keep[i] => stack.push(i),
                _ => {
                    if let Some(s) = skipped.iter().find(|s| &s.id == id) {
                        return Err(Error::SelectedJobSkipped { id: id.clone(), reason: s.reason.clone() });
                    }
                    let mut known: Vec<String> =
                        index.keys().cloned().chain(skipped.iter().map(|s| s.id.clone())).collect();
                    known.sort();
                    return Err(Error::UnknownJob { id: id.clone(), known });
                }
            }
        }
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut wanted[i], true) {
                stack.extend(jobs[i].depends_on.iter().map(|d| index[d]));
            }
        }
        for (k, w) in keep.iter_mut().zip(wanted) {
            *k &= w;
        }
        let selected: HashSet<&str> = jobs.iter().zip(&keep).filter(|(_, k)| **k).map(|(j, _)| j.id.as_str()).collect();
        skipped.retain(|s| selected.contains(s.id.as_str()));
    }

    // Kahn's algorithm, always taking the earliest declared ready job.
    // Only kept jobs take part: the dependencies of a kept job are all kept.
    let mut remaining: Vec<usize> = jobs.iter().map(|job| job.depends_on.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); jobs.len()];
    for (i, job) in jobs.iter().enumerate().filter(|(i, _)| keep[*i]) {
        for dep in &job.depends_on {
            dependents[index[dep]].push(i);
        }
    }
    let mut ready: BTreeSet<usize> = (0..jobs.len()).filter(|&i| keep[i] && remaining[i] == 0).collect();
    let mut sorted = Vec::with_capacity(jobs.len());
    while let Some(i) = ready.pop_first() {
        sorted.push(i);
        for &d in &dependents[i] {
            remaining[d] -= 1;
            if remaining[d] == 0 && keep[d] {
                ready.insert(d);
            }
        }
    }
    let kept = keep.iter().filter(|k| **k).count();
    if sorted.len() < kept {
        let placed: HashSet<usize> = sorted.iter().copied().collect();
        let stuck: Vec<usize> = (0..jobs.len()).filter(|i| keep[*i] && !placed.contains(i)).collect();
        return Err(Error::Cycle { jobs: find_cycle(&jobs, &index, &stuck) });
    }

    let mut slots: Vec<Option<Job>> = jobs.into_iter().map(Some).collect();
    let jobs = sorted.into_iter().filter_map(|i| slots[i].take()).collect();
    Ok(Resolved { jobs, skipped, pipelines: HashMap::new() })
}

/// Follows dependencies among `stuck` jobs (each of which is on or behind a cycle) until one
/// repeats, and returns that cycle.
fn find_cycle(jobs: &[Job], index: &HashMap<String, usize>, stuck: &[usize]) -> Vec<String> {
    let stuck_set: HashSet<usize> = stuck.iter().copied().collect();
    let mut path: Vec<usize> = Vec::new();
    let mut at = stuck[0];
    loop {
        if let Some(pos) = path.iter().position(|&p| p == at) {
            let mut cycle: Vec<String> = path[pos..].iter().map(|&i| jobs[i].id.clone()).collect();
            cycle.push(jobs[at].id.clone());
            return cycle;
        }
        path.push(at);
        at = jobs[at]
            .depends_on
            .iter()
            .map(|d| index[d])
            .find(|d| stuck_set.contains(d))
            .expect("a job that cannot be ordered depends on another that cannot");
    }
}

fn location(job: &Job) -> String {
    match &job.declared_at {
        Some(at) => format!("the job at {at}"),
        None => "a job".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str, deps: &[&str]) -> Job {
        Job::action(id, |_ctx| async { Ok::<_, crate::JobError>(()) }).depends_on(deps.iter().copied())
    }

    fn ids(r: &Resolved) -> Vec<&str> {
        r.jobs.iter().map(|j| j.id.as_str()).collect()
    }

    #[test]
    fn orders_dependencies_first_keeping_declaration_order() {
        let r = order(vec![job("c", &["b"]), job("a", &[]), job("b", &["a"]), job("d", &[])], vec![], &[]).unwrap();
        assert_eq!(ids(&r), ["a", "b", "c", "d"]);
    }

    #[test]
    fn names_the_cycle() {
        let err = order(vec![job("x", &[]), job("a", &["b"]), job("b", &["c"]), job("c", &["a"])], vec![], &[])
            .err()
            .unwrap();
        assert_eq!(err, Error::Cycle { jobs: vec!["a".into(), "b".into(), "c".into(), "a".into()] });
        assert_eq!(err.to_string(), "dependency cycle: a -> b -> c -> a (each job depends on the next)");
        let self_loop = order(vec![job("a", &["a"])], vec![], &[]).err().unwrap();
        assert_eq!(self_loop, Error::Cycle { jobs: vec!["a".into(), "a".into()] });
    }

    #[test]
    fn unknown_dependency_and_duplicates() {
        let err = order(vec![job("a", &["nope"])], vec![], &[]).err().unwrap();
        assert_eq!(err.to_string(), "job `a` depends on `nope`, but there is no job `nope`");
        let err = order(vec![job("a", &[]), job("a", &[])], vec![], &[]).err().unwrap();
        assert!(matches!(err, Error::DuplicateJob { .. }));
        let err = order(vec![job("a b", &[])], vec![], &[]).err().unwrap();
        assert!(matches!(err, Error::InvalidId { .. }));
    }

    #[test]
    fn a_container_job_that_cannot_run_is_refused_when_planned() {
        let escaping = Job::container("up", crate::container("alpine").script(["ls"]).work_dir("../.."));
        let err = order(vec![escaping], vec![], &[]).err().unwrap();
        assert_eq!(
            err.to_string(),
            "container job `up` (a job): work_dir \"../..\" must be a relative path inside the checkout, without `..`"
        );
        let idle = Job::container("idle", crate::container("alpine"));
        let err = order(vec![idle], vec![], &[]).err().unwrap();
        assert!(err.to_string().contains("nothing to run"), "{err}");
    }

    /// Issue 10: a cache that can only fail (a home path but the cargo home's registry and git,
    /// an absolute or `..` path, a bad key) fails planning, naming the job and the path.
    #[test]
    fn a_cache_outside_the_work_dir_and_the_cargo_home_is_refused_when_planned() {
        let with = |cache: crate::Cache| Job::container("build", crate::container("rust").script(["ls"]).cache(cache));
        let err = order(vec![with(crate::cache("npm", "~/.npm"))], vec![], &[]).err().unwrap();
        assert!(
            err.to_string().starts_with("container job `build` (a job): cache `npm`: path \"~/.npm\" is in the home"),
            "{err}"
        );
        let err = order(vec![with(crate::cache("etc", "/etc"))], vec![], &[]).err().unwrap();
        assert!(err.to_string().contains("cache `etc`: path \"/etc\" is absolute"), "{err}");
        let err = order(vec![with(crate::cache("t", "target").key("a\tb"))], vec![], &[]).err().unwrap();
        assert!(err.to_string().contains("cache `t`: key \"a\\tb\" holds a control character"), "{err}");
        for cache in [crate::Cache::cargo_registry(), crate::Cache::cargo_git(), crate::cache("t", "./target")] {
            assert!(order(vec![with(cache)], vec![], &[]).is_ok());
        }
    }

    #[test]
    fn dependents_of_left_out_jobs_are_left_out() {
        let skipped = vec![SkippedJob { id: "release".into(), reason: "condition `is_tag` is false".into() }];
        let r =
            order(vec![job("build", &[]), job("publish", &["release"]), job("announce", &["publish"])], skipped, &[])
                .unwrap();
        assert_eq!(ids(&r), ["build"]);
        let reasons: Vec<_> = r.skipped.iter().map(|s| (s.id.as_str(), s.reason.as_str())).collect();
        assert_eq!(
            reasons,
            [
                ("release", "condition `is_tag` is false"),
                ("publish", "it depends on `release`, which is not part of this build"),
                ("announce", "it depends on `publish`, which is not part of this build"),
            ]
        );
    }

    #[test]
    fn filter_keeps_transitive_dependencies() {
        let jobs = vec![job("a", &[]), job("b", &["a"]), job("c", &["b"]), job("d", &[])];
        let r = order(jobs.clone(), vec![], &["c".into()]).unwrap();
        assert_eq!(ids(&r), ["a", "b", "c"]);
        let err = order(jobs, vec![], &["zz".into()]).err().unwrap();
        assert_eq!(err.to_string(), "unknown job `zz`; the jobs are: a, b, c, d");
    }

    #[test]
    fn pipeline_code_that_does_not_return_fails_planning_naming_it() {
        let release = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stuck = Arc::clone(&release);
        let started = Instant::now();
        let err = within_limit(Duration::from_millis(200), move |watch| {
            watch.guard(|| true, || "the `when` condition `quick` of job `build`".to_owned())?;
            watch.guard(
                || {
                    while !stuck.load(std::sync::atomic::Ordering::Relaxed) {
                        std::thread::sleep(Duration::from_millis(10));
                    }
                },
                || "the `when` condition `forever` of job `deploy`".to_owned(),
            )
        })
        .err()
        .unwrap();
        release.store(true, std::sync::atomic::Ordering::Relaxed);
        assert_eq!(err.to_string(), "the `when` condition `forever` of job `deploy` did not return within 0.2 s");
        assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    }

    #[test]
    fn the_limit_is_for_each_piece_of_pipeline_code_not_their_sum() {
        let jobs = within_limit(Duration::from_millis(300), |watch| {
            let mut ids = Vec::new();
            for i in 0..4 {
                ids.push(watch.guard(
                    || {
                        std::thread::sleep(Duration::from_millis(100));
                        i
                    },
                    || format!("#[pipeline] {i}"),
                )?);
            }
            Ok(ids)
        })
        .unwrap();
        assert_eq!(jobs, [0, 1, 2, 3]);
        let panicked = within_limit(Duration::from_secs(5), |watch| {
            watch.guard(|| -> u8 { panic!("boom") }, || "the #[pipeline] function `p`".to_owned())
        });
        assert_eq!(panicked.err().unwrap().to_string(), "the #[pipeline] function `p` panicked: boom");
        assert_eq!(seconds(&PLAN_TIMEOUT), "60 s");
    }
}
