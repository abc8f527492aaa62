//! What a route's own code (`handler: custom`) works with: the service's context and the
//! transaction the generated handler opened. Whatever the code writes, and every event it
//! emits, takes effect together when the handler commits, after the code answered, or not at
//! all when it fails (a conflict with a concurrent transaction runs it again, whole).

use crate::bus::Event;
use crate::db::Tx;
use crate::http::ApiError;
use crate::service::ServiceContext;

/// The context of one run of a custom handler.
pub struct Cx<'a> {
    /// The service: its name, database pool, settings.
    pub service: &'a ServiceContext,
    /// The transaction the handler's writes go into: `db::query(...).execute(&mut *cx.tx)`.
    pub tx: &'a mut Tx,
}

impl<'a> Cx<'a> {
    /// The context of a handler running in `tx`.
    pub fn new(service: &'a ServiceContext, tx: &'a mut Tx) -> Self {
        Cx { service, tx }
    }

    /// Adds `event` to the outbox in the handler's transaction: it is published if and only if
    /// the transaction commits.
    pub async fn emit<E: Event>(&mut self, event: &E) -> Result<(), ApiError> {
        self.service.emit(self.tx, event).await?;
        Ok(())
    }
}

impl ApiError {
    /// 501: the route is declared but its code does not do anything yet.
    pub fn not_implemented(what: impl std::fmt::Display) -> Self {
        ApiError::new(
            axum::http::StatusCode::NOT_IMPLEMENTED,
            format!("{what} is not implemented yet"),
        )
    }
}
