//! Events that are never lost and never applied twice.
//!
//! * **Outbox.** A service writes the events of a change into its own `svcgen_outbox` table in
//!   the same transaction as the change ([`ServiceContext::emit`]); either both commit or
//!   neither does. A [`relay`] task publishes what is in the outbox (critical events first) and
//!   marks each row sent only after the broker confirmed it (or, in-process, after every
//!   subscriber handled it). A crash or a broker outage between commit and publish only delays
//!   the event.
//! * **Inbox.** A consumer applies an event inside a transaction that also records the event
//!   id in its `svcgen_inbox` table ([`ServiceContext::subscribe`]); a redelivered event finds
//!   its id there and changes nothing.
//! * **Dead letters.** An event whose handler keeps failing (after the spec's number of
//!   attempts, with exponential backoff and jitter) is kept in the consumer's
//!   `svcgen_dead_letters` table, listed and replayed through the service's admin routes
//!   ([`admin_routes`]).
//!
//! The three tables live in each service's own database and are created at start
//! ([`prepare`]), beside the service's migrations.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use futures_util::FutureExt as _;
use futures_util::StreamExt as _;
use serde::Serialize;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

use crate::bus::{
    Bus, BusError, DeadLetterSink, Envelope, Event, Handler, Rejected, RetryPolicy, Subscription,
    Undecodable,
};
use crate::db::{Db, DbError, Engine, SQLITE_TIMESTAMP_FORMAT, Tx, query};
use crate::http::{ApiError, ApiResult, Json};
use crate::identity::Caller;
use crate::service::ServiceContext;

/// Rows the relay publishes per round, all at the same time: their confirms are awaited
/// together (the broker confirms in the order it stored them, so waiting costs one round trip).
const RELAY_BATCH: i64 = 256;
/// How long the relay sleeps when nothing wakes it (rows written by another replica, or left
/// by a previous run).
const RELAY_IDLE: Duration = Duration::from_secs(1);

/// The relay looks for due leftover saga undos every this many rounds.
const SAGA_RECOVERY_EVERY: u64 = 5;
/// Longest wait between two rounds while the broker keeps failing.
const RELAY_MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Sent rows are kept this long (for inspection), then deleted.
const SENT_RETENTION: chrono::TimeDelta = chrono::TimeDelta::hours(24);

/// Creates the outbox, inbox and dead-letter tables if they do not exist yet.
///
/// Every column is text or an integer on every engine (timestamps are fixed-width UTC text,
/// whose order is time order), so the statements of this module bind the same values
/// everywhere; the DDL, the inbox insert and the dead-letter upsert are written per engine.
pub async fn prepare(db: &Db) -> Result<(), DbError> {
    let statements: &[&'static str] = match db.engine() {
        Engine::Mysql => &MYSQL_TABLES,
        Engine::Sqlite | Engine::Postgres => &TABLES,
    };
    for statement in statements {
        query(statement).execute(db).await?;
    }
    Ok(())
}

/// The event tables on SQLite and PostgreSQL.
const TABLES: [&str; 7] = [
    "CREATE TABLE IF NOT EXISTS svcgen_outbox (
            id TEXT PRIMARY KEY,
            event_type TEXT NOT NULL,
            priority INTEGER NOT NULL,
            envelope TEXT NOT NULL,
            created_at TEXT NOT NULL,
            published_at TEXT
        )",
    "CREATE INDEX IF NOT EXISTS svcgen_outbox_pending ON svcgen_outbox (published_at, priority, id)",
    "CREATE TABLE IF NOT EXISTS svcgen_inbox (
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            handled_at TEXT NOT NULL,
            PRIMARY KEY (consumer, event_id)
        )",
    "CREATE TABLE IF NOT EXISTS svcgen_dead_letters (
            consumer TEXT NOT NULL,
            event_id TEXT NOT NULL,
            event_type TEXT NOT NULL,
            envelope TEXT NOT NULL,
            error TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            failed_at TEXT NOT NULL,
            PRIMARY KEY (consumer, event_id)
        )",
    "CREATE INDEX IF NOT EXISTS svcgen_inbox_handled ON svcgen_inbox (handled_at)",
    // Undos of sagas not known to be finished (see `crate::saga`).
    "CREATE TABLE IF NOT EXISTS svcgen_compensations (
            id TEXT PRIMARY KEY,
            saga TEXT NOT NULL,
            what TEXT NOT NULL,
            service TEXT NOT NULL,
            path TEXT NOT NULL,
            idempotent INTEGER NOT NULL,
            request TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            due_at TEXT NOT NULL
        )",
    "CREATE INDEX IF NOT EXISTS svcgen_compensations_due ON svcgen_compensations (due_at)",
];

