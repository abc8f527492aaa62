//! Statements, bound values and result rows, engine-neutral.

use std::borrow::Cow;

use chrono::{DateTime, NaiveDateTime, Utc};
use sqlx::mysql::{MySql, MySqlArguments, MySqlRow};
use sqlx::postgres::{PgArguments, PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteArguments, SqliteRow};
use sqlx::types::Json;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};
use uuid::Uuid;

use super::constraints::{Constraint, explain};
use super::{Conn, Db, DbError, SQLITE_TIMESTAMP_FORMAT, Tx};

/// Starts a statement. The SQL is the same for every engine and uses `$1, $2, ...`
/// placeholders (sqlx's SQLite driver reads `$N` as the N-th argument) and double-quoted
/// identifiers. Arguments are collected here and bound per engine when the statement runs.
///
/// On MySQL the statement is rewritten first: each `$N` becomes `?` with the N-th argument
/// bound at that position (a `$N` may appear several times and in any order), and each
/// `"identifier"` becomes `` `identifier` ``. A `$N` without an argument, an argument no
/// placeholder uses, or a bare `?` is reported as [`DbError::Encode`] when the query runs.
pub fn query(sql: &'static str) -> Query {
    Query {
        sql: Cow::Borrowed(sql),
        args: Vec::new(),
        encode_error: None,
        constraints: &[],
    }
}

/// [`query`] of a statement made at run time (a list's filters and order, say). Its values are
/// bound as arguments like any other's: only the statement's shape is made at run time.
pub fn query_owned(sql: String) -> Query {
    Query {
        sql: Cow::Owned(sql),
        args: Vec::new(),
        encode_error: None,
        constraints: &[],
    }
}

/// A statement with its arguments, built by [`query`] and run by one of its async methods.
#[must_use = "a query does nothing until it is executed or fetched"]
#[derive(Debug)]
pub struct Query {
    sql: Cow<'static, str>,
    args: Vec<private::Value>,
    /// A `bind_json` serialization failure, reported when the query runs so that binding
    /// stays chainable.
    encode_error: Option<String>,
    /// The rules of the schema this statement can break, to tell which one it broke.
    constraints: &'static [Constraint],
}

impl Query {
    /// Appends the next positional argument.
    pub fn bind<T: Bind>(mut self, value: T) -> Self {
        self.args.push(value.into_value());
        self
    }

    /// Appends any `Serialize` value as JSON: JSONB on PostgreSQL, TEXT on SQLite, JSON text on
    /// MySQL. A value that serializes to `null` (such as `None`) is stored as SQL NULL.
    pub fn bind_json<T: serde::Serialize>(mut self, value: &T) -> Self {
        let json = match serde_json::to_value(value) {
            Ok(serde_json::Value::Null) => None,
            Ok(json) => Some(json),
            Err(error) => {
                self.encode_error.get_or_insert(error.to_string());
                None
            }
        };
        self.args.push(private::Value::Json(json));
        self
    }

    /// The unique keys and references this statement can break: a violation of one of them
    /// is reported as [`DbError::Violation`], in words naming its fields.
    pub fn constraints(mut self, constraints: &'static [Constraint]) -> Self {
        self.constraints = constraints;
        self
    }

