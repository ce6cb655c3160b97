//! Suspension: which jobs of a build only wait for containers, and when that is all that runs
//! in the script, so it may exit and be resumed when a container ends.
//!
//! This module keeps count and wakes whoever watches; it neither journals nor exits (the
//! scheduler decides to suspend, and each job's scope journals where it is).

use std::collections::HashMap;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::Notify;

/// The jobs waiting for containers, and how many containers each waits for.
#[derive(Default)]
pub(crate) struct Waiting {
    jobs: Mutex<HashMap<String, usize>>,
    changed: Notify,
}

impl Waiting {
    /// Counts `job` as waiting for a container until the guard is dropped (`None`: counts
    /// nothing, for a job under which the script must not suspend).
    pub(crate) fn enter(&self, job: Option<String>) -> WaitingGuard<'_> {
        if let Some(job) = &job {
            *self.jobs.lock().entry(job.clone()).or_insert(0) += 1;
            self.changed.notify_waiters();
        }
        WaitingGuard { waiting: self, job }
    }

    /// How many jobs wait for containers now.
    pub(crate) fn jobs(&self) -> usize {
        self.jobs.lock().len()
    }

    /// For how many containers `job` waits now.
    #[cfg(test)]
    pub(crate) fn containers_of(&self, job: &str) -> usize {
        self.jobs.lock().get(job).copied().unwrap_or(0)
    }

    /// Resolves once every one of the `running` jobs waits for a container, and has for
    /// `after`: nothing runs in this process, so it may exit.
    pub(crate) async fn only_waiting(&self, running: usize, after: Duration) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if running > 0 && self.jobs() == running {
                tokio::select! {
                    _ = tokio::time::sleep(after) => {
                        if self.jobs() == running {
                            return;
                        }
                    }
                    _ = &mut changed => {}
                }
            } else {
                changed.await;
            }
        }
    }
}

/// Counts a job as waiting for a container while it lives.
pub(crate) struct WaitingGuard<'a> {
    waiting: &'a Waiting,
    job: Option<String>,
}

impl Drop for WaitingGuard<'_> {
    fn drop(&mut self) {
        let Some(job) = &self.job else { return };
        let mut jobs = self.waiting.jobs.lock();
        if let Some(count) = jobs.get_mut(job) {
            *count -= 1;
            if *count == 0 {
                jobs.remove(job);
            }
        }
        drop(jobs);
        self.waiting.changed.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_waits_until_its_last_guard_is_dropped() {
        let waiting = Waiting::default();
        let first = waiting.enter(Some("build".into()));
        let second = waiting.enter(Some("build".into()));
        let _none = waiting.enter(None);
        assert_eq!((waiting.jobs(), waiting.containers_of("build")), (1, 2));
        drop(first);
        assert_eq!(waiting.containers_of("build"), 1);
        drop(second);
        assert_eq!(waiting.jobs(), 0);
    }

    #[tokio::test]
    async fn only_waiting_resolves_once_every_running_job_waits() {
        let waiting = Waiting::default();
        let _guard = waiting.enter(Some("a".into()));
        tokio::time::timeout(Duration::from_secs(5), waiting.only_waiting(1, Duration::ZERO))
            .await
            .expect("the one running job waits");
        let not_yet = tokio::time::timeout(Duration::from_millis(50), waiting.only_waiting(2, Duration::ZERO)).await;
        assert!(not_yet.is_err(), "one of two running jobs still runs");
    }
}
