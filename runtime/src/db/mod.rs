//! One database API over SQLite (embedded runs), PostgreSQL and MySQL/MariaDB (distributed
//! runs).
//!
//! Generated code writes its SQL once, with `$1, $2, ...` placeholders and `"quoted"`
//! identifiers, and binds plain Rust values; this module stores them in a form that keeps the
//! same semantics on every engine (see [`Bind`] for the storage rules) and, on MySQL, rewrites
//! the statement into MySQL's dialect (see [`query()`]). Each service owns exactly one [`Db`].

mod constraints;
mod mysql;
mod query;
mod retry;

use std::borrow::Cow;
use std::str::FromStr;
use std::time::Duration;

use sqlx::migrate::{MigrateError, MigrationType, Migrator};
use sqlx::mysql::{MySqlConnectOptions, MySqlPool, MySqlPoolOptions};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions};
use sqlx::{ConnectOptions, Connection, SqlSafeStr};

pub use constraints::{Constraint, ConstraintKind, Violation};
pub(crate) use query::sqlite_timestamp;
pub use query::{Bind, FromColumn, Query, Row, query, query_owned};
pub use retry::{MAX_ATTEMPTS, Transient, retrying};

/// How long a request waits for a pooled connection before giving up with an error (a 503),
/// rather than hanging while the database is down. As long as the gateway's default timeout:
/// under a burst (transactions queued behind row locks, deadlocks being broken) a request
/// keeps its place until its own deadline, which ends it first when it is shorter.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a SQLite connection waits for another one's write lock before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The fixed text form of timestamps on SQLite: UTC, microseconds, `Z` suffix. Every value
/// has the same width, so comparing the text compares the instants (`ORDER BY created_at`
/// and cursor comparisons work without date functions).
pub const SQLITE_TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

/// The current time at the precision every engine stores (microseconds), so that a row a
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
    /// MySQL or MariaDB, one database per service (distributed mode).
    Mysql,
}

impl Engine {
    /// The engine's name as specs and migration directories spell it (`sqlite`, `postgres`,
    /// `mysql`).
    pub fn as_str(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::Mysql => "mysql",
        }
    }
}

impl std::fmt::Display for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A connection pool to one service's database.
#[derive(Clone, Debug)]
pub enum Db {
    /// A SQLite database file.
    Sqlite(SqlitePool),
    /// A PostgreSQL database.
    Postgres(PgPool),
    /// A MySQL or MariaDB database.
    Mysql(MySqlPool),
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
///
/// A generated service has scripts for SQLite (embedded runs) and for the one distributed
/// engine its store declares; the other distributed engine's list is empty, and
/// [`Db::migrate`] refuses to run on it.
#[derive(Debug, Clone, Copy)]
pub struct Migrations {
    /// Scripts for SQLite.
    pub sqlite: &'static [Migration],
    /// Scripts for PostgreSQL.
    pub postgres: &'static [Migration],
    /// Scripts for MySQL/MariaDB.
    pub mysql: &'static [Migration],
}

/// Whether a migration opens its own transaction (SQLite's rebuild of a table turns foreign
/// keys off first, which it cannot do inside one): a line `-- no-transaction` among the
/// comments it starts with, as sqlx's migration files say it.
fn runs_outside_transaction(sql: &str) -> bool {
    sql.lines()
        .map(str::trim)
        .take_while(|line| line.starts_with("--"))
        .any(|line| line == "-- no-transaction")
}

/// Where sqlx records the migrations a database has had: a service's own.
const SQLX_HISTORY: &str = "_sqlx_migrations";

/// The tables a capability brings into the database of the service that uses it, migrated
/// before the service's own and recorded apart from them ([`Db::migrate_capability`]).
#[derive(Debug, Clone, Copy)]
pub struct CapabilityTables {
    /// The table that records the capability's applied migrations, e.g.
    /// `_svcgen_auth_migrations`.
    pub history: &'static str,
    /// `ALTER TABLE _sqlx_migrations RENAME TO <history>`: takes over the history of a database
    /// made when the capability's migrations were recorded with a service's own.
    pub adopt: &'static str,
    /// The migrations.
    pub migrations: &'static Migrations,
}

impl Migrations {
    /// No migrations: a service that keeps only a capability's tables.
    pub const NONE: Migrations = Migrations {
        sqlite: &[],
        postgres: &[],
        mysql: &[],
    };

