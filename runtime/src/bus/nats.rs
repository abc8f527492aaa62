//! The NATS JetStream backend (through async-nats), with RabbitMQ's semantics.
//!
//! | RabbitMQ | here |
//! |---|---|
//! | durable topic exchange `<namespace>` | file-backed stream for the subjects `<namespace>.>`, interest retention |
//! | routing key = event type | subject `<namespace>.<event type>` |
//! | persistent message + publisher confirm | JetStream publish acknowledgement, `Nats-Msg-Id` = event id |
//! | durable queue per (consumer, event type) | durable pull consumer `<consumer>-<event-type>` filtered on the event's subject |
//! | ack / nack without requeue to the dead-letter exchange | ack / republish to `<namespace>.dead-letter.<consumer>.<event type>` then ack |
//! | dead-letter queue | durable consumer `<consumer>-<event-type>--dead-letter` that nobody pulls |
//!
//! *Interest* retention keeps a message while a consumer whose filter matches it has not
//! acknowledged it and drops it at once when no consumer matches, exactly like a topic exchange
//! with durable queues: events published before a consumer ever subscribed are not kept, events
//! published while it is down wait for it. The dead-letter consumers exist so that dead letters
//! are kept too. Within the stream's duplicate window (2 minutes) a second publish of the same
//! envelope id is dropped by JetStream; later ones are the inbox's business.
//!
//! Connections are this module's business, as in `rabbitmq.rs`: the publisher connects lazily
//! and drops its connection after any failure (the outbox relay tries again later), and every
//! subscription runs a supervisor that reconnects with backoff for as long as the process runs.
//!
//! No TLS: this build compiles no crypto provider for NATS (RustCrypto is the only one allowed
//! and rustls has none for it here), so only plaintext `nats://` to loopback addresses is
//! accepted, where the traffic never leaves the machine.

use std::collections::HashSet;
use std::net::IpAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
use async_nats::jetstream::stream::{self, RetentionPolicy, StorageType};
use async_nats::jetstream::{self, AckKind};
use async_nats::{Client, ConnectOptions, HeaderMap, ServerAddr};
use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _};
use tokio::sync::{Mutex, Semaphore, oneshot, watch};
use tokio::task::{JoinHandle, JoinSet};

use super::{Backend, BusError, Consume, Envelope, Outcome, Subscription, deliver, supervise};

/// CloudEvents' media type for an event in structured mode (attributes and data in the body).
const CONTENT_TYPE: &str = "application/cloudevents+json";
/// Header of a dead letter naming the subject it was first published on.
const ORIGINAL_SUBJECT_HEADER: &str = "Svcgen-Original-Subject";
/// Deliveries one subscription works on at once (and pulls per batch): a failing event waiting
/// for its next attempt does not stop the others.
const PREFETCH: usize = 16;
/// How long JetStream waits for an acknowledgement before delivering a message again. Handlers
/// that take longer (retries with backoff) report progress every [`PROGRESS_EVERY`].
const ACK_WAIT: Duration = Duration::from_secs(30);
/// How long one pull request waits for messages before the client makes a new one.
const PULL_EXPIRES: Duration = Duration::from_secs(10);
/// How often the server tells a waiting pull request it is alive. Two missed heartbeats end the
/// subscription's connection and the supervisor makes a new one: without them a pull request
/// lost in a server restart would go unnoticed until it expires.
const PULL_HEARTBEAT: Duration = Duration::from_secs(2);
/// How often a message still being handled tells JetStream so, resetting its ack wait.
const PROGRESS_EVERY: Duration = Duration::from_secs(10);
/// How long a message that could be neither handled nor dead-lettered waits before JetStream
/// delivers it again.
const RETRY_UNSETTLED_AFTER: Duration = Duration::from_secs(5);
/// Window in which JetStream drops a second publish with the same `Nats-Msg-Id`.
const DUPLICATE_WINDOW: Duration = Duration::from_secs(120);
/// Limit of one connection attempt (a refused connection fails at once).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// At shutdown, how long handlers already running get to finish and acknowledge.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(4);

