//! The RabbitMQ backend (AMQP 0-9-1 through lapin).
//!
//! Connections are this module's business, not lapin's recovery: the publisher connects lazily
//! and drops its connection on any error (the outbox relay tries again later), and every
//! subscription runs a supervisor that reconnects with backoff for as long as the process runs.
//! A broker that is down for a while therefore delays events and loses none.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::sync::{Mutex, Semaphore, oneshot, watch};
use tokio::task::JoinHandle;

use super::{Backend, BusError, Consume, Envelope, Outcome, Subscription, deliver, supervise};

/// CloudEvents' media type for an event in structured mode (attributes and data in the body).
const CONTENT_TYPE: &str = "application/cloudevents+json";
/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;
/// Deliveries one subscription works on at once: a failing event waiting for its next attempt
/// does not stop the others.
const PREFETCH: u16 = 16;

pub(super) struct RabbitMq {
    url: String,
    exchange: String,
    /// The publisher's connection and confirm-mode channel, made on first use, with the number
    /// of the connection (so that a failed publish drops only the connection it used).
    publisher: Mutex<Option<Publisher>>,
    /// The number the next publisher connection gets.
    next_generation: std::sync::atomic::AtomicU64,
    /// Flips to true at shutdown; supervisors watch it.
    stopping: watch::Sender<bool>,
    supervisors: std::sync::Mutex<Vec<JoinHandle<()>>>,
}

impl RabbitMq {
    pub(super) fn new(url: &str, exchange: &str) -> Self {
        RabbitMq {
            url: url.to_owned(),
            exchange: exchange.to_owned(),
            publisher: Mutex::new(None),
            next_generation: std::sync::atomic::AtomicU64::new(0),
            stopping: watch::channel(false).0,
            supervisors: std::sync::Mutex::new(Vec::new()),
        }
    }

    /// Connects the publisher once, to report a broker that is not there.
    pub(super) async fn check(&self) -> Result<(), BusError> {
        self.channel().await.map(|_| ())
    }

    /// The publisher's channel (connecting it first when there is none) and its connection's
    /// number. The lock is held only to find or make it: publishes share the channel, and
    /// their confirms are awaited in parallel (lapin pairs each confirm with its publish).
    async fn channel(&self) -> Result<(Channel, u64), BusError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(current) = publisher.as_ref() {
            return Ok((current.channel.clone(), current.generation));
        }
        let (connection, channel) = open_publisher(&self.url, &self.exchange).await?;
        let generation = self
            .next_generation
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        *publisher = Some(Publisher {
            connection,
            channel: channel.clone(),
            generation,
        });
        Ok((channel, generation))
    }

    /// Closes the publisher's connection after a failed publish, unless another publish has
    /// already replaced it: the next publish makes a new one.
    async fn forget_publisher(&self, generation: u64) {
        let mut publisher = self.publisher.lock().await;
        if publisher
            .as_ref()
            .is_some_and(|current| current.generation == generation)
            && let Some(broken) = publisher.take()
        {
            let _ = broken.connection.close(0, "publish failed".into()).await;
        }
    }

    async fn publish_confirmed(&self, envelope: &Envelope, payload: &[u8]) -> Result<(), BusError> {
        let (channel, generation) = self.channel().await?;
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_message_id(envelope.id.to_string().into())
            .with_type(envelope.event_type.as_str().into())
            .with_app_id(envelope.source.as_str().into());
        let sent = async {
            channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    envelope.event_type.as_str().into(),
                    BasicPublishOptions {
                        mandatory: false,
                        ..BasicPublishOptions::default()
                    },
                    payload,
                    properties,
                )
                .await?
                .await
        }
        .await;
        match sent {
            Ok(confirmation) if confirmation.is_ack() => Ok(()),
            Ok(_) => Err(BusError::Rejected {
                event_type: envelope.event_type.clone(),
            }),
            Err(error) => {
                // A broken connection is not reused: the next publish makes a new one.
                self.forget_publisher(generation).await;
                Err(error.into())
            }
        }
    }
}

/// The publisher's connection and its confirm-mode channel.
struct Publisher {
    connection: Connection,
    channel: Channel,
    generation: u64,
}

async fn open_publisher(url: &str, exchange: &str) -> Result<(Connection, Channel), BusError> {
    let connection = connect(url, "publisher").await?;
    let channel = connection.create_channel().await?;
    declare_exchanges(&channel, exchange).await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok((connection, channel))
}

/// The largest AMQP frame a connection asks for, unless its URL sets `frame_max`. lapin keeps
/// 32 frames of receive and of send buffer per connection, zeroed up front: at RabbitMQ's
/// default of 128 KiB that is 8 MiB resident per connection, and a service opens one per
/// (consumer, event). Events are a few hundred bytes; a larger one spans several frames.
const FRAME_MAX: u32 = 16 * 1024;

