//! Events between services: one [`Bus`] API over an in-process backend (embedded runs) and a
//! message broker (distributed runs): RabbitMQ (cargo feature `rabbitmq`, on by default) or NATS
//! JetStream (cargo feature `nats`). [`Bus::connect`] picks the broker from its URL; a system
//! compiles only the brokers its spec names.
//!
//! Every event travels as a CloudEvents 1.0 [`Envelope`] whose `type` is the event's name
//! (e.g. `user.registered`). Each consumer gets its own queue per event type, so every
//! consuming service sees every event once, while replicas of one service share the work.
//! Delivery is at least once: handlers must be idempotent (the envelope id is the natural
//! idempotency key).

mod in_process;
#[cfg(feature = "nats")]
pub(crate) mod nats;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;

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
    /// Version of the payload schema, carried in every envelope (`schemaversion`).
    const VERSION: u32 = 1;
    /// Critical events travel ahead of standard ones in the outbox and have queues of their own.
    const CRITICAL: bool = false;
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
    /// Extension: version of the payload schema (the spec's event `version`).
    #[serde(default = "first_version")]
    pub schemaversion: u32,
    /// Extension (CloudEvents distributed tracing): the W3C trace context of the request that
    /// caused the event, so that a trace continues across services.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    /// Extension: whether the event is critical (it has its own lane and queues).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub critical: bool,
    /// The event itself.
    pub data: serde_json::Value,
}

fn first_version() -> u32 {
    1
}

impl Envelope {
    /// Wraps `data` in a fresh envelope (time-ordered id, current time, schema version 1,
    /// standard priority, the current trace context if any).
    pub fn new(source: &str, event_type: &str, data: serde_json::Value) -> Self {
        Envelope {
            id: Uuid::now_v7(),
            source: source.to_owned(),
            event_type: event_type.to_owned(),
            time: crate::db::now(),
            specversion: "1.0".to_owned(),
            datacontenttype: "application/json".to_owned(),
            schemaversion: 1,
            traceparent: crate::telemetry::current_traceparent(),
            critical: false,
            data,
        }
    }

    /// The envelope of a typed event.
    pub fn of<E: Event>(source: &str, event: &E) -> Result<Self, BusError> {
        let data = serde_json::to_value(event).map_err(|error| BusError::Serialize {
            event_type: E::NAME.to_owned(),
            message: error.to_string(),
        })?;
        let mut envelope = Envelope::new(source, E::NAME, data);
        envelope.schemaversion = E::VERSION;
        envelope.critical = E::CRITICAL;
        Ok(envelope)
    }
}

