//! The `notify` capability: in-app notifications, usually created by event consumers.
//!
//! `GET /notifications` (user) lists the caller's notifications, newest first, paginated
//! with `?limit=&cursor=`: `{items: [{id, kind, message, created_at}], next_cursor}`. They
//! are the caller's own and those sent to a role the caller has (e.g. alerts for `admin`).

use axum::Router;
use axum::extract::State;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::db::{self, CapabilityTables, DbError, Migration, Migrations};
use crate::http::{ApiResult, Cursor, Json, Page, Paginated};
use crate::identity::Caller;
use crate::service::ServiceContext;

/// The capability's tables as a service that uses it migrates them: recorded in
/// `_svcgen_notify_migrations`, apart from the service's own.
pub static TABLES: CapabilityTables = CapabilityTables {
    history: "_svcgen_notify_migrations",
    adopt: "ALTER TABLE _sqlx_migrations RENAME TO _svcgen_notify_migrations",
    migrations: &MIGRATIONS,
};

/// The capability's table, per engine.
pub static MIGRATIONS: Migrations = Migrations {
    sqlite: &[Migration {
        version: 1,
        description: "notifications",
        sql: r#"
CREATE TABLE notifications (
    id TEXT PRIMARY KEY NOT NULL,
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX notifications_user_created ON notifications (user_id, created_at);
"#,
    }],
    postgres: &[Migration {
        version: 1,
        description: "notifications",
        sql: r#"
CREATE TABLE notifications (
    id UUID PRIMARY KEY,
    event_id UUID NOT NULL UNIQUE,
    user_id UUID NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL,
    created_at TIMESTAMPTZ NOT NULL
);
CREATE INDEX notifications_user_created ON notifications (user_id, created_at);
"#,
    }],
    // Keyed columns are CHAR (MySQL indexes no TEXT without a prefix); the binary collation
    // keeps comparisons case-sensitive, as on the other engines.
    mysql: &[Migration {
        version: 1,
        description: "notifications",
        sql: r#"
CREATE TABLE notifications (
    id CHAR(36) NOT NULL PRIMARY KEY,
    event_id CHAR(36) NOT NULL UNIQUE,
    user_id CHAR(36) NOT NULL,
    kind LONGTEXT NOT NULL,
    message LONGTEXT NOT NULL,
    created_at DATETIME(6) NOT NULL,
    INDEX notifications_user_created (user_id, created_at)
) DEFAULT CHARSET = utf8mb4 COLLATE = utf8mb4_bin;
"#,
    }],
};

/// One notification as clients see it.
#[derive(Debug, Clone, Serialize)]
struct Notification {
    id: Uuid,
    kind: String,
    message: String,
    created_at: DateTime<Utc>,
}

/// The capability's routes, to be wrapped by [`crate::service::service_app`].
pub fn routes() -> Router<ServiceContext> {
    Router::new().route("/notifications", get(list))
}

async fn list(
    State(ctx): State<ServiceContext>,
    caller: Caller,
    page: Page,
) -> ApiResult<Json<Paginated<Notification>>> {
    let before = page.before_key();
    // The caller's own page and one per role, merged: each is already the newest first after
    // the same cursor, so the merged first `limit` are the page.
    let recipients =
        std::iter::once(caller.user_id).chain(caller.roles.iter().map(|r| role_recipient(r)));
    let mut items = Vec::new();
    for recipient in recipients {
        let rows = db::query(
            "SELECT id, kind, message, created_at FROM notifications \
             WHERE user_id = $1 AND (created_at < $2 OR (created_at = $2 AND id < $3)) \
             ORDER BY created_at DESC, id DESC LIMIT $4",
        )
        .bind(recipient)
        .bind(before.created_at)
        .bind(before.id)
        .bind(page.limit)
        .fetch_all(&ctx.db)
        .await?;
        for row in &rows {
            items.push(Notification {
                id: row.get("id")?,
                kind: row.get("kind")?,
                message: row.get("message")?,
                created_at: row.get("created_at")?,
            });
        }
    }
    items.sort_by_key(|n| std::cmp::Reverse((n.created_at, n.id)));
    items.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
    Ok(Json(Paginated::new(items, page.limit, |n| Cursor {
        created_at: n.created_at,
        id: n.id,
    })))
}

/// The recipient id under which notifications for every account with `role` are stored: a
/// fixed UUID per role (version 8, from a hash of the role), never a user's id (users' ids are
/// version 7).
pub fn role_recipient(role: &str) -> Uuid {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(format!("svcgen notification role {role}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// Stores one in-app notification for every account with `role` (each sees it in its list),
/// keyed by the event like [`notify`].
pub async fn notify_role<'c>(
    on: impl Into<crate::db::Conn<'c>>,
    event_id: Uuid,
    role: &str,
    kind: &str,
    message: &str,
) -> Result<(), DbError> {
    notify(on, event_id, role_recipient(role), kind, message).await
}

/// Stores one in-app notification for `user_id`. Keyed by the id of the event that caused it,
/// so a redelivered event (the bus delivers at least once) changes nothing.
pub async fn notify<'c>(
    on: impl Into<crate::db::Conn<'c>>,
    event_id: Uuid,
    user_id: Uuid,
    kind: &str,
    message: &str,
) -> Result<(), DbError> {
    let on = on.into();
    let sql = match on.engine() {
        // INSERT IGNORE skips the duplicate event id (MySQL has no ON CONFLICT); every value
        // fits its column, so it ignores nothing else.
        db::Engine::Mysql => {
            "INSERT IGNORE INTO notifications (id, event_id, user_id, kind, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)"
        }
        db::Engine::Sqlite | db::Engine::Postgres => {
            "INSERT INTO notifications (id, event_id, user_id, kind, message, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING"
        }
    };
    db::query(sql)
        .bind(Uuid::now_v7())
        .bind(event_id)
        .bind(user_id)
        .bind(kind.to_owned())
        .bind(message.to_owned())
        .bind(crate::db::now())
        .execute(on)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests;