    /// Runs the statement on a pool or inside a transaction, and returns the number of rows it
    /// affected.
    pub async fn execute<'c>(self, on: impl Into<Conn<'c>>) -> Result<u64, DbError> {
        let constraints = self.constraints;
        self.execute_unexplained(on)
            .await
            .map_err(|error| explain(error, constraints))
    }

    async fn execute_unexplained<'c>(self, on: impl Into<Conn<'c>>) -> Result<u64, DbError> {
        let result = match on.into() {
            Conn::Db(Db::Sqlite(pool)) => self.into_sqlite()?.execute(pool).await?,
            Conn::Db(Db::Postgres(pool)) => {
                return Ok(self.into_postgres()?.execute(pool).await?.rows_affected());
            }
            Conn::Tx(Tx::Sqlite(tx)) => self.into_sqlite()?.execute(&mut **tx).await?,
            Conn::Tx(Tx::Postgres(tx)) => {
                return Ok(self
                    .into_postgres()?
                    .execute(&mut **tx)
                    .await?
                    .rows_affected());
            }
            // Rows matched, not only rows changed, as on the other engines: sqlx connects with
            // CLIENT_FOUND_ROWS.
            Conn::Db(Db::Mysql(pool)) => {
                return Ok(self.into_mysql()?.execute(pool).await?.rows_affected());
            }
            Conn::Tx(Tx::Mysql(tx)) => {
                return Ok(self.into_mysql()?.execute(&mut **tx).await?.rows_affected());
            }
        };
        Ok(result.rows_affected())
    }

    /// Runs the statement and returns its first row, if any.
    pub async fn fetch_optional<'c>(self, on: impl Into<Conn<'c>>) -> Result<Option<Row>, DbError> {
        let constraints = self.constraints;
        self.fetch_optional_unexplained(on)
            .await
            .map_err(|error| explain(error, constraints))
    }

    async fn fetch_optional_unexplained<'c>(
        self,
        on: impl Into<Conn<'c>>,
    ) -> Result<Option<Row>, DbError> {
        let row = match on.into() {
            Conn::Db(Db::Sqlite(pool)) => self
                .into_sqlite()?
                .fetch_optional(pool)
                .await?
                .map(Row::Sqlite),
            Conn::Db(Db::Postgres(pool)) => self
                .into_postgres()?
                .fetch_optional(pool)
                .await?
                .map(Row::Postgres),
            Conn::Tx(Tx::Sqlite(tx)) => self
                .into_sqlite()?
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Sqlite),
            Conn::Tx(Tx::Postgres(tx)) => self
                .into_postgres()?
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Postgres),
            Conn::Db(Db::Mysql(pool)) => self
                .into_mysql()?
                .fetch_optional(pool)
                .await?
                .map(Row::Mysql),
            Conn::Tx(Tx::Mysql(tx)) => self
                .into_mysql()?
                .fetch_optional(&mut **tx)
                .await?
                .map(Row::Mysql),
        };
        Ok(row)
    }

    /// Runs the statement and returns every row.
    pub async fn fetch_all<'c>(self, on: impl Into<Conn<'c>>) -> Result<Vec<Row>, DbError> {
        let constraints = self.constraints;
        self.fetch_all_unexplained(on)
            .await
            .map_err(|error| explain(error, constraints))
    }

    async fn fetch_all_unexplained<'c>(self, on: impl Into<Conn<'c>>) -> Result<Vec<Row>, DbError> {
        let rows = match on.into() {
            Conn::Db(Db::Sqlite(pool)) => self
                .into_sqlite()?
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Db(Db::Postgres(pool)) => self
                .into_postgres()?
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
            Conn::Tx(Tx::Sqlite(tx)) => self
                .into_sqlite()?
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Sqlite)
                .collect(),
            Conn::Tx(Tx::Postgres(tx)) => self
                .into_postgres()?
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
            Conn::Db(Db::Mysql(pool)) => self
                .into_mysql()?
                .fetch_all(pool)
                .await?
                .into_iter()
                .map(Row::Mysql)
                .collect(),
            Conn::Tx(Tx::Mysql(tx)) => self
                .into_mysql()?
                .fetch_all(&mut **tx)
                .await?
                .into_iter()
                .map(Row::Mysql)
                .collect(),
        };
        Ok(rows)
    }

    fn check_encoded(&mut self) -> Result<(), DbError> {
        match self.encode_error.take() {
            Some(message) => Err(DbError::Encode {
                sql: self.sql.to_string(),
                message,
            }),
            None => Ok(()),
        }
    }

    fn into_sqlite(
        mut self,
    ) -> Result<sqlx::query::Query<'static, Sqlite, SqliteArguments>, DbError> {
        use private::Value;
        self.check_encoded()?;
        let mut query = sqlx::query::<Sqlite>(sqlx::AssertSqlSafe(self.sql));
        for value in self.args {
            query = match value {
                Value::Uuid(v) => query.bind(v.map(|id| id.hyphenated().to_string())),
                Value::Text(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::Int32(v) => query.bind(v),
                Value::Float(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
                Value::Timestamp(v) => query.bind(v.map(|t| sqlite_timestamp(&t))),
                Value::Json(v) => query.bind(v.map(|json| json.to_string())),
            };
        }
        Ok(query)
    }

    fn into_postgres(
        mut self,
    ) -> Result<sqlx::query::Query<'static, Postgres, PgArguments>, DbError> {
        use private::Value;
        self.check_encoded()?;
        let mut query = sqlx::query::<Postgres>(sqlx::AssertSqlSafe(self.sql));
        for value in self.args {
            query = match value {
                Value::Uuid(v) => query.bind(v),
                Value::Text(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::Int32(v) => query.bind(v),
                Value::Float(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
                Value::Timestamp(v) => query.bind(v),
                Value::Json(v) => query.bind(v.map(Json)),
            };
        }
        Ok(query)
    }

    fn into_mysql(mut self) -> Result<sqlx::query::Query<'static, MySql, MySqlArguments>, DbError> {
        use private::Value;
        self.check_encoded()?;
        let translated =
            super::mysql::translate(&self.sql, self.args.len()).map_err(|message| {
                DbError::Encode {
                    sql: self.sql.to_string(),
                    message,
                }
            })?;
        let mut query = sqlx::query::<MySql>(sqlx::AssertSqlSafe(translated.sql));
        for index in translated.order {
            query = match self.args[index].clone() {
                Value::Uuid(v) => query.bind(v.map(|id| id.hyphenated().to_string())),
                Value::Text(v) => query.bind(v),
                Value::Int(v) => query.bind(v),
                Value::Int32(v) => query.bind(v),
                Value::Float(v) => query.bind(v),
                Value::Bool(v) => query.bind(v),
                // A DATETIME holds no zone: bind the UTC wall-clock time itself, so that what
                // is stored does not depend on the session's time zone.
                Value::Timestamp(v) => query.bind(v.map(|t| t.naive_utc())),
                Value::Json(v) => query.bind(v.map(|json| json.to_string())),
            };
        }
        Ok(query)
    }
}

