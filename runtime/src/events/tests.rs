use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

use axum::http::Method;
use serde::Deserialize;

use super::*;
use crate::bus::RetryPolicy;
use crate::db::Db;
use crate::identity::INTERNAL_HEADER;
use crate::service::service_app;
use crate::test_support::infra_available;
#[cfg(feature = "rabbitmq")]
use crate::test_support::{AMQP_URL, PgDatabase};
use crate::test_support::{MYSQL_PORT, MySqlDatabase, call, request, settings, sqlite_db};
#[cfg(feature = "nats")]
use crate::test_support::{NATS_URL, NatsNamespace};

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Sent {
    n: u32,
}

impl Event for Sent {
    const NAME: &'static str = "test.sent";
}

#[derive(Serialize, Deserialize, Debug, Clone, PartialEq)]
struct Alarm {
    n: u32,
}

impl Event for Alarm {
    const NAME: &'static str = "test.alarm";
    const CRITICAL: bool = true;
}

const WAIT: Duration = Duration::from_secs(30);

fn context(service: &'static str, db: &Db, bus: &Bus) -> ServiceContext {
    ServiceContext {
        service,
        db: db.clone(),
        bus: bus.clone(),
        settings: settings(),
        events: Events::default(),
    }
}

fn quick(attempts: u32) -> RetryPolicy {
    RetryPolicy {
        attempts,
        first_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(5),
    }
}

/// A consumer whose effect is a row in `effects`; it fails while `broken` is set.
async fn effects_consumer(ctx: &ServiceContext, attempts: u32, broken: Arc<AtomicBool>) {
    query("CREATE TABLE IF NOT EXISTS effects (event_id TEXT NOT NULL, n INTEGER NOT NULL)")
        .execute(&ctx.db)
        .await
        .unwrap();
    ctx.subscribe::<Sent, _, _>(quick(attempts), false, move |envelope, event, mut tx| {
        let broken = broken.clone();
        async move {
            if broken.load(Ordering::SeqCst) {
                anyhow::bail!("downstream bug");
            }
            query("INSERT INTO effects (event_id, n) VALUES ($1, $2)")
                .bind(envelope.id.to_string())
                .bind(i64::from(event.n))
                .execute(&mut tx)
                .await?;
            Ok(tx)
        }
    })
    .await
    .unwrap();
}

async fn count(db: &Db, sql: &'static str) -> i64 {
    query(sql)
        .fetch_optional(db)
        .await
        .unwrap()
        .unwrap()
        .get("n")
        .unwrap()
}

async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = std::time::Instant::now() + WAIT;
    while !check().await {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A throw-away MySQL database for one test, `None` (the test skips) when MySQL is not
/// reachable; the guard drops the database.
async fn mysql_db(test: &str) -> Option<(Db, MySqlDatabase)> {
    if !infra_available(MYSQL_PORT, "MySQL", test) {
        return None;
    }
    let database = MySqlDatabase::new();
    let db = Db::connect(&database.url).await.expect("connect");
    Some((db, database))
}

async fn an_event_is_published_if_and_only_if_its_transaction_commits(db: Db) {
    prepare(&db).await.unwrap();
    let bus = Bus::in_process();
    let ctx = context("notes", &db, &bus);
    effects_consumer(&ctx, 3, Arc::default()).await;
    let (stop, stopping) = watch::channel(false);
    let relay = tokio::spawn(relay(ctx.clone(), stopping));

    let mut tx = ctx.begin().await.unwrap();
    ctx.emit(&mut tx, &Sent { n: 1 }).await.unwrap();
    tx.rollback().await.unwrap();
    let mut tx = ctx.begin().await.unwrap();
    ctx.emit(&mut tx, &Sent { n: 2 }).await.unwrap();
    ctx.commit(tx).await.unwrap();

    eventually("the committed event's effect", async || {
        count(&db, "SELECT COUNT(*) AS n FROM effects").await == 1
    })
    .await;
    eventually("the outbox row marked sent", async || {
        pending(&db).await.unwrap() == 0
    })
    .await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM effects WHERE n = 1").await,
        0,
        "a rolled-back event is never published"
    );
    stop.send(true).unwrap();
    relay.await.unwrap();
}