/// What can go wrong connecting, publishing or subscribing.
///
/// Non-exhaustive because the broker variants exist only when their backend is compiled in.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    #[cfg(feature = "rabbitmq")]
    #[error("message broker error: {0}")]
    Amqp(#[from] lapin::Error),
    /// The connection to NATS failed or a JetStream operation was refused.
    #[cfg(feature = "nats")]
    #[error("message broker error (NATS): {0}")]
    Nats(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The broker URL names a broker this build has no backend for, or is malformed. The
    /// message never contains the URL itself, which may hold a password.
    #[error("{0}")]
    BrokerUrl(String),
    /// The broker URL names a broker whose backend was not compiled in (its cargo feature is off
    /// because the spec does not list it).
    #[error(
        "this system was generated without {broker} support; add `{feature}` to `brokers` in the spec"
    )]
    BrokerNotCompiled {
        /// The broker, e.g. `NATS`.
        broker: &'static str,
        /// The cargo feature of `svcgen-runtime` and the spec's name for it, e.g. `nats`.
        feature: &'static str,
    },
    /// The broker negatively acknowledged a published event (it could not store it).
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
    /// A bus inside this process (embedded runs). A publish returns once every subscriber has
    /// handled the event (or dead-lettered it), which is what lets the outbox relay mark an
    /// event sent only when it can no longer be lost: the same guarantee as a broker confirm
    /// followed by a durable queue.
    pub fn in_process() -> Bus {
        Bus {
            backend: Arc::new(in_process::InProcess::default()),
        }
    }

    /// The bus of a distributed run, on the broker `url` names: `amqp://` and `amqps://` are
    /// RabbitMQ ([`Bus::rabbitmq`], `namespace` is the exchange), `nats://` is NATS JetStream
    /// (`Bus::nats`, `namespace` prefixes the subjects). A broker that is not reachable yet is
    /// not an error (events wait in the outbox); a URL whose backend is not compiled in is
    /// ([`BusError::BrokerNotCompiled`]), and so is any other scheme ([`BusError::BrokerUrl`]).
    pub async fn connect(url: &str, namespace: &str) -> Result<Bus, BusError> {
        // Only the scheme is looked at (and ever shown): the rest may hold a password.
        let scheme = url
            .split_once("://")
            .map(|(scheme, _)| scheme.trim().to_ascii_lowercase());
        match scheme.as_deref() {
            Some("amqp" | "amqps") => rabbitmq_bus(url, namespace).await,
            Some("nats") => nats_bus(url, namespace).await,
            Some(other) => Err(BusError::BrokerUrl(format!(
                "unsupported message broker URL scheme `{other}://`: use amqp:// or amqps:// (RabbitMQ) or nats:// (NATS)"
            ))),
            None => Err(BusError::BrokerUrl(
                "the message broker URL has no scheme: use amqp://host... (RabbitMQ) or nats://host... (NATS)"
                    .to_owned(),
            )),
        }
    }

    /// RabbitMQ: a durable topic exchange `exchange`, persistent messages, publisher confirms,
    /// a durable queue per (consumer, event type) with a dead-letter exchange. Connections are
    /// made lazily and re-made after any failure, so a broker that is down at start or goes away
    /// for a while delays events and loses none (they wait in the outbox and in the queues).
    #[cfg(feature = "rabbitmq")]
    pub async fn rabbitmq(amqp_url: &str, exchange: &str) -> Result<Bus, BusError> {
        let backend = rabbitmq::RabbitMq::new(amqp_url, exchange);
        if let Err(error) = backend.check().await {
            tracing::warn!(%error, "RabbitMQ is not reachable yet; events wait in the outbox until it is");
        }
        Ok(Bus {
            backend: Arc::new(backend),
        })
    }

    /// NATS JetStream, with the same guarantees as [`Bus::rabbitmq`]: a file-backed stream for
    /// the subjects `<namespace>.>` that keeps each event until every consumer that existed when
    /// it was published has acknowledged it, publishes confirmed by JetStream and deduplicated by
    /// event id (`Nats-Msg-Id`), a durable pull consumer per (consumer, event type), and a
    /// dead-letter subject per consumer. `url` is `nats://[user:password@]host[:port]`, several
    /// separated by commas; this build has no TLS for NATS, so every host must be a loopback
    /// address (`127.0.0.1`, `::1`, `localhost`). Connections are made lazily and re-made after
    /// any failure, like RabbitMQ's.
    #[cfg(feature = "nats")]
    pub async fn nats(url: &str, namespace: &str) -> Result<Bus, BusError> {
        let backend = nats::Nats::new(url, namespace)?;
        if let Err(error) = backend.check().await {
            tracing::warn!(%error, "NATS is not reachable yet; events wait in the outbox until it is");
        }
        Ok(Bus {
            backend: Arc::new(backend),
        })
    }

    /// Hands one envelope to the broker and returns once it is safe there (broker confirm, or
    /// in-process: handled by every subscriber). Services do not call this directly: they
    /// write events to their outbox in the transaction of the change, and the relay calls it.
    pub async fn publish_envelope(&self, envelope: Envelope) -> Result<(), BusError> {
        tracing::debug!(event_id = %envelope.id, event_type = %envelope.event_type, "publishing event");
        self.backend.publish(envelope).await
    }

    /// Publishes a typed event at once, outside any transaction (tests and tools; services use
    /// their outbox).
    pub async fn publish<E: Event>(&self, source: &str, event: &E) -> Result<(), BusError> {
        self.publish_envelope(Envelope::of(source, event)?).await
    }

    /// Publishes an event given as JSON at once (tests and tools).
    pub async fn publish_json(
        &self,
        source: &str,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<(), BusError> {
        self.publish_envelope(Envelope::new(source, event_type, data))
            .await
    }

    /// Starts delivering events of one type to one consumer. Services subscribe through
    /// [`crate::events`], which wraps the handler in the inbox transaction.
    pub async fn subscribe(&self, subscription: Subscription) -> Result<(), BusError> {
        self.backend.subscribe(subscription).await
    }

    /// Stops consuming and closes connections; in-process queues finish what they hold.
    pub async fn close(&self) {
        self.backend.close().await;
    }

    /// The backend's name, for logs.
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }
}

