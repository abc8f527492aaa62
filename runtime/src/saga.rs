//! Sagas: the steps of a route that change other services, undone newest first when a later
//! step fails.
//!
//! An undo that is an RPC is written to the service's `svcgen_compensations` table *before* its
//! step runs (the step may succeed on the other side and its answer still be lost), with the
//! encoded request and a due time past the request's deadline. When the route succeeds, the
//! rows go in the same transaction as the route's own row; when a step fails, the undos run
//! and each one done is deleted. Whatever is left (an undo that failed, a process killed in
//! the middle) is run by [`recover`], which each service's outbox relay calls regularly, until
//! it succeeds. Undos are therefore run at least once: they must be idempotent (releasing a
//! reservation twice releases it once), which the validator of the spec cannot check, and the
//! generated code only registers RPCs the spec calls.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::BoxFuture;
use tonic::Status;
use uuid::Uuid;

use crate::db::{Db, DbError, Tx, query};
use crate::events::timestamp;
use crate::http::ApiError;
use crate::rpc::Outgoing;
use crate::service::Settings;

/// How long after its request's deadline a saga's leftover undos become due: the saga itself
/// may still be running its undos until then.
const GRACE: Duration = Duration::from_secs(30);

/// The longest wait between two attempts at a leftover undo.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(300);

/// Leftover undos run per recovery round.
const RECOVERY_BATCH: i64 = 50;

/// What undoes one step.
enum Undo {
    /// Something in this process (e.g. a refund with the mock payment provider).
    Local(
        &'static str,
        Box<dyn FnOnce() -> BoxFuture<'static, Result<(), Status>> + Send + Sync>,
    ),
    /// An RPC, recorded in the database.
    Call {
        row: Uuid,
        what: &'static str,
        service: &'static str,
        path: &'static str,
        idempotent: bool,
        request: Vec<u8>,
    },
}

/// The undos of one run of a route's steps.
pub struct Saga {
    id: Uuid,
    /// Where RPC undos are recorded; `None`: in memory only.
    db: Option<Db>,
    /// The calls the undos are made with (a deadline of their own).
    calls: Option<Outgoing>,
    /// When leftover undos become due for [`recover`].
    due_at: chrono::DateTime<chrono::Utc>,
    undo: Vec<Undo>,
}

impl std::fmt::Debug for Saga {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self
            .undo
            .iter()
            .map(|undo| match undo {
                Undo::Local(what, _) => *what,
                Undo::Call { what, .. } => *what,
            })
            .collect();
        f.debug_struct("Saga")
            .field("id", &self.id)
            .field("undo", &names)
            .finish()
    }
}

impl Default for Saga {
    fn default() -> Self {
        Saga::new()
    }
}

impl Saga {
    /// A saga whose undos live in memory only (lost if the process stops).
    pub fn new() -> Saga {
        Saga {
            id: Uuid::now_v7(),
            db: None,
            calls: None,
            due_at: crate::db::now(),
            undo: Vec::new(),
        }
    }

    /// A saga whose RPC undos are recorded in `db` and made with `calls`' credentials.
    pub fn recorded(db: &Db, calls: &Outgoing) -> Saga {
        let left = chrono::Duration::from_std(calls.deadline().remaining() + GRACE)
            .unwrap_or_else(|_| chrono::Duration::seconds(60));
        Saga {
            id: Uuid::now_v7(),
            db: Some(db.clone()),
            calls: Some(calls.compensating()),
            due_at: crate::db::now() + left,
            undo: Vec::new(),
        }
    }

    /// Registers something in this process that undoes the step just done.
    pub fn on_failure<F, Fut>(&mut self, what: &'static str, undo: F)
    where
        F: FnOnce() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), Status>> + Send + 'static,
    {
        self.undo.push(Undo::Local(
            what,
            Box::new(move || Box::pin(undo()) as Pin<Box<_>>),
        ));
    }

    /// Records, before the step runs, the RPC at `path` of `service` that undoes it, with its
    /// request. Fails (and the step must not run) when it cannot be recorded.
    pub async fn undo_with<M: prost::Message>(
        &mut self,
        what: &'static str,
        service: &'static str,
        path: &'static str,
        idempotent: bool,
        request: &M,
    ) -> Result<(), ApiError> {
        let row = Uuid::now_v7();
        let request = request.encode_to_vec();
        if let Some(db) = &self.db {
            query(
                "INSERT INTO svcgen_compensations \
                 (id, saga, what, service, path, idempotent, request, attempts, due_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8)",
            )
            .bind(row.to_string())
            .bind(self.id.to_string())
            .bind(what)
            .bind(service)
            .bind(path)
            .bind(i64::from(idempotent))
            .bind(STANDARD.encode(&request))
            .bind(timestamp(self.due_at))
            .execute(db)
            .await?;
        }
        self.undo.push(Undo::Call {
            row,
            what,
            service,
            path,
            idempotent,
            request,
        });
        Ok(())
    }

