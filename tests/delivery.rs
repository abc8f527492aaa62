//! Events are never lost and never applied twice, proven on a generated system running
//! distributed against the PostgreSQL of this machine and its RabbitMQ, then its NATS
//! JetStream (the same build, configured by `SVCGEN_BROKER_URL`): the broker made unreachable
//! for more than 10 s while 500 requests come in, and the consuming service stopped while 100
//! more do. The system is tests/systems/courier.yaml: `POST /messages` emits `message.sent`,
//! which the notification service turns into one notification per message.

mod harness;
mod support;

use harness::{Api, Running, System, all_notifications, infrastructure, runtime};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A TCP proxy in front of RabbitMQ that the test can switch off: while off it cuts every open
/// connection and refuses new ones, as a broker outage or a network cut would.
struct BrokerLink {
    port: u16,
    up: watch::Sender<bool>,
    _runtime: tokio::runtime::Runtime,
}

impl BrokerLink {
    fn start(upstream: &'static str) -> BrokerLink {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (up, _) = watch::channel(true);
        let switch = up.clone();
        runtime.spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                let mut state = switch.subscribe();
                if !*state.borrow() {
                    drop(client);
                    continue;
                }
                tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    tokio::select! {
                        _ = copy_bidirectional(&mut client, &mut server) => {}
                        _ = state.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        BrokerLink {
            port,
            up,
            _runtime: runtime,
        }
    }

    fn set(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// Generated once per run; the tests take turns (each loads both cores on its own).
fn courier() -> (System, std::sync::MutexGuard<'static, ()>) {
    static GENERATED: std::sync::Once = std::sync::Once::new();
    static TURN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    GENERATED.call_once(|| {
        System::generate("tests/systems/courier.yaml", "courier");
    });
    (
        System::existing(
            &support::root().join("target/svcgen-tests/courier"),
            "courier",
        ),
        turn,
    )
}

/// Sends `count` messages for `recipient`, 16 at a time; every request must succeed.
async fn drop_messages(api: &Api, recipient: &str, prefix: &str, count: usize) {
    use futures_util::StreamExt as _;
    let statuses: Vec<(StatusCode, Value)> = futures_util::stream::iter(0..count)
        .map(|i| async move {
            api.call(
                Method::POST,
                "/messages",
                None,
                Some(json!({"recipient": recipient, "text": format!("{prefix}-{i}")})),
            )
            .await
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let failed: Vec<_> = statuses
        .iter()
        .filter(|(status, _)| *status != StatusCode::CREATED)
        .collect();
    assert!(
        failed.is_empty(),
        "{} of {count} requests failed, e.g. {:?}",
        failed.len(),
        failed.first()
    );
}

/// Waits until the recipient has exactly `expected` notifications, all different; then checks
/// that no late duplicate arrives.
async fn exactly_once(api: &Api, token: &str, expected: usize) {
    let deadline = Instant::now() + Duration::from_secs(240);
    loop {
        let items = all_notifications(api, token).await;
        assert!(
            items.len() <= expected,
            "{} notifications for {expected} events: duplicates",
            items.len()
        );
        if items.len() == expected {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {expected} events took effect",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let items = all_notifications(api, token).await;
    let texts: BTreeSet<&str> = items.iter().filter_map(|n| n["message"].as_str()).collect();
    assert_eq!(
        (items.len(), texts.len()),
        (expected, expected),
        "every event took effect exactly once"
    );
}

/// A broker the system can run on, reached through a [`BrokerLink`].
struct Broker {
    name: &'static str,
    address: &'static str,
    url: fn(u16) -> String,
}

const RABBITMQ: Broker = Broker {
    name: "RabbitMQ",
    address: "127.0.0.1:5672",
    url: |port| format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
};

const NATS: Broker = Broker {
    name: "NATS",
    address: "127.0.0.1:4222",
    url: |port| format!("nats://127.0.0.1:{port}"),
};

#[test]
fn no_event_is_lost_or_applied_twice_on_rabbitmq() {
    outage_and_stopped_consumer(&RABBITMQ);
}

#[test]
fn no_event_is_lost_or_applied_twice_on_nats() {
    outage_and_stopped_consumer(&NATS);
}

/// The same system, configured for `broker` (not regenerated): 500 requests while the broker is
/// unreachable for more than 10 s, then 100 while the consuming service is stopped.
fn outage_and_stopped_consumer(broker: &Broker) {
    if !infrastructure(
        &format!("delivery e2e on {}", broker.name),
        &[
            ("PostgreSQL", "127.0.0.1:5432"),
            (broker.name, broker.address),
        ],
    ) {
        return;
    }
    let (system, _turn) = courier();
    let link = BrokerLink::start(broker.address);
    let run = harness::run_id(&format!("delivery_{}", broker.name.to_lowercase()));
    let mut common = vec![
        (
            "SVCGEN_JWT_SECRET".to_string(),
            "delivery-access-secret-0123456789abcdef012345".to_string(),
        ),
        (
            "SVCGEN_INTERNAL_SECRET".to_string(),
            "delivery-internal-secret-0123456789abcdef0123".to_string(),
        ),
        ("SVCGEN_BROKER_URL".to_string(), (broker.url)(link.port)),
        (
            "SVCGEN_BROKER_NAMESPACE".to_string(),
            format!("{run}.events"),
        ),
    ];
    let base = common.clone();
    let service_env = |service: &str| {
        let mut env = base.clone();
        env.push((
            format!("{}_DATABASE_URL", service.to_uppercase()),
            format!("postgres://postgres@127.0.0.1:5432/{run}_{service}"),
        ));
        env
    };
    let auth = Running::start(
        &system,
        "auth",
        &["serve", "auth", "--port", "0"],
        &service_env("auth"),
    );
    let messages = Running::start(
        &system,
        "messages",
        &["serve", "messages", "--port", "0"],
        &service_env("messages"),
    );
    let notification = Running::start(
        &system,
        "notification",
        &["serve", "notification", "--port", "0"],
        &service_env("notification"),
    );
    common.push(("SVCGEN_AUTH_URL".into(), auth.url.clone()));
    common.push(("SVCGEN_MESSAGES_URL".into(), messages.url.clone()));
    common.push(("SVCGEN_NOTIFICATION_URL".into(), notification.url.clone()));
    let gateway = Running::start(&system, "gateway", &["gateway", "--port", "0"], &common);
    let api = Api::new(&gateway.url);

    let (recipient, token) = runtime().block_on(async {
        let (status, body) = api.call(Method::POST, "/auth/register", None, Some(json!({"email": format!("{run}@example.com"), "username": "recipient", "password": "correct horse battery"}))).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (body["user_id"].as_str().unwrap().to_string(), body["access_token"].as_str().unwrap().to_string())
    });

    // 1. RabbitMQ unreachable for at least 10 s while 500 messages are dropped.
    link.set(false);
    let cut = Instant::now();
    runtime().block_on(async {
        drop_messages(&api, &recipient, "outage", 500).await;
        let outage = Duration::from_secs(12);
        if let Some(left) = outage.checked_sub(cut.elapsed()) {
            tokio::time::sleep(left).await;
        }
    });
    link.set(true);
    runtime().block_on(exactly_once(&api, &token, 500));

    // 2. The consuming service stopped: requests still succeed; its backlog is applied on restart.
    notification.stop();
    runtime().block_on(drop_messages(&api, &recipient, "backlog", 100));
    let notification = Running::start(
        &system,
        "notification-again",
        &["serve", "notification", "--port", "0"],
        &service_env("notification"),
    );
    // The gateway knows the old address; restart it with the new one.
    gateway.stop();
    common.retain(|(key, _)| key != "SVCGEN_NOTIFICATION_URL");
    common.push(("SVCGEN_NOTIFICATION_URL".into(), notification.url.clone()));
    let gateway = Running::start(
        &system,
        "gateway-again",
        &["gateway", "--port", "0"],
        &common,
    );
    let api = Api::new(&gateway.url);
    runtime().block_on(exactly_once(&api, &token, 600));

    for process in [gateway, notification, messages, auth] {
        process.stop();
    }
    harness::drop_databases(
        &["auth", "messages", "notification"].map(|service| format!("{run}_{service}")),
    );
}