/// The event tables on MySQL: keyed and indexed text is CHAR/VARCHAR (MySQL indexes no TEXT
/// without a prefix), the indexes are declared in the tables (MySQL has no `CREATE INDEX IF
/// NOT EXISTS`), envelopes are LONGTEXT (TEXT stops at 64 KiB), and the binary collation keeps
/// comparisons case-sensitive as on the other engines. Ids are uuids (36 characters),
/// timestamps the 27 characters of [`SQLITE_TIMESTAMP_FORMAT`].
const MYSQL_TABLES: [&str; 4] = [
    "CREATE TABLE IF NOT EXISTS svcgen_outbox (
        id CHAR(36) NOT NULL PRIMARY KEY,
        event_type VARCHAR(255) NOT NULL,
        priority INTEGER NOT NULL,
        envelope LONGTEXT NOT NULL,
        created_at VARCHAR(32) NOT NULL,
        published_at VARCHAR(32) NULL,
        INDEX svcgen_outbox_pending (published_at, priority, id)
    ) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS svcgen_inbox (
        consumer VARCHAR(255) NOT NULL,
        event_id CHAR(36) NOT NULL,
        event_type VARCHAR(255) NOT NULL,
        handled_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (consumer, event_id),
        INDEX svcgen_inbox_handled (handled_at)
    ) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS svcgen_dead_letters (
        consumer VARCHAR(255) NOT NULL,
        event_id CHAR(36) NOT NULL,
        event_type VARCHAR(255) NOT NULL,
        envelope LONGTEXT NOT NULL,
        error LONGTEXT NOT NULL,
        attempts INTEGER NOT NULL,
        failed_at VARCHAR(32) NOT NULL,
        PRIMARY KEY (consumer, event_id)
    ) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
    "CREATE TABLE IF NOT EXISTS svcgen_compensations (
        id CHAR(36) NOT NULL PRIMARY KEY,
        saga CHAR(36) NOT NULL,
        what VARCHAR(255) NOT NULL,
        service VARCHAR(255) NOT NULL,
        path VARCHAR(512) NOT NULL,
        idempotent INTEGER NOT NULL,
        request LONGTEXT NOT NULL,
        attempts INTEGER NOT NULL,
        due_at VARCHAR(32) NOT NULL,
        INDEX svcgen_compensations_due (due_at),
        INDEX svcgen_compensations_saga (saga)
    ) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin",
];

pub(crate) fn timestamp(time: chrono::DateTime<chrono::Utc>) -> String {
    time.format(SQLITE_TIMESTAMP_FORMAT).to_string()
}