/// Formats a timestamp the way SQLite columns store it (see [`SQLITE_TIMESTAMP_FORMAT`]).
pub(crate) fn sqlite_timestamp(time: &DateTime<Utc>) -> String {
    time.format(SQLITE_TIMESTAMP_FORMAT).to_string()
}

mod private {
    use chrono::{DateTime, Utc};
    use uuid::Uuid;

    /// An argument waiting to be bound; every variant is nullable so that `Option<T>` binds a
    /// NULL of the right type (PostgreSQL needs the type even for NULL).
    #[derive(Debug, Clone)]
    pub enum Value {
        Uuid(Option<Uuid>),
        Text(Option<String>),
        Int(Option<i64>),
        Int32(Option<i32>),
        Float(Option<f64>),
        Bool(Option<bool>),
        Timestamp(Option<DateTime<Utc>>),
        Json(Option<serde_json::Value>),
    }

    /// Keeps [`super::Bind`] and [`super::FromColumn`] closed: their storage rules are part of
    /// the cross-engine contract and must not be extended ad hoc.
    pub trait Sealed {}
}

/// A Rust value that can be bound as a statement argument.
///
/// Implemented for [`Uuid`], `String`, `&'static str`, `i64`, `i32`, `f64`, `bool`,
/// `DateTime<Utc>` and `Option<T>` of each (a typed NULL). Storage:
///
/// | Rust | SQLite | PostgreSQL | MySQL/MariaDB |
/// |---|---|---|---|
/// | `Uuid` | TEXT, hyphenated lowercase | UUID | CHAR(36), hyphenated lowercase |
/// | `String`, `&str` | TEXT | TEXT | LONGTEXT, or VARCHAR(n) where indexed |
/// | `i64` / `i32` | INTEGER | BIGINT / INTEGER | BIGINT / INT |
/// | `f64` | REAL | DOUBLE PRECISION | DOUBLE |
/// | `bool` | INTEGER 0/1 | BOOLEAN | BOOLEAN (TINYINT(1)) 0/1 |
/// | `DateTime<Utc>` | TEXT `%Y-%m-%dT%H:%M:%S%.6fZ` (text order = time order) | TIMESTAMPTZ | DATETIME(6), UTC |
/// | JSON ([`Query::bind_json`]) | TEXT | JSONB | JSON (LONGTEXT on MariaDB) |
///
/// On MySQL, text columns use a binary collation (`utf8mb4_bin`) so that text compares and
/// sorts case-sensitively by code point, as on the other engines; uuids stored as text then
/// sort like PostgreSQL's UUIDs.
pub trait Bind: private::Sealed + Sized {
    #[doc(hidden)]
    fn into_value(self) -> private::Value;
    #[doc(hidden)]
    fn null() -> private::Value;
}

/// A Rust value that can be read from a result column with [`Row::get`]; implemented for the
/// same types as [`Bind`] (and `Option<T>` of each, where NULL gives `None`).
pub trait FromColumn: private::Sealed + Sized {
    #[doc(hidden)]
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError>;
    #[doc(hidden)]
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError>;
    #[doc(hidden)]
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError>;
}

