//! [`Build`]: what every job of one build shares. Who the build is (info, params and the
//! masker made of them), where its effects go (the seams: events, containers, approvals,
//! artifacts), what jobs hand to each other (outputs, the graph that says who may read them,
//! and which jobs each `#[pipeline]` made), the process slots of `--max-parallel`,
//! cancellation, who waits for containers, and the steps an earlier launch journaled.
//!
//! Its fields are private: contexts, steps and the scheduler go through its methods. It takes
//! no scheduling decision and runs no job; the only I/O it starts is the seams'.

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::Path;
use std::sync::{Arc, OnceLock};

use parking_lot::Mutex;
use tokio::sync::{AcquireError, Semaphore, SemaphorePermit, TryAcquireError, watch};

use crate::dsl::error::JobError;
use crate::durable::journal::{Step, Steps};
use crate::durable::suspend::Waiting;
use crate::protocol::{ArtifactSpec, BuildInfo, Event, EventKind, Masker, ParamMap};
use crate::runner::{Approver, ArtifactStore, ContainerRunner, EventSink, Seams};
use crate::secret::Secret;

/// The shared state of one build.
/// The two pools of `--max-parallel` slots for process work.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Slot {
    /// A container job, from its start to its end.
    Container,
    /// One `ctx.shell` command of an action job.
    Command,
}

pub(crate) struct Build {
    info: BuildInfo,
    params: ParamMap,
    masker: Masker,
    events: Arc<dyn EventSink>,
    containers: Arc<dyn ContainerRunner>,
    approver: Arc<dyn Approver>,
    artifacts: Arc<dyn ArtifactStore>,
    /// Bounds container jobs at once (`--max-parallel`).
    container_slots: Semaphore,
    /// Bounds `ctx.shell` commands at once (`--max-parallel` too, but apart from containers,
    /// so light action work never queues behind container jobs). Async action code is not
    /// bounded.
    command_slots: Semaphore,
    /// The size of each pool.
    max_parallel: usize,
    /// Outputs of finished jobs, as JSON.
    outputs: Mutex<HashMap<String, Arc<serde_json::Value>>>,
    /// Each planned job's direct dependencies, set once the build is planned.
    graph: OnceLock<HashMap<String, Vec<String>>>,
    /// The planned jobs of each `#[pipeline]`, by its key, set once the build is planned.
    pipelines: OnceLock<HashMap<&'static str, Vec<String>>>,
    /// Set once the build is canceled; the scheduler stops everything.
    canceled: watch::Sender<bool>,
    /// Jobs waiting for containers: when every running job is, nothing runs in this process
    /// and the script may suspend.
    waiting: Waiting,
    /// Steps of action jobs journaled by an earlier launch.
    replayed_steps: OnceLock<Steps>,
}

impl Build {
    /// A build that has not started: `max_parallel` bounds its process work.
    pub(crate) fn new(info: BuildInfo, params: ParamMap, seams: Seams, max_parallel: usize) -> Build {
        let Seams { events, containers, approver, artifacts } = seams;
        Build {
            info,
            masker: Masker::new(params.values().map(String::as_str)),
            params,
            events,
            containers,
            approver,
            artifacts,
            container_slots: Semaphore::new(max_parallel.max(1)),
            command_slots: Semaphore::new(max_parallel.max(1)),
            max_parallel: max_parallel.max(1),
            outputs: Mutex::new(HashMap::new()),
            graph: OnceLock::new(),
            pipelines: OnceLock::new(),
            canceled: watch::Sender::new(false),
            waiting: Waiting::default(),
            replayed_steps: OnceLock::new(),
        }
    }

    /// What the build is about.
    pub(crate) fn info(&self) -> &BuildInfo {
        &self.info
    }

    /// The build parameter `name`, or an error naming the parameters there are.
    pub(crate) fn param(&self, name: &str) -> Result<Secret, JobError> {
        match self.params.get(name) {
            Some(value) => Ok(Secret::new(name, value)),
            None => {
                let known: Vec<&str> = self.params.keys().map(String::as_str).collect();
                Err(JobError::msg(if known.is_empty() {
                    format!("build parameter {name:?} is not set (this build has no parameters)")
                } else {
                    format!("build parameter {name:?} is not set; this build has: {}", known.join(", "))
                }))
            }
        }
    }

    /// `text` with the values of the build's params masked.
    pub(crate) fn mask(&self, text: &str) -> String {
        self.masker.mask(text)
    }

    /// Reports `kind` now.
    pub(crate) fn emit(&self, kind: EventKind) {
        self.events.emit(Event::now(kind));
    }

    /// Waits until every event emitted so far is where it goes.
    pub(crate) async fn flush_events(&self) {
        self.events.flush().await;
    }

    /// Keeps each planned job's direct dependencies (the first plan of the build wins).
    pub(crate) fn set_graph(&self, graph: HashMap<String, Vec<String>>) {
        let _ = self.graph.set(graph);
    }

    /// Keeps the planned jobs of each `#[pipeline]` (the first plan of the build wins).
    pub(crate) fn set_pipelines(&self, pipelines: HashMap<&'static str, Vec<String>>) {
        let _ = self.pipelines.set(pipelines);
    }

    /// The planned jobs of the `#[pipeline]` whose key is `key`, in the order it made them.
    pub(crate) fn pipeline_jobs(&self, key: &str) -> Vec<String> {
        self.pipelines.get().and_then(|pipelines| pipelines.get(key)).cloned().unwrap_or_default()
    }