/// What one namespace is called in JetStream: the subject prefix and the stream's name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Names {
    /// Subject-safe namespace: `notes.events`.
    prefix: String,
    /// Stream name: `notes-events` (stream names cannot contain `.`).
    stream: String,
}

impl Names {
    /// The names of `namespace`. Subjects are dot-separated tokens; every character of a token
    /// other than ASCII letters, digits, `-` and `_` (wildcards, whitespace, path separators)
    /// becomes `_`, and empty tokens become `_`, so any namespace yields valid subjects.
    pub(crate) fn new(namespace: &str) -> Names {
        let prefix = subject_safe(namespace.trim());
        let stream = prefix.replace('.', "-");
        Names { prefix, stream }
    }

    /// The stream of the namespace.
    pub(crate) fn stream(&self) -> &str {
        &self.stream
    }

    /// The subjects the stream holds: `<namespace>.>`.
    fn stream_subjects(&self) -> String {
        format!("{}.>", self.prefix)
    }

    /// Where events of one type are published: `<namespace>.<event type>`.
    fn event_subject(&self, event_type: &str) -> String {
        format!("{}.{}", self.prefix, subject_safe(event_type))
    }

    /// Where one consumer's dead letters of one type go:
    /// `<namespace>.dead-letter.<consumer>.<event type>`. Names of a spec are lower snake_case,
    /// so no event type starts with the token `dead-letter`.
    fn dead_letter_subject(&self, consumer: &str, event_type: &str) -> String {
        format!(
            "{}.dead-letter.{}.{}",
            self.prefix,
            subject_safe(consumer),
            subject_safe(event_type)
        )
    }
}

/// The durable consumer of one (consumer, event type): `notification-user-registered`. Spec
/// names have no `-`, so the first `-` separates the consumer from the event type and
/// different pairs never share a consumer.
pub(crate) fn durable_name(consumer: &str, event_type: &str) -> String {
    format!("{}-{}", name_safe(consumer), name_safe(event_type))
}

/// The durable consumer holding a subscription's dead letters (no other name contains `--`).
pub(crate) fn dead_letter_durable_name(consumer: &str, event_type: &str) -> String {
    format!("{}--dead-letter", durable_name(consumer, event_type))
}

fn safe_char(c: char) -> char {
    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
        c
    } else {
        '_'
    }
}