macro_rules! bind_via {
    ($ty:ty, $variant:ident, |$v:ident| $convert:expr) => {
        impl private::Sealed for $ty {}
        impl Bind for $ty {
            fn into_value(self) -> private::Value {
                let $v = self;
                private::Value::$variant(Some($convert))
            }
            fn null() -> private::Value {
                private::Value::$variant(None)
            }
        }
    };
}

bind_via!(Uuid, Uuid, |v| v);
bind_via!(String, Text, |v| v);
bind_via!(&'static str, Text, |v| v.to_owned());
bind_via!(i64, Int, |v| v);
bind_via!(i32, Int32, |v| v);
bind_via!(f64, Float, |v| v);
bind_via!(bool, Bool, |v| v);
// Truncated to microseconds, the precision of every engine, so that a value read back
// compares equal to the one written.
bind_via!(DateTime<Utc>, Timestamp, |v| truncate_to_micros(v));

impl<T: private::Sealed> private::Sealed for Option<T> {}
impl<T: Bind> Bind for Option<T> {
    fn into_value(self) -> private::Value {
        match self {
            Some(value) => value.into_value(),
            None => T::null(),
        }
    }
    fn null() -> private::Value {
        T::null()
    }
}

fn truncate_to_micros(time: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = time.timestamp_subsec_nanos();
    time - chrono::Duration::nanoseconds(i64::from(nanos % 1_000))
}

/// One result row.
#[derive(Debug)]
pub enum Row {
    /// A row from SQLite.
    Sqlite(SqliteRow),
    /// A row from PostgreSQL.
    Postgres(PgRow),
    /// A row from MySQL/MariaDB.
    Mysql(MySqlRow),
}

impl Row {
    /// Decodes the named column. A NULL only decodes into an `Option`.
    pub fn get<T: FromColumn>(&self, column: &str) -> Result<T, DbError> {
        match self {
            Row::Sqlite(row) => T::from_sqlite(row, column),
            Row::Postgres(row) => T::from_postgres(row, column),
            Row::Mysql(row) => T::from_mysql(row, column),
        }
    }

    /// Decodes a JSON column (JSONB/JSON on PostgreSQL, TEXT on SQLite, JSON or text on MySQL).
    /// NULL decodes as JSON `null`, so `Option<T>` reads a NULL column as `None`.
    pub fn get_json<T: serde::de::DeserializeOwned>(&self, column: &str) -> Result<T, DbError> {
        let json: serde_json::Value = match self {
            Row::Sqlite(row) => match Option::<String>::from_sqlite(row, column)? {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| DbError::decode(column, format!("invalid JSON: {e}")))?,
                None => serde_json::Value::Null,
            },
            Row::Postgres(row) => {
                if is_null_pg(row, column)? {
                    serde_json::Value::Null
                } else {
                    match pg_type_name(row, column)?.as_str() {
                        "JSON" | "JSONB" => row.try_get::<Json<serde_json::Value>, _>(column)?.0,
                        _ => {
                            let text: String = row.try_get(column)?;
                            serde_json::from_str(&text).map_err(|e| {
                                DbError::decode(column, format!("invalid JSON: {e}"))
                            })?
                        }
                    }
                }
            }
            Row::Mysql(row) => {
                if is_null_mysql(row, column)? {
                    serde_json::Value::Null
                } else {
                    // MySQL's JSON type and MariaDB's (LONGTEXT) alike; sqlx's JSON decoder
                    // accepts JSON, text and binary columns.
                    row.try_get::<Json<serde_json::Value>, _>(column)
                        .map_err(|e| DbError::decode(column, format!("invalid JSON: {e}")))?
                        .0
                }
            }
        };
        serde_json::from_value(json)
            .map_err(|e| DbError::decode(column, format!("unexpected JSON shape: {e}")))
    }
}

fn is_null_sqlite(row: &SqliteRow, column: &str) -> Result<bool, DbError> {
    Ok(row.try_get_raw(column)?.is_null())
}

fn is_null_pg(row: &PgRow, column: &str) -> Result<bool, DbError> {
    Ok(row.try_get_raw(column)?.is_null())
}

fn pg_type_name(row: &PgRow, column: &str) -> Result<String, DbError> {
    Ok(row.try_column(column)?.type_info().name().to_owned())
}

fn is_null_mysql(row: &MySqlRow, column: &str) -> Result<bool, DbError> {
    Ok(row.try_get_raw(column)?.is_null())
}

