use std::sync::atomic::{AtomicU32, Ordering};

use tokio::sync::mpsc;

use super::*;
use crate::test_support::{AMQP_URL, infra_available};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Pinged {
    n: u32,
}

impl Event for Pinged {
    const NAME: &'static str = "test.pinged";
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Ponged {
    n: u32,
}

impl Event for Ponged {
    const NAME: &'static str = "test.ponged";
}

/// Generous upper bound for an event to arrive; a deadline against hangs, not a measurement.
const WAIT: Duration = Duration::from_secs(20);

/// An in-process bus that retries quickly, so the tests do not sleep for long.
fn fast_bus(attempts: u32) -> Bus {
    let policy = RetryPolicy {
        attempts,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    };
    Bus {
        backend: Arc::new(in_process::InProcess::new(policy)),
    }
}

async fn next<T>(receiver: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, receiver.recv())
        .await
        .expect("event not delivered in time")
        .expect("channel open")
}

/// Subscribes `consumer` to `Pinged`, forwarding what it receives.
async fn forward_pings(
    bus: &Bus,
    consumer: &'static str,
) -> mpsc::UnboundedReceiver<(Envelope, Pinged)> {
    let (sender, receiver) = mpsc::unbounded_channel();
    bus.subscribe::<Pinged, _, _>(consumer, move |envelope, event| {
        let sender = sender.clone();
        async move {
            sender.send((envelope, event))?;
            Ok(())
        }
    })
    .await
    .expect("subscribe");
    receiver
}

#[tokio::test]
async fn in_process_delivers_to_every_subscriber_once() {
    let bus = Bus::in_process();
    let mut notification = forward_pings(&bus, "notification").await;
    let mut audit = forward_pings(&bus, "audit").await;
    let (pong_sender, mut pongs) = mpsc::unbounded_channel();
    bus.subscribe::<Ponged, _, _>("audit", move |_, event| {
        let sender = pong_sender.clone();
        async move {
            sender.send(event)?;
            Ok(())
        }
    })
    .await
    .unwrap();

    bus.publish("notes", &Pinged { n: 1 }).await.unwrap();
    bus.publish("notes", &Pinged { n: 2 }).await.unwrap();

    for receiver in [&mut notification, &mut audit] {
        let (envelope, first) = next(receiver).await;
        assert_eq!(first, Pinged { n: 1 });
        assert_eq!(envelope.event_type, "test.pinged");
        assert_eq!(envelope.source, "notes");
        assert_eq!(envelope.specversion, "1.0");
        let (_, second) = next(receiver).await;
        assert_eq!(
            second,
            Pinged { n: 2 },
            "publish order is kept per consumer"
        );
    }
    bus.close().await;
    // Closing drained the queues: nothing else was delivered, and no pong was ever published.
    assert!(notification.try_recv().is_err());
    assert!(audit.try_recv().is_err());
    assert!(pongs.try_recv().is_err());
}

#[tokio::test]
async fn in_process_retries_a_failing_handler_until_it_succeeds() {
    let bus = fast_bus(5);
    let calls = Arc::new(AtomicU32::new(0));
    let (sender, mut done) = mpsc::unbounded_channel();
    let counter = calls.clone();
    bus.subscribe::<Pinged, _, _>("flaky", move |envelope, _| {
        let counter = counter.clone();
        let sender = sender.clone();
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) < 2 {
                anyhow::bail!("temporarily unavailable");
            }
            sender.send(envelope.id)?;
            Ok(())
        }
    })
    .await
    .unwrap();

    bus.publish("notes", &Pinged { n: 1 }).await.unwrap();
    next(&mut done).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3,
        "two failures, then success"
    );
    bus.close().await;
}

#[tokio::test]
async fn in_process_gives_up_after_the_last_attempt_and_moves_on() {
    let bus = fast_bus(3);
    let calls = Arc::new(AtomicU32::new(0));
    let (sender, mut handled) = mpsc::unbounded_channel();
    let counter = calls.clone();
    bus.subscribe::<Pinged, _, _>("picky", move |_, event| {
        let counter = counter.clone();
        let sender = sender.clone();
        async move {
            counter.fetch_add(1, Ordering::SeqCst);
            match event.n {
                1 => anyhow::bail!("always fails"),
                2 => panic!("handler bug"),
                _ => {
                    sender.send(event.n)?;
                    Ok(())
                }
            }
        }
    })
    .await
    .unwrap();

    for n in 1..=3 {
        bus.publish("notes", &Pinged { n }).await.unwrap();
    }
    // Undecodable data is dropped at once, without calling the handler.
    bus.publish_json(
        "notes",
        Pinged::NAME,
        serde_json::json!({ "n": "not a number" }),
    )
    .await
    .unwrap();
    bus.publish("notes", &Pinged { n: 4 }).await.unwrap();

    assert_eq!(
        next(&mut handled).await,
        3,
        "a failing and a panicking event do not block the queue"
    );
    assert_eq!(next(&mut handled).await, 4);
    assert_eq!(
        calls.load(Ordering::SeqCst),
        3 + 3 + 1 + 1,
        "3 attempts each for events 1 and 2"
    );
    bus.close().await;
}

