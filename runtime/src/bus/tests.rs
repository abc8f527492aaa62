use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::mpsc;

use super::*;
#[cfg(feature = "rabbitmq")]
use crate::test_support::{AMQP_URL, infra_available};

#[cfg(feature = "nats")]
mod nats;

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pinged {
    n: u32,
}

impl Event for Pinged {
    const NAME: &'static str = "test.pinged";
    const VERSION: u32 = 3;
}

/// Generous upper bound for an event to arrive; a deadline against hangs, not a measurement.
const WAIT: Duration = Duration::from_secs(20);

fn quick(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("event not delivered in time")
        .expect("channel open")
}

/// What a test subscription saw: events handled, and events dead-lettered with their attempts.
struct Probe {
    handled: mpsc::UnboundedReceiver<Envelope>,
    dead: mpsc::UnboundedReceiver<(Envelope, u32)>,
}

/// A subscription whose handler fails for events whose `n` is in `poison`, and whose
/// dead-letter sink fails when `sink_fails`.
fn make_probe(
    consumer: &'static str,
    attempts: u32,
    poison: &'static [u32],
    sink_fails: bool,
) -> (Subscription, Probe) {
    let (handled_tx, handled) = mpsc::unbounded_channel();
    let (dead_tx, dead) = mpsc::unbounded_channel();
    let handler: Handler = Arc::new(move |envelope: Envelope| {
        let handled_tx = handled_tx.clone();
        async move {
            let event: Pinged = serde_json::from_value(envelope.data.clone())
                .map_err(|e| Undecodable(e.to_string()))?;
            if poison.contains(&event.n) {
                anyhow::bail!("cannot handle {}", event.n);
            }
            handled_tx.send(envelope)?;
            Ok(())
        }
        .boxed()
    });
    let dead_letter: DeadLetterSink = Arc::new(move |envelope, _error, attempts| {
        let dead_tx = dead_tx.clone();
        async move {
            if sink_fails {
                anyhow::bail!("dead-letter store unavailable");
            }
            dead_tx.send((envelope, attempts))?;
            Ok(())
        }
        .boxed()
    });
    let subscription = Subscription {
        consumer,
        event_type: Pinged::NAME,
        critical: false,
        retry: quick(attempts),
        handler,
        dead_letter,
    };
    (subscription, Probe { handled, dead })
}

#[tokio::test]
async fn in_process_publish_returns_after_every_subscriber_handled_the_event() {
    let bus = Bus::in_process();
    let (a, mut first) = make_probe("notification", 3, &[], false);
    let (b, mut second) = make_probe("audit", 3, &[], false);
    bus.subscribe(a).await.unwrap();
    bus.subscribe(b).await.unwrap();

    bus.publish("notes", &Pinged { n: 1 }).await.unwrap();
    // Already handled when publish returned: nothing to wait for.
    for probe in [&mut first, &mut second] {
        let envelope = probe
            .handled
            .try_recv()
            .expect("handled before publish returned");
        assert_eq!(
            (
                envelope.event_type.as_str(),
                envelope.source.as_str(),
                envelope.schemaversion
            ),
            (Pinged::NAME, "notes", 3)
        );
    }
    bus.close().await;
    assert!(matches!(
        bus.publish("notes", &Pinged { n: 2 }).await,
        Err(BusError::Closed)
    ));
}

#[tokio::test]
async fn a_poison_event_is_dead_lettered_after_its_attempts_while_others_flow() {
    let bus = Bus::in_process();
    let (subscription, mut probe) = make_probe("notification", 4, &[13], false);
    bus.subscribe(subscription).await.unwrap();
    let (poison, healthy) = tokio::join!(
        bus.publish("notes", &Pinged { n: 13 }),
        bus.publish("notes", &Pinged { n: 1 })
    );
    poison.expect("a dead-lettered event is safe: the publish succeeds");
    healthy.unwrap();
    assert_eq!(next(&mut probe.handled).await.data["n"], 1);
    let (envelope, attempts) = next(&mut probe.dead).await;
    assert_eq!((envelope.data["n"].as_u64(), attempts), (Some(13), 4));
    assert!(
        probe.handled.try_recv().is_err(),
        "the poison event was never applied"
    );
}

#[tokio::test]
async fn undecodable_data_is_dead_lettered_without_retrying() {
    let bus = Bus::in_process();
    let (subscription, mut probe) = make_probe("notification", 5, &[], false);
    bus.subscribe(subscription).await.unwrap();
    bus.publish_json(
        "notes",
        Pinged::NAME,
        serde_json::json!({"n": "not a number"}),
    )
    .await
    .unwrap();
    assert_eq!(
        next(&mut probe.dead).await.1,
        1,
        "retrying cannot fix bad data"
    );
}

#[tokio::test]
async fn when_the_dead_letter_store_fails_the_publish_fails_so_the_outbox_keeps_the_event() {
    let bus = Bus::in_process();
    let (subscription, _probe) = make_probe("notification", 2, &[13], true);
    bus.subscribe(subscription).await.unwrap();
    assert!(matches!(
        bus.publish("notes", &Pinged { n: 13 }).await,
        Err(BusError::Rejected { .. })
    ));
}

