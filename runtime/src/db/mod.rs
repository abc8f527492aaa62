//! One database API over SQLite (embedded runs) and PostgreSQL (distributed runs).
//!
//! Generated code writes its SQL once, with `$1, $2, ...` placeholders, and binds plain Rust
//! values; this module stores them in a form that keeps the same semantics on both engines
//! (see [`Bind`] for the storage rules). Each service owns exactly one [`Db`].

mod query;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, MigrationType, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, SqlSafeStr};

pub(crate) use query::sqlite_timestamp;
pub use query::{Bind, FromColumn, Query, Row, query};

/// How long a request waits for a pooled connection before giving up with an error, rather
/// than hanging while the database is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(10);

/// The fixed text form of timestamps on SQLite: UTC, microseconds, `Z` suffix. Every value
/// has the same width, so comparing the text compares the instants (`ORDER BY created_at`
/// and cursor comparisons work without date functions).
pub const SQLITE_TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// The current time at the precision both engines store (microseconds), so that a row a
/// handler returns is exactly the row a later read returns.
pub fn now() -> chrono::DateTime<chrono::Utc> {
    use chrono::SubsecRound as _;
    chrono::Utc::now().trunc_subsecs(6)
}

/// The database engine behind a [`Db`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// SQLite, one file per service (embedded mode).
    Sqlite,
    /// PostgreSQL, one database per service (distributed mode).
    Postgres,
}

/// A connection pool to one service's database.
#[derive(Clone, Debug)]
pub enum Db {
    /// A SQLite database file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
}

/// One versioned migration, as generated code declares it (SQL usually via `include_str!`).
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    /// Monotonic version; applied in ascending order and recorded in `_sqlx_migrations`.
    pub version: i64,
    /// Short human description, recorded alongside the version.
    pub description: &'static str,
    /// The SQL script; once applied it must never change (its checksum is verified).
    pub sql: &'static str,
}

/// A service's migrations, written once per engine because DDL differs between them.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// Scripts for SQLite.
    pub sqlite: &'static [Migration],
    /// Scripts for PostgreSQL.
    pub postgres: &'static [Migration],
}

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names neither `sqlite:` nor `postgres:`.
    #[error("unsupported database URL scheme `{scheme}` (expected sqlite://... or postgres://...)")]
    UnsupportedUrl {
        /// The scheme that was given (never the full URL, which may hold a password).
        scheme: String,
    },
    /// A driver, connection or SQL error.
    #[error("database error: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// Applying migrations failed (including a changed, already applied migration).
    #[error("migration failed: {0}")]
    Migrate(#[from] MigrateError),
    /// A bound value could not be turned into a database value (e.g. JSON serialization).
    #[error("cannot encode value for `{sql}`: {message}")]
    Encode {
        /// The statement the value was bound to.
        sql: &'static str,
        /// What went wrong.
        message: String,
    },
    /// A column value could not be turned into the requested Rust type.
    #[error("cannot decode column `{column}`: {message}")]
    Decode {
        /// The column name.
        column: String,
        /// What went wrong.
        message: String,
    },
}

impl DbError {
    /// True when the statement violated a UNIQUE constraint (or primary key), on either engine.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlx(sqlx::Error::Database(error)) => error.is_unique_violation(),
            _ => false,
        }
    }

    pub(crate) fn decode(column: &str, message: impl Into<String>) -> Self {
        DbError::Decode {
            column: column.to_owned(),
            message: message.into(),
        }
    }
}

