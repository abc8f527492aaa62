//! Events between services: one [`Bus`] API over an in-process backend (embedded runs) and
//! RabbitMQ (distributed runs).
//!
//! Every event travels as a CloudEvents 1.0 [`Envelope`] whose `type` is the event's name
//! (e.g. `user.registered`). Each consumer gets its own queue per event type, so every
//! consuming service sees every event once, while replicas of one service share the work.
//! Delivery is at least once: handlers must be idempotent (the envelope id is the natural
//! idempotency key).

mod in_process;
mod rabbitmq;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::FutureExt as _;
use futures_util::future::BoxFuture;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A typed event, declared once in a contracts crate and shared by producer and consumers.
pub trait Event: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The event type, also the routing key (e.g. `"user.registered"`).
    const NAME: &'static str;
}

/// The CloudEvents 1.0 attributes around an event's data (JSON format, structured mode).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Envelope {
    /// Unique per event; consumers use it to recognise redeliveries.
    pub id: Uuid,
    /// The service that published the event.
    pub source: String,
    /// The event type, e.g. `user.registered`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// When the event was published.
    pub time: DateTime<Utc>,
    /// Always `"1.0"`.
    pub specversion: String,
    /// Always `"application/json"`.
    pub datacontenttype: String,
    /// The event itself.
    pub data: serde_json::Value,
}

impl Envelope {
    /// Wraps `data` in a fresh envelope (time-ordered id, current time).
    pub fn new(source: &str, event_type: &str, data: serde_json::Value) -> Self {
        Envelope {
            id: Uuid::now_v7(),
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            time: Utc::now(),
            specversion: "1.0".to_owned(),
            datacontenttype: "application/json".to_owned(),
            data,
        }
    }
}

/// What can go wrong publishing or subscribing.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The event could not be serialized to JSON.
    #[error("cannot serialize event `{event_type}`: {message}")]
    Serialize {
        /// The event type.
        event_type: String,
        /// The serializer's message.
        message: String,
    },
    /// The connection to RabbitMQ failed or an AMQP operation was refused.
    #[error("message broker error: {0}")]
    Amqp(#[from] lapin::Error),
    /// RabbitMQ negatively acknowledged a published event (it could not store it).
    #[error("the message broker did not accept event `{event_type}`")]
    Rejected {
        /// The event type.
        event_type: String,
    },
    /// The same consumer subscribed twice to one event type in this process.
    #[error("consumer `{consumer}` is already subscribed to `{event_type}`")]
    DuplicateSubscription {
        /// The consumer name.
        consumer: String,
        /// The event type.
        event_type: String,
    },
    /// The bus was closed (the process is shutting down).
    #[error("the event bus is closed")]
    Closed,
}

/// A handle to the event bus; cheap to clone, shared by every part of a process.
#[derive(Clone)]
pub struct Bus {
    backend: Arc<dyn Backend>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bus")
            .field("backend", &self.backend.name())
            .finish()
    }
}

impl Bus {
    /// A bus inside this process: per (consumer, event type) an unbounded queue drained by one
    /// task, with the same retry rules as RabbitMQ. Events live in memory only, so events not
    /// yet handled when the process stops are lost (fine for embedded development runs).
    pub fn in_process() -> Bus {
        Bus {
            backend: Arc::new(in_process::InProcess::new(RetryPolicy::default())),
        }
    }

    /// Connects to RabbitMQ and declares the durable topic exchange `exchange`. Messages are
    /// persistent and every publish waits for the broker's confirm. The connection recovers
    /// by itself after network failures (topology and consumers included).
    pub async fn rabbitmq(amqp_url: &str, exchange: &str) -> Result<Bus, BusError> {
        let backend =
            rabbitmq::RabbitMq::connect(amqp_url, exchange, RetryPolicy::default()).await?;
        Ok(Bus {
            backend: Arc::new(backend),
        })
    }

    /// Publishes a typed event from the service `source`.
    pub async fn publish<E: Event>(&self, source: &str, event: &E) -> Result<(), BusError> {
        let data = serde_json::to_value(event).map_err(|error| BusError::Serialize {
            event_type: E::NAME.to_owned(),
            message: error.to_string(),
        })?;
        self.publish_json(source, E::NAME, data).await
    }