async fn connect(url: &str, role: &str) -> Result<Connection, BusError> {
    let properties =
        ConnectionProperties::default().with_connection_name(format!("svcgen {role}").into());
    let mut uri: lapin::uri::AMQPUri = url
        .parse()
        .map_err(|error| BusError::BrokerUrl(format!("malformed AMQP URL: {error}")))?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Ok(Connection::connect_uri(uri, properties).await?)
}

/// The events exchange and its dead-letter exchange (`<exchange>.dead-letter`).
async fn declare_exchanges(channel: &Channel, exchange: &str) -> Result<(), BusError> {
    for name in [exchange.to_owned(), dead_letter_exchange(exchange)] {
        channel
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
    }
    Ok(())
}

fn dead_letter_exchange(exchange: &str) -> String {
    format!("{exchange}.dead-letter")
}

/// Queue of one subscription, and the queue its rejected messages are dead-lettered to.
fn queue_names(exchange: &str, subscription: &Subscription) -> (String, String) {
    let queue = format!(
        "{exchange}.{}.{}",
        subscription.consumer, subscription.event_type
    );
    let dead = format!("{queue}.dead-letter");
    (queue, dead)
}

/// Declares the subscription's queues and consumes until the connection fails or the process
/// stops. Returns `Ok` only when stopping.
async fn consume(
    url: &str,
    exchange: &str,
    subscription: &Subscription,
    stopping: &mut watch::Receiver<bool>,
    ready: &mut Option<oneshot::Sender<()>>,
) -> Result<(), BusError> {
    let connection = connect(url, subscription.consumer).await?;
    let channel = connection.create_channel().await?;
    declare_exchanges(&channel, exchange).await?;
    let (queue, dead) = queue_names(exchange, subscription);
    let routing_key = format!("{}.{}", subscription.consumer, subscription.event_type);
    channel
        .queue_declare(
            dead.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dead_letter_exchange(exchange).as_str().into(),
            routing_key.as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString(dead_letter_exchange(exchange).into()),
    );
    arguments.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString(routing_key.into()),
    );
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await?;
    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.into(),
            subscription.event_type.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    channel
        .basic_qos(PREFETCH, BasicQosOptions::default())
        .await?;
    let tag = format!("{}.{}", subscription.consumer, uuid::Uuid::now_v7());
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    tracing::info!(consumer = subscription.consumer, queue, "consuming");
    if let Some(ready) = ready.take() {
        let _ = ready.send(());
    }
    let slots = Arc::new(Semaphore::new(usize::from(PREFETCH)));
    loop {
        let delivery = tokio::select! {
            _ = stopping.changed() => {
                let _ = connection.close(200, "shutting down".into()).await;
                return Ok(());
            }
            delivery = deliveries.next() => delivery,
        };
        let delivery = match delivery {
            Some(Ok(delivery)) => delivery,
            Some(Err(error)) => return Err(error.into()),
            None => return Err(BusError::Closed),
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return Err(BusError::Closed);
        };
        let subscription = subscription.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let outcome = match serde_json::from_slice::<Envelope>(&delivery.data) {
                Ok(envelope) => deliver(&subscription, envelope).await,
                Err(error) => {
                    tracing::error!(queue, %error, "not a CloudEvents envelope; dead-lettering it");
                    Outcome::Failed
                }
            };
            let settled = match outcome {
                Outcome::Handled | Outcome::DeadLettered => {
                    delivery.ack(BasicAckOptions::default()).await
                }
                // The queue's dead-letter exchange keeps it.
                Outcome::Failed => {
                    delivery
                        .nack(BasicNackOptions {
                            requeue: false,
                            ..Default::default()
                        })
                        .await
                }
            };
            if let Err(error) = settled {
                // Unacknowledged messages are delivered again after a reconnect; the inbox makes
                // that harmless.
                tracing::warn!(queue, %error, "could not settle a message; it will be redelivered");
            }
        });
    }
}

impl Backend for RabbitMq {
    fn name(&self) -> &'static str {
        "rabbitmq"
    }

    fn publish(&self, envelope: Envelope) -> BoxFuture<'_, Result<(), BusError>> {
        async move {
            let payload = serde_json::to_vec(&envelope).map_err(|error| BusError::Serialize {
                event_type: envelope.event_type.clone(),
                message: error.to_string(),
            })?;
            self.publish_confirmed(&envelope, &payload).await
        }
        .boxed()
    }

    fn subscribe(&self, subscription: Subscription) -> BoxFuture<'_, Result<(), BusError>> {
        let (url, exchange) = (self.url.clone(), self.exchange.clone());
        let consume: Consume = Box::new(move |subscription, stopping, ready| {
            let (url, exchange) = (url.clone(), exchange.clone());
            async move { consume(&url, &exchange, subscription, stopping, ready).await }.boxed()
        });
        let (supervisor, started) =
            supervise("RabbitMQ", subscription, self.stopping.subscribe(), consume);
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
                let _ = tokio::time::timeout(Duration::from_secs(5), supervisor).await;
            }
            if let Some(publisher) = self.publisher.lock().await.take() {
                let _ = publisher
                    .connection
                    .close(200, "shutting down".into())
                    .await;
            }
        }
        .boxed()
    }
}
