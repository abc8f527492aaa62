//! The RabbitMQ backend (AMQP 0-9-1 through lapin).

use std::sync::Mutex;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt as _, StreamExt as _};
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tokio::task::JoinHandle;

use super::{Backend, BusError, Envelope, Handler, Outcome, RetryPolicy, deliver};

/// CloudEvents' media type for an event in structured mode (attributes and data in the body).
const CONTENT_TYPE: &str = "application/cloudevents+json";
/// AMQP delivery mode 2: the broker writes the message to disk.
const PERSISTENT: u8 = 2;
/// Messages handed to one consumer before it acks; 1 keeps each queue in publish order.
const PREFETCH: u16 = 1;

pub(super) struct RabbitMq {
    connection: Connection,
    /// Publisher channel, in confirm mode; lapin channels are safe to share between tasks.
    publisher: Channel,
    exchange: String,
    policy: RetryPolicy,
    consumers: Mutex<Vec<JoinHandle<()>>>,
}

impl RabbitMq {
    pub(super) async fn connect(
        url: &str,
        exchange: &str,
        policy: RetryPolicy,
    ) -> Result<Self, BusError> {
        let properties = ConnectionProperties::default()
            .with_connection_name("svcgen".into())
            .enable_auto_recover()
            // Reconnect patiently during a broker restart, but give up on a broker that is not
            // coming back (about two minutes) instead of retrying for hours.
            .configure_backoff(|backoff| {
                backoff
                    .with_max_times(12)
                    .with_max_delay(Duration::from_secs(15))
            });
        let connection = Connection::connect(url, properties).await?;
        let publisher = connection.create_channel().await?;
        publisher
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        Ok(RabbitMq {
            connection,
            publisher,
            exchange: exchange.to_owned(),
            policy,
            consumers: Mutex::new(Vec::new()),
        })
    }

    /// Publishes and waits for the broker's confirm; `Ok(false)` when the broker refused it.
    async fn publish_once(
        &self,
        envelope: &Envelope,
        payload: &[u8],
    ) -> Result<bool, lapin::Error> {
        let properties = BasicProperties::default()
            .with_content_type(CONTENT_TYPE.into())
            .with_delivery_mode(PERSISTENT)
            .with_message_id(envelope.id.to_string().into())
            .with_type(envelope.event_type.as_str().into())
            .with_app_id(envelope.source.as_str().into());
        let confirmation = self
            .publisher
            .basic_publish(
                self.exchange.as_str().into(),
                envelope.event_type.as_str().into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await?
            .await?;
        Ok(confirmation.is_ack())
    }

    async fn subscribe_inner(
        &self,
        consumer: &'static str,
        event_type: &'static str,
        handler: Handler,
    ) -> Result<(), BusError> {
        let channel = self.connection.create_channel().await?;
        channel
            .basic_qos(PREFETCH, BasicQosOptions::default())
            .await?;
        let queue = format!("{}.{consumer}.{event_type}", self.exchange);
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    durable: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_bind(
                queue.as_str().into(),
                self.exchange.as_str().into(),
                event_type.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let tag = format!("{consumer}.{}", uuid::Uuid::new_v4());
        let mut deliveries = channel
            .basic_consume(
                queue.as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let policy = self.policy;
        let worker = tokio::spawn(async move {
            while let Some(delivery) = deliveries.next().await {
                let delivery = match delivery {
                    Ok(delivery) => delivery,
                    Err(error) => {
                        tracing::warn!(consumer, queue, %error, "consumer interrupted; waiting for recovery");
                        match channel.wait_for_recovery(error).await {
                            Ok(()) => continue,
                            Err(error) => {
                                tracing::error!(consumer, queue, %error, "consumer stopped");
                                break;
                            }
                        }
                    }
                };
                let outcome = match serde_json::from_slice::<Envelope>(&delivery.data) {
                    Ok(envelope) => deliver(&handler, envelope, consumer, policy).await,
                    Err(error) => {
                        tracing::error!(consumer, queue, %error, "dropping message that is not a CloudEvents envelope");
                        Outcome::Failed
                    }
                };
                let acked = match outcome {
                    Outcome::Handled => delivery.ack(BasicAckOptions::default()).await,
                    // Not requeued (it would fail again at once); a dead-letter exchange
                    // configured on the queue later will receive it.
                    Outcome::Failed => {
                        delivery
                            .nack(BasicNackOptions {
                                requeue: false,
                                ..BasicNackOptions::default()
                            })
                            .await
                    }
                };
                if let Err(error) = acked {
                    // The broker redelivers unacknowledged messages after a reconnect.
                    tracing::warn!(consumer, queue, %error, "could not acknowledge message; it will be redelivered");
                }
            }
        });
        self.consumers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(worker);
        Ok(())
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
            let accepted = match self.publish_once(&envelope, &payload).await {
                Ok(accepted) => accepted,
                // One retry once the connection has recovered, so that a broker restart does
                // not fail the requests that happened to publish during it.
                Err(error) => {
                    self.publisher.wait_for_recovery(error).await?;
                    self.publish_once(&envelope, &payload).await?
                }
            };
            if accepted {
                Ok(())
            } else {
                Err(BusError::Rejected {
                    event_type: envelope.event_type.clone(),
                })
            }
        }
        .boxed()
    }

    fn subscribe(
        &self,
        consumer: &'static str,
        event_type: &'static str,
        handler: Handler,
    ) -> BoxFuture<'_, Result<(), BusError>> {
        self.subscribe_inner(consumer, event_type, handler).boxed()
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        async move {
            if let Err(error) = self.connection.close(200, "shutting down".into()).await {
                tracing::debug!(%error, "closing the broker connection");
            }
            let workers = std::mem::take(
                &mut *self
                    .consumers
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner()),
            );
            for worker in workers {
                // The consumer streams end with the connection; do not wait on a stuck handler.
                worker.abort();
            }
        }
        .boxed()
    }
}