    /// The scripts for `engine`.
    pub fn for_engine(&self, engine: Engine) -> &'static [Migration] {
        match engine {
            Engine::Sqlite => self.sqlite,
            Engine::Postgres => self.postgres,
            Engine::Mysql => self.mysql,
        }
    }

    /// The engine the scripts were written for when `engine` has none: the distributed engine
    /// that has scripts, else SQLite; `None` when `engine` has scripts or no engine has any.
    fn declared_engine_instead_of(&self, engine: Engine) -> Option<Engine> {
        if !self.for_engine(engine).is_empty() {
            return None;
        }
        [Engine::Postgres, Engine::Mysql, Engine::Sqlite]
            .into_iter()
            .find(|other| !self.for_engine(*other).is_empty())
    }
}

/// Everything that can go wrong talking to the database.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names none of `sqlite:`, `postgres:` and `mysql:`.
    #[error(
        "unsupported database URL scheme `{scheme}` (expected sqlite://..., postgres://... or mysql://...)"
    )]
    UnsupportedUrl {
        /// The scheme that was given (never the full URL, which may hold a password).
        scheme: String,
    },
    /// The service has no migrations for the engine it was started on: its store was declared
    /// for another engine, so its tables would never be created.
    #[error(
        "this service has no migrations for {engine}; its store is declared for {declared} \
         (use a {declared} database, or change the store's `engine` and regenerate)"
    )]
    NoMigrationsForEngine {
        /// The engine of the database the service was started on.
        engine: Engine,
        /// The engine the service's migrations were generated for.
        declared: Engine,
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
        sql: String,
        /// What went wrong.
        message: String,
    },
    /// The statement broke a rule of the schema it was told about
    /// ([`Query::constraints`]): a taken unique key, a reference to nothing, a delete that
    /// rows still depend on.
    #[error("{0}")]
    Violation(Violation),
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
    /// True when the statement violated a UNIQUE constraint (or primary key), on any engine.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            DbError::Sqlx(sqlx::Error::Database(error)) => error.is_unique_violation(),
            DbError::Violation(Violation::Duplicate(_)) => true,
            _ => false,
        }
    }

    /// True when every connection of the pool stayed busy for the whole acquire timeout.
    pub fn is_pool_exhausted(&self) -> bool {
        matches!(self, DbError::Sqlx(sqlx::Error::PoolTimedOut))
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
    /// * `mysql://...` (or `mariadb://`) — likewise created if missing (`utf8mb4`, binary
    ///   collation: text compares and sorts by code point, case-sensitively, as on the other
    ///   engines). Sessions run in UTC.
    pub async fn connect(url: &str) -> Result<Db, DbError> {
        let scheme = url.split(':').next().unwrap_or_default();
        match scheme {
            "sqlite" => connect_sqlite(url).await,
            "postgres" | "postgresql" => connect_postgres(url).await,
            "mysql" | "mariadb" => connect_mysql(url).await,
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
            Db::Mysql(_) => Engine::Mysql,
        }
    }

    /// Applies this engine's list of migrations with sqlx's migrator: applied versions and their
    /// checksums are kept in `_sqlx_migrations`, so running it again is a no-op, and editing an
    /// applied migration is reported instead of silently ignored. On PostgreSQL and MySQL an
    /// advisory lock keeps concurrent replicas from migrating at the same time.
    ///
    /// Fails with [`DbError::NoMigrationsForEngine`] when this engine has no scripts but
    /// another one has: the service was generated for another engine, and starting it without
    /// its tables would only fail later, at its first request.
    pub async fn migrate(&self, migrations: &Migrations) -> Result<(), DbError> {
        self.migrate_tracked(migrations, None).await
    }

    /// Applies the migrations of a capability's tables like [`Db::migrate`], with their history
    /// in a table of their own ([`CapabilityTables::history`]), so that a service that uses a
    /// capability and has entities keeps two lists that never mix. A database made before the
    /// capability had its own history table is taken over as it is: when `_sqlx_migrations`
    /// holds exactly the capability's migrations, it becomes the capability's history.
    pub async fn migrate_capability(&self, tables: &CapabilityTables) -> Result<(), DbError> {
        if !self.has_table(tables.history).await? && self.has_table(SQLX_HISTORY).await? {
            let list = tables.migrations.for_engine(self.engine());
            let rows = query("SELECT version, description FROM _sqlx_migrations")
                .fetch_all(self)
                .await?;
            let mut only_capability = !rows.is_empty();
            for row in &rows {
                let (version, description): (i64, String) =
                    (row.get("version")?, row.get("description")?);
                only_capability &= list
                    .iter()
                    .any(|m| m.version == version && m.description == description);
            }
            // Another replica may have taken the history over in the meantime.
            if only_capability
                && let Err(error) = query(tables.adopt).execute(self).await
                && !self.has_table(tables.history).await?
            {
                return Err(error);
            }
        }
        self.migrate_tracked(tables.migrations, Some(tables.history))
            .await
    }

    /// Whether the database has a table of this name.
    async fn has_table(&self, name: &str) -> Result<bool, DbError> {
        let sql = match self.engine() {
            Engine::Sqlite => {
                "SELECT COUNT(*) AS n FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            Engine::Postgres => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
            }
            Engine::Mysql => {
                "SELECT COUNT(*) AS n FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = $1"
            }
        };
        let row = query(sql)
            .bind(name.to_owned())
            .fetch_optional(self)
            .await?;
        Ok(match row {
            Some(row) => row.get::<i64>("n")? > 0,
            None => false,
        })
    }

    /// [`Db::migrate`], with the history in `history` (`_sqlx_migrations` when `None`).
    async fn migrate_tracked(
        &self,
        migrations: &Migrations,
        history: Option<&'static str>,
    ) -> Result<(), DbError> {
        let engine = self.engine();
        if let Some(declared) = migrations.declared_engine_instead_of(engine) {
            return Err(DbError::NoMigrationsForEngine { engine, declared });
        }
        let list = migrations.for_engine(engine);
        let mut migrator = Migrator::with_migrations(
            list.iter()
                .map(|m| {
                    sqlx::migrate::Migration::new(
                        m.version,
                        Cow::Borrowed(m.description),
                        MigrationType::Simple,
                        m.sql.into_sql_str(),
                        runs_outside_transaction(m.sql),
                    )
                })
                .collect(),
        );
        if let Some(history) = history {
            migrator.dangerous_set_table_name(history);
        }
        match self {
            Db::Sqlite(pool) => migrator.run(pool).await?,
            Db::Postgres(pool) => migrator.run(pool).await?,
            Db::Mysql(pool) => migrator.run(pool).await?,
        }
        Ok(())
    }

    /// Starts a transaction: statements run on it with `.execute(&mut tx)` (and the fetches)
    /// take effect together at [`Tx::commit`], or not at all when the `Tx` is dropped.
    ///
    /// On SQLite the transaction takes the write lock up front (`BEGIN IMMEDIATE`), waiting for
    /// it within the busy timeout: a transaction that first reads and then writes would
    /// otherwise fail with "database is locked" the moment another one wrote in between, since
    /// SQLite cannot upgrade a reader that has seen an older snapshot. Readers are not blocked
    /// (WAL). Transactions are written by services to change something, so none is read-only.
    pub async fn begin(&self) -> Result<Tx, DbError> {
        Ok(match self {
            Db::Sqlite(pool) => Tx::Sqlite(pool.begin_with("BEGIN IMMEDIATE").await?),
            Db::Postgres(pool) => Tx::Postgres(pool.begin().await?),
            Db::Mysql(pool) => Tx::Mysql(pool.begin().await?),
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
            Db::Mysql(pool) => pool.close().await,
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
    /// On a MySQL/MariaDB pool.
    Mysql(sqlx::Transaction<'static, sqlx::MySql>),
}

impl Tx {
    /// Makes every statement of the transaction permanent.
    pub async fn commit(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.commit().await?,
            Tx::Postgres(tx) => tx.commit().await?,
            Tx::Mysql(tx) => tx.commit().await?,
        }
        Ok(())
    }

    /// Undoes every statement of the transaction.
    pub async fn rollback(self) -> Result<(), DbError> {
        match self {
            Tx::Sqlite(tx) => tx.rollback().await?,
            Tx::Postgres(tx) => tx.rollback().await?,
            Tx::Mysql(tx) => tx.rollback().await?,
        }
        Ok(())
    }

    /// Which engine the transaction runs on.
    pub fn engine(&self) -> Engine {
        match self {
            Tx::Sqlite(_) => Engine::Sqlite,
            Tx::Postgres(_) => Engine::Postgres,
            Tx::Mysql(_) => Engine::Mysql,
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

impl Conn<'_> {
    /// Which engine the statement will run on (for the few statements whose SQL differs).
    pub fn engine(&self) -> Engine {
        match self {
            Conn::Db(db) => db.engine(),
            Conn::Tx(tx) => tx.engine(),
        }
    }
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
        // Concurrent writers queue up for the write lock instead of failing with SQLITE_BUSY
        // straight away; one still busy after this is run again by `retrying`.
        .busy_timeout(SQLITE_BUSY_TIMEOUT);
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

async fn connect_mysql(url: &str) -> Result<Db, DbError> {
    // UTC sessions: `NOW()` and TIMESTAMP columns then agree with the DATETIME values this
    // module writes, which are always UTC.
    let options = MySqlConnectOptions::from_str(url)?.timezone(Some("+00:00".to_owned()));
    let pool_options = MySqlPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(ACQUIRE_TIMEOUT);
    match pool_options.clone().connect_with(options.clone()).await {
        Ok(pool) => Ok(Db::Mysql(pool)),
        Err(error) if is_missing_mysql_database(&error) => {
            create_mysql_database(&options).await?;
            Ok(Db::Mysql(pool_options.connect_with(options).await?))
        }
        Err(error) => Err(error.into()),
    }
}

/// MySQL error 1049 `ER_BAD_DB_ERROR`: the database in the URL does not exist.
fn is_missing_mysql_database(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>())
        .is_some_and(|e| e.number() == 1049)
}

/// Creates the database named in `options`, connected to `information_schema` (which every
/// server has) because the options cannot be told to name no database.
async fn create_mysql_database(options: &MySqlConnectOptions) -> Result<(), DbError> {
    let Some(name) = options.get_database().map(str::to_owned) else {
        return Err(sqlx::Error::Configuration("the database URL names no database".into()).into());
    };
    let mut admin = options
        .clone()
        .database("information_schema")
        .connect()
        .await?;
    // Identifiers cannot be bound as parameters; quote it, doubling embedded backticks.
    // IF NOT EXISTS: another replica may create it between our two attempts. The binary
    // collation makes text compare like PostgreSQL's and SQLite's (case-sensitive, by code
    // point) instead of the server's case-insensitive default.
    let statement = format!(
        "CREATE DATABASE IF NOT EXISTS `{}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        name.replace('`', "``")
    );
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
        .execute(&mut admin)
        .await;
    admin.close().await.ok();
    result?;
    tracing::info!(database = name, "created MySQL database");
    Ok(())
}

#[cfg(test)]
mod history_tests;
#[cfg(test)]
mod tests;