#[tokio::test]
async fn an_event_is_published_if_and_only_if_its_transaction_commits_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    an_event_is_published_if_and_only_if_its_transaction_commits(db).await;
}

#[tokio::test]
async fn an_event_is_published_if_and_only_if_its_transaction_commits_on_mysql() {
    let Some((db, _database)) =
        mysql_db("an_event_is_published_if_and_only_if_its_transaction_commits_on_mysql").await
    else {
        return;
    };
    an_event_is_published_if_and_only_if_its_transaction_commits(db.clone()).await;
    // Tables that exist already are left alone.
    prepare(&db).await.expect("prepare twice");
    db.close().await;
}

/// Every publish on `down` fails (its broker is unreachable): events wait in the outbox, and
/// leave it once a working bus is there.
#[cfg(any(feature = "rabbitmq", feature = "nats"))]
async fn events_wait_in_the_outbox_while(down: Bus) {
    let (db, _dir) = sqlite_db().await;
    prepare(&db).await.unwrap();
    let producer = context("notes", &db, &down);
    for n in 0..3 {
        let mut tx = producer.begin().await.unwrap();
        producer.emit(&mut tx, &Sent { n }).await.unwrap();
        producer.commit(tx).await.unwrap();
    }
    let outcome = relay_round(&db, &down).await.unwrap();
    assert_eq!((outcome.published, outcome.failed), (0, 3));
    assert_eq!(pending(&db).await.unwrap(), 3, "nothing is lost");

    // The broker is back (here: a working bus on the same database): everything goes out once.
    let up = Bus::in_process();
    let consumer = context("notes", &db, &up);
    effects_consumer(&consumer, 3, Arc::default()).await;
    let outcome = relay_round(&db, &up).await.unwrap();
    assert_eq!((outcome.published, outcome.failed), (3, 0));
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM effects").await, 3);
    assert_eq!(pending(&db).await.unwrap(), 0);
    down.close().await;
}

#[cfg(feature = "rabbitmq")]
#[tokio::test]
async fn events_wait_in_the_outbox_while_the_broker_is_unreachable() {
    // Nothing listens on port 9: every publish fails.
    let down = Bus::connect("amqp://guest:guest@127.0.0.1:9/%2f", "svcgen-test-down")
        .await
        .unwrap();
    events_wait_in_the_outbox_while(down).await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn events_wait_in_the_outbox_while_nats_is_unreachable() {
    let down = Bus::connect("nats://127.0.0.1:9", "svcgen-test-down")
        .await
        .unwrap();
    events_wait_in_the_outbox_while(down).await;
}

async fn a_redelivered_event_changes_nothing(db: Db) {
    prepare(&db).await.unwrap();
    let bus = Bus::in_process();
    let ctx = context("notification", &db, &bus);
    effects_consumer(&ctx, 3, Arc::default()).await;
    let envelope = Envelope::of("notes", &Sent { n: 7 }).unwrap();
    for _ in 0..3 {
        bus.publish_envelope(envelope.clone()).await.unwrap();
    }
    assert_eq!(count(&db, "SELECT COUNT(*) AS n FROM effects").await, 1);
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM svcgen_inbox").await,
        1
    );
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    a_redelivered_event_changes_nothing(db).await;
}

#[tokio::test]
async fn a_redelivered_event_changes_nothing_on_mysql() {
    let Some((db, _database)) = mysql_db("a_redelivered_event_changes_nothing_on_mysql").await
    else {
        return;
    };
    a_redelivered_event_changes_nothing(db.clone()).await;
    db.close().await;
}