/// Writes one envelope into the outbox of the transaction's database.
pub async fn enqueue(tx: &mut Tx, envelope: &Envelope) -> Result<(), EventError> {
    let text = serde_json::to_string(envelope).map_err(|e| EventError::Encode(e.to_string()))?;
    query(
        "INSERT INTO svcgen_outbox (id, event_type, priority, envelope, created_at) VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(envelope.id.to_string())
    .bind(envelope.event_type.clone())
    .bind(i64::from(envelope.critical))
    .bind(text)
    .bind(timestamp(envelope.time))
    .execute(tx)
    .await?;
    Ok(())
}

/// What can go wrong writing or handling events.
#[derive(Debug, thiserror::Error)]
pub enum EventError {
    /// The database refused.
    #[error(transparent)]
    Db(#[from] DbError),
    /// The event could not be turned into JSON.
    #[error("cannot encode event: {0}")]
    Encode(String),
    /// The bus refused a subscription.
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// Finishes the checks a consumer made of the values it writes: a broken rule is a permanent
/// failure ([`Rejected`]), so the event goes to the dead letters without being retried.
pub fn checked(check: crate::validate::Validator) -> anyhow::Result<()> {
    check
        .finish()
        .map_err(|error| anyhow::Error::new(Rejected(error.message().to_owned())))
}

impl From<EventError> for ApiError {
    fn from(error: EventError) -> Self {
        match error {
            EventError::Db(error) => error.into(),
            other => ApiError::internal(other.to_string()),
        }
    }
}

/// Per-service event state shared by its handlers: the relay's doorbell and the registered
/// consumers (kept for replaying dead letters).
#[derive(Debug, Clone, Default)]
pub struct Events {
    wake: Arc<Notify>,
    subscriptions: Arc<Mutex<BTreeMap<&'static str, Subscription>>>,
}

impl Events {
    fn subscription(&self, event_type: &str) -> Option<Subscription> {
        self.subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(event_type)
            .cloned()
    }
}

impl ServiceContext {
    /// Starts a transaction on the service's database.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        self.db.begin().await
    }

    /// Adds `event` to the outbox inside `tx`: it is published if and only if `tx` commits.
    pub async fn emit<E: Event>(&self, tx: &mut Tx, event: &E) -> Result<(), EventError> {
        let envelope =
            Envelope::of(self.service, event).map_err(|e| EventError::Encode(e.to_string()))?;
        enqueue(tx, &envelope).await
    }

    /// Adds an event given as JSON to the outbox inside `tx` (capabilities, which have no Rust
    /// type for the events a spec names).
    pub async fn emit_json(
        &self,
        tx: &mut Tx,
        event_type: &str,
        data: serde_json::Value,
    ) -> Result<(), EventError> {
        enqueue(tx, &Envelope::new(self.service, event_type, data)).await
    }

    /// Commits `tx` and wakes the relay, so that its events go out at once.
    pub async fn commit(&self, tx: Tx) -> Result<(), DbError> {
        tx.commit().await?;
        self.events.wake.notify_one();
        Ok(())
    }

    /// Subscribes this service to events of type `E`. The handler gets the envelope, the event
    /// and a transaction that already recorded the event in the inbox; it applies its effect in
    /// that transaction and hands it back to be committed. An event already in the inbox is
    /// acknowledged without calling the handler.
    pub async fn subscribe<E, F, Fut>(
        &self,
        policy: RetryPolicy,
        critical: bool,
        handler: F,
    ) -> Result<(), EventError>
    where
        E: Event,
        F: Fn(Envelope, E, Tx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Tx>> + Send + 'static,
    {
        self.subscribe_phased(
            policy,
            critical,
            false,
            |_: &E| std::future::ready(Ok::<(), std::convert::Infallible>(())),
            move |envelope, event, (), tx| handler(envelope, event, tx),
        )
        .await
    }

    /// Subscribes as [`ServiceContext::subscribe`] does, with work done before the
    /// transaction: `prepare` (calls of other services, which must not hold the database
    /// while they wait) runs first, and its answer goes to the handler. An event already in the
    /// inbox is acknowledged before `prepare` runs; one whose `prepare` fails is retried whole,
    /// so what `prepare` does must bear being done again.
    pub async fn subscribe_calling<E, T, PE, P, PFut, F, Fut>(
        &self,
        policy: RetryPolicy,
        critical: bool,
        prepare: P,
        handler: F,
    ) -> Result<(), EventError>
    where
        E: Event,
        T: Send + 'static,
        PE: std::error::Error + Send + Sync + 'static,
        P: Fn(&E) -> PFut + Send + Sync + 'static,
        PFut: Future<Output = Result<T, PE>> + Send + 'static,
        F: Fn(Envelope, E, T, Tx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Tx>> + Send + 'static,
    {
        self.subscribe_phased(policy, critical, true, prepare, handler)
            .await
    }

    /// The subscription of a consumer in two phases: `prepare` outside any transaction (after
    /// a look into the inbox when `look_first` is set), then the handler in the transaction
    /// that records the event in the inbox.
    async fn subscribe_phased<E, T, PE, P, PFut, F, Fut>(
        &self,
        policy: RetryPolicy,
        critical: bool,
        look_first: bool,
        prepare: P,
        handler: F,
    ) -> Result<(), EventError>
    where
        E: Event,
        T: Send + 'static,
        PE: std::error::Error + Send + Sync + 'static,
        P: Fn(&E) -> PFut + Send + Sync + 'static,
        PFut: Future<Output = Result<T, PE>> + Send + 'static,
        F: Fn(Envelope, E, T, Tx) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<Tx>> + Send + 'static,
    {
        let consumer = self.service;
        let db = self.db.clone();
        let wake = self.events.wake.clone();
        let (prepare, handler) = (Arc::new(prepare), Arc::new(handler));
        let apply: Handler = Arc::new(move |envelope: Envelope| {
            let (db, prepare, handler, wake) =
                (db.clone(), prepare.clone(), handler.clone(), wake.clone());
            async move {
                let event = serde_json::from_value::<E>(envelope.data.clone())
                    .map_err(|error| anyhow::Error::new(Undecodable(error.to_string())))?;
                if look_first && applied(&db, consumer, &envelope).await? {
                    tracing::debug!(consumer, event_id = %envelope.id, "event already applied; skipping");
                    return Ok(());
                }
                let traceparent = envelope.traceparent.clone();
                let prepared =
                    crate::telemetry::with_traceparent(traceparent.clone(), prepare(&event)).await?;
                let mut tx = db.begin().await?;
                let fresh = query(match tx.engine() {
                    // MySQL has no ON CONFLICT; INSERT IGNORE skips the duplicate key, and
                    // every value fits its column, so it ignores nothing else.
                    Engine::Mysql => "INSERT IGNORE INTO svcgen_inbox (consumer, event_id, event_type, handled_at) VALUES ($1, $2, $3, $4)",
                    Engine::Sqlite | Engine::Postgres => "INSERT INTO svcgen_inbox (consumer, event_id, event_type, handled_at) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                })
                .bind(consumer)
                .bind(envelope.id.to_string())
                .bind(envelope.event_type.clone())
                .bind(timestamp(crate::db::now()))
                .execute(&mut tx)
                .await?;
                if fresh == 0 {
                    tracing::debug!(consumer, event_id = %envelope.id, "event already applied; skipping");
                    return Ok(());
                }
                let tx = crate::telemetry::with_traceparent(
                    traceparent,
                    handler(envelope, event, prepared, tx),
                )
                .await?;
                tx.commit().await?;
                // The handler may have emitted events: the relay sends them at once.
                wake.notify_one();
                Ok(())
            }
            .boxed()
        });
        let db = self.db.clone();
        let dead_letter: DeadLetterSink =
            Arc::new(move |envelope: Envelope, error: String, attempts: u32| {
                let db = db.clone();
                async move {
                    store_dead_letter(&db, consumer, &envelope, &error, attempts)
                        .await
                        .map_err(anyhow::Error::from)
                }
                .boxed()
            });
        let subscription = Subscription {
            consumer,
            event_type: E::NAME,
            critical: critical || E::CRITICAL,
            retry: policy,
            handler: apply,
            dead_letter,
        };
        self.events
            .subscriptions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(E::NAME, subscription.clone());
        self.bus.subscribe(subscription).await?;
        Ok(())
    }
}

/// Whether `consumer` already applied the event of `envelope` (it is in the inbox).
async fn applied(db: &Db, consumer: &str, envelope: &Envelope) -> Result<bool, EventError> {
    let found = query("SELECT 1 FROM svcgen_inbox WHERE consumer = $1 AND event_id = $2")
        .bind(consumer.to_owned())
        .bind(envelope.id.to_string())
        .fetch_optional(db)
        .await?;
    Ok(found.is_some())
}

async fn store_dead_letter(
    db: &Db,
    consumer: &str,
    envelope: &Envelope,
    error: &str,
    attempts: u32,
) -> Result<(), EventError> {
    let text = serde_json::to_string(envelope).map_err(|e| EventError::Encode(e.to_string()))?;
    let sql = match db.engine() {
        // VALUES(column) rather than a row alias: MariaDB has no `AS new` alias, and MySQL
        // still accepts VALUES() there.
        Engine::Mysql => {
            "INSERT INTO svcgen_dead_letters (consumer, event_id, event_type, envelope, error, attempts, failed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON DUPLICATE KEY UPDATE error = VALUES(error), attempts = VALUES(attempts), failed_at = VALUES(failed_at)"
        }
        Engine::Sqlite | Engine::Postgres => {
            "INSERT INTO svcgen_dead_letters (consumer, event_id, event_type, envelope, error, attempts, failed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (consumer, event_id) DO UPDATE SET error = excluded.error, attempts = excluded.attempts, failed_at = excluded.failed_at"
        }
    };
    query(sql)
        .bind(consumer.to_owned())
        .bind(envelope.id.to_string())
        .bind(envelope.event_type.clone())
        .bind(text)
        .bind(error.to_owned())
        .bind(i64::from(attempts))
        .bind(timestamp(crate::db::now()))
        .execute(db)
        .await?;
    Ok(())
}

/// Publishes the outbox of `ctx`'s database until `stopping` turns true.
pub async fn relay(ctx: ServiceContext, mut stopping: watch::Receiver<bool>) {
    let mut backoff = Duration::ZERO;
    let mut rounds: u64 = 0;
    loop {
        if *stopping.borrow() {
            return;
        }
        rounds += 1;
        let published = match relay_round(&ctx.db, &ctx.bus).await {
            Ok(outcome) => outcome,
            Err(error) => {
                tracing::warn!(service = ctx.service, %error, "outbox relay round failed");
                RoundOutcome {
                    published: 0,
                    failed: 1,
                }
            }
        };
        // Leftover saga undos (a failed undo, a process stopped mid-saga) every few seconds.
        if rounds.is_multiple_of(SAGA_RECOVERY_EVERY)
            && let Err(error) = crate::saga::recover(&ctx.db, &ctx.settings).await
        {
            tracing::warn!(service = ctx.service, %error, "saga recovery round failed");
        }
        if rounds.is_multiple_of(600) {
            let cutoff = timestamp(crate::db::now() - SENT_RETENTION);
            if let Err(error) = query(
                "DELETE FROM svcgen_outbox WHERE published_at IS NOT NULL AND published_at < $1",
            )
            .bind(cutoff)
            .execute(&ctx.db)
            .await
            {
                tracing::warn!(service = ctx.service, %error, "cannot purge sent outbox rows");
            }
        }
        let wait = if published.failed > 0 {
            backoff = (backoff * 2).clamp(Duration::from_millis(100), RELAY_MAX_BACKOFF);
            backoff
        } else if published.published > 0 {
            backoff = Duration::ZERO;
            continue;
        } else {
            backoff = Duration::ZERO;
            RELAY_IDLE
        };
        tokio::select! {
            // An error means whoever could stop the relay is gone: stop too.
            changed = stopping.changed() => if changed.is_err() { return },
            () = ctx.events.wake.notified(), if published.failed == 0 => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

struct RoundOutcome {
    published: usize,
    failed: usize,
}

/// Publishes one batch of pending rows, critical first, oldest first.
async fn relay_round(db: &Db, bus: &Bus) -> Result<RoundOutcome, DbError> {
    let rows = query(
        "SELECT id, envelope FROM svcgen_outbox WHERE published_at IS NULL ORDER BY priority DESC, id LIMIT $1",
    )
    .bind(RELAY_BATCH)
    .fetch_all(db)
    .await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        let id: String = row.get("id")?;
        let text: String = row.get("envelope")?;
        match serde_json::from_str::<Envelope>(&text) {
            Ok(envelope) => pending.push((id, envelope)),
            Err(error) => {
                tracing::error!(event_id = id, %error, "unreadable outbox row left in place")
            }
        }
    }
    let results: Vec<(String, Result<(), BusError>)> = futures_util::stream::iter(pending)
        .map(|(id, envelope)| async move { (id, bus.publish_envelope(envelope).await) })
        .buffer_unordered(RELAY_BATCH as usize)
        .collect()
        .await;
    let mut outcome = RoundOutcome {
        published: 0,
        failed: 0,
    };
    // The round's marks commit together: one write to the disk for the batch, not one per
    // event. A crash before the commit republishes the batch, which consumers' inboxes absorb.
    let mut marks = db.begin().await?;
    let published_at = timestamp(crate::db::now());
    for (id, result) in results {
        match result {
            Ok(()) => {
                query("UPDATE svcgen_outbox SET published_at = $2 WHERE id = $1")
                    .bind(id)
                    .bind(published_at.clone())
                    .execute(&mut marks)
                    .await?;
                outcome.published += 1;
            }
            Err(error) => {
                tracing::warn!(event_id = id, %error, "event not published yet; it stays in the outbox");
                outcome.failed += 1;
            }
        }
    }
    marks.commit().await?;
    Ok(outcome)
}

/// Events still waiting in a database's outbox.
pub async fn pending(db: &Db) -> Result<i64, DbError> {
    let row = query("SELECT COUNT(*) AS n FROM svcgen_outbox WHERE published_at IS NULL")
        .fetch_optional(db)
        .await?;
    row.map_or(Ok(0), |row| row.get("n"))
}

/// One dead letter as the admin routes show it.
#[derive(Debug, Serialize)]
pub struct DeadLetter {
    /// The event's id.
    pub event_id: String,
    /// The event type.
    pub event_type: String,
    /// The last error.
    pub error: String,
    /// Attempts made.
    pub attempts: i64,
    /// When it was given up on.
    pub failed_at: String,
    /// The whole envelope.
    pub envelope: serde_json::Value,
}

/// `GET /admin/<service>/dead-letters` and `POST /admin/<service>/dead-letters/{id}/replay`,
/// for callers with the `admin` role. A replay runs the consumer's handler once more (through
/// the inbox, so it applies at most once) and removes the dead letter when it succeeds.
pub fn admin_routes(service: &str) -> Router<ServiceContext> {
    Router::new()
        .route(
            &format!("/admin/{service}/dead-letters"),
            get(list_dead_letters),
        )
        .route(
            &format!("/admin/{service}/dead-letters/{{id}}/replay"),
            post(replay_dead_letter),
        )
}

fn require_admin(caller: &Caller) -> ApiResult<()> {
    if caller.roles.iter().any(|r| r == "admin") {
        Ok(())
    } else {
        Err(ApiError::forbidden("this route is for administrators"))
    }
}

async fn list_dead_letters(
    State(ctx): State<ServiceContext>,
    caller: Caller,
) -> ApiResult<Json<Vec<DeadLetter>>> {
    require_admin(&caller)?;
    let rows = query(
        "SELECT event_id, event_type, error, attempts, failed_at, envelope FROM svcgen_dead_letters WHERE consumer = $1 ORDER BY failed_at",
    )
    .bind(ctx.service)
    .fetch_all(&ctx.db)
    .await?;
    let mut letters = Vec::with_capacity(rows.len());
    for row in rows {
        let envelope: String = row.get("envelope")?;
        letters.push(DeadLetter {
            event_id: row.get("event_id")?,
            event_type: row.get("event_type")?,
            error: row.get("error")?,
            attempts: row.get("attempts")?,
            failed_at: row.get("failed_at")?,
            envelope: serde_json::from_str(&envelope).unwrap_or(serde_json::Value::Null),
        });
    }
    Ok(Json(letters))
}

async fn replay_dead_letter(
    State(ctx): State<ServiceContext>,
    caller: Caller,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    require_admin(&caller)?;
    let id =
        Uuid::parse_str(&id).map_err(|_| ApiError::bad_request(format!("malformed id `{id}`")))?;
    let row =
        query("SELECT envelope FROM svcgen_dead_letters WHERE consumer = $1 AND event_id = $2")
            .bind(ctx.service)
            .bind(id.to_string())
            .fetch_optional(&ctx.db)
            .await?
            .ok_or_else(|| ApiError::not_found("no such dead letter"))?;
    let text: String = row.get("envelope")?;
    let envelope: Envelope =
        serde_json::from_str(&text).map_err(|e| ApiError::internal(e.to_string()))?;
    let subscription = ctx
        .events
        .subscription(&envelope.event_type)
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "this service no longer consumes `{}`",
                envelope.event_type
            ))
        })?;
    (subscription.handler)(envelope)
        .await
        .map_err(|error| ApiError::conflict(format!("the event still fails: {error:#}")))?;
    query("DELETE FROM svcgen_dead_letters WHERE consumer = $1 AND event_id = $2")
        .bind(ctx.service)
        .bind(id.to_string())
        .execute(&ctx.db)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests;