    /// Forgets the recorded undos in `tx`, the transaction that makes the route's work final:
    /// they go exactly when it commits.
    pub async fn succeed(&self, tx: &mut Tx) -> Result<(), DbError> {
        if self.db.is_some() {
            query("DELETE FROM svcgen_compensations WHERE saga = $1")
                .bind(self.id.to_string())
                .execute(tx)
                .await?;
        }
        Ok(())
    }

    /// Undoes every registered step, newest first, and returns `error`. An undo that fails is
    /// logged and, when recorded, left for [`recover`]; the others still run.
    pub async fn fail(self, error: ApiError) -> ApiError {
        for undo in self.undo.into_iter().rev() {
            match undo {
                Undo::Local(what, undo) => match undo().await {
                    Ok(()) => tracing::info!(undo = what, "saga step undone"),
                    Err(status) => {
                        tracing::error!(undo = what, %status, "saga compensation failed")
                    }
                },
                Undo::Call {
                    row,
                    what,
                    service,
                    path,
                    idempotent,
                    request,
                } => {
                    let Some(calls) = &self.calls else {
                        tracing::error!(undo = what, "saga without calls cannot undo an RPC");
                        continue;
                    };
                    match calls.call_encoded(service, idempotent, path, request).await {
                        Ok(_) => {
                            tracing::info!(undo = what, "saga step undone");
                            if let Some(db) = &self.db
                                && let Err(error) = forget(db, &row.to_string()).await
                            {
                                // Left in place, it is run once more later: undos are idempotent.
                                tracing::warn!(undo = what, %error, "cannot forget a done undo");
                            }
                        }
                        Err(status) => tracing::error!(
                            undo = what,
                            %status,
                            "saga compensation failed; it is retried later"
                        ),
                    }
                }
            }
        }
        error
    }
}

async fn forget(db: &Db, row: &str) -> Result<(), DbError> {
    query("DELETE FROM svcgen_compensations WHERE id = $1")
        .bind(row.to_owned())
        .execute(db)
        .await
        .map(|_| ())
}

/// Runs the due leftover undos of `db` (newest first within a saga), forgetting each one done
/// and putting off each one that fails, with growing delays. Returns how many were done.
pub async fn recover(db: &Db, settings: &Arc<Settings>) -> Result<usize, DbError> {
    let rows = query(
        "SELECT id, what, service, path, idempotent, request, attempts FROM svcgen_compensations \
         WHERE due_at <= $1 ORDER BY saga, id DESC LIMIT $2",
    )
    .bind(timestamp(crate::db::now()))
    .bind(RECOVERY_BATCH)
    .fetch_all(db)
    .await?;
    let calls = Outgoing::anonymous(settings);
    let mut done = 0;
    for row in &rows {
        let id: String = row.get("id")?;
        let what: String = row.get("what")?;
        let service: String = row.get("service")?;
        let path: String = row.get("path")?;
        let idempotent: i64 = row.get("idempotent")?;
        let attempts: i64 = row.get("attempts")?;
        let request = match STANDARD.decode(row.get::<String>("request")?) {
            Ok(request) => request,
            Err(error) => {
                tracing::error!(undo = what, %error, "unreadable saga compensation left in place");
                continue;
            }
        };
        match calls
            .call_encoded(&service, idempotent != 0, &path, request)
            .await
        {
            Ok(_) => {
                forget(db, &id).await?;
                tracing::info!(undo = what, "leftover saga step undone");
                done += 1;
            }
            Err(status) => {
                let delay = Duration::from_secs(2u64.saturating_pow(attempts.clamp(0, 16) as u32))
                    .min(MAX_RETRY_DELAY);
                let next = crate::db::now()
                    + chrono::Duration::from_std(delay)
                        .unwrap_or_else(|_| chrono::Duration::minutes(5));
                tracing::error!(undo = what, %status, attempts = attempts + 1, "saga compensation failed again");
                query("UPDATE svcgen_compensations SET attempts = $2, due_at = $3 WHERE id = $1")
                    .bind(id)
                    .bind(attempts + 1)
                    .bind(timestamp(next))
                    .execute(db)
                    .await?;
            }
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests;