#[tokio::test]
async fn a_handler_that_fails_then_succeeds_is_retried() {
    let bus = Bus::in_process();
    let calls = Arc::new(AtomicU32::new(0));
    let counter = calls.clone();
    let handler: Handler = Arc::new(move |_| {
        let counter = counter.clone();
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                anyhow::bail!("temporarily unavailable");
            }
            Ok(())
        }
        .boxed()
    });
    let dead: Arc<Mutex<Vec<Envelope>>> = Arc::default();
    let sink = dead.clone();
    let dead_letter: DeadLetterSink = Arc::new(move |envelope, _, _| {
        sink.lock().unwrap().push(envelope);
        async { Ok(()) }.boxed()
    });
    bus.subscribe(Subscription {
        consumer: "flaky",
        event_type: Pinged::NAME,
        critical: false,
        retry: quick(5),
        handler,
        dead_letter,
    })
    .await
    .unwrap();
    bus.publish("notes", &Pinged { n: 1 }).await.unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert!(dead.lock().unwrap().is_empty());
}

#[tokio::test]
async fn duplicate_subscriptions_are_refused() {
    let bus = Bus::in_process();
    bus.subscribe(make_probe("notification", 1, &[], false).0)
        .await
        .unwrap();
    assert!(matches!(
        bus.subscribe(make_probe("notification", 1, &[], false).0)
            .await,
        Err(BusError::DuplicateSubscription { .. })
    ));
}

#[tokio::test]
async fn connect_picks_the_backend_from_the_url_scheme() {
    for url in [
        "redis://user:hunter2@127.0.0.1:6379",
        "user:hunter2@127.0.0.1:5672",
    ] {
        let error = Bus::connect(url, "x.events").await.unwrap_err();
        assert!(matches!(error, BusError::BrokerUrl(_)), "{error}");
        assert!(!error.to_string().contains("hunter2"), "{error}");
    }
    // Nothing listens on port 9: the bus is made anyway, events wait in the outbox.
    let amqp = Bus::connect("amqp://guest:guest@127.0.0.1:9/%2f", "x.events").await;
    #[cfg(feature = "rabbitmq")]
    {
        let bus = amqp.expect("RabbitMQ is compiled in");
        assert_eq!(bus.backend_name(), "rabbitmq");
        bus.close().await;
    }
    #[cfg(not(feature = "rabbitmq"))]
    assert_eq!(
        amqp.unwrap_err().to_string(),
        "this system was generated without RabbitMQ support; add `rabbitmq` to `brokers` in the spec"
    );
    let nats = Bus::connect("nats://127.0.0.1:9", "x.events").await;
    #[cfg(feature = "nats")]
    {
        let bus = nats.expect("NATS is compiled in");
        assert_eq!(bus.backend_name(), "nats");
        bus.close().await;
        let remote = Bus::connect("nats://user:hunter2@10.1.2.3:4222", "x.events")
            .await
            .unwrap_err()
            .to_string();
        assert!(
            remote.contains("loopback") && !remote.contains("hunter2"),
            "{remote}"
        );
    }
    #[cfg(not(feature = "nats"))]
    assert_eq!(
        nats.unwrap_err().to_string(),
        "this system was generated without NATS support; add `nats` to `brokers` in the spec"
    );
}

#[test]
fn retry_waits_grow_exponentially_with_jitter_below_the_ceiling() {
    let policy = RetryPolicy {
        attempts: 10,
        first_delay: Duration::from_millis(100),
        max_delay: Duration::from_secs(2),
    };
    for attempt in 1..=10 {
        let ceiling =
            Duration::from_millis(100 * 2u64.pow(attempt - 1)).min(Duration::from_secs(2));
        for _ in 0..50 {
            assert!(policy.delay(attempt) <= ceiling, "attempt {attempt}");
        }
    }
    let waits: std::collections::BTreeSet<Duration> = (0..50).map(|_| policy.delay(5)).collect();
    assert!(waits.len() > 1, "jitter spreads the waits");
}

#[test]
fn envelopes_serialize_as_cloudevents_with_trace_and_schema_version() {
    let mut envelope = Envelope::of("auth", &Pinged { n: 1 }).unwrap();
    envelope.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    let json = serde_json::to_value(&envelope).unwrap();
    for (key, value) in [
        ("type", "test.pinged"),
        ("specversion", "1.0"),
        ("datacontenttype", "application/json"),
        ("source", "auth"),
    ] {
        assert_eq!(json[key], value);
    }
    assert_eq!(json["schemaversion"], 3);
    assert_eq!(
        json["traceparent"],
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    );
    assert!(json["id"].is_string() && json["time"].is_string());
    let back: Envelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, envelope);
}

/// Deletes what a RabbitMQ test declared, so test runs leave no queues or exchanges behind.
#[cfg(feature = "rabbitmq")]
async fn delete_rabbitmq_topology(exchange: &str, queues: &[String]) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let Ok(connection) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        for queue in queues {
            let _ = channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        for name in [exchange.to_owned(), format!("{exchange}.dead-letter")] {
            let _ = channel
                .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
                .await;
        }
    }
    let _ = connection.close(200, "done".into()).await;
}