async fn critical_events_leave_the_outbox_before_a_backlog_of_standard_ones(db: Db) {
    prepare(&db).await.unwrap();
    let bus = Bus::in_process();
    let ctx = context("notes", &db, &bus);
    let mut tx = ctx.begin().await.unwrap();
    for n in 0..(RELAY_BATCH as u32 * 2) {
        ctx.emit(&mut tx, &Sent { n }).await.unwrap();
    }
    ctx.emit(&mut tx, &Alarm { n: 1 }).await.unwrap();
    ctx.commit(tx).await.unwrap();
    let alarms = Arc::new(AtomicU32::new(0));
    let seen = alarms.clone();
    ctx.subscribe::<Alarm, _, _>(quick(1), false, move |_, _, tx| {
        seen.fetch_add(1, Ordering::SeqCst);
        async move { Ok(tx) }
    })
    .await
    .unwrap();
    relay_round(&db, &bus).await.unwrap();
    assert_eq!(
        alarms.load(Ordering::SeqCst),
        1,
        "the critical event went out in the first round, ahead of 128 older ones"
    );
    assert_eq!(
        pending(&db).await.unwrap(),
        i64::from(RELAY_BATCH as u32 * 2 + 1) - RELAY_BATCH
    );
}

#[tokio::test]
async fn critical_events_leave_the_outbox_before_a_backlog_of_standard_ones_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    critical_events_leave_the_outbox_before_a_backlog_of_standard_ones(db).await;
}

#[tokio::test]
async fn critical_events_leave_the_outbox_before_a_backlog_of_standard_ones_on_mysql() {
    let Some((db, _database)) =
        mysql_db("critical_events_leave_the_outbox_before_a_backlog_of_standard_ones_on_mysql")
            .await
    else {
        return;
    };
    critical_events_leave_the_outbox_before_a_backlog_of_standard_ones(db.clone()).await;
    db.close().await;
}

async fn admin_call(
    app: &Router,
    ctx: &ServiceContext,
    method: Method,
    uri: &str,
    roles: &[&str],
) -> (StatusCode, serde_json::Value) {
    let caller = Caller {
        user_id: Uuid::now_v7(),
        roles: roles.iter().map(|r| (*r).to_owned()).collect(),
    };
    let token = ctx
        .settings
        .internal_tokens
        .sign(ctx.service, Some(&caller))
        .unwrap();
    call(
        app,
        request(method, uri, None, &[(INTERNAL_HEADER, &token)]),
    )
    .await
}

/// A poison event is dead-lettered after its attempts while the others flow; after the fix,
/// a replay applies it once.
async fn poison_then_replay(db: Db, bus: Bus) {
    prepare(&db).await.unwrap();
    let ctx = context("notification", &db, &bus);
    let broken = Arc::new(AtomicBool::new(false));
    effects_consumer(&ctx, 3, broken.clone()).await;
    let app = service_app(ctx.clone(), Router::new());

    broken.store(true, Ordering::SeqCst);
    let poison = Envelope::of("notes", &Sent { n: 13 }).unwrap();
    bus.publish_envelope(poison.clone()).await.unwrap();
    eventually("the dead letter", async || {
        count(&db, "SELECT COUNT(*) AS n FROM svcgen_dead_letters").await == 1
    })
    .await;
    broken.store(false, Ordering::SeqCst);
    bus.publish("notes", &Sent { n: 1 }).await.unwrap();
    eventually("the healthy event's effect", async || {
        count(&db, "SELECT COUNT(*) AS n FROM effects").await == 1
    })
    .await;

    let uri = "/admin/notification/dead-letters";
    let (status, _) = admin_call(&app, &ctx, Method::GET, uri, &["user"]).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, letters) = admin_call(&app, &ctx, Method::GET, uri, &["admin"]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(letters[0]["event_id"], poison.id.to_string());
    assert_eq!(letters[0]["attempts"], 3);
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("downstream bug")
    );

    let replay = format!("{uri}/{}/replay", poison.id);
    let (status, body) = admin_call(&app, &ctx, Method::POST, &replay, &["admin"]).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, _) = admin_call(&app, &ctx, Method::POST, &replay, &["admin"]).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a replayed dead letter is gone"
    );
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM effects WHERE n = 13").await,
        1,
        "applied once"
    );
    // The broker delivering it again (e.g. after a redelivery) changes nothing.
    bus.publish_envelope(poison).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM effects WHERE n = 13").await,
        1
    );
    bus.close().await;
}