impl Db {
    /// Opens a pool.
    ///
    /// * `sqlite://PATH` — the file is created if missing; WAL journal (readers do not block the
    ///   writer) and foreign keys on. `sqlite::memory:` gives a private in-memory database.
    /// * `postgres://...` (or `postgresql://`) — the database named in the URL is created if it
    ///   does not exist yet, so a fresh server needs no manual setup.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => connect_sqlite(url).await,
            "postgres" | "postgresql" => connect_postgres(url).await,
            _ => Err(DbError::UnsupportedUrl {
                scheme: scheme.to_owned(),
            }),
        }
    }

    /// Which engine this pool talks to.
    pub fn engine(&self) -> Engine {
        match self {
            Db::Sqlite(_) => Engine::Sqlite,
            Db::Postgres(_) => Engine::Postgres,
        }
    }

    /// Applies this engine's list of migrations with sqlx's migrator: applied versions and their
    /// checksums are kept in `_sqlx_migrations`, so running it again is a no-op, and editing an
    /// applied migration is reported instead of silently ignored. On PostgreSQL an advisory lock
    /// keeps concurrent replicas from migrating at the same time.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        let list = match self {
            Db::Sqlite(_) => migrations.sqlite,
            Db::Postgres(_) => migrations.postgres,
        };
        let migrator = Migrator::with_migrations(
            list.iter()
                .map(|m| {
                    sqlx::migrate::Migration::new(
                        m.version,
                        Cow::Borrowed(m.description),
                        MigrationType::Simple,
                        m.sql.into_sql_str(),
                        false,
                    )
                })
                .collect(),
        );
        match self {
            Db::Sqlite(pool) => migrator.run(pool).await?,
            Db::Postgres(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Starts a transaction: statements run on it with `.execute(&mut tx)` (and the fetches)
    /// take effect together at [`Tx::commit`], or not at all when the `Tx` is dropped.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin().await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
        })
    }

    /// Checks that the database answers (used by `/health`).
    pub async fn ping(&self) -> Result<(), DbError> {
        query("SELECT 1").execute(self).await.map(|_| ())
    }

    /// Closes the pool, waiting for checked-out connections to be returned (graceful shutdown).
    pub async fn close(&self) {
        match self {
            Db::Sqlite(pool) => pool.close().await,
            Db::Postgres(pool) => pool.close().await,
        }
    }
}

/// A database transaction; dropping it without [`Tx::commit`] rolls it back.
#[derive(Debug)]
pub enum Tx {
    /// On a SQLite pool.
    Sqlite(sqlx::Transaction<'static, sqlx::Sqlite>),
    /// On a PostgreSQL pool.
    Postgres(sqlx::Transaction<'static, sqlx::Postgres>),
}

impl Tx {
    /// Makes every statement of the transaction permanent.
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Undoes every statement of the transaction.
    pub async fn rollback(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Which engine the transaction runs on.
    pub fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
        }
    }
}

/// Where a statement runs: on the pool (`&db`) or inside a transaction (`&mut tx`).
#[derive(Debug)]
pub enum Conn<'c> {
    /// Any connection of the pool.
    Db(&'c Db),
    /// The transaction's connection.
    Tx(&'c mut Tx),
}

impl<'c> From<&'c Db> for Conn<'c> {
    fn from(db: &'c Db) -> Self {
        Conn::Db(db)
    }
}

impl<'c> From<&'c mut Tx> for Conn<'c> {
    fn from(tx: &'c mut Tx) -> Self {
        Conn::Tx(tx)
    }
}

async fn connect_sqlite(url: &str) -> Result<Db, DbError> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        // Concurrent writers queue up instead of failing with SQLITE_BUSY straight away.
        .busy_timeout(Duration::from_secs(5));
    // Each connection to `:memory:` would otherwise see its own empty database.
    let in_memory = url.contains(":memory:") || url.contains("mode=memory");
    let pool = SqlitePoolOptions::new()
        .max_connections(if in_memory { 1 } else { 8 })
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await?;
    Ok(Db::Sqlite(pool))
}

async fn connect_postgres(url: &str) -> Result<Db, DbError> {
    let options = PgConnectOptions::from_str(url)?;
    let pool_options = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(ACQUIRE_TIMEOUT);
    match pool_options.clone().connect_with(options.clone()).await {
        Ok(pool) => Ok(Db::Postgres(pool)),
        Err(error) if is_missing_database(&error) => {
            create_postgres_database(&options).await?;
            Ok(Db::Postgres(pool_options.connect_with(options).await?))
        }
        Err(error) => Err(error.into()),
    }
}

/// SQLSTATE 3D000 `invalid_catalog_name`: the database in the URL does not exist.
fn is_missing_database(error: &sqlx::Error) -> bool {
    sqlstate(error).as_deref() == Some("3D000")
}

fn sqlstate(error: &sqlx::Error) -> Option<String> {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .map(|code| code.into_owned())
}

/// Creates the database named in `options` through the server's maintenance database.
async fn create_postgres_database(options: &PgConnectOptions) -> Result<(), DbError> {
    let Some(name) = options.get_database() else {
        // Without a name the server uses the user's database, which we cannot create for it.
        return Err(sqlx::Error::Configuration("the database URL names no database".into()).into());
    };
    let mut admin = options.clone().database("postgres").connect().await?;
    // Identifiers cannot be bound as parameters; quote it, doubling embedded quotes.
    let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await;
    admin.close().await.ok();
    match result {
        Ok(_) => {
            tracing::info!(database = name, "created PostgreSQL database");
            Ok(())
        }
        // 42P04 duplicate_database: another replica created it between our two attempts.
        Err(error) if sqlstate(&error).as_deref() == Some("42P04") => Ok(()),
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests;