#[cfg(feature = "rabbitmq")]
fn test_queues(exchange: &str, consumers: &[&str]) -> Vec<String> {
    consumers
        .iter()
        .flat_map(|c| {
            let queue = format!("{exchange}.{c}.{}", Pinged::NAME);
            [format!("{queue}.dead-letter"), queue]
        })
        .collect()
}

#[cfg(feature = "rabbitmq")]
#[tokio::test]
async fn rabbitmq_carries_an_event_many_frames_long() {
    if !infra_available(
        5672,
        "RabbitMQ",
        "rabbitmq_carries_an_event_many_frames_long",
    ) {
        return;
    }
    let exchange = format!("svcgen-test-{}", Uuid::new_v4().simple());
    let bus = Bus::rabbitmq(AMQP_URL, &exchange)
        .await
        .expect("connect to RabbitMQ");
    let (subscription, mut probe) = make_probe("notification", 3, &[], false);
    bus.subscribe(subscription).await.unwrap();
    // Far larger than the frames the connections ask for: the body travels in many frames.
    let padding = "x".repeat(200_000);
    let mut envelope = Envelope::of("notes", &Pinged { n: 9 }).unwrap();
    envelope.data["padding"] = serde_json::Value::String(padding.clone());
    bus.publish_envelope(envelope).await.expect("confirmed");
    let handled = next(&mut probe.handled).await;
    assert_eq!(handled.data["n"], 9);
    assert_eq!(handled.data["padding"].as_str(), Some(padding.as_str()));
    bus.close().await;
    delete_rabbitmq_topology(&exchange, &test_queues(&exchange, &["notification"])).await;
}

#[cfg(feature = "rabbitmq")]
#[tokio::test]
async fn rabbitmq_round_trip_dead_letters_and_a_consumer_that_was_down() {
    if !infra_available(
        5672,
        "RabbitMQ",
        "rabbitmq_round_trip_dead_letters_and_a_consumer_that_was_down",
    ) {
        return;
    }
    let exchange = format!("svcgen-test-{}", Uuid::new_v4().simple());
    let bus = Bus::rabbitmq(AMQP_URL, &exchange)
        .await
        .expect("connect to RabbitMQ");
    let (subscription, mut probe) = make_probe("notification", 3, &[13], false);
    bus.subscribe(subscription).await.unwrap();
    bus.publish("notes", &Pinged { n: 13 })
        .await
        .expect("confirmed");
    bus.publish("notes", &Pinged { n: 7 })
        .await
        .expect("confirmed");
    assert_eq!(
        next(&mut probe.handled).await.data["n"],
        7,
        "the healthy event flows past the poison one"
    );
    let (envelope, attempts) = next(&mut probe.dead).await;
    assert_eq!((envelope.data["n"].as_u64(), attempts), (Some(13), 3));
    bus.close().await;

    // The consumer is down; an event published now waits in its durable queue.
    let producer = Bus::rabbitmq(AMQP_URL, &exchange).await.expect("connect");
    producer.publish("notes", &Pinged { n: 42 }).await.unwrap();
    let restarted = Bus::rabbitmq(AMQP_URL, &exchange).await.expect("connect");
    let (subscription, mut probe) = make_probe("notification", 3, &[], false);
    restarted.subscribe(subscription).await.unwrap();
    assert_eq!(next(&mut probe.handled).await.data["n"], 42);

    restarted.close().await;
    producer.close().await;
    delete_rabbitmq_topology(&exchange, &test_queues(&exchange, &["notification"])).await;
}

#[cfg(feature = "rabbitmq")]
#[tokio::test]
async fn rabbitmq_dead_letter_exchange_keeps_what_the_consumer_could_not_store() {
    if !infra_available(
        5672,
        "RabbitMQ",
        "rabbitmq_dead_letter_exchange_keeps_what_the_consumer_could_not_store",
    ) {
        return;
    }
    use lapin::options::BasicGetOptions;
    let exchange = format!("svcgen-test-{}", Uuid::new_v4().simple());
    let bus = Bus::rabbitmq(AMQP_URL, &exchange).await.expect("connect");
    let (subscription, _probe) = make_probe("notification", 2, &[13], true);
    bus.subscribe(subscription).await.unwrap();
    bus.publish("notes", &Pinged { n: 13 }).await.unwrap();

    let connection = lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    let dead_queue = format!("{exchange}.notification.{}.dead-letter", Pinged::NAME);
    let deadline = std::time::Instant::now() + WAIT;
    let message = loop {
        if let Some(message) = channel
            .basic_get(dead_queue.as_str().into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
        {
            break message;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing reached the dead-letter queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let envelope: Envelope = serde_json::from_slice(&message.delivery.data).unwrap();
    assert_eq!(envelope.data["n"], 13);
    let _ = connection.close(200, "done".into()).await;
    bus.close().await;
    delete_rabbitmq_topology(&exchange, &test_queues(&exchange, &["notification"])).await;
}
