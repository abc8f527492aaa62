//! The NATS JetStream backend against a real server on 127.0.0.1:4222 (skipped when there is
//! none, a failure with SVCGEN_REQUIRE_INFRA=1). Each test has a namespace (stream) of its own,
//! deleted when the test ends.

use async_nats::jetstream;
use async_nats::jetstream::consumer::{Info, PullConsumer};
use futures_util::StreamExt as _;

use super::*;
use crate::bus::nats::{Names, dead_letter_durable_name, durable_name};
use crate::test_support::{NATS_URL, NatsNamespace, infra_available};

async fn jetstream_context() -> (async_nats::Client, jetstream::Context) {
    let client = async_nats::connect(NATS_URL)
        .await
        .expect("connect to NATS");
    let context = jetstream::new(client.clone());
    (client, context)
}

async fn consumer(namespace: &str, durable: &str) -> PullConsumer {
    let (_client, context) = jetstream_context().await;
    context
        .get_stream(Names::new(namespace).stream())
        .await
        .expect("the namespace's stream")
        .get_consumer(durable)
        .await
        .expect("the durable consumer")
}

async fn consumer_info(namespace: &str, durable: &str) -> Info {
    consumer(namespace, durable)
        .await
        .info()
        .await
        .expect("consumer info")
        .clone()
}

/// Waits until the consumer has nothing pending and nothing unacknowledged: after that, no
/// further delivery can come.
async fn wait_until_settled(namespace: &str, durable: &str) {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let info = consumer_info(namespace, durable).await;
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "consumer {durable} never settled: {} pending, {} unacknowledged",
            info.num_pending,
            info.num_ack_pending
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn nats_bus(namespace: &str) -> Bus {
    Bus::connect(NATS_URL, namespace).await.expect("a NATS bus")
}

#[tokio::test]
async fn nats_round_trip_to_every_consumer_with_the_envelope_intact() {
    if !infra_available(
        4222,
        "NATS",
        "nats_round_trip_to_every_consumer_with_the_envelope_intact",
    ) {
        return;
    }
    let guard = NatsNamespace::new();
    let namespace = guard.name.clone();
    let bus = nats_bus(&namespace).await;
    assert_eq!(bus.backend_name(), "nats");
    let (a, mut first) = make_probe("notification", 3, &[], false);
    let (b, mut second) = make_probe("audit", 3, &[], false);
    bus.subscribe(a).await.unwrap();
    bus.subscribe(b).await.unwrap();
    assert!(matches!(
        bus.subscribe(make_probe("audit", 3, &[], false).0).await,
        Err(BusError::DuplicateSubscription { .. })
    ));

    let mut sent = Envelope::of("notes", &Pinged { n: 1 }).unwrap();
    sent.traceparent = Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into());
    bus.publish_envelope(sent.clone())
        .await
        .expect("confirmed by JetStream");
    for probe in [&mut first, &mut second] {
        assert_eq!(next(&mut probe.handled).await, sent);
    }
    bus.close().await;
    assert!(matches!(
        bus.subscribe(make_probe("late", 3, &[], false).0).await,
        Err(BusError::Closed)
    ));
    assert!(matches!(
        bus.publish("notes", &Pinged { n: 2 }).await,
        Err(BusError::Closed)
    ));
}

#[tokio::test]
async fn nats_dead_letters_a_poison_event_after_its_attempts_while_others_flow() {
    if !infra_available(
        4222,
        "NATS",
        "nats_dead_letters_a_poison_event_after_its_attempts_while_others_flow",
    ) {
        return;
    }
    let guard = NatsNamespace::new();
    let namespace = guard.name.clone();
    let bus = nats_bus(&namespace).await;
    let (subscription, mut probe) = make_probe("notification", 3, &[13], false);
    bus.subscribe(subscription).await.unwrap();
    bus.publish("notes", &Pinged { n: 13 }).await.unwrap();
    bus.publish("notes", &Pinged { n: 7 }).await.unwrap();
    assert_eq!(
        next(&mut probe.handled).await.data["n"],
        7,
        "the healthy event flows past the poison one"
    );
    let (envelope, attempts) = next(&mut probe.dead).await;
    assert_eq!((envelope.data["n"].as_u64(), attempts), (Some(13), 3));
    // Stored by the consumer's sink, the poison event is acknowledged, not redelivered.
    wait_until_settled(&namespace, &durable_name("notification", Pinged::NAME)).await;
    assert!(probe.handled.try_recv().is_err() && probe.dead.try_recv().is_err());
    bus.close().await;
}