/// sqlx's name of the column's type: `BIGINT`, `BIGINT UNSIGNED`, `BOOLEAN` (TINYINT(1)),
/// `CHAR`, `VARCHAR`, `TEXT`, `DATETIME`, `JSON`, ...
fn mysql_type_name(row: &MySqlRow, column: &str) -> Result<String, DbError> {
    Ok(row.try_column(column)?.type_info().name().to_owned())
}

/// Reads a non-NULL MySQL integer of any width and signedness as an i64.
fn mysql_integer(row: &MySqlRow, column: &str) -> Result<i64, DbError> {
    if mysql_type_name(row, column)?.ends_with("UNSIGNED") {
        let wide: u64 = checked(row, column)?;
        return i64::try_from(wide)
            .map_err(|_| DbError::decode(column, format!("{wide} overflows i64")));
    }
    checked(row, column)
}

fn unexpected_null(column: &str) -> DbError {
    DbError::decode(
        column,
        "unexpected NULL (decode into an Option to accept NULL)",
    )
}

impl<T: FromColumn> FromColumn for Option<T> {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        if is_null_sqlite(row, column)? {
            Ok(None)
        } else {
            T::from_sqlite(row, column).map(Some)
        }
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        if is_null_pg(row, column)? {
            Ok(None)
        } else {
            T::from_postgres(row, column).map(Some)
        }
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        if is_null_mysql(row, column)? {
            Ok(None)
        } else {
            T::from_mysql(row, column).map(Some)
        }
    }
}

/// Reads a non-NULL SQLite value as text. SQLite columns have no enforced type, and uuids,
/// timestamps and JSON are stored as TEXT here, so the value is read without sqlx's declared
/// type check and parsed by the caller.
fn sqlite_text(row: &SqliteRow, column: &str) -> Result<String, DbError> {
    if is_null_sqlite(row, column)? {
        return Err(unexpected_null(column));
    }
    Ok(row.try_get_unchecked::<String, _>(column)?)
}

/// Decodes a non-NULL value with sqlx's own (type-checked) decoder.
fn checked<'r, R, T>(row: &'r R, column: &str) -> Result<T, DbError>
where
    R: sqlx::Row,
    T: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'c> &'c str: sqlx::ColumnIndex<R>,
{
    if row.try_get_raw(column)?.is_null() {
        return Err(unexpected_null(column));
    }
    Ok(row.try_get::<T, _>(column)?)
}

impl FromColumn for String {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        sqlite_text(row, column)
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        checked(row, column)
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        checked(row, column)
    }
}

impl FromColumn for Uuid {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        let text = sqlite_text(row, column)?;
        Uuid::parse_str(&text).map_err(|e| DbError::decode(column, format!("invalid uuid: {e}")))
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        if pg_type_name(row, column)? == "UUID" {
            return checked(row, column);
        }
        // A uuid kept in a text column (or computed as text) still reads as a uuid.
        let text: String = checked(row, column)?;
        Uuid::parse_str(&text).map_err(|e| DbError::decode(column, format!("invalid uuid: {e}")))
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        if is_null_mysql(row, column)? {
            return Err(unexpected_null(column));
        }
        // Stored as CHAR(36) text; a hand-written BINARY(16) column reads as well. The bytes
        // are read unchecked because sqlx reports text in a binary collation as BINARY.
        let bytes: Vec<u8> = row.try_get_unchecked(column)?;
        if let Ok(id) = Uuid::from_slice(&bytes) {
            return Ok(id);
        }
        let text = String::from_utf8_lossy(&bytes);
        Uuid::parse_str(&text).map_err(|e| DbError::decode(column, format!("invalid uuid: {e}")))
    }
}

impl FromColumn for i64 {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        checked(row, column)
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        // Widen the smaller integer types: `COUNT(*)` is BIGINT but a hand-written INTEGER
        // column should read as well.
        match pg_type_name(row, column)?.as_str() {
            "INT4" => checked::<_, i32>(row, column).map(i64::from),
            "INT2" => checked::<_, i16>(row, column).map(i64::from),
            _ => checked(row, column),
        }
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        mysql_integer(row, column)
    }
}

impl FromColumn for i32 {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        let wide: i64 = checked(row, column)?;
        i32::try_from(wide).map_err(|_| DbError::decode(column, format!("{wide} overflows i32")))
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        match pg_type_name(row, column)?.as_str() {
            "INT2" => checked::<_, i16>(row, column).map(i32::from),
            "INT8" => {
                let wide: i64 = checked(row, column)?;
                i32::try_from(wide)
                    .map_err(|_| DbError::decode(column, format!("{wide} overflows i32")))
            }
            _ => checked(row, column),
        }
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        let wide = mysql_integer(row, column)?;
        i32::try_from(wide).map_err(|_| DbError::decode(column, format!("{wide} overflows i32")))
    }
}