/// An event dead-lettered again (e.g. replayed by the broker after a restart) updates its
/// dead letter instead of failing on the existing key.
async fn a_dead_letter_is_updated_when_its_event_fails_again(db: Db) {
    prepare(&db).await.unwrap();
    let envelope = Envelope::of("notes", &Sent { n: 5 }).unwrap();
    store_dead_letter(&db, "notification", &envelope, "first", 3)
        .await
        .unwrap();
    store_dead_letter(&db, "notification", &envelope, "second", 4)
        .await
        .unwrap();
    let row = query("SELECT error, attempts FROM svcgen_dead_letters WHERE event_id = $1")
        .bind(envelope.id.to_string())
        .fetch_optional(&db)
        .await
        .unwrap()
        .expect("the dead letter");
    assert_eq!(row.get::<String>("error").unwrap(), "second");
    assert_eq!(row.get::<i64>("attempts").unwrap(), 4);
    assert_eq!(
        count(&db, "SELECT COUNT(*) AS n FROM svcgen_dead_letters").await,
        1
    );
}

#[tokio::test]
async fn a_dead_letter_is_updated_when_its_event_fails_again_on_sqlite() {
    let (db, _dir) = sqlite_db().await;
    a_dead_letter_is_updated_when_its_event_fails_again(db).await;
}

#[tokio::test]
async fn a_dead_letter_is_updated_when_its_event_fails_again_on_mysql() {
    let Some((db, _database)) =
        mysql_db("a_dead_letter_is_updated_when_its_event_fails_again_on_mysql").await
    else {
        return;
    };
    a_dead_letter_is_updated_when_its_event_fails_again(db.clone()).await;
    db.close().await;
}

#[tokio::test]
async fn poison_events_are_dead_lettered_and_replayed_once_in_process() {
    let (db, _dir) = sqlite_db().await;
    poison_then_replay(db, Bus::in_process()).await;
}

#[tokio::test]
async fn poison_events_are_dead_lettered_and_replayed_once_in_process_on_mysql() {
    let Some((db, _database)) =
        mysql_db("poison_events_are_dead_lettered_and_replayed_once_in_process_on_mysql").await
    else {
        return;
    };
    poison_then_replay(db.clone(), Bus::in_process()).await;
    db.close().await;
}

#[cfg(feature = "nats")]
#[tokio::test]
async fn poison_events_are_dead_lettered_and_replayed_once_on_nats_and_sqlite() {
    if !infra_available(4222, "NATS", "poison_events_on_nats") {
        return;
    }
    let namespace = NatsNamespace::new();
    let (db, _dir) = sqlite_db().await;
    let bus = Bus::connect(NATS_URL, &namespace.name).await.unwrap();
    poison_then_replay(db.clone(), bus).await;
    db.close().await;
}

#[cfg(feature = "rabbitmq")]
#[tokio::test]
async fn poison_events_are_dead_lettered_and_replayed_once_on_rabbitmq_and_postgres() {
    if !infra_available(5672, "RabbitMQ", "poison_events_on_rabbitmq")
        || !infra_available(5432, "PostgreSQL", "poison_events_on_rabbitmq")
    {
        return;
    }
    let database = PgDatabase::new();
    let db = Db::connect(&database.url).await.unwrap();
    let exchange = format!("svcgen-test-{}", Uuid::new_v4().simple());
    let bus = Bus::rabbitmq(AMQP_URL, &exchange).await.unwrap();
    poison_then_replay(db.clone(), bus).await;
    db.close().await;
    let queue = format!("{exchange}.notification.{}", Sent::NAME);
    if let Ok(connection) =
        lapin::Connection::connect(AMQP_URL, lapin::ConnectionProperties::default()).await
    {
        if let Ok(channel) = connection.create_channel().await {
            for name in [format!("{queue}.dead-letter"), queue] {
                let _ = channel
                    .queue_delete(name.as_str().into(), Default::default())
                    .await;
            }
            for name in [exchange.clone(), format!("{exchange}.dead-letter")] {
                let _ = channel
                    .exchange_delete(name.as_str().into(), Default::default())
                    .await;
            }
        }
        let _ = connection.close(200, "done".into()).await;
    }
}