fn subject_safe(text: &str) -> String {
    text.split('.')
        .map(|token| {
            if token.is_empty() {
                "_".to_owned()
            } else {
                token.chars().map(safe_char).collect()
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// Consumer names cannot contain `.` (nor wildcards, whitespace or path separators).
fn name_safe(text: &str) -> String {
    text.chars()
        .map(|c| if c == '.' { '-' } else { safe_char(c) })
        .collect()
}

/// Parses `nats://...` URLs (comma-separated) and refuses what this build cannot do safely.
fn parse_servers(url: &str) -> Result<Vec<ServerAddr>, BusError> {
    let mut servers = Vec::new();
    for (index, part) in url.split(',').enumerate() {
        // Error messages name the server by position, never by URL: it may hold a password.
        let position = index + 1;
        let server: ServerAddr = part.trim().parse().map_err(|_| {
            BusError::BrokerUrl(format!(
                "NATS server URL #{position} is not a valid nats://host:port URL"
            ))
        })?;
        if server.scheme() != "nats" {
            return Err(BusError::BrokerUrl(format!(
                "NATS server URL #{position}: only plaintext nats:// is supported (this build has no TLS for NATS)"
            )));
        }
        if !is_loopback(server.host()) {
            return Err(BusError::BrokerUrl(format!(
                "NATS server URL #{position}: plaintext nats:// is only allowed to a loopback address (127.0.0.1, ::1, localhost), since this build has no TLS for NATS"
            )));
        }
        servers.push(server);
    }
    Ok(servers)
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<IpAddr>()
            .is_ok_and(|address| address.is_loopback())
}

fn broker(error: impl std::error::Error + Send + Sync + 'static) -> BusError {
    BusError::Nats(Box::new(error))
}

/// Connects to the configured servers only (servers a cluster advertises could be elsewhere,
/// and plaintext must stay on loopback).
async fn connect(servers: &[ServerAddr], name: &str) -> Result<Client, BusError> {
    let connecting = ConnectOptions::new()
        .name(name)
        .ignore_discovered_servers()
        .connection_timeout(CONNECT_TIMEOUT)
        .connect(servers.to_vec());
    // A server that demands TLS makes async-nats build a rustls configuration, which panics
    // without a crypto provider: turn that into an error instead of a crashed task.
    match AssertUnwindSafe(connecting).catch_unwind().await {
        Ok(connected) => connected.map_err(broker),
        Err(_) => Err(BusError::BrokerUrl(
            "the NATS server requires TLS, which this build does not support".to_owned(),
        )),
    }
}

/// Makes sure the namespace's stream exists (a concurrent creation by another process is fine).
async fn ensure_stream(
    jetstream: &jetstream::Context,
    names: &Names,
) -> Result<stream::Stream, BusError> {
    let config = stream::Config {
        name: names.stream().to_owned(),
        description: Some(format!("svcgen events of `{}`", names.prefix)),
        subjects: vec![names.stream_subjects()],
        retention: RetentionPolicy::Interest,
        storage: StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        ..stream::Config::default()
    };
    match jetstream.get_or_create_stream(config).await {
        Ok(stream) => Ok(stream),
        // Created by someone else between our look-up and our creation.
        Err(error) => jetstream
            .get_stream(names.stream())
            .await
            .map_err(|_| broker(error)),
    }
}

/// The publisher's connection, with a number telling connections apart.
struct Publisher {
    jetstream: jetstream::Context,
    generation: u64,
}

pub(super) struct Nats {
    servers: Vec<ServerAddr>,
    names: Names,
    /// The publisher's connection, made on first use; `next_generation` numbers them.
    publisher: Mutex<Option<Publisher>>,
    next_generation: std::sync::atomic::AtomicU64,
    /// Flips to true at shutdown; supervisors watch it.
    stopping: watch::Sender<bool>,
    supervisors: std::sync::Mutex<Vec<JoinHandle<()>>>,
    /// (consumer, event type) pairs subscribed in this process.
    subscribed: std::sync::Mutex<HashSet<(&'static str, &'static str)>>,
}

impl Nats {
    pub(super) fn new(url: &str, namespace: &str) -> Result<Self, BusError> {
        Ok(Nats {
            servers: parse_servers(url)?,
            names: Names::new(namespace),
            publisher: Mutex::new(None),
            next_generation: std::sync::atomic::AtomicU64::new(0),
            stopping: watch::channel(false).0,
            supervisors: std::sync::Mutex::new(Vec::new()),
            subscribed: std::sync::Mutex::new(HashSet::new()),
        })
    }

    /// Connects the publisher once, to report a broker that is not there.
    pub(super) async fn check(&self) -> Result<(), BusError> {
        self.publisher().await.map(|_| ())
    }

    /// The publisher's JetStream context, connecting (and creating the stream) if needed. The
    /// lock is held only for that: publishes themselves run concurrently on one connection.
    async fn publisher(&self) -> Result<(jetstream::Context, u64), BusError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(current) = publisher.as_ref() {
            return Ok((current.jetstream.clone(), current.generation));
        }
        let client = connect(&self.servers, "svcgen publisher").await?;
        let jetstream = jetstream::new(client);
        ensure_stream(&jetstream, &self.names).await?;
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *publisher = Some(Publisher {
            jetstream: jetstream.clone(),
            generation,
        });
        Ok((jetstream, generation))
    }

    /// Drops the publisher's connection after a failure, unless another publish already
    /// replaced it.
    async fn forget_publisher(&self, generation: u64) {
        let mut publisher = self.publisher.lock().await;
        if publisher
            .as_ref()
            .is_some_and(|current| current.generation == generation)
        {
            *publisher = None;
        }
    }

    async fn publish_confirmed(
        &self,
        envelope: &Envelope,
        payload: Vec<u8>,
    ) -> Result<(), BusError> {
        let (jetstream, generation) = self.publisher().await?;
        let mut headers = HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, envelope.id.to_string());
        headers.insert("Content-Type", CONTENT_TYPE);
        let subject = self.names.event_subject(&envelope.event_type);
        // The publish acknowledgement is JetStream's confirm: the event is stored in the stream.
        let sent = async {
            jetstream
                .publish_with_headers(subject, headers, payload.into())
                .await?
                .await
        }
        .await;
        match sent {
            Ok(ack) => {
                if ack.duplicate {
                    tracing::debug!(event_id = %envelope.id, "event already in the stream; JetStream dropped the copy");
                }
                Ok(())
            }
            Err(error) => {
                // A broken connection is not reused: the next publish makes a new one (and
                // re-creates the stream if it was deleted).
                self.forget_publisher(generation).await;
                Err(broker(error))
            }
        }
    }
}

/// Creates the subscription's consumers and consumes until the connection fails or the process
/// stops. Returns `Ok` only when stopping.
async fn consume(
    servers: &[ServerAddr],
    names: &Names,
    subscription: &Subscription,
    stopping: &mut watch::Receiver<bool>,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Result<(), BusError> {
    let client = connect(servers, &format!("svcgen {}", subscription.consumer)).await?;
    let jetstream = jetstream::new(client.clone());
    let stream = ensure_stream(&jetstream, names).await?;
    let (consumer, event_type) = (subscription.consumer, subscription.event_type);
    let dead_subject = names.dead_letter_subject(consumer, event_type);
    // First the dead-letter consumer: with interest retention, a dead letter published while no
    // consumer matches its subject would be dropped.
    let dead_durable = dead_letter_durable_name(consumer, event_type);
    stream
        .get_or_create_consumer(
            &dead_durable,
            pull::Config {
                durable_name: Some(dead_durable.clone()),
                description: Some(format!(
                    "svcgen dead letters of {consumer} for {event_type}"
                )),
                filter_subject: dead_subject.clone(),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ..pull::Config::default()
            },
        )
        .await
        .map_err(broker)?;
    let durable = durable_name(consumer, event_type);
    let events = stream
        .get_or_create_consumer(
            &durable,
            pull::Config {
                durable_name: Some(durable.clone()),
                description: Some(format!("svcgen: {consumer} consumes {event_type}")),
                filter_subject: names.event_subject(event_type),
                ack_policy: AckPolicy::Explicit,
                // Like a new queue on a topic exchange: what was published before it existed is
                // not its business.
                deliver_policy: DeliverPolicy::New,
                ack_wait: ACK_WAIT,
                ..pull::Config::default()
            },
        )
        .await
        .map_err(broker)?;
    let mut messages = events
        .stream()
        .max_messages_per_batch(PREFETCH)
        .expires(PULL_EXPIRES)
        .heartbeat(PULL_HEARTBEAT)
        .messages()
        .await
        .map_err(broker)?;
    tracing::info!(consumer, stream = names.stream, durable, "consuming");
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    let slots = Arc::new(Semaphore::new(PREFETCH));
    let mut running = JoinSet::new();
    let ended = loop {
        let slot = tokio::select! {
            _ = stopping.changed() => break Ok(()),
            slot = slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else {
            break Err(BusError::Closed);
        };
        let message = tokio::select! {
            _ = stopping.changed() => break Ok(()),
            message = messages.next() => message,
        };
        let message = match message {
            Some(Ok(message)) => message,
            Some(Err(error)) => break Err(broker(error)),
            None => break Err(BusError::Closed),
        };
        let subscription = subscription.clone();
        let dead_subject = dead_subject.clone();
        running.spawn(async move {
            let _slot = slot;
            handle(message, &subscription, &dead_subject).await;
        });
        while running.try_join_next().is_some() {}
    };
    drop(messages);
    match ended {
        Ok(()) => {
            // Stopping: handlers already running get a moment to finish and acknowledge; what is
            // still unacknowledged after that is delivered again later (the inbox makes that
            // harmless).
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, async {
                while running.join_next().await.is_some() {}
            })
            .await;
            running.abort_all();
            close_connection(&client).await;
        }
        // The connection failed: running handlers finish on their own and settle what they can
        // while the supervisor reconnects.
        Err(_) => running.detach_all(),
    }
    ended
}

/// Drains a connection (its subscriptions end, buffered acknowledgements are sent) and waits,
/// bounded, until it is closed: a consumer's pull requests must be gone from the server before
/// another process (or this one, restarted) consumes, or events could be handed to them.
async fn close_connection(client: &Client) {
    let closed = async {
        if client.drain().await.is_ok() {
            // A flush fails once the connection's task has ended, i.e. the drain is complete.
            while client.flush().await.is_ok() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, closed).await.is_err() {
        tracing::warn!("the NATS connection did not close in time");
    }
}

/// Delivers one message and settles it by its outcome.
async fn handle(message: jetstream::Message, subscription: &Subscription, dead_subject: &str) {
    let outcome = match serde_json::from_slice::<Envelope>(&message.payload) {
        Ok(envelope) => with_progress(&message, deliver(subscription, envelope)).await,
        Err(error) => {
            tracing::error!(consumer = subscription.consumer, subject = %message.subject, %error,
                "not a CloudEvents envelope; dead-lettering it");
            Outcome::Failed
        }
    };
    let settled = match outcome {
        Outcome::Handled | Outcome::DeadLettered => message.ack().await,
        // The broker keeps it: on the dead-letter subject, or (if even that fails) here, to be
        // delivered again a little later.
        Outcome::Failed => match republish_dead_letter(&message, dead_subject).await {
            Ok(()) => message.ack().await,
            Err(error) => {
                tracing::warn!(consumer = subscription.consumer, %error,
                    "cannot publish the dead letter; the event will be delivered again");
                message
                    .ack_with(AckKind::Nak(Some(RETRY_UNSETTLED_AFTER)))
                    .await
            }
        },
    };
    if let Err(error) = settled {
        // Unacknowledged messages are delivered again after the ack wait; the inbox makes that
        // harmless.
        tracing::warn!(consumer = subscription.consumer, %error,
            "could not settle a message; it will be redelivered");
    }
}

/// Runs `work`, telling JetStream every [`PROGRESS_EVERY`] that the message is still being
/// handled, so that retries with backoff do not outlast the ack wait and cause a redelivery.
async fn with_progress(
    message: &jetstream::Message,
    work: impl Future<Output = Outcome>,
) -> Outcome {
    let mut work = std::pin::pin!(work);
    let mut ticker = tokio::time::interval(PROGRESS_EVERY);
    // The first tick is immediate; the message was just delivered.
    ticker.tick().await;
    loop {
        tokio::select! {
            outcome = &mut work => return outcome,
            _ = ticker.tick() => {
                if let Err(error) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(%error, "cannot report progress on a message");
                }
            }
        }
    }
}

/// Publishes the message, as it is, to the dead-letter subject and waits for JetStream to have
/// stored it. Its id is the original's stream sequence, so a redelivery that gets here again
/// within the duplicate window does not store it twice.
async fn republish_dead_letter(
    message: &jetstream::Message,
    dead_subject: &str,
) -> Result<(), BusError> {
    let mut headers = HeaderMap::new();
    headers.insert("Content-Type", CONTENT_TYPE);
    headers.insert(ORIGINAL_SUBJECT_HEADER, message.subject.as_str());
    if let Ok(info) = message.info() {
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("dead-letter.{}.{}", info.consumer, info.stream_sequence),
        );
    }
    message
        .context
        .publish_with_headers(dead_subject.to_owned(), headers, message.payload.clone())
        .await
        .map_err(broker)?
        .await
        .map_err(broker)?;
    Ok(())
}

impl Backend for Nats {
    fn name(&self) -> &'static str {
        "nats"
    }

    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        async move {
            // A closed bus must not open a new connection behind its owner's back.
            if *self.stopping.borrow() {
                return Err(BusError::Closed);
            }
            let payload = serde_json::to_vec(&envelope).map_err(|error| BusError::Serialize {
                event_type: envelope.event_type.clone(),
                message: error.to_string(),
            })?;
            self.publish_confirmed(&envelope, payload).await
        }
        .boxed()
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'_, Result<(), BusError>> {
        let (consumer, event_type) = (subscription.consumer, subscription.event_type);
        if *self.stopping.borrow() {
            return async { Err(BusError::Closed) }.boxed();
        }
        let fresh = self
            .subscribed
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert((consumer, event_type));
        if !fresh {
            return async move {
                Err(BusError::DuplicateSubscription {
                    consumer: consumer.to_owned(),
                    event_type: event_type.to_owned(),
                })
            }
            .boxed();
        }
        let (servers, names) = (self.servers.clone(), self.names.clone());
        let consume: Consume = Box::new(move |subscription, stopping, ready| {
            let (servers, names) = (servers.clone(), names.clone());
            async move { consume(&servers, &names, subscription, stopping, ready).await }.boxed()
        });
        let (supervisor, started) =
            supervise("NATS", subscription, self.stopping.subscribe(), consume);
        self.supervisors
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(supervisor);
        started
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            let _ = self.stopping.send(true);
            let supervisors = std::mem::take(
                &mut *self
                    .supervisors
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            for supervisor in supervisors {
                // Consumers give their handlers SHUTDOWN_GRACE, then drain their connection.
                let _ = tokio::time::timeout(SHUTDOWN_GRACE * 3, supervisor).await;
            }
            if let Some(publisher) = self.publisher.lock().await.take() {
                close_connection(&publisher.jetstream.client()).await;
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_subject_safe_and_distinct_per_consumer_and_event_type() {
        let names = Names::new("notes.events");
        assert_eq!(names.stream(), "notes-events");
        assert_eq!(names.stream_subjects(), "notes.events.>");
        assert_eq!(
            names.event_subject("user.registered"),
            "notes.events.user.registered"
        );
        assert_eq!(
            names.dead_letter_subject("notification", "user.registered"),
            "notes.events.dead-letter.notification.user.registered"
        );
        let odd = Names::new(" my system.*.>..ev ents/x ");
        assert_eq!(odd.prefix, "my_system._._._.ev_ents_x");
        assert_eq!(odd.stream(), "my_system-_-_-_-ev_ents_x");
        assert_eq!(
            durable_name("notification", "user.registered"),
            "notification-user-registered"
        );
        assert_eq!(
            dead_letter_durable_name("notification", "user.registered"),
            "notification-user-registered--dead-letter"
        );
        // Pairs that a naive `_` join would confuse stay apart.
        assert_ne!(durable_name("a_b", "c.d"), durable_name("a", "b_c.d"));
        assert_ne!(durable_name("a", "b_c.d"), durable_name("a", "b.c_d"));
    }

    #[test]
    fn only_plaintext_nats_on_loopback_is_accepted() {
        for url in [
            "nats://127.0.0.1:4222",
            "nats://localhost",
            "nats://user:secret@127.0.0.1:4222",
            "nats://[::1]:4222",
            "nats://127.0.0.1:4222, nats://127.0.0.2:4223",
        ] {
            assert!(parse_servers(url).is_ok(), "{url}");
        }
        for url in [
            "nats://10.0.0.7:4222",
            "nats://nats.example.com:4222",
            "tls://127.0.0.1:4222",
            "nats://127.0.0.1:4222,nats://user:hunter2@10.1.1.1",
            "nats://[not an address",
        ] {
            let error = parse_servers(url).expect_err(url).to_string();
            assert!(!error.contains("hunter2"), "{error}");
        }
    }
}