    /// Whether `job` depends on `dependency`, directly or transitively.
    pub(crate) fn depends_on(&self, job: &str, dependency: &str) -> bool {
        let Some(graph) = self.graph.get() else { return false };
        let mut seen = HashSet::new();
        let mut queue: VecDeque<&str> = VecDeque::from([job]);
        while let Some(next) = queue.pop_front() {
            for dep in graph.get(next).into_iter().flatten() {
                if dep == dependency {
                    return true;
                }
                if seen.insert(dep.as_str()) {
                    queue.push_back(dep);
                }
            }
        }
        false
    }

    /// Keeps the output of job `id`, which succeeded, for its dependents.
    pub(crate) fn keep_output(&self, id: &str, output: &serde_json::Value) {
        self.outputs.lock().insert(id.to_owned(), Arc::new(output.clone()));
    }

    /// The output of job `id`, if it succeeded.
    pub(crate) fn output(&self, id: &str) -> Option<Arc<serde_json::Value>> {
        self.outputs.lock().get(id).cloned()
    }

    /// Every output kept so far.
    pub(crate) fn outputs(&self) -> HashMap<String, serde_json::Value> {
        self.outputs.lock().iter().map(|(id, output)| (id.clone(), (**output).clone())).collect()
    }

    /// Cancels the build: running jobs are stopped, the others skipped.
    pub(crate) fn cancel(&self) {
        self.canceled.send_replace(true);
    }

    /// Watches whether the build is canceled.
    pub(crate) fn canceled(&self) -> watch::Receiver<bool> {
        self.canceled.subscribe()
    }

    /// A slot of `--max-parallel` for process work of `kind`, held until the permit is
    /// dropped. When none is free, `busy` is told the pool's size first, so the work waiting
    /// can say so.
    pub(crate) async fn slot(&self, kind: Slot, busy: impl FnOnce(usize)) -> Result<SemaphorePermit<'_>, AcquireError> {
        let slots = match kind {
            Slot::Container => &self.container_slots,
            Slot::Command => &self.command_slots,
        };
        match slots.try_acquire() {
            Ok(permit) => Ok(permit),
            Err(TryAcquireError::NoPermits) => {
                busy(self.max_parallel);
                slots.acquire().await
            }
            // Closed: `acquire` says so.
            Err(TryAcquireError::Closed) => slots.acquire().await,
        }
    }

    /// The jobs waiting for containers.
    pub(crate) fn waiting(&self) -> &Waiting {
        &self.waiting
    }

    /// Who runs containers.
    pub(crate) fn containers(&self) -> &dyn ContainerRunner {
        &*self.containers
    }

    /// Whether the blocked job `job_id` may run (may wait for a person).
    pub(crate) async fn approve(&self, job_id: &str) -> Result<bool, JobError> {
        self.approver.approve(job_id).await
    }

    /// Saves `artifact.path` of `work_dir` as an artifact of the build.
    pub(crate) async fn save_artifact(&self, work_dir: &Path, artifact: ArtifactSpec) -> Result<(), JobError> {
        self.artifacts.save(work_dir, artifact).await
    }

    /// Restores the artifact `id` into `work_dir`; `Ok(false)` when no job saved it.
    pub(crate) async fn restore_artifact(&self, work_dir: &Path, id: &str) -> Result<bool, JobError> {
        self.artifacts.restore(work_dir, id).await
    }

    /// Keeps the steps an earlier launch journaled, for the jobs that take them again.
    pub(crate) fn set_replayed_steps(&self, steps: Steps) {
        let _ = self.replayed_steps.set(steps);
    }

    /// Step `n` (from 1) of `job`'s `attempt`, if an earlier launch journaled it.
    pub(crate) fn replayed_step(&self, job: &str, attempt: u32, n: u32) -> Option<Step> {
        self.replayed_steps.get().and_then(|steps| steps.get(job, attempt, n)).cloned()
    }

    /// How many log lines `job`'s `attempt` wrote before an earlier launch suspended.
    pub(crate) fn lines_written(&self, job: &str, attempt: u32) -> u64 {
        self.replayed_steps.get().map_or(0, |steps| steps.lines_written(job, attempt))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::Slot;
    use crate::testing::TestCtx;

    /// Issue 10: each `ctx.shell` step waited for a `--max-parallel` slot behind every
    /// container job, and said nothing while it waited.
    #[tokio::test]
    async fn a_command_does_not_wait_for_container_jobs_and_one_that_waits_is_told() {
        let build = TestCtx::new().max_parallel(1).test_build();
        let _container = build.slot(Slot::Container, |_| panic!("the first container slot is free")).await.unwrap();
        let first = build.slot(Slot::Command, |_| panic!("a command queued behind a container job")).await.unwrap();
        let told = AtomicUsize::new(0);
        let second = tokio::time::timeout(
            Duration::from_millis(100),
            build.slot(Slot::Command, |max| told.store(max, Ordering::SeqCst)),
        )
        .await;
        assert!(second.is_err(), "a second command ran beside the first with --max-parallel 1");
        assert_eq!(told.load(Ordering::SeqCst), 1, "the waiting command was not told the pool's size");
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), build.slot(Slot::Command, |_| ())).await;
        assert!(third.is_ok_and(|permit| permit.is_ok()), "the freed slot was not given to the next command");
    }
}