#[cfg(feature = "rabbitmq")]
async fn rabbitmq_bus(url: &str, namespace: &str) -> Result<Bus, BusError> {
    Bus::rabbitmq(url, namespace).await
}

#[cfg(not(feature = "rabbitmq"))]
async fn rabbitmq_bus(_url: &str, _namespace: &str) -> Result<Bus, BusError> {
    Err(BusError::BrokerNotCompiled {
        broker: "RabbitMQ",
        feature: "rabbitmq",
    })
}

#[cfg(feature = "nats")]
async fn nats_bus(url: &str, namespace: &str) -> Result<Bus, BusError> {
    Bus::nats(url, namespace).await
}

#[cfg(not(feature = "nats"))]
async fn nats_bus(_url: &str, _namespace: &str) -> Result<Bus, BusError> {
    Err(BusError::BrokerNotCompiled {
        broker: "NATS",
        feature: "nats",
    })
}

/// A consumer's handler with the event type erased: it gets the envelope and either applies
/// its effect or fails.
pub type Handler = Arc<dyn Fn(Envelope) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// Where an event goes after its last failed attempt: the consumer's dead-letter store. Gets
/// the envelope, the last error and the number of attempts.
pub type DeadLetterSink =
    Arc<dyn Fn(Envelope, String, u32) -> BoxFuture<'static, anyhow::Result<()>> + Send + Sync>;

/// One consumer of one event type.
#[derive(Clone)]
pub struct Subscription {
    /// The consuming service (names its queue).
    pub consumer: &'static str,
    /// The event type consumed.
    pub event_type: &'static str,
    /// Whether this is critical traffic (own connection and lane).
    pub critical: bool,
    /// How failures are retried.
    pub retry: RetryPolicy,
    /// Applies the event.
    pub handler: Handler,
    /// Keeps what could not be applied.
    pub dead_letter: DeadLetterSink,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("consumer", &self.consumer)
            .field("event_type", &self.event_type)
            .field("critical", &self.critical)
            .field("retry", &self.retry)
            .finish()
    }
}

/// The seam between [`Bus`] and its backends.
trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>>;
    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'_, Result<(), BusError>>;
    fn close(&self) -> BoxFuture<'_, ()>;
}

/// Marks event data that does not match the consumer's type: a permanent failure, dead-lettered
/// at once since retrying cannot fix it.
#[derive(Debug, thiserror::Error)]
#[error("event data does not match the consumer's type: {0}")]
pub struct Undecodable(pub String);

/// Marks an event whose values break a rule of the consumer's data (a text longer than its
/// field allows, a word outside its enum): a permanent failure, dead-lettered at once.
#[derive(Debug, thiserror::Error)]
#[error("the event breaks a rule of the consumer's data: {0}")]
pub struct Rejected(pub String);

/// How often and how patiently a failing handler is retried: exponential backoff with full
/// jitter (each wait is random between zero and the current ceiling), so that many consumers
/// failing together do not retry in lockstep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts in all, the first included; then the event is dead-lettered.
    pub attempts: u32,
    /// Ceiling of the first wait.
    pub first_delay: Duration,
    /// Largest ceiling.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 5,
            first_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(10),
        }
    }
}

impl RetryPolicy {
    /// The wait before attempt `attempt + 1`.
    pub fn delay(&self, attempt: u32) -> Duration {
        let ceiling = self
            .first_delay
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.max_delay);
        let millis = u64::try_from(ceiling.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        Duration::from_millis(rand::random_range(0..=millis))
    }
}

/// How long a new subscription waits for its queue or consumer to exist before returning
/// anyway (a broker that is down at start must not block the service; the supervisor keeps
/// trying).
#[cfg(any(feature = "rabbitmq", feature = "nats"))]
const FIRST_CONSUME_WAIT: Duration = Duration::from_secs(10);
/// Longest pause between two reconnection attempts of a subscription.
#[cfg(any(feature = "rabbitmq", feature = "nats"))]
const MAX_RECONNECT_DELAY: Duration = Duration::from_secs(5);