impl FromColumn for f64 {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        checked(row, column)
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        match pg_type_name(row, column)?.as_str() {
            "FLOAT4" => checked::<_, f32>(row, column).map(f64::from),
            _ => checked(row, column),
        }
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        match mysql_type_name(row, column)?.as_str() {
            "FLOAT" => checked::<_, f32>(row, column).map(f64::from),
            _ => checked(row, column),
        }
    }
}

impl FromColumn for bool {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        if is_null_sqlite(row, column)? {
            return Err(unexpected_null(column));
        }
        // Stored as INTEGER 0/1; read the integer so that any declared column type works.
        Ok(row.try_get_unchecked::<i64, _>(column)? != 0)
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        checked(row, column)
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        // BOOLEAN is TINYINT(1); any integer (such as a computed `x = y`) reads as well.
        Ok(mysql_integer(row, column)? != 0)
    }
}

impl FromColumn for DateTime<Utc> {
    fn from_sqlite(row: &SqliteRow, column: &str) -> Result<Self, DbError> {
        let text = sqlite_text(row, column)?;
        parse_sqlite_timestamp(&text).ok_or_else(|| {
            DbError::decode(
                column,
                format!("invalid timestamp `{text}` (expected RFC 3339)"),
            )
        })
    }
    fn from_postgres(row: &PgRow, column: &str) -> Result<Self, DbError> {
        match pg_type_name(row, column)?.as_str() {
            "TIMESTAMP" => checked::<_, NaiveDateTime>(row, column).map(|t| t.and_utc()),
            _ => checked(row, column),
        }
    }
    fn from_mysql(row: &MySqlRow, column: &str) -> Result<Self, DbError> {
        match mysql_type_name(row, column)?.as_str() {
            // DATETIME holds the UTC wall-clock time this module wrote; TIMESTAMP is shown in
            // the session's zone, which is UTC (see `Db::connect`).
            "DATETIME" | "TIMESTAMP" => checked(row, column),
            // A timestamp kept as text (e.g. in the format SQLite uses) reads as well.
            _ => {
                let text: String = checked(row, column)?;
                parse_sqlite_timestamp(&text).ok_or_else(|| {
                    DbError::decode(
                        column,
                        format!("invalid timestamp `{text}` (expected RFC 3339)"),
                    )
                })
            }
        }
    }
}

/// Accepts the fixed format this module writes, any RFC 3339 timestamp, and SQLite's own
/// `CURRENT_TIMESTAMP` form (`YYYY-MM-DD HH:MM:SS`, UTC) so that SQL defaults read back too.
fn parse_sqlite_timestamp(text: &str) -> Option<DateTime<Utc>> {
    if let Ok(time) = DateTime::parse_from_rfc3339(text) {
        return Some(time.with_timezone(&Utc));
    }
    NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .ok()
        .map(|t| t.and_utc())
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn sqlite_timestamps_have_fixed_width_and_sort_as_text() {
        let early = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        let later = early + chrono::Duration::microseconds(1);
        assert_eq!(sqlite_timestamp(&early), "2024-01-02T03:04:05.000000Z");
        assert_eq!(sqlite_timestamp(&later), "2024-01-02T03:04:05.000001Z");
        assert!(sqlite_timestamp(&early) < sqlite_timestamp(&later));
    }

    #[test]
    fn timestamps_parse_in_every_form_sqlite_may_hold() {
        let expected = DateTime::parse_from_rfc3339("2024-01-02T03:04:05Z")
            .unwrap()
            .to_utc();
        for text in [
            "2024-01-02T03:04:05.000000Z",
            "2024-01-02T03:04:05+00:00",
            "2024-01-02 03:04:05",
        ] {
            assert_eq!(parse_sqlite_timestamp(text), Some(expected), "{text}");
        }
        assert_eq!(parse_sqlite_timestamp("yesterday"), None);
    }

    #[test]
    fn binding_truncates_timestamps_to_microseconds() {
        let time = DateTime::parse_from_rfc3339("2024-01-02T03:04:05.123456789Z")
            .unwrap()
            .to_utc();
        assert_eq!(
            truncate_to_micros(time).timestamp_subsec_nanos(),
            123_456_000
        );
    }
}