#[tokio::test]
async fn in_process_refuses_duplicate_subscriptions_and_use_after_close() {
    let bus = Bus::in_process();
    let _pings = forward_pings(&bus, "notification").await;
    let duplicate = bus
        .subscribe::<Pinged, _, _>("notification", |_, _| async { Ok(()) })
        .await;
    assert!(matches!(
        duplicate,
        Err(BusError::DuplicateSubscription { .. })
    ));

    bus.close().await;
    assert!(matches!(
        bus.publish("notes", &Pinged { n: 1 }).await,
        Err(BusError::Closed)
    ));
}

#[test]
fn envelopes_serialize_as_cloudevents() {
    let envelope = Envelope::new(
        "auth",
        "user.registered",
        serde_json::json!({ "user_id": "u1" }),
    );
    let json = serde_json::to_value(&envelope).unwrap();
    assert_eq!(json["type"], "user.registered");
    assert_eq!(json["specversion"], "1.0");
    assert_eq!(json["datacontenttype"], "application/json");
    assert_eq!(json["source"], "auth");
    assert!(json["time"].is_string());
    let back: Envelope = serde_json::from_value(json).unwrap();
    assert_eq!(back, envelope);
}

/// Deletes what a RabbitMQ test declared, so test runs leave no queues or exchanges behind.
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
        let _ = channel
            .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "done".into()).await;
}

#[tokio::test]
async fn rabbitmq_publish_subscribe_round_trip() {
    if !infra_available(5672, "RabbitMQ", "rabbitmq_publish_subscribe_round_trip") {
        return;
    }
    let exchange = format!("svcgen-test-{}", Uuid::new_v4().simple());
    let bus = Bus::rabbitmq(AMQP_URL, &exchange)
        .await
        .expect("connect to RabbitMQ");

    let mut notification = forward_pings(&bus, "notification").await;
    // A second consumer whose first attempt fails: the message is only acked after the retry.
    let attempts = Arc::new(AtomicU32::new(0));
    let (sender, mut audit) = mpsc::unbounded_channel();
    let counter = attempts.clone();
    bus.subscribe::<Pinged, _, _>("audit", move |_, event| {
        let counter = counter.clone();
        let sender = sender.clone();
        async move {
            if counter.fetch_add(1, Ordering::SeqCst) == 0 {
                anyhow::bail!("first attempt fails");
            }
            sender.send(event)?;
            Ok(())
        }
    })
    .await
    .unwrap();

    bus.publish("notes", &Pinged { n: 7 })
        .await
        .expect("publish (confirmed)");
    let (envelope, event) = next(&mut notification).await;
    assert_eq!(event, Pinged { n: 7 });
    assert_eq!(envelope.event_type, Pinged::NAME);
    assert_eq!(envelope.source, "notes");
    assert_eq!(next(&mut audit).await, Pinged { n: 7 });
    assert_eq!(attempts.load(Ordering::SeqCst), 2);

    bus.close().await;
    let queues: Vec<String> = ["notification", "audit"]
        .iter()
        .map(|c| format!("{exchange}.{c}.{}", Pinged::NAME))
        .collect();
    delete_rabbitmq_topology(&exchange, &queues).await;
}

#[tokio::test]
async fn rabbitmq_keeps_events_for_a_consumer_that_is_down() {
    if !infra_available(
        5672,
        "RabbitMQ",
        "rabbitmq_keeps_events_for_a_consumer_that_is_down",
    ) {
        return;
    }
    let exchange = format!("svcgen-test-{}", Uuid::new_v4().simple());
    // The consumer declares its durable queue, then its process "stops".
    let first = Bus::rabbitmq(AMQP_URL, &exchange).await.expect("connect");
    let _ = forward_pings(&first, "notification").await;
    first.close().await;

    let producer = Bus::rabbitmq(AMQP_URL, &exchange).await.expect("connect");
    producer.publish("notes", &Pinged { n: 42 }).await.unwrap();

    // When it comes back, the event is waiting for it.
    let restarted = Bus::rabbitmq(AMQP_URL, &exchange).await.expect("connect");
    let mut receiver = forward_pings(&restarted, "notification").await;
    assert_eq!(next(&mut receiver).await.1, Pinged { n: 42 });

    restarted.close().await;
    producer.close().await;
    delete_rabbitmq_topology(
        &exchange,
        &[format!("{exchange}.notification.{}", Pinged::NAME)],
    )
    .await;
}