/// Consumes one subscription until its connection fails (`Err`) or the bus stops (`Ok`); fires
/// `ready` once consumption has started.
#[cfg(any(feature = "rabbitmq", feature = "nats"))]
type Consume = Box<
    dyn for<'a> Fn(
            &'a Subscription,
            &'a mut tokio::sync::watch::Receiver<bool>,
            &'a mut Option<tokio::sync::oneshot::Sender<()>>,
        ) -> BoxFuture<'a, Result<(), BusError>>
        + Send
        + Sync,
>;

/// Keeps a broker subscription consuming for as long as the bus runs: `consume` is started
/// again after every connection failure, after a pause that grows up to
/// [`MAX_RECONNECT_DELAY`], until `stopping` turns true. Returns the supervising task and a
/// future that resolves once the first consumption has started (so that events published right
/// after `subscribe` reach a queue), or after [`FIRST_CONSUME_WAIT`].
#[cfg(any(feature = "rabbitmq", feature = "nats"))]
fn supervise(
    broker: &'static str,
    subscription: Subscription,
    mut stopping: tokio::sync::watch::Receiver<bool>,
    consume: Consume,
) -> (
    tokio::task::JoinHandle<()>,
    BoxFuture<'static, Result<(), BusError>>,
) {
    let (consumer, event_type) = (subscription.consumer, subscription.event_type);
    let (ready_sender, ready) = tokio::sync::oneshot::channel();
    let supervisor = tokio::spawn(async move {
        let mut ready = Some(ready_sender);
        let mut failures = 0u32;
        loop {
            match consume(&subscription, &mut stopping, &mut ready).await {
                Ok(()) => return,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(consumer, event_type, %error, "consumer disconnected; reconnecting");
                }
            }
            let delay = Duration::from_millis(200u64.saturating_mul(1 << failures.min(5)))
                .min(MAX_RECONNECT_DELAY);
            tokio::select! {
                _ = stopping.changed() => return,
                () = tokio::time::sleep(delay) => {}
            }
        }
    });
    let started = async move {
        if tokio::time::timeout(FIRST_CONSUME_WAIT, ready)
            .await
            .is_err()
        {
            tracing::warn!(
                consumer,
                event_type,
                "{broker} is not reachable; the consumer keeps trying in the background"
            );
        }
        Ok(())
    }
    .boxed();
    (supervisor, started)
}

/// How one event's delivery to one consumer ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Applied (or found already applied).
    Handled,
    /// Kept in the consumer's dead-letter store.
    DeadLettered,
    /// Neither: the broker must keep it (requeue, or its dead-letter exchange).
    Failed,
}

/// Runs a subscription's handler for one event under its retry policy, then dead-letters it.
/// Shared by every backend so that embedded and distributed runs behave the same. A panicking
/// handler counts as a failed attempt instead of killing the consumer.
pub(crate) async fn deliver(subscription: &Subscription, envelope: Envelope) -> Outcome {
    let consumer = subscription.consumer;
    let policy = subscription.retry;
    let mut attempt = 0;
    let error = loop {
        attempt += 1;
        let result = AssertUnwindSafe((subscription.handler)(envelope.clone()))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| Err(anyhow::anyhow!("event handler panicked")));
        let error = match result {
            Ok(()) => return Outcome::Handled,
            Err(error) => error,
        };
        if error.is::<Undecodable>() || error.is::<Rejected>() || attempt >= policy.attempts {
            break error;
        }
        tracing::warn!(consumer, event_id = %envelope.id, event_type = %envelope.event_type,
            attempt, error = format!("{error:#}"), "event handler failed; retrying");
        tokio::time::sleep(policy.delay(attempt)).await;
    };
    tracing::error!(consumer, event_id = %envelope.id, event_type = %envelope.event_type,
        attempts = attempt, error = format!("{error:#}"), "giving up on event; dead-lettering it");
    let id = envelope.id;
    match (subscription.dead_letter)(envelope, format!("{error:#}"), attempt).await {
        Ok(()) => Outcome::DeadLettered,
        Err(sink_error) => {
            tracing::error!(consumer, event_id = %id, error = format!("{sink_error:#}"),
                "cannot store the dead letter; leaving the event to the broker");
            Outcome::Failed
        }
    }
}

#[cfg(test)]
mod tests;