#[tokio::test]
async fn nats_keeps_events_for_a_consumer_that_is_down() {
    if !infra_available(
        4222,
        "NATS",
        "nats_keeps_events_for_a_consumer_that_is_down",
    ) {
        return;
    }
    let guard = NatsNamespace::new();
    let namespace = guard.name.clone();
    let producer = nats_bus(&namespace).await;
    // No consumer has ever subscribed: like a topic exchange without queues, nobody keeps it.
    producer.publish("notes", &Pinged { n: 1 }).await.unwrap();

    let consumer = nats_bus(&namespace).await;
    let (subscription, mut probe) = make_probe("notification", 3, &[], false);
    consumer.subscribe(subscription).await.unwrap();
    producer.publish("notes", &Pinged { n: 2 }).await.unwrap();
    assert_eq!(next(&mut probe.handled).await.data["n"], 2);
    consumer.close().await;

    // The consumer is down; events published now wait in the stream for its durable consumer.
    for n in [41, 42] {
        producer.publish("notes", &Pinged { n }).await.unwrap();
    }
    let restarted = nats_bus(&namespace).await;
    let (subscription, mut probe) = make_probe("notification", 3, &[], false);
    restarted.subscribe(subscription).await.unwrap();
    let mut seen = vec![
        next(&mut probe.handled).await.data["n"].as_u64(),
        next(&mut probe.handled).await.data["n"].as_u64(),
    ];
    seen.sort();
    assert_eq!(seen, [Some(41), Some(42)]);
    wait_until_settled(&namespace, &durable_name("notification", Pinged::NAME)).await;
    assert!(
        probe.handled.try_recv().is_err(),
        "the event published before the consumer existed was never delivered"
    );

    restarted.close().await;
    producer.close().await;
}

#[tokio::test]
async fn nats_delivers_a_duplicate_publish_of_one_envelope_once() {
    if !infra_available(
        4222,
        "NATS",
        "nats_delivers_a_duplicate_publish_of_one_envelope_once",
    ) {
        return;
    }
    let guard = NatsNamespace::new();
    let namespace = guard.name.clone();
    let bus = nats_bus(&namespace).await;
    let (subscription, mut probe) = make_probe("notification", 3, &[], false);
    bus.subscribe(subscription).await.unwrap();
    // What an outbox relay does when it crashed between the broker's confirm and marking the
    // row sent: the same envelope again.
    let envelope = Envelope::of("notes", &Pinged { n: 5 }).unwrap();
    for _ in 0..3 {
        bus.publish_envelope(envelope.clone())
            .await
            .expect("a duplicate is confirmed too");
    }
    bus.publish("notes", &Pinged { n: 6 }).await.unwrap();
    let mut seen = vec![
        next(&mut probe.handled).await.data["n"].as_u64(),
        next(&mut probe.handled).await.data["n"].as_u64(),
    ];
    seen.sort();
    assert_eq!(seen, [Some(5), Some(6)]);
    wait_until_settled(&namespace, &durable_name("notification", Pinged::NAME)).await;
    assert!(
        probe.handled.try_recv().is_err(),
        "the duplicate publishes were never delivered"
    );
    let (_client, context) = jetstream_context().await;
    let mut stream = context
        .get_stream(Names::new(&namespace).stream())
        .await
        .unwrap();
    assert_eq!(
        stream.info().await.unwrap().state.last_sequence,
        2,
        "JetStream stored two messages for four publishes"
    );
    bus.close().await;
}

#[tokio::test]
async fn nats_dead_letter_subject_keeps_what_the_consumer_could_not_store() {
    if !infra_available(
        4222,
        "NATS",
        "nats_dead_letter_subject_keeps_what_the_consumer_could_not_store",
    ) {
        return;
    }
    let guard = NatsNamespace::new();
    let namespace = guard.name.clone();
    let bus = nats_bus(&namespace).await;
    let (subscription, _probe) = make_probe("notification", 2, &[13], true);
    bus.subscribe(subscription).await.unwrap();
    bus.publish("notes", &Pinged { n: 13 }).await.unwrap();

    let dead = consumer(
        &namespace,
        &dead_letter_durable_name("notification", Pinged::NAME),
    )
    .await;
    let deadline = std::time::Instant::now() + WAIT;
    let message = loop {
        let mut batch = dead
            .fetch()
            .max_messages(1)
            .expires(Duration::from_millis(500))
            .messages()
            .await
            .unwrap();
        if let Some(message) = batch.next().await {
            break message.unwrap();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "nothing reached the dead-letter subject"
        );
    };
    assert_eq!(
        message.subject.as_str(),
        format!("{namespace}.dead-letter.notification.{}", Pinged::NAME)
    );
    let envelope: Envelope = serde_json::from_slice(&message.payload).unwrap();
    assert_eq!(envelope.data["n"], 13);
    message.ack().await.unwrap();
    // Kept on the dead-letter subject, the event is acknowledged on the consumer's own.
    wait_until_settled(&namespace, &durable_name("notification", Pinged::NAME)).await;
    bus.close().await;
}
