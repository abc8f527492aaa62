//! The in-process backend (embedded runs): a queue and a task per subscription, and a publish
//! that waits until every subscriber is done with the event.

use std::collections::HashMap;
use std::sync::Mutex;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, join_all};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::{Backend, BusError, Envelope, Outcome, Subscription, deliver};

/// An event on its way to one subscriber, with the channel its outcome is reported on.
type Delivery = (Envelope, oneshot::Sender<Outcome>);

#[derive(Default)]
pub(super) struct InProcess {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    closed: bool,
    /// event type -> one queue per subscriber.
    queues: HashMap<&'static str, Vec<Queue>>,
    workers: Vec<JoinHandle<()>>,
}

struct Queue {
    consumer: &'static str,
    sender: mpsc::UnboundedSender<Delivery>,
}

impl InProcess {
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
        // Like a topic exchange: every subscriber of the type gets a copy; no subscriber, no copy.
        let outcomes: Result<Vec<_>, BusError> = {
            let state = self.lock();
            if state.closed {
                Err(BusError::Closed)
            } else {
                state
                    .queues
                    .get(envelope.event_type.as_str())
                    .into_iter()
                    .flatten()
                    .map(|queue| {
                        let (done, outcome) = oneshot::channel();
                        queue
                            .sender
                            .send((envelope.clone(), done))
                            .map_err(|_| BusError::Closed)?;
                        Ok(outcome)
                    })
                    .collect()
            }
        };
        let event_type = envelope.event_type.clone();
        async move {
            for outcome in join_all(outcomes?).await {
                match outcome {
                    Ok(Outcome::Handled | Outcome::DeadLettered) => {}
                    // Not safe anywhere yet: the outbox keeps the event and publishes it again.
                    Ok(Outcome::Failed) | Err(_) => return Err(BusError::Rejected { event_type }),
                }
            }
            Ok(())
        }
        .boxed()
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'_, Result<(), BusError>> {
        let result = {
            let mut state = self.lock();
            let (consumer, event_type) = (subscription.consumer, subscription.event_type);
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
                let (sender, mut receiver) = mpsc::unbounded_channel::<Delivery>();
                // Each event is handled in a task of its own, so a failing event waiting for its
                // next attempt does not hold up the ones behind it.
                let worker = tokio::spawn(async move {
                    let mut running = tokio::task::JoinSet::new();
                    while let Some((envelope, done)) = receiver.recv().await {
                        let subscription = subscription.clone();
                        running.spawn(async move {
                            let _ = done.send(deliver(&subscription, envelope).await);
                        });
                        while running.try_join_next().is_some() {}
                    }
                    while running.join_next().await.is_some() {}
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
            // Dropping the senders lets each worker finish what it holds and then stop.
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
