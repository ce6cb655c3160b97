//! Group commit: [`Batcher`] hands requests that arrive while the previous group is being
//! written to one task as the next group, so a burst of writes becomes a few transactions
//! instead of one each. SQLite has one writer: without this, 200 webhook deliveries at once
//! wait on its lock one by one (and its busy handler sleeps between tries).
//!
//! It knows nothing of what it batches: each request carries its own reply.

use std::future::Future;

use tokio::sync::mpsc;

/// Queues requests for a task that handles them in groups of at most `max`, in arrival order.
#[derive(Debug)]
pub(crate) struct Batcher<T> {
    queue: mpsc::UnboundedSender<T>,
}

impl<T> Clone for Batcher<T> {
    fn clone(&self) -> Self {
        Batcher { queue: self.queue.clone() }
    }
}

impl<T: Send + 'static> Batcher<T> {
    /// Starts the task: `handle` gets each group; the task ends when every `Batcher` clone is
    /// gone.
    pub(crate) fn spawn<F, Fut>(max: usize, handle: F) -> Batcher<T>
    where
        F: Fn(Vec<T>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let (queue, mut requests) = mpsc::unbounded_channel::<T>();
        tokio::spawn(async move {
            while let Some(first) = requests.recv().await {
                let mut group = vec![first];
                while group.len() < max.max(1)
                    && let Ok(more) = requests.try_recv()
                {
                    group.push(more);
                }
                handle(group).await;
            }
        });
        Batcher { queue }
    }

    /// Queues `request`; gives it back when the task is gone.
    pub(crate) fn send(&self, request: T) -> Result<(), T> {
        self.queue.send(request).map_err(|refused| refused.0)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use parking_lot::Mutex;
    use tokio::sync::oneshot;

    use super::Batcher;

    #[tokio::test]
    async fn what_arrives_while_a_group_is_handled_is_the_next_group_in_order() {
        let groups = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&groups);
        let batcher = Batcher::spawn(3, move |group: Vec<(u32, oneshot::Sender<()>)>| {
            let seen = Arc::clone(&seen);
            async move {
                seen.lock().push(group.iter().map(|(n, _)| *n).collect::<Vec<_>>());
                tokio::time::sleep(Duration::from_millis(50)).await;
                for (_, reply) in group {
                    let _ = reply.send(());
                }
            }
        });
        let mut answers = Vec::new();
        for n in 0..5 {
            let (reply, answer) = oneshot::channel();
            assert!(batcher.send((n, reply)).is_ok());
            answers.push(answer);
            if n == 0 {
                // The first is taken alone; the rest arrive while it is handled.
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        for answer in answers {
            answer.await.unwrap();
        }
        assert_eq!(*groups.lock(), vec![vec![0], vec![1, 2, 3], vec![4]]);
    }
}