    /// Publishes an event given as JSON (for runtime code that has no Rust type for it).
    pub async fn publish_json(
        &self,
        source: &str,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<(), BusError> {
        let envelope = Envelope::new(source, event_type, data);
        tracing::debug!(event_id = %envelope.id, event_type, source, "publishing event");
        self.backend.publish(envelope).await
    }

    /// Subscribes `consumer` (a service name) to events of type `E`.
    ///
    /// RabbitMQ: a durable queue `<exchange>.<consumer>.<event type>` bound with the event type
    /// as routing key, so events published while the consumer is down wait for it. A message
    /// is acknowledged only after the handler succeeded. A failing handler is retried (up to 5
    /// attempts, exponential backoff from 100 ms); then the event is logged and dropped
    /// (dead-lettering comes later). Data that does not decode as `E` is logged and dropped
    /// at once, since retrying cannot fix it.
    pub async fn subscribe<E, F, Fut>(
        &self,
        consumer: &'static str,
        handler: F,
    ) -> Result<(), BusError>
    where
        E: Event,
        F: Fn(Envelope, E) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handler: Handler = Arc::new(move |envelope: Envelope| {
            match serde_json::from_value::<E>(envelope.data.clone()) {
                Ok(event) => handler(envelope, event).boxed(),
                Err(error) => {
                    let error = anyhow::Error::new(Undecodable(error.to_string()));
                    async move { Err(error) }.boxed()
                }
            }
        });
        self.backend.subscribe(consumer, E::NAME, handler).await
    }

    /// Stops consuming and closes the connection. In-process queues are drained first (their
    /// handlers still run); publishing afterwards fails with [`BusError::Closed`].
    pub async fn close(&self) {
        self.backend.close().await;
    }
}

/// A subscriber's handler with the event type erased.
type Handler = Arc<dyn Fn(Envelope) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// The seam between [`Bus`] and its backends.
trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>>;
    fn subscribe(
        &self,
        consumer: &'static str,
        event_type: &'static str,
        handler: Handler,
    ) -> BoxFuture<'_, Result<(), BusError>>;
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Marks event data that does not match the consumer's type: a permanent failure.
#[derive(Debug, thiserror::Error)]
#[error("event data does not match the consumer's type: {0}")]
struct Undecodable(String);

/// How often and how patiently a failing handler is retried.
#[derive(Debug, Clone, Copy)]
struct RetryPolicy {
    attempts: u32,
    first_delay: Duration,
    max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
        }
    }
}

/// How one event's delivery to one consumer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Handled,
    /// Given up on: logged, and to be dropped (or dead-lettered) by the backend.
    Failed,
}

/// Runs `handler` for one event under `policy`, shared by both backends so that embedded and
/// distributed runs behave the same. A panicking handler counts as a failed attempt instead of
/// killing the consumer.
async fn deliver(
    handler: &Handler,
    envelope: Envelope,
    consumer: &str,
    policy: RetryPolicy,
) -> Outcome {
    let mut delay = policy.first_delay;
    for attempt in 1..=policy.attempts {
        let result = AssertUnwindSafe(handler(envelope.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("event handler panicked")));
        let error = match result {
            Ok(()) => return Outcome::Handled,
            Err(error) => error,
        };
        if error.is::<Undecodable>() {
            tracing::error!(consumer, event_id = %envelope.id, event_type = %envelope.event_type,
                error = %error, "dropping event that cannot be decoded");
            return Outcome::Failed;
        }
        if attempt == policy.attempts {
            tracing::error!(consumer, event_id = %envelope.id, event_type = %envelope.event_type,
                attempts = attempt, error = format!("{error:#}"), "event handler kept failing; dropping event");
            return Outcome::Failed;
        }
        tracing::warn!(consumer, event_id = %envelope.id, event_type = %envelope.event_type,
            attempt, error = format!("{error:#}"), "event handler failed; retrying");
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(policy.max_delay);
    }
    Outcome::Failed
}

#[cfg(test)]
mod tests;
