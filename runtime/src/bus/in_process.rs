//! The in-process backend: what RabbitMQ does, with channels and tasks.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::{Backend, BusError, Envelope, Handler, RetryPolicy, deliver};

pub(super) struct InProcess {
    policy: RetryPolicy,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    /// event type -> one queue per consumer of it.
    queues: HashMap<&'static str, Vec<Queue>>,
    workers: Vec<JoinHandle<()>>,
}

struct Queue {
    consumer: &'static str,
    sender: mpsc::UnboundedSender<Envelope>,
}

impl InProcess {
    pub(super) fn new(policy: RetryPolicy) -> Self {
        InProcess {
            policy,
            state: Mutex::new(State::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // The lock guards plain bookkeeping that no code path leaves half-updated, so a
        // poisoned lock (a panic elsewhere while holding it) is still safe to use.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Backend for InProcess {
    fn name(&self) -> &'static str {
        "in-process"
    }

    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        let result = {
            let state = self.lock();
            if state.closed {
                Err(BusError::Closed)
            } else {
                // Like a topic exchange: no subscriber, nobody gets it.
                for queue in state
                    .queues
                    .get(envelope.event_type.as_str())
                    .into_iter()
                    .flatten()
                {
                    // A send only fails when the worker is gone, i.e. during shutdown.
                    if queue.sender.send(envelope.clone()).is_err() {
                        tracing::warn!(consumer = queue.consumer, event_id = %envelope.id, "consumer stopped; event not delivered");
                    }
                }
                Ok(())
            }
        };
        async move { result }.boxed()
    }

    fn subscribe(
        &self,
        consumer: &'static str,
        event_type: &'static str,
        handler: Handler,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        let result = {
            let mut state = self.lock();
            if state.closed {
                Err(BusError::Closed)
            } else if state
                .queues
                .get(event_type)
                .is_some_and(|qs| qs.iter().any(|q| q.consumer == consumer))
            {
                Err(BusError::DuplicateSubscription {
                    consumer: consumer.to_owned(),
                    event_type: event_type.to_owned(),
                })
            } else {
                let (sender, mut receiver) = mpsc::unbounded_channel::<Envelope>();
                let policy = self.policy;
                // One task per queue handles its events one after another, preserving the
                // publish order for each consumer, like a RabbitMQ queue with prefetch 1.
                let worker = tokio::spawn(async move {
                    while let Some(envelope) = receiver.recv().await {
                        deliver(&handler, envelope, consumer, policy).await;
                    }
                });
                state
                    .queues
                    .entry(event_type)
                    .or_default()
                    .push(Queue { consumer, sender });
                state.workers.push(worker);
                Ok(())
            }
        };
        async move { result }.boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        let workers = {
            let mut state = self.lock();
            state.closed = true;
            // Dropping the senders lets each worker finish its queue and then stop.
            state.queues.clear();
            std::mem::take(&mut state.workers)
        };
        async move {
            for worker in workers {
                if let Err(error) = worker.await {
                    tracing::error!(%error, "event consumer task failed");
                }
            }
        }
        .boxed()
    }
}
